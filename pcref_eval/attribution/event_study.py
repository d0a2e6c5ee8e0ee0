"""Event study of the focus/reference rate ratio around go-live, with not-yet-live and never-live sites.

Input: counts and denominators of one measure by site x calendar month for the PCREF focus group
and the reference group (first detentions and person-days at risk from the cohort, :func:`cells`,
or any rate measure's monthly numerators and denominators, :func:`measure_cells`).

Model: within each site-month cell, given the total count, the focus count is binomial with
``logit p = log(D_focus / D_ref) + log RR``, which is the Poisson model of both groups' counts
with a free rate for every site-month (a fixed effect absorbing everything common to both
groups) and the log focus/reference rate ratio::

    log RR_{s,m} = a_s + g_quarter(m) + sum_k l_k lead_k(s,m) + sum_{c,k} d_{c,k} post_{c,k}(s,m)

- ``a_s``: the site's own gap; ``g_quarter``: calendar-quarter changes of the gap common to all
  sites (national trend, shocks), identified by the sites not yet live and never live;
- ``post_{c,k}``: adoption cohort c (sites going live in the same month), k quarters after
  go-live (k = 0 .. K, the last bin open-ended): Sun and Abraham's (2021) interaction-weighted
  event study, so sites already live never act as controls for later ones;
- ``lead_k``: k = -2, -3, ... quarters before go-live (pooled over cohorts; -1 is the reference,
  the earliest leads binned): their joint Wald test is the **pre-trend test**. Pooling the leads
  can hide pre-trends of opposite sign in different adoption cohorts, so a second fit with one lead
  per cohort and quarter (``lead_{c,k}``) gives the **per-cohort pre-trend test** (joint Wald test
  of all cohort leads); it is a check only, the effects are those of the pooled-lead model.

Aggregates (weights: the focus group's denominator in each cell, delta-method SEs): the event-time
profile (per quarter since go-live, over cohorts) and the average effect on the treated.
Fitted by statsmodels GLM (binomial, IRLS).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from pcref_eval.attribution.aggregate import WeightedEffect, weighted_effect
from pcref_eval.attribution.design import NEVER, StaggeredDesign, control_quarters

MAX_LEAD = 8  # leads from -2 to -8 quarters; earlier ones binned into -8
MAX_LAG = 8  # quarters since go-live 0..8; later ones binned into 8


@dataclass
class EventStudyResult:
    """Event-time profile, average effect on the treated and pre-trend test of one measure."""

    profile: pd.DataFrame  # event_quarter, log_estimate, se, focus_events, reference_events, focus_denominator
    effect: WeightedEffect
    pretrend_chi2: float
    pretrend_df: int
    pretrend_p: float
    cells: pd.DataFrame  # modelled site-month cells with their labels (restricted: unrounded counts)
    params: pd.Series
    cov: pd.DataFrame
    cohort_pretrend_chi2: float = float("nan")
    cohort_pretrend_df: int = 0
    cohort_pretrend_p: float = float("nan")


def _labels(cells: pd.DataFrame, design: StaggeredDesign, max_lead: int, max_lag: int) -> pd.DataFrame:
    go = cells["site_id"].map({s: design.go_live_month(s) for s in cells["site_id"].unique()}).to_numpy()
    month = cells["month"].to_numpy()
    ever = go != NEVER
    # event quarter from the go-live month (quarters of event time, floor)
    eq = np.where(ever, np.floor_divide(month - np.where(ever, go, 0), 3), 0)
    cohort = cells["site_id"].map({s: design.adoption_cohort(s) for s in cells["site_id"].unique()})
    out = cells.copy()
    out["quarter"] = design.quarter_of_month(month)
    out["event_quarter"] = np.where(ever, np.clip(eq, -max_lead, max_lag), np.nan)
    out["post"] = ever & (eq >= 0)
    out["cohort"] = cohort.to_numpy()
    return out


def merge_empty_cells(d: pd.DataFrame) -> pd.DataFrame:
    """Merge event-time cells without focus or reference events into a neighbour (their term is not estimable).

    Post cells (per cohort) move to the previous quarter since go-live (quarter 0 to the next one);
    lead cells to the previous lead (the earliest to the next, but never into -1).
    """
    d = d.copy()
    for _ in range(10_000):
        post = d[d["post"]].groupby(["cohort", "event_quarter"])[["focus_events", "reference_events"]].sum()
        empty = post[(post["focus_events"] == 0) | (post["reference_events"] == 0)]
        if len(empty):
            c, k = empty.index[0]
            ks = sorted(post.loc[c].index)
            if len(ks) == 1:
                d.loc[d["post"] & (d["cohort"] == c), "post"] = False  # nothing estimable: leave out
                d = d[~((d["cohort"] == c) & (d["event_quarter"] >= 0))]
                continue
            i = ks.index(k)
            target = ks[i - 1] if i > 0 else ks[1]
            d.loc[d["post"] & (d["cohort"] == c) & (d["event_quarter"] == k), "event_quarter"] = target
            continue
        lead = d[d["event_quarter"] <= -2].groupby("event_quarter")[["focus_events", "reference_events"]].sum()
        empty = lead[(lead["focus_events"] == 0) | (lead["reference_events"] == 0)]
        if len(empty):
            k = empty.index[0]
            ks = sorted(lead.index)
            i = ks.index(k)
            target = ks[i - 1] if i > 0 else (ks[1] if len(ks) > 1 else -1)
            d.loc[d["event_quarter"] == k, "event_quarter"] = target
            continue
        return d
    raise RuntimeError("event study: could not merge empty event-time cells")


def cohort_lead_labels(d: pd.DataFrame) -> pd.Series:
    """Label "cohort|k" of lead cells (k <= -2) for the per-cohort pre-trend test, else "".

    A cohort's lead without focus or reference events is merged into its neighbouring lead of the
    same cohort (the earlier one, the first into the next); a cohort with no estimable lead gets
    none (its rows then count as the reference quarter, like quarter -1).
    """
    lead = (d["event_quarter"] <= -2).to_numpy()
    k = d["event_quarter"].where(lead)
    label = pd.Series(np.where(lead, d["cohort"].astype(str) + "|" + k.fillna(0).astype(int).astype(str), ""),
                      index=d.index)
    for _ in range(10_000):
        on = label != ""
        sums = d.loc[on, ["focus_events", "reference_events"]].groupby(label[on]).sum()
        empty = sums[(sums["focus_events"] == 0) | (sums["reference_events"] == 0)]
        if not len(empty):
            return label
        c, kk = empty.index[0].split("|")
        ks = sorted(int(x.split("|")[1]) for x in sums.index if x.split("|")[0] == c)
        i = ks.index(int(kk))
        target = "" if len(ks) == 1 else f"{c}|{ks[i - 1] if i > 0 else ks[1]}"
        label = label.where(label != empty.index[0], target)
    raise RuntimeError("event study: could not merge empty cohort leads")


def _wald(params: pd.Series, cov: pd.DataFrame, names: list[str]) -> tuple[float, int, float]:
    """Joint Wald test that the named coefficients are zero: chi-square, df, p."""
    if not names:
        return float("nan"), 0, float("nan")
    b = params[names].to_numpy()
    chi2 = float(b @ np.linalg.solve(cov.loc[names, names].to_numpy(), b))
    return chi2, len(names), float(stats.chi2.sf(chi2, len(names)))


def event_study(cells: pd.DataFrame, design: StaggeredDesign, max_lead: int = MAX_LEAD, max_lag: int = MAX_LAG,
                conf: float = 0.95, pretrend_by_cohort: bool = True) -> EventStudyResult:
    """Fit the interaction-weighted event study of the log focus/reference rate ratio (module docstring).

    ``cells``: site_id, month, focus_events, reference_events, focus_days, reference_days
    (denominators: person-days, population or any exposure). ``pretrend_by_cohort``: also fit the
    per-cohort lead model for its pre-trend test (the simulation study, which measures only the
    average effect, skips it).
    """
    import statsmodels.api as sm

    d = _labels(cells, design, max_lead, max_lag)
    keep_q = set(control_quarters(design, sorted(d["site_id"].unique())).tolist())
    d = d[d["quarter"].isin(keep_q) & (d["focus_days"] > 0) & (d["reference_days"] > 0)
          & ((d["focus_events"] + d["reference_events"]) > 0)].reset_index(drop=True)
    d = merge_empty_cells(d)
    X = {}
    for s in sorted(d["site_id"].unique()):
        X[f"site[{s}]"] = (d["site_id"] == s).to_numpy(float)
    for q in sorted(d["quarter"].unique())[1:]:
        X[f"quarter[{design.quarter_label(int(q))}]"] = (d["quarter"] == q).to_numpy(float)
    eq = d["event_quarter"]
    leads = sorted(int(k) for k in eq[(eq <= -2)].dropna().unique())
    for k in leads:
        X[f"lead[{k}]"] = (eq == k).to_numpy(float)
    post_terms = []
    for (c, k), _ in d[d["post"]].groupby(["cohort", "event_quarter"]):
        name = f"post[{c}|{int(k)}]"
        X[name] = (d["post"] & (d["cohort"] == c) & (eq == k)).to_numpy(float)
        post_terms.append((name, c, int(k)))
    exog = pd.DataFrame(X)
    endog = np.column_stack([d["focus_events"].to_numpy(float), d["reference_events"].to_numpy(float)])
    offset = np.log(d["focus_days"].to_numpy(float) / d["reference_days"].to_numpy(float))
    fit = sm.GLM(endog, exog, family=sm.families.Binomial(), offset=offset).fit()
    params, cov = fit.params, fit.cov_params()
    lead_names = [f"lead[{k}]" for k in leads]
    chi2, _, p_pre = _wald(params, cov, lead_names)
    by_cohort = (float("nan"), 0, float("nan"))
    if pretrend_by_cohort and lead_names:
        cl = cohort_lead_labels(d)
        names = sorted(c for c in cl.unique() if c)
        leads_c = pd.DataFrame({f"lead[{c}]": (cl == c).to_numpy(float) for c in names}, index=exog.index)
        Xc = pd.concat([exog.drop(columns=lead_names), leads_c], axis=1)  # one block: no fragmented frame
        fc = sm.GLM(endog, Xc, family=sm.families.Binomial(), offset=offset).fit()
        by_cohort = _wald(fc.params, fc.cov_params(), [f"lead[{c}]" for c in names])
    post = pd.DataFrame(post_terms, columns=["term", "cohort", "event_quarter"])
    sums = d[d["post"]].groupby(["cohort", "event_quarter"])[
        ["focus_events", "reference_events", "focus_days"]].sum()
    post = post.join(sums, on=["cohort", "event_quarter"])
    effect = weighted_effect(params[post["term"]], cov.loc[post["term"], post["term"]], post["focus_days"], conf)
    rows = []
    for k in leads:
        n = d[d["event_quarter"] == k]
        rows.append({"event_quarter": k, "log_estimate": float(params[f"lead[{k}]"]),
                     "se": float(np.sqrt(cov.loc[f"lead[{k}]", f"lead[{k}]"])),
                     "focus_events": int(n["focus_events"].sum()), "reference_events": int(n["reference_events"].sum()),
                     "focus_denominator": float(n["focus_days"].sum())})
    ref = d[d["event_quarter"] == -1]
    rows.append({"event_quarter": -1, "log_estimate": 0.0, "se": 0.0, "focus_events": int(ref["focus_events"].sum()),
                 "reference_events": int(ref["reference_events"].sum()),
                 "focus_denominator": float(ref["focus_days"].sum())})
    for k, part in post.groupby("event_quarter"):
        w = weighted_effect(params[part["term"]], cov.loc[part["term"], part["term"]], part["focus_days"], conf)
        rows.append({"event_quarter": int(k), "log_estimate": w.log_estimate, "se": w.se,
                     "focus_events": int(part["focus_events"].sum()),
                     "reference_events": int(part["reference_events"].sum()),
                     "focus_denominator": float(part["focus_days"].sum())})
    profile = pd.DataFrame(rows).sort_values("event_quarter").reset_index(drop=True)
    return EventStudyResult(profile=profile, effect=effect, pretrend_chi2=chi2, pretrend_df=len(lead_names),
                            pretrend_p=p_pre, cells=d, params=params, cov=cov, cohort_pretrend_chi2=by_cohort[0],
                            cohort_pretrend_df=by_cohort[1], cohort_pretrend_p=by_cohort[2])


def measure_cells(data: pd.DataFrame, measure: str, reference: str, design: StaggeredDesign,
                  focus: str | None = None) -> pd.DataFrame:
    """Site x month cells of one rate measure from monthly measure counts (``count_measures`` output).

    ``data``: site, measure, period (month start), group, numerator, denominator.
    """
    from pcref_eval.measures.compute import COMBINED_FOCUS

    focus = focus or COMBINED_FOCUS
    d = data[(data["measure"] == measure) & data["group"].isin([focus, reference])]
    wide = d.pivot_table(index=["site", "period"], columns="group", values=["numerator", "denominator"],
                         aggfunc="sum").reset_index()
    start = design.month_starts[0].to_period("M")
    month = pd.to_datetime(wide["period"]).dt.to_period("M").map(lambda p: (p - start).n).to_numpy()
    out = pd.DataFrame({
        "site_id": wide["site"].astype(str).to_numpy(), "month": month,
        "focus_events": wide[("numerator", focus)].to_numpy(float),
        "reference_events": wide[("numerator", reference)].to_numpy(float),
        "focus_days": wide[("denominator", focus)].to_numpy(float),
        "reference_days": wide[("denominator", reference)].to_numpy(float),
    })
    return out[(out["month"] >= 0) & (out["month"] < design.n_months)].reset_index(drop=True)
