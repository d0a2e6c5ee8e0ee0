"""Proportional-hazards checks: Schoenfeld-residual tests and step-function (time-split) models.

``schoenfeld_test`` tests, per covariate and globally, whether the log hazard ratio changes
with a transform g(t) of time:

- method "score" (default; R ``cox.zph`` since survival 3.0): score test for adding x * g(t)
  to the fitted model, u' I^-1 u with u the score for the x * g(t) terms at (beta-hat, 0) and I
  the full information of the augmented model.
- method "gt": the Grambsch & Therneau (1994) approximation used by R before 3.0 and by
  lifelines' ``proportional_hazard_test``: the regression of scaled Schoenfeld residuals on g(t).

Transforms (R definitions): "km" 1 - S(t-) from the pooled left-continuous Kaplan-Meier,
"rank" the rank of the time (all rows for "score"; event times only for "gt", as old R and
lifelines), "identity", "log". g is centred at its mean over events.

``time_split`` cuts follow-up into (start, stop] episodes at given times (R ``survSplit``);
``step_function_cox`` fits a separate hazard ratio for a covariate in each time interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ._common import as_duration, chisq_sf, require_columns
from .cox import CoxResult, cox

TRANSFORMS = ("km", "rank", "identity", "log")


def _pooled_km_left(problem) -> tuple[np.ndarray, np.ndarray]:
    """Pooled (all strata) Kaplan-Meier: distinct event times and S(t-) just before each."""
    time, event = problem.time, problem.event
    ev_times, d = np.unique(time[event > 0], return_counts=True)
    ts = np.sort(time)
    n_risk = ts.size - np.searchsorted(ts, ev_times, side="left")
    if problem.entry is not None:
        es = np.sort(problem.entry)
        n_risk = n_risk - (es.size - np.searchsorted(es, ev_times, side="left"))
    surv = np.cumprod(1.0 - d / n_risk)
    s_left = np.concatenate([[1.0], surv[:-1]])
    return ev_times, s_left


def _time_transform(problem, transform: str, method: str) -> np.ndarray:
    """g(t) at each (stratum, event time) of the fitted problem."""
    t = problem.event_time
    if transform == "identity":
        return t.astype(np.float64)
    if transform == "log":
        return np.log(t)
    if transform == "km":
        ev_times, s_left = _pooled_km_left(problem)
        return 1.0 - s_left[np.searchsorted(ev_times, t)]
    if transform == "rank":
        if method == "score":
            pool = problem.time  # R >= 3.0: rank(times) over all rows
        else:
            pool = problem.time[problem.event > 0]  # R < 3.0 / lifelines: ranks of event times
        ranks = stats.rankdata(pool)
        sorted_pool = np.sort(pool)
        sorted_ranks = np.sort(ranks)
        return sorted_ranks[np.searchsorted(sorted_pool, t)]
    raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}")


def schoenfeld_residuals(result: CoxResult, scaled: bool = True) -> pd.DataFrame:
    """Schoenfeld residuals, one row per event (x_i minus the Efron-averaged risk-set mean).

    ``scaled=True`` gives the Grambsch-Therneau scaled residuals beta + d V r_i (R < 3.0
    ``residuals(fit, "scaledsch")``), whose smooth against time estimates beta(t).
    Columns: time, stratum index, one column per covariate.
    """
    pr, der = result.design("Schoenfeld residuals")
    means = pr.event_means(der)  # (m, p)
    block_of_event = np.repeat(np.arange(pr.d.size), pr.d.astype(np.int64))
    resid = pr.X[pr.ev_rows] - means[block_of_event]
    if scaled:
        resid = result.coef.to_numpy() + pr.n_events * resid @ result.variance.to_numpy()
    out = pd.DataFrame(resid, columns=result.covariates)
    out.insert(0, "stratum", pr.codes[pr.ev_rows])
    out.insert(0, "time", pr.time[pr.ev_rows])
    return out


def schoenfeld_test(result: CoxResult, transform: str = "km", method: str = "score") -> pd.DataFrame:
    """Test of proportional hazards per covariate and globally (R ``cox.zph``).

    Returns columns term, statistic, df, p, with a final "GLOBAL" row. See the module docstring
    for the "score" (R >= 3.0) and "gt" (Grambsch-Therneau; R < 3.0, lifelines) methods.
    """
    if method not in ("score", "gt"):
        raise ValueError("method must be 'score' or 'gt'")
    pr, der = result.design("Schoenfeld residuals")
    p = pr.p
    g = _time_transform(pr, transform, method)
    d = pr.d
    gtime = g - (d * g).sum() / d.sum()
    sums = pr.schoenfeld_sums(der)  # (m, p)
    u = gtime @ sums  # score for the x * g(t) terms
    rows = []
    if method == "score":
        info = der.information
        cross = pr.block_information(der, gtime)
        info_gg = pr.block_information(der, gtime**2)
        full = np.block([[info, cross], [cross.T, info_gg]])
        for k, term in enumerate(result.covariates):
            kk = np.r_[np.arange(p), p + k]
            uk = np.r_[np.zeros(p), u[k]]
            stat = float(uk @ np.linalg.solve(full[np.ix_(kk, kk)], uk))
            rows.append((term, stat, 1))
        uu = np.r_[np.zeros(p), u]
        rows.append(("GLOBAL", float(uu @ np.linalg.solve(full, uu)), p))
    else:
        V = result.variance.to_numpy()
        n_ev = pr.n_events
        ss = float((d * gtime**2).sum())
        vu = V @ u
        for k, term in enumerate(result.covariates):
            rows.append((term, float(n_ev * vu[k] ** 2 / (V[k, k] * ss)), 1))
        rows.append(("GLOBAL", float(n_ev * u @ V @ u / ss), p))
    table = pd.DataFrame(rows, columns=["term", "statistic", "df"])
    table["p"] = [chisq_sf(s, k) for s, k in zip(table["statistic"], table["df"])]
    return table


def _interval_labels(cuts: np.ndarray) -> list[str]:
    edges = np.concatenate([[0.0], cuts, [np.inf]])
    fmt = lambda v: "inf" if np.isinf(v) else f"{v:g}"  # noqa: E731
    return [f"({fmt(a)},{fmt(b)}]" for a, b in zip(edges[:-1], edges[1:])]


def time_split(
    df: pd.DataFrame,
    duration_col: str,
    event_col: str,
    cut_points,
    entry_col: str | None = None,
    start_col: str = "start",
    episode_col: str = "episode",
) -> pd.DataFrame:
    """Split each row's follow-up at ``cut_points`` into (start, stop] episodes, as R ``survSplit``.

    Each output row keeps the other columns; ``duration_col`` becomes the episode stop time,
    ``start_col`` its start (``entry_col`` or 0), ``event_col`` is kept only on the last
    episode, and ``episode_col`` is the interval index (0 = before the first cut) with the
    interval label in ``episode_col + "_label"``. Fit with ``cox(..., entry_col=start_col)``.
    """
    require_columns(df, [duration_col, event_col, entry_col])
    cuts = np.unique(np.asarray(cut_points, dtype=np.float64))
    if np.any(cuts <= 0):
        raise ValueError("cut_points must be positive")
    stop = as_duration(df[duration_col], duration_col)
    start = np.zeros(len(df)) if entry_col is None else as_duration(df[entry_col], entry_col)
    if np.any(start >= stop):
        raise ValueError("start must be before stop for every row")
    lo = np.searchsorted(cuts, start, side="right")  # first cut strictly after start
    hi = np.searchsorted(cuts, stop, side="left")  # cuts strictly before stop
    n_pieces = hi - lo + 1
    rep = np.repeat(np.arange(len(df)), n_pieces)
    piece = np.arange(rep.size) - np.repeat(np.cumsum(n_pieces) - n_pieces, n_pieces)
    cut_idx = lo[rep] + piece  # index of the cut ending this piece (if not the last)
    last = piece == n_pieces[rep] - 1
    new_start = np.where(piece == 0, start[rep], cuts[np.minimum(cut_idx - 1, cuts.size - 1)])
    new_stop = np.where(last, stop[rep], cuts[np.minimum(cut_idx, cuts.size - 1)])
    out = df.iloc[rep].reset_index(drop=True)
    out[start_col] = new_start
    out[duration_col] = new_stop
    ev = out[event_col].to_numpy()
    out[event_col] = np.where(last, ev, np.zeros_like(ev))
    episode = np.searchsorted(cuts, new_start, side="right")
    out[episode_col] = episode
    out[f"{episode_col}_label"] = np.asarray(_interval_labels(cuts), dtype=object)[episode]
    return out


def step_function_cox(
    df: pd.DataFrame,
    duration_col: str,
    event_col: str,
    covariates: list[str],
    split_covariate: str,
    cut_points,
    strata=None,
    ties: str = "efron",
    entry_col: str | None = None,
) -> CoxResult:
    """Cox model where ``split_covariate`` has a separate coefficient in each time interval.

    Follow-up is split at ``cut_points`` (:func:`time_split`) and the covariate is replaced by
    its products with interval indicators (terms ``"{cov} {interval}"``); the other covariates
    keep one coefficient. Fitted on (start, stop] rows, so risk sets are exactly as unsplit.
    """
    if split_covariate not in covariates:
        raise ValueError("split_covariate must be one of covariates")
    split = time_split(df, duration_col, event_col, cut_points, entry_col=entry_col, start_col="_start")
    labels = _interval_labels(np.unique(np.asarray(cut_points, dtype=np.float64)))
    terms = []
    x = pd.to_numeric(split[split_covariate]).to_numpy(dtype=np.float64)
    for k, label in enumerate(labels):
        name = f"{split_covariate} {label}"
        split[name] = x * (split["episode"].to_numpy() == k)
        terms.append(name)
    others = [c for c in covariates if c != split_covariate]
    return cox(split, duration_col, event_col, others + terms, strata=strata, ties=ties, entry_col="_start")
