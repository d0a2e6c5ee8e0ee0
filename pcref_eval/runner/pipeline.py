"""The evaluation run: contracts, one notebook per site, one across sites, report, release check.

A run is staged in ``outputs/runs/.staging-<run-id>/`` and moved to ``outputs/runs/<run-id>/``
in one rename when it finishes, so a crash never leaves a half-written run among the finished ones.

Layout of a finished run::

    <run-id>/
      manifest.json        what was run, inputs' hashes, versions, status and timings
      config.yml           the resolved config the notebooks read
      run.log              progress log (no patient-level data)
      restricted/          never leaves the secure environment: executed notebooks,
                           unrounded tables, cohorts, data-quality samples
      release/             what may leave: report, tables (CSV), figures (PNG, SVG), captions
"""

from __future__ import annotations

import shutil
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Literal

from pcref_eval import __version__
from pcref_eval.config import EvaluationConfig, write_config
from pcref_eval.runner.manifest import (combined_hash, folder_hashes, git_commit, package_versions, utc_now,
                                        write_manifest)
from pcref_eval.runner.cache import (CROSS_SITE_OWNER, CachePlan, reuse_cross_site, reuse_release_check, reuse_report,
                                     reuse_site)
from pcref_eval.runner.executors import default_workers, run_jobs
from pcref_eval.runner.lock import RunLock, remove_stale_staging
from pcref_eval.runner.notebooks import CROSS_SITE_NOTEBOOK, SITE_NOTEBOOK, NotebookFailed, execute_notebook
from pcref_eval.runner.registry import safely

Echo = Callable[[str], None]


@dataclass(frozen=True)
class RunOptions:
    """How to run: executor for site notebooks and worker count.

    ``executor``: ``serial``, ``process`` (a pool of ``workers``, default one per core) or ``dask``
    (tasks on the cluster at ``scheduler``, or on a local cluster when it is None).
    ``force``: run every step even when an earlier run's result could be reused.
    ``if_changed``: when no step's inputs changed since the latest successful run, create no run.
    ``registry``: SQLAlchemy URL of the run registry (default ``sqlite:///<outputs>/registry.sqlite``).
    ``site_notebook``/``cross_site_notebook``: other notebooks than the committed ones (tests, advanced use).
    """

    executor: Literal["serial", "process", "dask"] = "process"
    workers: int | None = None
    run_id: str | None = None
    scheduler: str | None = None
    force: bool = False
    if_changed: bool = False
    registry: str | None = None
    site_notebook: Path | None = None
    cross_site_notebook: Path | None = None


@dataclass
class StepResult:
    """One step's outcome for the manifest."""

    status: Literal["ok", "warning", "failed", "skipped"]
    seconds: float = 0.0
    message: str = ""
    cached_from: str | None = None  # run id whose unchanged result was reused (see runner.cache)

    def as_dict(self) -> dict:
        out = {"status": self.status, "seconds": round(self.seconds, 2), "message": self.message}
        if self.cached_from:
            out["cached_from"] = self.cached_from
        return out


@dataclass
class RunResult:
    """The finished run: its folder, overall status, and exit code for schedulers."""

    run_id: str
    run_dir: Path
    status: Literal["ok", "partial", "failed"]
    sites: dict[str, dict[str, StepResult]] = field(default_factory=dict)
    report: Path | None = None
    skipped: bool = False  # --if-changed found nothing changed: no run made; run_id is the latest run

    @property
    def exit_code(self) -> int:
        return {"ok": 0, "partial": 1, "failed": 2}[self.status]


def make_run_id(config: EvaluationConfig) -> str:
    """UTC timestamp plus the first 8 hex digits of the config hash."""
    return f"{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}-{config.hash()[:8]}"


class RunPaths:
    """Folders of one run (staged, then published)."""

    def __init__(self, root: Path):
        self.root = root
        self.restricted = root / "restricted"
        self.release = root / "release"
        self.notebooks = self.restricted / "notebooks"
        self.config = root / "config.yml"
        self.log = root / "run.log"

    def create(self) -> None:
        for p in (self.restricted, self.release, self.notebooks):
            p.mkdir(parents=True, exist_ok=True)


def run_evaluation(config: EvaluationConfig, options: RunOptions = RunOptions(), echo: Echo = print) -> RunResult:
    """Run the whole evaluation for ``config``; one failing site never stops the others.

    One run at a time per outputs folder: raises :class:`~pcref_eval.runner.lock.RunLocked` when
    another run holds ``outputs/runs/.lock``. Staging folders left by killed runs are removed first.
    """
    runs_dir = config.outputs.dir / "runs"
    with RunLock(runs_dir) as lock:
        remove_stale_staging(runs_dir, log=echo)
        run_id = options.run_id or make_run_id(config)
        while (runs_dir / run_id).exists() and not options.run_id:  # two runs within one second
            time.sleep(0.25)
            run_id = make_run_id(config)
        if (runs_dir / run_id).exists():
            raise FileExistsError(f"run folder {runs_dir / run_id} already exists; choose another run id")
        lock.set_run_id(run_id)
        return _run_locked(config, options, echo, run_id, runs_dir)


def _run_locked(config: EvaluationConfig, options: RunOptions, echo: Echo, run_id: str, runs_dir: Path) -> RunResult:
    inputs = {s.id: _input_hashes(s.path) for s in config.sites}
    plan = CachePlan(config, inputs, runs_dir, options.site_notebook or SITE_NOTEBOOK,
                     options.cross_site_notebook or CROSS_SITE_NOTEBOOK, force=options.force)
    if options.if_changed and not options.force and (previous := plan.unchanged_since()):
        echo(f"no input changed since run {previous} (--if-changed): nothing to do")
        report = runs_dir / previous / "release" / "report.html"
        return RunResult(previous, runs_dir / previous, "ok", report=report if report.exists() else None,
                         skipped=True)
    staging = runs_dir / f".staging-{run_id}"
    if staging.exists():
        shutil.rmtree(staging)
    paths = RunPaths(staging)
    paths.create()
    write_config(config, paths.config)
    log = _Logger(paths.log, echo)
    started = time.perf_counter()
    manifest = initial_manifest(config, run_id)
    log(f"run {run_id}: {len(config.sites)} site(s) -> {runs_dir / run_id}")

    registry = _open_registry(config, options, log)
    if registry is not None:
        safely(lambda: registry.mark_aborted(config.outputs.dir), log, "update")
        safely(lambda: registry.record_start(run_id, config.outputs.dir, manifest, options.executor), log, "write")

    site_steps: dict[str, dict[str, StepResult]] = {s.id: {} for s in config.sites}
    for site in config.sites:
        manifest["inputs"][site.id] = inputs[site.id]
        reused = reuse_site(plan, site.id, paths.root, log)
        if reused:
            site_steps[site.id] = reused
    to_check = [s.id for s in config.sites if not site_steps[s.id]]
    for site_id, step in check_sites_contracts(config, to_check, paths, log, options.executor).items():
        site_steps[site_id]["contracts"] = step

    runnable = [s.id for s in config.sites if "notebook" not in site_steps[s.id]
                and site_steps[s.id]["contracts"].status in ("ok", "warning")]
    expected = [s.id for s in config.sites if s.id in runnable
                or site_steps[s.id].get("notebook", StepResult("skipped")).status == "ok"]
    along = (options.executor != "serial" and runnable and expected
             and plan.find_cross_site(expected) is None)
    results = run_site_notebooks(config, runnable, paths, options, log,
                                 cross_site=expected if along else None)
    speculative = results.pop(CROSS_SITE_OWNER, None)
    for site_id, step in results.items():
        site_steps[site_id]["notebook"] = step
    for s in config.sites:
        site_steps[s.id].setdefault("notebook", StepResult("skipped", message="not analysed: data contract errors"))

    analysed = [s.id for s in config.sites if site_steps[s.id]["notebook"].status == "ok"]
    overall: dict[str, StepResult] = {}
    if speculative is not None and analysed == expected:
        overall["cross_site"] = speculative
    else:
        if speculative is not None:
            discard_cross_site(paths.root, [s.id for s in config.sites], log)
        overall["cross_site"] = (reuse_cross_site(plan, analysed, paths.root, log)
                                 or run_cross_site(config, analysed, paths, log, notebook=options.cross_site_notebook))
    manifest["cache"] = plan.manifest_entry()
    record_steps(manifest, site_steps, overall)
    write_manifest(paths.root / "manifest.json", manifest)  # provisional: the report's title page reads it
    overall["report"] = (reuse_report(plan, site_steps, overall, paths.root, log)
                         or build_reports(config, paths, site_steps, log, options.registry))
    overall["release_check"] = (reuse_release_check(plan, overall, paths.root, log)
                                or gate_release_step(paths, log))
    record_steps(manifest, site_steps, overall)
    status = overall_status(site_steps, overall)
    manifest.update(status=status, finished=utc_now(), seconds=round(time.perf_counter() - started, 2))
    write_manifest(paths.root / "manifest.json", manifest)
    final = publish_run(staging, runs_dir / run_id)
    log.move(final / "run.log")
    if registry is not None:
        safely(lambda: registry.record_finish(final, manifest, options.executor), log, "write")
        registry.close()
    echo(f"run {run_id} finished: {status} in {manifest['seconds']:.1f} s")
    echo_documents(final / "release", echo)
    report = final / "release" / "report.html"
    return RunResult(run_id, final, status, site_steps, report if report.exists() else None)


def echo_documents(release: Path, echo: Echo) -> None:
    """Print where the cross-site summary, the board packs and the report's appendices are."""
    board = release / "board"
    for path in sorted(board.glob("cross-site-summary.*")) + sorted(p for p in board.glob("*.*")
                                                                    if p.stem != "cross-site-summary"):
        what = "cross-site summary" if path.stem == "cross-site-summary" else f"board pack {path.stem}"
        if path.suffix == ".pdf" or (path.suffix == ".html" and not path.with_suffix(".pdf").exists()):
            echo(f"{what}: {path}")
    for stem in ("appendix-sites", "appendix-data-quality"):
        found = next((release / f"{stem}.{ext}" for ext in ("html", "pdf", "docx")
                      if (release / f"{stem}.{ext}").exists()), None)
        if found is not None:
            echo(f"{stem.replace('-', ' ')}: {found}")


def record_steps(manifest: dict, site_steps: dict[str, dict[str, StepResult]], overall: dict[str, StepResult]) -> None:
    """Copy per-site and overall step results into the manifest."""
    manifest["sites"] = {s: {k: v.as_dict() for k, v in steps.items()} for s, steps in site_steps.items()}
    manifest["steps"] = {k: v.as_dict() for k, v in overall.items()}


def initial_manifest(config: EvaluationConfig, run_id: str) -> dict:
    """Manifest fields known before anything runs."""
    repo = Path(__file__).resolve().parents[2]
    return {
        "run_id": run_id, "started": utc_now(), "workbench_version": __version__, "seed": config.seed,
        "config": config.model_dump(mode="json"), "config_hash": config.hash(),
        "packages": package_versions(), "git_commit": git_commit(repo), "inputs": {},
    }


def _input_hashes(folder: Path) -> dict:
    try:
        files = folder_hashes(folder)
    except OSError as exc:
        return {"error": str(exc)}
    return {"files": files, "combined": combined_hash(files)}


#: Where (under the outputs folder) runs record data-contract suites already checked with great-expectations.
VERIFIED_CONTRACTS = Path(".cache") / "verified-contracts.json"


def verified_contracts_file(config: EvaluationConfig) -> Path:
    """The record of suites checked with great-expectations for runs into ``config.outputs.dir``."""
    return config.outputs.dir / VERIFIED_CONTRACTS


#: Runs with more sites than this check their extracts' contracts in a process pool (one worker per core).
PARALLEL_CONTRACTS = 8


def check_sites_contracts(config: EvaluationConfig, site_ids: list[str], paths: RunPaths, log,
                          executor: str = "process") -> dict[str, StepResult]:
    """:func:`contract_step` for each of ``site_ids``, logged in site order.

    With more than :data:`PARALLEL_CONTRACTS` sites (and an executor other than ``serial``) the sites are
    checked in a process pool of one worker per core: 50 sites took 18 s in one process. A worker that
    dies fails its site's step, not the run.
    """
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from pcref_eval.runner.executors import die_with_parent
    where = {s.id: s.path for s in config.sites}
    jobs = {sid: (where[sid], paths, sid, verified_contracts_file(config)) for sid in site_ids}
    steps: dict[str, StepResult] = {}
    if executor == "serial" or len(jobs) <= PARALLEL_CONTRACTS:
        for sid, job in jobs.items():
            steps[sid] = contract_step(*job)
            log_contracts(log, sid, steps[sid])
        return steps
    with ProcessPoolExecutor(default_workers(len(jobs)), initializer=die_with_parent) as pool:
        futures = {sid: pool.submit(contract_step, *job) for sid, job in jobs.items()}
        for sid, future in futures.items():
            try:
                steps[sid] = future.result()
            except BrokenProcessPool as exc:
                steps[sid] = StepResult("failed", message=f"worker process died: {exc}")
            log_contracts(log, sid, steps[sid])
    return steps


def log_contracts(log, site_id: str, step: StepResult) -> None:
    log(f"[{site_id}] contracts: {step.status}{' - ' + step.message if step.message else ''} ({step.seconds:.1f} s)")


def contract_step(site_dir: Path, paths: RunPaths, site_id: str, verified: Path | None = None) -> StepResult:
    """Validate a site's extract against the data contracts (errors stop the site, warnings do not).

    ``verified``: record of suites already checked with great-expectations (skips its 10-15 s import).
    """
    t0 = time.perf_counter()
    try:
        from pcref_eval.contracts import validate_site
    except ImportError:  # contracts package not installed yet: required columns only
        validate_site = None
    if validate_site is None:
        step = _required_columns_only(site_dir)
    else:
        result = validate_site(site_dir, restricted_dir=paths.restricted / "dq" / site_id,
                               previous=_previous_validation(paths, site_id), verified_contracts=verified)
        status = {"pass": "ok", "warning": "warning", "error": "failed"}[result.status]
        step = StepResult(status, message=result.message or _failed_expectations(result))
    step.seconds = time.perf_counter() - t0
    return step


def _required_columns_only(site_dir: Path) -> StepResult:
    from pcref_eval.extract import ExtractError, read_raw_table, read_site_info
    from pcref_eval.schema import TABLE_SCHEMAS
    try:
        read_site_info(site_dir)
        for table in TABLE_SCHEMAS:
            read_raw_table(site_dir, table)
    except ExtractError as exc:
        return StepResult("failed", message=str(exc))
    return StepResult("ok")


def _failed_expectations(result) -> str:
    failed = result.results[~result.results["success"]]
    if failed.empty:
        return ""
    parts = [f"{r.table}.{r.column}: {r.expectation} ({r.severity}, {r.unexpected_count} rows)"
             for r in failed.itertuples()]
    return "; ".join(parts[:5]) + (f"; and {len(parts) - 5} more" if len(parts) > 5 else "")


def _previous_validation(paths: RunPaths, site_id: str) -> Path | None:
    runs = sorted(p for p in paths.root.parent.iterdir() if p.is_dir() and not p.name.startswith("."))
    for run in reversed(runs):
        candidate = run / "restricted" / "dq" / site_id / "validation.json"
        if candidate.exists():
            return candidate
    return None


def site_parameters(config_path: Path, site_id: str, run_dir: Path) -> dict:
    """Papermill parameters of the site notebook."""
    return {"config_path": str(config_path), "site_id": site_id, "run_dir": str(run_dir)}


def run_site_notebooks(config: EvaluationConfig, site_ids: list[str], paths: RunPaths, options: RunOptions,
                       log, cross_site: list[str] | None = None) -> dict[str, StepResult]:
    """Execute the site notebook for each site: serially, in a process pool or on Dask (runner.executors).

    With ``cross_site`` (the sites expected to be analysed), the cross-site notebook over those sites
    runs in the same pool, first, while the site notebooks run (its result is under ``"all"``). It
    builds any cohort a site notebook has not yet saved (cohorts are deterministic, and saved
    atomically), so it does not wait for them; :func:`_run_locked` discards and re-runs it when a
    site notebook then fails.
    """
    notebook = options.site_notebook or SITE_NOTEBOOK
    jobs, what = {}, {}
    if cross_site:
        jobs[CROSS_SITE_OWNER] = cross_site_job(cross_site, paths, options.cross_site_notebook)
        what[CROSS_SITE_OWNER] = "cross-site notebook"
    for s in site_ids:
        jobs[s] = (notebook, paths.notebooks / f"site_{s}.ipynb", site_parameters(paths.config, s, paths.root))
        what[s] = "site notebook"
    return run_jobs(jobs, paths.root, executor=options.executor, workers=options.workers,
                    scheduler=options.scheduler, log=log, what=what)


def discard_cross_site(run_dir: Path, site_ids: list[str], log) -> None:
    """Delete the outputs of a cross-site notebook run over sites of which one then failed."""
    from pcref_eval.runner.cache import step_files
    files = step_files(run_dir, CROSS_SITE_OWNER, site_ids)
    for rel in files:
        (run_dir / rel).unlink(missing_ok=True)
    log(f"[all] a site notebook failed: the cross-site notebook run alongside is discarded ({len(files)} file(s)) "
        f"and run again over the analysed sites")


def _default_workers(n_jobs: int) -> int:
    return default_workers(n_jobs)


def _open_registry(config: EvaluationConfig, options: RunOptions, log):
    """The run registry (None if it cannot be opened: the run goes on without it)."""
    from pcref_eval.runner.registry import Registry, default_url
    return safely(lambda: Registry(options.registry or default_url(config.outputs.dir)), log, "open")


def execute_job(job: tuple[Path, Path, dict], cwd: Path) -> StepResult:
    """Run one notebook job and time it; notebook errors become a failed StepResult (never raised)."""
    from pcref_eval.runner.kept_kernel import worker_kernel
    source, output, params = job
    t0 = time.perf_counter()
    try:
        execute_notebook(source, output, params, cwd, kernel_log=kernel_log_path(output), kept=worker_kernel())
    except NotebookFailed as exc:
        return StepResult("failed", time.perf_counter() - t0, exc.summary)
    except Exception as exc:  # kernel death, timeouts: isolate the site
        return StepResult("failed", time.perf_counter() - t0, f"{type(exc).__name__}: {exc}")
    return StepResult("ok", time.perf_counter() - t0)


def kernel_log_path(output: Path) -> Path:
    """``restricted/logs/<site id or all>.kernel.log`` for the executed notebook ``output`` (restricted)."""
    name = output.stem.removeprefix("site_") if output.stem.startswith("site_") else "all"
    return output.parent.parent / "logs" / f"{name}.kernel.log"


def _execute_logged(name: str, job, cwd: Path, log) -> StepResult:
    log(f"[{name}] running {job[0].name} ...")
    step = execute_job(job, cwd)
    _log_step(log, name, job[0].name, step)
    return step


def _log_step(log, name: str, what: str, step: StepResult) -> None:
    log(f"[{name}] {what}: {step.status}{' - ' + step.message if step.message else ''} ({step.seconds:.1f} s)")


def run_cross_site(config: EvaluationConfig, site_ids: list[str], paths: RunPaths, log,
                   notebook: Path | None = None) -> StepResult:
    """Execute the cross-site notebook over the sites whose notebooks succeeded."""
    if not site_ids:
        log("[all] cross-site notebook: skipped (no site analysed)")
        return StepResult("skipped", message="no site analysed")
    return _execute_logged(CROSS_SITE_OWNER, cross_site_job(site_ids, paths, notebook), paths.root, log)


def cross_site_job(site_ids: list[str], paths: RunPaths, notebook: Path | None = None) -> tuple:
    """The cross-site notebook job over ``site_ids``: (notebook, output, parameters)."""
    params = {"config_path": str(paths.config), "site_ids": site_ids, "run_dir": str(paths.root)}
    return (notebook or CROSS_SITE_NOTEBOOK, paths.notebooks / "cross_site.ipynb", params)


def build_reports(config: EvaluationConfig, paths: RunPaths, site_steps, log, registry: str | None = None) -> StepResult:
    """Assemble the report, its appendices and the board packs from the executed notebooks (release/)."""
    t0 = time.perf_counter()
    try:
        from pcref_eval.report.build import build_report, resolve_pdf_engine
        from pcref_eval.runner.registry import default_url
        engine = resolve_pdf_engine(config.outputs.pdf_engine)
        outputs = build_report(paths.root, formats=config.outputs.formats, site_steps=site_steps, pdf_engine=engine,
                               registry_url=registry or default_url(config.outputs.dir))
    except Exception as exc:
        log(f"[all] report: failed - {type(exc).__name__}: {exc}")
        log.restricted_traceback(traceback.format_exc())
        return StepResult("failed", time.perf_counter() - t0, f"{type(exc).__name__}: {exc}")
    made = [f"pdf ({engine})" if f == "pdf" else f for f in sorted(outputs)]
    step = StepResult("ok", time.perf_counter() - t0, ", ".join(made))
    _log_step(log, "all", "report", step)
    return step


def gate_release_step(paths: RunPaths, log) -> StepResult:
    """Scan release/ for disclosive content; if anything is found, release/ is withheld (see release_check)."""
    t0 = time.perf_counter()
    try:
        from pcref_eval.release_check import gate_release
    except ImportError:
        return StepResult("skipped", message="release check not available")
    ok, violations = gate_release(paths.root)
    step = StepResult("ok" if ok else "failed", time.perf_counter() - t0,
                      "" if ok else f"{len(violations)} violation(s); release/ withheld")
    _log_step(log, "all", "release check", step)
    return step


def overall_status(site_steps: dict[str, dict[str, StepResult]], overall: dict[str, StepResult]) -> str:
    """ok: everything ran; partial: something failed but some results exist; failed: nothing usable."""
    failed_sites = [s for s, st in site_steps.items() if any(v.status == "failed" for v in st.values())]
    any_failed_overall = any(v.status == "failed" for v in overall.values())
    if len(failed_sites) == len(site_steps):
        return "failed"
    return "partial" if failed_sites or any_failed_overall else "ok"


def publish_run(staging: Path, final: Path) -> Path:
    """Move the staged run into place with one rename (atomic on one filesystem)."""
    if final.exists():
        raise FileExistsError(f"run folder {final} already exists; refusing to overwrite an earlier run")
    staging.rename(final)
    return final


class _Logger:
    """Echoes progress lines and appends them, timestamped, to the run's log file."""

    def __init__(self, path: Path, echo: Echo):
        self.path, self.echo = path, echo

    def __call__(self, message: str) -> None:
        self.echo(message)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(f"{utc_now()} {message}\n")

    def restricted_traceback(self, text: str) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(text)

    def move(self, new_path: Path) -> None:
        self.path = new_path
