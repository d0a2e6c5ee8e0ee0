"""The explicit, documented simulation model behind the synthetic pilot-site extracts.

Every parameter here is written to ``truth.json`` so analyses can be checked against known truth.

Model (per person in contact with services, one site):

- **Catchment** population by ethnic category, 5-year age band and sex (``population.csv``).
  People in contact are sampled from the adult (18+) catchment with a contact-rate ratio per
  ethnic group (Black groups are in contact more often).
- **Detention** (first and repeat): exponential hazard from the index referral date,
  ``h = base_rate * HR_group * exp(b_age * (age-40)/10 + b_male * male + b_imd * (5.5 - imd)/...)``.
  After the site's PCREF go-live (calendar time), the hazard of people in PCREF focus groups is
  multiplied by ``implementation_effect`` (so the focus/White hazard ratio shrinks by that factor).
- **Death** competes with detention (exponential, age-dependent); follow-up is censored at
  service discharge and at the extract date.
- **Place-of-safety holds** (s136) are a separate exponential process by group.
- **Restrictive interventions**: Poisson per occupied bed day, rate by group, reduced by
  ``ri_implementation_effect`` for focus groups after go-live; type mix by group.
- **Referral source**: category shares (GP, self, carer, justice E1-E6, emergency department) by group.
- **Ethnicity recording**: the share recorded rises linearly from the site's start to end
  completeness over the study window, faster after go-live (``recording_gain_after_go_live_per_year``);
  unrecorded values are Z, 99 or empty.
- **Experience and outcomes**: positive-rating probability and mean paired HoNOS change by group.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date

import numpy as np

#: Detailed-code -> simulation group used for hazards (PCREF focus groups kept separate).
SIM_GROUP = {
    "A": "White British", "B": "White other", "C": "White other",
    "D": "Black Mixed", "E": "Black Mixed", "F": "Mixed other", "G": "Mixed other",
    "H": "Asian", "J": "Asian", "K": "Asian", "L": "Asian",
    "M": "Black Caribbean", "N": "Black African", "P": "Black Other",
    "R": "Other", "S": "Other",
}
FOCUS_GROUPS = ("Black African", "Black Caribbean", "Black Mixed", "Black Other")

#: NHS England's published Black/White MHA detention rate ratio by financial year (April start):
#: 2018-19 to 2024-25 (2022-23 is the first year on Census 2021 denominators; 2023-24 standardised).
NHSE_BLACK_WHITE_DETENTION_RATIO = {2018: 4.2, 2019: 4.4, 2020: 4.6, 2021: 4.7, 2022: 3.5, 2023: 3.54, 2024: 4.0}
#: The national mandate: PCREF in the NHS Standard Contract for every mental health trust.
NATIONAL_MANDATE = date(2024, 4, 1)
SITE_ROLES = ("pilot", "comparison")


@dataclass(frozen=True)
class SiteSpec:
    """One pilot-like site: catchment size, ethnic mix and data-recording characteristics."""

    site_id: str
    name: str
    people: int  # people in contact to simulate
    catchment: int  # adult + child catchment population
    black_share: float  # share of the catchment in Black groups (M, N, P) incl. Black Mixed
    asian_share: float
    pcref_go_live: date
    completeness_start: float  # share of people with a stated ethnic category at window start
    completeness_end: float
    imd_mean: float  # mean IMD decile of the catchment (1 most deprived)
    role: str = "pilot"  # "pilot" (early implementer) or "comparison" (goes live at the mandate or later)
    icb: str = ""  # ICB (2024) NHS code of the catchment (Census 2021 ICB file, icb24_code_nhs), e.g. QMF
    ods_code: str = ""  # ODS code of a real mental health trust in that ICB (benchmarking against NHS England)


@dataclass(frozen=True)
class SimulationModel:
    """All generator parameters; serialised verbatim to truth.json."""

    window_start: date = date(2021, 4, 1)
    window_end: date = date(2025, 3, 31)
    extract_date: date = date(2025, 4, 30)
    base_detention_rate_per_year: float = 0.07  # White British, age 40, female, IMD 5.5
    detention_hr: dict = field(default_factory=lambda: {
        "White British": 1.0, "White other": 1.2, "Black Caribbean": 2.8, "Black African": 2.6,
        "Black Mixed": 2.3, "Black Other": 3.4, "Mixed other": 1.3, "Asian": 1.2, "Other": 1.5,
    })
    contact_rate_ratio: dict = field(default_factory=lambda: {
        "White British": 1.0, "White other": 0.8, "Black Caribbean": 1.4, "Black African": 1.3,
        "Black Mixed": 1.4, "Black Other": 1.4, "Mixed other": 1.1, "Asian": 0.7, "Other": 1.0,
    })
    log_hr_age_per_decade: float = -0.10
    log_hr_male: float = 0.25
    log_hr_imd_per_decile_more_deprived: float = 0.05
    implementation_effect: float = 0.70  # median full PCREF effect on the focus-group detention hazard
    implementation_effect_site_sd: float = 0.10  # SD across sites of the log full effect (heterogeneity)
    implementation_ramp_months: float = 12.0  # the log effect builds up linearly over this many months
    # national calendar-time path of the focus/White gap: the focus hazard is multiplied by
    # (path(t) / path(reference year)) ** strength * trend_per_year ** (years since window start)
    national_gap_path: dict = field(default_factory=lambda: dict(NHSE_BLACK_WHITE_DETENTION_RATIO))
    national_gap_reference_year: int = 2021  # detention_hr holds in this financial year
    national_gap_strength: float = 1.0  # 0: no national path
    national_trend_per_year: float = 1.0  # extra log-linear trend of the gap (0.92 = -8% a year)
    shock_start: date = date(2021, 4, 1)  # COVID-like shock common to all sites
    shock_end: date = date(2021, 12, 31)
    shock_all_factor: float = 0.90  # multiplies everyone's detention hazard during the shock
    shock_focus_factor: float = 1.15  # additionally multiplies the focus-group hazard (the gap)
    site_drift_sd_per_year: float = 0.02  # SD across sites of a linear drift of the log gap (per year)
    recording_gain_after_go_live_per_year: float = 0.04  # extra share recorded per year after go-live
    death_rate_per_year_at_40: float = 0.004
    log_death_hr_per_decade: float = 0.45
    referral_mean_duration_days: float = 420.0
    prior_referral_share: float = 0.15  # people with an earlier referral before the window
    second_referral_share: float = 0.08
    s136_rate_per_year: dict = field(default_factory=lambda: {"reference": 0.010, "focus": 0.030})
    s3_share: float = 0.30
    s2_to_s3_share: float = 0.35
    criminal_justice_share: dict = field(default_factory=lambda: {"reference": 0.03, "focus": 0.07})
    mean_los_days: float = 45.0
    informal_admission_share: float = 0.03
    cto_prob_after_s3: dict = field(default_factory=lambda: {"reference": 0.10, "focus": 0.25})
    cto_revoked_share: float = 0.20
    ri_rate_per_bed_day: dict = field(default_factory=lambda: {"reference": 0.020, "focus": 0.045})
    ri_implementation_effect: float = 0.80
    ri_type_shares: dict = field(default_factory=lambda: {
        "reference": {"01": 0.08, "07": 0.40, "04": 0.02, "05": 0.18, "06": 0.04, "14": 0.22, "15": 0.06},
        "focus": {"01": 0.13, "07": 0.37, "04": 0.03, "05": 0.20, "06": 0.05, "14": 0.18, "15": 0.04},
    })
    referral_source_shares: dict = field(default_factory=lambda: {
        "reference": {"A1": 0.46, "A3": 0.08, "B1": 0.12, "B2": 0.04, "E1": 0.05, "E2": 0.01,
                      "E3": 0.01, "E4": 0.01, "E5": 0.02, "E6": 0.01, "H1": 0.19},
        "focus": {"A1": 0.34, "A3": 0.06, "B1": 0.09, "B2": 0.03, "E1": 0.12, "E2": 0.03,
                  "E3": 0.02, "E4": 0.02, "E5": 0.04, "E6": 0.02, "H1": 0.23},
    })
    positive_experience_prob: dict = field(default_factory=lambda: {"reference": 0.80, "focus": 0.68})
    experience_post_go_live_gain_focus: float = 0.06
    experience_responses_per_person: float = 0.25
    outcome_paired_share: float = 0.5
    honos_baseline_mean: float = 14.0
    honos_change_mean: dict = field(default_factory=lambda: {"reference": -4.0, "focus": -3.0})
    honos_change_sd: float = 5.0
    gender_shares: dict = field(default_factory=lambda: {"1": 0.49, "2": 0.497, "3": 0.006, "4": 0.002, "9": 0.005})
    unrecorded_split: dict = field(default_factory=lambda: {"Z": 0.5, "99": 0.3, "": 0.2})

    def to_dict(self) -> dict:
        """JSON-ready dict (dates as ISO strings)."""
        return _iso(asdict(self))

    @classmethod
    def static(cls, **changes) -> "SimulationModel":
        """The model without calendar-time change: no national path, trend, shock or drift; one effect.

        Under it a site's before/after comparison is unbiased for ``implementation_effect``
        (the generator's behaviour before issue 11).
        """
        base = dict(implementation_effect_site_sd=0.0, implementation_ramp_months=0.0, national_gap_strength=0.0,
                    national_trend_per_year=1.0, shock_all_factor=1.0, shock_focus_factor=1.0,
                    site_drift_sd_per_year=0.0, recording_gain_after_go_live_per_year=0.0)
        return cls(**{**base, **changes})


#: The demo's sites, in one place: (name, weight (share of people), catchment for weight x 100,000 people,
#: Black share, Asian share, go-live, ethnicity recorded at window start and end, mean IMD decile, role,
#: ICB 2024 NHS code).
#: Four pilot-like early implementers, one comparison trust going live at the national mandate and
#: one whose go-live falls after the study window (never live within it). ICB codes are real
#: (Census 2021 ICB file, ``icb24_code_nhs``) and chosen for a plausible ethnic mix.
SITE_TEMPLATES = (
    ("Inner-city trust", 0.40, 1_000_000, 0.25, 0.15, date(2022, 10, 1), 0.82, 0.95, 3.2, "pilot", "QKK"),
    ("Metropolitan trust", 0.30, 750_000, 0.12, 0.18, date(2023, 4, 1), 0.85, 0.93, 4.5, "pilot", "QHL"),
    ("Urban and suburban trust", 0.20, 500_000, 0.07, 0.08, date(2023, 10, 1), 0.88, 0.94, 5.5, "pilot", "QOP"),
    ("Town and rural trust", 0.10, 250_000, 0.03, 0.03, date(2024, 4, 1), 0.80, 0.90, 6.5, "pilot", "QKS"),
    ("Mandate comparison trust", 0.13, 325_000, 0.09, 0.10, NATIONAL_MANDATE, 0.84, 0.92, 4.8, "comparison",
     "QUA"),
    ("Late comparison trust", 0.20, 500_000, 0.14, 0.12, date(2025, 10, 1), 0.83, 0.92, 4.0, "comparison",
     "QWE"),
)
#: A real mental health trust (ODS code) in each template's ICB, named in site.yml for benchmarking.
TEMPLATE_TRUSTS = {"QKK": "RV5", "QHL": "RXT", "QOP": "RXV", "QKS": "RXY", "QUA": "TAJ", "QWE": "RQY"}
#: Pilot sites only (the demo before comparison sites were added).
N_PILOT_TEMPLATES = 4


def default_sites(total_people: int = 100_000, n_sites: int = 4) -> list[SiteSpec]:
    """Sites of different sizes and ethnic mixes from :data:`SITE_TEMPLATES`; the first is inner-city (~25% Black).

    ``n_sites`` <= 6 takes the first templates (4: the pilots only; 6: the demo with its two comparison
    sites). With more (national scale) the six templates repeat with go-lives staggered by a month
    (comparison sites keep the mandate date or later).
    """
    k = len(SITE_TEMPLATES)
    weights = [SITE_TEMPLATES[i % k][1] for i in range(n_sites)]
    scale = total_people / sum(weights)
    cum = np.rint(np.cumsum(weights) * scale).astype(int)  # rounded cumulatively: sizes add up to the total
    sizes = np.diff(np.concatenate([[0], cum]))
    sites = []
    for i in range(n_sites):
        name, w, catch, black, asian, go_live, c0, c1, imd, role, icb = SITE_TEMPLATES[i % k]
        if n_sites > k:
            name = f"{name} {i // k + 1}"
            go_live = _shift_months(go_live, (i // k) % 3)
        people = int(sizes[i])
        sites.append(SiteSpec(
            # catchment scales with the people simulated, keeping the template's contact rate
            site_id=f"site_{_letters(i)}", name=name, people=people,
            catchment=int(round(catch * people / (w * 100_000))),
            black_share=black, asian_share=asian, pcref_go_live=go_live,
            completeness_start=c0, completeness_end=c1, imd_mean=imd, role=role, icb=icb,
            ods_code=TEMPLATE_TRUSTS.get(icb, ""),
        ))
    return sites


def _letters(i: int) -> str:
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(97 + r) + s
    return s


def _shift_months(d: date, months: int) -> date:
    m = d.month - 1 + months
    return date(d.year + m // 12, m % 12 + 1, 1)


def _iso(obj):
    if isinstance(obj, dict):
        return {k: _iso(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_iso(v) for v in obj]
    if isinstance(obj, date):
        return obj.isoformat()
    return obj
