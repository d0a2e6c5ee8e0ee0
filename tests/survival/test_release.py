"""Disclosure-controlled KM tables: OpenSAFELY midpoint-6 rounding and release properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcref_eval.survival import kaplan_meier, km_release_table, roundmid
from pcref_eval.survival.release import RELEASE_COLUMNS, min_remaining


def test_roundmid_matches_opensafely_mapping():
    """OpenSAFELY documentation: 0 -> 0, 1-6 -> 3, 7-12 -> 9, 13-18 -> 15 (midpoint 6)."""
    x = np.arange(0, 19)
    expected = np.r_[0, [3] * 6, [9] * 6, [15] * 6]
    np.testing.assert_array_equal(roundmid(x, 6), expected)
    np.testing.assert_array_equal(roundmid(x, 1), x)  # no rounding


def _survival_data(seed: int, n: int, scale: float, horizon: float, ties: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = rng.exponential(scale, n)
    c = rng.uniform(1, horizon, n)
    obs = np.ceil(np.minimum(t, c) / ties) * ties
    return pd.DataFrame({"t": obs, "e": (t <= c).astype(int), "g": rng.choice(["a", "b"], n, p=[0.7, 0.3])})


datasets = st.builds(
    _survival_data,
    seed=st.integers(0, 10_000),
    n=st.integers(20, 2500),
    scale=st.floats(20, 800),
    horizon=st.floats(30, 900),
    ties=st.sampled_from([1, 7, 30]),
)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=datasets, threshold=st.sampled_from([5, 7, 10]))
def test_release_properties(df, threshold):
    rounding = 6
    km = kaplan_meier(df, "t", "e", "g")
    rel = km_release_table(km, threshold=threshold, rounding=rounding)
    assert list(rel.columns) == RELEASE_COLUMNS
    half = rounding // 2
    for g, part in rel.groupby("group"):
        raw = df[df["g"] == g]
        full = km[km["group"] == g]
        # 1. every released count comes from midpoint-rounded cumulative counts
        for col in ("cum_event", "cum_censored"):
            v = part[col].to_numpy()
            assert np.all((v == 0) | ((v + half) % rounding == 0)), col
            assert np.all(np.diff(v) >= 0)
        np.testing.assert_array_equal(part["n_event"], np.diff(np.r_[0, part["cum_event"]]))
        np.testing.assert_array_equal(part["n_censored"], np.diff(np.r_[0, part["cum_censored"]]))
        lagged = np.r_[0, (part["cum_event"] + part["cum_censored"]).to_numpy()[:-1]]
        np.testing.assert_array_equal(part["n_risk"], roundmid(len(raw), rounding) - lagged)
        # steps are multiples of `rounding`, except the first non-zero one (from 0 to 6k - 3)
        steps = part["n_event"].to_numpy()
        nonzero = steps[steps > 0]
        assert np.all(nonzero[1:] % rounding == 0) and (nonzero.size == 0 or nonzero[0] % rounding == half)
        # 2. no released event step describes fewer than `threshold` people
        step_times = part.loc[part["n_event"] > 0, "time"].to_numpy()
        edges = np.r_[-np.inf, step_times]
        for lo, hi in zip(edges[:-1], edges[1:]):
            true_events = int(raw.loc[(raw["t"] > lo) & (raw["t"] <= hi), "e"].sum())
            assert true_events >= threshold, (lo, hi, true_events)
        # ... and at every released time at least `threshold` people are still at risk after
        # that time's events (the tail where fewer remain is not released)
        for t_rel in part["time"]:
            still = (raw["t"] >= t_rel).sum() - raw.loc[raw["t"] == t_rel, "e"].sum()
            assert still >= max(threshold, min_remaining(threshold, rounding)), (t_rel, still)
        assert (part["n_risk"] > part["n_event"]).all()
        # 3. the re-derived curve is a survival curve
        surv = part["surv"].to_numpy()
        assert np.all((surv > 0) & (surv <= 1))
        assert np.all(np.diff(surv) <= 1e-12)
        # 4. bounded distance from the unrounded curve: |S_rel - S| <= (2 threshold + 2 rounding) / n_risk
        idx = np.searchsorted(full["time"].to_numpy(), part["time"].to_numpy(), side="right") - 1
        s_true = full["surv"].to_numpy()[idx]
        n_risk_true = full["n_risk"].to_numpy()[idx]
        bound = (2 * threshold + 2 * rounding) / n_risk_true
        assert np.all(np.abs(surv - s_true) <= bound + 1e-12)
    # groups with too few events are suppressed, never released
    for g in set(df["g"]) - set(rel["group"]):
        assert g in rel.attrs["suppressed_groups"]


def test_release_tail_keeps_at_least_threshold_at_risk():
    df = _survival_data(1, 600, 200, 400, 1)
    km = kaplan_meier(df, "t", "e")
    rel = km_release_table(km, threshold=7)
    t_last = rel["time"].max()
    # true number still at risk after the last released step's events
    remaining = (df["t"] >= t_last).sum() - df.loc[df["t"] == t_last, "e"].sum()
    assert remaining >= 7


def test_no_rounding_reproduces_kaplan_meier():
    df = _survival_data(2, 500, 100, 300, 1)
    km = kaplan_meier(df, "t", "e", "g")
    rel = km_release_table(km, threshold=1, rounding=1)
    for g, part in rel.groupby("group"):
        full = km[km["group"] == g].set_index("time").loc[part["time"]]
        np.testing.assert_allclose(part["surv"], full["surv"], atol=1e-12)
        np.testing.assert_allclose(part["std_err"], full["std_err"], atol=1e-12)
        np.testing.assert_array_equal(part["n_risk"], full["n_risk"])


def test_small_group_is_suppressed():
    df = pd.DataFrame({"t": [1, 2, 3, 4, 5, 6, 7, 8], "e": [1, 1, 0, 1, 0, 0, 1, 0], "g": "x"})
    rel = km_release_table(kaplan_meier(df, "t", "e", "g"), threshold=7)
    assert rel.empty and rel.attrs["suppressed_groups"] == ["x"]


def test_rejects_tables_evaluated_at_chosen_times():
    df = _survival_data(3, 200, 100, 300, 1)
    with pytest.raises(ValueError, match="full table"):
        km_release_table(kaplan_meier(df, "t", "e", times=[10, 50, 90]))


@pytest.mark.parametrize("n_events", [7, 13, 20])
def test_first_step_holds_threshold_events(n_events):
    # all events at distinct times, no censoring before them
    t = np.r_[np.arange(1, n_events + 1), np.full(40, 100.0)]
    e = np.r_[np.ones(n_events), np.zeros(40)]
    rel = km_release_table(kaplan_meier(pd.DataFrame({"t": t, "e": e}), "t", "e"), threshold=7)
    first = rel[rel["n_event"] > 0]["time"].iloc[0]
    assert (t[e == 1] <= first).sum() >= 7
