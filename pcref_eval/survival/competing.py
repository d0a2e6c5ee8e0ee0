"""Cumulative incidence with competing risks (Aalen-Johansen), as cmprsk / tidycmprsk report it.

- Estimate: F_k(t) = sum_{t_j <= t} S(t_j-) d_kj / n_j, with S the all-cause Kaplan-Meier.
- Variance: the delta-method (Aalen-type) variance of cmprsk's ``cuminc`` (Fortran ``cinc``,
  R. Gray), updated at the cause-k event times and carried forward in between.
- CI: tidycmprsk's log-log interval F^exp(+/- z se / (F log F)) (Pintilie 2006), so limits stay
  in [0, 1]; undefined where F = 0.
- Gray's (1988) test is not implemented.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import as_duration, group_codes, require_columns, sort_by_group_time, time_blocks, z_value

CIF_COLUMNS = [
    "group",
    "cause",
    "time",
    "n_risk",
    "n_event",
    "n_competing",
    "n_censored",
    "estimate",
    "std_err",
    "lower",
    "upper",
]


def _aalen_johansen(t: np.ndarray, status: np.ndarray, cause) -> dict[str, np.ndarray]:
    """Cumulative incidence of ``cause`` and cmprsk's variance at each distinct time (sorted t)."""
    n = t.size
    starts = time_blocks(t)
    is_cause = (status == cause).astype(np.float64)
    is_other = ((status != 0) & (status != cause)).astype(np.float64)
    d1 = np.add.reduceat(is_cause, starts) if n else np.zeros(0)
    d2 = np.add.reduceat(is_other, starts) if n else np.zeros(0)
    total = np.diff(np.append(starts, n)).astype(np.float64)
    rs = (n - starts).astype(np.float64)
    nd = d1 + d2
    fk_after = np.cumprod(1.0 - nd / rs)  # all-cause KM after each time
    fk = np.concatenate([[1.0], fk_after[:-1]])  # S(t-)
    f = np.cumsum(fk * d1 / rs)
    fkn = fk_after
    with np.errstate(divide="ignore", invalid="ignore"):
        # competing-event contributions (cmprsk: only when fkn > 0)
        t5 = np.where(d2 > 1, 1.0 - (d2 - 1.0) / (rs - 1.0), 1.0)
        t6 = fk**2 * t5 * d2 / rs**2
        use2 = (d2 > 0) & (fkn > 0)
        t3 = np.where(use2, 1.0 / fkn, 0.0)
        t4 = np.where(use2, f / fkn, 0.0)
        v1 = np.where(use2, t4 * t4 * t6, 0.0)
        v2 = np.where(use2, t3 * t4 * t6, 0.0)
        v3 = np.where(use2, t3 * t3 * t6, 0.0)
        # events of the cause of interest
        t5 = np.where(d1 > 1, 1.0 - (d1 - 1.0) / (rs - 1.0), 1.0)
        t6 = fk**2 * t5 * d1 / rs**2
        t3 = np.where(fkn > 0, 1.0 / fkn, 0.0)
        t4 = 1.0 + t3 * f
        use1 = d1 > 0
        v1 = v1 + np.where(use1, t4 * t4 * t6, 0.0)
        v2 = v2 + np.where(use1, t3 * t4 * t6, 0.0)
        v3 = v3 + np.where(use1, t3 * t3 * t6, 0.0)
    c1, c2, c3 = np.cumsum(v1), np.cumsum(v2), np.cumsum(v3)
    var_at = c1 + f * f * c3 - 2.0 * f * c2
    # variance is updated only at cause events and carried forward otherwise (cmprsk)
    last = np.maximum.accumulate(np.where(use1, np.arange(starts.size), -1))
    var = np.where(last >= 0, var_at[np.maximum(last, 0)], 0.0)
    return {
        "time": t[starts],
        "n_risk": rs,
        "n_event": d1,
        "n_competing": d2,
        "n_censored": total - nd,
        "estimate": f,
        "var": np.maximum(var, 0.0),
    }


def cif_conf_int(estimate, std_err, conf: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Log-log CI for a cumulative incidence: F^exp(-/+ z se / (F log F)) (tidycmprsk, Pintilie)."""
    z = z_value(conf)
    est = np.asarray(estimate, dtype=np.float64)
    se = np.asarray(std_err, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = z * se / (est * np.log(est))
        lower = est ** np.exp(-k)
        upper = est ** np.exp(k)
    bad = ~((est > 0) & (est < 1))
    lower[bad] = np.nan
    upper[bad] = np.nan
    return lower, upper


def _at_times(curve: dict, t_sorted: np.ndarray, status_sorted: np.ndarray, cause, times) -> dict:
    """Step-function value at requested times; counts cumulated since the previous requested time."""
    req = np.sort(np.asarray(times, dtype=np.float64))
    idx = np.searchsorted(curve["time"], req, side="right") - 1
    safe = np.maximum(idx, 0)
    est = np.where(idx >= 0, curve["estimate"][safe] if curve["time"].size else 0.0, 0.0)
    var = np.where(idx >= 0, curve["var"][safe] if curve["time"].size else 0.0, 0.0)
    upto = np.searchsorted(t_sorted, req, side="right")

    def interval_counts(mask):
        cum = np.concatenate([[0.0], np.cumsum(mask)])[upto]
        return np.diff(np.concatenate([[0.0], cum]))

    return {
        "time": req,
        "n_risk": (t_sorted.size - np.searchsorted(t_sorted, req, side="left")).astype(np.float64),
        "n_event": interval_counts(status_sorted == cause),
        "n_competing": interval_counts((status_sorted != 0) & (status_sorted != cause)),
        "n_censored": interval_counts(status_sorted == 0),
        "estimate": est,
        "var": var,
    }


def cumulative_incidence(
    df: pd.DataFrame,
    duration_col: str,
    event_col: str,
    cause,
    group_col: str | None = None,
    times=None,
    conf: float = 0.95,
) -> pd.DataFrame:
    """Aalen-Johansen cumulative incidence of ``cause``; other nonzero codes are competing risks.

    ``event_col`` holds 0 for censored and a code per event type. Returns one row per distinct
    time per group (or per requested time with ``times``: value of the step function at that
    time, number at risk then, and counts cumulated since the previous requested time):
    group, cause, time, n_risk, n_event, n_competing, n_censored, estimate, std_err (cmprsk
    Aalen-type SE), lower, upper (tidycmprsk log-log CI).
    """
    require_columns(df, [duration_col, event_col, group_col])
    time = as_duration(df[duration_col], duration_col)
    status = df[event_col].to_numpy()
    codes, levels = group_codes(df, group_col)
    keep = ~np.isnan(time) & ~pd.isna(status) & (codes >= 0)
    time, status, codes = time[keep], status[keep], codes[keep]
    if not np.any(status == cause):
        raise ValueError(f"cause {cause!r} does not occur in {event_col!r}")
    sg = sort_by_group_time(codes, time, len(levels))
    frames = []
    for level, (a, b) in zip(levels, sg.bounds):
        rows = sg.order[a:b]
        t, s = time[rows], status[rows]
        curve = _aalen_johansen(t, s, cause)
        if times is not None:
            curve = _at_times(curve, t, s, cause, times)
        se = np.sqrt(curve["var"])
        lower, upper = cif_conf_int(curve["estimate"], se, conf)
        frames.append(
            pd.DataFrame(
                {
                    "group": [level] * curve["time"].size,
                    "cause": [cause] * curve["time"].size,
                    "time": curve["time"],
                    "n_risk": curve["n_risk"].astype(np.int64),
                    "n_event": curve["n_event"].astype(np.int64),
                    "n_competing": curve["n_competing"].astype(np.int64),
                    "n_censored": curve["n_censored"].astype(np.int64),
                    "estimate": curve["estimate"],
                    "std_err": se,
                    "lower": lower,
                    "upper": upper,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)[CIF_COLUMNS]
