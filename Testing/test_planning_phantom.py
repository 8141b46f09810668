"""Planner on the digital phantom (3 mm for speed): ribs reject paths, intercostal spaces let
them through, every proposal passes the brute-force voxel check."""

import numpy as np
import pytest

from test_planning_bruteforce import brute_force_check

phantom = pytest.importorskip("imagio.phantom")

from imagio.planning import PlanningProblem, plan, plan_demo  # noqa: E402


@pytest.fixture(scope="module")
def ph():
    return phantom.generate(spacing=3.0, seed=0)


def _target(ph, kind):
    les = next(l for l in ph.lesions if l.kind == kind)
    return les.name if les.name in ph.labels.labels.values() else les.center_ras


def test_phantom_liver_tumour(ph):
    prob = PlanningProblem.build(ph.ct, ph.labels, _target(ph, "liver_tumor"))
    assert prob.target.organ == "liver"
    p = plan(prob)
    assert brute_force_check(prob, p) >= 1
    assert all(m.liver_before_target_mm >= 10.0 for m in p.proposals)
    t = p.table
    # ribs reject some paths, and feasible paths pass between ribs (a rib is their closest obstacle)
    hit = {t.names[j] for j in t.forbidden_hit[t.forbidden_hit >= 0]}
    assert any(n.startswith("rib_") for n in hit)
    closest = {t.names[j] for j in t.closest[t.feasible & (t.closest >= 0)]}
    assert any(n.startswith(("rib_", "costal")) for n in closest)


def test_phantom_lung_nodule(ph):
    prob = PlanningProblem.build(ph.ct, ph.labels, _target(ph, "lung_nodule"))
    p = plan(prob)
    if not p.feasible:   # a central nodule may have no percutaneous path: the report says why
        assert p.report["excluded_by"] and p.report.get("best_near_miss")
        return
    assert brute_force_check(prob, p) >= 1
    assert all(m.pleural_crossings <= 1 and m.fissure_crossings == 0 for m in p.proposals)


def test_phantom_plan_demo(ph, tmp_path):
    out = plan_demo(ph, tmp_path)
    assert len(out) == 2
    for name, s in out.items():
        assert (tmp_path / f"plan_{name}.json").exists()
        assert s["candidates"] > 100
