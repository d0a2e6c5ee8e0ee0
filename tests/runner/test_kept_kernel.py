"""A kept kernel (a pool worker's notebooks run one after another in one kernel) shows each notebook what a
new kernel would: same released files and outputs in either order, names, figures and warnings reset, and
a new kernel after a failure."""

from __future__ import annotations

import json

import nbformat
import pytest

from pcref_eval.config import EvaluationConfig, OutputConfig, SiteConfig, write_config
from pcref_eval.runner.kept_kernel import KeptKernel
from pcref_eval.runner.notebooks import SITE_NOTEBOOK, NotebookFailed, execute_notebook
from pcref_eval.runner.pipeline import site_parameters

from .conftest import tree_hashes

SITES = ["site_a", "site_b"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from pcref_eval.synth import generate
    folder = tmp_path_factory.mktemp("kept-demo")
    generate(folder, n_sites=2, people=3000, seed=21)
    return folder


def _run_site_notebooks(data, run_dir, order, kept):
    run_dir.mkdir()
    write_config(EvaluationConfig(sites=[SiteConfig(id=s, path=data / s) for s in SITES],
                                  outputs=OutputConfig(dir=run_dir.parent, formats=["html"])), run_dir / "config.yml")
    for site in order:
        out = run_dir / "restricted" / "notebooks" / f"site_{site}.ipynb"
        execute_notebook(SITE_NOTEBOOK, out, site_parameters(run_dir / "config.yml", site, run_dir), run_dir,
                         timeout=600, kept=kept)
    return run_dir


def _cell_outputs(path):
    """Each code cell's execution count and outputs (papermill's timing metadata left out)."""
    nb = json.loads(path.read_text())
    return [(c.get("execution_count"), c.get("outputs")) for c in nb["cells"] if c["cell_type"] == "code"]


def test_site_notebooks_in_a_kept_kernel_release_what_new_kernels_release_in_either_order(demo, tmp_path):
    kept = KeptKernel()
    try:
        forward = _run_site_notebooks(demo, tmp_path / "forward", SITES, kept)
        backward = _run_site_notebooks(demo, tmp_path / "backward", SITES[::-1], kept)
    finally:
        kept.shutdown()
    fresh = _run_site_notebooks(demo, tmp_path / "fresh", SITES, None)
    released = tree_hashes(fresh / "release")
    assert any(name.endswith(".png") for name in released) and any(name.endswith(".csv") for name in released)
    assert tree_hashes(forward / "release") == released
    assert tree_hashes(backward / "release") == released
    for site in SITES:
        name = f"restricted/notebooks/site_{site}.ipynb"
        expected = _cell_outputs(fresh / name)
        assert expected[0][0] == 1  # a new kernel counts from 1: so does a kept one
        assert _cell_outputs(forward / name) == expected, site
        assert _cell_outputs(backward / name) == expected, site


def _notebook(path, *cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _warning_shown(path) -> bool:
    nb = json.loads(path.read_text())
    return any("shown once per location" in "".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))


def test_a_kept_kernel_is_reset_between_notebooks_and_replaced_after_a_failure(tmp_path):
    (tmp_path / "probe_mod.py").write_text("import warnings\n\ndef once():\n"
                                           "    warnings.warn('shown once per location', UserWarning)\n")
    record = _notebook(
        tmp_path / "record.ipynb",
        "import json, os, sys\nimport matplotlib.pyplot as plt\nsys.path.insert(0, probe_dir)\nimport probe_mod",
        "probe_mod.once()  # a library's warning: Python shows it once per code location and process",
        "seen = {'pid': os.getpid(), 'leftover': 'leftover' in globals(), 'figures': len(plt.get_fignums())}\n"
        "leftover = 1\nplt.figure()\nopen(out_path, 'w').write(json.dumps(seen))")
    failing = _notebook(tmp_path / "failing.ipynb", "raise ValueError('stand-in failure')")
    kept = KeptKernel()

    def run(nb, name):
        out = tmp_path / f"{name}.json"
        execute_notebook(nb, tmp_path / f"{name}.ipynb", {"out_path": str(out), "probe_dir": str(tmp_path)},
                         tmp_path, timeout=120, kept=kept)
        return json.loads(out.read_text())
    try:
        first, second = run(record, "first"), run(record, "second")
        assert second["pid"] == first["pid"]  # the same kernel ran both
        assert second == first == {"pid": first["pid"], "leftover": False, "figures": 0}  # nothing carried over
        assert _warning_shown(tmp_path / "first.ipynb") and _warning_shown(tmp_path / "second.ipynb")
        with pytest.raises(NotebookFailed, match="stand-in failure"):
            run(failing, "failed")
        assert kept.km is None  # shut down after the failure
        third = run(record, "third")
        assert third["pid"] != first["pid"] and third["leftover"] is False
    finally:
        kept.shutdown()
    assert kept.km is None and kept.log_file is None
