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
    nodes = [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]
    for node in nodes:
        if not node.IsA("vtkMRMLStorableNode") or node.IsA("vtkMRMLStorageNode"):
            continue
        if node.IsA("vtkMRMLColorTableNode") and node.GetSingletonTag():
            continue  # built-in colour tables come with Slicer
        storage = _storage_node(scene, node)
        if storage is None:
            continue
        suffix = DATA_SUFFIX.get(node.GetClassName()) or "." + (storage.GetDefaultWriteFileExtension() or "dat")
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


def _storage_node(scene, node):
    import slicer

    storage = node.GetStorageNode()
    if storage is None:
        storage = node.CreateDefaultStorageNode()
        if storage is None and node.IsA("vtkMRMLMarkupsNode"):
            storage = slicer.vtkMRMLMarkupsJsonStorageNode()
        if storage is None:
            return None
        scene.AddNode(storage)
        node.SetAndObserveStorageNodeID(storage.GetID())
    return storage


def load_scene(mrml_path):
    """Load a .mrml scene (and its data files) into a new scene; returns the scene."""
    import slicer

    scene = slicer.vtkMRMLScene()
    scene.SetURL(str(Path(mrml_path).resolve()))
    scene.Connect()  # returns 0 without Slicer's application logic even when all nodes load
    if scene.GetNumberOfNodes() == 0:
        raise OSError(f"could not read the scene {mrml_path}")
    failed = []
    for i in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(i)
        if node.IsA("vtkMRMLStorableNode") and node.GetStorageNode() is not None and not _has_data(node):
            if not node.GetStorageNode().ReadData(node):
                failed.append(node.GetName())
    if failed:
        raise OSError(f"{mrml_path}: could not read the data of {failed}")
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
