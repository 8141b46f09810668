"""Rasterising implicit shapes onto the phantom grid: ellipsoids and tapered capsules (tubes).

The grid is axis-aligned: array [k, j, i] <-> RAS (x, y, z) = origin + (i, j, k) * spacing.
Each shape is evaluated only inside its bounding box, vectorised with numpy.
"""

from __future__ import annotations

import numpy as np


class Grid:
    def __init__(self, lo_ras, hi_ras, spacing: float):
        self.spacing = float(spacing)
        self.lo = np.asarray(lo_ras, float)
        n = np.floor((np.asarray(hi_ras, float) - self.lo) / spacing).astype(int) + 1
        self.shape_xyz = n
        self.shape = (int(n[2]), int(n[1]), int(n[0]))  # k, j, i
        self.x = (self.lo[0] + spacing * np.arange(n[0])).astype(np.float32)
        self.y = (self.lo[1] + spacing * np.arange(n[1])).astype(np.float32)
        self.z = (self.lo[2] + spacing * np.arange(n[2])).astype(np.float32)

    def ijk_to_ras(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] *= self.spacing
        m[:3, 3] = self.lo
        return m

    def box(self, lo_ras, hi_ras):
        """Array slices (k, j, i) covering the RAS box, clipped to the grid; None if empty."""
        lo = np.floor((np.asarray(lo_ras) - self.lo) / self.spacing).astype(int)
        hi = np.ceil((np.asarray(hi_ras) - self.lo) / self.spacing).astype(int) + 1
        lo = np.clip(lo, 0, self.shape_xyz)
        hi = np.clip(hi, 0, self.shape_xyz)
        if np.any(hi <= lo):
            return None
        return (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))

    def coords(self, sl):
        """Broadcastable (z, y, x) coordinate arrays for a box."""
        return (self.z[sl[0]][:, None, None], self.y[sl[1]][None, :, None], self.x[sl[2]][None, None, :])

    def full(self):
        return self.coords((slice(None), slice(None), slice(None)))


def ellipsoid(grid: Grid, labels, value: int, center, radii, rotation=None, where=None):
    """Paint ``value`` inside an ellipsoid (RAS mm). ``rotation``: 3x3 whose columns are the axes.
    ``where``: optional callable(mask_box, sl) -> mask restricting the paint. Returns the box mask."""
    c = np.asarray(center, float)
    r = np.asarray(radii, float)
    R = np.eye(3) if rotation is None else np.asarray(rotation, float)
    ext = np.abs(R) @ r
    sl = grid.box(c - ext, c + ext)
    if sl is None:
        return None, None
    z, y, x = grid.coords(sl)
    d = [x - c[0], y - c[1], z - c[2]]
    q = 0
    for a in range(3):
        u = (R[0, a] * d[0] + R[1, a] * d[1] + R[2, a] * d[2]) / r[a]
        q = q + u * u
    m = q <= 1.0
    if where is not None:
        m &= where(sl)
    labels[sl][m] = value
    return m, sl


def capsules(grid: Grid, labels, segments, value: int, wall_value: int | None = None,
             wall=None, min_radius: float = 0.0, protect=None, open_end=None):
    """Paint tapered capsules. segments: (n, 8) rows p0(3), p1(3), r0, r1 in mm.

    Voxels within the interpolated radius get ``value``; with ``wall_value``, the shell of
    thickness ``wall`` (mm, per segment or scalar) outside it gets ``wall_value`` where the voxel
    is not already lumen. ``min_radius`` (mm) keeps thin tubes connected on the grid.
    ``protect``: label values the wall must not overwrite. ``open_end``: per segment (bool,
    shape (n,)), no wall beyond the plane through p1 normal to the axis (the tube runs on there
    below the grid's resolution: no cap closes it); the lumen keeps its rounded end.
    """
    segments = np.asarray(segments, float).reshape(-1, 8)
    walls = np.broadcast_to(np.asarray(0.0 if wall is None else wall, float), (len(segments),))
    opens = np.broadcast_to(np.asarray(False if open_end is None else open_end, bool), (len(segments),))
    for seg, w, op in zip(segments, walls, opens):
        p0, p1, r0, r1 = seg[:3], seg[3:6], max(seg[6], min_radius), max(seg[7], min_radius)
        rmax = max(r0, r1) + (w if wall_value is not None else 0.0)
        sl = grid.box(np.minimum(p0, p1) - rmax, np.maximum(p0, p1) + rmax)
        if sl is None:
            continue
        z, y, x = grid.coords(sl)
        v = p1 - p0
        L2 = float(v @ v) or 1e-12
        t_axis = ((x - p0[0]) * v[0] + (y - p0[1]) * v[1] + (z - p0[2]) * v[2]) / L2
        t = np.clip(t_axis, 0.0, 1.0)
        dx, dy, dz = x - (p0[0] + t * v[0]), y - (p0[1] + t * v[1]), z - (p0[2] + t * v[2])
        d = np.sqrt(dx * dx + dy * dy + dz * dz)
        r = r0 + t * (r1 - r0)
        box = labels[sl]
        if wall_value is not None:
            shell = (d <= r + w) & (d > r) & (box != value)
            if op:
                shell &= t_axis <= 1.0
            if protect is not None:
                shell &= ~np.isin(box, protect)
            box[shell] = wall_value
        box[d <= r] = value
