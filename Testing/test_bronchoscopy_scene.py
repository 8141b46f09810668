"""`imagio bronch`'s inputs and Slicer scene: --label-names names a plain label image, as for
`imagio plan`; bronch.mrml reads the CT and the label map in place (checked with slicer-core's
own readers), as plan.mrml does."""

import hashlib
import json

import numpy as np
import pytest

from imagio import cli, io, phantom
from imagio.volume import Volume


@pytest.fixture(scope="module")
def ph():
    return phantom.generate(spacing=1.5, seed=0)


def test_bronch_label_names_and_a_scene_on_its_images(tmp_path, ph, capsys):
    """A plain label image without a sidecar, its names given with --label-names: the nodule is
    found by name and planned as from the named map; the scene holds the CT (voxels and IJK->RAS
    as the input's) and the label map (a labelmap node whose colour table names its values), both
    referenced, not copied; the CT file is unchanged."""
    pytest.importorskip("slicer")
    from imagio.mrml.scene import load_scene, nodes_by_class
    from imagio.mrml.volumes import node_to_volume

    io.write_image(ph.ct, tmp_path / "ct.nii.gz")
    io.write_image(Volume(ph.labels.array, ph.labels.ijk_to_ras), tmp_path / "lab.nii.gz")
    assert not (tmp_path / "lab.labels.json").exists()
    (tmp_path / "names.json").write_text(json.dumps({str(v): n for v, n in ph.labels.labels.items()}))
    digest = hashlib.sha256((tmp_path / "ct.nii.gz").read_bytes()).hexdigest()
    out = tmp_path / "out"
    assert cli.main(["bronch", str(tmp_path / "ct.nii.gz"), "--airways", str(tmp_path / "lab.nii.gz"),
                     "--label-names", str(tmp_path / "names.json"), "--target", "lung_nodule_1",
                     "--scope", "2", "--out", str(out), "--no-pictures", "--quiet"]) == 0
    # (2 mm, a guide sheath: the bronchus into lung_nodule_1 is drawn 2.0 mm, calibre 2.1 mm; the
    # ultrathin scope needs 2.5 mm there)
    capsys.readouterr()
    doc = json.loads((out / "bronch.json").read_text())
    assert doc["inputs"]["target_segment"] == "lung_nodule_1" and doc["route"]["reached"] is True
    assert doc["inputs"]["label_names"] == str((tmp_path / "names.json").resolve())
    scene = load_scene(out / "scene" / "bronch.mrml")
    vols = [n for n in nodes_by_class(scene, "vtkMRMLScalarVolumeNode") if n.GetName() == "CT"]
    assert len(vols) == 1
    got = node_to_volume(vols[0])
    assert got.shape == ph.ct.shape and np.array_equal(got.resample_like(ph.ct, order=0).array, ph.ct.array)
    lm = nodes_by_class(scene, "vtkMRMLLabelMapVolumeNode")
    assert len(lm) == 1
    assert np.array_equal(node_to_volume(lm[0]).resample_like(ph.labels, order=0).array, ph.labels.array)
    table = lm[0].GetDisplayNode().GetColorNode()
    assert {v: table.GetColorName(v).replace(" ", "_") for v in ph.labels.labels} == ph.labels.labels
    assert hashlib.sha256((tmp_path / "ct.nii.gz").read_bytes()).hexdigest() == digest
    assert not list((out / "scene").glob("CT*")) and not list((out / "scene").glob("lab*"))   # referenced


def test_bronch_label_names_refused_when_unreadable(tmp_path, ph, capsys):
    """A --label-names file that is not a name table: one line, exit code 2."""
    io.write_image(ph.ct, tmp_path / "ct.nii.gz")
    io.write_image(Volume(ph.labels.array, ph.labels.ijk_to_ras), tmp_path / "lab.nii.gz")
    (tmp_path / "names.json").write_text("[1, 2")
    assert cli.main(["bronch", str(tmp_path / "ct.nii.gz"), "--airways", str(tmp_path / "lab.nii.gz"),
                     "--label-names", str(tmp_path / "names.json"), "--target", "lung_nodule_1",
                     "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "not a label-name table" in capsys.readouterr().err
