"""Data-quality faults injected into synthetic extracts at documented rates (``synth --faults``).

Each fault touches distinct rows (no row carries two faults) and its exact count is recorded,
so a validator's counts can be checked against the truth. Fault types and where they land:

| fault | table.column | what is written |
|---|---|---|
| invalid_ethnic_code | people.ethnic_category | "X" (not an NHS code) |
| missing_ethnicity | people.ethnic_category | "" on a previously recorded row |
| invalid_legal_status | mha_episodes.legal_status_code | "77" |
| end_before_start | mha_episodes.end_date | 1-30 days before start_date |
| duplicate_ids | people.person_id | an exact copy of an existing row appended |
| future_dates | referrals.referral_date | 1-365 days after the extract date (open referrals only) |
| orphan_references | referrals.person_id | an id not in people |
| unparseable_dates | hospital_spells.admission_date | "31/02/2023" or "not recorded" |

``expected_unexpected`` is the number of rows a row-level check should flag: for duplicate
ids both the original and the copy (2 x injected); for missing ethnicity the injected rows plus
the rows that were already unrecorded (Z, 99 or empty).
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from pcref_eval.ethnicity import ETHNIC_CATEGORIES

FAULT_RATE = 0.005  # share of a table's rows given each fault (at least MIN_FAULTS rows)
MIN_FAULTS = 3


def inject_faults(tables: dict[str, pd.DataFrame], spec, model, rng: np.random.Generator) -> dict:
    """Inject every fault type into ``tables`` in place; return {fault: counts and location}."""
    used: dict[str, set] = {}
    report = {}
    people = tables["people"]
    recorded = people.index[people["ethnic_category"].isin(list(ETHNIC_CATEGORIES))]
    rows = _pick(rng, recorded, used, "people")
    people.loc[rows, "ethnic_category"] = "X"
    report["invalid_ethnic_code"] = _entry("people", "ethnic_category", len(rows))

    rows = _pick(rng, recorded, used, "people")
    people.loc[rows, "ethnic_category"] = ""
    unrecorded = int((~people["ethnic_category"].isin(list(ETHNIC_CATEGORIES) + ["X"])).sum())
    report["missing_ethnicity"] = _entry("people", "ethnic_category", len(rows), unrecorded)

    mha = tables["mha_episodes"]
    rows = _pick(rng, mha.index, used, "mha_episodes")
    mha.loc[rows, "legal_status_code"] = "77"
    report["invalid_legal_status"] = _entry("mha_episodes", "legal_status_code", len(rows))

    closed = mha.index[mha["end_date"] != ""]
    rows = _pick(rng, closed, used, "mha_episodes")
    start = pd.to_datetime(mha.loc[rows, "start_date"])
    mha.loc[rows, "end_date"] = (start - pd.to_timedelta(rng.integers(1, 31, len(rows)), unit="D")).dt.strftime("%Y-%m-%d")
    report["end_before_start"] = _entry("mha_episodes", "end_date", len(rows))

    refs = tables["referrals"]
    open_refs = refs.index[refs["discharge_date"] == ""]
    rows = _pick(rng, open_refs, used, "referrals")
    future = [(model.extract_date + timedelta(days=int(d))).isoformat() for d in rng.integers(1, 366, len(rows))]
    refs.loc[rows, "referral_date"] = future
    report["future_dates"] = _entry("referrals", "referral_date", len(rows))

    rows = _pick(rng, refs.index, used, "referrals")
    refs.loc[rows, "person_id"] = [f"ORPHAN{i:06d}" for i in range(len(rows))]
    report["orphan_references"] = _entry("referrals", "person_id", len(rows))

    spells = tables["hospital_spells"]
    rows = _pick(rng, spells.index, used, "hospital_spells")
    spells.loc[rows, "admission_date"] = rng.choice(["31/02/2023", "not recorded"], len(rows))
    report["unparseable_dates"] = _entry("hospital_spells", "admission_date", len(rows))

    rows = _pick(rng, people.index, used, "people")
    tables["people"] = pd.concat([people, people.loc[rows]], ignore_index=True)
    report["duplicate_ids"] = _entry("people", "person_id", len(rows), 2 * len(rows))
    return report


def _pick(rng, candidates: pd.Index, used: dict, table: str) -> np.ndarray:
    """Choose FAULT_RATE of the candidate rows not already given a fault in this table."""
    taken = used.setdefault(table, set())
    pool = np.array([i for i in candidates if i not in taken])
    k = min(len(pool), max(MIN_FAULTS, int(round(FAULT_RATE * len(candidates)))))
    rows = np.sort(rng.choice(pool, size=k, replace=False))
    taken.update(rows.tolist())
    return rows


def _entry(table: str, column: str, injected: int, expected: int | None = None) -> dict:
    return {"table": table, "column": column, "injected": int(injected),
            "expected_unexpected": int(injected if expected is None else expected)}
