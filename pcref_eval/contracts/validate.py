"""Validate one site folder against the data contracts: results, messages, samples and the DQ report.

``validate_site`` never raises for bad input: a missing, empty, corrupt or mis-delimited file,
non-UTF-8 text or a missing column gives a :class:`SiteValidation` with status ``error`` and a
one-paragraph message naming the file, table, column and example rows. Everything it writes goes
to ``restricted_dir`` (failing-row samples hold identifiers: restricted, never released).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pcref_eval.contracts.engine import Outcome, SiteData, evaluate, engine_supports
from pcref_eval.contracts.suite import ALL_TABLE_SCHEMAS, ContractError, ExpectationSpec, Suite, load_suites
from pcref_eval.ethnicity import ETHNIC_CATEGORIES
from pcref_eval.extract import ExtractError, SiteInfo, read_raw_table, read_site_info
from pcref_eval.schema import PRIMARY_KEYS

RESULT_COLUMNS = ["table", "column", "expectation", "severity", "success", "unexpected_count",
                  "unexpected_percent", "element_count", "missing_count", "key", "engine", "suite_version"]
COMPLETENESS_COLUMNS = ["month", "table", "recorded", "total", "share"]
JSON_NAME, REPORT_NAME, SAMPLES_NAME = "validation.json", "dq_report.html", "failing_rows.csv"
JSON_SCHEMA = "pcref-eval/site-validation/1"
EXAMPLE_ROWS = 5


@dataclass
class SiteValidation:
    """The outcome of validating one site: status, per-expectation results and where outputs went."""

    site_id: str
    status: str  # "pass" | "warning" | "error"
    results: pd.DataFrame  # aggregate only: no identifiers, no row numbers
    message: str = ""  # one paragraph when the site cannot be analysed (else empty)
    report_html: Path | None = None
    json_path: Path | None = None
    exit_code: int = 0
    completeness: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COMPLETENESS_COLUMNS))
    completeness_by_table: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["table", "recorded", "total", "share"]))
    failures: list[str] = field(default_factory=list)  # one paragraph per failed expectation
    read_errors: list[dict] = field(default_factory=list)
    samples_path: Path | None = None
    changes: pd.DataFrame | None = None  # what changed since the previous run (None: no previous run)
    site_dir: Path | None = None
    suite_versions: dict[str, str] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def analysable(self) -> bool:
        """False when an error-level check failed or the extract could not be read."""
        return self.status != "error"

    def ethnicity_completeness(self) -> pd.DataFrame:
        """Ethnicity recording completeness by month: columns month, table, recorded, total, share."""
        return self.completeness

    def warnings(self) -> pd.DataFrame:
        """Failed warning-level expectations (for a report's data-quality section)."""
        r = self.results
        return r[(r["severity"] == "warning") & ~r["success"]]

    def errors(self) -> pd.DataFrame:
        """Failed error-level expectations (why a site is not analysed)."""
        r = self.results
        return r[(r["severity"] == "error") & ~r["success"]]


def validate_site(site_dir: Path, contracts_dir: Path | None = None, restricted_dir: Path | None = None,
                  previous: Path | None = None, verified_contracts: Path | None = None) -> SiteValidation:
    """Validate a site folder against the contracts; write JSON, samples and the DQ report to ``restricted_dir``.

    ``previous`` is an earlier run's ``validation.json`` for this site (for "what changed").
    ``verified_contracts``: the record of suites already checked with great-expectations
    (:func:`pcref_eval.contracts.suite.load_suites`).
    """
    t0 = time.perf_counter()
    site_dir = Path(site_dir)
    timings: dict[str, float] = {}
    read_errors: list[dict] = []
    info: SiteInfo | None = None
    if not site_dir.is_dir():
        read_errors.append(_read_error(ExtractError(
            f"{site_dir}: site folder not found (expected a folder holding site.yml and one file per table)",
            file=site_dir)))
    else:
        try:
            info = read_site_info(site_dir)
        except ExtractError as exc:
            read_errors.append(_read_error(exc, table="site.yml"))
    site_id = info.site_id if info else site_dir.name
    prev = _load_previous(previous)

    tables: dict[str, pd.DataFrame] = {}
    paths: dict[str, Path] = {}
    if site_dir.is_dir():
        t = time.perf_counter()
        for table, columns in ALL_TABLE_SCHEMAS.items():
            try:
                tables[table], paths[table] = read_raw_table(site_dir, table, columns)
            except ExtractError as exc:
                read_errors.append(_read_error(exc, table=table))
            except OSError as exc:  # permission denied and the like
                read_errors.append(_read_error(ExtractError(f"{site_dir}: table '{table}' cannot be read ({exc})",
                                                            table=table), table=table))
        timings["read_seconds"] = time.perf_counter() - t

    t = time.perf_counter()
    try:
        suites = load_suites(contracts_dir, verified_contracts)
    except ContractError as exc:
        return _finish(SiteValidation(site_id=site_id, status="error", results=_empty_results(), exit_code=2,
                                      message=f"The data contracts cannot be used: {exc}", site_dir=site_dir,
                                      read_errors=read_errors), restricted_dir, prev, None, t0, timings)
    timings["load_suites_seconds"] = time.perf_counter() - t

    t = time.perf_counter()
    data = SiteData(tables, info.extract_date if info else None, info.pcref_go_live if info else None)
    rows, failures, samples, skipped = [], [], [], []
    for suite in suites.values():
        for spec in suite.expectations:
            if not _can_run(spec, tables, info):
                skipped.append(spec)
                continue
            try:
                outcome = evaluate(spec, data)
            except Exception as exc:  # a check that cannot be evaluated is itself an error-level finding
                outcome = Outcome(success=False, engine="error")
                failures.append(f"{paths.get(spec.table, spec.table)}: table '{spec.table}', column "
                                f"'{spec.column}': the check {spec.type} could not be evaluated "
                                f"({type(exc).__name__}: {exc}) [{spec.severity}: {spec.type}].")
            rows.append(_result_row(spec, suite, outcome))
            if not outcome.success and outcome.engine != "error":
                failures.append(_failure_paragraph(spec, outcome, paths, data))
            if outcome.sample_rows and not outcome.success:
                samples.append(_sample_rows(spec, outcome, tables))
    timings["validate_seconds"] = time.perf_counter() - t
    results = pd.DataFrame(rows, columns=RESULT_COLUMNS) if rows else _empty_results()
    results = _typed_results(results)

    t = time.perf_counter()
    completeness, by_table = ethnicity_completeness(data)
    timings["completeness_seconds"] = time.perf_counter() - t
    status, exit_code = _status(results, read_errors)
    message = _message(site_id, status, results, read_errors, skipped, failures)
    sv = SiteValidation(site_id=site_id, status=status, results=results, message=message, exit_code=exit_code,
                        completeness=completeness, completeness_by_table=by_table, failures=failures,
                        read_errors=read_errors, site_dir=site_dir,
                        suite_versions={s.table: s.version for s in suites.values()},
                        row_counts={t: int(len(df)) for t, df in tables.items()})
    sample_frame = pd.concat(samples, ignore_index=True) if samples else None
    return _finish(sv, restricted_dir, prev, sample_frame, t0, timings, paths)


# --------------------------------------------------------------------------------------------
def _can_run(spec: ExpectationSpec, tables: dict, info: SiteInfo | None) -> bool:
    needed = {spec.table}
    if spec.type == "expect_column_values_to_exist_in_table":
        needed.add(spec.kwargs["other_table"])
    if spec.type in ("expect_column_values_to_not_be_before_birth", "expect_column_values_to_not_be_after_death"):
        needed.add("people")
    if not needed <= set(tables):
        return False
    uses_site = spec.type == "expect_column_values_to_not_be_after_extract_date" or any(
        isinstance(v, dict) and "$PARAMETER" in v for v in spec.kwargs.values())
    return info is not None or not uses_site


def _read_error(exc: ExtractError, table: str | None = None) -> dict:
    return {"table": exc.table or table, "file": str(exc.file) if exc.file else None, "column": exc.column,
            "rows": list(exc.rows), "message": " ".join(str(exc).split())}


def _result_row(spec: ExpectationSpec, suite: Suite, o: Outcome) -> dict:
    return {"table": spec.table, "column": spec.column, "expectation": spec.type, "severity": spec.severity,
            "success": bool(o.success), "unexpected_count": o.unexpected_count,
            "unexpected_percent": o.unexpected_percent, "element_count": o.element_count,
            "missing_count": o.missing_count, "key": spec.key, "engine": o.engine, "suite_version": suite.version}


def _empty_results() -> pd.DataFrame:
    return _typed_results(pd.DataFrame(columns=RESULT_COLUMNS))


def _typed_results(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["success"] = out["success"].astype(bool)
    for col in ("unexpected_count", "element_count", "missing_count"):
        out[col] = pd.array(out[col].tolist(), dtype="Int64")
    out["unexpected_percent"] = pd.array(out["unexpected_percent"].tolist(), dtype="Float64")
    return out


def _status(results: pd.DataFrame, read_errors: list) -> tuple[str, int]:
    failed = results[~results["success"]]
    if read_errors or (failed["severity"] == "error").any():
        return "error", 2
    if len(failed):
        return "warning", 1
    return "pass", 0


def _message(site_id: str, status: str, results: pd.DataFrame, read_errors: list, skipped: list,
             failures: list[str]) -> str:
    """One paragraph saying why a site cannot be analysed (file, table, column, example rows)."""
    if status != "error":
        return ""
    parts = []
    if read_errors:
        parts.append(f"Site {site_id} cannot be analysed: its extract could not be read.")
        parts += [e["message"] for e in read_errors]
        if skipped:
            parts.append(f"{len(skipped)} check(s) that need the unreadable table(s) were not run.")
    failed = results[(~results["success"]) & (results["severity"] == "error")]
    if len(failed):
        lead = "It also failed" if read_errors else f"Site {site_id} cannot be analysed: it failed"
        parts.append(f"{lead} {len(failed)} error-level data-contract check(s).")
        parts += [f for f in failures if "[error:" in f]
    return " ".join(p if p.rstrip().endswith((".", "?")) else p.rstrip() + "." for p in parts)


def _short(etype: str) -> str:
    return etype.removeprefix("expect_").replace("_", " ")


#: Short labels of what a failed check found (for one-line summaries).
_LABEL = {
    "expect_column_to_exist": "missing column",
    "expect_table_row_count_to_be_between": "wrong number of rows",
    "expect_column_values_to_not_be_null": "empty values",
    "expect_column_values_to_be_unique": "duplicate ids",
    "expect_compound_columns_to_be_unique": "duplicate rows",
    "expect_column_values_to_be_in_set": "codes not in the code list",
    "expect_column_values_to_not_be_in_set": "codes not allowed",
    "expect_column_values_to_match_regex": "values of the wrong type",
    "expect_column_values_to_match_strftime_format": "unparseable dates",
    "expect_column_values_to_be_between": "values out of range",
    "expect_column_pair_values_a_to_be_greater_than_b": "end before start",
    "expect_column_values_to_exist_in_table": "orphan references",
    "expect_column_values_to_not_be_after_extract_date": "dates after the extract date",
    "expect_column_values_to_not_be_before_birth": "dates before birth",
    "expect_column_values_to_not_be_after_death": "dates after death",
    "expect_column_values_to_be_recorded": "ethnicity not stated",
}

#: Neutral names of what each check asks (for results tables).
_CHECK = {
    "expect_column_to_exist": "column present",
    "expect_table_row_count_to_be_between": "row count",
    "expect_column_values_to_not_be_null": "not empty",
    "expect_column_values_to_be_unique": "unique",
    "expect_compound_columns_to_be_unique": "unique together",
    "expect_column_values_to_be_in_set": "in code list",
    "expect_column_values_to_not_be_in_set": "not a disallowed code",
    "expect_column_values_to_match_regex": "type / format",
    "expect_column_values_to_match_strftime_format": "valid date",
    "expect_column_values_to_be_between": "within range",
    "expect_column_pair_values_a_to_be_greater_than_b": "end not before start",
    "expect_column_values_to_exist_in_table": "reference exists",
    "expect_column_values_to_not_be_after_extract_date": "not after extract date",
    "expect_column_values_to_not_be_before_birth": "not before birth",
    "expect_column_values_to_not_be_after_death": "not after death",
    "expect_column_values_to_be_recorded": "stated (completeness)",
}


def check_label(etype: str) -> str:
    """A short neutral name of what an expectation type checks (e.g. 'reference exists')."""
    return _CHECK.get(etype, _short(etype))


def problem_label(etype: str) -> str:
    """A short name of what a failed expectation found (e.g. 'orphan references')."""
    return _LABEL.get(etype, _short(etype))


_WHAT = {
    "expect_column_values_to_not_be_null": "are empty",
    "expect_column_values_to_be_unique": "are duplicates (every copy of a repeated id is counted)",
    "expect_column_values_to_be_in_set": "are not in the code list",
    "expect_column_values_to_not_be_in_set": "are codes that are not allowed",
    "expect_column_values_to_exist_in_table": "refer to {other} rows that do not exist (orphan references)",
    "expect_column_values_to_not_be_after_extract_date": "are after the extract date ({extract})",
    "expect_column_values_to_not_be_before_birth": "are in a year before the person's year of birth",
    "expect_column_values_to_not_be_after_death": "are after the person's date of death",
}


def _failure_paragraph(spec: ExpectationSpec, o: Outcome, paths: dict, data: SiteData) -> str:
    """One paragraph naming the file, table, column, what is wrong and example data rows (1-based)."""
    file = paths.get(spec.table, f"{spec.table}.csv")
    head = f"{file}: table '{spec.table}', column '{spec.column}'"
    kw = spec.kwargs
    kind = ALL_TABLE_SCHEMAS.get(spec.table, {}).get(spec.column or "")
    tag = f"[{spec.severity}: {spec.type}]"
    rows = [r + 1 for r in o.sample_rows[:EXAMPLE_ROWS]]
    eg = f", e.g. data rows {rows}" if rows else ""
    n = o.unexpected_count
    if spec.type == "expect_column_to_exist":
        return f"{file}: table '{spec.table}' has no column '{spec.column}' {tag}."
    if spec.type == "expect_table_row_count_to_be_between":
        return f"{file}: table '{spec.table}' has {o.observed} row(s); expected at least {kw.get('min_value')} {tag}."
    if spec.type == "expect_column_values_to_be_recorded":
        share = 100 - (o.unexpected_percent or 0)
        unit = "people" if kw.get("distinct_by") else "rows"
        codes = ", ".join(kw.get("not_recorded_values") or []) + (", " if kw.get("not_recorded_values") else "")
        return (f"{head}: stated for {share:.1f}% of {o.element_count} {unit}, below the {kw['mostly']:.0%} "
                f"threshold; {n} not stated ({codes}or empty){eg} {tag}.")
    if spec.type in ("expect_column_values_to_match_regex", "expect_column_values_to_match_strftime_format"):
        fmt = kw.get("strftime_format") or kw.get("regex")
        what = {"date": "valid dates (YYYY-MM-DD)", "datetime": "valid date-times (YYYY-MM-DDTHH:MM)",
                "int": "whole numbers", "float": "numbers"}.get(kind, f"of the expected form {fmt!r}")
        what = f"are not {what}"
    elif spec.type == "expect_column_values_to_be_between":
        p = data.parameters()
        lo, hi = kw.get("min_value"), kw.get("max_value")
        lo = p.get(lo["$PARAMETER"]) if isinstance(lo, dict) else lo
        hi = p.get(hi["$PARAMETER"]) if isinstance(hi, dict) else hi
        what = f"are outside the range {lo} to {hi}"
    elif spec.type == "expect_column_pair_values_a_to_be_greater_than_b":
        what = f"are before {kw['column_B']} (end before start)"
    else:
        other = f"{kw.get('other_table')}.{kw.get('other_column') or kw.get('column')}"
        what = _WHAT.get(spec.type, f"fail {spec.type}").format(other=other, extract=data.extract_date)
    of = f" of {o.element_count - (o.missing_count or 0)}" if o.element_count is not None else ""
    mostly = kw.get("mostly", 1)
    tol = f" (more than the {1 - mostly:.0%} allowed)" if mostly and mostly < 1 else ""
    return f"{head}: {n}{of} value(s) {what}{tol}{eg} {tag}."


def _sample_rows(spec: ExpectationSpec, o: Outcome, tables: dict) -> pd.DataFrame:
    """Failing rows for the restricted samples file: data row numbers and the table's id only."""
    df = tables[spec.table]
    pos = [p for p in o.sample_rows if 0 <= p < len(df)]
    id_col = PRIMARY_KEYS.get(spec.table)
    ids = df[id_col].iloc[pos].tolist() if id_col in df.columns else [None] * len(pos)
    return pd.DataFrame({"key": spec.key, "table": spec.table, "column": spec.column, "expectation": spec.type,
                         "severity": spec.severity, "data_row": [p + 1 for p in pos],
                         "id_column": id_col, "id": ids})


# --------------------------------------------------------------------------------------------
def ethnicity_completeness(data: SiteData) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ethnicity recording (A-S stated) by month and by table.

    people: one row per distinct person_id, by the month of the person's first referral (valid
    referral dates not after the extract date); patient_experience: by response month.
    """
    parts, totals = [], []
    codes = list(ETHNIC_CATEGORIES)
    if "people" in data.tables:
        people = data.tables["people"]
        first = ~data.duplicated("people", "person_id", "first") & people["person_id"].notna().to_numpy()
        recorded = people["ethnic_category"].isin(codes).to_numpy()[first]
        totals.append(("people", int(recorded.sum()), int(first.sum())))
        if "referrals" in data.tables:
            ref_date = data.typed("referrals", "referral_date")
            pos = data.person_positions("referrals", "person_id")  # row in the de-duplicated people
            ok = ref_date.notna().to_numpy() & (pos >= 0)
            if data.extract_date:
                ok &= (ref_date < pd.Timestamp(data.extract_date) + pd.Timedelta(days=1)).to_numpy()
            days = ref_date.to_numpy().astype("datetime64[D]").astype(np.int64)
            earliest = np.full(int(first.sum()), np.iinfo(np.int64).max)
            np.minimum.at(earliest, pos[ok], days[ok])
            month = pd.Series(np.where(earliest == np.iinfo(np.int64).max, np.datetime64("NaT"),
                                       earliest.astype("datetime64[D]"))).dt.to_period("M")
            parts.append(_by_month(pd.DataFrame({"recorded": recorded, "month": month}), "people"))
    if "patient_experience" in data.tables:
        pe = data.tables["patient_experience"]
        d = data.typed("patient_experience", "response_date")
        x = pd.DataFrame({"recorded": pe["ethnic_category"].isin(codes).to_numpy(), "month": d.dt.to_period("M")})
        if data.extract_date:
            x = x[(d < pd.Timestamp(data.extract_date) + pd.Timedelta(days=1)).to_numpy() | d.isna().to_numpy()]
        totals.append(("patient_experience", int(x["recorded"].sum()), len(x)))
        parts.append(_by_month(x, "patient_experience"))
    by_month = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COMPLETENESS_COLUMNS)
    by_table = pd.DataFrame([{"table": t, "recorded": r, "total": n, "share": r / n if n else None}
                             for t, r, n in totals], columns=["table", "recorded", "total", "share"])
    return by_month, by_table


def _by_month(df: pd.DataFrame, table: str) -> pd.DataFrame:
    g = df.dropna(subset=["month"]).groupby("month", sort=True)["recorded"].agg(["sum", "size"]).reset_index()
    return pd.DataFrame({"month": g["month"].astype(str), "table": table, "recorded": g["sum"].astype(int),
                         "total": g["size"].astype(int), "share": g["sum"] / g["size"]},
                        columns=COMPLETENESS_COLUMNS)


# --------------------------------------------------------------------------------------------
def _load_previous(previous: Path | None) -> dict | None:
    if previous is None:
        return None
    try:
        data = json.loads(Path(previous).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) and data.get("schema") == JSON_SCHEMA else None
    except (OSError, ValueError):
        return None


def to_json_dict(sv: SiteValidation, timings: dict, paths: dict | None = None) -> dict:
    """The machine-readable record of a validation (no identifiers; read by the next run)."""
    results = sv.results.astype(object).where(sv.results.notna(), None)
    return {
        "schema": JSON_SCHEMA, "site_id": sv.site_id, "site_dir": str(sv.site_dir) if sv.site_dir else None,
        "validated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "status": sv.status, "exit_code": sv.exit_code, "message": sv.message,
        "suite_versions": sv.suite_versions, "row_counts": sv.row_counts,
        "files": {t: {"path": str(p), "bytes": p.stat().st_size} for t, p in (paths or {}).items() if p.exists()},
        "read_errors": sv.read_errors, "failures": sv.failures,
        "results": results.to_dict(orient="records"),
        "completeness_by_table": sv.completeness_by_table.to_dict(orient="records"),
        "completeness_by_month": sv.completeness.to_dict(orient="records"),
        "timings": {k: round(v, 4) for k, v in timings.items()},
    }


def _finish(sv: SiteValidation, restricted_dir: Path | None, prev: dict | None, samples: pd.DataFrame | None,
            t0: float, timings: dict, paths: dict | None = None) -> SiteValidation:
    from pcref_eval.contracts.report import compare_runs, render_report

    sv.changes = compare_runs(prev, to_json_dict(sv, timings, paths)) if prev is not None else None
    timings["total_seconds"] = time.perf_counter() - t0
    sv.timings = dict(timings)
    if restricted_dir is None:
        return sv
    restricted_dir = Path(restricted_dir)
    restricted_dir.mkdir(parents=True, exist_ok=True)
    if samples is not None and len(samples):
        sv.samples_path = restricted_dir / SAMPLES_NAME
        _atomic_write(sv.samples_path, samples.to_csv(index=False, lineterminator="\n"))
    sv.report_html = restricted_dir / REPORT_NAME
    _atomic_write(sv.report_html, render_report(sv, prev))
    sv.json_path = restricted_dir / JSON_NAME
    record = _json_clean(to_json_dict(sv, timings, paths))
    _atomic_write(sv.json_path, json.dumps(record, indent=1, default=_json_default, allow_nan=False) + "\n")
    return sv


def _json_clean(obj: Any):
    """NaN/NA to null, numpy scalars to Python (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_clean(v) for v in obj]
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if np.isnan(obj) or np.isinf(obj) else float(obj)
    try:
        if pd.isna(obj):
            return None
    except (TypeError, ValueError):
        pass
    return obj


def _json_default(obj: Any):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return None if np.isnan(obj) else float(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


__all__ = ["SiteValidation", "validate_site", "ethnicity_completeness", "engine_supports"]
