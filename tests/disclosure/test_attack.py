"""check-release as an attacker: planted leaks of each kind are refused (file, row, column named), and random
multi-site releases published through the Publisher give an independent attacker (exact integer
programming, tests/disclosure/attacker.py) no rounded or redacted count back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcref_eval.disclosure import DisclosurePolicy, Proportion, Rate, Totals
from pcref_eval.publish import Aggregate, Publisher
from pcref_eval.release_attack import attack, load_release, recovered_cells, release_relations
from pcref_eval.release_check import check_release

from .attacker import recover

GROUPS = ["White British", "Black African", "Black Caribbean", "Black Mixed", "Other"]
POLICIES = [DisclosurePolicy.opensafely(), DisclosurePolicy.nhse_mha(), DisclosurePolicy.strict()]


def table_one(people: list[int], detained: list[int]) -> Aggregate:
    df = pd.DataFrame({"group": GROUPS[:len(people)], "people": people, "first_detention": detained})
    df["first_detention_pct"] = 100 * df["first_detention"] / df["people"].where(df["people"] > 0)
    return Aggregate(df, ["people", "first_detention"],
                     {"first_detention_pct": Proportion("first_detention", "people")}, labels=["group"])


def flow(people: list[int]) -> Aggregate:
    groups = GROUPS[:len(people)]
    df = pd.DataFrame([{"step": "People in extract", "All": sum(people) + 40, **{g: p + 8 for g, p in zip(groups, people)}},
                       {"step": "Aged 18 or over", "All": sum(people), **dict(zip(groups, people))}])
    return Aggregate(df, ["All", *groups], labels=["step"], totals=Totals(columns={"All": list(groups)}))


def publish_release(root: Path, sites: dict[str, tuple[list[int], list[int]]], policy: DisclosurePolicy) -> Path:
    """Per site: cohort flow + Table 1; 'all': Table 1 of the union (what the notebooks publish)."""
    for sid, (people, detained) in sites.items():
        pub = Publisher(root, sid, policy, display=False)
        pub.release_table(flow(people), "cohort_flow", "flow")
        pub.release_table(table_one(people, detained), "table_one", "t1")
    people = list(np.sum([p for p, _ in sites.values()], axis=0))
    detained = list(np.sum([d for _, d in sites.values()], axis=0))
    Publisher(root, "all", policy, display=False).release_table(table_one(people, detained), "table_one", "t1")
    return root / "release"


def independent_recoveries(release: Path, policy: DisclosurePolicy) -> dict:
    tables = load_release(release)
    cells = {(t.file, i, c): t.raw.iloc[i][c] for t in tables for c in t.raw.columns for i in range(len(t.raw))}
    rels = [(r.total, list(r.parts)) for r in release_relations(tables) if not r.rounded_sum]
    return recover(cells, rels, policy.threshold, policy.rounding)


def true_values(root: Path, cell) -> float:
    return pd.read_csv(root / "restricted" / "tables" / Path(cell[0]).name).iloc[cell[1]][cell[2]]


def kinds(violations) -> set[str]:
    return {v.kind for v in violations}


# --------------------------------------------------------------------------------------------- planted leaks


def test_clean_release_passes_and_relations_hold_on_the_true_counts(tmp_path):
    sites = {"site_a": ([4613, 1287, 1118, 9, 633], [476, 160, 150, 2, 40]),
             "site_b": ([2210, 508, 7, 3, 219], [131, 64, 1, 0, 12])}
    release = publish_release(tmp_path, sites, DisclosurePolicy.opensafely())
    assert check_release(tmp_path, ids=_no_ids()) == []
    rels = release_relations(load_release(release))
    assert {r.kind for r in rels} >= {"table_one: all sites = sum of sites", "cohort flow last step = Table 1",
                                      "total column"}
    for r in rels:
        if not r.rounded_sum:
            assert true_values(tmp_path, r.total) == sum(true_values(tmp_path, p) for p in r.parts), r


def test_rate_from_unrounded_counts_is_refused(tmp_path):
    """The issue's example: 476 detentions released as 475, the rate computed from 476."""
    df = pd.DataFrame({"group": ["White British", "Black African"], "events": [476, 126],
                       "population": [209215, 3155], "rate": [0.0, 0.0]})
    agg = Aggregate(df, ["events"], {"rate": Rate("events", "population", 1e5, 4.0)}, denominators=["population"],
                    labels=["group"])
    rt = Publisher(tmp_path, "site_d", display=False).release_table(agg, "detention_rates", "c")
    assert check_release(tmp_path, ids=_no_ids()) == []
    csv = rt.path.read_text().splitlines()
    csv[1] = csv[1].rsplit(",", 1)[0] + f",{476 / (209216 * 4) * 1e5:.2f}"  # the leak: rate from the true counts
    rt.path.write_text("\n".join(csv) + "\n")
    v = check_release(tmp_path, ids=_no_ids())
    assert [(x.file, x.where, x.kind) for x in v] == [("tables/site_d_detention_rates.csv", "row 1, column 'rate'",
                                                       "derived_unrounded")]


def test_percentage_from_unrounded_counts_is_refused(tmp_path):
    release = publish_release(tmp_path, {"site_a": ([4613, 1287], [476, 163])}, DisclosurePolicy.opensafely())
    path = release / "tables" / "site_a_table_one.csv"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0] + f",{100 * 163 / 1287:.2f}"
    path.write_text("\n".join(lines) + "\n")
    v = [x for x in check_release(tmp_path, ids=_no_ids()) if x.kind == "derived_unrounded"]
    assert [(x.file, x.where) for x in v] == [("tables/site_a_table_one.csv", "row 2, column 'first_detention_pct'")]


def test_site_minus_all_sites_differencing_is_refused(tmp_path):
    """An all-sites table that skipped rounding gives back the redacted site count by subtraction."""
    sites = {"site_a": ([4613, 1287, 12], [476, 160, 9]), "site_b": ([2210, 508, 3], [131, 64, 0])}
    release = publish_release(tmp_path, sites, DisclosurePolicy.opensafely())
    path = release / "tables" / "all_table_one.csv"
    df = pd.read_csv(path, dtype=str)
    df.loc[2, "people"] = "15"     # planted: 12 + 3 released exactly (a multiple of 5, so not 'unrounded')
    df.loc[2, "first_detention"] = "9"
    df.to_csv(path, index=False)
    tables = load_release(release)
    bounds = attack(tables, release_relations(tables), DisclosurePolicy.opensafely())
    v = check_release(tmp_path, ids=_no_ids())
    diff = {(x.file, x.where) for x in v if x.kind == "differencing"}
    assert ("tables/site_b_table_one.csv", "row 3, column 'first_detention'") not in diff  # a true zero is released 0
    assert "unrounded_count" in kinds(v)  # 9 is not a multiple of 5
    # site_b's redacted 3 people: all-sites 15 (read as 13..17) minus site_a's 10 (8..12) leaves 1..9: not exact
    assert ("tables/site_b_table_one.csv", "row 3, column 'people'") not in diff
    # the 9 detentions (exact, unrounded) minus site_b's released 0 pin site_a's rounded 10 to exactly 9
    assert ("tables/site_a_table_one.csv", "row 3, column 'first_detention'") in diff
    assert bounds[("tables/site_a_table_one.csv", 2, "first_detention")][:2] == (9, 9)


def test_count_released_two_ways_is_refused(tmp_path):
    release = publish_release(tmp_path, {"site_a": ([4613, 1287], [476, 163])}, DisclosurePolicy.opensafely())
    path = release / "tables" / "site_a_cohort_flow.csv"
    df = pd.read_csv(path, dtype=str)
    df.loc[1, "White British"] = "4610"  # Table 1 says 4615 for the same people
    df.to_csv(path, index=False)
    v = [x for x in check_release(tmp_path, ids=_no_ids()) if x.kind == "released_two_ways"]
    assert [(x.file, x.where) for x in v] == [("tables/site_a_table_one.csv", "row 1, column 'people'")]
    assert "site_a_cohort_flow.csv row 2, column 'White British'" in v[0].detail


def test_undeclared_table_and_server_path_are_refused(tmp_path):
    publish_release(tmp_path, {"site_a": ([4613, 1287], [476, 163])}, DisclosurePolicy.opensafely())
    index = tmp_path / "release" / "index" / "site_a.json"
    data = json.loads(index.read_text())
    del data["entries"][1]["columns"]
    index.write_text(json.dumps(data))
    (tmp_path / "release" / "notes.md").write_text("Site site_bb: [Errno 2] No such file or directory: "
                                                   "'/srv/secure/extracts/site_bb'\n")
    v = check_release(tmp_path, ids=_no_ids())
    assert ("tables/site_a_table_one.csv", "whole table", "undeclared_table") in {(x.file, x.where, x.kind) for x in v}
    assert ("notes.md", "line 1", "absolute_path") in {(x.file, x.where, x.kind) for x in v}


def test_window_total_against_months_is_an_attack_relation(tmp_path):
    """A 12-month window that skipped rounding, with one month redacted, gives that month back."""
    months = [f"2024-{m:02d}" for m in range(1, 13)]
    focus = [21, 18, 33, 4, 26, 19, 22, 31, 16, 27, 24, 23]  # none a multiple of 5: exact when planted
    series = pd.DataFrame({"period": months, "focus_count": focus})
    pub = Publisher(tmp_path, "site_a", display=False)
    pub.release_table(Aggregate(series, ["focus_count"], labels=["period"]), "board_detentions_series", "s")
    by_group = pd.DataFrame({"measure_id": ["detentions"], "group": ["Black (all focus groups)"], "count": [sum(focus)]})
    rt = pub.release_table(Aggregate(by_group, ["count"], labels=["measure_id", "group"]), "board_by_group", "b")
    assert not [x for x in check_release(tmp_path, ids=_no_ids()) if x.kind == "differencing"]
    # planted: every month exact (policy skipped) except the redacted one, and the window exact
    s_path = tmp_path / "release" / "tables" / "site_a_board_detentions_series.csv"
    s = pd.read_csv(s_path, dtype=str)
    s["focus_count"] = [str(v) if v > 7 else "[REDACTED]" for v in focus]
    s.to_csv(s_path, index=False)
    b = pd.read_csv(rt.path, dtype=str)
    b.loc[0, "count"] = str(sum(focus))
    b.to_csv(rt.path, index=False)
    diff = [x for x in check_release(tmp_path, ids=_no_ids()) if x.kind == "differencing"]
    assert [(x.file, x.where) for x in diff] == [("tables/site_a_board_detentions_series.csv",
                                                  "row 4, column 'focus_count'")]


# --------------------------------------------------------------------------------------------- property test

SMALL = st.one_of(st.integers(0, 12), st.integers(0, 40), st.integers(40, 3000))


@st.composite
def releases(draw, max_sites=6):
    n_groups = draw(st.integers(2, 5))
    n_sites = draw(st.integers(1, max_sites))
    sites = {}
    for i in range(n_sites):
        people = [draw(SMALL) for _ in range(n_groups)]
        detained = [draw(st.integers(0, p)) for p in people]
        sites[f"site_{chr(97 + i)}"] = (people, detained)
    return sites, draw(st.sampled_from(POLICIES))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(releases())
def test_random_releases_give_an_attacker_nothing(tmp_path_factory, case):
    sites, policy = case
    root = tmp_path_factory.mktemp("rel")
    release = publish_release(root, sites, policy)
    assert independent_recoveries(release, policy) == {}
    tables = load_release(release)
    assert recovered_cells(attack(tables, release_relations(tables), policy)) == []
    assert not [v for v in check_release(root, policy=policy, ids=_no_ids())
                if v.kind in ("differencing", "derived_unrounded", "released_two_ways")]


def test_an_all_sites_total_that_pins_the_sites_is_suppressed(tmp_path):
    """Found by the property test above: sites of 8, 1 and 8 people released as 10, [REDACTED] and 10 are at least
    8, 1 and 8, so an all-sites 17 released as 15 (13-17) pins all four counts. The publisher redacts the total
    (secondary suppression across tables), and the release check passes."""
    sites = {"site_a": ([0, 8], [0, 0]), "site_b": ([0, 1], [0, 0]), "site_c": ([0, 8], [0, 0])}
    policy = DisclosurePolicy.opensafely()
    release = publish_release(tmp_path, sites, policy)
    assert independent_recoveries(release, policy) == {}
    all_sites = pd.read_csv(release / "tables" / "all_table_one.csv", dtype=str)
    assert all_sites.loc[1, "people"] == "[REDACTED]"
    assert not [v for v in check_release(tmp_path, policy=policy, ids=_no_ids()) if v.kind == "differencing"]


def test_independent_attacker_finds_a_planted_exact_total(tmp_path):
    """The MILP attacker is not blind: with an exact all-sites total it recovers the redacted site count."""
    sites = {"site_a": ([4613, 12], [476, 9]), "site_b": ([2210, 3], [131, 0])}
    release = publish_release(tmp_path, sites, DisclosurePolicy.opensafely())
    for name, people in (("site_a_table_one.csv", "4613"), ("all_table_one.csv", "6823")):
        path = release / "tables" / name
        df = pd.read_csv(path, dtype=str)
        df.loc[0, "people"] = people  # planted: exact (unrounded) values
        df.to_csv(path, index=False)
    found = independent_recoveries(release, DisclosurePolicy.opensafely())
    assert found[("tables/site_b_table_one.csv", 0, "people")] == 2210
    assert found == {c: true_values(tmp_path, c) for c in found}  # what it recovers is the truth


def _no_ids():
    from pcref_eval.release_check import IdSet
    return IdSet()
