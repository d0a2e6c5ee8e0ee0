"""Event study: closed-form difference in differences, truth recovery with staggered adoption, pre-trends."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from pcref_eval.attribution.design import design_from_sites
from pcref_eval.attribution.event_study import event_study


def test_two_by_two_equals_the_closed_form_ratio_of_rate_ratios():
    """One treated and one never-treated site, one quarter each side: the MLE is the closed-form DiD.

    log effect = [log(yf/yr) - log(Df/Dr)] treated after - same treated before - (control after - control before),
    variance = sum of 1/y over the eight counts (the binomial/Poisson information).
    """
    design = design_from_sites({"A": date(2021, 7, 1), "B": date(2030, 1, 1)}, date(2021, 4, 1), date(2021, 9, 30))
    cells = pd.DataFrame({
        "site_id": ["A", "A", "B", "B"], "month": [0, 3, 0, 3],
        "focus_events": [40, 30, 25, 35], "reference_events": [100, 110, 90, 95],
        "focus_days": [1e4, 1.1e4, 8e3, 8.5e3], "reference_days": [5e4, 5.2e4, 6e4, 6.1e4],
    })
    r = event_study(cells, design)
    lrr = np.log(cells["focus_events"] / cells["reference_events"]) - np.log(cells["focus_days"] / cells["reference_days"])
    expected = (lrr[1] - lrr[0]) - (lrr[3] - lrr[2])
    var = (1 / cells[["focus_events", "reference_events"]]).to_numpy().sum()
    assert r.effect.log_estimate == pytest.approx(expected, abs=1e-8)
    assert r.effect.se == pytest.approx(np.sqrt(var), rel=1e-6)
    assert r.pretrend_df == 0 and np.isnan(r.pretrend_p)


def _staggered_cells(seed: int, pretrend: float = 0.0) -> tuple[pd.DataFrame, object, float]:
    """Poisson cells: 8 sites, 3 adoption cohorts + never, national trend and shock, ramping effects.

    Returns (cells, design, true effect on the treated with the estimator's weights).
    """
    rng = np.random.default_rng(seed)
    go = {f"s{i}": d for i, d in enumerate([date(2022, 10, 1)] * 2 + [date(2023, 7, 1)] * 2 + [date(2024, 4, 1)] * 2
                                             + [date(2030, 1, 1)] * 2)}
    design = design_from_sites(go, date(2021, 4, 1), date(2025, 3, 31))
    rows, num, den = [], 0.0, 0.0
    for s in go:
        g = design.go_live_month(s)
        gap = np.log(3.0) + rng.normal(0, 0.2)
        eff = np.log(0.7) + rng.normal(0, 0.1)
        for m in range(design.n_months):
            national = -0.08 * m / 12 + (0.15 if 3 <= m < 9 else 0.0)
            since = m - g
            log_eff = eff * min(1.0, (since + 0.5) / 12) if since >= 0 else 0.0
            lead = pretrend * max(0, -since - 1) / 12 if since < 0 and g < 10**6 else 0.0
            df, dr = 2e5, 1e6
            mu_r = 1e-3 * dr * np.exp(0.01 * m)
            mu_f = 1e-3 * df * np.exp(0.01 * m + gap + national + log_eff + lead)
            rows.append({"site_id": s, "month": m, "focus_events": rng.poisson(mu_f), "reference_events": rng.poisson(mu_r),
                         "focus_days": df, "reference_days": dr})
            if since >= 0:
                num += df * log_eff
                den += df
    return pd.DataFrame(rows), design, float(np.exp(num / den))


def test_recovers_the_effect_on_the_treated_despite_trend_shock_and_ramp():
    cells, design, truth = _staggered_cells(seed=3)
    r = event_study(cells, design)
    z = (r.effect.log_estimate - np.log(truth)) / r.effect.se
    assert abs(z) < 3, (r.effect.estimate, truth)
    assert r.pretrend_p > 0.01
    # the profile: quarter -1 is the reference, quarters well after go-live near the full effect
    prof = r.profile.set_index("event_quarter")
    assert prof.loc[-1, "log_estimate"] == 0.0
    assert np.exp(prof.loc[6, "log_estimate"]) == pytest.approx(0.7, abs=0.1)


def test_pre_trend_test_detects_diverging_pre_trends():
    cells, design, _ = _staggered_cells(seed=4, pretrend=0.3)
    assert event_study(cells, design).pretrend_p < 0.001


def test_demo_event_study_covers_the_truth(demo):
    from pcref_eval.attribution import analysis_cohort, cells as make_cells
    from pcref_eval.attribution.aggregate import true_effect_for_cells
    cohort, go_live, truth = demo
    design = design_from_sites(go_live, date(2021, 4, 1), date(2025, 4, 30))
    r = event_study(make_cells(analysis_cohort(cohort, "White British", date(2021, 4, 1)), design), design)
    target = true_effect_for_cells(truth, r.cells[r.cells["post"]], design)
    assert abs(target - truth["attribution"]["att_detention_hazard"]) < 0.02  # same estimand, other weights
    assert abs(r.effect.log_estimate - np.log(target)) < 3 * r.effect.se


def test_per_cohort_pre_trend_test_detects_opposite_pre_trends_that_pooling_hides():
    """Cohort 2022-10 drifts up before go-live, cohort 2024-04 down by the same amount: the pooled leads cancel."""
    rng = np.random.default_rng(5)
    go = {f"s{i}": d for i, d in enumerate([date(2022, 10, 1)] * 2 + [date(2024, 4, 1)] * 2 + [date(2030, 1, 1)] * 2)}
    design = design_from_sites(go, date(2021, 4, 1), date(2025, 3, 31))
    slope = {date(2022, 10, 1): 0.25, date(2024, 4, 1): -0.25}
    rows = []
    for s, g_date in go.items():
        g = design.go_live_month(s)
        for m in range(design.n_months):
            since = m - g
            lead = slope.get(g_date, 0.0) * max(0, -since - 1) / 12 if since < 0 and g_date in slope else 0.0
            # a lead pattern ending at quarter -2 (quarter -1 is the reference): level shift of the early quarters
            mu_f = 200.0 * np.exp(np.log(2.5) + lead + (np.log(0.7) if since >= 0 else 0.0))
            rows.append({"site_id": s, "month": m, "focus_events": rng.poisson(mu_f),
                         "reference_events": rng.poisson(1000.0), "focus_days": 2e5, "reference_days": 1e6})
    r = event_study(pd.DataFrame(rows), design)
    assert r.cohort_pretrend_df > r.pretrend_df
    assert r.cohort_pretrend_p < 0.001
    assert r.pretrend_p > r.cohort_pretrend_p
    # the per-cohort fit is a check only: the effect is the pooled-lead model's
    plain = event_study(pd.DataFrame(rows), design, pretrend_by_cohort=False)
    assert plain.effect.log_estimate == r.effect.log_estimate and np.isnan(plain.cohort_pretrend_p)


def test_per_cohort_pre_trend_test_is_not_rejected_without_pre_trends():
    cells, design, _ = _staggered_cells(seed=6)
    r = event_study(cells, design)
    assert r.cohort_pretrend_df >= r.pretrend_df and r.cohort_pretrend_p > 0.01


def _noise_free_cells(go: dict, design, effect: float = 0.7) -> pd.DataFrame:
    """Expected counts (no sampling noise): site gaps, a national trend and shock, a constant PCREF effect."""
    rows = []
    for i, s in enumerate(sorted(go)):
        g = design.go_live_month(s)
        for m in range(design.n_months):
            national = -0.08 * m / 12 + (0.15 if 3 <= m < 9 else 0.0)
            log_eff = np.log(effect) if m >= g else 0.0
            rows.append({"site_id": s, "month": m, "focus_events": 200.0 * np.exp(0.3 * i + national + log_eff),
                         "reference_events": 1000.0, "focus_days": 2e5, "reference_days": 1e6})
    return pd.DataFrame(rows)


def test_without_never_live_sites_the_last_cohort_is_the_comparison():
    """Every site goes live in the window: pooled leads, quarters and sites are collinear (a linear trend in
    event time is one in calendar time), so the last cohort carries no event-time terms (Sun and Abraham).
    Noise-free counts: the effect is recovered exactly, and the leads are zero. (Before, with every lead
    unbinned, the pseudo-inverse fit gave 0.83 here, pre-trend chi-square 1,606.)"""
    go = {f"s{i}": d for i, d in enumerate([date(2022, 10, 1)] * 2 + [date(2023, 7, 1)] * 2 + [date(2024, 4, 1)] * 2)}
    design = design_from_sites(go, date(2022, 1, 1), date(2025, 3, 31))
    r = event_study(_noise_free_cells(go, design), design)
    assert r.estimable, r.note
    assert r.effect.estimate == pytest.approx(0.7, rel=1e-6)
    leads = [t for t in r.params.index if t.startswith("lead[")]
    assert leads and np.abs(r.params[leads]).max() < 1e-6 and r.pretrend_chi2 < 1e-6
    # the last cohort is the comparison: no post terms, and none of its months after go-live are used
    assert not any(t.startswith("post[2024-04") for t in r.params.index)
    last = r.cells[r.cells["cohort"] == "2024-04"]
    assert len(last) and last["event_quarter"].isna().all()
    assert (last["month"] < design.go_live_month("s4")).all()


def test_a_site_with_no_focus_events_is_left_out_exactly():
    """A site without focus events has an infinite free ratio: its cells inform nothing else, so the fit
    equals the fit without it (instead of a diverging IRLS)."""
    cells, design, _ = _staggered_cells(seed=3)
    extra = cells[cells["site_id"] == "s7"].assign(site_id="s8", focus_events=0)
    go = dict(design.go_live, s8=date(2030, 1, 1))
    with_empty = event_study(pd.concat([cells, extra]), design_from_sites(go, design.start, design.end))
    plain = event_study(cells, design)
    assert "s8" not in set(with_empty.cells["site_id"])
    assert with_empty.effect.log_estimate == pytest.approx(plain.effect.log_estimate, abs=1e-10)
    assert with_empty.pretrend_chi2 == pytest.approx(plain.pretrend_chi2, rel=1e-8)


def test_a_tiny_extract_is_not_estimable_rather_than_a_diverged_number(tmp_path):
    """2 sites, 3,000 people (83 focus first detentions): the saturated fit is quasi-separated (IRLS
    stopped at |log RR| about 20 with SEs about 1e4, chi-square 3e16 before this guard). The result says
    not estimable, and every released table, figure and sentence shows no estimate."""
    from pcref_eval.attribution import analysis_cohort, cells as make_cells
    from pcref_eval.attribution.tables import event_study_figure, event_study_table, pretrend_text
    from pcref_eval.cohort import build_cohort
    from pcref_eval.config import CohortConfig, EthnicityConfig, StudyConfig
    from pcref_eval.extract import load_site
    from pcref_eval.synth import generate

    generate(tmp_path, people=3000, seed=7, n_sites=2)
    sites = {s: load_site(tmp_path / s, tables=["people", "referrals", "mha_episodes"]) for s in ("site_a", "site_b")}
    cohort = pd.concat([build_cohort(x, StudyConfig(), CohortConfig(), EthnicityConfig())[0] for x in sites.values()])
    design = design_from_sites({s: x.info.pcref_go_live for s, x in sites.items()}, date(2021, 4, 1),
                               max(x.info.extract_date for x in sites.values()))
    r = event_study(make_cells(analysis_cohort(cohort, "White British", date(2021, 4, 1)), design), design)
    assert not r.estimable and r.note.startswith("not estimable")
    assert np.isnan(r.effect.log_estimate) and np.isnan(r.pretrend_chi2) and np.isnan(r.cohort_pretrend_chi2)
    assert r.profile["log_estimate"].isna().all() and len(r.profile)
    table = event_study_table(r, threshold=7).data
    assert table["ratio_change"].isna().all() and table[["lower", "upper"]].isna().all().all()
    text = pretrend_text(r)
    assert "not estimable" in text and "chi-square" not in text
    fig = event_study_figure(table, "tiny")
    assert "No estimate released" in fig.axes[0].texts[0].get_text()


def test_a_rank_deficient_design_is_not_estimable():
    import importlib
    es = importlib.import_module("pcref_eval.attribution.event_study")
    exog = pd.DataFrame({"a": [1.0, 1, 0, 0], "b": [0.0, 0, 1, 1], "c": [1.0, 1, 1, 1]})
    params, cov, note, diverged = es._binomial_fit(np.array([[5.0, 9], [4, 8], [6, 7], [3, 9]]), exog, np.zeros(4),
                                                   ["c"])
    assert params is None and cov is None and "collinear" in note and diverged == []


def test_a_quasi_separated_post_cell_is_left_out_and_the_model_refitted():
    """In one quarter the only comparison sites have no focus events: that quarter's term runs to -infinity
    and the treated cohort's post term there to +infinity together (the pooled post cell has events of both
    groups, so the empty-cell merge does not see it). Those cells are left out (the exact limit of the fit):
    the effect is then the intact data's effect over the other cells (merging the cell into its neighbour
    instead moved it from 0.657 to 0.776)."""
    import importlib
    es = importlib.import_module("pcref_eval.attribution.event_study")
    cells, full, _ = _staggered_cells(seed=3)
    keep = ["s0", "s1", "s6", "s7"]
    design = design_from_sites({s: full.go_live[s] for s in keep}, full.start, full.end)
    cells = cells[cells["site_id"].isin(keep)].copy()
    hole_q = design.go_live_month("s0") // 3 + 2
    in_hole = cells["month"] // 3 == hole_q
    holed = cells.copy()
    holed.loc[holed["site_id"].isin(["s6", "s7"]) & in_hole, "focus_events"] = 0
    d = es._prepare(holed, design, es.MAX_LEAD, es.MAX_LAG)
    pooled = es._pooled_design(d, design)
    params, _, _, diverged = es._binomial_fit(pooled.endog, pooled.exog, pooled.offset,
                                              pooled.lead_names + pooled.post["term"].tolist())
    assert params is None and diverged == ["post[2022-10|2]"]
    r = event_study(holed, design)
    assert r.estimable and "post[2022-10|2]" not in r.params.index and not (r.cells["quarter"] == hole_q).any()
    # second implementation: the intact cells without that quarter give the same fit
    without = event_study(cells[~in_hole], design)
    assert r.effect.log_estimate == pytest.approx(without.effect.log_estimate, abs=1e-6)
    assert r.effect.se == pytest.approx(without.effect.se, rel=1e-4)
