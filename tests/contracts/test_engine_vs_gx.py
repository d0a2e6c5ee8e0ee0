"""Second implementation: the vectorised engine agrees with great-expectations' own validation."""

from __future__ import annotations

import math
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pcref_eval.contracts.engine import EXECUTORS, SiteData, engine_supports, evaluate, parse_strftime
from pcref_eval.contracts.suite import WORKBENCH_TYPES, _parse_entry

NA = None


def S(values):
    return pd.Series(values, dtype="str")


def spec(table, etype, **kwargs):
    return _parse_entry(Path("test_suite.yml"), "test", table, 1,
                        {"type": etype, "kwargs": kwargs, "severity": "error"})


def site_data(n_extra: int = 0) -> SiteData:
    people = pd.DataFrame({
        "person_id": S(["P1", "P2", "P2", NA, "P5", "P6", "P7", "P8", "P9", "P9", "P9", "P12"]),
        "ethnic_category": S(["A", "X", NA, "Z", "99", "N", "M", "", "a", " A", "D", "E"]),
        "gender": S(["1", "2", "9", "5", NA, "1", "1", "2", "2", "3", "4", "0"]),
        "year_of_birth": S(["1980", "19x0", "1980.5", NA, "1890", "2030", "2025", "0990", "١٩٨٠", "1999", "12345", "2000"]),
        "imd_decile": S(["0", "11", "5", NA, "x", "10", "1", "01", "5.0", "-1", "3", "7"]),
        "date_of_death": S(["2023-01-05", "2023-1-5", "2023-02-30", "2023-01-05 ", "-2023-01-01", "0000-01-01",
                            "20230105", "2023-01-31", "2024-02-29", "2023-02-29", "9999-12-31", "2025-05-01"]),
    })
    people["ethnic_category"] = people["ethnic_category"].mask(people["ethnic_category"] == "")
    referrals = pd.DataFrame({
        "referral_id": S(["R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8"]),
        "person_id": S(["P1", "P2", "NOPE", NA, "P5", "P6", "P7", "P8"]),
        "referral_date": S(["2023-01-05", "2023-01-05", NA, "2023-03-01", "bad", "2023-06-01", NA, "2023-02-01"]),
        "source_of_referral": S(["A1", "E1", "ZZ", NA, "H1", "B1", "A1", "A1"]),
        "discharge_date": S(["2023-01-04", "2023-01-05", "2023-01-01", NA, "2023-01-01", "2023-05-31", NA,
                             "2023-02-02"]),
    })
    ri = pd.DataFrame({
        "intervention_id": S(["I1", "I2", "I3", "I4", "I5"]),
        "person_id": S(["P1", "P1", "P2", "P5", "P6"]),
        "spell_id": S(["S1", "S1", "S2", "S9", NA]),
        "intervention_type": S(["01", "05", "14", "02", "99"]),
        "reason": S(["01", "02", NA, "03", "04"]),
        "start_datetime": S(["2023-01-01T10:00", "2023-01-01 10:00:30", "2023-01-01T25:00", NA, "2023-01-02T00:00"]),
        "end_datetime": S(["2023-01-01T09:59", "2023-01-01T10:00:30", "2023-01-01T10:00", "2023-01-01T10:00", NA]),
    })
    population = pd.DataFrame({
        "ethnic_category": S(["A", "A", "A", NA, NA, "B", "B"]),
        "age_band": S(["0-4", "0-4", "5-9", NA, NA, NA, NA]),
        "sex": S(["1", "1", "1", NA, NA, "2", "2"]),
        "population": S(["10", "x", "3", "4", "5", "6", "7"]),
    })
    empty = pd.DataFrame({c: S([]) for c in ["cto_id", "person_id", "start_date", "end_date", "end_reason"]})
    return SiteData({"people": people, "referrals": referrals, "restrictive_interventions": ri,
                     "population": population, "ctos": empty}, extract_date=date(2025, 4, 30))


CASES = [
    ("people", "expect_column_values_to_not_be_null", {"column": "person_id"}),
    ("people", "expect_column_values_to_not_be_null", {"column": "ethnic_category", "mostly": 0.8}),
    ("people", "expect_column_values_to_not_be_null", {"column": "ethnic_category", "mostly": 0.9}),
    ("people", "expect_column_values_to_be_unique", {"column": "person_id"}),
    ("people", "expect_column_values_to_be_unique", {"column": "person_id", "mostly": 0.5}),
    ("population", "expect_compound_columns_to_be_unique", {"column_list": ["ethnic_category", "age_band", "sex"]}),
    ("population", "expect_compound_columns_to_be_unique",
     {"column_list": ["ethnic_category", "age_band", "sex"], "ignore_row_if": "any_value_is_missing"}),
    ("population", "expect_compound_columns_to_be_unique",
     {"column_list": ["ethnic_category", "age_band", "sex"], "ignore_row_if": "never"}),
    ("people", "expect_column_values_to_be_in_set",
     {"column": "ethnic_category", "value_set": list("ABCDEFGHJKLMNPRS") + ["Z", "99"]}),
    ("people", "expect_column_values_to_be_in_set", {"column": "gender", "value_set": ["1", "2", "3", "4", "9"],
                                                     "mostly": 0.7}),
    ("people", "expect_column_values_to_not_be_in_set", {"column": "ethnic_category", "value_set": ["Z", "99"]}),
    ("people", "expect_column_values_to_match_regex", {"column": "year_of_birth", "regex": r"^\d{4}$"}),
    ("people", "expect_column_values_to_match_regex", {"column": "imd_decile", "regex": r"^\d{1,2}$"}),
    ("people", "expect_column_values_to_match_regex", {"column": "ethnic_category", "regex": "[A-S]"}),
    ("people", "expect_column_values_to_not_match_regex", {"column": "gender", "regex": "^[09]$"}),
    ("restrictive_interventions", "expect_column_values_to_match_regex",
     {"column": "start_datetime",
      "regex": r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$"}),
    ("people", "expect_column_values_to_match_strftime_format",
     {"column": "date_of_death", "strftime_format": "%Y-%m-%d"}),
    ("referrals", "expect_column_values_to_match_strftime_format",
     {"column": "referral_date", "strftime_format": "%Y-%m-%d"}),
    ("restrictive_interventions", "expect_column_values_to_match_strftime_format",
     {"column": "start_datetime", "strftime_format": "%Y-%m-%dT%H:%M"}),
    ("people", "expect_column_values_to_be_between", {"column": "imd_decile", "min_value": 1, "max_value": 10}),
    ("people", "expect_column_values_to_be_between",
     {"column": "imd_decile", "min_value": 1, "max_value": 10, "strict_min": True, "strict_max": True}),
    ("people", "expect_column_values_to_be_between",
     {"column": "year_of_birth", "min_value": 1900, "max_value": {"$PARAMETER": "extract_year"}}),
    ("people", "expect_column_values_to_be_between", {"column": "year_of_birth", "max_value": 2000, "mostly": 0.5}),
    ("referrals", "expect_column_pair_values_a_to_be_greater_than_b",
     {"column_A": "discharge_date", "column_B": "referral_date", "or_equal": True,
      "ignore_row_if": "either_value_is_missing"}),
    ("referrals", "expect_column_pair_values_a_to_be_greater_than_b",
     {"column_A": "discharge_date", "column_B": "referral_date"}),
    ("referrals", "expect_column_pair_values_a_to_be_greater_than_b",
     {"column_A": "discharge_date", "column_B": "referral_date", "or_equal": True, "ignore_row_if": "neither"}),
    ("restrictive_interventions", "expect_column_pair_values_a_to_be_greater_than_b",
     {"column_A": "end_datetime", "column_B": "start_datetime", "or_equal": True,
      "ignore_row_if": "either_value_is_missing"}),
    ("people", "expect_column_to_exist", {"column": "gender"}),
    ("people", "expect_table_row_count_to_be_between", {"min_value": 1}),
    ("people", "expect_table_row_count_to_be_between", {"min_value": 20}),
    ("ctos", "expect_table_row_count_to_be_between", {"min_value": 1}),
    ("ctos", "expect_column_values_to_be_unique", {"column": "cto_id"}),
    ("ctos", "expect_column_values_to_not_be_null", {"column": "cto_id"}),
    ("ctos", "expect_column_pair_values_a_to_be_greater_than_b",
     {"column_A": "end_date", "column_B": "start_date", "ignore_row_if": "either_value_is_missing"}),
]


def _close(a, b):
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)):
        return (a is None or (isinstance(a, float) and math.isnan(a))) == \
               (b is None or (isinstance(b, float) and math.isnan(b)))
    return a == pytest.approx(b, rel=1e-12, abs=1e-12)


def test_every_engine_gx_type_is_compared():
    compared = {etype for _, etype, _ in CASES}
    assert compared == set(EXECUTORS) - set(WORKBENCH_TYPES)


@pytest.mark.parametrize("table, etype, kwargs", CASES, ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_engine_agrees_with_great_expectations(table, etype, kwargs):
    data = site_data()
    s = spec(table, etype, **kwargs)
    assert engine_supports(s)
    ours = evaluate(s, data)
    theirs = evaluate(s, data, use_gx=True)
    assert ours.engine == "workbench" and theirs.engine == "great_expectations"
    assert ours.success == theirs.success
    assert ours.unexpected_count == theirs.unexpected_count
    assert _close(ours.unexpected_percent, theirs.unexpected_percent)
    if theirs.element_count is not None:
        assert ours.element_count == theirs.element_count
    if ours.missing_count is not None and theirs.missing_count is not None:
        assert ours.missing_count == theirs.missing_count
    if theirs.sample_rows:
        assert ours.sample_rows == theirs.sample_rows
    if etype == "expect_table_row_count_to_be_between":
        assert ours.observed == theirs.observed


def test_between_on_dates():
    """Date bounds on a date column (great-expectations 1.24 fails here on pandas 3 datetimes)."""
    out = evaluate(spec("people", "expect_column_values_to_be_between", column="date_of_death",
                        min_value="2023-01-01", max_value="2024-12-31"), site_data())
    # parseable: 2023-01-05, 2023-1-5, 2023-01-31, 2024-02-29, 9999-12-31, 2025-05-01 -> two outside
    assert (out.element_count, out.missing_count, out.unexpected_count, out.sample_rows) == (12, 6, 2, [10, 11])


def test_unsupported_kwargs_fall_back_to_great_expectations():
    data = site_data()
    s = spec("people", "expect_column_values_to_be_in_set", column="gender", value_set=["1", "2"],
             row_condition='gender=="1"', condition_parser="pandas")
    assert not engine_supports(s)
    out = evaluate(s, data)
    assert out.engine == "great_expectations" and out.success


def test_other_gx_types_run_through_great_expectations():
    data = site_data()
    s = spec("people", "expect_column_value_lengths_to_be_between", column="ethnic_category", min_value=1,
             max_value=1)
    out = evaluate(s, data)
    assert out.engine == "great_expectations"
    assert out.unexpected_count == 2  # "99" and " A"
    s = spec("population", "expect_column_max_to_be_between", column="population", max_value=9)
    out = evaluate(s, data)
    assert out.engine == "great_expectations" and out.observed == 10 and not out.success


def test_workbench_types_on_hand_computed_data():
    data = site_data()
    out = evaluate(spec("referrals", "expect_column_values_to_exist_in_table", column="person_id",
                        other_table="people"), data)
    assert (out.unexpected_count, out.missing_count, out.sample_rows) == (1, 1, [2])  # NOPE
    out = evaluate(spec("restrictive_interventions", "expect_column_values_to_exist_in_table", column="spell_id",
                        other_table="referrals", other_column="referral_id"), data)
    assert out.unexpected_count == 4
    out = evaluate(spec("people", "expect_column_values_to_not_be_after_extract_date", column="date_of_death"), data)
    assert out.sample_rows == [10, 11]  # 9999-12-31, 2025-05-01 (unparseable values are missing)
    out = evaluate(spec("restrictive_interventions", "expect_column_values_to_not_be_after_death",
                        column="start_datetime"), data)
    assert out.unexpected_count == 0 and out.element_count == 5
    people_death = evaluate(spec("referrals", "expect_column_values_to_not_be_after_death",
                                 column="referral_date"), data)
    # P1 and P2 died 2023-01-05 ("2023-1-5" parses, as with strptime): referrals that day are not after
    # death; P8 died 2023-01-31 and was referred 2023-02-01; P5-P7 have no valid death date or referral date
    assert (people_death.unexpected_count, people_death.missing_count, people_death.sample_rows) == (1, 5, [7])
    out = evaluate(spec("people", "expect_column_values_to_not_be_before_birth", column="date_of_death"), data)
    # P1 1980 vs 2023 ok; row with yob 2030 has unparseable death; 9999 > 1999: fine; 2025-05-01 vs 2000 ok
    assert out.unexpected_count == 0
    out = evaluate(spec("people", "expect_column_values_to_be_recorded", column="ethnic_category",
                        not_recorded_values=["Z", "99"], distinct_by="person_id", mostly=0.5), data)
    # distinct person_id (first rows): P1 A, P2 X, None Z, P5 99, P6 N, P7 M, P8 <NA>, P9 a, P12 E
    assert (out.element_count, out.unexpected_count, out.sample_rows) == (9, 3, [3, 4, 7])
    assert out.success


_date_chars = st.sampled_from(list("0123456789-- T:/x+") + ["١"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.text(_date_chars, min_size=0, max_size=12),
                          st.dates(min_value=date(1, 1, 1)).map(lambda d: d.isoformat())), min_size=1, max_size=30))
def test_strftime_parse_matches_strptime(values):
    """The vectorised format check accepts exactly what datetime.strptime (GX's pandas metric) accepts."""
    def strptime_ok(v):
        try:
            datetime.strptime(v, "%Y-%m-%d")
            return True
        except ValueError:
            return False
    ours = parse_strftime(pd.Series(values, dtype="str"), "%Y-%m-%d").notna().tolist()
    assert ours == [strptime_ok(v) for v in values]


_num_chars = st.sampled_from(list("0123456789.-+eE x,١"))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.text(_num_chars, max_size=8), st.integers(-10**6, 10**6).map(str),
                          st.sampled_from(["inf", "-inf", "nan", "NaN", "1e400", "007", "-0", "+5", ".5", "5."]),
                          st.floats(allow_nan=False, allow_infinity=False).map(repr)), min_size=1, max_size=30))
def test_numeric_typing_matches_pandas_to_numeric(values):
    """The engine's fast numeric typing gives exactly what extract.parse_columns' to_numeric gives."""
    from pcref_eval.contracts.engine import to_float

    raw = pd.Series(values, dtype="str")
    raw = raw.mask(raw == "")
    ours = to_float(raw).to_numpy()
    ref = pd.to_numeric(raw, errors="coerce").astype("float64").to_numpy()
    assert np.array_equal(ours, ref, equal_nan=True)
