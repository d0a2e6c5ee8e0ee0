"""Publishing from a notebook: every table and figure passes disclosure control on its way out.

A notebook never writes to ``release/`` itself. It hands aggregate tables to
:class:`Publisher`, which keeps the unrounded table in ``restricted/``, applies the run's
:class:`~pcref_eval.disclosure.DisclosurePolicy` (primary redaction, secondary suppression against
totals, rounding, totals recomputed from rounded parts, derived values blanked), writes the
released CSV to ``release/tables/``, records it with its caption in ``release/index/<prefix>.json``
and ``release/captions/<prefix>.md``, and displays only the released version (so executed
notebooks and the reports built from them carry controlled numbers only).

Released CSVs write a redacted cell as ``[REDACTED]`` and a value that is simply not available
(e.g. a rate for a group with no population) as an empty cell. The DataFrame returned by
:meth:`Publisher.table` is numeric, with ``NaN``/``<NA>`` for both.

Displayed outputs carry ``{"pcref": {...}}`` metadata (kind, name, caption, section) that the report
builder uses to number tables and figures and to give images their alternative text.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pcref_eval.disclosure import (REDACTED, DisclosurePolicy, Summary, Totals, apply_policy, detect_totals,
                                   spec_sources, spec_to_dict)
from pcref_eval.schema import IDENTIFIER_COLUMNS
from pcref_eval.style import render_figure

#: How a value that is not available (not redacted) is shown in displayed tables.
NOT_AVAILABLE = "–"
#: Resolution of the figure images embedded in notebooks and reports (files for papers are 300 dpi).
REPORT_DPI = 110
#: Rounds of secondary suppression across tables in :meth:`Publisher.release_table` (:func:`~pcref_eval.release_attack.attack_redactions`).
MAX_SECONDARY_ROUNDS = 10
#: Display width (CSS pixels) per inch of figure size.
DISPLAY_PX_PER_INCH = 100


@dataclass(frozen=True)
class Aggregate:
    """An aggregate table with EVERY column declared in exactly one of these fields (else it is refused):

    - ``counts``: counts of people or events. Redacted in 1..threshold, rounded, secondary suppression.
    - ``denominators``: populations, people at risk, person-years, bed days: controlled like counts
      (rounded; redacted when small) and the inputs from which derived values are recomputed.
    - ``derived``: ``{column: spec}``. A spec from :mod:`pcref_eval.disclosure` names the FORMULA, and the
      value is RECOMPUTED from the released (rounded, redacted) counts: ``Proportion(num, den)``
      (percentage; ``interval="lower"/"upper"`` Wilson), ``Rate(num, den, per, years)`` (``interval``:
      exact Poisson/Byar's), ``RateRatio(num, den, label_col, reference)``, ``Ratio(num, den, scale)``,
      ``Summary(size)`` (a group mean/SD/median: withheld below ``policy.summary_min`` people).
      The old form ``{column: [source columns]}`` still works: the value is released as computed and
      blanked where a source is redacted; the release check flags it where it implies an unrounded count.
    - ``model``: model outputs (hazard ratios, CIs, p-values, ITS/DiD/pooled estimates), released as
      computed. A list: blanked in a row where any count of that row is redacted; a dict
      ``{column: [count columns it rests on]}``: blanked where one of those is redacted.
    - ``labels``: group, site, measure, period, time, years, ...: descriptive, never facts about people.
    - ``totals`` (optional): a total row and/or total columns; without it the publisher detects a row
      labelled "Total"/"All" whose counts equal the sum of the other rows. Totals are released as the sum
      of their parts' released values.

    A column not declared in any of these is an error naming the table and the column (a text column
    could carry "12 (3%)" as easily as a number column could).
    """

    data: pd.DataFrame
    counts: list[str]
    derived: dict = field(default_factory=dict)
    totals: Totals | None = None
    denominators: list[str] = field(default_factory=list)
    model: list[str] | dict = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def model_sources(self) -> dict[str, list[str] | None]:
        """Each model column and the counts it rests on (None: every count of its row)."""
        if isinstance(self.model, dict):
            return {c: list(v) if v is not None else None for c, v in self.model.items()}
        return {c: None for c in self.model}

    def declared(self, name: str = "table") -> dict[str, str]:
        """``{column: kind}`` for every column; raises :class:`PublishError` naming table and column when a
        column is declared twice, declared but absent, refers to an undeclared source, or (numeric) undeclared."""
        from pcref_eval.disclosure import spec_sources
        kinds: dict[str, str] = {}
        groups = [("counts", self.counts), ("denominators", self.denominators), ("derived", list(self.derived)),
                  ("model", list(self.model_sources())), ("labels", self.labels)]
        for kind, cols in groups:
            for c in cols:
                if c in kinds:
                    raise PublishError(f"table '{name}': column '{c}' is declared as both {kinds[c]} and {kind}")
                kinds[c] = kind
        columns = [str(c) for c in self.data.columns]
        absent = [c for c in kinds if c not in columns]
        if absent:
            raise PublishError(f"table '{name}': declared column(s) {absent} not in the table (has {columns})")
        base = set(self.counts) | set(self.denominators)
        earlier: set[str] = set()
        for col, spec in self.derived.items():
            bad = [s for s in spec_sources(spec) if s not in base and s not in earlier]
            if bad:
                raise PublishError(f"table '{name}': derived column '{col}' rests on {bad}, which are not declared "
                                   f"as counts, denominators or earlier derived columns")
            earlier.add(col)
        for col, srcs in self.model_sources().items():
            bad = [s for s in (srcs or []) if s not in base]
            if bad:
                raise PublishError(f"table '{name}': model column '{col}' rests on {bad}, which are not declared "
                                   f"as counts or denominators")
        undeclared = [c for c in columns if c not in kinds]
        if undeclared:
            raise PublishError(f"table '{name}': column(s) {undeclared} not declared as counts, denominators, "
                               f"derived, model or labels: an undeclared column cannot be released")
        return kinds


@dataclass
class ReleasedTable:
    """A table as released: numeric data, redaction mask (True = redacted), display HTML, CSV path, stem."""

    data: pd.DataFrame
    mask: pd.DataFrame
    html: str
    path: Path
    stem: str


class PublishError(ValueError):
    """An attempt to publish something that may not leave the secure environment."""


def _cell_number() -> int | None:
    """The IPython execution count of the running cell (None outside IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return None if shell is None else shell.execution_count


class ReleasedFrame(pd.DataFrame):
    """What :meth:`Publisher.table` / :meth:`Publisher.km_table` return in a notebook: the released table as an
    ordinary DataFrame, except that Jupyter does not display it again in the cell that published it (the
    publisher already showed it, formatted). Shown in a later cell, it displays the released (formatted)
    table. Operations on it give plain DataFrames."""

    _metadata = ["_pcref_html", "_pcref_cell"]

    def _ipython_display_(self):
        from IPython.display import HTML, display
        if self._pcref_cell is not None and self._pcref_cell == _cell_number():
            return  # already shown by the publisher in this cell
        display(HTML(self._pcref_html) if self._pcref_html else pd.DataFrame(self))


class ReleasedFiles(list):
    """What :meth:`Publisher.figure` returns in a notebook: the released files (a list of paths), not echoed
    by Jupyter in the cell that published the figure."""

    def __init__(self, paths, cell: int | None):
        super().__init__(paths)
        self._pcref_cell = cell

    def _ipython_display_(self):
        if self._pcref_cell is not None and self._pcref_cell == _cell_number():
            return
        print([str(p) for p in self])


def _shown_once(data: pd.DataFrame, html_text: str | None) -> ReleasedFrame:
    out = ReleasedFrame(data)
    out._pcref_html, out._pcref_cell = html_text, _cell_number()
    return out


@dataclass
class Publisher:
    """Writes disclosure-controlled tables and figures for one notebook (``prefix`` = site id or 'all')."""

    run_dir: Path
    prefix: str
    policy: DisclosurePolicy = field(default_factory=DisclosurePolicy)
    display: bool = True
    entries: list[dict] = field(default_factory=list)

    def __post_init__(self):
        self.run_dir = Path(self.run_dir)
        for sub in ("release/tables", "release/figures", "release/index", "release/captions", "restricted/tables"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        index = self.run_dir / "release" / "index" / f"{self.prefix}.json"
        if not self.entries and index.exists():  # a second publisher of the same prefix adds to the index
            try:
                self.entries = list(json.loads(index.read_text(encoding="utf-8")).get("entries", []))
            except (ValueError, OSError, AttributeError):
                self.entries = []

    def table(self, agg: Aggregate, name: str, caption: str, section: str = "Results",
              decimals: int = 2) -> pd.DataFrame:
        """Release an aggregate table: counts controlled, derived values blanked where a source is redacted.

        Returns the released table (numeric; redacted and unavailable cells are missing values); when
        displaying, as a :class:`ReleasedFrame` so a Jupyter cell shows the table once.
        """
        rt = self.release_table(agg, name, caption, section, decimals)
        if self.display:
            from IPython.display import HTML, display
            display(HTML(rt.html), metadata={"pcref": {"kind": "table", "name": rt.stem, "caption": caption,
                                                       "section": section}})
            return _shown_once(rt.data, rt.html)
        return rt.data

    def release_table(self, agg: Aggregate, name: str, caption: str, section: str = "Results",
                      decimals: int = 2) -> "ReleasedTable":
        """Like :meth:`table` without displaying: the released data, its redaction mask, HTML and CSV path."""
        df = agg.data
        check_no_identifiers(df, name)
        kinds = agg.declared(name)
        count_cols = [*agg.counts, *agg.denominators]
        totals = agg.totals or detect_totals(df, count_cols)
        stem = f"{self.prefix}_{name}"
        df.to_csv(self.run_dir / "restricted" / "tables" / f"{stem}.csv", index=False)
        from pcref_eval.release_attack import attack_redactions, linked_redactions
        release = self.run_dir / "release"
        entry = {"name": name, "columns": kinds, "count_cols": count_cols, "files": [f"tables/{stem}.csv"],
                 "totals": totals.as_dict() if totals else None}
        memo: dict = {}  # the relations with the tables already released, computed once for this table
        initial = linked_redactions(release, self.prefix, name, df, kinds, count_cols, memo, entry)
        for _ in range(MAX_SECONDARY_ROUNDS):  # secondary suppression across tables, until nothing new is pinned
            released, mask = control_aggregate(agg, self.policy, totals, initial=initial, decimals=decimals)
            released = _round_floats(released, count_cols, decimals)
            more = attack_redactions(release, self.prefix, name, released_csv(released, mask), entry, self.policy,
                                     memo)
            if not (more & ~initial).any():
                break
            initial = initial | more
        else:
            raise RuntimeError(f"{stem}: tables already released still pin a count after "
                               f"{MAX_SECONDARY_ROUNDS} rounds of secondary suppression")
        path = self.run_dir / "release" / "tables" / f"{stem}.csv"
        released_csv(released, mask).to_csv(path, index=False, lineterminator="\n")
        self._record("table", name, caption, section, [path], count_cols=count_cols,
                     derived=sorted(agg.derived), totals=totals.as_dict() if totals else None,
                     redacted_marker=REDACTED, columns=kinds, decimals=decimals,
                     formulas={c: spec_to_dict(v) for c, v in agg.derived.items()},
                     model_sources=agg.model_sources())
        return ReleasedTable(released, mask, table_html(released, mask, caption, count_cols, decimals, stem),
                             path, stem)

    def test_result(self, name: str, caption: str, section: str = "Results", decimals: int = 4,
                    **statistics) -> pd.DataFrame:
        """Release a statistical test's results (e.g. ``chi_square=..., df=..., p=...``) as a one-row table of
        model outputs, not displayed: a caption or sentence that quotes them then quotes a released value
        (the release check refuses numbers in documents that no released table holds)."""
        # whole-number statistics (degrees of freedom) stay whole numbers, as the text prints them
        row = {k: int(v) if isinstance(v, (int, np.integer)) else float(v) for k, v in statistics.items()}
        agg = Aggregate(pd.DataFrame([row]), counts=[],
                        model=list(statistics))
        return self.release_table(agg, name, caption, section, decimals).data

    def figure(self, fig, name: str, caption: str, section: str = "Results") -> list[Path]:
        """Release a figure drawn from released (controlled) numbers: SVG + 300-dpi PNG with a caption.

        The notebook (and so the report) shows a ``REPORT_DPI`` preview downsampled from the 300-dpi
        raster: embedding the 300-dpi files made reports 25 MB and slow to convert (measured: 88
        figures, 160 s), and drawing the figure a second time at a lower dpi cost as much as the first.
        """
        stem = f"{self.prefix}_{name}"
        rendered = render_figure(fig, self.run_dir / "release" / "figures" / stem,
                                 preview_dpi=REPORT_DPI if self.display else None)
        self._record("figure", name, caption, section, rendered.paths)
        if self.display:
            from IPython.display import Image, Markdown, display
            width = int(round(fig.get_size_inches()[0] * DISPLAY_PX_PER_INCH))
            meta = {"pcref": {"kind": "figure", "name": stem, "caption": caption, "section": section}}
            display(Image(data=rendered.preview_png, format="png", width=width), metadata=meta)
            display(Markdown(f"*Figure: {caption}*"),
                    metadata={"pcref": {"kind": "figure-caption", "name": stem, "caption": caption}})
        import matplotlib.pyplot as plt
        plt.close(fig)
        return ReleasedFiles(rendered.paths, _cell_number()) if self.display else rendered.paths

    def note(self, markdown: str) -> None:
        """Show narrative text (built only from released numbers)."""
        if self.display:
            from IPython.display import Markdown, display
            display(Markdown(markdown), metadata={"pcref": {"kind": "note"}})

    def km_table(self, km: pd.DataFrame, name: str, caption: str, section: str = "Survival",
                 landmarks=(0.5, 1, 2, 3)) -> pd.DataFrame:
        """Release a Kaplan-Meier table with OpenSAFELY midpoint-6 rounding (curve re-derived from rounded counts).

        Event steps are grouped so none describes fewer than the policy threshold and the tail is cut
        where fewer remain at risk (:func:`pcref_eval.survival.release.km_release_table`). The full
        released table goes to release/tables; the notebook shows it at ``landmarks`` only.
        """
        from pcref_eval.survival.release import km_release_table

        stem = f"{self.prefix}_{name}"
        km.to_csv(self.run_dir / "restricted" / "tables" / f"{stem}.csv", index=False)
        released = km_release_table(km, threshold=self.policy.threshold, rounding=self.policy.km_rounding)
        from pcref_eval.release_attack import withheld_km_groups
        withheld = withheld_km_groups(self.run_dir / "release", self.prefix, name, released.round(6), self.policy)
        if withheld:  # its people, rounded a second way, would pin a count of an earlier table: not released
            released = released[~released["group"].astype(str).isin(withheld)].reset_index(drop=True)
        path = self.run_dir / "release" / "tables" / f"{stem}.csv"
        released.round(6).to_csv(path, index=False, lineterminator="\n")
        self._record("km_table", name, caption, section, [path], rounding="midpoint6",
                     count_cols=["n_risk", "n_event", "n_censored", "cum_event", "cum_censored"],
                     threshold=self.policy.threshold)
        if self.display:
            from IPython.display import HTML, display
            summary = km_landmarks(released, landmarks)
            display(HTML(km_html(summary, f"{caption} (at selected times; midpoint-6 rounded counts)", stem)),
                    metadata={"pcref": {"kind": "table", "name": stem, "caption": caption, "section": section}})
            return _shown_once(released, None)
        return released

    def _record(self, kind, name, caption, section, paths, **extra) -> None:
        rel = [str(p.relative_to(self.run_dir / "release")) for p in paths]
        self.entries = [e for e in self.entries if not (e["kind"] == kind and e["name"] == name)]
        self.entries.append({"kind": kind, "name": name, "caption": caption, "section": section,
                             "files": rel, **extra})
        index = self.run_dir / "release" / "index" / f"{self.prefix}.json"
        index.write_text(release_index_json(self.prefix, self.policy.__dict__, self.entries))
        self._write_captions()

    def _write_captions(self) -> None:
        """``release/captions/<prefix>.md``: every released file with its caption, for authors of papers."""
        lines = [f"# Tables and figures released by '{self.prefix}'", "",
                 f"Disclosure control: {self.policy.name} ({self.policy.describe()}).", ""]
        for e in self.entries:
            files = ", ".join(f"`{f}`" for f in e["files"])
            lines.append(f"- **{e['kind'].capitalize()}** ({e['section']}): {e['caption']}  \n  files: {files}")
        (self.run_dir / "release" / "captions" / f"{self.prefix}.md").write_text("\n".join(lines) + "\n")


def release_index_json(prefix: str, policy: dict, entries: list[dict]) -> str:
    """The release index of one notebook as JSON text, one entry per line.

    Rewritten at every release, so it is encoded by the json module's C encoder (no ``indent``, which
    falls back to the pure-Python encoder: 0.5 s a site notebook, measured); still one entry per line.
    """
    head = json.dumps({"prefix": prefix, "policy": policy})[:-1]
    body = ",\n".join(json.dumps(e) for e in entries)
    return f'{head}, "entries": [\n{body}\n]}}\n'


def control_aggregate(agg: Aggregate, policy: DisclosurePolicy, totals: Totals | None = None, initial=None,
                      decimals: int | None = None):
    """Released values and redaction mask of a declared aggregate.

    Counts and denominators: :func:`~pcref_eval.disclosure.apply_policy` (primary and secondary
    suppression, rounding, totals as sums of released parts). Derived values declared with a formula
    are recomputed from the released counts; those declared by sources only, and model outputs, are
    blanked where a count they rest on is redacted; summaries (means, SDs) are withheld for groups
    below ``policy.summary_min``. ``initial``: count cells to redact anyway (redacted in an earlier table).
    """
    df = agg.data
    count_cols = [*agg.counts, *agg.denominators]
    blank_by = {c: [s for s in spec_sources(v) if s in count_cols] for c, v in agg.derived.items()}
    released, mask = apply_policy(df, policy, count_cols, blank_by, totals=totals, return_mask=True,
                                  initial=initial)
    for col, spec in agg.derived.items():
        if isinstance(spec, Summary):
            small = pd.to_numeric(df[spec.size], errors="coerce").fillna(0).to_numpy() < policy.summary_min
            withheld = small & df[col].notna().to_numpy()
            released[col] = released[col].where(~small)
            mask[col] = mask[col].to_numpy() | withheld
        elif hasattr(spec, "compute"):
            values = spec.compute(released)
            if hasattr(spec, "source_rows"):  # a ratio to a reference row: blank when that row's counts are
                ref = spec.source_rows(df)
                red = mask[spec.sources].any(axis=1).to_numpy()
                ref_red = np.where(ref >= 0, red[np.clip(ref, 0, None)], False)
                values = np.where(ref_red, np.nan, values)
                mask[col] = mask[col].to_numpy() | (ref_red & df[col].notna().to_numpy())
            had = df[col].notna().to_numpy()
            if hasattr(spec, "keep_rows"):  # rows holding group means: kept as computed for large enough groups
                keep = spec.keep_rows(df)
                size = pd.to_numeric(df[spec.numerator], errors="coerce").fillna(0).to_numpy()
                src_red = mask[spec.numerator].to_numpy(bool)
                kept = np.where(size >= policy.summary_min, pd.to_numeric(df[col], errors="coerce"), np.nan)
                values = np.where(keep, np.where(src_red, np.nan, kept), values)
                mask[col] = mask[col].to_numpy() | (keep & had & (size < policy.summary_min))
            released[col] = pd.Series(np.where(had, values, np.nan), index=df.index, dtype=float)
            if decimals is not None:  # as released, so values derived from it are recomputable from the CSV
                released[col] = released[col].round(decimals)
    red_counts = mask[count_cols].to_numpy(bool) if count_cols else np.zeros((len(df), 0), bool)
    for col, sources in agg.model_sources().items():
        if sources is None:
            m = red_counts.any(axis=1)
        else:
            m = mask[sources].to_numpy(bool).any(axis=1) if sources else np.zeros(len(df), bool)
        released[col] = released[col].where(~m)
        mask[col] = mask[col].to_numpy() | (m & df[col].notna().to_numpy())
    return released, mask


def _round_floats(df: pd.DataFrame, count_cols: list[str], decimals: int) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        if col not in count_cols and pd.api.types.is_float_dtype(out[col]):
            out[col] = out[col].round(decimals)
    return out


def released_csv(released: pd.DataFrame, mask: pd.DataFrame) -> pd.DataFrame:
    """The released table as written to CSV: redacted cells say ``[REDACTED]``, unavailable ones are empty."""
    out = released.astype(object).where(released.notna(), None)
    for col in released.columns:
        m = mask[col].to_numpy(bool)
        if m.any():
            out.loc[m, col] = REDACTED
    return out


def _fmt(value, is_count: bool, decimals: int) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return NOT_AVAILABLE
    if is_count:
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{value:,.{decimals}f}"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def header_label(col) -> str:
    """A column name as shown in displayed tables (underscores as spaces)."""
    return str(col).replace("_", " ")


def table_html(released: pd.DataFrame, mask: pd.DataFrame, caption: str, count_cols: list[str], decimals: int,
               stem: str) -> str:
    """A released table as HTML: ``<caption>``, numbers formatted, ``[REDACTED]`` marked.

    ``data-pcref-counts`` names the count columns, so the release check knows which cells to test.
    """
    counts = set(count_cols)
    head = "".join(f"<th>{html.escape(header_label(c))}</th>" for c in released.columns)
    columns = list(released.columns)
    numeric = [c in counts or pd.api.types.is_numeric_dtype(released[c]) for c in columns]
    values = [released[c].tolist() for c in columns]
    redacted = [mask[c].to_numpy(bool) for c in columns]
    rows = []
    for i in range(len(released)):
        cells = []
        for j, col in enumerate(columns):
            if redacted[j][i]:
                cells.append(f"<td class='redacted'>{REDACTED}</td>")
            else:
                text = html.escape(_fmt(values[j][i], col in counts, decimals))
                cells.append(f"<td class='num'>{text}</td>" if numeric[j] else f"<td>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    data_counts = html.escape(",".join(count_cols), quote=True)
    return (f"<table class='pcref-table' data-pcref-table='{html.escape(stem, quote=True)}' "
            f"data-pcref-counts='{data_counts}'>"
            f"<caption><strong>Table:</strong> {html.escape(caption)}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def check_no_identifiers(df: pd.DataFrame, name: str) -> None:
    """Refuse a table with an identifier-like column (person id, NHS number, date of birth, postcode, LSOA)."""
    from pcref_eval.release_check import is_identifier_column
    bad = sorted(str(c) for c in df.columns if str(c).lower() in IDENTIFIER_COLUMNS or is_identifier_column(c))
    if bad:
        raise PublishError(f"table '{name}' has identifier column(s) {bad}: only aggregate tables may be released")


def km_landmarks(released: pd.DataFrame, times) -> pd.DataFrame:
    """Released KM table read at landmark times: group, time, n_risk, surv, lower, upper (step function)."""
    rows = []
    for group, part in released.groupby("group", sort=False):
        part = part.sort_values("time")
        for t in times:
            before = part[part["time"] <= t]
            after = part[part["time"] >= t]
            if after.empty:
                continue  # beyond the released tail: not shown
            last = before.iloc[-1] if not before.empty else None
            rows.append({"group": group, "time": t, "n_risk": int(after.iloc[0]["n_risk"]),
                         "surv": 1.0 if last is None else last["surv"],
                         "lower": np.nan if last is None else last["lower"],
                         "upper": np.nan if last is None else last["upper"]})
    return pd.DataFrame(rows)


def km_html(summary: pd.DataFrame, caption: str, stem: str) -> str:
    """A released Kaplan-Meier landmark table as HTML, marked as midpoint-6 rounded for the release check."""
    mask = pd.DataFrame(False, index=summary.index, columns=summary.columns)
    html_table = table_html(summary, mask, caption, ["n_risk"] if "n_risk" in summary else [], 3, stem)
    return html_table.replace("<table class='pcref-table'", "<table class='pcref-table' data-pcref-rounding='midpoint6'", 1)


def html_escape(text: str) -> str:
    return html.escape(str(text))
