"""A top-face bronchus piece (`airways.top_face_bronchi`: airways below a carina the view's top
face cuts off) is refused when it is wider than a main bronchus (16 mm, within two in-plane
voxels), whatever the slice thickness (review finding M4: the bound was 16 mm + 2 x the largest
voxel size, 26 mm on 5 mm slices, and the width a 3-D reading that a 5 mm slice coarsens)."""

import numpy as np
import pytest

from imagio.segmentation.airways import top_face_bronchi
from imagio.volume import Volume, make_ijk_to_ras


def _phantom(width_mm, spacing, flip_s):
    """A chest slab on a grid of ``spacing`` (i, j, k) mm, its top face 0 mm RAS S: soft tissue
    40 HU, two lungs (-850 HU) either side, and in the mediastinum an air tube (-1000 HU, 12 mm
    across: a main bronchus) leaving the top face, which from 15 mm below it opens into an air
    space ``width_mm`` across and 25 mm high (a bronchus's own lumen when narrower than a main
    bronchus; lung or a bulla grown into when wider). ``flip_s``: the k axis runs inferior to
    superior (the top face is the last slice) instead of superior to inferior. Returns the CT,
    its body and the air space's mask."""
    sp = np.asarray(spacing, float)
    n = np.round(np.array([220.0, 160.0, 70.0]) / sp).astype(int)
    d = np.diag([1.0, 1.0, 1.0 if flip_s else -1.0])
    origin = [-0.5 * sp[0] * (n[0] - 1), -0.5 * sp[1] * (n[1] - 1), -sp[2] * (n[2] - 1) if flip_s else 0.0]
    ct = Volume(np.zeros(tuple(n[::-1]), np.float32), make_ijk_to_ras(sp, origin, d))
    k, j, i = np.indices(ct.shape)
    ras = ct.kji_to_world(np.stack([k, j, i], -1).reshape(-1, 3)).reshape(ct.shape + (3,))
    x, y, z = ras[..., 0], ras[..., 1], ras[..., 2]
    body = (x / 105.0) ** 2 + (y / 75.0) ** 2 <= 1.0
    a = np.where(body, 40.0, -1000.0)
    for cx in (-65.0, 65.0):
        a[((x - cx) / 35.0) ** 2 + (y / 50.0) ** 2 <= 1.0] = -850.0
    tube = (np.hypot(x - 8.0, y) <= 6.0) & (z >= -20.0)
    space = (np.hypot(x - 8.0, y) <= 0.5 * width_mm) & (z < -15.0) & (z >= -40.0)
    a[tube | space] = -1000.0
    a += np.random.default_rng(11).normal(0.0, 10.0, a.shape)
    ct.array[:] = a
    return ct, body, space


@pytest.mark.parametrize("flip_s", [False, True])
def test_a_piece_wider_than_a_main_bronchus_is_refused_on_5_mm_slices(flip_s):
    """On 0.7 x 0.7 x 5 mm voxels: the tube opening into a 22 mm air space (wider than the 16 mm
    main bronchus by more than two 0.7 mm voxels, narrower than main's 26 mm bound) is refused;
    the same tube opening into a 14 mm space is a bronchus and kept, the space with it."""
    ct, body, space = _phantom(22.0, (0.7, 0.7, 5.0), flip_s)
    m, pieces = top_face_bronchi(ct, body)
    assert not m.any() and pieces == [], pieces
    ct, body, space = _phantom(14.0, (0.7, 0.7, 5.0), flip_s)
    m, pieces = top_face_bronchi(ct, body)
    assert len(pieces) == 1, pieces
    assert (m & space).sum() >= 0.9 * space.sum()
