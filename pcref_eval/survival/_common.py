"""Shared input handling for the survival functions (not public API)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

ALL_GROUP = "all"


def z_value(conf: float) -> float:
    """Two-sided normal quantile for a ``conf`` confidence interval (e.g. 1.96 for 0.95)."""
    if not 0.0 < conf < 1.0:
        raise ValueError(f"conf must be in (0, 1), got {conf!r}")
    return float(stats.norm.ppf(1.0 - (1.0 - conf) / 2.0))


def require_columns(df: pd.DataFrame, columns) -> None:
    """Raise a KeyError naming every requested column missing from ``df``."""
    missing = [c for c in columns if c is not None and c not in df.columns]
    if missing:
        raise KeyError(f"columns not in data: {missing}")


def as_event(values, name: str = "event") -> np.ndarray:
    """Return a 0/1 float event indicator; accept bool or numeric 0/1 only (no silent recoding)."""
    arr = np.asarray(values)
    if arr.dtype == bool:
        return arr.astype(np.float64)
    arr = pd.to_numeric(pd.Series(arr), errors="raise").to_numpy(dtype=np.float64)
    ok = np.isnan(arr) | (arr == 0) | (arr == 1)
    if not ok.all():
        bad = np.unique(arr[~ok])[:5]
        raise ValueError(
            f"{name} must be 0/1 or boolean (got values {bad.tolist()}); "
            "recode first, e.g. status == 1 for the event of interest"
        )
    return arr


def as_duration(values, name: str = "duration") -> np.ndarray:
    """Return durations as float64, rejecting negative values."""
    arr = pd.to_numeric(pd.Series(np.asarray(values)), errors="raise").to_numpy(dtype=np.float64)
    if np.any(arr[~np.isnan(arr)] < 0):
        raise ValueError(f"{name} must be non-negative")
    return arr


def group_levels(values: pd.Series) -> list:
    """Group labels in display order: categorical order if categorical, else sorted unique values."""
    s = pd.Series(values)
    if isinstance(s.dtype, pd.CategoricalDtype):
        present = set(s.dropna().unique())
        return [c for c in s.cat.categories if c in present]
    uniq = list(pd.unique(s.dropna()))
    try:
        return sorted(uniq)
    except TypeError:
        return sorted(uniq, key=str)


def group_codes(df: pd.DataFrame, group_col: str | None) -> tuple[np.ndarray, list]:
    """Integer codes (0..G-1, -1 for missing) and labels for ``group_col`` ("all" when None)."""
    if group_col is None:
        return np.zeros(len(df), dtype=np.int64), [ALL_GROUP]
    levels = group_levels(df[group_col])
    codes = pd.Categorical(df[group_col], categories=levels).codes.astype(np.int64)
    return codes, levels


def strata_codes(df: pd.DataFrame, strata) -> tuple[np.ndarray, list]:
    """Integer stratum codes from one column or a list of columns (-1 where any is missing)."""
    if strata is None:
        return np.zeros(len(df), dtype=np.int64), [None]
    cols = [strata] if isinstance(strata, str) else list(strata)
    if len(cols) == 1:
        return group_codes(df, cols[0])
    parts = df[cols]
    missing = parts.isna().any(axis=1).to_numpy()
    keys = pd.MultiIndex.from_frame(parts.astype(str))
    codes, uniques = pd.factorize(keys, sort=True)
    codes = codes.astype(np.int64)
    codes[missing] = -1
    return codes, list(uniques)


@dataclass
class SortedGroups:
    """Rows sorted by (group, time) with the slice of each group."""

    order: np.ndarray
    bounds: list[tuple[int, int]]


def order_codes_time(codes: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Row order sorting by integer code then time (ties in time in arbitrary order).

    Quicksort on time then a stable radix sort on the small integer codes: several times
    faster than ``np.lexsort`` at a million rows.
    """
    order = np.argsort(time, kind="quicksort")
    if codes.size == 0 or codes.min() == codes.max():
        return order
    small = np.int16 if codes.max() < np.iinfo(np.int16).max and codes.min() >= 0 else np.int64
    return order[np.argsort(codes[order].astype(small), kind="stable")]


def sort_by_group_time(codes: np.ndarray, time: np.ndarray, n_groups: int) -> SortedGroups:
    """Sort once by group then time and return per-group slices of the sorted order."""
    order = order_codes_time(codes, time)
    sorted_codes = codes[order]
    starts = np.searchsorted(sorted_codes, np.arange(n_groups), side="left")
    ends = np.searchsorted(sorted_codes, np.arange(n_groups), side="right")
    return SortedGroups(order=order, bounds=list(zip(starts.tolist(), ends.tolist())))


def time_blocks(sorted_time: np.ndarray) -> np.ndarray:
    """Start index of each run of equal values in a sorted time array."""
    if sorted_time.size == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.empty(sorted_time.size, dtype=bool)
    change[0] = True
    np.not_equal(sorted_time[1:], sorted_time[:-1], out=change[1:])
    return np.flatnonzero(change)


def chisq_sf(stat: float, df: int) -> float:
    """Upper-tail chi-square probability (NaN for df <= 0)."""
    if df <= 0 or not np.isfinite(stat):
        return float("nan")
    return float(stats.chi2.sf(stat, df))
