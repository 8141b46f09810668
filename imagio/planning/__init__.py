"""Needle trajectory planning: constraints, candidate paths scored in one vectorised pass,
ranked / Pareto / diverse proposals, skin risk map and live re-scoring of one path. Ablation
zones, coverage, margins and multi-probe plans: `imagio.planning.ablation`.

All positions are RAS millimetres; arrays are [k, j, i]; angles in degrees; CT values in HU.

Typical use::

    from imagio import planning
    prob = planning.PlanningProblem.build(ct, labels, target="liver_tumor_1")
    plan = planning.plan(prob)              # Plan: proposals, table of all candidates, report
    m = plan.evaluator.evaluate(entry_ras, target_ras)   # PathMetrics, ~1 ms
"""

from .problem import Constraints, Needle, PlanningProblem, StructureSpec, Target, load_defaults
from .planner import NoFeasiblePath, Plan, plan, plan_demo
from .evaluate import Evaluator, PathMetrics

__all__ = [
    "Constraints", "Needle", "PlanningProblem", "StructureSpec", "Target", "load_defaults",
    "NoFeasiblePath", "Plan", "plan", "plan_demo", "Evaluator", "PathMetrics",
]
