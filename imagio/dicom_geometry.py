"""Geometry of a sorted DICOM stack: gantry tilt (shear), gaps, uneven spacing, and the
resampling onto a regular grid (as 3D Slicer's acquisition-geometry regularization does).

All in LPS mm (DICOM's patient frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dicom_headers import Slice, Stack
from .errors import InputError
from .limits import SPACING_TOL, TILT_MIN_DEG


@dataclass
class Geometry:
    """Sorted stack geometry (LPS) and what was found about it."""

    order: np.ndarray  # slice order along the normal
    depth: np.ndarray  # sorted slice positions along the normal, mm
    origins: np.ndarray  # (N, 3) sorted ImagePositionPatient, LPS mm
    step: float  # nominal slice step along the normal, mm (median of the steps that are not gaps)
    tilt_deg: float  # angle between the stacking direction and the slice normal
    gaps: list[tuple[int, float]]  # (index of the slice before the gap, gap mm)
    nonuniform: bool  # steps differ from the nominal one beyond tolerance (besides gaps)


def analyse(stack: Stack, folder) -> Geometry:
    s0 = stack.first
    n = s0.normal
    pos = np.array([s.position for s in stack.slices])
    d = pos @ n
    order = np.argsort(d, kind="stable")
    d, pos = d[order], pos[order]
    steps = np.diff(d)
    if len(stack.slices) < 2:
        raise InputError(f"{folder}: the series {stack.series} has one image; IMAGIO needs a 3D volume "
                         "(a whole CT series)")
    dup = steps < 0.01  # mm: two images at one position
    if np.any(dup):
        acq = sorted({s.acquisition for s in stack.slices})
        raise InputError(
            f"{folder}: series {stack.series} holds {int(dup.sum()) + 1} slices at the same position(s) "
            f"(several acquisitions or reconstructions in one series{', AcquisitionNumber ' + ','.join(acq) if len(acq) > 1 else ''}); "
            "export the one you want as its own series")
    # a gap (missing slices) is a step 1.5 times longer than both the steps around it and the
    # series' median step: comparing with the neighbours keeps zones reconstructed at another
    # spacing regular, and with the median keeps steps shorter than the usual one (uneven
    # spacing, e.g. interleaved positions) from being called missing slices (trial 90b M1)
    ns = len(steps)
    local = np.array([np.median(np.r_[steps[max(0, k - 3):k], steps[k + 1:k + 4]]) if ns > 1 else steps[k]
                      for k in range(ns)])
    usual = np.maximum(local, np.median(steps))
    tol = np.maximum(SPACING_TOL * usual, 0.01)
    is_gap = steps > 1.5 * usual + tol
    regular = steps[~is_gap]
    step = float(np.median(regular))
    gaps = [(int(k), float(steps[k])) for k in np.flatnonzero(is_gap)]
    nonuniform = bool(np.any(np.abs(regular - step) > max(SPACING_TOL * step, 0.01)))
    # in-plane drift of the slice origins per mm along the normal: a sheared (tilted) stack
    inplane = (pos[-1] - pos[0]) - (d[-1] - d[0]) * n
    tilt = float(np.degrees(np.arctan2(np.linalg.norm(inplane), d[-1] - d[0])))
    # origins that do not lie on one line also need the per-slice resampling
    line = pos[0] + np.outer(d - d[0], (pos[-1] - pos[0]) / (d[-1] - d[0]))
    if np.abs(pos - line).max() > 0.01 * min(s0.spacing):
        tilt = max(tilt, TILT_MIN_DEG + 1e-9)  # irregular origins: resample, report as drift
    return Geometry(order, d, pos, step, tilt, gaps, nonuniform)


def regular_affine_lps(s0: Slice, g: Geometry) -> np.ndarray:
    """IJK -> LPS 4x4 of the stack when no resampling is needed."""
    m = np.eye(4)
    m[:3, 0] = s0.row * s0.spacing[0]
    m[:3, 1] = s0.col * s0.spacing[1]
    m[:3, 2] = s0.normal * ((g.depth[-1] - g.depth[0]) / (len(g.depth) - 1))
    m[:3, 3] = g.origins[0]
    return m


def regularize(arr: np.ndarray, s0: Slice, g: Geometry, fill: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Resample a sheared and/or irregular stack onto a regular grid (axes: row, column, normal).

    Every output voxel centre X is located in the acquired stack: its depth X.n gives a
    fractional slice index (linear in the sorted slice depths), the slice origin at that index
    is interpolated between its neighbours, and the in-plane offset from that origin gives the
    row/column index; values are bilinear in-plane and linear between slices. Returns (array,
    IJK->LPS, fraction of output voxels outside the acquired slices, set to ``fill``).
    """
    from scipy import ndimage

    r, c, n = s0.row, s0.col, s0.normal
    dx, dy = s0.spacing
    dz = g.step
    # corners of every slice in the (r, c) frame relative to the first origin
    rel = g.origins - g.origins[0]
    u0, v0 = rel @ r, rel @ c
    umin, umax = u0.min(), u0.max() + (s0.cols - 1) * dx
    vmin, vmax = v0.min(), v0.max() + (s0.rows - 1) * dy
    ni = int(np.floor((umax - umin) / dx + 1e-6)) + 1
    nj = int(np.floor((vmax - vmin) / dy + 1e-6)) + 1
    nk = int(np.floor((g.depth[-1] - g.depth[0]) / dz + 1e-6)) + 1
    origin = g.origins[0] + umin * r + vmin * c
    out = np.empty((nk, nj, ni), np.float32)
    ii = np.arange(ni) * dx + umin
    jj = np.arange(nj) * dy + vmin
    kidx = np.arange(len(g.depth), dtype=float)
    outside = 0
    for m in range(nk):
        depth = g.depth[0] + m * dz
        f = float(np.interp(depth, g.depth, kidx))
        k0 = min(int(np.floor(f)), len(g.depth) - 2)
        t = f - k0
        plane = np.zeros((nj, ni), np.float32)
        valid = np.ones((nj, ni), bool)
        for k, w in ((k0, 1.0 - t), (k0 + 1, t)):
            if w <= 1e-9:
                continue
            # in-plane index of (u, v) in slice k: its origin sits at (u0[k], v0[k])
            cj, ci = np.meshgrid((jj - v0[k]) / dy, (ii - u0[k]) / dx, indexing="ij")
            inside = (cj >= -0.5) & (cj <= s0.rows - 0.5) & (ci >= -0.5) & (ci <= s0.cols - 0.5)
            valid &= inside
            plane += w * ndimage.map_coordinates(arr[k], [cj, ci], order=1, mode="nearest")
        plane[~valid] = fill
        outside += int((~valid).sum())
        out[m] = plane
    aff = np.eye(4)
    aff[:3, 0], aff[:3, 1], aff[:3, 2], aff[:3, 3] = r * dx, c * dy, n * dz, origin
    return out, aff, outside / out.size
