"""Body and lungs on a reformat of a cropped chest (audit fov2): the resampler's padding (one
exact fill value beyond the source) lies where the source's field of view ended, so it is no air
of the patient's surroundings and no face of the patient. Before, a lung cut by the source's view
was joined through the padding to the air outside the chest and left out of the body (the chest
CTA's anterior half tilted 15 degrees: 0 of 1,796 mL of lung, refused as "no lungs"), and a
hemithorax whose cut side lies against padding was taken as a body wholly in view, its centre
as the midline (the CTA's left half, 10 mm short of the trachea, tilted: main lost half the lung
and labelled 566 mL lung_right with no side warning; with the lung kept but this midline, all
1,650 mL were lung_right).

Truth: the synthetic chest (`synthetic_ct`), cut to its left half (RAS x < -12 mm: the trachea
out of view), reformatted on a grid tilted 15 degrees about an oblique axis, i flipped,
anisotropic, fill -1024 HU; its lung_left truth mask resampled the same way (nearest)."""

import numpy as np
import pytest

from conftest import rotation
from imagio.segmentation.common import ras_coordinate
from imagio.segmentation.rules import segment_masks
from imagio.volume import Volume, make_ijk_to_ras
from synthetic_ct import make_ct


def _reformat(vol: Volume, degrees: float, spacing=(2.1, 1.9, 2.6)):
    d = rotation((1, 2, 3), degrees) @ np.diag([-1.0, 1.0, 1.0])
    n = np.array(vol.shape[::-1])
    corners = np.array([[i, j, k] for i in (0, n[0] - 1) for j in (0, n[1] - 1) for k in (0, n[2] - 1)], float)
    local = vol.ijk_to_world(corners) @ d
    lo, hi = local.min(0), local.max(0)
    sp = np.asarray(spacing, float)
    shape = np.ceil((hi - lo) / sp).astype(int) + 1
    ref = Volume(np.zeros(tuple(shape[::-1]), np.uint8), make_ijk_to_ras(sp, d @ lo, d))
    return ref


@pytest.mark.slow
def test_left_half_of_a_chest_reformatted_keeps_its_lung_on_its_side():
    ct, truth = make_ct(spacing=(2.0, 2.0, 2.0))
    x = np.broadcast_to(ras_coordinate(ct, 0), ct.shape)
    keep_i = np.flatnonzero((x < -12.0).all(axis=(0, 1)))     # the i columns left of x = -12 mm
    assert ct.direction[0, 0] > 0
    crop = ct.crop([0, 0, 0], [ct.shape[0], ct.shape[1], int(keep_i.max()) + 1])
    lung_l = truth["lung_left"][:, :, :int(keep_i.max()) + 1]
    grid = _reformat(crop, 15.0)
    obl = crop.resample_like(grid, order=1, fill=-1024.0)
    want = Volume(lung_l.astype(np.uint8), crop.ijk_to_ras, labels={1: "lung_left"}).resample_like(grid, order=0).array > 0
    m, meta = segment_masks(obl, ["body", "lungs"])
    v = obl.voxel_volume_ml
    left = m.get("lung_left", np.zeros(obl.shape, bool))
    right = m.get("lung_right", np.zeros(obl.shape, bool))
    got = float((left & want).sum() * v)
    total = float(want.sum() * v)
    assert got >= 0.9 * total, (round(got, 1), round(total, 1), meta["warnings"])
    assert float(right.sum() * v) <= 0.02 * total, (round(float(right.sum() * v), 1), meta["warnings"])
    assert ((left | right) & ~m["body"]).sum() == 0
