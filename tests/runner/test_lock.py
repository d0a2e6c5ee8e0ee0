"""One run at a time per outputs folder; the lock dies with its holder."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pcref_eval import cli
from pcref_eval.config import write_config
from pcref_eval.runner.lock import RunLock, RunLocked, is_locked, read_holder, remove_stale_staging

from .conftest import make_config, subprocess_env


def test_second_run_exits_3_naming_the_holder(data, tmp_path, capsys):
    config = make_config(data, tmp_path / "out")
    cfg = tmp_path / "config.yml"
    write_config(config, cfg)
    runs = tmp_path / "out" / "runs"
    with RunLock(runs, "20990101T000000-holder"):
        assert read_holder(runs)["run_id"] == "20990101T000000-holder"
        assert cli.main(["run", "--config", str(cfg), "--executor", "serial"]) == 3
    err = capsys.readouterr().err
    assert "another run holds the lock" in err and "20990101T000000-holder" in err and "pid" in err
    assert not any(p.name.startswith(".staging-") for p in runs.iterdir())
    assert not is_locked(runs)


def test_lock_is_released_when_its_holder_is_killed(tmp_path):
    runs = tmp_path / "runs"
    code = ("import sys, time\nfrom pcref_eval.runner.lock import RunLock\n"
            "lock = RunLock(sys.argv[1], 'killed-run').acquire()\nprint('held', flush=True)\ntime.sleep(120)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(runs)], stdout=subprocess.PIPE,
                              env=subprocess_env())
    try:
        assert holder.stdout.readline().strip() == b"held"
        assert is_locked(runs)
        with pytest.raises(RunLocked, match="killed-run"):
            RunLock(runs).acquire()
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert not is_locked(runs)
    lock = RunLock(runs, "next").acquire()
    assert lock.held
    lock.release()


def test_stale_staging_folders_are_removed(tmp_path):
    runs = tmp_path / "runs"
    (runs / ".staging-20200101T000000-dead" / "restricted").mkdir(parents=True)
    (runs / ".staging-20200101T000000-dead" / "restricted" / "x.csv").write_text("1\n")
    (runs / "20200101T000000-kept").mkdir()
    with RunLock(runs):
        removed = remove_stale_staging(runs)
    assert removed == [".staging-20200101T000000-dead"]
    assert sorted(p.name for p in runs.iterdir() if not p.name.startswith(".lock")) == ["20200101T000000-kept"]
