"""The command line: bad config values, paths and dates give one line naming the key or path and exit 2,
never a traceback; sites with missing folders are refused before any work; validate shows problems by
default; every option has help and every subcommand's help ends with an example and its exit codes."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from pcref_eval import cli

REPO = Path(__file__).resolve().parents[2]


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_command_has_a_function_and_every_function_a_command():
    assert set(_subcommands()) == set(cli.COMMANDS)


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_option_has_help(name):
    parser = _subcommands()[name]
    missing = [a.dest for a in parser._actions if not (a.help or "").strip() or a.help == argparse.SUPPRESS]
    assert missing == [], f"{name}: options without help text: {missing}"


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_help_ends_with_an_example_and_exit_codes(name):
    text = _subcommands()[name].format_help()
    example = text.index("example:\n  pcref-eval " + name)
    codes = text.index("exit codes:\n  0 ", example)
    tail = text[codes:].rstrip().splitlines()[1:]
    assert tail and all(line.split()[0].isdigit() for line in tail), tail
    assert "2" in [line.split()[0] for line in tail]


def test_help_examples_parse():
    """The example in each help is a valid command line for that subcommand."""
    for name, parser in _subcommands().items():
        example = parser.epilog.split("example:\n  ", 1)[1].splitlines()[0]
        args = cli.build_parser().parse_args(example.split()[1:])
        assert args.command == name


def _run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _config(tmp_path, text):
    p = tmp_path / "config.yml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, expected", [
    ("sites: [{id: a, path: .}]\nstudy: {start: 2024-02-30}\n",
     "study.start: Input should be a valid date or datetime, day value is outside expected range (got '2024-02-30')"),
    ("sites: [{id: a, path: .}]\nstudy: {start: 2024-04-01, end: 2023-03-31}\n", "study: study.end (2023-03-31)"),
    ("sites: [{id: a, path: .}]\nseeed: 3\n", "seeed: unknown key; did you mean 'seed'?"),
    ("sites: [{id: a, path: .}]\ndisclosure: {policy: lax}\n", "disclosure.policy: Input should be"),
    ("sites: [{id: a, path: .}]\ncohort: {min_age: eighteen}\n", "cohort.min_age: Input should be a valid integer"),
    ("sites: [{id: a, path: ./nowhere}]\n", "sites[0].path: folder "),
    ("sites: [unclosed\n", "not valid YAML"),
])
def test_bad_config_is_one_line_and_exit_2(capsys, tmp_path, text, expected):
    cfg = _config(tmp_path, text)
    code, out, err = _run(capsys, "run", "--config", str(cfg))
    assert code == 2
    assert "Traceback" not in err + out
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("pcref-eval run: ") and expected in lines[0]
    assert not (tmp_path / "outputs").exists(), "nothing was started"


def test_missing_site_folders_refused_before_any_work(capsys, tmp_path):
    (tmp_path / "site_a").mkdir()
    cfg = _config(tmp_path, "sites: [{id: site_a, path: site_a}, {id: site_b, path: gone/site_b}, "
                            "{id: site_c, path: also_gone}]\noutputs: {dir: out}\n")
    code, _, err = _run(capsys, "run", "--config", str(cfg))
    assert code == 2
    assert err.strip().splitlines() == [
        f"pcref-eval run: {cfg}: sites[1].path: folder {tmp_path / 'gone' / 'site_b'} does not exist (site 'site_b')",
        f"pcref-eval run: {cfg}: sites[2].path: folder {tmp_path / 'also_gone'} does not exist (site 'site_c')"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, fragment", [
    (["run", "--config", "{tmp}/nope.yml"], "config file {tmp}/nope.yml not found"),
    (["run", "--config", "{tmp}"], "is a folder"),
    (["check-release", "{tmp}/no-run"], "has no release/ folder"),
    (["check-contracts", "--contracts", "{tmp}/none"], "--contracts {tmp}/none: no such folder"),
    (["runs", "--outputs", "{tmp}/none"], "--outputs {tmp}/none: no such folder"),
    (["synth", "--out", "{tmp}/file.txt"], "--out {tmp}/file.txt: is a file, not a folder"),
    (["demo", "--data", "{tmp}/file.txt"], "--data {tmp}/file.txt: is a file, not a folder"),
])
def test_bad_paths_are_named_and_exit_2(capsys, tmp_path, argv, fragment):
    (tmp_path / "file.txt").write_text("x")
    code, out, err = _run(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert code == 2
    assert fragment.format(tmp=tmp_path) in err
    assert "Traceback" not in out + err


@pytest.mark.parametrize("argv", [["synth", "--out", "x", "--people", "-5"], ["runs", "--limit", "0"],
                                  ["run", "--config", "c.yml", "--workers", "two"]])
def test_bad_numbers_are_refused_by_the_parser(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_unexpected_error_is_one_line_unless_debugging(capsys, monkeypatch):
    def broken(args):
        raise RuntimeError("something\nwent wrong")
    monkeypatch.setitem(cli.COMMANDS, "runs", broken)
    monkeypatch.delenv("PCREF_DEBUG", raising=False)
    code, _, err = _run(capsys, "runs")
    assert code == 2
    assert err.strip().splitlines() == ["pcref-eval runs: internal error (RuntimeError: something went wrong). "
                                        "Set PCREF_DEBUG=1 to see the traceback and report it."]
    monkeypatch.setenv("PCREF_DEBUG", "1")
    with pytest.raises(RuntimeError):
        cli.main(["runs"])


def test_installed_entry_point_prints_no_traceback_for_an_impossible_date(tmp_path):
    """The reported fault, end to end: a real process, exit 2 (was a PyYAML traceback and exit 1)."""
    cfg = _config(tmp_path, "sites: [{id: a, path: .}]\nstudy: {start: 2024-02-30}\n")
    proc = subprocess.run([sys.executable, "-m", "pcref_eval.cli", "run", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"pcref-eval run: {cfg}: study.start: Input should be a valid date or datetime, day value is outside "
        "expected range (got '2024-02-30')"]


@pytest.fixture(scope="module")
def two_sites(tmp_path_factory) -> Path:
    from pcref_eval.synth import generate
    folder = tmp_path_factory.mktemp("sites")
    generate(folder, n_sites=2, people=600, seed=5)
    return folder


def test_validate_shows_problems_by_default_and_every_check_with_all(capsys, tmp_path, two_sites):
    code, out, _ = _run(capsys, "validate", str(two_sites), "--outputs", str(tmp_path / "outputs"))
    assert code in (0, 1)
    listed = [line for line in out.splitlines() if line.rstrip().endswith("%") and (" pass " in line
                                                                                       or " FAIL " in line)]
    assert all(" FAIL " in line for line in listed), "only failed checks are listed by default"
    assert "checks passed (not listed; --all lists every check)" in out
    code_all, out_all, _ = _run(capsys, "validate", str(two_sites), "--all", "--outputs", str(tmp_path / "outputs"))
    assert code_all == code
    listed_all = [line for line in out_all.splitlines() if " pass " in line or " FAIL " in line]
    n_checks = int(out_all.split("Summary site_a: ")[1].split(" checks,")[0].split()[-1])
    assert len(listed_all) == 2 * n_checks
    runs = sorted((tmp_path / "outputs" / "validate").iterdir())
    assert len(runs) == 2
    assert (runs[0] / "restricted" / "dq" / "site_a" / "validation.json").is_file()


def test_validate_writes_under_the_outputs_folder_not_the_working_folder(capsys, tmp_path, two_sites, monkeypatch):
    monkeypatch.chdir(tmp_path)
    default = cli.build_parser().parse_args(["validate", "x"]).outputs
    assert default.is_absolute() and default == cli.REPO_ROOT / "outputs"  # as the README says, not ./outputs
    code, out, _ = _run(capsys, "validate", str(two_sites / "site_b"), "--outputs", str(tmp_path / "elsewhere"))
    assert code in (0, 1)
    assert not (tmp_path / "outputs").exists()
    assert f"Outputs (restricted): {tmp_path / 'elsewhere' / 'validate'}" in out
