"""Released tables, figures and plain-words text of the attribution analysis.

Every table is an :class:`~pcref_eval.publish.Aggregate` with each column declared (counts, model
outputs, labels); model outputs resting on a count at or below the disclosure threshold are blanked
here before release, and the figures draw only the released tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pcref_eval.attribution.aggregate import WeightedEffect
from pcref_eval.attribution.calendar_cox import se_allowing_drift
from pcref_eval.attribution.naive import NAIVE_LABEL
from pcref_eval.publish import Aggregate

MAIN_LABEL = "Main estimate: ratio of focus/reference hazard ratios, live vs not-yet-live sites (calendar-time Cox)"
ES_LABEL = "Event study: focus/reference rate ratio, live vs not-yet-live sites (interaction-weighted)"
SECTION = "Attributing the change to PCREF"
MODEL_COLS = ["estimate", "lower", "upper", "p"]


def _blank_small(df: pd.DataFrame, count_cols: list[str], model_cols: list[str], threshold: int) -> pd.DataFrame:
    """Blank model outputs in rows where any supporting count is at or below the disclosure threshold."""
    small = (df[count_cols].to_numpy(float) <= threshold).any(axis=1)
    df = df.copy()
    df.loc[small, model_cols] = np.nan
    return df


def _row(label: str, design: str, eff: WeightedEffect) -> dict:
    return {"estimator": label, "design": design, "estimate": eff.estimate, "lower": eff.lower,
            "upper": eff.upper, "p": eff.p}


def headline_table(att, threshold: int) -> Aggregate:
    """The PCREF effect on the focus/reference detention hazard ratio: main estimate, event study, naive.

    Counts: focus-group first detentions while the site was live and while it was not (yet) live.
    """
    rows = [
        _row(MAIN_LABEL, "sites live vs sites not yet live, same calendar quarter", att.main_effect),
        _row(ES_LABEL, "sites live vs sites not yet live, same calendar quarter", att.event_study.effect),
        _row(NAIVE_LABEL, "each site after vs before its own go-live", att.naive),
    ]
    df = pd.DataFrame(rows)
    df["focus_detentions_live"] = att.counts["focus_live"]
    df["focus_detentions_not_live"] = att.counts["focus_not_live"]
    counts = ["focus_detentions_live", "focus_detentions_not_live"]
    df = _blank_small(df, counts, MODEL_COLS, threshold)
    return Aggregate(df, counts=counts, model=MODEL_COLS, labels=["estimator", "design"])


def event_study_table(es, threshold: int) -> Aggregate:
    """Change in the focus/reference rate ratio by quarter since go-live (quarter -1 = 1 by definition)."""
    p = es.profile
    z = 1.959963984540054
    df = pd.DataFrame({
        "quarters_since_go_live": p["event_quarter"].astype(int).to_numpy(),
        "focus_events": p["focus_events"].to_numpy(int),
        "reference_events": p["reference_events"].to_numpy(int),
        "ratio_change": np.exp(p["log_estimate"].to_numpy()),
        "lower": np.where(p["se"] > 0, np.exp(p["log_estimate"] - z * p["se"]), np.nan),
        "upper": np.where(p["se"] > 0, np.exp(p["log_estimate"] + z * p["se"]), np.nan),
    })
    counts = ["focus_events", "reference_events"]
    df = _blank_small(df, counts, ["ratio_change", "lower", "upper"], threshold)
    return Aggregate(df, counts=counts, model=["ratio_change", "lower", "upper"], labels=["quarters_since_go_live"])


def event_year_table(att, threshold: int) -> Aggregate:
    """Calendar-time Cox: PCREF effect on the focus/reference hazard ratio by year since go-live (intervals with
    the same site-drift allowance as the main estimate's)."""
    t = att.cox.by_event_year
    z = 1.959963984540054
    se = se_allowing_drift(t["se"].to_numpy(float), t["drift_ss"].to_numpy(float), att.settings.site_drift_sd_per_year)
    df = pd.DataFrame({
        "years_since_go_live": pd.Series([f"{y}" if y < t["event_year"].max() else f"{y}+" for y in t["event_year"]],
                                         dtype=object),
        "focus_detentions": t["focus_events"].to_numpy(int),
        "estimate": np.exp(t["log_estimate"].to_numpy()),
        "lower": np.exp(t["log_estimate"].to_numpy(float) - z * se),
        "upper": np.exp(t["log_estimate"].to_numpy(float) + z * se),
    })
    df = _blank_small(df, ["focus_detentions"], ["estimate", "lower", "upper"], threshold)
    return Aggregate(df, counts=["focus_detentions"], model=["estimate", "lower", "upper"],
                     labels=["years_since_go_live"])


def _plain_log_axis(axis) -> None:
    """Log scale with plain decimal tick labels (0.5, 1, 2) instead of powers of ten."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    axis.axes.set_xscale("log") if axis.axis_name == "x" else axis.axes.set_yscale("log")
    axis.set_major_locator(FixedLocator([0.125, 0.25, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.25, 1.5, 2, 3, 4, 8]))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(NullLocator())


def event_study_figure(released: pd.DataFrame, title: str):
    """Event-study plot from a released event-study table: ratio change and 95% CI by quarter since go-live."""
    import matplotlib.pyplot as plt

    from pcref_eval.style import apply_style

    apply_style()
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    d = released.dropna(subset=["ratio_change"])
    if d.empty:  # not estimable, or every estimate withheld for small counts
        ax.text(0.5, 0.5, "No estimate released (not estimable, or too few events)", ha="center", va="center",
                transform=ax.transAxes, fontsize=9, color="#425563")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        return fig
    k = d["quarters_since_go_live"].to_numpy(float)
    y = d["ratio_change"].to_numpy(float)
    lo = np.where(np.isnan(d["lower"]), y, d["lower"])
    hi = np.where(np.isnan(d["upper"]), y, d["upper"])
    pre = k < 0
    for mask, colour, label in ((pre, "#768692", "before go-live (pre-trend check)"),
                                (~pre, "#005EB8", "after go-live")):
        ax.errorbar(k[mask], y[mask], yerr=[y[mask] - lo[mask], hi[mask] - y[mask]], fmt="o", color=colour,
                    capsize=2, label=label)
    ax.axhline(1.0, color="black", lw=0.8)
    ax.axvline(-0.5, color="#DA291C", lw=0.8, ls="--")
    _plain_log_axis(ax.yaxis)
    ax.set_xlabel("Quarters since go-live (-1 = reference)")
    ax.set_ylabel("Change in focus/reference ratio")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, frameon=False, loc="best")
    fig.tight_layout()
    return fig


def headline_figure(released: pd.DataFrame, truth: float | None = None):
    """Forest plot of the released headline table (main, event study, naive)."""
    import matplotlib.pyplot as plt

    from pcref_eval.style import apply_style

    apply_style()
    fig, ax = plt.subplots(figsize=(7.5, 2.4))
    d = released.reset_index(drop=True)
    y = np.arange(len(d))[::-1]
    colours = ["#005EB8", "#009639", "#DA291C"]
    for i, r in d.iterrows():
        if np.isnan(r["estimate"]):
            continue
        ax.errorbar([r["estimate"]], [y[i]], xerr=[[r["estimate"] - r["lower"]], [r["upper"] - r["estimate"]]],
                    fmt="o", color=colours[i % 3], capsize=3)
    ax.axvline(1.0, color="black", lw=0.8)
    _plain_log_axis(ax.xaxis)
    short = {MAIN_LABEL: "Main estimate\n(calendar-time Cox)", ES_LABEL: "Event study\n(rate ratio)",
             NAIVE_LABEL: "Naive before/after\n(no comparison sites)"}
    ax.set_yticks(y, [short.get(s, s) for s in d["estimator"]], fontsize=8)
    ax.set_xlabel("Ratio of focus/reference hazard ratios attributed to PCREF (log scale)")
    fig.tight_layout()
    return fig


def design_text(att) -> str:
    """The design in plain words: what is compared with what and why sites not yet live are the yardstick."""
    roles = att.site_roles
    live = sorted(s for s, r in roles.items() if r == "live in window")
    never = sorted(s for s, r in roles.items() if r == "never live in window")
    cohorts = sorted({att.design.adoption_cohort(s) for s in live})
    return (
        "**What is compared with what.** The gap in first detentions between the PCREF focus groups and the "
        "reference group moves on the calendar for reasons other than PCREF (NHS England's national Black/White "
        "detention rate ratio went 4.2, 4.4, 4.6, 4.7, 3.5, 3.54, 4.0 from 2018-19 to 2024-25; COVID, Mental "
        "Health Act reform and better ethnicity recording all move it). A site's own before/after comparison "
        "credits PCREF with all of that. Here each site's gap after go-live is compared with the gap at the same "
        "time in sites that were **not yet live**, which show what happened to the gap without PCREF in the same "
        f"calendar quarter. {len(live)} site(s) go live within the window ({len(cohorts)} adoption month(s): "
        f"{', '.join(cohorts) or 'none'}); {len(never)} site(s) are never live within it "
        f"({', '.join(never) or 'none'}); before its go-live every site is itself a comparison site."
        f"{_no_comparison_text(att)}\n\n"
        "**Main estimate.** A Cox model of time to first detention on calendar time, with a separate baseline "
        "hazard for every site (so anything that changes every group's detention at a site on a given day is "
        "absorbed), each site's own focus/reference hazard ratio, one focus/reference term per calendar quarter "
        "(the national path, estimated from the sites not yet live) and one PCREF term per adoption month and "
        "period since go-live (each quarter of the first year, then each year), averaged with weights equal to "
        "the focus groups' time at risk (a triple difference in hazards). Adjusted for age, sex and deprivation.\n\n"
        "**Assumptions.** (1) Parallel trends: without PCREF, each site's focus/reference gap would have moved "
        "like the not-yet-live sites' gap, quarter by quarter; (2) no anticipation: nothing changed the gap "
        "before go-live; (3) proportional hazards within a quarter. The event study below tests (1)-(2) before "
        "go-live: its pre-go-live points should sit around 1.\n\n"
        f"{_drift_text(att)}\n\n"
        "**The naive comparison** (each site after vs before its own go-live, no comparison sites) is shown "
        "beside the main estimate: where the two differ, the naive one has absorbed calendar-time change."
    )


def _drift_text(att) -> str:
    """How the main estimate's interval allows for sites' gaps drifting on their own (the config's assumption)."""
    sd = att.settings.site_drift_sd_per_year
    if sd == 0:
        return ("**The interval** of the main estimate is the model's own: it assumes that no site's gap drifts "
                "away from the comparison sites' over the years (the config sets no allowance for site drift, "
                "`attribution.site_drift_sd_per_year: 0`), and is too narrow if one does.")
    return ("**The interval** of the main estimate (and of its years since go-live) also allows for each site's "
            "own gap drifting over the years for reasons other than PCREF, which parallel trends assume away site "
            f"by site: a steady drift of the focus/reference hazard ratio of about {sd:g} a year on the log scale "
            "(the standard deviation across sites, set in the config as "
            "`attribution.site_drift_sd_per_year`). With a handful of sites such drift does not average out, and the "
            "model alone, which treats people as independent, gives an interval that is too narrow "
            "(docs/simulation-study.md).")


def _no_comparison_text(att) -> str:
    """The sentence saying from when every site is live, so nothing after it is compared (empty otherwise)."""
    if not att.cox.dropped_quarters:
        return ""
    first = pd.Period(att.cox.dropped_quarters[0], freq="M").strftime("%B %Y")
    return (f" From {first} every site is live, so no site shows the gap without PCREF: follow-up from then on "
            "is not used, and the effect below is PCREF's effect in the months before it (at each site, the "
            "months between its own go-live and then).")


def pretrend_text(es, what: str = "first detention") -> str:
    """One sentence on the pre-trend test of an event study (or why the event study is not estimable)."""
    if not getattr(es, "estimable", True):
        return (f"Event study ({what}) {es.note}: no event-time estimates, pre-trend check or average change are "
                "reported; the main estimate stands without this check.")
    if not np.isfinite(es.pretrend_p):
        return f"Pre-trend check ({what}): no quarters before go-live to test."
    p = "< 0.001" if es.pretrend_p < 0.001 else f"= {es.pretrend_p:.3f}"
    verdict = ("no evidence against parallel pre-trends" if es.pretrend_p >= 0.05
               else "evidence of diverging pre-trends: read the effect with caution")
    text = (f"Pre-trend check ({what}): joint Wald test that the {es.pretrend_df} pre-go-live quarters equal "
            f"the reference quarter, chi-square = {es.pretrend_chi2:.2f} on {es.pretrend_df} df, p {p}: {verdict}.")
    if getattr(es, "cohort_pretrend_df", 0) and np.isfinite(es.cohort_pretrend_p):
        pc = "< 0.001" if es.cohort_pretrend_p < 0.001 else f"= {es.cohort_pretrend_p:.3f}"
        text += (f" With the pre-go-live quarters of each adoption cohort tested separately: chi-square = "
                 f"{es.cohort_pretrend_chi2:.2f} on {es.cohort_pretrend_df} df, p {pc}.")
    return text


def headline_text(released: pd.DataFrame) -> str:
    """Plain-words summary of the released headline table (main estimate beside the naive one)."""
    d = released.set_index("estimator")
    main, naive = d.loc[MAIN_LABEL], d.loc[NAIVE_LABEL]

    def fmt(r):
        if np.isnan(r["estimate"]):
            return "not estimable or not released (too few detentions)"
        return f"{r['estimate']:.2f} (95% CI {r['lower']:.2f} to {r['upper']:.2f})"

    return (f"PCREF effect on the focus/reference hazard ratio of first detention: **{fmt(main)}** against sites "
            f"not yet live (below 1 = the gap narrowed because of PCREF). The naive before/after comparison gives "
            f"{fmt(naive)}; it also contains every calendar-time change of the gap.")
