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


REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_carry_the_project_kernel(path):
    """Lab opens them with the kernel `make setup` installs, not whatever `python3` is."""
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.kernelspec.name == "pcref-eval"
    assert "ipykernel install --sys-prefix --name pcref-eval" in (REPO / "Makefile").read_text()


def test_make_lab_makes_the_demo_data_the_notebooks_open():
    lab = (REPO / "Makefile").read_text().split("\nlab:", 1)[1].split("\n\n", 1)[0]
    assert "pcref-eval demo --data-only" in lab and lab.index("demo --data-only") < lab.index("jupyter lab")


def test_opening_a_notebook_before_the_demo_data_exist_says_what_to_do(tmp_path, monkeypatch):
    from pcref_eval.session import open_site
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"make lab.*pcref-eval demo --data-only"):
        open_site("../data/demo/config.yml", "site_a", tmp_path / "run", display=False)


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    """One small synthetic site with the config the demo writes (what `make lab` makes, smaller)."""
    from pcref_eval.demo import demo_config
    from pcref_eval.synth import generate
    folder = tmp_path_factory.mktemp("demo")
    generate(folder, n_sites=1, people=3000, seed=21)
    demo_config(folder, folder / "outputs", seed=21, formats=["html"])
    return folder


def test_start_here_runs_top_to_bottom_and_releases_only_checked_aggregates(small_demo, tmp_path):
    import pandas as pd

    from pcref_eval.release_check import check_release
    from pcref_eval.runner.notebooks import execute_notebook
    from pcref_eval.session import INTERACTIVE_NOTE
    run_dir = tmp_path / "interactive"
    out = tmp_path / "start_here.out.ipynb"
    execute_notebook(REPO / "notebooks" / "start_here.ipynb", out,
                     {"config_path": str(small_demo / "config.yml"), "site_id": "site_a", "run_dir": str(run_dir)},
                     cwd=tmp_path, timeout=600)
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type in ("execute_result", "error", "stream")], \
        "every output is a publisher display or the release-check line"
    text = [o.data.get("text/markdown", "") for o in outputs if o.output_type == "display_data"]
    checks = [t for t in text if t.startswith("*Interactive output, not a release: release check clean")]
    assert len(checks) == 3, "one check line under each of the three publishing cells"
    released = {p.relative_to(run_dir / "release").as_posix() for p in (run_dir / "release").rglob("*") if p.is_file()}
    assert {"tables/site_a_cohort_flow.csv", "tables/site_a_hazard_ratios.csv", "figures/site_a_hazard_ratios.svg",
            INTERACTIVE_NOTE} <= released
    assert check_release(run_dir) == [], "an independent full check of the interactive folder"
    assert "tables/site_a_hazard_ratios.csv" in text[-1] and "cohorts/site_a.parquet" in text[-1]
    people = pd.read_csv(small_demo / "site_a" / "people.csv", dtype=str)
    notebook_text = out.read_text()
    assert not [pid for pid in people["person_id"].sample(200, random_state=1) if pid in notebook_text]


def test_interactive_check_withholds_a_disclosive_folder_and_publishing_goes_on(small_demo, tmp_path):
    import pandas as pd

    from pcref_eval.config import load_config, write_config
    from pcref_eval.publish import Aggregate, Publisher
    from pcref_eval.session import InteractiveReleaseCheck, is_pipeline_run
    run_dir = tmp_path / "interactive"
    pub = Publisher(run_dir, "site_a", display=False)
    write_config(load_config(small_demo / "config.yml"), run_dir / "config.yml")
    check = InteractiveReleaseCheck(pub)
    pub.table(Aggregate(pd.DataFrame({"group": ["A"], "people": [120]}), counts=["people"], labels=["group"]),
              "ok", "fine")
    assert check.check().startswith("*Interactive output, not a release: release check clean")
    (run_dir / "release" / "tables" / "site_a_leak.csv").write_text("group,people\nA,3\n")  # bypassed the publisher
    # two problems: a small count, and a table no index records (it bypassed the publisher's declarations)
    assert check.check().startswith("**Release check failed: 2 problem(s)")
    assert (run_dir / "restricted" / "release-blocked" / "tables" / "site_a_leak.csv").is_file()
    assert not (run_dir / "release" / "tables" / "site_a_leak.csv").exists()
    pub.table(Aggregate(pd.DataFrame({"group": ["B"], "people": [60]}), counts=["people"], labels=["group"]),
              "after", "still publishing")
    assert (run_dir / "release" / "tables" / "site_a_after.csv").is_file()
    assert is_pipeline_run(run_dir / "config.yml", run_dir) and not is_pipeline_run(small_demo / "config.yml", run_dir)
