"""Log-rank test against R survdiff / lifelines references and second implementations."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from lifelines.statistics import multivariate_logrank_test
from statsmodels.duration.survfunc import survdiff

from pcref_eval.survival import cox, logrank
from .conftest import (
    assert_close_printed,
    expected_csv,
    expected_json,
    half_unit,
    half_unit_sig,
    missing_param,
)

GROUP_INPUTS = {  # reference test -> (data file, duration, event, group column)
    "ovarian_rx": ("ovarian.csv", "futime", "fustat", "rx"),
    "aml_x": ("aml.csv", "time", "status", "x"),
}


def _group_cases():
    table = expected_csv("logrank_groups.csv")
    if table is None:
        return missing_param()
    return [pytest.param((name, rows), id=name) for name, rows in table.groupby("test", sort=False)]


@pytest.mark.parametrize("case", _group_cases())
def test_survdiff_group_table(case, load_data):
    name, expected = case
    file, dur, ev, group = GROUP_INPUTS[name]
    res = logrank(load_data(file), dur, ev, group)
    table = res.table.assign(label=[f"{group}={g}" for g in res.table["group"]]).set_index("label")
    for _, row in expected.iterrows():
        mine = table.loc[row["group"]]
        assert mine["n"] == int(row["N"])
        assert mine["observed"] == float(row["observed"])
        # R prints these to 3 significant digits (trailing zeros dropped)
        for col, ref in (("expected", "expected"), ("oe2_e", "oe2_over_e"), ("oe2_v", "oe2_over_v")):
            printed = row[ref]
            tol = min(half_unit(printed), half_unit_sig(float(printed), 3))
            assert abs(mine[col] - float(printed)) <= tol + 1e-12, (name, row["group"], col, mine[col], printed)


def _parse_inline_data(text: str) -> pd.DataFrame:
    """Build the small datasets described inline in logrank_tests.json ("time=[..], status=[..]")."""
    arrays = {k: [float(v) for v in vals.split(",")] for k, vals in re.findall(r"(\w+)=\[([^\]]*)\]", text)}
    df = pd.DataFrame(arrays)
    if "status" not in df:
        assert "status all 1" in text
        df["status"] = 1
    return df


def _test_cases():
    cases = expected_json("logrank_tests.json")
    if cases is None:
        return missing_param()
    return [pytest.param((k, v), id=k) for k, v in cases.items()]


@pytest.mark.parametrize("case", _test_cases())
def test_logrank_statistic_matches_reference(case, load_data):
    name, ref = case
    if name in GROUP_INPUTS:
        file, dur, ev, group = GROUP_INPUTS[name]
        res = logrank(load_data(file), dur, ev, group)
    elif name.startswith("lifelines_tiny"):
        res = logrank(_parse_inline_data(ref["data"]), "time", "status", "group")
    elif name == "lifelines_g3_RIT_vs_rest":
        g3 = load_data("g3.csv")
        g3["rit"] = g3["group"] == "RIT"
        res = logrank(g3, "time", "event", "rit")
    else:
        pytest.fail(f"no input specification for reference case {name}")
    if "df" in ref:
        assert res.df == ref["df"]
    for key, value in ref.items():
        if key in ("chisq", "chisq_3dp", "chisq_printed"):
            tol = 5e-4 if key == "chisq_3dp" else 0.0
            assert_close_printed(res.statistic, repr(value), tol, f"{name} {key}")
        elif key in ("p", "p_printed"):
            tol = ref.get("p_tolerance", 0.0)
            assert_close_printed(res.p, repr(value), tol, f"{name} {key}")


# ----------------------------------------------------------------------------------------------
# Second implementations


def _random(seed: int, n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 3, n)
    s = rng.integers(0, 3, n)
    t = np.ceil(rng.exponential(40 * (1 + 0.3 * g), n))
    c = np.ceil(rng.uniform(1, 120, n))
    return pd.DataFrame({"t": np.minimum(t, c), "e": (t <= c).astype(int), "g": g, "s": s})


@pytest.mark.parametrize("seed", [11, 12])
def test_multigroup_logrank_agrees_with_lifelines(seed):
    df = _random(seed)
    res = logrank(df, "t", "e", "g")
    ll = multivariate_logrank_test(df["t"], df["g"], df["e"])
    assert res.statistic == pytest.approx(ll.test_statistic, rel=1e-10)
    assert res.df == ll.degrees_of_freedom
    assert res.p == pytest.approx(ll.p_value, rel=1e-8)


@pytest.mark.parametrize("seed", [21, 22])
def test_stratified_logrank_agrees_with_statsmodels(seed):
    df = _random(seed)
    df = df[df["g"] < 2]
    res = logrank(df, "t", "e", "g", strata_col="s")
    stat, p = survdiff(df["t"].to_numpy(), df["e"].to_numpy(), df["g"].to_numpy(), strata=df["s"].to_numpy())
    assert res.statistic == pytest.approx(stat, rel=1e-10)
    assert res.p == pytest.approx(p, rel=1e-8)


def test_logrank_equals_breslow_cox_score_test(load_data):
    """Without tied event times the Cox score test is the log-rank test (also stratified).

    (With ties the log-rank variance has the hypergeometric factor (n - d)/(n - 1) that the
    Breslow information lacks, so the two differ.)
    """
    ov = load_data("ovarian.csv")
    ov["rx2"] = (ov["rx"] == 2).astype(float)
    assert logrank(ov, "futime", "fustat", "rx").statistic == pytest.approx(
        cox(ov, "futime", "fustat", ["rx2"], ties="breslow").score_test.statistic, rel=1e-10
    )
    df = _random(31)
    df = df[df["g"] < 2].copy()
    df["t"] = df["t"] + np.random.default_rng(0).uniform(0, 0.5, len(df))  # break ties
    assert logrank(df, "t", "e", "g", strata_col="s").statistic == pytest.approx(
        cox(df, "t", "e", ["g"], strata="s", ties="breslow").score_test.statistic, rel=1e-10
    )


def test_observed_and_expected_totals_balance():
    res = logrank(_random(41), "t", "e", "g")
    assert res.table["observed"].sum() == pytest.approx(res.table["expected"].sum())
    assert np.allclose(res.variance.sum(axis=1), 0.0, atol=1e-9)
