"""Draw Making Data Count style XmR charts from :func:`pcref_eval.spc.xmr` output.

Style after NHS England's Making Data Count guidance and NHSRplotthedots: a grey line of
points, the mean as a solid line, process limits dashed, points coloured by type
(improvement blue, concern orange, common cause grey, neutral purple), an optional target
line, and the variation and assurance icons drawn as small labelled circles at the top right.
"""

from __future__ import annotations

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from pcref_eval.spc import xmr_summary
from pcref_eval.style import MDC_COMMON, MDC_CONCERN, MDC_IMPROVEMENT, apply_style

__all__ = ["xmr_chart", "POINT_COLOURS"]

MDC_NEUTRAL = "#7030A0"  # Making Data Count purple for special cause with no improvement direction
LINE_GREY = "#7F7F7F"
TARGET_RED = "#C00000"

POINT_COLOURS = {
    "common_cause": MDC_COMMON,
    "special_cause_improvement": MDC_IMPROVEMENT,
    "special_cause_concern": MDC_CONCERN,
    "special_cause_neutral": MDC_NEUTRAL,
}
POINT_LABELS = {
    "common_cause": "Common cause",
    "special_cause_improvement": "Special cause: improvement",
    "special_cause_concern": "Special cause: concern",
    "special_cause_neutral": "Special cause: neutral",
}

_VARIATION_ICON = {
    # icon -> (colour, letter, caption)
    "common_cause": (MDC_COMMON, "~", "Common\ncause"),
    "special_cause_improvement_high": (MDC_IMPROVEMENT, "H", "Improvement\n(high)"),
    "special_cause_improvement_low": (MDC_IMPROVEMENT, "L", "Improvement\n(low)"),
    "special_cause_concern_high": (MDC_CONCERN, "H", "Concern\n(high)"),
    "special_cause_concern_low": (MDC_CONCERN, "L", "Concern\n(low)"),
    "special_cause_neutral_high": (MDC_NEUTRAL, "H", "Neutral\n(high)"),
    "special_cause_neutral_low": (MDC_NEUTRAL, "L", "Neutral\n(low)"),
}
_ASSURANCE_ICON = {
    "consistent_pass": (MDC_IMPROVEMENT, "P", "Passes target\nconsistently"),
    "consistent_fail": (MDC_CONCERN, "F", "Fails target\nconsistently"),
    "inconsistent": (MDC_COMMON, "?", "Hit and miss\ntarget"),
}


def _draw_icon(ax, x: float, colour: str, letter: str, caption: str, heading: str) -> None:
    """One icon: a white circle with a coloured ring and letter, a heading above and a caption below."""
    ax.add_patch(Circle((x, 0.0), 0.42, facecolor="white", edgecolor=colour, linewidth=2.5))
    ax.text(x, 0.0, letter, ha="center", va="center", fontsize=12, fontweight="bold", color=colour)
    ax.text(x, 0.55, heading, ha="center", va="bottom", fontsize=8, color="#404040")
    ax.text(x, -0.55, caption, ha="center", va="top", fontsize=7.5, color="#404040", linespacing=1.1)


def _draw_icons(icon_ax, variation: str, assurance: str | None) -> None:
    """Variation (and, with a target, assurance) icons on ``icon_ax``, right-aligned."""
    icons = [("Variation", _VARIATION_ICON.get(variation, (MDC_COMMON, "~", variation)))]
    if assurance is not None:
        icons.append(("Assurance", _ASSURANCE_ICON[assurance]))
    slot = 2.0
    icon_ax.set_xlim(-2 * slot, 0)
    icon_ax.set_ylim(-1.3, 0.95)
    icon_ax.set_aspect("equal", adjustable="box", anchor="E")
    icon_ax.axis("off")
    for i, (heading, (colour, letter, caption)) in enumerate(reversed(icons)):
        _draw_icon(icon_ax, -slot * (i + 0.5), colour, letter, caption, heading)


def _segment_lines(ax, df: pd.DataFrame) -> None:
    """Mean (solid) and process limits (dashed), drawn separately for each rebased segment."""
    for s, g in df.groupby("segment", sort=True):
        x = g["date"]
        ax.plot(x, g["mean"], color="#262626", lw=1.4, label="Mean" if s == df["segment"].min() else None)
        ax.plot(x, g["upl"], color=LINE_GREY, lw=1.1, ls="--", label="Process limits" if s == df["segment"].min() else None)
        ax.plot(x, g["lpl"], color=LINE_GREY, lw=1.1, ls="--")


def xmr_chart(
    xmr_df: pd.DataFrame,
    title: str,
    ylabel: str,
    xlabel: str | None = None,
    ax=None,
    show_icons: bool = True,
    show_legend: bool = True,
    percent: bool = False,
) -> Figure:
    """Making Data Count XmR chart of an :func:`pcref_eval.spc.xmr` result; returns the Figure."""
    apply_style()
    own_figure = ax is None
    if own_figure:
        fig = plt.figure(figsize=(9, 5))
        ax = fig.add_axes((0.09, 0.22, 0.88, 0.58))
    else:
        fig = ax.figure
    df = xmr_df.reset_index(drop=True)
    ax.plot(df["date"], df["value"], color=LINE_GREY, lw=1.2, zorder=2)
    _segment_lines(ax, df)
    if "target" in df and df["target"].notna().any():
        ax.plot(df["date"], df["target"], color=TARGET_RED, lw=1.3, ls="-.", label="Target")
    present = [t for t in POINT_COLOURS if (df["point_type"] == t).any()]
    for t in present:
        m = df["point_type"] == t
        ax.scatter(df.loc[m, "date"], df.loc[m, "value"], s=36, color=POINT_COLOURS[t], edgecolor="white",
                   linewidth=0.6, zorder=3, label=POINT_LABELS[t])
    ax.set_ylabel(ylabel)
    if xlabel:
        ax.set_xlabel(xlabel)
    if percent:
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    if np.issubdtype(np.asarray(df["date"]).dtype, np.datetime64):
        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    if show_legend:
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=min(len(labels), 4),
                  frameon=False, fontsize=8)
    if own_figure:
        fig.text(0.09, 0.95, title, ha="left", va="top", fontsize=12)
    else:
        ax.set_title(title, loc="left", fontsize=11)
    if show_icons and len(df):
        summary = xmr_summary(df if "summary" in df.attrs else xmr_df)
        if own_figure:
            icon_ax = fig.add_axes((0.55, 0.81, 0.42, 0.18))
        else:
            icon_ax = ax.inset_axes((0.6, 0.72, 0.4, 0.28))
        _draw_icons(icon_ax, summary.variation, summary.assurance)
    return fig
