"""The chest CTA's dissected descending and abdominal aorta (issue 14, new-user trial): its false
lumen (200-330 HU, below the pool's band and below arterial-phase ``min_blood_peak_hu``) is part
of the contrast blood pool (great_vessels), not ``body``; at 3 mm slices (the CTA resampled with
SimpleITK) the abdominal aorta is not labelled ``vertebrae``, and the vertebrae away from it
stay vertebrae.

Independent reference (the aorta's own geometry, not the segmenter's rules): per axial slice at
RAS S 541-572 mm (below the diaphragm, where the false lumen is enhanced), the 4-connected
component of enhanced blood (200-600 HU on the CT smoothed by a Gaussian of one voxel: the
false lumen's noise) that holds the false lumen's point at RAS (0, 137) mm, if under 8 cm^2 (a
round lumen of <= 32 mm, not the heart), opened by a disk of 5 mm radius (the aorta is >= 20 mm
across; its branch arteries, <= 8 mm, drop out)."""

import numpy as np
import pytest
from scipy import ndimage

from imagio import io
from imagio.segmentation.common import dilate_mm
from imagio.volume import Volume

pytestmark = [pytest.mark.data, pytest.mark.slow]

STRUCTS = ("body", "bones", "lungs", "airways", "vessels")


def _aorta(ct):
    a = ndimage.gaussian_filter(np.asarray(ct.array, np.float32), 1.0)
    out = np.zeros(a.shape, bool)
    r = int(round(5.0 / ct.spacing[0]))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disk = xx ** 2 + yy ** 2 <= r * r
    ijk = np.linalg.solve(ct.ijk_to_ras, np.array([0.0, 137.0, 0.0, 1.0]))
    for k in range(a.shape[0]):
        s = ct.kji_to_world(np.array([[k, 0, 0]]))[0, 2]
        if not 541.0 <= s <= 572.0:
            continue
        j, i = int(round(ijk[1])), int(round(ijk[0]))
        lab, _ = ndimage.label((a[k] >= 200) & (a[k] <= 600))
        c = lab[j, i]
        if c and (lab == c).sum() * ct.spacing[0] * ct.spacing[1] < 800.0:
            # the round lumen without its branch arteries (celiac trunk, SMA: <= 8 mm across)
            out[k] = ndimage.binary_opening(lab == c, disk)
    return out


def _inplane_core(m):
    st = np.zeros((3, 3, 3), bool)
    st[1] = ndimage.generate_binary_structure(2, 1)
    return ndimage.binary_erosion(m, st)


@pytest.fixture(scope="module")
def cta():
    from conftest import shared_case
    f = shared_case("totalsegmentator-chest-cta", "chest_cta.nii.gz")
    from imagio.segmentation.rules import segment_masks
    ct = io.read_image(f)
    ao = _aorta(ct)
    m, meta = segment_masks(ct, STRUCTS)
    return f, ct, ao, m, meta


def test_the_false_lumen_is_great_vessels_at_native_resolution(cta):
    _, ct, ao, m, _ = cta
    assert ao.sum() * ct.voxel_volume_ml > 5.0         # the round lumen is found on the slices
    gv = m["great_vessels"]
    # main: 0.11 of the lumen (the true lumen's crescent above S 556 mm only)
    assert gv[_inplane_core(ao)].mean() >= 0.9
    assert gv[ao].mean() >= 0.85
    # the vertebral bodies' cortex is not taken into the pool (tissue above 700 HU in the pool lies
    # on the vein of undiluted contrast, `test_undiluted_vein_is_great_vessels`, not by the spine)
    assert not (gv & m["vertebrae"]).any()
    near = dilate_mm(m["vertebrae"], 10.0, ct.spacing_kji)
    assert (gv & (np.asarray(ct.array) > 700) & near).sum() * ct.voxel_volume_ml < 1.0


def test_at_3mm_the_abdominal_aorta_is_not_vertebrae(cta, tmp_path):
    import SimpleITK as sitk
    from imagio.segmentation.rules import segment_masks
    f, ct, ao, m, _ = cta
    img = sitk.ReadImage(str(f))
    size = [int(round(n * s / 3.0)) for n, s in zip(img.GetSize(), img.GetSpacing())]
    coarse = sitk.Resample(img, size, sitk.Transform(), sitk.sitkLinear, img.GetOrigin(), (3.0, 3.0, 3.0),
                           img.GetDirection(), -1024.0, img.GetPixelID())
    p = tmp_path / "cta_3mm.nii.gz"
    sitk.WriteImage(coarse, str(p))
    ct3 = io.read_image(p)
    m3, _ = segment_masks(ct3, STRUCTS)

    def on3(mask):
        return Volume(mask.astype(np.uint8), ct.ijk_to_ras).resample_like(ct3, order=0).array > 0

    ao3 = _inplane_core(on3(ao))
    assert ao3.sum() * ct3.voxel_volume_ml > 2.0
    # main: 0.99 of the lumen's core named vertebrae at 3 mm
    assert m3["vertebrae"][ao3].mean() < 0.02
    assert m3["great_vessels"][ao3].mean() >= 0.8
    # the native run's vertebrae (their core) are not taken into the pool at 3 mm
    vert3 = _inplane_core(on3(m["vertebrae"]))
    assert (m3["great_vessels"] & vert3).sum() * ct3.voxel_volume_ml < 1.0


def test_undiluted_vein_and_skin_electrodes_are_not_bone(cta):
    """New-user trial 71 (MED): the right subclavian/axillary vein with undiluted contrast, and the
    ECG electrodes on the skin, were labelled bone. Independent reference: the vein is the largest
    26-connected component above 1,200 HU (29.7 mL, RAS S 669-825 mm; cortex above 1,200 HU is a
    thin shell broken by marrow and joints); the electrodes are the CT's densest voxels (> 2,500
    HU) at the two points the trial gave. Main: 1,572 vein voxels (5.3 mL) in bone labels, a
    'bone' piece of 11.4 mL at least half within 4 mm of the vein, both electrodes 'bone'."""
    from imagio.segmentation.common import components, dilate_mm
    _, ct, _, m, meta = cta
    a = np.asarray(ct.array)
    ml = ct.voxel_volume_ml
    lab, n, cnt = components(a > 1200, connectivity=26)
    cnt[0] = 0
    vein = lab == int(np.argmax(cnt))
    r = ct.kji_to_world(np.argwhere(vein))
    assert 20.0 < vein.sum() * ml < 40.0 and r[:, 2].max() - r[:, 2].min() > 100.0
    bone = m["vertebrae"] | m["ribs"] | m["bone"]
    assert (vein & bone).sum() * ml < 1.0, (vein & bone).sum() * ml     # its contacts with bone only
    near = dilate_mm(vein, 4.0, ct.spacing_kji)
    for name in ("vertebrae", "ribs", "bone"):
        pl, pn, pc = components(m[name], connectivity=26)
        share = np.bincount(pl[near & m[name]], minlength=pn + 1) / np.maximum(pc, 1)
        assert not ((share[1:] >= 0.5) & (pc[1:] * ml >= 0.5)).any(), (name, pc[1:][share[1:] >= 0.5] * ml)
    # the bone it touches stays: the right scapula and humerus, one piece of > 95 mL (103 mL on main)
    pl, pn, pc = components(m["bone"], connectivity=26)
    assert pc[1:].max() * ml > 95.0
    inv = np.linalg.inv(ct.ijk_to_ras)
    for p in ((-127.0, 244.0, 582.0), (153.0, 210.0, 558.0)):
        k = np.round((inv[:3, :3] @ p + inv[:3, 3])[::-1]).astype(int)
        box = tuple(slice(max(x - 4, 0), x + 5) for x in k)
        assert a[box].max() > 2500
        assert not bone[box].any(), p
    w = " ".join(meta["warnings"])
    assert "dense object(s) on the skin" in w and "undiluted contrast" in w and "not labelled bone" in w


def test_undiluted_vein_is_great_vessels(cta):
    """Issue 14: the vein of undiluted contrast on the injection side (superior vena cava,
    brachiocephalic and subclavian vein, the right atrium's swirls: 1,000-3,261 HU) was left
    unlabelled ('body', 107 mL with its rim), and the planner called it "bone, calcification or
    metal"; it is part of the contrast blood pool (great_vessels), with its partial-volume rim, and
    no bone is taken into it. Independent reference: the thick dense lumens, 26-connected pieces of
    the CT smoothed over one voxel (Gaussian) above 700 HU that hold a ball of 2 mm radius (a lumen
    >= 4 mm across: cortex, 0.5-2 mm, does not hold it even blurred), of at least 1 mL; each is
    bone or vessel: >= 90 % of it in the bone labels or in great_vessels (main: the 46.8 and
    14.7 mL venous pieces 0 % in either); and the largest component above 1,200 HU (29.7 mL, the
    subclavian/brachiocephalic vein) is >= 90 % great_vessels (main: 0 %)."""
    from imagio.segmentation.common import components, open_mm
    _, ct, _, m, meta = cta
    a = np.asarray(ct.array)
    ml = ct.voxel_volume_ml
    gv = m["great_vessels"]
    bone = m["vertebrae"] | m["ribs"] | m["bone"] | m["costal_cartilages"]
    assert not (gv & bone).any()                    # no bone voxel in the vessel label
    thick = open_mm(ndimage.gaussian_filter(a.astype(np.float32), 1.0) > 700, 2.0, ct.spacing_kji)
    lab, n, cnt = components(thick, connectivity=26)
    share_gv = np.bincount(lab[gv], minlength=n + 1) / np.maximum(cnt, 1)
    share_bone = np.bincount(lab[bone], minlength=n + 1) / np.maximum(cnt, 1)
    big = np.flatnonzero(cnt * ml >= 1.0)
    big = big[big > 0]
    said = list(zip(np.round(cnt[big] * ml, 2), np.round(share_gv[big], 2), np.round(share_bone[big], 2)))
    assert (share_gv[big] >= 0.9).sum() >= 2, said      # the vein and the atrium's swirls
    assert np.all(np.maximum(share_gv[big], share_bone[big]) >= 0.9), said
    vl, _, vc = components(a > 1200, connectivity=26)
    vc[0] = 0
    vein = vl == int(np.argmax(vc))
    assert gv[vein].mean() >= 0.9, gv[vein].mean()
    # said: the pool holds it (mL with its rim), and the bone note says where it went
    assert meta["great_vessels"]["undiluted_vein_ml"] > vein.sum() * ml
    w = " ".join(meta["warnings"])
    assert "is labelled great_vessels with its partial-volume rim" in w
    assert "superior vena cava, brachiocephalic and subclavian vein, right atrium) are in it" in w


def test_azygos_arch_and_vena_cava_wall_are_not_bone(cta):
    """Fresh-user trial 78: 2.1 mL of the superior vena cava's wall and the azygos arch (contrast,
    median 351 HU, max 2,316 HU) were 'bone', the lower part of a 'bone' piece that runs on up out
    of the mediastinum: a point clicked in the azygos arch was "inside bone: bone biopsy", a plan
    to the lung beside it listed bone 8 mm away, and the vessel's 5 mm margin was lost there.
    Independent reference: the two points the trial clicked (RAS mm), the azygos arch and the right
    lung beside it, whose nearest bone on the images (the vertebrae and the rib heads) is about
    27 mm away; the mediastinum holds no bone (Gray's Anatomy). Main: the arch point is 'bone',
    the lung point 8.7 mm from a bone label."""
    _, ct, _, m, _ = cta
    bone = m["vertebrae"] | m["ribs"] | m["bone"] | m["costal_cartilages"]
    for ras, label in (((23.7, 143.2, 727.7), "great_vessels"), ((23.7, 147.7, 736.7), "lung_right")):
        k, j, i = np.round(np.linalg.solve(ct.ijk_to_ras, np.array([*ras, 1.0]))[:3][::-1]).astype(int)
        assert m[label][k, j, i], (ras, label)
        r = int(np.ceil(20.0 / min(ct.spacing)))   # no bone label within 20 mm of the point
        box = tuple(slice(max(c - r, 0), c + r + 1) for c in (k, j, i))
        kk, jj, ii = np.nonzero(bone[box])
        d = np.sqrt((((np.c_[kk, jj, ii] + [b.start for b in box] - [k, j, i]) * ct.spacing_kji) ** 2).sum(1))
        assert d.size == 0 or d.min() > 20.0, (ras, float(d.min()))
    assert not (m["great_vessels"] & bone).any()
