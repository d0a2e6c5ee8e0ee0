"""Aggregate declarations and derived values recomputed from released counts (Publisher)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pcref_eval.disclosure import (DisclosurePolicy, MeasureStat, Proportion, Rate, RateRatio, Ratio, Summary,
                                   spec_from_dict, spec_to_dict)
from pcref_eval.publish import Aggregate, Publisher, PublishError
from pcref_eval.rates import poisson_limits, rate_ratio, wilson_limits


def table():
    return pd.DataFrame({"group": ["White British", "Black African", "Black Mixed", "Other"],
                         "people": [4613, 1287, 6, 9], "female": [2302, 651, 3, 4],
                         "events": [476, 127, 2, 0], "population": [209216, 3156, 867, 1203],
                         "age_mean": [45.1, 44.2, 39.0, 50.2]})


def test_undeclared_column_is_an_error_naming_table_and_column(tmp_path):
    pub = Publisher(tmp_path, "x", display=False)
    with pytest.raises(PublishError, match=r"table 'by_group': column\(s\) \['age_mean'\] not declared"):
        pub.release_table(Aggregate(table(), ["people", "female", "events"], denominators=["population"],
                                    labels=["group"]), "by_group", "c")
    with pytest.raises(PublishError, match="'people' is declared as both counts and labels"):
        Aggregate(table(), ["people"], labels=["people"]).declared("t")
    with pytest.raises(PublishError, match=r"derived column 'pct' rests on \['nope'\]"):
        Aggregate(table().assign(pct=1.0), ["people"], {"pct": Proportion("nope", "people")},
                  labels=["group", "female", "events", "population", "age_mean"]).declared("t")
    with pytest.raises(PublishError, match=r"declared column\(s\) \['missing'\] not in the table"):
        Aggregate(table(), ["missing"]).declared("t")
    assert not (tmp_path / "release" / "tables" / "x_by_group.csv").exists()


def test_derived_values_are_recomputed_from_the_released_counts(tmp_path):
    """Back-calculation gives the released count, not the true one (the issue's site_d example: 476 -> 475)."""
    df = table()
    years = 4.0
    df["female_pct"] = 100 * df["female"] / df["people"]
    df["rate"] = df["events"] / (df["population"] * years) * 1e5
    df["rate_lower"] = df["rr"] = df["rr_upper"] = df["female_lower"] = 0.0  # placeholders: recomputed
    agg = Aggregate(df, ["people", "female", "events"],
                    {"female_pct": Proportion("female", "people"), "female_lower": Proportion("female", "people",
                                                                                             interval="lower"),
                     "rate": Rate("events", "population", 1e5, years),
                     "rate_lower": Rate("events", "population", 1e5, years, "lower"),
                     "rr": RateRatio("events", "population", "group", "White British"),
                     "rr_upper": RateRatio("events", "population", "group", "White British", "upper"),
                     "age_mean": Summary("people")},
                    denominators=["population"], labels=["group"])
    pol = DisclosurePolicy.opensafely()
    rt = Publisher(tmp_path, "x", pol, display=False).release_table(agg, "t", "c", decimals=4)
    out = rt.data
    # released counts: 4615, 1285, redacted, redacted; events 475, 125, redacted, 0
    assert out["events"].tolist()[:2] == [475, 125] and pd.isna(out["events"][2]) and out["events"][3] == 0
    assert out["population"].tolist()[:2] == [209215, 3155]
    back = out["rate"] * out["population"] * years / 1e5
    assert np.allclose(back[:2], [475, 125], atol=0.01)  # gives back the RELEASED count, never 476
    assert np.allclose(out["female_pct"][:2] * out["people"][:2] / 100, [2300, 650], atol=0.01)
    lo, _, _ = poisson_limits(np.array([475.0, 125.0]))
    assert np.allclose(out["rate_lower"][:2], lo / (np.array([209215, 3155]) * years) * 1e5, atol=1e-4)
    wl, _ = wilson_limits(np.array([2300.0, 650.0]), np.array([4615.0, 1285.0]))
    assert np.allclose(out["female_lower"][:2], 100 * wl, atol=1e-4)
    rr = rate_ratio(125.0, 3155.0, 475.0, 209215.0)
    assert out["rr"][0] == 1.0 and np.isclose(out["rr"][1], rr["value"][0], atol=1e-4)
    assert np.isclose(out["rr_upper"][1], rr["upper"][0], atol=1e-4)
    # redacted counts blank what rests on them; a zero count keeps a (zero) rate
    assert out[["female_pct", "rate", "rr"]].iloc[2].isna().all() and out["rate"][3] == 0
    # group means: withheld below summary_min (10) people
    assert out["age_mean"].tolist()[:2] == [45.1, 44.2] and out["age_mean"][2:].isna().all()
    assert rt.mask["age_mean"].tolist() == [False, False, True, True]
    entry = json.loads((tmp_path / "release" / "index" / "x.json").read_text())["entries"][0]
    assert entry["columns"]["population"] == "denominators" and entry["formulas"]["rate"]["type"] == "Rate"
    assert spec_from_dict(entry["formulas"]["rr"]) == agg.derived["rr"]


def test_model_outputs_are_blanked_when_a_count_they_rest_on_is_redacted(tmp_path):
    df = pd.DataFrame({"group": ["a", "b"], "detentions": [40, 5], "hr": [1.0, 2.5], "p": [np.nan, 0.01]})
    out = Publisher(tmp_path, "x", display=False).release_table(
        Aggregate(df, ["detentions"], model={"hr": ["detentions"], "p": ["detentions"]}, labels=["group"]),
        "hr", "c").data
    assert out["hr"][0] == 1.0 and pd.isna(out["hr"][1]) and pd.isna(out["p"][1])
    listed = Publisher(tmp_path, "y", display=False).release_table(
        Aggregate(df, ["detentions"], model=["hr", "p"], labels=["group"]), "hr", "c").data
    assert pd.isna(listed["hr"][1])


def test_old_sources_form_still_blanks_on_redaction(tmp_path):
    df = pd.DataFrame({"g": ["a", "b"], "n": [3, 50], "pct": [5.7, 94.3]})
    out = Publisher(tmp_path, "x", display=False).release_table(Aggregate(df, ["n"], {"pct": ["n"]}, labels=["g"]),
                                                                "t", "c").data
    assert pd.isna(out["pct"][0]) and out["pct"][1] == 94.3


def test_measure_stat_mixes_rates_proportions_and_means(tmp_path):
    df = pd.DataFrame({"measure_id": ["d", "d", "p", "p", "m", "m"],
                       "group": ["Ref", "Focus", "Ref", "Focus", "Ref", "Focus"],
                       "count": [102, 48, 333, 97, 40, 6], "denominator": [50012, 9003, 1000, 200, np.nan, np.nan],
                       "value": [0.0] * 6, "ratio": [0.0] * 6})
    kinds = ("rate_per_population",) * 2 + ("proportion",) * 2 + ("mean_change",) * 2
    df.loc[4:, "value"] = [3.2, 4.1]
    df.loc[4:, "ratio"] = [0.0, 0.9]
    agg = Aggregate(df, ["count"], {"value": MeasureStat("count", "denominator", kinds, (1e5,) * 2 + (100.0,) * 4),
                                    "ratio": MeasureStat("count", "denominator", kinds, (1e5,) * 2 + (100.0,) * 4,
                                                         stat="ratio", label_col="group", reference="Ref",
                                                         by=("measure_id",))},
                    denominators=["denominator"], labels=["measure_id", "group"])
    out = Publisher(tmp_path, "x", display=False).release_table(agg, "b", "c", decimals=6).data
    assert np.isclose(out["value"][1], 50 / 9005 * 1e5) and np.isclose(out["value"][3], 95 / 200 * 100)
    assert np.isclose(out["ratio"][1], (50 / 9005) / (100 / 50010))
    assert out["value"][4] == 3.2 and pd.isna(out["value"][5])  # a mean of 6 pairs is withheld
    assert out["ratio"][2] == 1.0


def test_policies_by_name_and_alias():
    assert DisclosurePolicy.named("nhse") == DisclosurePolicy.nhse_mha()
    strict = DisclosurePolicy.strict()
    assert (strict.threshold, strict.rounding, strict.km_rounding, strict.summary_min) == (10, 10, 10, 20)
    with pytest.raises(ValueError, match="unknown disclosure policy 'loose'"):
        DisclosurePolicy.named("loose")
    for spec in (Ratio("a", "b", 2.0), Rate("a", "b", 1e5, 4.0, "upper"), Summary("n")):
        assert spec_from_dict(json.loads(json.dumps(spec_to_dict(spec)))) == spec
