"""Simulation study: performance measures by construction, the command's resume and exit codes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pcref_eval.cli import main
from pcref_eval.config import AttributionConfig
from pcref_eval.simulate import ESTIMATORS, load_results, performance, scenarios
from pcref_eval.simulate.summary import Z


def test_performance_measures_by_construction():
    """Estimates at known distances from the truth: bias, empirical SE and coverage follow exactly."""
    z = np.array([-3.0, -1.0, 0.0, 1.0, 2.5, 0.5, -0.5, 1.5])
    se = np.full(len(z), 0.1)
    truth = np.log(0.7)
    res = pd.DataFrame({"scenario": "s", "rep": range(len(z)), "estimator": "calendar_cox",
                        "log_estimate": truth + z * se, "se": se, "log_truth": truth, "error": None})
    res.loc[len(res)] = ["s", 99, "calendar_cox", None, None, truth, "failed to fit"]
    p = performance(res).iloc[0]
    assert p["replicates"] == 8 and p["failed"] == 1
    assert p["bias_log"] == pytest.approx(np.mean(z) * 0.1)
    assert p["empirical_se"] == pytest.approx(np.std(z * 0.1, ddof=1))
    assert p["error_sd"] == pytest.approx(np.std(z * 0.1, ddof=1))  # the truth is the same in every replicate
    assert p["mean_model_se"] == pytest.approx(0.1)
    assert p["coverage"] == pytest.approx(np.mean(np.abs(z) <= Z))  # 6 of 8
    assert p["coverage_mcse"] == pytest.approx(np.sqrt(0.75 * 0.25 / 8))


def test_scenarios_have_the_named_features():
    sc = scenarios()
    assert list(sc) == ["no_trend", "national_trend", "shock", "heterogeneous_ramp", "differential_recording",
                        "few_sites", "all_live", "strong_drift"]
    assert sc["no_trend"].model.national_gap_strength == 0 and sc["no_trend"].model.implementation_ramp_months == 0
    assert sc["national_trend"].model.national_trend_per_year == pytest.approx(0.92)
    assert sc["heterogeneous_ramp"].model.implementation_ramp_months == 12
    few = sc["few_sites"].sites(10_000)
    assert len(few) == 3 and sum(s.people for s in few) == pytest.approx(10_000, abs=2)
    assert any(s.role == "comparison" for s in few)
    all_live = sc["all_live"].sites(10_000)  # every site live before the extract: no never-live comparison
    assert len(all_live) == 5 and all(s.pcref_go_live < sc["all_live"].model.window_end for s in all_live)
    # drift beyond the reported interval's default allowance (built to fool it)
    assert sc["strong_drift"].model.site_drift_sd_per_year == pytest.approx(2.5 * AttributionConfig().site_drift_sd_per_year)


def test_unknown_estimator_exits_2(capsys):
    assert main(["simulate", "--estimators", "calendar_cox", "nope"]) == 2
    assert "unknown estimator" in capsys.readouterr().err


def test_unknown_scenario_exits_2(capsys):
    assert main(["simulate", "--scenarios", "nope"]) == 2
    assert "unknown scenario" in capsys.readouterr().err


@pytest.mark.slow
def test_small_study_runs_resumes_and_writes_docs(tmp_path, capsys):
    """Two scenarios x 3 replicates of 12,000 people: results, resume (nothing re-run), table and figure."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "simulation-study.md").write_text("# Study\n\nintro\n\n<!-- results:start -->\nold\n<!-- results:end -->\nend\n")
    args = ["simulate", "--out", str(tmp_path / "out"), "--replicates", "3", "--people", "12000", "--workers", "1",
            "--scenarios", "no_trend", "national_trend", "--docs", str(docs)]
    code = main(args)
    assert code in (0, 1)
    lines = (tmp_path / "out" / "replicates.jsonl").read_text().splitlines()
    assert len(lines) == 6
    first = json.loads(lines[0])
    assert set(first) >= {"calendar_cox", "calendar_cox_year0", "event_study", "naive", "truth"}
    assert first["truth"] == pytest.approx(0.7)  # homogeneous effect, no ramp in these scenarios
    capsys.readouterr()
    main(args)
    assert "6 replicate(s) already done; 0 to run" in capsys.readouterr().out
    page = (docs / "simulation-study.md").read_text()
    assert page.startswith("# Study\n\nintro") and page.endswith("end\n") and "old" not in page
    assert "| no_trend | Calendar-time Cox" in page
    assert (docs / "figures" / "simulation-study.png").stat().st_size > 10_000
    perf = performance(load_results(tmp_path / "out" / "replicates.jsonl"))
    assert len(perf) == 2 * len(ESTIMATORS) and (perf["replicates"] == 3).all()  # 2 scenarios x every estimator



def _stat(pid) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first, then the parent id); None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    return [int(p.name) for p in Path("/proc").glob("[0-9]*") if (f := _stat(p.name)) and int(f[1]) == pid]


def _running(pid: int) -> bool:
    f = _stat(pid)
    return f is not None and f[0] != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers die with the study via Linux prctl only")
def test_killing_the_study_kills_its_workers(tmp_path):
    """A study killed with SIGKILL (no clean-up possible) leaves no worker running on."""
    cmd = [sys.executable, "-m", "pcref_eval.cli", "simulate", "--out", str(tmp_path), "--replicates", "50",
           "--people", "20000", "--workers", "2", "--scenarios", "no_trend"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(_children(proc.pid)) < 3 and time.time() < deadline:  # two workers and the resource tracker
        time.sleep(0.5)
    workers = _children(proc.pid)
    assert len(workers) >= 2, "the study did not start its workers"
    time.sleep(3)  # workers busy with replicates
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 30
    while any(_running(w) for w in workers) and time.time() < deadline:
        time.sleep(0.5)
    assert not [w for w in workers if _running(w)], "workers still running after the study was killed"


@pytest.mark.slow
def test_drift_sensitivity_predicts_how_far_the_generators_drift_moves_the_estimate():
    """The truth check of the site-drift allowance: each replicate is generated twice with the same random
    numbers, without site drift and with drifts d_s drawn at SD 0.05 a year; the main estimate moves by
    sum_s w_s d_s (w from the drift-free fit) to first order. 10 replicates of 60,000 people (few_sites):
    regression slope through the origin within 0.25 of 1 (0.83 when written; the first-order formula, and
    events that move between risk sets with drifts this large) and what it leaves under half of the moves' spread."""
    from dataclasses import replace

    from pcref_eval.attribution.calendar_cox import calendar_time_cox
    from pcref_eval.attribution.design import analysis_cohort
    from pcref_eval.simulate.run import replicate_site_effects, simulate_replicate

    def fit(sim):
        return calendar_time_cox(analysis_cohort(sim.cohort, "White British", sim.model.window_start), sim.design)

    rng = np.random.default_rng(5)
    moves, predicted = [], []
    for rep in range(10):
        still = [replace(e, gap_drift_per_year=0.0) for e in replicate_site_effects("few_sites", rep, 60_000, 20261201)]
        base = fit(simulate_replicate("few_sites", rep, 60_000, 20261201, effects=still))
        d = rng.normal(0.0, 0.05, len(still))
        drifting = fit(simulate_replicate("few_sites", rep, 60_000, 20261201,
                                          effects=[replace(e, gap_drift_per_year=x) for e, x in zip(still, d)]))
        moves.append(drifting.effect.log_estimate - base.effect.log_estimate)
        predicted.append(float(base.drift_sensitivity.to_numpy() @ d))
    moves, predicted = np.array(moves), np.array(predicted)
    slope = float(moves @ predicted / (predicted @ predicted))
    assert abs(slope - 1.0) < 0.25, slope
    assert np.std(moves - slope * predicted) < 0.5 * np.std(predicted)
