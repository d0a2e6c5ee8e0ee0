"""A triple difference in hazards: Cox model on calendar time, stratified by site.

Time to first detention is modelled on the calendar (days since the window start), with delayed
entry at each person's index referral (counting-process rows (entry, exit]) and one baseline
hazard per site (strata), so everything that moves every group's detention hazard at a site, on
any calendar day, is absorbed. Among people in the PCREF focus groups and the reference group::

    log h_i(t) = log h0_site(t) + a_site * focus_i                      site's own gap
                 + g_quarter(t) * focus_i                               national gap path, shocks
                 + sum_{c,b} d_{c,b} * focus_i * live_{c,b}(t)          PCREF, by adoption cohort c
                 + age, sex, deprivation                                and event-time bin b

``g_quarter`` (one term per calendar quarter) is identified by sites that are not yet live
(not-yet-live pilots and comparison trusts) and sites never live in the window; ``d_{c,b}`` is
the change in the focus/reference hazard ratio of sites going live in month ``c``, in event-time
bin ``b`` after go-live (quarters 0-3 of the first year, then year 1 and years 2+), relative to
what the comparison sites show for the same calendar quarters (the interaction-weighted idea of
Sun and Abraham (2021) applied to hazards: one term per cohort and event-time bin). The headline
effect is their average weighted by focus-group person-days at risk in each cell, with a
delta-method SE (:func:`pcref_eval.attribution.aggregate.weighted_effect`).

Why the first year is in quarters: a constant term per cohort and *year* cannot follow an effect
that builds up during the first year; the deviations of already-live sites from their year-0 term
are then partly absorbed by the focus x quarter terms, so live sites act partly as controls. In
the simulation study (docs/simulation-study.md) this moved the estimate towards the null by 0.033
± 0.004 on the log scale when effects ramp up over 12 months (same replicates, year vs quarterly
bins); with quarterly bins the bias was -0.004 ± 0.018. The bins must be at least as fine as the
effect's build-up (``first_year_months`` sets them).

Assumptions: parallel trends in the log focus/reference hazard ratio between sites (absent
PCREF, each site's gap would have moved like the comparison sites' gap, quarter by quarter), no
anticipation before go-live, and proportional hazards within the quarter. Quarters in which every
site is live have no comparison and are left out (follow-up censored at their start).

Thin data: an event-time cell without focus events is merged into its neighbour before the fit, and
focus rows of quarters and sites without a focus event are left out (their term is -infinity: the
exact limit). A 0/1 term that still runs off to infinity (quasi-separation, e.g. a cell whose comparison sites have
no focus event in its quarter: :func:`~pcref_eval.estimability.diverged_terms`) has its rows
left out and the model is refitted: the other estimates are then close to the limit of the diverged
fit (within 0.005 in the test, not exactly: the left-out rows still informed their site's baseline
hazard), and the average effect is over the cells that remain. With no cell left, ``note`` says the
effect is not estimable.

The engine is the project's Cox (:func:`pcref_eval.survival.cox.cox`: start/stop rows, strata,
Efron ties; the design is built as one float64 array and handed to ``CoxProblem``/``fit_problem``
without DataFrame copies). Only focus-group rows are split (at calendar quarters and event years): reference
rows have no time-varying term.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pcref_eval.attribution.aggregate import WeightedEffect, weighted_effect
from pcref_eval.attribution.design import NEVER, StaggeredDesign, first_all_live_quarter
from pcref_eval.cohort import ADJUSTMENT_INDICATORS, adjustment_covariates
from pcref_eval.estimability import MAX_REFITS, diverged_terms, eventless_levels
from pcref_eval.survival.cox import CoxProblem, CoxResult, fit_problem

EVENT_YEAR_BINS = 3  # years since go-live 0, 1, 2+ (the last bin open-ended)
DROP = "-"  # label of rows left out: focus follow-up after go-live of a cohort with no focus event then
FIRST_YEAR_BIN_MONTHS = 3  # year 0 in quarters: the effect builds up within it (see the module docstring)
BY_YEAR_COLUMNS = ["event_year", "log_estimate", "se", "drift_ss", "focus_days", "focus_events"]


def event_bin_starts(bins: int = EVENT_YEAR_BINS, first_year_months: int = FIRST_YEAR_BIN_MONTHS) -> tuple[int, ...]:
    """Months since go-live at which PCREF cells start: ``first_year_months``-wide bins in year 0, then years.

    ``(0, 3, 6, 9, 12, 24)`` by default (quarters of year 0, years 1, 2+); ``first_year_months=12``
    gives ``(0, 12, 24)`` (one bin per year, the model before the simulation study found its bias).
    """
    first = tuple(range(0, 12, first_year_months))
    return first + tuple(12 * y for y in range(1, bins))


@dataclass
class CalendarCoxResult:
    """The fitted model, the cohort x event-year effects with their weights, and the aggregate."""

    model: CoxResult | None  # None when not estimable (``note`` says why)
    cells: pd.DataFrame  # term, cohort, event_year, coef, se, focus_days, focus_events
    effect: WeightedEffect
    by_event_year: pd.DataFrame  # BY_YEAR_COLUMNS (drift_ss: sum of squared drift sensitivities, see below)
    dropped_quarters: list[str]
    note: str = ""  # why the effect is not estimable ("" when it is)
    #: the effect with a sandwich variance clustered by site (G / (G - 1) scaled), recorded as a check; never the
    #: reported interval: with 3-6 sites it is far too small (coverage 32-67% in docs/simulation-study.md)
    effect_site_robust: WeightedEffect | None = None
    #: change of the log effect per unit (log hazard ratio per year) of a drift of one site's focus/reference gap
    #: that the model leaves out, by site (:func:`drift_sensitivity`)
    drift_sensitivity: pd.Series | None = None

    def effect_allowing_drift(self, sd_per_year: float) -> WeightedEffect:
        """The effect with its variance widened for site-specific drift of the gap: se^2 + sd^2 * sum_s w_s^2.

        Each site's focus/reference log hazard ratio may drift linearly in calendar time on its own,
        independently across sites with SD ``sd_per_year`` (a random slope; the drift common to all
        sites is absorbed by the focus x quarter terms). ``w_s`` (:attr:`drift_sensitivity`) is how
        far the estimate moves per unit of site s's drift, so the drifts add variance
        ``sd^2 * sum w_s^2`` to the estimate (omitted-covariate sensitivity; docs/simulation-study.md).
        """
        e = self.effect
        if self.drift_sensitivity is None or not np.isfinite(e.se):
            return e
        drift_ss = float(np.sum(self.drift_sensitivity.to_numpy() ** 2))
        return WeightedEffect(e.log_estimate, float(se_allowing_drift(e.se, drift_ss, sd_per_year)), e.conf)


def split_rows(ac: pd.DataFrame, design: StaggeredDesign,
               bin_starts: tuple[int, ...] = event_bin_starts()) -> pd.DataFrame:
    """Counting-process rows: reference people whole, focus people split at quarters and event-time bins.

    Adds columns ``start``, ``stop`` (calendar days), ``month`` (month index at the row's start).
    """
    bounds = design.month_days
    quarter_cuts = bounds[:-1][::3][1:]
    parts = [ac[ac["focus"] == 0].assign(start=lambda d: d["entry"], stop=lambda d: d["exit"])]
    for site, part in ac[ac["focus"] == 1].groupby("site_id", sort=True):
        g = design.go_live_month(site)
        cuts = set(quarter_cuts.tolist())
        if g != NEVER:
            cuts |= {bounds[g + b] for b in bin_starts if g + b < design.n_months}
        parts.append(_split(part, np.array(sorted(cuts))))
    rows = pd.concat(parts, ignore_index=True)
    rows["month"] = np.clip(np.searchsorted(bounds, rows["start"].to_numpy(), side="right") - 1, 0,
                            design.n_months - 1)
    return rows


def _split(part: pd.DataFrame, cuts: np.ndarray) -> pd.DataFrame:
    """Split (entry, exit] at ``cuts`` strictly inside; the event stays on the last piece."""
    entry, exit_ = part["entry"].to_numpy(), part["exit"].to_numpy()
    i0 = np.searchsorted(cuts, entry, side="right")
    i1 = np.searchsorted(cuts, exit_, side="left")
    n_pieces = np.maximum(i1 - i0, 0) + 1
    row = np.repeat(np.arange(len(part)), n_pieces)
    k = np.arange(len(row)) - np.repeat(np.cumsum(n_pieces) - n_pieces, n_pieces)  # piece number
    cut_idx = i0[row] + k
    start = np.where(k == 0, entry[row], cuts[np.clip(cut_idx - 1, 0, len(cuts) - 1)])
    last = k == n_pieces[row] - 1
    stop = np.where(last, exit_[row], cuts[np.clip(cut_idx, 0, len(cuts) - 1)])
    out = part.iloc[row].reset_index(drop=True)
    out["start"], out["stop"] = start, stop
    out["event"] = np.where(last, out["event"].to_numpy(), 0).astype(np.int8)
    return out


def _restrict_to_control_quarters(rows: pd.DataFrame, design: StaggeredDesign) -> tuple[pd.DataFrame, list[str]]:
    """Censor follow-up at the first quarter in which every site is live (no comparison left)."""
    first = first_all_live_quarter(design, sorted(rows["site_id"].unique()))
    if first is None:
        return rows, []
    cut = design.month_days[3 * first]
    rows = rows[rows["start"] < cut].copy()
    over = rows["stop"] > cut
    rows.loc[over, "stop"] = cut
    rows.loc[over, "event"] = 0
    return rows, [design.quarter_label(q) for q in range(first, design.n_quarters)]


def treatment_cells(rows: pd.DataFrame, design: StaggeredDesign,
                    bin_starts: tuple[int, ...] = event_bin_starts()) -> pd.Series:
    """Label "cohort|bin" of focus rows after their site's go-live (else empty); bin indexes ``bin_starts``."""
    go = rows["site_id"].map({s: design.go_live_month(s) for s in rows["site_id"].unique()}).to_numpy()
    since = rows["month"].to_numpy() - go
    live = (rows["focus"].to_numpy() == 1) & (go != NEVER) & (since >= 0)
    year = np.searchsorted(np.asarray(bin_starts), np.where(live, since, 0), side="right") - 1
    cohort = rows["site_id"].map({s: design.adoption_cohort(s) for s in rows["site_id"].unique()}).astype(str)
    label = cohort.str.cat(pd.Series(year, index=rows.index).astype(str), sep="|")
    return label.where(live, "")


def _merge_empty_cells(label: pd.Series, rows: pd.DataFrame) -> pd.Series:
    """Fold an event-time cell with no focus events into the previous bin of the same cohort (the first into the next)."""
    label = label.copy()
    while True:
        cell = (label != "") & (label != DROP)
        ev = rows.loc[cell, "event"].groupby(label[cell]).sum()
        empty = [c for c, v in ev.items() if v == 0]
        if not empty:
            return label
        c = empty[0]
        cohort = c.split("|")[0]
        bins = sorted(int(k.split("|")[1]) for k in ev.index if k.split("|")[0] == cohort)
        if len(bins) == 1:  # no focus event after go-live in the cohort: nothing estimable, follow-up censored
            label = label.where(label != c, DROP)
            continue
        i = bins.index(int(c.split("|")[1]))
        label = label.where(label != c, f"{cohort}|{bins[i - 1] if i > 0 else bins[1]}")


@dataclass
class CalendarCoxData:
    """Counting-process rows and design of the calendar-time Cox model (restricted: patient-level).

    ``X`` is one float64 Fortran-order array (rows x covariates), so the fit makes no DataFrame
    copies of it (a national design is millions of rows by about a hundred covariates).
    """

    X: np.ndarray
    covariates: list[str]
    rows: pd.DataFrame  # site_id, focus, start, stop, event, month, ...
    cell_label: pd.Series  # "cohort|event_year" of each row ("" when not live or not focus)
    cell_names: list[str]
    dropped_quarters: list[str]

    @property
    def data(self) -> pd.DataFrame:
        """The design as a DataFrame with ``_start``, ``_stop``, ``_event``, ``_site`` (for cross-checks)."""
        df = pd.DataFrame(self.X, columns=self.covariates)
        df["_start"], df["_stop"] = self.rows["start"].to_numpy(), self.rows["stop"].to_numpy()
        df["_event"], df["_site"] = self.rows["event"].to_numpy(), self.rows["site_id"].to_numpy()
        return df


def _without(rows: pd.DataFrame, label: pd.Series, out: np.ndarray) -> tuple[pd.DataFrame, pd.Series]:
    """Rows and cell labels with the rows marked ``out`` left out."""
    if not out.any():
        return rows, label
    return rows[~out].reset_index(drop=True), label[~out].reset_index(drop=True)


def _without_eventless_focus(rows: pd.DataFrame, label: pd.Series, design: StaggeredDesign, adjust: bool = True
                             ) -> tuple[pd.DataFrame, pd.Series]:
    """Leave out focus rows of calendar quarters and of sites with no focus event, and rows of a 0/1
    adjustment level (female, other gender, IMD missing) with no event (repeated until none).

    Their term is -infinity at the maximum of the partial likelihood, so those rows leave every risk
    set: leaving them out is the exact limit. (When the first quarter, the reference, has none, every
    other quarter's term runs off together; an adjustment level without events turned Newton's
    information matrix singular in a 1,000-person run.)
    """
    while True:
        focus = rows["focus"].to_numpy() == 1
        ev = rows["event"].to_numpy()
        quarter = design.quarter_of_month(rows["month"].to_numpy())
        site = rows["site_id"].to_numpy()
        q_events = pd.Series(ev[focus]).groupby(quarter[focus]).sum()
        s_events = pd.Series(ev[focus]).groupby(site[focus]).sum()
        out = focus & (np.isin(quarter, q_events.index[q_events == 0]) | np.isin(site, s_events.index[s_events == 0]))
        if adjust:  # people in a sex or IMD-missing level without an event: the same limit
            columns = adjustment_covariates(rows)
            out |= eventless_levels({c: columns[c] for c in ADJUSTMENT_INDICATORS}, ev)
        if not out.any() or out.all():
            return rows, label
        rows, label = _without(rows, label, out)
        label = _merge_empty_cells(label, rows)
        rows, label = _without(rows, label, (label == DROP).to_numpy())


def _settled(rows: pd.DataFrame, label: pd.Series, design: StaggeredDesign, adjust: bool
             ) -> tuple[pd.DataFrame, pd.Series]:
    """Merge empty cells, leave out DROP rows, then eventless focus quarters, sites and adjustment levels."""
    label = _merge_empty_cells(label, rows)
    return _without_eventless_focus(*_without(rows, label, (label == DROP).to_numpy()), design, adjust)


def _indicator_columns(rows: pd.DataFrame, label: pd.Series, design: StaggeredDesign) -> list[tuple[str, object]]:
    """(name, builder) of the 0/1 terms: focus x site, focus x quarter (the first quarter is the reference)
    and the PCREF cells."""
    focus = rows["focus"].to_numpy() == 1
    site = rows["site_id"].to_numpy()
    quarter = design.quarter_of_month(rows["month"].to_numpy())
    lab = label.to_numpy()
    columns = [(f"focus:site[{s}]", lambda s=s: focus & (site == s)) for s in sorted(set(site.tolist()))]
    columns += [(f"focus:quarter[{design.quarter_label(q)}]", lambda q=q: focus & (quarter == q))
                for q in sorted(set(quarter[focus].tolist()))[1:]]
    columns += [(f"pcref[{c}]", lambda c=c: lab == c) for c in sorted(c for c in label.unique() if c)]
    return columns


def focus_years(rows: pd.DataFrame, design: StaggeredDesign) -> np.ndarray:
    """Calendar time of focus rows in years from the window start, by quarter (0 on reference rows):
    the covariate of a linear drift of the focus/reference gap."""
    years = design.quarter_of_month(rows["month"].to_numpy()) / 4.0
    return np.where(rows["focus"].to_numpy() == 1, years, 0.0)


def _site_trend_columns(rows: pd.DataFrame, design: StaggeredDesign) -> list[tuple[str, object]]:
    """(name, builder) of focus x site linear trends in calendar time (:func:`focus_years`), one per site but
    the first (the focus x quarter terms hold the common path)."""
    site = rows["site_id"].to_numpy()
    years = focus_years(rows, design)
    return [(f"trend:site[{s}]", lambda s=s: np.where(site == s, years, 0.0))
            for s in sorted(set(site.tolist()))[1:]]


def calendar_cox_data(ac: pd.DataFrame, design: StaggeredDesign, adjust: bool = True,
                      bins: int = EVENT_YEAR_BINS, first_year_months: int = FIRST_YEAR_BIN_MONTHS,
                      leave_out: tuple[str, ...] = (), site_trends: bool = False) -> CalendarCoxData:
    """Split rows and build the model's covariates (focus x site, focus x quarter, PCREF cells, adjustment).

    ``leave_out``: 0/1 terms that diverged in an earlier fit (quasi-separation): the rows where they
    are 1 are left out (close to the limit of that fit: module docstring), then empty cells are merged again.
    ``site_trends``: add a linear trend of each site's focus/reference gap in calendar time (relative to the
    first site's), so that a site whose gap drifts on its own is not read as PCREF (an option under test in
    docs/simulation-study.md, not the main estimate).
    """
    starts = event_bin_starts(bins, first_year_months)
    rows = split_rows(ac, design, starts)
    rows, dropped = _restrict_to_control_quarters(rows, design)
    rows = rows[rows["stop"] > rows["start"]].reset_index(drop=True)
    rows, label = _settled(rows, treatment_cells(rows, design, starts), design, adjust)
    if leave_out:
        out = np.zeros(len(rows), dtype=bool)
        for name, make in _indicator_columns(rows, label, design):
            if name in leave_out:
                out |= make()
        rows, label = _without(rows, label, out)
        rows, label = _settled(rows, label, design, adjust)
    cell_names = sorted(c for c in label.unique() if c)
    columns = _indicator_columns(rows, label, design)
    if site_trends:
        columns += _site_trend_columns(rows, design)
    if adjust:
        columns += [(name, lambda v=v: v) for name, v in adjustment_covariates(rows).items()]
    X = np.empty((len(rows), len(columns)), order="F")
    names = []
    for name, make in columns:
        col = make()
        if len(col) and (col != col[0]).any():  # constant columns are not estimable
            X[:, len(names)] = col
            names.append(name)
    return CalendarCoxData(X[:, :len(names)], names, rows, label, cell_names, dropped)


def calendar_time_cox(ac: pd.DataFrame, design: StaggeredDesign, adjust: bool = True,
                      bins: int = EVENT_YEAR_BINS,
                      first_year_months: int = FIRST_YEAR_BIN_MONTHS, site_trends: bool = False) -> CalendarCoxResult:
    """Fit the calendar-time Cox model (see module docstring) and aggregate the PCREF effect
    (``site_trends``: see :func:`calendar_cox_data`)."""
    starts = event_bin_starts(bins, first_year_months)
    left_out: tuple[str, ...] = ()
    start = None
    for _ in range(MAX_REFITS):
        cd = calendar_cox_data(ac, design, adjust, bins, first_year_months, leave_out=left_out,
                               site_trends=site_trends)
        try:
            model, robust, cross = _fit(cd, focus_years(cd.rows, design), start)
        except ValueError as exc:  # no events left, or Newton met a singular information matrix
            return _not_estimable(cd, f"not estimable: {exc}")
        indicators = [c for c in cd.covariates if c.startswith(("focus:", "pcref["))]
        diverged = diverged_terms(indicators, model.coef[indicators], np.diag(model.variance.loc[indicators, indicators]))
        if not diverged:
            break
        left_out += tuple(diverged)  # quasi-separation: refit without the rows of the diverged terms
        start = model.coef.drop(diverged)  # the other terms are near their limit: Newton starts there
    else:
        raise ValueError(f"calendar-time Cox: terms still diverge after {MAX_REFITS} refits: {', '.join(diverged)}")
    rows, label = cd.rows, cd.cell_label
    days = (rows["stop"] - rows["start"]).groupby(label).sum()
    events = rows["event"].groupby(label).sum()
    terms = [f"pcref[{c}]" for c in cd.cell_names if f"pcref[{c}]" in cd.covariates]
    cells = pd.DataFrame({
        "term": terms,
        "cohort": [t[6:-1].split("|")[0] for t in terms],
        "event_year": [starts[int(t[6:-1].split("|")[1])] // 12 for t in terms],
        "event_month": [starts[int(t[6:-1].split("|")[1])] for t in terms],
        "coef": model.coef[terms].to_numpy(),
        "se": np.sqrt(np.diag(model.variance.loc[terms, terms].to_numpy())),
        "focus_days": [float(days[t[6:-1]]) for t in terms],
        "focus_events": [int(events[t[6:-1]]) for t in terms],
    })
    effect = weighted_effect(model.coef[terms], model.variance.loc[terms, terms], cells["focus_days"].to_numpy())
    sites = len(model.strata or [])
    effect_site_robust = (weighted_effect(model.coef[terms], robust.loc[terms, terms] * sites / (sites - 1),
                                          cells["focus_days"].to_numpy()) if sites > 1 else None)
    sensitivity = drift_sensitivity(model.variance, cross, terms, cells["focus_days"].to_numpy())
    by_year = []
    for year, part in cells.groupby("event_year"):
        terms_y, days_y = list(part["term"]), part["focus_days"].to_numpy()
        w = weighted_effect(model.coef[terms_y], model.variance.loc[terms_y, terms_y], days_y)
        drift_ss = float((drift_sensitivity(model.variance, cross, terms_y, days_y) ** 2).sum())
        by_year.append({"event_year": int(year), "log_estimate": w.log_estimate, "se": w.se, "drift_ss": drift_ss,
                        "focus_days": float(part["focus_days"].sum()), "focus_events": int(part["focus_events"].sum())})
    by_year = pd.DataFrame(by_year, columns=BY_YEAR_COLUMNS)
    note = "" if terms else "not estimable: no PCREF cell with focus-group detentions and a comparison left"
    return CalendarCoxResult(model=model, cells=cells, effect=effect, by_event_year=by_year,
                             dropped_quarters=cd.dropped_quarters, note=note, effect_site_robust=effect_site_robust,
                             drift_sensitivity=sensitivity)


def se_allowing_drift(se, drift_ss, sd_per_year: float):
    """SE widened for site drift: sqrt(se^2 + sd^2 * sum_s w_s^2), ``drift_ss`` = sum_s w_s^2 (arrays or floats)."""
    return np.sqrt(np.asarray(se, float) ** 2 + sd_per_year ** 2 * np.asarray(drift_ss, float))


def drift_sensitivity(variance: pd.DataFrame, cross: pd.DataFrame, terms: list[str], weights: np.ndarray
                      ) -> pd.Series:
    """How far the average PCREF effect moves per unit of a drift of one site's gap the model leaves out.

    If site s's focus/reference log hazard ratio drifts by ``d_s`` per year and the model omits it,
    the coefficients move by ``V C_s d_s`` (to first order: the omitted-covariate bias of a
    likelihood fit, V the inverse information and C_s the information between the model's
    covariates and the omitted ``focus x years x [site s]``). The effect is ``a'b`` (``a`` the
    cells' normalised person-time weights), so it moves by ``w_s d_s`` with ``w_s = a' (V C_s)[cells]``.
    A drift shared by all sites is absorbed by the focus x quarter terms: the ``w_s`` sum to zero.
    """
    if not terms:
        return pd.Series(dtype=float)
    a = np.asarray(weights, float) / np.sum(weights)
    moved = variance.loc[terms].to_numpy() @ cross.to_numpy()  # (cells, sites)
    return pd.Series(a @ moved, index=cross.columns, name="drift_sensitivity")


def _not_estimable(cd: CalendarCoxData, note: str) -> CalendarCoxResult:
    """A result without a model: NaN effect, no cells, and the reason."""
    nan = float("nan")
    cells = pd.DataFrame(columns=["term", "cohort", "event_year", "event_month", "coef", "se", "focus_days",
                                  "focus_events"])
    by_year = pd.DataFrame(columns=BY_YEAR_COLUMNS)
    return CalendarCoxResult(model=None, cells=cells, effect=WeightedEffect(nan, nan), by_event_year=by_year,
                             dropped_quarters=cd.dropped_quarters, note=note)


def _fit(cd: CalendarCoxData, drift: np.ndarray | None = None, start: pd.Series | None = None
         ) -> tuple[CoxResult, pd.DataFrame, pd.DataFrame | None]:
    """Stratified (by site) Efron Cox fit of the design, which it sorts in place and then drops; with the
    sandwich variance clustered by site (:meth:`~pcref_eval.survival.cox.CoxResult.robust_variance_by_stratum`)
    and the information between the covariates and ``drift`` (one row value each) at each site, left out of the
    model (:meth:`~pcref_eval.survival.cox.CoxProblem.cross_information_by_stratum`; columns: sites).
    ``start``: Newton's starting coefficients by name (absent terms start at 0), e.g. the fit before a refit.
    No global LR or score test is computed (nothing reports them; NaN on the result)."""
    levels, codes = np.unique(cd.rows["site_id"].to_numpy(), return_inverse=True)
    problem = CoxProblem(cd.X, cd.rows["stop"].to_numpy(float), cd.rows["event"].to_numpy(float), codes,
                         cd.rows["start"].to_numpy(float), "efron", overwrite_X=True)
    cd.X = None  # sorted and centred in place by the problem: no longer the design as built
    init = None if start is None else start.reindex(cd.covariates).fillna(0.0).to_numpy()
    model = fit_problem(problem, cd.covariates, strata=list(levels), init=init, null_tests=False)
    cross = None if drift is None else pd.DataFrame(problem.cross_information_by_stratum(model.derivatives, drift),
                                                    index=cd.covariates, columns=list(levels))
    # the model is kept by callers without its design (~3 GB at national size)
    return model.without_design(), model.robust_variance_by_stratum(), cross
