"""The release check passes clean runs and catches planted violations of every kind, naming file and cell."""

from __future__ import annotations

import csv
import json

import docx
import pandas as pd
import pytest

from pcref_eval.publish import Aggregate, PublishError, Publisher
from pcref_eval.release_check import (BLOCKED_DIR, PASSED_NOTE, WITHHELD_NOTE, check_release, check_release_command,
                                      gate_release, is_identifier_column, looks_like_count)


def _ids(synth_data):
    people = pd.read_csv(synth_data / "site_a" / "people.csv", dtype=str)
    referrals = pd.read_csv(synth_data / "site_b" / "referrals.csv", dtype=str)
    return people["person_id"].iloc[0], referrals["referral_id"].iloc[0]


def _kinds(violations):
    return {v.kind for v in violations}


def _unindexed(violations, file):
    """The violations other than the unindexed table's own ``undeclared_table`` (which must be there)."""
    assert (file, "whole table", "undeclared_table") in {(v.file, v.where, v.kind) for v in violations}
    return [v for v in violations if not (v.file == file and v.kind == "undeclared_table")]


def _set_cell(path, row, col, value):
    rows = list(csv.reader(path.open()))
    rows[row][rows[0].index(col)] = value
    with path.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def test_clean_run_passes(run_copy):
    assert check_release(run_copy) == []


def test_built_report_passes(built_run):
    """Report HTML, PDF, DOCX, key-findings figure and data-quality table all pass the check."""
    assert check_release(built_run[0]) == []


def test_small_count_in_indexed_csv(run_copy):
    path = run_copy / "release" / "tables" / "site_a_crude_rates.csv"
    _set_cell(path, 2, "events", "3")
    v = check_release(run_copy)
    # the row's rate no longer matches its count either (derived_unrounded: see tests/disclosure)
    assert {x.kind for x in v} == {"small_count", "derived_unrounded"}
    v = [x for x in v if x.kind != "derived_unrounded"]
    assert [(x.file, x.where, x.kind) for x in v] == [("tables/site_a_crude_rates.csv", "row 2, column 'events'",
                                                       "small_count")]
    assert "count 3" in str(v[0])


def test_unrounded_count_in_indexed_csv(run_copy):
    _set_cell(run_copy / "release" / "tables" / "site_a_table_one.csv", 1, "people", "301")
    v = [x for x in check_release(run_copy) if x.kind != "derived_unrounded"]  # its percentages no longer match
    assert _kinds(v) == {"unrounded_count"} and v[0].where == "row 1, column 'people'"


def test_small_count_in_unindexed_csv_by_header(run_copy):
    (run_copy / "release" / "tables" / "extra.csv").write_text("group,n_event,rate\nA,20,1.5\nB,2,0.3\nC,0,0\n")
    v = _unindexed(check_release(run_copy), "tables/extra.csv")  # not in any index: refused as a whole too
    assert [(x.file, x.where) for x in v] == [("tables/extra.csv", "row 2, column 'n_event'")]


@pytest.mark.parametrize("header", ["person_id", "NHS Number", "date_of_birth", "postcode", "LSOA11CD", "PersonID"])
def test_identifier_column(run_copy, header):
    (run_copy / "release" / "tables" / "leak.csv").write_text(f"group,{header}\nA,x\n")
    v = _unindexed(check_release(run_copy), "tables/leak.csv")
    assert [(x.kind, x.where) for x in v] == [("identifier_column", f"column '{header}'")]


def test_identifier_value_in_svg_text(run_copy, synth_data):
    person, _ = _ids(synth_data)
    svg = run_copy / "release" / "figures" / "site_a_crude_rates.svg"
    svg.write_text(svg.read_text().replace("</svg>", f"<text x='1' y='1'>outlier {person}</text></svg>"))
    v = check_release(run_copy)
    assert [(x.file, x.kind) for x in v] == [("figures/site_a_crude_rates.svg", "identifier_value")]
    assert v[0].where.startswith("text element")


@pytest.mark.parametrize("chunk", ["tEXt", "zTXt", "iTXt", "iTXt-compressed"])
def test_identifier_value_in_png_metadata(run_copy, synth_data, chunk):
    """PNG text chunks are read without decoding pixels, wherever they sit in the file."""
    from PIL import Image, PngImagePlugin

    person, _ = _ids(synth_data)
    info = PngImagePlugin.PngInfo()
    if chunk == "tEXt":
        info.add_text("Comment", f"patient {person}")
    elif chunk == "zTXt":
        info.add_text("Comment", f"patient {person}", zip=True)
    else:
        info.add_itxt("Comment", f"patient {person}", lang="en", tkey="Kommentar", zip=chunk.endswith("compressed"))
    png = run_copy / "release" / "figures" / "site_a_crude_rates.png"
    Image.new("RGB", (40, 30), "white").save(png, pnginfo=info)
    v = check_release(run_copy)
    assert [(x.file, x.kind) for x in v] == [("figures/site_a_crude_rates.png", "identifier_value")]


def test_png_text_chunks_match_pillow(tmp_path):
    from PIL import Image, PngImagePlugin

    from pcref_eval.release_check import png_text_chunks

    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "plain")
    info.add_text("Author", "zipped text " * 20, zip=True)
    info.add_itxt("Description", "intern\u00e4tional", lang="de", tkey="Beschreibung", zip=True)
    Image.new("RGB", (20, 10), "white").save(tmp_path / "x.png", pnginfo=info)
    with Image.open(tmp_path / "x.png") as im:
        expected = dict(im.text)
    assert png_text_chunks((tmp_path / "x.png").read_bytes()) == expected


def test_id_set_column_matches_value_by_value():
    from pcref_eval.release_check import IdSet

    values = pd.Series(["P-000123", " p-000123 ", "ab", "12345", "123456789", "REF 42 77", None, "x_y_z_1"])
    one_by_one = IdSet(values.dropna().tolist())
    vectorised = IdSet()
    vectorised.add_column(values)
    assert vectorised.values == one_by_one.values
    assert vectorised.skipped_numeric == one_by_one.skipped_numeric == 1
    # the Arrow path (plain ASCII ids) and the Python path (anything else) together give add()'s rules
    odd = pd.Series(["P\u00a0001234", "\u00c9cole-9876", "TAB\t9876", "a.b/c-d_e", "A.B/C-D_E", "1234\u00a0567"])
    numbers = pd.Series([123456789, 42, 9876543210])
    for column in (odd, numbers):
        one_by_one, vectorised = IdSet(column.tolist()), IdSet()
        vectorised.add_column(column)
        assert vectorised.values == one_by_one.values
        assert vectorised.skipped_numeric == one_by_one.skipped_numeric


def test_identifier_value_in_json_and_csv_cell(run_copy, synth_data):
    _, referral = _ids(synth_data)
    index = run_copy / "release" / "index" / "site_b.json"
    data = json.loads(index.read_text())
    data["entries"][0]["caption"] += f" (example {referral})"
    index.write_text(json.dumps(data))
    _set_cell(run_copy / "release" / "tables" / "site_b_crude_rates.csv", 1, "group", referral.lower())
    v = [x for x in check_release(run_copy) if x.kind != "derived_unrounded"]  # the reference row is renamed
    assert {(x.file, x.kind) for x in v} == {("index/site_b.json", "identifier_value"),
                                             ("tables/site_b_crude_rates.csv", "identifier_value")}
    assert any(x.where == "value at 'entries[0].caption'" for x in v)
    assert any(x.where == "row 1, column 'group'" for x in v)


def test_small_count_in_html_table_and_text(run_copy):
    (run_copy / "release" / "extra.html").write_text(
        "<html><body><p>Only 3 people were restrained.</p>"
        "<table><thead><tr><th>group</th><th>people</th></tr></thead>"
        "<tbody><tr><td>A</td><td>1,250</td></tr><tr><td>B</td><td>5</td></tr></tbody></table>"
        "<table data-pcref-counts='female'><tr><th>group</th><th>female</th></tr><tr><td>A</td><td>6</td></tr></table>"
        "</body></html>")
    v = check_release(run_copy)
    where = {(x.kind, x.where) for x in v}
    assert ("small_count", "table 1, row 2, column 'people'") in where
    assert ("small_count", "table 2, row 1, column 'female'") in where  # declared count column, ordinary header
    assert any(x.kind == "small_count" and x.where.startswith("text line") for x in v)


def test_docx_text_and_tables(run_copy, synth_data):
    person, _ = _ids(synth_data)
    d = docx.Document()
    d.add_paragraph(f"Case {person} was reviewed.")
    t = d.add_table(rows=2, cols=2)
    t.cell(0, 0).text, t.cell(0, 1).text = "group", "events"
    t.cell(1, 0).text, t.cell(1, 1).text = "A", "4"
    d.save(str(run_copy / "release" / "paper.docx"))
    v = check_release(run_copy)
    assert {(x.file, x.kind, x.where) for x in v} == {("paper.docx", "identifier_value", "paragraph 1"),
                                                      ("paper.docx", "small_count", "table 1, row 1, column 'events'")}


def test_unreadable_binary_file(run_copy):
    (run_copy / "release" / "data.parquet").write_bytes(b"PAR1\x00\x01\x02binary")
    assert _kinds(check_release(run_copy)) == {"unchecked_file"}


def test_threshold_follows_the_runs_policy(run_copy):
    cfg = run_copy / "config.yml"
    cfg.write_text(cfg.read_text().replace("policy: opensafely", "policy: nhse_mha"))
    (run_copy / "release" / "tables" / "extra.csv").write_text("group,n\nA,6\nB,4\n")
    v = _unindexed(check_release(run_copy), "tables/extra.csv")
    assert [x.where for x in v] == ["row 2, column 'n'"]  # 6 is allowed under nhse_mha (threshold 4), 4 is not


def test_command_exit_codes_and_output(run_copy, capsys):
    assert check_release_command(run_copy) == 0
    assert "clean" in capsys.readouterr().err
    _set_cell(run_copy / "release" / "tables" / "site_a_crude_rates.csv", 1, "events", "2")
    assert check_release_command(run_copy) == 2
    out = capsys.readouterr().out
    assert "tables/site_a_crude_rates.csv: row 1, column 'events'" in out
    assert check_release_command(run_copy / "nowhere") == 2


def test_gate_passes_and_records(run_copy):
    ok, violations = gate_release(run_copy)
    assert ok and violations == []
    note = json.loads((run_copy / "release" / PASSED_NOTE).read_text())
    assert note["status"] == "passed" and note["policy"]["threshold"] == 7
    assert check_release(run_copy) == []  # the note itself passes


def test_gate_withholds_release_on_violation(run_copy):
    _set_cell(run_copy / "release" / "tables" / "site_b_table_one.csv", 1, "people", "5")
    ok, violations = gate_release(run_copy)
    assert not ok and violations
    release = run_copy / "release"
    assert [p.name for p in release.iterdir()] == [WITHHELD_NOTE]
    note = (release / WITHHELD_NOTE).read_text()
    assert "site_b_table_one" not in note and "people" not in note  # no details that could disclose
    blocked = run_copy / BLOCKED_DIR
    assert (blocked / "tables" / "site_b_table_one.csv").exists()
    assert "tables/site_b_table_one.csv: row 1, column 'people'" in (blocked / "VIOLATIONS.txt").read_text()
    record = json.loads((run_copy / "restricted" / "release-check.json").read_text())
    assert record["status"] == "failed" and record["violations"][0]["file"] == "tables/site_b_table_one.csv"
    assert check_release(run_copy) == []  # what is left in release/ is safe


def test_header_heuristics():
    assert all(looks_like_count(h) for h in ["n", "events", "people", "n_risk", "n_event", "n_censored", "count"])
    assert not any(looks_like_count(h) for h in ["rate", "rr_lower", "female_pct", "group", "age_mean"])
    assert all(is_identifier_column(h) for h in ["Person_ID", "nhs_no", "DOB", "Postcode", "lsoa_code"])
    assert not any(is_identifier_column(h) for h in ["site_id", "group", "events", "year"])


def test_publisher_refuses_identifier_columns_and_writes_controlled_csv(tmp_path):
    pub = Publisher(tmp_path, "x", display=False)
    with pytest.raises(PublishError, match="identifier"):
        pub.table(Aggregate(pd.DataFrame({"NHSNumber": ["1"], "n": [10]}), ["n"]), "bad", "Bad")
    df = pd.DataFrame({"group": ["a", "b", "Total"], "n": [3, 50, 53], "pct": [5.66, 94.34, 100.0]})
    released = pub.table(Aggregate(df, ["n"], {"pct": ["n"]}, labels=["group"]), "ok", "Ok")
    assert released["n"].isna().tolist() == [True, True, False]  # total detected: secondary suppression
    text = (tmp_path / "release" / "tables" / "x_ok.csv").read_text()
    assert text.splitlines() == ["group,n,pct", "a,[REDACTED],[REDACTED]", "b,[REDACTED],[REDACTED]",
                                 "Total,55,100.0"]
    entry = json.loads((tmp_path / "release" / "index" / "x.json").read_text())["entries"][0]
    assert entry["count_cols"] == ["n"] and entry["totals"]["total_label"] == "Total"
    assert "Ok" in (tmp_path / "release" / "captions" / "x.md").read_text()
    assert check_release(tmp_path) == []
