"""The PCREF question: is the ethnic gap in time to first detention closing after go-live?

:func:`gap_change` fits one Cox model of time to first MHA detention (status 1), stratified by
site, with ethnic group x period (pre/post the site's PCREF go-live) interaction, adjusted for
age (linear), sex and deprivation (IMD decile, categorical). For each ethnic group g versus the
reference it reports

- HR before go-live: exp(b_g),
- HR after go-live: exp(b_g + b_g:post), Wald CI from var(b_g) + var(b_g:post) + 2 cov,
- ratio of hazard ratios (after / before): exp(b_g:post),

with 95% Wald CIs from the coefficient covariance. Deaths (status 2) are competing events and
are censored, so these are cause-specific hazard ratios. Missing IMD decile is handled by an
explicit "missing" category (default) or complete case (the number dropped is reported).

:func:`simulate_gap_cohort` draws a cohort with known hazard ratios for validation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ._common import z_value
from .cox import CoxResult, cox

COHORT_COLUMNS = [
    "person_id",
    "site_id",
    "ethnic_group",
    "age",
    "sex",
    "imd_decile",
    "period",
    "duration_days",
    "status",
]
QUANTITIES = ("hr_pre", "hr_post", "ratio_post_pre")


@dataclass
class GapResult:
    """Hazard ratios before and after go-live and their ratio, per ethnic group vs the reference.

    ``table``: group, quantity ("hr_pre", "hr_post", "ratio_post_pre"), estimate, lower, upper,
    log_estimate, se, p (Wald test of log = 0). ``model``: the fitted :class:`CoxResult`.
    """

    table: pd.DataFrame
    model: CoxResult
    reference: str
    n: int
    events: int
    n_dropped: int
    n_imd_missing: int
    imd_handling: str

    def for_group(self, group: str = "Black") -> pd.DataFrame:
        """The three rows (hr_pre, hr_post, ratio_post_pre) for one ethnic group."""
        out = self.table[self.table["group"] == group]
        if out.empty:
            raise KeyError(f"group {group!r} not in the model (groups: {sorted(self.table['group'].unique())})")
        return out.reset_index(drop=True)


def _check_cohort(cohort: pd.DataFrame) -> None:
    missing = [c for c in COHORT_COLUMNS if c not in cohort.columns]
    if missing:
        raise KeyError(f"cohort lacks contract columns {missing}")
    bad = set(cohort["period"].dropna().unique()) - {"pre", "post"}
    if bad:
        raise ValueError(f"period must be 'pre' or 'post', got {sorted(map(str, bad))}")
    if (pd.to_numeric(cohort["duration_days"]) <= 0).any():
        raise ValueError("duration_days must be > 0")


def _indicator(values: pd.Series, level) -> np.ndarray:
    """1.0 where values == level, else 0.0 (missing values give 0, never NA)."""
    return values.eq(level).fillna(False).to_numpy(dtype=np.float64)


def _design(cohort: pd.DataFrame, reference: str, imd: str, imd_reference: int):
    """Model columns: ethnic dummies, period, ethnic x period, age, sex, IMD (treatment coding)."""
    eth = cohort["ethnic_group"].astype("string")
    if reference not in eth.dropna().unique():
        raise ValueError(f"reference group {reference!r} not present in ethnic_group")
    groups = [g for g in sorted(eth.dropna().unique()) if g != reference]
    post = (cohort["period"] == "post").to_numpy(dtype=np.float64)
    post[cohort["period"].isna().to_numpy()] = np.nan
    X = {"post": post}
    eth_terms = {}
    for g in groups:
        x = _indicator(eth, g)
        x[eth.isna().to_numpy()] = np.nan
        X[f"eth[{g}]"] = x
        X[f"eth[{g}]:post"] = x * post
        eth_terms.update(gap_terms([g]))
    X["age"] = pd.to_numeric(cohort["age"]).to_numpy(dtype=np.float64)
    sex = cohort["sex"].astype("string").fillna("other")
    sex = sex.where(sex.isin(["1", "2"]), "other")
    X["sex[2]"] = _indicator(sex, "2")
    X["sex[other]"] = _indicator(sex, "other")
    decile = pd.to_numeric(cohort["imd_decile"], errors="coerce")
    imd_missing = decile.isna().to_numpy()
    for k in range(1, 11):
        if k == imd_reference:
            continue
        col = _indicator(decile, k)
        if imd == "complete_case":
            col[imd_missing] = np.nan
        X[f"imd[{k}]"] = col
    if imd == "indicator":
        X["imd[missing]"] = imd_missing.astype(np.float64)
    # drop columns that are constant among usable rows (e.g. no "other" sex): not estimable
    usable = np.logical_and.reduce([~np.isnan(x) for x in X.values()])
    keep = [c for c, x in X.items() if c.startswith("eth[") or c == "post" or _varies(x[usable])]
    # copy=False: one block per column, no consolidated copy of the design (1.5 s at national size)
    return pd.DataFrame({c: X[c] for c in keep}, index=cohort.index, copy=False), eth_terms, int(imd_missing.sum())


def _varies(values: np.ndarray) -> bool:
    """More than one distinct value (no missing values here)."""
    return values.size > 0 and bool((values != values[0]).any())


def imd_mode(cohort: pd.DataFrame) -> int:
    """The most common IMD decile: the reference level of the categorical deprivation terms."""
    return int(pd.to_numeric(cohort["imd_decile"], errors="coerce").mode().iloc[0])


def without_eventless_adjustment(data: pd.DataFrame, covariates: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Leave out people in a sex or IMD level without an event (repeated until none); drop columns left constant.

    That level's coefficient runs to -infinity and Newton's information matrix turns singular (seen in
    a 600-person run); leaving those people out is the fit's exact limit
    (:func:`pcref_eval.estimability.eventless_levels`). Rows the model drops anyway (missing values)
    are not counted here.
    """
    from pcref_eval.estimability import eventless_levels

    while True:
        adjustment = [c for c in covariates if c.startswith(("sex[", "imd["))]
        usable = ~data[covariates + ["_time", "_event"]].isna().any(axis=1).to_numpy()
        out = np.zeros(len(data), dtype=bool)
        out[usable] = eventless_levels({c: data.loc[usable, c].to_numpy() for c in adjustment},
                                       data.loc[usable, "_event"].to_numpy())
        if not out.any() or out[usable].all():
            return data, covariates
        data = data[~out]
        kept = data[~data[covariates + ["_time", "_event"]].isna().any(axis=1)]
        covariates = [c for c in covariates if c not in adjustment or kept[c].nunique() > 1]


def _combine(beta: pd.Series, V: pd.DataFrame, terms: list[str]) -> tuple[float, float]:
    """Sum of coefficients and its standard error from the covariance matrix."""
    est = float(beta[terms].sum())
    var = float(V.loc[terms, terms].to_numpy().sum())
    return est, float(np.sqrt(var))


def gap_terms(groups) -> dict[str, tuple[str, str]]:
    """The model's (main, interaction) terms of each ethnic group: ``eth[g]`` and ``eth[g]:post``."""
    return {g: (f"eth[{g}]", f"eth[{g}]:post") for g in groups}


def gap_rows(beta: pd.Series, V: pd.DataFrame, eth_terms: dict[str, tuple[str, str]], conf: float = 0.95) -> pd.DataFrame:
    """Per group: HR before (exp b_g), after (exp(b_g + b_g:post)) and their ratio (exp b_g:post), Wald CIs."""
    z = z_value(conf)
    rows = []
    for g, (main, inter) in eth_terms.items():
        for quantity, terms in (("hr_pre", [main]), ("hr_post", [main, inter]), ("ratio_post_pre", [inter])):
            est, se = _combine(beta, V, terms)
            rows.append({"group": g, "quantity": quantity, "estimate": np.exp(est), "lower": np.exp(est - z * se),
                         "upper": np.exp(est + z * se), "log_estimate": est, "se": se,
                         "p": 2.0 * stats.norm.sf(abs(est / se))})
    return pd.DataFrame(rows)


def gap_change(
    cohort: pd.DataFrame,
    reference: str = "White",
    imd: str = "indicator",
    imd_reference: int = 10,
    event_code: int = 1,
    ties: str = "efron",
    conf: float = 0.95,
    init: pd.Series | None = None,
    null_tests: bool = True,
) -> GapResult:
    """Hazard ratio of first detention (each group vs ``reference``) before and after PCREF go-live.

    Cox model stratified by ``site_id`` with terms post, eth[g], eth[g]:post for every non-reference
    group g, age (linear, years), sex ("2" and other vs "1") and IMD decile (categorical vs
    ``imd_reference``). ``imd="indicator"`` adds a missing-IMD category; ``imd="complete_case"``
    drops people with missing IMD (count in ``n_imd_missing``). Status ``event_code`` is the
    event; other nonzero statuses (death) are censored (cause-specific hazard). Rows with a
    missing status, duration, age or ethnic group are dropped (count in ``n_dropped``). ``init``: starting
    coefficients by term name (e.g. a fit to nearly the same cohort; absent terms start at 0).
    ``null_tests=False``: the model's global LR and score tests are not needed (NaN; no pass at beta = 0
    when starting from ``init``: :func:`~pcref_eval.survival.cox.fit_problem`).
    """
    if imd not in ("indicator", "complete_case"):
        raise ValueError("imd must be 'indicator' or 'complete_case'")
    _check_cohort(cohort)
    design, eth_terms, n_imd_missing = _design(cohort, reference, imd, imd_reference)
    covariates = list(design.columns)
    data = design  # _design's own frame: the model columns are added to it, not to a copy
    data["_time"] = pd.to_numeric(cohort["duration_days"]).to_numpy(dtype=np.float64)
    status = pd.to_numeric(cohort["status"]).astype("Float64")
    data["_event"] = status.eq(event_code).astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    data["_site"] = cohort["site_id"].to_numpy()
    data, covariates = without_eventless_adjustment(data, covariates)
    start = None if init is None else pd.Series(init, dtype=float).reindex(covariates).fillna(0.0).to_numpy()
    model = cox(data, "_time", "_event", covariates, strata="_site", ties=ties, conf=conf, init=start,
                null_tests=null_tests)
    rows = gap_rows(model.coef, model.variance, eth_terms, conf)
    return GapResult(
        table=rows,
        model=model,
        reference=reference,
        n=model.n,
        events=model.events,
        n_dropped=model.n_dropped,
        n_imd_missing=n_imd_missing,
        imd_handling=imd,
    )


def simulate_gap_cohort(
    n: int = 50_000,
    hr_black_pre: float = 3.5,
    ratio: float = 0.7,
    n_sites: int = 4,
    seed: int | None = 0,
    baseline_per_year: float = 0.04,
    imd_missing: float = 0.1,
    integer_days: bool = True,
) -> pd.DataFrame:
    """Cohort following the ``gap_change`` contract, with known hazard ratios (for validation).

    Exponential detention hazards: site baseline x HR(ethnic group) x exp(post effect) x
    ``ratio`` for Black people after go-live x age, sex and IMD effects. Other groups have fixed
    HRs (Asian 1.2, Mixed 1.8, Other 1.5) with no period interaction. Death competes
    (hazard rising with age); administrative censoring after 1-3 years. IMD missing completely at
    random with probability ``imd_missing``. Times are rounded up to whole days by default.
    """
    rng = np.random.default_rng(seed)
    groups = np.array(["White", "Black", "Asian", "Mixed", "Other"])
    eth = rng.choice(groups, size=n, p=[0.70, 0.10, 0.10, 0.05, 0.05])
    log_hr = {"White": 0.0, "Black": np.log(hr_black_pre), "Asian": np.log(1.2), "Mixed": np.log(1.8), "Other": np.log(1.5)}
    site = rng.integers(0, n_sites, n)
    post = rng.random(n) < 0.5
    age = rng.uniform(18, 80, n)
    sex = rng.choice(np.array(["1", "2", "9"]), size=n, p=[0.49, 0.49, 0.02])
    imd = rng.integers(1, 11, n).astype(np.float64)
    site_effect = np.log(rng.uniform(0.6, 1.6, n_sites))[site]
    lp = (
        np.vectorize(log_hr.get)(eth)
        + np.log(0.9) * post
        + np.log(ratio) * ((eth == "Black") & post)
        - 0.015 * (age - 40)
        + np.log(0.8) * (sex == "2")
        + 0.05 * (5.5 - imd)
        + site_effect
    )
    rate = baseline_per_year / 365.25 * np.exp(lp)
    t_detain = rng.exponential(1.0 / rate)
    t_death = rng.exponential(1.0 / (0.01 / 365.25 * np.exp(0.06 * (age - 40))))
    t_censor = rng.uniform(365.0, 3 * 365.0, n)
    t = np.minimum(np.minimum(t_detain, t_death), t_censor)
    status = np.where(t == t_detain, 1, np.where(t == t_death, 2, 0))
    if integer_days:
        t = np.ceil(t)
    imd[rng.random(n) < imd_missing] = np.nan
    return pd.DataFrame(
        {
            "person_id": np.arange(1, n + 1),
            "site_id": np.char.add("site_", site.astype(str)),
            "ethnic_group": eth,
            "age": age,
            "sex": sex,
            "imd_decile": pd.array(imd, dtype="Float64").astype("Int64"),
            "period": np.where(post, "post", "pre"),
            "duration_days": t.astype(np.float64),
            "status": status.astype(np.int64),
        }
    )
