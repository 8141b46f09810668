"""DICOM folders and CT files read right or refused with the reason (issue 13).

Every series is written in the test with pydicom (``dicom_series``): an analytic patient with a
marker sphere whose RAS position and volume are known. Each kind that broke the reader before
is built here: gantry tilt, a localizer in the series (same and other matrix size), missing
slices, several series, padding, rescale, duplicates, enhanced multi-frame, NIfTI qform/sform.
"""

import json
import os

import numpy as np
import pytest
from dicom_series import (Patient, axial_positions, marker_partial_volume, marker_stats, write_enhanced,
                          write_series)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagio import io
from imagio.ct_check import check_hu
from imagio.errors import InputError, InputWarning
from imagio.volume import Volume, make_ijk_to_ras

POS_TOL_MM, VOL_TOL = 0.5, 0.02


def assert_marker(vol, patient):
    """Centroid of the thresholded marker within 0.5 mm; partial-volume volume within 2 %."""
    c, _ = marker_stats(vol)
    assert np.linalg.norm(c - patient.marker_ras) < POS_TOL_MM, (c, patient.marker_ras)
    c, ml = marker_partial_volume(vol, patient.marker_ras, patient.radius + 6)
    assert np.linalg.norm(c - patient.marker_ras) < POS_TOL_MM, (c, patient.marker_ras)
    assert abs(ml / patient.marker_ml - 1) < VOL_TOL, (ml, patient.marker_ml)


def read_warns(path, **kw):
    with pytest.warns(InputWarning) as rec:
        vol = io.read_image(path, **kw)
    return vol, [str(w.message) for w in rec]


def test_regular_series_shuffled_files_rescaled(tmp_path):
    """uint16 stored with intercept -1024 (the usual export), files named in random order."""
    pt = Patient()
    pos, row, col = axial_positions()
    names = [f"x{v:03d}.dcm" for v in np.random.default_rng(0).permutation(len(pos))]
    write_series(tmp_path / "s", pt, pos, row, col, names=names)
    vol = io.read_image(tmp_path / "s")
    assert vol.warnings == []
    assert vol.shape == (24, 48, 56) and vol.array.dtype == np.int16
    np.testing.assert_allclose(vol.spacing, [2.5, 2.5, 2.5])
    assert vol.meta["Modality"] == "CT" and vol.meta["read"]["images"] == 24
    assert_marker(vol, pt)
    check_hu(vol)  # HU after the rescale


@pytest.mark.parametrize("tilt", [15.0, -22.0])
def test_gantry_tilt_is_corrected_with_a_warning(tmp_path, tilt):
    pt = Patient(marker_lps=(12.0, -8.0, 32.0))
    pos, row, col = axial_positions(n=28, tilt_deg=tilt)
    write_series(tmp_path / "t", pt, pos, row, col, gantry_tilt=tilt)
    vol, warns = read_warns(tmp_path / "t")
    assert any(f"{abs(tilt):.1f} deg" in w and "tilt" in w for w in warns), warns
    assert vol.meta["read"]["tilt_deg"] == pytest.approx(abs(tilt), abs=0.05)
    # the output grid is regular and orthogonal: stored in any file format without shear
    d = vol.direction
    np.testing.assert_allclose(d.T @ d, np.eye(3), atol=1e-6)
    assert_marker(vol, pt)
    back = io.read_image(io.write_image(vol, tmp_path / "t.nii.gz"))
    assert_marker(back, pt)


@pytest.mark.parametrize("variant", ["same_size", "other_size", "no_imagetype"])
def test_localizer_in_the_series_is_dropped(tmp_path, variant):
    pt = Patient()
    pos, row, col = axial_positions(n=20)
    files = write_series(tmp_path / "s", pt, pos, row, col, first_instance=2)
    series = __import__("pydicom").dcmread(files[0]).SeriesInstanceUID
    rows, cols = (48, 56) if variant == "same_size" else (40, 70)
    itype = "ORIGINAL\\PRIMARY\\AXIAL" if variant == "no_imagetype" else "ORIGINAL\\PRIMARY\\LOCALIZER"
    # a sagittal scout sharing the SeriesInstanceUID
    write_series(tmp_path / "s", pt, [np.array([0.0, -150.0, 200.0])], (0, 1, 0), (0, 0, -1), rows=rows,
                 cols=cols, series=series, image_type=itype, names=["IM0001.dcm"], thickness=1.0)
    vol, warns = read_warns(tmp_path / "s")
    assert any("dropped" in w for w in warns), warns
    assert vol.shape[0] == 20
    np.testing.assert_allclose(vol.spacing, [2.5, 2.5, 2.5], atol=1e-6)
    assert_marker(vol, pt)


def test_two_scouts_dropped_are_counted_as_two(tmp_path):
    """Trial 95 F11: a coronal and a sagittal scout in the axial series (ImageType without
    LOCALIZER) were each said "1 image(s) with another orientation ... dropped", the same line
    twice, which the warnings show once: the user read one image dropped for two."""
    pt = Patient()
    pos, row, col = axial_positions(n=20)
    files = write_series(tmp_path / "s", pt, pos, row, col, first_instance=3)
    series = __import__("pydicom").dcmread(files[0]).SeriesInstanceUID
    itype = "ORIGINAL\\PRIMARY\\OTHER"
    write_series(tmp_path / "s", pt, [np.array([0.0, -150.0, 200.0])], (0, 1, 0), (0, 0, -1), rows=40, cols=70,
                 series=series, image_type=itype, names=["IM0001.dcm"], thickness=1.0)   # sagittal
    write_series(tmp_path / "s", pt, [np.array([-150.0, 0.0, 200.0])], (1, 0, 0), (0, 0, -1), rows=40, cols=70,
                 series=series, image_type=itype, names=["IM0002.dcm"], thickness=1.0)   # coronal
    vol, warns = read_warns(tmp_path / "s")
    drops = [w for w in warns if "dropped" in w]
    assert len(drops) == 1 and "2 images with another orientation" in drops[0], warns
    assert "sagittal" in drops[0] and "coronal" in drops[0], drops
    assert len(vol.meta["read"]["dropped"]) == 1, vol.meta["read"]["dropped"]
    assert vol.shape[0] == 20
    assert_marker(vol, pt)


def test_missing_slice_interpolated_and_wide_gap_refused(tmp_path):
    pt = Patient(marker_lps=(10.0, -5.0, 30.0))
    pos, row, col = axial_positions(n=30, step=2.0)
    one = [p for k, p in enumerate(pos) if k != 4]  # one slice lost (z = 8 mm, below the marker): a 4 mm gap
    write_series(tmp_path / "one", pt, one, row, col, thickness=2.0)
    vol, warns = read_warns(tmp_path / "one")
    assert any("gap" in w and "4.0 mm" in w for w in warns), warns
    assert vol.shape[0] == 30 and vol.meta["read"]["gaps_mm"] == [4.0]
    assert_marker(vol, pt)
    # a slice lost through the marker: its position stays right (the missing data blurs its edge)
    mid = [p for k, p in enumerate(pos) if k != 16]
    write_series(tmp_path / "mid", pt, mid, row, col, thickness=2.0)
    c, ml = marker_partial_volume(io.read_image(tmp_path / "mid"), pt.marker_ras, pt.radius + 6)
    assert np.linalg.norm(c - pt.marker_ras) < POS_TOL_MM and abs(ml / pt.marker_ml - 1) < 0.1
    three = [p for k, p in enumerate(pos) if k not in (11, 12, 13)]  # an 8 mm gap
    write_series(tmp_path / "three", pt, three, row, col, thickness=2.0)
    with pytest.raises(InputError, match=r"gap of 8\.0 mm .* wider than the 5 mm"):
        io.read_image(tmp_path / "three")
    # a stray slice 40 mm beyond the end is dropped, not a reason to refuse the series
    write_series(tmp_path / "stray", pt, pos + [pos[-1] + [0, 0, 40.0]], row, col, thickness=2.0)
    vol, warns = read_warns(tmp_path / "stray")
    assert vol.shape[0] == 30 and any("1 isolated slice(s) 40 mm" in w for w in warns), warns
    assert_marker(vol, pt)


def test_uneven_slice_spacing_made_regular(tmp_path):
    """Two reconstruction zones in one series (1.25 mm then 2.5 mm steps): resampled onto one
    regular grid, with a warning giving the range; the marker spans both zones."""
    pt = Patient(marker_lps=(10.0, -5.0, 14.0))
    z = np.r_[np.arange(0, 15, 1.25), np.arange(15, 40, 2.5)]
    row, col = np.array([1.0, 0, 0]), np.array([0.0, 1, 0])
    pos = [np.array([-68.75, -58.75, v]) for v in z]
    write_series(tmp_path / "u", pt, pos, row, col, thickness=2.0)
    vol, warns = read_warns(tmp_path / "u")
    assert any("non-uniform slice spacing (1.25..2.50 mm)" in w for w in warns), warns
    assert_marker(vol, pt)


def test_several_series_listed_largest_axial_read_or_the_one_asked(tmp_path):
    pt = Patient()
    pos, row, col = axial_positions(n=20)
    write_series(tmp_path / "d", pt, pos, row, col, series="1.2.3.4.100", description="axial",
                 names=[f"a{k}.dcm" for k in range(20)])
    # a coronal reformat: rows along z (inferior), columns along x; 12 images stacked along y
    cor = [np.array([-68.75, -30.0 + 5.0 * k, 60.0]) for k in range(12)]
    write_series(tmp_path / "d", pt, cor, (1, 0, 0), (0, 0, -1), rows=30, cols=56, series="1.2.3.4.200",
                 description="coronal", names=[f"c{k}.dcm" for k in range(12)], thickness=5.0)
    vol, warns = read_warns(tmp_path / "d")
    assert vol.meta["SeriesInstanceUID"] == "1.2.3.4.100"
    assert any("holds 2 series" in w and "1.2.3.4.200" in w and "--series" in w for w in warns), warns
    assert_marker(vol, pt)
    cor_vol = io.read_image(tmp_path / "d", series="1.2.3.4.200")
    assert cor_vol.shape == (12, 30, 56)
    np.testing.assert_allclose(cor_vol.direction[:, 1], [0, 0, -1], atol=1e-6)  # j runs inferior
    with pytest.raises(InputError, match=r"no series 9\.9.*1\.2\.3\.4\.100.*1\.2\.3\.4\.200|no series 9\.9.*1\.2\.3\.4\.200.*1\.2\.3\.4\.100"):
        io.read_image(tmp_path / "d", series="9.9")
    # one file of a series as the path reads that series
    one = io.read_image(tmp_path / "d" / "c3.dcm")
    assert one.meta["SeriesInstanceUID"] == "1.2.3.4.200"
    # the listing's kind: an oblique axial series says its tilt (new-user trial 77 L5: "axial")
    from imagio.dicom_headers import scan_folder

    a = np.radians(25.0)
    col_t = np.array([0.0, np.cos(a), np.sin(a)])
    obl = [np.array([-68.75, -60.0, 60.0]) + 5.0 * k * np.cross([1.0, 0.0, 0.0], col_t) for k in range(6)]
    write_series(tmp_path / "o", pt, obl, (1, 0, 0), tuple(col_t), series="1.2.3.4.300", names=[f"o{k}.dcm" for k in range(6)])
    kinds = {st.series: st.label() for st in scan_folder(tmp_path / "d").stacks + scan_folder(tmp_path / "o").stacks}
    assert ", axial, " in kinds["1.2.3.4.100"] and "oblique/sagittal/coronal" in kinds["1.2.3.4.200"]
    assert "axial, oblique: tilted 25 deg" in kinds["1.2.3.4.300"], kinds


def test_header_noise_and_header_contradictions(tmp_path):
    """Direction cosines jittered by 4e-4 (header rounding) stay one stack; a GantryDetectorTilt
    that the geometry does not show is reported; files without geometry are counted and said."""
    pt = Patient()
    pos, row, col = axial_positions(n=16)
    rng = np.random.default_rng(3)
    for k, p in enumerate(pos):
        jit = rng.uniform(-4e-4, 4e-4, 2)
        write_series(tmp_path / "s", pt, [p], row + [0, jit[0], 0], col + [jit[1], 0, 0], series="1.2.3.9",
                     first_instance=k + 1, thickness=2.5, gantry_tilt=10.0)
    ds = __import__("pydicom").dcmread(tmp_path / "s" / "IM0001.dcm")
    del ds.ImagePositionPatient
    ds.SOPInstanceUID = "1.2.3.9.99"
    ds.save_as(tmp_path / "s" / "broken.dcm", enforce_file_format=True)
    ds = __import__("pydicom").dcmread(tmp_path / "s" / "IM0002.dcm")
    ds.PixelSpacing, ds.SOPInstanceUID = [0, 0], "1.2.3.9.98"
    ds.save_as(tmp_path / "s" / "zero_spacing.dcm", enforce_file_format=True)
    vol, warns = read_warns(tmp_path / "s")
    assert any("1 file(s) with invalid PixelSpacing" in w for w in warns), warns
    assert vol.shape[0] == 16 and not any("dropped" in w for w in warns), warns
    assert any("gantry tilt of 10 deg but the slice positions" in w for w in warns), warns
    assert any("1 file(s) with no image geometry" in w for w in warns), warns
    assert_marker(vol, pt)


def test_pixel_padding_value_becomes_air(tmp_path):
    pt = Patient()
    pos, row, col = axial_positions(n=12)
    outside = lambda j, i: ((j - 23.5) / 24) ** 2 + ((i - 27.5) / 28) ** 2 > 1  # noqa: E731
    write_series(tmp_path / "p", pt, pos, row, col, signed=True, intercept=-1024, padding=(-2000, outside))
    vol, warns = read_warns(tmp_path / "p")
    assert any("PixelPaddingValue" in w for w in warns)
    assert vol.array.min() >= -1024 and np.all(vol.array[:, outside(*np.mgrid[0:48, 0:56])] == -1000)
    check_hu(vol)


def test_per_slice_rescale_and_duplicate_files(tmp_path):
    """Slices of one series stored with different slope/intercept (as some scanners do per
    slice) read in HU; a file copied twice (same SOPInstanceUID) counts once."""
    import shutil

    pt = Patient()
    pos, row, col = axial_positions(n=20)
    write_series(tmp_path / "s", pt, pos[:10], row, col, series="1.2.3.7", slope=1.0, intercept=-1024.0)
    write_series(tmp_path / "s", pt, pos[10:], row, col, series="1.2.3.7", slope=0.5, intercept=-1200.0,
                 first_instance=11, thickness=2.5)
    shutil.copy(tmp_path / "s" / "IM0012.dcm", tmp_path / "s" / "copy_of_IM0012.dcm")
    vol, warns = read_warns(tmp_path / "s")
    assert any("duplicate file" in w for w in warns) and vol.shape[0] == 20
    assert abs(float(np.median(vol.array[vol.array > -500])) - 40) < 2  # soft tissue at 40 HU in both halves
    assert_marker(vol, pt)


def test_phases_in_one_series_are_asked_for_not_guessed(tmp_path):
    """Two acquisitions (e.g. arterial and portal phase) at the same positions in one series:
    split like Slicer's loadables; reading asks which one (--series UID#N) and reads it right."""
    pt = Patient()
    pos, row, col = axial_positions(n=16)
    write_series(tmp_path / "p", pt, pos, row, col, series="1.2.3.8", acquisition=1)
    late = Patient(marker_lps=pt.marker + [4.0, 0, 0])  # the marker moved between the phases
    write_series(tmp_path / "p", late, pos, row, col, series="1.2.3.8", acquisition=2, first_instance=101)
    for asked in (None, "1.2.3.8"):
        with pytest.raises(InputError, match=r"holds 2 acquisitions at the same or interleaved positions.*"
                                             r"--series 1\.2\.3\.8#2"):
            io.read_image(tmp_path / "p", series=asked)
    vol = io.read_image(tmp_path / "p", series="1.2.3.8#2")
    assert vol.meta["read"]["series"] == "1.2.3.8#2" and vol.shape[0] == 16
    assert_marker(vol, late)
    assert_marker(io.read_image(tmp_path / "p", series="1.2.3.8#1"), pt)


def test_same_position_twice_refused(tmp_path):
    pt = Patient()
    pos, row, col = axial_positions(n=8)
    write_series(tmp_path / "d", pt, pos + pos[:3], row, col)
    with pytest.raises(InputError, match="same position"):
        io.read_image(tmp_path / "d")


def test_no_series_and_single_image_refused(tmp_path):
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="no DICOM image series"):
        io.read_image(tmp_path / "e")
    pos, row, col = axial_positions(n=1)
    write_series(tmp_path / "one", Patient(), pos, row, col)
    with pytest.raises(InputError, match="one image"):
        io.read_image(tmp_path / "one")


def test_enhanced_multiframe_ct(tmp_path):
    pt = Patient(marker_lps=(5.0, 3.0, 17.0))
    # oblique frames: turned 20 deg about z, shuffled
    a = np.radians(20)
    row, col = np.array([np.cos(a), np.sin(a), 0]), np.array([-np.sin(a), np.cos(a), 0])
    pos = [np.array([-50.0, -48.0, 0.0]) + k * 2.0 * np.cross(row, col) for k in range(20)]
    pos = [pos[k] for k in np.random.default_rng(1).permutation(20)]
    f = write_enhanced(tmp_path / "mf" / "enh.dcm", pt, pos, row, col, rows=48, cols=52, spacing=(2.0, 2.0))
    vol = io.read_image(f.parent)
    assert vol.meta["read"]["multi_frame"] and vol.shape == (20, 48, 52)
    assert_marker(vol, pt)


# files --------------------------------------------------------------------------------------

@pytest.mark.parametrize("pad", [-32768, -3024, -2048])
def test_file_padding_outside_scan_is_air_not_a_refusal(tmp_path, pad):
    pt = Patient()
    pos, row, col = axial_positions(n=20)
    write_series(tmp_path / "s", pt, pos, row, col)
    ct = io.read_image(tmp_path / "s")
    a = ct.array.copy()
    j, i = np.mgrid[0:48, 0:56]
    a[:, ((j - 23.5) / 24) ** 2 + ((i - 27.5) / 28) ** 2 > 1] = pad
    io.write_image(ct.with_array(a), tmp_path / "pad.nii.gz")
    vol, warns = read_warns(tmp_path / "pad.nii.gz")
    assert any("set to air" in w and f"{pad:g}" in w for w in warns), warns
    assert vol.array.min() >= -1024
    check_hu(vol)
    assert_marker(vol, pt)


@pytest.mark.parametrize("suffix", [".nrrd", ".nii", ".nii.gz"])
def test_nan_outside_the_field_of_view_is_air(tmp_path, suffix):
    """NaN/inf around the scan become air, warned, in every format. ITK's NIfTI reader turns them
    into 0 (water) by itself (trial 7: a body reaching the image's corners); IMAGIO reads them
    back from the file."""
    pt = Patient()
    pos, row, col = axial_positions(n=20)
    write_series(tmp_path / "s", pt, pos, row, col)
    ct = io.read_image(tmp_path / "s")
    a = ct.array.astype(np.float32)
    a[:, :3, :] = np.nan
    a[:, -2:, :] = -np.inf
    a[:4, :, :2] = np.inf      # a third, separate patch touching two faces
    io.write_image(ct.with_array(a), tmp_path / f"nan{suffix}")
    vol, warns = read_warns(tmp_path / f"nan{suffix}")
    assert any("NaN or infinite" in w for w in warns), warns
    assert np.isfinite(vol.array).all()
    bad = ~np.isfinite(a)
    np.testing.assert_array_equal(vol.array[bad], -1000)            # every one of them air, none water
    np.testing.assert_array_equal(vol.array[~bad], ct.array[~bad])  # nothing else touched
    check_hu(vol)
    assert_marker(vol, pt)


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz"])
@pytest.mark.parametrize("kind", ["nan", "wrapped"])
def test_impossible_values_inside_the_scan_are_refused_not_made_air(tmp_path, suffix, kind):
    """NaN, or HU below padding level, walled in by tissue is damage (trial 7: metal at 40,000 HU
    stored in int16 wraps to -25,536 HU and was made air inside the body, warned as 'padding')."""
    pt = Patient()
    pos, row, col = axial_positions(n=20)
    write_series(tmp_path / "s", pt, pos, row, col)
    ct = io.read_image(tmp_path / "s")
    a = ct.array.astype(np.float32 if kind == "nan" else np.int16)
    a[:, :2, :] = -3024                      # ordinary padding at the edge: not the problem
    k, j, i = np.ogrid[:20, :48, :56]
    blob = (k - 10) ** 2 + (j - 24) ** 2 + (i - 28) ** 2 <= 4
    a[blob] = np.nan if kind == "nan" else -25536
    io.write_image(ct.with_array(a), tmp_path / f"bad{suffix}")
    with pytest.raises(InputError) as e:
        io.read_image(tmp_path / f"bad{suffix}")
    msg = str(e.value)
    assert f"{int(blob.sum())} voxels" in msg and "walled in" in msg and "\n" not in msg
    centre = ct.kji_to_world(np.argwhere(blob).mean(axis=0)[None])[0]
    assert f"RAS {centre[0]:.0f}, {centre[1]:.0f}, {centre[2]:.0f} mm" in msg


def test_nifti_qform_sform_disagreement_reported_and_sform_used(tmp_path):
    nib = pytest.importorskip("nibabel")
    aff = np.array([[-2.0, 0, 0, 30.0], [0, -2.0, 0, 20.0], [0, 0, 3.0, -10.0], [0, 0, 0, 1]])  # RAS
    arr = np.zeros((10, 12, 8), np.int16)  # nibabel: [i, j, k]
    arr[4, 5, 3] = 100
    img = nib.Nifti1Image(arr, aff)
    q = aff.copy()
    q[:3, 3] += [6.0, -8.0, 0.0]  # qform 10 mm away
    img.set_sform(aff, code=1)
    img.set_qform(q, code=1)
    nib.save(img, tmp_path / "qs.nii.gz")
    vol, warns = read_warns(tmp_path / "qs.nii.gz", pad_to_air=False)
    assert any("qform and sform disagree by up to 10.0 mm" in w and "read with the sform" in w for w in warns), warns
    kji = np.argwhere(vol.array == 100)[0]
    np.testing.assert_allclose(vol.kji_to_world(kji[None])[0], (aff @ [4, 5, 3, 1])[:3], atol=1e-4)
    img.set_qform(aff, code=1)
    nib.save(img, tmp_path / "ok.nii.gz")
    assert io.read_image(tmp_path / "ok.nii.gz", pad_to_air=False).warnings == []
    sheared = aff.copy()
    sheared[2, 1] = 0.8  # a tilted series converted without correction
    img.set_sform(sheared, code=1)
    img.set_qform(None, code=0)
    nib.save(img, tmp_path / "shear.nii.gz")
    with pytest.raises(InputError, match="not orthogonal .* give IMAGIO the DICOM folder"):
        io.read_image(tmp_path / "shear.nii.gz")


def test_file_without_patient_frame_is_reported(tmp_path):
    nib = pytest.importorskip("nibabel")
    img = nib.Nifti1Image(np.zeros((6, 5, 4), np.int16), np.diag([2.0, 2.0, 3.0, 1.0]))
    img.set_qform(None, code=0)
    img.set_sform(None, code=0)
    nib.save(img, tmp_path / "noframe.nii.gz")
    _, warns = read_warns(tmp_path / "noframe.nii.gz")
    assert any("does not say how its voxels lie in the patient" in w for w in warns), warns
    (tmp_path / "nospace.nrrd").write_bytes(b"NRRD0004\ntype: short\ndimension: 3\nsizes: 4 5 6\nencoding: raw\n"
                                            b"endian: little\n\n" + bytes(240))
    _, warns = read_warns(tmp_path / "nospace.nrrd")
    assert any("no NIfTI qform/sform, no NRRD space" in w for w in warns), warns


# property: random geometries ----------------------------------------------------------------
# CI runs a fixed, modest set (CPU time); IMAGIO_HYPOTHESIS_EXAMPLES=200 runs a larger random one
EXAMPLES = int(os.environ.get("IMAGIO_HYPOTHESIS_EXAMPLES", 12))
DERANDOMIZE = "IMAGIO_HYPOTHESIS_EXAMPLES" not in os.environ

def _rotation(ax, ay, az):
    def rz(a):
        c, s = np.cos(a), np.sin(a)
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])

    def rx(a):
        c, s = np.cos(a), np.sin(a)
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])

    return rz(az) @ rx(ax) @ rz(ay)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=DERANDOMIZE,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(angles=st.tuples(*[st.floats(-np.pi, np.pi)] * 3), dx=st.floats(1.6, 2.6), dy=st.floats(1.6, 2.6),
       step=st.floats(1.5, 3.0), tilt=st.floats(-25, 25), tilt_row=st.floats(-10, 10), flip=st.booleans(),
       origin=st.tuples(*[st.floats(-300, 300)] * 3), missing=st.integers(-1, 20))
def test_marker_survives_any_geometry(tmp_path_factory, angles, dx, dy, step, tilt, tilt_row, flip, origin, missing):
    """Random orientation, pixel size, slice step, tilt (shear along the columns and the rows), a flipped
    column axis, a far origin and one missing slice: the marker's RAS position survives reading,
    resampling and writing within 0.5 mm, or the series is refused for a named reason."""
    tmp = tmp_path_factory.mktemp("g")
    r = _rotation(*angles)
    row, col = r[:, 0], r[:, 1] * (-1 if flip else 1)
    n = np.cross(row, col)
    shift = step * (np.tan(np.radians(tilt)) * col + np.tan(np.radians(tilt_row)) * row)  # sheared both ways
    centre = np.asarray(origin)
    pt = Patient(marker_lps=centre, radius=7.0, body=(1e6, 1e6))  # body everywhere: no air to lose
    nk, rows, cols = 22, 26, 26
    o = centre - (cols - 1) / 2 * dx * row - (rows - 1) / 2 * dy * col - (nk - 1) / 2 * step * n
    pos = [o + k * step * n + k * shift for k in range(nk) if k != missing]
    write_series(tmp / "s", pt, pos, row, col, rows=rows, cols=cols, spacing=(dx, dy), thickness=step)
    try:
        vol = io.read_image(tmp / "s")
    except InputError as e:
        assert missing >= 0 and 2 * step > 5.0 + 0.01 and "gap" in str(e), e  # only a too-wide gap is refused
        return
    # partial-volume centroid: exact for any grid up to interpolation (a threshold's centroid
    # also carries the digitisation of the sphere, which a missing slice through it enlarges)
    c, _ = marker_partial_volume(vol, pt.marker_ras, pt.radius + 6)
    assert np.linalg.norm(c - pt.marker_ras) < POS_TOL_MM
    back = io.read_image(io.write_image(vol, tmp / "v.nrrd"))
    c2, _ = marker_partial_volume(back, pt.marker_ras, pt.radius + 6)
    assert np.linalg.norm(c2 - pt.marker_ras) < POS_TOL_MM


@settings(max_examples=EXAMPLES + 3, deadline=None, derandomize=DERANDOMIZE,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(angles=st.tuples(*[st.floats(-np.pi, np.pi)] * 3), spacing=st.tuples(*[st.floats(0.4, 4.0)] * 3),
       flips=st.tuples(*[st.booleans()] * 3), origin=st.tuples(*[st.floats(-500, 500)] * 3),
       suffix=st.sampled_from([".nii.gz", ".nrrd", ".mha"]))
def test_file_round_trip_keeps_every_voxel_in_place(tmp_path_factory, angles, spacing, flips, origin, suffix):
    d = _rotation(*angles) @ np.diag([-1.0 if f else 1.0 for f in flips])
    vol = Volume(np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) * 3 - 200,
                 make_ijk_to_ras(spacing, origin, d))
    back = io.read_image(io.write_image(vol, tmp_path_factory.mktemp("f") / f"v{suffix}"), pad_to_air=False)
    pts = vol.kji_to_world(np.argwhere(np.ones(vol.shape, bool)))
    kji = back.world_to_kji(pts)
    assert np.abs(kji - np.rint(kji)).max() * back.spacing.max() < 0.5 * 1e-2
    np.testing.assert_array_equal(back.sample(pts), vol.array.reshape(-1))


# the generators in ../shared/cases -----------------------------------------------------------

CASES = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "cases"


def _run_case(script, *args):
    import subprocess
    import sys

    if not (CASES / script).exists():
        pytest.skip(f"{CASES / script} is not present")
    subprocess.run([sys.executable, str(CASES / script), *map(str, args)], check=True, capture_output=True)


def test_case_dicom_gantry_tilt(tmp_path):
    _run_case("dicom_gantry_tilt.py", tmp_path / "tilt", 15)
    truth = json.loads((tmp_path / "tilt_truth.json").read_text())
    vol, warns = read_warns(tmp_path / "tilt")
    assert any("15.0 deg" in w for w in warns)
    # the generator's tumour (300 HU) sits in its 'lung' (-850 HU): threshold half way
    c, ml = marker_stats(vol, threshold=(300 - 850) / 2, near=(truth["tumour_centre_ras_mm"], 16))
    assert np.linalg.norm(c - truth["tumour_centre_ras_mm"]) < POS_TOL_MM
    assert abs(ml / truth["tumour_volume_ml"] - 1) < VOL_TOL


def test_case_dicom_localizer_in_series(tmp_path):
    _run_case("dicom_localizer_in_series.py", tmp_path / "loc")
    truth = json.loads((tmp_path / "loc_truth.json").read_text())
    for variant in ("same", "diff"):
        vol, warns = read_warns(tmp_path / f"loc_{variant}")
        assert any("localizer" in w for w in warns)
        assert vol.shape[0] == truth["axial_slices"]
        np.testing.assert_allclose(vol.spacing[2], truth["slice_spacing_mm"])
        c, ml = marker_stats(vol, threshold=(300 - 850) / 2, near=(truth["tumour_centre_ras_mm"], 16))
        assert np.linalg.norm(c - truth["tumour_centre_ras_mm"]) < POS_TOL_MM
        assert abs(ml / truth["tumour_volume_ml"] - 1) < VOL_TOL


@pytest.mark.data
def test_case_ct_padding(tmp_path, shared_data):
    _run_case("ct_padding.py", tmp_path, shared_data)
    ref = io.read_image(shared_data / "totalsegmentator-example" / "example_ct.nii.gz")
    for pad in (32768, 3024):
        vol, warns = read_warns(tmp_path / f"ct_pad_{pad}.nii.gz")
        assert any("set to air" in w for w in warns)
        check_hu(vol)
        assert vol.same_grid(ref)
        inside = vol.array != -1000
        np.testing.assert_array_equal(vol.array[inside], ref.array[inside])


def test_unreadable_pixels_and_colour_images(tmp_path):
    """A slice whose pixel data is cut short is refused naming the file; a colour screenshot in
    the folder is not taken for a CT slice."""
    import pydicom

    pt = Patient()
    pos, row, col = axial_positions(n=8)
    files = write_series(tmp_path / "s", pt, pos, row, col)
    rgb = pydicom.dcmread(files[0])
    rgb.SOPInstanceUID = rgb.file_meta.MediaStorageSOPInstanceUID = "1.2.3.55"
    rgb.SeriesInstanceUID = "1.2.3.56"
    rgb.SamplesPerPixel, rgb.PhotometricInterpretation, rgb.PlanarConfiguration = 3, "RGB", 0
    rgb.BitsAllocated, rgb.BitsStored, rgb.HighBit, rgb.PixelRepresentation = 8, 8, 7, 0
    rgb.PixelData = np.zeros((48, 56, 3), np.uint8).tobytes()
    rgb.save_as(tmp_path / "s" / "screenshot.dcm", enforce_file_format=True)
    vol = io.read_image(tmp_path / "s")
    assert vol.shape[0] == 8 and vol.meta["read"]["files_ignored"] == {
        "a colour image (a screenshot or secondary capture), not a greyscale CT slice": 1}
    raw = files[3].read_bytes()
    files[3].write_bytes(raw[: len(raw) - 2000])  # pixel data cut short
    with pytest.raises(InputError, match="IM0004.dcm: SimpleITK cannot read the pixels"):
        io.read_image(tmp_path / "s")


@pytest.mark.parametrize("factor", [10.0, 2.5])
def test_a_ct_on_a_wrong_scale_is_refused_not_made_air(tmp_path, factor):
    """Trial 7: HU x 10 (a lost rescale slope) put lungs and air at -8,000..-10,000; every value
    below -1500 HU was made 'padding' air and the scan segmented as a plausible CT. Padding is
    one constant: many values below -1500 HU are refused."""
    pt = Patient()
    pos, row, col = axial_positions(n=20)
    write_series(tmp_path / "s", pt, pos, row, col)
    ct = io.read_image(tmp_path / "s")
    rng = np.random.default_rng(0)
    a = (ct.array.astype(np.float32) + rng.normal(0, 20, ct.shape)) * factor
    io.write_image(ct.with_array(a.astype(np.float32)), tmp_path / "scaled.nii.gz")
    with pytest.raises(InputError) as e:
        io.read_image(tmp_path / "scaled.nii.gz")
    assert "wrong scale" in str(e.value) and "RescaleSlope" in str(e.value)


def test_padding_smeared_by_a_rotation_is_still_padding(tmp_path):
    """The same CT rotated with linear interpolation and -3024 fill: the padding's edge takes
    many values, but few voxels; still air with the padding warning, tissue untouched."""
    sitk = pytest.importorskip("SimpleITK")
    pt = Patient()
    pos, row, col = axial_positions(n=20)
    write_series(tmp_path / "s", pt, pos, row, col)
    ct = io.read_image(tmp_path / "s")
    a = ct.array.astype(np.float32)
    j, i = np.mgrid[0:48, 0:56]
    a[:, ((j - 23.5) / 24) ** 2 + ((i - 27.5) / 28) ** 2 > 1] = -3024       # the scan circle's padding
    img = io.volume_to_sitk(ct.with_array(a))
    centre = img.TransformContinuousIndexToPhysicalPoint([s / 2 for s in img.GetSize()])
    rot = sitk.Resample(img, img, sitk.Euler3DTransform(centre, 0.0, 0.0, 0.5), sitk.sitkLinear, -3024.0)
    sitk.WriteImage(rot, str(tmp_path / "rot.nii.gz"))
    raw = sitk.GetArrayFromImage(rot)
    vol, warns = read_warns(tmp_path / "rot.nii.gz")
    assert any("padding" in w and "set to air" in w for w in warns), warns
    assert np.unique(raw[raw < -1500]).size > 10                     # the edge really is smeared
    np.testing.assert_array_equal(vol.array[raw >= -1500], raw[raw >= -1500])


@pytest.mark.parametrize("odd", ["orientation", "pixel_size"])
def test_gap_left_by_a_slice_of_another_geometry_names_it(tmp_path, odd):
    """Trial 13 (M3): one slice of a series with another pixel size or rotated 3 deg in plane is
    set aside, and the refusal blamed the gap it leaves on a missing slice ('re-send the complete
    series', which cannot help). The refusal must name the slice set aside for its geometry."""
    from pydicom.uid import generate_uid

    pt = Patient(marker_lps=(10.0, -5.0, 30.0))
    pos, row, col = axial_positions(n=30, step=3.0)
    series, study = generate_uid(), generate_uid()
    write_series(tmp_path, pt, [p for k, p in enumerate(pos) if k != 15], row, col, thickness=3.0,
                 series=series, study=study)
    t = np.deg2rad(3.0)
    r2, c2 = (np.cos(t), np.sin(t), 0.0), (-np.sin(t), np.cos(t), 0.0)
    kw = dict(row=r2, col=c2) if odd == "orientation" else dict(row=row, col=col, spacing=(2.8, 2.8))
    write_series(tmp_path, pt, [pos[15]], thickness=3.0, series=series, study=study, first_instance=100,
                 names=["odd.dcm"], **kw)
    with pytest.raises(InputError) as e:
        io.read_image(tmp_path)
    msg = str(e.value)
    assert "gap of 6.0 mm" in msg and "set aside for another geometry" in msg, msg
    assert ("another orientation" if odd == "orientation" else "pixel size") in msg, msg


def test_overlapping_thick_slices_are_judged_by_their_thickness(tmp_path):
    """New-user trial 28 (H1): a 5 mm-slice CT reconstructed every 2.5 mm (SliceThickness 5 in
    the header, a usual overlapping reconstruction) passed the airway slice limit (2.5 mm) on its
    step: `bronch` planned a 16-branch tree without a word. The reader now keeps the header's
    thickness when it exceeds the step, and the limit reads it; slices as thick as their step
    stay as they were."""
    from imagio.segmentation.airways import check_slice_thickness

    pt = Patient()
    pos, row, col = axial_positions(step=2.0)
    write_series(tmp_path / "over", pt, pos, row, col, spacing=(1.0, 1.0), thickness=5.0, rows=96, cols=112)
    vol = io.read_image(tmp_path / "over")
    np.testing.assert_allclose(vol.spacing, [1.0, 1.0, 2.0])
    assert vol.meta["read"]["slice_thickness_mm"] == 5.0 and "SliceThickness" not in vol.meta
    with pytest.raises(InputError, match="5 mm slices .*SliceThickness"):
        check_slice_thickness(vol, "CT")
    write_series(tmp_path / "even", pt, pos, row, col, spacing=(1.0, 1.0), thickness=2.0, rows=96, cols=112)
    even = io.read_image(tmp_path / "even")
    assert "slice_thickness_mm" not in even.meta["read"] and check_slice_thickness(even, "CT", refuse=False) == ""


def _oblique_stack(n, step, offset=0.0, centre=(30.0, -40.0, 120.0), size=26, dxy=2.0):
    """Positions of an oblique stack with a flipped column axis (LPS mm), centred on ``centre``
    and shifted ``offset`` mm along the slice normal. Returns (positions, row, col)."""
    r = _rotation(0.5, -0.35, 0.3)
    row, col = r[:, 0], -r[:, 1]
    nrm = np.cross(row, col)
    o = np.asarray(centre) - (size - 1) / 2 * dxy * (row + col) - (n - 1) / 2 * step * nrm + offset * nrm
    return [o + k * step * nrm for k in range(n)], row, col


def _tm(seconds):
    """DICOM TM text of ``seconds`` after midnight."""
    h, m = divmod(int(seconds), 3600)
    return f"{h:02d}{m // 60:02d}{m % 60:02d}.{round((seconds % 1) * 100):02d}"


@pytest.mark.parametrize("by", ["number", "time", "time reversed"])
def test_two_acquisitions_at_interleaved_positions_are_named_not_blended(tmp_path, by):
    """Trial 90b M1: a second acquisition (a contrast phase, a breath-hold repeat) in the same
    series, its slices 0.5 mm from the first one's, told apart by AcquisitionNumber or, with one
    number, by its time sweep: refused in one line naming both (slices, time, positions) and the
    ``UID#N`` choice, which then reads each one right. The old reader interleaved them into one
    volume as "gaps of missing slices"."""
    pt = Patient(marker_lps=(30.0, -40.0, 120.0), radius=5.0, body=(1e6, 1e6))
    late = Patient(marker_lps=pt.marker + [3.0, 0, 0], radius=5.0, body=(1e6, 1e6))  # moved between scans
    pos, row, col = _oblique_stack(22, 2.0)
    pos2 = [p + 0.5 * np.cross(row, col) for p in pos[5:17]]
    t1 = [_tm(36000 + 0.05 * k) for k in range(22)]
    t2 = [_tm(36030 + 0.05 * k) for k in range(12)]
    if by == "time reversed":  # the repeat scans the other way
        t2 = t2[::-1]
    num = (1, 2) if by == "number" else (7, 7)
    kw = {} if by == "number" else {"times": t1}
    write_series(tmp_path / "s", pt, pos, row, col, rows=26, cols=26, spacing=(2.0, 2.0), series="1.2.3.90",
                 acquisition=num[0], **kw)
    kw = {} if by == "number" else {"times": t2}
    write_series(tmp_path / "s", late, pos2, row, col, rows=26, cols=26, spacing=(2.0, 2.0), series="1.2.3.90",
                 acquisition=num[1], first_instance=101, thickness=2.0, **kw)
    key1, key2 = ("1", "2") if by == "number" else ("t100000.00", "t100030.00")  # the sweep's first time
    with pytest.raises(InputError) as e:
        io.read_image(tmp_path / "s")
    msg = str(e.value)
    assert "holds 2 acquisitions at the same or interleaved positions" in msg, msg
    assert f"#{key1}: 22 slices" in msg and f"#{key2}: 12 slices" in msg and "--series 1.2.3.90#" in msg, msg
    assert ("time 100030.00..100030.55" in msg) == (by != "number"), msg
    d = sorted(float(p @ np.cross(row, col)) for p in pos2)
    assert f"{d[0]:.1f}..{d[-1]:.1f} mm along the slice normal" in msg, msg
    with pytest.raises(InputError, match="holds 2 acquisitions"):
        io.read_image(tmp_path / "s", series="1.2.3.90")
    for key, n, who in ((key1, 22, pt), (key2, 12, late)):
        with warnings_as_errors():
            vol = io.read_image(tmp_path / "s", series=f"1.2.3.90#{key}")
        assert vol.shape[0] == n and vol.meta["read"]["series"] == f"1.2.3.90#{key}"
        c, _ = marker_partial_volume(vol, who.marker_ras, who.radius + 4)
        assert np.linalg.norm(c - who.marker_ras) < POS_TOL_MM, (key, c, who.marker_ras)


def warnings_as_errors():
    import warnings

    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("error", InputWarning)

    class _Ctx:
        def __enter__(self):
            return self

        def __exit__(self, *a):
            ctx.__exit__(*a)

    return _Ctx()


@pytest.mark.parametrize("numbering", ["per rotation", "per slice", "recon order"])
def test_one_scan_numbered_per_rotation_is_read_as_one(tmp_path, numbering):
    """Scanners number each rotation / table position of one scan (step-and-shoot) or each
    slice, and a reconstruction may write its slices in any time order: the positions follow
    one another (no position twice, none interleaved), so it is one acquisition, read whole
    without a warning."""
    pt = Patient(marker_lps=(30.0, -40.0, 120.0), radius=6.0, body=(1e6, 1e6))
    pos, row, col = _oblique_stack(24, 2.0)
    if numbering == "per rotation":  # 4 slices a rotation, the table moving towards the feet
        acq = [1 + (23 - k) // 4 for k in range(24)]
        times = [_tm(36000 + 2 * ((23 - k) // 4)) for k in range(24)]
    elif numbering == "per slice":
        acq, times = list(range(1, 25)), [_tm(36000 + 0.5 * k) for k in range(24)]
    else:
        acq, times = 3, [_tm(36000 + 0.05 * k) for k in np.random.default_rng(5).permutation(24)]
    write_series(tmp_path / "s", pt, pos, row, col, rows=26, cols=26, spacing=(2.0, 2.0), acquisition=acq,
                 times=times)
    with warnings_as_errors():
        vol = io.read_image(tmp_path / "s")
    assert vol.shape[0] == 24 and "#" not in vol.meta["read"]["series"]
    c, _ = marker_partial_volume(vol, pt.marker_ras, pt.radius + 4)
    assert np.linalg.norm(c - pt.marker_ras) < POS_TOL_MM


def test_uneven_steps_are_not_called_missing_slices(tmp_path):
    """Trial 90b LOW: extra slices 0.5 mm past ten of a 1.5 mm stack's (steps of 0.5 and 1.0 mm)
    are uneven spacing, not "gaps of missing slices" (the old reader named 7 such "gaps"); a
    step of 3 mm (twice the usual) is."""
    pt = Patient(marker_lps=(30.0, -40.0, 120.0), radius=6.0, body=(1e6, 1e6))
    pos, row, col = _oblique_stack(24, 1.5)
    nrm = np.cross(row, col)
    extra = [pos[k] + 0.5 * nrm for k in range(4, 14)]
    write_series(tmp_path / "u", pt, pos + extra, row, col, rows=26, cols=26, spacing=(2.0, 2.0), thickness=1.5)
    vol, warns = read_warns(tmp_path / "u")
    assert any("non-uniform slice spacing (0.50..1.50 mm)" in w for w in warns), warns
    assert not any("missing" in w or "gap" in w for w in warns), warns
    assert "gaps_mm" not in vol.meta["read"]
    write_series(tmp_path / "m", pt, pos[:8] + pos[9:], row, col, rows=26, cols=26, spacing=(2.0, 2.0),
                 thickness=1.5)
    vol, warns = read_warns(tmp_path / "m")
    assert any("1 gap(s) of missing slices" in w and "3.0 mm" in w for w in warns), warns


@pytest.mark.data
def test_real_ct_repeat_in_its_series_is_refused_and_per_rotation_numbers_kept(tmp_path, shared_data):
    """The real Siemens series (AcquisitionTime per slice, one AcquisitionNumber): renumbered per
    4 slices it reads voxel for voxel as before; with a repeat scan added 30 s later (same
    number, positions 1 mm from the first's, +300 HU on tissue) it is refused naming both."""
    import shutil

    import pydicom
    from pydicom.uid import generate_uid

    src = shared_data / "totalsegmentator-example" / "example_ct_dicom"
    ref = io.read_image(src)
    shutil.copytree(src, tmp_path / "rot")
    files = sorted((tmp_path / "rot").iterdir())
    dss = sorted(((f, pydicom.dcmread(f)) for f in files), key=lambda t: float(t[1].ImagePositionPatient[2]))
    for k, (f, ds) in enumerate(dss):
        ds.AcquisitionNumber = 1 + k // 4
        ds.save_as(f)
    vol = io.read_image(tmp_path / "rot")
    assert vol.same_grid(ref)
    np.testing.assert_array_equal(vol.array, ref.array)
    shutil.copytree(src, tmp_path / "rep")
    for f in sorted((tmp_path / "rep").iterdir()):
        ds = pydicom.dcmread(f)
        ds.decompress()
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1],
                                   float(ds.ImagePositionPatient[2]) + 1.0]
        ds.AcquisitionTime = _tm(14 * 3600 + 4 * 60 + 22 + float(str(ds.AcquisitionTime)[4:]))  # 14:04:22 + 52 s
        a = ds.pixel_array.astype(np.int32)
        a = np.where(a * float(ds.RescaleSlope) + float(ds.RescaleIntercept) > 20, a + 300, a)
        ds.PixelData = a.astype(ds.pixel_array.dtype).tobytes()
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(tmp_path / "rep" / f"R{f.name}")
    with pytest.raises(InputError) as e:
        io.read_image(tmp_path / "rep")
    msg = str(e.value)
    assert "holds 2 acquisitions at the same or interleaved positions" in msg, msg
    assert "20 slices, time 140352.457000..140353.284000" in msg and "20 slices, time 140514.46..140515.28" in msg, msg


def test_a_mip_beside_the_original_is_never_read_and_named_when_asked(tmp_path):
    """New-user trial 98 F3: a folder with the original series and a derived 10.5 mm MIP holding
    more images read the MIP as 'the largest axial CT' and a plan ran on it (a path the original
    refuses). The original is read; the MIP, asked by UID or alone, is refused in one line that
    names the projection and the original's --series; a DERIVED reformat read is said."""
    import pydicom

    pt = Patient()
    pos, row, col = axial_positions(n=20)
    write_series(tmp_path / "d", pt, pos, row, col, series="1.2.3.5.1", names=[f"o{k}.dcm" for k in range(20)])
    dense = [pos[0] + 1.25 * k * np.array([0.0, 0.0, 1.0]) for k in range(40)]   # overlapping, more images
    write_series(tmp_path / "d", pt, dense, row, col, series="1.2.3.5.2", thickness=10.0, description="MIP 10mm",
                 image_type="DERIVED\\SECONDARY\\AXIAL\\MIP", names=[f"m{k}.dcm" for k in range(40)])
    vol, warns = read_warns(tmp_path / "d")
    assert vol.meta["SeriesInstanceUID"] == "1.2.3.5.1" and vol.shape[0] == 20, warns
    assert any("original axial CT" in w and "1.2.3.5.2" in w for w in warns), warns
    assert not any("DERIVED" in w for w in warns), warns
    assert_marker(vol, pt)
    # trial 99 F2: the same slab typed ORIGINAL (a scanner-side MIP/slab, or its ImageType lost on
    # export): the thinnest sections are read; the slab alone is read with a warning of its thickness
    import shutil

    shutil.copytree(tmp_path / "d", tmp_path / "t")
    for f in (tmp_path / "t").glob("m*.dcm"):
        ds = pydicom.dcmread(f)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.save_as(f, enforce_file_format=True)
    vol, warns = read_warns(tmp_path / "t")
    assert vol.meta["SeriesInstanceUID"] == "1.2.3.5.1" and vol.shape[0] == 20, warns
    assert not any("sections 10 mm thick" in w for w in warns), warns
    vol, warns = read_warns(tmp_path / "t", series="1.2.3.5.2")
    assert vol.shape[0] == 40 and any("sections 10 mm thick every 1.25 mm (8x their step" in w for w in warns), warns
    with pytest.raises(InputError, match=r"1\.2\.3\.5\.2 is a MIP projection.*not the anatomy.*--series 1\.2\.3\.5\.1"):
        io.read_image(tmp_path / "d", series="1.2.3.5.2")
    for f in (tmp_path / "d").glob("m*.dcm"):   # the MIP alone
        (tmp_path / "mip").mkdir(exist_ok=True)
        f.rename(tmp_path / "mip" / f.name)
    with pytest.raises(InputError, match=r"MIP projection.*ImageType ORIGINAL"):
        io.read_image(tmp_path / "mip")
    # a derived (reformatted) series alone is read, and said to be derived
    for f in (tmp_path / "mip").glob("*.dcm"):
        ds = pydicom.dcmread(f)
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.save_as(f, enforce_file_format=True)
    vol, warns = read_warns(tmp_path / "mip")
    assert vol.shape[0] == 40 and any("is DERIVED (ImageType DERIVED/SECONDARY/AXIAL)" in w for w in warns), warns


def test_a_bolus_tracking_series_beside_the_ct_is_not_taken_for_the_volume(tmp_path):
    """New-user trial 98 F1/F2: 30 monitoring images at one table position (one AcquisitionNumber,
    no times, as de-identification leaves them) outnumbered the 20-slice CT and the folder was
    refused ('slices at the same position'); with one AcquisitionNumber per image the listing
    named each of them. The CT (most positions) is read; a split series is listed in one entry."""
    pt = Patient()
    pos, row, col = axial_positions(n=20)
    write_series(tmp_path / "d", pt, pos, row, col, series="1.2.3.6.1", names=[f"c{k}.dcm" for k in range(20)])
    write_series(tmp_path / "d", pt, [pos[5]] * 30, row, col, series="1.2.3.6.2", acquisition=1, thickness=2.5,
                 description="Bolus tracking", names=[f"b{k}.dcm" for k in range(30)])
    vol, warns = read_warns(tmp_path / "d")
    assert vol.meta["SeriesInstanceUID"] == "1.2.3.6.1" and vol.shape[0] == 20, warns
    assert_marker(vol, pt)
    write_series(tmp_path / "e", pt, pos, row, col, series="1.2.3.6.1", names=[f"c{k}.dcm" for k in range(20)])
    write_series(tmp_path / "e", pt, [pos[5]] * 30, row, col, series="1.2.3.6.3", acquisition=list(range(1, 31)),
                 thickness=2.5, description="Bolus tracking", names=[f"b{k}.dcm" for k in range(30)])
    vol, warns = read_warns(tmp_path / "e")
    assert vol.meta["SeriesInstanceUID"] == "1.2.3.6.1", warns
    listing = next(w for w in warns if "the folder holds 2 series" in w)
    assert "1.2.3.6.3 (30 acquisitions of 1 images each, e.g. --series 1.2.3.6.3#" in listing, listing
    assert listing.count("1.2.3.6.3#") == 1, listing


def test_a_folder_with_two_patients_is_refused_not_guessed(tmp_path):
    """New-user trial 102 F1: a PACS/CD folder holding another patient's thin slab beside the
    patient's whole chest: the thin slab of the OTHER patient was read, said only as "the folder
    holds 2 series". Now refused naming both patients; --series reads the one asked, with a
    note that another patient's images are there. Same patient, two studies and a slab beside
    the whole scan: read, with notes that name the other study and the wider series."""
    import subprocess
    import sys

    pt = Patient()
    whole, row, col = axial_positions(n=24, step=5.0)         # 120 mm
    slab, _, _ = axial_positions(n=8, step=2.5, origin=(-68.75, -58.75, 20.0))   # 20 mm, thinner
    write_series(tmp_path / "mix", pt, whole, row, col, series="1.2.3.9.1", patient_id="PAT-A",
                 names=[f"a{k}.dcm" for k in range(24)])
    write_series(tmp_path / "mix", pt, slab, row, col, series="1.2.3.9.2", patient_id="PAT-B",
                 names=[f"b{k}.dcm" for k in range(8)])
    with pytest.raises(InputError, match=r"2 patients.*PAT-A.*1\.2\.3\.9\.1.*PAT-B.*1\.2\.3\.9\.2|"
                                         r"2 patients.*PAT-B.*1\.2\.3\.9\.2.*PAT-A.*1\.2\.3\.9\.1"):
        io.read_image(tmp_path / "mix")
    vol, warns = read_warns(tmp_path / "mix", series="1.2.3.9.1")
    assert vol.meta["PatientID"] == "PAT-A" and vol.shape[0] == 24
    assert any("another patient" in w and "PAT-B" in w for w in warns), warns
    # the command line: one line, exit code 2
    r = subprocess.run([sys.executable, "-m", "imagio.cli", "info", str(tmp_path / "mix")],
                       capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) == 1 and "2 patients" in r.stderr, r.stderr

    # one patient, two studies (a prior beside the current), the thinner slab read
    write_series(tmp_path / "one", pt, whole, row, col, series="1.2.3.9.3", patient_id="PAT-A", study_date="20260101",
                 names=[f"a{k}.dcm" for k in range(24)])
    write_series(tmp_path / "one", pt, slab, row, col, series="1.2.3.9.4", patient_id="PAT-A", study_date="20261201",
                 names=[f"b{k}.dcm" for k in range(8)])
    vol, warns = read_warns(tmp_path / "one")
    assert vol.meta["SeriesInstanceUID"] == "1.2.3.9.4"   # thinnest sections, as before
    # independent extents: 8 positions x 2.5 mm and 24 x 5 mm
    assert any("covers 20 mm" in w and "1.2.3.9.3 covers 120 mm" in w and "--series 1.2.3.9.3" in w
               for w in warns), warns
    assert any("2 studies" in w and "20260101" in w and "20261201" in w for w in warns), warns


def test_patient_names_compared_as_people_write_them_and_anonymised_series_said(tmp_path):
    """New-user trial 103 F1.1/F1.2: an anonymised series (no PatientID, no PatientName) beside a
    named patient's series was read with only "the folder holds 2 series"; and 'DOE^JOHN' vs
    'Doe^John' without IDs, or an ID on one series only with the same name, were refused as two
    patients. Names compare case- and caret-insensitively, an ID missing on one side compares the
    names, and a series naming no one beside a named one is said (IMAGIO cannot tell)."""
    pt = Patient()
    whole, row, col = axial_positions(n=12, step=5.0)
    slab, _, _ = axial_positions(n=8, step=2.5, origin=(-68.75, -58.75, 10.0))

    def folder(name, a, b):
        write_series(tmp_path / name, pt, whole, row, col, series="1.2.3.8.1", names=[f"a{k}.dcm" for k in range(12)], **a)
        write_series(tmp_path / name, pt, slab, row, col, series="1.2.3.8.2", names=[f"b{k}.dcm" for k in range(8)], **b)
        return tmp_path / name

    # the same person written two ways: read, not refused
    for a, b in (({"patient_id": "", "patient_name": "DOE^JOHN"}, {"patient_id": "", "patient_name": "Doe^John"}),
                 ({"patient_id": "P1", "patient_name": "DOE^JOHN"}, {"patient_id": "", "patient_name": "DOE^JOHN"})):
        vol, warns = read_warns(folder(f"same{len(list(tmp_path.iterdir()))}", a, b))
        assert vol.meta["SeriesInstanceUID"] == "1.2.3.8.2", warns
        assert not any("patient" in w and "another" in w for w in warns), warns
    # names that differ with no ID to compare: two patients
    with pytest.raises(InputError, match="2 patients"):
        io.read_image(folder("two", {"patient_id": "", "patient_name": "DOE^JOHN"},
                             {"patient_id": "", "patient_name": "ROE^JANE"}))
    # an anonymised slab beside a named whole scan: read (thinnest), and said
    vol, warns = read_warns(folder("anon", {"patient_id": "P1"}, {"patient_id": ""}))
    assert vol.meta["SeriesInstanceUID"] == "1.2.3.8.2"
    assert any("1.2.3.8.2 names no patient" in w and "PatientID P1" in w for w in warns), warns
    # the named one asked for: the anonymised one beside it is said
    vol, warns = read_warns(tmp_path / "anon", series="1.2.3.8.1")
    assert any("name no patient" in w and "PatientID P1" in w for w in warns), warns


@pytest.mark.parametrize("tags", ["abc", "cab", "acb", "bca"])
def test_two_ids_with_one_name_are_two_patients_whatever_the_order(tmp_path, tags):
    """Two series of PatientIDs P1 and P2 (one name) and a third naming 'DOE^JOHN' without an ID:
    the third matches both, the first two differ. Grouping each series against the first member
    of a group only made the result hang on the files' order: with the ID-less one first, all
    three were one patient and the folder was read without a word (review of stop 61). ``tags``:
    the file-name prefixes of P1's, P2's and the ID-less series (the folder's order)."""
    pt = Patient()
    whole, row, col = axial_positions(n=12, step=5.0)
    slab, _, _ = axial_positions(n=8, step=2.5, origin=(-68.75, -58.75, 10.0))
    mid, _, _ = axial_positions(n=10, step=3.0, origin=(-68.75, -58.75, 5.0))
    uids = ("1.2.3.9.1", "1.2.3.9.2", "1.2.3.9.3")
    for uid, pos, pid, tag in zip(uids, (whole, slab, mid), ("P1", "P2", ""), tags):
        write_series(tmp_path, pt, pos, row, col, series=uid, patient_id=pid, patient_name="DOE^JOHN",
                     names=[f"{tag}{k:02d}.dcm" for k in range(len(pos))])
    with pytest.raises(InputError, match="2 patients") as e:
        io.read_image(tmp_path)
    said = str(e.value)
    p1, p2 = said.index("PatientID P1"), said.index("PatientID P2")
    # P1's and P2's own series are each listed in their own group
    assert uids[0] in said[p1:p2 if p2 > p1 else None] and uids[1] in said[p2:p1 if p1 > p2 else None], said
