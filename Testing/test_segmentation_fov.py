"""Rule-based lungs and body on real fields of view: the chest CTA and the TotalSegmentator
example cropped to each hemithorax, to half the z range and to a small FOV. The lungs of a crop
must match the uncropped result in the same region (within 5 %), no lung may be labelled on the
wrong side, aerated lung stays inside the body, and a trachea in view is found (a sagittal face
cutting the mediastinum leaves it open to that face)."""

import json

import numpy as np
import pytest

from imagio import io
from imagio.errors import InputError
from imagio.segmentation import rules
from imagio.segmentation.common import crop_slices, field_of_view_crops, ras_coordinate

from conftest import read_image_once, segment_masks_once

pytestmark = pytest.mark.data


@pytest.mark.parametrize("case", ["chest_cta", "ts_example"])
def test_lungs_survive_crops(shared_data, case):
    path = {"chest_cta": "totalsegmentator-chest-cta/chest_cta.nii.gz",
            "ts_example": "totalsegmentator-example/example_ct_sm.nii.gz"}[case]
    ct = read_image_once(shared_data / path)
    ref, _ = segment_masks_once(ct, ["body", "lungs", "airways"])
    for name, sl in field_of_view_crops(ct).items():
        if case == "ts_example" and name == "half_z":
            # with only ~3 mL of lung bases in view, a 9 mL colon gas pocket mixed with stool
            # (median -860 HU) passes the lung rule (in the full scan it is part of a pure-gas
            # pocket, rejected). Under 50 mL, with no trachea and no spinal canal resolved in
            # this 45 mm slab, it is not labelled lung: lungs asked for are refused, naming
            # the gas; in the default set it is a warning
            with pytest.raises(InputError, match="bowel gas"):
                rules.segment_masks(crop_slices(ct, sl), ["body", "lungs"])
            m, meta = rules.segment_masks(crop_slices(ct, sl), ["body", "lungs"], lungs_optional=True)
            assert "lung_left" not in m and "lung_right" not in m
            assert any("bowel gas" in w for w in meta["warnings"]), meta["warnings"]
            continue
        c = crop_slices(ct, sl)
        m, meta = rules.segment_masks(c, ["body", "lungs", "airways"])
        lungs, ref_lungs = m["lung_left"] | m["lung_right"], (ref["lung_left"] | ref["lung_right"])[sl]
        assert lungs.sum() == pytest.approx(ref_lungs.sum(), rel=0.05), name
        # no structure on the wrong side (a voxel or two at the junction may differ)
        wrong = (m["lung_left"] & ref["lung_right"][sl]).sum() + (m["lung_right"] & ref["lung_left"][sl]).sum()
        assert wrong <= 0.01 * ref_lungs.sum(), (name, wrong)
        for side in ("lung_left", "lung_right"):
            if ref[side][sl].sum() < 0.01 * ref_lungs.sum():  # this lung is not in the crop
                assert m[side].sum() <= 0.01 * ref_lungs.sum(), (name, side)
        assert not (lungs & ~m["body"]).any(), name
        if "trachea" in ref and ref["trachea"][sl].sum() * c.voxel_volume_ml >= 1.0:
            # the trachea (or the part of it) in view is found: most of it, and little else
            assert "trachea" in m, (name, meta["warnings"])
            found = m["trachea"] | m["airways"]
            truth = (ref["trachea"] | ref["airways"])[sl]
            assert (found & truth).sum() >= 0.7 * truth.sum(), name
            assert (found & ~truth).sum() <= 0.2 * truth.sum(), name
            # the midline (left/right, spine corridor) comes from the trachea, within 10 mm
            assert meta["midline"]["from"] == "trachea", name


def test_z_slab_lungs_on_their_sides(shared_data):
    """A 60 mm z slab of the chest CTA (both z faces cut the lungs, which touch each other at
    the junction; the slab also encloses the air of the table cushion): each lung keeps its side.
    Before, the cushion was a second large part, both parts lay on one side of the midline and
    both lungs were labelled lung_right; and the cushion air (median -941 HU, open to the crop's
    faces) was taken as cut lung (+28 %): it lies outside the body's axial convex hull (the
    thoracic cage) and is now left out. Lungs within 5 % of the uncropped result."""
    ct = read_image_once(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz")
    ct = ct.resampled((3.0, 3.0, 3.0), order=1)
    ref, _ = segment_masks_once(ct, ["body", "lungs", "airways"])
    sl = (slice(50, 70), slice(None), slice(None))
    m, _ = rules.segment_masks(crop_slices(ct, sl), ["body", "lungs", "airways"])
    for side, other in (("lung_left", "lung_right"), ("lung_right", "lung_left")):
        truth = ref[side][sl]
        assert (m[side] & truth).sum() >= 0.95 * truth.sum(), side
        assert (m[side] & ref[other][sl]).sum() <= 0.01 * truth.sum(), side
    lungs = m["lung_left"] | m["lung_right"]
    ref_lungs = (ref["lung_left"] | ref["lung_right"])[sl]
    assert lungs.sum() == pytest.approx(ref_lungs.sum(), rel=0.05)


def _volumes(ct):
    m, _ = rules.segment_masks(ct, ["body", "lungs", "bones"])
    v = ct.voxel_volume_ml
    return {"body": m["body"].sum() * v, "lung_left": m["lung_left"].sum() * v,
            "lung_right": m["lung_right"].sum() * v,
            "bones": sum(m[k].sum() for k in ("vertebrae", "ribs", "bone", "costal_cartilages")) * v}


def test_volumes_agree_across_resolution_non_contrast(shared_data):
    """Lung-PET-CT-Dx (no contrast) at its native 0.84 x 0.84 x 5 mm and resampled (SimpleITK,
    linear) to 1.5 and 3 mm: body, lungs and all bone (spine, ribs, other bone, cartilage)
    within 10 % of the native volumes (measured: bone 0.97 and 0.97)."""
    ct = read_image_once(shared_data / "lung-pet-ct-dx" / "Lung_Dx-A0001_ct.nii.gz")
    ref = _volumes(ct)
    for sp in (1.5, 3.0):
        v = _volumes(ct.resampled((sp, sp, sp), order=1))
        for k in ref:
            assert v[k] == pytest.approx(ref[k], rel=0.10), (sp, k, v[k], ref[k])


def test_volumes_agree_across_resolution(shared_data):
    """The chest CTA (contrast) at 1.5 mm and resampled to 3 mm: body, lungs and all bone within
    10 % (bone was 1.51 before the bone thresholds were applied at one common resolution and the
    blood pool's lower bound became the half-maximum between pool and tissue; measured 0.996)."""
    ct = read_image_once(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz")
    v15 = _volumes(ct)
    v3 = _volumes(ct.resampled((3.0, 3.0, 3.0), order=1))
    for k in v15:
        assert v3[k] == pytest.approx(v15[k], rel=0.10), (k, v3[k], v15[k])


def test_volumes_agree_at_sub_millimetre(shared_data):
    """A real 0.7 mm in-plane CT (LIDC-IDRI-0001 slab, 0.70 x 0.70 x 2.5 mm, 40 mm of chest: the
    lungs are cut at both z faces) resampled to 0.7, 1.5 and 3 mm isotropic (issue 14): body,
    lungs and all bone within 10 % of the native volumes (measured: body 1.00 / 1.01 / 0.98,
    lungs 1.00 / 1.01 / 0.98, bones 0.97 / 1.01 / 0.99). Bones were 0.94 / 0.89 / 0.92 once the
    resampler kept image in the outer half voxel: band-density trabecular specks of the vertebral
    bodies became contrast pool at 1.5 mm and the pool's rim removed 15 mL of vertebra
    (`bones.pool_core`); before that fix the outer slices were fill and hid it (0.95 / 0.91 / 0.91).
    On 253c11b the native bones were 105.5 mL as stored and 108.5 flipped (three dense cancellous
    pieces taken for contrast lumens or not, `bones.bone_mask`'s lumen guard): 3 mm read 0.906 /
    0.881 of them; with the guard on the pool's band 109.0 / 108.9 mL, bones 0.99 / 1.00 / 0.91."""
    ct = read_image_once(shared_data / "lidc-slabs" / "LIDC-IDRI-0001_slab.nii.gz")
    ref = _volumes(ct)
    ref["lungs"] = ref.pop("lung_left") + ref.pop("lung_right")
    assert ref["bones"] > 50 and ref["lungs"] > 500
    for sp in (0.7, 1.5, 3.0):
        v = _volumes(ct.resampled((sp, sp, sp), order=1))
        v["lungs"] = v.pop("lung_left") + v.pop("lung_right")
        for k in ref:
            assert v[k] == pytest.approx(ref[k], rel=0.10), (sp, k, v[k], ref[k])


def test_dense_rib_on_a_contrast_ct_is_not_taken_for_a_lumen(shared_data):
    """LIDC-IDRI-0001's slab (contrast: a blood pool band of 345-495 HU) at 3 mm: a left lateral
    rib piece of dense cancellous bone (native median 268 HU, 4 mL; 6-13 % of its voxels at the
    pool's density, but 42-61 % above the pool's half-maximum at the native grid and 55-78 % at
    3 mm) is bone. It was dropped as a contrast lumen where more than half of it was above the
    half-maximum, which moves with the deep-tissue level: such pieces came and went with the grid
    and the storage order (native bones 105.5 mL as stored, 108.5 flipped; issue 14)."""
    ct = read_image_once(shared_data / "lidc-slabs" / "LIDC-IDRI-0001_slab.nii.gz").resampled((3.0, 3.0, 3.0), order=1)
    m, _ = rules.segment_masks(ct, ["body", "lungs", "bones"])
    bone = m["vertebrae"] | m["ribs"] | m["bone"]
    ijk = np.linalg.solve(ct.ijk_to_ras, [99.4, 20.0, -113.8, 1.0])[:3]
    k, j, i = np.rint(ijk[::-1]).astype(int)
    assert bone[k - 1:k + 2, j - 1:j + 2, i - 1:i + 2].sum() >= 6   # main: 0 of 27; now 12


def test_contrast_pool_found_in_every_crop(shared_data):
    """The CTA's blood pool (aorta, heart) is found from the thick 150-700 HU voxels in the
    whole scan and in each crop (a hemithorax holds only part of it: the old whole-histogram
    peak missed the right half, whose aorta and heart then became 'bone' and 'costal
    cartilage'); the non-contrast TotalSegmentator example and lung2 give none."""
    from imagio.segmentation.body import body_mask
    from imagio.segmentation.bones import contrast_blood_band

    ct = read_image_once(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz")
    for name, sl in [("full", (slice(None),) * 3)] + list(field_of_view_crops(ct).items()):
        c = crop_slices(ct, sl)
        band = contrast_blood_band(c.array, body_mask(c), c.voxel_volume_ml, c.spacing_kji)
        assert band is not None and band[0] < 450 < band[1], (name, band)
    for rel in ("totalsegmentator-example/example_ct_sm.nii.gz", "pyradiomics-lung/lung2_image.nrrd"):
        c = read_image_once(shared_data / rel)
        assert contrast_blood_band(c.array, body_mask(c), c.voxel_volume_ml, c.spacing_kji) is None, rel


def test_vessels_on_contrast_ct_give_the_blood_pool(shared_data):
    """--structures vessels on a CT angiography: the enhanced blood pool (heart, aorta, pulmonary
    arteries, the veins of undiluted contrast joined to it: issue 14) is one label, great_vessels
    (measured at 3 mm: 753 mL, 844 mL with the undiluted vein's 91 mL; at 1.5 mm 865 mL; no
    reference segmentation exists for this scan; a sanity bound: the heart chambers and great
    vessels of an adult chest hold under about 1,000 mL), disjoint from lungs and bone; it holds the
    thick uniform contrast lumens (independent check: voxels within 60 HU of the pool's mode
    and >= 6 mm inside such tissue, scipy's exact EDT); the output says the pool is not split.
    The non-contrast TotalSegmentator example gets none."""
    from scipy import ndimage

    ct = read_image_once(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz")
    c3 = ct.resampled((3.0, 3.0, 3.0), order=1)
    m, meta = rules.segment_masks(c3, ["body", "bones", "vessels"])
    pool = m["great_vessels"]
    ml = pool.sum() * c3.voxel_volume_ml
    assert 400 < ml < 1000, ml
    bone = m["vertebrae"] | m["ribs"] | m["bone"]
    assert not (pool & bone).any() and not (pool & m["lung_vessels"]).any()
    a = c3.array
    mode = np.median(a[pool])
    lumen = (np.abs(a - mode) < 60) & m["body"]
    deep = ndimage.distance_transform_edt(lumen, sampling=c3.spacing_kji) >= 6.0
    assert (pool & deep).sum() >= 0.95 * deep.sum()
    assert any("great_vessels" in w and "ONE" in w for w in meta["warnings"]), meta["warnings"]
    ts = read_image_once(shared_data / "totalsegmentator-example" / "example_ct_sm.nii.gz")
    m, meta = rules.segment_masks(ts, ["vessels"])
    assert "great_vessels" not in m
    # trial 73 M4: a non-contrast CT's missing heart and great vessels are said, not silent
    assert any("no contrast blood pool" in w and "NOT labelled" in w for w in meta["warnings"]), meta["warnings"]


@pytest.mark.slow
def test_volumes_agree_when_upsampled(shared_data):
    """The TotalSegmentator example (abdomen to the lung bases, native 3 mm) resampled to 1.5 mm
    (issue 14): body, lungs and all bone within 10 % of the native volumes. Before, two colon
    gas pockets mixed with stool (238 and 110 mL, median -968 / -974 HU at 3 mm) rose to -874 /
    -948 HU on the interpolated grid and became lung: lungs 4.1 x native (482 vs 116 mL). The
    gas/parenchyma median is now taken on each air component's core (> 3 mm inside it), away
    from the partial volume of its edge (measured: body 1.00, lungs 0.98, bones 0.97; bones were
    0.91 before the bone rules read the resolution from the noise: bones.at_common_resolution)."""
    ct = read_image_once(shared_data / "totalsegmentator-example" / "example_ct.nii.gz")
    ref = _volumes(ct)
    ref["lungs"] = ref.pop("lung_left") + ref.pop("lung_right")
    assert 50 < ref["lungs"] < 200  # lung bases only
    v = _volumes(ct.resampled((1.5, 1.5, 1.5), order=1))
    v["lungs"] = v.pop("lung_left") + v.pop("lung_right")
    for k in ref:
        assert v[k] == pytest.approx(ref[k], rel=0.10), (k, v[k], ref[k])


@pytest.mark.slow
def test_lung_bases_match_reference_when_upsampled(shared_data):
    """The TotalSegmentator example's upper-abdomen slab (lung bases, native 3 mm) resampled to
    0.7 and 1.5 mm (issue 14): lungs within 10 % of the native volume and Dice >= 0.9 against
    TotalSegmentator's reference lobes resampled (nearest) to the same grid. Before: colon gas
    mixed with stool became lung (2.39 x and 2.24 x, Dice 0.55 / 0.57); with the core median
    alone, the skin's partial-volume shell along the back (-493..-404 HU) was a 12.6 mL
    'lung' at 0.7 mm (1.12 x). Measured: 1.003 / 0.979, Dice 0.928 / 0.939."""
    import json

    from imagio.segmentation.common import dice

    d = shared_data / "totalsegmentator-example"
    ct, seg = read_image_once(d / "example_ct_sm.nii.gz"), read_image_once(d / "example_seg.nii.gz")
    names = json.loads((d / "labels_total_v2.json").read_text())
    lung_ids = [int(k) for k, n in names.items() if n.startswith("lung_")]
    m, _ = segment_masks_once(ct, ["body", "lungs"])
    native = (m["lung_left"].sum() + m["lung_right"].sum()) * ct.voxel_volume_ml
    for sp in (0.7, 1.5):
        c = ct.resampled((sp, sp, sp), order=1)
        m, _ = rules.segment_masks(c, ["body", "lungs"])
        lungs = m["lung_left"] | m["lung_right"]
        assert lungs.sum() * c.voxel_volume_ml == pytest.approx(native, rel=0.10), sp
        ref = np.isin(np.asarray(seg.resample_like(c, order=0).array), lung_ids)
        assert dice(lungs, ref) >= 0.9, (sp, dice(lungs, ref))


def test_sides_without_scanner_coordinates(shared_data):
    """Trial 13 (H4): the chest CTA's lower half (no trachea in view, the body cut at a side)
    written with its origin at (0, 0, 0), as converters without the scanner coordinates do, had
    both lungs labelled lung_left: the midline fell back to RAS x = 0, here the image's corner,
    not the isocentre. Each lung must keep its side (truth: the same slab with its real origin,
    whose sides the trachea of the whole scan decided), and the warning must say why the sides
    are uncertain."""
    from imagio.volume import Volume

    ct = read_image_once(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz")
    ct = ct.resampled((3.0, 3.0, 3.0), order=1)
    ref, _ = segment_masks_once(ct, ["body", "lungs", "airways"])
    s_axis = int(np.argmax(np.abs(ct.ijk_to_ras[2, :3])))   # i, j, k column along S
    sl = [slice(None)] * 3
    kji_axis = 2 - s_axis
    n = ct.shape[kji_axis]
    lower = slice(0, n // 2) if ct.ijk_to_ras[2, s_axis] > 0 else slice(n - n // 2, n)
    sl[kji_axis] = lower
    sl = tuple(sl)
    slab = crop_slices(ct, sl)
    m0 = np.array(slab.ijk_to_ras, float)
    m0[:3, 3] = 0.0
    moved = Volume(slab.array, m0)
    m, meta = rules.segment_masks(moved, ["body", "lungs", "airways"])
    assert "trachea" not in m or m["trachea"].sum() == 0
    for side, other in (("lung_left", "lung_right"), ("lung_right", "lung_left")):
        truth = ref[side][sl]
        assert truth.sum() > 0
        assert (m[side] & truth).sum() >= 0.95 * truth.sum(), side
        assert (m[side] & ref[other][sl]).sum() <= 0.01 * truth.sum(), side
    assert meta["midline"]["from"] == "unknown"
    assert any("origin is (0, 0, 0)" in w for w in meta["warnings"]), meta["warnings"]


@pytest.mark.slow
def test_bones_match_reference_when_upsampled(shared_data):
    """The TotalSegmentator example's upper-abdomen slab (native 3 mm: ribs 7-12, costal
    cartilages, T11-L2) resampled to 1.5 mm (issue 14): all bone (spine, ribs, other bone,
    cartilage) within 10 % of the native volume, and Dice >= 0.8 against TotalSegmentator's
    reference vertebrae, ribs and costal cartilages resampled (nearest) to the same grid.
    Before: the resampled image was blurred again as if its resolution were its 1.5 mm spacing,
    and the thin ribs' cortex fell below the seed threshold: ribs 4.7 of 56.7 mL, no costal
    cartilage, all bone 0.65 x native, Dice 0.65. Now the blur already there is read from the
    image's noise and the seed contrast follows the thin-object peak (bones.thin_peak_factor)."""
    import json

    from imagio.segmentation.common import dice

    d = shared_data / "totalsegmentator-example"
    ct, seg = read_image_once(d / "example_ct_sm.nii.gz"), read_image_once(d / "example_seg.nii.gz")
    names = json.loads((d / "labels_total_v2.json").read_text())
    ids = [int(k) for k, n in names.items() if n.startswith(("vertebrae_", "rib_", "costal"))]
    kinds = ("vertebrae", "ribs", "bone", "costal_cartilages")
    m, _ = segment_masks_once(ct, ["body", "lungs", "bones"])
    native = sum(m[k].sum() for k in kinds) * ct.voxel_volume_ml
    c = ct.resampled((1.5, 1.5, 1.5), order=1)
    m, _ = rules.segment_masks(c, ["body", "lungs", "bones"])
    bone = np.logical_or.reduce([m[k] for k in kinds])
    assert bone.sum() * c.voxel_volume_ml == pytest.approx(native, rel=0.10)
    ref = np.isin(np.asarray(seg.resample_like(c, order=0).array), ids)
    assert dice(bone, ref) >= 0.8, dice(bone, ref)


@pytest.fixture(scope="module")
def chest_cta_ref():
    from conftest import shared_case

    ct = read_image_once(shared_case("totalsegmentator-chest-cta", "chest_cta.nii.gz"))
    ref, _ = segment_masks_once(ct, ["body", "lungs", "airways"])
    return ct, ref


def _check_crop_lungs(ref, sl, m, rel):
    """Lungs of a crop against the uncropped result in the same region: total within ``rel``,
    each lung in view mostly found on its own side, at most 1 % on the wrong side."""
    ref_l, ref_r = ref["lung_left"][sl], ref["lung_right"][sl]
    total = (ref_l | ref_r).sum()
    m = {k: m.get(k, np.zeros_like(ref_l)) for k in ("lung_left", "lung_right")}
    lungs = m["lung_left"] | m["lung_right"]
    assert lungs.sum() == pytest.approx(total, rel=rel)
    wrong = (m["lung_left"] & ref_r).sum() + (m["lung_right"] & ref_l).sum()
    assert wrong <= 0.01 * total, wrong
    for side, truth in (("lung_left", ref_l), ("lung_right", ref_r)):
        if truth.sum() >= 0.02 * total:   # this lung is in view: labelled, on its side
            assert (m[side] & truth).sum() >= (1.0 - rel) * truth.sum(), side


@pytest.mark.slow
@pytest.mark.parametrize("side", ["left", "right"])
def test_hemithorax_crop_past_the_trachea_keeps_the_other_lung(chest_cta_ref, side):
    """Trial 13 (issue 14): a hemithorax crop of the chest CTA whose sagittal face lies 25 mm
    past the trachea's centre holds the trachea and a medial piece of the other lung (114 mL of
    the right lung in the left crop), joined to this lung at the anterior junction. Before, the
    trachea touched the face near the carina and the midline was put on the face, so the piece
    joined at the junction (33 mL) was labelled lung_left, and a separate 75 mL piece, under 5 %
    of the largest component, was left as body: no lung_right, no warning. The midline now comes
    from the slices showing the whole trachea, the 5 % rule is per side of it, and a part across
    it is the other lung. Truth: the uncropped run in the same region."""
    from imagio.segmentation.common import ras_coordinate, x_range_slices

    ct, ref = chest_cta_ref
    centre = float(ras_coordinate(ct, 0)[ref["trachea"]].mean())
    # keep this side and 25 mm of the other (patient's right is +x in RAS)
    sl = x_range_slices(ct, x_max=centre + 25.0) if side == "left" else \
        x_range_slices(ct, x_min=centre - 25.0)
    m, meta = rules.segment_masks(crop_slices(ct, sl), ["body", "lungs", "airways"])
    assert meta["midline"]["from"] == "trachea"
    assert abs(meta["midline"]["x_mm"] - centre) <= 5.0
    other = ref["lung_right" if side == "left" else "lung_left"][sl]
    assert other.sum() * ct.voxel_volume_ml >= 20.0   # the other lung's piece is in view
    _check_crop_lungs(ref, sl, m, 0.05)


@pytest.mark.slow
@pytest.mark.parametrize("side,past_mm", [("right", 25.0), ("right", 33.0), ("left", 33.0), ("right", 40.0)])
def test_hemithorax_crop_further_past_the_trachea_keeps_the_other_lung_on_its_side(chest_cta_ref, side, past_mm):
    """New-user trial 40 H1: the right-hemithorax crop of the chest CTA whose face lies 33 mm past
    the trachea (image columns 0-139) holds the left lung's medial edge as an anterior and a
    posterior piece, each joined to the right lung at its own junction. Only the larger piece's
    eroded core was taken as the left lung's marker and every voxel went to the straight-line
    nearest core: 26.6 mL of the left lung (its apex, left of the trachea) labelled lung_right
    (-31 % of the left lung in view), silently; 40 mm past, 68 mL; the left crop 33 mm past, 65 mL
    of the right lung labelled left; 25 mm past, 11.8 of 37.8 mL (its core, 4.9 mL at 3 mm, was
    under MIN_LUNG_ML). Now every core across the midline whose piece (the core grown back by the
    erosion depth) holds MIN_LUNG_ML is the other lung, and voxels follow the lung to their core
    (watershed of the distance map). Truth: the uncropped run in the same region; the other
    lung's piece within 5 % and on its side."""
    from imagio.segmentation.common import ras_coordinate, x_range_slices

    ct, ref = chest_cta_ref
    centre = float(ras_coordinate(ct, 0)[ref["trachea"]].mean())
    sl = x_range_slices(ct, x_max=centre + past_mm) if side == "left" else \
        x_range_slices(ct, x_min=centre - past_mm)
    m, meta = rules.segment_masks(crop_slices(ct, sl), ["body", "lungs", "airways"])
    assert meta["midline"]["from"] == "trachea"
    other_name, this_name = ("lung_right", "lung_left") if side == "left" else ("lung_left", "lung_right")
    other = ref[other_name][sl]
    assert other.sum() * ct.voxel_volume_ml >= 30.0   # the other lung's piece is in view
    _check_crop_lungs(ref, sl, m, 0.05)
    found = m.get(other_name, np.zeros_like(other))
    assert (found & other).sum() >= 0.95 * other.sum()
    # little of the other lung's piece on this lung's side
    assert (m[this_name] & other).sum() <= 0.02 * other.sum()


@pytest.mark.slow
def test_vertebral_marrow_is_not_costal_cartilage_when_upsampled(shared_data):
    """Trials 13 (M4) and 14: a 240 x 240 x 126 mm box of the TotalSegmentator example upsampled
    from 3 to 0.7 mm had 24 mL of vertebral bodies' marrow (joined to a rib head) labelled
    costal_cartilages, where the same box at its native 3 mm has no cartilage near the spine.
    Across resolutions (issue 14) the cartilage may not grow by more than 3 mL, and none of it
    may lie within 5 mm of the native run's vertebrae (resampled nearest)."""
    from imagio.segmentation.common import dilate_mm

    ct = read_image_once(shared_data / "totalsegmentator-example" / "example_ct.nii.gz")
    box = crop_slices(ct, (slice(70, 112), slice(10, 90), slice(20, 100)))
    m3, _ = rules.segment_masks(box, ["body", "lungs", "bones"], lungs_optional=True)
    c = box.resampled((0.7, 0.7, 0.7), order=1)
    m, _ = rules.segment_masks(c, ["body", "lungs", "bones"], lungs_optional=True)
    cart3 = m3.get("costal_cartilages", np.zeros(box.shape, bool)).sum() * box.voxel_volume_ml
    cart = m.get("costal_cartilages", np.zeros(c.shape, bool))
    assert cart.sum() * c.voxel_volume_ml <= cart3 + 3.0, (cart.sum() * c.voxel_volume_ml, cart3)
    vert = box.with_array(m3["vertebrae"].astype(np.uint8), labels={1: "vertebrae"}).resample_like(c, order=0).array > 0
    assert vert.sum() * c.voxel_volume_ml > 50.0                     # the scene: vertebral bodies in view
    near = (cart & dilate_mm(vert, 5.0, c.spacing_kji)).sum() * c.voxel_volume_ml
    assert near < 1.0, near


@pytest.mark.parametrize("x_cut_mm", [-1.0, 2.0, 5.0])
def test_half_abdomen_keeps_its_lung_base_and_chest_wall(shared_data, x_cut_mm):
    """Trial 13 H2/M2 (issue 14): the TotalSegmentator example (upper abdomen, 3 mm) cut to its
    left half by a sagittal face near the midline: 43 mL of left lung base, no trachea, the
    spinal canal cut by the face. Before, with a face at x <= +2 mm, under the 50 mL chest test
    and with no canal found, the lung base was called 'a pocket of gas: bowel gas mixed with
    stool', and its ribs and costal cartilages went with it (the best needle path then crossed
    12 mm of cartilage). The lung base is cut by the field of view and lies inside the ring of
    ribs (`lungs.caged_lung`): lung, and the chest wall is a chest's. Three face positions one
    column apart (main labelled lung at -1 and +5 mm, not at +2 mm). Truth: TotalSegmentator's
    own labels of this CT (example_seg, same grid), and the uncropped run (within 5 %)."""
    import json

    from imagio.segmentation.common import dilate_mm, x_range_slices

    d = shared_data / "totalsegmentator-example"
    ct = read_image_once(d / "example_ct_sm.nii.gz")
    names = {int(k): v for k, v in json.loads((d / "labels_total_v2.json").read_text()).items()}
    ts = io.read_labels(d / "example_seg.nii.gz", names)
    assert ts.same_grid(ct)

    def named(prefix):
        return np.isin(ts.array, [k for k, v in ts.labels.items() if v.startswith(prefix)])

    ref, _ = segment_masks_once(ct, ["body", "lungs", "bones"])
    sl = x_range_slices(ct, x_max=x_cut_mm)
    m, meta = rules.segment_masks(crop_slices(ct, sl), ["body", "lungs", "bones"])
    lung, ts_lung = m["lung_left"], named("lung_")[sl]
    assert ts_lung.sum() * ct.voxel_volume_ml >= 30.0     # the left lung base is in view
    assert not m["lung_right"].any()                      # nothing on the wrong side
    assert (lung & ts_lung).sum() >= 0.9 * ts_lung.sum()
    assert (lung & ~dilate_mm(ts_lung, 3.0, ct.spacing_kji)).sum() <= 0.05 * lung.sum()
    ref_lung = (ref["lung_left"] | ref["lung_right"])[sl]
    assert lung.sum() == pytest.approx(ref_lung.sum(), rel=0.05)
    # the chest wall: TotalSegmentator's ribs and costal cartilages in the crop are labelled so
    for label, prefix, share in (("ribs", "rib_", 0.6), ("costal_cartilages", "costal_cartilages", 0.4)):
        truth = named(prefix)[sl]
        assert (m[label] & truth).sum() >= share * truth.sum(), label
    assert any("only" in w and "mL of lung-like air in view" in w for w in meta["warnings"])



def test_lung_bases_without_trachea_on_a_coarse_grid_are_right_or_warned(shared_data):
    """New-user trial 33 (H1): the TotalSegmentator example (lung bases and upper abdomen, no
    trachea) resampled to 4 x 4 x 3 mm labelled 20-28 mL of the air between back and table as
    lung (at 4-5 mm with anti-aliasing 139 mL of colon gas), with no lung warning: without a
    trachea the gas rule (the core's median, > 3 mm deep) needs voxels of 3 mm or finer. The lung
    labels are within 10 % of TotalSegmentator's lungs on that grid, or a lung warning says why
    they may not be; at the native 3 mm they are right and no such warning is given."""
    import SimpleITK as sitk

    d = shared_data / "totalsegmentator-example"
    src, ref = sitk.ReadImage(str(d / "example_ct_sm.nii.gz")), sitk.ReadImage(str(d / "example_seg.nii.gz"))
    names = json.loads((d / "labels_total_v2.json").read_text())
    ts_lungs = [int(v) for v, n in names.items() if n.startswith("lung_")]
    for spacing in [(3.0, 3.0, 3.0), (4.0, 4.0, 3.0)]:
        size = [int(n * s / t) for n, s, t in zip(src.GetSize(), src.GetSpacing(), spacing)]
        res = sitk.ResampleImageFilter()
        res.SetOutputSpacing(spacing), res.SetSize(size), res.SetOutputOrigin(src.GetOrigin())
        res.SetOutputDirection(src.GetDirection()), res.SetDefaultPixelValue(-1024)
        res.SetInterpolator(sitk.sitkLinear)
        ct_img = res.Execute(src)
        res.SetInterpolator(sitk.sitkNearestNeighbor), res.SetDefaultPixelValue(0)
        ref_arr = sitk.GetArrayFromImage(res.Execute(ref))
        ct = io.volume_from_sitk(ct_img)
        assert ct.shape == ref_arr.shape
        m, meta = rules.segment_masks(ct, ["body", "lungs"], lungs_optional=True)
        ml = (m["lung_left"] | m["lung_right"]).sum() * ct.voxel_volume_ml
        truth = np.isin(ref_arr, ts_lungs).sum() * ct.voxel_volume_ml
        warned = [w for w in meta["warnings"] if w.startswith("lungs:") and "bowel gas" in w]
        if spacing[0] == 3.0:
            assert ml == pytest.approx(truth, rel=0.10) and not warned, (ml, truth, meta["warnings"])
        else:
            assert ml == pytest.approx(truth, rel=0.10) or (warned and "4 mm in-plane" in warned[0]), \
                (ml, truth, meta["warnings"])


def _tilted_grid(ct, axis, degrees):
    """A grid of ``ct``'s spacing whose axes are ``ct``'s rotated by ``degrees`` about the RAS
    ``axis`` and that covers ``ct``'s whole box (an oblique reformat: the corners of the new grid
    lie outside the data and hold the resampler's fill value)."""
    from conftest import rotation
    from imagio.volume import Volume

    m = ct.ijk_to_ras
    sp = np.linalg.norm(m[:3, :3], axis=0)
    n = np.array(ct.shape[::-1], float)
    corners = np.array([[i, j, k] for i in (0, n[0] - 1) for j in (0, n[1] - 1) for k in (0, n[2] - 1)])
    ras = corners @ m[:3, :3].T + m[:3, 3]
    d = rotation(axis, degrees) @ (m[:3, :3] / sp)
    centre = ras.mean(axis=0)
    loc = (ras - centre) @ d                       # along the new axes (mm)
    size = np.ceil((loc.max(0) - loc.min(0)) / sp).astype(int) + 1
    new = np.eye(4)
    new[:3, :3] = d * sp
    new[:3, 3] = centre + d @ loc.min(0)
    return Volume(np.zeros(tuple(size[::-1]), np.int16), new)


@pytest.mark.slow
def test_oblique_reformat_keeps_the_lung_beside_its_padding_wedge(shared_data):
    """New-user trial 40 H5: the chest CTA's upper half resampled onto a grid tilted 15 degrees
    about the left-right axis (a NIfTI oblique reformat; the corners outside the data hold
    -1024) lost 154 mL of lung (-7.7 %) in a band along the wedge of padding: the padding was
    known (`padding.padding_mask`) but the lungs were eroded from it and the body's air
    left out its blended rim, as if it were air around the patient. The padding, of any shape,
    is now the end of the field of view like a crop face. Truth: the axial upper half's lungs
    (same code) resampled onto the tilted grid; lungs within 2 % per side, little on the wrong
    side."""
    ct = read_image_once(shared_data / "totalsegmentator-chest-cta/chest_cta.nii.gz")
    upper = ct.crop([95, 0, 0], list(ct.shape))
    ref, _ = rules.segment_masks(upper, ["body", "lungs", "airways"])
    grid = _tilted_grid(upper, (1.0, 0.0, 0.0), 15.0)
    tilted = upper.resample_like(grid, order=1, fill=-1024)
    assert (tilted.array == -1024).mean() >= 0.05          # a wedge of padding at the corners
    m, meta = rules.segment_masks(tilted, ["body", "lungs", "airways"])
    for side in ("lung_left", "lung_right"):
        truth = np.asarray(upper.with_array(ref[side].astype(np.uint8)).resample_like(grid, order=0).array) > 0
        got = m[side]
        assert got.sum() == pytest.approx(truth.sum(), rel=0.02), (side, int(got.sum()), int(truth.sum()))
        assert (got & truth).sum() >= 0.97 * truth.sum(), side
    assert not ((m["lung_left"] | m["lung_right"]) & ~m["body"]).any()   # lung is inside the body


@pytest.mark.parametrize("case", ["lung1", "lung2"])
def test_hemithorax_crop_keeps_each_lung_on_its_side(shared_data, case):
    """Each hemithorax of lung1 / lung2 (pyradiomics, 5 mm slices) cropped 20 columns (11-13 mm)
    past the image's middle, as a user crops to one side: no lung in view may be labelled as the
    other lung (within 1 mL of the uncropped run on the same voxels). The right lung reaches
    10-15 mm across the trachea's line at its base and in front of the heart; before, that part
    of lung1's right lung (15 mL) was named lung_left on the right crop, and lung2's left crop cut
    two pieces of its right lung at the trachea's line (21 mL named lung_left), without a word
    (new-user trial 44 F7). Where one lung alone is labelled with 5 mL of it across the
    midline, a warning says that its side cannot be told there."""
    from imagio.segmentation.common import anatomical_axes

    ct = read_image_once(shared_data / "pyradiomics-lung" / f"{case}_image.nrrd")
    ref, _ = segment_masks_once(ct, ["lungs", "airways"])
    ml = ct.voxel_volume_ml
    a, sign = anatomical_axes(ct)["R"]
    n = ct.shape[a]
    for name, half in (("right", slice(0, n // 2 + 20) if sign < 0 else slice(n // 2 - 20, n)),
                       ("left", slice(n // 2 - 20, n) if sign < 0 else slice(0, n // 2 + 20))):
        sl = [slice(None)] * 3
        sl[a] = half
        sl = tuple(sl)
        m, meta = rules.segment_masks(crop_slices(ct, sl), ["lungs", "airways"])
        for side, other in (("lung_left", "lung_right"), ("lung_right", "lung_left")):
            wrong = (m[side] & ref[other][sl]).sum() * ml
            assert wrong <= 1.0, (name, side, round(wrong, 1), meta["warnings"])
            truth = ref[side][sl]
            if truth.sum() * ml >= 5.0:  # under 5 mL in view is no lung to the rules (MIN_LUNG_ML)
                assert (m[side] & truth).sum() >= 0.97 * truth.sum(), (name, side)
        one = [s for s in ("lung_left", "lung_right") if m[s].any()]
        if len(one) == 1:
            x = ras_coordinate(crop_slices(ct, sl), 0)
            mid = meta["midline"]["x_mm"]
            across = m[one[0]] & ((x <= mid) if one[0] == "lung_right" else (x > mid))
            if across.sum() * ml >= 5.0:
                assert any("its side cannot be told" in w for w in meta["warnings"]), (name, meta["warnings"])
