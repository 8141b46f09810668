"""MRML nodes of a needle plan (works in Slicer and with slicer-core's ``slicer.vtkMRMLScene``).

- proposals: one ``vtkMRMLMarkupsLineNode`` each (control points "entry", "target"; RAS mm)
- the chosen path: a line node with entry/target control points, re-scored live through
  `observe_path` (PointModifiedEvent -> ``Evaluator.evaluate``)
- the skin risk map: a ``vtkMRMLModelNode`` with point scalars "PathRisk" and a colour table
- a ``vtkMRMLTableNode`` of metrics (one column per path)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

RISK_ARRAY = "PathRisk"
PROPOSAL_COLORS = [(0.1, 0.8, 0.2), (0.2, 0.6, 1.0), (1.0, 0.8, 0.1), (0.9, 0.4, 0.9), (0.3, 0.9, 0.9)]
TABLE_ROWS = ("feasible", "score", "length_mm", "closest_structure", "closest_clearance_mm",
              "skin_angle_deg", "craniocaudal_deg", "inplane_deg", "gantry_tilt_deg",
              "aerated_lung_mm", "pleural_crossings", "fissure_crossings", "emphysema_pct",
              "liver_before_target_mm", "violations")


def _line(scene, name, entry, target, color=None):
    from ..vtklib import vtk

    node = scene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", name)
    node.AddControlPoint(vtk.vtkVector3d(*map(float, entry)), "entry")
    node.AddControlPoint(vtk.vtkVector3d(*map(float, target)), "target")
    node.CreateDefaultDisplayNodes()
    if color is not None and node.GetDisplayNode() is not None:
        node.GetDisplayNode().SetSelectedColor(*color)
        node.GetDisplayNode().SetColor(*color)
    return node


def line_points(node) -> tuple[np.ndarray, np.ndarray]:
    """(entry, target) world RAS positions of a two-point line node."""
    e, t = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
    node.GetNthControlPointPositionWorld(0, e)
    node.GetNthControlPointPositionWorld(1, t)
    return np.array(e), np.array(t)


def proposal_nodes(scene, plan, prefix: str = "Proposal") -> list:
    """One line node per proposal of ``plan`` (imagio.planning.Plan), best first. Proposals are
    locked (their points cannot be dragged): a drag at the shared target moves the editable path
    (``path_node``), never a proposal."""
    out = []
    for r, m in enumerate(plan.proposals):
        n = _line(scene, f"{prefix} {r + 1} (score {m.score:.2f})", m.entry_ras, m.target_ras,
                  PROPOSAL_COLORS[r % len(PROPOSAL_COLORS)])
        n.SetLocked(1)
        n.SetAttribute("IMAGIO.score", f"{m.score:.4f}")
        n.SetAttribute("IMAGIO.rank", str(r + 1))
        out.append(n)
    return out


def path_node(scene, entry_ras, target_ras, name: str = "Needle path"):
    """The chosen (editable) path: a line node with control points 'entry' and 'target'."""
    return _line(scene, name, entry_ras, target_ras, (1.0, 0.2, 0.2))


def risk_color_node(scene, name: str = "IMAGIO path risk"):
    """Colour table for PathRisk: green (good) -> red (poor) on 0..1, dark grey = infeasible,
    light grey = out of reach (see imagio.planning.risk_map)."""
    node = scene.AddNewNodeByClass("vtkMRMLColorTableNode", name)
    node.SetTypeToUser()
    n = 256
    node.SetNumberOfColors(n)
    node.GetLookupTable().SetTableRange(0.0, 2.0)
    for i in range(n):
        v = 2.0 * i / (n - 1)
        if v <= 1.0:
            rgb = (min(1.0, 2 * v), min(1.0, 2 * (1 - v)), 0.1)
        elif v < 1.75:
            rgb = (0.35, 0.35, 0.35)
        else:
            rgb = (0.8, 0.8, 0.8)
        node.SetColor(i, f"{v:.3f}", *rgb, 1.0)
    return node


def risk_model_node(scene, polydata, name: str = "Skin risk map"):
    """Model node of the skin mesh coloured by its PathRisk point scalars."""
    node = scene.AddNewNodeByClass("vtkMRMLModelNode", name)
    node.SetAndObservePolyData(polydata)
    node.CreateDefaultDisplayNodes()
    d = node.GetDisplayNode()
    color = risk_color_node(scene)
    d.SetActiveScalarName(RISK_ARRAY)
    d.SetAndObserveColorNodeID(color.GetID())
    d.SetScalarRangeFlag(0)  # use the explicit range below (vtkMRMLDisplayNode::UseManualScalarRange)
    d.SetScalarRange(0.0, 2.0)
    d.SetScalarVisibility(True)
    return node


def metrics_table_node(scene, metrics: list, names: list[str] | None = None,
                       name: str = "Path metrics", node=None, extra_rows=()):
    """Table node: first column the metric, then one column per PathMetrics (or dict).
    ``extra_rows``: (row name, [text per path]) appended after `TABLE_ROWS`."""
    from ..report import NULL_TEXT

    columns = []
    for k, m in enumerate(metrics):
        d = m if isinstance(m, dict) else m.to_dict()
        columns.append((names[k] if names else f"path {k + 1}",
                        [", ".join(v) if isinstance(v, list) else f"{v:.2f}" if isinstance(v, float) else str(v)
                         for v in (NULL_TEXT[r] if d.get(r) is None and r in NULL_TEXT else d.get(r)
                                   for r in TABLE_ROWS)] + [vals[k] for _, vals in extra_rows]))
    rows = list(TABLE_ROWS) + [r for r, _ in extra_rows]
    return string_table_node(scene, name, "metric", rows, columns, node)


def string_table_node(scene, name: str, first: str, rows, columns, node=None):
    """Table node of strings: the first column ``first`` lists ``rows``; then one column per
    (title, [value per row]) of ``columns``. ``node``: an existing table node to fill."""
    from ..vtklib import vtk

    node = node or scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    table = vtk.vtkTable()
    for title, values in [(first, list(rows))] + list(columns):
        arr = vtk.vtkStringArray()
        arr.SetName(title)
        for v in values:
            arr.InsertNextValue(v)
        table.AddColumn(arr)
    node.SetAndObserveTable(table)
    return node


def plan_to_scene(scene, plan, risk=None) -> dict:
    """Proposals, the best path (editable), the skin risk map and the metrics table (with a row
    ``ranked_last_for``: the findings for which a proposal is ranked after those without any).
    ``risk``: the plan's skin risk map (`planning.risk_map.risk_polydata` of its maps and table)
    when the caller has built it (e.g. for `planning.render.render_plan_png`): the scene's model
    then holds that polydata instead of a new one."""
    from ..planning.risk_map import risk_polydata

    props = proposal_nodes(scene, plan)
    out = {"proposals": [n.GetID() for n in props]}
    if plan.proposals:
        best = plan.proposals[0]
        out["path"] = path_node(scene, best.entry_ras, best.target_ras).GetID()
    if risk is None:
        risk = risk_polydata(plan.maps, plan.table)
    out["risk_map"] = risk_model_node(scene, risk).GetID()
    # a proposal with a finding is ranked after those without, whatever its score: say so per column
    ranked_last = [", ".join(n.replace("_", " ") for n in f) or "-" for f in plan.proposal_finding_names()]
    out["table"] = metrics_table_node(scene, plan.proposals,
                                      [f"proposal {i + 1}" for i in range(len(plan.proposals))],
                                      extra_rows=[("ranked_last_for", ranked_last)]).GetID()
    return out


def observe_path(node, evaluator, callback=None, table_node=None):
    """Re-score ``node`` (a two-point line) whenever a control point moves: calls
    ``callback(PathMetrics)`` and refreshes ``table_node``. Returns the observer tag."""
    def on_modified(caller, event=None):
        if caller.GetNumberOfControlPoints() < 2:
            return
        e, t = line_points(caller)
        m = evaluator.evaluate(e, t)
        caller.SetAttribute("IMAGIO.feasible", str(m.feasible))
        if table_node is not None:
            metrics_table_node(None, [m], [caller.GetName()], node=table_node)
        if callback is not None:
            callback(m)

    import slicer

    return node.AddObserver(slicer.vtkMRMLMarkupsNode.PointModifiedEvent, on_modified)


def write_scene(scene, out_dir, name: str = "plan.mrml"):
    """Save every storable node of ``scene`` beside ``out_dir/name`` and the scene file
    (see ``imagio.mrml.scene.save_scene``); returns its path as a string."""
    from .scene import save_scene

    return str(save_scene(scene, Path(out_dir) / name))


def target_from_point_node(point_node):
    """RAS (mm) of the first control point of a markups point-list node, or None."""
    if point_node is None or point_node.GetNumberOfControlPoints() < 1:
        return None
    p = [0.0, 0.0, 0.0]
    point_node.GetNthControlPointPositionWorld(0, p)
    return np.array(p)


def needle_plan_from_nodes(scene, volume_node, segmentation_node, target=None, target_point_node=None,
                    needle_length_mm=None, needle_diameter_mm=None, uncertainty_mm=None,
                    max_craniocaudal_deg=None, max_skin_angle_deg=None, patient_position=None,
                    n_proposals=None, progress=None, roles=None, disabled_rules=None):
    """Plan needle paths from MRML nodes (the IMAGIOPlanning Logic's entry point).

    ``target``: a segment name, or None to use the first control point of
    ``target_point_node`` (RAS mm). Numbers left None keep the defaults of
    imagio/data/planning_defaults.json. ``roles``: {structure: role or (role, margin mm)}
    overrides (as ``imagio plan --role``); ``disabled_rules``: rule names switched off (as
    ``--no-rule``); both recorded in the plan. Adds proposals, the editable best path, the skin
    risk map and the metrics table to ``scene``; returns (Plan, {role: node id}). When no path is
    feasible the Plan says why (``plan.report``; ``format_report`` for a sentence)."""
    from ..planning.planner import plan

    problem = problem_from_nodes(volume_node, segmentation_node, target, target_point_node, needle_length_mm,
                                 needle_diameter_mm, uncertainty_mm, max_craniocaudal_deg, max_skin_angle_deg,
                                 patient_position, roles=roles, disabled_rules=disabled_rules)
    result = plan(problem, k=n_proposals, progress=progress)
    return result, plan_to_scene(scene, result)


def problem_from_nodes(volume_node, segmentation_node, target=None, target_point_node=None,
                       needle_length_mm=None, needle_diameter_mm=None, uncertainty_mm=None,
                       max_craniocaudal_deg=None, max_skin_angle_deg=None, patient_position=None,
                       roles=None, disabled_rules=None):
    """The PlanningProblem of ``needle_plan_from_nodes`` (same arguments, same defaults), read from the
    nodes; nothing is added to a scene. Callers that plan in a worker thread (IMAGIO Web) read
    the nodes here on the main thread, run ``imagio.planning.planner.plan`` in the worker and
    add the result with ``plan_to_scene`` on the main thread. Raises InputError without a CT,
    a segmentation or a target."""
    from ..errors import InputError
    from ..planning.problem import Constraints, Needle, PlanningProblem
    from .segmentations import segmentation_to_labels
    from .volumes import node_to_volume

    if volume_node is None or segmentation_node is None:
        raise InputError("select a CT volume and a segmentation with the structures first")
    point = target_from_point_node(target_point_node)
    if point is None and not target:
        raise InputError("give a target: a segment name or a point (markups) inside the lesion")
    ct = node_to_volume(volume_node)
    labels = segmentation_to_labels(segmentation_node, reference=ct)
    needle, c = Needle(), Constraints()
    for obj, attr, v in ((needle, "length_mm", needle_length_mm), (needle, "diameter_mm", needle_diameter_mm),
                         (needle, "uncertainty_mm", uncertainty_mm),
                         (c, "max_craniocaudal_deg", max_craniocaudal_deg),
                         (c, "max_skin_angle_deg", max_skin_angle_deg)):
        if v is not None:
            setattr(obj, attr, float(v))
    if patient_position or disabled_rules:
        c = Constraints(**{**vars(c), "patient_position": patient_position or c.patient_position,
                           "disabled_rules": tuple(disabled_rules or ())})
    return PlanningProblem.build(ct, labels, point if point is not None else target, needle=needle,
                                 constraints=c, roles=roles)
