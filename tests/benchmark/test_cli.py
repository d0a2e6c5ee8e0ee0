"""``pcref-eval benchmark``: runs with no extract and no network, writes released tables and figures, clear errors."""

from __future__ import annotations

import pandas as pd

from pcref_eval.benchmark.published import public_data_dir
from pcref_eval.cli import main
from pcref_eval.release_check import check_release


def test_benchmark_command_prints_positions_and_writes_release(tmp_path, capsys):
    assert main(["benchmark", "--icb", "QKK", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert "3.54 standardised, 3.44 crude" in out.out
    kk = [line for line in out.out.splitlines() if line.startswith("QKK")]
    assert len(kk) == 1 and kk[0].endswith("<") and "294.5" in kk[0] and "above 99.8%" in kk[0]
    assert "Uses of CTOs: published by ethnic group for England only" in out.out
    assert "corrupted labels" in out.err and "Traceback" not in out.err
    table = pd.read_csv(tmp_path / "release" / "tables" / "nhse_benchmark_icb_detentions.csv")
    assert len(table) == 39 and not {"focus_count", "reference_count"} & set(table.columns)
    assert (tmp_path / "release" / "figures" / "nhse_benchmark_funnel_detentions.png").stat().st_size > 10_000
    assert not check_release(tmp_path)


def test_benchmark_command_bad_file_exits_2_naming_file_column_line(tmp_path, capsys):
    raw = pd.read_csv(public_data_dir() / "mha_annual_suppressed_2023_24.csv", dtype=str, keep_default_na=False)
    raw["Year"] = "2024/25"
    raw.loc[5, "CrudeRate"] = "high"
    bad = tmp_path / "mha_2024_25.csv"
    raw.to_csv(bad, index=False)
    assert main(["benchmark", "--mha", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "'CrudeRate'" in err and "line 7" in err and "Traceback" not in err


def test_benchmark_command_unknown_year_or_icb(tmp_path, capsys):
    assert main(["benchmark", "--year", "2019/20", "--out", str(tmp_path)]) == 2
    assert "2019/20" in capsys.readouterr().err
    assert main(["benchmark", "--icb", "QZZ", "--out", str(tmp_path)]) == 2
    assert "QZZ" in capsys.readouterr().err
