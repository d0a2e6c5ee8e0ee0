"""Board packs per site and the one-page cross-site summary, from released tables only.

``build_board_packs(release_dir, sites, reference, run_id)`` writes ``release/board/<site>.html|pdf`` and
``release/board/cross-site-summary.html|pdf``; see :mod:`pcref_eval.boardpack.build`.
"""

from pcref_eval.boardpack.build import BoardPackResult, build_board_packs

__all__ = ["BoardPackResult", "build_board_packs"]
