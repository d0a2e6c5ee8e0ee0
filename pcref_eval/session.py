"""What a notebook opens first: config, extract, cohort and a publisher, in one call.

Notebooks stay thin: ``open_site(config_path, site_id, run_dir)`` returns a :class:`SiteSession`
and every later cell calls one library function and publishes its result.

A notebook run by ``pcref-eval run`` reads the config its run saved in the run folder
(``<run_dir>/config.yml``); the run checks ``release/`` at the end. Any other run is **interactive**
(JupyterLab, defaults ``run_dir = ../outputs/interactive``): its ``release/`` folder is checked like a
release after every cell that published something (:class:`InteractiveReleaseCheck`; a failing check
withholds the folder as a run's would), and ``NOT_A_RELEASE.txt`` in it says that outputs from
exploring are not released: only a run's checked ``release/`` is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pcref_eval.cohort import build_cohort
from pcref_eval.config import EvaluationConfig, load_config
from pcref_eval.disclosure import DisclosurePolicy
from pcref_eval.extract import SiteExtract, load_site, read_site_info
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
    """Pooled context: every analysed site's cohort and site information (``sites``: folder and site.yml, no tables)."""

    config: EvaluationConfig
    cohort: pd.DataFrame
    sites: dict[str, SiteExtract]
    pub: Publisher
    run_dir: Path


def cohort_path(run_dir: Path, site_id: str) -> Path:
    """Where a site notebook leaves its patient-level cohort for the cross-site notebook (restricted)."""
    return Path(run_dir) / "restricted" / "cohorts" / f"{site_id}.parquet"


#: Written into an interactive run folder: what it is, and that it is not a release.
INTERACTIVE_NOTE = "NOT_A_RELEASE.txt"
DEMO_HINT = ("the synthetic demo data and its config are made by `make lab` (or `pcref-eval demo --data-only`, "
             "or `make run`); for your own data, set config_path in the parameters cell")


def is_pipeline_run(config_path: str | Path, run_dir: str | Path) -> bool:
    """True when a notebook runs inside ``pcref-eval run``: it reads the config saved in its run folder."""
    return Path(config_path).resolve() == (Path(run_dir) / "config.yml").resolve()


def _load_config(config_path: str | Path) -> EvaluationConfig:
    path = Path(config_path)
    if not path.exists():
        raise FileNotFoundError(f"config {path} not found (from {Path.cwd()}): {DEMO_HINT}")
    return load_config(path)


def open_site(config_path: str | Path, site_id: str, run_dir: str | Path, display: bool = True) -> SiteSession:
    """Load config and extract, build the cohort, save it (restricted), and return the session."""
    apply_style()
    config = _load_config(config_path)
    site = load_site(config.site(site_id).path)
    cohort, flow = build_cohort(site, config.study, config.cohort, config.ethnicity)
    path = cohort_path(Path(run_dir), site_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_cohort(cohort, path)
    pub = Publisher(Path(run_dir), site_id, DisclosurePolicy.from_config(config.disclosure), display=display)
    _start_interactive(config, config_path, pub)
    return SiteSession(config, site, cohort, flow, pub, Path(run_dir))


def open_cross_site(config_path: str | Path, site_ids: list[str], run_dir: str | Path,
                    display: bool = True) -> CrossSiteSession:
    """Load every site's cohort (built by its site notebook, or built here when run interactively).

    ``sites`` holds each site's folder and information (site.yml), not its tables: the analyses across sites
    use the cohorts (a run's cross-site notebook then reads no extract table: 50 national sites took 10 s).
    """
    apply_style()
    config = _load_config(config_path)
    cohorts, sites = [], {}
    for site_id in site_ids:
        folder = Path(config.site(site_id).path)
        path = cohort_path(Path(run_dir), site_id)
        if path.exists():
            sites[site_id] = SiteExtract(folder=folder, info=read_site_info(folder))
            cohorts.append(_load_cohort(path, config))
        else:
            site = load_site(folder, tables=["people", "referrals", "mha_episodes"])
            sites[site_id] = SiteExtract(folder=folder, info=site.info)
            cohorts.append(build_cohort(site, config.study, config.cohort, config.ethnicity)[0])
    cohort = pd.concat(cohorts, ignore_index=True)
    pub = Publisher(Path(run_dir), "all", DisclosurePolicy.from_config(config.disclosure), display=display)
    _start_interactive(config, config_path, pub)
    return CrossSiteSession(config, cohort, sites, pub, Path(run_dir))


def _start_interactive(config: EvaluationConfig, config_path: str | Path, pub: Publisher) -> None:
    """Outside ``pcref-eval run``: mark the folder as not a release and check it after each publishing cell."""
    if is_pipeline_run(config_path, pub.run_dir):
        return
    from pcref_eval.config import write_config
    write_config(config, pub.run_dir / "config.yml")  # the release check reads policy and identifiers here
    (pub.run_dir / "release" / INTERACTIVE_NOTE).write_text(
        "Outputs of an interactive (JupyterLab) session: NOT a release.\n"
        "They are checked like a release after every cell that publishes (a failing check withholds this folder),\n"
        "but only the release/ folder of a `pcref-eval run` (or `make run`), checked at its end, may leave the\n"
        "secure environment. Re-check by hand with: pcref-eval check-release <the folder holding this release/>\n"
        "(no server path is written here: the release check refuses absolute paths in released text)\n")
    InteractiveReleaseCheck(pub).register()


class InteractiveReleaseCheck:
    """After each IPython cell that published something, scan ``release/`` as a run's release check does.

    Clean: one status line. Violations: the folder is withheld (moved to restricted/release-blocked/,
    as :func:`pcref_eval.release_check.gate_release` does at the end of a run) and a warning is shown.
    Policy and extract identifiers are read once per session (reading identifiers takes seconds).
    """

    _active: dict[str, "InteractiveReleaseCheck"] = {}

    def __init__(self, pub: Publisher):
        self.pub, self.seen = pub, 0
        self._policy_ids = None

    def register(self) -> None:
        """Hook into the running IPython shell (replacing an earlier check of the same folder); no-op outside it."""
        try:
            from IPython import get_ipython
        except ImportError:
            return
        shell = get_ipython()
        if shell is None:
            return
        key = str(self.pub.run_dir.resolve())
        old = self._active.get(key)
        if old is not None:
            try:
                shell.events.unregister("post_run_cell", old.after_cell)
            except ValueError:
                pass
        self._active[key] = self
        shell.events.register("post_run_cell", self.after_cell)

    def after_cell(self, result=None) -> None:
        """post_run_cell hook: check when the publisher recorded something new."""
        if len(self.pub.entries) == self.seen:
            return
        self.seen = len(self.pub.entries)
        from IPython.display import Markdown, display
        display(Markdown(self.check()))

    def check(self) -> str:
        """Run the check; return a one-line status (Markdown)."""
        from pcref_eval.release_check import check_release, gate_release, run_policy_and_ids
        if self._policy_ids is None:
            policy, ids, _ = run_policy_and_ids(self.pub.run_dir)
            self._policy_ids = (policy, ids)
        release = self.pub.run_dir / "release"
        violations = check_release(self.pub.run_dir, *self._policy_ids)
        n = sum(1 for p in release.rglob("*") if p.is_file())
        if not violations:
            return (f"*Interactive output, not a release: release check clean ({n} files in `{release}`). "
                    f"Only a `pcref-eval run` releases results.*")
        gate_release(self.pub.run_dir)
        self.pub.__post_init__()  # recreate release/ sub-folders so the session can go on publishing
        return (f"**Release check failed: {len(violations)} problem(s); `{release}` was withheld (moved to "
                f"`restricted/release-blocked/`, details there).** Fix the cause before publishing again.")


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


def describe_outputs(run_dir: str | Path) -> str:
    """Markdown listing what a session released (``release/``) and kept back (``restricted/``): file names only."""
    run_dir = Path(run_dir)

    def files(top: str) -> list[str]:
        base = run_dir / top
        return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()) if base.is_dir() else []

    released, restricted = files("release"), files("restricted")
    lines = [f"**Released** ({len(released)} files in `release/`, disclosure-controlled: counts redacted or "
             "rounded, derived values recomputed from the released counts):", ""]
    lines += [f"- `{f}`" for f in released]
    lines += ["", f"**Restricted** ({len(restricted)} files in `restricted/`, never leave the secure environment: "
              "the patient-level cohort, unrounded tables):", ""]
    lines += [f"- `{f}`" for f in restricted]
    return "\n".join(lines)
