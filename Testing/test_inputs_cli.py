"""The command line and bad inputs (issue 13): points with negative values and --lps, outputs
that never replace an input (also with --force) and are never half-written, non-HU images
refused before segmentation, model zips of another task refused, warnings that travel, and the
generators in ../shared/cases run through the CLI.

Every in-process command here (and in the whole suite) also runs under the conftest fixture
that hashes its inputs before and after."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from dicom_series import Patient, axial_positions, write_series
from synthetic_ct import LESIONS, make_ct

from imagio import coords, io
from imagio.cli import build_parser, main
from imagio.ct_check import check_hu, hu_problem
from imagio.errors import InputError
from imagio.outputs import atomic_path, protect
from imagio.volume import Volume

CASES = Path(__file__).resolve().parents[2] / "shared" / "cases"


@pytest.fixture(scope="module")
def ct_file(tmp_path_factory):
    ct, _ = make_ct(spacing=(3.0, 3.0, 3.0))
    return io.write_image(ct, tmp_path_factory.mktemp("ct") / "ct.nii.gz")


def digest(p):
    import hashlib

    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


# points ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["lesion", "ct", "--point", "{p}", "--out", "o.nii.gz"],
    ["plan", "ct", "--labels", "l", "--target", "{p}", "--out", "o"],
    ["bronch", "ct", "--airways", "a", "--target", "{p}", "--out", "o"],
])
def test_negative_coordinates_parse_with_and_without_equals(argv):
    p = build_parser()
    for point in ("-52.7,95.9,-255", "-1e1, 2.5 ,-.5"):
        flag = argv.index("{p}") - 1
        a = p.parse_args([v.replace("{p}", point) for v in argv])
        b = p.parse_args(argv[:flag] + [f"{argv[flag]}={point}"] + argv[flag + 2:])
        assert vars(a) == vars(b)
        value = a.point if argv[0] == "lesion" else a.target
        assert value == point and not a.lps
    np.testing.assert_allclose(coords.parse_point("-52.7,95.9,-255"), [-52.7, 95.9, -255])
    np.testing.assert_allclose(coords.parse_point("-52.7,95.9,-255", lps=True), [52.7, -95.9, -255])
    with pytest.raises(InputError, match="R,A,S in mm"):
        coords.parse_point("1,2")
    assert coords.point_or_name("liver_tumor_1") == "liver_tumor_1"
    # new-user trial 88 L2: a non-finite point was read as a structure name ("not in the label map")
    for bad in ("inf,0,-600", "nan, 1, 2", "-Infinity,0,0"):
        with pytest.raises(InputError, match="is not finite"):
            coords.point_or_name(bad)
    with pytest.raises(InputError, match="--lps applies to a point"):
        coords.point_or_name("liver_tumor_1", lps=True)


@pytest.mark.parametrize("argv", [
    ["lesion", "ct", "--point", "1,2,3", "--point=-4,5,6", "--out", "o.nii.gz"],
    ["plan", "ct", "--labels", "l", "--target", "1,2,3", "--target", "liver_tumor_1", "--out", "o"],
    ["bronch", "ct", "--airways", "a", "--target", "-1,2,3", "--target", "4,5,6", "--out", "o"],
])
def test_a_point_given_twice_is_refused_in_one_line(argv, capsys):
    """New-user trial 61 L1: argparse kept the last of two --point options silently (one click
    of two was planned). Refused: exit code 2, one line naming the option, nothing read."""
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    assert e.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]
    assert len(err) == 1 and argv[2 if argv[0] == "lesion" else 4] in err[0] and "more than once" in err[0], err


def test_lesion_at_a_negative_lps_point_without_equals(tmp_path, ct_file, capsys):
    centre, radius, _, _ = LESIONS["liver_tumor"]  # RAS (55, 10, -72)
    lps = f"{-centre[0]:g},{-centre[1]:g},{centre[2]:g}"  # '-55,-10,-72'
    assert main(["lesion", str(ct_file), "--lps", "--point", lps, "--out", str(tmp_path / "t.nii.gz"),
                 "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert np.linalg.norm(np.array(out["centroid_ras"]) - centre) < 1.5  # 3 mm voxels
    assert out["volume_ml"] == pytest.approx(4 / 3 * np.pi * radius ** 3 / 1000, rel=0.25)
    # the same point as RAS is the same lesion; as RAS with --lps it is another place
    assert main(["lesion", str(ct_file), "--point", "55,10,-72", "--out", str(tmp_path / "r.nii.gz"),
                 "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["centroid_ras"] == out["centroid_ras"]


# outputs ---------------------------------------------------------------------------------------

def test_output_that_is_an_input_is_refused_even_with_force(tmp_path, ct_file, capsys):
    ct = tmp_path / "case" / "ct.nii.gz"
    ct.parent.mkdir()
    ct.write_bytes(ct_file.read_bytes())
    h = digest(ct)
    spellings = [ct, tmp_path / "case" / ".." / "case" / "ct.nii.gz"]
    (tmp_path / "link.nii.gz").symlink_to(ct)
    spellings.append(tmp_path / "link.nii.gz")
    os.link(ct, tmp_path / "hard.nii.gz")   # a hard link: another name of the same inode (trial 114 LOW)
    spellings.append(tmp_path / "hard.nii.gz")
    for out in spellings:
        code = main(["segment", str(ct), "--structures", "body", "--out", str(out), "--force", "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and "refusing to write" in err and "input" in err, err
        assert digest(ct) == h
    # an output whose label sidecar is an input's sidecar
    lab = io.read_image(ct).with_array(np.zeros(io.read_image(ct).shape, np.uint8), labels={1: "liver"})
    lab.array[10:20, 30:40, 40:50] = 1
    io.write_labels(lab, tmp_path / "case" / "organ.nii.gz")
    side = tmp_path / "case" / "organ.labels.json"
    hs = digest(side)
    code = main(["lesion", str(ct), "--point", "55,10,-72", "--organ", str(tmp_path / "case" / "organ.nii.gz"),
                 "--out", str(tmp_path / "case" / "organ.nrrd"), "--force", "--quiet"])
    assert code == 2 and "organ.labels.json" in capsys.readouterr().err and digest(side) == hs
    # --force replaces an earlier output (test_force_replaces_only_earlier_outputs: only those)
    out = tmp_path / "seg.nii.gz"
    assert main(["segment", str(ct), "--structures", "body", "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["segment", str(ct), "--structures", "body", "--out", str(out), "--quiet"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["segment", str(ct), "--structures", "body", "--out", str(out), "--force", "--quiet"]) == 0
    assert io.read_labels(out).labels == {1: "body"}


def test_force_replaces_only_earlier_outputs(tmp_path, ct_file, capsys):
    """New-user trial (LOW): `segment --force` replaced a file that was neither an input nor an
    earlier output (a user's file), though its message says '--force only replaces earlier
    outputs'. A command records each output it writes, with its SHA-256, in the folder's
    .imagio-outputs.json; --force replaces a file only when listed there with its current content.
    Checked: a user's file and a user's label sidecar are refused in one line and left
    byte-identical; an earlier output is listed with the file's own SHA-256 (hashlib) and replaced;
    an earlier output the user edited since is refused."""
    import hashlib

    seg = ["segment", str(ct_file), "--structures", "body", "--quiet", "--force"]
    mine = tmp_path / "mine.seg.nrrd"
    mine.write_text("a user's file")
    h = digest(mine)
    code = main(seg + ["--out", str(mine)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "not an earlier output" in err[0] and str(mine) in err[0], err
    assert digest(mine) == h
    side = tmp_path / "other.labels.json"   # the sidecar the output other.nii.gz would get
    side.write_text('{"1": "kept"}')
    hs = digest(side)
    code = main(seg + ["--out", str(tmp_path / "other.nii.gz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(side) in err[0] and digest(side) == hs, err
    assert not (tmp_path / "other.nii.gz").exists()
    out = tmp_path / "seg.nii.gz"
    for _ in range(2):   # written, then replaced with --force
        assert main(seg + ["--out", str(out)]) == 0
        listed = json.loads((tmp_path / ".imagio-outputs.json").read_text())["files"]
        for f in (out, tmp_path / "seg.labels.json"):
            assert listed[f.name]["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert "mine.seg.nrrd" not in listed and "other.labels.json" not in listed
    capsys.readouterr()
    with open(out, "ab") as f:   # the user edits the earlier output: now theirs
        f.write(b"\0")
    h = digest(out)
    assert main(seg + ["--out", str(out)]) == 2 and "not an earlier output" in capsys.readouterr().err
    assert digest(out) == h


@pytest.mark.parametrize("argv", [
    ["segment", "{ct}", "--structures", "body", "--out", "{d}/seg_left"],
    ["segment", "{ct}", "--structures", "body", "--out", "{d}/.seg.nrrd"],
    ["lesion", "{ct}", "--point", "55,10,-72", "--out", "{d}/lesion"],
    ["vessels", "{ct}", "--organ", "{d}/organ.nii.gz", "--organ-labels", "liver", "--out", "{d}/v.nii.gz",
     "--diameter-out", "{d}/diam"],
])
def test_image_output_without_suffix_is_one_line_before_any_work(tmp_path, ct_file, capsys, argv):
    """An --out with no image suffix used to end, after the whole segmentation, in SimpleITK's
    'Unable to determine ImageIO writer' traceback: now one line naming the flag, exit 2, nothing written."""
    lab = io.read_image(ct_file).with_array(np.zeros(io.read_image(ct_file).shape, np.uint8), labels={1: "liver"})
    lab.array[10:20, 30:40, 40:50] = 1
    io.write_labels(lab, tmp_path / "organ.nii.gz")
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main([a.format(ct=ct_file, d=tmp_path) for a in argv] + ["--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert ("no image file suffix" in err[0] or "only a suffix" in err[0]) and ".seg.nrrd" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("where", ["under_a_file", "unwritable_folder"])
def test_unwritable_output_is_one_line_before_any_work(tmp_path, ct_file, capsys, where):
    """New-user trial 16: `lesion --out existing_file.nii.gz/x.nii.gz` ended in a FileExistsError
    traceback and `segment --out /proc/x.seg.nrrd` in one after the whole segmentation (exit 1).
    Now one line naming the path, exit 2, before any work and nothing written. The unwritable
    folder is a pseudo file system's (/proc refuses new files, for root too)."""
    (tmp_path / "file.nii.gz").write_text("a file")
    out = (tmp_path / "file.nii.gz" / "x.nii.gz") if where == "under_a_file" else Path("/proc/imagio_x.seg.nrrd")
    if where == "unwritable_folder" and not Path("/proc").is_dir():
        pytest.skip("no /proc on this system")
    before = sorted(p.name for p in tmp_path.iterdir())
    for argv in (["lesion", str(ct_file), "--point", "55,10,-72"], ["segment", str(ct_file), "--structures", "body"]):
        code = main(argv + ["--out", str(out), "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and str(out) in err[0] and "cannot write" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "file.nii.gz").read_text() == "a file"
    # an output folder (trial 17: `plan --out existing_file/plan`, `detect --out /proc/det` failed
    # after the whole run): the same, before any work
    folder = (tmp_path / "file.nii.gz" / "plan") if where == "under_a_file" else Path("/proc/imagio_plan")
    code = main(["detect", str(ct_file), "--out", str(folder), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(folder) in err[0] and "cannot write" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_writes_are_atomic_and_never_touch_a_protected_input(tmp_path, ct_file):
    from imagio.outputs import MANIFEST, write_text

    target = tmp_path / "out.nii.gz"
    write_text(target, "previous")   # an earlier output (a user's file is never replaced at all)
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half written")
            raise RuntimeError("interrupted")
    assert target.read_text() == "previous" and sorted(os.listdir(tmp_path)) == sorted(["out.nii.gz", MANIFEST])
    vol = io.read_image(ct_file)
    with protect([ct_file]):
        with pytest.raises(InputError, match="refusing to write"):
            io.write_image(vol, ct_file)
    io.write_image(vol, target)  # outside the block: allowed, and complete
    assert io.read_image(target).same_grid(vol)


# HU check ----------------------------------------------------------------------------------------

def test_non_hu_images_refused_before_segmentation(tmp_path, ct_file, capsys):
    ct = io.read_image(ct_file)
    assert hu_problem(ct) is None
    plus = ct.with_array((ct.array.astype(np.int32) + 1024).clip(0, 65535).astype(np.uint16))
    mr = ct.with_array(np.interp(ct.array, [-1100, -900, -150, -50, 20, 80, 300, 3000],
                                 [0, 20, 900, 1100, 400, 500, 200, 60]).astype(np.int16))
    assert "HU + 1024 stored without the rescale" in hu_problem(plus)
    # an image stored as HU + 1000 is told its own offset (trial 80: it was told to subtract 1024)
    plus1000 = ct.with_array((ct.array.astype(np.int32) + 1000).clip(0, 65535).astype(np.uint16))
    assert "HU + 1000 stored" in hu_problem(plus1000) and "subtract 1000 " in hu_problem(plus1000)
    assert "no negative values" in hu_problem(mr)
    mr.meta["Modality"] = "MR"
    assert "Modality MR" in hu_problem(mr)
    for name, vol, why in (("plus.nii.gz", plus, "HU \\+ 1024"), ("mr.nii.gz", mr, "no negative values")):
        io.write_image(vol, tmp_path / name)
        assert main(["segment", str(tmp_path / name), "--structures", "body", "--out", str(tmp_path / "s.nii.gz"),
                     "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "imagio: error:" in err and ("HU + 1024" in err or "no negative values" in err)
        # the deep-model path refuses before it opens any model
        with pytest.raises(InputError, match=why):
            __import__("imagio.segmentation.models", fromlist=["segment"]).segment(
                io.read_image(tmp_path / name), str(tmp_path / "no_model_needed"))
        assert not (tmp_path / "s.nii.gz").exists()
    with pytest.raises(InputError, match="no air"):
        check_hu(ct.with_array(np.maximum(ct.array, -500)))


def test_lost_intercept_is_refused_even_with_padding_and_noise_below_minus_1024(tmp_path, ct_file, capsys):
    """Trial 7: HU + 1024 stored with -3024 HU padding outside the scan circle (stored -2000): the
    padding made air supplied the air band and the scan was segmented into 19.7 L of bone.
    Noise below -1024 HU (stored slightly negative) must not hide the offset either."""
    ct = io.read_image(ct_file)
    a = ct.array.astype(np.int32) + np.rint(np.random.default_rng(0).normal(0, 15, ct.shape)).astype(np.int32)
    assert (a + 1024 < 0).any()                      # air noise below -1024 HU: stored negative
    n, m = ct.shape[1:]
    j, i = np.mgrid[0:n, 0:m]
    a[:, ((j - n / 2) / (n / 2)) ** 2 + ((i - m / 2) / (m / 2)) ** 2 > 1] = -3024
    io.write_image(ct.with_array((a + 1024).astype(np.int16)), tmp_path / "plus_pad.nii.gz")
    code = main(["segment", str(tmp_path / "plus_pad.nii.gz"), "--structures", "body", "--out",
                 str(tmp_path / "s.nii.gz"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "HU + 1024 stored without the rescale" in err[-1], err
    assert not (tmp_path / "s.nii.gz").exists()
    # a CT in HU with hardly any fat (a head, a thin patient) and the same padding is not an offset:
    # it shows air in HU beside its padding
    lean = np.where((a >= -200) & (a <= -50), 30, a)
    body = np.flatnonzero((lean.ravel() > -500))
    lean.ravel()[body[: body.size // 10]] = 1100      # a skull's worth of dense bone
    lean.ravel()[body[body.size // 10: body.size // 10 + body.size // 100]] = 1500
    lean = lean.astype(np.int16)
    io.write_image(ct.with_array(lean), tmp_path / "lean.nii.gz")
    assert hu_problem(io.read_image(tmp_path / "lean.nii.gz")) is None


def test_spacing_in_metres_is_named(tmp_path, ct_file, capsys):
    """Trial 7: spacing 0.003 (metres) was refused as 'no body found'; now the voxel size is named."""
    ct = io.read_image(ct_file)
    m = ct.ijk_to_ras.copy()
    m[:3, :3] /= 1000.0
    io.write_image(Volume(ct.array, m), tmp_path / "metres.nii.gz")
    code = main(["segment", str(tmp_path / "metres.nii.gz"), "--out", str(tmp_path / "s.nii.gz"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "0.003 mm" in err[0] and "metres" in err[0], err


def _oblique(spacing):
    """IJK->RAS of an oblique, flipped grid with the given voxel size (mm)."""
    from scipy.spatial.transform import Rotation

    m = np.eye(4)
    rot = Rotation.from_euler("xyz", [20, -35, 50], degrees=True).as_matrix() @ np.diag([-1, 1, 1])
    m[:3, :3] = rot * np.asarray(spacing, float)[None, :]
    return m


def test_spacing_ten_times_too_large_is_named(tmp_path, ct_file, capsys):
    """Trial 8 N6: a 3 mm CT written with 30 mm voxels was segmented into a 22.9 m3 body. What is
    not air now spans more than any CT gantry holds (> 1000 mm in two directions): refused in one
    line naming the spacing, on a straight and on an oblique flipped grid."""
    ct = io.read_image(ct_file)
    for name, m in (("x10.nii.gz", ct.ijk_to_ras @ np.diag([10.0, 10.0, 10.0, 1.0])),
                    ("z10.nii.gz", ct.ijk_to_ras @ np.diag([1.0, 1.0, 10.0, 1.0])),   # 30 mm slices
                    ("x10_oblique.nii.gz", _oblique(ct.spacing * 10))):
        io.write_image(Volume(ct.array, m), tmp_path / name)
        # every command that reads it as a CT, not only those that need HU (trial 11: plan ran
        # on it with a 1000 mm needle)
        for cmd in (["segment", str(tmp_path / name), "--out", str(tmp_path / "s.nii.gz"), "--quiet"],
                    ["plan", str(tmp_path / name), "--labels", str(ct_file), "--target", "label_1",
                     "--out", str(tmp_path / "p"), "--quiet"],
                    ["detect", str(tmp_path / name), "--out", str(tmp_path / "d"), "--quiet"]):
            code = main(cmd)
            err = capsys.readouterr().err.strip().splitlines()
            assert code == 2 and len(err) == 1 and "spacing written too large" in err[0], (cmd[0], err)
        assert not (tmp_path / "s.nii.gz").exists() and not (tmp_path / "p").exists()


def test_plan_names_a_label_map_of_another_scan_before_its_missing_names(tmp_path, ct_file, capsys):
    """Trial 9: unnamed labels of another scan (5 m away) were refused as 'no structure name';
    the first thing to fix is that they belong to another scan, and that is what is said."""
    ct = io.read_image(ct_file)
    a = (ct.array > -500).astype(np.uint8)
    a[ct.array > 300] = 2
    m = ct.ijk_to_ras.copy()
    m[:3, 3] += 5000.0
    io.write_image(Volume(a, m), tmp_path / "other.nii.gz")
    code = main(["plan", str(ct_file), "--labels", str(tmp_path / "other.nii.gz"), "--target", "label_2",
                 "--out", str(tmp_path / "plan"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "does not overlap the CT" in err[0], err


def test_info_shows_what_segment_would_refuse(tmp_path, ct_file, capsys):
    """Trial 9 (LOW): `imagio info` showed a CT stored as HU + 1024 as if it were fine, while
    segment refuses it. An inspection command shows the image and says why it is not a CT in HU."""
    ct = io.read_image(ct_file)
    io.write_image(ct.with_array((ct.array.astype(np.int32) + 1024).astype(np.int16)), tmp_path / "off.nii.gz")
    assert main(["info", str(tmp_path / "off.nii.gz")]) == 0
    out = capsys.readouterr().out
    assert "CT in HU: NO" in out and "HU + 1024" in out, out
    assert main(["info", str(ct_file), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["not_ct_in_hu"] is None


def test_long_patient_on_an_oblique_grid_is_not_too_wide():
    """A whole-body scan is long (about 1.9 m head to toe) but no wider than the gantry: tissue
    2000 mm long and 500 x 300 mm across, on an oblique flipped anisotropic grid, is a CT."""
    sp = np.array([2.0, 2.0, 5.0])
    shape = (420, 300, 300)                   # k, j, i
    a = np.full(shape, -1000, np.int16)
    kk, jj, ii = np.ogrid[:shape[0], :shape[1], :shape[2]]
    # the patient along k (2000 mm at 5 mm), an ellipse of 500 x 300 mm in i, j
    body = ((ii - 150) * sp[0] / 250.0) ** 2 + ((jj - 150) * sp[1] / 150.0) ** 2 <= 1.0
    a[10:410] = np.where(body, 40, -1000)[0]
    a[10:410, 140:160, 140:160] = -100       # fat
    a[10:410, 100:110, 100:120] = 700        # bone
    vol = Volume(a, _oblique(sp))
    assert hu_problem(vol) is None


# models ------------------------------------------------------------------------------------------

def test_builtin_catalogue_entries_name_their_classes():
    from imagio.segmentation import models

    for name, e in models.catalogue().items():
        assert isinstance(e.get("classes"), dict) or e.get("label_values") == "totalsegmentator", name


def test_model_zip_of_another_task_is_refused_naming_both(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("dynamic_network_architectures")
    from imagio.segmentation import models
    from imagio.segmentation.engine.synthetic import make_model_folder

    folder = make_model_folder(tmp_path / "z" / "Dataset999_Tiny", labels=("background", "liver", "lung_vessels"))
    zpath = tmp_path / "wrong_task.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for f in sorted(folder.rglob("*")):
            z.write(f, f.relative_to(folder.parent))
    cat = {"models": {"nodules": {
        "title": "nodules", "licence": "Apache-2.0", "parts": [{"task_id": 913, "folder": "Dataset913_lung_nodules",
                                                                "url": None, "sha256": None}],
        "classes": {"1": "lung", "2": "lung_nodules"}, "label_map": {"lung_nodules": "lung_nodule"}},
        "tiny": {"title": "tiny", "licence": "Apache-2.0", "parts": [{"task_id": 999, "folder": "Dataset999_Tiny",
                                                                       "url": None, "sha256": None}],
                 "classes": {"1": "liver", "2": "lung_vessels"}}}}
    (tmp_path / "cat.json").write_text(json.dumps(cat))
    monkeypatch.setenv("IMAGIO_MODELS_CATALOGUE", str(tmp_path / "cat.json"))
    monkeypatch.setenv("IMAGIO_MODELS_DIR", str(tmp_path / "cache"))
    with pytest.raises(models.ModelError, match=r"Dataset999_Tiny.*Dataset913_lung_nodules") as e:
        models.import_zip("nodules", zpath)
    assert "1=liver" in str(e.value) and "1=lung" in str(e.value)
    assert not (tmp_path / "cache" / "nodules").exists()   # a refused first import leaves no folder
    models.import_zip("tiny", zpath)  # its own task: accepted
    assert models.verify("tiny") == []
    # a model swapped inside the cache afterwards is caught by verify
    ds = next((tmp_path / "cache" / "tiny").rglob("dataset.json"))
    doc = json.loads(ds.read_text())
    doc["labels"] = {"background": 0, "spleen": 1, "lung_vessels": 2}
    ds.write_text(json.dumps(doc))
    assert any("1=spleen" in p for p in models.verify("tiny"))


# DICOM through the CLI ---------------------------------------------------------------------------

def test_info_on_a_dicom_folder_says_what_it_did(tmp_path, capsys):
    pt = Patient()
    pos, row, col = axial_positions(n=20, tilt_deg=12.0)
    files = write_series(tmp_path / "d", pt, pos, row, col)
    series = __import__("pydicom").dcmread(files[0]).SeriesInstanceUID
    write_series(tmp_path / "d", pt, [np.array([0.0, -150.0, 200.0])], (0, 1, 0), (0, 0, -1), series=series,
                 image_type="ORIGINAL\\PRIMARY\\LOCALIZER", names=["scout.dcm"], thickness=1.0)
    assert main(["info", str(tmp_path / "d")]) == 0
    cap = capsys.readouterr()
    assert f"series: {series}" in cap.out and "dropped: " in cap.out and "localizer" in cap.out
    assert "tilt_deg: 12.0" in cap.out and "imagio: warning:" in cap.err and "12.0 deg" in cap.err
    assert main(["info", str(tmp_path / "d"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["read"]["tilt_deg"] == pytest.approx(12.0, abs=0.05) and len(info["warnings"]) == 2
    # the warnings travel into a command's JSON output
    assert main(["segment", str(tmp_path / "d"), "--structures", "body", "--out", str(tmp_path / "b.nii.gz"),
                 "--quiet"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert any("12.0 deg" in w for w in doc["input_warnings"])
    # a refusal is one line and exit 2
    gap = [p for k, p in enumerate(axial_positions(n=20)[0]) if k not in (8, 9, 10)]
    write_series(tmp_path / "g", pt, gap, row=(1, 0, 0), col=(0, 1, 0))
    from conftest import run_imagio

    r = run_imagio("info", tmp_path / "g")
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "gap of 10.0 mm" in lines[0]


# the generators in ../shared/cases through the CLI -------------------------------------------------

def _case(script, *args, cwd=None):
    if not (CASES / script).exists():
        pytest.skip(f"{CASES / script} is not present")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    subprocess.run([sys.executable, str(CASES / script), *map(str, args)], check=True, capture_output=True,
                   env=env, cwd=cwd)


def test_case_labels_negative(tmp_path, capsys):
    assert main(["phantom", str(tmp_path / "ph"), "--spacing", "4"]) == 0
    capsys.readouterr()
    _case("labels_negative.py", tmp_path / "ph", tmp_path / "o")
    ct = tmp_path / "ph" / "ct.nii.gz"
    for name, why in (("labels_minus1.nii.gz", "label values must be >= 0"),
                      ("ct_as_labels.nii.gz", "not a label map"), ("ct_fewvalues.nii.gz", "not a label map")):
        code = main(["plan", str(ct), "--labels", str(tmp_path / "o" / name), "--target", "liver",
                     "--out", str(tmp_path / "plan"), "--no-png", "--no-scene", "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and why in err and "Traceback" not in err, err
        # info: the label map with a names sidecar is refused in the same one line, exit 2; the
        # CT-like images (no sidecar) are described as images
        code = main(["info", str(tmp_path / "o" / name)])
        out, err_info = capsys.readouterr()
        if name == "labels_minus1.nii.gz":
            line = next(x for x in err.splitlines() if why in x)
            assert code == 2 and out == "" and err_info.strip() == line, (code, out, err_info)
        else:
            assert code == 0 and "Traceback" not in err_info


@pytest.mark.data
def test_case_out_overwrites_input(tmp_path, shared_data, capsys):
    _case("out_overwrites_input.py", tmp_path, shared_data)
    ct = tmp_path / "ct.nii.gz"
    h = digest(ct)
    assert main(["segment", str(ct), "--out", str(ct), "--force"]) == 2
    assert "refusing to write" in capsys.readouterr().err and digest(ct) == h


@pytest.mark.data
def test_case_model_non_ct_input(tmp_path, shared_data, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("dynamic_network_architectures")
    _case("model_non_ct_input.py", tmp_path, shared_data)
    for name, why in (("ct_plus1024_uint16.nii.gz", "HU + 1024"), ("mr_like.nii.gz", "no negative values")):
        code = main(["segment", str(tmp_path / name), "--model", str(tmp_path / "tiny_ct_model"), "--out",
                     str(tmp_path / f"{name}.seg.nrrd"), "--device", "cpu", "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and why in err and not (tmp_path / f"{name}.seg.nrrd").exists(), err


def test_case_model_wrong_task_zip(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("dynamic_network_architectures")
    _case("model_wrong_task_zip.py", tmp_path)
    monkeypatch.setenv("IMAGIO_MODELS_DIR", str(tmp_path / "cache"))
    assert main(["models", "import", "lung_nodules", str(tmp_path / "wrong_task.zip")]) == 2
    err = capsys.readouterr().err
    assert "Dataset999_Tiny" in err and "Dataset913_lung_nodules" in err
    # new-user trial 82 L3: the same zip renamed to the catalogue's task, its classes the catalogue's
    # two and a third: refused, naming the class the catalogue does not have
    import zipfile

    with zipfile.ZipFile(tmp_path / "wrong_task.zip") as zin, \
            zipfile.ZipFile(tmp_path / "renamed.zip", "w") as zout:
        for m in zin.namelist():
            data = zin.read(m)
            if m.endswith("dataset.json"):
                ds = json.loads(data)
                ds["labels"] = {"background": 0, "lung": 1, "lung_nodules": 2, "airways": 3}
                data = json.dumps(ds).encode()
            zout.writestr(m.replace("Dataset999_Tiny", "Dataset913_lung_nodules"), data)
    assert main(["models", "import", "lung_nodules", str(tmp_path / "renamed.zip")]) == 2
    err = capsys.readouterr().err
    assert "3=airways not among the catalogue's" in err, err


@pytest.mark.data
def test_every_real_ct_passes_the_hu_check_and_every_real_mr_or_mask_is_refused(shared_data):
    cts = [shared_data / p for p in ("lidc-slabs/LIDC-IDRI-0001_slab.nii.gz", "lung-pet-ct-dx/Lung_Dx-A0001_ct.nii.gz",
                                     "pyradiomics-lung/lung1_image.nrrd", "totalsegmentator-chest-cta/chest_cta.nii.gz",
                                     "totalsegmentator-example/example_ct_dicom")]
    cts += sorted(shared_data.glob("sts-sarcoma/*/CT_image.nii.gz"))
    mrs = sorted(shared_data.glob("sts-sarcoma/*/MR_T1_image.nii.gz"))
    masks = sorted(shared_data.glob("sts-sarcoma/*/CT_mask.nii.gz"))[:1]
    cts = [p for p in cts if p.exists()]
    if not cts:
        pytest.skip("no real CT in ../shared/data")
    for p in cts:
        assert hu_problem(io.read_image(p)) is None, p
    for p in mrs:
        assert "no negative values" in hu_problem(io.read_image(p)), p
    for p in masks:   # named as what it is (trial 95 F4)
        assert "looks like a label map or a mask" in hu_problem(io.read_image(p)), p


def test_the_input_hash_guard_catches_a_command_that_modifies_its_input(tmp_path):
    """The conftest guard around every in-process command is itself checked: a command that
    rewrites its input (bypassing imagio's writers) makes it fail."""
    import argparse

    from imagio import cli

    f = tmp_path / "in.nii.gz"
    f.write_bytes(b"original")

    def bad(args):
        Path(args.ct).write_bytes(b"changed")
        return 0

    with pytest.raises(AssertionError, match="modified or removed its input"):
        cli._run(argparse.Namespace(command="bad", ct=str(f), func=bad))


def test_input_warnings_reach_the_report(tmp_path):
    from imagio.report import sections

    doc = {"input_warnings": ["ct: gantry tilt / sheared stack of 12.0 deg corrected"], "target": {"name": "t"}}
    secs = dict(sections(doc, {}))
    assert secs["Input warnings"] == [("1", "ct: gantry tilt / sheared stack of 12.0 deg corrected")]


def test_hu_check_follows_the_model_folders_channel(tmp_path):
    """A model folder whose dataset.json takes an MR channel is not held to the CT check."""
    from imagio.segmentation.models import _takes_ct

    for channel, want in (("CT", True), ("T1", False), ("ct", True)):
        d = tmp_path / channel / "Dataset001_X"
        d.mkdir(parents=True)
        (d / "plans.json").write_text("{}")
        (d / "dataset.json").write_text(json.dumps({"channel_names": {"0": channel}, "labels": {"background": 0}}))
        assert _takes_ct(str(d)) is want
    assert _takes_ct(str(tmp_path / "missing")) is True


def test_organ_labels_not_in_the_label_map_is_one_line(tmp_path, ct_file, capsys):
    """New-user trial 3: `lesion --organ ... --organ-labels liver` on a label map without that
    name ended in a KeyError traceback (exit 1); now one line naming what the map has, exit 2."""
    lab = io.read_image(ct_file).with_array(np.zeros(io.read_image(ct_file).shape, np.uint8), labels={5: "label_5"})
    lab.array[10:20, 30:40, 40:50] = 5
    io.write_labels(lab, tmp_path / "organ.nii.gz")
    for argv in (["lesion", str(ct_file), "--point", "55,10,-72", "--out", str(tmp_path / "l.nii.gz")],
                 ["vessels", str(ct_file), "--out", str(tmp_path / "v.nii.gz")]):
        code = main(argv + ["--organ", str(tmp_path / "organ.nii.gz"), "--organ-labels", "liver", "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "liver" in err[0] and "label_5" in err[0], err


def test_labels_of_another_scan_is_one_line_in_every_command(tmp_path, ct_file, capsys):
    """Trial 7: a label map lying wholly outside the CT (another series) was reported as
    "target structure 'tumor' has no voxels in the label map"; now every command that takes
    labels says that the map does not overlap the CT, exit 2."""
    ct = io.read_image(ct_file)
    m = ct.ijk_to_ras.copy()
    m[:3, 3] += [0.0, 0.0, 500.0]           # 500 mm above the CT
    lab = Volume(np.zeros(ct.shape, np.uint8), m, labels={1: "tumor", 2: "liver"})
    lab.array[10:20, 30:40, 40:50] = 2
    lab.array[13:16, 33:36, 43:46] = 1
    io.write_labels(lab, tmp_path / "other.nii.gz")
    other = str(tmp_path / "other.nii.gz")
    for argv in (["plan", str(ct_file), "--labels", other, "--target", "tumor", "--out", str(tmp_path / "p")],
                 ["lesion", str(ct_file), "--point", "55,10,-72", "--organ", other, "--organ-labels", "liver",
                  "--out", str(tmp_path / "l.nii.gz")]):
        code = main(argv + ["--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "does not overlap the CT" in err[0], (argv[0], err)


def test_empty_target_and_single_slice_are_one_line(tmp_path, ct_file, capsys):
    """Trial 7: `plan --target=--` (argparse hands over an empty value) ended in a ValueError
    traceback; a single-slice "3-D" image was segmented (exit 0) and refused later for a wrong
    reason ("no outer skin")."""
    ct = io.read_image(ct_file)
    lab = ct.with_array((ct.array > 100).astype(np.uint8), labels={1: "tumor"})
    io.write_labels(lab, tmp_path / "lab.nii.gz")
    code = main(["plan", str(ct_file), "--labels", str(tmp_path / "lab.nii.gz"), "--target=--",
                 "--out", str(tmp_path / "p"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "structure name or a point" in err[0], err
    io.write_image(Volume(ct.array[5:6].copy(), ct.ijk_to_ras), tmp_path / "one.nii.gz")
    code = main(["segment", str(tmp_path / "one.nii.gz"), "--out", str(tmp_path / "s.nii.gz"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "single slice" in err[0], err


@pytest.mark.parametrize("point", ["1e308,0,0", "-1.7e308,1.7e308,-1e300"])
def test_a_huge_finite_target_is_outside_the_image_in_one_line(tmp_path, ct_file, capsys, point):
    """Trial 88/89 L: `plan --target=1e308,0,0` printed numpy's overflow RuntimeWarning and a
    'target point [inf, 0.0, 0.0]' with a 300-digit distance. A huge but finite point is outside
    the image like any other: one line, exit 2, no Python warning, its numbers readable."""
    ct = io.read_image(ct_file)
    lab = ct.with_array((ct.array > 100).astype(np.uint8), labels={1: "tumor"})
    io.write_labels(lab, tmp_path / "lab.nii.gz")
    code = main(["plan", str(ct_file), "--labels", str(tmp_path / "lab.nii.gz"), f"--target={point}",
                 "--out", str(tmp_path / "p"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "lies outside the image" in err[0], err
    assert "inf" not in err[0] and "Warning" not in err[0] and len(err[0]) < 400, err


def test_a_library_warning_during_a_command_is_printed_once_and_the_command_ends(capsys):
    """Trial 8: a numpy RuntimeWarning during a command made `cli._run` loop forever (its printer
    appended to the very list it iterated) until the machine ran out of memory. Now each warning
    is printed once and the command's own exit code comes back."""
    import argparse
    import threading
    import warnings

    from imagio.cli import _run
    from imagio.errors import InputWarning

    def func(args):
        for _ in range(3):
            warnings.warn("All-NaN slice encountered", RuntimeWarning)
        warnings.warn("an input note", InputWarning)
        return 0

    out = {}
    t = threading.Thread(target=lambda: out.setdefault("rc", _run(argparse.Namespace(func=func, force=True))),
                         daemon=True)
    t.start()
    t.join(60)                       # the old loop never returns (and grows without bound)
    assert not t.is_alive() and out["rc"] == 0
    err = capsys.readouterr().err
    assert err.count("RuntimeWarning: All-NaN slice encountered") == 1
    assert "imagio: warning: an input note" in err


def test_an_all_nan_image_is_one_line(tmp_path, ct_file, capsys):
    ct = io.read_image(ct_file)
    io.write_image(ct.with_array(np.full(ct.shape, np.nan, np.float32)), tmp_path / "nan.nii.gz")
    code = main(["segment", str(tmp_path / "nan.nii.gz"), "--out", str(tmp_path / "s.nii.gz"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "all NaN" in err[0], err


def test_lesion_warnings_are_said_on_the_terminal(tmp_path, ct_file, capsys):
    """Trial 29 (L): `imagio lesion` put its warnings in the stdout JSON only; segment and detect
    say theirs on stderr. Forcing the lung-nodule kind on the liver tumour gives a warning: it
    is in the JSON and, the same text, on stderr."""
    assert main(["lesion", str(ct_file), "--point", "55,10,-72", "--kind", "lung_nodule",
                 "--out", str(tmp_path / "k.nii.gz"), "--quiet"]) == 0
    cap = capsys.readouterr()
    said = json.loads(cap.out)["warnings"]
    err = [x.removeprefix("imagio: warning: ") for x in cap.err.splitlines() if x.startswith("imagio: warning:")]
    assert said and err == said, (said, cap.err)
