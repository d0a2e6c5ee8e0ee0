"""A tiny hand-built site extract whose every measure value can be worked out by hand.

Study window 2024-01-01 to 2024-03-31 (January 31 days, February 29, March 31), extract date
2024-04-30, go-live 2024-02-01, pcref scheme, reference White British. People:

==== ======== ===============  =====================================
id   code     group            notes
==== ======== ===============  =====================================
P1   A        White British
P2   A        White British
P3   N        Black African    prior referral in 2023 (first referral outside the window)
P4   M        Black Caribbean
P5   D        Black Mixed      D has no catchment population
P6   Z        Not stated
P7   99       Not known
P8   (empty)  Missing
P9   B        Other groups
PX   -        Missing          not in people (an MHA episode only)
==== ======== ===============  =====================================

Population: A 100,000; N 20,000; M 10,000; B 5,000 (combined focus N+M = 30,000).
The expected values are written out in ``tests/measures/test_compute.py``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

TINY = {
    "site.yml": """
        site_id: tiny
        name: Tiny trust
        pcref_go_live: '2024-02-01'
        extract_date: '2024-04-30'
    """,
    "population.csv": """
        ethnic_category,age_band,sex,population
        A,20-24,1,60000
        A,20-24,2,40000
        N,20-24,1,20000
        M,25-29,2,10000
        B,20-24,1,5000
    """,
    "people.csv": """
        person_id,ethnic_category,gender,year_of_birth,imd_decile,date_of_death
        P1,A,1,1990,3,
        P2,A,2,1985,5,
        P3,N,1,1992,2,
        P4,M,2,1980,1,
        P5,D,1,1999,4,
        P6,Z,2,1970,6,
        P7,99,1,1975,7,
        P8,,2,1988,,
        P9,B,1,1960,8,
    """,
    "referrals.csv": """
        referral_id,person_id,referral_date,source_of_referral,discharge_date
        F0,P3,2023-06-01,A1,2023-08-01
        F1,P1,2024-01-05,E1,
        F2,P2,2024-01-06,A1,
        F3,P3,2024-01-08,H1,
        F4,P4,2024-02-01,A1,
        F5,P5,2024-02-02,E5,
        F6,P6,2024-03-01,B1,
        F7,P7,2024-03-02,H1,
        F8,P8,2024-03-03,A1,
        F9,P9,2024-03-04,E2,
        F10,P1,2024-03-20,A1,
    """,
    "mha_episodes.csv": """
        episode_id,person_id,legal_status_code,start_date,end_date
        E1,P1,02,2024-01-10,2024-02-05
        E2,P1,03,2024-02-05,2024-02-10
        E3,P3,03,2024-01-20,
        E4,P3,20,2024-03-03,2024-03-04
        E5,P4,09,2024-03-15,
        E6,P6,02,2024-02-10,2024-03-01
        E7,P8,02,2024-03-01,2024-03-20
        E8,P2,01,2024-01-05,2024-01-06
        E9,P1,20,2024-01-02,2024-01-03
        E10,P9,02,2023-12-31,2024-01-20
        E11,PX,02,2024-01-15,2024-01-30
    """,
    "hospital_spells.csv": """
        spell_id,person_id,admission_date,discharge_date
        S1,P1,2024-01-10,2024-02-10
        S2,P3,2024-01-20,
        S3,P4,2024-03-15,2024-03-15
        S4,P6,2023-12-20,2024-01-05
        S5,P9,2024-02-01,2024-02-03
        S6,P2,2024-01-01,2024-01-03
    """,
    "restrictive_interventions.csv": """
        intervention_id,person_id,spell_id,intervention_type,reason,start_datetime,end_datetime
        R1,P1,S1,01,01,2024-01-12T10:00,2024-01-12T10:10
        R2,P1,S1,05,02,2024-01-15T11:00,2024-01-15T15:00
        R3,P3,S2,14,03,2024-01-25T09:00,2024-01-25T09:05
        R4,P3,S2,01,01,2024-02-02T09:00,2024-02-02T09:20
        R5,P3,S2,07,01,2024-03-05T12:00,2024-03-05T12:10
        R6,P4,S3,05,02,2024-03-15T13:00,2024-03-15T20:00
        R7,P9,S5,07,04,2024-02-02T08:00,2024-02-02T08:05
    """,
    "ctos.csv": """
        cto_id,person_id,start_date,end_date,end_reason
        C1,P3,2024-02-20,,
        C2,P1,2024-03-10,,
    """,
    "outcome_measures.csv": """
        assessment_id,person_id,referral_id,tool,score,assessment_date
        A1,P1,F1,HoNOS,20,2024-01-06
        A2,P1,F1,HoNOS,15,2024-02-15
        A3,P1,F1,HoNOS,12,2024-03-10
        A4,P2,F2,HoNOS,10,2024-01-07
        A5,P2,F2,HoNOS,12,2024-03-15
        A6,P3,F3,HoNOS,18,2024-01-09
        A7,P3,F3,HoNOS,12,2024-03-28
        A8,P4,F4,HoNOS,16,2024-02-02
        A9,P4,F4,HoNOS,10,2024-03-20
        A10,P5,F5,HoNOS,14,2024-02-03
        A11,P5,F5,CORE,5,2024-03-25
    """,
    "patient_experience.csv": """
        response_id,ethnic_category,response_date,rating
        X1,A,2024-01-10,5
        X2,A,2024-01-11,2
        X3,N,2024-01-12,4
        X4,Z,2024-02-01,3
        X5,,2024-02-02,5
        X6,M,2024-02-03,1
        X7,99,2024-03-01,4
        X8,P,2024-03-02,5
    """,
}


def write_tiny_site(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in TINY.items():
        (folder / name).write_text(textwrap.dedent(text).strip() + "\n")
    return folder


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    return write_tiny_site(tmp_path_factory.mktemp("tiny") / "tiny")


@pytest.fixture(scope="session")
def tiny_site(tiny_dir):
    from pcref_eval.extract import load_site

    return load_site(tiny_dir)


@pytest.fixture(scope="session")
def tiny_settings():
    from datetime import date

    from pcref_eval.config import DEFAULT_DETENTION_CODES, DEFAULT_PLACE_OF_SAFETY_CODES
    from pcref_eval.measures.compute import MeasureSettings

    return MeasureSettings(scheme="pcref", reference="White British",
                           code_lists={"detention_codes": DEFAULT_DETENTION_CODES,
                                       "place_of_safety_codes": DEFAULT_PLACE_OF_SAFETY_CODES},
                           start=date(2024, 1, 1), end=date(2024, 3, 31))


@pytest.fixture(scope="session")
def tiny_measures(tiny_site, tiny_settings):
    from pcref_eval.measures.compute import compute_measures

    return compute_measures(tiny_site, settings=tiny_settings)


#: One inner-city synthetic site (25% Black catchment, go-live 2022-10-01): large enough to recover the
#: generator's implementation effects, small enough to generate in a few seconds.
SYNTH_PEOPLE, SYNTH_SEED = 60_000, 11


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    """(site extract, truth dict, monthly measures) of a generated synthetic site."""
    import json
    from datetime import date

    from pcref_eval.config import DEFAULT_DETENTION_CODES, DEFAULT_PLACE_OF_SAFETY_CODES
    from pcref_eval.extract import load_site
    from pcref_eval.measures.compute import MeasureSettings, compute_measures
    from pcref_eval.synth.generate import generate
    from pcref_eval.synth.model import SimulationModel

    out = tmp_path_factory.mktemp("synth")
    # static model: the single-site ITS is a before/after design, unbiased only when nothing but PCREF
    # changes the gap on the calendar (issue 11 added calendar-time change to the default model)
    generate(out, n_sites=1, people=SYNTH_PEOPLE, seed=SYNTH_SEED, fmt="parquet", model=SimulationModel.static())
    truth = json.loads((out / "truth.json").read_text())
    site = load_site(out / "site_a")
    settings = MeasureSettings(code_lists={"detention_codes": DEFAULT_DETENTION_CODES,
                                           "place_of_safety_codes": DEFAULT_PLACE_OF_SAFETY_CODES},
                               start=date(2021, 4, 1), end=date(2025, 3, 31))
    return site, truth, compute_measures(site, settings=settings)
