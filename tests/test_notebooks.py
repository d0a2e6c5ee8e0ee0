"""Committed notebooks: no outputs, a parameters cell first, and no analysis logic of their own."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_site_and_cross_site_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {"site.ipynb", "cross_site.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert dirty == [], f"{path.name}: cells {dirty} carry outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_tagged_parameters(path):
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", [])
    assigned = [t.id for node in ast.parse(first.source).body if isinstance(node, ast.Assign) for t in node.targets]
    assert "config_path" in assigned and "run_dir" in assigned


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_define_no_functions_or_loops(path):
    """Analysis logic lives in pcref_eval (tested), not in notebook cells."""
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        for node in ast.walk(ast.parse(cell.source)):
            assert not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.For, ast.While, ast.Lambda)), \
                f"{path.name} code cell {i}: {type(node).__name__} belongs in the pcref_eval package"


PUBLISH_CELLS = [
    # 0: a publisher that displays, as in every notebook
    "import matplotlib; matplotlib.use('Agg')\n"
    "import matplotlib.pyplot as plt, pandas as pd\n"
    "from pcref_eval.publish import Aggregate, Publisher\n"
    "pub = Publisher(run_dir, 'x')\n"
    "agg = Aggregate(pd.DataFrame({'group': ['A', 'B'], 'people': [120, 3]}), counts=['people'], labels=['group'])",
    # 1: published table as the cell's last expression
    "pub.table(agg, 'counts', 'People by group')",
    # 2: assigned, then used as a DataFrame
    "released = pub.table(agg, 'counts2', 'People by group again')\nint(released['people'].sum())",
    # 3: a later cell shows the released (formatted) table, not the raw numbers
    "released",
    # 4: a figure: image and caption, no list of file paths
    "fig, ax = plt.subplots()\nax.bar(released['group'], released['people'].fillna(0))\n"
    "pub.figure(fig, 'bars', 'People by group')",
]


def test_a_publishing_cell_shows_its_output_once(tmp_path):
    """Jupyter fault: each table showed twice (formatted, then the returned DataFrame); figures printed paths."""
    from pcref_eval.runner.notebooks import execute_notebook
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"run_dir = {str(tmp_path / 'run')!r}", metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in PUBLISH_CELLS]
    src, out = tmp_path / "pub.ipynb", tmp_path / "pub.out.ipynb"
    nbformat.write(nb, src)
    execute_notebook(src, out, {}, cwd=tmp_path, timeout=300)
    cells = nbformat.read(out, as_version=4).cells[1:]
    kinds = [[(o.output_type, sorted(o.get("data", {})), o.get("metadata", {}).get("pcref", {}).get("kind"))
              for o in c.outputs] for c in cells]
    assert kinds[0] == []
    assert kinds[1] == [("display_data", ["text/html", "text/plain"], "table")]
    assert kinds[2] == [("display_data", ["text/html", "text/plain"], "table"), ("execute_result", ["text/plain"], None)]
    assert cells[2].outputs[1].data["text/plain"] == "120", "the returned table is usable as a DataFrame"
    assert kinds[3] == [("display_data", ["text/html", "text/plain"], None)]
    assert "[REDACTED]" in cells[3].outputs[0].data["text/html"], "a later cell shows the released table"
    assert kinds[4] == [("display_data", ["image/png", "text/plain"], "figure"),
                        ("display_data", ["text/markdown", "text/plain"], "figure-caption")]
    assert ".svg" not in str(cells[4].outputs) and "PosixPath" not in str(cells[4].outputs)
