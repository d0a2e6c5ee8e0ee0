"""Typed evaluation configuration, read from YAML.

A wrong config fails with :class:`ConfigError`: one line per problem, naming the file and the key
(``config.yml: sites[0].path: field required``), with a "did you mean" suggestion (difflib) for a
misspelt key. Dates are read as text and validated by pydantic, so an impossible date
(``2024-02-30``) is reported against its key like any other bad value. Relative paths resolve
against the config file's folder; :func:`check_site_folders` refuses sites whose folder is missing.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import types
import typing
from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pcref_eval.ethnicity import DEFAULT_REFERENCE, SCHEMES, group_order
from pcref_eval.measures.definitions import MeasureDefinition

#: MHA legal status codes counted as a detention by default: s2, s3, s4, and criminal-justice
#: disposals 07-18 (s35-s48), Criminal Procedure (Insanity) Act 31, s45A 34/37.
DEFAULT_DETENTION_CODES = ["02", "03", "04", *[f"{c:02d}" for c in range(7, 19)], "31", "34", "37"]
#: Place-of-safety holds (s135, s136), reported as a separate outcome.
DEFAULT_PLACE_OF_SAFETY_CODES = ["19", "20"]


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and keys."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteConfig(_Strict):
    """A site to evaluate: its id and the folder holding its extract."""

    id: str
    path: Path


class StudyConfig(_Strict):
    """The study window: index referrals are the first referral between start and end (inclusive)."""

    start: date = date(2021, 4, 1)
    end: date = date(2025, 3, 31)

    @model_validator(mode="after")
    def _ordered(self):
        if self.end <= self.start:
            raise ValueError(f"study.end ({self.end}) must be after study.start ({self.start})")
        return self


class EthnicityConfig(_Strict):
    """Grouping scheme (detailed, broad, pcref) and the reference group every ratio compares against."""

    scheme: Literal["detailed", "broad", "pcref"] = "pcref"
    reference_group: str | None = None

    @model_validator(mode="after")
    def _reference_in_scheme(self):
        if self.reference_group is not None and self.reference_group not in group_order(self.scheme):
            raise ValueError(f"ethnicity.reference_group {self.reference_group!r} is not a group of scheme "
                             f"{self.scheme!r}; choose one of {group_order(self.scheme)[:-3]}")
        return self

    @property
    def reference(self) -> str:
        return self.reference_group or DEFAULT_REFERENCE[self.scheme]


class CohortConfig(_Strict):
    """Time-to-first-detention cohort: which legal status codes count, and the minimum age."""

    detention_codes: list[str] = Field(default_factory=lambda: list(DEFAULT_DETENTION_CODES))
    place_of_safety_codes: list[str] = Field(default_factory=lambda: list(DEFAULT_PLACE_OF_SAFETY_CODES))
    min_age: int = 18


class DisclosureConfig(_Strict):
    """Statistical disclosure control applied to every released table (see pcref_eval.disclosure)."""

    #: opensafely (redact 1-7, round to 5), nhse_mha or nhse (suppress below 5, round to 5), strict (redact 1-10,
    #: round to 10); see docs/disclosure.md
    policy: Literal["opensafely", "nhse_mha", "nhse", "strict"] = "opensafely"
    threshold: int | None = None  # default: the policy's (7 opensafely, 4 nhse_mha, 10 strict)
    rounding: int | None = None   # default: the policy's (5; 10 strict), filled in on load

    @model_validator(mode="after")
    def _policy_rounding(self):
        if self.rounding is None:  # frozen model: set the policy's default once, at validation
            object.__setattr__(self, "rounding", 10 if self.policy == "strict" else 5)
        return self


class AttributionConfig(_Strict):
    """Settings of the analysis that attributes a change in the gap to PCREF (pcref_eval.attribution)."""

    #: SD across sites of a linear drift of a site's own focus/reference log hazard ratio per year, which the
    #: main estimate's interval allows for (:meth:`~pcref_eval.attribution.calendar_cox.CalendarCoxResult.effect_allowing_drift`).
    #: An assumption, stated in the report: parallel trends hold on average over sites but each site's gap may wander
    #: by about this much a year (0.02: about 2% a year on the ratio scale); 0 gives the model-based interval.
    site_drift_sd_per_year: float = Field(default=0.02, ge=0.0, le=1.0)


class OutputConfig(_Strict):
    """Where runs go and which report formats are written."""

    dir: Path = Path("outputs")
    formats: list[Literal["html", "pdf", "docx"]] = Field(default_factory=lambda: ["html"])
    #: PDF renderer: ``auto`` uses headless Chromium when installed (about 4x faster: 8.6 s against 34 s
    #: for the demo report) and WeasyPrint (pip only) otherwise; the run's manifest records which one ran.
    pdf_engine: Literal["auto", "weasyprint", "chromium"] = "auto"


class EvaluationConfig(_Strict):
    """The whole evaluation: sites, study window, grouping, disclosure, outputs, seed."""

    name: str = "PCREF evaluation"
    seed: int = 2024
    sites: list[SiteConfig] = Field(min_length=1)
    study: StudyConfig = StudyConfig()
    ethnicity: EthnicityConfig = EthnicityConfig()
    cohort: CohortConfig = CohortConfig()
    disclosure: DisclosureConfig = DisclosureConfig()
    outputs: OutputConfig = OutputConfig()
    attribution: AttributionConfig = AttributionConfig()
    measures: list[MeasureDefinition] = Field(default_factory=list)  # user-declared measures (pcref_eval.measures)

    @field_validator("sites")
    @classmethod
    def _unique_ids(cls, sites):
        ids = [s.id for s in sites]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate site ids {dupes}")
        return sites

    def hash(self) -> str:
        """SHA-256 of the canonical JSON of this config (recorded in every manifest)."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    def canonical_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def site(self, site_id: str) -> SiteConfig:
        for s in self.sites:
            if s.id == site_id:
                return s
        raise KeyError(f"no site {site_id!r} in config; sites are {[s.id for s in self.sites]}")


class _TextDatesLoader(yaml.SafeLoader):
    """YAML safe loader that leaves dates as text: PyYAML raises a bare ValueError on ``2024-02-30``."""


_TextDatesLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def load_config(path: str | Path) -> EvaluationConfig:
    """Read and validate a YAML config; resolve relative paths against the file's folder."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; give the YAML file (e.g. configs/example.yml)")
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_TextDatesLoader) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(raw).__name__}")
    try:
        config = EvaluationConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None
    return resolve_paths(config, path.parent.resolve())


def check_site_folders(config: EvaluationConfig, source: str | Path = "config") -> None:
    """Refuse, before any work, a config whose site folders are missing (or are files): one line each."""
    problems = []
    for i, site in enumerate(config.sites):
        if not site.path.exists():
            problems.append(f"{source}: sites[{i}].path: folder {site.path} does not exist (site {site.id!r})")
        elif not site.path.is_dir():
            problems.append(f"{source}: sites[{i}].path: {site.path} is a file, not a site folder (site {site.id!r})")
    if problems:
        raise ConfigError("\n".join(problems))


def resolve_paths(config: EvaluationConfig, base: Path) -> EvaluationConfig:
    """Make site and output paths absolute, relative to ``base``."""
    sites = [s.model_copy(update={"path": _abs(s.path, base)}) for s in config.sites]
    outputs = config.outputs.model_copy(update={"dir": _abs(config.outputs.dir, base)})
    return config.model_copy(update={"sites": sites, "outputs": outputs})


def _abs(p: Path, base: Path) -> Path:
    return p if p.is_absolute() else (base / p).resolve()


def _describe(exc: ValidationError, path: Path) -> str:
    """One line per problem: ``<file>: <key>: <what is wrong> (got <value>)``, suggesting a misspelt key."""
    lines = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "literal[")))]
        key = _key_path(loc)
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
            guess = difflib.get_close_matches(str(loc[-1]), _allowed_keys(loc[:-1]), n=1, cutoff=0.6)
            if guess:
                msg += f"; did you mean {_key_path([*loc[:-1], guess[0]])!r}?"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            value = err.get("input")
            if err["type"] != "missing" and isinstance(value, (str, int, float)) and not isinstance(value, bool):
                msg += f" (got {value!r})"
        lines.append(f"{path}: {key}: {msg}")
    return "\n".join(lines)


def _key_path(loc) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "(top level)"


def _allowed_keys(loc) -> list[str]:
    """The keys a config mapping at ``loc`` accepts (walking the pydantic models; [] if not a model)."""
    model = EvaluationConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
        while typing.get_origin(model) in (list, typing.Union, types.UnionType):
            model = next((a for a in typing.get_args(model) if a is not type(None)), None)
    return list(getattr(model, "model_fields", {}))


def write_config(config: EvaluationConfig, path: str | Path) -> None:
    """Write a config back to YAML (used by the demo to record what was run)."""
    Path(path).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
