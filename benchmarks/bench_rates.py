"""Benchmark rates, proportions, DSRs and XmR on a realistic multi-site volume.

50 sites x 36 months x 5 ethnic groups x 19 age bands x 2 sexes = 342,000 strata rows;
XmR over 50 sites x 5 groups = 250 monthly series of 36 points.

Run: .venv/bin/python benchmarks/bench_rates.py
Times are the best of ``--repeat`` runs; peak memory is the tracemalloc peak of one extra run of
each step (Python allocations, including numpy/pandas buffers), plus the process max RSS.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np
import pandas as pd

from pcref_eval import rates, spc

N_SITES, N_MONTHS, GROUPS, SEXES = 50, 36, ["Black", "White", "Asian", "Mixed", "Other"], ["M", "F"]


def make_strata(seed: int = 1) -> pd.DataFrame:
    """Synthetic site x month x group x sex x age-band counts and populations."""
    rng = np.random.default_rng(seed)
    bands = rates.esp2013().index.to_list()
    idx = pd.MultiIndex.from_product(
        [[f"S{i:02d}" for i in range(N_SITES)], pd.date_range("2022-01-01", periods=N_MONTHS, freq="MS"),
         GROUPS, SEXES, bands],
        names=["site", "month", "group", "sex", "ageband"],
    )
    df = idx.to_frame(index=False)
    df["pop"] = rng.integers(200, 20000, len(df)).astype(float)
    df["count"] = rng.poisson(df["pop"] * 2e-4).astype(float)
    return df


def make_series(seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.MultiIndex.from_product(
        [[f"S{i:02d}" for i in range(N_SITES)], GROUPS, pd.date_range("2022-01-01", periods=N_MONTHS, freq="MS")],
        names=["site", "group", "month"],
    )
    df = idx.to_frame(index=False)
    df["rate"] = rng.normal(100, 10, len(df))
    return df


def timed(fn, repeat: int) -> tuple[float, float]:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return best, peak / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    strata = make_strata()
    series = make_series()
    keys = ["site", "month", "group"]
    steps = {
        "rate (row-wise, exact/Byar's)": lambda: rates.rate(strata["count"], strata["pop"]),
        "rate (grouped: site x month x group)": lambda: rates.rate("count", "pop", data=strata, group_cols=keys),
        "proportion (row-wise, Wilson)": lambda: rates.proportion(strata["count"], strata["pop"]),
        "dsr (Dobson, ESP2013 by age band, 9,000 groups)": lambda: rates.dsr(
            strata, "count", "pop", group_cols=keys, age_col="ageband"),
        "dsr (normal approximation)": lambda: rates.dsr(
            strata, "count", "pop", group_cols=keys, age_col="ageband", ci_method="normal"),
        "xmr (250 series x 36 months)": lambda: spc.xmr_by(series, "rate", "month", ["site", "group"]),
    }
    print(f"strata rows: {len(strata):,}; XmR series: {series.groupby(['site', 'group']).ngroups}")
    print(f"{'step':50s} {'best s':>9s} {'peak MiB':>9s}")
    for name, fn in steps.items():
        best, peak = timed(fn, args.repeat)
        print(f"{name:50s} {best:9.3f} {peak:9.1f}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process max RSS: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
