"""MRML nodes of a bronchoscopic plan (works in Slicer and with slicer-core).

- the airway tree: one ``vtkMRMLModelNode`` of centreline polylines, point scalars "Radius"
  (mm) and cell scalars "Generation"
- the route: a ``vtkMRMLMarkupsCurveNode`` from the trachea to the route's end (RAS mm)
- the camera path for a fly-through: a curve node (Slicer's Endoscopy module flies along it)
- each tunnel: a ``vtkMRMLMarkupsLineNode`` ("airway wall", "lesion")
- a ``vtkMRMLTableNode`` of metrics
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError


def tree_model_node(scene, tree, name: str = "Airway tree"):
    """The centrelines as polylines (one cell per branch) with radius and generation scalars."""
    from ..vtklib import vtk
    from ..vtklib import numpy_support as ns

    pts = vtk.vtkPoints()
    pts.SetData(ns.numpy_to_vtk(np.ascontiguousarray(tree.points, dtype=np.float64), deep=True))
    # one polyline per branch, from its parent's bifurcation point (connectivity + offsets arrays)
    cells = [(b.point_ids if b.parent < 0 else np.r_[tree.parent[b.point_ids[0]], b.point_ids], b.generation)
             for b in tree.branches]
    cells = [(ids, g) for ids, g in cells if len(ids) >= 2]
    offsets = np.r_[0, np.cumsum([len(ids) for ids, _ in cells])]
    lines = vtk.vtkCellArray()
    lines.SetData(ns.numpy_to_vtkIdTypeArray(offsets.astype(np.int64), deep=True),
                  ns.numpy_to_vtkIdTypeArray(np.concatenate([ids for ids, _ in cells]).astype(np.int64), deep=True))
    gen = ns.numpy_to_vtk(np.array([g for _, g in cells], np.int32), deep=True)
    gen.SetName("Generation")
    poly = vtk.vtkPolyData()
    poly.SetPoints(pts)
    poly.SetLines(lines)
    rad = ns.numpy_to_vtk(tree.radius.astype(np.float32), deep=True)
    rad.SetName("Radius")
    poly.GetPointData().AddArray(rad)
    poly.GetCellData().AddArray(gen)
    node = scene.AddNewNodeByClass("vtkMRMLModelNode", name)
    node.SetAndObservePolyData(poly)
    node.CreateDefaultDisplayNodes()
    d = node.GetDisplayNode()
    d.SetColor(0.2, 0.7, 1.0)
    d.SetLineWidth(2)
    return node


def curve_node(scene, points, name: str, color=(1.0, 0.85, 0.1), labels=None):
    """A markups curve through ``points`` (RAS mm)."""
    from ..vtklib import vtk

    node = scene.AddNewNodeByClass("vtkMRMLMarkupsCurveNode", name)
    for k, p in enumerate(np.asarray(points, float)):
        node.AddControlPoint(vtk.vtkVector3d(*map(float, p)), labels[k] if labels else "")
    node.CreateDefaultDisplayNodes()
    if node.GetDisplayNode() is not None:
        node.GetDisplayNode().SetSelectedColor(*color)
        node.GetDisplayNode().SetColor(*color)
    return node


def tunnel_node(scene, tunnel, name: str = "Tunnel"):
    from ..vtklib import vtk

    node = scene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", name)
    node.AddControlPoint(vtk.vtkVector3d(*map(float, tunnel.start_ras)), "airway wall")
    node.AddControlPoint(vtk.vtkVector3d(*map(float, tunnel.end_ras)), "lesion")
    node.CreateDefaultDisplayNodes()
    return node


def metrics_table(scene, plan, name: str = "Bronchoscopy metrics"):
    from ..vtklib import vtk

    r = plan.route.to_dict()
    rows = [("scope", f"{r['scope']} ({r['scope_diameter_mm']:g} mm)"), ("reached", r["reach"]),
            ("remaining to lesion (mm)", f"{r['remaining_mm']:.1f}"), ("route length (mm)", f"{r['length_mm']:.1f}"),
            ("generation", str(r["generation"])), ("exit angle (deg)", f"{r['exit_angle_deg']:.0f}"),
            ("narrowest lumen (mm)", f"{r['min_diameter_mm']}"), ("bronchus sign", r.get("bronchus_sign_reason") or str(r["bronchus_sign"])),
            ("verdict", r.get("verdict", "")),
            ("branches", " > ".join(r["route_names"]) + (f" {r['route_names_note']}" if r.get("route_names_note") else ""))]
    rows.append(("target lobe", f"{r['target_lobe'] or 'unknown'} ({r['target_lobe_from'] or '-'})"))
    rows.append(("route ends in", r["end_lobe"] or "a central airway"))
    for w in plan.all_warnings:
        rows.append(("warning", w))
    for k, t in enumerate(plan.tunnels):
        c = t.to_dict()["min_vessel_clearance_mm"]
        rows.append((f"tunnel {k + 1}", f"{t.length_mm:.1f} mm, vessel clearance "
                                        f"{'not checked' if c is None else f'{c:.1f} mm'}"))
    if plan.tunnel_problem:
        rows.append(("tunnel", plan.tunnel_problem))
    table = vtk.vtkTable()
    for col, vals in (("metric", [a for a, _ in rows]), ("value", [b for _, b in rows])):
        arr = vtk.vtkStringArray()
        arr.SetName(col)
        for v in vals:
            arr.InsertNextValue(v)
        table.AddColumn(arr)
    node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    node.SetAndObserveTable(table)
    return node


def bronchoscopy_to_scene(scene, tree, plan, prefix: str = "") -> dict:
    """All nodes of a plan; returns them by role."""
    p = f"{prefix} " if prefix else ""
    step = max(1, len(plan.route.points) // 60)  # a curve with control points every few mm
    route_pts = np.vstack([plan.route.points[::step], plan.route.points[-1:]])
    out = {"tree": tree_model_node(scene, tree, f"{p}Airway tree"),
           "route": curve_node(scene, route_pts, f"{p}Route ({plan.route.scope})"),
           "tunnels": [tunnel_node(scene, t, f"{p}Tunnel {k + 1}") for k, t in enumerate(plan.tunnels)],
           "table": metrics_table(scene, plan, f"{p}Bronchoscopy metrics")}
    if plan.camera_positions is not None:
        cs = max(1, len(plan.camera_positions) // 40)
        out["camera"] = curve_node(scene, plan.camera_positions[::cs], f"{p}Fly-through path", (0.3, 1.0, 0.3))
    return out


def bronchoscopy_plan_from_nodes(scene, volume_node, segmentation_node, target_segment: str | None = None,
                    target_point_node=None, scope: str = "thin", prefix: str = ""):
    """Route (and tunnels) from the airway segments of ``segmentation_node`` to a lesion segment
    or a markups point; nodes added to the scene. Returns (plan, nodes)."""
    from ..planning import bronchoscopy as bronch
    from .segmentations import segmentation_to_labels
    from .volumes import node_to_volume

    from ..volume import as_ras_canonical

    if segmentation_node is None:
        raise InputError("select a segmentation with the airways (IMAGIOSegmentation: Airways)")
    ref = node_to_volume(volume_node) if volume_node is not None else None
    # the grids in RAS-canonical storage, as `imagio bronch` puts them (`volume.as_ras_canonical`;
    # every voxel keeps its world position): the tree and the route do not depend on how the
    # same images are stored (new-user trial 32 M1: 280 or 277 branches for one phantom)
    labels = as_ras_canonical(segmentation_to_labels(segmentation_node, reference=ref))[0]
    ref = as_ras_canonical(ref)[0] if ref is not None else None
    names = set(labels.labels.values())
    if not names & set(bronch.AIRWAY_NAMES):
        raise InputError("the segmentation has no airway segment (trachea / airways): segment the airways first")
    from ..planning.bronchoscopy.anatomy import LOBAR

    lobes = labels if names & set(LOBAR) else None
    ct = None
    if ref is not None:  # the leak check needs a CT in HU; another reference volume is not used for it
        from ..segmentation.common import check_ct

        try:
            check_ct(ref)
            ct = ref
        except InputError:
            ct = None
    tree = bronch.extract_tree(labels, bronch.airway_mask(labels), ct=ct, lobes=lobes)
    piece_note = ""
    if target_point_node is not None and target_point_node.GetNumberOfControlPoints():
        p = [0.0, 0.0, 0.0]
        target_point_node.GetNthControlPointPositionWorld(0, p)
        target = bronch.Target.from_point(p)
    elif target_segment:
        if target_segment not in names:
            raise InputError(f"no segment named {target_segment!r} in the segmentation")
        from ..planning.bronchoscopy.commands import largest_piece

        piece, piece_note = largest_piece(labels, target_segment)
        target = bronch.Target.from_mask(labels, piece)
    else:
        raise InputError("choose the target: a nodule segment or a point")
    from ..planning.bronchoscopy.tunnel import lung_envelope

    lungs, vessels = lung_envelope(labels)
    notes = [piece_note] if piece_note else []
    if lungs is not None and vessels is None and ct is not None:   # lungs but no lung-vessel label
        from ..planning.bronchoscopy.commands import vessels_from_ct

        lungs, vessels = vessels_from_ct(ct, target, lungs)
        notes.append("the segmentation has lungs but no lung-vessel segment: lung vessels segmented from the CT "
                     "(rule-based) within reach of the tunnels")
    plan = bronch.plan(tree, target, scope, lungs=lungs, vessels=vessels, lobes=lobes, ct=ct, others=labels)
    plan.warnings += notes
    return plan, bronchoscopy_to_scene(scene, tree, plan, prefix)
