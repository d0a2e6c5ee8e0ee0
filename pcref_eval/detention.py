"""Time to first Mental Health Act detention by ethnic group: the analyses the notebooks publish.

Each function takes the cohort from :func:`pcref_eval.cohort.build_cohort` (or several sites'
cohorts concatenated) and returns aggregate results; counts are declared in
:class:`~pcref_eval.publish.Aggregate` so disclosure control is applied on release.

- :func:`km_by_group`: Kaplan-Meier of time to first detention (years), death and discharge censored.
- :func:`logrank_by_group`: log-rank test across groups (stratified by site when pooled).
- :func:`adjusted_hazard_ratios`: Cox model (Efron ties) of each group vs the reference, adjusted
  for age, sex and deprivation, stratified by site when pooled; Schoenfeld test of proportional hazards.
- :func:`detention_incidence`: Aalen-Johansen cumulative incidence with death as a competing event.
- :func:`gap_over_time`: "did the gap narrow?": PCREF focus groups vs reference before/after go-live.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from pcref_eval.cohort import ADJUSTMENT_INDICATORS, STATUS_DETENTION, adjustment_covariates, censor_at_go_live
from pcref_eval.ethnicity import PCREF_FOCUS_GROUPS, UNRECORDED_LABELS
from pcref_eval.disclosure import Apportioned, Ratio
from pcref_eval.estimability import eventless_levels
from pcref_eval.publish import Aggregate
from pcref_eval.survival.competing import cumulative_incidence
from pcref_eval.survival.cox import cox, treatment_dummies
from pcref_eval.survival.gap import gap_change, imd_mode
from pcref_eval.survival.km import kaplan_meier
from pcref_eval.survival.logrank import logrank
from pcref_eval.survival.ph import schoenfeld_test

DAYS_PER_YEAR = 365.25
GROUP_PREFIX = "group="
FOCUS_LABEL = "Black (PCREF focus groups)"
LANDMARK_YEARS = (0.5, 1.0, 2.0, 3.0)


def with_time_in_years(cohort: pd.DataFrame) -> pd.DataFrame:
    """Add ``years`` (duration in 365.25-day years) and ``detained`` (first detention indicator)."""
    return cohort.assign(years=cohort["duration_days"] / DAYS_PER_YEAR,
                         detained=(cohort["status"] == STATUS_DETENTION).astype(int))


def km_by_group(cohort: pd.DataFrame, group_col: str = "broad_group", drop_unrecorded: bool = False) -> pd.DataFrame:
    """Kaplan-Meier estimate of remaining undetained, by group, at every distinct time (years).

    Unrounded: restricted. Release it through ``Publisher.km_table`` (midpoint-6 rounding).
    """
    df = with_time_in_years(_recorded_only(cohort, group_col) if drop_unrecorded else cohort)
    df[group_col] = df[group_col].astype(str)
    return kaplan_meier(df, "years", "detained", group_col=group_col)


def logrank_by_group(cohort: pd.DataFrame, group_col: str = "broad_group", strata_col: str | None = None):
    """Log-rank test of equal detention-free survival across recorded groups; (Aggregate, result)."""
    df = with_time_in_years(_recorded_only(cohort, group_col))
    df[group_col] = df[group_col].astype(str)
    result = logrank(df, "years", "detained", group_col, strata_col=strata_col)
    table = result.table.rename(columns={"n": "people"})
    table["observed_to_expected"] = table["observed"] / table["expected"]
    # expected events add up to the observed total: released as shares of the RELEASED observed total;
    # people at risk are left to the Kaplan-Meier table (midpoint-6), so no count is released two ways
    shares = tuple(float(v) for v in table["expected"] / table["expected"].sum())
    agg = Aggregate(table[["group", "observed", "expected", "observed_to_expected"]].reset_index(drop=True),
                    counts=["observed"], labels=["group"],
                    derived={"expected": Apportioned("observed", shares),
                             "observed_to_expected": Ratio("observed", "expected")})
    return agg, result


@dataclass
class HazardRatios:
    """Adjusted hazard ratios by group, with the fitted model and its proportional-hazards test."""

    table: Aggregate
    ph_test: pd.DataFrame
    model: object


def adjusted_hazard_ratios(cohort: pd.DataFrame, group_col: str, reference: str,
                           strata: str | None = None) -> HazardRatios:
    """Cox proportional hazards (Efron ties) of first detention: each group vs ``reference``.

    Adjusted for age (per 10 years), sex (female vs male; other genders as one category) and
    deprivation (IMD decile, linear per decile more deprived, with a missing-IMD indicator);
    stratified by ``strata`` (e.g. site_id) when given. Death is censored (cause-specific hazard).
    Groups with no detention are left out of the model (their hazard ratio is not estimable), and so
    are people in a level of a 0/1 adjustment (female, other gender, IMD missing) without a detention
    (its coefficient would run to -infinity: their leaving the risk sets is the fit's exact limit);
    the released counts are those of the people modelled.
    """
    df = with_time_in_years(cohort)
    df[group_col] = df[group_col].astype(str)
    while True:  # leaving people out can leave a group without detentions, and the reverse
        events = df.groupby(group_col)["detained"].sum()
        df = df[df[group_col].isin(events[events > 0].index)]
        present = set(df[group_col].unique())
        levels = [g for g in _levels(cohort[group_col]) if g in present]
        design = _adjusted_design(df, group_col, reference, levels)
        out = eventless_levels({c: design[c] for c in ADJUSTMENT_INDICATORS if c in design},
                               df["detained"].to_numpy())
        if not out.any() or out.all():
            break
        df = df[~out]
    data = design.assign(_t=df["years"], _e=df["detained"])
    covariates = list(design.columns)
    if strata:
        data["_s"] = df[strata]
    model = cox(data, "_t", "_e", covariates, strata="_s" if strata else None)
    table = _group_hr_table(model.table, df, group_col, reference, levels)
    return HazardRatios(table=table, ph_test=schoenfeld_test(model), model=model)


def _adjusted_design(df: pd.DataFrame, group_col: str, reference: str, levels: list[str]) -> pd.DataFrame:
    """Group dummies and the adjustment covariates; constant columns dropped."""
    dummies = treatment_dummies(df, group_col, reference, prefix=GROUP_PREFIX, levels=levels)
    design = pd.concat([dummies, pd.DataFrame(adjustment_covariates(df), index=df.index)], axis=1)
    return design.loc[:, design.nunique() > 1]


def _group_hr_table(coef: pd.DataFrame, df: pd.DataFrame, group_col: str, reference: str,
                    levels: list[str]) -> Aggregate:
    counts = df.groupby(group_col).agg(people=("detained", "size"), detentions=("detained", "sum"))
    rows = []
    for g in levels:
        row = {"group": g, "people": int(counts.loc[g, "people"]), "detentions": int(counts.loc[g, "detentions"])}
        if g == reference:
            row.update(hr=1.0, hr_lower=np.nan, hr_upper=np.nan, p=np.nan)
        else:
            term = coef[coef["term"] == f"{GROUP_PREFIX}{g}"]
            t = term.iloc[0]
            row.update(hr=t["hr"], hr_lower=t["hr_lower"], hr_upper=t["hr_upper"], p=t["p"])
        rows.append(row)
    out = pd.DataFrame(rows)
    model = {c: ["people", "detentions"] for c in ("hr", "hr_lower", "hr_upper", "p")}
    return Aggregate(out, counts=["people", "detentions"], model=model, labels=["group"])


def detention_incidence(cohort: pd.DataFrame, group_col: str = "broad_group",
                        years=LANDMARK_YEARS) -> Aggregate:
    """Cumulative incidence of first detention at landmark times (Aalen-Johansen; death competes)."""
    df = with_time_in_years(_recorded_only(cohort, group_col))
    df[group_col] = df[group_col].astype(str)
    cif = cumulative_incidence(df, "years", "status", cause=STATUS_DETENTION, group_col=group_col, times=list(years))
    cif = cif.rename(columns={"time": "years"})
    cif["estimate_pct"] = 100 * cif["estimate"]
    cif["lower_pct"] = 100 * cif["lower"]
    cif["upper_pct"] = 100 * cif["upper"]
    table = cif[["group", "years", "n_risk", "estimate_pct", "lower_pct", "upper_pct"]]
    return Aggregate(table.reset_index(drop=True), counts=[], denominators=["n_risk"], labels=["group", "years"],
                     model={c: ["n_risk"] for c in ("estimate_pct", "lower_pct", "upper_pct")})


def incidence_curves(cohort: pd.DataFrame, group_col: str = "broad_group", threshold: int = 7,
                     step_years: float = 1 / 12, rounding: int = 5) -> pd.DataFrame:
    """Cumulative incidence on a monthly grid, kept only while more than ``threshold`` remain at risk.

    A coarse fixed grid (not every event time) is what the released figure draws, so no step
    describes an individual; the count columns are rounded to the nearest ``rounding`` (the
    figure's number-at-risk row shows them), so no unrounded count reaches a released figure.
    """
    df = with_time_in_years(_recorded_only(cohort, group_col))
    df[group_col] = df[group_col].astype(str)
    # the landmark times of the released table are on the grid, so the figure's number-at-risk row can show
    # exactly the released numbers (``risk_times=LANDMARK_YEARS``)
    grid = np.union1d(np.arange(0, df["years"].max() + step_years, step_years), LANDMARK_YEARS)
    cif = cumulative_incidence(df, "years", "status", cause=STATUS_DETENTION, group_col=group_col, times=grid)
    cif = cif[cif["n_risk"] > threshold].copy()  # a released number at risk describes more than threshold people
    for col in ("n_risk", "n_event", "n_competing", "n_censored"):
        cif[col] = (np.floor(cif[col] / rounding + 0.5) * rounding).astype(int)
    return cif


def focus_grouping(cohort: pd.DataFrame, reference: str) -> pd.Series:
    """Collapse groups to PCREF focus (all four Black groups), reference, other recorded, not recorded.

    Each distinct label is collapsed once and the result indexed by the labels' codes (a missing group,
    read as the text "nan", is "Other groups"): 0.24 s for 2 million people, against 7 s comparing
    every row's text.
    """
    codes, labels = pd.factorize(cohort["ethnic_group"])
    collapsed = [_collapsed_group(str(label), reference) for label in labels] + [_collapsed_group("nan", reference)]
    categories = sorted(set(collapsed))
    to_category = np.array([categories.index(c) for c in collapsed], dtype=np.int64)
    grouped = pd.Categorical.from_codes(to_category[codes], categories)  # code -1 (missing) takes the last entry
    return pd.Series(grouped, index=cohort.index).astype("str")


def _collapsed_group(label: str, reference: str) -> str:
    if label in PCREF_FOCUS_GROUPS:
        return FOCUS_LABEL
    if label == reference:
        return reference
    if label in UNRECORDED_LABELS:
        return "Not recorded"
    return "Other groups"


def gap_over_time(cohort: pd.DataFrame, go_live: date | dict[str, date], reference: str) -> Aggregate:
    """Hazard ratio (focus vs reference) before and after PCREF go-live, and their ratio.

    Cox model stratified by site with group x period interaction, adjusted for age, sex and IMD
    (:func:`pcref_eval.survival.gap_change`). Pre-period follow-up is censored at go-live
    (:func:`pcref_eval.cohort.censor_at_go_live`) so each person's risk time falls in one period.
    The IMD reference category is the most common decile (a sparse reference inflates SEs).
    A ratio of hazard ratios below 1 means the gap narrowed.
    """
    df = censor_at_go_live(cohort, go_live)
    df = df.assign(ethnic_group=focus_grouping(df, reference))
    df = df[df["ethnic_group"].isin([FOCUS_LABEL, reference])]
    counts = df.assign(detained=(df["status"] == STATUS_DETENTION)).groupby(["ethnic_group", "period"])["detained"]
    events = counts.sum()
    people = counts.size()
    table = _focus_gap_estimates(df, reference, [int(events.get((g, p), 0)) for g in (FOCUS_LABEL, reference)
                                                 for p in ("pre", "post")])
    label = {"hr_pre": "Hazard ratio before go-live", "hr_post": "Hazard ratio after go-live",
             "ratio_post_pre": "Ratio of hazard ratios (after / before)"}
    table["quantity"] = table["quantity"].map(label)
    for period in ("pre", "post"):
        table[f"focus_detentions_{period}"] = int(events.get((FOCUS_LABEL, period), 0))
        table[f"reference_detentions_{period}"] = int(events.get((reference, period), 0))
        table[f"focus_people_{period}"] = int(people.get((FOCUS_LABEL, period), 0))
    cols = ["quantity", "estimate", "lower", "upper", "p"] + [c for c in table.columns if "_detentions_" in c or "_people_" in c]
    counts_cols = [c for c in cols if "_detentions_" in c or "_people_" in c]
    model = {c: counts_cols for c in ("estimate", "lower", "upper", "p")}
    return Aggregate(table[cols].reset_index(drop=True), counts=counts_cols, model=model, labels=["quantity"])


def _focus_gap_estimates(df: pd.DataFrame, reference: str, detentions: list[int]) -> pd.DataFrame:
    """The focus group's rows of :func:`gap_change`, or NaN estimates when not estimable: a group without a
    detention before or after go-live (the ratio would be 0 or infinite), or a singular fit."""
    quantities = ["hr_pre", "hr_post", "ratio_post_pre"]
    if min(detentions) > 0:
        try:
            result = gap_change(df, reference=reference, imd_reference=imd_mode(df))
            return result.table[result.table["group"] == FOCUS_LABEL].copy()
        except ValueError:  # e.g. Newton met a singular information matrix: not estimable
            pass
    return pd.DataFrame({"group": FOCUS_LABEL, "quantity": quantities, "estimate": np.nan, "lower": np.nan,
                         "upper": np.nan, "p": np.nan})


def _recorded_only(cohort: pd.DataFrame, group_col: str) -> pd.DataFrame:
    return cohort[~cohort[group_col].astype(str).isin(UNRECORDED_LABELS)]


def _levels(col: pd.Series) -> list[str]:
    if isinstance(col.dtype, pd.CategoricalDtype):
        return [str(c) for c in col.cat.categories]
    return sorted(col.astype(str).unique())


def site_gap_estimates(cohort: pd.DataFrame, go_live: dict[str, date], reference: str) -> pd.DataFrame:
    """Each site's log ratio of hazard ratios (after/before go-live) with its SE, for pooling.

    Sites whose model cannot be fitted (no focus-group detentions in a period) are left out and
    listed in ``attrs["skipped"]``.
    """
    rows, skipped = [], []
    for site_id, part in cohort.groupby("site_id", sort=True):
        df = censor_at_go_live(part, go_live)
        df = df.assign(ethnic_group=focus_grouping(df, reference))
        df = df[df["ethnic_group"].isin([FOCUS_LABEL, reference])]
        events = df[(df["status"] == STATUS_DETENTION) & (df["ethnic_group"] == FOCUS_LABEL)].groupby("period").size()
        if events.get("pre", 0) == 0 or events.get("post", 0) == 0:
            skipped.append(site_id)
            continue
        res = gap_change(df, reference=reference, imd_reference=imd_mode(df)).table
        r = res[(res["group"] == FOCUS_LABEL) & (res["quantity"] == "ratio_post_pre")].iloc[0]
        rows.append({"site_id": site_id, "log_estimate": r["log_estimate"], "se": r["se"],
                     "detentions": int(events.sum())})
    out = pd.DataFrame(rows)
    out.attrs["skipped"] = skipped
    return out


def _p2(p: float) -> str:
    """A p-value as the released PH-test table holds it (2 decimals), so the sentence quotes a released value."""
    return "< 0.01" if p < 0.01 else f"= {p:.2f}"


def ph_caveat(ph_test: pd.DataFrame, alpha: float = 0.05) -> str:
    """Report text on the proportional-hazards check: which terms fail and what that means for reading.

    A failing group term means the hazard ratio changes with time since referral: the reported
    hazard ratio is then a time-averaged effect, and the Kaplan-Meier and cumulative incidence
    curves show how the gap evolves (a step-function model, ``survival.step_function_cox``, gives
    interval-specific ratios).
    """
    terms = ph_test[(ph_test["term"] != "GLOBAL") & (ph_test["p"] < alpha)]["term"].tolist()
    glob = ph_test[ph_test["term"] == "GLOBAL"]["p"]
    if not terms:
        return (f"Proportional hazards: no covariate's Schoenfeld residual test is significant at {alpha:g}"
                + (f" (global p {_p2(glob.iloc[0])})." if len(glob) else "."))
    names = ", ".join(t.replace(GROUP_PREFIX, "") for t in terms)
    return (f"**Caveat (proportional hazards):** the Schoenfeld residual test rejects proportional hazards at "
            f"{alpha:g} for {names}. For these terms the hazard ratio varies with time since referral and the "
            f"reported value is a time-averaged effect; read it with the Kaplan-Meier and cumulative incidence "
            f"curves, or fit interval-specific ratios with a step-function model.")
