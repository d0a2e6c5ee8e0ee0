"""The reviewer-visible faults of issue 14, each with a test that would fail if it came back.

p-values printed as 0.00; double numbering ("Table 4. Table 1: ..."); "Not stated"/"Missing" ethnicity
reported as groups that fare worse; counterfactual curves running off the axes; unreadable log-scale
ticks and a cut-off title on the implementation forest plot; "a increase"; MDC verdicts as words rather
than icons; data quality in great-expectations jargon; Kaplan-Meier groups unexplained; Word without a
contents page or landscape pages; a main report too long; Chrome found only on a Linux PATH; tests that
fail without Chromium.
"""

from __future__ import annotations

import re
import subprocess
import zipfile

import numpy as np
import pandas as pd
import pytest
from bs4 import BeautifulSoup

from pcref_eval.report.render import finalize_html, png_is_blank
from tests.system import require, require_poppler


def _table(caption: str, header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td class='num'>{c}</td>" for c in r) + "</tr>" for r in rows)
    return (f"<html><body><table class='pcref-table' data-pcref-table='t'><caption><strong>Table:</strong> "
            f"{caption}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>")


def test_no_double_numbering_of_tables_and_figures():
    html = _table("Table 1: characteristics of the cohort by ethnic group", ["group", "n"], [["A", "10"]])
    html = html.replace("</body>", "<figure class='pcref-figure'><img src='data:image/png;base64,AA=='>"
                                   "<figcaption><strong>Figure:</strong> Figure 2. Time to detention</figcaption>"
                                   "</figure></body>")
    out, _ = finalize_html(html)
    soup = BeautifulSoup(out, "html.parser")
    assert soup.find("caption").get_text(" ", strip=True) == "Table 1. characteristics of the cohort by ethnic group"
    assert soup.find("figcaption").get_text(" ", strip=True) == "Figure 1. Time to detention"


def test_p_values_never_print_as_zero():
    html = _table("Focus-group hazard ratio", ["quantity", "estimate", "p", "level change p"],
                  [["before", "2.90", "0.00", "0.000"], ["after", "1.80", "0.04", "0.963"]])
    out, _ = finalize_html(html)
    cells = [[td.get_text() for td in tr.find_all("td")] for tr in BeautifulSoup(out, "html.parser").select("tbody tr")]
    assert cells[0][2:] == ["<0.01", "<0.001"]
    assert cells[1][2:] == ["0.04", "0.963"]
    assert cells[0][1] == "2.90"  # other columns untouched


def test_board_verdicts_are_icons_in_report_tables():
    html = _table("Board summary", ["measure", "variation", "assurance"],
                  [["Detentions", "special cause improvement low", "consistent fail"], ["CTOs", "", ""]])
    soup = BeautifulSoup(finalize_html(html)[0], "html.parser")
    first = soup.select("tbody tr")[0].find_all("td")
    assert first[1].find("svg")["aria-label"] == "Variation: Improving (lower)"
    assert first[2].find("svg")["aria-label"] == "Assurance: Will reliably miss the target"
    assert "special cause" not in soup.get_text()
    assert not soup.select("tbody tr")[1].find("svg")  # no chart: no icon


def test_unrecorded_ethnicity_is_not_a_group_that_fares_worse(tmp_path):
    from pcref_eval.report.summary import ratio_rows
    (tmp_path / "tables").mkdir()
    pd.DataFrame({"group": ["White British", "Black African", "Not stated", "Missing", "Not known"],
                  "hazard_ratio": [1.0, 2.1, 1.3, 1.25, 1.2], "hr_lower": [1.0, 1.9, 1.1, 1.05, 1.02],
                  "hr_upper": [1.0, 2.3, 1.5, 1.45, 1.4]}).to_csv(tmp_path / "tables" / "all_hr.csv", index=False)
    index = {"entries": [{"kind": "table", "name": "hr", "caption": "HR", "files": ["tables/all_hr.csv"]}]}
    rows, _ = ratio_rows(tmp_path, index, "White British")
    assert [r.group for r in rows] == ["Black African"]


def test_main_report_summary_treats_unrecorded_ethnicity_as_data_quality(built_run):
    soup = BeautifulSoup(built_run[1]["html"].read_text(encoding="utf-8"), "html.parser")
    glance = " ".join(t.get_text(" ", strip=True) for t in soup.select("table.glance-table"))
    assert glance and not re.search(r"Not stated|Not known|Missing", glance)
    assert "not an ethnic group" in soup.get_text(" ", strip=True)


def test_km_broad_groups_explained_beside_pcref_hazard_ratios(built_run):
    text = BeautifulSoup(built_run[1]["html"].read_text(encoding="utf-8"), "html.parser").get_text(" ", strip=True)
    assert "Why two sets of groups" in text and "five broad ethnic groups" in text


def test_data_quality_in_plain_words(built_run):
    from pcref_eval.contracts.report import plain_check_name, plain_check_text
    assert plain_check_name("expect_column_values_to_be_in_set") == "valid code"
    assert plain_check_text("people.x: expect_column_values_to_not_be_null (error, 3 rows)") == \
        "people.x: value filled in (error, 3 rows)"
    dq = (built_run[0] / "release" / "appendix-data-quality.html").read_text(encoding="utf-8")
    assert "expect_" not in dq
    assert "valid code" in dq and "end date not before start date" in dq


def test_an_increase_not_a_increase():
    from pcref_eval.measures.board import _with_article
    assert _with_article("increase") == "an increase" and _with_article("decrease") == "a decrease"


def test_counterfactual_line_stops_at_the_axis():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pcref_eval.measures.implementation import _clipped_line
    fig, ax = plt.subplots()
    ax.set_ylim(0, 10)
    x = pd.Series(pd.date_range("2024-01-01", periods=6, freq="MS"))
    assert _clipped_line(ax, x, [5, 7, 9, 12, 20, 40], 10, "k") is True
    ys = np.concatenate([ln.get_ydata() for ln in ax.get_lines()])
    assert ys.max() <= 10 and len(ax.get_lines()) == 2  # the line and the arrow at its last visible point
    assert _clipped_line(ax, x, [1, 2, 3, 4, 5, 6], 10, "k") is False
    plt.close(fig)


def test_implementation_charts_keep_every_line_inside_the_axes(board_run):
    """On the synthetic sites: no fitted or counterfactual line is drawn beyond the y axis limits."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pcref_eval.measures import site_measures
    from pcref_eval.measures.board import registry_for
    from pcref_eval.measures.implementation import forest_chart, implementation_effects, implementation_chart
    from pcref_eval.session import open_site
    run_dir, _, ctx = board_run
    s = open_site(run_dir / "config.yml", "site_a", run_dir, display=False)
    defs = [d for d in registry_for(s) if d.id in ("detentions", "ri_incidents", "adverse_pathway")]
    effects = [e for e in implementation_effects(site_measures(s, defs), defs, s.site.info.pcref_go_live,
                                                 ctx.reference) if e.result is not None]
    assert effects
    for e in effects:
        fig = implementation_chart(e, ctx.reference, s.pub.policy, "site_a")
        for ax in fig.axes:
            top = ax.get_ylim()[1]
            for line in ax.get_lines():
                y = np.asarray(line.get_ydata(), dtype=float)
                y = y[np.isfinite(y)]
                assert not y.size or y.max() <= top * 1.0001, (e.definition.id, y.max(), top)
        plt.close(fig)
    released = pd.read_csv(run_dir / "release" / "tables" / "site_a_implementation_effect.csv",
                           na_values=["[REDACTED]"])
    fig = forest_chart(released)
    fig.canvas.draw()
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels and all(re.fullmatch(r"\d+(\.\d+)?", t) for t in labels), labels  # no 3x10^-1 overlaps
    title = fig.texts[0]
    box = title.get_window_extent(fig.canvas.get_renderer())
    assert title.get_text().startswith("Level change") and box.x1 <= fig.bbox.x1  # the title fits the figure
    plt.close(fig)


def test_word_has_contents_and_landscape_pages_for_wide_tables(built_run):
    import docx
    path = built_run[0] / "release" / "appendix-sites.docx"
    xml = zipfile.ZipFile(path).read("word/document.xml").decode()
    main_xml = zipfile.ZipFile(built_run[1]["docx"]).read("word/document.xml").decode()
    assert re.search(r"TOC \\o", main_xml), "no contents field in the Word report"
    doc = docx.Document(str(path))
    wide = [t for t in doc.tables if len(t.columns) > 9]
    if not wide:
        pytest.skip("fixture appendix has no table wider than 9 columns")
    assert 'w:orient="landscape"' in xml
    assert any(s.orientation == 1 for s in doc.sections)  # WD_ORIENT.LANDSCAPE


def test_main_report_summary_page_renders_with_its_headings(built_run, tmp_path):
    """The main report's summary page as a picture: not blank; its PDF text carries the summary headings."""
    pdf = built_run[1]["pdf"]
    pdftotext = require_poppler("pdftotext")
    pages = subprocess.run([pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True,
                           check=True).stdout.split("\f")
    assert len(pages) - 1 <= 30
    summary = next(i for i, p in enumerate(pages) if "Summary of key findings" in p and "Contents" not in p) + 1
    text = "\n".join(pages[summary - 1:summary + 1])
    for heading in ("Summary of key findings", "Which groups fare worse than White British"):
        assert heading in text, heading
    subprocess.run([require_poppler("pdftoppm"), "-f", str(summary), "-l", str(summary), "-r", "50", "-png",
                    str(pdf), str(tmp_path / "page")], check=True, timeout=120)
    assert not png_is_blank(next(tmp_path.glob("page*.png")).read_bytes())


def test_chrome_found_where_macos_and_linux_put_it(tmp_path, monkeypatch):
    from pcref_eval.report.render import CHROMIUM_PATHS, find_chromium
    assert "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome" in CHROMIUM_PATHS
    assert "/Applications/Chromium.app/Contents/MacOS/Chromium" in CHROMIUM_PATHS
    assert "/snap/bin/chromium" in CHROMIUM_PATHS
    monkeypatch.delenv("PCREF_CHROMIUM", raising=False)
    fake = tmp_path / "Google Chrome.app" / "Contents" / "MacOS" / "Google Chrome"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    empty = tmp_path / "bin"
    empty.mkdir()
    assert find_chromium(path=str(empty), candidates=(str(fake),)) == str(fake)  # not on PATH, still found
    assert find_chromium(path=str(empty), candidates=(str(tmp_path / "nope"),)) is None
    monkeypatch.setenv("PCREF_CHROMIUM", "none")
    assert find_chromium() is None


def test_missing_system_package_skips_with_reason_but_fails_in_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="pdftoppm is not installed.*poppler-utils"):
        require(None, "pdftoppm", "poppler-utils", "PDF page rendering")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true requires it"):
        require(None, "pdftoppm", "poppler-utils")
    assert require("/usr/bin/x", "x", "y") == "/usr/bin/x"


def test_cross_reference_to_a_figure_that_shares_a_tables_name_names_the_figure():
    """'Change over time is also shown in ...' cites a figure's caption, so it must name the figure, not the table."""
    from pcref_eval.report.render import finalize_html

    html = ("<html><body>"
            "<table class='pcref-table' data-pcref-table='trend'><caption><strong>Table.</strong> Trend</caption>"
            "<tr><td>1</td></tr></table>"
            "<figure class='pcref-figure' data-pcref-figure='trend'><img alt=''/>"
            "<figcaption><strong>Figure.</strong> Trend chart</figcaption></figure>"
            "<p><a class='xref' data-ref='trend' data-kind='figure'>figure</a> and "
            "<a class='xref' data-ref='trend'>table</a></p></body></html>")
    out, _ = finalize_html(html)
    soup = BeautifulSoup(out, "html.parser")
    links = [(a.get_text(), a["href"]) for a in soup.select("a.xref")]
    assert links == [("Figure 1", "#figure-1"), ("Table 1", "#table-1")]
