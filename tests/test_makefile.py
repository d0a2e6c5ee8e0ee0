"""``make lab`` passes ``--allow-root`` to Jupyter only when the effective uid is 0 (dry runs of the Makefile)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.system import require

ROOT = Path(__file__).resolve().parents[1]


def _lab_command(*args: str, prefix: tuple[str, ...] = (), root: Path = ROOT) -> str:
    """The ``jupyter lab`` line ``make -n lab`` would run (``make -n`` runs nothing)."""
    make = require(shutil.which("make"), "make", "make", "the Makefile targets")
    out = subprocess.run([*prefix, make, "-n", "-C", str(root), "lab", *args], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    lines = [line for line in out.splitlines() if " lab " in f"{line} " and "jupyter" in line]
    assert len(lines) == 1, out
    return lines[0]


@pytest.mark.parametrize(("uid", "allowed"), [("0", True), ("1000", False), ("10", False), ("100", False)])
def test_allow_root_only_for_uid_zero(uid, allowed):
    line = _lab_command(f"LAB_UID={uid}")
    assert ("--allow-root" in line) is allowed, line
    assert "--notebook-dir=notebooks" in line


def test_real_effective_uid_decides():
    assert ("--allow-root" in _lab_command()) is (os.geteuid() == 0)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to run make as an unprivileged user")
def test_unprivileged_user_gets_no_allow_root():
    """Run as root here: the same dry run as user nobody (uid 65534) has no --allow-root. The Makefile and the
    files it hashes are copied to a folder user nobody can read (a checkout under ``mktemp -d`` is root-only)."""
    import tempfile

    copy = Path(tempfile.mkdtemp(prefix="pcref-make-"))
    try:
        copy.chmod(0o755)
        for name in ("Makefile", "requirements.lock", "pyproject.toml"):
            shutil.copy(ROOT / name, copy / name)
            (copy / name).chmod(0o644)
        line = _lab_command(prefix=("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"), root=copy)
    finally:
        shutil.rmtree(copy)
    assert "--allow-root" not in line, line
