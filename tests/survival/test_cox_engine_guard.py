"""The Newton-Raphson loop never returns a step into a non-finite log-likelihood."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np

from pcref_eval.survival.cox import _newton_raphson


class _CliffProblem:
    """A concave 1-d log-likelihood -(b - 3)^2 that is NaN beyond b = 1 (as exp overflow makes it)."""

    p = 1

    def evaluate(self, beta):
        b = float(beta[0])
        loglik = -((b - 3.0) ** 2) if b <= 1.0 else float("nan")
        return SimpleNamespace(loglik=loglik, score=np.array([-2.0 * (b - 3.0)]), information=np.array([[2.0]]))


def test_newton_raphson_stops_at_the_last_finite_iterate():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fit = _newton_raphson(_CliffProblem())
    assert np.isfinite(fit.beta).all() and np.isfinite(fit.derivatives.loglik)
    assert 0.0 < fit.beta[0] <= 1.0
