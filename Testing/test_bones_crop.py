"""Bone on a cut field of view: every bone the uncropped chest CTA shows lateral to the lungs'
midline stays bone in a crop. A crop changes the HU histogram the contrast rules read (a
hemithorax holds only the venae cavae and right atrium of the blood pool); a rule that then
drops the ribs leaves them unlabelled, and the needle planner routes through them (new-user
trial 5: 57 mL of lateral ribs lost on the right hemithorax, R > 25 mm, all three proposals
through a rib).

Measured share of the uncropped lateral bone (|R| > 60 mm, 5 voxels away from the cut faces) kept
in each crop: right half 0.979, left half 0.908, half z 0.967, small FOV 0.911, right hemithorax
R > 25 mm 1.000; the reverted seg4 rules gave 0.765 on the last. Bound 0.88: the left-half and
small-FOV losses (9 %) are not yet explained (open)."""

import numpy as np
import pytest

from imagio import io
from imagio.segmentation.body import body_mask
from imagio.segmentation.bones import bone_mask
from imagio.segmentation.common import anatomical_axes, crop_slices, field_of_view_crops

pytestmark = pytest.mark.data


def _r_of_index(ct, axis):
    """RAS R coordinate (mm) of each index along ``axis`` at the volume's centre."""
    n = ct.shape[axis]
    kji = np.tile(np.array(ct.shape, float) / 2, (n, 1))
    kji[:, axis] = np.arange(n)
    return ct.ijk_to_world(kji[:, ::-1])[:, 0]


def _hemithorax(ct, lr, r, keep_r):
    sl = [slice(None)] * 3
    keep = np.nonzero(keep_r)[0]
    sl[lr] = slice(int(keep.min()), int(keep.max()) + 1)
    return tuple(sl)


def test_lateral_bone_survives_every_crop(shared_data):
    ct = io.read_image(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz")
    lr = anatomical_axes(ct)["R"][0]
    r = _r_of_index(ct, lr)
    crops = dict(field_of_view_crops(ct))
    crops["right_hemithorax_R_gt_25mm"] = _hemithorax(ct, lr, r, r > 25.0)
    _check_crops(ct, lr, r, crops)


@pytest.mark.xfail(strict=True, reason="open defect (new-user trial 6): the left hemithorax (R < -13.8 mm) "
                   "keeps 0.838 of the lateral bone; a plan on it crossed a rib. Cause not yet found")
def test_lateral_bone_survives_left_hemithorax_crop(shared_data):
    ct = io.read_image(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz")
    lr = anatomical_axes(ct)["R"][0]
    r = _r_of_index(ct, lr)
    _check_crops(ct, lr, r, {"left_hemithorax_R_lt_-13.8mm": _hemithorax(ct, lr, r, r < -13.8)})


def _check_crops(ct, lr, r, crops):
    ref = bone_mask(ct, body_mask(ct))
    shape = [1, 1, 1]
    shape[lr] = -1
    lateral = (np.abs(r) > 60.0).reshape(shape)   # lateral to the mediastinum: ribs, scapulae
    for name, s in crops.items():
        c = crop_slices(ct, s)
        got = bone_mask(c, body_mask(c))
        want = ref[s] & np.broadcast_to(lateral, ref.shape)[s]
        # away from the crop's cut faces (5 voxels): the body and bone rules see cut anatomy there
        inner = np.zeros(want.shape, bool)
        inner[5:-5, 5:-5, 5:-5] = True
        want &= inner
        kept = (got & want).sum() / max(int(want.sum()), 1)
        assert want.sum() * ct.voxel_volume_ml > 20.0, name
        assert kept >= 0.88, (name, round(float(kept), 3), round(float(want.sum() * ct.voxel_volume_ml), 1))
