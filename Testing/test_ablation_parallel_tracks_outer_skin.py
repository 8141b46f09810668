"""`multiprobe.parallel_tracks` puts every entry on the OUTER skin (commit 40cd4da): a parallel
track whose line, followed back past its skin entry (the needle's part outside the skin, within
``reach_mm``), meets the body again (another body part in the shaft's way) is dropped.

The scene: the synthetic torso with its right side beyond a 6 mm air gap (x 112-118 mm) an
'arm', joined to the trunk by a 12 mm tissue bridge at the top (z >= 83 mm, the shoulder) so it
is in the body outline, on an oblique (18 deg), flipped (x), anisotropic (2.4 x 1.8 x 4.0 mm)
grid. Three needle directions to the liver tumour: from the right (every line through the tumour,
followed back out of the trunk, crosses the gap and then the arm), from the front (clear) and
from the right-front (some lines clear the arm, some do not). The checks are the test's own: each
line sampled every 0.25 mm in numpy against the body mask built here (nearest voxel).
"""

from __future__ import annotations

import numpy as np

from conftest import rotation
from imagio.planning import PlanningProblem
from imagio.planning.ablation import AblationContext
from imagio.planning.ablation.multiprobe import parallel_tracks
from imagio.planning.distance_maps import precompute
from imagio.planning.synthetic import TUMOR, synthetic_torso

STEP = 0.25   # mm, the test's own sampling step along a line
# needle directions (entry -> target, unit after normalising): from the right through the arm,
# from the front (clear), from the right-front (mixed)
ARM, CLEAR, MIXED = np.array([[-1.0, 0.1, -0.05], [-0.2, -1.0, 0.1], [-0.7, -0.7, 0.1]])


def _torso_with_a_joined_arm():
    """(ct, labels, body mask, arm mask) on an oblique, flipped, anisotropic grid; the masks are
    [k, j, i] on the labels grid, the body the scene's own truth (trunk + bridge + arm)."""
    d = rotation((2.0, -1.0, 1.0), 18.0) @ np.diag([-1.0, 1.0, 1.0])
    ct, lab = synthetic_torso((2.4, 1.8, 4.0), direction=d, ribs=False)
    xyz = lab.kji_to_world(np.argwhere(np.ones(lab.shape, bool)).astype(float))
    x, z = (xyz[:, n].reshape(lab.shape) for n in (0, 2))
    torso = lab.array > 0
    gap = torso & (x > 112.0) & (x <= 118.0) & (z < 83.0)     # air, below the shoulder bridge
    a, c = lab.array.copy(), ct.array.copy()
    a[gap], c[gap] = 0, -1000
    body = a > 0
    return ct.with_array(c), lab.with_array(a), body, body & (x > 118.0)


def _outward(mask, vol, start, d, reach_mm):
    """For lines from ``start`` (n, 3) RAS mm outward along -``d`` (unit, (3,) or (n, 3)) over ``reach_mm``:
    (mm from ``start`` to the first sample out of ``mask``, mm of the line in ``mask`` after
    that), nearest voxel of ``vol``'s grid, outside the grid = out."""
    start = np.asarray(start, float)
    d = np.broadcast_to(np.asarray(d, float), start.shape)
    s = np.arange(0.0, reach_mm + 1e-9, STEP)
    P = start[:, None, :] - s[None, :, None] * d[:, None, :]
    kji = np.rint(vol.world_to_kji(P.reshape(-1, 3))).astype(np.int64)
    ok = np.all((kji >= 0) & (kji < np.asarray(mask.shape)), axis=1)
    inside = np.zeros(len(kji), bool)
    inside[ok] = mask[tuple(kji[ok].T)]
    inside = inside.reshape(len(P), len(s))
    first_out = np.argmax(~inside, axis=1)
    assert (~inside).any(axis=1).all()           # every line leaves the body within the reach
    again = inside & (np.arange(len(s))[None, :] > first_out[:, None])
    return s[first_out], again.sum(axis=1) * STEP


def test_parallel_tracks_keep_entries_on_the_outer_skin():
    ct, lab, body, arm = _torso_with_a_joined_arm()
    prob = PlanningProblem.build(ct, lab, "liver_tumor")
    # the arm is in the body outline (joined at the shoulder), so in the maps' body
    assert arm.sum() > 5000 and np.asarray(prob.body)[arm].mean() > 0.95
    maps = precompute(prob)
    ctx = AblationContext(lab, "liver_tumor")
    reach = float(prob.needle.length_mm)
    dirs = np.array([ARM, CLEAR, MIXED])
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)

    # the scene does what it claims: from every tumour voxel, the line back out along the arm
    # direction crosses the gap and then >= 15 mm of arm; along the clear one it stays out
    tum = lab.kji_to_world(np.argwhere(lab.array == 3).astype(float))
    assert len(tum) > 100
    assert (_outward(body, lab, tum, dirs[0], reach)[1] >= 15.0).all()
    assert (_outward(body, lab, tum, dirs[1], reach)[1] == 0.0).all()
    assert (_outward(arm, lab, tum, dirs[0], reach)[1] >= 15.0).all()

    E, C, N, track, family = parallel_tracks(maps, ctx, TUMOR[0], dirs, 8.0, 6.0, reach)
    assert len(E) == len(C) == len(N) == len(track) == len(family)
    # tracks through the arm are absent; the clear direction's are present (not vacuous), and
    # the mixed direction keeps some lines
    n_tracks = np.array([len(np.unique(track[family == f])) for f in range(3)])
    assert n_tracks[0] == 0, E[family == 0]
    assert n_tracks[1] >= 4 and n_tracks[2] >= 1, n_tracks
    # every centre in the tumour (its own label), every entry behind its centres along the line
    kc = np.rint(lab.world_to_kji(C)).astype(int)
    assert (lab.array[tuple(kc.T)] == 3).all()
    u = C - E
    assert np.allclose(u / np.linalg.norm(u, axis=1, keepdims=True), dirs[family], atol=0.02)
    # the test's own check of each entry: on the skin (it leaves the body within a voxel's
    # diagonal), and the needle's part outside the skin never meets the body again
    first_out, again = _outward(body, lab, E, dirs[family], reach)
    diag = float(np.linalg.norm(lab.spacing_kji))
    assert (first_out <= diag).all(), first_out
    assert (again == 0.0).all(), np.c_[E, family, again][again > 0]
    # nor the arm itself, anywhere on the line out to the reach
    assert (_outward(arm, lab, E, dirs[family], reach)[1] == 0.0).all()
