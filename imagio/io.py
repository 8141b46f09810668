"""Reading and writing images: NIfTI, NRRD, MetaImage, DICOM series, Slicer ``.seg.nrrd``.

Files store geometry in LPS (ITK convention); ``Volume`` is RAS. The flip happens here and
nowhere else: RAS = diag(-1, -1, 1) @ LPS (``LPS_TO_RAS``; ``imagio.dicom`` computes DICOM
geometry in LPS and ``imagio.coords`` converts ``--lps`` points with this same matrix).

Every reader either returns a Volume whose voxels are where the scanner put them, with its
warnings in ``Volume.warnings`` (also issued as ``InputWarning``), or raises ``InputError``
with one line saying why and what to do. Writers go through ``imagio.outputs.atomic_path``.

Label maps carry their structure names either in a ``.seg.nrrd`` header (Slicer opens it as
a segmentation with named, coloured segments) or in a JSON sidecar ``<file>.labels.json``
(``{"labels": {"1": {"name": "liver", "color": [r, g, b]}}}``; a plain ``{"1": "liver"}``
dict, as TotalSegmentator ships, is read too).
"""

from __future__ import annotations

import contextlib
import json
import warnings
import zlib
from pathlib import Path

import numpy as np

from . import anatomy, outline_doubts
from .errors import InputError, InputWarning
from .file_names import for_library
from .limits import AIR_HU, LIMITS
from .outputs import atomic_path, write_text
from .volume import Volume

__all__ = ["InputWarning", "read_image", "read_ct", "read_labels", "write_image", "write_labels", "read_dicom_series"]

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


def say_warnings(texts, unless=None) -> None:
    """Print each of ``texts`` on stderr as ``imagio: warning: TEXT``, the one form the CLI
    gives a warning (`cli._run` prints the ``InputWarning``s so, each command its own doubts),
    except those for which ``unless(text)`` is true (said elsewhere)."""
    import sys

    for w in texts:
        if unless is None or not unless(w):
            print(f"imagio: warning: {w}", file=sys.stderr)


def warn(vol: Volume, message: str) -> None:
    """Record a warning about an input on the Volume and issue it as an ``InputWarning``."""
    vol.warnings.append(message)
    warnings.warn(message, InputWarning, stacklevel=2)


def _is_dicom_file(path: Path) -> bool:
    if _suffix(path) in IMAGE_SUFFIXES + (".seg.nrrd",):
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM" or path.suffix.lower() in (".dcm", ".ima")


def read_image(path, series: str | None = None, pad_to_air: bool = True) -> Volume:
    """Read a 3D image file or a DICOM series folder as a Volume in RAS.

    path: NIfTI/NRRD/MetaImage file, a DICOM folder, or one DICOM file (its series is read).
    series: SeriesInstanceUID to read from a folder holding several (default: the largest
    axial CT, with a warning listing the others); see ``imagio.dicom`` for what is corrected
    (localizers, gantry tilt, missing slices, padding) and refused.
    pad_to_air: values below ``padding_below_hu`` (-1500 HU, padding outside the scan circle:
    -2048, -3024, -32768, ...) become air (-1000 HU), with a warning; off for label maps.
    Warnings are kept in ``Volume.warnings`` and issued as ``InputWarning``; what the DICOM
    reader did is in ``Volume.meta["read"]``.
    Raises InputError: missing path, not an image, a NIfTI file shorter than its header says
    (truncated copy; ITK would zero-fill it), not 3D, not scalar, unusable DICOM series.
    """
    path = Path(path)
    _check_exists(path)
    if path.is_dir() or _is_dicom_file(path):
        if path.is_file():
            from .dicom import read_header

            hdr = read_header(path)
            if isinstance(hdr, str):
                raise InputError(f"{path}: {hdr}")
            series = series or hdr[0].series
            path = path.parent
        vol = read_dicom_series(path, series)
    else:
        if series:
            raise InputError(f"--series applies to a DICOM folder, but {path} is a file")
        vol = _read_file(path)
    if min(vol.shape) < 2:
        raise InputError(f"{path.name}: the image is a single slice ({' x '.join(map(str, vol.shape[::-1]))} voxels): "
                         "IMAGIO needs a 3D volume (the whole CT series)")
    if pad_to_air:
        _padding_to_air(vol)
        _tissue_valued_fill_to_air(vol)
        from .ct_check import grid_problem

        why = grid_problem(vol)   # every command, not only those that need HU (trial 11)
        if why:
            raise InputError(f"{path.name}: {why}")
    return vol


def read_ct(path, series: str | None = None, task: str = "planning") -> Volume:
    """`read_image`, then refuse (InputError, one line) what is not a CT in Hounsfield units
    (`ct_check.check_hu`: an MR, a label map or mask, HU stored with an offset, a crop inside the
    body). The one reading of the CT for every command that plans on it or segments it (plan and
    its procedures, bronch, detect, eligibility, IMAGIO Web), so that each refuses a non-CT with
    the same reason `info` shows and `segment` gives, before any later rule blames the outline or
    the skin (new-user trial 95 F4: an MR given to plan was refused for "bone density" or "no outer
    skin"; IMAGIO Web loaded a label map as the CT). ``task`` names what needs the CT.
    Raises InputError as `read_image` does, and for a non-CT."""
    from .ct_check import check_hu

    vol = read_image(path, series)
    check_hu(vol, task)
    return vol


@contextlib.contextmanager
def quiet_itk():
    """Silence ITK's own warnings on stderr (IMAGIO reports what matters as InputWarning)."""
    sitk = _sitk()
    was = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(was)


def _read_file(path: Path) -> Volume:
    sitk = _sitk()
    if _suffix(path) in (".nii", ".nii.gz"):   # ITK zero-fills a short NIfTI file without a word
        from .nifti_integrity import nifti_shortfall

        short = nifti_shortfall(path)
        if short:
            raise InputError(f"{path}: the image is incomplete: {short}; copy or convert it again")
    try:
        with quiet_itk():
            img = sitk.ReadImage(for_library(path))
    except RuntimeError as e:
        if "orthonormal" in str(e):
            raise InputError(
                f"{path}: the file's voxel axes are not orthogonal (a sheared sform/qform, e.g. a gantry-tilted series "
                "converted without tilt correction); ITK and 3D Slicer cannot place it: convert the DICOM series "
                "again with tilt correction, or give IMAGIO the DICOM folder (it corrects the tilt)") from None
        raise InputError(
            f"{path}: not a readable image (supported: NIfTI, NRRD, MetaImage, DICOM series folder)"
        ) from None
    vol = volume_from_sitk(img, path.name)
    if _suffix(path) in (".nii", ".nii.gz") and vol.array.dtype.kind == "f":
        _restore_nonfinite(vol, path)
    vol.meta.update(_dicom_meta(img))
    if _suffix(path) == ".seg.nrrd":
        vol.labels = _seg_nrrd_labels(img)
        doubts = _seg_nrrd_doubts(img)
        if doubts:   # by label value; named (and taken off meta) in `read_labels`
            vol.meta["outline_doubts"] = doubts
    if _suffix(path) in (".nii", ".nii.gz"):
        msg = _qform_sform_disagreement(img, vol, path)
        if msg:
            warn(vol, f"{path.name}: {msg}")
    if not _has_patient_frame(img, path):
        warn(vol, f"{path.name}: the file does not say how its voxels lie in the patient (no NIfTI qform/sform, no "
                  "NRRD space): read as axis-aligned from its voxel size; positions and left/right may be wrong, "
                  "convert it again from the DICOM series")
    return vol


def _restore_nonfinite(vol: Volume, path: Path) -> None:
    """Put back the NaN/infinite voxels that ITK's NIfTI reader turned into 0 (water in a CT),
    so that they are treated as every other reader's are (``_padding_to_air``: air, warned; a
    label map: refused). ``Volume.array`` is in SimpleITK's [k, j, i] order, the file's storage
    order read backwards, so the file's flat mask lines up with the flat array."""
    from .nifti_integrity import nifti_nonfinite

    try:
        bad = nifti_nonfinite(path)
    except (OSError, EOFError, zlib.error):
        return
    if bad is not None and bad.size == vol.array.size:
        vol.array = np.ascontiguousarray(vol.array)
        vol.array.reshape(-1)[bad] = np.nan


def _has_patient_frame(img, path: Path) -> bool:
    """Whether the file states its patient coordinate frame (NIfTI q/sform code, NRRD space)."""
    suffix = _suffix(path)
    if suffix in (".nii", ".nii.gz"):
        return any(img.HasMetaDataKey(k) and int(float(img.GetMetaData(k))) > 0 for k in ("qform_code", "sform_code"))
    if suffix in (".nrrd", ".nhdr", ".seg.nrrd"):
        return img.HasMetaDataKey("NRRD_space") or img.HasMetaDataKey("NRRD_space origin")
    return True  # MetaImage and others always carry a (LPS) frame


def _padding_to_air(vol: Volume) -> None:
    """Padding outside the scan (values below ``padding_below_hu``, and NaN/inf that some tools
    write outside the field of view) becomes air, with a warning.

    Raises InputError when those values are not padding: spread over many values (a CT on a
    wrong scale, ``padding_max_spread_fraction``) or walled in by tissue (see
    ``_refuse_enclosed_invalid``)."""
    limit = float(LIMITS["padding_below_hu"]["value"])
    a = vol.array
    if a.dtype.kind not in "if" or a.size == 0:
        return
    finite = np.isfinite(a) if a.dtype.kind == "f" else None
    if finite is not None and not finite.any():
        raise InputError(f"{vol.name or 'image'}: no voxel holds a number (all NaN or infinite): not an image; "
                         "convert the series again")
    low = float(np.min(a, where=finite, initial=np.inf) if finite is not None else a.min()) < limit
    if low:
        pad = a < limit
        values, counts = np.unique(a[pad], return_counts=True)
        ring = _interpolation_undershoot(a, pad, vol.spacing_kji)
        if ring.any():   # a resampler's ringing beside very dense voxels: air, said
            depth = float(a[ring].min())
            a[ring] = AIR_HU
            pad &= ~ring
            warn(vol, f"{vol.name or 'image'}: {int(ring.sum())} voxel(s) below {limit:g} HU (down to {depth:g}) lie "
                      "beside very dense voxels (contrast, metal, cortical bone): the undershoot of an interpolating "
                      f"resampler (B-spline, sinc), not tissue; set to air ({AIR_HU:g} HU)")
            if not pad.any():
                return
            values, counts = np.unique(a[pad], return_counts=True)
        spread = 1.0 - np.sort(counts)[::-1][:4].sum() / counts.sum()
        if spread > float(LIMITS["padding_max_spread_fraction"]["value"]):
            raise InputError(
                f"{vol.name or 'image'}: {int(pad.sum()):,} voxels ({pad.mean() * 100:.2g}%) are below {limit:g} HU and "
                f"take {values.size:,} different values down to {values[0]:g}: padding is one constant, so these are "
                "tissue on a wrong scale (a lost or wrong rescale slope) or values that wrapped around (metal beyond the "
                "storage type); convert it again applying the DICOM RescaleSlope/RescaleIntercept, as float or with "
                "the extended HU scale")
    bad = ~finite if finite is not None else None
    invalid = pad if low else np.zeros(a.shape, bool)
    _refuse_enclosed_invalid(vol, invalid | bad if bad is not None else invalid)
    if bad is not None and bad.any():
        a[bad] = AIR_HU
        vol.meta["padding_set_to_air"] = True
        warn(vol, f"{vol.name or 'image'}: {bad.mean() * 100:.1f}% of voxels are NaN or infinite (outside the field of "
                  f"view): set to air ({AIR_HU:g} HU)")
    if not low:
        return
    a = _holding_air(vol)
    a[pad] = AIR_HU
    vol.meta["padding_set_to_air"] = True   # ct_check judges the scale on the other voxels
    vol.meta["padding_values"] = [float(v) for v in values]   # the file's, for the notes (trial 52)
    shown = ", ".join(f"{v:g}" for v in values[:4]) + (" ..." if values.size > 4 else "")
    warn(vol, f"{vol.name or 'image'}: {pad.mean() * 100:.1f}% of voxels below {limit:g} HU ({shown}: padding "
              f"outside the scan circle, nothing in a CT is below air) set to air ({AIR_HU:g} HU)")


def _holding_air(vol: Volume) -> np.ndarray:
    """``vol.array``, as a signed type that holds it and `limits.AIR_HU` when its integer type
    cannot hold air (int8: int16; an unsigned type: int16 for uint8, int32 beyond)."""
    a = vol.array
    if a.dtype.kind == "u" or (a.dtype.kind == "i" and np.iinfo(a.dtype).min > AIR_HU):
        vol.array = a = a.astype(np.int16 if a.dtype.itemsize == 1 else np.int32)
    return a


def _tissue_valued_fill_to_air(vol: Volume) -> None:
    """A resampler's fill of a value above air becomes air, with a warning. SimpleITK's
    ResampleImageFilter fills the grid outside its source with 0 by default (water's density),
    as do some converters outside the field of view; -1024 or below reads as air or padding
    already (`_padding_to_air`). New-user trial 79 (H3): the chest CTA tilted 20 degrees with the
    default fill of 0: 12.0 L of fill labelled body (24.9 L vs 12.9 L), 270 mL of the air behind
    the back, trapped between the skin and the fill, labelled lung_right, with no warning.

    Taken as fill, by the physics and geometry of a resampled image (`padding.border_fill`,
    `padding._fill_of_a_reformat`): one exact value above `padding.NOISY_AIR_HU`'s upper end
    (measured tissue carries quantum noise: no solid region of one value), a solid region joined
    to the image's border over at least 5 % of it, beside measured (noisy) data
    (`padding.noisy_beside`) that holds air somewhere (the HU scale: an MR's zero background is
    not converted). Any shape: a resampler's fill is convex, a CT multiplied by a body mask (the
    outside of the patient set to 0, a common preprocessing; new-user trial 80 H1: 6,166 mL of it
    labelled body) is not. The voxels become `limits.AIR_HU`; a reformat's fill is then found as
    the end of the field of view (`padding.padding_mask`), a mask's outside as the air around
    the patient."""
    from .padding import NOISY_AIR_HU, border_fill, fill_ring, noisy_beside

    a = vol.array
    if a.dtype.kind not in "if" or a.size == 0:
        return
    m, c = border_fill(a, above=NOISY_AIR_HU[1])
    if c is None:
        return
    # the data beside the fill must read on the HU scale (air or lung below NOISY_AIR_HU's upper
    # end somewhere): an MR or a mask (no negative values) is left for `ct_check` to refuse
    if not (a[~m] <= NOISY_AIR_HU[1]).any():
        return
    ring = fill_ring(m)
    if not noisy_beside(a[ring], c):
        return
    a = _holding_air(vol)
    a[m] = AIR_HU
    vol.meta["padding_set_to_air"] = True
    vol.meta["padding_values"] = sorted(set(vol.meta.get("padding_values", [])) | {float(c)})
    warn(vol, f"{vol.name or 'image'}: {m.mean() * 100:.1f}% of voxels hold one exact value ({c:g}) in a region "
              "joined to the image's border, beside measured data: a resampler's fill outside the scanned field of "
              f"view (SimpleITK's default is 0) or a mask applied to the CT, not tissue; set to air ({AIR_HU:g} HU)")


def _interpolation_undershoot(a: np.ndarray, cand: np.ndarray, spacing_kji) -> np.ndarray:
    """bool [k, j, i]: the voxels of ``cand`` (values below ``padding_below_hu``: all of them when
    padding, or enclosed pieces) explained as an interpolating resampler's undershoot: a voxel
    within ``interpolation_undershoot.reach_mm`` stands above air by at least the voxel's depth
    below air divided by ``interpolation_undershoot.value`` (input_limits.json, with its
    sources). The maximum is taken on the candidates' box only; none above ``max_voxels``
    candidates (a wrong scale, not ringing)."""
    from scipy import ndimage

    spec = LIMITS["interpolation_undershoot"]
    out = np.zeros(a.shape, bool)
    kji = np.argwhere(cand)
    if kji.size == 0 or len(kji) > int(spec["max_voxels"]):
        return out
    n = np.ceil(float(spec["reach_mm"]) / np.asarray(spacing_kji, float)).astype(int)
    lo = np.maximum(kji.min(0) - n, 0)
    hi = np.minimum(kji.max(0) + n + 1, a.shape)
    box = a[tuple(slice(int(x), int(y)) for x, y in zip(lo, hi))]
    peak = ndimage.maximum_filter(np.nan_to_num(box, nan=AIR_HU) if box.dtype.kind == "f" else box,
                                  size=tuple(2 * n + 1), mode="nearest")[tuple((kji - lo).T)].astype(np.float64)
    depth = AIR_HU - a[tuple(kji.T)].astype(np.float64)
    ok = (peak - AIR_HU) * float(spec["value"]) >= depth
    out[tuple(kji[ok].T)] = True
    return out


def _refuse_enclosed_invalid(vol: Volume, bad: np.ndarray) -> None:
    """Refuse a CT whose impossible values (below ``padding_below_hu``, NaN, infinite) lie inside the
    scan rather than around it.

    Padding outside the scan circle or a resampler's field of view always reaches the image's
    edge; a region of such values walled in by measured voxels is not padding but damage: most
    often stored HU that wrapped around (metal above the storage type's range, e.g. 40,000 HU
    in int16 with a -1024 intercept reads as -25,536 HU; extended CT scale, Coolens & Childs,
    Phys Med Biol 2003) or NaN holes. Turning it into air would put air where metal or tissue
    is (new-user trial 7). Components are 26-connected (cc3d); one touching any face of the
    volume is padding. Raises InputError naming the first enclosed region's size and RAS centre.
    ``bad``: bool [k, j, i], the voxels below ``padding_below_hu``, NaN or infinite (computed once by
    the caller)."""
    if not bad.any():
        return
    limit = float(LIMITS["padding_below_hu"]["value"])
    import cc3d

    if all(_reaches_slice_edge(bad[k]) for k in np.flatnonzero(bad.any(axis=(1, 2)))):
        return   # every piece reaches its slice's edge in-plane (the usual scan circle): no 3-D labels
    lab = cc3d.connected_components(bad, connectivity=26)
    faces = np.unique(np.concatenate([lab[0].ravel(), lab[-1].ravel(), lab[:, 0].ravel(), lab[:, -1].ravel(),
                                      lab[:, :, 0].ravel(), lab[:, :, -1].ravel()]))
    inner = np.setdiff1d(np.unique(lab), np.append(faces, 0))
    if inner.size == 0:
        return
    inner = _not_bordering_fill(vol.array, lab, inner)
    if inner.size == 0:
        return
    held = np.isin(lab, inner)
    ring = _interpolation_undershoot(vol.array, held, vol.spacing_kji)   # beside padding and ringing
    if ring.any():
        held &= ~ring
        if not held.any():
            return
    n = int(held.sum())
    centre = vol.kji_to_world(np.argwhere(held).mean(axis=0)[None])[0]
    raise InputError(
        f"{vol.name or 'image'}: {n:,} voxels ({n * vol.voxel_volume_ml:.1f} mL, around RAS "
        f"{centre[0]:.0f}, {centre[1]:.0f}, {centre[2]:.0f} mm) inside the scan are NaN, infinite or below "
        f"{limit:g} HU, walled in by measured tissue: not padding but values that wrapped around (metal stored beyond "
        "the type's range) or damaged data; convert the series again (float, or extended HU scale)")


def _not_bordering_fill(a: np.ndarray, lab: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The labels of ``inner`` (components of ``lab``, [k, j, i]) with no voxel 26-adjacent to
    the image's fill region (`imagio.padding.border_fill`: one exact value, solid, reaching
    the border): a resampler's padding around a reformat (its default value, e.g. -1024) is
    outside the scan as the array's faces are, so impossible values bordering it are the
    source's own padding blended by interpolation, not wrap-around (new-user trial 16, L1:
    LIDC-0001, padding -2048 outside its scan circle, rotated 20 degrees with linear
    interpolation and -1024 fill: 10 voxels at -1626..-1619 between the two were refused as
    wrapped-around). Wrap-around (metal stored beyond the type's range) lies in the body,
    walled in by tissue, never next to the fill. Only a fill at or below air (``AIR_HU``; a
    resampler's or scanner's padding value: -1024, -3024, ...) counts: a noise-free image's
    constant soft tissue reaching the border is not padding (a 0-filled reformat stays refused
    here, as before)."""
    from scipy import ndimage

    from .padding import border_fill

    fill, value = border_fill(a)
    if value is None or not value <= AIR_HU:
        return inner
    near = ndimage.binary_dilation(fill, np.ones((3, 3, 3), bool))
    return np.setdiff1d(inner, np.unique(lab[near]))


def _reaches_slice_edge(m: np.ndarray) -> bool:
    """Whether every 8-connected piece of the 2-D mask ``m`` touches its border (a path in the
    slice to the edge is a path in the volume: such voxels are not enclosed). One slice's labels
    only, so reading a large padded CT does not hold a 4-byte label per voxel of the volume."""
    import cc3d

    lab = cc3d.connected_components(m, connectivity=8)
    edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    return bool(np.isin(np.unique(lab), np.append(edge, 0)).all())


def _nifti_qfac(path: Path) -> float:
    """NIfTI-1 qfac (pixdim[0], header offset 76): -1 flips the third axis. SimpleITK does not
    expose it, so it is read from the 348-byte header (either byte order, gzip or not)."""
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head = f.read(80)
    except OSError:
        return 1.0
    for order in "<>":
        if len(head) >= 80 and np.frombuffer(head[:4], order + "i4")[0] == 348:
            return -1.0 if np.frombuffer(head[76:80], order + "f4")[0] < 0 else 1.0
    return 1.0


def _nifti_quaternion_affine(img, qfac: float) -> np.ndarray | None:
    """The NIfTI qform (RAS, 4x4) from the header fields SimpleITK exposes (NIfTI-1 method 2)."""
    try:
        b, c, d = (float(img.GetMetaData(f"quatern_{x}")) for x in "bcd")
        off = [float(img.GetMetaData(f"qoffset_{x}")) for x in "xyz"]
        px = [float(img.GetMetaData(f"pixdim[{i}]")) for i in range(4)]
    except RuntimeError:
        return None
    a = np.sqrt(max(0.0, 1.0 - (b * b + c * c + d * d)))
    r = np.array([[a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
                  [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
                  [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b]])
    m = np.eye(4)
    m[:3, :3] = r * np.array([px[1], px[2], qfac * px[3]])[None, :]
    m[:3, 3] = off
    return m


def _qform_sform_disagreement(img, vol: Volume, path: Path) -> str:
    """A sentence when the NIfTI qform and sform (both set) place the voxels differently."""
    def code(k):
        return int(float(img.GetMetaData(k))) if img.HasMetaDataKey(k) else 0

    if code("qform_code") <= 0 or code("sform_code") <= 0:
        return ""
    q = _nifti_quaternion_affine(img, _nifti_qfac(path))
    try:
        srows = [[float(v) for v in img.GetMetaData(f"srow_{x}").split()] for x in "xyz"]
    except RuntimeError:
        return ""
    if q is None or any(len(r) != 4 for r in srows):
        return ""
    sf = np.vstack([np.array(srows), [0, 0, 0, 1]])
    ni, nj, nk = vol.shape[::-1]
    corners = np.array([[i, j, k, 1.0] for i in (0, ni - 1) for j in (0, nj - 1) for k in (0, nk - 1)])
    dq, ds = corners @ q.T, corners @ sf.T
    diff = float(np.linalg.norm(dq[:, :3] - ds[:, :3], axis=1).max())
    if diff < 0.1:
        return ""
    used = vol.ijk_to_world(corners[:, :3])  # NIfTI world is RAS, like Volume
    e_q = float(np.linalg.norm(used - dq[:, :3], axis=1).max())
    e_s = float(np.linalg.norm(used - ds[:, :3], axis=1).max())
    which = "sform" if e_s <= e_q else "qform"
    return (f"the NIfTI qform and sform disagree by up to {diff:.1f} mm at the image corners; read with the "
            f"{which} (as ITK and 3D Slicer do); check the file's origin if positions matter")


def read_dicom_series(folder, series: str | None = None) -> Volume:
    """Read one DICOM series of ``folder`` (``imagio.dicom.read_series``) as a RAS Volume.

    ``meta`` keeps patient/series identifiers and, under ``"read"``, what the reader did.
    """
    from .dicom import read_series

    folder = Path(folder)
    _check_exists(folder)
    arr, aff_lps, report, msgs = read_series(folder, series)
    vol = Volume(arr, LPS_TO_RAS @ aff_lps, folder.name)
    vol.meta.update(report.pop("meta"))
    vol.meta["read"] = report
    for m in msgs:
        warn(vol, f"{folder.name}: {m}")
    return vol


DICOM_TAGS = {
    "PatientName": "0010|0010", "PatientID": "0010|0020", "StudyDate": "0008|0020",
    "StudyInstanceUID": "0020|000d", "SeriesInstanceUID": "0020|000e",
    "SeriesDescription": "0008|103e", "Modality": "0008|0060", "AccessionNumber": "0008|0050",
    "PatientPosition": "0018|5100",
}


def _dicom_meta(img) -> dict:
    return {k: img.GetMetaData(t).strip() for k, t in DICOM_TAGS.items() if img.HasMetaDataKey(t)}


def require_image_output(path, flag: str = "--out") -> Path:
    """Refuse (InputError, one line) an image output whose name has no image suffix
    (``.seg.nrrd`` or one of ``IMAGE_SUFFIXES``): the writer picks the format from it. Commands
    call this before any work; :func:`write_image` calls it again."""
    path = Path(path)
    suf = _suffix(path)
    if suf not in (".seg.nrrd",) + IMAGE_SUFFIXES:
        stem = path.name or "out"
        raise InputError(f"{flag} {path}: no image file suffix; name the output e.g. {stem}.seg.nrrd "
                         f"(Slicer segmentation) or {stem}.nii.gz")
    if len(path.name) <= len(suf):
        raise InputError(f"{flag} {path}: the file name is only a suffix (a hidden file with no name); "
                         f"name the output e.g. segmentation{suf}")
    return path


def write_image(vol: Volume, path) -> Path:
    """Write a Volume (CT or label map) to NIfTI/NRRD/MetaImage; creates parent folders.

    Written to a temporary name and renamed (``imagio.outputs.atomic_path``): never a
    half-written file, never over an input of the running command. Raises InputError when
    ``path`` has no image suffix (:func:`require_image_output`)."""
    sitk = _sitk()
    path = require_image_output(path, "output")
    with atomic_path(path) as tmp:
        sitk.WriteImage(volume_to_sitk(vol), for_library(tmp), useCompression=True)
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


BACKGROUND_NAMES = ("background", "bg", "unlabeled", "unlabelled", "exterior", "outside", "void", "none")


def _refuse_unnamed_background(vol: Volume, unnamed: list[int], path) -> None:
    """InputError when an unnamed label value of ``vol`` (a label map whose other values are named),
    or one named as the background (``BACKGROUND_NAMES``, any case), fills every corner of the grid
    and more than half of its voxels: the background (the air around the patient, what no
    structure covers) written with a value other than 0 (new-user trial 95 F6: 65535 as the
    background of a uint16 map, called label_65535, made a forbidden structure of everything
    outside the body and plan blamed the CT: "no outer skin in this CT"; trial 96 F5: the same
    value named "background" in the sidecar)."""
    a = vol.array
    corners = {int(a[k, j, i]) for k in (0, -1) for j in (0, -1) for i in (0, -1)}
    named_bg = [v for v, n in (vol.labels or {}).items() if int(v) != 0 and str(n).strip().lower() in BACKGROUND_NAMES]
    if len(corners) != 1 or next(iter(corners)) not in set(unnamed) | set(named_bg):
        return
    v = next(iter(corners))
    share = float(np.count_nonzero(a == v)) / a.size
    if share > 0.5:
        what = "has no name" if v in unnamed else f"is named {vol.labels[v]!r}"
        raise InputError(f"{Path(path).name}: label value {v} {what} and covers {share * 100:.0f} % of the "
                         "image including all its corners: it looks like the background (what no structure "
                         f"covers); relabel it 0, the background of a label map (e.g. in 3D Slicer or with "
                         f"numpy: labels[labels == {v}] = 0)")


def read_labels(path, names: dict[int, str] | None = None) -> Volume:
    """Read a label map; names from ``names`` (``--label-names``), a ``.seg.nrrd`` header or a
    JSON sidecar ``<file>.labels.json`` (else ``label_N``).

    A label map holds integers >= 0 with at most ``max_label_values`` (512) distinct values.
    Raises InputError, naming the problem, for: non-integer values, negative values (e.g. -1
    outside an nnU-Net crop), too many distinct values or a CT-like value range (a CT given as
    labels), no labelled voxel, an unnamed value (others named) filling every corner and over half
    of the grid (the background written as 65535 or another value than 0).
    """
    vol = read_image(path, pad_to_air=False)
    validate_labels(vol, path)
    if vol.array.dtype.kind != "u" or vol.array.dtype.itemsize > 2:
        a = np.rint(vol.array) if vol.array.dtype.kind == "f" else vol.array
        vol.array = a.astype(np.uint16 if a.max() > 255 else np.uint8)
    doubts = vol.meta.pop("outline_doubts", {})   # {value: record} of a .seg.nrrd
    side = sidecar_path(path)
    if not doubts and _suffix(Path(path)) != ".seg.nrrd" and side.exists():
        doubts = _sidecar_doubts(side)
    if names:
        vol.labels = dict(names)
    elif not vol.labels:
        if side.exists():
            vol.labels = read_label_names(side)
    present = set(np.unique(vol.array).tolist()) - {0}
    unnamed = sorted(int(v) for v in present if int(v) not in vol.labels)
    if vol.labels:
        _refuse_unnamed_background(vol, unnamed, path)
    if vol.labels and unnamed:  # names were given, but not for every value
        warn(vol, f"{Path(path).name}: label value(s) {', '.join(map(str, unnamed[:10]))} have no name in the "
                  "label names given; they are called label_N")
    for v in present:
        vol.labels.setdefault(int(v), f"label_{int(v)}")
    vol.labels = {k: v for k, v in vol.labels.items() if k in present}
    canonical = {v: anatomy.canonical_name(n) for v, n in vol.labels.items()}
    renamed = {v: c for v, c in canonical.items() if c != vol.labels[v]}
    if renamed:
        warn(vol, f"{Path(path).name}: structure names read in IMAGIO's (TotalSegmentator's) spelling: "
                  + ", ".join(f"{vol.labels[v]!r} as {n!r}" for v, n in sorted(renamed.items())[:10]))
        vol.labels.update(renamed)
    for name, vals in duplicate_names(vol.labels).items():
        warn(vol, f"{Path(path).name}: label values {', '.join(map(str, vals))} are all named {name!r}: "
                  "each keeps its role, but the name cannot choose one (a target by that name is refused); "
                  "rename them (--label-names, or in Slicer)")
    vol.outline_doubts = {vol.labels[v]: rec for v, rec in doubts.items() if v in vol.labels}
    return vol


def _sidecar_doubts(side: Path) -> dict[int, dict]:
    """{label value: `outline_doubts` record} of a ``.labels.json`` sidecar ({} when it holds
    none, as an older sidecar or a user's; an unreadable sidecar is refused by `read_label_names`)."""
    try:
        table = json.loads(side.read_text(encoding="utf-8")).get("labels", {})
        return {int(k): v[outline_doubts.RECORD_KEY] for k, v in table.items()
                if isinstance(v, dict) and isinstance(v.get(outline_doubts.RECORD_KEY), dict)}
    except (ValueError, TypeError, AttributeError):
        return {}


def duplicate_names(labels: dict[int, str]) -> dict[str, list[int]]:
    """{name: [label values]} for the names that more than one label value carries."""
    by: dict[str, list[int]] = {}
    for v, n in sorted(labels.items()):
        by.setdefault(n, []).append(int(v))
    return {n: v for n, v in by.items() if len(v) > 1}


def with_lesions(labels: Volume, lesions_path, keep=None) -> Volume:
    """``labels`` with the lesions of another label map (``--lesions``: `imagio detect`'s
    nodules.seg.nrrd, `imagio lesion`'s output) painted over it on its grid (nearest
    neighbour), each under its own name with a new label value (a name ``labels`` already has is
    the same lesion: painted with that value, one structure; new-user trial 22: renamed, it left
    the old label empty and the target "had no voxels"), so the planners see every lesion: the one aimed at and the
    others they keep out. The inputs are not modified. Raises InputError as `read_labels` and
    `labels_on_grid` do.

    What each outline covers is counted per structure of ``labels`` (new-user trial 36 H1: an
    outline leaking into the portal vein turned 0.37 mL of vessel into "tumour" without a word):
    ``keep(name)`` True keeps that structure's voxels under the outline (a vessel stays the vessel
    for clearances, heat sink and zone injury); False paints it over with a warning, None (and no
    ``keep``) paints it over silently (the lesion's host: liver, lung, body). The result's
    ``lesion_cover`` lists {lesion, structure, ml, kept}; a lesion left with no voxels is refused
    (InputError); one warning line per structure kept or painted with False is added."""
    src = read_labels(lesions_path)
    les = labels_on_grid(src, labels, f"--lesions {lesions_path}", partial_ok=True)
    names = dict(labels.labels)
    nxt = int(max(names, default=0)) + 1
    vals = [int(v) for v in np.unique(les.array) if v and int(v) in les.labels]
    arr = labels.array.astype(np.promote_types(labels.array.dtype, np.min_scalar_type(nxt + len(vals))), copy=True)
    have = {n: k for k, n in labels.labels.items()}
    voxel_ml = float(np.prod(labels.spacing)) / 1000.0
    cover, notes = [], []
    for v in vals:
        name = les.labels[v]
        value = have.get(name, nxt)
        paint = les.array == v
        under, counts = np.unique(labels.array[paint], return_counts=True)
        for u, n in zip(under.tolist(), counts.tolist()):
            if not u or u == value or u not in labels.labels:
                continue
            other = str(labels.labels[u])
            said = keep(other) if keep else None
            kept = said is True
            vol = f"{n * voxel_ml:.2f}" if n * voxel_ml >= 0.01 else f"{n * voxel_ml:.3f}"
            cover.append({"lesion": name, "structure": other, "ml": round(n * voxel_ml, 3), "kept": kept})
            if kept:
                paint &= labels.array != u
                notes.append(f"the --lesions outline {name} covers {vol} mL of {other}: those voxels stay {other} "
                             "(the outline may not erase it: the needle's clearances and an ablation's heat sink and "
                             "injury are judged on it); check the outline")
            elif said is False:
                notes.append(f"the --lesions outline {name} covers {vol} mL of {other}: painted as "
                             f"{name} (the lesion may lie in {other}); check the outline if it should not")
        if not paint.any():
            raise InputError(f"--lesions {lesions_path}: the outline {name} lies wholly on "
                             f"{', '.join(c['structure'] for c in cover if c['lesion'] == name and c['kept'])}, "
                             "which the needle must keep out of: nothing of it is left to aim at; check the outline")
        arr[paint] = value
        if name not in have:
            names[nxt] = name
            nxt += 1
    out = labels.with_array(arr, labels=names)
    out.warnings = list(labels.warnings) + list(les.warnings)
    # the doubts `imagio lesion` wrote with an outline travel with it (trial 75 finding 0)
    out.outline_doubts = {**labels.outline_doubts, **src.outline_doubts}
    for n in notes:
        warn(out, n)
    out.lesion_cover = cover
    return out


def _extent_ras(vol: Volume, mask=None) -> str:
    """The world (RAS mm) extent of ``vol``'s voxel centres, or of those of ``mask``, as text."""
    lo, hi = vol.bounding_box(mask) if mask is not None else (np.zeros(3, int), np.array(vol.shape))
    corners = np.array([[a, b, c] for a in (lo[0], hi[0] - 1) for b in (lo[1], hi[1] - 1)
                        for c in (lo[2], hi[2] - 1)], float)
    w = vol.kji_to_world(corners)
    return ", ".join(f"{ax} {w[:, n].min():.0f}..{w[:, n].max():.0f}" for n, ax in enumerate("RAS"))


def _no_overlap(labels: Volume, ct: Volume, name: str) -> InputError:
    return InputError(f"{name} does not overlap the CT: its labelled voxels lie at {_extent_ras(labels, labels.array > 0)} "
                      f"mm, the CT spans {_extent_ras(ct)} mm (RAS); give the segmentation of this scan")


def require_overlap(labels: Volume, ct: Volume, name: str = "the label map") -> None:
    """Refuse (InputError, one line, both extents in RAS mm) a label map whose labelled voxels'
    box lies wholly outside the CT (a segmentation of another scan: trial 32 M2, an airway mask
    1410 mm from the CT planned a route without a word). The box test needs no resampling, so it
    suits commands that keep the labels on their own grid (bronch); it refuses only when no
    labelled voxel can fall inside the CT. `labels_on_grid` makes the exact test while resampling."""
    if not labels.array.any() or ct.same_grid(labels):
        return
    lo, hi = labels.bounding_box(labels.array > 0)
    box = np.array([[a, b, c] for a in (lo[0] - 0.5, hi[0] - 0.5) for b in (lo[1] - 0.5, hi[1] - 0.5)
                    for c in (lo[2] - 0.5, hi[2] - 0.5)], float)
    kji = ct.world_to_kji(labels.kji_to_world(box))
    if np.any(kji.max(axis=0) <= -0.5) or np.any(kji.min(axis=0) >= np.asarray(ct.shape) - 0.5):
        raise _no_overlap(labels, ct, name)


def _voxels_align(a: Volume, b: Volume, tol: float = 1e-3) -> bool:
    """True when ``a``'s voxel centres are ``b``'s: ``a``'s IJK -> ``b``'s IJK is a signed
    permutation with a whole-voxel offset (same voxel size and axes up to the storage order: a
    crop, a pad, an axis stored the other way), so nearest-neighbour resampling is exact."""
    m = np.linalg.inv(b.ijk_to_ras) @ a.ijk_to_ras
    r, off = m[:3, :3], m[:3, 3]
    perm = np.allclose(np.abs(r), np.rint(np.abs(r)), atol=tol) and np.allclose(np.abs(np.rint(r)).sum(0), 1) \
        and np.allclose(np.abs(np.rint(r)).sum(1), 1)
    return bool(perm and np.allclose(off, np.rint(off), atol=tol))


def labels_on_grid(labels: Volume, ct: Volume, name: str = "the label map", partial_ok: bool = False) -> Volume:
    """``labels`` on ``ct``'s grid (nearest neighbour; itself when the grids are the same).

    Raises InputError when ``labels`` has labelled voxels but none of them falls inside the CT:
    a segmentation of another scan or series, whose every structure would otherwise be reported
    as missing one by one (trial 7: "target structure 'tumor' has no voxels"). The message gives
    both extents in RAS mm so the user sees which one is off.

    A map whose own grid covers only part of the CT is said once (`coverage_words`; not for
    ``partial_ok``: a lesions-only map laid onto another map), and a map most of whose structures
    of known tissue lie on other tissue is refused (`_check_intensities`; new-user trial 114).
    """
    if ct.same_grid(labels):
        check_placed(labels, ct, name, partial_ok)
        return labels
    out = labels.resample_like(ct, order=0)
    out.outline_doubts = dict(labels.outline_doubts)
    if labels.array.any() and not out.array.any():
        raise _no_overlap(labels, ct, name)
    check_placed(labels, ct, name, partial_ok, out)
    if labels.shape == ct.shape and np.allclose(labels.ijk_to_ras[:3, :3], ct.ijk_to_ras[:3, :3], atol=1e-4):
        # the CT's own size, voxel size and axes, another origin: most often this scan's labels
        # saved with a wrong origin (trial 7: a 10 mm shift moved the target 10 mm silently)
        shift = labels.ijk_to_ras[:3, 3] - ct.ijk_to_ras[:3, 3]
        if np.linalg.norm(shift) > 0.5 * float(min(ct.spacing)):
            warn(labels, f"{name} has the CT's size, voxel size and axes but lies {np.linalg.norm(shift):.1f} mm "
                         f"from it (R, A, S shift {shift[0]:.1f}, {shift[1]:.1f}, {shift[2]:.1f} mm): it is placed by "
                         "its own coordinates; if it is this scan's segmentation saved with a wrong origin, every "
                         "structure is off by that much: check it on the CT")
    elif not _voxels_align(labels, ct):
        # another voxel size or axes: said, since every outline then keeps its own grid's
        # precision on the CT's (new-user trial 36 L1: an ablation margin of 1.8 mm against 3.5 mm
        # with the CT's own grid, with no word why)
        turn = float(np.degrees(np.arccos(np.clip(np.abs(labels.direction.T @ ct.direction).max(0).min(), -1, 1))))
        same = np.allclose(np.sort(labels.spacing), np.sort(ct.spacing), atol=1e-3) and turn < 0.5
        # the same voxels and axes, an origin off by a fraction of a voxel (trial 116 L9: "another grid
        # (0.98 x 0.98 x 2.00 mm against 0.98 x 0.98 x 2.00 mm)")
        kji = ct.world_to_kji(labels.ijk_to_ras[:3, 3][None])[0]       # its first voxel centre in the CT's voxels
        frac = (kji - np.rint(kji))[::-1]                                 # i, j, k: the part off the CT's centres
        off = ct.ijk_to_ras[:3, :3] @ frac                                # RAS mm
        warn(labels, f"{name} lies on another grid than the CT (" + (
                     f"the same voxels, {' x '.join(f'{v:.2f}' for v in ct.spacing)} mm, their centres "
                     f"{np.linalg.norm(off):.1f} mm off the CT's (R, A, S {off[0]:.1f}, {off[1]:.1f}, {off[2]:.1f} mm)"
                     if same else
                     f"voxels {' x '.join(f'{v:.2f}' for v in labels.spacing)} mm against "
                     f"{' x '.join(f'{v:.2f}' for v in ct.spacing)} mm")
                     + (f", axes turned {turn:.0f} degrees" if turn >= 0.5 else "")
                     + "): it was resampled to the CT's voxels (nearest neighbour), so its outlines are known "
                     f"only to within half its own voxel (up to {0.5 * max(labels.spacing):.1f} mm) and the "
                     "distances and margins measured from them carry that; a label map on the CT's own grid "
                     "avoids it")
    return out


def check_placed(labels: Volume, ct: Volume, name: str, partial_ok: bool = False, on_ct: Volume | None = None,
                 tissues: bool = True) -> None:
    """The checks of a label map placed on a CT by its coordinates (new-user trial 114), for
    `labels_on_grid` and for commands that keep the map on its own grid (bronch): one warning on
    ``labels`` when its grid covers only part of the CT (`coverage_words`; not for ``partial_ok``),
    and InputError (one line) when most of its structures of known tissue lie on other tissue
    (`_check_intensities`; not without ``tissues``: bronch's own airway checks, `require_mask_on_air`,
    name an airway tree off the CT's air first). ``on_ct``: the map on the CT's grid when the caller
    has made it."""
    if ct.same_grid(labels):
        if tissues:
            _check_intensities(labels, ct, labels, name, None, 1.0)
        return
    covered = label_coverage(labels, ct)
    cover_words = coverage_words(labels, ct, covered, name) if covered is not None and not partial_ok else ""
    if tissues:
        _check_intensities(labels.resample_like(ct, order=0) if on_ct is None else on_ct, ct, labels, name,
                           cover_words, 1.0 if covered is None else float(np.count_nonzero(covered)) / covered.size)
    if cover_words:
        _warn_once(labels, cover_words)


def _warn_once(vol: Volume, message: str) -> None:
    """`warn`, unless ``vol`` holds the message already (a command that places the map twice)."""
    if message not in vol.warnings:
        warn(vol, message)


def label_coverage(labels: Volume, ct: Volume) -> np.ndarray | None:
    """Bool [k, j, i] on ``ct``'s grid: the CT voxels inside the extent of ``labels``' own grid
    (its voxels' box, as `Volume.resample_like` reads it); None when that holds the whole CT
    (every corner voxel of the CT inside it: both boxes are convex), or for the CT's own grid.
    Outside it the map labels nothing: unknown there, not background (new-user trial 114)."""
    if ct.same_grid(labels):
        return None
    n = np.asarray(ct.shape, float) - 1
    corners = np.array([[a, b, c] for a in (0, n[0]) for b in (0, n[1]) for c in (0, n[2])], float)
    kji = labels.world_to_kji(ct.kji_to_world(corners))
    if np.all(kji >= -0.5 - 1e-6) and np.all(kji <= np.asarray(labels.shape) - 0.5 + 1e-6):
        return None
    ones = labels.with_array(np.ones(labels.shape, np.uint8), labels={})
    return ones.resample_like(ct, order=0, fill=0).array > 0


def cut_by_own_edge(labels: Volume, ct: Volume) -> list[str]:
    """The names of the structures of ``labels`` that reach a face of its own grid beyond which the
    CT goes on (a face whose outward neighbours, at its corners or centre, lie inside the CT): cut
    by the label map's edge, not the CT's, so they may go on where nothing is labelled."""
    arr, shape = labels.array, np.asarray(labels.shape)
    vals = set()
    for ax in range(3):
        for end in (0, int(shape[ax]) - 1):
            face = np.take(arr, end, axis=ax)
            if not face.any():
                continue
            other = [x for x in range(3) if x != ax]
            pts = []
            for u in (0.0, 0.5, 1.0):
                for w in (0.0, 0.5, 1.0):
                    p = np.zeros(3)
                    p[ax] = end + (1.0 if end else -1.0)
                    p[other[0]], p[other[1]] = u * (shape[other[0]] - 1), w * (shape[other[1]] - 1)
                    pts.append(p)
            if ct.contains_world(labels.kji_to_world(np.array(pts))).any():
                vals.update(int(v) for v in np.unique(face) if v)
    return sorted({labels.labels.get(v, f"label {v}") for v in vals})


def coverage_words(labels: Volume, ct: Volume, covered: np.ndarray, name: str) -> str:
    """The one warning of a label map covering part of the CT ("" when it covers all but
    input_limits ``label_coverage`` ``warn_uncovered_fraction`` of it): the share of the CT's voxels,
    the CT's slices (rows, columns) and RAS mm it covers, the structures its own edge cuts."""
    from .limits import LIMITS

    from .anatomy import is_lesion

    frac = float(np.count_nonzero(covered)) / covered.size
    if 1.0 - frac <= float(LIMITS["label_coverage"]["warn_uncovered_fraction"]):
        return ""
    if all(is_lesion(n) for n in (labels.labels or {}).values()):
        return ""   # lesions only (a tumour's .seg.nrrd on its extent): it claims nothing of the rest
    if not covered.any():
        return ""   # none of it on the CT: `_no_overlap` says so
    lo, hi = ct.bounding_box(covered)
    parts = [f"{w} {a}-{b - 1} of {n}" for w, a, b, n in zip(("slices", "rows", "columns"), lo, hi, ct.shape)
             if a > 0 or b < n]
    cut = cut_by_own_edge(labels, ct)
    cut_words = ""
    if cut:
        shown = ", ".join(cut[:8]) + (f" and {len(cut) - 8} more" if len(cut) > 8 else "")
        cut_words = f"; reaching the label map's own edge, where the CT goes on (they may go on past it, unlabelled): {shown}"
    return (f"{name} covers only {100 * frac:.0f}% of the CT ({', '.join(parts)}; {_extent_ras(ct, covered)} mm of "
            f"the CT's {_extent_ras(ct)} mm, RAS): outside it nothing is labelled (unknown, not background), so no "
            f"structure there is seen{cut_words}; give the label map made on the whole of this CT")


def _check_intensities(on_ct: Volume, ct: Volume, given: Volume, name: str, cover_words: str | None,
                       covered: float) -> None:
    """Refuse (InputError, one line) a label map most of whose judged structures lie on another tissue
    (`label_registration.intensity_disagreement`, input_limits ``label_intensity`` ``refuse_share``:
    another scan's or patient's map, or one placed on another part of the CT) when at least
    ``min_structures`` are judged or it covers under ``refuse_below_coverage`` of the CT (``covered``:
    its share); else warn, by name, those that do. ``on_ct``: the map on ``ct``'s grid; warnings go
    to ``given``."""
    from .label_registration import intensity_disagreement, intensity_words
    from .limits import LIMITS

    r = intensity_disagreement(ct, on_ct)
    if not r["disagree"]:
        return
    cfg = LIMITS["label_intensity"]
    k, n = len(r["disagree"]), len(r["checked"])
    if k >= float(cfg["refuse_share"]) * n and (n >= int(cfg["min_structures"])
                                                 or covered < float(cfg["refuse_below_coverage"])):
        from .label_orientation import check_orientation

        check_orientation(on_ct, name, ct)   # a mirrored map is refused as the flip it is (trial 42)
        where = (f"; {cover_words.split(': outside it')[0]}" if cover_words else "")
        raise InputError(f"{name} does not match this CT: {k} of its {n} structures whose tissue is known lie on "
                         f"other tissue ({intensity_words(r)}){where}: it is another scan's or patient's "
                         "segmentation, or placed on another part of this CT; give the label map made on this CT")
    _warn_once(given, f"{name}: {k} of its {n} structures whose tissue is known lie on other tissue on this CT "
                      f"({intensity_words(r)}): check them on the CT (disease, or a wrong label there)")


def validate_labels(vol: Volume, path="label map") -> None:
    """Refuse an array that is not a label map (see ``read_labels``); one line naming why."""
    a = vol.array
    max_values = int(LIMITS["max_label_values"]["value"])
    if a.dtype.kind == "b":
        return
    if a.dtype.kind not in "iuf":
        raise InputError(f"{path}: not a label map (voxel type {a.dtype})")
    if a.dtype.kind == "f":
        off = np.abs(a - np.rint(a))
        if not np.all(off < 1e-3):  # float storage error is fine; interpolated labels are not
            raise InputError(f"{path}: not a label map (non-integer voxel values, e.g. {a[off >= 1e-3].flat[0]:g}: "
                             "interpolated or a probability map); give integer labels 0, 1, 2, ...")
        a = np.rint(a)
    values = np.unique(a)
    lo, hi = float(values[0]), float(values[-1])
    ct_like = lo <= -500 and hi >= 0
    if values.size > max_values or ct_like:
        raise InputError(
            f"{path}: not a label map but an intensity image ({values.size} distinct values, {lo:g}..{hi:g}"
            f"{'; it looks like a CT in HU' if ct_like else ''}); give the segmentation (labels 0, 1, 2, ...), "
            "not the CT")
    if lo < 0:
        neg = ", ".join(f"{v:g}" for v in values[values < 0][:5])
        raise InputError(f"{path}: label values must be >= 0, found {neg} ({int((a < 0).sum())} voxels; e.g. -1 marks "
                         "the region outside an nnU-Net crop); set them to 0 (background) and try again")
    if hi > 65535:
        raise InputError(f"{path}: label value {hi:g} is too large (at most 65535)")
    if hi == 0:
        raise InputError(f"{path}: the label map is empty (no labelled voxel); segment something first")


LABEL_NAMES_HELP = "a JSON file {value: name} naming the values of a label map without names"


def add_label_names_argument(parser, which: str = "") -> None:
    """Add ``--label-names`` (read by `label_names_arg`); ``which``: what it applies to or its
    default, added to the help in brackets."""
    parser.add_argument("--label-names", help=LABEL_NAMES_HELP + (f" ({which})" if which else ""))


def label_names_arg(args) -> dict[int, str] | None:
    """The names of ``--label-names`` (`read_label_names`), or None when not given."""
    path = getattr(args, "label_names", None)
    return read_label_names(path) if path else None


def read_label_names(path) -> dict[int, str]:
    """Label names from a JSON file (a sidecar or ``--label-names``): ``{"labels": {"1": {"name":
    "liver", ...}}}`` or a plain ``{"1": "liver"}``. Raises InputError when unreadable."""
    path = Path(path)
    _check_exists(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        table = doc.get("labels", doc)
        names = {int(k): (v["name"] if isinstance(v, dict) else str(v)) for k, v in table.items()}
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise InputError(f"{path}: not a label-name table ({type(e).__name__}: {e}); expected JSON like "
                         '{"1": "liver", "2": "aorta"}') from None
    if any(k < 0 for k in names):
        raise InputError(f"{path}: label values must be >= 0")
    return names


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
    doubts = vol.outline_doubts or {}
    doc = {"labels": {str(k): {"name": n, "color": list(anatomy.get(n).color),
                               **({outline_doubts.RECORD_KEY: doubts[n]} if n in doubts else {})}
                      for k, n in sorted(vol.labels.items())}}
    write_text(sidecar_path(path), json.dumps(doc, indent=1))
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
        rec = (vol.outline_doubts or {}).get(name)
        flags = f"{outline_doubts.SEGMENT_TAG}:{outline_doubts.tag_value(rec)}|" if rec is not None else ""
        img.SetMetaData(p + "Tags", "TerminologyEntry:" + terminology_entry(name) + "|" + flags)
        if rec is not None:   # the whole record (`outline_doubts`); Slicer keeps only the tag
            img.SetMetaData(p + "IMAGIO_lesion", outline_doubts.dumps(rec))
    with atomic_path(path) as tmp:
        sitk.WriteImage(img, for_library(tmp), useCompression=True)
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


def _seg_nrrd_doubts(img) -> dict[int, dict]:
    """{label value: `outline_doubts` record} of a .seg.nrrd's segments: IMAGIO's header key, else
    the flags of the segment tag (a file saved again by Slicer keeps its tags only)."""
    out, idx = {}, 0
    has = img.HasMetaDataKey
    while has(f"Segment{idx}_ID"):
        value = int(img.GetMetaData(f"Segment{idx}_LabelValue")) if has(f"Segment{idx}_LabelValue") else idx + 1
        rec = outline_doubts.loads(img.GetMetaData(f"Segment{idx}_IMAGIO_lesion")) \
            if has(f"Segment{idx}_IMAGIO_lesion") else None
        if rec is None and has(f"Segment{idx}_Tags"):
            for tag in img.GetMetaData(f"Segment{idx}_Tags").split("|"):
                key, _, val = tag.partition(":")
                if key == outline_doubts.SEGMENT_TAG:
                    rec = outline_doubts.from_tag(val)
        if rec is not None:
            out[value] = rec
        idx += 1
    return out


def input_warnings(*vols) -> list[str]:
    """The reader's warnings (``Volume.warnings``) of the given inputs (None skipped), in order,
    for a command's JSON output (``input_warnings``)."""
    return [w for v in vols if v is not None for w in v.warnings]
