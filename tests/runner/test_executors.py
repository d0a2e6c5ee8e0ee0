"""Serial, process-pool and Dask executors give the same outputs; a failing site is isolated."""

from __future__ import annotations

import os

import pytest

from pcref_eval.config import write_config
from pcref_eval.runner.executors import default_workers, run_jobs
from pcref_eval.runner.notebooks import _kernel_config
from pcref_eval.runner.pipeline import run_evaluation, site_parameters

from .conftest import SITE_NB, SITES, expected_digest, make_config, options, tree_hashes

COMPARED = ["release/tables", "restricted/tables"]
QUIET = {"echo": lambda m: None}


def _outputs(run_dir):
    out = {}
    for sub in COMPARED:
        out.update({f"{sub}/{k}": v for k, v in tree_hashes(run_dir / sub).items()})
    return out


def _check_isolated(result):
    assert result.status == "partial"
    assert result.sites["site_b"]["notebook"].status == "failed"
    assert "stand-in failure for site_b" in result.sites["site_b"]["notebook"].message
    for s in ("site_a", "site_c"):
        assert result.sites[s]["notebook"].status == "ok", s
        assert (result.run_dir / "restricted" / "notebooks" / f"site_{s}.ipynb").exists()
    # the cross-site notebook pooled the two sites that succeeded
    assert (result.run_dir / "restricted" / "tables" / "all_sites.csv").read_text().split() == ["site_a", "site_c"]
    assert (result.run_dir / "restricted" / "tables" / "all_n2.csv").exists()
    # with a pool it first ran alongside over all three sites: those outputs were discarded, not left stale
    assert not (result.run_dir / "restricted" / "tables" / "all_n3.csv").exists()


def _check_outputs(run_dir, data, sites):
    """The executor produced exactly what the stand-in notebook computes from each site's files."""
    for s in sites:
        assert (run_dir / "restricted" / "tables" / f"{s}_digest.csv").read_text() == expected_digest(data / s), s


def test_serial_and_process_pool_agree_and_isolate_a_failing_site(data, tmp_path, no_report):
    (data / "site_b" / "RAISE").write_text("")  # the stand-in site notebook raises for site_b
    serial = run_evaluation(make_config(data, tmp_path / "serial", sites=["site_a", "site_b"]),
                            options(executor="serial"), **QUIET)
    pool = run_evaluation(make_config(data, tmp_path / "pool"), options(executor="process", workers=2), **QUIET)
    _check_isolated(pool)
    _check_outputs(pool.run_dir, data, ["site_a", "site_c"])
    assert serial.sites["site_b"]["notebook"].status == "failed"
    _check_outputs(serial.run_dir, data, ["site_a"])
    assert not list((pool.run_dir / "release" / "tables").glob("site_b_*"))
    for name in ("release/tables/site_a_detention_rates.csv", "restricted/tables/site_a_digest.csv"):
        assert (pool.run_dir / name).read_bytes() == (serial.run_dir / name).read_bytes()


def test_cross_site_runs_alongside_the_site_notebooks_in_a_pool(data, tmp_path, no_report):
    result = run_evaluation(make_config(data, tmp_path / "pool"), options(executor="process", workers=2), **QUIET)
    assert result.status == "ok"
    log = (result.run_dir / "run.log").read_text()
    assert "running 4 notebook(s) in a pool of 2 process(es)" in log
    assert "[all] cross-site notebook: ok" in log and "discarded" not in log
    # each kernel's own output goes to a restricted log per notebook, not to the console
    assert {p.name for p in (result.run_dir / "restricted" / "logs").iterdir()} == \
        {f"{s}.kernel.log" for s in [*SITES, "all"]}
    assert (result.run_dir / "restricted" / "tables" / "all_sites.csv").read_text().split() == SITES
    summary = (result.run_dir / "release" / "tables" / "all_summary.csv").read_text().splitlines()
    for s in SITES:  # the pooled numbers are the site notebooks' numbers
        site_ratio = (result.run_dir / "release" / "tables" / f"{s}_detention_rates.csv").read_text().splitlines()[1]
        assert f"{s},{','.join(site_ratio.split(',')[:2])}" in summary


def test_dask_cluster_runs_the_jobs_and_isolates_a_failing_one(data, tmp_path):
    """Site notebooks as tasks on an existing cluster (a LocalCluster reached by its address)."""
    from distributed import LocalCluster

    config = make_config(data, tmp_path / "out", sites=["site_a", "site_b", "site_c"])
    (data / "site_b" / "RAISE").write_text("")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_config(config, run_dir / "config.yml")
    jobs = {s: (SITE_NB, run_dir / "restricted" / "notebooks" / f"site_{s}.ipynb",
                site_parameters(run_dir / "config.yml", s, run_dir)) for s in SITES}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        res = run_jobs(jobs, run_dir, executor="dask", scheduler=cluster.scheduler_address, log=lambda m: None)
    assert res["site_a"].status == res["site_c"].status == "ok"
    assert res["site_b"].status == "failed" and "stand-in failure" in res["site_b"].message
    _check_outputs(run_dir, data, ["site_a", "site_c"])


@pytest.mark.slow
def test_full_run_on_a_local_dask_cluster_matches_serial(data, tmp_path, no_report):
    (data / "site_b" / "RAISE").write_text("")
    serial = run_evaluation(make_config(data, tmp_path / "serial"), options(executor="serial"), **QUIET)
    dask = run_evaluation(make_config(data, tmp_path / "dask"), options(executor="dask", workers=2), **QUIET)
    _check_isolated(serial)
    _check_isolated(dask)
    assert _outputs(dask.run_dir) == _outputs(serial.run_dir)


def test_run_jobs_rejects_unknown_executor(tmp_path):
    with pytest.raises(ValueError, match="unknown executor"):
        run_jobs({"x": (tmp_path / "a.ipynb", tmp_path / "b.ipynb", {})}, tmp_path, executor="threads")


def test_missing_notebook_fails_only_its_job(tmp_path):
    results = run_jobs({"x": (tmp_path / "missing.ipynb", tmp_path / "out.ipynb", {})}, tmp_path,
                       executor="serial", log=lambda m: None)
    assert results["x"].status == "failed"


def test_kernels_use_unix_sockets_in_a_private_connection_folder(tmp_path):
    """No TCP ports to race for (jupyter_client releases a free port before the kernel binds it), and no socket
    files shared with another kernel: both the connection file and the sockets are in the job's own folder."""
    c = _kernel_config(tmp_path)
    assert c.KernelManager.transport == "ipc"
    assert c.KernelManager.connection_file.startswith(str(tmp_path))
    assert c.KernelManager.ip.startswith(str(tmp_path))


def test_default_workers_is_bounded_by_jobs():
    assert default_workers(1) == 1
    assert 1 <= default_workers(100) <= 100


def test_unreachable_dask_scheduler_fails_the_jobs_not_the_run(tmp_path):
    import dask
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        results = run_jobs({"x": (SITE_NB, tmp_path / "out.ipynb", {})}, tmp_path, executor="dask",
                           scheduler="tcp://127.0.0.1:9", log=lambda m: None)
    assert results["x"].status == "failed" and "Dask cluster unavailable" in results["x"].message


def _env_notebook(path, out_file, var="OPENBLAS_NUM_THREADS"):
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import os, pathlib\n"
        f"pathlib.Path({str(out_file)!r}).write_text(os.environ.get({var!r}, 'unset'))")]
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize("user_value, expected", [(None, "1"), ("", "1"), ("3", "3")])
def test_pool_kernels_use_one_blas_thread_unless_the_user_set_one(tmp_path, monkeypatch, user_value, expected):
    from pcref_eval.runner.executors import BLAS_THREAD_VARS
    for var in BLAS_THREAD_VARS:
        monkeypatch.delenv(var, raising=False)
    if user_value is not None:
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", user_value)
    jobs = {k: (_env_notebook(tmp_path / f"{k}.ipynb", tmp_path / f"{k}.txt"), tmp_path / f"{k}_out.ipynb", {})
            for k in ("a", "b")}
    results = run_jobs(jobs, tmp_path, executor="process", workers=2, log=lambda m: None)
    assert all(r.status == "ok" for r in results.values()), results
    assert [(tmp_path / f"{k}.txt").read_text() for k in jobs] == [expected, expected]
    assert os.environ.get("OPENBLAS_NUM_THREADS") == user_value  # this process's environment is left alone


@pytest.mark.parametrize("user_trim, expected", [(None, str(1024 ** 3)), ("", str(1024 ** 3)), ("65536", "65536")])
def test_pool_kernels_keep_freed_memory_unless_the_user_tuned_malloc(tmp_path, monkeypatch, user_trim, expected):
    from pcref_eval.runner.executors import KERNEL_MALLOC_VARS
    for var in KERNEL_MALLOC_VARS:
        monkeypatch.delenv(var, raising=False)
    if user_trim is not None:
        monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", user_trim)
    jobs = {k: (_env_notebook(tmp_path / f"{k}.ipynb", tmp_path / f"{k}.txt", "MALLOC_TRIM_THRESHOLD_"),
                tmp_path / f"{k}_out.ipynb", {}) for k in ("a", "b")}
    results = run_jobs(jobs, tmp_path, executor="process", workers=2, log=lambda m: None)
    assert all(r.status == "ok" for r in results.values()), results
    assert [(tmp_path / f"{k}.txt").read_text() for k in jobs] == [expected, expected]
    assert os.environ.get("MALLOC_TRIM_THRESHOLD_") == user_trim  # this process's environment is left alone


def test_contracts_checked_in_a_pool_match_one_process_and_log_in_site_order(data, tmp_path, monkeypatch):
    """Above PARALLEL_CONTRACTS sites the contract checks run in a process pool: same steps, same log order;
    a site whose extract breaks its contract fails alone."""
    from pcref_eval.runner import pipeline
    (data / "site_b" / "people.csv").write_text("person_id\nP1\n")  # breaks the people contract
    config = make_config(data, tmp_path / "out")
    paths = pipeline.RunPaths(tmp_path / "run")
    paths.create()
    serial_log, pool_log = [], []
    serial = pipeline.check_sites_contracts(config, SITES, paths, serial_log.append, "serial")
    monkeypatch.setattr(pipeline, "PARALLEL_CONTRACTS", 1)
    pooled = pipeline.check_sites_contracts(config, SITES, paths, pool_log.append, "process")
    assert [(s, r.status, r.message) for s, r in pooled.items()] == [(s, r.status, r.message) for s, r in serial.items()]
    assert pooled["site_b"].status == "failed" and pooled["site_a"].status in ("ok", "warning")
    assert [m.split("]")[0] for m in pool_log] == [f"[{s}" for s in SITES]


def test_a_kernel_that_dies_while_starting_is_started_again(tmp_path, monkeypatch):
    """A kernel that loses its port before replying (no cell run) is started again, up to 3 times in all."""
    import papermill

    from pcref_eval.runner import notebooks
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) < fail_times + 1:
            raise RuntimeError(notebooks.KERNEL_START_FAILED)

    monkeypatch.setattr(papermill, "execute_notebook", flaky)
    fail_times = 2
    notebooks.execute_notebook(SITE_NB, tmp_path / "out.ipynb", {}, tmp_path)
    assert len(calls) == 3
    calls.clear()
    fail_times = 3
    with pytest.raises(RuntimeError, match="kernel_info"):
        notebooks.execute_notebook(SITE_NB, tmp_path / "out.ipynb", {}, tmp_path)
    assert len(calls) == 3
    calls.clear()
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: calls.append(1) or (_ for _ in ()).throw(
        RuntimeError("something else")))
    with pytest.raises(RuntimeError, match="something else"):
        notebooks.execute_notebook(SITE_NB, tmp_path / "out.ipynb", {}, tmp_path)
    assert len(calls) == 1  # other errors are not retried
