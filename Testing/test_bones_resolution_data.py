"""Bone volumes of one real CT at its native grid and at 3 mm (issue 14: volumes at 0.7, 1.5 and
3 mm of the same case agree within 10 %).

lung1 (pyradiomics, 0.57 x 0.57 x 5 mm, no contrast) is resampled to 3 mm isotropic as a scanner
or a pipeline would: each axis made coarser is first blurred by the new voxel's box less the old
one (a Gaussian of variance (t^2 - s^2) / 12 mm^2), then linearly interpolated. The image is the
same patient, so ribs, vertebrae and all bone together must keep their volume within 10 %.
Measured on 37bd7c4: ribs 0.80, other bone 0.86, bones 0.88 of native (the soft-tissue level
under the bone threshold read cancellous bone, 89 vs 129 HU); on res6: vertebrae 1.03, ribs 0.99,
other bone 1.06, bones 1.03.
Costal cartilage is not held to 10 %: its rule measures it against the deep tissue's 95th
percentile, which the bone's partial volume raises by a grid-dependent amount; where that
happens the segmenter must say so (37bd7c4: 46 mL at native, 12 mL at 3 mm, no word)."""

import numpy as np
import pytest
from scipy import ndimage

from imagio import io
from imagio.segmentation import rules
from imagio.volume import Volume

pytestmark = [pytest.mark.data, pytest.mark.slow]


def _at_3mm(ct: Volume) -> Volume:
    s = np.asarray(ct.spacing_kji, float)
    t = np.full(3, 3.0)
    sigma = np.sqrt(np.maximum(t * t - s * s, 0.0) / 12.0) / s
    blurred = Volume(ndimage.gaussian_filter(ct.array.astype(np.float32), sigma), ct.ijk_to_ras,
                     scanner_coordinates=ct.scanner_coordinates)
    return blurred.resampled((3.0, 3.0, 3.0), order=1)


def _volumes(ct: Volume):
    m, meta = rules.segment_masks(ct, ["body", "lungs", "bones"])
    ml = ct.voxel_volume_ml
    v = {k: float(m[k].sum()) * ml for k in ("vertebrae", "ribs", "bone", "costal_cartilages")}
    v["bones"] = float((m["vertebrae"] | m["ribs"] | m["bone"]).sum()) * ml
    v["body"] = float(m["body"].sum()) * ml
    v["lungs"] = float((m["lung_left"] | m["lung_right"]).sum()) * ml
    return v, meta["warnings"]


def test_lung1_bone_volumes_hold_at_3mm(shared_data):
    ct = io.read_image(shared_data / "pyradiomics-lung" / "lung1_image.nrrd")
    native, _ = _volumes(ct)
    coarse, warnings = _volumes(_at_3mm(ct))
    for k in ("body", "lungs", "vertebrae", "ribs", "bone", "bones"):
        assert coarse[k] == pytest.approx(native[k], rel=0.10), (k, native[k], coarse[k])
    # cartilage: within 10 %, or a warning that its volume depends on the grid here
    if coarse["costal_cartilages"] != pytest.approx(native["costal_cartilages"], rel=0.10):
        assert any("costal cartilages" in w and "grid" in w for w in warnings), warnings
