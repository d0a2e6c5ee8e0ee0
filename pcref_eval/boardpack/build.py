"""Board packs: ``release/board/<site>.html|pdf`` (at most 4 A4 pages) and ``release/board/cross-site-summary.*``.

For a Trust Board member, not a statistician: a plain-words summary written from the released
numbers (uncertainty stated), one grid of the PCREF core measures (focus group and reference group
values, their ratio with its 95% interval, the change in the ratio at go-live, and the Making Data
Count variation and assurance icons drawn as SVG), small SPC charts of the headline measures, and
what changed since the previous run. The cross-site summary (one landscape page, for the PCREF
programme lead) shows sites x measures with the same icons and the pooled answer to "has the
detention gap narrowed?". Everything is read from ``release/`` (see :mod:`pcref_eval.boardpack.data`);
the HTML is self-contained (inline CSS and SVG, PNG charts as data URIs) and renders offline.
"""

from __future__ import annotations

import base64
import io
import re
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from pcref_eval.boardpack import data as D
from pcref_eval.boardpack.icons import ASSURANCE, VARIATION, assurance_svg, icon_label, variation_svg

__all__ = ["BoardPackResult", "build_board_packs", "site_pack_html", "cross_site_html", "pdf_page_count",
           "MAX_SITE_PAGES", "FIT_STEPS", "sites_grid_html",
           "write_cross_site_on_one_page"]

MAX_SITE_PAGES = 4
#: Print steps for the cross-site summary: the default layout fits 6 sites x 13 measures on one A4 landscape page;
#: with more sites or measures it is printed again with smaller type until it fits (or the last step is reached).
FIT_STEPS = ("", "tight", "tighter")
#: Sites in one table of the sites x measures grid: more would not fit an A4 landscape page.
SITES_PER_GRID = 6
BOARD_DIR = "board"
CROSS_SITE_STEM = "cross-site-summary"

CSS = """
@page { size: A4; margin: 11mm 11mm 12mm 11mm; }
* { box-sizing: border-box; }
body { font-family: Arial, Helvetica, sans-serif; color: #231f20; font-size: 9.5pt; line-height: 1.35; margin: 0; }
main { max-width: 190mm; margin: 0 auto; padding: 4mm; }
body.wide main { max-width: 277mm; padding: 0; }
h1 { font-size: 17pt; color: #005EB8; margin: 0 0 1mm 0; }
h2 { font-size: 12pt; color: #005EB8; margin: 4mm 0 1.5mm 0; border-bottom: 1px solid #AEB7BD; }
p { margin: 1mm 0 1.6mm 0; }
.kicker { text-transform: uppercase; font-size: 8pt; letter-spacing: .05em; color: #425563; margin: 0; }
.meta { color: #425563; font-size: 8.5pt; }
.synthetic { background: #FFF4CC; border-left: 4px solid #FFB81C; padding: 1mm 3mm; font-size: 8.5pt; }
.answer { background: #E8EDEE; border-left: 5px solid #005EB8; padding: 2mm 3mm; font-size: 10.5pt; }
table.grid { width: 100%; border-collapse: collapse; font-size: 8pt; line-height: 1.2; }
table.grid th { text-align: left; vertical-align: bottom; border-bottom: 1.5px solid #425563; padding: 1mm;
  font-size: 7.8pt; color: #425563; }
table.grid td { border-bottom: 1px solid #D8DDE0; padding: 0.3mm 1mm; vertical-align: middle; }
table.grid td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
table.grid td.icon { text-align: center; width: 11mm; }
table.grid tr { break-inside: avoid; }
table.grid td.m { font-weight: bold; }
.unit { display: block; font-weight: normal; color: #768692; font-size: 7pt; }
.better { color: #007F3B; font-weight: bold; } .worse { color: #B5430A; font-weight: bold; }
.unclear, .muted { color: #5c6b77; }
.charts { display: flex; flex-wrap: wrap; gap: 2mm; }
.charts figure { width: 88mm; margin: 0; break-inside: avoid; }
.charts img { width: 88mm; height: auto; }
.charts figcaption { font-size: 7.5pt; color: #425563; }
.key { display: flex; flex-wrap: wrap; gap: 1mm 4mm; font-size: 7.8pt; color: #425563; }
.key span { display: inline-flex; align-items: center; gap: 1mm; }
.mdc-icon { vertical-align: middle; }
.page { break-after: page; }
.page:last-child { break-after: auto; }
ul.changes { margin: 1mm 0; padding-left: 5mm; }
table.sites td.cell { text-align: center; white-space: nowrap; }
table.sites .r { font-variant-numeric: tabular-nums; margin-right: 1mm; }
table.sites .unit { display: inline; margin-left: 1mm; }
footer { font-size: 7pt; color: #768692; margin-top: 3mm; }
body.wide { font-size: 8.5pt; }
body.wide h1 { font-size: 15pt; }
body.wide h2 { margin-top: 2mm; }
body.wide .answer { font-size: 9.5pt; padding: 1.5mm 3mm; margin-bottom: 2mm; }
body.wide .synthetic { padding: 0 2mm; }
table.sites { table-layout: fixed; }
table.sites th:first-child, table.sites td.m { width: 60mm; }
table.sites th { font-size: 7.5pt; padding: 0.6mm 1mm; }
table.sites td { padding: 0.3mm 1mm; }
table.sites td.m { font-size: 7.8pt; }
table.sites th .unit { display: block; margin-left: 0; }
table.sites .mdc-icon { margin-left: 0.5mm; }
table.sites tr.gap td { border-top: 1.5px solid #425563; }
body.wide .key { font-size: 7.3pt; margin-top: 1.5mm; gap: 0.5mm 3mm; }
body.wide .key span { white-space: nowrap; }
body.wide footer { margin-top: 1.5mm; }
body.tight { font-size: 7.8pt; }
body.tight table.sites td.m, body.tight table.sites td.cell { font-size: 7pt; }
body.tight table.sites td { padding: 0.2mm 0.8mm; }
body.tighter { font-size: 7pt; }
body.tighter table.sites td.m, body.tighter table.sites td.cell, body.tighter table.sites th { font-size: 6.2pt; }
body.tighter table.sites td { padding: 0 0.6mm; }
"""


@dataclass
class BoardPackResult:
    """Paths written by :func:`build_board_packs` and the page count of each PDF."""

    sites: dict[str, dict[str, Path]]
    cross_site: dict[str, Path]
    pages: dict[str, int]


# ------------------------------------------------------------------------------------- charts


def _series_chart(df: pd.DataFrame, row: D.BoardRow, reference: str, focus: str) -> str | None:
    """A small XmR chart (PNG data URI) of a released SPC series; None with fewer than 10 released points."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pcref_eval.measures.board import MIN_SPC_POINTS
    from pcref_eval.spc import xmr
    from pcref_eval.spc_chart import xmr_chart
    from pcref_eval.style import apply_style

    stat = "vs_reference" if "vs_reference" in df else "value"
    d = df.assign(period=pd.to_datetime(df["period"]))
    d = d[np.isfinite(pd.to_numeric(d[stat], errors="coerce"))]
    if len(d) < MIN_SPC_POINTS:
        return None
    target = None if stat == "value" else (0.0 if row.comparison == "difference" else 1.0)
    res = xmr(d[stat].astype(float).to_numpy(), d["period"], improvement=row.improvement, target=target)
    apply_style()  # before the axes exist: xmr_chart applies it too, but too late for axes it is given
    fig, ax = plt.subplots(figsize=(4.6, 2.3))
    ylabel = "Ratio" if row.comparison == "ratio" else ("Difference" if row.comparison == "difference" else "Value")
    xmr_chart(res, title="", ylabel=ylabel, ax=ax, show_icons=False, show_legend=False)
    if target is not None:
        ax.axhline(target, color="#C00000", lw=1, ls="-.")
    ax.set_title("")
    ax.tick_params(labelsize=7)
    ax.yaxis.label.set_size(8)
    fig.tight_layout(pad=0.4)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# --------------------------------------------------------------------------------------- HTML


def _page(title: str, body: str, wide: bool = False, fit: str = "") -> str:
    css = CSS + ("@page { size: A4 landscape; margin: 9mm; }" if wide else "")
    classes = " ".join(c for c in ("wide" if wide else "", fit) if c)
    return (f"<!DOCTYPE html><html lang='en-GB'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{css}</style></head><body class='{classes}'><main>{body}</main></body></html>")


def _interval_cell(iv: D.Interval, comparison: str) -> str:
    if not iv.available:
        return "<td class='num muted'>not shown</td>"
    null = 0.0 if comparison == "difference" else 1.0
    v = D.interval_verdict(iv, null)
    cls = {"higher": "worse", "lower": "worse", "unclear": "unclear"}[v] if comparison else "muted"
    label = "<span class='unit'>difference, not a ratio (0 = none)</span>" if comparison == "difference" else ""
    return (f"<td class='num'><span class='{cls}'>{D.fmt_num(iv.estimate)}</span> "
            f"<span class='muted'>({D.fmt_num(iv.lower)} to {D.fmt_num(iv.upper)})</span>{label}</td>")


def _value(x: float, unit: str) -> str:
    if not np.isfinite(x):
        return "–"
    return f"{D.fmt_num(x)}{'%' if unit == '%' else ''}"


def key_html(size: int = 18) -> str:
    """The icon key: every variation and assurance icon with its plain-words meaning."""
    items = [f"<span>{variation_svg(k, size)} {escape(v[2])}</span>" for k, v in VARIATION.items()
             if not k.startswith("special_cause_neutral")]
    items += [f"<span>{assurance_svg(k, size)} {escape(v[2])}</span>" for k, v in ASSURANCE.items()]
    return f"<div class='key'>{''.join(items)}</div>"


def grid_html(board: D.SiteBoard, icon_size: int = 26) -> str:
    """The core-measures grid of one site."""
    head = (f"<tr><th>Core measure</th><th>{escape(board.focus)}</th><th>{escape(board.reference)}</th>"
            f"<th>Ratio (95% CI)<br><span class='unit'>1 = no difference</span></th>"
            "<th>Change in the ratio at go-live</th><th>Variation</th><th>Assurance</th></tr>")
    rows = []
    for r in board.rows:
        words, cls = D.change_words(r) if r.comparison == "ratio" else ("", "muted")
        focus_label = "" if r.comparison else "<span class='unit'>whole site</span>"
        rows.append(
            f"<tr><td class='m'>{escape(r.measure)}<span class='unit'>{escape(r.unit)}</span></td>"
            f"<td class='num'>{_value(r.focus_value, r.unit)}{focus_label}</td>"
            f"<td class='num'>{_value(r.reference_value, r.unit)}</td>"
            + (_interval_cell(r.gap, r.comparison) if r.comparison else "<td class='num muted'>–</td>")
            + f"<td><span class='{cls}'>{escape(words)}</span></td>"
            f"<td class='icon'>{variation_svg(r.variation, icon_size) or '<span class=muted>no chart</span>'}</td>"
            f"<td class='icon'>{assurance_svg(r.assurance, icon_size)}</td></tr>")
    return f"<table class='grid'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def site_pack_html(board: D.SiteBoard, run_id: str, synthetic: bool, policy_text: str) -> str:
    """The board pack of one site (HTML; pages are broken for print)."""
    go = f"{board.go_live:%d %B %Y}" if hasattr(board.go_live, "strftime") else "not recorded"
    banner = ("<p class='synthetic'>Synthetic data: these numbers illustrate the method and describe no real "
              "people.</p>" if synthetic else "")
    words = "".join(f"<li>{escape(p[2:])}</li>" if p.startswith("- ") else f"<p>{escape(p)}</p>"
                    for p in D.plain_summary(board)).replace("</p><li>", "</p><ul class='changes'><li>")
    words = re.sub(r"</li><p>", "</li></ul><p>", words)
    page1 = (f"<section><p class='kicker'>Patient and Carer Race Equality Framework · board pack</p>"
             f"<h1>{escape(board.name or board.site_id)}</h1>"
             f"<p class='meta'>Site {escape(board.site_id)} · PCREF go-live {escape(go)} · latest 12 months "
             f"{escape(board.window)} · run {escape(run_id)}</p>{banner}"
             f"<h2>In plain words</h2>{words}"
             f"<h2>PCREF core measures</h2>"
             f"<p class='meta'>{escape(board.focus)} (Black African, Black Caribbean, Black Mixed and Black Other "
             f"people) compared with {escape(board.reference)} people. Ratios above 1: the measure is higher for "
             f"the focus group. Whole-site measures (ethnicity recording) have no ratio.</p>"
             f"{grid_html(board)}</section>")
    charts = []
    for mid in D.HEADLINE_MEASURES:
        row, series = board.row(mid), board.series.get(mid)
        if row is None or series is None:
            continue
        uri = _series_chart(series, row, board.reference, board.focus)
        if uri is None:
            continue
        what = "ratio" if row.comparison == "ratio" else "value"
        charts.append(f"<figure><figcaption><strong>{escape(row.measure)}</strong>: {escape(board.focus)} / "
                      f"{escape(board.reference)} {what} by {('month' if 'monthly' in row.spc_series else 'quarter')}"
                      f" {variation_svg(row.variation, 18)} {assurance_svg(row.assurance, 18)}</figcaption>"
                      f"<img src='{uri}' alt='SPC chart of {escape(row.measure, quote=True)}'></figure>")
    changes = "".join(f"<li>{escape(c)}</li>" for c in board.changes)
    page2 = (f"<section><h2>Monthly charts of the headline measures</h2>"
             "<p class='meta'>Making Data Count charts: the line is the mean, dashed lines are the process limits "
             "(where nearly all points fall if nothing changes), the red dash-dot line is parity (no gap). Coloured "
             "points are changes unlikely to be chance: blue improvement, orange concern.</p>"
             f"<div class='charts'>{''.join(charts) or '<p>No chart had enough released points.</p>'}</div>"
             f"<h2>What changed since the last run</h2><ul class='changes'>{changes}</ul>"
             "<h2>How to read the icons</h2>"
             "<p class='meta'>Variation: has anything changed beyond normal month-to-month ups and downs? "
             "Assurance: will the gap reliably close to parity (ratio 1) if nothing changes?</p>"
             f"{key_html()}"
             "<h2>About these numbers</h2>"
             f"<p class='meta'>All numbers come from disclosure-controlled tables ({escape(policy_text)}); rates and "
             "ratios are computed from the released counts. The change at go-live is an interrupted time series of "
             "monthly counts; it assumes nothing else changed at go-live. The full tables are in the release "
             "folder's tables/ directory and the site appendix of the main report.</p>"
             f"<footer>PCREF board pack · {escape(board.site_id)} · run {escape(run_id)}</footer></section>")
    return _page(f"PCREF board pack: {board.name or board.site_id}", page1 + page2)


def _cross_site_unit(comparison: str, unit: str) -> str:
    """What a cross-site cell's number is, where the measure's name does not say: ratios need no unit."""
    if comparison == "ratio":
        return ""
    what = "difference, focus minus reference" if comparison == "difference" else f"whole site, {unit}"
    return f"<span class='unit'>{escape(what)}</span>"


def sites_grid_html(x: D.CrossSiteBoard, icon_size: int = 15, per_table: int = SITES_PER_GRID) -> str:
    """Sites x core measures: ratio (95% CI) and the variation and assurance icons; then the detention gap change.

    One table for every ``per_table`` sites (in order), so that each fits the page's width however many sites
    the run has; the icon key once, after the last.
    """
    sites = x.sites
    measures = list(dict.fromkeys(r.measure for b in sites for r in b.rows))
    tables = [_sites_grid_table(x, sites[i:i + per_table], measures, icon_size)
              for i in range(0, len(sites), per_table)]
    return "".join(tables) + key_html(13)


def _sites_grid_table(x: D.CrossSiteBoard, sites: list, measures: list[str], icon_size: int) -> str:
    """One table of :func:`sites_grid_html` for ``sites``."""
    head = "<tr><th>Core measure</th>" + "".join(
        f"<th>{escape(b.name or b.site_id)}<span class='unit'>{escape(b.site_id)}"
        + (f", go-live {b.go_live:%b %Y}" if hasattr(b.go_live, "strftime") else "") + "</span></th>"
        for b in sites) + "</tr>"
    body = []
    for m in measures:
        cells = []
        unit = kind = ""
        for b in sites:
            r = next((r for r in b.rows if r.measure == m), None)
            if r is None:
                cells.append("<td class='cell muted'>–</td>")
                continue
            unit, kind = r.unit, r.comparison
            if r.comparison:
                iv = r.gap
                null = 0.0 if r.comparison == "difference" else 1.0
                cls = "unclear" if D.interval_verdict(iv, null) == "unclear" else "worse"
                num = (f"<span class='r'><span class='{cls}'>{D.fmt_num(iv.estimate)}</span> "
                       f"<span class='muted'>({D.fmt_num(iv.lower)}–{D.fmt_num(iv.upper)})</span></span>"
                       if iv.available else "<span class='r muted'>not shown</span>")
            else:
                num = f"<span class='r'>{_value(r.focus_value, r.unit)}</span>"
            cells.append(f"<td class='cell'>{num}{variation_svg(r.variation, icon_size)}"
                         f"{assurance_svg(r.assurance, icon_size)}</td>")
        body.append(f"<tr><td class='m'>{escape(m)}{_cross_site_unit(kind, unit)}</td>{''.join(cells)}</tr>")
    gap_cells = "".join(
        f"<td class='cell'><span class='r'>{D.fmt_num(iv.estimate)} ({D.fmt_num(iv.lower)}–{D.fmt_num(iv.upper)})</span></td>"
        if (iv := x.per_site.get(b.site_id)) is not None and iv.available else "<td class='cell muted'>–</td>"
        for b in sites)
    body.append(f"<tr class='gap'><td class='m'>Detention gap after / before go-live<span class='unit'>ratio of "
                f"hazard ratios; below 1 = narrowed</span></td>{gap_cells}</tr>")
    return f"<table class='grid sites'><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


def cross_site_html(x: D.CrossSiteBoard, run_id: str, synthetic: bool, fit: str = "") -> str:
    """The one-page cross-site summary for the PCREF programme lead (landscape); ``fit``: one of :data:`FIT_STEPS`."""
    sites = x.sites
    banner = "<span class='synthetic'>Synthetic data: illustrative numbers only.</span>" if synthetic else ""
    window = sites[0].window if sites else ""
    page = (f"<p class='kicker'>Patient and Carer Race Equality Framework · cross-site summary</p>"
            f"<h1>PCREF across {len(sites)} site{'s' if len(sites) != 1 else ''}</h1>"
            f"<p class='meta'>Run {escape(run_id)} · latest 12 months {escape(window)} · each cell: "
            f"{escape(sites[0].focus if sites else '')} / {escape(sites[0].reference if sites else '')} ratio (95% CI; "
            "1 = no difference), then the Making Data Count variation and assurance icons of its chart."
            f"{' ' + banner if banner else ''}</p>"
            f"<h2>Has the gap narrowed?</h2><p class='answer'>{escape(D.pooled_answer(x))}</p>"
            f"{sites_grid_html(x)}"
            "<footer>Ratios above 1: higher for the focus group; bold: the 95% CI excludes no difference. Numbers "
            "from disclosure-controlled tables only; methods in the main report.</footer>")
    return _page("PCREF cross-site summary", page, wide=True, fit=fit)


# ---------------------------------------------------------------------------------------- PDF


def pdf_page_count(pdf: Path) -> int:
    """Pages in a PDF (the page tree's /Count, read without a PDF library)."""
    data = pdf.read_bytes()
    counts = [int(m) for m in re.findall(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)", data)]
    counts += [int(m) for m in re.findall(rb"/Count\s+(\d+)[^>]*?/Type\s*/Pages\b", data)]
    if counts:
        return max(counts)
    return len(re.findall(rb"/Type\s*/Page\b(?!s)", data))


def write_pdf(html_path: Path, engine: str) -> tuple[Path, int]:
    """``html_path`` printed to PDF beside it with the report's PDF engine; (path, number of pages)."""
    from pcref_eval.report import render as R
    out = html_path.with_suffix(".pdf")
    if engine == "chromium":
        R.write_pdf_chromium(html_path, out)
        return out, pdf_page_count(out)
    import logging

    import weasyprint
    for name in ("weasyprint", "fontTools"):
        logging.getLogger(name).setLevel(logging.ERROR)
    doc = weasyprint.HTML(string=html_path.read_text(encoding="utf-8"), url_fetcher=R._offline_fetcher(),
                          base_url=str(out.parent)).render()
    doc.write_pdf(str(out))
    return out, len(doc.pages)


# ------------------------------------------------------------------------------------- build


def build_board_packs(release: Path, sites: list[dict], reference: str, run_id: str, *, synthetic: bool = False,
                      policy_text: str = "", formats=("html", "pdf"), pdf_engine: str = "weasyprint",
                      previous_run: Path | None = None, printer: Executor | None = None) -> BoardPackResult:
    """Write every analysed site's board pack and the cross-site summary into ``release/board/``.

    ``sites``: dicts with ``id``, ``name``, ``go_live`` (as the report's context holds them).
    ``previous_run``: the previous run's folder (from the run registry) for "what changed".
    ``printer``: an executor that prints the PDFs (Chromium runs as its own process, so a thread pool
    prints while this process goes on); the PDFs are all written when this returns either way.
    """
    if printer is None:
        with ThreadPoolExecutor(max_workers=1) as own:
            return build_board_packs(release, sites, reference, run_id, synthetic=synthetic, policy_text=policy_text,
                                     formats=formats, pdf_engine=pdf_engine, previous_run=previous_run, printer=own)
    out_dir = release / BOARD_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    boards = []
    result = BoardPackResult({}, {}, {})
    for s in sites:
        board = D.load_site_board(release, s["id"], s.get("name", ""), s.get("go_live"), reference)
        if board is None:
            continue
        board.changes = D.previous_changes(board, previous_run)
        boards.append(board)
        html_path = out_dir / f"{s['id']}.html"
        html_path.write_text(site_pack_html(board, run_id, synthetic, policy_text), encoding="utf-8")
        result.sites[s["id"]] = {"html": html_path}
    printing = {}
    if "pdf" in formats:
        printing = {key: printer.submit(write_pdf, paths["html"], pdf_engine) for key, paths in result.sites.items()}
    if boards:
        cross = D.load_cross_site(release, boards)
        html_path = out_dir / f"{CROSS_SITE_STEM}.html"
        result.cross_site["html"] = html_path
        if "pdf" in formats:
            printing[CROSS_SITE_STEM] = printer.submit(write_cross_site_on_one_page, cross, html_path, run_id,
                                                       synthetic, pdf_engine)
        else:
            html_path.write_text(cross_site_html(cross, run_id, synthetic), encoding="utf-8")
    for key, job in printing.items():
        pdf, result.pages[key] = job.result()
        (result.cross_site if key == CROSS_SITE_STEM else result.sites[key])["pdf"] = pdf
    return result


def write_cross_site_on_one_page(cross: D.CrossSiteBoard, html_path: Path, run_id: str, synthetic: bool,
                                 engine: str) -> tuple[Path, int]:
    """Write the cross-site summary's HTML and PDF, printing again in smaller type (:data:`FIT_STEPS`) while the
    PDF runs over one page; (PDF path, pages). The HTML written is the one printed."""
    for fit in FIT_STEPS:
        html_path.write_text(cross_site_html(cross, run_id, synthetic, fit), encoding="utf-8")
        pdf, pages = write_pdf(html_path, engine)
        if pages <= 1:
            break
    return pdf, pages
