"""The partial-volume-corrected volume of a lung lesion (new-user trial 60 L3/L1): on analytic
spheres and ellipsoids whose voxels hold their share of lesion (partial volume as CT gives it),
outlined at the half-contrast threshold, the weighted sum is nearer the true volume than the
voxel count, on 1, 2.5 and 5 mm sections, oblique, flipped and anisotropic grids."""

import numpy as np
import pytest
from scipy import ndimage

from conftest import block_in_air, ellipsoid_share, rotation
from imagio.segmentation.measurements import partial_volume_ml

LUNG_HU, LESION_HU, NOISE_HU = -850.0, 20.0, 20.0
GRIDS = {  # (i, j, k) spacing mm, direction
    "1mm_oblique": ((0.8, 0.8, 1.0), rotation((1, 2, 3), 20.0) @ np.diag([-1.0, 1.0, 1.0])),
    "2.5mm_tilted": ((0.7, 0.7, 2.5), rotation((1, 0, 0), 15.0)),
    "5mm_flipped": ((0.7, 0.9, 5.0), np.diag([-1.0, -1.0, 1.0])),
    "5mm_oblique": ((0.7, 0.7, 5.0), rotation((0, 1, 1), 12.0) @ np.diag([1.0, -1.0, 1.0])),
}
SHAPES = {"sphere_16mm": (8.0, 8.0, 8.0), "ellipsoid": (12.0, 9.0, 8.5)}  # at least three 5 mm sections thick


def _scene(spacing, direction, semi, offset, rng):
    """(Volume, HU [k, j, i], truth mL): an ellipsoid of semi-axes ``semi`` (mm, rotated 30 deg
    about S) centred at ``offset`` in lung; each voxel holds its share inside (5 x 5 x 5
    sub-samples), plus noise."""
    n = [int(np.ceil(40.0 / s)) for s in spacing]
    ref, (x, y, z), _ = block_in_air(spacing, n, direction, (99.0, 99.0, 99.0))
    frac = ellipsoid_share(ref, (x, y, z), offset, semi, rotation((0, 0, 1), 30.0), n=5)
    hu = LUNG_HU + frac * (LESION_HU - LUNG_HU) + rng.normal(0.0, NOISE_HU, frac.shape)
    return ref, hu, 4.0 / 3.0 * np.pi * np.prod(semi) / 1000.0


@pytest.mark.parametrize("grid", sorted(GRIDS))
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_partial_volume_sum_is_nearer_the_truth_than_the_voxel_count(grid, shape):
    """Over five sub-voxel positions: the corrected volume is within 1.5 % of the truth each time
    (measured: at most 0.8 %), and its mean absolute error is below the voxel count's (measured,
    count -> corrected: 1 mm 0.15-0.21 % -> 0.05-0.09 %; 2.5 mm 0.67-0.85 % -> 0.14-0.25 %;
    5 mm 1.05-3.42 % (up to 5.75 %) -> 0.23-0.41 %)."""
    spacing, direction = GRIDS[grid]
    rng = np.random.default_rng(7)
    thr = 0.5 * (LUNG_HU + LESION_HU)
    err_pv, err_n = [], []
    for _ in range(5):
        off = rng.uniform(-2.5, 2.5, 3)
        ref, hu, truth = _scene(spacing, direction, SHAPES[shape], off, rng)
        lab, _ = ndimage.label(hu > thr)
        mask = lab == np.bincount(lab.ravel())[1:].argmax() + 1
        pv = partial_volume_ml(mask, ref, hu, thr)
        err_pv.append(pv / truth - 1.0)
        err_n.append(mask.sum() * ref.voxel_volume_ml / truth - 1.0)
    assert max(abs(e) for e in err_pv) < 0.015, (err_pv, err_n)
    assert np.mean(np.abs(err_pv)) < np.mean(np.abs(err_n)), (err_pv, err_n)


def test_tissue_cut_off_by_the_outline_is_not_counted():
    """Dense tissue just outside the outline (f >= 1/2: a vessel or the chest wall the outline
    cut off) adds nothing: a cube outlined as its half keeps its half's volume."""
    ref, (x, y, z), _ = block_in_air((1.0, 1.0, 2.0), (30, 30, 15), np.eye(3), (99.0, 99.0, 99.0))
    cube = (np.abs(x) < 8) & (np.abs(y) < 8) & (np.abs(z) < 8)
    hu = np.where(cube, LESION_HU, LUNG_HU)
    half = cube & (x < 0)
    pv = partial_volume_ml(half, ref, hu, 0.5 * (LUNG_HU + LESION_HU))
    assert pv == pytest.approx(half.sum() * ref.voxel_volume_ml)


def test_no_interior_or_no_contrast_gives_none():
    ref, (x, y, z), _ = block_in_air((1.0, 1.0, 1.0), (9, 9, 9), np.eye(3), (99.0, 99.0, 99.0))
    one = (np.abs(x) < 0.5) & (np.abs(y) < 0.5) & (np.abs(z) < 0.5)
    hu = np.where(one, LESION_HU, LUNG_HU)
    assert partial_volume_ml(one, ref, hu, -400.0) is None   # one voxel: no interior
    blob = (np.abs(x) < 2) & (np.abs(y) < 2) & (np.abs(z) < 2)
    assert partial_volume_ml(blob, ref, np.full(ref.shape, 30.0), -400.0) is None   # nothing below threshold around
