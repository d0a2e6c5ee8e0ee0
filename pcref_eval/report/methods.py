"""The report's methods, limitations and references, written from the run's configuration.

Everything here is generated from :class:`~pcref_eval.config.EvaluationConfig` and the manifest, so
the methods section always describes what was actually run (cohort definition, code lists,
ethnicity scheme, reference group, disclosure policy) rather than what a template says.
Functions return HTML fragments (escaped); the report builder places them.
"""

from __future__ import annotations

from html import escape

from pcref_eval.disclosure import DisclosurePolicy
from pcref_eval.ethnicity import ETHNIC_CATEGORIES, NOT_STATED_CODES, SCHEMES, UNRECORDED_LABELS, group_order

#: MHA legal status codes (MHSDS LegalStatusCode) and their meanings.
LEGAL_STATUS: dict[str, str] = {
    "01": "Informal",
    "02": "Section 2 (admission for assessment)",
    "03": "Section 3 (admission for treatment)",
    "04": "Section 4 (emergency admission for assessment)",
    "05": "Section 5(2) (doctor's holding power)",
    "06": "Section 5(4) (nurse's holding power)",
    "07": "Section 35 (remand to hospital for report)",
    "08": "Section 36 (remand to hospital for treatment)",
    "09": "Section 37 with section 41 restrictions",
    "10": "Section 37 (hospital order)",
    "11": "Section 38 (interim hospital order)",
    "12": "Section 44 (committal to hospital)",
    "13": "Section 46 (hospital order, armed forces)",
    "14": "Section 47 with section 49 restrictions (transfer of sentenced prisoner)",
    "15": "Section 47 (transfer of sentenced prisoner)",
    "16": "Section 48 with section 49 restrictions (transfer of unsentenced prisoner)",
    "17": "Section 48 (transfer of unsentenced prisoner)",
    "18": "Section 45A (hospital and limitation direction)",
    "19": "Section 135 (place of safety, warrant)",
    "20": "Section 136 (place of safety, police)",
    "31": "Criminal Procedure (Insanity) Act 1964 as amended",
    "34": "Section 45A (hospital direction)",
    "35": "Section 7 (guardianship)",
    "36": "Section 37 (guardianship order)",
    "37": "Section 45A (limitation direction)",
    "98": "Not applicable",
    "99": "Not known",
}

#: Statistical methods the workbench uses, each with what it is for and its references.
METHODS: list[dict] = [
    {"name": "Crude rates with Byar's interval",
     "use": "Detention rates per 100,000 catchment population per year by ethnic group; exact Poisson "
            "limits below 10 events, Byar's approximation from 10.",
     "refs": ["breslow1987"]},
    {"name": "Wilson score interval",
     "use": "Proportions (for example the share of people detained, or of records with ethnicity stated).",
     "refs": ["wilson1927", "newcombe1998"]},
    {"name": "Directly standardised rates (Dobson method)",
     "use": "Age- and sex-standardised rates to the European Standard Population 2013; not computed when "
            "the total count is below 10.",
     "refs": ["dobson1991", "esp2013", "phe_methods"]},
    {"name": "Rate ratios",
     "use": "Each group's rate relative to the reference group, with confidence intervals on the log scale.",
     "refs": ["breslow1987"]},
    {"name": "Kaplan-Meier estimator with Greenwood's variance",
     "use": "Time from index referral to first detention by ethnic group, with numbers at risk.",
     "refs": ["kaplan1958", "greenwood1926"]},
    {"name": "Log-rank test",
     "use": "Whether time to first detention differs between ethnic groups.",
     "refs": ["mantel1966", "peto1972"]},
    {"name": "Cox proportional hazards regression (Efron ties)",
     "use": "Hazard ratios for first detention by ethnic group against the reference group, adjusted for "
            "age, sex and deprivation and stratified by site; proportional hazards checked with scaled "
            "Schoenfeld residuals.",
     "refs": ["cox1972", "efron1977", "grambsch1994"]},
    {"name": "Aalen-Johansen cumulative incidence",
     "use": "Cumulative incidence of detention with death as a competing event.",
     "refs": ["aalen1978"]},
    {"name": "Making Data Count XmR charts",
     "use": "Monthly monitoring for boards: mean and process limits at the mean +/- 2.66 x mean moving "
            "range; special cause variation flagged by a point outside the limits, a run of 7 points on "
            "one side of the mean, 7 points rising or falling, or 2 of 3 points close to a limit.",
     "refs": ["mdc2019", "wheeler2000"]},
    {"name": "Segmented Poisson regression (interrupted time series)",
     "use": "Change in level and trend of monthly detention rates at each site's PCREF go-live date, "
            "with site estimates pooled by random-effects meta-analysis.",
     "refs": ["bernal2017", "wagner2002", "dersimonian1986", "higgins2002"]},
]

REFERENCES: dict[str, str] = {
    "breslow1987": "Breslow NE, Day NE. Statistical Methods in Cancer Research, Volume II: The Design and Analysis "
                   "of Cohort Studies. IARC Scientific Publications No. 82. Lyon: IARC; 1987.",
    "wilson1927": "Wilson EB. Probable inference, the law of succession, and statistical inference. J Am Stat Assoc "
                  "1927;22:209-212. doi:10.1080/01621459.1927.10502953",
    "newcombe1998": "Newcombe RG. Two-sided confidence intervals for the single proportion: comparison of seven "
                    "methods. Stat Med 1998;17:857-872.",
    "dobson1991": "Dobson AJ, Kuulasmaa K, Eberle E, Scherer J. Confidence intervals for weighted sums of Poisson "
                  "parameters. Stat Med 1991;10:457-462. doi:10.1002/sim.4780100317",
    "esp2013": "Eurostat. Revision of the European Standard Population: report of Eurostat's task force. "
               "Luxembourg: Publications Office of the European Union; 2013.",
    "phe_methods": "Fox S, Fryers P, et al. PHEindicatormethods: common public health statistics and their "
                   "confidence intervals (R package). Office for Health Improvement and Disparities.",
    "kaplan1958": "Kaplan EL, Meier P. Nonparametric estimation from incomplete observations. J Am Stat Assoc "
                  "1958;53:457-481.",
    "greenwood1926": "Greenwood M. The natural duration of cancer. Reports on Public Health and Medical Subjects "
                     "No. 33. London: HMSO; 1926.",
    "mantel1966": "Mantel N. Evaluation of survival data and two new rank order statistics arising in its "
                  "consideration. Cancer Chemother Rep 1966;50:163-170.",
    "peto1972": "Peto R, Peto J. Asymptotically efficient rank invariant test procedures. J R Stat Soc A "
                "1972;135:185-207.",
    "cox1972": "Cox DR. Regression models and life-tables. J R Stat Soc B 1972;34:187-220.",
    "efron1977": "Efron B. The efficiency of Cox's likelihood function for censored data. J Am Stat Assoc "
                 "1977;72:557-565.",
    "grambsch1994": "Grambsch PM, Therneau TM. Proportional hazards tests and diagnostics based on weighted "
                    "residuals. Biometrika 1994;81:515-526.",
    "aalen1978": "Aalen OO, Johansen S. An empirical transition matrix for non-homogeneous Markov chains based on "
                 "censored observations. Scand J Stat 1978;5:141-150.",
    "mdc2019": "NHS England and NHS Improvement. Making Data Count: getting started. London; 2019 (and "
               "NHSRplotthedots, NHS-R Community R package).",
    "wheeler2000": "Wheeler DJ. Understanding Variation: the key to managing chaos. 2nd ed. Knoxville: SPC Press; "
                   "2000.",
    "bernal2017": "Bernal JL, Cummins S, Gasparrini A. Interrupted time series regression for the evaluation of "
                  "public health interventions: a tutorial. Int J Epidemiol 2017;46:348-355.",
    "wagner2002": "Wagner AK, Soumerai SB, Zhang F, Ross-Degnan D. Segmented regression analysis of interrupted "
                  "time series studies in medication use research. J Clin Pharm Ther 2002;27:299-309.",
    "dersimonian1986": "DerSimonian R, Laird N. Meta-analysis in clinical trials. Control Clin Trials 1986;7:177-188.",
    "higgins2002": "Higgins JPT, Thompson SG. Quantifying heterogeneity in a meta-analysis. Stat Med "
                   "2002;21:1539-1558.",
    "opensafely": "OpenSAFELY. Output checking: statistical disclosure control rules (redaction of counts of 7 or "
                  "fewer, rounding to the nearest 5; midpoint 6 rounding for time-to-event outputs). "
                  "docs.opensafely.org.",
    "nhse_mha": "NHS England. Mental Health Act Statistics, Annual Figures: methodology (suppression of counts "
                "below 5 and rounding to the nearest 5).",
    "mha_review": "Modernising the Mental Health Act: increasing choice, reducing compulsion. Final report of the "
                  "Independent Review of the Mental Health Act 1983. London: Department of Health and Social "
                  "Care; 2018.",
    "pcref": "NHS England. Patient and carer race equality framework. London: NHS England; 2023.",
}


def _codes_list(codes: list[str]) -> str:
    items = "".join(f"<li><code>{escape(c)}</code> {escape(LEGAL_STATUS.get(c, 'code not in the MHSDS list'))}</li>"
                    for c in codes)
    return f"<ul class='codes'>{items}</ul>"


def ethnicity_table(scheme: str, reference: str) -> str:
    """HTML table: each group of the scheme and the NHS ethnic category codes it contains."""
    mapping = SCHEMES[scheme]
    rows = []
    for group in group_order(scheme):
        if group in UNRECORDED_LABELS:
            codes = {"Not stated": "Z", "Not known": "99", "Missing": "(blank)"}[group]
            members = {"Not stated": NOT_STATED_CODES["Z"], "Not known": NOT_STATED_CODES["99"],
                       "Missing": "no code recorded"}[group]
        else:
            cs = [c for c, g in mapping.items() if g == group]
            codes = ", ".join(cs)
            members = "; ".join(ETHNIC_CATEGORIES[c] for c in cs)
        note = " (reference)" if group == reference else ""
        rows.append(f"<tr><td>{escape(group)}{note}</td><td>{escape(codes)}</td><td>{escape(members)}</td></tr>")
    return ("<table class='report-table'><caption><strong>Table:</strong> Ethnic groups used in this report "
            f"(scheme '{escape(scheme)}') and the NHS ETHNIC CATEGORY codes in each.</caption>"
            "<thead><tr><th>Group</th><th>Codes</th><th>Categories</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def sites_table(sites: list[dict]) -> str:
    """HTML table of the sites: id, name, PCREF go-live, extract date, whether analysed."""
    rows = []
    for s in sites:
        status = "analysed" if s["analysed"] else f"not analysed: {s['reason']}"
        rows.append(f"<tr><td>{escape(s['id'])}</td><td>{escape(s.get('name') or '')}</td>"
                    f"<td>{escape(str(s.get('go_live') or '–'))}</td><td>{escape(str(s.get('extract_date') or '–'))}</td>"
                    f"<td>{escape(status)}</td></tr>")
    return ("<table class='report-table'><caption><strong>Table:</strong> Sites in this evaluation.</caption>"
            "<thead><tr><th>Site</th><th>Name</th><th>PCREF go-live</th><th>Extract date</th><th>Status</th></tr>"
            "</thead><tbody>" + "".join(rows) + "</tbody></table>")


def methods_html(config, policy: DisclosurePolicy, sites: list[dict], manifest: dict) -> tuple[str, list[str]]:
    """The methods section (HTML, without its chapter heading) and the reference keys it cites, in order."""
    study, cohort, eth = config.study, config.cohort, config.ethnicity
    refs: list[str] = []

    def cite(*keys: str) -> str:
        nums = []
        for k in keys:
            if k not in refs:
                refs.append(k)
            nums.append(str(refs.index(k) + 1))
        return f"<sup class='cite'>[{','.join(nums)}]</sup>"

    n_sites = len(config.sites)
    parts = [
        "<h3>Design and data</h3>",
        f"<p>This is an observational evaluation of the Patient and Carer Race Equality Framework (PCREF){cite('pcref')} "
        f"across {n_sites} mental health site{'s' if n_sites != 1 else ''}, using extracts shaped like the Mental "
        "Health Services Data Set (MHSDS): people, referrals, Mental Health Act (MHA) legal status episodes, hospital "
        "spells, restrictive interventions, community treatment orders, outcome measures and patient experience. "
        f"The study window runs from {study.start:%d %B %Y} to {study.end:%d %B %Y}. Each site's extract was checked "
        "against data contracts before analysis; sites whose extracts failed were not analysed.</p>",
        sites_table(sites),
        "<h3>Cohort definition</h3>",
        "<ul>"
        f"<li><strong>Index referral:</strong> each person's first referral received between {study.start:%d %B %Y} "
        f"and {study.end:%d %B %Y}; follow-up starts on the index referral date.</li>"
        f"<li><strong>Exclusions:</strong> aged under {cohort.min_age} at the index referral; already detained on the "
        "index date; index referral after the extract date. Each exclusion is counted by ethnic group in the cohort "
        "flow table.</li>"
        "<li><strong>Outcome:</strong> the first MHA episode on or after the index date whose legal status is one of "
        "the detention codes below. Every such episode counts as a new detention, following NHS England's counting "
        "of new detention episodes (including section 2 followed by section 3).</li>"
        "<li><strong>Competing event:</strong> death before detention.</li>"
        "<li><strong>Censoring:</strong> discharge from the service of the index referral, or the extract date.</li>"
        "<li><strong>Period:</strong> before or after each site's PCREF go-live date, by index date.</li>"
        "</ul>",
        f"<p>Detention codes (MHSDS legal status){cite('mha_review')}:</p>",
        _codes_list(cohort.detention_codes),
        "<p>Place-of-safety holds are reported as a separate outcome, not as detentions:</p>",
        _codes_list(cohort.place_of_safety_codes),
        "<h3>Ethnicity</h3>",
        f"<p>Ethnicity is the NHS ETHNIC CATEGORY (2001 census based) recorded on the person record, grouped with the "
        f"<strong>{escape(eth.scheme)}</strong> scheme. Every ratio compares a group with the reference group, "
        f"<strong>{escape(eth.reference)}</strong>. People whose ethnicity was not stated, not known or missing are "
        "kept as their own groups and never silently dropped: recording completeness is itself a PCREF measure. "
        "Rates use the catchment population of each group as denominator; groups without a population "
        "(not stated, not known, missing) have counts but no rates.</p>",
        ethnicity_table(eth.scheme, eth.reference),
        "<h3>Statistical methods</h3>",
        "<p>All intervals are 95% confidence intervals.</p>",
        "<table class='report-table'><caption><strong>Table:</strong> Statistical methods and their use in this "
        "report.</caption><thead><tr><th>Method</th><th>Used for</th><th>References</th></tr></thead><tbody>"
        + "".join(f"<tr><td>{escape(m['name'])}</td><td>{escape(m['use'])}</td><td>{cite(*m['refs'])}</td></tr>"
                  for m in METHODS)
        + "</tbody></table>",
        "<h3>Disclosure control</h3>",
        f"<p>Only aggregate, disclosure-controlled results leave the secure environment. Policy "
        f"<strong>{escape(policy.name)}</strong>{cite('opensafely' if policy.name == 'opensafely' else 'nhse_mha')}: "
        f"{escape(policy.describe())}. Redaction and rounding are applied by the workbench to every released table, "
        "not by the analyst. Where a table has totals, further cells are redacted so that no redacted cell can be "
        "recovered by subtraction (secondary suppression), and totals are recomputed from the rounded parts. Rates, "
        "ratios and percentages derived from a redacted count are redacted too. Kaplan-Meier outputs use "
        "midpoint-6 rounding of cumulative counts. Redacted cells are shown as <em>[REDACTED]</em>; a dash (–) marks "
        "a value that is not available (for example a rate for a group with no population). Every released file "
        "was scanned automatically before release for small counts, identifier columns and identifier values.</p>",
        "<h3>Software and reproducibility</h3>",
        f"<p>Analysed with pcref-eval {escape(str(manifest.get('workbench_version', '')))} "
        f"(git commit <span class='hash'>{escape(str(manifest.get('git_commit') or 'not recorded'))}</span>), "
        f"configuration hash <span class='hash'>{escape(str(manifest.get('config_hash', ''))[:16])}</span>, random "
        f"seed {escape(str(manifest.get('seed', config.seed)))}. Input file hashes and package versions are listed "
        "in the appendix.</p>",
    ]
    return "\n".join(parts), refs


def references_html(keys: list[str]) -> str:
    items = "".join(f"<li>{escape(REFERENCES[k])}</li>" for k in keys if k in REFERENCES)
    return f"<ol class='references'>{items}</ol>"


def limitations_html(config, policy: DisclosurePolicy, sites: list[dict], synthetic: bool) -> str:
    """Generic limitations that follow from the design and this run's configuration."""
    not_analysed = [s for s in sites if not s["analysed"]]
    items = []
    if synthetic:
        items.append("<strong>Synthetic data.</strong> The extracts analysed here are synthetic; the numbers "
                     "illustrate the method and describe no real people or services.")
    items += [
        "<strong>Observational design.</strong> Differences between groups describe inequality in what happened, "
        "not its causes: need, pathways into care, service provision and recording all differ between groups and "
        "sites. Adjusted estimates account only for age, sex and deprivation.",
        "<strong>Denominators.</strong> Population rates use catchment populations by ethnic group, which may not "
        "match the population actually served, and become outdated between censuses.",
        "<strong>Ethnicity recording.</strong> Where ethnicity is not stated or not known, those people are missing "
        "from every group's numerator, so group rates are underestimated; if recording completeness differs "
        "between groups or over time, comparisons and trends are biased. Completeness is reported in the data "
        "quality section.",
        f"<strong>Disclosure control.</strong> Counts of 1 to {policy.threshold} are redacted and other counts are "
        f"rounded to the nearest {policy.rounding}, so small groups can show no result, and shown figures may not "
        "add up exactly to totals (which are recomputed from rounded parts). Rates and intervals are computed from "
        "unrounded counts before release.",
        "<strong>Multiple comparisons.</strong> Many groups, sites and measures are compared; intervals are not "
        "adjusted for multiplicity, so some apparent differences will arise by chance.",
        "<strong>Implementation effect.</strong> Interrupted time series assume that nothing else changed at each "
        "site's go-live date and that the pre-go-live trend would have continued; staggered go-live dates help, "
        "but national changes (for example Mental Health Act reform) can coincide.",
        f"<strong>Cohort definition.</strong> Results depend on the configured definition: adults aged "
        f"{config.cohort.min_age} or over, index referral in the study window, the detention codes listed in the "
        "methods. People already in contact before the window enter at their first referral in it.",
    ]
    if not_analysed:
        names = "; ".join(f"{s['id']} ({s['reason']})" for s in not_analysed)
        items.append(f"<strong>Sites not analysed.</strong> {escape(names)}. Pooled results describe the analysed "
                     "sites only.")
    return "<ul class='limitations'>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"
