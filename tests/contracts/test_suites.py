"""Suites load strictly: every table covered, unknown types and bad arguments refused by name."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pcref_eval.contracts import DEFAULT_CONTRACTS_DIR, ContractError, load_suites
from pcref_eval.contracts.suite import ALL_TABLE_SCHEMAS, WORKBENCH_TYPES, load_suite
from pcref_eval.schema import PRIMARY_KEYS

REPO = Path(__file__).resolve().parents[2]


def test_default_contracts_dir_is_repo_data_contracts():
    assert DEFAULT_CONTRACTS_DIR == REPO / "data_contracts"
    assert (DEFAULT_CONTRACTS_DIR / "README.md").is_file()


def test_every_table_has_a_versioned_suite():
    suites = load_suites()
    assert set(suites) == set(ALL_TABLE_SCHEMAS)
    for table, suite in suites.items():
        assert suite.path.name == f"{table}.yml"
        assert suite.version.count(".") == 2
        assert all(s.severity in ("error", "warning") for s in suite.expectations)
        keys = [s.key for s in suite.expectations]
        assert len(keys) == len(set(keys))


def test_suites_cover_the_schema():
    """Schema (presence, types), keys, and the issue's code lists, dates, ranges and completeness."""
    suites = load_suites()
    for table, columns in ALL_TABLE_SCHEMAS.items():
        specs = suites[table].expectations
        present = {s.column for s in specs if s.type == "expect_column_to_exist"}
        assert present == set(columns), table
        for col, kind in columns.items():
            types = {s.type for s in specs if s.column == col}
            if kind == "date":
                assert "expect_column_values_to_match_strftime_format" in types, (table, col)
            if kind in ("datetime", "int", "float"):
                assert "expect_column_values_to_match_regex" in types, (table, col)
        pk = PRIMARY_KEYS.get(table)
        if pk:
            assert {"expect_column_values_to_be_unique", "expect_column_values_to_not_be_null"} <= \
                {s.type for s in specs if s.column == pk}, table
        if "person_id" in columns and table != "people":
            assert any(s.type == "expect_column_values_to_exist_in_table" and s.column == "person_id"
                       for s in specs), table
    all_specs = [s for suite in suites.values() for s in suite.expectations]
    in_set = {(s.table, s.column) for s in all_specs if s.type == "expect_column_values_to_be_in_set"}
    assert {("people", "ethnic_category"), ("people", "gender"), ("mha_episodes", "legal_status_code"),
            ("restrictive_interventions", "intervention_type"), ("restrictive_interventions", "reason"),
            ("referrals", "source_of_referral")} <= in_set
    assert {("restrictive_interventions", "spell_id"), ("outcome_measures", "referral_id")} <= \
        {(s.table, s.column) for s in all_specs if s.type == "expect_column_values_to_exist_in_table"}
    between = {(s.table, s.column) for s in all_specs if s.type == "expect_column_values_to_be_between"}
    assert {("people", "imd_decile"), ("people", "year_of_birth"), ("outcome_measures", "score")} <= between
    used = {s.type for s in all_specs}
    assert set(WORKBENCH_TYPES) <= used
    recorded = [s for s in all_specs if s.type == "expect_column_values_to_be_recorded"]
    assert all(s.kwargs["mostly"] == 0.9 for s in recorded)


def _write_suite(folder: Path, table: str, entries: list, **top) -> Path:
    doc = {"suite": table, "table": table, "version": "1.0.0", "expectations": entries, **top}
    path = folder / f"{table}.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _contracts_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "contracts"
    shutil.copytree(DEFAULT_CONTRACTS_DIR, dst)
    return dst


def test_unknown_expectation_type_is_refused_naming_the_file(tmp_path):
    contracts = _contracts_copy(tmp_path)
    text = (contracts / "ctos.yml").read_text()
    text = text.replace("type: expect_column_values_to_be_unique, kwargs: {column: cto_id}",
                        "type: expect_column_values_to_be_uniqe, kwargs: {column: cto_id}")
    (contracts / "ctos.yml").write_text(text)
    with pytest.raises(ContractError) as info:
        load_suites(contracts)
    msg = str(info.value)
    assert str(contracts / "ctos.yml") in msg
    assert "expect_column_values_to_be_uniqe" in msg and "expectation #" in msg
    assert "Did you mean 'expect_column_values_to_be_unique'" in msg
    assert "silently drop" in msg


def test_great_expectations_itself_would_silently_drop_it():
    """Why strict loading matters: GX 1.x logs and drops an unknown type."""
    from pcref_eval.contracts.gx_backend import gx_module

    gx = gx_module()
    suite = gx.ExpectationSuite(name="x", expectations=[
        {"type": "expect_column_values_to_be_uniqe", "kwargs": {"column": "a"}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "a"}}])
    assert len(suite.expectations) == 1


@pytest.mark.parametrize("entry, needle", [
    ({"type": "expect_column_values_to_be_unique", "kwargs": {"column": "cto_id", "mostyl": 0.9},
      "severity": "error"}, "mostyl"),
    ({"type": "expect_column_values_to_be_unique", "kwargs": {}, "severity": "error"}, "column"),
    ({"type": "expect_column_values_to_be_unique", "kwargs": {"column": "nope"}, "severity": "error"},
     "not columns of table 'ctos'"),
    ({"type": "expect_column_values_to_be_unique", "kwargs": {"column": "cto_id"}, "severity": "fatal"},
     "severity must be"),
    ({"type": "expect_column_values_to_be_unique", "kwargs": {"column": "cto_id"}}, "severity must be"),
    ({"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "end_reason", "value_set": [1, 2]},
      "severity": "error"}, "quoted strings"),
    ({"type": "expect_column_values_to_exist_in_table", "kwargs": {"column": "person_id", "table": "people"},
      "severity": "error"}, "table: unknown argument"),
    ({"type": "expect_column_values_to_be_between",
      "kwargs": {"column": "end_reason", "max_value": {"$PARAMETER": "nope"}}, "severity": "error"},
     "unknown parameter"),
    ({"type": "expect_column_values_to_be_unique", "kwargs": {"column": "cto_id"}, "severity": "error",
      "sevrity": "x"}, "unknown key"),
])
def test_invalid_entries_are_refused(tmp_path, entry, needle):
    path = _write_suite(tmp_path, "ctos", [entry])
    with pytest.raises(ContractError) as info:
        load_suite(path)
    assert str(path) in str(info.value)
    assert needle in str(info.value)


def test_missing_suite_and_duplicate_suite_are_refused(tmp_path):
    contracts = _contracts_copy(tmp_path)
    (contracts / "ctos.yml").unlink()
    with pytest.raises(ContractError, match=r"no suite for table\(s\) \['ctos'\]"):
        load_suites(contracts)
    contracts2 = _contracts_copy(tmp_path / "b")
    shutil.copy(contracts2 / "people.yml", contracts2 / "people_again.yml")
    with pytest.raises(ContractError, match="second suite for table 'people'"):
        load_suites(contracts2)


def test_bad_version_and_yaml_are_refused(tmp_path):
    path = _write_suite(tmp_path, "ctos", [{"type": "expect_column_to_exist", "kwargs": {"column": "cto_id"},
                                            "severity": "error"}], version="1")
    with pytest.raises(ContractError, match="MAJOR.MINOR.PATCH"):
        load_suite(path)
    path.write_text("suite: [unclosed")
    with pytest.raises(ContractError, match="not valid YAML"):
        load_suite(path)


def test_importing_contracts_does_not_import_great_expectations():
    code = ("import sys, pcref_eval.contracts, pcref_eval.contracts.command; "
            "print('great_expectations' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


def test_a_verified_record_skips_only_the_gx_objects_of_identical_suites(tmp_path):
    """Suites checked with GX once are not rebuilt with GX; an edit (even a bad one) is checked again."""
    from pcref_eval.contracts.suite import read_verified

    contracts = _contracts_copy(tmp_path)
    record = tmp_path / "outputs" / ".cache" / "verified-contracts.json"
    first = load_suites(contracts, verified_file=record)
    assert all(s.gx is not None for suite in first.values() for s in suite.expectations if not s.workbench)
    assert len(read_verified(record)) == 1
    (contracts / "README.md").write_text("not a suite: does not change the key\n")
    os.utime(contracts / "ctos.yml")  # a new mtime defeats the in-process cache; the bytes are unchanged
    second = load_suites(contracts, verified_file=record)
    specs = [s for suite in second.values() for s in suite.expectations]
    assert all(s.gx is None for s in specs)  # trusted: no GX object built
    assert [(s.key, s.kwargs, s.severity) for s in specs] == \
        [(s.key, s.kwargs, s.severity) for suite in first.values() for s in suite.expectations]
    unique = next(s for s in specs if s.type == "expect_column_values_to_be_unique")
    assert type(unique.gx_expectation()).__name__ == "ExpectColumnValuesToBeUnique"  # built on demand
    # an edit changes the key: the edited suite is checked with GX again and a bad type is refused
    text = (contracts / "ctos.yml").read_text()
    (contracts / "ctos.yml").write_text(text.replace("type: expect_column_values_to_be_unique, kwargs: {column: cto_id}",
                                                     "type: expect_column_values_to_be_uniqe, kwargs: {column: cto_id}"))
    with pytest.raises(ContractError, match="uniqe"):
        load_suites(contracts, verified_file=record)
    assert len(read_verified(record)) == 1


def test_the_key_covers_the_gx_version_and_the_suite_bytes(tmp_path, monkeypatch):
    from importlib import metadata

    from pcref_eval.contracts.suite import suite_files, suites_key

    contracts = _contracts_copy(tmp_path)
    _, files = suite_files(contracts)
    key = suites_key(files)
    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "0.0.1" if name == "great_expectations" else real(name))
    assert suites_key(files) != key
    monkeypatch.undo()
    (contracts / "people.yml").write_text((contracts / "people.yml").read_text() + "\n")
    assert suites_key(files) != key


def test_check_contracts_command_records_the_check(tmp_path, capsys):
    from pcref_eval.cli import main
    from pcref_eval.contracts.suite import read_verified, suite_files, suites_key

    outputs = tmp_path / "outputs"
    assert main(["check-contracts", "--outputs", str(outputs)]) == 0
    assert "expectations: valid for great-expectations" in capsys.readouterr().out
    assert suites_key(suite_files(None)[1]) in read_verified(outputs / ".cache" / "verified-contracts.json")
    bad = _contracts_copy(tmp_path)
    (bad / "ctos.yml").write_text((bad / "ctos.yml").read_text().replace("expect_column_values_to_be_unique",
                                                                         "expect_column_values_to_be_uniqe"))
    assert main(["check-contracts", "--contracts", str(bad), "--outputs", str(outputs)]) == 2
    assert "uniqe" in capsys.readouterr().err
