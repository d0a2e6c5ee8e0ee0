"""The naive comparison: each site's focus/reference hazard ratio after vs before its own go-live.

Kept beside the comparison-site estimators and labelled as naive: it credits PCREF with every
change of the gap on the calendar (national trend, shocks, recording), because nothing in it says
what would have happened without PCREF. It is :func:`pcref_eval.detention.gap_over_time` (one Cox
model stratified by site, group x period, pre-period follow-up censored at go-live).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from pcref_eval.attribution.aggregate import WeightedEffect

NAIVE_LABEL = "Naive before/after (each site's own go-live; no comparison sites)"


def naive_before_after(cohort: pd.DataFrame, go_live: dict[str, date], reference: str) -> WeightedEffect:
    """Ratio of focus/reference hazard ratios after / before go-live (pooled Cox), as a log effect and SE."""
    from pcref_eval.detention import gap_over_time

    t = gap_over_time(cohort, go_live, reference).data
    row = t[t["quantity"].str.startswith("Ratio of hazard ratios")].iloc[0]
    se = (np.log(row["upper"]) - np.log(row["lower"])) / (2 * 1.959963984540054)
    return WeightedEffect(float(np.log(row["estimate"])), float(se))
