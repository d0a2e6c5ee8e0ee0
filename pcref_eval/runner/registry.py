"""Run history: one row per run and per site, in SQLite or any database SQLAlchemy can reach.

By default the registry is ``outputs/registry.sqlite`` beside ``outputs/runs/``; give any SQLAlchemy
URL instead (``--registry postgresql+psycopg://user@host/pcref``) to share one history between
machines or trusts (install the driver, e.g. ``psycopg``, yourself).

Tables:

- ``runs``: run_id, outputs_dir, started, finished, status, config_hash, inputs_hash, git_commit,
  seconds, executor, cached_steps.
- ``site_results``: run_id, site_id, status, input_hash, cached_from, headline (JSON).

Only **aggregate, released** numbers go into the registry: headline measures are read from the
run's ``release/tables/<site>_*.csv`` (already disclosure-controlled), never from ``restricted/``.

The registry is a convenience, not part of the result: if it cannot be written (database down,
driver missing) the run goes on and logs a warning.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

from sqlalchemy import (Column, Float, Integer, MetaData, String, Table, Text, and_, create_engine, delete, insert,
                        select, update)

metadata = MetaData()
runs_table = Table(
    "runs", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("outputs_dir", Text),
    Column("started", String(32)),
    Column("finished", String(32)),
    Column("status", String(16)),
    Column("config_hash", String(64)),
    Column("inputs_hash", String(64)),
    Column("git_commit", String(80)),
    Column("seconds", Float),
    Column("executor", String(16)),
    Column("cached_steps", Integer),
)
site_results_table = Table(
    "site_results", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("site_id", String(128), primary_key=True),
    Column("status", String(16)),
    Column("input_hash", String(64)),
    Column("cached_from", String(64)),
    Column("headline", Text),
)

#: Column-name fragments of the headline measures taken from released tables.
HEADLINE_COLUMNS = ("rate_ratio", "hazard_ratio", "risk_ratio", "odds_ratio", "ratio")
HEADLINE_TABLE_WORDS = ("detention", "rate", "ratio", "hazard", "headline")
MAX_HEADLINES = 12


def default_url(outputs_dir: Path) -> str:
    return f"sqlite:///{Path(outputs_dir).resolve() / 'registry.sqlite'}"


class Registry:
    """The run registry at ``url`` (tables created on first use)."""

    def __init__(self, url: str):
        self.url = url
        kwargs = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {"pool_pre_ping": True}
        self.engine = create_engine(url, future=True, **kwargs)
        metadata.create_all(self.engine)

    def record_start(self, run_id: str, outputs_dir: Path, manifest: dict, executor: str) -> None:
        row = _run_row(run_id, outputs_dir, manifest, executor) | {"status": "running"}
        with self.engine.begin() as con:
            con.execute(delete(runs_table).where(runs_table.c.run_id == run_id))
            con.execute(insert(runs_table).values(**row))

    def record_finish(self, run_dir: Path, manifest: dict, executor: str) -> None:
        run_id = manifest["run_id"]
        row = _run_row(run_id, run_dir.parent.parent, manifest, executor)
        sites = []
        for site_id, steps in manifest.get("sites", {}).items():
            statuses = [s.get("status") for s in steps.values()]
            status = "failed" if "failed" in statuses else "skipped" if statuses and all(
                s == "skipped" for s in statuses) else "ok"
            cached = next((s.get("cached_from") for s in steps.values() if s.get("cached_from")), None)
            sites.append({"run_id": run_id, "site_id": site_id, "status": status, "cached_from": cached,
                          "input_hash": manifest.get("inputs", {}).get(site_id, {}).get("combined"),
                          "headline": json.dumps(headline_measures(run_dir, site_id), sort_keys=True)})
        with self.engine.begin() as con:
            con.execute(delete(runs_table).where(runs_table.c.run_id == run_id))
            con.execute(insert(runs_table).values(**row))
            con.execute(delete(site_results_table).where(site_results_table.c.run_id == run_id))
            if sites:
                con.execute(insert(site_results_table), sites)

    def mark_aborted(self, outputs_dir: Path) -> int:
        """Runs of ``outputs_dir`` still 'running' (their process died): mark them 'aborted'.

        Call only while holding the outputs' run lock (then no run of that folder is alive)."""
        with self.engine.begin() as con:
            res = con.execute(update(runs_table).where(and_(
                runs_table.c.status == "running", runs_table.c.outputs_dir == str(Path(outputs_dir).resolve())))
                .values(status="aborted"))
            return res.rowcount or 0

    def list_runs(self, limit: int = 20, outputs_dir: Path | None = None) -> list[dict]:
        """Newest runs first, each with its ``sites`` (status, cached_from, headline)."""
        q = select(runs_table).order_by(runs_table.c.started.desc(), runs_table.c.run_id.desc()).limit(limit)
        if outputs_dir is not None:
            q = q.where(runs_table.c.outputs_dir == str(Path(outputs_dir).resolve()))
        with self.engine.connect() as con:
            runs = [dict(r._mapping) for r in con.execute(q)]
            ids = [r["run_id"] for r in runs]
            by_run: dict[str, list] = {i: [] for i in ids}
            if ids:
                for r in con.execute(select(site_results_table).where(site_results_table.c.run_id.in_(ids))
                                     .order_by(site_results_table.c.site_id)):
                    d = dict(r._mapping)
                    d["headline"] = json.loads(d["headline"] or "{}")
                    by_run[d["run_id"]].append(d)
        for r in runs:
            r["sites"] = by_run[r["run_id"]]
        return runs

    def close(self) -> None:
        self.engine.dispose()


def _run_row(run_id: str, outputs_dir: Path, manifest: dict, executor: str) -> dict:
    inputs = manifest.get("inputs", {})
    from pcref_eval.runner.manifest import combined_hash
    combined = {s: v.get("combined", "") for s, v in inputs.items() if isinstance(v, dict)}
    cached = sum(1 for steps in manifest.get("sites", {}).values() for s in steps.values() if s.get("cached_from"))
    cached += sum(1 for s in manifest.get("steps", {}).values() if s.get("cached_from"))
    return {"run_id": run_id, "outputs_dir": str(Path(outputs_dir).resolve()), "started": manifest.get("started"),
            "finished": manifest.get("finished"), "status": manifest.get("status"),
            "config_hash": manifest.get("config_hash"), "inputs_hash": combined_hash(combined) if combined else None,
            "git_commit": manifest.get("git_commit"), "seconds": manifest.get("seconds"), "executor": executor,
            "cached_steps": cached}


def headline_measures(run_dir: Path, site_id: str) -> dict[str, float]:
    """Ratio measures from the site's released tables, e.g. ``detention_rates.rate_ratio[Black]``.

    Reads ``release/tables/<site>_*.csv`` whose name mentions detention/rates/ratios, takes columns
    named like a ratio, and labels each value by the row's first text column. Missing tables,
    suppressed (blank) cells and unreadable files are skipped: the result may be empty.
    """
    import pandas as pd
    folder = Path(run_dir) / "release" / "tables"
    out: dict[str, float] = {}
    if not folder.is_dir():
        return out
    prefix = f"{site_id}_"
    for path in sorted(folder.glob(f"{prefix}*.csv")):
        name = path.stem[len(prefix):]
        if not any(w in name for w in HEADLINE_TABLE_WORDS):
            continue
        try:
            df = pd.read_csv(path, nrows=200)
        except Exception:
            continue
        cols = [c for c in df.columns if any(h in str(c).lower() for h in HEADLINE_COLUMNS)
                and not any(x in str(c).lower() for x in ("lower", "upper", "lcl", "ucl", "_lo", "_hi", "ci"))]
        labels = next((df[c].astype(str) for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])), None)
        for col in cols:
            values = pd.to_numeric(df[col], errors="coerce")
            for i, v in values.items():
                if v is None or not math.isfinite(v):
                    continue
                label = labels.iloc[i] if labels is not None else str(i)
                out[f"{name}.{col}[{label}]"] = round(float(v), 4)
                if len(out) >= MAX_HEADLINES:
                    return out
    return out


def safely(action: Callable[[], object], log: Callable[[str], None], what: str):
    """Run a registry action; on any failure log a warning and carry on (returns None)."""
    try:
        return action()
    except Exception as exc:  # database down, driver missing, permissions: never fail the run
        log(f"warning: run registry {what} failed ({type(exc).__name__}: {exc}); the run is unaffected")
        return None


def format_runs(runs: list[dict]) -> str:
    """The ``pcref-eval runs`` table: one line per run, then one per site with its headline measures."""
    if not runs:
        return "no runs recorded"
    head = f"{'RUN ID':<26} {'STARTED':<21} {'STATUS':<8} {'SECONDS':>8}  {'INPUTS':<12} {'CONFIG':<8} {'CACHED':>6}"
    lines = [head, "-" * len(head)]
    for r in runs:
        secs = f"{r['seconds']:.1f}" if r.get("seconds") is not None else "-"
        lines.append(f"{r['run_id']:<26} {r.get('started') or '-':<21} {r.get('status') or '-':<8} {secs:>8}  "
                     f"{(r.get('inputs_hash') or '-')[:12]:<12} {(r.get('config_hash') or '-')[:8]:<8} "
                     f"{r.get('cached_steps') or 0:>6}")
        for s in r.get("sites", []):
            head = ", ".join(f"{k}={v:g}" for k, v in list(s["headline"].items())[:4]) or "no headline measures"
            cached = f" cached from {s['cached_from']}" if s.get("cached_from") else ""
            lines.append(f"    {s['site_id']:<12} {s['status']:<8} inputs {(s.get('input_hash') or '-')[:12]}"
                         f"{cached}  {head}")
    return "\n".join(lines)
