"""Event-time cells of the calendar-time Cox: year 0 in quarters, empty cells merged, not estimable cohorts dropped."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from pcref_eval.attribution.calendar_cox import (DROP, _merge_empty_cells, calendar_cox_data, event_bin_starts,
                                                 split_rows, treatment_cells)
from pcref_eval.attribution.design import design_from_sites

START, END = date(2021, 4, 1), date(2025, 4, 30)


def test_bin_starts_default_quarters_of_year_zero_then_years():
    assert event_bin_starts() == (0, 3, 6, 9, 12, 24)
    assert event_bin_starts(first_year_months=12) == (0, 12, 24)
    assert event_bin_starts(bins=2, first_year_months=6) == (0, 6, 12)


def _people(site: str, n: int, rng, event_from: float = 0.0) -> pd.DataFrame:
    entry = rng.uniform(0, 400, n)
    return pd.DataFrame({"site_id": site, "focus": np.r_[np.ones(n // 2), np.zeros(n - n // 2)].astype(np.int8),
                         "age": 40.0, "sex": "1", "imd_decile": 5.0, "entry": entry,
                         "exit": entry + rng.uniform(200, 1400, n),
                         "event": (rng.uniform(size=n) < 0.3).astype(np.int8)})


def test_rows_are_labelled_by_cohort_and_quarter_of_year_zero():
    rng = np.random.default_rng(1)
    design = design_from_sites({"a": date(2022, 10, 1), "f": date(2030, 1, 1)}, START, END)
    ac = pd.concat([_people("a", 400, rng), _people("f", 400, rng)], ignore_index=True)
    rows = split_rows(ac, design)
    label = treatment_cells(rows, design)
    g = design.go_live_month("a")
    since = rows["month"] - g
    live = (rows["site_id"] == "a") & (rows["focus"] == 1) & (since >= 0)
    assert (label[~live] == "").all()
    expected = np.searchsorted([0, 3, 6, 9, 12, 24], since[live], side="right") - 1
    assert (label[live] == "2022-10|" + pd.Series(expected, index=label[live].index).astype(str)).all()
    # no row straddles a bin start: each row's whole interval lies in one event-time bin
    bounds = design.month_days
    for b in (0, 3, 6, 9, 12, 24):
        cut = bounds[g + b]
        r = rows[(rows["site_id"] == "a") & (rows["focus"] == 1)]
        assert not ((r["start"] < cut) & (r["stop"] > cut)).any()


def test_empty_first_bin_is_merged_forward_and_a_cohort_without_events_is_dropped():
    rows = pd.DataFrame({"event": [0, 0, 1, 0, 1, 0, 0, 0]})
    label = pd.Series(["c|0", "c|0", "c|1", "c|2", "c|2", "d|0", "d|4", ""])
    out = _merge_empty_cells(label, rows)
    # c|0 has no event: into the next bin c|1; d has no event at all: its rows are left out
    assert out.tolist() == ["c|1", "c|1", "c|1", "c|2", "c|2", DROP, DROP, ""]


def test_cohort_without_focus_events_after_go_live_is_censored_not_a_diverging_term():
    rng = np.random.default_rng(2)
    design = design_from_sites({"a": date(2022, 10, 1), "b": date(2023, 10, 1), "f": date(2030, 1, 1)}, START, END)
    ac = pd.concat([_people(s, 400, rng) for s in ("a", "b", "f")], ignore_index=True)
    ac["event_day"] = ac["exit"]
    b_live = (ac["site_id"] == "b") & (ac["focus"] == 1) & (ac["exit"] > design.month_days[design.go_live_month("b")])
    ac.loc[b_live, "event"] = 0  # no focus event at site b after its go-live
    cd = calendar_cox_data(ac.drop(columns="event_day"), design)
    assert not any(c.startswith("pcref[2023-10") for c in cd.covariates)
    assert any(c.startswith("pcref[2022-10") for c in cd.covariates)
    assert np.isfinite(cd.X).all()
