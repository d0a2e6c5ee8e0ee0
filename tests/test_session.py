"""The cross-site session pools the cohorts the site notebooks saved (or builds them) and carries each site's
information, not its extract tables."""

from __future__ import annotations

import pandas as pd

from pcref_eval.cohort import build_cohort
from pcref_eval.config import EvaluationConfig, OutputConfig, SiteConfig, write_config
from pcref_eval.extract import load_site
from pcref_eval.session import cohort_path, open_cross_site, open_site


def test_cross_site_session_uses_saved_cohorts_builds_missing_ones_and_keeps_no_tables(tmp_path):
    from pcref_eval.synth import generate
    data = tmp_path / "data"
    generate(data, n_sites=2, people=1200, seed=3)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = EvaluationConfig(sites=[SiteConfig(id=s, path=data / s) for s in ("site_a", "site_b")],
                              outputs=OutputConfig(dir=tmp_path, formats=["html"]))
    write_config(config, run_dir / "config.yml")
    built_a = open_site(run_dir / "config.yml", "site_a", run_dir, display=False).cohort  # saves site_a's cohort
    assert cohort_path(run_dir, "site_a").exists() and not cohort_path(run_dir, "site_b").exists()
    x = open_cross_site(run_dir / "config.yml", ["site_a", "site_b"], run_dir, display=False)
    built_b = build_cohort(load_site(data / "site_b"), config.study, config.cohort, config.ethnicity)[0]
    expected = pd.concat([built_a, built_b], ignore_index=True)
    pd.testing.assert_frame_equal(x.cohort.reset_index(drop=True), expected, check_dtype=False, check_categorical=False)
    assert list(x.sites) == ["site_a", "site_b"]
    for sid, site in x.sites.items():
        assert site.folder == data / sid and site.info.site_id == sid
        assert site.tables == {} and site.population is None
