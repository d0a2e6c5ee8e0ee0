"""pcref-eval: a workbench for evaluating the Patient and Carer Race Equality Framework (PCREF).

The package is split by domain concept:

- ``pcref_eval.ethnicity``: NHS ethnic category code list and grouping schemes.
- ``pcref_eval.synth``: synthetic MHSDS-shaped site extracts with known ground truth.
- ``pcref_eval.extract``: reading and typing a site extract.
- ``pcref_eval.cohort``: the time-to-first-detention cohort.
- ``pcref_eval.survival``: Kaplan-Meier, log-rank, Cox, competing risks.
- ``pcref_eval.rates`` / ``pcref_eval.spc`` / ``pcref_eval.its``: rates with intervals,
  Making Data Count XmR charts, interrupted time series.
- ``pcref_eval.runner``: papermill orchestration, manifests.
"""

__version__ = "0.1.0"
