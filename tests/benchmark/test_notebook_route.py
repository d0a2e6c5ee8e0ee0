"""The cross-site notebook route: ``publish_site_benchmark`` on synthetic sites that name real ICBs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from pcref_eval.benchmark.release import publish_site_benchmark
from pcref_eval.config import CohortConfig
from pcref_eval.disclosure import DisclosurePolicy
from pcref_eval.extract import load_site
from pcref_eval.publish import Publisher
from pcref_eval.release_check import check_release
from pcref_eval.synth import generate

REPO = Path(__file__).resolve().parents[2]


def _session(tmp_path, drop_icb=False):
    generate(tmp_path / "data", n_sites=2, people=3000, seed=7)
    sites = {}
    for sid in ("site_a", "site_b"):
        folder = tmp_path / "data" / sid
        if drop_icb:
            yml = folder / "site.yml"
            yml.write_text("".join(l for l in yml.read_text().splitlines(True) if not l.startswith(("icb", "ods"))))
        sites[sid] = load_site(folder, tables=["people"])
    pub = Publisher(tmp_path / "run", "all", DisclosurePolicy(), display=False)
    return SimpleNamespace(config=SimpleNamespace(cohort=CohortConfig()), sites=sites, pub=pub)


def test_publish_site_benchmark_releases_site_tables_and_the_funnel(tmp_path):
    x = _session(tmp_path)
    out = publish_site_benchmark(x)
    assert sorted(out) == ["site_a", "site_b"]
    assert set(out["site_a"]["icb"]) == {"QKK"} and set(out["site_b"]["icb"]) == {"QHL"}
    release = tmp_path / "run" / "release"
    assert (release / "tables" / "all_benchmark_icb_detentions.csv").is_file()
    assert (release / "figures" / "all_benchmark_funnel_detentions.png").is_file()
    # the sentence's overdispersion factors are released values (a 2-site report once quoted 9.3, in no table)
    from pcref_eval.benchmark.funnel import icb_funnel
    from pcref_eval.benchmark.published import latest, load_mha
    phi = pd.read_csv(release / "tables" / "all_benchmark_icb_detentions_overdispersion.csv").iloc[0]
    _, targets = icb_funnel(latest(load_mha()), "All detentions")
    assert round(phi["phi_rate"], 1) == round(targets["phi_rate"], 1) > 1
    assert round(phi["phi_ratio"], 1) == round(targets["phi_ratio"], 1) > 1
    released = pd.read_csv(release / "tables" / "all_benchmark_site_a.csv", dtype=str)
    counts = released["site_count"][released["site_count"] != "[REDACTED]"].astype(int)
    assert (counts % 5 == 0).all()
    assert not check_release(tmp_path / "run", policy=DisclosurePolicy())


def test_sites_without_icb_are_skipped_with_a_note(tmp_path):
    x = _session(tmp_path, drop_icb=True)
    assert publish_site_benchmark(x) == {}
    assert not (tmp_path / "run" / "release" / "tables" / "all_benchmark_icb_detentions.csv").exists()


def test_cross_site_notebook_ends_with_the_benchmark_cell_and_has_no_outputs():
    nb = json.loads((REPO / "notebooks" / "cross_site.ipynb").read_text())
    last = nb["cells"][-1]
    assert last["cell_type"] == "code" and "publish_site_benchmark(x)" in "".join(last["source"])
    assert not last["outputs"]
