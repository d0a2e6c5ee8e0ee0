"""Implementation effect over time: interrupted time series of each measure's group ratio around go-live.

For every grouped ratio measure (rates and proportions), a segmented Poisson regression
(:func:`pcref_eval.its.segmented_poisson`) is fitted to the monthly counts of the combined PCREF
focus group and the reference group, with the log denominator as offset (catchment person-years,
occupied bed days, inpatients, referrals or responses) and every term interacted with group::

    log E[y_gt] = log(denominator_gt) + b0 + b1 t + b2 post_t + b3 (t - t0) post_t
                  + group x (g0 + g1 t + g2 post_t + g3 (t - t0) post_t)

exp(g2) is the **level change at go-live in the focus/reference ratio** (the implementation effect
on the gap; 1 = no change) and exp(g3) the change in the ratio's monthly trend. Standard errors are
autocorrelation-robust (Driscoll-Kraay / Newey-West, small-sample t intervals; see
:mod:`pcref_eval.its` for their known under-coverage in short series). The go-live month is the first
post-implementation month. The counterfactual is the pre-go-live trend of each group (and of their
ratio) continued.

Not modelled: mean changes (not counts; compare the board's difference series instead) and overall
data-quality measures (no group ratio). A measure is also skipped, with a note, when the series has
fewer than :data:`MIN_MONTHS_EACH_SIDE` months on either side of go-live or no events in a group.

The notebook calls::

    from pcref_eval.measures import publish_implementation_effect
    publish_implementation_effect(session, data=measures)

which releases the table of effects (event counts before/after declared, so disclosure control
applies and blanks estimates resting on redacted counts), a forest plot of the level changes and,
per measure, a chart of the observed monthly rates and ratio with the fitted segments and the
counterfactual. Observed monthly points are drawn only for months whose counts would be released
unredacted; the fitted and counterfactual lines are model estimates.

Truth recovery on the synthetic generator (``pcref-eval synth``, 50 sites x 2,000,000 people, seed 1):
detention level change pooled over sites 0.73 (truth 0.70 on the hazard; depletion of the
at-risk pool and s2-then-s3 episodes make the population count ratio slightly less affected);
restrictive intervention incidents per bed day 0.79 (truth 0.80); share of the 50 site intervals covering
the truth 78% and 90% (HAC intervals are somewhat optimistic, as :mod:`pcref_eval.its` documents). On
the test site (60,000 people, seed 11): detentions 0.735 (0.636 to 0.850), restrictive interventions
0.902 (0.764 to 1.064).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pcref_eval.estimability import diverged_terms
from pcref_eval.measures.compute import COMBINED_FOCUS
from pcref_eval.measures.definitions import MeasureDefinition
from pcref_eval.publish import Aggregate
from pcref_eval.style import apply_style, group_colours

__all__ = [
    "MIN_MONTHS_EACH_SIDE",
    "ImplementationEffect",
    "its_frame",
    "implementation_effect",
    "implementation_effects",
    "effects_table",
    "implementation_chart",
    "forest_chart",
    "publish_implementation_effect",
]

MIN_MONTHS_EACH_SIDE = 6
SECTION = "Implementation effect"


@dataclass
class ImplementationEffect:
    """The ITS fit of one measure: level and slope change in the focus/reference ratio."""

    definition: MeasureDefinition
    go_live: date
    frame: pd.DataFrame  # monthly modelling frame (restricted)
    result: object | None  # pcref_eval.its.ITSResult
    note: str = ""

    def _term(self, term: str) -> pd.Series | None:
        if self.result is None:
            return None
        t = self.result.table
        row = t[t["term"] == term]
        return row.iloc[0] if len(row) else None

    @property
    def level_change(self) -> tuple[float, float, float, float]:
        """(rate ratio, lower, upper, p) of the level change at go-live in the focus/reference ratio."""
        r = self._term("group:level_change")
        return (np.nan,) * 4 if r is None else (float(r["rr"]), float(r["rr_lower"]), float(r["rr_upper"]), float(r["p"]))

    @property
    def slope_change(self) -> tuple[float, float, float, float]:
        """(ratio per month, lower, upper, p) of the change in the focus/reference ratio's monthly trend."""
        r = self._term("group:slope_change")
        return (np.nan,) * 4 if r is None else (float(r["rr"]), float(r["rr_lower"]), float(r["rr_upper"]), float(r["p"]))

    def counts(self) -> dict[str, float]:
        """Events before/after go-live in the focus and reference groups."""
        f = self.frame
        post = pd.to_datetime(f["period"]) >= pd.Timestamp(self.go_live).to_period("M").start_time
        focus = f["group"] == COMBINED_FOCUS
        return {
            "focus_events_pre": float(f.loc[focus & ~post, "numerator"].sum()),
            "focus_events_post": float(f.loc[focus & post, "numerator"].sum()),
            "reference_events_pre": float(f.loc[~focus & ~post, "numerator"].sum()),
            "reference_events_post": float(f.loc[~focus & post, "numerator"].sum()),
        }


def its_frame(data: pd.DataFrame, measure: str, reference: str, focus: str = COMBINED_FOCUS) -> pd.DataFrame:
    """Monthly counts and denominators of ``focus`` and ``reference`` for one measure (positive denominators)."""
    d = data[(data["measure"] == measure) & data["group"].isin([focus, reference])]
    d = d[d["denominator"] > 0]
    return d[["period", "group", "numerator", "denominator"]].reset_index(drop=True)


def implementation_effect(data: pd.DataFrame, definition: MeasureDefinition, go_live: date, reference: str,
                          focus: str = COMBINED_FOCUS, trend: bool = True, cov: str = "hac",
                          conf: float = 0.95) -> ImplementationEffect:
    """Fit the two-group segmented Poisson ITS of one measure around ``go_live``."""
    from pcref_eval.its import segmented_poisson

    frame = its_frame(data, definition.id, reference, focus)
    eff = ImplementationEffect(definition, go_live, frame, None)
    if definition.group_by == "overall":
        eff.note = "overall measure: no group ratio"
        return eff
    if definition.kind == "mean_change":
        eff.note = "mean change: not a count; see the board's difference series"
        return eff
    t0 = pd.Timestamp(go_live).to_period("M").start_time
    months = pd.to_datetime(frame["period"]).drop_duplicates()
    pre, post = int((months < t0).sum()), int((months >= t0).sum())
    if pre < MIN_MONTHS_EACH_SIDE or post < MIN_MONTHS_EACH_SIDE:
        eff.note = f"too few months around go-live ({pre} before, {post} after; {MIN_MONTHS_EACH_SIDE} needed each side)"
        return eff
    totals = frame.groupby("group")["numerator"].sum()
    if len(totals) < 2 or (totals.reindex([focus, reference]).fillna(0) == 0).any():
        eff.note = "no events in the focus or reference group"
        return eff
    if min(eff.counts().values()) == 0:  # the change would be 0 or infinite (0.00, CI 0.00 to 0.00, seen)
        eff.note = "no events in the focus or reference group before or after go-live: change not estimable"
        return eff
    try:
        eff.result = segmented_poisson(frame, "numerator", "period", go_live, offset_col="denominator",
                                       group_col="group", reference_group=reference, trend=trend, cov=cov,
                                       conf=conf)
    except (ValueError, np.linalg.LinAlgError) as exc:
        eff.note = f"model not estimable ({exc})"
        return eff
    t = eff.result.table
    if diverged_terms(list(t["term"]), t["estimate"], t["se"].to_numpy() ** 2):
        eff.result = None  # quasi-separation: a term ran off to infinity (pcref_eval.estimability)
        eff.note = "model did not converge to finite estimates (too few events): change not estimable"
    return eff


def implementation_effects(data: pd.DataFrame, definitions: list[MeasureDefinition], go_live: date,
                           reference: str, **kwargs) -> list[ImplementationEffect]:
    """:func:`implementation_effect` for each measure (skipped measures carry a note)."""
    return [implementation_effect(data, d, go_live, reference, **kwargs) for d in definitions]


def effects_table(effects: list[ImplementationEffect]) -> Aggregate:
    """The releasable table of effects: counts before/after (declared) and the estimates derived from them."""
    rows = []
    for e in effects:
        if e.definition.group_by == "overall" or e.definition.kind == "mean_change":
            continue
        lc, sc = e.level_change, e.slope_change
        months = pd.to_datetime(e.frame["period"]).drop_duplicates()
        t0 = pd.Timestamp(e.go_live).to_period("M").start_time
        rows.append({
            "measure_id": e.definition.id,
            "measure": e.definition.title,
            "months_before": int((months < t0).sum()),
            "months_after": int((months >= t0).sum()),
            **e.counts(),
            "level_change": lc[0], "level_change_lower": lc[1], "level_change_upper": lc[2], "level_change_p": lc[3],
            "slope_change": sc[0], "slope_change_lower": sc[1], "slope_change_upper": sc[2],
            "note": e.note,
        })
    df = pd.DataFrame(rows)
    counts = ["focus_events_pre", "focus_events_post", "reference_events_pre", "reference_events_post"]
    model = {c: counts for c in ("level_change", "level_change_lower", "level_change_upper", "level_change_p",
                                 "slope_change", "slope_change_lower", "slope_change_upper")}
    if not len(df):
        return Aggregate(df, [], {})
    return Aggregate(df, counts, {}, model=model,
                     labels=["measure_id", "measure", "months_before", "months_after", "note"])


# ----------------------------------------------------------------------------- charts


def implementation_chart(effect: ImplementationEffect, reference: str, policy=None, site_label: str = ""):
    """Observed monthly rates and focus/reference ratio, fitted segments and the counterfactual.

    Observed points are drawn only for months whose counts pass ``policy`` (a
    :class:`~pcref_eval.disclosure.DisclosurePolicy`); lines are model estimates.
    """
    from pcref_eval.its import counterfactual, released_observed

    apply_style()
    d = effect.definition
    cf = counterfactual(effect.result, per=d.scale)
    cf["time"] = pd.to_datetime(cf["time"])
    if policy is not None:  # observed points from released counts and denominators only
        cf = released_observed(cf, policy, d.scale if cf["offset"].notna().any() else None)
        cf["ok"] = cf["released"]
    else:
        cf["ok"] = True
    colours = group_colours([COMBINED_FOCUS, reference])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.6))
    go = pd.Timestamp(effect.go_live)
    for g in (COMBINED_FOCUS, reference):
        sub = cf[cf["group"] == g].sort_values("time")
        col = colours[g]
        shown = sub[sub["ok"].fillna(False).astype(bool)]
        ax1.scatter(shown["time"], shown["observed_rate"], s=12, color=col, alpha=0.55, zorder=3, label=g)
        for _, seg in sub.groupby("post"):
            ax1.plot(seg["time"], seg["fitted"], color=col, lw=2, zorder=4)
    ax1.set_ylabel(d.unit_label)
    # the counterfactual may extrapolate far beyond the data: keep the axis on observed and fitted values
    # and stop a counterfactual line where it leaves the chart (marked with an arrow), never past the axes
    shown_max = np.nanmax(np.r_[cf.loc[cf["ok"].fillna(False).astype(bool), "observed_rate"].to_numpy(float),
                                cf["fitted"].to_numpy(float)])
    top1 = 1.35 * shown_max if np.isfinite(shown_max) and shown_max > 0 else None
    ax1.set_ylim(0, top1)
    clipped = False
    for g in (COMBINED_FOCUS, reference):
        post = cf[(cf["group"] == g) & cf["post"]].sort_values("time")
        clipped |= _clipped_line(ax1, post["time"], post["counterfactual"], top1, colours[g])
    ax1.set_title("Rates by group", loc="left", fontsize=10)
    # ratio panel
    f = cf[cf["group"] == COMBINED_FOCUS].set_index("time").sort_index()
    r = cf[cf["group"] == reference].set_index("time").reindex(f.index)
    both_ok = f["ok"].fillna(False).astype(bool) & r["ok"].fillna(False).astype(bool) & (r["observed"] > 0)
    obs_ratio = (f["observed_rate"] / r["observed_rate"]).where(both_ok)
    ax2.scatter(f.index, obs_ratio, s=12, color="#404040", alpha=0.55, zorder=3, label="Observed ratio")
    fitted_ratio = f["fitted"] / r["fitted"]
    cf_ratio = f["counterfactual"] / r["counterfactual"]
    for _, seg in f.groupby("post"):
        ax2.plot(seg.index, fitted_ratio.loc[seg.index], color="#000000", lw=2, zorder=4)
    post_idx = f.index[f["post"].to_numpy(bool)]
    ax2.axhline(1.0, color="#7F7F7F", lw=0.8)
    ax2.set_ylabel(f"Ratio, focus / {reference}")
    ratio_max = np.nanmax(np.r_[obs_ratio.to_numpy(float), fitted_ratio.to_numpy(float), 1.0])
    top2 = 1.35 * ratio_max if np.isfinite(ratio_max) else None
    ax2.set_ylim(0, top2)
    clipped |= _clipped_line(ax2, pd.Series(post_idx), cf_ratio.loc[post_idx], top2, "#000000")
    lc = effect.level_change
    ax2.set_title(f"Focus / reference ratio: level change {lc[0]:.2f} ({lc[1]:.2f} to {lc[2]:.2f})",
                  loc="left", fontsize=10)
    from matplotlib.lines import Line2D

    import matplotlib.dates as mdates

    for ax in (ax1, ax2):
        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.axvline(go, color="#404040", lw=1, ls=":")
        ax.annotate("go-live", xy=(go, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -12),
                    textcoords="offset points", fontsize=8)
    handles, labels = ax1.get_legend_handles_labels()
    handles += [Line2D([], [], color="#404040", lw=2), Line2D([], [], color="#404040", lw=1.5, ls="--")]
    labels += ["Fitted (segmented)", "Counterfactual (pre-go-live trend continued)"
               + ("; ▲ it continues above the chart" if clipped else "")]
    fig.legend(handles, labels, loc="lower center", ncol=4, frameon=False, fontsize=8, bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(f"{d.title}{' - ' + site_label if site_label else ''}", x=0.01, ha="left", fontsize=12)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    return fig


def _clipped_line(ax, x, y, top: float | None, colour: str) -> bool:
    """A dashed counterfactual line drawn only while it stays below ``top``; an arrow where it leaves.

    Returns True when the line was cut (the legend then says so)."""
    x = pd.Series(np.asarray(x))
    y = np.asarray(y, dtype=float)
    inside = np.isfinite(y) if top is None else np.isfinite(y) & (y <= top)
    if inside.all():
        ax.plot(x, y, color=colour, lw=1.5, ls="--", zorder=4)
        return False
    first_out = int(np.argmax(~inside))
    keep = slice(0, first_out)
    ax.plot(x.iloc[keep], y[keep], color=colour, lw=1.5, ls="--", zorder=4)
    if first_out > 0:
        ax.plot([x.iloc[first_out - 1]], [y[first_out - 1]], marker="^", color=colour, markersize=7, zorder=5,
                clip_on=False)
    return True


def forest_chart(released: pd.DataFrame, title: str = "Level change at go-live in the focus/reference ratio"):
    """Forest plot of released level changes (rate ratio of the gap, 95% CI; 1 = no change)."""
    apply_style()
    df = released.dropna(subset=["level_change"]).iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.45 * max(len(df), 3) + 1.2))
    y = np.arange(len(df))
    finite = np.r_[df["level_change_lower"].to_numpy(float), df["level_change_upper"].to_numpy(float)]
    finite = finite[np.isfinite(finite) & (finite > 0)]
    lo_x = float(min(finite.min() if finite.size else 0.9, 0.9)) * 0.9
    hi_x = float(max(finite.max() if finite.size else 1.1, 1.1)) * 1.1
    lo = (df["level_change"] - df["level_change_lower"].clip(lower=lo_x)).clip(lower=0).fillna(0)
    hi = (df["level_change_upper"].clip(upper=hi_x) - df["level_change"]).clip(lower=0).fillna(0)
    ax.errorbar(df["level_change"], y, xerr=[lo, hi], fmt="o", color="#0072B2", ecolor="#0072B2", capsize=3)
    ax.axvline(1.0, color="#404040", lw=1, ls=":")
    ax.set_yticks(y)
    ax.set_yticklabels(df["measure"], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(lo_x, hi_x)
    ticks = [t for t in (0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10) if lo_x <= t <= hi_x]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("Level change in the focus / reference ratio at go-live\n(log scale; below 1 = gap narrowed)")
    fig.suptitle(title, x=0.01, ha="left", fontsize=11)
    ax.grid(axis="y", alpha=0)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig


# ----------------------------------------------------------------------------- publish


def publish_implementation_effect(session, data: pd.DataFrame | None = None,
                                  measures: list[MeasureDefinition] | None = None,
                                  charts: list[str] | None = None, trend: bool = True, cov: str = "hac"
                                  ) -> pd.DataFrame:
    """Fit and publish the ITS of every grouped ratio measure around the site's go-live.

    ``charts`` limits the per-measure ITS charts to these measure ids (default: every fitted measure).
    Returns the released table.
    """
    from pcref_eval.measures.board import registry_for, site_measures

    definitions = measures if measures is not None else registry_for(session)
    data = data if data is not None else site_measures(session, definitions)
    reference = session.config.ethnicity.reference
    go_live = session.site.info.pcref_go_live
    site_id = session.site.info.site_id
    pub = session.pub
    effects = implementation_effects(data, definitions, go_live, reference, trend=trend, cov=cov)
    agg = effects_table(effects)
    caption = (f"Implementation effect ({site_id}, go-live {go_live:%d %b %Y}): interrupted time series "
               f"(segmented Poisson regression, denominator offset, autocorrelation-robust 95% CIs) of monthly "
               f"counts of {COMBINED_FOCUS} and {reference}; level_change is the change at go-live in their "
               f"ratio (1 = no change, below 1 = the gap narrowed if the focus group's rate is higher), "
               f"slope_change the change in the ratio's monthly trend.")
    pub.note(f"**Implementation effect for {session.site.info.name} ({site_id}).** Each measure's "
             f"{COMBINED_FOCUS} / {reference} ratio is modelled around the PCREF go-live date "
             f"({go_live:%d %B %Y}). Intervals from 3 to 4 years of monthly data tend to be somewhat "
             f"too narrow (see methods).")
    released = pub.table(agg, "implementation_effect", caption, SECTION, decimals=3)
    if released.empty:
        return released
    if released["level_change"].notna().any():
        pub.figure(forest_chart(released), "implementation_forest",
                   f"Level change at go-live in the {COMBINED_FOCUS} / {reference} ratio with 95% CI, by measure "
                   f"({site_id}); from the released implementation-effect table.", SECTION)
    fitted = {e.definition.id: e for e in effects if e.result is not None}
    shown = released.dropna(subset=["level_change"])["measure_id"].tolist()
    for mid in shown:
        if charts is not None and mid not in charts:
            continue
        e = fitted.get(mid)
        if e is None:
            continue
        fig = implementation_chart(e, reference, pub.policy, site_id)
        pub.figure(fig, f"implementation_{mid}",
                   f"{e.definition.title} ({site_id}): observed monthly rates (points; only months whose counts "
                   f"pass disclosure control) with the fitted segmented trends (solid) and the counterfactual "
                   f"without go-live (dashed), by group (left) and as the {COMBINED_FOCUS} / {reference} "
                   f"ratio (right).", SECTION)
    return released
