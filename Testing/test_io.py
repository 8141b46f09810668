"""imagio.io: formats, LPS<->RAS, label names, DICOM, clear errors."""

import json

import numpy as np
import pytest

from imagio import io
from imagio.errors import InputError
from imagio.volume import Volume


def same_world(a: Volume, b: Volume, tol=1e-4):
    pts = a.kji_to_world(np.argwhere(np.ones(a.shape, bool)))
    kji = b.world_to_kji(pts)
    assert np.abs(kji - np.rint(kji)).max() * b.spacing.max() < tol
    np.testing.assert_array_equal(b.sample(pts), a.array.reshape(-1))


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_round_trip_oblique_anisotropic(tmp_path, oblique_volume, suffix):
    p = io.write_image(oblique_volume, tmp_path / f"v{suffix}")
    back = io.read_image(p)
    same_world(oblique_volume, back)
    np.testing.assert_allclose(back.spacing, oblique_volume.spacing, atol=1e-5)


def test_lps_to_ras_is_applied_once(tmp_path, oblique_volume):
    import SimpleITK as sitk
    io.write_image(oblique_volume, tmp_path / "v.nrrd")
    img = sitk.ReadImage(str(tmp_path / "v.nrrd"))
    lps = np.array(img.TransformContinuousIndexToPhysicalPoint((1.0, 2.0, 3.0)))
    ras = oblique_volume.ijk_to_world([[1.0, 2.0, 3.0]])[0]
    np.testing.assert_allclose(lps, ras * [-1, -1, 1], atol=1e-6)


def test_labels_with_sidecar_and_seg_nrrd(tmp_path, oblique_affine):
    arr = np.zeros((4, 5, 6), np.uint8)
    arr[1:3, 1:4, 2:5] = 5
    arr[0, 0, 0] = 2
    lab = Volume(arr, oblique_affine, labels={5: "liver", 2: "aorta"})
    io.write_labels(lab, tmp_path / "l.nii.gz")
    doc = json.loads((tmp_path / "l.labels.json").read_text())
    assert doc["labels"]["5"]["name"] == "liver"
    back = io.read_labels(tmp_path / "l.nii.gz")
    assert back.labels == {5: "liver", 2: "aorta"}
    io.write_labels(lab, tmp_path / "l.seg.nrrd")
    seg = io.read_labels(tmp_path / "l.seg.nrrd")
    assert seg.labels == {2: "aorta", 5: "liver"}
    same_world(lab, seg)


def test_errors_are_clear(tmp_path, oblique_affine):
    with pytest.raises(InputError, match="no such file"):
        io.read_image(tmp_path / "missing.nii.gz")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="not a readable image"):
        io.read_image(tmp_path / "notes.txt")
    import SimpleITK as sitk
    sitk.WriteImage(sitk.Image(8, 8, sitk.sitkInt16), str(tmp_path / "slice.nrrd"))
    with pytest.raises(InputError, match="2D"):
        io.read_image(tmp_path / "slice.nrrd")
    io.write_image(Volume(np.zeros((3, 3, 3), np.uint8), oblique_affine), tmp_path / "empty.nrrd")
    with pytest.raises(InputError, match="empty"):
        io.read_labels(tmp_path / "empty.nrrd")


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_truncated_file_is_refused_not_zero_filled(tmp_path, oblique_affine, suffix):
    """New-user trial 4: ITK reads a NIfTI file cut short (an interrupted copy) as a valid image,
    the missing slices 0 HU. Every format: a complete file reads back exactly, a file cut at any
    of three points is one InputError (the CLI: one line, exit 2), never an image."""
    from imagio.cli import main
    rng = np.random.default_rng(3)
    a = rng.integers(-1000, 1500, (23, 31, 37)).astype(np.int16)   # incompressible: the cut falls in the data
    src = tmp_path / f"ct{suffix}"
    io.write_image(Volume(a, oblique_affine), src)
    np.testing.assert_array_equal(io.read_image(src, pad_to_air=False).array, a)
    data = src.read_bytes()
    for frac in (0.3, 0.7, 0.995):
        cut = tmp_path / f"cut{int(frac * 1000)}{suffix}"
        cut.write_bytes(data[:int(len(data) * frac)])
        with pytest.raises(InputError):
            io.read_image(cut)
    assert main(["info", str(cut)]) == 2


def test_nifti_gzip_members_and_trailing_bytes_still_read(tmp_path, oblique_affine):
    """What the truncation check must not refuse: a .nii.gz of two gzip members (``cat a.gz b.gz``,
    RFC 1952) and a .nii with bytes after the data."""
    import gzip
    a = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)
    io.write_image(Volume(a, oblique_affine), tmp_path / "x.nii")
    raw = (tmp_path / "x.nii").read_bytes()
    (tmp_path / "m.nii.gz").write_bytes(gzip.compress(raw[:200]) + gzip.compress(raw[200:]))
    (tmp_path / "t.nii").write_bytes(raw + b"\0" * 16)
    for name in ("m.nii.gz", "t.nii"):
        np.testing.assert_array_equal(io.read_image(tmp_path / name, pad_to_air=False).array, a)


@pytest.mark.data
def test_dicom_series_matches_its_reference_segmentation(shared_data):
    d = shared_data / "totalsegmentator-example"
    ct = io.read_image(d / "example_ct_dicom")
    assert ct.shape == (20, 512, 512)
    np.testing.assert_allclose(ct.spacing, [0.98, 0.98, 2.0], atol=0.02)
    assert -1100 < np.percentile(ct.array, 1) < -900 and 30 < np.median(ct.array[ct.array > -200]) < 300
    seg = io.read_image(d / "example_seg_dicom.nii.gz")
    assert seg.shape == ct.shape
    # the NIfTI is stored with another axis order/flip: the voxel centres must still coincide
    corners = np.array([[k, j, i] for k in (0, 19) for j in (0, 511) for i in (0, 511)], float)
    a, b = ct.kji_to_world(corners), seg.kji_to_world(corners)
    dist = np.linalg.norm(a[:, None] - b[None], axis=-1).min(1)
    assert dist.max() < 0.5  # mm: each CT corner is a segmentation corner
    assert ct.meta.get("Modality") == "CT"


@pytest.mark.data
def test_totalsegmentator_labels_with_names(shared_data):
    d = shared_data / "totalsegmentator-example"
    names = {int(k): v for k, v in json.loads((d / "labels_total_v2.json").read_text()).items()}
    seg = io.read_labels(d / "example_seg.nii.gz", names)
    assert "liver" in seg.labels.values() and len(seg.labels) >= 40
    ct = io.read_image(d / "example_ct_sm.nii.gz")
    assert ct.same_grid(seg)


def test_labels_of_another_scan_are_refused_naming_both_extents(oblique_affine):
    """A label map with structures, none inside the CT (another series), is one clear refusal,
    not "structure X has no voxels" (trial 7); one that overlaps is resampled as before."""
    ct = Volume(np.zeros((12, 14, 16), np.int16), oblique_affine)
    far = oblique_affine.copy()
    far[:3, 3] += far[:3, 2] / np.linalg.norm(far[:3, 2]) * 400.0   # 400 mm along the slice axis
    lab = np.zeros((12, 14, 16), np.uint8)
    lab[3:6, 4:8, 5:9] = 1
    other = Volume(lab, far, labels={1: "tumor"})
    with pytest.raises(InputError) as e:
        io.labels_on_grid(other, ct)
    msg = str(e.value)
    assert "does not overlap the CT" in msg and "\n" not in msg
    kji = np.argwhere(lab > 0).astype(float)            # every labelled voxel centre, RAS
    ras = other.kji_to_world(kji)
    want = ", ".join(f"{ax} {ras[:, n].min():.0f}..{ras[:, n].max():.0f}" for n, ax in enumerate("RAS"))
    assert f"lie at {want} mm" in msg, (want, msg)
    near = oblique_affine.copy()
    near[:3, 3] += oblique_affine[:3, 0]            # one voxel along i: overlaps, resampled as before
    out = io.labels_on_grid(Volume(lab, near, labels={1: "tumor"}), ct)
    np.testing.assert_array_equal(out.array[:, :, 1:], lab[:, :, :-1])
    assert out.same_grid(ct)
    same = Volume(lab, oblique_affine, labels={1: "tumor"})
    assert io.labels_on_grid(same, ct) is same


def test_labels_with_the_cts_grid_but_another_origin_are_warned(oblique_affine):
    """Trial 7: a label map with the CT's size and spacing but its origin shifted 10 mm was
    accepted silently, moving the target 10 mm. It is still placed by its coordinates (it may
    be right), but the shift is said, on the label map's warnings (they reach plan.json)."""
    from imagio.errors import InputWarning

    ct = Volume(np.zeros((12, 14, 16), np.int16), oblique_affine)
    lab = np.zeros((12, 14, 16), np.uint8)
    lab[3:9, 4:10, 5:11] = 1
    m = oblique_affine.copy()
    m[:3, 3] += [3.0, 0.0, 0.0]   # (the trial: 10 mm on a whole CT)
    shifted = Volume(lab, m, labels={1: "tumor"})
    with pytest.warns(InputWarning, match="lies 3.0 mm from it"):
        io.labels_on_grid(shifted, ct)
    assert any("R, A, S shift 3.0, 0.0, 0.0 mm" in w for w in shifted.warnings)
    tiny = oblique_affine.copy()
    tiny[:3, 3] += [0.1, 0.0, 0.0]          # sub-voxel rounding of an origin: not said
    quiet = Volume(lab, tiny, labels={1: "tumor"})
    io.labels_on_grid(quiet, ct)
    assert quiet.warnings == []
