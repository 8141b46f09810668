"""Reading and writing images: NIfTI, NRRD, MetaImage, DICOM series, Slicer ``.seg.nrrd``.

Files store geometry in LPS (ITK convention); ``Volume`` is RAS. The flip happens here and
nowhere else: RAS = diag(-1, -1, 1) @ LPS.

Label maps carry their structure names either in a ``.seg.nrrd`` header (Slicer opens it as
a segmentation with named, coloured segments) or in a JSON sidecar ``<file>.labels.json``
(``{"labels": {"1": {"name": "liver", "color": [r, g, b]}}}``; a plain ``{"1": "liver"}``
dict, as TotalSegmentator ships, is read too).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import anatomy
from .errors import InputError
from .volume import Volume

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


def _sitk():
    import SimpleITK as sitk  # imported lazily: keeps `import imagio` light inside Slicer

    return sitk


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for s in (".seg.nrrd", ".nii.gz") + IMAGE_SUFFIXES:
        if name.endswith(s):
            return s
    return path.suffix.lower()


def volume_from_sitk(img, name: str = "") -> Volume:
    """SimpleITK image (LPS) -> Volume (RAS)."""
    sitk = _sitk()
    if img.GetDimension() != 3:
        raise InputError(
            f"{name or 'image'} is {img.GetDimension()}D; IMAGIO needs a 3D volume "
            "(a whole CT series or a 3D NIfTI/NRRD, not a single slice)"
        )
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{name or 'image'} has {img.GetNumberOfComponentsPerPixel()} components "
                         "per voxel; expected a scalar (greyscale CT or label) image")
    d = np.array(img.GetDirection(), float).reshape(3, 3)
    m = np.eye(4)
    m[:3, :3] = d * np.array(img.GetSpacing(), float)[None, :]
    m[:3, 3] = img.GetOrigin()
    arr = sitk.GetArrayFromImage(img)  # [k, j, i]
    return Volume(arr, LPS_TO_RAS @ m, name)


def volume_to_sitk(vol: Volume):
    """Volume (RAS) -> SimpleITK image (LPS) with the same voxel positions."""
    sitk = _sitk()
    arr = vol.array
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    m = LPS_TO_RAS @ vol.ijk_to_ras
    sp = vol.spacing
    img.SetSpacing([float(s) for s in sp])
    img.SetOrigin([float(x) for x in m[:3, 3]])
    img.SetDirection([float(x) for x in (m[:3, :3] / sp[None, :]).ravel()])
    return img


def _check_exists(path: Path):
    if not path.exists():
        raise InputError(f"{path}: no such file or folder; check the path")


def read_image(path) -> Volume:
    """Read a 3D image file or a DICOM series folder as a Volume in RAS."""
    path = Path(path)
    _check_exists(path)
    if path.is_dir():
        return read_dicom_series(path)
    sitk = _sitk()
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError:
        raise InputError(
            f"{path}: not a readable image (supported: NIfTI, NRRD, MetaImage, DICOM series folder)"
        ) from None
    vol = volume_from_sitk(img, path.name)
    vol.meta.update(_dicom_meta(img))
    if _suffix(path) == ".seg.nrrd":
        vol.labels = _seg_nrrd_labels(img)
    return vol


def read_dicom_series(folder) -> Volume:
    """Read the largest DICOM series in ``folder``; keeps patient/series identifiers in ``meta``."""
    sitk = _sitk()
    folder = Path(folder)
    _check_exists(folder)
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or []
    if not ids:
        raise InputError(f"{folder}: no DICOM series found in this folder")
    files = max((sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), i) for i in ids), key=len)
    if len(files) < 2:
        raise InputError(f"{folder}: the DICOM series has one slice; IMAGIO needs a 3D volume")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    reader.LoadPrivateTagsOff()
    img = reader.Execute()
    vol = volume_from_sitk(img, folder.name)
    meta = {}
    for key, tag in DICOM_TAGS.items():
        if reader.HasMetaDataKey(0, tag):
            meta[key] = reader.GetMetaData(0, tag).strip()
    vol.meta.update(meta)
    return vol


DICOM_TAGS = {
    "PatientName": "0010|0010", "PatientID": "0010|0020", "StudyDate": "0008|0020",
    "StudyInstanceUID": "0020|000d", "SeriesInstanceUID": "0020|000e",
    "SeriesDescription": "0008|103e", "Modality": "0008|0060", "AccessionNumber": "0008|0050",
}


def _dicom_meta(img) -> dict:
    return {k: img.GetMetaData(t).strip() for k, t in DICOM_TAGS.items() if img.HasMetaDataKey(t)}


def write_image(vol: Volume, path) -> Path:
    """Write a Volume (CT or label map) to NIfTI/NRRD/MetaImage; creates parent folders."""
    sitk = _sitk()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(volume_to_sitk(vol), str(path), useCompression=True)
    return path


# label maps ---------------------------------------------------------------------------------

def sidecar_path(path) -> Path:
    path = Path(path)
    name = path.name
    for s in (".nii.gz",) + IMAGE_SUFFIXES:
        if name.lower().endswith(s):
            name = name[: -len(s)]
            break
    return path.with_name(name + ".labels.json")


def read_labels(path, names: dict[int, str] | None = None) -> Volume:
    """Read a label map; names from ``names``, a ``.seg.nrrd`` header or a JSON sidecar.

    Raises InputError when the map has no labelled voxel.
    """
    vol = read_image(path)
    if vol.array.dtype.kind == "f":
        if not np.all(np.mod(vol.array, 1) == 0):
            raise InputError(f"{path}: not a label map (non-integer voxel values)")
        vol.array = vol.array.astype(np.int32)
    if names:
        vol.labels = dict(names)
    elif not vol.labels:
        side = sidecar_path(path)
        if side.exists():
            vol.labels = _read_sidecar(side)
    if not np.any(vol.array):
        raise InputError(f"{path}: the label map is empty (no labelled voxel); segment something first")
    present = set(np.unique(vol.array).tolist()) - {0}
    for v in present:
        vol.labels.setdefault(int(v), f"label_{int(v)}")
    vol.labels = {k: v for k, v in vol.labels.items() if k in present}
    return vol


def _read_sidecar(path: Path) -> dict[int, str]:
    doc = json.loads(Path(path).read_text())
    table = doc.get("labels", doc)
    return {int(k): (v["name"] if isinstance(v, dict) else str(v)) for k, v in table.items()}


def write_labels(vol: Volume, path) -> Path:
    """Write a label map with its names and colours.

    ``*.seg.nrrd``: Slicer segmentation file (one segment per label value, names, colours and
    SNOMED terminology in the header). Other suffixes: the image plus a ``.labels.json`` sidecar.
    """
    path = Path(path)
    if not vol.labels:
        raise InputError("label map has no names; set Volume.labels ({value: name})")
    if _suffix(path) == ".seg.nrrd":
        return _write_seg_nrrd(vol, path)
    write_image(vol, path)
    doc = {"labels": {str(k): {"name": n, "color": list(anatomy.get(n).color)}
                      for k, n in sorted(vol.labels.items())}}
    sidecar_path(path).write_text(json.dumps(doc, indent=1))
    return path


def terminology_entry(name: str) -> str:
    """Slicer terminology string for a structure (DICOM CID 7150 style, SNOMED-CT codes)."""
    s = anatomy.get(name)
    cat = "SCT^123037004^Anatomical Structure"
    if s.role == "target":
        cat = "SCT^49755003^Morphologically Altered Structure"
    typ = f"SCT^{s.snomed_code}^{s.snomed_meaning}" if s.snomed_code else f"IMAGIO^{name}^{s.display_name}"
    return f"Segmentation category and type - 3D Slicer General Anatomy list~{cat}~{typ}~^^~Anatomic codes - DICOM master list~^^~^^"


def _write_seg_nrrd(vol: Volume, path: Path) -> Path:
    sitk = _sitk()
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = vol.array
    labels = sorted((int(k), n) for k, n in vol.labels.items())
    dtype = np.uint8 if max(k for k, _ in labels) < 256 else np.uint16
    img = volume_to_sitk(vol.with_array(arr.astype(dtype, copy=False)))
    img.SetMetaData("Segmentation_MasterRepresentation", "Binary labelmap")
    img.SetMetaData("Segmentation_ContainedRepresentationNames", "Binary labelmap|")
    img.SetMetaData("Segmentation_ReferenceImageExtentOffset", "0 0 0")
    ni, nj, nk = vol.shape[::-1]
    for idx, (value, name) in enumerate(labels):
        s = anatomy.get(name)
        p = f"Segment{idx}_"
        img.SetMetaData(p + "ID", name)
        img.SetMetaData(p + "Name", name)
        img.SetMetaData(p + "NameAutoGenerated", "0")
        img.SetMetaData(p + "Color", " ".join(f"{c:.6f}" for c in s.color_float))
        img.SetMetaData(p + "ColorAutoGenerated", "0")
        img.SetMetaData(p + "LabelValue", str(value))
        img.SetMetaData(p + "Layer", "0")
        img.SetMetaData(p + "Extent", f"0 {ni - 1} 0 {nj - 1} 0 {nk - 1}")
        img.SetMetaData(p + "Tags", "TerminologyEntry:" + terminology_entry(name) + "|")
    sitk.WriteImage(img, str(path), useCompression=True)
    return path


def _seg_nrrd_labels(img) -> dict[int, str]:
    labels = {}
    idx = 0
    while img.HasMetaDataKey(f"Segment{idx}_ID"):
        name = img.GetMetaData(f"Segment{idx}_Name") if img.HasMetaDataKey(f"Segment{idx}_Name") else \
            img.GetMetaData(f"Segment{idx}_ID")
        value = int(img.GetMetaData(f"Segment{idx}_LabelValue")) if img.HasMetaDataKey(
            f"Segment{idx}_LabelValue") else idx + 1
        layer = img.GetMetaData(f"Segment{idx}_Layer") if img.HasMetaDataKey(f"Segment{idx}_Layer") else "0"
        if layer.strip() != "0":
            raise InputError("multi-layer .seg.nrrd (overlapping segments) is not supported yet; "
                             "export it from Slicer as a label map")
        labels[value] = name
        idx += 1
    return labels
