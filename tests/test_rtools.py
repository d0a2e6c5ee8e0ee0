"""The R helper skips with the install line when R is missing, and fails instead under CI=true."""

from __future__ import annotations

import pytest
from _pytest.outcomes import Failed, Skipped

from tests import rtools


def test_missing_r_skips_locally_and_fails_under_ci(monkeypatch):
    monkeypatch.setattr(rtools.shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(Skipped, match="r-cran-cmprsk"):
        rtools.require_r("cmprsk")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(Failed, match="Rscript.*not installed"):
        rtools.require_r("cmprsk")


def test_output_lines_are_parsed_with_na():
    assert rtools._parse("coef 0.5 -1e-3 NA\n\nse 2\n") == {"coef": [0.5, -0.001, pytest.approx(float("nan"), nan_ok=True)],
                                                           "se": [2.0]}
