"""Part 7: on ``synth --faults`` data the validation counts equal truth.json's injected counts exactly."""

from __future__ import annotations

import pytest

from pcref_eval.contracts import validate_site
from tests.contracts.conftest import truth

#: fault type -> the expectation (type) whose unexpected count must equal ``expected_unexpected``
FAULT_CHECKS = {
    "invalid_ethnic_code": "expect_column_values_to_be_in_set",
    "missing_ethnicity": "expect_column_values_to_be_recorded",
    "invalid_legal_status": "expect_column_values_to_be_in_set",
    "end_before_start": "expect_column_pair_values_a_to_be_greater_than_b",
    "duplicate_ids": "expect_column_values_to_be_unique",
    "future_dates": "expect_column_values_to_not_be_after_extract_date",
    "orphan_references": "expect_column_values_to_exist_in_table",
    "unparseable_dates": "expect_column_values_to_match_strftime_format",
}


@pytest.fixture(scope="module")
def fault_validations(faults_dir):
    t = truth(faults_dir)
    return t, {site: validate_site(faults_dir / site) for site in t["sites"]}


def test_every_fault_type_is_mapped(fault_validations):
    t, _ = fault_validations
    for site in t["sites"].values():
        assert set(site["faults"]) == set(FAULT_CHECKS)


def test_fault_counts_equal_truth_exactly(fault_validations):
    t, validations = fault_validations
    checked = 0
    for site_id, site in t["sites"].items():
        r = validations[site_id].results
        for fault, info in site["faults"].items():
            row = r[(r["table"] == info["table"]) & (r["column"] == info["column"])
                    & (r["expectation"] == FAULT_CHECKS[fault])]
            assert len(row) == 1, (site_id, fault)
            got = int(row["unexpected_count"].iloc[0])
            assert got == info["expected_unexpected"], (site_id, fault, got, info)
            assert got >= info["injected"] > 0
            checked += 1
    assert checked == 4 * len(FAULT_CHECKS)


def test_faulty_sites_are_not_analysable(fault_validations):
    t, validations = fault_validations
    for site_id in t["sites"]:
        sv = validations[site_id]
        assert sv.status == "error" and sv.exit_code == 2
        failed = set(sv.errors()["expectation"])
        assert {"expect_column_values_to_be_unique", "expect_column_values_to_exist_in_table"} <= failed


def test_clean_data_has_no_errors_and_only_real_warnings(clean_dir):
    t = truth(clean_dir)
    for site_id, site in t["sites"].items():
        sv = validate_site(clean_dir / site_id)
        assert sv.status in ("pass", "warning"), (site_id, sv.message)
        assert sv.errors().empty
        r = sv.results
        people_stated = r[(r["table"] == "people") & (r["expectation"] == "expect_column_values_to_be_recorded")]
        # the completeness warning fires exactly where the truth says recording is below 90%
        below = site["ethnicity_recorded_share"] < 0.90
        assert bool(~people_stated["success"].iloc[0]) == below, (site_id, site["ethnicity_recorded_share"])
        share = 1 - people_stated["unexpected_count"].iloc[0] / people_stated["element_count"].iloc[0]
        assert share == pytest.approx(site["ethnicity_recorded_share"], abs=1e-9)
        # any other warning is a real property of the data (events after death, s3 after the extract date)
        allowed = {"expect_column_values_to_be_recorded", "expect_column_values_to_not_be_after_death",
                   "expect_column_values_to_not_be_after_extract_date"}
        assert set(sv.warnings()["expectation"]) <= allowed, sv.warnings()
