"""Run R as a second, independent implementation in tests (Debian's r-base-core and r-cran-* packages).

:func:`run_r` writes the inputs as CSV, runs an R script with ``Rscript`` and returns what the script
reports with ``out(name, values)`` (plain ``name v1 v2 ...`` lines at 17 significant digits, so no R JSON
package is needed).
The R and package versions used are written to ``r_versions.json`` in the test's tmp dir and printed
(pytest shows them with ``-rA``/``-s``, and in the failure report).

When R or a package is missing the test SKIPS with the reason and the install line, except where
env ``CI=true``: there it FAILS, because CI installs them (``.ci/run``); the rule is ``tests.system.missing``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pandas as pd

from tests.system import INSTALL, missing, require

R_PACKAGES = ("survival", "cmprsk", "metafor", "mice")
APT_LINE = INSTALL["r-base"].split(" (macOS")[0]


def _missing(reason: str) -> None:
    missing(f"{reason}: install with `{APT_LINE}`")


@cache
def r_versions(packages=R_PACKAGES) -> dict[str, str]:
    """R's version string and each package's version ("missing" if not installed)."""
    code = ("cat('R', paste(R.version$major, R.version$minor, sep='.'), '\\n');"
            f"for (p in c({', '.join(repr(p) for p in packages)})) "
            "cat(p, if (requireNamespace(p, quietly=TRUE)) as.character(packageVersion(p)) else 'missing', '\\n')")
    out = subprocess.run(["Rscript", "--vanilla", "-e", code], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        _missing(f"Rscript failed: {out.stderr.strip()[-300:]}")
    return dict(line.split() for line in out.stdout.splitlines() if line.strip())


def require_r(*packages: str) -> dict[str, str]:
    """Skip (fail under CI=true) unless Rscript and ``packages`` are installed; return the versions."""
    require(shutil.which("Rscript"), "R (Rscript)", "r-base", "cross-checks against R")
    versions = r_versions(R_PACKAGES)
    absent = [p for p in packages if versions.get(p, "missing") == "missing"]
    if absent:
        _missing(f"R package(s) {', '.join(absent)} not installed")
    return versions


def _parse(text: str) -> dict[str, list[float]]:
    """Lines ``name v1 v2 ...`` (numbers, NA as NaN) -> {name: [floats]}."""
    out: dict[str, list[float]] = {}
    for line in text.splitlines():
        parts = line.split()
        if parts:
            out[parts[0]] = [float("nan") if p == "NA" else float(p) for p in parts[1:]]
    return out


def run_r(script: str, tmp_path: Path, packages: tuple[str, ...] = (), **frames: pd.DataFrame) -> dict[str, list[float]]:
    """Run ``script`` with each frame available as a data.frame of its keyword name; return its output.

    The script reports results with ``out(name, values)`` (defined here; full precision). Versions go
    to ``tmp_path / "r_versions.json"`` and stdout.
    """
    versions = require_r(*packages)
    (tmp_path / "r_versions.json").write_text(json.dumps(versions, indent=2) + "\n")
    print(f"R cross-check with {json.dumps(versions)}")
    lines = ["options(warn = 1)", "out <- function(name, x) cat(name, formatC(as.numeric(x), digits = 17, "
             "format = 'g'), '\\n')"]
    for p in packages:
        lines.append(f"suppressPackageStartupMessages(library({p}))")
    for name, frame in frames.items():
        path = tmp_path / f"{name}.csv"
        frame.to_csv(path, index=False)
        lines.append(f"{name} <- read.csv('{path.as_posix()}', stringsAsFactors = FALSE)")
    r_file = tmp_path / "check.R"
    r_file.write_text("\n".join(lines) + "\n" + script + "\n")
    proc = subprocess.run(["Rscript", "--vanilla", str(r_file)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise AssertionError(f"R script failed ({r_file}):\n{proc.stderr[-3000:]}")
    return _parse(proc.stdout)
