"""Read a site extract folder into typed pandas tables, with errors a person can act on.

Every failure raises :class:`ExtractError` whose message names the file, table, column and
example rows (row numbers are 1-based data rows, i.e. excluding the CSV header). Identifier
values are never quoted in messages (they may be patient-level); row numbers are.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from pcref_eval.schema import DATE_FORMAT, DATETIME_FORMATS, POPULATION_SCHEMA, TABLE_SCHEMAS, ColumnType

MAX_EXAMPLE_ROWS = 5


class ExtractError(ValueError):
    """An extract that cannot be read; the message names file, table, column and rows."""

    def __init__(self, message: str, *, file: Path | None = None, table: str | None = None,
                 column: str | None = None, rows: list[int] | None = None):
        super().__init__(message)
        self.file, self.table, self.column, self.rows = file, table, column, rows or []


@dataclass(frozen=True)
class SiteInfo:
    """``site.yml``: the site's id, name, PCREF go-live date and extract date.

    Optional: ``icb`` (ODS code of the site's Integrated Care Board, e.g. ``QKK``) and ``ods_code``
    (the trust's ODS code, e.g. ``RV5``), used to benchmark the site against NHS England's figures.
    """

    site_id: str
    name: str
    pcref_go_live: date
    extract_date: date
    icb: str | None = None
    ods_code: str | None = None


@dataclass
class SiteExtract:
    """One site's typed tables, catchment population and site information."""

    folder: Path
    info: SiteInfo
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    population: pd.DataFrame | None = None

    def __getitem__(self, table: str) -> pd.DataFrame:
        return self.tables[table]


def table_path(folder: Path, table: str) -> Path:
    """The file holding ``table`` in ``folder``: ``<table>.parquet`` if present, else ``<table>.csv``."""
    for suffix in (".parquet", ".csv"):
        p = folder / f"{table}{suffix}"
        if p.exists():
            return p
    present = sorted(p.name for p in folder.iterdir() if p.suffix in (".csv", ".parquet")) if folder.is_dir() else []
    close = difflib.get_close_matches(f"{table}.csv", present, n=1, cutoff=0.75)
    hint = f" A file named {close[0]} is there: rename it." if close else ""
    cols = TABLE_SCHEMAS.get(table) or POPULATION_SCHEMA
    raise ExtractError(f"{folder}: table '{table}' is missing: expected {table}.csv or {table}.parquet in the site "
                       f"folder, with columns {list(cols)}.{hint} Files present: {present or 'none'}.",
                       file=folder / f"{table}.csv", table=table)


def read_site_info(folder: Path) -> SiteInfo:
    """Read and check ``site.yml``."""
    path = folder / "site.yml"
    if not path.is_file():
        raise ExtractError(f"{path}: site.yml is missing; it must give site_id, name, pcref_go_live, extract_date",
                           file=path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ExtractError(f"{path}: site.yml is not readable YAML ({exc})", file=path) from None
    missing = [k for k in ("site_id", "name", "pcref_go_live", "extract_date") if k not in raw]
    if missing:
        raise ExtractError(f"{path}: site.yml lacks key(s) {missing}", file=path)
    codes = {}
    for key in ("icb", "ods_code"):  # optional ODS codes (benchmarking against NHS England's statistics)
        value = raw.get(key)
        if value is None or str(value).strip() == "":
            continue
        code = str(value).strip().upper()
        if not re.fullmatch(r"[A-Z0-9]{3,5}", code):
            raise ExtractError(f"{path}: site.yml key '{key}' is {value!r}; expected an ODS code of 3 to 5 letters "
                               f"or digits (e.g. icb: QKK, ods_code: RV5)", file=path, column=key)
        codes[key] = code
    try:
        return SiteInfo(str(raw["site_id"]), str(raw["name"]),
                        _to_date(raw["pcref_go_live"]), _to_date(raw["extract_date"]), **codes)
    except ValueError as exc:
        raise ExtractError(f"{path}: site.yml has an invalid date ({exc}); use YYYY-MM-DD", file=path) from None


def read_raw_table(folder: Path, table: str, columns: dict[str, ColumnType] | None = None) -> tuple[pd.DataFrame, Path]:
    """Read a table as strings (empty cells missing), checking the file and required columns.

    Every failure is an :class:`ExtractError` naming the file, table, column and example rows:
    missing or empty file, unreadable or corrupt Parquet, wrong delimiter, non-UTF-8 text,
    rows with more fields than the header, or a missing required column.
    """
    folder = Path(folder)
    columns = columns or (TABLE_SCHEMAS[table] if table != "population" else POPULATION_SCHEMA)
    path = table_path(folder, table) if table != "population" else folder / "population.csv"
    if not path.exists():
        raise ExtractError(f"{path}: table '{table}' is missing (expected columns {list(columns)})",
                           file=path, table=table)
    if path.is_dir():
        raise ExtractError(f"{path}: table '{table}' is a folder, not a file", file=path, table=table)
    if path.stat().st_size == 0:
        raise ExtractError(f"{path}: table '{table}' is an empty file (0 bytes: no header, no rows); expected a "
                           f"header row with columns {list(columns)} and one row per record", file=path, table=table)
    df = _read_parquet(path, table, columns) if path.suffix == ".parquet" else _read_csv(path, table, columns)
    check_columns(df, path, table, columns)
    return df, path


def _read_csv(path: Path, table: str, columns: dict[str, ColumnType] | None = None) -> pd.DataFrame:
    columns = columns or {}
    df = _read_csv_fast(path)
    if df is not None:
        return df
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise _not_utf8(path, table) from None
    except pd.errors.ParserError as exc:
        raise _parser_error(path, table, exc) from None
    except pd.errors.EmptyDataError:
        raise ExtractError(f"{path}: table '{table}' has no header row (the file holds only blank lines); "
                           f"expected columns {list(columns)}", file=path, table=table) from None
    except OSError as exc:
        raise ExtractError(f"{path}: table '{table}' cannot be read ({exc.strerror or exc})",
                           file=path, table=table) from None
    if not isinstance(df.index, pd.RangeIndex):
        # pandas silently uses the first column as the index when every row has one field more
        # than the header: the columns would be shifted by one
        raise ExtractError(f"{path}: table '{table}': the data rows have one field more than the header row "
                           f"({len(df.columns)} column names), e.g. data rows [1, 2, 3]; a stray comma at the end "
                           f"of each line or a missing header name?", file=path, table=table, rows=[1, 2, 3])
    return df


def _read_csv_fast(path: Path) -> pd.DataFrame | None:
    """Arrow's multi-threaded CSV reader for well-formed files (several times faster on large
    extracts); None on any problem, so the pandas reader runs and explains it precisely."""
    try:
        import pyarrow  # noqa: F401  (the pyarrow engine needs it)

        with open(path, "rb") as fh:
            if fh.read(3) == b"\xef\xbb\xbf":
                return None  # a byte-order mark: let the pandas reader strip it
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], engine="pyarrow")
    except Exception:  # noqa: BLE001 - any failure: the careful reader gives the message
        return None
    if not isinstance(df.index, pd.RangeIndex) or any(str(c).startswith("Unnamed") for c in df.columns):
        return None
    return df


def _not_utf8(path: Path, table: str) -> ExtractError:
    """Locate the first byte that is not UTF-8: line, data row and column (values are not quoted)."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
        start = 0
    except UnicodeDecodeError as exc:
        start = exc.start
    line_start = data.rfind(b"\n", 0, start) + 1
    line = data.count(b"\n", 0, start) + 1
    header = data.split(b"\n", 1)[0].decode("utf-8", errors="replace").lstrip("\ufeff").strip().split(",")
    field_no = data[line_start:start].count(b",")
    column = header[field_no] if line > 1 and field_no < len(header) else None
    where = f"column '{column}', " if column else ""
    rows = [line - 1] if line > 1 else []
    row_text = f"data row {line - 1} (line {line})" if line > 1 else "the header row (line 1)"
    return ExtractError(f"{path}: table '{table}' is not UTF-8 text: byte 0x{data[start]:02x} at {where}{row_text}, "
                        f"byte offset {start}. It was probably saved as Windows-1252/Latin-1; re-export it as UTF-8.",
                        file=path, table=table, column=column, rows=rows)


def _parser_error(path: Path, table: str, exc: Exception) -> ExtractError:
    msg = str(exc).strip()
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", msg)
    if m:
        expected, line, saw = (int(g) for g in m.groups())
        return ExtractError(f"{path}: table '{table}': data row {line - 1} (line {line}) has {saw} fields but the "
                            f"header has {expected}: an unquoted comma inside a value, or a wrong delimiter?",
                            file=path, table=table, rows=[line - 1])
    return ExtractError(f"{path}: table '{table}' could not be parsed as comma-separated values ({msg})",
                        file=path, table=table)


def _read_parquet(path: Path, table: str, columns: dict[str, ColumnType] | None = None) -> pd.DataFrame:
    columns = columns or {}
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        first = str(exc).splitlines()[0] if str(exc) else "corrupt"
        raise ExtractError(f"{path}: table '{table}' is not a readable Parquet file ({type(exc).__name__}: {first}). "
                           f"The file may be truncated or not Parquet at all; re-export it (expected columns "
                           f"{list(columns)})", file=path, table=table) from None
    return pd.DataFrame({c: _as_text(df[c], columns.get(c)) for c in df.columns})


def _as_text(col: pd.Series, kind: ColumnType | None) -> pd.Series:
    """A Parquet column as the text a CSV export would hold (typed dates and numbers included)."""
    missing = col.isna().to_numpy()
    if pd.api.types.is_datetime64_any_dtype(col):
        text = col.dt.strftime(DATE_FORMAT if kind == "date" else "%Y-%m-%dT%H:%M:%S").astype(object)
    elif pd.api.types.is_float_dtype(col):
        vals = col.to_numpy(dtype="float64", na_value=np.nan)
        text = pd.Series(vals.astype(str), index=col.index, dtype=object)
        whole = np.isfinite(vals) & (np.mod(vals, 1, where=np.isfinite(vals), out=np.ones_like(vals)) == 0)
        text[whole] = vals[whole].astype(np.int64).astype(str)  # 1990.0 -> "1990" (ints with nulls)
    else:
        text = col.astype(object).map(str)
    text[missing] = None
    out = text.astype("str")
    return out.mask(out == "")


def check_columns(df: pd.DataFrame, path: Path, table: str, columns: dict[str, ColumnType]) -> None:
    """Raise if a required column is missing; detect a wrong delimiter (one merged header column)."""
    missing = [c for c in columns if c not in df.columns]
    if not missing:
        return
    if len(df.columns) == 1:
        header = str(df.columns[0])
        sep = next((s for s in (";", "\t", "|") if s in header), None)
        if sep is not None:
            raise ExtractError(f"{path}: table '{table}' looks delimited by {sep!r}, not commas: the header "
                               f"{header[:120]!r} was read as one column, so columns {missing} were not found "
                               f"(every data row, e.g. rows [1, 2, 3], is one field). Re-export it comma-separated.",
                               file=path, table=table, column=missing[0], rows=[1, 2, 3][:len(df)])
    hints = []
    for col in missing:
        close = difflib.get_close_matches(col, [str(c) for c in df.columns], n=1, cutoff=0.6)
        if close:
            hints.append(f"'{close[0]}' for '{col}'?")
    hint = f" Did you mean {', '.join(hints)}" if hints else ""
    raise ExtractError(f"{path}: table '{table}' lacks required column(s) {missing} (all {len(df)} data rows "
                       f"lack it); the header has {list(df.columns)}.{hint}",
                       file=path, table=table, column=missing[0])


def parse_columns(df: pd.DataFrame, path: Path, table: str, columns: dict[str, ColumnType]) -> pd.DataFrame:
    """Convert string columns to their logical types; raise naming the column and rows that fail."""
    out = df.copy()
    for col, kind in columns.items():
        raw = df[col]
        if kind == "date":
            parsed = pd.to_datetime(raw, format=DATE_FORMAT, errors="coerce")
        elif kind == "datetime":
            parsed = _parse_datetime(raw)
        elif kind in ("int", "float"):
            parsed = pd.to_numeric(raw, errors="coerce")
            if kind == "int":
                bad_int = parsed.notna() & (parsed % 1 != 0)
                parsed = parsed.where(~bad_int)
                parsed = parsed.astype("Int64") if not bad_int.any() else parsed
        else:
            out[col] = raw.astype("string").str.strip()
            continue
        failed = raw.notna() & parsed.isna()
        if failed.any():
            rows = (failed[failed].index[:MAX_EXAMPLE_ROWS] + 1).tolist()
            what = {"date": "dates (YYYY-MM-DD)", "datetime": "date-times (YYYY-MM-DDTHH:MM)"}.get(kind, f"{kind}s")
            raise ExtractError(f"{path}: table '{table}', column '{col}': {int(failed.sum())} value(s) are not valid "
                               f"{what}, e.g. data rows {rows}", file=path, table=table, column=col, rows=rows)
        out[col] = parsed
    return out


def _parse_datetime(raw: pd.Series) -> pd.Series:
    parsed = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns]")
    for fmt in DATETIME_FORMATS:
        todo = parsed.isna() & raw.notna()
        if not todo.any():
            break
        parsed[todo] = pd.to_datetime(raw[todo], format=fmt, errors="coerce")
    return parsed


def read_table(folder: Path, table: str) -> pd.DataFrame:
    """Read one table of a site folder with typed columns (strings, dates, numbers)."""
    columns = TABLE_SCHEMAS[table] if table != "population" else POPULATION_SCHEMA
    df, path = read_raw_table(folder, table, columns)
    return parse_columns(df, path, table, columns)


def load_site(folder: str | Path, tables: list[str] | None = None) -> SiteExtract:
    """Load a site extract folder: ``site.yml``, typed tables and ``population.csv``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ExtractError(f"{folder}: site folder not found", file=folder)
    info = read_site_info(folder)
    site = SiteExtract(folder=folder, info=info)
    for table in tables or list(TABLE_SCHEMAS):
        site.tables[table] = read_table(folder, table)
    site.population = read_table(folder, "population")
    return site


def _to_date(value) -> date:
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
