"""Replicates of the simulation study: generate, build cohorts, estimate, record; parallel and resumable.

Each replicate simulates the scenario's sites with its own seed (``[base_seed, scenario index,
replicate]``), writes the three tables the cohort needs to a temporary folder, builds the cohort
exactly as a run does (:func:`pcref_eval.cohort.build_cohort`), and calls the estimators directly
(no notebooks). One JSON line per replicate is appended to ``<out>/replicates.jsonl``; a re-run
skips replicates already there, so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pcref_eval.config import AttributionConfig
from pcref_eval.simulate.scenarios import scenarios

ESTIMATORS = {
    "calendar_cox": "Calendar-time Cox, triple difference (comparison sites)",
    "calendar_cox_drift": "Calendar-time Cox, interval allowing site drift of the gap (the reported interval)",
    "calendar_cox_year0": "Calendar-time Cox, year 0 as one bin (the previous main estimate)",
    "event_study": "Event study, interaction-weighted rate ratio (comparison sites)",
    "naive": "Naive before/after (own go-live only)",
    "calendar_cox_site_robust": "Calendar-time Cox, SE clustered by site (a check, not the reported interval)",
    "calendar_cox_site_trends": "Calendar-time Cox with a linear trend of each site's gap (an option under test)",
}
TABLES_NEEDED = ("people", "referrals", "mha_episodes")
RESULTS = "replicates.jsonl"


@dataclass(frozen=True)
class StudySettings:
    """Size of the study: replicates per scenario, people per replicate, seed, scenarios, workers."""

    replicates: int = 50
    people: int = 40_000
    seed: int = 20261201
    scenario_names: tuple[str, ...] = tuple(scenarios())
    workers: int = 2
    #: estimators to fit (None: all of :data:`ESTIMATORS`); a results file holds what its first run fitted
    estimators: tuple[str, ...] | None = None
    drift_sd: float = AttributionConfig().site_drift_sd_per_year  # allowance of ``calendar_cox_drift``


def _estimable(es):
    """The event study, or its 'not estimable' reason raised (recorded as the replicate's error)."""
    if not es.estimable:
        raise ValueError(es.note)
    return es


@dataclass
class SimulatedReplicate:
    """One replicate's pooled cohort (restricted), design, site parameters and true average effects."""

    cohort: pd.DataFrame
    go_live: dict
    design: object  # StaggeredDesign
    model: object  # SimulationModel
    effects: list  # SiteEffect per site, in the scenario's site order
    truth: float  # over months with a comparison (comparison_event_months)
    truth_whole_window: float


def replicate_seed(scenario_name: str, rep: int, seed: int) -> list[int]:
    """A replicate's seed: ``[study seed, scenario index, replicate]``."""
    return [seed, list(scenarios()).index(scenario_name), rep]


def replicate_site_effects(scenario_name: str, rep: int, people: int, seed: int) -> list:
    """The replicate's site parameters (each site's full effect, ramp and gap drift), drawn from its own seed."""
    from pcref_eval.synth.calendar import site_parameters

    sc = scenarios()[scenario_name]
    rep_seed = replicate_seed(scenario_name, rep, seed)
    return site_parameters(len(sc.sites(people)), sc.model, int(np.random.default_rng(rep_seed).integers(2**31)))


def simulate_replicate(scenario_name: str, rep: int, people: int, seed: int, effects: list | None = None
                       ) -> SimulatedReplicate:
    """Simulate a replicate's sites, write the cohort tables, and build the pooled cohort as a run does.

    ``effects``: the sites' parameters (full effect, ramp, gap drift) in place of the replicate's own draw,
    with the same random numbers otherwise (common random numbers: e.g. one site's drift changed).
    """
    from pcref_eval.attribution.design import comparison_event_months, design_from_sites
    from pcref_eval.cohort import build_cohort
    from pcref_eval.config import CohortConfig, EthnicityConfig, StudyConfig
    from pcref_eval.extract import load_site
    from pcref_eval.synth.calendar import average_effect_on_treated
    from pcref_eval.synth.generate import simulate_site, write_site

    sc = scenarios()[scenario_name]
    model = sc.model
    specs = sc.sites(people)
    rep_seed = replicate_seed(scenario_name, rep, seed)
    if effects is None:
        effects = replicate_site_effects(scenario_name, rep, people, seed)
    cohorts, go_live, true_eff, true_w = [], {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="pcref-sim-") as tmp:
        for i, (spec, eff) in enumerate(zip(specs, effects)):
            tables, population, summary = simulate_site(spec, model, np.random.default_rng([*rep_seed, i]), eff,
                                                         cohort_tables_only=True)
            folder = Path(tmp) / spec.site_id
            write_site(folder, spec, model, {k: tables[k] for k in TABLES_NEEDED}, population, "parquet")
            site = load_site(folder, tables=list(TABLES_NEEDED))
            cohorts.append(build_cohort(site, StudyConfig(), CohortConfig(), EthnicityConfig())[0])
            go_live[spec.site_id] = spec.pcref_go_live
            true_eff[spec.site_id] = {int(k): v for k, v in summary["pcref"]["effect_by_event_month"].items()}
            true_w[spec.site_id] = {int(k): v for k, v in summary["pcref"]["focus_person_days_by_event_month"].items()}
    design = design_from_sites(go_live, model.window_start, model.extract_date)
    # the estimand: months with a comparison (once every site is live the estimators stop; all_live)
    truth = average_effect_on_treated(true_eff, true_w, comparison_event_months(design, list(go_live)))
    return SimulatedReplicate(pd.concat(cohorts, ignore_index=True), go_live, design, model, list(effects), truth,
                              average_effect_on_treated(true_eff, true_w))


def replicate(scenario_name: str, rep: int, people: int, seed: int, estimators: tuple[str, ...] | None = None,
              drift_sd: float = AttributionConfig().site_drift_sd_per_year) -> dict:
    """Simulate one replicate of a scenario and return each estimator's log estimate, SE and the truth
    (``estimators``: a subset of :data:`ESTIMATORS`, None for all; ``drift_sd``: the site-drift allowance of
    ``calendar_cox_drift``)."""
    from pcref_eval.attribution.calendar_cox import calendar_time_cox
    from pcref_eval.attribution.design import analysis_cohort, cells
    from pcref_eval.attribution.event_study import event_study
    from pcref_eval.attribution.naive import naive_before_after

    t0 = time.perf_counter()
    sim = simulate_replicate(scenario_name, rep, people, seed)
    cohort, go_live, design, model, truth = sim.cohort, sim.go_live, sim.design, sim.model, sim.truth
    ac = analysis_cohort(cohort, "White British", model.window_start)
    out = {"scenario": scenario_name, "rep": rep, "people": people, "truth": truth, "log_truth": float(np.log(truth)),
           "truth_whole_window": sim.truth_whole_window, "drift_sd": drift_sd}
    main: dict = {}

    def main_fit():
        if "fit" not in main:
            main["fit"] = calendar_time_cox(ac, design)
        return main["fit"]
    fits = {
        "calendar_cox": lambda: main_fit().effect,
        "calendar_cox_year0": lambda: calendar_time_cox(ac, design, first_year_months=12).effect,
        "event_study": lambda: _estimable(event_study(cells(ac, design), design, pretrend_by_cohort=False)).effect,
        "naive": lambda: naive_before_after(cohort, go_live, "White British"),
        "calendar_cox_site_robust": lambda: main_fit().effect_site_robust,  # the same fit, SE clustered by site
        "calendar_cox_site_trends": lambda: calendar_time_cox(ac, design, site_trends=True).effect,
        "calendar_cox_drift": lambda: main_fit().effect_allowing_drift(drift_sd),
    }
    for name, fit in fits.items():
        if estimators is not None and name not in estimators:
            continue
        try:
            eff = fit()
            out[name] = {"log_estimate": eff.log_estimate, "se": eff.se}
        except Exception as exc:  # a replicate where a model cannot be fitted is recorded, not hidden
            out[name] = {"log_estimate": None, "se": None, "error": f"{type(exc).__name__}: {exc}"[:200]}
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def _job(args) -> dict:
    return replicate(*args)


def done_keys(path: Path) -> set[tuple[str, int, int]]:
    """(scenario, replicate, people) already recorded in a results file."""
    if not path.exists():
        return set()
    keys = set()
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            keys.add((r["scenario"], r["rep"], r["people"]))
    return keys


def run_study(out: Path, settings: StudySettings, echo=print) -> Path:
    """Run every missing replicate (in a process pool of ``settings.workers``); return the results file."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / RESULTS
    done = done_keys(path)
    # replicate-major order: an interrupted study has about as many replicates of every scenario
    jobs = [(s, r, settings.people, settings.seed, settings.estimators, settings.drift_sd)
            for r in range(settings.replicates)
            for s in settings.scenario_names if (s, r, settings.people) not in done]
    echo(f"{len(done)} replicate(s) already done; {len(jobs)} to run with {settings.workers} worker(s)")
    if not jobs:
        return path
    t0 = time.perf_counter()
    with path.open("a") as fh:
        if settings.workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed
            # one BLAS thread per worker: set before the workers import numpy (spawned, not forked from
            # this process, whose OpenBLAS already sized its thread pool: forked workers oversubscribe the cores)
            from pcref_eval.runner.executors import die_with_parent, one_blas_thread
            one_blas_thread()
            # killing the study kills its workers (die_with_parent)
            with ProcessPoolExecutor(max_workers=settings.workers, initializer=die_with_parent,
                                     mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = [pool.submit(_job, j) for j in jobs]
                for k, f in enumerate(as_completed(futures), 1):
                    _record(fh, f.result(), k, len(jobs), t0, echo)
        else:
            for k, j in enumerate(jobs, 1):
                _record(fh, _job(j), k, len(jobs), t0, echo)
    return path


def _record(fh, result: dict, k: int, n: int, t0: float, echo) -> None:
    fh.write(json.dumps(result) + "\n")
    fh.flush()
    if k % 10 == 0 or k == n:
        echo(f"  {k}/{n} replicates ({time.perf_counter() - t0:.0f} s)")


def load_results(path: Path, people: int | None = None) -> pd.DataFrame:
    """One row per replicate x estimator: scenario, rep, estimator, log_estimate, se, log_truth."""
    rows = []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if people is not None and r["people"] != people:
            continue
        for name in ESTIMATORS:
            if name not in r:  # replicates run before the estimator was added
                continue
            e = r.get(name) or {}
            rows.append({"scenario": r["scenario"], "rep": r["rep"], "estimator": name,
                         "log_estimate": e.get("log_estimate"), "se": e.get("se"), "log_truth": r["log_truth"],
                         "error": e.get("error")})
    return pd.DataFrame(rows)
