"""NHS England's published 2023-24 MHA rates, reproduced row by row from published counts and Census 2021."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from pcref_eval.benchmark.nhse import (COUNT_ROUNDING_ERROR, PER, RATE_PRINT_ERROR, crude_rates, national_ratios,
                                       nhse_dsr)
from pcref_eval.benchmark.published import MhaLabelWarning, load_mha, latest


@pytest.fixture(scope="module")
def mha():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MhaLabelWarning)
        return latest(load_mha())


def test_every_published_icb_crude_rate_by_ethnicity_is_reproduced(mha):
    r = crude_rates(mha, "All detentions")
    icb = r[(r["level"] == "ICB") & r["published_rate"].notna()]
    assert len(icb) == 200 and icb["org_code"].nunique() == 42  # every non-suppressed ICB x group cell
    for row in icb.itertuples():
        assert abs(row.difference) <= row.tolerance, (row.org_code, row.group, row.rate, row.published_rate)
    # rounding of counts to 5 and of rates to 0.1 alone explains all but two White cells (Roma and ICB
    # boundary vintage in the denominator), each by less than 0.05% of the rate
    pure = COUNT_ROUNDING_ERROR / icb["population"] * PER + RATE_PRINT_ERROR + 1e-9
    outside = icb[icb["difference"].abs() > pure]
    assert len(outside) <= 2 and set(outside["group"]) <= {"White"}
    assert (outside["difference"].abs() - pure[outside.index] < 0.0005 * outside["published_rate"]).all()
    # suppressed counts give no rate, and a published rate never lacks its count
    assert icb["count"].notna().all()


def test_national_crude_rates_are_reproduced_exactly(mha):
    nat = crude_rates(mha, "All detentions").query("level == 'England'").set_index("group")
    assert np.round(nat["rate"], 1).to_dict() == nat["published_rate"].to_dict()
    assert nat.loc["Black or Black British", "published_rate"] == 239.0
    assert nat.loc["White", "published_rate"] == 69.5
    cto = crude_rates(mha, "Uses of CTOs").query("level == 'England'").set_index("group")
    assert np.round(cto["rate"], 1).to_dict() == cto["published_rate"].to_dict()


def test_national_black_white_ratios(mha):
    det = national_ratios(mha, "All detentions")
    assert round(det["standardised"], 2) == 3.54
    assert round(det["crude"], 2) == 3.44
    cto = national_ratios(mha, "Uses of CTOs")
    assert round(cto["standardised"], 2) == 7.07  # "over 7 times" (Mind)
    assert round(cto["crude_published"], 2) == 6.83


def test_nhse_dsr_interval_hand_worked():
    # two bands: counts 10 and 30 in populations 1,000 and 2,000; standard populations 3,000 and 1,000
    # w = 0.75, 0.25; r = 0.01, 0.015
    # DSR = 0.75 x 0.01 + 0.25 x 0.015 = 0.01125 -> 1,125.0 per 100,000
    # var = 0.5625 x 0.01 x 0.99 / 1000 + 0.0625 x 0.015 x 0.985 / 2000 = 5.56875e-6 + 4.6171875e-7 = 6.03046875e-6
    # half-width = 1.96 x sqrt(6.03046875e-6) x 1e5 = 1.96 x 0.00245570128 x 1e5 = 481.3175
    rate, half = nhse_dsr([10, 30], [1000, 2000], [3000, 1000])
    assert rate == pytest.approx(1125.0, abs=1e-9)
    assert half == pytest.approx(481.3175, abs=1e-3)


def test_nhse_dsr_with_one_band_is_the_binomial_interval():
    rate, half = nhse_dsr([50], [10_000], [123])
    assert rate == pytest.approx(500.0)
    assert half == pytest.approx(1.96 * np.sqrt(0.005 * 0.995 / 10_000) * 1e5)


def test_nhse_dsr_rejects_bad_input():
    with pytest.raises(ValueError):
        nhse_dsr([1, 2], [10, 0], [1, 1])
    with pytest.raises(ValueError):
        nhse_dsr([1], [10, 20], [1, 1])


def test_nhse_dsr_against_the_poisson_normal_interval_of_rates_dsr():
    """A second implementation: rates.dsr(ci_method='normal') uses the Poisson variance x / n^2 = r / n;
    NHS England's binomial variance r (1 - r) / n differs from it by the factor (1 - r) in each band."""
    import pandas as pd

    from pcref_eval.rates import dsr
    x, n, std = [12, 40, 55, 20], [4_000, 9_000, 15_000, 30_000], [10_000, 20_000, 25_000, 45_000]
    rate, half = nhse_dsr(x, n, std)
    ref = dsr(pd.DataFrame({"x": x, "n": n, "w": std}), "x", "n", standard_col="w", ci_method="normal", conf=0.95)
    assert rate == pytest.approx(ref["value"].iloc[0], rel=1e-12)
    poisson_half = ref["upper"].iloc[0] - ref["value"].iloc[0]
    r = np.array(x) / np.array(n)
    w = np.array(std) / sum(std)
    var_binomial = np.sum(w**2 * r * (1 - r) / np.array(n))
    var_poisson = np.sum(w**2 * r / np.array(n))
    assert half == pytest.approx(poisson_half * np.sqrt(var_binomial / var_poisson), rel=1e-4)
    assert half < poisson_half
