"""Label `Volume` <-> vtkMRMLSegmentationNode: one segment per structure, named, coloured,
with its terminology, on the label volume's exact (possibly oblique) geometry.

Segments are added as a new shared labelmap layer; segments the user already has in the node
are never modified. A name already in use gets a numeric suffix (``liver`` -> ``liver_2``).
"""

from __future__ import annotations

import numpy as np

from .. import anatomy, outline_doubts
from ..errors import InputError
from ..io import terminology_entry
from ..volume import Volume
from .volumes import _np_matrix, _vtk_matrix, array_to_image_data, image_data_to_array

BINARY_LABELMAP = "Binary labelmap"


def _oriented_image(vol: Volume, share: bool = False):
    import slicer

    oi = slicer.vtkOrientedImageData()
    img = array_to_image_data(vol.array, share=share)
    oi.ShallowCopy(img)
    oi.SetImageToWorldMatrix(_vtk_matrix(vol.ijk_to_ras))
    return oi


def _unique_name(segmentation, name: str) -> str:
    existing = {segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())}
    if name not in existing:
        return name
    k = 2
    while f"{name}_{k}" in existing:
        k += 1
    return f"{name}_{k}"


def labels_to_segmentation(labels: Volume, scene, node=None, name: str = "Segmentation",
                           reference_node=None, share: bool = False) -> tuple:
    """Add one segment per label of ``labels`` to ``node`` (a new node when None).

    Returns (node, {label value: segment id}). ``reference_node`` (a volume node) is set as the
    segmentation's reference geometry source for Slicer's editor. ``share``: the segments' layer
    reads the label array itself, not a copy, when it is of the layer's type (`array_to_image_data`;
    for a label map that neither the caller nor the scene's users edit: the demo's).
    """
    import slicer

    if not labels.labels:
        raise InputError("label volume has no structure names; cannot name the segments")
    present = set(np.unique(labels.array).tolist()) - {0}
    if not present:
        raise InputError("the label map is empty: nothing to put in the segmentation")
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        node.CreateDefaultDisplayNodes()
    seg = node.GetSegmentation()
    fresh = seg.GetNumberOfSegments() == 0
    if fresh:
        seg.SetSourceRepresentationName(BINARY_LABELMAP)
    arr = labels.array
    dtype = np.uint8 if max(present) < 256 else np.uint16
    layer = _oriented_image(labels.with_array(arr.astype(dtype, copy=False)), share=share)
    if reference_node is not None and reference_node.GetImageData() is not None:
        node.SetReferenceImageGeometryParameterFromVolumeNode(reference_node)
    elif fresh:   # the label map's own grid (without one, writing the node logs "Reference image
        # geometry is not found" on the terminal)
        seg.SetConversionParameter(slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName(),
                                   slicer.vtkSegmentationConverter.SerializeImageGeometry(layer))
    ids = {}
    for value in sorted(present):
        sname = labels.labels.get(int(value), f"label_{int(value)}")
        s = anatomy.get(sname)
        segment = slicer.vtkSegment()
        final = _unique_name(seg, sname)
        segment.SetName(final)
        segment.SetColor(*s.color_float)
        segment.SetLabelValue(int(value))
        segment.SetTag("TerminologyEntry", terminology_entry(sname))
        rec = labels.outline_doubts.get(sname)
        if rec is not None and rec.get("may_be"):   # `imagio segment`'s doubt (`structure_record`; trial 79)
            segment.SetTag(outline_doubts.MAY_BE_TAG, str(rec["may_be"]))
        elif rec is not None:   # `imagio lesion`'s flags, kept by Slicer with the segment (trial 75)
            segment.SetTag(outline_doubts.SEGMENT_TAG, outline_doubts.tag_value(rec))
        segment.AddRepresentation(BINARY_LABELMAP, layer)
        sid = seg.GenerateUniqueSegmentID(final)
        seg.AddSegment(segment, sid)
        ids[int(value)] = sid
    return node, ids


def segment_names(node) -> list[str]:
    seg = node.GetSegmentation()
    return [seg.GetNthSegment(i).GetName() for i in range(seg.GetNumberOfSegments())]


def segmentation_to_labels(node, reference: Volume | None = None, segment_ids=None) -> Volume:
    """Segmentation node -> label Volume named by segment names.

    Values are 1..n in segment order. Geometry: ``reference``'s grid (nearest-neighbour
    resampling), else the first segment's labelmap geometry.
    """
    from vtkmodules.vtkCommonCore import reference as out_arg   # a string out-argument (vtkSegment.GetTag)

    seg = node.GetSegmentation()
    ids = list(segment_ids) if segment_ids else [seg.GetNthSegmentID(i) for i in range(seg.GetNumberOfSegments())]
    if not ids:
        raise InputError(f"segmentation '{node.GetName()}' has no segments")
    out_arr, out_vol, names, doubts = None, None, {}, {}
    for value, sid in enumerate(ids, start=1):
        segment = seg.GetSegment(sid)
        rep = segment.GetRepresentation(BINARY_LABELMAP)
        if rep is None:
            raise InputError(f"segment '{segment.GetName()}' has no binary labelmap; convert it in Slicer first")
        vol = _oriented_to_volume(rep)
        mask = vol.array == segment.GetLabelValue()
        if reference is not None and not vol.same_grid(reference):
            mask = vol.with_array(mask.astype(np.uint8)).resample_like(reference, order=0).array.astype(bool)
            vol = reference
        if out_arr is None:
            out_vol = vol
            out_arr = np.zeros(vol.shape, np.uint8 if len(ids) < 256 else np.uint16)
        elif not vol.same_grid(out_vol):
            mask = vol.with_array(mask.astype(np.uint8)).resample_like(out_vol, order=0).array.astype(bool)
        out_arr[mask] = value
        names[value] = anatomy.canonical_name(segment.GetName())   # "Liver" -> liver (catalogue spelling)
        tag = out_arg("")
        if segment.GetTag(outline_doubts.SEGMENT_TAG, tag):   # the flags `imagio lesion` set (`labels_to_segmentation`)
            doubts[names[value]] = outline_doubts.from_tag(str(tag))
        elif segment.GetTag(outline_doubts.MAY_BE_TAG, tag) and str(tag):   # `imagio segment`'s doubt (its words stay in the file)
            doubts[names[value]] = outline_doubts.structure_record(str(tag), [])
    return Volume(out_arr, out_vol.ijk_to_ras.copy(), node.GetName() or "", names,
                  scanner_coordinates=out_vol.scanner_coordinates, outline_doubts=doubts)


def _oriented_to_volume(oi) -> Volume:
    from ..vtklib import vtk

    m = vtk.vtkMatrix4x4()
    oi.GetImageToWorldMatrix(m)
    ijk_to_ras = _np_matrix(m)
    ext = oi.GetExtent()
    # the extent may not start at 0: move the origin to voxel (ext0, ext2, ext4)
    ijk_to_ras[:3, 3] = ijk_to_ras[:3, :3] @ np.array([ext[0], ext[2], ext[4]], float) + ijk_to_ras[:3, 3]
    return Volume(image_data_to_array(oi), ijk_to_ras)
