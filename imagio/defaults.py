"""The planner's defaults with their sources (``imagio/data/planning_defaults.json``), read by the
planner and by the checks below it (label registration, vessels) without importing the planner."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def load_defaults() -> dict:
    """The planner defaults (with their sources) from imagio/data/planning_defaults.json: one dict,
    read once and shared (the planner and its tests read and set it in place)."""
    return json.loads(resources.files("imagio.data").joinpath("planning_defaults.json").read_text(encoding="utf-8"))


def dense_min_hu() -> float:
    """HU at or above which tissue is bone, calcification, angiographic contrast or metal
    (planning_defaults ``ct_density.dense_min_hu``)."""
    return float(load_defaults()["ct_density"]["dense_min_hu"])
