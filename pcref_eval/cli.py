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
DEMO_PEOPLE, DEMO_SEED, DEMO_SITES = 100_000, 2024, 4


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

    c = sub.add_parser("check-release", help="scan a run's release/ folder for disclosive content")
    c.add_argument("run_dir", type=Path)
    return p


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", choices=["serial", "process"], default="process",
                   help="how site notebooks run: one after another, or in a process pool")
    p.add_argument("--workers", type=int, default=None, help="process pool size (default: one per core)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pcref_eval.config import ConfigError
    from pcref_eval.extract import ExtractError
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, ExtractError, FileExistsError) as exc:
        print(f"pcref-eval {args.command}: {exc}", file=sys.stderr)
        return 2
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
    result = run_evaluation(config, RunOptions(executor=args.executor, workers=args.workers))
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


def cmd_check_release(args) -> int:
    from pcref_eval.release_check import check_release_command
    return check_release_command(args.run_dir)


COMMANDS = {"synth": cmd_synth, "run": cmd_run, "demo": cmd_demo, "validate": cmd_validate,
            "check-release": cmd_check_release}

if __name__ == "__main__":
    sys.exit(main())
