"""Released attribution tables: every column declared once; model outputs blanked on small counts."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from pcref_eval.attribution import attribute, event_study_table, event_year_table, headline_table
from pcref_eval.attribution.tables import MAIN_LABEL, design_text, headline_text, pretrend_text
from pcref_eval.disclosure import DisclosurePolicy
from pcref_eval.publish import Publisher


@pytest.fixture(scope="module")
def att(demo):
    cohort, go_live, _ = demo
    return attribute(cohort, go_live, "White British", date(2021, 4, 1), date(2025, 4, 30))


def _declared(agg):
    cols = [*agg.counts, *agg.denominators, *agg.derived, *agg.model, *agg.labels]
    return sorted(cols)


@pytest.mark.parametrize("make", [lambda a: headline_table(a, 7), lambda a: event_study_table(a.event_study, 7),
                                  lambda a: event_year_table(a, 7)])
def test_every_column_is_declared_exactly_once(att, make):
    agg = make(att)
    assert _declared(agg) == sorted(agg.data.columns)


def test_model_outputs_are_blanked_when_counts_are_small(att):
    agg = headline_table(att, threshold=10**9)
    assert agg.data[["estimate", "lower", "upper", "p"]].isna().all().all()
    es = event_study_table(att.event_study, threshold=10**9).data
    assert es[["ratio_change", "lower", "upper"]].isna().all().all()


def test_released_through_the_publisher_with_rounded_counts(att, tmp_path):
    for d in ("restricted/tables", "release/tables", "release/figures"):
        (tmp_path / d).mkdir(parents=True)
    pub = Publisher(tmp_path, "all", DisclosurePolicy.opensafely(), display=False)
    rt = pub.release_table(headline_table(att, 7), "pcref_effect", "caption")
    assert (rt.data["focus_detentions_live"] % 5 == 0).all()
    main = rt.data.set_index("estimator").loc[MAIN_LABEL]
    assert main["lower"] < main["estimate"] < main["upper"]
    text = headline_text(rt.data)
    assert f"{main['estimate']:.2f}" in text and "naive" in text
    assert "not yet live" in design_text(att) and "site_f" in design_text(att)
    assert "Pre-trend check" in pretrend_text(att.event_study)
    assert np.isfinite(att.event_study.pretrend_p)
    assert "every site is live" not in design_text(att)  # site_f is never live: every quarter has a comparison


def test_design_text_says_when_every_site_is_live_and_quotes_no_unreleased_number(att):
    from dataclasses import replace

    from pcref_eval.release_numbers import ReleasedValues, unexplained_numbers
    all_live = replace(att, cox=replace(att.cox, dropped_quarters=["2024-04", "2024-07"]))
    text = design_text(all_live)
    assert "From April 2024 every site is live" in text
    sentence = text[text.index("From April 2024"):text.index("**Main estimate")]
    assert unexplained_numbers(sentence, ReleasedValues(np.zeros(0)), 5, 7)[1:] == ([], [])


def test_the_reported_interval_carries_the_site_drift_allowance(att):
    """The headline's main row and the effects by year widen the model's interval by the config's site-drift
    allowance (sd^2 * sum w_s^2 added to the variance); sd = 0 gives the model's own interval. The design text
    states the assumption and quotes no number but the config's."""
    from dataclasses import replace

    from pcref_eval.config import AttributionConfig
    from pcref_eval.release_numbers import ReleasedValues, unexplained_numbers

    main = headline_table(att, 7).data.set_index("estimator").loc[MAIN_LABEL]
    allowed = att.cox.effect_allowing_drift(0.02)
    assert att.settings.site_drift_sd_per_year == 0.02
    assert (main["lower"], main["upper"]) == pytest.approx((allowed.lower, allowed.upper), rel=1e-12)
    assert main["lower"] < att.cox.effect.lower and main["upper"] > att.cox.effect.upper
    model_only = replace(att, settings=AttributionConfig(site_drift_sd_per_year=0.0))
    plain = headline_table(model_only, 7).data.set_index("estimator").loc[MAIN_LABEL]
    assert (plain["lower"], plain["upper"]) == pytest.approx((att.cox.effect.lower, att.cox.effect.upper), rel=1e-12)
    wide, narrow = event_year_table(att, 7).data, event_year_table(model_only, 7).data
    assert (wide["estimate"] == narrow["estimate"]).all()
    assert ((wide["lower"] < narrow["lower"]) & (wide["upper"] > narrow["upper"])).all()
    text = design_text(att)
    paragraph = text[text.index("**The interval**"):text.index("**The naive comparison")]
    assert "0.02 a year on the log scale" in paragraph and "site_drift_sd_per_year" in paragraph
    assert unexplained_numbers(paragraph, ReleasedValues(np.zeros(0)), 5, 7)[1:] == ([], [])
    assert "model's own" in design_text(model_only)
