"""Statistical disclosure control for everything written to a run's ``release/`` folder.

Policies:

- ``opensafely`` (default, the strictest common rule): redact any count of 7 or fewer
  (including zero? no: zero describes nobody and is kept), then round the rest to the nearest 5.
- ``nhse_mha``: NHS England's MHA statistics rule: counts below 5 suppressed, the rest rounded to 5.

Rates, ratios and proportions derived from a redacted count are redacted too. Totals are
recomputed from rounded parts by the caller's table builder (:func:`apply_policy` recomputes
declared total rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

REDACTED = "[REDACTED]"


@dataclass(frozen=True)
class DisclosurePolicy:
    """Redact counts in 1..threshold, then round the rest to the nearest ``rounding``."""

    name: str = "opensafely"
    threshold: int = 7
    rounding: int = 5

    @classmethod
    def from_config(cls, cfg) -> "DisclosurePolicy":
        """Build from :class:`~pcref_eval.config.DisclosureConfig`."""
        default = 7 if cfg.policy == "opensafely" else 4
        return cls(name=cfg.policy, threshold=cfg.threshold if cfg.threshold is not None else default,
                   rounding=cfg.rounding)

    def is_disclosive(self, counts) -> np.ndarray:
        """True where a count describes between 1 and ``threshold`` people."""
        c = np.asarray(pd.to_numeric(pd.Series(counts), errors="coerce"), dtype=float)
        return (c >= 1) & (c <= self.threshold)

    def control_counts(self, counts: pd.Series) -> pd.Series:
        """Redacted (NaN) where disclosive, otherwise rounded to the nearest ``rounding`` (half up)."""
        c = pd.to_numeric(counts, errors="coerce").astype(float)
        rounded = np.floor(c / self.rounding + 0.5) * self.rounding
        return rounded.where(~self.is_disclosive(c))


def apply_policy(df: pd.DataFrame, policy: DisclosurePolicy, count_cols: list[str],
                 derived: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Apply ``policy`` to ``count_cols``; blank each derived column where any of its source counts is redacted.

    ``derived`` maps a column (rate, ratio, proportion, CI limit) to the count columns it is computed from.
    """
    out = df.copy()
    redacted = {}
    for col in count_cols:
        redacted[col] = pd.Series(policy.is_disclosive(df[col]), index=df.index)
        out[col] = policy.control_counts(df[col])
    for col, sources in (derived or {}).items():
        mask = np.zeros(len(df), dtype=bool)
        for s in sources:
            mask |= redacted[s].to_numpy()
        out[col] = out[col].where(~mask)
    return out
