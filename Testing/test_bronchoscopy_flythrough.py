"""Fly-through: the camera stays in the lumen at every frame and starts looking down the
trachea; the one mask-to-surface function gives a smooth surface (no slice rings) on an oblique,
anisotropic grid."""

import numpy as np
import pytest

from imagio import phantom
from imagio.planning import bronchoscopy as B
from imagio.surfaces import mask_surface
from imagio.volume import Volume, make_ijk_to_ras


@pytest.fixture(scope="module")
def ph():
    return phantom.generate(spacing=1.5, seed=0)


def test_camera_inside_the_lumen_at_every_frame_and_first_view_down_the_trachea(ph):
    from imagio.planning.bronchoscopy.tunnel import lung_envelope

    L = ph.labels
    lumen_m = L.mask("trachea", "airways")
    lumen = L.with_array(lumen_m.astype(np.uint8))
    tree = B.extract_tree(L, lumen_m)
    lungs, vessels = lung_envelope(L)
    trachea = ph.airway_tree[0]
    n = 0
    for les in ph.lesions:
        if les.kind != "lung_nodule":
            continue
        tg = B.Target.from_mask(L, L.mask(les.name))
        for scope in ("ultrathin", "thin", "standard"):
            p = B.plan(tree, tg, scope, lungs=lungs, vessels=vessels)
            pos, d = p.camera_positions, p.camera_directions
            assert (lumen.sample(pos, order=0) > 0).all(), (les.name, scope)
            # first view: on the trachea's axis, looking down it
            axis = trachea.end_ras - trachea.start_ras
            axis /= np.linalg.norm(axis)
            off = pos[0] - trachea.start_ras
            assert np.linalg.norm(off - (off @ axis) * axis) < 2.0
            assert d[0] @ axis > 0.95
            n += 1
    assert n == 9


def _radial(poly, a, u):
    from vtk.util import numpy_support as ns

    v = ns.vtk_to_numpy(poly.GetPoints().GetData())
    w = v - a
    t = w @ u
    return v, np.linalg.norm(w - t[:, None] * u, axis=1), t


def test_mask_surface_is_smooth_on_thick_oblique_slices():
    """A 6 mm-radius tube at 35 deg to the slices on a 0.7 x 0.7 x 2.0 mm grid: the smoothed
    surface's radius deviates from a smooth (linear along the axis) profile by less than half a
    voxel everywhere away from the ends; the voxel staircase (no smoothing) does not."""
    aff = make_ijk_to_ras((0.7, 0.7, 2.0))
    shape = (40, 80, 110)
    vol = Volume(np.zeros(shape, np.uint8), aff)
    w = vol.kji_to_world(np.indices(shape).reshape(3, -1).T)
    a = np.array([10.0, 28.0, 10.0])
    u = np.array([np.cos(np.radians(35)), 0.0, np.sin(np.radians(35))])
    t = (w - a) @ u
    R = 6.0
    m = ((np.linalg.norm(w - a - t[:, None] * u, axis=1) <= R) & (t > 0) & (t < 60)).reshape(shape)
    dev = {}
    for sigma in (None, 0.0):
        poly = mask_surface(m, aff, sigma_mm=sigma)
        v, r, tt = _radial(poly, a, u)
        mid = (tt > 12) & (tt < 48) & (r > 2.0)   # the side wall, away from the tube's ends
        fit = np.polyval(np.polyfit(tt[mid], r[mid], 1), tt[mid])
        dev[sigma] = float(np.abs(r[mid] - fit).max())
        # the surface follows the tube (within a voxel of R)
        assert abs(np.median(r[mid]) - R) < 0.7
    assert dev[None] < 0.5 * 0.7, dev
    assert dev[0.0] > 0.5 * 0.7, dev
