"""Compute declared measures per site x calendar month x ethnic group, vectorised.

:func:`compute_measures` (one site), :func:`compute_sites` (many sites, derived in one pass) and
:func:`compute_site_measures` (one site, settings and registry from the evaluation config) return one
tidy DataFrame, one row per site, measure, month and group (restricted: built from patient-level rows;
release it only through the board / implementation publishers or a declared :class:`Aggregate`):

==================  ===========================================================================
site, measure       site id, measure id
kind, per           the measure's kind and multiplier
period              the month (Timestamp of its first day)
group               ethnic group of the configured scheme, "Not stated", "Not known", "Missing",
                    plus :data:`COMBINED_FOCUS` (all four PCREF focus groups: ethnic categories
                    D, E, M, N, P); ``"All"`` for measures with ``group_by: overall``
numerator           events / people / units counted (``mean_change``: the sum of the changes)
denominator         person-years (population), occupied bed days, inpatients, referrals, people,
                    responses (``mean_change``: the number of paired units)
sum_sq              ``mean_change`` only: sum of squared changes (to re-aggregate; never released)
value, lower, upper the statistic x ``per`` and its confidence interval
sd                  ``mean_change`` only: standard deviation of the changes
ratio, ratio_*      rate ratio (rates) or risk ratio (proportions) vs the reference group
difference, *_      ``mean_change``: difference in means vs the reference group (Welch interval)
==================  ===========================================================================

Every group of the scheme is present in every month (zero counts included), so "Not stated",
"Not known" and "Missing" are never silently dropped.

Methods
-------
- **Months**: whole calendar months inside the study window that end on or before the extract
  date (a partial last month would understate counts).
- **Population denominators**: ``population.csv`` summed to groups; the monthly denominator is
  population x days in month / 365.25 person-years, so a monthly rate is an annualised rate per
  100,000. Groups without population (Not stated, Not known, Missing) keep their counts but get no
  rate or ratio: their people fall within other groups' denominators, so recorded-group rates are
  underestimates where recording is incomplete.
- **Occupied bed days**: from ``hospital_spells``, each spell occupies the midnights from its
  admission day up to (not including) its discharge day, or up to the extract date while open; split
  across months exactly. **Inpatients**: distinct people with a spell overlapping the month (a
  same-day spell counts in its month).
- **Group attribution**: the person's ethnic group (``people.ethnic_category`` via ``person_id``;
  a ``person_id`` not in ``people`` counts as "Missing"), or the row's own ``ethnic_category``
  (``group_by: row``), or one overall series.
- **Intervals**: rates by :func:`pcref_eval.rates.rate` (exact Poisson below 10 events, Byar's from
  10), proportions by :func:`pcref_eval.rates.proportion` (Wilson), rate ratios by
  :func:`pcref_eval.rates.rate_ratio` (exact conditional below 10 events, else log-normal), risk
  ratios by :func:`pcref_eval.rates.risk_ratio` (Katz), means by the t distribution and differences
  of means by Welch's interval. A ratio is not reported (NaN) when the reference group has no events;
  the reference group's own ratio is 1 (no interval).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from pcref_eval import rates
from pcref_eval.ethnicity import DEFAULT_REFERENCE, MISSING_LABEL, ethnic_group, group_order
from pcref_eval.extract import SiteExtract
from pcref_eval.measures.definitions import MeasureDefinition, resolve_codes
from pcref_eval.schema import TABLE_SCHEMAS

__all__ = [
    "FOCUS_CODES",
    "COMBINED_FOCUS",
    "OVERALL",
    "MeasureSettings",
    "SiteMeasureContext",
    "count_measures",
    "compute_measures",
    "compute_sites",
    "compute_site_measures",
    "derive",
    "aggregate_periods",
    "summarise_window",
    "output_groups",
]

#: Ethnic categories of PCREF's first focus (Black Caribbean M, Black African N, Black Other P,
#: Black Mixed D and E).
FOCUS_CODES = ("D", "E", "M", "N", "P")
#: Label of the combined focus group (all four PCREF focus groups).
COMBINED_FOCUS = "Black (all focus groups)"
#: Label of the single series of an overall (ungrouped) measure.
OVERALL = "All"
DAYS_PER_YEAR = 365.25
KEYS = ["site", "measure", "kind", "per", "period", "group"]
STAT_COLUMNS = ["value", "lower", "upper", "sd", "ratio", "ratio_lower", "ratio_upper",
                "difference", "difference_lower", "difference_upper"]


@dataclass(frozen=True)
class MeasureSettings:
    """How measures are computed: grouping scheme, reference group, code lists, window, confidence."""

    scheme: str = "pcref"
    reference: str | None = None
    code_lists: dict[str, list[str]] = field(default_factory=dict)
    start: date | None = None
    end: date | None = None
    conf: float = 0.95

    @property
    def reference_group(self) -> str:
        return self.reference or DEFAULT_REFERENCE[self.scheme]

    @classmethod
    def from_config(cls, config) -> "MeasureSettings":
        """Settings from an :class:`~pcref_eval.config.EvaluationConfig` (scheme, reference, cohort code lists, study)."""
        return cls(
            scheme=config.ethnicity.scheme,
            reference=config.ethnicity.reference,
            code_lists={"detention_codes": list(config.cohort.detention_codes),
                        "place_of_safety_codes": list(config.cohort.place_of_safety_codes)},
            start=config.study.start,
            end=config.study.end,
        )


def output_groups(scheme: str, grouped: bool = True) -> list[str]:
    """Group labels in output order: the scheme's groups (unrecorded last) and the combined focus group."""
    if not grouped:
        return [OVERALL]
    return group_order(scheme) + [COMBINED_FOCUS]


def group_codes(codes: pd.Series, scheme: str) -> tuple[np.ndarray, np.ndarray]:
    """(group position in :func:`~pcref_eval.ethnicity.group_order`, PCREF-focus flag) of ethnic category codes.

    Same result as :func:`~pcref_eval.ethnicity.ethnic_group` (unknown codes raise), computed on the
    distinct codes only.
    """
    cat = pd.Categorical(codes)
    cats = pd.Series(np.asarray(cat.categories, dtype=object))
    mapped = np.asarray(pd.Categorical(ethnic_group(cats, scheme)).codes, dtype=np.int64)
    missing = group_order(scheme).index(MISSING_LABEL)
    lookup = np.append(mapped, missing)  # code -1 (NA) -> Missing
    focus_lookup = np.append(cats.isin(FOCUS_CODES).to_numpy(dtype=bool), False)
    c = np.asarray(cat.codes, dtype=np.int64)
    return lookup[c], focus_lookup[c]


def month_grid(start: date | None, end: date | None, extract_date: date) -> pd.DatetimeIndex:
    """Whole calendar months from ``start`` to ``end`` that end on or before the extract date."""
    last_day = min(pd.Timestamp(end) if end else pd.Timestamp(extract_date), pd.Timestamp(extract_date))
    first = pd.Timestamp(start) if start else last_day - pd.DateOffset(years=3)
    first_month = first.to_period("M") if first.day == 1 else first.to_period("M") + 1
    last_month = last_day.to_period("M")
    if (last_day + pd.Timedelta(days=1)).month == last_day.month:  # last_day is not the month's end
        last_month -= 1
    if last_month < first_month:
        raise ValueError(f"no whole calendar month between {first.date()} and {last_day.date()}")
    return pd.period_range(first_month, last_month, freq="M").to_timestamp()


def _month_number(values) -> np.ndarray:
    """Months since 0000-01 (int64) of datetime-like values; NaT gives a very negative number."""
    arr = np.asarray(values)
    if not np.issubdtype(arr.dtype, np.datetime64):
        arr = pd.to_datetime(pd.Series(values)).to_numpy()
    return arr.astype("datetime64[M]").astype(np.int64)


def _day_number(values) -> np.ndarray:
    arr = np.asarray(values)
    if not np.issubdtype(arr.dtype, np.datetime64):
        arr = pd.to_datetime(pd.Series(values)).to_numpy()
    return arr.astype("datetime64[D]").astype(np.int64)


class SiteMeasureContext:
    """One site's shared, cached building blocks: person groups, month grid, bed days, inpatients, population."""

    def __init__(self, site: SiteExtract, settings: MeasureSettings | None = None):
        self.site = site
        self.settings = settings or MeasureSettings()
        self.site_id = site.info.site_id
        self.periods = month_grid(self.settings.start, self.settings.end, site.info.extract_date)
        self.M = len(self.periods)
        self.m0 = int(_month_number(self.periods[:1].to_numpy())[0])
        self.day0 = int(_day_number(self.periods[:1].to_numpy())[0])
        self.day_end = int(_day_number((self.periods[-1:] + pd.offsets.MonthBegin(1)).to_numpy())[0])
        self.extract_day = int(_day_number(np.array([np.datetime64(site.info.extract_date)]))[0])
        scheme = self.settings.scheme
        self.groups = group_order(scheme)
        self.G = len(self.groups)
        self.missing_code = self.groups.index(MISSING_LABEL)
        people = site["people"].drop_duplicates("person_id")
        self.n_people = len(people)
        self._pid = people["person_id"].reset_index(drop=True)
        self._pgroup, self._pfocus = self.row_group(people["ethnic_category"])
        self._people = people
        self._cache: dict = {}

    # ------------------------------------------------------------------ persons and months

    def person_index(self, table: str, rows: np.ndarray | None = None) -> np.ndarray:
        """Position of each row's person in ``people`` (of ``rows`` only, if given).

        Unknown or missing ids get distinct codes >= n_people (they count as "Missing" people).
        One factorisation of people ids followed by the table's ids: people come first and are
        unique, so their codes are their positions.
        """
        key = ("pidx", table)
        if rows is None and key in self._cache:
            return self._cache[key]
        ids = self.site[table]["person_id"]
        if rows is not None:
            ids = ids.iloc[rows]
        codes, _ = pd.factorize(pd.concat([self._pid, ids.reset_index(drop=True)], ignore_index=True),
                                use_na_sentinel=True)
        idx = codes[self.n_people:].astype(np.int64)
        na = idx < 0
        if na.any():  # missing person_id: a distinct unknown person per row
            idx[na] = codes.max() + 1 + np.arange(int(na.sum()))
        if rows is None:
            self._cache[key] = idx
        return idx

    def person_group(self, pidx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(group code, focus flag) of person positions; unknown people are Missing, not focus."""
        known = pidx < self.n_people
        safe = np.where(known, pidx, 0)
        grp = np.where(known, self._pgroup[safe], self.missing_code)
        focus = known & self._pfocus[safe]
        return grp, focus

    def row_group(self, codes: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """(group code, focus flag) from ethnic_category codes (mapped once per distinct code)."""
        return group_codes(codes, self.settings.scheme)

    def month_index(self, values) -> np.ndarray:
        """Month position in the grid (0..M-1) of datetime-like values; -1 outside the grid or missing."""
        m = _month_number(values) - self.m0
        return np.where((m >= 0) & (m < self.M), m, -1)

    # ------------------------------------------------------------------ tabulation

    def tabulate(self, month: np.ndarray, grp: np.ndarray | None, focus: np.ndarray | None,
                 weights: np.ndarray | None = None) -> np.ndarray:
        """Sum ``weights`` (or count rows) into a (months x columns) array.

        Columns are the scheme's groups plus the combined focus group; with ``grp=None`` one overall column.
        """
        ok = month >= 0
        w = None if weights is None else np.asarray(weights, dtype=float)[ok]
        if grp is None:
            return np.bincount(month[ok], weights=w, minlength=self.M).astype(float)[:, None]
        key = month[ok] * self.G + grp[ok]
        base = np.bincount(key, weights=w, minlength=self.M * self.G).astype(float).reshape(self.M, self.G)
        f = focus[ok]
        foc = np.bincount(month[ok][f], weights=None if w is None else w[f], minlength=self.M).astype(float)
        return np.column_stack([base, foc])

    # ------------------------------------------------------------------ denominators

    def population_years(self, overall: bool = False) -> np.ndarray:
        """Person-years per month and group: population x days in month / 365.25 (NaN without population)."""
        key = ("pop", overall)
        if key in self._cache:
            return self._cache[key]
        pop = self.site.population
        if pop is None:
            raise ValueError(f"site {self.site_id}: population.csv is needed for rates per population")
        values = pop["population"].to_numpy(dtype=float)
        if overall:
            by = np.array([values.sum()])
        else:
            grp, focus = self.row_group(pop["ethnic_category"])
            by = np.bincount(grp, weights=values, minlength=self.G)
            by = np.append(by, values[focus].sum())
        by = np.where(by > 0, by, np.nan)
        days = self.periods.days_in_month.to_numpy(dtype=float)
        out = by[None, :] * days[:, None] / DAYS_PER_YEAR
        self._cache[key] = out
        return out

    def _spells(self):
        if "spells" not in self._cache:
            sp = self.site["hospital_spells"]
            a = _day_number(sp["admission_date"].to_numpy())
            d_raw = sp["discharge_date"]
            d = _day_number(d_raw.to_numpy())
            d = np.where(d_raw.isna().to_numpy(), self.extract_day, np.minimum(d, self.extract_day))
            valid = ~sp["admission_date"].isna().to_numpy() & (d >= a)
            pidx = self.person_index("hospital_spells")
            self._cache["spells"] = (a[valid], d[valid], pidx[valid])
        return self._cache["spells"]

    def bed_days(self, overall: bool = False) -> np.ndarray:
        """Occupied bed days per month and group (midnights from admission to discharge/extract date)."""
        key = ("obd", overall)
        if key in self._cache:
            return self._cache[key]
        a, d, pidx = self._spells()
        n_days = self.day_end - self.day0
        s = np.clip(a - self.day0, 0, n_days)
        e = np.clip(d - self.day0, 0, n_days)
        keep = e > s
        s, e, pidx = s[keep], e[keep], pidx[keep]
        month_starts = (_day_number(self.periods.to_numpy()) - self.day0).astype(np.int64)

        def occupancy(starts, ends):
            diff = np.bincount(starts, minlength=n_days + 1) - np.bincount(ends, minlength=n_days + 1)
            daily = np.cumsum(diff[:n_days]).astype(float)
            return np.add.reduceat(daily, month_starts)

        if overall:
            out = occupancy(s, e)[:, None]
        else:
            grp, focus = self.person_group(pidx)
            cols = [occupancy(s[grp == g], e[grp == g]) for g in range(self.G)]
            cols.append(occupancy(s[focus], e[focus]))
            out = np.column_stack(cols)
        self._cache[key] = out
        return out

    def inpatient_keys(self) -> np.ndarray:
        """Sorted unique person x month keys (person * M + month) of people with a spell overlapping the month."""
        if "inp" in self._cache:
            return self._cache["inp"]
        a, d, pidx = self._spells()
        last = np.maximum(d - 1, a)  # last day in a bed; a same-day spell occupies its day
        ma_raw = _month_number(a.astype("datetime64[D]")) - self.m0
        mb_raw = _month_number(last.astype("datetime64[D]")) - self.m0
        lo = np.clip(ma_raw, 0, self.M)
        hi = np.clip(mb_raw, -1, self.M - 1)
        n = np.where(hi >= lo, hi - lo + 1, 0)
        rep = np.repeat(np.arange(len(a)), n)
        offset = np.arange(len(rep)) - np.repeat(np.cumsum(n) - n, n)
        months = lo[rep] + offset
        keys = np.unique(pidx[rep] * self.M + months)
        self._cache["inp"] = keys
        return keys

    def first_referral_month(self) -> np.ndarray:
        """Month position of each person's first referral (-1 if none in the grid)."""
        if "firstref" in self._cache:
            return self._cache["firstref"]
        ref = self.site["referrals"]
        pidx = self.person_index("referrals")
        day = _day_number(ref["referral_date"].to_numpy())
        ok = ~ref["referral_date"].isna().to_numpy() & (pidx < self.n_people)
        first = np.full(self.n_people, np.iinfo(np.int64).max)
        order = np.argsort(day[ok], kind="stable")
        p_sorted, d_sorted = pidx[ok][order], day[ok][order]
        uniq, pos = np.unique(p_sorted, return_index=True)
        first[uniq] = d_sorted[pos]
        has = first != np.iinfo(np.int64).max
        months = np.full(self.n_people, -1, dtype=np.int64)
        months[has] = self.month_index(first[has].astype("datetime64[D]"))
        self._cache["firstref"] = months
        return months

    # ------------------------------------------------------------------ numerator rows

    def filtered(self, definition: MeasureDefinition) -> tuple[pd.DataFrame, np.ndarray]:
        """The numerator table and a boolean mask of rows passing the filters."""
        num = definition.numerator
        df = self.site[num.table]
        mask = np.ones(len(df), dtype=bool)
        schema = TABLE_SCHEMAS[num.table]
        for col, codes in num.filters.items():
            values = resolve_codes(codes, self.settings.code_lists)
            if schema[col] in ("int", "float"):
                hit = pd.to_numeric(df[col], errors="coerce").isin([float(v) for v in values])
            else:  # code columns are stripped strings after load_site
                hit = df[col].isin([str(v) for v in values])
            mask &= np.asarray(hit.fillna(False), dtype=bool)
        return df, mask


# ---------------------------------------------------------------------------- per kind


def _groups_of(ctx: SiteMeasureContext, definition: MeasureDefinition, df: pd.DataFrame, rows: np.ndarray,
               table: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    if definition.group_by == "overall":
        return None, None
    if definition.group_by == "row":
        return ctx.row_group(df["ethnic_category"].iloc[rows] if rows is not None else df["ethnic_category"])
    pidx = ctx.person_index(table)
    return ctx.person_group(pidx if rows is None else pidx[rows])


def _event_counts(ctx: SiteMeasureContext, definition: MeasureDefinition) -> tuple[np.ndarray, np.ndarray]:
    """Numerator (events or distinct people) per month x group, and the row month/person of counted rows."""
    num = definition.numerator
    df, mask = ctx.filtered(definition)
    month = ctx.month_index(df[num.date_column].to_numpy())
    rows = np.flatnonzero(mask & (month >= 0))
    if num.count == "people":
        pidx = ctx.person_index(num.table)[rows]
        keys = np.unique(pidx * ctx.M + month[rows])
        p, m = keys // ctx.M, keys % ctx.M
        if definition.group_by == "overall":
            return ctx.tabulate(m, None, None), keys
        grp, focus = ctx.person_group(p)
        return ctx.tabulate(m, grp, focus), keys
    grp, focus = _groups_of(ctx, definition, df, rows, num.table)
    return ctx.tabulate(month[rows], grp, focus), rows


def _compute_arrays(ctx: SiteMeasureContext, definition: MeasureDefinition):
    """(numerator, denominator, sum_sq) arrays of shape (months, columns) for one measure."""
    overall = definition.group_by == "overall"
    kind, den_kind, num = definition.kind, definition.denominator, definition.numerator
    if kind == "rate_per_population":
        counts, _ = _event_counts(ctx, definition)
        return counts, ctx.population_years(overall), None
    if kind == "rate_per_bed_days":
        counts, _ = _event_counts(ctx, definition)
        return counts, ctx.bed_days(overall), None
    if kind == "proportion" and den_kind == "inpatients":
        inp = ctx.inpatient_keys()
        df, mask = ctx.filtered(definition)
        month = ctx.month_index(df[num.date_column].to_numpy())
        rows = np.flatnonzero(mask & (month >= 0))
        keys = np.unique(ctx.person_index(num.table)[rows] * ctx.M + month[rows])
        keys = keys[np.isin(keys, inp, assume_unique=True)]

        def tab(k):
            p, m = k // ctx.M, k % ctx.M
            if overall:
                return ctx.tabulate(m, None, None)
            grp, focus = ctx.person_group(p)
            return ctx.tabulate(m, grp, focus)

        return tab(keys), tab(inp), None
    if kind == "proportion" and den_kind == "people":
        months = ctx.first_referral_month()
        _, mask = ctx.filtered(definition)
        if overall:
            grp = focus = None
        else:
            grp, focus = ctx._pgroup, ctx._pfocus
        den = ctx.tabulate(months, grp, focus)
        numer = ctx.tabulate(np.where(mask, months, -1), grp, focus)
        return numer, den, None
    if kind == "proportion":  # units of one table: referrals or responses
        df, mask = ctx.filtered(definition)
        month = ctx.month_index(df[num.date_column].to_numpy())
        grp, focus = _groups_of(ctx, definition, df, None, num.table)
        den = ctx.tabulate(month, grp, focus)
        numer = ctx.tabulate(np.where(mask, month, -1), grp, focus)
        return numer, den, None
    if kind == "mean_change":
        return _mean_change_arrays(ctx, definition)
    raise ValueError(f"unsupported measure kind {kind!r}")  # pragma: no cover


def _mean_change_arrays(ctx: SiteMeasureContext, definition: MeasureDefinition):
    """Per pair_by unit with >= 2 scored assessments: last minus first score, dated by the last assessment."""
    num = definition.numerator
    df, mask = ctx.filtered(definition)
    date_col = num.date_column
    ok = mask & df[num.value].notna().to_numpy() & df[num.pair_by].notna().to_numpy() & df[date_col].notna().to_numpy()
    rows = np.flatnonzero(ok)
    unit, _ = pd.factorize(df[num.pair_by].iloc[rows])
    day = _day_number(df[date_col].to_numpy()[rows])
    tiebreak = np.arange(len(rows))
    order = np.lexsort((tiebreak, day, unit))
    unit_s = unit[order]
    starts = np.flatnonzero(np.r_[True, unit_s[1:] != unit_s[:-1]])
    ends = np.r_[starts[1:], len(unit_s)] - 1
    paired = ends > starts
    first_rows = rows[order[starts[paired]]]
    last_rows = rows[order[ends[paired]]]
    values = pd.to_numeric(df[num.value], errors="coerce").to_numpy(dtype=float)
    change = values[last_rows] - values[first_rows]
    month = ctx.month_index(df[date_col].to_numpy()[last_rows])
    if definition.group_by == "overall":
        grp = focus = None
    elif definition.group_by == "row":
        grp, focus = ctx.row_group(df["ethnic_category"].iloc[last_rows])
    else:
        grp, focus = ctx.person_group(ctx.person_index(num.table, rows=last_rows))
    n = ctx.tabulate(month, grp, focus)
    total = ctx.tabulate(month, grp, focus, weights=change)
    sum_sq = ctx.tabulate(month, grp, focus, weights=change ** 2)
    return total, n, sum_sq


# ---------------------------------------------------------------------------- public API


def count_measures(site: SiteExtract, measures: Sequence[MeasureDefinition] | None = None,
                   settings: MeasureSettings | None = None, context: SiteMeasureContext | None = None
                   ) -> pd.DataFrame:
    """Numerators, denominators (and sums of squares) per measure x month x group for one site, underived."""
    from pcref_eval.measures.defaults import default_measures

    settings = settings or MeasureSettings()
    measures = list(measures) if measures is not None else default_measures()
    ctx = context or SiteMeasureContext(site, settings)
    parts: dict[str, list] = {k: [] for k in ("measure", "kind", "per", "period", "group", "numerator",
                                               "denominator", "sum_sq")}
    periods = ctx.periods.to_numpy()
    for definition in measures:
        numer, den, sum_sq = _compute_arrays(ctx, definition)
        labels = np.array(output_groups(ctx.settings.scheme, definition.group_by != "overall"), dtype=object)
        n = numer.size
        parts["measure"].append(np.full(n, definition.id, dtype=object))
        parts["kind"].append(np.full(n, definition.kind, dtype=object))
        parts["per"].append(np.full(n, definition.scale))
        parts["period"].append(np.repeat(periods, numer.shape[1]))
        parts["group"].append(np.tile(labels, numer.shape[0]))
        parts["numerator"].append(numer.ravel())
        parts["denominator"].append(np.asarray(den, dtype=float).ravel())
        parts["sum_sq"].append(sum_sq.ravel() if sum_sq is not None else np.full(n, np.nan))
    if not measures:
        return _empty()
    data = {k: np.concatenate(v) for k, v in parts.items()}
    df = pd.DataFrame({"site": np.full(len(data["measure"]), ctx.site_id, dtype=object), **data})
    return df


def compute_measures(site: SiteExtract, measures: Sequence[MeasureDefinition] | None = None,
                     settings: MeasureSettings | None = None, context: SiteMeasureContext | None = None
                     ) -> pd.DataFrame:
    """Compute ``measures`` (default: the default measures) for one site: one row per measure x month x group."""
    settings = settings or MeasureSettings()
    return derive(count_measures(site, measures, settings, context), settings.reference_group, settings.conf)


def compute_sites(sites: Iterable[SiteExtract], measures: Sequence[MeasureDefinition] | None = None,
                  settings: MeasureSettings | None = None) -> pd.DataFrame:
    """:func:`compute_measures` for many sites, derived in one vectorised pass (one row per site x measure x month x group)."""
    settings = settings or MeasureSettings()
    counts = [count_measures(site, measures, settings) for site in sites]
    df = pd.concat(counts, ignore_index=True) if counts else _empty()
    return derive(df, settings.reference_group, settings.conf)


def compute_site_measures(site: SiteExtract, config, measures: Sequence[MeasureDefinition] | None = None
                          ) -> pd.DataFrame:
    """:func:`compute_measures` with the config's scheme, reference, code lists and study window.

    ``measures`` defaults to the registry: the default measures plus ``config.measures``.
    """
    from pcref_eval.measures.defaults import measure_registry

    if measures is None:
        measures = measure_registry(list(getattr(config, "measures", []) or []))
    return compute_measures(site, measures, MeasureSettings.from_config(config))


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=float) for c in [*KEYS, "numerator", "denominator", "sum_sq"]})


def derive(df: pd.DataFrame, reference: str, conf: float = 0.95, keys: Iterable[str] = ("site", "measure", "period")
           ) -> pd.DataFrame:
    """Add value, CI and the comparison with ``reference`` (rows of the same ``keys``) to summed counts.

    ``df`` has columns kind, per, group, numerator, denominator, sum_sq and ``keys``. Used for
    monthly rows and for any re-aggregation (quarters, the latest 12 months).
    """
    keys = [k for k in keys if k in df.columns]
    out = df.drop(columns=[c for c in STAT_COLUMNS if c in df.columns]).reset_index(drop=True)
    for c in STAT_COLUMNS:
        out[c] = np.nan
    if out.empty:
        return out
    ref = out.loc[out["group"] == reference, [*keys, "numerator", "denominator", "sum_sq"]]
    ref = ref.rename(columns={"numerator": "_rx", "denominator": "_rn", "sum_sq": "_rs"})
    merged = out[keys].merge(ref, on=keys, how="left", validate="many_to_one") if keys else out.assign(_rx=np.nan)
    rx, rn, rs = (merged[c].to_numpy(dtype=float) for c in ("_rx", "_rn", "_rs"))
    x = out["numerator"].to_numpy(dtype=float)
    n = out["denominator"].to_numpy(dtype=float)
    ss = out["sum_sq"].to_numpy(dtype=float)
    per = out["per"].to_numpy(dtype=float)
    kind = out["kind"].to_numpy()
    grouped = (out["group"] != OVERALL).to_numpy()
    is_ref = (out["group"] == reference).to_numpy()
    res = {c: np.full(len(out), np.nan) for c in STAT_COLUMNS}

    rate_rows = np.isin(kind, ["rate_per_population", "rate_per_bed_days"])
    prop_rows = kind == "proportion"
    mean_rows = kind == "mean_change"
    valid = n > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        for rows_mask, fn, cmp in ((rate_rows, _rate_stats, rates.rate_ratio), (prop_rows, _prop_stats, rates.risk_ratio)):
            sel = rows_mask & valid
            if sel.any():
                v, lo, hi = fn(x[sel], n[sel], conf)
                res["value"][sel], res["lower"][sel], res["upper"][sel] = v * per[sel], lo * per[sel], hi * per[sel]
            csel = rows_mask & grouped & valid & (rn > 0) & (rx > 0)
            if csel.any():
                r = cmp(x[csel], n[csel], rx[csel], rn[csel], conf=conf)
                res["ratio"][csel] = r["value"].to_numpy(dtype=float)
                res["ratio_lower"][csel] = r["lower"].to_numpy(dtype=float)
                res["ratio_upper"][csel] = r["upper"].to_numpy(dtype=float)
        if mean_rows.any():
            sel = mean_rows & valid
            mean, sd, lo, hi = _mean_stats(x[sel], n[sel], ss[sel], conf)
            res["value"][sel], res["sd"][sel] = mean * per[sel], sd * per[sel]
            res["lower"][sel], res["upper"][sel] = lo * per[sel], hi * per[sel]
            csel = mean_rows & grouped & (n >= 2) & (rn >= 2)
            if csel.any():
                d, dlo, dhi = _welch(x[csel], n[csel], ss[csel], rx[csel], rn[csel], rs[csel], conf)
                res["difference"][csel] = d * per[csel]
                res["difference_lower"][csel] = dlo * per[csel]
                res["difference_upper"][csel] = dhi * per[csel]
    ref_rows = is_ref & grouped
    res["ratio"][ref_rows & (rate_rows | prop_rows) & valid & (x > 0)] = 1.0
    res["ratio_lower"][ref_rows] = np.nan
    res["ratio_upper"][ref_rows] = np.nan
    res["difference"][ref_rows & mean_rows & (n >= 2)] = 0.0
    res["difference_lower"][ref_rows] = np.nan
    res["difference_upper"][ref_rows] = np.nan
    for c in STAT_COLUMNS:
        out[c] = res[c]
    return out


def _rate_stats(x, n, conf):
    r = rates.rate(x, n, per=1.0, conf=conf)
    return x / n, r["lower"].to_numpy(dtype=float), r["upper"].to_numpy(dtype=float)


def _prop_stats(x, n, conf):
    r = rates.proportion(np.minimum(x, n), n, conf=conf)
    return x / n, r["lower"].to_numpy(dtype=float), r["upper"].to_numpy(dtype=float)


def _mean_stats(total, n, sum_sq, conf):
    mean = total / n
    var = np.where(n >= 2, (sum_sq - n * mean ** 2) / np.maximum(n - 1, 1), np.nan)
    sd = np.sqrt(np.maximum(var, 0.0))
    t = stats.t.ppf(0.5 + conf / 2.0, np.maximum(n - 1, 1))
    half = np.where(n >= 2, t * sd / np.sqrt(n), np.nan)
    return mean, sd, mean - half, mean + half


def _welch(t1, n1, s1, t2, n2, s2, conf):
    m1, m2 = t1 / n1, t2 / n2
    v1 = np.maximum((s1 - n1 * m1 ** 2) / (n1 - 1), 0.0) / n1
    v2 = np.maximum((s2 - n2 * m2 ** 2) / (n2 - 1), 0.0) / n2
    se = np.sqrt(v1 + v2)
    with np.errstate(invalid="ignore", divide="ignore"):
        dof = (v1 + v2) ** 2 / (v1 ** 2 / (n1 - 1) + v2 ** 2 / (n2 - 1))
    dof = np.where(np.isfinite(dof), dof, np.minimum(n1, n2) - 1)
    t = stats.t.ppf(0.5 + conf / 2.0, dof)
    d = m1 - m2
    return d, d - t * se, d + t * se


def aggregate_periods(df: pd.DataFrame, freq: str = "Q", reference: str | None = None, conf: float = 0.95
                      ) -> pd.DataFrame:
    """Re-aggregate monthly rows to quarters (``"Q"``) or years (``"Y"``) and re-derive values and ratios.

    Each output period is labelled by its first month; a period is kept only when all its months are
    in the data (partial quarters at the edges of the window are dropped).
    """
    reference = reference or _guess_reference(df)
    months_per = {"M": 1, "Q": 3, "Y": 12}
    if freq not in months_per:
        raise ValueError(f"freq must be one of {sorted(months_per)}, got {freq!r}")
    period = pd.to_datetime(df["period"])
    tmp = df.assign(period=period.dt.to_period(freq).dt.start_time.to_numpy())
    keys = ["site", "measure", "kind", "per", "period", "group"]
    g = tmp.groupby(keys, sort=False, observed=True)
    summed = g[["numerator", "denominator", "sum_sq"]].sum(min_count=1)
    summed = summed[g["numerator"].size() == months_per[freq]].reset_index()
    return derive(summed, reference, conf)


def summarise_window(df: pd.DataFrame, start=None, end=None, months: int | None = None,
                     reference: str | None = None, conf: float = 0.95) -> pd.DataFrame:
    """Sum each site x measure x group over a window and re-derive value, CI and ratio.

    The window is ``start``..``end`` (inclusive months) or the latest ``months`` months of the data.
    Output columns: the keys (``period`` = first month of the window), ``period_end``, counts, statistics.
    """
    reference = reference or _guess_reference(df)
    period = pd.to_datetime(df["period"])
    if months is not None:
        end = period.max()
        start = end - pd.DateOffset(months=months - 1)
    start = pd.Timestamp(start) if start is not None else period.min()
    end = pd.Timestamp(end) if end is not None else period.max()
    sub = df[(period >= start) & (period <= end)]
    keys = ["site", "measure", "kind", "per", "group"]
    summed = sub.groupby(keys, sort=False, observed=True)[["numerator", "denominator", "sum_sq"]].sum(min_count=1)
    summed = summed.reset_index()
    summed.insert(4, "period", start)
    summed.insert(5, "period_end", end)
    return derive(summed, reference, conf, keys=("site", "measure", "period"))


def _guess_reference(df: pd.DataFrame) -> str:
    groups = set(df["group"].unique())
    for ref in ("White British", "White"):
        if ref in groups:
            return ref
    raise ValueError("pass reference= (the reference group) explicitly")
