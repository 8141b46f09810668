"""Ribs on a thick or coarse reconstruction of a contrast CT (issue 14: volumes of the same
structure agree across resolutions within 10 %).

On a CT angiography the blood pool reads 300-500 HU, and a rib is told from a contrast vessel by
its cortex, denser than the pool (`bones.native_cortex_seeds`). A rib's cortex is 0.5-2 mm thick
(Hostetler ZS et al., Comput Biol Med 2019;111:103330): on a grid blurrier than the bone rules'
common resolution (3 mm) its peak falls into or below the pool's band (Prevrhal S, Engelke K,
Kalender WA, Phys Med Biol 1999;44:751-764), so a rib not joined to the spine lost every seed and
was dropped whole (the chest CTA at 3 mm isotropic: ribs 139 mL against 199 mL at its native
1.5 mm; 1.5 x 1.5 x 5 mm: 148 mL; now 162 and 167 mL).

The synthetic chest here (`synthetic_ct.make_ct`: ribs that do not reach the spine) gets an
enhanced aorta (400 HU) and ribs of 1 mm cortex (700 HU: a thin rib's cortex peaks at 420-700 HU
on the chest CTA at 1.5 mm) around marrow (150 HU), drawn on a 1 mm grid; the coarser grids are that image blurred by each new voxel's box (a Gaussian of
variance (t^2 - s^2) / 12 mm^2 along each coarser axis, as a thicker reconstruction averages
its slab) and linearly resampled, on an axis-aligned, a flipped and an oblique anisotropic
grid."""

import numpy as np
import pytest
from scipy import ndimage

from imagio.segmentation import rules
from imagio.volume import Volume, make_ijk_to_ras

from synthetic_ct import make_ct

pytestmark = pytest.mark.slow


def _oblique(deg):
    a = np.radians(deg)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    b = np.radians(0.5 * deg)
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


@pytest.fixture(scope="module")
def fine():
    """The contrast chest on a 1 mm grid and its rib truth (bool [k, j, i])."""
    ct, t = make_ct(spacing=(1.0, 1.0, 1.0), noise=0.0)
    a = ct.array.astype(np.float32)
    m = ct.ijk_to_ras   # axis-aligned (make_ct's default direction): x from i, y from j
    x = (m[0, 0] * np.arange(a.shape[2]) + m[0, 3])[None, None, :]
    y = (m[1, 1] * np.arange(a.shape[1]) + m[1, 3])[None, :, None]
    # the descending aorta beside the spine, enhanced (a CT angiography's blood pool)
    aorta = ((x + 22) ** 2 + (y + 45) ** 2 <= 13.0 ** 2) & t["body"] & ~t["lung_left"] & ~t["lung_right"]
    a[aorta] = 400.0
    ribs = t["ribs"]
    cortex = ribs & ~ndimage.binary_erosion(ribs, iterations=1)   # 1 mm shell at 1 mm
    a[ribs] = 150.0
    a[cortex] = 700.0
    a += np.random.default_rng(1).normal(0, 12.0, a.shape).astype(np.float32)
    return Volume(a, ct.ijk_to_ras, "synthetic"), ribs


def _reconstructed(fine: Volume, spacing, direction=None) -> Volume:
    """``fine`` averaged over each new voxel's box (Gaussian of the box's variance beyond the
    fine voxel's, per axis) and linearly resampled onto a grid of ``spacing`` (mm, i j k) with
    ``direction`` (3 x 3, columns the i j k axes in RAS) over the same centre."""
    s = np.asarray(fine.spacing_kji, float)
    t = np.asarray(spacing, float)
    # the new voxel's box, rotated, has variance diag(D T^2 D^T) / 12 along the fine grid's axes
    d = np.eye(3) if direction is None else np.asarray(direction, float)
    var = ((d * d) @ (t * t))[::-1]   # per kji axis of the fine (axis-aligned) grid: diag(D T^2 D^T)
    sigma = np.sqrt(np.maximum(var - s ** 2, 0.0) / 12.0) / s
    blurred = Volume(ndimage.gaussian_filter(fine.array, sigma), fine.ijk_to_ras, "blurred")
    n = np.floor(np.asarray(fine.shape[::-1]) * fine.spacing / t).astype(int)   # i j k
    m = make_ijk_to_ras(t, (0, 0, 0), d)
    centre = fine.kji_to_world((np.asarray(fine.shape, float) - 1)[None] / 2.0)[0]
    m[:3, 3] = centre - m[:3, :3] @ ((n - 1) / 2.0)
    ref = Volume(np.zeros(tuple(n[::-1]), np.uint8), m)
    out = blurred.resample_like(ref, order=1, fill=-1000.0)
    return Volume(np.rint(out.array).astype(np.int16), m, "synthetic")


def _ribs_ml(ct: Volume) -> float:
    m, _ = rules.segment_masks(ct, ["body", "lungs", "bones"])
    return float(m["ribs"].sum()) * ct.voxel_volume_ml


@pytest.fixture(scope="module")
def native_ribs(fine):
    ct, ribs = fine
    return _ribs_ml(_reconstructed(ct, (1.5, 1.5, 1.5))), float(ribs.sum()) * ct.voxel_volume_ml


GRIDS = [((3.0, 3.0, 3.0), None), ((1.5, 1.5, 5.0), None), ((3.0, 3.0, 3.0), np.diag([-1.0, 1.0, -1.0])),
         ((1.4, 1.6, 5.0), _oblique(20.0))]
IDS = ["3mm", "5mm_slices", "3mm_flipped", "5mm_oblique_anisotropic"]


@pytest.fixture(scope="module")
def coarse_ribs(fine):
    return {i: _ribs_ml(_reconstructed(fine[0], sp, d)) for i, (sp, d) in zip(IDS, GRIDS)}


@pytest.mark.parametrize("grid", IDS)
def test_ribs_are_not_lost_on_a_blurrier_contrast_ct(native_ribs, coarse_ribs, grid):
    """No rib is dropped for want of cortex denser than the pool: at least 90 % of the 1.5 mm
    grid's rib volume (main before this test: 0 mL of 136 mL at 3 mm, on either grid)."""
    ref, truth = native_ribs
    # the 1.5 mm grid finds the ribs (their cortex above the pool): the reference is sound
    assert 0.9 * truth < ref < 1.25 * truth, (ref, truth)
    assert coarse_ribs[grid] >= 0.9 * ref, (coarse_ribs[grid], ref, truth)


@pytest.mark.xfail(strict=True, reason="known limit (issue 14): the bone candidates' floor is a "
                   "fixed HU (trabecular bone's lower bound above the tissue level), not the half "
                   "maximum between a rib and the tissue beside it, so a blurred thin rib's skirt "
                   "grows with the blur: these 6 mm tall bars read 1.31-1.42x their 1.5 mm volume")
@pytest.mark.parametrize("grid", IDS)
def test_ribs_keep_their_volume_on_a_blurrier_contrast_ct(native_ribs, coarse_ribs, grid):
    """Within 10 % of the 1.5 mm grid's rib volume (issue 14's goal)."""
    ref, _ = native_ribs
    assert coarse_ribs[grid] == pytest.approx(ref, rel=0.10), (coarse_ribs[grid], ref)
