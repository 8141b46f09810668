"""Issue 20 (the demo under 1 GB): `bones.edge_half_max_hu` runs its box filters in place and
drops each volume when done (it held seven float32 volumes at the demo's peak). Its values must
stay those of the plain formula T / max(W, 1e-3) + q (B - T) (floor ``BONE_LOW_HU``, +inf where
T or B is missing), bit for bit, and its inputs (the cached common-resolution CT among them)
must be left as they were."""

import numpy as np
import pytest
from scipy import ndimage

from imagio.segmentation import bones


def _plain(a, bone, blood, body, resolution_mm, spacing_kji):
    sk = np.asarray(spacing_kji, float)
    soft = (a >= 0) & (a <= 300) & ~blood & ~bones.dilate_mm(bone, bones.COMMON_RESOLUTION_MM, sk)
    if body is not None:
        soft &= body
    size = tuple(2 * max(1, int(round(bones.EDGE_TISSUE_MM / s))) + 1 for s in sk)
    w = ndimage.uniform_filter(soft.astype(np.float32), size, mode="constant")
    t = ndimage.uniform_filter(np.where(soft, a, 0).astype(np.float32), size, mode="constant")
    reach = np.maximum(np.asarray(resolution_mm, float), bones.COMMON_RESOLUTION_MM)
    bsize = tuple(2 * max(1, int(round(r / s))) + 1 for r, s in zip(reach, sk))
    b = ndimage.maximum_filter(np.where(bone, a, np.float32(-1024.0)).astype(np.float32), bsize,
                               mode="constant", cval=-1024.0)
    ok = (w > 1e-3) & (b > -1024.0)
    t = t / np.maximum(w, 1e-3)
    half = t + np.float32(2.0 ** -(bones.thin_peak_factor(resolution_mm) ** 2)) * (b - t)
    return np.where(ok, np.maximum(np.float32(bones.BONE_LOW_HU), half), np.float32(np.inf)).astype(np.float32)


@pytest.mark.parametrize("dtype, spacing, resolution, with_body", [
    (np.float32, (1.5, 0.7, 0.9), (1.5, 0.7, 0.9), True),     # anisotropic, at the common resolution
    (np.int16, (3.0, 1.0, 1.0), (4.0, 1.3, 1.2), False),      # thick slices, blurrier than it: q < 1/2
    (np.float64, (0.8, 2.0, 1.2), (1.1, 2.6, 1.2), True),
])
def test_edge_floor_is_the_plain_formula_and_leaves_its_inputs(dtype, spacing, resolution, with_body):
    rng = np.random.default_rng(7)
    shape = (23, 31, 27)
    a = rng.normal(150.0, 250.0, shape).astype(dtype)
    bone = rng.random(shape) < 0.04
    blood = rng.random(shape) < 0.04
    body = (rng.random(shape) < 0.95) if with_body else None
    before = [x.copy() for x in (a, bone, blood) + ((body,) if with_body else ())]
    got = bones.edge_half_max_hu(a, bone, blood, body, resolution, spacing)
    want = _plain(a, bone, blood, body, resolution, spacing)
    assert got.dtype == np.float32 and got.shape == shape
    assert np.isinf(got).any() and np.isfinite(got).any()   # both cases are exercised
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    for x, y in zip(before, (a, bone, blood) + ((body,) if with_body else ())):
        np.testing.assert_array_equal(x, y)
