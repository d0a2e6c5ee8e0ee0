"""Turning executed notebooks into report sections: strip code, keep only released outputs, regroup.

What survives from an executed notebook:

- markdown cells (headings shifted to fit the report's outline);
- ``display_data`` outputs that went through :class:`~pcref_eval.publish.Publisher` (tables,
  figures with their captions, notes: recognised by their ``pcref`` metadata), and, unless
  ``strict``, other Markdown/HTML/image displays.

Never kept: code (inputs), ``execute_result`` outputs (a bare ``df`` at the end of a cell would show
unrounded data), stdout/stderr streams, errors, JavaScript and widgets.

Sections are split at the notebook's section headings and sorted into report chapters by their
titles: "Summary"/"Key findings" -> summary; "Data quality"/"Completeness" -> data quality;
"Limitations" -> limitations; everything else -> results.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from html import escape

import nbformat

HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
CHAPTER_KEYWORDS = {
    "summary": re.compile(r"summary|key findings|at a glance|headline", re.IGNORECASE),
    "dq": re.compile(r"data quality|completeness|data contract|dq\b", re.IGNORECASE),
    "limitations": re.compile(r"limitation|caveat", re.IGNORECASE),
}
KEEP_MIMETYPES = ("text/html", "text/markdown", "image/png", "image/svg+xml", "image/jpeg")


@dataclass
class Section:
    """A run of cells under one section heading of a notebook."""

    title: str | None
    level: int | None
    chapter: str
    cells: list = field(default_factory=list)


@dataclass
class CleanStats:
    """What cleaning dropped (reported in the build log, never in the report)."""

    code_inputs: int = 0
    dropped_outputs: int = 0
    untagged_kept: int = 0


def first_heading(source: str) -> tuple[int, str] | None:
    """(level, text) of a markdown cell's first line if it is an ATX heading."""
    for line in source.splitlines():
        if not line.strip():
            continue
        m = HEADING.match(line)
        return (len(m.group(1)), m.group(2)) if m else None
    return None


def heading_lines(markdown: str):
    """Yield (line, heading match or None) for each line, ignoring headings inside fenced code."""
    fenced = False
    for line in markdown.splitlines(keepends=True):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        yield line, (HEADING.match(line.rstrip("\n")) if not fenced else None)


def shift_headings(markdown: str, offset: int) -> str:
    """Shift every ATX heading by ``offset`` levels (capped to 1..6), outside fenced code."""
    if offset == 0:
        return markdown
    out = []
    for line, m in heading_lines(markdown):
        if m:
            level = min(6, max(1, len(m.group(1)) + offset))
            line = "#" * level + " " + m.group(2) + ("\n" if line.endswith("\n") else "")
        out.append(line)
    return "".join(out)


def drop_first_heading(source: str) -> str:
    lines = source.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.strip():
            return "".join(lines[:i] + lines[i + 1:]).strip("\n")
    return source


def classify(title: str | None) -> str:
    if not title:
        return "results"
    for chapter, pattern in CHAPTER_KEYWORDS.items():
        if pattern.search(title):
            return chapter
    return "results"


def html_output(html: str, kind: str = "report") -> nbformat.NotebookNode:
    return nbformat.v4.new_output("display_data", data={"text/html": html}, metadata={"pcref": {"kind": kind}})


def html_cell(html: str, kind: str = "report") -> nbformat.NotebookNode:
    """A code cell with no source whose only output is ``html`` (the template shows outputs only)."""
    cell = nbformat.v4.new_code_cell(source="")
    cell.outputs = [html_output(html, kind)]
    return cell


def figure_html(png_b64: str, caption: str, name: str, width=None) -> str:
    b64 = "".join(str(png_b64).split())
    w = f" width='{int(width)}'" if width else ""
    return (f"<figure class='pcref-figure' data-pcref-figure='{escape(name, quote=True)}'>"
            f"<img src='data:image/png;base64,{b64}' alt='{escape(caption, quote=True)}'{w}>"
            f"<figcaption><strong>Figure:</strong> {escape(caption)}</figcaption></figure>")


def clean_outputs(outputs: list, strict: bool, stats: CleanStats, heading_offset: int) -> list:
    """The outputs of one code cell that may appear in the report (figures merged with their captions)."""
    kept = []
    skip_caption_for = None
    for out in outputs:
        if out.get("output_type") != "display_data":
            stats.dropped_outputs += 1
            continue
        meta = (out.get("metadata") or {}).get("pcref") or {}
        kind = meta.get("kind")
        data = out.get("data") or {}
        if kind == "figure-caption" and meta.get("name") == skip_caption_for:
            continue
        if kind == "figure" and "image/png" in data:
            width = ((out.get("metadata") or {}).get("image/png") or {}).get("width")
            kept.append(html_output(figure_html(data["image/png"], meta.get("caption", ""), meta.get("name", ""),
                                                width), "figure"))
            skip_caption_for = meta.get("name")
            continue
        if kind is None:
            if strict and "text/markdown" not in data:
                stats.dropped_outputs += 1
                continue
            stats.untagged_kept += 1
        new = {k: v for k, v in data.items() if k in KEEP_MIMETYPES}
        if not new:
            stats.dropped_outputs += 1
            continue
        if "text/markdown" in new:
            md = new["text/markdown"]
            md = "".join(md) if isinstance(md, list) else md
            new = {"text/markdown": shift_headings(md, heading_offset)}
        if kind == "table" and "text/html" in new:
            h = new["text/html"]
            new = {"text/html": f"<div class='table-wrap'>{''.join(h) if isinstance(h, list) else h}</div>"}
        kept.append(nbformat.v4.new_output("display_data", data=new, metadata={"pcref": meta} if meta else {}))
    return kept


def notebook_sections(nb: nbformat.NotebookNode, strict: bool = True,
                      stats: CleanStats | None = None) -> tuple[str | None, int | None, list[Section]]:
    """Split a notebook into sections: (notebook title, section heading level, sections).

    A single top-level heading at the start is the notebook's title; sections start at the next
    heading level down. Cells before the first section form an untitled introduction section.
    """
    stats = stats or CleanStats()
    headings = [(i, h) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
                for h in [first_heading(c.source)] if h]
    title, section_level = None, None
    if headings:
        levels = sorted({h[0] for _, h in headings})
        top = levels[0]
        tops = [i for i, h in headings if h[0] == top]
        first_md = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown")
        if len(tops) == 1 and tops[0] == first_md and len(levels) > 1:
            title = headings[0][1][1] if headings[0][0] == tops[0] else None
            section_level = levels[1]
        elif len(tops) == 1 and tops[0] == first_md:
            title = headings[0][1][1]
        else:
            section_level = top
    sections: list[Section] = [Section(None, section_level, "results")]
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            h = first_heading(cell.source)
            source = cell.source
            if title is not None and h and i == headings[0][0] and h[1] == title:
                source = drop_first_heading(source)
                if not source.strip():
                    continue
                h = None
            if h and section_level is not None and h[0] <= section_level:
                sections.append(Section(h[1], section_level, classify(h[1])))
            new = nbformat.v4.new_markdown_cell(source)
            if cell.get("attachments"):
                new["attachments"] = copy.deepcopy(cell["attachments"])
            sections[-1].cells.append(new)
        elif cell.cell_type == "code":
            if cell.source.strip():
                stats.code_inputs += 1
            outputs = clean_outputs(cell.get("outputs", []), strict, stats, 0)
            if outputs:
                new = nbformat.v4.new_code_cell(source="")
                new.outputs = outputs
                sections[-1].cells.append(new)
    return title, section_level, [s for s in sections if s.cells]


def drop_headings_above(markdown: str, level: int | None) -> str:
    """Remove headings of a higher rank than ``level`` (e.g. a notebook's '# Site name' title in a note):
    the report supplies its own titles for chapters and sites."""
    if not level:
        return markdown
    out = []
    for line, m in heading_lines(markdown):
        if m and len(m.group(1)) < level:
            continue
        out.append(line)
    return "".join(out).strip("\n")


def place_section(section: Section, target_level: int, drop_heading: bool = False) -> list:
    """The section's cells with headings shifted so the section heading becomes ``target_level``."""
    offset = target_level - section.level if section.level else 0
    cells = []
    for k, cell in enumerate(section.cells):
        cell = copy.deepcopy(cell)
        if cell.cell_type == "markdown":
            if k == 0 and drop_heading and section.title:
                cell.source = drop_first_heading(cell.source)
            cell.source = shift_headings(drop_headings_above(cell.source, section.level), offset)
            if not cell.source.strip():
                continue
        else:
            for out in cell.outputs:
                md = out.get("data", {}).get("text/markdown")
                if md is not None:
                    md = drop_headings_above("".join(md) if isinstance(md, list) else md, section.level)
                    out["data"]["text/markdown"] = shift_headings(md, offset)
        cells.append(cell)
    return cells


def intro_offset(target_level: int, section_level: int | None) -> int:
    return target_level - section_level if section_level else 0
