"""Long documents printed in parts and joined (pcref_eval.report.pdf_parts), and released PDFs' links.

The second implementation is Chromium printing the same document in one piece: the joined PDF must have
the same pages (words, their places, page numbers), the same internal links and the same tag tree.
Printing tests need Chromium and poppler-utils (skip with the reason, or fail under ``CI=true``).
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
from pathlib import Path

import pikepdf
import pytest

from pcref_eval.report import pdf_parts as P
from pcref_eval.report.render import find_chromium, print_chromium, write_pdf_chromium
from tests.report.print_scale import print_scale
from tests.system import require

HEAD = "<html><head><title>t</title><style>p { margin: 0 }</style></head><body class='pcref-report'><main>"
TAIL = "</main><footer class='report-footer'>f</footer></body></html>"


def _cell(inner: str) -> str:
    return f'<div class="jp-Cell jp-CodeCell" id="cell-id={abs(hash(inner)) % 10**8}"><div class="out">{inner}</div></div>'


def _document(chapters: int, filler: int, toc: bool = True) -> str:
    links = "".join(f'<li><a href="#ch-{i}">Chapter {i}</a></li>' for i in range(chapters))
    front = _cell('<section class="title"><h1 id="title">T</h1></section>') + (
        _cell(f'<nav class="toc" id="toc"><ol>{links}</ol></nav>') if toc else "")
    body = "".join(_cell(f'<h2 class="chapter" id="ch-{i}">Chapter {i}</h2>') +
                   _cell(f"<p>{'x' * filler}</p><p><a href='#toc'>contents</a></p>") for i in range(chapters))
    return HEAD + front + body + TAIL


def _body(html: str) -> str:
    return html[html.index("<main>") + 6:html.rindex("</main>")]


def test_a_short_document_is_one_part_unchanged():
    html = _document(3, 100)
    assert P.html_parts(html, max_bytes=len(html)) == [P.HtmlPart(html)]


def test_parts_are_cut_only_at_chapter_starts_and_keep_every_cell_in_order():
    html = _document(6, 2000)
    parts = P.html_parts(html, max_bytes=3000)
    assert len(parts) == 6  # front matter travels with chapter 0; each chapter is ~2.2 kB, two do not fit
    bodies = [re.sub(r'^<div class="pcref-part-links"[^>]*>.*?</div>', "", _body(p.html)) for p in parts]
    assert "".join(bodies) == _body(html)
    for k, body in enumerate(bodies[1:], start=1):
        assert body.startswith('<div class="jp-Cell') and f'id="ch-{k}"' in body[:200], body[:200]
    assert all(P.NO_PAGE_NUMBER_CSS in p.html and p.html.endswith(TAIL) for p in parts)


def test_parts_pack_chapters_up_to_the_limit_and_a_long_chapter_stays_whole():
    html = _document(8, 2000)
    head, blocks, _ = P.chapter_blocks(html)
    assert len(blocks) == 9  # the front matter, then one block a chapter
    sizes = [len(b) for b in blocks]
    bodies = [re.sub(r'^<div class="pcref-part-links"[^>]*>.*?</div>', "", _body(p.html))
              for p in P.html_parts(html, max_bytes=7000)]
    assert len(bodies) == 3 and all(len(b) <= 7000 for b in bodies), [len(b) for b in bodies]
    first = 1 + bodies[0].count('class="chapter"')  # blocks in the first part
    assert sum(sizes[:first + 1]) > 7000, "greedy: the next chapter would not have fitted"
    html = HEAD + _cell('<h2 class="chapter" id="a">A</h2>') + _cell("<p>" + "y" * 50_000 + "</p>") + \
        _cell('<h2 class="chapter" id="b">B</h2>') + _cell("<p>z</p>") + TAIL
    parts = P.html_parts(html, max_bytes=1000)
    assert len(parts) == 2 and "y" * 50_000 in parts[0].html


def test_a_chapter_heading_inside_a_cell_after_other_content_is_not_a_cut():
    html = HEAD + _cell("<p>" + "a" * 3000 + "</p>") + _cell("<p>lead-in</p><h2 class='chapter' id='c'>C</h2>") + \
        _cell("<p>" + "b" * 3000 + "</p>") + TAIL
    head, blocks, tail = P.chapter_blocks(html)
    assert len(blocks) == 1
    assert P.html_parts(html, max_bytes=1000) == [P.HtmlPart(html)]


def test_parts_carry_stand_ins_for_links_across_parts():
    """The contents (part 0) links to chapters in later parts; each chapter links back to the contents."""
    parts = P.html_parts(_document(4, 2000), max_bytes=3000)
    assert len(parts) == 4
    assert parts[0].borrowed == {"ch-1", "ch-2", "ch-3"}
    assert all(p.borrowed == {"toc"} for p in parts[1:])
    for k, part in enumerate(parts[1:], start=1):
        extra = part.html[part.html.index('<div class="pcref-part-links"'):]
        assert '<span id="toc"></span>' in extra and f'<a href="#ch-{k}"></a>' in extra
    extra = parts[0].html[parts[0].html.index('<div class="pcref-part-links"'):]
    assert all(f'<span id="ch-{k}"></span>' in extra for k in (1, 2, 3))
    assert '<a href="#toc"></a>' not in extra  # linked from chapter 0, in this part: Chromium keeps its place


def test_a_document_without_main_cannot_be_cut():
    with pytest.raises(ValueError, match="<main>"):
        P.html_parts("<html><body>" + "x" * 100 + "</body></html>", max_bytes=10)


def _pdf_with_links(path: Path, uris: list[str]) -> None:
    pdf = pikepdf.new()
    pdf.add_blank_page()
    pdf.pages[0].obj.Annots = pikepdf.Array([
        pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Link,
                                             Rect=[0, 0, 10, 10], A=pikepdf.Dictionary(S=pikepdf.Name.URI, URI=u)))
        for u in uris])
    pdf.save(path)


def test_links_to_release_files_become_relative_and_other_local_links_go_nowhere(tmp_path):
    release = tmp_path / "my release"
    release.mkdir()
    pdf = release / "doc.pdf"
    base = release.resolve().as_uri()
    _pdf_with_links(pdf, [f"{base}/report.html", f"{base}/tables/a%20b.csv#row", "file:///home/analyst/secret.csv",
                          "https://www.england.nhs.uk/pcref"])
    assert P.relative_file_links(pdf, release) == 3
    with pikepdf.open(pdf) as doc:
        uris = [str(a.A.URI) if "/A" in a else None for a in doc.pages[0].obj.Annots]
    assert uris == [
        "report.html", "tables/a%20b.csv#row", None, "https://www.england.nhs.uk/pcref"]
    assert "analyst" not in pdf.read_bytes().decode("latin-1")
    assert P.relative_file_links(pdf, release) == 0


# ------------------------------------------------------------------------------------- printed by Chromium


def _poppler(tool: str) -> str:
    return require(shutil.which(tool), tool, "poppler-utils", "PDF page checks")


def _words(pdf: Path) -> list[list[tuple[float, float, str]]]:
    """Every page's words with their top-left corners (pdftotext -bbox)."""
    out = subprocess.run([_poppler("pdftotext"), "-bbox", str(pdf), "-"], capture_output=True, text=True,
                         check=True).stdout
    return [[(float(x), float(y), w) for x, y, w in
             re.findall(r'xMin="([\d.]+)" yMin="([\d.]+)"[^>]*>([^<]*)</word>', page)]
            for page in out.split("<page ")[1:]]


def _links(pdf: pikepdf.Pdf) -> list[tuple[int, str, int]]:
    """(page, destination name, destination page) of every internal link."""
    index = {page.objgen: i for i, page in enumerate(pdf.pages)}
    dests = {str(k): index.get(v[0].objgen) for k, v in pdf.Root.get("/Dests", {}).items()}
    return [(i, str(a.Dest), dests.get(str(a.Dest))) for i, page in enumerate(pdf.pages)
            for a in page.get("/Annots", []) if "/Dest" in a]


def _tags(pdf: pikepdf.Pdf) -> dict:
    """Counts and consistency facts of the tag (structure) tree."""
    tree = pdf.Root.StructTreeRoot
    pages = {page.objgen for page in pdf.pages}
    kinds, ids, headers, off_document = collections.Counter(), collections.Counter(), [], 0
    stack = [tree.K]
    while stack:
        node = stack.pop()
        if isinstance(node, pikepdf.Array):
            stack.extend(node)
            continue
        if not isinstance(node, pikepdf.Dictionary) or node.get("/Type") in ("/OBJR", "/MCR"):
            continue
        kinds[str(node.S)] += 1
        off_document += "/Pg" in node and node.Pg.objgen not in pages
        ids[str(node.get("/ID", ""))] += "/ID" in node
        attributes = node.get("/A")
        for a in attributes if isinstance(attributes, pikepdf.Array) else [attributes]:
            if isinstance(a, pikepdf.Dictionary) and "/Headers" in a:
                headers += [str(h) for h in a.Headers]
        if "/K" in node:
            stack.append(node.K)
    id_tree = set(pikepdf.NameTree(tree.IDTree).keys())
    keys = [int(p.obj.StructParents) for p in pdf.pages if "/StructParents" in p.obj] + [
        int(a.StructParent) for p in pdf.pages for a in p.get("/Annots", []) if "/StructParent" in a]
    parent_tree = set(pikepdf.NumberTree(tree.ParentTree).keys())
    return {"TH": kinds["/TH"], "TD": kinds["/TD"], "Table": kinds["/Table"], "Link": kinds["/Link"],
            "figures": kinds["/Figure"], "off-document pages": off_document,
            "ids repeated": sum(n > 1 for n in ids.values()), "ids not in IDTree": len(set(ids) - id_tree),
            "headers unresolved": sum(h not in id_tree for h in headers), "headers": len(headers),
            "parent keys unique": len(keys) == len(set(keys)), "parent keys in tree": set(keys) <= parent_tree}


@pytest.fixture(scope="module")
def one_and_parts(built_run, tmp_path_factory):
    """The fixture run's sites appendix printed in one piece and in three or more parts."""
    require(find_chromium(), "chromium", "chromium", "PDF printing checks")
    run_dir, _ = built_run
    html = run_dir / "release" / "appendix-sites.html"
    max_bytes = html.stat().st_size // 3
    n = len(P.html_parts(html.read_text(encoding="utf-8"), max_bytes))
    assert n >= 3, f"the fixture appendix should cut into 3+ parts, got {n}"
    out = tmp_path_factory.mktemp("parts")
    one, parts = print_chromium(html, out / "one.pdf"), out / "parts.pdf"
    P.print_in_parts(html, parts, print_chromium, max_bytes)
    assert not list(html.parent.glob(".*part*")), "the parts' files were left in the release"
    return one, parts


def test_joined_pdf_has_the_pages_of_one_print(one_and_parts):
    """Same words on every page (page numbers included) within 0.1 pt of their places in the one-piece print."""
    one, parts = (_words(p) for p in one_and_parts)
    assert len(one) == len(parts) > 10
    for i, (a, b) in enumerate(zip(one, parts), start=1):
        assert sorted(w for *_, w in a) == sorted(w for *_, w in b), f"page {i}: different words"
        a, b = sorted(a, key=lambda t: (t[2], t[0], t[1])), sorted(b, key=lambda t: (t[2], t[0], t[1]))
        assert max((abs(p[0] - q[0]) + abs(p[1] - q[1]) for p, q in zip(a, b)), default=0) < 0.1, f"page {i}"
    n = len(parts)
    numbers = [" ".join(w for *_, w in page[-4:]) for page in parts[1:]]
    assert numbers == [f"Page {i} of {n}" for i in range(2, n + 1)]
    assert "Page" not in {w for *_, w in parts[0]}, "the title page has no page number"


def test_joined_pdf_has_the_links_and_tags_of_one_print(one_and_parts):
    one, parts = (pikepdf.open(p) for p in one_and_parts)
    links = _links(parts)
    assert links == _links(one) and len(links) >= 2 and all(page is not None for *_, page in links)
    tags_one, tags_parts = _tags(one), _tags(parts)
    assert tags_parts == tags_one
    assert tags_parts["headers"] > 0 and tags_parts["ids repeated"] == 0 and tags_parts["headers unresolved"] == 0
    assert tags_parts["off-document pages"] == 0 and tags_parts["parent keys unique"]
    assert tags_parts["parent keys in tree"]
    assert any(float(p.mediabox[2]) > float(p.mediabox[3]) for p in parts.pages), "landscape pages joined too"
    assert str(parts.Root.Lang) == str(one.Root.Lang) and parts.Root.MarkInfo.Marked


def test_released_pdfs_link_to_release_files_relatively(built_run):
    """No released PDF carries a file:// link (the analyst's path); the report links its appendices by name."""
    run_dir, _ = built_run
    uris = {p.name: [str(a.A.URI) for page in pikepdf.open(p).pages for a in page.get("/Annots", [])
                     if "/A" in a and "/URI" in a.A]
            for p in (run_dir / "release").rglob("*.pdf")}
    assert not [u for us in uris.values() for u in us if u.startswith("file:")]
    assert "appendix-sites.html" in uris["report.pdf"]


def test_every_table_fits_its_page(built_run, tmp_path):
    """Nothing is wider than its page: Chromium would shrink the whole document to fit it (see print_scale)."""
    require(find_chromium(), "chromium", "chromium", "PDF printing checks")
    run_dir, _ = built_run
    for doc in ("report", "appendix-sites", "appendix-data-quality"):
        html = (run_dir / "release" / f"{doc}.html").read_text(encoding="utf-8")
        scale = print_scale(html, tmp_path, doc, print_chromium)
        assert scale == pytest.approx(1, rel=1e-3), f"{doc} is printed at {scale:.3f} of its size"


def test_write_pdf_chromium_prints_a_long_document_in_parts(built_run, tmp_path, monkeypatch):
    """The report's PDF path uses the parts printer when the HTML is over the limit (and the result is complete)."""
    require(find_chromium(), "chromium", "chromium", "PDF printing checks")
    run_dir, _ = built_run
    html = tmp_path / "appendix-sites.html"
    shutil.copy(run_dir / "release" / "appendix-sites.html", html)
    printed = []
    monkeypatch.setattr(P, "PART_BYTES", html.stat().st_size // 2)
    monkeypatch.setattr("pcref_eval.report.render.print_chromium",
                        lambda page, pdf, timeout=180: printed.append(page.name) or print_chromium(page, pdf, timeout))
    pdf = write_pdf_chromium(html, tmp_path / "out.pdf")
    assert sum(n.startswith(".appendix-sites.part-") for n in printed) >= 2 and "page-numbers.html" in printed
    text = subprocess.run([_poppler("pdftotext"), str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert len(set(re.findall(r"Table (\d+)\. ", text))) == html.read_text().count("<caption>")
