"""Vectorised pandas execution of data-contract expectations.

The suites are great-expectations expectations (parsed strictly by :mod:`.suite`); this module
evaluates the common types directly with vectorised pandas, reproducing great-expectations'
result semantics (element, missing and unexpected counts, ``unexpected_percent`` of non-missing
values, ``mostly``, vacuous success on no rows), and hands any other type to great-expectations
itself (:mod:`.gx_backend`). ``tests/contracts/test_engine_vs_gx.py`` checks the two agree.

What each expectation sees (documented in data_contracts/README.md):

- *Text* checks (null, unique, in set, regex, strftime format, recorded) read the raw text of
  the extract exactly as written, so bad values are counted rather than crashing a parser.
- *Value* checks (between, column pair comparisons, dates against the extract date, birth and
  death) read values typed by ``pcref_eval.schema``: dates and date-times parsed, numbers
  converted; a value that does not parse is *missing* for them (the format check counts it).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Callable

import numpy as np
import pandas as pd

from pcref_eval.contracts.suite import ALL_TABLE_SCHEMAS, ExpectationSpec
from pcref_eval.schema import DATE_FORMAT, DATETIME_FORMATS

#: GX types whose fallback evaluation reads raw text; every other fallback type reads typed values.
TEXT_TYPES = {
    "expect_column_values_to_not_be_null", "expect_column_values_to_be_null", "expect_column_values_to_be_unique",
    "expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set",
    "expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex",
    "expect_column_values_to_match_regex_list", "expect_column_values_to_not_match_regex_list",
    "expect_column_values_to_match_strftime_format", "expect_column_values_to_be_dateutil_parseable",
    "expect_column_values_to_match_like_pattern", "expect_column_values_to_not_match_like_pattern",
    "expect_column_values_to_match_like_pattern_list", "expect_column_values_to_not_match_like_pattern_list",
    "expect_column_value_lengths_to_be_between", "expect_column_value_lengths_to_equal",
    "expect_column_values_to_be_json_parseable", "expect_column_values_to_match_json_schema",
    "expect_column_distinct_values_to_be_in_set", "expect_column_distinct_values_to_contain_set",
    "expect_column_distinct_values_to_equal_set", "expect_column_most_common_value_to_be_in_set",
    "expect_compound_columns_to_be_unique", "expect_select_column_values_to_be_unique_within_record",
    "expect_column_pair_values_to_be_equal", "expect_column_pair_values_to_be_in_set",
    "expect_column_proportion_of_non_null_values_to_be_between", "expect_column_unique_value_count_to_be_between",
    "expect_column_proportion_of_unique_values_to_be_between", "expect_column_values_to_be_of_type",
    "expect_column_values_to_be_in_type_list", "expect_table_columns_to_match_set",
    "expect_table_columns_to_match_ordered_list", "expect_table_column_count_to_equal",
    "expect_table_column_count_to_be_between", "expect_table_row_count_to_be_between",
    "expect_table_row_count_to_equal", "expect_column_to_exist", "expect_multicolumn_values_to_be_equal",
}
SAMPLE_ROWS = 20


@dataclass
class Outcome:
    """The result of one expectation on one site (aggregate counts plus sample row positions)."""

    success: bool
    element_count: int | None = None
    missing_count: int | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    observed: Any = None
    sample_rows: list[int] = field(default_factory=list)  # 0-based positions in the table
    engine: str = "workbench"


class SiteData:
    """A site's raw tables with cached typed columns and person look-ups for the engine."""

    def __init__(self, tables: dict[str, pd.DataFrame], extract_date: date | None = None,
                 pcref_go_live: date | None = None):
        self.tables = tables
        self.extract_date = extract_date
        self.pcref_go_live = pcref_go_live
        self._typed: dict[tuple[str, str], pd.Series] = {}
        self._cache: dict[tuple, Any] = {}

    # ---------------------------------------------------------------- typed values
    def typed(self, table: str, column: str) -> pd.Series:
        """``table.column`` typed per the schema: dates/date-times parsed, numbers converted (else raw)."""
        key = (table, column)
        if key not in self._typed:
            raw = self.tables[table][column]
            kind = ALL_TABLE_SCHEMAS.get(table, {}).get(column)
            if kind == "date":
                out = parse_strftime(raw, DATE_FORMAT)
            elif kind == "datetime":
                out = parse_datetimes(raw)
            elif kind in ("int", "float"):
                out = to_float(raw)
            else:
                out = raw
            self._typed[key] = out
        return self._typed[key]

    def typed_frame(self, table: str) -> pd.DataFrame:
        df = self.tables[table]
        return pd.DataFrame({c: self.typed(table, c) if c in ALL_TABLE_SCHEMAS.get(table, {}) else df[c]
                             for c in df.columns})

    def parameters(self) -> dict[str, Any]:
        p: dict[str, Any] = {}
        if self.extract_date:
            p["extract_date"] = self.extract_date.isoformat()
            p["extract_year"] = self.extract_date.year
        if self.pcref_go_live:
            p["pcref_go_live"] = self.pcref_go_live.isoformat()
        return p

    def cached(self, key: tuple, fn: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def duplicated(self, table: str, column: str, keep) -> np.ndarray:
        """``Series.duplicated`` of a raw column (cached: unique, recorded and people look-ups share it)."""
        return self.cached(("duplicated", table, column, keep),
                           lambda: self.tables[table][column].duplicated(keep=keep).to_numpy())

    def person_positions(self, table: str, person_column: str) -> np.ndarray:
        """For each row of ``table``, the row of its person in the de-duplicated people table (-1: none)."""
        return self.cached(("person_pos", table, person_column),
                           lambda: positions(self.tables[table][person_column], self._people_first()["person_id"],
                                             lambda: self.key_index("people", "person_id")))

    def key_index(self, table: str, column: str) -> pd.Index:
        """A hashed index of the distinct non-empty values of ``table.column`` (cached)."""
        def compute():
            if (table, column) == ("people", "person_id"):
                return pd.Index(self._people_first()["person_id"])
            return pd.Index(self.unique_keys(table, column))
        return self.cached(("key_index", table, column), compute)

    def unique_keys(self, table: str, column: str) -> pd.Series:
        return self.cached(("unique_keys", table, column),
                           lambda: self.tables[table][column].dropna().drop_duplicates().reset_index(drop=True))

    def _people_first(self) -> pd.DataFrame:
        def compute():
            people = self.tables["people"]
            keep = ~self.duplicated("people", "person_id", "first") & people["person_id"].notna().to_numpy()
            return pd.DataFrame({"person_id": people["person_id"][keep].to_numpy(),
                                 "yob": self.typed("people", "year_of_birth")[keep].to_numpy(),
                                 "death": self.typed("people", "date_of_death")[keep].to_numpy()})
        return self.cached(("people_first",), compute)

    def people_attr(self, name: str) -> np.ndarray:
        return self._people_first()[name].to_numpy()


# ------------------------------------------------------------------------------------ parsing
def to_float(raw: pd.Series) -> pd.Series:
    """Text to float64 like ``pd.to_numeric(errors="coerce")``; Arrow's cast when every value parses (fast)."""
    arr = getattr(raw.array, "_pa_array", None)
    if arr is not None:
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            values = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
            return pd.Series(values, index=raw.index, dtype="float64")
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            pass  # some value does not parse: cast the plain numbers with Arrow, the rest with pandas
        plain = pc.match_substring_regex(arr, _PLAIN_NUMBER).fill_null(False).to_numpy(zero_copy_only=False)
        values = np.full(len(raw), np.nan)
        values[plain] = pc.cast(pc.filter(arr, pa.array(plain)), pa.float64()).to_numpy(zero_copy_only=False)
        rest = ~plain & raw.notna().to_numpy()
        if rest.any():
            values[rest] = pd.to_numeric(raw[rest], errors="coerce").astype("float64").to_numpy()
        return pd.Series(values, index=raw.index, dtype="float64")
    return pd.to_numeric(raw, errors="coerce").astype("float64")


_PLAIN_NUMBER = r"^-?(\d+(\.\d*)?|\.\d+)$"


def positions(query: pd.Series, keys: pd.Series, index: Callable[[], pd.Index] | None = None) -> np.ndarray:
    """Position of each ``query`` value in ``keys`` (unique, non-null), -1 where absent or missing.

    A large query uses Arrow's ``index_in`` (hashes ``keys`` per call); a small one a cached
    ``pd.Index`` of ``keys`` (hashed once), so many small tables against 1M people stay cheap.
    """
    if len(query) == 0:
        return np.empty(0, dtype=np.int64)
    if len(keys) == 0:
        return np.full(len(query), -1, dtype=np.int64)
    qa, ka = getattr(query.array, "_pa_array", None), getattr(keys.array, "_pa_array", None)
    if qa is not None and ka is not None and 4 * len(query) >= len(keys):
        import pyarrow.compute as pc

        found = pc.index_in(qa, value_set=ka.combine_chunks() if hasattr(ka, "combine_chunks") else ka)
        return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    idx = index() if index is not None else pd.Index(keys)
    return idx.get_indexer(query).astype(np.int64)


def parse_strftime(raw: pd.Series, fmt: str) -> pd.Series:
    """Parse with ``fmt`` exactly as ``datetime.strptime`` would accept (else NaT), vectorised."""
    parsed = pd.to_datetime(raw, format=fmt, errors="coerce")
    if parsed.notna().any():
        # pandas also accepts a leading minus (negative years) and year 0, which strptime rejects
        bad = parsed.notna() & (raw.str.startswith("-").fillna(False).astype(bool) | (parsed.dt.year == 0))
        if bad.any():
            parsed = parsed.mask(bad)
    return parsed


def parse_datetimes(raw: pd.Series) -> pd.Series:
    """Parse date-times in any of the schema's accepted layouts (see schema.DATETIME_FORMATS)."""
    out = parse_strftime(raw, DATETIME_FORMATS[0])
    for fmt in DATETIME_FORMATS[1:]:
        todo = out.isna() & raw.notna()
        if not todo.any():
            break
        out = out.where(~todo, parse_strftime(raw[todo], fmt).reindex(raw.index))
    return out


# ------------------------------------------------------------------------------------ results
def _resolve(value, params: dict):
    if isinstance(value, dict) and "$PARAMETER" in value:
        return params[value["$PARAMETER"]]
    return value


def _map_outcome(unexpected: np.ndarray, considered: int, element: int, mostly: float,
                 percent_of: int | None = None) -> Outcome:
    """GX column-map semantics: percent of considered rows; vacuous success on none considered."""
    count = int(unexpected.sum())
    denom = considered if percent_of is None else percent_of
    percent = 100.0 * count / denom if denom else None
    if element == 0 or considered == 0:
        success = True
    else:
        success = (float(considered) - float(count)) / float(considered) >= mostly
    rows = np.flatnonzero(unexpected)[:SAMPLE_ROWS].tolist() if count else []
    return Outcome(success=bool(success), element_count=int(element), missing_count=int(element - considered),
                   unexpected_count=count, unexpected_percent=percent, sample_rows=rows)


def _notna(s: pd.Series) -> np.ndarray:
    return s.notna().to_numpy()


# ------------------------------------------------------------------------------------ GX types
def _not_null(data: SiteData, spec, kw):
    s = data.tables[spec.table][kw["column"]]
    nulls = ~_notna(s)
    out = _map_outcome(nulls, len(s), len(s), kw.get("mostly", 1))
    out.missing_count = None  # GX reports no missing_count for this type
    return out


def _unique(data: SiteData, spec, kw):
    s = data.tables[spec.table][kw["column"]]
    nn = _notna(s)
    dup = data.duplicated(spec.table, kw["column"], False) & nn
    return _map_outcome(dup, int(nn.sum()), len(s), kw.get("mostly", 1))


def _compound_unique(data: SiteData, spec, kw):
    df = data.tables[spec.table][list(kw["column_list"])]
    nn = df.notna().to_numpy()
    mode = kw.get("ignore_row_if", "all_values_are_missing")
    considered = {"all_values_are_missing": nn.any(axis=1), "any_value_is_missing": nn.all(axis=1),
                  "never": np.ones(len(df), dtype=bool)}[mode]
    dup = np.zeros(len(df), dtype=bool)
    dup[considered] = df[considered].duplicated(keep=False).to_numpy()
    return _map_outcome(dup, int(considered.sum()), len(df), kw.get("mostly", 1))


def _in_set(data: SiteData, spec, kw, negate=False):
    s = data.tables[spec.table][kw["column"]]
    nn = _notna(s)
    value_set = kw.get("value_set")
    if value_set is None:
        hit = np.ones(len(s), dtype=bool)
    else:
        hit = s.isin(list(value_set)).to_numpy()
    bad = nn & (hit if negate else ~hit)
    return _map_outcome(bad, int(nn.sum()), len(s), kw.get("mostly", 1))


def _regex(data: SiteData, spec, kw, negate=False):
    s = data.tables[spec.table][kw["column"]]
    nn = _notna(s)
    match = np.zeros(len(s), dtype=bool)
    with warnings.catch_warnings():  # "pattern has match groups": irrelevant for a yes/no match
        warnings.simplefilter("ignore", UserWarning)
        match[nn] = s[nn].astype(str).str.contains(kw["regex"], regex=True).to_numpy(dtype=bool)
    bad = nn & (match if negate else ~match)
    return _map_outcome(bad, int(nn.sum()), len(s), kw.get("mostly", 1))


def _strftime(data: SiteData, spec, kw):
    s = data.tables[spec.table][kw["column"]]
    fmt = kw["strftime_format"]
    kind = ALL_TABLE_SCHEMAS.get(spec.table, {}).get(kw["column"])
    if kind == "date" and fmt == DATE_FORMAT:  # the typed view is this very parse: reuse it
        parsed = data.typed(spec.table, kw["column"])
    else:
        parsed = data.cached(("strftime", spec.table, kw["column"], fmt), lambda: parse_strftime(s, fmt))
    nn = _notna(s)
    bad = nn & ~_notna(parsed)
    return _map_outcome(bad, int(nn.sum()), len(s), kw.get("mostly", 1))


def _between(data: SiteData, spec, kw):
    params = data.parameters()
    lo, hi = _resolve(kw.get("min_value"), params), _resolve(kw.get("max_value"), params)
    s = data.typed(spec.table, kw["column"])
    if pd.api.types.is_datetime64_any_dtype(s):
        lo = pd.Timestamp(lo) if isinstance(lo, str) else lo
        hi = pd.Timestamp(hi) if isinstance(hi, str) else hi
    nn = _notna(s)
    ok = np.ones(len(s), dtype=bool)
    values = s.to_numpy()
    with np.errstate(invalid="ignore"):
        if lo is not None:
            ok &= (values > lo) if kw.get("strict_min") else (values >= lo)
        if hi is not None:
            ok &= (values < hi) if kw.get("strict_max") else (values <= hi)
    bad = nn & ~ok
    return _map_outcome(bad, int(nn.sum()), len(s), kw.get("mostly", 1))


def _pair_greater(data: SiteData, spec, kw):
    a, b = data.typed(spec.table, kw["column_A"]), data.typed(spec.table, kw["column_B"])
    na, nb = ~_notna(a), ~_notna(b)
    mode = kw.get("ignore_row_if", "both_values_are_missing")
    ignored = {"both_values_are_missing": na & nb, "either_value_is_missing": na | nb,
               "neither": np.zeros(len(a), dtype=bool)}[mode]
    with np.errstate(invalid="ignore"):
        ok = (a >= b) if kw.get("or_equal") else (a > b)
    ok = ok.fillna(False).to_numpy(dtype=bool)
    bad = ~ignored & ~ok
    considered = int((~ignored).sum())
    return _map_outcome(bad, considered, len(a), kw.get("mostly", 1))


def _column_exists(data: SiteData, spec, kw):
    present = kw["column"] in data.tables[spec.table].columns
    return Outcome(success=present, observed=present)


def _row_count(data: SiteData, spec, kw):
    params = data.parameters()
    lo, hi = _resolve(kw.get("min_value"), params), _resolve(kw.get("max_value"), params)
    n = len(data.tables[spec.table])
    ok = (lo is None or (n > lo if kw.get("strict_min") else n >= lo)) and \
         (hi is None or (n < hi if kw.get("strict_max") else n <= hi))
    return Outcome(success=bool(ok), observed=n)


# ------------------------------------------------------------------------------------ workbench types
def _exist_in_table(data: SiteData, spec, kw):
    s = data.tables[spec.table][kw["column"]]
    other_table, other_col = kw["other_table"], kw.get("other_column") or kw["column"]
    nn = _notna(s)
    if other_table == "people" and other_col == "person_id":
        found = data.person_positions(spec.table, kw["column"]) >= 0
    else:
        found = positions(s, data.unique_keys(other_table, other_col),
                          lambda: data.key_index(other_table, other_col)) >= 0
    bad = nn & ~found
    return _map_outcome(bad, int(nn.sum()), len(s), kw.get("mostly", 1))


def _not_after_extract(data: SiteData, spec, kw):
    s = data.typed(spec.table, kw["column"])
    nn = _notna(s)
    limit = pd.Timestamp(data.extract_date + timedelta(days=1))
    bad = nn & (s >= limit).to_numpy(dtype=bool)
    return _map_outcome(bad, int(nn.sum()), len(s), kw.get("mostly", 1))


def _not_before_birth(data: SiteData, spec, kw):
    s = data.typed(spec.table, kw["column"])
    pos = data.person_positions(spec.table, kw["person_column"])
    yob = data.people_attr("yob")
    person_yob = np.where(pos >= 0, yob[np.maximum(pos, 0)] if len(yob) else np.nan, np.nan)
    year = s.dt.year.to_numpy(dtype="float64", na_value=np.nan)
    considered = ~np.isnan(year) & ~np.isnan(person_yob)
    bad = considered & (year < np.where(considered, person_yob, 0))
    return _map_outcome(bad, int(considered.sum()), len(s), kw.get("mostly", 1))


def _not_after_death(data: SiteData, spec, kw):
    s = data.typed(spec.table, kw["column"])
    pos = data.person_positions(spec.table, kw["person_column"])
    death = data.people_attr("death")
    if len(death):
        person_death = pd.Series(death[np.maximum(pos, 0)]).where(pos >= 0)
    else:
        person_death = pd.Series(pd.NaT, index=range(len(s)), dtype="datetime64[ns]")
    event_day = s.dt.normalize().reset_index(drop=True)
    considered = event_day.notna().to_numpy() & person_death.notna().to_numpy()
    bad = considered & (event_day > person_death).fillna(False).to_numpy(dtype=bool)
    return _map_outcome(bad, int(considered.sum()), len(s), kw.get("mostly", 1))


def _recorded(data: SiteData, spec, kw):
    df = data.tables[spec.table]
    s = df[kw["column"]]
    rows = np.arange(len(df))
    if kw.get("distinct_by"):
        keep = ~data.duplicated(spec.table, kw["distinct_by"], "first")
        s, rows = s[keep], rows[keep]
    bad_local = (~_notna(s)) | s.isin(list(kw.get("not_recorded_values") or [])).to_numpy()
    out = _map_outcome(bad_local, len(s), len(s), kw.get("mostly", 1))
    out.missing_count = None
    out.sample_rows = rows[bad_local][:SAMPLE_ROWS].tolist()
    return out


EXECUTORS: dict[str, Callable[[SiteData, ExpectationSpec, dict], Outcome]] = {
    "expect_column_to_exist": _column_exists,
    "expect_table_row_count_to_be_between": _row_count,
    "expect_column_values_to_not_be_null": _not_null,
    "expect_column_values_to_be_unique": _unique,
    "expect_compound_columns_to_be_unique": _compound_unique,
    "expect_column_values_to_be_in_set": _in_set,
    "expect_column_values_to_not_be_in_set": lambda d, s, k: _in_set(d, s, k, negate=True),
    "expect_column_values_to_match_regex": _regex,
    "expect_column_values_to_not_match_regex": lambda d, s, k: _regex(d, s, k, negate=True),
    "expect_column_values_to_match_strftime_format": _strftime,
    "expect_column_values_to_be_between": _between,
    "expect_column_pair_values_a_to_be_greater_than_b": _pair_greater,
    # workbench types
    "expect_column_values_to_exist_in_table": _exist_in_table,
    "expect_column_values_to_not_be_after_extract_date": _not_after_extract,
    "expect_column_values_to_not_be_before_birth": _not_before_birth,
    "expect_column_values_to_not_be_after_death": _not_after_death,
    "expect_column_values_to_be_recorded": _recorded,
}
#: Kwargs the vectorised engine implements per GX type; anything else (e.g. row_condition) goes to GX.
_ENGINE_KWARGS = {"column", "column_A", "column_B", "column_list", "value_set", "regex", "strftime_format",
                  "min_value", "max_value", "strict_min", "strict_max", "or_equal", "ignore_row_if", "mostly",
                  "other_table", "other_column", "person_column", "not_recorded_values", "distinct_by"}


def engine_supports(spec: ExpectationSpec) -> bool:
    """True if the vectorised engine evaluates ``spec`` (else great-expectations does)."""
    if spec.type not in EXECUTORS:
        return False
    if spec.workbench:
        return True
    used = {k for k, v in spec.kwargs.items() if v is not None}
    return used <= _ENGINE_KWARGS


def evaluate(spec: ExpectationSpec, data: SiteData, use_gx: bool = False) -> Outcome:
    """Evaluate one expectation: vectorised engine when supported (unless ``use_gx``), else GX."""
    if not use_gx and engine_supports(spec):
        return EXECUTORS[spec.type](data, spec, spec.kwargs)
    return evaluate_with_gx(spec, data)


def evaluate_with_gx(spec: ExpectationSpec, data: SiteData) -> Outcome:
    """Evaluate with great-expectations itself (raw text or typed values, as the engine would)."""
    from pcref_eval.contracts.gx_backend import gx_batch, run_gx

    expectation = spec.gx_expectation()  # raises for workbench types (no GX implementation)
    frame = data.tables[spec.table] if spec.type in TEXT_TYPES else \
        data.cached(("typed_frame", spec.table), lambda: data.typed_frame(spec.table))
    batch = data.cached(("gx_batch", spec.table, spec.type in TEXT_TYPES), lambda: gx_batch(frame))
    r = run_gx(expectation, frame, data.parameters(), batch=batch)
    return Outcome(success=r["success"], element_count=r["element_count"], missing_count=r["missing_count"],
                   unexpected_count=r["unexpected_count"], unexpected_percent=r["unexpected_percent"],
                   observed=r["observed_value"], sample_rows=[int(i) for i in r["unexpected_index"]],
                   engine="great_expectations")

