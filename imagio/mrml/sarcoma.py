"""MRML nodes of a sarcoma biopsy plan (IMAGIOPlanning module and IMAGIO Web).

``sarcoma_plan_from_nodes``: plan from a CT volume node, a segmentation node (compartments,
septa, joints, bundle, bones, the tumour) and optionally a markups curve drawn along the
planned incision; adds to the scene one locked line per core, the entry point to tattoo
(a point list), the incision (the default one as a curve when none was drawn), the viable
tumour as a segment of the segmentation, and a table of the cores and the rules met.
RAS mm.
"""

from __future__ import annotations

import numpy as np


def curve_points(node) -> np.ndarray | None:
    """(m, 3) world RAS control points of a markups curve node, or None (no node / < 2 points)."""
    if node is None or node.GetNumberOfControlPoints() < 2:
        return None
    out = []
    for i in range(node.GetNumberOfControlPoints()):
        p = [0.0, 0.0, 0.0]
        node.GetNthControlPointPositionWorld(i, p)
        out.append(p)
    return np.array(out, float)


def fold_viable(labels):
    """The label map with each ``<tumour>_viable`` segment (added by an earlier plan) given
    back to its tumour: the viable map is derived, never an input."""
    inv = {n: v for v, n in labels.labels.items()}
    derived = {v: inv[n[: -len("_viable")]] for n, v in inv.items() if n.endswith("_viable") and n[: -len("_viable")] in inv}
    if not derived:
        return labels
    arr = labels.array.copy()
    for v, base in derived.items():
        arr[arr == v] = base
    return labels.with_array(arr, labels={v: n for v, n in labels.labels.items() if v not in derived})


def sarcoma_table_node(scene, sp, name: str = "Sarcoma biopsy cores", node=None):
    """Table node: one row per item (target, tip before firing, depth, the specimen's non-viable
    %, length, compartments crossed, each rule), one column per core."""
    from .planning import string_table_node

    doc = sp.to_dict()["sarcoma"]
    cores = doc["cores"]
    rows = ["target_ras", "fire_from_ras", "depth_mm", "specimen_nonviable_pct", "length_mm",
            "compartments_crossed"] + (list(cores[0]["rules"]) if cores else [])
    columns = []
    for k, c in enumerate(cores):
        vals = []
        for r in rows:
            v = c["rules"][r]["met"] if r in c["rules"] else c[r]
            v = {True: "met", False: "VIOLATED", None: "not checked"}[v] if r in c["rules"] else v
            vals.append(", ".join(map(str, v)) if isinstance(v, list) else str(v))
        columns.append((f"core {k + 1}", vals))
    return string_table_node(scene, name, "item", rows, columns, node)


def sarcoma_to_scene(scene, sp, segmentation_node=None) -> dict:
    """Add the plan ``sp`` (`SarcomaPlan`) to ``scene``; returns {role: node id or [ids]}."""
    from ..vtklib import vtk

    from .planning import _line
    from .segmentations import labels_to_segmentation

    ids = {"cores": []}
    for k, c in enumerate(sp.cores):
        m = c["metrics"]
        n = _line(scene, f"Core {k + 1} ({m.length_mm:.0f} mm)", m.entry_ras, m.target_ras,
                  (0.1, 0.9, 1.0) if k == 0 else (0.2, 0.6, 1.0))
        n.SetLocked(1)
        ids["cores"].append(n.GetID())
    if sp.cores:
        e = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Tattoo entry")
        e.AddControlPoint(vtk.vtkVector3d(*map(float, sp.entry_ras)), "tattoo")
        e.CreateDefaultDisplayNodes()
        ids["entry"] = e.GetID()
    if sp.incision is not None and sp.incision_source != "user curve":
        cv = scene.AddNewNodeByClass("vtkMRMLMarkupsCurveNode", "Incision (default)")
        for p in sp.incision[:: max(1, len(sp.incision) // 12)]:
            cv.AddControlPoint(vtk.vtkVector3d(*map(float, p)))
        cv.CreateDefaultDisplayNodes()
        ids["incision"] = cv.GetID()
    if sp.viable.mask.any():
        ct = sp.plan.problem.ct
        via = ct.with_array(sp.viable.mask.astype(np.uint8), name="viable", labels={1: f"{sp.tumour}_viable"})
        if segmentation_node is None:   # a new node: its reference geometry is the CT grid (Slicer's
            import slicer             # converters read it; without it they log 'Reference image geometry' not found)

            from .segmentations import _oriented_image

            segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Viable tumour")
            segmentation_node.CreateDefaultDisplayNodes()
            conv = slicer.vtkSegmentationConverter
            segmentation_node.GetSegmentation().SetConversionParameter(
                conv.GetReferenceImageGeometryParameterName(), conv.SerializeImageGeometry(_oriented_image(via)))
        node, segs = labels_to_segmentation(via, scene, node=segmentation_node, name="Viable tumour")
        ids["viable_segmentation"] = node.GetID()
        ids["viable_segment"] = segs.get(1)
    ids["table"] = sarcoma_table_node(scene, sp).GetID()
    return ids


def sarcoma_plan_from_nodes(scene, volume_node, segmentation_node, tumour=None, incision_node=None,
                            n_cores=None, allow_no_compartments=False, progress=None):
    """Plan the biopsy from MRML nodes (the IMAGIOPlanning Logic's entry point); returns
    (SarcomaPlan, ids of the nodes added). Raises InputError without a CT or a segmentation,
    and as `plan_sarcoma_biopsy` (no tumour, no compartments, ...)."""
    from ..errors import InputError
    from ..planning.sarcoma import plan_sarcoma_biopsy
    from ..planning.sarcoma.plan import canonical_grids
    from .segmentations import segmentation_to_labels
    from .volumes import node_to_volume

    if volume_node is None or segmentation_node is None:
        raise InputError("select a CT volume and a segmentation with the limb's structures and the tumour first")
    ct = node_to_volume(volume_node)
    labels = fold_viable(segmentation_to_labels(segmentation_node, reference=ct))
    # the grids as the CLI plans them (trial 95 F8: other cores 2-4 on the file's own storage)
    ct, labels = canonical_grids(ct, labels)
    sp = plan_sarcoma_biopsy(ct, labels, tumour or None, incision=curve_points(incision_node),
                             n_cores=n_cores, allow_no_compartments=allow_no_compartments, progress=progress)
    return sp, sarcoma_to_scene(scene, sp, segmentation_node)
