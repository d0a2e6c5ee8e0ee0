"""Building the publishable report of a run: ``release/report.html`` (+ ``.pdf``, ``.docx``).

Inputs (all inside the run folder):

- ``manifest.json`` (provisional is fine): run id, start time, config hash, input hashes, versions.
- ``config.yml``: the resolved configuration (methods, disclosure policy, sites).
- ``restricted/notebooks/site_<id>.ipynb`` and ``cross_site.ipynb``: executed notebooks. Only their
  markdown and the outputs published through :class:`~pcref_eval.publish.Publisher` are used.
- ``release/index/*.json`` and ``release/tables/*.csv``: released tables (for the key findings).
- ``restricted/dq/<site>/validation.json`` (if present): aggregated into a released data-quality table.

Order of the report: title page, contents, summary of key findings, methods, results across sites,
results by site (including sites not analysed and why), data quality, limitations, references,
appendix (provenance).
"""

from __future__ import annotations

import json
import logging
import re
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import escape
from pathlib import Path

import nbformat
import pandas as pd

from pcref_eval.contracts.report import plain_check_name, plain_check_text
from pcref_eval.disclosure import DisclosurePolicy, Proportion
from pcref_eval.report import methods as M
from pcref_eval.report import render as R
from pcref_eval.report.chromium import printing_sessions
from pcref_eval.report import summary as S
from pcref_eval.report.assemble import CleanStats, html_cell, html_output, notebook_sections, place_section
from pcref_eval.report.routing import benchmark_summary_table, change_rows, csv_only_html, route_sections

log = logging.getLogger("pcref_eval.report")

REPORT_FORMATS = ("html", "pdf", "docx")
PDF_ENGINES = ("weasyprint", "chromium", "auto")
ANALYSED_STATUSES = ("ok", "warning")
CATALOGUE_FILE = "report-figures-and-tables.md"
#: Runs with at least this many board packs build them in a second process beside the documents
#: (:func:`_start_board_packs`); smaller runs build them in this process (a new process costs ~2 s of imports).
BOARD_PROCESS_SITES = 8


class ReportError(RuntimeError):
    """The report could not be built (or would not render offline)."""


@dataclass
class ReportContext:
    """Everything the report reads, loaded once."""

    run_dir: Path
    manifest: dict
    config: object | None
    policy: DisclosurePolicy
    sites: list[dict]
    overall_steps: dict
    synthetic: bool
    built_at: datetime
    stats: CleanStats = field(default_factory=CleanStats)
    publishers: dict = field(default_factory=dict)

    def publisher(self, prefix: str):
        """The build's one Publisher per prefix (a second one would rewrite ``release/index/<prefix>.json``
        without the first one's entries)."""
        from pcref_eval.publish import Publisher
        if prefix not in self.publishers:
            self.publishers[prefix] = Publisher(self.run_dir, prefix, self.policy, display=False)
        return self.publishers[prefix]

    @property
    def release(self) -> Path:
        return self.run_dir / "release"

    @property
    def notebooks(self) -> Path:
        return self.run_dir / "restricted" / "notebooks"

    @property
    def reference(self) -> str:
        return self.config.ethnicity.reference if self.config is not None else "the reference group"

    @property
    def title(self) -> str:
        return getattr(self.config, "name", None) or "PCREF evaluation"


# ------------------------------------------------------------------------------------------ context


def _step_field(step, key: str):
    return step.get(key) if isinstance(step, dict) else getattr(step, key, None)


def sanitize_message(message: str, policy: DisclosurePolicy, limit: int = 400) -> str:
    """A step message fit for release: paths reduced to file names, small row/people counts hidden, truncated."""
    msg = str(message or "")
    msg = re.sub(r"(?:[A-Za-z]:)?(?:[\\/][^\s:'\"\\/,;()]+)+[\\/]([^\s:'\"\\/,;()]+)", r"\1", msg)

    def count(m):
        n = int(m.group(1).replace(",", ""))
        if 1 <= n <= policy.threshold:
            return f"fewer than {policy.threshold + 1}{m.group(2)}"
        return f"{int(policy.round([n])[0]):,}{m.group(2)}" if n > policy.threshold else m.group(0)
    msg = re.sub(r"\b(\d[\d,]*)(\s+(?:rows?|records?|people|persons?|patients?|individuals?|episodes?|referrals?))\b",
                 count, msg)
    return msg if len(msg) <= limit else msg[: limit - 1] + "…"


def load_context(run_dir: Path, site_steps: dict | None) -> ReportContext:
    run_dir = Path(run_dir)
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    config = None
    if (run_dir / "config.yml").exists():
        from pcref_eval.config import load_config
        config = load_config(run_dir / "config.yml")
    policy = DisclosurePolicy.from_config(config.disclosure) if config is not None else DisclosurePolicy()
    steps_by_site = {}
    if site_steps:
        steps_by_site = {s: {k: {"status": _step_field(v, "status"), "message": _step_field(v, "message") or ""}
                             for k, v in steps.items()} for s, steps in site_steps.items()}
    elif manifest.get("sites"):
        steps_by_site = manifest["sites"]
    site_ids = ([s.id for s in config.sites] if config is not None
                else sorted(set(steps_by_site) | {p.stem[5:] for p in (run_dir / "restricted" / "notebooks").glob("site_*.ipynb")}))
    sites = []
    synthetic = bool(config is not None and re.search(r"synthetic|demo", config.name, re.IGNORECASE))
    for sid in site_ids:
        info = {"id": sid, "name": "", "go_live": None, "extract_date": None}
        if config is not None:
            path = Path(config.site(sid).path)
            synthetic = synthetic or (path.parent / "truth.json").exists()
            try:
                from pcref_eval.extract import read_site_info
                si = read_site_info(path)
                info.update(name=si.name, go_live=si.pcref_go_live, extract_date=si.extract_date)
            except Exception:  # unreadable site.yml: the contracts step reports it
                pass
        steps = steps_by_site.get(sid, {})
        nb_exists = (run_dir / "restricted" / "notebooks" / f"site_{sid}.ipynb").exists()
        nb_status = (steps.get("notebook") or {}).get("status")
        analysed = nb_exists and (nb_status in ANALYSED_STATUSES if nb_status is not None else True)
        reason = ""
        if not analysed:
            bad = [(k, v) for k, v in steps.items() if v.get("status") in ("failed", "skipped")]
            if bad:
                k, v = bad[0]
                reason = f"{k} {v.get('status')}" + (f": {sanitize_message(v.get('message'), policy)}"
                                                      if v.get("message") else "")
            else:
                reason = "no executed notebook found"
        info.update(analysed=analysed, reason=reason,
                    contracts=steps.get("contracts"), steps=steps)
        sites.append(info)
    return ReportContext(run_dir, manifest, config, policy, sites, manifest.get("steps", {}) or {}, synthetic,
                         datetime.now(timezone.utc))


# ------------------------------------------------------------------------------------- components


def chapter(title: str) -> nbformat.NotebookNode:
    return html_cell(f"<h2 class='chapter'>{escape(title)}</h2>", "chapter")


def title_page(ctx: ReportContext) -> str:
    m, cfg = ctx.manifest, ctx.config
    n_sites, n_done = len(ctx.sites), sum(s["analysed"] for s in ctx.sites)
    window = f"{cfg.study.start:%d %B %Y} to {cfg.study.end:%d %B %Y}" if cfg is not None else ""
    inputs = m.get("inputs", {}) or {}
    data_rows = "".join(
        f"<div><strong>{escape(sid)}</strong> <span class='hash'>"
        f"{escape(str((inputs.get(sid) or {}).get('combined') or (inputs.get(sid) or {}).get('error') or 'not recorded'))}"
        f"</span></div>" for sid in [s["id"] for s in ctx.sites])
    commit = m.get("git_commit") or "not recorded"
    rows = [
        ("Run", f"<span class='run-id-string'>PCREF evaluation report · run {escape(str(m.get('run_id', ctx.run_dir.name)))}</span>"),
        ("Report date", ctx.built_at.strftime("%d %B %Y, %H:%M UTC")),
        ("Run started", escape(str(m.get("started", "not recorded")))),
        ("Software", f"pcref-eval {escape(str(m.get('workbench_version', '')))} · git <span class='hash'>{escape(str(commit))}</span>"),
        ("Configuration hash", f"<span class='hash'>{escape(str(m.get('config_hash', 'not recorded')))}</span>"),
        ("Input data (SHA-256 per site)", data_rows or "not recorded"),
        ("Disclosure control", f"{escape(ctx.policy.name)}: {escape(ctx.policy.describe())}"),
        ("Random seed", escape(str(m.get("seed", getattr(cfg, "seed", ""))))),
    ]
    meta = "".join(f"<tr><th scope='row'>{k}</th><td>{v}</td></tr>" for k, v in rows)
    banner = ("<p class='synthetic-banner'>Synthetic data: this report was produced from synthetic extracts. "
              "Its numbers illustrate the method and describe no real people.</p>" if ctx.synthetic else "")
    return (f"<section class='title-page'>"
            f"<p class='kicker'>Patient and Carer Race Equality Framework · evaluation report</p>"
            f"<h1>{escape(ctx.title)}</h1>"
            f"<p class='subtitle'>{n_done} of {n_sites} site{'s' if n_sites != 1 else ''} analysed"
            f"{' · study window ' + window if window else ''}</p>{banner}"
            f"<table class='meta'>{meta}</table>"
            f"<p class='release-note'>This report contains only aggregate results that passed disclosure control "
            f"and an automatic release check. Patient-level data never leave the secure environment.</p>"
            f"</section>")


def not_analysed_callout(ctx: ReportContext) -> str:
    missing = [s for s in ctx.sites if not s["analysed"]]
    if not missing:
        return (f"<p class='callout ok'>All {len(ctx.sites)} site{'s' if len(ctx.sites) != 1 else ''} passed their "
                "data checks and were analysed.</p>")
    items = "".join(f"<li><strong>{escape(s['id'])}</strong>{' (' + escape(s['name']) + ')' if s['name'] else ''}: "
                    f"{escape(s['reason'])}</li>" for s in missing)
    return (f"<div class='callout'><p><strong>{len(missing)} of {len(ctx.sites)} sites were not analysed</strong> "
            f"and are not in the pooled results:</p><ul>{items}</ul></div>")


def _measure_label(caption: str) -> str:
    return caption.strip().rstrip(".")


VERDICT_HTML = {"higher": "<span class='worse'>higher</span>", "lower": "<span class='better'>lower</span>",
                "unclear": "<span class='unclear'>no clear difference</span>"}


def key_findings(ctx: ReportContext, exclude: set[str] | frozenset = frozenset()) -> list:
    """The at-a-glance box and forest plot from released cross-site ratio tables (plus a released CSV).

    ``exclude``: table stems left out (per-site tables moved to Appendix A, long tables released as CSV
    only): the summary summarises the main report's cross-site results, not one site's benchmark.
    """
    from pcref_eval.publish import Aggregate
    index_path = ctx.release / "index" / "all.json"
    if not index_path.exists():
        return []
    index = json.loads(index_path.read_text())
    index = {**index, "entries": [e for e in index.get("entries", [])
                                  if f"{index.get('prefix', 'all')}_{e.get('name')}" not in exclude]}
    ref = ctx.reference
    rows, used = S.ratio_rows(ctx.release, index, ref)
    trends = S.trend_entries(index)
    if not rows and not trends:
        return []
    cells = []
    parts = ["<div class='key-findings'>"]
    pub = ctx.publisher("summary")
    overall = [r for r in rows if r.period is None]
    if overall:
        top = max(overall, key=lambda r: r.ratio if r.verdict == "higher" else 0)
        if top.verdict == "higher":
            parts.append(f"<p class='headline'><strong>At a glance:</strong> the largest difference is for "
                         f"<strong>{escape(top.group)}</strong> people: {S.phrase(top, ref)} "
                         f"(<em>{escape(_measure_label(top.measure))}</em>).</p>")
    if rows:
        parts.append(f"<h3>Which groups fare worse than {escape(ref)}, and by how much</h3>")
        for entry in used:
            measure = entry.get("caption", "")
            mrows = sorted((r for r in rows if r.measure == measure and r.period is None), key=lambda r: -r.ratio)
            if not mrows:
                continue
            stem = Path(entry["files"][0]).stem
            body = "".join(
                f"<tr><td>{escape(r.group)}</td><td class='num'>{S.fmt_ratio(r.ratio)}</td>"
                f"<td class='num'>{S.fmt_ratio(r.lower)} to {S.fmt_ratio(r.upper)}</td>"
                f"<td>{VERDICT_HTML[r.verdict]}</td></tr>" for r in mrows)
            redacted = S.redacted_groups(ctx.release, entry, ref)
            note = (f"<p class='muted small'>Not shown (too few people to report): {escape(', '.join(redacted))}.</p>"
                    if redacted else "")
            parts.append(f"<p><em>{escape(_measure_label(measure))}</em> "
                         f"(<a class='xref' data-ref='{escape(stem, quote=True)}'>table</a>)</p>"
                         f"<table class='glance-table'><thead><tr><th>Group</th><th>Ratio to {escape(ref)}</th>"
                         f"<th>95% CI</th><th>Compared with {escape(ref)}</th></tr></thead><tbody>{body}</tbody></table>"
                         f"{note}")
    parts.append("<h3>Is it changing?</h3>")
    changing = _period_changes(rows, ref)
    if changing:
        parts.append(f"<ul>{changing}</ul>")
    described = []
    for e in trends:
        line = S.change_summary(ctx.release, e)
        if line:
            stem = Path(e["files"][0]).stem
            described.append(e)
            parts.append(f"<p><em>{escape(_measure_label(e.get('caption', e['name'])))}</em> "
                         f"(<a class='xref' data-ref='{escape(stem, quote=True)}'>table</a>): {line}</p>")
    others = [e for e in trends if e not in described and e.get("files")]
    if others:
        refs = "; ".join(f"<a class='xref' data-ref='{escape(Path(e['files'][0]).stem, quote=True)}' "
                         f"data-kind='{escape(e.get('kind', 'table'), quote=True)}'>"
                         f"{escape(e.get('kind', 'table'))}</a> ({escape(_measure_label(e.get('caption', e['name'])))})"
                         for e in others[:6])
        parts.append(f"<p>Change over time is also shown in {refs}.</p>")
    if not trends and not changing:
        parts.append("<p class='muted'>No released cross-site table in this run describes change over time.</p>")
    parts.append("<h3>How sure are we?</h3>"
                 "<p>Every ratio has a 95% confidence interval. Where the whole interval lies above 1, the group's "
                 "figure is higher than the reference group's and chance alone is an unlikely explanation; where it "
                 "includes 1, the data cannot tell the groups apart. Smaller groups have wider intervals. Released "
                 f"counts are rounded to the nearest {ctx.policy.rounding} and counts of 1 to {ctx.policy.threshold} "
                 "are redacted, which hides the smallest groups but does not change the ratios shown.</p>")
    parts.append("</div>")
    cells.append(html_cell("".join(parts), "key-findings"))
    if rows:
        order = list(dict.fromkeys(r.measure for r in rows))
        periods = list(dict.fromkeys(r.period or "" for r in rows))
        shown = sorted(rows, key=lambda r: (order.index(r.measure), periods.index(r.period or ""), -r.ratio))[:30]
        table = pd.DataFrame({
            "measure": [_measure_label(r.measure) for r in shown], "group": [r.group for r in shown],
            "period": [r.period or "" for r in shown], "ratio": [r.ratio for r in shown],
            "lower_95": [r.lower for r in shown], "upper_95": [r.upper for r in shown],
            "compared_with_reference": [{"higher": "higher", "lower": "lower", "unclear": "no clear difference"}[r.verdict]
                                        for r in shown]})
        if not table["period"].astype(bool).any():
            table = table.drop(columns="period")
        pub.release_table(Aggregate(table, [], model=["ratio", "lower_95", "upper_95"],  # copied from released tables
                                    labels=[c for c in table.columns if c not in ("ratio", "lower_95", "upper_95")]),
                          "key_findings",
                          f"Key findings: ratios to {ref} with 95% confidence intervals, from the released cross-site "
                          "tables.", section="Summary")
        fig = S.forest_plot(shown, ref)
        caption = (f"Key findings: ratios to {ref} with 95% confidence intervals (log scale). Points to the right of "
                   "the dashed line are higher than the reference group.")
        width = int(fig.get_size_inches()[0] * 100)
        paths = pub.figure(fig, "key_findings", caption, section="Summary")
        png = next(p for p in paths if p.suffix == ".png")
        import base64

        from pcref_eval.report.assemble import figure_html
        cells.append(html_cell(figure_html(base64.b64encode(png.read_bytes()).decode(), caption, "summary_key_findings",
                                           width=width), "figure"))
    return cells


def _period_changes(rows: list[S.RatioRow], ref: str) -> str:
    """List items comparing a group's ratio between periods (e.g. pre and post go-live)."""
    items = []
    seen = set()
    for r in rows:
        if r.period is None or (r.measure, r.group) in seen:
            continue
        seen.add((r.measure, r.group))
        same = [x for x in rows if x.measure == r.measure and x.group == r.group and x.period is not None]
        if len(same) < 2:
            continue
        a, b = same[0], same[-1]
        overlap = not (a.upper < b.lower or b.upper < a.lower)
        direction = "narrowed" if b.ratio < a.ratio else "widened"
        verdict = ("intervals overlap, so no clear change" if overlap else f"the gap {direction}")
        items.append(f"<li><strong>{escape(r.group)}</strong> ({escape(_measure_label(r.measure))}): {escape(a.period)} "
                     f"{S.fmt_ratio(a.ratio)} ({S.fmt_ratio(a.lower)} to {S.fmt_ratio(a.upper)}), {escape(b.period)} "
                     f"{S.fmt_ratio(b.ratio)} ({S.fmt_ratio(b.lower)} to {S.fmt_ratio(b.upper)}): {verdict}.</li>")
    return "".join(items)


def dq_cells(ctx: ReportContext, site: dict) -> list:
    """A site's data-quality summary: contract status, aggregated checks (released), pointer to the restricted report."""
    from pcref_eval.publish import Aggregate
    cells = []
    contracts = site.get("contracts") or {}
    status = contracts.get("status")
    msg = plain_check_text(sanitize_message(contracts.get("message", ""), ctx.policy)) if contracts else ""
    label = {"ok": "passed", "warning": "passed with warnings", "failed": "failed", "skipped": "skipped"}.get(status,
                                                                                                                "not recorded")
    cls = "callout ok" if status == "ok" else "callout"
    parts = [f"<p class='{cls}'>Data contracts: <strong>{label}</strong>{': ' + escape(msg) if msg else '.'}</p>"]
    dq_dir = ctx.run_dir / "restricted" / "dq" / site["id"]
    checks = load_validation(dq_dir / "validation.json")
    if checks is not None and not checks.empty:
        n, n_pass = len(checks), int(checks["passed"].sum())
        parts.append(f"<p>{n_pass} of {n} data checks passed.</p>")
        failing = checks[~checks["passed"]].drop(columns=["passed"])
        failing = failing.assign(check=failing["check"].map(plain_check_name))
        cells.append(html_cell("".join(parts), "dq"))
        parts = []
        if not failing.empty:
            pub = ctx.publisher(f"dq_{site['id']}")
            failing = failing.reset_index(drop=True)
            rt = pub.release_table(Aggregate(failing, ["rows_failing"],
                                             labels=[c for c in failing.columns if c != "rows_failing"]), "failed_checks",
                                   f"Data checks that failed at site {site['id']} (rows failing are disclosure-"
                                   "controlled).", section="Data quality", decimals=1)
            cells.append(html_cell(f"<div class='table-wrap'>{rt.html}</div>", "table"))
    completeness = load_completeness(dq_dir / "validation.json")
    if completeness is not None and not completeness.empty:
        if parts:
            cells.append(html_cell("".join(parts), "dq"))
            parts = []
        pub = ctx.publisher(f"dq_{site['id']}")
        rt = pub.release_table(Aggregate(completeness, ["recorded", "total"],
                                         {"recorded_pct": Proportion("recorded", "total")},
                                         labels=[c for c in completeness.columns
                                                 if c not in ("recorded", "total", "recorded_pct")]),
                               "ethnicity_completeness",
                               f"Ethnicity recording completeness at site {site['id']}: records with an ethnic "
                               "category stated (not Z, 99 or blank).", section="Data quality", decimals=1)
        cells.append(html_cell(f"<div class='table-wrap'>{rt.html}</div>", "table"))
    if dq_dir.exists() and any(dq_dir.glob("*.html")):
        parts.append("<p class='muted'>A detailed data-quality report with example rows is kept inside the secure "
                     f"environment (restricted/dq/{escape(site['id'])}/); it is not released.</p>")
    if parts:
        cells.append(html_cell("".join(parts), "dq"))
    return cells


def read_validation_json(path: Path):
    """The parsed contracts ``validation.json``, or None when it is absent or unreadable."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def load_validation(path: Path) -> pd.DataFrame | None:
    """Aggregate check results from a contracts ``validation.json`` (tolerant of its exact layout)."""
    data = read_validation_json(path)
    if data is None:
        return None
    records = data
    if isinstance(data, dict):
        records = next((data[k] for k in ("results", "expectations", "checks") if isinstance(data.get(k), list)), None)
    if not isinstance(records, list) or not records:
        return None
    df = pd.DataFrame([r for r in records if isinstance(r, dict)])
    pick = {"table": ("table",), "column": ("column", "columns"),
            "check": ("expectation", "expectation_type", "check", "name", "type"),
            "severity": ("severity", "level"), "passed": ("success", "passed", "ok"),
            "rows_failing": ("unexpected_count", "failed_rows", "n_failed", "unexpected_rows")}
    out = pd.DataFrame(index=df.index)
    for col, keys in pick.items():
        key = next((k for k in keys if k in df.columns), None)
        out[col] = df[key] if key else None
    if out["passed"].isna().all():
        return None
    out["passed"] = out["passed"].astype(bool)
    out["rows_failing"] = pd.to_numeric(out["rows_failing"], errors="coerce")
    for col in ("table", "column", "check", "severity"):
        out[col] = out[col].map(lambda v: ", ".join(map(str, v)) if isinstance(v, list) else ("" if v is None else str(v)))
    return out


def load_completeness(path: Path) -> pd.DataFrame | None:
    """Ethnicity recording completeness by table from a contracts ``validation.json`` (recorded, total, %)."""
    data = read_validation_json(path)
    if data is None:
        return None
    rows = data.get("completeness_by_table") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not rows:
        return None
    df = pd.DataFrame([r for r in rows if isinstance(r, dict)])
    if not {"table", "recorded", "total"} <= set(df.columns):
        return None
    df = df[["table", "recorded", "total"]].copy()
    df["recorded_pct"] = 100 * df["recorded"] / df["total"].where(df["total"] > 0)
    return df


def provenance_cells(ctx: ReportContext) -> list:
    m = ctx.manifest
    parts = ["<p>Hashes identify exactly which input files and configuration produced this report.</p>"]
    rows = []
    for sid, entry in (m.get("inputs") or {}).items():
        for name, digest in ((entry or {}).get("files") or {}).items():
            rows.append(f"<tr><td>{escape(sid)}</td><td>{escape(name)}</td><td class='hash'>{escape(str(digest))}</td></tr>")
    if rows:
        parts.append("<table class='report-table'><caption><strong>Table:</strong> SHA-256 of every input file.</caption>"
                     "<thead><tr><th>Site</th><th>File</th><th>SHA-256</th></tr></thead><tbody>"
                     + "".join(rows) + "</tbody></table>")
    pk = m.get("packages") or {}
    if pk:
        parts.append("<table class='report-table'><caption><strong>Table:</strong> Software versions.</caption>"
                     "<thead><tr><th>Package</th><th>Version</th></tr></thead><tbody>"
                     + "".join(f"<tr><td>{escape(str(k))}</td><td>{escape(str(v))}</td></tr>" for k, v in pk.items())
                     + "</tbody></table>")
    return [html_cell("".join(parts), "provenance")]


# --------------------------------------------------------------------------------------- assembly


def _read_nb(path: Path):
    return nbformat.read(str(path), as_version=4) if path.exists() else None


#: The report's documents: the main report a reviewer reads and two appendices linked from it (file stems).
MAIN, SITES, DQ = "report", "appendix-sites", "appendix-data-quality"
DOCUMENT_TITLES = {MAIN: "Evaluation report", SITES: "Appendix A: results by site",
                   DQ: "Appendix B: data quality and provenance"}
#: Where each chapter of the notebooks' sections goes: the cross-site notebook's results, implementation,
#: summary and limitations sections (including sections other notebooks' cells add, e.g. benchmarks, DiD,
#: sensitivity analyses) go to the main report; every site's sections to appendix A; data quality to B.
CHAPTER_DOCUMENT = {"summary": MAIN, "results": MAIN, "implementation": MAIN, "limitations": MAIN, "dq": DQ}


def _read_nbs(ctx: ReportContext, strict: bool):
    cross_step = (ctx.overall_steps.get("cross_site") or {}).get("status")
    cross_nb = _read_nb(ctx.notebooks / "cross_site.ipynb") if cross_step in (None, *ANALYSED_STATUSES) else None
    cross_sections = notebook_sections(cross_nb, strict, ctx.stats)[2] if cross_nb is not None else []
    site_nbs = {}
    for s in ctx.sites:
        if s["analysed"]:
            nb = _read_nb(ctx.notebooks / f"site_{s['id']}.ipynb")
            if nb is not None:
                site_nbs[s["id"]] = notebook_sections(nb, strict, ctx.stats)
    return cross_nb, cross_sections, site_nbs


def _site_title(s: dict) -> str:
    return f"Site {s['id']}" + (f": {s['name']}" if s["name"] else "")


def _document(ctx: ReportContext, cells: list, stem: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    run_id = str(ctx.manifest.get("run_id", ctx.run_dir.name))
    what = "" if stem == MAIN else f" - {DOCUMENT_TITLES[stem]}"
    nb.metadata["title"] = f"{ctx.title}{what} (run {run_id})"
    nb.metadata["pcref"] = {"run_id": run_id, "workbench_version": str(ctx.manifest.get("workbench_version", "")),
                            "document": stem,
                            "footer": f"{ctx.title}{what} · run {run_id} · built {ctx.built_at:%Y-%m-%d %H:%M} UTC · "
                                      f"disclosure control: {ctx.policy.name}"}
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def documents_list_html(formats, board_sites: list[str]) -> str:
    """Links to the appendices, board packs and long tables (relative to release/)."""
    fmts = [f for f in ("html", "pdf", "docx") if f in formats] or ["html"]

    def links(stem):
        return " · ".join(f"<a href='{stem}.{f}'>{f.upper()}</a>" for f in fmts)
    items = [f"<li><strong>{escape(DOCUMENT_TITLES[SITES])}</strong> ({links(SITES)}): every site's cohort, "
             "detention rates, survival analysis, board measures, implementation effect and benchmark against NHS "
             "England.</li>",
             f"<li><strong>{escape(DOCUMENT_TITLES[DQ])}</strong> ({links(DQ)}): data checks, ethnicity recording "
             "completeness, input file hashes and software versions.</li>"]
    if board_sites:
        packs = ", ".join(f"<a href='board/{escape(s)}.html'>{escape(s)}</a>" for s in board_sites)
        items.append(f"<li><strong>Board packs</strong> (HTML and PDF, at most 4 pages each): {packs}; and the "
                     "<a href='board/cross-site-summary.html'>one-page cross-site summary</a>.</li>")
    items.append(f"<li><strong>All released tables</strong> as CSV in <code>tables/</code>, with their captions in "
                 f"<code>{CATALOGUE_FILE}</code> and <code>captions/</code>; the longest (every ICB's published "
                 "figures, quarter-by-quarter event-study estimates) are released as CSV only.</li>")
    return "<ul class='documents'>" + "".join(items) + "</ul>"


def core_measures_cells(ctx: ReportContext) -> list:
    """The summary's grid of every PCREF core measure across sites (ratios with MDC icons), from released tables."""
    from pcref_eval.boardpack import data as BD
    from pcref_eval.boardpack.build import sites_grid_html
    boards = [b for s in ctx.sites if s["analysed"]
              for b in [BD.load_site_board(ctx.release, s["id"], s["name"], s["go_live"], ctx.reference)] if b]
    if not boards:
        return []
    x = BD.load_cross_site(ctx.release, boards)
    html = (f"<h3>All PCREF core measures, site by site</h3><p>Each cell: the {escape(boards[0].focus)} / "
            f"{escape(ctx.reference)} ratio over {escape(boards[0].window)} with its 95% confidence interval, then "
            "the Making Data Count variation and assurance icons of the measure's monthly chart (key below). "
            "Detention is one of several PCREF measures: restraint, seclusion and rapid tranquillisation, police and "
            "court referral, community treatment orders, experience of care and outcomes are shown alike.</p>"
            f"<p class='answer'><strong>Has the detention gap narrowed?</strong> {escape(BD.pooled_answer(x))}</p>"
            + f"<div class='sites-grid'>{sites_grid_html(x)}</div>")
    return [html_cell(html, "summary")]


def unrecorded_note(ctx: ReportContext) -> str:
    from pcref_eval.ethnicity import UNRECORDED_LABELS
    return (f"<p class='muted'>People whose ethnicity was not recorded ({escape(', '.join(UNRECORDED_LABELS))}) are "
            "not an ethnic group and are not compared with the reference group here: how many there are, and how "
            "that changes, is reported as data quality (Appendix B and the ethnicity recording measures above).</p>")


def km_groups_note(ctx: ReportContext) -> str:
    return ("<p class='callout'>Why two sets of groups: Kaplan-Meier curves, log-rank tests and cumulative incidence "
            "are shown for five broad ethnic groups, because a curve per PCREF group would rest on too few people "
            "at later times to release after midpoint-6 rounding; the hazard ratios use the PCREF groups (Black "
            "African, Black Caribbean, Black Mixed, Black Other, other groups) against "
            f"{escape(ctx.reference)}, which a single model can estimate with enough precision.</p>")


def assemble_documents(ctx: ReportContext, strict: bool = True, formats=("html",),
                       board_sites: list[str] | None = None) -> dict[str, nbformat.NotebookNode]:
    """The main report and its two appendices as notebooks of output-only cells, ready for the template."""
    cross_nb, cross_sections, site_nbs = _read_nbs(ctx, strict)
    by_doc: dict[str, list] = {MAIN: [], SITES: [], DQ: []}
    for sec in cross_sections:
        by_doc[CHAPTER_DOCUMENT.get(sec.chapter, MAIN)].append(sec)
    routed = route_sections(by_doc[MAIN], [s["id"] for s in ctx.sites], lambda: benchmark_summary_outputs(ctx),
                            {"all_sensitivity": lambda meta: change_table_outputs(ctx, meta)})
    by_doc[MAIN] = routed.main

    # ---- main report
    cells = [html_cell(title_page(ctx), "title-page"), html_cell("<nav class='toc' id='toc'></nav>", "toc")]
    cells.append(chapter("Summary of key findings"))
    n_done = sum(s["analysed"] for s in ctx.sites)
    cells.append(html_cell(
        f"<p>This report compares the Patient and Carer Race Equality Framework (PCREF) core measures between "
        f"ethnic groups at {n_done} of {len(ctx.sites)} mental health site{'s' if len(ctx.sites) != 1 else ''}, "
        f"with {escape(ctx.reference)} as the reference group: Mental Health Act detention, community treatment "
        "orders, restrictive interventions, police and court referral, experience of care, outcomes and ethnicity "
        "recording. Ratios above 1 mean a measure is higher for a group than for the reference group.</p>", "summary"))
    for sec in [x for x in by_doc[MAIN] if x.chapter == "summary"]:
        cells += place_section(sec, 2, drop_heading=True)
    cells += core_measures_cells(ctx)
    cells += key_findings(ctx, {*routed.moved, *routed.csv_only})
    cells.append(html_cell(unrecorded_note(ctx), "summary"))
    cells.append(html_cell(not_analysed_callout(ctx), "summary"))
    cells.append(html_cell("<h3>Appendices and other documents</h3>" + documents_list_html(formats, board_sites or []),
                           "summary"))

    cells.append(chapter("Methods"))
    refs: list[str] = []
    if ctx.config is not None:
        methods, refs = M.methods_html(ctx.config, ctx.policy, ctx.sites, ctx.manifest)
        cells.append(html_cell(methods, "methods"))
    else:
        cells.append(html_cell("<p class='callout'>The run's config.yml was not found; methods cannot be "
                               "described.</p>", "methods"))

    cells.append(chapter("Results across sites"))
    if cross_nb is None:
        reason = (ctx.overall_steps.get("cross_site") or {})
        why = sanitize_message(reason.get("message", ""), ctx.policy) if reason else ""
        cells.append(html_cell(f"<p class='callout'>The cross-site analysis did not run"
                               f"{': ' + escape(why) if why else '.'}</p>", "results"))
    else:
        cells.append(html_cell(km_groups_note(ctx), "results"))
    for sec in [x for x in by_doc[MAIN] if x.chapter == "results"]:
        cells += place_section(sec, 3)

    cells.append(chapter("Implementation effect"))
    cells.append(html_cell("<p>Did the gap change when each site went live with PCREF? Pooled and site-by-site "
                           "estimates below; each site's interrupted time series of every core measure is in "
                           "Appendix A.</p>", "implementation"))
    for sec in [x for x in by_doc[MAIN] if x.chapter == "implementation"]:
        cells += place_section(sec, 3)
    cells += implementation_cells(ctx)

    cells.append(chapter("Limitations"))
    cells.append(html_cell(M.limitations_html(ctx.config, ctx.policy, ctx.sites, ctx.synthetic)
                           if ctx.config is not None else "", "limitations"))
    for sec in [x for x in by_doc[MAIN] if x.chapter == "limitations"]:
        cells += place_section(sec, 3, drop_heading=_generic_title(sec.title, "limitations"))
    for sid, (_, _, sections) in site_nbs.items():
        for sec in sections:
            if sec.chapter == "limitations":
                cells.append(html_cell(f"<h3>Site {escape(sid)}</h3>", "limitations"))
                cells += place_section(sec, 4, drop_heading=_generic_title(sec.title, "limitations"))
    if refs:
        cells.append(chapter("References"))
        cells.append(html_cell(M.references_html(refs), "references"))
    main = _document(ctx, cells, MAIN)

    # ---- appendix A: results by site
    cells = [html_cell(appendix_title(ctx, SITES), "title-page"), html_cell("<nav class='toc' id='toc'></nav>", "toc")]
    for s in ctx.sites:
        cells.append(chapter(_site_title(s)))
        if not s["analysed"] or s["id"] not in site_nbs:
            cells.append(html_cell(f"<p class='callout'><strong>Not analysed.</strong> {escape(s['reason'])}</p>",
                                   "site"))
            continue
        if s.get("go_live"):
            cells.append(html_cell(f"<p class='muted'>PCREF go-live {s['go_live']:%d %B %Y}; extract date "
                                   f"{s['extract_date']:%d %B %Y}.</p>", "site"))
        for sec in site_nbs[s["id"]][2]:
            if sec.chapter not in ("dq", "limitations"):
                cells += place_section(sec, 3)
        if routed.by_site.get(s["id"]):
            cells.append(html_cell("<h3>Benchmark against NHS England's published figures</h3>", "site"))
            cells += routed.by_site[s["id"]]
    sites_doc = _document(ctx, cells, SITES)

    # ---- appendix B: data quality and provenance
    cells = [html_cell(appendix_title(ctx, DQ), "title-page"), html_cell("<nav class='toc' id='toc'></nav>", "toc")]
    cells.append(chapter("Data quality"))
    cells.append(html_cell("<p>Each site's extract was checked against data contracts (completeness, valid codes, "
                           "dates in order, links between tables) before analysis. Only aggregate summaries are "
                           "released. Unrecorded ethnicity (not stated, not known, missing) is a data-quality "
                           "measure, not an ethnic group.</p>", "dq"))
    for sec in by_doc[DQ]:
        cells += place_section(sec, 3, drop_heading=_generic_title(sec.title, "dq"))
    for s in ctx.sites:
        cells.append(html_cell(f"<h3 class='toc-include'>{escape(_site_title(s))}</h3>", "dq"))
        cells += dq_cells(ctx, s)
        if s["id"] in site_nbs:
            for sec in site_nbs[s["id"]][2]:
                if sec.chapter == "dq":
                    cells += place_section(sec, 4, drop_heading=_generic_title(sec.title, "dq"))
    cells.append(chapter("Provenance"))
    cells += provenance_cells(ctx)
    dq_doc = _document(ctx, cells, DQ)
    return {MAIN: main, SITES: sites_doc, DQ: dq_doc}


def assemble_report(ctx: ReportContext, strict: bool = True) -> nbformat.NotebookNode:
    """The main report only (see :func:`assemble_documents` for it and its appendices)."""
    return assemble_documents(ctx, strict)[MAIN]


def appendix_title(ctx: ReportContext, stem: str) -> str:
    run_id = escape(str(ctx.manifest.get("run_id", ctx.run_dir.name)))
    banner = ("<p class='synthetic-banner'>Synthetic data: the numbers illustrate the method and describe no real "
              "people.</p>" if ctx.synthetic else "")
    return (f"<section class='appendix-title'><p class='kicker'>Patient and Carer Race Equality Framework · "
            f"{escape(ctx.title)}</p><h1>{escape(DOCUMENT_TITLES[stem])}</h1>"
            f"<p class='subtitle'>Run {run_id} · an appendix to <a href='{MAIN}.html'>the evaluation report</a>"
            f"</p>{banner}</section>")


def implementation_cells(ctx: ReportContext) -> list:
    """Level change at go-live in every measure's focus/reference ratio, site by site (released ITS tables)."""
    from pcref_eval.publish import Aggregate
    frames = []
    for s in ctx.sites:
        path = ctx.release / "tables" / f"{s['id']}_implementation_effect.csv"
        if s["analysed"] and path.exists():
            d = S._read_released(path)
            frames.append(d.assign(site=s["id"])[["measure", "site", "level_change", "level_change_lower",
                                                  "level_change_upper"]])
    if not frames:
        return []
    long = pd.concat(frames, ignore_index=True)
    fmt = long.apply(lambda r: (f"{S.fmt_ratio(r.level_change)} ({S.fmt_ratio(r.level_change_lower)} to "
                                f"{S.fmt_ratio(r.level_change_upper)})") if pd.notna(r.level_change)
                     and pd.notna(r.level_change_lower) else "not estimable", axis=1)
    # a row a site, a column a measure: the table keeps its width however many sites the run has
    wide = long.assign(cell=fmt).pivot(index="site", columns="measure", values="cell")
    wide = wide.reindex(list(dict.fromkeys(long["site"])))[list(dict.fromkeys(long["measure"]))].reset_index()
    wide.columns.name = None
    pub = ctx.publisher("summary")
    measures = [c for c in wide.columns if c != "site"]
    rt = pub.release_table(Aggregate(wide, [], model=measures, labels=["site"]), "implementation_by_site",
                           "Level change at go-live in each measure's Black (all focus groups) / "
                           f"{ctx.reference} ratio, by site (interrupted time series, 95% CI; below 1 = the ratio "
                           "fell). Copied from each site's released implementation-effect table.",
                           section="Implementation effect")
    return [html_cell(f"<div class='table-wrap'>{rt.html}</div>", "table")]


def benchmark_summary_outputs(ctx: ReportContext) -> list:
    """The main report's one benchmark table across sites (in place of each site's table, now in Appendix A)."""
    from pcref_eval.publish import Aggregate
    table = benchmark_summary_table(ctx.release, [s["id"] for s in ctx.sites if s["analysed"]])
    if table is None:
        return []
    model = [c for c in table.columns if ":" in c]
    years = " and ".join(table.attrs.get("years", []))
    rt = ctx.publisher("summary").release_table(
        Aggregate(table, [], model=model, labels=[c for c in table.columns if c not in model]), "benchmark_by_site",
        f"Black or Black British / White rate ratio at each site{', ' + years + ',' if years else ''} (95% CI) beside "
        "its ICB's and England's published ratios (NHS England Mental Health Act statistics). Copied from each "
        "site's released benchmark table, which has the rates and all five groups (Appendix A).",
        section="Benchmark against NHS England")
    return [html_output(f"<div class='table-wrap'>{rt.html}</div>", "table"),
            html_output(f"<p>Each site's full benchmark table (rates per 100,000 and ratios for every group, beside its "
                        f"ICB and England) is in <a href='{SITES}.html'>{escape(DOCUMENT_TITLES[SITES])}</a>, under "
                        "the site.</p>", "note")]


def change_table_outputs(ctx: ReportContext, meta: dict) -> list:
    """A long "before / after / ratio" table shown by its ratio rows only (e.g. one row per sensitivity
    analysis), copied from the released table; the full table is released as CSV only."""
    from pcref_eval.publish import Aggregate
    stem = meta.get("name", "")
    table = change_rows(ctx.release, stem)
    if table is None:
        return [html_output(csv_only_html(meta), "csv-only")]
    labels = [c for c in table.columns if c == "analysis"]
    model = [c for c in table.columns if c not in labels]
    table[model] = table[model].apply(pd.to_numeric, errors="coerce")
    caption = meta.get("caption", "").rstrip(".")
    rt = ctx.publisher("summary").release_table(
        Aggregate(table, [], model=model, labels=labels), f"{stem.removeprefix('all_')}_ratio",
        f"{caption}: the ratio of hazard ratios (after / before go-live) of each analysis, copied from the full table "
        f"(tables/{stem}.csv), which also gives the hazard ratios before and after and the detentions they rest on.",
        section=meta.get("section", "Results"), decimals=3)
    return [html_output(f"<div class='table-wrap'>{rt.html}</div>", "table")]


def _generic_title(title: str | None, chapter: str) -> bool:
    """True when a section's title only repeats its chapter's name (so the heading is dropped)."""
    t = re.sub(r"[^a-z ]", "", (title or "").lower()).strip()
    return t in {"dq": {"data quality", "data quality summary", "data quality checks"},
                 "limitations": {"limitations", "limitation", "caveats", "limitations and caveats"}}[chapter]


def write_catalogue(release: Path, catalogue: list[R.CatalogueEntry]) -> Path:
    """``release/report-figures-and-tables.md``: each numbered table/figure with its caption and released files."""
    files: dict[str, list[str]] = {}
    for index in sorted((release / "index").glob("*.json")):
        try:
            data = json.loads(index.read_text())
        except ValueError:
            continue
        for e in data.get("entries", []):
            files[f"{data.get('prefix')}_{e.get('name')}"] = e.get("files", [])
    lines = ["# Tables and figures in the report", "",
             "Numbers as in report.html / report.pdf / report.docx. Files are in this release folder.", ""]
    for e in catalogue:
        f = ", ".join(f"`{x}`" for x in files.get(e.name, []))
        lines.append(f"- **{e.kind.capitalize()} {e.number}.** {e.caption}" + (f"  \n  files: {f}" if f else ""))
    path = release / CATALOGUE_FILE
    path.write_text("\n".join(lines) + "\n")
    return path


def resolve_pdf_engine(engine: str = "auto") -> str:
    """The PDF engine that ``engine`` means on this machine: ``auto`` is Chromium when installed, else WeasyPrint.

    Measured on the demo report (177 A4 pages, 2 cores): Chromium 8.6 s, WeasyPrint 34 s. Both apply
    the same print stylesheet (A4, landscape pages for wide tables, captions kept with tables).
    """
    if engine not in PDF_ENGINES:
        raise ValueError(f"unknown pdf_engine {engine!r}; choose from {list(PDF_ENGINES)}")
    if engine == "auto":
        return "chromium" if R.find_chromium() else "weasyprint"
    return engine


def render_document(nb: nbformat.NotebookNode, ctx: ReportContext, stem: str, formats: list[str],
                    pdf_engine: str, background: Executor | None = None
                    ) -> tuple[dict[str, Path | Future], list[R.CatalogueEntry]]:
    """One document (main report or an appendix) as ``release/<stem>.html|pdf|docx``.

    The HTML is written here; the PDF (Chromium or WeasyPrint) and the DOCX (pandoc) are made by
    ``background`` (an executor), so the caller can go on while they print: their entries in the
    returned dict are then futures (see :func:`finish_document`). Without ``background`` the document
    is finished before this returns.
    """
    if background is None:
        with ThreadPoolExecutor(max_workers=2) as own:
            made, catalogue = render_document(nb, ctx, stem, formats, pdf_engine, own)
            return finish_document(made, ctx, stem, formats), catalogue
    html, catalogue = R.finalize_html(R.export_html(nb, ctx.notebooks))
    fetches = R.external_references(html)
    if fetches:
        raise ReportError(f"{stem} HTML would fetch external resources: {fetches[:5]}")
    outputs: dict[str, Path | Future] = {}
    html_path = ctx.release / f"{stem}.html"
    html_path.write_text(html, encoding="utf-8")
    outputs["html"] = html_path
    if "pdf" in formats:
        pdf = ctx.release / f"{stem}.pdf"
        outputs["pdf"] = (background.submit(R.write_pdf_chromium, html_path, pdf)
                          if resolve_pdf_engine(pdf_engine) == "chromium"
                          else background.submit(R.write_pdf_weasyprint, html, pdf))
    if "docx" in formats:
        outputs["docx"] = background.submit(R.write_docx, html, ctx.release / f"{stem}.docx")
    return outputs, catalogue


def finish_document(made: dict[str, Path | Future], ctx: ReportContext, stem: str, formats: list[str]
                    ) -> dict[str, Path]:
    """Wait for a document's PDF and DOCX; remove its HTML when HTML was not asked for (it was printed from)."""
    outputs = {k: v.result() if isinstance(v, Future) else v for k, v in made.items()}
    if "html" not in formats:
        outputs.pop("html").unlink()
    return outputs


def build_report(run_dir: Path, formats: list[str] | tuple[str, ...] = ("html",), site_steps: dict | None = None,
                 *, pdf_engine: str = "auto", strict: bool = True, registry_url: str | None = None,
                 board_packs: bool = True) -> dict[str, Path]:
    """Build the report of a run into ``run_dir/release`` and return the main report's ``{format: path}``.

    Also writes its appendices (``appendix-sites.*``, ``appendix-data-quality.*``, same formats) and,
    with ``board_packs``, ``release/board/<site>.html|pdf`` and ``release/board/cross-site-summary.html|pdf``
    (:mod:`pcref_eval.boardpack`; ``registry_url`` finds the previous run for "what changed").

    ``formats``: any of ``html``, ``pdf``, ``docx``. ``site_steps``: ``{site_id: {step: StepResult}}`` (or
    dicts with status/message); without it the manifest's ``sites`` are used. ``pdf_engine``: ``auto``
    (default: Chromium when installed, else WeasyPrint), ``weasyprint`` (pip only) or ``chromium``
    (headless Chromium, must be installed); see :func:`resolve_pdf_engine`. ``strict``: keep only outputs
    published through the Publisher (plus Markdown), dropping other HTML and image displays.
    """
    formats = [f.lower() for f in formats]
    bad = [f for f in formats if f not in REPORT_FORMATS]
    if bad:
        raise ValueError(f"unknown report format(s) {bad}; choose from {list(REPORT_FORMATS)}")
    if pdf_engine not in PDF_ENGINES:
        raise ValueError(f"unknown pdf_engine {pdf_engine!r}; choose from {list(PDF_ENGINES)}")
    run_dir = Path(run_dir)
    ctx = load_context(run_dir, site_steps)
    ctx.release.mkdir(parents=True, exist_ok=True)
    engine = resolve_pdf_engine(pdf_engine)
    from pcref_eval.boardpack.data import has_site_board
    analysed = [s for s in ctx.sites if s["analysed"]]
    board_sites = [s["id"] for s in analysed if has_site_board(ctx.release, s["id"])] if board_packs else []
    board_args = _board_pack_args(ctx, run_dir, analysed, formats, engine, registry_url) if board_packs else {}
    with ExitStack() as stack:
        board_job = (_start_board_packs(stack, board_args) if len(board_sites) >= BOARD_PROCESS_SITES else None)
        outputs, catalogue = _build_documents(ctx, strict, formats, engine, board_sites, board_args, board_job)
    write_catalogue(ctx.release, catalogue)
    return outputs.get(MAIN, {})


def _build_documents(ctx: ReportContext, strict: bool, formats: list[str], engine: str, board_sites: list[str],
                     board_args: dict, board_job: Future | None) -> tuple[dict, list[R.CatalogueEntry]]:
    """The documents (and, unless ``board_job`` builds them elsewhere, the board packs): their outputs and catalogue."""
    docs = assemble_documents(ctx, strict, formats, board_sites)
    log.info("report: %d code input(s) and %d output(s) left out; %d untagged output(s) kept",
             ctx.stats.code_inputs, ctx.stats.dropped_outputs, ctx.stats.untagged_kept)
    catalogue: list[R.CatalogueEntry] = []
    # The documents' PDFs and DOCX are made in the background (Chromium and pandoc run as processes; the
    # 50-site appendix takes Chromium about a minute) while the board packs are built and printed beside them.
    # WeasyPrint renders in this process: one document at a time, board packs queued behind the documents.
    chromium = engine == "chromium"
    with printing_sessions(), ThreadPoolExecutor(max_workers=2 if chromium else 1) as background, \
            ThreadPoolExecutor(max_workers=1) as board_printer:  # a browser a thread (report.chromium)
        made, entries = {}, {}
        for stem in sorted(docs, key=lambda d: -len(docs[d].cells)):  # the longest first: its PDF takes longest
            made[stem], entries[stem] = render_document(docs[stem], ctx, stem, formats, engine, background)
        for stem in docs:
            catalogue += [R.CatalogueEntry(e.kind, e.number, e.caption if stem == MAIN else
                                           f"{e.caption} ({DOCUMENT_TITLES[stem]})", e.name, e.anchor)
                          for e in entries[stem]]
        if board_args:
            from pcref_eval.boardpack import build_board_packs
            packs = (board_job.result() if board_job is not None else
                     build_board_packs(**board_args, printer=board_printer if chromium else background))
            _check_board_packs(packs, board_sites)
        outputs = {stem: finish_document(m, ctx, stem, formats) for stem, m in made.items()}
    return outputs, catalogue


def _board_pack_args(ctx: ReportContext, run_dir: Path, analysed: list[dict], formats: list[str], engine: str,
                     registry_url: str | None) -> dict:
    """The keyword arguments of :func:`pcref_eval.boardpack.build_board_packs` for this report (no printer)."""
    from pcref_eval.boardpack.data import previous_run_folder
    run_id = str(ctx.manifest.get("run_id", run_dir.name))
    previous = previous_run_folder(registry_url, run_id, ctx.config.outputs.dir if ctx.config is not None else None)
    return {"release": ctx.release, "sites": analysed, "reference": ctx.reference, "run_id": run_id,
            "synthetic": ctx.synthetic, "policy_text": ctx.policy.describe(), "pdf_engine": engine,
            "formats": ("html", "pdf") if "pdf" in formats else ("html",), "previous_run": previous}


def _start_board_packs(stack: ExitStack, board_args: dict) -> Future:
    """:func:`board_packs_job` started in a second (spawned) process; ``stack`` waits for it on exit.

    In a 50-site run the documents' assembly and HTML export keep one thread busy for their first ~35 s while the
    other core idles, and the packs' 200 small charts are ~50 s of one thread. Measured on such a run's report
    (2 cores, alternating): 113.6 and 114.2 s with the packs in this process, 113.0, 102.9 and 103-105 s with
    them in a second process; the appendix's PDF is then the last thing to finish. The packs are the same files
    either way (tests/report/test_boardpack.py).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from pcref_eval.runner.executors import die_with_parent
    pool = stack.enter_context(ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                                   initializer=die_with_parent))
    return pool.submit(board_packs_job, board_args)


def board_packs_job(board_args: dict):
    """Build and print the board packs (:func:`pcref_eval.boardpack.build_board_packs`) with this process's own
    Chromium session; returns the :class:`~pcref_eval.boardpack.BoardPackResult`."""
    from pcref_eval.boardpack import build_board_packs
    with printing_sessions():
        return build_board_packs(**board_args)


def _check_board_packs(packs, board_sites: list[str]) -> None:
    """Refuse board packs for other sites than the documents link (``board_sites``); log their page counts."""
    if sorted(packs.sites) != sorted(board_sites):
        raise ReportError(f"board packs were built for {sorted(packs.sites)}, the report links {sorted(board_sites)}")
    for key, n in packs.pages.items():
        log.info("board pack %s: %d page(s)", key, n)
