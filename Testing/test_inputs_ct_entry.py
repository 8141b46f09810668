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
