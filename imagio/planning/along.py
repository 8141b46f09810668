"""Length of a straight segment inside each label of a label map (the one definition, used by
the path evaluator's ``length_in_mm`` and by the ablation probes' ``crossed_mm``)."""

from __future__ import annotations

import numpy as np

from ..volume import Volume


def label_lengths(labels: Volume, start_ras, end_ras, step_mm: float) -> dict[int, float]:
    """{label value: mm} of the segment ``start_ras`` -> ``end_ras`` (RAS mm, (3,)) inside each
    value of ``labels`` (a label `Volume`, any orientation and spacing); 0 holds the unlabelled
    part and the part outside the image. Midpoint rule: the segment is cut into
    n = ceil(length / ``step_mm``) equal pieces (at least one), each piece's centre takes the
    value of its nearest voxel (`Volume.sample`, order 0), so the values add up to the segment's
    length exactly and each boundary is placed to within half a piece. Only values crossed are
    listed; a zero-length segment gives {}. Raises ValueError for ``step_mm`` <= 0."""
    if not step_mm > 0:
        raise ValueError(f"step_mm must be > 0, got {step_mm}")
    e, t = np.asarray(start_ras, float).reshape(3), np.asarray(end_ras, float).reshape(3)
    length = float(np.linalg.norm(t - e))
    if length == 0.0:
        return {}
    vals = label_samples(labels, e, t, step_mm)
    counts = np.bincount(vals, minlength=1)
    piece = length / len(vals)
    return {int(v): float(counts[v] * piece) for v in np.flatnonzero(counts)}


def label_samples(labels: Volume, start_ras, end_ras, step_mm: float) -> np.ndarray:
    """Int64 (n,) label values along ``start_ras`` -> ``end_ras`` (RAS mm), start first: the
    segment cut into n = ceil(length / ``step_mm``) equal pieces (at least one), each piece's
    centre taking its nearest voxel's value (0 outside the image): the midpoint rule of
    `label_lengths`."""
    e, t = np.asarray(start_ras, float).reshape(3), np.asarray(end_ras, float).reshape(3)
    n = max(int(np.ceil(float(np.linalg.norm(t - e)) / step_mm)), 1)
    pts = e + (np.arange(n) + 0.5)[:, None] / n * (t - e)
    return labels.sample(pts, order=0, fill=0).astype(np.int64)


def path_samples(entry_ras, target_ras, step_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(s (n,) mm from the entry, points (n, 3) RAS) every ``step_mm`` along entry -> target,
    the entry first (a zero-length segment gives its one point)."""
    e, t = np.asarray(entry_ras, float).reshape(3), np.asarray(target_ras, float).reshape(3)
    length = float(np.linalg.norm(t - e))
    s = np.arange(0.0, length + 1e-9, step_mm)
    u = (t - e) / length if length > 0 else np.zeros(3)
    return s, e + s[:, None] * u


def voxel_extent_mm(vol: Volume, entry_ras, target_ras) -> float:
    """Length (mm) of one voxel's box of ``vol`` projected on the direction entry -> target."""
    d = np.asarray(target_ras, float) - np.asarray(entry_ras, float)
    n = float(np.linalg.norm(d))
    if n == 0:
        return float(min(vol.spacing))
    u = vol.world_to_kji((d / n)[None])[0] - vol.world_to_kji(np.zeros((1, 3)))[0]   # index units per mm
    return float(np.sum(np.abs(u) * np.asarray(vol.spacing_kji, float) ** 2))


def near_voxels(vol: Volume, entry_ras, target_ras, s: np.ndarray, radius_mm: float, select,
                disc_mm: float | None = None) -> np.ndarray:
    """Bool per sample ``s`` (mm from the entry along entry -> target, RAS mm; `path_samples`):
    the centre of a voxel of ``vol`` for which ``select`` is True lies less than ``radius_mm``
    from the sample (exact Euclidean distance in mm, any orientation and spacing), or, with
    ``disc_mm``, lies less than ``radius_mm`` from the axis within ``disc_mm`` of the sample along
    it (the needle's cross-section there, a disc as thick as a voxel: `voxel_extent_mm` / 2).
    ``select``: callable (k slice, j slice, i slice) -> bool block of ``vol``'s grid there (e.g.
    an HU range within a label). Only the voxels within the radius of the segment are read: per
    slab of k-planes, the index box of the part of the segment that can reach it; voxels outside
    the image are not known and select nothing. Vectorised: each selected voxel at perpendicular
    distance r from the axis and projection p covers the samples with |s - p| < sqrt(R^2 - r^2)
    (or <= disc_mm when r < R)."""
    e, t = np.asarray(entry_ras, float).reshape(3), np.asarray(target_ras, float).reshape(3)
    n = len(s)
    out = np.zeros(n, bool)
    length = float(np.linalg.norm(t - e))
    if n == 0 or radius_mm <= 0:
        return out
    u = (t - e) / length if length > 0 else np.zeros(3)
    step = float(s[1] - s[0]) if n > 1 else 1.0
    shape = np.asarray(vol.shape)
    ek, tk = vol.world_to_kji(e[None])[0], vol.world_to_kji(t[None])[0]
    rad = radius_mm / np.asarray(vol.spacing_kji, float)        # the ball's half-extent in indices
    lo_all = np.clip(np.floor(np.minimum(ek, tk) - rad), 0, shape).astype(int)
    hi_all = np.clip(np.ceil(np.maximum(ek, tk) + rad) + 1, 0, shape).astype(int)
    cover = np.zeros(n + 1, np.int64)
    slab = max(1, int(np.ceil(2 * rad[0])) + 1)
    for k0 in range(lo_all[0], hi_all[0], slab):
        k1 = min(k0 + slab, hi_all[0])
        dk = tk[0] - ek[0]   # the part of the segment (u in [a, b]) within rad[0] planes of the slab
        if abs(dk) > 1e-9:
            a, b = sorted(((k0 - rad[0] - ek[0]) / dk, (k1 - 1 + rad[0] - ek[0]) / dk))
            a, b = max(a, 0.0), min(b, 1.0)
            if a > b:
                continue
        else:
            a, b = 0.0, 1.0
        p0, p1 = ek + a * (tk - ek), ek + b * (tk - ek)
        lo = np.clip(np.floor(np.minimum(p0, p1) - rad), 0, shape).astype(int)
        hi = np.clip(np.ceil(np.maximum(p0, p1) + rad) + 1, 0, shape).astype(int)
        lo[0], hi[0] = k0, k1
        if np.any(hi <= lo):
            continue
        sel = select(*(slice(x, y) for x, y in zip(lo, hi)))
        idx = np.argwhere(sel)
        if len(idx) == 0:
            continue
        d = vol.kji_to_world(idx + lo) - e
        p = d @ u
        r2 = np.einsum("ij,ij->i", d, d) - p * p
        ok = r2 < radius_mm ** 2
        if not ok.any():
            continue
        if disc_mm is None:
            # samples i with |i * step - p| < h: i in (p - h, p + h) / step
            h = np.sqrt(radius_mm ** 2 - r2[ok])
            first = np.clip(np.floor((p[ok] - h) / step).astype(np.int64) + 1, 0, n)
            last = np.clip(np.ceil((p[ok] + h) / step).astype(np.int64), 0, n)   # exclusive
        else:   # |i * step - p| <= disc_mm
            first = np.clip(np.ceil((p[ok] - disc_mm) / step).astype(np.int64), 0, n)
            last = np.clip(np.floor((p[ok] + disc_mm) / step).astype(np.int64) + 1, 0, n)
        keep = last > first
        np.add.at(cover, first[keep], 1)
        np.add.at(cover, last[keep], -1)
    out[:] = np.cumsum(cover[:n]) > 0
    return out
