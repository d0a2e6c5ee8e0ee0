"""Fixtures for the runner tests: tiny synthetic sites and stand-in notebooks.

The stand-in notebooks (``notebooks/``) are not analyses: the site one hashes its site's files
into ``<site>_digest.csv`` and a fake ``<site>_detention_rates.csv``, raises when the site folder holds
a ``RAISE`` file and sleeps for the seconds written in a ``SLEEP`` file; the cross-site one pools the
site tables. They exercise the runner (executors, cache, lock, crash safety, registry) in seconds.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from pcref_eval.config import EvaluationConfig, OutputConfig, SiteConfig
from pcref_eval.runner import pipeline
from pcref_eval.runner.pipeline import RunOptions, StepResult

HERE = Path(__file__).resolve().parent
SITE_NB = HERE / "notebooks" / "site_standin.ipynb"
CROSS_NB = HERE / "notebooks" / "cross_standin.ipynb"
REPO = HERE.parent.parent
SITES = ["site_a", "site_b", "site_c"]


@pytest.fixture(scope="session")
def synth_sites(tmp_path_factory) -> Path:
    """Three tiny synthetic sites (real extracts, so the data contracts pass)."""
    from pcref_eval.synth import generate
    folder = tmp_path_factory.mktemp("synth")
    generate(folder, n_sites=3, people=300, seed=11)
    return folder


@pytest.fixture
def data(tmp_path, synth_sites) -> Path:
    """A private copy of the synthetic sites the test may alter."""
    import shutil
    dest = tmp_path / "data"
    shutil.copytree(synth_sites, dest)
    return dest


def make_config(data: Path, outputs: Path, sites=SITES) -> EvaluationConfig:
    return EvaluationConfig(sites=[SiteConfig(id=s, path=data / s) for s in sites],
                            outputs=OutputConfig(dir=outputs, formats=["html"]))


def options(**kw) -> RunOptions:
    kw.setdefault("executor", "serial")
    return RunOptions(site_notebook=SITE_NB, cross_site_notebook=CROSS_NB, **kw)


@pytest.fixture
def no_report(monkeypatch):
    """Skip the report build (it is not the runner's concern and takes seconds per run)."""
    monkeypatch.setattr(pipeline, "build_reports", lambda config, paths, site_steps, log, *registry: StepResult("ok"))


def tree_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` (relative path -> digest)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    return env


def expected_digest(site_dir: Path) -> str:
    """What the stand-in site notebook writes to ``<site>_digest.csv`` for ``site_dir``."""
    digest = hashlib.sha256()
    for p in sorted(Path(site_dir).iterdir()):
        if p.is_file() and p.name not in ("RAISE", "SLEEP"):
            digest.update(p.name.encode())
            digest.update(p.read_bytes())
    return f"digest\n{digest.hexdigest()}\n"
