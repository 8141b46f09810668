"""Padding is not the patient's air: whole slices of one value at or below air (-1024, -2048,
-3024 HU, as scanners, converters and resamplers write them) on any face of a real CT are
outside the scan, like the volume's edge (new-user trial 33 M1: one -1024 slice above the
TotalSegmentator example took the top slice of lung away, -25 %). The inputs are the real cases
padded here; body, lungs and bones must stay within 2 % of the unpadded result, nothing is
labelled on the padding, and the padding is said."""

import numpy as np
import pytest
from scipy import ndimage

from conftest import read_image_once, segment_masks_once
from imagio import io
from imagio.segmentation import rules
from imagio.segmentation.common import anatomical_axes, crop_slices, field_of_view_crops
from imagio.volume import Volume

pytestmark = pytest.mark.data

CASES = {"ts_example": "totalsegmentator-example/example_ct_sm.nii.gz",
         "lung1": "pyradiomics-lung/lung1_image.nrrd",
         "lung2": "pyradiomics-lung/lung2_image.nrrd",
         "chest_cta": "totalsegmentator-chest-cta/chest_cta.nii.gz"}
STRUCTURES = ["body", "bones", "lungs", "airways"]
BONES = ("vertebrae", "ribs", "bone")


def padded(ct: Volume, axis: int, high: bool, n: int, value: float) -> Volume:
    """``ct`` with ``n`` slices of ``value`` added along array ``axis`` (k, j, i) at its high or
    low end, world positions of the measured voxels kept."""
    a = ct.array
    shape = list(a.shape)
    shape[axis] = n
    pad = np.full(shape, value, a.dtype if np.can_cast(np.min_scalar_type(value), a.dtype) else np.int32)
    m = ct.ijk_to_ras.copy()
    if high:
        arr = np.concatenate([a.astype(pad.dtype), pad], axis=axis)
    else:
        arr = np.concatenate([pad, a.astype(pad.dtype)], axis=axis)
        m[:3, 3] -= m[:3, 2 - axis] * n
    return Volume(arr, m, ct.name, scanner_coordinates=ct.scanner_coordinates)


def face(ct: Volume, letter: str, positive: bool) -> tuple[int, bool]:
    """(array axis, high end) of the face of ``ct`` towards R/A/S (``positive``) or L/P/I."""
    a, sign = anatomical_axes(ct)[letter]
    return a, (sign > 0) == positive


def through_file(vol: Volume, tmp_path, name: str) -> Volume:
    """``vol`` written as NIfTI and read back as a user's file is (the reader sets values below
    -1500 HU, a converter's padding, to air)."""
    return io.read_image(io.write_image(vol, tmp_path / f"{name}.nii.gz"))


def volumes_ml(ct: Volume, masks: dict) -> dict:
    v = ct.voxel_volume_ml
    out = {n: masks[n].sum() * v for n in ("body", "lung_left", "lung_right") if n in masks}
    out["bones"] = sum(masks[n].sum() for n in BONES if n in masks) * v
    return out


def check_padded(ct: Volume, ref: dict, ref_meta: dict, padded_ct: Volume, sl: tuple):
    """Segment ``padded_ct`` (``ct`` padded; ``sl``: its measured box) and compare with the
    unpadded ``ref``."""
    m, meta = rules.segment_masks(padded_ct, STRUCTURES)
    got, want = volumes_ml(padded_ct, m), volumes_ml(ct, ref)
    for name, v in want.items():
        assert got.get(name, 0.0) == pytest.approx(v, rel=0.02), (name, got, want)
    outside = np.ones(padded_ct.shape, bool)
    outside[sl] = False
    for name, mask in m.items():
        assert not (mask & outside).any(), name
    assert ("trachea" in m) == ("trachea" in ref), meta["warnings"]
    assert any(w.startswith("padding:") for w in meta["warnings"]), meta["warnings"]
    assert not any(w.startswith("padding:") for w in ref_meta["warnings"])


def box(shape, axis: int, high: bool, n: int) -> tuple:
    sl = [slice(None)] * 3
    sl[axis] = slice(0, shape[axis] - n) if high else slice(n, shape[axis])
    return tuple(sl)


@pytest.mark.parametrize("case, letter, positive, n, value", [
    ("ts_example", "S", True, 1, -1024),     # trial 33 M1: its lungs reach the top face
    ("ts_example", "S", True, 3, -3024),     # a converter's padding, read (set to air) from a file
    ("ts_example", "S", False, 2, -2048),
    ("lung1", "S", False, 1, -1024),
    ("lung2", "S", True, 2, -3024),
])
def test_padded_end_slices_are_outside_the_scan(shared_data, tmp_path, case, letter, positive, n, value):
    ct = read_image_once(shared_data / CASES[case])
    ref, ref_meta = segment_masks_once(ct, STRUCTURES)   # once per case (and half) for all parameters
    axis, high = face(ct, letter, positive)
    p = padded(ct, axis, high, n, value)
    if value < -1500:
        p = through_file(p, tmp_path, case)
    check_padded(ct, ref, ref_meta, p, box(p.shape, axis, high, n))


@pytest.mark.parametrize("case, half", [("chest_cta", "right_half"), ("ts_example", "left_half"),
                                        ("ts_example", "right_half")])
@pytest.mark.parametrize("medial", [True, False])
def test_padded_side_of_a_hemithorax_is_outside_the_scan(shared_data, case, half, medial):
    """A hemithorax view padded on its cut (medial) face or on its lateral face: the lungs
    stay on their side, the trachea in view is found."""
    ct = crop_slices(read_image_once(shared_data / CASES[case]), field_of_view_crops(read_image_once(
        shared_data / CASES[case]))[half])
    ref, ref_meta = segment_masks_once(ct, STRUCTURES)   # once per case (and half) for all parameters
    # the medial face of the right half is its left (L) face
    axis, high = face(ct, "R", (half == "left_half") == medial)
    p = padded(ct, axis, high, 2, -1024)
    check_padded(ct, ref, ref_meta, p, box(p.shape, axis, high, 2))


def test_measured_slices_are_not_padding(shared_data):
    """No slice of the real cases is taken as padding, nor a constant slice above air (0 HU:
    not padding by this rule)."""
    from imagio.padding import padded_slabs

    for path in CASES.values():
        ct = read_image_once(shared_data / path)
        assert not padded_slabs(ct.array).any(), path
    ct = read_image_once(shared_data / CASES["ts_example"])
    axis, high = face(ct, "S", True)
    assert not padded_slabs(padded(ct, axis, high, 1, 0).array).any()
    slabs = padded_slabs(padded(ct, axis, high, 2, -1000).array)
    assert slabs[axis, int(high)] == 2 and slabs.sum() == 2


def test_detection_lungs_and_body_ignore_padding(shared_data):
    """The lung and body masks `detect` and the planner build directly (`lungs.lung_mask`,
    `body.body_mask`) take the padded slab as outside the scan too."""
    from imagio.detection.blobs import lungs_on
    from imagio.segmentation.body import body_mask

    ct = read_image_once(shared_data / CASES["ts_example"])
    axis, high = face(ct, "S", True)
    p = padded(ct, axis, high, 1, -1024)
    sl = box(p.shape, axis, high, 1)
    for fn in (lambda v: lungs_on(v, None), body_mask):
        ref, got = fn(ct), fn(p)
        assert got[sl].sum() == ref.sum() and got.sum() == ref.sum()


def test_padding_outside_a_small_reconstruction_circle(shared_data, tmp_path):
    """A small field of view (the chest CTA's central two thirds in-plane) whose reconstruction
    circle cuts both lungs, written with -3024 outside the circle as scanners do: the padding is
    the scan's edge, not air around the patient; each lung within 2 % of the unpadded result
    inside the circle, within 6 % (on 03ca614 the lungs joined the padding as outside air: 343
    of 3,111 mL; a circle cutting the lungs leaves hilar vessels wider than the widest
    intrapulmonary one open to it, not filled: the left lung is 5 % short)."""
    ct = read_image_once(shared_data / CASES["chest_cta"])
    ct = crop_slices(ct, field_of_view_crops(ct)["small_fov"])
    ref, _ = rules.segment_masks(ct, STRUCTURES)
    s_ax = anatomical_axes(ct)["S"][0]
    plane = [a for a in range(3) if a != s_ax]
    # the circle inscribed in the square of the smaller in-plane extent, in mm
    sp = ct.spacing_kji
    r = [np.arange(ct.shape[a]) * sp[a] for a in plane]
    cen = [0.5 * (x[0] + x[-1]) for x in r]
    rad = 0.5 * min(x[-1] - x[0] for x in r)
    d2 = (r[0][:, None] - cen[0]) ** 2 + (r[1][None, :] - cen[1]) ** 2
    shape = [1, 1, 1]
    shape[plane[0]], shape[plane[1]] = d2.shape
    outside = np.broadcast_to((d2 > rad ** 2).reshape(shape), ct.shape)
    a = ct.array.astype(np.int16)
    a[outside] = -3024
    p = through_file(ct.with_array(a), tmp_path, "small_fov_circle")
    m, meta = rules.segment_masks(p, STRUCTURES)
    for side in ("lung_left", "lung_right"):
        want = (ref[side] & ~outside).sum()
        assert m[side].sum() == pytest.approx(want, rel=0.06), (side, m[side].sum(), want)
        assert not (m[side] & outside).any(), side
    assert "trachea" in m, meta["warnings"]


def test_padding_note_quotes_the_files_padding_value(shared_data, tmp_path):
    """New-user trial 52: slices of -32768 in the file, read (set to air), were said to be "whole
    slices of one value (-1000 HU)": the value the reader wrote, not the file's. The note names the
    file's value."""
    from imagio.segmentation.common import measured_box, padding_note

    ct = read_image_once(shared_data / CASES["ts_example"])
    axis, high = face(ct, "S", True)
    p = through_file(padded(ct, axis, high, 2, -32768), tmp_path, "ts_example")
    note = padding_note(p, measured_box(p))
    assert "-32768" in note and "set to air" in note, note



def reordered(vol: Volume, perm, flip) -> Volume:
    """``vol`` with array axis a taken from axis ``perm[a]`` (k, j, i), then flipped where
    ``flip[a]``: the same voxels at the same RAS points (the IJK->RAS columns permuted and flipped)."""
    a = vol.array.transpose(perm)
    kji_new_to_old = np.zeros((4, 4))
    kji_new_to_old[3, 3] = 1.0
    for ax, (src, f) in enumerate(zip(perm, flip)):
        kji_new_to_old[src, ax] = -1.0 if f else 1.0
        kji_new_to_old[src, 3] = a.shape[ax] - 1.0 if f else 0.0
    a = a[tuple(slice(None, None, -1) if f else slice(None) for f in flip)]
    rev = np.eye(4)[[2, 1, 0, 3]]   # ijk <-> kji
    return Volume(np.ascontiguousarray(a), vol.ijk_to_ras @ rev @ kji_new_to_old @ rev, vol.name,
                  scanner_coordinates=vol.scanner_coordinates)


@pytest.mark.parametrize("perm, flip", [((0, 1, 2), (False, False, False)),
                                        ((0, 2, 1), (True, False, True))])   # in-plane transposed, flipped
def test_inscribed_circle_padding_beside_the_back_makes_no_lung_or_vessel(shared_data, tmp_path, perm, flip):
    """Issue 14 new-user trial (`cases/ct_padding.py`): the TotalSegmentator example written with
    -32768 outside the circle inscribed in its slices (an ellipse in mm on its 122 x 101 grid), as
    scanners write Pixel Padding Value. The circle runs within a voxel of the skin along the back;
    the voxel next to it outside the body, joined with the skin's partial volume (-600 HU), made
    bands taken as lung (+18.5 and +10.1 mL) and their skin as lung vessels: 14.7 mL against
    6.9 mL unpadded; pixels the digitised circle leaves between padding pixels were lung too.
    Padded: lungs and lung vessels within 2 % of the unpadded result inside the circle, nothing
    labelled on the padding; the same with the grid stored transposed and flipped."""
    structures = ["body", "lungs", "lung_vessels"]
    ct = reordered(read_image_once(shared_data / "totalsegmentator-example/example_ct.nii.gz"), perm, flip)
    ref, _ = segment_masks_once(ct, structures)
    s_ax = anatomical_axes(ct)["S"][0]
    plane = [a for a in range(3) if a != s_ax]
    u, v = np.meshgrid(*(np.linspace(-1, 1, ct.shape[a]) for a in plane), indexing="ij")
    shape = [1, 1, 1]
    shape[plane[0]], shape[plane[1]] = u.shape
    outside = np.broadcast_to(((u ** 2 + v ** 2) > 1.0).reshape(shape), ct.shape)
    a = ct.array.astype(np.int16)
    a[outside] = -32768
    p = through_file(ct.with_array(a), tmp_path, "ts_example_circle")
    m, meta = rules.segment_masks(p, structures)
    assert ref["lung_vessels"].sum() * ct.voxel_volume_ml > 5.0   # the case holds lung vessels
    for name in ("lung_left", "lung_right", "lung_vessels"):
        want = (ref[name] & ~outside).sum()
        assert m[name].sum() == pytest.approx(want, rel=0.02), (name, m[name].sum(), want)
    for name, mask in m.items():
        assert not (mask & outside).any(), name
    # no lung apart from the unpadded lungs (beyond one voxel of them): before, 20 single voxels
    # of outside air along the circle, one 98 mm in front of the lungs (the costal cartilages'
    # plane, through the lungs' antero-posterior middle, moved 37 mm: -6 % of cartilage)
    near = ndimage.binary_dilation(ref["lung_left"] | ref["lung_right"] | ref["lung_vessels"],
                                   np.ones((3, 3, 3), bool))
    assert not ((m["lung_left"] | m["lung_right"] | m["lung_vessels"]) & ~near).any()
