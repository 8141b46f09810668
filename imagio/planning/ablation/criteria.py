"""Thresholds for judging an ablation (margins, heat sink, nearby structures), with sources,
from ``imagio/data/ablation_criteria.json``. Distances in mm."""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from importlib import resources

from ...anatomy import canonical_name, is_known


@lru_cache(maxsize=1)
def load_criteria() -> dict:
    return json.loads(resources.files("imagio.data").joinpath("ablation_criteria.json").read_text(encoding="utf-8"))


def mam_text(mm: float) -> str:
    """A minimal ablative margin (mm) to one decimal, rounded DOWN (towards minus infinity), as
    every plan output prints it: a margin below the required one never reads as it (4.98 mm was
    printed "5.0 mm" beside "below the required 5 mm", abl101), one outside the zone reads at least
    as far out; the 1e-6 keeps a float's 5.1 = 5.0999... from reading 5.0."""
    return f"{math.floor(round(float(mm) * 10, 6)) / 10:.1f}"


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


def hollow_viscus_match() -> list[str]:
    """Parts of label names that mark a hollow viscus (TotalSegmentator colon, small_bowel,
    duodenum, stomach, esophagus, gallbladder, urinary_bladder; bowel, bile_duct): ``match`` of
    ``no_hollow_viscus`` (also the list of the cover's "hollow viscus" class, `class_match`)."""
    return list(load_criteria()["no_hollow_viscus"]["match"])


def hollow_viscus_examples() -> str:
    """The hollow viscera as TotalSegmentator names them (those of `hollow_viscus_match` that are
    its label names: duodenum, small_bowel, colon, stomach, esophagus, gallbladder, urinary_bladder),
    comma-joined: the examples the criterion's words give, from its one list (new-user trial 107:
    the words listed five and left out the esophagus, the viscus that matters beside a lung zone)."""
    from ...anatomy import totalsegmentator_labels

    ts = set(totalsegmentator_labels().values())
    return ", ".join(m for m in hollow_viscus_match() if m in ts)


def class_match(c: dict) -> list[str]:
    """The ``match`` list of a ``collateral_cost`` class: its own, or that of the criterion its
    ``match_from`` names (one list of hollow viscera for the weights and the criterion)."""
    return list(c["match"]) if "match" in c else list(load_criteria()[c["match_from"]]["match"])


def name_key(name: str) -> str:
    """``name`` as the catalogue spells it (`anatomy.canonical_name`: TG-263 names, Slicer's
    "Small Bowel"), in lower case with its words joined by '_' ("Gall bladder" -> gall_bladder)."""
    return "_".join(w for w in re.split(r"[\s_-]+", canonical_name(str(name)).strip().lower()) if w)


def is_hollow_viscus(name: str) -> bool:
    """Whether label ``name`` is a hollow viscus (`hollow_viscus_match`, parts of the name as
    `name_key` writes it: "Gall bladder", "Small intestine", "Bowel_Small", "sigmoid colon")."""
    key = name_key(name)
    return any(m in key for m in hollow_viscus_match())


def hollow_viscus_criterion(healthy_ml: dict, label_names, unimaged_zone_ml: float = 0.0,
                            exclude=(), unlabelled=()) -> dict:
    """The ``no_hollow_viscus`` criterion of a zone set (ablation_criteria.json, sources there:
    thermal injury of bowel, stomach, gallbladder: Mulier 2002, Kong 2009, Kondo 2006).

    healthy_ml: {structure name: mL inside the zones} (`coverage.Coverage.healthy_ml`, analysis
    grid); label_names: every name the label map holds; unimaged_zone_ml: mL of the zones past the
    image or in the CT's padding; exclude: names never counted (the tumour's host organ; the
    name under which ``healthy_ml`` holds that volume past the image, `coverage.UNIMAGED`: it is
    said as such, never as a name to correct); unlabelled: names of unlabelled tissue IMAGIO names
    itself (`coverage.AblationContext.add_region`: the mediastinum's unlabelled soft tissue),
    counted as "unlabelled" is, never as a name to correct; the structures the planner makes
    (`problem.made_by_planner`: lung_vessels_small, ..._continuation) are known names.
    Returns {"value": mL of hollow viscera in the zones, "required": 0.0, "met": True / False /
    None, "structures": {name: mL}} with "not_verifiable" (why; each reason, "; "-joined) when
    ``met`` is None: none found but the zones reach tissue past the image ("X mL of the zone lies
    past the image: a hollow viscus there cannot be excluded") or a structure the catalogue does
    not know, or unlabelled tissue while the label map names no hollow viscus at all."""
    spec = load_criteria()["no_hollow_viscus"]
    hit = {n: float(v) for n, v in healthy_ml.items() if v > 0 and n not in exclude and is_hollow_viscus(n)}
    total = float(sum(hit.values()))
    out = {"value": round(total, 3), "required": float(spec["value"]), "met": not hit,
           "structures": {n: round(v, 3) for n, v in sorted(hit.items(), key=lambda kv: -kv[1])}}
    if hit:
        return out
    bare = ("unlabelled", "body", *unlabelled)
    unnamed = float(sum(v for n, v in healthy_ml.items() if n in bare))
    # a structure the catalogue does not know in the zone may be a viscus under another name
    # (new-user trial 99 F1: "Gall bladder" 5.0 mL in a zone reported "met")
    # the structures the planner makes itself (lung_vessels_small: trial 106 MED 1) are known: a user cannot rename them
    from ..problem import made_by_planner

    unknown = {n: float(v) for n, v in healthy_ml.items()
               if v > 0 and n not in exclude and n not in bare and not is_known(canonical_name(n))
               and not made_by_planner(n)}
    why = []
    if unknown:
        why.append("the zone takes in " + ", ".join(f"{n} {v:.2f} mL" for n, v in
                                                    sorted(unknown.items(), key=lambda kv: -kv[1]))
                   + ": a name IMAGIO does not know, it may be a hollow viscus (name it as "
                   f"TotalSegmentator does: {hollow_viscus_examples()})")
    if unimaged_zone_ml > 0:   # IMAGIO's own volume past the image, not a user's name (new-user trial 101 F5)
        why.append(f"{unimaged_zone_ml:.2f} mL of the zone lies past the image: a hollow viscus there cannot be "
                   "excluded")
    if why:
        out["met"] = None
        out["not_verifiable"] = "; ".join(why)
    elif unnamed > 0 and not any(is_hollow_viscus(n) for n in label_names):
        out["met"] = None
        out["not_verifiable"] = (f"the zone takes in {unnamed:.2f} mL of unlabelled tissue and the label map names no "
                                 f"hollow viscus ({hollow_viscus_examples()})")
    return out
