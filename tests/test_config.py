"""Typed config: valid files load; every kind of mistake is reported with the key that is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from pcref_eval.config import ConfigError, load_config

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
    assert f"- {key}:" in str(err.value)
    assert str(tmp_path / "config.yml") in str(err.value)


@pytest.mark.parametrize("text, fragment", [("sites: [unclosed\n", "not valid YAML"), ("- a\n- b\n", "mapping")])
def test_malformed_yaml_is_reported(tmp_path, text, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config(_write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yml")
