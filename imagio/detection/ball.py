"""The box of voxels around a point that holds a ball of a given radius in mm, and each box voxel's
distance to the point: the detector's one definition of "the voxels within r mm of a candidate".

Coordinates are voxel indices [k, j, i] and distances are mm along the grid's axes (``spacing_kji``);
the grid's direction does not enter: a distance between voxels of one grid depends only on its
spacing."""

from __future__ import annotations

import numpy as np


def ball_box(shape, kji, radius_mm: float, spacing_kji, offsets: bool = False):
    """The box around voxel ``kji`` (3 ints, [k, j, i]) of a volume of ``shape`` that holds every voxel
    within ``radius_mm`` (mm) of it, clipped to the volume.

    Returns ``(box, dist)``: ``box`` a tuple of 3 slices, ``dist`` (float mm, the box's shape or
    broadcastable to it) each box voxel's distance to ``kji``; with ``offsets`` also the offsets in mm
    of each box voxel from ``kji`` along k, j, i, shape (3, *box shape): ``(box, offsets, dist)``.
    Raises nothing; a point outside the volume gives an empty box."""
    sk = np.asarray(spacing_kji, float)
    kji = np.asarray(kji, int)
    r = np.ceil(radius_mm / sk).astype(int)
    lo = np.maximum(kji - r, 0)
    hi = np.minimum(kji + r + 1, shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    g = np.ogrid[tuple(slice(int(a - k), int(b - k)) for a, b, k in zip(lo, hi, kji))]
    dist = np.sqrt(sum((gi * s) ** 2 for gi, s in zip(g, sk)))
    if not offsets:
        return box, dist
    off = np.stack(np.broadcast_arrays(*[gi * s for gi, s in zip(g, sk)]))
    return box, off, dist
