"""The report renders offline: headless Chromium makes no page-initiated network request and paints a
non-blank page; the PDF's first page renders with pdftoppm.

These tests need Chrome/Chromium and poppler-utils (CI installs them through ``.ci/run``). Where one
is missing they skip with the reason and what to install; under ``CI=true`` they fail instead
(:mod:`tests.system`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pcref_eval.report.render import chromium_flags, find_chromium, png_is_blank
from tests.system import require


def _require(binary: str | None, name: str, package: str) -> str:
    return require(binary, name, package, "offline rendering checks")


def page_requests(html: Path, workdir: Path) -> tuple[list[str], bytes, str]:
    """Open ``html`` in headless Chromium; return (URLs the page asked for over the network, screenshot, stderr).

    Chromium logs every network request to a NetLog. Requests the browser makes for itself
    (component updates, time sync, account checks) have initiator "not an origin"; requests made
    because of the page carry the page's (file://) isolation key. Only the latter are returned.
    """
    exe = _require(find_chromium(), "chromium", "chromium")
    netlog, shot = workdir / "netlog.json", workdir / "shot.png"
    cmd = [exe, *chromium_flags(workdir / "profile"), f"--log-net-log={netlog}", "--net-log-capture-mode=Everything",
           "--hide-scrollbars", "--window-size=1200,1600", f"--screenshot={shot}", html.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = json.loads(netlog.read_text())
    types = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        if types.get(event["type"]) != "URL_REQUEST_START_JOB" or "url" not in params:
            continue
        if params.get("initiator") == "not an origin" and "file://" not in str(params.get("network_isolation_key")):
            continue  # the browser's own background traffic, not caused by the page
        if not params["url"].startswith(("file:", "data:")):
            urls.append(params["url"])
    return urls, shot.read_bytes() if shot.exists() else b"", proc.stderr


def test_detector_sees_requests_a_page_makes(tmp_path):
    """Negative control: a page with a CDN script and a remote image is caught."""
    page = tmp_path / "planted.html"
    page.write_text("<html><body><p>x</p><img src='http://pcref-test.invalid/x.png'>"
                    "<script src='https://cdn.pcref-test.invalid/require.js'></script></body></html>")
    urls, _, _ = page_requests(page, tmp_path)
    assert any("pcref-test.invalid/x.png" in u for u in urls)
    assert any("require.js" in u for u in urls)


def test_report_html_opens_in_chromium_without_network(built_run, tmp_path):
    run_dir, outputs = built_run
    urls, shot, stderr = page_requests(outputs["html"], tmp_path)
    assert "Page load failed" not in stderr
    assert urls == [], f"the report made network requests: {urls}"
    assert shot, "chromium wrote no screenshot"
    assert not png_is_blank(shot), "the report's screenshot is blank"


def test_pdf_first_page_renders(built_run, tmp_path):
    run_dir, outputs = built_run
    exe = _require(shutil.which("pdftoppm"), "pdftoppm", "poppler-utils")
    pdf = outputs["pdf"]
    assert pdf.read_bytes()[:5] == b"%PDF-"
    subprocess.run([exe, "-f", "1", "-l", "1", "-r", "40", "-png", str(pdf), str(tmp_path / "page")], check=True,
                   timeout=120)
    pages = sorted(tmp_path.glob("page*.png"))
    assert pages, "pdftoppm rendered nothing"
    assert not png_is_blank(pages[0].read_bytes())
    width, height = _pdf_pages(pdf)[0]  # A4 portrait first page: 595.3 x 841.9 pt (Chromium: 594.96 x 841.92)
    assert abs(width - 595.3) < 1 and abs(height - 841.9) < 1, (width, height)


def _pdf_pages(pdf: Path) -> list[tuple[float, float]]:
    exe = _require(shutil.which("pdfinfo"), "pdfinfo", "poppler-utils")
    out = subprocess.run([exe, "-f", "1", "-l", "9999", str(pdf)], capture_output=True, text=True, check=True).stdout
    sizes = []
    for line in out.splitlines():
        if line.startswith("Page") and " size:" in line:
            w, _, h = line.split("size:")[1].split()[:3]
            sizes.append((float(w), float(h)))
    return sizes


@pytest.mark.parametrize("engine", ["weasyprint", "chromium"])
def test_both_pdf_engines_print_a4_with_landscape_wide_tables(built_run, tmp_path, engine):
    """Either engine: A4 portrait pages, wide tables on A4 landscape pages, every table caption in the text."""
    from pcref_eval.report.render import write_pdf_chromium, write_pdf_weasyprint

    run_dir, outputs = built_run
    html = outputs["html"]
    pdf = tmp_path / f"{engine}.pdf"
    if engine == "chromium":
        _require(find_chromium(), "chromium", "chromium")
        write_pdf_chromium(html, pdf)
    else:
        write_pdf_weasyprint(html.read_text(encoding="utf-8"), pdf)
    sizes = _pdf_pages(pdf)
    a4 = (595.3, 841.9)
    assert all(abs(min(w, h) - a4[0]) < 1 and abs(max(w, h) - a4[1]) < 1 for w, h in sizes), sizes
    assert sizes[0][0] < sizes[0][1], "the title page is portrait"
    html_text = html.read_text(encoding="utf-8")
    assert "pcref-table wide" in html_text, "the fixture report should have a wide table"
    assert any(w > h for w, h in sizes), "wide tables should be printed on landscape pages"
    text = subprocess.run([_require(shutil.which("pdftotext"), "pdftotext", "poppler-utils"), str(pdf), "-"],
                          capture_output=True, text=True, check=True).stdout
    captions = set(re.findall(r"Table (\d+)\. ", text))
    n_tables = html_text.count("<caption>")
    assert len(captions) == n_tables, f"{engine}: {len(captions)} of {n_tables} table captions in the PDF text"
