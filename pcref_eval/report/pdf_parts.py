"""Printing a long document to PDF in parts, so that Chromium never lays out more than a few chapters at once.

Headless Chromium keeps the print layout of a whole document in its renderer. The 50-site sites appendix
(80 MB of HTML, 1,858 A4 pages) takes 7.0 GB for the browser in one piece (65 s; measured by sampling /proc);
printing some pages at a time (DevTools ``pageRanges``) needed more (11.7 GB), as each call lays out the
whole document again.

A document of more than :data:`PART_BYTES` of HTML is therefore cut at chapter starts into parts of at most
that size (:func:`html_parts`). Every chapter begins on a new page, so the parts' pages are the pages of one
print, provided nothing is wider than its page (Chromium would shrink each part by its own factor; the
report's tests check both). Each part is printed on its own without page numbers; :func:`join_parts` joins
them with pikepdf into one PDF, merging the parts' named destinations (the contents list's links) and their
tag trees (the structure screen readers use; table header ids are renamed apart), and stamps "Page N of M"
on every page from a document of empty pages that Chromium prints with the report's own stylesheet
(:func:`page_number_html`), so the numbers look as they do in a one-piece print. The sites appendix prints
in 11 parts in 68 s with the process tree (Python included) at 2.4 GB.

:func:`relative_file_links` rewrites the absolute ``file://`` links Chromium and WeasyPrint write for a
document's relative links.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from html import escape, unescape
from pathlib import Path

#: Documents with more HTML than this (bytes) are printed in parts of at most this size.
PART_BYTES = 8_000_000
#: Added to each part's head: the page number is stamped after joining, from the whole document's count.
NO_PAGE_NUMBER_CSS = "<style>@page { @bottom-right { content: none; } }</style>"
#: The page-number document: one empty block a page; wide (landscape) pages where the joined PDF has them.
PAGE_NUMBER_CSS = ("<style>.pcref-page-number { break-after: page; height: 1px; }"
                   " .pcref-page-number:last-child { break-after: auto; }"
                   " .pcref-page-number.wide { page: landscape; }</style>")
#: The stand-ins' box, first in the part and out of the flow: it adds no page (after the part's last forced page
#: break, even an out-of-flow box starts a page).
OUT_OF_FLOW = "position: absolute; top: 0; left: 0; width: 0; height: 0; overflow: hidden"
CELL_START = re.compile(r'<div class="jp-Cell[ "]')
CHAPTER_HEADING = re.compile(r'<h2\b[^>]*\bclass="[^"]*\bchapter\b')
#: Markup allowed between a cell's start and its chapter heading for the cell to start the chapter.
WRAPPERS = re.compile(r"<div\b[^>]*>|</div>|\s")
LOCAL_LINK = re.compile(r"""<a\b[^>]*\shref=(?:"#([^"]+)"|'#([^']+)')""")
ELEMENT_ID = re.compile(r"""<[a-zA-Z][^>]*\sid=(?:"([^"]+)"|'([^']+)')""")


def chapter_blocks(html: str) -> tuple[str, list[str], str]:
    """``(head, blocks, tail)``: ``<main>``'s content cut before every cell that opens with a chapter heading.

    ``head`` ends with ``<main>``, ``tail`` starts with ``</main>``; the first block holds what comes
    before the first chapter (title page, contents).
    """
    start, end = html.find("<main>"), html.rfind("</main>")
    if start < 0 or end < start:
        raise ValueError("report HTML has no <main> element to cut into parts")
    start += len("<main>")
    head, body, tail = html[:start], html[start:end], html[end:]
    cells = [m.start() for m in CELL_START.finditer(body)] + [len(body)]
    cuts = [0]
    for cell, following in zip(cells, cells[1:]):
        heading = CHAPTER_HEADING.search(body, cell, following)
        if cell > 0 and heading and not WRAPPERS.sub("", body[body.index(">", cell) + 1:heading.start()]):
            cuts.append(cell)
    cuts.append(len(body))
    return head, [body[a:b] for a, b in zip(cuts, cuts[1:])], tail


@dataclass(frozen=True)
class HtmlPart:
    """One part of a document to print: its HTML, and the ids it only holds as stand-ins for other parts' links."""

    html: str
    borrowed: frozenset[str] = frozenset()


def html_parts(html: str, max_bytes: int | None = None) -> list[HtmlPart]:
    """The document as standalone HTML parts of at most ``max_bytes`` each (a longer chapter stays whole).

    Consecutive chapters are packed greedily. One part is the document itself, unchanged. Two or more
    carry :data:`NO_PAGE_NUMBER_CSS` (their numbers are stamped after joining). Chromium keeps a link only
    to an id of its own document and writes a named destination only for an id linked from it, so each
    part starts with empty stand-ins for the ids its links point at in other parts (``borrowed``;
    :func:`join_parts` points them at the real ones) and empty links to its ids that other parts link to,
    in a box at the start of the part that takes no space.
    """
    max_bytes = max_bytes or PART_BYTES
    if len(html.encode("utf-8")) <= max_bytes:
        return [HtmlPart(html)]
    head, blocks, tail = chapter_blocks(html)
    groups: list[list[str]] = [[]]
    size = 0
    for block in blocks:
        n = len(block.encode("utf-8"))
        if groups[-1] and size + n > max_bytes:
            groups.append([])
            size = 0
        groups[-1].append(block)
        size += n
    if len(groups) == 1:
        return [HtmlPart(html)]
    if "</head>" not in head:
        raise ValueError("report HTML has no </head> to add the parts' print style to")
    head = head.replace("</head>", NO_PAGE_NUMBER_CSS + "</head>", 1)
    bodies = ["".join(group) for group in groups]
    links = [{a or b for a, b in LOCAL_LINK.findall(body)} for body in bodies]  # ids as written in the HTML
    held = [{a or b for a, b in ELEMENT_ID.findall(body)} for body in bodies]
    parts = []
    for k, body in enumerate(bodies):
        borrowed = sorted(links[k] - held[k])
        lent = sorted(held[k] & set().union(*(links[j] for j in range(len(bodies)) if j != k)) - links[k])
        extra = "".join(f'<span id="{_attr(i)}"></span>' for i in borrowed) + \
            "".join(f'<a href="#{_attr(i)}"></a>' for i in lent)
        parts.append(HtmlPart(head + (f'<div class="pcref-part-links" style="{OUT_OF_FLOW}">{extra}</div>'
                                      if extra else "") + body + tail,
                              frozenset(unescape(i) for i in borrowed)))
    return parts


def _attr(value: str) -> str:
    """An attribute value as written (either quote style) re-written for a double-quoted attribute."""
    return escape(unescape(value))


def page_number_html(html: str, wide: list[bool]) -> str:
    """A document of ``len(wide)`` empty pages in ``html``'s head (stylesheet): its page margins carry the numbers."""
    head = html[:html.index("<body")]
    pages = "".join(f'<div class="pcref-page-number{" wide" if w else ""}"></div>' for w in wide)
    return head.replace("</head>", PAGE_NUMBER_CSS + "</head>", 1) + f"<body><main>{pages}</main></body></html>"


def print_in_parts(html_path: Path, out: Path, print_pdf: Callable[[Path, Path], Path],
                   max_bytes: int | None = None, link_base: Path | None = None) -> Path:
    """Print ``html_path`` to ``out`` with ``print_pdf(html, pdf)``: in one piece, or in parts joined by pikepdf.

    ``max_bytes``: the parts' size limit (default :data:`PART_BYTES`). ``link_base``: make links to files
    under it relative (:func:`relative_file_links`).
    """
    html = html_path.read_text(encoding="utf-8")
    parts = html_parts(html, max_bytes)
    if len(parts) == 1:
        print_pdf(html_path, out)
        if link_base is not None:
            relative_file_links(out, link_base)
        return out
    with tempfile.TemporaryDirectory(prefix=".pcref-parts-", dir=out.parent) as tmp:
        pdfs = []
        for i, part in enumerate(parts):  # one at a time: each needs Chromium's memory for its own layout
            page = html_path.with_name(f".{html_path.stem}.part-{i:03d}.html")  # its relative links resolve as the
            try:                                                                # document's do
                page.write_text(part.html, encoding="utf-8")
                pdfs.append(print_pdf(page, Path(tmp) / f"part-{i:03d}.pdf"))
            finally:
                page.unlink(missing_ok=True)
        numbers = Path(tmp) / "page-numbers.html"
        numbers.write_text(page_number_html(html, page_orientations(pdfs)), encoding="utf-8")
        stamps = print_pdf(numbers, Path(tmp) / "page-numbers.pdf")
        joined = Path(tmp) / "joined.pdf"
        join_parts(pdfs, stamps, joined, [part.borrowed for part in parts], link_base)
        joined.replace(out)
    return out


def page_orientations(pdfs: list[Path]) -> list[bool]:
    """For every page of ``pdfs`` in order: is it wider than tall (a landscape page)?"""
    import pikepdf
    wide = []
    for path in pdfs:
        with pikepdf.open(path) as pdf:
            wide += [float(p.mediabox[2] - p.mediabox[0]) > float(p.mediabox[3] - p.mediabox[1]) for p in pdf.pages]
    return wide


def join_parts(parts: list[Path], stamps: Path, out: Path, borrowed: list[frozenset[str]] | None = None,
               link_base: Path | None = None) -> Path:
    """One tagged PDF from Chromium's part PDFs, with each page overlaid by the same page of ``stamps``.

    The first part gives the catalogue (language, title, viewer preferences). Later parts' pages are
    appended; their structure elements join the first part's document element, their parent-tree keys
    (``/StructParents``, ``/StructParent``) are shifted past the keys already used, their element ids
    are prefixed with the part's number (with the table ``/Headers`` that cite them) and their named
    destinations are added to the catalogue's ``/Dests``, except those in ``borrowed[k]`` (part k's
    stand-ins for ids held by other parts: see :func:`html_parts`). With ``link_base``, links to files under
    it are made relative (:func:`relative_file_links`) before the one save.
    """
    import pikepdf
    with pikepdf.open(parts[0]) as joined:
        tree = joined.Root.StructTreeRoot
        document = _document_element(tree)
        numbers = pikepdf.NumberTree(tree.ParentTree)
        ids = pikepdf.NameTree(tree.IDTree) if "/IDTree" in tree else pikepdf.NameTree.new(joined)
        borrowed = borrowed or [frozenset()] * len(parts)
        for k, path in enumerate(parts[1:], start=1):
            with pikepdf.open(path) as part:
                _append_part(joined, part, k, document, numbers, ids, borrowed[k])
        tree.IDTree = ids.obj
        tree.ParentTreeNextKey = max(numbers.keys(), default=-1) + 1
        _stamp_pages(joined, stamps)
        if link_base is not None:
            _relative_links(joined, link_base)
        joined.save(out)
    return out


def _document_element(tree):
    """The structure tree's root element (Chromium writes one ``/Document``) with its kids as an array."""
    import pikepdf
    document = tree.K[0] if isinstance(tree.K, pikepdf.Array) else tree.K
    if not isinstance(document.get("/K"), pikepdf.Array):
        document.K = pikepdf.Array([document.K] if "/K" in document else [])
    return document


def _append_part(joined, part, k: int, document, numbers, ids, borrowed: frozenset[str]) -> None:
    """Move ``part``'s pages, structure, ids and destinations into ``joined`` (see :func:`join_parts`)."""
    import pikepdf
    offset = max(numbers.keys(), default=-1) + 1
    for page in part.pages:
        if "/StructParents" in page.obj:
            page.obj.StructParents = int(page.obj.StructParents) + offset
        for annot in page.obj.get("/Annots", []):
            if "/StructParent" in annot:
                annot.StructParent = int(annot.StructParent) + offset
    tree = part.Root.StructTreeRoot
    _rename_ids(part, f"p{k}-")
    joined.pages.extend(part.pages)  # before the structure: its /Pg and /Obj then point at the copied pages
    kids = _copy(joined, part, _document_element(tree).K)
    for kid in kids:
        if isinstance(kid, pikepdf.Dictionary):
            kid.P = document
        document.K.append(kid)
    for key, value in pikepdf.NumberTree(tree.ParentTree).items():
        numbers[int(key) + offset] = _copy(joined, part, value)
    if "/IDTree" in tree:
        for name, element in pikepdf.NameTree(tree.IDTree).items():
            ids[name] = _copy(joined, part, element)
    if "/Dests" in part.Root:
        dests = joined.Root.get("/Dests")
        if dests is None:
            joined.Root.Dests = dests = pikepdf.Dictionary()
        for name, dest in part.Root.Dests.items():
            if name[1:] not in borrowed:  # names are "/id"
                dests[name] = _copy(joined, part, dest)


def _copy(joined, part, obj):
    """``obj`` of ``part`` copied into ``joined``; its references to pages already copied point at the copies."""
    return joined.copy_foreign(obj if obj.is_indirect else part.make_indirect(obj))


def _rename_ids(pdf, prefix: str) -> None:
    """Prefix every structure element id of ``pdf`` (and the ``/Headers`` entries citing them) with ``prefix``."""
    import pikepdf
    tree = pdf.Root.StructTreeRoot
    if "/IDTree" in tree:
        renamed = pikepdf.NameTree.new(pdf)
        for name, element in pikepdf.NameTree(tree.IDTree).items():
            element.ID = pikepdf.String(prefix + name)
            renamed[prefix + name] = element
        tree.IDTree = renamed.obj
    stack = [tree.K]
    while stack:
        node = stack.pop()
        if isinstance(node, pikepdf.Array):
            stack.extend(node)
        elif isinstance(node, pikepdf.Dictionary):
            attributes = node.get("/A")
            if attributes is not None:
                for attr in attributes if isinstance(attributes, pikepdf.Array) else [attributes]:
                    if isinstance(attr, pikepdf.Dictionary) and "/Headers" in attr:
                        attr.Headers = pikepdf.Array([pikepdf.String(h if str(h).startswith(prefix) else prefix + str(h))
                                                      for h in attr.Headers])
            if "/K" in node:
                stack.append(node.K)


def _stamp_pages(pdf, stamps: Path) -> None:
    """Overlay page i of ``stamps`` on page i of ``pdf``, marked as an artifact (not part of the tag tree)."""
    import pikepdf
    with pikepdf.open(stamps) as numbers:
        if len(numbers.pages) != len(pdf.pages):
            raise RuntimeError(f"page-number document has {len(numbers.pages)} pages, the joined PDF "
                               f"{len(pdf.pages)}: the parts did not lay out as one document")
        for page, stamp in zip(pdf.pages, numbers.pages):
            form = pdf.copy_foreign(stamp.as_form_xobject())
            name = page.add_resource(form, pikepdf.Name.XObject, prefix="PageNo")
            page.contents_add(pikepdf.Stream(pdf, b"q\n"), prepend=True)
            page.contents_add(pikepdf.Stream(pdf, b"\nQ\n/Artifact BMC q " + str(name).encode() + b" Do Q EMC\n"))


def relative_file_links(pdf_path: Path, base: Path) -> int:
    """Rewrite ``pdf_path``'s links to local files under ``base`` as relative links; unlink other local files.

    Chromium writes a relative ``href`` (``report.html``, ``tables/x.csv``) as an absolute ``file://`` URI
    of the folder it printed in: a path of the analyst's machine in a released file, and a broken link
    once the release is moved. Returns the number of links changed.
    """
    import pikepdf
    with pikepdf.open(pdf_path, allow_overwriting_input=True) as pdf:
        changed = _relative_links(pdf, base)
        if changed:
            pdf.save(pdf_path)
    return changed


def _relative_links(pdf, base: Path) -> int:
    """:func:`relative_file_links` on an open PDF (not saved)."""
    import os
    from urllib.parse import quote, unquote, urlsplit

    import pikepdf
    base = base.resolve()
    changed = 0
    for page in pdf.pages:
        for annot in page.obj.get("/Annots", []):
            action = annot.get("/A")
            uri = str(action.get("/URI", "")) if action is not None else ""
            if not uri.startswith("file:"):
                continue
            changed += 1
            parts = urlsplit(uri)
            target = Path(unquote(parts.path))
            if target.is_relative_to(base):
                action.URI = pikepdf.String(quote(os.path.relpath(target, base)) +
                                            (f"#{parts.fragment}" if parts.fragment else ""))
            else:  # outside the release: the link is kept as a box that goes nowhere
                del annot["/A"]
    return changed
