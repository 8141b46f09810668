"""Review 44 L5: a one-probe multi-probe plan's ``lower_bound_volume`` could read 2: the bound was
the region's voxel volume (voxel centres x voxel volume) over one zone's volume, and the voxel
boxes whose centres lie in a zone reach out past it by up to half a voxel diagonal. The bound of
`multiprobe.volume_bound` is never above the probes a cover needs: a zone that holds every centre
of a region gives 1, on anisotropic, oblique grids and zone axes."""

import numpy as np

from imagio.planning.ablation.devices import Setting
from imagio.planning.ablation.grid import FineGrid
from imagio.planning.ablation.multiprobe import volume_bound


def _centres_in_zone(grid_affine, shape, setting, centre, axis):
    k, j, i = (np.arange(n, dtype=float) for n in shape)
    K, J, I = np.meshgrid(k, j, i, indexing="ij")
    ijk = np.stack([I.ravel(), J.ravel(), K.ravel(), np.ones(I.size)])
    ras = (grid_affine @ ijk)[:3].T - centre
    u = np.asarray(axis, float) / np.linalg.norm(axis)
    along = ras @ u
    across2 = np.einsum("ij,ij->i", ras, ras) - along ** 2
    a, b = setting.zone_length_mm / 2, setting.zone_diameter_mm / 2
    return int(((along / a) ** 2 + across2 / b ** 2 <= 1.0).sum())


def test_one_zone_holding_every_centre_bounds_one_probe():
    rng = np.random.default_rng(0)
    s = Setting("t", zone_length_mm=20.0, zone_diameter_mm=12.0, centre_offset_mm=0.0, source="test")
    old_over = 0
    for _ in range(40):
        # an anisotropic grid, rotated and flipped, at a random sub-voxel offset
        q, _r = np.linalg.qr(rng.normal(size=(3, 3)))
        q[:, 0] *= -1.0
        sp = rng.uniform([1.5, 1.5, 3.0], [3.0, 3.0, 5.0])
        aff = np.eye(4)
        aff[:3, :3] = q * sp
        aff[:3, 3] = rng.uniform(-3, 3, 3)
        grid = FineGrid(aff, np.zeros(3, int), np.array([30, 30, 30]), np.ones(3, int))
        centre = aff[:3, :3] @ np.array([15.0, 15.0, 15.0]) + aff[:3, 3]
        n = _centres_in_zone(aff, grid.shape, s, centre, rng.normal(size=3))
        assert volume_bound(n, grid, s) == 1                   # one zone covers them: the bound is 1
        old_over += int(np.ceil(n * grid.voxel_ml / s.volume_ml - 1e-9)) > 1
    assert old_over > 0   # the old bound read 2 for some of these one-zone regions
    assert volume_bound(0, grid, s) == 1                       # at least one probe
