"""The site's board page: every core measure's latest value, gap to the reference group and SPC chart.

The site notebook calls (after ``session = open_site(...)``)::

    from pcref_eval.measures import site_measures, publish_board
    measures = site_measures(session)           # restricted: patient-derived monthly counts
    publish_board(session, data=measures)

What is released (all through ``session.pub``, so disclosure control applies):

1. ``board_summary`` (displayed first): one row per measure, for the combined PCREF focus group
   (:data:`~pcref_eval.measures.compute.COMBINED_FOCUS`: Black African, Black Caribbean, Black Mixed
   and Black Other people together) against the reference group, or the single overall series of a
   data-quality measure: latest period's value, the latest 12 months' values and the focus/reference
   ratio (difference for mean changes) with its confidence interval, and the Making Data Count
   variation and assurance icons of the SPC chart. Every number in it is copied from tables 2 and 3
   after their release, so it carries only controlled numbers and declares no counts of its own.
2. ``board_by_group``: the latest 12 months for every group of the scheme (each PCREF focus group
   where counts allow, the combined focus group, "Other groups", and the Not stated / Not known /
   Missing rows), with counts declared (``count``, ``denominator``) so small counts are redacted and
   rounded; the combined focus row is declared as the total of the four focus groups (secondary
   suppression, total recomputed from rounded parts). Ratios against the reference are blanked when
   the reference group's counts are redacted.
3. ``board_<measure>_series`` (released, not displayed): the series the SPC chart is drawn from
   (focus and reference counts, values, and the ratio per period), counts declared.
4. One XmR chart per measure, drawn only from the *released* series (redacted points are missing).

Resolution of the SPC series (our disclosure choice): the series is **monthly** when at most
:data:`MAX_WITHHELD_SHARE` (10%) of months fail, a month failing when any of its counts (focus and
reference numerators and denominators) would be redacted or its ratio is undefined; the failing
months are then redacted by the publisher and left out of the chart. Otherwise the series is
aggregated to **calendar quarters** (whole quarters only), and quarters that still fail are likewise
redacted and left out. Either way the chart is drawn only from released numbers and its caption
says how many periods were withheld. A chart needs at least :data:`MIN_SPC_POINTS` points; otherwise the
measure appears in the summary without a chart. The SPC chart is of the focus/reference **ratio**
(difference for mean changes), whose direction of improvement is the measure's own (a decreasing
detention ratio is improvement; for positive experience an increasing ratio is), with parity (1, or
0 for differences) as the target behind the assurance icon. Data-quality measures (``group_by:
overall``) chart their value, with the measure's ``target`` if set.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pcref_eval.disclosure import DisclosurePolicy, MeasureComparison, MeasureStat, Totals
from pcref_eval.measures.compute import (
    COMBINED_FOCUS,
    FOCUS_CODES,
    OVERALL,
    aggregate_periods,
    compute_site_measures,
    summarise_window,
)
from pcref_eval.measures.definitions import MeasureDefinition
from pcref_eval.publish import Aggregate

__all__ = [
    "MIN_SPC_POINTS",
    "MAX_WITHHELD_SHARE",
    "WINDOW_MONTHS",
    "BoardMeasure",
    "site_measures",
    "registry_for",
    "by_group_table",
    "focus_partition",
    "gap_series",
    "choose_resolution",
    "board_measure",
    "publish_board",
]

#: Fewest released points an XmR chart is drawn from.
MIN_SPC_POINTS = 10
#: Largest share of months that may be withheld before the SPC series is aggregated to quarters.
MAX_WITHHELD_SHARE = 0.10
#: Length of the "latest" comparison window.
WINDOW_MONTHS = 12
SECTION = "Board summary"


def registry_for(session) -> list[MeasureDefinition]:
    """The measures of a session: the defaults plus ``config.measures``."""
    from pcref_eval.measures.defaults import measure_registry

    return measure_registry(list(session.config.measures or []))


def site_measures(session, measures: list[MeasureDefinition] | None = None) -> pd.DataFrame:
    """Monthly measures of the session's site (restricted: never publish this frame directly)."""
    return compute_site_measures(session.site, session.config, measures if measures is not None
                                 else registry_for(session))


# ----------------------------------------------------------------------------- tables


def _count_and_denominator(df: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """The released ``count`` (events/people/units; pairs for mean changes) and ``denominator``."""
    is_mean = df["kind"] == "mean_change"
    count = df["numerator"].where(~is_mean, df["denominator"])
    denominator = df["denominator"].where(~is_mean, np.nan)
    return count, denominator


def by_group_table(window: pd.DataFrame, definitions: list[MeasureDefinition], reference: str,
                   policy: DisclosurePolicy | None = None, scheme: str = "pcref") -> Aggregate:
    """Latest-window values for every group of every measure, as a releasable aggregate.

    ``window`` is :func:`~pcref_eval.measures.compute.summarise_window` output for one site. When the
    scheme's focus groups partition the focus codes (the ``pcref`` and ``detailed`` schemes), the
    combined focus row is declared as their total, so the publisher applies secondary suppression
    and recomputes it from rounded parts. (In the ``broad`` scheme "Black" is M, N, P only and Black
    Mixed people are inside "Mixed", so no such relation holds and none is declared.)
    """
    titles = {d.id: d.title for d in definitions}
    units = {d.id: d.unit_label for d in definitions}
    order = {d.id: i for i, d in enumerate(definitions)}
    df = window[window["measure"].isin(titles)].copy()
    df["_order"] = df["measure"].map(order)
    df = df.sort_values("_order", kind="stable")
    count, denominator = _count_and_denominator(df)
    is_mean = (df["kind"] == "mean_change").to_numpy()
    comparison = np.where(df["group"] == OVERALL, "", np.where(is_mean, "difference", "ratio"))
    est = np.where(is_mean, df["difference"], df["ratio"])
    lo = np.where(is_mean, df["difference_lower"], df["ratio_lower"])
    hi = np.where(is_mean, df["difference_upper"], df["ratio_upper"])
    focus_labels, partition = focus_partition(scheme)
    out = pd.DataFrame({
        "measure_id": df["measure"].to_numpy(),
        "measure": df["measure"].map(titles).to_numpy(),
        "unit": df["measure"].map(units).to_numpy(),
        "group": df["group"].to_numpy(),
        "group_set": np.where(df["group"].isin(set(focus_labels) | {COMBINED_FOCUS}) & partition,
                              "PCREF focus", "other"),
        "count": count.to_numpy(dtype=float),
        "denominator": denominator.to_numpy(dtype=float),
        "value": df["value"].to_numpy(dtype=float),
        "lower": df["lower"].to_numpy(dtype=float),
        "upper": df["upper"].to_numpy(dtype=float),
        "comparison": comparison,
        "vs_reference": est.astype(float),
        "vs_reference_lower": lo.astype(float),
        "vs_reference_upper": hi.astype(float),
    })
    if policy is not None:  # a comparison also derives from the reference row's counts
        ref = out[out["group"] == reference].set_index("measure_id")[["count", "denominator"]]
        ref_bad = policy.is_disclosive(ref["count"]) | policy.is_disclosive(ref["denominator"])
        bad = out["measure_id"].map(pd.Series(ref_bad, index=ref.index)).fillna(False).to_numpy(bool)
        out.loc[bad, ["vs_reference", "vs_reference_lower", "vs_reference_upper"]] = np.nan
    out = out.reset_index(drop=True)
    kinds, pers = tuple(df["kind"].astype(str)), tuple(float(p) for p in df["per"])
    derived = {c: MeasureStat("count", "denominator", kinds, pers, stat=c) for c in ("value", "lower", "upper")}
    derived.update({c: MeasureStat("count", "denominator", kinds, pers, stat=stat, label_col="group",
                                   reference=reference, by=("measure_id",))
                    for c, stat in (("vs_reference", "ratio"), ("vs_reference_lower", "ratio_lower"),
                                    ("vs_reference_upper", "ratio_upper"))})
    totals = (Totals(label_col="group", total_label=COMBINED_FOCUS, by=("measure_id", "group_set"))
              if partition else None)
    return Aggregate(out, ["count"], derived, totals, denominators=["denominator"],
                     labels=["measure_id", "measure", "unit", "group", "group_set", "comparison"])


def focus_partition(scheme: str) -> tuple[list[str], bool]:
    """(the scheme's groups made only of PCREF focus codes, whether they cover all focus codes exactly)."""
    from pcref_eval.ethnicity import SCHEMES

    by_label: dict[str, set] = {}
    for code, label in SCHEMES[scheme].items():
        by_label.setdefault(label, set()).add(code)
    labels = [lab for lab, codes in by_label.items() if codes <= set(FOCUS_CODES)]
    covered = set().union(*(by_label[lab] for lab in labels)) if labels else set()
    return labels, covered == set(FOCUS_CODES)


def gap_series(df: pd.DataFrame, definition: MeasureDefinition, reference: str,
               focus: str = COMBINED_FOCUS) -> pd.DataFrame:
    """Wide per-period table of one measure: focus and reference counts, values, and their comparison.

    For overall measures: period, count, denominator, value, lower, upper.
    """
    d = df[df["measure"] == definition.id]
    count, denominator = _count_and_denominator(d)
    d = d.assign(count=count.to_numpy(), denom=denominator.to_numpy())
    if definition.group_by == "overall":
        a = d[d["group"] == OVERALL].sort_values("period")
        return pd.DataFrame({"period": a["period"].to_numpy(), "count": a["count"].to_numpy(),
                             "denominator": a["denom"].to_numpy(), "value": a["value"].to_numpy(),
                             "lower": a["lower"].to_numpy(), "upper": a["upper"].to_numpy()})
    f = d[d["group"] == focus].set_index("period").sort_index()
    r = d[d["group"] == reference].set_index("period").reindex(f.index)
    cmp = "difference" if definition.kind == "mean_change" else "ratio"
    return pd.DataFrame({
        "period": f.index.to_numpy(),
        "focus_count": f["count"].to_numpy(), "focus_denominator": f["denom"].to_numpy(),
        "focus_value": f["value"].to_numpy(), "focus_lower": f["lower"].to_numpy(),
        "focus_upper": f["upper"].to_numpy(),
        "reference_count": r["count"].to_numpy(), "reference_denominator": r["denom"].to_numpy(),
        "reference_value": r["value"].to_numpy(), "reference_lower": r["lower"].to_numpy(),
        "reference_upper": r["upper"].to_numpy(),
        "vs_reference": f[cmp].to_numpy(), "vs_reference_lower": f[f"{cmp}_lower"].to_numpy(),
        "vs_reference_upper": f[f"{cmp}_upper"].to_numpy(),
    })


def _series_aggregate(series: pd.DataFrame, definition: MeasureDefinition) -> Aggregate:
    """A per-period series: values and CIs recomputed from the released counts (:class:`MeasureStat`);
    the focus/reference comparison is a model output resting on both groups' counts."""
    kinds, pers = (definition.kind,) * len(series), (definition.scale,) * len(series)

    def stat(num, den, which):
        return MeasureStat(num, den, kinds, pers, stat=which)
    if "focus_count" in series:
        derived = {f"{g}_{c}": stat(f"{g}_count", f"{g}_denominator", c)
                   for g in ("focus", "reference") for c in ("value", "lower", "upper")}
        derived.update({c: MeasureComparison("focus_count", "focus_denominator", "reference_count",
                                             "reference_denominator", kinds, stat=st)
                        for c, st in (("vs_reference", "ratio"), ("vs_reference_lower", "ratio_lower"),
                                      ("vs_reference_upper", "ratio_upper"))})
        return Aggregate(series, ["focus_count", "reference_count"], derived, labels=["period"],
                         denominators=["focus_denominator", "reference_denominator"])
    return Aggregate(series, ["count"], {c: stat("count", "denominator", c) for c in ("value", "lower", "upper")},
                     denominators=["denominator"], labels=["period"])


def _publishable(series: pd.DataFrame, policy: DisclosurePolicy) -> np.ndarray:
    """Per period: would every count be released unredacted, and is the charted statistic defined?"""
    counts = [c for c in series.columns if c.endswith("count") or c.endswith("denominator")]
    ok = np.ones(len(series), dtype=bool)
    for c in counts:
        ok &= ~policy.is_disclosive(series[c])
    stat = "vs_reference" if "vs_reference" in series else "value"
    return ok & series[stat].notna().to_numpy()


def choose_resolution(monthly: pd.DataFrame, definition: MeasureDefinition, reference: str,
                      policy: DisclosurePolicy) -> tuple[str, pd.DataFrame]:
    """("month" | "quarter", series): monthly unless more than 10% of months would be withheld, else quarters."""
    series = gap_series(monthly, definition, reference)
    if len(series) and (~_publishable(series, policy)).mean() <= MAX_WITHHELD_SHARE:
        return "month", series
    quarterly = aggregate_periods(monthly[monthly["measure"] == definition.id], "Q", reference)
    return "quarter", gap_series(quarterly, definition, reference)


# ----------------------------------------------------------------------------- per measure


@dataclass
class BoardMeasure:
    """One measure on the board: its released series, SPC result and summary values."""

    definition: MeasureDefinition
    resolution: str
    released: pd.DataFrame  # released series (numeric; redacted = NaN)
    spc: pd.DataFrame | None  # pcref_eval.spc.xmr output, None when too few points
    withheld: int  # periods left out of the chart (redacted or undefined)

    @property
    def statistic(self) -> str:
        return "vs_reference" if "vs_reference" in self.released else "value"

    @property
    def summary(self):
        from pcref_eval.spc import xmr_summary

        return xmr_summary(self.spc) if self.spc is not None else None


def board_measure(definition: MeasureDefinition, monthly: pd.DataFrame, reference: str, pub) -> BoardMeasure:
    """Release one measure's SPC series and compute its XmR chart from the released numbers."""
    from pcref_eval.spc import xmr

    resolution, series = choose_resolution(monthly, definition, reference, pub.policy)
    series = series.assign(period=pd.to_datetime(series["period"]).dt.strftime("%Y-%m"))
    caption = (f"{definition.title}: {'monthly' if resolution == 'month' else 'quarterly'} series for the "
               + ("whole site" if definition.group_by == "overall"
                  else f"{COMBINED_FOCUS} and {reference}, with the {_cmp_word(definition)}")
               + " (source of the board's SPC chart).")
    rt = pub.release_table(_series_aggregate(series, definition), f"board_{definition.id}_series", caption, SECTION)
    released = rt.data.copy()
    released["period"] = pd.to_datetime(released["period"])
    stat = "vs_reference" if "vs_reference" in released else "value"
    pts = released[released[stat].notna() & np.isfinite(released[stat].astype(float))]
    withheld = len(released) - len(pts)
    spc = None
    if len(pts) >= MIN_SPC_POINTS:
        target = definition.gap_target if stat == "vs_reference" else definition.target
        spc = xmr(pts[stat].astype(float).to_numpy(), pts["period"], improvement=definition.direction,
                  target=target)
    return BoardMeasure(definition, resolution, released, spc, withheld)


def _cmp_word(definition: MeasureDefinition) -> str:
    return "focus minus reference difference" if definition.kind == "mean_change" else "focus / reference ratio"


def _chart(bm: BoardMeasure, reference: str):
    from pcref_eval.spc_chart import xmr_chart

    d = bm.definition
    per = "Monthly" if bm.resolution == "month" else "Quarterly"
    if bm.statistic == "vs_reference":
        ylabel = (f"Difference, {COMBINED_FOCUS} minus {reference}" if d.kind == "mean_change"
                  else f"Ratio, {COMBINED_FOCUS} / {reference}")
        title = f"{d.title}: {per.lower()} {_cmp_word(d)}"
    else:
        ylabel, title = d.unit_label, f"{d.title}: {per.lower()} value, whole site"
    # wrapped so that long titles stay clear of the icons drawn at the top right
    fig = xmr_chart(bm.spc, title="\n".join(textwrap.wrap(title, 56)), ylabel="\n".join(textwrap.wrap(ylabel, 40)))
    return fig


# ----------------------------------------------------------------------------- publish


def publish_board(session, data: pd.DataFrame | None = None, measures: list[MeasureDefinition] | None = None,
                  charts: bool = True) -> pd.DataFrame:
    """Publish the site's board page; returns the released summary table.

    ``data`` is :func:`site_measures` output (computed here when not given); ``measures`` defaults to
    the session's registry (defaults + ``config.measures``).
    """
    definitions = measures if measures is not None else registry_for(session)
    data = data if data is not None else site_measures(session, definitions)
    reference = session.config.ethnicity.reference
    pub = session.pub
    policy = pub.policy
    site_id = session.site.info.site_id

    window = summarise_window(data, months=WINDOW_MONTHS, reference=reference)
    start, end = pd.Timestamp(window["period"].iloc[0]), pd.Timestamp(window["period_end"].iloc[0])
    window_label = f"{start:%b %Y} to {end:%b %Y}"
    by_group = by_group_table(window, definitions, reference, policy, session.config.ethnicity.scheme)
    by_group_caption = (f"Core measures by ethnic group, {window_label} ({site_id}): counts, rates or shares with "
                        f"95% confidence intervals, and the ratio (difference for mean changes) against "
                        f"{reference}. Not stated, Not known and Missing ethnicity are shown as their own rows; "
                        f"groups without a catchment population have no population rate.")
    released_groups = pub.release_table(by_group, "board_by_group", by_group_caption, SECTION).data

    board = [board_measure(d, data, reference, pub) for d in definitions]
    summary = _summary_table(board, released_groups, reference, window_label)
    pub.note(f"**Board summary for {session.site.info.name} ({site_id}).** PCREF go-live "
             f"{session.site.info.pcref_go_live:%d %B %Y}. Focus group: {COMBINED_FOCUS} (Black African, "
             f"Black Caribbean, Black Mixed and Black Other people); reference group: {reference}. "
             f"Disclosure control: {policy.describe()}.")
    numeric = [c for c in summary.columns if pd.api.types.is_numeric_dtype(summary[c])]
    # values copied from the released series and by-group tables (already recomputed from released counts)
    summary_agg = Aggregate(summary, [], {}, model=numeric, labels=[c for c in summary.columns if c not in numeric])
    released = pub.table(summary_agg, "board_summary",
                         f"Board summary ({site_id}): each core measure's latest value, its value over {window_label} "
                         f"with the {COMBINED_FOCUS} / {reference} ratio (difference for mean changes) and 95% CI, "
                         f"and the Making Data Count variation and assurance icons of its SPC chart. All values are "
                         f"taken from released (disclosure-controlled) tables.", SECTION)
    pub.table(by_group, "board_by_group", by_group_caption, SECTION)
    if charts:
        for bm in board:
            if bm.spc is None:
                continue
            d = bm.definition
            res = "monthly" if bm.resolution == "month" else "quarterly (monthly counts too small to release)"
            note = f"; {bm.withheld} period(s) withheld by disclosure control or undefined" if bm.withheld else ""
            what = (f"the {_cmp_word(d)} ({COMBINED_FOCUS} vs {reference})" if bm.statistic == "vs_reference"
                    else "the whole-site value")
            target = (f" Assurance target: {d.gap_target:g} (parity)." if bm.statistic == "vs_reference"
                      else (f" Assurance target: {d.target:g}." if d.target is not None else ""))
            pub.figure(_chart(bm, reference), f"board_{d.id}_spc",
                       f"{d.title} ({site_id}): XmR chart of {what}, {res}{note}. Mean and process limits "
                       f"(mean +/- 2.66 x mean moving range); coloured points are special cause variation; "
                       f"improvement is {_with_article(d.direction)}.{target}", SECTION)
    return released


def _with_article(word: str) -> str:
    """'an increase', 'a decrease': the indefinite article a caption needs."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def _summary_table(board: list[BoardMeasure], released_groups: pd.DataFrame, reference: str,
                   window_label: str) -> pd.DataFrame:
    """One row per measure from released numbers only (the released series and by-group table)."""
    rows = []
    for bm in board:
        d = bm.definition
        rel = bm.released.dropna(subset=["period"])
        last = rel.iloc[-1] if len(rel) else None
        grp = released_groups[released_groups["measure_id"] == d.id]
        overall = d.group_by == "overall"
        focus_row = grp[grp["group"] == (OVERALL if overall else COMBINED_FOCUS)]
        ref_row = grp[grp["group"] == reference]
        s = bm.summary

        def val(frame, col):
            return float(frame[col].iloc[0]) if len(frame) and pd.notna(frame[col].iloc[0]) else np.nan

        rows.append({
            "measure": d.title,
            "unit": d.unit_label,
            "group": OVERALL if overall else COMBINED_FOCUS,
            "improvement": d.direction,
            "latest_period": (f"{last['period']:%Y-%m}" if bm.resolution == "month" else
                              f"{last['period'].year} Q{last['period'].quarter}") if last is not None else "",
            "latest_value": float(last["value" if overall else "focus_value"]) if last is not None else np.nan,
            "latest_reference_value": np.nan if overall or last is None else float(last["reference_value"]),
            "value_12m": val(focus_row, "value"),
            "reference_value_12m": np.nan if overall else val(ref_row, "value"),
            "comparison": "" if overall else ("difference" if d.kind == "mean_change" else "ratio"),
            "vs_reference_12m": np.nan if overall else val(focus_row, "vs_reference"),
            "vs_reference_lower": np.nan if overall else val(focus_row, "vs_reference_lower"),
            "vs_reference_upper": np.nan if overall else val(focus_row, "vs_reference_upper"),
            "spc_series": ("" if s is None else
                           f"{'monthly' if bm.resolution == 'month' else 'quarterly'} "
                           f"{'value' if overall else ('difference' if d.kind == 'mean_change' else 'ratio')}"),
            "variation": "" if s is None else s.variation.replace("_", " "),
            "assurance": "" if s is None or s.assurance is None else s.assurance.replace("_", " "),
        })
    return pd.DataFrame(rows)
