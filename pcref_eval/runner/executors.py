"""Where the notebook jobs run: one after another, in a local process pool, or on a Dask cluster.

Every executor takes the same jobs (``{name: (notebook, output, parameters)}``) and returns the
same ``{name: StepResult}``; a job that fails, or whose worker dies, becomes a failed
:class:`~pcref_eval.runner.pipeline.StepResult` and never stops the other jobs.

- ``serial``: in this process, in order (simplest to debug).
- ``process``: a :class:`~concurrent.futures.ProcessPoolExecutor`, by default one worker per core.
  Workers are started with ``PR_SET_PDEATHSIG`` on Linux, so killing the run kills its workers
  (and their kernels, which exit when their parent does). Their kernels use one BLAS thread each
  (unless ``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS``/``MKL_NUM_THREADS`` is set): with a kernel per core,
  threaded BLAS oversubscribes the cores. Measured on the 50-site national run on 2 cores: the
  cross-site notebook took 557 s with OpenBLAS's default threads and 371 s with one (whole run 12 min 32 s
  -> 10 min 55 s). Dask's nanny sets the same variables for its workers. They also keep the memory
  they free for reuse (glibc's ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_``, unless either is
  set): a kernel allocates and frees many arrays of a few MB (columns, 300-dpi figure rasters), and glibc
  otherwise returns them to the system and faults fresh pages in for the next one. On a virtual machine
  whose first touch of a page is slow that is most of a kernel's system time: a national site notebook's
  board and figures took 10.1 CPU-s by default and 9.1 with the memory kept (page faults 265,000 ->
  107,000, peak resident memory +3%; three runs each).
- ``dask``: each job is a task on a Dask distributed cluster (``--scheduler tcp://host:8786``), or
  on a throw-away :class:`~distributed.LocalCluster` when no address is given. The workers must
  see the same filesystem paths as this process (data folders, the outputs folder and the
  installed ``pcref_eval``), e.g. one shared network filesystem mounted at the same place.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Callable

Job = tuple  # (notebook: Path, output: Path, parameters: dict)
Log = Callable[[str], None]
EXECUTORS = ("serial", "process", "dask")
#: thread-count variables of the BLAS libraries numpy and scipy may load (OpenMP, OpenBLAS, MKL)
BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: glibc malloc settings of the pool's kernels: blocks up to 32 MB (glibc's largest mmap threshold) come
#: from the heap, and up to 1 GB of freed heap is kept for reuse rather than returned to the system
KERNEL_MALLOC_VARS = {"MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024), "MALLOC_TRIM_THRESHOLD_": str(1024 ** 3)}


def default_workers(n_jobs: int) -> int:
    """One worker per usable core, never more than there are jobs."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(n_jobs, cores))


def run_jobs(jobs: dict[str, Job], cwd: Path, executor: str = "process", workers: int | None = None,
             scheduler: str | None = None, log: Log = print, what: str | dict[str, str] = "site notebook") -> dict:
    """Run ``jobs`` with the chosen executor; return ``{name: StepResult}`` (never raises for a job).

    Jobs start in the order given. ``what`` names the jobs in the log (one label, or one per job).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of {EXECUTORS}")
    if not jobs:
        return {}
    if executor == "dask":
        return _run_dask(jobs, cwd, workers, scheduler, log, what)
    if executor == "serial" or len(jobs) == 1:
        return _run_serial(jobs, cwd, log, what)
    return _run_pool(jobs, cwd, workers or default_workers(len(jobs)), log, what)


def _run_serial(jobs, cwd, log, what) -> dict:
    from pcref_eval.runner.pipeline import execute_job
    results = {}
    for name, job in jobs.items():
        log(f"[{name}] running {Path(job[0]).name} ...")
        results[name] = execute_job(job, cwd)
        log_step(log, name, _label(what, name), results[name])
    return results


def _label(what: str | dict[str, str], name: str) -> str:
    return what.get(name, "notebook") if isinstance(what, dict) else what


def _count(jobs: dict, what: str | dict[str, str]) -> str:
    """``4 site notebook(s)`` or, for mixed jobs, ``5 notebook(s)``."""
    labels = set(what.values()) if isinstance(what, dict) else {what}
    return f"{len(jobs)} {labels.pop() if len(labels) == 1 else 'notebook'}(s)"


def _run_pool(jobs, cwd, workers, log, what) -> dict:
    from pcref_eval.runner.pipeline import StepResult, execute_job
    log(f"running {_count(jobs, what)} in a pool of {workers} process(es)")
    results = {}
    with ProcessPoolExecutor(max_workers=workers, initializer=_pool_worker_setup) as pool:
        futures = {pool.submit(execute_job, job, cwd): name for name, job in jobs.items()}
        for fut in as_completed(futures):
            name = futures[fut]
            try:
                results[name] = fut.result()
            except BrokenProcessPool as exc:  # a worker was killed (e.g. out of memory)
                results[name] = StepResult("failed", message=f"worker process died: {exc}")
            log_step(log, name, _label(what, name), results[name])
    return results


def _pool_worker_setup() -> None:
    """Pool worker initializer: die with the run; the kernels this worker starts use one BLAS thread and keep
    the memory they free; its notebooks run one after another in one kept kernel
    (:mod:`pcref_eval.runner.kept_kernel`)."""
    from pcref_eval.runner.kept_kernel import keep_worker_kernel
    die_with_parent()
    one_blas_thread()
    keep_freed_memory()
    keep_worker_kernel()


def one_blas_thread() -> None:
    """Set the BLAS thread-count variables to 1 in this process's environment, where not already set
    (an empty value counts as not set, as it does for OpenBLAS).

    Processes started afterwards (notebook kernels, spawned workers) read them when numpy loads its BLAS.
    """
    for var in BLAS_THREAD_VARS:
        if not os.environ.get(var, "").strip():
            os.environ[var] = "1"


def keep_freed_memory() -> None:
    """Set :data:`KERNEL_MALLOC_VARS` in this process's environment for the processes it starts, unless the
    user set either of them (then the user's malloc settings stand, whole). Only glibc reads them."""
    if not any(os.environ.get(var, "").strip() for var in KERNEL_MALLOC_VARS):
        os.environ.update(KERNEL_MALLOC_VARS)


def die_with_parent() -> None:
    """Pool worker initializer: on Linux, get SIGTERM when the run's process dies (even by SIGKILL)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
            if os.getppid() == 1:  # parent already gone between fork and prctl
                os._exit(1)
        except OSError:
            pass


def _run_dask(jobs, cwd, workers, scheduler, log, what) -> dict:
    from distributed import Client, LocalCluster, as_completed as dask_completed

    from pcref_eval.runner.pipeline import StepResult, execute_job
    cluster = None
    try:
        if scheduler:
            client = Client(scheduler)  # connect timeout: distributed.comm.timeouts.connect (30 s)
            log(f"running {_count(jobs, what)} on the Dask cluster at {scheduler}")
        else:
            n = workers or default_workers(len(jobs))
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
            log(f"running {_count(jobs, what)} on a local Dask cluster of {n} worker(s)")
    except Exception as exc:  # scheduler unreachable: every job fails, the run still finishes
        msg = f"Dask cluster unavailable ({scheduler or 'local'}): {type(exc).__name__}: {exc}"
        log(msg)
        if cluster is not None:
            cluster.close()
        return {name: StepResult("failed", message=msg) for name in jobs}
    results = {}
    tag = uuid.uuid4().hex[:8]
    try:
        futures = {client.submit(execute_job, job, Path(cwd), key=f"pcref-{name}-{tag}", pure=False): name
                   for name, job in jobs.items()}
        t0 = {name: time.perf_counter() for name in jobs}
        for fut in dask_completed(list(futures)):
            name = futures[fut]
            try:
                results[name] = fut.result()
            except Exception as exc:  # KilledWorker, lost connection: isolate the job
                results[name] = StepResult("failed", time.perf_counter() - t0[name],
                                           f"Dask task failed: {type(exc).__name__}: {exc}")
            log_step(log, name, _label(what, name), results[name])
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return results


def log_step(log: Log, name: str, what: str, step) -> None:
    cached = f" (reused from run {step.cached_from})" if getattr(step, "cached_from", None) else ""
    log(f"[{name}] {what}: {step.status}{' - ' + step.message if step.message else ''}{cached} "
        f"({step.seconds:.1f} s)")
