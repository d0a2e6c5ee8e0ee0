"""What a notebook opens first: config, extract, cohort and a publisher, in one call.

Notebooks stay thin: ``open_site(config_path, site_id, run_dir)`` returns a :class:`SiteSession`
and every later cell calls one library function and publishes its result.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pcref_eval.cohort import build_cohort
from pcref_eval.config import EvaluationConfig, load_config
from pcref_eval.disclosure import DisclosurePolicy
from pcref_eval.extract import SiteExtract, load_site
from pcref_eval.publish import Publisher
from pcref_eval.style import apply_style


@dataclass
class SiteSession:
    """One site's evaluation context inside a notebook."""

    config: EvaluationConfig
    site: SiteExtract
    cohort: pd.DataFrame
    flow: pd.DataFrame
    pub: Publisher
    run_dir: Path

    @property
    def study_years(self) -> float:
        """Length of the study window in years (365.25-day years)."""
        return ((self.config.study.end - self.config.study.start).days + 1) / 365.25


@dataclass
class CrossSiteSession:
    """Pooled context: every analysed site's cohort and site information."""

    config: EvaluationConfig
    cohort: pd.DataFrame
    sites: dict[str, SiteExtract]
    pub: Publisher
    run_dir: Path


def cohort_path(run_dir: Path, site_id: str) -> Path:
    """Where a site notebook leaves its patient-level cohort for the cross-site notebook (restricted)."""
    return Path(run_dir) / "restricted" / "cohorts" / f"{site_id}.parquet"


def open_site(config_path: str | Path, site_id: str, run_dir: str | Path, display: bool = True) -> SiteSession:
    """Load config and extract, build the cohort, save it (restricted), and return the session."""
    apply_style()
    config = load_config(config_path)
    site = load_site(config.site(site_id).path)
    cohort, flow = build_cohort(site, config.study, config.cohort, config.ethnicity)
    path = cohort_path(Path(run_dir), site_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_cohort(cohort, path)
    pub = Publisher(Path(run_dir), site_id, DisclosurePolicy.from_config(config.disclosure), display=display)
    return SiteSession(config, site, cohort, flow, pub, Path(run_dir))


def open_cross_site(config_path: str | Path, site_ids: list[str], run_dir: str | Path,
                    display: bool = True) -> CrossSiteSession:
    """Load every site's cohort (built by its site notebook, or built here when run interactively)."""
    apply_style()
    config = load_config(config_path)
    cohorts, sites = [], {}
    for site_id in site_ids:
        site = load_site(config.site(site_id).path, tables=["people", "referrals", "mha_episodes"])
        sites[site_id] = site
        path = cohort_path(Path(run_dir), site_id)
        if path.exists():
            cohorts.append(_load_cohort(path, config))
        else:
            cohorts.append(build_cohort(site, config.study, config.cohort, config.ethnicity)[0])
    cohort = pd.concat(cohorts, ignore_index=True)
    pub = Publisher(Path(run_dir), "all", DisclosurePolicy.from_config(config.disclosure), display=display)
    return CrossSiteSession(config, cohort, sites, pub, Path(run_dir))


def _save_cohort(cohort: pd.DataFrame, path: Path) -> None:
    """Write the cohort atomically: the cross-site notebook, running alongside, never reads half a file."""
    import os

    out = cohort.copy()
    for col in ("ethnic_group", "broad_group"):
        out[col] = out[col].astype(str)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    out.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def _load_cohort(path: Path, config: EvaluationConfig) -> pd.DataFrame:
    from pcref_eval.ethnicity import group_order
    df = pd.read_parquet(path)
    df["ethnic_group"] = pd.Categorical(df["ethnic_group"], categories=group_order(config.ethnicity.scheme), ordered=True)
    df["broad_group"] = pd.Categorical(df["broad_group"], categories=group_order("broad"), ordered=True)
    return df
