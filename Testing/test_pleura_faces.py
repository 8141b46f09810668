"""The pleura label (`segmentation.lungs.pleural_surface`) is the lung's own surface: where a face
of the field of view cuts a lung, the lung goes on beyond it, so that face carries no pleura
(Gray's Anatomy, 41st ed., 'Pleura': the visceral pleura covers the lung). Truth: an analytic
ellipsoid lung cut by the volume's top face and one side face, on an axial grid and on an
anisotropic, flipped, oblique grid; its surface inside the view is found independently (lung
voxels with a 6-neighbour outside the ellipsoid, inside the array)."""

import numpy as np
import pytest

from imagio.segmentation.lungs import pleural_surface
from imagio.segmentation.common import ras_coordinate
from imagio.volume import Volume, make_ijk_to_ras


def _grid(kind):
    if kind == "axial":
        return Volume(np.zeros((40, 50, 45), np.uint8), make_ijk_to_ras((2.0, 2.0, 2.5), (-45.0, -50.0, -50.0)))
    t = np.radians(20.0)
    rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    d = rot @ np.diag([1.0, -1.0, -1.0])
    aff = make_ijk_to_ras((1.8, 2.2, 2.6), (0.0, 0.0, 0.0), d)
    shape = (38, 46, 52)
    aff[:3, 3] = np.array([0.0, 0.0, 0.0]) - aff[:3, :3] @ ((np.array(shape[::-1]) - 1) / 2.0)
    return Volume(np.zeros(shape, np.uint8), aff)


@pytest.mark.parametrize("kind", ["axial", "oblique"])
def test_a_face_that_cuts_the_lung_carries_no_pleura(kind):
    vol = _grid(kind)
    x, y, z = (np.broadcast_to(ras_coordinate(vol, r), vol.shape) for r in range(3))
    # a lung ellipsoid whose top and right parts lie beyond the view
    lung = ((x - 25.0) / 45.0) ** 2 + (y / 35.0) ** 2 + ((z - 30.0) / 60.0) ** 2 <= 1.0
    faces = np.zeros(vol.shape, bool)
    for ax in range(3):
        for end in (0, vol.shape[ax] - 1):
            idx = [slice(None)] * 3
            idx[ax] = end
            faces[tuple(idx)] = True
    assert (lung & faces).sum() > 100   # the view does cut it
    pl = pleural_surface(lung)
    # own surface: a lung voxel with a 6-neighbour inside the array that is not lung
    surface = np.zeros_like(lung)
    for ax in range(3):
        n = lung.shape[ax]
        lo, hi = [slice(None)] * 3, [slice(None)] * 3
        lo[ax], hi[ax] = slice(0, n - 1), slice(1, n)
        lo, hi = tuple(lo), tuple(hi)
        surface[lo] |= lung[lo] & ~lung[hi]    # neighbour at +1 is not lung
        surface[hi] |= lung[hi] & ~lung[lo]    # neighbour at -1 is not lung
    assert not (pl & faces & ~surface).any(), int((pl & faces & ~surface).sum())
    assert np.array_equal(pl, surface)
