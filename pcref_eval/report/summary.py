"""Key findings at a glance, read from released (disclosure-controlled) cross-site tables.

The summary uses only files in ``release/``: the released tables recorded in
``release/index/all.json`` (the cross-site notebook). Any released table with a ratio column and
its interval (``rate_ratio`` + ``rr_lower``/``rr_upper``, ``hazard_ratio`` + ``hr_lower``/``hr_upper``,
``odds_ratio``, ``irr``, ``ratio`` + ``lower``/``upper`` ...) and a group column contributes rows:
which groups differ from the reference group, by how much, and how sure we are (whether the
interval excludes 1). Tables with a ``period`` column (pre/post go-live) show whether the ratio
changed. Tables whose name or caption mention trends, change over time, interrupted time series or
SPC charts are listed as "is it changing?" cross-references.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from pcref_eval.disclosure import REDACTED
from pcref_eval.ethnicity import UNRECORDED_LABELS

LABEL_COLUMNS = ("group", "ethnic_group", "ethnicity", "broad_group", "term", "covariate", "comparison")
SITE_COLUMNS = ("site", "site_id")
POOLED_SITE_LABELS = {"all", "all sites", "pooled", "overall", "total"}
PERIOD_COLUMNS = ("period", "phase", "before_after", "pre_post")
TREND_WORDS = re.compile(r"\b(trend|trends|changing|change|over time|interrupted|xmr|spc|monthly|go-live|"
                         r"before and after|segmented)\b", re.IGNORECASE)


@dataclass
class RatioRow:
    measure: str
    source: str          # table stem
    group: str
    period: str | None
    ratio: float
    lower: float
    upper: float

    @property
    def verdict(self) -> str:
        if self.lower > 1:
            return "higher"
        if self.upper < 1:
            return "lower"
        return "unclear"


def _abbrev(name: str) -> str:
    return "".join(w[0] for w in name.split("_"))


RATIO_NAMES = ("rate_ratio", "hazard_ratio", "odds_ratio", "risk_ratio", "irr", "hr", "rr", "or", "ratio")


def ratio_columns(columns: list[str]) -> list[tuple[str, str, str]]:
    """(ratio, lower, upper) column triples in a table."""
    cols = list(columns)
    found = []
    for c in cols:
        if c in RATIO_NAMES:
            prefix, base = "", c
        else:
            m = re.match(r"^(.+)_(" + "|".join(RATIO_NAMES) + r")$", c)
            if not m:
                continue
            prefix, base = f"{m.group(1)}_", m.group(2)
        a = _abbrev(base)
        lows = [f"{c}_lower", f"{prefix}{a}_lower", f"{c}_lcl", f"{prefix}{a}_lcl", f"{c}_low", f"{c}_ci_lower"]
        ups = [f"{c}_upper", f"{prefix}{a}_upper", f"{c}_ucl", f"{prefix}{a}_ucl", f"{c}_high", f"{c}_ci_upper"]
        if not prefix:
            lows += ["lower", "ci_lower", "lcl", "lower_ci"]
            ups += ["upper", "ci_upper", "ucl", "upper_ci"]
        lo = next((x for x in lows if x in cols and x != c), None)
        up = next((x for x in ups if x in cols and x != c), None)
        if lo and up:
            found.append((c, lo, up))
    return found


def _read_released(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, na_values=[REDACTED, ""], keep_default_na=False)


def ratio_rows(release: Path, index: dict, reference: str) -> tuple[list[RatioRow], list[dict]]:
    """Ratio estimates from the released tables of one index; also the entries they came from."""
    rows: list[RatioRow] = []
    used = []
    for entry in index.get("entries", []):
        if entry.get("kind") != "table":
            continue
        csvs = [f for f in entry.get("files", []) if f.endswith(".csv")]
        if not csvs or not (release / csvs[0]).exists():
            continue
        df = _read_released(release / csvs[0])
        triples = ratio_columns(list(df.columns))
        label = next((c for c in LABEL_COLUMNS if c in df.columns), None)
        if not triples or label is None:
            continue
        site_col = next((c for c in SITE_COLUMNS if c in df.columns), None)
        if site_col is not None:
            pooled = df[site_col].astype(str).str.strip().str.lower().isin(POOLED_SITE_LABELS)
            if not pooled.any():
                continue
            df = df[pooled]
        period_col = next((c for c in PERIOD_COLUMNS if c in df.columns), None)
        stem = Path(csvs[0]).stem
        added = False
        for ratio, lo, up in triples[:1]:
            for _, r in df.iterrows():
                group = str(r[label])
                vals = pd.to_numeric(pd.Series([r[ratio], r[lo], r[up]]), errors="coerce").to_numpy(float)
                if group == reference or group in UNRECORDED_LABELS or np.isnan(vals).any():
                    continue  # unrecorded ethnicity is data quality, not a group that fares better or worse
                if (vals[0] == 1 and vals[1] == 1 and vals[2] == 1) or not (vals[1] <= vals[0] <= vals[2]):
                    continue
                rows.append(RatioRow(entry.get("caption", stem), stem, group,
                                     str(r[period_col]) if period_col else None, *vals))
                added = True
        if added:
            used.append(entry)
    return rows, used


def redacted_groups(release: Path, entry: dict, reference: str) -> list[str]:
    """Groups whose ratio in a used table was redacted (too few people to show)."""
    csvs = [f for f in entry.get("files", []) if f.endswith(".csv")]
    df = pd.read_csv(release / csvs[0], dtype=str, keep_default_na=False)
    triples = ratio_columns(list(df.columns))
    label = next((c for c in LABEL_COLUMNS if c in df.columns), None)
    if not triples or label is None:
        return []
    return [g for g, v in zip(df[label], df[triples[0][0]])
            if v == REDACTED and g != reference and g not in UNRECORDED_LABELS]


def trend_entries(index: dict) -> list[dict]:
    """Released tables and figures that describe change over time."""
    return [e for e in index.get("entries", [])
            if TREND_WORDS.search(f"{e.get('name', '').replace('_', ' ')} {e.get('caption', '')} {e.get('section', '')}")]


def fmt_ratio(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.1f}"


def phrase(row: RatioRow, reference: str) -> str:
    """'3.41 times the reference (95% CI 2.90 to 4.01): clearly higher' as HTML."""
    ci = f"95% CI {fmt_ratio(row.lower)} to {fmt_ratio(row.upper)}"
    if row.verdict == "higher":
        return (f"<span class='worse'>{fmt_ratio(row.ratio)} times</span> the {escape(reference)} figure ({ci}); "
                f"the interval excludes 1, so the difference is unlikely to be chance")
    if row.verdict == "lower":
        return (f"<span class='better'>{fmt_ratio(row.ratio)} times</span> the {escape(reference)} figure ({ci}); "
                "lower, and the interval excludes 1")
    return (f"<span class='unclear'>{fmt_ratio(row.ratio)} times</span> the {escape(reference)} figure ({ci}); "
            "the interval includes 1, so no clear difference")


def forest_plot(rows: list[RatioRow], reference: str):
    """A forest plot of the ratios (log scale), one panel row per estimate, grouped by measure."""
    import matplotlib.pyplot as plt

    from pcref_eval.style import OKABE_ITO, apply_style
    apply_style()
    labels = [f"{r.group}{' (' + r.period + ')' if r.period else ''}" for r in rows]
    measures = list(dict.fromkeys(r.measure for r in rows))
    height = 1.0 + 0.32 * len(rows) + 0.3 * len(measures)
    fig, ax = plt.subplots(figsize=(7.0, min(max(height, 2.4), 9.5)))
    y = 0.0
    yticks, ylabels = [], []
    for mi, m in enumerate(measures):
        colour = OKABE_ITO[mi % len(OKABE_ITO)]
        first = True
        for r, lab in zip(rows, labels):
            if r.measure != m:
                continue
            if r.ratio <= 0:  # a ratio of 0 has no place on a log scale: say so on its row
                yticks.append(y)
                ylabels.append(f"{lab} (ratio 0, not drawn)")
                y -= 1
                continue
            ax.errorbar(r.ratio, y, xerr=[[max(r.ratio - r.lower, 0)], [max(r.upper - r.ratio, 0)]], fmt="o", color=colour,
                        ecolor=colour, capsize=3, markersize=5, label=m if first else None)
            first = False
            yticks.append(y)
            ylabels.append(lab)
            y -= 1
        y -= 0.6
    ax.axvline(1, color="#4C6272", linewidth=1, linestyle="--")
    ax.set_xscale("log")
    left, right = log_axis_limits(rows)
    ax.set_xlim(left, right)
    ticks = [t for t in (0.25, 0.5, 1, 2, 3, 5, 10, 20) if left <= t <= right]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_yticks(yticks)
    ax.set_yticklabels(ylabels)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel(f"Ratio to {reference} (log scale; 95% CI)")
    handles, names = ax.get_legend_handles_labels()
    uniq = dict(zip(names, handles))
    if len(uniq) > 1:
        ax.legend([uniq[k] for k in uniq], [_short(k) for k in uniq], loc="upper center", fontsize=8, frameon=False,
                  bbox_to_anchor=(0.45, -0.14), ncol=1)
    fig.tight_layout()
    return fig


def log_axis_limits(rows: list[RatioRow]) -> tuple[float, float]:
    """x limits of a log-scale forest plot: from the smallest positive bound (a lower limit of 0, e.g. a ratio
    with no events in a group, cannot be placed on a log axis; its bar runs to the edge) to the largest,
    always including 0.8-1.25 around the line of no difference."""
    lows = [v for r in rows for v in (r.lower, r.ratio) if np.isfinite(v) and v > 0]
    highs = [v for r in rows for v in (r.upper, r.ratio) if np.isfinite(v) and v > 0]
    return min([x * 0.8 for x in lows] + [0.8]), max([x * 1.25 for x in highs] + [1.25])


def _short(text: str, n: int = 90) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


#: Row labels of a ratio comparing periods (the row that says whether the gap changed).
CHANGE_LABEL = re.compile(r"ratio of|after\s*/\s*before|post\s*/\s*pre|relative change|change in", re.IGNORECASE)
ESTIMATE_COLUMNS = ("estimate", "hazard_ratio", "rate_ratio", "odds_ratio", "irr", "hr", "rr", "ratio", "value")


def change_summary(release: Path, entry: dict) -> str | None:
    """One line describing a released "change over time" table (e.g. hazard ratios before/after go-live).

    Works for tables with a label column plus an estimate and its interval (``estimate``/``lower``/
    ``upper`` or a ratio triple). A row whose label says it is a ratio ("ratio of hazard ratios
    (after / before)") gets a verdict: below 1 throughout its interval, the gap narrowed; above 1,
    it widened; otherwise no clear change. Only rows labelled as such a ratio of periods get a verdict. Returns HTML, or None if the table has another shape.
    """
    csvs = [f for f in entry.get("files", []) if f.endswith(".csv")]
    if entry.get("kind") != "table" or not csvs or not (release / csvs[0]).exists():
        return None
    raw = pd.read_csv(release / csvs[0], dtype=str, keep_default_na=False)
    df = _read_released(release / csvs[0])
    est = next((c for c in ESTIMATE_COLUMNS if c in df.columns), None)
    lo = next((c for c in ("lower", "ci_lower", "lcl") if c in df.columns), None)
    up = next((c for c in ("upper", "ci_upper", "ucl") if c in df.columns), None)
    if est is None or lo is None or up is None:
        triples = ratio_columns(list(df.columns))
        if not triples:
            return None
        est, lo, up = triples[0]
    label = next((c for c in df.columns if c not in (est, lo, up) and not pd.api.types.is_numeric_dtype(df[c])), None)
    if label is None or len(df) > 8:
        return None
    parts = []
    verdict = ""
    for i, r in df.iterrows():
        name = escape(str(r[label]))
        vals = pd.to_numeric(pd.Series([r[est], r[lo], r[up]]), errors="coerce").to_numpy(float)
        if np.isnan(vals[0]):
            shown = "not shown (too few people)" if REDACTED in raw.loc[i, [est, lo, up]].tolist() else "not available"
            parts.append(f"{name}: {shown}")
            continue
        ci = "" if np.isnan(vals[1:]).any() else f" ({fmt_ratio(vals[1])} to {fmt_ratio(vals[2])})"
        parts.append(f"{name}: {fmt_ratio(vals[0])}{ci}")
        if CHANGE_LABEL.search(str(r[label])) and not np.isnan(vals[1:]).any() and not verdict:
            if vals[2] < 1:
                verdict = "<span class='better'>the gap narrowed</span> (the whole interval is below 1)"
            elif vals[1] > 1:
                verdict = "<span class='worse'>the gap widened</span> (the whole interval is above 1)"
            else:
                verdict = "<span class='unclear'>no clear change</span> (the interval includes 1)"
    return "; ".join(parts) + (f". Verdict: {verdict}." if verdict else ".")
