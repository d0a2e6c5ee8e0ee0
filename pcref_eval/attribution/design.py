"""The staggered-adoption design: who is compared with whom, in calendar time.

Time origin is the start of the study window; time is measured in days on the calendar (not since
referral), so everything that changes on the calendar for every site (national trend of the gap,
COVID-like shocks, MHA reform, national recording changes) is common to the sites that are live and
the sites that are not yet live, and can be separated from PCREF.

- :func:`analysis_cohort`: the PCREF focus groups and the reference group of a cohort, with entry
  (index referral) and exit on the calendar.
- :class:`StaggeredDesign`: the monthly grid, calendar quarters, and each site's go-live month
  ("adoption cohort": sites going live in the same month share one). Sites whose go-live is after
  the last month are never live within the window.
- :func:`cells`: focus and reference first detentions and person-days at risk by site x month.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from pcref_eval.cohort import STATUS_DETENTION
from pcref_eval.ethnicity import PCREF_FOCUS_GROUPS

NEVER = 10**6  # go-live month index of a site never live within the window


@dataclass(frozen=True)
class StaggeredDesign:
    """Monthly calendar grid from ``start`` to ``end`` and each site's go-live month index."""

    start: date
    end: date  # last day of follow-up (the extract date)
    go_live: dict  # site_id -> date

    @property
    def month_starts(self) -> pd.DatetimeIndex:
        """First day of every calendar month from the window start to the end."""
        return pd.date_range(pd.Timestamp(self.start).to_period("M").start_time, pd.Timestamp(self.end), freq="MS")

    @property
    def month_days(self) -> np.ndarray:
        """Month boundaries in days since the window start (length months + 1; the last is the end + 1)."""
        starts = (self.month_starts - pd.Timestamp(self.start)).days.to_numpy().astype(float)
        return np.append(starts, (pd.Timestamp(self.end) - pd.Timestamp(self.start)).days + 1.0)

    @property
    def n_months(self) -> int:
        return len(self.month_starts)

    def go_live_month(self, site_id: str) -> int:
        """Index of the month containing the site's go-live (:data:`NEVER` if after the last month)."""
        g = pd.Timestamp(self.go_live[site_id]).to_period("M")
        k = (g - self.month_starts[0].to_period("M")).n
        return int(k) if k < self.n_months else NEVER

    @property
    def n_quarters(self) -> int:
        """Calendar quarters (3-month blocks from the window start) in the grid."""
        return int(self.quarter_of_month(np.array([self.n_months - 1]))[0]) + 1

    def quarter_of_month(self, month: np.ndarray) -> np.ndarray:
        """Calendar quarter index (3-month blocks from the window start) of month indices."""
        return np.asarray(month) // 3

    def quarter_label(self, q: int) -> str:
        return self.month_starts[3 * q].strftime("%Y-%m")

    def adoption_cohort(self, site_id: str) -> str:
        """Label of the site's adoption cohort (its go-live month), or "never" within the window."""
        k = self.go_live_month(site_id)
        return "never" if k == NEVER else self.month_starts[k].strftime("%Y-%m")


def design_from_sites(go_live: dict, start: date, end: date) -> StaggeredDesign:
    """A design from go-live dates, the window start and the last follow-up day."""
    return StaggeredDesign(start=start, end=end, go_live=dict(go_live))


def analysis_cohort(cohort: pd.DataFrame, reference: str, start: date) -> pd.DataFrame:
    """PCREF focus groups (focus = 1) and ``reference`` (focus = 0) with calendar entry/exit in days.

    Columns: site_id, focus, age, sex, imd_decile, entry, exit, event (first detention; death and
    discharge censor). Entry is the index referral (days since ``start``), exit entry + duration.
    """
    g = cohort["ethnic_group"].astype(str)
    keep = g.isin(PCREF_FOCUS_GROUPS) | (g == reference)
    df = cohort.loc[keep]
    entry = (pd.to_datetime(df["index_date"]) - pd.Timestamp(start)).dt.days.to_numpy().astype(float)
    return pd.DataFrame({
        "site_id": df["site_id"].astype(str).to_numpy(),
        "focus": g[keep].isin(PCREF_FOCUS_GROUPS).to_numpy().astype(np.int8),
        "age": pd.to_numeric(df["age"]).to_numpy(float),
        "sex": df["sex"].astype("string").to_numpy(),
        "imd_decile": pd.to_numeric(df["imd_decile"], errors="coerce").to_numpy(float),
        "entry": entry,
        "exit": entry + df["duration_days"].to_numpy(float),
        "event": (df["status"] == STATUS_DETENTION).to_numpy().astype(np.int8),
    })


def month_overlap(entry: np.ndarray, exit: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Days of each [entry, exit) interval in each month (rows x months)."""
    lo, hi = bounds[:-1][None, :], bounds[1:][None, :]
    return np.clip(np.minimum(exit[:, None], hi) - np.maximum(entry[:, None], lo), 0.0, None)


def cells(ac: pd.DataFrame, design: StaggeredDesign, chunk: int = 100_000) -> pd.DataFrame:
    """First detentions and person-days at risk by site x month x group (focus, reference).

    Columns: site_id, month, focus_events, reference_events, focus_days, reference_days. An event on
    day t belongs to the month containing t (the end of its interval).
    """
    bounds = design.month_days
    m = design.n_months
    out = []
    for site, part in ac.groupby("site_id", sort=True):
        acc = {k: np.zeros(m) for k in ("focus_events", "reference_events", "focus_days", "reference_days")}
        for a in range(0, len(part), chunk):
            p = part.iloc[a:a + chunk]
            entry, exit_ = p["entry"].to_numpy(), p["exit"].to_numpy()
            days = month_overlap(entry, exit_, bounds)
            f = p["focus"].to_numpy() == 1
            acc["focus_days"] += days[f].sum(axis=0)
            acc["reference_days"] += days[~f].sum(axis=0)
            ev = p["event"].to_numpy() == 1
            month = np.clip(np.searchsorted(bounds, exit_[ev], side="left") - 1, 0, m - 1)
            acc["focus_events"] += np.bincount(month[f[ev]], minlength=m)
            acc["reference_events"] += np.bincount(month[~f[ev]], minlength=m)
        out.append(pd.DataFrame({"site_id": site, "month": np.arange(m), **acc}))
    return pd.concat(out, ignore_index=True)


def control_quarters(design: StaggeredDesign, sites: list[str]) -> np.ndarray:
    """Calendar quarters in which at least one site is not yet live (the comparison exists)."""
    first_month = 3 * np.arange(design.n_quarters)
    live_all = np.ones(design.n_quarters, dtype=bool)
    for s in sites:
        live_all &= first_month >= design.go_live_month(s)
    return np.flatnonzero(~live_all)


def first_all_live_quarter(design: StaggeredDesign, sites: list[str]) -> int | None:
    """The first calendar quarter in which every site is live (every later one is too), or None."""
    keep = control_quarters(design, sites)
    dropped = sorted(set(range(design.n_quarters)) - set(keep.tolist()))
    return dropped[0] if dropped else None


def comparison_event_months(design: StaggeredDesign, sites: list[str]) -> dict[str, int]:
    """Per site live in the window, the first event month (months since its go-live) with no comparison left:
    the start of the first quarter in which every site is live (the estimators censor there), else the end.

    With a never-live site every quarter has a comparison and the limit is past the last month."""
    first = first_all_live_quarter(design, sites)
    end_month = design.n_months if first is None else 3 * first
    return {s: end_month - design.go_live_month(s) for s in sites if design.go_live_month(s) != NEVER}
