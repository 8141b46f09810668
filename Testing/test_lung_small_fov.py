"""Lungs on a field of view that lies inside the chest (audit fov3, issue 14): a targeted
reconstruction, a small square centred in one lung, shows no skin and no outside air. The body's
outline in an axial slice is then only the tissue in view, so the lung cut by every face was
judged outside the body and the lungs refused ("no air-like region inside the body", "pockets
under 5 mL": the chest CTA cut to 80 mm squares centred in each lung, 873 and 1,010 mL of lung
in view). A slice whose edge shows no pure air lies inside the patient (`body._inside_slices`);
vessels cut by the faces no longer leave the parenchyma between them and the face out
(`lungs.lung_mask`): the CTA's 80 mm squares now give 0.95-0.96 of the uncropped lungs there.

Truth: the synthetic chest (`synthetic_ct`; right lung an ellipsoid centred at RAS x = 60 mm,
y = 5 mm, here with two 8 mm vessels along z through it, which are lung: the lung mask holds its
vessels) on an oblique, anisotropic grid, cropped to a 56 mm square (in the grid's plane) in
the right lung over the whole z range: above and below the lung the view is soft tissue, and
in between lung alone."""

import numpy as np
import pytest

from conftest import rotation
from imagio.segmentation.common import ras_coordinate
from imagio.segmentation.rules import segment_masks
from synthetic_ct import make_ct


@pytest.mark.slow
def test_small_fov_inside_one_lung_keeps_that_lung():
    d = rotation((1, 2, 3), 8.0) @ np.diag([-1.0, 1.0, 1.0])
    ct, truth = make_ct(spacing=(2.2, 1.9, 2.5), direction=d)
    # two vessels crossing the lung along z, joined to the tissue above and below it (real
    # lungs hold a vessel tree: the only tissue in view in the lung's slices)
    x, y, z = (np.broadcast_to(ras_coordinate(ct, a), ct.shape) for a in range(3))
    vessels = (np.hypot(x - 52.0, y + 2.0) <= 4.0) | (np.hypot(x - 68.0, y - 12.0) <= 4.0)
    vessels &= truth["body"]
    arr = ct.array.copy()
    arr[vessels] = 40
    ct = ct.with_array(arr)
    centre = ct.world_to_kji(np.array([[60.0, 5.0, 25.0]]))[0].round().astype(int)
    half = np.round(28.0 / ct.spacing_kji).astype(int)
    lo, hi = [0, 0, 0], list(ct.shape)
    for a in (1, 2):                       # the in-plane axes of this grid (k is nearest S)
        lo[a], hi[a] = int(centre[a] - half[a]), int(centre[a] + half[a] + 1)
    c = ct.crop(lo, hi)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    want = truth["lung_right"][sl]
    v = c.voxel_volume_ml
    assert want.sum() * v > 100.0
    m, meta = segment_masks(c, ["body", "lungs"])
    right, left = m["lung_right"], m["lung_left"]
    assert right.sum() == pytest.approx(want.sum(), rel=0.05), (round(float(right.sum() * v), 1),
                                                                 round(float(want.sum() * v), 1))
    assert (right & want).sum() >= 0.95 * want.sum()
    assert left.sum() * v <= 0.5, round(float(left.sum() * v), 2)   # nothing on the wrong side
    assert not (right & ~m["body"]).any()
