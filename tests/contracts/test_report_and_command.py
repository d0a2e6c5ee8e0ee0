"""DQ report (offline, no identifiers, what changed), the validate command, and GX isolation."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from pcref_eval.contracts import validate_site
from pcref_eval.contracts.command import validate_command
from tests.contracts.conftest import make_spotless


def test_report_is_self_contained_and_has_no_identifiers(small_site, tmp_path):
    sv = validate_site(small_site, restricted_dir=tmp_path / "dq")
    page = sv.report_html.read_text()
    assert not re.search(r"https?://|<script|<link|@import|src=", page, flags=re.I)
    assert "<svg" in page and "<style>" in page
    assert "Ethnicity recording completeness" in page and "Changes since the previous run" in page
    ids = set()
    for table in ("people", "referrals", "hospital_spells"):
        df = pd.read_csv(small_site / f"{table}.csv", dtype=str)
        for col in [c for c in df.columns if c.endswith("_id")]:
            ids |= set(df[col].dropna())
    assert not [i for i in ids if i in page]
    assert not [i for i in ids if i in sv.json_path.read_text()]
    # the results frame is aggregate only
    assert not {"id", "person_id", "data_row"} & set(sv.results.columns)


def test_failing_row_samples_are_ids_only_and_restricted(faults_dir, tmp_path):
    sv = validate_site(faults_dir / "site_b", restricted_dir=tmp_path / "restricted" / "dq" / "site_b")
    samples = pd.read_csv(sv.samples_path, dtype=str)
    assert list(samples.columns) == ["key", "table", "column", "expectation", "severity", "data_row", "id_column", "id"]
    people = pd.read_csv(faults_dir / "site_b" / "people.csv", dtype=str)
    dup = samples[samples["expectation"] == "expect_column_values_to_be_unique"]
    assert set(dup["id"]) <= set(people["person_id"])
    assert samples.groupby("key").size().max() <= 20
    assert "restricted" in sv.samples_path.parts


def test_ethnicity_completeness_by_month(clean_dir):
    sv = validate_site(clean_dir / "site_c")
    c = sv.ethnicity_completeness()
    assert list(c.columns) == ["month", "table", "recorded", "total", "share"]
    assert set(c["table"]) == {"people", "patient_experience"}
    assert (c["share"] == c["recorded"] / c["total"]).all()
    assert re.fullmatch(r"\d{4}-\d{2}", c["month"].iloc[0])
    by_table = sv.completeness_by_table.set_index("table")
    # every person with a referral is in exactly one month
    people_months = c[c["table"] == "people"]["total"].sum()
    assert people_months <= by_table.loc["people", "total"]
    assert c[c["table"] == "patient_experience"]["total"].sum() == by_table.loc["patient_experience", "total"]


def test_changes_since_previous_run(small_site, tmp_path):
    first = validate_site(small_site, restricted_dir=tmp_path / "run1")
    assert first.changes is None
    df = pd.read_csv(small_site / "referrals.csv", dtype=str, keep_default_na=False)
    df.loc[[1, 2], "person_id"] = ["GHOST1", "GHOST2"]
    df.iloc[:-10].to_csv(small_site / "referrals.csv", index=False)
    second = validate_site(small_site, restricted_dir=tmp_path / "run2", previous=first.json_path)
    ch = second.changes.set_index("item")
    assert ch.loc["status", "current"] == "error"
    assert ch.loc["rows: referrals", "change"] == "-10"
    assert ch.loc["check: referrals.person_id.expect_column_values_to_exist_in_table", "change"] == "now failing"
    page = second.report_html.read_text()
    assert "now failing" in page and "rows: referrals" in page
    json.loads(second.json_path.read_text())  # valid JSON
    # unchanged data: no change
    third = validate_site(small_site, restricted_dir=tmp_path / "run3", previous=second.json_path)
    assert third.changes.empty


def test_exit_codes_and_folder_of_sites(small_site, tmp_path):
    out = io.StringIO()
    assert validate_command(small_site, tmp_path / "r1", stream=out) == 1  # synthetic data has real warnings
    text = out.getvalue()
    assert "Summary site_a: WARNING (exit 1)" in text
    assert re.search(r"people\s+person_id\s+unique\s+error\s+pass\s+0\s+0\.00%", text)
    make_spotless(small_site)
    out = io.StringIO()
    assert validate_command(small_site, tmp_path / "r2", stream=out) == 0, out.getvalue()
    assert "PASS (exit 0)" in out.getvalue()
    # a folder of sites: one clean, one broken -> 2; each gets its own restricted folder
    sites = tmp_path / "sites"
    shutil.copytree(small_site, sites / "good")
    shutil.copytree(small_site, sites / "bad")
    (sites / "bad" / "ctos.csv").write_bytes(b"")
    (sites / "notes").mkdir()
    out = io.StringIO()
    assert validate_command(sites, tmp_path / "r3", stream=out) == 2
    text = out.getvalue()
    assert "Validated 2 site(s)" in text
    dq = tmp_path / "r3" / "restricted" / "dq"
    assert (dq / "good" / "dq_report.html").is_file() and (dq / "bad" / "validation.json").is_file()
    summary = pd.read_csv(dq / "summary.csv")
    assert sorted(summary["exit_code"]) == [0, 2]
    assert not (tmp_path / "r3" / "release").exists()


def test_default_output_folder_and_previous_run_lookup(small_site, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    validate_command(small_site, None, stream=io.StringIO())
    validate_command(small_site, None, stream=io.StringIO())
    runs = sorted((tmp_path / "outputs" / "validate").iterdir())
    assert len(runs) == 2
    page = (runs[1] / "restricted" / "dq" / "site_a" / "dq_report.html").read_text()
    assert "No change: same contracts" in page


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_great_expectations_writes_nothing_outside_the_run_folder(gx_import_sandbox, small_site, tmp_path,
                                                                  monkeypatch):
    """Importing GX and creating its ephemeral context (in the session sandbox) wrote nothing; nor does a run."""
    if not gx_import_sandbox["already_imported"]:
        assert _listing(gx_import_sandbox["cwd"]) == []
        assert _listing(gx_import_sandbox["home"]) == []
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))
    site_before = _listing(small_site)
    from pcref_eval.contracts.engine import SiteData, evaluate
    from pcref_eval.contracts.suite import _parse_entry

    # exercise GX's own execution path too (fallback type)
    spec = _parse_entry(Path("x.yml"), "x", "people", 1, {"type": "expect_column_value_lengths_to_be_between",
                                                          "kwargs": {"column": "gender", "max_value": 1},
                                                          "severity": "warning"})
    df = pd.read_csv(small_site / "people.csv", dtype=str)
    assert evaluate(spec, SiteData({"people": df})).engine == "great_expectations"
    code = validate_command(small_site, cwd / "run", stream=io.StringIO())
    assert code in (0, 1)
    assert _listing(home) == []
    assert all(p == "run" or p.startswith("run" + os.sep) for p in _listing(cwd))
    assert not [p for p in _listing(cwd) if Path(p).name in ("gx", "great_expectations", "uncommitted")]
    assert _listing(small_site) == site_before
    repo = Path(__file__).resolve().parents[2]
    assert not (repo / "gx").exists() and not (repo / "great_expectations").exists()
