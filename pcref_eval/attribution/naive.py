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


def publish_site_naive_comparison(session) -> None:
    """Site notebook: the naive before/after table, or a note when the site is not live in the window.

    A site whose go-live falls after the study window has no after period: it is a comparison site,
    analysed only in the cross-site notebook's attribution section.
    """
    from pcref_eval.detention import gap_over_time

    reference = session.config.ethnicity.reference
    go_live = session.site.info.pcref_go_live
    if not (session.cohort["period"] == "post").any():
        session.pub.note(f"This site goes live on {go_live:%d %B %Y}, after the study window: it has no after "
                         "period, and serves as a comparison site (not yet live) in the cross-site attribution "
                         "analysis.")
        return
    session.pub.table(gap_over_time(session.cohort, go_live, reference), "gap_change",
                      "Naive comparison: focus-group hazard ratio before and after this site's PCREF go-live",
                      section="Implementation")
