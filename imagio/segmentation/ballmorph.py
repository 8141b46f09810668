"""Erosion and dilation by a ball of a radius in mm, by shifts of bit-packed rows.

The same results as `imagio.segmentation.common.erode_mm` / `dilate_mm` (thresholds of an
``edt`` distance map), at a cost of a few bit operations per voxel and kernel row instead of
three float32 distance passes over the whole bounding box, and with a memory bounded by a
slab of the slowest axis (no volume-sized float map).

Why the results are the same: ``edt`` (Felzenszwalb & Huttenlocher, Theory of Computing 2012,
separable squared distance; anisotropic weights per axis) gives a voxel the smallest, over the
background voxels, of one floating-point expression of their offset, sqrt((w_i d_i)^2 +
w_j^2 d_j^2 + w_k^2 d_k^2) summed axis after axis; float addition is monotonic, so the nested
minima equal the minimum of that per-pair value. The kernel here is that per-pair value,
computed by ``edt`` itself on a single background voxel (`ball_offsets`), so "some background
voxel within r" and "some kernel offset lands on background" are the same test, tie cases
(offsets exactly at r, common on isotropic grids) included. (This holds where edt's lower
envelope picks the minimal parabola, as it does in exact arithmetic; were a rounded intersection
to make it pick another, edt's value would exceed that minimum by a rounding error and the two
could differ at a voxel within rounding of r: not seen on any grid or case tested.) For a fixed (d_k, d_j) the value
does not decrease with |d_i|, so the kernel is a set of rows |d_i| <= n(d_k, d_j): an erosion
is the AND over the rows of the mask's 1-D erosion along i by n, shifted by (d_k, d_j)
(a dilation: OR of 1-D dilations). Rows are bit-packed along i (``np.packbits``, little bit order, in 64-bit words:
the 1-D runs shift words by bits); the shifts along k and j are slices of whole bytes.

Masks: bool [k, j, i]; spacing_kji: mm per voxel along k, j, i; radii in mm.
"""

from __future__ import annotations

import functools

import numpy as np

SLAB_VOXELS = 1 << 24   # output voxels per slab along k (bounds the unpacked temporaries)


def ball_offsets(radius_mm: float, spacing_kji) -> dict:
    """{(d_k, d_j): n} for the offsets (voxels) whose ``edt`` distance is <= ``radius_mm``:
    the ball's rows |d_i| <= n (see module doc). The distances are ``edt``'s own arithmetic
    (one background voxel at the centre of a block, same anisotropy). Raises ValueError for
    a negative or non-finite radius or spacing. The rows of the last `BALL_CACHE` (radius,
    spacing) pairs are kept (issue 20: the demo's segmentation asks for 360 balls, most of them
    again); a new dict is returned each time."""
    sp = tuple(float(s) for s in np.asarray(spacing_kji, float).reshape(-1))
    return dict(_ball_rows(float(radius_mm), sp))


BALL_CACHE = 256


@functools.lru_cache(maxsize=BALL_CACHE)
def _ball_rows(radius_mm: float, spacing_kji: tuple) -> tuple:
    """`ball_offsets`' rows as a tuple of ((d_k, d_j), n) (immutable: cached)."""
    import edt

    sp = np.asarray(spacing_kji, float)
    if not (np.isfinite(radius_mm) and radius_mm >= 0 and np.all(np.isfinite(sp)) and np.all(sp > 0)):
        raise ValueError(f"ball radius {radius_mm} mm / spacing {sp.tolist()} mm: need a radius >= 0 "
                         "and positive spacings")
    h = np.floor(radius_mm / sp).astype(int) + 1
    block = np.ones(tuple(2 * h + 1), bool)
    block[tuple(h)] = False
    dist = edt.edt(block, anisotropy=tuple(float(s) for s in sp), black_border=False, parallel=1)
    inside = dist <= radius_mm
    inside[tuple(h)] = True
    rows = {}
    for dk, dj in zip(*np.nonzero(inside.any(axis=2))):
        line = np.flatnonzero(inside[dk, dj])
        n = int(h[2] - line[0])
        if not (line[-1] - line[0] == len(line) - 1 and line[-1] == h[2] + n):   # contiguous, symmetric
            raise AssertionError("edt distances not monotonic along i")
        rows[(int(dk - h[0]), int(dj - h[1]))] = n
    return tuple(rows.items())


_WORD = np.dtype("<u8")   # 64 bits of a row along i, bit b of word w = i 64 w + b (packbits' little bit order)


def _pack_rows(m: np.ndarray, fill: bool, pad: int) -> np.ndarray:
    """``m`` (bool [k, j, i]) as rows of 64-bit words (R = k * j, ``pad`` + W + ``pad``),
    W = ceil(i / 64): ``np.packbits(m, axis=2, bitorder="little")`` read as little-endian
    words, its bits beyond i and the ``pad`` words on each side set to ``fill`` (what the 1-D
    runs read outside the array: True for the erosion, False for the dilation)."""
    nk, nj, ni = m.shape
    nb = (ni + 7) // 8
    w = (nb + 7) // 8
    buf = np.full((nk * nj, (w + 2 * pad) * 8), 0xFF if fill else 0, np.uint8)
    buf[:, pad * 8:pad * 8 + nb] = np.packbits(m, axis=2, bitorder="little").reshape(nk * nj, nb)
    if fill and ni % 8:   # the last byte's bits beyond i (packbits wrote 0)
        buf[:, pad * 8 + nb - 1] |= np.uint8((0xFF << (ni % 8)) & 0xFF)
    return buf.view(_WORD)


def _shifted(xp: np.ndarray, pad: int, w: int, s: int) -> np.ndarray:
    """Rows of ``xp`` (`_pack_rows`, ``pad`` words each side, ``w`` words of the array) read
    ``s`` positions along i away: bit i of the result = bit i - s of the array (``s`` > 0) or
    bit i + |s| (``s`` < 0), the padding's fill beyond; |s| < 64 ``pad``."""
    q, r = divmod(abs(s), 64)
    if s > 0:      # word w' takes x[w' - q] << r | x[w' - q - 1] >> (64 - r)
        a, b = xp[:, pad - q:pad - q + w], xp[:, pad - q - 1:pad - q - 1 + w]
        return a << np.uint64(r) | b >> np.uint64(64 - r) if r else a.copy()
    a, b = xp[:, pad + q:pad + q + w], xp[:, pad + q + 1:pad + q + 1 + w]   # x[w' + q] >> r | x[w' + q + 1] << (64 - r)
    return a >> np.uint64(r) | b << np.uint64(64 - r) if r else a.copy()


def _runs_i(m: np.ndarray, lens, erode: bool) -> dict:
    """{n: bit-packed (along i, little bit order, rows padded to whole 64-bit words: `_pack_rows`)
    1-D erosion (AND) or dilation (OR) of ``m`` along its last axis over |d_i| <= n} for each n
    of ``lens``, grown one step at a time; outside the array counts as True for the erosion,
    False for the dilation (no constraint, no contribution). The run of n is the AND (OR) of
    ``m`` shifted by -n..n, each shift read from 64-bit words (`_shifted`, the outside given by
    the padding's fill): the same bits as the shifts of the unpacked mask (speed29: a sixth of
    the memory passes, issue 20)."""
    nk, nj, _ = m.shape
    top = max(lens)
    pad = top // 64 + 1
    xp = _pack_rows(m, erode, pad)
    w = xp.shape[1] - 2 * pad
    op = np.bitwise_and if erode else np.bitwise_or
    out, run = {}, xp[:, pad:pad + w].copy()
    for t in range(0, top + 1):
        if t:
            op(run, _shifted(xp, pad, w, t), out=run)
            op(run, _shifted(xp, pad, w, -t), out=run)
        if t in lens:
            out[t] = run.view(np.uint8).reshape(nk, nj, w * 8).copy()
    return out


def _morph(mask: np.ndarray, rows: dict, erode: bool, out: np.ndarray) -> np.ndarray:
    """AND (erode) or OR over the rows of ``rows`` of the shifted 1-D runs (module doc); outside
    the array: True for the erosion, False for the dilation. Slab by slab along k, written into
    ``out`` (bool, ``mask``'s shape: a view of the caller's result, no copy of the box)."""
    nk, nj, ni = mask.shape
    if mask.size == 0:
        return out
    hk = max(abs(dk) for dk, _ in rows)
    lens = sorted(set(rows.values()))
    step = max(1, SLAB_VOXELS // max(nj * ni, 1))
    for k0 in range(0, nk, step):
        k1 = min(k0 + step, nk)
        a0, a1 = max(k0 - hk, 0), min(k1 + hk, nk)     # input planes this slab reads
        src = mask[a0:a1]
        packed = _runs_i(src, set(lens), erode)
        acc = np.full((k1 - k0, nj, packed[lens[0]].shape[2]), 0xFF if erode else 0, np.uint8)
        for (dk, dj), n in rows.items():
            lo, hi = max(k0 + dk, 0), min(k1 + dk, nk)     # input planes k + dk inside the image
            if lo >= hi:
                continue
            j_lo, j_hi = max(dj, 0), nj + min(dj, 0)
            if j_lo >= j_hi:
                continue
            dst = acc[lo - dk - k0:hi - dk - k0, j_lo - dj:j_hi - dj]
            s = packed[n][lo - a0:hi - a0, j_lo:j_hi]
            if erode:
                np.bitwise_and(dst, s, out=dst)
            else:
                np.bitwise_or(dst, s, out=dst)
        out[k0:k1] = np.unpackbits(acc, axis=2, count=ni, bitorder="little").view(bool)
    return out


def erode_ball(mask: np.ndarray, radius_mm: float, spacing_kji) -> np.ndarray:
    """Mask voxels farther than ``radius_mm`` from the background, the image border not being
    background: equal to `common.erode_mm` (module doc). Computed on the mask's bounding box,
    whose faces that are not the image border are background: a voxel is eroded by such a face
    exactly when the kernel's straight row towards it reaches one voxel past the face (a kernel
    offset lands outside the box only if its component along that axis alone does, the distance
    not decreasing with any |d|), so the box is not copied with a background layer around it.
    Memory: the result and slab-sized temporaries (`SLAB_VOXELS`). An infinite radius leaves
    nothing (as the distance threshold did: no distance exceeds it, a mask without background
    included)."""
    from .common import bbox_slices

    if radius_mm == np.inf:
        return np.zeros(mask.shape, bool)
    rows = ball_offsets(radius_mm, spacing_kji)
    out = np.zeros(mask.shape, bool)
    sl = bbox_slices(mask, 0.0, spacing_kji)
    if sl is None:
        return out
    view = out[sl]
    _morph(np.asarray(mask[sl], bool), rows, True, view)
    reach = (max(dk for dk, dj in rows if dj == 0), max(dj for dk, dj in rows if dk == 0), rows[(0, 0)])
    for ax, (s, n, e) in enumerate(zip(sl, mask.shape, reach)):
        if e == 0:
            continue
        lo = [slice(None)] * 3
        if s.start > 0:     # a face inside the image: background one voxel beyond it
            lo[ax] = slice(0, e)
            view[tuple(lo)] = False
        if s.stop < n:
            lo[ax] = slice(max(view.shape[ax] - e, 0), None)
            view[tuple(lo)] = False
    return out


def dilate_ball(mask: np.ndarray, radius_mm: float, spacing_kji) -> np.ndarray:
    """Voxels within ``radius_mm`` of the mask: equal to `common.dilate_mm` (module doc).
    Computed on the mask's bounding box grown by the kernel, into the result (no copy of the
    box). An infinite radius gives the whole image (nothing for an empty mask)."""
    from .common import bbox_slices

    if radius_mm == np.inf:
        return np.full(mask.shape, bool(np.any(mask)))
    rows = ball_offsets(radius_mm, spacing_kji)
    out = np.zeros(mask.shape, bool)
    sl = bbox_slices(mask, radius_mm, spacing_kji)
    if sl is None:
        return out
    _morph(np.asarray(mask[sl], bool), rows, False, out[sl])
    return out


def ring_steps_into_ball(inner_mm: float, outer_mm: float, spacing_kji) -> bool:
    """True when every offset of the ball of ``outer_mm`` (`ball_offsets`) outside the ball of
    ``inner_mm`` (``inner_mm <= outer_mm``) has a 6-neighbour one voxel closer to the centre
    along one axis (that axis's |d| less by 1) inside the ball of ``inner_mm``. Then an opening
    whose dilation is wider than its erosion stays one 6-connected piece: take ``core`` one
    6-connected component of the erosion of ``tissue`` by ``inner_mm`` (each c of it: every
    image voxel c + o, o in the inner ball, is tissue) and ``grown`` = the dilation of ``core``
    by ``outer_mm`` AND ``tissue``. A voxel c + o of ``grown`` has such a neighbour c + o',
    between it and c (in any box holding both), tissue and in ``grown``; from c + o' the
    steps towards c keep |d| decreasing, so they stay in the inner ball (the distance does not
    decrease with any |d|: module doc), in the tissue and in ``grown``. So ``grown`` is one
    component: its largest component is itself. False where some ring offset has no such step
    (a thick slice whose one step overshoots the inner ball): the components must be labelled.
    Cached per (radii, spacing) through `ball_offsets`' rows."""
    sp = tuple(float(s) for s in np.asarray(spacing_kji, float).reshape(-1))
    return _ring_steps_into_ball(float(inner_mm), float(outer_mm), sp)


@functools.lru_cache(maxsize=64)
def _ring_steps_into_ball(inner_mm: float, outer_mm: float, sp: tuple) -> bool:
    if not inner_mm <= outer_mm:
        raise ValueError(f"ring_steps_into_ball: inner radius {inner_mm} mm > outer {outer_mm} mm")
    outer, inner = _ball_rows(outer_mm, sp), dict(_ball_rows(inner_mm, sp))
    h = [max(abs(dk) for (dk, _), _ in outer), max(abs(dj) for (_, dj), _ in outer), max(n for _, n in outer)]
    inside = np.zeros(tuple(2 * x + 3 for x in h), bool)      # the inner ball, one voxel of margin
    c = np.array(h) + 1
    for (dk, dj), n in inner.items():
        inside[dk + c[0], dj + c[1], c[2] - n:c[2] + n + 1] = True
    for (dk, dj), n in outer:
        di = np.arange(-n, n + 1)
        o = np.stack([np.full_like(di, dk), np.full_like(di, dj), di], axis=1)
        ring = ~inside[o[:, 0] + c[0], o[:, 1] + c[1], o[:, 2] + c[2]]
        ok = np.zeros(len(o), bool)
        for a in range(3):
            step = o.copy()
            step[:, a] -= np.sign(o[:, a])
            ok |= (o[:, a] != 0) & inside[step[:, 0] + c[0], step[:, 1] + c[1], step[:, 2] + c[2]]
        if np.any(ring & ~ok):
            return False
    return True
