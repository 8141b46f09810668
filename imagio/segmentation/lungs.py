"""Lungs: left and right, airways excluded, and the pleural surface.

Air-like voxels (< -400 HU) inside the body, minus the segmented airways; components that are
lung-like (parenchyma with vessels: median above -990 HU, not a uniform gas pocket, and large
enough) are kept; vessels are brought back by a small closing and per-slice hole filling.
Left/right: by the side of each component's centre; a single component (lungs touching at
the anterior or posterior junction) is split by eroding it until two large parts appear and
giving every voxel to the nearer part (a marker-based split along the thinnest junction).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..volume import Volume
from .common import (LUNG_HU, anatomical_axes, as_progress, check_ct, close_mm, components,
                     dilate_mm, fill_holes_per_slice, ras_coordinate)

MIN_LUNG_ML = 5.0  # smaller air pockets are not a lung (a lung base in a abdominal CT is more)
GAS_MEDIAN_HU = -950.0  # bowel/stomach gas is nearly pure air (median < -960 HU); parenchyma
# is denser (median ~ -850..-750 HU; ~ -900 in severe emphysema)


def lung_mask(ct: Volume, body: np.ndarray, airways: np.ndarray | None = None,
              progress=None) -> np.ndarray:
    """Boolean [k, j, i] mask of both lungs (vessels inside included, airways excluded)."""
    p = as_progress(progress)
    a = check_ct(ct)
    p(0.0, "lungs: threshold")
    air = (a < LUNG_HU) & body
    if airways is not None:
        air &= ~dilate_mm(airways, 1.5, ct.spacing_kji)
    lab, n, counts = components(air, connectivity=6)
    if n == 0:
        raise InputError("no lungs found: no air-like region (< -400 HU) inside the body")
    vol = counts * ct.voxel_volume_ml
    keep = vol >= max(MIN_LUNG_ML, 0.05 * vol[1:].max())
    keep[0] = False
    keep[keep] = _label_medians(a, lab, keep) > GAS_MEDIAN_HU
    if not keep.any():
        raise InputError("no lungs found: the air regions inside the body look like bowel gas")
    m = keep[lab]
    p(0.5, "lungs: vessels and holes")
    sup = anatomical_axes(ct)["S"][0]
    m = close_mm(m, 2.0, ct.spacing_kji)
    m = fill_holes_per_slice(m, sup)
    if airways is not None:
        m &= ~airways
    p(1.0, "lungs: done")
    return m


def _nearest_marker(markers: np.ndarray, sk, max_voxels: int = 2_000_000) -> np.ndarray:
    """Label of the nearest non-zero marker for every voxel (feature transform); on large
    boxes computed on a 2x subsampled grid and read back per voxel (the split surface moves
    by at most one coarse voxel)."""
    f = 1
    while markers.size / f ** 3 > max_voxels:
        f += 1
    coarse = markers[::f, ::f, ::f]
    if not coarse.any():
        coarse = markers
        f = 1
    _, ind = ndimage.distance_transform_edt(coarse == 0, sampling=np.asarray(sk) * f,
                                            return_indices=True)
    near = coarse[tuple(ind)]
    if f == 1:
        return near
    k, j, i = (np.minimum(np.arange(n) // f, near.shape[a] - 1) for a, n in enumerate(markers.shape))
    return near[np.ix_(k, j, i)]


def _edt_border(m, sk):
    import edt

    return edt.edt(np.ascontiguousarray(m), anisotropy=tuple(float(s) for s in sk), black_border=True)


def _label_medians(a, lab, which, lo=-1100, hi=-390, width=5):
    """Median HU (to ``width`` HU) of each label selected by the boolean ``which`` (O(N),
    via a per-label histogram)."""
    sel = which[lab]
    labs = lab[sel]
    vals = np.clip(a[sel], lo, hi - 1)
    ids = np.nonzero(which)[0]
    remap = np.zeros(len(which), np.int64)
    remap[ids] = np.arange(len(ids))
    nb = int((hi - lo) // width)
    b = ((vals - lo) // width).astype(np.int64)
    h = np.bincount(remap[labs] * nb + b, minlength=len(ids) * nb).reshape(len(ids), nb)
    c = np.cumsum(h, axis=1)
    med_bin = np.argmax(c >= (c[:, -1:] + 1) // 2, axis=1)
    return lo + (med_bin + 0.5) * width


def split_left_right(ct: Volume, lungs: np.ndarray, max_erosions: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) lung masks. Patient's right is +x in RAS."""
    x = ras_coordinate(ct, 0)
    lab, n, counts = components(lungs, connectivity=6)
    if n == 0:
        raise InputError("the lung mask is empty")
    counts[0] = 0
    order = np.argsort(counts)[::-1]
    big = [int(i) for i in order[:2] if counts[i] > 0]
    two = len(big) == 2 and counts[big[1]] >= 0.15 * counts[big[0]]
    if not two:
        # one component: find two parts by erosion, then split by nearest part
        main = lab == big[0]
        lo, hi = ct.bounding_box(main, margin=1)
        sub = main[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        depth = _edt_border(sub, ct.spacing_kji)
        step = float(np.min(ct.spacing_kji))
        markers = None
        for i in range(1, max_erosions + 1):
            er = depth > i * step
            el, en, ec = components(er, connectivity=6)
            if en >= 2:
                ec[0] = 0
                o = np.argsort(ec)[::-1]
                if ec[o[1]] >= 0.15 * ec[o[0]]:
                    markers = np.where(el == o[0], 1, 0) + np.where(el == o[1], 2, 0)
                    break
            if en == 0:
                break
        if markers is None:
            # no junction found: cut at the body midline
            xs = x[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
            mid = float(np.median(xs[sub]))
            markers = np.where(sub & (xs <= mid), 1, 0) + np.where(sub & (xs > mid), 2, 0)
        near = _nearest_marker(markers, ct.spacing_kji)
        part = np.zeros(lungs.shape, np.uint8)
        part[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = np.where(sub, near, 0)
        # other (small) components go to the nearer side later
        lab = np.where(main, 0, lab)
        a_mask, b_mask = part == 1, part == 2
    else:
        a_mask, b_mask = lab == big[0], lab == big[1]
        lab = np.where(a_mask | b_mask, 0, lab)
    xa, xb = float(x[a_mask].mean()), float(x[b_mask].mean())
    right, left = (a_mask, b_mask) if xa > xb else (b_mask, a_mask)
    # remaining small lung pieces: side of the midline between the two lungs
    rest = lab > 0
    if rest.any():
        mid = 0.5 * (xa + xb)
        right = right | (rest & (x > mid))
        left = left | (rest & (x <= mid))
    return left, right


def pleural_surface(lungs: np.ndarray) -> np.ndarray:
    """One-voxel shell of the lungs (the visceral pleura at CT resolution)."""
    return lungs & ~ndimage.binary_erosion(lungs)
