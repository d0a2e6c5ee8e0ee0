"""Descriptive tables: the cohort's Table 1 and crude detention rates per population by group.

All outputs are aggregate counts with derived percentages/rates, ready for
:meth:`pcref_eval.publish.Publisher.table` (which applies disclosure control).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pcref_eval.cohort import STATUS_DEATH, STATUS_DETENTION
from pcref_eval.config import StudyConfig
from pcref_eval.ethnicity import ethnic_group
from pcref_eval.extract import SiteExtract
from pcref_eval.disclosure import Proportion, Rate, RateRatio, Summary
from pcref_eval.publish import Aggregate

PER_100K = 100_000


def table_one(cohort: pd.DataFrame, group_col: str = "ethnic_group") -> Aggregate:
    """Cohort characteristics by group: people, female, age (mean, SD), most deprived fifth, outcomes.

    Counts are integers (controlled at release); percentages are recomputed from the released counts;
    the age mean and SD describe whole groups and are withheld for groups below the policy's
    ``summary_min`` people (or whose count is redacted).
    """
    df = cohort.assign(
        female=cohort["sex"] == "2",
        most_deprived=cohort["imd_decile"].astype("Float64").le(2).fillna(False).astype(bool),
        imd_missing=cohort["imd_decile"].isna(),
        detained=cohort["status"] == STATUS_DETENTION,
        died=cohort["status"] == STATUS_DEATH,
    )
    g = df.groupby(group_col, observed=False)
    out = pd.DataFrame({
        "people": g.size(),
        "female": g["female"].sum(),
        "age_mean": g["age"].mean(),
        "age_sd": g["age"].std(),
        "imd_most_deprived_fifth": g["most_deprived"].sum(),
        "imd_missing": g["imd_missing"].sum(),
        "first_detention": g["detained"].sum(),
        "place_of_safety": g["place_of_safety"].sum(),
        "died_before_detention": g["died"].sum(),
    }).reset_index().rename(columns={group_col: "group"})
    out["group"] = out["group"].astype(str)
    for col in ("female", "imd_most_deprived_fifth", "first_detention"):
        out[f"{col}_pct"] = 100 * out[col] / out["people"]
    counts = ["people", "female", "imd_most_deprived_fifth", "imd_missing", "first_detention",
              "place_of_safety", "died_before_detention"]
    derived = {"female_pct": Proportion("female", "people"),
               "imd_most_deprived_fifth_pct": Proportion("imd_most_deprived_fifth", "people"),
               "first_detention_pct": Proportion("first_detention", "people"),
               "age_mean": Summary("people"), "age_sd": Summary("people")}
    return Aggregate(out, counts, derived, labels=["group"])


def detention_episodes(site: SiteExtract, codes: list[str], study: StudyConfig, scheme: str) -> pd.DataFrame:
    """MHA episodes with a detention legal status starting in the study window, with the person's group.

    Every such episode counts as a new detention (NHS England counts s2 followed by s3 as a
    detention after admission). Episodes whose person is not in ``people`` are dropped (contracts flag them).
    """
    ep = site["mha_episodes"]
    start, end = pd.Timestamp(study.start), pd.Timestamp(study.end)
    ep = ep[ep["legal_status_code"].isin(codes) & (ep["start_date"] >= start) & (ep["start_date"] <= end)]
    people = site["people"].drop_duplicates("person_id")[["person_id", "ethnic_category"]]
    ep = ep.merge(people, on="person_id", how="inner")
    return ep.assign(group=ethnic_group(ep["ethnic_category"], scheme))


def population_by_group(population: pd.DataFrame, scheme: str) -> pd.Series:
    """Catchment population per group of ``scheme`` (groups with no population are absent)."""
    groups = ethnic_group(population["ethnic_category"], scheme)
    return population.groupby(groups, observed=True)["population"].sum()


def crude_rates_by_group(events: pd.DataFrame, population: pd.DataFrame, scheme: str, reference: str,
                         years: float, conf: float = 0.95) -> Aggregate:
    """Crude annual rate per 100,000 by group (exact Poisson < 10 events, Byar's from 10) and rate ratio.

    Denominator: catchment population x study years. Groups without a population (not stated,
    not known, missing ethnicity) keep their counts but have no rate: their people are part of the
    other groups' denominators, so recorded-group rates are underestimates where recording is incomplete.
    The reference group has no rate ratio (a ratio to itself is 1 by definition and its interval means
    nothing): its ``comparison`` label says "reference"; other groups with a ratio say "vs <reference>".
    """
    from pcref_eval.rates import rate, rate_ratio

    counts = events.groupby("group", observed=False).size().rename("events")
    pop = population_by_group(population, scheme).rename("population")
    df = pd.concat([counts, pop], axis=1).reset_index(names="group")
    df["events"] = df["events"].fillna(0).astype(int)
    df["person_years"] = df["population"] * years
    has_pop = df["population"].fillna(0) > 0
    r = rate(df.loc[has_pop, "events"], df.loc[has_pop, "person_years"], per=PER_100K, conf=conf)
    df.loc[has_pop, ["rate", "rate_lower", "rate_upper"]] = r[["value", "lower", "upper"]].to_numpy()
    ref = df[df["group"] == reference]
    if not ref.empty and ref["events"].iloc[0] > 0:
        rr = rate_ratio(df.loc[has_pop, "events"], df.loc[has_pop, "person_years"],
                        ref["events"].iloc[0], ref["person_years"].iloc[0], conf=conf)
        df.loc[has_pop, ["rate_ratio", "rr_lower", "rr_upper"]] = rr[["value", "lower", "upper"]].to_numpy()
    df["group"] = df["group"].astype(str)
    df = mark_reference_row(df, reference, ["rate_ratio", "rr_lower", "rr_upper"])
    derived = {"rate": Rate("events", "population", PER_100K, years, conf=conf),
               "rate_lower": Rate("events", "population", PER_100K, years, "lower", conf),
               "rate_upper": Rate("events", "population", PER_100K, years, "upper", conf),
               "rate_ratio": RateRatio("events", "population", "group", reference, conf=conf),
               "rr_lower": RateRatio("events", "population", "group", reference, "lower", conf),
               "rr_upper": RateRatio("events", "population", "group", reference, "upper", conf)}
    return Aggregate(df.drop(columns=["person_years"]), ["events"], derived, denominators=["population"],
                     labels=["group", "comparison"])


def mark_reference_row(df: pd.DataFrame, reference: str, ratio_cols: list[str],
                       group_col: str = "group") -> pd.DataFrame:
    """Blank the reference group's ratio and interval and add a ``comparison`` label column: "reference"
    on its row, "vs <reference>" where a ratio is given, empty elsewhere.

    The publisher releases a derived value only where the table holds one, so the blank stays blank.
    """
    out = df.copy()
    for col in ratio_cols:
        if col not in out:
            out[col] = float("nan")
    is_ref = out[group_col].astype(str) == str(reference)
    out.loc[is_ref, ratio_cols] = float("nan")
    has_ratio = out[ratio_cols[0]].notna()
    out["comparison"] = np.where(is_ref, "reference", np.where(has_ratio, f"vs {reference}", ""))
    return out


def flow_aggregate(flow: pd.DataFrame) -> Aggregate:
    """The cohort flow table (people remaining at each step, overall and by group) as a releasable aggregate."""
    return Aggregate(flow, [c for c in flow.columns if c != "step"], {}, labels=["step"])


def site_header(session) -> str:
    """Markdown introduction for a site: name, go-live, extract date, study window, grouping."""
    info, cfg = session.site.info, session.config
    return (f"# {info.name} ({info.site_id})\n\n"
            f"PCREF go-live **{info.pcref_go_live:%d %B %Y}**; extract taken {info.extract_date:%d %B %Y}; "
            f"study window {cfg.study.start:%d %B %Y} to {cfg.study.end:%d %B %Y}. "
            f"Ethnic groups use the **{cfg.ethnicity.scheme}** scheme with **{cfg.ethnicity.reference}** as the "
            f"reference group. All counts are disclosure-controlled ({cfg.disclosure.policy} rule): "
            f"[REDACTED] marks a suppressed value.")


def cross_site_header(session) -> str:
    """Markdown introduction for the cross-site notebook."""
    cfg = session.config
    names = ", ".join(f"{s.info.name} ({sid}, go-live {s.info.pcref_go_live:%b %Y})" for sid, s in session.sites.items())
    return (f"# {cfg.name}: all sites\n\nSites analysed: {names}. Study window {cfg.study.start:%d %B %Y} to "
            f"{cfg.study.end:%d %B %Y}; reference group **{cfg.ethnicity.reference}**.")


def format_p(p: float) -> str:
    """A p-value as journals print it: '< 0.001' below 0.001, else 3 decimals."""
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def ph_test_aggregate(ph: pd.DataFrame) -> Aggregate:
    """Schoenfeld test table (term, chi-square, df, p) as a releasable aggregate (no counts)."""
    table = ph.rename(columns={"statistic": "chi_square"})
    return Aggregate(table, counts=[], derived={}, labels=["term"],
                     model=[c for c in table.columns if c != "term"])
