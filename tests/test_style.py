"""Figure files: one 300-dpi raster cropped like ``bbox_inches="tight"``, a downsampled preview, an SVG."""

import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from pcref_eval.style import PNG_DPI, apply_style, render_figure, save_figure


def _tight_png(fig) -> np.ndarray:
    """The reference: matplotlib's own savefig with a tight bounding box (a separate draw)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PNG_DPI, bbox_inches="tight", pad_inches=0.1)
    return np.asarray(Image.open(buf).convert("RGB"), dtype=float)


def _chart(label_outside: bool = False):
    apply_style()
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1, 2, 3], [1, 3, 2, 4], marker="o", label="series")
    ax.set_xlabel("Months since go-live")
    ax.set_title("A chart", loc="left")
    if label_outside:  # text reaching beyond the right edge of the figure: a crop would cut it off
        ax.text(1.05, 0.5, "a long label far outside the axes", transform=ax.transAxes)
    return fig


@pytest.mark.parametrize("label_outside", [False, True])
def test_png_matches_a_tight_savefig(tmp_path, label_outside):
    fig = _chart(label_outside)
    expected = _tight_png(fig)
    svg, png = save_figure(fig, tmp_path / "chart")
    got = np.asarray(Image.open(png).convert("RGB"), dtype=float)
    assert Image.open(png).info["dpi"] == pytest.approx((PNG_DPI, PNG_DPI), abs=0.01)
    assert got.shape == expected.shape  # same canvas: nothing cut off, no extra margin
    # same drawing, at most a sub-pixel shift: anti-aliased edges differ, the picture does not
    assert np.abs(got - expected).mean() < 2.0
    assert (np.abs(got - expected).max(axis=2) > 64).mean() < 0.03
    assert svg.read_text().lstrip().startswith("<?xml")
    plt.close(fig)


def test_preview_is_the_raster_downsampled_and_files_are_deterministic(tmp_path):
    first = render_figure(_chart(), tmp_path / "a", preview_dpi=100)
    second = render_figure(_chart(), tmp_path / "b", preview_dpi=100)
    full = Image.open(first.paths[1])
    preview = Image.open(io.BytesIO(first.preview_png))
    assert preview.size == (round(full.width / 3), round(full.height / 3))
    assert first.paths[1].read_bytes() == second.paths[1].read_bytes()
    assert first.paths[0].read_bytes() == second.paths[0].read_bytes()
    assert first.preview_png == second.preview_png
    # the preview is the mean of 3x3 blocks of the full raster (box filter)
    arr = np.asarray(full.convert("RGB"), dtype=float)
    h, w = (arr.shape[0] // 3) * 3, (arr.shape[1] // 3) * 3
    blocks = arr[:h, :w].reshape(h // 3, 3, w // 3, 3, 3).mean(axis=(1, 3))
    prev = np.asarray(preview.convert("RGB"), dtype=float)[: h // 3, : w // 3]
    assert np.abs(prev - blocks).max() <= 1.0


def test_no_preview_unless_asked(tmp_path):
    assert render_figure(_chart(), tmp_path / "c").preview_png is None
