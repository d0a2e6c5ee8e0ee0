"""The run registry: `pcref-eval runs`, other database URLs, and a registry that is down."""

from __future__ import annotations

from pcref_eval import cli
from pcref_eval.runner.pipeline import run_evaluation
from pcref_eval.runner.registry import Registry, format_runs, headline_measures

from .conftest import make_config, options


def test_runs_lists_history_and_failed_sites_are_not_reused(data, tmp_path, no_report, capsys, monkeypatch):
    out = tmp_path / "out"
    config = make_config(data, out, sites=["site_a", "site_b"])
    monkeypatch.setenv("PCREF_STANDIN_RAISE", "site_b")  # fails without any input changing
    first = run_evaluation(config, options(), echo=lambda m: None)
    assert first.status == "partial"
    monkeypatch.delenv("PCREF_STANDIN_RAISE")
    second = run_evaluation(config, options(), echo=lambda m: None)
    assert second.status == "ok"
    assert second.sites["site_a"]["notebook"].cached_from == first.run_id
    assert second.sites["site_b"]["notebook"].cached_from is None  # same key, but it failed: run again

    capsys.readouterr()
    assert cli.main(["runs", "--outputs", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.index(second.run_id) < text.index(first.run_id)  # newest first
    assert "partial" in text and "ok" in text
    assert "detention_rates.rate_ratio[Black]" in text
    assert f"cached from {first.run_id}" in text

    runs = Registry(f"sqlite:///{out / 'registry.sqlite'}").list_runs()
    assert [r["run_id"] for r in runs] == [second.run_id, first.run_id]
    assert {s["site_id"]: s["status"] for s in runs[1]["sites"]} == {"site_a": "ok", "site_b": "failed"}
    assert runs[0]["inputs_hash"] and runs[0]["config_hash"] == config.hash() and runs[0]["cached_steps"] == 2
    # only released aggregates: the headline comes from release/tables, nothing from restricted/
    headline = runs[0]["sites"][0]["headline"]
    assert headline and set(headline) <= set(headline_measures(second.run_dir, "site_a"))
    assert not any("lower" in k for k in headline)


def test_other_registry_url_and_unavailable_registry(data, tmp_path, no_report, capsys):
    shared = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    config = make_config(data, tmp_path / "out", sites=["site_a"])
    result = run_evaluation(config, options(registry=shared), echo=lambda m: None)
    assert not (tmp_path / "out" / "registry.sqlite").exists()
    capsys.readouterr()
    assert cli.main(["runs", "--registry", shared, "--all-outputs"]) == 0
    assert result.run_id in capsys.readouterr().out

    down = "sqlite:////nonexistent-folder/for/sure/registry.sqlite"
    result = run_evaluation(config, options(registry=down), echo=lambda m: None)
    assert result.status == "ok"
    assert "warning: run registry" in (result.run_dir / "run.log").read_text()


def test_format_runs_empty():
    assert format_runs([]) == "no runs recorded"
