"""`imagio.segmentation.ballmorph` (every erosion, dilation, opening and closing by a ball in mm:
`common.erode_mm` / `dilate_mm` / `open_mm` / `close_mm` and the couch search) against
independent definitions: scipy's exact Euclidean distance transform (float64, whole array)
thresholded at the radius, and ``edt``'s (float32) thresholds that `common` computed before.
Anisotropic grids, radii with offsets exactly at the radius (ties), masks touching the image
border (not background) on some faces or none, and slabs smaller than the kernel."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from imagio.segmentation import ballmorph
from imagio.segmentation.common import close_mm, dilate_mm, erode_mm, open_mm


def _blobs(shape, seed, border: bool):
    """Random smooth blobs (bool), touching the image border or kept 2 voxels off it."""
    rng = np.random.default_rng(seed)
    f = ndimage.gaussian_filter(rng.normal(size=shape), 3.0)
    m = f > np.quantile(f, 0.45)
    if not border:
        m[:2] = m[-2:] = False
        m[:, :2] = m[:, -2:] = False
        m[:, :, :2] = m[:, :, -2:] = False
    return m


def _scipy_erode(m, r, sp):
    """Voxels farther than r mm from a background voxel of the array (outside is not background)."""
    return ndimage.distance_transform_edt(m, sampling=sp) > r


def _scipy_dilate(m, r, sp):
    return ndimage.distance_transform_edt(~m, sampling=sp) <= r


# dyadic spacings: every squared distance is exact in float32 and float64, so scipy (float64)
# and edt (float32) agree at ties (offsets exactly at the radius: (0, 0, 1) at 3 mm on 2 x 2 x 3)
@pytest.mark.parametrize("sp", [(3.0, 2.0, 2.0), (2.5, 0.75, 1.25), (1.0, 1.0, 1.0)])
@pytest.mark.parametrize("r", [1.0, 3.0, 3.15, 6.0])
@pytest.mark.parametrize("border", [True, False])
def test_ball_morphology_equals_scipy_distance_thresholds(sp, r, border, monkeypatch):
    monkeypatch.setattr(ballmorph, "SLAB_VOXELS", 37 * 41)   # slabs of one plane: every slab seam
    m = _blobs((23, 37, 41), seed=int(10 * r) + len(sp), border=border)
    e = ballmorph.erode_ball(m, r, sp)
    d = ballmorph.dilate_ball(m, r, sp)
    assert np.array_equal(e, _scipy_erode(m, r, sp)), int((e ^ _scipy_erode(m, r, sp)).sum())
    assert np.array_equal(d, _scipy_dilate(m, r, sp)), int((d ^ _scipy_dilate(m, r, sp)).sum())
    if r < min(sp):   # the ball is one voxel: both leave the mask as it is
        assert np.array_equal(e, m) and np.array_equal(d, m)
    else:
        assert (m & ~e).any() and (d & ~m).any() and (e.any() or r > 3.15)


@pytest.mark.parametrize("sp", [(1.3, 0.7, 0.9), (5.0, 0.703125, 0.703125)])
@pytest.mark.parametrize("r", [3.0, 3.15, 6.0])
def test_ball_morphology_equals_the_edt_thresholds_it_replaces(sp, r):
    """Non-dyadic and thick-slice grids: the same voxels as thresholds of ``edt``'s distance
    map of the whole array (what `erode_mm` / `dilate_mm` computed before they used ballmorph),
    the whole array in one slab; and a kernel of edt's own distances is the ball's."""
    import edt

    m = _blobs((19, 45, 47), seed=7, border=True)
    m[:, :3] = False     # one face off the border: the box's face there is background
    ref_e = edt.edt(m, anisotropy=sp, black_border=False) > r
    ref_d = edt.edt(~m, anisotropy=sp, black_border=False) <= r
    assert np.array_equal(ballmorph.erode_ball(m, r, sp), ref_e)
    assert np.array_equal(ballmorph.dilate_ball(m, r, sp), ref_d)
    assert np.array_equal(erode_mm(m, r, sp), ref_e) and np.array_equal(dilate_mm(m, r, sp), ref_d)
    rows = ballmorph.ball_offsets(r, sp)
    kji = np.array([(dk, dj, n) for (dk, dj), n in rows.items()], float)
    assert np.all(np.sqrt(((kji * sp) ** 2).sum(1)) <= r + 1e-5)                 # row ends inside
    assert np.all(np.sqrt((((kji + [0, 0, 1]) * sp) ** 2).sum(1)) > r - 1e-5)    # one more is out


@pytest.mark.parametrize("faces", [(0,), (1, 2), (0, 3, 5), (1, 2, 3, 4)])
def test_erosion_of_a_mask_on_some_image_faces_equals_scipy(faces):
    """A mask on some of the six image faces (the others 1-3 voxels inside): on those faces the
    image border is not background, on the others the box's face is; a box thinner than the
    kernel along one axis. Against scipy's whole-array distance threshold."""
    sp, r = (2.5, 0.75, 1.25), 3.15
    m = _blobs((17, 29, 31), seed=sum(faces), border=True)
    for f in range(6):
        if f not in faces:
            ax, hi = divmod(f, 2)
            idx = [slice(None)] * 3
            idx[ax] = slice(-1 - f % 3, None) if hi else slice(0, 1 + f % 3)
            m[tuple(idx)] = False
    assert np.array_equal(ballmorph.erode_ball(m, r, sp), _scipy_erode(m, r, sp))
    thin = np.zeros_like(m)
    thin[5:7, 3:20, 2:25] = m[5:7, 3:20, 2:25] | True   # 2 planes thick: fully eroded
    assert np.array_equal(ballmorph.erode_ball(thin, r, sp), _scipy_erode(thin, r, sp))


@pytest.mark.parametrize("sp", [(2.5, 0.75, 1.25), (1.3, 0.7, 0.9)])
@pytest.mark.parametrize("border", [True, False])
def test_opening_and_closing_equal_scipy_definitions(sp, border):
    """`open_mm`: the dilation of the erosion, within the mask; `close_mm`: the mask plus the
    erosion of its dilation with everything outside the image background (the image border
    does not stick), by scipy's exact distances on a padded copy."""
    r = 3.15
    m = _blobs((21, 33, 35), seed=11, border=border)
    op = ndimage.distance_transform_edt(~_scipy_erode(m, r, sp), sampling=sp) <= r
    assert np.array_equal(open_mm(m, r, sp), op & m)
    pad = 10
    mp = np.pad(m, pad)
    d = ndimage.distance_transform_edt(~mp, sampling=sp) <= r
    c = ndimage.distance_transform_edt(np.pad(d, 1), sampling=sp)[1:-1, 1:-1, 1:-1] > r
    ref = m | c[pad:-pad, pad:-pad, pad:-pad]
    got = close_mm(m, r, sp)
    assert np.array_equal(got, ref), int((got ^ ref).sum())
    assert (got & ~m).any()


def test_morphology_holds_no_distance_map():
    """Memory (traced, deterministic): erosion and dilation hold the result and slab-sized
    bit-packed temporaries, under 4 bytes per voxel of the image (the edt thresholds held a
    float32 distance map of the box, its padded copy and the result: 6.0-6.9 bytes per voxel on
    this case, measured on the previous code); closing under 6.5 (edt: 8.1)."""
    import tracemalloc

    rng = np.random.default_rng(0)
    f = ndimage.gaussian_filter(rng.normal(size=(30, 50, 50)), 2.0)
    m = np.kron(f > np.quantile(f, 0.4), np.ones((4, 4, 4), bool))   # 120 x 200 x 200
    m[:3] = False
    m[:, :5] = False
    sp = (1.25, 0.8, 0.8)
    for fn, bound in ((erode_mm, 4.0), (dilate_mm, 4.0), (close_mm, 6.5)):
        tracemalloc.start()
        try:
            fn(m, 3.0, sp)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak / m.size < bound, (fn.__name__, peak / m.size)


def test_negative_or_nan_radius_is_refused_and_infinite_is_the_limit():
    """An infinite radius (the one-click lesion's opening of a region without background, whose
    depth is inf) erodes everything away, as edt's threshold did, and dilates to the image."""
    import edt

    m = _blobs((9, 10, 11), seed=1, border=True)
    full = np.ones_like(m)
    assert not (edt.edt(full, black_border=False) > np.inf).any()
    assert not erode_mm(m, np.inf, (1.0, 1.0, 1.0)).any() and not erode_mm(full, np.inf, (2.0, 1.0, 1.0)).any()
    assert not open_mm(full, np.inf, (2.0, 1.0, 1.0)).any()
    assert dilate_mm(m, np.inf, (1.0, 1.0, 1.0)).all() and not dilate_mm(~full, np.inf, (1.0, 1.0, 1.0)).any()
    for r in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="radius"):
            erode_mm(m, r, (1.0, 1.0, 1.0))
        with pytest.raises(ValueError, match="radius"):
            dilate_mm(m, r, (1.0, 1.0, 1.0))


def test_empty_and_full_masks():
    sp = (2.0, 1.0, 1.0)
    z = np.zeros((5, 6, 7), bool)
    assert not ballmorph.erode_ball(z, 3.0, sp).any() and not ballmorph.dilate_ball(z, 3.0, sp).any()
    full = ~z
    assert ballmorph.erode_ball(full, 3.0, sp).all()      # the image border is not background
    assert ballmorph.dilate_ball(full, 3.0, sp).all()


@pytest.mark.parametrize("connectivity", [6, 26])
def test_largest_component_equals_scipy_and_breaks_ties_by_raster_order(connectivity):
    """`common.largest_component` (cc3d labelling + a chunked count) against scipy's labelling:
    the largest component of random blobs, and of two equal cubes the first in raster order
    (``cc3d.largest_k``'s rule, which it replaced)."""
    from imagio.segmentation.common import largest_component

    st = ndimage.generate_binary_structure(3, 1 if connectivity == 6 else 3)
    m = _blobs((21, 33, 35), seed=3, border=True) & ~_blobs((21, 33, 35), seed=4, border=True)
    lab, n = ndimage.label(m, structure=st)
    assert n > 3
    ref = lab == 1 + int(np.argmax(np.bincount(lab.ravel())[1:]))
    assert np.array_equal(largest_component(m, connectivity), ref)
    two = np.zeros((9, 9, 20), bool)
    two[5:8, 1:4, 2:5] = True      # later in raster order along k ...
    two[1:4, 5:8, 12:15] = True    # ... than this one: the first
    got = largest_component(two, connectivity)
    assert got[2, 6, 13] and not got[6, 2, 3] and got.sum() == 27
    assert not largest_component(np.zeros((3, 3, 3), bool)).any()


def _opening_grown(tissue, inner, outer, sp):
    """The couch opening's mask before its last labelling: the largest 6-connected component of
    the erosion by ``inner`` dilated by ``outer``, AND the tissue."""
    lab, n = ndimage.label(ballmorph.erode_ball(tissue, inner, sp))
    if n == 0:
        return None
    core = lab == 1 + int(np.argmax(np.bincount(lab.ravel())[1:]))
    return ballmorph.dilate_ball(core, outer, sp) & tissue


def _ring_steps_by_sets(inner, outer, sp):
    """`ring_steps_into_ball` by its definition on offset sets (tuples)."""
    def ball(r):
        return {(dk, dj, di) for (dk, dj), n in ballmorph.ball_offsets(r, sp).items() for di in range(-n, n + 1)}
    inn = ball(inner)
    for o in ball(outer) - inn:
        if not any(o[a] and tuple(x - (int(np.sign(x)) if b == a else 0) for b, x in enumerate(o)) in inn
                   for a in range(3)):
            return False
    return True


@pytest.mark.parametrize("sp", [(1.0, 1.0, 1.0), (3.0, 2.0, 2.0), (2.5, 0.75, 1.25), (5.0, 0.703125, 0.703125)])
def test_grown_opening_is_one_piece_where_the_ring_steps_into_the_ball(sp):
    """`ring_steps_into_ball` (the couch opening's last labelling skipped, `table._patient_in_box`)
    equals its definition on offset sets; it holds for the couch's 3 / 3.15 mm opening on these
    grids, and there the grown core AND the tissue of random tissue masks is one 6-connected
    piece (scipy's labelling). At 1 / 2 mm on a 1 mm grid it does not hold, and a tissue voxel
    diagonal to the eroded cube's corner (its face neighbours not tissue) is grown in as a
    second piece: there the components must be labelled."""
    for inner, outer in ((3.0, 3.15), (1.0, 2.0), (2.0, 3.0)):
        assert ballmorph.ring_steps_into_ball(inner, outer, sp) == _ring_steps_by_sets(inner, outer, sp)
    assert ballmorph.ring_steps_into_ball(3.0, 3.15, sp)
    rng = np.random.default_rng(7)
    shape = tuple(int(np.ceil(40.0 / s)) for s in sp)
    for t in range(3):
        tissue = ndimage.gaussian_filter(rng.random(shape), 1.5 / np.asarray(sp)) > 0.5 + 0.01 * t
        grown = _opening_grown(tissue, 3.0, 3.15, sp)
        assert grown is not None and grown.any()
        assert ndimage.label(grown)[1] == 1
    one = (1.0, 1.0, 1.0)
    assert not ballmorph.ring_steps_into_ball(1.0, 2.0, one)
    core = np.zeros((12, 12, 12), bool)
    core[3:6, 3:6, 3:6] = True
    tissue = ballmorph.dilate_ball(core, 1.0, one)   # eroded by 1 mm: the cube again
    tissue[6, 6, 6] = True                 # (1, 1, 1) from the core's corner (5, 5, 5): 1.73 mm
    grown = _opening_grown(tissue, 1.0, 2.0, one)
    assert grown[6, 6, 6] and ndimage.label(grown)[1] == 2
