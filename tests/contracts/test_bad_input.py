"""Bad input: one paragraph naming file, table, column and example rows; error status; no traceback."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd
import pytest

from pcref_eval.contracts import validate_site
from pcref_eval.contracts.command import validate_command
from pcref_eval.extract import ExtractError, read_table


def _csv(site: Path, table: str) -> pd.DataFrame:
    return pd.read_csv(site / f"{table}.csv", dtype=str, keep_default_na=False)


def _write(site: Path, table: str, df: pd.DataFrame) -> None:
    df.to_csv(site / f"{table}.csv", index=False, lineterminator="\n")


def missing_file(site):
    (site / "people.csv").unlink()
    return "people", None, False


def empty_file(site):
    (site / "referrals.csv").write_bytes(b"")
    return "referrals", None, False


def corrupt_parquet(site):
    df = _csv(site, "people")
    df.to_parquet(site / "people.parquet", index=False)
    data = (site / "people.parquet").read_bytes()
    (site / "people.parquet").write_bytes(data[: len(data) // 2])  # truncated: footer lost
    (site / "people.csv").unlink()
    return "people", None, False


def wrong_delimiter(site):
    text = (site / "referrals.csv").read_text()
    (site / "referrals.csv").write_text(text.replace(",", ";"))
    return "referrals", "referral_id", True


def non_utf8(site):
    lines = (site / "people.csv").read_bytes().split(b"\n")
    fields = lines[40].split(b",")
    fields[2] = b"\xe9"  # gender column, data row 40, a Latin-1 byte
    lines[40] = b",".join(fields)
    (site / "people.csv").write_bytes(b"\n".join(lines))
    return "people", "gender", True


def missing_column(site):
    _write(site, "people", _csv(site, "people").rename(columns={"gender": "sex"}))
    return "people", "gender", False


def wrong_type(site):
    df = _csv(site, "people")
    df.loc[[3, 10, 11], "year_of_birth"] = ["nineteen", "1980.5", "19x0"]
    _write(site, "people", df)
    return "people", "year_of_birth", True


def unparseable_dates(site):
    df = _csv(site, "referrals")
    df.loc[[5, 8], "referral_date"] = ["31/02/2023", "2023-02-30"]
    _write(site, "referrals", df)
    return "referrals", "referral_date", True


def duplicate_ids(site):
    df = _csv(site, "referrals")
    _write(site, "referrals", pd.concat([df, df.iloc[[2, 7]]], ignore_index=True))
    return "referrals", "referral_id", True


def orphan_references(site):
    df = _csv(site, "mha_episodes")
    df.loc[[0, 4], "person_id"] = ["NOBODY1", "NOBODY2"]
    _write(site, "mha_episodes", df)
    return "mha_episodes", "person_id", True


CASES = [missing_file, empty_file, corrupt_parquet, wrong_delimiter, non_utf8, missing_column, wrong_type,
         unparseable_dates, duplicate_ids, orphan_references]


@pytest.mark.parametrize("corrupt", CASES, ids=[c.__name__ for c in CASES])
def test_bad_input_gives_error_status_and_a_paragraph(small_site, tmp_path, corrupt):
    table, column, has_rows = corrupt(small_site)
    sv = validate_site(small_site, restricted_dir=tmp_path / "dq")
    assert sv.status == "error" and sv.exit_code == 2 and not sv.analysable
    assert sv.message and "\n" not in sv.message
    paragraphs = [sv.message] + sv.failures
    hits = [p for p in paragraphs if f"'{table}'" in p and str(small_site) in p]
    assert hits, paragraphs
    text = " ".join(hits)
    if column:
        assert column in text
    if has_rows:
        assert re.search(r"rows? \[?\d+", text), text
    assert "Traceback" not in " ".join(paragraphs)
    # the machine-readable result and the report are still written
    assert sv.json_path.is_file() and sv.report_html.is_file()


@pytest.mark.parametrize("corrupt", [wrong_type, unparseable_dates], ids=["wrong_type", "unparseable_dates"])
def test_typed_reading_names_column_and_rows(small_site, corrupt):
    table, column, _ = corrupt(small_site)
    with pytest.raises(ExtractError) as info:
        read_table(small_site, table)
    assert info.value.column == column and info.value.rows
    assert column in str(info.value) and "data rows" in str(info.value)


@pytest.mark.parametrize("corrupt", CASES, ids=[c.__name__ for c in CASES])
def test_validate_command_exit_code_and_no_traceback(small_site, tmp_path, corrupt):
    table, column, _ = corrupt(small_site)
    out = io.StringIO()
    code = validate_command(small_site, tmp_path / "run", stream=out)
    text = out.getvalue()
    assert code == 2
    assert "Traceback" not in text
    assert f"'{table}'" in text and str(small_site) in text
    if column:
        assert column in text


def test_bad_run_leaves_earlier_outputs_intact(small_site, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert validate_command(small_site, None, stream=io.StringIO()) in (0, 1)
    first = sorted((tmp_path / "outputs" / "validate").iterdir())
    assert len(first) == 1
    before = {p: p.read_bytes() for p in first[0].rglob("*") if p.is_file()}
    missing_file(small_site)
    assert validate_command(small_site, None, stream=io.StringIO()) == 2
    runs = sorted((tmp_path / "outputs" / "validate").iterdir())
    assert len(runs) == 2
    assert {p: p.read_bytes() for p in first[0].rglob("*") if p.is_file()} == before
    assert not list(tmp_path.rglob("release"))


def test_missing_folder_and_folder_without_sites(tmp_path):
    out = io.StringIO()
    assert validate_command(tmp_path / "nope", tmp_path / "run", stream=out) == 2
    assert "no such folder" in out.getvalue()
    (tmp_path / "empty").mkdir()
    out = io.StringIO()
    assert validate_command(tmp_path / "empty", tmp_path / "run", stream=out) == 2
    assert "no site folders found" in out.getvalue()


def test_missing_site_yml_is_named(small_site, tmp_path):
    (small_site / "site.yml").unlink()
    sv = validate_site(small_site)
    assert sv.status == "error" and "site.yml is missing" in sv.message


def test_parquet_site_validates_like_csv(small_site, tmp_path):
    """Parquet extracts, including typed columns (ints, floats with nulls, timestamps), read as the CSV text."""
    csv_result = validate_site(small_site).results
    for table in ("people", "referrals", "hospital_spells", "restrictive_interventions"):
        df = _csv(small_site, table)
        if table == "people":
            df["year_of_birth"] = df["year_of_birth"].astype(int)
            df["imd_decile"] = pd.to_numeric(df["imd_decile"]).astype("float64")  # nulls -> float column
            df["date_of_death"] = pd.to_datetime(df["date_of_death"])
        elif table == "referrals":
            df["referral_date"] = pd.to_datetime(df["referral_date"])
        elif table == "restrictive_interventions":
            df["start_datetime"] = pd.to_datetime(df["start_datetime"])
        else:
            df = df.replace("", None)
        df.to_parquet(small_site / f"{table}.parquet", index=False)
        (small_site / f"{table}.csv").unlink()
    parquet_result = validate_site(small_site).results
    cols = ["key", "success", "unexpected_count", "element_count", "missing_count"]
    pd.testing.assert_frame_equal(csv_result[cols], parquet_result[cols])
