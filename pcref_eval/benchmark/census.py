"""Census 2021 denominators for NHS England's MHA rates by ethnic group (ONS, OGL v3; shipped).

NHS England uses two different groupings, and reproducing the published rates needs both:

- **England** ("All submissions"): the 19 Census categories mapped to the five groups as in NHS
  England's standardisation code (``Ethnicity - Detentions Standardisation.sql``): White = British,
  Irish, Gypsy or Irish Traveller, Other White (**Roma excluded from every group**); Asian =
  Bangladeshi, Indian, Pakistani, Other Asian; Black = African, Caribbean, Other Black; Mixed = the
  four Mixed categories; Other = **Chinese**, Arab, any other. Built from the local-authority file
  (:func:`england_population`). With it the published national crude rates are reproduced exactly.
- **ICB**: the Census broad groups per 2024 ICB (built from LSOA data; :func:`icb_population`),
  in which Chinese people are counted in Asian and Roma in White. NHS England's ICB crude rates
  reproduce with these denominators (within the rounding of published counts) and not with the
  national mapping, so this is what NHS England used at ICB level. Roma are 0.2% of England's
  White population; including them moves no ICB White rate by more than the published rounding.
"""

from __future__ import annotations

from functools import lru_cache

import pandas as pd

from pcref_eval.benchmark.published import BROAD_GROUPS, public_data_dir

ICB_FILE = "census2021_ethnic_group_broad_icb24_england.csv"
LTLA_FILE = "census2021_ts021_ethnic_group_ltla21_england_wales.csv"
_ICB_COLUMNS = {"asian": "Asian or Asian British", "black": "Black or Black British", "mixed": "Mixed",
                "other": "Other Ethnic Groups", "white": "White"}
#: NHS England's mapping of the 19 Census 2021 categories (TS021 labels) to its five groups; Roma unmapped.
NHSE_CENSUS_MAP = {
    "Asian, Asian British or Asian Welsh: Bangladeshi": "Asian or Asian British",
    "Asian, Asian British or Asian Welsh: Indian": "Asian or Asian British",
    "Asian, Asian British or Asian Welsh: Pakistani": "Asian or Asian British",
    "Asian, Asian British or Asian Welsh: Other Asian": "Asian or Asian British",
    "Asian, Asian British or Asian Welsh: Chinese": "Other Ethnic Groups",
    "Black, Black British, Black Welsh, Caribbean or African: African": "Black or Black British",
    "Black, Black British, Black Welsh, Caribbean or African: Caribbean": "Black or Black British",
    "Black, Black British, Black Welsh, Caribbean or African: Other Black": "Black or Black British",
    "Mixed or Multiple ethnic groups: White and Asian": "Mixed",
    "Mixed or Multiple ethnic groups: White and Black African": "Mixed",
    "Mixed or Multiple ethnic groups: White and Black Caribbean": "Mixed",
    "Mixed or Multiple ethnic groups: Other Mixed or Multiple ethnic groups": "Mixed",
    "White: English, Welsh, Scottish, Northern Irish or British": "White",
    "White: Irish": "White",
    "White: Gypsy or Irish Traveller": "White",
    "White: Other White": "White",
    "Other ethnic group: Arab": "Other Ethnic Groups",
    "Other ethnic group: Any other ethnic group": "Other Ethnic Groups",
}
ROMA = "White: Roma"


@lru_cache(maxsize=1)
def icb_population() -> pd.DataFrame:
    """Census 2021 population per 2024 ICB and broad group (long): org_code, icb_name, group, population."""
    raw = pd.read_csv(public_data_dir() / ICB_FILE, dtype={"icb24_code_nhs": str})
    long = raw.melt(id_vars=["icb24_code", "icb24_code_nhs", "icb24_name"], value_vars=list(_ICB_COLUMNS),
                    var_name="column", value_name="population")
    long["group"] = long["column"].map(_ICB_COLUMNS)
    out = long.rename(columns={"icb24_code_nhs": "org_code", "icb24_name": "icb_name", "icb24_code": "ons_code"})
    return out[["org_code", "ons_code", "icb_name", "group", "population"]].sort_values(
        ["org_code", "group"]).reset_index(drop=True)


@lru_cache(maxsize=1)
def england_population() -> pd.Series:
    """England's Census 2021 population by NHS England group (Roma excluded), indexed by group."""
    raw = pd.read_csv(public_data_dir() / LTLA_FILE)
    eng = raw[raw["ltla21_code"].str.startswith("E")]
    unknown = [c for c in NHSE_CENSUS_MAP if c not in eng.columns]
    if unknown:
        raise ValueError(f"{LTLA_FILE}: expected Census TS021 column(s) {unknown}")
    sums = eng[list(NHSE_CENSUS_MAP)].sum()
    return sums.groupby(pd.Series(NHSE_CENSUS_MAP)).sum().reindex(BROAD_GROUPS).astype(int).rename("population")


def icb_names() -> dict[str, str]:
    """ICB ODS code -> ICB name (2024 ICBs)."""
    p = icb_population()
    return dict(zip(p["org_code"], p["icb_name"]))
