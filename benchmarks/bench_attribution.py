"""Benchmark the attribution analyses (issue 11) at national scale: time and peak memory.

Target: a 50-site national run with the new analyses within 10 minutes and 8 GB on 2 cores.

Generate the data first (once)::

    .venv/bin/pcref-eval synth --sites 50 --people 2000000 --format parquet --out /tmp/pcref_big

Run::

    .venv/bin/python benchmarks/bench_attribution.py /tmp/pcref_big [--measures] [--sensitivity]

Prints the wall time of each phase (loading the three cohort tables of every site and building the
cohorts, as a run's site notebooks do; the calendar-time Cox model; the event study of first
detention; the naive comparison; with ``--measures`` the headline measures' event studies, which
load every table; with ``--sensitivity`` the sensitivity analyses of the cross-site notebook), the size of the Cox problem (rows, covariates), the process's peak resident
memory, and the estimates beside the generator's truth. Without a folder it generates 50 sites x
200,000 people into a temporary folder first.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from pcref_eval.attribution import attribute, measure_event_studies
from pcref_eval.attribution.calendar_cox import calendar_time_cox
from pcref_eval.attribution.design import analysis_cohort, cells, design_from_sites
from pcref_eval.attribution.event_study import event_study
from pcref_eval.attribution.naive import naive_before_after
from pcref_eval.cohort import build_cohort
from pcref_eval.config import AttributionConfig, CohortConfig, EthnicityConfig, StudyConfig
from pcref_eval.extract import load_site


def peak_gb() -> float:
    """Peak resident memory of this process (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", nargs="?", type=Path, help="synthetic data folder with truth.json")
    ap.add_argument("--measures", action="store_true", help="also the headline measures' event studies")
    ap.add_argument("--sensitivity", action="store_true",
                    help="also the sensitivity analyses (ethnicity three ways, Fine-Gray, leave-one-site-out, pooling)")
    args = ap.parse_args(argv)
    tmp = None
    folder = args.folder
    if folder is None:
        from pcref_eval.synth import generate
        tmp = tempfile.TemporaryDirectory()
        folder = Path(tmp.name)
        generate(folder, n_sites=50, people=200_000, seed=1, fmt="parquet")
    truth = json.loads((folder / "truth.json").read_text())
    study = StudyConfig()
    t_all = time.perf_counter()
    t0 = time.perf_counter()
    cohorts, go_live, extract = [], {}, []
    for sid in sorted(truth["sites"]):
        site = load_site(folder / sid, tables=["people", "referrals", "mha_episodes"])
        cohorts.append(build_cohort(site, study, CohortConfig(), EthnicityConfig())[0])
        go_live[sid] = site.info.pcref_go_live
        extract.append(site.info.extract_date)
    cohort = pd.concat(cohorts, ignore_index=True)
    del cohorts
    print(f"sites {len(go_live)}, people in cohorts {len(cohort):,}: load + cohorts {time.perf_counter() - t0:.1f} s")
    design = design_from_sites(go_live, study.start, max(extract))
    ac = analysis_cohort(cohort, "White British", study.start)
    t0 = time.perf_counter()
    cox = calendar_time_cox(ac, design)
    print(f"calendar-time Cox: {time.perf_counter() - t0:.1f} s ({cox.model.n:,} rows, {len(cox.model.covariates)} "
          f"covariates, {cox.model.iterations} iterations); peak so far {peak_gb():.2f} GB")
    t0 = time.perf_counter()
    es = event_study(cells(ac, design), design)
    print(f"event study (first detention): {time.perf_counter() - t0:.1f} s; pre-trend p = {es.pretrend_p:.3f}")
    t0 = time.perf_counter()
    naive = naive_before_after(cohort, go_live, "White British")
    print(f"naive before/after: {time.perf_counter() - t0:.1f} s")
    if args.measures:
        from pcref_eval.attribution import sites_measure_counts
        from pcref_eval.config import EvaluationConfig, SiteConfig
        from pcref_eval.measures.defaults import HEADLINE_ITS_MEASURES
        t0 = time.perf_counter()
        config = EvaluationConfig(sites=[SiteConfig(id=s, path=folder / s) for s in sorted(go_live)])
        counts = sites_measure_counts(config, sorted(go_live), HEADLINE_ITS_MEASURES)
        studies = measure_event_studies(counts, HEADLINE_ITS_MEASURES, "White British", design)
        print(f"headline measures' event studies ({len(studies)}): {time.perf_counter() - t0:.1f} s")
    if args.sensitivity:
        from pcref_eval.sensitivity.analyses import SensitivityConfig, sensitivity_rows
        t0 = time.perf_counter()
        rows = sensitivity_rows(cohort, go_live, "White British", SensitivityConfig.for_run(2024))
        print(f"sensitivity analyses ({len(rows)} rows): {time.perf_counter() - t0:.1f} s; "
              f"peak so far {peak_gb():.2f} GB")
    total = time.perf_counter() - t_all
    print(f"total {total:.1f} s (target 600 s); peak resident memory {peak_gb():.2f} GB (target 8 GB)")
    att = truth["attribution"]["att_detention_hazard"]
    drift = AttributionConfig().site_drift_sd_per_year
    for name, e in (("calendar-time Cox", cox.effect), (f"  drift SD {drift:g}", cox.effect_allowing_drift(drift)),
                    ("event study", es.effect), ("naive", naive)):
        print(f"  {name:18s} {e.estimate:.3f} ({e.lower:.3f} to {e.upper:.3f})   truth {att:.3f}")
    if tmp is not None:
        tmp.cleanup()
    return 0 if total < 600 and peak_gb() < 8 else 1


if __name__ == "__main__":
    sys.exit(main())
