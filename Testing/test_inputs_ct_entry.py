"""Every command that plans on a CT refuses a non-CT with the CT-in-HU check's own words, in one
line and exit 2, before any later rule blames the outline or the skin (new-user trial 95 F4: a
real MR given to `imagio plan` was refused for "bone density" or "no outer skin"; IMAGIO Web
loaded a label map as the CT)."""

import json

import numpy as np
import pytest
from conftest import shared_case
from synthetic_ct import make_ct

from imagio import io
from imagio.errors import InputError
from imagio.cli import main


@pytest.fixture(scope="module")
def ct_and_labels(tmp_path_factory):
    ct, _ = make_ct(spacing=(3.0, 3.0, 3.0))
    lab = ct.with_array((ct.array > 100).astype(np.uint8) + (ct.array > -500), labels={1: "body", 2: "tumor"})
    d = tmp_path_factory.mktemp("ctl")
    return io.write_image(ct, d / "ct.nii.gz"), io.write_labels(lab, d / "labels.nii.gz"), lab


def _one_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    err = [e for e in err if not e.startswith("[")]   # progress lines
    assert len(err) == 1 and err[0].startswith("imagio: error:"), err
    return err[0]


def test_plan_bronch_detect_refuse_the_real_sts_mr_as_an_mr(tmp_path, capsys):
    """STS_014's T1 MR (beside its CT in the same folder) with its own tumour mask: every CT
    command says it is not a CT in HU (no negative values: an MR), as `segment` does."""
    mr = shared_case("sts-sarcoma", "STS_014", "MR_T1_image.nii.gz")
    mask = mr.parent / "MR_T1_mask.nii.gz"
    names = tmp_path / "names.json"
    names.write_text(json.dumps({"1": "sarcoma_1"}))
    plan = ["plan", mr, "--labels", mask, "--label-names", names, "--target", "sarcoma_1"]
    for argv in (plan + ["--procedure", "sarcoma-biopsy", "--no-compartments", "--out", tmp_path / "p1"],
                 plan + ["--out", tmp_path / "p2"],
                 ["bronch", mr, "--airways", mask, "--target=0,0,0", "--out", tmp_path / "b"],
                 ["detect", mr, "--out", tmp_path / "d"]):
        assert main([str(a) for a in argv] + ["--quiet"]) == 2
        line = _one_line(capsys)
        assert "no negative values" in line and "an MR" in line, (argv[0], line)
        assert "outer skin" not in line and "bone density" not in line
    assert not any((tmp_path / o).exists() for o in ("p1", "p2", "b", "d"))


def test_a_label_map_given_as_the_ct_is_named_by_plan_bronch_and_web(tmp_path, ct_and_labels, capsys):
    """A label map in the CT's place: named as a label map (not "no outer skin"), by plan, bronch
    and `imagio web` (before its server starts)."""
    ct, labels, lab = ct_and_labels
    name = "tumor"
    for argv in (["plan", labels, "--labels", labels, "--target", name, "--out", tmp_path / "p"],
                 ["bronch", labels, "--airways", labels, "--target=0,0,0", "--out", tmp_path / "b"]):
        assert main([str(a) for a in argv] + ["--quiet"]) == 2
        line = _one_line(capsys)
        assert "looks like a label map" in line and "--labels" in line, line
    pytest.importorskip("trame_slicer")
    assert main(["web", str(labels), "--labels", str(labels)]) == 2
    assert "looks like a label map" in _one_line(capsys)
    # the CT itself is still read by the web's loader as before
    from imagio.io import read_ct

    assert read_ct(ct).array.shape == lab.array.shape


def test_web_loader_refuses_the_real_sts_mr(capsys):
    pytest.importorskip("trame_slicer")
    mr = shared_case("sts-sarcoma", "STS_014", "MR_T1_image.nii.gz")
    assert main(["web", str(mr), "--labels", str(mr.parent / "MR_T1_mask.nii.gz")]) == 2
    line = _one_line(capsys)
    assert "no negative values" in line and "IMAGIO Web" in line


def _t1_like(ct, muscle=(450, 550, 800)):
    """A T1-weighted MR of the same body (float, as a converter writes it): air 0, aerated lung
    dark, fat brightest (about 1500), muscle and organs ``muscle`` (at 20, 60 and 120 HU: T1's
    arbitrary units, here darker than fat by a factor 2-3 or 1.5), cortical bone dark."""
    hu = [-1024, -900, -700, -150, -60, 20, 60, 120, 250, 400, 3071]
    t1 = [0, 40, 100, 1500, 1550, *muscle, 1200, 200, 100]
    return ct.with_array(np.interp(ct.array.astype(np.float32), hu, t1).astype(np.float32))


def test_a_t1_mr_is_not_told_to_subtract_an_offset_nor_accepted_once_shifted(tmp_path, ct_and_labels, capsys):
    """Trial 95 F2: a T1-like MR (0..1600) was diagnosed "HU + 1000 stored without the rescale ...
    subtract 1000"; after subtracting it was segmented as a CT (2.9 L of "lungs" in an abdomen).
    Shifted by 1000 its fat (brightest on T1) reads as bone and its muscle as lung: what is not
    air is not mostly soft tissue, as in every CT. The MR is named as such, the shifted MR refused
    by `segment` and `plan`; the same CT stored as HU + 1000 is still told its offset."""
    from imagio.ct_check import hu_problem

    ct = io.read_image(ct_and_labels[0])
    # muscle and organs as the trial's MR (300-900), and brighter (950-1100: shifted by 1024 they
    # fit the soft-tissue band, its fat, 27-39 % of an adult's volume, reads as bone)
    for muscle in ((450, 550, 800), (950, 1000, 1100)):
        why = hu_problem(_t1_like(ct, muscle))
        assert "no negative values" in why and "an MR" in why and "HU + 10" not in why, (muscle, why)
    mr = _t1_like(ct)
    shifted = mr.with_array(mr.array - 1000.0)
    why = hu_problem(shifted)
    assert why and "mostly outside soft tissue" in why and "HU + 10" not in why, why
    plus = ct.with_array((ct.array.astype(np.int32) + 1000).clip(0, 65535).astype(np.uint16))
    assert "HU + 1000 stored" in hu_problem(plus)
    io.write_image(shifted, tmp_path / "mr_minus1000.nii.gz")
    for argv in (["segment", tmp_path / "mr_minus1000.nii.gz", "--out", tmp_path / "s.nii.gz"],
                 ["plan", tmp_path / "mr_minus1000.nii.gz", "--labels", ct_and_labels[1], "--target", "tumor",
                  "--out", tmp_path / "p"]):
        assert main([str(a) for a in argv] + ["--quiet"]) == 2
        assert "mostly outside soft tissue" in _one_line(capsys)
    assert not (tmp_path / "s.nii.gz").exists() and not (tmp_path / "p").exists()


def test_a_background_of_65535_is_named_not_blamed_on_the_ct(tmp_path, ct_and_labels, capsys):
    """Trial 95 F6: a uint16 label map whose background is 65535 (the other values named) was
    refused by plan with "no outer skin in this CT". The unnamed value filling the corners and
    most of the image is named as the background, with the fix; the CT is not blamed. A named
    structure that fills the corners (a map cropped inside the body) is not refused."""
    ct, _, lab = ct_and_labels
    a = lab.array.astype(np.uint16)
    a[a == 0] = 65535
    bg = tmp_path / "bg65535.nii.gz"
    io.write_labels(lab.with_array(a), bg)   # names 1, 2 in the sidecar; 65535 unnamed
    assert main(["plan", str(ct), "--labels", str(bg), "--target", "tumor", "--out", str(tmp_path / "p"),
                 "--quiet"]) == 2
    line = _one_line(capsys)
    assert "label value 65535" in line and "background" in line and "relabel it 0" in line, line
    assert "outer skin" not in line and not (tmp_path / "p").exists()
    # trial 96 F5: named "background" in the sidecar it is the background all the same
    for name in ("background", "Background", "unlabelled"):
        with pytest.raises(InputError) as e:
            io.read_labels(bg, {1: "body", 2: "tumor", 65535: name})
        assert f"label value 65535 is named {name!r}" in str(e.value) and "relabel it 0" in str(e.value)
    # 0 named "background" (a Slicer colour table's first entry) is the background itself: read
    io.write_labels(lab, tmp_path / "bg0.nii.gz")
    assert io.read_labels(tmp_path / "bg0.nii.gz", {0: "Background", 1: "body", 2: "tumor"}).labels[1] == "body"
    # the same map with 65535 named as a structure is read (a structure may reach the corners of a crop)
    named = io.read_labels(bg, {1: "body", 2: "tumor", 65535: "table"})
    assert named.labels[65535] == "table"
    # a named body filling a crop inside the patient: read as before
    c = np.array(lab.shape) // 2
    inner = lab.crop(tuple(c - 3), tuple(c + 3))
    assert (inner.array == 1).mean() > 0.5 and inner.array[0, 0, 0] == inner.array[-1, -1, -1] == 1
    io.write_labels(inner, tmp_path / "inner.nii.gz")
    assert io.read_labels(tmp_path / "inner.nii.gz").labels[1] == "body"
