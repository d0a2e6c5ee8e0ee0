"""Estimability of fitted terms: a term that ran off to infinity is not an estimate.

Quasi-separation (a cell, quarter or period whose events are all in one group, or none) makes a
maximum-likelihood fit "converge" with the separated terms run off towards infinity: seen here as
|log ratio| 20-32, SEs about 1.5e4, a negative variance, or an SE of 0.0 under a robust covariance.
One event against one gives an SE of 1.4, so these bounds flag a diverged term, never an estimate.
Used by the calendar-time Cox and event study (which leave the diverged rows out and refit) and the
interrupted time series (which reports the change as not estimable).
"""

from __future__ import annotations

import numpy as np

MAX_ABS_LOG_EFFECT = 20.0  # a log rate or hazard ratio beyond this (ratio 5e8)
MAX_LOG_SE = 10.0  # an SE beyond this (95% CI spanning a factor of e^39)
MAX_REFITS = 20  # refits after leaving out the rows of diverged terms


def diverged_terms(names: list[str], coef, variance_diag) -> list[str]:
    """Names of terms that ran off to infinity: non-finite, |coef| > MAX_ABS_LOG_EFFECT, variance <= 0 or
    SE > MAX_LOG_SE (quasi-separation)."""
    b = np.asarray(coef, float)
    v = np.asarray(variance_diag, float)
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(b) & np.isfinite(v)) | (np.abs(b) > MAX_ABS_LOG_EFFECT) | (v <= 0) | (v > MAX_LOG_SE ** 2)
    return [n for n, x in zip(names, bad) if x]


def eventless_levels(indicators: dict, events: np.ndarray) -> np.ndarray:
    """Rows in a level (0 or 1) of a 0/1 covariate whose rows have no event.

    Such a level's hazard is 0 at the maximum of the (partial) likelihood: the coefficient runs off
    and Newton's information matrix turns singular. Leaving those rows out is the exact limit.
    ``indicators``: name -> 0/1 array (or a DataFrame of 0/1 columns).
    """
    events = np.asarray(events)
    out = np.zeros(len(events), dtype=bool)
    for name in indicators:
        x = np.asarray(indicators[name])
        for level in (1.0, 0.0):
            at = x == level
            if at.any() and events[at].sum() == 0:
                out |= at
    return out
