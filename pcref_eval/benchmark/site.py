"""A site's detention and CTO rates by ethnic group beside its ICB's and England's published figures.

For each site that names its ICB in ``site.yml`` (``icb: QKK``), over the financial year of the
published file (or the latest complete financial year the extract covers):

- the site's counts by NHS England's five groups (new detention episodes with a detention legal
  status starting in the year, as NHS England counts detentions; CTOs starting in the year),
  disclosure-controlled, over the catchment population (``population.csv``);
- crude rates per 100,000 (exact Poisson / Byar's limits) and rate ratios vs White (exact below 10
  events, log-normal above), all computed from the **released (rounded) counts**;
- NHS England's published figures for the same year: the ICB crude rate and ratio, England's crude
  and standardised rate with its published 95% interval, and England's standardised ratio. These are
  public statistics (already rounded and suppressed by NHS England), marked by the ``published_source``
  column and declared as ``model`` outputs (released as published).

People with unrecorded ethnicity are left out of the rates, as NHS England's rates leave them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from pcref_eval.benchmark.nhse import FOCUS, PER, REFERENCE
from pcref_eval.benchmark.published import BROAD_GROUPS, NATIONAL, MhaAnnual
from pcref_eval.disclosure import DisclosurePolicy
from pcref_eval.publish import Aggregate
from pcref_eval.rates import rate, rate_ratio

#: NHS England's five groups from the NHS ethnic category codes (as in its MHA statistics code).
NHSE_GROUP_OF_CODE = {**{c: "White" for c in "ABC"}, **{c: "Mixed" for c in "DEFG"},
                      **{c: "Asian or Asian British" for c in "HJKL"},
                      **{c: "Black or Black British" for c in "MNP"}, **{c: "Other Ethnic Groups" for c in "RS"}}
DETENTIONS, CTOS = "All detentions", "Uses of CTOs"
MEASURES = (DETENTIONS, CTOS)


@dataclass(frozen=True)
class BenchmarkPeriod:
    """The financial year the site is measured over, and why."""

    start: date
    end: date
    label: str
    note: str = ""


def financial_year(label: str) -> tuple[date, date]:
    """'2023/24' -> (2023-04-01, 2024-03-31)."""
    first = int(str(label)[:4])
    return date(first, 4, 1), date(first + 1, 3, 31)


def benchmark_period(extract_date: date, published_year: str) -> BenchmarkPeriod:
    """The published financial year if the extract covers it, else the latest complete one before the extract."""
    start, end = financial_year(published_year)
    if extract_date > end:
        return BenchmarkPeriod(start, end, published_year)
    first = extract_date.year - 1 if extract_date.month >= 4 else extract_date.year - 2
    if date(first + 1, 3, 31) >= extract_date:
        first -= 1
    label = f"{first}/{str(first + 1)[2:]}"
    return BenchmarkPeriod(date(first, 4, 1), date(first + 1, 3, 31), label,
                           note=f"the extract ends before {published_year} does: site figures are for {label}")


def site_group_population(population: pd.DataFrame) -> pd.Series:
    """Catchment population by NHS England group (from ``population.csv``)."""
    groups = population["ethnic_category"].astype(str).map(NHSE_GROUP_OF_CODE)
    pop = pd.to_numeric(population["population"], errors="coerce").groupby(groups).sum()
    return pop.reindex(BROAD_GROUPS).fillna(0)


def site_event_counts(site, measure: str, period: BenchmarkPeriod, detention_codes: list[str]) -> pd.Series:
    """Events starting in ``period`` by NHS England group: detention episodes, or CTOs.

    Detentions: MHA episodes (MHS401) whose legal status is in ``detention_codes``; CTOs: MHS404 starts.
    """
    people = site.tables["people"][["person_id", "ethnic_category"]]
    if measure == DETENTIONS:
        ev = site.tables["mha_episodes"]
        ev = ev[ev["legal_status_code"].astype(str).isin(detention_codes)]
    elif measure == CTOS:
        ev = site.tables["ctos"]
    else:
        raise ValueError(f"benchmark measure must be one of {list(MEASURES)}, not {measure!r}")
    start = pd.to_datetime(ev["start_date"])
    ev = ev[(start >= pd.Timestamp(period.start)) & (start <= pd.Timestamp(period.end))]
    groups = ev[["person_id"]].merge(people, on="person_id", how="left")["ethnic_category"].astype(str).map(
        NHSE_GROUP_OF_CODE)
    return groups.value_counts().reindex(BROAD_GROUPS).fillna(0).astype(int)


def published_comparators(mha: MhaAnnual, measure: str, icb: str | None, reference: str = REFERENCE) -> pd.DataFrame:
    """NHS England's figures by group: ICB crude rate and ratio, England crude and standardised rate, CI, ratio."""
    nat = mha.select(measure, "Ethnicity", NATIONAL).set_index("breakdown").reindex(BROAD_GROUPS)
    out = pd.DataFrame(index=pd.Index(BROAD_GROUPS, name="group"))
    if icb:
        loc = mha.select(measure, "Ethnicity", "ICB")
        loc = loc[loc["org_code"] == icb].set_index("breakdown").reindex(BROAD_GROUPS)
        out["icb_rate"] = loc["crude_rate"]
        out["icb_ratio"] = loc["crude_rate"] / loc.at[reference, "crude_rate"]
    else:
        out["icb_rate"] = out["icb_ratio"] = np.nan
    out["england_rate"] = nat["crude_rate"]
    out["england_std_rate"] = nat["std_rate"]
    out["england_std_lower"] = nat["std_rate"] - nat["std_ci"]
    out["england_std_upper"] = nat["std_rate"] + nat["std_ci"]
    out["england_std_ratio"] = nat["std_rate"] / nat.at[reference, "std_rate"]
    return out


PUBLISHED_COLUMNS = ["icb_rate", "icb_ratio", "england_rate", "england_std_rate", "england_std_lower",
                     "england_std_upper", "england_std_ratio"]
DERIVED = {"site_rate": ["site_count"], "site_rate_lower": ["site_count"], "site_rate_upper": ["site_count"],
           "site_ratio": ["site_count", "site_white_count"], "site_ratio_lower": ["site_count", "site_white_count"],
           "site_ratio_upper": ["site_count", "site_white_count"]}
LABELS = ["measure", "period", "group", "icb", "published_year", "published_source"]


def site_benchmark(site, mha: MhaAnnual, detention_codes: list[str], policy: DisclosurePolicy,
                   measures=MEASURES, conf: float = 0.95) -> tuple[Aggregate, BenchmarkPeriod]:
    """The site's rates and ratios vs White by group, beside the published ICB and England figures.

    Counts are controlled with ``policy`` *before* any rate or ratio is computed, so every derived
    value follows from the released counts. Returns the table (every column declared) and the period.
    """
    period = benchmark_period(site.info.extract_date, mha.year)
    pop = site_group_population(site.population)
    icb = site.info.icb
    source = f"NHS England, Mental Health Act Statistics, Annual Figures {mha.year} (published; OGL v3)"
    blocks = []
    for measure in measures:
        raw = site_event_counts(site, measure, period, detention_codes)
        released = pd.Series(policy.control_counts(raw.astype(float)).to_numpy(), index=raw.index)
        df = pd.DataFrame({"measure": measure, "period": period.label, "group": BROAD_GROUPS,
                           "icb": icb or "", "published_year": mha.year, "published_source": source,
                           "site_count": raw.to_numpy(), "site_population": pop.round().astype("int64").to_numpy(),
                           "site_white_count": raw[REFERENCE], "site_white_population": int(round(pop[REFERENCE]))})
        rel = released.to_numpy(float)
        n = pop.to_numpy(float)
        ok = ~np.isnan(rel) & (n > 0)
        for col in DERIVED:
            df[col] = np.nan
        if ok.any():
            r = rate(rel[ok], n[ok], per=PER, conf=conf)
            df.loc[ok, ["site_rate", "site_rate_lower", "site_rate_upper"]] = r[["value", "lower", "upper"]].to_numpy()
        ref_x, ref_n = released[REFERENCE], float(pop[REFERENCE])
        if not np.isnan(ref_x) and ref_n > 0 and ref_x > 0:
            okr = ok.copy()
            rr = rate_ratio(rel[okr], n[okr], np.full(okr.sum(), ref_x), np.full(okr.sum(), ref_n), conf=conf)
            df.loc[okr, ["site_ratio", "site_ratio_lower", "site_ratio_upper"]] = \
                rr[["value", "lower", "upper"]].to_numpy()
            df.loc[df["group"] == REFERENCE, ["site_ratio_lower", "site_ratio_upper"]] = np.nan  # 1 by definition
        pub = published_comparators(mha, measure, icb).reset_index(drop=True)
        blocks.append(pd.concat([df, pub[PUBLISHED_COLUMNS]], axis=1))
    table = pd.concat(blocks, ignore_index=True)
    agg = Aggregate(table, counts=["site_count", "site_white_count"], derived=DERIVED,
                    denominators=["site_population", "site_white_population"],
                    model={c: [] for c in PUBLISHED_COLUMNS},  # published figures: rest on no site count
                    labels=LABELS)
    return agg, period


def trust_total(mha: MhaAnnual, ods_code: str | None, measure: str = DETENTIONS) -> tuple[str, float] | None:
    """(trust name, published count) of a provider's total for ``measure``, or None if not published."""
    if not ods_code:
        return None
    d = mha.select(measure, "All")
    d = d[d["org_level"].isin(["NHS Trust", "Independent Health Provider"]) & (d["org_code"] == ods_code)]
    if d.empty or d["count"].isna().all():
        return None
    return str(d["org_name"].iloc[0]), float(d["count"].iloc[0])


def load_benchmark_site(folder: str | Path):
    """The site tables the benchmark needs (people, MHA episodes, CTOs, population)."""
    from pcref_eval.extract import load_site
    return load_site(folder, tables=["people", "mha_episodes", "ctos"])
