"""The fill region of an image: a solid region of one exact value connected to the array's
border, as a scanner writes outside its reconstruction circle (DICOM Pixel Padding Value) or a
resampler writes outside its source (SimpleITK ``Resample``'s default value, Slicer's and
scipy's ``cval``). Measured data is noisy (quantum noise of a few HU in air), so an exact
constant over a region that survives a morphological opening and reaches the border is not
measured. Used by the reader (`imagio.io`: values below padding level bordering a fill region
are padding, not wrap-around) and the planner's data region (`planning.skin.padding_mask`,
which adds the test that the air next to it is noisy).

Arrays [k, j, i]; no Python loop over voxels.
"""

from __future__ import annotations

import numpy as np


def border_faces(a: np.ndarray) -> np.ndarray:
    """The six faces of the 3-D array ``a``, flattened into one 1-D array (edges repeated)."""
    return np.concatenate([f.ravel() for f in (a[0], a[-1], a[:, 0], a[:, -1], a[:, :, 0], a[:, :, -1])])


def border_fill(a: np.ndarray, min_voxels: int = 64, min_border_fraction: float = 0.05
                ) -> tuple[np.ndarray, float | None]:
    """The solid region (surviving a 6-connected opening) of the single most frequent exact
    value on the array border, restricted to its 6-connected components that touch the border
    and hold >= ``min_voxels`` voxels, when that value fills >= ``min_border_fraction`` of the
    border. Returns (mask bool [k, j, i], the value or None when there is no such region)."""
    from .morph6 import dilate6, erode6

    a = np.asarray(a)
    empty = np.zeros(a.shape, bool)
    border = border_faces(a)
    if a.dtype.kind == "f":
        border = border[np.isfinite(border)]
    vals, cnt = np.unique(border, return_counts=True)
    if not len(vals) or cnt.max() < min_border_fraction * border_faces(a).size:
        return empty, None
    c = vals[np.argmax(cnt)]
    eq = a == c
    m = dilate6(erode6(eq, border=True)) & eq
    if m.sum() < min_voxels:
        return empty, None
    import cc3d

    lab = cc3d.connected_components(m, connectivity=6)
    edge = np.unique(border_faces(lab))
    edge = edge[edge > 0]
    sizes = np.bincount(lab.ravel())
    keep = edge[sizes[edge] >= min_voxels]
    if not len(keep):
        return empty, None
    return np.isin(lab, keep), float(c)


def padded_slabs(a: np.ndarray, air_hu: float | None = None) -> np.ndarray:
    """Int (3, 2): for each array axis, the number of whole slices at its low and high end that
    hold padding, not measured data: every voxel of the slice one exact value at or below air
    (``air_hu``, default `limits.AIR_HU`, -1000 HU by the definition of the Hounsfield scale).
    A scanner or converter writes such slices (DICOM Pixel Padding Value, a reformat's or
    resampler's default -1024, -2048 or -3024, which `io.read_image` sets to air); a measured
    slice is never one value, inside the patient or in the air around it (quantum noise of a
    few HU; the real cases here hold one value on 0.1-0.5 % of their voxels). New-user trial 33
    (M1): one -1024 slice above the TotalSegmentator example, whose lungs reach its top face,
    took the top slice of lung away (-25 %): the slab made a face of tissue where the scan had
    its end. All zeros when no face is padded or when every slice along an axis would be."""
    from .limits import AIR_HU

    a = np.asarray(a)
    air = AIR_HU if air_hu is None else air_hu
    out = np.zeros((3, 2), np.int64)
    for ax in range(3):
        n = a.shape[ax]
        if n < 2:
            continue
        if not any(_constant_air(np.take(a, end, axis=ax), air) for end in (0, n - 1)):
            continue
        other = tuple(x for x in range(3) if x != ax)
        lo, hi = a.min(axis=other), a.max(axis=other)
        pad = (lo == hi) & (lo <= air)
        if pad.all():
            continue
        out[ax, 0] = int(np.argmin(pad))
        out[ax, 1] = int(np.argmin(pad[::-1]))
    return out


def _constant_air(s: np.ndarray, air: float) -> bool:
    """Whether the slice ``s`` holds one value, at or below ``air``."""
    v = s.flat[0]
    return bool(v <= air and np.all(s == v))
