"""Ethnicity grouping schemes: detailed (16), broad (5), PCREF focus; unrecorded values always kept as rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pcref_eval.ethnicity import (
    DEFAULT_REFERENCE,
    ETHNIC_CATEGORIES,
    PCREF_FOCUS_GROUPS,
    UNRECORDED_LABELS,
    VALID_CODES,
    ethnic_group,
    group_order,
    is_recorded,
)
from pcref_eval.measures.compute import FOCUS_CODES, group_codes

ALL_CODES = list(ETHNIC_CATEGORIES)


def test_detailed_scheme_has_the_16_categories_then_unrecorded():
    order = group_order("detailed")
    assert order[:16] == list(ETHNIC_CATEGORIES.values())
    assert len(order) == 16 + 3
    assert order[-3:] == ["Not stated", "Not known", "Missing"]
    got = ethnic_group(pd.Series(ALL_CODES), "detailed")
    assert list(got) == list(ETHNIC_CATEGORIES.values())


def test_broad_scheme_has_five_groups():
    assert group_order("broad") == ["White", "Mixed", "Asian", "Black", "Other", *UNRECORDED_LABELS]
    got = dict(zip(ALL_CODES, ethnic_group(pd.Series(ALL_CODES), "broad")))
    assert {c for c, g in got.items() if g == "White"} == set("ABC")
    assert {c for c, g in got.items() if g == "Mixed"} == set("DEFG")
    assert {c for c, g in got.items() if g == "Asian"} == set("HJKL")
    assert {c for c, g in got.items() if g == "Black"} == set("MNP")
    assert {c for c, g in got.items() if g == "Other"} == set("RS")


def test_pcref_scheme_focus_groups_and_reference():
    got = dict(zip(ALL_CODES, ethnic_group(pd.Series(ALL_CODES), "pcref")))
    assert got["N"] == "Black African"
    assert got["M"] == "Black Caribbean"
    assert got["D"] == got["E"] == "Black Mixed"  # PCREF's Black Mixed = D and E
    assert got["P"] == "Black Other"
    assert got["A"] == "White British" == DEFAULT_REFERENCE["pcref"]
    assert {c for c, g in got.items() if g == "Other groups"} == set("BCFGHJKLRS")
    assert group_order("pcref") == ["White British", *PCREF_FOCUS_GROUPS, "Other groups", *UNRECORDED_LABELS]
    focus = {c for c, g in got.items() if g in PCREF_FOCUS_GROUPS}
    assert focus == set(FOCUS_CODES)


@pytest.mark.parametrize("scheme", ["detailed", "broad", "pcref"])
def test_unrecorded_values_are_their_own_rows(scheme):
    codes = pd.Series(["Z", "99", None, "", "  ", "A"], dtype="string")
    got = ethnic_group(codes, scheme)
    assert list(got[:5]) == ["Not stated", "Not known", "Missing", "Missing", "Missing"]
    # the three rows exist as categories even when no value maps to them (never silently dropped)
    only_recorded = ethnic_group(pd.Series(["A", "N"]), scheme)
    counts = pd.Series(only_recorded).value_counts().reindex(group_order(scheme), fill_value=0)
    assert list(counts.index[-3:]) == UNRECORDED_LABELS
    assert counts[UNRECORDED_LABELS].tolist() == [0, 0, 0]


def test_codes_are_stripped_and_unknown_codes_raise_naming_them():
    assert list(ethnic_group(pd.Series([" N ", "A\t"]), "pcref")) == ["Black African", "White British"]
    with pytest.raises(ValueError, match=r"\['X9'\]"):
        ethnic_group(pd.Series(["A", "X9"]), "pcref")
    with pytest.raises(ValueError, match="unknown ethnicity scheme"):
        ethnic_group(pd.Series(["A"]), "census2021")


def test_is_recorded():
    codes = pd.Series(["A", "S", "Z", "99", None, "", "N"], dtype="string")
    assert is_recorded(codes).tolist() == [True, True, False, False, False, False, True]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(VALID_CODES + [None, ""]), min_size=0, max_size=40),
       st.sampled_from(["detailed", "broad", "pcref"]))
def test_fast_group_codes_match_ethnic_group(codes, scheme):
    s = pd.Series(codes, dtype="string")
    expected = pd.Categorical(ethnic_group(s, scheme))
    grp, focus = group_codes(s, scheme)
    assert np.array_equal(grp, np.asarray(expected.codes))
    assert np.array_equal(focus, s.isin(FOCUS_CODES).fillna(False).to_numpy(bool))
