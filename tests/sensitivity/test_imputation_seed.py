"""The multiple-imputation seed derives from the run's seed."""

from __future__ import annotations

import numpy as np

from pcref_eval.config import EvaluationConfig
from pcref_eval.sensitivity.analyses import MI_STREAM, SensitivityConfig, imputation_seed


def test_imputation_seed_is_a_child_of_the_run_seed():
    assert imputation_seed(2024) == int(np.random.SeedSequence([2024, MI_STREAM]).generate_state(1)[0])
    assert imputation_seed(2024) == imputation_seed(2024)  # same run seed, same imputations
    assert len({imputation_seed(s) for s in (1, 2, 2024, 2025)}) == 4


def test_config_for_run_uses_the_run_seed_and_keeps_the_other_settings():
    run_seed = EvaluationConfig.model_fields["seed"].default
    c = SensitivityConfig.for_run(run_seed, leave_one_site_out=False)
    assert c.imputation.seed == imputation_seed(run_seed) != SensitivityConfig().imputation.seed
    assert c.imputation.m == SensitivityConfig().imputation.m and c.leave_one_site_out is False
    assert SensitivityConfig.for_run(run_seed + 1).imputation.seed != c.imputation.seed
