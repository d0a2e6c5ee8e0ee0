"""Count released and suppressed cells of a run's release and attack it (before/after comparisons).

    .venv/bin/python benchmarks/disclosure_release.py RUN_DIR [RUN_DIR ...]

Per run: indexed tables, released count cells (counts and denominators declared in the index; for an
old index, ``count_cols``), cells redacted by primary suppression (true value, or its rounded value,
in 1..threshold, from restricted/tables) and by secondary suppression (the rest), derived values that
do not match a recomputation from the released counts (formulas from the run's own index, or, for an
index without formulas, from ``--formulas OTHER_RUN``), and the cells an independent attacker
(tests/disclosure/attacker.py, exact integer programming over every relation) recovers exactly.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pcref_eval.disclosure import REDACTED, DisclosurePolicy  # noqa: E402
from pcref_eval.release_attack import derived_violations, load_release, release_relations  # noqa: E402
from pcref_eval.release_check import analysed_sites  # noqa: E402
from tests.disclosure.attacker import recover  # noqa: E402


def stats(run: Path, formulas_from: Path | None = None) -> dict:
    release = run / "release"
    if (run / "restricted" / "release-blocked").is_dir() and not (release / "index").is_dir():
        release = run / "restricted" / "release-blocked"
    policy = DisclosurePolicy.opensafely()
    t0 = time.perf_counter()
    tables = load_release(release, ("table", "km_table"))
    if formulas_from is not None:  # judge an old release by the formulas the new code declares
        donor = {t.file: t.entry for t in load_release(formulas_from / "release")}
        for t in tables:
            if t.file in donor:
                t.entry = {**t.entry, **{k: donor[t.file][k] for k in ("columns", "formulas", "decimals")
                                         if k in donor[t.file]}}
    released = primary = secondary = 0
    for t in (t for t in tables if t.kind == "table"):
        true_path = run / "restricted" / "tables" / Path(t.file).name
        truth = pd.read_csv(true_path) if true_path.exists() else None
        for c in t.counts:
            red = t.raw[c] == REDACTED
            released += int((~red).sum())
            for i in red[red].index:
                v = float(truth.iloc[i][c]) if truth is not None and c in truth else float("nan")
                r = float(policy.round([v])[0])
                if 1 <= v <= policy.threshold or 1 <= r <= policy.threshold:
                    primary += 1
                else:
                    secondary += 1
    back = []
    derived_violations(tables, lambda *a: back.append(a))
    back = [b for b in back if b[2] == "derived_unrounded"]
    cells = {(t.file, i, c): (("midpoint", t.raw.iloc[i][c], policy.km_rounding) if t.kind == "km_table"
                              else t.raw.iloc[i][c])
             for t in tables for c in t.raw.columns for i in range(len(t.raw))}
    relations = [r for r in release_relations(tables, analysed_sites(run)) if not r.rounded_sum]
    rels = [(r.total, list(r.parts)) for r in relations]
    t1 = time.perf_counter()
    found = recover(cells, rels, policy.threshold, policy.rounding)
    t2 = time.perf_counter()
    return {"run": run.name, "tables": sum(t.kind == "table" for t in tables),
            "km_tables": sum(t.kind == "km_table" for t in tables), "released_count_cells": released,
            "redacted_primary": primary, "redacted_secondary": secondary,
            "derived_values_from_unrounded_counts": len(back), "relations": len(rels),
            "relations_by_kind": dict(Counter(r.kind for r in relations)),
            "cells_recovered_exactly": len(found), "seconds_load_and_count": round(t1 - t0, 1),
            "seconds_milp_attacker": round(t2 - t1, 1)}


if __name__ == "__main__":
    args = sys.argv[1:]
    donor = None
    if "--formulas" in args:
        k = args.index("--formulas")
        donor = Path(args[k + 1])
        del args[k:k + 2]
    for a in args:
        print(json.dumps(stats(Path(a), donor)))
