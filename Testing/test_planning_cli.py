"""`imagio plan` end to end on files of the synthetic torso."""

import json

import pytest

from imagio import io
from imagio.cli import main
from imagio.planning.synthetic import synthetic_torso


@pytest.fixture(scope="module")
def torso_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("torso")
    ct, lab = synthetic_torso(3.0)
    io.write_image(ct, d / "ct.nii.gz")
    io.write_labels(lab, d / "labels.seg.nrrd")
    return d


def test_plan_cli_writes_json_png_scene(torso_files, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["plan", str(torso_files / "ct.nii.gz"), "--labels", str(torso_files / "labels.seg.nrrd"),
               "--target", "liver_tumor", "--out", str(out), "--quiet", "--needle-length", "150"])
    assert rc == 0
    doc = json.loads((out / "plan.json").read_text())
    assert doc["feasible"] and len(doc["proposals"]) == 5
    assert doc["target"]["name"] == "liver_tumor" and doc["target"]["organ"] == "liver"
    p = doc["proposals"][0]
    assert p["length_mm"] <= 150 and p["violations"] == [] and p["liver_before_target_mm"] >= 10
    assert (out / "plan.png").stat().st_size > 10_000
    assert (out / "scene" / "plan.mrml").exists()
    assert "best path" in capsys.readouterr().out
    # an existing plan is not overwritten without --force
    rc = main(["plan", str(torso_files / "ct.nii.gz"), "--labels", str(torso_files / "labels.seg.nrrd"),
               "--target", "liver_tumor", "--out", str(out), "--quiet"])
    assert rc == 2 and "--force" in capsys.readouterr().err


def test_plan_cli_no_feasible_path_report(torso_files, tmp_path, capsys):
    args = ["plan", str(torso_files / "ct.nii.gz"), "--labels", str(torso_files / "labels.seg.nrrd"),
            "--quiet", "--no-png", "--no-scene", "--target", "55,10,0"]
    # the liver made forbidden around its tumour: every path is excluded, the report says why
    rc = main(args + ["--out", str(tmp_path / "a"), "--role", "liver=forbidden", "--gantry-tilt", "0"])
    err = capsys.readouterr().err
    assert rc == 2
    doc = json.loads((tmp_path / "a" / "plan.json").read_text())
    rep = doc["report"]
    assert not doc["feasible"] and rep["feasible"] == 0 and rep["candidates"] > 100
    assert rep["excluded_by"]["forbidden"]["violating"] == rep["candidates"]
    assert "forbidden" in rep["best_near_miss"]["violations"]
    assert "liver" in " ".join(rep["best_near_miss"]["details"])
    assert "no feasible needle path" in err and "forbidden excluded" in err
    # a 6 cm needle reaches no skin at all: the report gives the nearest skin distance
    rc = main(args + ["--out", str(tmp_path / "b"), "--needle-length", "60"])
    err = capsys.readouterr().err
    rep = json.loads((tmp_path / "b" / "plan.json").read_text())["report"]
    assert rc == 2 and rep["candidates"] == 0 and 60 < rep["nearest_skin_mm"] < 100
    assert "longer needle" in err


def test_plan_cli_bad_target(torso_files, tmp_path, capsys):
    rc = main(["plan", str(torso_files / "ct.nii.gz"), "--labels", str(torso_files / "labels.seg.nrrd"),
               "--target", "kidney_left", "--out", str(tmp_path / "x"), "--quiet"])
    assert rc == 2 and "kidney_left" in capsys.readouterr().err
