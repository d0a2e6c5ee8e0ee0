"""The per-site data-quality report: one self-contained HTML page, readable offline.

great-expectations Data Docs load CSS and JavaScript from a CDN and render unstyled without
internet (secure environments have none), so the workbench renders its own page: inline CSS, an
inline SVG chart, no JavaScript, no external URL. It holds counts and example data-row numbers, never
identifiers, but the counts are not disclosure-controlled, so it lives in the restricted part of
a run.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone

import pandas as pd

from pcref_eval.contracts.suite import WORKBENCH_TYPES

COLOURS = {"people": "#0072B2", "patient_experience": "#D55E00"}  # Okabe-Ito blue, vermillion
THRESHOLD = 0.90

_CSS = """
body{font-family:"DejaVu Sans",Arial,sans-serif;margin:2em auto;max-width:1100px;color:#1d1d1d;line-height:1.4;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:2px solid #005EB8;padding-bottom:.2em}
table{border-collapse:collapse;width:100%;font-size:.86em;margin:.6em 0}
th,td{border:1px solid #d8dde0;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f0f4f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:.15em .6em;border-radius:.3em;font-weight:bold;color:#fff}
.pass{background:#007F3B}.warning{background:#B35C00}.error{background:#D5281B}
tr.fail-error td{background:#fde8e6}tr.fail-warning td{background:#fff3e0}
.muted{color:#5a6470;font-size:.9em}.box{border-left:4px solid #D5281B;background:#fdf1f0;padding:.6em 1em;margin:1em 0}
.note{border-left:4px solid #005EB8;background:#eef5fb;padding:.6em 1em;margin:1em 0}
details summary{cursor:pointer;color:#005EB8;margin:.5em 0}
code{font-size:.95em;background:#f3f3f3;padding:0 .2em}
"""


#: Plain-language names of data checks, for reports read by people who do not know great-expectations.
PLAIN_CHECKS: dict[str, str] = {
    "expect_column_values_to_be_recorded": "ethnicity recorded (not 'not stated', 'not known' or blank)",
    "expect_column_to_exist": "column present",
    "expect_column_values_to_not_be_null": "value filled in",
    "expect_column_values_to_not_be_after_extract_date": "date not after the extract date",
    "expect_column_values_to_be_in_set": "valid code",
    "expect_column_values_to_not_be_in_set": "no invalid code",
    "expect_column_values_to_match_strftime_format": "date in the expected format",
    "expect_column_values_to_exist_in_table": "links to a record in the related table",
    "expect_column_values_to_not_be_before_birth": "date not before the person's birth",
    "expect_column_values_to_not_be_after_death": "date not after the person's death",
    "expect_column_values_to_match_regex": "value in the expected format",
    "expect_column_values_to_not_match_regex": "no malformed value",
    "expect_column_values_to_be_unique": "no duplicate identifiers",
    "expect_compound_columns_to_be_unique": "no duplicate records",
    "expect_column_pair_values_a_to_be_greater_than_b": "end date not before start date",
    "expect_end_after_start": "end date not before start date",
    "expect_table_row_count_to_be_between": "number of rows within the expected range",
    "expect_column_values_to_be_between": "value within the expected range",
}


def plain_check_name(check: str) -> str:
    """A data check in plain words: 'expect_column_values_to_be_in_set' -> 'valid code' (unknown ones reworded)."""
    key = str(check or "").strip()
    if key in PLAIN_CHECKS:
        return PLAIN_CHECKS[key]
    words = key.removeprefix("expect_").replace("column_values_to_", "values ").replace("_", " ").strip()
    return words or key


def plain_check_text(text: str) -> str:
    """Every great-expectations check name in ``text`` replaced by its plain-language name."""
    import re
    return re.sub(r"\bexpect_[a-z_]+", lambda m: plain_check_name(m.group(0)), str(text or ""))


def compare_runs(previous: dict, current: dict) -> pd.DataFrame:
    """What changed between two validation records of one site (``validation.json`` dicts)."""
    rows = []

    def add(item, before, after, change=""):
        rows.append({"item": item, "previous": before, "current": after, "change": change})

    if previous.get("status") != current.get("status"):
        add("status", previous.get("status"), current.get("status"), "changed")
    pv, cv = previous.get("suite_versions") or {}, current.get("suite_versions") or {}
    for table in sorted(set(pv) | set(cv)):
        if pv.get(table) != cv.get(table):
            add(f"contract version: {table}", pv.get(table), cv.get(table), "changed")
    pr, cr = previous.get("row_counts") or {}, current.get("row_counts") or {}
    for table in sorted(set(pr) | set(cr)):
        a, b = pr.get(table), cr.get(table)
        if a != b:
            add(f"rows: {table}", a, b, f"{b - a:+d}" if a is not None and b is not None else "changed")
    pc = {r["table"]: r for r in previous.get("completeness_by_table") or []}
    cc = {r["table"]: r for r in current.get("completeness_by_table") or []}
    for table in sorted(set(pc) | set(cc)):
        a, b = (pc.get(table) or {}).get("share"), (cc.get(table) or {}).get("share")
        if a is None or b is None or abs(a - b) >= 0.0005:
            add(f"ethnicity stated: {table}", _pct(a), _pct(b),
                f"{100 * (b - a):+.1f} points" if a is not None and b is not None else "changed")
    pres = {r["key"]: r for r in previous.get("results") or []}
    cres = {r["key"]: r for r in current.get("results") or []}
    for key in cres:
        if key not in pres:
            add(f"check added: {key}", None, _result_text(cres[key]), "new check")
    for key in pres:
        if key not in cres:
            add(f"check removed: {key}", _result_text(pres[key]), None, "removed")
    for key in cres:
        if key in pres:
            a, b = pres[key], cres[key]
            if a.get("success") != b.get("success"):
                add(f"check: {key}", _result_text(a), _result_text(b),
                    "now passing" if b.get("success") else "now failing")
            elif a.get("unexpected_count") != b.get("unexpected_count"):
                add(f"check: {key}", _result_text(a), _result_text(b), "count changed")
    return pd.DataFrame(rows, columns=["item", "previous", "current", "change"])


def _pct(x) -> str | None:
    return None if x is None else f"{100 * x:.1f}%"


def _result_text(r: dict) -> str:
    ok = "pass" if r.get("success") else "FAIL"
    n = r.get("unexpected_count")
    return ok if n is None else f"{ok} ({n} unexpected)"


# --------------------------------------------------------------------------------------------
def render_report(sv, previous: dict | None = None) -> str:
    """The DQ report of one SiteValidation as a self-contained HTML page (inline CSS and SVG)."""
    e = html.escape
    results = sv.results
    n_fail_err = int(((~results["success"]) & (results["severity"] == "error")).sum()) if len(results) else 0
    n_fail_warn = int(((~results["success"]) & (results["severity"] == "warning")).sum()) if len(results) else 0
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Data quality: {e(sv.site_id)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Data-quality report: {e(sv.site_id)} <span class='badge {e(sv.status)}'>{e(sv.status.upper())}</span></h1>",
        f"<p class='muted'>Generated {now} by pcref-eval from {e(str(sv.site_dir or ''))}. "
        f"Contracts: {e(', '.join(f'{t} {v}' for t, v in sorted(sv.suite_versions.items())))}.</p>",
        "<p class='note'>Restricted output: counts are not disclosure-controlled. No identifiers appear here "
        "(problems cite example data-row numbers of the extract files); the ids of sample failing rows are in "
        "<code>failing_rows.csv</code> beside this file.</p>",
    ]
    summary = (f"{len(results)} checks: {int(results['success'].sum()) if len(results) else 0} passed, "
               f"{n_fail_err} failed at error level, {n_fail_warn} failed at warning level.")
    out.append(f"<p><strong>{e(summary)}</strong> "
               + {"pass": "The site can be analysed.",
                  "warning": "The site is analysed; the warnings below are flagged in its report.",
                  "error": "The site cannot be analysed until the errors are fixed."}[sv.status] + "</p>")
    if sv.message:
        out.append(f"<div class='box'>{e(sv.message)}</div>")
    if sv.read_errors:
        out.append("<h2>Files that could not be read</h2><table><tr><th>table</th><th>problem</th></tr>")
        for err in sv.read_errors:
            out.append(f"<tr><td>{e(str(err.get('table')))}</td><td>{e(err['message'])}</td></tr>")
        out.append("</table>")

    out.append("<h2>Checks by table</h2>")
    out.append(_table_summary(results, sv.row_counts))
    out.append("<h2>Failed checks</h2>")
    failed = results[~results["success"]] if len(results) else results
    if len(failed):
        out.append("<p class='muted'>Percentages are of the non-empty values checked (as great-expectations "
                   "reports them); for completeness checks, of all rows or people.</p>")
        out.append(_results_table(failed))
    else:
        out.append("<p>None: every check passed.</p>" if len(results) else "<p>No checks were run.</p>")
    passed = results[results["success"]] if len(results) else results
    if len(passed):
        out.append(f"<details><summary>Passed checks ({len(passed)})</summary>")
        out.append(_results_table(passed))
        out.append("</details>")

    out.append("<h2>Ethnicity recording completeness</h2>")
    out.append("<p class='muted'>Share of people (by the month of their first referral) and of patient "
               "experience responses (by response month) with a stated ethnic category (A-S; not Z, 99 or "
               f"empty). PCREF data-domain measure. Dashed line: the {THRESHOLD:.0%} contract threshold.</p>")
    out.append(completeness_svg(sv.completeness))
    out.append(_frame_table(sv.completeness_by_table, pct_cols=("share",)))
    if len(sv.completeness):
        out.append("<details><summary>Completeness by month (table)</summary>")
        wide = sv.completeness.pivot_table(index="month", columns="table", values=["recorded", "total", "share"])
        flat = pd.DataFrame({"month": wide.index})
        for table in sorted(sv.completeness["table"].unique()):
            flat[f"{table} stated"] = wide[("recorded", table)].to_numpy()
            flat[f"{table} total"] = wide[("total", table)].to_numpy()
            flat[f"{table} share"] = wide[("share", table)].to_numpy()
        out.append(_frame_table(flat, pct_cols=tuple(c for c in flat.columns if c.endswith("share"))))
        out.append("</details>")

    out.append("<h2>Changes since the previous run</h2>")
    if previous is None:
        out.append("<p>No previous run of this site was found: nothing to compare.</p>")
    else:
        out.append(f"<p class='muted'>Previous run: {e(str(previous.get('validated_at')))} "
                   f"(status {e(str(previous.get('status')))}).</p>")
        if sv.changes is None or sv.changes.empty:
            out.append("<p>No change: same contracts, row counts, completeness and check results.</p>")
        else:
            out.append(_frame_table(sv.changes))
    out.append("<h2>About these checks</h2><p class='muted'>Each check is an expectation of a versioned suite in "
               "<code>data_contracts/</code> (one per table). Severity <em>error</em>: the site cannot be "
               "analysed; <em>warning</em>: analysed and flagged. Workbench cross-table types: "
               + e(", ".join(WORKBENCH_TYPES)) + ".</p>")
    out.append("</body></html>")
    return "\n".join(out)


def _table_summary(results: pd.DataFrame, row_counts: dict) -> str:
    if results.empty:
        return "<p>No checks were run.</p>"
    e = html.escape
    out = ["<table><tr><th>table</th><th>rows</th><th>checks</th><th>passed</th><th>failed (error)</th>"
           "<th>failed (warning)</th><th>result</th></tr>"]
    for table, g in results.groupby("table", sort=True):
        fe = int(((~g["success"]) & (g["severity"] == "error")).sum())
        fw = int(((~g["success"]) & (g["severity"] == "warning")).sum())
        verdict = "error" if fe else "warning" if fw else "pass"
        rows = row_counts.get(table)
        out.append(f"<tr><td>{e(table)}</td><td class='num'>{'' if rows is None else f'{rows:,}'}</td>"
                   f"<td class='num'>{len(g)}</td><td class='num'>{int(g['success'].sum())}</td>"
                   f"<td class='num'>{fe}</td><td class='num'>{fw}</td>"
                   f"<td><span class='badge {verdict}'>{verdict}</span></td></tr>")
    out.append("</table>")
    return "\n".join(out)


def _results_table(results: pd.DataFrame) -> str:
    from pcref_eval.contracts.validate import check_label

    e = html.escape
    if results.empty:
        return "<p>No checks were run.</p>"
    order = results.assign(_o=results["success"].astype(int) * 2 + (results["severity"] == "warning").astype(int))
    order = order.sort_values(["_o", "table", "column"], kind="stable")
    rows = ["<table><tr><th>table</th><th>column</th><th>check</th><th>severity</th><th>result</th>"
            "<th>unexpected</th><th>%</th><th>rows checked</th></tr>"]
    for r in order.itertuples():
        cls = "" if r.success else f" class='fail-{r.severity}'"
        n = "" if pd.isna(r.unexpected_count) else f"{int(r.unexpected_count):,}"
        pct = "" if pd.isna(r.unexpected_percent) else f"{r.unexpected_percent:.2f}"
        el = "" if pd.isna(r.element_count) else f"{int(r.element_count):,}"
        rows.append(f"<tr{cls}><td>{e(r.table)}</td><td>{e('' if pd.isna(r.column) else str(r.column))}</td>"
                    f"<td title='{e(r.expectation)}'>{e(check_label(r.expectation))}</td><td>{e(r.severity)}</td>"
                    f"<td>{'pass' if r.success else '<strong>FAIL</strong>'}</td><td class='num'>{n}</td>"
                    f"<td class='num'>{pct}</td><td class='num'>{el}</td></tr>")
    rows.append("</table>")
    return "\n".join(rows)


def _frame_table(df: pd.DataFrame, pct_cols: tuple = ()) -> str:
    e = html.escape
    if df is None or df.empty:
        return "<p>None.</p>"
    head = "".join(f"<th>{e(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for col, v in zip(df.columns, row):
            if col in pct_cols and v is not None and not pd.isna(v):
                cells.append(f"<td class='num'>{100 * float(v):.1f}%</td>")
            elif isinstance(v, (int, float)) and not isinstance(v, bool) and not pd.isna(v):
                cells.append(f"<td class='num'>{v:,.0f}</td>" if float(v).is_integer() else f"<td class='num'>{v}</td>")
            else:
                cells.append(f"<td>{e('' if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def completeness_svg(by_month: pd.DataFrame, width: int = 900, height: int = 280) -> str:
    """An inline SVG line chart of the monthly ethnicity-stated share per table."""
    e = html.escape
    if by_month is None or by_month.empty:
        return "<p>No dated rows to chart.</p>"
    months = sorted(by_month["month"].unique())
    left, right, top, bottom = 55, 170, 15, 40
    pw, ph = width - left - right, height - top - bottom
    lo = min(0.5, float(by_month["share"].min()) - 0.02)
    lo = max(0.0, round(lo - 0.05, 1))

    def x(i):
        return left + (pw * i / max(len(months) - 1, 1))

    def y(v):
        return top + ph * (1 - (v - lo) / (1 - lo))

    parts = [f"<svg width='{width}' height='{height}' role='img' "
             f"aria-label='Ethnicity recording completeness by month' style='max-width:100%;height:auto'>",
             f"<rect x='{left}' y='{top}' width='{pw}' height='{ph}' fill='#fafafa' stroke='#d8dde0'/>"]
    steps = 5
    for k in range(steps + 1):
        v = lo + (1 - lo) * k / steps
        parts.append(f"<line x1='{left}' x2='{left + pw}' y1='{y(v):.1f}' y2='{y(v):.1f}' stroke='#e8ecee'/>"
                     f"<text x='{left - 6}' y='{y(v) + 4:.1f}' font-size='11' text-anchor='end'>{100 * v:.0f}%</text>")
    parts.append(f"<line x1='{left}' x2='{left + pw}' y1='{y(THRESHOLD):.1f}' y2='{y(THRESHOLD):.1f}' "
                 f"stroke='#444' stroke-dasharray='5,4'/>")
    tick_every = max(1, len(months) // 12)
    for i, m in enumerate(months):
        if i % tick_every == 0:
            parts.append(f"<text x='{x(i):.1f}' y='{top + ph + 16}' font-size='10' text-anchor='middle'>{e(m)}</text>")
    for j, (table, g) in enumerate(by_month.groupby("table", sort=True)):
        colour = COLOURS.get(table, "#009E73")
        idx = {m: i for i, m in enumerate(months)}
        pts = " ".join(f"{x(idx[m]):.1f},{y(min(max(s, lo), 1)):.1f}" for m, s in zip(g["month"], g["share"]))
        parts.append(f"<polyline fill='none' stroke='{colour}' stroke-width='2' points='{pts}'/>")
        ly = top + 18 + 20 * j
        parts.append(f"<line x1='{left + pw + 12}' x2='{left + pw + 34}' y1='{ly}' y2='{ly}' stroke='{colour}' "
                     f"stroke-width='3'/><text x='{left + pw + 40}' y='{ly + 4}' font-size='12'>{e(table)}</text>")
    ly = top + 18 + 20 * by_month["table"].nunique()
    parts.append(f"<line x1='{left + pw + 12}' x2='{left + pw + 34}' y1='{ly}' y2='{ly}' stroke='#444' "
                 f"stroke-dasharray='5,4'/><text x='{left + pw + 40}' y='{ly + 4}' font-size='12'>"
                 f"{THRESHOLD:.0%} threshold</text>")
    parts.append(f"<text x='{left - 42}' y='{top + ph / 2}' font-size='11' transform='rotate(-90 {left - 42} "
                 f"{top + ph / 2})' text-anchor='middle'>ethnicity stated</text>")
    parts.append("</svg>")
    return "".join(parts)
