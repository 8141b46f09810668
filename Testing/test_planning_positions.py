"""Patient-position comparison (`planner.position_alternatives`): a path with a finding is
never quoted as a position's best while a verified path without one exists (new-user trial 19,
M2: when the 20 best-scored candidates all had a finding, the flagged one was quoted)."""

import numpy as np

from imagio.planning import Constraints, PlanningProblem, plan
from imagio.planning.planner import position_alternatives
from imagio.planning.scoring import BIT
from imagio.planning.verify import Verifier
from test_planning_geometry import NO_TABLE, analytic_volumes, box_body, thin_needle


def test_position_best_skips_paths_with_a_finding_beyond_the_top_20():
    ct, lab = analytic_volumes((3.0, 2.5, 2.0), (130, 130, 170), lambda x, y, z: box_body(x, y, z).astype(np.uint8),
                               {1: "body"}, direction=np.diag([1.0, -1.0, 1.0]))
    result = plan(PlanningProblem.build(ct, lab, (0.0, 0.0, 0.0), needle=thin_needle(),
                                        constraints=Constraints(**NO_TABLE)))
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
