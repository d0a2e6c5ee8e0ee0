"""The site extract format: tables, columns and their logical types (one source of truth).

A site folder holds one file per table (``<table>.csv`` or ``<table>.parquet``), plus
``site.yml`` (site_id, name, pcref_go_live, extract_date) and ``population.csv``
(catchment population by ethnic_category, age_band, sex). Column meanings follow MHSDS:

- ``people`` (MHS001MPI): person_id, ethnic_category (NHS code A-S, Z, 99 or empty),
  gender ('1' male, '2' female, '3' non-binary, '4' other, '9' indeterminate),
  year_of_birth, imd_decile (1 most deprived to 10; may be empty), date_of_death (may be empty).
- ``referrals`` (MHS101): referral_id, person_id, referral_date, source_of_referral, discharge_date.
- ``mha_episodes`` (MHS401): episode_id, person_id, legal_status_code (two digits), start_date, end_date.
- ``hospital_spells`` (MHS501): spell_id, person_id, admission_date, discharge_date.
- ``restrictive_interventions`` (MHS505/515): intervention_id, person_id, spell_id,
  intervention_type, reason, start_datetime, end_datetime.
- ``ctos`` (MHS404): cto_id, person_id, start_date, end_date, end_reason ('02' revoked).
- ``outcome_measures`` (MHS606/607): assessment_id, person_id, referral_id, tool, score, assessment_date.
- ``patient_experience`` (trust feedback system; anonymous): response_id, ethnic_category,
  response_date, rating (1-5).
"""

from __future__ import annotations

from typing import Literal

ColumnType = Literal["id", "code", "date", "datetime", "int", "float"]

TABLE_SCHEMAS: dict[str, dict[str, ColumnType]] = {
    "people": {"person_id": "id", "ethnic_category": "code", "gender": "code", "year_of_birth": "int",
               "imd_decile": "int", "date_of_death": "date"},
    "referrals": {"referral_id": "id", "person_id": "id", "referral_date": "date",
                  "source_of_referral": "code", "discharge_date": "date"},
    "mha_episodes": {"episode_id": "id", "person_id": "id", "legal_status_code": "code",
                     "start_date": "date", "end_date": "date"},
    "hospital_spells": {"spell_id": "id", "person_id": "id", "admission_date": "date", "discharge_date": "date"},
    "restrictive_interventions": {"intervention_id": "id", "person_id": "id", "spell_id": "id",
                                  "intervention_type": "code", "reason": "code",
                                  "start_datetime": "datetime", "end_datetime": "datetime"},
    "ctos": {"cto_id": "id", "person_id": "id", "start_date": "date", "end_date": "date", "end_reason": "code"},
    "outcome_measures": {"assessment_id": "id", "person_id": "id", "referral_id": "id", "tool": "code",
                         "score": "float", "assessment_date": "date"},
    "patient_experience": {"response_id": "id", "ethnic_category": "code", "response_date": "date", "rating": "int"},
}
POPULATION_SCHEMA: dict[str, ColumnType] = {"ethnic_category": "code", "age_band": "code", "sex": "code",
                                            "population": "int"}
PRIMARY_KEYS = {table: next(iter(cols)) for table, cols in TABLE_SCHEMAS.items()}
#: Columns that must never appear in a releasable output (identifiers and quasi-identifiers).
IDENTIFIER_COLUMNS = {"person_id", "referral_id", "episode_id", "spell_id", "intervention_id", "cto_id",
                      "assessment_id", "response_id", "nhs_number", "date_of_birth", "postcode", "lsoa"}
DATE_FORMAT = "%Y-%m-%d"
DATETIME_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")
