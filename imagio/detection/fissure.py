"""Fissure-plane evidence for perifissural nodule candidates.

A perifissural nodule (an intrapulmonary lymph node) is solid, lentiform or triangular, attached
to an interlobar fissure, its short axis perpendicular to the fissure (de Hoop B et al.,
Radiology 2012;265:611-616; Ahn MI et al., Radiology 2010;254:949-956). Being flat, it answers
the dot filter weakly (:mod:`imagio.detection.blobs`), like a vessel; what sets it apart is the
fissure: a sheet through its centre, normal to its flat axis, that continues beyond its edge in
most directions, with aerated lung on both sides. A vessel crossing that plane fills two of the
directions around the candidate, a vessel-rich or consolidated region makes the sides dense.
Constants and sources: ``perifissural`` in ``imagio/data/detection.json``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

N_DIRECTIONS = 24  # directions around the candidate in its plane (15 degrees apart)


def _in_plane_directions(normal: np.ndarray, n: int = N_DIRECTIONS) -> np.ndarray:
    """(n, 3) unit vectors perpendicular to ``normal`` (any frame), evenly spaced in angle."""
    nrm = np.asarray(normal, float) / np.linalg.norm(normal)
    t = np.cross(nrm, [1.0, 0.0, 0.0]) if abs(nrm[0]) < 0.9 else np.cross(nrm, [0.0, 1.0, 0.0])
    t /= np.linalg.norm(t)
    u = np.cross(nrm, t)
    ang = np.arange(n) * 2.0 * np.pi / n
    return np.cos(ang)[:, None] * t + np.sin(ang)[:, None] * u


def _sample(a: np.ndarray, spacing_kji, pts_mm: np.ndarray) -> np.ndarray:
    """Trilinear samples of ``a`` at points given in mm along the array axes (k, j, i)."""
    return ndimage.map_coordinates(a, (pts_mm / np.asarray(spacing_kji, float)).T, order=1,
                                   mode="nearest")


def plane_evidence(a: np.ndarray, spacing_kji, kji, normal, parenchyma_hu: float,
                   centre_hu: float, max_radius_mm: float, c: dict) -> dict:
    """Whether a fissure-like sheet runs through ``kji`` perpendicular to ``normal``.

    a: CT [k, j, i] in HU; spacing_kji: (3,) mm; kji: (3,) voxel index of the candidate's
    centre; normal: (3,) its flat axis in the array frame scaled to mm (k, j, i order; any
    length); parenchyma_hu: the scan's lung median; centre_hu: the candidate's centre density;
    max_radius_mm: largest in-plane radius searched; c: the ``perifissural`` constants.

    Steps: the in-plane radius ``radius_mm`` is the first ring (1 mm steps) whose median falls
    below half-way between centre and parenchyma; then on rings ``ring_gap_mm`` beyond it (1.5 mm
    apart, ``N_DIRECTIONS`` directions) the in-plane HU minus the mean of the two points
    ``off_plane_mm`` to either side. Returns dict(radius_mm, contrast_hu: median of that
    difference, fraction: share of directions whose median difference is > 0, side_hu: median of
    the off-plane points minus ``parenchyma_hu``, attached: contrast_hu >=
    min_fissure_contrast_hu and fraction >= min_fissure_fraction and |side_hu| <= max_side_hu).
    ``attached`` is False (radius_mm NaN) when no edge is found within ``max_radius_mm``.
    """
    sk = np.asarray(spacing_kji, float)
    nrm = np.asarray(normal, float) / np.linalg.norm(normal)
    centre = np.asarray(kji, float) * sk
    dirs = _in_plane_directions(nrm)
    half = 0.5 * (centre_hu + parenchyma_hu)
    rho = np.arange(1.0, max_radius_mm + 1e-6, 1.0)
    rings = _sample(a, sk, (centre + rho[:, None, None] * dirs[None]).reshape(-1, 3))
    below = np.flatnonzero(np.median(rings.reshape(len(rho), -1), axis=1) < half)
    out = dict(radius_mm=float("nan"), contrast_hu=float("nan"), fraction=0.0,
               side_hu=float("nan"), attached=False)
    if not len(below):
        return out
    r0 = float(rho[below[0]])
    g0, g1 = c["ring_gap_mm"]
    gaps = np.arange(g0, g1 + 1e-6, 1.5)
    pts = (centre + (r0 + gaps)[:, None, None] * dirs[None]).reshape(-1, 3)
    off = c["off_plane_mm"] * nrm
    sides = 0.5 * (_sample(a, sk, pts + off) + _sample(a, sk, pts - off))
    diff = (_sample(a, sk, pts) - sides).reshape(len(gaps), -1)
    contrast = float(np.median(diff))
    fraction = float(np.mean(np.median(diff, axis=0) > 0))
    side = float(np.median(sides) - parenchyma_hu)
    out.update(radius_mm=r0, contrast_hu=contrast, fraction=fraction, side_hu=side,
               attached=bool(contrast >= c["min_fissure_contrast_hu"]
                             and fraction >= c["min_fissure_fraction"]
                             and abs(side) <= c["max_side_hu"]))
    return out
