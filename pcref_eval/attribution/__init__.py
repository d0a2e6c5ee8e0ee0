"""Attributing a change in the ethnic gap to PCREF, with sites not yet live as the comparison (issue 11).

- :mod:`.design`: the staggered-adoption design on calendar time, site x month cells;
- :mod:`.calendar_cox`: the main estimate, a Cox model on calendar time stratified by site
  (a triple difference in hazards), by adoption cohort and year since go-live;
- :mod:`.event_study`: interaction-weighted event study of the focus/reference rate ratio of any
  measure, with a pre-trend test;
- :mod:`.naive`: each site's before/after comparison, kept and labelled as naive;
- :mod:`.aggregate`: averaging cell effects into the effect on the treated (and its truth);
- :mod:`.tables`: released tables, figures and text.

``attribute(cohort, go_live, reference, start, end)`` runs all three on a pooled cohort.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from pcref_eval.attribution.aggregate import WeightedEffect
from pcref_eval.attribution.calendar_cox import CalendarCoxResult, calendar_time_cox
from pcref_eval.attribution.design import NEVER, StaggeredDesign, analysis_cohort, cells, design_from_sites
from pcref_eval.attribution.event_study import EventStudyResult, event_study, measure_cells
from pcref_eval.attribution.naive import naive_before_after
from pcref_eval.attribution.tables import (design_text, event_study_figure, event_study_table, event_year_table,
                                           headline_figure, headline_table, headline_text, pretrend_text)
from pcref_eval.config import AttributionConfig

__all__ = ["Attribution", "attribute", "calendar_time_cox", "cells", "design_from_sites", "design_text",
           "event_study", "event_study_figure", "event_study_table", "event_year_table", "headline_figure",
           "headline_table", "headline_text", "measure_cells", "measure_event_studies", "naive_before_after",
           "pretrend_text", "publish_measure_event_studies", "publish_pretrend", "sites_measure_counts"]


@dataclass
class Attribution:
    """The three estimates of the PCREF effect on the detention gap, with their design and counts."""

    design: StaggeredDesign
    cox: CalendarCoxResult
    event_study: EventStudyResult
    naive: WeightedEffect
    counts: dict
    site_roles: dict
    settings: AttributionConfig = AttributionConfig()

    @property
    def main_effect(self) -> WeightedEffect:
        """The reported main estimate: the calendar-time Cox effect with its interval allowing for each site's
        gap drifting on its own (``settings.site_drift_sd_per_year``; docs/simulation-study.md)."""
        return self.cox.effect_allowing_drift(self.settings.site_drift_sd_per_year)


def attribute(cohort: pd.DataFrame, go_live: dict[str, date], reference: str, start: date, end: date,
              settings: AttributionConfig = AttributionConfig()) -> Attribution:
    """Calendar-time Cox, event study and naive comparison of first detention on a pooled cohort.

    ``start``: study window start; ``end``: last follow-up day (the latest extract date); ``settings``: the
    site-drift allowance of the main estimate's interval.
    """
    design = design_from_sites(go_live, start, end)
    ac = analysis_cohort(cohort, reference, start)
    c = cells(ac, design)
    live = c["month"].to_numpy() >= c["site_id"].map({s: design.go_live_month(s) for s in go_live}).to_numpy()
    counts = {"focus_live": int(c.loc[live, "focus_events"].sum()),
              "focus_not_live": int(c.loc[~live, "focus_events"].sum())}
    roles = {s: ("never live in window" if design.go_live_month(s) == NEVER else "live in window") for s in go_live}
    return Attribution(design=design, cox=calendar_time_cox(ac, design), event_study=event_study(c, design),
                       naive=naive_before_after(cohort, go_live, reference), counts=counts, site_roles=roles,
                       settings=settings)


def measure_event_studies(data: pd.DataFrame, measures: list[str], reference: str, design: StaggeredDesign
                          ) -> dict[str, EventStudyResult]:
    """Event study of each measure's focus/reference ratio from monthly measure counts of all sites."""
    out = {}
    for m in measures:
        mc = measure_cells(data, m, reference, design)
        if len(mc) and mc["focus_events"].sum() > 0 and mc["reference_events"].sum() > 0:
            out[m] = event_study(mc, design)
    return out


def sites_measure_counts(config, site_ids: list[str], measure_ids: list[str]) -> pd.DataFrame:
    """Monthly counts and denominators of ``measure_ids`` by group for every site (restricted)."""
    from pcref_eval.extract import load_site
    from pcref_eval.measures.compute import MeasureSettings, count_measures
    from pcref_eval.measures.defaults import measure_registry

    defs = [m for m in measure_registry(list(config.measures or [])) if m.id in measure_ids]
    settings = MeasureSettings.from_config(config)
    # only the tables these measures count from, plus those every measure context reads
    tables = sorted({"people", "referrals", "hospital_spells", "mha_episodes", *(d.numerator.table for d in defs)})
    return pd.concat([count_measures(load_site(config.site(s).path, tables=tables), defs, settings)
                      for s in site_ids], ignore_index=True)


def publish_measure_event_studies(session, att: Attribution, site_ids: list[str], measure_ids: list[str]) -> None:
    """Cross-site notebook: release each measure's event-study table, figure and pre-trend sentence."""
    from pcref_eval.attribution.tables import SECTION

    counts = sites_measure_counts(session.config, site_ids, measure_ids)  # restricted, never released
    threshold = session.pub.policy.threshold
    for measure, es in measure_event_studies(counts, measure_ids, session.config.ethnicity.reference,
                                             att.design).items():
        released = session.pub.table(event_study_table(es, threshold), f"event_study_{measure}",
                                     f"Event study, {measure}, all sites: change in the focus/reference ratio by "
                                     "quarter since go-live (comparison: sites not yet live)", section=SECTION)
        session.pub.figure(event_study_figure(released, f"{measure}, all sites"), f"event_study_{measure}",
                           f"Event study of {measure}, all sites: focus/reference ratio by quarter since go-live "
                           "(95% CI)", section=SECTION)
        publish_pretrend(session, es, f"event_study_{measure}")
        session.pub.note(f"{pretrend_text(es, measure)} {_average_text(es, measure)}".strip())


def publish_pretrend(session, es: EventStudyResult, name: str) -> None:
    """Release the event study's pre-trend test and average change (model outputs, not displayed), so the
    sentences that quote them quote released values."""
    from pcref_eval.attribution.tables import SECTION
    e = es.effect
    session.pub.test_result(f"{name}_tests", f"{name}: joint Wald tests of the pre-go-live quarters (pooled and "
                            "by adoption cohort) and the average change after go-live (95% CI)", section=SECTION, pretrend_chi_square=es.pretrend_chi2,
                            pretrend_df=es.pretrend_df, pretrend_p=es.pretrend_p,
                            cohort_pretrend_chi_square=es.cohort_pretrend_chi2,
                            cohort_pretrend_df=es.cohort_pretrend_df, cohort_pretrend_p=es.cohort_pretrend_p,
                            average_change=e.estimate,
                            average_change_lower=e.lower, average_change_upper=e.upper)


def _average_text(es: EventStudyResult, measure: str) -> str:
    """The event study's average change after go-live (a model output) in one sentence ("" if not estimable:
    :func:`pretrend_text` says why)."""
    if not es.estimable:
        return ""
    e = es.effect
    return (f"Average change in the {measure} focus/reference ratio after go-live: {e.estimate:.2f} "
            f"(95% CI {e.lower:.2f} to {e.upper:.2f}).")
