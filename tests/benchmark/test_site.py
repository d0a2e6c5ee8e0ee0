"""A site's benchmark table: counting, periods, disclosure control, published comparators, release check."""

from __future__ import annotations

import warnings
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pcref_eval.benchmark.published import MhaLabelWarning, latest, load_mha
from pcref_eval.benchmark.site import (BROAD_GROUPS, benchmark_period, financial_year, site_benchmark,
                                       site_event_counts, site_group_population)
from pcref_eval.config import DEFAULT_DETENTION_CODES
from pcref_eval.disclosure import DisclosurePolicy
from pcref_eval.extract import ExtractError, SiteExtract, SiteInfo, read_site_info
from pcref_eval.publish import Publisher
from pcref_eval.release_check import check_release


@pytest.fixture(scope="module")
def mha():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MhaLabelWarning)
        return latest(load_mha())


def _site(n_black_det: int, n_white_det: int, icb: str = "QKK", extract: date = date(2025, 4, 30)) -> SiteExtract:
    """A hand-built site: Black (M) and White (A) people, each with one s3 detention in 2023/24, plus noise."""
    people, episodes = [], []
    for i in range(n_black_det):
        people.append((f"b{i}", "M"))
        episodes.append((f"e_b{i}", f"b{i}", "03", "2023-06-01"))
    for i in range(n_white_det):
        people.append((f"w{i}", "A"))
        episodes.append((f"e_w{i}", f"w{i}", "03", "2024-03-31"))
    people += [("u1", "Z"), ("x1", "M")]
    episodes += [("e_u1", "u1", "02", "2023-07-01"),      # unrecorded ethnicity: not in any group
                 ("e_x1", "x1", "20", "2023-07-01"),      # s136 is not a detention
                 ("e_x2", "x1", "02", "2023-03-31"),      # the day before 2023/24
                 ("e_x3", "x1", "02", "2024-04-01")]      # the day after
    tables = {
        "people": pd.DataFrame(people, columns=["person_id", "ethnic_category"]),
        "mha_episodes": pd.DataFrame(episodes, columns=["episode_id", "person_id", "legal_status_code", "start_date"]),
        "ctos": pd.DataFrame({"cto_id": ["c1"], "person_id": ["b0"], "start_date": ["2023-05-01"]}),
    }
    population = pd.DataFrame({"ethnic_category": ["A", "B", "M", "N", "H", "D", "R", "S"],
                               "age_band": "18-34", "sex": "1",
                               "population": [80_000, 20_000, 30_000, 10_000, 20_000, 5_000, 3_000, 2_000]})
    info = SiteInfo("s1", "Test trust", date(2023, 1, 1), extract, icb=icb, ods_code="RV5")
    return SiteExtract(Path("."), info, tables, population)


def test_financial_year_and_period():
    assert financial_year("2023/24") == (date(2023, 4, 1), date(2024, 3, 31))
    assert benchmark_period(date(2025, 4, 30), "2023/24").label == "2023/24"
    p = benchmark_period(date(2023, 12, 31), "2023/24")
    assert (p.start, p.end, p.label) == (date(2022, 4, 1), date(2023, 3, 31), "2022/23") and p.note
    assert benchmark_period(date(2023, 3, 31), "2023/24").label == "2021/22"  # 2022/23 not complete on its last day


def test_counts_by_nhse_group_within_the_year():
    site = _site(12, 40)
    period = benchmark_period(site.info.extract_date, "2023/24")
    det = site_event_counts(site, "All detentions", period, DEFAULT_DETENTION_CODES)
    assert det["Black or Black British"] == 12 and det["White"] == 40 and det.sum() == 52
    assert site_event_counts(site, "Uses of CTOs", period, DEFAULT_DETENTION_CODES).to_dict()[
        "Black or Black British"] == 1
    pop = site_group_population(site.population)
    assert pop.to_dict() == {"Asian or Asian British": 20_000, "Black or Black British": 40_000, "Mixed": 5_000,
                             "Other Ethnic Groups": 5_000, "White": 100_000}


def test_site_figures_come_from_released_counts_and_published_figures_are_carried(mha, tmp_path):
    site = _site(12, 40)
    policy = DisclosurePolicy.opensafely()
    agg, _ = site_benchmark(site, mha, DEFAULT_DETENTION_CODES, policy)
    declared = set(agg.counts) | set(agg.derived) | set(agg.denominators) | set(agg.model) | set(agg.labels)
    assert declared == set(agg.data.columns)  # every column declared exactly once
    assert sum(map(len, (agg.counts, agg.derived, agg.denominators, agg.model, agg.labels))) == len(declared)
    pub = Publisher(tmp_path, "all", policy, display=False)
    out = pub.table(agg, "benchmark_s1", "test", section="Benchmark").set_index(["measure", "group"])
    det = out.loc["All detentions"]
    # 12 Black detentions are released as 10 and the rate follows from 10, not 12
    assert det.loc["Black or Black British", "site_count"] == 10
    assert det.loc["Black or Black British", "site_rate"] == pytest.approx(10 / 40_000 * 1e5, abs=0.005)
    assert det.loc["White", "site_count"] == 40
    assert det.loc["Black or Black British", "site_ratio"] == pytest.approx((10 / 40_000) / (40 / 100_000), abs=0.006)
    # the reference group: ratio 1 by definition, with no interval of a ratio to itself (issue 14)
    assert det.loc["White", "site_ratio"] == 1 and det.loc["White", ["site_ratio_lower", "site_ratio_upper"]].isna().all()
    # groups with no detentions: zero is released (describes nobody), rate 0
    assert det.loc["Mixed", "site_count"] == 0 and det.loc["Mixed", "site_rate"] == 0
    # CTO: one Black CTO is redacted, and so are its rate and the ratios vs a redacted White count
    cto = out.loc["Uses of CTOs"]
    assert pd.isna(cto.loc["Black or Black British", "site_count"])
    assert cto[["site_rate", "site_ratio"]].loc["Black or Black British"].isna().all()
    # published figures for the site's ICB and England, as published
    assert det.loc["Black or Black British", "icb_rate"] == 294.5
    assert det.loc["Black or Black British", "england_std_rate"] == 242.3
    assert det.loc["Black or Black British", "england_std_lower"] == pytest.approx(242.3 - 6.9)
    assert det.loc["Black or Black British", "england_std_ratio"] == pytest.approx(242.3 / 68.4, abs=0.005)
    assert cto["icb_rate"].isna().all()  # no ICB CTO figures by ethnicity in 2023/24
    assert cto.loc["Black or Black British", "england_rate"] == 47.1
    assert det["published_source"].str.contains("NHS England").all()
    assert not check_release(tmp_path, policy=policy)


def test_site_without_icb_gets_england_only(mha):
    agg, _ = site_benchmark(_site(12, 40, icb=None), mha, DEFAULT_DETENTION_CODES, DisclosurePolicy())
    assert agg.data["icb_rate"].isna().all() and agg.data["england_rate"].notna().all()


def test_site_yml_icb_and_ods_code(tmp_path):
    base = "site_id: s\nname: S\npcref_go_live: 2023-01-01\nextract_date: 2024-12-31\n"
    (tmp_path / "site.yml").write_text(base + "icb: qkk\nods_code: RV5\n")
    info = read_site_info(tmp_path)
    assert (info.icb, info.ods_code) == ("QKK", "RV5")
    (tmp_path / "site.yml").write_text(base)
    assert read_site_info(tmp_path).icb is None
    (tmp_path / "site.yml").write_text(base + "icb: South East London\n")
    with pytest.raises(ExtractError, match="icb"):
        read_site_info(tmp_path)


def test_synthetic_sites_name_real_icbs():
    from pcref_eval.benchmark.census import icb_names
    from pcref_eval.synth.model import default_sites
    sites = default_sites(10_000, 4)
    assert sites[0].icb == "QKK"  # the inner-city site is in South East London
    assert all(s.icb in icb_names() and s.ods_code for s in sites)


def test_trust_total_from_the_provider_rows(mha):
    from pcref_eval.benchmark.site import trust_total
    assert trust_total(mha, "RV5") == ("SOUTH LONDON AND MAUDSLEY NHS FOUNDATION TRUST", 2100.0)
    assert trust_total(mha, "QKK") is None and trust_total(mha, None) is None
