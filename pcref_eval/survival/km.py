"""Kaplan-Meier survival curves and their quantiles, matching R ``survival::survfit``.

- Product-limit estimate S(t) = prod_{t_j <= t} (1 - d_j / n_j) over distinct times.
- Greenwood variance of log S: sum d_j / (n_j (n_j - d_j)); ``std_err`` is the Greenwood
  standard error of S (R's ``summary(fit)$std.err``), S x sqrt(var log S).
- Confidence intervals (R ``survfit`` ``conf.type``): "log" (R default, exp(log S +/- z se),
  upper clipped at 1) or "log-log" (S^exp(-/+ z se / log S); undefined where S is 0 or 1).
- Quantiles as R ``quantile.survfit``: the first time the curve reaches 1 - p, the midpoint of
  a flat segment lying exactly at 1 - p, and CI limits where the confidence limits cross.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import (
    as_duration,
    as_event,
    group_codes,
    require_columns,
    sort_by_group_time,
    time_blocks,
    z_value,
)

KM_COLUMNS = ["group", "time", "n_risk", "n_event", "n_censored", "surv", "std_err", "lower", "upper"]
CONF_TYPES = ("log", "log-log")


def _product_limit(t: np.ndarray, e: np.ndarray) -> dict[str, np.ndarray]:
    """Product-limit estimate and Greenwood var(log S) at every distinct time of sorted (t, e)."""
    n = t.size
    starts = time_blocks(t)
    n_event = np.add.reduceat(e, starts) if n else np.zeros(0)
    n_total = np.diff(np.append(starts, n))
    n_risk = (n - starts).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        surv = np.cumprod(1.0 - n_event / n_risk)
        term = np.where(n_event > 0, n_event / (n_risk * (n_risk - n_event)), 0.0)
    var_log = np.cumsum(term)  # +inf once an event empties the risk set (S = 0)
    return {
        "time": t[starts],
        "n_risk": n_risk,
        "n_event": n_event,
        "n_censored": n_total - n_event,
        "surv": surv,
        "var_log": var_log,
    }


def _greenwood_se(surv: np.ndarray, var_log: np.ndarray) -> np.ndarray:
    """Greenwood standard error of S (NaN where S = 0, as R prints it)."""
    with np.errstate(invalid="ignore"):
        se = surv * np.sqrt(var_log)
    return np.where(surv > 0, se, np.nan)


def km_conf_int(surv, var_log, conf_type: str = "log", conf: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise CI for S(t) from var(log S): R survfit "log" (upper clipped at 1) or "log-log"."""
    if conf_type not in CONF_TYPES:
        raise ValueError(f"conf_type must be one of {CONF_TYPES}, got {conf_type!r}")
    surv = np.asarray(surv, dtype=np.float64)
    se = np.sqrt(np.asarray(var_log, dtype=np.float64))
    z = z_value(conf)
    with np.errstate(divide="ignore", invalid="ignore"):
        if conf_type == "log":
            s = np.where(surv > 0, surv, np.nan)
            lower = np.exp(np.log(s) - z * se)
            upper = np.minimum(np.exp(np.log(s) + z * se), 1.0)
        else:
            s = np.where((surv > 0) & (surv < 1), surv, np.nan)
            shift = z * se / np.log(s)  # negative
            lower = np.exp(-np.exp(np.log(-np.log(s)) - shift))
            upper = np.exp(-np.exp(np.log(-np.log(s)) + shift))
    return lower, upper


def _at_times(curve: dict[str, np.ndarray], t_sorted: np.ndarray, e_sorted: np.ndarray, times) -> dict:
    """Evaluate a curve at requested times like R ``summary(fit, times=, extend=TRUE)``."""
    req = np.sort(np.asarray(times, dtype=np.float64))
    if np.isnan(req).any():
        raise ValueError("times must not contain missing values")
    idx = np.searchsorted(curve["time"], req, side="right") - 1
    before = idx < 0
    safe = np.where(before, 0, idx)
    surv = np.where(before, 1.0, curve["surv"][safe] if curve["surv"].size else 1.0)
    var_log = np.where(before, 0.0, curve["var_log"][safe] if curve["var_log"].size else 0.0)
    n_at_or_before = np.searchsorted(t_sorted, req, side="right")
    cum_event = np.concatenate([[0.0], np.cumsum(e_sorted)])[n_at_or_before]
    cum_total = n_at_or_before.astype(np.float64)
    n_event = np.diff(np.concatenate([[0.0], cum_event]))
    n_cens = np.diff(np.concatenate([[0.0], cum_total - cum_event]))
    n_risk = (t_sorted.size - np.searchsorted(t_sorted, req, side="left")).astype(np.float64)
    return {
        "time": req,
        "n_risk": n_risk,
        "n_event": n_event,
        "n_censored": n_cens,
        "surv": surv,
        "var_log": var_log,
    }


def kaplan_meier(
    df: pd.DataFrame,
    duration_col: str,
    event_col: str,
    group_col: str | None = None,
    times=None,
    conf_type: str = "log",
    conf: float = 0.95,
) -> pd.DataFrame:
    """Kaplan-Meier estimate with Greenwood standard errors, as R ``survfit`` / ``summary.survfit``.

    Returns one row per distinct time (events or censorings) per group with columns
    group, time, n_risk, n_event, n_censored, surv, std_err (Greenwood SE of S), lower, upper.
    ``conf_type`` is "log" (R default; upper limit clipped at 1) or "log-log".
    With ``times``, returns the estimate at those times as ``summary(fit, times=, extend=TRUE)``:
    n_risk at that time, events and censorings cumulated since the previous requested time, and
    S carried forward past the last observation. ``group`` is "all" when ``group_col`` is None.
    Rows with a missing duration, event or group are dropped (R's na.omit).
    """
    require_columns(df, [duration_col, event_col, group_col])
    if conf_type not in CONF_TYPES:
        raise ValueError(f"conf_type must be one of {CONF_TYPES}, got {conf_type!r}")
    time = as_duration(df[duration_col], duration_col)
    event = as_event(df[event_col], event_col)
    codes, levels = group_codes(df, group_col)
    keep = ~np.isnan(time) & ~np.isnan(event) & (codes >= 0)
    time, event, codes = time[keep], event[keep], codes[keep]
    sg = sort_by_group_time(codes, time, len(levels))
    frames = []
    for level, (a, b) in zip(levels, sg.bounds):
        rows = sg.order[a:b]
        t, e = time[rows], event[rows]
        curve = _product_limit(t, e)
        if times is not None:
            curve = _at_times(curve, t, e, times)
        lower, upper = km_conf_int(curve["surv"], curve["var_log"], conf_type, conf)
        frames.append(
            pd.DataFrame(
                {
                    "group": [level] * curve["time"].size,
                    "time": curve["time"],
                    "n_risk": curve["n_risk"].astype(np.int64),
                    "n_event": curve["n_event"].astype(np.int64),
                    "n_censored": curve["n_censored"].astype(np.int64),
                    "surv": curve["surv"],
                    "std_err": _greenwood_se(curve["surv"], curve["var_log"]),
                    "lower": lower,
                    "upper": upper,
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=KM_COLUMNS)
    return pd.concat(frames, ignore_index=True)[KM_COLUMNS]


def _approx_constant_right(xs: np.ndarray, values: np.ndarray, v: np.ndarray) -> np.ndarray:
    """R ``approx(xs, values, v, method="constant", f=1, rule=1)`` for increasing, NaN-free xs."""
    out = np.full(v.shape, np.nan)
    if xs.size == 0:
        return out
    j = np.searchsorted(xs, v, side="left")
    inside = (v >= xs[0]) & (v <= xs[-1])
    out[inside] = values[np.minimum(j[inside], xs.size - 1)]
    return out


def _find_quantile(x: np.ndarray, y: np.ndarray, p: np.ndarray, tol: float) -> np.ndarray:
    """Where a horizontal line at CDF level p meets the step curve (x, y): R ``findq``.

    y is the CDF 1 - S (possibly with NaN); a flat segment at p gives the midpoint of the
    segment, and a flat segment at p at the end of the curve gives the midpoint with the
    largest time.
    """
    if np.all(np.isnan(y)) or np.nanmax(y) < np.min(p):
        return np.full(p.shape, np.nan)
    xmax = x[-1]
    dup = pd.Series(y).duplicated().to_numpy()
    x, y = x[~dup], y[~dup]
    n = y.size
    pos = np.arange(n)
    ok = ~np.isnan(y)
    i1 = _approx_constant_right(y[ok] + tol, pos[ok].astype(np.float64), p)
    i2 = _approx_constant_right(y[ok] - tol, pos[ok].astype(np.float64), p)

    def take(idx):
        res = np.full(idx.shape, np.nan)
        good = ~np.isnan(idx)
        res[good] = x[idx[good].astype(np.int64)]
        return res

    quant = (take(i1) + take(i2)) / 2.0
    quant[p == 0] = x[0]
    if not np.isnan(y[-1]):
        last = np.abs(p - y[-1]) < tol
        if last.any():
            quant[last] = (take(i1[last]) + xmax) / 2.0
    return quant


def median_survival(
    df: pd.DataFrame,
    duration_col: str,
    event_col: str,
    group_col: str | None = None,
    conf_type: str = "log",
    quantiles=(0.5,),
    conf: float = 0.95,
    tolerance: float = float(np.sqrt(np.finfo(float).eps)),
) -> pd.DataFrame:
    """Survival-time quantiles with CIs, as R ``quantile.survfit`` / ``print(survfit)``.

    The p-quantile is the first time the Kaplan-Meier curve drops to 1 - p or below; on a flat
    segment lying exactly at 1 - p it is the segment's midpoint. CI limits are where the
    pointwise confidence limits (``conf_type``) cross 1 - p (Brookmeyer-Crowley style, as R).
    NaN where not reached. Returns columns group, quantile, estimate, lower, upper.
    """
    km = kaplan_meier(df, duration_col, event_col, group_col, conf_type=conf_type, conf=conf)
    probs = np.asarray(quantiles, dtype=np.float64)
    if np.any((probs < 0) | (probs > 1)):
        raise ValueError("quantiles must lie in [0, 1]")
    rows = []
    for level, part in km.groupby("group", sort=False):
        x = np.concatenate([[0.0], part["time"].to_numpy()])

        def cdf(col):
            return np.concatenate([[0.0], 1.0 - part[col].to_numpy(dtype=np.float64)])

        est = _find_quantile(x, cdf("surv"), probs, tolerance)
        low = _find_quantile(x, cdf("lower"), probs, tolerance)
        upp = _find_quantile(x, cdf("upper"), probs, tolerance)
        for q, a, b, c in zip(probs, est, low, upp):
            rows.append({"group": level, "quantile": q, "estimate": a, "lower": b, "upper": c})
    return pd.DataFrame(rows, columns=["group", "quantile", "estimate", "lower", "upper"])
