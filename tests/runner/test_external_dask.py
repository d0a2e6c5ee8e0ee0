"""Site notebooks on an existing Dask cluster that the run did not start.

The scheduler and two workers are separate OS processes started with Dask's own command line, as
an operator would start them on other hosts: each worker has its own working folder, temporary
folder, home and environment (``PCREF_TEST_HOST``), and shares with the run only what the
documented setup requires (the same paths for data, outputs and the installed package). A true
multi-host test needs more than one machine; this is the closest single-machine stand-in.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pcref_eval.runner.pipeline import run_evaluation

from .conftest import SITES, expected_digest, make_config, options, subprocess_env

pytestmark = pytest.mark.slow


def _start(cmd: list[str], env: dict, cwd: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise TimeoutError(f"timed out waiting for {what}")


@pytest.fixture
def external_cluster(tmp_path):
    """A scheduler and two single-threaded workers, each a separate process tree with its own 'host' folders."""
    procs = []
    sched_file = tmp_path / "scheduler.json"
    env = subprocess_env()
    try:
        procs.append(_start([sys.executable, "-m", "distributed.cli.dask_scheduler", "--scheduler-file",
                             str(sched_file), "--host", "127.0.0.1", "--port", "0", "--no-dashboard"],
                            env, tmp_path, tmp_path / "scheduler.log"))
        address = _wait_for(lambda: sched_file.exists() and json.loads(sched_file.read_text()).get("address"),
                            60, "the Dask scheduler")
        for name in ("w1", "w2"):
            home = tmp_path / name
            (home / "tmp").mkdir(parents=True)
            wenv = {**env, "HOME": str(home), "TMPDIR": str(home / "tmp"), "PCREF_TEST_HOST": name}
            procs.append(_start([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1",
                                 "--nthreads", "1", "--local-directory", str(home / "dask"), "--no-dashboard",
                                 "--name", name], wenv, home, tmp_path / f"{name}.log"))
        from distributed import Client
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def test_run_on_an_external_cluster_runs_every_notebook_on_its_workers(data, tmp_path, external_cluster, no_report):
    (data / "site_b" / "RAISE").write_text("")  # one failing site is isolated on the cluster too
    result = run_evaluation(make_config(data, tmp_path / "out"),
                            options(executor="dask", scheduler=external_cluster), echo=lambda m: None)
    assert result.status == "partial"
    assert result.sites["site_b"]["notebook"].status == "failed"
    assert "stand-in failure for site_b" in result.sites["site_b"]["notebook"].message
    tables = result.run_dir / "restricted" / "tables"
    hosts = {}
    for s in ("site_a", "site_c"):
        assert result.sites[s]["notebook"].status == "ok"
        assert (tables / f"{s}_digest.csv").read_text() == expected_digest(data / s)
        hosts[s] = (tables / f"{s}_host.csv").read_text().split()[1]
    assert set(hosts.values()) <= {"w1", "w2"}, hosts  # every kernel ran on a worker, none in this process
    # the cross-site notebook ran there too, over the two sites that succeeded
    assert (tables / "all_sites.csv").read_text().split() == ["site_a", "site_c"]
    log = (result.run_dir / "run.log").read_text()
    assert f"on the Dask cluster at {external_cluster}" in log
    assert not list((tmp_path / "w1" / "tmp").iterdir()) and not list((tmp_path / "w2" / "tmp").iterdir()), \
        "kernel connection folders are removed from the workers' temporary folders"
    assert set(SITES) == set(result.sites)
