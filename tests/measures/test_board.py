"""The board page and the implementation-effect page publish only disclosure-controlled outputs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pcref_eval.config import load_config
from pcref_eval.disclosure import DisclosurePolicy
from pcref_eval.measures.board import (
    MIN_SPC_POINTS,
    _publishable,
    by_group_table,
    choose_resolution,
    focus_partition,
    publish_board,
)
from pcref_eval.measures.compute import COMBINED_FOCUS, summarise_window
from pcref_eval.measures.defaults import default_measures
from pcref_eval.measures.implementation import publish_implementation_effect
from pcref_eval.publish import Publisher
from pcref_eval.release_check import check_release

DEFS = {m.id: m for m in default_measures()}
UNRECORDED = ["Not stated", "Not known", "Missing"]


def _session(run_dir: Path, site, study: str, measures_yaml: str = ""):
    """A SiteSession-like object: config (written to run_dir/config.yml for the release check), site, publisher."""
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = run_dir / "config.yml"
    cfg_path.write_text(f"sites: [{{id: {site.info.site_id}, path: {site.folder}}}]\nstudy: {study}\n{measures_yaml}")
    config = load_config(cfg_path)
    pub = Publisher(run_dir, site.info.site_id, DisclosurePolicy.from_config(config.disclosure), display=False)
    return SimpleNamespace(config=config, site=site, pub=pub, run_dir=run_dir)


def test_board_on_the_tiny_site_redacts_and_keeps_unrecorded_rows(tmp_path, tiny_site):
    s = _session(tmp_path / "run", tiny_site, "{start: 2024-01-01, end: 2024-03-31}")
    summary = publish_board(s)
    assert summary["measure"].tolist() == [m.title for m in default_measures()]
    rel = tmp_path / "run" / "release"
    by_group = pd.read_csv(rel / "tables" / "tiny_board_by_group.csv", dtype=str, keep_default_na=False)
    for m in default_measures():
        groups = by_group.loc[by_group["measure_id"] == m.id, "group"].tolist()
        if m.group_by == "overall":
            assert groups == ["All"]
        else:
            assert groups[-4:] == [*UNRECORDED, COMBINED_FOCUS]
    # every count is 1-7 here: redacted, and every value derived from them blanked
    counts = by_group.loc[by_group["count"] != "0", "count"]
    assert set(counts) <= {"[REDACTED]"}
    assert not list((rel / "figures").glob("*.png"))  # 3 monthly / 1 quarterly points: too few for SPC
    assert check_release(tmp_path / "run") == []


def test_board_and_implementation_pages_on_a_synthetic_site(tmp_path, synthetic):
    site, _, data = synthetic
    run = tmp_path / "run"
    s = _session(run, site, "{start: 2021-04-01, end: 2025-03-31}")
    measures = [DEFS[k] for k in ("detentions", "ethnicity_recorded_people", "honos_change", "prone_restraint")]
    # (figures are the slow part: draw the board's charts, and the ITS chart of detentions only)
    summary = publish_board(s, data=data, measures=measures).set_index("measure")
    det = summary.loc[DEFS["detentions"].title]
    assert det["comparison"] == "ratio" and det["vs_reference_12m"] > 1.5
    assert det["vs_reference_lower"] < det["vs_reference_12m"] < det["vs_reference_upper"]
    assert det["variation"] != "" and det["assurance"] == "consistent fail"  # ratio far above parity
    assert det["spc_series"] == "monthly ratio"  # 2 early months withheld (under 10%)
    rec = summary.loc[DEFS["ethnicity_recorded_people"].title]
    assert rec["group"] == "All" and rec["comparison"] == "" and 80 < rec["value_12m"] <= 100
    assert summary.loc[DEFS["honos_change"].title, "comparison"] == "difference"
    figs = sorted(p.name for p in (run / "release" / "figures").glob("*.png"))
    assert "site_a_board_detentions_spc.png" in figs and "site_a_board_ethnicity_recorded_people_spc.png" in figs
    assert summary.loc[DEFS["prone_restraint"].title, "spc_series"] == "quarterly ratio"
    released = publish_implementation_effect(s, data=data, measures=measures, charts=["detentions"])
    assert released["measure_id"].tolist() == ["detentions", "prone_restraint"]
    assert released.loc[0, "level_change_lower"] <= 0.70 <= released.loc[0, "level_change_upper"]
    assert (run / "release" / "figures" / "site_a_implementation_detentions.png").exists()
    assert (run / "release" / "figures" / "site_a_implementation_forest.png").exists()
    assert not (run / "release" / "figures" / "site_a_implementation_prone_restraint.png").exists()
    assert check_release(run) == []


def test_resolution_is_monthly_only_when_every_month_passes(synthetic):
    _, _, data = synthetic
    policy = DisclosurePolicy()
    res, series = choose_resolution(data, DEFS["detentions"], "White British", policy)
    assert res == "month" and len(series) == 48  # 2 of 48 early months fail: withheld, still monthly
    assert (~_publishable(series, policy)).sum() == 2
    res, series = choose_resolution(data, DEFS["prone_restraint"], "White British", policy)
    assert res == "quarter" and len(series) == 16  # most months fail
    assert series["period"].dt.month.isin([1, 4, 7, 10]).all()
    assert MIN_SPC_POINTS <= 16


def test_combined_focus_row_is_declared_the_total_of_the_focus_groups(tiny_measures):
    window = summarise_window(tiny_measures, months=3, reference="White British")
    agg = by_group_table(window, default_measures(), "White British", DisclosurePolicy(), "pcref")
    assert agg.totals is not None and agg.totals.total_label == COMBINED_FOCUS
    d = agg.data[agg.data["measure_id"] == "detentions"].set_index("group")
    assert d.loc["Black African", "group_set"] == "PCREF focus" and d.loc["White British", "group_set"] == "other"
    focus = ["Black African", "Black Caribbean", "Black Mixed", "Black Other"]
    assert d.loc[COMBINED_FOCUS, "count"] == d.loc[focus, "count"].sum()
    # reference counts are disclosive here: no comparison is released for this measure
    assert d["vs_reference"].isna().all()
    assert sorted(focus_partition("pcref")[0]) == focus and focus_partition("pcref")[1]
    assert focus_partition("broad") == (["Black"], False)  # Black Mixed people are inside "Mixed"
    assert focus_partition("detailed")[1]
    broad = by_group_table(window, default_measures(), "White British", None, "broad")
    assert broad.totals is None


def test_board_summary_numbers_come_from_released_tables(tmp_path, synthetic):
    site, _, data = synthetic
    s = _session(tmp_path / "run", site, "{start: 2021-04-01, end: 2025-03-31}")
    summary = publish_board(s, data=data, measures=[DEFS["adverse_pathway"]], charts=False)
    rel = tmp_path / "run" / "release" / "tables"
    groups = pd.read_csv(rel / "site_a_board_by_group.csv")
    focus = groups[(groups["measure_id"] == "adverse_pathway") & (groups["group"] == COMBINED_FOCUS)].iloc[0]
    assert summary.loc[0, "value_12m"] == pytest.approx(focus["value"])
    assert summary.loc[0, "vs_reference_12m"] == pytest.approx(focus["vs_reference"])
    series = pd.read_csv(rel / "site_a_board_adverse_pathway_series.csv")
    assert summary.loc[0, "latest_value"] == pytest.approx(series["focus_value"].iloc[-1])
    assert series["focus_count"].dropna().mod(5).eq(0).all()  # rounded by the publisher
    assert np.isfinite(summary.loc[0, "vs_reference_lower"])
