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
    tables = load_release(run / "release")
    rels = [r for r in release_relations(tables, analysed_sites(run)) if not r.rounded_sum]
    kinds = {r.kind for r in rels}
    assert {"table_one: all sites = sum of sites", "cohort flow last step = Table 1"} <= kinds

    def truth(cell):
        return pd.read_csv(run / "restricted" / "tables" / Path(cell[0]).name).iloc[cell[1]][cell[2]]
    for r in rels:
        assert truth(r.total) == sum(truth(p) for p in r.parts), r
    cells = {(t.file, i, c): t.raw.iloc[i][c] for t in tables for c in t.raw.columns for i in range(len(t.raw))}
    policy = DisclosurePolicy.opensafely()
    assert recover(cells, [(r.total, list(r.parts)) for r in rels], policy.threshold, policy.rounding) == {}
