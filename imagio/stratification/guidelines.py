"""The next step a published guideline suggests for a nodule (``imagio/data/guidelines.json``).
Shown to the user as a suggestion with its source, never as a decision."""

from __future__ import annotations

import json
from importlib import resources

from ..errors import InputError


def suggestion(guideline: str, size_mm: float, brock_probability: float | None,
               nodule_type: str = "solid") -> dict:
    """The guideline's next step for a nodule of ``size_mm`` (mm, its largest diameter) and
    ``brock_probability`` (0-1, or None), as {guideline, suggestion, source, note}.

    Raises InputError for an unknown guideline, a missing Brock probability where the guideline
    needs it, and a nodule type its algorithm does not cover (``nodule_types`` in
    guidelines.json: BTS 2015's algorithm here is the solid-nodule one; sub-solid nodules follow
    its separate pathway, new-user trial 16)."""
    doc = json.loads(resources.files("imagio.data").joinpath("guidelines.json").read_text(encoding="utf-8"))
    if guideline not in doc:
        raise InputError(f"unknown guideline {guideline!r}; available: {sorted(doc)}")
    g = doc[guideline]
    types = g.get("nodule_types")
    if types and nodule_type not in types:
        raise InputError(f"{guideline}: the algorithm implemented is the one for {', '.join(types)} nodules; a "
                         f"{nodule_type.replace('_', '-')} nodule follows the guideline's separate sub-solid pathway, "
                         "which IMAGIO does not implement: no suggestion (see the source)")
    if size_mm < g["min_size_mm"]:
        text = g["below_min_size"]
    else:
        if brock_probability is None:
            raise InputError("this guideline needs the Brock probability for nodules of this size")
        text = next(r["suggestion"] for r in g["rules"] if brock_probability < r["max_brock"])
    return {"guideline": guideline, "suggestion": text, "source": g["source"],
            "note": "a suggestion from the published guideline, not a clinical decision"}
