"""What of a notebook is its program: cell types, sources and tags, not outputs or other metadata.

Opening a notebook in JupyterLab and running it saves outputs, execution counts, widths and kernel
metadata into the file. None of that changes what a scheduled run computes, so neither the run
cache (:func:`source_digest`) nor the ``-dirty`` flag of the manifest's git commit
(:func:`changed_files`) looks at it. Markdown cells count: they become the report's text.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path


def notebook_program(text: str | bytes) -> list[tuple[str, str, list[str]]]:
    """Each cell's (type, source, tags), in order; raises ValueError when ``text`` is not a notebook."""
    nb = json.loads(text)
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise ValueError("not a Jupyter notebook (no cell list)")
    out = []
    for cell in nb["cells"]:
        source = cell.get("source", "")
        tags = cell.get("metadata", {}).get("tags", [])
        out.append((cell.get("cell_type", ""), "".join(source) if isinstance(source, list) else str(source),
                    sorted(str(t) for t in tags)))
    return out


def source_digest(path: Path) -> str | None:
    """SHA-256 of a notebook's program (see :func:`notebook_program`); None when unreadable or not a notebook."""
    try:
        program = notebook_program(Path(path).read_bytes())
    except (OSError, ValueError):
        return None
    return hashlib.sha256(json.dumps(program, sort_keys=True).encode()).hexdigest()


def _program_at_head(repo: Path, rel: str):
    shown = subprocess.run(["git", "show", f"HEAD:{rel}"], cwd=repo, capture_output=True, timeout=10)
    if shown.returncode != 0:
        return None
    try:
        return notebook_program(shown.stdout)
    except ValueError:
        return None


def changed_files(repo: Path) -> list[str]:
    """Tracked files modified in the git checkout ``repo``, leaving out notebooks whose program equals HEAD's.

    Raises OSError / SubprocessError like ``git`` itself."""
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "-z"], cwd=repo,
                            capture_output=True, text=True, timeout=10).stdout
    changed = []
    entries = iter(status.split("\0"))
    for entry in entries:
        if not entry:
            continue
        code, rel = entry[:2], entry[3:]
        if "R" in code or "C" in code:  # with -z the old path follows as its own entry
            next(entries, None)
        if rel.endswith(".ipynb") and code.strip() == "M" and (repo / rel).is_file():
            try:
                same = notebook_program((repo / rel).read_bytes()) == _program_at_head(repo, rel)
            except (OSError, ValueError):
                same = False
            if same:
                continue  # outputs or metadata only (e.g. saved by JupyterLab)
        changed.append(rel)
    return changed
