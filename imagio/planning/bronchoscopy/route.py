"""Scopes, reach and the route from the trachea to a lesion along the airway centrelines.

A centreline point is reachable by a scope when the smoothed lumen diameter at every point from
the trachea to it is at least the scope's outer diameter minus a tolerance. The route ends at
the reachable point whose airway wall is closest to the lesion. Positions RAS mm.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from ...errors import InputError
from ...volume import Volume
from .tree import AirwayTree

SCOPES_FILE = Path(__file__).resolve().parents[2] / "data" / "scopes.json"
DIRECTION_WINDOW_MM = 5.0   # airway axis at a point: from the centreline point this far proximal


def load_scopes() -> dict:
    """The scope catalogue (``imagio/data/scopes.json``, or the file named by $IMAGIO_SCOPES);
    read once per file version, not on every route query."""
    path = Path(os.environ.get("IMAGIO_SCOPES", SCOPES_FILE))
    try:
        return _read_scopes(str(path), path.stat().st_mtime_ns)
    except OSError as e:
        raise InputError(f"scope catalogue {path} is not usable: {e}") from None


@lru_cache(maxsize=4)
def _read_scopes(path: str, mtime_ns: int) -> dict:
    try:
        doc = json.loads(Path(path).read_text())
        for name, s in doc["scopes"].items():
            if not (0 < float(s["outer_diameter_mm"]) < 20) or not s.get("source"):
                raise ValueError(f"scope {name!r} needs outer_diameter_mm in (0, 20) and a source")
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise InputError(f"scope catalogue {path} is not usable: {e}") from None
    return doc


def scope_diameter(scope: str | float) -> tuple[str, float]:
    """(name, outer diameter mm) of a catalogue scope, or of a number given in mm."""
    try:
        return f"{float(scope):g} mm scope", float(scope)
    except (TypeError, ValueError):
        pass
    scopes = load_scopes()["scopes"]
    if scope not in scopes:
        raise InputError(f"unknown scope {scope!r}; choose one of {', '.join(scopes)} or give a diameter in mm")
    return str(scope), float(scopes[scope]["outer_diameter_mm"])


def route_min_diameter(tree: AirwayTree) -> np.ndarray:
    """[N] the narrowest lumen diameter (mm) from the carina to each centreline point (inf in the
    trachea, which no bronchoscope is too wide for, and its cut top's centreline may hug a wall;
    inf for points pruned from the tree)."""
    diam = 2 * tree.radius
    out = np.full(len(diam), np.inf)
    for b in tree.branches:  # parents before children
        ids = b.point_ids
        if b.generation == 0:
            continue
        start = out[tree.parent[ids[0]]] if b.parent >= 0 else np.inf
        out[ids] = np.minimum.accumulate(np.minimum(diam[ids], start))
    return out


@dataclass
class Target:
    """A lesion as surface points (RAS mm) with its centre; a point target is a one-point lesion."""
    centre: np.ndarray
    surface: np.ndarray
    mask: Volume | None = None

    @classmethod
    def from_mask(cls, lesion: Volume, mask: np.ndarray | None = None) -> "Target":
        from scipy import ndimage

        m = (lesion.array > 0) if mask is None else np.asarray(mask, bool)
        if not m.any():
            raise InputError("the target lesion mask is empty: segment the nodule first")
        edge = m & ~ndimage.binary_erosion(m)
        surf = lesion.kji_to_world(np.argwhere(edge))
        centre = lesion.kji_to_world(np.argwhere(m).mean(axis=0)[None])[0]
        return cls(centre, surf, lesion.with_array(m.astype(np.uint8)))

    @classmethod
    def from_point(cls, ras) -> "Target":
        p = np.asarray(ras, float).reshape(3)
        return cls(p, p[None].copy(), None)


@dataclass
class Route:
    scope: str
    scope_diameter_mm: float
    reached: bool                     # the scope's end touches the lesion (wall distance <= 0)
    end_point_id: int
    end_ras: np.ndarray
    remaining_mm: float               # airway wall to lesion surface at the route's end (0 if touching)
    exit_angle_deg: float             # airway axis at the end vs the direction to the lesion
    length_mm: float
    generation: int
    branch_ids: list
    branch_names: list
    point_ids: np.ndarray
    points: np.ndarray                # [M, 3] RAS, trachea to end
    diameters_mm: np.ndarray          # [M]
    bronchus_sign: bool               # some airway (reachable or not) enters or touches the lesion
    closest_airway_mm: float          # from any airway wall, whatever its size
    narrowest_mm: float = float("inf")  # narrowest lumen from the carina to the end

    def to_dict(self) -> dict:
        return {"scope": self.scope, "scope_diameter_mm": self.scope_diameter_mm, "reached": self.reached,
                "end_ras": [round(float(c), 2) for c in self.end_ras],
                "remaining_mm": round(self.remaining_mm, 2), "exit_angle_deg": round(self.exit_angle_deg, 1),
                "length_mm": round(self.length_mm, 1), "generation": self.generation,
                "branch_ids": self.branch_ids, "branch_names": self.branch_names,
                "min_diameter_mm": round(self.narrowest_mm, 2) if np.isfinite(self.narrowest_mm) else None,
                "bronchus_sign": self.bronchus_sign, "closest_airway_mm": round(self.closest_airway_mm, 2),
                "n_points": int(len(self.points))}


def wall_distance(tree: AirwayTree, target: Target) -> tuple[np.ndarray, np.ndarray]:
    """([N] distance from each centreline point's airway wall to the lesion surface, mm,
    negative when the lumen overlaps it; [N] index of the nearest surface point)."""
    d, idx = cKDTree(target.surface).query(tree.points)
    inside = np.zeros(len(d), bool)
    if target.mask is not None:
        inside = target.mask.sample(tree.points, order=0) > 0
    d = np.where(inside, -d, d)
    return d - tree.radius, idx


def axis_at(tree: AirwayTree, pid: int) -> np.ndarray:
    """Unit airway direction (distal) at a centreline point, over the last few mm."""
    path = tree.path_to_root(pid)
    s = tree.dist_from_root[path]
    j = int(np.searchsorted(s, s[-1] - DIRECTION_WINDOW_MM))
    v = tree.points[path[-1]] - tree.points[path[min(j, len(path) - 2)]] if len(path) > 1 else np.zeros(3)
    n = np.linalg.norm(v)
    return v / n if n > 0 else np.array([0.0, 0.0, -1.0])


def plan_route(tree: AirwayTree, target: Target, scope: str | float = "thin", tolerance_mm: float | None = None,
               reach: np.ndarray | None = None) -> Route:
    """The route for ``scope`` to the reachable airway point closest (wall to lesion) to the target."""
    name, od = scope_diameter(scope)
    tol = load_scopes().get("default_tolerance_mm", 0.5) if tolerance_mm is None else float(tolerance_mm)
    alive = tree.branch_of >= 0
    rmin = route_min_diameter(tree) if reach is None else reach
    ok = alive & (rmin >= od - tol)
    trachea = np.concatenate([b.point_ids for b in tree.branches if b.generation == 0])
    if not ok.any() or od - tol > 2 * float(np.median(tree.radius[trachea])):
        raise InputError(f"the {name} ({od:g} mm) does not fit the trachea of this airway tree")
    wd, near = wall_distance(tree, target)
    wd_alive = np.where(alive, wd, np.inf)
    sign = bool(wd_alive.min() <= 0)
    cand = np.flatnonzero(ok)
    pid = int(cand[np.argmin(wd[cand])])
    path = tree.path_to_root(pid)
    to_lesion = (target.surface[near[pid]] if wd[pid] > 0 else target.centre) - tree.points[pid]
    nrm = np.linalg.norm(to_lesion)
    ang = float(np.degrees(np.arccos(np.clip(axis_at(tree, pid) @ (to_lesion / nrm), -1, 1)))) if nrm > 0 else 0.0
    bids = list(dict.fromkeys(int(b) for b in tree.branch_of[path]))
    return Route(name, od, bool(wd[pid] <= 0), pid, tree.points[pid].copy(), float(max(wd[pid], 0.0)), ang,
                 float(tree.dist_from_root[pid]), int(tree.branches[bids[-1]].generation), bids,
                 [tree.branches[b].name for b in bids], path, tree.points[path], 2 * tree.radius[path],
                 sign, float(max(wd_alive.min(), 0.0)), float(rmin[pid]))
