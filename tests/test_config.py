"""Typed config: valid files load; every kind of mistake is reported with the key that is wrong."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from pcref_eval.config import ConfigError, check_site_folders, load_config

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path, text):
    p = tmp_path / "config.yml"
    p.write_text(text)
    return p


def test_example_config_loads_with_resolved_paths():
    cfg = load_config(REPO / "configs" / "example.yml")
    assert [s.id for s in cfg.sites] == ["site_a", "site_b", "site_c", "site_d"]
    assert cfg.sites[0].path == (REPO / "data" / "demo" / "site_a").resolve()
    assert cfg.ethnicity.reference == "White British"
    assert "20" not in cfg.cohort.detention_codes


def test_hash_is_stable_and_sensitive(tmp_path):
    a = load_config(_write(tmp_path, "sites: [{id: a, path: x}]\n"))
    b = load_config(_write(tmp_path, "sites: [{id: a, path: x}]\n"))
    c = load_config(_write(tmp_path, "sites: [{id: a, path: x}]\nseed: 7\n"))
    assert a.hash() == b.hash() != c.hash()


@pytest.mark.parametrize("text, key", [
    ("sites: [{id: a}]\n", "sites[0].path"),
    ("sites: [{id: a, path: x, colour: red}]\n", "sites[0].colour"),
    ("sites: [{id: a, path: x}]\nstudy: {start: 2024-01-01, end: 2023-01-01}\n", "study"),
    ("sites: [{id: a, path: x}]\nstudy: {start: not-a-date}\n", "study.start"),
    ("sites: [{id: a, path: x}]\nstudy: {start: 2024-02-30}\n", "study.start"),  # PyYAML raised ValueError
    ("sites: [{id: a, path: x}]\nstudy: {end: 2025-13-01}\n", "study.end"),
    ("sites: [{id: a, path: x}]\nethnicity: {scheme: census2021}\n", "ethnicity.scheme"),
    ("sites: [{id: a, path: x}]\nethnicity: {scheme: broad, reference_group: White British}\n", "ethnicity"),
    ("sites: [{id: a, path: x}, {id: a, path: y}]\n", "sites"),
    ("sites: []\n", "sites"),
    ("sites: [{id: a, path: x}]\ndisclosure: {policy: lax}\n", "disclosure.policy"),
    ("sites: [{id: a, path: x}]\noutputs: {formats: [html, pptx]}\n", "outputs.formats[1]"),
    ("sites: [{id: a, path: x}]\noutputs: {pdf_engine: princexml}\n", "outputs.pdf_engine"),
    ("sites: [{id: a, path: x}]\nseeed: 3\n", "seeed"),
])
def test_invalid_config_names_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, text))
    assert f"{tmp_path / 'config.yml'}: {key}: " in str(err.value)
    lines = str(err.value).splitlines()
    assert all(line.startswith(f"{tmp_path / 'config.yml'}: ") for line in lines), "one self-contained line each"


def test_impossible_date_names_key_and_value(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, "sites: [{id: a, path: x}]\nstudy: {start: 2024-02-30}\n"))
    assert str(err.value) == (f"{tmp_path / 'config.yml'}: study.start: Input should be a valid date or datetime, "
                              "day value is outside expected range (got '2024-02-30')")


def test_valid_dates_still_parse_as_dates(tmp_path):
    cfg = load_config(_write(tmp_path, "sites: [{id: a, path: x}]\nstudy: {start: 2022-01-31, end: 2024-02-29}\n"))
    assert (cfg.study.start, cfg.study.end) == (date(2022, 1, 31), date(2024, 2, 29))


@pytest.mark.parametrize("text, line", [
    ("sites: [{id: a, path: x}]\nseeed: 3\n", "seeed: unknown key; did you mean 'seed'?"),
    ("sites: [{id: a, paht: x}]\n", "sites[0].paht: unknown key; did you mean 'sites[0].path'?"),
    ("sites: [{id: a, path: x}]\nstudy: {strat: 2022-01-01}\n", "study.strat: unknown key; did you mean 'study.start'?"),
    ("sites: [{id: a, path: x}]\ndisclosure: {treshold: 10}\n",
     "disclosure.treshold: unknown key; did you mean 'disclosure.threshold'?"),
    ("sites: [{id: a, path: x}]\npalette: red\n", "palette: unknown key"),  # nothing close: no guess
])
def test_misspelt_key_gets_a_suggestion(tmp_path, text, line):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, text))
    assert f"{tmp_path / 'config.yml'}: {line}" in str(err.value).splitlines()


def test_missing_site_folders_are_named(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b.csv").write_text("x\n")
    cfg = load_config(_write(tmp_path, "sites: [{id: a, path: a}, {id: b, path: b.csv}, {id: c, path: nowhere}]\n"))
    with pytest.raises(ConfigError) as err:
        check_site_folders(cfg, tmp_path / "config.yml")
    assert str(err.value).splitlines() == [
        f"{tmp_path / 'config.yml'}: sites[1].path: {tmp_path / 'b.csv'} is a file, not a site folder (site 'b')",
        f"{tmp_path / 'config.yml'}: sites[2].path: folder {tmp_path / 'nowhere'} does not exist (site 'c')"]


@pytest.mark.parametrize("text, fragment", [("sites: [unclosed\n", "not valid YAML"), ("- a\n- b\n", "mapping")])
def test_malformed_yaml_is_reported(tmp_path, text, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config(_write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yml")
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)
