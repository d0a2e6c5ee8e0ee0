"""Benchmark data-contract validation: workbench engine vs plain vectorised pandas vs naive GX 1.x.

A 1,000,000-row ``people`` table and a 1,000,000-row ``referrals`` table (raw text, as read from
CSV, with a sprinkle of every fault type) are validated with the full ``people`` and
``referrals`` suites (40 expectations, including the cross-table ones) three ways, in one run:

1. **plain pandas**: the same checks hand-written as vectorised pandas (independent code below);
2. **workbench**: ``pcref_eval.contracts`` (suites pre-loaded; vectorised engine);
3. **naive GX**: great-expectations 1.x on an ephemeral context, one Batch per table, every
   expectation validated by GX itself; the workbench's cross-table types are written the way a
   GX user would (``be_in_set`` with the 1M people ids, a pandas merge then a GX column-pair check).

It also reports ``import great_expectations`` time (fresh interpreter), strict suite loading, and
the end-to-end ``validate_site`` time on the same data written as CSV (read + validate + report).
Target (issue 3): workbench within 2x of plain pandas.

Run: .venv/bin/python benchmarks/bench_validate.py [--rows 1000000] [--repeat 3] [--skip-gx]
Times are the best of ``--repeat`` runs (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EXTRACT = date(2025, 4, 30)
ETHNIC = list("ABCDEFGHJKLMNPRS")
SOURCES = ["A1", "A3", "B1", "B2", "E1", "E2", "E3", "E4", "E5", "E6", "H1"]
SOURCE_LIST = ["A1", "A2", "A3", "A4", "B1", "B2", "C1", "C2", "C3", "D1", "D2", "E1", "E2", "E3", "E4", "E5", "E6",
               "F1", "F2", "F3", "G1", "G2", "G3", "G4", "H1", "H2", "I1", "I2", "M1", "M2", "M3", "M4", "M5", "M6",
               "M7", "N3", "P1", "Q1"]


def make_tables(n: int, seed: int = 11) -> dict[str, pd.DataFrame]:
    """people and referrals as raw text (pandas 'str' dtype, empty = missing), with a few faults."""
    rng = np.random.default_rng(seed)
    ids = np.char.add("P", np.char.zfill(rng.permutation(n).astype(str), 8))
    eth = rng.choice(ETHNIC + ["Z", "99", ""], n, p=[0.9 / 16] * 16 + [0.05, 0.03, 0.02])
    yob = rng.integers(1925, 2006, n).astype(str)
    imd = rng.integers(1, 11, n).astype(str).astype(object)
    imd[rng.random(n) < 0.02] = ""
    day0 = np.datetime64("2019-04-01")
    dead = rng.random(n) < 0.03
    dod = np.where(dead, (day0 + rng.integers(0, 2200, n).astype("timedelta64[D]")).astype(str), "")
    people = pd.DataFrame({"person_id": ids, "ethnic_category": eth, "gender": rng.choice(["1", "2", "3", "9"], n),
                           "year_of_birth": yob, "imd_decile": imd, "date_of_death": dod})
    k = max(3, n // 2000)
    people.loc[rng.choice(n, k, replace=False), "ethnic_category"] = "X"
    people.loc[rng.choice(n, k, replace=False), "year_of_birth"] = "19x0"
    people = pd.concat([people, people.iloc[rng.choice(n, k, replace=False)]], ignore_index=True)

    rday = rng.integers(0, 2200, n)
    dur = rng.exponential(420, n).astype(int)
    open_ = (rday + dur) > 2221
    ref = pd.DataFrame({
        "referral_id": np.char.add("R", np.char.zfill(np.arange(n).astype(str), 9)),
        "person_id": ids[rng.integers(0, n, n)],
        "referral_date": (day0 + rday.astype("timedelta64[D]")).astype(str),
        "source_of_referral": rng.choice(SOURCES, n),
        "discharge_date": np.where(open_, "", (day0 + (rday + dur).astype("timedelta64[D]")).astype(str)),
    })
    ref.loc[rng.choice(n, k, replace=False), "person_id"] = "ORPHAN"
    ref.loc[rng.choice(n, k, replace=False), "referral_date"] = "31/02/2023"
    ref.loc[rng.choice(np.flatnonzero(open_), k, replace=False), "referral_date"] = "2025-09-01"
    out = {}
    for name, df in (("people", people), ("referrals", ref)):
        df = df.astype("str")
        out[name] = df.mask(df == "")
    return out


# ------------------------------------------------------------------------------------------- plain pandas
def plain_pandas(people: pd.DataFrame, ref: pd.DataFrame) -> dict[str, int]:
    """The 40 checks of people.yml and referrals.yml written directly in vectorised pandas."""
    r: dict[str, int] = {}
    limit = pd.Timestamp(EXTRACT) + pd.Timedelta(days=1)

    def bad_regex(s, pattern):
        nn = s.notna()
        return int((nn & ~s.str.contains(pattern, regex=True).fillna(False)).sum())

    def parse(s):
        return pd.to_datetime(s, format="%Y-%m-%d", errors="coerce")

    for col in people.columns:
        r[f"people.{col}.exists"] = int(col in people.columns)
    r["people.rows"] = len(people)
    r["people.year_of_birth.regex"] = bad_regex(people["year_of_birth"], r"^\d{4}$")
    r["people.imd_decile.regex"] = bad_regex(people["imd_decile"], r"^\d{1,2}$")
    dod = parse(people["date_of_death"])
    r["people.date_of_death.format"] = int((people["date_of_death"].notna() & dod.isna()).sum())
    r["people.person_id.not_null"] = int(people["person_id"].isna().sum())
    pid = people["person_id"]
    r["people.person_id.unique"] = int((pid.duplicated(keep=False) & pid.notna()).sum())
    eth = people["ethnic_category"]
    r["people.ethnic_category.in_set"] = int((eth.notna() & ~eth.isin(ETHNIC + ["Z", "99"])).sum())
    g = people["gender"]
    r["people.gender.in_set"] = int((g.notna() & ~g.isin(["1", "2", "3", "4", "9"])).sum())
    r["people.gender.not_null"] = int(g.isna().sum())
    first = people.drop_duplicates("person_id")
    r["people.ethnic_category.recorded"] = int((first["ethnic_category"].isna()
                                               | first["ethnic_category"].isin(["Z", "99"])).sum())
    yob = pd.to_numeric(people["year_of_birth"], errors="coerce")
    r["people.year_of_birth.between"] = int(((yob < 1900) | (yob > EXTRACT.year)).sum())
    imd = pd.to_numeric(people["imd_decile"], errors="coerce")
    r["people.imd_decile.between"] = int(((imd < 1) | (imd > 10)).sum())
    r["people.date_of_death.after_extract"] = int((dod >= limit).sum())
    r["people.date_of_death.before_birth"] = int((dod.dt.year < yob).sum())

    for col in ref.columns:
        r[f"referrals.{col}.exists"] = int(col in ref.columns)
    r["referrals.rows"] = len(ref)
    rd, dd = parse(ref["referral_date"]), parse(ref["discharge_date"])
    r["referrals.referral_date.format"] = int((ref["referral_date"].notna() & rd.isna()).sum())
    r["referrals.discharge_date.format"] = int((ref["discharge_date"].notna() & dd.isna()).sum())
    rid = ref["referral_id"]
    r["referrals.referral_id.not_null"] = int(rid.isna().sum())
    r["referrals.referral_id.unique"] = int((rid.duplicated(keep=False) & rid.notna()).sum())
    r["referrals.person_id.not_null"] = int(ref["person_id"].isna().sum())
    lookup = first.set_index("person_id")
    pos = lookup.index.get_indexer(ref["person_id"])
    r["referrals.person_id.exists"] = int((ref["person_id"].notna().to_numpy() & (pos < 0)).sum())
    r["referrals.referral_date.not_null"] = int(ref["referral_date"].isna().sum())
    src = ref["source_of_referral"]
    r["referrals.source_of_referral.in_set"] = int((src.notna() & ~src.isin(SOURCE_LIST)).sum())
    r["referrals.source_of_referral.not_null"] = int(src.isna().sum())
    r["referrals.discharge_date.pair"] = int((dd < rd).sum())
    r["referrals.referral_date.after_extract"] = int((rd >= limit).sum())
    r["referrals.discharge_date.after_extract"] = int((dd >= limit).sum())
    person_yob = pd.to_numeric(lookup["year_of_birth"], errors="coerce").to_numpy()[np.maximum(pos, 0)]
    person_yob = np.where(pos >= 0, person_yob, np.nan)
    r["referrals.referral_date.before_birth"] = int((rd.dt.year.to_numpy(dtype=float, na_value=np.nan)
                                                     < person_yob).sum())
    person_dod = parse(lookup["date_of_death"]).to_numpy()[np.maximum(pos, 0)]
    person_dod = pd.Series(np.where(pos >= 0, person_dod, np.datetime64("NaT")))
    r["referrals.referral_date.after_death"] = int((rd.reset_index(drop=True) > person_dod).sum())
    return r


# ------------------------------------------------------------------------------------------- workbench
def workbench(tables: dict, suites: dict) -> dict[str, int]:
    from pcref_eval.contracts.engine import SiteData, evaluate

    data = SiteData(tables, extract_date=EXTRACT)
    out = {}
    for table in ("people", "referrals"):
        for spec in suites[table].expectations:
            o = evaluate(spec, data)
            out[spec.key] = o.unexpected_count
    return out


# ------------------------------------------------------------------------------------------- naive GX
def naive_gx(tables: dict, suites: dict, in_set_orphans: bool = False) -> dict[str, int | None]:
    """Every check executed by great-expectations itself, written the way a GX user would.

    Orphan references: a pandas left merge with people, then a GX column-pair equality check on
    (person_id, matched person id). With ``in_set_orphans`` they are instead
    ``expect_column_values_to_be_in_set(value_set=<every person id>)``, the most direct GX
    spelling, which is pathologically slow (GX re-serialises the value set hundreds of times).
    """
    import great_expectations as gx

    from pcref_eval.contracts.engine import TEXT_TYPES, SiteData
    from pcref_eval.contracts.gx_backend import ephemeral_context

    context = ephemeral_context()
    source = context.data_sources.add_or_update_pandas("bench")
    data = SiteData(tables, extract_date=EXTRACT)
    people_ids = tables["people"]["person_id"].dropna().unique().tolist() if in_set_orphans else []
    out: dict[str, int | None] = {}
    for table in ("people", "referrals"):
        raw = tables[table]
        typed = data.typed_frame(table)
        if table == "referrals":  # birth/death checks need the person's attributes on each row
            first = data.typed_frame("people").drop_duplicates("person_id")
            first = first.assign(matched_person_id=first["person_id"])
            merged = typed.merge(first[["person_id", "matched_person_id", "year_of_birth", "date_of_death"]],
                                 on="person_id", how="left", suffixes=("", "_person"))
            typed = merged.assign(ref_year=merged["referral_date"].dt.year)
        else:
            typed = typed.assign(dod_year=typed["date_of_death"].dt.year)
        text_suite = gx.ExpectationSuite(name=f"{table}_text")
        value_suite = gx.ExpectationSuite(name=f"{table}_values")
        for spec in suites[table].expectations:
            k = dict(spec.kwargs)
            if spec.type == "expect_column_values_to_exist_in_table" and in_set_orphans:
                e = gx.expectations.ExpectColumnValuesToBeInSet(column=k["column"], value_set=people_ids)
                text_suite.add_expectation(e)
            elif spec.type == "expect_column_values_to_exist_in_table":
                value_suite.add_expectation(gx.expectations.ExpectColumnPairValuesToBeEqual(
                    column_A="person_id", column_B="matched_person_id", ignore_row_if="both_values_are_missing"))
            elif spec.type == "expect_column_values_to_not_be_after_extract_date":
                value_suite.add_expectation(gx.expectations.ExpectColumnValuesToBeBetween(
                    column=k["column"], max_value=pd.Timestamp(EXTRACT + timedelta(days=1)), strict_max=True))
            elif spec.type == "expect_column_values_to_not_be_before_birth":
                a, b = ("dod_year", "year_of_birth") if table == "people" else ("ref_year", "year_of_birth_person")
                value_suite.add_expectation(gx.expectations.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A=a, column_B=b, or_equal=True, ignore_row_if="either_value_is_missing"))
            elif spec.type == "expect_column_values_to_not_be_after_death":
                value_suite.add_expectation(gx.expectations.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A="date_of_death_person", column_B="referral_date", or_equal=True,
                    ignore_row_if="either_value_is_missing"))
            elif spec.type == "expect_column_values_to_be_recorded":
                text_suite.add_expectation(gx.expectations.ExpectColumnValuesToNotBeInSet(
                    column=k["column"], value_set=k["not_recorded_values"]))
                text_suite.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column=k["column"]))
            else:
                suite = text_suite if spec.type in TEXT_TYPES else value_suite
                if isinstance(k.get("max_value"), dict):
                    k["max_value"] = EXTRACT.year
                suite.add_expectation(type(spec.gx)(**k))
        for name, frame, suite in ((f"{table}_text", raw, text_suite), (f"{table}_values", typed, value_suite)):
            asset = source.add_dataframe_asset(name)
            batch = asset.add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": frame})
            res = batch.validate(suite)
            for i, r in enumerate(res.results):
                out[f"{name}.{i}"] = (r.result or {}).get("unexpected_count")
    return out


def gx_import_seconds() -> float:
    code = ("import os, time; os.environ['GX_ANALYTICS_ENABLED']='False'; t=time.perf_counter(); "
            "import great_expectations; print(time.perf_counter()-t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return float(out.stdout.strip().splitlines()[-1])


def contracts_import_pulls_gx() -> bool:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import pcref_eval.contracts"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return "great_expectations" in out.stderr


def best(fn, repeat: int):
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-gx", action="store_true", help="skip the (slow) naive GX timing")
    ap.add_argument("--skip-e2e", action="store_true", help="skip the end-to-end validate_site timing")
    ap.add_argument("--gx-in-set-orphans", action="store_true",
                    help="naive GX: orphans as be_in_set with every person id (very slow; try --rows 100000)")
    args = ap.parse_args(argv)

    report: dict = {"rows": args.rows}
    report["gx_import_seconds_fresh_process"] = round(gx_import_seconds(), 2)
    report["import_pcref_eval_contracts_imports_gx"] = contracts_import_pulls_gx()
    t = time.perf_counter()
    tables = make_tables(args.rows)
    report["make_data_seconds"] = round(time.perf_counter() - t, 2)
    people, ref = tables["people"], tables["referrals"]

    from pcref_eval.contracts import load_suites

    t = time.perf_counter()
    suites = load_suites()  # imports great_expectations (strict parse)
    report["load_suites_seconds_incl_gx_import"] = round(time.perf_counter() - t, 2)
    report["expectations"] = len(suites["people"].expectations) + len(suites["referrals"].expectations)

    plain_t, plain = best(lambda: plain_pandas(people, ref), args.repeat)
    wb_t, wb = best(lambda: workbench(tables, suites), args.repeat)
    report["plain_pandas_seconds"] = round(plain_t, 3)
    report["workbench_seconds"] = round(wb_t, 3)
    report["workbench_over_plain"] = round(wb_t / plain_t, 2)
    # the two implementations count the same things
    key = {
        "people.person_id.expect_column_values_to_be_unique": "people.person_id.unique",
        "people.ethnic_category.expect_column_values_to_be_in_set": "people.ethnic_category.in_set",
        "people.ethnic_category.expect_column_values_to_be_recorded": "people.ethnic_category.recorded",
        "people.year_of_birth.expect_column_values_to_match_regex": "people.year_of_birth.regex",
        "referrals.person_id.expect_column_values_to_exist_in_table": "referrals.person_id.exists",
        "referrals.referral_date.expect_column_values_to_match_strftime_format": "referrals.referral_date.format",
        "referrals.referral_date.expect_column_values_to_not_be_after_extract_date":
            "referrals.referral_date.after_extract",
        "referrals.referral_date.expect_column_values_to_not_be_after_death": "referrals.referral_date.after_death",
        "referrals.discharge_date.expect_column_pair_values_a_to_be_greater_than_b": "referrals.discharge_date.pair",
        "referrals.referral_date.expect_column_values_to_not_be_before_birth": "referrals.referral_date.before_birth",
    }
    mismatches = {k: (wb[k], plain[v]) for k, v in key.items() if wb[k] != plain[v]}
    report["workbench_equals_plain_counts"] = not mismatches
    if mismatches:
        report["mismatches"] = mismatches
    if not args.skip_gx:
        gx_t, _ = best(lambda: naive_gx(tables, suites, args.gx_in_set_orphans), max(1, min(args.repeat, 2)))
        report["naive_gx_seconds"] = round(gx_t, 3)
        report["naive_gx_over_plain"] = round(gx_t / plain_t, 2)
    if not args.skip_e2e:
        from pcref_eval.contracts import validate_site
        from pcref_eval.synth.generate import TABLES

        with tempfile.TemporaryDirectory() as tmp:
            site = Path(tmp) / "site_bench"
            site.mkdir()
            people.to_csv(site / "people.csv", index=False)
            ref.to_csv(site / "referrals.csv", index=False)
            from pcref_eval.schema import TABLE_SCHEMAS

            for table in TABLES:
                if table not in ("people", "referrals"):
                    (site / f"{table}.csv").write_text(",".join(TABLE_SCHEMAS[table]) + "\n")
            pd.DataFrame({"ethnic_category": ["A"], "age_band": ["0-4"], "sex": ["1"], "population": ["10"]}) \
                .to_csv(site / "population.csv", index=False)
            (site / "site.yml").write_text(f"site_id: site_bench\nname: bench\npcref_go_live: '2023-01-01'\n"
                                           f"extract_date: '{EXTRACT.isoformat()}'\n")
            t = time.perf_counter()
            sv = validate_site(site, restricted_dir=Path(tmp) / "restricted")
            report["validate_site_end_to_end_seconds"] = round(time.perf_counter() - t, 2)
            report["validate_site_timings"] = {k: round(v, 2) for k, v in sv.timings.items()}
            report["validate_site_status"] = sv.status
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
