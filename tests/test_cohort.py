"""Cohort definition on a hand-built extract where every person's outcome is known."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from pcref_eval.cohort import build_cohort, censor_at_go_live
from pcref_eval.config import CohortConfig, EthnicityConfig, StudyConfig
from pcref_eval.extract import SiteExtract, SiteInfo

D = pd.Timestamp


def _site(people, referrals, episodes) -> SiteExtract:
    cols_p = ["person_id", "ethnic_category", "gender", "year_of_birth", "imd_decile", "date_of_death"]
    p = pd.DataFrame(people, columns=cols_p)
    p["ethnic_category"] = p["ethnic_category"].astype("string")
    p["year_of_birth"] = p["year_of_birth"].astype("Int64")
    p["imd_decile"] = p["imd_decile"].astype("Int64")
    p["date_of_death"] = pd.to_datetime(p["date_of_death"])
    r = pd.DataFrame(referrals, columns=["referral_id", "person_id", "referral_date", "source_of_referral", "discharge_date"])
    for c in ("referral_date", "discharge_date"):
        r[c] = pd.to_datetime(r[c])
    e = pd.DataFrame(episodes, columns=["episode_id", "person_id", "legal_status_code", "start_date", "end_date"])
    for c in ("start_date", "end_date"):
        e[c] = pd.to_datetime(e[c])
    info = SiteInfo("s", "Test site", date(2022, 6, 1), date(2023, 12, 31))
    return SiteExtract(folder=None, info=info, tables={"people": p, "referrals": r, "mha_episodes": e})


@pytest.fixture
def cohort_and_flow():
    people = [
        ("p1", "M", "1", 1980, 3, None),          # detained (s2) 10 days after referral
        ("p2", "A", "2", 1970, 7, "2022-03-01"),  # dies before any detention -> competing event
        ("p3", "N", "1", 1990, None, None),       # discharged from referral, detained later -> censored
        ("p4", "A", "2", 2010, 5, None),          # aged under 18 -> excluded
        ("p5", "A", "1", 1960, 5, None),          # only referral before the window -> excluded
        ("p6", "Z", "1", 1985, 2, None),          # detained under s2 before index, still open -> excluded
        ("p7", None, "9", 1975, 4, None),         # s136 only, then extract date censoring
        ("p8", "D", "2", 1988, 1, None),          # detained on the index date -> 0.5 days
    ]
    referrals = [
        ("r1", "p1", "2022-01-01", "E1", None),
        ("r2", "p2", "2022-01-01", "A1", None),
        ("r3", "p3", "2022-01-01", "A1", "2022-02-01"),
        ("r3b", "p3", "2022-02-10", "A1", None),  # second referral: not the index
        ("r4", "p4", "2022-01-01", "A1", None),
        ("r5", "p5", "2020-01-01", "A1", "2020-05-01"),
        ("r6", "p6", "2022-01-15", "A1", None),
        ("r7", "p7", "2022-07-01", "H1", None),
        ("r8", "p8", "2022-08-01", "E1", None),
    ]
    episodes = [
        ("e1", "p1", "02", "2022-01-11", "2022-02-01"),
        ("e1b", "p1", "03", "2022-02-01", None),  # s2 then s3: first detention is still e1
        ("e3", "p3", "02", "2022-03-01", None),
        ("e6", "p6", "02", "2022-01-01", None),
        ("e7", "p7", "20", "2022-09-01", "2022-09-02"),
        ("e8", "p8", "03", "2022-08-01", None),
    ]
    site = _site(people, referrals, episodes)
    return build_cohort(site, StudyConfig(start=date(2021, 4, 1), end=date(2023, 3, 31)), CohortConfig(),
                        EthnicityConfig(scheme="pcref"))


def test_outcomes(cohort_and_flow):
    cohort, _ = cohort_and_flow
    c = cohort.set_index("person_id")
    assert sorted(c.index) == ["p1", "p2", "p3", "p7", "p8"]
    assert (c.loc["p1", "status"], c.loc["p1", "duration_days"]) == (1, 10)
    assert (c.loc["p2", "status"], c.loc["p2", "duration_days"]) == (2, 59)
    assert (c.loc["p3", "status"], c.loc["p3", "duration_days"]) == (0, 31)
    assert (c.loc["p7", "status"], c.loc["p7", "place_of_safety"]) == (0, 1)
    assert c.loc["p7", "duration_days"] == (D("2023-12-31") - D("2022-07-01")).days
    assert (c.loc["p8", "status"], c.loc["p8", "duration_days"]) == (1, 0.5)
    assert c.loc["p7", "ethnic_group"] == "Missing" and c.loc["p8", "ethnic_group"] == "Black Mixed"
    assert list(c["period"]) == ["pre", "pre", "pre", "post", "post"]


def test_flow_table_counts_each_exclusion(cohort_and_flow):
    _, flow = cohort_and_flow
    assert flow["All"].tolist() == [8, 7, 6, 6, 5]
    assert flow.iloc[0]["Not stated"] == 1 and flow.iloc[-1]["Not stated"] == 0  # p6 excluded: detained at index
    assert flow.iloc[2]["White British"] == 1  # p4 (child) and p5 (no referral) gone, p2 stays


def test_censor_at_go_live_cuts_only_pre_period_follow_up(cohort_and_flow):
    cohort, _ = cohort_and_flow
    cut = censor_at_go_live(cohort, date(2022, 1, 20)).set_index("person_id")
    c = cohort.set_index("person_id")
    assert (cut.loc["p1", "status"], cut.loc["p1", "duration_days"]) == (1, 10)  # event before go-live kept
    assert (cut.loc["p2", "status"], cut.loc["p2", "duration_days"]) == (0, 19)  # censored at go-live
    assert cut.loc["p7", "duration_days"] == c.loc["p7", "duration_days"]       # post period untouched
