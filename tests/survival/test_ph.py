"""Proportional-hazards tests and time-split models against lifelines and statsmodels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, CoxTimeVaryingFitter
from lifelines.statistics import proportional_hazard_test
from statsmodels.duration.hazard_regression import PHReg

from pcref_eval.survival import cox, schoenfeld_residuals, schoenfeld_test, step_function_cox, time_split
from pcref_eval.survival.ph import _time_transform

ROSSI_ALL = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]


def _untied(seed: int, n: int = 400, nonph: float = 0.8) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    t = rng.exponential(1 / np.exp(X @ [0.5, -0.4])) * (1 + nonph * (X[:, 0] > 0) * rng.uniform(size=n))
    c = rng.exponential(2, n)
    df = pd.DataFrame(X, columns=["a", "b"])
    df["t"] = np.minimum(t, c)
    df["e"] = (t <= c).astype(int)
    return df


@pytest.mark.parametrize("transform", ["rank", "identity"])
def test_gt_method_agrees_with_lifelines(transform):
    """Grambsch-Therneau approximation = lifelines.proportional_hazard_test (untied times)."""
    df = _untied(3)
    res = schoenfeld_test(cox(df, "t", "e", ["a", "b"]), transform=transform, method="gt")
    cph = CoxPHFitter().fit(df, "t", "e")
    ll = proportional_hazard_test(cph, df, time_transform=transform)
    np.testing.assert_allclose(res["statistic"].to_numpy()[:2], ll.test_statistic, rtol=1e-5)
    np.testing.assert_allclose(res["p"].to_numpy()[:2], ll.p_value, rtol=1e-4, atol=1e-8)


def test_scaled_schoenfeld_residuals_agree_with_lifelines():
    df = _untied(4)
    mine = schoenfeld_residuals(cox(df, "t", "e", ["a", "b"]))
    cph = CoxPHFitter().fit(df, "t", "e")
    ll = cph.compute_residuals(df, "scaled_schoenfeld") + cph.params_.to_numpy()  # R adds beta
    ll = ll.loc[df.loc[ll.index, "t"].sort_values().index]
    np.testing.assert_allclose(mine[["a", "b"]].to_numpy(), ll.to_numpy(), atol=1e-4)


def _score_test_by_expansion(data, dur, ev, covs, result, transform, strata=None):
    """Independent route to R >= 3.0 cox.zph: split at every event time, add x * g(t), and take
    statsmodels' score and information of the augmented model at (beta-hat, 0)."""
    pr = result.problem
    g = _time_transform(pr, transform, "score")
    key = pd.Series(g, index=pd.MultiIndex.from_arrays([pr.event_code, pr.event_time]))
    key = key[~key.index.duplicated()]
    split = time_split(data, dur, ev, np.unique(pr.event_time))
    codes = np.zeros(len(split), dtype=int) if strata is None else pd.Categorical(split[strata]).codes
    gv = key.reindex(pd.MultiIndex.from_arrays([codes, split[dur].to_numpy()])).fillna(0.0).to_numpy()
    X = split[covs].to_numpy(dtype=float)
    Z = np.hstack([X, X * gv[:, None]])
    entry = split["start"].to_numpy() + 1e-7 * (split["start"].to_numpy() > 0)  # statsmodels: entry == t is at risk
    model = PHReg(split[dur].to_numpy(), Z, status=split[ev].to_numpy(), entry=entry, ties="efron",
                  strata=None if strata is None else codes)
    par = np.r_[result.coef.to_numpy(), np.zeros(len(covs))]
    u = model.score(par)
    info = -model.hessian(par)
    p = len(covs)
    stats_ = []
    for k in range(p):
        kk = np.r_[np.arange(p), p + k]
        uk = np.r_[np.zeros(p), u[p + k]]
        stats_.append(uk @ np.linalg.solve(info[np.ix_(kk, kk)], uk))
    stats_.append(u @ np.linalg.solve(info, u))
    return np.array(stats_)


@pytest.mark.parametrize("transform", ["km", "rank", "identity"])
def test_score_method_equals_augmented_model_score_test(transform, load_data):
    rossi = load_data("rossi.csv")
    res = cox(rossi, "week", "arrest", ROSSI_ALL)
    mine = schoenfeld_test(res, transform=transform)
    other = _score_test_by_expansion(rossi, "week", "arrest", ROSSI_ALL, res, transform)
    np.testing.assert_allclose(mine["statistic"].to_numpy(), other, rtol=1e-8)
    assert mine["term"].tolist() == ROSSI_ALL + ["GLOBAL"]
    assert mine["df"].tolist() == [1] * 7 + [7]


def test_score_method_stratified(load_data):
    rossi = load_data("rossi.csv")
    covs = ["fin", "age", "prio"]
    res = cox(rossi, "week", "arrest", covs, strata="race")
    mine = schoenfeld_test(res, transform="km")
    other = _score_test_by_expansion(rossi, "week", "arrest", covs, res, "km", strata="race")
    np.testing.assert_allclose(mine["statistic"].to_numpy(), other, rtol=1e-8)


def test_zph_detects_non_proportional_hazards():
    rng = np.random.default_rng(0)
    n = 4000
    x = rng.integers(0, 2, n).astype(float)
    # HR 4 before t = 1, HR 0.5 afterwards (piecewise exponential)
    t_early = rng.exponential(1 / (0.3 * np.where(x == 1, 4.0, 1.0)))
    t_late = 1 + rng.exponential(1 / (0.3 * np.where(x == 1, 0.5, 1.0)))
    t = np.where(t_early < 1, t_early, t_late)
    c = rng.uniform(0, 6, n)
    df = pd.DataFrame({"x": x, "t": np.minimum(t, c), "e": (t <= c).astype(int)})
    res = cox(df, "t", "e", ["x"])
    assert schoenfeld_test(res)["p"].iloc[0] < 1e-6
    step = step_function_cox(df, "t", "e", ["x"], "x", [1.0]).table.set_index("term")["hr"]
    assert step["x (0,1]"] == pytest.approx(4.0, rel=0.15)
    assert step["x (1,inf]"] == pytest.approx(0.5, rel=0.15)


def test_zph_does_not_flag_proportional_hazards():
    pvals = []
    for seed in range(5):
        df = _untied(seed + 10, n=800, nonph=0.0)
        pvals.append(schoenfeld_test(cox(df, "t", "e", ["a", "b"]))["p"].iloc[-1])
    assert min(pvals) > 0.01


# ----------------------------------------------------------------------------------------------
# time_split / step_function_cox


def _tied(seed: int, n: int = 800) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.integers(0, 2, n), "s": rng.integers(0, 3, n)})
    t = rng.exponential(30 / np.exp(0.4 * df["a"] - 0.3 * df["b"]))
    c = rng.uniform(1, 60, n)
    df["t"] = np.ceil(np.minimum(t, c))
    df["e"] = (t <= c).astype(int)
    return df


def test_time_split_rows_and_follow_up():
    df = _tied(1, 50)
    split = time_split(df, "t", "e", [5, 10.5, 20])
    n_cuts_inside = sum(((df["t"] > c)).to_numpy().astype(int) for c in (5, 10.5, 20))
    assert len(split) == len(df) + n_cuts_inside.sum()
    assert (split["start"] < split["t"]).all()
    # total follow-up and events are preserved
    assert (split["t"] - split["start"]).sum() == pytest.approx(df["t"].sum())
    assert split["e"].sum() == df["e"].sum()
    # each episode lies inside its interval
    edges = np.array([0, 5, 10.5, 20, np.inf])
    assert ((split["start"] >= edges[split["episode"]]) & (split["t"] <= edges[split["episode"] + 1])).all()


@pytest.mark.parametrize("strata", [None, "s"])
@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_time_split_leaves_the_cox_fit_unchanged(strata, ties):
    df = _tied(2)
    base = cox(df, "t", "e", ["a", "b"], strata=strata, ties=ties)
    split = time_split(df, "t", "e", [3, 7.5, 15, 40])
    again = cox(split, "t", "e", ["a", "b"], strata=strata, ties=ties, entry_col="start")
    np.testing.assert_allclose(again.coef.to_numpy(), base.coef.to_numpy(), atol=1e-10)
    np.testing.assert_allclose(again.table["se"].to_numpy(), base.table["se"].to_numpy(), atol=1e-10)
    assert again.log_likelihood == pytest.approx(base.log_likelihood, abs=1e-8)


def test_step_function_cox_agrees_with_lifelines_time_varying():
    df = _tied(3)
    res = step_function_cox(df, "t", "e", ["a", "b"], "b", [10, 25])
    split = time_split(df, "t", "e", [10, 25])
    for k in range(3):
        split[f"b{k}"] = split["b"] * (split["episode"] == k)
    split["id"] = split.index
    ctv = CoxTimeVaryingFitter().fit(
        split[["a", "b0", "b1", "b2", "start", "t", "e", "id"]], id_col="id", event_col="e", start_col="start", stop_col="t"
    )
    assert res.table["term"].tolist() == ["a", "b (0,10]", "b (10,25]", "b (25,inf]"]
    np.testing.assert_allclose(res.coef.to_numpy(), ctv.params_.to_numpy(), atol=1e-7)
