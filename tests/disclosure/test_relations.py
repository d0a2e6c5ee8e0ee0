"""Relations between tables that issue 13 left open, each attacked: Kaplan-Meier people (midpoint-6) vs base-5
Table 1 counts, interrupted-time-series events vs the board series, the pooled gap vs each site's gap table,
and data quality (records = recorded + failing). Each relation holds on the true counts of a clean release,
the clean release gives neither attacker anything, and a planted leak of each kind is refused by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pcref_eval.disclosure import DisclosurePolicy
from pcref_eval.publish import Aggregate, Publisher
from pcref_eval.release_attack import attack, cell_interval, load_release, recovered_cells, release_relations
from pcref_eval.release_check import IdSet, check_release
from pcref_eval.survival.km import kaplan_meier

from .attacker import bounds_midpoint, recover

POLICY = DisclosurePolicy.opensafely()
KINDS = ("table", "km_table")
PCREF_GROUPS = ["White British", "Black African", "Black Caribbean", "Black Mixed", "Black Other", "Other groups"]


def _violations(run, kind):
    return [(v.file, v.where) for v in check_release(run, policy=POLICY, ids=IdSet()) if v.kind == kind]


def _cells(tables):
    """Released cells for the independent attacker: Kaplan-Meier counts tagged as midpoint-rounded."""
    return {(t.file, i, c): (("midpoint", t.raw.iloc[i][c], POLICY.km_rounding) if t.kind == "km_table"
                             else t.raw.iloc[i][c])
            for t in tables for c in t.raw.columns for i in range(len(t.raw))}


def _independent(release):
    tables = load_release(release, KINDS)
    rels = [(r.total, list(r.parts)) for r in release_relations(tables) if not r.rounded_sum]
    return recover(_cells(tables), rels, POLICY.threshold, POLICY.rounding)


def _truth(run: Path, cell):
    """True value of a released cell; Kaplan-Meier first rows read from the restricted (full) table."""
    if cell[0] == "virtual":
        return None
    released = pd.read_csv(run / "release" / cell[0])
    true = pd.read_csv(run / "restricted" / "tables" / Path(cell[0]).name)
    if "n_risk" == cell[2] and "time" in released:
        g = released.iloc[cell[1]]["group"]
        return true[true["group"] == g].sort_values("time").iloc[0]["n_risk"]
    return true.iloc[cell[1]][cell[2]]


def _assert_relations_hold(run, kinds):
    rels = [r for r in release_relations(load_release(run / "release", KINDS)) if not r.rounded_sum]
    assert kinds <= {r.kind for r in rels}
    virtual: dict = {}
    for r in rels:
        parts = sum(_truth(run, p) for p in r.parts)
        if r.total[0] == "virtual":
            assert virtual.setdefault(r.total, parts) == parts, r
        else:
            assert _truth(run, r.total) == parts, r


# ------------------------------------------------------------------------------------ Kaplan-Meier vs Table 1


def _km_site(run, people: dict[str, int], black_broad: int, prefix="site_a"):
    """Table 1 (PCREF groups) and a broad-group KM table whose Black group is Black African + Caribbean + Other."""
    pub = Publisher(run, prefix, POLICY, display=False)
    t1 = pd.DataFrame({"group": list(people), "people": list(people.values())})
    pub.release_table(Aggregate(t1, ["people"], labels=["group"]), "table_one", "Table 1")
    sizes = {"White": people["White British"], "Black": black_broad, "Mixed": people["Black Mixed"],
             "Asian": people["Other groups"] // 2, "Other": people["Other groups"] - people["Other groups"] // 2}

    def group(g, n):  # 40% (at least 7) detained early, the rest censored late: every group is released
        k = max(7, int(0.4 * n))
        return pd.DataFrame({"group": g, "years": np.r_[np.linspace(0.1, 1, k), np.linspace(3, 4, n - k)],
                             "event": np.r_[np.ones(k, bool), np.zeros(n - k, bool)]})
    df = pd.concat([group(g, n) for g, n in sizes.items()], ignore_index=True)
    km = kaplan_meier(df, "years", "event", group_col="group")
    return pub.km_table(km, "km_broad", "KM")


COINCIDENCE = {"White British": 640, "Black African": 18, "Black Caribbean": 0, "Black Mixed": 60, "Black Other": 0,
               "Other groups": 230}


def test_publisher_withholds_a_km_group_whose_two_roundings_pin_a_count(tmp_path):
    """Black broad = 18 + 0 + 0: Table 1 releases 20 (18..22), the KM table would say roundmid(18) = 15 (13..18),
    18 exactly; the publisher withholds the KM table's Black group instead (secondary suppression)."""
    _km_site(tmp_path, COINCIDENCE, black_broad=18)
    km_rows = pd.read_csv(tmp_path / "release" / "tables" / "site_a_km_broad.csv")
    assert "Black" not in set(km_rows["group"]) and {"White", "Mixed"} <= set(km_rows["group"])
    assert _violations(tmp_path, "differencing") == [] and _independent(tmp_path / "release") == {}


def test_km_people_against_table_one_hold_and_a_coincidence_of_roundings_is_refused(tmp_path, monkeypatch):
    import pcref_eval.release_attack as ra
    monkeypatch.setattr(ra, "withheld_km_groups", lambda *a, **k: [])  # planted: the publisher's repair skipped
    people = COINCIDENCE
    _km_site(tmp_path, people, black_broad=18)
    _assert_relations_hold(tmp_path, {"Kaplan-Meier Black = Table 1 Black groups",
                                      "Kaplan-Meier people = Table 1 recorded people"})
    diff = _violations(tmp_path, "differencing")
    assert ("tables/site_a_table_one.csv", "row 2, column 'people'") in diff
    km_rows = pd.read_csv(tmp_path / "release" / "tables" / "site_a_km_broad.csv")
    black_first = int(np.flatnonzero(km_rows["group"] == "Black")[0])
    assert ("tables/site_a_km_broad.csv", f"row {black_first + 1}, column 'n_risk'") in diff
    found = _independent(tmp_path / "release")
    assert found[("tables/site_a_table_one.csv", 1, "people")] == 18  # the MILP attacker agrees


def test_km_people_against_table_one_clean_release(tmp_path):
    people = {"White British": 640, "Black African": 113, "Black Caribbean": 97, "Black Mixed": 60,
              "Black Other": 41, "Other groups": 230}
    _km_site(tmp_path, people, black_broad=113 + 97 + 41)
    _assert_relations_hold(tmp_path, {"Kaplan-Meier Black = Table 1 Black groups"})
    assert _violations(tmp_path, "differencing") == [] and _independent(tmp_path / "release") == {}


def test_midpoint_intervals_agree_with_roundmid():
    from pcref_eval.survival.release import roundmid
    for x in range(1, 200):
        v = int(roundmid(x, 6))
        lo, hi, _ = cell_interval(str(v), POLICY, "midpoint")
        assert lo <= x <= hi and hi - lo == 5 and bounds_midpoint(str(v), 6)[:2] == (lo, hi)


# ------------------------------------------------------------------------------------ ITS vs board series


def _its_site(run, focus, reference, months_before=6):
    pub = Publisher(run, "site_a", POLICY, display=False)
    periods = [str(p) for p in pd.period_range("2023-01", periods=len(focus), freq="M")]
    series = pd.DataFrame({"period": periods, "focus_count": focus, "reference_count": reference})
    pub.release_table(Aggregate(series, ["focus_count", "reference_count"], labels=["period"]),
                      "board_detentions_series", "series")
    k = months_before
    ie = pd.DataFrame({"measure_id": ["detentions"], "months_before": [k], "months_after": [len(focus) - k],
                       "focus_events_pre": [sum(focus[:k])], "focus_events_post": [sum(focus[k:])],
                       "reference_events_pre": [sum(reference[:k])], "reference_events_post": [sum(reference[k:])]})
    return pub.release_table(Aggregate(ie, ["focus_events_pre", "focus_events_post", "reference_events_pre",
                                            "reference_events_post"], labels=["measure_id", "months_before",
                                                                              "months_after"]),
                             "implementation_effect", "ITS")


def test_its_events_against_series_hold_and_an_exact_total_is_refused(tmp_path):
    focus = [21, 18, 33, 4, 26, 19, 22, 31, 16, 27, 24, 23]
    reference = [40, 52, 47, 61, 38, 44, 59, 41, 50, 48, 39, 57]
    rt = _its_site(tmp_path, focus, reference)
    _assert_relations_hold(tmp_path, {"ITS events before/after go-live = sum of the series' periods"})
    assert _violations(tmp_path, "differencing") == [] and _independent(tmp_path / "release") == {}
    # planted: the months exact (policy skipped) and the pre-go-live total exact: the redacted April comes back
    s_path = tmp_path / "release" / "tables" / "site_a_board_detentions_series.csv"
    s = pd.read_csv(s_path, dtype=str)
    s["focus_count"] = [str(v) if v > 7 else "[REDACTED]" for v in focus]
    s.to_csv(s_path, index=False)
    ie = pd.read_csv(rt.path, dtype=str)
    ie.loc[0, "focus_events_pre"] = str(sum(focus[:6]))
    ie.to_csv(rt.path, index=False)
    # (the months after go-live, exact too, also give back the rounded post-go-live total)
    assert set(_violations(tmp_path, "differencing")) == {
        ("tables/site_a_board_detentions_series.csv", "row 4, column 'focus_count'"),
        ("tables/site_a_implementation_effect.csv", "row 1, column 'focus_events_post'")}
    found = _independent(tmp_path / "release")
    assert found[("tables/site_a_board_detentions_series.csv", 3, "focus_count")] == 4
    assert found[("tables/site_a_implementation_effect.csv", 0, "focus_events_post")] == sum(focus[6:])


# ------------------------------------------------------------------------------------ pooled gap vs site gap


def _gap_release(run, sites: dict[str, tuple[int, int]]):
    for sid, (pre, post) in sites.items():
        df = pd.DataFrame({"quantity": ["Ratio of hazard ratios (after / before)"], "estimate": [0.7],
                           "focus_detentions_pre": [pre], "focus_detentions_post": [post]})
        Publisher(run, sid, POLICY, display=False).release_table(
            Aggregate(df, ["focus_detentions_pre", "focus_detentions_post"], labels=["quantity"],
                      model={"estimate": ["focus_detentions_pre", "focus_detentions_post"]}), "gap_change", "gap")
    pooled = pd.DataFrame({"label": list(sites), "estimate": [0.7] * len(sites),
                           "focus_detentions": [a + b for a, b in sites.values()]})
    return Publisher(run, "all", POLICY, display=False).release_table(
        Aggregate(pooled, ["focus_detentions"], labels=["label"], model={"estimate": ["focus_detentions"]}),
        "gap_pooled", "pooled")


def test_pooled_gap_against_site_gap_holds_and_an_exact_pooled_count_is_refused(tmp_path):
    rt = _gap_release(tmp_path, {"site_a": (339, 492), "site_d": (27, 4)})
    _assert_relations_hold(tmp_path, {"pooled gap: site's detentions = before + after go-live"})
    assert _violations(tmp_path, "differencing") == [] and _independent(tmp_path / "release") == {}
    # planted: site_d's pooled count exact (31) and its pre-go-live count exact (27): 4 after go-live
    p = pd.read_csv(rt.path, dtype=str)
    p.loc[1, "focus_detentions"] = "31"
    p.to_csv(rt.path, index=False)
    g_path = tmp_path / "release" / "tables" / "site_d_gap_change.csv"
    g = pd.read_csv(g_path, dtype=str)
    g.loc[0, "focus_detentions_pre"] = "27"
    g.to_csv(g_path, index=False)
    assert ("tables/site_d_gap_change.csv", "row 1, column 'focus_detentions_post'") in _violations(tmp_path,
                                                                                                   "differencing")
    assert _independent(tmp_path / "release")[("tables/site_d_gap_change.csv", 0, "focus_detentions_post")] == 4


# ------------------------------------------------------------------------------------ data quality


def _dq_release(run, recorded, total):
    """As the report builder publishes them: failed checks and completeness from two publishers of one prefix."""
    check = "ethnicity recorded (not 'not stated', 'not known' or blank)"
    failing = pd.DataFrame({"table": ["people"], "column": ["ethnic_category"], "check": [check],
                            "severity": ["warning"], "rows_failing": [total - recorded]})
    Publisher(run, "dq_site_a", POLICY, display=False).release_table(
        Aggregate(failing, ["rows_failing"], labels=["table", "column", "check", "severity"]), "failed_checks", "f")
    comp = pd.DataFrame({"table": ["people"], "recorded": [recorded], "total": [total]})
    return Publisher(run, "dq_site_a", POLICY, display=False).release_table(
        Aggregate(comp, ["recorded", "total"], labels=["table"]), "ethnicity_completeness", "c")


def test_data_quality_failing_holds_and_exact_totals_are_refused(tmp_path):
    rt = _dq_release(tmp_path, recorded=6441, total=6444)
    _assert_relations_hold(tmp_path, {"data quality: records = recorded + failing"})
    assert check_release(tmp_path, policy=POLICY, ids=IdSet()) == []  # both tables indexed, nothing recovered
    assert _independent(tmp_path / "release") == {}
    c = pd.read_csv(rt.path, dtype=str)
    c.loc[0, "recorded"], c.loc[0, "total"] = "6441", "6444"  # planted: exact counts
    c.to_csv(rt.path, index=False)
    assert ("tables/dq_site_a_failed_checks.csv", "row 1, column 'rows_failing'") in _violations(tmp_path,
                                                                                                "differencing")


def test_two_rounded_counts_never_pin_their_difference():
    """By construction: total and recorded both rounded to base 5 leave failing = total - recorded in an interval
    of at least two values, so the data-quality relation alone cannot give back a failing count."""
    for total in range(10, 400):
        for recorded in range(8, total + 1):
            fail = total - recorded
            t, r = (float(POLICY.round([x])[0]) for x in (total, recorded))
            tl, th, _ = cell_interval(str(int(t)), POLICY)
            rl, rh, _ = cell_interval(str(int(r)), POLICY)
            fl, fh = max(tl - rh, 0), th - rl
            if 1 <= fail <= POLICY.threshold:
                fl = max(fl, 1)
            else:
                f = float(POLICY.round([fail])[0])
                fl2, fh2, _ = cell_interval(str(int(f)), POLICY) if f else (0, 0, "zero")
                fl, fh = max(fl, fl2), min(fh, fh2)
            assert fl <= fail <= fh and (fh > fl or fail == 0), (total, recorded)
