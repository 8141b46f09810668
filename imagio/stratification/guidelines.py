"""The next step a published guideline suggests for a nodule (``imagio/data/guidelines.json``).
Shown to the user as a suggestion with its source, never as a decision."""

from __future__ import annotations

import json
from importlib import resources

from ..errors import InputError


def suggestion(guideline: str, size_mm: float, brock_probability: float | None) -> dict:
    doc = json.loads(resources.files("imagio.data").joinpath("guidelines.json").read_text())
    if guideline not in doc:
        raise InputError(f"unknown guideline {guideline!r}; available: {sorted(doc)}")
    g = doc[guideline]
    if size_mm < g["min_size_mm"]:
        text = g["below_min_size"]
    else:
        if brock_probability is None:
            raise InputError("this guideline needs the Brock probability for nodules of this size")
        text = next(r["suggestion"] for r in g["rules"] if brock_probability < r["max_brock"])
    return {"guideline": guideline, "suggestion": text, "source": g["source"],
            "note": "a suggestion from the published guideline, not a clinical decision"}
