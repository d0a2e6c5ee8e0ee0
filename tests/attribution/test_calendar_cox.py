"""Calendar-time Cox (triple difference in hazards): second implementations and the generator's truth."""

from __future__ import annotations

import subprocess
from datetime import date

import numpy as np
import pandas as pd
import pytest

from pcref_eval.attribution import attribute
from pcref_eval.attribution.calendar_cox import calendar_cox_data, calendar_time_cox
from pcref_eval.attribution.design import analysis_cohort, design_from_sites
from pcref_eval.survival.cox import cox

from tests.rtools import require_r

from .conftest import require_program

START, END = date(2021, 4, 1), date(2025, 4, 30)


@pytest.fixture(scope="module")
def small(demo):
    """Three sites' design rows on a 15% sample (fast enough for lifelines and R)."""
    cohort, go_live, _ = demo
    part = cohort[cohort["site_id"].isin(["site_a", "site_c", "site_f"])].sample(frac=0.15, random_state=1)
    design = design_from_sites({s: go_live[s] for s in ("site_a", "site_c", "site_f")}, START, END)
    return calendar_cox_data(analysis_cohort(part, "White British", START), design)


def test_matches_lifelines_cox_time_varying(small):
    from lifelines import CoxTimeVaryingFitter
    ours = cox(small.data, "_stop", "_event", small.covariates, strata="_site", entry_col="_start")
    df = small.data.assign(_id=np.arange(len(small.data)))
    ctv = CoxTimeVaryingFitter(penalizer=0.0)
    ctv.fit(df[[*small.covariates, "_start", "_stop", "_event", "_site", "_id"]], id_col="_id", event_col="_event",
            start_col="_start", stop_col="_stop", strata=["_site"])
    theirs = ctv.params_.reindex(small.covariates)
    np.testing.assert_allclose(ours.coef.to_numpy(), theirs.to_numpy(), atol=2e-5)
    np.testing.assert_allclose(ours.table["se"].to_numpy(), ctv.standard_errors_.reindex(small.covariates).to_numpy(),
                               rtol=1e-4)


def test_matches_r_survival_coxph(small, tmp_path):
    """R survival::coxph(Surv(start, stop, event) ~ ... + strata(site), ties = "efron") on the same rows."""
    rscript = require_program("Rscript", "r-base-core r-cran-survival")
    require_r("survival")
    names = {c: f"x{i}" for i, c in enumerate(small.covariates)}
    data = small.data.rename(columns={**names, "_start": "tstart", "_stop": "tstop", "_event": "ev", "_site": "site"})
    data.to_csv(tmp_path / "d.csv", index=False)
    formula = " + ".join(names.values())
    script = (f"library(survival); d <- read.csv('{tmp_path / 'd.csv'}');"
              f"f <- coxph(Surv(tstart, tstop, ev) ~ {formula} + strata(site), data = d, ties = 'efron');"
              f"write.csv(data.frame(coef = coef(f), se = sqrt(diag(vcov(f)))), '{tmp_path / 'r.csv'}')")
    run = subprocess.run([rscript, "-e", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    r = pd.read_csv(tmp_path / "r.csv", index_col=0)
    ours = cox(small.data, "_stop", "_event", small.covariates, strata="_site", entry_col="_start")
    np.testing.assert_allclose(ours.coef.to_numpy(), r["coef"].to_numpy(), atol=1e-6)
    np.testing.assert_allclose(ours.table["se"].to_numpy(), r["se"].to_numpy(), rtol=1e-5)


def test_demo_main_estimate_covers_the_truth_and_the_naive_one_is_biased(demo):
    """Default demo (national path, shock, drifts, ramping site effects; seed 2024).

    The calendar-time Cox estimate is within 3 SE of the generator's average effect on the treated.
    The naive before/after estimate is below the truth by more than 2 of its SEs: it has absorbed the
    national fall of the gap in 2022-23 (a fixed-seed fact; its bias over replicates is in
    docs/simulation-study.md).
    """
    cohort, go_live, truth = demo
    att = attribute(cohort, go_live, "White British", START, END)
    target = np.log(truth["attribution"]["att_detention_hazard"])
    assert abs(att.cox.effect.log_estimate - target) < 3 * att.cox.effect.se
    assert att.naive.log_estimate < target - 2 * att.naive.se
    assert att.cox.model.converged
    assert att.counts["focus_live"] > 0 and att.counts["focus_not_live"] > 0
    assert set(att.cox.by_event_year["event_year"]) == {0, 1, 2}
    robust = att.cox.effect_site_robust  # the same estimate; the SE from the six sites' scores (a check)
    assert robust.log_estimate == att.cox.effect.log_estimate and 0 < robust.se < 1


def test_null_effect_static_model_is_not_rejected_more_than_chance(tmp_path):
    """Static model with no PCREF effect: the estimate is near 1 (within 3 SE)."""
    from pcref_eval.cohort import build_cohort
    from pcref_eval.config import CohortConfig, EthnicityConfig, StudyConfig
    from pcref_eval.extract import load_site
    from pcref_eval.synth import generate
    from pcref_eval.synth.model import SimulationModel
    truth = generate(tmp_path, people=40_000, seed=9, n_sites=6,
                     model=SimulationModel.static(implementation_effect=1.0))
    cohorts, go = [], {}
    for sid in sorted(truth["sites"]):
        site = load_site(tmp_path / sid, tables=["people", "referrals", "mha_episodes"])
        cohorts.append(build_cohort(site, StudyConfig(), CohortConfig(), EthnicityConfig())[0])
        go[sid] = site.info.pcref_go_live
    design = design_from_sites(go, START, END)
    r = calendar_time_cox(analysis_cohort(pd.concat(cohorts), "White British", START), design)
    assert abs(r.effect.log_estimate) < 3 * r.effect.se
    assert truth["attribution"]["att_detention_hazard"] == pytest.approx(1.0)


def test_quasi_separated_terms_are_left_out_and_the_model_refitted(demo):
    """The comparison sites' focus groups have no first detention in 2023-04..06, the quarter that is
    months 6-8 after site_a's go-live: that quarter's focus term runs to -infinity and site_a's PCREF cell
    there to +infinity (before this guard, such a replicate of the simulation study reported SE 0.0).
    Their rows are left out and the model refitted: the other PCREF terms are those of the diverged fit's
    limit (within 0.005; their SEs are 0.6-1.0: not exact, as the left-out rows of site_a still informed
    its baseline hazard and the adjustment)."""
    from pcref_eval.attribution import calendar_cox as cc
    from pcref_eval.estimability import diverged_terms

    cohort, go_live, _ = demo
    keep = ["site_a", "site_c", "site_f"]
    part = cohort[cohort["site_id"].isin(keep)].sample(frac=0.15, random_state=1)
    design = design_from_sites({s: go_live[s] for s in keep}, START, END)
    ac = analysis_cohort(part, "White British", START)
    lo, hi = design.month_days[24], design.month_days[27]  # 2023-04-01 to 2023-07-01
    hole = (ac["site_id"].isin(["site_c", "site_f"]) & (ac["focus"] == 1) & (ac["event"] == 1)
            & (ac["exit"] >= lo) & (ac["exit"] < hi))
    assert hole.sum() > 0
    ac.loc[hole, "event"] = 0
    data = cc.calendar_cox_data(ac, design)
    diverged_fit, *_ = cc._fit(data)
    indicators = [c for c in data.covariates if c.startswith(("focus:", "pcref["))]
    assert diverged_terms(indicators, diverged_fit.coef[indicators],
                          np.diag(diverged_fit.variance.loc[indicators, indicators])) == [
        "focus:quarter[2023-04]", "pcref[2022-10|2]"]
    r = calendar_time_cox(ac, design)
    assert "pcref[2022-10|2]" not in set(r.cells["term"]) and "focus:quarter[2023-04]" not in r.model.coef.index
    assert (r.cells["se"] < 2).all() and np.isfinite(r.effect.log_estimate) and 0 < r.effect.se < 1
    np.testing.assert_allclose(r.cells["coef"], diverged_fit.coef[r.cells["term"]], atol=0.005)
    # the refit starts from the diverged fit's other coefficients: the same maximum as from zero, in fewer steps
    cold, *_ = cc._fit(cc.calendar_cox_data(ac, design, leave_out=("focus:quarter[2023-04]", "pcref[2022-10|2]")))
    assert list(cold.coef.index) == list(r.model.coef.index)
    np.testing.assert_allclose(r.model.coef.to_numpy(), cold.coef.to_numpy(), rtol=0, atol=1e-8)
    np.testing.assert_allclose(r.model.table["se"].to_numpy(), cold.table["se"].to_numpy(), rtol=0, atol=1e-8)
    assert r.model.iterations < cold.iterations, (r.model.iterations, cold.iterations)


def test_focus_rows_of_a_quarter_without_focus_events_are_left_out(demo, monkeypatch):
    """No focus-group detention in the first (reference) quarter: every focus x quarter and focus x site term
    runs off together (|coef| about 70, SEs 2e7 in a 2,000-person run). Those focus rows leave every risk set
    at the limit, so they are left out before the fit: nothing diverges, and the PCREF terms are those the
    diverging fit gives (the runaway direction does not move them)."""
    from pcref_eval.attribution import calendar_cox as cc

    cohort, go_live, _ = demo
    keep = ["site_a", "site_c", "site_f"]
    part = cohort[cohort["site_id"].isin(keep)].sample(frac=0.15, random_state=1)
    design = design_from_sites({s: go_live[s] for s in keep}, START, END)
    ac = analysis_cohort(part, "White British", START)
    first_q = (ac["focus"] == 1) & (ac["event"] == 1) & (ac["exit"] < design.month_days[3])
    assert first_q.sum() > 0
    ac.loc[first_q, "event"] = 0
    data = cc.calendar_cox_data(ac, design)
    assert not ((data.rows["focus"] == 1) & (data.rows["month"] < 3)).any()
    r = calendar_time_cox(ac, design)
    assert (r.cells["se"] < 2).all() and r.model.converged
    # the diverging fit: the same model with those focus rows kept
    monkeypatch.setattr(cc, "_without_eventless_focus", lambda rows, label, design, adjust: (rows, label))
    kept = cc.calendar_cox_data(ac, design)
    assert ((kept.rows["focus"] == 1) & (kept.rows["month"] < 3)).any()
    diverging, *_ = cc._fit(kept)
    focus_terms = [c for c in kept.covariates if c.startswith("focus:")]
    assert np.abs(diverging.coef[focus_terms]).max() > 20
    np.testing.assert_allclose(r.cells["coef"], diverging.coef[r.cells["term"]], atol=1e-3)


def test_site_trends_option_adds_one_linear_trend_per_site_but_the_first(demo):
    """focus x site linear trends in calendar years (by quarter), zero on reference rows and other sites."""
    from pcref_eval.attribution import calendar_cox as cc

    cohort, go_live, _ = demo
    keep = ["site_a", "site_c", "site_f"]
    part = cohort[cohort["site_id"].isin(keep)].sample(frac=0.3, random_state=2)
    design = design_from_sites({s: go_live[s] for s in keep}, START, END)
    ac = analysis_cohort(part, "White British", START)
    plain = cc.calendar_cox_data(ac, design)
    trended = cc.calendar_cox_data(ac, design, site_trends=True)
    trends = [c for c in trended.covariates if c.startswith("trend:")]
    assert trends == ["trend:site[site_c]", "trend:site[site_f]"]  # the first site's trend is the reference
    assert set(trended.covariates) - set(plain.covariates) == set(trends)
    rows = trended.rows
    col = trended.X[:, trended.covariates.index("trend:site[site_c]")]
    own = (rows["site_id"] == "site_c").to_numpy() & (rows["focus"] == 1).to_numpy()
    np.testing.assert_array_equal(col[~own], 0.0)
    np.testing.assert_allclose(col[own], (rows["month"].to_numpy()[own] // 3) / 4.0)
    r = calendar_time_cox(ac, design, site_trends=True)
    assert np.isfinite(r.effect.log_estimate) and r.effect.se > calendar_time_cox(ac, design).effect.se


def test_drift_sensitivity_predicts_the_site_trend_models_estimate(demo):
    """w_s (how far the effect moves per unit of site s's drift left out of the model) is checked against a
    second fit: the model with each site's trend estimated. To first order the main estimate minus that model's
    equals sum_s w_s * trend_s (the first site's trend is the reference, 0). A drift common to every site is
    absorbed by the focus x quarter terms, so the w_s sum to zero."""
    cohort, go_live, _ = demo
    keep = ["site_a", "site_c", "site_f"]
    part = cohort[cohort["site_id"].isin(keep)].sample(frac=0.5, random_state=3)
    design = design_from_sites({s: go_live[s] for s in keep}, START, END)
    ac = analysis_cohort(part, "White British", START)
    main = calendar_time_cox(ac, design)
    trended = calendar_time_cox(ac, design, site_trends=True)
    w = main.drift_sensitivity
    assert list(w.index) == keep and abs(w.sum()) < 1e-8 * np.abs(w).max()
    assert np.abs(w).max() > 0.3  # the live sites' estimates lean on their drift
    trend = trended.model.coef
    predicted = sum(w[s] * trend.get(f"trend:site[{s}]", 0.0) for s in keep)
    observed = main.effect.log_estimate - trended.effect.log_estimate
    assert abs(observed) > 0.02  # the check has something to predict
    assert abs(predicted - observed) < 0.05 * abs(observed), (predicted, observed)
    # the allowance adds sd^2 * sum w^2 to the variance; 0 gives the model-based interval
    assert main.effect_allowing_drift(0.0) == main.effect
    wide = main.effect_allowing_drift(0.05)
    assert wide.log_estimate == main.effect.log_estimate
    assert wide.se ** 2 == pytest.approx(main.effect.se ** 2 + 0.05 ** 2 * float((w ** 2).sum()), rel=1e-12)
