"""Run manifests: what was run, on what, with which software, and how it went.

``manifest.json`` records the run id, the config and its hash, a SHA-256 of every input file,
package versions, the git commit, the seed, and status and timings per site and step.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

KEY_PACKAGES = ["pcref-eval", "pandas", "numpy", "scipy", "lifelines", "statsmodels", "papermill", "nbconvert",
                "great-expectations", "matplotlib", "seaborn", "pyarrow"]


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def folder_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file in a site folder, keyed by file name (sorted)."""
    return {p.name: file_sha256(p) for p in sorted(Path(folder).iterdir()) if p.is_file()}


def combined_hash(hashes: dict[str, str]) -> str:
    """One SHA-256 over a name -> digest mapping (order-independent)."""
    return hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()


def package_versions() -> dict[str, str]:
    """Installed versions of the packages the numbers depend on."""
    out = {"python": platform.python_version()}
    for name in KEY_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit(repo: Path) -> str | None:
    """The checked-out commit of the workbench (None outside a git checkout), with '-dirty' if modified
    (outputs saved into a tracked notebook by JupyterLab do not count: see runner.notebook_source)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        from pcref_eval.runner.notebook_source import changed_files
        dirty = changed_files(repo)  # notebooks count only when their program changed, not their outputs
        return sha.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_manifest(path: Path, manifest: dict) -> None:
    """Write the manifest atomically (temp file, then rename)."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)
