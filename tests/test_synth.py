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
    truth = generate(tmp_path, people=4000, seed=5, n_sites=6)
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


# ---------------------------------------------------------------- calendar time (issue 11)


def test_national_path_is_the_published_series_at_financial_year_midpoints():
    from datetime import date

    from pcref_eval.synth.calendar import day_number, national_log_gap
    from pcref_eval.synth.model import NHSE_BLACK_WHITE_DETENTION_RATIO as path
    model = SimulationModel()
    days = np.array([day_number(date(y, 10, 1)) for y in path])
    np.testing.assert_allclose(np.exp(national_log_gap(days, model)), np.array(list(path.values())) / path[2021])
    assert national_log_gap(days, SimulationModel.static()).tolist() == [0.0] * len(path)


def test_pcref_effect_ramps_up_and_truth_json_holds_it(tmp_path):
    truth = generate(tmp_path, people=6000, seed=5, n_sites=6)
    for sid, site in truth["sites"].items():
        p = site["pcref"]
        eff = {int(k): v for k, v in p["effect_by_event_month"].items()}
        if site["spec"]["pcref_go_live"] > "2025-04-30":
            assert eff == {}  # never live within the window
            continue
        import calendar as cal
        go = pd.Timestamp(site["spec"]["pcref_go_live"])
        days0 = cal.monthrange(go.year, go.month)[1]
        frac = (np.arange(days0) + 0.5) / 365.25  # log effect builds up linearly over 12 months
        assert eff[0] == pytest.approx(np.mean(p["full_effect"] ** frac), rel=1e-9)  # mean over the month's days
        ramp = [np.log(eff[k]) / np.log(p["full_effect"]) for k in range(min(12, len(eff)))]
        assert all(0 < a < b < 1 for a, b in zip(ramp, ramp[1:]))  # builds up month by month
        if 12 in eff:
            assert eff[12] == pytest.approx(p["full_effect"])
        assert set(p["focus_person_days_by_event_month"]) <= set(p["effect_by_event_month"])
    att = truth["attribution"]["att_detention_hazard"]
    fulls = [s["pcref"]["full_effect"] for s in truth["sites"].values()]
    assert min(fulls) < att < 1.0


def test_event_times_follow_the_cumulative_calendar_hazard():
    """P(event by day t | at risk from s) = 1 - exp(-h (C(t) - C(s))): binomial check at three horizons."""
    from pcref_eval.synth.calendar import SiteCalendar, site_parameters
    from pcref_eval.synth.model import default_sites
    model = SimulationModel()
    spec = default_sites(10_000, 6)[0]
    cal = SiteCalendar(spec, model, site_parameters(1, model, 3)[0])
    rng = np.random.default_rng(0)
    n = 200_000
    start = np.full(n, cal.first + 200.0)
    h = np.full(n, 0.002)
    for focus in (False, True):
        flag = np.full(n, focus)
        t = cal.event_day(start, h, flag, rng.exponential(1.0, n))
        x, c = cal._cum[focus]
        for horizon in (100, 500, 1200):
            p = 1 - np.exp(-0.002 * (np.interp(start[0] + horizon, x, c) - np.interp(start[0], x, c)))
            observed = np.mean(t <= start[0] + horizon)
            assert abs(observed - p) < 4 * np.sqrt(p * (1 - p) / n), (focus, horizon, observed, p)
