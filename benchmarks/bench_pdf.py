"""Printing report documents to PDF with Chromium: in one piece, in parts, and through one browser.

    python benchmarks/bench_pdf.py RUN/release/appendix-sites.html
    python benchmarks/bench_pdf.py RUN/release/board/site_*.html --modes command-line session

Each mode prints all the given HTML files, one after another, in a child process, and reports the wall
time, the system's busy CPU-seconds meanwhile (read from /proc/stat: run it on an otherwise idle machine),
the peak RSS and PSS of the child's process tree (Chromium's processes included), and the pages made.

- ``one-piece``: ``chromium --print-to-pdf`` of each document as it is;
- ``command-line``: the report's printer (:func:`pcref_eval.report.render.write_pdf_chromium`): a document over
  ``PART_BYTES`` of HTML in parts, joined; a browser started for every print;
- ``session``: the same within :func:`pcref_eval.report.chromium.printing_sessions` (one browser), as
  ``build_report`` prints.

Measured 2026-12-01 on the reference machine (2 cores, idle), national run's sites appendix (80 MB of HTML,
1,858 pages): one piece 66.6 s, 80.2 CPU-s, 7.28 GB RSS (6.55 GB PSS); command line in parts 64.2 s, 81.4 CPU-s,
2.38 GB (1.62 GB PSS); in parts through one browser 51.4 s, 61.3 CPU-s, 2.41 GB (1.72 GB PSS). Ten of its
board packs: 7.6 s and 13.1 CPU-s a browser each, 3.2 s and 5.0 CPU-s through one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_pipeline import run_monitored  # noqa: E402

MODES = ("one-piece", "command-line", "session")
CHILD = """
import sys
from pathlib import Path
from pcref_eval.report import chromium as C, render as R
mode, out, files = sys.argv[1], Path(sys.argv[2]), [Path(f) for f in sys.argv[3:]]
printer = R.print_chromium if mode == "one-piece" else R.write_pdf_chromium
if mode == "session":
    with C.printing_sessions():
        for i, f in enumerate(files):
            printer(f, out / f"{i:04d}.pdf")
else:
    for i, f in enumerate(files):
        printer(f, out / f"{i:04d}.pdf")
"""


def busy_cpu_seconds() -> float:
    """CPU-seconds the whole system has spent not idle since boot (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / 100  # USER_HZ


def pages(pdf: Path) -> int:
    from pcref_eval.boardpack.build import pdf_page_count
    return pdf_page_count(pdf)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("html", type=Path, nargs="+", help="report or board-pack HTML files (in their release folder)")
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    args = p.parse_args(argv)
    print(f"bench_pdf: {len(args.html)} file(s), {sum(f.stat().st_size for f in args.html) / 1e6:.1f} MB of HTML")
    for mode in args.modes:
        with tempfile.TemporaryDirectory(prefix="bench-pdf-") as out:
            cpu = busy_cpu_seconds()
            wall, rss, code, pss = run_monitored(
                [sys.executable, "-c", CHILD, mode, out, *map(str, args.html)], env=None, cwd=REPO)
            cpu = busy_cpu_seconds() - cpu
            made = sorted(Path(out).glob("*.pdf"))
            print(f"  {mode:13s} {wall:7.1f} s wall, {cpu:7.1f} busy CPU-s, peak tree {rss / 1e9:.2f} GB RSS "
                  f"({pss / 1e9:.2f} GB PSS), {sum(pages(f) for f in made)} pages in {len(made)} PDF(s)"
                  f"{'' if code == 0 else f', exit {code}'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
