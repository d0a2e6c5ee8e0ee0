"""The report: assembled from executed notebooks without code, self-contained, complete, in three formats."""

from __future__ import annotations

import json
import re

import docx
import nbformat
import pytest
from bs4 import BeautifulSoup

from pcref_eval.report import build_report
from pcref_eval.report.assemble import notebook_sections, shift_headings
from pcref_eval.report.build import sanitize_message
from pcref_eval.report.render import external_references
from pcref_eval.disclosure import DisclosurePolicy

from tests.report.conftest import FAILED_SITE, SECRETS


@pytest.fixture(scope="module")
def html(built_run) -> str:
    return built_run[1]["html"].read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def soup(html) -> BeautifulSoup:
    return BeautifulSoup(html, "html.parser")


def _appendix(built_run, stem: str) -> BeautifulSoup:
    return BeautifulSoup((built_run[0] / "release" / f"{stem}.html").read_text(encoding="utf-8"), "html.parser")


def test_all_formats_written(built_run):
    run_dir, outputs = built_run
    assert set(outputs) == {"html", "pdf", "docx"}
    for path in outputs.values():
        assert path.parent == run_dir / "release" and path.stat().st_size > 10_000
    for stem in ("appendix-sites", "appendix-data-quality"):  # the appendices, in the same formats
        for ext in ("html", "pdf", "docx"):
            assert (run_dir / "release" / f"{stem}.{ext}").stat().st_size > 5_000, (stem, ext)


def test_no_code_streams_or_unpublished_outputs(html, built_run):
    for secret in SECRETS:
        assert secret not in html, secret
    text = "\n".join(p.text for p in docx.Document(str(built_run[1]["docx"])).paragraphs)
    assert not any(s in text for s in SECRETS)
    assert "jp-InputArea-editor" not in html and "highlight" not in html


@pytest.mark.parametrize("stem", ["report", "appendix-sites", "appendix-data-quality"])
def test_html_is_self_contained(built_run, stem):
    html = (built_run[0] / "release" / f"{stem}.html").read_text(encoding="utf-8")
    soup = BeautifulSoup(html, "html.parser")
    assert external_references(html) == []
    # independently of the helper: nothing the browser would fetch
    assert soup.find_all("script") == []
    assert soup.find_all("link") == []
    for tag in soup.find_all(src=True):
        assert tag["src"].startswith("data:"), tag.name
    for tag in soup.find_all(["image", "use"]):
        assert not (tag.get("href") or tag.get("xlink:href") or "").startswith(("http", "//"))
    for style in soup.find_all("style"):
        assert not re.search(r"url\((?!\s*['\"]?data:)|@import", style.get_text())
    assert "mathjax" not in html.lower() and "require.js" not in html.lower() and "requirejs" not in html.lower()
    assert len(soup.find_all("img")) >= {"report": 1, "appendix-sites": 2, "appendix-data-quality": 0}[stem]


def test_title_page(soup, built_run):
    run_dir, _ = built_run
    manifest = json.loads((run_dir / "manifest.json").read_text())
    page = soup.select_one("section.title-page").get_text(" ", strip=True)
    assert manifest["run_id"] in page
    assert manifest["config_hash"] in page
    assert manifest["inputs"]["site_a"]["combined"] in page
    assert "pcref-eval 0.1.0" in page and "Report date" in page and "Random seed" in page
    assert "Synthetic data" in page


def test_chapter_order(soup, built_run):
    chapters = [h.get_text(strip=True) for h in soup.select("h2.chapter")]
    assert chapters[:5] == ["Summary of key findings", "Methods", "Results across sites", "Implementation effect",
                            "Limitations"]
    toc = soup.select_one("nav#toc").get_text(" ", strip=True)
    assert "Implementation effect" in toc and "Site site_a" not in toc  # per-site detail is in appendix A
    sites = _appendix(built_run, "appendix-sites")
    assert [h.get_text(strip=True) for h in sites.select("h2.chapter")][0].startswith("Site site_a")
    assert "Site site_b" in sites.select_one("nav#toc").get_text(" ", strip=True)
    dq = _appendix(built_run, "appendix-data-quality")
    assert [h.get_text(strip=True) for h in dq.select("h2.chapter")] == ["Data quality", "Provenance"]
    links = [a["href"] for a in soup.select("ul.documents a")]
    assert {"appendix-sites.html", "appendix-sites.pdf", "appendix-sites.docx",
            "appendix-data-quality.html"} <= set(links)


def test_methods_generated_from_config(soup):
    text = soup.get_text(" ", strip=True)
    for needle in ("Section 136 (place of safety, police)", "Section 3 (admission for treatment)",
                   "White British (reference)", "pcref", "Byar", "Wilson", "Dobson", "Greenwood", "Log-rank",
                   "Efron", "Aalen-Johansen", "Making Data Count", "Segmented Poisson", "Bernal JL",
                   "counts of 1 to 7 are redacted", "aged under 18"):
        assert needle in text, needle


def test_summary_answers_the_readers_questions(soup):
    summary = soup.select_one("div.key-findings").get_text(" ", strip=True)
    assert "Which groups fare worse than White British" in summary
    assert "times the White British figure" in summary and "95% CI" in summary
    assert "Is it changing?" in summary and "How sure are we?" in summary
    assert "Detention rates were higher for Black groups" in soup.get_text()  # the notebook's own summary
    assert soup.select_one("figure[data-pcref-figure='summary_key_findings'] img")


def test_summary_says_whether_the_gap_changed(soup):
    summary = soup.select_one("div.key-findings").get_text(" ", strip=True)
    assert "Ratio of hazard ratios (after / before): 0.67 (0.47 to 0.95)" in summary
    assert "Verdict: the gap narrowed" in summary
    xrefs = [a["href"] for a in soup.select("div.key-findings a.xref")]
    assert xrefs and all(h.startswith("#table-") for h in xrefs)


def test_notebook_titles_replaced_by_report_headings(soup):
    headings = [h.get_text(strip=True) for h in soup.find_all(["h1", "h2", "h3"])]
    assert "Evaluation: all sites" not in headings and "Site site_a" not in headings
    assert "Sites analysed: two." in soup.get_text()


def test_sites_not_analysed_are_explained(soup, built_run):
    text = soup.get_text(" ", strip=True)
    appendix = _appendix(built_run, "appendix-sites").get_text(" ", strip=True)
    assert f"Site {FAILED_SITE}" in appendix and "Not analysed." in appendix
    assert re.search(r"1 of 3 sites were not analysed", text)
    assert "contracts failed: site.yml" in text
    assert str(built_run[0].parent.parent) not in text  # absolute paths reduced to file names


def test_tables_and_figures_numbered_with_captions_and_alt_text(soup, built_run):
    for doc, n_figures in ((soup, 1), (_appendix(built_run, "appendix-sites"), 2)):
        captions = [c.get_text(" ", strip=True) for c in doc.select("table.pcref-table caption")]
        assert captions and all(re.match(r"Table \d+\. \S", c) for c in captions)
        figures = doc.select("figure.pcref-figure")
        assert len(figures) == n_figures
        for n, fig in enumerate(figures, 1):
            assert fig.find("figcaption").get_text(strip=True).startswith(f"Figure {n}.")
            assert len(fig.find("img")["alt"]) > 10
    catalogue = (built_run[0] / "release" / "report-figures-and-tables.md").read_text()
    assert "**Figure 1.**" in catalogue and "figures/summary_key_findings.svg" in catalogue
    assert "tables/site_a_table_one.csv" in catalogue


def test_redaction_shown_and_data_quality_aggregated(soup, built_run):
    soup = _appendix(built_run, "appendix-data-quality")
    assert soup.select("td.redacted")
    dq = soup.find("table", attrs={"data-pcref-table": "dq_site_a_failed_checks"})
    cells = [td.get_text(strip=True) for td in dq.find_all("td")]
    assert "[REDACTED]" in cells and "40" in cells  # 3 rows failing redacted, 42 rounded
    release = built_run[0] / "release"
    assert not any("example rows A10000001" in p.read_text(errors="ignore") for p in release.rglob("*.html"))


def test_docx_has_word_tables_and_embedded_figures(built_run):
    doc = docx.Document(str(built_run[1]["docx"]))
    assert len(doc.tables) >= 8
    # every figure of the HTML documents is embedded (pandoc reads them as files, not data URIs)
    for stem in ("report", "appendix-sites"):
        d = docx.Document(str(built_run[0] / "release" / f"{stem}.docx"))
        html = (built_run[0] / "release" / f"{stem}.html").read_text(encoding="utf-8")
        assert len(d.inline_shapes) == html.count("<img") >= 1
    header = [c.text for c in doc.tables[3].rows[0].cells]
    assert header and all(h for h in header)
    assert abs(doc.sections[0].page_width.mm - 210) < 1
    styles = {p.style.name for p in doc.paragraphs}
    assert {"Heading 1", "Heading 2", "Table Caption", "Image Caption"} <= styles


def test_unknown_format_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown report format"):
        build_report(tmp_path, formats=["odt"])


def test_sections_split_and_headings_shifted():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Site x\n\nIntro."),
                nbformat.v4.new_markdown_cell("## Summary\n\nText"),
                nbformat.v4.new_markdown_cell("## Rates\n\n### Detail"),
                nbformat.v4.new_markdown_cell("## Data quality")]
    title, level, sections = notebook_sections(nb)
    assert title == "Site x" and level == 2
    assert [(s.title, s.chapter) for s in sections] == [(None, "results"), ("Summary", "summary"),
                                                          ("Rates", "results"), ("Data quality", "dq")]
    assert shift_headings("## A\n```\n## code\n```\n### B", 2) == "#### A\n```\n## code\n```\n##### B"


def test_messages_sanitised_for_release():
    msg = "/secure/data/site9/people.csv: people.ethnic_category: in set (warning, 3 rows); 1234 rows bad"
    out = sanitize_message(msg, DisclosurePolicy())
    assert "/secure" not in out and "people.csv" in out
    assert "fewer than 8 rows" in out and "1,235 rows" in out


def test_finalize_strips_fetching_and_scripting():
    from pcref_eval.report.render import finalize_html
    raw = ("<html><head><link rel=icon href='http://x.invalid/y.ico'><script src='https://cdn.invalid/r.js'></script>"
           "<style>@import url(https://fonts.invalid/a.css); p{background:url(http://x.invalid/b.png)}</style></head>"
           "<body><img src='remote.png' onerror='alert(1)'><p onclick='x()'>a</p><a href='javascript:alert(1)'>z</a>"
           "<svg><image href='http://x.invalid/c.png'/></svg><div style='background:url(http://x.invalid/d.png)'>q</div>"
           "</body></html>")
    assert len(external_references(raw)) >= 6  # the detector sees every kind
    html, _ = finalize_html(raw)
    assert external_references(html) == []
    assert "onclick" not in html and "onerror" not in html and "javascript:" not in html and "<script" not in html


def _external_references_from_tree(html: str) -> list[str]:
    """The detector as it was, on a BeautifulSoup tree: the second implementation for the test below."""
    from bs4 import BeautifulSoup

    from pcref_eval.report.render import CSS_URL, FETCHING_ATTRS
    soup = BeautifulSoup(html, "html.parser")
    found = []
    for tag in soup.find_all(True):
        for attr in FETCHING_ATTRS.get(tag.name.lower(), []):
            val = tag.get(attr)
            if val and not str(val).startswith(("data:", "#")):
                found.append(f"<{tag.name} {attr}={val[:80]}>")
        if tag.name == "meta" and str(tag.get("http-equiv", "")).lower() == "refresh":
            found.append("<meta http-equiv=refresh>")
        style = tag.get("style")
        if style and CSS_URL.search(style):
            found.append(f"<{tag.name} style=...url(...)>")
    for style in soup.find_all("style"):
        for m in CSS_URL.finditer(style.get_text()):
            found.append(f"<style> {m.group(0)[:80]}")
    return found


@pytest.mark.parametrize("page", [
    "<html><head><link rel=icon href='http://x.invalid/y.ico'><script src='https://cdn.invalid/r.js'></script>"
    "<style>@import url(https://fonts.invalid/a.css); p{background:url(http://x.invalid/b.png)}</style></head>"
    "<body><img src='remote.png' srcset='a.png 2x'><img src='data:image/png;base64,AAAA'><a href='http://x.invalid'>"
    "link</a><svg><image xlink:href='http://x.invalid/c.png'/><use href='#icon'/><feImage href='f.png'/></svg>"
    "<div style='background:url(http://x.invalid/d.png)'>q</div><meta http-equiv='Refresh' content='0'>"
    "<video poster=p.jpg src=v.mp4></video><object data=o.swf></object><p>url(x) in text</p><style>"
    "b{background:url('#frag')}</style><IMG SRC='UPPER.png'/><source srcset=&#x68;ttp://x.invalid/e.png></body></html>",
    "<p>no fetches at all</p>",
])
def test_fetch_detector_equals_the_tree_walk(page):
    assert external_references(page) == _external_references_from_tree(page)
    assert len(external_references(page)) >= 12 or "no fetches" in page


def test_fetch_detector_equals_the_tree_walk_on_the_demo_report(html):
    raw = html.replace("</body>", "<img src='http://x.invalid/late.png'></body>")  # one fetch, late in a real report
    assert external_references(html) == _external_references_from_tree(html) == []
    assert external_references(raw) == _external_references_from_tree(raw) == ["<img src=http://x.invalid/late.png>"]
