"""Survival analysis for the PCREF evaluation, validated against R survival, cmprsk and lifelines.

- :func:`kaplan_meier`, :func:`median_survival`: Kaplan-Meier with Greenwood SE and R's CI and
  quantile conventions (``km``).
- :func:`logrank`: (stratified) log-rank test as R ``survdiff`` (``logrank``).
- :func:`cox`, :func:`treatment_dummies`: Cox regression with Efron/Breslow ties, strata and
  (start, stop] data, fast at national scale (``cox``); :func:`concordance_index`.
- :func:`cumulative_incidence`: Aalen-Johansen with competing risks as cmprsk/tidycmprsk
  (``competing``).
- :func:`schoenfeld_test`, :func:`schoenfeld_residuals`, :func:`time_split`,
  :func:`step_function_cox`: proportional-hazards checks (``ph``).
- :func:`gap_change`, :func:`simulate_gap_cohort`: the PCREF question, change in the ethnic
  hazard ratio after go-live (``gap``).
- :func:`km_release_table`, :func:`roundmid`: disclosure-controlled KM tables (``release``).
- :func:`plot_km`, :func:`plot_cumulative_incidence`, :func:`plot_forest` (``plots``).

All functions take pandas DataFrames and return tidy DataFrames or small result objects.
"""

from .competing import cumulative_incidence
from .concordance import Concordance, concordance_index
from .cox import ChiSquareTest, CoxResult, cox, treatment_dummies
from .gap import GapResult, gap_change, simulate_gap_cohort
from .km import kaplan_meier, median_survival
from .logrank import LogrankResult, logrank
from .ph import schoenfeld_residuals, schoenfeld_test, step_function_cox, time_split
from .plots import number_at_risk, plot_cumulative_incidence, plot_forest, plot_km
from .release import km_release_table, roundmid

__all__ = [
    "ChiSquareTest",
    "Concordance",
    "CoxResult",
    "GapResult",
    "LogrankResult",
    "concordance_index",
    "cox",
    "cumulative_incidence",
    "gap_change",
    "kaplan_meier",
    "km_release_table",
    "logrank",
    "median_survival",
    "number_at_risk",
    "plot_cumulative_incidence",
    "plot_forest",
    "plot_km",
    "roundmid",
    "schoenfeld_residuals",
    "schoenfeld_test",
    "simulate_gap_cohort",
    "step_function_cox",
    "time_split",
    "treatment_dummies",
]
