"""Issue 14, main report: at most 30 A4 pages; per-site and long tables moved out; the reference group
shown as "reference" (no ratio to itself); a forest plot whose lower limit is 0 draws without warnings."""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings

import nbformat
import numpy as np
import pandas as pd
import pytest
from bs4 import BeautifulSoup

from pcref_eval.report.assemble import Section, html_output
from tests.system import require_poppler

MAX_MAIN_REPORT_PAGES = 30


# ------------------------------------------------------------------------------ reference group


def test_reference_group_has_no_rate_ratio_to_itself():
    from pcref_eval.descriptive import crude_rates_by_group
    events = pd.DataFrame({"group": ["White British"] * 40 + ["Black African"] * 30 + ["Not stated"] * 5})
    population = pd.DataFrame({"ethnic_category": ["A", "N", "Z"], "population": [100_000, 20_000, 0]})
    t = crude_rates_by_group(events, population, "pcref", "White British", 2.0).data.set_index("group")
    assert t.loc["White British", ["rate_ratio", "rr_lower", "rr_upper"]].isna().all()
    assert t.loc["White British", "comparison"] == "reference"
    assert t.loc["Black African", "comparison"] == "vs White British"
    # Black African: (30 / 40,000) / (40 / 200,000) person-years
    assert t.loc["Black African", "rate_ratio"] == pytest.approx((30 / 40_000) / (40 / 200_000))
    assert t.loc["White British", "rate"] == pytest.approx(40 / 200_000 * 1e5)


def test_released_rates_table_says_reference_with_no_interval(built_run):
    """In the released CSV the reference row has no ratio and says 'reference'; in the report the ratio cell
    reads 'reference' and the interval cells are empty; the release check accepts the table."""
    from pcref_eval.release_attack import derived_violations, load_release
    run_dir, _ = built_run
    csv = pd.read_csv(run_dir / "release" / "tables" / "site_a_crude_rates.csv", dtype=str, keep_default_na=False)
    ref = csv[csv["group"] == "White British"].iloc[0]
    assert ref["comparison"] == "reference" and ref["rate_ratio"] == ref["rr_lower"] == ref["rr_upper"] == ""
    others = csv[(csv["comparison"] == "vs White British")]
    assert len(others) >= 3 and (others["rate_ratio"] != "").all()
    found = []
    derived_violations(load_release(run_dir / "release"), lambda *a: found.append(a))
    assert not [f for f in found if "crude_rates" in f[0]], found
    soup = BeautifulSoup((run_dir / "release" / "appendix-sites.html").read_text(encoding="utf-8"), "html.parser")
    table = soup.find("table", attrs={"data-pcref-table": "site_a_crude_rates"})
    heads = [th.get_text(" ", strip=True) for th in table.find("tr").find_all("th")]
    row = next(tr for tr in table.find_all("tr")[1:] if tr.find("td").get_text(strip=True) == "White British")
    cells = {h: td.get_text(strip=True) for h, td in zip(heads, row.find_all("td"))}
    assert cells["rate ratio"] == "reference" and cells["rr lower"] == cells["rr upper"] == ""
    assert cells["comparison"] == "reference"


def test_reference_rows_only_where_the_comparison_says_so():
    from pcref_eval.report.render import finalize_html
    html = ("<html><body><table class='pcref-table' data-pcref-table='t'><caption><strong>Table:</strong> x</caption>"
            "<thead><tr><th>group</th><th>rate ratio</th><th>rr lower</th><th>rr upper</th><th>comparison</th></tr>"
            "</thead><tbody><tr><td>White British</td><td>–</td><td>–</td><td>–</td><td>reference</td></tr>"
            "<tr><td>Black African</td><td>3.10</td><td>2.50</td><td>3.90</td><td>vs White British</td></tr>"
            "</tbody></table></body></html>")
    soup = BeautifulSoup(finalize_html(html)[0], "html.parser")
    rows = [[td.get_text(strip=True) for td in tr.find_all("td")] for tr in soup.select("tbody tr")]
    assert rows[0] == ["White British", "reference", "", "", "reference"]
    assert rows[1] == ["Black African", "3.10", "2.50", "3.90", "vs White British"]


# ------------------------------------------------------------------------------ forest plot axis


def test_forest_plot_with_a_zero_lower_limit_draws_without_warnings():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pcref_eval.report.summary import RatioRow, forest_plot, log_axis_limits
    rows = [RatioRow("m", "t", "Black African", None, 2.4, 2.0, 2.9),
            RatioRow("m", "t", "Other", None, 0.5, 0.0, 7.1),       # interval from 0: bar to the edge
            RatioRow("m", "t", "Mixed", None, 0.0, 0.0, 4.5)]       # ratio 0: cannot be drawn on a log axis
    assert log_axis_limits(rows) == pytest.approx((0.4, 7.1 * 1.25))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = forest_plot(rows, "White British")
        fig.canvas.draw()
    ax = fig.axes[0]
    assert ax.get_xlim()[0] == pytest.approx(0.4) and ax.get_xlim()[1] == pytest.approx(7.1 * 1.25)
    assert "Mixed (ratio 0, not drawn)" in [t.get_text() for t in ax.get_yticklabels()]
    plt.close(fig)


# ------------------------------------------------------------------------------ routing


def _table_out(name: str, caption: str = "c"):
    return nbformat.v4.new_output("display_data", data={"text/html": f"<table data-pcref-table='{name}'></table>"},
                                  metadata={"pcref": {"kind": "table", "name": name, "caption": caption}})


def _note(text: str):
    return nbformat.v4.new_output("display_data", data={"text/markdown": text}, metadata={"pcref": {"kind": "note"}})


def test_routing_moves_site_benchmarks_to_appendix_and_long_tables_to_csv():
    from pcref_eval.report.routing import route_sections
    cell = nbformat.v4.new_code_cell(source="")
    cell.outputs = [_note("England, 2023/24: ratio 3.54."), _table_out("all_benchmark_site_a"),
                    _note("Trust RV5 (X): NHS England published 2,100 detentions."), _table_out("all_benchmark_site_b"),
                    _note("All detentions, 2023/24: ICBs vary more than chance allows."),
                    _table_out("all_benchmark_icb_detentions", "Every ICB's published rate"),
                    _table_out("all_gap_pooled")]
    es = nbformat.v4.new_code_cell(source="")
    es.outputs = [_table_out("all_event_study_ri_incidents", "Event study, quarter by quarter")]
    sections = [Section("Benchmark", 2, "results", [nbformat.v4.new_markdown_cell("## Benchmark"), cell]),
                Section("Attribution", 2, "results", [es])]
    calls = []

    def summary():
        calls.append(1)
        return [html_output("<p>SUMMARY</p>", "table")]

    routed = route_sections(sections, ["site_a", "site_b"], summary)
    assert calls == [1]
    assert routed.moved == ["all_benchmark_site_a", "all_benchmark_site_b"]
    assert routed.csv_only == ["all_benchmark_icb_detentions", "all_event_study_ri_incidents"]
    site_a = [o for c in routed.by_site["site_a"] for o in c.outputs]
    assert [o["metadata"]["pcref"]["kind"] for o in site_a] == ["table", "note"]  # the trust note moves with it
    assert [o["metadata"]["pcref"]["kind"] for c in routed.by_site["site_b"] for o in c.outputs] == ["table"]
    kept = routed.main[0].cells[1].outputs
    texts = [str(o["data"].get("text/html", o["data"].get("text/markdown"))) for o in kept]
    assert texts[0].startswith("England") and texts[1] == "<p>SUMMARY</p>"
    assert texts[2].startswith("All detentions, 2023/24: ICBs vary")  # not a trust note: stays
    assert "tables/all_benchmark_icb_detentions.csv" in texts[3] and "<table" not in texts[3]
    assert "all_gap_pooled" in texts[4]
    assert "tables/all_event_study_ri_incidents.csv" in str(routed.main[1].cells[0].outputs[0]["data"])


def test_benchmark_summary_copies_released_values(tmp_path):
    from pcref_eval.report.routing import benchmark_summary_table
    (tmp_path / "tables").mkdir()
    base = {"period": "2023/24", "icb": "QKK", "site_white_count": "370"}
    pd.DataFrame([
        {**base, "measure": "All detentions", "group": "Black or Black British", "site_count": "285", "site_ratio": "1.97",
         "site_ratio_lower": "1.68", "site_ratio_upper": "2.29", "icb_ratio": "3.36", "england_std_ratio": "3.54"},
        {**base, "measure": "All detentions", "group": "White", "site_count": "370", "site_ratio": "1.0",
         "site_ratio_lower": "0.87", "site_ratio_upper": "1.15", "icb_ratio": "1.0", "england_std_ratio": "1.0"},
        {**base, "measure": "Uses of CTOs", "group": "Black or Black British", "site_count": "[REDACTED]",
         "site_ratio": "", "site_ratio_lower": "", "site_ratio_upper": "", "icb_ratio": "", "england_std_ratio": "7.07"},
    ]).to_csv(tmp_path / "tables" / "all_benchmark_site_a.csv", index=False)
    t = benchmark_summary_table(tmp_path, ["site_a", "site_b"])
    assert len(t) == 1
    row = t.iloc[0].to_dict()
    assert row["detentions: site ratio (95% CI)"] == "1.97 (1.68 to 2.29)"
    assert row["detentions: ICB ratio (published)"] == "3.36"
    assert row["CTOs: site ratio (95% CI)"] == "not shown (too few people)"
    assert row["CTOs: England ratio (published, standardised)"] == "7.07"
    assert "CTOs: ICB ratio (published)" not in t.columns  # not published for any site: no column
    assert t.attrs["years"] == ["2023/24"] and "year" not in t.columns  # the year goes in the caption


def test_long_before_after_table_is_shown_by_its_ratio_rows(tmp_path):
    """The sensitivity table (before, after and their ratio per analysis) shown by one ratio row per analysis,
    copied from the released CSV; the full table is then CSV only."""
    from pcref_eval.report.routing import change_rows, route_sections
    (tmp_path / "tables").mkdir()
    rows = []
    for analysis, ratio in (("Main analysis", "0.626"), ("Leaving out site_a", "0.811")):
        rows += [{"analysis": analysis, "quantity": "Hazard ratio before go-live", "people": "73510",
                  "estimate": "2.451", "lower": "2.264", "upper": "2.654", "pi_lower": ""},
                 {"analysis": analysis, "quantity": "Ratio of hazard ratios (after / before)", "people": "73510",
                  "estimate": ratio, "lower": "0.555", "upper": "0.964", "pi_lower": ""}]
    pd.DataFrame(rows).to_csv(tmp_path / "tables" / "all_sensitivity.csv", index=False)
    t = change_rows(tmp_path, "all_sensitivity")
    assert list(t.columns) == ["analysis", "estimate", "lower", "upper"]  # no counts; empty columns dropped
    assert t["estimate"].tolist() == ["0.626", "0.811"]
    cell = nbformat.v4.new_code_cell(source="")
    cell.outputs = [_table_out("all_sensitivity", "Sensitivity analyses")]
    routed = route_sections([Section("S", 2, "results", [cell])], [],
                            compact={"all_sensitivity": lambda meta: [html_output(f"<p>COMPACT {meta['name']}</p>")]})
    assert routed.csv_only == ["all_sensitivity"]
    assert routed.main[0].cells[0].outputs[0]["data"]["text/html"] == "<p>COMPACT all_sensitivity</p>"


def test_site_benchmark_goes_to_appendix_and_out_of_the_key_findings(run_copy):
    """A per-site benchmark table in the cross-site notebook: in Appendix A under its site, summarised across
    sites in the main report, and never read as a cross-site finding (its White row is not a ratio to report,
    its two measures are not two periods)."""
    from pcref_eval.publish import Aggregate, Publisher
    from pcref_eval.report import build_report
    index_path = run_copy / "release" / "index" / "all.json"
    pub = Publisher(run_copy, "all", display=False, entries=json.loads(index_path.read_text())["entries"])
    bench = pd.DataFrame({"measure": ["All detentions"] * 2 + ["Uses of CTOs"] * 2, "period": "2023/24",
                          "group": ["Black or Black British", "White"] * 2, "icb": "QKK",
                          "site_ratio": [2.61, 1.0, 6.2, 1.0], "site_ratio_lower": [2.1, 0.9, 3.1, 0.5],
                          "site_ratio_upper": [3.2, 1.1, 12.4, 2.0], "icb_ratio": [3.36, 1.0, np.nan, np.nan],
                          "england_std_ratio": [3.54, 1.0, 7.07, 1.0]})
    agg = Aggregate(bench, [], model=["site_ratio", "site_ratio_lower", "site_ratio_upper", "icb_ratio",
                                      "england_std_ratio"], labels=["measure", "period", "group", "icb"])
    rt = pub.release_table(agg, "benchmark_site_a", "Site A beside its ICB and England", section="Benchmark")
    nb_path = run_copy / "restricted" / "notebooks" / "cross_site.ipynb"
    nb = nbformat.read(str(nb_path), as_version=4)
    cell = nbformat.v4.new_code_cell(source="publish_site_benchmark(x)")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": rt.html},
                                           metadata={"pcref": {"kind": "table", "name": rt.stem,
                                                               "caption": "Site A beside its ICB and England"}}),
                    _note("Trust RV5 (Somewhere NHS Trust): NHS England published 2,100 detentions.")]
    nb.cells[-1:-1] = [nbformat.v4.new_markdown_cell("## Benchmark against NHS England's published figures"), cell]
    nbformat.write(nb, str(nb_path))
    build_report(run_copy, formats=["html"], board_packs=False)
    release = run_copy / "release"
    main = BeautifulSoup((release / "report.html").read_text(encoding="utf-8"), "html.parser")
    assert not main.find("table", attrs={"data-pcref-table": "all_benchmark_site_a"})
    summary = main.find("table", attrs={"data-pcref-table": "summary_benchmark_by_site"})
    assert summary is not None and "2.61 (2.10 to 3.20)" in summary.get_text(" ", strip=True)
    assert "Trust RV5" not in main.get_text(" ")
    glance = main.select_one("div.key-findings").get_text(" ", strip=True)
    assert "Site A beside" not in glance and "2023/24" not in glance
    appendix = BeautifulSoup((release / "appendix-sites.html").read_text(encoding="utf-8"), "html.parser")
    assert appendix.find("table", attrs={"data-pcref-table": "all_benchmark_site_a"}) is not None
    assert "Trust RV5" in appendix.get_text(" ")
    index = json.loads((release / "index" / "summary.json").read_text())
    assert {"key_findings", "benchmark_by_site"} <= {e["name"] for e in index["entries"]}


def test_every_summary_table_is_indexed(built_run):
    """The build's released summary tables are all in release/index/summary.json (one Publisher per prefix)."""
    run_dir, _ = built_run
    release = run_dir / "release"
    for prefix in ("summary", "dq_site_a"):
        files = {p.name for p in (release / "tables").glob(f"{prefix}_*.csv")}
        indexed = {f.split("/")[-1] for e in json.loads((release / "index" / f"{prefix}.json").read_text())["entries"]
                   for f in e["files"] if f.endswith(".csv")}
        assert files and files == indexed, (prefix, files, indexed)


# ------------------------------------------------------------------------------ page count


@pytest.mark.slow
def test_six_site_demo_main_report_is_at_most_30_pages(tmp_path):
    """The full 6-site demo as `make run` makes it (about 3 minutes on 2 cores): main report at most 30 A4 pages."""
    from pcref_eval.cli import DEMO_PEOPLE, DEMO_SEED, DEMO_SITES
    from pcref_eval.demo import demo_config, ensure_demo_data
    from pcref_eval.runner.pipeline import RunOptions, run_evaluation
    pdfinfo = require_poppler("pdfinfo")
    data = tmp_path / "data"
    ensure_demo_data(data, people=DEMO_PEOPLE, seed=DEMO_SEED, sites=DEMO_SITES, echo=lambda m: None)
    config = demo_config(data, tmp_path / "out", seed=DEMO_SEED, formats=["html", "pdf"])
    result = run_evaluation(config, RunOptions(), echo=lambda m: None)
    release = result.run_dir / "release"
    pages = {}
    for stem in ("report", "appendix-sites", "appendix-data-quality"):
        info = subprocess.run([pdfinfo, str(release / f"{stem}.pdf")], capture_output=True, text=True, check=True)
        pages[stem] = int(next(l.split()[-1] for l in info.stdout.splitlines() if l.startswith("Pages:")))
    assert pages["report"] <= MAX_MAIN_REPORT_PAGES, pages
    html = (release / "report.html").read_text(encoding="utf-8")
    for heading in ("Summary of key findings", "Methods", "Results across sites", "Implementation effect",
                    "Limitations", "Benchmark against NHS England"):
        assert heading in html, heading
    assert "appendix-sites.html" in html and "appendix-data-quality.html" in html
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["steps"]["release_check"]["status"] == "ok", manifest["steps"]["release_check"]
    assert_reviewer_faults_gone(release, DEMO_SITES)
    shutil.rmtree(data)


def assert_reviewer_faults_gone(release, n_sites: int) -> None:
    """Issue 14's reviewer-visible faults, checked on a real multi-site report and its appendices."""
    import re
    texts = {}
    for stem in ("report", "appendix-sites", "appendix-data-quality"):
        soup = BeautifulSoup((release / f"{stem}.html").read_text(encoding="utf-8"), "html.parser")
        text = soup.get_text(" ", strip=True)
        texts[stem] = text
        assert not re.search(r"(?:Table|Figure) \d+\.\s+(?:Table|Figure)\s*\d+[:.]", text), stem  # double numbering
        assert not re.search(r"\ba (?:increase|improvement)\b", text), stem
        assert "expect_" not in text, stem
        for table in soup.select("table.pcref-table"):
            heads = [th.get_text(" ", strip=True) for th in table.find("tr").find_all(["th", "td"])]
            p_cols = [i for i, h in enumerate(heads) if re.fullmatch(r"p|p value|.* p|.* p value", h)]
            for tr in table.find_all("tr")[1:]:
                cells = [td.get_text(strip=True) for td in tr.find_all(["td", "th"])]
                assert not any(re.fullmatch(r"0\.0+", cells[i]) for i in p_cols if i < len(cells)), table["id"]
                if "rate ratio" in heads and cells and cells[0] == "White British":
                    assert cells[heads.index("rate ratio")] == "reference", table.get("data-pcref-table")
    glance = " ".join(t.get_text(" ", strip=True) for t in BeautifulSoup(
        (release / "report.html").read_text(encoding="utf-8"), "html.parser").select("table.glance-table"))
    assert glance and not re.search(r"Not stated|Not known|Missing", glance)
    assert "Why two sets of groups" in texts["report"]
    assert texts["appendix-sites"].count("Benchmark against NHS England's published figures") == n_sites
