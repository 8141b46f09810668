"""Candidate entry points: the skin (body surface) within needle reach of the target.

The skin is the outer skin of `imagio.planning.skin` (body voxels next to air connected to the
outside of the patient; never internal air, never a face cut by the field of view); it is thinned to one
point per ``spacing_mm`` cube (RAS grid) plus a denser ring in the target's axial plane (world
z = target z, so that strictly axial paths exist when the gantry cannot tilt). In each cube the
point kept is the first in world order (`imagio.world_order.thin_per_cell`), listed in world
order: the same skin stored with another axis order or flipped gives the same candidates (in
array order it gave others on grids finer than the cubes; new-user trial 21 M1). Outward normals
are the negative gradient of the smoothed body mask. All positions RAS mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..world_order import thin_per_cell
from .distance_maps import BODY, SKIN, PlanningMaps


@dataclass
class Candidates:
    entry_ras: np.ndarray   # (n, 3) RAS mm
    normal_ras: np.ndarray  # (n, 3) unit outward skin normals

    def __len__(self):
        return len(self.entry_ras)


def skin_mask(maps: PlanningMaps) -> np.ndarray:
    """Outer-skin voxels of the crop (bool [k, j, i]); for maps built without a skin model,
    body voxels with a face neighbour outside the body."""
    flags = maps.flags
    if maps.has.get("skin_model", False):   # even when empty: no outer skin within reach
        return (flags & SKIN) > 0
    body = (flags & BODY) > 0
    return body & ~ndimage.binary_erosion(body, border_value=1)


NORMAL_SLAB = 32   # crop k-slices of points per `normals_at` box (bounds the smoothed body held)


def normals_at(maps: PlanningMaps, ras: np.ndarray, slab: int | None = None) -> np.ndarray:
    """Unit outward normals (RAS, (n, 3)) of the body surface at RAS points ``ras`` ((n, 3) or
    (3,)): the negative gradient of the smoothed body mask (`PlanningMaps.body_smooth_box`),
    central differences in crop index units, linear interpolation. The points are taken ``slab``
    crop k-slices at a time (default `NORMAL_SLAB`; issue 20: the smoothed body of the whole
    crop, float32, and its filter's temporaries were held at once); each point's normal is the
    same for any ``slab`` (the box of each slab holds every voxel its points read, `_gradient_at`)."""
    kji = maps.world_to_kji(np.atleast_2d(ras))
    if len(kji) == 0:
        return np.zeros((0, 3))
    shape = np.array(maps.code.shape)
    g = np.empty((len(kji), 3))
    band = np.floor(kji[:, 0]).astype(np.int64) // max(1, int(NORMAL_SLAB if slab is None else slab))
    order = np.argsort(band, kind="stable")
    cuts = np.flatnonzero(np.diff(band[order])) + 1
    for rows in np.split(order, cuts):
        pk = kji[rows]
        # the smoothed body on the box of the voxels the 6 neighbours' linear interpolation
        # reads ('nearest' edges: points beyond a face read the face, where box = crop)
        lo = np.clip(np.floor(pk.min(0) - 1.0).astype(np.int64), 0, shape - 1)
        hi = np.clip(np.floor(pk.max(0) + 1.0).astype(np.int64) + 2, 1, shape)
        g[rows] = _gradient_at(maps.body_smooth_box(lo, hi), pk, origin=lo)
    # gradient in kji index units -> RAS: d/dx_ras = sum_a d/da * da/dx_ras
    inv = maps._r2k[0]   # rows: gradient of k, j, i wrt RAS
    n = -(g @ inv)
    nn = np.linalg.norm(n, axis=1, keepdims=True)
    return n / np.where(nn > 0, nn, 1.0)


def _gradient_at(field: np.ndarray, kji: np.ndarray, origin=None) -> np.ndarray:
    """Central-difference gradient (per index unit) of a [k, j, i] field at kji points
    (one interpolation call for all 6 neighbours of every point). ``origin``: the integer kji
    of ``field[0, 0, 0]`` when it is a box of the grid of ``kji`` (the neighbours' positions are
    computed on that grid, then shifted: the shift of a point >= origin >= 0 is exact, the
    interpolation weights those of the whole grid)."""
    off = np.concatenate([np.eye(3), -np.eye(3)])            # +k +j +i -k -j -i
    pts = (kji[:, None, :] + off[None]).reshape(-1, 3)
    if origin is not None:
        pts -= np.asarray(origin, float)
    v = ndimage.map_coordinates(field, pts.T, order=1, mode="nearest").reshape(len(kji), 6)
    return 0.5 * (v[:, :3] - v[:, 3:])


def skin_candidates(maps: PlanningMaps, target_ras, reach_mm: float, spacing_mm: float = 3.0,
                    axial_ring: bool = True) -> Candidates:
    """Skin points within ``reach_mm`` of the target, about ``spacing_mm`` apart (see module doc)."""
    grid = maps.grid
    t = np.asarray(target_ras, float)
    kji = np.argwhere(skin_mask(maps))
    ras = grid.kji_to_world(kji.astype(float))
    near = np.linalg.norm(ras - t, axis=1) <= reach_mm
    ras = ras[near]
    if len(ras) == 0:
        return Candidates(np.zeros((0, 3)), np.zeros((0, 3)))
    pts = [ras[thin_per_cell(ras, spacing_mm)]]
    if axial_ring:
        half = 0.5 * float(max(grid.spacing))
        ring = ras[np.abs(ras[:, 2] - t[2]) <= half]
        ring = ring[thin_per_cell(ring, 0.5 * spacing_mm, axes=(0, 1))]
        ring[:, 2] = t[2]
        pts.append(ring)
    pts = np.concatenate(pts)
    return Candidates(pts, normals_at(maps, pts))
