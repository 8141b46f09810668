"""Where a DICOM series read with missing slices holds interpolated values, and which outline
crosses them.

`imagio.dicom.read_series` fills a gap of missing slices (up to ``limits.MAX_GAP_MM``) by linear
interpolation between the acquired slices on either side and records each gap's slab in
``Volume.meta["read"]["gap_slabs_lps"]``: the slice normal (unit vector, LPS) and the depths
(mm, ``position . normal``) of the two acquired slices bounding it. The slab is a world-space
fact, so it holds on any later storage of the same image (reoriented, RAS-canonical).
New-user trial 103 F2.1: the gap's warning was on every nodule row alike, while one nodule's
outline crossed the interpolated slices and its size rested on them.
"""
from __future__ import annotations

import numpy as np

from .coords import lps_to_ras
from .volume import Volume, index_list

# a voxel centre this close to an acquired slice (fraction of the gap) holds that slice's values
ACQUIRED_TOL = 0.01


def gap_slabs(vol: Volume) -> list[tuple[np.ndarray, float, float]]:
    """[(normal RAS unit vector (3,), depth_lo mm, depth_hi mm)] of the interpolated slabs of
    ``vol`` (depths along the normal in RAS, ``x_ras . normal_ras``), [] when its reader
    interpolated none."""
    out = []
    for g in (vol.meta.get("read") or {}).get("gap_slabs_lps") or []:
        n_lps = np.asarray(g["normal"], float)
        lo, hi = (float(v) for v in g["depth_mm"])
        # LPS -> RAS flips x and y: x_ras . (flip n_lps) == x_lps . n_lps, so the depths are unchanged
        out.append((lps_to_ras(n_lps), min(lo, hi), max(lo, hi)))
    return out


def crossing_note(vol: Volume, mask: np.ndarray, offset_kji=(0, 0, 0)) -> str:
    """One sentence when the outline ``mask`` (bool [k, j, i] on ``vol``'s grid, or on a box of it
    starting at voxel ``offset_kji``) has voxel centres strictly between the acquired slices
    bounding an interpolated gap (`gap_slabs`), else "": its size, volume and density rest partly
    on interpolated sections."""
    slabs = gap_slabs(vol)
    if not slabs or not mask.any():
        return ""
    ras = vol.kji_to_world(index_list(mask).astype(float) + np.asarray(offset_kji, float))
    hits = []
    for n, lo, hi in slabs:
        tol = ACQUIRED_TOL * (hi - lo)
        d = ras @ n
        inside = (d > lo + tol) & (d < hi - tol)
        if inside.any():
            hits.append((hi - lo, lo, hi, float(inside.mean())))
    if not hits:
        return ""
    gap, lo, hi, frac = max(hits)
    return (f"its outline crosses slices interpolated across a {gap:.1f} mm gap of missing slices (between the "
            f"acquired slices at {lo:.1f} and {hi:.1f} mm along the slice normal; {frac * 100:.0f}% of its voxels): "
            "its size, volume and density rest partly on interpolated sections; read it on the acquired slices")
