"""The fast Cox engine on (start, stop] data with a time-varying covariate and strata vs R survival::coxph.

Calendar-time models (a focus x live term that switches on at each site's go-live) use exactly this:
counting-process rows split at go-live, site strata, tied whole-day times. Efron and Breslow ties.
With site strata on the calendar time scale the "live" main effect is a function of time within each
stratum, so it is absorbed by the baseline hazard (R gives NA): the model has focus x live, not live.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pcref_eval.survival.cox import cox
from tests.rtools import run_r


def split_at_go_live(n: int = 3000, seed: int = 11) -> pd.DataFrame:
    """People entering over 3 years, followed in calendar days, rows split at their site's go-live."""
    rng = np.random.default_rng(seed)
    site = rng.integers(0, 3, n)
    go_live = np.array([400.0, 650.0, 900.0])[site]
    entry = np.floor(rng.uniform(0, 1000, n))
    focus = (rng.random(n) < 0.3).astype(float)
    age = rng.normal(0, 1, n)
    # piecewise-constant hazard in calendar time: focus HR 3 before go-live, x 0.7 after
    rate = 0.0015 * np.exp(np.log(3) * focus + 0.3 * age) * np.array([0.8, 1.0, 1.3])[site]
    t1 = entry + rng.exponential(1 / rate)
    after = t1 > go_live
    rate2 = rate * np.exp(np.log(0.7) * focus + np.log(0.9))
    t_event = np.where(after & (entry < go_live), go_live + rng.exponential(1 / rate2), t1)
    t_event = np.where(entry >= go_live, entry + rng.exponential(1 / rate2), t_event)
    end = np.minimum(np.ceil(t_event), 1400.0)
    event = (np.ceil(t_event) <= 1400.0).astype(int)
    rows = []
    for i in range(n):
        cuts = [entry[i], *([go_live[i]] if entry[i] < go_live[i] < end[i] else []), end[i]]
        for a, b in zip(cuts[:-1], cuts[1:]):
            live = float(a >= go_live[i])
            rows.append((i, site[i], a, b, int(event[i] and b == end[i]), focus[i], live, focus[i] * live, age[i]))
    return pd.DataFrame(rows, columns=["id", "site", "start", "stop", "event", "focus", "live", "focus_live", "age"])


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_start_stop_strata_matches_coxph(tmp_path, ties):
    d = split_at_go_live()
    assert d["id"].duplicated().any() and d.groupby(["site", "stop"])["event"].sum().max() > 1  # split rows, ties
    r = run_r(f"""
fit <- coxph(Surv(start, stop, event) ~ focus + focus_live + age + strata(site), data = d, ties = "{ties}")
out("coef", coef(fit)); out("se", sqrt(diag(vcov(fit)))); out("loglik", fit$loglik)
""", tmp_path, ("survival",), d=d)
    fit = cox(d, "stop", "event", ["focus", "focus_live", "age"], strata="site", entry_col="start", ties=ties)
    np.testing.assert_allclose(fit.coef.to_numpy(), r["coef"], rtol=1e-8)
    np.testing.assert_allclose(fit.table["se"].to_numpy(), r["se"], rtol=1e-8)
    np.testing.assert_allclose([fit.log_likelihood_null, fit.log_likelihood], r["loglik"], rtol=1e-10)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_robust_variance_with_sites_as_clusters_matches_coxph(tmp_path, ties):
    """Sandwich variance clustered by the strata (sites) vs R coxph(... + strata(site) + cluster(site))."""
    d = split_at_go_live(seed=5).assign(site=lambda x: x["site"] + 3 * (x["id"] % 2))  # six sites
    r = run_r(f"""
fit <- coxph(Surv(start, stop, event) ~ focus + focus_live + age + strata(site) + cluster(site), data = d,
             ties = "{ties}")
out("robust_se", sqrt(diag(vcov(fit)))); out("naive_se", sqrt(diag(fit$naive.var)))
""", tmp_path, ("survival",), d=d)
    fit = cox(d, "stop", "event", ["focus", "focus_live", "age"], strata="site", entry_col="start", ties=ties)
    np.testing.assert_allclose(fit.table["se"].to_numpy(), r["naive_se"], rtol=1e-8)
    robust = np.sqrt(np.diag(fit.robust_variance_by_stratum().to_numpy()))
    np.testing.assert_allclose(robust, r["robust_se"], rtol=1e-7)
    assert fit.stratum_scores().sum(axis=0) == pytest.approx(np.zeros(3), abs=1e-6)  # the fit's score is zero
