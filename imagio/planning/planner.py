"""The planning pipeline: precompute maps -> skin candidates -> score all -> proposals.

``plan(problem)`` returns a `Plan`; when no candidate is feasible, ``plan.feasible`` is False
and ``plan.report`` says which constraint excluded how many candidates and what the best
near-miss violates (``plan(..., strict=True)`` raises `NoFeasiblePath` carrying that report).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import anatomy
from ..errors import ImagioError
from ..progress import Progress
from .candidates import Candidates, skin_candidates
from .continuation import continuation_base
from .criteria import criteria_table
from .distance_maps import PlanningMaps, precompute
from ..jsonable import to_jsonable
from ..volume import values_mask
from .evaluate import Evaluator, PathMetrics, violation_details
from .problem import PlanningProblem, load_defaults
from .proposals import propose
from .scoring import BIT, ScoreTable, score_paths


class NoFeasiblePath(ImagioError):
    """No candidate path satisfies every hard constraint; ``report`` explains why."""

    def __init__(self, report: dict):
        self.report = report
        super().__init__(format_report(report))


def _how_close(mm: float) -> str:
    return "inside it" if mm < 0 else f"{mm:.1f} mm"


def _too_close(c: dict) -> str:
    """'STRUCTURE (D mm, needs R mm)' of one `Plan.target_too_close` entry."""
    return f"{c['structure']} ({_how_close(c['distance_mm'])}, needs {c['required_mm']:.1f} mm)"


def _target_words(report: dict) -> str:
    """The target as the message names it: the structure's name, or for a point the user gave
    'the target point R,A,S x, y, z mm (in 'body')': a point's label is its host, not the target
    (new-user trial 65 L3: a point in an unlabelled mass read "no feasible needle path to body")."""
    name = report.get("target")
    if not report.get("point_given"):
        return f"{name}"
    x, y, z = (float(v) for v in report.get("target_ras"))
    return f"the target point R,A,S {x:.1f}, {y:.1f}, {z:.1f} mm (in '{name}')"


def format_report(report: dict) -> str:
    """The infeasibility report as one readable paragraph."""
    target = _target_words(report)
    if report.get("candidates") == 0:
        return (f"no feasible needle path to {target}: no skin entry within the "
                f"needle length; the nearest skin is {report.get('nearest_skin_mm')} mm from the "
                "target. Use a longer needle (--needle-length) or check the target point.")
    ex = ", ".join(f"{k} excluded {v['violating']} ({v['only_this']} only by it)"
                   for k, v in report.get("excluded_by", {}).items())
    nm = report.get("best_near_miss") or {}
    why = "; ".join(nm.get("details", [])) or "none"
    close = report.get("target_too_close") or []
    first = ""
    if close:   # every path ends there: say it first (new-user trial 47 M2)
        near = ", ".join(_too_close(c) for c in close)
        first = (f"the target point itself lies too close to {near}: every path ends there, whatever its "
                 "entry; move the target point, or give that structure a smaller margin (--role NAME=margin:MM) "
                 "if that is clinically acceptable. ")
    # with the target too close, every path fails there and the best near-miss is no example to
    # follow (new-user trial 48 L2: one through the aorta, "clearance -1.5 mm"): left to the JSON
    near = "" if close else f"Best near-miss (entry {nm.get('entry_ras')}): {why}. "
    # the couch side excluding the most entries: another position is the first thing to try (trial
    # 80 M6: STS_002's ablation, 666 entries excluded only by the table side, feasible prone)
    only = {k: v.get("only_this", 0) for k, v in report.get("excluded_by", {}).items()}
    couch = only and max(only, key=only.get) == "table_side" and only["table_side"] > 0
    tissue = report.get("target_tissue") or {}
    if tissue:   # the target's own tissue, before the couch (new-user trial 111)
        couch = couch and only["table_side"] > tissue["alone"]
        first += (f"{tissue['words']}. No label tells a nodule there from the chest wall it touches, so a path that "
                  "reaches the point through the lung is counted as leaving the lung into it (a 2nd pleural "
                  f"crossing): {tissue['into']} of the entries excluded by pleural_crossings end that way, "
                  f"{tissue['alone']} of them by that alone. If the point lies in a nodule, give its outline: "
                  "--lesions FILE --target LABEL (imagio lesion CT --point R,A,S --out FILE makes one). ")
    relax = ("The couch side excludes the most entries by itself: if the patient can lie otherwise, plan another "
             "position (--position prone, supine, left_lateral or right_lateral); or relax" if couch else "Relax")
    # the skin within reach lies where the body is cut (trials 86-87): no position or margin helps there
    unseen = report.get("excluded_by", {}).get("unseen_skin", {})
    if unseen and (unseen.get("violating") == report.get("candidates")
                   or (only and max(only, key=only.get) == "unseen_skin" and only["unseen_skin"] > 0)):
        who = ("Every candidate entry lies" if unseen.get("violating") == report.get("candidates")
               else "The entries excluded by one rule alone lie mostly")
        sides = unseen.get("sides") or {}
        at = (" at the image's " + " and ".join(sides) + (" side" if len(sides) == 1 else " sides") + (
            f" ({', '.join(f'{k} {v}' for k, v in sides.items())} entries)" if len(sides) > 1 else "")) if sides else ""
        ext = (" (extend the scan on the " + " and ".join(sides) + (" side" if len(sides) == 1 else " sides") + ")"
               ) if sides else ""
        relax = (f"{who} where the body is cut by the field of view{at} (unseen_skin: the air beyond the skin is not "
                 "imaged, so the skin there is not known, and no position makes it so): a CT whose field of view "
                 f"holds the skin there{ext} is needed for an entry there. " + relax)
    return (f"no feasible needle path to {target}{': ' + first + 'Among' if first else ' among'} {report.get('candidates')} "
            f"candidate entries: {ex or 'no candidate entries within needle reach'}. "
            f"{near}{relax} the constraint that "
            "excludes most (e.g. a longer needle, more gantry tilt, a smaller margin) or choose "
            "another target point.")


@dataclass
class Plan:
    problem: PlanningProblem
    maps: PlanningMaps
    candidates: Candidates
    table: ScoreTable
    ranked: list[int]
    pareto: list[int]
    proposals: list[PathMetrics]
    evaluator: Evaluator
    timings_s: dict = field(default_factory=dict)
    checks: dict = field(default_factory=dict)   # row -> verify.Verification
    positions: dict = field(default_factory=dict)  # patient position -> best verified path there
    findings: object = None                        # findings.Findings of the feasible rows (ranking)
    _warnings_cache: tuple | None = field(default=None, repr=False, compare=False)

    @property
    def feasible(self) -> bool:
        return bool(self.proposals)

    def _state_key(self) -> tuple:
        """What the warnings depend on that a caller may change after planning: the ranked rows,
        the proposals (objects and entries), the positions, the checks, the problem's warnings."""
        return (tuple(self.ranked), tuple((id(m), tuple(np.round(m.entry_ras, 6))) for m in self.proposals),
                id(self.positions), len(self.positions), len(self.checks), len(self.problem.warnings),
                id(self.findings))

    @property
    def warnings(self) -> list[str]:
        """Every doubt about this plan, one line each (`_compute_warnings`). Computed once and
        cached on the plan; recomputed when the proposals, ranking, positions, checks or the
        problem's warnings change (`_state_key`). A new list per access (callers may extend it)."""
        key = self._state_key()
        if self._warnings_cache is None or self._warnings_cache[0] != key:
            self._warnings_cache = (key, self._compute_warnings())
        return list(self._warnings_cache[1])

    def _compute_warnings(self) -> list[str]:
        """Every doubt about this plan, one line each: the problem's (truncated body, unnamed
        labels, unknown host organ), structures assumed absent, and per proposal: clearance
        just at the criterion, long aerated-lung traversal, a structure of role ``avoid`` crossed
        (mm inside it, e.g. the thin pulmonary vessels ``lung_vessels_small``), unlabelled solid
        tissue in the lung, unlabelled soft tissue deep to the body wall (`soft_tissue`: an organ
        the label map may lack), unlabelled costal cartilage (`cartilage`), unlabelled tissue of
        130-250 HU (`intermediate`: calcification, cartilage, a contrast vessel), length near the needle's limit, the findings ranked last
        (`findings`)."""
        p = self.problem
        w = list(p.warnings)
        w += absent_structure_warnings(p, self.maps)
        lim = load_defaults()["warnings"]
        w += position_warnings(p, self.positions)
        w += table_warnings(p)
        w += scan_position_warnings(p)
        ver = self.evaluator._verifier
        if ver is not None and ver._dense is not None:
            w += ver.dense.summary()
        w += self._finding_warnings()
        if not self.feasible:
            rep = self.report
            nm = rep.get("best_near_miss") or {}
            close = rep.get("target_too_close") or []
            if close:   # every path fails at the target: no near-miss to show (trial 48 L2)
                w.append("no feasible path" + "".join(
                    f"; the target point lies too close to {_too_close(c)}: every path ends there" for c in close))
            else:
                w.append("no feasible path" + (f"; best near-miss at {nm['entry_ras']}: " + "; ".join(nm.get("details", []))
                                               if nm else " (no skin entry within the needle length)"))
        avoid = {s.name for s in p.structures if s.role == "avoid"}   # e.g. lung_vessels_small
        from .candidates import normals_at
        from .cartilage import costal_warnings
        from .internal_thoracic import internal_thoracic_warnings
        from .intermediate import intermediate_warnings
        from .table import table_band_warnings
        from .soft_tissue import organ_warnings

        findings = self.proposal_finding_names()
        med = self.proposal_findings().mediastinum if self.proposals else None   # the findings' (planes cached)
        lung_vessels = any("lung_vessels" in s.name or "pulmonary" in s.name for s in p.structures)
        # this pass's memo: the CT's contrast phase, read once if a track runs beside the sternum, and
        # the label map's costal-cartilage region (`cartilage.region_of`), read once for all proposals
        ita_phase: dict = {}
        for n, m in enumerate(self.proposals, 1):
            # the clearance the proposal's table gives for that structure (exact, to its voxels), and the
            # scored one on the planning grid beside it when they differ (new-user trial 100 F3: the
            # report's table said 3.4 mm and this warning 3.0 mm for one structure, unexplained)
            exact = (m.clearance_mm or {}).get(m.limiting_structure) if m.limiting_structure else None
            margin = m.limiting_clearance_mm - m.slack_mm if m.limiting_clearance_mm is not None else 0.0
            slack = m.slack_mm if exact is None else min(m.slack_mm, exact - margin)
            if slack - m.required_mm < lim["clearance_within_mm"] and m.limiting_structure:
                base = continuation_base(m.limiting_structure)
                what = f" (the unlabelled continuation of {base}: unlabelled dense tissue joined to it)" if base else ""
                at = (f"{m.limiting_clearance_mm:.1f} mm" if exact is None or round(exact, 1) == round(m.limiting_clearance_mm, 1)
                      else f"{exact:.1f} mm to its voxels ({m.limiting_clearance_mm:.1f} mm as scored on the planning grid)")
                also = self._also_near_clearance(m, lim["clearance_within_mm"])
                w.append(f"proposal {n}: {m.limiting_structure}{what} at {at}, "
                         f"within {lim['clearance_within_mm']:g} mm of the required clearance"
                         + (f" (also within it: {', '.join(also)})" if also else ""))
            if m.aerated_lung_mm > lim["long_lung_traversal_mm"]:
                w.append(f"proposal {n}: {m.aerated_lung_mm:.0f} mm of aerated lung crossed "
                         f"(> {lim['long_lung_traversal_mm']:g} mm: higher pneumothorax risk)")
            near = self.dense_clearance(m, p.needle.widening_mm + lim["clearance_within_mm"])
            if near is not None:
                w.append(f"proposal {n}: unlabelled dense tissue ({near[1]:.0f} HU: "
                         f"{self.evaluator._verifier.dense.kind(near[1])}) at "
                         f"{near[0]:.1f} mm from the needle axis at {near[2]} RAS mm, within "
                         f"{lim['clearance_within_mm']:g} mm of the needle radius + placement uncertainty "
                         f"({p.needle.widening_mm:.2f} mm); no structure of the label map covers it")
            for mm, at in solid_runs_in_lung(p, m.entry_ras, m.target_ras, lim["solid_in_lung_mm"]):
                pleura = starts_at_the_pleura(p, m.entry_ras, m.target_ras, mm, at)
                w.append(f"proposal {n}: {mm:.1f} mm of solid tissue inside the lung"
                         + (" label where the path enters it" if pleura else "") + f" at {at} RAS mm (in the needle's "
                         f"cylinder, radius + placement uncertainty {p.needle.widening_mm:.2f} mm), before the target "
                         + ("(the chest wall, if the lung label reaches past this CT's pleura there, or a juxtapleural "
                            "nodule)" if pleura else "(an unlabelled nodule or vessel on the path?)")
                         + "; check it on the images" + (
                             "" if lung_vessels else "; no lung vessels are labelled: label them (imagio segment "
                             "--structures body,bones,lungs,airways,lung_vessels) to tell a vessel from a nodule"))
            # a mediastinum finding says what is unlabelled in the mediastinum; a run elsewhere (the
            # abdominal wall below the lung: trial 38 M3, 115 mm said as "30 mm mediastinal") is
            # still an organ that may be unlabelled
            in_med = (lambda r: med.contains(r.middle_ras)) if "mediastinum" in findings[n - 1] else None
            w += organ_warnings(p, n, m.entry_ras, m.target_ras, skip=in_med)
            w += costal_warnings(p, n, m.entry_ras, m.target_ras, ita_phase)   # trial 51 M5: cartilage not labelled
            w += internal_thoracic_warnings(p, n, m.entry_ras, m.target_ras, ita_phase)   # trial 91 M3: beside the sternum
            w += table_band_warnings(p, n, m.entry_ras, normals_at(self.maps, m.entry_ras)[0])   # trial 83 #2
            w += intermediate_warnings(p, n, m.entry_ras, m.target_ras)   # 130-250 HU no label covers
            for name, mm in sorted(m.length_in_mm.items()):
                if name in avoid and mm > 0:
                    w.append(f"proposal {n}: crosses {name} for {mm:.1f} mm (role avoid: allowed, counted in "
                             "the score; check it on the images)")
            chk = self.checks.get(self.ranked[n - 1]) if n - 1 < len(self.ranked) else None
            w += [f"proposal {n}: {x}" for x in (chk.notes if chk is not None else [])]
            if m.length_mm > lim["needle_reserve_fraction"] * p.needle.length_mm:
                w.append(f"proposal {n}: path {m.length_mm:.0f} mm uses more than "
                         f"{100 * lim['needle_reserve_fraction']:.0f}% of the {p.needle.length_mm:.0f} mm needle")
        w += gantry_tilt_warnings(p, self.proposals)
        w += self._gap_warnings()
        from ..outline_doubts import proposal_doubts

        w += proposal_doubts(p.structure_doubts, self.proposals, p.needle.widening_mm)
        return w

    def _gap_warnings(self) -> list[str]:
        """The target (its outline, its point) and each proposal (its entry, the two ends of its
        closest and of its binding clearance) where they lie on slices the DICOM reader
        interpolated across a gap (`interpolated_slabs`; new-user trial 106 MED 2: a target and its
        best path wholly on them, the ribs' 3.8 mm measured there, with no word). [] without a gap."""
        from ..interpolated_slabs import crossing_note, gap_slabs, points_note
        from .scoring import path_samples

        p = self.problem
        if not gap_slabs(p.ct):
            return []
        t = p.target
        fmt = lambda r: "[" + ", ".join(f"{float(x):.1f}" for x in r) + "]"   # noqa: E731
        w = []
        if t.value:
            from ..volume import Volume

            mask = p.labels.array == t.value   # on the label map's grid, the slabs of the CT (world facts)
            note = crossing_note(Volume(mask, p.labels.ijk_to_ras, meta=p.ct.meta), mask)
            if note:
                w.append(f"target {t.name}: {note}")
        note = points_note(p.ct, [(f"the target point {fmt(t.point_ras)}", t.point_ras)])
        if note:
            w.append(f"target {t.name}: {note}")
        step = p.constraints.step_voxels * float(min(self.maps.grid.spacing))
        for n, m in enumerate(self.proposals, 1):
            pts = [(f"its entry {fmt(m.entry_ras)}", np.asarray(m.entry_ras, float))]
            axes = path_samples(self.maps, np.asarray(m.entry_ras, float)[None], np.asarray(m.target_ras, float), step)[0]
            kji = np.stack(axes, axis=1)
            for name in dict.fromkeys(x for x in (m.closest_structure, m.limiting_structure) if x):
                ends = self.maps.clearance_ends(kji, name)
                mm = (m.clearance_mm or {}).get(name)
                if ends is not None and mm is not None:
                    pts.append((f"its {mm:.1f} mm clearance to {name} (needle {fmt(ends[0])}, {name} {fmt(ends[1])})",
                                np.stack(ends)))
            note = points_note(p.ct, pts)
            if note:
                w.append(f"proposal {n}: {note}")
        return w

    def proposal_findings(self):
        """`findings.Findings` covering every proposal's row: the one computed for the ranking,
        or computed now for rows it lacks (a plan assembled by another caller)."""
        from .findings import path_findings, refine_near
        from .mediastinum import MEDIASTINAL_VESSEL_HINTS

        f = self.findings
        rows = self.ranked[:len(self.proposals)]
        if f is None or any(r not in f.outside_tissue_mm for r in rows):
            present = present_structures(self.problem, self.maps)
            ver = self.evaluator._verifier
            self.findings = f = path_findings(self.problem, self.table, rows, present,
                                              large_vessels_labelled(present, MEDIASTINAL_VESSEL_HINTS),
                                              dense=None if ver is None else ver.dense)
        refine_near(self.problem, self.table, f, rows)   # the distances said of the proposals
        return f

    def proposal_finding_names(self) -> list[list[str]]:
        """Per proposal, best first: the names of its findings ('mediastinum', 'unimaged_needle';
        `findings.Findings.flagged`). A proposal with a finding is ranked after every proposal
        without one, whatever its score, so a table that shows the score shows these too."""
        if not self.proposals:
            return []
        f = self.proposal_findings()
        return [f.flagged(r) for r in self.ranked[:len(self.proposals)]]

    def _finding_warnings(self) -> list[str]:
        """One line per proposal and finding (`findings`): mediastinal soft tissue crossed while
        no heart or great vessel is labelled within reach (new-user trial 2, A), the needle part
        outside the skin leaving the image where the body is cut (trial 2, B); each says that
        such proposals are ranked after every proposal without a finding, or that all have one.
        A line when only one lung is labelled within reach (the mediastinum cannot be outlined)."""
        if not self.proposals:
            return []
        from .findings import couch_text, finding_rank, near_text, unimaged_text
        from .diaphragm import text as diaphragm_text

        f = self.proposal_findings()
        rows = self.ranked[:len(self.proposals)]
        flagged = [f.flagged(r) for r in rows]
        none = " (no feasible path without a finding was found)" if all(flagged) else ""

        def ranked(fl) -> str:   # what the ranking rule does with this proposal (`findings.finding_rank`)
            inside = finding_rank(fl) >= 2
            return ("ranked after every proposal without a finding"
                    + (" and every one whose findings lie only outside the patient" if inside else "") + none)
        out = []
        if f.one_lung and f.mediastinum_checked:
            out.append(f"only the {f.one_lung} lung is labelled within needle reach (a hemithorax crop or a one-lung "
                       "label map): the mediastinum between the lungs cannot be outlined, so no path is judged for "
                       "the unlabelled heart and great vessels there; check paths near the midline on the images")
            if not any("trachea" in n or "bronch" in n or "airway" in n
                       for n in present_structures(self.problem, self.maps)):
                # trial 13 (H1): a hemithorax crop's bronchi were grown as lung; nothing said so here
                out.append("no airway (trachea or bronchus) is labelled within needle reach: on a crop beside the "
                           "mediastinum the main and lobar bronchi in view may lie inside the lung label, so paths "
                           "near the hilum are not judged against them; label the airways or check on the images")
        for n, (r, fl) in enumerate(zip(rows, flagged), 1):
            if "mediastinum" in fl:
                back = (" (in a plane without a labelled vertebral body the region runs to the back of the lungs, "
                        "spine included)" if f.mediastinum_uncut.get(r) else "")
                neck = f.mediastinum_neck_mm.get(r, 0.0)
                lim_neck = load_defaults()["warnings"]["neck_base_trachea_mm"]
                where = (f"mediastinal soft tissue (between the lungs, in front of the spine){back} where the heart "
                         "and great vessels run" if neck < 1.0 else
                         f"mediastinal and neck-base soft tissue ({neck:.0f} mm of it at the base of the neck / thoracic "
                         f"inlet, within {lim_neck:g} mm of the trachea's axis, where the common carotid artery, internal "
                         "jugular vein, thyroid and brachiocephalic vessels run; the rest between the lungs)" + back)
                out.append(f"proposal {n}: crosses {f.mediastinum_mm[r]:.0f} mm of {where}, and no large "
                           "vessel is labelled: they are not seen on a CT without contrast; prefer a proposal through "
                           f"the chest wall, or segment the vessels (contrast CT or a deep model) first; {ranked(fl)}")
            if "unimaged_needle" in fl:
                out.append(f"proposal {n}: " + unimaged_text(self.problem, f.unimaged_mm[r], f.unimaged_side[r],
                                                             f.unimaged_at_mm[r], f.unimaged_hub[r]) + f"; {ranked(fl)}")
            elif f.unimaged_note(r):   # outside the scanned field where the body is not cut: said, not ranked
                out.append(f"proposal {n}: " + unimaged_text(self.problem, f.unimaged_mm[r], f.unimaged_side[r],
                                                             f.unimaged_at_mm[r], f.unimaged_hub[r], False))
            if "beyond_tip" in fl:
                out.append(f"proposal {n}: the needle's axis continued past the target meets {f.beyond_what[r]} "
                           f"{f.beyond_mm[r]:.1f} mm beyond the tip, within the needle's "
                           f"{self.problem.needle.widening_mm:.1f} mm clearance (checked to "
                           f"{self.problem.needle.beyond_tip_mm:g} mm: a core needle's throw + placement "
                           "uncertainty): a needle fired or pushed from the target reaches it; use a shorter "
                           f"throw, stop short of the target, or prefer another proposal; {ranked(fl)}")
            if "transdiaphragmatic" in fl:
                out.append(f"proposal {n}: " + diaphragm_text(self.problem, f.diaphragm_mm[r], f.diaphragm_side[r],
                                                              f.diaphragm_from_mm[r], f.diaphragm_to_mm[r])
                           + f"; {ranked(fl)}")
            if "tissue_outside_skin" in fl:
                out.append(f"proposal {n}: {f.outside_tissue_mm[r]:.0f} mm of the needle outside the skin (and its hub) "
                           "run through another body part beyond the skin (an arm beside the trunk?), tissue outside "
                           "the patient's outline or met again after the needle left the skin: the needle cannot be "
                           f"placed there in this position; move the arm or prefer another proposal; {ranked(fl)}")
            if "outside_clearance" in fl:
                out.append(f"proposal {n}: " + near_text(self.problem, f.near_mm[r], f.near_at_mm[r], f.near_hub[r],
                                                         f.near_inside[r]) + f"; {ranked(fl)}")
            if "couch_clearance" in fl:
                out.append(f"proposal {n}: " + couch_text(self.problem, f.couch_mm[r], f.couch_at_mm[r], f.couch_hub[r])
                           + f"; {ranked(fl)}")
        out += deferred_better_warning(self.proposals, flagged)
        return out


    def _also_near_clearance(self, m, within_mm: float) -> list[str]:
        """The forbidden and margin structures other than proposal ``m``'s limiting one whose clearance
        (mm from the needle axis, exact to their voxels: ``m.clearance_mm``) minus their margin is also
        within ``within_mm`` of the required clearance (needle radius + placement uncertainty), nearest
        first, as "name at 3.5 mm" (new-user trial 108: a track 3.51 mm from the costal cartilage and
        3.5 mm from a rib named the rib alone)."""
        mp = self.maps
        index = {name: i for i, name in enumerate(mp.names)}
        out = []
        for name, mm in sorted((m.clearance_mm or {}).items(), key=lambda kv: kv[1]):
            i = index.get(name)
            if name == m.limiting_structure or i is None or mp.roles[i] not in ("forbidden", "margin"):
                continue
            if mm - float(mp.hard_margins[i]) - m.required_mm < within_mm:
                out.append(f"{name} at {mm:.1f} mm")
        return out

    def dense_clearance(self, m, cap_mm: float):
        """(clearance mm, HU, RAS) of the unlabelled dense tissue closest to proposal ``m``'s path
        within ``cap_mm`` (`density.DenseTissue.clearance`), or None; None also when the CT
        density check was not built."""
        ver = self.evaluator._verifier
        if ver is None or ver._dense is None:
            return None
        return ver.dense.clearance(m.entry_ras, m.target_ras, cap_mm)

    @property
    def report(self) -> dict:
        t = self.table
        out = {"target": self.problem.target.name, "target_ras": self.problem.target.point_ras,
               "point_given": bool(self.problem.target.point_given), "candidates": len(t), "feasible": int(t.feasible.sum()),
               "excluded_by": t.exclusion_counts()}
        if len(t) == 0:
            out["nearest_skin_mm"] = round(nearest_skin_mm(self.problem), 1)
            out["excluded_by"] = {"reach": {"violating": 0, "only_this": 0,
                                            "note": f"no skin within the needle length "
                                                    f"({self.problem.needle.length_mm:.0f} mm)"}}
        if not self.feasible and len(t):
            nv = np.array([bin(int(v)).count("1") for v in t.violations])
            best = int(np.lexsort((t.score, nv))[0])
            details = violation_details(self.problem, t, best)
            ver = self.evaluator._verifier
            if ver is not None and t.violations[best] & (BIT["verification"] | BIT["dense_tissue"]):
                details += [f"independent check: {x}" for x in
                            ver.verify(t.entry_ras[best], t.target_ras[best]).problems]
            out["best_near_miss"] = {"entry_ras": np.round(t.entry_ras[best], 1).tolist(),
                                     "violations": t.violated(best), "details": details}
            close = self.target_too_close()
            if close:
                out["target_too_close"] = close
            if "unseen_skin" in out["excluded_by"]:
                out["excluded_by"]["unseen_skin"]["sides"] = self.unseen_sides()
            tissue = self.target_tissue()
            if tissue:
                out["target_tissue"] = tissue
        return to_jsonable(out)

    def target_tissue(self) -> dict | None:
        """For a point target in solid tissue beside the lung (`target_tissue.point_tissue`), the
        paths refused for their pleural crossings because they reach the target from the lung
        straight into that tissue (new-user trial 111: lung2's juxtapleural nodule clicked without
        its outline, the lung -> nodule step counted as a 2nd crossing): {words, into: such rows,
        alone: those that only this step makes infeasible (no other rule violated and one crossing
        fewer within the limit)}; None when no such path or no such tissue."""
        from .target_tissue import last_step_into

        p, t = self.problem, self.table
        tissue = getattr(p.target, "tissue", None)
        if tissue is None or tissue.enclosed or not len(t):   # an enclosed one counts as lung already
            return None
        bit = BIT["pleural_crossings"]
        rows = np.flatnonzero((t.violations & bit) > 0)
        into = [int(i) for i in rows
                if last_step_into(tissue, p.ct, p.labels, t.entry_ras[i], t.target_ras[i])]
        if not into:
            return None
        alone = sum(1 for i in into if int(t.violations[i]) == bit
                    and int(t.pleural_crossings[i]) - 1 <= p.constraints.max_pleural_crossings)
        return {"words": tissue.words(), "enclosed": bool(tissue.enclosed), "into": len(into), "alone": alone,
                "rays_pct": {k: round(float(v), 1) for k, v in tissue.rays.items()}}

    def unseen_sides(self) -> dict:
        """{side: entries}: the candidate entries excluded as ``unseen_skin`` per side of the image
        their rays leave it at (`scoring.unseen_skin`, in patient terms: right .. inferior), most
        first: where the field of view cuts the body, though no `skin.Truncation` may say so (a
        back cut through a partial-volume layer that passes for air; trial 89), so the refusal
        names the side to extend the scan on."""
        from ..directions import SIDE_NAMES
        from .scoring import unseen_skin

        t = self.table
        rows = np.flatnonzero(t.violations & BIT["unseen_skin"])
        _, code = unseen_skin(self.problem, t.entry_ras[rows], t.target_ras[rows], t.normal_ras[rows],
                              t.length_mm[rows], sides=True)
        n = np.bincount(code[code >= 0], minlength=len(SIDE_NAMES)) if code is not None else np.zeros(0, int)
        return {SIDE_NAMES[i]: int(n[i]) for i in np.argsort(-n, kind="stable") if n[i] > 0}

    def target_too_close(self) -> list[dict]:
        """[{structure, distance_mm, required_mm}]: the structure kept at a clearance (roles
        forbidden and margin) that achieves the hard distance map at the target point's voxel when
        that point lies closer to it than its clearance (margin + needle radius and placement
        uncertainty, ``needle.widening_mm``), else []. Every path ends at the target, so none can
        be feasible whatever its entry (new-user trial 47 M2: a tumour 8.0 mm from the portal
        vein, which needs 8.2 mm, was reported as "clearance: 0.5 mm to rib_right_8" of the best
        near-miss). Distances in mm by the distance maps' convention (voxel-centre distance minus
        half a voxel; `distance_maps`)."""
        from .scoring import trilinear

        maps, p = self.maps, self.problem
        x = maps.world_to_kji(np.asarray(p.target.point_ras, float)[None])
        kji = np.rint(x[0]).astype(int)
        if np.any(kji < 0) or np.any(kji >= np.array(maps.hard.shape)):
            return []
        flat = int(np.ravel_multi_index(tuple(kji), maps.hard.shape))
        # the map at the exact point, as the paths' feasibility reads it (trilinear)
        slack = float(trilinear(maps.hard, x)[0])
        if slack >= p.needle.widening_mm:
            return []
        i = int(maps.hard_structure(np.array([flat]))[0])
        if i < 0:
            return []
        m = float(maps.hard_margins[i])
        return [{"structure": maps.names[i], "distance_mm": round(slack + m, 1),
                 "required_mm": round(m + p.needle.widening_mm, 1)}]

    def to_dict(self) -> dict:
        from .findings import RANKING_RULE, couch_judged

        p = self.problem
        t = self.table
        f = self.proposal_findings() if self.proposals else None
        return to_jsonable({
            "target": {"name": p.target.name, "ras": p.target.point_ras, "organ": p.target.organ},
            "needle": vars(p.needle) | {"widening_mm": p.needle.widening_mm},
            "constraints": {k: v for k, v in vars(p.constraints).items()},
            "weights": p.weights,
            "criteria": [{**{k: c[k] for k in ("name", "unit", "direction", "lo", "hi", "source")},
                          "weight": p.weights.get(c["name"], 0.0)} for c in criteria_table()],
            "rules": p.rules | {"findings_ranked_last": RANKING_RULE},
            # False: no proposal was judged against the couch (its 'couch_clearance' null is then
            # "not checked", not "clear"; `findings.couch_judged`)
            "couch_checked": couch_judged(p),
            # one convention for every per-proposal finding: a proposal's null (beyond_tip: its
            # meets "none") means clear where its finding here is true, not checked where false
            "checked": findings_checked(p),
            "positions": self.positions,
            "warnings": self.warnings,
            "body_truncations": [tr.to_dict() for tr in (p.skin.truncations if p.skin else [])],
            "feasible": self.feasible,
            "independent_check": {
                "method": "imagio.planning.verify: dense sampling (0.25 voxel), exact distances to "
                          "structure boundary voxels, outer skin and body masks, and the CT itself "
                          "(imagio.planning.density: unlabelled dense tissue kept out)",
                "ct_density": (self.evaluator._verifier.dense.to_dict()
                               if self.evaluator._verifier is not None else None),
                "checked": len(self.checks),
                "rejected": [{"entry_ras": t.entry_ras[i], "problems": c.problems}
                             for i, c in self.checks.items() if not c.ok][:20],
                "n_rejected": sum(not c.ok for c in self.checks.values())},
            "report": self.report,
            "proposals": [m.to_dict() | {"findings_ranked_last": f.flagged(r),
                                         "beyond_tip": _beyond_tip_row(f, r, p.needle.beyond_tip_mm),
                                         "outside_clearance": _outside_row(f, r),
                                         "unimaged": _unimaged_row(f, r),
                                         "couch_clearance": _couch_row(f, r),
                                         "below_lung_base": _diaphragm_row(f, r)}
                          for m, r in zip(self.proposals, self.ranked)],
            "pareto": [{"entry_ras": t.entry_ras[i], "score": t.score[i],
                        "costs": t.costs[i]} for i in self.pareto[:PARETO_SHOWN]],
            "n_pareto": len(self.pareto),
            "timings_s": self.timings_s,
        })

    def write_json(self, path) -> Path:
        from ..outputs import write_text

        return write_text(path, json.dumps(self.to_dict(), indent=1))


# rows of a position's walk whose findings `position_alternatives` asks for first (then twice as
# many each time): about where a chunk's own work matches a `path_findings` call's fixed cost (its
# thick-tissue rounds, `findings._first_thick`: ~0.1 CPU-s a call under tracemalloc on the
# TotalSegmentator DICOM example, 1-2 ms a row). Issue 20, later plans of one process, traced:
# TS DICOM 3.84 (all at once) -> 3.92 (32 rows), 3.28 (128), 3.80 (256) CPU-s; 1 mm phantom
# 6.77 -> 5.25 (16), 5.37 (128)
FLAG_CHUNK = 128


def anchored_rows(table: ScoreTable, rows, batch) -> np.ndarray:
    """``rows`` (table row indices) and the rows of ``batch`` (a superset) that set the sample
    counts `findings.path_findings` takes over the rows it is given: the shortest path (the
    longest needle part outside the skin: `findings._outside_samples`, `_outside_near`,
    `couch_clearance`) and the longest entry-target distance (`mediastinum.Mediastinum.runs`).
    Each of ``rows`` is sampled there as with the whole ``batch`` at once (int64 array, ``rows``
    first, in order, without repeats)."""
    rows = [int(r) for r in np.asarray(rows).tolist()]
    ctx = np.asarray(np.asarray(batch).tolist() or rows, np.int64)
    span = np.linalg.norm(table.target_ras[ctx] - table.entry_ras[ctx], axis=1)
    far = [int(ctx[np.argmin(table.length_mm[ctx])]), int(ctx[np.argmax(span)])]
    return np.asarray(list(dict.fromkeys(rows + far)), np.int64)


def position_alternatives(problem: PlanningProblem, table: ScoreTable, verifier, checks: dict,
                          flagged=None, first=None) -> dict:
    """Best path in each patient position (supine, prone, left/right lateral decubitus) from the
    same scored candidates: only the table-side exclusion depends on the position. Each
    position's best path is re-checked by the verifier (the next best is taken while it fails).
    ``flagged``: optional callable, (rows (int array), batch) -> int array, each path's
    `findings.finding_rank` (0: no finding; bools read as 0/1): such paths come after the
    others, lower ranks first, as the proposals are ranked (`proposals.propose` with ``defer``;
    new-user trial 109: with a bool, a lateral position quoted a mediastinal path, rank 2, as
    better than the supine best, rank 1, that ranks the same path after it), over ALL the position's feasible
    candidates (new-user trial 16: the comparison quoted the chosen position's field-of-view-edge
    path, ranked last among the proposals, as its best; trial 19: with the findings sorted last
    only within the 20 best-scored candidates, a position whose 20 best all had a finding still
    quoted a flagged path, the trans-hepatic one ranked last as proposal 3). Up to 20 paths
    without a finding are verified, then up to 20 with one. The flags are asked for lazily, in
    score order, in chunks (`FLAG_CHUNK` rows, doubling) until the walk has its answer (issue
    20: every feasible row of every other position was judged, 0.9 of 3.9 CPU-s on the
    TotalSegmentator DICOM example, where a handful decide); ``batch`` (int array) is the set
    of rows judged at once before (the position's feasible rows not judged for an earlier
    position), which `path_findings` sampling counts depend on (see ``flagged`` in `plan`).
    The same paths are verified in the same order as with every flag known. ``first``: the
    chosen position's first proposal (row), quoted as its best when given.
    Returns {position: {"feasible_candidates", "best": {entry_ras, length_mm, score,
    aerated_lung_mm, pleural_crossings, finding, finding_rank, normal_ras (the entry's outward skin normal, RAS)} or None}}; ``finding`` True when the best path
    carries a finding (every verified path of that position tried has one), ``finding_rank`` its
    `findings.finding_rank`."""
    from .problem import POSITIONS
    from .scoring import BIT, against_table

    c = problem.constraints
    base = table.violations & ~np.int32(BIT["table_side"]) & ~np.int32(BIT["verification"])
    known: dict = {}      # row -> its finding rank (0: none)
    batch_of: dict = {}   # row -> the rows judged with it before (int array shared by them)

    def register(rows):   # the rows a position's walk judged at once before: one batch
        new = np.asarray([r for r in np.asarray(rows).tolist() if r not in batch_of], np.int64)
        for r in new.tolist():
            batch_of[r] = new

    def is_flagged(rows):
        todo = [int(r) for r in rows if int(r) not in known]
        groups: dict = {}
        for r in todo:
            groups.setdefault(id(batch_of[r]), (batch_of[r], []))[1].append(r)
        for batch, rs in groups.values():
            known.update(zip(rs, (int(x) for x in flagged(np.asarray(rs, np.int64), batch))))
        return np.array([known[int(r)] for r in rows], np.int64)

    def walk(order):
        """The rows to verify, in turn, with their finding rank: up to 20 without a finding
        (score order), then up to 20 with one, lowest finding rank first (score order within
        it); flags asked for chunk by chunk, only as far as the walk goes."""
        clear, marked, lo, size = 0, [], 0, FLAG_CHUNK
        while lo < len(order) and clear < 20:
            chunk = order[lo:lo + size]
            fl = is_flagged(chunk) if flagged is not None else np.zeros(len(chunk), np.int64)
            for i, f in zip(chunk.tolist(), fl.tolist()):
                if f:
                    marked.append((f, i))
                elif clear < 20:
                    clear += 1
                    yield i, 0
            lo, size = lo + size, 2 * size
        while lo < len(order) and len(marked) < 20:   # the rest of the 20 first flagged
            chunk = order[lo:lo + size]
            fl = is_flagged(chunk)
            marked += [(int(f), int(i)) for i, f in zip(chunk.tolist(), fl.tolist()) if f]
            lo, size = lo + size, 2 * size
        # the 20 first of the lowest ranks met (when the clear rows ran out, every row was judged)
        for f, i in sorted(marked, key=lambda x: x[0])[:20]:
            yield i, f

    def row_dict(i, finding):
        return {"entry_ras": table.entry_ras[i], "length_mm": table.length_mm[i],
                "score": table.score[i], "aerated_lung_mm": table.aerated_mm[i],
                "pleural_crossings": int(table.pleural_crossings[i]), "finding": bool(finding),
                "finding_rank": int(finding),
                "normal_ras": table.normal_ras[i]}

    out = {}
    # the table side judged only on the rows no other rule excludes (a path's points do not
    # depend on the other paths judged with it: `scoring.table_steps`; issue 20: 4 x 14,000 rows
    # on the 1 mm phantom, 0.9 CPU-s, for about 2,600 that count)
    cand = np.flatnonzero(base == 0)
    for pos, direction in POSITIONS.items():
        faces = against_table(problem, table.entry_ras[cand], table.target_ras[cand], table.normal_ras[cand],
                              table.length_mm[cand], direction)
        if "table_side" in c.disabled_rules:
            faces[:] = False
        ok = cand[~faces]
        best = None
        if first is not None and pos == c.patient_position:
            register([first])
            fl = int(is_flagged(np.array([first]))[0]) if flagged is not None else 0
            best = row_dict(int(first), fl)
            out[pos] = {"feasible_candidates": int(len(ok)), "best": best}
            continue
        order = ok[np.argsort(table.score[ok], kind="stable")]
        register(order)
        for i, finding in walk(order):
            if int(i) not in checks:
                checks[int(i)] = verifier.verify(table.entry_ras[i], table.target_ras[i])
            if checks[int(i)].ok:
                best = row_dict(i, finding)
                break
        out[pos] = {"feasible_candidates": int(len(ok)), "best": best}
    return out


def starts_at_the_pleura(problem: PlanningProblem, entry_ras, target_ras, run_mm: float, at_ras,
                         step_mm: float = 0.5) -> bool:
    """Whether a run of `solid_runs_in_lung` (``run_mm`` long, its middle at ``at_ras``, RAS mm) on the
    segment entry -> target begins no more than one CT voxel diagonal after the segment first enters
    the lung label: solid tissue at the pleura, which is the chest wall where the label reaches past
    the CT's pleura (a label map from another grid or a smoothed outline: new-user trial 110, lung2 on
    an oblique 1.2 x 1.2 x 3 mm re-grid, 7.5 mm "inside the lung" at the pleural entry of chest wall
    +24 HU) or a juxtapleural nodule; the two cannot be told by density, so the warning names both."""
    from .along import path_samples
    from .problem import LUNG_PARENCHYMA

    e, t = np.asarray(entry_ras, float), np.asarray(target_ras, float)
    lung_vals = [v for v, n in problem.labels.labels.items() if n in LUNG_PARENCHYMA]
    s, pts = path_samples(e, t, step_mm)
    inside = problem.ct.contains_world(pts)
    lung = np.zeros(len(s), bool)
    lung[inside] = np.isin(problem.labels.sample(pts[inside], order=0), lung_vals)
    if not lung.any():
        return False
    first = float(s[int(np.argmax(lung))])
    start = float(np.linalg.norm(np.asarray(at_ras, float) - e)) - 0.5 * float(run_mm)
    return start <= first + float(np.linalg.norm(problem.ct.spacing))


def solid_runs_in_lung(problem: PlanningProblem, entry_ras, target_ras, min_mm: float,
                       step_mm: float = 0.5, radius_mm: float | None = None) -> list[tuple[float, list]]:
    """[(mm, RAS mm of its middle)] of each run of solid tissue (voxels >= `LUNG_HU`, -400 HU, on
    the CT) inside the lung label (`LUNG_PARENCHYMA` names) along the segment entry -> target (RAS
    mm), sampled every ``step_mm``, at least ``min_mm`` long, but the run that reaches the target
    (its own tissue) and, for a target lesion with its own label, a run ending less than one CT
    voxel diagonal before the axis reaches that label (its partial-volume edge; trial 109): an
    unlabelled nodule or vessel on the path. A sample is in such tissue when
    its nearest voxel is, or when the needle's cross-section there holds some: a voxel centre
    closer to the axis than ``radius_mm`` + half the smallest voxel and within half a voxel's
    extent of the sample along it (`along.near_voxels` ``disc_mm``). That is the cylinder every
    clearance keeps free, needle radius + placement uncertainty (``Needle.widening_mm``, the
    default ``radius_mm``), with the CT density check's half-voxel convention
    (`density.DenseTissue`); a run is the length of path over which the cylinder holds solid
    tissue, so a thin vessel across it stays below ``min_mm``. New-user trial 23 (N3): the
    centre line alone missed a needle running 1 mm into the edge of an unlabelled solid nodule."""
    from ..segmentation.common import LUNG_HU
    from .along import near_voxels, path_samples, voxel_extent_mm
    from .problem import LUNG_PARENCHYMA

    e, t = np.asarray(entry_ras, float), np.asarray(target_ras, float)
    length = float(np.linalg.norm(t - e))
    lung_vals = [v for v, n in problem.labels.labels.items() if n in LUNG_PARENCHYMA]
    if length <= 0 or not lung_vals:
        return []
    ct, lab = problem.ct, problem.labels
    s, pts = path_samples(e, t, step_mm)

    def solid_in_lung(*sl):
        return values_mask(lab.array[sl], lung_vals) & (ct.array[sl] >= LUNG_HU)

    inside = ct.contains_world(pts)
    solid = np.zeros(len(s), bool)
    solid[inside] = (np.isin(lab.sample(pts[inside], order=0), lung_vals)
                     & (ct.sample(pts[inside], order=0) >= LUNG_HU))
    reach = (problem.needle.widening_mm if radius_mm is None else float(radius_mm)) + 0.5 * float(min(ct.spacing))
    solid |= near_voxels(ct, e, t, s, reach, solid_in_lung, disc_mm=0.5 * voxel_extent_mm(ct, e, t))
    out = []
    runs = _runs(solid)
    if runs and runs[-1][1] == len(s):   # the run that reaches the target: its own tissue
        runs = runs[:-1]
    tv = int(problem.target.value or 0)
    if runs and tv and tv not in lung_vals:
        # the target lesion's own label: a run that ends within ``tol`` before the axis reaches it
        # (or inside it) is its blurred edge (new-user trial 109: a 5.5 mm run 0.8 mm from lung1's
        # nodule label warned as an unlabelled nodule). ``tol``: one voxel diagonal of the CT, the
        # partial-volume rim a solid edge spreads into its neighbours plus the half voxel to which
        # a nearest-neighbour label outline is known
        tol = float(np.linalg.norm(ct.spacing))
        at_t = np.zeros(len(s), bool)
        at_t[inside] = lab.sample(pts[inside], order=0) == tv
        if at_t.any():
            first = float(s[int(np.argmax(at_t))])
            runs = [(a, b) for a, b in runs if float(s[b - 1]) < first - tol]
    for a, b in runs:
        mm = (b - a) * step_mm
        if mm >= min_mm:
            out.append((mm, np.round(pts[(a + b - 1) // 2], 1).tolist()))
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True in a 1-D bool array."""
    edges = np.diff(np.concatenate([[0], np.asarray(mask, np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def slice_thickness_mm(vol) -> float:
    """The spacing (mm) of ``vol``'s array axis nearest the superior axis: its slice thickness
    for an axial-like grid (the axis whose direction has the largest |S| component)."""
    ax = int(np.argmax(np.abs(vol.direction[2, :])))
    return float(vol.spacing[ax])


def gantry_tilt_warnings(problem: PlanningProblem, proposals) -> list[str]:
    """One line per proposal (``proposals``: `PathMetrics`, best first) that needs more gantry
    tilt than the scanner's range to lie whole in one scan plane (``gantry_tilt_deg``,
    `scoring.gantry_tilt_deg`: its angle to the axial plane in the sagittal projection; the range
    is ``constraints.max_craniocaudal_deg``, ``--gantry-tilt``), while its craniocaudal run
    (length x sin of the craniocaudal angle) exceeds one slice of the CT (`slice_thickness_mm`):
    no single axial or tilted image then shows the whole needle, which is guided out of plane
    (across slices, or with CT fluoroscopy). The hard rule limits the craniocaudal angle, which
    is never more than the tilt: a lateral needle with a small craniocaudal slope passes it and
    yet needs 60-70 deg of tilt (new-user trial 90 #2: lung2's five proposals, 44-70 deg under
    the 30 deg default, no word). None when the range is not limited."""
    lim = problem.constraints.max_craniocaudal_deg
    if lim is None or not proposals:
        return []
    from .scoring import ANGLE_TOL_DEG

    sl = slice_thickness_mm(problem.ct)
    out = []
    for n, m in enumerate(proposals, 1):
        run = float(m.length_mm) * float(np.sin(np.radians(m.craniocaudal_deg)))
        if m.gantry_tilt_deg > lim + ANGLE_TOL_DEG and run > sl:
            out.append(f"proposal {n}: the whole needle lies in one scan plane only with the gantry tilted "
                       f"{m.gantry_tilt_deg:.1f} deg about the left-right axis (the needle's angle to the axial plane "
                       f"in the sagittal projection), more than the {lim:g} deg --gantry-tilt range: it runs "
                       f"{m.craniocaudal_deg:.1f} deg out of the axial plane over {run:.0f} mm craniocaudally, more than "
                       f"one {sl:g} mm slice, so no axial or tilted image shows it whole; it is guided out of plane "
                       "(across slices, or with CT fluoroscopy); prefer a proposal within the range if the scanner "
                       "cannot do that")
    return out


def table_warnings(problem: PlanningProblem) -> list[str]:
    """The warning that the hub's clearance from the table was not checked: when the table-side
    rule applies and no table was found under the patient (`table.locate_table`), or when the
    rule is off (then neither the needle's axis nor its part outside the skin and hub,
    `findings.couch_clearance`, is judged against the couch: trial 65 M1, a plan.json that read
    as clear while every needle crossed the couch)."""
    c = problem.constraints
    if "table_side" in c.disabled_rules or c.table_exclusion_deg <= 0:
        return ["the table-side rule is off: no needle, outside part or hub was checked against the couch "
                "(the table): check on the images that none meets it"]
    from .table import locate_table_cached

    w = locate_table_cached(problem, c.table_direction).warning(c.patient_position, c.table_exclusion_deg)
    if w:   # the couch on another side: the position may be wrong (trial 32 H3: a prone NIfTI/DICOM)
        from .problem import TABLE_SIDE

        found = couch_position(problem)
        if found is not None:   # the side where most of the patient's columns show it
            p, cover = found
            w += (f"; but a couch top lies on the patient's {TABLE_SIDE[p]} side ({100 * cover:.0f}% of the "
                  f"columns): the patient may have lain {p}; check the images and give --position {p} if so")
    return [w] if w else []


def couch_covers(problem: PlanningProblem) -> dict:
    """{position: cover} of each patient position (`problem.POSITIONS`) whose couch
    `table.locate_table` finds under the patient (cover: the fraction of the patient's columns
    that show it); positions without one are left out."""
    from .problem import POSITIONS
    from .table import locate_table_cached

    found = {p: locate_table_cached(problem, np.array(d)) for p, d in POSITIONS.items()}
    return {p: float(t.cover) for p, t in found.items() if t.located}


def couch_position(problem: PlanningProblem) -> tuple[str, float] | None:
    """(position, cover) the couch found in the image says the patient lay in (`couch_covers`):
    the planned position when a couch lies under the patient there, else the other position
    whose couch shows in the most of the patient's columns; None when no couch is found
    (cropped, out of the field of view, removed). ``cover``: that fraction."""
    found = couch_covers(problem)
    c = problem.constraints
    if c.patient_position in found:
        return c.patient_position, found[c.patient_position]
    if not found:
        return None
    p = max(found, key=found.get)
    return p, found[p]


def scan_position(problem: PlanningProblem) -> tuple[str | None, str]:
    """(the position the CT was taken in, or None when not known; how it is known): the DICOM
    PatientPosition (0018,5100) when the CT has one IMAGIO knows (`problem.DICOM_POSITIONS`),
    else the couch found in the image (a supine patient lies on it with the back, a prone one
    with the front): the side whose couch shows in the most of the patient's columns
    (`couch_covers`, whatever the planned position), when that is at least
    planning_defaults.json ``table.position_min_cover`` of them (new-user trial 89 M1: the planned
    side was taken first, so STS_002, scanned supine, planned left lateral read a curved couch's
    rising side as a couch on the left and said nothing; a crop's cut face in 26 % of the columns
    read as a couch on the left made a supine scan "taken left_lateral")."""
    from .problem import DICOM_POSITIONS, TABLE_SIDE

    code = str((problem.ct.meta or {}).get("PatientPosition", "") or "").strip().upper()
    if code in DICOM_POSITIONS:
        return DICOM_POSITIONS[code], f"DICOM PatientPosition {code}"
    found = couch_covers(problem)
    head = "no DICOM PatientPosition" + (f" IMAGIO knows ({code!r})" if code else "")
    if not found:
        return None, head + " and no couch found in the image"
    p = max(found, key=found.get)   # the side the couch shows most, whatever the planned position
    lim = float(load_defaults()["table"]["position_min_cover"])
    if found[p] < lim:
        return None, (f"{head}, and the couch-like object on the patient's {TABLE_SIDE[p]} side shows in only "
                      f"{100 * found[p]:.0f}% of the columns (a couch the patient lies on shows in most)")
    return p, f"the couch found on the patient's {TABLE_SIDE[p]} side in {100 * found[p]:.0f}% of the columns"


def scan_position_warnings(problem: PlanningProblem) -> list[str]:
    """The warning that the plan is made in a position other than the scan's own
    (`scan_position`), or in a position other than the default while the scan's is not known:
    the plan uses the anatomy as scanned, and the organs move between positions (gravity shifts
    the organs and soft tissues, and a lesion with them; trial 89 L4: the chest's organs were
    named for a thigh), so it must be confirmed
    on a CT in the planned position (new-user trial 86 M1: a prone plan on a supine scan said
    nothing of it). Said in plan.json ``warnings`` and on stderr. Not with the table-side rule off
    (`table_warnings` says so; the plan then uses no position: the sarcoma biopsy's default)."""
    from .problem import TABLE_SIDE

    c = problem.constraints
    if "table_side" in c.disabled_rules or c.table_exclusion_deg <= 0:
        return []
    chosen = c.patient_position
    pos, how = scan_position(problem)
    tail = (f"organs move between positions (gravity shifts the organs and soft tissues, and a lesion with them), "
            f"so confirm the target, path and entry on a CT taken {chosen} before the needle is placed")
    if pos is not None and pos != chosen:   # the one word of it (`problem.position_from_header` says none)
        return [f"patient position: planned {chosen} on a CT taken {pos} ({how}): the plan uses the anatomy as "
                f"scanned {pos} and the couch on the patient's {TABLE_SIDE[chosen]} side, as planned; " + tail]
    if pos is None and chosen != load_defaults()["constraints"]["patient_position"]:
        return [f"patient position: planned {chosen}, but the CT's own position is not known ({how}): if it was "
                f"taken otherwise, the plan uses that anatomy; " + tail]
    return []


def _rank(best: dict) -> int:
    """A position's best path's `findings.finding_rank` (``finding_rank``; a dict without it: 1
    when it has a finding)."""
    return int(best.get("finding_rank", int(bool(best.get("finding")))))


def position_warnings(problem: PlanningProblem, positions: dict) -> list[str]:
    """A warning per other position that gives a feasible path when the chosen one has none, or
    a best path that is clearly better: a score lower by at least ``position_score_margin``, or
    at least ``position_lung_margin_mm`` less aerated lung crossed with no more pleural
    crossings (planning_defaults warnings)."""
    if not positions:
        return []
    from .problem import POSITIONS
    from .table import table_band_words

    chosen = problem.constraints.patient_position
    lim = load_defaults()["warnings"]
    margin, lung_margin = lim["position_score_margin"], lim["position_lung_margin_mm"]
    mine = (positions.get(chosen) or {}).get("best")
    out = []
    for pos, v in positions.items():
        b = v.get("best")
        if pos == chosen or b is None:
            continue
        if mine is not None and _rank(b) > _rank(mine):
            continue   # a path whose findings rank it later (`findings.finding_rank`) is no better than the chosen one's
        lung_better = mine is not None and (
            b["aerated_lung_mm"] <= mine["aerated_lung_mm"] - lung_margin
            and b["pleural_crossings"] <= mine["pleural_crossings"])
        if mine is None or b["score"] <= mine["score"] - margin or lung_better:
            why = "no feasible path" if mine is None else (
                f"a worse best path (score {mine['score']:.3f}, {mine['aerated_lung_mm']:.0f} mm of "
                "aerated lung)")
            fnd = (" (that path has a warned finding the label map cannot resolve: plan that position to see it)"
                   if b.get("finding") else "")
            # trial 94: the right-lateral hint to a lung-base point named the left-lateral's entry, 61 deg from
            # the right-lateral couch (limit 60): admitted by the rule, but within the normal's uncertainty
            band = (table_band_words(problem, b["entry_ras"], b["normal_ras"], POSITIONS[pos])
                    if b.get("normal_ras") is not None else None)
            fnd += f" ({band})" if band else ""
            out.append(f"patient position: {chosen} gives {why}; {pos} gives {v['feasible_candidates']} "
                       f"feasible candidates, best entry {np.round(b['entry_ras'], 1).tolist()} RAS mm, "
                       f"{b['length_mm']:.0f} mm, {b['aerated_lung_mm']:.0f} mm of aerated lung, score "
                       f"{b['score']:.3f}{fnd} (--position {pos})")
    return out


LARGE_VESSEL_HINTS = ("aorta", "vena_cava", "pulmonary_artery", "pulmonary_vein", "portal", "heart",
                      "atrial_appendage", "brachiocephalic", "subclavian", "iliac_artery", "iliac_vena",
                      "common_carotid", "great_vessels")
VESSEL_HINTS = ("aorta", "vena_cava", "portal", "hepatic_vessel", "artery", "vein", "lung_vessels",
                "iliac", "brachiocephalic", "subclavian", "carotid", "great_vessels")


def present_structures(problem: PlanningProblem, maps: PlanningMaps) -> set:
    """Names of the problem's structures with voxels within needle reach (the maps' box). The
    labels are counted 2**20 voxels at a time (``bincount`` casts to int64: one call on the
    whole box was a 132 MiB temporary on the 1 mm phantom, the first plan's traced peak)."""
    flat = maps.label.reshape(-1)
    here = np.zeros(int(flat.max(initial=0)) + 1, bool)
    for a in range(0, flat.size, 1 << 20):
        here |= np.bincount(flat[a:a + (1 << 20)], minlength=len(here)) > 0
    return {maps.names[i] for i in range(len(maps.names))
            if problem.structures[i].value < len(here) and here[problem.structures[i].value]}


def large_vessels_labelled(present: set, hints=LARGE_VESSEL_HINTS) -> bool:
    """True when a name of ``present`` (`present_structures`) holds one of ``hints`` (a large
    named vessel labelled within needle reach)."""
    return any(h in n for n in present for h in hints)


def absent_structure_warnings(problem: PlanningProblem, maps: PlanningMaps) -> list[str]:
    """Warnings for kinds of structure the plan assumes absent because the label map has none
    near the target: vessels (any), lung vessels for a target in the lung, bones."""
    present = present_structures(problem, maps)
    out = []
    if not any(h in n for n in present for h in VESSEL_HINTS):
        out.append("no vessels labelled within needle reach: the plan assumes none (segment vessels, "
                   "e.g. on a contrast CT, before trusting clearances)")
    in_lung = bool(maps.flags[tuple(np.clip(np.rint(maps.world_to_kji(problem.target.point_ras[None])[0]).astype(int),
                                            0, np.array(maps.label.shape) - 1))] & 2)
    if in_lung and not any(n in anatomy.AERATED_LUNG for n in problem.labels.labels.values()):
        # new-user trial 90 L: the chest CTA's lungs removed from the labels: "no feasible path",
        # the lung's contrast-filled vessels kept out as unlabelled dense tissue, and no word of why
        out.append("target in the lung but no lung labelled (lung_left/lung_right or the lobes): the lungs are taken as "
                   "the air inside the body, pleural crossings as its edges, and dense tissue in them (vessels, "
                   "on a contrast CT above 250 HU) as unlabelled: label the lungs (imagio segment --structures "
                   "lungs,vessels) and plan again")
    if in_lung and not any("lung_vessels" in n or "pulmonary" in n for n in present):
        out.append("target in the lung but no lung vessels labelled: the plan assumes none")
    if in_lung and not any("lobe" in n for n in present):
        # fissures lie between lobes: without lobe labels none is seen, and fissure_crossings 0 means
        # "not judged", not "none" (new-user trial 51: 0 beside three true crossings)
        out.append("target in the lung but no lung lobes labelled: fissure crossings are not judged (0 means "
                   "not known); give a label map with the lobes (TotalSegmentator lung_upper_lobe_left ...) or "
                   "check the fissures on the images")
    if not large_vessels_labelled(present):
        out.append("no large named vessel (aorta, venae cavae, pulmonary or portal vessels, heart) "
                   "labelled within needle reach: the plan assumes none")
    if not any(n.startswith(("rib", "vertebra", "sternum", "bone", "scapula", "clavicula", "costal",
                             "sacrum", "hip", "femur", "humerus", "skull")) for n in present):
        out.append("no bones labelled within needle reach: the plan assumes none")
    return out


def nearest_skin_mm(problem: PlanningProblem) -> float:
    """Distance (mm) from the target to the nearest outer-skin voxel (whole image)."""
    skin = problem.skin.skin
    pts = problem.ct.kji_to_world(np.argwhere(skin).astype(float))
    if len(pts) == 0:
        return float("inf")
    return float(np.min(np.linalg.norm(pts - problem.target.point_ras, axis=1)))


def verified_proposals(problem: PlanningProblem, table: ScoreTable, k: int, separation_mm: float,
                       rounds: int = 50, verifier=None, defer=None):
    """`propose`, then every proposal and shown Pareto path re-checked by `verify.Verifier`; a
    path the re-check rejects gets the ``verification`` violation and the proposals are drawn
    again, until all agree (at most ``rounds`` times). ``defer``: rows ranked after every row
    without it (`proposals.propose`). Returns (ranked, pareto, checks), checks
    = {row: Verification} of every path re-checked."""
    from .scoring import BIT
    from .verify import Verifier

    ver = verifier or Verifier(problem)
    checks: dict = {}
    for _ in range(rounds):
        ranked, pareto = propose(table, k, separation_mm, defer=defer)
        todo = [i for i in dict.fromkeys(ranked + pareto[:PARETO_SHOWN]) if i not in checks]
        if not todo:
            break
        for i in todo:
            checks[i] = ver.verify(table.entry_ras[i], table.target_ras[i])
            if not checks[i].ok:
                table.violations[i] |= BIT["verification"]
    else:
        ranked, pareto = propose(table, k, separation_mm, defer=defer)
        ranked = [i for i in ranked if i in checks and checks[i].ok]
        pareto = [i for i in pareto if i in checks and checks[i].ok]
    return ranked, pareto, checks


PARETO_SHOWN = 50


def findings_checked(problem) -> dict:
    """plan.json's ``checked``: per finding reported per proposal, whether it was judged at all
    (True: a proposal's null means clear; False: not checked, nothing is known). ``unimaged``: a
    skin model exists (`findings.unimaged_needle`); ``outside_clearance``: a body outline exists
    (`findings.outside_clearance`); ``couch_clearance``: `findings.couch_judged` (as
    ``couch_checked``); ``beyond_tip``: ``needle.beyond_tip_mm`` > 0."""
    from .findings import couch_judged

    return {"unimaged": problem.skin is not None, "outside_clearance": problem.body is not None,
            "couch_clearance": couch_judged(problem), "beyond_tip": problem.needle.beyond_tip_mm > 0}


def _beyond_tip_row(f, row: int, checked_mm: float) -> dict:
    """plan.json's ``beyond_tip`` of one proposal (`findings.beyond_tip`): how far past the target
    its axis was checked (mm), and what it meets first there at how many mm: ``meets`` "none"
    when the check found nothing, None only when nothing was checked (``checked_mm`` 0; trial
    55: a null after a 22 mm check read like "not known"); ``at_mm`` None when it meets nothing."""
    mm = f.beyond_mm.get(row, float("inf"))
    what = f.beyond_what.get(row)
    return {"checked_mm": checked_mm, "meets": None if checked_mm <= 0 else (what or "none"),
            "at_mm": round(float(mm), 1) if np.isfinite(mm) else None}


def _outside_row(f, row: int):
    """plan.json's 'outside_clearance' of a proposal (`findings.outside_clearance`): None when the
    needle part outside the skin and its hub keep their clearance, else the distance (mm), where
    (mm past the entry), whether along the hub, whether that tissue is inside the outline."""
    mm = f.near_mm.get(row, float("inf"))
    if not np.isfinite(mm):
        return None
    return {"mm": round(float(mm), 1), "at_mm": round(float(f.near_at_mm[row]), 1),
            "hub": bool(f.near_hub[row]), "inside_outline": bool(f.near_inside[row])}


def _unimaged_row(f, row: int):
    """plan.json's 'unimaged' of a proposal (`findings.unimaged_needle`): None when the needle
    part outside the skin and its hub stay inside the image, else the mm beyond it (to the hub's
    end), the side, where it leaves (mm past the entry), whether only the hub leaves it and
    ``body_cut``: whether the body is cut on that side (False: past the array or in the padding
    outside the reconstruction circle where the body is not cut). Not checked there: what lies
    beyond the image is not seen."""
    mm = f.unimaged_mm.get(row, 0.0)
    if not mm > 0.0:
        return None
    return {"mm": round(float(mm), 1), "side": f.unimaged_side[row], "at_mm": round(float(f.unimaged_at_mm[row]), 1),
            "hub_only": bool(f.unimaged_hub[row]), "body_cut": bool(f.unimaged_cut.get(row, True))}


def _couch_row(f, row: int):
    """plan.json's 'couch_clearance' of a proposal (`findings.couch_clearance`): None when the
    needle part outside the skin and its hub keep their clearance from the couch top, else the
    distance (mm; 0: the axis reaches it), where (mm past the entry), whether along the hub."""
    mm = f.couch_mm.get(row, float("inf"))
    if not np.isfinite(mm):
        return None
    return {"mm": round(float(mm), 1), "at_mm": round(float(f.couch_at_mm[row]), 1), "hub": bool(f.couch_hub[row])}


def _diaphragm_row(f, row: int):
    """plan.json's 'below_lung_base' of a proposal (`diaphragm.crossings`): None when not judged
    (not a lung target), else the mm the path runs below the lung base before it reaches the lung
    (0: none), where (mm from the entry; null when 0) and the side of the lung above."""
    from .diaphragm import SIDES

    if row not in f.diaphragm_mm:
        return None
    mm = float(f.diaphragm_mm[row])
    a, b = f.diaphragm_from_mm[row], f.diaphragm_to_mm[row]
    return {"mm": round(mm, 1), "from_mm": None if not mm else round(float(a), 1),
            "to_mm": None if not mm else round(float(b), 1), "side": SIDES[int(f.diaphragm_side[row])] or None}


def screen_dense_tissue(problem: PlanningProblem, table: ScoreTable, verifier) -> int:
    """Give the ``dense_tissue`` violation to every candidate that otherwise meets all rules
    (the table-side rule excepted: other patient positions) and whose path surely fails the
    verifier's CT density check (`density.DenseTissue.screen`, all paths at once, on a subset of
    the verifier's own samples). Returns how many were marked."""
    from .verify import STEP_VOXELS

    todo = np.flatnonzero((table.violations & ~np.int32(BIT["table_side"])) == 0)
    if len(todo) == 0:
        return 0
    step = STEP_VOXELS * float(min(problem.ct.spacing))
    hit = verifier.dense.screen(table.entry_ras[todo], table.target_ras[todo], step)
    table.violations[todo[hit]] |= np.int32(BIT["dense_tissue"])
    return int(hit.sum())


def plan(problem: PlanningProblem, k: int | None = None, progress=None, strict: bool = False,
         maps: PlanningMaps | None = None) -> Plan:
    """Plan needle paths for ``problem``: up to ``k`` diverse ranked proposals (see module doc)."""
    d = load_defaults()
    k = int(d["n_proposals"] if k is None else k)
    prog = Progress(progress)
    t0 = time.perf_counter()
    c = problem.constraints
    if maps is None and "table_side" not in c.disabled_rules and c.table_exclusion_deg > 0:
        # the couch search (per case, needed by the scoring and `table_warnings`) before the
        # distance maps exist: its masks and label maps then do not add to theirs (peak memory)
        from .table import locate_table_cached

        locate_table_cached(problem, c.table_direction)
    maps = maps if maps is not None else precompute(problem, progress=prog.sub(0.0, 0.7))
    t1 = time.perf_counter()
    prog(0.72, "planning: candidate entries on the skin")
    cand = skin_candidates(maps, problem.target.point_ras, problem.needle.length_mm,
                           problem.constraints.skin_spacing_mm)
    t2 = time.perf_counter()
    prog(0.8, f"planning: scoring {len(cand)} candidate paths")
    table = score_paths(problem, maps, cand.entry_ras, cand.normal_ras)
    t3 = time.perf_counter()
    from .verify import Verifier

    ver = Verifier(problem)
    screen_dense_tissue(problem, table, ver)
    # findings the label map cannot resolve rank a path last (`findings`): computed once for
    # every feasible row (verification only removes rows)
    from .findings import deferred, finding_rank, path_findings
    from .mediastinum import MEDIASTINAL_VESSEL_HINTS

    present = present_structures(problem, maps)
    vl = large_vessels_labelled(present, MEDIASTINAL_VESSEL_HINTS)
    fnd = path_findings(problem, table, np.flatnonzero(table.feasible), present, vl, dense=ver.dense)
    ranked, pareto, checks = verified_proposals(problem, table, k, float(d["proposal_separation_mm"]),
                                                verifier=ver, defer=deferred(fnd, len(table)))

    def flagged(rows, batch=None):   # rows feasible in another position only: their findings computed now
        # (the couch finding left out: it is judged against the planned position's couch only,
        # and not computed), with the rows of ``batch`` that set `path_findings` sample counts
        todo = [int(r) for r in rows if int(r) not in fnd.outside_tissue_mm]
        more = fnd
        if todo:
            ctx = [r for r in np.asarray(todo if batch is None else batch).tolist() if r not in fnd.outside_tissue_mm]
            more = path_findings(problem, table, anchored_rows(table, todo, ctx), present, vl, med=fnd.mediastinum,
                                 dense=ver.dense, couch=False)
        return [finding_rank((fnd if int(r) in fnd.outside_tissue_mm else more).flagged(int(r), couch=False))
                for r in rows]

    positions = position_alternatives(problem, table, ver, checks, flagged=flagged,
                                      first=ranked[0] if ranked else None)
    ev = Evaluator(problem, maps, verifier=ver)
    proposals = [ev.metrics(table, i) for i in ranked]
    t4 = time.perf_counter()
    prog(1.0, f"planning: {len(proposals)} proposals, {int(table.feasible.sum())} feasible")
    result = Plan(problem, maps, cand, table, ranked, pareto, proposals, ev,
                  {"precompute": t1 - t0, "candidates": t2 - t1, "score": t3 - t2,
                   "proposals": t4 - t3, "n_candidates": len(cand)}, checks, positions, fnd)
    if strict and not result.feasible:
        raise NoFeasiblePath(result.report)
    return result


def plan_demo(phantom, out_dir, progress=None) -> dict:
    """Plan for the phantom's first liver tumour and first lung nodule; write
    ``out_dir/plan_<lesion>.json``; return a JSON-able summary per lesion."""
    out_dir = Path(out_dir)
    lesions = list(getattr(phantom, "lesions", []))
    picks = [next((l for l in lesions if l.kind == kind), None) for kind in ("liver_tumor", "lung_nodule")]
    picks = [l for l in picks if l is not None]
    prog = Progress(progress)
    summary = {}
    for n, les in enumerate(picks):
        sub = prog.sub(n / len(picks), (n + 1) / len(picks))
        target = les.name if les.name in phantom.labels.labels.values() else les.center_ras
        prob = PlanningProblem.build(phantom.ct, phantom.labels, target)
        p = plan(prob, progress=sub)
        path = p.write_json(out_dir / f"plan_{les.name}.json")
        best = p.proposals[0] if p.proposals else None
        summary[les.name] = to_jsonable({
            "file": str(path), "feasible": p.feasible, "candidates": len(p.table),
            "feasible_candidates": int(p.table.feasible.sum()),
            "best": None if best is None else {
                "entry_ras": best.entry_ras, "length_mm": best.length_mm,
                "closest_structure": best.closest_structure,
                "closest_clearance_mm": best.closest_clearance_mm,
                "craniocaudal_deg": best.craniocaudal_deg, "score": best.score},
            "report": None if p.feasible else p.report,
            "timings_s": p.timings_s,
        })
    return summary


def deferred_better_warning(proposals, flagged) -> list[str]:
    """One line when proposals ranked last for a finding (``flagged``, per proposal) score
    better than the first proposal, which has none (``proposals``: the ranked
    `evaluate.PathMetrics`, best first; ``flagged``: their finding names, as
    `findings.Findings.flagged`): the ranking rule (``findings_ranked_last``) puts a path the images cannot settle after every clean path
    whatever the scores, so the first proposal a user sees may cross far more aerated lung
    than the deferred ones (new-user trial 88 M1: chest CTA planned prone, proposal 1 146 mm
    with 84 mm of aerated lung ahead of three 44-49 mm paths with 15-16 mm, deferred only
    because the unused needle outside the skin ran beyond the image where the body is cut).
    Says which, with their scores (lower is better), path lengths and aerated lung (mm), that
    their findings are to be checked on the images and at the patient, and that a shorter
    needle leaves less of it outside the skin when the finding is the unimaged needle. Only
    proposals whose findings all concern the needle's part outside the skin
    (`findings.finding_rank` 1) are named: a finding inside the patient is no trade to offer."""
    from .findings import held_back_better

    if not flagged or flagged[0]:
        return []
    first = proposals[0]
    # only findings of the needle's part outside the skin, which the operator can check at the patient
    # (trial 89 M2: a mediastinal path, great vessels unseen, is not to be offered as the better path)
    better = [n for n, (m, fl) in enumerate(zip(proposals, flagged), 1)
              if held_back_better(fl, m.score, first.score)]
    if not better:
        return []
    b = [proposals[n - 1] for n in better]
    names = sorted({x for n in better for x in flagged[n - 1]})
    short = ("; a shorter needle (--needle-length) leaves less of it outside the skin, beyond the image"
             if "unimaged_needle" in names else "")
    return [f"proposal{'s' if len(better) > 1 else ''} {', '.join(map(str, better))} "
            f"score{'' if len(better) > 1 else 's'} better "
            f"({', '.join(f'{m.score:.2f}' for m in b)}; lower is better) than proposal 1 ({first.score:.2f}) and "
            f"{'are' if len(better) > 1 else 'is'} ranked after it only for the finding{'s' if len(names) > 1 else ''} "
            f"said of {'them' if len(better) > 1 else 'it'} ({', '.join(names)}), which the images cannot settle: "
            f"proposal 1 is {first.length_mm:.0f} mm long with {first.aerated_lung_mm:.0f} mm of aerated lung, "
            + ", ".join(f"proposal {n} {m.length_mm:.0f} mm with {m.aerated_lung_mm:.0f} mm" for n, m in zip(better, b))
            + f". Check those findings on the images and at the patient; where they are clear, the better-scored "
            f"proposal is the better path{short}"]
