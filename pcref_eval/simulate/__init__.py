"""Simulation study of the attribution estimators (``pcref-eval simulate``): scenarios, replicates, summary."""

from pcref_eval.simulate.run import ESTIMATORS, StudySettings, load_results, replicate, run_study
from pcref_eval.simulate.scenarios import Scenario, scenarios
from pcref_eval.simulate.summary import figure, markdown_table, performance

__all__ = ["ESTIMATORS", "Scenario", "StudySettings", "figure", "load_results", "markdown_table", "performance",
           "replicate", "run_study", "scenarios"]
