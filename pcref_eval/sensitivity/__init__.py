"""Sensitivity analyses for "did PCREF narrow the gap?" (issue 11), reported side by side.

- :mod:`.finegray`: Fine-Gray subdistribution hazard ratios (IPCW-weighted Cox) beside cause-specific ones.
- :mod:`.ethnicity`: unrecorded ethnicity excluded, kept as its own group, or multiply imputed (Rubin's rules).
- :mod:`.analyses`: leave-one-site-out and the side-by-side sensitivity table (an ``Aggregate``).
- :mod:`.simulate`: data with known truth for the simulation studies that check these estimators.
"""

from .finegray import fine_gray, finegray_data

__all__ = ["fine_gray", "finegray_data"]
