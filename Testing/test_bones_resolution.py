"""Bone labels of one real case on a thicker reconstruction (issue 14: volumes at 0.7, 1.5 and
3 mm agree within 10 % for body, lungs, bones; new-user trial 40 H4: ribs -30 % at 3 mm on the
chest CTA, -13 % on lung2, without a word). The coarser grid is made as a scanner's thicker
reconstruction is approximated: a Gaussian whose FWHM adds the missing width in quadrature, then
linear resampling (SimpleITK), so each voxel averages its slab as a thick slice does. Each bone
label (ribs, vertebrae, other bone) is compared with the native one in the same region, not
only their sum: a rib lost and a vertebra grown do not cancel."""

import numpy as np
import pytest

from imagio import io
from imagio.segmentation import rules

pytestmark = pytest.mark.data

BONES = ("ribs", "vertebrae", "bone")


def _thick(path, spacing):
    """The CT at ``path`` reconstructed at ``spacing`` (mm, x y z): Gaussian of FWHM
    sqrt(new^2 - old^2) along each coarser axis, then linear resampling over the same box."""
    import SimpleITK as sitk

    im = sitk.ReadImage(str(path))
    osp, sz = np.array(im.GetSpacing()), np.array(im.GetSize())
    sp = np.asarray(spacing, float)
    sigma = np.sqrt(np.maximum(sp ** 2 - osp ** 2, 0.0)) / 2.355
    src = sitk.SmoothingRecursiveGaussian(sitk.Cast(im, sitk.sitkFloat32), np.maximum(sigma, 1e-3).tolist())
    d = np.array(im.GetDirection()).reshape(3, 3)
    corner = np.array(im.GetOrigin()) - d @ (osp / 2)
    ref = sitk.Image([int(n) for n in np.rint(sz * osp / sp)], sitk.sitkFloat32)
    ref.SetSpacing(sp.tolist()), ref.SetDirection(im.GetDirection()), ref.SetOrigin((corner + d @ (sp / 2)).tolist())
    out = sitk.Resample(src, ref, sitk.Transform(), sitk.sitkLinear, -1024.0, sitk.sitkFloat32)
    return io.volume_from_sitk(sitk.Cast(sitk.Round(out), sitk.sitkInt16))


def _bones(ct):
    m, meta = rules.segment_masks(ct, ["body", "lungs", "bones"])
    return {k: m[k].sum() * ct.voxel_volume_ml for k in BONES}, meta["warnings"]


def test_ribs_agree_on_a_thick_reconstruction_without_contrast(shared_data):
    """lung2 (pyradiomics, no contrast, 0.63 x 0.63 x 5 mm) at 3 mm: ribs, vertebrae and other
    bone each within 10 % of the native labels. Before, the ribs lost 13 % (365 vs 418 mL: a thin
    rib's edge reads below the fixed bone threshold on the blurrier grid); `bones.bone_mask`'s
    thin-bone edge now follows the grid's resolution (measured: ribs 416 vs 428 mL, 0.97;
    vertebrae 1.08, other bone 1.09, as before the change 1.05 and 1.08)."""
    path = shared_data / "pyradiomics-lung" / "lung2_image.nrrd"
    ref, _ = _bones(io.read_image(path))
    assert ref["ribs"] > 200
    v, _ = _bones(_thick(path, (3.0, 3.0, 3.0)))
    for k in BONES:
        assert v[k] == pytest.approx(ref[k], rel=0.10), (k, v, ref)


def test_ribs_lost_on_a_thick_contrast_ct_are_warned(shared_data):
    """The chest CTA (1.5 mm) at 3 mm: where the enhanced tissue keeps the bone threshold above
    the density a blurred thin rib reads at, the ribs cannot be kept by density; they then agree
    within 10 % or a warning names the ribs and the expected shortfall. At the native grid no
    such warning. Before: ribs 158 vs 226 mL, no warning; now the same volumes and a warning of
    a shortfall of roughly 36 % (the thin-peak factor 0.64 at its 4.8 x 4.4 x 4.8 mm effective
    resolution)."""
    path = shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz"
    ref, warn = _bones(io.read_image(path))
    assert not [w for w in warn if "ribs underestimated" in w], warn
    v, warn = _bones(_thick(path, (3.0, 3.0, 3.0)))
    named = [w for w in warn if w.startswith("bones: ribs underestimated, by roughly")]
    assert v["ribs"] == pytest.approx(ref["ribs"], rel=0.10) or named, (v, ref, warn)
    # the warning covers the thin cortex of other bone too: a vertebra's cortex blurred below the
    # threshold may read short by up to the warned share, never above the native label by > 10 %
    # (issue 14: at 3 mm main's vertebrae "agreed" at 325 mL only because they held the abdominal
    # aorta, ~44 mL; without it they read ~272 mL, 17 % short, under a warning of ~36 %)
    # The warning's share is the ribs' (thin cortex); a vertebral body is trabecular bone inside a
    # thicker cortex and loses less (review 45 M2: the rib share, ~36 %, was too wide a bound):
    # under the warning at most a fifth short, never above the native label by > 10 %
    short = min(float(named[0].split("by roughly ")[1].split("%")[0]) / 100.0, 0.20) if named else 0.0
    for k in ("vertebrae", "bone"):
        assert v[k] == pytest.approx(ref[k], rel=0.10) or (
            named and (1.0 - short) * ref[k] <= v[k] <= 1.10 * ref[k]), (k, v, ref, named)
