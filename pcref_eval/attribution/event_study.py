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

Identification guards (a small extract must give "not estimable", never a number from a degenerate
fit):

- sites and calendar quarters with no focus or no reference events, and quarters with one site
  only, are left out (:func:`drop_uninformative`): their free rate ratio would run to infinity or
  absorb the cells, which carry no information on the other terms (the exact limit of the fit);
- without never-live sites, the last adoption cohort is the comparison (:func:`last_cohort_as_control`),
  as Sun and Abraham prescribe: otherwise leads, quarters and sites are collinear;
- an event-time term that runs off to infinity (quasi-separation: IRLS stops with the term beyond
  |log RR| 20 or its SE beyond 10, :func:`~pcref_eval.estimability.diverged_terms`) has its
  cells left out and the model is refitted (:func:`drop_diverged_terms`: the exact limit of the fit;
  the average effect is then over the cells whose effect is estimable);
- a design that is still rank-deficient, or a fit that does not converge or still diverges after
  ``MAX_REFITS`` refits, makes the whole event study not estimable: effect, profile and pre-trend
  tests are NaN and ``note`` says why.

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
from pcref_eval.estimability import MAX_REFITS, diverged_terms

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
    note: str = ""  # why the event study is not estimable ("" when it is)

    @property
    def estimable(self) -> bool:
        return not self.note


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


def drop_uninformative(d: pd.DataFrame) -> pd.DataFrame:
    """Leave out sites and calendar quarters whose cells cannot inform the event-time terms (repeated until none).

    - a site or quarter with no focus or no reference events: with its free rate ratio, that ratio is
      0 or infinite at the maximum of the likelihood and its cells then carry no information on any
      other term, so leaving them out is the exact limit of the fit (and avoids a diverging IRLS);
    - a quarter with cells from one site only: there is no comparison site in it, and its quarter
      term absorbs the site's ratio there.
    """
    while len(d):
        t = d.groupby("site_id")[["focus_events", "reference_events"]].sum()
        drop = d["site_id"].isin(t.index[(t["focus_events"] == 0) | (t["reference_events"] == 0)]).to_numpy().copy()
        q = d.groupby("quarter").agg(focus=("focus_events", "sum"), reference=("reference_events", "sum"),
                                     sites=("site_id", "nunique"))
        drop |= d["quarter"].isin(q.index[(q["focus"] == 0) | (q["reference"] == 0) | (q["sites"] < 2)]).to_numpy()
        if not drop.any():
            break
        d = d[~drop]
    return d.reset_index(drop=True)


def last_cohort_as_control(d: pd.DataFrame) -> pd.DataFrame:
    """Without never-live sites, make the last adoption cohort the comparison (Sun and Abraham 2021).

    With every site live by the end, a linear trend in event time equals one in calendar time less a
    constant per cohort, so site, quarter and pooled lead terms are collinear (Borusyak, Jaravel and
    Spiess 2024). Sun and Abraham's remedy: the last cohort to go live carries no event-time terms; it
    is a not-yet-live comparison in the quarters before its go-live, and its months after go-live
    (in the quarter it goes live) are left out.
    """
    if d.empty or (d["cohort"] == "never").any():
        return d
    last_cohort = max(d["cohort"])  # "YYYY-MM" labels sort in time
    d = d[~((d["cohort"] == last_cohort) & d["post"])].copy()
    d.loc[d["cohort"] == last_cohort, "event_quarter"] = np.nan
    return d.reset_index(drop=True)


def merge_post_cell(d: pd.DataFrame, cohort: str, k: float) -> pd.DataFrame:
    """Merge a cohort's post cell (quarter k since go-live) into the previous quarter (quarter 0 into the
    next); a cohort's only post cell is left out (nothing of it is estimable)."""
    mine = d["post"] & (d["cohort"] == cohort)
    ks = sorted(d.loc[mine, "event_quarter"].unique())
    if len(ks) == 1:
        return d[~mine]
    i = ks.index(k)
    d = d.copy()
    d.loc[mine & (d["event_quarter"] == k), "event_quarter"] = ks[i - 1] if i > 0 else ks[1]
    return d


def merge_lead_cell(d: pd.DataFrame, k: float) -> pd.DataFrame:
    """Merge the pooled lead k into the previous lead (the earliest into the next; the only one into -1)."""
    ks = sorted(d.loc[d["event_quarter"] <= -2, "event_quarter"].unique())
    i = ks.index(k)
    d = d.copy()
    d.loc[d["event_quarter"] == k, "event_quarter"] = ks[i - 1] if i > 0 else (ks[1] if len(ks) > 1 else -1)
    return d


def merge_empty_cells(d: pd.DataFrame) -> pd.DataFrame:
    """Merge event-time cells without focus or reference events into a neighbour (their term is not estimable):
    post cells per cohort (:func:`merge_post_cell`), pooled leads (:func:`merge_lead_cell`)."""
    for _ in range(10_000):
        post = d[d["post"]].groupby(["cohort", "event_quarter"])[["focus_events", "reference_events"]].sum()
        empty = post[(post["focus_events"] == 0) | (post["reference_events"] == 0)]
        if len(empty):
            d = merge_post_cell(d, *empty.index[0])
            continue
        lead = d[d["event_quarter"] <= -2].groupby("event_quarter")[["focus_events", "reference_events"]].sum()
        empty = lead[(lead["focus_events"] == 0) | (lead["reference_events"] == 0)]
        if len(empty):
            d = merge_lead_cell(d, empty.index[0])
            continue
        return d
    raise RuntimeError("event study: could not merge empty event-time cells")


def drop_diverged_terms(d: pd.DataFrame, terms: list[str]) -> pd.DataFrame:
    """Leave out the cells of event-time terms that ran off to infinity (quasi-separation).

    Those cells are fitted exactly in the limit and contribute nothing to the likelihood, so the other
    terms' estimates are those of the fit without them; the average effect is then over the remaining
    cells (a diverged cell's effect is not estimable). Merging such a cell into its neighbour instead
    (as for empty cells) forced a finite quarter term onto the comparison sites and moved the effect
    by 0.17 on the log scale in the test of this.
    """
    drop = np.zeros(len(d), dtype=bool)
    for t in terms:
        if t.startswith("post["):
            c, k = t[5:-1].rsplit("|", 1)
            drop |= (d["post"] & (d["cohort"] == c) & (d["event_quarter"] == int(k))).to_numpy()
        else:
            drop |= (d["event_quarter"] == int(t[5:-1])).to_numpy()
    return d[~drop]


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


def _prepare(cells: pd.DataFrame, design: StaggeredDesign, max_lead: int, max_lag: int) -> pd.DataFrame:
    """Labelled cells of the quarters with a comparison, after the identification guards (module docstring)."""
    d = _labels(cells, design, max_lead, max_lag)
    keep_q = set(control_quarters(design, sorted(d["site_id"].unique())).tolist())
    d = d[d["quarter"].isin(keep_q) & (d["focus_days"] > 0) & (d["reference_days"] > 0)
          & ((d["focus_events"] + d["reference_events"]) > 0)].reset_index(drop=True)
    return _settle(last_cohort_as_control(d))


def _settle(d: pd.DataFrame) -> pd.DataFrame:
    """Leave out uninformative sites and quarters and merge empty event-time cells until neither changes."""
    while True:  # merging can empty a site or quarter, leaving one out can empty an event-time cell
        n = len(d)
        d = merge_empty_cells(drop_uninformative(d))
        if len(d) == n:
            return d.reset_index(drop=True)


@dataclass
class _PooledDesign:
    """The pooled-lead model's design on prepared cells: exog, response, offset and its event-time terms."""

    exog: pd.DataFrame
    endog: np.ndarray
    offset: np.ndarray
    leads: list[int]
    post: pd.DataFrame  # term, cohort, event_quarter, focus_events, reference_events, focus_days

    @property
    def lead_names(self) -> list[str]:
        return [f"lead[{k}]" for k in self.leads]


def _pooled_design(d: pd.DataFrame, design: StaggeredDesign) -> _PooledDesign:
    """Site and calendar-quarter terms, pooled leads and cohort x quarter-since-go-live post terms."""
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
    post = pd.DataFrame(post_terms, columns=["term", "cohort", "event_quarter"]).astype(
        {"term": str, "cohort": str, "event_quarter": int})  # typed when empty too
    sums = d[d["post"]].groupby(["cohort", "event_quarter"])[
        ["focus_events", "reference_events", "focus_days"]].sum()
    return _PooledDesign(
        exog=pd.DataFrame(X, index=d.index),
        endog=np.column_stack([d["focus_events"].to_numpy(float), d["reference_events"].to_numpy(float)]),
        offset=np.log(d["focus_days"].to_numpy(float) / d["reference_days"].to_numpy(float)),
        leads=leads, post=post.join(sums, on=["cohort", "event_quarter"]))


def _binomial_fit(endog: np.ndarray, exog: pd.DataFrame, offset: np.ndarray, terms: list[str]):
    """Binomial GLM (IRLS) of the focus share, or the reason it is not estimable.

    Returns ``(params, cov, "", [])`` or ``(None, None, reason, diverged)``: rank-deficient design, no
    convergence, or named terms that ran off to infinity (quasi-separation, :func:`diverged_terms`;
    ``diverged`` names them).
    """
    import warnings

    import statsmodels.api as sm

    if exog.shape[1] == 0 or np.linalg.matrix_rank(exog.to_numpy()) < exog.shape[1]:
        return None, None, ("the comparison does not identify it (site, calendar-quarter and event-time terms "
                            "are collinear: too few sites or adoption cohorts with events)"), []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow in exp while a diverging fit runs away
        fit = sm.GLM(endog, exog, family=sm.families.Binomial(), offset=offset).fit()
    params, cov = fit.params, fit.cov_params()
    diverged = diverged_terms(terms, params[terms], np.diag(cov.loc[terms, terms].to_numpy()))
    if not fit.converged or diverged:
        return None, None, "the model did not converge to finite estimates (too few events in some cells)", diverged
    return params, cov, "", []


def _profile(d: pd.DataFrame, leads: list[int], post: pd.DataFrame, params, cov, conf: float) -> pd.DataFrame:
    """Event-time profile: each lead, the reference quarter -1 and each quarter since go-live (weighted
    over cohorts), with the counts behind it; estimates NaN when the model is not estimable."""
    def estimate(term: str) -> tuple[float, float]:
        if params is None:
            return float("nan"), float("nan")
        return float(params[term]), float(np.sqrt(cov.loc[term, term]))

    def counts(n: pd.DataFrame) -> dict:
        return {"focus_events": int(n["focus_events"].sum()), "reference_events": int(n["reference_events"].sum()),
                "focus_denominator": float(n["focus_days"].sum())}
    rows = []
    for k in leads:
        b, se = estimate(f"lead[{k}]")
        rows.append({"event_quarter": k, "log_estimate": b, "se": se, **counts(d[d["event_quarter"] == k])})
    ref = 0.0 if params is not None else float("nan")
    rows.append({"event_quarter": -1, "log_estimate": ref, "se": ref, **counts(d[d["event_quarter"] == -1])})
    for k, part in post.groupby("event_quarter"):
        w = (weighted_effect(params[part["term"]], cov.loc[part["term"], part["term"]], part["focus_days"], conf)
             if params is not None else WeightedEffect(float("nan"), float("nan"), conf))
        rows.append({"event_quarter": int(k), "log_estimate": w.log_estimate, "se": w.se,
                     "focus_events": int(part["focus_events"].sum()),
                     "reference_events": int(part["reference_events"].sum()),
                     "focus_denominator": float(part["focus_days"].sum())})
    return pd.DataFrame(rows).sort_values("event_quarter").reset_index(drop=True)


def event_study(cells: pd.DataFrame, design: StaggeredDesign, max_lead: int = MAX_LEAD, max_lag: int = MAX_LAG,
                conf: float = 0.95, pretrend_by_cohort: bool = True) -> EventStudyResult:
    """Fit the interaction-weighted event study of the log focus/reference rate ratio (module docstring).

    ``cells``: site_id, month, focus_events, reference_events, focus_days, reference_days
    (denominators: person-days, population or any exposure). ``pretrend_by_cohort``: also fit the
    per-cohort lead model for its pre-trend test (the simulation study, which measures only the
    average effect, skips it). A design the data do not identify gives a result with NaN estimates
    and ``note`` saying why (``estimable`` False).
    """
    d = d_first = _prepare(cells, design, max_lead, max_lag)
    note, first = "", None
    for _ in range(MAX_REFITS):
        pd_ = _pooled_design(d, design)
        first = first or pd_
        if pd_.post.empty:
            params, cov, note = None, None, note or "no site is live in a quarter with a comparison site not yet live"
            break
        params, cov, note, diverged = _binomial_fit(pd_.endog, pd_.exog, pd_.offset,
                                                    pd_.lead_names + pd_.post["term"].tolist())
        if params is not None or not diverged:
            break
        d = _settle(drop_diverged_terms(d, diverged))  # the exact limit of the diverged fit: refit
    if params is None:  # the counts behind the cells as first prepared (before leaving diverged ones out)
        nan = float("nan")
        return EventStudyResult(profile=_profile(d_first, first.leads, first.post, None, None, conf),
                                effect=WeightedEffect(nan, nan, conf), pretrend_chi2=nan, pretrend_df=0,
                                pretrend_p=nan, cells=d_first, params=pd.Series(dtype=float), cov=pd.DataFrame(),
                                note=f"not estimable: {note}")
    profile = _profile(d, pd_.leads, pd_.post, params, cov, conf)
    lead_names, post = pd_.lead_names, pd_.post
    chi2, _, p_pre = _wald(params, cov, lead_names)
    by_cohort = (float("nan"), 0, float("nan"))
    if pretrend_by_cohort and lead_names:
        cl = cohort_lead_labels(d)
        names = [f"lead[{c}]" for c in sorted(c for c in cl.unique() if c)]
        leads_c = pd.DataFrame({n: (cl == n[5:-1]).to_numpy(float) for n in names}, index=pd_.exog.index)
        Xc = pd.concat([pd_.exog.drop(columns=lead_names), leads_c], axis=1)  # one block: no fragmented frame
        pc, vc, _, _ = _binomial_fit(pd_.endog, Xc, pd_.offset, names)
        if pc is not None:  # not identified per cohort: the pooled test stands alone
            by_cohort = _wald(pc, vc, names)
    effect = weighted_effect(params[post["term"]], cov.loc[post["term"], post["term"]], post["focus_days"], conf)
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
