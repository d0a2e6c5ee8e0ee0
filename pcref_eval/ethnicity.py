"""NHS ETHNIC CATEGORY (2001 census based) code list and the grouping schemes PCREF reports by.

Schemes:

- ``detailed``: the 16 categories A-S one by one.
- ``broad``: White (A-C), Mixed (D-G), Asian (H-L), Black (M, N, P), Other (R, S).
- ``pcref``: PCREF's first focus: Black African (N), Black Caribbean (M), Black Mixed (D, E),
  Black Other (P), White British (A, the default reference), and "Other groups" for the rest.

In every scheme, not stated (Z), not known (99) and missing values are kept as their own
rows ("Not stated", "Not known", "Missing"), never silently dropped: ethnicity recording
completeness is itself a PCREF data-domain measure.
"""

from __future__ import annotations

import pandas as pd

ETHNIC_CATEGORIES: dict[str, str] = {
    "A": "White British",
    "B": "White Irish",
    "C": "Any other White background",
    "D": "White and Black Caribbean",
    "E": "White and Black African",
    "F": "White and Asian",
    "G": "Any other Mixed background",
    "H": "Indian",
    "J": "Pakistani",
    "K": "Bangladeshi",
    "L": "Any other Asian background",
    "M": "Caribbean",
    "N": "African",
    "P": "Any other Black background",
    "R": "Chinese",
    "S": "Any other ethnic group",
}
NOT_STATED_CODES = {"Z": "Not stated", "99": "Not known"}
VALID_CODES = list(ETHNIC_CATEGORIES) + list(NOT_STATED_CODES)
MISSING_LABEL = "Missing"

_BROAD = {
    **dict.fromkeys("ABC", "White"),
    **dict.fromkeys("DEFG", "Mixed"),
    **dict.fromkeys("HJKL", "Asian"),
    **dict.fromkeys("MNP", "Black"),
    **dict.fromkeys("RS", "Other"),
}
_PCREF = {
    "A": "White British",
    "M": "Black Caribbean",
    "N": "Black African",
    "D": "Black Mixed",
    "E": "Black Mixed",
    "P": "Black Other",
    **dict.fromkeys("BCFGHJKLRS", "Other groups"),
}
_DETAILED = dict(ETHNIC_CATEGORIES)

SCHEMES: dict[str, dict[str, str]] = {"detailed": _DETAILED, "broad": _BROAD, "pcref": _PCREF}

#: Reference group per scheme (the comparator in every ratio).
DEFAULT_REFERENCE = {"detailed": "White British", "broad": "White", "pcref": "White British"}

#: PCREF's first-focus groups (Black African, Black Caribbean, Black Mixed, Black Other).
PCREF_FOCUS_GROUPS = ["Black African", "Black Caribbean", "Black Mixed", "Black Other"]

UNRECORDED_LABELS = ["Not stated", "Not known", MISSING_LABEL]


def group_order(scheme: str) -> list[str]:
    """Display order of a scheme's groups: recorded groups first, then Not stated, Not known, Missing."""
    mapping = _scheme(scheme)
    seen: list[str] = []
    for label in mapping.values():
        if label not in seen:
            seen.append(label)
    if scheme == "pcref":
        seen = ["White British", *PCREF_FOCUS_GROUPS, "Other groups"]
    return seen + UNRECORDED_LABELS


def ethnic_group(codes: pd.Series, scheme: str = "broad") -> pd.Series:
    """Map ethnic category codes to the scheme's group labels as an ordered categorical.

    Z maps to "Not stated", 99 to "Not known", and empty/NA to "Missing". An unknown code
    (not in the NHS list) raises ``ValueError`` naming the codes; validate extracts first.
    """
    mapping = {**_scheme(scheme), **NOT_STATED_CODES}
    codes = codes.astype("string").str.strip()
    missing = codes.isna() | (codes == "")
    labels = codes.map(mapping)
    unknown = ~missing & labels.isna()
    if unknown.any():
        bad = sorted(codes[unknown].unique().tolist())
        raise ValueError(f"unknown ethnic_category code(s) {bad}; valid codes are {VALID_CODES}")
    labels = labels.where(~missing, MISSING_LABEL)
    return pd.Categorical(labels, categories=group_order(scheme), ordered=True)


def is_recorded(codes: pd.Series) -> pd.Series:
    """True where an ethnic category is stated (A-S); False for Z, 99 and missing."""
    return codes.astype("string").str.strip().isin(list(ETHNIC_CATEGORIES)).fillna(False).astype(bool)


def _scheme(scheme: str) -> dict[str, str]:
    try:
        return SCHEMES[scheme]
    except KeyError:
        raise ValueError(f"unknown ethnicity scheme {scheme!r}; choose one of {sorted(SCHEMES)}") from None
