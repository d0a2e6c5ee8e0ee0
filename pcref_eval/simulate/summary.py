"""Operating characteristics of each estimator per scenario, and the study's table and figure.

On the log scale, per scenario x estimator over R replicates with estimates b_r, model SEs s_r and
true average effects on the treated t_r (each replicate's own truth):

- bias = mean(b_r - t_r), with Monte-Carlo SE sd(b_r - t_r) / sqrt(R);
- empirical SE = sd(b_r); SD of the error = sd(b_r - t_r), the comparator of the model SE when the truth
  differs between replicates (effects that differ by site); mean model SE = mean(s_r);
- coverage = share of replicates whose 95% Wald interval b_r +/- 1.96 s_r contains t_r, with
  Monte-Carlo SE sqrt(c (1 - c) / R).

Replicates where an estimator could not be fitted are counted (``failed``) and left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pcref_eval.simulate.run import ESTIMATORS

Z = 1.959963984540054


def performance(results: pd.DataFrame) -> pd.DataFrame:
    """Bias, empirical SE, mean model SE and coverage (with Monte-Carlo SEs) per scenario x estimator."""
    rows = []
    for (scenario, est), part in results.groupby(["scenario", "estimator"], sort=False):
        ok = part.dropna(subset=["log_estimate", "se"])
        ok = ok[np.isfinite(ok["log_estimate"].astype(float)) & np.isfinite(ok["se"].astype(float))]
        b, s, t = (ok[c].to_numpy(float) for c in ("log_estimate", "se", "log_truth"))
        r = len(b)
        cover = np.abs(b - t) <= Z * s
        c = float(cover.mean()) if r else np.nan
        rows.append({
            "scenario": scenario, "estimator": est, "replicates": r, "failed": int(len(part) - r),
            "mean_truth": float(np.exp(t.mean())) if r else np.nan,
            "mean_estimate": float(np.exp(b.mean())) if r else np.nan,
            "bias_log": float((b - t).mean()) if r else np.nan,
            "bias_mcse": float((b - t).std(ddof=1) / np.sqrt(r)) if r > 1 else np.nan,
            "empirical_se": float(b.std(ddof=1)) if r > 1 else np.nan,
            "error_sd": float((b - t).std(ddof=1)) if r > 1 else np.nan,
            "mean_model_se": float(s.mean()) if r else np.nan,
            "coverage": c,
            "coverage_mcse": float(np.sqrt(c * (1 - c) / r)) if r else np.nan,
        })
    return pd.DataFrame(rows)


def paired_difference(results: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Estimator ``a`` minus ``b`` on the same replicates (log scale): mean with Monte-Carlo SE, SD, per scenario."""
    wide = results.pivot_table(index=["scenario", "rep"], columns="estimator", values="log_estimate", aggfunc="first")
    if a not in wide or b not in wide:
        return pd.DataFrame(columns=["scenario", "replicates", "mean_difference", "mcse", "sd"])
    d = (wide[a] - wide[b]).dropna()
    g = d.groupby(level="scenario", sort=False)
    out = pd.DataFrame({"replicates": g.size(), "mean_difference": g.mean(), "sd": g.std(ddof=1)})
    out["mcse"] = out["sd"] / np.sqrt(out["replicates"])
    order = list(dict.fromkeys(results["scenario"]))
    return out.reindex([o for o in order if o in out.index]).rename_axis("scenario").reset_index()


def paired_markdown(diff: pd.DataFrame, a: str, b: str) -> str:
    """The paired differences as Markdown."""
    head = f"| scenario | R | {a} minus {b} (log) ± MCSE | SD |\n|---|---|---|---|\n"
    return head + "\n".join(f"| {r['scenario']} | {r['replicates']} | {r['mean_difference']:+.4f} ± {r['mcse']:.4f} | "
                             f"{r['sd']:.3f} |" for _, r in diff.iterrows()) + "\n"


def markdown_table(perf: pd.DataFrame) -> str:
    """The performance table as Markdown (bias on the log scale, coverage in %)."""
    head = ("| scenario | estimator | R | mean truth | mean estimate | bias (log) ± MCSE | empirical SE | "
            "SD of error | mean model SE | coverage % ± MCSE |\n|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for _, r in perf.iterrows():
        failed = f" ({r['failed']} failed)" if r["failed"] else ""
        lines.append(
            f"| {r['scenario']} | {ESTIMATORS.get(r['estimator'], r['estimator'])} | {r['replicates']}{failed} | "
            f"{r['mean_truth']:.3f} | {r['mean_estimate']:.3f} | {r['bias_log']:+.3f} ± {r['bias_mcse']:.3f} | "
            f"{r['empirical_se']:.3f} | {r['error_sd']:.3f} | {r['mean_model_se']:.3f} | {100 * r['coverage']:.0f} ± "
            f"{100 * r['coverage_mcse']:.0f} |")
    return head + "\n".join(lines) + "\n"


def figure(perf: pd.DataFrame, path: Path) -> Path:
    """Bias (± 2 MCSE) and coverage (± 2 MCSE) per scenario and estimator, side by side (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scen = list(dict.fromkeys(perf["scenario"]))
    ests = list(dict.fromkeys(perf["estimator"]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.55 * len(scen) + 2.2), sharey=True)
    colours = {"calendar_cox": "#005EB8", "calendar_cox_year0": "#41B6E6", "event_study": "#009639",
               "naive": "#DA291C", "calendar_cox_drift": "#330072", "calendar_cox_site_trends": "#ED8B00",
               "calendar_cox_site_robust": "#768692"}
    for j, est in enumerate(ests):
        part = perf[perf["estimator"] == est].set_index("scenario").reindex(scen)
        y = np.arange(len(scen)) + (j - (len(ests) - 1) / 2) * 0.8 / len(ests)
        kw = dict(fmt="o", color=colours.get(est, "grey"), capsize=2, label=ESTIMATORS.get(est, est))
        axes[0].errorbar(part["bias_log"], y, xerr=2 * part["bias_mcse"], **kw)
        axes[1].errorbar(100 * part["coverage"], y, xerr=200 * part["coverage_mcse"], **kw)
    axes[0].axvline(0, color="black", lw=0.8)
    axes[0].set_xlabel("Bias in the log effect (estimate - truth), ± 2 Monte-Carlo SE")
    axes[1].axvspan(93, 97, color="#cccccc", alpha=0.5, lw=0)
    axes[1].axvline(95, color="black", lw=0.8)
    axes[1].set_xlabel("Coverage of the 95% interval (%), ± 2 Monte-Carlo SE")
    axes[0].set_yticks(np.arange(len(scen)), scen)
    axes[0].invert_yaxis()
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path
