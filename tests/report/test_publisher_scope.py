"""The publisher's cached reads of the release (``load_release(cache=True)``) follow a rewritten table."""

from __future__ import annotations

from pcref_eval.release_attack import load_release


def test_cached_reads_follow_a_rewritten_table(run_copy):
    release = run_copy / "release"
    first = {t.file: t.raw for t in load_release(release, cache=True)}
    name = next(f for f, raw in first.items() if len(raw) > 1 and "people" in raw)
    path = release / name
    path.write_text(path.read_text() + path.read_text().splitlines()[-1] + "\n")  # one more row: size changes
    again = {t.file: t.raw for t in load_release(release, cache=True)}
    assert len(again[name]) == len(first[name]) + 1
