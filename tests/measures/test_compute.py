"""Every default measure on the tiny hand-built extract (conftest.py), against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from pcref_eval import rates
from pcref_eval.measures.compute import (
    COMBINED_FOCUS,
    OVERALL,
    SiteMeasureContext,
    aggregate_periods,
    month_grid,
    output_groups,
    summarise_window,
)
from pcref_eval.measures.defaults import default_measures

JAN, FEB, MAR = (pd.Timestamp(f"2024-{m:02d}-01") for m in (1, 2, 3))
DAYS = {JAN: 31, FEB: 29, MAR: 31}
POP = {"White British": 100_000, "Black African": 20_000, "Black Caribbean": 10_000, "Other groups": 5_000,
       COMBINED_FOCUS: 30_000}
WB = "White British"


def row(df, measure, period, group):
    r = df[(df["measure"] == measure) & (df["period"] == period) & (df["group"] == group)]
    assert len(r) == 1, (measure, period, group)
    return r.iloc[0]


def py(pop, period):
    return pop * DAYS[period] / 365.25


# ----------------------------------------------------------------------------- shape


def test_every_group_and_month_is_present_including_unrecorded(tiny_measures):
    groups = output_groups("pcref")
    assert groups[-4:] == ["Not stated", "Not known", "Missing", COMBINED_FOCUS]
    for m in default_measures():
        sub = tiny_measures[tiny_measures["measure"] == m.id]
        expected = [OVERALL] if m.group_by == "overall" else groups
        assert sorted(sub["period"].unique()) == [JAN, FEB, MAR]
        for p in (JAN, FEB, MAR):
            assert sub.loc[sub["period"] == p, "group"].tolist() == expected, m.id


def test_month_grid_keeps_whole_months_before_the_extract_date():
    from datetime import date

    assert list(month_grid(date(2024, 1, 1), date(2024, 3, 31), date(2024, 4, 30))) == [JAN, FEB, MAR]
    assert list(month_grid(date(2024, 1, 15), date(2024, 3, 31), date(2024, 3, 20))) == [FEB]  # partial months out
    with pytest.raises(ValueError, match="no whole calendar month"):
        month_grid(date(2024, 1, 5), date(2024, 1, 20), date(2024, 4, 1))


# ----------------------------------------------------------------------------- rates per population


@pytest.mark.parametrize("measure, counts", [
    # detentions: E1 s2 (P1 Jan), E2 s3 after s2 (P1 Feb), E3 (P3 Jan), E5 '09' (P4 Mar), E6 (P6 Feb),
    # E7 (P8 Mar), E11 (unknown person Jan); E8 informal, E9/E4 s136 and E10 (2023) are not counted
    ("detentions", {(JAN, WB): 1, (JAN, "Black African"): 1, (JAN, "Missing"): 1, (JAN, COMBINED_FOCUS): 1,
                    (FEB, WB): 1, (FEB, "Not stated"): 1, (FEB, COMBINED_FOCUS): 0,
                    (MAR, "Black Caribbean"): 1, (MAR, "Missing"): 1, (MAR, COMBINED_FOCUS): 1, (MAR, WB): 0}),
    ("s136_holds", {(JAN, WB): 1, (MAR, "Black African"): 1, (MAR, COMBINED_FOCUS): 1, (FEB, WB): 0}),
    ("ctos", {(FEB, "Black African"): 1, (MAR, WB): 1, (FEB, COMBINED_FOCUS): 1}),
])
def test_rates_per_population(tiny_measures, measure, counts):
    for (period, group), n in counts.items():
        r = row(tiny_measures, measure, period, group)
        assert r["numerator"] == n
        if group in POP:
            denom = py(POP[group], period)
            assert r["denominator"] == pytest.approx(denom)
            assert r["value"] == pytest.approx(n / denom * 100_000)
            lo, hi = rates.exact_poisson_limits([n])
            assert r["lower"] == pytest.approx(lo[0] / denom * 100_000)
            assert r["upper"] == pytest.approx(hi[0] / denom * 100_000)
        else:  # no catchment population: counts only
            assert np.isnan(r["denominator"]) and np.isnan(r["value"]) and np.isnan(r["ratio"])


def test_detention_rate_ratio_against_white_british(tiny_measures):
    r = row(tiny_measures, "detentions", JAN, COMBINED_FOCUS)
    assert r["value"] == pytest.approx(1 / py(30_000, JAN) * 1e5)  # 39.27 per 100,000 per year
    assert r["ratio"] == pytest.approx(100_000 / 30_000)
    ref = rates.rate_ratio(1, py(30_000, JAN), 1, py(100_000, JAN))
    assert (r["ratio_lower"], r["ratio_upper"]) == pytest.approx((ref["lower"][0], ref["upper"][0]))
    assert row(tiny_measures, "detentions", JAN, WB)["ratio"] == 1.0
    assert np.isnan(row(tiny_measures, "detentions", JAN, WB)["ratio_lower"])
    # no reference events in March: no ratio
    assert np.isnan(row(tiny_measures, "detentions", MAR, COMBINED_FOCUS)["ratio"])
    # Black Mixed (code D) has no population: never a rate, even with events
    assert np.isnan(row(tiny_measures, "detentions", JAN, "Black Mixed")["denominator"])


# ----------------------------------------------------------------------------- bed days, inpatients


def test_occupied_bed_days_and_incident_rates(tiny_measures):
    # S1 P1 10 Jan-10 Feb: 22 + 9 nights; S6 P2 1-3 Jan: 2; S2 P3 from 20 Jan, open: 12, 29, 31;
    # S3 P4 same day: 0; S4 P6 from 20 Dec to 5 Jan: 4 in January; S5 P9 1-3 Feb: 2
    bed = {(JAN, WB): 24, (FEB, WB): 9, (MAR, WB): 0, (JAN, "Black African"): 12, (FEB, "Black African"): 29,
           (MAR, "Black African"): 31, (MAR, "Black Caribbean"): 0, (JAN, "Not stated"): 4,
           (FEB, "Other groups"): 2, (JAN, COMBINED_FOCUS): 12, (MAR, COMBINED_FOCUS): 31}
    for (p, g), n in bed.items():
        assert row(tiny_measures, "ri_incidents", p, g)["denominator"] == n
    incidents = {("ri_incidents", JAN, WB): 2, ("ri_incidents", JAN, "Black African"): 1,
                 ("ri_incidents", FEB, "Other groups"): 1, ("ri_incidents", MAR, COMBINED_FOCUS): 2,
                 ("prone_restraint", JAN, WB): 1, ("prone_restraint", FEB, "Black African"): 1,
                 ("seclusion", JAN, WB): 1, ("seclusion", MAR, "Black Caribbean"): 1,
                 ("seclusion", MAR, COMBINED_FOCUS): 1, ("rapid_tranquillisation", JAN, "Black African"): 1,
                 ("rapid_tranquillisation", JAN, WB): 0}
    for (m, p, g), n in incidents.items():
        r = row(tiny_measures, m, p, g)
        assert r["numerator"] == n, (m, p, g)
        if r["denominator"] > 0:
            assert r["value"] == pytest.approx(n / r["denominator"] * 1000)
        else:
            assert np.isnan(r["value"])  # an incident with no bed days in the month: undefined
    assert row(tiny_measures, "ri_incidents", JAN, WB)["value"] == pytest.approx(2 / 24 * 1000)
    assert row(tiny_measures, "ri_incidents", MAR, COMBINED_FOCUS)["value"] == pytest.approx(2 / 31 * 1000)


def test_people_subject_to_restrictive_intervention_per_1000_inpatients(tiny_measures):
    expect = {(JAN, WB): (1, 2), (JAN, "Black African"): (1, 1), (JAN, "Not stated"): (0, 1),
              (FEB, WB): (0, 1), (FEB, "Other groups"): (1, 1), (MAR, "Black Caribbean"): (1, 1),
              (MAR, COMBINED_FOCUS): (2, 2), (MAR, WB): (0, 0)}
    for (p, g), (x, n) in expect.items():
        r = row(tiny_measures, "ri_people", p, g)
        assert (r["numerator"], r["denominator"]) == (x, n), (p, g)
    r = row(tiny_measures, "ri_people", JAN, WB)
    lo, hi = rates.wilson_limits(1, 2)
    assert (r["value"], r["lower"], r["upper"]) == pytest.approx((500.0, lo * 1000, hi * 1000))
    f = row(tiny_measures, "ri_people", JAN, COMBINED_FOCUS)
    assert f["ratio"] == pytest.approx(2.0)  # risk ratio 1/1 vs 1/2
    rr = rates.risk_ratio(1, 1, 1, 2)  # Katz: 2 exp(-/+ 1.96 sqrt(1 - 1 + 1 - 1/2))
    assert (f["ratio_lower"], f["ratio_upper"]) == pytest.approx(
        (2 * np.exp(-stats.norm.ppf(0.975) * np.sqrt(0.5)), 2 * np.exp(stats.norm.ppf(0.975) * np.sqrt(0.5))))
    assert (f["ratio_lower"], f["ratio_upper"]) == pytest.approx((rr["lower"][0], rr["upper"][0]))


# ----------------------------------------------------------------------------- proportions of units


def test_adverse_pathway_share(tiny_measures):
    expect = {(JAN, WB): (1, 2), (JAN, "Black African"): (1, 1), (FEB, "Black Caribbean"): (0, 1),
              (FEB, "Black Mixed"): (1, 1), (FEB, COMBINED_FOCUS): (1, 2), (MAR, WB): (0, 1),
              (MAR, "Not stated"): (0, 1), (MAR, "Not known"): (1, 1), (MAR, "Missing"): (0, 1),
              (MAR, "Other groups"): (1, 1)}
    for (p, g), (x, n) in expect.items():
        r = row(tiny_measures, "adverse_pathway", p, g)
        assert (r["numerator"], r["denominator"], r["value"]) == (x, n, 100 * x / n), (p, g)
    assert row(tiny_measures, "adverse_pathway", JAN, COMBINED_FOCUS)["ratio"] == pytest.approx(2.0)


def test_ethnicity_recording_completeness_overall(tiny_measures):
    # people by month of first referral: Jan P1, P2 (both A); Feb P4 (M), P5 (D); Mar P6 Z, P7 99, P8 missing,
    # P9 B; P3's first referral (2023) is outside the window
    for p, (x, n) in {JAN: (2, 2), FEB: (2, 2), MAR: (1, 4)}.items():
        r = row(tiny_measures, "ethnicity_recorded_people", p, OVERALL)
        assert (r["numerator"], r["denominator"], r["value"]) == (x, n, 100 * x / n)
    for p, (x, n) in {JAN: (3, 3), FEB: (1, 3), MAR: (1, 2)}.items():
        r = row(tiny_measures, "ethnicity_recorded_experience", p, OVERALL)
        assert (r["numerator"], r["denominator"]) == (x, n)
        lo, hi = rates.wilson_limits(x, n)
        assert (r["lower"], r["upper"]) == pytest.approx((100 * lo, 100 * hi))
        assert np.isnan(r["ratio"])


def test_positive_experience_by_the_responses_own_ethnicity(tiny_measures):
    expect = {(JAN, WB): (1, 2), (JAN, "Black African"): (1, 1), (FEB, "Not stated"): (0, 1),
              (FEB, "Missing"): (1, 1), (FEB, "Black Caribbean"): (0, 1), (MAR, "Not known"): (1, 1),
              (MAR, "Black Other"): (1, 1), (MAR, COMBINED_FOCUS): (1, 1)}
    for (p, g), (x, n) in expect.items():
        r = row(tiny_measures, "positive_experience", p, g)
        assert (r["numerator"], r["denominator"]) == (x, n), (p, g)


def test_mean_paired_honos_change(tiny_measures):
    # referrals with >= 2 HoNOS: F1 20 -> 15 -> 12 (-8), F2 10 -> 12 (+2), F3 18 -> 12 (-6), F4 16 -> 10 (-6),
    # all last assessed in March; F5 has one HoNOS (its CORE score is another tool)
    wb = row(tiny_measures, "honos_change", MAR, WB)
    assert (wb["numerator"], wb["denominator"], wb["sum_sq"]) == (-6, 2, 68)
    assert wb["value"] == -3 and wb["sd"] == pytest.approx(np.sqrt(50))
    half = stats.t.ppf(0.975, 1) * np.sqrt(50) / np.sqrt(2)
    assert (wb["lower"], wb["upper"]) == pytest.approx((-3 - half, -3 + half))
    focus = row(tiny_measures, "honos_change", MAR, COMBINED_FOCUS)
    assert (focus["denominator"], focus["value"], focus["sd"]) == (2, -6, 0)
    # Welch: se = sqrt(0/2 + 50/2) = 5, df = 25^2 / (25^2 / 1) = 1
    assert focus["difference"] == -3
    assert (focus["difference_lower"], focus["difference_upper"]) == pytest.approx(
        (-3 - stats.t.ppf(0.975, 1) * 5, -3 + stats.t.ppf(0.975, 1) * 5))
    assert np.isnan(focus["ratio"])
    single = row(tiny_measures, "honos_change", MAR, "Black African")
    assert single["value"] == -6 and np.isnan(single["lower"]) and np.isnan(single["difference"])
    assert row(tiny_measures, "honos_change", FEB, WB)["denominator"] == 0


# ----------------------------------------------------------------------------- re-aggregation


def test_window_and_quarter_reaggregate_counts(tiny_measures):
    w = summarise_window(tiny_measures, months=3, reference=WB)
    r = w[(w["measure"] == "detentions") & (w["group"] == WB)].iloc[0]
    denom = 100_000 * 91 / 365.25
    assert (r["numerator"], r["denominator"]) == (2, pytest.approx(denom))
    assert r["value"] == pytest.approx(2 / denom * 1e5)
    f = w[(w["measure"] == "detentions") & (w["group"] == COMBINED_FOCUS)].iloc[0]
    rr = rates.rate_ratio(2, 30_000 * 91 / 365.25, 2, denom)
    assert (f["ratio"], f["ratio_lower"], f["ratio_upper"]) == pytest.approx(
        (rr["value"][0], rr["lower"][0], rr["upper"][0]))
    h = w[(w["measure"] == "honos_change") & (w["group"] == COMBINED_FOCUS)].iloc[0]
    assert h["value"] == -6 and h["difference"] == -3
    q = aggregate_periods(tiny_measures, "Q", WB)
    assert q["period"].unique().tolist() == [JAN]
    qa = q[(q["measure"] == "adverse_pathway") & (q["group"] == COMBINED_FOCUS)].iloc[0]
    assert (qa["numerator"], qa["denominator"]) == (2, 3)  # Jan 1/1, Feb 1/2


# ----------------------------------------------------------------------------- vectorised splits


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(-40, 120), st.integers(0, 80), st.booleans()), min_size=1, max_size=25))
def test_bed_days_and_inpatients_match_a_day_by_day_count(tiny_site, tiny_settings, spells):
    """Random spells (start day offset from 1 Jan 2024, length, open?) against a naive day loop."""
    from copy import copy

    from pcref_eval.extract import SiteExtract

    day0 = pd.Timestamp("2024-01-01")
    extract = pd.Timestamp("2024-04-30")
    rows = []
    for i, (start, length, open_) in enumerate(spells):
        a = day0 + pd.Timedelta(days=start)
        d = a + pd.Timedelta(days=length)
        rows.append({"spell_id": f"S{i}", "person_id": "P1" if i % 2 else "P3", "admission_date": a,
                     "discharge_date": pd.NaT if open_ else d})
    tables = dict(tiny_site.tables)
    tables["hospital_spells"] = pd.DataFrame(rows).astype({"spell_id": "string", "person_id": "string"})
    site = SiteExtract(tiny_site.folder, tiny_site.info, tables, copy(tiny_site.population))
    ctx = SiteMeasureContext(site, tiny_settings)
    obd = ctx.bed_days()
    inp = ctx.inpatient_keys()
    expected = np.zeros((3, 2))
    present = set()
    for r in rows:
        a = r["admission_date"]
        d = extract if pd.isna(r["discharge_date"]) else min(r["discharge_date"], extract)
        col = 0 if r["person_id"] == "P1" else 1
        pidx = 0 if r["person_id"] == "P1" else 2  # positions in people
        for day in pd.date_range(a, d - pd.Timedelta(days=1)) if d > a else []:
            if day0 <= day < pd.Timestamp("2024-04-01"):
                expected[day.month - 1, col] += 1
        last = max(d - pd.Timedelta(days=1), a)
        for m in range(3):
            ms, me = pd.Timestamp(2024, m + 1, 1), pd.Timestamp(2024, m + 2, 1)
            if a < me and last >= ms:
                present.add((pidx, m))
    groups = output_groups("pcref")
    assert np.array_equal(obd[:, groups.index(WB)], expected[:, 0])
    assert np.array_equal(obd[:, groups.index("Black African")], expected[:, 1])
    assert np.array_equal(obd[:, groups.index(COMBINED_FOCUS)], expected[:, 1])
    assert sorted((int(k // 3), int(k % 3)) for k in inp) == sorted(present)


def test_empty_tables_give_zero_counts_not_errors(tmp_path, tiny_settings):
    from tests.measures.conftest import write_tiny_site

    from pcref_eval.extract import load_site
    from pcref_eval.measures.compute import compute_measures

    folder = write_tiny_site(tmp_path / "empty")
    for t in ("restrictive_interventions", "outcome_measures", "patient_experience", "ctos", "hospital_spells"):
        p = folder / f"{t}.csv"
        p.write_text(p.read_text().splitlines()[0] + "\n")
    df = compute_measures(load_site(folder), settings=tiny_settings)
    for m in ("ri_incidents", "ri_people", "honos_change", "positive_experience", "ctos"):
        sub = df[df["measure"] == m]
        assert len(sub) and sub["numerator"].sum() == 0
        assert (sub["value"].isna() | (sub["value"] == 0)).all()  # 0 with a denominator, else undefined


def test_broad_scheme_with_white_reference(tiny_site):
    from dataclasses import replace

    from pcref_eval.measures.compute import MeasureSettings, compute_measures

    settings = MeasureSettings(scheme="broad", code_lists={"detention_codes": ["02", "03", "09"]},
                               start=pd.Timestamp("2024-01-01").date(), end=pd.Timestamp("2024-03-31").date())
    assert settings.reference_group == "White"
    df = compute_measures(tiny_site, [m for m in default_measures() if m.id == "detentions"], settings)
    assert df["group"].unique().tolist() == output_groups("broad")
    jan = df[df["period"] == JAN].set_index("group")
    # White = A + B: population 105,000; Black (M, N, P) vs the combined focus group (D, E, M, N, P)
    assert jan.loc["White", "denominator"] == pytest.approx(py(105_000, JAN))
    assert jan.loc["Black", "numerator"] == 1 and jan.loc[COMBINED_FOCUS, "numerator"] == 1
    assert jan.loc["Mixed", "numerator"] == 0 and np.isnan(jan.loc["Mixed", "denominator"])
    assert replace(settings, scheme="pcref").reference_group == "White British"
