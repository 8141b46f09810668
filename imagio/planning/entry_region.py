"""The allowed entry region of `Constraints.entry_region`: a ball (centre, radius) or a band
around a polyline (e.g. a planned surgical incision drawn as a markups curve).

``entry_region = (points, radius_mm)``: points is one RAS point (3,) -> a ball, or an (m, 3)
polyline (RAS mm, in order) -> every entry within ``radius_mm`` of the polyline's segments.
"""

from __future__ import annotations

import numpy as np


def distance_to_region(entry_ras, points) -> np.ndarray:
    """(n,) distance (mm) from each entry (n, 3) RAS to a point (3,) or to an (m, 3) polyline
    (exact point-to-segment distances, vectorised over entries and segments)."""
    e = np.atleast_2d(np.asarray(entry_ras, float))
    p = np.asarray(points, float)
    if p.ndim == 1 or len(p) == 1:
        return np.linalg.norm(e - p.reshape(3), axis=1)
    a, b = p[:-1], p[1:]
    d = b - a
    dd = np.maximum((d * d).sum(1), 1e-12)
    u = np.clip(((e[:, None, :] - a[None]) * d[None]).sum(-1) / dd[None], 0.0, 1.0)
    q = a[None] + u[..., None] * d[None]
    return np.linalg.norm(e[:, None, :] - q, axis=-1).min(axis=1)
