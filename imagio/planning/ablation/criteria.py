"""Thresholds for judging an ablation (margins, heat sink, nearby structures), with sources,
from ``imagio/data/ablation_criteria.json``. Distances in mm."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def load_criteria() -> dict:
    return json.loads(resources.files("imagio.data").joinpath("ablation_criteria.json").read_text())


def value(key: str):
    """The ``value`` of a criterion (e.g. 'minimal_ablative_margin_mm')."""
    return load_criteria()[key]["value"]


def lethal_isotherm_c() -> float:
    """The cryoablation lethal isotherm (C): tissue dies at or below it (``cryo_lethal_isotherm_c``,
    Littrup 2009); the 0 C ice-ball edge seen on CT kills none."""
    return float(value("cryo_lethal_isotherm_c"))


def is_lethal(isotherm_c: float) -> bool:
    """Whether a cryoablation zone bounded by ``isotherm_c`` (C) is lethal (at or below
    :func:`lethal_isotherm_c`)."""
    return isotherm_c <= lethal_isotherm_c()


def heat_sink() -> dict:
    return load_criteria()["heat_sink"]


def multi_probe() -> dict:
    return load_criteria()["multi_probe"]
