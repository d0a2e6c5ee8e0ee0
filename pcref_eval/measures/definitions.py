"""A measure is data, not code: :class:`MeasureDefinition` declares what is counted and over what.

A measure is computed per site x calendar month x ethnic group (see :mod:`pcref_eval.measures.compute`):

- **numerator**: rows of one extract table (``numerator.table``), dated by ``numerator.date``,
  kept when every filter holds (``filters: {column: [codes]}``: the column's value is one of the
  codes; a string instead of a list names a code list, see :data:`CODE_LISTS`). ``count: events``
  counts rows; ``count: people`` counts distinct people in the month.
- **denominator** (one of :data:`DENOMINATORS`):

  =============  ==========================================================================
  population     catchment population x days in month / 365.25 (person-years), by group
  bed_days       occupied bed days in the month from ``hospital_spells`` (midnights in a bed)
  inpatients     distinct people with a hospital spell overlapping the month
  referrals      referrals received in the month (the numerator is the subset passing filters);
                 for ``mean_change``, referrals whose paired change is completed in the month
  people         people by the month of their first referral (numerator: subset passing filters)
  responses      patient experience responses in the month (numerator: subset passing filters)
  =============  ==========================================================================

- **kind** fixes the statistic and its interval: ``rate_per_population`` and
  ``rate_per_bed_days`` (crude rate, exact Poisson below 10 events / Byar's; rate ratio vs the
  reference group), ``proportion`` (Wilson interval; risk ratio vs the reference group) and
  ``mean_change`` (per ``numerator.pair_by`` unit, last minus first ``numerator.value`` when there
  are two or more; mean with a t interval; difference vs the reference group with a Welch interval).
- **per**: the multiplier (default 100,000 / 1,000 / 100 / 1 by kind).
- **direction**: the direction of improvement ("decrease" or "increase"), used by SPC icons.
- **group_by**: ``person`` (the person's ethnic group through ``person_id`` and ``people``),
  ``row`` (the row's own ``ethnic_category``, e.g. anonymous experience responses) or ``overall``
  (one series, for data-quality measures such as ethnicity recording completeness).

A user adds a measure under ``measures:`` in the evaluation config, e.g.::

    measures:
      - id: seclusion_per_1000_obd
        title: Seclusion incidents per 1,000 occupied bed days
        kind: rate_per_bed_days
        numerator: {table: restrictive_interventions, filters: {intervention_type: ["05"]}}
        denominator: bed_days
        direction: decrease

Mistakes fail when the config loads, naming the key (``measures[0].numerator.filters: column
'colour' is not a column of table 'restrictive_interventions' ...``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pcref_eval.ethnicity import ETHNIC_CATEGORIES
from pcref_eval.schema import TABLE_SCHEMAS

__all__ = [
    "MeasureDefinition",
    "Numerator",
    "KINDS",
    "DENOMINATORS",
    "CODE_LISTS",
    "DEFAULT_PER",
    "DEFAULT_DATE_COLUMN",
    "resolve_codes",
]

Kind = Literal["rate_per_population", "rate_per_bed_days", "proportion", "mean_change"]
Denominator = Literal["population", "bed_days", "inpatients", "referrals", "people", "responses"]
KINDS: tuple[str, ...] = ("rate_per_population", "rate_per_bed_days", "proportion", "mean_change")
DENOMINATORS: tuple[str, ...] = ("population", "bed_days", "inpatients", "referrals", "people", "responses")

#: Which denominators each kind accepts.
KIND_DENOMINATORS: dict[str, tuple[str, ...]] = {
    "rate_per_population": ("population",),
    "rate_per_bed_days": ("bed_days",),
    "proportion": ("inpatients", "referrals", "people", "responses"),
    "mean_change": ("referrals",),
}
#: For proportions over units of one table, the numerator is a subset of that table's rows.
UNIT_TABLE = {"referrals": "referrals", "responses": "patient_experience", "people": "people"}
DEFAULT_PER = {"rate_per_population": 100_000, "rate_per_bed_days": 1_000, "proportion": 100, "mean_change": 1}
#: The column that dates a row (its month) when ``numerator.date`` is not given.
DEFAULT_DATE_COLUMN = {
    "people": None,  # people are dated by their first referral
    "referrals": "referral_date",
    "mha_episodes": "start_date",
    "hospital_spells": "admission_date",
    "restrictive_interventions": "start_datetime",
    "ctos": "start_date",
    "outcome_measures": "assessment_date",
    "patient_experience": "response_date",
}
#: Named code lists a filter may use instead of a literal list. ``None`` values are resolved from the
#: evaluation config (``cohort.detention_codes`` / ``cohort.place_of_safety_codes``) at compute time.
CODE_LISTS: dict[str, list[str] | None] = {
    "detention_codes": None,
    "place_of_safety_codes": None,
    "recorded_ethnicity": list(ETHNIC_CATEGORIES),
}

TableName = Literal[
    "people", "referrals", "mha_episodes", "hospital_spells", "restrictive_interventions", "ctos",
    "outcome_measures", "patient_experience",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Numerator(_Strict):
    """What is counted: rows of ``table`` in the month (by ``date``), kept when every filter holds."""

    table: TableName
    date: str | None = None
    filters: dict[str, list[str | int] | str] = Field(default_factory=dict)
    count: Literal["events", "people"] = "events"
    value: str | None = None  # mean_change: the score column
    pair_by: str | None = None  # mean_change: the unit (e.g. referral_id) whose first and last scores pair

    @model_validator(mode="after")
    def _columns_exist(self):
        cols = TABLE_SCHEMAS[self.table]
        date_col = self.date_column
        if self.date is not None:
            if self.date not in cols:
                raise ValueError(f"date: column {self.date!r} is not a column of table {self.table!r}; "
                                 f"it has {list(cols)}")
            if cols[self.date] not in ("date", "datetime"):
                raise ValueError(f"date: column {self.date!r} of table {self.table!r} is a {cols[self.date]}, "
                                 f"not a date; choose one of {[c for c, t in cols.items() if t in ('date', 'datetime')]}")
        elif date_col is None and self.table != "people":  # pragma: no cover - every table has a default
            raise ValueError(f"date: table {self.table!r} needs a date column")
        for col, codes in self.filters.items():
            if col not in cols:
                raise ValueError(f"filters.{col}: {col!r} is not a column of table {self.table!r}; "
                                 f"it has {list(cols)}")
            if isinstance(codes, str):
                if codes not in CODE_LISTS:
                    raise ValueError(f"filters.{col}: {codes!r} is not a code list; give a list of codes "
                                     f"(e.g. [\"05\"]) or one of {sorted(CODE_LISTS)}")
                continue
            if not codes:
                raise ValueError(f"filters.{col}: the list of codes is empty")
            if cols[col] in ("code", "id") and not all(isinstance(c, str) for c in codes):
                bad = [c for c in codes if not isinstance(c, str)]
                raise ValueError(f"filters.{col}: codes must be quoted strings (YAML reads 05 as the number 5): "
                                 f"got {bad}; write e.g. [\"05\"]")
            if cols[col] in ("int", "float") and not all(_is_number(c) for c in codes):
                raise ValueError(f"filters.{col}: column {col!r} is numeric; give numbers, got {codes}")
            if cols[col] in ("date", "datetime"):
                raise ValueError(f"filters.{col}: filtering on a date column is not supported")
        for key in ("value", "pair_by"):
            col = getattr(self, key)
            if col is not None and col not in cols:
                raise ValueError(f"{key}: {col!r} is not a column of table {self.table!r}; it has {list(cols)}")
        if self.value is not None and cols[self.value] not in ("int", "float"):
            raise ValueError(f"value: column {self.value!r} of table {self.table!r} is not numeric")
        if self.count == "people" and "person_id" not in cols:
            raise ValueError(f"count: table {self.table!r} has no person_id, so people cannot be counted")
        return self

    @property
    def date_column(self) -> str | None:
        """The column dating each row (``date`` or the table's default)."""
        return self.date if self.date is not None else DEFAULT_DATE_COLUMN[self.table]


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class MeasureDefinition(_Strict):
    """One core measure: numerator, denominator, filters, period, direction of improvement, grouping."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=60)
    title: str = Field(min_length=1)
    kind: Kind
    numerator: Numerator
    denominator: Denominator
    per: float | None = Field(default=None, gt=0)
    direction: Literal["decrease", "increase"]
    group_by: Literal["person", "row", "overall"] = "person"
    period: Literal["month"] = "month"
    target: float | None = None  # optional target on the measure's scale (assurance icon, overall measures)
    ratio_target: float | None = None  # SPC target for the focus/reference gap; default parity (ratio 1, difference 0)
    description: str = ""

    @field_validator("title")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.strip()

    @model_validator(mode="after")
    def _consistent(self):
        allowed = KIND_DENOMINATORS[self.kind]
        if self.denominator not in allowed:
            raise ValueError(f"denominator: {self.denominator!r} cannot be used with kind {self.kind!r}; "
                             f"use one of {list(allowed)}")
        num = self.numerator
        if self.kind == "proportion" and self.denominator in UNIT_TABLE and num.table != UNIT_TABLE[self.denominator]:
            raise ValueError(f"numerator.table: a proportion of {self.denominator} counts the {self.denominator} "
                             f"that pass the filters, so numerator.table must be "
                             f"{UNIT_TABLE[self.denominator]!r}, not {num.table!r}")
        if self.kind == "proportion" and self.denominator == "inpatients":
            if "person_id" not in TABLE_SCHEMAS[num.table]:
                raise ValueError(f"numerator.table: {num.table!r} has no person_id; inpatients are people")
            if "count" in num.model_fields_set and num.count != "people":
                raise ValueError("numerator.count: a proportion of inpatients counts people, not events")
        if self.kind == "proportion" and num.count == "people" and self.denominator != "inpatients":
            raise ValueError("numerator.count: 'people' is only meaningful for rates and for inpatients")
        if self.kind == "mean_change":
            if num.value is None or num.pair_by is None:
                raise ValueError("numerator: a mean_change measure needs numerator.value (the score column) "
                                 "and numerator.pair_by (e.g. referral_id)")
        elif num.value is not None or num.pair_by is not None:
            raise ValueError("numerator: value and pair_by are only used by kind 'mean_change'")
        cols = TABLE_SCHEMAS[num.table]
        if self.group_by == "person" and "person_id" not in cols:
            hint = " (use group_by: row to group by the row's own ethnic_category)" if "ethnic_category" in cols else ""
            raise ValueError(f"group_by: table {num.table!r} has no person_id to find the person's ethnic group{hint}")
        if self.group_by == "row" and "ethnic_category" not in cols:
            raise ValueError(f"group_by: table {num.table!r} has no ethnic_category column; use group_by: person")
        if self.denominator in ("population", "bed_days", "inpatients") and self.group_by == "row":
            raise ValueError(f"group_by: a {self.denominator} denominator is grouped by the person's ethnic group; "
                             f"use group_by: person or overall")
        if num.table == "people" and self.denominator != "people":
            raise ValueError("numerator.table: the people table has no event dates; use it with denominator: people")
        return self

    @property
    def scale(self) -> float:
        """The multiplier ``per`` (or the kind's default)."""
        return float(self.per) if self.per is not None else float(DEFAULT_PER[self.kind])

    @property
    def comparison(self) -> str | None:
        """How groups are compared with the reference group: "ratio", "difference" or None (overall)."""
        if self.group_by == "overall":
            return None
        return "difference" if self.kind == "mean_change" else "ratio"

    @property
    def gap_target(self) -> float | None:
        """Target of the focus/reference comparison in SPC assurance icons: ``ratio_target`` or parity."""
        if self.comparison is None:
            return None
        if self.ratio_target is not None:
            return float(self.ratio_target)
        return 0.0 if self.comparison == "difference" else 1.0

    @property
    def unit_label(self) -> str:
        """Human label of the value's unit, e.g. "per 100,000 population per year"."""
        per = f"{self.scale:,.0f}"
        return {
            "rate_per_population": f"per {per} population per year",
            "rate_per_bed_days": f"per {per} occupied bed days",
            "proportion": "%" if self.scale == 100 else f"per {per} {self.denominator}",
            "mean_change": "mean change" if self.scale == 1 else f"mean change x {per}",
        }[self.kind]


def resolve_codes(codes: list | str, code_lists: dict[str, list[str]] | None = None) -> list:
    """The codes of a filter: the literal list, or the named list (from ``code_lists``, else :data:`CODE_LISTS`)."""
    if not isinstance(codes, str):
        return list(codes)
    lists = {**{k: v for k, v in CODE_LISTS.items() if v is not None}, **(code_lists or {})}
    if codes not in lists:
        raise ValueError(f"code list {codes!r} is not available; known lists are {sorted(lists)}")
    return list(lists[codes])
