"""Publishing the benchmark: from a notebook (:func:`publish_site_benchmark`) or the CLI (:func:`run_benchmark`).

Everything goes through :class:`~pcref_eval.publish.Publisher`. The ICB funnel tables hold NHS
England's published rates and Census populations only (no counts; published rates declared as
``model``, populations as ``denominators``, names and positions as ``labels``); the site tables are
built by :func:`~pcref_eval.benchmark.site.site_benchmark` with the site's counts controlled.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from pcref_eval.benchmark.funnel import icb_funnel, icb_measures_by_ethnicity, plot_funnels
from pcref_eval.benchmark.nhse import national_ratios
from pcref_eval.benchmark.published import MhaAnnual, MhaFileError, latest, load_mha
from pcref_eval.benchmark.site import MEASURES, load_benchmark_site, site_benchmark, trust_total
from pcref_eval.publish import Aggregate, Publisher

SECTION = "Benchmark against NHS England"
FUNNEL_LABELS = ["org_code", "org_name", "rate_position", "ratio_position"]
FUNNEL_DENOMINATORS = ["focus_population", "reference_population"]


def funnel_aggregate(table: pd.DataFrame) -> Aggregate:
    """The ICB funnel table as released: published rates and limits, Census populations, positions; no counts."""
    cols = [c for c in table.columns if c not in ("focus_count", "reference_count")]
    data = table[cols]
    model = [c for c in cols if c not in FUNNEL_LABELS and c not in FUNNEL_DENOMINATORS]
    return Aggregate(data, counts=[], denominators=FUNNEL_DENOMINATORS, model=model, labels=FUNNEL_LABELS)


def select_year(files: dict[str, MhaAnnual], year: str | None) -> MhaAnnual:
    """The file for ``year`` ('2023/24'), or the latest."""
    if year is None:
        return latest(files)
    if year not in files:
        raise MhaFileError(f"no MHA annual statistics file for {year}: have {list(files)} (add one with --mha FILE)",
                           Path("."), column="Year")
    return files[year]


def publish_funnels(pub: Publisher, mha: MhaAnnual, highlight=(), measures=MEASURES) -> dict[str, pd.DataFrame]:
    """Release a funnel figure and table per measure that has ICB rows by ethnicity; note the others."""
    out = {}
    available = icb_measures_by_ethnicity(mha)
    for measure in measures:
        slug = "detentions" if measure == "All detentions" else "ctos" if measure == "Uses of CTOs" else \
            measure.lower().replace(" ", "_")
        if measure not in available:
            pub.note(f"NHS England's {mha.year} file publishes *{measure}* by ethnic group for England only, "
                     f"not by ICB: no ICB funnel plot for it (England's figures are in the site tables).")
            continue
        table, targets = icb_funnel(mha, measure)
        # the sentence quotes released values (the release check refuses numbers no table holds)
        pub.test_result(f"benchmark_icb_{slug}_overdispersion", f"{measure}, {mha.year}: overdispersion factors "
                        "of the ICB funnels (Black rate, Black/White ratio; one means Poisson variation only)",
                        section=SECTION, phi_rate=targets["phi_rate"], phi_ratio=targets["phi_ratio"])
        pub.note(f"{measure}, {mha.year}: ICBs vary more than chance allows (overdispersion factor "
                 f"{targets['phi_rate']:.1f} for the Black rate, {targets['phi_ratio']:.1f} for the Black/White "
                 f"ratio; one means Poisson variation only). Positions 'allowing overdispersion' add the between-ICB "
                 f"variance (Spiegelhalter 2005).")
        released = pub.table(funnel_aggregate(table), f"benchmark_icb_{slug}",
                             f"{measure}, {mha.year}: every ICB's published Black rate per 100,000 and Black/White "
                             f"crude rate ratio with Spiegelhalter 95% and 99.8% funnel limits around England "
                             f"(NHS England published figures; Census 2021 populations)", section=SECTION)
        fig = plot_funnels(table, targets, highlight=[h for h in highlight if h])
        pub.figure(fig, f"benchmark_funnel_{slug}",
                   f"{measure}, {mha.year}: ICBs' Black detention rate (left) and Black/White rate ratio (right) "
                   f"with 95% and 99.8% funnel limits around England's crude figures; the sites' ICBs marked",
                   section=SECTION)
        out[measure] = released
    return out


def publish_site_benchmark(x, mha_files: list[str | Path] | None = None, year: str | None = None,
                           measures=MEASURES) -> dict[str, pd.DataFrame]:
    """Notebook entry point: benchmark tables for every site naming its ICB, and the ICB funnel plots.

    ``x`` is a :class:`~pcref_eval.session.CrossSiteSession` (or anything with ``config``, ``sites``
    and ``pub``). Sites without ``icb`` in site.yml are listed in a note and skipped.
    """
    import warnings
    if mha_files is None:  # a config section ``benchmark: {mha_files: [...]}``, where the config has one
        mha_files = getattr(getattr(x.config, "benchmark", None), "mha_files", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mha = select_year(load_mha(mha_files), year)
    pub = x.pub
    named = {sid: s for sid, s in x.sites.items() if getattr(s.info, "icb", None)}
    if not named:
        pub.note("No site names its ICB in site.yml (`icb: <ODS code>`), so no site is benchmarked against "
                 "NHS England's published figures.")
        return {}
    if len(mha.dropped):
        d = mha.dropped
        hit = int((d["measure"].isin(measures) & (d["demographic"] == "Ethnicity")).sum())
        where = (f"{hit} of them in the measures benchmarked here" if hit else
                 "none of them in the measures benchmarked here")
        pub.note(f"NHS England file `{mha.file.name}`: {len(d)} rows with corrupted or unknown labels were not "
                 f"used ({where}; see docs/benchmarking.md).")
    r_det = national_ratios(mha, "All detentions")
    pub.note(f"England, {mha.year} (NHS England): Black/White detention rate ratio {r_det['standardised']:.2f} "
             f"standardised, {r_det['crude']:.2f} crude.")
    out = {}
    policy = pub.policy
    codes = list(x.config.cohort.detention_codes)
    for sid, site in named.items():
        full = load_benchmark_site(site.folder)
        agg, period = site_benchmark(full, mha, codes, policy, measures)
        note = f" ({period.note})" if period.note else ""
        out[sid] = pub.table(agg, f"benchmark_{sid}",
                             f"{site.info.name}: detentions and CTO uses per 100,000 by ethnic group, {period.label}, "
                             f"and rate ratios vs White, beside NHS England's published figures for ICB "
                             f"{site.info.icb} and England{note}", section=SECTION)
        trust = trust_total(mha, site.info.ods_code)
        if trust and trust[1] > policy.threshold:  # public, but never a small number in prose
            pub.note(f"Trust {site.info.ods_code} ({trust[0].title().replace('Nhs', 'NHS')}): NHS England published "
                     f"{trust[1]:,.0f} detentions in {mha.year} for all ethnic groups together; it publishes no "
                     f"trust rates by ethnic group.")
    publish_funnels(pub, mha, highlight=[s.info.icb for s in named.values()], measures=measures)
    return out


def run_benchmark(out_dir: Path, mha_files: list[str | Path] | None = None, year: str | None = None,
                  highlight: list[str] | None = None, measures=MEASURES, echo=print) -> int:
    """CLI entry point: print where each ICB sits; write the funnel figures and tables under ``out_dir``.

    Returns the exit code (0 done, 2 bad input). Needs no site extract and no network.
    """
    import warnings

    from pcref_eval.benchmark.census import icb_names
    from pcref_eval.disclosure import DisclosurePolicy

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        files = load_mha(mha_files)
    mha = select_year(files, year)
    for w in mha.warnings:
        print(f"warning: {w}", file=sys.stderr)
    names = icb_names()
    unknown = [h for h in (highlight or []) if h.upper() not in names]
    if unknown:
        print(f"pcref-eval benchmark: unknown ICB code(s) {unknown}; known: {', '.join(sorted(names))}",
              file=sys.stderr)
        return 2
    highlight = [h.upper() for h in highlight or []]
    pub = Publisher(Path(out_dir), "nhse", DisclosurePolicy(), display=False)
    released = publish_funnels(pub, mha, highlight, measures)
    for measure in measures:
        if measure not in released:
            echo(f"{measure}: published by ethnic group for England only in {mha.year}; no ICB funnel")
            continue
        ratios = national_ratios(mha, measure)
        echo(f"{measure}, {mha.year}. England Black/White rate ratio: {ratios['standardised']:.2f} standardised, "
             f"{ratios['crude']:.2f} crude")
        echo(format_positions(released[measure], highlight))
        echo("positions: against Poisson funnel limits / allowing overdispersion (between-ICB variance added)")
    echo(f"tables and figures: {Path(out_dir) / 'release'}")
    return 0


def format_positions(table: pd.DataFrame, highlight=()) -> str:
    """One line per ICB: code, name, Black rate, White rate, ratio, and where rate and ratio sit."""
    head = (f"{'ICB':<4} {'name':<40} {'Black':>6} {'White':>6} {'ratio':>5}  {'Black rate vs England':<26} "
            f"ratio vs England")
    lines = [head, "-" * (len(head) + 10)]
    for r in table.sort_values("rate_ratio", ascending=False).itertuples():
        name = str(r.org_name).replace("INTEGRATED CARE BOARD", "ICB").title().replace("Nhs ", "").replace("Icb", "ICB")
        mark = "  <" if r.org_code in highlight else ""
        lines.append(f"{r.org_code:<4} {name[:40]:<40} {r.focus_rate:>6.1f} {r.reference_rate:>6.1f} "
                     f"{r.rate_ratio:>5.2f}  {r.rate_position + ' / ' + r.rate_position_re:<26} "
                     f"{r.ratio_position} / {r.ratio_position_re}{mark}")
    return "\n".join(lines)
