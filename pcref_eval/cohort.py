"""The time-to-first-detention cohort, built from one site's extract.

Definition (all configurable through :class:`~pcref_eval.config.EvaluationConfig`):

- **Index referral**: each person's first referral with a referral date inside the study window.
  Time origin is the index referral date.
- **Exclusions**, counted step by step in a flow table by ethnic group: no referral in the window;
  aged under ``cohort.min_age`` at the index referral; already detained on the index date (a
  detention episode open on that day); index referral after the extract date (bad data).
- **Event** (status 1): the first MHA episode whose legal status is in ``cohort.detention_codes``
  starting on or after the index date. Place-of-safety holds (s135/s136) are a separate outcome.
- **Competing event** (status 2): death before detention.
- **Censoring** (status 0): service discharge of the index referral, or the extract date.
- A detention or death on the index date gets a duration of 0.5 days (survival methods need t > 0).

The ``period`` column is ``pre``/``post`` the site's PCREF go-live by index date. For the
"did the gap narrow?" model, :func:`censor_at_go_live` censors pre-period follow-up at the
go-live date so that pre and post risk sets do not overlap (exact under a calendar-time effect).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from pcref_eval.config import CohortConfig, EthnicityConfig, StudyConfig
from pcref_eval.ethnicity import ethnic_group
from pcref_eval.extract import SiteExtract

STATUS_CENSORED, STATUS_DETENTION, STATUS_DEATH = 0, 1, 2
SAME_DAY_DURATION = 0.5


def first_referral_in_window(referrals: pd.DataFrame, study: StudyConfig) -> pd.DataFrame:
    """Each person's first referral dated within the study window (ties broken by referral_id)."""
    start, end = pd.Timestamp(study.start), pd.Timestamp(study.end)
    inside = referrals[(referrals["referral_date"] >= start) & (referrals["referral_date"] <= end)]
    first = inside.sort_values(["person_id", "referral_date", "referral_id"]).drop_duplicates("person_id")
    return first.rename(columns={"referral_date": "index_date", "discharge_date": "referral_discharge_date"})


def first_event_after(episodes: pd.DataFrame, index: pd.DataFrame, codes: list[str], name: str) -> pd.Series:
    """Date of each person's first episode with a legal status in ``codes`` on or after their index date."""
    ep = episodes.loc[episodes["legal_status_code"].isin(codes), ["person_id", "start_date"]]
    ep = ep.merge(index[["person_id", "index_date"]], on="person_id")
    ep = ep[ep["start_date"] >= ep["index_date"]]
    return ep.groupby("person_id")["start_date"].min().rename(name)


def detained_on_index(episodes: pd.DataFrame, index: pd.DataFrame, codes: list[str]) -> pd.Index:
    """Person ids with a detention episode open on their index date (started before it)."""
    ep = episodes.loc[episodes["legal_status_code"].isin(codes), ["person_id", "start_date", "end_date"]]
    ep = ep.merge(index[["person_id", "index_date"]], on="person_id")
    open_ = (ep["start_date"] < ep["index_date"]) & (ep["end_date"].isna() | (ep["end_date"] >= ep["index_date"]))
    return pd.Index(ep.loc[open_, "person_id"].unique())


def build_cohort(site: SiteExtract, study: StudyConfig, cohort: CohortConfig,
                 ethnicity: EthnicityConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build the cohort (one row per person) and its flow table (people at each step by group).

    Cohort columns: person_id, site_id, ethnic_category, ethnic_group (configured scheme),
    broad_group, age, sex, imd_decile, index_date, period, duration_days, status
    (0 censored, 1 detention, 2 death), place_of_safety (0/1 before censoring).
    """
    people = site["people"].drop_duplicates("person_id")
    people = people.assign(
        ethnic_group=ethnic_group(people["ethnic_category"], ethnicity.scheme),
        broad_group=ethnic_group(people["ethnic_category"], "broad"),
    )
    flow = _FlowTable(people)
    index = first_referral_in_window(site["referrals"], study)
    base = people.merge(index[["person_id", "referral_id", "index_date", "referral_discharge_date"]], on="person_id")
    flow.step("Index referral in study window", base)
    base = base.assign(age=base["index_date"].dt.year - base["year_of_birth"].astype("float"))
    base = base[base["age"] >= cohort.min_age]
    flow.step(f"Aged {cohort.min_age} or over at index referral", base)
    base = base[base["index_date"] <= pd.Timestamp(site.info.extract_date)]
    flow.step("Index referral not after the extract date", base)
    base = base[~base["person_id"].isin(detained_on_index(site["mha_episodes"], index, cohort.detention_codes))]
    flow.step("Not already detained at index referral", base)
    cohort_df = assign_outcomes(base, site, index, cohort)
    cohort_df["site_id"] = site.info.site_id
    cohort_df["period"] = np.where(cohort_df["index_date"] >= pd.Timestamp(site.info.pcref_go_live), "post", "pre")
    cohort_df["sex"] = cohort_df["gender"].astype("string")
    cols = ["person_id", "site_id", "ethnic_category", "ethnic_group", "broad_group", "age", "sex", "imd_decile",
            "index_date", "period", "duration_days", "status", "place_of_safety"]
    return cohort_df[cols].reset_index(drop=True), flow.table()


def assign_outcomes(base: pd.DataFrame, site: SiteExtract, index: pd.DataFrame, cohort: CohortConfig) -> pd.DataFrame:
    """Duration and status: first detention vs death (competing) vs censoring at discharge/extract date."""
    episodes = site["mha_episodes"]
    detention = first_event_after(episodes, index, cohort.detention_codes, "detention_date")
    pos = first_event_after(episodes, index, cohort.place_of_safety_codes, "pos_date")
    df = base.merge(detention, left_on="person_id", right_index=True, how="left")
    df = df.merge(pos, left_on="person_id", right_index=True, how="left")
    extract = pd.Timestamp(site.info.extract_date)
    censor = df["referral_discharge_date"].fillna(extract).clip(upper=extract)
    death = df["date_of_death"]
    det = df["detention_date"]
    detained = det.notna() & (det <= censor) & (death.isna() | (det <= death))
    died = ~detained & death.notna() & (death <= censor)
    end = censor.where(~detained, det).where(~died, death)
    days = (end - df["index_date"]).dt.days.astype(float)
    df["duration_days"] = np.where(days <= 0, SAME_DAY_DURATION, days)
    df["status"] = np.select([detained, died], [STATUS_DETENTION, STATUS_DEATH], STATUS_CENSORED)
    df["place_of_safety"] = (df["pos_date"].notna() & (df["pos_date"] <= end)).astype(int)
    return df


#: The 0/1 columns of :func:`adjustment_covariates` (a level without events is left out of the Cox models).
ADJUSTMENT_INDICATORS = ("female", "other_gender", "imd_missing")


def adjustment_covariates(people: pd.DataFrame) -> dict[str, np.ndarray]:
    """The Cox models' adjustment: age (per 10 years from 40), sex (female, other genders vs male) and
    deprivation (IMD decile, linear per decile more deprived, with a missing-IMD indicator)."""
    imd = pd.to_numeric(people["imd_decile"], errors="coerce").to_numpy(float)
    sex = pd.Series(people["sex"]).astype("string").fillna("other").to_numpy()
    return {
        "age_per_10y": (pd.to_numeric(people["age"]).to_numpy(float) - 40) / 10,
        "female": (sex == "2").astype(float),
        "other_gender": (~np.isin(sex, ["1", "2"])).astype(float),
        "imd_more_deprived_per_decile": np.nan_to_num(5.5 - imd),
        "imd_missing": np.isnan(imd).astype(float),
    }


def censor_at_go_live(cohort: pd.DataFrame, go_live: date | dict[str, date]) -> pd.DataFrame:
    """Censor pre-period people at their site's go-live date, so pre and post follow-up never overlap.

    ``go_live`` is one date or a mapping site_id -> date. Post-period rows are unchanged.
    """
    go = cohort["site_id"].map(go_live) if isinstance(go_live, dict) else pd.Series(go_live, index=cohort.index)
    limit = (pd.to_datetime(go) - cohort["index_date"]).dt.days.astype(float)
    pre_cut = (cohort["period"] == "pre") & (cohort["duration_days"] > limit)
    out = cohort.copy()
    out.loc[pre_cut, "duration_days"] = limit[pre_cut].clip(lower=SAME_DAY_DURATION)
    out.loc[pre_cut, "status"] = STATUS_CENSORED
    return out


class _FlowTable:
    """Accumulates people remaining at each cohort step, overall and by ethnic group."""

    def __init__(self, people: pd.DataFrame):
        self.groups = people["ethnic_group"].cat.categories
        self.rows: list[dict] = []
        self.step("People in extract", people)

    def step(self, label: str, df: pd.DataFrame) -> None:
        counts = df["ethnic_group"].value_counts().reindex(self.groups, fill_value=0)
        self.rows.append({"step": label, "All": int(len(df)), **{g: int(c) for g, c in counts.items()}})

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)
