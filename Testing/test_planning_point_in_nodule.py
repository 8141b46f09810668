"""A point target in a solid nodule that the label map leaves as 'body' (new-user trial 111, MED).

lung2's nodule, clicked without --lesions: the rule segmentation labels it 'body', so the lung ->
nodule step was counted as a second pleural crossing, every path through the lung was refused and
the message blamed the couch. An intrapulmonary nodule lies inside the visceral pleura: its solid
island in the lung (`planning.target_tissue`) is entered from the lung without a crossing. A point
in the chest wall, or in a nodule that touches it (no outline tells the two apart), keeps the lung
exit as a crossing, and the failure message says why and asks for the nodule's outline.
"""

import numpy as np
import pytest

from imagio.planning import PlanningProblem, plan
from imagio.planning.planner import NoFeasiblePath
from imagio.planning.synthetic import synthetic_torso

LUNG = (7, 8, 9)                                 # the synthetic torso's lung lobes
INTRA, JUXTA, WALL = (-65.0, 0.0, 72.0), (-102.0, 0.0, 72.0), (-115.0, 0.0, 72.0)   # left lung x -106..-21


@pytest.fixture(scope="module")
def torso():
    ct, lab = synthetic_torso(2.5)
    ras = ct.kji_to_world(np.argwhere(np.ones(ct.shape, bool)).astype(float)).reshape(ct.shape + (3,))
    return ct, lab, ras


def _nodule(torso, centre, radius, slab=False):
    """The torso with a solid sphere (20 HU) labelled 'body' (value 1), as the rule segmenter leaves
    a nodule; ``slab``: the lateral chest wall beside it (x < -108 mm) a forbidden structure, so
    that only paths through the lung are left."""
    ct, lab, ras = torso
    m = ((ras - np.asarray(centre)) ** 2).sum(-1) <= radius ** 2
    la, hu = np.where(m, 1, lab.array), np.where(m, 20, ct.array)
    names = dict(lab.labels)
    if slab:
        wall = (ras[..., 0] < -108) & (np.abs(ras[..., 1]) < 80) & (lab.array == 1) & ~m
        la, hu, names[10] = np.where(wall, 10, la), np.where(wall, 60, hu), "vertebrae_T1"
    return ct.with_array(hu.astype(ct.array.dtype)), lab.with_array(la.astype(lab.array.dtype), labels=names)


def _crossings(ct, lab, entry, target, inside=None):
    """Pleural crossings counted here, independently of the planner: changes of 'in a lung lobe
    label' (or in ``inside``'s sphere: (centre, radius)) along the segment, sampled every 0.25 mm
    at the nearest voxel."""
    e, t = np.asarray(entry, float), np.asarray(target, float)
    pts = e + np.linspace(0, 1, int(np.linalg.norm(t - e) / 0.25) + 2)[:, None] * (t - e)
    in_lung = np.isin(lab.array[tuple(ct.nearest_kji(pts, clip=True).T)], LUNG)
    if inside is not None:
        in_lung |= np.linalg.norm(pts - np.asarray(inside[0]), axis=1) <= inside[1]
    return int(np.count_nonzero(in_lung[1:] != in_lung[:-1]))


def test_a_point_in_an_intrapulmonary_nodule_is_reached_through_the_lung_with_one_crossing(torso):
    ct, lab = _nodule(torso, INTRA, 6.0)
    prob = PlanningProblem.build(ct, lab, np.array(INTRA))
    res = plan(prob, k=3)
    # old code: every path through the lung refused (2 pleural crossings): 0 of 11198 entries feasible
    assert res.feasible, res.report
    assert prob.target.name == "body" and prob.target.in_lung
    assert any("intrapulmonary nodule" in w for w in prob.warnings), prob.warnings
    for m in res.proposals:
        assert m.aerated_lung_mm > 10.0
        n = _crossings(ct, lab, m.entry_ras, m.target_ras, inside=(INTRA, 6.0))
        assert n == 1 and m.pleural_crossings == 1, (n, m.pleural_crossings)


def test_a_point_in_the_chest_wall_keeps_the_lung_exit_as_a_crossing(torso):
    ct, lab = _nodule(torso, WALL, 0.0)
    prob = PlanningProblem.build(ct, lab, np.array(WALL))
    assert not prob.target.in_lung   # (a guard: passes on the old code too)
    res = plan(prob, k=3)
    t = res.table
    # through the left lung only, from the side skin (not the lung cut by the scan's top face, z 95)
    left = (t.aerated_mm > 5.0) & (t.entry_ras[:, 0] < -30.0) & (t.entry_ras[:, 2] < 85.0)
    through = np.flatnonzero(left)[:: max(1, int(left.sum()) // 15)]
    assert len(through) >= 5
    for i in through:   # into the lung and out of it into the wall: two crossings, refused
        n = _crossings(ct, lab, t.entry_ras[i], t.target_ras[i])
        assert n >= 2 and int(t.pleural_crossings[i]) >= 2 and not t.feasible[i], (i, n, t.pleural_crossings[i])
    assert res.feasible and all(m.pleural_crossings == 0 for m in res.proposals)


def test_a_nodule_against_the_chest_wall_names_the_targets_tissue_when_no_path_is_left(torso):
    ct, lab = _nodule(torso, JUXTA, 8.0, slab=True)
    prob = PlanningProblem.build(ct, lab, np.array(JUXTA))
    assert not prob.target.in_lung   # conservative: no outline tells the nodule from the wall
    with pytest.raises(NoFeasiblePath) as err:
        plan(prob, k=1, strict=True)
    msg, rep = str(err.value), err.value.report
    # old code: the message named neither the target's tissue nor its outline
    assert "solid tissue (20 HU, 'body') that meets lung_lower_lobe_left" in msg, msg
    assert "--lesions FILE --target LABEL" in msg and "imagio lesion" in msg
    assert "prone" not in msg and "couch" not in msg
    tt = rep["target_tissue"]
    assert tt["rays_pct"]["lung"] > 50 and 0 < tt["alone"] <= tt["into"] <= rep["excluded_by"]["pleural_crossings"]["violating"]
