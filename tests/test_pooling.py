"""DerSimonian-Laird pooling against statsmodels (where they must agree) and closed-form cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.meta_analysis import combine_effects

from pcref_eval.pooling import dersimonian_laird, random_effects


def test_matches_statsmodels_when_heterogeneity_is_present():
    y = np.array([-0.9, -0.1, -0.5, 0.3])
    se = np.array([0.1, 0.12, 0.2, 0.15])
    fe, re, het = dersimonian_laird(y, se)
    assert het.q > het.q_df  # tau2 > 0: statsmodels' untruncated estimator is then the same
    sm = combine_effects(y, se**2, method_re="dl")
    frame = sm.summary_frame()
    assert re["log"] == pytest.approx(frame.loc["random effect", "eff"], abs=1e-12)
    assert re["lower"] == pytest.approx(frame.loc["random effect", "ci_low"], abs=1e-12)
    assert fe["log"] == pytest.approx(frame.loc["fixed effect", "eff"], abs=1e-12)
    assert het.tau2 == pytest.approx(sm.tau2, abs=1e-12)
    assert het.i2 == pytest.approx(sm.i2, abs=1e-12)


def test_tau2_truncated_at_zero_gives_the_fixed_effect_result():
    y = np.array([-0.47, -0.60, -0.34, -0.02])
    se = np.array([0.094, 0.114, 0.180, 0.472])
    fe, re, het = dersimonian_laird(y, se)
    assert het.q < het.q_df and het.tau2 == 0.0 and het.i2 == 0.0
    assert re["log"] == pytest.approx(fe["log"]) and re["se"] == pytest.approx(fe["se"])
    assert combine_effects(y, se**2, method_re="dl").tau2 < 0  # the statsmodels behaviour we avoid


def test_fixed_effect_closed_form():
    fe, _, _ = dersimonian_laird([0.0, 1.0], [1.0, 1.0])
    assert fe["log"] == pytest.approx(0.5) and fe["se"] == pytest.approx(np.sqrt(0.5))


def test_table_rows_and_weights():
    est = pd.DataFrame({"site_id": ["a", "b", "c"], "log_estimate": [-0.4, -0.2, -0.6], "se": [0.1, 0.2, 0.3]})
    table, het = random_effects(est)
    assert list(table["label"][:3]) == ["a", "b", "c"] and len(table) == 5
    assert table["weight_re_pct"][:3].sum() == pytest.approx(100)
    assert (table["lower"] < table["estimate"]).all() and (table["estimate"] < table["upper"]).all()


# ------------------------------------------------------------------------------------------------
# REML, Hartung-Knapp and prediction intervals: closed forms, statsmodels, and R metafor::rma

from pcref_eval.pooling import pool_random_effects, reml_tau2  # noqa: E402
from tests.rtools import run_r  # noqa: E402

HETERO_Y = np.array([-0.9, -0.1, -0.5, 0.3, -0.35, -0.6])
HETERO_SE = np.array([0.1, 0.12, 0.2, 0.15, 0.3, 0.25])


def test_reml_equal_variances_has_the_closed_form():
    """With equal v the REML estimate is max(0, sample variance - v) (Viechtbauer 2005)."""
    y = np.array([0.1, -0.4, 0.7, 0.2, -0.1])
    v = np.full(5, 0.02)
    assert reml_tau2(y, v) == pytest.approx(np.var(y, ddof=1) - 0.02, abs=1e-10)
    assert reml_tau2(np.array([0.1, 0.11, 0.09]), np.full(3, 0.5)) == 0.0


def test_reml_solves_the_restricted_likelihood_equation():
    tau2 = reml_tau2(HETERO_Y, HETERO_SE**2)
    w = 1 / (HETERO_SE**2 + tau2)
    mu = np.sum(w * HETERO_Y) / np.sum(w)
    lhs = np.sum(w**2 * (HETERO_Y - mu) ** 2)
    assert tau2 > 0 and lhs == pytest.approx(np.sum(w) - np.sum(w**2) / np.sum(w), rel=1e-8)


@pytest.mark.filterwarnings("ignore:`use_t=True` requires:UserWarning")
def test_hartung_knapp_and_dl_wald_match_statsmodels():
    """DL with a Wald CI equals statsmodels' random effect; HK equals its 'wls' row (same tau2, t quantile)."""
    p = pool_random_effects(HETERO_Y, HETERO_SE, method="dl", hartung_knapp=False)
    frame = combine_effects(HETERO_Y, HETERO_SE**2, method_re="dl").summary_frame()
    assert p.log == pytest.approx(frame.loc["random effect", "eff"], abs=1e-12)
    assert p.lower == pytest.approx(frame.loc["random effect", "ci_low"], abs=1e-12)
    hk = pool_random_effects(HETERO_Y, HETERO_SE, method="dl", hartung_knapp=True)
    sm_hk = combine_effects(HETERO_Y, HETERO_SE**2, method_re="dl", use_t=True).summary_frame()
    assert hk.se == pytest.approx(sm_hk.loc["random effect wls", "sd_eff"], rel=1e-10)
    assert hk.upper == pytest.approx(sm_hk.loc["random effect wls", "ci_upp"], abs=1e-10)


def test_prediction_interval_is_wider_than_ci_and_equals_ci_without_heterogeneity():
    p = pool_random_effects(HETERO_Y, HETERO_SE, method="reml", hartung_knapp=True)
    assert p.pi_lower < p.lower < p.log < p.upper < p.pi_upper
    homog = pool_random_effects([-0.47, -0.60, -0.34, -0.02], [0.094, 0.114, 0.180, 0.472], method="reml",
                                hartung_knapp=False)
    assert homog.tau2 == 0 and homog.pi_lower == pytest.approx(homog.lower)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="method"):
        pool_random_effects([0.1], [0.1], method="pm")
    with pytest.raises(ValueError, match="positive standard error"):
        pool_random_effects([0.1, 0.2], [0.1, 0.0])


@pytest.mark.parametrize("y,se", [(HETERO_Y, HETERO_SE),
                                  (np.array([-0.47, -0.60, -0.34, -0.02]), np.array([0.094, 0.114, 0.180, 0.472])),
                                  (np.array([0.2, -0.3, 0.9]), np.array([0.2, 0.25, 0.3]))])
def test_matches_metafor(tmp_path, y, se):
    """REML tau2, HK CI and prediction interval; DL tau2 and Wald CI: metafor::rma, to 1e-6."""
    r = run_r("""
fit <- rma(yi = y, sei = se, data = d, method = "REML", test = "knha", control = list(threshold = 1e-12, maxiter = 1000))
pr <- predict(fit)
out("reml", c(fit$tau2, fit$b, fit$se, fit$ci.lb, fit$ci.ub, pr$pi.lb, pr$pi.ub))
dl <- rma(yi = y, sei = se, data = d, method = "DL")
pd <- predict(dl)
out("dl", c(dl$tau2, dl$b, dl$se, dl$ci.lb, dl$ci.ub, pd$pi.lb, pd$pi.ub))
""", tmp_path, ("metafor",), d=pd.DataFrame({"y": y, "se": se}))
    for key, method, hk in (("reml", "reml", True), ("dl", "dl", False)):
        p = pool_random_effects(y, se, method=method, hartung_knapp=hk)
        ours = [p.tau2, p.log, p.se, p.lower, p.upper, p.pi_lower, p.pi_upper]
        np.testing.assert_allclose(ours, r[key], atol=1e-6, err_msg=key)
