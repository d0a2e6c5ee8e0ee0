"""The shipped public data: checksums, and the published MHA file read with its corrupted labels dropped."""

from __future__ import annotations

import hashlib
import re
import warnings

import numpy as np
import pandas as pd
import pytest

from pcref_eval.benchmark.census import england_population, icb_population
from pcref_eval.benchmark.published import (MhaFileError, MhaLabelWarning, load_mha, public_data_dir,
                                            read_mha_annual, shipped_files)

MHA = public_data_dir() / "mha_annual_suppressed_2023_24.csv"


def test_checksums_in_readme_match_the_shipped_files():
    text = (public_data_dir() / "README.md").read_text()
    listed = dict((name, digest) for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", text, re.M))
    shipped = sorted(p.name for p in public_data_dir().glob("*.csv"))
    assert sorted(listed) == shipped
    for name, digest in listed.items():
        assert hashlib.sha256((public_data_dir() / name).read_bytes()).hexdigest() == digest, name


def test_shipped_file_loads_and_warns_about_the_corrupted_labels():
    with pytest.warns(MhaLabelWarning) as record:
        mha = read_mha_annual(MHA)
    assert mha.year == "2023/24"
    assert len(mha.data) + len(mha.dropped) == 6947
    dropped = mha.dropped
    # the three known faults are all dropped: line 2 ('h'), the #N/A rows, IMD rows with gender labels
    assert 2 in set(dropped["line"])
    assert (dropped["breakdown"] == "#N/A").sum() == 7
    assert ((dropped["demographic"] == "IMD") & dropped["breakdown"].isin(["Male", "Non-binary"])).any()
    assert not (mha.data["breakdown"] == "#N/A").any()
    assert not ((mha.data["demographic"] == "IMD") & mha.data["breakdown"].isin(["Male", "Female"])).any()
    assert set(mha.data["org_level"]) <= {"All submissions", "ICB", "Sub ICB", "NHS Trust",
                                          "Independent Health Provider"}
    # the intact rows the benchmark uses are all kept
    eth = mha.select("All detentions", "Ethnicity", "ICB")
    assert len(eth) == 258 and eth["org_code"].nunique() == 43
    assert len(record) == 2 and "line 2" in str(record[0].message)
    nat = mha.select("All detentions", "All", "All submissions")
    assert nat["count"].tolist() == [52458]
    assert mha.select("Uses of CTOs", "All", "All submissions")["count"].tolist() == [5618]


def test_a_newer_year_in_the_same_layout_loads_without_code_change(tmp_path):
    raw = pd.read_csv(MHA, dtype=str, keep_default_na=False)
    raw["Year"] = "2024/25"
    # a newer file may spell the header differently, reorder columns, add one and mark suppression with '*'
    raw = raw.rename(columns={"OrgID": "Org_ID", "CrudeRate": "crude rate"})
    raw["Notes"] = ""
    raw = raw[list(reversed(raw.columns))]
    raw.loc[raw["Total_Count"] == "", "Total_Count"] = "*"
    path = tmp_path / "mha_annual_2024_25.csv"
    raw.to_csv(path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MhaLabelWarning)
        files = load_mha([path])
    assert list(files) == ["2023/24", "2024/25"]
    assert files["2024/25"].select("All detentions", "All", "All submissions")["count"].tolist() == [52458]
    assert "Notes" in files["2024/25"].data.columns


@pytest.mark.parametrize("edit, column, line", [
    (lambda d: d.drop(columns=["CrudeRate"]), "CrudeRate", None),
    (lambda d: d.assign(Total_Count=d["Total_Count"].where(d.index != 40, "12a")), "Total_Count", 42),
    (lambda d: d.assign(StdRate=d["StdRate"].where(d.index != 9, "n.a.")), "StdRate", 11),
])
def test_a_file_that_does_not_fit_names_file_column_and_line(tmp_path, edit, column, line):
    raw = pd.read_csv(MHA, dtype=str, keep_default_na=False)
    path = tmp_path / "bad.csv"
    edit(raw).to_csv(path, index=False)
    with pytest.raises(MhaFileError) as err:
        read_mha_annual(path, warn=False)
    msg = str(err.value)
    assert str(path) in msg and column in msg and err.value.column == column
    if line is not None:
        assert f"line {line}" in msg and err.value.lines == [line]


def test_shipped_files_are_found_as_package_data():
    assert [p.name for p in shipped_files()] == ["mha_annual_suppressed_2023_24.csv"]


def test_census_denominators_match_the_published_totals():
    eng = england_population()
    # Census 2021 England, NHS England mapping (README checks): Black 2,381,722; White excludes Roma
    assert eng["Black or Black British"] == 2_381_722
    assert eng.sum() == 56_490_065 - 99_122  # Roma is in no group
    icb = icb_population()
    assert icb["org_code"].nunique() == 42
    assert icb.groupby("group")["population"].sum()["Black or Black British"] == 2_381_670
    assert np.isclose(icb["population"].sum(), 56_490_108)
