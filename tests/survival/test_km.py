"""Kaplan-Meier and quantiles against R survival / CAMIS references, and against lifelines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter

from pcref_eval.survival import kaplan_meier, median_survival
from .conftest import assert_close_printed, expected_csv, missing_param

# Input specification per reference case: data file, duration, event, group column, CI type.
KM_INPUTS = {
    "km_ovarian_overall": ("ovarian.csv", "futime", "fustat", None, "log"),
    "km_ovarian_by_rx": ("ovarian.csv", "futime", "fustat", "rx", "log"),
    "km_aml_by_x": ("aml.csv", "time", "status", "x", "log"),
    "median_aml_by_x": ("aml.csv", "time", "status", "x", "log"),
    "quantiles_camis_10obs_lastcensored": ("camis_km_10obs_lastcensored.csv", "time", "status", None, "log-log"),
    "quantiles_camis_10obs_lastevent": ("camis_km_10obs_lastevent.csv", "time", "status", None, "log-log"),
    "km_camis_10obs_lastcensored": ("camis_km_10obs_lastcensored.csv", "time", "status", None, "log-log"),
    "km_camis_10obs_lastevent": ("camis_km_10obs_lastevent.csv", "time", "status", None, "log-log"),
}
# README tolerances: surv and CI 5e-4, SE 5e-5 (or half a printed unit if coarser).
TOL = {"surv": 5e-4, "lower95": 5e-4, "upper95": 5e-4, "std_err": 5e-5}


def r_label(group_col, value) -> str:
    """R's stratum label ("rx=1") for one of our group values ("all" without groups)."""
    return "all" if group_col is None else f"{group_col}={value}"


def _cases(name: str, key: str = "case"):
    table = expected_csv(name)
    if table is None:
        return missing_param()
    return [pytest.param((case, rows), id=case) for case, rows in table.groupby(key, sort=False)]


@pytest.mark.parametrize("case", _cases("km_survival_tables.csv"))
def test_km_survival_table_matches_r(case, load_data):
    name, expected = case
    file, dur, ev, group_col, conf_type = KM_INPUTS[name]
    km = kaplan_meier(load_data(file), dur, ev, group_col, conf_type=conf_type)
    km["label"] = [r_label(group_col, g) for g in km["group"]]
    events = km[km["n_event"] > 0]
    # R's summary(fit) lists exactly the event times: same set of (stratum, time) rows
    got_keys = set(zip(events["label"], events["time"].astype(float)))
    want_keys = set(zip(expected["group"], expected["time"].astype(float)))
    assert got_keys == want_keys
    for _, row in expected.iterrows():
        mine = events[(events["label"] == row["group"]) & (events["time"] == float(row["time"]))].iloc[0]
        where = f"{name} {row['group']} t={row['time']}"
        assert mine["n_risk"] == int(row["n_risk"]), where
        assert mine["n_event"] == int(row["n_event"]), where
        assert_close_printed(mine["surv"], row["surv"], TOL["surv"], where + " surv")
        assert_close_printed(mine["std_err"], row["std_err"], TOL["std_err"], where + " se")
        assert_close_printed(mine["lower"], row["lower95"], TOL["lower95"], where + " lower")
        assert_close_printed(mine["upper"], row["upper95"], TOL["upper95"], where + " upper")


def _quantile_rows():
    table = expected_csv("km_quantiles.csv")
    if table is None:
        return missing_param()
    params = []
    for _, row in table.iterrows():
        marks = []
        if row["case"] == "quantiles_camis_10obs_lastevent" and row["quantile"] == "0.75":
            marks = [
                pytest.mark.xfail(
                    strict=True,
                    reason=(
                        "reference transcribes R as NE for the 75th percentile when the last "
                        "observation (t=118, S: 0.5 -> 0) is an event, but R survival's own "
                        "quantile.survfit/findq code returns 118 here (first time 1-S >= 0.75); "
                        "we follow the R source. Only the estimate differs; its CI matches."
                    ),
                )
            ]
        params.append(pytest.param(row, id=f"{row['case']}-{row['group']}-q{row['quantile']}", marks=marks))
    return params


@pytest.mark.parametrize("row", _quantile_rows())
def test_quantiles_match_r(row, load_data):
    file, dur, ev, group_col, conf_type = KM_INPUTS[row["case"]]
    q = float(row["quantile"])
    res = median_survival(load_data(file), dur, ev, group_col, conf_type=conf_type, quantiles=(q,))
    res["label"] = [r_label(group_col, g) for g in res["group"]]
    mine = res[res["label"] == row["group"]].iloc[0]
    for col, ref in (("estimate", row["estimate"]), ("lower", row["lower95"]), ("upper", row["upper95"])):
        assert_close_printed(mine[col], ref, 0.0, f"{row['case']} q={q} {col}")


@pytest.mark.parametrize("case", _cases("km_camis_10obs_landmarks.csv"))
def test_landmark_estimates_match_r_extend(case, load_data):
    name, expected = case
    file, dur, ev, group_col, conf_type = KM_INPUTS[name]
    times = expected["time"].astype(float).to_numpy()
    km = kaplan_meier(load_data(file), dur, ev, group_col, times=times, conf_type=conf_type)
    assert km["time"].tolist() == sorted(times.tolist())
    for (_, row), (_, mine) in zip(expected.iterrows(), km.iterrows()):
        where = f"{name} t={row['time']}"
        assert_close_printed(mine["surv"], row["surv"], 5e-4, where)
        assert_close_printed(mine["lower"], row["lower95"], 5e-4, where + " lower")
        assert_close_printed(mine["upper"], row["upper95"], 5e-4, where + " upper")


# ----------------------------------------------------------------------------------------------
# Second implementation (lifelines) and behaviour


def _random_survival(seed: int, n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.ceil(rng.exponential(60, n))
    c = np.ceil(rng.uniform(1, 150, n))
    return pd.DataFrame({"t": np.minimum(t, c), "e": (t <= c).astype(int), "g": rng.choice(["a", "b", "c"], n)})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_km_agrees_with_lifelines(seed):
    df = _random_survival(seed)
    km = kaplan_meier(df, "t", "e", "g", conf_type="log-log")
    for g, part in df.groupby("g"):
        kmf = KaplanMeierFitter().fit(part["t"], part["e"])
        mine = km[km["group"] == g].set_index("time")
        sf = kmf.survival_function_["KM_estimate"].loc[mine.index]
        np.testing.assert_allclose(mine["surv"], sf, rtol=0, atol=1e-12)
        table = kmf.event_table.loc[mine.index]
        np.testing.assert_array_equal(mine["n_risk"], table["at_risk"])
        np.testing.assert_array_equal(mine["n_event"], table["observed"])
        np.testing.assert_array_equal(mine["n_censored"], table["censored"])
        # lifelines' default CI is the log(-log) ("exponential Greenwood") interval
        ci = kmf.confidence_interval_.loc[mine.index]
        ok = (mine["surv"] > 0) & (mine["surv"] < 1)
        np.testing.assert_allclose(mine.loc[ok, "lower"], ci.iloc[:, 0][ok], atol=1e-10)
        np.testing.assert_allclose(mine.loc[ok, "upper"], ci.iloc[:, 1][ok], atol=1e-10)


def test_times_argument_cumulates_counts_between_requested_times():
    df = _random_survival(5, 300)
    full = kaplan_meier(df, "t", "e")
    req = [0.5, 10, 37.5, 80, 400]
    at = kaplan_meier(df, "t", "e", times=req)
    prev = -np.inf
    for _, row in at.iterrows():
        tau = row["time"]
        window = df[(df["t"] > prev) & (df["t"] <= tau)]
        assert row["n_event"] == window["e"].sum()
        assert row["n_censored"] == (1 - window["e"]).sum()
        assert row["n_risk"] == (df["t"] >= tau).sum()
        upto = full[full["time"] <= tau]
        expected_surv = upto["surv"].iloc[-1] if len(upto) else 1.0
        assert row["surv"] == pytest.approx(expected_surv, abs=1e-12)
        prev = tau
    assert at["surv"].iloc[-1] == full["surv"].iloc[-1]  # carried past the last observation


def test_log_ci_upper_clipped_and_zero_survival_has_no_se():
    df = pd.DataFrame({"t": [1, 2, 3, 4], "e": [1, 0, 1, 1]})
    km = kaplan_meier(df, "t", "e")
    assert (km["upper"].dropna() <= 1.0).all()
    last = km.iloc[-1]
    assert last["surv"] == 0.0 and np.isnan(last["std_err"]) and np.isnan(last["lower"])


def test_event_coding_is_checked():
    df = pd.DataFrame({"t": [1, 2, 3], "e": [1, 2, 2]})
    with pytest.raises(ValueError, match="0/1"):
        kaplan_meier(df, "t", "e")


def test_missing_rows_dropped_and_group_all():
    df = pd.DataFrame({"t": [1, 2, np.nan, 4], "e": [1, 0, 1, 1]})
    km = kaplan_meier(df, "t", "e")
    assert set(km["group"]) == {"all"}
    assert km["n_risk"].iloc[0] == 3
