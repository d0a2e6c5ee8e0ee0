"""The measure registry: defaults declared as data, user measures from the YAML config, clear errors."""

from __future__ import annotations

import textwrap

import pandas as pd
import pytest

from pcref_eval.config import ConfigError, load_config
from pcref_eval.measures.compute import MeasureSettings, compute_measures, compute_site_measures
from pcref_eval.measures.defaults import MeasureError, default_measures, load_measures, measure_registry
from pcref_eval.measures.definitions import MeasureDefinition

DEFAULT_IDS = ["detentions", "s136_holds", "ctos", "ri_people", "ri_incidents", "prone_restraint", "seclusion",
               "rapid_tranquillisation", "adverse_pathway", "ethnicity_recorded_people",
               "ethnicity_recorded_experience", "positive_experience", "honos_change"]

USER_MEASURE = """
  - id: seclusion_per_1000_obd
    title: Seclusion incidents per 1,000 occupied bed days
    kind: rate_per_bed_days
    numerator: {table: restrictive_interventions, filters: {intervention_type: ["05"]}}
    denominator: bed_days
    direction: decrease
"""


def _config(tmp_path, site_dir, measures_yaml: str = "", extra: str = ""):
    p = tmp_path / "config.yml"
    p.write_text(f"sites: [{{id: tiny, path: {site_dir}}}]\n"
                 "study: {start: 2024-01-01, end: 2024-03-31}\n" + extra
                 + (f"measures:\n{textwrap.dedent(measures_yaml)}" if measures_yaml else ""))
    return p


def test_defaults_are_declared_as_data():
    ms = default_measures()
    assert [m.id for m in ms] == DEFAULT_IDS
    kinds = {m.id: (m.kind, m.denominator, m.scale, m.direction) for m in ms}
    assert kinds["detentions"] == ("rate_per_population", "population", 100_000, "decrease")
    assert kinds["ri_people"] == ("proportion", "inpatients", 1_000, "decrease")
    assert kinds["ri_incidents"] == ("rate_per_bed_days", "bed_days", 1_000, "decrease")
    assert kinds["adverse_pathway"] == ("proportion", "referrals", 100, "decrease")
    assert kinds["positive_experience"] == ("proportion", "responses", 100, "increase")
    assert kinds["honos_change"] == ("mean_change", "referrals", 1, "decrease")
    assert {m.id for m in ms if m.group_by == "overall"} == {"ethnicity_recorded_people",
                                                             "ethnicity_recorded_experience"}
    assert next(m for m in ms if m.id == "positive_experience").group_by == "row"


def test_user_measure_from_yaml_config_is_validated_and_computed(tmp_path, tiny_dir, tiny_site):
    cfg = load_config(_config(tmp_path, tiny_dir, USER_MEASURE))
    assert isinstance(cfg.measures[0], MeasureDefinition)
    registry = measure_registry(cfg.measures)
    assert [m.id for m in registry] == DEFAULT_IDS + ["seclusion_per_1000_obd"]
    df = compute_site_measures(tiny_site, cfg)
    user = df[df["measure"] == "seclusion_per_1000_obd"].reset_index(drop=True)
    default = df[df["measure"] == "seclusion"].reset_index(drop=True)
    cols = ["period", "group", "numerator", "denominator", "value", "lower", "upper", "ratio"]
    pd.testing.assert_frame_equal(user[cols], default[cols])
    assert user["numerator"].sum() == 3  # R2 (White British) and R6 (Black Caribbean, also in the combined row)


def test_user_measure_replaces_a_default_with_the_same_id(tmp_path, tiny_dir, tiny_site):
    yaml = """
      - id: detentions
        title: Detentions under s2 only per 100,000
        kind: rate_per_population
        numerator: {table: mha_episodes, filters: {legal_status_code: ["02"]}}
        denominator: population
        direction: decrease
    """
    cfg = load_config(_config(tmp_path, tiny_dir, yaml))
    registry = measure_registry(cfg.measures)
    assert [m.id for m in registry] == DEFAULT_IDS
    assert registry[0].title.startswith("Detentions under s2 only")
    df = compute_site_measures(tiny_site, cfg)
    assert df.loc[(df["measure"] == "detentions") & (df["group"] != "Black (all focus groups)"), "numerator"].sum() == 4


def test_named_code_lists_follow_the_config(tmp_path, tiny_dir, tiny_site):
    cfg = load_config(_config(tmp_path, tiny_dir, extra="cohort: {detention_codes: ['03']}\n"))
    df = compute_site_measures(tiny_site, cfg, [m for m in default_measures() if m.id == "detentions"])
    # only s3 episodes now: E2 (P1, Feb) and E3 (P3, Jan)
    by = df[df["numerator"] > 0].groupby("group")["numerator"].sum().to_dict()
    assert by == {"White British": 1, "Black African": 1, "Black (all focus groups)": 1}


@pytest.mark.parametrize("entry, key, message", [
    ({"numerator": {"table": "restrictive_interventions", "filters": {"colour": ["05"]}}},
     "measures[0].numerator", "filters.colour: 'colour' is not a column of table 'restrictive_interventions'"),
    ({"numerator": {"table": "restrictive_interventions", "filters": {"intervention_type": [5]}}},
     "measures[0].numerator", "codes must be quoted strings"),
    ({"numerator": {"table": "restraints"}}, "measures[0].numerator.table", "Input should be"),
    ({"denominator": "population"}, "measures[0]", "denominator: 'population' cannot be used with kind"),
    ({"direction": "down"}, "measures[0].direction", "'decrease' or 'increase'"),
    ({"colour": "red"}, "measures[0].colour", "unknown key"),
    ({"per": -5}, "measures[0].per", "greater than 0"),
    ({"id": "Bad Id"}, "measures[0].id", "pattern"),
    ({"numerator": {"table": "restrictive_interventions", "date": "reason"}},
     "measures[0].numerator", "date: column 'reason' of table 'restrictive_interventions' is a code"),
    ({"numerator": {"table": "restrictive_interventions", "filters": {"intervention_type": "seclusion_codes"}}},
     "measures[0].numerator", "'seclusion_codes' is not a code list"),
    ({"group_by": "row"}, "measures[0]", "no ethnic_category column"),
])
def test_bad_user_measure_is_rejected_naming_the_key(tmp_path, tiny_dir, entry, key, message):
    base = {"id": "seclusion_per_1000_obd", "title": "Seclusion", "kind": "rate_per_bed_days",
            "numerator": {"table": "restrictive_interventions", "filters": {"intervention_type": ["05"]}},
            "denominator": "bed_days", "direction": "decrease"}
    import yaml

    text = yaml.safe_dump([{**base, **entry}], sort_keys=False)
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, tiny_dir, text))
    msg = str(err.value)
    assert f"{key}:" in msg, msg
    assert message in msg, msg


def test_cross_field_rules():
    ok = {"id": "x", "title": "X", "direction": "increase"}
    with pytest.raises(ValueError, match="numerator.table must be 'referrals'"):
        MeasureDefinition(**ok, kind="proportion", denominator="referrals",
                          numerator={"table": "patient_experience"})
    with pytest.raises(ValueError, match="needs numerator.value"):
        MeasureDefinition(**ok, kind="mean_change", denominator="referrals", numerator={"table": "outcome_measures"})
    with pytest.raises(ValueError, match="counts people, not events"):
        MeasureDefinition(**ok, kind="proportion", denominator="inpatients",
                          numerator={"table": "restrictive_interventions", "count": "events"})
    with pytest.raises(MeasureError, match=r"measures\[1\]\.kind"):
        load_measures([{**ok, "kind": "rate_per_bed_days", "denominator": "bed_days",
                        "numerator": {"table": "ctos"}}, {**ok, "id": "y", "kind": "ratio"}])
    with pytest.raises(MeasureError, match="duplicate measure id"):
        measure_registry([default_measures()[0], default_measures()[0]])


def test_int_filters_and_people_counts(tiny_site, tiny_settings):
    defs = load_measures([
        {"id": "low_ratings", "title": "Ratings 1-2", "kind": "proportion", "direction": "decrease",
         "numerator": {"table": "patient_experience", "filters": {"rating": [1, 2]}}, "denominator": "responses",
         "group_by": "overall"},
        {"id": "people_detained", "title": "People detained", "kind": "rate_per_population", "direction": "decrease",
         "numerator": {"table": "mha_episodes", "count": "people", "filters": {"legal_status_code": ["02", "03"]}},
         "denominator": "population"},
    ])
    df = compute_measures(tiny_site, defs, tiny_settings)
    low = df[df["measure"] == "low_ratings"].set_index("period")["numerator"].tolist()
    assert low == [1, 1, 0]  # X2 (2) in Jan, X6 (1) in Feb
    people = df[(df["measure"] == "people_detained") & (df["group"] == "White British")]["numerator"].tolist()
    assert people == [1, 1, 0]  # P1 in Jan (s2) and Feb (s3): one person per month
    assert MeasureSettings().reference_group == "White British"
