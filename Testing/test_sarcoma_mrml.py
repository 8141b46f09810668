"""The sarcoma biopsy in MRML (IMAGIOPlanning / IMAGIO Web library functions), with the real
slicer-core classes."""

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

from imagio.errors import InputError  # noqa: E402
from imagio.mrml.planning import line_points  # noqa: E402
from imagio.mrml.sarcoma import sarcoma_plan_from_nodes  # noqa: E402
from imagio.mrml.segmentations import labels_to_segmentation, segmentation_to_labels  # noqa: E402
from imagio.mrml.volumes import volume_to_node  # noqa: E402
from imagio.phantom.limb import thigh  # noqa: E402


def test_sarcoma_plan_from_nodes_adds_cores_entry_incision_viable_segment_and_table():
    ph = thigh(seed=0, spacing_mm=3.0, tumour_diameter_mm=80, necrotic_fraction=0.5)
    scene = slicer.vtkMRMLScene()
    vol = volume_to_node(ph.ct, scene, "CT")
    seg, _ = labels_to_segmentation(ph.labels, scene, reference_node=vol)
    with pytest.raises(InputError, match="select a CT"):
        sarcoma_plan_from_nodes(scene, vol, None)
    from test_sarcoma_biopsy import skin_line

    t = ph.geometry["tumour"]
    pts = skin_line(ph, t["angle_deg"] + 30.0, (t["center_ras"][2] - 40, t["center_ras"][2] + 40))
    curve = scene.AddNewNodeByClass("vtkMRMLMarkupsCurveNode", "incision")
    import vtk

    for p in pts:
        curve.AddControlPoint(vtk.vtkVector3d(*map(float, p)))
    sp, ids = sarcoma_plan_from_nodes(scene, vol, seg, "sarcoma_1", curve, n_cores=3)
    assert sp.incision_source == "user curve" and len(ids["cores"]) == len(sp.cores) == 3
    for nid, c in zip(ids["cores"], sp.cores):
        e, tt = line_points(scene.GetNodeByID(nid))
        assert np.allclose(e, c["metrics"].entry_ras, atol=1e-3) and np.allclose(tt, c["metrics"].target_ras, atol=1e-3)
    ent = scene.GetNodeByID(ids["entry"])
    p = [0.0, 0.0, 0.0]
    ent.GetNthControlPointPositionWorld(0, p)
    dense = np.concatenate([a + np.linspace(0, 1, 200)[:, None] * (b - a) for a, b in zip(pts[:-1], pts[1:])])
    assert np.min(np.linalg.norm(dense - np.array(p), axis=1)) <= sp.incision_tolerance_mm + 1e-6
    assert "incision" not in ids          # the user's curve is kept, no default one added
    # the viable tumour came back as a segment of the same segmentation, inside the tumour
    lab = segmentation_to_labels(seg, reference=ph.ct)
    inv = {n: v for v, n in lab.labels.items()}
    via = lab.array == inv["sarcoma_1_viable"]
    assert via.sum() > 0 and via.sum() == sp.viable.mask.sum()
    tab = scene.GetNodeByID(ids["table"]).GetTable()
    assert tab.GetNumberOfColumns() == 4
    rows = [tab.GetValue(r, 0).ToString() for r in range(tab.GetNumberOfRows())]
    assert "tract_in_tumour_compartment" in rows and "bundle_margin" in rows
    r = rows.index("bundle_margin")
    assert all(tab.GetValue(r, c).ToString() == "met" for c in range(1, 4))
    r = rows.index("specimen_nonviable_pct")   # each specimen's non-viable share, as in plan.json
    assert [tab.GetValue(r, c + 1).ToString() for c in range(3)] == [str(c["specimen_nonviable_pct"]) for c in sp.cores]
    # no curve: the default incision is added as a curve node
    sp2, ids2 = sarcoma_plan_from_nodes(scene, vol, seg, "sarcoma_1", None, n_cores=3)
    assert scene.GetNodeByID(ids2["incision"]).IsA("vtkMRMLMarkupsCurveNode")


def test_imagio_web_plans_a_sarcoma_biopsy_of_the_chosen_target(tmp_path):
    pytest.importorskip("trame_slicer")
    import asyncio

    from trame.app import get_server

    from imagio.phantom.limb import save
    from imagio.web.app import PlanningWorkstation

    ph = thigh(seed=0, spacing_mm=3.0, tumour_diameter_mm=80, necrotic_fraction=0.5)
    save(ph, tmp_path / "in")
    ws = PlanningWorkstation(get_server("imagio-test-sarcoma", client_type="vue3"),
                             ct_path=str(tmp_path / "in" / "ct.nii.gz"),
                             labels_path=str(tmp_path / "in" / "labels.nii.gz"), out_dir=tmp_path / "out")
    asyncio.run(ws.load_case())
    ws.state.target = "sarcoma_1"
    sp = ws.on_sarcoma()
    assert sp is not None and sp.feasible
    assert ws.state.sarcoma.startswith(f"{len(sp.cores)} cores") and "rules met" in ws.state.sarcoma
    assert ws.scene.GetFirstNodeByName("Tattoo entry") is not None
    ws.state.target = "femur_left"   # not a tumour: said in one line, nothing raised
    assert ws.on_sarcoma() is None and ws.state.sarcoma.startswith("Sarcoma biopsy failed")


def _read_as_slicer(scene, path, labelmap=False):
    """A volume node read from ``path`` by Slicer's own archetype storage node (as Add Data)."""
    cls = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    node = scene.AddNewNodeByClass(cls, "labels" if labelmap else "CT")
    st = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    st.SetFileName(str(path))
    if labelmap:
        st.SetSingleFile(True)
    node.SetAndObserveStorageNodeID(st.GetID())
    assert st.ReadData(node), path
    return node


@pytest.mark.parametrize("storage", ["flip_permute", "oblique_flip"])
def test_the_module_and_the_cli_give_the_same_cores(tmp_path, storage):
    """New-user trial 95 F8: the Slicer module (Logic.sarcomaBiopsy = sarcoma_plan_from_nodes) and
    ``imagio plan --procedure sarcoma-biopsy`` chose other cores 2-4 for one CT and label map stored
    not RAS-canonical: the CLI reordered the grids to RAS-canonical storage, the module kept the
    file's (the long bone's axis thinned its voxels in array order; the deepest-point ties). Now
    both plan on `canonical_grids` (RAS-canonical storage, affines rounded). The thigh phantom (the trial-36 case) is written
    (SimpleITK) flipped along i and k with i and j swapped, or on an oblique grid (direction and
    origin turned 20 degrees about S, then flipped along j: the same world image for CT and labels);
    the module reads it with Slicer's archetype storage node, the label map made a segmentation;
    the CLI reads the files: the same entry and the same core targets, the viable segment back on the
    file's grid voxel for voxel; the module gives the same cores for the canonical file too when the
    world image is the same (flip_permute)."""
    import json

    import SimpleITK as sitk
    from conftest import run_imagio
    from imagio import mrml
    from imagio.mrml.volumes import node_to_volume

    d = tmp_path / "in"
    assert run_imagio("phantom", d, "--anatomy", "thigh", "--spacing", "3", "--tumour-angle", "200",
                      "--tumour-s", "120").returncode == 0
    names = {int(k): v["name"] for k, v in json.loads((d / "labels.labels.json").read_text())["labels"].items()}
    th = np.radians(20.0)
    rot = np.array([[np.cos(th), -np.sin(th), 0.0], [np.sin(th), np.cos(th), 0.0], [0.0, 0.0, 1.0]])
    for n in ("ct", "labels"):
        img = sitk.ReadImage(str(d / f"{n}.nii.gz"))
        if storage == "flip_permute":
            out = sitk.PermuteAxes(sitk.Flip(img, [True, False, True]), [1, 0, 2])
        else:   # the world image turned about S (LPS: the same rotation), then stored flipped along j
            img.SetDirection(tuple((rot @ np.array(img.GetDirection()).reshape(3, 3)).ravel()))
            img.SetOrigin(tuple(rot @ np.array(img.GetOrigin())))
            out = sitk.Flip(img, [False, True, False])
        sitk.WriteImage(out, str(d / f"{n}X.nii.gz"))
    (d / "labelsX.labels.json").write_text((d / "labels.labels.json").read_text())

    def module(ct_path, lab_path):
        scene = mrml.new_scene()
        ct = _read_as_slicer(scene, ct_path)
        lv = node_to_volume(_read_as_slicer(scene, lab_path, labelmap=True))
        vals = set(np.unique(lv.array).tolist()) - {0}
        seg, _ = labels_to_segmentation(lv.with_array(lv.array, labels={v: names[v] for v in vals}), scene,
                                        reference_node=ct)
        sp, _ = sarcoma_plan_from_nodes(scene, ct, seg, "sarcoma_1", None, 4)
        # the viable tumour came back as a segment on the file's own grid, voxel for voxel
        back = segmentation_to_labels(seg, reference=node_to_volume(ct))
        inv = {n: v for v, n in back.labels.items()}
        assert (back.array == inv["sarcoma_1_viable"]).sum() == sp.viable.mask.sum() > 0
        return [round(float(x), 1) for x in sp.entry_ras], [[round(float(x), 1) for x in c["metrics"].target_ras]
                                                           for c in sp.cores]

    r = run_imagio("plan", d / "ctX.nii.gz", "--labels", d / "labelsX.nii.gz", "--target", "sarcoma_1",
                   "--procedure", "sarcoma-biopsy", "--cores", "4", "--out", tmp_path / "cli", "--quiet", "--no-png",
                   "--no-scene")
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "cli" / "plan.json").read_text())["sarcoma"]
    entry, targets = module(d / "ctX.nii.gz", d / "labelsX.nii.gz")
    assert len(targets) >= 2
    assert np.allclose(entry, doc["tattoo_entry"]["ras"], atol=0.051), (entry, doc["tattoo_entry"]["ras"])
    assert np.allclose(targets, [c["target_ras"] for c in doc["cores"]], atol=0.051), (targets, doc["cores"])
    if storage == "flip_permute":   # the same world image as the file stored RAS-canonical
        assert module(d / "ct.nii.gz", d / "labels.nii.gz") == (entry, targets)
