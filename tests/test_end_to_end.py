"""End to end on small synthetic data: the run, failure isolation, determinism, and the demo command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pcref_eval.cli import main
from pcref_eval.config import EvaluationConfig, OutputConfig, SiteConfig
from pcref_eval.runner.pipeline import RunOptions, run_evaluation
from pcref_eval.synth import generate


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two identical runs over site_a, site_b and a broken copy of site_c (people.csv removed)."""
    root = tmp_path_factory.mktemp("e2e")
    generate(root / "data", people=3000, seed=7, n_sites=3)
    shutil.copytree(root / "data" / "site_c", root / "data" / "broken")
    (root / "data" / "broken" / "people.csv").unlink()
    config = EvaluationConfig(
        name="e2e", seed=7,
        sites=[SiteConfig(id=s, path=root / "data" / s) for s in ("site_a", "site_b", "broken")],
        outputs=OutputConfig(dir=root / "out", formats=["html"]),
    )
    first = run_evaluation(config, RunOptions(executor="process", run_id="first"), echo=lambda m: None)
    second = run_evaluation(config, RunOptions(executor="serial", run_id="second"), echo=lambda m: None)
    return first, second


def test_broken_site_is_reported_and_others_are_analysed(two_runs):
    first, _ = two_runs
    assert first.status == "partial" and first.exit_code == 1
    manifest = json.loads((first.run_dir / "manifest.json").read_text())
    assert manifest["sites"]["broken"]["contracts"]["status"] == "failed"
    assert "people" in manifest["sites"]["broken"]["contracts"]["message"]
    assert manifest["sites"]["broken"]["notebook"]["status"] == "skipped"
    for site in ("site_a", "site_b"):
        assert manifest["sites"][site]["notebook"]["status"] == "ok", manifest["sites"][site]
    assert manifest["steps"]["cross_site"]["status"] == "ok"
    html = (first.run_dir / "release" / "report.html").read_text()
    assert "broken" in html


def test_manifest_records_what_was_run(two_runs):
    first, _ = two_runs
    m = json.loads((first.run_dir / "manifest.json").read_text())
    assert m["run_id"] == "first" and m["seed"] == 7 and len(m["config_hash"]) == 64
    assert set(m["inputs"]["site_a"]["files"]) >= {"people.csv", "referrals.csv", "site.yml"}
    assert m["packages"]["pandas"] and m["packages"]["lifelines"]
    assert all(s["seconds"] >= 0 for s in m["sites"]["site_a"].values())


def test_runs_record_the_contract_suites_checked_with_great_expectations(two_runs):
    from pcref_eval.contracts.suite import read_verified, suite_files, suites_key

    first, _ = two_runs
    record = first.run_dir.parents[1] / ".cache" / "verified-contracts.json"
    assert read_verified(record) == {suites_key(suite_files(None)[1])}


def test_release_has_tables_figures_and_no_patient_level_files(two_runs):
    first, _ = two_runs
    release = first.run_dir / "release"
    tables = {p.name for p in (release / "tables").glob("*.csv")}
    assert {"site_a_table_one.csv", "site_a_detention_rates.csv", "site_a_km_broad.csv", "all_hazard_ratios.csv"} <= tables
    assert (release / "figures" / "site_a_km_broad.png").stat().st_size > 10_000
    assert not list(release.rglob("*.parquet")) and not list(release.rglob("*.ipynb"))
    assert (first.run_dir / "restricted" / "cohorts" / "site_a.parquet").exists()
    assert main(["check-release", str(first.run_dir)]) == 0


def test_same_inputs_same_seed_give_identical_release_tables(two_runs):
    first, second = two_runs
    a = {p.name: p.read_bytes() for p in sorted((first.run_dir / "release" / "tables").glob("*.csv"))}
    b = {p.name: p.read_bytes() for p in sorted((second.run_dir / "release" / "tables").glob("*.csv"))}
    assert a.keys() == b.keys() and len(a) > 10
    assert [name for name in a if a[name] != b[name]] == []


def _involving(rels, file):
    """Relations with ``file`` on either side."""
    return {r for r in rels if file in {r.total[0], *(p[0] for p in r.parts)}}


def test_relations_of_each_table_are_found_from_the_tables_it_can_join(two_runs):
    """The publisher reads only the tables a relation can join to the one it publishes (``relatable``), not the
    whole release: at 50 sites, reading ~1,300 tables before every table made each site notebook slower than
    the last. Every relation involving a table of a real run is found from that reduced set."""
    from pcref_eval.release_attack import load_release, relatable, release_relations

    kinds = ("table", "km_table")
    release = two_runs[0].run_dir / "release"
    full = load_release(release, kinds)
    every = release_relations(full)
    assert any(r.kind == "table_one: all sites = sum of sites" for r in every)  # cross-notebook relations exist
    smaller = 0
    for t in full:
        scope = load_release(release, kinds, keep=lambda owner, e, p=t.prefix: relatable(p, owner, e))
        assert {x.file for x in scope} <= {x.file for x in full}
        assert _involving(release_relations(scope), t.file) == _involving(every, t.file), t.file
        smaller += len(scope) < len(full)
    assert smaller >= len([t for t in full if t.prefix != "all"])  # a site's publisher reads less than everything


def test_bad_config_exits_2_with_the_key_named(tmp_path, capsys):
    cfg = tmp_path / "c.yml"
    cfg.write_text("sites: [{id: a, path: x}]\nstudy: {start: 2024-01-01, ende: 2025-01-01}\n")
    assert main(["run", "--config", str(cfg)]) == 2
    assert "study.ende" in capsys.readouterr().err
