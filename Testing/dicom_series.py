"""Small DICOM CT series written with pydicom for the reader's tests.

An analytic patient in LPS mm (DICOM's frame): air outside a soft-tissue (40 HU) elliptic body
cylinder along z, and a spherical 300 HU marker. Pixel values integrate each voxel (3x3x3
sub-samples: partial volume, as a scanner's detector and slice profile do), so a thresholded
marker keeps its volume on any grid. Every geometry is free: orientation, pixel spacing, slice
positions (tilted, missing, shuffled), rescale, padding, localizers, enhanced multi-frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
MARKER_HU, BODY_HU, AIR = 300.0, 40.0, -1000.0
THRESHOLD = (MARKER_HU + BODY_HU) / 2  # half way: partial volume averages out


class Patient:
    """HU at LPS points: body ellipse (semi-axes ``body`` mm in x, y), marker sphere."""

    def __init__(self, marker_lps=(10.0, -5.0, 22.0), radius=11.0, body=(70.0, 55.0)):
        self.marker = np.asarray(marker_lps, float)
        self.radius = float(radius)
        self.body = body

    @property
    def marker_ras(self) -> np.ndarray:
        return self.marker * np.array([-1.0, -1.0, 1.0])

    @property
    def marker_ml(self) -> float:
        return 4 / 3 * np.pi * self.radius ** 3 / 1000

    def hu(self, p: np.ndarray) -> np.ndarray:
        x, y = p[..., 0], p[..., 1]
        out = np.full(p.shape[:-1], AIR)
        out[(x / self.body[0]) ** 2 + (y / self.body[1]) ** 2 < 1] = BODY_HU
        out[np.linalg.norm(p - self.marker, axis=-1) < self.radius] = MARKER_HU
        return out

    def slice_hu(self, origin, row, col, rows, cols, spacing, thickness) -> np.ndarray:
        """Voxel-averaged HU of one slice [rows, cols]."""
        normal = np.cross(row, col)
        j, i = np.mgrid[0:rows, 0:cols]
        base = origin + i[..., None] * spacing[0] * row + j[..., None] * spacing[1] * col
        acc = np.zeros((rows, cols))
        offs = (-1 / 3, 0.0, 1 / 3)
        for a in offs:
            for b in offs:
                for c in offs:
                    acc += self.hu(base + a * spacing[0] * row + b * spacing[1] * col + c * thickness * normal)
        return acc / 27


def _ds(sop_class: str, series: str, study: str, inst: int) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientName, ds.PatientID, ds.Modality = "TEST^SERIES", "T1", "CT"
    ds.InstanceNumber = inst
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    return ds


def _stored(hu: np.ndarray, slope: float, intercept: float, signed: bool) -> np.ndarray:
    v = np.rint((hu - intercept) / slope)
    return v.astype(np.int16 if signed else np.uint16)


def write_series(folder, patient: Patient, positions, row=(1, 0, 0), col=(0, 1, 0), rows=48, cols=56,
                 spacing=(2.5, 2.5), thickness=None, series=None, study=None, slope=1.0, intercept=-1024.0,
                 signed=False, padding=None, image_type="ORIGINAL\\PRIMARY\\AXIAL", description="test",
                 first_instance=1, names=None, gantry_tilt=None, acquisition=None,
                 patient_position=None, times=None, patient_id=None, study_date=None,
                 patient_name=None) -> list[Path]:
    """One file per position (LPS mm). ``padding``: (stored value, mask function(j, i) -> bool)
    writes that value outside the scan and sets PixelPaddingValue. ``acquisition``: one
    AcquisitionNumber, or one per position; ``times``: AcquisitionTime (DICOM TM text) per
    position; ``patient_id``: PatientID (and a PatientName from it) instead of the default
    patient's ('' for none); ``patient_name``: PatientName; ``study_date``: StudyDate (DICOM DA
    text). Returns the files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    row, col = np.asarray(row, float), np.asarray(col, float)
    series = series or generate_uid()
    study = study or generate_uid()
    positions = [np.asarray(p, float) for p in positions]
    if thickness is None:
        n = np.cross(row, col)
        d = sorted(float(p @ n) for p in positions)
        thickness = float(np.median(np.diff(d))) if len(d) > 1 else 2.5
    files = []
    for k, p in enumerate(positions):
        ds = _ds(CT_IMAGE, series, study, first_instance + k)
        ds.ImageType = image_type.split("\\")
        if patient_id is not None:   # '' leaves the tag empty (an anonymised series)
            ds.PatientID, ds.PatientName = patient_id, f"{patient_id}^PATIENT" if patient_id else ""
        if patient_name is not None:
            ds.PatientName = patient_name
        if study_date is not None:
            ds.StudyDate = study_date
        ds.SeriesDescription = description
        ds.ImagePositionPatient = [f"{v:.4f}" for v in p]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in list(row) + list(col)]
        ds.PixelSpacing = [spacing[1], spacing[0]]  # row spacing (between rows), column spacing
        ds.SliceThickness = thickness
        ds.Rows, ds.Columns = rows, cols
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        if gantry_tilt is not None:
            ds.GantryDetectorTilt = gantry_tilt
        if acquisition is not None:
            ds.AcquisitionNumber = acquisition[k] if isinstance(acquisition, (list, tuple)) else acquisition
        if times is not None:
            ds.AcquisitionTime = times[k]
        if patient_position is not None:
            ds.PatientPosition = patient_position
        hu = patient.slice_hu(p, row, col, rows, cols, spacing, thickness)
        px = _stored(hu, slope, intercept, signed)
        if padding is not None:
            value, fn = padding
            j, i = np.mgrid[0:rows, 0:cols]
            px[fn(j, i)] = value
            ds.PixelPaddingValue = int(value)
        ds.PixelRepresentation = 1 if signed else 0
        ds.PixelData = px.tobytes()
        f = folder / (names[k] if names else f"IM{first_instance + k:04d}.dcm")
        ds.save_as(f, enforce_file_format=True)
        files.append(f)
    return files


def write_enhanced(path, patient: Patient, positions, row=(1, 0, 0), col=(0, 1, 0), rows=40, cols=44,
                   spacing=(2.5, 2.5), slope=1.0, intercept=-1024.0) -> Path:
    """One Enhanced CT multi-frame file; geometry in the functional groups."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    row, col = np.asarray(row, float), np.asarray(col, float)
    n = np.cross(row, col)
    d = sorted(float(np.asarray(p) @ n) for p in positions)
    thick = float(np.median(np.diff(d)))
    ds = _ds(ENHANCED_CT, generate_uid(), generate_uid(), 1)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.NumberOfFrames = len(positions)
    ds.Rows, ds.Columns = rows, cols
    ds.PixelRepresentation = 0
    shared = Dataset()
    ori, meas, val = Dataset(), Dataset(), Dataset()
    ori.ImageOrientationPatient = [f"{v:.6f}" for v in list(row) + list(col)]
    meas.PixelSpacing = [spacing[1], spacing[0]]
    meas.SliceThickness = thick
    val.RescaleSlope, val.RescaleIntercept, val.RescaleType = slope, intercept, "HU"
    shared.PlaneOrientationSequence = Sequence([ori])
    shared.PixelMeasuresSequence = Sequence([meas])
    shared.PixelValueTransformationSequence = Sequence([val])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames, per = [], []
    for p in positions:
        pos = Dataset()
        pos.ImagePositionPatient = [f"{v:.4f}" for v in p]
        fg = Dataset()
        fg.PlanePositionSequence = Sequence([pos])
        per.append(fg)
        frames.append(_stored(patient.slice_hu(np.asarray(p, float), row, col, rows, cols, spacing, thick),
                              slope, intercept, False))
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    ds.PixelData = np.stack(frames).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def axial_positions(n=24, step=2.5, origin=(-68.75, -58.75, 0.0), tilt_deg=0.0):
    """Slice origins of an axial stack; with a tilt the slice planes turn about the L-R axis and
    the origins advance along the table (z) only, as a tilted gantry writes them. Returns
    (positions, row, col)."""
    t = np.radians(tilt_deg)
    row, col = np.array([1.0, 0, 0]), np.array([0.0, np.cos(t), np.sin(t)])
    o = np.asarray(origin, float)
    return [o + np.array([0, 0, k * step]) for k in range(n)], row, col


def marker_stats(vol, threshold=THRESHOLD, near=None):
    """(centroid RAS mm, volume mL) of the voxels above ``threshold`` (within ``near`` =
    (centre RAS, radius mm) when given)."""
    kji = np.argwhere(vol.array > threshold)
    pts = vol.kji_to_world(kji)
    if near is not None:
        pts = pts[np.linalg.norm(pts - np.asarray(near[0]), axis=1) < near[1]]
    return pts.mean(axis=0), float(len(pts) * vol.voxel_volume_ml)


def marker_partial_volume(vol, centre_ras, radius_mm):
    """(centroid RAS mm, volume mL) weighting each voxel within ``radius_mm`` of ``centre_ras``
    by its marker fraction (HU - body) / (marker - body), clipped to 0..1: partial-volume
    volumetry, free of the voxel-counting (digitisation) error of a threshold."""
    kji = np.argwhere(np.ones(vol.shape, bool))
    pts = vol.kji_to_world(kji)
    near = np.linalg.norm(pts - np.asarray(centre_ras), axis=1) < radius_mm
    w = np.clip((vol.array.reshape(-1)[near].astype(float) - BODY_HU) / (MARKER_HU - BODY_HU), 0, 1)
    return (pts[near] * w[:, None]).sum(0) / w.sum(), float(w.sum() * vol.voxel_volume_ml)
