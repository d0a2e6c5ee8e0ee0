"""Unrecorded ethnicity handled three ways: excluded, kept as its own group, multiply imputed.

Multiple imputation (Rubin 1987) of the PCREF grouping (focus, reference, other recorded groups) for
people whose ethnicity is unrecorded:

- imputation model: multinomial logistic regression (statsmodels ``MNLogit``) of the group on the
  analysis model's covariates (age, sex, IMD decile with a missing indicator, site, period), the
  outcome as White & Royston (2009) recommend for Cox models (detention and death indicators and the
  Nelson-Aalen cumulative hazard of detention at the person's time, each also by period, because the
  analysis model has a group x period term) and any auxiliary columns given;
- proper imputation: each of the ``m`` imputations draws the coefficients from their approximate
  posterior N(beta_hat, V_hat), then each unrecorded person's group from the fitted probabilities;
- each completed cohort is analysed by the same function as the main analysis and the log estimates
  are combined by Rubin's rules (total variance W + (1 + 1/m) B, t reference distribution with
  Rubin's degrees of freedom).

The imputations assume ethnicity is missing at random given these variables; a simulation study in
``tests/sensitivity`` shows MI recovering the truth where complete-case analysis is biased.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

from pcref_eval.cohort import STATUS_DEATH, STATUS_DETENTION

HANDLINGS = ("excluded", "own_group", "imputed")
UNRECORDED = "Not recorded"

#: A function from a cohort (one row per person, ``ethnic_group`` completed) to a table with columns
#: quantity, log_estimate, se: the analysis repeated on each handling/imputation.
Analysis = Callable[[pd.DataFrame], pd.DataFrame]


@dataclass(frozen=True)
class ImputationConfig:
    """Multiple imputation settings: number of imputations, seed, extra predictor columns."""

    m: int = 10
    seed: int = 20240401
    auxiliary: tuple[str, ...] = ()

    def __post_init__(self):
        if self.m < 2:
            raise ValueError(f"multiple imputation needs m >= 2 imputations, got {self.m}")


def nelson_aalen_at_own_time(time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """Marginal Nelson-Aalen cumulative hazard H(T_i) at each person's own time (events before censorings)."""
    order = np.argsort(time, kind="stable")
    t, e = time[order], event[order]
    uniq, first = np.unique(t, return_index=True)
    at_risk = t.size - first
    d = np.add.reduceat(e, first)
    cumhaz = np.cumsum(d / at_risk)
    return cumhaz[np.searchsorted(uniq, time)]


def imputation_predictors(cohort: pd.DataFrame, auxiliary=()) -> pd.DataFrame:
    """Design matrix of the imputation model (White & Royston 2009 outcome terms, covariates, site, period)."""
    status = pd.to_numeric(cohort["status"]).to_numpy()
    detained = (status == STATUS_DETENTION).astype(float)
    cumhaz = nelson_aalen_at_own_time(pd.to_numeric(cohort["duration_days"]).to_numpy(float), detained)
    post = (cohort["period"].astype(str) == "post").to_numpy(float)
    imd = pd.to_numeric(cohort["imd_decile"], errors="coerce")
    X = pd.DataFrame({
        "const": 1.0,
        "detained": detained, "died": (status == STATUS_DEATH).astype(float), "cumhaz": cumhaz,
        "age_per_10y": (pd.to_numeric(cohort["age"]).to_numpy(float) - 40) / 10,
        "female": (cohort["sex"].astype(str) == "2").to_numpy(float),
        "imd": (imd - 5.5).fillna(0.0).to_numpy(float), "imd_missing": imd.isna().to_numpy(float),
    }, index=cohort.index)
    if post.any() and not post.all():
        X["post"], X["detained_post"], X["cumhaz_post"] = post, detained * post, cumhaz * post
    sites = pd.get_dummies(cohort["site_id"].astype(str), prefix="site", drop_first=True, dtype=float)
    X = pd.concat([X, sites, cohort[list(auxiliary)].astype(float)], axis=1)
    return X.loc[:, (X.nunique() > 1) | (X.columns == "const")]


def _mnlogit_class():
    """statsmodels' MNLogit with the Hessian as chunked weighted Gram matrices (same values, ~3x faster).

    statsmodels forms each of the (J-1)^2 blocks -X' diag(w) X through an n x K temporary and computes
    the symmetric ones twice: 3.0 s a Newton step on the national imputation model (1.9 million people,
    61 predictors), ~8 steps. Here each distinct block is one :func:`~pcref_eval.survival.cox.weighted_gram`.
    """
    import statsmodels.api as sm

    from pcref_eval.survival.cox import weighted_gram

    class MNLogitGramHessian(sm.MNLogit):
        def hessian(self, params):
            """Hessian of the log-likelihood, (J-1)K x (J-1)K, as statsmodels orders it."""
            K, J1 = self.K, self.J - 1
            pr = self.cdf(self.exog @ params.reshape(K, -1, order="F"))
            H = np.empty((J1 * K, J1 * K))
            for i in range(J1):
                for j in range(i, J1):
                    w = pr[:, i + 1] * ((1.0 if i == j else 0.0) - pr[:, j + 1])
                    block = -weighted_gram(self.exog, w)
                    H[i * K:(i + 1) * K, j * K:(j + 1) * K] = block
                    H[j * K:(j + 1) * K, i * K:(i + 1) * K] = block.T
            return H

    return MNLogitGramHessian


def impute_groups(groups: pd.Series, predictors: pd.DataFrame | np.ndarray, config: ImputationConfig
                  ) -> list[pd.Series]:
    """``config.m`` completed copies of ``groups`` (missing values drawn from a multinomial logistic model)."""
    missing = groups.isna().to_numpy()
    levels = sorted(groups.dropna().unique())
    if not missing.any():
        return [groups.copy() for _ in range(config.m)]
    if len(levels) < 2:
        raise ValueError(f"imputation needs at least two recorded groups, found {levels}")
    _MNLogit = _mnlogit_class()
    y = pd.Categorical(groups[~missing], categories=levels).codes
    X = np.asarray(predictors, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter; checked below
        # check_rank=False: the rank (a QR of the whole design, ~10 s at national size) only sets df_model;
        # a rank-deficient design still fails below (singular Hessian: not estimable)
        fit = _MNLogit(y, X[~missing], check_rank=False).fit(method="newton", maxiter=35, disp=False)
    if not fit.mle_retvals.get("converged", False):
        raise ValueError("the ethnicity imputation model did not converge")
    beta_hat = np.asarray(fit.params).ravel(order="F")  # (p * (J - 1)), column by column
    cov = np.asarray(fit.cov_params())
    n_predictors, Xm = X.shape[1], X[missing]
    del fit, X  # the model holds its design (national scale: ~1 GB); the draws need only the missing rows
    rng = np.random.default_rng(config.seed)
    out = []
    for _ in range(config.m):
        beta = rng.multivariate_normal(beta_hat, cov, method="cholesky").reshape(n_predictors, -1, order="F")
        eta = np.column_stack([np.zeros(Xm.shape[0]), Xm @ beta])
        prob = np.exp(eta - eta.max(axis=1, keepdims=True))
        prob /= prob.sum(axis=1, keepdims=True)
        draw = (rng.random(Xm.shape[0])[:, None] > np.cumsum(prob, axis=1)).sum(axis=1)
        completed = groups.copy().astype(object)
        completed[missing] = np.asarray(levels, dtype=object)[np.minimum(draw, len(levels) - 1)]
        out.append(completed)
    return out


def rubin_combine(log_estimates: np.ndarray, ses: np.ndarray, conf: float = 0.95) -> dict:
    """Rubin's rules for one quantity over m imputations: estimate, SE, df, CI (log scale), fraction missing info."""
    q, u = np.asarray(log_estimates, float), np.asarray(ses, float) ** 2
    m = q.size
    qbar, w, b = q.mean(), u.mean(), q.var(ddof=1)
    t = w + (1 + 1 / m) * b
    r = (1 + 1 / m) * b / w
    df = (m - 1) * (1 + 1 / r) ** 2 if r > 0 else np.inf
    crit = stats.t.ppf(0.5 + conf / 2, df) if np.isfinite(df) else stats.norm.ppf(0.5 + conf / 2)
    se = float(np.sqrt(t))
    return {"log_estimate": float(qbar), "se": se, "df": float(df), "lower": qbar - crit * se,
            "upper": qbar + crit * se, "fmi": float((r + 2 / (df + 3)) / (r + 1)) if np.isfinite(df) else 0.0}


def with_handling(cohort: pd.DataFrame, analysis: Analysis, handling: str, reference: str,
                  keep_groups: list[str], config: ImputationConfig | None = None, conf: float = 0.95) -> pd.DataFrame:
    """Run ``analysis`` with unrecorded ethnicity (``ethnic_group == "Not recorded"``) handled one way.

    ``keep_groups``: the recorded groups the analysis compares (e.g. focus and reference); people in
    other recorded groups are left out after imputation. ``excluded``: unrecorded people dropped
    (complete case); ``own_group``: kept as a group of their own (its terms are estimated, not
    reported); ``imputed``: multiple imputation (:func:`impute_groups`) and Rubin's rules.
    Returns quantity, log_estimate, se, lower, upper (log scale) and, for ``imputed``, df and fmi.
    """
    if handling not in HANDLINGS:
        raise ValueError(f"handling must be one of {HANDLINGS}, got {handling!r}")
    z = stats.norm.ppf(0.5 + conf / 2)
    groups = cohort["ethnic_group"].astype(str)
    if handling != "imputed":
        keep = groups.isin(keep_groups + ([UNRECORDED] if handling == "own_group" else []))
        res = analysis(cohort[keep]).copy()
        res["lower"], res["upper"] = res["log_estimate"] - z * res["se"], res["log_estimate"] + z * res["se"]
        return res
    config = config or ImputationConfig()
    observed = groups.where(groups != UNRECORDED)
    # the design as one array, so the DataFrame it was built in is freed before the model is fitted
    completed = impute_groups(observed, imputation_predictors(cohort, config.auxiliary).to_numpy(float), config)
    fits = []
    for g in completed:
        groups = g.to_numpy()
        kept = np.isin(groups, keep_groups)  # subset first, then relabel: no full copy of the cohort per imputation
        fits.append(analysis(cohort[kept].assign(ethnic_group=groups[kept])))
    rows = []
    for quantity in fits[0]["quantity"]:
        est = np.array([f.loc[f["quantity"] == quantity, "log_estimate"].iloc[0] for f in fits])
        se = np.array([f.loc[f["quantity"] == quantity, "se"].iloc[0] for f in fits])
        rows.append({"quantity": quantity, **rubin_combine(est, se, conf)})
    return pd.DataFrame(rows)
