"""Publishing from a notebook: every table and figure passes disclosure control on its way out.

A notebook never writes to ``release/`` itself. It hands aggregate tables to
:class:`Publisher`, which keeps the unrounded table in ``restricted/``, applies the run's
:class:`~pcref_eval.disclosure.DisclosurePolicy`, writes the released CSV and its caption to
``release/``, records it in ``release/index/<prefix>.json``, and displays only the released version
(so executed notebooks and the reports built from them carry controlled numbers only).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pcref_eval.disclosure import DisclosurePolicy, apply_policy
from pcref_eval.schema import IDENTIFIER_COLUMNS
from pcref_eval.style import save_figure


@dataclass(frozen=True)
class Aggregate:
    """An aggregate table plus which columns are counts of people/events and what derives from them."""

    data: pd.DataFrame
    counts: list[str]
    derived: dict[str, list[str]] = field(default_factory=dict)


class PublishError(ValueError):
    """An attempt to publish something that may not leave the secure environment."""


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
        for sub in ("release/tables", "release/figures", "release/index", "restricted/tables"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)

    def table(self, agg: Aggregate, name: str, caption: str, section: str = "Results",
              decimals: int = 2) -> pd.DataFrame:
        """Release an aggregate table: counts controlled, derived values blanked where a source is redacted."""
        df, count_cols, derived = agg.data, agg.counts, agg.derived
        check_no_identifiers(df, name)
        stem = f"{self.prefix}_{name}"
        df.to_csv(self.run_dir / "restricted" / "tables" / f"{stem}.csv", index=False)
        released = apply_policy(df, self.policy, count_cols, derived)
        released = released.round(decimals)
        path = self.run_dir / "release" / "tables" / f"{stem}.csv"
        released.to_csv(path, index=False, lineterminator="\n")
        self._record("table", name, caption, section, [path], count_cols=count_cols,
                     derived=sorted((derived or {}).keys()))
        self._show_table(released, caption)
        return released

    def figure(self, fig, name: str, caption: str, section: str = "Results") -> list[Path]:
        """Release a figure drawn from released (controlled) numbers: SVG + 300-dpi PNG with a caption."""
        paths = save_figure(fig, self.run_dir / "release" / "figures" / f"{self.prefix}_{name}")
        self._record("figure", name, caption, section, paths)
        if self.display:
            from IPython.display import Markdown, display
            display(fig)
            display(Markdown(f"*Figure: {caption}*"))
        import matplotlib.pyplot as plt
        plt.close(fig)
        return paths

    def note(self, markdown: str) -> None:
        """Show narrative text (built only from released numbers)."""
        if self.display:
            from IPython.display import Markdown, display
            display(Markdown(markdown))

    def _record(self, kind, name, caption, section, paths, **extra) -> None:
        rel = [str(p.relative_to(self.run_dir / "release")) for p in paths]
        self.entries.append({"kind": kind, "name": name, "caption": caption, "section": section,
                             "files": rel, **extra})
        index = self.run_dir / "release" / "index" / f"{self.prefix}.json"
        index.write_text(json.dumps({"prefix": self.prefix, "policy": self.policy.__dict__,
                                     "entries": self.entries}, indent=2) + "\n")

    def _show_table(self, released: pd.DataFrame, caption: str) -> None:
        if not self.display:
            return
        from IPython.display import HTML, display
        html = released.to_html(index=False, na_rep="[REDACTED]", classes="pcref-table", border=0,
                                float_format=lambda v: f"{v:,.2f}")
        display(HTML(f"<p class='caption'><strong>Table:</strong> {caption}</p>{html}"))


def check_no_identifiers(df: pd.DataFrame, name: str) -> None:
    """Refuse a table with an identifier-like column (person id, NHS number, date of birth, postcode, LSOA)."""
    bad = sorted(c for c in df.columns if str(c).lower() in IDENTIFIER_COLUMNS)
    if bad:
        raise PublishError(f"table '{name}' has identifier column(s) {bad}: only aggregate tables may be released")
