"""Figures drawn from tidy (possibly released, rounded) tables, never from patient-level data.

- :func:`plot_km`: Kaplan-Meier step curves by group with CI bands and a number-at-risk
  table under the x axis, its columns aligned with the x-axis ticks.
- :func:`plot_cumulative_incidence`: Aalen-Johansen cumulative incidence curves (same layout).
- :func:`plot_forest`: hazard ratios with CIs on a log axis.

All use :mod:`pcref_eval.style` (Okabe-Ito palette); pass ``path`` to save SVG + 300-dpi PNG
with :func:`pcref_eval.style.save_figure` (the paths are stored in ``fig.saved_paths``).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

from pcref_eval.style import apply_style, group_colours, save_figure


def _step_data(part: pd.DataFrame, value: str, lower: str, upper: str, start_value: float):
    """Arrays for a step curve starting at time 0."""
    t = part["time"].to_numpy(dtype=np.float64)
    y = part[value].to_numpy(dtype=np.float64)
    lo = part[lower].to_numpy(dtype=np.float64) if lower in part else np.full_like(y, np.nan)
    hi = part[upper].to_numpy(dtype=np.float64) if upper in part else np.full_like(y, np.nan)
    if t.size == 0 or t[0] > 0:
        t = np.r_[0.0, t]
        y = np.r_[start_value, y]
        lo = np.r_[start_value, lo]
        hi = np.r_[start_value, hi]
    return t, y, lo, hi


def number_at_risk(table: pd.DataFrame, times) -> pd.DataFrame:
    """Number at risk per group at the given times, read from a tidy KM / CIF table.

    At time t it is n_risk of the first row with time >= t (nothing changes between rows, in
    either the full or a released table); after the last row it is that row's n_risk minus its
    events and censorings (and competing events, if present).
    """
    out = {}
    for level, part in table.groupby("group", sort=False):
        part = part.sort_values("time")
        t = part["time"].to_numpy(dtype=np.float64)
        nr = part["n_risk"].to_numpy(dtype=np.float64)
        leaving = part["n_event"].to_numpy() + part["n_censored"].to_numpy()
        if "n_competing" in part:
            leaving = leaving + part["n_competing"].to_numpy()
        after_last = nr[-1] - leaving[-1] if nr.size else 0.0
        idx = np.searchsorted(t, np.asarray(times, dtype=np.float64), side="left")
        out[level] = np.where(idx < t.size, nr[np.minimum(idx, t.size - 1)], after_last).astype(np.int64)
    return pd.DataFrame(out, index=pd.Index(np.asarray(times, dtype=np.float64), name="time")).T


def _curve_figure(
    table: pd.DataFrame,
    value: str,
    start_value: float,
    ylabel: str,
    xlabel: str,
    title: str | None,
    conf_int: bool,
    risk_table: bool,
    risk_times,
    xmax: float | None,
    groups: list | None,
    path: str | Path | None,
    ylim: tuple[float, float] | None,
):
    apply_style()
    if table.empty:  # every group withheld by disclosure control (a small site): say so, draw no curve
        fig, ax = plt.subplots(figsize=(7.5, 2.0))
        ax.text(0.5, 0.5, "No curve released: every group is below the disclosure threshold", ha="center",
                va="center", transform=ax.transAxes, fontsize=9, color="#425563")
        ax.set_axis_off()
        if title:
            ax.set_title(title, loc="left")
        if path is not None:
            fig.saved_paths = save_figure(fig, path)
        return fig
    groups = list(pd.unique(table["group"])) if groups is None else list(groups)
    colours = group_colours(groups)
    n_rows = len(groups)
    if risk_table:
        fig = plt.figure(figsize=(7.5, 4.6 + 0.28 * n_rows))
        grid = fig.add_gridspec(2, 1, height_ratios=[4.2, 0.45 + 0.28 * n_rows], hspace=0.12)
        ax = fig.add_subplot(grid[0])
        ax_risk = fig.add_subplot(grid[1], sharex=ax)
    else:
        fig, ax = plt.subplots(figsize=(7.5, 4.6))
        ax_risk = None
    tmax = float(table["time"].max()) if xmax is None else float(xmax)
    for g in groups:
        part = table[table["group"] == g].sort_values("time")
        t, y, lo, hi = _step_data(part, value, "lower", "upper", start_value)
        if t[-1] < tmax:  # carry the last value to the right edge
            t, y, lo, hi = np.r_[t, tmax], np.r_[y, y[-1]], np.r_[lo, lo[-1]], np.r_[hi, hi[-1]]
        ax.step(t, y, where="post", color=colours[g], label=str(g), linewidth=1.6)
        if conf_int and np.isfinite(lo).any():
            ax.fill_between(t, lo, hi, step="post", color=colours[g], alpha=0.18, linewidth=0)
    ax.set_xlim(0, tmax)
    ax.set_ylim(*(ylim or (0, 1.02)))
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, loc="left")
    ax.legend(frameon=False, loc="best", title=None)
    ticks = np.asarray(risk_times, dtype=np.float64) if risk_times is not None else MaxNLocator(nbins=6, integer=True).tick_values(0, tmax)
    ticks = ticks[(ticks >= 0) & (ticks <= tmax)]
    ax.set_xticks(ticks)
    if ax_risk is None:
        ax.set_xlabel(xlabel)
    else:
        plt.setp(ax.get_xticklabels(), visible=False)
        nar = number_at_risk(table, ticks)
        ax_risk.set_ylim(-0.5, n_rows - 0.5)
        ax_risk.set_yticks([])
        widest = max((len(f"{v:,}") for v in nar.to_numpy().ravel()), default=1)
        offset = 3.0 * widest + 8  # points: clear of the numbers centred on the first tick
        for row, g in enumerate(groups):
            ax_risk.annotate(
                str(g), xy=(0, row), xycoords=("axes fraction", "data"), xytext=(-offset, 0),
                textcoords="offset points", ha="right", va="center", fontsize=9, color=colours[g],
            )
            for x, v in zip(ticks, nar.loc[g].to_numpy() if g in nar.index else []):
                ax_risk.text(x, row, f"{v:,}", ha="center", va="center", fontsize=8.5, color=colours[g])
        ax_risk.invert_yaxis()
        ax_risk.grid(False)
        for side in ("left", "top", "right"):
            ax_risk.spines[side].set_visible(False)
        ax_risk.tick_params(axis="y", length=0)
        ax_risk.set_xlabel(xlabel)
        ax_risk.set_title("Number at risk", loc="left", fontsize=9)
    if path is not None:
        fig.saved_paths = save_figure(fig, path)
    return fig


def plot_km(
    km_table: pd.DataFrame,
    title: str | None = None,
    xlabel: str = "Days since cohort entry",
    ylabel: str = "Proportion not detained",
    conf_int: bool = True,
    risk_table: bool = True,
    risk_times=None,
    xmax: float | None = None,
    groups: list | None = None,
    ylim: tuple[float, float] | None = None,
    path: str | Path | None = None,
):
    """Kaplan-Meier curves by group from a tidy table (kaplan_meier or km_release_table output)."""
    return _curve_figure(km_table, "surv", 1.0, ylabel, xlabel, title, conf_int, risk_table, risk_times, xmax, groups, path, ylim)


def plot_cumulative_incidence(
    cif_table: pd.DataFrame,
    title: str | None = None,
    xlabel: str = "Days since cohort entry",
    ylabel: str = "Cumulative incidence",
    conf_int: bool = True,
    risk_table: bool = True,
    risk_times=None,
    xmax: float | None = None,
    groups: list | None = None,
    ylim: tuple[float, float] | None = None,
    path: str | Path | None = None,
):
    """Cumulative incidence curves by group from :func:`cumulative_incidence` output."""
    if ylim is None and not cif_table.empty:
        top = float(np.nanmax(cif_table[["estimate", "upper"]].to_numpy(dtype=np.float64)))
        ylim = (0, min(1.0, max(0.05, top * 1.1)))
    return _curve_figure(cif_table, "estimate", 0.0, ylabel, xlabel, title, conf_int, risk_table, risk_times, xmax, groups, path, ylim)


def forest_label(estimate: float, lower: float, upper: float) -> str:
    """Value label of a forest-plot row: "1.00 (reference)", "[REDACTED]" or "2.31 (1.90, 2.80)"."""
    if not np.isfinite(estimate):
        return "  [REDACTED]"
    if not (np.isfinite(lower) and np.isfinite(upper)):
        return f"  {estimate:.2f} (reference)" if estimate == 1 else f"  {estimate:.2f}"
    return f"  {estimate:.2f} ({lower:.2f}, {upper:.2f})"


def plot_forest(
    table: pd.DataFrame,
    label_col: str = "term",
    estimate_col: str = "hr",
    lower_col: str = "hr_lower",
    upper_col: str = "hr_upper",
    xlabel: str = "Hazard ratio (95% CI, log scale)",
    title: str | None = None,
    colour_by: str | None = None,
    path: str | Path | None = None,
):
    """Forest plot of ratios with CIs on a log axis, with a reference line at 1 and value labels."""
    apply_style()
    rows = table.reset_index(drop=True)
    n = len(rows)
    fig, ax = plt.subplots(figsize=(7.5, 0.8 + 0.42 * n))
    keys = rows[colour_by] if colour_by else pd.Series(["all"] * n)
    colours = group_colours(list(pd.unique(keys)))
    y = np.arange(n)[::-1]
    est = rows[estimate_col].to_numpy(dtype=np.float64)
    lo = rows[lower_col].to_numpy(dtype=np.float64)
    hi = rows[upper_col].to_numpy(dtype=np.float64)
    for yi, e, a, b, k in zip(y, est, lo, hi, keys):
        ax.plot([a, b], [yi, yi], color=colours[k], linewidth=1.8)
        ax.plot([e], [yi], marker="s", color=colours[k], markersize=6)
    ax.axvline(1.0, color="#000000", linewidth=0.8, linestyle="--")
    ax.set_xscale("log")
    ax.set_yticks(y)
    ax.set_yticklabels(rows[label_col].astype(str))
    ax.set_ylim(-0.7, n - 0.3)
    ax.grid(axis="y", visible=False)
    finite = np.isfinite(np.r_[lo, hi])
    span = np.r_[lo, hi][finite]
    left, right = (span.min() / 1.3, span.max() * 2.2) if span.size else (0.5, 2)
    ax.set_xlim(min(left, 0.8), max(right, 1.25))
    lo_lim, hi_lim = ax.get_xlim()
    nice = np.array([0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100])
    ax.xaxis.set_major_locator(FixedLocator(nice[(nice >= lo_lim) & (nice <= hi_lim / 1.8)]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    for yi, e, a, b in zip(y, est, lo, hi):
        ax.text(ax.get_xlim()[1], yi, forest_label(e, a, b), va="center", ha="right", fontsize=8.5)
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title, loc="left")
    if path is not None:
        fig.saved_paths = save_figure(fig, path)
    return fig
