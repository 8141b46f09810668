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
   axial CT is read (with a warning naming the others). A series holding several acquisitions
   at the same or interleaved positions (``dicom_headers._split_acquisitions``: AcquisitionNumber
   groups, else time sweeps) is refused naming each; ``series=UID#N`` reads one.
   When the headers cannot tell them apart (same or no AcquisitionNumber, no times), a CT whose
   odd and even slices differ in HU throughout is refused from the image (``dicom_interleave``;
   warned when the evidence is weaker).
3. Slices are sorted along the slice normal. Gantry tilt (slice origins shifted in-plane from
   slice to slice, i.e. a sheared stack) and non-uniform spacing or missing slices (a step over
   1.5 times both its neighbours and the series' median step) are detected
   and the stack is resampled (linear) onto a regular grid with the slices' row/column axes and
   the slice normal as axes, with a warning stating the tilt in degrees and the gaps in mm.
   A gap wider than ``MAX_GAP_MM`` is refused: interpolating across it would invent anatomy.
4. PixelPaddingValue (and PixelPaddingRangeLimit) voxels, outside the reconstruction circle,
   become air (-1000 HU).
5. Enhanced (multi-frame) CT: frame positions/orientation/spacing/rescale from the functional
   groups (pydicom); pixels from pydicom with each frame's rescale, or from SimpleITK when
   pydicom has no decoder (one shared rescale only); then steps 3-4 as for a classic series.

Modules: ``dicom_headers`` (headers, stacks, series choice), ``dicom_geometry`` (tilt, gaps,
regular grid), this one (pixels, padding, ``read_series``); limits in ``imagio.limits``.

Geometry is computed in LPS (DICOM's patient frame); the Volume is RAS (``imagio.io``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .dicom_geometry import analyse, regular_affine_lps, regularize
from .dicom_headers import Slice, Stack, _pydicom, choose_stack, read_header, scan_folder
from .dicom_interleave import interleave_finding
from .errors import InputError
from .file_names import for_library
from .limits import AIR_HU, MAX_GAP_MM, TILT_MIN_DEG

__all__ = ["read_series", "read_header", "scan_folder", "add_series_argument"]


def _read_pixels(stack: Stack) -> np.ndarray:
    """Rescaled pixel values [k, j, i] (float32) in the stack's slice order."""
    import SimpleITK as sitk

    from .io import quiet_itk

    planes = []
    cache: dict = {}
    for s in stack.slices:
        if s.frame is None:
            try:
                with quiet_itk():
                    img = sitk.ReadImage(for_library(s.path), sitk.sitkFloat32)
            except RuntimeError as e:
                why = str(e).strip().splitlines()[-1] if str(e).strip() else "unknown"
                raise InputError(f"{s.path}: SimpleITK cannot read the pixels of this slice ({why[:160]}); the series "
                                 "is incomplete or uses an unsupported encoding: export it again") from None
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

    return sitk.GetArrayFromImage(sitk.ReadImage(for_library(path), sitk.sitkFloat32)).reshape(-1, s0.rows, s0.cols)


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


ISOLATED_MAX = 2  # slices beyond a too-wide gap that are dropped (a stray image) rather than refused


def _drop_isolated_slices(stack: Stack, g, folder):
    """Split the sorted stack at gaps wider than ``MAX_GAP_MM``; when every part but the largest
    holds at most ``ISOLATED_MAX`` slices (a stray image far from the scan, e.g. a reference
    slice), keep the largest with a message. Otherwise (or when nothing is too wide) unchanged."""
    cuts = [k + 1 for k, gap in g.gaps if gap > MAX_GAP_MM + 0.01]  # 0.01 mm: positions' rounding
    if not cuts:
        return stack, g, []
    bounds = [0] + cuts + [len(stack.slices)]
    parts = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
    main = max(parts, key=lambda p: p[1] - p[0])
    others = [p for p in parts if p != main]
    if main[1] - main[0] < 2 or any(b - a > ISOLATED_MAX for a, b in others):
        return stack, g, []
    dist = [min(abs(g.depth[a] - g.depth[main[1] - 1]), abs(g.depth[b - 1] - g.depth[main[0]])) for a, b in others]
    kept = Stack(stack.series, stack.slices[main[0]:main[1]], stack.acquisition)
    g2 = analyse(kept, folder)
    kept = Stack(kept.series, [kept.slices[i] for i in g2.order], kept.acquisition)
    n = sum(b - a for a, b in others)
    return kept, g2, [f"series {stack.series}: {n} isolated slice(s) {min(dist):.0f} mm or more away from the other "
                      f"{len(kept.slices)} dropped (a stray or reference image, not part of the volume)"]


def read_series(folder, series: str | None = None) -> tuple[np.ndarray, np.ndarray, dict, list[str]]:
    """Read one series of a DICOM folder.

    Returns (array [k, j, i] in HU for CT, IJK->LPS 4x4, report dict, warnings). The report
    says what was read and done (series, slices, dropped images, tilt, gaps, resampling,
    padding); the warnings are the sentences a user must see. Raises InputError when the folder
    holds no usable series, the series has one image, slices share positions, the series holds
    several acquisitions and ``series`` names none of them (``UID#N``), a CT's odd and even slices
    differ in HU throughout (two interleaved acquisitions, ``dicom_interleave``), or a gap is wider
    than ``MAX_GAP_MM``.
    """
    folder = Path(folder)
    scan = scan_folder(folder)
    stack, warnings = choose_stack(scan, folder, series)
    g = analyse(stack, folder)
    stack = Stack(stack.series, [stack.slices[i] for i in g.order], stack.acquisition)
    stack, g, isolated = _drop_isolated_slices(stack, g, folder)
    s0 = stack.first
    report = {"source": str(folder), "series": stack.key, "description": s0.description,
              "modality": s0.modality, "image_type": s0.image_type, "images": len(stack.slices),
              "multi_frame": s0.frame is not None,
              "matrix": [s0.cols, s0.rows], "pixel_spacing_mm": [round(v, 4) for v in s0.spacing],
              "slice_step_mm": round(g.step, 4), "series_in_folder": [s.label() for s in scan.stacks]}
    warnings = list(warnings) + list(scan.dropped) + isolated
    if scan.ignored:
        report["files_ignored"] = dict(scan.ignored)
        odd = {r: n for r, n in scan.ignored.items() if r.startswith(("no image geometry", "invalid"))}
        if odd:
            warnings.append("ignored: " + "; ".join(f"{n} file(s) with {r}" for r, n in odd.items()))
    report["dropped"] = list(scan.dropped) + isolated
    big = [(k, gap) for k, gap in g.gaps if gap > MAX_GAP_MM + 0.01]  # 0.01 mm: positions' rounding
    if big:
        k, gap = max(big, key=lambda t: t[1])
        # trial 13 (M3): a slice of another pixel size or orientation is set aside before the
        # stack is built, and the gap it leaves was blamed on a missing slice
        aside = [d for d in scan.dropped if d.startswith(f"series {stack.series}:")]
        why = (f"; the series also holds images set aside for another geometry ({'; '.join(d.split(': ', 1)[1] for d in aside)}): "
               "if the gap is one of them, the series mixes geometries; re-export it with one pixel size and "
               "orientation") if aside else "; re-export or re-send the complete series"
        raise InputError(
            f"{folder}: series {stack.series} misses slices: a gap of {gap:.1f} mm (slices at {g.depth[k]:.1f} and "
            f"{g.depth[k + 1]:.1f} mm along the slice normal, nominal step {g.step:.2f} mm) is wider than the "
            f"{MAX_GAP_MM:g} mm IMAGIO interpolates across{why}")
    arr = _read_pixels(stack)
    pad = _padding_mask(stack, arr)
    if pad is not None and pad.any():
        arr[pad] = AIR_HU
        report["padding_voxels"] = int(pad.sum())
        warnings.append(f"{pad.mean() * 100:.1f}% of voxels hold the DICOM PixelPaddingValue (outside the scan "
                        f"circle): set to air ({AIR_HU:g} HU)")
    if s0.modality.upper() == "CT":  # HU: the slices' body medians are comparable (trial 92 M1)
        line, refuse = interleave_finding(arr, g.depth)
        if line and stack.key:
            line = f"series {stack.key}: {line}"
        if refuse:
            raise InputError(f"{folder}: {line}")
        if line:
            warnings.append(line)  # io.read_dicom prefixes the folder's name
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
            # where: the acquired slices on either side of each gap, as depths along the slice normal
            # (LPS): every voxel between them holds interpolated values (`interpolated_slabs.crossing_note`)
            report["gap_slabs_lps"] = [{"normal": [round(float(v), 6) for v in s0.normal],
                                        "depth_mm": [round(float(g.depth[k]), 3), round(float(g.depth[k + 1]), 3)]}
                                       for k, _ in g.gaps]
        if g.nonuniform:
            steps = np.diff(g.depth)
            what.append(f"non-uniform slice spacing ({steps.min():.2f}..{steps.max():.2f} mm) made regular")
        # how far the regular slices lie from the acquired ones along the normal (mm): their
        # values between two slices are a linear blend of both (`segmentation.airways.interpolated_grid_note`)
        depth = g.depth[0] + np.arange(arr.shape[0]) * g.step
        off = float(np.abs(depth[:, None] - np.asarray(g.depth)[None, :]).min(axis=1).max())
        report["resampled"] = {"step_mm": round(g.step, 4), "size_ijk": list(arr.shape[::-1]),
                               "outside_acquired_fraction": round(outside, 4), "offset_mm": round(off, 3)}
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
    tags = dict(s0.tags)
    thick = _slice_thickness(tags.pop("SliceThickness", ""), g.step)
    if thick:   # overlapping reconstruction: the slices are thicker than their step (trial 28 H1)
        report["slice_thickness_mm"] = thick
        if thick > 2 * g.step + 0.01:   # more than the usual half overlap: a slab (trial 99 F2: 10.5 mm MIP at 0.75)
            warnings.append(f"series {stack.key}: sections {thick:g} mm thick every {g.step:.2f} mm ({thick / g.step:.0f}x "
                            f"their step{', ' + repr(s0.description) if s0.description else ''}): each voxel holds "
                            f"{thick:g} mm along the slice normal (a thick slab, an average or a MIP: small structures "
                            "blur or merge, distances along it are not resolved); plan on thin sections when the "
                            "archive has them (--series)")
    report["meta"] = tags
    return arr, aff, report, warnings


def _slice_thickness(text: str, step_mm: float) -> float | None:
    """The header's SliceThickness (mm) when it is a positive number larger than the slice step
    (an overlapping reconstruction: 5 mm slices every 2.5 mm resolve 5 mm along the slice
    normal, not 2.5), else None."""
    try:
        t = float(text)
    except ValueError:
        return None
    return round(t, 4) if np.isfinite(t) and t > step_mm + 0.01 else None


def add_series_argument(parser) -> None:
    """The ``--series UID`` option of commands that read a CT (see ``read_series``)."""
    parser.add_argument("--series", metavar="UID", help="SeriesInstanceUID to read when the CT is a DICOM folder "
                        "holding several series (default: the original axial CT with the most slice positions; `imagio info FOLDER` lists them); "
                        "UID#N for acquisition N of a series holding several phases")
