import numpy as np
import pytest

from imagio.errors import InputError
from imagio.volume import Volume, make_ijk_to_ras


def test_geometry_properties(oblique_volume):
    v = oblique_volume
    np.testing.assert_allclose(v.spacing, [0.7, 1.1, 2.5])
    np.testing.assert_allclose(v.spacing_kji, [2.5, 1.1, 0.7])
    d = v.direction
    np.testing.assert_allclose(d.T @ d, np.eye(3), atol=1e-12)
    assert np.linalg.det(d) < 0  # i axis flipped: left-handed grid is kept, not "fixed"


def test_world_voxel_round_trip(oblique_volume):
    v = oblique_volume
    kji = np.array([[0, 0, 0], [8, 12, 16], [3.25, 7.5, 1.75]])
    ras = v.kji_to_world(kji)
    np.testing.assert_allclose(v.world_to_kji(ras), kji, atol=1e-10)
    # moving one step in i moves 0.7 mm along the first direction column
    step = v.kji_to_world([[0, 0, 1]]) - v.kji_to_world([[0, 0, 0]])
    np.testing.assert_allclose(step[0], 0.7 * v.direction[:, 0], atol=1e-12)


def test_sample_nearest_matches_array(oblique_volume):
    v = oblique_volume
    rng = np.random.default_rng(0)
    kji = rng.integers(0, v.shape, size=(50, 3))
    ras = v.kji_to_world(kji + rng.uniform(-0.45, 0.45, size=kji.shape))
    np.testing.assert_array_equal(v.sample(ras), v.array[kji[:, 0], kji[:, 1], kji[:, 2]])
    assert v.sample([[1e6, 0, 0]], fill=-7)[0] == -7


def test_resample_like_identity_and_shift(oblique_volume):
    v = oblique_volume
    same = v.resample_like(v)
    np.testing.assert_array_equal(same.array, v.array)
    # a grid shifted by exactly one voxel along k: content shifts by one slice
    m = v.ijk_to_ras.copy()
    m[:3, 3] += v.ijk_to_ras[:3, 2]
    ref = Volume(np.zeros(v.shape, np.uint8), m)
    shifted = v.resample_like(ref, order=0, fill=0)
    np.testing.assert_array_equal(shifted.array[:-1], v.array[1:])
    assert np.all(shifted.array[-1] == 0)


def test_resample_linear_on_smooth_field(oblique_affine):
    shape = (20, 24, 28)
    v = Volume(np.zeros(shape, np.float32), oblique_affine)
    kk, jj, ii = np.indices(shape)
    ras = v.kji_to_world(np.stack([kk, jj, ii], -1).reshape(-1, 3))
    f = lambda p: 2.0 * p[:, 0] - 0.5 * p[:, 1] + 0.25 * p[:, 2]  # linear in RAS
    v.array[:] = f(ras).reshape(shape)
    fine = v.resampled((1.0, 1.0, 1.0), order=1)
    fk = np.stack(np.indices(fine.shape), -1).reshape(-1, 3)
    pts = fine.kji_to_world(fk)
    inside = np.all((v.world_to_kji(pts) >= 0) & (v.world_to_kji(pts) <= np.array(shape) - 1), axis=1)
    np.testing.assert_allclose(fine.array.reshape(-1)[inside], f(pts[inside]), atol=1e-3)


def test_crop_keeps_world_positions(oblique_volume):
    v = oblique_volume
    c = v.crop((2, 3, 4), (7, 10, 15))
    assert c.shape == (5, 7, 11)
    np.testing.assert_allclose(c.kji_to_world([[0, 0, 0]]), v.kji_to_world([[2, 3, 4]]), atol=1e-10)
    np.testing.assert_array_equal(c.array, v.array[2:7, 3:10, 4:15])


def test_bad_inputs():
    with pytest.raises(InputError, match="3D"):
        Volume(np.zeros((4, 4)), np.eye(4))
    with pytest.raises(InputError, match="singular"):
        Volume(np.zeros((2, 2, 2)), np.diag([1, 0, 1, 1]))
    v = Volume(np.zeros((3, 3, 3), np.uint8), make_ijk_to_ras((1, 1, 1)))
    with pytest.raises(InputError, match="empty"):
        v.bounding_box()


def test_sample_linear_equals_interpolating_the_whole_array(oblique_affine):
    """Trilinear sampling converts only the block holding the points; the values must be bit for
    bit those of scipy's map_coordinates on the whole array (points inside, on the faces, just
    outside and far outside an oblique, anisotropic int16 grid)."""
    from scipy import ndimage

    rng = np.random.default_rng(3)
    vol = Volume(rng.integers(-1000, 1500, (23, 31, 17)).astype(np.int16), oblique_affine)
    n = np.array(vol.shape)
    sets = [rng.uniform(2.2, 9.7, (50, 3)),                 # a small interior block
            rng.uniform(-1.5, n + 0.5, (400, 3)),           # the whole grid and just outside
            np.array([[0.0, 0.0, 0.0], n - 1.0, [-0.5, 3, 3], n - 0.5]),   # corners and faces
            rng.uniform(-40, -20, (10, 3))]                 # all far outside
    for kji in sets:
        ras = vol.kji_to_world(kji)
        expected = ndimage.map_coordinates(vol.array.astype(np.float32), vol.world_to_kji(ras).T, order=1,
                                           mode="constant", cval=-1024, prefilter=False)
        got = vol.sample(ras, order=1, fill=-1024)
        assert got.dtype == expected.dtype
        assert np.array_equal(got, expected)
