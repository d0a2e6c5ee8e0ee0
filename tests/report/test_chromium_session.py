"""One browser printing many documents (pcref_eval.report.chromium) prints what ``chromium --print-to-pdf`` prints.

Needs Chromium and poppler-utils (skip with the reason, or fail under ``CI=true``).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from pcref_eval.report import chromium as C
from pcref_eval.report.render import find_chromium, print_chromium
from tests.system import require


@pytest.fixture(scope="module")
def documents(built_run) -> list[Path]:
    require(find_chromium(), "chromium", "chromium", "PDF printing checks")
    run_dir, _ = built_run
    release = run_dir / "release"
    return [release / "report.html", release / "appendix-data-quality.html", release / "appendix-sites.html"]


def _facts(pdf: Path) -> tuple[str, str]:
    """(pdfinfo's pages, page size and tagging lines; pdftotext -layout)."""
    pdfinfo = require(shutil.which("pdfinfo"), "pdfinfo", "poppler-utils", "PDF checks")
    info = subprocess.run([pdfinfo, str(pdf)], capture_output=True, text=True, check=True).stdout
    keep = "\n".join(line for line in info.splitlines() if line.startswith(("Pages", "Page size", "Tagged")))
    text = subprocess.run([shutil.which("pdftotext"), "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    return keep, text


def test_a_session_prints_what_the_command_line_prints(documents, tmp_path):
    with C.printing_sessions():
        by_session = [print_chromium(d, tmp_path / f"{d.stem}-session.pdf") for d in documents]
        assert len(C._ACTIVE) == 1, "one browser for the thread's prints"
    by_cli = [print_chromium(d, tmp_path / f"{d.stem}-cli.pdf") for d in documents]
    for a, b in zip(by_session, by_cli):
        facts_a, facts_b = _facts(a), _facts(b)
        assert facts_a == facts_b, a.name
        assert "Tagged:          yes" in facts_a[0]
        assert a.stat().st_size == pytest.approx(b.stat().st_size, rel=0.01)


def test_sessions_are_closed_when_the_scope_ends(documents, tmp_path):
    with C.printing_sessions():
        print_chromium(documents[0], tmp_path / "a.pdf")
        session = C._ACTIVE[0]
        pid, profile = session._pid, Path(session._profile)
        assert profile.exists()
    assert C._ACTIVE is None
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # exited and reaped
    assert not profile.exists()


def test_a_browser_that_dies_is_replaced_and_the_document_still_printed(documents, tmp_path, caplog):
    with C.printing_sessions():
        print_chromium(documents[0], tmp_path / "a.pdf")
        first = C._ACTIVE[0]
        os.killpg(first._pid, signal.SIGKILL)
        with caplog.at_level(logging.WARNING):
            second_pdf = print_chromium(documents[1], tmp_path / "b.pdf")  # falls back to its own browser
        assert "printing it on its own" in caplog.text
        assert first not in C._ACTIVE
        print_chromium(documents[2], tmp_path / "c.pdf")  # and the thread gets a new session
        assert len(C._ACTIVE) == 1 and C._ACTIVE[0] is not first
    assert _facts(second_pdf)[1].strip()


def test_writing_to_a_browser_that_has_exited_is_a_chromium_error():
    """Once the dead browser's end of the pipe is closed, the write itself fails (EPIPE). That must be the
    ChromiumError the printer falls back on, not a BrokenPipeError that fails the report (seen once in CI:
    which of the two happens depends on how soon the killed browser's processes are gone)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    session = object.__new__(C.ChromiumSession)
    session._to_browser, session._next_id = write_end, 0
    try:
        with pytest.raises(C.ChromiumError, match="closed its DevTools pipe"):
            session._send("Target.createTarget", {"url": "about:blank"})
    finally:
        os.close(write_end)
