"""The lung envelope of the one-click lesion segmentation (`lesion._lung_envelope`) takes each
per-slice convex hull on its mask's bounding box: the masks must be exactly those of the
whole-slice hulls (scikit-image's `convex_hull_image` on the full slice, written out here as the
reference), and the hulls must really be taken on the boxes."""

import numpy as np
import pytest
import skimage.morphology
from scipy import ndimage
from skimage.morphology import convex_hull_image

from imagio.segmentation.lesion import HULL_MIN_FILL, _lung_air, _lung_envelope


def _reference(roi, s_axis, voxel_ml):
    """The envelope with every hull on the whole slice (the definition)."""
    lung, lab = _lung_air(roi, voxel_ml)
    env, rej = lung.copy(), np.zeros(roi.shape, bool)
    ez, rz, lz = (np.moveaxis(x, s_axis, 0) for x in (env, rej, lung))
    labz3 = np.moveaxis(lab, s_axis, 0)
    for z in range(lz.shape[0]):
        if not lz[z].any():
            continue
        pieces, n = ndimage.label(lz[z], structure=np.ones((3, 3), bool))
        for c in range(1, n + 1):
            sl = pieces == c
            if sl.sum() < 10:
                continue
            cav, nc = ndimage.label(convex_hull_image(sl) & ~sl)
            area = np.bincount(cav.ravel(), minlength=nc + 1)
            ok = sl.sum() >= HULL_MIN_FILL * (sl.sum() + area)
            ok[0] = False
            ez[z] |= ok[cav]
        for v in np.unique(labz3[z][lz[z]]):
            whole = labz3[z] == v
            if whole.sum() >= 10:
                rz[z] |= convex_hull_image(whole) & ~whole
    extra = np.moveaxis(env & ~lung, s_axis, 0)
    ez[1:] |= extra[:-1]
    ez[:-1] |= extra[1:]
    return lung, env, rej & ~env


def _chest(s_axis):
    """Two lungs (-850 HU) in soft tissue (40 HU): a notch and a nodule-sized bite in the right
    one, a mass splitting the left one into pieces on some slices, the right lung cut by the
    box's faces, a small lung-like island; S along ``s_axis``."""
    rng = np.random.default_rng(3)
    z, y, x = np.ogrid[:14, :48, :56]
    roi = np.full((14, 48, 56), 40.0, np.float32)
    right = ((y - 24) ** 2 / 300 + (x - 8) ** 2 / 90 < 1) & (z >= 0)   # cut by the x = 0 face
    right &= ~((np.abs(y - 24) < 3) & (x > 12))                        # a notch from its medial side
    right &= ~(((y - 14) ** 2 + (x - 6) ** 2 < 10) & (z > 3) & (z < 9))  # a bite
    left = ((y - 22) ** 2 / 250 + (x - 40) ** 2 / 80 < 1) & (z < 12)
    left &= ~((np.abs(y - 22) < 4) & (z > 5) & (z < 10))               # a mass across it
    island = ((y - 44) ** 2 + (x - 30) ** 2 < 6) & (z > 9)
    roi[right | left | island] = -850.0
    roi += rng.normal(0, 15, roi.shape).astype(np.float32)
    return np.ascontiguousarray(np.moveaxis(roi, 0, s_axis))


@pytest.mark.parametrize("s_axis", [0, 2])
def test_envelope_equals_the_whole_slice_hulls(s_axis):
    roi = _chest(s_axis)
    got = _lung_envelope(roi, 1.0, s_axis, voxel_ml=0.01)
    want = _reference(roi, s_axis, voxel_ml=0.01)
    assert got[0].any() and (got[1] & ~got[0]).any() and got[2].any()   # the case has every part
    for g, w in zip(got, want):
        assert np.array_equal(g, w)


def test_each_hull_is_taken_on_its_mask_box(monkeypatch):
    """Every image handed to the hull has its mask on all four edges (its bounding box), so no
    hull is filled over a whole slice."""
    seen = []

    def recording(image, *a, **k):
        seen.append(np.asarray(image, bool).copy())
        return convex_hull_image(image, *a, **k)

    monkeypatch.setattr(skimage.morphology, "convex_hull_image", recording)
    _fresh_hull_cache(monkeypatch)   # pieces hulled by another test are not hulled again
    _lung_envelope(_chest(0), 1.0, 0, voxel_ml=0.01)
    assert seen
    for im in seen:
        assert im[0].any() and im[-1].any() and im[:, 0].any() and im[:, -1].any()


def _fresh_hull_cache(monkeypatch):
    """`lesion._piece_hull`'s kept pieces emptied for this test (restored after it)."""
    import collections

    import imagio.segmentation.lesion as L

    monkeypatch.setattr(L, "_HULLS", collections.OrderedDict())
    monkeypatch.setattr(L, "_HULL_BYTES", 0)


def test_a_piece_seen_before_is_not_hulled_again(monkeypatch):
    """Issue 20: the same piece of lung recurs in every search box, check click and click of one
    CT, and its hull is a function of its pixels alone: it is hulled once. Asserted: the envelope
    computed again on the same box hulls nothing, the envelope of a box shifted by 3 voxels (a
    click beside the first; the right lung cut anew by its face) hulls only the pieces it changed (fewer than the first), and
    both equal the whole-slice definition computed afresh (`_reference`)."""
    seen = []

    def counting(image, *a, **k):
        seen.append(1)
        return convex_hull_image(image, *a, **k)

    _fresh_hull_cache(monkeypatch)
    monkeypatch.setattr(skimage.morphology, "convex_hull_image", counting)
    roi = _chest(0)
    first = _lung_envelope(roi, 1.0, 0, voxel_ml=0.01)
    n = len(seen)
    again = _lung_envelope(roi, 1.0, 0, voxel_ml=0.01)
    assert n > 0 and len(seen) == n, (n, len(seen))
    shifted = np.ascontiguousarray(roi[:, :, 3:])   # the right lung cut again, the left one whole
    moved = _lung_envelope(shifted, 1.0, 0, voxel_ml=0.01)
    assert 0 < len(seen) - n < n, (n, len(seen) - n)
    monkeypatch.undo()
    for got, want in ((first, _reference(roi, 0, 0.01)), (again, _reference(roi, 0, 0.01)),
                      (moved, _reference(shifted, 0, 0.01))):
        for g, w in zip(got, want):
            assert np.array_equal(g, w)
