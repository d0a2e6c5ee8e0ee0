"""One consistent, colour-blind-safe figure style for every chart the workbench draws.

Palette: Okabe & Ito (2008) "Color Universal Design" eight-colour set, safe for the
common forms of colour-vision deficiency. Figures are saved as SVG and 300-dpi PNG.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: scheduled runs and papermill kernels have no display
import matplotlib.pyplot as plt  # noqa: E402

OKABE_ITO = [
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
]

# Making Data Count icon colours (NHS England): improvement blue, concern orange, common cause grey.
MDC_IMPROVEMENT = "#00B0F0"
MDC_CONCERN = "#E46C0A"
MDC_COMMON = "#A6A6A6"

PNG_DPI = 300


def group_colours(groups) -> dict:
    """Map each group label to a fixed Okabe-Ito colour, in the order given."""
    return {g: OKABE_ITO[i % len(OKABE_ITO)] for i, g in enumerate(groups)}


def apply_style() -> None:
    """Set matplotlib rc parameters for publication figures (sans-serif, light grid, no top/right spines)."""
    plt.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": PNG_DPI,
            "font.size": 10,
            "font.family": "DejaVu Sans",
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.prop_cycle": matplotlib.cycler(color=OKABE_ITO),
            "svg.fonttype": "none",  # keep SVG text as text (searchable, checkable by the release scan)
            "svg.hashsalt": "pcref-eval",  # deterministic SVG ids: same inputs give byte-identical figures
        }
    )


def save_figure(fig, path_stem: str | Path) -> list[Path]:
    """Save ``fig`` as ``<stem>.svg`` and 300-dpi ``<stem>.png``; return both paths.

    PNG metadata carries no timestamp so identical figures are byte-identical.
    """
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    svg, png = stem.with_suffix(".svg"), stem.with_suffix(".png")
    bbox = tight_bbox(fig)
    fig.savefig(svg, bbox_inches=bbox, metadata={"Date": None})
    fig.savefig(png, dpi=PNG_DPI, bbox_inches=bbox, metadata={"Software": None})
    return [svg, png]


def tight_bbox(fig, pad_inches: float = 0.1):
    """The figure's tight bounding box (inches), computed once and reused for every format.

    Equivalent to ``bbox_inches="tight"``, which redraws the whole figure on each save to find it.
    """
    fig.canvas.draw()
    return fig.get_tightbbox(fig.canvas.get_renderer()).padded(pad_inches)
