"""Closing note 35, Left 3: the Slicer module (IMAGIOPlanning) and IMAGIO Web call the library
through imagio.mrml, and there (a) the ablation judged the probes for the module's needle setting
(1.3 mm), not the device's own shaft that ``imagio plan --device`` uses since trial 32 M3, and (b)
the bronchoscopic route was built on the images as stored, which ``imagio bronch`` no longer does
(trial 32 M1: the tree depended on the storage order). Both on the real slicer-core classes."""

import json

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

from imagio import mrml, phantom  # noqa: E402
from imagio.mrml.ablation import ablation_from_nodes, plan_for_probe  # noqa: E402
from imagio.mrml.bronchoscopy import bronchoscopy_plan_from_nodes  # noqa: E402
from imagio.mrml.planning import needle_plan_from_nodes  # noqa: E402
from imagio.planning.ablation import get_device  # noqa: E402
from imagio.planning.evaluate import Evaluator  # noqa: E402
from imagio.planning.problem import Needle, PlanningProblem  # noqa: E402
from test_bronchoscopy_faults import _stored_otherwise  # noqa: E402


@pytest.fixture(scope="module")
def planned():
    ph = phantom.generate(spacing=3.0)
    scene = mrml.new_scene()
    ct = mrml.volume_to_node(ph.ct, scene, "CT")
    seg = mrml.labels_to_segmentation(ph.labels, scene, reference_node=ct)[0]
    result, ids = needle_plan_from_nodes(scene, ct, seg, "liver_tumor_1")   # the module's default needle
    assert result.feasible and result.problem.needle.diameter_mm == pytest.approx(1.3)
    return ph, scene, ct, seg, result, ids


def test_the_module_judges_the_probe_for_the_devices_own_shaft(planned):
    ph, scene, ct, seg, result, ids = planned
    shaft_13g = 0.095 * 25.4   # Birmingham wire gauge 13: 0.095 inch (independent of the catalogue)
    p = plan_for_probe(result, get_device("emprint"))
    assert p.problem.needle.diameter_mm == pytest.approx(shaft_13g, abs=1e-3)
    for m in p.proposals:
        assert m.required_mm == pytest.approx(shaft_13g / 2 + p.problem.needle.uncertainty_mm, abs=1e-3)
    # the ablation of the module's path: the probe checked by an independent evaluator for the shaft
    path = scene.GetNodeByID(ids["path"])
    res, _, _ = ablation_from_nodes(scene, ct, seg, path, "liver_tumor_1", "emprint", "100W_10min", plan=result)
    e, t = res.probes[0].entry_ras, res.probes[0].tip_ras
    own = Evaluator(PlanningProblem.build(ph.ct, ph.labels, "liver_tumor_1",
                                          needle=Needle(diameter_mm=shaft_13g))).evaluate(e, t)
    assert res.probes[0].feasible == own.feasible and sorted(res.probes[0].violations) == sorted(own.violations)
    assert f"{shaft_13g:.3f}".rstrip("0") in res.status
    # cryo multi-probe from the module: the probes kept apart for the IceRod's 17G shaft (1.473 mm)
    mp, _, _ = ablation_from_nodes(scene, ct, seg, None, "liver_tumor_1", "icerod", None, multi_probe=True,
                                   plan=result)
    u = result.problem.needle.uncertainty_mm
    assert mp.placement["simultaneous"] and mp.placement["min_shaft_spacing_mm"] == pytest.approx(1.473 + 2 * u)
    ev = Evaluator(PlanningProblem.build(ph.ct, ph.labels, "liver_tumor_1", needle=Needle(diameter_mm=1.473)))
    for q in mp.probes:
        assert ev.evaluate(q.entry_ras, q.tip_ras).feasible


def test_the_modules_route_does_not_depend_on_how_the_images_are_stored():
    ph = phantom.generate(spacing=1.5, seed=0)
    n1 = ph.lesion("lung_nodule_1")
    docs, branches = [], []
    for ct_vol, lab in ((ph.ct, ph.labels), (_stored_otherwise(ph.ct), _stored_otherwise(ph.labels))):
        scene = mrml.new_scene()
        ct = mrml.volume_to_node(ct_vol, scene, "CT")
        seg = mrml.labels_to_segmentation(lab, scene, reference_node=ct)[0]
        pt = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "target")
        pt.AddControlPoint(*map(float, n1.center_ras))
        plan, nodes = bronchoscopy_plan_from_nodes(scene, ct, seg, None, pt, "thin")
        docs.append(json.loads(json.dumps(plan.to_dict())))
        branches.append(nodes["tree"].GetPolyData().GetNumberOfCells())
    assert branches[0] > 50
    assert branches[0] == branches[1]
    assert docs[0] == docs[1]
    assert np.isfinite(docs[0]["route"]["length_mm"])
