"""The field of view: which voxels of a CT hold measured data and which are padding.

The fill region of an image is a solid region of one exact value connected to the array's
border, as a scanner writes outside its reconstruction circle (DICOM Pixel Padding Value) or a
resampler writes outside its source (SimpleITK ``Resample``'s default value, Slicer's and
scipy's ``cval``). Measured data is noisy (quantum noise of a few HU in air), so an exact
constant over a region that survives a morphological opening and reaches the border is not
measured. Used by the reader (`imagio.io`: values below padding level bordering a fill region
are padding, not wrap-around), by the planner (`planning.skin`: the data region, `data_mask`)
and by the segmenters (`segmentation.body.measured_voxels` and `padding_voxels`,
`segmentation.common.scan_circle_padding`), which all take it from here: the planner and the
segmenters depend on this module, never on each other for it.

Within `keep_fill_regions` (one rule-based segmentation: `segmentation.rules.segment_masks`)
`padding_mask` and `scan_circle_fill` are computed once per CT array.

Arrays [k, j, i]; no Python loop over voxels.
"""

from __future__ import annotations

import contextlib

import numpy as np

from .caching import ThreadKept
from .volume import Volume

NOISY_AIR_HU = (-1200.0, -900.0)   # `padding_mask`: measured air around a patient lies here


def border_faces(a: np.ndarray) -> np.ndarray:
    """The six faces of the 3-D array ``a``, flattened into one 1-D array (edges repeated)."""
    return np.concatenate([f.ravel() for f in (a[0], a[-1], a[:, 0], a[:, -1], a[:, :, 0], a[:, :, -1])])


def border_fill(a: np.ndarray, min_voxels: int = 64, min_border_fraction: float = 0.05,
                above: float | None = None) -> tuple[np.ndarray, float | None]:
    """The solid region (surviving a 6-connected opening) of the single most frequent exact
    value on the array border, restricted to its 6-connected components that touch the border
    and hold >= ``min_voxels`` voxels, when that value fills >= ``min_border_fraction`` of the
    border (and, when ``above`` is given, is above it). Returns (mask bool [k, j, i], the value
    or None when there is no such region)."""
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
    if above is not None and not c > above:
        return empty, None
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


def scan_circle_fill(a: np.ndarray, spacing_kji=(1.0, 1.0, 1.0), min_voxels: int = 64
                     ) -> tuple[np.ndarray, float | None]:
    """The padding outside a CT's reconstruction circle: the fill region (`border_fill`) of a
    value at or below air (`limits.AIR_HU`) whose footprint is the same in every slice along an
    array axis and lies outside one circle in that plane (in mm; the circle may be cut by the
    array's edges). A CT reconstructs the disc its detector fan covers (the scan field of view;
    DICOM Reconstruction Diameter (0018,1100)) and writes a padding value beyond it (Pixel
    Padding Value); the air around a patient, even clipped to one value, follows the patient's
    outline, which changes from slice to slice (voxels of the value beside the circle that are
    not in every slice are left out). Returns (mask bool [k, j, i], the value or None).
    `padding_mask` tells padding by the noisy air next to it; next to a small field of view's
    circle lies lung or tissue, not air."""
    a = np.asarray(a)
    return _kept(("scan_circle_fill", a, tuple(float(x) for x in spacing_kji), min_voxels),
                 lambda: _scan_circle_fill(a, spacing_kji, min_voxels))


def _scan_circle_fill(a: np.ndarray, spacing_kji, min_voxels: int) -> tuple[np.ndarray, float | None]:
    """`scan_circle_fill` without its keeping."""
    from .limits import AIR_HU

    empty = np.zeros(a.shape, bool)
    m, c = border_fill(a, min_voxels)
    if c is None or c > AIR_HU:
        return empty, None
    sk = np.asarray(spacing_kji, float)
    for ax in range(3):
        # most of the region in every slice (measured air clipped to the same value may join it
        # beside the circle: lung1 and lung2 are clipped at -1024 HU)
        foot = m.all(axis=ax)
        if foot.sum() < min_voxels or foot.sum() * a.shape[ax] < 0.9 * m.sum():
            continue
        plane = [x for x in range(3) if x != ax]
        beyond = _outside_circle(foot, sk[plane])
        if beyond is not None:
            shape = [1, 1, 1]
            shape[plane[0]], shape[plane[1]] = foot.shape
            return np.broadcast_to(beyond.reshape(shape), a.shape) & (a == c), float(c)
    return empty, None


def _outside_circle(foot: np.ndarray, sp: np.ndarray) -> np.ndarray | None:
    """When the 2-D mask ``foot`` (pixel spacing ``sp``, mm) is the part of its image outside
    one circle, to within a pixel (an axis-aligned ellipse: a circle, or a converter's circle
    stretched to a non-square grid, fitted by least squares to the measured pixels along its
    edge, Fitzgibbon 1999, the axis-aligned case; every pixel farther out padding, every pixel
    farther in measured): the pixels beyond the circle's inner tolerance (bool 2-D; the
    opening in `border_fill` shaves the padding's tips and corners), else None."""
    inside = ~foot
    edge = inside & ~_erode4(inside)
    # the image's own border is not the circle's edge
    edge[[0, -1], :] = False
    edge[:, [0, -1]] = False
    if edge.sum() < 16 or not inside.any():
        return None
    r, c = np.nonzero(edge)
    y, x = r * sp[0], c * sp[1]
    # x^2 + p y^2 + q x + t y + u = 0
    sol, *_ = np.linalg.lstsq(np.c_[y ** 2, x, y, np.ones_like(x)], -x ** 2, rcond=None)
    p, q, t, u = sol
    if p <= 0:
        return None
    cx, cy = -q / 2, -t / (2 * p)
    a2 = cx ** 2 + p * cy ** 2 - u
    if a2 <= 0:
        return None
    ax, by = float(np.sqrt(a2)), float(np.sqrt(a2 / p))
    tol = float(np.hypot(*sp)) / min(ax, by)
    rr, cc = np.indices(foot.shape)
    rho = np.hypot((cc * sp[1] - cx) / ax, (rr * sp[0] - cy) / by)
    if foot[rho < 1 - tol].any() or not foot[rho > 1 + tol].all():
        return None
    return rho >= 1 - tol


def _erode4(m: np.ndarray) -> np.ndarray:
    """2-D erosion by the 4-neighbourhood, the image's outside counted as set."""
    p = np.pad(m, 1, constant_values=True)
    return p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]


def padding_mask(ct: Volume, min_voxels: int = 64) -> tuple[np.ndarray, float | None]:
    """Voxels of ``ct`` outside the measured data: the fill region (`border_fill`:
    solid regions of the single most frequent exact value on the array border, connected to
    the border, when that value fills >= 5 % of the border) when the air next to it is noisy.
    Returns (mask bool [k, j, i], the fill value or None)."""
    return _kept(("padding_mask", ct.array, min_voxels), lambda: _padding_mask(ct.array, min_voxels))


def _padding_mask(a: np.ndarray, min_voxels: int) -> tuple[np.ndarray, float | None]:
    """`padding_mask` of the CT array ``a``, without its keeping."""
    from .morph6 import dilate6

    m, c = border_fill(a, min_voxels)
    if c is None:
        return m, None
    # a clipped CT whose air is one value is not padded: padding borders on noisy measured air
    ring = fill_ring(m)
    rv = a[ring]
    noisy = ((rv > NOISY_AIR_HU[0]) & (rv < NOISY_AIR_HU[1]) & (rv != c)).mean() if rv.size else 0.0
    if float(c) >= NOISY_AIR_HU[1] or float(c) <= NOISY_AIR_HU[0] or noisy > 0.3:
        return m, float(c)
    if _fill_of_a_reformat(m, ring, rv, c):
        return m, float(c)
    return np.zeros(a.shape, bool), None


def fill_ring(m: np.ndarray) -> np.ndarray:
    """Bool [k, j, i]: the two 6-connected voxel layers around the fill region ``m`` (bool
    [k, j, i]), where the data beside a fill is read (`noisy_beside`)."""
    from .morph6 import dilate6

    return dilate6(dilate6(m)) & ~m


def noisy_beside(rv: np.ndarray, c) -> bool:
    """Whether the values ``rv`` (1-D, HU) of the voxels beside a region of the exact value ``c``
    are measured data: noisy, their most frequent exact value (other than ``c``) under half of
    them (quantum noise: a measured region is never one value; the air or tissue of a synthetic
    or clipped image is)."""
    rv = rv[rv != c]
    if rv.size < 2:
        return False
    _, cnt = np.unique(rv, return_counts=True)
    return bool(cnt.max() < 0.5 * rv.size)


def _fill_of_a_reformat(m: np.ndarray, ring: np.ndarray, rv: np.ndarray, c, chords: int = 4000,
                        seed: int = 0) -> bool:
    """Whether the fill region ``m`` (bool [k, j, i], the value ``c``) that borders no noisy air
    is still a resampler's fill: a reformat of a field of view that ends inside the patient (a
    crop, a small reconstruction, then tilted) meets the tissue or lung cut there, not the air
    around the patient, so the noisy-air test of `padding_mask` misses it (lung2 cropped to
    120 mm and tilted 20 degrees: 3 % of the ring noisy air; the cut lung joined the fill, its
    median read as gas and its mass became "soft tissue" at 26 of 40 mL, without a warning).
    Both must hold, by the physics and the geometry of a resampled image:

    - the data beside it is measured: noisy (quantum noise), its most frequent exact value
      under half of the ring ``ring`` (values ``rv``); the air of a synthetic or clipped image
      (one exact value) borders equally exact tissue;
    - the data region is convex: a resampler fills the part of its grid outside the source's
      box (or reconstruction cylinder), so the data is the intersection of convex sets and no
      straight segment between two data voxels beside the fill crosses the fill's interior
      (``m`` eroded by two voxels: a digitised oblique face is not exact); the air around a
      patient fills the concavities of the body's outline (neck and shoulders, arms, the
      waist, the back's groove), which such segments cross. ``chords`` random segments (a
      fixed ``seed``: the same answer every time) between ring voxels, 17 points each; at most
      0.5 % may cross."""
    from .morph6 import erode6

    if not noisy_beside(rv, c):
        return False
    deep = erode6(erode6(m))
    if not deep.any():
        return False
    pts = np.argwhere(ring)
    rng = np.random.default_rng(seed)
    ends = pts[rng.integers(0, len(pts), (2, chords))]
    t = np.linspace(0.0, 1.0, 17)[:, None, None]
    along = np.rint(ends[0][None] + t * (ends[1] - ends[0])[None]).astype(np.intp)
    crossed = deep[along[..., 0], along[..., 1], along[..., 2]].any(axis=0)
    return bool(crossed.mean() <= 0.005)


def data_mask(ct: Volume, rim_voxels: int = 2, keep_outer_layer: bool = False) -> tuple[np.ndarray, float | None]:
    """Voxels holding measured data: not padding (`padding_mask`), not within ``rim_voxels`` of
    it (an interpolating resampler blends the fill value into the voxels next to the padding)
    and, unless ``keep_outer_layer``, not on the outer voxel layer of the array (a resampled
    grid that overhangs the original blends its last slice with the fill value: a thin 'air'
    layer over the whole cut face that would open internal air to the outside; the lesion tool
    keeps that layer: a lesion at the image's face keeps its lung there)."""
    from .morph6 import dilate6

    pad, c = padding_mask(ct)
    if c is not None:
        pad = _kept(("with_thin_fill", ct.array, c), lambda: (with_thin_fill(ct.array, pad, c), c))[0]
    if c is not None and rim_voxels > 0:
        for _ in range(rim_voxels):
            pad = dilate6(pad)
    data = ~pad
    for ax in range(3 if not keep_outer_layer else 0):
        if ct.shape[ax] > 4:
            sl = [slice(None)] * 3
            sl[ax] = [0, -1]
            data[tuple(sl)] = False
    return data, c


def with_thin_fill(a: np.ndarray, pad: np.ndarray, c: float) -> np.ndarray:
    """``pad`` (bool [k, j, i], the solid fill region of value ``c`` that `padding_mask` found in
    the array ``a``) with the voxels on the array's outer layer of the 6-connected regions of
    exactly ``c`` that it touches:
    where a tilted face of the source's field of view meets a face of the array, the fill is a
    wedge one or two voxels thick that the opening of `border_fill` takes off, while measured data
    is never one exact value over a region (quantum noise). New-user trial 79 (M4): the chest CTA
    tilted 20 and 15 degrees at 3 mm: 350 fill voxels on each axial face were taken for outside
    air beside the spine, and the whole 668 mL skeleton was said to reach the skin."""
    import cc3d

    lab = cc3d.connected_components(a == c, connectivity=6)
    keep = np.unique(lab[pad])
    keep = keep[keep > 0]
    if not len(keep):
        return pad
    # on the array's outer layer only, where the wedge meets the array's face: elsewhere a clipped
    # air of the same value (STS_010's air between the legs, exactly -1000) stays as it was
    out = pad.copy()
    for ax in range(3):
        for end in (0, a.shape[ax] - 1):
            idx = [slice(None)] * 3
            idx[ax] = end
            out[tuple(idx)] |= np.isin(lab[tuple(idx)], keep)
    return out


_KEPT = ThreadKept(dict)   # `keep_fill_regions`: per thread, its results while in the context


@contextlib.contextmanager
def keep_fill_regions():
    """Context in which `padding_mask` and `scan_circle_fill` keep each result they compute (per
    thread) and return it again (a copy of the mask) for the same array object with the same
    arguments (`caching.array_token`: the values are not read; do not modify a CT's array in
    place meanwhile). Everything kept is dropped when the outermost context exits, so nothing is
    held after it. Nestable. One rule-based segmentation (`segmentation.rules.segment_masks`)
    asks for the padding of its one CT from the body, the lungs, the airways and the bones
    (`segmentation.body.measured_voxels`, `padding_voxels`, `common.scan_circle_padding`)."""
    with _KEPT.keep():
        yield


def _kept(key: tuple, compute) -> tuple[np.ndarray, float | None]:
    """``compute()`` (a (mask, value) pair), kept within `keep_fill_regions` under ``key``
    (name, array, arguments...; the array is keyed by `caching.array_token`)."""
    kept = _KEPT.entries
    if kept is None:
        return compute()
    from .caching import array_token

    k = (key[0], array_token(key[1])) + key[2:]
    hit = kept.get(k)
    if hit is None:
        m, c = compute()
        m.setflags(write=False)
        hit = kept[k] = (m, c)
    return hit[0].copy(), hit[1]
