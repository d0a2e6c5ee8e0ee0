"""Shared synthetic extracts for the data-contract tests (generated once per session)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from pcref_eval.synth import generate
from pcref_eval.synth.model import SimulationModel


@pytest.fixture(scope="session")
def faults_dir(tmp_path_factory) -> Path:
    """``synth --faults`` data: 4 sites, 20,000 people, seed 3 (truth.json lists every injected fault)."""
    out = tmp_path_factory.mktemp("faults")
    generate(out, people=20_000, seed=3, faults=True)
    return out


@pytest.fixture(scope="session")
def clean_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean")
    generate(out, people=20_000, seed=3, faults=False)
    return out


@pytest.fixture(scope="session")
def small_site_master(tmp_path_factory) -> Path:
    """One small clean site (2,000 people) to copy and corrupt."""
    out = tmp_path_factory.mktemp("small")
    # static model: recording as before issue 11 (no faster recording after go-live), so the site stays
    # below the 90% ethnicity-recorded threshold and validation has a real warning to report
    generate(out, n_sites=1, people=2_000, seed=5, faults=False, model=SimulationModel.static())
    return out / "site_a"


@pytest.fixture
def small_site(small_site_master, tmp_path) -> Path:
    """A fresh copy of the small clean site, safe to corrupt."""
    dst = tmp_path / "site_a"
    shutil.copytree(small_site_master, dst)
    return dst


def truth(folder: Path) -> dict:
    return json.loads((folder / "truth.json").read_text())


def make_spotless(site: Path) -> None:
    """Remove the synthetic data's real warnings so every check passes (for exit code 0)."""
    people = pd.read_csv(site / "people.csv", dtype=str, keep_default_na=False)
    people["ethnic_category"] = people["ethnic_category"].where(~people["ethnic_category"].isin(["", "Z", "99"]), "A")
    people["date_of_death"] = ""
    people.to_csv(site / "people.csv", index=False, lineterminator="\n")
    pe = pd.read_csv(site / "patient_experience.csv", dtype=str, keep_default_na=False)
    pe["ethnic_category"] = pe["ethnic_category"].where(~pe["ethnic_category"].isin(["", "Z", "99"]), "A")
    pe.to_csv(site / "patient_experience.csv", index=False, lineterminator="\n")
    mha = pd.read_csv(site / "mha_episodes.csv", dtype=str, keep_default_na=False)
    mha = mha[mha["start_date"] <= "2025-04-30"]
    mha.to_csv(site / "mha_episodes.csv", index=False, lineterminator="\n")


@pytest.fixture(scope="session", autouse=True)
def gx_import_sandbox(tmp_path_factory) -> dict:
    """Import great-expectations and build its ephemeral context inside an empty cwd and HOME.

    Runs before the first contract test, so import-time and context-creation writes (a ``gx/``
    project folder, files under HOME) would land in these folders; test_gx_isolation checks they
    stay empty. ``already_imported`` is True when another test package imported GX first.
    """
    import os
    import sys

    root = tmp_path_factory.mktemp("gx_sandbox")
    cwd, home = root / "cwd", root / "home"
    cwd.mkdir()
    home.mkdir()
    already = "great_expectations" in sys.modules
    old_cwd, old_home = Path.cwd(), os.environ.get("HOME")
    os.chdir(cwd)
    os.environ["HOME"] = str(home)
    try:
        from pcref_eval.contracts.gx_backend import ephemeral_context, gx_module

        gx_module()
        ephemeral_context()
    finally:
        os.chdir(old_cwd)
        if old_home is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = old_home
    return {"cwd": cwd, "home": home, "already_imported": already}
