"""Log-rank (Mantel-Haenszel) test across groups, optionally stratified, as R ``survdiff``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._common import (
    as_duration,
    as_event,
    chisq_sf,
    group_codes,
    order_codes_time,
    require_columns,
    strata_codes,
    time_blocks,
)


@dataclass
class LogrankResult:
    """Log-rank test result: chi-square ``statistic`` on ``df`` degrees of freedom with p-value ``p``.

    ``table`` has one row per group: group, n, observed, expected, oe2_e ((O-E)^2/E) and
    oe2_v ((O-E)^2/V), as printed by R ``survdiff``. ``variance`` is the G x G hypergeometric
    variance matrix of O - E.
    """

    statistic: float
    df: int
    p: float
    table: pd.DataFrame
    variance: pd.DataFrame
    stratified: bool

    @property
    def summary(self) -> pd.DataFrame:
        """One-row DataFrame with statistic, df and p."""
        return pd.DataFrame([{"statistic": self.statistic, "df": self.df, "p": self.p}])

    def as_dict(self) -> dict:
        """Plain dictionary of the test (table as records)."""
        return {
            "statistic": self.statistic,
            "df": self.df,
            "p": self.p,
            "stratified": self.stratified,
            "groups": self.table.to_dict("records"),
        }


def _stratum_oev(t: np.ndarray, e: np.ndarray, g: np.ndarray, n_groups: int):
    """Observed, expected and variance of O - E within one stratum (rows sorted by time)."""
    n = t.size
    starts = time_blocks(t)
    block = np.repeat(np.arange(starts.size), np.diff(np.append(starts, n)))
    n_blocks = starts.size
    # per block x group counts of rows (leaving the risk set) and events
    cell = block * n_groups + g
    rows_bg = np.bincount(cell, minlength=n_blocks * n_groups).reshape(n_blocks, n_groups).astype(np.float64)
    ev_bg = np.bincount(cell, weights=e, minlength=n_blocks * n_groups).reshape(n_blocks, n_groups)
    # at risk: rows with time >= t, i.e. reverse cumulative sum over blocks
    risk_bg = np.cumsum(rows_bg[::-1], axis=0)[::-1]
    d = ev_bg.sum(axis=1)
    nr = risk_bg.sum(axis=1)
    has = d > 0
    risk_bg, ev_bg, d, nr = risk_bg[has], ev_bg[has], d[has], nr[has]
    frac = risk_bg / nr[:, None]
    observed = ev_bg.sum(axis=0)
    expected = (d[:, None] * frac).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(nr > 1, d * (nr - d) / (nr - 1), 0.0)
    # V = sum_t scale_t (diag(frac_t) - frac_t frac_t')
    var = np.diag((scale[:, None] * frac).sum(axis=0)) - (frac * scale[:, None]).T @ frac
    return observed, expected, var


def logrank(
    df: pd.DataFrame,
    duration_col: str,
    event_col: str,
    group_col: str,
    strata_col: str | list[str] | None = None,
) -> LogrankResult:
    """Log-rank test of equal survival across groups (R ``survdiff``, rho = 0).

    O - E per group with the hypergeometric variance summed over distinct event times; the
    statistic is (O-E)' V^- (O-E) on (groups with E > 0) - 1 df. With ``strata_col``, O, E and V
    are computed within strata and summed (stratified log-rank). Rows with missing values are
    dropped.
    """
    require_columns(df, [duration_col, event_col, group_col])
    time = as_duration(df[duration_col], duration_col)
    event = as_event(df[event_col], event_col)
    gcodes, levels = group_codes(df, group_col)
    scodes, _ = strata_codes(df, strata_col)
    keep = ~np.isnan(time) & ~np.isnan(event) & (gcodes >= 0) & (scodes >= 0)
    time, event, gcodes, scodes = time[keep], event[keep], gcodes[keep], scodes[keep]
    G = len(levels)
    order = order_codes_time(scodes, time)
    time, event, gcodes, scodes = time[order], event[order], gcodes[order], scodes[order]
    s_starts = time_blocks(scodes.astype(np.float64))
    s_ends = np.append(s_starts[1:], scodes.size)
    observed = np.zeros(G)
    expected = np.zeros(G)
    var = np.zeros((G, G))
    for a, b in zip(s_starts, s_ends):
        o, e_, v = _stratum_oev(time[a:b], event[a:b], gcodes[a:b], G)
        observed += o
        expected += e_
        var += v
    diff = observed - expected
    dof = int((expected > 0).sum()) - 1
    stat = _quadratic_form(diff, var)
    n = np.bincount(gcodes, minlength=G)
    with np.errstate(invalid="ignore", divide="ignore"):
        table = pd.DataFrame(
            {
                "group": levels,
                "n": n.astype(np.int64),
                "observed": observed,
                "expected": expected,
                "oe2_e": diff**2 / expected,
                "oe2_v": diff**2 / np.diag(var),
            }
        )
    return LogrankResult(
        statistic=stat,
        df=dof,
        p=chisq_sf(stat, dof),
        table=table,
        variance=pd.DataFrame(var, index=levels, columns=levels),
        stratified=strata_col is not None,
    )


def _quadratic_form(diff: np.ndarray, var: np.ndarray) -> float:
    """(O-E)' V^- (O-E) dropping the first group with positive variance (R survdiff's choice)."""
    keep = np.diag(var) > 0
    if keep.sum() < 2:
        return float("nan")
    idx = np.flatnonzero(keep)[1:]
    sub = var[np.ix_(idx, idx)]
    return float(diff[idx] @ np.linalg.solve(sub, diff[idx]))
