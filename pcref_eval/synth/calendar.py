"""Calendar time in the generator: the national gap, shocks, site drifts and ramping PCREF effects.

The detention hazard of a person at calendar day ``d`` is ``h_i * m_g(d)``, with ``h_i`` the
person's hazard at the reference time (:func:`pcref_eval.synth.generate.detention_hazard_per_day`)
and a multiplier that depends only on the site, calendar day and whether the person is in a
PCREF focus group (g = focus or reference)::

    log m_ref(d)   = log shock_all(d)
    log m_focus(d) = log shock_all(d) + log shock_focus(d)
                     + strength * (log path(d) - log path(reference year))     national gap path
                     + log(trend_per_year) * years since window start          national trend
                     + drift_site * years since window start                   site-specific drift
                     + log effect_site * min(1, days since go-live / ramp)     PCREF, from go-live

``path`` interpolates the published series log-linearly between financial-year midpoints
(1 October) and is flat beyond its ends. The multipliers are constant within a day, so the
cumulative multiplier is piecewise linear in days and event times are drawn exactly by inverting
it (:meth:`SiteCalendar.event_day`).

Site-level parameters (each site's full PCREF effect and gap drift) are drawn from their own random
stream ``default_rng([seed, site_index, 2])`` (:func:`site_parameters`), so they do not depend on
the number of sites or workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

DAYS_PER_YEAR = 365.25
DAYS_PER_MONTH = DAYS_PER_YEAR / 12
EPOCH = date(1970, 1, 1)


def day_number(d: date) -> int:
    """Days since 1970-01-01 (the generator's day numbers)."""
    return (d - EPOCH).days


def month_number(days: np.ndarray) -> np.ndarray:
    """Calendar month index (year * 12 + month - 1) of day numbers."""
    dt = np.asarray(days, dtype="int64").astype("datetime64[D]")
    return dt.astype("datetime64[M]").astype("int64") + 1970 * 12


@dataclass(frozen=True)
class SiteEffect:
    """A site's PCREF effect parameters (true values, written to truth.json)."""

    full_effect: float  # multiplies the focus-group hazard once fully built up
    ramp_months: float
    gap_drift_per_year: float  # slope of the site's own drift of the log gap


def site_parameters(n_sites: int, model, seed: int) -> list[SiteEffect]:
    """Each site's full PCREF effect (log-normal around the model's) and gap drift, one stream per site."""
    out = []
    for i in range(n_sites):
        z = np.random.default_rng([seed, i, 2]).standard_normal(2)
        out.append(SiteEffect(
            full_effect=float(np.exp(np.log(model.implementation_effect) + model.implementation_effect_site_sd * z[0])),
            ramp_months=float(model.implementation_ramp_months),
            gap_drift_per_year=float(model.site_drift_sd_per_year * z[1]),
        ))
    return out


def national_log_gap(days: np.ndarray, model) -> np.ndarray:
    """Log multiplier of the focus/reference gap from the national path and trend (common to all sites)."""
    days = np.asarray(days, dtype=float)
    out = np.zeros(days.shape)
    path = model.national_gap_path
    if model.national_gap_strength and path:
        years = sorted(int(y) for y in path)
        mid = np.array([day_number(date(y, 10, 1)) for y in years], dtype=float)
        logv = np.log([path[y] if y in path else path[str(y)] for y in years])
        ref = np.log(path.get(model.national_gap_reference_year, path.get(str(model.national_gap_reference_year))))
        out += model.national_gap_strength * (np.interp(days, mid, logv) - ref)
    if model.national_trend_per_year != 1.0:
        out += np.log(model.national_trend_per_year) * (days - day_number(model.window_start)) / DAYS_PER_YEAR
    return out


def shock_log(days: np.ndarray, model, focus: bool) -> np.ndarray:
    """Log multiplier of the common shock (everyone; plus the focus-specific part for focus groups)."""
    days = np.asarray(days)
    inside = (days >= day_number(model.shock_start)) & (days <= day_number(model.shock_end))
    factor = model.shock_all_factor * (model.shock_focus_factor if focus else 1.0)
    return np.where(inside, np.log(factor), 0.0)


def pcref_log_effect(days: np.ndarray, go_live_day: int, effect: SiteEffect) -> np.ndarray:
    """Log PCREF effect: 0 before go-live, building linearly to log(full effect) over the ramp."""
    since = np.asarray(days, dtype=float) - go_live_day
    ramp_days = effect.ramp_months * DAYS_PER_MONTH
    frac = np.ones(since.shape) if ramp_days <= 0 else np.clip((since + 0.5) / ramp_days, 0.0, 1.0)
    return np.where(since >= 0, np.log(effect.full_effect) * frac, 0.0)


class SiteCalendar:
    """A site's daily hazard multipliers (focus and reference) and their cumulative sums."""

    def __init__(self, spec, model, effect: SiteEffect):
        self.first = day_number(model.window_start) - 1
        self.last = day_number(model.extract_date) + 1
        self.days = np.arange(self.first, self.last + 1)
        self.go_live_day = day_number(spec.pcref_go_live)
        self.effect = effect
        years = (self.days - day_number(model.window_start)) / DAYS_PER_YEAR
        self.log_pcref = pcref_log_effect(self.days, self.go_live_day, effect)
        self.log_ref = shock_log(self.days, model, focus=False)
        self.log_focus = (shock_log(self.days, model, focus=True) + national_log_gap(self.days, model)
                          + effect.gap_drift_per_year * years + self.log_pcref)
        self._cum = {False: self._cumulative(np.exp(self.log_ref)), True: self._cumulative(np.exp(self.log_focus))}

    def _cumulative(self, mult: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Knots (day, cumulative multiplier), extended far beyond the extract date at the last rate."""
        far = 1e7
        x = np.append(self.days.astype(float), self.days[-1] + far)
        c = np.concatenate([[0.0], np.cumsum(mult[:-1])])
        return x, np.append(c, c[-1] + far * mult[-1])

    def event_day(self, start_day: np.ndarray, hazard: np.ndarray, focus: np.ndarray, e: np.ndarray) -> np.ndarray:
        """Calendar day of the event for people at risk from ``start_day``: solve h * (C(t) - C(s)) = e."""
        start_day = np.clip(np.asarray(start_day, dtype=float), self.first, None)
        out = np.empty(start_day.shape)
        for flag in (False, True):
            m = focus == flag
            x, c = self._cum[flag]
            target = np.interp(start_day[m], x, c) + e[m] / hazard[m]
            out[m] = np.interp(target, c, x)
        return out

    def effect_by_event_month(self, last_day: int) -> dict[int, float]:
        """True PCREF effect (mean over the days of each event month) from go-live to ``last_day``."""
        post = (self.days >= self.go_live_day) & (self.days <= last_day)
        if not post.any():
            return {}
        e = month_number(self.days[post]) - month_number(np.array([self.go_live_day]))[0]
        sums = np.bincount(e, weights=np.exp(self.log_pcref[post]))
        counts = np.bincount(e)
        return {int(k): float(sums[k] / counts[k]) for k in range(len(counts)) if counts[k]}


def focus_person_days_by_event_month(calendar: SiteCalendar, entry_day: np.ndarray, exit_day: np.ndarray,
                                     last_day: int) -> dict[int, float]:
    """Person-days at risk after go-live (up to ``last_day``) by event month, from [entry, exit) intervals."""
    lo, hi = calendar.first, last_day + 1
    a = np.clip(np.asarray(entry_day, dtype=np.int64), lo, hi)
    b = np.clip(np.asarray(exit_day, dtype=np.int64), lo, hi)
    keep = b > a
    diff = np.zeros(hi - lo + 2)
    np.add.at(diff, a[keep] - lo, 1.0)
    np.add.at(diff, b[keep] - lo, -1.0)
    at_risk = np.cumsum(diff)[: hi - lo]
    days = np.arange(lo, hi)
    post = days >= calendar.go_live_day
    if not post.any():
        return {}
    e = month_number(days[post]) - month_number(np.array([calendar.go_live_day]))[0]
    w = np.bincount(e, weights=at_risk[post])
    return {int(k): float(v) for k, v in enumerate(w) if v > 0}


def average_effect_on_treated(effects: dict[str, dict[int, float]], weights: dict[str, dict[int, float]],
                              before_event_month: dict[str, int] | None = None) -> float:
    """exp of the weighted mean log effect over sites x event months (weights: focus person-days at risk).

    ``before_event_month``: per site, only event months below it count (the months an estimator can
    compare with a site not yet live; see :func:`pcref_eval.attribution.design.comparison_event_months`)."""
    num = den = 0.0
    for site, w in weights.items():
        limit = None if before_event_month is None else before_event_month.get(site)
        for e, v in w.items():
            eff = effects[site].get(e)
            if eff is not None and v > 0 and (limit is None or e < limit):
                num += v * np.log(eff)
                den += v
    return float(np.exp(num / den)) if den > 0 else float("nan")
