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
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pcref_eval.disclosure import REDACTED, DisclosurePolicy  # noqa: E402
from pcref_eval.release_attack import derived_violations, load_release, release_relations  # noqa: E402
from tests.disclosure.attacker import recover  # noqa: E402


def stats(run: Path, formulas_from: Path | None = None) -> dict:
    release = run / "release"
    if (run / "restricted" / "release-blocked").is_dir() and not (release / "index").is_dir():
        release = run / "restricted" / "release-blocked"
    policy = DisclosurePolicy.opensafely()
    tables = load_release(release)
    if formulas_from is not None:  # judge an old release by the formulas the new code declares
        donor = {t.file: t.entry for t in load_release(formulas_from / "release")}
        for t in tables:
            if t.file in donor:
                t.entry = {**t.entry, **{k: donor[t.file][k] for k in ("columns", "formulas", "decimals")
                                         if k in donor[t.file]}}
    released = primary = secondary = 0
    for t in tables:
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
    cells = {(t.file, i, c): t.raw.iloc[i][c] for t in tables for c in t.raw.columns for i in range(len(t.raw))}
    rels = [(r.total, list(r.parts)) for r in release_relations(tables) if not r.rounded_sum]
    found = recover(cells, rels, policy.threshold, policy.rounding)
    return {"run": run.name, "tables": len(tables), "released_count_cells": released,
            "redacted_primary": primary, "redacted_secondary": secondary,
            "derived_values_from_unrounded_counts": len(back), "relations": len(rels),
            "cells_recovered_exactly": len(found)}


if __name__ == "__main__":
    args = sys.argv[1:]
    donor = None
    if "--formulas" in args:
        k = args.index("--formulas")
        donor = Path(args[k + 1])
        del args[k:k + 2]
    for a in args:
        print(json.dumps(stats(Path(a), donor)))
