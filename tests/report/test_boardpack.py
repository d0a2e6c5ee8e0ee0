"""Board packs and the cross-site summary: built from released tables only, short, with icons, readable.

The ``board_run`` fixture (conftest) publishes the real board, implementation-effect and gap tables of the two synthetic test
sites (the same library calls as the site and cross-site notebooks, through the real Publisher), then
builds the packs with WeasyPrint (pip only). Page images need poppler (``tests.system``).
"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from bs4 import BeautifulSoup

from pcref_eval.boardpack import data as D
from pcref_eval.boardpack.build import (FIT_STEPS, MAX_SITE_PAGES, cross_site_html, pdf_page_count, site_pack_html,
                                         sites_grid_html, write_cross_site_on_one_page, write_pdf)
from pcref_eval.boardpack.icons import ASSURANCE, VARIATION, assurance_svg, normalise_icon, variation_svg
from pcref_eval.report.render import png_is_blank
from tests.report.conftest import SITE_IDS
from tests.report.print_scale import print_scale
from tests.system import require_chromium, require_poppler


def _released_numbers(release) -> set[str]:
    """Every number in the released CSVs, as printed with 2 decimals (and 1 and 0)."""
    out = set()
    for path in (release / "tables").glob("*.csv"):
        for v in pd.to_numeric(pd.read_csv(path, dtype=str).stack(), errors="coerce").dropna():
            out |= {f"{v:.2f}", f"{v:.1f}", f"{v:,.0f}"}
    return out


def test_packs_written_for_every_analysed_site_within_four_pages(board_run):
    run_dir, result, _ = board_run
    assert set(result.sites) == set(SITE_IDS)
    for sid in SITE_IDS:
        paths = result.sites[sid]
        assert paths["html"] == run_dir / "release" / "board" / f"{sid}.html"
        assert paths["pdf"].read_bytes()[:5] == b"%PDF-"
        assert 1 <= result.pages[sid] <= MAX_SITE_PAGES, (sid, result.pages[sid])
    assert result.cross_site["pdf"].exists()
    assert result.pages["cross-site-summary"] == 1


def test_grid_has_every_core_measure_with_icons_drawn_as_svg(board_run):
    run_dir, result, ctx = board_run
    summary = pd.read_csv(run_dir / "release" / "tables" / "site_a_board_summary.csv")
    soup = BeautifulSoup(result.sites["site_a"]["html"].read_text(), "html.parser")
    grid = soup.select_one("table.grid")
    text = grid.get_text(" ", strip=True)
    for measure in summary["measure"]:
        assert measure in text, measure
    headers = [th.get_text(" ", strip=True) for th in grid.find_all("th")]
    assert headers[1:4] == ["Black (all focus groups)", "White British", "Ratio (95% CI) 1 = no difference"]
    charted = summary["variation"].notna().sum()
    icons = grid.select("svg.mdc-icon")
    assert len(icons) >= charted  # a variation icon per charted measure (plus assurance icons)
    # each icon is the one the released summary names, shown as a picture with words for screen readers
    labels = [i["aria-label"] for i in icons]
    for v in summary["variation"].dropna():
        assert f"Variation: {VARIATION[normalise_icon(v)][2]}" in labels
    assert "common cause" not in text and "consistent fail" not in text  # verdicts are icons, not jargon
    # the page draws its own icons: no image file, no external reference
    assert not soup.select("img[src^='http']") and "<script" not in str(soup)


def test_plain_words_use_released_numbers_and_state_uncertainty(board_run):
    run_dir, result, ctx = board_run
    release = run_dir / "release"
    board = D.load_site_board(release, "site_a", "", None, ctx.reference)
    paras = D.plain_summary(board)
    text = " ".join(paras)
    assert "95% confidence interval" in text and "chance" in text
    released = _released_numbers(release)
    numbers = re.findall(r"(?<![\w.])\d+\.\d+", text)
    assert numbers, text
    missing = [n for n in numbers if n not in released]
    assert not missing, f"numbers not in any released table: {missing}"
    det = board.row("detentions")
    assert f"{det.gap.estimate:.2f} times the White British figure" in text


def test_icons_recomputed_from_released_series_match_the_released_summary(board_run):
    """The small SPC charts are drawn from released series: their icons equal the board summary's."""
    from pcref_eval.spc import xmr, xmr_summary
    run_dir, _, ctx = board_run
    board = D.load_site_board(run_dir / "release", "site_a", "", None, ctx.reference)
    checked = 0
    for mid, series in board.series.items():
        row = board.row(mid)
        if not row.variation:
            continue
        d = series[np.isfinite(series["vs_reference"])]
        res = xmr(d["vs_reference"].to_numpy(float), pd.to_datetime(d["period"]), improvement=row.improvement,
                  target=1.0)
        assert xmr_summary(res).variation.replace("_", " ") == row.variation
        checked += 1
    assert checked >= 1


def test_what_changed_since_the_previous_run(board_run, tmp_path):
    run_dir, _, ctx = board_run
    board = D.load_site_board(run_dir / "release", "site_a", "", None, ctx.reference)
    assert "No earlier run" in D.previous_changes(board, None)[0]
    # a previous run whose detention ratio was 0.5 lower and whose first charted measure read differently
    prev = tmp_path / "runs" / "20240101T000000-00000000"
    (prev / "release" / "tables").mkdir(parents=True)
    old = pd.read_csv(run_dir / "release" / "tables" / "site_a_board_summary.csv")
    row = old.index[old["measure"] == board.row("detentions").measure][0]
    old.loc[row, "vs_reference_12m"] -= 0.5
    current = str(old.loc[row, "variation"])  # plant a reading different from this run's
    planted = "special cause improvement low" if current == "special cause concern high" else "special cause concern high"
    old.loc[row, "variation"] = planted
    old.to_csv(prev / "release" / "tables" / "site_a_board_summary.csv", index=False)
    changes = D.previous_changes(board, prev)
    assert changes[0] == f"Compared with run {prev.name}:"
    assert any(board.row("detentions").measure in c and "→" in c for c in changes)
    from pcref_eval.boardpack.icons import icon_label
    was = icon_label(planted.replace(" ", "_")).lower()
    assert any(f"was “{was}”" in c for c in changes), changes


def test_previous_run_found_through_the_registry(tmp_path):
    from pcref_eval.runner.registry import Registry
    outputs = tmp_path / "outputs"
    url = f"sqlite:///{tmp_path / 'reg.sqlite'}"
    reg = Registry(url)
    for run_id, status in (("20250101T000000-a", "ok"), ("20250201T000000-b", "failed"), ("20250301T000000-c", "ok")):
        (outputs / "runs" / run_id).mkdir(parents=True)
        reg.record_start(run_id, outputs, {"started": run_id, "status": status}, "serial")
        with reg.engine.begin() as con:
            from sqlalchemy import update

            from pcref_eval.runner.registry import runs_table
            con.execute(update(runs_table).where(runs_table.c.run_id == run_id).values(status=status))
    reg.close()
    # the newest finished run before this one, skipping the failed run
    assert D.previous_run_folder(url, "20250301T000000-c", outputs).name == "20250101T000000-a"
    assert D.previous_run_folder(url, "20250101T000000-a", outputs) is None
    assert D.previous_run_folder(None, "x", outputs) is None


def test_cross_site_summary_answers_whether_the_gap_narrowed(board_run):
    run_dir, result, ctx = board_run
    soup = BeautifulSoup(result.cross_site["html"].read_text(), "html.parser")
    answer = soup.select_one("p.answer").get_text(" ", strip=True)
    pooled = pd.read_csv(run_dir / "release" / "tables" / "all_gap_pooled.csv")
    re_row = pooled[pooled["label"].str.contains("random", case=False)].iloc[0]
    assert f"{re_row['estimate']:.2f} times its value before" in answer
    assert f"95% CI {re_row['lower']:.2f} to {re_row['upper']:.2f}" in answer
    verdict = "Yes" if re_row["upper"] < 1 else ("No" if re_row["lower"] > 1 else "Not clearly")
    assert answer.startswith(verdict)
    heads = [th.get_text(" ", strip=True) for th in soup.select("table.grid th")]
    assert len(heads) == 1 + len(SITE_IDS)


def test_interval_verdicts_and_change_words():
    iv = D.Interval
    assert D.interval_verdict(iv(2.0, 1.5, 2.6)) == "higher"
    assert D.interval_verdict(iv(0.6, 0.5, 0.8)) == "lower"
    assert D.interval_verdict(iv(1.1, 0.9, 1.3)) == "unclear"
    assert D.interval_verdict(iv(np.nan, 1, 2)) == "unavailable"
    row = D.BoardRow("x", "X", "%", "decrease", "ratio", 1, 1, iv(2, 1.5, 2.5), iv(0.62, 0.5, 0.76), "", "", "")
    assert D.change_words(row) == ("ratio fell 38%: better", "better")
    row.improvement = "increase"  # e.g. positive experience: a falling ratio is worse, and the words say so
    assert D.change_words(row) == ("ratio fell 38%: worse", "worse")
    row.change = iv(4.02, 1.3, 12.0)  # not "rose 302%"
    assert D.change_words(row) == ("ratio rose to 4.02 times its level: better", "better")
    row.change = iv(0.004, 0.001, 0.02)  # not "fell 100%"
    assert D.change_words(row) == ("ratio fell to 0.004 times its level: worse", "worse")
    row.change = iv(0.9, 0.7, 1.1)
    assert D.change_words(row) == ("no clear change", "unclear")


def test_icons_are_distinct_self_contained_svg():
    shapes = {variation_svg(k) for k in VARIATION} | {assurance_svg(k) for k in ASSURANCE}
    assert len(shapes) == len(VARIATION) + len(ASSURANCE)
    for svg in shapes:
        assert svg.startswith("<svg") and "<title>" in svg and "href" not in svg
    assert variation_svg("special cause improvement low") == variation_svg("special_cause_improvement_low")
    assert variation_svg("") == "" and assurance_svg(None) == ""


def test_page_count_without_a_pdf_library(board_run):
    _, result, _ = board_run
    pdf = result.sites["site_a"]["pdf"]
    exe = shutil.which("pdfinfo")
    if exe:  # an independent count where poppler is installed
        out = subprocess.run([exe, str(pdf)], capture_output=True, text=True, check=True).stdout
        assert int(re.search(r"Pages:\s+(\d+)", out).group(1)) == result.pages["site_a"]
    else:
        assert pdf_page_count(pdf) in (0, result.pages["site_a"])  # compressed object streams hide /Count


def test_first_page_renders_with_its_headings(board_run, tmp_path):
    """The board pack's first page as a picture: not blank, and the PDF text carries the expected headings."""
    _, result, _ = board_run
    pdf = result.sites["site_a"]["pdf"]
    text = subprocess.run([require_poppler("pdftotext"), "-f", "1", "-l", "1", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    for heading in ("BOARD PACK", "In plain words", "PCREF core measures"):
        assert heading.lower() in text.lower(), heading
    subprocess.run([require_poppler("pdftoppm"), "-f", "1", "-l", "1", "-r", "50", "-png", str(pdf),
                    str(tmp_path / "page")], check=True, timeout=120)
    png = next(tmp_path.glob("page*.png")).read_bytes()
    assert not png_is_blank(png)


# ------------------------------------------------------------------- words say which way things moved


def _row(mid, variation, comparison="ratio", improvement="decrease"):
    iv = D.Interval(1.2, 1.1, 1.3)
    return D.BoardRow(mid, mid.capitalize(), "%", improvement, comparison, 1, 1, iv, None, variation, "", "s")


def test_chart_signals_split_improvement_from_deterioration():
    rows = [_row("a", "special cause improvement low"), _row("b", "special_cause_improvement_high", comparison=""),
            _row("c", "special cause concern high"), _row("d", "special cause neutral low"),
            _row("e", "common cause"), _row("f", "common cause"), _row("g", "")]
    text = D.chart_signals(rows)
    assert text == ("Of 6 measures with a monthly or quarterly chart, 4 changed in a way unlikely to be chance "
                    "(special cause variation): 2 improved (A: ratio lower; B: value higher), 1 got worse (C: ratio "
                    "higher) and 1 moved where neither direction is better (D: ratio lower). The other 2 varied only "
                    "as expected from month to month.")
    # only deteriorations: nothing may read as improvement
    worse = D.chart_signals([_row("c", "special cause concern high"), _row("e", "common cause")])
    assert "1 got worse (C: ratio higher)" in worse and "improv" not in worse and "The other one varied" in worse
    assert D.chart_signals([_row("e", "common cause")]).startswith("None of the 1 charted")
    assert D.chart_signals([_row("g", "")]) == ""


def test_plain_words_count_the_released_signals(board_run):
    """The improved / worse counts in the words equal those counted from the released board summary."""
    run_dir, _, ctx = board_run
    summary = pd.read_csv(run_dir / "release" / "tables" / "site_a_board_summary.csv")
    v = summary["variation"].dropna().str.replace("_", " ")
    improved, worse = v.str.contains("improvement").sum(), v.str.contains("concern").sum()
    board = D.load_site_board(run_dir / "release", "site_a", "", None, ctx.reference)
    text = " ".join(D.plain_summary(board))
    assert "show a change" not in text  # the old wording that hid the direction
    if improved or worse:
        assert f"{improved + worse + v.str.contains('neutral').sum()} changed in a way unlikely to be chance" in text
    assert (f"{improved} improved (" in text) is bool(improved)
    assert (f"{worse} got worse (" in text) is bool(worse)
    assert f"Of {len(v)} measure" in text or len(v) == 0


@pytest.mark.parametrize(("before", "after", "change", "words"), [
    (2.64, 1.40, (0.53, 0.43, 0.66), "narrowed"),
    (1.20, 2.00, (1.67, 1.2, 2.3), "widened"),
    (1.30, 0.70, (0.54, 0.4, 0.7), "reversed (the group detained more often changed)"),
    (0.80, 0.50, (0.62, 0.5, 0.8), "widened"),  # the focus group detained less, and even less after
    (2.00, 1.80, (0.90, 0.7, 1.1), "has not clearly changed"),
])
def test_gap_movement_is_judged_from_distance_to_parity(before, after, change, words):
    iv = D.Interval
    assert D.gap_movement(iv(*change), iv(before, before, before), iv(after, after, after)) == words


def test_gap_movement_without_before_and_after_says_only_fell_or_rose():
    assert D.gap_movement(D.Interval(0.6, 0.5, 0.7)).startswith("fell")
    assert D.gap_movement(D.Interval(1.6, 1.2, 2.0), None, None).startswith("rose")


def test_difference_measures_say_higher_or_lower_not_a_signed_number():
    row = _row("honos", "", comparison="difference")
    row.unit, row.gap = "mean change", D.Interval(-1.2, -2.0, -0.4)
    text = D._gap_sentence(row, "Black", "White British", "HoNOS change")
    assert text.startswith("HoNOS change: for Black people, 1.20 lower than for White British people (difference "
                           "-1.20, 95% confidence interval -2.00 to -0.40)")
    assert "chance" not in text
    row.unit, row.gap = "%", D.Interval(3.0, -1.0, 7.0)
    text = D._gap_sentence(row, "Black", "White British", "X")
    assert "3.00 percentage points higher than" in text and text.endswith("which could be chance")


# ---------------------------------------------------------------------------------- page counts


def _six_sites(board_run):
    """The demo's size: 6 sites (the two test sites' released boards, each shown three times, long names)."""
    import copy
    run_dir, _, ctx = board_run
    release = run_dir / "release"
    boards = []
    for i in range(3):
        for sid in SITE_IDS:
            b = copy.deepcopy(D.load_site_board(release, sid, "", pd.Timestamp("2023-04-01"), ctx.reference))
            b.site_id, b.name = f"{sid}_{i}", f"Urban and suburban mental health trust {i}"
            boards.append(b)
    cross = D.load_cross_site(release, boards)
    cross.per_site = {b.site_id: cross.per_site.get(b.site_id[:-2]) for b in boards}
    return cross


def _pdfinfo_pages(pdf) -> int:
    out = subprocess.run([require_poppler("pdfinfo"), str(pdf)], capture_output=True, text=True, check=True).stdout
    assert "A4" in re.search(r"Page size:.*", out).group(0), out
    return int(re.search(r"Pages:\s+(\d+)", out).group(1))


@pytest.mark.parametrize("engine", ["weasyprint", "chromium"])
def test_cross_site_summary_of_six_sites_is_one_a4_page_without_shrinking(board_run, tmp_path, engine):
    """6 sites x every core measure fits one A4 landscape page in the default type size (pdfinfo counts)."""
    if engine == "chromium":
        require_chromium()
    cross = _six_sites(board_run)
    html = tmp_path / "cross.html"
    html.write_text(cross_site_html(cross, "run", True, fit=FIT_STEPS[0]), encoding="utf-8")
    pdf, pages = write_pdf(html, engine)
    assert _pdfinfo_pages(pdf) == pages == 1
    soup = BeautifulSoup(html.read_text(), "html.parser")
    assert len(soup.select("table.sites thead th")) == 1 + 6
    assert len(soup.select("table.sites tbody tr")) == len(cross.sites[0].rows) + 1  # + the detention gap row


def test_cross_site_summary_shrinks_type_rather_than_run_over(board_run, tmp_path):
    """With 6 more measures (19 rows + the gap row), the summary is printed again in smaller type until it is one page."""
    cross = _six_sites(board_run)
    for b in cross.sites:
        b.rows = b.rows + [D.BoardRow(**{**r.__dict__, "measure": r.measure + " (second copy)"}) for r in b.rows[:6]]
    pdf, pages = write_cross_site_on_one_page(cross, tmp_path / "cross.html", "run", True, "weasyprint")
    assert pages == 1
    body = BeautifulSoup((tmp_path / "cross.html").read_text(), "html.parser").body["class"]
    assert set(body) & set(FIT_STEPS[1:]), body  # it had to shrink, and the HTML kept is the one printed


def test_cross_site_grid_of_many_sites_is_one_table_per_six_sites_each_within_the_page(board_run, tmp_path):
    """A national run (here 20 sites) gets tables of at most 6 sites, every site once and in order; printed by
    Chromium, nothing is wider than the page (a probe word keeps its width: Chromium shrinks a page that overflows)."""
    require_chromium()
    import copy
    cross = _six_sites(board_run)
    sites = [copy.deepcopy(cross.sites[i % 6]) for i in range(20)]
    for i, b in enumerate(sites):
        b.site_id = f"s{i:02d}"
    cross.per_site = {b.site_id: cross.per_site[cross.sites[0].site_id] for b in sites}
    cross.sites = sites
    soup = BeautifulSoup(sites_grid_html(cross), "html.parser")
    tables = soup.select("table.sites")
    assert [len(t.select("thead th")) - 1 for t in tables] == [6, 6, 6, 2]
    assert [s.get_text().split(",")[0] for s in soup.select("thead th .unit")] == [b.site_id for b in sites]
    assert all(len(t.select("tbody tr")) == len(sites[0].rows) + 1 for t in tables)

    page = cross_site_html(cross, "run", True, fit=FIT_STEPS[0])
    scale = print_scale(page, tmp_path, "grid", lambda html, pdf: write_pdf(html, "chromium")[0])
    assert scale == pytest.approx(1, rel=1e-3)


def test_site_packs_printed_by_chromium_are_at_most_four_pages(board_run, tmp_path):
    require_chromium()
    run_dir, _, ctx = board_run
    for sid in SITE_IDS:
        board = D.load_site_board(run_dir / "release", sid, "Inner-city trust", pd.Timestamp("2023-04-01"),
                                  ctx.reference)
        html = tmp_path / f"{sid}.html"
        html.write_text(site_pack_html(board, "run", True, "counts under 10 suppressed"), encoding="utf-8")
        pdf, pages = write_pdf(html, "chromium")
        assert 1 <= _pdfinfo_pages(pdf) == pages <= MAX_SITE_PAGES


def test_pooled_answer_says_narrowed_only_when_the_focus_group_was_detained_more_before():
    site = D.SiteBoard("s", "", None, "", "White British", "Black", [], gap_before=D.Interval(2.0, 1.5, 2.6))
    x = D.CrossSiteBoard([site], D.Interval(0.7, 0.55, 0.9), "Pooled (random effects)", None, {"s": None})
    assert D.pooled_answer(x).startswith("Yes: the detention gap narrowed")
    site.gap_before = D.Interval(0.8, 0.6, 1.1)
    assert D.pooled_answer(x).startswith("Not as expected: the detention hazard ratio fell")


def test_a_difference_in_the_ratio_column_is_labelled_as_a_difference(board_run):
    run_dir, result, _ = board_run
    soup = BeautifulSoup(result.sites["site_a"]["html"].read_text(), "html.parser")
    summary = pd.read_csv(run_dir / "release" / "tables" / "site_a_board_summary.csv")
    diff_measures = set(summary.loc[summary["comparison"] == "difference", "measure"])
    assert diff_measures  # the default measures include the paired HoNOS change
    for tr in soup.select("table.grid tbody tr"):
        name = tr.select_one("td.m").contents[0]
        cell = tr.find_all("td")[3].get_text(" ", strip=True)
        assert ("difference, not a ratio" in cell) is (name in diff_measures and cell != "not shown"), (name, cell)


def test_board_packs_built_in_a_second_process_are_the_same_files(board_run, tmp_path, monkeypatch):
    """Many-site reports build the board packs in a spawned process beside the documents
    (``BOARD_PROCESS_SITES``): the packs, their PDFs' page counts and the documents are the same as in-process."""
    from pcref_eval.report import build as B
    src, _, _ = board_run
    board_files = {}
    real_start = B._start_board_packs
    for label, threshold in (("in process", 10 ** 6), ("second process", 0)):
        run = tmp_path / label.replace(" ", "-") / src.name
        shutil.copytree(src, run)
        shutil.rmtree(run / "release" / "board")
        monkeypatch.setattr(B, "BOARD_PROCESS_SITES", threshold)
        spawned = []
        monkeypatch.setattr(B, "_start_board_packs", lambda *a: spawned.append(1) or real_start(*a))
        B.build_report(run, formats=["html", "pdf"])
        assert len(spawned) == (label == "second process")
        board_files[label] = {p.relative_to(run).as_posix(): (p.read_bytes() if p.suffix == ".html"
                                                              else pdf_page_count(p))
                              for p in sorted((run / "release" / "board").iterdir())}
        # the documents too (but nbformat's random cell ids)
        board_files[label]["report.html"] = re.sub(r'id="cell-id=[0-9a-f-]+"', "",
                                                   (run / "release" / "report.html").read_text(encoding="utf-8"))
    assert sorted(board_files["in process"]) == sorted(board_files["second process"])
    expected = {f"release/board/{sid}.{ext}" for sid in SITE_IDS for ext in ("html", "pdf")}
    assert expected <= set(board_files["in process"])
    for name, content in board_files["in process"].items():
        assert board_files["second process"][name] == content, name


def test_a_failing_board_pack_process_fails_the_report(board_run, tmp_path, monkeypatch):
    """An error while the second process builds the packs reaches the caller (no half-built report passes)."""
    from pcref_eval.report import build as B
    src, _, _ = board_run
    run = tmp_path / src.name
    shutil.copytree(src, run)
    (run / "release" / "tables" / f"{SITE_IDS[0]}_board_summary.csv").write_text("not,a\nboard,summary\n")
    monkeypatch.setattr(B, "BOARD_PROCESS_SITES", 0)
    with pytest.raises(Exception, match="measure"):
        B.build_report(run, formats=["html"])
