"""Statistical disclosure control for everything written to a run's ``release/`` folder.

Policies (:class:`DisclosurePolicy`):

- ``opensafely`` (default, the strictest common rule): redact any count of 1 to 7 (zero describes
  nobody and is kept), then round the rest to the nearest 5.
- ``nhse_mha``: NHS England's MHA statistics rule: counts below 5 (1 to 4) suppressed, the rest
  rounded to the nearest 5.

What :func:`apply_policy` does to a table (the :class:`~pcref_eval.publish.Publisher` calls it for
every released table, so a notebook author cannot forget it):

1. **Primary redaction**: every count in 1..threshold is redacted (and any count whose rounded value
   would fall in 1..threshold, which matters only for policies whose rounding base exceeds the threshold).
2. **Secondary suppression** (tables with totals, see :class:`Totals`): in every "line" of a
   table that has a total (the rows adding up to a total row, or the columns adding up to a total
   column), the redacted parts must be at least two, describe more than ``threshold`` people
   together, and leave a difference (total minus visible parts) outside 1..threshold; otherwise the smallest non-zero visible part is redacted too (repeated until stable;
   if no part is left to redact, the total itself is redacted). So no redacted cell can be worked
   out by subtracting the visible parts from the total.
3. **Rounding**: the remaining counts are rounded to the nearest ``rounding`` (half up).
4. **Totals recomputed from rounded parts**: a total is the sum of its parts' *rounded* values
   (redacted parts included, so totals stay true to the whole population up to rounding); a
   total whose own or recomputed count is in 1..threshold is redacted (and the lines re-checked). The grand total of a two-way table is the
   same whichever way it is summed.
5. **Derived values**: rates, ratios, proportions and interval limits derived from a redacted
   count (``derived`` maps each to its source counts) are blanked.

Survival (Kaplan-Meier style) outputs use "midpoint 6" rounding of cumulative counts instead:
:func:`round_midpoint` is the rounding primitive and :func:`midpoint6_survival_table` (also importable
as ``km_release_table``) the survival helper, implemented in :mod:`pcref_eval.survival.release`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

#: How a redacted cell is written in released CSV and HTML tables.
REDACTED = "[REDACTED]"
#: Row labels recognised as a total row when a table does not declare its totals.
TOTAL_LABELS = {"total", "all", "overall", "all groups", "all people", "all sites", "all ethnic groups"}
POLICY_DEFAULTS = {"opensafely": {"threshold": 7, "rounding": 5, "km_rounding": 6, "summary_min": 10},
                   "nhse_mha": {"threshold": 4, "rounding": 5, "km_rounding": 6, "summary_min": 10},
                   "strict": {"threshold": 10, "rounding": 10, "km_rounding": 10, "summary_min": 20}}
#: Other accepted names of the policies above.
POLICY_ALIASES = {"nhse": "nhse_mha"}


def policy_name(name: str) -> str:
    """Canonical policy name (``nhse`` -> ``nhse_mha``); a clear error for an unknown one."""
    key = POLICY_ALIASES.get(str(name), str(name))
    if key not in POLICY_DEFAULTS:
        raise ValueError(f"unknown disclosure policy {name!r}: use one of "
                         f"{sorted([*POLICY_DEFAULTS, *POLICY_ALIASES])}")
    return key


@dataclass(frozen=True)
class DisclosurePolicy:
    """Redact counts in 1..threshold, then round the rest to the nearest ``rounding``.

    ``km_rounding``: base of the midpoint rounding of Kaplan-Meier cumulative counts (6: OpenSAFELY).
    ``summary_min``: group means, SDs and medians are withheld for groups with fewer people.
    """

    name: str = "opensafely"
    threshold: int = 7
    rounding: int = 5
    km_rounding: int = 6
    summary_min: int = 10

    def __post_init__(self):
        if self.threshold < 0 or self.rounding < 1 or self.km_rounding < 1:
            raise ValueError(f"disclosure policy needs threshold >= 0 and rounding >= 1, got {self}")

    @classmethod
    def named(cls, name: str) -> "DisclosurePolicy":
        """A policy by name: ``opensafely``, ``nhse_mha`` (or ``nhse``), ``strict``."""
        key = policy_name(name)
        return cls(key, **POLICY_DEFAULTS[key])

    @classmethod
    def opensafely(cls) -> "DisclosurePolicy":
        """Redact 1-7, round to 5, midpoint-6 for Kaplan-Meier (OpenSAFELY)."""
        return cls.named("opensafely")

    @classmethod
    def nhse_mha(cls) -> "DisclosurePolicy":
        """Suppress 1-4 (below 5), round to 5 (NHS England MHA statistics)."""
        return cls.named("nhse_mha")

    @classmethod
    def strict(cls) -> "DisclosurePolicy":
        """Redact 1-10, round to 10, midpoint-10 for Kaplan-Meier, summaries only for groups of 20+."""
        return cls.named("strict")

    @classmethod
    def from_config(cls, cfg) -> "DisclosurePolicy":
        """Build from :class:`~pcref_eval.config.DisclosureConfig` (threshold/rounding override the named policy)."""
        base = cls.named(cfg.policy)
        rounding = getattr(cfg, "rounding", None)
        return cls(name=base.name, threshold=cfg.threshold if cfg.threshold is not None else base.threshold,
                   rounding=rounding if rounding is not None else base.rounding,
                   km_rounding=base.km_rounding, summary_min=base.summary_min)

    def describe(self) -> str:
        """One sentence for methods sections and report footers."""
        return (f"counts of 1 to {self.threshold} are redacted, the rest are rounded to the nearest "
                f"{self.rounding}")

    def is_disclosive(self, counts) -> np.ndarray:
        """True where a count describes between 1 and ``threshold`` people."""
        c = np.asarray(pd.to_numeric(pd.Series(counts), errors="coerce"), dtype=float)
        return (c >= 1) & (c <= self.threshold)

    def round(self, counts) -> np.ndarray:
        """Round to the nearest ``rounding`` (half up), without redaction."""
        c = np.asarray(pd.to_numeric(pd.Series(counts), errors="coerce"), dtype=float)
        return np.floor(c / self.rounding + 0.5) * self.rounding

    def control_counts(self, counts: pd.Series) -> pd.Series:
        """Redacted (NaN) where the count or its rounded value is disclosive, else rounded to ``rounding`` (half up)."""
        c = pd.to_numeric(pd.Series(counts), errors="coerce").astype(float)
        rounded = pd.Series(self.round(c), index=c.index)
        return rounded.where(~(self.is_disclosive(c) | self.is_disclosive(rounded)))


@dataclass(frozen=True)
class Totals:
    """Which cells of a table are totals of which others.

    - ``label_col`` / ``total_label``: the row whose ``label_col`` equals ``total_label`` is the
      total of the other rows (within each block of ``by`` columns, e.g. one total row per site).
    - ``columns``: maps a total count column to the count columns it adds up
      (e.g. ``{"people": ["female", "male", "other_sex"]}``).
    """

    label_col: str | None = None
    total_label: str | None = None
    by: tuple[str, ...] = ()
    columns: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def detect_totals(df: pd.DataFrame, count_cols: list[str]) -> Totals | None:
    """Find undeclared totals: a row labelled like a total whose counts equal the other rows' sums, and/or
    a count column named like a total ("All", "Total") that equals the sum of the other count columns.

    Only totals whose arithmetic checks out are used (a row merely called "All" that is not the sum of
    the others is left alone).
    """
    if not count_cols or len(df) < 1:
        return None
    counts = df[count_cols].apply(pd.to_numeric, errors="coerce").astype(float)
    label_col = total_label = None
    if len(df) >= 2:
        for col in df.columns:
            if col in count_cols or pd.api.types.is_numeric_dtype(df[col]):
                continue
            labels = df[col].astype(str).str.strip().str.lower()
            hits = labels.isin(TOTAL_LABELS).to_numpy()
            if hits.sum() != 1:
                continue
            total = counts[hits].iloc[0]
            rest = counts[~hits].sum(min_count=1)
            if np.allclose(total.fillna(0).to_numpy(float), rest.fillna(0).to_numpy(float)):
                label_col, total_label = col, str(df.loc[hits, col].iloc[0])
                break
    columns = {}
    for col in count_cols:
        if str(col).strip().lower() not in TOTAL_LABELS:
            continue
        others = [c for c in count_cols if c != col]
        if len(others) >= 2 and np.allclose(counts[col].fillna(0).to_numpy(),
                                            counts[others].fillna(0).sum(axis=1).to_numpy()):
            columns[col] = others
            break
    if label_col is None and not columns:
        return None
    return Totals(label_col=label_col, total_label=total_label, columns=columns)


def _lines(df: pd.DataFrame, count_cols: list[str], totals: Totals | None) -> list[tuple[tuple, list[tuple]]]:
    """Every (total cell, part cells) relation in the table; a cell is (row position, column)."""
    if totals is None:
        return []
    lines = []
    positions = np.arange(len(df))
    if totals.label_col is not None:
        is_total = (df[totals.label_col].astype(str) == str(totals.total_label)).to_numpy()
        if totals.by:
            keys = df[list(totals.by)].astype(str).agg("\x1f".join, axis=1).to_numpy()
        else:
            keys = np.zeros(len(df), dtype=int)
        for key in pd.unique(keys):
            block = keys == key
            total_rows = positions[block & is_total]
            part_rows = positions[block & ~is_total]
            for t in total_rows:
                for c in count_cols:
                    lines.append(((t, c), [(r, c) for r in part_rows]))
    for total_col, parts in totals.columns.items():
        for r in positions:
            lines.append(((r, total_col), [(r, p) for p in parts]))
    return lines


def suppression_mask(df: pd.DataFrame, policy: DisclosurePolicy, count_cols: list[str],
                     totals: Totals | None = None, initial: pd.DataFrame | np.ndarray | None = None) -> pd.DataFrame:
    """Boolean frame over ``count_cols``: True where a cell is redacted (primary plus secondary).

    Primary: the count, or its rounded value, is in 1..threshold. Secondary (for each line with a
    visible total): the redacted non-zero parts must be at least two, describe more than ``threshold``
    people together, and their rounded values must not add up to 1..threshold (the difference between
    the total and the visible parts); otherwise the smallest visible non-zero part is redacted too,
    or the total when no part is left. ``initial`` adds cells that must be redacted anyway.
    """
    values = df[count_cols].apply(pd.to_numeric, errors="coerce").astype(float)
    v = values.to_numpy()
    r = released_values(df, policy, count_cols, totals).to_numpy(float)  # rounded, totals recomputed
    m = policy.is_disclosive(v.ravel()).reshape(v.shape) | policy.is_disclosive(r.ravel()).reshape(v.shape)
    if initial is not None:
        m |= np.asarray(initial, dtype=bool)
    lines = _lines(df, count_cols, totals)
    col_pos = {c: i for i, c in enumerate(count_cols)}
    unknown = sorted({c for (_, tc), parts in lines for c in [tc, *(p for _, p in parts)] if c not in col_pos})
    if unknown:
        raise ValueError(f"totals refer to column(s) {unknown} that are not declared as counts")
    changed = bool(lines)
    while changed:
        changed = False
        for (tr, tc), parts in lines:
            if m[tr, col_pos[tc]]:
                continue
            cells = [(i, col_pos[c]) for i, c in parts]
            vals = np.nan_to_num(np.array([v[i, j] for i, j in cells], dtype=float))
            hidden = np.array([m[i, j] for i, j in cells], dtype=bool) & (vals > 0)
            if not hidden.any():
                continue
            residual = sum(r[i, j] for (i, j), h in zip(cells, hidden) if h)
            if hidden.sum() >= 2 and vals[hidden].sum() > policy.threshold and not policy.is_disclosive([residual])[0]:
                continue
            visible = ~np.array([m[i, j] for i, j in cells], dtype=bool) & (vals > 0)
            if visible.any():
                pick = np.flatnonzero(visible)[np.argmin(vals[visible])]
                i, j = cells[pick]
            else:
                i, j = tr, col_pos[tc]
            m[i, j] = True
            changed = True
    return pd.DataFrame(m, index=df.index, columns=count_cols)


def released_values(df: pd.DataFrame, policy: DisclosurePolicy, count_cols: list[str],
                    totals: Totals | None = None) -> pd.DataFrame:
    """Every count rounded, with totals recomputed from the rounded parts (before any redaction)."""
    rounded = pd.DataFrame({c: policy.round(df[c]) for c in count_cols}, index=df.index)
    if totals is None:
        return rounded
    full = pd.concat([df.drop(columns=count_cols), rounded], axis=1)[df.columns]
    return recompute_totals(full, count_cols, totals)[count_cols]


def recompute_totals(rounded: pd.DataFrame, count_cols: list[str], totals: Totals | None) -> pd.DataFrame:
    """Replace total cells by the sum of their parts' rounded values (column totals first, then rows)."""
    out = rounded.copy()
    if totals is None:
        return out
    for total_col, parts in totals.columns.items():
        out[total_col] = out[parts].sum(axis=1, min_count=1)
    if totals.label_col is not None:
        is_total = (out[totals.label_col].astype(str) == str(totals.total_label)).to_numpy()
        keys = (out[list(totals.by)].astype(str).agg("\x1f".join, axis=1).to_numpy() if totals.by
                else np.zeros(len(out), dtype=int))
        for key in pd.unique(keys):
            block = keys == key
            sums = out.loc[block & ~is_total, count_cols].sum(min_count=1)
            for idx in out.index[block & is_total]:
                out.loc[idx, count_cols] = sums.to_numpy()
    return out


def apply_policy(df: pd.DataFrame, policy: DisclosurePolicy, count_cols: list[str],
                 derived: dict[str, list[str]] | None = None, totals: Totals | None = None,
                 return_mask: bool = False, initial: pd.DataFrame | np.ndarray | None = None):
    """Apply ``policy`` to ``count_cols``; blank each derived column where any of its source counts is redacted.

    ``derived`` maps a column (rate, ratio, proportion, CI limit) to the count columns it is computed from.
    ``totals`` declares total rows/columns (secondary suppression and totals recomputed from rounded
    parts). Released counts are nullable integers (``Int64``; redacted = ``<NA>``).
    With ``return_mask=True`` also returns a boolean frame (all columns) that is True where a cell
    was redacted, so writers can show ``[REDACTED]`` rather than a blank that looks like missing data.
    ``initial`` (over ``count_cols``): cells to redact anyway (the same count redacted in an earlier table).
    """
    derived = derived or {}
    missing = [c for c in [*count_cols, *derived, *(s for v in derived.values() for s in v)] if c not in df.columns]
    if missing:
        raise KeyError(f"apply_policy: column(s) {sorted(set(missing))} not in table (has {list(df.columns)})")
    undeclared = [s for v in derived.values() for s in v if s not in count_cols]
    if undeclared:
        raise ValueError(f"apply_policy: derived columns depend on {sorted(set(undeclared))}, which are not "
                         f"declared as counts")
    out = df.copy()
    if not count_cols:
        return (out, pd.DataFrame(False, index=df.index, columns=df.columns)) if return_mask else out
    rounded = released_values(df, policy, count_cols, totals)
    red = suppression_mask(df, policy, count_cols, totals, initial=initial)
    for col in count_cols:
        out[col] = rounded[col].where(~red[col]).round().astype("Int64")
    mask = pd.DataFrame(False, index=df.index, columns=df.columns)
    mask[count_cols] = red.to_numpy()
    for col, sources in derived.items():
        m = red[sources].any(axis=1).to_numpy()
        had_value = df[col].notna().to_numpy()
        out[col] = out[col].where(~m)
        mask[col] = (m & had_value) | mask[col].to_numpy()  # a value that never existed is "not available"
    return (out, mask) if return_mask else out


def round_midpoint(counts, base: int = 6) -> np.ndarray:
    """"Midpoint" rounding (OpenSAFELY): 0 stays 0; otherwise ``ceil(x / base) * base - floor(base / 2)``.

    With ``base=6``: 1-6 -> 3, 7-12 -> 9, 13-18 -> 15. Applied to cumulative event and censoring
    counts of a survival table, from which the curve is re-derived.
    """
    c = np.asarray(pd.to_numeric(pd.Series(counts), errors="coerce"), dtype=float)
    return np.where(c == 0, 0.0, np.ceil(c / base) * base - (base // 2))


def midpoint6_survival_table(km_table: pd.DataFrame, policy: DisclosurePolicy | None = None, **kwargs) -> pd.DataFrame:
    """Kaplan-Meier table released with midpoint-6 rounding of cumulative counts, curve re-derived.

    Re-exported from :func:`pcref_eval.survival.release.km_release_table` (event steps grouped to at
    least ``policy.threshold`` events, tail cut, cumulative counts midpoint-6 rounded, S(t), Greenwood
    SE and CI recomputed from the rounded counts). :meth:`pcref_eval.publish.Publisher.km_table` uses it.
    """
    from pcref_eval.survival.release import km_release_table
    policy = policy or DisclosurePolicy()
    kwargs.setdefault("threshold", policy.threshold)
    kwargs.setdefault("rounding", 6)
    return km_release_table(km_table, **kwargs)


def __getattr__(name: str):
    if name == "km_release_table":  # lazy: the survival package is heavier than this module
        from pcref_eval.survival.release import km_release_table
        return km_release_table
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------------------------
# Derived values: how the publisher (and the release check) recompute them from the RELEASED counts.
#
# ``Aggregate.derived`` maps a column to either a list of source columns (old form: the value is
# blanked where a source is redacted, released as computed otherwise; the release check cannot
# recompute it) or to one of the specs below (new form: the value is RECOMPUTED from the released,
# rounded and redacted, numerator and denominator, so it gives nothing back that the counts do not).
# ``Summary`` marks a group mean/SD/median: released as computed, withheld when the group is smaller
# than ``policy.summary_min``.


def _col(df: pd.DataFrame, name: str) -> np.ndarray:
    return pd.to_numeric(df[name], errors="coerce").astype(float).to_numpy()


@dataclass(frozen=True)
class _NumeratorOverDenominator:
    """A value recomputed from one released numerator and one released denominator column."""

    numerator: str
    denominator: str

    @property
    def sources(self) -> list[str]:
        return [self.numerator, self.denominator]


@dataclass(frozen=True)
class Ratio(_NumeratorOverDenominator):
    """``scale * numerator / denominator`` (a percentage with ``scale=100``; NaN where the denominator is 0)."""

    scale: float = 1.0

    def compute(self, df: pd.DataFrame) -> np.ndarray:
        x, n = _col(df, self.numerator), _col(df, self.denominator)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(n > 0, self.scale * x / n, np.nan)


@dataclass(frozen=True)
class Proportion(_NumeratorOverDenominator):
    """``numerator / denominator`` x ``scale`` (100: percentage); ``interval`` 'lower'/'upper' = Wilson limit."""

    scale: float = 100.0
    interval: str | None = None
    conf: float = 0.95

    def compute(self, df: pd.DataFrame) -> np.ndarray:
        from pcref_eval.rates import wilson_limits
        x, n = _col(df, self.numerator), _col(df, self.denominator)
        ok = (n > 0) & (x <= n)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.interval is None:
                v = x / n
            else:
                lo, hi = wilson_limits(x, n, self.conf)
                v = lo if self.interval == "lower" else hi
        return np.where(ok, self.scale * v, np.nan)


@dataclass(frozen=True)
class Rate(_NumeratorOverDenominator):
    """Crude rate ``numerator / (denominator x years) x per``; ``interval`` 'lower'/'upper': exact Poisson
    limits below 10 events, Byar's from 10 (PHEindicatormethods)."""

    per: float = 100_000
    years: float = 1.0
    interval: str | None = None
    conf: float = 0.95

    def compute(self, df: pd.DataFrame) -> np.ndarray:
        from pcref_eval.rates import poisson_limits
        x, n = _col(df, self.numerator), _col(df, self.denominator) * self.years
        ok = (n > 0) & ~np.isnan(x)
        v = np.full(len(x), np.nan)
        if ok.any():
            if self.interval is None:
                v[ok] = x[ok]
            else:
                lo, hi, _ = poisson_limits(x[ok], self.conf)
                v[ok] = lo if self.interval == "lower" else hi
            v[ok] = v[ok] / n[ok] * self.per
        return v


@dataclass(frozen=True)
class RateRatio:
    """Rate (numerator/denominator) of each row over that of the row where ``label_col == reference``;
    ``interval`` 'lower'/'upper' as :func:`pcref_eval.rates.rate_ratio` (exact conditional below 10
    events, else log-normal). ``by`` columns: one reference row per block (e.g. per site or month)."""

    numerator: str
    denominator: str
    label_col: str
    reference: str
    interval: str | None = None
    conf: float = 0.95
    by: tuple[str, ...] = ()

    @property
    def sources(self) -> list[str]:
        return [self.numerator, self.denominator]

    def compute(self, df: pd.DataFrame) -> np.ndarray:
        from pcref_eval.rates import rate_ratio
        x, n = _col(df, self.numerator), _col(df, self.denominator)
        keys = (df[list(self.by)].astype(str).agg("\x1f".join, axis=1).to_numpy() if self.by
                else np.zeros(len(df), dtype=int))
        is_ref = (df[self.label_col].astype(str) == str(self.reference)).to_numpy()
        out = np.full(len(df), np.nan)
        for key in pd.unique(keys):
            block = keys == key
            ref = np.flatnonzero(block & is_ref)
            if len(ref) != 1:
                continue
            x2, n2 = x[ref[0]], n[ref[0]]
            rows = np.flatnonzero(block & (n > 0) & ~np.isnan(x))
            if not (n2 > 0 and x2 > 0) or not len(rows):
                continue
            rr = rate_ratio(x[rows], n[rows], x2, n2, conf=self.conf)
            out[rows] = rr[{None: "value", "lower": "lower", "upper": "upper"}[self.interval]].to_numpy(float)
        return out

    def source_rows(self, df: pd.DataFrame) -> np.ndarray:
        """Row position of each row's reference row (-1 where none): a redacted reference blanks the row."""
        keys = (df[list(self.by)].astype(str).agg("\x1f".join, axis=1).to_numpy() if self.by
                else np.zeros(len(df), dtype=int))
        is_ref = (df[self.label_col].astype(str) == str(self.reference)).to_numpy()
        out = np.full(len(df), -1)
        for key in pd.unique(keys):
            block = keys == key
            ref = np.flatnonzero(block & is_ref)
            if len(ref) == 1:
                out[block] = ref[0]
        return out


@dataclass(frozen=True)
class Summary:
    """A group's mean, SD or median (not a count): released as computed, withheld where the group size
    (column ``size``) is below ``policy.summary_min`` or ``size`` is redacted."""

    size: str

    @property
    def sources(self) -> list[str]:
        return [self.size]


@dataclass(frozen=True)
class MeasureStat:
    """A board measure's statistic, row by row (rows of one table mix measure kinds).

    ``kinds``/``pers``: each row's measure kind and multiplier. ``stat``: "value", "lower", "upper"
    (rates: exact Poisson/Byar's; proportions: Wilson) or "ratio", "ratio_lower", "ratio_upper" against
    the row where ``label_col == reference`` within the same ``by`` block (rate ratio for rates, risk
    ratio for proportions). ``mean_change`` rows are group means: kept as computed when ``numerator``
    (the number of pairs) is at least ``policy.summary_min`` (:meth:`keep_rows`).
    """

    numerator: str
    denominator: str
    kinds: tuple[str, ...]
    pers: tuple[float, ...]
    stat: str = "value"
    label_col: str | None = None
    reference: str | None = None
    by: tuple[str, ...] = ()
    conf: float = 0.95

    @property
    def sources(self) -> list[str]:
        return [self.numerator, self.denominator]

    def keep_rows(self, df: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.kinds) == "mean_change"

    def compute(self, df: pd.DataFrame) -> np.ndarray:
        from pcref_eval.rates import poisson_limits, rate_ratio, risk_ratio, wilson_limits
        x, n = _col(df, self.numerator), _col(df, self.denominator)
        kinds, per = np.asarray(self.kinds), np.asarray(self.pers, dtype=float)
        is_rate = np.isin(kinds, ["rate_per_population", "rate_per_bed_days"])
        is_prop = kinds == "proportion"
        out = np.full(len(df), np.nan)
        ok = (n > 0) & ~np.isnan(x)
        if self.stat in ("value", "lower", "upper"):
            with np.errstate(divide="ignore", invalid="ignore"):
                if self.stat == "value":
                    sel = ok & (is_rate | is_prop)
                    out[sel] = x[sel] / n[sel] * per[sel]
                else:
                    sel = ok & is_rate
                    if sel.any():
                        lo, hi, _ = poisson_limits(x[sel], self.conf)
                        out[sel] = (lo if self.stat == "lower" else hi) / n[sel] * per[sel]
                    sel = ok & is_prop & (x <= n)
                    if sel.any():
                        lo, hi = wilson_limits(x[sel], n[sel], self.conf)
                        out[sel] = (lo if self.stat == "lower" else hi) * per[sel]
            return out
        keys = (df[list(self.by)].astype(str).agg("\x1f".join, axis=1).to_numpy() if self.by
                else np.zeros(len(df), dtype=int))
        is_ref = (df[self.label_col].astype(str) == str(self.reference)).to_numpy()
        part = {"ratio": "value", "ratio_lower": "lower", "ratio_upper": "upper"}[self.stat]
        for key in pd.unique(keys):
            block = keys == key
            ref = np.flatnonzero(block & is_ref)
            if len(ref) != 1 or not (n[ref[0]] > 0 and x[ref[0]] > 0):
                continue
            rx, rn = x[ref[0]], n[ref[0]]
            for mask_kind, fn in ((is_rate, rate_ratio), (is_prop, risk_ratio)):
                rows = np.flatnonzero(block & mask_kind & ok & ~is_ref)
                if len(rows):
                    with np.errstate(divide="ignore", invalid="ignore"):
                        out[rows] = fn(x[rows], n[rows], rx, rn, conf=self.conf)[part].to_numpy(float)
            if self.stat == "ratio" and (is_rate[ref[0]] or is_prop[ref[0]]):
                out[ref[0]] = 1.0
        return out

    def source_rows(self, df: pd.DataFrame) -> np.ndarray:
        if self.stat.startswith("ratio"):
            return RateRatio(self.numerator, self.denominator, self.label_col, self.reference,
                             by=self.by).source_rows(df)
        return np.full(len(df), -1)


@dataclass(frozen=True)
class MeasureComparison:
    """Focus vs reference in the same row (wide series): rate ratio for rates, risk ratio for proportions,
    ``stat`` "ratio", "ratio_lower", "ratio_upper"; ``mean_change`` rows (differences of means) are kept
    as computed when ``numerator`` is at least ``policy.summary_min``."""

    numerator: str
    denominator: str
    ref_numerator: str
    ref_denominator: str
    kinds: tuple[str, ...]
    stat: str = "ratio"
    conf: float = 0.95

    @property
    def sources(self) -> list[str]:
        return [self.numerator, self.denominator, self.ref_numerator, self.ref_denominator]

    def keep_rows(self, df: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.kinds) == "mean_change"

    def compute(self, df: pd.DataFrame) -> np.ndarray:
        from pcref_eval.rates import rate_ratio, risk_ratio
        x, n = _col(df, self.numerator), _col(df, self.denominator)
        rx, rn = _col(df, self.ref_numerator), _col(df, self.ref_denominator)
        kinds = np.asarray(self.kinds)
        out = np.full(len(df), np.nan)
        ok = (n > 0) & (rn > 0) & (rx > 0) & ~np.isnan(x)
        part = {"ratio": "value", "ratio_lower": "lower", "ratio_upper": "upper"}[self.stat]
        for sel, fn in ((np.isin(kinds, ["rate_per_population", "rate_per_bed_days"]), rate_ratio),
                        (kinds == "proportion", risk_ratio)):
            rows = np.flatnonzero(sel & ok)
            if len(rows):
                with np.errstate(divide="ignore", invalid="ignore"):
                    out[rows] = fn(x[rows], n[rows], rx[rows], rn[rows], conf=self.conf)[part].to_numpy(float)
        return out


@dataclass(frozen=True)
class Apportioned:
    """``shares[i]`` x the sum of the released ``count`` column: a model quantity that must add up to a
    count (log-rank expected events add up to the observed total), scaled to the released total so the
    sum gives back nothing the released counts do not."""

    count: str
    shares: tuple[float, ...]

    @property
    def sources(self) -> list[str]:
        return [self.count]

    def compute(self, df: pd.DataFrame) -> np.ndarray:
        total = np.nansum(_col(df, self.count))
        return np.asarray(self.shares, dtype=float) * total


DerivedSpec = Apportioned | Ratio | Proportion | Rate | RateRatio | Summary | MeasureStat | MeasureComparison
SPEC_TYPES = {cls.__name__: cls for cls in (Apportioned, Ratio, Proportion, Rate, RateRatio, Summary, MeasureStat,
                                            MeasureComparison)}


def spec_sources(spec) -> list[str]:
    """Source columns of a derived declaration (a spec or the old list form)."""
    return list(spec.sources) if hasattr(spec, "sources") else list(spec)


def spec_to_dict(spec) -> dict:
    """JSON form of a derived declaration, recorded in ``release/index`` for the release check."""
    if hasattr(spec, "sources"):
        d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(spec).items()}
        return {"type": type(spec).__name__, **d}
    return {"type": "sources", "sources": list(spec)}


def spec_from_dict(d: dict):
    """Inverse of :func:`spec_to_dict` (the list form comes back as a list)."""
    d = dict(d)
    kind = d.pop("type")
    if kind == "sources":
        return list(d["sources"])
    cls = SPEC_TYPES[kind]
    for key in ("by", "kinds", "pers", "shares"):
        if key in d:
            d[key] = tuple(d[key])
    return cls(**d)
