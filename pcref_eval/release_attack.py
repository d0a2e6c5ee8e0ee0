"""The release check's attacker: what an output checker with every released CSV and the config can work out.

Three attacks, each returning :class:`~pcref_eval.release_check.Violation` objects naming file, row and column:

- **Back-calculation** (:func:`derived_violations`): every derived value declared with a formula in
  ``release/index/<prefix>.json`` is recomputed from the released (rounded, redacted) counts of its
  row; a released value that differs (beyond its printed decimals) was computed from something else,
  usually the unrounded counts, and ``rate x population x years / 100,000`` or ``pct x n`` then
  gives the exact count back (``derived_unrounded``). A table entry that does not declare its
  columns cannot be checked and is refused (``undeclared_table``).
- **Differencing** (:func:`differencing_violations`): every released count is an interval of true
  values (rounded to base b: the b integers that round to it; 0: exactly 0; redacted: 1 or more);
  the relations an attacker knows tie cells together (a declared total and its parts; a
  whole-release table = the sum of the same table of every site; a 12-month window = the sum of
  its months; the cohort flow's last step = Table 1's people). Interval propagation over all of
  them (bounds tightening to a fixed point) finds every cell whose true value is pinned to one
  integer; a rounded or redacted cell so pinned is refused (``differencing``).
- **Absolute paths** in released text (:func:`path_violations`): server paths say where the secure
  data live (``absolute_path``).

Relations are found from the release itself (file names, declared totals, labels), as an attacker
would; :func:`release_relations` lists them so tests can check each holds on the true counts.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pcref_eval.disclosure import REDACTED, DisclosurePolicy, spec_from_dict

Cell = tuple[str, int, str]  # (file relative to release/, row position, column)


@dataclass
class ReleasedCsv:
    """One indexed table as released: raw strings, numeric view, its index entry and prefix."""

    file: str
    prefix: str
    name: str
    entry: dict
    raw: pd.DataFrame
    kind: str = "table"  # or "km_table": Kaplan-Meier table, cumulative counts midpoint-rounded
    values: pd.DataFrame = field(init=False)
    row_keys: dict = field(init=False, default_factory=dict, repr=False, compare=False)  # see _row_keys

    def __post_init__(self):
        kinds = self.entry.get("columns") or {}
        self.values = pd.DataFrame({c: (self.raw[c] if kinds.get(c) == "labels" or c == "group" else
                                        _numeric(self.raw[c])) for c in self.raw.columns}, index=self.raw.index)

    @property
    def counts(self) -> list[str]:
        return [c for c in self.entry.get("count_cols", []) if c in self.raw.columns]

    def redacted(self, col: str) -> np.ndarray:
        return (self.raw[col] == REDACTED).to_numpy()


def _numeric(cells: pd.Series) -> pd.Series:
    """Released cells as numbers (thousands separators dropped; text as NaN)."""
    if any(isinstance(c, str) and "," in c for c in cells.tolist()):
        cells = cells.str.replace(",", "")
    return pd.to_numeric(cells, errors="coerce")


@dataclass(frozen=True)
class Relation:
    """``total`` = sum of ``parts`` (true values). ``rounded_sum``: the total is released as the sum of the
    parts' released values (in-table totals), so it bounds the parts' rounded values, not their true sum."""

    total: Cell
    parts: tuple[Cell, ...]
    kind: str
    rounded_sum: bool = False


def load_release(release: Path, kinds: tuple[str, ...] = ("table",), prefix: str | None = None,
                 keep: Callable[[str, dict], bool] | None = None, cache: bool = False) -> list[ReleasedCsv]:
    """Every CSV table recorded in ``release/index/*.json`` (only ``<prefix>.json`` if given) whose entry is of one
    of ``kinds`` (``table``; ``km_table``: Kaplan-Meier tables, for the differencing attack) and, if ``keep`` is
    given, for which ``keep(prefix, entry)`` is true (decided before the CSV is read).

    ``cache``: reuse the tables this process built before from files whose modification time and size are
    unchanged (for the publisher, which reads the release before every table; the release check always reads
    afresh). Cached tables are shared between calls: callers must not modify them."""
    read = _cached if cache else (lambda path, parse: parse(path.read_text(encoding="utf-8")))
    tables = []
    for index in sorted((release / "index").glob("*.json" if prefix is None else f"{prefix}.json")):
        try:
            data = read(index, _parse_index)
        except (ValueError, OSError):
            continue
        owner = str(data.get("prefix", index.stem))
        for e in data.get("entries", []):
            if not isinstance(e, dict) or e.get("kind") not in kinds or (keep is not None and not keep(owner, e)):
                continue
            for f in e.get("files", []):
                path = release / f
                if path.suffix != ".csv" or not (cache or path.exists()):  # a cached read stats the file anyway
                    continue
                build = lambda text, f=f, e=e: _released_csv(text, str(f), owner, e)  # noqa: E731
                try:
                    table = (_cached(path, build, key=(owner, json.dumps(e, sort_keys=True, default=str))) if cache
                             else build(path.read_text(encoding="utf-8")))
                except FileNotFoundError:  # listed in the index, not (or no longer) written
                    continue
                if table is not None:
                    tables.append(table)
    return tables


def _released_csv(text: str, file: str, owner: str, entry: dict) -> ReleasedCsv | None:
    raw = _parse_csv(text)
    return None if raw is None else ReleasedCsv(file, owner, str(entry.get("name", "")), entry, raw, str(entry["kind"]))


#: Release files already parsed by this process, by path and key: (mtime_ns, size, parsed). A notebook's
#: publisher consults the release before every table it publishes; the files it reads rarely change under it.
_CACHE: dict[tuple[Path, tuple], tuple[int, int, object]] = {}


def _cached(path: Path, parse: Callable[[str], object], key: tuple = ()):
    """``parse(text of path)``, reused while the file's modification time and size are unchanged (``key``
    distinguishes parses of one file that depend on more than its text, e.g. its index entry)."""
    st = path.stat()
    hit = _CACHE.get((path, key))
    if hit is None or hit[:2] != (st.st_mtime_ns, st.st_size):
        hit = _CACHE[(path, key)] = (st.st_mtime_ns, st.st_size, parse(path.read_text(encoding="utf-8")))
    return hit[2]


def _parse_index(text: str) -> dict:
    data = json.loads(text)
    return data if isinstance(data, dict) else {}


def _parse_csv(text: str) -> pd.DataFrame | None:
    """A released CSV's cells as strings, exactly as released (None when it has no header)."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return None
    return (pd.DataFrame(rows[1:], columns=rows[0]) if len(rows) > 1 else pd.DataFrame(columns=rows[0])).astype(str)


# --------------------------------------------------------------------------------------------------
# back-calculation


def derived_violations(tables: list[ReleasedCsv], add) -> None:
    """Recompute every formula-declared derived value from the released counts; flag any that differ."""
    for t in tables:
        e = t.entry
        if t.kind != "table":
            continue
        if "columns" not in e:
            add(t.file, "whole table", "undeclared_table",
                "the table's columns are not declared (counts, denominators, derived, model, labels): it "
                "cannot be checked, so it cannot be released")
            continue
        decimals = int(e.get("decimals", 2))
        tol = 0.5 * 10 ** (-decimals) + 1e-9
        for col, d in (e.get("formulas") or {}).items():
            if col not in t.raw.columns or not isinstance(d, dict) or d.get("type") in ("sources", "Summary"):
                continue
            try:
                spec = spec_from_dict(d)
                expected = np.asarray(spec.compute(t.values), dtype=float)
            except Exception as exc:  # a formula we cannot evaluate cannot be trusted
                add(t.file, f"column '{col}'", "derived_unrounded",
                    f"declared formula could not be recomputed ({type(exc).__name__})")
                continue
            keep = spec.keep_rows(t.values) if hasattr(spec, "keep_rows") else np.zeros(len(t.raw), bool)
            got = t.values[col].to_numpy(dtype=float)
            for i in range(len(t.raw)):
                if keep[i] or np.isnan(got[i]) or not np.isfinite(got[i]):
                    continue
                exp = expected[i]
                if np.isnan(exp) or abs(round(exp, decimals) - got[i]) > tol and abs(exp - got[i]) > tol:
                    what = ("has no value from the released counts" if np.isnan(exp)
                            else f"differs from {round(exp, decimals)} recomputed from the released counts")
                    add(t.file, f"row {i + 1}, column '{col}'", "derived_unrounded",
                        f"value {got[i]} {what}: computed from unrounded or redacted counts, it can give "
                        f"them back")


# --------------------------------------------------------------------------------------------------
# relations an attacker can see


def _label_cols(t: ReleasedCsv) -> list[str]:
    cols = t.entry.get("columns")
    if cols is None:  # an undeclared table: text columns are its labels
        return [c for c in t.raw.columns if c not in t.counts and t.values[c].isna().all()]
    return [c for c in t.raw.columns if cols.get(c) == "labels"]


def _row_keys(t: ReleasedCsv, labels: list[str]) -> list[str]:
    """Each row's label values joined (remembered on the table: a publisher's cached tables are related
    again before every table it publishes)."""
    key = tuple(labels)
    if key not in t.row_keys:
        t.row_keys[key] = (["\x1f".join(r) for r in zip(*(t.raw[c].tolist() for c in labels))] if labels
                           else [""] * len(t.raw))
    return t.row_keys[key]


def _within_table(t: ReleasedCsv) -> list[Relation]:
    totals = t.entry.get("totals") or None
    if not totals:
        return []
    out = []
    counts = t.counts
    lab, tot_label = totals.get("label_col"), totals.get("total_label")
    if lab in t.raw.columns:
        by = [b for b in totals.get("by") or [] if b in t.raw.columns]
        keys = _row_keys(t, by)
        is_total = (t.raw[lab] == str(tot_label)).to_numpy()
        for k in dict.fromkeys(keys):
            rows = [i for i, kk in enumerate(keys) if kk == k]
            trs = [i for i in rows if is_total[i]]
            prs = [i for i in rows if not is_total[i]]
            for tr in trs:
                for c in counts:
                    out.append(Relation((t.file, tr, c), tuple((t.file, r, c) for r in prs), "total row", True))
    for tc, parts in (totals.get("columns") or {}).items():
        if tc in t.raw.columns and all(p in t.raw.columns for p in parts):
            for r in range(len(t.raw)):
                out.append(Relation((t.file, r, tc), tuple((t.file, r, p) for p in parts), "total column", True))
    return out


def _site_vs_all(tables: list[ReleasedCsv], all_prefix: str, site_prefixes: list[str]) -> list[Relation]:
    """The whole-release table (prefix ``all``) of a name released by every site: count = sum over sites,
    row matched on its label columns. Only tables describing the same people by the same labels qualify:
    Table 1 (pooled cohort) in this workbench."""
    out = []
    by_name: dict[str, dict[str, ReleasedCsv]] = {}
    for t in tables:
        by_name.setdefault(t.name, {})[t.prefix] = t
    for name in SUMMABLE_ACROSS_SITES:
        group = by_name.get(name, {})
        whole = group.get(all_prefix)
        sites = [group.get(p) for p in site_prefixes]
        if whole is None or not site_prefixes or any(s is None for s in sites):
            continue
        labels = _label_cols(whole)
        keys = {k: i for i, k in enumerate(_row_keys(whole, labels))}
        site_keys = [{k: i for i, k in enumerate(_row_keys(s, labels))} for s in sites]
        for k, i in keys.items():
            for c in whole.counts:
                parts = tuple((s.file, sk[k], c) for s, sk in zip(sites, site_keys) if k in sk and c in s.raw)
                out.append(Relation((whole.file, i, c), parts, f"{name}: all sites = sum of sites"))
    return out


#: Tables whose all-sites version counts exactly the union of the sites' people (same labels).
SUMMABLE_ACROSS_SITES = ("table_one",)


def _flow_vs_table_one(tables: list[ReleasedCsv]) -> list[Relation]:
    """The cohort flow's last step, per group column, is the same people as Table 1's ``people`` row."""
    out = []
    by_prefix = {(t.prefix, t.name): t for t in tables}
    for (prefix, name), flow in by_prefix.items():
        t1 = by_prefix.get((prefix, "table_one"))
        if name != "cohort_flow" or t1 is None or "group" not in t1.raw or "people" not in t1.raw or not len(flow.raw):
            continue
        last = len(flow.raw) - 1
        for i, g in enumerate(t1.raw["group"]):
            if g in flow.raw.columns:
                out.append(Relation((t1.file, i, "people"), ((flow.file, last, g),), "cohort flow last step = Table 1"))
    return out


def _window_vs_series(tables: list[ReleasedCsv], window_months: int = 12) -> list[Relation]:
    """Board: the by-group table's focus/reference counts over the latest 12 months = the sum of the monthly
    series' counts over those months (only for monthly series)."""
    out = []
    by_prefix: dict[str, dict[str, ReleasedCsv]] = {}
    for t in tables:
        by_prefix.setdefault(t.prefix, {})[t.name] = t
    for prefix, named in by_prefix.items():
        bg = named.get("board_by_group")
        if bg is None or "measure_id" not in bg.raw or "group" not in bg.raw:
            continue
        for name, s in named.items():
            m = re.fullmatch(r"board_(.+)_series", name)
            if not m or "period" not in s.raw or not s.raw["period"].str.fullmatch(r"\d{4}-\d{2}").all():
                continue
            if len(s.raw) < window_months:
                continue
            months = pd.PeriodIndex(s.raw["period"], freq="M")
            if not (np.diff(months.asi8) == 1).all():  # quarterly series: months not consecutive
                continue
            rows = list(range(len(s.raw) - window_months, len(s.raw)))
            mid = m.group(1)
            for series_col, group in (("focus_count", "Black (all focus groups)"), ("count", "All people")):
                if series_col not in s.raw:
                    continue
                hit = np.flatnonzero((bg.raw["measure_id"] == mid).to_numpy() & (bg.raw["group"] == group).to_numpy())
                if len(hit) == 1:
                    out.append(Relation((bg.file, int(hit[0]), "count"), tuple((s.file, r, series_col) for r in rows),
                                        "12-month window = sum of its months"))
    return out


def _km_first_rows(t: ReleasedCsv) -> dict[str, int]:
    """Row of each group's first time in a Kaplan-Meier table: its ``n_risk`` is the group's people, midpoint-rounded."""
    if t.kind != "km_table" or not {"group", "time", "n_risk"} <= set(t.raw.columns):
        return {}
    times = pd.to_numeric(t.raw["time"], errors="coerce").to_numpy()
    out: dict[str, int] = {}
    for i, g in enumerate(t.raw["group"]):
        if g not in out or times[i] < times[out[g]]:
            out[g] = i
    return out


#: Table 1 groups (PCREF scheme) whose people are exactly the broad group "Black" (codes M, N, P).
BROAD_BLACK_PARTS = ("Black African", "Black Caribbean", "Black Other")


def _km_vs_counts(tables: list[ReleasedCsv], all_prefix: str, site_prefixes: list[str]) -> list[Relation]:
    """Kaplan-Meier tables (midpoint-rounded people at risk) against base-rounded counts of the same people.

    - a KM table's first ``n_risk`` of a group is the group's people: the KM groups together (every broad
      group present) are Table 1's recorded people (a virtual cell holds the shared true total);
    - the broad group Black is Table 1's Black African + Black Caribbean + Black Other;
    - the all-sites KM table's people of a group = the sum of every site's (same group present everywhere).
    """
    from pcref_eval.ethnicity import SCHEMES, UNRECORDED_LABELS
    broad = set(SCHEMES["broad"].values())
    out = []
    by = {(t.prefix, t.name): t for t in tables}
    for km in (t for t in tables if t.kind == "km_table"):
        first = _km_first_rows(km)
        t1 = by.get((km.prefix, "table_one"))
        if first and t1 is not None and {"group", "people"} <= set(t1.raw.columns):
            rows = {g: i for i, g in enumerate(t1.raw["group"])}
            recorded = [i for g, i in rows.items() if g not in UNRECORDED_LABELS and str(g).lower() not in
                        ("all", "total")]
            if set(first) == broad and recorded:
                v = ("virtual", 0, f"{km.prefix} recorded people")
                out.append(Relation(v, tuple((km.file, i, "n_risk") for i in first.values()),
                                    "Kaplan-Meier people = Table 1 recorded people"))
                out.append(Relation(v, tuple((t1.file, i, "people") for i in recorded),
                                    "Kaplan-Meier people = Table 1 recorded people"))
            if "Black" in first and all(g in rows for g in BROAD_BLACK_PARTS):
                out.append(Relation((km.file, first["Black"], "n_risk"),
                                    tuple((t1.file, rows[g], "people") for g in BROAD_BLACK_PARTS),
                                    "Kaplan-Meier Black = Table 1 Black groups"))
        if km.prefix == all_prefix and site_prefixes:
            sites = [by.get((p, km.name)) for p in site_prefixes]
            if any(x is None for x in sites):
                continue
            site_first = [_km_first_rows(x) for x in sites]
            for g, i in first.items():
                if all(g in sf for sf in site_first):
                    out.append(Relation((km.file, i, "n_risk"),
                                        tuple((x.file, sf[g], "n_risk") for x, sf in zip(sites, site_first)),
                                        "Kaplan-Meier: all sites = sum of sites"))
    return out


def _its_vs_series(tables: list[ReleasedCsv]) -> list[Relation]:
    """Interrupted time series (``implementation_effect``): a measure's focus/reference events before and after
    go-live are the sums of the board series' counts over the first ``months_before`` and the remaining months
    (when the series spans exactly months_before + months_after, monthly or quarterly)."""
    out = []
    by_prefix: dict[str, dict[str, ReleasedCsv]] = {}
    for t in tables:
        by_prefix.setdefault(t.prefix, {})[t.name] = t
    for named in by_prefix.values():
        ie = named.get("implementation_effect")
        if ie is None or not {"measure_id", "months_before", "months_after"} <= set(ie.raw.columns):
            continue
        for i, mid in enumerate(ie.raw["measure_id"]):
            s = named.get(f"board_{mid}_series")
            if s is None or "period" not in s.raw or not s.raw["period"].str.fullmatch(r"\d{4}-\d{2}").all():
                continue
            months = pd.PeriodIndex(s.raw["period"], freq="M").asi8
            steps = np.diff(months)
            if not len(steps) or not (steps == steps[0]).all():
                continue
            step = int(steps[0])
            before = pd.to_numeric(ie.raw["months_before"].iloc[i], errors="coerce")
            after = pd.to_numeric(ie.raw["months_after"].iloc[i], errors="coerce")
            if not (np.isfinite(before) and np.isfinite(after)) or len(s.raw) * step != before + after \
                    or before % step:
                continue
            k = int(before // step)
            for who in ("focus", "reference"):
                col = f"{who}_count"
                if col not in s.raw:
                    continue
                for period, rows in (("pre", range(k)), ("post", range(k, len(s.raw)))):
                    target = f"{who}_events_{period}"
                    if target in ie.raw and len(rows):
                        out.append(Relation((ie.file, i, target), tuple((s.file, r, col) for r in rows),
                                            "ITS events before/after go-live = sum of the series' periods"))
    return out


def _gap_pooled_vs_change(tables: list[ReleasedCsv], all_prefix: str) -> list[Relation]:
    """The pooled gap table's focus detentions of a site = that site's gap_change focus detentions before +
    after go-live."""
    out = []
    by = {(t.prefix, t.name): t for t in tables}
    pooled = by.get((all_prefix, "gap_pooled"))
    if pooled is None or not {"label", "focus_detentions"} <= set(pooled.raw.columns):
        return out
    for i, site in enumerate(pooled.raw["label"]):
        ch = by.get((site, "gap_change"))
        if ch is None or not len(ch.raw) or not {"focus_detentions_pre", "focus_detentions_post"} <= set(ch.raw):
            continue
        out.append(Relation((pooled.file, i, "focus_detentions"),
                            ((ch.file, 0, "focus_detentions_pre"), (ch.file, 0, "focus_detentions_post")),
                            "pooled gap: site's detentions = before + after go-live"))
    return out


def _dq_failing(tables: list[ReleasedCsv]) -> list[Relation]:
    """Data quality: a table's records = records with ethnicity recorded + records failing the
    'ethnicity recorded' check (``failed_checks`` vs ``ethnicity_completeness`` of the same site)."""
    out = []
    by = {(t.prefix, t.name): t for t in tables}
    for (prefix, name), fc in by.items():
        comp = by.get((prefix, "ethnicity_completeness"))
        if name != "failed_checks" or comp is None or not {"table", "column", "check", "rows_failing"} <= set(fc.raw) \
                or not {"table", "recorded", "total"} <= set(comp.raw):
            continue
        rows = {tb: i for i, tb in enumerate(comp.raw["table"])}
        for i in range(len(fc.raw)):
            r = fc.raw.iloc[i]
            if r["column"] == "ethnic_category" and "recorded" in str(r["check"]).lower() and r["table"] in rows:
                j = rows[r["table"]]
                out.append(Relation((comp.file, j, "total"), ((comp.file, j, "recorded"), (fc.file, i, "rows_failing")),
                                    "data quality: records = recorded + failing"))
    return out


def release_relations(tables: list[ReleasedCsv], site_prefixes: list[str] | None = None,
                      all_prefix: str = "all") -> list[Relation]:
    """Every relation between released counts the attacker uses (see the module docstring)."""
    if site_prefixes is None:
        # sites = notebooks that published a cohort flow (a site that failed is in neither its own nor the
        # all-sites tables)
        site_prefixes = sorted({t.prefix for t in tables if t.prefix != all_prefix and t.name == "cohort_flow"})
    rels = []
    for t in tables:
        rels += _within_table(t)
    rels += _site_vs_all(tables, all_prefix, site_prefixes)
    rels += _flow_vs_table_one(tables)
    rels += _window_vs_series(tables)
    rels += _km_vs_counts(tables, all_prefix, site_prefixes)
    rels += _its_vs_series(tables)
    rels += _gap_pooled_vs_change(tables, all_prefix)
    rels += _dq_failing(tables)
    return [r for r in rels if r.parts]


# --------------------------------------------------------------------------------------------------
# the attack


def cell_interval(raw: str, policy: DisclosurePolicy, scheme: str = "base") -> tuple[float, float, str]:
    """(lowest, highest) true count consistent with a released cell, and what it was: rounded/zero/redacted.

    ``scheme="midpoint"``: a Kaplan-Meier count, midpoint-rounded to ``policy.km_rounding`` (ceil(x/b)b - b//2:
    a released v means ((k-1)b, kb] with k = (v + b//2) / b)."""
    s = str(raw).strip().replace(",", "")
    if s == REDACTED:
        return 1.0, math.inf, "redacted"
    try:
        v = float(s)
    except ValueError:
        return 0.0, math.inf, "unknown"
    if math.isnan(v):
        return 0.0, math.inf, "unknown"
    if v == 0:
        return 0.0, 0.0, "zero"
    if scheme == "midpoint":
        b = policy.km_rounding
        k = (v + b // 2) / b
        if b <= 1 or k != int(k):
            return v, v, "unrounded"
        return float((int(k) - 1) * b + 1), float(int(k) * b), "rounded"
    b = policy.rounding
    if b > 1 and v % b != 0:  # not rounded: the attacker takes it as the true count
        return v, v, "unrounded"
    # half-up rounding to b: x rounds to v when v - b/2 <= x < v + b/2
    lo = math.ceil(v - b / 2)
    hi = math.ceil(v + b / 2) - 1
    lo = max(lo, policy.threshold + 1)
    return float(lo), float(hi), ("rounded" if b > 1 else "exact")


def attack(tables: list[ReleasedCsv], relations: list[Relation], policy: DisclosurePolicy,
           max_rounds: int = 200) -> dict[Cell, tuple[float, float]]:
    """Bounds tightening over ``relations``: the true-value interval of every related cell after the attack."""
    by_file = {t.file: t for t in tables}
    lo: dict[Cell, float] = {}
    hi: dict[Cell, float] = {}
    kind: dict[Cell, str] = {}
    rels = [r for r in relations if not r.rounded_sum]
    cells = {c for r in rels for c in (r.total, *r.parts)}
    for c in cells:
        t = by_file.get(c[0])
        raw = t.raw[c[2]].iat[c[1]] if t is not None and c[2] in t.raw.columns and c[1] < len(t.raw) else ""
        lo[c], hi[c], kind[c] = cell_interval(raw, policy, cell_scheme(t))
    # a relation the released values cannot satisfy does not hold here (the attacker guessed wrong): drop it
    rels = [r for r in rels if sum(lo[p] for p in r.parts) <= hi[r.total] and sum(hi[p] for p in r.parts) >= lo[r.total]]
    for _ in range(max_rounds):
        changed = False
        for r in rels:
            plo = [lo[p] for p in r.parts]
            phi = [hi[p] for p in r.parts]
            slo, shi = sum(plo), sum(phi)
            # total within the parts' sum
            if slo > lo[r.total]:
                lo[r.total], changed = slo, True
            if shi < hi[r.total]:
                hi[r.total], changed = shi, True
            # each part within total minus the others
            for j, p in enumerate(r.parts):
                others_hi = shi - phi[j]
                others_lo = slo - plo[j]
                new_lo = lo[r.total] - others_hi if math.isfinite(others_hi) else -math.inf
                new_hi = hi[r.total] - others_lo if math.isfinite(hi[r.total]) else math.inf
                if new_lo > lo[p]:
                    lo[p], changed = new_lo, True
                if new_hi < hi[p]:
                    hi[p], changed = new_hi, True
        if not changed:
            break
    return {c: (lo[c], hi[c], kind[c]) for c in cells}


def cell_scheme(t: ReleasedCsv | None) -> str:
    """How a table's counts were rounded: ``midpoint`` (Kaplan-Meier tables) or ``base`` (every other table)."""
    return "midpoint" if t is not None and t.kind == "km_table" else "base"


def released_two_ways(tables: list[ReleasedCsv], relations: list[Relation], policy: DisclosurePolicy
                      ) -> list[tuple[Cell, Cell]]:
    """Pairs of cells that hold the same count (one-part relations) but were released as different values."""
    by_file = {t.file: t for t in tables}

    def raw(c):
        t = by_file.get(c[0])
        return str(t.raw[c[2]].iat[c[1]]) if t is not None and c[2] in t.raw.columns and c[1] < len(t.raw) else ""
    def scheme(c):
        return cell_scheme(by_file.get(c[0]))
    return [(r.total, r.parts[0]) for r in relations
            if len(r.parts) == 1 and not r.rounded_sum and scheme(r.total) == scheme(r.parts[0])
            and raw(r.total) != raw(r.parts[0])]


def recovered_cells(bounds: dict) -> list[tuple[Cell, float, str]]:
    """Cells released rounded or redacted whose true value the attack pins to one integer."""
    return sorted((c, lo, k) for c, (lo, hi, k) in bounds.items() if k in ("rounded", "redacted") and lo == hi)


def differencing_violations(release: Path, policy: DisclosurePolicy, add, site_prefixes=None,
                            tables: list[ReleasedCsv] | None = None) -> None:
    """Run :func:`attack` over :func:`release_relations`; flag each rounded/redacted count it pins down."""
    tables = load_release(release, ("table", "km_table")) if tables is None else tables
    rels = release_relations(tables, site_prefixes)
    for a, b in released_two_ways(tables, rels, policy):
        add(a[0], f"row {a[1] + 1}, column '{a[2]}'", "released_two_ways",
            f"the same count is released differently in {b[0]} row {b[1] + 1}, column '{b[2]}': "
            f"together they narrow it down")
    bounds = attack(tables, rels, policy)
    for (file, row, col), _value, k in recovered_cells(bounds):
        add(file, f"row {row + 1}, column '{col}'", "differencing",
            f"this {k} count is recoverable exactly by subtraction across the released tables "
            f"(totals, sites vs all sites, windows vs periods, cohort flow vs Table 1)")


_ABS_PATH = re.compile(r"(?<![\w.:/])(?:/(?:home|work|srv|data|mnt|var|tmp|Users|opt|secure|root)/[^\s'\"<>]+"
                       r"|[A-Za-z]:\\[^\s'\"<>]+)")


def path_violations(file: str, text: str, add, what: str = "line", first_line: int = 1) -> None:
    """Absolute server paths in released text."""
    for i, line in enumerate(text.splitlines(), first_line):
        if _ABS_PATH.search(line):
            add(file, f"{what} {i}", "absolute_path", "text names an absolute path on the server")


#: Table names that relations join across notebooks (sites against the all-sites notebook): Table 1
#: (:func:`_site_vs_all`, :func:`_km_vs_counts`, with Kaplan-Meier tables of any name) and the gap change
#: (:func:`_gap_pooled_vs_change`).
#: Every other relation joins tables of one notebook. Keep in step with :func:`release_relations`.
#: The cohort flow is there too: publishing one is what makes a notebook a site (:func:`release_relations`).
CROSS_NOTEBOOK_NAMES = frozenset({*SUMMABLE_ACROSS_SITES, "table_one", "gap_change", "cohort_flow"})


def relatable(prefix: str, owner: str, entry: dict, all_prefix: str = "all") -> bool:
    """Whether a table of notebook ``owner`` can share a relation with a table of notebook ``prefix``: the
    same notebook, the all-sites notebook, or a table joined across notebooks (:data:`CROSS_NOTEBOOK_NAMES`).
    Lets a publisher read a handful of another site's tables instead of the whole release (at 50 sites the
    whole release is ~1,300 tables, read before every table published)."""
    return (owner in (prefix, all_prefix) or entry.get("kind") == "km_table"
            or str(entry.get("name", "")) in CROSS_NOTEBOOK_NAMES)


def _with_earlier(release: Path, prefix: str, name: str, df: pd.DataFrame, entry: dict, memo: dict | None
                  ) -> tuple[list[ReleasedCsv], ReleasedCsv, list[Relation]]:
    """The tables already released that can relate to this one, the table as a candidate (``df``: its cells as
    they would be released) and every relation among them. The relations name cells, not values, so a
    ``memo`` kept for one table's release computes them once (:meth:`~pcref_eval.publish.Publisher.release_table`
    checks the table several times)."""
    file = entry["files"][0]
    candidate = ReleasedCsv(file, prefix, name, entry, df.astype(str).reset_index(drop=True))
    if memo is not None and "rels" in memo:
        return memo["earlier"], candidate, memo["rels"]
    earlier = [t for t in load_release(release, keep=lambda owner, e: relatable(prefix, owner, e), cache=True)
               if t.file != file]
    rels = release_relations([*earlier, candidate]) if earlier else []
    if memo is not None:
        memo.update(earlier=earlier, rels=rels)
    return earlier, candidate, rels


def linked_redactions(release: Path, prefix: str, name: str, df: pd.DataFrame, kinds: dict[str, str],
                      count_cols: list[str], memo: dict | None = None, entry: dict | None = None) -> np.ndarray:
    """Cells of a table about to be released that hold the same count as a cell an EARLIER table of this
    release redacted (one-part relations, e.g. Table 1's people = the cohort flow's last step, or the
    all-sites table of a one-site release): they must
    be redacted too, so the count has one released value ("one released value per cell").

    Returns a boolean array (rows x ``count_cols``).
    """
    out = np.zeros((len(df), len(count_cols)), dtype=bool)
    if not count_cols or not (release / "index").is_dir():
        return out
    file = f"tables/{prefix}_{name}.csv"
    entry = entry or {"name": name, "columns": kinds, "count_cols": count_cols, "files": [file]}
    earlier, _, rels = _with_earlier(release, prefix, name, df, entry, memo)
    if not earlier:
        return out
    col_pos = {c: j for j, c in enumerate(count_cols)}
    by_file = {t.file: t for t in earlier}
    for r in rels:
        if len(r.parts) != 1 or r.rounded_sum:
            continue
        for mine, other in ((r.total, r.parts[0]), (r.parts[0], r.total)):
            t = by_file.get(other[0])
            if mine[0] == file and t is not None and mine[2] in col_pos and t.redacted(other[2])[other[1]]:
                out[mine[1], col_pos[mine[2]]] = True
    return out


def attack_redactions(release: Path, prefix: str, name: str, released: pd.DataFrame, entry: dict,
                      policy: DisclosurePolicy, memo: dict | None = None) -> np.ndarray:
    """Count cells of a table about to be released (``released``: its CSV as it would be written) to redact as
    well, because with the tables this release already holds the attack (:func:`attack`) would pin a count it
    could not pin before: secondary suppression across tables.

    E.g. an all-sites Table 1 of 17 people released as 15, beside sites released as 10, [REDACTED] and 10:
    the sites' counts are at least 8, 1 and 8, so the total is at least 17, and 15 (13-17) pins all four.
    The cells returned are this table's newly pinned cells, or else its cells in a relation with a newly
    pinned cell; the caller redacts them and checks again. Returns a boolean array (rows x ``count_cols``).
    """
    count_cols = list(entry.get("count_cols") or [])
    out = np.zeros((len(released), len(count_cols)), dtype=bool)
    if not count_cols or not (release / "index").is_dir():
        return out
    file = entry["files"][0]
    earlier, candidate, rels = _with_earlier(release, prefix, name, released, entry, memo)
    if not earlier:
        return out
    rels = [r for r in rels if not r.rounded_sum]
    if not any(_across_tables(r, file) for r in rels):
        # within the table its own secondary suppression holds; one-part relations are linked_redactions'
        return out
    rels = _connected(rels, file)  # the attack's bounds move only along relations: the rest cannot change
    mine_rels = [r for r in rels if file in _files(r)]
    after = {c for c, _, _ in recovered_cells(attack([*earlier, candidate], rels, policy))}
    if not after:
        return out
    before = {c for c, _, _ in recovered_cells(attack(earlier, [r for r in rels if file not in _files(r)], policy))}
    new = after - before
    col_pos = {c: j for j, c in enumerate(count_cols)}
    for _, row, col in _own_cells_behind(new, mine_rels, file):
        if col in col_pos:
            out[row, col_pos[col]] = True
    return out


def _own_cells_behind(pinned: set[Cell], rels: list[Relation], file: str) -> list[Cell]:
    """The cells of ``file`` to suppress for newly ``pinned`` cells: those pinned in ``file`` itself, else its
    cells in a relation with a pinned cell (sorted)."""
    mine = sorted(c for c in pinned if c[0] == file)
    if pinned and not mine:
        mine = sorted({c for r in rels if {r.total, *r.parts} & pinned for c in (r.total, *r.parts) if c[0] == file})
    return mine


def _files(r: Relation) -> set[str]:
    return {r.total[0], *(p[0] for p in r.parts)}


def _across_tables(r: Relation, file: str) -> bool:
    """A relation of several parts that joins ``file`` to another table."""
    files = _files(r)
    return len(r.parts) > 1 and file in files and len(files) > 1


def _connected(rels: list[Relation], file: str) -> list[Relation]:
    """The relations linked, through shared cells, to a cell of ``file`` (its connected component)."""
    by_cell: dict[Cell, list[int]] = {}
    for i, r in enumerate(rels):
        for c in (r.total, *r.parts):
            by_cell.setdefault(c, []).append(i)
    seen: set[int] = set()
    todo = [i for i, r in enumerate(rels) if file in _files(r)]
    while todo:
        i = todo.pop()
        if i in seen:
            continue
        seen.add(i)
        for c in (rels[i].total, *rels[i].parts):
            todo.extend(j for j in by_cell[c] if j not in seen)
    return [rels[i] for i in sorted(seen)]


def withheld_km_groups(release: Path, prefix: str, name: str, km: pd.DataFrame, policy: DisclosurePolicy,
                       max_groups: int = 10) -> list[str]:
    """Groups of a Kaplan-Meier table about to be released to withhold (secondary suppression), so that its
    midpoint-rounded people, together with this notebook's earlier tables (Table 1, cohort flow), pin no count.

    The attack (:func:`attack` over :func:`release_relations`) is run on the notebook's tables with and
    without the KM table; while the KM table pins a cell that was not pinned without it, the group of a
    pinned KM cell (else of a KM cell in a relation with a newly pinned cell) is withheld.
    """
    file = f"tables/{prefix}_{name}.csv"
    earlier = [t for t in load_release(release, ("table", "km_table"), prefix) if t.prefix == prefix and t.file != file]
    if km.empty or not earlier:
        return []
    base = {c for c, _, _ in recovered_cells(attack(earlier, release_relations(earlier, []), policy))}
    entry = {"kind": "km_table", "files": [file], "count_cols": ["n_risk", "n_event", "n_censored", "cum_event",
                                                                  "cum_censored"]}
    dropped: list[str] = []
    while len(dropped) < max_groups:
        part = km[~km["group"].astype(str).isin(dropped)].reset_index(drop=True)
        if part.empty:
            break
        cand = ReleasedCsv(file, prefix, name, entry, part.astype(str), "km_table")
        tables = [*earlier, cand]
        rels = release_relations(tables, [])
        new = {c for c, _, _ in recovered_cells(attack(tables, rels, policy))} - base
        if not new:
            break
        mine = _own_cells_behind(new, rels, file)
        if not mine:
            break
        dropped.append(str(part.iloc[mine[0][1]]["group"]))
    return dropped
