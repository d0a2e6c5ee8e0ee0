"""Synthetic generator: determinism, and recovery of the truths it was built from."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from pcref_eval.cohort import censor_at_go_live
from pcref_eval.config import CohortConfig, EthnicityConfig, StudyConfig
from pcref_eval.extract import load_site
from pcref_eval.cohort import build_cohort
from pcref_eval.synth import TABLES, generate
from pcref_eval.synth.model import SIM_GROUP, SimulationModel


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path):
    generate(tmp_path / "a", people=3000, seed=11)
    generate(tmp_path / "b", people=3000, seed=11)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []


def test_different_seed_gives_different_data(tmp_path):
    generate(tmp_path / "a", people=3000, seed=11)
    generate(tmp_path / "b", people=3000, seed=12)
    assert (tmp_path / "a/site_a/people.csv").read_bytes() != (tmp_path / "b/site_a/people.csv").read_bytes()


def test_layout_and_truth(tmp_path):
    truth = generate(tmp_path, people=4000, seed=5)
    assert sorted(truth["sites"]) == ["site_a", "site_b", "site_c", "site_d", "site_e", "site_f"]
    for site in truth["sites"]:
        names = {p.name for p in (tmp_path / site).iterdir()}
        assert {f"{t}.csv" for t in TABLES} | {"site.yml", "population.csv"} <= names
    saved = json.loads((tmp_path / "truth.json").read_text())
    assert saved["model"]["implementation_effect"] == SimulationModel().implementation_effect
    assert sum(s["spec"]["people"] for s in saved["sites"].values()) == 4000


def test_parquet_format_reads_back_like_csv(tmp_path):
    generate(tmp_path / "csv", people=2000, seed=3, n_sites=1)
    generate(tmp_path / "pq", people=2000, seed=3, n_sites=1, fmt="parquet")
    a, b = load_site(tmp_path / "csv/site_a"), load_site(tmp_path / "pq/site_a")
    for table in TABLES:
        pd.testing.assert_frame_equal(a[table], b[table], check_dtype=False)


def test_faults_are_injected_and_counted(tmp_path):
    truth = generate(tmp_path, people=4000, seed=5, faults=True)
    faults = truth["sites"]["site_a"]["faults"]
    assert set(faults) == {"invalid_ethnic_code", "missing_ethnicity", "invalid_legal_status", "end_before_start",
                           "duplicate_ids", "future_dates", "orphan_references", "unparseable_dates"}
    people = pd.read_csv(tmp_path / "site_a/people.csv", dtype=str, keep_default_na=False)
    assert (people["ethnic_category"] == "X").sum() == faults["invalid_ethnic_code"]["injected"]
    assert people["person_id"].duplicated().sum() == faults["duplicate_ids"]["injected"]
    mha = pd.read_csv(tmp_path / "site_a/mha_episodes.csv", dtype=str, keep_default_na=False)
    assert (mha["legal_status_code"] == "77").sum() == faults["invalid_legal_status"]["injected"]


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory):
    """One inner-city site of 100,000 people (the demo's site_a), generated once for the truth tests.

    The static model (no calendar-time change of the gap) makes the pre-go-live hazard ratios
    equal to ``detention_hr``; the calendar-time model is checked in tests/attribution/.
    """
    folder = tmp_path_factory.mktemp("synth")
    truth = generate(folder, people=100_000, seed=2024, n_sites=1, model=SimulationModel.static())
    return load_site(folder / "site_a"), truth


def test_ethnic_mix_of_people_matches_contact_weighted_catchment(demo_site):
    """Share of Black groups among people with recorded ethnicity = catchment share x contact ratio."""
    site, truth = demo_site
    model = SimulationModel()
    pop = site.population
    adult = pop["age_band"].str.extract(r"^(\d+)")[0].astype(int) >= 20  # bands wholly adult
    weight = pop.loc[adult, "population"] * pop.loc[adult, "ethnic_category"].map(SIM_GROUP).map(model.contact_rate_ratio)
    is_black = pop.loc[adult, "ethnic_category"].isin(list("MNPDE"))
    expected = weight[is_black].sum() / weight.sum()
    recorded = site["people"]["ethnic_category"].dropna()
    recorded = recorded[recorded.isin(list("ABCDEFGHJKLMNPRS"))]
    observed = recorded.isin(list("MNPDE")).mean()
    se = np.sqrt(expected * (1 - expected) / len(recorded))
    assert abs(observed - expected) < 4 * se + 0.005  # 0.005: age-profile weighting of the 15-19 and 65+ bands


def test_poisson_regression_recovers_detention_hazard_ratios(demo_site):
    """Events / person-time before go-live, adjusted like the generator, recovers the group hazard ratios.

    Under the generator's exponential model a Poisson GLM with a log person-time offset is the
    maximum-likelihood estimator of the log hazard ratios; the 95% CI must cover the truth.
    """
    site, truth = demo_site
    model = SimulationModel()
    cohort, _ = build_cohort(site, StudyConfig(), CohortConfig(), EthnicityConfig(scheme="pcref"))
    pre = censor_at_go_live(cohort[cohort["period"] == "pre"], site.info.pcref_go_live)
    pre = pre[pre["imd_decile"].notna() & pre["ethnic_group"].isin(["White British", "Black Caribbean", "Black African"])]
    X = pd.DataFrame({
        "black_caribbean": (pre["ethnic_group"] == "Black Caribbean").astype(float),
        "black_african": (pre["ethnic_group"] == "Black African").astype(float),
        "age10": (pre["age"] - 40) / 10,
        "male": (pre["sex"] == "1").astype(float),
        "deprivation": 5.5 - pre["imd_decile"].astype(float),
    })
    fit = sm.GLM((pre["status"] == 1).astype(float), sm.add_constant(X), family=sm.families.Poisson(),
                 offset=np.log(pre["duration_days"])).fit()
    ci = fit.conf_int()
    for term, truth_hr in [("black_caribbean", model.detention_hr["Black Caribbean"]),
                           ("black_african", model.detention_hr["Black African"])]:
        lo, hi = ci.loc[term]
        assert lo <= np.log(truth_hr) <= hi, (term, np.exp([lo, hi]), truth_hr)
    lo, hi = ci.loc["male"]
    assert lo <= model.log_hr_male <= hi
