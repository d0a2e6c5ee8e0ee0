"""NHS England's MHA rates, reproduced from published counts and Census 2021 denominators.

- :func:`crude_rates`: crude rate per 100,000 by ethnic group for England and every ICB, beside the
  published ``CrudeRate`` and the largest difference the published rounding allows
  (:func:`rounding_tolerance`).
- :func:`national_ratios`: England's Black/White rate ratios, standardised (from ``StdRate``) and crude.
- :func:`nhse_dsr`: NHS England's directly standardised rate and its 95% interval,
  DSR = sum_i w_i r_i and half-width 1.96 sqrt(sum_i w_i^2 r_i (1 - r_i) / n_i), with r_i = x_i / n_i the
  rate in age-sex band i, n_i its population and w_i the standard (England) population share of the band.
  This is a normal approximation with a binomial variance (``Ethnicity - Detentions Standardisation.sql``),
  not the Dobson interval of :func:`pcref_eval.rates.dsr`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from pcref_eval.benchmark.census import england_population, icb_population
from pcref_eval.benchmark.published import BROAD_GROUPS, NATIONAL, MhaAnnual

PER = 100_000
#: NHS England rounds sub-national counts to the nearest 5: a published count is within 2 of the true one.
COUNT_ROUNDING_ERROR = 2
#: Published rates have one decimal place.
RATE_PRINT_ERROR = 0.05
#: ICB denominators: the shipped Census file is built from LSOAs on 2024 ICB boundaries and counts Roma in
#: White; NHS England's own ICB populations differ from it by up to this share (measured on 2023-24: two White
#: cells of 200 need it, by 0.03% and 0.05% of the rate).
DENOMINATOR_RELATIVE_ERROR = 0.001
FOCUS, REFERENCE = "Black or Black British", "White"


def rounding_tolerance(population, rate=0.0, rounded: bool = True) -> np.ndarray:
    """Largest |rate from published count - published rate| that rounding explains (per 100,000).

    A count rounded to the nearest 5 is within 2 of the true count, which moves the rate by at most
    2 / population x 100,000; the published rate is printed to 0.1 (error 0.05). For ICBs (``rounded``)
    the denominator adds up to :data:`DENOMINATOR_RELATIVE_ERROR` x rate. National counts are not
    rounded and the national denominators are NHS England's own mapping (``rounded=False``).
    """
    pop = np.asarray(population, dtype=float)
    if not rounded:
        return np.full(pop.shape, RATE_PRINT_ERROR + 1e-9)
    return (COUNT_ROUNDING_ERROR / pop * PER + RATE_PRINT_ERROR + DENOMINATOR_RELATIVE_ERROR
            * np.abs(np.asarray(rate, dtype=float)) + 1e-9)


def crude_rates(mha: MhaAnnual, measure: str = "All detentions") -> pd.DataFrame:
    """Crude rates per 100,000 by broad ethnic group, England and each ICB, from published counts.

    Columns: level ('England' or 'ICB'), org_code, org_name, group, count (published; NaN when
    suppressed), population (Census 2021, see :mod:`~pcref_eval.benchmark.census`), rate,
    published_rate, difference (rate - published_rate), tolerance (:func:`rounding_tolerance`).
    ICB rows without a Census population (NHS England's 'UNKNOWN' residence) are left out.
    """
    nat = mha.select(measure, "Ethnicity", NATIONAL)
    nat = nat[nat["breakdown"].isin(BROAD_GROUPS)].rename(columns={"breakdown": "group"})
    nat["population"] = nat["group"].map(england_population()).astype(float)
    nat["level"], nat["rounded"] = "England", False
    icb = mha.select(measure, "Ethnicity", "ICB")
    icb = icb[icb["breakdown"].isin(BROAD_GROUPS)].rename(columns={"breakdown": "group"})
    icb = icb.merge(icb_population()[["org_code", "group", "population"]], on=["org_code", "group"], how="inner")
    icb["level"], icb["rounded"] = "ICB", True
    out = pd.concat([nat, icb], ignore_index=True)
    out["rate"] = out["count"] / out["population"] * PER
    out["published_rate"] = out["crude_rate"]
    out["difference"] = out["rate"] - out["published_rate"]
    out["tolerance"] = np.where(out["rounded"], rounding_tolerance(out["population"], out["published_rate"]),
                                rounding_tolerance(out["population"], rounded=False))
    cols = ["level", "org_code", "org_name", "group", "count", "population", "rate", "published_rate",
            "difference", "tolerance", "line"]
    return out[cols].reset_index(drop=True)


def national_ratios(mha: MhaAnnual, measure: str = "All detentions", focus: str = FOCUS,
                    reference: str = REFERENCE) -> dict[str, float]:
    """England's focus/reference rate ratios: standardised (published StdRate), crude (reproduced and published)."""
    nat = mha.select(measure, "Ethnicity", NATIONAL).set_index("breakdown")
    if focus not in nat.index or reference not in nat.index:
        raise KeyError(f"{mha.file.name}: no national '{measure}' rows for {focus!r} and {reference!r}")
    pop = england_population()
    crude = (nat.at[focus, "count"] / pop[focus]) / (nat.at[reference, "count"] / pop[reference])
    return {"standardised": nat.at[focus, "std_rate"] / nat.at[reference, "std_rate"],
            "crude": float(crude),
            "crude_published": nat.at[focus, "crude_rate"] / nat.at[reference, "crude_rate"]}


def nhse_dsr(counts: Sequence[float], populations: Sequence[float], standard: Sequence[float],
             per: float = PER, z: float = 1.96) -> tuple[float, float]:
    """NHS England's directly standardised rate and the half-width of its interval, per ``per``.

    ``counts``, ``populations`` and ``standard`` are per age-sex band (NHS England: 6 age bands x
    2 sexes, standard = England's Census 2021 population). Returns (DSR, half-width) with
    DSR = per sum_i w_i r_i and half-width = per z sqrt(sum_i w_i^2 r_i (1 - r_i) / n_i), w_i = P_i / sum P.
    """
    x = np.asarray(counts, dtype=float)
    n = np.asarray(populations, dtype=float)
    p = np.asarray(standard, dtype=float)
    if not (x.shape == n.shape == p.shape):
        raise ValueError("counts, populations and standard need one value per age-sex band")
    if np.any(n <= 0) or np.any(p < 0) or np.any(x < 0):
        raise ValueError("populations must be positive, counts and standard non-negative")
    r = x / n
    w = p / p.sum()
    return float(per * np.sum(w * r)), float(per * z * np.sqrt(np.sum(w**2 * r * (1 - r) / n)))
