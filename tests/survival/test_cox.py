"""Cox regression against R coxph references, lifelines and statsmodels."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, CoxTimeVaryingFitter
from lifelines.utils import concordance_index as lifelines_cindex
from statsmodels.duration.hazard_regression import PHReg

from pcref_eval.survival import concordance_index, cox, treatment_dummies
from pcref_eval.survival.cox import CoxProblem, fit_problem
from .conftest import assert_close_printed, expected_csv, expected_json, missing_param

ROSSI_ALL = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]


def _fit_reference_model(name: str, load_data):
    """Fit each model of cox_models.json exactly as specified there (formula, ties)."""
    if name == "ovarian_age_strata_rx":
        return cox(load_data("ovarian.csv"), "futime", "fustat", ["age"], strata="rx", ties="efron")
    if name == "aml_x_breslow":
        aml = load_data("aml.csv")
        aml = aml.join(treatment_dummies(aml, "x", reference="Maintained"))
        return cox(aml, "time", "status", ["x=Nonmaintained"], ties="breslow")
    if name == "rossi_all7":
        return cox(load_data("rossi.csv"), "week", "arrest", ROSSI_ALL, ties="efron")
    if name == "rossi_strata_race":
        covs = [c for c in ROSSI_ALL if c != "race"]
        return cox(load_data("rossi.csv"), "week", "arrest", covs, strata="race", ties="efron")
    pytest.fail(f"no input specification for reference model {name}")


def _model_cases():
    models = expected_json("cox_models.json")
    coefs = expected_csv("cox_coefficients.csv")
    if models is None or coefs is None:
        return missing_param()
    return [pytest.param((name, spec, coefs[coefs["model"] == name]), id=name) for name, spec in models.items()]


@pytest.mark.parametrize("case", _model_cases())
def test_cox_model_matches_r(case, load_data):
    name, spec, coef_rows = case
    res = _fit_reference_model(name, load_data)
    assert res.ties == spec["ties"]
    if "n" in spec:
        assert res.n == spec["n"] and res.events == spec["events"]
    if "lr_test" in spec:
        assert res.lr_test.df == spec["df"]
        assert_close_printed(res.lr_test.statistic, repr(spec["lr_test"]), 0.0, f"{name} LR")
        assert_close_printed(res.lr_test.p, repr(spec["lr_p"]), 0.0, f"{name} LR p")
    table = res.table.set_index("term")
    terms = coef_rows["term"].tolist()
    assert set(terms) <= set(table.index)
    for _, row in coef_rows.iterrows():
        mine = table.loc[row["term"]]
        where = f"{name} {row['term']}"
        assert_close_printed(mine["coef"], row["coef"], 1e-5, where + " coef")  # README: coef/SE 1e-5 abs
        if row["se_coef"]:
            assert_close_printed(mine["se"], row["se_coef"], 1e-5, where + " se")
        if row["z"]:
            assert_close_printed(mine["z"], row["z"], 1e-3, where + " z")  # README: z 1e-3
        if row["p"]:
            assert_close_printed(mine["p"], row["p"], 0.0, where + " p")
        if row["exp_coef"]:
            assert_close_printed(mine["hr"], row["exp_coef"], 1e-5, where + " exp(coef)")


def test_rossi_super_accurate_coefficients_from_lifelines_tests(load_data):
    """7-dp R coefficients quoted in lifelines' tests (note column of cox_coefficients.csv)."""
    coefs = expected_csv("cox_coefficients.csv")
    if coefs is None:
        pytest.fail("cox_coefficients.csv missing")
    res = cox(load_data("rossi.csv"), "week", "arrest", ROSSI_ALL).coef
    found = 0
    for _, row in coefs[coefs["model"] == "rossi_all7"].iterrows():
        marker = "7-dp coef from lifelines test_coef_output_against_R_super_accurate: "
        if marker in row["note"]:
            printed = row["note"].split(marker)[1].strip().rstrip('"')
            assert_close_printed(res[row["term"]], printed, 0.0, row["term"])
            found += 1
    assert found == len(ROSSI_ALL)


def test_breslow_aml_against_statsmodels(load_data):
    """lifelines has no Breslow ties: statsmodels PHReg is the second implementation."""
    aml = load_data("aml.csv")
    aml["nonm"] = (aml["x"] == "Nonmaintained").astype(float)
    res = cox(aml, "time", "status", ["nonm"], ties="breslow")
    sm = PHReg(aml["time"], aml[["nonm"]], status=aml["status"], ties="breslow").fit()
    assert res.coef.iloc[0] == pytest.approx(sm.params[0], abs=1e-10)
    assert res.table["se"].iloc[0] == pytest.approx(sm.bse[0], abs=1e-10)
    assert res.log_likelihood == pytest.approx(sm.llf, abs=1e-9)


# ----------------------------------------------------------------------------------------------
# Random data with heavy ties: second implementations


def _tied_data(seed: int, n: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    X[:, 2] = rng.integers(0, 3, n)
    s = rng.integers(0, 3, n)
    t = rng.exponential(40 / np.exp(X @ [0.4, -0.3, 0.2] + 0.3 * s))
    c = rng.uniform(0, 70, n)
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    df["t"] = np.ceil(np.minimum(t, c))
    df["e"] = (t <= c).astype(int)
    df["s"] = s
    df["start"] = np.floor(rng.uniform(0, 0.5, n) * (df["t"] - 1))
    return df


@pytest.mark.parametrize("ties", ["efron", "breslow"])
@pytest.mark.parametrize("strata", [None, "s"])
def test_cox_agrees_with_statsmodels(ties, strata):
    df = _tied_data(3)
    res = cox(df, "t", "e", ["a", "b", "c"], strata=strata, ties=ties)
    sm = PHReg(df["t"], df[["a", "b", "c"]], status=df["e"], strata=None if strata is None else df["s"], ties=ties).fit()
    np.testing.assert_allclose(res.coef.to_numpy(), sm.params, atol=1e-9)
    np.testing.assert_allclose(res.table["se"].to_numpy(), sm.bse, atol=1e-9)
    assert res.log_likelihood == pytest.approx(sm.llf, abs=1e-7)


@pytest.mark.parametrize("strata", [None, "s"])
def test_cox_efron_agrees_with_lifelines(strata):
    df = _tied_data(4)
    res = cox(df, "t", "e", ["a", "b", "c"], strata=strata)
    cols = ["a", "b", "c", "t", "e"] + ([] if strata is None else ["s"])
    cph = CoxPHFitter().fit(df[cols], "t", "e", strata=None if strata is None else ["s"])
    np.testing.assert_allclose(res.coef.to_numpy(), cph.params_.to_numpy(), atol=1e-6)
    np.testing.assert_allclose(res.table["se"].to_numpy(), cph.standard_errors_.to_numpy(), atol=1e-6)
    assert res.log_likelihood == pytest.approx(cph.log_likelihood_, abs=1e-6)
    assert res.concordance == pytest.approx(cph.concordance_index_, abs=1e-12)


def test_counting_process_agrees_with_lifelines_time_varying():
    """(start, stop] rows with starts tied to event times: R/lifelines risk-set convention."""
    df = _tied_data(5)
    res = cox(df, "t", "e", ["a", "b", "c"], entry_col="start")
    ctv = CoxTimeVaryingFitter().fit(
        df.assign(id=np.arange(len(df)))[["a", "b", "c", "start", "t", "e", "id"]],
        id_col="id", event_col="e", start_col="start", stop_col="t",
    )
    np.testing.assert_allclose(res.coef.to_numpy(), ctv.params_.to_numpy(), atol=1e-7)
    np.testing.assert_allclose(res.table["se"].to_numpy(), ctv.standard_errors_.to_numpy(), atol=1e-7)


@pytest.mark.parametrize("strata", [None, "s"])
def test_counting_process_agrees_with_statsmodels_entry(strata):
    """statsmodels puts entry == t in the risk set, so use entry times that never equal event times."""
    df = _tied_data(6)
    df["start"] = df["start"] + 0.5 * (df["start"] > 0)
    res = cox(df, "t", "e", ["a", "b", "c"], strata=strata, entry_col="start")
    sm = PHReg(df["t"], df[["a", "b", "c"]], status=df["e"], entry=df["start"], ties="efron",
               strata=None if strata is None else df["s"]).fit()
    np.testing.assert_allclose(res.coef.to_numpy(), sm.params, atol=1e-9)
    np.testing.assert_allclose(res.table["se"].to_numpy(), sm.bse, atol=1e-9)


def test_overwrite_x_fits_the_same_model_and_only_reuses_fortran_arrays():
    """overwrite_X sorts the caller's Fortran array in place (half the memory), same fit to the last bit."""
    df = _tied_data(7)
    X = df[["a", "b", "c"]].to_numpy()
    args = (df["t"].to_numpy(float), df["e"].to_numpy(float), df["s"].to_numpy(), df["start"].to_numpy(float))
    copied = fit_problem(CoxProblem(X.copy(order="F"), *args), ["a", "b", "c"])
    owned = np.asfortranarray(X.copy())
    in_place = fit_problem(CoxProblem(owned, *args, overwrite_X=True), ["a", "b", "c"])
    np.testing.assert_array_equal(in_place.coef.to_numpy(), copied.coef.to_numpy())
    np.testing.assert_array_equal(in_place.table["se"].to_numpy(), copied.table["se"].to_numpy())
    assert not np.array_equal(owned, X)  # sorted and centred in place, as documented
    c_order = np.ascontiguousarray(X.copy())
    CoxProblem(c_order, *args, overwrite_X=True)
    np.testing.assert_array_equal(c_order, X)  # not Fortran order: copied, the caller's array untouched


@pytest.mark.parametrize("entry, weights", [(False, False), (True, False), (False, True)])
def test_without_strata_fits_the_remaining_strata_as_a_fresh_problem(entry, weights):
    """Dropping a stratum from the sorted problem (no re-sort, the whole problem's centring) gives the fit of
    the remaining rows built from scratch: same log-likelihood, coefficients, SEs and tests."""
    df = _tied_data(11)
    df["w"] = np.where(df["e"] == 1, 1.0, np.random.default_rng(1).uniform(0.2, 1.0, len(df)))
    cols = ["a", "b", "c"]

    def problem(d):
        return CoxProblem(d[cols].to_numpy(), d["t"].to_numpy(float), d["e"].to_numpy(float), d["s"].to_numpy(),
                          d["start"].to_numpy(float) if entry else None, weights=d["w"].to_numpy() if weights else None)
    whole = problem(df)
    buffer = np.full(len(df) * len(cols), np.nan)  # one buffer reused by every refit, as leave-one-site-out does
    for left_out in ([0], [1], [2], [0, 2]):  # [0, 2]: the kept rows are not one block at either end
        sub = fit_problem(whole.without_strata(left_out), cols)
        fresh = fit_problem(problem(df[~df["s"].isin(left_out)]), cols)
        assert sub.n == fresh.n == int((~df["s"].isin(left_out)).sum()) and sub.events == fresh.events
        np.testing.assert_allclose(sub.coef.to_numpy(), fresh.coef.to_numpy(), rtol=0, atol=1e-10)
        np.testing.assert_allclose(sub.table["se"].to_numpy(), fresh.table["se"].to_numpy(), rtol=0, atol=1e-10)
        assert sub.log_likelihood == pytest.approx(fresh.log_likelihood, abs=1e-8)
        assert sub.score_test.statistic == pytest.approx(fresh.score_test.statistic, rel=1e-9)
        in_buffer = whole.without_strata(left_out, buffer=buffer)
        assert np.shares_memory(in_buffer.X, buffer)
        np.testing.assert_array_equal(in_buffer.X, sub.problem.X)
        np.testing.assert_array_equal(fit_problem(in_buffer, cols).coef.to_numpy(), sub.coef.to_numpy())


def test_a_start_near_the_maximum_reaches_the_same_fit_in_fewer_steps():
    """``init`` (R coxph's init=): same maximum and null-model tests, fewer Newton iterations; a start where
    the likelihood is not finite falls back to zero."""
    df = _tied_data(12)
    cold = cox(df, "t", "e", ["a", "b", "c"], strata="s")
    warm = cox(df, "t", "e", ["a", "b", "c"], strata="s", init=cold.coef.to_numpy() + 0.02)
    np.testing.assert_allclose(warm.coef.to_numpy(), cold.coef.to_numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(warm.table["se"].to_numpy(), cold.table["se"].to_numpy(), rtol=0, atol=1e-9)
    assert warm.lr_test.statistic == pytest.approx(cold.lr_test.statistic, rel=1e-9)
    assert warm.score_test.statistic == pytest.approx(cold.score_test.statistic, rel=1e-12)
    assert warm.iterations <= cold.iterations
    near = cox(df, "t", "e", ["a", "b", "c"], strata="s", init=cold.coef.to_numpy() + 1e-4)
    assert near.iterations < cold.iterations
    np.testing.assert_allclose(near.coef.to_numpy(), cold.coef.to_numpy(), rtol=0, atol=1e-9)
    wild = cox(df, "t", "e", ["a", "b", "c"], strata="s", init=[1e4, 0.0, 0.0])
    np.testing.assert_allclose(wild.coef.to_numpy(), cold.coef.to_numpy(), rtol=0, atol=1e-9)


def _counting_evaluations(problem: CoxProblem) -> list:
    """Record the coefficients at which ``problem`` is evaluated (one pass over its data each)."""
    calls, evaluate = [], problem.evaluate
    problem.evaluate = lambda beta, second=True: calls.append(np.array(beta)) or evaluate(beta, second)
    return calls


def test_without_null_tests_a_warm_start_skips_the_null_model():
    """``null_tests=False``: same estimates, no pass at beta = 0 from a start (LR and score tests NaN); from a
    start where the likelihood is not finite it still falls back to zero."""
    df = _tied_data(12)
    cols = ["a", "b", "c"]

    def problem():
        return CoxProblem(df[cols].to_numpy(), df["t"].to_numpy(float), df["e"].to_numpy(float), df["s"].to_numpy())
    cold = fit_problem(problem(), cols)
    with_null, without = problem(), problem()
    calls_with, calls_without = _counting_evaluations(with_null), _counting_evaluations(without)
    start = cold.coef.to_numpy() + 0.02
    tested = fit_problem(with_null, cols, init=start)
    untested = fit_problem(without, cols, init=start, null_tests=False)
    np.testing.assert_array_equal(untested.coef.to_numpy(), tested.coef.to_numpy())
    np.testing.assert_array_equal(untested.table["se"].to_numpy(), tested.table["se"].to_numpy())
    assert untested.wald_test.statistic == tested.wald_test.statistic
    assert np.isnan([untested.lr_test.statistic, untested.score_test.statistic, untested.log_likelihood_null]).all()
    assert len(calls_without) == len(calls_with) - 1
    assert not any(np.all(b == 0) for b in calls_without) and np.all(calls_with[0] == 0)
    wild = fit_problem(problem(), cols, init=[1e4, 0.0, 0.0], null_tests=False)
    np.testing.assert_allclose(wild.coef.to_numpy(), cold.coef.to_numpy(), rtol=0, atol=1e-9)


def test_without_design_keeps_the_estimates_and_refuses_what_needs_the_design():
    from pcref_eval.survival.ph import schoenfeld_test

    df = _tied_data(8)
    full = cox(df, "t", "e", ["a", "b", "c"])
    lean = full.without_design()
    assert lean.problem is None and lean.derivatives is None and full.problem is not None
    pd.testing.assert_frame_equal(lean.table, full.table)
    pd.testing.assert_frame_equal(lean.variance, full.variance)
    with pytest.raises(ValueError, match="without_design"):
        lean.concordance
    with pytest.raises(ValueError, match="without_design"):
        schoenfeld_test(lean)


def test_global_tests_and_ci_are_consistent():
    df = _tied_data(7)
    res = cox(df, "t", "e", ["a", "b"], conf=0.9)
    t = res.table
    z = 1.6448536269514722
    np.testing.assert_allclose(t["hr_lower"], np.exp(t["coef"] - z * t["se"]))
    np.testing.assert_allclose(t["hr_upper"], np.exp(t["coef"] + z * t["se"]))
    assert res.lr_test.df == 2 and res.lr_test.statistic > 0
    assert res.wald_test.statistic == pytest.approx(
        t["coef"].to_numpy() @ np.linalg.solve(res.variance.to_numpy(), t["coef"].to_numpy())
    )


# ----------------------------------------------------------------------------------------------
# Concordance


def test_concordance_counts_match_r_survconcordance_lung(load_data):
    """R survival tests/concordance.R: survConcordance(Surv(time, status) ~ age, lung) gives
    concordant, discordant, tied.x, tied.y = 10717, 8706, 591, 28."""
    lung = load_data("lung.csv")
    res = concordance_index(lung["time"], lung["status"] == 2, lung["age"])
    assert (res.concordant, res.discordant, res.tied_risk, res.tied_time) == (10717, 8706, 591, 28)


def _allpair(x, t, s):
    """R tests/concordance.R brute force (O(n^2)): the comparison for tied data."""
    c = d = tx = 0
    for i in np.flatnonzero(s == 1):
        at_risk = (t > t[i]) | ((t == t[i]) & (s == 0))
        c += int((x[i] > x[at_risk]).sum())
        d += int((x[i] < x[at_risk]).sum())
        tx += int((x[i] == x[at_risk]).sum())
    return c, d, tx


@pytest.mark.parametrize("seed", range(4))
def test_concordance_matches_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = 300
    t = rng.integers(1, 25, n).astype(float)
    s = rng.integers(0, 2, n)
    x = rng.integers(0, 8, n).astype(float)
    res = concordance_index(t, s, x)
    assert (res.concordant, res.discordant, res.tied_risk) == _allpair(x, t, s)


def test_concordance_agrees_with_lifelines_untied():
    rng = np.random.default_rng(9)
    t = rng.exponential(1, 500)
    s = rng.integers(0, 2, 500)
    x = rng.normal(size=500)
    assert concordance_index(t, s, x).concordance == pytest.approx(lifelines_cindex(t, -x, s), abs=1e-12)


# ----------------------------------------------------------------------------------------------
# Dummies, validation


def test_treatment_dummies():
    df = pd.DataFrame({"eth": ["White", "Black", None, "Asian", "Black"]})
    d = treatment_dummies(df, "eth", reference="White", prefix="eth:")
    assert list(d.columns) == ["eth:Asian", "eth:Black"]
    np.testing.assert_array_equal(d["eth:Black"].to_numpy(), [0, 1, np.nan, 0, 1])
    with pytest.raises(ValueError, match="reference"):
        treatment_dummies(df, "eth", reference="Other")


def test_missing_rows_are_dropped_and_counted():
    df = _tied_data(8, 500)
    df.loc[:9, "a"] = np.nan
    res = cox(df, "t", "e", ["a", "b"])
    assert res.n_dropped == 10 and res.n == 490


def test_collinear_covariates_raise():
    df = _tied_data(9, 300)
    df["a2"] = 2 * df["a"]
    with pytest.raises(ValueError, match="collinear"):
        cox(df, "t", "e", ["a", "a2"])


# ----------------------------------------------------------------------------------------------
# National scale (slow)


@pytest.mark.slow
def test_million_row_stratified_fit_equals_statsmodels():
    rng = np.random.default_rng(2024)
    n = 1_000_000
    X = rng.normal(size=(n, 4))
    X[:, 2] = rng.integers(0, 2, n)
    X[:, 3] = rng.integers(0, 2, n)
    s = rng.integers(0, 4, n)
    rate = np.array([1 / 900, 1 / 700, 1 / 1200, 1 / 1000])[s] * np.exp(X @ [0.3, -0.2, 0.5, 0.2])
    t = rng.exponential(1 / rate)
    c = rng.uniform(0, 1500, n)
    df = pd.DataFrame(X, columns=["x1", "x2", "x3", "x4"])
    df["t"] = np.ceil(np.minimum(t, c))
    df["e"] = (t <= c).astype(int)
    df["s"] = s
    t0 = time.perf_counter()
    res = cox(df, "t", "e", ["x1", "x2", "x3", "x4"], strata="s")
    elapsed = time.perf_counter() - t0
    sm = PHReg(df["t"], X, status=df["e"], strata=s, ties="efron").fit()
    assert np.max(np.abs(res.coef.to_numpy() - sm.params)) < 1e-6
    print(f"cox 1M rows: {elapsed:.2f} s")


def test_numeric_design_equals_parsing_every_column():
    """numeric_design copies numeric and boolean columns directly and parses the rest: the same array as
    ``apply(pd.to_numeric).to_numpy(float)``, NaN for missing values, and a non-numeric value still raises."""
    from pcref_eval.survival.cox import numeric_design
    df = pd.DataFrame({
        "f": [1.5, np.nan, 3.0], "i": [1, 2, 3], "nullable": pd.array([1, None, 3], dtype="Int64"),
        "b": [True, False, True], "nb": pd.array([True, None, False], dtype="boolean"),
        "text": ["1", "2.5", None], "obj": pd.Series([1, 2.0, None], dtype=object),
    })
    got = numeric_design(df, list(df.columns))
    expected = df.apply(pd.to_numeric, errors="raise").astype(float).to_numpy()
    np.testing.assert_array_equal(got, expected)
    assert got.flags.f_contiguous and got.dtype == np.float64
    with pytest.raises(ValueError):
        numeric_design(pd.DataFrame({"x": ["1", "two"]}), ["x"])
