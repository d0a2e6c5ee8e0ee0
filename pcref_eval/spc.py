"""Making Data Count XmR (individuals and moving range) statistical process control.

Calculations follow NHSRplotthedots (NHS-R Community, v0.2.2), the reference
implementation of NHS England's "Making Data Count" method:

- mean of the (baseline) values; moving ranges mR_i = |y_i - y_(i-1)|; mean moving range
  mR-bar; optionally screen out moving ranges >= 3.267 x mR-bar and recompute mR-bar;
- process limits mean -/+ 2.66 x mR-bar; "near" limits two thirds of the way,
  mean -/+ (2/3) x 2.66 x mR-bar;
- special cause rules: a point outside the process limits; 7 points in a row on one side of
  the mean (a "shift"; every point of the run is flagged); 7 points in a row strictly
  increasing or decreasing (a "trend"; every point flagged); 2 of 3 consecutive points
  between the near limit and the process limit on the same side of the mean (only those
  close points flagged). For reporting which rule fired, precedence is outside limits >
  trend > two-in-three > shift;
- point type: common cause, or special cause improvement / concern by which side of the mean
  the point lies relative to the improvement direction (neutral when there is no direction);
- variation icon from the last point; assurance icon comparing a target with the last
  point's process limits.

References: Wheeler DJ (1995) Advanced topics in SPC; NHS England / NHS Improvement (2019)
Making Data Count: Strengthening your decisions; NHSRplotthedots R package.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "LIMIT",
    "OUTLIER_MR",
    "XmRSummary",
    "xmr",
    "xmr_by",
    "xmr_summary",
    "moving_range",
    "seven_point_one_side_mean",
    "part_of_seven",
    "seven_point_trend",
    "two_in_three",
    "part_of_two_in_three",
    "variation_icon",
    "assurance_icon",
]

LIMIT = 2.66  # 3 / d2 with d2 = 1.128 for moving ranges of 2 (Wheeler)
NEAR_LIMIT = 2.0 * LIMIT / 3.0
OUTLIER_MR = 3.267  # D4 x mR-bar: the upper range limit for a moving range of 2
RUN = 7  # points for a shift or trend

_DIRECTIONS = {"increase": 1, "decrease": -1, "neither": 0, "neutral": 0}


# ----------------------------------------------------------------------------- rule helpers


def moving_range(y: np.ndarray) -> np.ndarray:
    """Moving ranges |y_i - y_(i-1)|; the first is NaN."""
    y = np.asarray(y, dtype=float)
    return np.concatenate([[np.nan], np.abs(np.diff(y))]) if len(y) else np.array([])


def seven_point_one_side_mean(rtm: Sequence[float]) -> np.ndarray:
    """1 at the 7th (and each later) consecutive point on the same side of the mean, else 0.

    ``rtm`` is the sign of (y - mean); 0 (a point on the mean) breaks a run.
    """
    v = np.nan_to_num(np.asarray(rtm, dtype=float))
    out = np.zeros(len(v))
    if len(v) < RUN:
        return out
    w = np.lib.stride_tricks.sliding_window_view(v, RUN)
    same = np.all(w == w[:, -1:], axis=1) & (w[:, -1] != 0)
    out[RUN - 1:] = same
    return out


def part_of_seven(flags: Sequence[float]) -> np.ndarray:
    """1 for every point of a flagged run: a point is part of it if it or one of the next 6 is flagged."""
    v = np.abs(np.nan_to_num(np.asarray(flags, dtype=float))) == 1
    padded = np.concatenate([v, np.zeros(RUN - 1, dtype=bool)])
    if len(v) == 0:
        return np.zeros(0)
    w = np.lib.stride_tricks.sliding_window_view(padded, RUN)
    return np.any(w, axis=1).astype(float)


def seven_point_trend(y: Sequence[float]) -> np.ndarray:
    """+1 / -1 at the 7th (and each later) point of 7 strictly increasing / decreasing points, else 0.

    Ties (equal consecutive values) break a trend.
    """
    y = np.asarray(y, dtype=float)
    out = np.zeros(len(y))
    if len(y) < RUN:
        return out
    d = np.sign(np.diff(y))
    w = np.lib.stride_tricks.sliding_window_view(d, RUN - 1)
    out[RUN - 1:] = np.where(np.all(w == 1, axis=1), 1.0, np.where(np.all(w == -1, axis=1), -1.0, 0.0))
    return out


def two_in_three(close: Sequence[float], rtm: Sequence[float]) -> np.ndarray:
    """1 for every point inside a window of 3 consecutive points with >= 2 close to a limit, all on one side."""
    v = np.nan_to_num(np.asarray(close, dtype=float))
    r = np.nan_to_num(np.asarray(rtm, dtype=float))
    n = len(v)
    if n == 0:
        return np.zeros(0)
    vp = np.concatenate([[0, 0], v, [0, 0]])
    rp = np.concatenate([[0, 0], r, [0, 0]])
    wv = np.lib.stride_tricks.sliding_window_view(vp, 3).sum(axis=1)  # window starting at padded j
    wr = np.abs(np.lib.stride_tricks.sliding_window_view(rp, 3).sum(axis=1))
    ok = (wv >= 2) & (wr == 3)  # ok[j]: window padded[j:j+3], i.e. points j-2..j
    # point i (0-based) lies in windows starting at padded i, i+1, i+2
    return (ok[0:n] | ok[1:n + 1] | ok[2:n + 2]).astype(float)


def part_of_two_in_three(in_window: Sequence[float], close: Sequence[float]) -> np.ndarray:
    """Flag only the close-to-limit points of a qualifying two-in-three window."""
    a = np.asarray(in_window, dtype=float)
    c = np.asarray(close, dtype=float)
    return ((a == 1) & (np.abs(c) == 1)).astype(float)


# ----------------------------------------------------------------------------- limits


def _segment_limits(y: np.ndarray, baseline_n: int | None, screen_outliers: bool) -> tuple[float, float]:
    """(mean, mean moving range) for one segment, from its first ``baseline_n`` points if given."""
    base = y[:baseline_n] if baseline_n else y
    mean = float(np.nanmean(base)) if np.any(~np.isnan(base)) else np.nan
    mr = moving_range(base)
    amr = float(np.nanmean(mr)) if np.any(~np.isnan(mr)) else np.nan
    if screen_outliers and not np.isnan(amr):
        kept = mr[mr < OUTLIER_MR * amr]
        amr = float(np.mean(kept)) if len(kept) else np.nan
    return mean, amr


def _segments(x: pd.Series, rebase_at) -> np.ndarray:
    """Segment number of each point: how many rebase points are at or before it."""
    if rebase_at is None:
        return np.zeros(len(x), dtype=int)
    pts = list(rebase_at) if isinstance(rebase_at, (list, tuple, np.ndarray, pd.Index, pd.Series)) else [rebase_at]
    if len(pts) == 0:
        return np.zeros(len(x), dtype=int)
    if pd.api.types.is_datetime64_any_dtype(x):
        pts = pd.to_datetime(pd.Series(pts)).to_numpy()
        xv = x.to_numpy()
    else:
        pts = np.asarray(pts)
        xv = x.to_numpy()
    return np.sum(xv[:, None] >= np.sort(pts)[None, :], axis=1).astype(int)


# ----------------------------------------------------------------------------- main


@dataclass(frozen=True)
class XmRSummary:
    """Making Data Count icons and the latest limits for one XmR chart."""

    variation: str  # common_cause | special_cause_improvement_high/low | special_cause_concern_high/low | special_cause_neutral_high/low
    assurance: str | None  # consistent_pass | consistent_fail | inconsistent | None (no target or no direction)
    improvement: str
    target: float | None
    n: int
    mean: float
    lpl: float
    upl: float
    n_special_cause: int

    def to_dict(self) -> dict:
        return asdict(self)


def variation_icon(point_type: str, relative_to_mean: float, improvement: str) -> str:
    """Making Data Count variation icon for the latest point."""
    if point_type == "common_cause":
        return "common_cause"
    side = "high" if relative_to_mean > 0 else "low"
    if point_type == "special_cause_neutral":
        return f"special_cause_neutral_{side}"
    return f"{point_type}_{side}"


def assurance_icon(target: float | None, lpl: float, upl: float, improvement: str) -> str | None:
    """Making Data Count assurance icon: does the process reliably meet the target?

    A target beyond the process limits is consistently passed or failed (depending on the
    improvement direction); a target inside them is hit and miss ("inconsistent").
    """
    d = _DIRECTIONS[improvement]
    if target is None or d == 0 or np.isnan(lpl) or np.isnan(upl):
        return None
    if target > upl:
        return "consistent_fail" if d == 1 else "consistent_pass"
    if target < lpl:
        return "consistent_pass" if d == 1 else "consistent_fail"
    return "inconsistent"


def xmr(
    values: Sequence[float] | pd.Series,
    dates: Sequence | pd.Series | None = None,
    improvement: str = "increase",
    target: float | None = None,
    baseline_n: int | None = None,
    screen_outliers: bool = False,
    rebase_at=None,
) -> pd.DataFrame:
    """Making Data Count XmR chart calculations for one series (NHSRplotthedots ``ptd_spc``).

    Parameters
    ----------
    values, dates
        The series and its time points (default 1..n). Points are sorted by date.
    improvement
        "increase", "decrease" or "neither" (direction of improvement).
    target
        Optional target for the assurance icon.
    baseline_n
        Fix the mean and limits from the first ``baseline_n`` points of each segment.
    screen_outliers
        Drop moving ranges >= 3.267 x mR-bar before recomputing mR-bar (NHSRplotthedots'
        default; False replicates the Making Data Count Excel tool).
    rebase_at
        Date(s) at which new limits start; each segment gets its own mean and limits.

    Returns
    -------
    DataFrame with one row per point: date, value, segment, mean, lpl, upl, near_lower,
    near_upper, relative_to_mean, outside_limits, close_to_limits, special_cause, rule,
    point_type, target. ``df.attrs["summary"]`` holds the :class:`XmRSummary` fields
    (variation and assurance icons) as a dict; see :func:`xmr_summary`.
    """
    if improvement not in _DIRECTIONS:
        raise ValueError("improvement must be 'increase', 'decrease' or 'neither'")
    direction = _DIRECTIONS[improvement]
    y = pd.Series(np.asarray(values, dtype=float))
    if dates is None:
        x = pd.Series(np.arange(1, len(y) + 1))
    else:
        x = pd.Series(list(dates)) if not isinstance(dates, pd.Series) else dates.reset_index(drop=True)
        if len(x) != len(y):
            raise ValueError("values and dates must have the same length")
        if x.duplicated().any():
            raise ValueError("dates must be unique within a series")
    if baseline_n is not None and baseline_n < 2:
        raise ValueError("baseline_n must be at least 2")
    order = np.argsort(x.to_numpy(), kind="stable")
    x = x.iloc[order].reset_index(drop=True)
    yv = y.to_numpy()[order]
    seg = _segments(x, rebase_at)
    cols = _xmr_core(yv, seg, baseline_n, screen_outliers, direction)
    out = pd.DataFrame({"date": x, **cols, "target": np.nan if target is None else float(target)})
    out.attrs["summary"] = _summary_from_arrays(cols, improvement, target).to_dict()
    out.attrs["improvement"] = improvement
    return out


def _xmr_core(yv: np.ndarray, seg: np.ndarray, baseline_n: int | None, screen_outliers: bool,
              direction: int) -> dict[str, np.ndarray]:
    """XmR columns for one date-sorted series with segment labels (the calculation behind :func:`xmr`)."""
    n = len(yv)
    mean = np.empty(n)
    amr = np.empty(n)
    segments = np.unique(seg)
    for s in segments:
        m = seg == s
        mean[m], amr[m] = _segment_limits(yv[m], baseline_n, screen_outliers)
    lpl, upl = mean - LIMIT * amr, mean + LIMIT * amr
    nlpl, nupl = mean - NEAR_LIMIT * amr, mean + NEAR_LIMIT * amr
    with np.errstate(invalid="ignore"):
        outside = (yv > upl) | (yv < lpl)
        rtm = np.sign(yv - mean)
        close = ~outside & ((yv < nlpl) | (yv > nupl))

    shift = np.zeros(n)
    trend = np.zeros(n)
    two3 = np.zeros(n)
    closef = close.astype(float)
    for s in segments:  # rules run within each segment, as NHSRplotthedots groups by rebase
        m = slice(None) if len(segments) == 1 else np.flatnonzero(seg == s)
        shift[m] = part_of_seven(seven_point_one_side_mean(rtm[m]))
        trend[m] = part_of_seven(seven_point_trend(yv[m]))
        two3[m] = part_of_two_in_three(two_in_three(closef[m], rtm[m]), closef[m])
    special = outside | (shift == 1) | (trend == 1) | (two3 == 1)
    rule = np.select(
        [outside, trend == 1, two3 == 1, shift == 1],
        ["outside_limits", "trend", "two_in_three", "shift"],
        default="",
    ).astype(object)
    if direction == 0:
        sc_type = np.full(n, "special_cause_neutral", dtype=object)
    else:
        sc_type = np.where(rtm == direction, "special_cause_improvement", "special_cause_concern").astype(object)
    point_type = np.where(special, sc_type, "common_cause").astype(object)
    return {
        "value": yv,
        "segment": seg,
        "mean": mean,
        "lpl": lpl,
        "upl": upl,
        "near_lower": nlpl,
        "near_upper": nupl,
        "relative_to_mean": rtm,
        "outside_limits": outside,
        "close_to_limits": close,
        "special_cause": special,
        "rule": rule,
        "point_type": point_type,
    }


def _summary_from_arrays(cols: dict, improvement: str, target: float | None) -> XmRSummary:
    n = len(cols["value"])
    if n == 0:
        return XmRSummary("common_cause", None, improvement, target, 0, np.nan, np.nan, np.nan, 0)
    return XmRSummary(
        variation=variation_icon(cols["point_type"][-1], cols["relative_to_mean"][-1], improvement),
        assurance=assurance_icon(target, float(cols["lpl"][-1]), float(cols["upl"][-1]), improvement),
        improvement=improvement,
        target=None if target is None else float(target),
        n=n,
        mean=float(cols["mean"][-1]),
        lpl=float(cols["lpl"][-1]),
        upl=float(cols["upl"][-1]),
        n_special_cause=int(np.sum(cols["special_cause"])),
    )


def _summary(df: pd.DataFrame, improvement: str, target: float | None) -> XmRSummary:
    cols = {c: df[c].to_numpy() for c in ("value", "point_type", "relative_to_mean", "lpl", "upl", "mean",
                                          "special_cause")}
    return _summary_from_arrays(cols, improvement, target)


def xmr_summary(df: pd.DataFrame) -> XmRSummary:
    """The :class:`XmRSummary` (variation and assurance icons) of an :func:`xmr` result."""
    if "summary" in df.attrs:
        return XmRSummary(**df.attrs["summary"])
    improvement = df.attrs.get("improvement", "increase")
    t = df["target"].iloc[-1] if "target" in df and len(df) else np.nan
    return _summary(df, improvement, None if pd.isna(t) else float(t))


def xmr_by(
    df: pd.DataFrame,
    value_col: str,
    date_col: str,
    group_cols: Sequence[str],
    improvement: str = "increase",
    target: float | None = None,
    baseline_n: int | None = None,
    screen_outliers: bool = False,
    rebase_at=None,
) -> pd.DataFrame:
    """Run :func:`xmr` on each group (facet) of a long table; returns the group columns plus the xmr columns.

    Same options as :func:`xmr` (applied to every series). ``df.attrs["summaries"]`` maps each
    group key to its summary dict.
    """
    if improvement not in _DIRECTIONS:
        raise ValueError("improvement must be 'increase', 'decrease' or 'neither'")
    group_cols = list(group_cols)
    d = df.sort_values([*group_cols, date_col], kind="stable").reset_index(drop=True)
    if d.duplicated([*group_cols, date_col]).any():
        raise ValueError("dates must be unique within each series")
    gb = d.groupby(group_cols, sort=False, observed=True, dropna=False)
    codes = gb.ngroup().to_numpy()
    bounds = np.flatnonzero(np.diff(codes)) + 1
    starts = np.r_[0, bounds]
    ends = np.r_[bounds, len(d)]
    y_all = d[value_col].to_numpy(dtype=float)
    seg_all = _segments(d[date_col], rebase_at)
    parts: dict[str, list] = {}
    summaries = {}
    direction = _DIRECTIONS[improvement]
    for a, b in zip(starts, ends):
        seg = seg_all[a:b] - seg_all[a:b].min() if rebase_at is not None else seg_all[a:b]
        cols = _xmr_core(y_all[a:b], seg, baseline_n, screen_outliers, direction)
        for k, v in cols.items():
            parts.setdefault(k, []).append(v)
        key = tuple(d.loc[a, group_cols])
        summaries[key if len(key) > 1 else key[0]] = _summary_from_arrays(cols, improvement, target).to_dict()
    out = d[[*group_cols, date_col]].rename(columns={date_col: "date"})
    for k, v in parts.items():
        out[k] = np.concatenate(v) if v else np.array([])
    out["target"] = np.nan if target is None else float(target)
    out.attrs = {"summaries": summaries, "improvement": improvement}
    return out
