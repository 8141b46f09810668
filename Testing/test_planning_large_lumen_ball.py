"""Issue 20: `problem.large_lumen` (the calibre split's and the continuation's lumen of at least a
diameter) by `segmentation.ballmorph`'s ball erosion and dilation gives the voxels of its
definition, two thresholded ``edt`` maps (an opening: centre voxels at least r_min from outside,
grown by r_min + the largest voxel side), on isotropic grids (where distances tie with r_min),
anisotropic and thick-slice grids, with vessels cut by the array's border (not background)."""

import numpy as np
import pytest
from scipy import ndimage

from imagio.planning.problem import large_lumen
from imagio.segmentation.vessels import edt_for_diameter


def _by_edt(mask, spacing_kji, dmin_mm):
    """The definition: two ``edt`` passes, thresholded."""
    import edt

    an = tuple(float(x) for x in spacing_kji)
    r_min = edt_for_diameter(dmin_mm, an)
    core = edt.edt(mask, anisotropy=an, black_border=False) >= r_min
    if not core.any():
        return np.zeros_like(mask, dtype=bool)
    return mask & (edt.edt(~core, anisotropy=an, black_border=False) <= r_min + max(an) + 1e-3)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.5, 1.5, 1.5), (0.5, 0.5, 0.5), (0.7, 0.7, 2.5),
                                     (3.0, 0.8, 0.8), (1.25, 1.0, 0.9)])
def test_large_lumen_is_its_edt_definition(spacing):
    rng = np.random.default_rng(int(100 * sum(spacing)))
    k, j, i = np.meshgrid(np.arange(30), np.arange(41), np.arange(37), indexing="ij")
    mm = [k * spacing[0], j * spacing[1], i * spacing[2]]
    for d in (2.0, 3.0, 4.0, 6.0):
        for t in range(3):
            m = ndimage.binary_dilation(rng.random((30, 41, 37)) > 0.995, iterations=int(rng.integers(1, 5)))
            m[:, :, :3] |= rng.random((30, 41, 3)) > 0.3          # pieces on the array's border
            # a tube of 4-8 mm across along k, cut by both ends: on the border, never background
            c = rng.uniform(8, 14, 2)
            m |= np.hypot(mm[1] - c[0], mm[2] - c[1]) <= rng.uniform(2.0, 4.0)
            want = _by_edt(m, spacing, d)
            got = large_lumen(m, spacing, d)
            assert got.dtype == bool and np.array_equal(got, want), (spacing, d, t, int((got ^ want).sum()))
    assert not large_lumen(np.zeros((5, 6, 7), bool), spacing, 3.0).any()
