"""The body's axial convex hull test (`body.mostly_in_slice_hull`, `body._in_slice_hull`) against its
definition: a pixel is in a slice's hull when its centre lies in the closed convex hull of the
diamonds (centre +-0.5 pixel along each axis) of all the body pixels of that slice; an air
component is kept when at least half of its voxels (in slices holding some body) are in the hull.

The references are computed here from all the diamond points with `scipy.spatial.ConvexHull`'s
facet equations (no reduction to row/column ends, no point-in-polygon routine), on random 2-D
shapes and on an oblique, flipped, anisotropic synthetic CT whose superior axis is not the
first array axis. The slice hull also equals scikit-image's `convex_hull_image` (which the
per-slice step called before) pixel for pixel.
"""

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import ConvexHull

from conftest import rotation
from imagio.segmentation.body import _in_slice_hull, mostly_in_slice_hull
from imagio.segmentation.common import anatomical_axes, components
from synthetic_ct import make_ct

DIAMOND = np.array([[-0.5, 0.0], [0.5, 0.0], [0.0, -0.5], [0.0, 0.5]])


def hull_by_definition(sl: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Bool (n,): pixel centres ``pts`` (n, 2) in the closed hull of all diamonds of ``sl``."""
    corners = (np.argwhere(sl)[:, None, :] + DIAMOND).reshape(-1, 2)
    eq = ConvexHull(np.unique(corners, axis=0)).equations
    return np.all(pts @ eq[:, :2].T + eq[:, 2] <= 1e-9, axis=1)


def random_shapes(n, seed=0):
    rng = np.random.default_rng(seed)
    while n:
        h, w = rng.integers(1, 36, 2)
        sl = rng.random((h, w)) < rng.uniform(0.01, 0.5)
        if rng.random() < 0.5:
            sl = ndimage.binary_opening(sl) | (rng.random((h, w)) < 0.01)
        if sl.any():
            n -= 1
            yield sl


def test_slice_hull_equals_its_definition_and_scikit_image():
    from skimage.morphology import convex_hull_image

    for sl in random_shapes(400):
        pts = np.argwhere(np.ones_like(sl))
        got = _in_slice_hull(sl, tuple(pts.T))
        assert np.array_equal(got, hull_by_definition(sl, pts.astype(float))), sl.astype(int)
        # the old step: scikit-image on the slice's bounding box
        r, c = np.flatnonzero(sl.any(axis=1)), np.flatnonzero(sl.any(axis=0))
        old = np.zeros_like(sl)
        old[r[0]:r[-1] + 1, c[0]:c[-1] + 1] = convex_hull_image(sl[r[0]:r[-1] + 1, c[0]:c[-1] + 1])
        assert np.array_equal(got, old.ravel()), sl.astype(int)


@pytest.mark.slow
def test_mostly_in_slice_hull_equals_its_definition_on_an_oblique_flipped_anisotropic_grid():
    # i -> R (flipped), j -> S, k -> A (flipped), then turned 25 degrees about an oblique axis
    d = rotation((1, 2, 3), 25.0) @ np.array([[-1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
    ct, _ = make_ct(spacing=(1.9, 2.6, 3.3), direction=d, seed=5)
    sup = anatomical_axes(ct)["S"][0]
    assert sup != 0  # the slices are not the first array axis
    # the upper half along the superior axis: the lungs are cut open to a face of the volume
    sl = [slice(None)] * 3
    sl[sup] = slice(ct.shape[sup] // 2, None)
    a = ct.array[tuple(sl)]
    body = a > -500
    lab, n, counts = components(body, 6)
    body = lab == np.argmax(counts[1:]) + 1
    lab, n, counts = components(~body, 6)
    keep = counts > 0
    keep[0] = False
    got = mostly_in_slice_hull(lab, keep, body, sup)

    inside = np.zeros(n + 1, np.int64)
    total = np.zeros(n + 1, np.int64)
    for z in range(a.shape[sup]):
        b2, l2 = np.take(body, z, axis=sup), np.take(lab, z, axis=sup)
        if not b2.any():
            continue
        pts = np.argwhere(l2 > 0)
        ins = hull_by_definition(b2, pts.astype(float))
        lz = l2[tuple(pts.T)]
        np.add.at(total, lz, 1)
        np.add.at(inside, lz[ins], 1)
    ref = keep & (2 * inside >= total) & (total > 0)  # none of it in a slice with body: not kept
    assert np.array_equal(got, ref)
    # the case is not trivial: some air is kept (the cut lungs), some is not (outside air)
    assert got[keep].any() and not got[keep].all()
    big = np.argsort(counts[1:])[::-1][:3] + 1
    assert not got[big[0]]  # the outside air, around the body
