"""The planning problem: target, needle, procedure constraints and structures with roles.

Positions are RAS mm; the CT is in HU; the label map is a `Volume` whose ``labels`` name its
values (anatomy catalogue names). Defaults come from ``imagio/data/planning_defaults.json``.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage

from .. import anatomy
from ..coords import point_or_name, point_text
from ..errors import InputError
from ..io import label_coverage, labels_on_grid
from ..outline_doubts import structure_doubts, target_warning
from ..volume import Volume, reach_box, values_mask
from .continuation import continuation_base
from .criteria import default_weights

POSITIONS = {  # RAS direction pointing from the patient towards the table
    "supine": (0.0, -1.0, 0.0),
    "prone": (0.0, 1.0, 0.0),
    "left_lateral": (-1.0, 0.0, 0.0),   # lying on the left side (left side down)
    "right_lateral": (1.0, 0.0, 0.0),
}

# DICOM PatientPosition (0018,5100) -> POSITIONS (DICOM PS3.3 C.7.3.1.1.2: head/feet first;
# supine, prone, decubitus right/left = lying on the right/left side). Head or feet first does not
# change the couch side.
DICOM_POSITIONS = {"HFS": "supine", "FFS": "supine", "HFP": "prone", "FFP": "prone",
                   "HFDR": "right_lateral", "FFDR": "right_lateral", "HFDL": "left_lateral", "FFDL": "left_lateral"}
TABLE_SIDE = {"supine": "posterior", "prone": "anterior", "left_lateral": "left", "right_lateral": "right"}


def position_from_header(meta: dict, given: str | None, default: str) -> tuple[str, str | None]:
    """(patient position to plan with, warning or None) from the CT's DICOM PatientPosition
    (``meta["PatientPosition"]``, `imagio.dicom_headers.META_TAGS`) and ``--position``
    (``given``). New-user trial 32 (H3): a prone (HFP) series was planned as supine, its best
    entry facing the couch. Given wins, with no warning here when the header says otherwise: the
    plan's warning says it once, with the couch side (`planner.scan_position_warnings`; trial 89
    L: said twice); else the header's position, said when it is not ``default``; a code outside
    `DICOM_POSITIONS` or no tag (NIfTI) leaves ``default`` (the first with a warning)."""
    code = str(meta.get("PatientPosition", "") or "").strip().upper()
    hdr = DICOM_POSITIONS.get(code)
    if given:
        return given, None
    if hdr:
        if hdr == default:
            return hdr, None
        return hdr, (f"patient position {hdr} from the DICOM PatientPosition {code}: the couch is taken as "
                     f"{TABLE_SIDE[hdr]} and entries on that side are excluded (--position overrides it)")
    if code:
        return default, (f"DICOM PatientPosition {code!r} is not one IMAGIO knows (HFS, HFP, HFDR, HFDL, FFS, FFP, "
                         f"FFDR, FFDL): planned {default}, the couch taken as {TABLE_SIDE[default]}; give --position")
    return default, None


LUNG_PARENCHYMA, AERATED_LUNG = anatomy.LUNG_PARENCHYMA, anatomy.AERATED_LUNG
# room beyond the needle's reach of the calibre split's box (`calibre_split`): the distance maps' crop
# and its halo lie within it; the unlabelled continuation (`continuation`) works in the same box
CALIBRE_BOX_EXTRA_MM = 60.0
LUNG_CONTENTS = ("lung_vessels", "lung_fissure", "emphysema", "lung_nodule")  # inside the pleura


from ..defaults import load_defaults  # noqa: E402,F401 (the one reader, below the planner: re-exported)


def _d(section, key):
    return load_defaults()[section][key]


BEYOND_TIP_PROCEDURES = ("core_biopsy", "ablation_probe", "sarcoma_core_biopsy")


def beyond_tip_default(procedure: str) -> float:
    """mm of the needle's axis past the target that `findings.beyond_tip` checks by default for
    ``procedure`` (one of `BEYOND_TIP_PROCEDURES`; planning_defaults.json ``needle.beyond_tip_mm``
    with its source): a core biopsy needle's throw + placement uncertainty (22 mm), 0 for an
    ablation probe (placed, not fired: the ablation planner checks its advanced track) and for
    the sarcoma core biopsy (its tracts end where the fired needle stops). KeyError for another
    procedure."""
    return float(_d("needle", "beyond_tip_mm")[procedure])


@dataclass
class Needle:
    """Usable needle length and diameter (mm); placement uncertainty (mm) widens every
    clearance check from the needle axis to a cylinder of radius diameter/2 + uncertainty;
    ``beyond_tip_mm``: how far past the target the needle's axis is checked (a core needle fires
    forward by its throw), 0 for none; default the core biopsy's (`beyond_tip_default`)."""

    length_mm: float = field(default_factory=lambda: _d("needle", "length_mm"))
    diameter_mm: float = field(default_factory=lambda: _d("needle", "diameter_mm"))
    uncertainty_mm: float = field(default_factory=lambda: _d("needle", "placement_uncertainty_mm"))
    # the needle's axis continued past the target that is checked (a core needle's throw + the
    # placement uncertainty; planning_defaults.json needle.beyond_tip_mm): `findings.beyond_tip`
    beyond_tip_mm: float = field(default_factory=lambda: beyond_tip_default("core_biopsy"))
    # the hub beyond the usable length (planning_defaults.json needle.hub_*: an assumption with its
    # source): `findings.outside_clearance` checks the part outside the skin up to the hub's end
    hub_diameter_mm: float = field(default_factory=lambda: _d("needle", "hub_diameter_mm"))
    hub_length_mm: float = field(default_factory=lambda: _d("needle", "hub_length_mm"))

    @property
    def widening_mm(self) -> float:
        """Radius of the cylinder that must keep clear: needle radius + placement uncertainty."""
        return 0.5 * self.diameter_mm + self.uncertainty_mm

    @property
    def hub_clearance_mm(self) -> float:
        """Radius of the cylinder around the hub that must keep clear: hub radius + placement
        uncertainty (never less than `widening_mm`)."""
        return max(0.5 * self.hub_diameter_mm + self.uncertainty_mm, self.widening_mm)


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
    disabled_rules: tuple = ()  # names from OPTIONAL_RULES switched off (--no-rule)

    def __post_init__(self):
        if self.patient_position not in POSITIONS:
            raise InputError(f"unknown patient position {self.patient_position!r}; "
                             f"use one of {sorted(POSITIONS)}")
        if self.fissure_crossing not in ("forbid", "penalise"):
            raise InputError("fissure_crossing must be 'forbid' or 'penalise'")
        if self.max_craniocaudal_deg is not None and self.max_craniocaudal_deg < 0:
            raise InputError("the craniocaudal (gantry tilt) limit must be >= 0 degrees")
        bad = set(self.disabled_rules) - set(OPTIONAL_RULES)
        if bad:
            raise InputError(f"unknown rule(s) {sorted(bad)} for --no-rule; use {list(OPTIONAL_RULES)}")

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
    point_given: bool = False  # the user gave a point (its label is the host, not the target)
    in_lung: bool = False  # a lesion inside the visceral pleura (`target_in_lung`): lung -> target crosses no pleura
    # a point target's solid tissue beside the lung (`target_tissue.point_tissue`); when enclosed by
    # lung it sets ``in_lung`` and counts as lung for the pleural counts; else the failure words
    tissue: object = None


GENERIC_NAME = re.compile(r"^(label|segment|structure)_?\d+$", re.IGNORECASE)  # a value without a real name


def structure_specs(labels: Volume, overrides: dict | None = None) -> list[StructureSpec]:
    """Specs for every named label, roles and margins from `anatomy` unless overridden.

    overrides: {name: role} or {name: (role, margin_mm)}.
    """
    overrides = overrides or {}
    small_role = load_defaults()["vessel_calibre"]["small_role"]
    out = []
    for value, name in sorted(labels.labels.items()):
        s = anatomy.get(name)
        role, margin = s.role, s.margin_mm
        if GENERIC_NAME.match(str(name)):   # an unnamed structure could be anything: keep out
            role, margin = "forbidden", 0.0
        elif not anatomy.is_known(name) and not named_like_a_lesion(name) and not made_by_planner(name):
            # a name IMAGIO cannot read ("Herz", "target2", "OAR_1") could be an organ at risk:
            # kept out (targets.unknown_structure_role); the target's host organ is entered
            # (`_enter_host_organ`), --role NAME=passable crosses it on purpose
            role, margin = load_defaults()["targets"]["unknown_structure_role"], 0.0
        if is_calibre_split(name):   # thin branches (split_vessels_by_calibre)
            role, margin = small_role, 0.0
        base = continuation_base(name)
        if base is not None:   # a vessel's unlabelled continuation (`continuation`): the vessel's role
            b = anatomy.get(base)
            role, margin = b.role, b.margin_mm
            o = overrides.get(base)
            if o is not None:
                role, margin = (o, margin) if isinstance(o, str) else (o[0], float(o[1]))
        if name in overrides:
            o = overrides[name]
            role, margin = (o, margin) if isinstance(o, str) else (o[0], float(o[1]))
        if role not in anatomy.ROLES:
            raise InputError(f"unknown role {role!r} for {name}; use one of {anatomy.ROLES}")
        out.append(StructureSpec(name, int(value), role, float(margin)))
    return out


def named_like_a_lesion(name: str) -> bool:
    """True for a structure name the catalogue does not know that names a lesion
    (``targets.lesion_name_hints``: GTV_5, GTVp, metastasis_4, hcc_2, lesion_3, LiverTumor ...).
    A hint of 5 letters or more matches anywhere in the name; a shorter one (gtv, hcc) only at
    the start of a word; ``lesion_name_whole_words`` (mass) only as a whole word (masseter_left
    is a muscle)."""
    if anatomy.is_known(name):
        return False
    low = str(name).lower()
    words = [w for w in re.split(r"[^a-zäöüéèàçñ]+", low) if w]
    return (any(h in low for h in _d("targets", "lesion_name_hints") if len(h) >= 5)
            or any(w.startswith(h) for w in words for h in _d("targets", "lesion_name_hints") if len(h) < 5)
            or any(w in _d("targets", "lesion_name_whole_words") for w in words))


def names_a_lesion(name: str) -> bool:
    """True for a structure that is a lesion to keep out when it is not the target: catalogue role
    'target' (liver_tumor, lung_nodule_3) or an unknown name `named_like_a_lesion` (GTV_5,
    metastasis_4). Unlike `is_lesion` (which also takes any unknown name, since the user may aim at
    it), an unknown name that does not read as a lesion ("Herz") is not one: it is kept out as an
    unknown structure (``targets.unknown_structure_role``)."""
    return anatomy.get(name).role == "target" or named_like_a_lesion(name)


def _distances_near_point(labels: Volume, point_ras, radius_mm: float) -> dict[int, float]:
    """{label value: distance (mm) from the RAS point to its nearest voxel centre} for the values
    with a voxel centre within ``radius_mm`` of the point (0 included)."""
    lo, hi = reach_box(labels, np.asarray(point_ras, float), radius_mm)
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    sub = labels.array[sl]
    kji = np.argwhere(np.ones(sub.shape, bool)) + np.asarray(lo)
    d = np.linalg.norm(labels.kji_to_world(kji.astype(float)) - np.asarray(point_ras, float), axis=1)
    v = sub.reshape(-1).astype(np.int64)
    near = d <= radius_mm
    out = np.full(int(v.max(initial=0)) + 1, np.inf)
    np.minimum.at(out, v[near], d[near])
    return {int(k): float(out[k]) for k in np.flatnonzero(np.isfinite(out))}


# suffixes of the structures the planner makes from a labelled one (`made_by_planner`)
CALIBRE_SMALL_SUFFIX = "_small"            # `calibre_split`: a graded vessel tree's thin branches
TARGET_PIECE_SUFFIX = "_target_piece"      # `_enter_target_bone`: the bone piece holding the target
OTHER_PIECES_SUFFIX = "_other_pieces"      # `_enter_target_bone`: the rest of that bone's label


def is_calibre_split(name: str) -> bool:
    """True for the thin-branch structure `split_vessels_by_calibre` makes (lung_vessels_small)."""
    n = len(CALIBRE_SMALL_SUFFIX)
    return name.endswith(CALIBRE_SMALL_SUFFIX) and name[:-n] in load_defaults()["vessel_calibre"]["graded_structures"]


def made_by_planner(name: str) -> bool:
    """True for a structure the planner itself makes and names (the one list of them): the thin
    branches of a graded vessel tree (`is_calibre_split`: lung_vessels_small), a vessel's
    unlabelled continuation (`continuation.continuation_base`: great_vessels_continuation), the
    target bone's piece and the rest of its label (`_enter_target_bone`: rib_left_5_target_piece,
    rib_left_5_other_pieces) and the spinal canal derived from the vertebrae
    (``bone_target.canal_derived_name``). A label map never holds them, so the user cannot
    rename them: they are never "a name IMAGIO does not know" (new-user trial 106 MED 1: a lung
    zone's 0.02 mL of lung_vessels_small left the hollow-viscus criterion not verifiable)."""
    name = str(name)
    if is_calibre_split(name) or continuation_base(name) is not None:
        return True
    if name == load_defaults()["bone_target"]["canal_derived_name"]:
        return True
    return any(name.endswith(s) and is_bone(name[:-len(s)]) for s in (TARGET_PIECE_SUFFIX, OTHER_PIECES_SUFFIX))


def _other_lesions_kept_out(specs: list[StructureSpec], target: Target, roles: dict, labels: Volume,
                            reach_mm: float) -> tuple[list[StructureSpec], list[str], list[str], list[str]]:
    """(specs, kept out, unknown, notes): every lesion structure (catalogue role 'target', or an
    unknown name `named_like_a_lesion`) that is not the target (label value ``target.value``) and
    whose role the user did not set gets the role ``targets.other_lesion_role`` (forbidden: a
    needle through a second tumour mixes the specimen and can seed the tract; source in
    planning_defaults.json); kept out: those names; unknown: the other names the catalogue does
    not know and the user gave no role (``targets.unknown_structure_role`` in `structure_specs`:
    the plan says so), generic names (label_3, forbidden), the target and IMAGIO's own calibre
    split left out; notes: warnings.
    A target point inside a lesion aims at that lesion only. A target point in no lesion but
    within ``reach_mm`` of one (the needle's radius + placement uncertainty + half a voxel
    diagonal: a tip there cannot keep clear of it; a click on a tumour's edge) aims at the
    nearest such lesion, said in a note; any other lesion that near stays kept out, also said."""
    role = _d("targets", "other_lesion_role")
    lesion = {s.value: names_a_lesion(s.name) for s in specs}
    names = {s.value: s.name for s in specs}
    aimed, notes = {target.value}, []
    if target.point_given:
        near = {v: d for v, d in _distances_near_point(labels, target.point_ras, reach_mm).items()
                if lesion.get(v) and v != target.value}
        if near and not lesion.get(target.value):
            v = min(near, key=near.get)
            aimed.add(v)
            notes.append(f"the target point lies {near.pop(v):.1f} mm outside {names[v]} (closer than the "
                         f"needle's radius + placement uncertainty): {names[v]} is taken as the lesion aimed "
                         "at, and paths may enter it")
        for v, d in sorted(near.items(), key=lambda x: x[1]):
            if names[v] not in roles:
                notes.append(f"{names[v]} lies {d:.1f} mm from the target point (within the needle's radius + "
                             f"placement uncertainty + half a voxel, {reach_mm:.1f} mm): it is another lesion, "
                             "kept out with the needle's clearance; check that the point is in the lesion meant")
    out, kept, unknown = [], [], []
    for s in specs:
        if lesion[s.value] and s.value not in aimed and s.name not in roles:
            s = replace(s, role=role)
            kept.append(s.name)
        elif (not lesion[s.value] and not anatomy.is_known(s.name) and s.name not in roles
              and s.value != target.value and not GENERIC_NAME.match(str(s.name))
              and not made_by_planner(s.name)):
            unknown.append(s.name)
        out.append(s)
    return out, kept, unknown, notes


def deepest_point(vol: Volume, mask: np.ndarray) -> np.ndarray:
    """RAS of the structure's centroid if it lies inside, else of its deepest voxel. ``mask``:
    bool [k, j, i] on ``vol``'s grid, not empty (InputError). The voxels are listed within the
    mask's bounding box (per-axis projections, `Volume.bounding_box`): the same indices in the
    same order as over the whole array, 0.15 -> 0.025 CPU-s for a lesion of the 1 mm phantom's
    73 M voxels (issue 20: every target's build resolves its lesion)."""
    lo, hi = vol.bounding_box(mask)
    sub = mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    kji = np.argwhere(sub) + lo
    c = kji.mean(axis=0)
    ci = np.rint(c).astype(int)
    if mask[tuple(ci)]:
        return vol.kji_to_world(c[None])[0]
    import edt

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
        from ..io import duplicate_names

        inv = {v: k for k, v in labels.labels.items()}
        twins = duplicate_names(labels.labels).get(target)
        if twins:
            raise InputError(f"target {target!r} names {len(twins)} label values ({', '.join(map(str, twins))}): "
                             "rename them (--label-names) or give a point R,A,S in the one meant")
        if target not in inv:
            raise InputError(f"target structure {target!r} is not in the label map; it has "
                             f"{sorted(inv)} (or give a point as R,A,S in mm)")
        if is_outline(target):
            # new-user trial 95 F1: a biopsy "of body" (its deepest point) was planned and called compliant
            raise InputError(f"target {target!r} is the patient's outline (it holds every structure), not a "
                             "target: give the lesion's label name"
                             + (f" (lesion-like labels here: {', '.join(sorted(n for n in inv if names_a_lesion(n)))})"
                                if any(names_a_lesion(n) for n in inv) else "")
                             + " or a point R,A,S in mm inside it")
        mask = labels.array == inv[target]
        if not mask.any():
            raise InputError(f"target structure {target!r} has no voxels in the label map")
        return Target(deepest_point(labels, mask), target, int(inv[target]))
    p = np.asarray(target, float).ravel()
    if p.size != 3 or not np.all(np.isfinite(p)):   # e.g. argparse turns "--target=--" into an empty value
        raise InputError(f"the target must be a structure name or a point R,A,S in mm (three numbers), got {target!r}")
    if not labels.contains_world(p)[0]:
        raise InputError(f"target point {point_text(p)} (RAS mm) lies outside the image "
                         f"({labels.outside_text(p)})")
    value = int(labels.sample(p[None], order=0)[0])
    return Target(p, labels.labels.get(value, "point"), value, point_given=True)


def is_outline(name: str) -> bool:
    """True for the patient's outline, a container of every structure and so never a target or a
    tumour: planning_defaults ``unlabelled_organ.outline_names`` (body, body_trunc,
    body_extremities: TotalSegmentator's body task and IMAGIO's rule-based body) and ``skin``."""
    from .soft_tissue import limits

    return str(name) in set(limits()["outline_names"]) | {"skin"}


from ..anatomy import _named, is_bone, is_lesion  # noqa: E402,F401 (their home is anatomy: re-exported)


@dataclass
class PlanningProblem:
    """Everything the planner needs. ``body`` is the patient mask on the CT grid (bool);
    ``skin`` the outer-skin model (`imagio.planning.skin.SkinModel`); ``warnings`` every doubt
    about the inputs found while building (they travel into plan.json and the report);
    ``rules`` which organ/procedure rules apply and why; ``roles_overridden`` the user's
    role changes."""

    ct: Volume
    labels: Volume
    target: Target
    structures: list[StructureSpec]
    needle: Needle = field(default_factory=Needle)
    constraints: Constraints = field(default_factory=Constraints)
    weights: dict = field(default_factory=lambda: default_weights())
    body: np.ndarray | None = None
    skin: object = None
    warnings: list = field(default_factory=list)
    roles_overridden: dict = field(default_factory=dict)
    rules_extra: dict = field(default_factory=dict)
    structure_doubts: dict = field(default_factory=dict)   # `outline_doubts.structure_record`s of the label map
    labels_made_on: Volume | None = None   # the label map's own grid when it was resampled onto the CT's

    @classmethod
    def build(cls, ct: Volume, labels: Volume, target, needle: Needle | None = None,
              constraints: Constraints | None = None, roles: dict | None = None,
              weights: dict | None = None, body: np.ndarray | None = None,
              skin=None, registration_checked: bool = False) -> "PlanningProblem":
        """Check the inputs and assemble a problem. ``labels`` is resampled (nearest) onto the
        CT grid if needed; ``target`` is a structure name, a label value or an RAS point.
        ``body``: a patient mask on the CT grid to use instead of the CT's own (optional).
        ``skin``: an outer-skin model (`imagio.planning.skin.SkinModel`) of this CT grid to use
        instead of computing it (e.g. `skin.paint_keeps_skin` after a lesion was painted inside
        the body); its truncations are re-measured from this target. Without it the model comes
        from `skin.outer_skin`, cached per case (a second target on the same CT and labels
        reuses it). ``registration_checked``: the caller has checked that these labels are
        registered to this CT (`label_registration.require_registered`, 0.5-5 s) and said its
        doubt, or made them from this CT (the demo segments its phantom): not checked again
        (the sarcoma biopsy builds one problem per target tried).

        Raises InputError (one line, what to do) for: labels without names, a label map that
        does not cover the CT around the target or does not match it (solid structures over
        air), a CT without outer skin, a target outside the body, a target point inside a
        forbidden or margin structure."""
        from ..caching import content_token
        from .skin import for_target, outer_skin

        taken = []

        def ct_token():   # the CT's values' key, taken once per build (`caching.content_token`)
            if not taken:
                taken.append(content_token(ct.array))
            return taken[0]

        # a label map of another scan is named as such before its names are judged (trial 9)
        given, made_on = labels, None
        if not ct.same_grid(labels):
            covered = label_coverage(labels, ct)   # None: it covers the whole CT
            made_on, labels = labels, labels_on_grid(labels, ct)
        else:
            covered = None
        if not labels.labels:
            raise InputError("the label map has no structure names; give a .seg.nrrd, a label "
                             "image with a <stem>.labels.json sidecar, or --label-names")
        generic = check_structure_names(labels)
        # names the user typed, in the label map's spelling (its names are read in the catalogue's)
        roles = {anatomy.name_in(k, labels.labels.values()): v for k, v in (roles or {}).items()}
        if isinstance(target, str):
            target = anatomy.name_in(target, labels.labels.values())
        tgt = resolve_target(labels, target)
        ndl = needle or Needle()
        reach = ndl.widening_mm + 0.5 * float(np.linalg.norm(labels.spacing))
        labels, pieces = split_target_parts(labels, tgt, reach)
        pieces += _aim_at_solid_part(ct, labels, tgt)
        # the thin vessel branches as a patch, applied after the input checks that read only what it
        # keeps (issue 20: its 70 MiB copy of the 1 mm phantom's labels was held through the
        # registration check's peak); relabelled in place when the array is the planner's own
        split, calibre = calibre_split(labels, tgt, roles or {})
        owned = labels.array is not given.array and not np.may_share_memory(labels.array, given.array)
        if split is not None:
            labels = labels.with_array(labels.array, labels=split.names)   # the new names, no voxel yet
        specs = structure_specs(labels, roles)
        specs, kept_out, unknown, notes = _other_lesions_kept_out(specs, tgt, roles or {}, labels, reach)
        prob = cls(ct, labels, tgt, specs, needle or Needle(), constraints or Constraints())
        prob.warnings.extend(pieces + notes)
        # a target outline `imagio lesion` flagged (leaked, size withheld, ...): said first, and its
        # record kept in plan.json's rules (new-user trial 75 finding 0; `outline_doubts`)
        doubts = None if tgt.point_given else given.outline_doubts.get(tgt.name)
        flagged = target_warning(tgt.name, doubts)
        if flagged:
            prob.warnings.insert(0, flagged)
            prob.rules_extra["target_outline_doubts"] = doubts
        # what `imagio segment` could not tell apart (bone that may be a vein): said by the proposals
        # that pass near it (`outline_doubts.proposal_doubts`; trial 79)
        prob.structure_doubts = structure_doubts(given.outline_doubts)
        prob.roles_overridden = {k: (v if isinstance(v, str) else f"{v[0]}:{v[1]:g}")
                                 for k, v in (roles or {}).items() if k in labels.labels.values()}
        for name in roles or {}:   # an ignored role is said, and not recorded as applied
            if name not in labels.labels.values():
                prob.warnings.append(f"--role {name}: no structure {name!r} in the label map (ignored)")
            elif name == tgt.name and not tgt.point_given:
                prob.warnings.append(f"--role {name}: {name} is the target, which the needle always enters "
                                     "(its role is not used)")
        own = next((sp for sp in specs if sp.value == tgt.value), None) if not tgt.point_given else None
        if own is not None and not names_a_lesion(own.name) and (own.role == "margin" or never_target(own.name)):
            # a point there is refused (_check_target); a name is planned as asked (a direct
            # aortic puncture, a cholecystostomy), but said (new-user trial 39 L2)
            prob.warnings.append(f"the target {own.name} is a structure a needle otherwise never enters "
                                 f"({'a vessel or nerve kept at a margin' if own.role == 'margin' else 'never a target'}"
                                 "): planned to its centre as asked; a biopsy or ablation target is the lesion's own "
                                 "label, not this structure's")
        crossable = sorted(n for n in prob.roles_overridden if n in labels.labels.values()
                           and names_a_lesion(n)
                           and next(s.role for s in specs if s.name == n) == "passable"
                           and n != tgt.name)
        if crossable:
            prob.warnings.append(f"lesion(s) made passable by --role: {', '.join(crossable)}: paths may run "
                                 "through them (plan.json length_in_mm gives each path's mm in them)")
        role = _d("targets", "unknown_structure_role")
        for name in sorted(unknown):   # a TG-263 name of several structures is never read as one part
            parts = anatomy.group_without_catalogue_name(name)
            if parts:
                unknown.remove(name)
                prob.warnings.append(f"{name} is a radiotherapy (TG-263) name of several structures ({parts}) "
                                     f"that no one catalogue structure equals: kept out as {role}; if the "
                                     f"needle may cross it, give its role (--role {name}=passable, or "
                                     f"{name}=margin:MM)")
        if unknown:
            prob.warnings.append(f"structures not in IMAGIO's catalogue, kept out as {role} (each could be an "
                                 f"organ at risk): {', '.join(sorted(unknown))}; if the needle may cross one, "
                                 "give its role (--role NAME=passable, or NAME=margin:MM)")
        for v in generic:
            if v == tgt.value:   # the target is entered whatever its name (trial 28 M2)
                continue
            prob.warnings.append(f"label value {v} has no name: treated as forbidden (name it with "
                                 "--label-names to give it its role)")
        if weights:
            unknown = set(weights) - set(prob.weights)
            if unknown:
                raise InputError(f"unknown score weights {sorted(unknown)}; known: {sorted(prob.weights)}")
            prob.weights.update(weights)
        prob.skin = (outer_skin(ct, labels, target_ras=tgt.point_ras, ct_token=ct_token()) if skin is None
                     else for_target(skin, tgt.point_ras))
        prob.body = prob.skin.body if body is None else np.asarray(body, bool)
        if not prob.skin.skin.any():
            raise InputError("no outer skin in this CT: no air around the patient reaches the "
                             "lateral edge of the scan (field of view inside the body, or no air "
                             "in the image); entries cannot be placed")
        from ..segmentation.bones import coarse_grid_note

        coarse = coarse_grid_note(ct)   # ribs unseen by the labels and the density check (trial 29)
        if coarse:
            prob.warnings.append(f"{coarse}: a path may cross a rib that neither shows")
        prob.labels_made_on = made_on   # the map's own grid, for the registration check's floor
        _check_labels_match(prob, covered, registration_checked, ct_token())   # first: a wrong label map explains everything else
        if split is not None:
            # what the checks above read is the same with or without the thin branches: the outer
            # skin reads where the map is non-zero (`skin._fingerprint`), the label checks the
            # names' bone/air classes, anatomy and air-holding names, none a graded vessel's
            # (``vessel_calibre.graded_structures``; its ``<name>_small`` keeps the name's word)
            labels = prob.labels = split.apply(labels, in_place=owned)
        _check_target(prob)
        _lesion_cut_by_scan(prob)
        _refuse_lung_beyond_skin(prob, ndl.length_mm)
        tgt.organ = tgt.organ or host_organ(labels, tgt, prob)
        tgt.in_lung = target_in_lung(prob.labels, tgt)
        if tgt.point_given and not tgt.in_lung:   # a point in solid tissue beside the lung (trial 111)
            from .target_tissue import point_tissue

            tgt.tissue = point_tissue(prob.ct, prob.labels, tgt.point_ras)
            if tgt.tissue is not None and tgt.tissue.enclosed:
                tgt.in_lung = True
                prob.warnings.append(
                    f"the target point lies in solid tissue ({tgt.tissue.hu:.0f} HU, {tgt.tissue.volume_ml:.1f} mL) "
                    f"enclosed by {tgt.tissue.lung or 'the lung'} and not labelled as a lesion: read as an "
                    "intrapulmonary nodule, which a path from the lung enters without crossing the pleura; give its "
                    "outline (--lesions, or imagio lesion CT --point R,A,S) for its margins and size")
        _enter_host_organ(prob)
        # unlabelled dense tissue continuous with a labelled vessel is that vessel (trial 90 HIGH 1):
        # after the target organ is known (the density check's checked voxels)
        from .continuation import apply as vessel_continuations

        vessel_continuations(prob, given, ct_token())
        prob.warnings.extend(prob.skin.warnings())
        if calibre:
            prob.rules_extra["vessel_calibre"] = calibre
            # a lumen within a voxel of the split's calibre is kept large, and the plan says so
            prob.warnings.extend(v["undecided"]["warning"] for v in calibre.values() if v.get("undecided"))
        if kept_out:
            prob.rules_extra["other_lesions"] = {
                "kept_out": kept_out, "role": _d("targets", "other_lesion_role"),
                "why": _d("targets", "sources")["other_lesion_role"]}
        return prob

    @property
    def exempt_value(self) -> int:
        """Label value of the target lesion (or the organ named as the target), exempt from
        obstacle checks (0: none). Passable structures (liver, lung lobes, body) and the organ
        around a target point are never exempt: only the target itself is."""
        v = self.target.value
        if not v or self.target.point_given:
            return 0
        spec = next((s for s in self.structures if s.value == v), None)
        return 0 if spec is None or spec.role == "passable" else v

    def with_constraints(self, **kw) -> "PlanningProblem":
        return replace(self, constraints=replace(self.constraints, **kw))

    def specs_by_role(self, *roles) -> list[StructureSpec]:
        return [s for s in self.structures if s.role in roles]

    def hard_structures(self, bone: bool = True) -> list[StructureSpec]:
        """The structures the needle must not enter: role forbidden or margin, the target's own
        label (`exempt_value`) excepted; ``bone=False``: labelled bone (`is_bone`) excepted too
        (past the tip: bone stops a fired needle, `findings.beyond_tip`). The one definition the
        verifier's clearances (`verify.Verifier.hard`) and the check past the tip share."""
        ex = self.exempt_value
        return [s for s in self.structures if s.role in ("forbidden", "margin") and s.value != ex
                and (bone or not is_bone(s.name))]

    @property
    def rules(self) -> dict:
        """Which organ/procedure rules apply to this target (see `rule_table`)."""
        return self.rule_table()

    def rule_table(self) -> dict:
        """Which organ/procedure rules apply to this target, with the value and why; the roles
        the user overrode, the rules disabled, the vessel calibre split, the target organ entered."""
        c, organ = self.constraints, self.target.organ
        off = set(c.disabled_rules)
        liver = anatomy.is_liver(organ) and c.min_liver_parenchyma_mm > 0 and "liver_parenchyma" not in off
        return {
            "host_organ": organ or None,
            "liver_parenchyma": {"applies": liver, "min_mm": c.min_liver_parenchyma_mm,
                                 "why": ("target in the liver" if anatomy.is_liver(organ) else
                                         f"host organ is {organ or 'unknown'}, not the liver")
                                 if "liver_parenchyma" not in off else "disabled by --no-rule"},
            **{r: {"applies": r not in off} for r in OPTIONAL_RULES if r != "liver_parenchyma"},
            "disabled": sorted(off),
            "roles_overridden": dict(self.roles_overridden),
            **self.rules_extra,
        }


OPTIONAL_RULES = ("liver_parenchyma", "pleural_crossings", "fissure", "emphysema", "table_side",
                  "skin_angle", "craniocaudal", "entry_region")


def split_lesion_pieces(labels: Volume, value: int, near_point=None) -> tuple[Volume, str, np.ndarray | None]:
    """(labels, warning, kept piece mask or None): a lesion label of separate pieces (26-connected;
    one "tumor" label holding several tumours, as LiTS and TotalSegmentator's liver_tumor and
    lung_nodules write them) is several lesions. One piece keeps the label value (the one
    nearest ``near_point``, RAS mm, else the largest); every other piece becomes its own
    structure ``<name>_part<n>`` with a new value. ``labels`` is a new Volume when the label was
    split (the input is never modified); ("" and None when it is one piece). Only the kept
    piece: `kept_lesion_piece`."""
    pieces = _lesion_pieces(labels, value, near_point)
    if pieces is None:
        return labels, "", None
    comp, n, keep, others, msg = pieces
    names = dict(labels.labels)
    nxt = int(max(names)) + 1
    new = np.zeros(n + 1, np.int64)
    new[others] = nxt + np.arange(len(others))
    arr = labels.array.astype(np.promote_types(labels.array.dtype, np.min_scalar_type(nxt + n)), copy=True)
    moved = (comp > 0) & (comp != keep)
    arr[moved] = new[comp[moved]]
    for i in range(len(others)):
        names[int(nxt + i)] = _part_name(labels.labels[value], i)
    return labels.with_array(arr, labels=names), msg, comp == keep


def kept_lesion_piece(labels: Volume, value: int, near_point=None) -> tuple[np.ndarray | None, str]:
    """(kept piece mask or None, warning) of `split_lesion_pieces` without the relabelled copy of
    the label map: for a caller that needs only the piece aimed at."""
    pieces = _lesion_pieces(labels, value, near_point)
    if pieces is None:
        return None, ""
    comp, _, keep, _, msg = pieces
    return comp == keep, msg


def _part_name(name: str, i: int) -> str:
    """The name `split_lesion_pieces` gives the ``i``-th (0-based) piece other than the kept one."""
    return f"{name}_part{i + 2}"


def _lesion_pieces(labels: Volume, value: int, near_point):
    """(26-connected components of the label, their number n, the kept one (1..n), the others
    (array), warning) for a label of separate pieces (`split_lesion_pieces`); None for one piece."""
    import cc3d

    name = labels.labels[value]
    mask = labels.array == value
    comp, n = cc3d.connected_components(mask, connectivity=26, return_N=True)
    if n <= 1:
        return None
    vox_ml = float(np.prod(labels.spacing)) / 1000.0
    sizes = np.bincount(comp.reshape(-1), minlength=n + 1)[1:]
    if near_point is not None:
        kji = np.argwhere(mask)
        d = np.linalg.norm(labels.kji_to_world(kji.astype(float)) - np.asarray(near_point, float), axis=1)
        keep = int(comp[tuple(kji[int(np.argmin(d))])])
    else:
        keep = _largest_piece(labels, comp, n, sizes)
    others = np.array([c for c in range(1, n + 1) if c != keep])
    parts = [f"{_part_name(name, i)} ({sizes[c - 1] * vox_ml:.2f} mL)" for i, c in enumerate(others)]
    if len(parts) > 8:
        parts = parts[:8] + [f"and {len(parts) - 8} more"]
    which = "the piece nearest the target point" if near_point is not None else "the largest piece"
    return (comp, n, keep, others,
            f"{name} is {n} separate pieces: {which} ({sizes[keep - 1] * vox_ml:.2f} mL) keeps the name; the others "
            f"are other lesions, kept out: {', '.join(parts)}; to aim at another, give a point in it")


def _largest_piece(vol: Volume, comp: np.ndarray, n: int, sizes: np.ndarray) -> int:
    """Label (1..n) of the largest piece of ``comp``; equal sizes by the world order of their
    centroids (`world_order.largest_first_in_world_order`), never by the array's order."""
    from scipy import ndimage

    from ..world_order import largest_first_in_world_order

    cents = np.asarray(ndimage.center_of_mass(np.ones(comp.shape, bool), comp, np.arange(1, n + 1)), float)
    return largest_first_in_world_order(sizes, vol.kji_to_world(cents)) + 1


def split_target_parts(labels: Volume, target: Target, reach_mm: float = 0.0) -> tuple[Volume, list[str]]:
    """Lesion labels of separate pieces (`split_lesion_pieces`) around the target: the target's
    own label (the plan aims at the piece holding a target point, else at the largest, and
    ``target.point_ras`` moves to its deepest point), and, for a target point in no lesion, every
    lesion label with a voxel centre within ``reach_mm`` of it (the piece nearest the point may
    be the one aimed at, `_other_lesions_kept_out`). The other pieces are other lesions, kept
    out. Without this the target was the union's centroid, or the whole label was exempt near a
    point, and paths ran through the other tumour (new-user trials 21 and 22).
    Returns (labels, warnings)."""
    if target.value and is_lesion(target.name):
        labels, msg, kept = split_lesion_pieces(labels, target.value,
                                                target.point_ras if target.point_given else None)
        if msg and not target.point_given:
            target.point_ras = deepest_point(labels, kept)
        return labels, [msg] if msg else []
    if not target.point_given or reach_mm <= 0:
        return labels, []
    out = []
    for v in sorted(_distances_near_point(labels, target.point_ras, reach_mm)):
        name = labels.labels.get(v, "")
        if v and names_a_lesion(name):
            labels, msg, _ = split_lesion_pieces(labels, v, target.point_ras)
            out += [msg] if msg else []
    return labels, out


def split_vessels_by_calibre(labels: Volume, target: Target, roles: dict) -> tuple[Volume, dict]:
    """Vessel trees of mixed calibre (``vessel_calibre.graded_structures`` in planning_defaults,
    e.g. lung_vessels) split by lumen diameter: the part with a lumen diameter >= the sourced
    ``hard_min_diameter_mm`` keeps the structure's role and margin; thinner branches become a new
    structure ``<name>_small`` with role ``small_role`` (a cost, not a keep-out).
    `calibre_split` (the split as a patch) applied to a copy of ``labels``. Returns (labels,
    {name: summary}); ``labels`` is a new Volume when anything was split (the input is never
    modified)."""
    split, out = calibre_split(labels, target, roles)
    return (labels if split is None else split.apply(labels)), out


@dataclass
class CalibreSplit:
    """The thin branches `calibre_split` found, as a patch of a label map (no copy of it):
    ``names`` the label names with the new ``<name>_small`` structures; ``parts`` one
    (box: 3 slices [k, j, i] of the whole array, mask: bool of the box's shape, value) per split
    structure: the box's voxels under ``mask`` take ``value``; ``max_value`` the largest."""

    names: dict
    parts: list
    max_value: int

    def apply(self, labels: Volume, in_place: bool = False) -> Volume:
        """``labels`` (the map the split was computed on, same grid) with the thin branches
        relabelled, under ``names``. A copy unless ``in_place`` (the caller owns the array: the
        planner's own resampled or lesion-split copy; never the user's array) and its dtype holds
        ``max_value`` (else a copy: uint16 for an 8-bit map whose new values reach 255, as
        before, else the smallest type that holds them)."""
        arr = labels.array
        dt = np.dtype(np.uint16) if arr.dtype.itemsize < 2 and self.max_value >= 255 else arr.dtype
        dt = np.promote_types(dt, np.min_scalar_type(self.max_value))
        if not (in_place and dt == arr.dtype and arr.flags.writeable):
            arr = arr.astype(dt, copy=True)
        for box, mask, value in self.parts:
            arr[box][mask] = value
        return labels.with_array(arr, labels=self.names)


def calibre_split(labels: Volume, target: Target, roles: dict) -> tuple[CalibreSplit | None, dict]:
    """The calibre split of `split_vessels_by_calibre`, as a patch: (`CalibreSplit` or None when
    no thin branch was found, {name: summary}). ``labels`` is not modified nor copied (issue 20:
    the planner held a 70 MiB copy of the 1 mm phantom's labels through its input checks).

    Lumen diameter at the centreline = 2 x the Euclidean distance (anisotropic EDT, mm) from the
    voxel centre to the nearest voxel centre outside the vessel, minus one voxel (that distance
    overshoots the wall by half a voxel on average); propagated to the whole lumen: a voxel
    belongs to a vessel of diameter >= D when it lies within the radius of a centreline voxel
    of diameter >= D (a morphological opening, from two EDTs). That figure reads a round lumen
    0.9-1.5 voxels short: a centre voxel whose section-area calibre (unbiased, known to a voxel)
    reaches D, or lies within a voxel below it, is large too, and the latter is said
    (``undecided`` in its summary, a plan warning: `graded_lumen`; new-user trial 113 V2b).
    Only within needle reach of the target; never on the target lesion; a structure whose role
    the user set (--role) is left whole."""
    cfg = load_defaults()["vessel_calibre"]
    dmin = float(cfg["hard_min_diameter_mm"])
    inv = {n: v for v, n in labels.labels.items()}
    todo = [n for n in cfg["graded_structures"] if n in inv and n not in roles and inv[n] != target.value]
    if not todo:
        return None, {}
    reach = float(load_defaults()["needle"]["length_mm"]) + CALIBRE_BOX_EXTRA_MM
    lo, hi = reach_box(labels, target.point_ras, reach)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    names = dict(labels.labels)
    sub = labels.array[sl]   # read only
    an = tuple(float(x) for x in labels.spacing_kji)
    out, parts = {}, []
    nxt = int(max(names) if names else 0) + 1
    for n in todo:
        full = sub == inv[n]
        if not full.any():
            continue
        # both distance transforms in the vessel's bounding box + one voxel of background: the
        # nearest outside voxel and the nearest core voxel (core within the vessel) lie in it
        box = ndimage.find_objects(full.view(np.uint8))[0]
        vb = tuple(slice(max(b.start - 1, 0), min(b.stop + 1, n_)) for b, n_ in zip(box, full.shape))
        m = full[vb]
        large, undecided = graded_lumen(m, an, dmin, n)
        small = m & ~large
        if small.any():
            small_name = f"{n}{CALIBRE_SMALL_SUFFIX}"
            names[nxt] = small_name
            parts.append((tuple(slice(a + b.start, a + b.stop) for a, b in zip(lo, vb)), small, nxt))
            nxt += 1
        out[n] = {"hard_min_diameter_mm": dmin, "large_ml": round(float(large.sum()) * labels.voxel_volume_ml, 2),
                  "small_ml": round(float(small.sum()) * labels.voxel_volume_ml, 2),
                  "small_structure": small_name if small.any() else None, "small_role": cfg["small_role"]}
        if undecided:
            out[n]["undecided"] = undecided
    if not parts:
        return None, out
    return CalibreSplit(names, parts, nxt - 1), out


def large_lumen(mask: np.ndarray, spacing_kji, dmin_mm: float, extra_centres=None) -> np.ndarray:
    """Bool [k, j, i]: the voxels of the vessel ``mask`` (bool [k, j, i], voxels ``spacing_kji``
    mm) that belong to a lumen of diameter >= ``dmin_mm``: every voxel within the radius of a
    centreline ball of that diameter (a morphological opening from two anisotropic EDTs, mm; the
    one lumen-diameter definition: `segmentation.vessels.edt_for_diameter`), + one voxel so that
    the wall voxels of a large vessel stay large (the safe side). The mask's array border is not
    background (``black_border=False``): a vessel cut by a box stays as thick as it is inside.
    `calibre_split`'s grading and `continuation`'s.

    The two EDT thresholds are `segmentation.ballmorph`'s ball erosion and dilation (the same
    voxels as thresholding ``edt``'s maps: its module doc and tests; issue 20: two float32
    distance passes over each vessel's box, 0.16 CPU-s per vessel on the chest CTA, replaced by
    bit operations): the centre voxels, ``edt(mask) >= r_min``, are those with no outside voxel
    at an ``edt`` distance below ``r_min``, i.e. at most the largest float32 below it (``edt``'s
    distances are float32), the erosion by that radius; the lumen is the dilation of the centre
    by ``r_min + max(spacing) + 1e-3`` (``edt(~core) <=`` it), ANDed with the mask (tested
    against the two ``edt`` passes, ties on isotropic grids included). ``extra_centres`` ([n, 3]
    kji): centre voxels added to the core (`graded_lumen`'s, whose section calibre reaches
    ``dmin_mm`` within its uncertainty)."""
    from ..segmentation.ballmorph import dilate_ball, erode_ball
    from ..segmentation.vessels import edt_for_diameter

    an = tuple(float(x) for x in spacing_kji)
    mask = np.asarray(mask, bool)
    r_min = edt_for_diameter(dmin_mm, an)
    below = np.float32(r_min)                    # the largest float32 below r_min
    if float(below) >= r_min:
        below = np.nextafter(below, np.float32(-np.inf))
    core = erode_ball(mask, float(below), an)
    if extra_centres is not None and len(extra_centres):
        core[tuple(np.asarray(extra_centres, int).T)] = True
    if not core.any():
        return np.zeros_like(mask, dtype=bool)
    out = dilate_ball(core, r_min + max(an) + 1e-3, an)
    out &= mask
    return out


def graded_lumen(mask: np.ndarray, spacing_kji, dmin_mm: float, name: str = "the vessel") -> tuple[np.ndarray, dict | None]:
    """(large, undecided): `large_lumen` of the vessel ``mask`` where the lumen's calibre decides.
    The inscribed figure (`large_lumen`'s core) reads a round lumen 0.9-1.5 voxels short
    (`segmentation.vessels.diameter_from_edt`: new-user trial 113 V2b, a 5 mm liver vessel on a
    coarse grid read 2.9 mm and was filed as thin); the centre voxels below it whose section-area
    calibre (`segmentation.vessels.centre_calibres`: unbiased, known to one voxel) reaches
    ``dmin_mm`` are large too, with their lumen (dilated by the core's radius + one voxel: a centre
    below ``r_min`` holds no wider lumen). Centres whose calibre lies within a voxel below ``dmin_mm``
    (`segmentation.calibre.undecided`) stay thin branches (a cost, not a keep-out) and are said:
    kept out, every branch of a 1.5 mm grid (whose thinnest line reads 1.7 mm) and of 5 mm sections
    would be, and no deep lung target would have a path (calibre115 on the chest CTA and lung1);
    the heat sink and eligibility, whose larger class blocks nothing, take them as the larger.
    ``undecided``: None, or {"calibre_mm" / "least_calibre_mm": the largest / least calibre of those
    below ``dmin_mm`` (within a voxel of it), "voxel_mm", "centres": how many, "warning": its words}."""
    from ..segmentation import calibre
    from ..segmentation.vessels import centre_calibres

    an = tuple(float(x) for x in spacing_kji)
    mask = np.asarray(mask, bool)
    kji, cal, ins = centre_calibres(mask, an, least_mm=dmin_mm - calibre.uncertainty_mm(an))
    new = (ins < dmin_mm) & (cal >= dmin_mm)
    und = (ins < dmin_mm) & calibre.undecided(cal, dmin_mm, an)
    note = None
    if und.any():
        top, least = float(cal[und].max()), float(cal[und].min())
        note = {"calibre_mm": round(top, 2), "least_calibre_mm": round(least, 2),
                "voxel_mm": round(calibre.uncertainty_mm(an), 3), "centres": int(und.sum()),
                "warning": f"{name}: {int(und.sum())} centre voxel(s): " + calibre.undecided_words(
                    (least, top), dmin_mm, an, f"{name}{CALIBRE_SMALL_SUFFIX} (a cost, not a keep-out)")
                + f": a path through them may cross a vessel of {dmin_mm:g} mm or more; read the CT along the "
                  "proposals"}
    return large_lumen(mask, an, dmin_mm, extra_centres=kji[new]), note


def _check_target(prob: "PlanningProblem") -> None:
    """Refuse a target outside the body or a target point inside a forbidden/margin structure."""
    t, ct = prob.target, prob.ct
    kji = ct.nearest_kji(t.point_ras[None])[0]
    inside = bool(np.all((kji >= 0) & (kji < ct.shape)))
    if not inside:
        raise InputError(f"target {t.name} at {np.round(t.point_ras, 1).tolist()} (RAS mm) lies "
                         "outside the CT; check the coordinates (RAS, as in Slicer)")
    if not prob.skin.data[tuple(kji)]:
        _target_on_outer_layer(prob, kji)
    if not prob.body[tuple(kji)]:
        from ..limits import GAS_MEDIAN_HU

        hu = _median_around(ct, kji)
        if hu > GAS_MEDIAN_HU:   # denser than outside air: aerated lung (trial 13 M1, a small field of view)
            raise InputError(f"target at {np.round(t.point_ras, 1).tolist()} (RAS mm) lies in air of lung density "
                             f"(median {hu:.0f} HU around it; outside air is below {GAS_MEDIAN_HU:.0f}) that the body "
                             "outline leaves out: where the field of view cuts the lungs they open to the image's faces, "
                             "and with no lung labelled there they pass for outside air; label the lungs (imagio segment, "
                             "or by hand) and plan again, or check the point (RAS, as in Slicer; --lps for LPS)")
        raise InputError(f"target at {np.round(t.point_ras, 1).tolist()} (RAS mm) lies outside "
                         f"the body (air around the patient, {hu:.0f} HU); check the point "
                         "(RAS, as in Slicer; --lps for LPS)")
    if t.point_given and _outside_label_body(prob.labels, kji):
        # the label map's own patient outline leaves the point out while the CT's outline takes
        # it in: the two disagree there (trial 30 H2: a view inside a lung whose segmentation left
        # the lung out; the point in a vessel among lung air, the pleura taken as skin)
        hu = _median_around(ct, kji)
        raise InputError(f"target at {np.round(t.point_ras, 1).tolist()} (RAS mm) lies outside the label "
                         f"map's body ({hu:.0f} HU around it): the label map leaves this region out of the "
                         "patient (a lung left out of a field of view inside the chest?); label it (imagio "
                         "segment, or by hand) and plan again, or check the point (RAS, as in Slicer; --lps for LPS)")
    if t.point_given:
        _refuse_blood_pool_target(prob, kji)
        _warn_target_in_aerated_lung(prob, kji)
    if t.point_given and t.value:
        spec = next((s for s in prob.structures if s.value == t.value), None)
        if spec is None or spec.role not in ("forbidden", "margin"):
            return
        if spec.role == "margin" or never_target(spec.name):
            raise InputError(f"target point lies inside {spec.name} (role {spec.role}): a needle "
                             f"may not end there; give the lesion's label as --target, or "
                             f"--role {spec.name}=passable to plan into it")
        if is_bone(spec.name):   # bone biopsy: only the target's piece, entered once
            _enter_target_bone(prob, spec)
            return
        # a point in a solid organ that is an obstacle by default (kidney): that organ is the
        # target organ; the path may enter it, everything else keeps its role
        prob.structures = [replace(s, role="passable") if s.value == spec.value else s
                           for s in prob.structures]
        prob.warnings.append(f"target point inside {spec.name} (an obstacle by default): the path "
                             f"may enter {spec.name}; every other structure keeps its role")
        prob.rules_extra["target_organ_entered"] = spec.name


def _aim_at_solid_part(ct: Volume, labels: Volume, t: Target) -> list[str]:
    """Warnings on the tissue at a named target's point (a point target has its own checks in
    `_check_target`), which is moved when it is air (`outline_tissue`). New-user trial 36 H2: the
    centroid of a cavitating nodule lay in the cavity and the needle tip was planned in air,
    without a word. Both ``ct`` and ``labels`` on the CT grid."""
    if t.point_given or not t.value:
        return []
    out, moved = outline_tissue(ct, labels.array == t.value, t.name, t.point_ras, contrast=contrast_phase(ct, labels))
    if moved is not None:
        t.point_ras = moved
    return out


def contrast_phase(ct: Volume, labels: Volume | None, pool: bool = False) -> bool | None:
    """Whether ``ct`` is contrast-enhanced as its labelled vessels tell (True/False), or None when
    no vessel is labelled: the median HU of the labels naming an artery, a vein, the aorta, a
    vena cava or the rules' contrast blood pool (great_vessels, `rules.segment_masks`) against
    sarcoma_biopsy.json ``viable.min_contrast_vessel_hu``
    (`sarcoma.viable.contrast_enhanced`: enhanced blood reads above it, unenhanced blood 30-60
    HU). ``labels`` on ``ct``'s grid. ``pool``: when no vessel is labelled, the CT's own contrast
    blood pool rule decides (`blood_pool.contrast_pool_band`, as `imagio segment` and `detect`
    read "contrast CT": True with a pool, False without: a CT without contrast, or a portal-venous
    or later phase, whose blood does not reach the pool's density);
    for a CT holding the heart and great vessels (a chest CT), 0.1-2 CPU-s."""
    seen = None
    if labels is not None:
        from .sarcoma.viable import contrast_enhanced

        words = ("artery", "vein", "aorta", "vena_cava", "great_vessels")
        vessels = [v for v, n in labels.labels.items() if any(w in n for w in words)]
        seen = contrast_enhanced(ct, labels, vessels)
    if seen is None and pool:
        from ..segmentation.blood_pool import contrast_pool_seen

        seen = contrast_pool_seen(ct)   # = contrast_pool_band(ct) is not None
    return seen


def _solid_part(contrast: bool | None) -> str:
    """What to aim at in a lesion with a fluid centre, worded by the CT's phase (`contrast_phase`)."""
    if contrast:
        return "the solid, enhancing part (a contrast CT: the viable tumour enhances)"
    if contrast is False:
        return "the solid part, denser than fluid (a non-contrast CT: which part enhances cannot be seen)"
    return "the solid part, denser than fluid (the contrast phase is not known)"


def outline_tissue(ct: Volume, mask: np.ndarray, name: str, point_ras, fluid: bool = True, move: bool = True,
                   flags: str = "--labels, --lesions", contrast: bool | None = None):
    """(warnings, moved point RAS or None) on the tissue of a lesion outline ``mask`` (bool [k, j, i]
    on ``ct``'s grid) at its target point ``point_ras`` (its centre); the needle planner's and the
    bronchoscopy planner's one check of a named target (new-user trial 39 H4: `bronch` planned to an
    outline over plain aerated lung, median -827 HU, without a word).
    - More than half of the outline air: said (not a lesion, or drawn too wide).
    - Below ground glass's lower bound (lesion.json, Hansell 2008) but not gas (median of the
      3 x 3 x 3 voxels at or above ``GAS_MEDIAN_HU``, -950 HU): a faint ground-glass nodule or
      aerated lung, said; the target stays at the centre.
    - Gas (median below ``GAS_MEDIAN_HU``: a cavity's air): the target moves to the deepest point
      (`deepest_point`) of the outline's soft tissue, from that bound up to the dense limit
      (`density.dense_min_hu`: contrast-filled vessel, calcification, bone), as the sarcoma planner
      aims at its viable map; said, with the share of the outline that reads air. An outline of
      air only is said (no lesion is seen in it). ``move`` False: said, the point is not moved (a
      bronchoscopy measures to the outline's surface, not to a tip).
    - Fluid (``fluid``; above fat, ``viable.fat_max_hu``, and at most ``viable.necrosis_max_hu``,
      simple fluid -9 to 20 HU: Bosniak v2019, sarcoma_biopsy.json): a cystic or necrotic centre,
      said (which part enhances needs the contrast phase: the point is left to the user). The
      advice names the part to aim at by the CT's phase, ``contrast`` (`contrast_phase`): the
      enhancing part on a contrast CT, the solid (soft-tissue) part on a non-contrast one or when
      not known (trial 56 L3: "enhancing" was said on a non-contrast CT).
    ``flags``: the command's options that give the outline (said in the warnings)."""
    point_ras = np.asarray(point_ras, float)
    kji = ct.nearest_kji(point_ras[None])[0]
    if not np.all((kji >= 0) & (kji < ct.shape)):
        return [], None   # refused by the callers' own checks
    from ..limits import GROUND_GLASS_MIN_HU as low
    from .density import dense_min_hu
    from .sarcoma.viable import config as sarcoma_config

    hu = _median_around(ct, kji)
    where = f"[{', '.join(f'{x:.1f}' for x in point_ras)}]"
    fl = sarcoma_config()["viable"]
    if fluid and fl["fat_max_hu"] < hu <= fl["necrosis_max_hu"]:
        return [f"the target point of {name} (its centre, {where}) reads fluid (median {hu:.0f} HU around it; simple "
                f"fluid measures -9 to {fl['necrosis_max_hu']:.0f} HU, Bosniak v2019): a cystic or necrotic centre "
                f"gives a non-diagnostic sample; aim at {_solid_part(contrast)}: give a point there as --target"], None
    air_pct = 100.0 * np.count_nonzero(mask & (ct.array < low)) / max(np.count_nonzero(mask), 1)
    if hu >= low:
        like = _outline_like_its_surroundings(ct, mask) if air_pct > 50.0 else ""
        if like:
            return [f"no lesion is seen in the outline of {name} ({air_pct:.0f} % of it reads air): {like}; a "
                    "displaced outline (another series, a wrong origin) or a wrong one: check it against the CT "
                    f"({flags}) before planning; the target is its centre"], None
        return ([] if air_pct <= 50.0 else [
            f"{air_pct:.0f} % of the outline of {name} reads air (below ground glass's {low:.0f} HU, Hansell 2008): "
            "aerated lung or an airway inside the outline, or an outline drawn too wide; check the outline "
            f"({flags}): the target is its centre"]), None
    from ..limits import GAS_MEDIAN_HU

    if hu >= GAS_MEDIAN_HU:
        # lung or ground-glass density, not a cavity's gas: a faint ground-glass nodule reads
        # down to about -800 HU; its centre is where a biopsy aims (trial 38 M2: a -760 HU nodule's
        # target was moved 9.9 mm to its rim)
        like = _outline_like_its_surroundings(ct, mask)
        if like:
            return [f"no lesion is seen in the outline of {name}: {like}; a displaced outline (another series, a "
                    f"wrong origin) or a wrong one: check it against the CT ({flags}) before planning; "
                    "the target is its centre, in aerated lung"], None
        return [f"the centre of {name} ({where}) reads {hu:.0f} HU (median around it), below ground glass's "
                f"{low:.0f} HU (Hansell 2008) but not gas: a faint ground-glass nodule, or aerated lung inside an "
                f"outline drawn too wide ({air_pct:.0f} % of the outline reads air); check the outline "
                f"({flags}): the target is its centre"], None
    solid = mask & (ct.array >= low) & (ct.array <= dense_min_hu())
    why = (f"the centre of {name} ({where}) reads air (median {hu:.0f} HU around it, below ground glass's {low:.0f} HU, "
           f"Hansell 2008; {air_pct:.0f} % of its outline is air: a cavity, or aerated lung or an airway inside the outline)")
    if not solid.any():
        return [f"{why}, and none of it is soft tissue: no lesion is seen in the outline and the needle would end in "
                f"air; check the outline ({flags}) or give the lesion's point as --target"], None
    if not move:
        return [f"{why}: check the outline ({flags})"], None
    moved = deepest_point(ct, solid)
    return [f"{why}: the target is moved to the deepest point of its soft tissue ({low:.0f} to {dense_min_hu():.0f} HU) "
            f"at [{', '.join(f'{x:.1f}' for x in moved)}], {np.linalg.norm(moved - point_ras):.1f} mm from the "
            "centre, so the tip does not end in air; check the outline"], moved


def _outline_like_its_surroundings(ct: Volume, mask: np.ndarray, shell_mm: float = 3.0) -> str:
    """Words saying that an outline ``mask`` (CT grid) reads as the tissue around it, or ''. A
    lesion is seen as attenuation different from the lung around it (ground glass is increased
    attenuation over the lung: Hansell 2008); an outline whose median lies within the
    interquartile range of the aerated lung (below airway_limits ``mask_on_air.max_median_hu``, -500 HU:
    at least half air by partial volume, the registration check's air class) in a ``shell_mm`` shell around
    it (from one voxel outside, where partial volume with the outline's edge ends) holds nothing the CT tells from its surroundings (new-user
    trial 39 M1: a nodule outline 15 mm off its nodule, 95 % aerated lung, was planned as "a
    faint ground-glass nodule")."""
    import edt

    kji = np.argwhere(mask)
    if not len(kji):
        return ""
    sp = ct.spacing_kji
    pad = np.ceil((shell_mm + float(sp.max())) / sp).astype(int) + 1
    lo = np.maximum(kji.min(0) - pad, 0)
    hi = np.minimum(kji.max(0) + pad + 1, ct.shape)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    from ..limits import AERATED_MAX_HU

    d = edt.edt(~mask[sl], anisotropy=tuple(float(x) for x in sp), black_border=False)
    a = ct.array[sl]
    # the lung around it only: a juxtapleural or perivascular outline's shell also holds chest wall
    # or vessel, whose HU would widen the range over any ground glass (review 39 M1)
    shell = (d > float(sp.max()) + 1e-3) & (d <= float(sp.max()) + shell_mm) & (a < AERATED_MAX_HU)
    if np.count_nonzero(shell) < 20:
        return ""
    inside = float(np.median(a[mask[sl]]))
    q1, q3 = (float(v) for v in np.percentile(a[shell], [25, 75]))
    if not q1 <= inside <= q3:
        return ""
    return (f"its median {inside:.0f} HU lies within the {q1:.0f} to {q3:.0f} HU (interquartile range) of the "
            f"{shell_mm:g} mm around it")


def _median_around(ct: Volume, kji) -> float:
    """Median HU of the 3 x 3 x 3 voxels around the voxel ``kji`` of ``ct`` (cut at the array's faces)."""
    return float(np.median(ct.array[tuple(slice(max(k - 1, 0), k + 2) for k in kji)]))


def _warn_target_in_aerated_lung(prob: "PlanningProblem", kji) -> None:
    """`point_in_aerated_lung`'s warning for the plan's point target (voxel ``kji`` of the CT)."""
    prob.warnings += point_in_aerated_lung(prob.ct, prob.labels, prob.ct.kji_to_world(np.asarray(kji, float)[None])[0])


POINT_IN_AERATED_LUNG = "the target point lies in aerated lung"   # how `point_in_aerated_lung`'s warning begins


def with_frame_question(warnings: list[str], ct: Volume, text, lps: bool) -> list[str]:
    """``warnings`` with the `point_in_aerated_lung` warning of the point target ``text`` (as typed,
    read under ``lps``) ending in `imagio.coords.other_frame_hint`'s question where it applies: the
    same numbers read in the other frame lie in tissue ("... did you mean --lps?"). New-user trial
    111: a nodule's L,P,S centre typed as R,A,S landed in aerated lung, and the warning only said
    "check the point", although the mirrored reading lies in the nodule."""
    from ..coords import is_point, other_frame_hint, parse_point

    if not is_point(text) or not any(w.startswith(POINT_IN_AERATED_LUNG) for w in warnings):
        return warnings
    hint = other_frame_hint(ct, parse_point(text, lps), lps)
    return [f"{w}; {hint}" if hint and w.startswith(POINT_IN_AERATED_LUNG) else w for w in warnings]


def point_in_aerated_lung(ct: Volume, labels: Volume | None, point_ras, tool: str = "needle") -> list[str]:
    """[a warning] when the point target ``point_ras`` (RAS mm) lies in aerated lung: the median of
    its 3 x 3 x 3 CT voxels is below ground glass's lower bound (``ground_glass_min_hu`` of
    lesion.json, -700 HU, Hansell 2008) and the label map ``labels`` (any grid; None: none) names
    no lesion there (unlabelled, or a lung label). A needle or a scope aimed there samples air (new-user
    trial 34 F1: a point at -846 HU in the chest CTA's right lung was planned as 'lung_right',
    102.6 mm, without a word; trial 39 H4: the same in `bronch`). A warning, not a refusal: a faint
    ground-glass nodule may lie a little below the bound. ``tool`` names what would end there ("needle"
    for a percutaneous plan, "scope" for a bronchoscopic route; trial 78). [] when the point is
    outside the CT."""
    from ..limits import GROUND_GLASS_MIN_HU as low

    p = np.asarray(point_ras, float).reshape(1, 3)
    kji = ct.nearest_kji(p)[0]
    if not np.all((kji >= 0) & (kji < ct.shape)):
        return []
    hu = _median_around(ct, kji)
    if hu >= low:
        return []
    name = ""
    if labels is not None:
        lk = labels.nearest_kji(p)[0]
        v = int(labels.array[tuple(lk)]) if np.all((lk >= 0) & (lk < labels.shape)) else 0
        name = str(labels.labels.get(v, "")) if v else ""
    if name and name not in AERATED_LUNG:
        return []
    return [f"{POINT_IN_AERATED_LUNG} (median {hu:.0f} HU around it, below ground "
            f"glass's {low:.0f} HU, Hansell 2008), {'in ' + name if name else 'unlabelled'}: no "
            f"lesion is seen there and the {tool} would end in air; click the lesion, give its label as "
            "--target or --lesions, or check the point (RAS, as in Slicer; --lps for LPS)"]


def _outside_label_body(labels: Volume, kji) -> bool:
    """Whether the voxel ``kji`` lies outside the label map's patient: the map names a 'body'
    and the voxel is unlabelled in a region of unlabelled voxels that reaches the edge of the
    image within its axial slice (as `skin.outer_skin` finds the air around the patient), so no
    label encloses it in that slice. An unlabelled organ inside the body (a vessel left
    unlabelled, cut by the first or last slice) is enclosed in its slice and not outside."""
    from ..segmentation.common import anatomical_axes

    if not any(str(n).lower() == "body" for n in labels.labels.values()):
        return False
    if labels.array[tuple(kji)]:
        return False
    sup = anatomical_axes(labels)["S"][0]
    free = np.take(labels.array, int(kji[sup]), axis=sup) == 0
    lab, _ = ndimage.label(free)
    c = lab[tuple(int(kji[a]) for a in range(3) if a != sup)]
    return bool(np.isin(c, np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])))


def _refuse_lung_beyond_skin(prob: "PlanningProblem", reach_mm: float) -> None:
    """Refuse a plan whose entry surface, within the needle's reach of the target, faces lung
    instead of the air around the patient (trial 30 H2: on an 80 mm view inside the chest CTA's
    left lung whose label map left the lung out, the pleura was taken as skin and a 1.5 mm
    "needle" from it into the lung was proposed, exit 0, no word).

    The air beyond the outer skin (`skin.outer_skin`'s exterior air, 6-connected pieces within
    ``reach_mm`` of the target that border skin) is lung when it is as the lung field of a view
    inside the chest (`segmentation.body.lung_field_air`, the same two tests): parenchyma-dense
    (`segmentation.body.parenchyma_air`: median above ``GAS_MEDIAN_HU``, at least
    ``MIN_LUNG_ML``), carrying the vessel tree (``lung_vessel_min_fraction`` of vessel-like
    islands) and bordered by tissue that is not skin over subcutaneous fat
    (`segmentation.body.lung_beyond_wall`). Then the body outline is wrong,
    every entry, depth and distance of a plan with it too: refused, not warned (one line, what
    to do), because no proposal on that surface can be trusted."""
    import cc3d

    from ..segmentation.body import lung_beyond_wall, parenchyma_air
    from ..segmentation.common import label_counts

    ct = prob.ct
    lo, hi = reach_box(ct, prob.target.point_ras, reach_mm)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    skin = np.asarray(prob.skin.skin[sl])
    if not skin.any():
        return
    ext = np.asarray(prob.skin.exterior[sl])
    lab, n = cc3d.connected_components(ext, connectivity=6, return_N=True)
    if n == 0:
        return
    # cc3d's unsigned labels kept, counted in chunks (issue 20: the int64 copy of the reach box and
    # bincount's own were 274 MiB on the 1 mm phantom, the first proposals' peak once the vessel
    # split's copy moved after the registration check); the same labels and counts
    counts = label_counts(lab, n)
    a = ct.array[sl]
    cand = parenchyma_air(ct, a, lab, counts)   # first: the usual CT (outside air all round) ends here
    if not cand.any():
        return
    near = np.zeros(n + 1, bool)
    near[np.unique(lab[ndimage.binary_dilation(skin) & ext])] = True
    cand &= near
    if not cand.any():
        return
    lung = lung_beyond_wall(ct.crop(lo, hi), a, lab, counts, cand, np.asarray(prob.body[sl]))
    if lung.any():
        c = int(np.flatnonzero(lung)[0])
        air = lab == c
        at = np.argwhere(skin & ndimage.binary_dilation(air))
        ras = ct.kji_to_world((at[len(at) // 2] + lo)[None])[0]
        raise InputError(
            f"the entry surface at {np.round(ras, 1).tolist()} (RAS mm), within the needle's reach, "
            f"faces lung, not the air around the patient: {counts[c] * ct.voxel_volume_ml:.0f} mL of "
            f"air beyond it (median {float(np.median(a[air])):.0f} HU) carries the lung's vessel tree and "
            "no skin over subcutaneous fat borders it, so the body outline takes the pleura for skin "
            "(a field of view inside the chest): label the lungs (imagio segment, or by hand) and plan "
            "again, or plan on a CT that shows the skin")


def _refuse_blood_pool_target(prob: "PlanningProblem", kji) -> None:
    """Refuse a target point in unlabelled tissue (or a passable container such as ``body``)
    that lies in a dense object larger than a nodule: contrast-enhanced blood in a vessel lumen
    or heart chamber, or unlabelled bone, not the target's own calcification (new-user trial 16:
    a point in the chest CTA's enhanced heart was planned as "body", the 835 mL blood pool
    exempted from the CT density check as "calcification or bone of the target itself").

    The dense object is the 26-connected component of voxels > ``ct_density.dense_min_hu`` that
    holds the target voxel, among unlabelled and passable non-lesion voxels, within a box of
    half-size ``ct_density.nodule_max_diameter_mm`` around the target (RAS mm; arrays [k, j, i]).
    Refused (`InputError`) when its volume exceeds a sphere of that diameter (a lesion that
    large is a mass, Fleischner glossary, and a mass is labelled to be planned into). Density
    alone cannot tell blood from bone: undiluted contrast in the veins of inflow reaches
    1000-2000 HU (the chest CTA's SVC), cancellous bone 100-400 HU. A labelled lesion (or bone)
    given as the target is never refused here: labelling it is how to aim into a large
    enhancing or mineralised tumour."""
    import cc3d

    from .density import checked_values

    t, ct = prob.target, prob.ct
    lim = load_defaults()["ct_density"]
    if float(ct.array[tuple(kji)]) <= float(lim["dense_min_hu"]):
        return
    if t.value:
        spec = next((s for s in prob.structures if s.value == t.value), None)
        if spec is None or spec.role != "passable" or is_lesion(spec.name):
            return
    dmax = float(lim["nodule_max_diameter_mm"])
    lo, hi = reach_box(ct, t.point_ras, dmax)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    hu = np.asarray(ct.array[sl])
    lab = np.asarray(prob.labels.array[sl])
    dense = (hu > float(lim["dense_min_hu"])) & checked_values(prob, target_point=True)[lab]
    cc = cc3d.connected_components(dense, connectivity=26)
    c = cc[tuple(np.asarray(kji) - lo)]
    if not c:
        return
    obj = cc == c
    ml = float(obj.sum()) * ct.voxel_volume_ml
    if ml <= np.pi / 6.0 * dmax ** 3 / 1000.0:
        return
    p5, med, p95 = np.percentile(hu[obj], [5, 50, 95])
    raise InputError(f"target at {np.round(t.point_ras, 1).tolist()} (RAS mm) lies in {ml:.0f} mL (counted in the "
                     f"voxels within +-{dmax:g} mm of it along each axis) of unlabelled dense tissue at {p5:.0f}-{p95:.0f} HU (median {med:.0f}), more "
                     f"than a {dmax:g} mm nodule: contrast-enhanced blood in a vessel or heart chamber, or unlabelled "
                     "bone, not a lesion's own calcification; move the target point, or label the lesion (or the "
                     "bone) and give its label as --target")


def _target_on_outer_layer(prob: "PlanningProblem", kji) -> None:
    """A target voxel outside the skin model's data region (`padding.data_mask`): refused when it
    is padding (the padding value, or within the rim between padding and data); when it is
    measured data on the array's first or last layer (which the data region leaves out), the
    problem's body takes in the tissue of the outer layers (`skin.body_with_outer_layers`) and
    a warning says what is not imaged beyond the target (new-user trial 3: a liver point at
    59 HU on the TotalSegmentator example's top slice was refused as padding)."""
    from ..directions import side_of
    from .skin import body_with_outer_layers, inward, outer_layers

    t, ct, sk = prob.target, prob.ct, prob.skin
    at = np.round(t.point_ras, 1).tolist()
    layers = outer_layers(ct.shape, kji)
    hu = float(ct.array[tuple(kji)])
    kin = inward(ct.shape, kji)
    padded = sk.padding_value is not None and hu == sk.padding_value
    if not layers or padded or not sk.data[kin]:
        raise InputError(f"target {t.name} at {at} (RAS mm) lies outside the scanned field of view "
                         f"(padding{f', value {sk.padding_value:g}' if sk.padding_value is not None else ''}: "
                         "no measured data there); check the point (RAS, as in Slicer; --lps for LPS)")
    if prob.body[kin]:
        prob.body = body_with_outer_layers(ct, prob.labels, prob.body, sk.padding_value)
    sides = ", ".join(side_of(ct.direction[:, 2 - ax] * sign) for ax, sign in layers)
    prob.warnings.append(f"target on the outermost voxel layer of the scan (its {sides} edge, {hu:.0f} HU): "
                         f"nothing beyond it is imaged, so structures within the margin on that side, "
                         "the target's extent there and any ablation zone beyond the scan are unknown; "
                         "extend the scan past the target to judge them")


def _lesion_cut_by_scan(prob: "PlanningProblem") -> None:
    """A named target whose label reaches a face of the image (the first or last slice, or the
    field of view's edge in a slice) is cut by the scan: what lies beyond is not imaged, so its
    centre, size, an ablation's coverage and its margin are those of the imaged part only. Said
    as a warning up front (new-user trial 38 LOW: a liver tumour on the top slice was said only
    at the end of a margin warning, its coverage printed as 99.5 %)."""
    from ..directions import side_of

    t, lab = prob.target, prob.labels
    if t.point_given or not t.value:
        return
    a = lab.array
    faces = []
    for ax in range(3):
        if a.shape[ax] <= 4:   # a slab's thin axis is no face of the body (skin.outer_layers)
            continue
        for idx, sign in ((0, -1), (a.shape[ax] - 1, 1)):
            n = int(np.count_nonzero(np.take(a, idx, axis=ax) == t.value))
            if n:
                faces.append((side_of(prob.ct.direction[:, 2 - ax] * sign), n))
    if faces:
        where = ", ".join(f"{side} edge ({n} voxels)" for side, n in faces)
        prob.warnings.append(f"target {t.name} is cut by the scan: its label reaches the image's {where}; what "
                             "lies beyond is not imaged, so its centre and size, and an ablation's coverage and "
                             "margin, are those of the imaged part only; extend the scan past it to judge them")


def _enter_target_bone(prob: "PlanningProblem", spec: StructureSpec, lesion: bool = False) -> None:
    """A target point inside bone, or a labelled lesion inside bone (``lesion``; percutaneous
    bone biopsy, planning_defaults ``bone_target`` with sources): only the connected piece
    (26-connectivity) of ``spec``'s label that holds the target point (or touches the lesion),
    within needle reach, becomes a new passable structure ``<name>_target_piece``, the rest of
    the label is renamed ``<name>_other_pieces`` (recorded as ``target_organ_entered`` and ``rules_extra["target_bone"]``); the rest of the
    label (other ribs / vertebrae of a group label) keeps its role. The scorer and the verifier
    then allow bone only as the final contiguous run of the path (`target_bone_run`), and the mm
    in the piece is a score criterion. For a vertebra with no spinal cord / canal label, the
    canal is derived (`_derive_spinal_canal`) and forbidden; a warning says so.
    The label map is replaced by a modified copy (the input is never modified)."""
    import cc3d

    from ..volume import reach_box

    lab = prob.labels
    t = prob.target
    cfg = load_defaults()["bone_target"]
    lo, hi = reach_box(lab, t.point_ras, prob.needle.length_mm + 10.0)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    arr = lab.array.copy()
    sub = arr[sl]
    cc = cc3d.connected_components(sub == spec.value, connectivity=26)
    if lesion:   # the bone components touching the lesion (one voxel around it)
        ids = np.unique(cc[ndimage.binary_dilation(sub == t.value, np.ones((3, 3, 3), bool))])
        piece = np.isin(cc, ids[ids > 0])
    else:
        tk = lab.nearest_kji(t.point_ras[None])[0] - np.asarray(lo)
        piece = cc == cc[tuple(tk)]
    names = dict(lab.labels)
    nxt = int(max(max(names), int(arr.max()))) + 1
    if arr.dtype.itemsize < 2 and nxt + 1 > 255:
        arr = arr.astype(np.uint16)
        sub = arr[sl]
    pname = f"{spec.name}{TARGET_PIECE_SUFFIX}"
    sub[piece] = nxt
    names[nxt] = pname
    notes = []
    derived = None
    is_vert = _named(spec.name, cfg["vertebra_prefixes"])
    has_canal = any(nm in cfg["canal_names"] for nm in names.values())
    if is_vert and not has_canal:
        from ..segmentation.common import anatomical_axes

        vert = [v for v, nm in names.items() if _named(nm, cfg["vertebra_prefixes"])]
        axial = anatomical_axes(lab)["S"][0]   # array axis nearest S
        canal = _derive_spinal_canal(sub, vert, prob.structures, axial) & (sub != t.value)
        if canal.any():
            derived = nxt + 1
            sub[canal] = derived
            names[derived] = cfg["canal_derived_name"]
        notes.append(f"no spinal cord or spinal canal is labelled: the canal was derived from the "
                     f"vertebra label ({float(canal.sum()) * lab.voxel_volume_ml:.1f} mL, soft tissue "
                     "enclosed by the vertebral ring in each axial slice, forbidden); an open ring "
                     "(neural foramen) is not closed by it: check the path against the canal and "
                     "nerve roots on the CT")
    # the rest of the label is not the target: named so (a closest structure "vertebrae_L1" read
    # as the target itself, new-user trial 3); same value, role and margin
    rest = f"{spec.name}{OTHER_PIECES_SUFFIX}"
    names[spec.value] = rest
    prob.labels = lab.with_array(arr, labels=names)
    prob.structures = [replace(s, name=rest) if s.value == spec.value else s for s in prob.structures]
    prob.structures = prob.structures + [StructureSpec(pname, nxt, "passable", 0.0)]
    if derived:
        prob.structures.append(StructureSpec(cfg["canal_derived_name"], derived, "forbidden", 0.0))
    if not lesion:
        t.value = nxt
    t.organ = spec.name   # the host organ (the bone); the passable piece is target_organ_entered
    ml = float(piece.sum()) * lab.voxel_volume_ml
    prob.warnings.append(f"{'target point inside' if not lesion else t.name + ' lies in'} {spec.name} (bone): "
                         "bone biopsy; only the piece of "
                         f"{spec.name} that holds the target ({ml:.1f} mL within needle reach) may be "
                         "entered, once, as the last part of the path; other bone keeps its role")
    prob.warnings.extend(notes)
    prob.rules_extra["target_organ_entered"] = pname
    prob.rules_extra["target_bone"] = {"structure": spec.name, "piece": pname, "piece_ml": round(ml, 2),
                                       "lesion": t.name if lesion else None,
                                       "final_run_only": True,
                                       "canal": (cfg["canal_derived_name"] + " (derived)" if derived else
                                                 "labelled" if has_canal else
                                                 "not checked" if is_vert else None)}


def _derive_spinal_canal(sub: np.ndarray, vert_values: list, structures: list, axial: int = 0) -> np.ndarray:
    """Bool mask (shape of ``sub``, [k, j, i]): the spinal canal derived from the vertebra labels
    as the voxels each axial slice's vertebra mask encloses (holes filled in-plane,
    `scipy.ndimage.binary_fill_holes` with an in-plane structure) that no non-passable structure
    holds. ``axial``: the array axis nearest the patient's S axis (slices across it are the
    near-axial planes; an oblique grid gives near-axial planes)."""
    vm = np.isin(sub, vert_values)
    st = np.zeros((3, 3, 3), bool)
    plane = [slice(None)] * 3
    plane[axial] = 1
    st[tuple(plane)] = ndimage.generate_binary_structure(2, 1)
    filled = ndimage.binary_fill_holes(vm, structure=st)
    passable = [s.value for s in structures if s.role == "passable"] + [0]
    return filled & ~vm & np.isin(sub, passable)


def target_bone_run(problem: "PlanningProblem") -> tuple:
    """Label values of the target bone piece (`_enter_target_bone`) and of a lesion inside it;
    () when the target is not in bone. Along a path, samples with these values must form one
    final run ending at the target."""
    tb = problem.rules_extra.get("target_bone")
    if not tb:
        return ()
    vals = [s.value for s in problem.structures if s.name == tb["piece"]]
    if tb.get("lesion"):
        vals.append(problem.target.value)
    return tuple(vals)


def _enter_host_organ(prob: "PlanningProblem") -> None:
    """A labelled lesion inside a solid organ that is an obstacle by default (kidney, spleen, a
    vertebra) can only be reached through that organ: the organ becomes passable for this plan
    (warned, recorded as ``target_organ_entered``); every other structure keeps its role. Hollow
    viscera and the other ``never_target`` structures stay forbidden, and a role the user set
    with ``--role`` is kept."""
    t = prob.target
    if (t.point_given or not t.organ or t.organ == t.name or t.organ in prob.roles_overridden
            or never_target(t.organ)):
        return   # a point, an organ named as the target (exempt itself), a user's role, a viscus
    spec = next((s for s in prob.structures if s.name == t.organ), None)
    if spec is None or spec.role != "forbidden":
        return
    if is_bone(spec.name):   # a bone lesion: only the bone piece around it, entered once
        _enter_target_bone(prob, spec, lesion=True)
        return
    prob.structures = [replace(s, role="passable") if s.value == spec.value else s for s in prob.structures]
    prob.warnings.append(f"{t.name} lies in {spec.name} (an obstacle by default): the path may enter "
                         f"{spec.name} to reach it; every other structure keeps its role")
    prob.rules_extra["target_organ_entered"] = spec.name


def kept_under_lesion(labels: Volume, roles: dict | None = None):
    """``keep(name)`` for `io.with_lesions`: what a --lesions outline does to each structure of
    ``labels`` it covers, by the structure's planning role (catalogue, or the user's --role):
    True (kept, the outline may not erase it) for the structures a target point is refused in
    (`_check_target`: role margin, the vessels and nerves, and ``targets.never_target``: CNS,
    heart, airways, hollow viscera), so a leaking outline cannot turn a vessel or a bronchus into
    tumour; None (painted silently) for passable tissue, the lesion's host (liver, lung, body);
    False (painted, with a warning) for the rest: forbidden solid organs and bone, which may hold
    the lesion (renal and bone lesions, as a target point there makes them the target organ),
    and other lesions."""
    roles = {anatomy.name_in(k, labels.labels.values()): v for k, v in (roles or {}).items()}
    role = {s.name: s.role for s in structure_specs(labels, roles)}

    def keep(name):
        r = role.get(name)
        if r == "passable":
            return None
        return r == "margin" or (r == "forbidden" and never_target(name))
    return keep


def never_target(name: str) -> bool:
    """True for structures a percutaneous needle never aims at (planning_defaults
    ``targets.never_target``: central nervous system, heart, airways, hollow viscera)."""
    return any(name == n or name.startswith(n + "_") for n in load_defaults()["targets"]["never_target"])


def _check_labels_match(prob: "PlanningProblem", covered: np.ndarray | None, registration_checked: bool = False,
                        ct_token=None) -> None:
    """Refuse a label map that does not cover the body within needle reach of the target, whose
    structures lie in the air around the patient (another patient's or scan's labels), or that is
    displaced from the CT (`label_registration.require_registered`; a doubtful fit is warned;
    not run again when ``registration_checked``). ``ct_token``: the CT's `caching.content_token`
    when the caller has just taken it."""
    ct, lab = prob.ct, prob.labels
    reach = prob.needle.length_mm
    lo, hi = reach_box(ct, prob.target.point_ras, reach)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    if covered is not None:
        body = prob.body[sl]
        miss = body & ~covered[sl]
        if body.any() and miss.sum() > 0.02 * body.sum():
            pct = 100.0 * (1.0 - miss.sum() / body.sum())
            raise InputError(f"the label map covers only {pct:.0f}% of the body within "
                             f"{reach:.0f} mm of the target: segment the whole region of this CT "
                             "(a label map of the same scan)")
    # a map mirrored or upside down (its names' anatomy against RAS, or its bone and air against the
    # CT's; new-user trial 39 H1/H2), before the solid-structures-in-air test below, which a flipped
    # map also fails: named as the flip it is, the axis and the evidence (trial 42: the TS DICOM and
    # lung1 maps flipped front to back, the CTA's upside down, were refused only as "solid
    # structures lie in air"); skipped for a caller that says registration_checked (the sarcoma
    # biopsy checks both once per case)
    from ..limits import AERATED_MAX_HU

    checks = None if registration_checked else _LabelChecks(ct, lab, prob.labels_made_on, ct_token)
    if checks is not None:
        prob.warnings.extend(checks.orientation())
    # structures that hold no air, labelled over air (at least half air: limits.AERATED_MAX_HU): another scan's labels
    air_ok = [v for v, n in lab.labels.items() if any(h in n for h in AIR_HOLDING)]
    if prob.target.value:
        air_ok.append(prob.target.value)
    solid = (lab.array[sl] > 0) & ~values_mask(lab.array[sl], air_ok)
    n = int(solid.sum())
    if n:
        in_air = int((solid & (ct.array[sl] < AERATED_MAX_HU)).sum())
        if in_air > 0.10 * n:
            if checks is not None:   # a mirror puts solid structures over air too: named as the mirror it is
                checks.refuse_mirrored()
            raise InputError(f"{100.0 * in_air / n:.0f}% of the voxels of solid structures near the "
                             f"target lie in air (< {AERATED_MAX_HU:g} HU): the label map does not belong to this CT")
    # a map displaced inside the body (another series of the study, a wrong origin): its bone and
    # aerated structures fit the CT's bone and air better when moved (new-user trial 36 H3)
    if checks is None:
        return
    doubt = checks.registration()
    if doubt:
        prob.warnings.append(doubt)


_LABEL_CHECKS: dict = {}   # one case: `_LabelChecks` key -> {"orientation"/"registration": result or InputError}


def forget_cached_label_checks() -> None:
    """Drop the cached results of the label map's orientation and registration checks (`_LabelChecks`)."""
    _LABEL_CHECKS.clear()


class _LabelChecks:
    """The label map's orientation check (`label_orientation.check_orientation`) and registration
    check (`label_registration.require_registered`) of `_check_labels_match`, each run once per
    case: a second target, or the same target again, on the same CT and labels (the same values
    and names on the same grids, `caching.content_token`: also new copies of the arrays, as the
    Slicer module and IMAGIO Web read them for every plan; any changed value, in place too, is a
    new case) gets the first run's warnings, or its InputError raised again, without their
    bone/air class masks and point sets (0.7-1 CPU-s on the 1 mm phantom). Each check is run
    when first asked, in `_check_labels_match`'s order, so a refusal between them (solid
    structures in air) comes first as before."""

    def __init__(self, ct: Volume, lab: Volume, made_on: Volume | None, ct_token: tuple | None = None):
        from ..caching import content_token

        grid = lambda v, tok=None: None if v is None else (  # noqa: E731
            v.shape, v.ijk_to_ras.tobytes(), tok or content_token(v.array), tuple(sorted((v.labels or {}).items())))
        self.ct_token = ct_token or content_token(ct.array)
        self.ct, self.lab, self.made_on = ct, lab, made_on
        self.key = (grid(ct, self.ct_token), grid(lab), grid(made_on))
        if self.key not in _LABEL_CHECKS:
            _LABEL_CHECKS.clear()
            _LABEL_CHECKS[self.key] = {}
        self.done = _LABEL_CHECKS[self.key]
        self._classes = None

    def _classes_of(self) -> dict:
        from ..label_registration import classes_from_labels

        if self._classes is None:
            self._classes = classes_from_labels(self.lab)
        return self._classes

    def _run(self, name: str, fn):
        if name not in self.done:
            try:
                self.done[name] = fn()
            except InputError as e:
                self.done[name] = e
        r = self.done[name]
        if isinstance(r, InputError):
            raise copy.copy(r)
        return copy.deepcopy(r)

    def orientation(self) -> list:
        from ..label_orientation import check_orientation

        return self._run("orientation", lambda: check_orientation(self.lab, "the label map", self.ct,
                                                                   classes=self._classes_of()))

    def refuse_mirrored(self) -> None:
        """Refuse (InputError, `label_registration.mirror_words`) a label map that fits the CT clearly
        better mirrored along an axis (`label_registration.mirror_fit`'s verdict, the one the
        registration check refuses first; computed once per case, `label_registration.displacement`'s
        cache). Asked before another refusal that a mirror also explains (solid structures over air:
        new-user trial 80 L, lung1 mirrored anterior-posterior against its map was refused as "does not
        belong to this CT")."""
        from ..label_registration import displacement, mirror_words

        m = (displacement(self.ct, self.lab, self._classes_of(), self.made_on, self.ct_token) or {}).get("mirror")
        if m is not None and m["mirrored"]:
            raise InputError(mirror_words(m, "the label map"))

    def registration(self) -> str:
        from ..label_registration import require_registered

        return self._run("registration", lambda: require_registered(
            self.ct, self.lab, self._classes_of(), "the label map",
            "every distance to a labelled structure and the target's position rest on it", made_on=self.made_on,
            ct_token=self.ct_token))


AIR_HOLDING = ("lung", "trachea", "airway", "bronch", "stomach", "colon", "bowel", "duodenum",
               "esophagus", "emphysema", "sinus", "body", "skin", "nodule", "pneumothorax",
               "pleura")  # the pleural space holds air in a pneumothorax; a pleura label (IMAGIO's
# layer outside the lung, another tool's lung surface) borders the lung's air


def target_in_lung(labels: Volume, target: Target) -> bool:
    """Whether the target lies inside the lung (inside the visceral pleura): the one definition
    (``Target.in_lung``, set by `PlanningProblem.build`), read by the scorer's and the verifier's
    pleural counts (a path from lung into a lung target crosses no pleura), the lung-base
    (transdiaphragmatic) findings (`diaphragm`) and the ablation's lung words. A target is in
    the lung when it is hosted by aerated lung (``Target.organ`` in `anatomy.AERATED_LUNG`), its
    label (a lesion's, or for a point target the label at the point) is a lung structure (named
    lung..., or emphysema), or at least half of that label's one-voxel outer shell (26-connected)
    lies in lung parenchyma or lung contents. An intrapulmonary nodule is surrounded by parenchyma;
    one abutting the chest wall is entered through the pleura either way. Decided from the
    anatomy, not the name (trial 7: a nodule named 'nod_spine' counted the lung-to-nodule step as
    a second crossing and every path was refused). A point on no label is not in the lung."""
    names = labels.labels
    if (target.organ or "") in AERATED_LUNG:
        return True
    if not target.value:
        return False
    name = names.get(target.value, "")
    if name.startswith("lung") or name in AERATED_LUNG:
        return True
    from ..segmentation.common import _mask_box

    # the target's bounding box from per-axis projections (the box find_objects gives, without
    # its uint8 copy of the volume and its pass: issue 20, 0.2 CPU-s on the 1 mm phantom)
    box = _mask_box(np.ascontiguousarray(labels.array == target.value))
    if box is None:
        return False
    sl = tuple(slice(max(b.start - 1, 0), b.stop + 1) for b in box)   # the target's box + 1 voxel
    sub = labels.array[sl]
    tm = sub == target.value
    shell = ndimage.binary_dilation(tm, np.ones((3, 3, 3), bool)) & ~tm
    lung_vals = [v for v, n in names.items()
                 if n in LUNG_PARENCHYMA or n.startswith(tuple(c + "_" for c in LUNG_CONTENTS))
                 or n.rstrip("0123456789_") in LUNG_CONTENTS]
    return bool(shell.any()) and float(np.isin(sub[shell], lung_vals).mean()) >= 0.5


def host_organ(labels: Volume, target: Target, prob: "PlanningProblem | None" = None,
               shell_mm: float = 4.0) -> str:
    """The organ that holds the target: the structure at a target point (when it is not a lesion),
    the organ named as the target itself, or, for a lesion, the structure that encloses it
    (the most frequent label in a ``shell_mm`` shell around the lesion, if it covers at least
    half of the labelled shell and a quarter of the whole shell; else "" and a warning)."""
    name = labels.labels.get(target.value, "") if target.value else ""
    if not target.value:
        return ""
    if not is_lesion(name):
        return name
    lo, hi = reach_box(labels, target.point_ras, 60.0)
    sub = labels.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    m = sub == target.value
    it = max(1, int(round(shell_mm / float(min(labels.spacing)))))
    shell = ndimage.binary_dilation(m, iterations=it) & ~m
    vals = sub[shell].astype(np.int64)
    if vals.size == 0:
        return ""
    counts = np.bincount(vals)
    best = int(np.argmax(counts[1:]) + 1) if len(counts) > 1 else 0
    labelled = vals.size - counts[0]
    # a subcapsular lesion borders unlabelled fat: count containment among labelled neighbours
    if best == 0 or counts[best] < 0.5 * labelled or counts[best] < 0.25 * vals.size:
        if prob is not None:   # say what it borders (trial 28 L4: a nodule where three lobes meet)
            order = np.argsort(counts[1:])[::-1][:3] + 1
            share = ", ".join(f"{labels.labels.get(int(v), f'label {v}')} {100 * counts[v] / vals.size:.0f} %"
                              for v in order if counts[v] > 0)
            prob.warnings.append(f"host organ of {name} unknown: no one structure encloses most of its "
                                 f"surface ({share or 'no labelled structure'} of a {shell_mm:g} mm shell): "
                                 "the rules for one host organ (liver parenchyma before a liver tumour, "
                                 "entering the organ that holds it) are not applied; the lung rules follow "
                                 "from the lung labels along each path")
        return ""
    return labels.labels.get(best, "")


def body_mask(ct: Volume, labels: Volume | None = None, hu: float = -400.0) -> np.ndarray:
    """Patient body on the CT grid (bool [k, j, i]): `imagio.planning.skin.outer_skin`'s body
    (tissue > ``hu`` HU and labelled voxels, internal air included, exterior air, padding and
    loose objects excluded)."""
    from .skin import outer_skin

    return np.asarray(outer_skin(ct, labels, air_hu=hu).body)


def check_structure_names(labels: Volume) -> list:
    """The label values of ``labels`` without a structure name (label_N, segment_N). Raises InputError when at least half of ``labels``' values have no structure name (label_N,
    segment_N): without names no obstacle is known. Called on the user's map before IMAGIO adds
    a label of its own (the sarcoma plan's bone from the CT), so the count is the user's (new-user
    trial 28 L1: "1 of the 2 label values" for a one-value mask, the second being IMAGIO's bone)."""
    generic = sorted(v for v, n in labels.labels.items() if GENERIC_NAME.match(str(n)))
    if generic and len(generic) * 2 >= len(labels.labels):
        n = len(labels.labels)
        raise InputError(f"{len(generic)} of the {n} label value{'s' if n != 1 else ''} "
                         f"{'have' if len(generic) != 1 else 'has'} no structure name (e.g. label_{generic[0]}): "
                         "without names no obstacle is known; give --label-names NAMES.json, a sidecar or a .seg.nrrd")
    return generic


def threshold_bone(ct: Volume, hu: float | None = None) -> np.ndarray:
    """Fallback bone mask: CT > ``hu`` HU (default: `density.dense_min_hu`, the one definition
    of dense tissue, planning_defaults ``ct_density``; for cases without organ labels, not a
    segmenter)."""
    if hu is None:
        from .density import dense_min_hu

        hu = dense_min_hu()
    return ct.array > hu


def fallback_label_map(ct: Volume, lesion: np.ndarray | None = None,
                       lesion_name: str = "lung_nodule", bone_hu: float | None = None) -> Volume:
    """FALLBACK for cases without organ labels (not a segmenter): body (CT > -400 HU, largest
    component, filled), bone (CT > ``bone_hu`` HU inside the body, role forbidden) and an
    optional lesion mask (role target). Lungs are then found from HU by the planner.
    ``bone_hu`` default: `threshold_bone`'s."""
    body = body_mask(ct)
    lab = np.zeros(ct.shape, np.uint8)
    lab[body] = 1
    lab[body & threshold_bone(ct, bone_hu)] = 2
    names = {1: "body", 2: "bone"}
    if lesion is not None:
        lab[np.asarray(lesion, bool)] = 3
        names[3] = lesion_name
    return ct.with_array(lab, name="fallback_labels", labels=names)
