"""Bone is a closed cortical shell around cancellous bone; a contrast-filled vessel is a lumen in a
soft-tissue wall (trial 14 M1/M4, issue 14). A portal-venous aorta (160 HU, above the bone
threshold raised over the enhanced liver) with calcified plates in its wall, lying on a vertebral
body, was labelled vertebrae (TotalSegmentator DICOM example: 17 of 22 mL of the aorta); the
cancellous interior of a vertebral body whose ring is open by a foramen was left unlabelled
(chest CTA: a target inside the body was named "body"). Checked against the phantom's own
geometry, on an oblique anisotropic grid."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import rotation
from imagio.segmentation.bones import bone_mask, split_bones
from imagio.volume import Volume, make_ijk_to_ras


def _phantom(cancellous_hu: float, gap: bool):
    """A trunk slab on an oblique grid (rotated 15 deg about a skew axis, 0.8 x 0.9 x 2 mm):
    soft tissue 40 HU, an enhanced liver (100 HU), a vertebral body (radius 14 mm, 1.5 mm cortex
    of 900 HU around cancellous bone of ``cancellous_hu``) with a neural arch (900 HU) around a
    spinal canal (radius 8 mm, CSF 15 HU), and an aorta (radius 11 mm, blood 160 HU) on the body's
    left anterior face, its wall 1 mm from the cortex, with two calcified plates (600 HU, 1.5 mm
    thick, 40 deg arcs) in its wall. ``gap``: a 5 mm foramen through the body's posterior wall
    into the canal (basivertebral veins). Noise SD 10 HU. Returns the CT, the body mask and the
    phantom's own cancellous interior (farther than 1.5 mm from the cortex), canal (farther than
    2 mm from its wall) and aorta (lumen and wall plates) masks."""
    sp = np.array([0.8, 0.9, 2.0])
    n = np.array([220, 190, 30])
    d = rotation((1, 2, 3), 15.0)
    origin = -d @ (sp * (n - 1) / 2)
    ct = Volume(np.zeros(tuple(n[::-1]), np.float32), make_ijk_to_ras(sp, origin, d))
    k, j, i = np.indices(ct.shape)
    ras = ct.kji_to_world(np.stack([k, j, i], -1).reshape(-1, 3)).reshape(ct.shape + (3,))
    x, y = ras[..., 0], ras[..., 1]
    body = (x / 80.0) ** 2 + ((y + 5.0) / 70.0) ** 2 <= 1.0
    a = np.where(body, 40.0, -1000.0)
    a[((x + 35.0) / 35.0) ** 2 + ((y - 15.0) / 30.0) ** 2 <= 1.0] = 100.0     # liver
    vr = np.hypot(x, y + 35.0)                                                 # vertebral body
    canal_r = np.hypot(x, y + 62.0)
    arch = (canal_r <= 12.0) & (y < -50.0)                                     # pedicles, laminae
    a[arch] = 900.0
    a[canal_r <= 8.0] = 15.0
    canal = canal_r <= 6.0   # the canal farther than 2 mm from its bony wall (its partial volume)
    a[vr <= 14.0] = 900.0
    inner = vr <= 12.5
    a[inner] = cancellous_hu
    if gap:
        a[(np.abs(x) <= 2.5) & (y < -45.0) & (y > -50.5)] = 15.0               # foramen to the canal
    ang = np.radians(45.0)
    cx, cy = 26.0 * np.sin(ang), -35.0 + 26.0 * np.cos(ang)                    # 14 + 1 + 11 mm
    ar = np.hypot(x - cx, y - cy)
    phi = np.degrees(np.arctan2(y - cy, x - cx))
    aorta = ar <= 11.0
    a[aorta] = 160.0
    plate = (ar > 9.5) & aorta & ((np.abs(phi - 60.0) < 20.0) | (np.abs(phi + 20.0) < 20.0))
    a[plate] = 600.0
    a += np.random.default_rng(3).normal(0.0, 10.0, a.shape)
    ct.array[:] = a
    return ct, body, inner & ~(np.hypot(x, y + 35.0) > 11.0), canal, aorta


def test_aorta_on_a_vertebra_is_not_bone():
    """The aorta (lumen and calcified plates) lying on the vertebral body is not bone (<= 3 % of
    it; main labelled 100 % of it: one component with the vertebra, seeded by its plates), while
    the body's cancellous bone at 200 HU (in the bone candidates, not enclosed by denser tissue
    than the aorta is) stays bone (>= 97 %) and is named vertebrae."""
    ct, body, inner, canal, aorta = _phantom(200.0, gap=False)
    bone = bone_mask(ct, body)
    assert (bone & aorta).sum() <= 0.03 * aorta.sum(), (bone & aorta).sum() / aorta.sum()
    assert (bone & inner).sum() >= 0.97 * inner.sum(), (bone & inner).sum() / inner.sum()
    sb = split_bones(ct, bone, body, None, midline=0.0)
    assert (sb["vertebrae"] & inner).sum() >= 0.97 * inner.sum()
    assert not (sb["vertebrae"] & aorta).sum() > 0.03 * aorta.sum()


def test_cancellous_interior_of_an_open_ring_is_vertebra_and_the_canal_stays_open():
    """Cancellous bone of 90 HU (below the bone threshold raised over the enhanced liver) inside a
    vertebral body whose posterior wall has a 5 mm foramen into the canal is labelled vertebrae
    (>= 90 %), and the spinal canal stays unlabelled (<= 2 % of it farther than 2 mm from its
    bony wall): the safety check of `bone_shell.cancellous_in_ring`, which closes the ring over
    gaps of up to ~6 mm (main passes it too: here its marrow rules fill the body; on the chest CTA
    they did not, see the data test below)."""
    ct, body, inner, canal, aorta = _phantom(90.0, gap=True)
    bone = bone_mask(ct, body)
    sb = split_bones(ct, bone, body, None, midline=0.0)
    v = sb["vertebrae"]
    labelled = v | sb["ribs"] | sb["bone"]
    assert (labelled & canal).sum() <= 0.02 * canal.sum(), (labelled & canal).sum() / canal.sum()
    assert (v & inner).sum() >= 0.9 * inner.sum(), (v & inner).sum() / inner.sum()


def _ref_on(ct, path):
    """A reference label map resampled (nearest neighbour, physical space) onto ``ct``'s grid."""
    import SimpleITK as sitk

    from imagio.io import volume_to_sitk

    ref = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(sitk.Resample(ref, volume_to_sitk(ct), sitk.Transform(),
                                                sitk.sitkNearestNeighbor, 0))


@pytest.mark.data
@pytest.mark.slow
def test_ts_dicom_aorta_is_not_vertebrae(shared_data):
    """TotalSegmentator's DICOM example (upper abdomen, portal-venous aorta ~150 HU with calcified
    plaques, lying on the vertebral bodies): against its reference segmentation, at most 30 % of
    the reference aorta is any bone label (main: 84 %, its wall and plaques stay: 22 %) and the vertebrae
    overlap the reference vertebrae with Dice >= 0.70 (main 0.68: the aorta inflated them)."""
    import json

    from imagio.io import read_image
    from imagio.segmentation.rules import segment_masks

    d = shared_data / "totalsegmentator-example"
    ct = read_image(d / "example_ct_dicom")
    masks, _ = segment_masks(ct, ["body", "bones", "lungs", "airways"], lungs_optional=True)
    ref = _ref_on(ct, d / "example_seg_dicom.nii.gz")
    names = json.loads((d / "labels_total_v2.json").read_text())
    aorta = ref == next(int(k) for k, v in names.items() if v == "aorta")
    rv = np.isin(ref, [int(k) for k, v in names.items() if v.startswith("vertebrae")])
    allbone = masks["vertebrae"] | masks["ribs"] | masks["bone"]
    assert aorta.sum() > 1000
    assert (allbone & aorta).sum() <= 0.30 * aorta.sum(), (allbone & aorta).sum() / aorta.sum()
    v = masks["vertebrae"]
    dice = 2.0 * (v & rv).sum() / (v.sum() + rv.sum())
    assert dice >= 0.70, dice


@pytest.mark.data
@pytest.mark.slow
def test_chest_cta_vertebral_body_interior_is_vertebrae_canal_is_not(shared_data):
    """Chest CTA, trial 14 M4: the point RAS (-1.84, 105.66, 652.7), which the raw CT shows inside
    a thoracic vertebral body (cancellous 60-250 HU, cortex above 250 HU within 15 mm both in
    front and behind it along the antero-posterior line), is labelled vertebrae (main: 'body',
    the body a hollow shell); the spinal canal behind it (the first run below 60 HU, 4 mm past
    the posterior cortex, found on the raw CT) carries no bone label."""
    from imagio.io import read_image
    from imagio.segmentation.rules import segment_masks

    ct = read_image(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz")
    t = np.array([-1.84, 105.66, 652.7])
    steps = np.arange(-40.0, 40.25, 0.5)          # mm along RAS y (anterior +)
    pts = t + steps[:, None] * np.array([0.0, 1.0, 0.0])
    kji = np.rint(ct.world_to_kji(pts)).astype(int)
    hu = ct.array[tuple(kji.T)].astype(float)
    at = int(np.flatnonzero(steps == 0.0)[0])
    assert 60.0 <= hu[at] <= 250.0, hu[at]
    front = np.flatnonzero((hu > 250.0) & (steps > 0) & (steps <= 15.0))
    back = np.flatnonzero((hu > 250.0) & (steps < 0) & (steps >= -15.0))
    assert front.size and back.size, hu
    # the canal: past the posterior cortex, the first sample below 60 HU, then 4 mm deeper
    behind = np.flatnonzero((steps < steps[back].min()) & (hu < 60.0))
    assert behind.size, hu
    canal_step = steps[behind.max()] - 4.0
    assert hu[np.flatnonzero(steps == canal_step)[0]] < 60.0
    masks, _ = segment_masks(ct, ["body", "bones", "lungs", "airways"])
    labels = masks["vertebrae"] | masks["ribs"] | masks["bone"]
    k, j, i = kji[at]
    assert masks["vertebrae"][k, j, i]
    k, j, i = kji[np.flatnonzero(steps == canal_step)[0]]
    assert not labels[k, j, i]


# known gap (issue 14, seg19): `split_bones` closes the vertebral ring over its foramina with a 3-D
# ball of the common resolution (3 mm), which also bridges a disc of up to ~6 mm between the
# endplates (measured here: 0.60 / 0.58 of the disc's middle named vertebrae at 1 / 3 mm slices).
# Closing in the axial plane only fixes it (TotalSegmentator example all bones Dice 0.895 -> 0.901)
# but drops 24 mL (8 %) of real cancellous bone of the chest CTA's thoracic bodies, whose ring is
# open in-plane in 1-2 slices beside each endplate; an ellipsoid bridging <= 3 mm along S drops
# the same. Not fixed until a rule tells a disc from such slices.
DISC_OPEN = "the vertebral ring's 3-D closing bridges the intervertebral disc (issue 14, seg19)"


def _two_vertebrae(slice_mm: float, disc_mm: float):
    """Two vertebral bodies stacked along S with an intervertebral disc between them, on the
    oblique grid of `_phantom` (rotated 15 deg about a skew axis, 0.8 x 0.9 x ``slice_mm`` mm):
    soft tissue 40 HU, each body a cylinder of radius 14 mm with 1.5 mm of cortex (900 HU) on its
    side and a 1 mm endplate (900 HU) on each end around cancellous bone of 110 HU (an elderly
    spine), the disc (``disc_mm`` thick, radius 14 mm, 90 HU: fibrocartilage, as dense as the
    cancellous bone) between the endplates, a neural arch (900 HU) around the spinal canal (CSF
    15 HU) behind them. Noise SD 10 HU. Returns the CT, the body mask, the disc farther than
    2 mm from its endplates along S (nearer, a 1 mm grid blurred to the bones' common 3 mm
    resolution sees the endplate's partial volume) and the cancellous bone farther than 1.5 mm
    from the cortex."""
    sp = np.array([0.8, 0.9, slice_mm])
    n = np.array([220, 190, int(round(60.0 / slice_mm))])
    d = rotation((1, 2, 3), 15.0)
    origin = -d @ (sp * (n - 1) / 2)
    ct = Volume(np.zeros(tuple(n[::-1]), np.float32), make_ijk_to_ras(sp, origin, d))
    k, j, i = np.indices(ct.shape)
    ras = ct.kji_to_world(np.stack([k, j, i], -1).reshape(-1, 3)).reshape(ct.shape + (3,))
    x, y, z = ras[..., 0], ras[..., 1], ras[..., 2]
    body = (x / 80.0) ** 2 + ((y + 5.0) / 70.0) ** 2 <= 1.0
    a = np.where(body, 40.0, -1000.0)
    canal_r = np.hypot(x, y + 62.0)
    a[(canal_r <= 12.0) & (y < -50.0)] = 900.0
    a[canal_r <= 8.0] = 15.0
    vr = np.hypot(x, y + 35.0)
    half = 0.5 * disc_mm
    bodies = (vr <= 14.0) & (np.abs(z) > half)
    a[bodies] = 900.0
    inner = bodies & (vr <= 12.5) & (np.abs(z) > half + 1.0)
    a[inner] = 110.0
    disc = (vr <= 14.0) & (np.abs(z) <= half)
    a[disc] = 90.0
    a += np.random.default_rng(5).normal(0.0, 10.0, a.shape)
    ct.array[:] = a
    return ct, body, disc & (np.abs(z) <= half - 2.0), inner & (vr <= 11.0) & (np.abs(z) > half + 2.5)


@pytest.mark.parametrize("slice_mm", [
    pytest.param(1.0, marks=pytest.mark.xfail(strict=True, reason=DISC_OPEN)), 2.0,
    pytest.param(3.0, marks=pytest.mark.xfail(strict=True, reason=DISC_OPEN))])
def test_intervertebral_disc_is_not_vertebra(slice_mm):
    """The intervertebral disc (6 mm: thoracic discs measure 4.5-7.2 mm, Kunkel ME et al., J Anat
    2011;219:375-387; lumbar discs are thicker) between two endplates is not bone (<= 5 % of its
    middle labelled),
    while the cancellous bone of both bodies is vertebrae (>= 90 %). A disc is fibrocartilage
    (annulus fibrosus and nucleus pulposus) as dense as an elderly spine's cancellous bone, so it
    is told by where it lies: between the bodies along S, not inside a cortical ring in an axial
    section (TotalSegmentator example at 3 mm: the T12/L1 disc was labelled vertebrae, when the
    ring was closed over its foramina in 3-D, bridging the disc between the endplates)."""
    ct, body, disc, inner = _two_vertebrae(slice_mm, 6.0)
    bone = bone_mask(ct, body)
    sb = split_bones(ct, bone, body, None, midline=0.0)
    labelled = sb["vertebrae"] | sb["ribs"] | sb["bone"]
    assert (labelled & disc).sum() <= 0.05 * disc.sum(), (labelled & disc).sum() / disc.sum()
    assert (sb["vertebrae"] & inner).sum() >= 0.9 * inner.sum(), (sb["vertebrae"] & inner).sum() / inner.sum()
