"""Skin candidates (spacing, reach, outward normals, table side) and evaluate/batch agreement."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from conftest import rotation
from imagio.planning import Constraints, Evaluator, PlanningProblem, plan
from imagio.planning.candidates import skin_candidates, skin_mask
from imagio.planning.distance_maps import precompute
from imagio.planning.scoring import BIT
from imagio.planning.synthetic import BODY_AXES, synthetic_torso
from imagio.planning.table import locate_table_cached
from imagio.volume import Volume
from test_planning_couch_side_outline import outline_side


@pytest.fixture(scope="module")
def oblique_torso():
    ct, lab = synthetic_torso((2.0, 2.5, 3.0), direction=rotation((1, 1, 0), 15.0))
    return PlanningProblem.build(ct, lab, "liver_tumor")


def test_candidates_cover_the_skin_within_reach(oblique_torso):
    prob = oblique_torso
    maps = precompute(prob)
    cand = skin_candidates(maps, prob.target.point_ras, prob.needle.length_mm, 3.0)
    t = prob.target.point_ras
    assert len(cand) > 1000
    assert np.all(np.linalg.norm(cand.entry_ras - t, axis=1) <= prob.needle.length_mm + 1e-6)
    skin = maps.grid.kji_to_world(np.argwhere(skin_mask(maps)).astype(float))
    skin = skin[np.linalg.norm(skin - t, axis=1) <= prob.needle.length_mm - 5]
    d, _ = cKDTree(cand.entry_ras).query(skin)
    assert d.max() <= 3.0 * np.sqrt(3) + 0.5          # one candidate per 3 mm cell
    # outward normals of the elliptic cylinder side: along the gradient of (x/a)^2 + (y/b)^2
    e, nrm = cand.entry_ras, cand.normal_ras
    side = np.abs(e[:, 2]) < 80
    a, b = BODY_AXES
    g = np.stack([e[:, 0] / a ** 2, e[:, 1] / b ** 2, np.zeros(len(e))], 1)[side]
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    cosang = (g * nrm[side]).sum(1)
    assert np.median(cosang) > 0.98 and np.all(cosang > 0.8)


@pytest.mark.parametrize("position,axis,sign", [("supine", 1, -1), ("prone", 1, 1),
                                                 ("left_lateral", 0, -1), ("right_lateral", 0, 1)])
def test_table_side_is_excluded(oblique_torso, position, axis, sign):
    prob = oblique_torso.with_constraints(patient_position=position)
    p = plan(prob)
    t = p.table
    table_side = (t.violations & BIT["table_side"]) > 0
    assert table_side.any()
    # the table: an entry facing it (normal within 60 deg), or the needle left outside the skin
    # reaching below its top (the body's extreme towards it, from the body mask, +- one voxel)
    kji = np.argwhere(prob.body)
    plane = float(np.max(sign * prob.ct.kji_to_world(kji)[:, axis]))
    tol = float(max(prob.ct.spacing))
    u = t.target_ras - t.entry_ras
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    hub = t.entry_ras - u * np.clip(prob.needle.length_mm - t.length_mm, 0, None)[:, None]
    faces = sign * t.normal_ras[:, axis] > 0.49
    other = table_side & ~(faces | (sign * hub[:, axis] > plane - tol))
    # no couch in this torso's image: an entry may also lie on the couch side of the body's outline
    # in its axial slice (`table.on_couch_side_of_outline`, trial 81; here the rims of the flat
    # ends): read on the body mask in that plane, facing the couch within 60 deg (+ 15 between
    # two smoothings) and the mask ending within two voxels towards it (a sample of 40)
    assert not locate_table_cached(prob, prob.constraints.table_direction).located
    rows = np.random.default_rng(0).permutation(np.flatnonzero(other))[:40]
    d = np.zeros(3)
    d[axis] = sign
    ang, gap = outline_side(Volume(np.asarray(prob.skin.body).astype(np.uint8), prob.ct.ijk_to_ras),
                            t.entry_ras[rows], d)
    assert np.all((ang < 75.0) & (gap <= 2 * tol + 0.5)), (ang, gap)
    assert np.all(sign * t.normal_ras[t.feasible, axis] <= 0.5 + 1e-6)
    assert np.all(sign * hub[t.feasible, axis] <= plane + tol)


def test_evaluate_matches_the_batch_row(oblique_torso):
    p = plan(oblique_torso)
    ev = Evaluator(oblique_torso, p.maps)
    t = p.table
    rng = np.random.default_rng(3)
    for i in rng.choice(len(t), 25, replace=False):
        m = ev.evaluate(t.entry_ras[i], normal_ras=t.normal_ras[i])
        assert m.violations == t.violated(i)
        assert m.slack_mm == pytest.approx(float(t.slack_mm[i]), abs=1e-4)
        assert m.score == pytest.approx(float(t.score[i]), abs=1e-5)
        assert m.length_mm == pytest.approx(float(t.length_mm[i]))
    # the default entry normal comes from the body mask and matches the candidate's
    i = int(np.flatnonzero(t.feasible)[0])
    assert np.allclose(ev.evaluate(t.entry_ras[i]).skin_angle_deg, t.skin_angle_deg[i], atol=1e-3)


def test_bad_inputs_raise_clear_errors(oblique_torso):
    from imagio.errors import InputError
    ct, lab = oblique_torso.ct, oblique_torso.labels
    with pytest.raises(InputError, match="not in the label map"):
        PlanningProblem.build(ct, lab, "kidney_left")
    with pytest.raises(InputError, match="outside the image"):
        PlanningProblem.build(ct, lab, (0.0, 0.0, 5000.0))
    with pytest.raises(InputError, match="patient position"):
        Constraints(patient_position="sitting")
    with pytest.raises(InputError, match="unknown role"):
        PlanningProblem.build(ct, lab, "liver_tumor", roles={"aorta": "maybe"})
