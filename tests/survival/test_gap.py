"""The PCREF gap model on simulated cohorts with known hazard ratios."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pcref_eval.survival import cox, gap_change, simulate_gap_cohort
from pcref_eval.survival.gap import COHORT_COLUMNS

HR_PRE = 3.5
RATIO = 0.7
TRUTH = {"hr_pre": HR_PRE, "hr_post": HR_PRE * RATIO, "ratio_post_pre": RATIO}


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return simulate_gap_cohort(120_000, hr_black_pre=HR_PRE, ratio=RATIO, seed=11)


def test_simulated_cohort_follows_the_contract(cohort):
    assert list(cohort.columns) == COHORT_COLUMNS
    assert set(cohort["period"]) == {"pre", "post"}
    assert set(cohort["status"]) == {0, 1, 2}
    assert (cohort["duration_days"] > 0).all()
    assert cohort["imd_decile"].isna().mean() == pytest.approx(0.1, abs=0.01)


def test_gap_change_recovers_known_hazard_ratios(cohort):
    """Stated tolerance at n = 120,000 (about 2,000 events in Black people): the 95% CI covers
    the truth and |log(estimate / truth)| < 0.15 for HR before, HR after and their ratio."""
    res = gap_change(cohort, reference="White")
    black = res.for_group("Black").set_index("quantity")
    for quantity, truth in TRUTH.items():
        row = black.loc[quantity]
        assert row["lower"] <= truth <= row["upper"], (quantity, row.to_dict())
        assert abs(np.log(row["estimate"] / truth)) < 0.15, (quantity, row["estimate"])
    # no period interaction was simulated for the other groups
    for g in ("Asian", "Mixed", "Other"):
        ratio = res.for_group(g).set_index("quantity").loc["ratio_post_pre"]
        assert abs(ratio["log_estimate"]) < 4 * ratio["se"]


def test_hr_post_ci_uses_the_coefficient_covariance(cohort):
    res = gap_change(cohort)
    b, V = res.model.coef, res.model.variance
    terms = ["eth[Black]", "eth[Black]:post"]
    row = res.for_group("Black").set_index("quantity").loc["hr_post"]
    se = np.sqrt(V.loc[terms, terms].to_numpy().sum())
    assert row["log_estimate"] == pytest.approx(b[terms].sum())
    assert row["se"] == pytest.approx(se)
    assert row["lower"] == pytest.approx(np.exp(b[terms].sum() - 1.959963984540054 * se))
    # the covariance term matters: ignoring it would give a different SE
    assert abs(se - np.sqrt(V.loc[terms[0], terms[0]] + V.loc[terms[1], terms[1]])) > 1e-4


def test_model_is_stratified_by_site_and_adjusted(cohort):
    res = gap_change(cohort)
    assert res.model.strata is not None and len(res.model.strata) == cohort["site_id"].nunique()
    terms = set(res.model.table["term"])
    assert {"post", "age", "sex[2]", "imd[1]", "imd[missing]"} <= terms
    assert res.events == int((cohort["status"] == 1).sum())  # deaths are censored, not events


def test_imd_missing_handling(cohort):
    ind = gap_change(cohort, imd="indicator")
    cc = gap_change(cohort, imd="complete_case")
    n_missing = int(cohort["imd_decile"].isna().sum())
    assert ind.n == len(cohort) and ind.n_dropped == 0
    assert cc.n == len(cohort) - n_missing and cc.n_dropped == n_missing
    assert ind.n_imd_missing == cc.n_imd_missing == n_missing
    # MCAR missingness: both approaches estimate the same ratio
    a = ind.for_group("Black").set_index("quantity").loc["ratio_post_pre", "log_estimate"]
    b = cc.for_group("Black").set_index("quantity").loc["ratio_post_pre", "log_estimate"]
    assert abs(a - b) < 0.1


def test_matches_a_hand_built_cox_model():
    small = simulate_gap_cohort(8000, seed=5)
    res = gap_change(small)
    d = small.copy()
    d["post"] = (d["period"] == "post").astype(float)
    d["black"] = (d["ethnic_group"] == "Black").astype(float)
    d["black_post"] = d["black"] * d["post"]
    covs = ["post", "black", "black_post", "age"]
    for g in ("Asian", "Mixed", "Other"):
        d[g] = (d["ethnic_group"] == g).astype(float)
        d[g + "_post"] = d[g] * d["post"]
        covs += [g, g + "_post"]
    d["female"] = (d["sex"] == "2").astype(float)
    d["sex_other"] = (~d["sex"].isin(["1", "2"])).astype(float)
    covs += ["female", "sex_other"]
    for k in range(1, 10):
        d[f"imd{k}"] = (d["imd_decile"] == k).fillna(False).astype(float)
        covs.append(f"imd{k}")
    d["imd_na"] = d["imd_decile"].isna().astype(float)
    covs.append("imd_na")
    d["event"] = (d["status"] == 1).astype(int)
    hand = cox(d, "duration_days", "event", covs, strata="site_id").coef
    black = res.for_group("Black").set_index("quantity")
    assert black.loc["hr_pre", "log_estimate"] == pytest.approx(hand["black"], abs=1e-9)
    assert black.loc["ratio_post_pre", "log_estimate"] == pytest.approx(hand["black_post"], abs=1e-9)


def test_contract_is_validated():
    small = simulate_gap_cohort(500, seed=1)
    with pytest.raises(KeyError, match="contract"):
        gap_change(small.drop(columns=["imd_decile"]))
    bad = small.copy()
    bad.loc[0, "period"] = "during"
    with pytest.raises(ValueError, match="period"):
        gap_change(bad)
    with pytest.raises(ValueError, match="reference"):
        gap_change(small, reference="Purple")


@pytest.mark.slow
def test_gap_change_tight_at_national_scale():
    """n = 1,000,000 people: estimates within 5% (log scale 0.05) of the truth."""
    big = simulate_gap_cohort(1_000_000, hr_black_pre=HR_PRE, ratio=RATIO, seed=99)
    black = gap_change(big).for_group("Black").set_index("quantity")
    for quantity, truth in TRUTH.items():
        row = black.loc[quantity]
        assert row["lower"] <= truth <= row["upper"]
        assert abs(np.log(row["estimate"] / truth)) < 0.05


def test_a_sex_or_imd_level_without_events_is_left_out_at_the_limit():
    """An IMD decile in which nobody was detained: its coefficient runs to -infinity (our Newton step met a
    singular information matrix in a 600-person run). Those people are left out (the exact limit): the
    gap estimates equal lifelines' fit on everyone, which lets that coefficient run off (to 1e-3)."""
    from lifelines import CoxPHFitter

    from pcref_eval.survival.gap import _design, without_eventless_adjustment

    cohort = simulate_gap_cohort(n=3000, n_sites=1, seed=4)
    decile3 = pd.to_numeric(cohort["imd_decile"], errors="coerce") == 3
    cohort.loc[decile3 & (cohort["status"] == 1), "status"] = 0  # nobody in decile 3 detained
    res = gap_change(cohort, reference="White")
    design, terms, _ = _design(cohort, "White", "indicator", 10)
    data = design.assign(_time=pd.to_numeric(cohort["duration_days"]).astype(float),
                         _event=(pd.to_numeric(cohort["status"]) == 1).astype(float)).dropna()
    kept, covariates = without_eventless_adjustment(data, list(design.columns))
    assert len(kept) == len(data) - int(decile3.sum()) and "imd[3]" not in covariates
    cph = CoxPHFitter().fit(data[[*design.columns, "_time", "_event"]], "_time", "_event")
    assert cph.params_["imd[3]"] < -5  # lifelines lets it run off
    for g, (main, inter) in terms.items():
        row = res.table[(res.table["group"] == g) & (res.table["quantity"] == "ratio_post_pre")].iloc[0]
        assert row["log_estimate"] == pytest.approx(cph.params_[inter], abs=1e-3), g
