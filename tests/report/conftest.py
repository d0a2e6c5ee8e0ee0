"""A small but real run folder for report and release-check tests, built without a Jupyter kernel.

Two synthetic sites are analysed with the library (cohort, Table 1, crude rates) and published
through the real :class:`Publisher` (so release/ holds genuinely controlled files); the executed
notebooks are written with nbformat, their outputs made exactly as the Publisher displays them
(same HTML and ``pcref`` metadata). A third configured site has no data (contracts failed), to test
how the report explains sites that were not analysed. Code cells carry planted secrets in their
sources, ``execute_result`` outputs and streams that must never reach the report.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import matplotlib
import nbformat
import pandas as pd
import pytest

matplotlib.use("Agg")

SECRETS = ("SECRET_CODE_SOURCE", "SECRET_EXECUTE_RESULT", "SECRET_STDOUT", "SECRET_STDERR", "SECRET_UNTAGGED_HTML")
SITE_IDS = ("site_a", "site_b")
FAILED_SITE = "site_c"


class _Step:
    def __init__(self, status, message="", seconds=1.0):
        self.status, self.message, self.seconds = status, message, seconds


def _table_cell(pub, agg, name, caption, section="Results"):
    rt = pub.release_table(agg, name, caption, section)
    cell = nbformat.v4.new_code_cell(source=f"pub.table(agg, {name!r})  # SECRET_CODE_SOURCE")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": rt.html, "text/plain": "<HTML>"},
                                           metadata={"pcref": {"kind": "table", "name": rt.stem, "caption": caption,
                                                               "section": section}})]
    return cell, rt


def _figure_cell(pub, fig, name, caption, section="Results"):
    width = int(fig.get_size_inches()[0] * 100)
    paths = pub.figure(fig, name, caption, section)
    png = next(p for p in paths if p.suffix == ".png").read_bytes()
    stem = f"{pub.prefix}_{name}"
    cell = nbformat.v4.new_code_cell(source="pub.figure(fig)  # SECRET_CODE_SOURCE")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(png).decode(), "text/plain": "<Image>"},
                               metadata={"image/png": {"width": width},
                                         "pcref": {"kind": "figure", "name": stem, "caption": caption, "section": section}}),
        nbformat.v4.new_output("display_data", data={"text/markdown": f"*Figure: {caption}*"},
                               metadata={"pcref": {"kind": "figure-caption", "name": stem, "caption": caption}}),
    ]
    return cell


def _leaky_cell():
    cell = nbformat.v4.new_code_cell(source="cohort.head()  # SECRET_CODE_SOURCE")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="SECRET_STDOUT A10000001\n"),
        nbformat.v4.new_output("stream", name="stderr", text="SECRET_STDERR warning\n"),
        nbformat.v4.new_output("display_data", data={"text/html": "<table><tr><th>n</th></tr><tr><td>3</td></tr></table>"
                                                                 "<p>SECRET_UNTAGGED_HTML</p>"}),
        nbformat.v4.new_output("execute_result", execution_count=3,
                               data={"text/html": "<p>SECRET_EXECUTE_RESULT</p>", "text/plain": "SECRET_EXECUTE_RESULT"}),
    ]
    return cell


def _rates_plot(released: pd.DataFrame, title: str):
    import matplotlib.pyplot as plt
    from pcref_eval.style import apply_style
    apply_style()
    d = released.dropna(subset=["rate"])
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    ax.barh(d["group"], d["rate"], color="#0072B2")
    ax.set_xlabel("Detentions per 100,000 per year")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def _site_notebook(config, site_id, run_dir):
    from pcref_eval.cohort import build_cohort
    from pcref_eval.descriptive import crude_rates_by_group, detention_episodes, table_one
    from pcref_eval.disclosure import DisclosurePolicy
    from pcref_eval.extract import load_site
    from pcref_eval.publish import Publisher

    site = load_site(config.site(site_id).path)
    cohort, _ = build_cohort(site, config.study, config.cohort, config.ethnicity)
    pub = Publisher(run_dir, site_id, DisclosurePolicy.from_config(config.disclosure), display=False)
    years = ((config.study.end - config.study.start).days + 1) / 365.25
    ep = detention_episodes(site, config.cohort.detention_codes, config.study, config.ethnicity.scheme)
    cells = [
        nbformat.v4.new_markdown_cell(f"# Site {site_id}"),
        nbformat.v4.new_code_cell(source="site_id = 'x'  # parameters SECRET_CODE_SOURCE"),
        nbformat.v4.new_markdown_cell("## Cohort\n\nPeople with a first referral in the study window."),
    ]
    cells.append(_table_cell(pub, table_one(cohort), "table_one", f"Cohort characteristics at {site_id} by group.")[0])
    cells.append(_leaky_cell())
    cells.append(nbformat.v4.new_markdown_cell("## Detention rates\n\n### Crude rates\n\nRates per 100,000."))
    cell, rt = _table_cell(pub, crude_rates_by_group(ep, site.population, config.ethnicity.scheme,
                                                     config.ethnicity.reference, years),
                           "crude_rates", f"Crude detention rates at {site_id} by group.")
    cells.append(cell)
    cells.append(_figure_cell(pub, _rates_plot(rt.data, f"{site_id}: crude detention rates"), "crude_rates",
                              f"Crude detention rates at {site_id}."))
    cells.append(nbformat.v4.new_markdown_cell("## Data quality\n\nEthnicity recording at this site."))
    note = nbformat.v4.new_code_cell(source="pub.note(...)")
    note.outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": "### Completeness\n\nMost records "
                                                                                  "have ethnicity stated."},
                                           metadata={"pcref": {"kind": "note"}})]
    cells.append(note)
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    return nb, cohort


def _cross_notebook(config, cohorts, sites, run_dir):
    import numpy as np
    from pcref_eval.descriptive import crude_rates_by_group, detention_episodes
    from pcref_eval.disclosure import DisclosurePolicy
    from pcref_eval.publish import Aggregate, Publisher

    pub = Publisher(run_dir, "all", DisclosurePolicy.from_config(config.disclosure), display=False)
    years = ((config.study.end - config.study.start).days + 1) / 365.25
    eps = pd.concat([detention_episodes(s, config.cohort.detention_codes, config.study, config.ethnicity.scheme)
                     for s in sites], ignore_index=True)
    pop = pd.concat([s.population for s in sites], ignore_index=True)
    agg = crude_rates_by_group(eps, pop, config.ethnicity.scheme, config.ethnicity.reference, years)
    parts = []
    cut = pd.Timestamp("2023-04-01")
    for period, sub in (("before go-live", eps[eps["start_date"] < cut]), ("after go-live", eps[eps["start_date"] >= cut])):
        a = crude_rates_by_group(sub, pop, config.ethnicity.scheme, config.ethnicity.reference, years / 2)
        parts.append(a.data.assign(period=period))
    from dataclasses import replace
    from pcref_eval.disclosure import Rate
    per_period = {c: (replace(v, years=years / 2) if isinstance(v, Rate) else replace(v, by=("period",)))
                  for c, v in agg.derived.items()}
    by_period = Aggregate(pd.concat(parts, ignore_index=True), ["events"], per_period, denominators=["population"],
                          labels=["group", "comparison", "period"])
    header = nbformat.v4.new_code_cell(source="x.pub.note(header)")
    header.outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": "# Evaluation: all sites\n\n"
                                                                                     "Sites analysed: two."},
                                             metadata={"pcref": {"kind": "note"}})]
    cells = [
        header,
        nbformat.v4.new_markdown_cell("## Summary of key findings\n\nDetention rates were higher for Black groups "
                                      "than for White British people at every site (narrative from the notebook)."),
        nbformat.v4.new_markdown_cell("## Detention rates by group"),
    ]
    cell, rt = _table_cell(pub, agg, "crude_rates", "Crude detention rates and rate ratios by group, all sites.")
    cells.append(cell)
    cells.append(nbformat.v4.new_markdown_cell("## Change over time"))
    cells.append(_table_cell(pub, by_period, "crude_rates_by_period",
                             "Crude detention rate ratios before and after go-live (trend).")[0])
    gap = pd.DataFrame({"quantity": ["Hazard ratio before go-live", "Hazard ratio after go-live",
                                     "Ratio of hazard ratios (after / before)"],
                        "estimate": [2.4, 1.6, 0.67], "lower": [1.9, 1.2, 0.47], "upper": [3.0, 2.1, 0.95],
                        "p": [0.0, 0.001, 0.02]})
    cells.append(_table_cell(pub, Aggregate(gap, [], model=["estimate", "lower", "upper", "p"], labels=["quantity"]),
                             "gap_change",
                             "Focus-group hazard ratio before and after PCREF go-live, all sites")[0])
    cells.append(nbformat.v4.new_markdown_cell("## Limitations\n\n- Pooled crude rates ignore site differences."))
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    return nb


def build_run(root: Path, data: Path) -> tuple[Path, dict]:
    """Write a run folder under ``root`` from synthetic site data in ``data``; return (run_dir, site_steps)."""
    from pcref_eval.config import EvaluationConfig, OutputConfig, SiteConfig, load_config, write_config
    from pcref_eval.extract import load_site
    from pcref_eval.runner.manifest import combined_hash, folder_hashes, package_versions

    run_dir = root / "runs" / "20250101T000000-abcdef12"
    (run_dir / "restricted" / "notebooks").mkdir(parents=True)
    (run_dir / "release").mkdir(parents=True)
    sites = [SiteConfig(id=s, path=(data / s).resolve()) for s in SITE_IDS]
    sites.append(SiteConfig(id=FAILED_SITE, path=(data / FAILED_SITE).resolve()))
    cfg = EvaluationConfig(name="PCREF synthetic test evaluation", seed=7, sites=sites,
                           outputs=OutputConfig(dir=root, formats=["html", "pdf", "docx"]))
    write_config(cfg, run_dir / "config.yml")
    config = load_config(run_dir / "config.yml")
    cohorts, extracts = [], []
    for sid in SITE_IDS:
        nb, cohort = _site_notebook(config, sid, run_dir)
        nbformat.write(nb, str(run_dir / "restricted" / "notebooks" / f"site_{sid}.ipynb"))
        cohorts.append(cohort)
        extracts.append(load_site(config.site(sid).path))
    nbformat.write(_cross_notebook(config, cohorts, extracts, run_dir), str(run_dir / "restricted" / "notebooks" / "cross_site.ipynb"))
    dq = run_dir / "restricted" / "dq" / "site_a"
    dq.mkdir(parents=True)
    (dq / "validation.json").write_text(json.dumps({"status": "warning", "results": [
        {"table": "people", "column": "ethnic_category", "expectation": "expect_column_values_to_be_in_set",
         "severity": "warning", "success": False, "unexpected_count": 3},
        {"table": "referrals", "column": "referral_date", "expectation": "expect_column_values_to_not_be_null",
         "severity": "error", "success": True, "unexpected_count": 0},
        {"table": "mha_episodes", "column": "end_date", "expectation": "expect_end_after_start",
         "severity": "warning", "success": False, "unexpected_count": 42}],
        "completeness_by_table": [{"table": "people", "recorded": 1404, "total": 1600, "share": 0.8775},
                                  {"table": "patient_experience", "recorded": 5, "total": 6, "share": 0.83}]}))
    (dq / "dq_report.html").write_text("<html>restricted example rows A10000001</html>")
    steps = {sid: {"contracts": _Step("ok"), "notebook": _Step("ok")} for sid in SITE_IDS}
    steps["site_a"]["contracts"] = _Step("warning", "people.ethnic_category: in set (warning, 3 rows)")
    steps[FAILED_SITE] = {"contracts": _Step("failed", f"{data / FAILED_SITE}/site.yml: site.yml is missing; it must "
                                                       "give site_id, name, pcref_go_live, extract_date"),
                          "notebook": _Step("skipped", "not analysed: data contract errors")}
    inputs = {}
    for sid in SITE_IDS:
        files = folder_hashes(data / sid)
        inputs[sid] = {"files": files, "combined": combined_hash(files)}
    inputs[FAILED_SITE] = {"error": "folder not found"}
    manifest = {"run_id": run_dir.name, "started": "2025-01-01T00:00:00Z", "workbench_version": "0.1.0", "seed": 7,
                "config_hash": config.hash(), "packages": package_versions(), "git_commit": "0123456789abcdef",
                "inputs": inputs, "steps": {"cross_site": {"status": "ok", "seconds": 1.0, "message": ""}},
                "sites": {s: {k: {"status": v.status, "message": v.message, "seconds": 1.0} for k, v in st.items()}
                          for s, st in steps.items()}}
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return run_dir, steps


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    from pcref_eval.synth import generate
    data = tmp_path_factory.mktemp("synth")
    generate(data, n_sites=2, people=1500, seed=5)
    return data


@pytest.fixture(scope="session")
def base_run(tmp_path_factory, synth_data) -> tuple[Path, dict]:
    """A run folder with notebooks and released tables, but no report yet (do not modify: copy it)."""
    return build_run(tmp_path_factory.mktemp("base"), synth_data)


@pytest.fixture(scope="session")
def built_run(tmp_path_factory, base_run) -> tuple[Path, dict[str, Path]]:
    """The base run copied and reported in all three formats."""
    from pcref_eval.report import build_report
    src, steps = base_run
    dst = tmp_path_factory.mktemp("built") / src.name
    shutil.copytree(src, dst)
    outputs = build_report(dst, formats=["html", "pdf", "docx"], site_steps=steps)
    return dst, outputs


@pytest.fixture
def run_copy(tmp_path, base_run) -> Path:
    """A private copy of the base run that a test may modify."""
    src, _ = base_run
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="session")
def board_run(tmp_path_factory):
    """A run of two synthetic sites with each site's released board, ITS and gap tables and the pooled gap."""
    from pcref_eval import detention, pooling
    from pcref_eval.boardpack import build_board_packs
    from pcref_eval.measures import publish_board, publish_implementation_effect, site_measures
    from pcref_eval.session import open_cross_site, open_site
    from pcref_eval.synth import generate

    data = tmp_path_factory.mktemp("board-synth")
    generate(data, n_sites=2, people=12000, seed=5)  # enough detentions for a Cox model per site and period
    run_dir, steps = build_run(tmp_path_factory.mktemp("board"), data)
    config = run_dir / "config.yml"
    for sid in SITE_IDS:
        s = open_site(config, sid, run_dir, display=False)
        measures = site_measures(s)
        publish_board(s, data=measures, charts=False)
        publish_implementation_effect(s, data=measures, charts=[])
        s.pub.table(detention.gap_over_time(s.cohort, s.site.info.pcref_go_live, s.config.ethnicity.reference),
                    "gap_change", "Focus-group hazard ratio before and after PCREF go-live", section="Implementation")
    x = open_cross_site(config, list(SITE_IDS), run_dir, display=False)
    go_live = {sid: site.info.pcref_go_live for sid, site in x.sites.items()}
    pooled, _ = pooling.pooled_gap_aggregate(detention.site_gap_estimates(x.cohort, go_live,
                                                                          x.config.ethnicity.reference))
    x.pub.table(pooled, "gap_pooled", "Ratio of focus-group hazard ratios after / before go-live, by site and pooled",
                section="Implementation")
    from pcref_eval.report.build import load_context
    ctx = load_context(run_dir, steps)
    sites = [s for s in ctx.sites if s["analysed"]]
    result = build_board_packs(ctx.release, sites, ctx.reference, run_dir.name, synthetic=True,
                               policy_text=ctx.policy.describe(), pdf_engine="weasyprint")
    return run_dir, result, ctx
