"""Benchmarking sites against NHS England's published Mental Health Act statistics.

- :mod:`~pcref_eval.benchmark.published`: reader for the MHA annual CSV layout (any year), corrupted
  labels dropped with a warning, clear errors for files that do not fit.
- :mod:`~pcref_eval.benchmark.census`: Census 2021 denominators (England with NHS England's mapping;
  ICBs in Census broad groups), shipped under OGL v3.
- :mod:`~pcref_eval.benchmark.nhse`: published crude rates and ratios reproduced; NHS England's
  interval for a directly standardised rate.
- :mod:`~pcref_eval.benchmark.funnel`: Spiegelhalter funnel limits (exact Poisson for rates, log-normal
  for rate ratios), overdispersion, and the funnel figure.
- :mod:`~pcref_eval.benchmark.site`: a site's rates beside its ICB's and England's published figures.
- :mod:`~pcref_eval.benchmark.release`: :func:`publish_site_benchmark` (notebooks) and
  :func:`run_benchmark` (``pcref-eval benchmark``).

See docs/benchmarking.md.
"""
