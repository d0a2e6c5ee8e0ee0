"""Shared fixtures for the attribution tests: the default demo (calendar-time model) with its truth."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from pcref_eval.cohort import build_cohort
from pcref_eval.config import CohortConfig, EthnicityConfig, StudyConfig
from pcref_eval.extract import load_site
from pcref_eval.synth import generate


def require_program(name: str, install: str) -> str:
    """Path of ``name``; skip with the reason when it is missing, but FAIL when CI=true (``tests.system.require``)."""
    from tests.system import require
    return require(shutil.which(name), name, install)


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """The default 6-site demo (100,000 people, seed 2024): pooled cohort, go-live dates and truth."""
    folder = tmp_path_factory.mktemp("attr")
    truth = generate(folder, people=100_000, seed=2024, n_sites=6)
    cohorts, go_live = [], {}
    for sid in sorted(truth["sites"]):
        site = load_site(folder / sid, tables=["people", "referrals", "mha_episodes"])
        cohorts.append(build_cohort(site, StudyConfig(), CohortConfig(), EthnicityConfig())[0])
        go_live[sid] = site.info.pcref_go_live
    saved = json.loads((folder / "truth.json").read_text())
    return pd.concat(cohorts, ignore_index=True), go_live, saved
