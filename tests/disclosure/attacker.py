"""An independent attacker for tests: exact integer programming over the released cells (scipy MILP).

It shares no code with :mod:`pcref_eval.release_attack` beyond reading the CSVs: each released count
becomes an integer variable with the bounds a reader of the policy can infer (rounded to base b: the
b integers that round to it, above the threshold; 0: exactly 0; redacted: 1 or more), every relation
is an equality constraint, and each cell is minimised and maximised. A rounded or redacted cell whose
minimum equals its maximum is recovered.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

BIG = 10 ** 7


def bounds_of(raw: str, threshold: int, rounding: int) -> tuple[int, int, str]:
    s = str(raw).strip().replace(",", "")
    if s == "[REDACTED]":
        return 1, BIG, "redacted"
    v = float(s)
    if v == 0:
        return 0, 0, "zero"
    if v % rounding:
        return int(v), int(v), "unrounded"
    # x rounds half-up to v when v - b/2 <= x < v + b/2; released only when x > threshold
    return max(math.ceil(v - rounding / 2), threshold + 1), math.ceil(v + rounding / 2) - 1, "rounded"


def bounds_midpoint(raw: str, base: int) -> tuple[int, int, str]:
    """A Kaplan-Meier count released with midpoint rounding: v = ceil(x / base) * base - base // 2 (0 stays 0),
    so v stands for every x in [v + base // 2 - base + 1, v + base // 2]."""
    v = float(str(raw).strip().replace(",", ""))
    if v == 0:
        return 0, 0, "zero"
    top = int(v) + base // 2
    if top % base:
        return int(v), int(v), "unrounded"
    return top - base + 1, top, "rounded"


def _bounds(cell, threshold: int, rounding: int) -> tuple[int, int, str]:
    if cell is None:  # a quantity no table releases (e.g. a shared total): any non-negative integer
        return 0, BIG, "unknown"
    if isinstance(cell, tuple) and cell[0] == "midpoint":
        return bounds_midpoint(cell[1], cell[2])
    return bounds_of(cell, threshold, rounding)


def recover(cells: dict, relations: list[tuple[object, list]], threshold: int, rounding: int) -> dict:
    """``cells``: {key: released string, or ("midpoint", released string, base) for a Kaplan-Meier count};
    ``relations``: [(total key, [part keys])] with total = sum(parts). A key absent from ``cells`` is a quantity
    no table releases (any non-negative integer).

    Returns {key: true value} for every rounded/redacted cell the relations pin to one integer.
    """
    # solve each connected group of related cells on its own
    parent: dict = {}

    def find(k):
        while parent.setdefault(k, k) != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k
    for t, ps in relations:
        for p in ps:
            parent[find(p)] = find(t)
    components: dict = {}
    for rel in relations:
        components.setdefault(find(rel[0]), []).append(rel)
    out = {}
    for rels in components.values():
        out.update(_recover_component(cells, rels, threshold, rounding))
    return out


def _recover_component(cells: dict, relations: list, threshold: int, rounding: int) -> dict:
    keys = sorted({k for t, ps in relations for k in (t, *ps)}, key=str)
    if not keys:
        return {}
    pos = {k: i for i, k in enumerate(keys)}
    lo, hi, kind = zip(*(_bounds(cells.get(k), threshold, rounding) for k in keys))
    a = np.zeros((len(relations), len(keys)))
    for r, (t, ps) in enumerate(relations):
        a[r, pos[t]] -= 1
        for p in ps:
            a[r, pos[p]] += 1
    cons = LinearConstraint(a, 0, 0)
    bnd = Bounds(np.array(lo, float), np.array(hi, float))
    integ = np.ones(len(keys))
    out = {}
    for k in keys:
        i = pos[k]
        if kind[i] not in ("rounded", "redacted"):
            continue
        c = np.zeros(len(keys))
        c[i] = 1
        mn = milp(c, constraints=cons, bounds=bnd, integrality=integ)
        mx = milp(-c, constraints=cons, bounds=bnd, integrality=integ)
        if mn.status == 0 and mx.status == 0 and round(mn.fun) == round(-mx.fun):
            out[k] = round(mn.fun)
    return out
