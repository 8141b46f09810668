"""Arms down at the sides are the patient's (new-user trial 33 M3): on the TotalSegmentator DICOM
example (upper abdomen, arms beside the trunk, apart from it in every slice) the arms are body
and their humeri a bone label; the table under the patient, whose carbon and rails are as dense
as bone at its surface, stays out. Reference: TotalSegmentator's own segmentation of the series."""

import json

import numpy as np
import pytest
from scipy import ndimage

from imagio.io import read_image
from imagio.segmentation.rules import segment_masks

pytestmark = pytest.mark.data


def _ref_on(ct, path):
    """A reference label map resampled (nearest neighbour, physical space) onto ``ct``'s grid."""
    import SimpleITK as sitk

    from imagio.io import volume_to_sitk

    ref = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(sitk.Resample(ref, volume_to_sitk(ct), sitk.Transform(),
                                                sitk.sitkNearestNeighbor, 0))


def test_arms_down_are_body_and_their_humeri_bone(shared_data):
    d = shared_data / "totalsegmentator-example"
    ct = read_image(d / "example_ct_dicom")
    masks, _ = segment_masks(ct, ["body", "bones", "lungs", "airways"], lungs_optional=True)
    ref = _ref_on(ct, d / "example_seg_dicom.nii.gz")
    names = {v: int(k) for k, v in json.loads((d / "labels_total_v2.json").read_text()).items()}
    body = masks["body"] | masks["vertebrae"] | masks["ribs"] | masks["bone"]
    allbone = masks["vertebrae"] | masks["ribs"] | masks["bone"]
    for side in ("humerus_left", "humerus_right"):
        h = ref == names[side]
        assert h.sum() * ct.voxel_volume_ml > 10.0, side
        assert (body & h).sum() >= 0.98 * h.sum(), side
        assert (allbone & h).sum() >= 0.80 * h.sum(), side
    # every piece of the body holds the trunk (its vertebrae) or an arm (a humerus): the table
    # is not the patient's
    lab, n = ndimage.label(body)
    spine = np.isin(ref, [v for k, v in names.items() if k.startswith("vertebrae")])
    held = spine | np.isin(ref, [names["humerus_left"], names["humerus_right"]])
    pieces = np.bincount(lab[held & (lab > 0)], minlength=n + 1)[1:]
    sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    assert np.all((pieces > 0) | (sizes * ct.voxel_volume_ml < 1.0)), (pieces, sizes)
