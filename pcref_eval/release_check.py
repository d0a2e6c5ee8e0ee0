"""The release check: nothing leaves a run's ``release/`` folder until a scan of every file passes.

``check_release(run_dir)`` reads every file under ``release/`` and returns a :class:`Violation` per
problem, naming the file and the cell (or line, key, element) where it is:

- ``small_count``: a count in 1..threshold (threshold from the run's ``config.yml`` disclosure
  policy). Count columns are known from ``release/index/<prefix>.json`` (``count_cols``) or from the
  ``data-pcref-counts`` attribute of report tables; otherwise a column whose header looks like a
  count (n, count, events, people, n_risk, n_event, n_censored, ...) is treated as one. Checked in
  CSV files, HTML tables (the report), DOCX tables, and phrases such as "3 people" in any text.
  Kaplan-Meier tables released with midpoint-6 rounding (index entries of kind ``km_table``, HTML
  tables marked ``data-pcref-rounding="midpoint6"``) follow OpenSAFELY's rule instead: their
  cumulative counts must be midpoint-6 values; per-step counts (differences) may be small.
- ``unrounded_count``: a declared count column holding a value that is not a multiple of the
  policy's rounding base (the table did not pass through disclosure control).
- ``identifier_column``: a column (CSV header, HTML/DOCX table header, JSON key) that looks like an
  identifier: person id, NHS number, date of birth, postcode, LSOA, or any of
  :data:`pcref_eval.schema.IDENTIFIER_COLUMNS`.
- ``identifier_value``: a token equal to an identifier value of a site extract (every ``id`` column of
  :data:`~pcref_eval.schema.TABLE_SCHEMAS`, plus NHS number, postcode and LSOA columns if present),
  read from the site folders listed in the run's ``config.yml``. Pure-digit ids shorter than
  :data:`MIN_NUMERIC_ID_DIGITS` digits cannot be told apart from ordinary numbers and are not matched.
- ``unchecked_file``: a binary file of a type the check cannot read (only text formats, DOCX, PDF and
  images are allowed in ``release/``).

``gate_release(run_dir)`` is what the pipeline calls last. When the check passes it writes
``release/release-check.json`` (status, policy, files checked; no data) and returns
``(True, [])``. When it fails, the whole ``release/`` folder is moved to
``restricted/release-blocked/`` (violations listed in ``restricted/release-blocked/VIOLATIONS.txt``
and ``restricted/release-check.json``), and a fresh ``release/`` holds only ``RELEASE_WITHHELD.txt``
(no details: the violations themselves may quote disclosive values). To release after a fix,
correct the cause and re-run; or, after a reviewed manual correction, move the folder back and run
``pcref-eval check-release RUN_DIR`` (exit 0 means clean).
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from pcref_eval.disclosure import DisclosurePolicy
from pcref_eval.schema import IDENTIFIER_COLUMNS, TABLE_SCHEMAS

MIN_NUMERIC_ID_DIGITS = 8
MIN_ID_LENGTH = 4
TEXT_SUFFIXES = {".csv", ".json", ".html", ".htm", ".svg", ".md", ".txt", ".yml", ".yaml", ".log", ".tsv", ".xml"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp"}
BLOCKED_DIR = Path("restricted") / "release-blocked"
WITHHELD_NOTE = "RELEASE_WITHHELD.txt"
PASSED_NOTE = "release-check.json"

_IDENTIFIER_PATTERNS = [re.compile(p) for p in (
    r"^(person|patient|pseudo|pseudonymised|client|service_user|individual|subject|local_patient)_?(id|identifier|key|number|no|num)$",
    r"^(uniq_)?(mha|mh_act|cto|spell|referral|episode|assessment|intervention|response)(_[a-z0-9]+)*_id$",
    r"(^|_)nhs_?(number|no|num)($|_)",
    r"^nhs_?no$|^nhsnumber$",
    r"(^|_)(date_of_birth|dob|birth_date|birthdate|person_birth_date)($|_)",
    r"(^|_)post_?code($|_)|^pcds$|^pcd$",
    r"(^|_)lsoa(\d+)?($|_)",
)]
_COUNT_HEADER = re.compile(
    r"^(n|num|number|count|counts|frequency|freq|events?|people|persons?|patients?|individuals?|cases?|deaths?|"
    r"detentions?|admissions?|referrals?|episodes?|incidents?|interventions?|responses?|numerator|denominator|"
    r"total|n_.+|.+_n|.+_count|count_.+|num_.+|number_.+|.+_events?|n?_?at_risk|n_risk|n_event|n_censored|"
    r"censored|.+_people|people_.+|.+_patients)$")
_SMALL_COUNT_TEXT = re.compile(
    r"(?<![\d.,])(\d{1,3})\s+(people|persons|patients|individuals|service users|detentions|admissions|deaths|"
    r"events|cases|referrals|incidents|children|women|men)\b", re.IGNORECASE)
_NOT_COUNT_WORDS = {"rate", "rates", "ratio", "rr", "hr", "or", "irr", "pct", "percent", "percentage", "proportion",
                    "prop", "lower", "upper", "lcl", "ucl", "mean", "median", "sd", "se", "ci", "score", "per",
                    "survival", "probability", "estimate", "p", "z", "chi2", "coef", "share"}
#: Header of the Kaplan-Meier landmark tables the publisher displays (midpoint-6 rounded counts).
KM_LANDMARK_HEADER = ("group", "time", "n_risk", "surv", "lower", "upper")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]*")


@dataclass(frozen=True)
class Violation:
    """One problem in a release file: ``file`` (relative to release/), ``where`` (cell, line, key), what."""

    file: str
    where: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.file}: {self.where}: [{self.kind}] {self.detail}"


def normalise_header(name) -> str:
    """``'Person ID'``, ``'PersonID'``, ``'person-id'`` -> ``'person_id'``."""
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", str(name).strip())
    s = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", "_", s)
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")


def is_identifier_column(name) -> bool:
    """True for headers that look like an identifier or quasi-identifier (see module docstring)."""
    n = normalise_header(name)
    if n in IDENTIFIER_COLUMNS or n.replace("_", "") in {c.replace("_", "") for c in IDENTIFIER_COLUMNS}:
        return True
    return any(p.search(n) for p in _IDENTIFIER_PATTERNS)


def looks_like_count(name) -> bool:
    """True for headers that look like a count of people or events (used when no index says)."""
    n = normalise_header(name)
    if set(n.split("_")) & _NOT_COUNT_WORDS:
        return False
    return bool(_COUNT_HEADER.match(n))


def _as_count(text) -> float | None:
    """An integer value from a cell ('1,235', '3', '3.0'), or None if the cell is not an integer."""
    s = str(text).strip().replace(",", "").replace("\u2009", "")
    if not s or not re.fullmatch(r"-?\d+(\.0+)?", s):
        return None
    return float(s)


# ---------------------------------------------------------------------------------------------------
# identifiers of the extract


class IdSet:
    """Identifier values of the run's site extracts, lower-cased, for fast token lookup."""

    def __init__(self, values: set[str] | None = None):
        self.values: set[str] = set()
        self.skipped_numeric = 0
        for v in values or ():
            self.add(v)

    def add(self, value) -> None:
        v = re.sub(r"\s+", "", str(value)).lower()
        if len(v) < MIN_ID_LENGTH:
            return
        if v.isdigit() and len(v) < MIN_NUMERIC_ID_DIGITS:
            self.skipped_numeric += 1
            return
        self.values.add(v)

    def add_column(self, column) -> None:
        """Add every distinct value of a pandas Series: the same rules as :meth:`add`, vectorised.

        Values made only of ASCII letters, digits and ``_-./`` have no whitespace to remove and lower-case
        the same in Arrow: they are normalised by Arrow compute; any other value takes :meth:`add`'s Python
        rules (a national extract: 5 million ids in 6 s instead of 14 s).
        """
        import pyarrow as pa
        import pyarrow.compute as pc
        arr = pa.array(column.dropna().astype(str).to_numpy(dtype=object), type=pa.large_string()).unique()
        plain = pc.match_substring_regex(arr, r"^[0-9A-Za-z_./-]*$")
        for value in arr.filter(pc.invert(plain)).to_pylist():
            self.add(value)
        v = pc.utf8_lower(arr.filter(plain))
        v = v.filter(pc.greater_equal(pc.utf8_length(v), MIN_ID_LENGTH))
        short_numeric = pc.and_(pc.utf8_is_digit(v), pc.less(pc.utf8_length(v), MIN_NUMERIC_ID_DIGITS))
        self.skipped_numeric += int(pc.sum(short_numeric).as_py() or 0)
        self.values.update(v.filter(pc.invert(short_numeric)).to_pylist())

    def __len__(self) -> int:
        return len(self.values)

    def find(self, text: str) -> set[str]:
        """Identifier values occurring in ``text`` as whole tokens (or as space-separated runs of tokens)."""
        if not self.values or not text:
            return set()
        return _tokens(text) & self.values


def _tokens(text: str) -> set[str]:
    """Tokens of ``text`` (lower-cased), their '-'/'_' parts, and joins of 2-3 space-separated tokens."""
    out: set[str] = set()
    prev: list[tuple[str, int]] = []
    for m in _TOKEN.finditer(text):
        tok = m.group().lower()
        out.add(tok)
        if "-" in tok or "_" in tok:
            out.update(p for p in re.split(r"[-_]", tok) if p)
        if prev and prev[-1][1] == m.start() - 1 and text[m.start() - 1] == " ":
            out.add(prev[-1][0] + tok)
            if len(prev) > 1 and prev[-2][1] == prev[-1][1] - len(prev[-1][0]) - 1:
                out.add(prev[-2][0] + prev[-1][0] + tok)
        prev = (prev + [(tok, m.end())])[-2:]
    return out


def extract_ids(config) -> IdSet:
    """Collect id values from every site folder in ``config`` (a loaded EvaluationConfig)."""
    from pcref_eval.extract import ExtractError, table_path
    import pandas as pd

    ids = IdSet()
    tables = {t: [c for c, kind in cols.items() if kind == "id"] for t, cols in TABLE_SCHEMAS.items()}
    extra = IDENTIFIER_COLUMNS | {"nhs_number", "postcode", "lsoa", "date_of_birth"}
    for site in config.sites:
        for table, id_cols in tables.items():
            try:
                path = table_path(Path(site.path), table)
            except (ExtractError, OSError):
                continue
            try:
                if path.suffix == ".parquet":
                    import pyarrow.parquet as pq
                    names = pq.read_schema(path).names
                    wanted = [c for c in names if c in id_cols or c in extra or is_identifier_column(c)]
                    df = pd.read_parquet(path, columns=wanted)
                else:
                    df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""],
                                     usecols=lambda c: c in id_cols or c in extra or is_identifier_column(c))
            except Exception:  # unreadable extracts are the contracts' business; check what we can
                continue
            for col in df.columns:
                ids.add_column(df[col])
    return ids


# ---------------------------------------------------------------------------------------------------
# the scan


class _Scanner:
    def __init__(self, release: Path, policy: DisclosurePolicy, ids: IdSet):
        self.release, self.policy, self.ids = release, policy, ids
        self.violations: list[Violation] = []
        self.count_cols: dict[str, set[str]] = {}      # file (relative) -> normalised count columns
        self.by_header: dict[tuple, set[str]] = {}     # normalised header tuple -> normalised count columns
        self.midpoint6: set[str] = set()                # Kaplan-Meier tables released with midpoint-6 rounding
        self.midpoint6_headers: set[tuple] = {KM_LANDMARK_HEADER}
        self.files_checked = 0
        self.indexed: set[str] = set()                  # files recorded in release/index (tables and KM tables)
        self._load_index()

    def add(self, file: str, where: str, kind: str, detail: str) -> None:
        self.violations.append(Violation(file, where, kind, detail))

    def _load_index(self) -> None:
        for index in sorted((self.release / "index").glob("*.json")):
            try:
                entries = json.loads(index.read_text(encoding="utf-8")).get("entries", [])
            except (ValueError, OSError, AttributeError):
                continue
            for e in entries:
                if not isinstance(e, dict) or e.get("kind") not in ("table", "km_table"):
                    continue
                counts = {normalise_header(c) for c in e.get("count_cols", [])}
                self.indexed.update(str(f) for f in e.get("files", []))
                if e.get("kind") == "km_table" or e.get("rounding") == "midpoint6":
                    for f in e.get("files", []):
                        self.midpoint6.add(str(f))
                        header = _csv_header(self.release / f)
                        if header:
                            self.midpoint6_headers.add(tuple(normalise_header(h) for h in header))
                    continue
                for f in e.get("files", []):
                    self.count_cols[str(f)] = counts
                    header = _csv_header(self.release / f)
                    if header:
                        self.by_header[tuple(normalise_header(h) for h in header)] = counts

    # --- helpers -----------------------------------------------------------------------------------

    def check_count(self, file: str, where: str, text, declared: bool) -> None:
        v = _as_count(text)
        if v is None:
            return
        if 1 <= v <= self.policy.threshold:
            self.add(file, where, "small_count",
                     f"count {int(v)} is between 1 and {self.policy.threshold} (disclosure threshold)")
        elif declared and self.policy.rounding > 1 and v % self.policy.rounding != 0:
            self.add(file, where, "unrounded_count",
                     f"count {int(v)} is not a multiple of {self.policy.rounding}: not disclosure-controlled")

    def check_ids(self, file: str, where: str, text: str) -> None:
        found = self.ids.find(text)
        if found:
            self.add(file, where, "identifier_value",
                     f"{len(found)} value(s) equal to an identifier in the site extracts")

    def check_text(self, file: str, text: str, first_line: int = 1, what: str = "line") -> None:
        """Identifier values, small counts and absolute server paths in prose, located by line."""
        from pcref_eval.release_attack import path_violations
        path_violations(file, text, self.add, what, first_line)
        if self.ids.find(text):
            for i, line in enumerate(text.splitlines(), first_line):
                self.check_ids(file, f"{what} {i}", line)
        for i, line in enumerate(text.splitlines(), first_line):
            for m in _SMALL_COUNT_TEXT.finditer(line):
                n = int(m.group(1))
                if 1 <= n <= self.policy.threshold:
                    self.add(file, f"{what} {i}", "small_count",
                             f"text '{m.group(0)}' states a count between 1 and {self.policy.threshold}")

    def check_table(self, file: str, label: str, header: list[str], rows: list[list[str]],
                    declared: set[str] | None) -> None:
        """One table (CSV, HTML or DOCX): identifier headers, counts by column, identifier values by cell."""
        norm = [normalise_header(h) for h in header]
        if declared is None:
            declared = self.by_header.get(tuple(norm))
        for h in header:
            if is_identifier_column(h):
                self.add(file, f"{label}column '{h}'", "identifier_column",
                         f"column '{h}' looks like an identifier; only aggregate data may be released")
        count_idx = [j for j, n in enumerate(norm) if (n in declared if declared is not None else looks_like_count(n))]
        for i, row in enumerate(rows, 1):
            for j in count_idx:
                if j < len(row):
                    self.check_count(file, f"{label}row {i}, column '{header[j]}'", row[j], declared is not None)
        if self.ids.values:
            for i, row in enumerate(rows, 1):
                for j, cell in enumerate(row):
                    if self.ids.find(str(cell)):
                        col = header[j] if j < len(header) else f"#{j + 1}"
                        self.check_ids(file, f"{label}row {i}, column '{col}'", str(cell))
            self.check_ids(file, f"{label}header", " ".join(header))

    def check_midpoint6(self, file: str, label: str, header: list[str], rows: list[list[str]]) -> None:
        """A Kaplan-Meier table released with midpoint-6 rounding (OpenSAFELY).

        Per-step counts are differences of rounded cumulative counts and are allowed to be small;
        what must hold is that the cumulative counts are midpoint-6 values (0, 3, 9, 15, ...) and
        the table has no identifier column or value.
        """
        norm = [normalise_header(h) for h in header]
        for h in header:
            if is_identifier_column(h):
                self.add(file, f"{label}column '{h}'", "identifier_column",
                         f"column '{h}' looks like an identifier; only aggregate data may be released")
        cum = [j for j, n in enumerate(norm) if n.startswith("cum_") and ("event" in n or "censor" in n)]
        for i, row in enumerate(rows, 1):
            for j in cum:
                v = _as_count(row[j]) if j < len(row) else None
                if v is not None and v != 0 and v % 6 != 3:
                    self.add(file, f"{label}row {i}, column '{header[j]}'", "unrounded_count",
                             f"cumulative count {int(v)} is not midpoint-6 rounded (0, 3, 9, 15, ...)")
            if self.ids.values:
                for j, cell in enumerate(row):
                    if self.ids.find(str(cell)):
                        self.check_ids(file, f"{label}row {i}, column '{header[j] if j < len(header) else j}'",
                                       str(cell))

    # --- file types --------------------------------------------------------------------------------

    def scan(self) -> list[Violation]:
        for path in sorted(p for p in self.release.rglob("*") if p.is_file()):
            rel = path.relative_to(self.release).as_posix()
            suffix = path.suffix.lower()
            self.files_checked += 1
            try:
                if suffix in (".csv", ".tsv"):
                    self.scan_csv(path, rel)
                elif suffix == ".json":
                    self.scan_json(path, rel)
                elif suffix in (".html", ".htm"):
                    self.scan_html(path.read_text(encoding="utf-8"), rel)
                elif suffix in (".svg", ".xml"):
                    self.scan_svg(path, rel)
                elif suffix == ".docx":
                    self.scan_docx(path, rel)
                elif suffix == ".pdf":
                    self.scan_pdf(path, rel)
                elif suffix in IMAGE_SUFFIXES:
                    self.scan_image(path, rel)
                else:
                    self.scan_other(path, rel)
            except Exception as exc:  # a file we cannot read cannot be released
                self.add(rel, "whole file", "unchecked_file", f"could not be read ({type(exc).__name__}: {exc})")
        return self.violations

    def scan_csv(self, path: Path, rel: str) -> None:
        text = path.read_text(encoding="utf-8")
        reader = csv.reader(io.StringIO(text), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        rows = list(reader)
        if not rows:
            return
        if rel in self.midpoint6:
            self.check_midpoint6(rel, "", rows[0], rows[1:])
            return
        # a release whose index records tables: a table missing from it bypassed the declarations (a release whose
        # index records none, e.g. a test double of a notebook, is checked by headers only, as before)
        if rel.startswith("tables/") and self.indexed and rel not in self.indexed:
            self.add(rel, "whole table", "undeclared_table",
                     "a released table that no release/index entry records: its columns are not declared, so the "
                     "attacks (back-calculation, differencing) cannot check it")
        declared = self.count_cols.get(rel)
        self.check_table(rel, "", rows[0], rows[1:], declared)

    def scan_json(self, path: Path, rel: str) -> None:
        data = json.loads(path.read_text(encoding="utf-8"))

        def walk(obj, where: str) -> None:
            if isinstance(obj, dict):
                for k, v in obj.items():
                    key = f"{where}.{k}" if where else str(k)
                    if is_identifier_column(k):
                        self.add(rel, f"key '{key}'", "identifier_column", f"key '{k}' looks like an identifier")
                    self.check_ids(rel, f"key '{key}'", str(k))
                    walk(v, key)
            elif isinstance(obj, list):
                for i, v in enumerate(obj):
                    walk(v, f"{where}[{i}]")
            elif obj is not None:
                self.check_ids(rel, f"value at '{where}'", str(obj))
        walk(data, "")

    def scan_html(self, text: str, rel: str) -> None:
        from bs4 import BeautifulSoup
        soup = BeautifulSoup(text, "html.parser")
        for t_index, table in enumerate(soup.find_all("table"), 1):
            header, rows = _html_table(table)
            counts_attr = table.get("data-pcref-counts")
            declared = ({normalise_header(c) for c in counts_attr.split(",") if c} if counts_attr is not None
                        else None)
            name = table.get("data-pcref-table") or ""
            label = f"table {t_index}{' (' + name + ')' if name else ''}, "
            if table.get("data-pcref-rounding") == "midpoint6":
                self.check_midpoint6(rel, label, header, rows)
            else:
                self.check_table(rel, label, header, rows, declared)
            table.decompose()  # its text is checked; keep the prose check below to prose
        for tag in soup(["script", "style"]):
            tag.decompose()
        for img in soup.find_all("img"):
            src = img.get("src", "")
            if src.startswith("data:"):
                img["src"] = ""
        attrs = " ".join(str(v) for tag in soup.find_all(True) for k, v in tag.attrs.items()
                         if k in ("alt", "title", "aria-label"))
        self.check_text(rel, soup.get_text("\n") + "\n" + attrs, what="text line")

    def scan_svg(self, path: Path, rel: str) -> None:
        import xml.etree.ElementTree as ET
        root = ET.fromstring(path.read_bytes())
        texts = [t for el in root.iter() if el.tag.rsplit("}", 1)[-1] in ("text", "tspan", "title", "desc")
                 for t in (el.text, el.tail) if t and t.strip()]
        self.check_text(rel, "\n".join(texts), what="text element")

    def scan_docx(self, path: Path, rel: str) -> None:
        from pcref_eval.docx_text import read_docx
        doc = read_docx(path)
        for t_index, cells in enumerate(doc.tables, 1):
            if not cells:
                continue
            if tuple(normalise_header(h) for h in cells[0]) in self.midpoint6_headers:
                self.check_midpoint6(rel, f"table {t_index}, ", cells[0], cells[1:])
            else:
                self.check_table(rel, f"table {t_index}, ", cells[0], cells[1:], None)
        text = "\n".join([*doc.paragraphs, *(p for _, ps in doc.headers_footers for p in ps)])
        self.check_text(rel, text, what="paragraph")

    def scan_pdf(self, path: Path, rel: str) -> None:
        exe = shutil.which("pdftotext")
        if exe is None:  # the PDF is rendered from the report HTML, which is checked
            return
        out = subprocess.run([exe, "-layout", str(path), "-"], capture_output=True, text=True, timeout=120)
        if out.returncode == 0:
            for p, page in enumerate(out.stdout.split("\f"), 1):
                if self.ids.find(page):
                    self.check_text(rel, page, what=f"page {p} line")

    def scan_image(self, path: Path, rel: str) -> None:
        data = path.read_bytes()
        text = png_text_chunks(data) if data.startswith(PNG_SIGNATURE) else None
        if text is None:
            from PIL import Image
            with Image.open(path) as im:
                text = getattr(im, "text", None) or {}
        meta = " ".join(f"{k} {v}" for k, v in text.items())
        if meta:
            self.check_ids(rel, "image metadata", meta)

    def scan_other(self, path: Path, rel: str) -> None:
        data = path.read_bytes()
        if zipfile.is_zipfile(path) or b"\x00" in data[:4096]:
            self.add(rel, "whole file", "unchecked_file",
                     "binary file of a type the release check cannot read; only CSV, JSON, HTML, SVG, "
                     "Markdown/text, DOCX, PDF and images may be released")
            return
        self.check_text(rel, data.decode("utf-8", errors="replace"))


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_text_chunks(data: bytes) -> dict[str, str]:
    """The text chunks (tEXt, zTXt, iTXt) of a PNG file, read without decoding its pixels.

    Pillow's ``Image.text`` decodes the whole image to reach chunks after the pixel data; this walks
    the chunk list (PNG specification, section 5.3) and inflates only compressed text.
    """
    import struct
    import zlib

    out: dict[str, str] = {}
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            out[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"zTXt":
            key, _, rest = body.partition(b"\0")
            out[key.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            compressed, rest = rest[0], rest[2:]
            _language, _, rest = rest.partition(b"\0")
            _translated, _, value = rest.partition(b"\0")
            out[key.decode("latin-1")] = (zlib.decompress(value) if compressed else value).decode("utf-8")
        elif kind == b"IEND":
            break
        pos += 12 + length
    return out


def _csv_header(path: Path) -> list[str]:
    if path.suffix != ".csv" or not path.exists():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError):
        return []


def _html_table(table) -> tuple[list[str], list[list[str]]]:
    trs = table.find_all("tr")
    if not trs:
        return [], []
    head_tr = next((tr for tr in trs if tr.find("th") and not tr.find("td")), None)
    if head_tr is None:
        head_tr = trs[0]
    header = [c.get_text(" ", strip=True) for c in head_tr.find_all(["th", "td"])]
    rows = [[c.get_text(" ", strip=True) for c in tr.find_all(["th", "td"])] for tr in trs if tr is not head_tr]
    return header, rows


# ---------------------------------------------------------------------------------------------------
# entry points


def run_policy_and_ids(run_dir: Path) -> tuple[DisclosurePolicy, IdSet, list[str]]:
    """The run's disclosure policy and extract identifiers, from ``run_dir/config.yml``; plus notes."""
    config, policy, notes = _run_config_and_policy(run_dir)
    return policy, _run_ids(config, notes), notes


def _run_config_and_policy(run_dir: Path):
    """(config or None, its disclosure policy, notes) from ``run_dir/config.yml``."""
    try:
        from pcref_eval.config import load_config
        config = load_config(Path(run_dir) / "config.yml")
    except Exception as exc:
        return None, DisclosurePolicy(), [f"no usable config.yml ({type(exc).__name__}): default policy, "
                                          f"no extract identifiers"]
    return config, DisclosurePolicy.from_config(config.disclosure), []


def _run_ids(config, notes: list[str]) -> IdSet:
    if config is None:
        return IdSet()
    ids = extract_ids(config)
    if ids.skipped_numeric:
        notes.append(f"{ids.skipped_numeric} purely numeric id value(s) shorter than {MIN_NUMERIC_ID_DIGITS} digits "
                     f"not matched (indistinguishable from ordinary numbers)")
    return ids


#: Releases with more files than this are checked in two processes (the numbers in figures and documents in
#: one, identifiers, counts and the whole-release attacks in the other): a 50-site release has ~3,400 files.
PARALLEL_FILES = 1000


def check_release(run_dir: Path, policy: DisclosurePolicy | None = None, ids: IdSet | None = None,
                  parallel: bool | None = None) -> list[Violation]:
    """Scan every file in ``run_dir/release``; return the violations (empty when clean).

    ``parallel``: read the numbers of figures and documents in a second process (default: when the release
    has more than :data:`PARALLEL_FILES` files). The violations are the same, in the same order."""
    return _check(Path(run_dir), policy, ids, parallel)[0]


def _check(run_dir: Path, policy, ids, parallel: bool | None = None):
    notes: list[str] = []
    config = None
    if policy is None or ids is None:
        config, p, notes = _run_config_and_policy(run_dir)
        policy = policy or p
    release = run_dir / "release"
    if not release.is_dir():
        return [], 0, policy, notes
    if parallel is None:
        parallel = sum(1 for p in release.rglob("*") if p.is_file()) > PARALLEL_FILES
    numbers = _start_document_numbers(run_dir, policy) if parallel else None
    try:
        ids = ids if ids is not None else _run_ids(config, notes)
        scanner = _Scanner(release, policy, ids)
        scanner.scan()
        attack_release(release, policy, scanner.add, notes)
        if numbers is None:
            document_numbers(run_dir, policy, scanner.add, notes)
        else:
            found, more_notes = numbers.result()
            scanner.violations += found
            notes += more_notes
    finally:
        if numbers is not None:
            numbers.pool.shutdown(cancel_futures=True)
    return scanner.violations, scanner.files_checked, policy, notes


def _start_document_numbers(run_dir: Path, policy: DisclosurePolicy):
    """:func:`document_numbers` started in a fresh process; its future (``.pool``: the executor)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    future = pool.submit(_document_numbers_job, str(run_dir), policy)
    future.pool = pool
    return future


def _document_numbers_job(run_dir: str, policy: DisclosurePolicy) -> tuple[list[Violation], list[str]]:
    found: list[Violation] = []
    notes: list[str] = []
    document_numbers(Path(run_dir), policy, lambda *a: found.append(Violation(*a)), notes)
    return found, notes


def attack_release(release: Path, policy: DisclosurePolicy, add, notes: list[str] | None = None) -> None:
    """The whole-release attacks of :mod:`pcref_eval.release_attack`: back-calculation of every declared
    derived value from the released counts, and differencing across every table of the release."""
    from pcref_eval.release_attack import derived_violations, differencing_violations, load_release
    tables = load_release(release, ("table", "km_table"))
    derived_violations(tables, add)
    differencing_violations(release, policy, add, tables=tables, site_prefixes=analysed_sites(release.parent))


#: The "per N" of rates (per 100 = percentage, per 1,000 bed days, per 100,000 population): units, not data.
RATE_SCALES = (100, 1_000, 10_000, 100_000, 1_000_000)


def document_numbers(run_dir: Path, policy: DisclosurePolicy, add, notes: list[str]) -> None:
    """Numbers in figures and documents that no released table explains (:mod:`pcref_eval.release_numbers`)."""
    from pcref_eval.release_numbers import config_values, document_number_violations
    policy_values = {policy.threshold, policy.threshold + 1, policy.rounding, policy.km_rounding, policy.summary_min,
                     *RATE_SCALES}
    scan = document_number_violations(Path(run_dir) / "release", add, policy.rounding, policy.threshold,
                                      config_values(run_dir) | {float(v) for v in policy_values})
    notes.extend(scan.notes)
    if scan.files:
        per = ", ".join(f"{k.lstrip('.').upper()} {v:,}" for k, v in sorted(scan.numbers.items()))
        notes.append(f"{sum(scan.numbers.values()):,} numbers read in {scan.files} figure(s) and document(s) "
                     f"({per}) and matched against the released tables")


def analysed_sites(run_dir: Path) -> list[str] | None:
    """Sites whose notebook finished (manifest.json), i.e. the sites the all-sites tables pool; None if unknown."""
    try:
        sites = json.loads((Path(run_dir) / "manifest.json").read_text()).get("sites") or {}
    except (OSError, ValueError):
        return None
    ok = [s for s, steps in sites.items()
          if isinstance(steps, dict) and (steps.get("notebook") or {}).get("status") in ("ok", "warning")]
    return sorted(ok) if sites else None


def check_release_command(run_dir: Path) -> int:
    """``pcref-eval check-release RUN_DIR``: print violations naming file and cell; 0 clean, 2 violations."""
    run_dir = Path(run_dir)
    if not (run_dir / "release").is_dir():
        print(f"check-release: {run_dir} has no release/ folder", file=sys.stderr)
        return 2
    violations, n_files, policy, notes = _check(run_dir, None, None)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    for v in violations:
        print(v)
    verdict = "clean" if not violations else f"{len(violations)} violation(s)"
    print(f"check-release: {n_files} file(s) in {run_dir / 'release'} checked "
          f"({policy.name}: {policy.describe()}): {verdict}", file=sys.stderr)
    return 0 if not violations else 2


def gate_release(run_dir: Path) -> tuple[bool, list[Violation]]:
    """Check ``run_dir/release``; withhold it (move to restricted/release-blocked/) if anything is found.

    Returns ``(passed, violations)``. See the module docstring for the files written either way.
    """
    run_dir = Path(run_dir)
    release = run_dir / "release"
    release.mkdir(parents=True, exist_ok=True)
    violations, n_files, policy, notes = _check(run_dir, None, None)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    summary = {"status": "passed" if not violations else "failed", "checked_at": now, "files_checked": n_files,
               "policy": {"name": policy.name, "threshold": policy.threshold, "rounding": policy.rounding},
               "notes": notes}
    restricted = run_dir / "restricted"
    restricted.mkdir(parents=True, exist_ok=True)
    (restricted / "release-check.json").write_text(
        json.dumps({**summary, "violations": [asdict(v) for v in violations]}, indent=2) + "\n")
    if not violations:
        (release / PASSED_NOTE).write_text(json.dumps(summary, indent=2) + "\n")
        return True, []
    blocked = run_dir / BLOCKED_DIR
    if blocked.exists():
        shutil.rmtree(blocked)
    blocked.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(release), str(blocked))
    (blocked / "VIOLATIONS.txt").write_text(
        f"Release check failed at {now}: {len(violations)} violation(s). This folder was withheld.\n\n"
        + "\n".join(str(v) for v in violations) + "\n")
    release.mkdir()
    (release / WITHHELD_NOTE).write_text(
        f"The outputs of this run were withheld: the automatic release check found {len(violations)} problem(s) "
        f"at {now}.\nDetails are kept inside the secure environment (restricted/release-check.json and "
        f"restricted/release-blocked/VIOLATIONS.txt). Fix the cause and re-run the evaluation.\n")
    return False, violations
