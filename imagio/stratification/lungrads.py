"""Lung-RADS v2022 category of a screening-detected nodule (``imagio/data/lungrads_v2022.json``)."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from ..errors import InputError

# categories from least to most suspicious (ACR Lung-RADS v2022; 0, incomplete, and S are not ranked)
CATEGORY_ORDER = ("1", "2", "3", "4A", "4B", "4X")


@lru_cache(maxsize=1)
def table() -> dict:
    return json.loads(resources.files("imagio.data").joinpath("lungrads_v2022.json").read_text())


def _band(bands, size):
    for lo, hi, cat in bands:
        if lo <= size < hi:
            return cat
    raise InputError(f"size {size} mm is outside the Lung-RADS table")


def category(nodule_type: str, size_mm: float, solid_component_mm: float = 0.0,
             status: str = "baseline") -> dict:
    """Category and management. ``size_mm``: mean diameter (long + short axis) / 2, rounded to
    one decimal as Lung-RADS prescribes; ``status``: baseline, new or growing."""
    if size_mm is None or size_mm <= 0 or size_mm > 300:
        raise InputError(f"nodule size {size_mm} mm is not a valid mean diameter")
    t = table()
    size = round(float(size_mm), 1)
    solid = round(float(solid_component_mm or 0.0), 1)
    if nodule_type not in ("solid", "part_solid", "nonsolid"):
        raise InputError(f"nodule type {nodule_type!r} is unknown; use solid, part_solid or nonsolid")
    if status == "baseline":
        b = t["baseline"]
        if nodule_type == "solid":
            cat = _band(b["solid"], size)
        elif nodule_type == "nonsolid":
            cat = _band(b["nonsolid"], size)
        else:
            cat = b["part_solid_total_below_6"] if size < 6 else _band(b["part_solid_by_solid_component"], solid)
    elif status in ("new", "growing"):
        n = t["new_or_growing"]
        if nodule_type == "nonsolid":
            cat = _band(n["nonsolid_new_or_growing"], size)
        else:
            key = "solid_new" if status == "new" else "solid_growing"
            cat = _band(n[key], size if nodule_type == "solid" else max(solid, 0.1))
    else:
        raise InputError(f"status {status!r} is unknown; use baseline, new or growing")
    return {"category": cat, "management": t["management"][cat], "source": t["source"],
            "size_mm": size, "solid_component_mm": solid}
