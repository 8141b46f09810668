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
