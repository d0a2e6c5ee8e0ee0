"""great-expectations, imported lazily and run without a project folder (ephemeral context).

Only :mod:`pcref_eval.contracts.suite` (to parse expectations strictly) and the fallback path of
the engine (expectation types the vectorised engine does not implement) come here. The context
is ephemeral with in-memory stores, analytics off and progress bars off, so great-expectations
writes no file anywhere (no ``gx/`` folder, nothing in the home folder).
"""

from __future__ import annotations

import functools
import os
import time

import pandas as pd

#: Seconds the first ``import great_expectations`` took in this process (None: not imported yet).
IMPORT_SECONDS: float | None = None


@functools.lru_cache(maxsize=1)
def gx_module():
    """Import great_expectations once, with analytics disabled; return the module."""
    global IMPORT_SECONDS
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    start = time.perf_counter()
    import great_expectations as gx

    IMPORT_SECONDS = time.perf_counter() - start
    return gx


@functools.lru_cache(maxsize=1)
def ephemeral_context():
    """An in-memory great-expectations Data Context: no project folder, no analytics, no progress bars."""
    gx = gx_module()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(), analytics_enabled=False,
                               progress_bars=ProgressBarsConfig(globally=False))
    return gx.get_context(mode="ephemeral", project_config=config)


@functools.lru_cache(maxsize=1)
def _batch_definition():
    context = ephemeral_context()
    source = context.data_sources.add_pandas("pcref_extract")
    asset = source.add_dataframe_asset("table")
    return asset.add_batch_definition_whole_dataframe("whole_table")


def gx_batch(df: pd.DataFrame):
    """A great-expectations Batch over an in-memory DataFrame."""
    return _batch_definition().get_batch(batch_parameters={"dataframe": df})


def run_gx(expectation, df: pd.DataFrame, parameters: dict | None = None, batch=None) -> dict:
    """Validate one GX expectation on ``df``; return success, counts and up to 20 unexpected row positions."""
    batch = batch if batch is not None else gx_batch(df)
    res = batch.validate(expectation, result_format={"result_format": "SUMMARY", "partial_unexpected_count": 20},
                         expectation_parameters=parameters or {})
    for info in _exception_infos(res.exception_info):
        if info.get("raised_exception"):
            raise RuntimeError(f"great-expectations could not evaluate {expectation.expectation_type}: "
                               f"{info.get('exception_message')}")
    r = res.result or {}
    element = r.get("element_count")
    missing = r.get("missing_count")
    unexpected = r.get("unexpected_count")
    return {"success": bool(res.success), "element_count": element, "missing_count": missing,
            "unexpected_count": unexpected, "unexpected_percent": r.get("unexpected_percent"),
            "observed_value": r.get("observed_value"),
            "unexpected_index": list(r.get("partial_unexpected_index_list") or [])}


def _exception_infos(info) -> list[dict]:
    """GX reports exceptions either flat or keyed by metric configuration."""
    if not isinstance(info, dict):
        return []
    if "raised_exception" in info:
        return [info]
    return [v for v in info.values() if isinstance(v, dict)]
