"""The needle outside the skin through another body part (new-user trial 26: both humeri of an
abdominal CT lay outside the patient's outline, which keeps its largest component; an entry
under the arm put the needle's free length and hub through the arm, with no word).

A torso with an "arm" (the trunk's right side cut off by a 6 mm air gap, unlabelled tissue), on
an oblique, flipped, anisotropic grid. The check is the test's own: each proposal's needle part
outside the skin (entry -> hub, the needle's unused length) sampled every 0.25 mm against the
arm's own mask (nearest voxel): >= 10 mm in the arm must be warned and ranked after the
proposals without; < 10 mm - 1 mm of sampling tolerance must not be warned.
"""

from __future__ import annotations

import numpy as np

from conftest import rotation
from imagio.planning import PlanningProblem, plan
from imagio.planning.synthetic import synthetic_torso


def _torso_with_an_arm(joined: bool = False):
    """(ct, labels, arm mask): the torso's right side beyond a 6 mm air gap is an 'arm'; unlabelled
    tissue outside the outline, or, ``joined``, keeping its labels (in the outline, as the
    phantom's labelled arm and a rule-based body joined at the shoulders are)."""
    d = rotation((1, 2, 3), 15.0) @ np.diag([1.0, -1.0, 1.0])
    ct, lab = synthetic_torso((3.0, 2.5, 3.5), direction=d)
    xyz = lab.kji_to_world(np.argwhere(np.ones(lab.shape, bool)).astype(float))
    x, z = (xyz[:, n].reshape(lab.shape) for n in (0, 2))
    body = lab.array > 0
    gap = body & (x > 112.0) & (x <= 118.0)
    arm = body & (x > 118.0)
    a, c = lab.array.copy(), ct.array.copy()
    a[gap | (arm if not joined else False)] = 0
    # joined: a 12 mm tissue bridge at the top of the gap (the shoulder) keeps the arm in the
    # component of the trunk, so in the outline
    bridge = gap & (z >= z[body].max() - 12.0) if joined else np.zeros_like(gap)
    c[gap & ~bridge] = -1000
    return ct.with_array(c), lab.with_array(a), lab.with_array(arm.astype(np.uint8), labels={})


def _in_arm_mm(arm, entry, target, needle_mm):
    u = np.asarray(entry, float) - np.asarray(target, float)
    length = float(np.linalg.norm(u))
    u /= length
    s = np.arange(0.0, max(needle_mm - length, 0.0) + 1e-9, 0.25)
    idx = np.rint(arm.world_to_kji(np.asarray(entry) + s[:, None] * u)).astype(int)
    ok = np.all((idx >= 0) & (idx < arm.shape), axis=1)
    return float(arm.array[tuple(idx[ok].T)].sum() * 0.25)


def test_needle_outside_the_skin_through_an_arm_is_warned_and_ranked_last():
    from imagio.planning.findings import tissue_outside_skin
    from imagio.planning.problem import Constraints

    ct, lab, arm = _torso_with_an_arm()
    assert arm.array.sum() > 1000
    # the table rule off: its locator may take the arm for the couch (a dense object beyond the
    # skin) and exclude some of these paths for that reason; the finding must stand on its own
    free = Constraints(disabled_rules=("table_side",))
    problem = PlanningProblem.build(ct, lab, "liver_tumor", constraints=free)
    assert not np.any(np.asarray(problem.body) & (arm.array > 0))   # the arm is not in the outline
    result = plan(problem, k=8)
    needle = problem.needle.length_mm
    t = result.table
    rows = np.flatnonzero(t.feasible)
    rows = rows[np.linspace(0, len(rows) - 1, min(len(rows), 150)).astype(int)]
    got = tissue_outside_skin(problem, t.entry_ras[rows], t.target_ras[rows], t.length_mm[rows])
    own = np.array([_in_arm_mm(arm, t.entry_ras[r], t.target_ras[r], needle) for r in rows])
    assert (own >= 11.0).sum() >= 5, own   # the case has such paths
    assert np.all(np.abs(got - own) <= 1.5), np.c_[got, own][np.abs(got - own) > 1.5]
    # ranked last: the proposals are clean while crossing paths are feasible
    assert not any("tissue_outside_skin" in n for n in result.proposal_finding_names())
    # entries only beside the arm: every proposal crosses it, each warned, own check agrees
    lateral = Constraints(entry_region=(np.array([112.0, 10.0, 0.0]), 25.0), disabled_rules=("table_side",))
    side = plan(PlanningProblem.build(ct, lab, "liver_tumor", constraints=lateral), k=5)
    assert side.proposals
    own = [_in_arm_mm(arm, p.entry_ras, p.target_ras, needle) for p in side.proposals]
    names = side.proposal_finding_names()
    for mm, n in zip(own, names):
        assert ("tissue_outside_skin" in n) == (mm >= 10.0) or abs(mm - 10.0) <= 1.0, (mm, n)
    lines = [w for w in side.warnings if "outside the patient's outline" in w]
    assert len(lines) == sum("tissue_outside_skin" in n for n in names) >= 1


def test_needle_outside_the_skin_through_an_arm_inside_the_outline_is_warned():
    """New-user trial 60 H1: the phantom's arm is labelled (and a rule-based body joins it at the
    shoulders), so it lies inside the patient's outline, and the best lateral proposals ran 61-78
    mm of needle and hub through it unwarned. Tissue met after the needle left the skin into air
    is another body part, whatever the outline holds. Own check as above (the arm's mask)."""
    from imagio.planning.findings import tissue_outside_skin
    from imagio.planning.problem import Constraints

    ct, lab, arm = _torso_with_an_arm(joined=True)
    lateral = Constraints(entry_region=(np.array([112.0, 10.0, 0.0]), 25.0), disabled_rules=("table_side",))
    problem = PlanningProblem.build(ct, lab, "liver_tumor", constraints=lateral)
    assert np.count_nonzero(np.asarray(problem.body) & (arm.array > 0)) > 0.9 * arm.array.sum()   # in the outline
    side = plan(problem, k=5)
    assert side.proposals
    needle = problem.needle.length_mm
    own = [_in_arm_mm(arm, p.entry_ras, p.target_ras, needle) for p in side.proposals]
    assert max(own) >= 11.0, own   # the case has such proposals
    names = side.proposal_finding_names()
    for mm, n in zip(own, names):
        assert ("tissue_outside_skin" in n) == (mm >= 10.0) or abs(mm - 10.0) <= 1.0, (mm, n)
    t = side.table
    rows = np.flatnonzero(t.feasible)
    rows = rows[np.linspace(0, len(rows) - 1, min(len(rows), 150)).astype(int)]
    got = tissue_outside_skin(problem, t.entry_ras[rows], t.target_ras[rows], t.length_mm[rows])
    mine = np.array([_in_arm_mm(arm, t.entry_ras[r], t.target_ras[r], needle) for r in rows])
    assert np.all(np.abs(got - mine) <= 1.5), np.c_[got, mine][np.abs(got - mine) > 1.5]
