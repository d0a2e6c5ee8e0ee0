"""Slower checks (``-m slow``): a fresh-process GX isolation run, and fault recovery on other seeds/formats."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pcref_eval.contracts import validate_site
from pcref_eval.synth import generate
from tests.contracts.conftest import truth
from tests.contracts.test_fault_recovery import FAULT_CHECKS

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_fresh_process_validate_writes_only_the_run_folder(small_site_master, tmp_path):
    """A new interpreter (GX imported from scratch) in an empty cwd and HOME writes only --out."""
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    code = ("import sys; from pathlib import Path; from pcref_eval.contracts.command import validate_command; "
            f"sys.exit(validate_command(Path({str(small_site_master)!r}), Path('run')))")
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(REPO)}
    env.pop("GX_ANALYTICS_ENABLED", None)
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode in (0, 1), out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert sorted(p.name for p in cwd.iterdir()) == ["run"]
    assert list(home.rglob("*")) == []


@pytest.mark.slow
@pytest.mark.parametrize("seed, fmt", [(1, "csv"), (7, "parquet")])
def test_fault_recovery_other_seeds_and_parquet(tmp_path, seed, fmt):
    generate(tmp_path, people=40_000, seed=seed, faults=True, fmt=fmt)
    t = truth(tmp_path)
    for site_id, site in t["sites"].items():
        r = validate_site(tmp_path / site_id).results
        for fault, info in site["faults"].items():
            row = r[(r["table"] == info["table"]) & (r["column"] == info["column"])
                    & (r["expectation"] == FAULT_CHECKS[fault])]
            assert int(row["unexpected_count"].iloc[0]) == info["expected_unexpected"], (seed, site_id, fault)
