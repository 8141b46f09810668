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


def _in_slabs(vol: Volume, ras: np.ndarray) -> list[tuple[float, float, float, np.ndarray]]:
    """[(gap mm, depth_lo, depth_hi, bool (n,): which of the RAS points ``ras`` (n, 3) lie strictly
    between the acquired slices bounding it)] per interpolated slab of ``vol`` holding any of them:
    the one test of `crossing_note` and `points_note`."""
    out = []
    for n, lo, hi in gap_slabs(vol):
        tol = ACQUIRED_TOL * (hi - lo)
        d = np.asarray(ras, float).reshape(-1, 3) @ n
        inside = (d > lo + tol) & (d < hi - tol)
        if inside.any():
            out.append((hi - lo, lo, hi, inside))
    return out


def _gap_note(lead: str, gap: float, lo: float, hi: float, tail: str, figures: str = "") -> str:
    """The one sentence every note of an interpolated gap says: ``lead``, the gap (its width and
    the acquired slices bounding it, with ``figures`` inside the same bracket when given), then
    ``tail``."""
    return (f"{lead} slices interpolated across a {gap:.1f} mm gap of missing slices (between the acquired slices at "
            f"{lo:.1f} and {hi:.1f} mm along the slice normal" + (f"; {figures}" if figures else "") + f"): {tail}")


def crossing_note(vol: Volume, mask: np.ndarray, offset_kji=(0, 0, 0)) -> str:
    """One sentence when the outline ``mask`` (bool [k, j, i] on ``vol``'s grid, or on a box of it
    starting at voxel ``offset_kji``) has voxel centres strictly between the acquired slices
    bounding an interpolated gap (`gap_slabs`), else "": its size, volume and density rest partly
    on interpolated sections."""
    if not gap_slabs(vol) or not mask.any():
        return ""
    ras = vol.kji_to_world(index_list(mask).astype(float) + np.asarray(offset_kji, float))
    hits = [(gap, lo, hi, float(inside.mean())) for gap, lo, hi, inside in _in_slabs(vol, ras)]
    if not hits:
        return ""
    gap, lo, hi, frac = max(hits)
    return _gap_note("its outline crosses", gap, lo, hi, "its size, volume and density rest partly on interpolated "
                     "sections; read it on the acquired slices", f"{frac * 100:.0f}% of its voxels")


def points_note(vol: Volume, points) -> str:
    """One sentence when any of ``points`` ([(what, RAS (3,) or (n, 3))]: a target point, a path's
    entry, the two ends of a clearance) lies strictly between the acquired slices bounding an
    interpolated gap of ``vol`` (`gap_slabs`), else "": "<what> lies on slices interpolated across
    ...: confirm on the acquired slices": what was measured there rests on interpolated sections
    (new-user trial 106 MED 2: a plan's target and its best path lay wholly on the slices
    interpolated across a 5 mm gap, with no word; trial 107: "lies on", not "measured on")."""
    points = [(w, np.asarray(r, float).reshape(-1, 3)) for w, r in points]
    if not points or not gap_slabs(vol):
        return ""
    owner = np.concatenate([np.full(len(r), i) for i, (_, r) in enumerate(points)])
    hits = _in_slabs(vol, np.concatenate([r for _, r in points]))
    if not hits:
        return ""
    gap, lo, hi, inside = max(hits, key=lambda h: h[0])
    what = [points[i][0] for i in np.unique(owner[inside])]
    said = what[0] if len(what) == 1 else f"{', '.join(what[:-1])} and {what[-1]}"
    return _gap_note(f"{said} {'lies' if len(what) == 1 else 'lie'} on", gap, lo, hi, "confirm on the acquired slices")
