"""All metrics of one path, fast enough to follow a mouse drag (about a millisecond).

``Evaluator(problem, maps).evaluate(entry_ras, target_ras)`` reuses the vectorised scorer on a
single path and adds exact per-structure clearances (k-d trees of the structures' boundary
voxels, `PlanningMaps.structure_clearances`) and the length in each labelled structure
(`along.label_lengths`). RAS mm, degrees.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..anatomy import is_liver
from ..jsonable import to_jsonable

from .along import label_lengths
from .candidates import normals_at
from .distance_maps import PlanningMaps, precompute
from .problem import PlanningProblem
from .criteria import CRITERIA
from .scoring import BIT, ScoreTable, _score_chunk, path_samples


@dataclass
class PathMetrics:
    """Metrics of one straight path entry -> target (RAS mm, degrees, %)."""

    entry_ras: list
    target_ras: list
    feasible: bool
    violations: list[str]            # constraint names violated
    details: list[str]               # one human-readable line per violation
    length_mm: float
    length_in_mm: dict               # structure name -> mm travelled inside it
    aerated_lung_mm: float
    lung_mm: float
    clearance_mm: dict               # structure -> min distance from the needle axis (< cap)
    closest_structure: str | None    # nearest obstacle structure (smallest distance, `clearance_mm`'s first)
    closest_clearance_mm: float      # its clearance (the same number as in `clearance_mm`)
    slack_mm: float                  # min (distance - margin) over hard structures
    required_mm: float               # needle radius + placement uncertainty
    skin_angle_deg: float
    craniocaudal_deg: float
    inplane_deg: float
    gantry_tilt_deg: float
    pleural_crossings: int
    fissure_crossings: int
    emphysema_pct: float
    liver_before_target_mm: float | None   # liver crossed before the target (None: no liver label, unknown)
    score: float
    costs: dict = field(default_factory=dict)
    check_problems: list = field(default_factory=list)   # independent re-check (`verify`) findings
    limiting_structure: str | None = None   # binding hard structure (smallest distance - its margin)
    limiting_clearance_mm: float | None = None   # its distance (score table; the slack is this - margin)

    def to_dict(self) -> dict:
        return to_jsonable(asdict(self))


def violation_details(problem: PlanningProblem, t: ScoreTable, i: int) -> list[str]:
    """One line per violated constraint of row ``i``, with the numbers."""
    c, names, out = problem.constraints, t.names, []
    bits = int(t.violations[i])
    nm = lambda j: names[j] if j >= 0 else "?"  # noqa: E731
    if bits & BIT["reach"]:
        out.append(f"reach: path {t.length_mm[i]:.1f} mm > needle {problem.needle.length_mm:.0f} mm")
    if bits & BIT["table_side"]:
        out.append(f"table_side: entry faces the table, or the needle left outside the skin would "
                   f"reach below the table top ({c.patient_position})")
    if bits & BIT["entry_region"]:
        out.append("entry_region: entry outside the allowed region")
    if bits & BIT["skin_angle"]:
        out.append(f"skin_angle: {t.skin_angle_deg[i]:.1f} deg > {c.max_skin_angle_deg:.0f} deg")
    if bits & BIT["craniocaudal"]:
        out.append(f"craniocaudal: {t.craniocaudal_deg[i]:.1f} deg > {c.max_craniocaudal_deg:.0f} deg")
    if bits & BIT["forbidden"]:
        out.append(f"forbidden: crosses {nm(int(t.forbidden_hit[i]))}")
    if bits & BIT["clearance"]:
        j = int(t.closest[i])
        m = t.clearance_mm[i] - t.slack_mm[i]
        out.append(f"clearance: {t.clearance_mm[i]:.1f} mm to {nm(j)} < margin {m:.1f} + "
                   f"needle/uncertainty {t.widening_mm:.1f} mm")
    if bits & BIT["liver_parenchyma"]:
        out.append(f"liver_parenchyma: {t.liver_before_mm[i]:.1f} mm of liver before the lesion < "
                   f"{c.min_liver_parenchyma_mm:.0f} mm")
    if bits & BIT["pleural_crossings"]:
        out.append(f"pleural_crossings: {int(t.pleural_crossings[i])} > {c.max_pleural_crossings}")
    if bits & BIT["fissure"]:
        out.append(f"fissure: crosses {int(t.fissure_crossings[i])} fissure(s)")
    if bits & BIT["leaves_body"]:
        out.append("leaves_body: the path crosses air around the patient (a skin fold or the gap "
                   "between arm and trunk)")
    if bits & BIT["verification"]:
        out.append("verification: the independent re-check of this path failed (plan.json "
                   "'independent_check')")
    if bits & BIT["dense_tissue"]:
        out.append("dense_tissue: the path crosses, or passes closer than the needle radius + placement "
                   "uncertainty to, unlabelled dense tissue on the CT (bone, calcification, contrast-filled vessel "
                   "or metal that the label map misses; plan.json 'warnings')")
    if bits & BIT["unseen_skin"]:
        out.append("unseen_skin: the air beyond the entry is not imaged (along the skin's outward normal or the "
                   "needle's axis continued outward, the image ends before more than one voxel of air is crossed: the "
                   "body is cut by the field of view there), so the skin surface is not known; no entry there")
    if bits & BIT["emphysema"]:
        out.append(f"emphysema: {t.emphysema_pct[i]:.0f}% of the lung path < {c.emphysema_hu:.0f} HU")
    return out


def liver_before(problem: PlanningProblem, t: ScoreTable, i: int, length_in: dict) -> float | None:
    """Liver (mm) crossed by row ``i`` before the target: the scorer's figure for a target in the
    liver, else the liver (and its segments) in ``length_in`` (structure name -> mm along the whole
    path); None where the label map has no liver: the path may cross an unlabelled liver (new-user
    trial 92 H1: 0.0 was reported for ~60 mm of unlabelled liver crossed to a lung-base target)."""
    if not any(is_liver(n) for n in problem.labels.labels.values()):
        return None
    if is_liver(problem.target.organ):
        return float(t.liver_before_mm[i])
    return float(sum(mm for n, mm in length_in.items() if is_liver(n)))


class Evaluator:
    """Live metrics of single paths for one problem (maps precomputed once)."""

    def __init__(self, problem: PlanningProblem, maps: PlanningMaps | None = None, verifier=None):
        self.problem = problem
        self.maps = maps if maps is not None else precompute(problem)
        self._verifier = verifier

    def structure_clearances(self, kji: np.ndarray) -> dict:
        """Min distance (mm) from the samples of one path (kji in the crop) to each obstacle
        structure within the cap, nearest first (`PlanningMaps.structure_clearances`: exact
        distances to the structures' boundary voxel centres, minus half a voxel)."""
        return self.maps.structure_clearances(kji)

    def evaluate(self, entry_ras, target_ras=None, normal_ras=None) -> PathMetrics:
        """Every metric of the path ``entry_ras`` -> ``target_ras`` (default: the problem's
        target). ``normal_ras``: outward skin normal at the entry (default: from the body mask)."""
        p, maps = self.problem, self.maps
        e = np.asarray(entry_ras, float).reshape(1, 3)
        tgt = np.asarray(p.target.point_ras if target_ras is None else target_ras, float).reshape(3)
        nrm = normals_at(maps, e) if normal_ras is None else np.asarray(normal_ras, float).reshape(1, 3)
        step = p.constraints.step_voxels * float(min(maps.grid.spacing))
        samples = path_samples(maps, e, tgt, step)
        t = _score_chunk(p, maps, e, nrm, tgt, samples=samples)
        m = self.metrics(t, 0, samples)
        if m.feasible:   # a path is feasible only if the independent re-check agrees
            if self._verifier is None:
                from .verify import Verifier

                self._verifier = Verifier(p)
            v = self._verifier.verify(e[0], tgt)
            m.check_problems = list(v.problems)
            m.feasible = not m.check_problems
            m.details = m.details + [f"independent check: {x}" for x in m.check_problems] + [
                f"warning: {x}" for x in v.notes]
        # the needle part outside the skin and its hub against another body part (the plan's
        # 'outside_clearance' finding, here for the dragged path too: trial 61 M2)
        from .findings import couch_clearance, couch_text, near_text, outside_clearance, unimaged_needle, unimaged_text

        # beyond the image where the body is cut (the plan's 'unimaged_needle' finding, hub included)
        gone, sides, uat, uhub, ucut = unimaged_needle(p, e, tgt[None], [m.length_mm])
        if gone[0] > 0.0:
            m.details = m.details + [f"warning: {unimaged_text(p, gone[0], sides[0], uat[0], bool(uhub[0]), bool(ucut[0]))}"]
        near, at, hub, inside = outside_clearance(p, e, tgt[None], [m.length_mm])
        if np.isfinite(near[0]):
            m.details = m.details + [f"warning: {near_text(p, near[0], at[0], bool(hub[0]), bool(inside[0]))}"]
        # and against the couch top (the plan's 'couch_clearance' finding)
        cmm, cat, chub = couch_clearance(p, e, tgt[None], [m.length_mm])
        if np.isfinite(cmm[0]):
            m.details = m.details + [f"warning: {couch_text(p, cmm[0], cat[0], bool(chub[0]))}"]
        return m

    def metrics(self, t: ScoreTable, i: int, samples=None) -> PathMetrics:
        """PathMetrics of row ``i`` of a score table (adds per-structure clearances and lengths)."""
        p, maps = self.problem, self.maps
        step = p.constraints.step_voxels * float(min(maps.grid.spacing))
        if samples is None:
            samples = path_samples(maps, t.entry_ras[i:i + 1], t.target_ras[i], step)
        kji = np.stack(samples[0], axis=1)
        names = p.labels.labels
        length_in = {names.get(v, "unlabelled" if v == 0 else f"label_{v}"): mm
                     for v, mm in label_lengths(p.labels, t.entry_ras[i], t.target_ras[i], step).items()}
        clear = self.structure_clearances(kji)
        j = int(t.closest[i])
        # nearest by distance (trial 39 L3: the binding one, after margins, was called the closest, and a
        # vessel had two clearances in one proposal); the binding one is `limiting_structure`
        limiting = maps.names[j] if j >= 0 else None
        nearest = min(clear.items(), key=lambda kv: kv[1]) if clear else (limiting, float(t.clearance_mm[i]))
        viol = [n for n in BIT if t.violations[i] & BIT[n]]
        return PathMetrics(
            entry_ras=t.entry_ras[i].tolist(), target_ras=t.target_ras[i].tolist(),
            feasible=not viol, violations=viol, details=violation_details(p, t, i),
            length_mm=float(t.length_mm[i]), length_in_mm=length_in,
            aerated_lung_mm=float(t.aerated_mm[i]), lung_mm=float(t.lung_mm[i]),
            clearance_mm=clear, closest_structure=nearest[0], closest_clearance_mm=float(nearest[1]),
            limiting_structure=limiting, limiting_clearance_mm=float(t.clearance_mm[i]), slack_mm=float(t.slack_mm[i]),
            required_mm=float(t.widening_mm), skin_angle_deg=float(t.skin_angle_deg[i]),
            craniocaudal_deg=float(t.craniocaudal_deg[i]), inplane_deg=float(t.inplane_deg[i]),
            gantry_tilt_deg=float(t.gantry_tilt_deg[i]),
            pleural_crossings=int(t.pleural_crossings[i]), fissure_crossings=int(t.fissure_crossings[i]),
            emphysema_pct=float(t.emphysema_pct[i]), liver_before_target_mm=liver_before(p, t, i, length_in),
            score=float(t.score[i]), costs={k: float(v) for k, v in zip(CRITERIA, t.costs[i])})
