"""Calendar-time rows and cells: person-time and events are conserved; splits fall on the boundaries."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from pcref_eval.attribution.calendar_cox import split_rows
from pcref_eval.attribution.design import (NEVER, analysis_cohort, cells, comparison_event_months, control_quarters,
                                          design_from_sites)
from pcref_eval.synth.calendar import average_effect_on_treated

START, END = date(2021, 4, 1), date(2025, 4, 30)


@pytest.fixture(scope="module")
def ac(demo):
    cohort, _, _ = demo
    return analysis_cohort(cohort, "White British", START)


@pytest.fixture(scope="module")
def design(demo):
    return design_from_sites(demo[1], START, END)


def test_go_live_months_and_never_live_site(design):
    assert design.go_live_month("site_a") == 18  # 2022-10 is month 18 from 2021-04
    assert design.go_live_month("site_e") == 36  # the national mandate, April 2024
    assert design.go_live_month("site_f") == NEVER  # 2025-10: after the window
    assert design.adoption_cohort("site_d") == design.adoption_cohort("site_e") == "2024-04"
    assert list(control_quarters(design, ["site_a", "site_f"])) == list(range(17))


def test_control_quarters_stop_when_every_site_is_live(design):
    q = control_quarters(design, ["site_a", "site_b"])  # both live from 2023-04 (quarter 8)
    assert q.max() == 7


def test_comparison_event_months_end_where_every_site_is_live(design):
    """With a never-live site every month is compared; without one, months stop at the last go-live."""
    with_never = comparison_event_months(design, ["site_a", "site_e", "site_f"])
    assert with_never == {"site_a": design.n_months - 18, "site_e": design.n_months - 36}  # site_f never live
    all_live = comparison_event_months(design, ["site_a", "site_b", "site_e"])
    assert all_live == {"site_a": 36 - 18, "site_b": 36 - 24, "site_e": 0}  # every site live from 2024-04


def test_truth_over_the_compared_months_only():
    """exp of the person-day weighted mean log effect, event months at or past each site's limit left out."""
    effects = {"a": {0: 0.9, 1: 0.8, 2: 0.5}, "b": {0: 0.7, 1: 0.6}}
    weights = {"a": {0: 10.0, 1: 30.0, 2: 60.0}, "b": {0: 20.0, 1: 40.0}}
    full = np.exp((10 * np.log(0.9) + 30 * np.log(0.8) + 60 * np.log(0.5) + 20 * np.log(0.7) + 40 * np.log(0.6)) / 160)
    assert average_effect_on_treated(effects, weights) == pytest.approx(full, rel=1e-12)
    compared = np.exp((10 * np.log(0.9) + 30 * np.log(0.8) + 20 * np.log(0.7)) / 60)
    assert average_effect_on_treated(effects, weights, {"a": 2, "b": 1}) == pytest.approx(compared, rel=1e-12)


def test_split_rows_conserve_person_time_and_events(ac, design):
    rows = split_rows(ac, design)
    assert rows["event"].sum() == ac["event"].sum()
    assert (rows["stop"] - rows["start"]).sum() == pytest.approx((ac["exit"] - ac["entry"]).sum(), rel=1e-12)
    assert (rows["stop"] > rows["start"]).all()
    focus = rows[rows["focus"] == 1]
    q_start = design.quarter_of_month(np.clip(np.searchsorted(design.month_days, focus["start"], "right") - 1, 0, None))
    q_stop = design.quarter_of_month(np.clip(np.searchsorted(design.month_days, focus["stop"], "left") - 1, 0, None))
    assert (q_start == q_stop).all()  # no focus row crosses a calendar quarter
    assert (rows["focus"] == 0).sum() == (ac["focus"] == 0).sum()  # reference rows are never split


def test_cells_add_up_to_the_cohort(ac, design):
    c = cells(ac, design)
    assert len(c) == 6 * design.n_months
    assert c["focus_events"].sum() + c["reference_events"].sum() == ac["event"].sum()
    assert c["focus_events"].sum() == ac.loc[ac["focus"] == 1, "event"].sum()
    days = np.clip(ac["exit"], None, design.month_days[-1]) - ac["entry"]
    assert c["focus_days"].sum() + c["reference_days"].sum() == pytest.approx(days.sum(), rel=1e-12)
