"""Shared helpers of the rule-based segmenters: CT checks, grid orientation, masks.

All masks are boolean arrays in [k, j, i] order on the CT grid. Distances and radii are in mm
and converted per array axis with the voxel spacing, so anisotropic grids behave; the
direction matrix only matters where an anatomical direction (superior, right, anterior) is
needed, which `anatomical_axes` answers for any (oblique) grid.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..limits import GAS_MEDIAN_HU  # noqa: F401 (one definition, imagio.limits: gas vs lung parenchyma)
from ..progress import Progress
from ..volume import Volume

# HU landmarks (standard CT physics: air -1000, water 0; the thresholds are common practice)
AIR_HU = -900.0  # a CT of a patient always contains air below this (outside the body, lungs)
BODY_HU = -500.0  # body outline threshold (between air and fat)
LUNG_HU = -400.0  # lung parenchyma upper bound
EMPHYSEMA_HU = -950.0  # LAA-950: Gevenois et al., AJRCCM 1996; Fleischner Society 2015


def rule(name: str) -> float:
    """Value of a segmentation constant from ``imagio/data/segmentation_rules.json`` (each
    entry there carries its unit and its physical or published source)."""
    return float(_rules()[name]["value"])


def _rules() -> dict:
    import json
    from importlib import resources

    global _RULES
    if _RULES is None:
        _RULES = json.loads(resources.files("imagio.data").joinpath("segmentation_rules.json")
                            .read_text(encoding="utf-8"))["rules"]
    return _RULES


_RULES = None


def as_progress(progress) -> Progress:
    """Accept a Progress, a callback(fraction, message) or None."""
    if isinstance(progress, Progress):
        return progress
    return Progress(progress)


def check_ct(ct: Volume) -> np.ndarray:
    """Validate that ``ct`` is a CT in HU (``imagio.ct_check.check_hu``); return its array.

    Raises InputError naming the problem: not a Volume, not CT (DICOM Modality), no air or no
    soft tissue in the histogram (MR-like, HU + 1024 without rescale, a crop), values beyond HU.
    """
    from ..ct_check import check_hu

    if not isinstance(ct, Volume):
        raise InputError(f"expected a CT Volume, got {type(ct).__name__}")
    check_hu(ct, "rule-based segmentation")
    return ct.array


def ball(radius_mm: float, spacing_kji) -> np.ndarray:
    """Ellipsoidal structuring element in voxels approximating a ball of ``radius_mm``."""
    r = np.maximum(np.floor(radius_mm / np.asarray(spacing_kji, float)), 0).astype(int)
    if not r.any():
        return np.ones((1, 1, 1), bool)
    g = np.ogrid[tuple(slice(-n, n + 1) for n in r)]
    d = sum((gi * s / radius_mm) ** 2 for gi, s in zip(g, spacing_kji))
    return d <= 1.0 + 1e-9


def anatomical_axes(vol: Volume) -> dict:
    """For each anatomical direction R, A, S: the array axis (0=k, 1=j, 2=i) closest to it
    and the sign (+1 if increasing the index moves towards R/A/S)."""
    d = vol.direction  # columns: RAS direction of i, j, k
    out = {}
    for row, name in enumerate("RAS"):
        comp = d[row, ::-1]  # per array axis k, j, i
        ax = int(np.argmax(np.abs(comp)))
        out[name] = (ax, 1 if comp[ax] > 0 else -1)
    return out


def grid_obliquity_deg(vol: Volume) -> float:
    """The largest angle (degrees, 0-54.7) between an array axis of ``vol`` and the patient axis
    (R, A or S) nearest it: 0 on a grid stored along the patient's axes (flips and axis
    permutations included), the tilt of an oblique grid otherwise (a reformat, a gantry tilt
    resampled on reading, or a scanner's own oblique reconstruction: `grid_values_origin`)."""
    d = np.abs(np.asarray(vol.direction, float))
    return float(np.degrees(np.arccos(np.clip(d.max(axis=0), -1.0, 1.0))).max())


# DICOM ImageType (0008,0008), PS3.3 C.7.6.1.1.2: value 1 ORIGINAL (pixel values based on original
# or source data) or DERIVED (derived from the pixel values of other images), value 2 PRIMARY
# (created as a direct result of the patient examination) or SECONDARY (created after it); a
# reformat (MPR) is DERIVED\SECONDARY, often with one of these words in value 3 or later
REFORMAT_IMAGE_TYPES = ("REFORMATTED", "MPR", "RESAMPLED", "CURVED", "MIP", "PROJECTION IMAGE")


def grid_values_origin(vol: Volume) -> str:
    """Where the values of ``vol``'s grid come from, by what its reader recorded
    (``vol.meta["read"]``, `imagio.dicom.read_series`): "resampled" when IMAGIO resampled the
    series on reading (a gantry tilt / sheared stack, gaps or uneven slices made regular, linear
    interpolation), "acquired" for a DICOM series whose ImageType says ORIGINAL\\PRIMARY (values of
    the examination itself, not a reformat: ``REFORMAT_IMAGE_TYPES``) read as stored, "unknown"
    otherwise (a derived or secondary series, a NIfTI/NRRD file: nothing says how its grid was
    made). New-user trial 85 L1: an ORIGINAL\\PRIMARY series with an oblique orientation, read
    without resampling, was said to hold interpolated values."""
    read = vol.meta.get("read") or {}
    if read.get("resampled"):
        return "resampled"
    words = [w.strip().upper() for w in str(read.get("image_type") or "").split("\\")]
    if words[:2] == ["ORIGINAL", "PRIMARY"] and not set(words) & set(REFORMAT_IMAGE_TYPES):
        return "acquired"
    return "unknown"


def inplane_spacing_mm(vol: Volume) -> float:
    """The coarser of the two in-plane voxel sizes (mm): the axes other than the superior one."""
    sup = anatomical_axes(vol)["S"][0]
    return float(np.max(np.delete(np.asarray(vol.spacing_kji, float), sup)))


def ras_coordinate(vol: Volume, row: int) -> np.ndarray:
    """World coordinate ``row`` (0=R, 1=A, 2=S, mm) of every voxel, float32 [k, j, i]: the sum of
    three 1-D ramps (no full 3 x N coordinate array). Summed in float64 a slab of planes at a time
    and rounded to float32 per slab: the same values as the sum over the whole volume, without its
    two float64 volume temporaries (350 MiB on the 1.5 mm demo phantom). On a grid where the
    coordinate follows fewer than three array axes (an axial CT: x along i only) it is
    `ras_ramp` broadcast to the grid (a read-only view, no volume in memory: the same values)."""
    ramp = ras_ramp(vol, row)
    if ramp.shape == tuple(vol.shape):
        return ramp
    return np.broadcast_to(ramp, tuple(vol.shape))


def ras_ramp(vol: Volume, row: int) -> np.ndarray:
    """`ras_coordinate` as the smallest float32 array that broadcasts to [k, j, i]: length 1 along
    each array axis that the coordinate does not follow (a zero in ``ijk_to_ras``: on an axial CT
    x follows i only, y j only). The same values: each voxel's float64 sum of the origin and the
    three axis terms, in the same order, rounded to float32 (a zero term adds nothing). Cheaper
    where the caller broadcasts (a corridor about the midline: `bones.split_bones`)."""
    m = vol.ijk_to_ras
    n = [int(v) if m[row, 2 - ax] != 0 else 1 for ax, v in enumerate(vol.shape)]
    nk, nj, ni = n
    rk = (m[row, 2] * np.arange(nk, dtype=np.float32))[:, None, None]
    rj = (m[row, 1] * np.arange(nj, dtype=np.float32))[None, :, None]
    ri = (m[row, 0] * np.arange(ni, dtype=np.float32))[None, None, :]
    out = np.empty((nk, nj, ni), np.float32)
    step = max(1, (1 << 20) // max(nj * ni, 1))
    for a in range(0, nk, step):
        out[a:a + step] = m[row, 3] + rk[a:a + step] + rj + ri
    return out


def mean_ras(vol: Volume, mask: np.ndarray) -> np.ndarray:
    """RAS centroid (mm) of a mask from its per-axis index sums (no coordinate arrays)."""
    n = float(mask.sum())
    if n == 0:
        return np.full(3, np.nan)
    kji = [float((np.arange(mask.shape[ax]) * mask.sum(axis=tuple(i for i in range(3) if i != ax))).sum()) / n
           for ax in range(3)]
    return vol.kji_to_world(np.array([kji]))[0]


def plane_structure(axis: int) -> np.ndarray:
    """3x3x3 connectivity (8-neighbours) within planes normal to array ``axis``."""
    s = np.zeros((3, 3, 3), bool)
    idx = [slice(None)] * 3
    idx[axis] = 1
    s[tuple(idx)] = ndimage.generate_binary_structure(2, 2)
    return s


def fill_holes_per_slice(mask: np.ndarray, axis: int) -> np.ndarray:
    """Fill 2-D holes in every slice normal to ``axis`` (fill_voids per slice; the loop runs
    over slices, each slice is filled in C), within the mask's bounding box."""
    import fill_voids

    out = np.array(mask, dtype=bool, copy=True)
    sl = bbox_slices(mask)
    if sl is None:
        return out
    sub = np.moveaxis(out[sl], axis, 0)  # a view into out
    for n in range(sub.shape[0]):
        if sub[n].any():
            sub[n] = fill_voids.fill(np.ascontiguousarray(sub[n]), in_place=False)
    return out


def fill_holes_3d(mask: np.ndarray) -> np.ndarray:
    import fill_voids

    return fill_voids.fill(np.ascontiguousarray(mask, dtype=bool), in_place=False)


def largest_component(mask: np.ndarray, connectivity: int = 6) -> np.ndarray:
    """The largest ``connectivity``-connected component of ``mask`` (bool, same shape; ties:
    the lowest cc3d label, as ``cc3d.largest_k``). One cc3d labelling and a count by
    ``bincount`` 2**20 voxels at a time (``largest_k`` also computes every label's bounding
    box and centroid: 15-25 % more time on the 1 mm phantom's body, same result)."""
    import cc3d

    if not mask.any():
        return mask.copy()
    cc, n = cc3d.connected_components(np.ascontiguousarray(mask, dtype=bool), connectivity=connectivity,
                                      return_N=True)
    if n <= 1:
        return cc > 0
    cnt = label_counts(cc, n)
    return cc == int(np.argmax(cnt[1:])) + 1


def label_counts(lab: np.ndarray, n: int) -> np.ndarray:
    """Voxel count (int64, length n + 1, indexed by label) of each label 0..n of the label map
    ``lab`` (any unsigned integer type, values <= n): ``np.bincount(lab.ravel(), minlength=n + 1)``
    counted 2**20 voxels at a time, so that the int64 copy that ``bincount`` makes of a uint32
    map is one chunk, not the volume (8 bytes per voxel: 175 MiB on the 1.5 mm demo phantom),
    and about twice as fast on it (0.08 against 0.17 CPU-s per call). Equal counts. With few
    labels (``n`` times the label type's bytes at most 16: up to 4 uint32 labels), each label
    counted by one comparison per chunk and label 0 as the rest: 3-10x faster than ``bincount``
    (whose increments of the same few counters wait on one another; issue 20: the outer skin's
    and the couch search's slab labellings, 1-4 labels a slab on the 1 mm phantom).

    With more labels, a chunk at most half labelled counts only its labelled voxels (their values
    gathered; the background's count is the rest of the chunk): the demo's masks are mostly
    sparse, e.g. the 1.5 mm phantom's voxels above 200 HU (2 % of the volume) are counted in
    0.015 against 0.086 CPU-s (issue 20)."""
    cnt = np.zeros(n + 1, np.int64)
    flat = lab.reshape(-1)
    few = n * flat.dtype.itemsize <= 16
    for a in range(0, flat.size, 1 << 20):
        chunk = flat[a:a + (1 << 20)]
        if few:
            for v in range(1, n + 1):
                cnt[v] += np.count_nonzero(chunk == v)
            continue
        on = chunk != 0
        k = int(np.count_nonzero(on))
        if 2 * k > chunk.size:
            cnt += np.bincount(chunk, minlength=n + 1)[:n + 1]
        elif k:
            cnt += np.bincount(chunk[on], minlength=n + 1)[:n + 1]
            cnt[0] += chunk.size - k
        else:
            cnt[0] += chunk.size
    if few:
        cnt[0] = flat.size - int(cnt[1:].sum())
    return cnt


def components(mask: np.ndarray, connectivity: int = 6):
    """(labels, n, voxel counts indexed by label) of a boolean mask [k, j, i] (cc3d): labels
    has the mask's shape and cc3d's dtype, 0 outside the mask, components numbered 1..n in
    raster (k, j, i) order.

    On a volume of `CROP_MIN_VOXELS` or more whose mask's bounding box (`_mask_box`) is at most
    4/9 of it, cc3d labels and `label_counts` counts the box only, placed into a zero array of
    the full shape: cc3d numbers components in raster order, which a box keeps, so the labels
    are the same voxel for voxel (Testing/test_segmentation_common_speed.py, and the demo's 110
    masks), with the dtype cc3d gives such a volume (uint32: cc3d picks it from the shape and
    the connectivity, uint16 only below a few 10^5 voxels); the background's count adds the
    voxels outside the box. The box's copy, labels and placed labels (9 bytes per box voxel)
    then stay within the whole volume's label map (4 bytes per voxel): never more memory than
    labelling the whole volume. Issue 20: many of the demo's masks (bones, mediastinal pieces,
    lesion regions) fill a fraction of the 1.5 mm volume; their labelling and counts took
    2.6 CPU-s over 110 calls, 2.0 CPU-s with the boxes."""
    import cc3d

    mask = np.ascontiguousarray(mask, dtype=bool)
    box = _mask_box(mask) if CROP_MIN_VOXELS <= mask.size < 2 ** 32 else None
    if box is not None:
        # cc3d 4.1.1 with 26-connectivity fails ("maximum length exception": its label
        # estimate) on boxes with a dimension of one voxel and two or more components, e.g. two
        # voxels apart on one row (a (1, 1, 3) box; the chest CTA cut in front of the spine gave
        # one): such an axis takes one more plane of the mask's zeros, which changes no label
        box = tuple(sl if sl.stop - sl.start > 1 or n_ < 2 else
                    slice(sl.start, sl.stop + 1) if sl.stop < n_ else slice(sl.start - 1, sl.stop)
                    for sl, n_ in zip(box, mask.shape))
        sub_size = int(np.prod([s.stop - s.start for s in box]))
        if 9 * sub_size > 4 * mask.size:
            box = None
    if box is None:
        lab, n = cc3d.connected_components(mask, connectivity=connectivity, return_N=True)
        return lab, n, label_counts(lab, n)
    lab_box, n = cc3d.connected_components(np.ascontiguousarray(mask[box]), connectivity=connectivity,
                                           return_N=True, out_dtype=np.uint32)
    cnt = label_counts(lab_box, n)
    cnt[0] += mask.size - lab_box.size
    lab = np.zeros(mask.shape, np.uint32)
    lab[box] = lab_box
    return lab, n, cnt


CROP_MIN_VOXELS = 1 << 21   # from here on cc3d labels a whole volume as uint32 (any connectivity)


def _mask_box(mask: np.ndarray):
    """Slices of the bounding box of the 3-D bool ``mask`` (C-contiguous), or None if it is
    empty: the planes (k) from one pass over the rows, then the rows (j) and columns (i) from
    those planes only (`bbox_slices` reduces the whole volume three times)."""
    kk = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    if kk.size == 0:
        return None
    slab = mask[kk[0]:kk[-1] + 1]
    rows = slab.any(axis=2)                       # [k, j]
    jj = np.flatnonzero(rows.any(axis=0))
    cols = slab[:, jj[0]:jj[-1] + 1].any(axis=1)  # [k, i]
    ii = np.flatnonzero(cols.any(axis=0))
    return (slice(int(kk[0]), int(kk[-1]) + 1), slice(int(jj[0]), int(jj[-1]) + 1),
            slice(int(ii[0]), int(ii[-1]) + 1))


def convex_hull_2d(mask: np.ndarray) -> np.ndarray:
    """scikit-image's ``convex_hull_image(mask)`` (its defaults) of the 2-D bool ``mask``,
    computed on the mask's bounding box and placed into an array of the mask's shape: a pixel
    outside the box is outside the hull (the hull joins the pixels' edge midpoints, which reach
    half a pixel beyond the box), and the box's integer shift leaves the hull's vertices and
    every pixel's inside/edge test exact, so the pixels are the same as on the whole plane
    (compared on every plane of the demo's hulls). The whole-plane hull tests every pixel of
    the plane against the polygon (``grid_points_in_poly``): most of the cost on wide planes.
    An empty mask gives an empty hull (without scikit-image's warning)."""
    from skimage.morphology import convex_hull_image

    out = np.zeros(mask.shape, bool)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return out
    cols = np.flatnonzero(mask.any(axis=0))
    box = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
    out[box] = convex_hull_image(mask[box])
    return out


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    s = a.sum() + b.sum()
    return float(2.0 * np.logical_and(a, b).sum() / s) if s else 1.0


def hausdorff95(a: np.ndarray, b: np.ndarray, spacing_kji) -> float:
    """95th percentile symmetric surface distance (mm) between two masks."""
    import edt

    if not a.any() or not b.any():
        return float("inf")
    sa = a & ~ndimage.binary_erosion(a)
    sb = b & ~ndimage.binary_erosion(b)
    da = edt.edt(np.ascontiguousarray(~sa), anisotropy=tuple(spacing_kji))
    db = edt.edt(np.ascontiguousarray(~sb), anisotropy=tuple(spacing_kji))
    d = np.concatenate([db[sa], da[sb]])
    return float(np.percentile(d, 95))


# morphology with ball radii in mm through Euclidean distance transforms (edt): exact balls on
# anisotropic grids, a cost independent of the radius, computed on the mask's bounding box ----
def _edt(mask: np.ndarray, spacing_kji, black_border=False) -> np.ndarray:
    import edt

    return edt.edt(np.ascontiguousarray(mask), anisotropy=tuple(float(s) for s in spacing_kji),
                   black_border=black_border, parallel=EDT_THREADS)


EDT_THREADS = 2  # the project's reference machine has 2 cores


def depth_mm(mask: np.ndarray, spacing_kji) -> np.ndarray:
    """Depth (mm, float32 [k, j, i]) of each voxel of ``mask`` (bool) below its surface: the
    distance to the nearest voxel outside it, the array's faces not counting as outside (a
    structure the box cuts is not bounded by the cut). A mask filling the whole array has no
    outside and edt gives +inf: the array's diagonal bounds every depth in it, so depths are
    clipped to it (review 45 H1: a lesion deep in a large organ crashed on inf).

    Computed on the mask's bounding box grown by one voxel per side (within the array), placed
    into zeros of the mask's shape, when that box is at most ``DEPTH_BOX_SHARE`` of the array:
    every voxel outside the mask's box is outside the mask, and the grown box's layer holds,
    for each voxel in the box, a background voxel at least as near along every axis as any
    beyond it, so each voxel's nearest outside voxel (and edt's arithmetic along every row)
    is the same: equal depths, value for value (Testing/test_segmentation_depth_box.py).
    Issue 20: the one-click lesion tool's regions fill a fifth of their boxes on average
    (120 calls per demo, 6 of its 25 CPU-s)."""
    mask = np.asarray(mask)
    diag = float(np.linalg.norm(np.asarray(np.shape(mask)) * np.asarray(spacing_kji, float)))
    box = bbox_slices(mask) if mask.ndim == 3 and mask.size else None
    if box is None or (np.prod([s.stop - s.start for s in box]) > DEPTH_BOX_SHARE * mask.size):
        d = _edt(mask, spacing_kji)
        return np.minimum(d, diag, out=d)
    out = np.zeros(mask.shape, np.float32)
    d = _edt(mask[box], spacing_kji)
    out[box] = np.minimum(d, diag, out=d)
    return out


DEPTH_BOX_SHARE = 0.7   # `depth_mm` on the mask's grown box when it is at most this share of the array


def bbox_slices(mask: np.ndarray, margin_mm: float = 0.0, spacing_kji=(1.0, 1.0, 1.0)):
    """Slices of the bounding box of ``mask`` (3-D, nonzero = inside) grown by ``margin_mm`` and
    one voxel more per side, within the array (None if empty). The box comes from `_mask_box`
    (one pass over the planes, then the box's planes only: 4 against 7 ms on the 1.5 mm demo
    phantom, ~300 calls per demo segmentation, issue 20)."""
    box = _mask_box(np.ascontiguousarray(mask, dtype=bool))
    if box is None:
        return None
    out = []
    for ax, b in enumerate(box):
        m = int(np.ceil(margin_mm / float(spacing_kji[ax]))) + 1
        out.append(slice(max(b.start - m, 0), min(b.stop + m, mask.shape[ax])))
    return tuple(out)


def dilate_voxels(mask: np.ndarray, structure: np.ndarray | None = None, iterations: int = 1) -> np.ndarray:
    """``scipy.ndimage.binary_dilation(mask, structure, iterations)`` (bool [k, j, i]; the
    structure centred, odd-sized and symmetric, as every call here: default the 6-neighbour
    cross; ``iterations`` >= 1), voxel for voxel, computed on the mask's bounding box grown by
    the reach of the dilation (``iterations`` x the structure's half size per axis) instead of
    the whole volume: a voxel farther from every mask voxel than that reach is False either way,
    and inside the grown box the dilation sees the same neighbourhood (the volume's own border,
    where the box reaches it, is outside in both: ``border_value`` 0). A full-volume dilation of
    a small mask (the trachea, the airways) costs 0.1-0.5 CPU-s at 1.5 mm (issue 20)."""
    mask = np.ascontiguousarray(mask, dtype=bool)
    structure = ndimage.generate_binary_structure(mask.ndim, 1) if structure is None else structure
    out = np.zeros(mask.shape, bool)
    reach = [iterations * (n // 2) for n in structure.shape]
    box = _mask_box(mask)
    if box is None:
        return out
    sl = tuple(slice(max(b.start - r, 0), min(b.stop + r, n)) for b, r, n in zip(box, reach, mask.shape))
    out[sl] = ndimage.binary_dilation(mask[sl], structure, iterations=iterations)
    return out


def dilate_mm(mask: np.ndarray, radius_mm: float, spacing_kji) -> np.ndarray:
    """Voxels within ``radius_mm`` (``edt``'s anisotropic Euclidean distance, mm) of ``mask``
    (bool [k, j, i]; ``spacing_kji`` mm per voxel). Computed by `ballmorph.dilate_ball`: the
    same voxels as thresholding an ``edt`` distance map at ``radius_mm``, 7-15x cheaper."""
    from .ballmorph import dilate_ball

    return dilate_ball(mask, radius_mm, spacing_kji)


def erode_mm(mask: np.ndarray, radius_mm: float, spacing_kji) -> np.ndarray:
    """Mask voxels farther than ``radius_mm`` from the background (the image border is not
    background). Computed by `ballmorph.erode_ball` (the same voxels as an ``edt`` threshold)."""
    from .ballmorph import erode_ball

    return erode_ball(mask, radius_mm, spacing_kji)


def open_mm(mask: np.ndarray, radius_mm: float, spacing_kji) -> np.ndarray:
    """Opening by a ball of ``radius_mm``: the union of the balls inside ``mask``."""
    return dilate_mm(erode_mm(mask, radius_mm, spacing_kji), radius_mm, spacing_kji) & mask


def close_mm(mask: np.ndarray, radius_mm: float, spacing_kji) -> np.ndarray:
    """Closing by a ball of ``radius_mm``, added to ``mask``; computed on the bounding box padded
    by the radius, outside of which all is background (nothing sticks to the image border).
    The padded box's dilation never reaches its faces, so `erode_ball` there (whose faces not on
    the image border are background) is the erosion with the outside as background."""
    from .ballmorph import dilate_ball, erode_ball

    sl = bbox_slices(mask, 0.0, spacing_kji)
    if sl is None:
        return mask.copy()
    pad = int(np.ceil(radius_mm / float(np.min(spacing_kji)))) + 1
    m = np.pad(mask[sl], pad)
    c = erode_ball(dilate_ball(m, radius_mm, spacing_kji), radius_mm, spacing_kji)
    out = mask.copy()
    out[sl] |= c[pad:-pad, pad:-pad, pad:-pad]
    return out


def label_medians(a, lab, which, lo=-1100, hi=-390, width=5):
    """Median HU (to ``width`` HU) of each label selected by the boolean ``which`` (O(N),
    via a per-label histogram). The histogram is summed a slab of planes (about 2**20 voxels)
    at a time, so that the selected voxels' labels, values and int64 bin indices are chunks,
    not volumes (the outside air of the 1.5 mm demo phantom is millions of voxels: 8 bytes each
    per temporary); the counts are integers, so the sum is the whole volume's histogram."""
    ids = np.nonzero(which)[0]
    remap = np.zeros(len(which), np.int64)
    remap[ids] = np.arange(len(ids))
    nb = int((hi - lo) // width)
    h = np.zeros(len(ids) * nb, np.int64)
    step = max(1, (1 << 20) // max(int(np.prod(lab.shape[1:])), 1))
    for z in range(0, lab.shape[0], step):
        lz = lab[z:z + step]
        sel = which[lz]
        if not sel.any():
            continue
        vals = np.clip(a[z:z + step][sel], lo, hi - 1)
        b = ((vals - lo) // width).astype(np.int64)
        h += np.bincount(remap[lz[sel]] * nb + b, minlength=len(ids) * nb)
    h = h.reshape(len(ids), nb)
    c = np.cumsum(h, axis=1)
    med_bin = np.argmax(c >= (c[:, -1:] + 1) // 2, axis=1)
    return lo + (med_bin + 0.5) * width


def core_medians(a, lab, which, spacing_kji, depth_mm: float | None = None,
                 min_core_ml: float | None = None):
    """Median HU of each label of ``lab`` selected by the boolean ``which`` (as
    `label_medians`), taken over the label's core: its voxels deeper than ``depth_mm``
    (default rule ``gas_core_depth_mm``) from the nearest voxel outside ``lab > 0`` (the image
    border is not an edge: a lung cut by the field of view keeps its cut face). The edge layer
    mixes air with the wall by partial volume, more so on a grid finer than the scan's own
    resolution (interpolation averages every sample there); the core does not, so gas stays
    gas and parenchyma stays parenchyma on any grid. A label whose core holds less than
    ``min_core_ml`` (rule ``min_gas_core_ml``; thin pockets) is judged on all its voxels.

    a, lab: [k, j, i] HU and labels (0 = background); spacing_kji: mm. Returns float (n,) for
    the n selected labels, in label order."""
    import edt

    depth = rule("gas_core_depth_mm") if depth_mm is None else float(depth_mm)
    min_ml = rule("min_gas_core_ml") if min_core_ml is None else float(min_core_ml)
    med = label_medians(a, lab, which)
    sel = which[lab]
    sl = bbox_slices(sel, depth, spacing_kji)   # the margin keeps every edge within ``depth`` in view:
    if sl is None:                             # a crop face is not an edge, only the image's face is
        return med
    inside = lab[sl] > 0
    dist = edt.edt(np.ascontiguousarray(inside), anisotropy=tuple(float(s) for s in spacing_kji),
                   black_border=False, parallel=EDT_THREADS)
    core_lab = np.where(sel[sl] & (dist > depth), lab[sl], 0)
    voxel_ml = float(np.prod(spacing_kji)) / 1000.0
    ids = np.flatnonzero(which)
    n_core = np.bincount(core_lab.ravel(), minlength=len(which))[ids]
    ok = n_core * voxel_ml >= min_ml
    if ok.any():
        core_which = np.zeros(len(which), bool)
        core_which[ids[ok]] = True
        med[ok] = label_medians(a[sl], core_lab, core_which)
    return med


def field_of_view_crops(vol: Volume, anteroposterior: bool = False) -> dict:
    """{name: (k, j, i) slices} of the standard field-of-view crops used to check the
    segmenters on cut anatomy (tests and benchmarks): each half along the left-right axis
    (``right_half`` holds the patient's right), the middle half along the superior axis
    (``half_z``) and the central two thirds in-plane (``small_fov``); with ``anteroposterior``
    also each half along the antero-posterior axis (``anterior_half`` holds the front; a view
    cut in front of or behind the spine). Any grid orientation."""
    ax = anatomical_axes(vol)
    full = [slice(None)] * 3
    out = {}
    for letter, names in (("R", ("right_half", "left_half")),) + (
            (("A", ("anterior_half", "posterior_half")),) if anteroposterior else ()):
        a, sign = ax[letter]
        n = vol.shape[a]
        hi_half, lo_half = slice(n // 2, n), slice(0, n // 2)
        for name, half in zip(names, (hi_half, lo_half) if sign > 0 else (lo_half, hi_half)):
            sl = list(full)
            sl[a] = half
            out[name] = tuple(sl)
    s_ax = ax["S"][0]
    sl = list(full)
    sl[s_ax] = slice(vol.shape[s_ax] // 4, vol.shape[s_ax] // 4 + vol.shape[s_ax] // 2)
    out["half_z"] = tuple(sl)
    sl = list(full)
    for a in range(3):
        if a != s_ax:
            sl[a] = slice(vol.shape[a] // 6, vol.shape[a] - vol.shape[a] // 6)
    out["small_fov"] = tuple(sl)
    return out


def x_range_slices(vol: Volume, x_min: float = -np.inf, x_max: float = np.inf) -> tuple:
    """(k, j, i) slices keeping the planes along the array axis nearest to left-right whose
    RAS x (mm, at the plane's first voxel) lies in [x_min, x_max]: a sagittal crop of the field
    of view (tests and benchmarks: a hemithorax that keeps a band past the midline). Raises
    ValueError when no plane is in the range."""
    lr = anatomical_axes(vol)["R"][0]
    x = np.moveaxis(ras_coordinate(vol, 0), lr, 0)[:, 0, 0]
    idx = np.flatnonzero((x >= x_min) & (x <= x_max))
    if idx.size == 0:
        raise ValueError(f"no plane with RAS x in [{x_min}, {x_max}] mm")
    sl = [slice(None)] * 3
    sl[lr] = slice(int(idx[0]), int(idx[-1]) + 1)
    return tuple(sl)


def crop_slices(vol: Volume, sl) -> Volume:
    """``vol`` cropped to the (k, j, i) slices ``sl`` (world position kept)."""
    return vol.crop([s.indices(n)[0] for s, n in zip(sl, vol.shape)],
                    [s.indices(n)[1] for s, n in zip(sl, vol.shape)])


def close_faces(mask: np.ndarray, axes, spacing_kji, max_gap_mm: float) -> np.ndarray:
    """``mask`` with the gaps of at most ``max_gap_mm`` closed on the faces of the volume
    normal to each array axis in ``axes``: along each such face (a 2-D image), runs of
    background between mask pixels, along either in-face axis, no longer than ``max_gap_mm``
    become mask. Where the field of view cuts through an object (a trachea, a vertebral body)
    its inside is open to that face; closing the face makes it a hole that a hole filling
    finds. Only the face layers change. Bool [k, j, i]."""
    out = mask.copy()
    for ax in axes:
        others = [a for a in range(3) if a != ax]
        for end in (0, mask.shape[ax] - 1):
            idx = [slice(None)] * 3
            idx[ax] = end
            face = mask[tuple(idx)]  # 2-D, axes = others in order
            if not face.any():
                continue
            closed = face.copy()
            for d, oa in enumerate(others):
                n = int(np.floor(max_gap_mm / float(spacing_kji[oa])))
                if n < 1:
                    continue
                shape = [1, 1]
                shape[d] = n + 1
                closed |= ndimage.binary_closing(face, structure=np.ones(shape, bool))
            out[tuple(idx)] = closed
    return out


def measured_box(ct: Volume) -> tuple | None:
    """(k, j, i) slices of ``ct``'s array without the padded slabs on its faces
    (`imagio.padding.padded_slabs`: whole slices of one value at or below air), None when no
    face is padded. The rules segment that box, whose faces are then the end of the scan (a
    padded slice is not tissue, nor air around the patient)."""
    from ..padding import padded_slabs

    slabs = padded_slabs(ct.array)
    if not slabs.any():
        return None
    return tuple(slice(int(lo), int(n - hi)) for (lo, hi), n in zip(slabs, ct.shape))


def padding_note(ct: Volume, box: tuple) -> str:
    """One line naming the padded slabs that `measured_box` left out (their count per face of
    the patient, their value)."""
    ax = anatomical_axes(ct)
    side = {}
    for letter, (pos, neg) in (("R", ("right", "left")), ("A", ("anterior", "posterior")),
                               ("S", ("superior", "inferior"))):
        a, sign = ax[letter]
        side[(a, 1)], side[(a, 0)] = (pos, neg) if sign > 0 else (neg, pos)
    faces, values = [], set()
    for a, s in enumerate(box):
        for end, n in ((0, s.start), (1, ct.shape[a] - s.stop)):
            if n:
                faces.append(f"{n} at the {side[(a, end)]} face")
                values.add(float(np.take(ct.array, 0 if end == 0 else -1, axis=a).flat[0]))
    vals = ", ".join(f"{v:g}" for v in sorted(values))
    from ..limits import AIR_HU as air

    read = ct.meta.get("padding_values")
    if read and values == {float(air)}:   # the file's padding value, not the air it was set to (trial 52)
        vals = (f"{', '.join(f'{v:g}' for v in read[:4])}{' ...' if len(read) > 4 else ''} in the file, "
                f"set to air, {air:g}")
    return (f"padding: whole slices of one value ({vals} HU) that no scan measures ({'; '.join(faces)}) "
            "are taken as outside the scan, like the edge of the volume; nothing is labelled there")


def embed(mask: np.ndarray, shape, box: tuple) -> np.ndarray:
    """``mask`` (on the box ``box`` of an array of ``shape``) placed in a new array of ``shape``,
    zero outside the box."""
    out = np.zeros(shape, mask.dtype)
    out[box] = mask
    return out


def scan_circle_padding(ct: Volume) -> np.ndarray | None:
    """Bool [k, j, i]: the padding outside the CT's reconstruction circle
    (`imagio.padding.scan_circle_fill`), None when there is none. Outside the scan, like the
    volume's edge: no air of the patient or around the patient."""
    from ..padding import scan_circle_fill

    m, c = scan_circle_fill(ct.array, ct.spacing_kji)
    return None if c is None else m


def volume_text(voxels: int, voxel_ml: float) -> str:
    """A volume for a message: "1.2 mL" (one decimal), or, where that would read "0.0 mL",
    the voxel count with the volume in three decimals ("3 voxels (0.015 mL)"): a warning about
    a few voxels says what it is about, not nothing (new-user trial 79, LOW 8)."""
    ml = voxels * voxel_ml
    if ml >= 0.05:
        return f"{ml:.1f} mL"
    return f"{voxels} voxel{'' if voxels == 1 else 's'} ({ml:.3f} mL)"
