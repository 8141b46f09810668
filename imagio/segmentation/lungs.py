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
from .common import (LUNG_HU, anatomical_axes, as_progress, bbox_slices, check_ct, close_mm,
                     components, dilate_mm, fill_holes_per_slice, mean_ras, ras_coordinate)

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
    """(left, right) lung masks. Patient's right is +x in RAS.

    Two large components: one per side. One component (lungs touching at a junction): eroded
    step by step (one distance transform, thresholded) until two large parts appear; every
    voxel then goes to the nearer part. The search runs on a grid coarsened to <= 2 M voxels.
    """
    lab, n, counts = components(lungs, connectivity=6)
    if n == 0:
        raise InputError("the lung mask is empty")
    counts[0] = 0
    order = np.argsort(counts)[::-1]
    big = [int(i) for i in order[:2] if counts[i] > 0]
    two = len(big) == 2 and counts[big[1]] >= 0.15 * counts[big[0]]
    if not two:
        main = lab == big[0]
        box = bbox_slices(main)
        sub = main[box]
        f = 1
        while sub.size / f ** 3 > 2_000_000:
            f += 1
        sub_c = sub[::f, ::f, ::f]
        sk_c = np.asarray(ct.spacing_kji) * f
        depth = _edt_border(sub_c, sk_c)
        step = float(np.min(sk_c))
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
            # no junction found: cut at the lungs' left-right centre
            lo = np.array([b.start for b in box])
            sub_vol = ct.crop(lo, [b.stop for b in box])
            xs = ras_coordinate(sub_vol, 0)[::f, ::f, ::f]
            mid = float(np.median(xs[sub_c]))
            markers = np.where(sub_c & (xs <= mid), 1, 0) + np.where(sub_c & (xs > mid), 2, 0)
        _, ind = ndimage.distance_transform_edt(markers == 0, sampling=sk_c, return_indices=True)
        near_c = markers[tuple(ind)]
        if f > 1:
            kk, jj, ii = (np.minimum(np.arange(nn) // f, near_c.shape[ax] - 1)
                          for ax, nn in enumerate(sub.shape))
            near = near_c[np.ix_(kk, jj, ii)]
        else:
            near = near_c
        part = np.zeros(lungs.shape, np.uint8)
        part[box] = np.where(sub, near, 0)
        lab = np.where(main, 0, lab)  # other (small) components go to the nearer side below
        a_mask, b_mask = part == 1, part == 2
    else:
        a_mask, b_mask = lab == big[0], lab == big[1]
        lab = np.where(a_mask | b_mask, 0, lab)
    xa, xb = mean_ras(ct, a_mask)[0], mean_ras(ct, b_mask)[0]
    right, left = (a_mask, b_mask) if xa > xb else (b_mask, a_mask)
    rest = lab > 0
    if rest.any():
        x = ras_coordinate(ct, 0)
        mid = 0.5 * (xa + xb)
        right = right | (rest & (x > mid))
        left = left | (rest & (x <= mid))
    return left, right


def pleural_surface(lungs: np.ndarray) -> np.ndarray:
    """One-voxel shell of the lungs (the visceral pleura at CT resolution)."""
    return lungs & ~ndimage.binary_erosion(lungs)
