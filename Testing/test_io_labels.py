"""Label maps: integers >= 0, a bounded number of values, names from .seg.nrrd / sidecar /
--label-names; anything else (a -1 background, a CT given as labels) refused with the reason."""

import json

import numpy as np
import pytest

from imagio import io
from imagio.cli import main
from imagio.errors import InputError, InputWarning
from imagio.volume import Volume


@pytest.fixture
def labels(oblique_affine):
    a = np.zeros((6, 7, 8), np.int16)
    a[1:4, 2:5, 2:6] = 1
    a[4:6, 0:3, 0:2] = 7
    return Volume(a, oblique_affine, labels={1: "liver", 7: "aorta"})


def test_valid_map_keeps_values_and_names_from_every_source(tmp_path, labels):
    io.write_labels(labels, tmp_path / "l.nii.gz")  # image + sidecar
    back = io.read_labels(tmp_path / "l.nii.gz")
    assert back.labels == {1: "liver", 7: "aorta"} and back.array.dtype == np.uint8
    np.testing.assert_array_equal(back.array, labels.array)
    io.write_labels(labels, tmp_path / "l.seg.nrrd")
    assert io.read_labels(tmp_path / "l.seg.nrrd").labels == {1: "liver", 7: "aorta"}
    io.write_image(labels, tmp_path / "plain.nrrd")  # no names anywhere
    assert io.read_labels(tmp_path / "plain.nrrd").labels == {1: "label_1", 7: "label_7"}
    assert io.read_labels(tmp_path / "plain.nrrd", {7: "aorta", 1: "spleen", 3: "kidney_left"}).labels == \
        {1: "spleen", 7: "aorta"}
    with pytest.warns(InputWarning, match="label value.s. 7 have no name"):
        part = io.read_labels(tmp_path / "plain.nrrd", {1: "spleen"})
    assert part.labels == {1: "spleen", 7: "label_7"}


def test_label_names_file(tmp_path, labels):
    (tmp_path / "n.json").write_text('{"1": "liver", "7": {"name": "aorta"}}')
    assert io.read_label_names(tmp_path / "n.json") == {1: "liver", 7: "aorta"}
    (tmp_path / "bad.json").write_text("{1: liver")
    with pytest.raises(InputError, match="not a label-name table"):
        io.read_label_names(tmp_path / "bad.json")
    io.write_image(labels, tmp_path / "plain.nrrd")
    assert main(["plan", str(tmp_path / "plain.nrrd"), "--labels", str(tmp_path / "plain.nrrd"), "--label-names",
                 str(tmp_path / "bad.json"), "--target", "liver", "--out", str(tmp_path / "p")]) == 2


def test_negative_labels_refused_with_the_reason(tmp_path, labels):
    a = labels.array.copy()
    a[a == 0] = -1  # nnU-Net's 'outside the crop' marker
    io.write_labels(labels.with_array(a), tmp_path / "m.nii.gz")
    with pytest.raises(InputError, match=r"label values must be >= 0, found -1 .*set them to 0"):
        io.read_labels(tmp_path / "m.nii.gz")


def test_ct_given_as_labels_refused(tmp_path, oblique_affine):
    rng = np.random.default_rng(0)
    ct = Volume(rng.integers(-1024, 1500, (6, 7, 8)).astype(np.int16), oblique_affine)
    io.write_image(ct, tmp_path / "ct.nii.gz")
    with pytest.raises(InputError, match="not a label map but an intensity image.*looks like a CT"):
        io.read_labels(tmp_path / "ct.nii.gz")
    few = Volume(np.select([ct.array < -900, ct.array < -400, ct.array < 200], [-1000, -850, 40], 700)
                 .astype(np.int16), oblique_affine)  # a 4-value synthetic CT
    io.write_image(few, tmp_path / "few.nii.gz")
    with pytest.raises(InputError, match="looks like a CT"):
        io.read_labels(tmp_path / "few.nii.gz")
    many = Volume(np.arange(1000, dtype=np.uint16).reshape(10, 10, 10), oblique_affine)  # positive, 1000 values
    io.write_image(many, tmp_path / "many.nrrd")
    with pytest.raises(InputError, match="1000 distinct values"):
        io.read_labels(tmp_path / "many.nrrd")
    io.write_image(Volume(np.full((3, 3, 3), 1.5, np.float32), oblique_affine), tmp_path / "f.nrrd")
    with pytest.raises(InputError, match="non-integer voxel values, e.g. 1.5"):
        io.read_labels(tmp_path / "f.nrrd")
    almost = np.zeros((3, 3, 3), np.float32)
    almost[1] = 2.0000002  # float storage error
    io.write_image(Volume(almost, oblique_affine), tmp_path / "almost.nrrd")
    lab = io.read_labels(tmp_path / "almost.nrrd")
    assert lab.array.dtype == np.uint8 and set(np.unique(lab.array)) == {0, 2}


def test_info_on_a_bad_label_map_says_why_without_traceback(tmp_path, labels, capsys):
    """New-user trial (LOW): `imagio info` on a label map the other commands refuse (negative
    values with a names sidecar, as /work/shared/cases/labels_negative.py writes) printed the
    reason inside its output and exited 0; it exits 2 with the one line the readers give (the
    same text `io.read_labels` raises, as plan/segment/vessels print), with or without --json."""
    a = labels.array.copy()
    a[a == 0] = -1
    io.write_labels(labels.with_array(a), tmp_path / "m.nii.gz")
    with pytest.raises(InputError) as why:
        io.read_labels(tmp_path / "m.nii.gz")
    assert "label values must be >= 0" in str(why.value)
    for extra in (["--json"], []):
        code = main(["info", str(tmp_path / "m.nii.gz"), *extra])
        out, err = capsys.readouterr()
        assert code == 2 and out == "" and err == f"imagio: error: {why.value}\n", (code, out, err)
    io.write_labels(labels, tmp_path / "good.nii.gz")   # a valid map is still described
    assert main(["info", str(tmp_path / "good.nii.gz"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["labels"]


def test_ct_passed_as_organ_labels_is_refused_by_the_command(tmp_path, labels, capsys):
    rng = np.random.default_rng(1)
    ct = labels.with_array(rng.integers(-1024, 1500, labels.shape).astype(np.int16), labels={})
    io.write_image(ct, tmp_path / "ct.nii.gz")
    code = main(["vessels", str(tmp_path / "ct.nii.gz"), "--organ", str(tmp_path / "ct.nii.gz"),
                 "--organ-labels", "liver", "--out", str(tmp_path / "v.nii.gz")])
    err = capsys.readouterr().err
    assert code == 2 and "not a label map" in err and not (tmp_path / "v.nii.gz").exists()
