"""Shared fixtures for the survival tests: the golden reference files (``tests/golden``, see ``tests.reference``).

Tests that need them FAIL (never skip) when they are missing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.reference import REF as REFERENCE_DIR

MISSING_MESSAGE = f"reference data not found at {REFERENCE_DIR} (the repository's golden copy)"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Path to the golden reference folder; fails the test with a clear message if absent."""
    if not (REFERENCE_DIR / "expected").is_dir() or not (REFERENCE_DIR / "data").is_dir():
        pytest.fail(MISSING_MESSAGE, pytrace=False)
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def load_data(reference_dir):
    """Read an input dataset from the golden reference data."""

    def _load(name: str, **kwargs) -> pd.DataFrame:
        path = reference_dir / "data" / name
        if not path.exists():
            pytest.fail(f"reference input {path} is missing", pytrace=False)
        return pd.read_csv(path, **kwargs)

    return _load


def expected_csv(name: str) -> pd.DataFrame | None:
    """An expected-values CSV read as text (to keep the printed precision), or None if missing."""
    path = REFERENCE_DIR / "expected" / name
    if not path.exists():
        return None
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def expected_json(name: str) -> dict | None:
    path = REFERENCE_DIR / "expected" / name
    if not path.exists():
        return None
    return json.loads(path.read_text())


def missing_param():
    """Single parameter used when the reference file is absent, so the test fails (not skips)."""
    return [pytest.param(None, id="reference-data-missing")]


def half_unit(printed: str) -> float:
    """Half a unit in the last printed digit of a number written as text ("0.0377" -> 5e-5)."""
    s = printed.strip().lower()
    mantissa, _, exponent = s.partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 0.5 * 10.0 ** (-decimals + (int(exponent) if exponent else 0))


def half_unit_sig(value: float, sig: int = 3) -> float:
    """Half a unit in the last place of ``value`` printed to ``sig`` significant digits."""
    if value == 0:
        return 0.5 * 10.0 ** (-sig)
    return 0.5 * 10.0 ** (math.floor(math.log10(abs(value))) - sig + 1)


def assert_close_printed(actual: float, printed: str, tol: float | None = None, what: str = "") -> None:
    """Compare to a printed reference value: |actual - printed| <= max(tol, half a printed unit).

    An empty printed value means NA in the source: ``actual`` must then be NaN.
    """
    if printed.strip() in ("", "NA", "NaN", "nan"):
        assert actual is None or np.isnan(actual), f"{what}: expected NA, got {actual}"
        return
    ref = float(printed)
    allowed = max(tol or 0.0, half_unit(printed)) + 1e-12
    assert actual is not None and np.isfinite(actual), f"{what}: expected {printed}, got {actual}"
    assert abs(actual - ref) <= allowed, f"{what}: {actual!r} vs printed {printed} (allowed {allowed:g})"
