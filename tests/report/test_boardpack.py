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
from pcref_eval.boardpack.build import MAX_SITE_PAGES, pdf_page_count
from pcref_eval.boardpack.icons import ASSURANCE, VARIATION, assurance_svg, normalise_icon, variation_svg
from pcref_eval.report.render import png_is_blank
from tests.report.conftest import SITE_IDS
from tests.system import require_poppler


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
    assert result.pages["cross-site-summary"] <= 2


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
    assert D.change_words(row) == ("ratio fell 38%", "better")
    row.improvement = "increase"  # e.g. positive experience: a falling ratio is worse
    assert D.change_words(row)[1] == "worse"
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
