"""Which cross-site outputs a reviewer reads in the main report, and which go to an appendix or CSV only.

The main report is meant to be read (at most 30 A4 pages with the six-site demo). Of the cross-site
notebook's released outputs:

- each site's benchmark table against NHS England (``all_benchmark_<site>``), with the note on the
  trust's published total that follows it, goes to Appendix A under that site; in its place the main
  report shows one table across sites (:func:`benchmark_summary`), copied from those released tables;
- long reference tables are released as CSV only (:data:`CSV_ONLY`): every ICB's published figures
  (the funnel plot stays) and the quarter-by-quarter event-study estimates (the event-study figures
  and pre-trend tests stay). The main report names the CSV file where the table was.

Nothing is recomputed here: routing moves released outputs, and the summary copies released values.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Callable

import nbformat
import pandas as pd

from pcref_eval.disclosure import REDACTED
from pcref_eval.report.assemble import Section, html_output

#: Released cross-site tables shown in the main report only as a link to their CSV file.
CSV_ONLY = re.compile(r"^all_(benchmark_icb_.+|event_study_.+)$")
#: The note publish_site_benchmark writes right after a site's table (the trust's published total).
TRUST_NOTE = re.compile(r"^\s*Trust\s")
BENCHMARK_GROUP = "Black or Black British"


@dataclass
class Routed:
    """The main report's sections after routing, and what went where."""

    main: list[Section]
    by_site: dict[str, list] = field(default_factory=dict)   # site id -> Appendix A cells
    moved: list[str] = field(default_factory=list)           # table stems moved to Appendix A
    csv_only: list[str] = field(default_factory=list)        # table stems shown as a CSV link only


def _text(out) -> str:
    data = out.get("data") or {}
    value = data.get("text/markdown", data.get("text/html", ""))
    return "".join(value) if isinstance(value, list) else str(value)


def _meta(out) -> dict:
    return (out.get("metadata") or {}).get("pcref") or {}


def site_of_table(name: str, site_ids) -> str | None:
    """The site whose benchmark table ``name`` is (``all_benchmark_<site id>``), else None."""
    return next((s for s in site_ids if name == f"all_benchmark_{s}"), None)


def csv_only_html(meta: dict) -> str:
    """A one-line pointer to a table released as CSV only."""
    name = meta.get("name", "")
    return (f"<p class='csv-only muted small'>Released as CSV only (a long table): "
            f"<a href='tables/{escape(name, quote=True)}.csv'>tables/{escape(name)}.csv</a>, "
            f"{escape(meta.get('caption', '').rstrip('.'))}.</p>")


def route_sections(sections: list[Section], site_ids, summary: Callable[[], list] | None = None,
                   compact: dict[str, Callable[[dict], list]] | None = None) -> Routed:
    """Move per-site benchmark tables to Appendix A and long tables to CSV only.

    ``summary()`` returns the outputs shown where the first per-site table was (called once).
    ``compact``: {table stem: f(metadata) -> outputs} shown instead of that table (a shorter table copied
    from it); the full table is then released as CSV only.
    """
    compact = compact or {}
    routed = Routed([])
    summary_done = False
    for sec in sections:
        new = Section(sec.title, sec.level, sec.chapter)
        for cell in sec.cells:
            if cell.cell_type != "code":
                new.cells.append(cell)
                continue
            kept, carry = [], None
            for out in cell.outputs:
                meta = _meta(out)
                name = meta.get("name", "") if meta.get("kind") == "table" else ""
                site = site_of_table(name, site_ids) if name else None
                if site is not None:
                    routed.by_site.setdefault(site, []).append(_cell([out]))
                    routed.moved.append(name)
                    carry = site
                    if not summary_done and summary is not None:
                        kept += summary()
                        summary_done = True
                    continue
                if carry and meta.get("kind") == "note" and TRUST_NOTE.match(_text(out)):
                    routed.by_site[carry].append(_cell([out]))
                    carry = None
                    continue
                carry = None
                if name in compact:
                    kept += compact[name](meta)
                    routed.csv_only.append(name)
                    continue
                if name and CSV_ONLY.match(name):
                    kept.append(html_output(csv_only_html(meta), "csv-only"))
                    routed.csv_only.append(name)
                    continue
                kept.append(out)
            if kept:
                c = copy.copy(cell)
                c.outputs = kept
                new.cells.append(c)
        routed.main.append(new)
    return routed


def _cell(outputs: list):
    c = nbformat.v4.new_code_cell(source="")
    c.outputs = outputs
    return c


MEASURE_SHORT = {"All detentions": "detentions", "Uses of CTOs": "CTOs"}


def _number(text: str) -> str:
    """A released ratio as the report prints ratios (2 decimals below 10), from its CSV text."""
    from pcref_eval.report.summary import fmt_ratio
    try:
        return fmt_ratio(float(text))
    except ValueError:
        return text


def _ratio_text(row) -> str:
    """'1.97 (1.68 to 2.29)' from a released benchmark row; why not, where the site ratio is not released."""
    value, lo, up = row.get("site_ratio", ""), row.get("site_ratio_lower", ""), row.get("site_ratio_upper", "")
    if REDACTED in (value, row.get("site_count"), row.get("site_white_count")):
        return "not shown (too few people)"
    if not value:
        return "not available"
    if not lo or not up or REDACTED in (lo, up):
        return _number(value)
    return f"{_number(value)} ({_number(lo)} to {_number(up)})"


def benchmark_summary_table(release: Path, site_ids) -> pd.DataFrame | None:
    """One row per site: its Black/White ratio per measure (95% CI) beside its ICB's and England's published
    ratios, copied from the released per-site benchmark tables (no new estimate; printed to 2 decimals)."""
    rows, years = [], set()
    for sid in site_ids:
        path = release / "tables" / f"all_benchmark_{sid}.csv"
        if not path.exists():
            continue
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        row: dict = {"site": sid}
        years.update(df["period"])
        for _, r in df[df["group"] == BENCHMARK_GROUP].iterrows():
            m = MEASURE_SHORT.get(r["measure"], r["measure"].lower())
            row.update({"ICB": r["icb"], f"{m}: site ratio (95% CI)": _ratio_text(r),
                        f"{m}: ICB ratio (published)": _number(r.get("icb_ratio", "")) or "not published",
                        f"{m}: England ratio (published, standardised)":
                            _number(r.get("england_std_ratio", "")) or "not published"})
        rows.append(row)
    if not rows:
        return None
    table = pd.DataFrame(rows).fillna("not available")
    table = table[[c for c in table.columns if not (table[c] == "not published").all()]]
    table.attrs["years"] = sorted(years)  # the financial year(s) measured, for the caption
    return table


def change_rows(release: Path, stem: str, label: str = "quantity") -> pd.DataFrame | None:
    """The rows of a released table whose ``label`` says it is a ratio of periods ("Ratio of hazard ratios
    (after / before)"), without that label or the count columns: e.g. one row per sensitivity analysis."""
    from pcref_eval.report.summary import CHANGE_LABEL
    path = release / "tables" / f"{stem}.csv"
    if not path.exists():
        return None
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    if label not in df.columns:
        return None
    rows = df[df[label].map(lambda v: bool(CHANGE_LABEL.search(v)))]
    keep = [c for c in df.columns if c == "analysis" or c in ("estimate", "lower", "upper", "pi_lower", "pi_upper",
                                                                 "tau2")]
    if rows.empty or "estimate" not in keep:
        return None
    out = rows[keep].reset_index(drop=True)
    return out[[c for c in out.columns if (out[c] != "").any()]]
