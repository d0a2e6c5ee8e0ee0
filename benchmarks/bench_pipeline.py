"""Benchmark the full evaluation: wall time, peak memory, notebook machinery share, cached rerun.

    python benchmarks/bench_pipeline.py                           # 100,000 people (make bench)
    python benchmarks/bench_pipeline.py --sizes 100000 500000 2000000
    python benchmarks/bench_pipeline.py --sizes 2000000 --sites 50 --synth-only

For each size it generates synthetic data once (kept under ``--data``), then runs
``pcref-eval run`` in a child process and reports:

- **wall**: the full run's wall time (``--force``: nothing reused);
- **peak memory**: the largest total resident memory of the run's whole process tree (the run,
  its workers, notebook kernels and Chromium), sampled every 0.2 s from /proc; beside it the largest
  proportional set size (PSS: a page shared by n processes counts 1/n, so forked workers are not
  counted twice), sampled every second from ``smaps_rollup``; also the largest single process
  (``getrusage`` of children);
- **machinery vs analysis**: per notebook, papermill's step time minus the time its cells ran
  (cell metadata ``papermill.duration``) is kernel start-up, parameter injection and saving; the
  report step is notebook conversion and rendering. Their sum is shown against the time spent in
  cells and contract checks (all as process-seconds, and as a share of them);
- **cached rerun**: the same run again with nothing changed, as a share of the full run.
- **the machine's state**: the whole machine's CPU time during the full run split into user, system
  (page faults, mostly) and steal (from ``/proc/stat``), and how fast this process could touch fresh
  memory just before and just after it (MB/s writing 512 MB newly allocated), and the CPU seconds of a
  fixed workload that touches no new memory (``CPU_PROBE``). On the development VM that rate ranged
  from 70 to 5,600 MB/s within one evening, and the same code's national run from 545 to 788 s; the CPU
  itself was slower at times too (one site's board and charts: 9.2 to 14.6 CPU-s within hours). Read a
  wall time beside these numbers.

Before the full run the contract suites are checked with great-expectations into the outputs
folder's record (``pcref-eval check-contracts``, untimed), as ``make setup`` does for the demo.

The runs use a snapshot of the workbench (``pcref_eval/``, ``notebooks/``, ``data_contracts/``,
``pyproject.toml``, ``requirements.lock`` copied to a temporary folder), so edits made to the checkout while the benchmark
runs neither mix versions nor invalidate the cache between the full and the cached run.

Targets (2 cores, 24 GB): 2,000,000 people in <= 10 min with peak memory < 8 GB, time roughly
linear in people; cached rerun < 5 % of a full run; notebook machinery < 30 % of the demo's time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def tree_rss(pid: int) -> int:
    """Total resident bytes of ``pid`` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
            statm = (d / "statm").read_text().split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(stat[1]), []).append(int(d.name))
        rss[int(d.name)] = int(statm[1]) * page
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                children.setdefault(int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]), []).append(int(d.name))
            except (OSError, IndexError):
                continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_pss(pid: int) -> int:
    """Total proportional set size (bytes) of ``pid`` and its descendants, from /proc/<pid>/smaps_rollup."""
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                total += next((int(line.split()[1]) * 1024 for line in fh if line.startswith("Pss:")), 0)
        except OSError:
            continue
    return total


def cpu_ticks() -> dict[str, int]:
    """The machine's cumulative CPU ticks by kind (user, nice, system, idle, iowait, steal), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    return {n: int(v) for n, v in zip(names, fields)}


def cpu_shares(before: dict[str, int], after: dict[str, int]) -> dict[str, float]:
    """Shares of the machine's CPU time between two :func:`cpu_ticks` readings."""
    d = {k: after[k] - before[k] for k in before}
    total = max(sum(d.values()), 1)
    return {"user": (d["user"] + d["nice"]) / total, "system": (d["system"] + d["irq"] + d["softirq"]) / total,
            "idle": (d["idle"] + d["iowait"]) / total, "steal": d["steal"] / total}


def fresh_memory_rate(mb: int = 512) -> float:
    """MB/s at which a new process writes ``mb`` MB of newly allocated memory (first touch of fresh pages)."""
    code = ("import numpy as np, time; t = time.perf_counter(); a = np.ones(%d * 131072); "
            "print(time.perf_counter() - t)" % mb)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return mb / max(float(out.stdout.strip()), 1e-9)


#: A fixed single-thread workload that touches no new memory (a Python loop, then sorting an array that fits
#: in cache): its CPU seconds measure how fast the machine's CPU is, apart from its memory.
CPU_PROBE = ("import time, numpy as np\n"
             "a = np.random.default_rng(0).random(100_000); b = np.empty_like(a)\n"
             "t = time.process_time(); s = 0\n"
             "for i in range(8_000_000):\n    s += i * i\n"
             "for _ in range(400):\n    b[:] = a; b.sort()\n"
             "print(time.process_time() - t)")


def cpu_probe_seconds() -> float:
    """CPU seconds of :data:`CPU_PROBE` in a new process (lower is faster)."""
    out = subprocess.run([sys.executable, "-c", CPU_PROBE], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def run_monitored(cmd: list[str], env: dict, cwd=None) -> tuple[float, int, int, int]:
    """Run ``cmd``; return (wall seconds, peak tree RSS bytes, exit code, peak tree PSS bytes)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = peak_pss = 0
    stop = threading.Event()

    def sample():
        nonlocal peak, peak_pss
        k = 0
        while not stop.is_set():
            peak = max(peak, tree_rss(proc.pid))
            if k % 5 == 0:  # PSS walks every mapping: once a second
                peak_pss = max(peak_pss, tree_pss(proc.pid))
            k += 1
            stop.wait(0.2)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    code = proc.wait()
    stop.set()
    t.join()
    return time.perf_counter() - t0, peak, code, peak_pss


def notebook_times(run_dir: Path, manifest: dict) -> dict:
    """Seconds in cells vs papermill overhead, from the executed notebooks and the manifest."""
    cells, steps = 0.0, 0.0
    for nb_path in sorted((run_dir / "restricted" / "notebooks").glob("*.ipynb")):
        nb = json.loads(nb_path.read_text())
        cells += sum((c.get("metadata", {}).get("papermill", {}).get("duration") or 0.0) for c in nb["cells"])
    for site, st in manifest.get("sites", {}).items():
        steps += st.get("notebook", {}).get("seconds", 0.0)
    steps += manifest.get("steps", {}).get("cross_site", {}).get("seconds", 0.0)
    contracts = sum(st.get("contracts", {}).get("seconds", 0.0) for st in manifest.get("sites", {}).values())
    report = manifest.get("steps", {}).get("report", {}).get("seconds", 0.0)
    check = manifest.get("steps", {}).get("release_check", {}).get("seconds", 0.0)
    return {"cells": cells, "notebook_steps": steps, "kernel_overhead": max(steps - cells, 0.0),
            "contracts": contracts, "report": report, "release_check": check}


def ensure_data(folder: Path, people: int, sites: int, seed: int, fmt: str) -> float:
    truth = folder / "truth.json"
    if truth.exists():
        t = json.loads(truth.read_text())
        if (t.get("people"), t.get("n_sites"), t.get("seed"), t.get("format")) == (people, sites, seed, fmt):
            return 0.0
    from pcref_eval.synth import generate
    t0 = time.perf_counter()
    generate(folder, n_sites=sites, people=people, seed=seed, fmt=fmt)
    return time.perf_counter() - t0


def snapshot(dest: Path) -> Path:
    """Copy the workbench's code, notebooks and lock file to ``dest`` (see the module docstring)."""
    import shutil
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "pcref_eval", dest / "pcref_eval", ignore=ignore)
    for folder in ("notebooks", "data_contracts"):
        if (REPO / folder).is_dir():
            shutil.copytree(REPO / folder, dest / folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    for name in ("pyproject.toml", "requirements.lock"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, dest / name)
    return dest


def bench_size(people: int, args, env: dict) -> dict:
    from pcref_eval.config import write_config
    from pcref_eval.demo import demo_config
    data = args.data / f"bench-{args.sites}s-{people}p-{args.format}"
    synth = ensure_data(data, people, args.sites, args.seed, args.format)
    if synth:
        print(f"  generated {people:,} people in {args.sites} sites ({args.format}) in {synth:.1f} s", flush=True)
    if args.synth_only:
        return {"people": people, "synth_seconds": synth}
    outputs = args.outputs / f"{people}"
    config = demo_config(data, outputs, seed=args.seed, formats=args.formats)
    cfg = outputs / "config.yml"
    outputs.mkdir(parents=True, exist_ok=True)
    write_config(config, cfg)
    # as `make setup` does: check the contract suites with great-expectations once (not timed)
    subprocess.run([sys.executable, "-m", "pcref_eval.cli", "check-contracts", "--outputs", str(outputs)], env=env,
                   cwd=env.get("PCREF_BENCH_CWD"), check=True, stdout=subprocess.DEVNULL)
    base = [sys.executable, "-m", "pcref_eval.cli", "run", "--config", str(cfg), "--executor", args.executor]
    if args.workers:
        base += ["--workers", str(args.workers)]
    probe_before, touch_before, ticks = cpu_probe_seconds(), fresh_memory_rate(), cpu_ticks()
    wall, peak, code, peak_pss = run_monitored(base + ["--force"], env, cwd=env.get("PCREF_BENCH_CWD"))
    cpu, touch_after, probe_after = cpu_shares(ticks, cpu_ticks()), fresh_memory_rate(), cpu_probe_seconds()
    run_dir = max((p for p in (outputs / "runs").iterdir() if not p.name.startswith(".")), key=lambda p: p.name)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    t = notebook_times(run_dir, manifest)
    cached_wall, cached_peak, cached_code, _ = run_monitored(base, env, cwd=env.get("PCREF_BENCH_CWD"))
    machinery = t["kernel_overhead"] + t["report"]
    analysis = t["cells"] + t["contracts"]
    return {"people": people, "sites": args.sites, "status": manifest.get("status"), "exit": code,
            "wall": wall, "peak_tree_gb": peak / 1e9, "peak_tree_pss_gb": peak_pss / 1e9, "machinery": machinery, "analysis": analysis,
            "machinery_share": machinery / max(machinery + analysis, 1e-9), **t,
            "cached_wall": cached_wall, "cached_exit": cached_code, "cached_share": cached_wall / wall,
            "cpu": cpu, "touch_before": touch_before, "touch_after": touch_after,
            "probe_before": probe_before, "probe_after": probe_after}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000], help="people (over all sites) per run")
    p.add_argument("--sites", type=int, default=4)
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--format", choices=["csv", "parquet"], default="parquet")
    p.add_argument("--formats", nargs="+", default=["html"], help="report formats (html, pdf, docx)")
    p.add_argument("--executor", default="process", choices=["serial", "process", "dask"])
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--data", type=Path, default=REPO / "data")
    p.add_argument("--outputs", type=Path, default=REPO / "outputs" / "bench")
    p.add_argument("--synth-only", action="store_true", help="only time the data generation")
    p.add_argument("--no-snapshot", action="store_true", help="run the checkout itself, not a snapshot of it")
    args = p.parse_args(argv)
    import tempfile
    code_root = REPO if args.no_snapshot else snapshot(Path(tempfile.mkdtemp(prefix="pcref-bench-")))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(code_root), *[x for x in env.get("PYTHONPATH", "").split(os.pathsep) if x]])
    env["PCREF_BENCH_CWD"] = str(code_root)
    print(f"bench_pipeline: {os.cpu_count()} cores, executor {args.executor}, {args.sites} sites, {args.format}",
          flush=True)
    rows = []
    for people in args.sizes:
        print(f"== {people:,} people", flush=True)
        r = bench_size(people, args, env)
        rows.append(r)
        if args.synth_only:
            continue
        print(f"  full run: {r['wall']:.1f} s wall, status {r['status']} (exit {r['exit']}), "
              f"peak memory {r['peak_tree_gb']:.2f} GB (process tree; PSS {r['peak_tree_pss_gb']:.2f} GB)", flush=True)
        print(f"  notebook machinery {r['machinery']:.1f} s (kernel start/papermill {r['kernel_overhead']:.1f} s + "
              f"report {r['report']:.1f} s) vs analysis {r['analysis']:.1f} s (cells {r['cells']:.1f} s + "
              f"contracts {r['contracts']:.1f} s): machinery {100 * r['machinery_share']:.0f}% of process time",
              flush=True)
        c = r["cpu"]
        print(f"  machine during the full run: user {100 * c['user']:.0f}%, system {100 * c['system']:.0f}%, "
              f"idle {100 * c['idle']:.0f}%, steal {100 * c['steal']:.0f}% of CPU time; fresh memory written at "
              f"{r['touch_before']:,.0f} MB/s before and {r['touch_after']:,.0f} MB/s after; CPU probe "
              f"{r['probe_before']:.2f} s before and {r['probe_after']:.2f} s after (lower is faster)", flush=True)
        print(f"  cached rerun: {r['cached_wall']:.1f} s = {100 * r['cached_share']:.1f}% of the full run "
              f"(exit {r['cached_exit']})", flush=True)
    single = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6
    print(f"largest single process: {single:.2f} GB", flush=True)
    if len(rows) > 1 and not args.synth_only:
        a, b = rows[0], rows[-1]
        print(f"scaling: {b['people'] / a['people']:.0f}x people -> {b['wall'] / a['wall']:.1f}x wall time", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
