"""SIGKILL part-way through a run leaves earlier runs intact, and the next run succeeds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pcref_eval.config import write_config
from pcref_eval.runner.lock import is_locked
from pcref_eval.runner.pipeline import run_evaluation
from pcref_eval.runner.registry import Registry, default_url

from .conftest import CROSS_NB, SITE_NB, make_config, options, subprocess_env, tree_hashes

DRIVER = """
import sys
from pathlib import Path
from pcref_eval.config import load_config
from pcref_eval.runner.pipeline import RunOptions, run_evaluation
if __name__ == "__main__":
    cfg, site_nb, cross_nb = sys.argv[1:4]
    opts = RunOptions(executor="process", workers=2, force=True, site_notebook=Path(site_nb),
                      cross_site_notebook=Path(cross_nb))
    sys.exit(run_evaluation(load_config(cfg), opts).exit_code)
"""


def _descendants(pid: int) -> set[int]:
    """Process ids below ``pid`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigkill_mid_run(data, tmp_path, no_report):
    out = tmp_path / "out"
    config = make_config(data, out, sites=["site_a", "site_b"])
    earlier = run_evaluation(config, options(), echo=lambda m: None)
    assert earlier.status == "ok"
    before = tree_hashes(out / "runs")

    (data / "site_b" / "SLEEP").write_text("120")  # site_b's notebook hangs until we kill the run
    cfg = tmp_path / "config.yml"
    write_config(config, cfg)
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    proc = subprocess.Popen([sys.executable, str(driver), str(cfg), str(SITE_NB), str(CROSS_NB)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=subprocess_env(),
                            cwd=tmp_path)
    try:
        deadline = time.time() + 120
        staged = []
        while time.time() < deadline:  # part-way: site_a's results are written, site_b is still running
            staged = list((out / "runs").glob(".staging-*/release/tables/site_a_detention_rates.csv"))
            if staged and list((out / "runs").glob(".staging-*/restricted/notebooks/site_site_b.ipynb")):
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.2)
        assert staged, "the run never got part-way"
        time.sleep(1.0)
        family = _descendants(proc.pid)
        assert family, "expected worker and kernel processes"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()

    # the killed run's workers and kernels go too (workers: PR_SET_PDEATHSIG; kernels: parent poller)
    deadline = time.time() + 30
    while time.time() < deadline and any(_alive(p) for p in family):
        time.sleep(0.5)
    assert not any(_alive(p) for p in family), "processes of the killed run are still alive"

    # earlier runs are byte-intact; the killed run left only a staging folder, and no lock
    runs = out / "runs"
    assert {k: v for k, v in tree_hashes(runs).items() if not k.startswith(".")} == \
        {k: v for k, v in before.items() if not k.startswith(".")}
    assert [p.name for p in runs.iterdir() if p.name.startswith(".staging-")]
    assert not is_locked(runs)

    (data / "site_b" / "SLEEP").unlink()
    (data / "site_b" / "README.txt").write_text("new extract\n")  # so the next run has real work to do
    after = run_evaluation(config, options(), echo=lambda m: None)
    assert after.status == "ok"
    assert after.sites["site_b"]["notebook"].cached_from is None
    assert not [p for p in runs.iterdir() if p.name.startswith((".staging-", ".trash-"))]
    assert {k: v for k, v in tree_hashes(runs / earlier.run_id).items()} == \
        {k[len(earlier.run_id) + 1:]: v for k, v in before.items() if k.startswith(earlier.run_id + "/")}
    statuses = {r["run_id"]: r["status"] for r in Registry(default_url(out)).list_runs()}
    assert statuses[earlier.run_id] == "ok" and statuses[after.run_id] == "ok"
    assert "aborted" in statuses.values()  # the killed run, as recorded in the registry
