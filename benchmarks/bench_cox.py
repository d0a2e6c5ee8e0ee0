"""Benchmark pcref_eval.survival at national scale, and a coverage simulation for gap_change.

Default run (about a minute): a stratified Cox fit on 1,000,000 rows x 4 covariates, 4 strata,
integer-day times (heavy ties), timed for pcref_eval.survival.cox and statsmodels PHReg (same
run, Efron ties), with the ratio and max |coef difference|; plus kaplan_meier and logrank at
1,000,000 rows.

    .venv/bin/python benchmarks/bench_cox.py                 # cox vs statsmodels, KM, log-rank
    .venv/bin/python benchmarks/bench_cox.py --lifelines     # also lifelines CoxPHFitter (~30 s+)
    .venv/bin/python benchmarks/bench_cox.py --coverage      # + 200-replicate coverage simulation
    .venv/bin/python benchmarks/bench_cox.py --coverage-only --replicates 500 --n 30000

Wall times are perf_counter seconds; CPU seconds (process_time) are shown too, because on a
shared machine wall time includes waiting for other processes.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import pandas as pd

from pcref_eval.survival import cox, gap_change, kaplan_meier, logrank, simulate_gap_cohort

COVARIATES = ["x1", "x2", "x3", "x4"]
TRUE_BETA = np.array([0.3, -0.2, 0.5, 0.2])


def make_data(n: int = 1_000_000, seed: int = 2024) -> pd.DataFrame:
    """n rows, 2 continuous + 2 binary covariates, 4 strata, exponential times rounded up to days."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    X[:, 2] = rng.integers(0, 2, n)
    X[:, 3] = rng.integers(0, 2, n)
    strata = rng.integers(0, 4, n)
    rate = np.array([1 / 900, 1 / 700, 1 / 1200, 1 / 1000])[strata] * np.exp(X @ TRUE_BETA)
    t = rng.exponential(1 / rate)
    c = rng.uniform(0, 1500, n)
    df = pd.DataFrame(X, columns=COVARIATES)
    df["time"] = np.ceil(np.minimum(t, c))
    df["event"] = (t <= c).astype(np.int64)
    df["stratum"] = strata
    df["group"] = rng.choice(["A", "B", "C"], n)
    return df


def timed(fn, *args, **kwargs):
    """(result, wall seconds, CPU seconds) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - w0, time.process_time() - c0


def run_cox_benchmark(n: int, with_lifelines: bool, with_statsmodels: bool) -> None:
    df = make_data(n)
    n_events = int(df["event"].sum())
    print(f"data: {n:,} rows x {len(COVARIATES)} covariates, 4 strata, {df['time'].nunique():,} distinct "
          f"integer days, {n_events:,} events ({n_events / n:.0%}); {os.cpu_count()} CPUs visible")
    res, wall, cpu = timed(cox, df, "time", "event", COVARIATES, strata="stratum", ties="efron")
    print(f"pcref_eval cox (Efron, strata):      {wall:7.2f} s wall  {cpu:7.2f} s CPU  "
          f"({res.iterations} Newton iterations)")
    mine = res.coef.to_numpy()
    if with_statsmodels:
        from statsmodels.duration.hazard_regression import PHReg

        sm, sm_wall, sm_cpu = timed(
            lambda: PHReg(df["time"].to_numpy(), df[COVARIATES].to_numpy(), status=df["event"].to_numpy(),
                          strata=df["stratum"].to_numpy(), ties="efron").fit()
        )
        print(f"statsmodels PHReg (Efron, strata):   {sm_wall:7.2f} s wall  {sm_cpu:7.2f} s CPU  "
              f"ratio {sm_wall / wall:5.1f}x")
        print(f"  max |coef - statsmodels| = {np.max(np.abs(mine - sm.params)):.2e}, "
              f"max |se - statsmodels| = {np.max(np.abs(res.table['se'].to_numpy() - sm.bse)):.2e}")
    if with_lifelines:
        from lifelines import CoxPHFitter

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cph, ll_wall, ll_cpu = timed(
                lambda: CoxPHFitter().fit(df[COVARIATES + ["time", "event", "stratum"]], "time", "event",
                                          strata=["stratum"])
            )
        print(f"lifelines CoxPHFitter (strata):      {ll_wall:7.2f} s wall  {ll_cpu:7.2f} s CPU  "
              f"ratio {ll_wall / wall:5.1f}x")
        print(f"  max |coef - lifelines| = {np.max(np.abs(mine - cph.params_.to_numpy())):.2e}")
    print(f"  coefficients: {np.round(mine, 4).tolist()} (simulated truth {TRUE_BETA.tolist()})")
    km, km_wall, km_cpu = timed(kaplan_meier, df, "time", "event", "group")
    print(f"kaplan_meier, 3 groups:              {km_wall:7.2f} s wall  {km_cpu:7.2f} s CPU  ({len(km):,} rows out)")
    lr, lr_wall, lr_cpu = timed(logrank, df, "time", "event", "group", strata_col="stratum")
    print(f"logrank, 3 groups, 4 strata:         {lr_wall:7.2f} s wall  {lr_cpu:7.2f} s CPU  (chi2 {lr.statistic:.3f})")


def coverage_simulation(replicates: int = 200, n: int = 20_000, hr_pre: float = 3.5, ratio: float = 0.7,
                        seed: int = 1) -> pd.DataFrame:
    """Coverage of 95% CIs and bias of the log hazard ratios from gap_change over simulated cohorts."""
    truth = {"hr_pre": np.log(hr_pre), "hr_post": np.log(hr_pre * ratio), "ratio_post_pre": np.log(ratio)}
    rows = []
    for r in range(replicates):
        cohort = simulate_gap_cohort(n, hr_black_pre=hr_pre, ratio=ratio, seed=seed + r)
        black = gap_change(cohort).for_group("Black")
        for _, row in black.iterrows():
            rows.append({"replicate": r, "quantity": row["quantity"], "log_estimate": row["log_estimate"],
                         "se": row["se"], "covered": row["lower"] <= np.exp(truth[row["quantity"]]) <= row["upper"]})
    sims = pd.DataFrame(rows)
    summary = sims.groupby("quantity", sort=False).agg(
        coverage=("covered", "mean"),
        mean_log_estimate=("log_estimate", "mean"),
        empirical_sd=("log_estimate", "std"),
        mean_se=("se", "mean"),
    )
    summary["true_log"] = [truth[q] for q in summary.index]
    summary["bias"] = summary["mean_log_estimate"] - summary["true_log"]
    summary["mc_se_coverage"] = np.sqrt(summary["coverage"] * (1 - summary["coverage"]) / replicates)
    return summary[["true_log", "mean_log_estimate", "bias", "empirical_sd", "mean_se", "coverage", "mc_se_coverage"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--lifelines", action="store_true", help="also time lifelines CoxPHFitter (slow)")
    parser.add_argument("--no-statsmodels", action="store_true", help="skip statsmodels PHReg")
    parser.add_argument("--coverage", action="store_true", help="also run the gap_change coverage simulation")
    parser.add_argument("--coverage-only", action="store_true", help="run only the coverage simulation")
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--n", type=int, default=20_000, help="cohort size per coverage replicate")
    args = parser.parse_args()
    if not args.coverage_only:
        run_cox_benchmark(args.rows, args.lifelines, not args.no_statsmodels)
    if args.coverage or args.coverage_only:
        print(f"\ncoverage simulation: {args.replicates} cohorts of {args.n:,}, HR(Black, pre) 3.5, ratio 0.7")
        summary, wall, _ = timed(coverage_simulation, args.replicates, args.n)
        print(summary.to_string(float_format=lambda v: f"{v:.4f}"))
        print(f"({wall:.0f} s)")


if __name__ == "__main__":
    main()
