"""Named scenarios of the simulation study: a generator model and a set of sites each.

Every scenario keeps the PCREF effect's median at 0.70 and changes what else moves the gap:

| scenario | what changes the focus/reference gap besides PCREF |
|---|---|
| ``no_trend`` | nothing (static model; one effect 0.70 at every site from go-live) |
| ``national_trend`` | a national trend of -8% a year in the gap |
| ``shock`` | NHS England's published path (4.2 ... 4.7, 3.5, 3.54, 4.0) and a COVID-like shock in 2021 |
| ``heterogeneous_ramp`` | the default model: path, shock, site drifts, effects differing by site and building up over 12 months |
| ``differential_recording`` | the default model with ethnicity recording improving 10 points a year faster after go-live |
| ``few_sites`` | the default model with three sites: two pilots and one comparison site never live in the window |
| ``all_live`` | the default model with every site live by the end of the window (no never-live comparison): the event study's comparison is the last cohort to go live, before its go-live |
| ``strong_drift`` | the default model with site drifts of the gap 2.5 times as large (SD 0.05 a year) as the main interval allows for by default (0.02): data built to fool the reported interval |
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pcref_eval.synth.model import SimulationModel, SiteSpec, default_sites


@dataclass(frozen=True)
class Scenario:
    """A named scenario: the generator model and which of the default sites it simulates."""

    name: str
    description: str
    model: SimulationModel
    site_indices: tuple[int, ...] = (0, 1, 2, 3, 4, 5)

    def sites(self, people: int) -> list[SiteSpec]:
        """The scenario's sites, ``people`` in contact over all of them (shares as in the demo)."""
        specs = default_sites(1_000_000, 6)
        chosen = [specs[i] for i in self.site_indices]
        total = sum(s.people for s in chosen)
        out = []
        for s in chosen:
            n = max(50, int(round(people * s.people / total)))
            out.append(replace(s, people=n, catchment=int(round(s.catchment * n / s.people))))
        return out


def scenarios() -> dict[str, Scenario]:
    """The study's scenarios by name (see the module docstring)."""
    static = SimulationModel.static()
    default = SimulationModel()
    items = [
        Scenario("no_trend", "nothing but PCREF changes the gap (static model)", static),
        Scenario("national_trend", "national trend of -8% a year in the focus/reference gap",
                 replace(static, national_trend_per_year=0.92)),
        Scenario("shock", "NHS England's published path of the gap and a COVID-like shock in 2021",
                 replace(static, national_gap_strength=1.0, shock_all_factor=default.shock_all_factor,
                         shock_focus_factor=default.shock_focus_factor)),
        Scenario("heterogeneous_ramp", "default model: path, shock, site drifts, site-specific effects "
                 "building up over 12 months", default),
        Scenario("differential_recording", "default model, ethnicity recording improving 10 points a year "
                 "faster after go-live", replace(default, recording_gain_after_go_live_per_year=0.10)),
        Scenario("few_sites", "default model, three sites (two pilots, one never live in the window)", default,
                 site_indices=(0, 1, 5)),
        Scenario("all_live", "default model, five sites all live in the window (four pilots and the national "
                 "mandate; no never-live comparison)", default, site_indices=(0, 1, 2, 3, 4)),
        Scenario("strong_drift", "default model, site drifts of the gap SD 0.05 a year (2.5 times the interval's "
                 "default allowance)", replace(default, site_drift_sd_per_year=0.05)),
    ]
    return {s.name: s for s in items}
