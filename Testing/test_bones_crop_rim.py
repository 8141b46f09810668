"""Bone labels do not depend on where the field of view is cut (issue 14, trial 62 L1).

On a CT angiography the floor of the bone's partial-volume edge was half-way between the bone
threshold and the whole view's deep-tissue percentile, which follows which enhanced tissue the
view holds (the chest CTA: 158 HU whole, 93 HU its upper half), not the tissue beside the bone:
the upper half labelled 132 mL more bone than the whole scan in the same voxels, the right half
66 mL. The floor is now the half maximum between the bone and the soft tissue beside each voxel
(`bones.edge_half_max_hu`), read in boxes of fixed size in mm."""

import numpy as np
import pytest

from imagio import io
from imagio.segmentation.common import anatomical_axes, crop_slices, field_of_view_crops
from imagio.segmentation.rules import segment_masks

pytestmark = [pytest.mark.data, pytest.mark.slow]

LABELS = ("vertebrae", "ribs", "bone")
CUT_MM = 15.0  # voxels this close to a cut face are not compared (a vertebra cut by the view)


def _bone(ct):
    m, _ = segment_masks(ct, ["body", "lungs", "bones"])
    out = np.zeros(m["body"].shape, bool)
    for k in LABELS:
        out |= m[k]
    return out


@pytest.fixture(scope="module")
def cta():
    from conftest import SHARED_DATA
    path = SHARED_DATA / "totalsegmentator-chest-cta" / "chest_cta.nii.gz"
    if not path.exists():
        pytest.skip("chest CTA not present")
    ct = io.read_image(path)
    return ct, _bone(ct)


def _crop(ct, name):
    if name in ("upper_half", "lower_half"):
        s, sign = anatomical_axes(ct)["S"]
        n = ct.shape[s]
        sl = [slice(None)] * 3
        sl[s] = slice(n // 2, n) if (sign > 0) == (name == "upper_half") else slice(0, n // 2)
        return tuple(sl)
    return field_of_view_crops(ct)[name]


@pytest.mark.parametrize("name", ["upper_half", "lower_half", "right_half", "left_half"])
def test_chest_cta_crop_bone_matches_whole(cta, name):
    """The chest CTA (1.5 mm) and a half of it (along S, along L-R; the grid kept): in the half's
    voxels more than ``CUT_MM`` from a cut face, the bone labels the half adds and the ones it
    loses are each within 10 % (issue 14's tolerance) of the whole run's bone there. Measured,
    extra / lost mL of the whole run's bone there: main 2263229 upper 131.8 / 17.9 of 541.0,
    right 66.1 / 5.2 of 289.2 (fail); with `edge_half_max_hu` upper 0.2 / 21.6 of 503.7, lower
    0.1 / 0.7 of 226.2, right 0.8 / 4.7 of 267.4, left 0.7 / 11.7 of 271.9."""
    ct, whole = cta
    sl = _crop(ct, name)
    got, want = _bone(crop_slices(ct, sl)), whole[sl]
    far = np.ones(got.shape, bool)
    for a in range(3):
        k = int(np.ceil(CUT_MM / ct.spacing_kji[a]))
        if sl[a].start not in (None, 0):
            far[(slice(None),) * a + (slice(0, k),)] = False
        if sl[a].stop not in (None, ct.shape[a]):
            far[(slice(None),) * a + (slice(got.shape[a] - k, None),)] = False
    v = ct.voxel_volume_ml
    extra, lost = (got & ~want & far).sum() * v, (want & ~got & far).sum() * v
    ref = (want & far).sum() * v
    assert ref > 100.0
    assert extra <= 0.10 * ref and lost <= 0.10 * ref, (round(float(extra), 1), round(float(lost), 1),
                                                        round(float(ref), 1))
