"""Making Data Count variation and assurance icons as inline SVG (drawn here: no files, no network).

NHS England's Making Data Count icons are circles: the **variation** icon says whether the latest
points show special cause variation (orange = concern, blue = improvement, purple = neither
direction is better, grey = only common cause) and in which direction (H = higher, L = lower); the
**assurance** icon says whether the process limits lie on the right side of the target (blue P =
will consistently pass, orange F = will consistently fail, grey ? = hit and miss). We draw the same
colours, letters and a small run of points so a board member who knows the NHS icons recognises them,
and every icon carries a ``<title>`` (tooltip, screen readers) and a visible plain-words label.
"""

from __future__ import annotations

from html import escape

from pcref_eval.style import MDC_COMMON, MDC_CONCERN, MDC_IMPROVEMENT

__all__ = ["VARIATION", "ASSURANCE", "normalise_icon", "variation_svg", "assurance_svg", "icon_label"]

MDC_NEUTRAL = "#7030A0"

#: variation key -> (colour, letter, plain-words label, run of points shape)
VARIATION: dict[str, tuple[str, str, str, str]] = {
    "common_cause": (MDC_COMMON, "", "No significant change", "flat"),
    "special_cause_improvement_high": (MDC_IMPROVEMENT, "H", "Improving (higher)", "up"),
    "special_cause_improvement_low": (MDC_IMPROVEMENT, "L", "Improving (lower)", "down"),
    "special_cause_concern_high": (MDC_CONCERN, "H", "Getting worse (higher)", "up"),
    "special_cause_concern_low": (MDC_CONCERN, "L", "Getting worse (lower)", "down"),
    "special_cause_neutral_high": (MDC_NEUTRAL, "H", "Unusually high", "up"),
    "special_cause_neutral_low": (MDC_NEUTRAL, "L", "Unusually low", "down"),
}
#: assurance key -> (colour, letter, plain-words label)
ASSURANCE: dict[str, tuple[str, str, str]] = {
    "consistent_pass": (MDC_IMPROVEMENT, "P", "Will reliably meet the target"),
    "consistent_fail": (MDC_CONCERN, "F", "Will reliably miss the target"),
    "inconsistent": (MDC_COMMON, "?", "May or may not meet the target"),
}
_POINTS = {"flat": [0, 1, -1, 0.5, -0.5, 0], "up": [-1.2, -0.8, -0.9, 0.2, 0.9, 1.3],
           "down": [1.2, 0.8, 0.9, -0.2, -0.9, -1.3]}


def normalise_icon(value) -> str:
    """'special cause improvement low' or 'special_cause_improvement_low' -> the key; '' when absent."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return "_".join(str(value).strip().lower().replace("-", " ").split())


def _circle(colour: str, letter: str, title: str, size: int, points: str | None) -> str:
    r = 20
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' class='mdc-icon' width='{size}' height='{size}' "
             f"viewBox='0 0 48 48' role='img' aria-label='{escape(title, quote=True)}'>",
             f"<title>{escape(title)}</title>",
             f"<circle cx='24' cy='24' r='{r}' fill='white' stroke='{colour}' stroke-width='4'/>"]
    if points is not None:
        ys = _POINTS[points]
        xy = [(11 + 5.2 * i, 30 - 4 * y) for i, y in enumerate(ys)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
        parts.append(f"<polyline points='{path}' fill='none' stroke='{MDC_COMMON}' stroke-width='1.5'/>")
        for i, (x, y) in enumerate(xy):
            c = colour if (points != "flat" and i >= 3) else MDC_COMMON
            parts.append(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='2.2' fill='{c}'/>")
    if letter:
        y = 19 if points is not None else 31
        fs = 13 if points is not None else 22
        parts.append(f"<text x='24' y='{y}' text-anchor='middle' font-family='Arial, Helvetica, sans-serif' "
                     f"font-size='{fs}' font-weight='bold' fill='{colour}'>{escape(letter)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def variation_svg(key, size: int = 30) -> str:
    """The variation icon of ``key`` (see :data:`VARIATION`); '' when there is no SPC chart."""
    k = normalise_icon(key)
    if k not in VARIATION:
        return ""
    colour, letter, label, shape = VARIATION[k]
    return _circle(colour, letter, f"Variation: {label}", size, shape)


def assurance_svg(key, size: int = 30) -> str:
    """The assurance icon of ``key`` (see :data:`ASSURANCE`); '' when there is no target."""
    k = normalise_icon(key)
    if k not in ASSURANCE:
        return ""
    colour, letter, label = ASSURANCE[k]
    return _circle(colour, letter, f"Assurance: {label}", size, None)


def icon_label(key) -> str:
    """The plain-words label of a variation or assurance key ('' when unknown)."""
    k = normalise_icon(key)
    if k in VARIATION:
        return VARIATION[k][2]
    if k in ASSURANCE:
        return ASSURANCE[k][2]
    return ""
