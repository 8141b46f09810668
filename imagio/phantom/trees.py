"""Branching tube trees (airways, vessels) grown inside a region, deterministically.

Each branch splits in two; children taper by Murray's law (r_child ~ r_parent * 2^(-1/3) for a
symmetric split; the minor child thinner) and are about three diameters long (length/diameter
~3 in the human bronchial tree: Weibel ER, Morphometry of the Human Lung, 1963; Horsfield K,
Cumming G, J Appl Physiol 1968). Successive branching planes turn by 90 degrees.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MURRAY = 2.0 ** (-1.0 / 3.0)  # symmetric-split radius ratio
LENGTH_PER_DIAMETER = 3.0


@dataclass
class Branch:
    id: int
    parent: int
    generation: int
    start: np.ndarray
    end: np.ndarray
    r0: float
    r1: float
    name: str = ""
    children: list = field(default_factory=list)

    @property
    def direction(self):
        v = self.end - self.start
        return v / (np.linalg.norm(v) or 1.0)

    @property
    def length(self) -> float:
        return float(np.linalg.norm(self.end - self.start))


def _perp(d):
    a = np.array([1.0, 0, 0]) if abs(d[0]) < 0.9 else np.array([0, 1.0, 0])
    u = np.cross(d, a)
    return u / np.linalg.norm(u)


def _rotate(v, axis, ang):
    axis = axis / np.linalg.norm(axis)
    return v * np.cos(ang) + np.cross(axis, v) * np.sin(ang) + axis * (axis @ v) * (1 - np.cos(ang))


def _seg_dist(p, a, b):
    """Distances (P, M) from points p (P,3) to segments a->b (M,3)."""
    v = b - a
    L2 = np.maximum((v * v).sum(1), 1e-12)
    t = np.clip(((p[:, None, :] - a[None]) * v[None]).sum(-1) / L2[None], 0, 1)
    q = a[None] + t[..., None] * v[None]
    return np.linalg.norm(p[:, None, :] - q, axis=-1)


def grow(branches: list[Branch], seeds: list[int], inside, rng, max_generation: int,
         min_radius: float, angle_deg=(30.0, 45.0), avoid_collisions=True, wall_frac=0.0):
    """Grow children below the branches ``seeds`` (indices into ``branches``) until
    ``max_generation`` or ``min_radius`` (mm). ``inside(points) -> bool`` keeps tubes in their
    region; a child that cannot fit after several orientations and a shortening is dropped.
    Appends to ``branches`` in place."""
    queue = list(seeds)
    while queue:
        pi = queue.pop(0)
        par = branches[pi]
        if par.generation >= max_generation:
            continue
        d = par.direction
        plane_axis = _perp(d) if par.parent < 0 else np.cross(d, branches[par.parent].direction)
        if np.linalg.norm(plane_axis) < 1e-6:
            plane_axis = _perp(d)
        plane_axis = _rotate(plane_axis / np.linalg.norm(plane_axis), d, np.pi / 2)
        for k, (ratio, sign) in enumerate(((0.86, 1.0), (0.74, -1.0))):
            r = par.r1 * ratio
            if r < min_radius:
                continue
            placed = False
            for attempt in range(8):
                ang = np.radians(rng.uniform(*angle_deg)) * sign
                axis = _rotate(plane_axis, d, attempt * np.pi / 4 * (1 if attempt % 2 else -1))
                cd = _rotate(d, axis, ang)
                for shrink in (1.0, 0.7, 0.5):
                    L = LENGTH_PER_DIAMETER * 2 * r * rng.uniform(0.85, 1.2) * shrink
                    end = par.end + cd * L
                    t = np.linspace(0.15, 1.0, 6)[:, None]
                    pts = par.end + t * (end - par.end)
                    probe = np.vstack([pts, end + cd * (r * (1 + wall_frac) + 1.0)])
                    if not np.all(inside(probe)):
                        continue
                    if avoid_collisions and len(branches) > 2:
                        others = [b for b in branches if b.id not in (par.id, par.parent) and b.parent != par.id]
                        if others:
                            a = np.array([b.start for b in others])
                            bb = np.array([b.end for b in others])
                            rr = np.array([max(b.r0, b.r1) for b in others]) * (1 + wall_frac)
                            dist = _seg_dist(pts[1:], a, bb)
                            if np.any(dist < rr[None] + r * (1 + wall_frac) + 1.0):
                                continue
                    child = Branch(len(branches), par.id, par.generation + 1, par.end.copy(), end,
                                   r, r * 0.95)
                    branches.append(child)
                    par.children.append(child.id)
                    queue.append(child.id)
                    placed = True
                    break
                if placed:
                    break
    return branches


def segments(branches: list[Branch]) -> np.ndarray:
    """(n, 8) capsule rows p0, p1, r0, r1 for raster.capsules."""
    return np.array([np.r_[b.start, b.end, b.r0, b.r1] for b in branches], float).reshape(-1, 8)
