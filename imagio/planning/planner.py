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

from ..errors import ImagioError
from ..progress import Progress
from .candidates import Candidates, skin_candidates
from .distance_maps import PlanningMaps, precompute
from .evaluate import Evaluator, PathMetrics, _jsonable, violation_details
from .problem import PlanningProblem, load_defaults
from .proposals import propose
from .scoring import ScoreTable, score_paths


class NoFeasiblePath(ImagioError):
    """No candidate path satisfies every hard constraint; ``report`` explains why."""

    def __init__(self, report: dict):
        self.report = report
        super().__init__(format_report(report))


def format_report(report: dict) -> str:
    """The infeasibility report as one readable paragraph."""
    if report.get("candidates") == 0:
        return (f"no feasible needle path to {report.get('target')}: no skin entry within the "
                f"needle length; the nearest skin is {report.get('nearest_skin_mm')} mm from the "
                "target. Use a longer needle (--needle-length) or check the target point.")
    ex = ", ".join(f"{k} excluded {v['violating']} ({v['only_this']} only by it)"
                   for k, v in report.get("excluded_by", {}).items())
    nm = report.get("best_near_miss") or {}
    why = "; ".join(nm.get("details", [])) or "none"
    return (f"no feasible needle path to {report.get('target')} among {report.get('candidates')} "
            f"candidate entries: {ex or 'no candidate entries within needle reach'}. "
            f"Best near-miss (entry {nm.get('entry_ras')}): {why}. Relax the constraint that "
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

    @property
    def feasible(self) -> bool:
        return bool(self.proposals)

    @property
    def report(self) -> dict:
        t = self.table
        out = {"target": self.problem.target.name, "target_ras": self.problem.target.point_ras,
               "candidates": len(t), "feasible": int(t.feasible.sum()),
               "excluded_by": t.exclusion_counts()}
        if len(t) == 0:
            out["nearest_skin_mm"] = round(nearest_skin_mm(self.problem), 1)
            out["excluded_by"] = {"reach": {"violating": 0, "only_this": 0,
                                            "note": f"no skin within the needle length "
                                                    f"({self.problem.needle.length_mm:.0f} mm)"}}
        if not self.feasible and len(t):
            nv = np.array([bin(int(v)).count("1") for v in t.violations])
            best = int(np.lexsort((t.score, nv))[0])
            out["best_near_miss"] = {"entry_ras": np.round(t.entry_ras[best], 1).tolist(),
                                     "violations": t.violated(best),
                                     "details": violation_details(self.problem, t, best)}
        return _jsonable(out)

    def to_dict(self) -> dict:
        p = self.problem
        t = self.table
        return _jsonable({
            "target": {"name": p.target.name, "ras": p.target.point_ras, "organ": p.target.organ},
            "needle": vars(p.needle) | {"widening_mm": p.needle.widening_mm},
            "constraints": {k: v for k, v in vars(p.constraints).items()},
            "weights": p.weights,
            "feasible": self.feasible,
            "report": self.report,
            "proposals": [m.to_dict() for m in self.proposals],
            "pareto": [{"entry_ras": t.entry_ras[i], "score": t.score[i],
                        "costs": t.costs[i]} for i in self.pareto[:50]],
            "n_pareto": len(self.pareto),
            "timings_s": self.timings_s,
        })

    def write_json(self, path) -> Path:
        from ..outputs import write_text

        return write_text(path, json.dumps(self.to_dict(), indent=1))


def nearest_skin_mm(problem: PlanningProblem) -> float:
    """Distance (mm) from the target to the nearest body-surface voxel (whole image)."""
    from scipy import ndimage

    body = problem.body
    skin = body & ~ndimage.binary_erosion(body, border_value=1)
    pts = problem.ct.kji_to_world(np.argwhere(skin).astype(float))
    if len(pts) == 0:
        return float("inf")
    return float(np.min(np.linalg.norm(pts - problem.target.point_ras, axis=1)))


def plan(problem: PlanningProblem, k: int | None = None, progress=None, strict: bool = False,
         maps: PlanningMaps | None = None) -> Plan:
    """Plan needle paths for ``problem``: up to ``k`` diverse ranked proposals (see module doc)."""
    d = load_defaults()
    k = int(d["n_proposals"] if k is None else k)
    prog = Progress(progress)
    t0 = time.perf_counter()
    maps = maps if maps is not None else precompute(problem, progress=prog.sub(0.0, 0.7))
    t1 = time.perf_counter()
    prog(0.72, "planning: candidate entries on the skin")
    cand = skin_candidates(maps, problem.target.point_ras, problem.needle.length_mm,
                           problem.constraints.skin_spacing_mm)
    t2 = time.perf_counter()
    prog(0.8, f"planning: scoring {len(cand)} candidate paths")
    table = score_paths(problem, maps, cand.entry_ras, cand.normal_ras)
    t3 = time.perf_counter()
    ranked, pareto = propose(table, k, float(d["proposal_separation_mm"]))
    ev = Evaluator(problem, maps)
    proposals = [ev.metrics(table, i) for i in ranked]
    t4 = time.perf_counter()
    prog(1.0, f"planning: {len(proposals)} proposals, {int(table.feasible.sum())} feasible")
    result = Plan(problem, maps, cand, table, ranked, pareto, proposals, ev,
                  {"precompute": t1 - t0, "candidates": t2 - t1, "score": t3 - t2,
                   "proposals": t4 - t3, "n_candidates": len(cand)})
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
        summary[les.name] = _jsonable({
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
