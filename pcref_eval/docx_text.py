"""The text of a Word document, read from its XML for the release check.

python-docx's ``Section.header`` walks back through every earlier section to find the header a
section inherits, and ``_Row.cells`` resolves the table grid cell by cell; on the report's site
appendix (785 sections, one per landscape table; 642 tables) reading its text that way took 60 s
of the release check. Here each header and footer part is read once, and each table cell's text
is the text of its paragraphs, as python-docx's ``_Cell.text`` gives it (checked against it in
the tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_P, _TBL, _TR, _TC = (f"{W}{t}" for t in ("p", "tbl", "tr", "tc"))
_T, _TAB, _PTAB, _BR, _CR, _NB_HYPHEN = (f"{W}{t}" for t in ("t", "tab", "ptab", "br", "cr", "noBreakHyphen"))
_RUN_TEXT = {_TAB: "\t", _PTAB: "\t", _BR: "\n", _CR: "\n", _NB_HYPHEN: "-"}


@dataclass
class DocxText:
    """Body paragraphs (outside tables), tables (rows of cell texts) and header/footer paragraphs."""

    paragraphs: list[str] = field(default_factory=list)
    tables: list[list[list[str]]] = field(default_factory=list)
    headers_footers: list[tuple[str, list[str]]] = field(default_factory=list)


def paragraph_text(p) -> str:
    """A ``w:p`` element's text: its ``w:t`` runs, tabs as tab characters and breaks as new lines."""
    out = []
    for el in p.iter(_T, _TAB, _PTAB, _BR, _CR, _NB_HYPHEN):
        out.append(el.text or "" if el.tag == _T else _RUN_TEXT[el.tag])
    return "".join(out)


def table_rows(tbl) -> list[list[str]]:
    """A ``w:tbl`` element's rows of cell texts (a cell's paragraphs joined by new lines), as python-docx's
    ``_Row.cells`` gives them: a cell spanning columns repeated once per column, a vertically merged
    continuation cell as the cell above it."""
    rows, above = [], {}
    for tr in tbl.iterchildren(_TR):
        col, row, here = _grid_before(tr), [], {}
        for tc in tr.iterchildren(_TC):
            span, merged = _cell_layout(tc)
            text = above.get(col, "") if merged else "\n".join(paragraph_text(p) for p in tc.iterchildren(_P))
            for c in range(col, col + span):
                here[c] = text
            row += [text] * span
            col += span
        rows.append(row)
        above = here
    return rows


def _grid_before(tr) -> int:
    for el in tr.iterchildren(f"{W}trPr"):
        for gb in el.iterchildren(f"{W}gridBefore"):
            return int(gb.get(f"{W}val", "0"))
    return 0


def _cell_layout(tc) -> tuple[int, bool]:
    """(columns spanned, whether it continues a vertical merge) of a ``w:tc``."""
    span, merged = 1, False
    for pr in tc.iterchildren(f"{W}tcPr"):
        for el in pr.iterchildren(f"{W}gridSpan"):
            span = int(el.get(f"{W}val", "1"))
        for el in pr.iterchildren(f"{W}vMerge"):
            merged = el.get(f"{W}val", "continue") == "continue"
    return span, merged


def read_docx(path: Path) -> DocxText:
    """Paragraphs, tables (nested ones too) and each header and footer part of the Word document at ``path``."""
    import docx
    from docx.opc.constants import RELATIONSHIP_TYPE as RT

    document = docx.Document(str(path))
    body = document.element.body
    out = DocxText(paragraphs=[paragraph_text(p) for p in body.iterchildren(_P)],
                   tables=[table_rows(tbl) for tbl in body.iter(_TBL)])
    for rel in document.part.rels.values():
        if rel.reltype in (RT.HEADER, RT.FOOTER) and not rel.is_external:
            name = "header" if rel.reltype == RT.HEADER else "footer"
            part = rel.target_part
            out.headers_footers.append((f"{name} {part.partname}", [paragraph_text(p) for p in part.element.iter(_P)]))
    return out
