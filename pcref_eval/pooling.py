"""Random-effects pooling of site estimates, with heterogeneity (cross-site evaluation).

Site estimates on the log scale (e.g. each site's log ratio of hazard ratios) are combined by
inverse-variance weighting with the DerSimonian-Laird (1986) between-site variance
``tau2 = max(0, (Q - (k - 1)) / C)``, ``C = sum(w) - sum(w^2) / sum(w)``, ``w = 1 / v``;
heterogeneity is reported as Cochran's Q (chi-square on k - 1 df) and
``I^2 = max(0, (Q - (k - 1)) / Q)`` (Higgins & Thompson 2002).

For sensitivity analyses, :func:`pool_random_effects` also estimates tau2 by REML and gives the
Hartung-Knapp(-Sidik-Jonkman) interval and a prediction interval (checked against R ``metafor::rma``).

Why not ``statsmodels.stats.meta_analysis.combine_effects(method_re="dl")``: in statsmodels
0.15 it does not truncate tau2 at zero, so when Q < k - 1 the random-effects weights use a
negative variance and the pooled interval is too narrow. The tests check this implementation
against statsmodels where the two must agree (Q >= k - 1) and against the fixed-effect result
where tau2 is 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from pcref_eval.publish import Aggregate


@dataclass(frozen=True)
class Heterogeneity:
    """Between-site heterogeneity of the pooled estimates."""

    k: int
    q: float
    q_df: int
    q_p: float
    i2: float
    tau2: float


def dersimonian_laird(log_estimates, ses, conf: float = 0.95) -> tuple[dict, dict, Heterogeneity]:
    """Fixed-effect and DerSimonian-Laird random-effects pooled log estimates with CIs."""
    y = np.asarray(log_estimates, float)
    v = np.asarray(ses, float) ** 2
    w = 1 / v
    k = len(y)
    fixed = float(np.sum(w * y) / np.sum(w))
    q = float(np.sum(w * (y - fixed) ** 2))
    q_df = k - 1
    c = np.sum(w) - np.sum(w**2) / np.sum(w)
    tau2 = max(0.0, (q - q_df) / c) if k > 1 else 0.0
    w_re = 1 / (v + tau2)
    random = float(np.sum(w_re * y) / np.sum(w_re))
    z = stats.norm.ppf(0.5 + conf / 2)
    fe = {"log": fixed, "se": float(np.sqrt(1 / np.sum(w))), "weights": w / w.sum()}
    re = {"log": random, "se": float(np.sqrt(1 / np.sum(w_re))), "weights": w_re / w_re.sum()}
    for d in (fe, re):
        d["lower"], d["upper"] = d["log"] - z * d["se"], d["log"] + z * d["se"]
    het = Heterogeneity(k=k, q=q, q_df=q_df, q_p=float(stats.chi2.sf(q, q_df)) if q_df > 0 else float("nan"),
                        i2=max(0.0, (q - q_df) / q) if q > 0 else 0.0, tau2=tau2)
    return fe, re, het


def random_effects(estimates: pd.DataFrame, label_col: str = "site_id", log_col: str = "log_estimate",
                   se_col: str = "se", conf: float = 0.95) -> tuple[pd.DataFrame, Heterogeneity]:
    """Per-site rows plus fixed- and random-effects pooled rows, exponentiated (ratio scale)."""
    y, se = estimates[log_col].to_numpy(float), estimates[se_col].to_numpy(float)
    fe, re, het = dersimonian_laird(y, se, conf)
    z = stats.norm.ppf(0.5 + conf / 2)
    table = pd.DataFrame({
        "label": estimates[label_col].astype(str).to_numpy(),
        "estimate": np.exp(y), "lower": np.exp(y - z * se), "upper": np.exp(y + z * se),
        "weight_re_pct": 100 * re["weights"],
    })
    pooled = pd.DataFrame([
        {"label": "Pooled (fixed effect)", "estimate": np.exp(fe["log"]), "lower": np.exp(fe["lower"]),
         "upper": np.exp(fe["upper"]), "weight_re_pct": np.nan},
        {"label": "Pooled (random effects, DerSimonian-Laird)", "estimate": np.exp(re["log"]),
         "lower": np.exp(re["lower"]), "upper": np.exp(re["upper"]), "weight_re_pct": 100.0},
    ])
    return pd.concat([table, pooled], ignore_index=True), het


def pooled_gap_aggregate(site_rows: pd.DataFrame, conf: float = 0.95) -> tuple[Aggregate, Heterogeneity]:
    """Per-site ratio of hazard ratios (after/before go-live) pooled with random effects.

    ``site_rows``: site_id, log_estimate, se, detentions (focus-group detentions in the site's model).
    """
    table, het = random_effects(site_rows, conf=conf)
    counts = site_rows.set_index("site_id")["detentions"]
    # pooled rows carry no count of their own (their sum of the site rows would be a second, differently
    # rounded, total of released parts)
    table["focus_detentions"] = table["label"].map(counts).astype("Float64")
    model = {c: ["focus_detentions"] for c in ("estimate", "lower", "upper", "weight_re_pct")}
    return Aggregate(table, counts=["focus_detentions"], model=model, labels=["label"]), het


def heterogeneity_text(het: Heterogeneity) -> str:
    """One sentence describing heterogeneity for the report."""
    p = "< 0.001" if het.q_p < 0.001 else f"= {het.q_p:.3f}"
    return (f"Heterogeneity across {het.k} sites: Cochran's Q = {het.q:.2f} on {het.q_df} df (p {p}), "
            f"I\u00b2 = {100 * het.i2:.0f}%, \u03c4\u00b2 = {het.tau2:.4f}.")


# ----------------------------------------------------------------------------------------------
# REML, Hartung-Knapp and prediction intervals (sensitivity analyses beside DerSimonian-Laird)

TAU2_METHODS = ("dl", "reml")


@dataclass(frozen=True)
class PooledEstimate:
    """A random-effects pooled log estimate with its interval and a prediction interval.

    ``method``: "dl" or "reml" (between-site variance); ``hartung_knapp``: whether the CI uses the
    Hartung-Knapp-Sidik-Jonkman variance and a t(k - 1) quantile. ``pi_lower``/``pi_upper``: the
    prediction interval for a new site's true effect (Higgins, Thompson & Spiegelhalter 2009, as
    metafor ``predict.rma``: t(k - 1) quantile when Hartung-Knapp is used, else normal).
    """

    method: str
    hartung_knapp: bool
    log: float
    se: float
    lower: float
    upper: float
    pi_lower: float
    pi_upper: float
    tau2: float
    k: int


def dl_tau2(y, v) -> float:
    """DerSimonian-Laird between-site variance, truncated at zero."""
    return dersimonian_laird(y, np.sqrt(np.asarray(v, float)))[2].tau2


def reml_tau2(y, v, tol: float = 1e-10, max_iter: int = 200) -> float:
    """Restricted maximum-likelihood between-site variance (Fisher scoring, as metafor ``rma(method="REML")``).

    With w = 1 / (v + tau2) and P = W - w w' / sum(w), the REML score is
    [sum w^2 (y - mu)^2 - tr(P)] / 2 and the expected information tr(P P) / 2; iterations start at the
    DerSimonian-Laird value and are truncated at zero (metafor's default).
    """
    y, v = np.asarray(y, float), np.asarray(v, float)
    if len(y) < 2:
        return 0.0
    tau2 = dl_tau2(y, v)
    for _ in range(max_iter):
        w = 1 / (v + tau2)
        mu = np.sum(w * y) / np.sum(w)
        sw, sw2 = np.sum(w), np.sum(w**2)
        tr_p = sw - sw2 / sw
        tr_pp = sw2 - 2 * np.sum(w**3) / sw + (sw2 / sw) ** 2
        adj = (np.sum(w**2 * (y - mu) ** 2) - tr_p) / tr_pp
        new = max(0.0, tau2 + adj)
        if abs(new - tau2) < tol * max(1.0, tau2):
            return new
        tau2 = new
    raise ValueError(f"REML estimate of tau2 did not converge in {max_iter} iterations")


def pool_random_effects(log_estimates, ses, method: str = "reml", hartung_knapp: bool = True,
                        conf: float = 0.95) -> PooledEstimate:
    """Inverse-variance random-effects pooling with DL or REML tau2, optional Hartung-Knapp CI, and a PI.

    Hartung-Knapp(-Sidik-Jonkman): var(mu) = sum w (y - mu)^2 / ((k - 1) sum w) with a t(k - 1) quantile
    (no truncation of the scaling factor, as metafor ``test="knha"``). Prediction interval:
    mu +/- q sqrt(tau2 + var(mu)), q from t(k - 1) with Hartung-Knapp, else the normal.
    """
    if method not in TAU2_METHODS:
        raise ValueError(f"method must be one of {TAU2_METHODS}, got {method!r}")
    y, se = np.asarray(log_estimates, float), np.asarray(ses, float)
    if y.size == 0 or y.size != se.size or not np.all(se > 0):
        raise ValueError("pooling needs at least one estimate and a positive standard error for each")
    v = se**2
    k = y.size
    tau2 = reml_tau2(y, v) if method == "reml" else dl_tau2(y, v)
    w = 1 / (v + tau2)
    mu = float(np.sum(w * y) / np.sum(w))
    use_t = hartung_knapp and k > 1
    if use_t:
        var_mu = float(np.sum(w * (y - mu) ** 2) / ((k - 1) * np.sum(w)))
        q = stats.t.ppf(0.5 + conf / 2, k - 1)
    else:
        var_mu = float(1 / np.sum(w))
        q = stats.norm.ppf(0.5 + conf / 2)
    se_mu = float(np.sqrt(var_mu))
    half_pi = q * np.sqrt(tau2 + var_mu)
    return PooledEstimate(method=method, hartung_knapp=use_t, log=mu, se=se_mu, lower=mu - q * se_mu,
                          upper=mu + q * se_mu, pi_lower=mu - half_pi, pi_upper=mu + half_pi, tau2=float(tau2), k=k)
