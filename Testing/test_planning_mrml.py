"""MRML nodes of a plan, with the real slicer-core classes."""

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

from imagio.mrml.planning import (RISK_ARRAY, line_points, metrics_table_node, observe_path,  # noqa: E402
                                  plan_to_scene, write_scene)
from imagio.planning import PlanningProblem, plan  # noqa: E402
from imagio.planning.risk_map import INFEASIBLE, UNREACHABLE  # noqa: E402
from imagio.planning.synthetic import synthetic_torso  # noqa: E402


@pytest.fixture(scope="module")
def torso_plan():
    ct, lab = synthetic_torso(3.0)
    return plan(PlanningProblem.build(ct, lab, "liver_tumor"))


def test_plan_to_scene_nodes(torso_plan, tmp_path):
    scene = slicer.vtkMRMLScene()
    ids = plan_to_scene(scene, torso_plan)
    props = [scene.GetNodeByID(i) for i in ids["proposals"]]
    assert len(props) == len(torso_plan.proposals) >= 3
    for node, m in zip(props, torso_plan.proposals):
        assert node.IsA("vtkMRMLMarkupsLineNode") and node.GetNumberOfControlPoints() == 2
        e, t = line_points(node)
        assert np.allclose(e, m.entry_ras, atol=1e-4) and np.allclose(t, m.target_ras, atol=1e-4)
        assert node.GetNthControlPointLabel(0) == "entry" and node.GetNthControlPointLabel(1) == "target"
    model = scene.GetNodeByID(ids["risk_map"])
    poly = model.GetPolyData()
    assert poly.GetNumberOfPoints() > 1000
    arr = poly.GetPointData().GetArray(RISK_ARRAY)
    from vtk.util import numpy_support as ns
    risk = ns.vtk_to_numpy(arr)
    assert len(risk) == poly.GetNumberOfPoints()
    assert (risk <= 1.0).any() and (risk == INFEASIBLE).any() and (risk == UNREACHABLE).any()
    disp = model.GetDisplayNode()
    assert disp.GetActiveScalarName() == RISK_ARRAY and disp.GetScalarVisibility()
    assert disp.GetColorNode().IsA("vtkMRMLColorTableNode")
    table = scene.GetNodeByID(ids["table"]).GetTable()
    assert table.GetNumberOfColumns() == 1 + len(torso_plan.proposals)
    assert table.GetColumn(0).GetValue(0) == "feasible" and table.GetColumn(1).GetValue(0) == "True"
    path = write_scene(scene, tmp_path / "scene")
    assert (tmp_path / "scene" / "plan.mrml").exists() and path.endswith("plan.mrml")
    assert (tmp_path / "scene" / "Skin_risk_map.vtk").exists()
    # the scene reloads with its proposals
    s2 = slicer.vtkMRMLScene()
    s2.SetURL(path)
    s2.Import()
    assert s2.GetNodesByClass("vtkMRMLMarkupsLineNode").GetNumberOfItems() == len(props) + 1


def test_live_metrics_follow_point_moves(torso_plan):
    scene = slicer.vtkMRMLScene()
    ids = plan_to_scene(scene, torso_plan)
    line = scene.GetNodeByID(ids["path"])
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", "live")
    seen = []
    observe_path(line, torso_plan.evaluator, seen.append, table)
    line.SetNthControlPointPosition(0, 0.0, 100.0, 0.0)   # straight through the front: feasible?
    assert seen and np.allclose(seen[-1].entry_ras, (0.0, 100.0, 0.0))
    direct = torso_plan.evaluator.evaluate((0.0, 100.0, 0.0))
    assert seen[-1].length_mm == pytest.approx(direct.length_mm)
    assert seen[-1].violations == direct.violations
    assert table.GetTable().GetColumn(1).GetValue(0) == str(direct.feasible)
    # move the entry onto a rib: the live metrics say forbidden
    line.SetNthControlPointPosition(0, 0.0, 84.0, 15.0)
    assert "forbidden" in seen[-1].violations or "clearance" in seen[-1].violations
    assert line.GetAttribute("IMAGIO.feasible") == "False"


def test_metrics_table_from_dicts():
    scene = slicer.vtkMRMLScene()
    node = metrics_table_node(scene, [{"feasible": False, "score": 0.5, "violations": ["fissure", "emphysema"]}])
    t = node.GetTable()
    rows = [t.GetColumn(0).GetValue(i) for i in range(t.GetNumberOfRows())]
    assert t.GetColumn(1).GetValue(rows.index("violations")) == "fissure, emphysema"
    assert t.GetColumn(1).GetValue(rows.index("score")) == "0.50"


def test_plan_from_nodes_with_a_target_point_and_options():
    from imagio import mrml
    from imagio.errors import InputError
    from imagio.mrml.planning import needle_plan_from_nodes
    from imagio.planning.planner import format_report
    from imagio.planning.synthetic import TUMOR

    ct, lab = synthetic_torso(3.0)
    scene = mrml.new_scene()
    ct_node = mrml.volume_to_node(ct, scene, "CT")
    seg, _ = mrml.labels_to_segmentation(lab, scene, reference_node=ct_node)
    pts = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "target")
    import vtk
    pts.AddControlPoint(vtk.vtkVector3d(*TUMOR[0]), "tip")
    result, ids = needle_plan_from_nodes(scene, ct_node, seg, None, pts, needle_length_mm=120,
                                  uncertainty_mm=1.0, max_craniocaudal_deg=0, patient_position="prone",
                                  n_proposals=3)
    assert np.allclose(result.problem.target.point_ras, TUMOR[0])
    assert result.problem.needle.length_mm == 120 and result.problem.needle.uncertainty_mm == 1.0
    assert result.problem.constraints.patient_position == "prone"
    assert len(ids["proposals"]) == len(result.proposals) == 3
    for m in result.proposals:          # prone: no anterior entries; gantry 0: axial
        assert m.craniocaudal_deg < 0.011 and m.length_mm <= 120
    assert np.all(result.table.normal_ras[result.table.feasible, 1] <= 0.5 + 1e-6)
    # no feasible path: no editable path, and the report says why
    bad, bad_ids = needle_plan_from_nodes(scene, ct_node, seg, "liver_tumor", None, needle_length_mm=50)
    assert not bad.feasible and "path" not in bad_ids and "longer needle" in format_report(bad.report)
    with pytest.raises(InputError, match="target"):
        needle_plan_from_nodes(scene, ct_node, seg, None, None)
    # roles and rules from the module are used and recorded, as on the command line
    ov, _ = needle_plan_from_nodes(scene, ct_node, seg, "liver_tumor", None, roles={"aorta": ("margin", 9.0)},
                            disabled_rules=["fissure"])
    assert next(s for s in ov.problem.structures if s.name == "aorta").margin_mm == 9.0
    assert ov.problem.rules["roles_overridden"] == {"aorta": "margin:9"}
    assert ov.problem.rules["disabled"] == ["fissure"]
