"""PCREF core measures: declared definitions, vectorised computation, board page and implementation effect.

- :mod:`~pcref_eval.measures.definitions`: :class:`MeasureDefinition` (the declaration a user writes
  in the config under ``measures:``).
- :mod:`~pcref_eval.measures.defaults`: the default measures (``default_measures.yml``) and
  :func:`measure_registry` (defaults + user measures).
- :mod:`~pcref_eval.measures.compute`: numerator, denominator, value and CI per site x month x
  group, and the ratio (or difference) to the reference group with CI.
- :mod:`~pcref_eval.measures.board`: the site's board page (``publish_board(session)``).
- :mod:`~pcref_eval.measures.implementation`: interrupted time series around go-live
  (``publish_implementation_effect(session)``).

Only the definitions are imported eagerly (``pcref_eval.config`` imports them); the rest load on use.
"""

from __future__ import annotations

import importlib

from pcref_eval.measures.definitions import MeasureDefinition, Numerator

__all__ = [
    "MeasureDefinition",
    "Numerator",
    "default_measures",
    "measure_registry",
    "compute_measures",
    "compute_site_measures",
    "compute_sites",
    "summarise_window",
    "site_measures",
    "publish_board",
    "publish_implementation_effect",
    "implementation_effects",
]

_LAZY = {
    "default_measures": "defaults",
    "measure_registry": "defaults",
    "compute_measures": "compute",
    "compute_site_measures": "compute",
    "compute_sites": "compute",
    "site_measures": "board",
    "summarise_window": "compute",
    "publish_board": "board",
    "publish_implementation_effect": "implementation",
    "implementation_effects": "implementation",
}


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f"pcref_eval.measures.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'pcref_eval.measures' has no attribute {name!r}")
