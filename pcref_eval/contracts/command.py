"""``pcref-eval validate DIR``: validate one site folder, or a folder of site folders.

A site folder is recognised by its ``site.yml``. Every site's machine-readable result
(``validation.json``), failing-row samples (``failing_rows.csv``, identifiers: restricted) and
offline DQ report (``dq_report.html``) go to ``<out_dir>/restricted/dq/<site>/``; nothing is
written to a ``release/`` folder. Without ``out_dir`` a new ``<out_root>/<time>/`` is made (the
command line passes ``<outputs>/validate``, the workbench's own outputs folder by default).
The console shows the failed checks and the problems (``all_checks=True``: every check). The exit code is 0 when every check passes, 1 when only
warning-level checks fail, 2 when any error-level check fails or an extract cannot be read.
Bad input gives a paragraph naming file, table, column and example rows, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TextIO

import pandas as pd

from pcref_eval.contracts.validate import JSON_NAME, SiteValidation, check_label, validate_site

DEFAULT_OUT_ROOT = Path("outputs") / "validate"
_TABLE_FILES = {".csv", ".parquet"}


def find_sites(path: Path) -> list[Path]:
    """``path`` itself if it holds site.yml (or looks like a site: table files), else its site sub-folders."""
    if (path / "site.yml").is_file():
        return [path]
    subs = sorted(p for p in path.iterdir() if p.is_dir() and (p / "site.yml").is_file())
    if subs:
        return subs
    if any(p.suffix in _TABLE_FILES for p in path.iterdir() if p.is_file()):
        return [path]  # a site folder without site.yml: validate it so the message says what is missing
    return []


def new_run_dir(root: Path = DEFAULT_OUT_ROOT) -> Path:
    """A new, never-reused run folder ``<root>/<timestamp>[-n]`` (earlier runs stay intact)."""
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    for n in range(1, 1000):
        candidate = root / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            candidate.mkdir(parents=True, exist_ok=False)
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder under {root}")


def find_previous(run_dir: Path, site_name: str) -> Path | None:
    """The latest earlier run's validation.json for this site among ``run_dir``'s sibling runs."""
    candidates = []
    parent = run_dir.resolve().parent
    if not parent.is_dir():
        return None
    for other in parent.iterdir():
        if other.resolve() == run_dir.resolve() or not other.is_dir():
            continue
        f = other / "restricted" / "dq" / site_name / JSON_NAME
        if f.is_file():
            try:
                stamp = json.loads(f.read_text(encoding="utf-8")).get("validated_at") or ""
            except (OSError, ValueError):
                continue
            candidates.append((stamp, f.stat().st_mtime, f))
    return max(candidates)[2] if candidates else None


def validate_command(path: Path, out_dir: Path | None = None, *, contracts_dir: Path | None = None,
                     stream: TextIO | None = None, out_root: Path | None = None, all_checks: bool = True) -> int:
    """Run ``pcref-eval validate``; print the checks (failed only unless ``all_checks``), problems and a
    summary per site; return 0/1/2."""
    out = stream or sys.stdout
    path = Path(path)
    if not path.exists():
        print(f"{path}: no such folder. Give a site folder (holding site.yml and one file per table) or a "
              f"folder of site folders.", file=out)
        return 2
    if not path.is_dir():
        print(f"{path}: is a file, not a folder. Give a site folder (holding site.yml and one file per table) "
              f"or a folder of site folders.", file=out)
        return 2
    sites = find_sites(path)
    if not sites:
        print(f"{path}: no site folders found (a site folder holds site.yml and one file per table, e.g. "
              f"people.csv); nothing was validated.", file=out)
        return 2
    run_dir = Path(out_dir) if out_dir else new_run_dir(Path(out_root) if out_root else DEFAULT_OUT_ROOT)
    run_dir.mkdir(parents=True, exist_ok=True)
    dq_root = run_dir / "restricted" / "dq"
    summaries, codes = [], []
    for site in sites:
        previous = find_previous(run_dir, site.name)
        try:
            sv = validate_site(site, contracts_dir=contracts_dir, restricted_dir=dq_root / site.name,
                               previous=previous)
        except Exception as exc:  # a workbench bug, not bad input: still no traceback unless asked
            if os.environ.get("PCREF_DEBUG"):
                raise
            print(f"{site}: validation stopped by an internal error ({type(exc).__name__}: {exc}). "
                  f"Set PCREF_DEBUG=1 to see the traceback and report it.", file=out)
            codes.append(2)
            summaries.append({"site": site.name, "status": "error", "exit_code": 2, "checks": 0,
                              "failed_error": None, "failed_warning": None, "report": None})
            continue
        print_site(sv, out, all_checks=all_checks)
        codes.append(sv.exit_code)
        r = sv.results
        summaries.append({"site": sv.site_id, "status": sv.status, "exit_code": sv.exit_code, "checks": len(r),
                          "failed_error": int(((~r["success"]) & (r["severity"] == "error")).sum()),
                          "failed_warning": int(((~r["success"]) & (r["severity"] == "warning")).sum()),
                          "report": str(sv.report_html) if sv.report_html else None})
    dq_root.mkdir(parents=True, exist_ok=True)
    summary = pd.DataFrame(summaries)
    summary.to_csv(dq_root / "summary.csv", index=False, lineterminator="\n")
    code = max(codes) if codes else 2
    print(f"\nValidated {len(sites)} site(s): " + ", ".join(f"{s['site']} {s['status']}" for s in summaries)
          + f". Exit code {code}. Outputs (restricted): {dq_root}", file=out)
    return code


def print_site(sv: SiteValidation, out: TextIO, all_checks: bool = True) -> None:
    """A readable per-expectation table (failed checks only unless ``all_checks``), the problems as
    paragraphs, and a one-line summary."""
    print(f"\n=== {sv.site_id}  ({sv.site_dir})", file=out)
    r = sv.results
    shown = r if all_checks or not len(r) else r[~r["success"].astype(bool)]
    if len(r) and not all_checks:
        print(f"  {len(r) - len(shown)} of {len(r)} checks passed" + (" (not listed; --all lists every check)"
                                                                     if len(shown) < len(r) else ""), file=out)
    if len(shown):
        widths = {"table": max(5, r["table"].str.len().max()), "column": max(6, r["column"].fillna("").str.len().max())}
        head = (f"  {'table':<{widths['table']}}  {'column':<{widths['column']}}  {'check':<24}  {'severity':<8}  "
                f"{'result':<6}  {'unexpected':>10}  {'percent':>8}")
        print(head, file=out)
        for row in shown.itertuples():
            n = "" if pd.isna(row.unexpected_count) else f"{int(row.unexpected_count):,}"
            pct = "" if pd.isna(row.unexpected_percent) else f"{row.unexpected_percent:.2f}%"
            label = check_label(row.expectation)
            column = "(table)" if pd.isna(row.column) else str(row.column)
            print(f"  {row.table:<{widths['table']}}  {column:<{widths['column']}}  {label[:24]:<24}  "
                  f"{row.severity:<8}  {'pass' if row.success else 'FAIL':<6}  {n:>10}  {pct:>8}", file=out)
    if sv.read_errors or (sv.message and not sv.failures):
        print("\n" + sv.message, file=out)
    if sv.failures:
        print("\nProblems found:", file=out)
        for paragraph in sv.failures:
            print(f"- {paragraph}", file=out)
    failed_e = int(((~r["success"]) & (r["severity"] == "error")).sum()) if len(r) else 0
    failed_w = int(((~r["success"]) & (r["severity"] == "warning")).sum()) if len(r) else 0
    verdict = {"pass": "all checks passed; the site can be analysed",
               "warning": "analysed, with warnings flagged in its report",
               "error": "cannot be analysed"}[sv.status]
    print(f"\nSummary {sv.site_id}: {sv.status.upper()} (exit {sv.exit_code}): {len(r)} checks, {failed_e} failed at "
          f"error level, {failed_w} at warning level{'; ' + str(len(sv.read_errors)) + ' file(s) unreadable' if sv.read_errors else ''}"
          f"; {verdict}.", file=out)
    if sv.report_html:
        print(f"Report: {sv.report_html}", file=out)
