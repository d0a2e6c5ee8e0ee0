"""Unchanged steps are reused from earlier runs; --force and --if-changed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from pcref_eval import cli
from pcref_eval.config import write_config
from pcref_eval.runner import pipeline
from pcref_eval.runner.cache import CachePlan, owner_of
from pcref_eval.runner.pipeline import run_evaluation

from .conftest import CROSS_NB, SITE_NB, SITES, make_config, options, tree_hashes

QUIET = {"echo": lambda m: None}


def _manifest(run_dir):
    return json.loads((run_dir / "manifest.json").read_text())


def test_changed_input_reruns_only_that_site(data, tmp_path, no_report):
    config = make_config(data, tmp_path / "out")
    first = run_evaluation(config, options(executor="process"), **QUIET)
    assert first.status == "ok"

    (data / "site_b" / "README.txt").write_text("a new file in site_b's extract folder\n")
    second = run_evaluation(config, options(executor="process"), **QUIET)
    assert second.status == "ok"
    m = _manifest(second.run_dir)
    assert m["sites"]["site_a"]["notebook"]["cached_from"] == first.run_id
    assert m["sites"]["site_c"]["contracts"]["cached_from"] == first.run_id
    assert "cached_from" not in m["sites"]["site_b"]["notebook"]
    assert "cached_from" not in m["steps"]["cross_site"]  # one of its sites changed
    # reused outputs are byte-identical copies of the earlier run's
    for site in ("site_a", "site_c"):
        for rel in (f"release/tables/{site}_detention_rates.csv", f"restricted/tables/{site}_digest.csv",
                    f"restricted/notebooks/site_{site}.ipynb"):
            assert (second.run_dir / rel).read_bytes() == (first.run_dir / rel).read_bytes()
    assert tree_hashes(second.run_dir / "restricted" / "dq" / "site_a") == \
        tree_hashes(first.run_dir / "restricted" / "dq" / "site_a")

    third = run_evaluation(config, options(), **QUIET)  # nothing changed: everything reused
    m3 = _manifest(third.run_dir)
    assert all(m3["sites"][s]["notebook"]["cached_from"] == second.run_id for s in SITES)
    assert m3["steps"]["cross_site"]["cached_from"] == second.run_id
    assert m3["steps"]["report"]["cached_from"] == second.run_id  # every step unchanged and ok
    assert "cached_from" not in m["steps"]["report"]  # second run: site_b changed, report rebuilt



def test_keys_follow_inputs_config_notebook(data, tmp_path):
    config = make_config(data, tmp_path / "out")
    inputs = {s: pipeline._input_hashes(data / s) for s in SITES}
    base = CachePlan(config, inputs, tmp_path / "runs", SITE_NB, CROSS_NB)
    assert all(base.site_keys.values()) and base.run_key

    def keys(cfg=config, inp=inputs, site_nb=SITE_NB, cross_nb=CROSS_NB):
        return CachePlan(cfg, inp, tmp_path / "runs", site_nb, cross_nb)

    same = keys()
    assert same.site_keys == base.site_keys and same.run_key == base.run_key
    rounding = config.model_copy(update={"disclosure": config.disclosure.model_copy(update={"rounding": 10})})
    assert not set(keys(cfg=rounding).site_keys.values()) & set(base.site_keys.values())
    renamed = config.model_copy(update={"name": "another title"})  # report only: site steps still reusable
    assert keys(cfg=renamed).site_keys == base.site_keys and keys(cfg=renamed).run_key != base.run_key
    moved = dict(inputs, site_b={"files": {}, "combined": "0" * 64})
    changed = keys(inp=moved)
    assert changed.site_keys["site_a"] == base.site_keys["site_a"]
    assert changed.site_keys["site_b"] != base.site_keys["site_b"]
    assert changed.all_cross_key != base.all_cross_key
    nb = tmp_path / "site_copy.ipynb"
    nb.write_bytes(SITE_NB.read_bytes() + b"\n")
    assert keys(site_nb=nb).site_keys == base.site_keys  # same program, different bytes
    explored = _explored_in_lab(SITE_NB, tmp_path / "explored.ipynb")
    assert keys(site_nb=explored).site_keys == base.site_keys and keys(site_nb=explored).run_key == base.run_key
    edited = _edited_code(SITE_NB, tmp_path / "edited.ipynb")
    assert not set(keys(site_nb=edited).site_keys.values()) & set(base.site_keys.values())
    assert keys(inp=dict(inputs, site_c={"error": "unreadable"})).site_keys["site_c"] is None  # never cached
    assert CachePlan(config, inputs, tmp_path / "runs", SITE_NB, CROSS_NB, force=True).find_site("site_a") is None


def test_if_changed_and_force_via_cli(data, tmp_path, monkeypatch, no_report, capsys):
    real = pipeline.run_evaluation
    monkeypatch.setattr(pipeline, "run_evaluation", lambda config, opts, echo=print: real(
        config, dataclasses.replace(opts, site_notebook=SITE_NB, cross_site_notebook=CROSS_NB), echo))
    config = make_config(data, tmp_path / "out", sites=["site_a"])
    cfg = tmp_path / "config.yml"
    write_config(config, cfg)
    runs = tmp_path / "out" / "runs"

    def run(*flags):
        capsys.readouterr()
        code = cli.main(["run", "--config", str(cfg), "--executor", "serial", *flags])
        published = sorted(p for p in runs.iterdir() if not p.name.startswith("."))
        return code, capsys.readouterr().out, published

    code, _, published = run("--if-changed")
    assert code == 0 and len(published) == 1
    code, out, published = run("--if-changed")
    assert code == 0 and "nothing to do" in out and len(published) == 1  # no new run
    (data / "site_a" / "README.txt").write_text("changed\n")
    code, _, published = run("--if-changed")
    assert code == 0 and len(published) == 2
    code, _, published = run("--if-changed", "--force")  # --force wins: a new run, nothing reused
    assert code == 0 and len(published) == 3
    m = _manifest(published[-1])
    assert not any("cached_from" in step for steps in m["sites"].values() for step in steps.values())
    assert m["cache"]["forced"] and m["cache"]["sites"] == _manifest(published[1])["cache"]["sites"]
    assert tree_hashes(published[-1] / "release" / "tables") == tree_hashes(published[1] / "release" / "tables")


def test_files_are_attributed_by_name():
    owners = ["site_ab", "site_a", "all"]
    assert owner_of(Path("release/tables/site_a_rates.csv"), owners) == "site_a"
    assert owner_of(Path("release/tables/site_ab_rates.csv"), owners) == "site_ab"
    assert owner_of(Path("restricted/dq/site_a/validation.json"), owners) == "site_a"
    assert owner_of(Path("restricted/cohorts/site_ab.parquet"), owners) == "site_ab"
    assert owner_of(Path("restricted/notebooks/site_site_a.ipynb"), owners) == "site_a"
    assert owner_of(Path("restricted/notebooks/cross_site.ipynb"), owners) == "all"
    assert owner_of(Path("release/index/all.json"), owners) == "all"
    assert owner_of(Path("release/report.html"), owners) is None


def _explored_in_lab(source: Path, dest: Path) -> Path:
    """What JupyterLab saves after someone runs a notebook: outputs, counts, kernel and cell metadata."""
    import nbformat
    nb = nbformat.read(source, as_version=4)
    nb.metadata["kernelspec"] = {"name": "pcref-eval", "display_name": "Python (pcref-eval)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.7"}
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        cell.execution_count = i + 1
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"output {i}\n")]
        cell.metadata["scrolled"] = True
        cell.metadata["execution"] = {"iopub.status.busy": "2026-12-01T00:00:00Z"}
    nbformat.write(nb, dest)
    return dest


def _edited_code(source: Path, dest: Path) -> Path:
    import nbformat
    nb = nbformat.read(source, as_version=4)
    cell = [c for c in nb.cells if c.cell_type == "code"][-1]
    cell.source += "\nprint('one more line')"
    nbformat.write(nb, dest)
    return dest


def test_program_digest_ignores_outputs_and_metadata_only(tmp_path):
    from pcref_eval.runner.notebook_source import source_digest
    base = source_digest(SITE_NB)
    assert base and source_digest(_explored_in_lab(SITE_NB, tmp_path / "a.ipynb")) == base
    assert source_digest(_edited_code(SITE_NB, tmp_path / "b.ipynb")) != base
    (tmp_path / "c.ipynb").write_text('{"not": "a notebook"}')
    assert source_digest(tmp_path / "c.ipynb") is None and source_digest(tmp_path / "missing.ipynb") is None


def test_manifest_commit_is_not_dirty_for_notebook_outputs(tmp_path):
    """Lab's autosave wrote outputs into tracked notebooks and every run's manifest said '-dirty'."""
    import shutil
    import subprocess

    from pcref_eval.runner.manifest import git_commit
    from tests.system import require
    require(shutil.which("git"), "git", "git", "the manifest's commit cannot be tested without it")
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    shutil.copy(SITE_NB, repo / "notebooks" / "site.ipynb")
    (repo / "code.py").write_text("x = 1\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert git_commit(repo) == head
    _explored_in_lab(repo / "notebooks" / "site.ipynb", repo / "notebooks" / "site.ipynb")
    assert subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert git_commit(repo) == head, "outputs only: not dirty"
    _edited_code(repo / "notebooks" / "site.ipynb", repo / "notebooks" / "site.ipynb")
    assert git_commit(repo) == head + "-dirty"
    subprocess.run(["git", "checkout", "-q", "--", "notebooks"], cwd=repo, check=True)
    (repo / "code.py").write_text("x = 2\n")
    assert git_commit(repo) == head + "-dirty"
