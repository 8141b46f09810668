"""Saving a scene that Slicer opens (a .mrml file with its data files) and re-loading it."""

from __future__ import annotations

from pathlib import Path

DATA_SUFFIX = {
    "vtkMRMLScalarVolumeNode": ".nrrd", "vtkMRMLLabelMapVolumeNode": ".nrrd",
    "vtkMRMLSegmentationNode": ".seg.nrrd", "vtkMRMLModelNode": ".vtk",
    "vtkMRMLMarkupsLineNode": ".mrk.json", "vtkMRMLMarkupsFiducialNode": ".mrk.json",
    "vtkMRMLMarkupsCurveNode": ".mrk.json", "vtkMRMLMarkupsClosedCurveNode": ".mrk.json",
    "vtkMRMLTableNode": ".tsv", "vtkMRMLColorTableNode": ".ctbl",
}


def new_scene():
    import slicer

    return slicer.vtkMRMLScene()


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "node"


def save_scene(scene, mrml_path) -> Path:
    """Write every storable node next to ``mrml_path`` (data files in the same folder, relative
    paths) and the scene file itself. Existing files of the same names are replaced only inside
    this folder, which the caller chose for output."""
    mrml_path = Path(mrml_path).resolve()
    folder = mrml_path.parent
    folder.mkdir(parents=True, exist_ok=True)
    used = set()
    n = scene.GetNumberOfNodes()
    for i in range(n):
        node = scene.GetNthNode(i)
        if not node.IsA("vtkMRMLStorableNode") or node.GetHideFromEditors() and not node.IsA("vtkMRMLColorTableNode"):
            continue
        cls = node.GetClassName()
        if cls == "vtkMRMLColorTableNode" and node.GetSingletonTag():
            continue  # built-in colour tables come with Slicer
        suffix = DATA_SUFFIX.get(cls)
        if suffix is None:
            continue
        storage = node.GetStorageNode()
        if storage is None:
            node.AddDefaultStorageNode()
            storage = node.GetStorageNode()
        if storage is None:
            continue
        base = _safe(node.GetName())
        fname = base + suffix
        k = 2
        while fname in used:
            fname = f"{base}_{k}{suffix}"
            k += 1
        used.add(fname)
        storage.SetFileName(str(folder / fname))
        if not storage.WriteData(node):
            raise OSError(f"could not write {fname} for node {node.GetName()}")
    scene.SetRootDirectory(str(folder))
    scene.SetURL(str(mrml_path))
    if not scene.Commit(str(mrml_path)):
        raise OSError(f"could not write the scene {mrml_path}")
    return mrml_path


def load_scene(mrml_path):
    """Load a .mrml scene (and its data files) into a new scene; returns the scene."""
    import slicer

    scene = slicer.vtkMRMLScene()
    scene.SetURL(str(Path(mrml_path).resolve()))
    if not scene.Connect():
        raise OSError(f"could not read the scene {mrml_path}")
    for i in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(i)
        if node.IsA("vtkMRMLStorableNode") and node.GetStorageNode() is not None and not _has_data(node):
            node.GetStorageNode().ReadData(node)
    return scene


def _has_data(node) -> bool:
    if node.IsA("vtkMRMLVolumeNode"):
        return node.GetImageData() is not None
    if node.IsA("vtkMRMLSegmentationNode"):
        return node.GetSegmentation().GetNumberOfSegments() > 0
    if node.IsA("vtkMRMLModelNode"):
        return node.GetPolyData() is not None
    return False


def nodes_by_class(scene, cls: str) -> list:
    return [scene.GetNthNodeByClass(i, cls) for i in range(scene.GetNumberOfNodesByClass(cls))]
