"""`Target.from_mask` works on the mask's bounding box (+ one voxel) instead of the whole grid
(issue 20: three full-volume erosions and index lists per demo nodule): the surface points and
the centre must be bit-for-bit those of the whole-grid computation, on an oblique, flipped,
anisotropic grid, for lesions inside and lesions touching the image's faces."""

import numpy as np
import pytest
from scipy import ndimage

from imagio.planning.bronchoscopy.route import Target
from imagio.volume import Volume, make_ijk_to_ras


def _grid():
    a = np.deg2rad(31.0)
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    return make_ijk_to_ras((0.8, 1.1, 2.4), origin=(-3.3, 17.1, 40.0), direction=rot @ np.diag([1.0, -1.0, -1.0]))


def _whole_grid(vol, m):
    """The straightforward computation (before issue 20): erosion, indices and mean on the
    whole grid."""
    edge = m & ~ndimage.binary_erosion(m)
    return vol.kji_to_world(np.argwhere(edge)), vol.kji_to_world(np.argwhere(m).mean(axis=0)[None])[0]


@pytest.mark.parametrize("where", ["inside", "corner", "face", "whole"])
def test_surface_and_centre_as_on_the_whole_grid(where):
    rng = np.random.default_rng(11)
    shape = (30, 36, 40)
    k, j, i = np.indices(shape)
    c = {"inside": (15, 18, 20), "corner": (0, 0, 0), "face": (15, 35, 20), "whole": (15, 18, 20)}[where]
    r = {"inside": 6, "corner": 9, "face": 7, "whole": 60}[where]
    m = ((k - c[0]) * 2.4) ** 2 + ((j - c[1]) * 1.1) ** 2 + ((i - c[2]) * 0.8) ** 2 < (r * 1.5) ** 2
    m &= rng.random(shape) > 0.05                     # holes: inner surface voxels too
    vol = Volume(np.zeros(shape, np.uint8), _grid())
    t = Target.from_mask(vol, m)
    surf, centre = _whole_grid(vol, m)
    assert len(surf) > 10
    np.testing.assert_array_equal(t.surface, surf)
    np.testing.assert_array_equal(t.centre, centre)
    np.testing.assert_array_equal(t.mask.array, m.astype(np.uint8))


def test_empty_mask_is_refused():
    from imagio.errors import InputError

    vol = Volume(np.zeros((4, 5, 6), np.uint8), _grid())
    with pytest.raises(InputError):
        Target.from_mask(vol, np.zeros((4, 5, 6), bool))
