"""Fine-Gray subdistribution hazards by inverse-probability-of-censoring weighting on the fast Cox engine.

No established Python package fits the Fine-Gray model: lifelines and statsmodels (locked here) do not;
on PyPI ``cmprsk`` wraps R through rpy2 and ``comprisk`` / ``compriskreg`` are young single-author
releases (checked 2026-12). So it is fitted as R ``survival::finegray`` + ``coxph`` do (Geskus 2011):
people with a competing event stay in the risk set after their event, weighted by
G(t-) / G(T_i-), G the Kaplan-Meier estimate of the censoring distribution (within strata; at tied
times events come before censorings). The weight only matters at times of the event of interest,
so each such person gets one extra (start, stop] row per run of those times over which G is constant.
The weighted Cox partial likelihood then gives the subdistribution hazard ratios; the standard errors
are the model-based ones (R ``coxph(robust = FALSE)``), which the tests compare with
``cmprsk::crr``'s sandwich variance and check by coverage on simulated data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pcref_eval.survival.cox import CoxResult, cox

START, STOP, EVENT, WEIGHT = "_fg_start", "_fg_stop", "_fg_event", "_fg_weight"


def censoring_survival_before(time: np.ndarray, status: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Kaplan-Meier censoring survival G(t-) at times ``at`` (censorings strictly before t; events first at ties)."""
    cens_times, n_cens = np.unique(time[status == 0], return_counts=True)
    if cens_times.size == 0:
        return np.ones(len(at))
    # at risk of being censored at c: time >= c (people with an event at c left just before it)
    at_risk = time.size - np.searchsorted(np.sort(time), cens_times, side="left")
    at_risk = at_risk - _count_events_at(time, status, cens_times)
    surv = np.cumprod(1.0 - n_cens / at_risk)
    idx = np.searchsorted(cens_times, at, side="left") - 1  # last censoring time strictly before t
    return np.where(idx >= 0, surv[np.clip(idx, 0, None)], 1.0)


def _count_events_at(time: np.ndarray, status: np.ndarray, at: np.ndarray) -> np.ndarray:
    ev_times, n_ev = np.unique(time[status != 0], return_counts=True)
    pos = np.searchsorted(ev_times, at)
    hit = (pos < ev_times.size) & (ev_times[np.clip(pos, 0, ev_times.size - 1)] == at)
    return np.where(hit, n_ev[np.clip(pos, 0, ev_times.size - 1)], 0)


def finegray_data(df: pd.DataFrame, time_col: str, status_col: str, cause: int = 1,
                  strata: str | None = None) -> pd.DataFrame:
    """Weighted counting-process data for a Fine-Gray fit (as R ``survival::finegray``).

    ``status``: 0 censored, ``cause`` the event of interest, any other value a competing event.
    Returns ``df``'s columns plus ``_fg_start``, ``_fg_stop``, ``_fg_event`` (0/1) and ``_fg_weight``;
    the censoring distribution is estimated within ``strata`` (R's ``strata()`` in ``finegray``).
    """
    time = pd.to_numeric(df[time_col]).to_numpy(np.float64)
    status = pd.to_numeric(df[status_col]).to_numpy(np.int64)
    groups = np.zeros(len(df), np.int64) if strata is None else pd.factorize(df[strata])[0]
    base = df.assign(**{START: 0.0, STOP: time, EVENT: (status == cause).astype(np.float64), WEIGHT: 1.0})
    parts = [base]
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        parts.append(_extra_rows(df.iloc[rows], time[rows], status[rows], cause))
    return pd.concat(parts, ignore_index=True)


def _extra_rows(df: pd.DataFrame, time: np.ndarray, status: np.ndarray, cause: int) -> pd.DataFrame:
    """Rows keeping competing-event people at risk after their event, one per run of constant G."""
    ev_times = np.unique(time[status == cause])
    competing = np.flatnonzero((status != 0) & (status != cause))
    if ev_times.size == 0 or competing.size == 0:
        return df.iloc[:0].assign(**{START: [], STOP: [], EVENT: [], WEIGHT: []})
    g_ev = censoring_survival_before(time, status, ev_times)
    new_run = np.r_[True, g_ev[1:] != g_ev[:-1]]
    run_first = np.flatnonzero(new_run)
    run_last_time = ev_times[np.r_[run_first[1:] - 1, ev_times.size - 1]]
    run_g = g_ev[run_first]
    run_prev_last = np.r_[-np.inf, run_last_time[:-1]]
    t_i = time[competing]
    g_i = censoring_survival_before(time, status, t_i)
    # runs that still contain an event time after the person's competing event
    first_run = np.searchsorted(run_last_time, t_i, side="right")
    n_runs = run_g.size - first_run
    person = np.repeat(np.arange(competing.size), n_runs)
    run = np.concatenate([np.arange(f, run_g.size) for f in first_run]) if person.size else np.zeros(0, np.int64)
    out = df.iloc[competing[person]].copy()
    out[START] = np.maximum(t_i[person], run_prev_last[run])
    out[STOP] = run_last_time[run]
    out[EVENT] = 0.0
    out[WEIGHT] = run_g[run] / g_i[person]
    return out


def fine_gray(df: pd.DataFrame, time_col: str, status_col: str, covariates: list[str], cause: int = 1,
              strata: str | None = None, ties: str = "efron", conf: float = 0.95) -> CoxResult:
    """Fine-Gray model: subdistribution hazard ratios of ``cause`` with other nonzero statuses competing.

    ``strata``: separate baseline subdistribution hazards and censoring distributions per stratum
    (R ``finegray(Surv(...) ~ . + strata(s))`` then ``coxph(... + strata(s))``). Rows missing a used
    column are dropped first (complete case, before the censoring distribution is estimated).
    """
    cols = [time_col, status_col, *covariates, *([strata] if strata else [])]
    data = df[cols].dropna()
    fg = finegray_data(data, time_col, status_col, cause=cause, strata=strata)
    result = cox(fg, STOP, EVENT, covariates, strata=strata, ties=ties, entry_col=START, conf=conf,
                 weights_col=WEIGHT)
    result.n = len(data)
    result.n_dropped = len(df) - len(data)
    return result
