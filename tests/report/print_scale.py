"""Is a document printed at its own size? Chromium shrinks a whole document to fit its widest element.

A probe word is printed alone and then at the start of the document: its width in the PDF (pdftotext
-bbox) must not change. Needs poppler-utils (skip with the reason, or fail under ``CI=true``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.system import require

PROBE = "Scaleprobe"


def probe_width(pdf: Path) -> float:
    """Width (pt) of the probe word on the first page of ``pdf``."""
    pdftotext = require(shutil.which("pdftotext"), "pdftotext", "poppler-utils", "PDF text checks")
    out = subprocess.run([pdftotext, "-f", "1", "-l", "1", "-bbox", str(pdf), "-"], capture_output=True, text=True,
                         check=True).stdout
    x0, x1 = re.search(rf'xMin="([\d.]+)"[^>]*xMax="([\d.]+)"[^>]*>{PROBE}<', out).groups()
    return float(x1) - float(x0)


def print_scale(html: str, folder: Path, name: str, print_pdf: Callable[[Path, Path], Path]) -> float:
    """The probe's width at the start of ``html``'s ``<main>`` over its width alone: 1.0 = printed at full size."""
    start = html.index("<main>") + len("<main>")
    widths = []
    for label, page in (("alone", html[:start] + f"<p>{PROBE}</p></main></body></html>"),
                        ("with", html[:start] + f"<p>{PROBE}</p>" + html[start:])):
        path = folder / f".{name}-{label}.html"  # beside the document: its relative links resolve alike
        path.write_text(page, encoding="utf-8")
        try:
            widths.append(probe_width(print_pdf(path, folder / f"{name}-{label}.pdf")))
        finally:
            path.unlink()
    return widths[1] / widths[0]
