"""Benchmark computing every default measure (per site x month x group, with CIs and ratios) at national scale.

Target: all default measures for 2,000,000 people (50 sites, 36+ months) in under 20 s on 2 cores.

Generate the data first (once; about 2 minutes)::

    .venv/bin/pcref-eval synth --sites 50 --people 2000000 --format parquet --out /tmp/pcref_big

Run::

    .venv/bin/python benchmarks/bench_measures.py /tmp/pcref_big [--workers 2]

Reports, per phase: wall time of loading the extracts (``load_site``, not part of the measures
library), wall time of computing all default measures for all sites (sequentially, and with
``--workers`` processes each computing its share of sites), rows of output, the tracemalloc peak of
computing the largest site's measures, and the process max RSS. Without a data folder it generates
a small national-shape dataset (50 sites, 200,000 people) into a temporary folder first.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path

from pcref_eval.config import DEFAULT_DETENTION_CODES, DEFAULT_PLACE_OF_SAFETY_CODES
from pcref_eval.extract import load_site
from pcref_eval.measures.compute import MeasureSettings, compute_measures, compute_sites
from pcref_eval.measures.defaults import default_measures

SETTINGS = MeasureSettings(
    scheme="pcref",
    code_lists={"detention_codes": DEFAULT_DETENTION_CODES, "place_of_safety_codes": DEFAULT_PLACE_OF_SAFETY_CODES},
    start=date(2021, 4, 1),
    end=date(2025, 3, 31),
)


def _site_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if (p / "site.yml").exists())


def _compute_many(sites) -> tuple[int, float, float]:
    """(output rows, wall seconds, CPU seconds) of computing every default measure for ``sites``."""
    t0, c0 = time.perf_counter(), time.process_time()
    rows = len(compute_sites(sites, default_measures(), SETTINGS))
    return rows, time.perf_counter() - t0, time.process_time() - c0


def _worker(folders: list[str]) -> tuple[int, float, float]:
    t0 = time.perf_counter()
    sites = [load_site(f) for f in folders]
    load = time.perf_counter() - t0
    rows, compute, _ = _compute_many(sites)
    return rows, load, compute


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", help="folder of site extracts (pcref-eval synth output)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)

    tmp = None
    if args.data is None:
        from pcref_eval.synth.generate import generate
        tmp = tempfile.TemporaryDirectory()
        print("no data folder given: generating 50 sites x 200,000 people (parquet) ...", flush=True)
        generate(tmp.name, n_sites=50, people=200_000, seed=1, fmt="parquet")
        root = Path(tmp.name)
    else:
        root = Path(args.data)
    folders = _site_dirs(root)
    if not folders:
        print(f"no site folders in {root}", file=sys.stderr)
        return 1

    t0 = time.perf_counter()
    sites = [load_site(f) for f in folders]
    load_s = time.perf_counter() - t0
    people = sum(len(s["people"]) for s in sites)
    print(f"sites: {len(sites)}   people: {people:,}   measures: {len(default_measures())}   cores: {os.cpu_count()}")
    print(f"load extracts (load_site, sequential):          {load_s:7.2f} s")

    _compute_many(sites[:1])  # warm-up (imports, caches)
    rows, seq_s, cpu_s = _compute_many(sites)
    print(f"compute all measures (1 process):               {seq_s:7.2f} s wall, {cpu_s:.2f} s CPU "
          f"({rows:,} output rows)")

    biggest = max(sites, key=lambda s: len(s["people"]))
    tracemalloc.start()
    compute_measures(biggest, default_measures(), SETTINGS)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del sites

    if args.workers > 1:
        chunks = [[str(f) for f in folders[i::args.workers]] for i in range(args.workers)]
        t0 = time.perf_counter()
        with ProcessPoolExecutor(args.workers) as pool:
            results = list(pool.map(_worker, chunks))
        wall = time.perf_counter() - t0
        comp = max(r[2] for r in results)
        load = max(r[1] for r in results)
        print(f"{args.workers} processes, load + compute (wall):            {wall:7.2f} s   "
              f"(slowest worker: load {load:.2f} s, compute {comp:.2f} s)")
    print(f"peak traced memory, largest site ({len(biggest['people']):,} people): {peak / 2**20:7.1f} MiB")
    print(f"process max RSS:                                {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:7.1f} MiB")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
