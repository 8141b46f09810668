"""Bone on a cut field of view: every bone the uncropped chest CTA shows lateral to the lungs'
midline stays bone in a crop. A crop changes the HU histogram the contrast rules read (a
hemithorax holds only the venae cavae and right atrium of the blood pool) and cuts the ribs from
the spine; a rule that then drops the ribs leaves them unlabelled, and the needle planner routes
through them (new-user trial 5: 57 mL of lateral ribs lost on the right hemithorax, R > 25 mm,
all three proposals through a rib; trial 6: 13 mL of whole lateral ribs lost on the left
hemithorax, R < -13.8 mm, 4 of 5 paths through a rib).

Cause of trial 6: on a CT angiography a bone component needs voxels denser than the blood pool's
band (585 HU here) at the common 3 mm resolution; a thin rib's cortex blurs below it, so a rib
was bone only through its joint with the spine, which the crop cut. Fix: cortex seeds are also
read on the native image, against the pool's band on that image (`bones.native_cortex_seeds`).

Measured share of the uncropped lateral bone (|R| > 60 mm, 5 voxels away from the cut faces) kept
in each crop, main before -> with the fix: right half 0.979 -> 0.979, left half 0.908 -> 0.908,
half z 0.967 -> 0.969, small FOV 0.911 -> 0.936, right hemithorax R > 25 mm 1.000 -> 1.000,
left hemithorax R < -13.8 mm 0.835 -> 0.895 (the reverted seg4 rules gave 0.765 on the right
hemithorax). What is still lost is mostly a one-voxel rim: the crop's enhanced-tissue level
(`bones.enhanced_tissue_level`, a 95th percentile of the view's deep soft tissue) rises when the
spleen fills more of the view (158 -> 180 HU), and so do the bone and rim thresholds."""

import functools

import numpy as np
import pytest

from conftest import read_image_once, segment_masks_once
from imagio import io
from imagio.segmentation import rules
from imagio.segmentation.body import body_mask
from imagio.segmentation.bones import bone_mask
from imagio.segmentation.common import anatomical_axes, components, crop_slices, field_of_view_crops

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


@functools.lru_cache(maxsize=1)
def _raw_bone(path):
    """The chest CTA and `bone_mask` of it whole (read-only): the reference of the two tests
    below, computed once per process."""
    ct = io.read_image(path)
    ref = bone_mask(ct, body_mask(ct))
    ref.flags.writeable = False
    return ct, ref


def test_lateral_bone_survives_every_crop(shared_data):
    ct, ref = _raw_bone(str(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz"))
    lr = anatomical_axes(ct)["R"][0]
    r = _r_of_index(ct, lr)
    crops = dict(field_of_view_crops(ct))
    crops["right_hemithorax_R_gt_25mm"] = _hemithorax(ct, lr, r, r > 25.0)
    _check_crops(ct, lr, r, crops, ref=ref)


def test_lateral_bone_survives_left_hemithorax_crop(shared_data):
    """Trial 6's crop: the share kept, and no lateral bone piece of the uncropped result (a rib
    segment, >= 0.5 mL) loses half its voxels (main: three whole ribs, 13.4 mL, lost)."""
    ct, ref = _raw_bone(str(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz"))
    lr = anatomical_axes(ct)["R"][0]
    r = _r_of_index(ct, lr)
    _check_crops(ct, lr, r, {"left_hemithorax_R_lt_-13.8mm": _hemithorax(ct, lr, r, r < -13.8)},
                 whole_pieces=True, ref=ref)


@pytest.fixture
def cta_pipeline_bone(shared_data):
    """The chest CTA and its bone as `rules.segment_masks` gives it (the lungs, without the
    airways, and the midline are passed to `bone_mask`); computed once per session."""
    return _cta_pipeline(str(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz"))


@functools.lru_cache(maxsize=1)
def _cta_pipeline(path):
    ct, m = _cta_split(path)
    return ct, m["vertebrae"] | m["ribs"] | m["bone"]


def _pipeline_bone(vol):
    m, _ = rules.segment_masks(vol, ["body", "lungs", "bones"])
    return m["vertebrae"] | m["ribs"] | m["bone"]


@pytest.mark.parametrize("crop", ["half_z", "small_fov"])
def test_whole_ribs_survive_z_and_small_fov_crops(cta_pipeline_bone, crop):
    """Thin rib pieces whose cortex is within the pool's HU band even at 1.5 mm (max 422-696 HU),
    cut by the field of view from their dense part, stay bone (`bones.cut_chest_wall_pieces`:
    a thin piece on the pleura, in the chest wall, touching a face of the volume). Main and the
    previous branch lost 3 pieces each: half z 2.14, 0.97, 0.51 mL; small FOV 1.50, 0.94,
    0.72 mL (pipeline bone). The small FOV's last lost piece (a posterior-lateral rib, 0.94 mL,
    52 % of it above the pool's half-maximum) is kept since `bone_mask`'s lumen guard asks for
    more than half of a piece within the pool's band, not above its half-maximum (issue 14).
    The uncropped result is the reference, so the check is independent of the rule: it fails
    if the crop loses what the whole scan shows."""
    ct, ref = cta_pipeline_bone
    lr = anatomical_axes(ct)["R"][0]
    r = _r_of_index(ct, lr)
    s = field_of_view_crops(ct)[crop]
    _check_crops(ct, lr, r, {crop: s}, whole_pieces=True, ref=ref, mask=_pipeline_bone)


def _check_crops(ct, lr, r, crops, whole_pieces=False, ref=None, mask=None):
    if mask is None:
        def mask(vol):
            return bone_mask(vol, body_mask(vol))
    if ref is None:
        ref = mask(ct)
    shape = [1, 1, 1]
    shape[lr] = -1
    lateral = (np.abs(r) > 60.0).reshape(shape)   # lateral to the mediastinum: ribs, scapulae
    for name, s in crops.items():
        c = crop_slices(ct, s)
        got = mask(c)
        want = ref[s] & np.broadcast_to(lateral, ref.shape)[s]
        # away from the crop's cut faces (5 voxels): the body and bone rules see cut anatomy there
        inner = np.zeros(want.shape, bool)
        inner[5:-5, 5:-5, 5:-5] = True
        want &= inner
        kept = (got & want).sum() / max(int(want.sum()), 1)
        assert want.sum() * ct.voxel_volume_ml > 20.0, name
        assert kept >= 0.89, (name, round(float(kept), 3), round(float(want.sum() * ct.voxel_volume_ml), 1))
        if whole_pieces:
            lab, n, counts = components(want, connectivity=26)
            piece = counts * ct.voxel_volume_ml >= 0.5
            piece[0] = False
            share = np.bincount(lab[got], minlength=n + 1)[piece] / counts[piece]
            lost = counts[piece][share < 0.5] * ct.voxel_volume_ml
            assert lost.size == 0, (name, "whole pieces lost (mL)", np.round(lost, 2).tolist())


def test_no_bone_in_the_cta_contrast_lumens(cta_pipeline_bone):
    """No bone inside the chest CTA's contrast lumens. Independent of the bone rules: the lumens are
    the native voxels >= 250 HU (arterial-phase blood, Bae, Radiology 2010) at least 6 mm deep
    inside such tissue (scipy's exact EDT; cortex is 0.5-2 mm thick and drops out), components of
    >= 30 mL, grown back by 6 mm within >= 250 HU tissue. At most 0.5 mL of bone (partial-volume
    boundary voxels) may lie there."""
    from scipy import ndimage

    ct, bone = cta_pipeline_bone
    a, sk, v = ct.array, ct.spacing_kji, ct.voxel_volume_ml
    blood = a >= 250.0
    deep = ndimage.distance_transform_edt(blood, sampling=sk) >= 6.0
    lab, n, counts = components(deep, connectivity=26)
    big = counts * v >= 30.0
    big[0] = False
    assert big.any()
    lumen = (ndimage.distance_transform_edt(~big[lab], sampling=sk) <= 6.0) & blood
    assert (bone & lumen).sum() * v <= 0.5, round(float((bone & lumen).sum() * v), 2)


@functools.lru_cache(maxsize=1)
def _cta_split(path):
    ct = io.read_image(path)
    m, _ = rules.segment_masks(ct, ["body", "lungs", "bones"])
    return ct, m


def _view(ct, view):
    """The chest CTA's right hemithorax (RAS R > 25 mm, new-user trial 7), its upper half, or its
    0.7 x 0.7 x 5 mm resampling."""
    if view == "resampled_0.7x0.7x5mm":
        return ct.resampled((0.7, 0.7, 5.0)), None
    ax = anatomical_axes(ct)
    sl = [slice(None)] * 3
    if view == "right_hemithorax":
        lr = ax["R"][0]
        keep = np.nonzero(_r_of_index(ct, lr) > 25.0)[0]
        sl[lr] = slice(int(keep.min()), int(keep.max()) + 1)
    else:
        s_ax, sign = ax["S"]
        n = ct.shape[s_ax]
        sl[s_ax] = slice(n // 2, n) if sign > 0 else slice(0, n // 2)
    return crop_slices(ct, tuple(sl)), tuple(sl)


@pytest.mark.slow
@pytest.mark.parametrize("view", ["right_hemithorax", "upper_half", "resampled_0.7x0.7x5mm"])
def test_ribs_stay_ribs_on_crops_and_thick_slices(shared_data, view):
    """E7 (new-user trial 7): the ribs of the uncropped chest CTA are ribs, not 'bone', in a
    crop or a 0.7 x 0.7 x 5 mm resampling. The uncropped result is the reference (independent of
    the rule's figures: a crop or a slice thickness must not rename bone). At most 10 % of the
    uncropped ribs inside the view (5 voxels from its cut faces) may be 'bone' there. Main's
    per-component rib rule: 169 mL (68 %) on the right hemithorax, 213 mL (74 %) on the upper
    half; per rib segment (`bones.rib_pieces`): 5.9 mL (5 %), 6.1 mL (5 %)."""
    ct, m = _cta_split(str(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz"))
    vol, sl = _view(ct, view)
    got, _ = rules.segment_masks(vol, ["body", "lungs", "bones"])
    if sl is None:
        ribs = ct.with_array(m["ribs"].astype(np.uint8)).resample_like(vol, order=0).array > 0
    else:
        ribs = m["ribs"][sl]
    inner = np.zeros(ribs.shape, bool)
    inner[5:-5, 5:-5, 5:-5] = True
    ribs &= inner
    v = vol.voxel_volume_ml
    assert ribs.sum() * v > 50.0, view
    as_bone = (ribs & got["bone"]).sum() / ribs.sum()
    assert as_bone <= 0.10, (view, round(float(as_bone), 3), round(float((ribs & got["bone"]).sum() * v), 1))


@pytest.mark.data
def test_costal_cartilage_cut_from_its_ribs_by_the_lower_face_is_warned(shared_data):
    """New-user trial 40 H3: the upper half of the TotalSegmentator example (slices 15-29, lower
    chest) holds the costal margin's cartilages but not the rib ends below them that they
    continue. The cartilage rule needs a rib in view (dense thin tissue joined to a rib): 3.6 mL
    labelled against 55.2 mL in the same region uncropped (TS reference 38.5 mL), and no word.
    Now dense thin tissue in front of the chest, joined to no rib in view and cut by the view's
    lower face, is measured (34 mL here) and said when it is over 10 % of the candidate
    cartilage. The uncropped scan (1.5 mL cut by its lower face) is not warned of it."""
    ct = read_image_once(shared_data / "totalsegmentator-example" / "example_ct_sm.nii.gz")
    msg = "costal cartilages may be partly missed"
    full, meta = segment_masks_once(ct, ["body", "lungs", "bones"])
    assert not any(msg in w and "lower face" in w for w in meta["warnings"]), meta["warnings"]
    sl = (slice(15, None), slice(None), slice(None))
    m, meta = rules.segment_masks(crop_slices(ct, sl), ["body", "lungs", "bones"])
    found = m.get("costal_cartilages", np.zeros(m["body"].shape, bool)).sum()
    if found < 0.9 * full["costal_cartilages"][sl].sum():   # missed: it must be said
        assert any(msg in w and "cartilage" in w for w in meta["warnings"]), meta["warnings"]


@pytest.mark.data
def test_costal_margin_cut_from_its_ribs_by_the_lower_face_is_labelled(shared_data):
    """Issue 14: the same upper half of the TotalSegmentator example: the costal margin's two bars
    (about 18 and 16 mL, 97-104 mm long, in front, outside the lungs' hull, at the ribs' depth under
    the skin) were left unlabelled (cartilage Dice 0.048 against the TS reference, 3.4 of 38.5 mL):
    a cartilage was told only by a rib in view. A long thin bar cut by the lower face in the chest
    wall is now cartilage by its place: Dice >= 0.7, and >= 75 % of the label on the reference's
    cartilage; still said as possibly partly missed. The uncropped scan is unchanged by it (no bar
    labelled without its rib)."""
    import json

    from imagio.segmentation.common import dice

    d = shared_data / "totalsegmentator-example"
    ct = read_image_once(d / "example_ct_sm.nii.gz")
    names = json.loads((d / "labels_total_v2.json").read_text())
    seg = io.read_labels(d / "example_seg.nii.gz").resample_like(ct, order=0).array
    ref = np.isin(seg, [int(k) for k, v in names.items() if v == "costal_cartilages"])
    _, meta = segment_masks_once(ct, ["body", "lungs", "bones"])
    assert not any("told by its place" in w for w in meta["warnings"]), meta["warnings"]
    sl = (slice(15, None), slice(None), slice(None))
    m, meta = rules.segment_masks(crop_slices(ct, sl), ["body", "lungs", "bones"])
    cart = m["costal_cartilages"]
    assert dice(cart, ref[sl]) >= 0.7, dice(cart, ref[sl])
    assert (cart & ref[sl]).sum() >= 0.75 * cart.sum()
    assert any("told by its place" in w for w in meta["warnings"]), meta["warnings"]


@pytest.mark.data
def test_a_left_right_face_through_the_spine_is_said(shared_data):
    """New-user trial 51 H3: the TotalSegmentator example's left half (61 columns) lost 25.8 mL of
    the T12-L2 vertebral bodies beside the face (labelled body, median 103 HU: cancellous bone
    without its cortex in view), with no bone warning. A left-right face within a vertebra's half
    width of the midline is now said; the uncropped scan, whose faces lie far from the spine, is
    not warned. Own check: the face's RAS x against the midline IMAGIO reports."""
    from imagio.segmentation.common import ras_coordinate

    ct = read_image_once(shared_data / "totalsegmentator-example" / "example_ct_sm.nii.gz")
    msg = "within a vertebra's half width"
    _, meta = segment_masks_once(ct, ["body", "lungs", "bones"])
    assert not any(msg in w for w in meta["warnings"]), meta["warnings"]
    lr = anatomical_axes(ct)["R"][0]
    sl = [slice(None)] * 3
    sl[lr] = slice(0, 61)
    crop = crop_slices(ct, tuple(sl))
    _, meta = rules.segment_masks(crop, ["body", "lungs", "bones"])
    face_x = float(np.take(ras_coordinate(crop, 0), -1, axis=lr).mean())
    mid = meta["midline"]["x_mm"]
    said = [w for w in meta["warnings"] if msg in w]
    assert mid is not None and bool(said) is (abs(face_x - mid) <= 40.0), (face_x, mid, meta["warnings"])
    assert said, meta["warnings"]
