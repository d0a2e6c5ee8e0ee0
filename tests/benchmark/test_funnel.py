"""Spiegelhalter funnel limits: hand-worked Poisson quantiles, large-sample limits, ICB positions."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from pcref_eval.benchmark.funnel import (icb_funnel, poisson_quantile_interpolated, poisson_rate_limits, position,
                                        ratio_limits)
from pcref_eval.benchmark.published import MhaLabelWarning, load_mha, latest


def _cdf(k: int, mu: float) -> float:
    return sum(math.exp(-mu) * mu**i / math.factorial(i) for i in range(k + 1))


def test_interpolated_poisson_quantile_by_hand():
    # E = 4, p = 0.975: F(7) = 0.948866, F(8) = 0.978637, so r = 8 and
    # the limit is 8 - (F(8) - 0.975) / (F(8) - F(7))
    f7, f8 = _cdf(7, 4.0), _cdf(8, 4.0)
    assert f7 < 0.975 < f8
    expected = 8 - (f8 - 0.975) / (f8 - f7)
    assert poisson_quantile_interpolated(4.0, 0.975) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(7.8786, abs=1e-3)
    # lower limit: F(0) = 0.0183 < 0.025 < F(1) = 0.0916 -> 1 - (F(1) - 0.025) / (F(1) - F(0))
    f0, f1 = _cdf(0, 4.0), _cdf(1, 4.0)
    assert poisson_quantile_interpolated(4.0, 0.025) == pytest.approx(1 - (f1 - 0.025) / (f1 - f0), rel=1e-12)


def test_rate_limits_approach_the_normal_approximation_for_large_populations():
    theta, n = 239.0, 5_000_000.0
    for level, z in ((0.95, 1.959964), (0.998, 3.090232)):
        lo, hi = poisson_rate_limits(theta, n, level)
        se = math.sqrt(theta / 1e5 * n) / n * 1e5
        assert lo == pytest.approx(theta - z * se, rel=2e-3)
        assert hi == pytest.approx(theta + z * se, rel=2e-3)


def test_ratio_limits_and_positions():
    lo, hi = ratio_limits(3.0, 100.0, 0.95)
    assert lo == pytest.approx(3.0 * math.exp(-1.959964 * 0.1), rel=1e-6)
    assert hi == pytest.approx(3.0 * math.exp(1.959964 * 0.1), rel=1e-6)
    limits = {0.95: (np.array([2.0] * 5), np.array([4.0] * 5)), 0.998: (np.array([1.5] * 5), np.array([5.0] * 5))}
    got = position([6.0, 4.5, 3.0, 1.8, 1.0], limits)
    assert list(got) == ["above 99.8%", "above 95%", "within", "below 95%", "below 99.8%"]


def test_icb_funnel_from_the_published_file():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MhaLabelWarning)
        mha = latest(load_mha())
    table, targets = icb_funnel(mha, "All detentions")
    assert targets["rate_ratio"] == pytest.approx(3.44, abs=0.005)
    assert targets["icbs_shown"] + targets["icbs_left_out"] == 42
    assert len(table) == targets["icbs_shown"] >= 38
    # the published South East London rate (QKK) sits above England's Black rate's 99.8% limit
    kk = table.set_index("org_code").loc["QKK"]
    assert kk["focus_rate"] == 294.5 and kk["rate_position"] == "above 99.8%"
    # limits widen as populations shrink
    t = table.sort_values("focus_population")
    width = (t["rate_upper_95"] - t["rate_lower_95"]).to_numpy()
    assert np.all(np.diff(width) <= 1e-9)
    with pytest.raises(LookupError):
        icb_funnel(mha, "Uses of CTOs")  # 2023-24 publishes CTOs by ethnicity only for England


def test_winsorised_overdispersion_by_hand():
    from pcref_eval.benchmark.funnel import overdispersion, winsorise
    z = np.array([-5.0, -1.0, -0.5, 0.0, 0.2, 0.4, 0.6, 1.0, 2.0, 9.0])
    # I = 10, 10% each end: k = 1; -5 -> -1 (2nd smallest), 9 -> 2 (2nd largest)
    assert winsorise(z).tolist() == [-1.0, -1.0, -0.5, 0.0, 0.2, 0.4, 0.6, 1.0, 2.0, 2.0]
    se = np.array([1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 1.0, 1.0])
    y = 10 + z * se  # so that (y - 10) / se = z
    phi, tau2 = overdispersion(y, 10.0, se)
    # phi = (1 + 1 + 0.25 + 0 + 0.04 + 0.16 + 0.36 + 1 + 4 + 4) / 10 = 1.181
    assert phi == pytest.approx(1.181)
    # w = 1 / se^2: six 1s and four 0.25s; sum w = 7, sum w^2 = 6.25; tau2 = (11.81 - 9) / (7 - 6.25 / 7)
    assert tau2 == pytest.approx(2.81 / (7 - 6.25 / 7))


def test_no_overdispersion_when_units_vary_by_chance_alone():
    from pcref_eval.benchmark.funnel import overdispersion
    rng = np.random.default_rng(12)
    n = rng.integers(5_000, 200_000, size=300).astype(float)
    theta = 240.0
    y = rng.poisson(theta / 1e5 * n) / n * 1e5
    phi, tau2 = overdispersion(y, theta, np.sqrt(theta * 1e5 / n))
    # winsorising shrinks phi below 1 under the null (Spiegelhalter 2005); no between-unit variance is found
    assert 0.5 < phi < 1.1 and tau2 == 0.0


def test_rate_funnel_never_plots_below_zero():
    """The overdispersed 99.8% lower limit of a rate is clipped at 0 and the rate axis starts at 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pcref_eval.benchmark.funnel import plot_funnels

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MhaLabelWarning)
        mha = latest(load_mha())
    table, targets = icb_funnel(mha, "All detentions")
    fig = plot_funnels(table, targets, highlight=["QKK"])
    rate_ax = fig.axes[0]
    assert rate_ax.get_ylim()[0] == 0
    assert min(np.nanmin(line.get_ydata()) for line in rate_ax.get_lines()) >= 0
    plt.close(fig)
