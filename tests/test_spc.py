"""Tests for pcref_eval.spc (Making Data Count XmR) against NHSRplotthedots reference cases."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pcref_eval import spc

from tests.reference import REF, reference_file as _ref  # noqa: E402


RULES = json.loads(_ref("expected/spc_nhsrptd_rule_unit_cases.json").read_text())
XMR = json.loads(_ref("expected/spc_nhsrptd_xmr_expected.json").read_text())
RNORM = pd.read_csv(_ref("data/spc_rnorm20_seed123_input.csv"))
DATES = pd.to_datetime(RNORM["date"])


def signif(x: float, digits: int) -> float:
    return float(f"{x:.{digits}g}")


def _cases(key):
    return [pytest.param(c, id=f"{key.split('(')[0]}-{i}") for i, c in enumerate(RULES[key])]


# ----------------------------------------------------------------------------- rule unit cases (exact)


@pytest.mark.parametrize("case", _cases("seven_point_one_side_mean"))
def test_seven_point_one_side_mean(case):
    assert spc.seven_point_one_side_mean(case["input"]).tolist() == case["expected"]


@pytest.mark.parametrize("case", _cases("part_of_seven_trend(marks_run_members)"))
def test_part_of_seven_marks_run_members(case):
    assert spc.part_of_seven(case["input"]).tolist() == case["expected"]


@pytest.mark.parametrize("case", _cases("seven_point_trend"))
def test_seven_point_trend(case):
    assert spc.seven_point_trend(case["input"]).tolist() == case["expected"]


@pytest.mark.parametrize("case", _cases("two_in_three(close_to_limits, relative_to_mean)"))
def test_two_in_three(case):
    assert spc.two_in_three(case["close"], case["rtm"]).tolist() == case["expected"]


@pytest.mark.parametrize("case", _cases("two_in_three(close_to_limits, relative_to_mean)"))
def test_part_of_two_in_three_flags_only_close_points(case):
    got = spc.part_of_two_in_three(spc.two_in_three(case["close"], case["rtm"]), case["close"])
    want = [float(e == 1 and c == 1) for e, c in zip(case["expected"], case["close"])]
    assert got.tolist() == want


# ----------------------------------------------------------------------------- XmR limits (1e-6 relative)


def _check_limits(out, expected, rel=1e-6):
    for col in ("mean", "lpl", "upl"):
        got = float(out[col].iloc[0])
        want = expected[col]
        # expected values are R prints (7 significant digits); compare at 1e-6 relative
        assert got == pytest.approx(want, rel=rel), (col, got, want)


def test_xmr_rnorm20_screen_true():
    case = XMR["rnorm20_screen_TRUE"]
    out = spc.xmr(RNORM["y"], DATES, screen_outliers=True)
    _check_limits(out, case["expected"])
    counts = out["point_type"].value_counts()
    assert len(out) == case["expected_counts"]["n"]
    assert counts.get("common_cause", 0) == case["expected_counts"]["common_cause"]
    assert counts.get("special_cause_improvement", 0) == case["expected_counts"]["special_cause_improvement"]
    assert out["relative_to_mean"].iloc[:15].tolist() == case["expected_relative_to_mean_first15"]
    assert out["close_to_limits"].iloc[:8].tolist() == case["expected_close_to_limits_first8"]


def test_xmr_rnorm20_point15_screen_true():
    case = XMR["rnorm20_point15_eq_10_screen_TRUE"]
    out = spc.xmr(RNORM["y_with_point15_set_to_10"], DATES, screen_outliers=True)
    _check_limits(out, case["expected"])
    assert out["relative_to_mean"].iloc[:14].tolist() == case["expected_relative_to_mean_first14"]


def test_xmr_rnorm20_point15_screen_false():
    case = XMR["rnorm20_point15_eq_10_screen_FALSE"]
    out = spc.xmr(RNORM["y_with_point15_set_to_10"], DATES, screen_outliers=False)
    _check_limits(out, case["expected"])


@pytest.mark.parametrize("facet, rows", [("facet0", slice(0, 10)), ("facet1", slice(10, 20))])
def test_xmr_rnorm20_facets(facet, rows):
    exp = XMR["rnorm20_facets_2x10_screen_TRUE"]["expected"][facet]
    out = spc.xmr(RNORM["y"].iloc[rows], DATES.iloc[rows], screen_outliers=True)
    for col in ("mean", "lpl", "upl"):  # printed by tibble to 3 significant digits
        assert signif(float(out[col].iloc[0]), 3) == pytest.approx(exp[col], rel=1e-12), col
    counts = out["point_type"].value_counts()
    assert len(out) == exp["n"]
    assert counts.get("common_cause", 0) == exp["common_cause"]
    assert counts.get("special_cause_improvement", 0) == exp["special_cause_improvement"]


@pytest.mark.parametrize("key", ["deviations_vignette_screen_TRUE", "deviations_vignette_screen_FALSE"])
def test_xmr_deviations_vignette(key):
    case = XMR[key]
    dates = pd.date_range("2021-03-22", "2021-04-08", freq="D")
    out = spc.xmr(case["input"], dates, improvement=case["improvement_direction"],
                  screen_outliers=case["screen_outliers"])
    for col in ("mean", "lpl", "upl"):  # printed round(x, 2)
        assert round(float(out[col].iloc[0]), 2) == pytest.approx(case["expected"][col], abs=1e-9), col
    want = ["common_cause"] * len(case["input"])
    want[4] = "special_cause_improvement"
    assert out["point_type"].tolist() == want
    assert out["rule"].iloc[4] == "outside_limits"


def test_xmr_two_in_three_opposite_sides_is_not_special():
    case = XMR["two_in_three_opposite_sides"]
    y = np.tile([1.0, -1.0], 8)
    y[14], y[15] = 5.5, -5.5
    out = spc.xmr(y, screen_outliers=case["screen_outliers"])
    assert out["close_to_limits"].iloc[14:16].tolist() == [True, True]  # both beyond the 2-sigma line ...
    assert out["point_type"].iloc[-2:].tolist() == case["expected_point_type_last2"]  # ... but opposite sides


# ----------------------------------------------------------------------------- behaviour beyond the reference cases


def test_limits_closed_form_without_screening():
    y = np.array([3.0, 5.0, 4.0, 8.0, 6.0])
    out = spc.xmr(y)
    mr_bar = np.mean([2, 1, 4, 2])
    assert out["mean"].iloc[0] == pytest.approx(5.2)
    assert out["upl"].iloc[0] == pytest.approx(5.2 + 2.66 * mr_bar)
    assert out["near_lower"].iloc[0] == pytest.approx(5.2 - 2 / 3 * 2.66 * mr_bar)


def test_baseline_fixes_limits_from_first_points():
    y = np.r_[np.linspace(10, 12, 12) + np.tile([0, 0.5], 6), np.full(12, 30.0)]
    out = spc.xmr(y, baseline_n=12)
    base = spc.xmr(y[:12])
    assert out["mean"].iloc[-1] == pytest.approx(base["mean"].iloc[0])
    assert out["upl"].iloc[-1] == pytest.approx(base["upl"].iloc[0])
    assert (out["point_type"].iloc[12:] == "special_cause_improvement").all()


def test_rebase_gives_each_segment_its_own_limits():
    rng = np.random.default_rng(4)
    dates = pd.date_range("2022-01-01", periods=30, freq="MS")
    y = np.r_[rng.normal(50, 3, 15), rng.normal(40, 3, 15)]
    out = spc.xmr(y, dates, rebase_at=[dates[15]])
    first, second = spc.xmr(y[:15], dates[:15]), spc.xmr(y[15:], dates[15:])
    assert out["segment"].tolist() == [0] * 15 + [1] * 15
    np.testing.assert_allclose(out["upl"].iloc[:15], first["upl"])
    np.testing.assert_allclose(out["upl"].iloc[15:], second["upl"])
    np.testing.assert_array_equal(out["point_type"].iloc[15:], second["point_type"])


def test_direction_sets_improvement_or_concern_and_neutral():
    y = np.r_[np.full(10, 5.0) + np.tile([0.1, -0.1], 5), 9.0]
    up = spc.xmr(y, improvement="increase")
    down = spc.xmr(y, improvement="decrease")
    neither = spc.xmr(y, improvement="neither")
    assert up["point_type"].iloc[-1] == "special_cause_improvement"
    assert down["point_type"].iloc[-1] == "special_cause_concern"
    assert neither["point_type"].iloc[-1] == "special_cause_neutral"
    assert spc.xmr_summary(up).variation == "special_cause_improvement_high"
    assert spc.xmr_summary(down).variation == "special_cause_concern_high"
    assert spc.xmr_summary(neither).variation == "special_cause_neutral_high"


def test_trend_rule_flags_whole_run():
    y = np.r_[np.tile([5.0, 5.4], 4), 5.0, 5.1, 5.2, 5.3, 5.4, 5.5, 5.6, 5.3]
    out = spc.xmr(y)
    run = slice(8, 15)
    assert out["special_cause"].iloc[run].all()
    assert (out["rule"].iloc[run].isin(["trend", "outside_limits"])).all()


@pytest.mark.parametrize(
    "target, improvement, want",
    [(1000.0, "increase", "consistent_fail"), (-1000.0, "increase", "consistent_pass"),
     (1000.0, "decrease", "consistent_pass"), (0.1, "increase", "inconsistent"), (0.1, "neither", None)],
)
def test_assurance_icon(target, improvement, want):
    out = spc.xmr(RNORM["y"], target=target, improvement=improvement)
    assert spc.xmr_summary(out).assurance == want


def test_summary_survives_without_attrs():
    out = spc.xmr(RNORM["y"], target=5.0)
    stripped = out.copy()
    stripped.attrs = {}
    assert spc.xmr_summary(stripped).assurance == spc.xmr_summary(out).assurance == "consistent_fail"


def test_xmr_by_matches_per_series():
    df = pd.DataFrame({"site": np.repeat(["A", "B"], 20), "date": np.tile(DATES, 2),
                       "y": np.r_[RNORM["y"], RNORM["y_with_point15_set_to_10"]]})
    out = spc.xmr_by(df, "y", "date", ["site"], screen_outliers=True)
    b = spc.xmr(RNORM["y_with_point15_set_to_10"], DATES, screen_outliers=True)
    np.testing.assert_allclose(out.loc[out.site == "B", "upl"], b["upl"])
    assert set(out.attrs["summaries"]) == {"A", "B"}


@pytest.mark.parametrize("kwargs", [{}, {"rebase_at": [DATES[10]], "improvement": "decrease"},
                                    {"baseline_n": 8, "screen_outliers": True, "target": 0.5}])
def test_xmr_by_equals_xmr_on_each_series(kwargs):
    rng = np.random.default_rng(9)
    df = pd.DataFrame({"site": np.repeat(["A", "B", "C"], 20), "date": np.tile(DATES, 3),
                       "y": rng.normal(0, 1, 60) + np.repeat([0, 5, 10], 20)}).sample(frac=1, random_state=3)
    out = spc.xmr_by(df, "y", "date", ["site"], **kwargs)
    for site, g in df.groupby("site"):
        one = spc.xmr(g["y"], g["date"], **kwargs)
        got = out[out.site == site].drop(columns="site").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, one, check_dtype=False)
        assert out.attrs["summaries"][site] == one.attrs["summary"]


def test_invalid_direction_raises():
    with pytest.raises(ValueError, match="improvement"):
        spc.xmr([1, 2, 3], improvement="up")


def test_xmr_chart_renders(tmp_path):
    import matplotlib

    from pcref_eval.spc_chart import xmr_chart

    out = spc.xmr(RNORM["y_with_point15_set_to_10"], DATES, target=2.0, screen_outliers=True)
    fig = xmr_chart(out, "Test chart", "Value")
    assert isinstance(fig, matplotlib.figure.Figure)
    path = tmp_path / "xmr.png"
    fig.savefig(path)
    assert path.stat().st_size > 10_000
    texts = {t.get_text() for ax in fig.axes for t in ax.texts}
    assert "Variation" in texts and "Assurance" in texts
    matplotlib.pyplot.close(fig)
    assert not math.isnan(out["upl"].iloc[0])
