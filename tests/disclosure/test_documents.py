"""Numbers a reader sees in figures and documents must be released values: planted leaks in an SVG, PNG
metadata, an HTML sentence, a PDF and a DOCX are refused naming the file and the text around them; the
grammar of non-data numbers (dates, references, versions, config values, axis scales) lets honest text pass."""

from __future__ import annotations

import zlib
import struct

import docx
import matplotlib
import pandas as pd
import pytest

from pcref_eval.publish import Aggregate, Publisher
from pcref_eval.release_check import IdSet, check_release
from pcref_eval.release_numbers import ReleasedValues, ticks_are_scale, unexplained_numbers
from tests.system import require_poppler

matplotlib.use("Agg")


def _release(tmp_path):
    """One released table: 4,613 people (released 4,615) and 476 detentions (released 475), rate 10.32."""
    df = pd.DataFrame({"group": ["White British", "Black African"], "people": [4613, 1287],
                       "detentions": [476, 163], "hr": [1.0, 2.4137]})
    Publisher(tmp_path, "site_a", display=False).release_table(
        Aggregate(df, ["people", "detentions"], model=["hr"], labels=["group"]), "table_one", "Table 1")
    return tmp_path / "release"


def _check(run):
    return [v for v in check_release(run, ids=IdSet()) if v.kind in ("unexplained_number", "unrounded_count")]


def _svg(path, texts, ticks=(), fonttype="none"):
    import matplotlib.pyplot as plt
    from pcref_eval.style import apply_style, render_figure
    apply_style()
    plt.rcParams["svg.fonttype"] = fonttype
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    if ticks:
        ax.set_yticks(list(ticks))
    for i, t in enumerate(texts):
        ax.text(0.1, 0.1 * (i + 1), t)
    render_figure(fig, path)
    plt.close(fig)


def test_released_numbers_in_every_format_pass(tmp_path):
    release = _release(tmp_path)
    _svg(release / "figures" / "site_a_people", ["n = 4,615", "HR 2.41", "HR 2.4"])
    (release / "report.html").write_text(
        "<html><head><style>p{margin:12px}</style><script>var x = 4613;</script></head><body>"
        "<h1>1. Summary</h1><p>Of 4,615 people, 475 were detained (hazard ratio 2.41, 95% CI shown in "
        "Table 2, page 3 of 12). Study window 2021-04-01 to 2025-03-31; rates per 100,000; p &lt; 0.001; "
        "pandas 2.2.3; released 1 December 2026 at 03:04 UTC; counts of 1 to 7 are redacted, the rest are rounded to the nearest 5.</p>"
        "<table><tr><th>people</th></tr><tr><td>4,615</td></tr></table></body></html>")
    assert _check(tmp_path) == []


@pytest.mark.parametrize("fonttype", ["none", "path"])  # text as text, or as glyphs with the string in a comment
def test_svg_with_an_unrounded_count_is_refused(tmp_path, fonttype):
    release = _release(tmp_path)
    _svg(release / "figures" / "site_a_people", ["n = 4,613"], fonttype=fonttype)
    v = _check(tmp_path)
    assert [(x.file, x.kind) for x in v] == [("figures/site_a_people.svg", "unexplained_number")]
    assert v[0].where.startswith("text element") and "[4,613]" in v[0].detail


def test_uneven_tick_labels_are_read_as_data(tmp_path):
    release = _release(tmp_path)
    _svg(release / "figures" / "site_a_ticks", [], ticks=(0, 476, 1287))  # ticks at the true counts
    v = _check(tmp_path)
    assert {(x.file, x.where.split(" of ")[0]) for x in v} == {("figures/site_a_ticks.svg", "tick label")}
    assert any("476" in x.detail for x in v)
    assert ticks_are_scale(["0.0", "0.5", "1.0", "1.5"]) and ticks_are_scale(["1", "10", "100"])
    assert not ticks_are_scale(["0", "476", "1287"])
    assert ticks_are_scale(["0.125", "0.25", "0.4", "0.5", "1", "1.25", "2", "3"])  # hand-picked, all "nice" numbers
    assert ticks_are_scale(["$\\mathdefault{10^{1}}$", "$\\mathdefault{10^{2}}$", "$\\mathdefault{10^{3}}$"])
    assert not ticks_are_scale(["0.125", "0.25", "0.476"])


def _png_with_text(path, key: str, value: str):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00\x00")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"tEXt", f"{key}\0{value}".encode())
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_png_metadata_with_a_count_is_refused(tmp_path):
    release = _release(tmp_path)
    _png_with_text(release / "figures" / "site_a_x.png", "Software", "Matplotlib version3.9.2, https://matplotlib.org/")
    assert _check(tmp_path) == []
    _png_with_text(release / "figures" / "site_a_x.png", "Comment", "White British detained: 476")
    v = _check(tmp_path)
    assert [(x.file, x.where) for x in v] == [("figures/site_a_x.png", "metadata 'Comment'")]


def test_html_sentence_with_an_exact_count_is_refused(tmp_path):
    release = _release(tmp_path)
    (release / "board").mkdir()
    (release / "board" / "site_a.html").write_text(
        "<html><body><p>In the last year 476 people were detained.</p>"
        "<p>The hazard ratio was 2.4137.</p></body></html>")
    v = _check(tmp_path)
    got = {(x.file, x.kind) for x in v}
    assert got == {("board/site_a.html", "unrounded_count"), ("board/site_a.html", "unexplained_number")}
    assert any("[476] people" in x.detail for x in v if x.kind == "unrounded_count")
    assert any("[2.4137]" in x.detail for x in v if x.kind == "unexplained_number")  # more decimals than released


def test_docx_with_an_exact_count_is_refused(tmp_path):
    release = _release(tmp_path)
    d = docx.Document()
    d.add_paragraph("Summary of 2024/25, Table 1.")
    d.add_paragraph("Detentions of White British people: 476 (rate unchanged).")
    d.save(release / "report.docx")
    v = _check(tmp_path)
    assert [(x.file, x.where, x.kind) for x in v] == [("report.docx", "paragraph 2", "unexplained_number")]
    assert "Detentions of White British people: [476]" in v[0].detail


def test_docx_footer_and_merged_table_cell_with_exact_counts_are_refused(tmp_path):
    release = _release(tmp_path)
    d = docx.Document()
    d.add_paragraph("Summary of 2024/25, Table 1.")
    table = d.add_table(rows=2, cols=3)
    table.rows[0].cells[0].text, table.rows[0].cells[2].text = "group", "people"
    table.rows[1].cells[0].text, table.rows[1].cells[2].text = "White British", "4,613"
    table.cell(0, 0).merge(table.cell(0, 1))
    table.cell(1, 0).merge(table.cell(1, 1))
    d.add_section()
    d.sections[1].footer.is_linked_to_previous = False
    d.sections[1].footer.paragraphs[0].text = "Detentions of White British people: 476"
    d.save(release / "report.docx")
    v = _check(tmp_path)
    assert sorted((x.file, x.kind) for x in v) == [("report.docx", "unexplained_number")] * 2, v
    assert any("[476]" in x.detail and "footer" in x.where for x in v)
    assert any("4,613" in x.detail or "4613" in x.detail for x in v)


def test_release_checked_in_two_processes_gives_the_same_violations_in_the_same_order(tmp_path):
    """A large release's figures and documents are read in a second process; the result must not change."""
    release = _release(tmp_path)
    _svg(release / "figures" / "site_a_people", ["n = 4,613", "HR 2.41"])
    (release / "report.md").write_text("Of 4,613 people, 475 were detained; 3 people moved away.\n")
    (release / "tables" / "extra.csv").write_text("group,people\nWhite British,3\n")
    serial = check_release(tmp_path, ids=IdSet(), parallel=False)
    assert {v.kind for v in serial} >= {"unexplained_number", "small_count"}
    assert check_release(tmp_path, ids=IdSet(), parallel=True) == serial


def test_pdf_with_an_exact_count_is_refused(tmp_path):
    require_poppler("pdftotext")
    import matplotlib.pyplot as plt
    release = _release(tmp_path)
    fig = plt.figure()
    fig.text(0.1, 0.5, "Black African people in the cohort: 1,287")
    fig.savefig(release / "report.pdf")
    plt.close(fig)
    v = _check(tmp_path)
    assert [(x.file, x.kind) for x in v] == [("report.pdf", "unexplained_number")]
    assert v[0].where.startswith("page 1, line") and "[1,287]" in v[0].detail


def test_grammar_of_non_data_numbers():
    known = ReleasedValues.from_release(__import__("pathlib").Path("/nonexistent"), {7.0, 5.0})
    ok = ("Study window 1 April 2021 to 31 March 2025 (2021/22 to 2024/25, 2021-04 to 2025-03, 2023 Q4). "
          "See Table 3, Figure 12 and page 2 of 39; section 136; 95% CI; per 100,000 population; p < 0.001; "
          "Python 3.11.9, lifelines 0.30.0; run at 03:04:05 UTC in 41.5 s; 3 sigma; J Am Stat Assoc 1927;22:209-212. "
          "doi:10.1080/01621459.1927.10502953; the 2nd quarter; aged 18-64 years; 12 months; pooled over 41 sites.")
    n, bad, counts = unexplained_numbers(ok, known, rounding=5, threshold=7)
    assert n > 30 and bad == [] and counts == []
    for run_id in ("20261201T160624-55481804", "20261201T145536-d22fac38", "20261201T160624- 55481804"):  # all
        # digits by chance; the last as pdftotext reads a board pack whose line wrapped after the hyphen
        line = f"Board pack · run {run_id} · built 2026-12-01 16:13 UTC"
        assert unexplained_numbers(line, known, rounding=5, threshold=7)[1:] == ([], [])
    assert [b.number for b in unexplained_numbers("Run total 55481804.", known, 5, 7)[1]] == ["55481804"]
    n, bad, counts = unexplained_numbers("A rate of 56.88 in 2,021 people (1,237 detentions).", known, 5, 7)
    assert [b.number for b in bad] == ["56.88"] and [c.number for c in counts] == ["2,021", "1,237"]
    # pdftotext runs a grid's last header into its first row (found in a 50-site cross-site board pack)
    line = "site_ak, go-live Oct 2022 Referrals via the justice system; from 1 March 2023 people were asked"
    assert unexplained_numbers(line, known, rounding=5, threshold=7)[1:] == ([], [])
    n, bad, counts = unexplained_numbers("In 2023 referrals were counted.", known, 5, 7)
    assert [c.number for c in counts] == ["2023"], "a bare year before a count word is still read as a count"


def test_released_value_explains_its_shown_decimals():
    known = ReleasedValues(values=[56.76, 0.4883, 475.0])
    assert known.explains(56.8, 1) and known.explains(57, 0) and known.explains(48.83, 2)  # 0.4883 as a percentage
    assert not known.explains(56.88, 2) and not known.explains(476, 0)


def test_a_test_results_degrees_of_freedom_explain_the_sentence_that_quotes_them(tmp_path):
    """A sentence 'chi-square = 17.92 on 26 df' passes only if the released test table holds 26 as a whole number."""
    release = _release(tmp_path)
    Publisher(tmp_path, "all", display=False).test_result("pretrend", "Pre-trend test", chi_square=17.9225, df=26,
                                                          p=0.8786)
    table = pd.read_csv(release / "tables" / "all_pretrend.csv")
    assert table.loc[0, "df"] == 26 and pd.api.types.is_integer_dtype(table["df"])
    (release / "report.html").write_text("<html><body><p>Pre-trend check: chi-square = 17.92 on 26 df, "
                                         "p = 0.879.</p></body></html>")
    assert _check(tmp_path) == []


def test_measures_assurance_targets_are_configuration_values(tmp_path):
    """SPC captions print each measure's assurance target ("Assurance target: 95."): a configuration value,
    not data (a small run whose tables held no 95 had its release withheld for it)."""
    from pcref_eval.config import EvaluationConfig, SiteConfig, write_config
    from pcref_eval.measures.defaults import default_measures
    from pcref_eval.release_numbers import config_values

    write_config(EvaluationConfig(name="t", sites=[SiteConfig(id="s", path=tmp_path)]), tmp_path / "config.yml")
    targets = {float(d.target) for d in default_measures() if d.target is not None}
    assert 95.0 in targets and targets <= config_values(tmp_path)
