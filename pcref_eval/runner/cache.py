"""Reusing unchanged steps of earlier runs.

Each step gets a **cache key**, a SHA-256 over everything its result depends on:

- a site (contracts check + site notebook): the SHA-256 of every file in the site's folder, the
  config sections the site notebook reads (``study``, ``ethnicity``, ``cohort``, ``disclosure``,
  ``measures``, ``seed`` and the site's id), the notebook's program, and the code fingerprint;
- the cross-site notebook: the keys of the sites it pools, the same config sections, the notebook's
  program and the code fingerprint;
- the whole run: every step key plus the rest of the config that shapes the report (name, formats).

A notebook's **program** is its cells' types, sources and tags
(:func:`pcref_eval.runner.notebook_source.source_digest`): outputs, execution counts and metadata that
JupyterLab saves while someone explores the notebook do not change what a run computes, so they do not
invalidate a scheduled run.

The **code fingerprint** is the package version, the hash of ``requirements.lock`` (when the package
runs from a checkout), the versions of the key packages, and a hash of the package's own files and
of ``data_contracts/``, so an edited workbench never reuses results computed by the old code.

A step whose key equals the key recorded in an earlier published run, where that step succeeded, is
**reused**: the earlier run's outputs for that step are copied into the new staging folder and the
step is recorded with ``cached_from: <run-id>``. A site's outputs are the files under
``restricted/`` and ``release/`` named after it (a path component equal to the site id, starting with
``<site id>_`` or ``<site id>.``, or ``site_<site id>.ipynb``); the cross-site step's are those named
``all`` / ``all_*`` and ``cross_site.ipynb``. Notebooks must follow that naming (the publisher does).
Copies, not hard links, so no later step of a new run can ever alter an earlier run's files.

When every step is reused and ok, the report is too (copied from the earlier successful run with the
same run key, whose id it then carries); otherwise it is rebuilt from this run's notebooks.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import pcref_eval
from pcref_eval import __version__
from pcref_eval.config import EvaluationConfig
from pcref_eval.runner.manifest import file_sha256, package_versions
from pcref_eval.runner.notebook_source import source_digest

Log = Callable[[str], None]
#: Config sections a site (and the cross-site) notebook reads.
SITE_SECTIONS = ("study", "ethnicity", "cohort", "disclosure", "measures", "seed")
CROSS_SITE_OWNER = "all"
REUSABLE = {"contracts": ("ok", "warning"), "notebook": ("ok",)}


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Package version, lock file hash, key package versions and a hash of the package's files."""
    pkg = Path(pcref_eval.__file__).resolve().parent
    files = {}
    # the package's own files, and the data contracts the contracts step checks against
    for folder in (pkg, pkg.parent / "data_contracts"):
        for p in sorted(folder.rglob("*")) if folder.is_dir() else []:
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo"):
                files[str(p.relative_to(pkg.parent))] = file_sha256(p)
    lock = pkg.parent / "requirements.lock"
    return _sha({"version": __version__, "lock": file_sha256(lock) if lock.is_file() else None,
                 "packages": package_versions(), "files": files})


def notebook_hash(path: Path) -> str | None:
    """Digest of the notebook's program (cells' types, sources, tags); None when unreadable (never cached)."""
    return source_digest(Path(path))


def _sections(config: EvaluationConfig) -> dict:
    dump = config.model_dump(mode="json")
    return {k: dump[k] for k in SITE_SECTIONS}


def site_key(config: EvaluationConfig, site_id: str, inputs: dict, notebook: Path) -> str | None:
    """Cache key of one site's contracts check and notebook (None: inputs unreadable, never cached)."""
    combined = inputs.get("combined") if isinstance(inputs, dict) else None
    nb = notebook_hash(notebook)
    if combined is None or nb is None:
        return None
    return _sha({"step": "site", "site_id": site_id, "inputs": combined, "config": _sections(config),
                 "notebook": nb, "code": code_fingerprint()})


def cross_site_key(config: EvaluationConfig, site_keys: dict[str, str | None], notebook: Path) -> str | None:
    """Cache key of the cross-site notebook over the sites in ``site_keys``."""
    nb = notebook_hash(notebook)
    if nb is None or not site_keys or any(v is None for v in site_keys.values()):
        return None
    return _sha({"step": "cross_site", "sites": dict(sorted(site_keys.items())), "config": _sections(config),
                 "notebook": nb, "code": code_fingerprint()})


def run_key(config: EvaluationConfig, site_keys: dict, cross_key: str | None) -> str | None:
    """Key of a whole run: all step keys plus the report-shaping config (name, formats)."""
    if cross_key is None or any(v is None for v in site_keys.values()):
        return None
    return _sha({"sites": dict(sorted(site_keys.items())), "cross_site": cross_key, "name": config.name,
                 "formats": list(config.outputs.formats), "code": code_fingerprint()})


def published_runs(runs_dir: Path) -> list[tuple[str, Path, dict]]:
    """Published runs (newest first) with their manifests; unreadable manifests are skipped."""
    out = []
    if not Path(runs_dir).is_dir():
        return out
    for p in (p for p in Path(runs_dir).iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            out.append((p.name, p, json.loads((p / "manifest.json").read_text())))
        except (OSError, ValueError):
            continue
    return sorted(out, key=lambda r: (str(r[2].get("started", "")), r[0]), reverse=True)


def owner_of(rel: Path, owners: list[str]) -> str | None:
    """Which site (or ``all``) a run file belongs to, by its name; ``owners`` longest first."""
    for part in rel.parts[1:]:
        for o in owners:
            if part == o or part.startswith(o + "_") or part.startswith(o + ".") or part == f"site_{o}.ipynb":
                return o
        if part == "cross_site.ipynb":
            return CROSS_SITE_OWNER
    return None


def step_files(run_dir: Path, owner: str | None, site_ids: list[str]) -> list[Path]:
    """Files of ``run_dir`` (under restricted/ and release/) that belong to ``owner``.

    ``owner`` None: the files of no site and not the cross-site step's (the report's outputs)."""
    owners = sorted(set(site_ids) | {CROSS_SITE_OWNER}, key=len, reverse=True)
    files = []
    for top in ("restricted", "release"):
        base = run_dir / top
        if not base.is_dir():
            continue
        for p in base.rglob("*"):
            if p.is_file():
                rel = p.relative_to(run_dir)
                if owner_of(rel, owners) == owner:
                    files.append(rel)
    return sorted(files)


@dataclass
class Reuse:
    """A step found in an earlier run: where, and what it recorded."""

    run_id: str
    run_dir: Path
    steps: dict  # step name -> recorded dict (status, seconds, message)


class CachePlan:
    """Cache keys of this run's steps, and which earlier runs can supply them."""

    def __init__(self, config: EvaluationConfig, inputs: dict[str, dict], runs_dir: Path,
                 site_notebook: Path, cross_notebook: Path, force: bool = False):
        self.config, self.runs_dir, self.force = config, Path(runs_dir), force
        self.site_notebook, self.cross_notebook = Path(site_notebook), Path(cross_notebook)
        self.site_ids = [s.id for s in config.sites]
        self.site_keys = {s: site_key(config, s, inputs.get(s, {}), self.site_notebook) for s in self.site_ids}
        self.all_cross_key = cross_site_key(config, self.site_keys, self.cross_notebook)
        self.run_key = run_key(config, self.site_keys, self.all_cross_key)
        self.cross_key: str | None = None  # set once the analysed sites are known
        self._runs: list | None = None

    @property
    def runs(self) -> list[tuple[str, Path, dict]]:
        if self._runs is None:
            self._runs = published_runs(self.runs_dir)
        return self._runs

    def unchanged_since(self) -> str | None:
        """Id of the latest successful run whose every step key equals this run's, else None."""
        if self.run_key is None:
            return None
        for run_id, _, m in self.runs:
            if m.get("status") == "ok":
                return run_id if m.get("cache", {}).get("run") == self.run_key else None
        return None

    def find_site(self, site_id: str) -> Reuse | None:
        key = self.site_keys.get(site_id)
        if self.force or key is None:
            return None
        for run_id, run_dir, m in self.runs:
            if m.get("cache", {}).get("sites", {}).get(site_id) != key:
                continue
            steps = m.get("sites", {}).get(site_id, {})
            if all(steps.get(k, {}).get("status") in ok for k, ok in REUSABLE.items()) and _release_kept(m):
                return Reuse(run_id, run_dir, steps)
        return None

    def find_cross_site(self, analysed: list[str]) -> Reuse | None:
        self.cross_key = cross_site_key(self.config, {s: self.site_keys.get(s) for s in analysed},
                                        self.cross_notebook)
        if self.force or self.cross_key is None:
            return None
        for run_id, run_dir, m in self.runs:
            if m.get("cache", {}).get("cross_site") != self.cross_key:
                continue
            step = m.get("steps", {}).get("cross_site", {})
            if step.get("status") == "ok" and _release_kept(m):
                return Reuse(run_id, run_dir, {"cross_site": step})
        return None

    def copy_outputs(self, reuse: Reuse, owner: str | None, staging: Path) -> int:
        """Copy ``owner``'s files from the earlier run into ``staging``; return the number copied."""
        files = step_files(reuse.run_dir, owner, self.site_ids)
        for rel in files:
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(reuse.run_dir / rel, dest)
        return len(files)

    def manifest_entry(self) -> dict:
        return {"sites": self.site_keys, "cross_site": self.cross_key, "run": self.run_key,
                "code": code_fingerprint(), "forced": self.force}


def _release_kept(manifest: dict) -> bool:
    """An earlier run whose release check withheld release/ cannot supply released files."""
    return manifest.get("steps", {}).get("release_check", {}).get("status") != "failed"


def reuse_site(plan: CachePlan, site_id: str, staging: Path, log: Log) -> dict | None:
    """Copy an unchanged site's outputs from an earlier run; its step results, or None to run it."""
    import time

    from pcref_eval.runner.pipeline import StepResult
    found = plan.find_site(site_id)
    if found is None:
        return None
    t0 = time.perf_counter()
    try:
        n = plan.copy_outputs(found, site_id, staging)
    except OSError as exc:
        log(f"[{site_id}] could not reuse run {found.run_id} ({exc}); running it again")
        return None
    if not (staging / "restricted" / "notebooks" / f"site_{site_id}.ipynb").exists():
        log(f"[{site_id}] run {found.run_id} lacks the executed notebook; running it again")
        return None
    seconds = time.perf_counter() - t0
    steps = {name: StepResult(rec.get("status", "ok"), seconds if name == "notebook" else 0.0,
                              rec.get("message", ""), cached_from=found.run_id)
             for name, rec in found.steps.items() if name in REUSABLE}
    log(f"[{site_id}] unchanged since run {found.run_id}: reused its contracts check and notebook "
        f"({n} file(s), {seconds:.1f} s)")
    return steps


def reuse_cross_site(plan: CachePlan, analysed: list[str], staging: Path, log: Log):
    """Copy the cross-site outputs from an earlier run over the same unchanged sites; else None."""
    import time

    from pcref_eval.runner.pipeline import StepResult
    found = plan.find_cross_site(analysed)
    if found is None:
        return None
    t0 = time.perf_counter()
    try:
        n = plan.copy_outputs(found, CROSS_SITE_OWNER, staging)
    except OSError as exc:
        log(f"[all] could not reuse run {found.run_id} ({exc}); running the cross-site notebook again")
        return None
    if not (staging / "restricted" / "notebooks" / "cross_site.ipynb").exists():
        return None
    rec = found.steps["cross_site"]
    log(f"[all] cross-site inputs unchanged since run {found.run_id}: reused its notebook ({n} file(s))")
    return StepResult(rec.get("status", "ok"), time.perf_counter() - t0, rec.get("message", ""),
                      cached_from=found.run_id)


def reuse_report(plan: CachePlan, site_steps: dict, overall: dict, staging: Path, log: Log):
    """When every step of this run is unchanged and ok, copy the report of the run that made it.

    The report depends on every step's key (the run key) and status, so it is reused only when all
    steps are ok and an earlier successful run had the same run key. It then names that earlier run.
    """
    import time

    from pcref_eval.runner.pipeline import StepResult
    if plan.force or plan.run_key is None:
        return None
    steps = [st for sts in site_steps.values() for st in sts.values()] + list(overall.values())
    if any(st.status not in ("ok", "warning") for st in steps):
        return None
    for run_id, run_dir, m in plan.runs:
        rec = m.get("steps", {}).get("report", {})
        if m.get("cache", {}).get("run") == plan.run_key and m.get("status") == "ok" and rec.get("status") == "ok":
            t0 = time.perf_counter()
            try:
                n = plan.copy_outputs(Reuse(run_id, run_dir, {}), None, staging)
            except OSError as exc:
                log(f"[all] could not reuse the report of run {run_id} ({exc}); building it again")
                return None
            log(f"[all] nothing changed since run {run_id}: reused its report ({n} file(s))")
            return StepResult("ok", time.perf_counter() - t0, rec.get("message", ""), cached_from=run_id)
    return None


def reuse_release_check(plan: CachePlan, overall: dict, staging: Path, log: Log):
    """Reuse the release check of the run whose report was reused, when ``release/`` is byte-identical.

    The check reads ``release/``, the disclosure config and the sites' identifiers: with the same run
    key and the same bytes in ``release/`` (its own ``release-check.json`` included) its verdict is the same.
    """
    import time

    from pcref_eval.runner.pipeline import StepResult
    source = getattr(overall.get("report"), "cached_from", None)
    if plan.force or not source:
        return None
    t0 = time.perf_counter()
    for run_id, run_dir, m in plan.runs:
        if run_id != source:
            continue
        rec = m.get("steps", {}).get("release_check", {})
        if rec.get("status") != "ok" or _tree_digest(staging / "release") != _tree_digest(run_dir / "release"):
            return None
        log(f"[all] release/ is byte-identical to run {run_id}'s: reused its release check")
        return StepResult("ok", time.perf_counter() - t0, rec.get("message", ""), cached_from=run_id)
    return None


def _tree_digest(folder: Path) -> str | None:
    if not folder.is_dir():
        return None
    return _sha({str(p.relative_to(folder)): file_sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()})
