"""Aggregating cell-specific effects into one average effect on the treated, and its truth.

The estimators give one log effect per adoption cohort x time since go-live (a "cell"). The
average effect on the treated is their mean weighted by the focus-group person-days at risk in
each cell, ``b = sum w_k d_k / sum w_k``, with variance ``w' V w / (sum w)^2`` (delta method; the
weights are treated as fixed). The generator's truth is defined the same way
(:func:`pcref_eval.synth.calendar.average_effect_on_treated`), so estimate and truth target
the same quantity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats


@dataclass(frozen=True)
class WeightedEffect:
    """A weighted average of log effects: estimate, SE, Wald CI and p-value (ratio scale via exp)."""

    log_estimate: float
    se: float
    conf: float = 0.95

    @property
    def estimate(self) -> float:
        return float(np.exp(self.log_estimate))

    @property
    def lower(self) -> float:
        return float(np.exp(self.log_estimate - stats.norm.ppf(0.5 + self.conf / 2) * self.se))

    @property
    def upper(self) -> float:
        return float(np.exp(self.log_estimate + stats.norm.ppf(0.5 + self.conf / 2) * self.se))

    @property
    def p(self) -> float:
        return float(2 * stats.norm.sf(abs(self.log_estimate / self.se))) if self.se > 0 else float("nan")


def weighted_effect(coef, variance, weights, conf: float = 0.95) -> WeightedEffect:
    """Weighted mean of coefficients with its delta-method SE."""
    b = np.asarray(coef, float)
    V = np.asarray(variance, float)
    w = np.asarray(weights, float)
    if len(b) == 0 or w.sum() <= 0:
        return WeightedEffect(float("nan"), float("nan"), conf)
    a = w / w.sum()
    return WeightedEffect(float(a @ b), float(np.sqrt(max(a @ V @ a, 0.0))), conf)


def true_effect_for_cells(truth: dict, cells: pd.DataFrame, design, weight_col: str = "focus_days") -> float:
    """The generator's true average effect for an estimator's site x month weights.

    ``cells``: site_id, month (design month index) and ``weight_col``; truth: a truth.json dict with
    ``sites.<id>.pcref.effect_by_event_month``. Returns exp(weighted mean of the true log effect).
    """
    num = den = 0.0
    for site, part in cells.groupby("site_id"):
        g = design.go_live_month(site)
        eff = {int(k): v for k, v in truth["sites"][site]["pcref"]["effect_by_event_month"].items()}
        e = part["month"].to_numpy() - g
        w = part[weight_col].to_numpy(float)
        for ei, wi in zip(e, w):
            if ei >= 0 and wi > 0 and int(ei) in eff:
                num += wi * np.log(eff[int(ei)])
                den += wi
    return float(np.exp(num / den)) if den > 0 else float("nan")
