"""Simulated data with known truth for the sensitivity estimators (simulation studies in the tests).

- :func:`simulate_fine_gray`: competing risks with a known subdistribution hazard ratio (Fine & Gray
  1999, section 5): P(cause 1 | z) = 1 - (1 - p)^exp(z'b), cause-1 times from the proper
  subdistribution F1(t | z) = 1 - [1 - p (1 - e^-t)]^exp(z'b), cause-2 times exponential.
- :func:`simulate_unrecorded_ethnicity`: a cohort with a known focus-group hazard ratio whose
  ethnicity is unrecorded more often for people who were detained or came by an adverse pathway
  (missing at random given outcome and covariates, not completely at random): complete-case
  analysis is biased, multiple imputation using the outcome and the pathway is not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def simulate_fine_gray(n: int = 2000, log_shr: float = np.log(0.6), p: float = 0.3, log_hr2: float = 0.5,
                       x_coef: float = 0.3, max_censor: float = 3.0, seed: int | None = 0,
                       day_ties: bool = False) -> pd.DataFrame:
    """Competing-risks data whose cause-1 subdistribution HR for ``z`` is exp(``log_shr``) (and exp(``x_coef``) for x).

    Columns: z (0/1), x (normal), time, status (0 censored, 1 cause of interest, 2 competing).
    Censoring uniform on (0, ``max_censor``). ``day_ties``: round times up to 1/365 (tied times, as day data).
    """
    rng = np.random.default_rng(seed)
    z = (rng.random(n) < 0.4).astype(float)
    x = rng.normal(size=n)
    e = np.exp(log_shr * z + x_coef * x)
    p1 = 1 - (1 - p) ** e
    cause1 = rng.random(n) < p1
    u = rng.random(n)
    t1 = -np.log(1 - (1 - (1 - u * p1) ** (1 / e)) / p)
    t2 = rng.exponential(1 / np.exp(log_hr2 * z), n)
    t = np.where(cause1, t1, t2)
    c = rng.uniform(0, max_censor, n)
    time = np.minimum(t, c)
    status = np.where(t <= c, np.where(cause1, 1, 2), 0)
    if day_ties:
        time = np.ceil(time * 365) / 365
    return pd.DataFrame({"z": z, "x": x, "time": time, "status": status})


def simulate_unrecorded_ethnicity(n: int = 20_000, hr_focus: float = 3.0, ratio_post_pre: float = 0.7,
                                  n_sites: int = 3, seed: int | None = 0, base_missing: float = 0.10,
                                  missing_or_detained: float = 6.0, missing_or_adverse: float = 8.0) -> pd.DataFrame:
    """Cohort (the ``gap_change`` columns, ``adverse_pathway`` and ``ethnic_group_true``) with ethnicity MAR.

    Groups: White British (reference), Black (focus: HR ``hr_focus`` before go-live, times
    ``ratio_post_pre`` after), Other (HR 1.3). ``adverse_pathway`` (referral by police or courts:
    10% of White, 35% of Black, 15% of Other people) doubles the detention hazard and is not in the
    analysis model. P(unrecorded) is logistic: odds ``base_missing`` / (1 - .) multiplied by
    ``missing_or_detained`` for people detained during follow-up and ``missing_or_adverse`` for the
    adverse pathway, so recorded Black people are the lower-risk ones and complete-case analysis
    understates the gap; the missingness is at random given outcome and pathway, which MI uses.
    """
    rng = np.random.default_rng(seed)
    groups = np.array(["White British", "Black", "Other"])
    eth = rng.choice(groups, size=n, p=[0.75, 0.12, 0.13])
    adverse = rng.random(n) < np.select([eth == "Black", eth == "Other"], [0.35, 0.15], 0.10)
    age = rng.uniform(18, 80, n)
    sex = rng.choice(np.array(["1", "2"]), size=n)
    site = rng.integers(0, n_sites, n)
    post = rng.random(n) < 0.5
    log_hr = np.select([eth == "Black", eth == "Other"], [np.log(hr_focus), np.log(1.3)], 0.0)
    lp = (log_hr + np.log(ratio_post_pre) * ((eth == "Black") & post) + np.log(0.9) * post + np.log(2.0) * adverse
          - 0.01 * (age - 40) + np.log(0.8) * (sex == "2") + np.log([0.8, 1.0, 1.25])[site % 3])
    t_det = rng.exponential(1 / (0.05 / 365.25 * np.exp(lp)))
    t_death = rng.exponential(1 / (0.01 / 365.25 * np.exp(0.06 * (age - 40))))
    t_cens = rng.uniform(365.0, 3 * 365.0, n)
    t = np.minimum.reduce([t_det, t_death, t_cens])
    status = np.select([t == t_det, t == t_death], [1, 2], 0)
    logit = (np.log(base_missing / (1 - base_missing)) + np.log(missing_or_detained) * (status == 1)
             + np.log(missing_or_adverse) * adverse)
    unrecorded = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame({
        "person_id": np.arange(1, n + 1),
        "site_id": np.char.add("site_", site.astype(str)),
        "ethnic_group_true": eth,
        "ethnic_group": np.where(unrecorded, "Not recorded", eth),
        "adverse_pathway": adverse.astype(float),
        "age": age,
        "sex": sex,
        "imd_decile": rng.integers(1, 11, n),
        "period": np.where(post, "post", "pre"),
        "duration_days": np.ceil(t),
        "status": status,
    })
