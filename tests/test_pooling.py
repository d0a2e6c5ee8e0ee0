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
