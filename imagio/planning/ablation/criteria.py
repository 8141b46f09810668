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


def heat_sink() -> dict:
    return load_criteria()["heat_sink"]


def multi_probe() -> dict:
    return load_criteria()["multi_probe"]
