"""Where the golden reference cases live: ``shared/reference`` beside the repository checkout.

Tests that need them fail (never skip) with a clear message when the folder is missing.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REF = REPO.parent / "shared" / "reference"


def reference_file(path: str) -> Path:
    """Path of ``shared/reference/<path>``; FileNotFoundError naming the expected location if absent."""
    p = REF / path
    if not p.exists():
        raise FileNotFoundError(
            f"reference file {p} is missing: the shared reference folder must sit beside the repo "
            f"(expected {REF}); these golden tests cannot run without it"
        )
    return p
