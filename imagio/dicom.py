"""DICOM folders -> one CT ``Volume`` whose voxels are where the scanner put them.

pydicom reads the headers, SimpleITK (GDCM) the pixels (any transfer syntax GDCM decodes, with
each file's rescale slope/intercept applied); the geometry is computed here from each slice's
ImagePositionPatient/ImageOrientationPatient, the way 3D Slicer's DICOM scalar-volume plugin does
with "acquisition geometry regularization" on:

1. Files are grouped by SeriesInstanceUID, then by orientation and matrix size. Localizers /
   scouts (ImageType LOCALIZER, or a minority group with another orientation or size inside the
   series) are dropped and said so. Files without image geometry (DICOMDIR, SR, RT, PR) are
   ignored and counted.
2. Several series in the folder: they are listed; ``series=UID`` picks one, else the largest
   axial CT is read (with a warning naming the others).
3. Slices are sorted along the slice normal. Gantry tilt (slice origins shifted in-plane from
   slice to slice, i.e. a sheared stack) and non-uniform spacing or missing slices are detected
   and the stack is resampled (linear) onto a regular grid with the slices' row/column axes and
   the slice normal as axes, with a warning stating the tilt in degrees and the gaps in mm.
   A gap wider than ``MAX_GAP_MM`` is refused: interpolating across it would invent anatomy.
4. PixelPaddingValue (and PixelPaddingRangeLimit) voxels, outside the reconstruction circle,
   become air (-1000 HU).
5. Enhanced (multi-frame) CT: frame positions/orientation/spacing/rescale from the functional
   groups (pydicom), pixels from SimpleITK, then steps 3-4 as for a classic series.

Geometry is computed in LPS (DICOM's patient frame); the Volume is RAS (``imagio.io``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import InputError

AIR_HU = -1000.0  # air, by definition of the Hounsfield scale


def _limits() -> dict:
    return json.loads(resources.files("imagio.data").joinpath("input_limits.json").read_text())


LIMITS = _limits()
MAX_GAP_MM = float(LIMITS["max_slice_gap_mm"]["value"])  # widest gap between slices interpolated
TILT_MIN_DEG = float(LIMITS["tilt_detect_deg"]["value"])  # below: rounding of positions, not a tilt
SPACING_TOL = float(LIMITS["slice_spacing_tolerance"]["value"])  # relative: uniform within this


@dataclass
class Slice:
    """Header of one DICOM file (or one frame of a multi-frame file), positions in LPS mm."""

    path: Path
    series: str
    position: np.ndarray  # ImagePositionPatient (LPS mm) of the first pixel
    row: np.ndarray  # unit LPS direction of increasing column index (along a row)
    col: np.ndarray  # unit LPS direction of increasing row index (down a column)
    rows: int
    cols: int
    spacing: tuple[float, float]  # (along row i, along column j) mm
    image_type: str = ""
    modality: str = ""
    description: str = ""
    acquisition: str = ""
    frame: int | None = None  # frame index in a multi-frame file
    slope: float = 1.0
    intercept: float = 0.0
    padding: tuple[float, float] | None = None  # stored padding value range (inclusive)
    tags: dict = field(default_factory=dict)
    gantry_tilt: float = 0.0  # GantryDetectorTilt (0018,1120) as written, degrees
    sop_uid: str = ""  # SOPInstanceUID: one image, however many copies of its file

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row, self.col)

    def same_geometry(self, other: "Slice") -> bool:
        """Same orientation (direction cosines within 1e-3), matrix and pixel size (1e-3 mm)."""
        return (self.rows, self.cols) == (other.rows, other.cols) and \
            np.allclose(np.r_[self.row, self.col], np.r_[other.row, other.col], atol=1e-3) and \
            np.allclose(self.spacing, other.spacing, atol=1e-3)


META_TAGS = ("PatientName", "PatientID", "StudyDate", "StudyInstanceUID", "SeriesInstanceUID",
             "SeriesDescription", "Modality", "AccessionNumber")


def _pydicom():
    import pydicom  # imported lazily: keeps `import imagio` light

    return pydicom


def _floats(v, n=None):
    a = np.array([float(x) for x in v], float)
    if n is not None and a.size != n:
        raise ValueError
    return a


def _padding(ds) -> tuple[float, float] | None:
    if "PixelPaddingValue" not in ds:
        return None
    p = float(ds.PixelPaddingValue)
    lim = float(ds.PixelPaddingRangeLimit) if "PixelPaddingRangeLimit" in ds else p
    return (min(p, lim), max(p, lim))


def _frame_slices(ds, path: Path, base: dict) -> list[Slice]:
    """Slices of an enhanced multi-frame image from its functional groups."""
    n = int(ds.NumberOfFrames)
    shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else None
    per = ds.PerFrameFunctionalGroupsSequence if "PerFrameFunctionalGroupsSequence" in ds else None
    if per is None or len(per) != n:
        raise InputError(f"{path}: multi-frame image without per-frame positions; export it as a classic series")

    def item(k, seq):
        for grp in (per[k], shared):
            if grp is not None and seq in grp:
                return grp[seq][0]
        return None

    out = []
    for k in range(n):
        pos, ori, meas, val = (item(k, "PlanePositionSequence"), item(k, "PlaneOrientationSequence"),
                               item(k, "PixelMeasuresSequence"), item(k, "PixelValueTransformationSequence"))
        if pos is None or ori is None or meas is None:
            raise InputError(f"{path}: frame {k + 1} has no position/orientation/pixel spacing; "
                             "export it as a classic series")
        iop = _floats(ori.ImageOrientationPatient, 6)
        ps = _floats(meas.PixelSpacing, 2)
        out.append(Slice(path, base["series"], _floats(pos.ImagePositionPatient, 3), iop[:3] / np.linalg.norm(iop[:3]),
                         iop[3:] / np.linalg.norm(iop[3:]), int(ds.Rows), int(ds.Columns), (ps[1], ps[0]),
                         base["image_type"], base["modality"], base["description"], base["acquisition"], k,
                         float(getattr(val, "RescaleSlope", 1) or 1) if val is not None else 1.0,
                         float(getattr(val, "RescaleIntercept", 0) or 0) if val is not None else 0.0,
                         _padding(ds), base["tags"]))
    return out


_NOT_DICOM = (".nii", ".gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".raw", ".json", ".txt", ".csv", ".xml", ".html",
              ".pdf", ".png", ".jpg", ".jpeg", ".zip", ".py", ".md", ".mrml", ".vtk", ".stl")


def read_header(path: Path) -> list[Slice] | str:
    """The slice(s) of one file, or a reason why it holds no usable image."""
    pydicom = _pydicom()
    try:
        with open(path, "rb") as f:
            preamble = f.read(132)[128:132] == b"DICM"
    except OSError as e:
        return f"unreadable ({e.strerror})"
    if not preamble and path.suffix.lower() in _NOT_DICOM:
        return "not DICOM"  # no DICM preamble and another format's extension: not parsed (may be large)
    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
    except Exception as e:  # noqa: BLE001  (any unreadable file is skipped and counted)
        return f"not DICOM ({type(e).__name__})"
    if "SeriesInstanceUID" not in ds:
        return "not a DICOM image (no SeriesInstanceUID)"
    base = {"series": str(ds.SeriesInstanceUID), "image_type": "\\".join(map(str, ds.get("ImageType", []) or [])),
            "modality": str(ds.get("Modality", "")), "description": str(ds.get("SeriesDescription", "")),
            "acquisition": str(ds.get("AcquisitionNumber", "")), "sop_uid": str(ds.get("SOPInstanceUID", "")),
            "tags": {t: str(ds.get(t, "")).strip() for t in META_TAGS if t in ds}}
    if "Rows" not in ds or "Columns" not in ds:
        return "no image (Rows/Columns absent: a report, structure set or DICOMDIR)"
    try:
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            return _frame_slices(ds, path, base)
        iop = _floats(ds.ImageOrientationPatient, 6)
        ipp = _floats(ds.ImagePositionPatient, 3)
        ps = _floats(ds.PixelSpacing, 2)
    except (AttributeError, KeyError, ValueError, TypeError):
        return "no image geometry (ImagePositionPatient/ImageOrientationPatient/PixelSpacing missing)"
    row, col = iop[:3], iop[3:]
    if np.linalg.norm(row) < 1e-6 or np.linalg.norm(col) < 1e-6 or abs(np.dot(row, col)) > 1e-3 * np.linalg.norm(row) * np.linalg.norm(col):
        return "invalid ImageOrientationPatient (not two orthogonal directions)"
    try:
        tag_tilt = float(ds.get("GantryDetectorTilt", 0) or 0)
    except (TypeError, ValueError):
        tag_tilt = 0.0
    return [Slice(path, base["series"], ipp, row / np.linalg.norm(row), col / np.linalg.norm(col), int(ds.Rows),
                  int(ds.Columns), (float(ps[1]), float(ps[0])), base["image_type"], base["modality"],
                  base["description"], base["acquisition"], None,
                  float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0),
                  _padding(ds), base["tags"], tag_tilt, base["sop_uid"])]


@dataclass
class Stack:
    """The slices of one series with one geometry (orientation, matrix, pixel size)."""

    series: str
    slices: list[Slice]

    @property
    def first(self) -> Slice:
        return self.slices[0]

    @property
    def is_axial(self) -> bool:
        return abs(self.first.normal[2]) > np.cos(np.radians(45))

    def label(self) -> str:
        s = self.first
        kind = "axial" if self.is_axial else "oblique/sagittal/coronal"
        return (f"{self.series} ({s.modality or '?'}, {s.description or 'no description'}, "
                f"{len(self.slices)} {'frames' if s.frame is not None else 'slices'}, {kind}, {s.cols}x{s.rows})")


@dataclass
class FolderScan:
    stacks: list[Stack]
    dropped: list[str]  # messages about images left out (localizers, other geometry)
    ignored: dict[str, int]  # reason -> number of files


def scan_folder(folder: Path) -> FolderScan:
    """Headers of every file under ``folder`` grouped into per-series stacks."""
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and not p.name.startswith("."))
    by_series: dict[str, list[Slice]] = {}
    ignored: dict[str, int] = {}
    for f in files:
        r = read_header(f)
        if isinstance(r, str):
            ignored[r] = ignored.get(r, 0) + 1
            continue
        for s in r:
            by_series.setdefault(s.series, []).append(s)
    stacks, dropped = [], []
    for uid, slices in by_series.items():
        unique = {(s.sop_uid, s.frame): s for s in slices if s.sop_uid}
        copies = len([s for s in slices if s.sop_uid]) - len(unique)
        if copies:
            slices = list(unique.values()) + [s for s in slices if not s.sop_uid]
            dropped.append(f"series {uid}: {copies} duplicate file(s) of the same image (same SOPInstanceUID) "
                           "read once")
        loc = [s for s in slices if "LOCALIZER" in s.image_type.upper()]
        if loc:
            dropped.append(f"series {uid}: {len(loc)} localizer/scout image(s) (ImageType LOCALIZER) dropped")
            slices = [s for s in slices if "LOCALIZER" not in s.image_type.upper()]
        groups: list[list[Slice]] = []
        for s in slices:
            g = next((g for g in groups if g[0].same_geometry(s)), None)
            if g is None:
                groups.append([s])
            else:
                g.append(s)
        if not groups:
            continue
        ordered = sorted(groups, key=len, reverse=True)
        main = ordered[0]
        for g in ordered[1:]:
            g0 = g[0]
            same_ori = np.allclose(np.r_[g0.row, g0.col], np.r_[main[0].row, main[0].col], atol=1e-3)
            why = "another matrix size/pixel size" if same_ori else "another orientation"
            dropped.append(f"series {uid}: {len(g)} image(s) with {why} than its {len(main)} main slices "
                           f"({g0.cols}x{g0.rows}; localizer, scout or reformat) dropped")
        stacks.append(Stack(uid, main))
    return FolderScan(stacks, dropped, ignored)


def choose_stack(scan: FolderScan, folder: Path, series: str | None) -> tuple[Stack, list[str]]:
    """The stack to read and warnings: ``series`` (a SeriesInstanceUID) or the largest axial CT."""
    if not scan.stacks:
        why = "; ".join(f"{n} file(s): {r}" for r, n in scan.ignored.items()) or "the folder is empty"
        raise InputError(f"{folder}: no DICOM image series found ({why})")
    listing = "; ".join(s.label() for s in sorted(scan.stacks, key=lambda s: -len(s.slices)))
    if series:
        hits = [s for s in scan.stacks if s.series == series]
        if not hits:
            raise InputError(f"{folder}: no series {series}; the folder holds: {listing}")
        return hits[0], []
    if len(scan.stacks) == 1:
        return scan.stacks[0], []

    def rank(s: Stack):
        return (s.first.modality.upper() == "CT", s.is_axial, len(s.slices))

    best = max(scan.stacks, key=rank)
    others = [s.label() for s in scan.stacks if s is not best]
    return best, [f"the folder holds {len(scan.stacks)} series; read the largest axial CT {best.label()}; "
                  f"others: {'; '.join(others)}. Pass --series UID to read another"]


def _read_pixels(stack: Stack) -> np.ndarray:
    """Rescaled pixel values [k, j, i] (float32) in the stack's slice order."""
    import SimpleITK as sitk

    from .io import quiet_itk

    planes = []
    cache: dict = {}
    for s in stack.slices:
        if s.frame is None:
            with quiet_itk():
                img = sitk.ReadImage(str(s.path), sitk.sitkFloat32)
            a = sitk.GetArrayFromImage(img).reshape(s.rows, s.cols)
            planes.append(a)
        else:  # enhanced multi-frame
            if s.path not in cache:
                cache[s.path] = _multiframe_hu(s.path, [x for x in stack.slices if x.path == s.path])
            planes.append(cache[s.path][s.frame])
    return np.stack(planes)


def _multiframe_hu(path: Path, frames: list[Slice]) -> np.ndarray:
    """All frames of an enhanced multi-frame file, rescaled [frame, j, i] (float32).

    pydicom gives the stored values and each frame's own rescale is applied; when pydicom has no
    decoder for the transfer syntax, SimpleITK (GDCM) decodes it and applies the shared rescale,
    which is right only when every frame has the same one (else refused)."""
    s0 = frames[0]
    try:
        raw = _pydicom().dcmread(str(path)).pixel_array.reshape(-1, s0.rows, s0.cols).astype(np.float32)
        out = raw.copy()
        for f in frames:
            out[f.frame] = raw[f.frame] * f.slope + f.intercept
        return out
    except Exception as e:  # noqa: BLE001  (pydicom without a decoder for this transfer syntax)
        if len({(f.slope, f.intercept) for f in frames}) > 1:
            raise InputError(f"{path}: cannot decode the multi-frame pixel data with pydicom ({e}) and its frames "
                             "have different rescales; convert it to a classic series or to NIfTI") from None
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.ReadImage(str(path), sitk.sitkFloat32)).reshape(-1, s0.rows, s0.cols)


def _padding_mask(stack: Stack, arr: np.ndarray) -> np.ndarray | None:
    """Voxels holding the DICOM PixelPaddingValue (range), compared after each slice's rescale."""
    if all(s.padding is None for s in stack.slices):
        return None
    mask = np.zeros(arr.shape, bool)
    for k, s in enumerate(stack.slices):
        if s.padding is None:
            continue
        lo, hi = sorted((s.padding[0] * s.slope + s.intercept, s.padding[1] * s.slope + s.intercept))
        mask[k] = (arr[k] >= lo - 1e-3) & (arr[k] <= hi + 1e-3)
    return mask


@dataclass
class Geometry:
    """Sorted stack geometry (LPS) and what was found about it."""

    order: np.ndarray  # slice order along the normal
    depth: np.ndarray  # sorted slice positions along the normal, mm
    origins: np.ndarray  # (N, 3) sorted ImagePositionPatient, LPS mm
    step: float  # nominal slice step along the normal, mm (median of the steps that are not gaps)
    tilt_deg: float  # angle between the stacking direction and the slice normal
    gaps: list[tuple[int, float]]  # (index of the slice before the gap, gap mm)
    nonuniform: bool  # steps differ from the nominal one beyond tolerance (besides gaps)


def analyse(stack: Stack, folder) -> Geometry:
    s0 = stack.first
    n = s0.normal
    pos = np.array([s.position for s in stack.slices])
    d = pos @ n
    order = np.argsort(d, kind="stable")
    d, pos = d[order], pos[order]
    steps = np.diff(d)
    if len(stack.slices) < 2:
        raise InputError(f"{folder}: the series {stack.series} has one image; IMAGIO needs a 3D volume "
                         "(a whole CT series)")
    dup = steps < 0.01  # mm: two images at one position
    if np.any(dup):
        acq = sorted({s.acquisition for s in stack.slices})
        raise InputError(
            f"{folder}: series {stack.series} holds {int(dup.sum()) + 1} slices at the same position(s) "
            f"(several acquisitions or reconstructions in one series{', AcquisitionNumber ' + ','.join(acq) if len(acq) > 1 else ''}); "
            "export the one you want as its own series")
    # a gap (missing slices) is a step 1.5 times longer than the steps around it; comparing with
    # the neighbours, not the whole series, keeps zones reconstructed at another spacing regular
    ns = len(steps)
    local = np.array([np.median(np.r_[steps[max(0, k - 3):k], steps[k + 1:k + 4]]) if ns > 1 else steps[k]
                      for k in range(ns)])
    tol = np.maximum(SPACING_TOL * local, 0.01)
    is_gap = steps > 1.5 * local + tol
    regular = steps[~is_gap]
    step = float(np.median(regular))
    gaps = [(int(k), float(steps[k])) for k in np.flatnonzero(is_gap)]
    nonuniform = bool(np.any(np.abs(regular - step) > max(SPACING_TOL * step, 0.01)))
    # in-plane drift of the slice origins per mm along the normal: a sheared (tilted) stack
    inplane = (pos[-1] - pos[0]) - (d[-1] - d[0]) * n
    tilt = float(np.degrees(np.arctan2(np.linalg.norm(inplane), d[-1] - d[0])))
    # origins that do not lie on one line also need the per-slice resampling
    line = pos[0] + np.outer(d - d[0], (pos[-1] - pos[0]) / (d[-1] - d[0]))
    if np.abs(pos - line).max() > 0.01 * min(s0.spacing):
        tilt = max(tilt, TILT_MIN_DEG + 1e-9)  # irregular origins: resample, report as drift
    return Geometry(order, d, pos, step, tilt, gaps, nonuniform)


def regular_affine_lps(s0: Slice, g: Geometry) -> np.ndarray:
    """IJK -> LPS 4x4 of the stack when no resampling is needed."""
    m = np.eye(4)
    m[:3, 0] = s0.row * s0.spacing[0]
    m[:3, 1] = s0.col * s0.spacing[1]
    m[:3, 2] = s0.normal * ((g.depth[-1] - g.depth[0]) / (len(g.depth) - 1))
    m[:3, 3] = g.origins[0]
    return m


def regularize(arr: np.ndarray, s0: Slice, g: Geometry, fill: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Resample a sheared and/or irregular stack onto a regular grid (axes: row, column, normal).

    Every output voxel centre X is located in the acquired stack: its depth X.n gives a
    fractional slice index (linear in the sorted slice depths), the slice origin at that index
    is interpolated between its neighbours, and the in-plane offset from that origin gives the
    row/column index; values are bilinear in-plane and linear between slices. Returns (array,
    IJK->LPS, fraction of output voxels outside the acquired slices, set to ``fill``).
    """
    from scipy import ndimage

    r, c, n = s0.row, s0.col, s0.normal
    dx, dy = s0.spacing
    dz = g.step
    # corners of every slice in the (r, c) frame relative to the first origin
    rel = g.origins - g.origins[0]
    u0, v0 = rel @ r, rel @ c
    umin, umax = u0.min(), u0.max() + (s0.cols - 1) * dx
    vmin, vmax = v0.min(), v0.max() + (s0.rows - 1) * dy
    ni = int(np.floor((umax - umin) / dx + 1e-6)) + 1
    nj = int(np.floor((vmax - vmin) / dy + 1e-6)) + 1
    nk = int(np.floor((g.depth[-1] - g.depth[0]) / dz + 1e-6)) + 1
    origin = g.origins[0] + umin * r + vmin * c
    out = np.empty((nk, nj, ni), np.float32)
    ii = np.arange(ni) * dx + umin
    jj = np.arange(nj) * dy + vmin
    kidx = np.arange(len(g.depth), dtype=float)
    outside = 0
    for m in range(nk):
        depth = g.depth[0] + m * dz
        f = float(np.interp(depth, g.depth, kidx))
        k0 = min(int(np.floor(f)), len(g.depth) - 2)
        t = f - k0
        plane = np.zeros((nj, ni), np.float32)
        valid = np.ones((nj, ni), bool)
        for k, w in ((k0, 1.0 - t), (k0 + 1, t)):
            if w <= 1e-9:
                continue
            # in-plane index of (u, v) in slice k: its origin sits at (u0[k], v0[k])
            cj, ci = np.meshgrid((jj - v0[k]) / dy, (ii - u0[k]) / dx, indexing="ij")
            inside = (cj >= -0.5) & (cj <= s0.rows - 0.5) & (ci >= -0.5) & (ci <= s0.cols - 0.5)
            valid &= inside
            plane += w * ndimage.map_coordinates(arr[k], [cj, ci], order=1, mode="nearest")
        plane[~valid] = fill
        outside += int((~valid).sum())
        out[m] = plane
    aff = np.eye(4)
    aff[:3, 0], aff[:3, 1], aff[:3, 2], aff[:3, 3] = r * dx, c * dy, n * dz, origin
    return out, aff, outside / out.size


def read_series(folder, series: str | None = None) -> tuple[np.ndarray, np.ndarray, dict, list[str]]:
    """Read one series of a DICOM folder.

    Returns (array [k, j, i] in HU for CT, IJK->LPS 4x4, report dict, warnings). The report
    says what was read and done (series, slices, dropped images, tilt, gaps, resampling,
    padding); the warnings are the sentences a user must see. Raises InputError when the folder
    holds no usable series, the series has one image, slices share positions, or a gap is wider
    than ``MAX_GAP_MM``.
    """
    folder = Path(folder)
    scan = scan_folder(folder)
    stack, warnings = choose_stack(scan, folder, series)
    g = analyse(stack, folder)
    stack = Stack(stack.series, [stack.slices[i] for i in g.order])
    s0 = stack.first
    report = {"source": str(folder), "series": stack.series, "description": s0.description,
              "modality": s0.modality, "images": len(stack.slices),
              "multi_frame": s0.frame is not None,
              "matrix": [s0.cols, s0.rows], "pixel_spacing_mm": [round(v, 4) for v in s0.spacing],
              "slice_step_mm": round(g.step, 4), "series_in_folder": [s.label() for s in scan.stacks]}
    warnings = list(warnings) + list(scan.dropped)
    if scan.ignored:
        report["files_ignored"] = dict(scan.ignored)
        odd = {r: n for r, n in scan.ignored.items() if r.startswith(("no image geometry", "invalid"))}
        if odd:
            warnings.append("ignored: " + "; ".join(f"{n} file(s) with {r}" for r, n in odd.items()))
    report["dropped"] = list(scan.dropped)
    big = [(k, gap) for k, gap in g.gaps if gap > MAX_GAP_MM + 0.01]  # 0.01 mm: positions' rounding
    if big:
        k, gap = max(big, key=lambda t: t[1])
        raise InputError(
            f"{folder}: series {stack.series} misses slices: a gap of {gap:.1f} mm (slices at {g.depth[k]:.1f} and "
            f"{g.depth[k + 1]:.1f} mm along the slice normal, nominal step {g.step:.2f} mm) is wider than the "
            f"{MAX_GAP_MM:g} mm IMAGIO interpolates across; re-export or re-send the complete series")
    arr = _read_pixels(stack)
    pad = _padding_mask(stack, arr)
    if pad is not None and pad.any():
        arr[pad] = AIR_HU
        report["padding_voxels"] = int(pad.sum())
        warnings.append(f"{pad.mean() * 100:.1f}% of voxels hold the DICOM PixelPaddingValue (outside the scan "
                        f"circle): set to air ({AIR_HU:g} HU)")
    integral = bool(np.all(np.mod(arr, 1) == 0))
    needs = g.tilt_deg > TILT_MIN_DEG or g.gaps or g.nonuniform
    if needs:
        fill = AIR_HU if s0.modality.upper() == "CT" else float(arr.min())
        arr, aff, outside = regularize(arr, s0, g, fill)
        what = []
        if g.tilt_deg > TILT_MIN_DEG:
            what.append(f"gantry tilt / sheared stack of {g.tilt_deg:.1f} deg corrected")
            report["tilt_deg"] = round(g.tilt_deg, 2)
        if g.gaps:
            what.append(f"{len(g.gaps)} gap(s) of missing slices interpolated (widest {max(x for _, x in g.gaps):.1f} mm, "
                        f"nominal step {g.step:.2f} mm)")
            report["gaps_mm"] = [round(x, 2) for _, x in g.gaps]
        if g.nonuniform:
            steps = np.diff(g.depth)
            what.append(f"non-uniform slice spacing ({steps.min():.2f}..{steps.max():.2f} mm) made regular")
        report["resampled"] = {"step_mm": round(g.step, 4), "size_ijk": list(arr.shape[::-1]),
                               "outside_acquired_fraction": round(outside, 4)}
        warnings.append("; ".join(what) + f": resampled onto a regular {g.step:.2f} mm grid (linear); "
                        f"{outside * 100:.1f}% of the voxels lie outside the acquired slices and hold {fill:g}")
    else:
        aff = regular_affine_lps(s0, g)
        if abs(s0.gantry_tilt) > 0.5 and s0.normal[2] ** 2 > 1 - 1e-6:
            warnings.append(f"the header states a gantry tilt of {s0.gantry_tilt:g} deg but the slice positions and "
                            "orientation show none: the scanner may have written untilted geometry; check positions "
                            "against a landmark before planning")
    report["warnings"] = warnings
    if integral and arr.min() >= -32768 and arr.max() <= 32767:
        arr = np.rint(arr).astype(np.int16)  # whole HU as stored; interpolated values rounded
    report["meta"] = dict(s0.tags)
    return arr, aff, report, warnings


def add_series_argument(parser) -> None:
    """The ``--series UID`` option of commands that read a CT (see ``read_series``)."""
    parser.add_argument("--series", metavar="UID", help="SeriesInstanceUID to read when the CT is a DICOM folder "
                        "holding several series (default: the largest axial CT; `imagio info FOLDER` lists them)")
