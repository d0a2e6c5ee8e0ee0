"""Tests that need a system package (Chromium, poppler's pdftoppm/pdfinfo/pdftotext, R).

``require(found, name, package, adds)`` returns the executable when it is installed. When it is not,
the test is **skipped with the reason** (``make test`` prints skip reasons: ``pytest -rs``) on a
newcomer's machine, and **fails** when the environment variable ``CI`` is ``true`` (CI installs every
optional package through ``.ci/run``, so a missing one there is a broken CI image, not a skip).
"""

from __future__ import annotations

import os
import shutil

import pytest

#: How to install each optional system package (Debian/Ubuntu; macOS Homebrew).
INSTALL = {
    "chromium": "apt-get install chromium (macOS: install Google Chrome or `brew install --cask chromium`)",
    "poppler-utils": "apt-get install poppler-utils (macOS: `brew install poppler`)",
    "r-base": "apt-get install r-base-core (macOS: `brew install r`)",
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def require(found: str | None, name: str, package: str, adds: str = "") -> str:
    """``found`` (a path) if the package is installed; else skip (fail under ``CI=true``) naming what to install."""
    if found:
        return found
    how = INSTALL.get(package, f"apt-get install {package}")
    msg = f"{name} is not installed{' (' + adds + ')' if adds else ''}: {how}"
    if in_ci():
        pytest.fail(f"{msg}; CI=true requires it (.ci/run installs it)", pytrace=False)
    pytest.skip(msg)
    return ""  # not reached


def require_chromium() -> str:
    from pcref_eval.report.render import find_chromium
    return require(find_chromium(), "Chrome/Chromium", "chromium", "headless browser checks of the HTML report")


def require_poppler(tool: str = "pdftoppm") -> str:
    return require(shutil.which(tool), tool, "poppler-utils", "PDF page rendering and text checks")
