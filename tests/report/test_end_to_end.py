"""Slow: a real run of the pipeline (the project's notebooks on synthetic data) ends with a clean release."""

from __future__ import annotations

import json

import docx
import pytest
from bs4 import BeautifulSoup

from pcref_eval.release_check import check_release
from pcref_eval.report.render import external_references


@pytest.mark.slow
def test_pipeline_run_publishes_a_clean_offline_report(tmp_path):
    from pcref_eval.demo import demo_config, ensure_demo_data
    from pcref_eval.runner.pipeline import RunOptions, run_evaluation

    data = tmp_path / "data"
    ensure_demo_data(data, people=2000, seed=11, sites=2, echo=lambda m: None)
    config = demo_config(data, tmp_path / "out", seed=11, formats=["html", "pdf", "docx"])
    result = run_evaluation(config, RunOptions(executor="serial"), echo=lambda m: None)
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["steps"]["report"]["status"] == "ok", manifest["steps"]
    assert manifest["steps"]["release_check"]["status"] == "ok", manifest["steps"]
    release = result.run_dir / "release"
    assert {"report.html", "report.pdf", "report.docx", "release-check.json"} <= {p.name for p in release.iterdir()}
    assert check_release(result.run_dir) == []
    html = (release / "report.html").read_text()
    assert external_references(html) == []
    soup = BeautifulSoup(html, "html.parser")
    assert soup.select("div.key-findings") and len(soup.select("figure.pcref-figure")) >= 4
    assert "Which groups fare worse" in soup.get_text()
    doc = docx.Document(str(release / "report.docx"))
    assert len(doc.tables) >= 10 and len(doc.inline_shapes) >= 4
