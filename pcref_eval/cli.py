"""Command line: ``pcref-eval synth | run | demo | validate | check-contracts | check-release | runs``.

This is the only place the process environment and arguments are read. Expected failures
(bad config, path, date or extract) print one line per problem to stderr, naming the key or path,
and exit 2, with no traceback (``PCREF_DEBUG=1`` shows one for an unexpected error).

Exit codes: 0 success; 1 partial (some site or step failed, or validation warnings);
2 failure (bad input, nothing usable, validation errors); 3 another run holds the lock.

Adding a subcommand is one block in :func:`build_parser`: ``_command(sub, name, help, example,
exit_codes)`` builds its help (description, then an example and its exit codes at the end), every
option gets a ``help=`` (a test checks), and ``COMMANDS`` maps the name to its function.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pcref_eval import __version__

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DATA = REPO_ROOT / "data" / "demo"
DEMO_PEOPLE, DEMO_SEED, DEMO_SITES = 100_000, 2024, 6  # 4 pilot sites + 2 comparison sites

#: Exit codes, by command family (the last lines of each subcommand's help).
RUN_EXIT_CODES = {0: "success; or, with --if-changed, nothing changed (no run created)",
                  1: "partial: a site or step failed (the other sites' results are published)",
                  2: "failure: bad config, path or extract, or nothing usable",
                  3: "another run holds the lock on this outputs folder",
                  130: "interrupted (Ctrl-C)"}
VALIDATE_EXIT_CODES = {0: "every check passed", 1: "warning-level checks failed only",
                       2: "an error-level check failed, an extract could not be read, or bad path"}
SIMPLE_EXIT_CODES = {0: "success", 2: "failure: bad input (the message names the option, key or path)"}


def epilog(example: str, exit_codes: dict[int, str]) -> str:
    """The end of a subcommand's help: one example command, then its exit codes."""
    codes = "\n".join(f"  {code:<4}{meaning}" for code, meaning in exit_codes.items())
    return f"example:\n  {example}\n\nexit codes:\n{codes}"


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's layout and appends an option's default when it says something."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if ("%(default)" not in text and action.option_strings and default not in (None, False, argparse.SUPPRESS)
                and not isinstance(default, bool)):
            text += " (default: %(default)s)"
        return text


def _command(sub, name: str, help: str, example: str, exit_codes: dict[int, str] = SIMPLE_EXIT_CODES):
    """Add subcommand ``name`` whose help ends with ``example`` and ``exit_codes``."""
    return sub.add_parser(name, help=help, description=help[:1].upper() + help[1:] + ".",
                          epilog=epilog(example, exit_codes), formatter_class=_HelpFormatter)


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pcref-eval", description="Evaluate PCREF across NHS mental health sites.",
                                epilog="Run 'pcref-eval COMMAND --help' for a command's options, an example and "
                                       "its exit codes.")
    p.add_argument("--version", action="version", version=f"pcref-eval {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = _command(sub, "synth", "write synthetic site extracts with known truth",
                 "pcref-eval synth --out data/synthetic --sites 4 --people 20000 --seed 7")
    s.add_argument("--out", required=True, type=Path, help="folder to write <site_id>/ and truth.json into")
    s.add_argument("--sites", type=positive_int, default=DEMO_SITES, help="number of sites")
    s.add_argument("--people", type=positive_int, default=DEMO_PEOPLE, help="people in contact, over all sites")
    s.add_argument("--seed", type=int, default=DEMO_SEED, help="random seed (same seed, same data)")
    s.add_argument("--faults", action="store_true", help="inject data-quality faults (counts in truth.json)")
    s.add_argument("--format", choices=["csv", "parquet"], default="csv", help="file format of the tables")

    r = _command(sub, "run", "run the evaluation described by a config file",
                 "pcref-eval run --config configs/example.yml --if-changed", RUN_EXIT_CODES)
    r.add_argument("--config", required=True, type=Path, help="evaluation config (YAML; see configs/example.yml)")
    _add_run_options(r)

    d = _command(sub, "demo", "generate the synthetic demo data (if absent) and evaluate it",
                 "pcref-eval demo --people 20000 --sites 3", RUN_EXIT_CODES)
    d.add_argument("--people", type=positive_int, default=DEMO_PEOPLE, help="people in contact, over all sites")
    d.add_argument("--seed", type=int, default=DEMO_SEED, help="random seed of the synthetic data and the run")
    d.add_argument("--sites", type=positive_int, default=DEMO_SITES, help="number of synthetic sites")
    d.add_argument("--data", type=Path, default=None,
                   help=f"data folder (default {DEMO_DATA.relative_to(REPO_ROOT)}, or data/demo-<sites>s-<people>p-"
                        f"seed<seed> when the size or seed differ)")
    d.add_argument("--outputs", type=Path, default=REPO_ROOT / "outputs", help="outputs folder (runs/ goes here)")
    d.add_argument("--data-only", action="store_true",
                   help="make the data and its config.yml (what the notebooks open by default), then stop")
    _add_run_options(d)

    v = _command(sub, "validate", "check site extract(s) against the data contracts",
                 "pcref-eval validate data/demo --all", VALIDATE_EXIT_CODES)
    v.add_argument("path", type=Path, help="a site folder, or a folder of site folders")
    v.add_argument("--all", action="store_true", help="list every check, not only the failed ones")
    v.add_argument("--outputs", type=Path, default=REPO_ROOT / "outputs",
                   help="outputs folder: results (restricted) go to <outputs>/validate/<time>/restricted/dq/<site>/")
    v.add_argument("--out", type=Path, default=None,
                   help="exact folder for this validation's results instead (restricted/dq/<site>/ inside it)")

    k = _command(sub, "check-contracts", "check the data-contract suite files with great-expectations (no data "
                                         "needed) and record the check for later runs",
                 "pcref-eval check-contracts --contracts my_contracts/")
    k.add_argument("--contracts", type=Path, default=None, help="suite folder (default: the shipped data_contracts/)")
    k.add_argument("--outputs", type=Path, default=REPO_ROOT / "outputs",
                   help="outputs folder whose .cache/ records the check (runs there then skip it)")

    c = _command(sub, "check-release", "scan a run's release/ folder for disclosive content",
                 "pcref-eval check-release outputs/runs/20261201T020000-0a1b2c3d",
                 {0: "release/ is clean", 2: "violations found (listed), or no release/ folder"})
    c.add_argument("run_dir", type=Path, help="a run folder (the one holding release/)")

    _add_benchmark_parser(sub)

    h = _command(sub, "runs", "list past runs from the run registry (newest first)",
                 "pcref-eval runs --outputs outputs --limit 5 --json")
    h.add_argument("--config", type=Path, default=None, help="list the runs of this config's outputs folder")
    h.add_argument("--outputs", type=Path, default=None,
                   help=f"outputs folder whose registry.sqlite to read (default {REPO_ROOT / 'outputs'})")
    h.add_argument("--registry", default=None, help="SQLAlchemy URL of a shared registry (e.g. postgresql://...)")
    h.add_argument("--limit", type=positive_int, default=20, help="show at most this many runs")
    h.add_argument("--all-outputs", action="store_true", help="with a shared registry: runs of every outputs folder")
    h.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_simulate_parser(sub)
    return p


def _add_benchmark_parser(sub) -> None:
    """``pcref-eval benchmark``: ICBs against NHS England's published MHA statistics (no extract, no network)."""
    b = _command(sub, "benchmark", "place every ICB against England in NHS England's published MHA statistics "
                 "(funnel plots; no site data needed; writes tables and figures to OUT/release/; see "
                 "docs/benchmarking.md)",
                 "pcref-eval benchmark --icb QKK --out outputs/benchmark",
                 {0: "done", 2: "bad input (a file that does not fit the published layout, an unknown year or ICB)"})
    b.add_argument("--mha", type=Path, action="append", default=[], metavar="FILE",
                   help="an NHS England MHA annual statistics CSV in the published layout (repeatable)")
    b.add_argument("--year", default=None, help="reporting year, e.g. 2023/24 (default: the latest available)")
    b.add_argument("--icb", action="append", default=[], metavar="CODE", help="ICB ODS code to mark (repeatable)")
    b.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "benchmark",
                   help="folder for release/tables and release/figures (default outputs/benchmark)")


def cmd_benchmark(args) -> int:
    from pcref_eval.benchmark.published import MhaFileError
    from pcref_eval.benchmark.release import run_benchmark
    try:
        return run_benchmark(args.out, args.mha, args.year, args.icb)
    except (MhaFileError, LookupError) as exc:  # LookupError: a file lacking the England or ICB rows needed
        print(f"pcref-eval benchmark: {str(exc).strip(chr(34) + chr(39))}", file=sys.stderr)
        return 2


# --- pcref-eval simulate (issue 11: simulation study of the attribution estimators) -------------------

def _add_simulate_parser(sub) -> None:
    from pcref_eval.config import AttributionConfig
    from pcref_eval.simulate.run import ESTIMATORS
    from pcref_eval.simulate.scenarios import scenarios
    m = _command(sub, "simulate", "simulation study of the PCREF attribution estimators (bias, coverage); "
                 "re-running resumes (replicates already in OUT/replicates.jsonl are skipped)",
                 "pcref-eval simulate --replicates 100 --people 60000 --workers 2 --docs docs",
                 {0: "every replicate fitted every estimator",
                  1: "done, but some estimator failed in some replicate (counted in the table)",
                  2: "bad arguments (e.g. an unknown scenario)"})
    m.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "simulation",
                   help="folder for replicates.jsonl and summary.csv (resumable)")
    m.add_argument("--replicates", type=positive_int, default=100, help="replicates per scenario")
    m.add_argument("--people", type=positive_int, default=60_000, help="people in contact per replicate, over all sites")
    m.add_argument("--seed", type=int, default=20261201, help="random seed of the study (same seed, same replicates)")
    m.add_argument("--workers", type=positive_int, default=2, help="parallel processes")
    m.add_argument("--scenarios", nargs="+", default=list(scenarios()), metavar="NAME",
                   help=f"scenarios to run (default all: {', '.join(scenarios())})")
    m.add_argument("--estimators", nargs="+", default=None, metavar="NAME",
                   help="estimators to fit (default all: " + ", ".join(ESTIMATORS) + "); use a new --out for "
                        "another set (a resumed study keeps what its replicates recorded)")
    m.add_argument("--drift-sd", type=float, default=AttributionConfig().site_drift_sd_per_year,
                   help="site-drift allowance (log hazard ratio per year) of calendar_cox_drift")
    m.add_argument("--docs", type=Path, default=None,
                   help="docs folder: rewrite the results in simulation-study.md and figures/simulation-study.png")
    m.add_argument("--summarise-only", action="store_true",
                   help="run nothing: summarise the replicates already in OUT (up to --replicates per scenario)")


def cmd_simulate(args) -> int:
    from pcref_eval.simulate import StudySettings, figure, load_results, markdown_table, performance, run_study
    from pcref_eval.simulate.summary import paired_difference, paired_markdown
    from pcref_eval.simulate.scenarios import scenarios
    from pcref_eval.simulate.run import ESTIMATORS
    unknown = sorted(set(args.scenarios) - set(scenarios()))
    unknown_est = sorted(set(args.estimators or ()) - set(ESTIMATORS))
    if unknown or unknown_est or args.replicates < 2 or args.people < 1000 or args.workers < 1 or args.drift_sd < 0:
        why = (f"unknown scenario(s) {unknown}; choose from {list(scenarios())}" if unknown
               else f"unknown estimator(s) {unknown_est}; choose from {list(ESTIMATORS)}" if unknown_est
               else "need --replicates >= 2, --people >= 1000, --workers >= 1 and --drift-sd >= 0")
        print(f"pcref-eval simulate: {why}", file=sys.stderr)
        return 2
    settings = StudySettings(replicates=args.replicates, people=args.people, seed=args.seed,
                             scenario_names=tuple(args.scenarios), workers=args.workers,
                             estimators=tuple(args.estimators) if args.estimators else None, drift_sd=args.drift_sd)
    if args.summarise_only:
        from pcref_eval.simulate.run import RESULTS
        path = args.out / RESULTS
        if not path.exists():
            print(f"pcref-eval simulate: {path}: no replicates to summarise", file=sys.stderr)
            return 2
    else:
        path = run_study(args.out, settings)
    results = load_results(path, people=args.people)
    results = results[results["scenario"].isin(args.scenarios) & (results["rep"] < args.replicates)]
    perf = performance(results)
    order = {name: i for i, name in enumerate(args.scenarios)}
    perf = perf.sort_values("scenario", key=lambda c: c.map(order), kind="stable").reset_index(drop=True)
    perf.to_csv(args.out / "summary.csv", index=False)
    table = markdown_table(perf)
    print(table)
    diff = paired_difference(results, "calendar_cox", "calendar_cox_year0")
    if len(diff):
        paired = paired_markdown(diff, "calendar_cox", "calendar_cox_year0")
        print(paired)
        table += ("\nSame replicates: the main estimate (`calendar_cox`) minus the model with year 0 as one bin "
                  "(`calendar_cox_year0`):\n\n" + paired)
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
    r = perf.groupby("scenario")["replicates"].max()
    size = f"{r.min()}" if r.min() == r.max() else f"{r.min()}-{r.max()} (column R)"
    estimators = f" --estimators {' '.join(settings.estimators)}" if settings.estimators else ""
    block = (f"{start}\n{size} replicates per scenario, {settings.people:,} people each, seed "
             f"{settings.seed} (`pcref-eval simulate --replicates {settings.replicates} --people {settings.people} "
             f"--seed {settings.seed}{estimators} --docs docs`).\n\n{table}\n![Bias and coverage by scenario and estimator]"
             f"(figures/{fig.name})\n{end}")
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    page.write_text(head + block + tail)
    print(f"wrote {page} and {fig}")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", choices=["serial", "process", "dask"], default=None,
                   help="how site notebooks run: one after another, in a process pool (default), or as tasks "
                        "on a Dask cluster (see --scheduler)")
    p.add_argument("--workers", type=positive_int, default=None, help="process pool size (default: one per core)")
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
    except (ConfigError, ExtractError, FileExistsError, NotADirectoryError, FileNotFoundError,
            PermissionError) as exc:
        fail(args.command, exc)
        return 2
    except RunLocked as exc:
        fail(args.command, exc)
        return 3
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a workbench bug, not bad input: still one line unless asked
        if os.environ.get("PCREF_DEBUG"):
            raise
        print(f"pcref-eval {args.command}: internal error ({type(exc).__name__}: {' '.join(str(exc).split())}). "
              f"Set PCREF_DEBUG=1 to see the traceback and report it.", file=sys.stderr)
        return 2


def fail(command: str, exc: BaseException) -> None:
    """Print an expected failure: each line of its message prefixed with the command, no traceback."""
    for line in str(exc).splitlines() or [type(exc).__name__]:
        print(f"pcref-eval {command}: {line}", file=sys.stderr)


def cmd_synth(args) -> int:
    from pcref_eval.synth import generate
    if args.out.exists() and not args.out.is_dir():
        raise NotADirectoryError(f"--out {args.out}: is a file, not a folder")
    truth = generate(args.out, n_sites=args.sites, people=args.people, seed=args.seed, faults=args.faults,
                     fmt=args.format)
    print(f"wrote {len(truth['sites'])} site(s) to {args.out} (truth in {args.out / 'truth.json'})")
    return 0


def cmd_run(args) -> int:
    from pcref_eval.config import check_site_folders, load_config
    config = load_config(args.config)
    check_site_folders(config, args.config)  # refused before any work
    return _run(config, args)


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
    for option, folder in (("--data", args.data), ("--outputs", args.outputs)):
        if folder is not None and folder.exists() and not folder.is_dir():
            raise NotADirectoryError(f"{option} {folder}: is a file, not a folder")
    data = args.data or (DEMO_DATA if (args.people, args.seed, args.sites) == (DEMO_PEOPLE, DEMO_SEED, DEMO_SITES)
                         else REPO_ROOT / "data" / f"demo-{args.sites}s-{args.people}p-seed{args.seed}")
    ensure_demo_data(data, people=args.people, seed=args.seed, sites=args.sites, echo=print)
    config = demo_config(data, args.outputs, seed=args.seed)
    if args.data_only:
        print(f"demo data and config: {data / 'config.yml'}")
        return 0
    return _run(config, args)


def cmd_validate(args) -> int:
    from pcref_eval.contracts.command import validate_command
    return validate_command(args.path, args.out, out_root=args.outputs / "validate", all_checks=args.all)


def cmd_check_contracts(args) -> int:
    import time
    from importlib import metadata

    from pcref_eval.contracts.suite import ContractError, check_suites_with_gx
    from pcref_eval.runner.pipeline import VERIFIED_CONTRACTS
    if args.contracts is not None and not args.contracts.is_dir():
        raise NotADirectoryError(f"--contracts {args.contracts}: no such folder")
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
    if args.outputs is not None and not args.outputs.is_dir():
        raise NotADirectoryError(f"--outputs {args.outputs}: no such folder")
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
            "benchmark": cmd_benchmark, "simulate": cmd_simulate}

if __name__ == "__main__":
    sys.exit(main())
