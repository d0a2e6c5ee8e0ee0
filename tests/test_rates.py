"""Tests for pcref_eval.rates against PHEindicatormethods reference values and closed forms.

Reference files are read at test time from <repo>/../shared/reference (see
shared/reference/README.md). DSR and ISR expected values live only in binary spreadsheets in
the PHEindicatormethods repository, so DSR/ISR are checked against (a) a hand computation of
the published formulas written independently here, and (b) special cases that reduce exactly
to the crude-rate reference values (standard = local population; constant reference rates).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from pcref_eval import rates as R

REL = 1e-8
from tests.reference import REF, reference_file as _ref  # noqa: E402


def _csv(path: str) -> pd.DataFrame:
    return pd.read_csv(_ref(path))


RATE_EXP = _csv("expected/pheim_rate_expected.csv")
PROP_EXP = _csv("expected/pheim_proportion_expected.csv")
BW_EXP = _csv("expected/pheim_byars_wilson_expected.csv")
CONFS = {"95": (0.95, "lower95_0cl", "upper95_0cl"), "99.8": (0.998, "lower99_8cl", "upper99_8cl")}


def assert_close(got, want, rel=REL, what=""):
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert np.array_equal(np.isnan(got), np.isnan(want)), f"{what}: NaN pattern {got} vs {want}"
    m = ~np.isnan(want)
    np.testing.assert_allclose(got[m], want[m], rtol=rel, atol=0, err_msg=what)


# ----------------------------------------------------------------------------- crude rate


@pytest.mark.parametrize("conf_key", list(CONFS))
@pytest.mark.parametrize("row", RATE_EXP["row"].tolist())
def test_rate_matches_pheim(row, conf_key):
    conf, lc, uc = CONFS[conf_key]
    r = RATE_EXP.set_index("row").loc[row]
    out = R.rate([r.Numerator], [r.Denominator], per=r.multiplier, conf=conf).iloc[0]
    assert_close(out["value"], r["value"], what="value")
    assert_close(out["lower"], r[lc], what="lower")
    assert_close(out["upper"], r[uc], what="upper")
    want_method = None if pd.isna(r["method"]) else r["method"]
    assert out["method"] == want_method


def test_rate_vectorised_and_series_index():
    x = pd.Series([1, 20, 999], index=["a", "b", "c"])
    n = pd.Series([100, 100, 3456], index=["a", "b", "c"])
    out = R.rate(x, n, per=100)
    assert list(out.index) == ["a", "b", "c"]
    assert list(out["method"]) == ["Exact", "Byars", "Byars"]
    one = R.rate(999, 3456, per=100)
    assert_close(out.loc["c", ["value", "lower", "upper"]].to_numpy(float), one.iloc[0, :3].to_numpy(float))


def test_rate_method_boundary_at_10_events():
    out = R.rate([9, 10], [1000, 1000])
    assert list(out["method"]) == ["Exact", "Byars"]
    el, eu = R.exact_poisson_limits([9])
    bl, bu = R.byars_limits([10])
    assert_close(out[["lower", "upper"]].to_numpy(float), [[el[0] * 100, eu[0] * 100], [bl[0] * 100, bu[0] * 100]])


def test_rate_grouped_dataframe_sums_within_groups():
    df = pd.DataFrame({"site": ["A", "A", "B", "B"], "x": [5, 15, 3, 4], "n": [1000, 3000, 500, 700]})
    out = R.rate("x", "n", data=df, group_cols=["site"], per=1000)
    direct = R.rate([20, 7], [4000, 1200], per=1000)
    assert list(out["site"]) == ["A", "B"]
    assert_close(out[["value", "lower", "upper"]].to_numpy(float), direct[["value", "lower", "upper"]].to_numpy(float))
    assert list(out["method"]) == ["Byars", "Exact"]


def test_exact_poisson_zero_count_closed_form():
    # x = 0: lower 0; upper = chi2(q; 2)/2 = -ln(1 - q) with q = 1 - alpha/2
    for conf in (0.95, 0.998):
        lo, hi = R.exact_poisson_limits([0], conf)
        assert lo[0] == 0
        assert hi[0] == pytest.approx(-np.log((1 - conf) / 2), rel=1e-12)


def test_byars_approaches_exact_for_large_counts():
    x = np.array([500.0, 5000.0])
    bl, bu = R.byars_limits(x)
    el, eu = R.exact_poisson_limits(x)
    np.testing.assert_allclose(bl, el, rtol=1e-4)
    np.testing.assert_allclose(bu, eu, rtol=1e-4)


@settings(max_examples=60, deadline=None)
@given(x=st.integers(0, 100000), n=st.integers(1, 10_000_000))
def test_rate_interval_brackets_value(x, n):
    out = R.rate([x], [n]).iloc[0]
    assert out["lower"] <= out["value"] <= out["upper"]


def test_conf_as_percentage_equals_proportion():
    a = R.rate([65], [100], conf=99.8)
    b = R.rate([65], [100], conf=0.998)
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: R.rate([-1], [10]), "numerators"),
        (lambda: R.rate([1], [0]), "denominators"),
        (lambda: R.proportion([11], [10]), "less than or equal"),
        (lambda: R.rate([1], [10], conf=1.5), "confidence"),
    ],
)
def test_invalid_inputs_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ----------------------------------------------------------------------------- proportions and Wilson


@pytest.mark.parametrize("conf_key", list(CONFS))
@pytest.mark.parametrize("row", PROP_EXP["row"].tolist())
def test_proportion_matches_pheim(row, conf_key):
    conf, lc, uc = CONFS[conf_key]
    r = PROP_EXP.set_index("row").loc[row]
    out = R.proportion([r.Numerator], [r.Denominator], conf=conf, percentage=r.multiplier == 100).iloc[0]
    assert_close(out["value"], r["value"], what="value")
    assert_close(out["lower"], r[lc], what="lower")
    assert_close(out["upper"], r[uc], what="upper")


@pytest.mark.parametrize("row", BW_EXP["row"].tolist())
def test_byars_and_wilson_limits_match_pheim(row):
    r = BW_EXP.set_index("row").loc[row]
    conf = float(r.confidence.rstrip("%")) / 100
    if r.method == "Byars":
        lo, hi = R.byars_limits([r.x], conf)
    else:
        lo, hi = R.wilson_limits([r.x], [r.n], conf)
    assert_close(lo[0], r.lowercl, what="lower")
    assert_close(hi[0], r.uppercl, what="upper")


# ----------------------------------------------------------------------------- ESP2013


def test_esp2013_matches_published_values_and_shared_copy():
    esp = R.esp2013()
    published = [5000, 5500, 5500, 5500, 6000, 6000, 6500, 7000, 7000, 7000, 7000,
                 6500, 6000, 5500, 5000, 4000, 2500, 1500, 1000]  # Eurostat 2013, 90-94 + 95+ combined
    assert esp.tolist() == published
    assert esp.sum() == 100000
    assert esp.index[0] == "0-4" and esp.index[11] == "55-59" and esp.index[-1] == "90+"
    shared = _csv("data/pheim_esp2013.csv")
    assert shared["esp2013"].tolist() == published  # shared copy labels 55-59 as "55-69" (typo); values agree


# ----------------------------------------------------------------------------- DSR


DSR_IN = _csv("data/pheim_dsr_input_multiarea.csv")
DSR_1976 = _csv("data/pheim_dsr_input_1976.csv")
NONIND = _csv("data/pheim_dsr_input_nonindependent_long.csv")


def hand_dsr(x, n, w, per, conf):
    """Dobson DSR written out term by term from Dobson et al. (1991) / PHE technical guidance."""
    x = [0.0 if np.isnan(v) else float(v) for v in x]
    total = sum(x)
    sw = sum(w)
    value = sum(xi * wi / ni for xi, wi, ni in zip(x, w, n)) / sw * per
    var = sum(xi * (wi / ni) ** 2 for xi, wi, ni in zip(x, w, n)) / sw**2
    z = stats.norm.ppf(1 - (1 - conf) / 2)
    byl = total * (1 - 1 / (9 * total) - z / (3 * np.sqrt(total))) ** 3
    byu = (total + 1) * (1 - 1 / (9 * (total + 1)) + z / (3 * np.sqrt(total + 1))) ** 3
    lower = value + np.sqrt(var / total) * (byl - total) * per
    upper = value + np.sqrt(var / total) * (byu - total) * per
    return total, value, lower, upper, var


@pytest.mark.parametrize("per", [100000, 10000])
@pytest.mark.parametrize("conf", [0.95, 0.998])
@pytest.mark.parametrize("area", ["testdata_big", "testdata_small"])
def test_dsr_matches_hand_computation(area, conf, per):
    sub = DSR_IN[DSR_IN.area == area]
    total, value, lower, upper, _ = hand_dsr(sub["count"], sub["pop"], sub["esp2013"], per, conf)
    out = R.dsr(DSR_IN, "count", "pop", group_cols=["area"], age_col="ageband", per=per, conf=conf)
    row = out.set_index("area").loc[area]
    assert row["total_count"] == total
    assert_close([row["value"], row["lower"], row["upper"]], [value, lower, upper])
    assert row["note"] == ""


def test_dsr_user_standard_1976():
    total, value, lower, upper, _ = hand_dsr(DSR_1976["count"], DSR_1976["pop"], DSR_1976["esp1976"], 100000, 0.95)
    out = R.dsr(DSR_1976, "count", "pop", standard_col="esp1976").iloc[0]
    assert_close([out["value"], out["lower"], out["upper"]], [value, lower, upper])
    by_position = R.dsr(DSR_1976, "count", "pop", standard=DSR_1976["esp1976"].tolist()).iloc[0]
    assert_close(by_position[["value", "lower", "upper"]].to_numpy(float), [value, lower, upper])


def test_dsr_standard_matching_by_label_position_and_column_agree():
    a = R.dsr(DSR_IN, "count", "pop", group_cols=["area"], age_col="ageband")  # ESP2013 by label
    b = R.dsr(DSR_IN, "count", "pop", group_cols=["area"])  # ESP2013 by position
    c = R.dsr(DSR_IN, "count", "pop", group_cols=["area"], standard_col="esp2013")
    shuffled = DSR_IN.sample(frac=1, random_state=1)
    d = R.dsr(shuffled, "count", "pop", group_cols=["area"], age_col="ageband")  # label matching ignores order
    for other in (b, c, d):
        pd.testing.assert_frame_equal(a, other)


def test_dsr_not_computed_below_10_with_reason():
    out = R.dsr(DSR_IN, "count", "pop", group_cols=["area"], age_col="ageband").set_index("area")
    tiny = out.loc["testdata_tiny"]
    assert tiny["total_count"] == 9
    assert np.isnan(tiny["value"]) and np.isnan(tiny["lower"]) and np.isnan(tiny["upper"])
    assert tiny["note"] == R.DSR_NOTE_SMALL


@pytest.mark.parametrize("conf_key", list(CONFS))
@pytest.mark.parametrize("row", RATE_EXP.loc[RATE_EXP.method == "Byars"].dropna(subset=["Denominator"])["row"].tolist())
def test_dsr_with_local_population_as_standard_equals_crude_byars_reference(row, conf_key):
    # With w_i = n_i the DSR is X/N and the Dobson limits reduce to Byar's limits / N:
    # a closed-form link from the DSR to the PHEindicatormethods crude-rate reference values.
    conf, lc, uc = CONFS[conf_key]
    r = RATE_EXP.set_index("row").loc[row]
    x, n = float(r.Numerator), float(r.Denominator)
    strata = pd.DataFrame({"x": [x - 7, 4, 3], "n": [n * 0.5, n * 0.3, n * 0.2]})
    strata["w"] = strata["n"]
    out = R.dsr(strata, "x", "n", standard_col="w", per=r.multiplier, conf=conf).iloc[0]
    assert_close([out["value"], out["lower"], out["upper"]], [r["value"], r[lc], r[uc]])


def test_dsr_normal_interval_closed_form():
    sub = DSR_IN[DSR_IN.area == "testdata_big"]
    _, value, _, _, var = hand_dsr(sub["count"], sub["pop"], sub["esp2013"], 100000, 0.95)
    out = R.dsr(sub, "count", "pop", age_col="ageband", ci_method="normal").iloc[0]
    se = np.sqrt(var) * 100000
    assert_close([out["lower"], out["upper"]], [value - 1.959963984540054 * se, value + 1.959963984540054 * se], rel=1e-10)


@pytest.mark.parametrize("area", ["testdata_nonind_big", "testdata_nonind_dummy", "testdata_nonind_small"])
def test_dsr_nonindependent_events(area):
    sub = NONIND[NONIND.area == area]
    out = R.dsr(sub, "persons", "pop", age_col="ageband", eventfreq_col="freq").iloc[0]
    # the rate uses all events (sum_f f x persons = count_all_events) ...
    per_band = sub.drop_duplicates("ageband")
    ind = R.dsr(per_band, "count_all_events", "pop", age_col="ageband").iloc[0]
    assert out["total_count"] == per_band["count_all_events"].sum()
    assert_close(out["value"], ind["value"])
    # ... and the variance is sum_f f^2 V_f (PHEindicatormethods calculate_dsr, independent_events = FALSE)
    w = R.esp2013().to_numpy()
    var = 0.0
    for f, g in sub.groupby("freq"):
        g = g.set_index("ageband").reindex(per_band["ageband"])
        persons = g["persons"].fillna(0).to_numpy()
        var += f**2 * np.sum(persons * (w / g["pop"].to_numpy()) ** 2) / w.sum() ** 2
    total = out["total_count"]
    bl, bu = R.byars_limits([total])
    assert_close(out["lower"], ind["value"] + np.sqrt(var / total) * (bl[0] - total) * 1e5)
    assert_close(out["upper"], ind["value"] + np.sqrt(var / total) * (bu[0] - total) * 1e5)
    assert out["upper"] - out["lower"] > ind["upper"] - ind["lower"]  # repeat events widen the interval


def test_dsr_rejects_zero_population():
    bad = DSR_IN[DSR_IN.area == "testdata_big"].copy()
    bad.loc[bad.index[3], "pop"] = 0
    with pytest.raises(ValueError, match="denominators"):
        R.dsr(bad, "count", "pop", age_col="ageband")


def test_dsr_unknown_age_band_raises():
    bad = DSR_IN[DSR_IN.area == "testdata_big"].copy()
    bad["ageband"] = bad["ageband"].replace({"90+": "unknown"})
    with pytest.raises(ValueError, match="age"):
        R.dsr(bad, "count", "pop", age_col="ageband")


# ----------------------------------------------------------------------------- ISR


ISR_IN = _csv("data/pheim_isr_input_multiarea.csv")
ISR_REF = _csv("data/pheim_isr_refdata.csv")


def hand_isr(sub, conf, refvalue=1.0):
    obs = float(np.nansum(sub["count"]))
    exp = float(np.sum(np.nan_to_num(sub["refcount"]) / sub["refpop"] * np.nan_to_num(sub["pop"])))
    q_lo, q_hi = (1 - conf) / 2, conf + (1 - conf) / 2
    if obs < 10:
        lo = (stats.chi2.ppf(q_lo, 2 * obs) / 2 if obs > 0 else 0.0)
        hi = stats.chi2.ppf(q_hi, 2 * obs + 2) / 2
    else:
        z = stats.norm.ppf(q_hi)
        lo = obs * (1 - 1 / (9 * obs) - z / (3 * np.sqrt(obs))) ** 3
        hi = (obs + 1) * (1 - 1 / (9 * (obs + 1)) + z / (3 * np.sqrt(obs + 1))) ** 3
    return obs, exp, obs / exp * refvalue, lo / exp * refvalue, hi / exp * refvalue


@pytest.mark.parametrize("conf", [0.95, 0.998])
@pytest.mark.parametrize("area", ["testdata_big", "testdata_small", "testdata_tiny"])
def test_isratio_matches_hand_computation(area, conf):
    sub = ISR_IN[ISR_IN.area == area]
    obs, exp, value, lo, hi = hand_isr(sub, conf, refvalue=100)
    out = R.isr(ISR_IN, "count", "pop", group_cols=["area"], refvalue=100, conf=conf).set_index("area").loc[area]
    assert_close([out["observed"], out["expected"], out["value"], out["lower"], out["upper"]], [obs, exp, value, lo, hi])
    assert out["method"] == ("Exact" if obs < 10 else "Byars")


def test_isr_reference_table_join_equals_columns():
    a = R.isr(ISR_IN, "count", "pop", group_cols=["area"])
    b = R.isr(ISR_IN.drop(columns=["refcount", "refpop"]), "count", "pop", reference=ISR_REF,
              age_col="ageband", group_cols=["area"])
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("conf_key", list(CONFS))
@pytest.mark.parametrize("row", RATE_EXP.dropna(subset=["Numerator", "Denominator"])["row"].tolist())
def test_israte_with_constant_reference_rate_equals_crude_rate_reference(row, conf_key):
    # constant reference rate r: E = r N, ISRate = O / E x r x per = O / N x per, limits likewise
    conf, lc, uc = CONFS[conf_key]
    r = RATE_EXP.set_index("row").loc[row]
    x, n = float(r.Numerator), float(r.Denominator)
    df = pd.DataFrame({"x": [x, 0.0], "n": [n * 0.6, n * 0.4], "refcount": [30.0, 20.0], "refpop": [3000.0, 2000.0]})
    out = R.isr(df, "x", "n", statistic="rate", per=r.multiplier, conf=conf).iloc[0]
    assert_close([out["value"], out["lower"], out["upper"]], [r["value"], r[lc], r[uc]])
    assert out["method"] == r["method"]


def test_isr_zero_population_errors_clearly():
    err = _csv("data/pheim_isr_input_err2_zero_pop.csv")
    err["ageband"] = np.tile(ISR_REF["ageband"].to_numpy(), 2)
    with pytest.raises(ValueError, match=r"population \(denominator\) is zero.*Area1 / 5-9"):
        R.isr(err, "count", "pop", reference=ISR_REF, age_col="ageband", group_cols=["area"])
    ok = R.isr(err, "count", "pop", reference=ISR_REF, age_col="ageband", group_cols=["area"], allow_zero_pop=True)
    assert np.isfinite(ok["value"]).all()


# ----------------------------------------------------------------------------- two-group ratios


def test_rate_ratio_lognormal_matches_statsmodels():
    from statsmodels.stats.rates import confint_poisson_2indep

    out = R.rate_ratio([250], [1e5], [80], [2e5], method="lognormal").iloc[0]
    lo, hi = confint_poisson_2indep(250, 1e5, 80, 2e5, method="wald-log", compare="ratio")
    assert out["value"] == pytest.approx(250 / 1e5 / (80 / 2e5), rel=1e-12)
    assert_close([out["lower"], out["upper"]], [lo, hi], rel=1e-10)


@pytest.mark.parametrize("x1, n1, x2, n2", [(3, 1000, 12, 2500), (0, 500, 7, 800), (9, 2e4, 2, 1e4)])
def test_rate_ratio_exact_conditional_matches_clopper_pearson(x1, n1, x2, n2):
    out = R.rate_ratio([x1], [n1], [x2], [n2], method="exact").iloc[0]
    ci = stats.binomtest(x1, x1 + x2).proportion_ci(confidence_level=0.95, method="exact")
    to_rr = lambda p: p / (1 - p) * n2 / n1  # noqa: E731
    assert_close([out["lower"], out["upper"]], [to_rr(ci.low), to_rr(ci.high)], rel=1e-9)


def test_rate_ratio_exact_zero_numerator_closed_form():
    # x1 = 0: p_U = 1 - (alpha/2)^(1/x2), so RR_U = p_U / (1 - p_U) x n2 / n1
    out = R.rate_ratio([0], [500], [7], [800], method="exact").iloc[0]
    pu = 1 - 0.025 ** (1 / 7)
    assert out["lower"] == 0
    assert out["upper"] == pytest.approx(pu / (1 - pu) * 800 / 500, rel=1e-12)


def test_rate_ratio_auto_switches_method():
    out = R.rate_ratio([5, 50], [1000, 1000], [20, 40], [1000, 1000])
    assert list(out["method"]) == ["exact conditional", "log-normal"]


def test_risk_ratio_matches_statsmodels_katz():
    from statsmodels.stats.contingency_tables import Table2x2

    x1, n1, x2, n2 = 45, 300, 20, 400
    out = R.risk_ratio([x1], [n1], [x2], [n2]).iloc[0]
    t = Table2x2(np.array([[x1, n1 - x1], [x2, n2 - x2]]))
    assert out["value"] == pytest.approx(t.riskratio, rel=1e-12)
    assert_close([out["lower"], out["upper"]], list(t.riskratio_confint()), rel=1e-10)


def test_odds_ratio_matches_statsmodels_woolf():
    from statsmodels.stats.contingency_tables import Table2x2

    x1, n1, x2, n2 = 45, 300, 20, 400
    out = R.odds_ratio([x1], [n1], [x2], [n2]).iloc[0]
    t = Table2x2(np.array([[x1, n1 - x1], [x2, n2 - x2]]))
    assert out["value"] == pytest.approx(t.oddsratio, rel=1e-12)
    assert_close([out["lower"], out["upper"]], list(t.oddsratio_confint(method="normal")), rel=1e-10)
