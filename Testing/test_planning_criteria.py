"""The score's criteria table (imagio/data/planning_criteria.json) drives every score."""

from __future__ import annotations

import numpy as np

from imagio.planning.criteria import CRITERIA, criteria_table, criterion_costs, default_weights


def _metrics(**kw):
    base = dict(length_fraction=0.5, clearance_above_required_mm=5.0, skin_angle_deg=10.0,
                craniocaudal_deg=0.0, avoid_mm=20.0, aerated_mm=0.0, pleural_crossings=1,
                fissure_crossings=0, emphysema_pct=0.0, bone_mm=0.0)
    base.update(kw)
    return {k: np.array([v], float) for k, v in base.items()}


def _score(m):
    w = np.array([default_weights()[c] for c in CRITERIA])
    return float(criterion_costs(m)[0] @ w / w.sum())


def test_every_criterion_has_unit_direction_range_weight_and_source():
    for c in criteria_table():
        assert c["unit"] and c["direction"] in ("lower", "higher") and c["hi"] > c["lo"]
        assert c["weight"] >= 0 and len(c["source"]) > 20


def test_aerated_lung_outweighs_extra_rib_clearance():
    """Issue 12: 36 mm more aerated lung must not be bought with rib clearance beyond the margin."""
    lung = _metrics(aerated_mm=36.0, clearance_above_required_mm=15.0)
    ribs_close = _metrics(aerated_mm=0.0, clearance_above_required_mm=1.0)
    assert _score(ribs_close) < _score(lung)


def test_length_near_the_needle_limit_costs_more():
    """Issue 12: a 149 mm path with a 150 mm needle scores worse than a 120 mm one, other things
    equal, by more than the plain length criterion alone."""
    near, ok = _metrics(length_fraction=149 / 150), _metrics(length_fraction=120 / 150)
    i = CRITERIA.index("length_near_limit")
    assert criterion_costs(near)[0, i] > 0.8 and criterion_costs(ok)[0, i] == 0.0
    assert _score(near) > _score(ok)


def test_costs_follow_direction_and_range():
    c = criterion_costs(_metrics(clearance_above_required_mm=0.0, skin_angle_deg=90.0))[0]
    assert c[CRITERIA.index("clearance")] == 1.0 and c[CRITERIA.index("skin_angle")] == 1.0
    c = criterion_costs(_metrics(clearance_above_required_mm=50.0, skin_angle_deg=0.0))[0]
    assert c[CRITERIA.index("clearance")] == 0.0 and c[CRITERIA.index("skin_angle")] == 0.0


def test_an_infeasible_plan_says_so_in_its_warnings():
    from imagio.planning import PlanningProblem, plan
    from imagio.planning.problem import Needle
    from imagio.planning.synthetic import synthetic_torso

    ct, lab = synthetic_torso(3.0)
    r = plan(PlanningProblem.build(ct, lab, "liver_tumor", needle=Needle(length_mm=50)))
    assert not r.feasible and any(w.startswith("no feasible path") for w in r.warnings)
    assert r.to_dict()["warnings"] == r.warnings
