"""Aalen-Johansen cumulative incidence against tidycmprsk/cmprsk references and lifelines."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from lifelines import AalenJohansenFitter

from pcref_eval.survival import cumulative_incidence, kaplan_meier
from .conftest import assert_close_printed, expected_csv, missing_param


def _cif_cases():
    table = expected_csv("cif_aalen_johansen.csv")
    if table is None:
        return missing_param()
    return [
        pytest.param((case, cause, rows), id=f"{case}-{cause.replace(' ', '_')}")
        for (case, cause), rows in table.groupby(["case", "cause"], sort=False)
    ]


@pytest.mark.parametrize("case", _cif_cases())
def test_cif_matches_tidycmprsk(case, load_data):
    name, cause, expected = case
    # the file documents the method: cmprsk (Aalen) variance and tidycmprsk log-log CI
    assert set(expected["variance"]) == {"Aalen (cmprsk)"}
    assert set(expected["ci"]) == {"log-log (tidycmprsk)"}
    trial = load_data("tidycmprsk_trial.csv")
    times = expected["time"].astype(float).to_numpy()
    res = cumulative_incidence(trial, "ttdeath", "death_cr", cause, times=times)
    for (_, row), (_, mine) in zip(expected.iterrows(), res.iterrows()):
        where = f"{name} {cause} t={row['time']}"
        assert mine["time"] == float(row["time"])
        assert mine["n_risk"] == int(float(row["n_risk"])), where
        assert_close_printed(mine["estimate"], row["estimate"], 5e-4, where + " estimate")
        assert_close_printed(mine["std_err"], row["std_error"], 5e-4, where + " se")
        assert_close_printed(mine["lower"], row["lower95"], 5e-4, where + " lower")
        assert_close_printed(mine["upper"], row["upper95"], 5e-4, where + " upper")


def _competing_data(seed: int, n: int = 500) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t1 = rng.exponential(100, n)
    t2 = rng.exponential(150, n)
    c = rng.uniform(0, 200, n)
    t = np.minimum(np.minimum(t1, t2), c)
    status = np.where(t == t1, 1, np.where(t == t2, 2, 0))
    return pd.DataFrame({"t": t, "status": status, "g": rng.choice(["x", "y"], n)})


@pytest.mark.parametrize("seed", [1, 2])
def test_cif_estimate_agrees_with_lifelines(seed):
    df = _competing_data(seed)
    res = cumulative_incidence(df, "t", "status", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ajf = AalenJohansenFitter(calculate_variance=False).fit(df["t"], df["status"], event_of_interest=1)
    ref = ajf.cumulative_density_.iloc[:, 0]
    np.testing.assert_allclose(res["estimate"].to_numpy(), ref.loc[res["time"]].to_numpy(), atol=1e-12)


def test_cifs_and_survival_sum_to_one():
    df = _competing_data(3)
    f1 = cumulative_incidence(df, "t", "status", 1)
    f2 = cumulative_incidence(df, "t", "status", 2)
    km = kaplan_meier(df.assign(any=(df["status"] > 0).astype(int)), "t", "any")
    np.testing.assert_allclose(f1["estimate"] + f2["estimate"] + km["surv"], 1.0, atol=1e-12)


def test_without_competing_events_cif_is_one_minus_km():
    df = _competing_data(4)
    df["status"] = np.where(df["status"] == 2, 0, df["status"])
    f1 = cumulative_incidence(df, "t", "status", 1, group_col="g")
    km = kaplan_meier(df, "t", "status", group_col="g")
    np.testing.assert_allclose(f1["estimate"], 1 - km["surv"], atol=1e-12)


def test_groups_times_and_unknown_cause():
    df = _competing_data(5)
    res = cumulative_incidence(df, "t", "status", 2, group_col="g", times=[10, 50, 500])
    assert list(res["group"]) == ["x"] * 3 + ["y"] * 3
    for g, part in res.groupby("group"):
        sub = df[df["g"] == g]
        assert part["n_event"].sum() == ((sub["status"] == 2) & (sub["t"] <= 500)).sum()
    with pytest.raises(ValueError, match="does not occur"):
        cumulative_incidence(df, "t", "status", 7)
