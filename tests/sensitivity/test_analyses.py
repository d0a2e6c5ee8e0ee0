"""The side-by-side sensitivity table on the synthetic demo: consistent with the main analysis, every
column declared once, model outputs only over the minimum count, and released through the Publisher."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pcref_eval import detention
from pcref_eval.cohort import build_cohort
from pcref_eval.config import CohortConfig, EthnicityConfig, StudyConfig
from pcref_eval.disclosure import DisclosurePolicy
from pcref_eval.extract import load_site
from pcref_eval.publish import Publisher
from pcref_eval.sensitivity.analyses import (COUNT_COLUMNS, MODEL_COLUMNS, SensitivityConfig, sensitivity_rows,
                                             sensitivity_table)
from pcref_eval.sensitivity.ethnicity import ImputationConfig
from pcref_eval.synth import generate
from pcref_eval.synth.model import SimulationModel

REF = "White British"
RATIO = "Ratio of hazard ratios (after / before)"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A 4-site synthetic demo of 40,000 people (seed 7), its cohort, go-live dates and sensitivity rows."""
    folder = tmp_path_factory.mktemp("sens")
    generate(folder, people=40_000, seed=7)
    cohorts, go_live = [], {}
    for sid in ("site_a", "site_b", "site_c", "site_d"):
        site = load_site(folder / sid, tables=["people", "referrals", "mha_episodes"])
        cohorts.append(build_cohort(site, StudyConfig(), CohortConfig(), EthnicityConfig(scheme="pcref"))[0])
        go_live[sid] = site.info.pcref_go_live
    cohort = pd.concat(cohorts, ignore_index=True)
    rows = sensitivity_rows(cohort, go_live, REF, SensitivityConfig(imputation=ImputationConfig(m=3, seed=1)))
    return cohort, go_live, rows


def test_main_rows_equal_the_main_analysis(demo):
    cohort, go_live, rows = demo
    main = detention.gap_over_time(cohort, go_live, REF).data.set_index("quantity")
    ours = rows[rows["analysis"].str.startswith("Main analysis")].set_index("quantity")
    for col in ("estimate", "lower", "upper"):
        np.testing.assert_allclose(ours.loc[main.index, col], main[col], rtol=1e-12)
    assert ours["focus_detentions_pre"].iloc[0] == main["focus_detentions_pre"].iloc[0]


def test_every_analysis_is_present_and_near_the_generators_truth(demo):
    """Each analysis's ratio of hazard ratios is within 3 SE of the implementation effect (fixed seed)."""
    _, _, rows = demo
    ratio = rows[rows["quantity"] == RATIO].set_index("analysis")
    assert len(ratio) == 1 + 1 + 1 + 1 + 4 + 2  # main, own group, MI, Fine-Gray, 4 x leave-one-out, 2 pooled
    se = (np.log(ratio["upper"]) - np.log(ratio["lower"])) / (2 * 1.959964)
    z = np.log(ratio["estimate"] / SimulationModel().implementation_effect) / se
    assert (z.abs() <= 3).all(), z
    pooled = ratio[ratio.index.str.startswith("Sites pooled")]
    assert pooled["pi_lower"].notna().all() and (pooled["pi_lower"] <= pooled["lower"] + 1e-12).all()
    assert pooled["tau2"].notna().all() and ratio.loc[~ratio.index.str.startswith("Sites"), "tau2"].isna().all()


def test_table_declares_every_column_once_and_blanks_small_cells(demo):
    _, _, rows = demo
    agg = sensitivity_table(rows, threshold=7)
    declared = agg.counts + agg.denominators + list(agg.derived) + agg.model + agg.labels
    assert sorted(declared) == sorted(agg.data.columns) and len(declared) == len(set(declared))
    assert agg.data[MODEL_COLUMNS[:3]].notna().all().all()
    thin = rows.copy()
    thin.loc[thin["analysis"].str.startswith("Fine-Gray"), "focus_detentions_post"] = 7
    blanked = sensitivity_table(thin, threshold=7).data
    fg = blanked["analysis"].str.startswith("Fine-Gray")
    assert blanked.loc[fg, MODEL_COLUMNS].isna().all().all() and blanked.loc[~fg, "estimate"].notna().all()


def test_leave_one_out_rows_that_would_reveal_a_small_site_are_dropped(demo):
    _, _, rows = demo
    fake = rows.copy()
    main_pre = fake["focus_detentions_pre"].iloc[0]
    fake.loc[fake["analysis"] == "Leaving out site_b", "focus_detentions_pre"] = main_pre - 5
    table = sensitivity_table(fake, threshold=7).data
    assert "Leaving out site_b" not in set(table["analysis"]) and "Leaving out site_a" in set(table["analysis"])


def test_released_through_the_publisher_with_rounded_counts(demo, tmp_path):
    _, _, rows = demo
    pub = Publisher(tmp_path, "all", DisclosurePolicy.opensafely(), display=False)
    released = pub.release_table(sensitivity_table(rows, 7), "sensitivity", "Sensitivity analyses")
    csv = pd.read_csv(released.path)
    assert list(csv.columns) == ["analysis", "quantity", *COUNT_COLUMNS, *MODEL_COLUMNS]
    assert (pd.to_numeric(csv["people"]) % 5 == 0).all() and (pd.to_numeric(csv["focus_detentions_pre"]) % 5 == 0).all()


def test_an_analysis_that_cannot_be_fitted_is_reported_not_raised(demo):
    """An imputation model with a perfectly separating predictor does not converge: its row says "not
    estimable" (no reason in the released label) and the other analyses still run."""
    cohort, go_live, _ = demo
    leak = cohort.assign(leak=cohort["ethnic_group"].isin(["Black African", "Black Caribbean", "Black Mixed",
                                                            "Black Other"]).astype(float))
    config = SensitivityConfig(imputation=ImputationConfig(m=2, auxiliary=("leak",)), leave_one_site_out=False,
                               fine_gray=False, pooling=False)
    rows = sensitivity_rows(leak, go_live, REF, config)
    bad = rows[rows["analysis"].str.endswith("not estimable")]
    assert list(bad["analysis"].str.startswith("Unrecorded ethnicity multiply imputed")) == [True]
    assert bad["estimate"].isna().all() and rows["estimate"].notna().sum() == len(rows) - 1


def _recorded(cohort, go_live):
    from pcref_eval.sensitivity.analyses import FOCUS_LABEL, analysis_cohort
    df = analysis_cohort(cohort, go_live, REF)
    return df[df["ethnic_group"].isin([FOCUS_LABEL, REF])]


def _assert_same_estimates(a, b):
    pd.testing.assert_frame_equal(a[["quantity"]], b[["quantity"]])
    np.testing.assert_allclose(a[["log_estimate", "se"]].to_numpy(), b[["log_estimate", "se"]].to_numpy(),
                               rtol=0, atol=1e-8)


def test_leave_one_site_out_from_the_whole_design_equals_a_fresh_fit(demo):
    """The fast path (the whole model's sorted design without the site's stratum, Newton from the whole fit)
    gives the main analysis refitted from scratch on the other sites."""
    from pcref_eval.sensitivity.analyses import LeaveOneSiteOut, gap_estimates, gap_fit
    cohort, go_live, _ = demo
    recorded = _recorded(cohort, go_live)
    loso = LeaveOneSiteOut(recorded, REF, gap_fit(recorded, REF))
    for site in sorted(recorded["site_id"].unique()):
        assert loso._without(site) is not None, site  # the fast path is taken
        _assert_same_estimates(loso.estimates(site), gap_estimates(recorded[recorded["site_id"] != site], REF))


def test_leave_one_site_out_refits_afresh_when_the_design_would_change(demo):
    """When one site holds every person with missing IMD, leaving it out drops the IMD-missing term: the
    site's row is the main analysis run afresh on the rest (same numbers as gap_estimates), the others fast."""
    from pcref_eval.sensitivity.analyses import LeaveOneSiteOut, gap_estimates, gap_fit
    cohort, go_live, _ = demo
    recorded = _recorded(cohort, go_live).copy()
    recorded["imd_decile"] = recorded["imd_decile"].where(recorded["site_id"] != "site_b", np.nan)
    recorded.loc[recorded["site_id"] != "site_b", "imd_decile"] = (
        recorded.loc[recorded["site_id"] != "site_b", "imd_decile"].fillna(5))
    loso = LeaveOneSiteOut(recorded, REF, gap_fit(recorded, REF))
    assert loso._without("site_b") is None and loso._without("site_a") is not None
    for site in ("site_a", "site_b"):
        _assert_same_estimates(loso.estimates(site), gap_estimates(recorded[recorded["site_id"] != site], REF))


def test_leave_one_site_out_refits_afresh_when_a_level_would_lose_its_events(demo):
    """When every detention of people with "other" sex is at site_b, leaving site_b out leaves that level
    without an event (the main analysis then leaves those people out): site_b's row is the main analysis
    run afresh; a site whose removal keeps an event in every level takes the fast path. Same numbers either way."""
    from pcref_eval.cohort import STATUS_DETENTION
    from pcref_eval.sensitivity.analyses import LeaveOneSiteOut, gap_estimates, gap_fit
    cohort, go_live, _ = demo
    recorded = _recorded(cohort, go_live).copy()
    detained = recorded["status"] == STATUS_DETENTION
    at_b = recorded["site_id"] == "site_b"
    other = (at_b & detained).cumsum().le(3) & at_b & detained  # three detained people at site_b
    other |= ~at_b & ~detained & (np.arange(len(recorded)) % 50 == 0)  # and undetained people elsewhere
    sex = recorded["sex"].astype("string")
    recorded["sex"] = sex.where(sex.isin(["1", "2"]), "1").where(~other, "9")  # only these people are "other"
    whole = gap_fit(recorded, REF)
    assert "sex[other]" in whole.model.covariates
    loso = LeaveOneSiteOut(recorded, REF, whole)
    assert loso._without("site_b") is None and loso._without("site_a") is not None
    for site in ("site_a", "site_b"):
        _assert_same_estimates(loso.estimates(site), gap_estimates(recorded[recorded["site_id"] != site], REF))
