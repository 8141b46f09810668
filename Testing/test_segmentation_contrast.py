"""Contrast detection that a field of view cannot cut away (new-user trial 3, defect G1).

The chest CTA cropped to the patient's right hemithorax (R > 25 mm) holds only the venae cavae
and the right atrium (~25 mL of blood pool); the old detector wanted 3 mL of thick pool voxels
per 20 HU bin, missed the contrast, and labelled the pool bone / vertebrae and wrote costal
cartilage on a contrast scan. Contrast is now decided from the mode's density, shape and
coherence (`bones.contrast_blood_band`). Independent checks: the thick contrast lumen (voxels of
350-650 HU at least 6 mm inside such tissue, scipy's exact EDT) never lies in a bone label; the
phantom's own blood-pool labels (arterial phase) never lie in a bone label, in every crop."""

import numpy as np
import pytest
from scipy import ndimage

from imagio import io
from imagio.segmentation import rules
from imagio.segmentation.body import body_mask
from imagio.segmentation.bones import contrast_blood_band
from imagio.segmentation.common import anatomical_axes, crop_slices, field_of_view_crops, ras_coordinate

BONE_LABELS = ("vertebrae", "ribs", "bone", "costal_cartilages")


def _bone(m, shape):
    out = np.zeros(shape, bool)
    for k in BONE_LABELS:
        if k in m:
            out |= m[k]
    return out


def _deep_lumen(c):
    """Thick contrast lumen, independent of the code under test: 350-650 HU voxels at least
    6 mm inside such tissue (scipy's exact EDT)."""
    lumen = (c.array > 350) & (c.array < 650)
    return ndimage.distance_transform_edt(lumen, sampling=c.spacing_kji) >= 6.0


@pytest.mark.data
def test_cta_hemithorax_crops_keep_the_contrast(shared_data):
    ct = io.read_image(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz")
    x = ras_coordinate(ct, 0)
    r_axis = anatomical_axes(ct)["R"][0]  # array axis along left-right
    keep = np.flatnonzero(np.any(x > 25.0, axis=tuple(a for a in range(3) if a != r_axis)))
    sl = [slice(None)] * 3
    sl[r_axis] = slice(int(keep[0]), int(keep[-1]) + 1)
    hemi = crop_slices(ct, tuple(sl))  # the patient's right hemithorax, as in the trial
    sub = field_of_view_crops(hemi)
    # a small FOV: a 90 mm cube around the thick contrast lumen of the hemithorax (SVC, atrium)
    centre = np.round(ndimage.center_of_mass(_deep_lumen(hemi))).astype(int)
    half = np.round(45.0 / hemi.spacing_kji).astype(int)
    small = tuple(slice(max(int(c0 - h), 0), int(c0 + h)) for c0, h in zip(centre, half))
    # the 90 mm FOV holds too little lung for the lung rule ("vessels" needs the lungs): bones only
    for name, c, s in (("hemithorax", hemi, ["body", "bones", "vessels"]),
                       ("hemithorax half z", crop_slices(hemi, sub["half_z"]), ["body", "bones", "vessels"]),
                       ("hemithorax 90 mm FOV", crop_slices(hemi, small), ["body", "bones"])):
        m, meta = rules.segment_masks(c, s)
        deep = _deep_lumen(c) & m["body"]
        assert deep.sum() * c.voxel_volume_ml > 0.5, name  # some thick contrast lumen is in view
        if "vessels" in s:
            assert "great_vessels" in m, (name, meta["warnings"])
            assert (m["great_vessels"] & deep).sum() >= 0.9 * deep.sum(), name
        assert not (_bone(m, c.shape) & deep).any(), name
        assert contrast_blood_band(c.array, m["body"], c.voxel_volume_ml, c.spacing_kji) is not None, name
        assert not m["costal_cartilages"].any(), name
        if m["ribs"].any():  # cartilage is looked for next to ribs only
            assert any("costal cartilages not segmented" in w for w in meta["warnings"]), name


def test_arterial_phantom_pool_never_bone_in_any_crop():
    """The arterial-phase phantom (left heart / aorta ~330 HU above the right heart / pulmonary
    artery ~260 HU): its blood-pool labels stay out of every bone label, uncropped and in each
    standard crop. Before, half the z range lost 51 mL of right-heart blood to 'ribs'/'bone'
    (the tissue level was taken from the pool itself)."""
    from imagio import phantom

    ph = phantom.generate(spacing=3.0, phase="arterial")
    names = ph.labels.labels
    pool_ids = [v for v, n in names.items()
                if n in ("aorta", "pulmonary_artery", "superior_vena_cava", "heart")]
    pool = np.isin(ph.labels.array, pool_ids) & (ph.ct.array > 200)  # blood, not myocardium
    for name, sl in [("full", (slice(None),) * 3)] + list(field_of_view_crops(ph.ct).items()):
        c = crop_slices(ph.ct, sl)
        m, _ = rules.segment_masks(c, ["body", "bones", "vessels"])
        assert "great_vessels" in m, name
        bad = (_bone(m, c.shape) & pool[sl]).sum() * c.voxel_volume_ml
        assert bad <= 1.0, (name, bad)


@pytest.mark.data
def test_dense_trabecular_bone_is_not_contrast(shared_data):
    """STS_010 (a knee without contrast): the femoral condyles' trabecular bone forms a uniform
    ~300 HU mode of thick voxels, denser than min_blood_peak_hu; below max_trabecular_hu (the
    densest trabecular bone, Jang et al. 2019) such a mode must be large to count as a pool,
    and is not."""
    c = io.read_image(shared_data / "sts-sarcoma" / "STS_010" / "CT_image.nii.gz")
    for name, sl in [("full", (slice(None),) * 3)] + list(field_of_view_crops(c).items()):
        cc = crop_slices(c, sl)
        assert contrast_blood_band(cc.array, body_mask(cc), cc.voxel_volume_ml,
                                   cc.spacing_kji) is None, name
