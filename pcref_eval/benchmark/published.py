"""Reader for NHS England's "Mental Health Act Statistics, Annual Figures" CSV (the suppressed file).

The layout (one row per measure x demographic breakdown x organisation) has been stable since
2022-23: ``Year, Measure, measureSubcategory, Demographic, DemographicBreakdown,
OrganisationBreakdown, Datasource, OrgID, OrgName, MHSDS_Count, Acute_Count, Total_Count,
CrudeRate, StdRate, Confidence_interval``. :func:`read_mha_annual` reads any year's file in that
layout with no code change:

- column names are matched ignoring case, spaces and underscores; extra columns are kept;
- a suppressed or null value is an empty cell (``*``, ``-`` and ``:`` are read the same way);
  counts may carry thousands separators;
- a missing column, or a value that is not a number in a numeric column, raises
  :class:`MhaFileError` naming the file, the column and the CSV line numbers;
- rows whose labels do not fit their demographic (e.g. an IMD row labelled ``Male``, a ``#N/A``
  breakdown, an unknown ``OrganisationBreakdown``) are *corrupted labels*: they are dropped, never
  used, and reported in :attr:`MhaAnnual.warnings` (the shipped 2023-24 copy has 83 such rows).

``Confidence_interval`` is the 95% half-width around ``StdRate`` (NHS England's normal
approximation, see :func:`pcref_eval.benchmark.nhse.nhse_dsr`). Sub-national counts are rounded to
the nearest 5 and small counts suppressed; national ("All submissions") counts are not rounded.
"""

from __future__ import annotations

import re
import warnings as _warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

#: The published columns, in order, and the name each is given in the tidy frame.
COLUMNS = {
    "Year": "year", "Measure": "measure", "measureSubcategory": "subcategory", "Demographic": "demographic",
    "DemographicBreakdown": "breakdown", "OrganisationBreakdown": "org_level", "Datasource": "datasource",
    "OrgID": "org_code", "OrgName": "org_name", "MHSDS_Count": "mhsds_count", "Acute_Count": "acute_count",
    "Total_Count": "count", "CrudeRate": "crude_rate", "StdRate": "std_rate", "Confidence_interval": "std_ci",
}
NUMERIC = ["mhsds_count", "acute_count", "count", "crude_rate", "std_rate", "std_ci"]
#: Cell values that mean "suppressed / not available" in NHS England's files.
NULL_MARKERS = {"", "*", "-", ":", "..", "null", "NULL", "NA", "n/a"}

#: Organisation levels NHS England publishes (national, commissioner, provider).
ORG_LEVELS = {"All submissions", "ICB", "Sub ICB", "NHS Trust", "Independent Health Provider",
              "Commissioning Region", "Region", "CCG", "STP", "Provider"}
NATIONAL = "All submissions"
#: The five broad groups of the published file (NHS England's names), in display order.
BROAD_GROUPS = ["Asian or Asian British", "Black or Black British", "Mixed", "Other Ethnic Groups", "White"]
DETAILED_GROUPS = {
    "British", "Irish", "Any Other White background", "White and Black Caribbean", "White and Black African",
    "White and Asian", "Any Other Mixed background", "Indian", "Pakistani", "Bangladeshi",
    "Any Other Asian background", "Caribbean", "African", "Any Other Black background", "Chinese",
    "Any Other Ethnic Group",
}
ETHNICITY_LABELS = {"All", "Unknown", "Not Known", "Not Stated", "Not stated", *BROAD_GROUPS, *DETAILED_GROUPS}
GENDER_LABELS = {"All", "All genders", "Male", "Female", "Non-binary", "Other", "Not stated", "Missing",
                 "Unknown", "Indeterminate", "Not known"}
_IMD = re.compile(r"^(All|\d{1,2}( (Most|Least|More|Less) deprived)?|Not stated/Not known/Invalid|Unknown)$")
_AGE = re.compile(r"^(All|Unknown|\d+ and (under|over)|\d+ to \d+|\d+-\d+|\d+\+)$")


def _valid_breakdown(demographic: str, label: str) -> bool:
    """True when ``label`` is a breakdown that can belong to ``demographic``."""
    if label in ("#N/A", "#VALUE!", "#REF!", ""):
        return False
    if demographic == "All":
        return label == "All"
    if demographic == "Ethnicity":
        return label in ETHNICITY_LABELS
    if demographic == "Gender":
        return label in GENDER_LABELS
    if demographic == "IMD":
        return bool(_IMD.match(label))
    if demographic == "Age":
        return bool(_AGE.match(label))
    return True  # a demographic this reader does not use: kept as published


class MhaFileError(ValueError):
    """A published MHA file that does not fit the layout: names the file, column and CSV line(s)."""

    def __init__(self, message: str, file: Path, column: str | None = None, lines: list[int] | None = None):
        super().__init__(message)
        self.file, self.column, self.lines = file, column, lines or []


@dataclass
class MhaAnnual:
    """One published MHA annual file, tidy: ``data`` has the columns of :data:`COLUMNS` (snake case).

    ``data["line"]`` is the CSV line number of each row (header = line 1); rows with corrupted labels
    are in ``dropped`` (never used) and described in ``warnings``.
    """

    file: Path
    data: pd.DataFrame
    dropped: pd.DataFrame
    warnings: list[str] = field(default_factory=list)

    @property
    def years(self) -> list[str]:
        return sorted(self.data["year"].unique())

    @property
    def year(self) -> str:
        """The (single) reporting year, e.g. '2023/24'."""
        ys = self.years
        if len(ys) != 1:
            raise ValueError(f"{self.file}: holds {len(ys)} years {ys}; select one with .for_year()")
        return ys[0]

    def select(self, measure: str, demographic: str = "Ethnicity", org_level: str | None = None,
               subcategory: str = "All") -> pd.DataFrame:
        """Rows for one measure and demographic (and organisation level), e.g. all ICB ethnicity rows."""
        d = self.data
        keep = (d["measure"] == measure) & (d["demographic"] == demographic) & (d["subcategory"] == subcategory)
        if org_level is not None:
            keep &= d["org_level"] == org_level
        return d[keep].reset_index(drop=True)

    def measures(self) -> list[str]:
        return sorted(self.data["measure"].unique())


def shipped_files() -> list[Path]:
    """The MHA annual CSVs shipped with the package (``pcref_eval/data/public/mha_annual_*.csv``)."""
    root = Path(str(resources.files("pcref_eval") / "data" / "public"))
    return sorted(root.glob("mha_annual_*.csv"))


def public_data_dir() -> Path:
    """Folder of the shipped public data (NHS England and ONS, OGL v3)."""
    return Path(str(resources.files("pcref_eval") / "data" / "public"))


def _norm(name: str) -> str:
    return re.sub(r"[\s_]+", "", str(name)).lower()


def _csv_lines(path: Path) -> np.ndarray:
    """The physical line number (header = 1) of each data record (quoted newlines counted)."""
    import csv
    lines, out = [], []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        for _ in reader:
            out.append(reader.line_num)
        lines = out
    return np.asarray(lines, dtype=int)


def _lines_text(lines) -> str:
    lines = [int(x) for x in lines]
    more = f" and {len(lines) - 5} more" if len(lines) > 5 else ""
    return f"line{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines[:5]))}{more}"


def read_mha_annual(path: str | Path, warn: bool = True) -> MhaAnnual:
    """Read and check one published MHA annual CSV (see the module docstring for the rules).

    Raises :class:`MhaFileError` for a file that does not fit; corrupted labels only warn
    (``warnings.warn`` when ``warn``; always listed in the result's ``warnings``).
    """
    path = Path(path)
    if not path.is_file():
        raise MhaFileError(f"{path}: MHA annual statistics file not found", path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise MhaFileError(f"{path}: not UTF-8 text; save the CSV as UTF-8", path) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise MhaFileError(f"{path}: not a readable CSV ({str(exc).strip()})", path) from None
    by_norm = {_norm(c): c for c in raw.columns}
    missing = [c for c in COLUMNS if _norm(c) not in by_norm]
    if missing:
        raise MhaFileError(f"{path}: column(s) {missing} missing; an NHS England MHA annual CSV has columns "
                           f"{list(COLUMNS)} (found {list(raw.columns)})", path, column=missing[0])
    df = pd.DataFrame({new: raw[by_norm[_norm(old)]].str.strip() for old, new in COLUMNS.items()})
    extra = [c for c in raw.columns if _norm(c) not in {_norm(k) for k in COLUMNS}]
    for c in extra:
        df[c] = raw[c]
    df["line"] = _csv_lines(path)[: len(df)] if len(df) else np.array([], dtype=int)
    for published, col in COLUMNS.items():
        if col not in NUMERIC:
            continue
        text = df[col].str.replace(",", "", regex=False)
        text = text.where(~text.isin(NULL_MARKERS), None)
        values = pd.to_numeric(text, errors="coerce")
        bad = values.isna() & text.notna()
        if bad.any():
            rows = df.loc[bad, "line"].tolist()
            example = df.loc[bad, col].iloc[0]
            raise MhaFileError(f"{path}: column '{published}' has non-numeric value(s) at {_lines_text(rows)} "
                               f"(e.g. {example!r}); expected a number or an empty (suppressed) cell",
                               path, column=published, lines=rows)
        if col in ("mhsds_count", "acute_count", "count") and (values < 0).any():
            rows = df.loc[values < 0, "line"].tolist()
            raise MhaFileError(f"{path}: column '{published}' has negative count(s) at {_lines_text(rows)}",
                               path, column=published, lines=rows)
        df[col] = values.astype(float)
    empty_year = df["year"] == ""
    if empty_year.any():
        rows = df.loc[empty_year, "line"].tolist()
        raise MhaFileError(f"{path}: column 'Year' is empty at {_lines_text(rows)}", path, column="Year", lines=rows)
    bad_org = ~df["org_level"].isin(ORG_LEVELS)
    bad_label = ~np.array([_valid_breakdown(d, b) for d, b in zip(df["demographic"], df["breakdown"])], dtype=bool)
    notes = []
    if bad_org.any():
        vals = sorted(df.loc[bad_org, "org_level"].unique())
        notes.append(f"{path.name}: {int(bad_org.sum())} row(s) with an unrecognised OrganisationBreakdown "
                     f"{vals} at {_lines_text(df.loc[bad_org, 'line'])}: not used")
    only_label = bad_label & ~bad_org
    if only_label.any():
        kinds = df.loc[only_label].groupby("demographic").size().to_dict()
        notes.append(f"{path.name}: {int(only_label.sum())} row(s) whose DemographicBreakdown does not fit their "
                     f"Demographic (corrupted labels, by demographic: {kinds}) at "
                     f"{_lines_text(df.loc[only_label, 'line'])}: not used")
    drop = bad_org | bad_label
    if warn:
        for n in notes:
            _warnings.warn(n, MhaLabelWarning, stacklevel=2)
    return MhaAnnual(path, df[~drop].reset_index(drop=True), df[drop].reset_index(drop=True), notes)


class MhaLabelWarning(UserWarning):
    """Rows of a published file with corrupted labels were dropped."""


def load_mha(paths: list[str | Path] | None = None, warn: bool = True) -> dict[str, MhaAnnual]:
    """Published files by reporting year (``{'2023/24': MhaAnnual, ...}``): the shipped files plus ``paths``.

    A user's file for a year already shipped replaces the shipped one. Each file must hold one year.
    """
    out: dict[str, MhaAnnual] = {}
    for p in [*shipped_files(), *(Path(x) for x in (paths or []))]:
        mha = read_mha_annual(p, warn=warn)
        ys = mha.years
        if len(ys) != 1:
            raise MhaFileError(f"{p}: column 'Year' holds {len(ys)} values {ys[:5]}; one file per reporting year",
                               Path(p), column="Year")
        out[ys[0]] = mha
    return dict(sorted(out.items()))


def latest(files: dict[str, MhaAnnual]) -> MhaAnnual:
    """The most recent reporting year."""
    if not files:
        raise MhaFileError("no MHA annual statistics file found", Path("."))
    return files[max(files)]
