"""Disclosure control: policies, secondary suppression, totals from rounded parts, derived values (with hypothesis)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcref_eval.disclosure import (DisclosurePolicy, Totals, apply_policy, detect_totals, round_midpoint,
                                   suppression_mask)

OPENSAFELY = DisclosurePolicy.opensafely()
NHSE = DisclosurePolicy.nhse_mha()
POLICIES = st.sampled_from([OPENSAFELY, NHSE, DisclosurePolicy("custom", 10, 10)])
# counts concentrated where disclosure control bites (0..threshold and just above), with some large ones
COUNTS = st.one_of(st.integers(0, 12), st.integers(0, 40), st.integers(0, 5000))


# --------------------------------------------------------------------------------- unit behaviour


def test_policies_and_config():
    assert (OPENSAFELY.threshold, OPENSAFELY.rounding) == (7, 5)
    assert (NHSE.threshold, NHSE.rounding) == (4, 5)
    assert DisclosurePolicy.from_config(SimpleNamespace(policy="nhse_mha", threshold=None, rounding=5)) == NHSE
    assert DisclosurePolicy.from_config(SimpleNamespace(policy="opensafely", threshold=None, rounding=5)) == OPENSAFELY
    assert DisclosurePolicy.from_config(SimpleNamespace(policy="opensafely", threshold=10, rounding=10)).threshold == 10


def test_primary_redaction_and_rounding_half_up():
    out = OPENSAFELY.control_counts(pd.Series([0, 1, 7, 8, 12, 13, 2502, 2503]))
    assert out.isna().tolist() == [False, True, True, False, False, False, False, False]
    assert out.dropna().tolist() == [0, 10, 10, 15, 2500, 2505]
    assert NHSE.control_counts(pd.Series([4, 5])).tolist()[1] == 5 and np.isnan(NHSE.control_counts(pd.Series([4]))[0])


def test_derived_blanked_only_where_a_source_is_redacted():
    df = pd.DataFrame({"group": ["a", "b", "c"], "events": [3, 50, 20], "people": [100, 200, 5],
                       "pct": [3.0, 25.0, 400.0], "rate": [np.nan, 1.5, 2.0]})
    out, mask = apply_policy(df, OPENSAFELY, ["events", "people"], {"pct": ["events", "people"], "rate": ["events"]},
                             return_mask=True)
    assert out["pct"].isna().tolist() == [True, False, True]
    assert out["rate"].isna().tolist() == [True, False, False]
    # a value that never existed is "not available", not "redacted"
    assert mask["rate"].tolist() == [False, False, False] and mask["pct"].tolist() == [True, False, True]
    assert str(out["events"].dtype) == "Int64"


def test_apply_policy_rejects_undeclared_sources():
    df = pd.DataFrame({"n": [10], "rate": [1.0]})
    with pytest.raises(ValueError, match="not declared as counts"):
        apply_policy(df, OPENSAFELY, [], {"rate": ["n"]})
    with pytest.raises(KeyError):
        apply_policy(df, OPENSAFELY, ["missing"])


def test_secondary_suppression_against_a_total_row():
    df = pd.DataFrame({"group": ["a", "b", "c", "Total"], "n": [3, 40, 100, 143]})
    out = apply_policy(df, OPENSAFELY, ["n"], totals=Totals("group", "Total"))
    # 'a' alone redacted would be recoverable as Total - b - c: the next smallest (b) goes too
    assert out["n"].isna().tolist() == [True, True, False, False]
    assert out["n"].iloc[3] == 5 + 40 + 100  # total recomputed from rounded parts (3 -> 5)


def test_secondary_suppression_redacts_total_when_nothing_else_can_hide():
    df = pd.DataFrame({"group": ["a", "b", "Total"], "n": [3, 0, 3]})
    out = apply_policy(df, OPENSAFELY, ["n"], totals=Totals("group", "Total"))
    assert out["n"].isna().tolist() == [True, False, True]


def test_two_small_redacted_cells_that_together_are_still_small_need_a_third():
    df = pd.DataFrame({"group": ["a", "b", "c", "d", "Total"], "n": [1, 2, 30, 90, 123]})
    out = apply_policy(df, OPENSAFELY, ["n"], totals=Totals("group", "Total"))
    assert out["n"].isna().tolist() == [True, True, True, False, False]


def test_total_columns_and_grand_total_are_consistent():
    df = pd.DataFrame({"group": ["a", "b", "Total"], "female": [12, 33, 45], "male": [14, 21, 35],
                       "people": [26, 54, 80]})
    t = Totals("group", "Total", columns={"people": ["female", "male"]})
    out = apply_policy(df, OPENSAFELY, ["female", "male", "people"], totals=t)
    assert out.loc[2, "people"] == out.loc[2, "female"] + out.loc[2, "male"] == out.loc[:1, "people"].sum()


def test_totals_within_blocks():
    df = pd.DataFrame({"site": ["x"] * 3 + ["y"] * 3, "group": ["a", "b", "Total"] * 2, "n": [20, 30, 50, 4, 60, 64]})
    out = apply_policy(df, OPENSAFELY, ["n"], totals=Totals("group", "Total", by=("site",)))
    assert out["n"].tolist()[:3] == [20, 30, 50]
    assert out["n"].isna().tolist()[3:] == [True, True, False] and out["n"].iloc[5] == 5 + 60


def test_detect_totals_only_when_arithmetic_holds():
    df = pd.DataFrame({"group": ["a", "b", "All"], "n": [10, 20, 30]})
    assert detect_totals(df, ["n"]) == Totals("group", "All")
    assert detect_totals(df.assign(n=[10, 20, 31]), ["n"]) is None
    flow = pd.DataFrame({"step": ["in extract", "aged 18+"], "All": [60, 50], "A": [40, 45], "B": [20, 5]})
    t = detect_totals(flow, ["All", "A", "B"])
    assert t.columns == {"All": ["A", "B"]} and t.label_col is None
    out = apply_policy(flow, OPENSAFELY, ["All", "A", "B"], totals=t)
    assert out["B"].isna().tolist() == [False, True] and out["A"].isna().tolist() == [False, True]
    assert out["All"].tolist() == [60, 50]


def test_round_midpoint_six():
    assert round_midpoint([0, 1, 6, 7, 12, 13, 100]).tolist() == [0, 3, 3, 9, 9, 15, 99]


# ---------------------------------------------------------------------------------------- properties


@st.composite
def count_tables(draw):
    n_groups = draw(st.integers(1, 7))
    n_cols = draw(st.integers(1, 3))
    cols = [f"c{j}" for j in range(n_cols)]
    data = {c: draw(st.lists(COUNTS, min_size=n_groups, max_size=n_groups)) for c in cols}
    df = pd.DataFrame({"group": [f"g{i}" for i in range(n_groups)], **data})
    with_total_col = n_cols >= 2 and draw(st.booleans())
    if with_total_col:
        df["all_cols"] = df[cols].sum(axis=1)
    total = df.drop(columns="group").sum().to_dict()
    df = pd.concat([df, pd.DataFrame([{"group": "Total", **total}])], ignore_index=True)
    df["rate"] = df[cols[0]] / 3.0
    totals = Totals("group", "Total", columns={"all_cols": cols} if with_total_col else {})
    counts = cols + (["all_cols"] if with_total_col else [])
    return df, counts, totals


def _lines(df, counts, totals):
    """(total cell, part cells) as (row, col) pairs, mirroring the declared totals."""
    total_row = int(np.flatnonzero(df["group"] == "Total")[0])
    parts_rows = [i for i in range(len(df)) if i != total_row]
    lines = [((total_row, c), [(r, c) for r in parts_rows]) for c in counts]
    for tc, parts in totals.columns.items():
        lines += [((r, tc), [(r, p) for p in parts]) for r in range(len(df))]
    return lines


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=count_tables(), policy=POLICIES)
def test_released_tables_are_safe_and_consistent(table, policy):
    check_released_table(table, policy)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=count_tables(), policy=POLICIES)
def test_released_tables_are_safe_and_consistent_many(table, policy):
    check_released_table(table, policy)


def check_released_table(table, policy):
    df, counts, totals = table
    out, mask = apply_policy(df, policy, counts, {"rate": [counts[0]]}, totals=totals, return_mask=True)
    for c in counts:
        shown = out[c].dropna().astype(float)
        # no released count lies in 1..threshold, and every released count is a multiple of the rounding base
        assert not ((shown >= 1) & (shown <= policy.threshold)).any()
        assert (shown % policy.rounding == 0).all()
    # derived values are blank whenever their source count is redacted
    assert out.loc[mask[counts[0]], "rate"].isna().all()
    # every part's rounded value; a total column is the sum of its rounded parts (also when it is a part itself)
    # and the total row is the sum of the other rows' (recomputed) values
    rounded = {c: policy.round(df[c]) for c in counts}
    for tc, parts in totals.columns.items():
        rounded[tc] = sum(rounded[p] for p in parts)
    total_row = int(np.flatnonzero(df["group"] == "Total")[0])
    for c in counts:
        rounded[c][total_row] = sum(rounded[c][i] for i in range(len(df)) if i != total_row)
    for (tr, tc), parts in _lines(df, counts, totals):
        if pd.isna(out.at[tr, tc]):
            continue
        part_counts = [c for _, c in parts]
        part_rows = [r for r, _ in parts]
        # the total is the sum of its parts' rounded values ...
        expected = sum(rounded[c][r] for r, c in parts)
        assert out.at[tr, tc] == expected
        shown = [out.at[r, c] for r, c in parts]
        redacted = [(r, c) for (r, c), v in zip(parts, shown) if pd.isna(v) and df.at[r, c] > 0]
        if not redacted:
            # ... which, with nothing redacted, is exactly the sum of the released parts
            assert out.at[tr, tc] == sum(int(v) for v in shown if not pd.isna(v))
        else:
            # ... and no redacted cell can be recovered by subtraction: at least two are hidden, together > threshold
            assert len(redacted) >= 2
            assert sum(df.at[r, c] for r, c in redacted) > policy.threshold
            residual = out.at[tr, tc] - sum(int(v) for v in shown if not pd.isna(v))
            assert not (1 <= residual <= policy.threshold)
        assert part_counts and part_rows


@settings(max_examples=80, deadline=None)
@given(values=st.lists(COUNTS, min_size=1, max_size=30), policy=POLICIES)
def test_without_totals_only_primary_redaction(values, policy):
    df = pd.DataFrame({"n": values})
    mask = suppression_mask(df, policy, ["n"])
    def small(x):
        return 1 <= x <= policy.threshold
    expected = [small(v) or small(policy.round([v])[0]) for v in values]
    assert mask["n"].tolist() == expected
    out = apply_policy(df, policy, ["n"])
    for v, o, e in zip(values, out["n"], expected):
        if e:
            assert pd.isna(o)
        else:
            assert o % policy.rounding == 0 and abs(o - v) <= policy.rounding / 2


def test_midpoint6_reexported_from_survival():
    from pcref_eval import disclosure
    from pcref_eval.survival.release import km_release_table, roundmid
    x = np.arange(0, 50)
    assert (round_midpoint(x) == roundmid(x)).all()
    assert disclosure.km_release_table is km_release_table
