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

**Overdispersion** (Spiegelhalter 2005, section 6; Spiegelhalter et al. 2012): when ICBs vary more
than chance allows, the Poisson limits flag most of them. :func:`overdispersion` estimates the
multiplicative factor phi (mean squared z-score, z winsorised at 10% each end) and the additive
random-effects variance tau^2 = (I phi - (I - 1)) / (sum w - sum w^2 / sum w), w = 1 / s^2 (0 when
I phi <= I - 1). The table also gives limits and positions with tau^2 added to each ICB's variance
(``*_re`` columns): "unusual even allowing for the usual between-ICB variation".
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


def winsorise(z, share: float = 0.1) -> np.ndarray:
    """The k = floor(share x I) smallest values set to the (k+1)-th smallest, the k largest to the (k+1)-th largest."""
    z = np.asarray(z, dtype=float)
    k = int(np.floor(share * len(z)))
    if k == 0:
        return z.copy()
    s = np.sort(z)
    return np.clip(z, s[k], s[-k - 1])


def overdispersion(y, target: float, se, share: float = 0.1) -> tuple[float, float]:
    """Spiegelhalter's overdispersion estimates (phi, tau^2) for estimates ``y`` with standard errors ``se``."""
    y, se = np.asarray(y, dtype=float), np.asarray(se, dtype=float)
    z = winsorise((y - target) / se, share)
    n = len(z)
    phi = float(np.mean(z**2))
    w = 1 / se**2
    tau2 = max(0.0, (n * phi - (n - 1)) / (w.sum() - (w**2).sum() / w.sum()))
    return phi, tau2


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
    rate_se = np.sqrt(theta_f * PER / wide["focus_population"].to_numpy(float))
    ratio_se = 1 / np.sqrt(wide["precision"].to_numpy(float))
    phi_rate, tau2_rate = overdispersion(wide["focus_rate"], theta_f, rate_se)
    phi_ratio, tau2_ratio = overdispersion(np.log(wide["rate_ratio"]), np.log(theta_rr), ratio_se)
    rate_lim, ratio_lim, rate_re, ratio_re = {}, {}, {}, {}
    for lv in LEVELS:
        tag = f"{lv * 100:g}"
        z = stats.norm.ppf(1 - (1 - lv) / 2)
        rate_lim[lv] = poisson_rate_limits(theta_f, wide["focus_population"], lv)
        ratio_lim[lv] = ratio_limits(theta_rr, wide["precision"], lv)
        half = z * np.sqrt(rate_se**2 + tau2_rate)
        rate_re[lv] = (theta_f - half, theta_f + half)
        ratio_re[lv] = ratio_limits(theta_rr, 1 / (ratio_se**2 + tau2_ratio), lv)
        wide[f"rate_lower_{tag}"], wide[f"rate_upper_{tag}"] = rate_lim[lv]
        wide[f"ratio_lower_{tag}"], wide[f"ratio_upper_{tag}"] = ratio_lim[lv]
        wide[f"rate_lower_{tag}_re"], wide[f"rate_upper_{tag}_re"] = rate_re[lv]
        wide[f"ratio_lower_{tag}_re"], wide[f"ratio_upper_{tag}_re"] = ratio_re[lv]
    wide["rate_position"] = position(wide["focus_rate"], rate_lim)
    wide["ratio_position"] = position(wide["rate_ratio"], ratio_lim)
    wide["rate_position_re"] = position(wide["focus_rate"], rate_re)
    wide["ratio_position_re"] = position(wide["rate_ratio"], ratio_re)
    targets = {"measure": measure, "year": mha.year, "focus": focus, "reference": reference,
               "focus_rate": float(theta_f), "reference_rate": float(theta_r), "rate_ratio": float(theta_rr),
               "phi_rate": phi_rate, "tau2_rate": tau2_rate, "phi_ratio": phi_ratio, "tau2_ratio": tau2_ratio,
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
    theta_f, theta_rr = targets["focus_rate"], targets["rate_ratio"]
    z998 = stats.norm.ppf(0.999)

    def rate_re(x):
        half = z998 * np.sqrt(theta_f * PER / x + targets["tau2_rate"])
        return np.maximum(theta_f - half, 0.0), theta_f + half  # a rate is never below 0

    panels = [
        (axes[0], "focus_population", "focus_rate", theta_f,
         lambda x, lv: poisson_rate_limits(theta_f, x, lv), rate_re,
         f"{f} population (Census 2021)", f"{f} rate per 100,000", False),
        (axes[1], "precision", "rate_ratio", theta_rr,
         lambda x, lv: ratio_limits(theta_rr, x, lv),
         lambda x: ratio_limits(theta_rr, 1 / (1 / x + targets["tau2_ratio"]), 0.998),
         "Precision of the log ratio (expected detentions)", f"{f} / {r} rate ratio", True),
    ]
    for ax, xcol, ycol, theta, limits, limits_re, xlabel, ylabel, logy in panels:
        x = table[xcol].to_numpy(float)
        grid = np.geomspace(max(x.min() * 0.7, 1), x.max() * 1.3, 200)
        ax.axhline(theta, color="0.25", lw=1, label=f"England ({theta:.2f})" if logy else f"England ({theta:.1f})")
        for lv, style in ((0.95, "--"), (0.998, ":")):
            lo, hi = limits(grid, lv)
            ax.plot(grid, lo, style, color="0.45", lw=1, label=f"{lv * 100:g}% limits")
            ax.plot(grid, hi, style, color="0.45", lw=1)
        lo, hi = limits_re(grid)
        ax.plot(grid, lo, "-.", color="#fdae61", lw=1.2, label="99.8%, allowing overdispersion")
        ax.plot(grid, hi, "-.", color="#fdae61", lw=1.2)
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
        else:
            ax.set_ylim(bottom=0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7, frameon=False)
    fig.suptitle(f"{targets['measure']}, {targets['year']}: ICBs (NHS England published figures)", fontsize=10)
    fig.tight_layout()
    return fig
