"""Data-contract suites: one YAML file per extract table in ``data_contracts/``, loaded strictly.

A suite file (see ``data_contracts/README.md``) names its table, a version and a list of
expectations, each with a ``type``, ``kwargs`` and a ``severity`` (``error`` or ``warning``).

Loading is strict. great-expectations 1.x logs and silently *drops* an expectation whose type it
does not know; here every entry is parsed into a great-expectations expectation object (or, for
the workbench's own cross-table types, into a strict model defined below) and anything that does
not parse stops the load with :class:`ContractError`, naming the suite file, the entry and the
problem. great_expectations is imported lazily, only when a suite is loaded (``validate``), so
commands that do not validate never pay its import time.

Verified suites. Importing great_expectations takes 10-15 s here, and the vectorised engine evaluates
every shipped expectation without it: GX is only needed to check the suite files. A caller may pass
``verified_file`` (the runner uses ``<outputs>/.cache/verified-contracts.json``): after a strict load
with GX the key of the suite files is recorded there, and a later load of byte-identical suites with
the same great-expectations version and the same checking code skips building the GX objects. Our
own checks (keys, severities, columns, workbench kwargs) run on every load. ``pcref-eval
check-contracts`` (run by ``make setup``) does the strict load and records it.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

import pcref_eval
from pcref_eval.schema import POPULATION_SCHEMA, TABLE_SCHEMAS

#: The contracts shipped with the workbench (``<repo>/data_contracts``).
DEFAULT_CONTRACTS_DIR = Path(pcref_eval.__file__).resolve().parent.parent / "data_contracts"
#: Every table a site folder holds, with its columns (``population`` is the catchment table).
ALL_TABLE_SCHEMAS = {**TABLE_SCHEMAS, "population": POPULATION_SCHEMA}
SEVERITIES = ("error", "warning")
#: Site facts a suite may reference as ``{$PARAMETER: name}`` (great-expectations suite parameters).
SUITE_PARAMETERS = ("extract_date", "extract_year", "pcref_go_live")
_SUITE_KEYS = {"suite", "table", "version", "description", "expectations"}
_ENTRY_KEYS = {"type", "kwargs", "severity", "notes", "name", "meta"}
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ContractError(ValueError):
    """A suite file that cannot be used; the message names the file, the entry and the problem."""


# --------------------------------------------------------------------------------------------
# Workbench expectation types (cross-table and site-aware checks great-expectations lacks)
# --------------------------------------------------------------------------------------------
class _WorkbenchKwargs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExistInTable(_WorkbenchKwargs):
    """Every non-empty value of ``column`` occurs in ``other_table.other_column`` (no orphans)."""

    column: str
    other_table: str
    other_column: str | None = None
    mostly: float = Field(1.0, ge=0, le=1)


class NotAfterExtractDate(_WorkbenchKwargs):
    """The date (or the date part of a date-time) is not after the site's extract date (site.yml)."""

    column: str
    mostly: float = Field(1.0, ge=0, le=1)


class NotBeforeBirth(_WorkbenchKwargs):
    """The event's year is not before the person's year_of_birth (people table)."""

    column: str
    person_column: str = "person_id"
    mostly: float = Field(1.0, ge=0, le=1)


class NotAfterDeath(_WorkbenchKwargs):
    """The event's date is not after the person's date_of_death (people table)."""

    column: str
    person_column: str = "person_id"
    mostly: float = Field(1.0, ge=0, le=1)


class Recorded(_WorkbenchKwargs):
    """Share of rows (or of distinct ``distinct_by`` values) whose value is present and not a
    'not recorded' code, e.g. ethnicity stated (not Z, 99 or empty). Unlike GX's map
    expectations, empty values count as unexpected: completeness is what is measured."""

    column: str
    not_recorded_values: list[str] = Field(default_factory=list)
    distinct_by: str | None = None
    mostly: float = Field(1.0, ge=0, le=1)


WORKBENCH_TYPES: dict[str, type[_WorkbenchKwargs]] = {
    "expect_column_values_to_exist_in_table": ExistInTable,
    "expect_column_values_to_not_be_after_extract_date": NotAfterExtractDate,
    "expect_column_values_to_not_be_before_birth": NotBeforeBirth,
    "expect_column_values_to_not_be_after_death": NotAfterDeath,
    "expect_column_values_to_be_recorded": Recorded,
}


# --------------------------------------------------------------------------------------------
# Suites
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExpectationSpec:
    """One parsed expectation of a suite."""

    suite: str
    table: str
    index: int  # 1-based position in the file
    type: str
    kwargs: dict[str, Any]
    severity: Literal["error", "warning"]
    key: str  # unique within all suites: "<table>.<column>.<type>[.<name>]"
    column: str | None  # main column (column, column_A, or the column list joined) for reporting
    columns: tuple[str, ...]  # every column of the table the expectation reads
    notes: str = ""
    meta: dict = field(default_factory=dict, hash=False, compare=False)
    gx: Any = field(default=None, hash=False, compare=False, repr=False)  # the GX Expectation (None: workbench)
    path: Path | None = None

    @property
    def workbench(self) -> bool:
        return self.type in WORKBENCH_TYPES

    def gx_expectation(self):
        """The great-expectations Expectation object (built on first use when the suite was verified earlier)."""
        if self.workbench:
            raise ValueError(f"{self.where()}: workbench expectation types have no great-expectations implementation")
        if self.gx is None:
            object.__setattr__(self, "gx", build_gx_expectation(self.type, dict(self.kwargs), self.severity,
                                                                self.where()))
        return self.gx

    def where(self) -> str:
        return f"{self.path or self.suite}, expectation #{self.index} ({self.type})"


@dataclass(frozen=True)
class Suite:
    """A table's contract: name, version and its parsed expectations."""

    name: str
    table: str
    version: str
    path: Path
    description: str
    expectations: tuple[ExpectationSpec, ...]


def load_suites(contracts_dir: str | Path | None = None, verified_file: str | Path | None = None,
                trust_record: bool = True) -> dict[str, Suite]:
    """Load and strictly check every ``*.yml``/``*.yaml``/``*.json`` suite in ``contracts_dir``.

    Returns ``{table: Suite}``. Raises :class:`ContractError` for an unreadable file, an unknown
    expectation type, an invalid argument, a column the table does not have, a duplicate suite
    for one table, or a table of the extract without a suite. With ``verified_file``, suites already
    checked with great-expectations are not checked with it again (see the module docstring) unless
    ``trust_record`` is False; a check made here is recorded there.
    """
    folder, files = suite_files(contracts_dir)
    stamp = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    key = suites_key(files) if verified_file is not None else None
    trusted = trust_record and key is not None and key in read_verified(Path(verified_file))
    suites = dict(_load_cached(str(folder), stamp, not trusted))
    if key is not None and not trusted:
        record_verified(Path(verified_file), key)
    return suites


def suite_files(contracts_dir: str | Path | None = None) -> tuple[Path, list[Path]]:
    """The contracts folder (default: the shipped ``data_contracts/``) and its suite files, sorted."""
    folder = Path(contracts_dir or DEFAULT_CONTRACTS_DIR).resolve()
    if not folder.is_dir():
        raise ContractError(f"{folder}: data contracts folder not found")
    return folder, sorted(p for p in folder.iterdir() if p.suffix in (".yml", ".yaml", ".json") and p.is_file())


def check_suites_with_gx(contracts_dir: str | Path | None, verified_file: str | Path) -> dict[str, Suite]:
    """Load the suites strictly with great-expectations (never trusting a record) and record the check."""
    return load_suites(contracts_dir, verified_file, trust_record=False)


def suites_key(files: list[Path]) -> str:
    """SHA-256 over the suite files' bytes, the great-expectations version and the checking code."""
    from importlib import metadata

    try:
        gx_version = metadata.version("great_expectations")
    except metadata.PackageNotFoundError:
        gx_version = None
    h = hashlib.sha256(json.dumps({"great_expectations": gx_version}).encode())
    for path in [*files, Path(__file__), Path(__file__).with_name("engine.py"),
                 Path(__file__).resolve().parent.parent / "schema.py"]:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def read_verified(path: Path) -> set[str]:
    """Suite keys recorded in ``path`` as checked with great-expectations (empty if absent or unreadable)."""
    return set(_verified_entries(path))


def _verified_entries(path: Path) -> dict:
    try:
        entries = json.loads(path.read_text(encoding="utf-8")).get("verified", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return entries if isinstance(entries, dict) else {}


def record_verified(path: Path, key: str, keep: int = 20) -> None:
    """Add ``key`` to ``path`` (atomic replace; the newest ``keep`` keys are kept). Best effort."""
    from datetime import datetime, timezone
    from importlib import metadata

    data = _verified_entries(path)
    data[key] = {"checked_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                 "great_expectations": metadata.version("great_expectations")}
    data = dict(sorted(data.items(), key=lambda kv: kv[1]["checked_at"])[-keep:])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"verified": data}, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only outputs folder only means the next run checks again


@functools.lru_cache(maxsize=8)
def _load_cached(folder: str, stamp: tuple, build_gx: bool = True) -> tuple[tuple[str, Suite], ...]:
    suites: dict[str, Suite] = {}
    for path_str, _, _ in stamp:
        suite = load_suite(Path(path_str), build_gx=build_gx)
        if suite.table in suites:
            raise ContractError(f"{path_str}: a second suite for table '{suite.table}' "
                                f"(the first is {suites[suite.table].path}); keep one suite per table")
        suites[suite.table] = suite
    missing = [t for t in ALL_TABLE_SCHEMAS if t not in suites]
    if missing:
        raise ContractError(f"{folder}: no suite for table(s) {missing}; every extract table needs a contract")
    keys: dict[str, ExpectationSpec] = {}
    for suite in suites.values():
        for spec in suite.expectations:
            if spec.key in keys:
                raise ContractError(f"{spec.where()}: duplicates {keys[spec.key].where()} (key '{spec.key}'); "
                                    f"give one of them a distinct 'name'")
            keys[spec.key] = spec
        for spec in suite.expectations:
            _check_cross_table(spec)
    return tuple(suites.items())


def load_suite(path: str | Path, build_gx: bool = True) -> Suite:
    """Parse one suite file strictly (see module docstring); ``build_gx=False`` skips the GX objects."""
    path = Path(path)
    raw = _read_suite_file(path)
    unknown = set(raw) - _SUITE_KEYS
    if unknown:
        raise ContractError(f"{path}: unknown top-level key(s) {sorted(unknown)}; allowed: {sorted(_SUITE_KEYS)}")
    for key in ("suite", "table", "version", "expectations"):
        if key not in raw:
            raise ContractError(f"{path}: missing top-level key '{key}'")
    table, version = str(raw["table"]), str(raw["version"])
    if table not in ALL_TABLE_SCHEMAS:
        raise ContractError(f"{path}: table '{table}' is not an extract table; choose one of {list(ALL_TABLE_SCHEMAS)}")
    if not _VERSION.match(version):
        raise ContractError(f"{path}: version '{version}' must be MAJOR.MINOR.PATCH, e.g. 1.0.0 (quote it in YAML)")
    entries = raw["expectations"]
    if not isinstance(entries, list) or not entries:
        raise ContractError(f"{path}: 'expectations' must be a non-empty list")
    specs = tuple(_parse_entry(path, str(raw["suite"]), table, i, e, build_gx)
                  for i, e in enumerate(entries, start=1))
    return Suite(name=str(raw["suite"]), table=table, version=version, path=path,
                 description=str(raw.get("description") or "").strip(), expectations=specs)


def _read_suite_file(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(f"{path}: suite file cannot be read ({exc})") from None
    try:
        raw = yaml.load(text, Loader=_YAML_LOADER)  # JSON is valid YAML
    except yaml.YAMLError as exc:
        raise ContractError(f"{path}: suite file is not valid YAML/JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ContractError(f"{path}: a suite file must be a mapping with keys {sorted(_SUITE_KEYS)}")
    return raw


def _parse_entry(path: Path, suite: str, table: str, index: int, entry, build_gx: bool = True) -> ExpectationSpec:
    where = f"{path}, expectation #{index}"
    if not isinstance(entry, dict):
        raise ContractError(f"{where}: each expectation must be a mapping with 'type', 'kwargs' and 'severity'")
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        raise ContractError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_ENTRY_KEYS)}")
    etype = entry.get("type")
    if not isinstance(etype, str) or not etype:
        raise ContractError(f"{where}: 'type' is missing")
    where = f"{where} ({etype})"
    severity = entry.get("severity")
    if severity not in SEVERITIES:
        raise ContractError(f"{where}: severity must be 'error' (the site cannot be analysed) or 'warning' "
                            f"(analysed and flagged), got {severity!r}")
    kwargs = entry.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ContractError(f"{where}: 'kwargs' must be a mapping")
    kwargs = dict(kwargs)
    _check_parameters(where, kwargs)
    gx_obj = None
    if etype in WORKBENCH_TYPES:
        try:
            kwargs = WORKBENCH_TYPES[etype](**kwargs).model_dump()
        except ValidationError as exc:
            raise ContractError(f"{where}: invalid kwargs: {_pydantic_errors(exc)}") from None
    elif build_gx:
        gx_obj = build_gx_expectation(etype, kwargs, severity, where)
    columns = _columns_of(kwargs)
    schema = ALL_TABLE_SCHEMAS[table]
    bad = [c for c in columns if c not in schema]
    if bad:
        raise ContractError(f"{where}: column(s) {bad} are not columns of table '{table}' "
                            f"(schema: {list(schema)})")
    _check_text_sets(where, etype, kwargs, schema)
    main = kwargs.get("column") or kwargs.get("column_A") or (",".join(kwargs["column_list"])
                                                               if kwargs.get("column_list") else None)
    name = entry.get("name")
    key = ".".join(str(p) for p in (table, main or "table", etype, name) if p)
    return ExpectationSpec(suite=suite, table=table, index=index, type=etype, kwargs=kwargs, severity=severity,
                           key=key, column=main, columns=tuple(columns), notes=str(entry.get("notes") or "").strip(),
                           meta=dict(entry.get("meta") or {}), gx=gx_obj, path=path)


def build_gx_expectation(etype: str, kwargs: dict, severity: str = "error", where: str = ""):
    """Build the great-expectations object for ``etype`` or raise ContractError (never drop it)."""
    from pcref_eval.contracts.gx_backend import gx_module  # lazy: imports great_expectations

    try:
        gx_module()
    except ImportError as exc:
        raise ContractError(f"{where}: great-expectations is needed to check suites but cannot be imported "
                            f"({exc}); install the project's dependencies (pip install -e .)") from None
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.registry import get_expectation_impl, list_registered_expectation_implementations

    try:
        cls = get_expectation_impl(etype)
    except ExpectationNotFoundError:
        known = list(WORKBENCH_TYPES) + list_registered_expectation_implementations()
        close = difflib.get_close_matches(etype, known, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ContractError(f"{where}: unknown expectation type '{etype}'. great-expectations would log this "
                            f"and silently drop the check; the workbench refuses the suite instead.{hint} "
                            f"Known types: the great-expectations core expectations and the workbench types "
                            f"{list(WORKBENCH_TYPES)} (see data_contracts/README.md).") from None
    try:
        return cls(**kwargs, severity="critical" if severity == "error" else "warning")
    except Exception as exc:  # pydantic (v1 inside GX) ValidationError or GX configuration errors
        msg = " ".join(str(exc).split())
        raise ContractError(f"{where}: invalid kwargs for great-expectations {cls.__name__}: {msg}") from None


def _columns_of(kwargs: dict) -> list[str]:
    cols = [kwargs[k] for k in ("column", "column_A", "column_B", "person_column", "distinct_by")
            if isinstance(kwargs.get(k), str)]
    cols += list(kwargs.get("column_list") or [])
    return list(dict.fromkeys(cols))


def _check_parameters(where: str, kwargs: dict) -> None:
    for key, value in kwargs.items():
        if isinstance(value, dict) and "$PARAMETER" in value:
            if value["$PARAMETER"] not in SUITE_PARAMETERS:
                raise ContractError(f"{where}: kwarg '{key}' uses unknown parameter {value['$PARAMETER']!r}; "
                                    f"available: {list(SUITE_PARAMETERS)}")


def _check_text_sets(where: str, etype: str, kwargs: dict, schema: dict) -> None:
    """Code lists are compared with the extract's raw text: every member must be a quoted string."""
    for key in ("value_set", "not_recorded_values"):
        values = kwargs.get(key)
        if isinstance(values, (list, tuple, set)):
            bad = [v for v in values if not isinstance(v, str)]
            if bad:
                raise ContractError(f"{where}: {key} must hold quoted strings (the extract is read as text; "
                                    f"YAML reads 01 as the number 1): got {bad[:5]}; write e.g. '01'")


def _check_cross_table(spec: ExpectationSpec) -> None:
    if spec.type == "expect_column_values_to_exist_in_table":
        other = spec.kwargs["other_table"]
        other_col = spec.kwargs.get("other_column") or spec.kwargs["column"]
        if other not in ALL_TABLE_SCHEMAS or other_col not in ALL_TABLE_SCHEMAS[other]:
            raise ContractError(f"{spec.where()}: other_table.other_column '{other}.{other_col}' is not a column "
                                f"of the extract")
    if spec.type in ("expect_column_values_to_not_be_before_birth", "expect_column_values_to_not_be_after_death"):
        if spec.kwargs["person_column"] not in ALL_TABLE_SCHEMAS[spec.table]:
            raise ContractError(f"{spec.where()}: person_column '{spec.kwargs['person_column']}' is not a column "
                                f"of table '{spec.table}'")


def _pydantic_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(kwargs)"
        msg = "unknown argument (not allowed)" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)
