"""The synthetic multi-site demo: data generated once, then evaluated like any real run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from pcref_eval.config import EvaluationConfig, OutputConfig, SiteConfig, write_config


def ensure_demo_data(folder: Path, people: int, seed: int, sites: int, echo: Callable[[str], None] = print) -> dict:
    """Generate the demo extracts into ``folder`` unless a matching ``truth.json`` is already there."""
    truth_path = folder / "truth.json"
    if truth_path.exists():
        truth = json.loads(truth_path.read_text())
        if (truth.get("people"), truth.get("seed"), truth.get("n_sites")) == (people, seed, sites):
            echo(f"using existing synthetic data in {folder}")
            return truth
    from pcref_eval.synth import generate
    echo(f"generating synthetic data for {sites} sites, {people:,} people (seed {seed}) in {folder} ...")
    return generate(folder, n_sites=sites, people=people, seed=seed)


def demo_config(folder: Path, outputs: Path, seed: int, formats: list[str] | None = None) -> EvaluationConfig:
    """The demo evaluation's config: every site folder in ``folder``; written there as config.yml."""
    truth = json.loads((folder / "truth.json").read_text())
    sites = [SiteConfig(id=s, path=(folder / s).resolve()) for s in sorted(truth["sites"])]
    config = EvaluationConfig(
        name="PCREF synthetic multi-site demo evaluation", seed=seed, sites=sites,
        outputs=OutputConfig(dir=outputs.resolve(), formats=formats or ["html", "pdf", "docx"]),
    )
    write_config(config, folder / "config.yml")
    return config
