"""The default core measures (declared as data in ``default_measures.yml``) and the measure registry.

:func:`default_measures` reads the packaged YAML; :func:`measure_registry` combines the defaults
with the measures a user declared in the evaluation config (a user measure whose ``id`` equals a
default replaces it; new ids are appended in config order).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml
from pydantic import TypeAdapter, ValidationError

from pcref_eval.measures.definitions import MeasureDefinition

__all__ = ["DEFAULTS_FILE", "default_measures", "measure_registry", "load_measures", "MeasureError"]

DEFAULTS_FILE = "default_measures.yml"


class MeasureError(ValueError):
    """A measure declaration that cannot be used; the message names the entry and key."""


def load_measures(raw: list, source: str = "measures") -> list[MeasureDefinition]:
    """Validate a list of measure declarations (dicts, e.g. from YAML); errors name ``source[i].key``."""
    if not isinstance(raw, list):
        raise MeasureError(f"{source}: expected a list of measures, got {type(raw).__name__}")
    try:
        measures = TypeAdapter(list[MeasureDefinition]).validate_python(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
            msg = "unknown key (not allowed)" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"  - {source}{key}: {msg}")
        raise MeasureError("invalid measure declaration(s):\n" + "\n".join(lines)) from None
    ids = [m.id for m in measures]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise MeasureError(f"{source}: duplicate measure id(s) {dupes}")
    return measures


@lru_cache(maxsize=1)
def _defaults() -> tuple[MeasureDefinition, ...]:
    text = resources.files("pcref_eval.measures").joinpath(DEFAULTS_FILE).read_text(encoding="utf-8")
    return tuple(load_measures(yaml.safe_load(text), source=DEFAULTS_FILE))


def default_measures() -> list[MeasureDefinition]:
    """The default core measures, in board order."""
    return list(_defaults())


def measure_registry(user_measures: list[MeasureDefinition] | None = None, include_defaults: bool = True
                     ) -> list[MeasureDefinition]:
    """Defaults plus user-declared measures (a user measure replaces a default with the same id).

    ``user_measures`` is typically ``config.measures``; plain dicts are validated too.
    """
    user = list(user_measures or [])
    if any(isinstance(m, dict) for m in user):
        user = load_measures([m.model_dump() if isinstance(m, MeasureDefinition) else m for m in user])
    ids = [m.id for m in user]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise MeasureError(f"measures: duplicate measure id(s) {dupes}")
    by_id = {m.id: m for m in user}
    out = [by_id.pop(m.id, m) for m in default_measures()] if include_defaults else []
    out += [m for m in user if m.id in by_id]
    return out


#: Measures whose interrupted-time-series chart the site report draws (the forest plot and table cover all):
#: the headline PCREF questions: detained more, restrained more, referred through police/emergency routes.
HEADLINE_ITS_MEASURES = ["detentions", "ri_incidents", "adverse_pathway"]
