"""Command line: ``pcref-eval synth | run | demo | validate | check-release | runs``.

This is the only place the process environment and arguments are read. Expected failures
(bad config, bad extract) print one paragraph to stderr and exit non-zero, with no traceback.

Exit codes: 0 success; 1 partial (some site or step failed, or validation warnings);
2 failure (bad input, nothing usable, validation errors); 3 another run holds the lock.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pcref_eval import __version__

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DATA = REPO_ROOT / "data" / "demo"
DEMO_PEOPLE, DEMO_SEED, DEMO_SITES = 100_000, 2024, 6  # 4 pilot sites + 2 comparison sites


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pcref-eval", description="Evaluate PCREF across NHS mental health sites.")
    p.add_argument("--version", action="version", version=f"pcref-eval {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="write synthetic site extracts with known truth")
    s.add_argument("--out", required=True, type=Path, help="folder to write <site_id>/ and truth.json into")
    s.add_argument("--sites", type=int, default=DEMO_SITES)
    s.add_argument("--people", type=int, default=DEMO_PEOPLE, help="people in contact, over all sites")
    s.add_argument("--seed", type=int, default=DEMO_SEED)
    s.add_argument("--faults", action="store_true", help="inject data-quality faults (counts in truth.json)")
    s.add_argument("--format", choices=["csv", "parquet"], default="csv")

    r = sub.add_parser("run", help="run the evaluation described by a config file")
    r.add_argument("--config", required=True, type=Path)
    _add_run_options(r)

    d = sub.add_parser("demo", help="generate the synthetic demo data (if absent) and evaluate it")
    d.add_argument("--people", type=int, default=DEMO_PEOPLE)
    d.add_argument("--seed", type=int, default=DEMO_SEED)
    d.add_argument("--sites", type=int, default=DEMO_SITES)
    d.add_argument("--data", type=Path, default=None, help=f"data folder (default {DEMO_DATA.relative_to(REPO_ROOT)})")
    d.add_argument("--outputs", type=Path, default=REPO_ROOT / "outputs")
    _add_run_options(d)

    v = sub.add_parser("validate", help="check site extract(s) against the data contracts")
    v.add_argument("path", type=Path, help="a site folder, or a folder of site folders")
    v.add_argument("--out", type=Path, default=None, help="where to write results (restricted)")

    k = sub.add_parser("check-contracts", help="check the data-contract suite files with great-expectations "
                                               "(no data needed) and record the check for later runs")
    k.add_argument("--contracts", type=Path, default=None, help="suite folder (default: the shipped data_contracts/)")
    k.add_argument("--outputs", type=Path, default=REPO_ROOT / "outputs",
                   help="outputs folder whose .cache/ records the check (runs there then skip it)")

    c = sub.add_parser("check-release", help="scan a run's release/ folder for disclosive content")
    c.add_argument("run_dir", type=Path)

    h = sub.add_parser("runs", help="list past runs from the run registry (newest first)")
    h.add_argument("--config", type=Path, default=None, help="list the runs of this config's outputs folder")
    h.add_argument("--outputs", type=Path, default=None,
                   help=f"outputs folder whose registry.sqlite to read (default {REPO_ROOT / 'outputs'})")
    h.add_argument("--registry", default=None, help="SQLAlchemy URL of a shared registry (e.g. postgresql://...)")
    h.add_argument("--limit", type=int, default=20)
    h.add_argument("--all-outputs", action="store_true", help="with a shared registry: runs of every outputs folder")
    h.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_simulate_parser(sub)
    return p


# --- pcref-eval simulate (issue 11: simulation study of the attribution estimators) -------------------

SIMULATE_EPILOG = """\
example:
  pcref-eval simulate --replicates 100 --people 60000 --workers 2 --docs docs
  (regenerates docs/simulation-study.md's results table and docs/figures/simulation-study.png;
   re-running resumes: replicates already in OUT/replicates.jsonl are skipped)

exit codes: 0 every replicate fitted every estimator; 1 done, but some estimator failed in some
replicate (counted in the table); 2 bad arguments (e.g. an unknown scenario)."""


def _add_simulate_parser(sub) -> None:
    from pcref_eval.simulate.scenarios import scenarios
    m = sub.add_parser("simulate", help="simulation study of the PCREF attribution estimators (bias, coverage)",
                       epilog=SIMULATE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "simulation",
                   help="folder for replicates.jsonl and summary.csv (resumable)")
    m.add_argument("--replicates", type=int, default=100, help="replicates per scenario")
    m.add_argument("--people", type=int, default=60_000, help="people in contact per replicate, over all sites")
    m.add_argument("--seed", type=int, default=20261201)
    m.add_argument("--workers", type=int, default=2, help="parallel processes")
    m.add_argument("--scenarios", nargs="+", default=list(scenarios()), metavar="NAME",
                   help=f"scenarios to run (default all: {', '.join(scenarios())})")
    m.add_argument("--docs", type=Path, default=None,
                   help="docs folder: rewrite the results in simulation-study.md and figures/simulation-study.png")


def cmd_simulate(args) -> int:
    from pcref_eval.simulate import StudySettings, figure, load_results, markdown_table, performance, run_study
    from pcref_eval.simulate.scenarios import scenarios
    unknown = sorted(set(args.scenarios) - set(scenarios()))
    if unknown or args.replicates < 2 or args.people < 1000 or args.workers < 1:
        why = (f"unknown scenario(s) {unknown}; choose from {list(scenarios())}" if unknown
               else "need --replicates >= 2, --people >= 1000 and --workers >= 1")
        print(f"pcref-eval simulate: {why}", file=sys.stderr)
        return 2
    settings = StudySettings(replicates=args.replicates, people=args.people, seed=args.seed,
                             scenario_names=tuple(args.scenarios), workers=args.workers)
    path = run_study(args.out, settings)
    results = load_results(path, people=args.people)
    results = results[results["scenario"].isin(args.scenarios) & (results["rep"] < args.replicates)]
    perf = performance(results)
    order = {name: i for i, name in enumerate(args.scenarios)}
    perf = perf.sort_values("scenario", key=lambda c: c.map(order), kind="stable").reset_index(drop=True)
    perf.to_csv(args.out / "summary.csv", index=False)
    table = markdown_table(perf)
    print(table)
    if args.docs is not None:
        _write_simulation_docs(args.docs, table, perf, settings)
    return 1 if perf["failed"].sum() else 0


def _write_simulation_docs(docs: Path, table: str, perf, settings) -> None:
    """Replace the results block of docs/simulation-study.md and redraw its figure."""
    from pcref_eval.simulate import figure
    fig = figure(perf, docs / "figures" / "simulation-study.png")
    page = docs / "simulation-study.md"
    text = page.read_text() if page.exists() else "# Simulation study\n\n<!-- results:start -->\n<!-- results:end -->\n"
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    block = (f"{start}\n{settings.replicates} replicates per scenario, {settings.people:,} people each, seed "
             f"{settings.seed} (`pcref-eval simulate --replicates {settings.replicates} --people {settings.people} "
             f"--seed {settings.seed} --docs docs`).\n\n{table}\n![Bias and coverage by scenario and estimator]"
             f"(figures/{fig.name})\n{end}")
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    page.write_text(head + block + tail)
    print(f"wrote {page} and {fig}")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", choices=["serial", "process", "dask"], default=None,
                   help="how site notebooks run: one after another, in a process pool (default), or as tasks "
                        "on a Dask cluster (see --scheduler)")
    p.add_argument("--workers", type=int, default=None, help="process pool size (default: one per core)")
    p.add_argument("--scheduler", default=None,
                   help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (implies --executor dask; without it "
                        "--executor dask starts a local cluster)")
    p.add_argument("--force", action="store_true", help="re-run every step, even those whose inputs are unchanged")
    p.add_argument("--if-changed", action="store_true",
                   help="exit 0 at once, creating no run, when no input changed since the latest successful run")
    p.add_argument("--registry", default=None,
                   help="SQLAlchemy URL of the run registry (default sqlite:///<outputs>/registry.sqlite)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pcref_eval.config import ConfigError
    from pcref_eval.extract import ExtractError
    from pcref_eval.runner.lock import RunLocked
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, ExtractError, FileExistsError) as exc:
        print(f"pcref-eval {args.command}: {exc}", file=sys.stderr)
        return 2
    except RunLocked as exc:
        print(f"pcref-eval {args.command}: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def cmd_synth(args) -> int:
    from pcref_eval.synth import generate
    truth = generate(args.out, n_sites=args.sites, people=args.people, seed=args.seed, faults=args.faults,
                     fmt=args.format)
    print(f"wrote {len(truth['sites'])} site(s) to {args.out} (truth in {args.out / 'truth.json'})")
    return 0


def cmd_run(args) -> int:
    from pcref_eval.config import load_config
    return _run(load_config(args.config), args)


def _run(config, args) -> int:
    from pcref_eval.runner.pipeline import RunOptions, run_evaluation
    executor = args.executor or ("dask" if args.scheduler else "process")
    result = run_evaluation(config, RunOptions(executor=executor, workers=args.workers, scheduler=args.scheduler,
                                               force=args.force, if_changed=args.if_changed,
                                               registry=args.registry))
    if result.skipped:
        print(f"latest run folder: {result.run_dir}")
        return 0
    if result.report:
        print(f"report: {result.report}")
    print(f"run folder: {result.run_dir}")
    return result.exit_code


def cmd_demo(args) -> int:
    from pcref_eval.demo import demo_config, ensure_demo_data
    data = args.data or (DEMO_DATA if (args.people, args.seed, args.sites) == (DEMO_PEOPLE, DEMO_SEED, DEMO_SITES)
                         else REPO_ROOT / "data" / f"demo-{args.sites}s-{args.people}p-seed{args.seed}")
    ensure_demo_data(data, people=args.people, seed=args.seed, sites=args.sites, echo=print)
    return _run(demo_config(data, args.outputs, seed=args.seed), args)


def cmd_validate(args) -> int:
    from pcref_eval.contracts.command import validate_command
    return validate_command(args.path, args.out)


def cmd_check_contracts(args) -> int:
    import time
    from importlib import metadata

    from pcref_eval.contracts.suite import ContractError, check_suites_with_gx
    from pcref_eval.runner.pipeline import VERIFIED_CONTRACTS
    record = args.outputs / VERIFIED_CONTRACTS
    t0 = time.perf_counter()
    try:
        suites = check_suites_with_gx(args.contracts, record)
    except ContractError as exc:
        print(f"pcref-eval check-contracts: {exc}", file=sys.stderr)
        return 2
    n = sum(len(s.expectations) for s in suites.values())
    print(f"{len(suites)} suites, {n} expectations: valid for great-expectations "
          f"{metadata.version('great_expectations')} ({time.perf_counter() - t0:.1f} s); recorded in {record}")
    return 0


def cmd_check_release(args) -> int:
    from pcref_eval.release_check import check_release_command
    return check_release_command(args.run_dir)


def cmd_runs(args) -> int:
    import json

    from pcref_eval.runner.registry import Registry, default_url, format_runs
    outputs = args.outputs
    if args.config is not None:
        from pcref_eval.config import load_config
        outputs = load_config(args.config).outputs.dir
    outputs = outputs or REPO_ROOT / "outputs"
    url = args.registry or default_url(outputs)
    if not args.registry and not (outputs / "registry.sqlite").exists():
        print(f"no run registry at {outputs / 'registry.sqlite'} (no run has finished there yet)")
        return 0
    registry = Registry(url)
    runs = registry.list_runs(limit=args.limit, outputs_dir=None if args.all_outputs else outputs)
    print(json.dumps(runs, indent=2, default=str) if args.json else format_runs(runs))
    return 0


COMMANDS = {"synth": cmd_synth, "run": cmd_run, "demo": cmd_demo, "validate": cmd_validate,
            "check-contracts": cmd_check_contracts, "check-release": cmd_check_release, "runs": cmd_runs,
            "simulate": cmd_simulate}

if __name__ == "__main__":
    sys.exit(main())
