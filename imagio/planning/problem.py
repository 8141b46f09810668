"""The planning problem: target, needle, procedure constraints and structures with roles.

Positions are RAS mm; the CT is in HU; the label map is a `Volume` whose ``labels`` name its
values (anatomy catalogue names). Defaults come from ``imagio/data/planning_defaults.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources

import numpy as np
from scipy import ndimage

from .. import anatomy
from ..coords import point_or_name
from ..errors import InputError
from ..volume import Volume

POSITIONS = {  # RAS direction pointing from the patient towards the table
    "supine": (0.0, -1.0, 0.0),
    "prone": (0.0, 1.0, 0.0),
    "left_lateral": (-1.0, 0.0, 0.0),   # lying on the left side (left side down)
    "right_lateral": (1.0, 0.0, 0.0),
}

LUNG_PARENCHYMA = ("lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right",
                   "lung_middle_lobe_right", "lung_lower_lobe_right", "lung_left", "lung_right", "lung")
LUNG_CONTENTS = ("lung_vessels", "lung_fissure", "emphysema", "lung_nodule")  # inside the pleura


@lru_cache(maxsize=1)
def load_defaults() -> dict:
    """The planner defaults (with their sources) from imagio/data/planning_defaults.json."""
    return json.loads(resources.files("imagio.data").joinpath("planning_defaults.json").read_text())


def _d(section, key):
    return load_defaults()[section][key]


@dataclass
class Needle:
    """Usable needle length and diameter (mm); placement uncertainty (mm) widens every
    clearance check from the needle axis to a cylinder of radius diameter/2 + uncertainty."""

    length_mm: float = field(default_factory=lambda: _d("needle", "length_mm"))
    diameter_mm: float = field(default_factory=lambda: _d("needle", "diameter_mm"))
    uncertainty_mm: float = field(default_factory=lambda: _d("needle", "placement_uncertainty_mm"))

    @property
    def widening_mm(self) -> float:
        """Radius of the cylinder that must keep clear: needle radius + placement uncertainty."""
        return 0.5 * self.diameter_mm + self.uncertainty_mm


@dataclass
class Constraints:
    """Procedure constraints (angles in degrees, lengths mm, HU)."""

    max_skin_angle_deg: float = field(default_factory=lambda: _d("constraints", "max_skin_angle_deg"))
    max_craniocaudal_deg: float | None = field(
        default_factory=lambda: _d("constraints", "max_craniocaudal_deg"))  # None: no limit
    patient_position: str = field(default_factory=lambda: _d("constraints", "patient_position"))
    table_exclusion_deg: float = field(default_factory=lambda: _d("constraints", "table_exclusion_deg"))
    min_liver_parenchyma_mm: float = field(
        default_factory=lambda: _d("constraints", "min_liver_parenchyma_mm"))
    max_pleural_crossings: int = field(default_factory=lambda: _d("constraints", "max_pleural_crossings"))
    fissure_crossing: str = field(default_factory=lambda: _d("constraints", "fissure_crossing"))
    emphysema_hu: float = field(default_factory=lambda: _d("constraints", "emphysema_hu"))
    max_emphysema_percent: float = field(
        default_factory=lambda: _d("constraints", "max_emphysema_percent"))
    skin_spacing_mm: float = field(default_factory=lambda: _d("constraints", "skin_spacing_mm"))
    step_voxels: float = field(default_factory=lambda: _d("constraints", "step_voxels"))
    entry_region: tuple | None = None  # (centre RAS (3,), radius mm): entries must lie inside

    def __post_init__(self):
        if self.patient_position not in POSITIONS:
            raise InputError(f"unknown patient position {self.patient_position!r}; "
                             f"use one of {sorted(POSITIONS)}")
        if self.fissure_crossing not in ("forbid", "penalise"):
            raise InputError("fissure_crossing must be 'forbid' or 'penalise'")
        if self.max_craniocaudal_deg is not None and self.max_craniocaudal_deg < 0:
            raise InputError("the craniocaudal (gantry tilt) limit must be >= 0 degrees")

    @property
    def table_direction(self) -> np.ndarray:
        return np.array(POSITIONS[self.patient_position])


@dataclass(frozen=True)
class StructureSpec:
    """A structure of the label map with its planning role and margin (mm)."""

    name: str
    value: int
    role: str
    margin_mm: float = 0.0


@dataclass
class Target:
    """Needle tip position (RAS mm) and the structure it lies in (label value, 0 = none)."""

    point_ras: np.ndarray
    name: str
    value: int = 0
    organ: str = ""  # organ holding the target (e.g. "liver" for a liver tumour), "" unknown


def structure_specs(labels: Volume, overrides: dict | None = None) -> list[StructureSpec]:
    """Specs for every named label, roles and margins from `anatomy` unless overridden.

    overrides: {name: role} or {name: (role, margin_mm)}.
    """
    overrides = overrides or {}
    out = []
    for value, name in sorted(labels.labels.items()):
        s = anatomy.get(name)
        role, margin = s.role, s.margin_mm
        if name in overrides:
            o = overrides[name]
            role, margin = (o, margin) if isinstance(o, str) else (o[0], float(o[1]))
        if role not in anatomy.ROLES:
            raise InputError(f"unknown role {role!r} for {name}; use one of {anatomy.ROLES}")
        out.append(StructureSpec(name, int(value), role, float(margin)))
    return out


def deepest_point(vol: Volume, mask: np.ndarray) -> np.ndarray:
    """RAS of the structure's centroid if it lies inside, else of its deepest voxel."""
    kji = np.argwhere(mask)
    c = kji.mean(axis=0)
    ci = np.rint(c).astype(int)
    if mask[tuple(ci)]:
        return vol.kji_to_world(c[None])[0]
    import edt

    lo, hi = kji.min(0), kji.max(0) + 1
    sub = mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    d = edt.edt(np.pad(sub, 1), anisotropy=tuple(vol.spacing_kji))[1:-1, 1:-1, 1:-1]
    best = np.unravel_index(np.argmax(d), d.shape)
    return vol.kji_to_world((np.array(best) + lo)[None].astype(float))[0]


def resolve_target(labels: Volume, target) -> Target:
    """A Target from a structure name, a label value or an RAS point (3 numbers / 'R,A,S')."""
    if isinstance(target, Target):
        return target
    if isinstance(target, str):
        target = point_or_name(target)
    if isinstance(target, str):
        inv = {v: k for k, v in labels.labels.items()}
        if target not in inv:
            raise InputError(f"target structure {target!r} is not in the label map; it has "
                             f"{sorted(inv)} (or give a point as R,A,S in mm)")
        mask = labels.array == inv[target]
        if not mask.any():
            raise InputError(f"target structure {target!r} has no voxels in the label map")
        return Target(deepest_point(labels, mask), target, int(inv[target]))
    p = np.asarray(target, float).reshape(3)
    if not labels.contains_world(p)[0]:
        raise InputError(f"target point {p.round(1).tolist()} (RAS mm) lies outside the image")
    value = int(labels.sample(p[None], order=0)[0])
    return Target(p, labels.labels.get(value, "point"), value)


@dataclass
class PlanningProblem:
    """Everything the planner needs. ``body`` is the patient mask on the CT grid (bool)."""

    ct: Volume
    labels: Volume
    target: Target
    structures: list[StructureSpec]
    needle: Needle = field(default_factory=Needle)
    constraints: Constraints = field(default_factory=Constraints)
    weights: dict = field(default_factory=lambda: {k: v for k, v in load_defaults()["weights"].items()
                                                   if k != "description"})
    body: np.ndarray | None = None

    @classmethod
    def build(cls, ct: Volume, labels: Volume, target, needle: Needle | None = None,
              constraints: Constraints | None = None, roles: dict | None = None,
              weights: dict | None = None, body: np.ndarray | None = None) -> "PlanningProblem":
        """Check the inputs and assemble a problem. ``labels`` is resampled (nearest) onto the
        CT grid if needed; ``target`` is a structure name, a label value or an RAS point."""
        if not labels.labels:
            raise InputError("the label map has no structure names; give a .seg.nrrd or a "
                             "label image with a <stem>.labels.json sidecar")
        if not ct.same_grid(labels):
            labels = labels.resample_like(ct, order=0)
        tgt = resolve_target(labels, target)
        prob = cls(ct, labels, tgt, structure_specs(labels, roles), needle or Needle(),
                   constraints or Constraints(), body=body)
        if not tgt.organ:
            tgt.organ = target_organ(labels, tgt, prob.exempt_value)
        if weights:
            unknown = set(weights) - set(prob.weights)
            if unknown:
                raise InputError(f"unknown score weights {sorted(unknown)}; known: {sorted(prob.weights)}")
            prob.weights.update(weights)
        if prob.body is None:
            prob.body = body_mask(ct, labels)
        return prob

    @property
    def exempt_value(self) -> int:
        """Label value of the target's own structure, exempt from obstacle checks (0: none).
        Passable structures (liver, lung lobes, body) are never exempt."""
        v = self.target.value
        if not v:
            return 0
        spec = next((s for s in self.structures if s.value == v), None)
        return 0 if spec is None or spec.role == "passable" else v

    def with_constraints(self, **kw) -> "PlanningProblem":
        return replace(self, constraints=replace(self.constraints, **kw))

    def specs_by_role(self, *roles) -> list[StructureSpec]:
        return [s for s in self.structures if s.role in roles]


def target_organ(labels: Volume, target: Target, exempt_value: int, shell_mm: float = 4.0) -> str:
    """Name of the most frequent structure around the target's own structure (or at the target
    point when it has none): the organ that holds it ("" for background)."""
    from .distance_maps import reach_box

    lo, hi = reach_box(labels, target.point_ras, 60.0)
    sub = labels.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    if not exempt_value:
        return labels.labels.get(target.value, "")
    m = sub == exempt_value
    it = max(1, int(round(shell_mm / float(min(labels.spacing)))))
    shell = ndimage.binary_dilation(m, iterations=it) & ~m
    vals = sub[shell]
    vals = vals[vals > 0]
    if vals.size == 0:
        return ""
    return labels.labels.get(int(np.bincount(vals.astype(np.int64)).argmax()), "")


def body_mask(ct: Volume, labels: Volume | None = None, hu: float = -400.0) -> np.ndarray:
    """Patient body: largest connected component of CT > ``hu`` HU (plus any labelled voxel),
    internal air (lungs, bowel gas) filled. A simple rule; a segmenter's body mask is better."""
    import cc3d
    import fill_voids

    m = ct.array > hu
    if labels is not None:
        m |= labels.array > 0
    cc = cc3d.largest_k(m, k=1, connectivity=6)
    return fill_voids.fill(cc > 0, in_place=False)


def threshold_bone(ct: Volume, hu: float = 250.0) -> np.ndarray:
    """Fallback bone mask: CT > ``hu`` HU (for cases without organ labels; not a segmenter)."""
    return ct.array > hu


def fallback_label_map(ct: Volume, lesion: np.ndarray | None = None,
                       lesion_name: str = "lung_nodule", bone_hu: float = 250.0) -> Volume:
    """FALLBACK for cases without organ labels (not a segmenter): body (CT > -400 HU, largest
    component, filled), bone (CT > ``bone_hu`` HU inside the body, role forbidden) and an
    optional lesion mask (role target). Lungs are then found from HU by the planner."""
    body = body_mask(ct)
    lab = np.zeros(ct.shape, np.uint8)
    lab[body] = 1
    lab[body & threshold_bone(ct, bone_hu)] = 2
    names = {1: "body", 2: "bone"}
    if lesion is not None:
        lab[np.asarray(lesion, bool)] = 3
        names[3] = lesion_name
    return ct.with_array(lab, name="fallback_labels", labels=names)
