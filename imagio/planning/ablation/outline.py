"""The minimal ablative margin (MAM) as a reader measures it: from the tumour's outline drawn
from its label-map voxels (the faces between tumour voxels and the others, on the label map's
own grid: oblique, anisotropic, flipped as it is) to the surface of the ablation zone (the
device chart's ellipsoid, `zones.Ellipsoid`, or the union of several), > 0 when the outline lies
inside the zone. `Outline.margin` returns a guaranteed lower bound of it (never above it):

- one zone: exact (to 1e-9 mm). A convex zone's signed distance is concave (an infimum of the
  signed distances to its supporting planes), so its minimum over each voxel box lies at one
  of the box's corners, and its minimum over the tumour lies on the outline: the minimum over
  the corners of the boundary voxels' boxes, each computed exactly (`zones.signed_distance`);
- several zones: bound (b) when every corner lies inside the union and (b) is > 0, else (a).
  (a) Per boundary box, the largest over the
  zones of that zone's minimum over the box's corners (the union's signed distance is at least
  each zone's, equal to the largest outside every zone): exact where one zone holds a box's
  margin, low near a crease where two zones' surfaces meet inside. (b) When every corner lies
  inside the union: the smallest distance from the union's surface to the tumour's boxes
  (exact box distances), by branch and bound over cells of each zone's surface (its
  parameter rectangle; a cell's points lie within its radius of its centre, so the distance at
  the centre less that radius bounds the cell) down to cells of `CELL_MM` radius; a cell lying
  wholly inside another zone is dropped. (b) is exact to `CELL_MM` away from the creases; at a
  crease it may read low by up to about the cell radius over the sine of the angle at which the
  two surfaces meet. Both only ever read low.

RAS mm; arrays [k, j, i].
"""

from __future__ import annotations

import numpy as np

from ...volume import Volume
from .zones import Ellipsoid, signed_distance, signed_distance_bounds

CELL_MM = 0.05        # radius of the finest zone-surface cell of the union's bound (b), mm
NEAREST_BOXES = 16    # boxes whose centres are nearest, read per point (more when they may not hold the nearest box)


class Outline:
    """The tumour's outline on the label map's grid. ``mask``: bool [k, j, i] on ``vol``'s grid,
    its voxels within the box ``lo:hi`` (kji, hi exclusive). Keeps the boundary voxels (a face
    on a voxel outside the tumour; past the array counts as outside): ``corners`` (m, 3) RAS mm
    of their boxes' distinct corners, ``boxes`` (n, 8) indices into them per box, and a k-d tree
    of the box centres in the grid's own frame scaled to mm (distances as in RAS)."""

    def __init__(self, mask: np.ndarray, lo, hi, vol: Volume):
        from scipy.spatial import cKDTree

        lo, hi = np.asarray(lo, int), np.asarray(hi, int)
        sub = np.pad(np.asarray(mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], bool), 1)
        core = sub[1:-1, 1:-1, 1:-1]
        inner = core.copy()
        for ax in range(3):
            for sh in (-1, 1):
                inner &= np.roll(sub, sh, axis=ax)[1:-1, 1:-1, 1:-1]
        v = np.argwhere(core & ~inner) + lo
        d = np.array([[k, j, i] for k in (0, 1) for j in (0, 1) for i in (0, 1)])
        corners, idx = np.unique((v[:, None, :] + d[None]).reshape(-1, 3), axis=0, return_inverse=True)
        self.vol = vol
        self.corners = vol.kji_to_world(corners - 0.5)
        self.boxes = idx.reshape(len(v), 8).astype(np.int64)
        self.spacing_kji = np.asarray(vol.spacing, float)[::-1]
        self._centres = v * self.spacing_kji
        self._tree = cKDTree(self._centres)

    def box_distance(self, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) bounds (mm) of the distance from RAS points (n, 3) to the union of the
        boundary boxes (0 inside one), equal where exact: the nearest of the k nearest boxes
        (by centre) gives the upper bound; a box beyond them lies at least the k-th centre
        distance less half a box diagonal away, which gives the lower bound, exact when it is not
        below the upper. k is `NEAREST_BOXES`, then 4 and 16 times that for the points not yet
        exact."""
        x = self.vol.world_to_kji(np.asarray(P, float).reshape(-1, 3)) * self.spacing_kji
        half = 0.5 * self.spacing_kji
        hd = float(np.linalg.norm(half))
        up = np.full(len(x), np.inf)
        low = np.zeros(len(x))
        todo = np.arange(len(x))
        for k in (NEAREST_BOXES, 4 * NEAREST_BOXES, 16 * NEAREST_BOXES):
            k = min(k, len(self._centres))
            dc, ic = self._tree.query(x[todo], k=k)
            dc, ic = dc.reshape(len(todo), -1), ic.reshape(len(todo), -1)
            gap = np.maximum(np.abs(x[todo, None, :] - self._centres[ic]) - half, 0.0)
            up[todo] = np.sqrt((gap * gap).sum(-1)).min(1)
            beyond = dc[:, -1] - hd if k < len(self._centres) else np.full(len(todo), np.inf)
            low[todo] = np.minimum(up[todo], beyond)
            todo = todo[beyond < up[todo]]
            if not len(todo):
                break
        return low, up

    def margin(self, ells, cap_mm: float = np.inf) -> tuple[float, np.ndarray]:
        """(mm, RAS point): the lower bound of the zones' minimal ablative margin around the
        outline (module doc) and where it is read (a box corner; with several zones, the zone
        surface's point nearest the tumour when bound (b) sets it). At most ``cap_mm``."""
        C = self.corners
        if len(ells) == 1:
            lb, ub = signed_distance_bounds(ells[0], C)
            cand = np.flatnonzero(lb <= ub.min())
            sd = signed_distance(ells[0], C[cand])
            i = int(np.argmin(sd))
            return min(float(sd[i]), cap_mm), C[cand[i]]
        if np.any([e.contains(C) for e in ells], axis=0).all():   # every corner inside the union: (b) first
            m, at = self._union_surface_bound(ells, cap_mm)
            if m > 0 and at is not None:
                return min(m, cap_mm), at
        S = np.stack([signed_distance(e, C) for e in ells], axis=1)          # (m, K)
        per_box = S[self.boxes].min(axis=1)                                  # (n, K)
        best = per_box.max(axis=1)
        b = int(np.argmin(best))
        k = int(np.argmax(per_box[b]))
        m, at = float(best[b]), C[self.boxes[b][np.argmin(S[self.boxes[b], k])]]
        return min(m, cap_mm), at

    def _union_surface_bound(self, ells, cap_mm: float) -> tuple[float, np.ndarray]:
        """Bound (b) of the module doc: (mm, RAS point), valid when it is > 0 and every corner
        lies inside the union (then no point of the union's surface lies in a tumour box, so the
        tumour lies inside the union and its margin is the surface's distance to it). Cells whose
        bound is within `CELL_MM` of the best surface point found are not split further (that
        much is taken off the result)."""
        best_ub, best_at = float(cap_mm), None      # a surface point's distance: at least the margin
        low, low_at = np.inf, None                  # the finest cells' bounds
        q = np.array([[-0.25, -0.25], [-0.25, 0.25], [0.25, -0.25], [0.25, 0.25]])
        cells = []
        for n in range(len(ells)):
            T, PH = np.meshgrid((np.arange(16) + 0.5) * np.pi / 16, (np.arange(32) + 0.5) * np.pi / 16, indexing="ij")
            cells.append((n, T.ravel(), PH.ravel(), np.pi / 16, np.pi / 16))
        while cells:
            nxt = []
            for n, T, PH, dth, dph in cells:
                e = ells[n]
                P = _surface_points(e, T, PH)
                r = 0.5 * (max(e.a_mm, e.b_mm) * dth + e.b_mm * dph)   # every point of a cell within r of its centre
                deep = np.zeros(len(P), bool)     # the cell (the ball of radius r) lies inside another zone
                on = np.ones(len(P), bool)        # the centre lies on the union's surface (in no other zone)
                for j, o in enumerate(ells):
                    if j == n:
                        continue
                    lb, ub = signed_distance_bounds(o, P)
                    ask = (lb <= r) & (ub > r)
                    deep |= lb > r
                    deep[ask] |= signed_distance(o, P[ask]) > r
                    on &= ~o.contains(P)
                keep = ~deep
                if not keep.any():
                    continue
                P, T, PH, on = P[keep], T[keep], PH[keep], on[keep]
                dlo, dup = self.box_distance(P)
                if on.any():
                    i = int(np.argmin(np.where(on, dup, np.inf)))
                    if dup[i] < best_ub:
                        best_ub, best_at = float(dup[i]), P[i]
                lo = dlo - r
                if r <= CELL_MM:
                    i = int(np.argmin(lo))
                    if lo[i] < low:
                        low, low_at = float(lo[i]), P[i]
                    continue
                split = lo < best_ub - CELL_MM
                if split.any():
                    nxt.append((n, (T[split][:, None] + q[None, :, 0] * dth).ravel(),
                                (PH[split][:, None] + q[None, :, 1] * dph).ravel(), 0.5 * dth, 0.5 * dph))
            cells = nxt
        if low < best_ub - CELL_MM:
            return low, low_at
        return best_ub - CELL_MM, best_at


def _surface_points(e: Ellipsoid, T: np.ndarray, PH: np.ndarray) -> np.ndarray:
    """RAS points of the zone's surface at parameters (theta from the axis, phi around it)."""
    u = np.asarray(e.axis, float)
    v1 = np.cross(u, [1.0, 0.0, 0.0] if abs(u[0]) < 0.9 else [0.0, 1.0, 0.0])
    v1 /= np.linalg.norm(v1)
    v2 = np.cross(u, v1)
    rad = e.b_mm * np.sin(T)
    return (e.centre + (e.a_mm * np.cos(T))[:, None] * u + (rad * np.cos(PH))[:, None] * v1
            + (rad * np.sin(PH))[:, None] * v2)


def point_margins(P: np.ndarray, ells) -> np.ndarray:
    """Per RAS point (n, 3): the largest over the zones of `zones.signed_distance` (mm, > 0
    inside): the union's signed distance outside every zone and inside one zone, a lower bound
    of it where zones overlap. A zone whose upper bound (`zones.signed_distance_bounds`) lies
    below another's lower bound at a point is not computed there."""
    if len(ells) == 1:
        return signed_distance(ells[0], P)
    B = [signed_distance_bounds(e, P) for e in ells]
    floor = np.max([lb for lb, _ in B], axis=0)
    out = np.full(len(P), -np.inf)
    for e, (lb, ub) in zip(ells, B):
        m = ub >= floor
        out[m] = np.maximum(out[m], signed_distance(e, P[m]))
    return out
