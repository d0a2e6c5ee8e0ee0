"""Rates, proportions and standardised rates with confidence intervals.

Methods follow PHEindicatormethods (UKHSA), the reference implementation used for
Fingertips indicators, so that numbers match published public-health outputs:

- crude rates: exact Poisson (chi-square) limits below 10 events, Byar's approximation
  from 10 events (Breslow & Day 1987), as ``phe_rate`` / ``calculate_crude_rate``;
- proportions: Wilson score interval (Wilson 1927; Newcombe & Altman 2000), as ``phe_proportion``;
- directly standardised rates: Dobson et al. (1991) method with Byar's limits, not computed
  when the total count is below 10, as ``calculate_dsr`` (optionally adjusted for
  non-independent events);
- indirectly standardised ratios and rates: Byar's / exact limits on the observed count, as
  ``calculate_ISRatio`` / ``calculate_ISRate``;
- rate ratios, risk ratios and odds ratios between two groups.

Every function is vectorised over numpy arrays / pandas Series. Confidence levels may be given
as a proportion (0.95, 0.998) or a percentage (95, 99.8).
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "byars_limits",
    "exact_poisson_limits",
    "poisson_limits",
    "rate",
    "wilson_limits",
    "proportion",
    "esp2013",
    "dsr",
    "isr",
    "rate_ratio",
    "risk_ratio",
    "odds_ratio",
]

EXACT_BELOW = 10  # PHEindicatormethods: exact Poisson limits below 10 events, Byar's from 10
DSR_MIN_COUNT = 10  # PHEindicatormethods: DSRs are not calculated when the total count is < 10
DSR_NOTE_SMALL = "dsr NA for total count < 10"

ArrayLike = float | int | Sequence[float] | np.ndarray | pd.Series


# ----------------------------------------------------------------------------- helpers


def _conf(conf: float) -> float:
    """Return a confidence level as a proportion; accept 0.95 or 95."""
    c = float(conf)
    if 50.0 <= c < 100.0:
        c = c / 100.0
    if not 0.0 < c < 1.0:
        raise ValueError(f"confidence level must be a proportion in (0, 1) or a percentage in [50, 100), got {conf!r}")
    return c


def _z(conf: float) -> float:
    """Two-sided standard normal quantile, computed as PHEindicatormethods does."""
    c = _conf(conf)
    return float(stats.norm.ppf(c + (1.0 - c) / 2.0))


def _arr(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=float)


def _index_of(*objs) -> pd.Index | None:
    for o in objs:
        if isinstance(o, pd.Series):
            return o.index
    return None


def _check_nonneg(x: np.ndarray, what: str) -> None:
    if np.any(x[~np.isnan(x)] < 0):
        raise ValueError(f"{what} must all be greater than or equal to zero")


def _check_positive(n: np.ndarray, what: str) -> None:
    if np.any(n[~np.isnan(n)] <= 0):
        raise ValueError(f"{what} must all be greater than zero")


# ----------------------------------------------------------------------------- count limits


def byars_limits(x: ArrayLike, conf: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Byar's approximation to exact Poisson limits for a count (Breslow & Day 1987).

    lower = x (1 - 1/(9x) - z/(3 sqrt(x)))^3, upper = (x+1) (1 - 1/(9(x+1)) + z/(3 sqrt(x+1)))^3.
    As PHEindicatormethods ``byars_lower``, a negative (or undefined) lower limit is returned as NaN.
    """
    x = _arr(x)
    _check_nonneg(x, "observed events")
    z = _z(conf)
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = x * (1.0 - 1.0 / (9.0 * x) - z / (3.0 * np.sqrt(x))) ** 3
        upper = (x + 1.0) * (1.0 - 1.0 / (9.0 * (x + 1.0)) + z / (3.0 * np.sqrt(x + 1.0))) ** 3
    lower = np.where(lower < 0, np.nan, lower)
    return lower, upper


def exact_poisson_limits(x: ArrayLike, conf: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact Poisson limits for a count via chi-square quantiles (Garwood 1936; Armitage & Berry 2002).

    lower = chi2((1-c)/2; 2x)/2 (0 when x = 0), upper = chi2(c + (1-c)/2; 2x+2)/2.
    """
    x = _arr(x)
    _check_nonneg(x, "observed events")
    c = _conf(conf)
    # counts repeat heavily in stratified tables: evaluate the quantiles once per distinct count
    ux, inv = np.unique(x, return_inverse=True)
    with np.errstate(invalid="ignore"):
        ulo = np.where(ux == 0, 0.0, stats.chi2.ppf((1.0 - c) / 2.0, 2.0 * ux) / 2.0)
        uhi = stats.chi2.ppf(c + (1.0 - c) / 2.0, 2.0 * ux + 2.0) / 2.0
    ulo = np.where(np.isnan(ux), np.nan, ulo)
    inv = inv.reshape(x.shape)
    return ulo[inv], uhi[inv]


def poisson_limits(x: ArrayLike, conf: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Limits for a count: exact Poisson below 10 events, Byar's from 10 (PHEindicatormethods rule).

    Returns (lower, upper, method) with method "Exact", "Byars" or None where x is missing.
    """
    x = np.atleast_1d(_arr(x))
    small = x < EXACT_BELOW
    large = x >= EXACT_BELOW
    lower = np.full(x.shape, np.nan)
    upper = np.full(x.shape, np.nan)
    if small.any():
        lower[small], upper[small] = exact_poisson_limits(x[small], conf)
    if large.any():
        lower[large], upper[large] = byars_limits(x[large], conf)
    method = np.full(x.shape, None, dtype=object)
    method[small] = "Exact"
    method[large] = "Byars"
    return lower, upper, method


# ----------------------------------------------------------------------------- crude rate


def _grouped_sums(data: pd.DataFrame, cols: list[str], group_cols: Sequence[str] | None) -> pd.DataFrame:
    if not group_cols:
        return pd.DataFrame({c: [data[c].sum(min_count=1)] for c in cols})
    return data.groupby(list(group_cols), sort=True, dropna=False, observed=True)[cols].sum(min_count=1).reset_index()


def _counts_over_denominators(x, n) -> tuple[pd.Index | None, np.ndarray, np.ndarray]:
    """Check numerators (>= 0) and denominators (> 0), broadcast them, and keep a matching index."""
    idx = _index_of(x, n)
    xa, na = _arr(x), _arr(n)
    _check_nonneg(xa, "numerators")
    _check_positive(na, "denominators")
    xa, na = np.broadcast_arrays(np.atleast_1d(xa), np.atleast_1d(na))
    return (idx if idx is not None and len(idx) == len(xa) else None), xa, na


def rate(
    x: ArrayLike | str,
    n: ArrayLike | str,
    per: float = 100000,
    conf: float = 0.95,
    *,
    data: pd.DataFrame | None = None,
    group_cols: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Crude rate per ``per`` with exact Poisson limits below 10 events and Byar's from 10.

    Matches PHEindicatormethods ``phe_rate`` / ``calculate_crude_rate`` (Breslow & Day 1987).
    With ``data``, ``x`` and ``n`` are column names; ``group_cols`` sums counts and
    denominators within groups first. Returns columns value, lower, upper, method
    (plus the group columns, count and denominator when ``data`` is given).
    """
    if data is not None:
        agg = _grouped_sums(data, [x, n], group_cols)
        out = rate(agg[x], agg[n], per=per, conf=conf)
        return pd.concat([agg, out], axis=1)
    idx, xa, na = _counts_over_denominators(x, n)
    lower, upper, method = poisson_limits(xa, conf)
    out = pd.DataFrame(
        {"value": xa / na * per, "lower": lower / na * per, "upper": upper / na * per, "method": method},
        index=idx,
    )
    return out


# ----------------------------------------------------------------------------- proportion


def wilson_limits(x: ArrayLike, n: ArrayLike, conf: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for x successes of n (Wilson 1927; Newcombe & Altman 2000).

    (2x + z^2 -/+ z sqrt(z^2 + 4x(1 - x/n))) / (2(n + z^2)).
    """
    x, n = _arr(x), _arr(n)
    z = _z(conf)
    with np.errstate(divide="ignore", invalid="ignore"):
        root = z * np.sqrt(z * z + 4.0 * x * (1.0 - x / n))
        lower = (2.0 * x + z * z - root) / 2.0 / (n + z * z)
        upper = (2.0 * x + z * z + root) / 2.0 / (n + z * z)
    return lower, upper


def proportion(
    x: ArrayLike | str,
    n: ArrayLike | str,
    conf: float = 0.95,
    percentage: bool = False,
    *,
    data: pd.DataFrame | None = None,
    group_cols: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Proportion (or percentage) with a Wilson score interval (Wilson 1927).

    Matches PHEindicatormethods ``phe_proportion``. Numerators must lie in [0, n].
    With ``data``, ``x`` and ``n`` are column names, summed within ``group_cols``.
    """
    if data is not None:
        agg = _grouped_sums(data, [x, n], group_cols)
        out = proportion(agg[x], agg[n], conf=conf, percentage=percentage)
        return pd.concat([agg, out], axis=1)
    idx, xa, na = _counts_over_denominators(x, n)
    if np.any(xa > na):
        raise ValueError("numerators must be less than or equal to denominators for a proportion")
    lower, upper = wilson_limits(xa, na, conf)
    mult = 100.0 if percentage else 1.0
    return pd.DataFrame(
        {"value": xa / na * mult, "lower": lower * mult, "upper": upper * mult, "method": "Wilson"},
        index=idx,
    )


# ----------------------------------------------------------------------------- standard populations


@lru_cache(maxsize=1)
def _esp2013_table() -> pd.DataFrame:
    with resources.files("pcref_eval").joinpath("data/esp2013.csv").open("r") as fh:
        return pd.read_csv(fh)


def esp2013() -> pd.Series:
    """European Standard Population 2013, 19 age bands (0-4 ... 85-89, 90+), total 100,000 (Eurostat 2013).

    Returned as a Series of standard populations indexed by age-band label.
    """
    t = _esp2013_table()
    return pd.Series(t["esp2013"].to_numpy(dtype=float), index=t["ageband"].to_list(), name="esp2013")


_AGE_RE = re.compile(r"^\s*(\d+)")


def _age_key(labels) -> np.ndarray:
    """Lower bound of an age band ("0-4", "00-04", "90+", 85) as an integer key."""
    s = pd.Series(labels)
    if pd.api.types.is_numeric_dtype(s):
        return s.to_numpy(dtype=float)
    codes, uniq = pd.factorize(s)
    keys = np.empty(len(uniq))
    for i, u in enumerate(uniq):
        m = _AGE_RE.match(str(u))
        if m is None:
            raise ValueError(f"cannot read an age lower bound from age band label {u!r}")
        keys[i] = float(m.group(1))
    out = np.full(len(s), np.nan)
    ok = codes >= 0
    out[ok] = keys[codes[ok]]
    return out


def _standard_for_rows(
    df: pd.DataFrame,
    standard,
    age_col: str | None,
    group_keys: np.ndarray,
) -> np.ndarray:
    """Standard population for each row of ``df`` (matched on age band, or by position in each group)."""
    if standard is None or (isinstance(standard, str) and standard.lower() == "esp2013"):
        standard = esp2013()
    if isinstance(standard, pd.Series):
        if age_col is None:
            if len(df) and np.all(np.bincount(group_keys) == len(standard)):
                return _standard_by_position(standard.to_numpy(dtype=float), group_keys)
            raise ValueError("age_col is required to match rows to a standard population given by age band")
        std_keys = _age_key(standard.index)
        if len(np.unique(std_keys)) != len(std_keys):
            raise ValueError("standard population age bands must be unique")
        lookup = pd.Series(standard.to_numpy(dtype=float), index=std_keys)
        row_keys = _age_key(df[age_col])
        out = lookup.reindex(row_keys).to_numpy()
        if np.any(np.isnan(out)):
            missing = sorted(set(df[age_col][np.isnan(out)].astype(str)))
            raise ValueError(f"age bands not in the standard population: {missing}")
        return out
    arr = np.asarray(standard, dtype=float)
    return _standard_by_position(arr, group_keys)


def _standard_by_position(arr: np.ndarray, group_keys: np.ndarray) -> np.ndarray:
    sizes = np.bincount(group_keys)
    if np.any(sizes != len(arr)):
        raise ValueError("standard population length must equal the number of rows in each group")
    order = np.argsort(group_keys, kind="stable")
    pos = np.empty(len(group_keys), dtype=int)
    pos[order] = np.arange(len(group_keys)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return arr[pos]


def _group_codes(df: pd.DataFrame, group_cols: Sequence[str] | None) -> tuple[np.ndarray, pd.DataFrame]:
    """Integer group code per row and a frame of the unique groups in code order."""
    if not group_cols:
        return np.zeros(len(df), dtype=np.intp), pd.DataFrame(index=[0])
    gb = df.groupby(list(group_cols), sort=True, observed=True, dropna=False)
    codes = gb.ngroup().to_numpy(dtype=np.intp)
    keys = gb.size().index.to_frame(index=False)
    keys.columns = list(group_cols)
    return codes, keys


def _sum_by(codes: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    return np.bincount(codes, weights=values, minlength=n_groups)


# ----------------------------------------------------------------------------- DSR


def dsr(
    df: pd.DataFrame,
    count_col: str,
    pop_col: str,
    standard_col: str | None = None,
    group_cols: Sequence[str] | None = None,
    age_col: str | None = None,
    per: float = 100000,
    conf: float = 0.95,
    ci_method: str = "dobson",
    standard: pd.Series | Sequence[float] | str | None = None,
    eventfreq_col: str | None = None,
    min_count: int = DSR_MIN_COUNT,
) -> pd.DataFrame:
    """Directly standardised rate per ``per`` with confidence limits.

    DSR = sum_i w_i x_i / n_i / sum_i w_i, with w_i the standard population for stratum i
    (age band, or age band x sex). Strata rows are matched to the standard on ``age_col``
    (by the band's lower age, so "0-4", "00-04" and 0 all match) or, without ``age_col``,
    by position within each group as PHEindicatormethods does. The standard is
    ``standard_col`` (a column of ``df``), ``standard`` (a Series indexed by age band, a
    sequence matched by position, or "esp2013") or, by default, ESP2013. With age x sex
    strata and an age-only standard, each sex gets the age band's standard; a standard that
    differs by sex too (e.g. NHS England's 6 age bands x 2 sexes England population) should be
    merged onto the rows and passed as ``standard_col``.

    ci_method:
      - "dobson" (default): Dobson et al. (1991) with Byar's limits for the total count X,
        DSR + sqrt(V/X) (X_lim - X), V = sum_i (w_i/sum w)^2 x_i / n_i^2 (PHEindicatormethods
        ``calculate_dsr``).
      - "normal": DSR -/+ z sqrt(V), the normal approximation with the same Poisson variance V.
        This is not NHS England's published Mental Health Act interval, whose variance is
        binomial, sum_i w_i^2 r_i (1 - r_i) / n_i: use ``pcref_eval.benchmark.nhse.nhse_dsr``
        to reproduce NHS England's figures.

    As PHEindicatormethods, value and limits are NaN when the total count is below
    ``min_count`` (10), with the reason in ``note``; missing counts are treated as zero;
    denominators must be positive.

    Non-independent events (``eventfreq_col``): ``count_col`` is then the number of people
    with that event frequency; the variance is sum_f f^2 V_f over frequencies f and the rate
    uses the total events sum_f f x_f (PHEindicatormethods ``independent_events = FALSE``).
    """
    method = ci_method.lower()
    if method not in {"dobson", "normal"}:
        raise ValueError("ci_method must be 'dobson' or 'normal'")
    c = _conf(conf)
    group_cols = list(group_cols or [])
    optional = [c for c in (age_col, standard_col, eventfreq_col) if c]
    for col in [count_col, pop_col, *group_cols, *optional]:
        if col not in df.columns:
            raise KeyError(f"column {col!r} is not in the data")

    x = df[count_col].to_numpy(dtype=float)
    n = df[pop_col].to_numpy(dtype=float)
    _check_nonneg(x, "numerators")
    if np.any(np.isnan(n)):
        raise ValueError("denominators cannot be missing")
    _check_positive(n, "denominators")
    x0 = np.nan_to_num(x, nan=0.0)

    codes, keys = _group_codes(df, group_cols)
    n_groups = len(keys)
    if standard_col is not None:
        w = df[standard_col].to_numpy(dtype=float)
    else:
        pos_codes = codes
        if eventfreq_col is not None:
            f_codes, _ = _group_codes(df, [*group_cols, eventfreq_col])
            pos_codes = f_codes
        w = _standard_for_rows(df, standard, age_col, pos_codes)
    if np.any(np.isnan(w)) or np.any(w < 0):
        raise ValueError("standard populations must be non-missing and >= 0")

    total_pop_rows = n
    if eventfreq_col is None:
        total_count = _sum_by(codes, x0, n_groups)
        sum_w = _sum_by(codes, w, n_groups)
        sum_wt = _sum_by(codes, x0 * w / n, n_groups)
        var = _sum_by(codes, x0 * (w / n) ** 2, n_groups) / sum_w**2
        total_pop = _sum_by(codes, total_pop_rows, n_groups)
    else:
        f = df[eventfreq_col].to_numpy(dtype=float)
        if np.any(np.isnan(f)):
            raise ValueError("event frequency must not be missing")
        # variance: per (group, frequency), V_f over that frequency's rows, then sum_f f^2 V_f
        gf_codes, gf_keys = _group_codes(df, [*group_cols, eventfreq_col])
        n_gf = len(gf_keys)
        v_f = _sum_by(gf_codes, x0 * (w / n) ** 2, n_gf) / _sum_by(gf_codes, w, n_gf) ** 2
        f_of_gf = gf_keys[eventfreq_col].to_numpy(dtype=float)
        group_of_gf = _match_rows(gf_keys[group_cols], keys) if group_cols else np.zeros(n_gf, dtype=np.intp)
        var = _sum_by(group_of_gf, v_f * f_of_gf**2, n_groups)
        # events collapse to one row per (group, age stratum): events = sum_f f * persons
        events = x0 * f
        strata_cols = [*group_cols, age_col] if age_col else None
        if strata_cols is None:
            raise ValueError("age_col is required for non-independent events")
        s_codes, s_keys = _group_codes(df, strata_cols)
        n_s = len(s_keys)
        first = np.full(n_s, -1, dtype=np.intp)
        order = np.arange(len(df))[::-1]
        first[s_codes[order]] = order  # first row of each stratum
        ev_s = _sum_by(s_codes, events, n_s)
        n_s_pop = n[first]
        w_s = w[first]
        chk = pd.DataFrame({"s": s_codes, "n": n, "w": w}).groupby("s").nunique()
        if (chk > 1).any().any():
            raise ValueError("rows with the same group and age band have different populations or standards")
        grp_of_s = _match_rows(s_keys[group_cols], keys) if group_cols else np.zeros(n_s, dtype=np.intp)
        total_count = _sum_by(grp_of_s, ev_s, n_groups)
        sum_w = _sum_by(grp_of_s, w_s, n_groups)
        sum_wt = _sum_by(grp_of_s, ev_s * w_s / n_s_pop, n_groups)
        total_pop = _sum_by(grp_of_s, n_s_pop, n_groups)

    value = sum_wt / sum_w * per
    if method == "dobson":
        bl, bu = byars_limits(total_count, c)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.sqrt(var / total_count) * per
        lower = value + scale * (bl - total_count)
        upper = value + scale * (bu - total_count)
        label = "Dobson" if eventfreq_col is None else "Dobson, with confidence adjusted for non-independent events"
    else:
        se = np.sqrt(var) * per
        z = _z(c)
        lower, upper = value - z * se, value + z * se
        label = "Normal approximation"
    small = total_count < min_count
    value = np.where(small, np.nan, value)
    lower = np.where(small, np.nan, lower)
    upper = np.where(small, np.nan, upper)
    out = keys.reset_index(drop=True).copy() if group_cols else pd.DataFrame(index=range(1))
    out["total_count"] = total_count
    out["total_pop"] = total_pop
    out["value"] = value
    out["lower"] = lower
    out["upper"] = upper
    out["conf"] = c
    out["method"] = label
    out["note"] = np.where(small, DSR_NOTE_SMALL, "")
    return out


def _match_rows(sub: pd.DataFrame, keys: pd.DataFrame) -> np.ndarray:
    """Position in ``keys`` of each row of ``sub`` (same columns)."""
    cols = list(keys.columns)
    idx = pd.MultiIndex.from_frame(keys[cols])
    pos = idx.get_indexer(pd.MultiIndex.from_frame(sub[cols].reset_index(drop=True)))
    if np.any(pos < 0):
        raise ValueError("internal error: group keys do not match")
    return pos.astype(np.intp)


# ----------------------------------------------------------------------------- ISR


def isr(
    df: pd.DataFrame,
    count_col: str,
    pop_col: str,
    ref_count_col: str = "refcount",
    ref_pop_col: str = "refpop",
    *,
    reference: pd.DataFrame | None = None,
    group_cols: Sequence[str] | None = None,
    age_col: str | None = None,
    statistic: str = "ratio",
    refvalue: float = 1.0,
    per: float = 100000,
    conf: float = 0.95,
    allow_zero_pop: bool = False,
) -> pd.DataFrame:
    """Indirectly standardised ratio (observed / expected) or rate, with exact/Byar's limits.

    Expected E = sum_i r_i n_i with reference stratum rates r_i = X_ref,i / N_ref,i (missing
    reference counts and local populations count as zero). Limits are those of the observed
    count O (exact Poisson below 10, Byar's from 10; Breslow & Day 1987) divided by E, as
    PHEindicatormethods ``calculate_ISRatio`` (``statistic="ratio"``: O/E x ``refvalue``) and
    ``calculate_ISRate`` (``statistic="rate"``: O/E x the crude reference rate per ``per``).

    The reference counts/populations are columns of ``df`` or, with ``reference``, columns of a
    table joined on ``age_col``. A zero local population raises an error unless
    ``allow_zero_pop`` (then it contributes nothing to E, as in current PHEindicatormethods).
    """
    stat = statistic.lower()
    if stat not in {"ratio", "rate"}:
        raise ValueError("statistic must be 'ratio' or 'rate'")
    c = _conf(conf)
    group_cols = list(group_cols or [])
    data = df
    if reference is not None:
        if age_col is None:
            raise ValueError("age_col is required to join a reference table")
        ref = reference[[age_col, ref_count_col, ref_pop_col]].copy()
        ref["_key"] = _age_key(ref[age_col])
        data = df.drop(columns=[ref_count_col, ref_pop_col], errors="ignore").copy()
        data["_key"] = _age_key(data[age_col])
        data = data.merge(ref.drop(columns=[age_col]), on="_key", how="left", validate="many_to_one")
        if data[ref_pop_col].isna().any():
            missing = sorted(set(data.loc[data[ref_pop_col].isna(), age_col].astype(str)))
            raise ValueError(f"age bands not in the reference data: {missing}")
    for col in [count_col, pop_col, ref_count_col, ref_pop_col, *group_cols]:
        if col not in data.columns:
            raise KeyError(f"column {col!r} is not in the data")

    x = data[count_col].to_numpy(dtype=float)
    n = data[pop_col].to_numpy(dtype=float)
    xr = data[ref_count_col].to_numpy(dtype=float)
    nr = data[ref_pop_col].to_numpy(dtype=float)
    _check_nonneg(x, "numerators")
    _check_nonneg(n, "denominators")
    if not allow_zero_pop and np.any(n == 0):
        bad = data.loc[n == 0, [*group_cols, *([age_col] if age_col else [])]]
        where = bad.astype(str).agg(" / ".join, axis=1).tolist() if bad.shape[1] else [str(i) for i in bad.index]
        raise ValueError(
            "population (denominator) is zero in "
            f"{len(where)} row(s): {where[:10]}; an indirectly standardised ratio needs a positive "
            "population in every stratum (pass allow_zero_pop=True to let such strata contribute "
            "no expected events)"
        )
    if np.any(np.isnan(nr)) or np.any(nr <= 0):
        raise ValueError("reference populations must all be present and greater than zero")

    codes, keys = _group_codes(data, group_cols)
    g = len(keys)
    expected = _sum_by(codes, np.nan_to_num(xr) / nr * np.nan_to_num(n), g)
    observed = _sum_by(codes, np.nan_to_num(x), g)
    lo, up, method = poisson_limits(observed, c)
    if stat == "ratio":
        scale = refvalue
        label = f"indirectly standardised ratio x {refvalue:g}"
    else:
        scale = _sum_by(codes, np.nan_to_num(xr), g) / _sum_by(codes, nr, g) * per
        label = f"indirectly standardised rate per {per:g}"
    with np.errstate(divide="ignore", invalid="ignore"):
        value = observed / expected * scale
        lower = lo / expected * scale
        upper = up / expected * scale
    out = keys.reset_index(drop=True).copy() if group_cols else pd.DataFrame(index=range(1))
    out["observed"] = observed
    out["expected"] = expected
    if stat == "rate":
        out["ref_rate"] = scale
    out["value"] = value
    out["lower"] = lower
    out["upper"] = upper
    out["conf"] = c
    out["statistic"] = label
    out["method"] = method
    return out


# ----------------------------------------------------------------------------- two-group comparisons


def _frame(idx, **cols) -> pd.DataFrame:
    cols = {k: np.atleast_1d(v) for k, v in cols.items()}
    n = max(len(v) for v in cols.values())
    return pd.DataFrame(cols, index=idx if idx is not None and len(idx) == n else None)


def rate_ratio(
    x1: ArrayLike,
    n1: ArrayLike,
    x2: ArrayLike,
    n2: ArrayLike,
    conf: float = 0.95,
    method: str = "auto",
) -> pd.DataFrame:
    """Ratio of two Poisson rates (x1/n1) / (x2/n2) with a confidence interval.

    method:
      - "exact": conditional exact binomial method. Given x1 + x2, x1 is binomial with
        p = n1 RR / (n1 RR + n2); Clopper-Pearson limits (pL, pU) for p give
        RR limits p/(1-p) x n2/n1 (Breslow & Day 1987, s. 2.4; Ederer & Mantel 1974).
      - "lognormal": RR exp(-/+ z sqrt(1/x1 + 1/x2)) (Rothman & Greenland 1998); undefined
        when either count is 0.
      - "auto" (default): exact when either count is below 10, otherwise log-normal.
    """
    m = method.lower()
    if m not in {"auto", "exact", "lognormal"}:
        raise ValueError("method must be 'auto', 'exact' or 'lognormal'")
    idx = _index_of(x1, n1, x2, n2)
    x1, n1, x2, n2 = np.broadcast_arrays(*(np.atleast_1d(_arr(v)) for v in (x1, n1, x2, n2)))
    for v, w in ((x1, "x1"), (x2, "x2")):
        _check_nonneg(v, w)
    for v, w in ((n1, "n1"), (n2, "n2")):
        _check_positive(v, w)
    c = _conf(conf)
    a = 1.0 - c
    z = _z(c)
    with np.errstate(divide="ignore", invalid="ignore"):
        rr = (x1 / n1) / (x2 / n2)
        # log-normal
        se = np.sqrt(1.0 / x1 + 1.0 / x2)
        ln_lo, ln_hi = rr * np.exp(-z * se), rr * np.exp(z * se)
        ln_bad = (x1 == 0) | (x2 == 0)
        ln_lo = np.where(ln_bad, np.nan, ln_lo)
        ln_hi = np.where(ln_bad, np.nan, ln_hi)
        # conditional exact (Clopper-Pearson on x1 | x1 + x2)
        tot = x1 + x2
        p_lo = np.where(x1 == 0, 0.0, stats.beta.ppf(a / 2.0, x1, tot - x1 + 1.0))
        p_hi = np.where(x2 == 0, 1.0, stats.beta.ppf(1.0 - a / 2.0, x1 + 1.0, tot - x1))
        ex_lo = p_lo / (1.0 - p_lo) * n2 / n1
        ex_hi = np.where(p_hi >= 1.0, np.inf, p_hi / (1.0 - p_hi) * n2 / n1)
        ex_bad = tot == 0
        ex_lo = np.where(ex_bad, np.nan, ex_lo)
        ex_hi = np.where(ex_bad, np.nan, ex_hi)
    if m == "exact":
        use_exact = np.ones_like(rr, dtype=bool)
    elif m == "lognormal":
        use_exact = np.zeros_like(rr, dtype=bool)
    else:
        use_exact = (x1 < EXACT_BELOW) | (x2 < EXACT_BELOW)
    return _frame(
        idx,
        value=rr,
        lower=np.where(use_exact, ex_lo, ln_lo),
        upper=np.where(use_exact, ex_hi, ln_hi),
        method=np.where(use_exact, "exact conditional", "log-normal").astype(object),
    )


def risk_ratio(x1: ArrayLike, n1: ArrayLike, x2: ArrayLike, n2: ArrayLike, conf: float = 0.95) -> pd.DataFrame:
    """Risk ratio (x1/n1) / (x2/n2) with the Katz log interval (Katz et al. 1978).

    RR exp(-/+ z sqrt(1/x1 - 1/n1 + 1/x2 - 1/n2)); limits are NaN when x1 or x2 is 0.
    """
    idx = _index_of(x1, n1, x2, n2)
    x1, n1, x2, n2 = np.broadcast_arrays(*(np.atleast_1d(_arr(v)) for v in (x1, n1, x2, n2)))
    if np.any(x1 > n1) or np.any(x2 > n2):
        raise ValueError("numerators must not exceed denominators for a risk ratio")
    _check_nonneg(np.concatenate([x1, x2]), "numerators")
    _check_positive(np.concatenate([n1, n2]), "denominators")
    z = _z(conf)
    with np.errstate(divide="ignore", invalid="ignore"):
        rr = (x1 / n1) / (x2 / n2)
        se = np.sqrt(1.0 / x1 - 1.0 / n1 + 1.0 / x2 - 1.0 / n2)
        bad = (x1 == 0) | (x2 == 0)
        lo = np.where(bad, np.nan, rr * np.exp(-z * se))
        hi = np.where(bad, np.nan, rr * np.exp(z * se))
    return _frame(idx, value=rr, lower=lo, upper=hi, method=np.full(len(rr), "Katz log", dtype=object))


def odds_ratio(x1: ArrayLike, n1: ArrayLike, x2: ArrayLike, n2: ArrayLike, conf: float = 0.95) -> pd.DataFrame:
    """Odds ratio [x1/(n1-x1)] / [x2/(n2-x2)] with Woolf's log interval (Woolf 1955).

    OR exp(-/+ z sqrt(1/a + 1/b + 1/c + 1/d)); limits are NaN when any cell is 0.
    """
    idx = _index_of(x1, n1, x2, n2)
    x1, n1, x2, n2 = np.broadcast_arrays(*(np.atleast_1d(_arr(v)) for v in (x1, n1, x2, n2)))
    if np.any(x1 > n1) or np.any(x2 > n2):
        raise ValueError("numerators must not exceed denominators for an odds ratio")
    _check_nonneg(np.concatenate([x1, x2]), "numerators")
    z = _z(conf)
    a, b, c_, d = x1, n1 - x1, x2, n2 - x2
    with np.errstate(divide="ignore", invalid="ignore"):
        orr = (a * d) / (b * c_)
        se = np.sqrt(1.0 / a + 1.0 / b + 1.0 / c_ + 1.0 / d)
        bad = (a == 0) | (b == 0) | (c_ == 0) | (d == 0)
        lo = np.where(bad, np.nan, orr * np.exp(-z * se))
        hi = np.where(bad, np.nan, orr * np.exp(z * se))
    return _frame(idx, value=orr, lower=lo, upper=hi, method=np.full(len(orr), "Woolf log", dtype=object))
