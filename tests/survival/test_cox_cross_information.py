"""Information between a Cox model's covariates and a covariate left out of it, by stratum."""

from __future__ import annotations

import numpy as np
import pytest

from pcref_eval.survival.cox import CoxProblem, fit_problem


@pytest.mark.parametrize("ties", ["efron", "breslow"])
@pytest.mark.parametrize("counting_process", [False, True])
def test_cross_information_equals_the_augmented_models_information(ties, counting_process):
    """Column g equals the off-diagonal block of the information of the model with ``z * [stratum g]`` added
    (coefficient 0), evaluated at the fit: the same Efron/Breslow sums computed a second way."""
    rng = np.random.default_rng(1)
    n, p = 3000, 4
    X = rng.normal(size=(n, p))
    codes = rng.integers(0, 3, n)
    entry = rng.integers(0, 50, n).astype(float)
    time = entry + rng.integers(1, 40, n)  # integer times: many ties
    event = (rng.random(n) < 0.3).astype(float)
    z = rng.normal(size=n) * (rng.random(n) < 0.5)
    start = entry if counting_process else None
    problem = CoxProblem(X, time, event, codes, start, ties)
    fit = fit_problem(problem, [f"x{i}" for i in range(p)])
    cross = problem.cross_information_by_stratum(fit.derivatives, z)
    assert cross.shape == (p, 3)
    for g in range(3):
        augmented = CoxProblem(np.column_stack([X, z * (codes == g)]), time, event, codes, start, ties)
        info = augmented.evaluate(np.r_[fit.coef.to_numpy(), 0.0]).information
        np.testing.assert_allclose(cross[:, g], info[:p, p], rtol=0, atol=1e-10 * np.abs(info[:p, p]).max())
        assert np.abs(cross[:, g]).max() > 1.0  # not trivially zero
