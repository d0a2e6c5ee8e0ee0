"""What a board pack says, read only from a run's released (disclosure-controlled) tables.

Sources, all under ``release/tables``: ``<site>_board_summary.csv`` (each core measure's 12-month
focus and reference values, their ratio with its 95% CI and the SPC icons), ``<site>_board_by_group.csv``
(measure ids), ``<site>_implementation_effect.csv`` (change in the ratio at go-live, interrupted time
series), ``<site>_gap_change.csv`` (detention hazard ratio before/after go-live), ``<site>_board_<id>_series.csv``
(the SPC series) and, across sites, ``all_gap_pooled.csv`` / ``all_gap_change.csv``. A previous run's
released board summary (found through the run registry) gives "what changed since the last run".
Nothing here reads ``restricted/``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pcref_eval.disclosure import REDACTED

__all__ = ["BoardRow", "Interval", "SiteBoard", "CrossSiteBoard", "load_site_board", "load_cross_site",
           "fmt_num", "interval_verdict", "previous_changes", "plain_summary", "pooled_answer", "gap_movement",
           "chart_signals", "change_words"]

#: Measures whose small SPC chart is on the board pack's first page (the headline PCREF questions):
#: detained more, restrained more, referred through police/courts/emergency routes, heard less.
HEADLINE_MEASURES = ("detentions", "ri_incidents", "adverse_pathway", "positive_experience")
#: A ratio that moved by at least this much since the previous run is listed as changed.
CHANGE_THRESHOLD = 0.05


@dataclass(frozen=True)
class Interval:
    """A released estimate with its 95% CI (NaN where redacted or not available)."""

    estimate: float
    lower: float
    upper: float

    @property
    def available(self) -> bool:
        return bool(np.isfinite([self.estimate, self.lower, self.upper]).all())


@dataclass
class BoardRow:
    """One core measure on a site's board (released values only)."""

    measure_id: str
    measure: str
    unit: str
    improvement: str          # "decrease" | "increase"
    comparison: str           # "ratio" | "difference" | "" (whole-site measure)
    focus_value: float
    reference_value: float
    gap: Interval             # ratio (or difference) to the reference group, latest 12 months
    change: Interval | None   # change in the ratio at go-live (ITS level change), when modelled
    variation: str
    assurance: str
    spc_series: str


@dataclass
class SiteBoard:
    site_id: str
    name: str
    go_live: object
    window: str
    reference: str
    focus: str
    rows: list[BoardRow]
    gap_before: Interval | None = None
    gap_after: Interval | None = None
    gap_change: Interval | None = None
    series: dict[str, pd.DataFrame] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)

    def row(self, measure_id: str) -> BoardRow | None:
        return next((r for r in self.rows if r.measure_id == measure_id), None)


@dataclass
class CrossSiteBoard:
    sites: list[SiteBoard]
    pooled: Interval | None          # random-effects pooled ratio of hazard ratios (after / before go-live)
    pooled_label: str
    overall_change: Interval | None  # site-stratified Cox ratio of hazard ratios
    per_site: dict[str, Interval]


def read_released(path: Path) -> pd.DataFrame:
    """A released CSV, numeric where possible; ``[REDACTED]`` and empty cells are NaN."""
    return pd.read_csv(path, na_values=[REDACTED, ""], keep_default_na=False)


def _f(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _caption(release: Path, prefix: str, name: str) -> str:
    try:
        index = json.loads((release / "index" / f"{prefix}.json").read_text())
    except (OSError, ValueError):
        return ""
    return next((e.get("caption", "") for e in index.get("entries", []) if e.get("name") == name), "")


def _gap_rows(path: Path) -> tuple[Interval | None, Interval | None, Interval | None]:
    """(before, after, after/before) hazard ratios from a released ``gap_change`` table."""
    if not path.exists():
        return None, None, None
    df = read_released(path)
    out = []
    for pattern in (r"before", r"after go-live", r"ratio of"):
        hit = df[df["quantity"].astype(str).str.contains(pattern, case=False, regex=True)]
        if pattern == r"before":
            hit = hit[~hit["quantity"].astype(str).str.contains("ratio of", case=False)]
        r = hit.iloc[0] if len(hit) else None
        out.append(None if r is None else Interval(_f(r["estimate"]), _f(r["lower"]), _f(r["upper"])))
    return tuple(out)


def has_site_board(release: Path, site_id: str) -> bool:
    """Whether the site released a board summary (so it gets a board pack)."""
    return (release / "tables" / f"{site_id}_board_summary.csv").exists()


def load_site_board(release: Path, site_id: str, name: str, go_live, reference: str) -> SiteBoard | None:
    """The board of one site from its released tables; None when the site released no board summary."""
    from pcref_eval.measures.compute import COMBINED_FOCUS

    if not has_site_board(release, site_id):
        return None
    tables = release / "tables"
    summary_path = tables / f"{site_id}_board_summary.csv"
    summary = read_released(summary_path)
    ids: dict[str, str] = {}
    by_group = tables / f"{site_id}_board_by_group.csv"
    if by_group.exists():
        g = pd.read_csv(by_group, dtype=str, keep_default_na=False)
        ids = dict(zip(g["measure"], g["measure_id"]))
    effects: dict[str, Interval] = {}
    eff_path = tables / f"{site_id}_implementation_effect.csv"
    if eff_path.exists():
        e = read_released(eff_path)
        for _, r in e.iterrows():
            effects[str(r["measure_id"])] = Interval(_f(r["level_change"]), _f(r["level_change_lower"]),
                                                     _f(r["level_change_upper"]))
    rows = []
    for _, r in summary.iterrows():
        mid = ids.get(str(r["measure"]), re.sub(r"[^a-z0-9]+", "_", str(r["measure"]).lower()).strip("_"))
        rows.append(BoardRow(
            measure_id=mid, measure=str(r["measure"]), unit=str(r["unit"]), improvement=str(r["improvement"]),
            comparison="" if pd.isna(r["comparison"]) else str(r["comparison"]),
            focus_value=_f(r["value_12m"]), reference_value=_f(r["reference_value_12m"]),
            gap=Interval(_f(r["vs_reference_12m"]), _f(r["vs_reference_lower"]), _f(r["vs_reference_upper"])),
            change=effects.get(mid), variation="" if pd.isna(r["variation"]) else str(r["variation"]),
            assurance="" if pd.isna(r["assurance"]) else str(r["assurance"]),
            spc_series="" if pd.isna(r["spc_series"]) else str(r["spc_series"])))
    caption = _caption(release, site_id, "board_summary")
    m = re.search(r"over (\w{3} \d{4} to \w{3} \d{4})", caption)
    before, after, change = _gap_rows(tables / f"{site_id}_gap_change.csv")
    series = {}
    for mid in HEADLINE_MEASURES:
        p = tables / f"{site_id}_board_{mid}_series.csv"
        if p.exists():
            series[mid] = read_released(p)
    focus = next((str(v) for v in summary["group"] if str(v) != "All"), COMBINED_FOCUS)
    return SiteBoard(site_id, name, go_live, m.group(1) if m else "the latest 12 months", reference, focus, rows,
                     before, after, change, series)


def load_cross_site(release: Path, boards: list[SiteBoard]) -> CrossSiteBoard:
    """Sites side by side plus the pooled answer to "has the detention gap narrowed?"."""
    tables = release / "tables"
    pooled, label, per_site = None, "", {}
    p = tables / "all_gap_pooled.csv"
    if p.exists():
        df = read_released(p)
        for _, r in df.iterrows():
            lab = str(r["label"])
            iv = Interval(_f(r["estimate"]), _f(r["lower"]), _f(r["upper"]))
            if lab.lower().startswith("pooled"):
                if pooled is None or "random" in lab.lower():
                    pooled, label = iv, lab
            else:
                per_site[lab] = iv
    _, _, overall = _gap_rows(tables / "all_gap_change.csv")
    return CrossSiteBoard(boards, pooled, label, overall, per_site)


# ----------------------------------------------------------------------------------- words


def fmt_num(x: float, digits: int | None = None) -> str:
    """A number for people: 2 decimals below 10, 1 below 100, none above; '–' when not available."""
    if x is None or not np.isfinite(x):
        return "–"
    if digits is not None:
        return f"{x:,.{digits}f}"
    a = abs(x)
    return f"{x:.2f}" if a < 10 else (f"{x:.1f}" if a < 100 else f"{x:,.0f}")


def interval_verdict(iv: Interval, null: float = 1.0) -> str:
    """'higher' / 'lower' when the whole 95% CI is above / below ``null``, else 'unclear'."""
    if not iv.available:
        return "unavailable"
    if iv.lower > null:
        return "higher"
    if iv.upper < null:
        return "lower"
    return "unclear"


def change_words(row: BoardRow) -> tuple[str, str]:
    """(plain words, css class) for the change in a measure's ratio at go-live; the words say better or worse."""
    if row.change is None or not row.change.available:
        return "not modelled", "muted"
    v = interval_verdict(row.change)
    if v == "unclear":
        return "no clear change", "unclear"
    better = (v == "lower") == (row.improvement == "decrease")
    est = row.change.estimate
    if 0.1 <= est < 2:  # a percentage reads naturally between a 90% fall and a doubling
        words = f"ratio {'fell' if v == 'lower' else 'rose'} {abs(1 - est) * 100:.0f}%"
    else:  # "fell 100%" or "rose 302%" would mislead: say how many times
        words = f"ratio {'fell' if v == 'lower' else 'rose'} to {fmt_num(est) if est >= 1 else f'{est:.2g}'} times its level"
    return f"{words}: {'better' if better else 'worse'}", "better" if better else "worse"


def _times(x: float) -> str:
    return f"{fmt_num(x)} times"


def _gap_sentence(row: BoardRow, focus: str, reference: str, what: str) -> str:
    """One measure's gap in words: "N times the reference figure" or "X higher/lower than", with its 95% CI."""
    g = row.gap
    ci = f"95% confidence interval {fmt_num(g.lower)} to {fmt_num(g.upper)}"
    null = 0.0 if row.comparison == "difference" else 1.0
    chance = ", which could be chance" if interval_verdict(g, null) == "unclear" else ""
    if row.comparison == "difference":  # focus minus reference (Welch): say which way, never a bare signed number
        side = "the same as" if g.estimate == 0 else ("higher than" if g.estimate > 0 else "lower than")
        size = "" if g.estimate == 0 else f"{fmt_num(abs(g.estimate))}{' percentage points' if row.unit == '%' else ''} "
        return (f"{what}: for {focus} people, {size}{side} for {reference} people "
                f"(difference {fmt_num(g.estimate)}, {ci}){chance}")
    return f"{what}: for {focus} people, {_times(g.estimate)} the {reference} figure ({ci}){chance}"


def gap_movement(change: Interval, before: Interval | None = None, after: Interval | None = None) -> str:
    """How the detention gap moved at go-live, from the after/before ratio of hazard ratios and its 95% CI.

    'narrowed' / 'widened' compare the distance of the hazard ratio from parity (1) before and after; 'reversed'
    when the estimates lie on opposite sides of 1; without before/after estimates only 'fell' / 'rose'.
    """
    v = interval_verdict(change)
    if v != "lower" and v != "higher":
        return "has not clearly changed"
    if before is None or after is None or not (np.isfinite(before.estimate) and np.isfinite(after.estimate)
                                               and before.estimate > 0 and after.estimate > 0):
        return f"{'fell' if v == 'lower' else 'rose'} (the hazard ratio of detention)"
    if (before.estimate - 1) * (after.estimate - 1) < 0:
        return "reversed (the group detained more often changed)"
    return "narrowed" if abs(np.log(after.estimate)) < abs(np.log(before.estimate)) else "widened"


def chart_signals(rows: list[BoardRow]) -> str:
    """The charted measures' special cause variation in words, split into improved / worsened / neither.

    E.g. "Of 9 measures with a monthly or quarterly chart, 3 changed in a way unlikely to be chance (special
    cause variation): 2 improved (...), 1 got worse (...). The other 6 varied only as expected ...".
    """
    from pcref_eval.boardpack.icons import normalise_icon
    charted = [r for r in rows if normalise_icon(r.variation)]
    if not charted:
        return ""
    kinds: dict[str, list[str]] = {"improvement": [], "concern": [], "neutral": []}
    for r in charted:
        key = normalise_icon(r.variation)
        kind = next((k for k in kinds if f"_{k}_" in key), None)
        if kind is None:
            continue
        what = {"ratio": "ratio", "difference": "difference"}.get(r.comparison, "value")
        kinds[kind].append(f"{r.measure}: {what} {'higher' if key.endswith('_high') else 'lower'}")
    n_special = sum(len(v) for v in kinds.values())
    if n_special == 0:
        return (f"None of the {len(charted)} charted measures shows a change beyond normal month-to-month "
                "variation.")
    labels = {"improvement": "improved", "concern": "got worse", "neutral": "moved where neither direction is better"}
    parts = [f"{len(v)} {labels[k]} ({'; '.join(v)})" for k, v in kinds.items() if v]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    rest = len(charted) - n_special
    tail = (f" The other {'one' if rest == 1 else rest} varied only as expected from month to month." if rest else "")
    return (f"Of {len(charted)} measure{'s' if len(charted) != 1 else ''} with a monthly or quarterly chart, "
            f"{n_special} changed in a way unlikely to be chance (special cause variation): {listed}.{tail}")


#: How the plain-words paragraph names each headline measure.
HEADLINE_WORDS = {
    "detentions": "Detention under the Mental Health Act",
    "ri_incidents": "Restrictive interventions (restraint, seclusion, rapid tranquillisation) per bed day",
    "adverse_pathway": "Referral through the police, courts or emergency department",
    "positive_experience": "Positive ratings of care (being heard)",
}


def plain_summary(board: SiteBoard) -> list[str]:
    """Short paragraphs in plain words, each number copied from a released table, uncertainty stated."""
    paras = []
    items = []
    for mid, what in HEADLINE_WORDS.items():
        row = board.row(mid)
        if row is None or not row.gap.available:
            continue
        items.append(_gap_sentence(row, board.focus, board.reference, what))
    if items:
        paras.append(f"Over {board.window}, compared with {board.reference} people:")
        paras += [f"- {i}." for i in items]
        paras.append("A ratio of 1 would mean no difference. The 95% confidence interval is the range the true "
                     "ratio very probably lies in; where it does not include 1, chance alone is an unlikely "
                     "explanation.")
    if board.gap_change is not None and board.gap_change.available:
        words = gap_movement(board.gap_change, board.gap_before, board.gap_after)
        before = after = ""
        if board.gap_before is not None and board.gap_after is not None:
            before = (f" (the hazard ratio of detention was {fmt_num(board.gap_before.estimate)} before and "
                      f"{fmt_num(board.gap_after.estimate)} after")
        go = f"{board.go_live:%B %Y}" if hasattr(board.go_live, "strftime") else "go-live"
        paras.append(f"Since PCREF went live in {go}, the gap in detention {words}{before}; after / before "
                     f"{fmt_num(board.gap_change.estimate)}, 95% CI {fmt_num(board.gap_change.lower)} to "
                     f"{fmt_num(board.gap_change.upper)}{')' if before else ''}. This compares people referred "
                     "before and after go-live at this site only: national trends and better ethnicity recording "
                     "can move the gap too, so it is not proof that PCREF caused the change.")
    signals = chart_signals(board.rows)
    if signals:
        paras.append(signals)
    rec = board.row("ethnicity_recorded_people")
    if rec is not None and np.isfinite(rec.focus_value):
        paras.append(f"Ethnicity was recorded for {fmt_num(rec.focus_value, 1)}% of people over {board.window}; "
                     "people whose ethnicity is not recorded cannot be counted in any group, so every group's counts "
                     "and rates may be too low, and the ratios are biased if recording differs between groups.")
    return paras


def _icon_words(key: str) -> str:
    from pcref_eval.boardpack.icons import icon_label
    return icon_label(key).lower() or key.replace("_", " ")


def pooled_answer(x: CrossSiteBoard) -> str:
    """One or two sentences answering "has the detention gap narrowed where PCREF went live?"."""
    iv = x.pooled or x.overall_change
    if iv is None or not iv.available:
        return "No pooled estimate of the change in the detention gap was released in this run."
    v = interval_verdict(iv)
    words = {"lower": "Yes: the detention gap narrowed", "higher": "No: the detention gap widened",
             "unclear": "Not clearly: the data cannot tell whether the detention gap changed"}[v]
    befores = [b.gap_before.estimate for b in x.sites if b.gap_before is not None and np.isfinite(b.gap_before.estimate)]
    if v != "unclear" and any(hr <= 1 for hr in befores):  # "narrowed" presumes the focus group was detained more
        words = f"Not as expected: the detention hazard ratio {'fell' if v == 'lower' else 'rose'} (at some sites the " \
                "focus group was detained less often before go-live, so a fall need not mean a narrower gap)"
    n = len(x.per_site)
    src = "pooled over sites with random effects" if x.pooled is not None else "site-stratified Cox model"
    return (f"{words} after go-live ({src}, {n} site{'s' if n != 1 else ''}): the {x.sites[0].focus if x.sites else 'focus'}"
            f" / {x.sites[0].reference if x.sites else 'reference'} hazard ratio of detention after go-live was "
            f"{fmt_num(iv.estimate)} times its value before (95% CI {fmt_num(iv.lower)} to {fmt_num(iv.upper)}). "
            "Before/after comparisons also pick up national trends and changes in ethnicity recording, so part "
            "of the change may not be due to PCREF.")


# ------------------------------------------------------------------------ previous run


def previous_run_folder(registry_url: str | None, run_id: str, outputs_dir: Path | None) -> Path | None:
    """The newest finished run (ok or partial) before ``run_id`` in the registry, as a folder that exists."""
    if not registry_url:
        return None
    from pcref_eval.runner.registry import Registry
    try:
        reg = Registry(registry_url)
        try:
            runs = reg.list_runs(limit=50, outputs_dir=outputs_dir)
        finally:
            reg.close()
    except Exception:  # the registry is a convenience: no history, no comparison
        return None
    for r in runs:
        if r["run_id"] >= run_id or r.get("status") not in ("ok", "partial"):
            continue
        folder = Path(r["outputs_dir"]) / "runs" / r["run_id"]
        if folder.is_dir():
            return folder
    return None


def previous_changes(board: SiteBoard, previous: Path | None) -> list[str]:
    """What changed since the previous run: ratios that moved, icons that changed, new or lost measures."""
    if previous is None:
        return ["No earlier run of this evaluation is recorded, so there is nothing to compare with."]
    path = previous / "release" / "tables" / f"{board.site_id}_board_summary.csv"
    if not path.exists():
        return [f"The previous run ({previous.name}) released no board for this site."]
    old = read_released(path).set_index("measure")
    out = []
    for r in board.rows:
        if r.measure not in old.index:
            out.append(f"{r.measure}: new on the board.")
            continue
        o = old.loc[r.measure]
        was, now = _f(o["vs_reference_12m"]), r.gap.estimate
        if np.isfinite(was) and np.isfinite(now) and abs(now - was) >= CHANGE_THRESHOLD:
            out.append(f"{r.measure}: {r.comparison or 'value'} {fmt_num(was)} → {fmt_num(now)}.")
        old_var = "" if pd.isna(o["variation"]) else str(o["variation"])
        if old_var != r.variation and (old_var or r.variation):
            out.append(f"{r.measure}: chart now reads “{_icon_words(r.variation) or 'no chart'}” "
                       f"(was “{_icon_words(old_var) or 'no chart'}”).")
    if not out:
        out.append(f"No ratio moved by {CHANGE_THRESHOLD:g} or more and no chart signal changed since run "
                   f"{previous.name}.")
    else:
        out.insert(0, f"Compared with run {previous.name}:")
    return out
