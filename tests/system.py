"""Tests that need a system package (Chromium, poppler's pdftoppm/pdfinfo/pdftotext, R): the one skip-or-fail rule.

``require(found, name, package, adds)`` returns the executable when it is installed. When it is not,
:func:`missing` **skips the test with the reason** (``make test`` prints skip reasons: ``pytest -rs``) on a
newcomer's machine, and **fails** it when the environment variable ``CI`` is ``true`` (CI installs every
optional package through ``.ci/run``, so a missing one there is a broken CI image, not a skip).
``tests.rtools`` (R as a second implementation) uses the same :func:`missing`.
"""

from __future__ import annotations

import os
import shutil

import pytest

#: How to install each optional system package (Debian/Ubuntu; macOS Homebrew).
INSTALL = {
    "chromium": "apt-get install chromium (macOS: install Google Chrome or `brew install --cask chromium`)",
    "poppler-utils": "apt-get install poppler-utils (macOS: `brew install poppler`)",
    "r-base": ("apt-get install -y --no-install-recommends r-base-core r-cran-survival r-cran-cmprsk r-cran-metafor "
               "r-cran-mice (macOS: `brew install r`, then install.packages() of those R packages)"),
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def missing(message: str) -> None:
    """Skip the calling test with ``message``; fail it instead (no traceback) when ``CI=true``."""
    if in_ci():
        pytest.fail(f"{message}; CI=true requires it (.ci/run installs it)", pytrace=False)
    pytest.skip(message)


def require(found: str | None, name: str, package: str, adds: str = "") -> str:
    """``found`` (a path) if the package is installed; else skip (fail under ``CI=true``) naming what to install."""
    if found:
        return found
    how = INSTALL.get(package, f"apt-get install {package}")
    missing(f"{name} is not installed{' (' + adds + ')' if adds else ''}: {how}")
    return ""  # not reached


def require_chromium() -> str:
    from pcref_eval.report.render import find_chromium
    return require(find_chromium(), "Chrome/Chromium", "chromium", "headless browser checks of the HTML report")


def require_poppler(tool: str = "pdftoppm") -> str:
    return require(shutil.which(tool), tool, "poppler-utils", "PDF page rendering and text checks")
