"""Rendering the assembled report notebook: offline HTML (nbconvert), PDF (WeasyPrint or Chromium), DOCX (pandoc).

The HTML is one self-contained file: the project template (``pcref_eval/templates/pcref_report``)
inlines its stylesheet and loads no scripts; images are data URIs. After export, :func:`finalize_html`
removes anything a browser would fetch from elsewhere (belt and braces), numbers tables and
figures, gives headings unique ids and fills the table of contents.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from bs4 import BeautifulSoup

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
TEMPLATE_NAME = "pcref_report"
#: Elements and the attributes through which a browser fetches a resource.
FETCHING_ATTRS = {"img": ["src", "srcset"], "script": ["src"], "link": ["href"], "iframe": ["src"], "frame": ["src"],
                  "embed": ["src"], "object": ["data"], "source": ["src", "srcset"], "video": ["src", "poster"],
                  "audio": ["src"], "track": ["src"], "input": ["src"], "image": ["href", "xlink:href"],
                  "use": ["href", "xlink:href"], "feimage": ["href", "xlink:href"], "base": ["href"]}
#: Tables with more columns than this go on a landscape page in print.
WIDE_TABLE_COLUMNS = 9
#: Tables with more columns than this also get a smaller print font, so that they fit a landscape page (a table
#: wider than its page makes Chromium shrink the whole document to fit).
VERY_WIDE_TABLE_COLUMNS = 18
CSS_URL = re.compile(r"url\(\s*['\"]?(?!data:|#)([^'\")]+)['\"]?\s*\)|@import", re.IGNORECASE)


def export_html(nb, resources_path: Path) -> str:
    """Render the report notebook with nbconvert's HTMLExporter and the project template."""
    from nbconvert import HTMLExporter
    exporter = HTMLExporter(template_name=TEMPLATE_NAME, extra_template_basedirs=[str(TEMPLATES)],
                            exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
                            embed_images=True, sanitize_html=False)
    import logging
    exporter.log.setLevel(logging.ERROR)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"path": str(resources_path), "name": "report"}})
    return body


def external_references(html: str) -> list[str]:
    """Every URL in ``html`` that a browser would fetch (not data: URIs, fragments or plain links).

    Read with the standard library's HTML tokenizer (the one BeautifulSoup's ``html.parser`` builder
    uses) without building a tree: the 80 MB sites appendix of a 50-site run in 1.7 s instead of 4.7 s.
    Every value of a repeated attribute is checked.
    """
    scanner = _FetchScanner()
    scanner.feed(html)
    scanner.close()
    return scanner.found + [f"<style> {m.group(0)[:80]}" for text in scanner.styles for m in CSS_URL.finditer(text)]


class _FetchScanner(HTMLParser):
    """Start tags with a fetching attribute, meta refresh or a CSS ``url()`` in ``style``; the text of ``<style>``."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.styles: list[str] = []
        self._style: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        for attr in FETCHING_ATTRS.get(tag, []):
            for name, val in attrs:
                if name == attr and val and not val.startswith(("data:", "#")):
                    self.found.append(f"<{tag} {attr}={val[:80]}>")
        values = {name: val for name, val in attrs}
        if tag == "meta" and str(values.get("http-equiv") or "").lower() == "refresh":
            self.found.append("<meta http-equiv=refresh>")
        if any(name == "style" and val and CSS_URL.search(val) for name, val in attrs):
            self.found.append(f"<{tag} style=...url(...)>")
        if tag == "style":
            self._style = []

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag == "style":
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if tag == "style" and self._style is not None:
            self.styles.append("".join(self._style))
            self._style = None

    def handle_data(self, data):
        if self._style is not None:
            self._style.append(data)


def _strip_fetching(soup: BeautifulSoup) -> int:
    """Remove scripts, frames and any element or style that would fetch a non-embedded resource."""
    doomed = list(soup.find_all(["script", "iframe", "frame", "embed", "object", "base"]))
    for tag in soup.find_all(True):
        for attr in FETCHING_ATTRS.get(tag.name.lower(), []):
            val = tag.get(attr)
            if val and not str(val).startswith(("data:", "#")):
                doomed.append(tag)
                break
        if tag.name == "meta" and str(tag.get("http-equiv", "")).lower() == "refresh":
            doomed.append(tag)
    removed = 0
    for tag in doomed:
        if not getattr(tag, "decomposed", False):
            tag.decompose()
            removed += 1
    for tag in soup.find_all(True):  # no scripting at all: event handlers and javascript: links go too
        for attr in [a for a in tag.attrs if a.lower().startswith("on")]:
            del tag[attr]
            removed += 1
        if str(tag.get("href", "")).strip().lower().startswith("javascript:"):
            del tag["href"]
            removed += 1
    for tag in soup.find_all(style=True):
        if CSS_URL.search(tag["style"]):
            del tag["style"]
            removed += 1
    for style in soup.find_all("style"):
        text = style.get_text()
        if CSS_URL.search(text):
            style.string = CSS_URL.sub("none", text)
            removed += 1
    return removed


@dataclass
class CatalogueEntry:
    """A numbered table or figure in the report."""

    kind: str
    number: int
    caption: str
    name: str
    anchor: str


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "section"


def finalize_html(html: str) -> tuple[str, list[CatalogueEntry]]:
    """Post-process exported HTML: offline, numbered, unique heading ids, table of contents, cross-references."""
    soup = BeautifulSoup(html, "html.parser")
    for a in soup.select("a.anchor-link"):
        a.decompose()
    _strip_fetching(soup)
    for el in soup.select("[tabindex]"):
        del el["tabindex"]
    for table in soup.select("table.pcref-table, table.report-table"):
        header = table.find("tr")
        n_cols = len(header.find_all(["th", "td"])) if header else 0
        wrap = table.parent if table.parent is not None and "table-wrap" in (table.parent.get("class") or []) else None
        if wrap is None:
            wrap = soup.new_tag("div", attrs={"class": "table-wrap"})
            table.wrap(wrap)
        if n_cols > WIDE_TABLE_COLUMNS:
            wrap["class"] = list(dict.fromkeys([*wrap.get("class", []), "wide"]))
            table["class"] = list(dict.fromkeys([*table.get("class", []), "wide"]))
        if n_cols > VERY_WIDE_TABLE_COLUMNS:
            table["class"] = list(dict.fromkeys([*table.get("class", []), "very-wide"]))
    for table in soup.select("table.pcref-table"):
        _p_values_below_precision(table)
        _reference_rows(table)
        _mdc_icon_cells(table)
    catalogue: list[CatalogueEntry] = []
    names: dict[str, CatalogueEntry] = {}
    by_kind: dict[tuple[str, str], CatalogueEntry] = {}
    for n, table in enumerate(soup.select("table.pcref-table, table.report-table"), 1):
        cap = table.find("caption")
        text = ""
        if cap is not None:
            strong = cap.find("strong")
            if strong is not None and strong.get_text().strip().lower().startswith("table"):
                strong.string = f"Table {n}."
            else:
                cap.insert(0, BeautifulSoup(f"<strong>Table {n}.</strong> ", "html.parser"))
            _drop_own_number(cap, "Table")
            text = cap.get_text(" ", strip=True).split(".", 1)[-1].strip()
        anchor = f"table-{n}"
        table["id"] = anchor
        entry = CatalogueEntry("table", n, text, table.get("data-pcref-table", ""), anchor)
        catalogue.append(entry)
        if entry.name:
            names[entry.name] = entry
            by_kind[("table", entry.name)] = entry
    for n, fig in enumerate(soup.select("figure.pcref-figure"), 1):
        cap = fig.find("figcaption")
        strong = cap.find("strong") if cap else None
        if strong is not None:
            strong.string = f"Figure {n}."
            _drop_own_number(cap, "Figure")
        text = cap.get_text(" ", strip=True).split(".", 1)[-1].strip() if cap else ""
        anchor = f"figure-{n}"
        fig["id"] = anchor
        entry = CatalogueEntry("figure", n, text, fig.get("data-pcref-figure", ""), anchor)
        catalogue.append(entry)
        if entry.name:
            by_kind[("figure", entry.name)] = entry
        if entry.name and entry.name not in names:  # a table and a figure may share a name: refer to the table
            names[entry.name] = entry
    for a in soup.select("a.xref[data-ref]"):
        # data-kind ("table"/"figure") picks one of a table and a figure that share a name
        kind = a.get("data-kind")
        target = by_kind.get((kind, a["data-ref"])) if kind else names.get(a["data-ref"])
        if target is None:
            a.replace_with(a.get_text())
        else:
            a["href"] = f"#{target.anchor}"
            a.string = f"{target.kind.capitalize()} {target.number}"
    seen: set[str] = set()
    toc_items: list[tuple[int, str, str]] = []
    for h in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6"]):
        if h.find_parent("nav"):
            continue
        base = _slug(h.get_text(" ", strip=True))
        hid, k = base, 2
        while hid in seen:
            hid, k = f"{base}-{k}", k + 1
        seen.add(hid)
        h["id"] = hid
        level = int(h.name[1])
        if level == 2 or (level == 3 and "toc-include" in (h.get("class") or [])):
            toc_items.append((level, hid, h.get_text(" ", strip=True)))
    nav = soup.find("nav", id="toc")
    if nav is not None:
        html_items, open_sub = [], False
        for level, hid, text in toc_items:
            if level == 2:
                if open_sub:
                    html_items.append("</ol></li>")
                    open_sub = False
                elif html_items:
                    html_items.append("</li>")
                html_items.append(f"<li><a href='#{hid}'>{_escape(text)}</a>")
            else:
                if not open_sub:
                    html_items.append("<ol>")
                    open_sub = True
                html_items.append(f"<li><a href='#{hid}'>{_escape(text)}</a></li>")
        if open_sub:
            html_items.append("</ol></li>")
        elif html_items:
            html_items.append("</li>")
        nav.append(BeautifulSoup(f"<h2 class='toc-title'>Contents</h2><ol>{''.join(html_items)}</ol>", "html.parser"))
    return str(soup), catalogue


#: A caption's own number written by the notebook author ("Table 1: ..."), which the report's numbering replaces.
OWN_NUMBER = re.compile(r"^\s*(Table|Figure)\s+\d+[a-z]?\s*[:.]\s*", re.IGNORECASE)
#: Column headers that hold p-values.
P_HEADER = re.compile(r"^(p|p value|p-value|pr|.* p)$", re.IGNORECASE)
ZEROS = re.compile(r"^0\.(0+)$")


def _drop_own_number(cap, kind: str) -> None:
    """Remove a "Table 1:" the author wrote after the report's own "Table 4." label (no double numbering)."""
    strong = cap.find("strong")
    node = strong.next_sibling if strong is not None else None
    while node is not None and isinstance(node, str) and not node.strip():
        node = node.next_sibling
    if isinstance(node, str) and OWN_NUMBER.match(node.lstrip()):
        node.replace_with(" " + OWN_NUMBER.sub("", node.lstrip(), count=1))


def _p_values_below_precision(table) -> None:
    """A p-value column's '0.00' (rounded to the table's decimals) shown as '<0.01': a p-value is never 0."""
    header = table.find("tr")
    if header is None:
        return
    cols = [i for i, th in enumerate(header.find_all(["th", "td"])) if P_HEADER.match(th.get_text(" ", strip=True))]
    if not cols:
        return
    for tr in table.find_all("tr")[1:]:
        cells = tr.find_all(["td", "th"])
        for i in cols:
            if i < len(cells):
                m = ZEROS.match(cells[i].get_text(strip=True))
                if m:
                    cells[i].string = f"<0.{'0' * (len(m.group(1)) - 1)}1"


RATIO_HEADER = re.compile(r"^(?:\w+ )?(?:rate ratio|ratio|hazard ratio|odds ratio|rr|hr|irr)$", re.IGNORECASE)
INTERVAL_HEADER = re.compile(r"\b(lower|upper|lcl|ucl)\b", re.IGNORECASE)


def _reference_rows(table) -> None:
    """The reference group's row (its ``comparison`` cell says "reference"): the ratio cell reads "reference"
    and the interval cells are left empty, rather than a dash or a ratio of the group to itself."""
    header = table.find("tr")
    if header is None:
        return
    heads = [th.get_text(" ", strip=True) for th in header.find_all(["th", "td"])]
    if "comparison" not in heads:
        return
    ratio = next((i for i, h in enumerate(heads) if RATIO_HEADER.match(h)), None)
    if ratio is None:
        return
    intervals = [i for i, h in enumerate(heads) if i > ratio and INTERVAL_HEADER.search(h)]
    where = heads.index("comparison")
    for tr in table.find_all("tr")[1:]:
        cells = tr.find_all(["td", "th"])
        if len(cells) == len(heads) and cells[where].get_text(strip=True) == "reference":
            cells[ratio].string = "reference"
            cells[ratio]["class"] = ["reference"]
            for i in intervals:
                cells[i].string = ""


def _mdc_icon_cells(table) -> None:
    """Making Data Count verdicts in 'variation' / 'assurance' columns drawn as their icons (with the words)."""
    from pcref_eval.boardpack.icons import assurance_svg, icon_label, variation_svg
    header = table.find("tr")
    if header is None:
        return
    heads = [th.get_text(" ", strip=True).lower() for th in header.find_all(["th", "td"])]
    kinds = {i: h for i, h in enumerate(heads) if h in ("variation", "assurance")}
    for tr in table.find_all("tr")[1:]:
        cells = tr.find_all(["td", "th"])
        for i, kind in kinds.items():
            if i >= len(cells):
                continue
            text = cells[i].get_text(strip=True)
            svg = (variation_svg if kind == "variation" else assurance_svg)(text, 22)
            if svg:
                cells[i].clear()
                cells[i].append(BeautifulSoup(f"{svg}<span class='icon-label'>{_escape(icon_label(text))}</span>",
                                              "html.parser"))
                cells[i]["class"] = ["mdc"]


def _escape(text: str) -> str:
    from html import escape
    return escape(text)


# ---------------------------------------------------------------------------------------------- PDF


def _offline_fetcher():
    """A WeasyPrint URL fetcher that only resolves ``data:`` URIs (the report embeds everything)."""
    try:
        from weasyprint.urls import URLFetcher  # WeasyPrint >= 66: fetchers are objects
        return URLFetcher(allowed_protocols={"data"})
    except ImportError:  # older WeasyPrint: a function
        from weasyprint import default_url_fetcher

        def fetch(url, *args, **kwargs):
            if not url.startswith("data:"):
                raise ValueError(f"report PDF: refusing to fetch {url[:80]} (reports render offline)")
            return default_url_fetcher(url, *args, **kwargs)
        return fetch


def write_pdf_weasyprint(html: str, out: Path) -> Path:
    """A4 PDF with WeasyPrint (pip-only); the same HTML, print stylesheet rules apply."""
    import logging

    import weasyprint
    for name in ("weasyprint", "fontTools"):
        logging.getLogger(name).setLevel(logging.ERROR)
    weasyprint.HTML(string=html, url_fetcher=_offline_fetcher(), base_url=str(out.parent)).write_pdf(str(out))
    from pcref_eval.report.pdf_parts import relative_file_links
    relative_file_links(out, out.parent)
    return out


#: Chrome/Chromium executables by name on PATH, then where Linux packages, snap, Flatpak and macOS put them.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
CHROMIUM_PATHS = (
    "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome", "/usr/bin/google-chrome-stable",
    "/snap/bin/chromium", "/usr/lib/chromium/chromium", "/opt/google/chrome/chrome",
    "/var/lib/flatpak/exports/bin/org.chromium.Chromium",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    "~/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
    "~/Applications/Chromium.app/Contents/MacOS/Chromium",
)


def find_chromium(path: str | None = None, candidates: tuple[str, ...] = CHROMIUM_PATHS) -> str | None:
    """Chrome or Chromium: ``PCREF_CHROMIUM`` if set, a known name on ``path`` (default PATH), else a usual place.

    ``PCREF_CHROMIUM=none`` means "do not use a browser" (PDFs by WeasyPrint; browser tests skip).
    """
    import os
    env = os.environ.get("PCREF_CHROMIUM", "").strip()
    if env:
        return None if env.lower() == "none" or not os.access(env, os.X_OK) else env
    for name in CHROMIUM_NAMES:
        found = shutil.which(name, path=path)
        if found:
            return found
    for c in candidates:
        p = Path(c).expanduser()
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def chromium_flags(user_data_dir: Path | None) -> list[str]:
    """Flags for a headless Chromium that makes no network requests of its own (profile in ``user_data_dir``:
    None leaves that flag to the caller)."""
    profile = [f"--user-data-dir={user_data_dir}"] if user_data_dir is not None else []
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
            "--disable-default-apps", "--metrics-recording-only", "--mute-audio", "--no-default-browser-check",
            "--disable-domain-reliability", "--disable-client-side-phishing-detection",
            "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication", *profile]


def write_pdf_chromium(html_path: Path, out: Path, timeout: int = 180) -> Path:
    """A4 PDF with headless Chromium (when installed); the print stylesheet sets the page size.

    A long document is printed in parts and joined (:func:`pcref_eval.report.pdf_parts.print_in_parts`);
    links to the release's other files are made relative (:func:`~pcref_eval.report.pdf_parts.relative_file_links`).
    """
    from pcref_eval.report.pdf_parts import print_in_parts
    return print_in_parts(html_path, out, lambda page, pdf: print_chromium(page, pdf, timeout),
                          link_base=html_path.parent)


def print_chromium(html_path: Path, out: Path, timeout: int = 180) -> Path:
    """``html_path`` printed by headless Chromium as it is, to ``out``.

    Inside :func:`pcref_eval.report.chromium.printing_sessions` by this thread's running browser; else (or if
    that browser fails: it is closed, the failure logged) by ``chromium --print-to-pdf``.
    """
    from pcref_eval.report import chromium as C
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("chromium is not installed; use the WeasyPrint PDF engine")
    session = C.current_session(exe, chromium_flags(None))  # the session makes its own profile
    if session is not None:
        try:
            return session.print_pdf(html_path, out)
        except C.ChromiumError as e:
            import logging
            logging.getLogger(__name__).warning("chromium session failed on %s (%s); printing it on its own",
                                                html_path.name, e)
            C.discard_session(session)
    with tempfile.TemporaryDirectory(prefix="pcref-chromium-") as tmp:
        cmd = [exe, *chromium_flags(Path(tmp)), "--no-pdf-header-footer", f"--print-to-pdf={out}",
               html_path.resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"chromium could not print the report (exit {proc.returncode}): {proc.stderr[-500:]}")
    return out


# --------------------------------------------------------------------------------------------- DOCX


def docx_html(html: str, image_dir: Path | None = None) -> str:
    """The report HTML adapted for pandoc: no contents list (Word builds its own), no footer.

    With ``image_dir``, embedded (``data:``) PNG figures are written there as files and referenced
    by name: pandoc's HTML reader is slow on long data URIs (demo report: 9.5 s -> 2.0 s).
    """
    soup = BeautifulSoup(html, "html.parser")
    for sel in ("nav.toc", "footer.report-footer", "style", "title", "meta"):
        for el in soup.select(sel):
            el.decompose()
    for sup in soup.select("sup.cite"):
        sup.string = sup.get_text()
    for svg in soup.select("svg.mdc-icon"):  # Word gets the icon's words (pandoc cannot embed inline SVG)
        label = svg.get("aria-label", "")
        svg.replace_with(BeautifulSoup(f"<span>[{_escape(label.split(': ', 1)[-1])}]</span>", "html.parser")
                         if label else "")
    if image_dir is not None:
        _figures_to_files(soup, image_dir)
    return str(soup)


def _figures_to_files(soup: BeautifulSoup, image_dir: Path) -> None:
    import base64

    prefix = "data:image/png;base64,"
    for i, img in enumerate(soup.find_all("img")):
        src = img.get("src") or ""
        if src.startswith(prefix):
            name = f"figure-{i:03d}.png"
            (image_dir / name).write_bytes(base64.b64decode(src[len(prefix):]))
            img["src"] = name


def write_docx(html: str, out: Path) -> Path:
    """Word document via pandoc (pypandoc-binary): real Word tables, embedded figures, A4 pages."""
    import pypandoc
    with tempfile.TemporaryDirectory(prefix="pcref-docx-") as tmp:
        src = Path(tmp) / "report.html"
        src.write_text(docx_html(html, image_dir=Path(tmp)), encoding="utf-8")
        pypandoc.convert_file(str(src), "docx", format="html", outputfile=str(out),
                              extra_args=[f"--resource-path={tmp}", "--toc", "--toc-depth=2",
                                          "--metadata=toc-title:Contents"])
    _polish_docx(out)
    return out


def _polish_docx(path: Path) -> None:
    """A4 portrait pages with 2 cm margins; light horizontal rules on every table."""
    import docx
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn
    from docx.shared import Cm, Mm

    doc = docx.Document(str(path))
    for section in doc.sections:
        section.page_width, section.page_height = Mm(210), Mm(297)
        for side in ("left_margin", "right_margin", "top_margin", "bottom_margin"):
            setattr(section, side, Cm(2))
    for table in doc.tables:
        tbl_pr = table._tbl.tblPr
        borders = OxmlElement("w:tblBorders")
        for edge, size in (("top", 8), ("bottom", 8), ("insideH", 4)):
            el = OxmlElement(f"w:{edge}")
            el.set(qn("w:val"), "single")
            el.set(qn("w:sz"), str(size))
            el.set(qn("w:space"), "0")
            el.set(qn("w:color"), "808080")
            borders.append(el)
        for old in tbl_pr.findall(qn("w:tblBorders")):
            tbl_pr.remove(old)
        tbl_pr.append(borders)
        if table.rows:
            for cell in table.rows[0].cells:
                for p in cell.paragraphs:
                    for run in p.runs:
                        run.bold = True
            tr_pr = table.rows[0]._tr.get_or_add_trPr()
            header = OxmlElement("w:tblHeader")
            tr_pr.append(header)
        for row in table.rows:
            tr_pr = row._tr.get_or_add_trPr()
            cant = OxmlElement("w:cantSplit")
            tr_pr.append(cant)
    for table in doc.tables:
        if len(table.columns) > WIDE_TABLE_COLUMNS:
            _landscape_section(table._tbl)
    doc.save(str(path))


def _section_break(orient: str):
    """A paragraph that ends a section laid out A4 ``orient`` ('portrait' or 'landscape'), 2 cm margins."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn
    p = OxmlElement("w:p")
    ppr = OxmlElement("w:pPr")
    sect = OxmlElement("w:sectPr")
    size = OxmlElement("w:pgSz")
    w, h = (16838, 11906) if orient == "landscape" else (11906, 16838)  # twentieths of a point: A4
    size.set(qn("w:w"), str(w))
    size.set(qn("w:h"), str(h))
    if orient == "landscape":
        size.set(qn("w:orient"), "landscape")
    margins = OxmlElement("w:pgMar")
    for side in ("top", "right", "bottom", "left"):
        margins.set(qn(f"w:{side}"), "1134")
    for side in ("header", "footer", "gutter"):
        margins.set(qn(f"w:{side}"), "0" if side == "gutter" else "709")
    sect.append(size)
    sect.append(margins)
    ppr.append(sect)
    p.append(ppr)
    return p


def _landscape_section(tbl) -> None:
    """Put a wide Word table (with its caption paragraph just before it) on its own landscape section."""
    start = tbl.getprevious()
    anchor = start if start is not None and start.tag.endswith("}p") and "Caption" in (
        "".join(start.xpath(".//w:pStyle/@w:val")) or "") else tbl
    anchor.addprevious(_section_break("portrait"))
    tbl.addnext(_section_break("landscape"))


def png_is_blank(png: bytes) -> bool:
    """True if an image is (nearly) one colour."""
    import io

    from PIL import Image, ImageStat
    with Image.open(io.BytesIO(png)) as im:
        stat = ImageStat.Stat(im.convert("L"))
        return stat.stddev[0] < 2.0


def data_uri_png(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
