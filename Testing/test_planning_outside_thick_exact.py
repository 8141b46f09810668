"""`findings._thick` (is a voxel in an object thick enough to be a body part?) evaluated pair by
pair with early exits (issue 20, speed26) is exactly the 27 x 27 test it replaced.

The old form (copied below) sampled, for every voxel, all 27 ball centres x 27 ball points
(nearest voxel of kji + offset) and took any-centre-of-all-points. The new form drops a
(voxel, centre) pair at its first ball point that is not tissue. Both must give the same bool
per voxel on oblique, flipped and anisotropic grids, on a grid whose offsets fall on exact half
voxels (2 mm spacing: 5 mm / 2 = 2.5, so rounding depends on the voxel's parity), with and
without the skin model's data mask, at any chunk size; and the new form must read far fewer CT
samples (the work it saves: on main every voxel reads 27 x 27).
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import rotation
from imagio.planning import PlanningProblem
from imagio.planning import findings as F
from imagio.planning.problem import Constraints
from imagio.planning.synthetic import BODY_AXES, TUMOR, synthetic_torso
from imagio.segmentation.common import BODY_HU

GRIDS = {"axial_2mm_half_voxel_offsets": ((2.0, 2.0, 2.0), np.eye(3)),
         "oblique_flipped_aniso": ((2.6, 1.9, 3.3), rotation((1, 2, 3), 17.0) @ np.diag([1.0, -1.0, 1.0])),
         "oblique_j_flipped": ((1.7, 2.3, 2.9), rotation((-2, 1, 0.5), 31.0) @ np.diag([1.0, 1.0, -1.0]))}


def _old_thick(problem, kji, chunk_samples: int = 1 << 18):
    """`findings._thick` before speed26 (main 5b9182c), verbatim but for the module prefixes."""
    kji = np.asarray(kji, np.int64).reshape(-1, 3)
    out = np.zeros(len(kji), bool)
    if not len(kji):
        return out
    ct = problem.ct
    rho = 0.5 * float(F.load_defaults()["warnings"]["tissue_outside_skin_mm"])
    dirs = F._unit_dirs()
    centres = np.concatenate([np.zeros((1, 3)), rho * dirs])
    ball = 0.8 * rho * np.concatenate([np.zeros((1, 3)), dirs])
    off = F._index_step(ct, (centres[:, None, :] + ball[None, :, :]).reshape(-1, 3)).reshape(len(centres), len(ball), 3)
    shape = np.asarray(ct.shape)
    strides = np.array([shape[1] * shape[2], shape[2], 1], np.int64)
    flat_ct = np.asarray(ct.array).reshape(-1)
    data = None if problem.skin is None else problem.skin.data
    per = off.shape[0] * off.shape[1]
    step = max(1, int(chunk_samples) // per)
    for lo in range(0, len(kji), step):
        q, inb = F._voxels(kji[lo:lo + step, None, None, :] + off[None], shape)
        flat = q[inb] @ strides
        tis = flat_ct[flat] > BODY_HU
        if data is not None:
            tis &= F._mask_at(data, flat)
        full = np.zeros(inb.shape, bool)
        full[inb] = tis
        out[lo:lo + step] = full.all(2).any(1)
    return out


def _scene(grid: str):
    """The synthetic torso with air beside it, an arm (radius 30 mm) and thin objects of tissue
    HU beside it: a 3 mm plate, a 6 mm plate, a 9 mm rod (thin, borderline, thick enough)."""
    sp, d = GRIDS[grid]
    ct, lab = synthetic_torso(sp, direction=d, extent=(420.0, 280.0, 130.0))
    xyz = lab.kji_to_world(np.argwhere(np.ones(lab.shape, bool)).astype(float))
    x, y, z = (xyz[:, n].reshape(lab.shape) for n in range(3))
    free = lab.array == 0
    c = ct.array.copy()
    ax = BODY_AXES[0]
    c[((x - ax - 45.0) ** 2 + (y - 20.0) ** 2 <= 30.0 ** 2) & (np.abs(z) <= 60.0) & free] = 40          # arm
    c[(x >= ax + 5.0) & (x <= ax + 60.0) & (np.abs(y + 40.0) <= 1.5) & (np.abs(z) <= 30.0) & free] = 40  # 3 mm
    c[(x <= -ax - 5.0) & (x >= -ax - 60.0) & (np.abs(y) <= 3.0) & (np.abs(z) <= 30.0) & free] = 40      # 6 mm
    c[((x + ax + 30.0) ** 2 + (y - 60.0) ** 2 <= 4.5 ** 2) & (np.abs(z) <= 50.0) & free] = 40           # 9 mm rod
    return ct.with_array(c), lab


def _voxels_to_test(ct, rng):
    """Every tissue voxel outside the torso's ellipse near the objects (thin and thick), a band
    of the torso's own skin, and random voxels anywhere (air, tissue, faces)."""
    dense = np.argwhere(np.asarray(ct.array) > BODY_HU)
    keep = dense[rng.random(len(dense)) < min(1.0, 4000.0 / max(len(dense), 1))]
    rand = rng.integers(0, np.asarray(ct.shape), size=(1500, 3))
    faces = rand.copy()
    faces[:500, 0] = 0
    faces[500:1000, 1] = ct.shape[1] - 1
    faces[1000:, 2] = 0
    return np.concatenate([keep, rand, faces])


@pytest.mark.parametrize("grid", list(GRIDS))
def test_thick_equals_the_27_by_27_test(grid, monkeypatch):
    ct, lab = _scene(grid)
    rng = np.random.default_rng(7)
    kji = _voxels_to_test(ct, rng)
    with_skin = PlanningProblem.build(ct, lab, "liver_tumor", constraints=Constraints(disabled_rules=("table_side",)))
    assert with_skin.skin is not None and with_skin.skin.data is not None

    class NoSkin:   # the same CT with no skin model (``data`` None: every voxel counts as data)
        def __init__(self, p):
            self.ct, self.skin = p.ct, None

    for prob in (with_skin, NoSkin(with_skin)):
        ref = _old_thick(prob, kji)
        assert 0 < ref.sum() < len(ref)             # both kinds present
        for chunk in (1 << 18, 777, 50):
            assert np.array_equal(F._thick(prob, kji, chunk_samples=chunk), ref), (grid, chunk)
    # thin objects are thin, the arm is thick (the scene means what it says)
    w = ct.kji_to_world(kji.astype(float))
    ax = BODY_AXES[0]
    ref = _old_thick(with_skin, kji)
    dense = np.asarray(ct.array).reshape(-1)[np.ravel_multi_index(tuple(kji.T), ct.shape)] > BODY_HU
    plate3 = dense & (w[:, 0] > ax + 8.0) & (np.abs(w[:, 1] + 40.0) <= 1.5) & (np.abs(w[:, 2]) <= 25.0)
    arm_core = dense & ((w[:, 0] - ax - 45.0) ** 2 + (w[:, 1] - 20.0) ** 2 <= 20.0 ** 2) & (np.abs(w[:, 2]) <= 40.0)
    assert plate3.any() and not ref[plate3].any()
    assert arm_core.any() and ref[arm_core].mean() > 0.8   # (where the grid's faces cut it: thin)

    # the work saved: CT samples read through the data mask (every read goes through `_mask_at`)
    reads = []
    real = F._mask_at
    monkeypatch.setattr(F, "_mask_at", lambda m, flat: (reads.append(len(flat)), real(m, flat))[1])
    F._thick(with_skin, kji)
    assert sum(reads) < 0.25 * 27 * 27 * len(kji), (sum(reads), 27 * 27 * len(kji))


def test_thick_of_no_voxel():
    ct, lab = synthetic_torso(3.0)
    prob = PlanningProblem.build(ct, lab, "liver_tumor")
    assert F._thick(prob, np.zeros((0, 3), np.int64)).shape == (0,)
