"""Where the golden reference cases live: ``tests/golden``, a copy of the workspace's ``shared/reference``.

The copy makes ``make test`` in a fresh clone self-contained. ``tests/test_golden_copy.py`` checks it is
byte-identical to ``shared/reference`` whenever that folder sits beside the repository (it does in CI),
so the two cannot drift apart. Provenance and tolerances: ``tests/golden/README.md``.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REF = REPO / "tests" / "golden"
SHARED_REF = REPO.parent / "shared" / "reference"


def reference_file(path: str) -> Path:
    """Path of ``tests/golden/<path>``; FileNotFoundError naming it if absent."""
    p = REF / path
    if not p.exists():
        raise FileNotFoundError(f"reference file {p} is missing from the repository's golden copy ({REF})")
    return p
