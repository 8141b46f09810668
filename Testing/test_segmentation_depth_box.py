"""The one-click lesion tool's distance maps, components and probe means computed on boxes
(issue 20) give the same values as on the whole array: ``common.depth_mm`` on the mask's grown
box, ``lesion._component_at`` on the box of the mask and the seed, ``lesion._edge_at_half_contrast``
on the region's box grown by its band and shell, ``lesion._deepest_probe``'s ball means on the
candidates' box, ``lesion._separate``'s give-back dilation on the opened region's box. The
whole-array forms (the code before the change) are the references below; the whole tool, run
with them swapped in, gives identical masks and measurements on an oblique, flipped,
anisotropic grid."""

import tracemalloc

import numpy as np
import pytest
from scipy import ndimage

from imagio.segmentation import common
from imagio.segmentation import lesion as L
from imagio.volume import Volume, make_ijk_to_ras

from conftest import rotation


# ---- the whole-array forms (references) ----------------------------------------------------
def _depth_whole(mask, sk):
    d = common._edt(mask, sk)
    return np.minimum(d, float(np.linalg.norm(np.asarray(np.shape(mask)) * np.asarray(sk, float))), out=d)


def _component_at_whole(mask, seed, spacing, within_mm=3.0):
    lab, n, _ = common.components(mask, connectivity=6)
    if n == 0:
        return np.zeros_like(mask)
    v = lab[seed]
    if v == 0:
        dist, ind = ndimage.distance_transform_edt(lab == 0, sampling=spacing, return_indices=True)
        if dist[seed] > within_mm:
            return np.zeros_like(mask)
        v = lab[tuple(ind[:, seed[0], seed[1], seed[2]])]
    return lab == v


def _edge_whole(r, core, roi, sm2, allowed, seed, sk, floor, s):
    from scipy.special import ndtri

    band_mm = 3.0 * L.STAT_SIGMA_MM
    d_out = ndimage.distance_transform_edt(~r, sampling=sk)
    outer = (d_out > band_mm) & (d_out <= band_mm + L.SHELL_MM[0])
    band = (d_out > 0) & (d_out <= band_mm) & allowed
    if not (outer.any() and band.any() and core.any()):
        return r
    sm1 = ndimage.gaussian_filter(roi, L.SMOOTH_SIGMA_MM / np.asarray(sk, float))
    floor1 = floor * L._smoothed_noise_floor(1.0, L.SMOOTH_SIGMA_MM, sk) / L._smoothed_noise_floor(1.0, L.STAT_SIGMA_MM, sk)
    m1, s1 = L._robust(sm1[core], floor1)
    _, oind = ndimage.distance_transform_edt(~outer, sampling=sk, return_indices=True)
    bk = np.argwhere(band)
    beyond = sm2[tuple(oind[:, bk[:, 0], bk[:, 1], bk[:, 2]])]
    c = np.abs(beyond - m1)
    v = sm1[band]
    distinct = c > 2.0 * L.SOFT_FIRST_SD * s1
    closer = np.abs(v - m1) < np.abs(v - beyond)
    towards = np.sign(sm2[band] - m1) == np.sign(beyond - m1)
    reach = (L.STAT_SIGMA_MM * ndtri(1.0 - L.SOFT_FIRST_SD * s / np.maximum(c, 1.01 * L.SOFT_FIRST_SD * s))
             + float(max(sk[1:])))
    add = np.zeros(r.shape, bool)
    add[tuple(bk[distinct & closer & towards & (d_out[band] <= reach)].T)] = True
    return L._component_at(r | add, seed, sk)


def _deepest_whole(depth, ref, sk):
    top = float(depth.max())
    cand = np.argwhere(depth >= top - 1e-6 * max(top, 1.0))
    if len(cand) == 1:
        return tuple(int(v) for v in cand[0])
    skf = np.asarray(sk, float)
    b = common.ball(L.CLICK_BALL_MM, skf).astype(np.float32)
    bm = ndimage.correlate(depth.astype(np.float32), b / float(b.sum()), mode="constant")[tuple(cand.T)]
    c = np.argwhere(ref).mean(0) if ref.any() else cand.mean(0)
    near = -(((cand - c) * skf) ** 2).sum(1)
    return tuple(int(v) for v in cand[int(np.lexsort((near, np.round(bm, 4)))[-1])])


def _separate_whole(m, seed, sk, min_open_mm, split=None, fringe=None):
    if not m.any():
        return m
    depth = L._edt(m, sk)
    core = L._climb(depth, seed, sk) if m[seed] else seed
    r = max(min_open_mm, L.OPEN_FRACTION * float(depth[core]))
    op = L.open_mm(m, r, sk) if r > 0.5 * float(min(sk)) else m
    op = L._component_at(op, core, sk) if op.any() else op
    if not op.any():
        op = L._component_at(m, seed, sk)
    elif split is not None and op[core]:
        op = L._split_from_larger_blobs(op, depth, core, split, fringe)
    sp = np.asarray(sk, float)
    struct = np.zeros((3, 3, 3), bool)
    for ax in np.flatnonzero(sp < L.GIVEBACK_MAX_SPACING_RATIO * sp.min()):
        struct[tuple(slice(None) if d == ax else 1 for d in range(3))] = True
    return op | (ndimage.binary_dilation(op, structure=struct) & m)


# ---- scenes ---------------------------------------------------------------------------------
def _blobs(seed, n):
    """n random masks: smoothed noise thresholded in a random sub-box (some reach the array's
    faces, some fill it), with anisotropic spacings."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(n):
        shape = tuple(int(v) for v in rng.integers(6, 40, 3))
        sk = tuple(float(v) for v in rng.choice([0.5, 0.7, 0.976, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0], 3))
        m = np.zeros(shape, bool)
        lo = [int(rng.integers(0, s // 2)) for s in shape]
        hi = [int(rng.integers(a + 1, s + 1)) for a, s in zip(lo, shape)]
        sub = tuple(slice(a, b) for a, b in zip(lo, hi))
        noise = ndimage.gaussian_filter(rng.normal(size=m[sub].shape), rng.uniform(0.3, 3.0))
        m[sub] = noise > rng.uniform(-0.3, 1.5) * noise.std()
        if t % 10 == 0:
            m[sub] = True
        out.append((m, sk, rng))
    return out


def _organ_with_lesion(oblique):
    """A 110 HU organ in 45 HU tissue and -100 HU fat, a 12 mm radius 40 HU lesion at its edge;
    noise SD 10 HU; spacing 1.5 x 1.2 x 2.0 mm (i, j, k); ``oblique``: directions rotated 20 deg
    about an oblique axis, i flipped."""
    sp = np.array([1.5, 1.2, 2.0])
    n = np.round(np.array([200.0, 180.0, 110.0]) / sp).astype(int)
    d = rotation([0.3, 0.5, 1.0], 20.0) @ np.diag([-1.0, 1.0, 1.0]) if oblique else np.eye(3)
    org = -(d * sp) @ ((n - 1) / 2)
    ct = Volume(np.zeros(tuple(n[::-1]), np.float32), make_ijk_to_ras(sp, org, d))
    ras = ct.kji_to_world(np.stack(np.indices(ct.shape), -1).reshape(-1, 3)).reshape(ct.shape + (3,))
    x, y, z = ras[..., 0], ras[..., 1], ras[..., 2]
    a = np.where((x / 95) ** 2 + (y / 85) ** 2 <= 1, 45.0, -1000.0)
    a[(np.abs(x) > 80) & (a > -1000)] = -100.0
    a[np.sqrt((x + 20) ** 2 + y ** 2 + z ** 2) <= 45.0] = 110.0
    a[np.sqrt((x + 20 - 38.0) ** 2 + y ** 2 + z ** 2) <= 12.0] = 40.0
    ct.array = (a + np.random.default_rng(1).normal(0, 10, a.shape)).astype(np.float32)
    return ct, [-20.0 + 38.0, 0.0, 0.0]


# ---- tests ------------------------------------------------------------------------------------
def test_depth_on_box_equals_whole_array():
    for m, sk, _ in _blobs(3, 200):
        new = common.depth_mm(m, sk)
        ref = _depth_whole(m, sk)
        assert new.dtype == ref.dtype and np.array_equal(new, ref), (m.shape, sk)
    empty = np.zeros((7, 8, 9), bool)
    assert np.array_equal(common.depth_mm(empty, (1.0, 2.0, 3.0)), _depth_whole(empty, (1.0, 2.0, 3.0)))


def test_component_at_on_box_equals_whole_array():
    fallbacks = 0
    for m, sk, rng in _blobs(4, 300):
        idx = np.argwhere(m)
        if len(idx) and rng.random() < 0.5:   # near the mask, often just outside it
            q = np.clip(idx[rng.integers(len(idx))] + rng.integers(-3, 4, 3), 0, np.array(m.shape) - 1)
        else:
            q = [rng.integers(0, s) for s in m.shape]
        seed = tuple(int(v) for v in q)
        within = float(rng.choice([1.0, 3.0, 5.0, 20.0]))
        new = L._component_at(m, seed, sk, within)
        ref = _component_at_whole(m, seed, sk, within)
        fallbacks += bool(not m[seed] and ref.any())
        assert new.dtype == ref.dtype and np.array_equal(new, ref), (m.shape, sk, seed)
    assert fallbacks > 20   # the nearest-component branch was exercised


def test_edge_at_half_contrast_on_box_and_its_memory():
    """A 12 mm ball region in a large box on a 1.5 x 1.2 x 2.0 mm grid: the same voxels as the
    whole-array form, and the traced peak a few bytes per box voxel (the whole-array form holds
    float64 distances and three index arrays: > 20 bytes per voxel)."""
    sk = (2.0, 1.2, 1.5)
    shape = (80, 140, 120)
    g = np.indices(shape).astype(np.float32) * np.asarray(sk, np.float32)[:, None, None, None]
    c = np.array([50.0, 90.0, 80.0], np.float32)
    d = np.sqrt(((g - c[:, None, None, None]) ** 2).sum(0))
    rng = np.random.default_rng(5)
    roi = (np.where(d <= 12.0, 40.0, 100.0) + rng.normal(0, 10, shape)).astype(np.float32)
    sm2 = ndimage.gaussian_filter(roi, L.STAT_SIGMA_MM / np.asarray(sk, float))
    allowed = (roi > L.FAT_MAX_HU) & (roi < L.BONE_CLICK_HU)
    r = d <= 10.0        # the homogeneous region stopped short of the edge
    core = d <= 5.0
    seed = tuple(int(v) for v in np.round(c / np.asarray(sk)))
    args = (r, core, roi, sm2, allowed, seed, sk, 3.0, 5.0)
    ref = _edge_whole(*args)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        new = L._edge_at_half_contrast(*args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert ref.sum() > r.sum()            # the rim was added: the test reads the band and shell
    assert np.array_equal(new, ref)
    assert peak < 8 * r.size, peak / r.size


@pytest.mark.parametrize("oblique", [True, False])
def test_lesion_tool_same_as_whole_array(monkeypatch, oblique):
    """segment_lesion's mask and measurements with the box forms equal those with the
    whole-array forms swapped in (the probes outside the outline run too)."""
    ct, click = _organ_with_lesion(oblique)
    calls = {"edge": 0, "deepest": 0}
    edge_new, deepest_new = L._edge_at_half_contrast, L._deepest_probe

    def edge_counted(*a):
        calls["edge"] += 1
        return edge_new(*a)

    def deepest_counted(*a):
        calls["deepest"] += 1
        return deepest_new(*a)

    with monkeypatch.context() as mp:
        mp.setattr(L, "_edge_at_half_contrast", edge_counted)
        mp.setattr(L, "_deepest_probe", deepest_counted)
        m_new, meas_new = L.segment_lesion(ct, click)
    assert calls["edge"] > 0 and calls["deepest"] > 0   # both box forms ran
    with monkeypatch.context() as mp:
        mp.setattr(common, "depth_mm", _depth_whole)
        mp.setattr(L, "_component_at", _component_at_whole)
        mp.setattr(L, "_edge_at_half_contrast", _edge_whole)
        mp.setattr(L, "_deepest_probe", _deepest_whole)
        mp.setattr(L, "_separate", _separate_whole)
        m_ref, meas_ref = L.segment_lesion(ct, click)
    assert m_new.sum() > 0
    assert np.array_equal(m_new, m_ref)
    assert repr(vars(meas_new)) == repr(vars(meas_ref))


def test_smoothed_box_is_reused_and_let_go():
    """`lesion._smoothed` gives scipy's Gaussian, the same array again for the same box, a new
    one for an equal copy, and holds nothing once the box is freed."""
    import gc

    rng = np.random.default_rng(9)
    roi = rng.normal(0, 10, (30, 40, 50)).astype(np.float32)
    sk = (2.0, 1.2, 1.5)
    a = L._smoothed(roi, L.SMOOTH_SIGMA_MM, sk)
    assert np.array_equal(a, ndimage.gaussian_filter(roi, L.SMOOTH_SIGMA_MM / np.asarray(sk)))
    assert L._smoothed(roi, L.SMOOTH_SIGMA_MM, sk) is a
    assert not a.flags.writeable
    other = roi.copy()
    b = L._smoothed(other, L.SMOOTH_SIGMA_MM, sk)
    assert b is not a and np.array_equal(a, b)
    n = len(L._SMOOTH)
    del roi, other
    gc.collect()
    assert len(L._SMOOTH) == n - 2
