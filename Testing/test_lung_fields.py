"""The lungs split into left and right without the central airways (Armato & MacMahon 1999;
Hu, Hoffman & Reinhardt, IEEE TMI 2001): neither lung holds the trachea or a main bronchus, and
the right lung does not reach across the carina through the left main bronchus.

The lungs tested are the nodule detector's (``detection.pipeline.lung_volume`` with no mask
given: IMAGIO's HU rules, trachea and main bronchi included), split by
``segmentation.lung_fields.split_lungs``. On main the only split was
``segmentation.lungs.split_left_right`` about the trachea's midline, which fails both tests
(the right lung takes the left main bronchus).
"""

import numpy as np
import pytest
from scipy import ndimage

from imagio.detection.pipeline import lung_volume
from imagio.segmentation.body import body_mask
from imagio.segmentation.common import anatomical_axes, ras_coordinate
from imagio.segmentation.lung_fields import split_lungs
from conftest import rotation
from synthetic_ct import _seg_dist, make_ct


def _chest_with_subcarinal_recess():
    """make_ct's patient on an oblique, flipped, anisotropic grid, with the right lung's
    azygo-oesophageal recess reaching medially under the carina up to the left main bronchus'
    wall (lung tissue, -850 HU; the bronchus wall and lumen are kept)."""
    d = rotation((1, 2, 3), 20.0) @ np.diag([-1.0, 1.0, 1.0])
    ct, t = make_ct(spacing=(1.8, 2.2, 2.6), direction=d, seed=3)
    p = np.stack([ras_coordinate(ct, r) for r in range(3)], -1).astype(np.float32)
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    airway_wall = ((_seg_dist(p, (0, 20, 60), (50, 10, 25)) <= 7.5)
                   | (_seg_dist(p, (0, 20, 60), (-50, 10, 25)) <= 7.5)
                   | (_seg_dist(p, (0, 20, 112), (0, 20, 60)) <= 10.5))
    recess = (((((x - 15) / 25) ** 2 + ((y - 4) / 12) ** 2 + ((z - 40) / 18) ** 2) <= 1)
              | ((((x / 10) ** 2 + ((y - 8) / 8) ** 2 + ((z - 46) / 10) ** 2) <= 1))) & ~airway_wall
    a = ct.array.copy()
    a[recess] = -850
    right = t["lung_right"] | recess
    # the central airways: the trachea and the main bronchi where they have a wall (make_ct's
    # bronchi end open in the lung, the last 9 mm without a wall: lung there)
    ends = np.minimum(np.linalg.norm(p - np.float32([50, 10, 25]), axis=-1),
                      np.linalg.norm(p - np.float32([-50, 10, 25]), axis=-1))
    central = (t["trachea"] | t["bronchi"]) & (ends > 9.0)
    left_bronchus = _seg_dist(p, (0, 20, 60), (-50, 10, 25)) <= 7.5
    right_bronchus = _seg_dist(p, (0, 20, 60), (50, 10, 25)) <= 7.5
    return ct.with_array(a), right, t["lung_left"], central, recess, left_bronchus, right_bronchus


def test_each_lung_on_its_own_side_without_the_airways():
    ct, truth_r, truth_l, central, recess, left_bronchus, right_bronchus = \
        _chest_with_subcarinal_recess()
    assert not np.allclose(ct.direction, np.eye(3))
    # the scene: the recess comes within 5 mm of the left main bronchus lumen (its 2.5 mm wall
    # and a voxel between)
    gap = ndimage.distance_transform_edt(~(central & left_bronchus), sampling=ct.spacing_kji)
    assert gap[recess].min() <= 5.0
    lungs, _ = lung_volume(ct, None)
    left, right, mid, warn = split_lungs(ct, lungs, body_mask(ct))
    assert not warn, warn
    both = left | right
    assert not (both & central).any(), f"{int((both & central).sum())} trachea/main bronchus voxels counted as lung"
    # each lung holds none of the other lung (within one voxel) and none of the other side's
    # main bronchus, and nearly all of its own
    grow = lambda m: ndimage.binary_dilation(m, iterations=1)
    wrong_r = right & (grow(truth_l) & ~truth_r | left_bronchus)
    wrong_l = left & (grow(truth_r) & ~truth_l | right_bronchus)
    assert not wrong_r.any(), f"right lung: {int(wrong_r.sum())} voxels of the left side"
    assert not wrong_l.any(), f"left lung: {int(wrong_l.sum())} voxels of the right side"
    assert (right & truth_r).sum() > 0.9 * truth_r.sum()
    assert (left & truth_l).sum() > 0.9 * truth_l.sum()


@pytest.mark.data
@pytest.mark.slow
def test_lung1_right_lung_does_not_cross_the_carina(shared_data):
    """lung1 (5 mm sections): at the carina's level the right lung (the detector's lungs, split
    about the trachea) holds no voxel more than 5 mm left of the midline in the airways'
    antero-posterior band (the subcarinal space and the left main bronchus). The carina and
    the band come from the airway tree, an independent segmenter. (Anterior to the band the right lung may cross the
    midline: the anterior junction line lies left of it in many patients.)"""
    from imagio import io
    from imagio.segmentation.airways import airway_masks

    ct = io.read_image(str(shared_data / "pyradiomics-lung" / "lung1_image.nrrd"))
    lungs, _ = lung_volume(ct, None)
    body = body_mask(ct)
    trachea, bronchi, info = airway_masks(ct, body)
    assert info["carina_slice"] is not None
    left, right, mid, warn = split_lungs(ct, lungs, body)
    assert not warn, warn
    assert abs(mid - float(ras_coordinate(ct, 0)[trachea].mean())) < 1e-3  # the trachea's midline
    assert not ((left | right) & (trachea | bronchi)).any(), "trachea/bronchus voxels counted as lung"
    s_ax = anatomical_axes(ct)["S"][0]
    sl = [slice(None)] * 3
    sl[s_ax] = info["carina_slice"]
    sl = tuple(sl)
    x, y = ras_coordinate(ct, 0)[sl], ras_coordinate(ct, 1)[sl]
    air_y = y[(trachea | bronchi)[sl]]
    band = (y >= air_y.min() - 10.0) & (y <= air_y.max() + 10.0)
    # within 5 mm of the midline the right lung's azygo-oesophageal recess may reach (and the
    # midline, the trachea's centre, is itself known to a few mm); beyond it lie the subcarinal
    # space and the left main bronchus (lumen ~12 mm across: Breatnach et al., AJR 1984)
    wrong = right[sl] & band & (x < mid - 5.0)
    assert not wrong.any(), (f"{int(wrong.sum())} right-lung voxels up to "
                             f"{mid - x[wrong].min():.1f} mm left of the midline at the carina")
