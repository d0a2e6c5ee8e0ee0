"""One run at a time per outputs folder: an OS file lock on ``outputs/runs/.lock``.

The lock is an ``flock`` taken through :mod:`filelock`; the operating system drops it when the
holding process ends, however it ends (``SIGKILL`` included), so a crashed run never blocks the
next one. Who holds it (pid, host, start time, run id) is written to the sidecar
``outputs/runs/.lock.json`` so a refused run can say who is in the way.

A second run that finds the lock held fails at once with :class:`RunLocked` (exit code 3 on the
command line); it never waits, so a scheduler firing while a long run is still going simply skips.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Callable

from filelock import FileLock, Timeout

from pcref_eval.runner.manifest import utc_now

LOCK_NAME = ".lock"
INFO_NAME = ".lock.json"


class RunLocked(RuntimeError):
    """Another run holds the lock on these outputs; ``holder`` is what it recorded about itself."""

    def __init__(self, runs_dir: Path, holder: dict):
        self.runs_dir, self.holder = runs_dir, holder
        who = ", ".join(f"{k} {holder[k]}" for k in ("run_id", "pid", "host", "started") if holder.get(k))
        super().__init__(f"another run holds the lock on {runs_dir} ({who or 'holder unknown'}); "
                         "not starting (exit code 3)")


class RunLock:
    """Non-blocking exclusive lock on a runs folder; use as a context manager."""

    def __init__(self, runs_dir: Path, run_id: str | None = None):
        self.runs_dir = Path(runs_dir)
        self.run_id = run_id
        self.path = self.runs_dir / LOCK_NAME
        self.info_path = self.runs_dir / INFO_NAME
        # thread_local=False: the lock belongs to the run, not to the thread that took it.
        self._lock = FileLock(str(self.path), thread_local=False, preserve_lock_file=True)

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def acquire(self) -> "RunLock":
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(blocking=False)
        except Timeout:
            raise RunLocked(self.runs_dir, read_holder(self.runs_dir)) from None
        self._started = utc_now()
        self._write_info()
        return self

    def set_run_id(self, run_id: str) -> None:
        """Record the holder's run id (known only once the lock is held)."""
        self.run_id = run_id
        if self.held:
            self._write_info()

    def _write_info(self) -> None:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": self._started, "run_id": self.run_id}
        tmp = self.runs_dir / f"{INFO_NAME}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(info) + "\n")
        tmp.replace(self.info_path)

    def release(self) -> None:
        if self._lock.is_locked:
            try:
                self.info_path.unlink(missing_ok=True)
            finally:
                self._lock.release()

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def read_holder(runs_dir: Path) -> dict:
    """What the current holder wrote about itself (empty if unknown)."""
    try:
        return json.loads((Path(runs_dir) / INFO_NAME).read_text())
    except (OSError, ValueError):
        return {}


def is_locked(runs_dir: Path) -> bool:
    """True if some process holds the lock on ``runs_dir`` now (probes without keeping it)."""
    probe = RunLock(runs_dir)
    try:
        probe.acquire()
    except RunLocked:
        return True
    probe._lock.release()
    return False


def remove_stale_staging(runs_dir: Path, keep: str | None = None, log: Callable[[str], None] | None = None) -> list[str]:
    """Delete ``.staging-*`` folders left by interrupted runs. Call only while holding the lock.

    With the lock held no other run can be writing a staging folder, so every one found belongs to a
    run that died (killed, power cut). Each is renamed to ``.trash-*`` first so a half-finished delete
    never looks like a staging folder again.
    """
    removed = []
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return removed
    for p in sorted(runs_dir.iterdir()):
        if not p.is_dir() or p.name == keep:
            continue
        if p.name.startswith(".staging-"):
            trash = runs_dir / f".trash-{p.name[len('.staging-'):]}-{int(time.time())}"
            try:
                p.rename(trash)
            except OSError:
                continue
            removed.append(p.name)
            if log:
                log(f"removed {p.name}: left by an interrupted run")
            shutil.rmtree(trash, ignore_errors=True)
        elif p.name.startswith(".trash-"):
            shutil.rmtree(p, ignore_errors=True)
    return removed
