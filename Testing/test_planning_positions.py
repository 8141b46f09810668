"""Patient-position comparison (`planner.position_alternatives`): a path with a finding is
never quoted as a position's best while a verified path without one exists (new-user trial 19,
M2: when the 20 best-scored candidates all had a finding, the flagged one was quoted)."""

import numpy as np
import pytest

from imagio.planning import Constraints, PlanningProblem, plan
from imagio.planning.planner import position_alternatives, position_warnings
from imagio.planning.scoring import BIT
from imagio.planning.verify import Verifier
from test_planning_geometry import NO_TABLE, analytic_volumes, box_body, thin_needle


@pytest.fixture(scope="module")
def box_plan():
    ct, lab = analytic_volumes((3.0, 2.5, 2.0), (130, 130, 170), lambda x, y, z: box_body(x, y, z).astype(np.uint8),
                               {1: "body"}, direction=np.diag([1.0, -1.0, 1.0]))
    return plan(PlanningProblem.build(ct, lab, (0.0, 0.0, 0.0), needle=thin_needle(),
                                      constraints=Constraints(**NO_TABLE)))


def test_position_best_skips_paths_with_a_finding_beyond_the_top_20(box_plan):
    result = box_plan
    t = result.table
    ok = np.flatnonzero((t.violations & ~np.int32(BIT["verification"]) & ~np.int32(BIT["table_side"])) == 0)
    assert len(ok) > 100
    order = ok[np.argsort(t.score[ok], kind="stable")]
    marked = set(order[:40].tolist())          # the 40 best-scored paths carry a "finding"
    calls = []

    def flagged(rows, batch=None):
        calls.append(len(rows))
        return [int(r) in marked for r in rows]

    ver = Verifier(result.problem)
    pos = position_alternatives(result.problem, t, ver, {}, flagged=flagged)
    # independent expectation: the best-scored path outside the marked ones that the verifier accepts
    expect = next(i for i in order if int(i) not in marked and ver.verify(t.entry_ras[i], t.target_ras[i]).ok)
    for name, v in pos.items():
        b = v["best"]
        assert b is not None, name
        assert np.allclose(b["entry_ras"], t.entry_ras[expect]), (name, b["entry_ras"], t.entry_ras[expect])
        assert b["finding"] is False
    # every path marked: the best is quoted as one with a finding
    pos = position_alternatives(result.problem, t, ver, {}, flagged=lambda rows, batch=None: [True] * len(rows))
    assert all(v["best"]["finding"] for v in pos.values())
    # the chosen position quotes the plan's first proposal
    chosen = result.problem.constraints.patient_position
    assert np.allclose(result.positions[chosen]["best"]["entry_ras"], result.proposals[0].entry_ras)


def test_a_positions_best_among_flagged_paths_is_of_the_lowest_finding_rank(box_plan):
    """New-user trial 109 (MED): lung1 (oblique series), supine's best had a finding of the
    needle outside the skin (rank 1) and both lateral positions quoted an anterior mediastinal
    path (rank 2, the supine plan ranks it after) as better by score: the comparison read a
    finding as yes/no. Every path flagged, the 40 best-scored with a finding inside the patient
    (rank 2), the rest rank 1: each position quotes the best verified rank-1 path, and a rank-2
    path is never said to beat a rank-1 best, whatever its score."""
    result = box_plan
    t = result.table
    ok = np.flatnonzero((t.violations & ~np.int32(BIT["verification"]) & ~np.int32(BIT["table_side"])) == 0)
    order = ok[np.argsort(t.score[ok], kind="stable")]
    inside = set(order[:40].tolist())
    ver = Verifier(result.problem)
    pos = position_alternatives(result.problem, t, ver, {},
                                flagged=lambda rows, batch=None: [2 if int(r) in inside else 1 for r in rows])
    expect = next(i for i in order if int(i) not in inside and ver.verify(t.entry_ras[i], t.target_ras[i]).ok)
    for name, v in pos.items():   # old code: a rank-2 path (the best-scored verified one)
        assert np.allclose(v["best"]["entry_ras"], t.entry_ras[expect]), (name, v["best"]["entry_ras"])
        assert v["best"]["finding"] is True and v["best"]["finding_rank"] == 1
    chosen = result.problem.constraints.patient_position
    other = next(p for p in pos if p != chosen)
    mine = dict(pos[chosen]["best"], score=0.5, aerated_lung_mm=80.0, finding_rank=1)
    better = dict(pos[other]["best"], score=0.2, aerated_lung_mm=10.0, pleural_crossings=mine["pleural_crossings"])
    p = result.problem.with_constraints(table_exclusion_deg=60.0, disabled_rules=())
    assert position_warnings(p, {chosen: {"best": mine}, other: {"best": dict(better, finding_rank=1), "feasible_candidates": 9}})
    assert position_warnings(p, {chosen: {"best": mine}, other: {"best": dict(better, finding_rank=2), "feasible_candidates": 9}}) == []
