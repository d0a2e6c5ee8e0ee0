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
    assert p["mean_model_se"] == pytest.approx(0.1)
    assert p["coverage"] == pytest.approx(np.mean(np.abs(z) <= Z))  # 6 of 8
    assert p["coverage_mcse"] == pytest.approx(np.sqrt(0.75 * 0.25 / 8))


def test_scenarios_have_the_named_features():
    sc = scenarios()
    assert list(sc) == ["no_trend", "national_trend", "shock", "heterogeneous_ramp", "differential_recording",
                        "few_sites", "all_live"]
    assert sc["no_trend"].model.national_gap_strength == 0 and sc["no_trend"].model.implementation_ramp_months == 0
    assert sc["national_trend"].model.national_trend_per_year == pytest.approx(0.92)
    assert sc["heterogeneous_ramp"].model.implementation_ramp_months == 12
    few = sc["few_sites"].sites(10_000)
    assert len(few) == 3 and sum(s.people for s in few) == pytest.approx(10_000, abs=2)
    assert any(s.role == "comparison" for s in few)
    all_live = sc["all_live"].sites(10_000)  # every site live before the extract: no never-live comparison
    assert len(all_live) == 5 and all(s.pcref_go_live < sc["all_live"].model.window_end for s in all_live)


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
