"""Truth recovery on synthetic data (``synthetic`` fixture: one 60,000-person inner-city site).

The ITS level change at go-live in the focus/reference ratio must cover the generator's effects
(detention hazard x0.70, restrictive interventions per bed day x0.80), and the pre-go-live detention
rate ratio must agree with its expected value computed from the generator's parameters.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
from scipy import stats

from pcref_eval.measures.compute import COMBINED_FOCUS, summarise_window
from pcref_eval.measures.defaults import default_measures
from pcref_eval.measures.implementation import effects_table, implementation_effect, implementation_effects
from pcref_eval.synth.model import FOCUS_GROUPS, SIM_GROUP, SimulationModel

DEFS = {m.id: m for m in default_measures()}


def test_its_recovers_the_detention_implementation_effect(synthetic):
    site, truth, data = synthetic
    assert truth["model"]["implementation_effect"] == 0.70
    eff = implementation_effect(data, DEFS["detentions"], site.info.pcref_go_live, "White British")
    rr, lo, hi, p = eff.level_change
    assert lo <= 0.70 <= hi, (rr, lo, hi)
    assert hi < 1.0  # and the effect is detected
    assert 0.6 < rr < 0.85


def test_its_recovers_the_restrictive_intervention_effect(synthetic):
    site, truth, data = synthetic
    assert truth["model"]["ri_implementation_effect"] == 0.80
    eff = implementation_effect(data, DEFS["ri_incidents"], site.info.pcref_go_live, "White British")
    rr, lo, hi, _ = eff.level_change
    assert lo <= 0.80 <= hi, (rr, lo, hi)


def expected_detention_rate_ratio(truth: dict, site_id: str) -> float:
    """Focus/White British detention rate ratio per catchment population implied by the generator.

    Rate per population in group g = (people in contact per capita, proportional to the contact-rate ratio)
    x (mean detention hazard). Age and sex mixes are the same in every group; focus groups' IMD is 1.2
    deciles more deprived (rounded, clipped to 1-10), which multiplies their hazard by E[exp(b (5.5 - IMD))].
    Ignored (about -2% for the focus group): time in hospital after a detention is not at risk.
    """
    from pcref_eval.synth.generate import ethnic_mix
    from pcref_eval.synth.model import SiteSpec

    m = SimulationModel()
    spec_d = dict(truth["sites"][site_id]["spec"])
    spec_d["pcref_go_live"] = date.fromisoformat(spec_d["pcref_go_live"])
    spec = SiteSpec(**spec_d)
    mix = ethnic_mix(spec)
    focus = [c for c in mix if SIM_GROUP[c] in FOCUS_GROUPS]
    per_capita = sum(mix[c] * m.contact_rate_ratio[SIM_GROUP[c]] * m.detention_hr[SIM_GROUP[c]] for c in focus)
    per_capita /= sum(mix[c] for c in focus)

    def imd_factor(mu):
        k = np.arange(1, 11)
        lo = np.where(k == 1, -np.inf, k - 0.5)
        hi = np.where(k == 10, np.inf, k + 0.5)
        p = stats.norm.cdf(hi, mu, 2.0) - stats.norm.cdf(lo, mu, 2.0)
        return float((p * np.exp(m.log_hr_imd_per_decile_more_deprived * (5.5 - k))).sum())

    return per_capita * imd_factor(spec.imd_mean - 1.2) / imd_factor(spec.imd_mean)


def test_pre_go_live_detention_rate_ratio_matches_the_generator(synthetic):
    site, truth, data = synthetic
    expected = expected_detention_rate_ratio(truth, "site_a")
    assert 3.8 < expected < 4.0
    go = pd.Timestamp(site.info.pcref_go_live)
    w = summarise_window(data[data["measure"] == "detentions"], end=go - pd.DateOffset(months=1),
                         reference="White British")
    r = w[w["group"] == COMBINED_FOCUS].iloc[0]
    assert r["ratio_lower"] <= expected <= r["ratio_upper"], (r["ratio"], r["ratio_lower"], r["ratio_upper"], expected)
    assert abs(r["ratio"] / expected - 1) < 0.15


def test_effects_table_declares_counts_and_skips_unmodelled_measures(synthetic):
    site, _, data = synthetic
    effects = implementation_effects(data, default_measures(), site.info.pcref_go_live, "White British")
    notes = {e.definition.id: e.note for e in effects}
    assert notes["honos_change"].startswith("mean change") and notes["ethnicity_recorded_people"].startswith("overall")
    agg = effects_table(effects)
    assert "honos_change" not in set(agg.data["measure_id"])
    assert agg.counts == ["focus_events_pre", "focus_events_post", "reference_events_pre", "reference_events_post"]
    det = agg.data.set_index("measure_id").loc["detentions"]
    assert det["months_before"] == 18 and det["months_after"] == 30
    total = data[(data["measure"] == "detentions") & (data["group"] == COMBINED_FOCUS)]["numerator"].sum()
    assert det["focus_events_pre"] + det["focus_events_post"] == total


def test_too_few_months_is_reported_not_raised(synthetic):
    site, _, data = synthetic
    eff = implementation_effect(data, DEFS["detentions"], date(2025, 1, 1), "White British")
    assert eff.result is None and "too few months" in eff.note
    assert np.isnan(eff.level_change[0])


def test_no_focus_event_after_go_live_is_not_estimable_not_a_ratio_of_zero(synthetic):
    """Before this guard the demo's report showed a level change of 0.00 (95% CI 0.00 to 0.00, p 0.0) for a
    site whose focus group had 10 rapid-tranquillisation incidents before go-live and none after."""
    site, _, data = synthetic
    go = site.info.pcref_go_live
    after = (pd.to_datetime(data["period"]) >= pd.Timestamp(go)) & (data["group"] == COMBINED_FOCUS) \
        & (data["measure"] == "detentions")
    eff = implementation_effect(data.assign(numerator=data["numerator"].where(~after, 0)), DEFS["detentions"], go,
                                "White British")
    assert eff.result is None and "not estimable" in eff.note
    assert np.isnan(eff.level_change).all() and np.isnan(eff.slope_change).all()


def test_a_diverged_its_term_is_not_reported(synthetic, monkeypatch):
    """A fit whose term ran off to infinity (|log ratio| > 20, here with a robust SE of 0) is not an estimate."""
    import pcref_eval.its as its

    site, _, data = synthetic
    real = its.segmented_poisson

    def diverged(*args, **kwargs):
        res = real(*args, **kwargs)
        res.table.loc[res.table["term"] == "group:level_change", ["estimate", "se"]] = [-31.0, 0.0]
        return res
    monkeypatch.setattr(its, "segmented_poisson", diverged)
    eff = implementation_effect(data, DEFS["detentions"], site.info.pcref_go_live, "White British")
    assert eff.result is None and "did not converge" in eff.note
