"""The release check's Word reader gives the text python-docx gives, including merged cells and every header."""

import docx
import pytest
from docx.enum.section import WD_SECTION

from pcref_eval.docx_text import read_docx
from pcref_eval.release_numbers import docx_texts


@pytest.fixture
def word_file(tmp_path):
    doc = docx.Document()
    doc.add_paragraph("Intro with a tab\tand")
    doc.paragraphs[0].add_run().add_break()
    doc.paragraphs[0].add_run("a break")
    table = doc.add_table(rows=4, cols=4)
    for r, row in enumerate(table.rows):
        for c, cell in enumerate(row.cells):
            cell.text = f"r{r}c{c}"
    table.cell(0, 0).merge(table.cell(0, 1))  # horizontal span
    table.cell(1, 2).merge(table.cell(3, 2))  # vertical span over three rows
    table.cell(2, 3).paragraphs[0].add_run(" second")
    table.cell(2, 3).add_paragraph("another paragraph")
    doc.sections[0].header.paragraphs[0].text = "Header of section one"
    section = doc.add_section(WD_SECTION.NEW_PAGE)
    section.footer.is_linked_to_previous = False
    section.footer.paragraphs[0].text = "Footer of section two"
    doc.add_paragraph("Closing paragraph")
    for _ in range(5):  # sections without their own header inherit the first one's
        doc.add_section(WD_SECTION.NEW_PAGE)
    path = tmp_path / "doc.docx"
    doc.save(path)
    return path


def test_tables_and_paragraphs_match_python_docx(word_file):
    doc = docx.Document(str(word_file))
    read = read_docx(word_file)
    assert read.paragraphs == [p.text for p in doc.paragraphs]
    assert read.tables == [[[c.text for c in row.cells] for row in t.rows] for t in doc.tables]
    assert read.tables[0][0][:2] == ["r0c0\nr0c1"] * 2  # the horizontal span, repeated as python-docx does
    assert read.tables[0][3][2] == read.tables[0][1][2]  # the vertical span continues the cell above


def test_every_header_and_footer_is_read_once(word_file):
    doc = docx.Document(str(word_file))
    expected = {p.text for s in doc.sections for part in (s.header, s.footer) for p in part.paragraphs if p.text}
    read = read_docx(word_file)
    found = [p for _, ps in read.headers_footers for p in ps if p]
    assert set(found) == expected == {"Header of section one", "Footer of section two"}
    assert len(found) == 2
    assert {t for _, t in docx_texts(word_file)} >= expected

