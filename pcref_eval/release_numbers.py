"""Every number a reader can see in a figure or document must be explainable by the released tables.

Rounding a count protects nothing if a figure's label, a sentence of the report or a board pack prints
the unrounded value. :func:`document_number_violations` reads what a reader sees:

- SVG figures: ``<text>``/``<tspan>``/``<title>``/``<desc>`` elements (matplotlib writes its text as text:
  ``svg.fonttype = none``);
- PNG figures: metadata text chunks (tEXt, zTXt, iTXt);
- HTML (report, appendices, board packs, summaries): visible text and ``alt``/``title``/``aria-label``
  attributes, not ``<script>``/``<style>``;
- PDF: text by ``pdftotext`` (poppler-utils; when it is missing, the PDF is not read and a note says so,
  because the PDFs are rendered from the HTML that is checked);
- DOCX: paragraphs, tables, headers and footers.

Each number found is **explained** when it is one of:

1. **a released value**: some number cell of a released CSV under ``release/tables`` equals it to the
   decimals shown (``|value - shown| <= half a unit of the last shown digit``), also read as a
   percentage (a proportion x 100) — so a count, rate, percentage, interval limit or model output
   printed with the report's formatting (thousands separators, fewer decimals, ``a-b`` intervals,
   a leading minus) is explained by the cell it was read from;
2. **a non-data number** of the small grammar :data:`NON_DATA` (matched on the text around it):
   dates, months, financial years and calendar years (1950-2049, written without a thousands
   separator: a count of 2,021 people is printed with one), clock times and durations, software
   versions, references to tables, figures, pages, sections, appendices, steps and legal sections
   (``Table 3``, ``page 2 of 4``, ``section 136``), confidence levels (``95% CI``), ``per 100,000``,
   p-value bounds (``p < 0.001``), SPC rule constants (``3 sigma``, ``7 points``), numbered headings;
3. **an axis tick label** of an SVG figure (inside matplotlib's ``xtick_*``/``ytick_*`` groups) whose
   axis' labels are evenly spaced (linear) or a geometric sequence (log axis): the axis' scale, not
   data;
4. **a configuration value** of the run (``config.yml``): the disclosure threshold and rounding bases,
   the minimum group size for summaries, the minimum age, the detention and place-of-safety codes,
   the seed, the number of sites, the study window's dates, and the measures' assurance targets
   (default definitions and ``config.measures``; the SPC captions print them).

Anything else is an ``unexplained_number`` violation naming the file, where in it (text element,
line, page, paragraph, table cell) and the text around the number. Independently of the match, a
whole number printed next to a word that counts people or events (``476 people``, ``1,237 detentions``)
must be a released count: 0 or a multiple of the rounding base above the threshold
(``unrounded_count``); the release check's ``small_count`` rule already refuses 1..threshold.

Limits (stated, not hidden): a number is matched against *any* released value, not the cell it
came from (the documents carry no provenance per number), so a leaked number that happens to equal
some other released value to its shown decimals passes; small whole numbers are explained by many
cells. The rules that do not depend on coincidence are the count-phrase rule above and the
``small_count``/``unrounded_count`` checks of tables in HTML, DOCX and CSV.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_MONTHS = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
           r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)")
#: The grammar of non-data numbers: (name, pattern). A number inside a match is explained. Order does not
#: matter; every pattern is applied to the whole text before numbers are read.
NON_DATA: list[tuple[str, re.Pattern]] = [(name, re.compile(p, re.IGNORECASE)) for name, p in (
    ("iso date/time", r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?Z?)?"),
    # a run id (runner.pipeline.make_run_id): UTC time stamp and 8 hex digits of the config hash, which are all
    # digits in about 1 run in 40 (then read as a number and the release withheld: found in a national run)
    ("run id", r"\b\d{8}T\d{6}-\s*[0-9a-f]{8}\b"),  # a PDF line may wrap after the hyphen
    ("month or financial year", r"(?<![\d.,])(?:19|20)\d{2}[-/](?:0[1-9]|1[0-2]|\d{2})(?![\d.])(?![-/]\d)"),
    ("quarter", r"(?<![\w.])(?:19|20)\d{2}[ -]?Q[1-4]\b|\bQ[1-4][ -](?:19|20)\d{2}\b"),
    ("day month year", rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTHS}\b(?:\s+\d{{4}})?"),
    ("month year", rf"\b{_MONTHS}\.?\s+'?\d{{2,4}}\b"),
    ("calendar year", r"(?<![\w.,\u2212-])(?:19\d{2}|20[0-4]\d)(?![\w,]\d|\.\d)"),
    ("citation", r"\bdoi:\s*\S+|\bhttps?://\S+|\b(?:1[89]|20)\d{2}\s*;\s*\d+(?:\(\d+\))?\s*:\s*[A-Za-z]?\d+"
                 r"(?:\s*[-\u2013]\s*[A-Za-z]?\d+)?|\b(?:No|Vol|vol|ed|Ed)\.\s*\d+"),
    ("clock time", r"\b\d{1,2}:\d{2}(?::\d{2})?(?:\s*(?:UTC|GMT|BST))?"),
    ("duration", r"(?<![\w.])\d+(?:\.\d+)?\s?(?:s|ms|min|mins|minutes?|seconds?|hours?|h|MB|GB|kB|KB|MiB|GiB)\b"),
    ("software version", r"(?:\b[vV]|\bversion\s*|\b(?:Python|R|pandas|numpy|scipy|lifelines|statsmodels|"
                         r"matplotlib|seaborn|papermill|nbconvert|jupyter|great[- ]expectations|pcref-eval|"
                         r"WeasyPrint|Chromium|Chrome|pyarrow|python-docx|dask|SQLAlchemy)\s+)\d+(?:\.\d+)+\S*"
                         r"|(?<![\w.])\d+\.\d+\.\d+(?:[.\w+-]*)"),
    ("reference", r"\b(?:tables?|figures?|figs?\.|pages?|p\.|pp\.|sections?|appendix|appendices|chapter|part|"
                  r"steps?|step|items?|rules?|notes?|parts?|ss?\.|issue|measures?|footnote|box|row|column)\s+"
                  r"[A-Z]?\d+(?:\.\d+)*[a-z]?(?:\s*(?:of|to|and|-|\u2013|,)\s*[A-Z]?\d+(?:\.\d+)*)*"),
    ("page x of y", r"(?m)\b\d+[ \t]*(?:/|of)[ \t]*\d+[ \t]*$"),
    ("confidence level", r"\b(?:80|90|95|97\.5|99|99\.7|99\.8|99\.9)\s*%(?:\s*(?:and|or|,)\s*(?:95|99\.8)\s*%)?[\s,]*"
                         r"(?:CI|confidence|credible|prediction|interval|intervals|limits?|control|uncertainty|UI|"
                         r"funnel|allowing|band|bands)\b|\b(?:80|90|95|99)(?:th)?\s+per\s*cent\s+confidence"),
    ("per population", r"\bper\s+(?:1,000,000|100,000|10,000|1,000|100|10|1)(?![\d,])|"
                       r"\b(?:100,000|10,000|1,000|100)\s+(?:person-years|people-years|population)\b"),
    ("p-value bound", r"[<>\u2264\u2265]\s*0?\.0*[15]\b"),
    ("SPC rule", r"\b\d+\s*(?:sigma|\u03c3|SD|standard deviations?|points?|consecutive|in a row|runs?)\b|"
                 r"\b(?:three|two)\s+sigma\b|(?<![\d.])(?:2\.66|3\.267|1\.128)(?![\d])"),  # XmR chart constants
    ("data standard code", r"(?<![\w.,])(?:Z|99|X)(?:\s*,\s*(?:Z|99|X))+\b|"
                           r"(?<![\w.,])99(?=\s*(?:\(|=|:)?\s*(?:not known|Not known|or blank|\)))|^\s*99\s*$"),
    ("disclosure policy", r"counts of \d+ to \d+ are redacted, the rest are rounded to the nearest \d+|"
                          r"\bmidpoint[- ]\d+|\b(?:below|under|fewer than)\s+\d+\b"),
    # the config's site-drift allowance, quoted by the attribution design text (pcref_eval.attribution.tables)
    ("site-drift allowance", r"\babout\s+\d+(?:\.\d+)?\s+a\s+year\s+on\s+the\s+log\s+scale\b"),
    ("citation marker", r"\[\d+(?:\s*[,\u2013-]\s*\d+)*\]"),
    ("algorithm or encoding", r"\b(?:SHA|MD|UTF|ISO|ICD|CRC)[- ]?\d+\b"),
    ("data checks", r"\b\d+\s+of\s+\d+\s+(?:data\s+)?(?:checks|expectations|suites|sites)\b|"
                    r"\b\d+\s+(?:data\s+)?(?:checks|expectations|suites)\b"),
    ("published statistic", r"\b(?:NHS England|ONS|the Office for National Statistics) published\s+[\d,.]+|"
                            r"\bEngland\s*\(\s*[\d.,]+\s*\)"),  # the national published value a funnel is centred on
    ("count of organisations", r"\b\d+\s+(?:of\s+\d+\s+)?(?:sites|trusts|ICBs|integrated care boards|providers)\b"),
    ("numbered heading", r"(?m)^[ \t]*\d+(?:\.\d+)*\.?[ \t]+(?=[A-Z][a-z])"),
    ("ordinal", r"\b\d+(?:st|nd|rd|th)\b"),
    ("age band", r"\b\d{1,2}\s*(?:-|\u2013|to)\s*\d{1,2}\s*(?:years?|yrs)\b|\b\d{1,2}\+|\baged?\s+\d{1,2}\b"),
    ("unit of time", r"\b\d+\s*(?:-\s*)?(?:months?|years?|weeks?|days?|quarters?)\b"),
)]

#: Grammar entries that name a month: the year in "go-live Oct 2022" is not a count of the word after it, even
#: where a PDF's text runs a table header into the next row ("Oct 2022 Referrals via ..."). A bare year is
#: not among them: "2023 referrals" is read as a count.
DATED = frozenset({"day month year", "month year"})
#: A number as printed: optional minus (ASCII or U+2212), digits with optional thousands separators, decimals.
_NUMBER = re.compile(r"(?<![\w.])([-\u2212]?)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\w]|\.\d)")
#: Words that say the number before them counts people or events.
_COUNT_WORDS = re.compile(
    r"^\s*(?:people|persons|patients|individuals|service users|detentions|admissions|deaths|events|cases|"
    r"referrals|incidents|children|women|men|adults|restraints?|contacts)\b", re.IGNORECASE)


@dataclass
class ReleasedValues:
    """Every number of the released tables (absolute values, sorted) and the run's configuration values."""

    values: np.ndarray
    config: set[float] = field(default_factory=set)
    integers: set[float] = field(default_factory=set)  # cells written as whole numbers (counts, denominators)

    @classmethod
    def from_release(cls, release: Path, config_values: set[float] | None = None,
                     prefixes: set[str] | None = None, cells: dict | None = None) -> "ReleasedValues":
        """Values of every released table (or only those of ``prefixes``: see :func:`document_scope`).

        ``cells``: a dict shared between calls on one release, keeping each table's parsed numbers (the
        documents of a 50-site release have 51 scopes that share the cross-site tables)."""
        cells = {} if cells is None else cells
        vals: list[np.ndarray] = []
        ints: set[float] = set()
        known = release_prefixes(release)
        for path in sorted((release / "tables").glob("*.csv")) if (release / "tables").is_dir() else []:
            if prefixes is not None and table_prefix(path.stem, known) not in prefixes:
                continue
            if path not in cells:
                cells[path] = _table_numbers(path)
            table_vals, table_ints = cells[path]
            vals.append(table_vals)
            ints |= table_ints
        return cls(np.concatenate(vals) if vals else np.zeros(0), set(config_values or ()), ints)

    def __post_init__(self):
        v = np.abs(np.asarray(self.values, dtype=float))
        self.values = np.unique(np.concatenate([v, v * 100.0]))  # a proportion may be shown as a percentage

    def explains(self, value: float, decimals: int, whole: bool = False) -> bool:
        """True when a released value (or a configuration value) equals ``value`` to ``decimals`` decimals.

        ``whole``: a whole number printed without decimals and not as a percentage: below 100 it must equal a
        cell released as a whole number (a count, a denominator, a label) or a configuration value exactly (a
        rate or ratio rounded to a whole number would explain nearly every small number); from 100 a rate
        printed to three significant figures (the board packs' format) may explain it too."""
        x = abs(value)
        tol = 0.5 * 10.0 ** (-decimals) * (1 + 1e-9) + 1e-12
        if any(abs(c - x) <= tol for c in self.config):
            return True
        if whole and x in self.integers:
            return True
        if whole and x < 100:  # two digits or fewer: only a whole-number cell explains it
            return False
        i = int(np.searchsorted(self.values, x - tol, side="left"))
        return i < len(self.values) and self.values[i] <= x + tol


def _table_numbers(path: Path) -> tuple[np.ndarray, set[float]]:
    """A released CSV's numeric cells (absolute values) and those written as whole numbers."""
    vals: list[float] = []
    ints: set[float] = set()
    try:
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    except (OSError, UnicodeDecodeError):
        return np.zeros(0), ints
    for row in rows[1:]:
        for cell in row:
            v = _as_float(cell)
            if v is not None:
                vals.append(abs(v))
                if re.fullmatch(r"-?\d+", cell.strip().replace(",", "")):
                    ints.add(abs(v))
    return np.asarray(vals, dtype=float), ints


def release_prefixes(release: Path) -> list[str]:
    """Prefixes of the release's notebooks and builders (``release/index/<prefix>.json``), longest first."""
    return sorted((p.stem for p in (release / "index").glob("*.json")), key=len, reverse=True)


def table_prefix(stem: str, prefixes: list[str]) -> str | None:
    """The prefix a released file belongs to (``site_a_table_one`` -> ``site_a``), longest match first."""
    return next((p for p in prefixes if stem == p or stem.startswith(p + "_")), None)


#: Prefixes whose tables any document may quote (cross-site tables, the summary page's tables).
SHARED_PREFIXES = {"all", "summary"}


def document_scope(rel: str, prefixes: list[str]) -> set[str] | None:
    """The tables a document may quote: a site's own figures, captions and board pack quote that site's
    tables (and its data-quality tables) and the shared ones; every other document any table (None)."""
    stem = Path(rel).stem
    sites = [p for p in prefixes if p not in SHARED_PREFIXES and not p.startswith("dq_")]
    own = table_prefix(stem, sites) or (table_prefix(stem[3:], sites) if stem.startswith("dq_") else None)
    if own is None:
        return None
    return {own, f"dq_{own}", *SHARED_PREFIXES}


def _as_float(cell: str) -> float | None:
    s = str(cell).strip().replace(",", "")
    if not s or not re.fullmatch(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", s):
        return None
    v = float(s)
    return v if math.isfinite(v) else None


def config_values(run_dir: Path) -> set[float]:
    """Numbers of the run's configuration a report may print: policy, age, codes, seed, sites, window years."""
    out: set[float] = set()
    try:
        from pcref_eval.config import load_config
        from pcref_eval.disclosure import DisclosurePolicy
        cfg = load_config(Path(run_dir) / "config.yml")
    except Exception:
        return out
    pol = DisclosurePolicy.from_config(cfg.disclosure)
    out |= {pol.threshold, pol.rounding, pol.km_rounding, pol.summary_min, pol.threshold + 1, len(cfg.sites)}
    out.add(getattr(cfg, "seed", None) or 0)
    cohort = getattr(cfg, "cohort", None)
    for key in ("min_age",):
        v = getattr(cohort, key, None)
        if isinstance(v, (int, float)):
            out.add(v)
    for key in ("detention_codes", "place_of_safety_codes"):
        for code in getattr(cohort, key, None) or []:
            v = _as_float(code)
            if v is not None:
                out.add(v)
    out |= measure_targets(cfg)
    study = getattr(cfg, "study", None)
    for key in ("start", "end"):
        d = getattr(study, key, None)
        if d is not None:
            out |= {d.year, d.day, d.month}
    if study is not None and getattr(study, "start", None) and getattr(study, "end", None):
        days = (study.end - study.start).days + 1
        out |= {round(days / 365.25), round(days / 365.25 * 12)}
    return {float(v) for v in out if isinstance(v, (int, float))}


def measure_targets(cfg) -> set[float]:
    """Assurance targets of the run's measures (the defaults and ``config.measures``): SPC captions print them."""
    from pcref_eval.measures.defaults import measure_registry

    out: set[float] = set()
    for d in measure_registry(list(getattr(cfg, "measures", None) or [])):
        for v in (d.target, d.gap_target):
            if isinstance(v, (int, float)):
                out.add(float(v))
    return out


@dataclass
class Found:
    """One number not explained: where, the number as printed, and the text around it."""

    where: str
    number: str
    context: str
    pos: int = 0


def unexplained_numbers(text: str, known: ReleasedValues, rounding: int, threshold: int,
                        extra_spans: list[tuple[int, int]] | None = None) -> tuple[int, list[Found], list[Found]]:
    """Numbers of ``text`` explained neither by ``known`` nor by :data:`NON_DATA`.

    Returns (numbers read, unexplained numbers, whole numbers next to a count word that are not released counts).
    """
    covered = np.zeros(len(text) + 1, dtype=bool)
    dated = np.zeros(len(text) + 1, dtype=bool)  # inside a date that names its month: a year, never a count
    for name, pat in NON_DATA:
        for m in pat.finditer(text):
            covered[m.start():m.end()] = True
            if name in DATED:
                dated[m.start():m.end()] = True
    for a, b in extra_spans or ():
        covered[a:b] = True
    n = 0
    bad: list[Found] = []
    counts: list[Found] = []
    for m in _NUMBER.finditer(text):
        n += 1
        digits = (m.group(2) + (m.group(3) or "")).replace(",", "")
        value = float(digits)
        decimals = len(m.group(3)) - 1 if m.group(3) else 0
        ctx = _context(text, m.start(), m.end())
        if decimals == 0 and _COUNT_WORDS.match(text[m.end():m.end() + 30]) and not dated[m.start():m.end()].all():
            if value > threshold and rounding > 1 and value % rounding:  # 1..threshold: the small_count rule
                counts.append(Found("", m.group(0), ctx, m.start()))
                continue
        whole = decimals == 0 and not text[m.end():m.end() + 2].lstrip().startswith("%")
        if covered[m.start():m.end()].all() or known.explains(value, decimals, whole):
            continue
        bad.append(Found("", m.group(0), ctx, m.start()))
    return n, bad, counts


def _context(text: str, a: int, b: int, width: int = 40) -> str:
    left = text[max(0, a - width):a]
    right = text[b:b + width]
    return re.sub(r"\s+", " ", f"{left}[{text[a:b]}]{right}").strip()


# --------------------------------------------------------------------------------------------------
# what a reader sees, per file type: [(where, text)]


def svg_texts(data: bytes) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(texts outside axis ticks, tick labels) of an SVG: [(where, text)]; tick labels are ('xtick'/'ytick' axis
    key, text) so each axis can be judged as a whole."""
    import xml.etree.ElementTree as ET
    # comments too: with svg.fonttype "path" matplotlib draws text as glyphs and keeps the string in a comment
    root = ET.fromstring(data, parser=ET.XMLParser(target=ET.TreeBuilder(insert_comments=True)))
    ticks: list[tuple[str, str]] = []
    other: list[tuple[str, str]] = []
    tick_ids: set[int] = set()

    def local(el) -> str:
        return "comment" if el.tag is ET.Comment else el.tag.rsplit("}", 1)[-1]

    # matplotlib: <g id="axes_1"><g id="matplotlib.axis_1"><g id="xtick_1">...<text>2021</text>
    for axes_i, axes in enumerate(el for el in root.iter() if local(el) == "g"
                                  and str(el.get("id", "")).startswith("axes_")):
        for g in axes.iter():
            gid = str(g.get("id", ""))
            m = re.fullmatch(r"([xy])tick_\d+", gid)
            if local(g) != "g" or not m:
                continue
            comments, texts = [], []
            for el in g.iter():
                if local(el) in ("text", "tspan", "comment"):
                    tick_ids.add(id(el))
                    if local(el) == "comment":
                        comments.append((el.text or "").strip())
                    elif local(el) == "text":
                        texts.append(" ".join(t.strip() for t in el.itertext() if t.strip()))
            label = next((c for c in comments if c), None) or " ".join(t for t in texts if t)
            if label:
                ticks.append((f"{axes.get('id')}/{m.group(1)}", label))
    k = 0
    for el in root.iter():
        if local(el) in ("text", "title", "desc", "comment") and id(el) not in tick_ids:
            t = (el.text or "").strip() if local(el) == "comment" else "".join(el.itertext()).strip()
            if t:
                k += 1
                other.append((f"text element {k}", t))
    return other, ticks


def _mathtext_number(label: str) -> str:
    """A matplotlib mathtext tick label as plain text: ``$\\mathdefault{10^{4}}$`` -> ``1e4``,
    ``$\\mathdefault{2\\times10^{3}}$`` -> ``2e3``; other labels unchanged."""
    s = label.strip()
    if not (s.startswith("$") and s.endswith("$")):
        return s
    s = re.sub(r"\\mathdefault|\\mathregular|[{}$]", "", s).replace("\\times", "x").replace("\u2212", "-").strip()
    m = re.fullmatch(r"(?:([\d.]+)\s*x\s*)?10\^(-?\d+)", s)
    return f"{m.group(1) or 1}e{m.group(2)}" if m else s


#: Mantissas of the "nice" numbers axes are labelled with (x 10^k).
NICE_MANTISSAS = (1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 7.5, 8, 9)


def _nice(v: float) -> bool:
    if v == 0:
        return True
    k = math.floor(math.log10(abs(v)))
    return any(math.isclose(abs(v) / 10 ** k, m, rel_tol=1e-9) for m in NICE_MANTISSAS)


def ticks_are_scale(labels: list[str]) -> bool:
    """True when an axis' numeric tick labels are evenly spaced or a geometric sequence (a scale, not data)."""
    vals = []
    for lab in labels:
        s = _mathtext_number(lab).replace("\u2212", "-").replace(",", "").replace("%", "").strip()
        try:
            vals.append(float(s))
        except ValueError:
            return False if _NUMBER.search(lab) and not any(p.search(lab) for _n, p in NON_DATA) else True
    if len(vals) <= 2 or all(_nice(v) for v in vals):  # hand-picked ticks on a log axis: 0.125, 0.25, 0.4, ...
        return True
    d = np.diff(vals)
    if np.allclose(d, d[0], rtol=1e-6, atol=1e-9):
        return True
    v = np.asarray(vals)
    if (v > 0).all():
        r = v[1:] / v[:-1]
        return bool(np.allclose(r, r[0], rtol=1e-6))
    return False


def html_texts(text: str) -> list[tuple[str, str]]:
    """Visible text of an HTML document by line, plus alt/title/aria-label attributes (no script, style, data URIs)."""
    from bs4 import BeautifulSoup
    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(["script", "style", "template"]):
        tag.decompose()
    out: list[tuple[str, str]] = []
    for t_index, table in enumerate(soup.find_all("table"), 1):
        for r, tr in enumerate(table.find_all("tr"), 1):
            cells = [c.get_text(" ", strip=True) for c in tr.find_all(["th", "td"])]
            out += [(f"table {t_index}, row {r}, cell {j}", c) for j, c in enumerate(cells, 1) if c]
        table.decompose()
    out.append(("text", soup.get_text("\n")))
    for tag in soup.find_all(True):
        for k in ("alt", "title", "aria-label"):
            v = tag.get(k)
            if v and not str(v).startswith("data:"):
                out.append((f"<{tag.name}> {k}", str(v)))
    return out


def docx_texts(path: Path) -> list[tuple[str, str]]:
    """Paragraphs, table cells, headers and footers of a Word document (:func:`pcref_eval.docx_text.read_docx`)."""
    from pcref_eval.docx_text import read_docx
    doc = read_docx(path)
    out = [(f"paragraph {i}", p) for i, p in enumerate(doc.paragraphs, 1) if p.strip()]
    for t, rows in enumerate(doc.tables, 1):
        out += [(f"table {t}, row {r}, cell {j}", c) for r, row in enumerate(rows, 1)
                for j, c in enumerate(row, 1) if c.strip()]
    for name, paragraphs in doc.headers_footers:
        out += [(name, p) for p in paragraphs if p.strip()]
    return out


def pdf_texts(path: Path) -> list[tuple[str, str]] | None:
    """Text of each PDF page by line (pdftotext -layout); None when poppler-utils is not installed."""
    exe = shutil.which("pdftotext")
    if exe is None:
        return None
    out = subprocess.run([exe, "-layout", "-enc", "UTF-8", str(path), "-"], capture_output=True, text=True,
                         timeout=300)
    if out.returncode != 0:
        raise ValueError(f"pdftotext failed: {out.stderr.strip()[:200]}")
    return [(f"page {p}", page) for p, page in enumerate(out.stdout.split("\f"), 1) if page.strip()]


def png_texts(path: Path) -> list[tuple[str, str]]:
    from pcref_eval.release_check import PNG_SIGNATURE, png_text_chunks
    data = path.read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        return []
    return [(f"metadata '{k}'", f"{k} {v}") for k, v in png_text_chunks(data).items()]


# --------------------------------------------------------------------------------------------------
# the check


DOCUMENT_SUFFIXES = {".svg", ".png", ".html", ".htm", ".pdf", ".docx", ".md", ".txt"}


@dataclass
class NumberScan:
    """Totals of a scan: numbers read per file type, and notes (e.g. PDF not read)."""

    numbers: dict[str, int] = field(default_factory=dict)
    files: int = 0
    notes: list[str] = field(default_factory=list)


def document_number_violations(release: Path, add, rounding: int, threshold: int, config_vals: set[float],
                               scan: NumberScan | None = None) -> NumberScan:
    """Read every figure and document of ``release`` and flag numbers the released tables do not explain."""
    scan = scan or NumberScan()
    prefixes = release_prefixes(release)
    scopes: dict = {}
    cells: dict = {}

    def known_for(rel: str) -> ReleasedValues:
        scope = document_scope(rel, prefixes)
        key = None if scope is None else frozenset(scope)
        if key not in scopes:
            scopes[key] = ReleasedValues.from_release(release, config_vals, scope, cells)
        return scopes[key]
    pdf_missing = False
    for path in sorted(p for p in release.rglob("*") if p.is_file() and p.suffix.lower() in DOCUMENT_SUFFIXES):
        rel = path.relative_to(release).as_posix()
        if rel.startswith("index/") or rel.startswith("tables/"):
            continue
        suffix = path.suffix.lower()
        ticks: list[tuple[str, str]] = []
        if suffix == ".svg":
            texts, ticks = svg_texts(path.read_bytes())
        elif suffix == ".png":
            texts = png_texts(path)
        elif suffix in (".html", ".htm"):
            texts = html_texts(path.read_text(encoding="utf-8"))
        elif suffix == ".docx":
            texts = docx_texts(path)
        elif suffix in (".md", ".txt"):
            texts = [(f"line {i}", line) for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                     if line.strip()]
        else:
            texts = pdf_texts(path)
            if texts is None:
                pdf_missing = True
                continue
        scan.files += 1
        by_axis: dict[str, list[str]] = {}
        for axis, t in ticks:
            by_axis.setdefault(axis, []).append(t)
        for axis, labels in by_axis.items():
            if not ticks_are_scale(labels):
                texts += [(f"tick label of {axis}", t) for t in labels]
            else:
                scan.numbers[suffix] = scan.numbers.get(suffix, 0) + sum(len(_NUMBER.findall(t)) for t in labels)
        known = known_for(rel)
        for where, text in texts:
            n, bad, counts = unexplained_numbers(text, known, rounding, threshold)
            scan.numbers[suffix] = scan.numbers.get(suffix, 0) + n

            def at(f: Found) -> str:  # a page or a whole document's text: name the line too
                return f"{where}, line {text.count(chr(10), 0, f.pos) + 1}" if "\n" in text else where
            for f in bad:
                add(rel, at(f), "unexplained_number",
                    f"number {f.number} is in no released table (nor a date, reference or config value): "
                    f"'{f.context}'")
            for f in counts:
                add(rel, at(f), "unrounded_count",
                    f"text states a count of {f.number}, not a released (rounded) count: '{f.context}'")
    if pdf_missing:
        scan.notes.append("pdftotext (poppler-utils) not installed: numbers in PDFs not read (the HTML they are "
                          "rendered from is)")
    return scan


def summary_json(scan: NumberScan) -> str:
    return json.dumps({"files": scan.files, "numbers": scan.numbers, "notes": scan.notes})
