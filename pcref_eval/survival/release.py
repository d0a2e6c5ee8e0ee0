"""Disclosure-controlled Kaplan-Meier tables ("midpoint 6" rounding, as OpenSAFELY).

Follows OpenSAFELY's reusable action ``kaplan-meier-function`` (``analysis/km.R``,
``round_cmlcount`` with method "constant", ``roundmid_any``): cumulative event and censoring
counts are rounded with midpoint rounding, roundmid(x) = ceil(x / r) r - floor(r / 2) for x > 0
(0 stays 0; with r = 6: 1-6 -> 3, 7-12 -> 9, ...); the per-step counts are their differences;
the number at risk is roundmid(N) minus the lagged rounded cumulative events plus censorings;
and S(t), the Greenwood SE and the CI are re-derived from these rounded counts only.

Two further rules make every released step describe at least ``threshold`` people:

1. Event steps: event times are grouped forward so that each group holds at least
   ``threshold`` true events; the group's events are released at its last event time, so the
   released curve never drops before the true one has dropped that far. The table ends at the
   last complete group (the fewer than ``threshold`` events after it are tail, not released).
   Censorings keep their times.
2. Tail: rows are released only while the true number still at risk after the time's events
   (n_risk - n_event of the unrounded table) is at least max(``threshold``, 8) (for rounding 6;
   see :func:`min_remaining`): midpoint rounding moves a count by -3..+2, so this keeps the
   rounded number at risk above the rounded number of events (S > 0). A group with fewer than
   ``threshold`` events in total is suppressed (no rows; listed in ``attrs["suppressed_groups"]``).

Rows where neither rounded count changes carry no information and are dropped. With
``threshold=1, rounding=1`` the table reproduces the Kaplan-Meier estimate exactly (up to the
tail rule, which then drops only a final step that empties the risk set).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .km import CONF_TYPES, km_conf_int

RELEASE_COLUMNS = [
    "group",
    "time",
    "n_risk",
    "n_event",
    "n_censored",
    "cum_event",
    "cum_censored",
    "surv",
    "std_err",
    "lower",
    "upper",
]


def roundmid(x, to: int = 6):
    """Midpoint rounding (OpenSAFELY ``roundmid_any``): ceil(x / to) * to - floor(to / 2), 0 stays 0."""
    x = np.asarray(x, dtype=np.float64)
    return np.ceil(x / to) * to - np.floor(to / 2) * (x != 0)


def min_remaining(threshold: int, rounding: int) -> int:
    """Fewest true survivors of a step for it to be released.

    At least ``threshold``, and enough that the rounded number at risk after the step stays
    positive: roundmid moves a positive count by -floor(r/2) .. r - 1 - floor(r/2), so the
    rounded survivors R(N) - R(E) - R(C) are at least the true survivors minus
    floor(r/2) + 2 (r - 1 - floor(r/2)) (7 for r = 6).
    """
    half = rounding // 2
    worst = half + 2 * (rounding - 1 - half)
    return max(threshold, worst + 1)


def _forward_event_groups(n_event: np.ndarray, threshold: int) -> tuple[np.ndarray, int] | None:
    """Events re-timed forward so each step holds >= threshold events.

    Returns the re-timed event counts and the index of the last complete step; events after it
    (fewer than ``threshold``) are left out, so the caller ends the table there. None when there
    is no complete step.
    """
    grouped = np.zeros_like(n_event)
    acc = 0.0
    last_end = -1
    for i in np.flatnonzero(n_event > 0):
        acc += n_event[i]
        if acc >= threshold:
            grouped[i] = acc
            last_end = i
            acc = 0.0
    if last_end < 0:
        return None
    return grouped, last_end


def _check_full_table(part: pd.DataFrame) -> None:
    n_risk = part["n_risk"].to_numpy(dtype=np.float64)
    left = n_risk[:-1] - part["n_event"].to_numpy()[:-1] - part["n_censored"].to_numpy()[:-1]
    if not np.all(np.diff(part["time"].to_numpy()) > 0) or not np.allclose(left, n_risk[1:]):
        raise ValueError(
            "km_release_table needs the full table from kaplan_meier() (all distinct times, "
            "no times= argument, no delayed entry)"
        )


def _release_group(part: pd.DataFrame, threshold: int, rounding: int, conf_type: str, conf: float):
    _check_full_table(part)
    time = part["time"].to_numpy(dtype=np.float64)
    n_event = part["n_event"].to_numpy(dtype=np.float64)
    n_cens = part["n_censored"].to_numpy(dtype=np.float64)
    N = float(part["n_risk"].iloc[0])
    grouping = _forward_event_groups(n_event, threshold)
    if grouping is None:
        return None
    events, last_step = grouping
    cum_e = np.cumsum(events)
    cum_c = np.cumsum(n_cens)
    # true number still at risk after each time's events (never more than after re-timing)
    survivors = part["n_risk"].to_numpy(dtype=np.float64) - n_event
    keep = survivors >= min_remaining(threshold, rounding)
    keep[last_step + 1 :] = False  # no released rows after the last complete event step
    if not keep.any():
        return None
    last = np.flatnonzero(keep)[-1] + 1  # survivors is non-increasing: keep a prefix
    time, cum_e, cum_c = time[:last], cum_e[:last], cum_c[:last]
    r_e = roundmid(cum_e, rounding)
    r_c = roundmid(cum_c, rounding)
    d = np.diff(np.concatenate([[0.0], r_e]))
    c = np.diff(np.concatenate([[0.0], r_c]))
    n_risk = roundmid(N, rounding) - np.concatenate([[0.0], (r_e + r_c)[:-1]])
    informative = (d > 0) | (c > 0)
    informative[0] = True
    time, d, c, n_risk, r_e, r_c = (v[informative] for v in (time, d, c, n_risk, r_e, r_c))
    with np.errstate(divide="ignore", invalid="ignore"):
        hazard = np.where(d > 0, d / n_risk, 0.0)
        surv = np.cumprod(1.0 - hazard)
        var_log = np.cumsum(np.where(d > 0, d / (n_risk * (n_risk - d)), 0.0))
        std_err = np.where(surv > 0, surv * np.sqrt(var_log), np.nan)
    lower, upper = km_conf_int(surv, var_log, conf_type, conf)
    return pd.DataFrame(
        {
            "time": time,
            "n_risk": n_risk.astype(np.int64),
            "n_event": d.astype(np.int64),
            "n_censored": c.astype(np.int64),
            "cum_event": r_e.astype(np.int64),
            "cum_censored": r_c.astype(np.int64),
            "surv": surv,
            "std_err": std_err,
            "lower": lower,
            "upper": upper,
        }
    )


def km_release_table(
    km_table: pd.DataFrame,
    threshold: int = 7,
    rounding: int = 6,
    conf_type: str = "log",
    conf: float = 0.95,
) -> pd.DataFrame:
    """Releasable Kaplan-Meier table from :func:`kaplan_meier` output (all distinct times).

    Event steps grouped to >= ``threshold`` events, tail cut where fewer than ``threshold``
    remain, cumulative counts midpoint-rounded to ``rounding`` (OpenSAFELY "midpoint 6"), and
    n_risk, S(t), Greenwood SE and CI re-derived from the rounded counts. Contains no unrounded
    counts. Columns: group, time, n_risk, n_event, n_censored, cum_event, cum_censored, surv,
    std_err, lower, upper.
    """
    if threshold < 1 or rounding < 1:
        raise ValueError("threshold and rounding must be positive integers")
    if conf_type not in CONF_TYPES:
        raise ValueError(f"conf_type must be one of {CONF_TYPES}")
    missing = {"group", "time", "n_risk", "n_event", "n_censored"} - set(km_table.columns)
    if missing:
        raise KeyError(f"km_table lacks columns {sorted(missing)}")
    frames, suppressed = [], []
    for level, part in km_table.groupby("group", sort=False):
        out = _release_group(part.sort_values("time"), threshold, rounding, conf_type, conf)
        if out is None:
            suppressed.append(level)
            continue
        out.insert(0, "group", level)
        frames.append(out)
    result = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RELEASE_COLUMNS)
    result = result[RELEASE_COLUMNS]
    result.attrs.update(
        {
            "threshold": threshold,
            "rounding": rounding,
            "method": "OpenSAFELY midpoint rounding of cumulative counts; event steps >= threshold",
            "suppressed_groups": suppressed,
        }
    )
    return result
