"""Faster forms of three segmentation helpers (issue 20) give the same values as the slow ones,
with less memory: the per-plane convex hull on the mask's box, component counts a chunk at a
time, and the world-coordinate ramps a slab at a time."""

import tracemalloc

import numpy as np
import pytest
from scipy import ndimage
from skimage.morphology import convex_hull_image

from imagio.segmentation.common import components, convex_hull_2d, label_counts, ras_coordinate
from imagio.volume import Volume, make_ijk_to_ras

from conftest import rotation


def _planes():
    """Masks that reach the plane's border, several pieces, thin lines, single pixels."""
    rng = np.random.default_rng(7)
    out = []
    for seed in range(6):
        blob = ndimage.gaussian_filter(np.random.default_rng(seed).random((60, 83)), 4) > 0.5
        out += [blob, blob[::-1], blob.T, blob[:, ::-1]]
    line = np.zeros((30, 40), bool)
    line[5, 3:37] = True                        # collinear pixels
    diag = np.eye(25, 31, 2, dtype=bool)        # a diagonal line
    one = np.zeros((9, 9), bool)
    one[0, 8] = True                            # a corner pixel
    two = np.zeros((12, 14), bool)
    two[3, 4] = two[10, 11] = True
    sparse = rng.random((70, 50)) > 0.997       # scattered pixels
    edge = np.zeros((20, 20), bool)
    edge[:, 0] = edge[19, :] = True             # two borders of the plane
    return out + [line, diag, one, two, sparse, edge]


def test_convex_hull_on_the_box_is_the_whole_plane_hull():
    planes = _planes()
    for m in planes:
        assert np.array_equal(convex_hull_2d(m), convex_hull_image(m))
    assert not convex_hull_2d(np.zeros((5, 6), bool)).any()


def test_convex_hull_of_the_phantom_lungs_on_every_plane():
    """The lungs of the 4 mm phantom, every plane along each array axis (the per-plane hull of
    `bone_shell.lung_hull_planes` and `planning.mediastinum`)."""
    from imagio import phantom

    ph = phantom.generate(spacing=4.0, seed=2)
    inv = {n: v for v, n in ph.labels.labels.items()}
    lungs = np.isin(ph.labels.array, [v for n, v in inv.items() if n.startswith("lung_") and "lobe" in n])
    n = 0
    for ax in range(3):
        for k in range(lungs.shape[ax]):
            pl = np.take(lungs, k, axis=ax)
            if pl.sum() >= 3:
                n += 1
                assert np.array_equal(convex_hull_2d(pl), convex_hull_image(pl)), (ax, k)
    assert n > 50


def test_component_counts_equal_bincount_without_a_volume_sized_int64_copy():
    rng = np.random.default_rng(3)
    mask = ndimage.gaussian_filter(rng.random((80, 200, 256), np.float32), 1.5) > 0.5   # 4.1 M voxels: 4 chunks
    lab, n, counts = components(mask)
    assert n > 20
    ref = np.bincount(lab.ravel(), minlength=n + 1)
    assert counts.dtype == np.int64 and np.array_equal(counts, ref)
    assert np.array_equal(label_counts(lab, n), ref)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        components(mask)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the label map (4 bytes per voxel) and chunks; a volume-sized int64 copy would add 8 per voxel
    assert peak < 4 * mask.size + 12 * 2 ** 20, peak / mask.size


@pytest.mark.parametrize("oblique", [False, True])
def test_world_coordinate_ramps(oblique):
    """Against every voxel's position by the affine (`Volume.kji_to_world`, float64): within
    float32 rounding; and no float64 volume temporary."""
    d = rotation((1, 2, 3), 20.0) @ np.diag([-1.0, 1.0, 1.0]) if oblique else np.eye(3)
    sp = (0.7, 1.1, 2.5) if oblique else (1.5, 1.5, 1.5)
    vol = Volume(np.zeros((23, 41, 57), np.int16), make_ijk_to_ras(sp, (-12.5, 30.25, -101.0), d))
    kji = np.indices(vol.shape).reshape(3, -1).T
    world = vol.kji_to_world(kji)
    for row in range(3):
        r = ras_coordinate(vol, row)
        assert r.dtype == np.float32 and r.shape == vol.shape
        assert np.max(np.abs(r.reshape(-1) - world[:, row])) < 1e-4
    big = Volume(np.zeros((40, 300, 300), np.int16), vol.ijk_to_ras)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        r = ras_coordinate(big, 2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * r.size + 20 * 2 ** 20, peak / r.size   # the float32 result and one slab


def test_mediastinal_pieces_with_the_lungs_hull_given_is_the_same():
    """`split_bones` computes the lungs' per-plane hull (`bone_shell.lung_hull_planes`) once for
    its two mediastinal checks (issue 20): `mediastinal_pieces` given that hull gives the same
    pieces as computing it, and leaves the hull as it was (the second call reads it again)."""
    from imagio.segmentation import bone_shell

    rng = np.random.default_rng(5)
    shape, sk = (24, 40, 50), np.array([2.5, 1.2, 0.9])
    k, j, i = np.indices(shape)
    lungs = (((i - 12) / 9.0) ** 2 + ((j - 20) / 14.0) ** 2 < 1) | (((i - 38) / 9.0) ** 2 + ((j - 20) / 14.0) ** 2 < 1)
    lungs &= (k > 2) & (k < 21)
    vert = (np.abs(i - 25) < 4) & (j > 16) & (j < 22) & (k > 1)
    rest = (rng.random(shape) > 0.97) & ~lungs & ~vert
    a_mm = -j * sk[1]                                # anterior decreases with j
    for s_ax in (0, 1):
        hull = bone_shell.lung_hull_planes(lungs, s_ax, sk, 3.0)
        before = hull.copy()
        for skel, v in ((vert, vert), (vert | (rng.random(shape) > 0.995), None)):
            want = bone_shell.mediastinal_pieces(rest, skel, lungs, s_ax, sk, 3.0, v, a_mm, 2.0)
            got = bone_shell.mediastinal_pieces(rest, skel, lungs, s_ax, sk, 3.0, v, a_mm, 2.0, hull=hull)
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(hull, before)
        assert want.any() and not want.all()
