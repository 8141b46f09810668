"""`Volume.resample_like` by a whole-voxel translation (a crop or extension of the grid, or the
same grid) is a copy of the overlap (`volume.shifted_copy`), not one general interpolation per
voxel (issue 20: three full-volume nearest-neighbour resamplings cost 3 CPU-s of `imagio demo`'s
bronchoscopy). The values must equal ``ndimage.affine_transform`` on the same affine, which is
what the general path runs (order 0, "grid-constant", cval = fill), on an oblique, flipped,
anisotropic grid."""

import numpy as np
import pytest
from scipy import ndimage

from imagio.volume import Volume, integer_shift, make_ijk_to_ras, shifted_copy


def _oblique_grid():
    a = np.deg2rad(23.0)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])
    direction = rot @ np.diag([-1.0, 1.0, -1.0])          # flips on i and k
    return make_ijk_to_ras((0.7, 1.3, 2.1), origin=(12.5, -40.25, 7.0), direction=direction)


def _general(src, dst, fill):
    """The straightforward computation: the output-kji -> source-kji affine, one nearest-neighbour
    interpolation per output voxel (what `resample_like` ran before)."""
    p = np.eye(4)[[2, 1, 0, 3]]
    m = p @ src.ras_to_ijk @ dst.ijk_to_ras @ p
    m = np.where(np.abs(m - np.rint(m)) < 1e-9, np.rint(m), m)
    return ndimage.affine_transform(src.array, m[:3, :3], offset=m[:3, 3], output_shape=dst.shape, order=0,
                                    mode="grid-constant", cval=fill, prefilter=False)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, bool])
@pytest.mark.parametrize("shift_ijk,shape", [
    ((0, 0, 0), (9, 11, 13)),      # the same grid
    ((3, 2, 1), (4, 5, 6)),        # a crop inside
    ((-4, 5, -2), (12, 10, 15)),   # overlapping, partly outside on every axis
    ((-3, -2, -1), (15, 17, 19)),  # an extension on every side
    ((20, 0, 0), (3, 3, 3)),       # no overlap: all fill
])
def test_whole_voxel_shift_equals_affine_transform(dtype, shift_ijk, shape):
    rng = np.random.default_rng(7)
    arr = (rng.integers(0, 200, (9, 11, 13)) if dtype is not bool else rng.random((9, 11, 13)) > 0.5).astype(dtype)
    src = Volume(arr, _oblique_grid(), labels={1: "x"} if dtype is np.uint8 else {})
    t = np.eye(4)
    t[:3, 3] = shift_ijk
    dst = Volume(np.zeros(shape, np.uint8), src.ijk_to_ras @ t)
    fill = 0 if dtype is bool else 5
    got = src.resample_like(dst, order=0, fill=fill)
    want = _general(src, dst, fill)
    assert got.array.dtype == arr.dtype and got.array.shape == shape
    np.testing.assert_array_equal(got.array, want)
    np.testing.assert_array_equal(got.ijk_to_ras, dst.ijk_to_ras)
    # and by hand, one voxel: out[k, j, i] = src[k + dk, j + dj, i + di]
    k, j, i = (min(2, n - 1) for n in shape)
    sk, sj, si = k + shift_ijk[2], j + shift_ijk[1], i + shift_ijk[0]
    inside = 0 <= sk < 9 and 0 <= sj < 11 and 0 <= si < 13
    assert got.array[k, j, i] == (arr[sk, sj, si] if inside else fill)


def test_integer_shift_only_for_whole_voxel_translations():
    m = np.eye(4)
    m[:3, 3] = (2, -3, 0)
    assert integer_shift(m).tolist() == [2, -3, 0]
    m[1, 3] = -3.5                      # half a voxel: interpolated, not copied
    assert integer_shift(m) is None
    m[1, 3] = 1
    m[0, 0] = 2.0                       # another spacing
    assert integer_shift(m) is None
    r = np.eye(4)[[1, 0, 2, 3]]         # axes swapped
    assert integer_shift(r) is None


def test_non_integer_grid_takes_the_general_path():
    rng = np.random.default_rng(3)
    src = Volume(rng.integers(0, 9, (8, 9, 10)).astype(np.uint8), _oblique_grid())
    t = np.eye(4)
    t[:3, 3] = (0.5, 1.0, -2.0)        # half a voxel along i
    dst = Volume(np.zeros((6, 7, 8), np.uint8), src.ijk_to_ras @ t)
    np.testing.assert_array_equal(src.resample_like(dst, order=0, fill=0).array, _general(src, dst, 0))


def test_shifted_copy_fill_outside():
    a = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    out = shifted_copy(a, (1, -1, 2), (2, 3, 4), -7)
    want = np.full((2, 3, 4), -7, np.int16)
    want[0, 1:, :2] = a[1, :2, 2:]
    np.testing.assert_array_equal(out, want)
