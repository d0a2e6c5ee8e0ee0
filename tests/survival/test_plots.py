"""Figures are drawn from tidy (released) tables and written as SVG + 300-dpi PNG."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
from matplotlib.text import Annotation
import numpy as np
import pandas as pd
import pytest

from pcref_eval.survival import (
    cumulative_incidence,
    gap_change,
    kaplan_meier,
    km_release_table,
    number_at_risk,
    plot_cumulative_incidence,
    plot_forest,
    plot_km,
    simulate_gap_cohort,
)


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    c = simulate_gap_cohort(12_000, seed=2)
    c["detained"] = (c["status"] == 1).astype(int)
    return c


def _png_size(path) -> tuple[int, int]:
    img = plt.imread(path)
    return img.shape[1], img.shape[0]


def test_km_figure_from_released_table(cohort, tmp_path):
    km = kaplan_meier(cohort, "duration_days", "detained", "ethnic_group")
    rel = km_release_table(km)
    fig = plot_km(rel, title="Released", risk_times=[0, 250, 500, 750], path=tmp_path / "km")
    svg, png = fig.saved_paths
    assert svg.suffix == ".svg" and png.suffix == ".png"
    assert svg.stat().st_size > 1000 and png.stat().st_size > 1000
    width, height = _png_size(png)
    assert width > 1500 and height > 1000  # 300 dpi
    # the number-at-risk table shows the released (rounded) numbers at the x-axis ticks
    text = svg.read_text()
    nar = number_at_risk(rel, [0, 250, 500, 750])
    for value in nar.to_numpy().ravel():
        assert f">{value:,}<" in text or f"{value:,}" in text
    unrounded = number_at_risk(km, [0])
    assert not (unrounded.to_numpy() == nar[[0.0]].to_numpy()).all()  # figure is not from raw counts
    # curve and risk table share the x axis, so the columns sit under the curve's ticks
    curve_ax, risk_ax = fig.axes
    assert list(curve_ax.get_xticks()) == [0, 250, 500, 750]
    assert list(risk_ax.get_xticks()) == [0, 250, 500, 750]
    numbers = [t for t in risk_ax.texts if not isinstance(t, Annotation)]  # annotations = group labels
    columns = sorted({round(t.get_position()[0], 6) for t in numbers})
    assert columns == [0, 250, 500, 750]
    plt.close(fig)


def test_number_at_risk_matches_kaplan_meier_times(cohort):
    km = kaplan_meier(cohort, "duration_days", "detained", "ethnic_group")
    times = [0, 100, 365.25, 900, 5000]
    nar = number_at_risk(km, times)
    at = kaplan_meier(cohort, "duration_days", "detained", "ethnic_group", times=times)
    for g, part in at.groupby("group"):
        np.testing.assert_array_equal(nar.loc[g].to_numpy(), part["n_risk"].to_numpy())


def test_cif_and_forest_figures_written(cohort, tmp_path):
    cif = cumulative_incidence(cohort, "duration_days", "status", 1, "ethnic_group")
    fig = plot_cumulative_incidence(cif, path=tmp_path / "cif")
    assert all(p.exists() and p.stat().st_size > 1000 for p in fig.saved_paths)
    plt.close(fig)
    res = gap_change(cohort)
    table = res.table.assign(label=lambda d: d["group"] + " " + d["quantity"])
    fig = plot_forest(table, label_col="label", estimate_col="estimate", lower_col="lower", upper_col="upper",
                      colour_by="group", path=tmp_path / "forest")
    svg, png = fig.saved_paths
    labels = re.findall(r"Black hr_pre|Black ratio_post_pre", svg.read_text())
    assert len(set(labels)) == 2
    plt.close(fig)


def test_km_and_cif_figures_of_a_fully_withheld_table_say_so(tmp_path):
    """A small site whose every group is below the threshold releases an empty KM table: the figure says
    so instead of failing the site notebook ("Axis limits cannot be NaN or Inf")."""
    empty = pd.DataFrame(columns=["group", "time", "n_risk", "n_event", "surv", "estimate", "lower", "upper"])
    for fig in (plot_km(empty, path=tmp_path / "km"), plot_cumulative_incidence(empty)):
        assert "No curve released" in fig.axes[0].texts[0].get_text()
    assert (tmp_path / "km.png").is_file()
