"""The work behind the Slicer modules' Logic classes, on plain MRML scenes.

The module files (IMAGIOSegmentation.py, IMAGIOPlanning.py) only pass ``slicer.mrmlScene`` and
their nodes here, so the same code runs inside Slicer and, in the tests, on the real MRML
classes of the slicer-core wheel. New results always go into new segments or new nodes: a
segment or node the user made is never modified.
"""

from __future__ import annotations

import numpy as np

from .. import anatomy, io
from ..errors import InputError
from .segmentations import labels_to_segmentation, segmentation_to_labels
from .volumes import node_to_volume


def _target_segmentation(scene, segmentation_node, name: str):
    if segmentation_node is None:
        segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        segmentation_node.CreateDefaultDisplayNodes()
    return segmentation_node


def load_segmentation_file(scene, volume_node, path, segmentation_node=None):
    """Read a label file (.seg.nrrd, or NIfTI/NRRD + names sidecar) into segments of
    ``segmentation_node`` (a new node when None), on the file's own geometry; ``volume_node``
    becomes the reference geometry. Returns the segmentation node."""
    labels = io.read_labels(path)
    node = _target_segmentation(scene, segmentation_node, labels.name or "Segmentation")
    labels_to_segmentation(labels, scene, node=node, reference_node=volume_node)
    return node


def segment_volume_node(scene, volume_node, structures, segmentation_node=None, progress=None):
    """Run the rule-based segmenters on a CT volume node; adds one segment per structure."""
    from ..segmentation import segment

    ct, organs = rule_inputs(volume_node, structures, segmentation_node)
    labels = segment(ct, tuple(structures), progress=progress, organs=organs)
    return add_rule_segments(scene, volume_node, labels, segmentation_node)


def rule_inputs(volume_node, structures, segmentation_node=None):
    """(CT Volume, organs) that ``segment_volume_node`` passes to ``imagio.segmentation.segment``:
    the CT read from its node, and a liver already segmented in ``segmentation_node`` (its
    contrast vessels are searched too when "vessels" is asked for). Raises InputError without a CT."""
    if volume_node is None:
        raise InputError("select a CT volume first")
    ct = node_to_volume(volume_node)
    organs = None
    if "vessels" in structures and segmentation_node is not None:
        # a liver the user (or a model) already segmented: its contrast vessels are searched too
        existing = segmentation_to_labels(segmentation_node, reference=ct)
        if "liver" in existing.labels.values():
            organs = {"liver": existing.mask("liver")}
    return ct, organs


def add_rule_segments(scene, volume_node, labels, segmentation_node=None):
    """New segments from the rule-based ``labels`` in ``segmentation_node`` (a new node named after
    the CT when None); returns the node. With ``rule_inputs`` this splits ``segment_volume_node``
    so that the computation can run in a worker thread (IMAGIO Web) and the scene changes on the
    main thread."""
    node = _target_segmentation(scene, segmentation_node, f"{volume_node.GetName()} IMAGIO")
    labels_to_segmentation(labels, scene, node=node, reference_node=volume_node)
    return node


def model_segment_volume_node(scene, volume_node, model, segmentation_node=None, device=None, progress=None):
    """Run a deep model (catalogue name or nnU-Net v2 model folder) on a CT volume node; adds one
    segment per class found (anatomy names, colours, terminology). ``device``: None (CUDA when
    available), "cpu" or "cuda". ``progress(fraction, message)`` returning False cancels; a
    cancelled run adds nothing to the scene. Returns the segmentation node."""
    from ..segmentation import models

    if volume_node is None:
        raise InputError("select a CT volume first")
    if not model:
        raise InputError("choose a model (see 'imagio models list') or a model folder")
    ct = node_to_volume(volume_node)
    labels = models.segment(ct, model, device=device or None, progress=progress)
    present = np.unique(labels.array)
    labels = labels.with_array(labels.array, labels={v: n for v, n in labels.labels.items() if v in present})
    node = _target_segmentation(scene, segmentation_node, f"{volume_node.GetName()} {model}")
    labels_to_segmentation(labels, scene, node=node, reference_node=volume_node)
    return node


def model_choices() -> list[tuple[str, str]]:
    """(name, description) of the catalogue's models for a combo box: installed state and licence."""
    from ..segmentation import models

    out = []
    for r in models.list_models():
        lic = "licence key required" if r["licence_key_required"] else r["licence"]
        out.append((r["name"], f"{r['title']} [{r['installed']} parts installed; {lic}]"))
    return out


def lesion_from_point(scene, volume_node, point_ras, segmentation_node=None, name: str = "tumor"):
    """One-click lesion: segment the lesion under ``point_ras`` (RAS mm) as a new segment.
    Returns (segmentation node, measurements)."""
    from ..outline_doubts import lesion_record
    from ..segmentation.lesion import segment_lesion

    ct = node_to_volume(volume_node)
    point = np.asarray(point_ras, float)
    organ = None
    if segmentation_node is not None:
        # a click inside a liver segment (from the user or a model): the liver bounds the lesion
        existing = segmentation_to_labels(segmentation_node, reference=ct)
        if "liver" in existing.labels.values():
            liver = existing.mask("liver") | existing.mask(*[n for n in existing.labels.values()
                                                            if n.startswith(("liver_tumor", "tumor"))])
            if ct.contains_world(point[None])[0] and liver[tuple(ct.nearest_kji(point[None])[0])]:
                organ = liver
    mask, meas = segment_lesion(ct, point, organ=organ)
    lab = ct.with_array(mask.astype(np.uint8), name=name, labels={1: name})
    lab.outline_doubts = {name: lesion_record(meas, point)}   # its flags as a segment tag (trial 75)
    node = _target_segmentation(scene, segmentation_node, f"{volume_node.GetName()} IMAGIO")
    _remove_from_vessel_segments(node, ct, mask)
    labels_to_segmentation(lab, scene, node=node, reference_node=volume_node)
    return node, meas


def _remove_from_vessel_segments(node, ct, lesion):
    """A lesion found by a click is never a vessel (issue 14): every vessel segment of ``node``
    (``vessels.is_vessel_name``) that overlaps the lesion is replaced by itself without it
    (same id, name, colour and tags; moved to the end of the list)."""
    import slicer

    from ..segmentation.vessels import is_vessel_name
    from .segmentations import BINARY_LABELMAP, _oriented_image

    seg = node.GetSegmentation()
    for sid in [seg.GetNthSegmentID(i) for i in range(seg.GetNumberOfSegments())]:
        old = seg.GetSegment(sid)
        if not is_vessel_name(old.GetName()):
            continue
        m = segmentation_to_labels(node, reference=ct, segment_ids=[sid]).array > 0
        if not (m & lesion).any():
            continue
        new = slicer.vtkSegment()
        new.DeepCopy(old)
        new.RemoveAllRepresentations()
        new.SetLabelValue(1)
        new.AddRepresentation(BINARY_LABELMAP, _oriented_image(ct.with_array((m & ~lesion).astype(np.uint8))))
        seg.RemoveSegment(sid)
        seg.AddSegment(new, sid)


def labels_from_segmentation(segmentation_node, volume_node=None):
    """The segmentation as a label Volume on the CT's grid (when given)."""
    ref = node_to_volume(volume_node) if volume_node is not None else None
    return segmentation_to_labels(segmentation_node, reference=ref)


def structure_table(scene, segmentation_node, table_node=None, volume_node=None):
    """A table node listing each segment with its planning role, margin (mm) and volume (mL)."""
    labels = labels_from_segmentation(segmentation_node, volume_node)
    counts = np.bincount(labels.array.ravel().astype(np.int64), minlength=max(labels.labels) + 1)
    rows = []
    for value, name in sorted(labels.labels.items()):
        s = anatomy.get(name)
        rows.append((name, s.role, s.margin_mm, counts[value] * labels.voxel_volume_ml))
    if table_node is None:
        table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{segmentation_node.GetName()} structures")
    _fill_table(table_node, ["structure", "role", "margin_mm", "volume_ml"], rows)
    return table_node


def _fill_table(table_node, columns, rows):
    from ..vtklib import vtk

    table = table_node.GetTable()
    table.Initialize()
    for ci, cname in enumerate(columns):
        sample = rows[0][ci] if rows else ""
        arr = vtk.vtkStringArray() if isinstance(sample, str) else vtk.vtkDoubleArray()
        arr.SetName(cname)
        table.AddColumn(arr)
    table.SetNumberOfRows(len(rows))
    for ri, row in enumerate(rows):
        for ci, v in enumerate(row):
            table.SetValue(ri, ci, vtk.vtkVariant(v if isinstance(v, str) else float(v)))
    table_node.Modified()


def plan_trajectories(scene, volume_node, segmentation_node, target, needle_length_mm=None,
                      max_craniocaudal_deg=None, progress=None):
    """Plan needle paths; adds proposals, the editable best path, the skin risk map and the
    metrics table to the scene. ``target``: a segment name or an RAS point. Returns
    (plan, {role: node id})."""
    from ..planning.planner import plan
    from ..planning.problem import Constraints, Needle, PlanningProblem
    from .planning import plan_to_scene

    ct = node_to_volume(volume_node)
    labels = segmentation_to_labels(segmentation_node, reference=ct)
    needle = Needle()
    if needle_length_mm:
        needle.length_mm = float(needle_length_mm)
    constraints = Constraints()
    if max_craniocaudal_deg is not None:
        constraints.max_craniocaudal_deg = float(max_craniocaudal_deg)
    problem = PlanningProblem.build(ct, labels, target, needle=needle, constraints=constraints)
    result = plan(problem, progress=progress)
    return result, plan_to_scene(scene, result)
