"""Precomputed maps for path scoring, on the part of the grid within needle reach.

Distances are anisotropic Euclidean distances (`edt`, mm) computed in index space with the
voxel spacing as anisotropy; because the direction matrix is orthonormal this is the true
physical distance for any (oblique) grid. Distances are measured to the voxelised boundary
(half a voxel beyond the boundary voxel centres; -half a voxel inside a structure), capped
at ``cap_mm``: beyond it a structure is "far".

Maps (all [k, j, i] on ``grid``, a cropped copy of the CT geometry):
  hard      float16  min over forbidden and margin structures of (distance - margin), mm,
                     rounded DOWN from float32 to the float16 below (never larger than the exact
                     value: a safe-side error below one float16 step, <= 0.016 mm over the capped
                     range [-half voxel - margin, cap = 20 mm], <= 0.004 mm below 8 mm)
  avoid     float16  min distance to an 'avoid' structure, mm (same rounding)
  label     uint16   label value;  flags  uint8  bits BODY, LUNG (inside pleura), AERATED, EMPH,
                   LIVER, FORBIDDEN, SKIN (outer skin: entry-capable, `imagio.planning.skin`)
  body_smooth float32 Gaussian-smoothed body mask (for outward skin normals)

Cost: one ``edt`` pass per group of structures sharing role and margin (forbidden, each margin
value, avoid), each in the group's bounding box padded by cap + margin, instead of one pass per
structure: the distance to a union of structures is the minimum of their distances, so the
values are the same (a group whose members' padded boxes hold fewer voxels than the group's box,
small scattered structures, keeps one pass per member). Which structure is nearest (``hard_structure``, ``avoid_structure``) and
the exact per-structure clearances of single paths (``structure_clearances``) come from k-d
trees of the structures' boundary voxel centres (the nearest voxel of a structure seen from
outside is always one of its boundary voxels), built once per case on first use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..progress import Progress
from ..volume import Volume, reach_box  # noqa: F401  (reach_box re-exported for callers)
from .problem import LUNG_CONTENTS, LUNG_PARENCHYMA, PlanningProblem, load_defaults
from .skin import dilate6, erode6

BODY, LUNG, AERATED, EMPH, LIVER, FORBIDDEN, SKIN = 1, 2, 4, 8, 16, 32, 64
ROLE_CODE = {"passable": 0, "target": 0, "avoid": 1, "margin": 2, "forbidden": 3}


@dataclass
class PlanningMaps:
    grid: Volume                      # crop geometry (array = label values, uint16)
    lo: np.ndarray                    # crop corner kji in the full grid
    hard: np.ndarray
    avoid: np.ndarray
    code: np.ndarray                  # uint32: label value | flags << 16 (one gather per sample)
    body_smooth: np.ndarray
    names: list[str]                  # structure index -> name
    margins: np.ndarray               # structure index -> margin mm (0 for forbidden/avoid)
    hard_margins: np.ndarray          # structure index -> margin subtracted in ``hard``
    roles: list[str]
    role_of_label: np.ndarray         # label value -> ROLE_CODE
    struct_of_label: np.ndarray       # label value -> structure index (-1 none)
    obstacles: list[int]              # structure indices of the obstacles in the crop (hard + avoid)
    obstacle_boxes: np.ndarray        # (n, 2, 3) kji bounding box [lo, hi) of each, in the crop
    cap_mm: float
    has: dict                         # which optional criteria the crop needs: lung, lobes, avoid, liver

    @property
    def label(self) -> np.ndarray:
        return self.grid.array

    def __post_init__(self):
        import threading

        inv = self.grid.ras_to_ijk
        self._r2k = (inv[:3, :3][::-1].copy(), inv[:3, 3][::-1].copy())   # RAS -> kji, cached
        self._lock = threading.Lock()
        self._bnd = None

    def world_to_kji(self, ras) -> np.ndarray:
        """(N, 3) RAS mm -> continuous crop indices [k, j, i] (cached affine)."""
        a, b = self._r2k
        return np.asarray(ras, float) @ a.T + b

    @property
    def flags(self) -> np.ndarray:
        return (self.code >> 16).astype(np.uint8)

    @property
    def nbytes(self) -> int:
        arrs = [self.hard, self.avoid, self.code, self.body_smooth, self.label]
        extra = 0 if self._bnd is None else self._bnd.nbytes
        return int(sum(a.nbytes for a in arrs)) + extra

    # nearest structures (k-d trees of boundary voxels, built once on first use) ---------------
    def _boundaries(self) -> "_Boundaries":
        with self._lock:
            if self._bnd is None:
                self._bnd = _Boundaries(self)
            return self._bnd

    def hard_structure(self, flat: np.ndarray) -> np.ndarray:
        """Structure index (int16, -1: none within the cap) of the forbidden or margin
        structure achieving ``hard`` at crop voxels ``flat`` (flat indices)."""
        flat = np.asarray(flat, np.int64)
        if flat.size == 0:
            return np.zeros(0, np.int16)
        out = self._boundaries().nearest(flat, "hard")
        out[self.hard.ravel()[flat] >= np.float16(self.cap_mm)] = -1
        return out

    def avoid_structure(self, flat: np.ndarray) -> np.ndarray:
        """Structure index (int16, -1: none within the cap) of the nearest 'avoid' structure."""
        flat = np.asarray(flat, np.int64)
        if flat.size == 0 or not self.has["avoid"]:
            return np.full(flat.shape, -1, np.int16)
        out = self._boundaries().nearest(flat, "avoid")
        out[self.avoid.ravel()[flat] >= np.float16(self.cap_mm)] = -1
        return out

    def structure_clearances(self, kji: np.ndarray) -> dict:
        """{structure name: min distance (mm) from the points ``kji`` (continuous crop indices,
        (n, 3)) to the structure's voxelised boundary}, for the obstacles nearer than the cap,
        nearest first: exact Euclidean distance to the nearest boundary voxel centre minus half
        the smallest voxel side (the distance maps' convention; -half inside the structure)."""
        return self._boundaries().clearances(np.asarray(kji, float).reshape(-1, 3))


class _Boundaries:
    """Boundary voxel centres (crop kji x spacing, mm) of the obstacle structures: one k-d tree
    per group (hard, avoid) for the nearest structure at many voxels, one per structure for
    the clearances of single paths. A boundary voxel has a face neighbour with another label
    or lies on the crop's edge."""

    def __init__(self, maps: PlanningMaps):
        from scipy.spatial import cKDTree

        self.maps = maps
        lab = maps.label
        self.sp = np.asarray(maps.grid.spacing_kji, float)
        self.half = 0.5 * float(self.sp.min())
        obst = np.zeros(len(maps.struct_of_label), bool)
        idx = np.asarray(maps.obstacles, int)
        vals = np.flatnonzero(np.isin(maps.struct_of_label, idx))
        obst[vals] = True
        pts, ids = [], []
        for lo, hi in self._merged_boxes(maps.obstacle_boxes, lab.shape):
            sub = lab[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
            edge = np.zeros(sub.shape, bool)
            for ax in range(3):
                d = np.diff(sub, axis=ax) != 0
                a = [slice(None)] * 3
                b = [slice(None)] * 3
                a[ax], b[ax] = slice(0, -1), slice(1, None)
                edge[tuple(a)] |= d
                edge[tuple(b)] |= d
            edge &= obst[sub]
            kji = np.argwhere(edge)
            pts.append((kji + lo) * self.sp)
            ids.append(maps.struct_of_label[sub[edge]])
        pts = np.concatenate(pts) if pts else np.zeros((0, 3))
        ids = np.concatenate(ids).astype(np.int16) if ids else np.zeros(0, np.int16)
        # one merged box: each boundary voxel once, in C order (no de-duplication needed)
        order = np.argsort(ids, kind="stable")
        self.pts, self.ids = pts[order], ids[order]
        roles = np.array(maps.roles + [""])
        self.groups = {}
        for g, rs in (("hard", ("forbidden", "margin")), ("avoid", ("avoid",))):
            m = np.isin(roles[self.ids], rs)
            self.groups[g] = None
            if m.any():
                self.groups[g] = (cKDTree(self.pts[m]), self.ids[m])
        cuts = np.flatnonzero(np.diff(self.ids)) + 1
        self.trees = {int(i[0]): (p, None) for i, p in zip(np.split(self.ids, cuts), np.split(self.pts, cuts))
                      if len(i)}
        self.nbytes = self.pts.nbytes + self.ids.nbytes

    @staticmethod
    def _merged_boxes(boxes, shape):
        """The union bounding box of all obstacles, grown by one voxel (one region: fewer
        passes than one per box, and each boundary voxel is found once)."""
        if len(boxes) == 0:
            return []
        lo = np.maximum(boxes[:, 0].min(0) - 1, 0)
        hi = np.minimum(boxes[:, 1].max(0) + 1, shape)
        return [(lo, hi)]

    def nearest(self, flat: np.ndarray, group: str) -> np.ndarray:
        """Structure index of the nearest structure of ``group`` at crop voxels ``flat``: the
        structure holding the voxel when its distance is in the maps (``obstacles``), else (hard: the smallest distance - margin over the margin
        groups) the structure of the nearest boundary voxel."""
        maps = self.maps
        kji = np.stack(np.unravel_index(flat, maps.label.shape), axis=1)
        lab = maps.label.ravel()[flat]
        own = maps.struct_of_label[np.minimum(lab, len(maps.struct_of_label) - 1)]
        roles = np.array(maps.roles + [""])
        want = ("forbidden", "margin") if group == "hard" else ("avoid",)
        # a voxel inside a structure the maps measure (not the target's exempt structure, whose
        # distance is not in ``hard``: a bone or organ target would name itself, trial 3)
        measured = np.zeros(len(roles), bool)
        measured[np.asarray(maps.obstacles, int)] = True
        inside = (own >= 0) & np.isin(roles[own], want) & measured[np.maximum(own, 0)]
        out = np.where(inside, own, -1).astype(np.int16)
        todo = np.flatnonzero(~inside)
        tg = self.groups[group]
        if tg is None or len(todo) == 0:
            return out
        tree, ids = tg
        if group == "avoid":
            _, j = tree.query(kji[todo] * self.sp)
            out[todo] = ids[j]
            return out
        # hard: distance - margin decides between structures of different margins
        best = np.full(len(todo), np.inf)
        q = kji[todo] * self.sp
        for m in np.unique(maps.hard_margins[ids]):
            sel = maps.hard_margins[ids] == m
            sub = _subtree(self, group, m, tree, ids, sel)
            d, j = sub[0].query(q)
            v = d - m
            better = v < best
            best[better] = v[better]
            out[todo[better]] = sub[1][j[better]]
        return out

    def clearances(self, kji: np.ndarray) -> dict:
        from scipy.spatial import cKDTree

        maps = self.maps
        if len(kji) == 0 or len(self.trees) == 0:
            return {}
        cap = float(maps.cap_mm)
        q = kji * self.sp
        qlo, qhi = kji.min(0), kji.max(0)
        pad = (cap + self.half) / self.sp + 1
        kr = np.clip(np.rint(kji).astype(int), 0, np.array(maps.label.shape) - 1)
        own = maps.struct_of_label[np.minimum(maps.label[tuple(kr.T)], len(maps.struct_of_label) - 1)]
        out = {}
        for n, i in enumerate(maps.obstacles):
            lo, hi = maps.obstacle_boxes[n]
            if np.any(qhi < lo - pad) or np.any(qlo > hi - 1 + pad) or i not in self.trees:
                continue
            pts, tree = self.trees[i]
            if tree is None:
                tree = cKDTree(pts)
                self.trees[i] = (pts, tree)
            d, _ = tree.query(q, distance_upper_bound=cap + self.half)
            # inside the structure: the distance maps' -half voxel
            dmin = -self.half if np.any(own == i) else float(d.min()) - self.half
            if dmin < cap:
                out[maps.names[i]] = min(dmin, out.get(maps.names[i], np.inf))
        return dict(sorted(out.items(), key=lambda kv: kv[1]))


def _subtree(bnd, group, margin, tree, ids, sel):
    """k-d tree of the boundary voxels of one margin value within a group (cached)."""
    from scipy.spatial import cKDTree

    cache = bnd.__dict__.setdefault("_sub", {})
    key = (group, float(margin))
    if key not in cache:
        if sel.all():
            cache[key] = (tree, ids)
        else:
            cache[key] = (cKDTree(tree.data[sel]), ids[sel])
    return cache[key]


def _floor_f16(x: np.ndarray) -> np.ndarray:
    """float32 -> float16 rounded towards -inf (never larger than ``x``: the safe side for a
    distance)."""
    h = x.astype(np.float16)
    up = h.astype(np.float32) > x
    np.nextafter(h, np.float16(-np.inf), out=h, where=up)   # one pass, no gather/scatter
    return h


def _signed_distance(mask: np.ndarray, spacing_kji) -> np.ndarray:
    """Distance (mm) to the voxelised boundary of ``mask`` outside it (edt to the nearest mask
    voxel centre minus half a voxel); inside the mask a constant -half voxel (paths that enter
    a structure are caught by the label samples; the depth is not needed)."""
    import edt

    an = tuple(float(s) for s in spacing_kji)
    half = np.float32(0.5 * min(an))
    out = edt.edt(~mask, anisotropy=an, black_border=False, parallel=2)
    out -= half
    np.copyto(out, -half, where=mask)
    return out.astype(np.float32, copy=False)


_CACHE: dict = {}   # one entry: exact key of precompute's inputs -> PlanningMaps


def forget_cached_maps() -> None:
    """Drop `precompute`'s cached maps (a caller done with the case frees their memory)."""
    _CACHE.clear()


def _crop(problem: PlanningProblem) -> tuple:
    """The crop's corners (kji, [lo, hi)): the needle's reach around the target (+ room for
    margins), within the body's bounding box."""
    ct = problem.ct
    reach = problem.needle.length_mm + 10.0 + 2.0 * max(ct.spacing)  # + room for margins
    lo, hi = reach_box(ct, problem.target.point_ras, reach)
    blo, bhi = ct.bounding_box(problem.body, margin=2)
    return np.maximum(lo, blo), np.minimum(hi, bhi)


def _inputs_key(problem: PlanningProblem, lo, hi, cap: float) -> tuple:
    """Key of everything `precompute` reads: grid, crop, cap, structures (roles, margins),
    target and exempt values, the emphysema threshold, a digest of the crop of the labels (the
    planner builds a new label array per target) and the CT, body and skin array objects
    (`imagio.caching.array_token`, values not re-read: the skin model's masks are cached and
    read-only; a CT edited in place needs `forget_cached_maps`)."""
    import hashlib

    from ..caching import array_token

    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    h = hashlib.blake2b(digest_size=16)
    a = problem.labels.array[sl]
    h.update(str(a.dtype).encode())
    h.update(np.ascontiguousarray(a).view(np.uint8).reshape(-1))
    skin = None if problem.skin is None else array_token(problem.skin.skin)
    names = tuple(sorted((int(v), str(n)) for v, n in problem.labels.labels.items()))
    return (problem.ct.shape, problem.ct.ijk_to_ras.tobytes(), tuple(map(int, lo)), tuple(map(int, hi)),
            float(cap), tuple(problem.structures), names, int(problem.target.value), int(problem.exempt_value),
            float(problem.constraints.emphysema_hu), h.hexdigest(), array_token(problem.ct.array),
            array_token(problem.body), skin)


def precompute(problem: PlanningProblem, cap_mm: float | None = None,
               progress=None) -> PlanningMaps:
    """Crop to the needle's reach around the target and build every map (see module doc).
    Cached (one entry, exact key of the inputs, `_inputs_key`): planning the same target of
    the same case again (other weights, constraints other than the emphysema threshold, a
    patient position, more proposals) reuses the maps, and their k-d trees, and costs only the
    scoring. The returned maps are shared: read-only by convention."""
    cap = float(cap_mm if cap_mm is not None else load_defaults()["distance_cap_mm"])
    lo, hi = _crop(problem)
    key = _inputs_key(problem, lo, hi, cap)
    maps = _CACHE.get(key)
    if maps is None:
        _CACHE.clear()   # (first: never two cases' maps at once)
        maps = _precompute(problem, lo, hi, cap, progress)
        _CACHE[key] = maps
    return maps


def _precompute(problem: PlanningProblem, lo, hi, cap: float, progress=None) -> PlanningMaps:
    """`precompute` without the cache, on the crop [lo, hi)."""
    prog = progress if isinstance(progress, Progress) else Progress(progress)
    ct, lab = problem.ct, problem.labels
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    label = np.array(lab.array[sl], dtype=np.uint16, order="C")
    grid = lab.crop(lo, hi).with_array(label)
    sp = ct.spacing_kji
    specs = problem.structures
    nlab = int(max([s.value for s in specs] + [int(label.max()) if label.size else 0])) + 1
    role_of_label = np.zeros(nlab, np.uint8)
    struct_of_label = np.full(nlab, -1, np.int16)
    for i, s in enumerate(specs):
        struct_of_label[s.value] = i
        if s.value != problem.exempt_value:
            role_of_label[s.value] = ROLE_CODE[s.role]

    # flags ------------------------------------------------------------------------------
    prog(0.02, "planning: body, lung and emphysema masks")
    body = problem.body[sl]
    hu = ct.array[sl]
    names = {s.value: s.name for s in specs}
    lung_vals = [v for v, n in names.items() if n in LUNG_PARENCHYMA]
    flags = np.zeros(label.shape, np.uint8)
    flags[body] |= BODY
    if problem.skin is not None:
        flags[problem.skin.skin[sl]] |= SKIN
    if lung_vals:
        aerated = np.isin(label, lung_vals)
        inner = [v for v, n in names.items()   # e.g. lung_nodule_2, lung_vessels_small
                 if n.rstrip("0123456789_") in LUNG_CONTENTS or n.startswith(tuple(c + "_" for c in LUNG_CONTENTS))]
        lung = aerated | np.isin(label, inner)
        lung = erode6(dilate6(lung)) | lung   # = ndimage.binary_closing(lung) | lung (tested)
    else:  # fallback for label maps without lungs: aerated = air inside the body
        aerated = body & (hu < -400)
        lung = ndimage.binary_closing(aerated, iterations=2) & body | aerated
    if problem.target.value and names.get(problem.target.value, "").startswith("lung"):
        lung |= label == problem.target.value
    flags[lung] |= LUNG
    flags[aerated] |= AERATED
    flags[aerated & (hu < problem.constraints.emphysema_hu)] |= EMPH
    liver_vals = [v for v, n in names.items() if n == "liver"]
    if liver_vals:
        flags[np.isin(label, liver_vals)] |= LIVER
    # (scipy filters each line in float64 and stores float32: a bool input gives the same values
    # as its float32 copy, without that copy)
    body_smooth = ndimage.gaussian_filter(body, sigma=2.0 / sp, output=np.float32)

    # distance maps: one edt pass per group of structures sharing role and margin ---------------
    present = np.bincount(label.ravel(), minlength=nlab)[:nlab] > 0
    todo = [(i, s) for i, s in enumerate(specs)
            if s.role in ("forbidden", "margin", "avoid") and s.value < nlab and present[s.value]
            and s.value != problem.exempt_value]
    any_avoid = any(s.role == "avoid" for _, s in todo)
    hard = np.full(label.shape, cap, np.float16)    # written per box, rounded down (module doc)
    avoid = np.full(label.shape if any_avoid else (1, 1, 1), cap, np.float16)  # none: no map
    objs = ndimage.find_objects(label)
    boxes = np.array([[[o.start for o in objs[s.value - 1]], [o.stop for o in objs[s.value - 1]]]
                      for _, s in todo], int).reshape(-1, 2, 3)
    groups: dict = {}
    for n, (i, s) in enumerate(todo):
        key = ("avoid", 0.0) if s.role == "avoid" else ("hard", float(s.margin_mm))
        groups.setdefault(key, []).append(n)
    for g, ((kind, margin), members) in enumerate(sorted(groups.items())):
        prog(0.1 + 0.85 * g / len(groups), f"planning: distance map of {len(members)} {kind} "
             f"structure(s)" + (f" with a {margin:g} mm margin" if margin else ""))
        pad = np.ceil((cap + margin) / sp).astype(int) + 1
        lo_m = np.maximum(boxes[members, 0] - pad, 0)
        hi_m = np.minimum(boxes[members, 1] + pad, label.shape)
        union = [(lo_m.min(0), hi_m.max(0), members)]
        # one pass over the group's box, or one per member when their boxes hold fewer voxels
        # (small scattered structures); the same distances either way
        parts = union if np.prod(union[0][1] - union[0][0]) <= np.prod(hi_m - lo_m, axis=1).sum() \
            else [(lo_m[n], hi_m[n], [members[n]]) for n in range(len(members))]
        for blo, bhi, mem in parts:
            bs = tuple(slice(a, b) for a, b in zip(blo, bhi))
            lut = np.zeros(nlab, bool)
            lut[[todo[n][1].value for n in mem]] = True
            d = _signed_distance(lut[label[bs]], sp)
            if margin:
                d -= np.float32(margin)
            d = _floor_f16(d)   # monotone: the min of the rounded values is the rounded min
            tgt = avoid[bs] if kind == "avoid" else hard[bs]
            np.minimum(tgt, d, out=tgt)
            del d
    prog(1.0, "planning: maps ready")
    flags[role_of_label[label] == ROLE_CODE["forbidden"]] |= FORBIDDEN
    has = {"lung": bool(lung.any()), "lobes": int(present[[v for v in lung_vals if v < nlab]].sum()) > 1,
           "avoid": any_avoid, "liver": bool(liver_vals), "skin_model": problem.skin is not None}
    code = flags.astype(np.uint32)   # built in place: no temporaries of the crop's size
    del flags
    code <<= 16
    code |= label
    return PlanningMaps(grid, lo, hard, avoid, code, body_smooth,
                        [s.name for s in specs],
                        np.array([s.margin_mm if s.role == "margin" else 0.0 for s in specs]),
                        np.array([float(s.margin_mm) for s in specs]), [s.role for s in specs], role_of_label, struct_of_label,
                        [i for i, _ in todo], boxes, cap, has)
