"""Synthetic MHSDS-shaped pilot-site extracts with known ground truth (see ``model`` for the model)."""

from pcref_eval.synth.generate import TABLES, generate
from pcref_eval.synth.model import SimulationModel, SiteSpec, default_sites

__all__ = ["TABLES", "SimulationModel", "SiteSpec", "default_sites", "generate"]
