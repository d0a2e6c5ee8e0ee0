"""The repository's golden copy (tests/golden) is byte-identical to the workspace's shared/reference."""

from __future__ import annotations

import os

import pytest

from tests.reference import REF, SHARED_REF


def _files(root):
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}


def test_golden_copy_matches_shared_reference():
    if not SHARED_REF.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI checks the golden copy against {SHARED_REF}, which is missing")
        pytest.skip(f"no shared/reference beside the repository ({SHARED_REF}): the copy in tests/golden is used as is")
    ours, theirs = _files(REF), _files(SHARED_REF)
    assert sorted(ours) == sorted(theirs)
    changed = [name for name in ours if ours[name].read_bytes() != theirs[name].read_bytes()]
    assert not changed, f"tests/golden differs from shared/reference: {changed}"
