"""The geometry under the per-segment rib rule (`bones.rib_pieces`), checked against independent
exact computations with scipy's whole-volume Euclidean feature transform and distance transform
(what the rule computed before, at 12 bytes a voxel): the nearest-lung steps (`lung_steps`) and
'under the lungs' (`under_the_lungs`), on anisotropic, flipped and oblique grids."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from imagio.segmentation.bones import lung_steps, under_the_lungs
from imagio.volume import Volume, make_ijk_to_ras

RIB_LUNG_MM = 20.0


def _grid(direction, shape=(44, 38, 40)):  # k, j, i
    sp = np.array([1.3, 0.9, 2.0])  # i, j, k mm
    ct = Volume(np.zeros(shape, np.float32), make_ijk_to_ras(sp, (-20.0, 15.0, 300.0), direction))
    kk, jj, ii = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    w = ct.kji_to_world(np.stack([kk, jj, ii], -1).reshape(-1, 3)).reshape(shape + (3,))
    w = w - w.reshape(-1, 3).mean(0) + [0.0, 32.0, 345.0]  # the lungs in the volume's centre
    # two ellipsoidal 'lungs' either side of x = 0, their lower parts cut by an oblique plane
    lungs = np.zeros(shape, bool)
    for cx in (-14.0, 14.0):
        lungs |= (((w[..., 0] - cx) / 10.0) ** 2 + ((w[..., 1] - 32.0) / 11.0) ** 2
                  + ((w[..., 2] - 345.0) / 22.0) ** 2) <= 1.0
    lungs &= w[..., 2] - 0.3 * w[..., 0] > 330.0
    return ct, lungs, w


DIRECTIONS = {
    "axial": None,
    "flipped_s": np.diag([1.0, -1.0, -1.0]),
    "oblique": np.array([[np.cos(0.3), -np.sin(0.3), 0.0], [np.sin(0.3), np.cos(0.3), 0.0],
                         [0.0, 0.0, 1.0]]),
}


@pytest.mark.parametrize("name", sorted(DIRECTIONS))
def test_lung_steps_match_the_exact_feature_transform(name):
    ct, lungs, w = _grid(DIRECTIONS[name])
    sk = ct.spacing_kji
    dist_ref, idx = ndimage.distance_transform_edt(~lungs, sampling=sk, return_indices=True)
    rng = np.random.default_rng(0)
    p = np.argwhere(~lungs)
    p = p[rng.choice(len(p), 3000, replace=False)]
    q = idx[:, p[:, 0], p[:, 1], p[:, 2]].T
    step_ref = ct.kji_to_world(p) - ct.kji_to_world(q)
    d, out, step = lung_steps(lungs, ct, 0.0, p)
    assert np.allclose(d, dist_ref[tuple(p.T)], atol=1e-3)
    # direction: the gradient of the distance points from the nearest lung voxel (unique away
    # from the medial surface between the two lungs)
    cos = np.einsum("ij,ij->i", step, step_ref) / np.maximum(
        np.linalg.norm(step, axis=1) * np.linalg.norm(step_ref, axis=1), 1e-9)
    assert np.mean(cos > 0.9) >= 0.95, np.mean(cos > 0.9)
    assert np.allclose(np.linalg.norm(step, axis=1), d, atol=1e-6)  # |p - q| is the distance
    # outside_the_lungs from the exact nearest voxel (the lungs' mean y as the axis), where the
    # rib rule reads it: within RIB_LUNG_MM of the lungs
    cy = float(ct.kji_to_world(np.argwhere(lungs))[:, 1].mean())
    qw = ct.kji_to_world(q)
    radial = qw[:, :2] - [0.0, cy]
    cos_r = np.einsum("ij,ij->i", step_ref[:, :2], radial) / np.maximum(
        np.linalg.norm(step_ref, axis=1) * np.linalg.norm(radial, axis=1), 1e-9)
    # where the exact answer is clear (the step at least 30 degrees from tangential; a nearly
    # tangential step flips with a voxel's shift of the nearest point on these small lungs)
    clear = (d <= RIB_LUNG_MM) & (np.abs(cos_r) >= 0.5)
    assert clear.sum() > 500
    assert np.mean(out[clear] == (cos_r[clear] > 0)) >= 0.99, np.mean(out[clear] == (cos_r[clear] > 0))
    # inside the lungs: distance 0, no step, not outside
    pin = np.argwhere(lungs)[:50]
    d, out, step = lung_steps(lungs, ct, 0.0, pin)
    assert not d.any() and not out.any() and not step.any()
    # within_mm answers only the points that close
    d, out, step = lung_steps(lungs, ct, 0.0, p, within_mm=RIB_LUNG_MM)
    far = dist_ref[tuple(p.T)] > RIB_LUNG_MM
    assert np.isinf(d[far]).all() and not out[far].any()
    assert np.allclose(d[~far], dist_ref[tuple(p[~far].T)], atol=1e-3)


@pytest.mark.parametrize("name", sorted(DIRECTIONS))
def test_under_the_lungs_is_the_dilated_lung_shadow(name):
    from imagio.segmentation.common import anatomical_axes

    ct, lungs, _ = _grid(DIRECTIONS[name])
    s_ax, s_sign = anatomical_axes(ct)["S"]
    # the shadow: every voxel with lung above it in its column (superior along the S axis)
    flip = [slice(None)] * 3
    flip[s_ax] = slice(None, None, -1 if s_sign > 0 else 1)
    shadow = np.logical_or.accumulate(lungs[tuple(flip)], axis=s_ax)[tuple(flip)]
    ref = ndimage.distance_transform_edt(~shadow, sampling=ct.spacing_kji) <= RIB_LUNG_MM
    p = np.argwhere(np.ones(lungs.shape, bool))
    got = under_the_lungs(lungs, ct, p)
    assert got.sum() > 1000 and (~got).sum() > 1000
    assert np.array_equal(got, ref[tuple(p.T)])


def _bar(w, a, b, r=2.5):
    """Bool mask of the voxels within r mm (world) of the segment a-b (RAS mm)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    t = np.clip(((w - a) @ (b - a)) / np.dot(b - a, b - a), 0.0, 1.0)
    return np.linalg.norm(w - (a + t[..., None] * (b - a)), axis=-1) <= r


@pytest.mark.parametrize("name", sorted(DIRECTIONS))
def test_clavicle_pieces_in_front_of_the_spine_beside_the_apex(name):
    """`clavicle_pieces`: a thin bar in front of the vertebral bodies within 30 mm below the
    lungs' apex is clavicle; a rib piece reaching behind the vertebral bodies' front at the same
    level, and a bar in front of them 40 mm below the apex (an anterior rib end), are not; with
    the apex cut by the view, nothing is."""
    from imagio.segmentation.bones import CLAVICLE_BELOW_APEX_MM, clavicle_pieces

    ct, lungs, w = _grid(DIRECTIONS[name])
    apex = w[..., 2][lungs].max()
    spine = (np.abs(w[..., 0]) <= 5.0) & (w[..., 1] >= 8.0) & (w[..., 1] <= 18.0)
    clav = _bar(w, (8.0, 48.0, apex - 8.0), (30.0, 46.0, apex - 6.0))
    rib = _bar(w, (-12.0, 12.0, apex - 10.0), (-27.0, 40.0, apex - 14.0))  # from behind the lung
    low = _bar(w, (-16.0, 47.0, apex - CLAVICLE_BELOW_APEX_MM - 10.0), (4.0, 47.0, apex - 40.0))
    assert clav.sum() > 20 and rib.sum() > 20 and low.sum() > 20 and w[..., 1][rib].min() < 18.0
    got = clavicle_pieces(ct, clav | rib | low, spine, lungs)
    assert np.array_equal(got, clav)
    s_ax, s_sign = 0, np.sign(ct.direction[2, 2])   # the k axis is the superior one here
    cut = lungs.copy()
    cut[-1 if s_sign > 0 else 0] |= lungs.any(axis=0)   # the apex cut by the view's top face
    assert not clavicle_pieces(ct, clav | rib | low, spine, cut).any()


@pytest.mark.parametrize("name", sorted(DIRECTIONS))
def test_clavicle_joined_to_the_first_rib_is_split_at_the_least_dense_voxels(name):
    """`clavicle_pieces` on one piece of 'ribs' that joins, through voxels of partial-volume
    density (300 HU, below unblurred cortex), a clavicle apart from the lungs to a rib that lies
    on the lung and reaches behind the vertebral bodies' front: the clavicle is taken (the
    densest voxels split the piece, `bone_regions`), the rib is not; on the other side a bar of
    cortex joined so to its rib in front of the spine but on the pleura (a first rib's part)
    stays rib, and so does one apart from the lungs beside the midline (a first rib's end at the
    manubrium), and, without the midline, the clavicle."""
    from imagio.segmentation.bones import SPINE_HALF_WIDTH_MM, clavicle_pieces, cortical_hu

    shape = (44, 60, 70)  # k, j, i
    ct = Volume(np.zeros(shape, np.float32), make_ijk_to_ras(np.array([1.3, 0.9, 2.0]), (0.0, 0.0, 300.0),
                                                             DIRECTIONS[name]))
    kk, jj, ii = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    w = ct.kji_to_world(np.stack([kk, jj, ii], -1).reshape(-1, 3)).reshape(shape + (3,))
    shift = w.reshape(-1, 3).mean(0) - [0.0, 32.0, 345.0]   # the volume's RAS minus w below
    w = w - shift
    lungs = np.zeros(shape, bool)
    for cx in (-22.0, 22.0):
        lungs |= (((w[..., 0] - cx) / 14.0) ** 2 + ((w[..., 1] - 32.0) / 11.0) ** 2
                  + ((w[..., 2] - 345.0) / 22.0) ** 2) <= 1.0
    apex = w[..., 2][lungs].max()
    spine = (np.abs(w[..., 0]) <= 5.0) & (w[..., 1] >= 8.0) & (w[..., 1] <= 18.0)
    # a rib from behind the vertebral bodies, joined by voxels of partial-volume density to a
    # clavicle apart from the lungs (x > 0), or to a bar of cortex on the pleura (x < 0)
    back = _bar(w, (12.0, 14.0, apex - 10.0), (38.0, 30.0, apex - 12.0))
    rib = (back | _bar(w, (38.0, 30.0, apex - 12.0), (36.0, 44.0, apex - 14.0)))
    clav = _bar(w, (30.0, 53.0, apex - 8.0), (42.0, 51.0, apex - 6.0)) & ~rib
    bridge = _bar(w, (36.0, 44.0, apex - 14.0), (36.0, 50.0, apex - 7.0), r=1.5) & ~rib & ~clav
    rib2 = _bar(w, (-12.0, 14.0, apex - 10.0), (-30.0, 21.0, apex - 12.0))
    on_pleura = _bar(w, (-37.0, 28.0, apex - 10.0), (-39.0, 38.0, apex - 11.0)) & ~lungs & ~rib2
    link = _bar(w, (-30.0, 21.0, apex - 12.0), (-37.0, 28.0, apex - 10.0), r=1.5) & ~rib2 & ~on_pleura
    # and beside the midline, apart from the lungs (a first rib's end at the manubrium)
    tip = _bar(w, (4.0, 55.0, apex - 16.0), (20.0, 54.0, apex - 16.0))
    link |= _bar(w, (20.0, 54.0, apex - 16.0), (36.0, 44.0, apex - 14.0), r=1.5) & ~tip & ~rib
    dist = ndimage.distance_transform_edt(~lungs, sampling=ct.spacing_kji)
    x = w[..., 0]
    # the geometry as meant: the clavicle apart from the lungs, the ribs and the bar on them, the
    # clavicle and the bar lateral to the midline by the half-width, each side one piece
    assert dist[clav].min() > 5.0 and dist[tip].min() > 5.0 and dist[rib].min() < 2.0 and dist[on_pleura].min() < 2.0
    assert np.mean(np.abs(x[clav]) >= SPINE_HALF_WIDTH_MM) > 0.5 < np.mean(np.abs(x[on_pleura]) >= SPINE_HALF_WIDTH_MM)
    assert not (np.abs(x[tip]) >= SPINE_HALF_WIDTH_MM).any()
    assert min(clav.sum(), rib.sum(), on_pleura.sum(), rib2.sum(), tip.sum()) > 20 and bridge.any() and link.any()
    a = np.full(shape, 40.0, np.float32)
    a[lungs] = -850.0
    a[bridge | link] = 300.0
    a[clav | rib | on_pleura | rib2 | tip] = cortical_hu() + 300.0
    ct.array[...] = a
    ribs = clav | rib | bridge | on_pleura | link | rib2 | tip
    assert ndimage.label(ribs, np.ones((3, 3, 3)))[1] == 2
    got = clavicle_pieces(ct, ribs, spine, lungs, midline=float(shift[0]))   # x = 0 in w
    # (the partial-volume voxels go to either bone they lie between)
    assert got[clav].all() and not (got & (rib | rib2 | on_pleura | tip)).any()
    assert not (got & ~(clav | bridge | link)).any()
    assert not clavicle_pieces(ct, ribs, spine, lungs).any()
