"""A real run (3 synthetic sites, the site and cross-site notebooks): its release passes the attacking check,
every relation the attacker uses holds on the restricted true counts, and the independent MILP attacker
recovers no rounded or redacted count."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pcref_eval.config import EvaluationConfig, OutputConfig, SiteConfig
from pcref_eval.disclosure import DisclosurePolicy
from pcref_eval.release_attack import load_release, release_relations
from pcref_eval.release_check import analysed_sites, check_release
from pcref_eval.runner.pipeline import RunOptions, run_evaluation
from pcref_eval.synth import generate

from .attacker import recover

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("attack")
    generate(root / "data", people=3000, seed=7, n_sites=2)
    config = EvaluationConfig(name="attack", seed=7,
                              sites=[SiteConfig(id=s, path=root / "data" / s) for s in ("site_a", "site_b")],
                              outputs=OutputConfig(dir=root / "out", formats=["html"]))
    return run_evaluation(config, RunOptions(executor="serial", run_id="r"), echo=lambda m: None).run_dir


def test_pipeline_release_resists_the_attacks(run):
    assert check_release(run) == []
    tables = load_release(run / "release", ("table", "km_table"))
    rels = [r for r in release_relations(tables, analysed_sites(run)) if not r.rounded_sum]
    kinds = {r.kind for r in rels}
    assert {"table_one: all sites = sum of sites", "cohort flow last step = Table 1",
            "ITS events before/after go-live = sum of the series' periods"} <= kinds
    assert any(k.startswith("Kaplan-Meier") for k in kinds)
    km_files = {t.file for t in tables if t.kind == "km_table"}

    def truth(cell):
        true = pd.read_csv(run / "restricted" / "tables" / Path(cell[0]).name)
        if cell[0] in km_files:  # a group's first row: its people (the restricted KM table has every time)
            group = pd.read_csv(run / "release" / cell[0]).iloc[cell[1]]["group"]
            return true[true["group"] == group].sort_values("time").iloc[0]["n_risk"]
        return true.iloc[cell[1]][cell[2]]
    shared: dict = {}
    for r in rels:
        parts = sum(truth(p) for p in r.parts)
        if r.total[0] == "virtual":  # a quantity no table releases: every relation through it gives one value
            assert shared.setdefault(r.total, parts) == parts, r
        else:
            assert truth(r.total) == parts, r
    policy = DisclosurePolicy.opensafely()
    cells = {(t.file, i, c): (("midpoint", t.raw.iloc[i][c], policy.km_rounding) if t.kind == "km_table"
                              else t.raw.iloc[i][c])
             for t in tables for c in t.raw.columns for i in range(len(t.raw))}
    assert recover(cells, [(r.total, list(r.parts)) for r in rels], policy.threshold, policy.rounding) == {}
