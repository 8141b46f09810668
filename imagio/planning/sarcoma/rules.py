"""The sarcoma biopsy rules (imagio/data/sarcoma_biopsy.json) and the limb anatomy they act on.

`classify` sorts the label map's structures into compartments, septa, joints, bundle, bones
and the tumour by name pattern; `involved_compartments` finds the compartment(s) the tumour
occupies; `roles_for` turns each rule into the planner role of the structures it applies to
(one definition: the planner, its independent re-check and the report all act through these
roles); `rule_status` names the rules a checked path meets or violates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import numpy as np
from scipy import ndimage

from ...errors import InputError
from ...volume import Volume, reach_box


@lru_cache(maxsize=1)
def config() -> dict:
    """imagio/data/sarcoma_biopsy.json (rules with wording and sources, thresholds, patterns)."""
    return json.loads(resources.files("imagio.data").joinpath("sarcoma_biopsy.json").read_text(encoding="utf-8"))


def rule(name: str) -> dict:
    return next(r for r in config()["rules"] if r["name"] == name)


def matches(name: str, patterns) -> bool:
    """True when ``name`` equals a pattern or starts with it followed by '_' (case-insensitive)."""
    n = name.lower()
    return any(n == p.lower() or n.startswith(p.lower() + "_") for p in patterns)


def _holds(name: str, words) -> bool:
    n = name.lower()
    return any(w in n for w in words)


def bundle_member_words(name: str) -> str:
    """What the neurovascular-bundle structure ``name`` is, in words: "an artery of the
    neurovascular bundle" (a vein, a nerve) by the first word of ``patterns.bundle_members``
    (sarcoma_biopsy.json) its name holds, else "the neurovascular bundle" (new-user trial 96 F7:
    "'superficial_femoral_artery' is a neurovascular bundle")."""
    members = {k: v for k, v in config()["patterns"]["bundle_members"].items() if k != "note"}
    kind = next((k for k, words in members.items() if _holds(name, words)), None)
    if kind is None:
        return "the neurovascular bundle"
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} of the neurovascular bundle"


def _side(name: str) -> str:
    n = name.lower()
    return "_left" if n.endswith("_left") else "_right" if n.endswith("_right") else ""


@dataclass
class LimbAnatomy:
    """Structures of a label map by kind: {name: value}; compartments {key: [names]} where a
    key is a compartment group plus side (e.g. thigh_anterior_left)."""

    compartments: dict = field(default_factory=dict)
    septa: dict = field(default_factory=dict)
    joints: dict = field(default_factory=dict)
    bundle: dict = field(default_factory=dict)
    bones: dict = field(default_factory=dict)
    tumours: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)   # name -> value (all)

    def compartment_of(self, name: str) -> str | None:
        return next((k for k, ns in self.compartments.items() if name in ns), None)


def classify(labels: Volume) -> LimbAnatomy:
    """Sort the label map's named structures by kind (patterns of sarcoma_biopsy.json; order:
    tumour, septa, joints, bundle, compartments, bones; a name holding a joint or bundle word
    anywhere counts as one, so that a user's naming is never taken as passable tissue)."""
    pat = config()["patterns"]
    out = LimbAnatomy()
    for v, name in sorted(labels.labels.items()):
        out.values[name] = int(v)
        if matches(name, pat["tumour"]):
            out.tumours[name] = int(v)
        elif matches(name, pat["septa"]):
            out.septa[name] = int(v)
        elif matches(name, pat["joints"]) or _holds(name, pat["joints_contains"]):
            out.joints[name] = int(v)
        elif matches(name, pat["bundle"]) or _holds(name, pat["bundle_contains"]):
            out.bundle[name] = int(v)
        else:
            key = next((g for g, ps in pat["compartments"].items() if matches(name, ps)), None)
            if key is None and "compartment" in name.lower():
                key = name.lower().removesuffix("_left").removesuffix("_right")
            if key is not None:
                out.compartments.setdefault(key + _side(name), []).append(name)
            elif matches(name, pat["bones"]):
                out.bones[name] = int(v)
    return out


def involved_compartments(labels: Volume, anat: LimbAnatomy, tumour_value: int,
                          min_fraction: float = 0.10) -> dict:
    """{compartment key: fraction of the tumour's labelled one-voxel shell in it}, for the
    compartments holding at least ``min_fraction`` of that shell (a tumour inside one
    compartment touches only it, its septa and its fascia; a tumour crossing a septum touches
    both sides). Septa, fascia and unlabelled voxels do not count."""
    m_full = labels.array == tumour_value
    kji = np.argwhere(m_full)
    lo = np.maximum(kji.min(0) - 2, 0)
    hi = np.minimum(kji.max(0) + 3, labels.shape)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    m = m_full[sl]
    shell = ndimage.binary_dilation(m, iterations=1) & ~m
    vals = labels.array[sl][shell]
    counts = {}
    for key, names in anat.compartments.items():
        vs = [anat.values[n] for n in names]
        counts[key] = int(np.isin(vals, vs).sum())
    total = sum(counts.values())
    if total == 0:
        return {}
    return {k: round(c / total, 3) for k, c in counts.items() if c >= min_fraction * total}


def septum_neighbours(labels: Volume, anat: LimbAnatomy, septum: str, near_ras, reach_mm: float) -> set:
    """Compartment keys adjacent to a septum (one voxel around it) within ``reach_mm`` of a point."""
    lo, hi = reach_box(labels, near_ras, reach_mm)
    sub = labels.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    s = sub == anat.septa[septum]
    if not s.any():
        return set()
    vals = np.unique(sub[ndimage.binary_dilation(s, iterations=1) & ~s])
    return {anat.compartment_of(n) for n, v in anat.values.items() if v in vals} - {None}


def roles_for(labels: Volume, anat: LimbAnatomy, involved, near_ras, reach_mm: float,
              bundle_margin_mm: float | None = None) -> tuple[dict, dict]:
    """(roles, rule_of): planner roles {name: role or (role, margin)} implementing each rule of
    sarcoma_biopsy.json, and {name: rule name} for the report. Involved compartments and septa
    between involved compartments only are passable."""
    involved = set(involved)
    roles, rule_of = {}, {}
    for key, names in anat.compartments.items():
        for n in names:
            if key in involved:
                roles[n] = "passable"
            else:
                roles[n] = rule("tract_in_tumour_compartment")["role"]
                rule_of[n] = "tract_in_tumour_compartment"
    for n in anat.septa:
        nb = septum_neighbours(labels, anat, n, near_ras, reach_mm)
        if nb and nb <= involved:
            roles[n] = "passable"
        else:
            roles[n] = rule("no_septum_into_uninvolved")["role"]
            rule_of[n] = "no_septum_into_uninvolved"
    for n in anat.joints:
        roles[n], rule_of[n] = rule("no_joint")["role"], "no_joint"
    r = rule("bundle_margin")
    margin = float(r["margin_mm"] if bundle_margin_mm is None else bundle_margin_mm)
    for n in anat.bundle:
        roles[n], rule_of[n] = (r["role"], margin), "bundle_margin"
    for n in anat.bones:
        roles[n], rule_of[n] = rule("no_bone")["role"], "no_bone"
    return roles, rule_of


def rule_status(metrics, rule_of: dict, roles: dict, incision_mm: float | None,
                incision_tolerance_mm: float | None, compartments_checked: bool,
                cap_mm: float | None = None) -> dict:
    """{rule: {"met": bool|None, "detail": str}} for one checked path (`PathMetrics`): a rule is
    violated when the path enters or comes within the required clearance of one of its
    structures (the planner's metrics and its independent re-check, which enforce them).
    ``cap_mm``: the distance up to which the planner measures clearances (beyond it: farther)."""
    entered = {n for n, mm in metrics.length_in_mm.items() if mm > 0}
    req = metrics.required_mm
    out = {}
    for name in ("tract_in_tumour_compartment", "no_septum_into_uninvolved", "no_joint", "no_bone",
                 "bundle_margin"):
        structs = [n for n, r in rule_of.items() if r == name]
        bad = []
        for n in structs:
            role = roles[n]
            margin = role[1] if isinstance(role, tuple) else 0.0
            d = metrics.clearance_mm.get(n)
            if n in entered or (d is not None and d < margin + req - 1e-6):
                bad.append(f"{n}" + (f" at {d:.1f} mm" if d is not None else ""))
        if name in ("tract_in_tumour_compartment", "no_septum_into_uninvolved") and not compartments_checked:
            out[name] = {"met": None, "detail": "not checked: no compartments"}
            continue
        if name == "bundle_margin":
            ds = {n: round(metrics.clearance_mm[n], 1) for n in structs if n in metrics.clearance_mm}
            detail = ("clearance " + ", ".join(f"{k} {v} mm" for k, v in ds.items())) if ds else \
                ((f"every bundle structure farther than {cap_mm:g} mm" if cap_mm else
                  "every bundle structure beyond the measured distance") if structs else "no bundle structure labelled")
            out[name] = {"met": (not bad) if structs else None, "detail": ("violated: " + "; ".join(bad)) if bad else detail}
            continue
        # nothing labelled for the rule: it could not be checked (never "met")
        out[name] = {"met": (not bad) if structs else None,
                     "detail": ("crosses or touches " + "; ".join(bad)) if bad else
                     (f"{len(structs)} structure(s) kept out" if structs else "not checked: none labelled")}
    if incision_mm is None:
        out["entry_on_incision"] = {"met": None, "detail": "no incision"}
    else:
        out["entry_on_incision"] = {"met": bool(incision_mm <= incision_tolerance_mm + 1e-6),
                                    "detail": f"entry {incision_mm:.1f} mm from the incision "
                                              f"(tolerance {incision_tolerance_mm:g} mm)"}
    return out


def require_compartments(anat: LimbAnatomy) -> None:
    """InputError (one line) when the label map has no muscle compartments."""
    if not anat.compartments:
        raise InputError("no muscle compartments in the label map: a sarcoma biopsy tract must stay in the "
                         "tumour's compartment; give compartment labels (e.g. thigh_anterior_compartment_left, "
                         "thigh_medial_compartment_left, thigh_posterior_compartment_left, or TotalSegmentator "
                         "thigh_shoulder_muscles classes such as quadriceps_femoris_left), or pass "
                         "--no-compartments to plan without the compartment rules")
