"""Plan a core-needle biopsy of an extremity soft-tissue sarcoma with the needle planner.

``plan_sarcoma_biopsy(ct, labels)``: classify the limb structures, find the compartment(s) the
tumour occupies, map the viable tumour, turn the rules into planner roles and constraints
(`rules`), plan with `imagio.planning.plan` (the same scorer, ranking and independent re-check
as every needle plan), then from the best entry (among the five best-ranked, the one that
allows the most cores) fan 3-5 cores into different viable regions, each evaluated and
re-checked, each core's specimen (the needle's throw) wholly in the viable map (else the least
non-viable cores, warned). No core: ``SarcomaPlan.failure`` says why in one line (for an
incision: the nearest compliant entry's distance). RAS mm, HU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import InputError
from ...io import labels_on_grid
from ...jsonable import to_jsonable
from ...volume import Volume
from ..density import dense_min_hu
from ..planner import Plan, plan
from ..problem import Constraints, Needle, PlanningProblem, Target, check_structure_names, is_lesion, is_outline
from . import incision as inc
from .rules import (classify, config, involved_compartments, require_compartments, roles_for, rule,
                    rule_status)
from .viable import (ViableMap, candidate_targets, contrast_enhanced, specimen_ml, specimen_nonviable_fraction,
                     viable_map)

PROCEDURE = "sarcoma-biopsy"


@dataclass
class SarcomaPlan:
    """The needle plan (`Plan`) plus the sarcoma findings: the tumour, the compartments and
    which are involved, the viable map, the cores (each a checked `PathMetrics` with its rule
    status), the incision polyline, the long axis, landmark distances and warnings."""

    plan: Plan
    tumour: str
    involved: dict
    compartments: dict
    viable: ViableMap
    cores: list
    incision: np.ndarray | None
    incision_source: str
    incision_tolerance_mm: float
    axis: np.ndarray
    axis_how: str
    landmarks: dict
    rule_of: dict
    roles: dict
    compartments_checked: bool
    warnings: list = field(default_factory=list)
    failure: str | None = None   # why no core could be planned, one line naming what to change
    lung_or_liver: bool = False   # a lung or liver is labelled (a trunk-wall sarcoma): their rules apply

    @property
    def feasible(self) -> bool:
        return bool(self.cores)

    @property
    def entry_ras(self):
        return np.asarray(self.cores[0]["metrics"].entry_ras) if self.cores else None

    def to_dict(self) -> dict:
        """plan.json content: the needle plan's dict with a ``sarcoma`` section."""
        doc = self.plan.to_dict()
        doc["procedure"] = PROCEDURE
        # the torso planner's 'no large named vessel (aorta, venae cavae, ...)' and 'host organ unknown'
        # do not apply to a limb: the bundle rule and the compartments say what was checked
        base = [w for w in doc.get("warnings", []) if not w.startswith("no large named vessel")
                and not (w.startswith("host organ of") and "unknown" in w)
                # the needle planner's "reads fluid ... give a point there as --target": this
                # procedure refuses a point and aims its cores at the viable map (trial 39 L1)
                and not (w.startswith("the target point of") and "reads fluid" in w)]
        doc["warnings"] = base + [w for w in self.warnings if w not in base]
        if not self.lung_or_liver:
            _limb_only(doc, float(self.plan.maps.cap_mm))
        doc["sarcoma"] = to_jsonable({
            "tumour": self.tumour,
            "compartments_checked": self.compartments_checked,
            "compartments": self.compartments,
            "involved_compartments": self.involved,
            "viable": self.viable.to_dict(),
            "rules": [{**{k: r[k] for k in ("name", "kind", "wording", "source")},
                       **{k: r[k] for k in ("role", "margin_mm", "tolerance_mm") if k in r}}
                      for r in config()["rules"]],
            "sources": config()["sources"],
            "structure_rules": self.rule_of,
            "long_axis": {"ras": np.round(self.axis, 4), "how": self.axis_how},
            "incision": {"source": self.incision_source, "tolerance_mm": self.incision_tolerance_mm,
                         "points_ras": None if self.incision is None else np.round(self.incision, 1)},
            "tattoo_entry": None if not self.cores else {
                "ras": np.round(self.entry_ras, 1), "landmarks": self.landmarks},
            "cores": [{"target_ras": np.round(c["metrics"].target_ras, 1), "depth_mm": c["depth_mm"],
                       "fan_deg": c["fan_deg"], "throw_mm": c["throw_mm"], "fire_from_ras": np.round(c["fire_from_ras"], 1),
                       "specimen_nonviable_pct": c["specimen_nonviable_pct"],
                       "length_mm": round(c["metrics"].length_mm, 1),
                       "compartments_crossed": c["compartments_crossed"], "structures_crossed": c["crossed"],
                       "rules": c["rules"], "feasible": c["metrics"].feasible,
                       "check_problems": c["metrics"].check_problems} for c in self.cores],
            "warnings": self.warnings,
            "failure": self.failure,
        })
        return doc


LUNG_LIVER_RULES = ("pleural_crossings", "fissure", "emphysema", "liver_parenchyma")
LUNG_LIVER_CRITERIA = ("aerated_lung", "pleural_crossings", "fissure_crossings", "emphysema")
LUNG_LIVER_FIELDS = ("aerated_lung_mm", "lung_mm", "pleural_crossings", "fissure_crossings", "emphysema_pct",
                     "liver_before_target_mm")


def _limb_only(doc: dict, cap_mm: float) -> None:
    """The needle plan's dict read for a limb: the lung and liver rules marked not applicable,
    their criteria and per-path fields dropped (no lung or liver in a limb: every value is 0), and a
    path with no structure within the clearance map's reach (``cap_mm``) says "none within
    N mm" instead of a closest structure None at the capped clearance."""
    why = "a lung/liver rule: not applicable to a limb biopsy"
    for k in LUNG_LIVER_RULES:
        if isinstance((doc.get("rules") or {}).get(k), dict):
            doc["rules"][k] = {**doc["rules"][k], "applies": False, "why": why}
    doc["criteria"] = [c for c in doc.get("criteria") or [] if c.get("name") not in LUNG_LIVER_CRITERIA]
    for p in doc.get("proposals") or []:
        for k in LUNG_LIVER_FIELDS:
            p.pop(k, None)
        if p.get("closest_structure") is None:
            p["closest_structure"] = f"none within {cap_mm:g} mm"
            p["closest_clearance_mm"] = None


def visceral_host(labels: Volume, tmask: np.ndarray) -> str:
    """The organ (sarcoma_biopsy.json ``visceral_hosts``) holding most of the labelled voxels that
    touch the tumour ``tmask`` ([k, j, i] bool on ``labels``' grid; its 6-connected shell, on its
    box only; the body outline and skin left out), or "" when they are mostly anything else
    (muscle, fat, bone)."""
    from scipy import ndimage

    from ... import anatomy

    hosts = config()["visceral_hosts"]["value"]
    named = sorted(hosts, key=len, reverse=True)
    kji = np.argwhere(tmask)
    lo, hi = np.maximum(kji.min(0) - 1, 0), np.minimum(kji.max(0) + 2, tmask.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    t = tmask[box]
    vals, counts = np.unique(labels.array[box][ndimage.binary_dilation(t) & ~t], return_counts=True)
    by: dict[str, int] = {}
    for v, c in zip(vals.tolist(), counts.tolist()):
        n = labels.labels.get(int(v), "")
        if not n or n in ("body", "skin"):
            continue
        # the organ itself, one of its lobes or sides (anatomy.json group_of: lung lobes, lung_left,
        # kidney_left), a liver segment, else a part named after its organ (adrenal_gland_left,
        # kidney_cyst_right, lung_vessels, stomach_gas: TotalSegmentator's names)
        organ = ("liver" if anatomy.is_liver(n) else n if n in hosts
                 else next((h for h in anatomy.groups_holding(n) if h in hosts), "")
                 or next((h for h in named if n.startswith(h + "_")), ""))
        by[organ] = by.get(organ, 0) + c
    best = max((o for o in by if o), key=lambda o: by[o], default="")
    return best if best and by[best] > 0.5 * sum(by.values()) else ""


def _tumour_label(labels: Volume, anat, tumour) -> tuple[str, int]:
    if tumour is not None:
        inv = {n: v for v, n in labels.labels.items()}
        if tumour not in inv:
            raise InputError(f"tumour {tumour!r} is not in the label map; it has {sorted(inv)}")
        kinds = {"bone": anat.bones, "neurovascular bundle": anat.bundle, "joint": anat.joints,
                 "septum": anat.septa, "compartment": {n: 0 for ns in anat.compartments.values() for n in ns}}
        kind = next((k for k, d in kinds.items() if tumour in d), None)
        if kind is None and tumour not in anat.tumours and not is_lesion(tumour):
            # new-user trial 95 F1: "body" (the web's first segment) was biopsied, "rules met";
            # a structure the anatomy catalogue knows (body, muscles, organs) is not a tumour
            kind = "patient outline" if is_outline(tumour) else "named anatomical structure"
        if kind is not None:
            raise InputError(f"{tumour!r} is a {kind}, not a tumour: give the tumour's label name "
                             f"(tumour-like labels here: {sorted(anat.tumours) or 'none'})")
        return tumour, int(inv[tumour])
    if len(anat.tumours) == 1:
        return next(iter(anat.tumours.items()))
    if not anat.tumours:
        raise InputError("no tumour label in the label map (a name such as sarcoma_1 or GTV_Mass): "
                         "give the tumour's label name with --target")
    raise InputError(f"several tumour labels {sorted(anat.tumours)}: choose one with --target")


def sarcoma_needle(length_mm: float | None = None, diameter_mm: float | None = None,
                   uncertainty_mm: float | None = None, beyond_tip_mm: float | None = None) -> Needle:
    """The core needle: usable length mm (default the planner's, imagio/data/planning_defaults),
    outer diameter mm (default sarcoma_biopsy.json ``needle.diameter_mm``, 14 G), placement
    uncertainty mm (default the planner's) and the length of its axis checked past the target
    (`findings.beyond_tip`; default ``beyond_tip_default("sarcoma_core_biopsy")``, 0: each tract
    ends at its target, the deepest point the fired needle reaches, so the throw lies inside the
    checked tract; review 43 L3). InputError (one line) for a length or diameter <= 0 or a
    negative uncertainty or length past the tip."""
    from ..problem import beyond_tip_default

    nd = Needle(diameter_mm=float(config()["needle"]["diameter_mm"]),
                beyond_tip_mm=beyond_tip_default("sarcoma_core_biopsy"))
    for flag, attr, v, low in (("--needle-length", "length_mm", length_mm, 0.0),
                               ("--needle-diameter", "diameter_mm", diameter_mm, 0.0),
                               ("--uncertainty", "uncertainty_mm", uncertainty_mm, None),
                               ("--beyond-tip", "beyond_tip_mm", beyond_tip_mm, None)):
        if v is None:
            continue
        if not np.isfinite(v) or (v <= low if low is not None else v < 0):
            raise InputError(f"{flag} {v:g}: give a {'positive' if low is not None else 'non-negative'} value in mm")
        setattr(nd, attr, float(v))
    return nd


def plan_sarcoma_biopsy(ct: Volume, labels: Volume, tumour: str | None = None, *,
                        incision=None, incision_tolerance_mm: float | None = None,
                        n_cores: int | None = None, needle: Needle | None = None,
                        bundle_margin_mm: float | None = None, involved=None,
                        allow_no_compartments: bool = False, viable_threshold_hu: float | None = None,
                        throw_mm: float | None = None, k: int | None = None, progress=None,
                        max_craniocaudal_deg: float | None = None, patient_position: str | None = None,
                        max_skin_angle_deg: float | None = None, skin_spacing_mm: float | None = None,
                        disabled_rules=(), roles_override: dict | None = None) -> SarcomaPlan:
    """Plan the biopsy. ``labels``: named label map (compartments, septa, joints, bundle, bones,
    the tumour; `rules.classify`), resampled to the CT when needed. ``tumour``: its label name
    (default: the one tumour-like label). ``incision``: (m, 3) RAS polyline of the planned
    incision (default: `incision.default_incision`). ``involved``: compartment keys to treat as
    involved (default: from the tumour's contact). ``allow_no_compartments``: plan without the
    compartment rules (said in the warnings) instead of refusing. ``throw_mm``: the core needle's
    throw (default sarcoma_biopsy.json ``cores.throw_mm``): each tract ends at its target, the
    deepest point the fired needle reaches, and the core (the tract's last ``throw_mm``, the
    specimen) must lie in the tumour and wholly in the viable map (sarcoma_biopsy.json
    ``cores.specimen_max_nonviable_pct``; when no compliant core does, the least non-viable ones
    are given with a warning); each core's non-viable % is reported (``specimen_nonviable_pct``);
    the needle's tip before firing is reported (``fire_from_ras``). ``needle``: the core needle
    (default `sarcoma_needle`): its length bounds every tract, its radius + placement uncertainty
    widen every clearance. The planner's craniocaudal (gantry tilt) and table-side rules are off for
    a limb unless ``max_craniocaudal_deg`` (degrees) / ``patient_position`` are given;
    ``max_skin_angle_deg``, ``skin_spacing_mm`` and ``disabled_rules`` (`problem.OPTIONAL_RULES`)
    are the planner's; ``roles_override`` ({name: role or (role, margin mm)}, as --role) replaces
    the rules' roles for those structures (recorded in plan.json, warned when it replaces a rule).
    With a user incision, a first tract longer than the shortest tract that meets every other
    rule (to the same target) by more than sarcoma_biopsy.json ``shortest_tract.longer_warn_mm``
    is warned (the whole tract is excised at resection).

    Raises InputError (one line) for: no tumour label, no compartments (unless allowed), an
    incision that is not an (m >= 2, 3) polyline, n_cores outside 3-5."""
    cfg = config()
    made_on = None if ct.same_grid(labels) else labels   # the map's own grid (registration floor)
    labels = labels_on_grid(labels, ct)
    from ...label_orientation import check_orientation
    from ...label_registration import classes_from_labels, require_registered

    classes = classes_from_labels(labels)   # made once for both checks
    side_notes = check_orientation(labels, "the label map", ct, classes=classes)   # mirrored / upside down (trial 39)
    shift_note = require_registered(ct, labels, classes, "the label map",
                                    "the compartments, bone and bundle distances rest on it", made_on=made_on)
    anat = classify(labels)
    name, value = _tumour_label(labels, anat, tumour)
    tmask = labels.array == value
    if not tmask.any():
        raise InputError(f"tumour {name!r} has no voxels in the label map")
    host = visceral_host(labels, tmask)
    if host:
        raise InputError(f"{name} lies in the {host} (most of what touches it): --procedure sarcoma-biopsy plans a "
                         "core biopsy of a soft-tissue sarcoma of a limb or the trunk wall (compartment rules); plan a "
                         "lesion inside an organ without --procedure")
    warnings = side_notes + ([shift_note] if shift_note else [])
    if not anat.bones:   # never let a tract through unlabelled bone: take it from the CT
        check_structure_names(labels)   # the user's map, before IMAGIO's bone label is added (trial 28 L1)
        labels, n_ml = _bone_from_ct(ct, labels, tmask, list(anat.bundle.values()) + list(anat.joints.values()))
        anat = classify(labels)
        if n_ml:
            warnings.append(f"no bone labelled: {n_ml:.0f} mL of bone taken from the CT (> {BONE_HU:g} HU, "
                            "outside the tumour) and kept out of every tract")
    labels, tmask, dense = _dense_out_of_tumour(ct, labels, tmask, name)
    if dense and not tmask.any():
        raise InputError(f"all of {name} reads bone density on the CT (> {BONE_HU:g} HU): no soft-tissue tumour to "
                         "biopsy; check the tumour outline against the CT")
    if dense:
        anat = classify(labels)
        warnings.append(f"{dense[1]:.1f} mL of {name} reads bone density on the CT (> {BONE_HU:g} HU: bone, "
                        f"calcification or contrast at angiographic density): not viable tumour; labelled "
                        f"{dense[0]} and kept out of every tract and core (check the outline against the CT: "
                        "does it take in the bone next to the tumour?)")
    n_cores = int(cfg["cores"]["default"] if n_cores is None else n_cores)
    if not cfg["cores"]["min"] <= n_cores <= cfg["cores"]["max"]:
        raise InputError(f"--cores {n_cores}: give {cfg['cores']['min']}-{cfg['cores']['max']} cores")
    checked = bool(anat.compartments)
    if not checked:
        if not allow_no_compartments:
            require_compartments(anat)
        warnings.append("no muscle compartments labelled: the compartment and septum rules were NOT checked "
                        "(segment the compartments before trusting this tract)")
    if involved is None:
        inv = involved_compartments(labels, anat, value) if checked else {}
        if checked and not inv:
            warnings.append(f"{name} touches no labelled compartment (superficial?): every compartment is "
                            "treated as uninvolved")
    else:
        unknown = set(involved) - set(anat.compartments)
        if unknown:
            raise InputError(f"--compartment {sorted(unknown)}: not in the label map; it has {sorted(anat.compartments)}")
        inv = {k2: None for k2 in involved}
    if len(inv) > 1:
        warnings.append(f"{name} occupies {len(inv)} compartments ({', '.join(inv)}): the tract may use any of them")
    vessels = {n: v for n, v in anat.bundle.items() if "artery" in n or "vein" in n}
    contrast = contrast_enhanced(ct, labels, list(vessels.values()))
    nd = needle or sarcoma_needle()
    throw = float(cfg["cores"]["throw_mm"] if throw_mm is None else throw_mm)
    vm = viable_map(ct, tmask, viable_threshold_hu, contrast=contrast,
                    specimen_volume_ml=specimen_ml(nd.diameter_mm, throw))
    pts, depth, tw = candidate_targets(ct, vm)
    warnings += vm.warnings + tw
    if len(pts) == 0:
        raise InputError(f"no viable tumour in {name} above {vm.threshold_hu:g} HU: nothing to biopsy "
                         "on this CT (check the tumour mask and the CT's units)")
    centre = ct.kji_to_world(np.argwhere(tmask).mean(0)[None])[0]
    roles, rule_of = roles_for(labels, anat, inv, centre, nd.length_mm + 40.0, bundle_margin_mm)
    def said(r):
        return r if isinstance(r, str) else f"{r[0]}:{r[1]:g} mm"

    for n, r in (roles_override or {}).items():   # the user's --role, over the rules' (recorded, warned)
        if n in rule_of and roles.get(n) != r:
            warnings.append(f"--role {n}: replaces the sarcoma rule {rule_of[n]} ({said(roles[n])} -> {said(r)}) "
                            "for this structure")
        roles[n] = r
    margins = [r[1] for n, r in roles.items() if n in anat.bundle and isinstance(r, tuple)]
    if margins:   # a tip inside the bundle's margin can never be feasible: drop such targets
        need = max(margins) + nd.widening_mm
        keep = _clear_of(labels, list(anat.bundle.values()), pts, need)
        if not keep.any():
            warnings.append(f"no viable target at least {need:.1f} mm from the neurovascular bundle")
            keep[:] = True
        pts, depth = pts[keep], depth[keep]
    if not anat.bundle:
        warnings.append("no neurovascular bundle labelled (artery, vein, nerve): the bundle margin was not "
                        "checked; segment the main vessels and nerve")
    tol = float(rule("entry_on_incision")["tolerance_mm"] if incision_tolerance_mm is None else incision_tolerance_mm)
    curve = None
    if incision is not None:
        curve = np.asarray(incision, float)
        if curve.ndim != 2 or curve.shape[1] != 3 or len(curve) < 2:
            raise InputError("the incision must be a curve of at least 2 RAS points (a markups curve)")
        curve = inc.densify(curve)
        warnings += _check_incision_on_skin(ct, labels, curve, tol)
    off = {"table_side": patient_position is None, "craniocaudal": max_craniocaudal_deg is None}
    # no lung or liver labelled (a limb): their rules are off, as plan.json says (`_limb_only`); on,
    # the planner took any air in the body (skin folds, gas) for lung and dropped tracts for pleural
    # crossings the plan called not applicable (new-user trial 77 M1: STS_002, 351 of 1541 tracts).
    # With a lung or liver labelled (a trunk-wall sarcoma) they apply as in any needle plan.
    from ... import anatomy
    from ..problem import OPTIONAL_RULES

    lung_or_liver = any(n in anatomy.AERATED_LUNG or anatomy.is_liver(n) for n in labels.labels.values())
    off.update({r: not lung_or_liver for r in LUNG_LIVER_RULES if r in OPTIONAL_RULES})
    c = Constraints(disabled_rules=tuple(dict.fromkeys([r for r, o in off.items() if o] + list(disabled_rules or ()))),
                    entry_region=None if curve is None else (curve, tol), max_craniocaudal_deg=max_craniocaudal_deg,
                    **({"patient_position": patient_position} if patient_position else {}),
                    **({"max_skin_angle_deg": float(max_skin_angle_deg)} if max_skin_angle_deg is not None else {}),
                    **({"skin_spacing_mm": float(skin_spacing_mm)} if skin_spacing_mm is not None else {}))
    weights = dict(rule("shortest_tract")["weights"])
    bone_values = [v for n, v in anat.bones.items()]
    axis, how = inc.long_axis(labels, bone_values, centre)
    if curve is None and how.startswith("scanner S axis"):
        warnings.append(f"the default incision runs along the {how}")
    min_sep = float(cfg["cores"]["min_separation_mm"])
    user_curve = curve
    limit = float(cfg["cores"]["specimen_max_nonviable_pct"])
    spec = _Specimen(labels, value, vm, ct, throw, limit)
    job = _CoreJob(ct, labels, name, value, pts, depth, nd, c, roles, weights, inv, rule_of, k, progress, n_cores,
                   min_sep, float(cfg["cores"]["max_fan_deg"]), spec, user_curve, axis, tmask, warnings,
                   {n: r for n, r in (roles_override or {}).items()})
    for spec.limit_pct in (limit, 100.0):   # whole specimens in viable tumour; else the least necrotic, warned
        cores, curve, source, result = _plan_cores(job)   # the relaxed pass re-uses the needle plans
        if cores or not result.feasible:
            break
    if cores and spec.limit_pct > limit:
        warnings.append(f"no compliant core lies wholly in viable tumour (specimen limit {limit:g}% not viable): "
                        "the cores below sample the least non-viable tissue found")
    over = [f"core {i + 1} {co['specimen_nonviable_pct']:g}%" for i, co in enumerate(cores)
            if co["specimen_nonviable_pct"] > limit]
    if over:
        warnings.append(f"specimen not wholly in the viable map (limit {limit:g}%): {', '.join(over)} of the "
                        f"{throw:g} mm core lies in non-viable (necrotic/cystic) tumour: expect a lower diagnostic yield")
    if cores and user_curve is not None:
        warnings += _longer_than_shortest(result, cores[0]["metrics"], spec)
    failure = None
    if not cores and result.feasible:
        failure = (f"from no proposed entry does the {throw:g} mm core (the needle's throw) lie in viable "
                   "tumour: a shorter throw (--throw) or another target is needed")
        warnings.append(failure)
    elif not cores and user_curve is not None:
        failure = _incision_failure(result, user_curve, tol)
    if cores and patient_position is None:
        warnings += _entry_on_the_couch_side(ct, cores[0]["metrics"])
    marks = inc.landmarks(labels, anat, axis)
    if cores and not marks:
        warnings.append("no palpable landmark (patella, greater trochanter) in the image: the tattoo point is "
                        "given in RAS only")
    from .incision import landmark_distances

    lm = landmark_distances(cores[0]["metrics"].entry_ras, marks, axis) if cores else {}
    from ..entry_region import distance_to_region

    for co in cores:
        d_inc = float(distance_to_region(np.asarray(co["metrics"].entry_ras)[None], curve)[0]) if curve is not None else None
        co["rules"] = rule_status(co["metrics"], rule_of, roles, d_inc, tol, checked, float(result.maps.cap_mm))
        co["crossed"] = {n: round(mm, 1) for n, mm in co["metrics"].length_in_mm.items() if mm > 0}
        co["compartments_crossed"] = sorted({anat.compartment_of(n) for n in co["crossed"]} - {None})
    return SarcomaPlan(result, name, inv, {k2: list(v) for k2, v in anat.compartments.items()}, vm, cores,
                       curve, source, tol, axis, how, lm, rule_of, roles, checked, warnings, failure,
                       lung_or_liver)


def _entry_on_the_couch_side(ct: Volume, core) -> list:
    """[one warning] when the first tract's entry (``core``: `PathMetrics`) faces the couch of the
    scan, else []: with the table-side rule off (the limb is positioned for the entry), an entry
    whose outward tract direction lies within 45 degrees of the couch direction of the scan's
    position (DICOM PatientPosition, else supine: `problem.POSITIONS`) is on the skin the patient
    lay on, and nothing said the patient must be turned (new-user trial 36 M3: STS_002's entry on
    the posterior thigh resting on the couch)."""
    from ..problem import POSITIONS, TABLE_SIDE, position_from_header

    pos, _ = position_from_header(getattr(ct, "meta", None) or {}, None, "supine")
    out_dir = np.asarray(core.entry_ras, float) - np.asarray(core.target_ras, float)
    n = float(np.linalg.norm(out_dir))
    if n == 0.0 or float(out_dir @ np.asarray(POSITIONS[pos], float)) / n < np.cos(np.radians(45.0)):
        return []
    return [f"the entry {[round(float(x), 1) for x in core.entry_ras]} RAS mm is on the {TABLE_SIDE[pos]} skin, the "
            f"side the patient lay on in this scan ({pos}): position the limb or the patient (turned) so that "
            "this skin is reachable for the biopsy, or give --position to plan for the position of the scan"]


def _longer_than_shortest(result: Plan, core, spec: "_Specimen", max_checked: int = 50) -> list:
    """[one warning] when the tract ``core`` (`PathMetrics` of the first core, near the user's incision) is longer than the
    shortest compliant tract to its target by more than sarcoma_biopsy.json
    ``shortest_tract.longer_warn_mm``, else []. Compliant: among the plan's candidates, one that
    meets every rule but the incision and whose core specimen passes ``spec`` (the shortest
    ``max_checked`` such candidates are tested, shortest first). The whole tract is excised with
    the tumour at resection."""
    from ..scoring import BIT

    t = result.table
    ok = np.flatnonzero((t.violations & ~BIT["entry_region"]) == 0)
    ok = ok[np.argsort(t.length_mm[ok], kind="stable")][:max_checked]
    length_mm, target = float(core.length_mm), np.asarray(core.target_ras, float)
    j = next((int(i) for i in ok if spec.check(np.asarray(t.entry_ras[i], float), target)[0]), None)
    if j is None:
        return []
    short = float(t.length_mm[j])
    over = float(rule("shortest_tract")["longer_warn_mm"])
    if length_mm - short <= over:
        return []
    return [f"the tract near your incision is {length_mm:.0f} mm long, {length_mm - short:.0f} mm longer than the "
            f"shortest compliant tract to the same target ({short:.0f} mm from entry "
            f"{np.round(t.entry_ras[j], 1).tolist()} RAS mm): the whole tract is excised with the tumour; check "
            "that the incision is where the surgeon will make it"]


def _check_incision_on_skin(ct: Volume, labels: Volume, curve: np.ndarray, tol: float) -> list:
    """Warnings (a list of lines) about the incision ``curve`` ((m, 3) RAS mm, 1 mm steps): part
    of it outside the CT (an incision longer than a cropped CT is normal: the part inside is
    checked). InputError (one line) when the whole curve lies outside the CT, or when the part
    inside is everywhere farther than ``tol`` mm from the outer skin
    (`imagio.planning.skin.outer_skin`; nearest skin voxel centre): no entry could then lie within
    the tolerance of it."""
    from scipy.spatial import cKDTree

    from ..skin import outer_skin

    inside = ct.contains_world(curve)
    p = np.round(curve[np.flatnonzero(~inside)[0]], 1).tolist() if not inside.all() else None
    if not inside.any():
        raise InputError(f"--incision: all {len(curve)} curve points (1 mm steps) lie outside the CT (e.g. {p} RAS "
                         "mm): draw the incision on this CT's skin (RAS mm; --lps for L,P,S files)")
    out = [] if inside.all() else [f"{int((~inside).sum())} mm of the incision lie outside the CT (e.g. {p} RAS mm): "
                                   "only the part inside was checked against the skin"]
    skin = outer_skin(ct, labels).skin
    kji = np.argwhere(skin)
    if not len(kji):
        return out
    d, _ = cKDTree(ct.kji_to_world(kji.astype(float))).query(curve[inside])
    if d.min() > tol:
        raise InputError(f"--incision: the curve is {d.min():.0f} mm from the skin at its nearest point, more than "
                         f"the entry's tolerance ({tol:g} mm): draw it on the skin over the tumour, or raise "
                         "--incision-tolerance")
    return out


def _incision_failure(result: Plan, curve: np.ndarray, tol: float) -> str:
    """One line saying why no tract meets the incision rule: the nearest entry that meets every
    other rule (a candidate whose only violation is ``entry_region``) and its distance from the
    incision, and what to change."""
    from ..entry_region import distance_to_region
    from ..scoring import BIT

    t = result.table
    only = t.violations == BIT["entry_region"]
    if not only.any():
        return (f"no tract meets the rules even without the incision (within {tol:g} mm of it): see the "
                "planner's near-miss in plan.json; the incision is not the only obstacle")
    d = distance_to_region(t.entry_ras[only], curve)
    j = int(np.argmin(d))
    return (f"no compliant entry within {tol:g} mm of the incision: the nearest compliant entry "
            f"{np.round(t.entry_ras[only][j], 1).tolist()} RAS mm is {d[j]:.0f} mm from it; move the incision "
            f"over it or raise --incision-tolerance (e.g. --incision-tolerance {int(np.ceil(d[j])) + 1})")


BONE_HU = dense_min_hu()   # the one definition of dense tissue (`density`), the planner's fallback bone threshold


def _bone_from_ct(ct: Volume, labels: Volume, tumour: np.ndarray, keep_values=(), min_ml: float = 0.1):
    """(labels with a "bone" label, its volume mL): CT > ``BONE_HU`` (`problem.threshold_bone`)
    outside the tumour (its calcifications stay targets) and outside the labels ``keep_values``
    (bundle, joints: already kept out), painted over any other label (a body or muscle label
    must not hide bone); components of at least ``min_ml`` (noise specks dropped, 26-connectivity,
    cc3d). The input label map is not modified."""
    import cc3d

    from ..problem import threshold_bone

    m = threshold_bone(ct, BONE_HU) & ~tumour & ~np.isin(labels.array, list(keep_values))
    if not m.any():
        return labels, 0.0
    cc, n = cc3d.connected_components(m, connectivity=26, return_N=True)
    sizes = np.bincount(cc.ravel())
    keep = sizes * ct.voxel_volume_ml >= min_ml
    keep[0] = False
    m = keep[cc]
    if not m.any():
        return labels, 0.0
    v = int(max(labels.labels) if labels.labels else 0) + 1
    arr = labels.array.astype(np.uint16 if v > 255 else labels.array.dtype, copy=True)
    arr[m] = v
    return labels.with_array(arr, labels={**labels.labels, v: "bone"}), float(m.sum()) * ct.voxel_volume_ml


def _dense_out_of_tumour(ct: Volume, labels: Volume, tumour: np.ndarray, name: str):
    """(labels, tumour mask, (label name, mL) or None): the tumour's voxels at bone density on the
    CT (> ``BONE_HU``, `problem.threshold_bone`: bone, calcification, angiographic contrast or metal;
    `density` module) in 26-connected objects of at least `density.min_object_voxels` (smaller specks
    are noise or sub-resolution calcification, as the planner's density check counts them) are
    taken out of the tumour and labelled ``bone_in_<name>`` (a bone by the rules' patterns: role
    no_bone). A tumour outline that takes in the cortex it abuts (an outline drawn on MR, or a
    tumour eroding the bone) otherwise makes bone "viable tumour" and lets a core end in it
    (new-user trial 39 H3: STS_008, core 2's last 6 mm at 700-1300 HU said "no_bone: met"). The
    input label map is not modified."""
    import cc3d

    from ..density import min_object_voxels
    from ..problem import threshold_bone

    bone = threshold_bone(ct, BONE_HU)
    m = tumour & bone
    if not m.any():
        return labels, tumour, None
    # with the medullary cavity the cortex encloses in each axial section: marrow is bone, not a
    # necrotic part of the tumour (review 39 M5: an outline over the femur reported its marrow as
    # necrosis and moved the viable threshold); on the tumour's box, padded by a voxel
    from ...segmentation.common import anatomical_axes, fill_holes_per_slice

    kji = np.argwhere(tumour)
    lo, hi = np.maximum(kji.min(0) - 1, 0), np.minimum(kji.max(0) + 2, tumour.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    dense = bone[box]
    axial = anatomical_axes(ct)["S"][0]
    m[box] |= tumour[box] & fill_holes_per_slice(dense, axial) & ~dense
    cc = cc3d.connected_components(m, connectivity=26)
    keep = np.bincount(cc.ravel()) >= min_object_voxels(ct.voxel_volume_ml)
    keep[0] = False
    m = keep[cc]
    if not m.any():
        return labels, tumour, None
    label = f"bone_in_{name}"
    v = int(max(labels.labels) if labels.labels else 0) + 1
    arr = labels.array.astype(np.uint16 if v > 255 else labels.array.dtype, copy=True)
    arr[m] = v
    return (labels.with_array(arr, labels={**labels.labels, v: label}), tumour & ~m,
            (label, float(m.sum()) * ct.voxel_volume_ml))


MAX_PRIMARY_TARGETS = 6   # distinct deepest viable points (>= min_sep apart) tried as the first core's target


@dataclass
class _CoreJob:
    """What the core selection needs (`_plan_cores`): the CT and labels, the tumour's name and
    value, the candidate targets (RAS, deepest first) and their depth mm, the needle, the
    planner's constraints, roles and weights, the involved compartments and structure rules (for
    the plan's record), the planner's ``k`` and progress, the cores asked, their separation mm and
    fan angle deg, the specimen test, the user's incision (or None), the limb axis, the tumour
    mask and the warnings list (appended to). ``plans``: the needle plans made so far, per target
    tried, (PlanningProblem, Plan): a pass with a relaxed specimen limit re-uses them."""

    ct: Volume
    labels: Volume
    name: str
    value: int
    pts: np.ndarray
    depth: np.ndarray
    needle: Needle
    constraints: Constraints
    roles: dict
    weights: dict
    involved: dict
    rule_of: dict
    k: int | None
    progress: object
    n_cores: int
    min_sep: float
    max_fan_deg: float
    spec: "_Specimen"
    user_curve: np.ndarray | None
    axis: np.ndarray
    tmask: np.ndarray
    warnings: list
    user_roles: dict = field(default_factory=dict)
    plans: list = field(default_factory=list)

    def needle_plan(self, attempt: int, j0: int):
        """(PlanningProblem, Plan) to candidate target ``j0``, the ``attempt``-th target tried:
        planned once, then re-used."""
        if attempt < len(self.plans):
            return self.plans[attempt]
        prob = PlanningProblem.build(self.ct, self.labels, Target(self.pts[j0], self.name, self.value),
                                     needle=self.needle, constraints=self.constraints, roles=self.roles,
                                     weights=self.weights, registration_checked=True)   # checked once, above
        # the rules set the other roles, not the user (recorded below); the user's --role are recorded as such
        prob.roles_overridden = {n: (r if isinstance(r, str) else f"{r[0]}:{r[1]:g}") for n, r in self.user_roles.items()}
        prob.rules_extra["sarcoma_biopsy"] = {"involved_compartments": list(self.involved),
                                              "structure_rules": self.rule_of,
                                              "why_table_side_off": "the limb is positioned for the entry",
                                              "why_craniocaudal_off": "limb tracts run along the limb by design"}
        self.plans.append((prob, plan(prob, k=self.k, progress=self.progress)))
        return self.plans[attempt]


def _plan_cores(job: _CoreJob):
    """(cores, incision polyline, its source, the last `Plan`): plan to the deepest viable point
    with the needle planner and fan the cores from the best entry whose specimen passes
    ``job.spec``; when none does, the next deepest points (at least ``job.min_sep`` from those
    tried; at most ``MAX_PRIMARY_TARGETS``). Needle plans are made once per target
    (`_CoreJob.needle_plan`)."""
    pts, depth = job.pts, job.depth
    tried: list = []
    cores, curve, source, result = [], job.user_curve, "none", None
    for attempt in range(MAX_PRIMARY_TARGETS):
        far = np.ones(len(pts), bool)
        for q in tried:
            far &= np.linalg.norm(pts - q, axis=1) >= job.min_sep
        if not far.any():
            break
        j0 = int(np.flatnonzero(far)[0])
        tried.append(pts[j0])
        order = np.r_[j0, np.delete(np.arange(len(pts)), j0)]
        prob, result = job.needle_plan(attempt, j0)
        cores, curve, source = _cores_from_proposals(result, pts[order], depth[order], job.n_cores, job.min_sep,
                                                     job.spec, job.max_fan_deg, job.user_curve, prob, job.ct,
                                                     job.axis, job.tmask, job.warnings)
        if cores:
            if attempt:
                job.warnings.append(f"the deepest viable point could not be reached by a compliant tract: target "
                                    f"{attempt + 1} (depth {depth[j0]:.1f} mm) is used")
            break
    return cores, curve, source, result


@dataclass
class _Specimen:
    """The core needle's specimen test: the last ``throw_mm`` of a tract (from the tip before
    firing to the fired tip) must lie in the tumour (label ``tumour_value``) and at most
    ``limit_pct`` % of it outside the viable map ``vm``."""

    labels: Volume
    tumour_value: int
    vm: ViableMap
    ct: Volume
    throw_mm: float
    limit_pct: float

    def check(self, entry, target):
        """(ok, tip before firing RAS, non-viable % of the specimen)."""
        ok, start = _throw_fits(self.labels, self.tumour_value, entry, target, self.throw_mm)
        if self.throw_mm <= 0:
            return ok, start, 0.0
        pct = round(100.0 * specimen_nonviable_fraction(self.vm, self.ct, start, target), 1)
        return ok and pct <= self.limit_pct, start, pct


MAX_ENTRIES = 5   # proposals (best first) whose fans are compared when the best gives fewer cores than asked


def _cores_from_proposals(result, pts, depth, n_cores, min_sep, spec, max_fan, user_curve, prob, ct, axis, tmask,
                          warnings):
    """(cores, incision polyline, its source) from the plan's proposals, best first: among the
    first ``MAX_ENTRIES`` proposals whose specimen passes ``spec`` (`_Specimen.check`), the one
    whose fan (`_fan_cores`) gives the most cores (the best-ranked on ties; the first that gives
    ``n_cores`` stops the search) gives the entry. ``pts``/``depth``: candidate targets, the plan's
    target first."""
    curve = user_curve
    source = "user curve" if user_curve is not None else "none"
    best, tried = None, 0
    for r, prop in enumerate(result.proposals):
        if tried >= MAX_ENTRIES:
            break
        ok, start, pct = spec.check(np.asarray(prop.entry_ras), np.asarray(prop.target_ras))
        if not ok:
            continue
        tried += 1
        cores = _fan_cores(result, prop, pts, depth, n_cores, min_sep, spec, max_fan)
        cores[0]["fire_from_ras"] = start
        cores[0]["specimen_nonviable_pct"] = pct
        if best is None or len(cores) > len(best[1]):
            best = (r, cores)
        if len(cores) >= n_cores:
            break
    if best is None:
        return [], curve, source
    r, cores = best
    if r:
        warnings.append(f"proposal {r + 1}'s entry is used (the better-ranked ones' {spec.throw_mm:g} mm cores "
                        "would not lie in viable tumour, or they allow fewer cores)")
    if curve is None:
        curve = inc.default_incision(prob.skin.skin, ct, np.asarray(cores[0]["metrics"].entry_ras), axis,
                                     ct.kji_to_world(np.argwhere(tmask)[::50].astype(float)))
        source = "default: along the limb's long axis through the chosen compliant entry"
    if len(cores) < n_cores:
        warnings.append(f"only {len(cores)} of {n_cores} cores from this entry reach distinct viable regions "
                        "while meeting every rule")
    return cores, curve, source


def _throw_fits(labels: Volume, tumour_value: int, entry, target, throw_mm: float):
    """(ok, tip before firing, RAS): the tract ends at ``target``, the deepest point the core
    needle reaches when fired; the sampled core is the last ``throw_mm`` of the tract, from the
    tip before firing (``target - throw_mm`` along the tract) to ``target``. ok when that core
    lies in the tumour (0.5 mm steps, nearest label) and starts after the entry. The rules along
    the whole tract, throw included, are the planner's (the tract ends at ``target``)."""
    d = np.asarray(target, float) - np.asarray(entry, float)
    length = float(np.linalg.norm(d))
    d /= length
    start = np.asarray(target, float) - throw_mm * d
    if throw_mm <= 0:
        return True, np.asarray(target, float)
    if throw_mm >= length:
        return False, start
    s = start + np.linspace(0.0, 1.0, max(2, int(np.ceil(throw_mm / 0.5)) + 1))[:, None] * (target - start)
    return bool(labels.contains_world(s).all() and (labels.sample(s, order=0) == tumour_value).all()), start


def _fan_cores(result: Plan, first, pts, depth, n: int, min_sep: float, spec: "_Specimen",
               max_fan_deg: float = 30.0, max_tries: int = 80) -> list:
    """Up to ``n`` cores from ``first``'s entry: ``first`` (the planned tract to the deepest viable
    point), then, among the candidate targets within ``max_fan_deg`` of that tract and at least
    ``min_sep`` mm from the chosen ones, the one farthest from them (saturating at 3 ``min_sep``)
    plus its depth in viable tumour (mm), each evaluated by the planner and its independent re-check, its
    specimen passing ``spec`` (`_Specimen.check`); rejected targets and their ``min_sep / 2`` neighbourhood are skipped."""
    ev = result.evaluator
    entry = np.asarray(first.entry_ras)
    cores = [{"metrics": first, "depth_mm": round(float(depth[0]), 1), "throw_mm": spec.throw_mm, "fan_deg": 0.0}]
    chosen = np.asarray(first.target_ras)
    dmin = np.linalg.norm(pts - chosen, axis=1)
    u0 = (chosen - entry) / np.linalg.norm(chosen - entry)
    u = (pts - entry) / np.maximum(np.linalg.norm(pts - entry, axis=1, keepdims=True), 1e-9)
    fan = np.degrees(np.arccos(np.clip(u @ u0, -1.0, 1.0)))
    alive = (dmin >= min_sep) & (fan <= max_fan_deg)
    tries = 0
    while len(cores) < n and alive.any() and tries < max_tries:
        tries += 1
        # spread first (distance to the chosen targets, saturating at 3 separations), then depth
        key = np.minimum(dmin, 3.0 * min_sep) + depth
        j = int(np.argmax(np.where(alive, key, -np.inf)))
        m = ev.evaluate(entry, pts[j])
        ok, start, pct = spec.check(entry, pts[j]) if m.feasible else (False, None, None)
        if ok:
            cores.append({"metrics": m, "depth_mm": round(float(depth[j]), 1), "throw_mm": spec.throw_mm,
                          "fire_from_ras": start, "specimen_nonviable_pct": pct, "fan_deg": round(float(fan[j]), 1)})
            dj = np.linalg.norm(pts - pts[j], axis=1)
            dmin = np.minimum(dmin, dj)
            alive &= dj >= min_sep
        else:
            alive &= np.linalg.norm(pts - pts[j], axis=1) >= 0.5 * min_sep
    return cores


def _clear_of(labels: Volume, values, pts, need_mm: float) -> np.ndarray:
    """Bool per point (n, 3) RAS: farther than ``need_mm`` from every voxel of ``values``
    (exact Euclidean distance transform on a crop around the points, mm)."""
    import edt

    kji = labels.nearest_kji(pts)
    pad = np.ceil((need_mm + 2.0) / np.asarray(labels.spacing_kji)).astype(int)
    lo = np.maximum(kji.min(0) - pad, 0)
    hi = np.minimum(kji.max(0) + pad + 1, labels.shape)
    sub = np.isin(labels.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], values)
    if not sub.any():
        return np.ones(len(pts), bool)
    d = edt.edt(~sub, anisotropy=tuple(float(x) for x in labels.spacing_kji), black_border=False)
    return d[tuple((kji - lo).T)] > need_mm
