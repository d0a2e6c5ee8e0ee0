"""Funnel plots of ICBs' published detention rates (Spiegelhalter 2005).

Spiegelhalter DJ. Funnel plots for comparing institutional performance. Stat Med 2005;24:1185-202.

- **Rate** of the focus group (e.g. Black or Black British detentions per 100,000) against the
  group's population: exact Poisson limits around England's rate theta. For an ICB with population
  n the expected count is E = theta n; the limit for probability p is the Poisson(E) p-quantile r
  interpolated as r - (F(r) - p) / (F(r) - F(r - 1)) (Spiegelhalter 2005, appendix A.1.1), divided by n.
- **Rate ratio** focus/reference (e.g. Black/White) against its precision: on the log scale,
  theta_RR exp(+/- z / sqrt(precision)), precision = 1 / (1/E_f + 1/E_r), the inverse variance of
  the log ratio when both groups have England's rates (E = England rate x ICB population).
  This makes the limits a smooth function of one x-axis value.

Limits at 95% (z = 1.96) and 99.8% (z = 3.09), as in NHS and PHE practice. An ICB is placed
'above 99.8%', 'above 95%', 'within', 'below 95%' or 'below 99.8%'.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from pcref_eval.benchmark.census import england_population
from pcref_eval.benchmark.nhse import FOCUS, PER, REFERENCE, crude_rates
from pcref_eval.benchmark.published import MhaAnnual

LEVELS = (0.95, 0.998)
POSITIONS = ["above 99.8%", "above 95%", "within", "below 95%", "below 99.8%"]


def poisson_quantile_interpolated(expected, p: float) -> np.ndarray:
    """Spiegelhalter's interpolated Poisson quantile: r - (F(r) - p) / (F(r) - F(r - 1)), r = F^-1(p)."""
    e = np.asarray(expected, dtype=float)
    r = stats.poisson.ppf(p, e)
    f_r = stats.poisson.cdf(r, e)
    f_r1 = stats.poisson.cdf(r - 1, e)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(f_r > f_r1, (f_r - p) / (f_r - f_r1), 0.0)
    return np.maximum(r - alpha, 0.0)


def poisson_rate_limits(theta: float, population, level: float = 0.95, per: float = PER
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper funnel limits for a rate per ``per`` around ``theta`` (a rate per ``per``)."""
    n = np.asarray(population, dtype=float)
    e = theta / per * n
    a = (1 - level) / 2
    return (poisson_quantile_interpolated(e, a) / n * per, poisson_quantile_interpolated(e, 1 - a) / n * per)


def ratio_limits(theta: float, precision, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Funnel limits for a ratio around ``theta``: theta exp(-/+ z / sqrt(precision)) (log-normal)."""
    z = stats.norm.ppf(1 - (1 - level) / 2)
    s = 1 / np.sqrt(np.asarray(precision, dtype=float))
    return theta * np.exp(-z * s), theta * np.exp(z * s)


def position(value, limits: dict[float, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Where each value sits against the 95% and 99.8% limits (one of :data:`POSITIONS`; '' if missing)."""
    v = np.asarray(value, dtype=float)
    lo95, hi95 = limits[0.95]
    lo998, hi998 = limits[0.998]
    out = np.full(v.shape, "within", dtype=object)
    out[v > hi95] = "above 95%"
    out[v > hi998] = "above 99.8%"
    out[v < lo95] = "below 95%"
    out[v < lo998] = "below 99.8%"
    out[np.isnan(v)] = ""
    return out


def icb_funnel(mha: MhaAnnual, measure: str = "All detentions", focus: str = FOCUS,
               reference: str = REFERENCE) -> tuple[pd.DataFrame, dict]:
    """Every ICB's focus-group rate and focus/reference rate ratio with funnel limits and position.

    Returns (table, targets). The table has one row per ICB with published counts for both groups
    (suppressed cells leave the ICB out): org_code, org_name, focus_count, focus_population,
    focus_rate (the published crude rate), reference_count, reference_population, reference_rate, rate_ratio, precision, and
    for each level (95, 99.8) the rate and ratio limits, plus rate_position and ratio_position.
    ``targets`` holds England's crude focus rate and rate ratio (the funnels' centre lines).
    """
    rates = crude_rates(mha, measure)
    if not (rates["level"] == "ICB").any():
        raise LookupError(f"{mha.file.name} ({mha.year}): no ICB rows by ethnicity for '{measure}'")
    eng = rates[rates["level"] == "England"].set_index("group")
    pop = england_population()
    theta_f = eng.at[focus, "count"] / pop[focus] * PER
    theta_r = eng.at[reference, "count"] / pop[reference] * PER
    icb = rates[rates["level"] == "ICB"]
    icb = icb.assign(rate=icb["published_rate"])  # from NHS England's unrounded counts
    wide = (icb[icb["group"] == focus].set_index("org_code")[["org_name", "count", "population", "rate"]]
            .add_prefix("focus_").join(icb[icb["group"] == reference].set_index("org_code")
                                       [["count", "population", "rate"]].add_prefix("reference_"), how="inner"))
    wide = wide.rename(columns={"focus_org_name": "org_name"})
    wide = wide[wide["focus_rate"].notna() & (wide["reference_rate"] > 0)].copy()
    wide["rate_ratio"] = wide["focus_rate"] / wide["reference_rate"]
    e_f = theta_f / PER * wide["focus_population"]
    e_r = theta_r / PER * wide["reference_population"]
    wide["precision"] = 1 / (1 / e_f + 1 / e_r)
    theta_rr = theta_f / theta_r
    rate_lim, ratio_lim = {}, {}
    for lv in LEVELS:
        tag = f"{lv * 100:g}"
        rate_lim[lv] = poisson_rate_limits(theta_f, wide["focus_population"], lv)
        ratio_lim[lv] = ratio_limits(theta_rr, wide["precision"], lv)
        wide[f"rate_lower_{tag}"], wide[f"rate_upper_{tag}"] = rate_lim[lv]
        wide[f"ratio_lower_{tag}"], wide[f"ratio_upper_{tag}"] = ratio_lim[lv]
    wide["rate_position"] = position(wide["focus_rate"], rate_lim)
    wide["ratio_position"] = position(wide["rate_ratio"], ratio_lim)
    targets = {"measure": measure, "year": mha.year, "focus": focus, "reference": reference,
               "focus_rate": float(theta_f), "reference_rate": float(theta_r), "rate_ratio": float(theta_rr),
               "icbs_shown": int(len(wide)),
               "icbs_left_out": int(icb["org_code"].nunique() - len(wide))}
    return wide.reset_index().sort_values("org_code").reset_index(drop=True), targets


def icb_measures_by_ethnicity(mha: MhaAnnual) -> list[str]:
    """Measures with ICB rows by ethnicity in this file (where an ICB funnel can be drawn)."""
    d = mha.data
    rows = d[(d["org_level"] == "ICB") & (d["demographic"] == "Ethnicity") & (d["subcategory"] == "All")]
    return sorted(rows["measure"].unique())


def plot_funnels(table: pd.DataFrame, targets: dict, highlight: list[str] | tuple[str, ...] = ()):
    """Two panels: focus rate vs population, focus/reference ratio vs precision; ``highlight`` ICBs marked."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    short = {"Black or Black British": "Black", "Asian or Asian British": "Asian", "Other Ethnic Groups": "Other"}
    f = short.get(targets["focus"], targets["focus"])
    r = short.get(targets["reference"], targets["reference"])
    panels = [
        (axes[0], "focus_population", "focus_rate", targets["focus_rate"],
         lambda x, lv: poisson_rate_limits(targets["focus_rate"], x, lv),
         f"{f} population (Census 2021)", f"{f} rate per 100,000", False),
        (axes[1], "precision", "rate_ratio", targets["rate_ratio"],
         lambda x, lv: ratio_limits(targets["rate_ratio"], x, lv),
         "Precision of the log ratio (expected detentions)", f"{f} / {r} rate ratio", True),
    ]
    for ax, xcol, ycol, theta, limits, xlabel, ylabel, logy in panels:
        x = table[xcol].to_numpy(float)
        grid = np.geomspace(max(x.min() * 0.7, 1), x.max() * 1.3, 200)
        ax.axhline(theta, color="0.25", lw=1, label=f"England ({theta:.2f})" if logy else f"England ({theta:.1f})")
        for lv, style in ((0.95, "--"), (0.998, ":")):
            lo, hi = limits(grid, lv)
            ax.plot(grid, lo, style, color="0.45", lw=1, label=f"{lv * 100:g}% limits")
            ax.plot(grid, hi, style, color="0.45", lw=1)
        hl = table["org_code"].isin(list(highlight)).to_numpy()
        ax.scatter(x[~hl], table[ycol].to_numpy(float)[~hl], s=18, color="#4575b4", alpha=0.8, label="ICB")
        if hl.any():
            ax.scatter(x[hl], table[ycol].to_numpy(float)[hl], s=60, color="#d73027", marker="D", label="Site's ICB",
                       zorder=3)
            for _, row in table[hl].iterrows():
                ax.annotate(row["org_code"], (row[xcol], row[ycol]), xytext=(5, 4), textcoords="offset points",
                            fontsize=8, color="#d73027")
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7, frameon=False)
    fig.suptitle(f"{targets['measure']}, {targets['year']}: ICBs (NHS England published figures)", fontsize=10)
    fig.tight_layout()
    return fig
