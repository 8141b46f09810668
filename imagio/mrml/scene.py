"""Saving a scene that Slicer opens (a .mrml file with its data files) and re-loading it."""

from __future__ import annotations

from pathlib import Path

from ..file_names import for_library

DATA_SUFFIX = {
    "vtkMRMLScalarVolumeNode": ".nrrd", "vtkMRMLLabelMapVolumeNode": ".nrrd",
    "vtkMRMLSegmentationNode": ".seg.nrrd", "vtkMRMLModelNode": ".vtk",
    "vtkMRMLMarkupsLineNode": ".mrk.json", "vtkMRMLMarkupsFiducialNode": ".mrk.json",
    "vtkMRMLMarkupsCurveNode": ".mrk.json", "vtkMRMLMarkupsClosedCurveNode": ".mrk.json",
    "vtkMRMLTableNode": ".tsv", "vtkMRMLColorTableNode": ".ctbl",
}


# Units Slicer's application logic puts in every scene (vtkSlicerUnitsLogic): markups
# measurements (line length, curve area, ...) look them up through the selection node.
SCENE_UNITS = (("length", "mm", 1.0), ("area", "mm2", 1.0), ("volume", "cm3", 0.001))


def new_scene():
    """An MRML scene outside the Slicer application, with what Slicer's application logic would
    have added for the nodes IMAGIO creates: the selection node and the length/area/volume unit
    nodes (without them every markups measurement logs "GetUnitNode failed: selection node not
    found"). They are not saved with the scene: Slicer keeps the user's own."""
    import slicer

    scene = slicer.vtkMRMLScene()
    sel = slicer.vtkMRMLSelectionNode()
    sel.SetSingletonTag("Singleton")
    sel.SetSaveWithScene(False)
    scene.AddNode(sel)
    for quantity, suffix, coefficient in SCENE_UNITS:
        unit = slicer.vtkMRMLUnitNode()
        unit.SetName(quantity.capitalize())
        unit.SetQuantity(quantity)
        unit.SetSuffix(suffix)
        unit.SetDisplayCoefficient(coefficient)
        unit.SetSingletonTag(f"IMAGIOUnit{quantity}")
        unit.SetSaveWithScene(False)
        scene.AddNode(unit)
        sel.SetUnitNodeID(quantity, unit.GetID())
    return scene


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "node"


def save_scene(scene, mrml_path) -> Path:
    """Write every storable node next to ``mrml_path`` (data files in the same folder, relative
    paths) and the scene file itself. Existing files of the same names are replaced only when
    they are IMAGIO's earlier outputs (`outputs.refuse_foreign`; each file written is recorded).
    The data files of the scene written there before (an earlier run's proposals, named after
    their scores) that this scene does not use are removed when they are IMAGIO's recorded,
    unchanged outputs (`outputs.remove_earlier_output`; never a user's file nor an input), so a
    --force re-run does not leave stale markups beside the scene."""
    from ..outputs import earlier_output, record_output, refuse_foreign, remove_earlier_output

    mrml_path = Path(mrml_path).resolve()
    folder = mrml_path.parent
    folder.mkdir(parents=True, exist_ok=True)
    before = _scene_files(mrml_path) if mrml_path.is_file() and earlier_output(mrml_path) else set()
    used = set()
    nodes = [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]
    for node in nodes:
        if not node.IsA("vtkMRMLStorableNode") or node.IsA("vtkMRMLStorageNode"):
            continue
        if node.GetAttribute(INPUT_REFERENCE):   # the user's own file, read in place: never written
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
        refuse_foreign(folder / fname)
        storage.SetFileName(for_library(folder / fname))
        if not storage.WriteData(node):
            raise OSError(f"could not write {fname} for node {node.GetName()}")
        record_output(folder / fname)
    refuse_foreign(mrml_path)
    scene.SetRootDirectory(for_library(folder))
    scene.SetURL(for_library(mrml_path))
    if not scene.Commit(for_library(mrml_path)):
        raise OSError(f"could not write the scene {mrml_path}")
    record_output(mrml_path)
    for f in before - _scene_files(mrml_path) - {mrml_path}:
        if f.parent == folder:
            remove_earlier_output(f)
    return mrml_path


def _scene_files(mrml_path: Path) -> set[Path]:
    """The files (resolved) a saved MRML scene's storage nodes name (``fileName``, relative to
    the scene's folder); empty when the file is not readable XML."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(mrml_path).getroot()
    except (ET.ParseError, OSError):
        return set()
    return {(mrml_path.parent / e.get("fileName")).resolve() for e in root.iter() if e.get("fileName")}


INPUT_REFERENCE = "IMAGIO.input"   # attribute of a node whose data is an input file, referenced, never written
READABLE_VOLUME = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")


def reference_volume(scene, path, name: str):
    """A scalar volume node that the saved scene reads from the user's file ``path`` (absolute;
    NRRD, NIfTI or MetaImage, which Slicer reads as it is), or None for anything else (a DICOM
    folder: Slicer's DICOM module loads it). The node holds no data here and `save_scene` never
    writes it: the input is referenced, not copied (a CT is hundreds of MB) nor overwritten."""
    import slicer

    path = Path(path).resolve()
    if not path.is_file() or not str(path).lower().endswith(READABLE_VOLUME):
        return None
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    node.SetAttribute(INPUT_REFERENCE, str(path))
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(for_library(path))
    node.SetAndObserveStorageNodeID(storage.GetID())
    display = slicer.vtkMRMLScalarVolumeDisplayNode()
    scene.AddNode(display)
    display.SetAutoWindowLevel(True)
    node.SetAndObserveDisplayNodeID(display.GetID())
    return node


def reference_labels(scene, path, names: dict, name: str):
    """A node that the saved scene reads from the user's label file ``path`` in place: a
    segmentation for a ``.seg.nrrd``, else a labelmap volume (NRRD/NIfTI/MetaImage) whose colour
    table (``names``: {value: structure name}, catalogue colours; written beside the scene)
    names its values; None for anything else. Never written (`save_scene`), never copied."""
    import slicer

    from .. import anatomy

    path = Path(path).resolve()
    low = str(path).lower()
    if not path.is_file():
        return None
    if low.endswith(".seg.nrrd"):
        node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        storage = slicer.vtkMRMLSegmentationStorageNode()
    elif low.endswith(READABLE_VOLUME):
        node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", name)
        storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
        colours = scene.AddNewNodeByClass("vtkMRMLColorTableNode", f"{name} names")
        colours.SetTypeToUser()
        colours.SetNumberOfColors(int(max(names, default=0)) + 1)
        colours.SetColor(0, "background", 0.0, 0.0, 0.0, 0.0)
        for v, n in names.items():
            colours.SetColor(int(v), n, *anatomy.get(n).color_float, 1.0)
        display = slicer.vtkMRMLLabelMapVolumeDisplayNode()
        scene.AddNode(display)
        display.SetAndObserveColorNodeID(colours.GetID())
        node.SetAndObserveDisplayNodeID(display.GetID())
    else:
        return None
    node.SetAttribute(INPUT_REFERENCE, str(path))
    scene.AddNode(storage)
    storage.SetFileName(for_library(path))
    node.SetAndObserveStorageNodeID(storage.GetID())
    if node.IsA("vtkMRMLSegmentationNode"):
        node.CreateDefaultDisplayNodes()
    return node


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


# Storage classes that Slicer's markups module logic registers in the scene
# (vtkSlicerMarkupsLogic::RegisterNodes) and a bare vtkMRMLScene does not know: without them
# the scene reader drops every markups node's storage reference and the nodes load empty.
MARKUPS_STORAGE_CLASSES = ("vtkMRMLMarkupsJsonStorageNode", "vtkMRMLMarkupsPlaneJsonStorageNode",
                           "vtkMRMLMarkupsROIJsonStorageNode")


def register_markups_storage(scene) -> None:
    """Register in ``scene`` the markups storage node classes Slicer's markups logic registers
    (`MARKUPS_STORAGE_CLASSES`; those this slicer-core lacks are skipped), so that reading a
    .mrml outside the Slicer application reads each markups node's ``.mrk.json``."""
    import slicer

    known = {scene.GetNthRegisteredNodeClass(i).GetClassName()
             for i in range(scene.GetNumberOfRegisteredNodeClasses())}
    for name in MARKUPS_STORAGE_CLASSES:
        cls = getattr(slicer, name, None)
        if cls is not None and name not in known:
            scene.RegisterNodeClass(cls())


def load_scene(mrml_path):
    """Load a .mrml scene (and its data files) into a new scene (`new_scene`); returns it.

    The markups storage classes Slicer's markups logic would register are registered first
    (`register_markups_storage`), so markups nodes come back with their control points.
    Raises OSError when the scene cannot be read, when a node's storage node named in the file
    was not created (a storage class this scene does not know), or when a node's data file
    cannot be read."""
    mrml_path = Path(mrml_path).resolve()
    scene = new_scene()   # with the selection and unit nodes the markups measurements look up
    register_markups_storage(scene)
    bare = scene.GetNumberOfNodes()
    scene.SetURL(for_library(mrml_path))
    scene.Import()  # returns 0 without Slicer's application logic even when all nodes load
    if scene.GetNumberOfNodes() == bare:
        raise OSError(f"could not read the scene {mrml_path}")
    failed = [name for name, ref in _storage_references(mrml_path)
              if scene.GetNodeByID(ref) is None]
    if failed:
        raise OSError(f"{mrml_path}: the storage of {failed} was not read (a storage node class "
                      "this scene does not know): their data would be missing")
    for i in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(i)
        if node.IsA("vtkMRMLStorableNode") and node.GetStorageNode() is not None and not _has_data(node):
            if not node.GetStorageNode().ReadData(node):
                failed.append(node.GetName())
    if failed:
        raise OSError(f"{mrml_path}: could not read the data of {failed}")
    return scene


def _storage_references(mrml_path: Path) -> list[tuple[str, str]]:
    """(node name, storage node id) for each node of a saved MRML file that names storage nodes,
    as a ``references="storage:id1 id2;..."`` entry or the older ``storageNodeRef`` attribute;
    empty when the file is not readable XML."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(mrml_path).getroot()
    except (ET.ParseError, OSError):
        return []
    out = []
    for e in root.iter():
        refs = (e.get("storageNodeRef") or "").split()
        for entry in (e.get("references") or "").split(";"):
            role, _, ids = entry.partition(":")
            if role.strip() == "storage":
                refs += ids.split()
        out += [(e.get("name") or e.tag, ref) for ref in dict.fromkeys(refs)]
    return out


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
