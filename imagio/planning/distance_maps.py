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
  label     uint8    label value when every label value is < 256, else uint16
  flags     uint8    bits BODY, LUNG (inside pleura), AERATED, EMPH,
                   LIVER, FORBIDDEN, SKIN (outer skin: entry-capable, `imagio.planning.skin`)
  code      uint16 label | flags << 8 when every label value is < 256 (flags < 128 always),
                   else uint32 label | flags << 16 (`PlanningMaps.split_code`; one gather per sample)
  body_smooth float32 Gaussian-smoothed body mask (for outward skin normals): not stored (66 MiB
                   on the 1 mm phantom's crop, issue 20); `PlanningMaps.body_smooth_box` computes
                   it exactly on a box, from the BODY flag, reading the box grown by the kernel

Exact up to the crop's edge: every ``hard``/``avoid`` value is the whole-image definition (a
structure outside the crop within the cap + its margin counts): each group's ``edt`` reads the
labels of its part of the crop grown by its halo (cap + margin + one voxel, `_halo`). Before,
the crop's outer 10 mm + 2 voxels missed such structures and over-stated clearances there (by up
to 17.5 mm at the 1 mm phantom's crop edge). The scored paths stay within the needle's length
of the target, 10 mm + 2 voxels inside the crop's faces, so a structure the old maps missed was
about 10 mm or more from every scored path: beyond every margin + needle widening (no
feasibility decision could change), but the clearance term of a score could (the proposals and
scores of the bench's three cases did not change).

Cost: one ``edt`` pass per group of structures sharing role and margin (forbidden, each margin
value, avoid), each on the part of the crop within the group's halo, instead of one pass per
structure: the distance to a union of structures is the minimum of their distances, so the
values are the same (a group whose members' boxes hold fewer voxels than the group's box,
small scattered structures, keeps one pass per member). One multi-label ``edt`` pass cannot
replace the groups: it gives each voxel its distance to the nearest voxel of another label,
not a minimum over groups of (distance - margin). Which structure is nearest
(``hard_structure``, ``avoid_structure``) and the exact per-structure clearances of single
paths (``structure_clearances``) come from k-d trees of the structures' boundary voxel centres
(`boundary_points`, the crop and its halo), the trees built once per case on first use.

Cached per case (`precompute`): the same target again reuses everything; another target of the
same case (grid, cap and obstacles the same) copies the distances of the part of its crop that
the previous maps hold exactly (their crop less the largest halo, labels there and in its halo
equal) and computes the rest: bit for bit the values of a fresh computation (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .. import anatomy
from ..progress import Progress
from ..segmentation.common import LUNG_HU, label_counts
from ..volume import Volume, reach_box, values_mask  # noqa: F401  (reach_box re-exported for callers)
from .problem import AERATED_LUNG, LUNG_CONTENTS, LUNG_PARENCHYMA, PlanningProblem, load_defaults
from .skin import dilate6, erode6

BODY, LUNG, AERATED, EMPH, LIVER, FORBIDDEN, SKIN = 1, 2, 4, 8, 16, 32, 64
ROLE_CODE = {"passable": 0, "target": 0, "avoid": 1, "margin": 2, "forbidden": 3}


NORMAL_SIGMA_MM = 2.0   # the Gaussian (sigma, mm) the body mask is smoothed by for skin normals (`candidates.normals_at`)

@dataclass
class PlanningMaps:
    grid: Volume                      # crop geometry (array = label values, uint8 if < 256 else uint16)
    lo: np.ndarray                    # crop corner kji in the full grid
    hard: np.ndarray
    avoid: np.ndarray
    code: np.ndarray                  # uint16 label | flags << 8 (labels < 256) or uint32 label | flags << 16
    body_sigma: np.ndarray            # (3,) kji voxels: the Gaussian of `body_smooth_box` (NORMAL_SIGMA_MM)
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
    measured: list[int] = None        # structure indices whose distances are in the maps: the
    #                                   obstacles plus those outside the crop within the cap (+ margin)
    measured_boxes: np.ndarray = None  # (n, 2, 3) their bounding boxes, crop kji (may leave the crop)
    boundary: tuple = None            # (points (n, 3) crop kji x spacing mm, structure index (n,)):
    #                                   boundary voxel centres of the measured structures
    dist_key: tuple = None            # what hard/avoid depend on besides the labels (`_dist_key`)
    reused_voxels: int | None = None  # voxels of hard/avoid copied from another target's maps

    @property
    def label(self) -> np.ndarray:
        return self.grid.array

    def __post_init__(self):
        import threading

        inv = self.grid.ras_to_ijk
        self._r2k = (inv[:3, :3][::-1].copy(), inv[:3, 3][::-1].copy())   # RAS -> kji, cached
        self._lock = threading.Lock()
        self._nearest_lock = threading.Lock()
        self._bnd = None
        if self.measured is None:     # maps built without the halo (a caller's own PlanningMaps)
            self.measured, self.measured_boxes = list(self.obstacles), self.obstacle_boxes

    def world_to_kji(self, ras) -> np.ndarray:
        """(N, 3) RAS mm -> continuous crop indices [k, j, i] (cached affine)."""
        a, b = self._r2k
        return np.asarray(ras, float) @ a.T + b

    @property
    def code_shift(self) -> int:
        """Bits of the label in ``code``: 8 when ``code`` is uint16, else 16."""
        return 8 if self.code.dtype == np.uint16 else 16

    def split_code(self, code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values gathered from ``code`` (any shape) -> (label value uint16, flags uint8)."""
        s = self.code_shift
        return (code & ((1 << s) - 1)).astype(np.uint16), (code >> s).astype(np.uint8)

    @property
    def flags(self) -> np.ndarray:
        return (self.code >> self.code_shift).astype(np.uint8)

    def body_smooth_box(self, lo, hi) -> np.ndarray:
        """The Gaussian-smoothed body mask (float32 [k, j, i], sigma ``body_sigma`` voxels, the
        whole crop's ``gaussian_filter`` with its 'reflect' edges) on the crop box [lo, hi) (kji,
        clipped to the crop). Bit-identical to the whole crop's filter cut to the box: scipy
        filters axis after axis, each output voxel reading the previous pass's values within the
        kernel's radius (int(4 sigma + 0.5)), so the box grown by the radius (clipped to the crop,
        whose faces keep their reflection) holds every value the box reads."""
        shape = np.array(self.code.shape)
        lo = np.clip(np.asarray(lo, np.int64), 0, shape)
        hi = np.clip(np.asarray(hi, np.int64), lo, shape)
        r = np.array([int(4.0 * float(s) + 0.5) for s in self.body_sigma])   # scipy's radius
        a, b = np.maximum(lo - r, 0), np.minimum(hi + r, shape)
        win = self.code[tuple(slice(x, y) for x, y in zip(a, b))]
        body = (win & (BODY << self.code_shift)) != 0
        sm = ndimage.gaussian_filter(body, sigma=self.body_sigma, output=np.float32)
        del body
        return np.ascontiguousarray(sm[tuple(slice(x, y) for x, y in zip(lo - a, hi - a))])

    @property
    def body_smooth(self) -> np.ndarray:
        """`body_smooth_box` on the whole crop (computed on each call, not held)."""
        return self.body_smooth_box((0, 0, 0), self.code.shape)

    @property
    def lobe_of_label(self) -> np.ndarray:
        """Label value -> True for the lung's parenchyma (`LUNG_PARENCHYMA`): the labels between
        which a path crosses a fissure. Emphysema is aerated lung but no lobe (trial 33 H2)."""
        is_lobe = np.array([n in LUNG_PARENCHYMA for n in self.names] + [False])
        return is_lobe[self.struct_of_label]   # struct -1 (no structure) -> the False appended

    @property
    def nbytes(self) -> int:
        arrs = [self.hard, self.avoid, self.code, self.label]
        extra = 0 if self._bnd is None else self._bnd.nbytes
        extra += sum(a.nbytes for a in self.__dict__.get("_nearest_maps", {}).values() if isinstance(a, np.ndarray))
        return int(sum(a.nbytes for a in arrs)) + extra

    @property
    def has_nearest_maps(self) -> bool:
        """Whether a nearest-structure voxel map (`nearest_map`, the torch scorer's one-time
        setup) has been built on these maps."""
        return bool(self.__dict__.get("_nearest_maps"))

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
        return self._nearest_below_cap(flat, self.hard, "hard")

    def avoid_structure(self, flat: np.ndarray) -> np.ndarray:
        """Structure index (int16, -1: none within the cap) of the nearest 'avoid' structure."""
        flat = np.asarray(flat, np.int64)
        if flat.size == 0 or not self.has["avoid"]:
            return np.full(flat.shape, -1, np.int16)
        return self._nearest_below_cap(flat, self.avoid, "avoid")

    def _nearest_below_cap(self, flat: np.ndarray, dist: np.ndarray, group: str) -> np.ndarray:
        """`_Boundaries.nearest` of ``group`` at the voxels ``flat`` whose ``dist`` (``hard`` or
        ``avoid``) lies below the cap, -1 at the others: the k-d trees are asked only where the
        answer is read (each voxel's answer is its own; issue 20: most of the scoring's queries
        on the 1 mm phantom were for voxels at the cap, whose answer was then overwritten)."""
        bnd = self._boundaries()
        out = np.full(flat.shape, -1, np.int16)
        below = dist.ravel()[flat] < np.float16(self.cap_mm)
        if below.any():
            out[below] = bnd.nearest(flat[below], group)
        return out

    def nearest_map(self, group: str) -> np.ndarray | None:
        """Structure index (int16 [k, j, i] on the crop grid, -1: none within the cap) of the
        nearest structure of ``group`` ("hard": forbidden + margin, by distance - margin;
        "avoid") at every crop voxel: ``hard_structure`` / ``avoid_structure`` of all voxels at
        once, for the torch scorer's device lookups (a gather instead of a k-d tree per chunk).
        None when the group has no structure. Built once per maps on first use (cached,
        thread-safe): one feature transform (``scipy.ndimage.distance_transform_edt`` with
        ``return_indices``, anisotropic ``sampling``) of the group's boundary voxel centres per
        margin value, on the crop grown to hold every boundary voxel (the k-d trees' points).
        The same rule as the k-d trees (own structure inside a measured one; else the nearest
        boundary voxel centre; hard: smallest distance - margin, the smaller margin first on a
        tie); where two boundary voxels of different structures are exactly equally near the
        two lookups may name either (tested: the named structures are then equally near)."""
        self._boundaries()   # (its own lock; built first)
        with self._nearest_lock:
            cache = self.__dict__.setdefault("_nearest_maps", {})
            if group not in cache:
                cache[group] = _nearest_map(self, group)
            return cache[group] if isinstance(cache[group], np.ndarray) else None

    def structure_clearances(self, kji: np.ndarray) -> dict:
        """{structure name: min distance (mm) from the points ``kji`` (continuous crop indices,
        (n, 3)) to the structure's voxelised boundary}, for the obstacles nearer than the cap,
        nearest first: exact Euclidean distance to the nearest boundary voxel centre minus half
        the smallest voxel side (the distance maps' convention; -half inside the structure)."""
        return self._boundaries().clearances(np.asarray(kji, float).reshape(-1, 3))

    def clearance_ends(self, kji: np.ndarray, name: str):
        """(RAS (3,) on the path, RAS (3,) on the structure) where `structure_clearances` measures
        the clearance of the points ``kji`` to the structure ``name``: the point of ``kji`` nearest
        its boundary voxel centres and that voxel centre (a point inside the structure: that point
        twice); None when the maps hold no boundary of it."""
        got = self._boundaries().nearest_pair(np.asarray(kji, float).reshape(-1, 3), name)
        return None if got is None else tuple(self.grid.kji_to_world(x[None])[0] for x in got)


class _Boundaries:
    """Boundary voxel centres (crop kji x spacing, mm) of the obstacle structures: one k-d tree
    per group (hard, avoid) for the nearest structure at many voxels, one per structure for
    the clearances of single paths (`boundary_points`; structures outside the crop within the
    cap included: ``measured``)."""

    def __init__(self, maps: PlanningMaps):
        from scipy.spatial import cKDTree

        self.maps = maps
        self.sp = np.asarray(maps.grid.spacing_kji, float)
        self.half = 0.5 * float(self.sp.min())
        if maps.boundary is None:
            maps.boundary = boundary_points(maps.label, np.zeros(3, int), maps.struct_of_label, maps.measured,
                                            maps.measured_boxes, self.sp)
        self.pts, self.ids = maps.boundary   # sorted by structure (`boundary_points`)
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

    def nearest(self, flat: np.ndarray, group: str) -> np.ndarray:
        """Structure index of the nearest structure of ``group`` at crop voxels ``flat``: the
        structure holding the voxel when its distance is in the maps (``measured``), else (hard: the smallest distance - margin over the margin
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
        measured[np.asarray(maps.measured, int)] = True
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
        for n, i in enumerate(maps.measured):
            lo, hi = maps.measured_boxes[n]
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

    def nearest_pair(self, kji: np.ndarray, name: str):
        """(path point, boundary voxel centre), crop kji, of `clearances`' distance to the structure
        ``name`` from the points ``kji``; None when it has no boundary here."""
        from scipy.spatial import cKDTree

        maps = self.maps
        idx = [i for i in maps.measured if maps.names[i] == name and i in self.trees]
        if len(kji) == 0 or not idx:
            return None
        kr = np.clip(np.rint(kji).astype(int), 0, np.array(maps.label.shape) - 1)
        own = maps.struct_of_label[np.minimum(maps.label[tuple(kr.T)], len(maps.struct_of_label) - 1)]
        best = None
        for i in idx:
            if np.any(own == i):
                p = kji[int(np.flatnonzero(own == i)[0])]
                return p, p
            pts, tree = self.trees[i]
            if tree is None:
                tree = cKDTree(pts)
                self.trees[i] = (pts, tree)
            d, j = tree.query(kji * self.sp)
            k = int(np.argmin(d))
            if best is None or d[k] < best[0]:
                best = (float(d[k]), kji[k], pts[int(j[k])] / self.sp)
        return best[1], best[2]



def _nearest_map(maps: PlanningMaps, group: str):
    """`PlanningMaps.nearest_map` without the cache (False: the group has no structure)."""
    bnd = maps._boundaries()
    shape = np.asarray(maps.label.shape)
    roles = np.array(maps.roles + [""])
    want = ("forbidden", "margin") if group == "hard" else ("avoid",)
    if group == "avoid" and not maps.has["avoid"]:
        return False
    lab = maps.label
    own = maps.struct_of_label[np.minimum(lab, len(maps.struct_of_label) - 1)]
    measured = np.zeros(len(roles), bool)
    measured[np.asarray(maps.measured, int)] = True
    inside = (own >= 0) & np.isin(roles[own], want) & measured[np.maximum(own, 0)]
    out = np.where(inside, own, -1).astype(np.int16)
    del own
    field = maps.hard if group == "hard" else maps.avoid
    if field.shape != out.shape:   # no avoid map (no avoid structure within the halo)
        out[:] = -1
        return out
    far = field >= np.float16(maps.cap_mm)
    out[far] = -1
    todo = np.flatnonzero(~inside & ~far)   # only these voxels need the nearest boundary voxel
    del far, inside
    if bnd.groups[group] is None or len(todo) == 0:
        return out
    pts, ids = bnd.groups[group][0].data, bnd.groups[group][1]
    kji = np.rint(pts / bnd.sp).astype(np.int64)     # boundary voxel centres, crop kji
    lo = np.minimum(kji.min(0), 0)
    box = tuple(np.maximum(kji.max(0) + 1, shape) - lo)   # the crop and every boundary voxel
    q = [x - l for x, l in zip(np.unravel_index(todo, tuple(shape)), lo)]   # box kji of the voxels
    fq = np.ravel_multi_index(q, box)
    best = np.full(len(todo), np.inf)
    res = np.full(len(todo), -1, np.int16)
    margins = maps.hard_margins[ids] if group == "hard" else np.zeros(len(ids))
    for m in np.unique(margins):   # ascending: a tie keeps the smaller margin (k-d tree order)
        sel = margins == m
        seeds = np.ones(box, bool)
        sid = np.full(box, -1, np.int16)
        at = tuple((kji[sel] - lo).T)
        seeds[at] = False
        sid[at] = ids[sel]
        ft = ndimage.distance_transform_edt(seeds, sampling=bnd.sp, return_distances=False,
                                            return_indices=True)
        del seeds
        f = [ft[a].ravel().take(fq) for a in range(3)]   # box kji of each voxel's nearest seed
        del ft
        d2 = np.zeros(len(todo))
        for a in range(3):
            t = (f[a] - q[a]).astype(np.float64)
            t *= bnd.sp[a]
            d2 += t * t
        v = np.sqrt(d2, out=d2) - m   # distance (mm) to the nearest boundary voxel centre - margin
        better = v < best
        best[better] = v[better]
        res[better] = sid.ravel().take(np.ravel_multi_index([x[better] for x in f], box))
        del f, sid, d2, v, better
    out.ravel()[todo] = res
    return out


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


def boundary_points(src: np.ndarray, src_lo, struct_of_label, structures, boxes, sp) -> tuple:
    """Boundary voxel centres of ``structures`` (structure indices) in the label array ``src``
    whose corner lies at crop kji ``src_lo``: (points (n, 3) crop kji x ``sp`` mm, float64;
    structure index (n,) int16), sorted by structure. A boundary voxel has a face neighbour with
    another label; the nearest voxel of a structure seen from outside it is always one (the next
    voxel towards the point along the axis of the largest offset is closer and not in it). One
    pass over the union box of ``boxes`` (crop kji [lo, hi)) grown by one voxel: each boundary
    voxel once, in C order."""
    sp = np.asarray(sp, float)
    src_lo = np.asarray(src_lo, int)
    if len(boxes) == 0:
        return np.zeros((0, 3)), np.zeros(0, np.int16)
    lo = np.maximum(boxes[:, 0].min(0) - 1 - src_lo, 0)
    hi = np.minimum(boxes[:, 1].max(0) + 1 - src_lo, src.shape)
    obst = np.zeros(max(len(struct_of_label), int(src.max()) + 1 if src.size else 0), bool)
    vals = np.flatnonzero(np.isin(struct_of_label, np.asarray(structures, int)))
    obst[vals] = True
    sub = src[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
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
    pts = (kji + lo + src_lo) * sp
    sol = np.concatenate([struct_of_label, np.full(len(obst) - len(struct_of_label), -1, np.int16)])
    ids = sol[sub[edge]].astype(np.int16)
    order = np.argsort(ids, kind="stable")
    return pts[order], ids[order]


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
    return _distance_outside(~mask, spacing_kji)


def _distance_outside(free: np.ndarray, spacing_kji) -> np.ndarray:
    """`_signed_distance` of ``~free`` from ``free`` (True outside the structures), without
    the inverted copy: ``edt`` gives exactly 0 at every voxel that is not ``free`` (a voxel of
    the structure is its own nearest), so subtracting half a voxel leaves -half there, and every
    other voxel is at least one voxel side away (> half)."""
    import edt

    an = tuple(float(s) for s in spacing_kji)
    half = np.float32(0.5 * min(an))
    out = edt.edt(free, anisotropy=an, black_border=False, parallel=2)
    out -= half
    return out.astype(np.float32, copy=False)


def _min_floor_into(tgt: np.ndarray, d: np.ndarray, margin: float, slab: int = 8) -> None:
    """``tgt = min(tgt, floor_f16(d - margin))`` in place (``tgt`` float16, ``d`` float32, the same
    shape), ``slab`` slices at a time (the float32 temporaries stay a few slices large).

    Only the voxels where ``x = d - margin`` lies below ``tgt`` are rounded and written: there
    floor_f16(x) <= x < tgt, so the minimum is floor_f16(x); elsewhere tgt <= x, and tgt being a
    float16 value, floor_f16(x) (the largest float16 <= x) >= tgt, so the minimum is tgt. The
    same values as rounding every voxel (most of a box lies beyond the cap, where tgt holds)."""
    m = np.float32(margin)
    for k in range(0, d.shape[0], slab):
        x = d[k:k + slab]
        if margin:
            x = x - m
        t = tgt[k:k + slab]
        low = x < t            # (float16 -> float32 is exact)
        if low.any():
            t[low] = _floor_f16(x[low])


def _or_bits(flags: np.ndarray, mask: np.ndarray, bit: int) -> None:
    """``flags[mask] |= bit`` in place (``flags`` uint8, ``mask`` bool of its shape, ``bit`` one
    flag < 256): the mask's bytes (0/1) times the bit, ORed in one pass; the same values without
    the masked indexing's index lists (about 10x faster on a crop)."""
    m = np.asarray(mask, bool)
    np.bitwise_or(flags, np.multiply(m.view(np.uint8), np.uint8(bit)), out=flags)


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
    from ..errors import InputError
    from .skin import mask_extent

    ext = mask_extent(problem.body)   # (a cached packed body: its box, no unpacked copy)
    if ext is None:
        raise InputError("the mask is empty: nothing is labelled")
    blo, bhi = np.clip(ext[0] - 2, 0, ct.shape), np.clip(ext[1] + 2, 0, ct.shape)
    return np.maximum(lo, blo), np.minimum(hi, bhi)


def _inputs_key(problem: PlanningProblem, lo, hi, cap: float) -> tuple:
    """Key of everything `precompute` reads: grid, crop, cap, structures (roles, margins),
    target and exempt values, the emphysema threshold, a digest of the labels the maps read (the
    crop and its halo, `_obstacle_region`; the planner builds a new label array per target) and
    the CT's values in the crop (the only part of the CT the maps read;
    `imagio.caching.content_token`: a new copy of the same CT, as the Slicer module and IMAGIO
    Web read it for every plan, hits; a changed value misses), and the body and skin masks: the
    objects of a cached skin model's packed masks (`imagio.caching.array_token`: read-only,
    made once per model), the values of a body mask the caller gave (`caching.mask_digest`)."""
    import hashlib

    from ..caching import array_token, content_token, mask_digest

    rlo, rhi = _obstacle_region(problem, lo, hi, cap)   # the labels read: the crop + the halo
    sl = tuple(slice(int(a), int(b)) for a, b in zip(rlo, rhi))
    h = hashlib.blake2b(digest_size=16)
    a = problem.labels.array[sl]
    h.update(str(a.dtype).encode())
    h.update(np.ascontiguousarray(a).view(np.uint8).reshape(-1))

    def mask_key(m):   # a cached model's `skin.PackedMask`: the token of its (read-only) bit array
        bits = getattr(m, "bits", None)
        return array_token(bits) if bits is not None else mask_digest(m)

    skin = None if problem.skin is None else mask_key(problem.skin.skin)
    crop = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))   # the CT read: the crop
    names = tuple(sorted((int(v), str(n)) for v, n in problem.labels.labels.items()))
    return (problem.ct.shape, problem.ct.ijk_to_ras.tobytes(), tuple(map(int, lo)), tuple(map(int, hi)),
            float(cap), tuple(problem.structures), names, int(problem.target.value), int(problem.exempt_value),
            float(problem.constraints.emphysema_hu), h.hexdigest(), content_token(problem.ct.array[crop]),
            mask_key(problem.body), skin)


def precompute(problem: PlanningProblem, cap_mm: float | None = None,
               progress=None) -> PlanningMaps:
    """Crop to the needle's reach around the target and build every map (see module doc).
    Cached (one entry, exact key of the inputs, `_inputs_key`): planning the same target of
    the same case again (other weights, constraints other than the emphysema threshold, a
    patient position, more proposals) reuses the maps, and their k-d trees, and costs only the
    scoring; another target of the same case reuses the distances the previous maps hold
    exactly (`_obstacle_maps`; ``reused_voxels`` says how many). The returned maps are shared:
    read-only by convention."""
    cap = float(cap_mm if cap_mm is not None else load_defaults()["distance_cap_mm"])
    lo, hi = _crop(problem)
    key = _inputs_key(problem, lo, hi, cap)
    maps = _CACHE.get(key)
    if maps is None:
        prev = next(iter(_CACHE.values()), None)   # another target's maps: their exact part reused
        box = _reusable(problem, lo, hi, cap, prev)
        reuse = None if box is None else (*box, prev.hard, prev.avoid)   # only what is copied
        del prev
        _CACHE.clear()   # (first: never two cases' maps at once)
        maps = _precompute(problem, lo, hi, cap, progress, reuse)
        del reuse
        _CACHE[key] = maps
    return maps


def _halo(cap: float, margin: float, spacing_kji) -> np.ndarray:
    """Voxels (k, j, i) beyond which a structure cannot bring ``distance - margin`` below the
    cap: a voxel centre one more voxel away is >= cap + margin + 2 voxel sides away along that
    axis alone, so its value (distance - half a voxel - margin) stays above the cap."""
    return np.ceil((cap + margin) / np.asarray(spacing_kji, float)).astype(int) + 1


def _largest_halo(problem: PlanningProblem, cap: float) -> np.ndarray:
    """`_halo` of the largest margin of a forbidden or margin structure (voxels, k, j, i)."""
    m = max([float(s.margin_mm) for s in problem.structures if s.role in ("forbidden", "margin")], default=0.0)
    return _halo(cap, m, problem.ct.spacing_kji)


def _obstacle_region(problem: PlanningProblem, lo, hi, cap: float) -> tuple:
    """(corner, end) in the full grid of the labels the maps on the crop [lo, hi) read: the crop
    grown by the largest halo (`_largest_halo`)."""
    pad = _largest_halo(problem, cap)
    return np.maximum(np.asarray(lo) - pad, 0), np.minimum(np.asarray(hi) + pad, problem.labels.shape)


def _dist_key(problem: PlanningProblem, cap: float) -> tuple:
    """What ``hard`` and ``avoid`` depend on besides the labels: grid, cap, and each obstacle's
    value, role and margin (the target's exempt structure left out; not the target itself)."""
    obst = tuple((int(s.value), s.role, float(s.margin_mm)) for s in problem.structures
                 if s.role in ("forbidden", "margin", "avoid") and s.value != problem.exempt_value)
    return (problem.labels.shape, problem.labels.ijk_to_ras.tobytes(), float(cap), obst)


def _reusable(problem: PlanningProblem, lo, hi, cap: float, prev) -> tuple | None:
    """The part of the crop [lo, hi) whose ``hard``/``avoid`` values the previous maps ``prev``
    (another target of the same case) hold exactly: (box corner and end in crop kji, corner in
    prev's crop kji) or None. Their obstacles, grid and cap must be the same (`_dist_key`), and the
    labels within the halo of the box equal to ``prev``'s: the box is prev's crop less the
    largest halo on each side not at the image's edge (there prev's labels are known), within
    this crop; the values there read no label beyond."""
    if prev is None or prev.dist_key != _dist_key(problem, cap):
        return None
    full = problem.labels.array
    shape = np.asarray(full.shape)
    plo = np.asarray(prev.lo)
    phi = plo + prev.label.shape
    pad = _largest_halo(problem, cap)
    inner_lo = np.where(plo > 0, plo + pad, 0)
    inner_hi = np.where(phi < shape, phi - pad, shape)
    blo, bhi = np.maximum(inner_lo, lo), np.minimum(inner_hi, hi)
    if np.any(bhi <= blo) or np.prod(bhi - blo) < 0.1 * np.prod(np.asarray(hi) - lo):
        return None
    clo, chi = np.maximum(blo - pad, 0), np.minimum(bhi + pad, shape)   # within prev's crop
    mine = full[tuple(slice(a, b) for a, b in zip(clo, chi))]
    theirs = prev.label[tuple(slice(a, b) for a, b in zip(clo - plo, chi - plo))]
    if not np.array_equal(mine, theirs):
        return None
    return blo - lo, bhi - lo, blo - plo


def _minus_box(shape, blo, bhi) -> list:
    """Boxes [lo, hi) covering [0, shape) less [blo, bhi) (at most 6)."""
    out = []
    lo, hi = np.zeros(3, int), np.asarray(shape, int).copy()
    for ax in range(3):
        if blo[ax] > lo[ax]:
            a, b = lo.copy(), hi.copy()
            b[ax] = blo[ax]
            out.append((a, b))
        if bhi[ax] < hi[ax]:
            a, b = lo.copy(), hi.copy()
            a[ax] = bhi[ax]
            out.append((a, b))
        lo[ax], hi[ax] = blo[ax], bhi[ax]
    return out


def _obstacle_maps(problem: PlanningProblem, lo, hi, cap: float, prog, reuse=None) -> tuple:
    """``hard`` and ``avoid`` (float16, rounded down) on the crop [lo, hi), each value equal to
    the whole-image definition (the structures outside the crop within the cap + margin count):
    each group's ``edt`` runs on the part of the crop within the group's halo (`_halo`) of its
    members, grown to take in every member voxel within the halo of that part (read from the
    full label array). With ``reuse`` ((box corner, end, source corner) from `_reusable`, and
    the source ``hard``, ``avoid`` of another target of the same case) that box is copied and
    only the rest of the crop computed: the
    values are the same (each is the whole-image definition). Returns (hard, avoid, measured
    structure indices, their boxes in crop kji (n, 2, 3), the label region read (a view), its
    corner in crop kji, the reused box or None)."""
    specs = problem.structures
    sp = problem.ct.spacing_kji
    full = problem.labels.array
    lo, hi = np.asarray(lo, int), np.asarray(hi, int)
    shape = hi - lo
    rlo, rhi = _obstacle_region(problem, lo, hi, cap)
    region = full[rlo[0]:rhi[0], rlo[1]:rhi[1], rlo[2]:rhi[2]]
    objs = ndimage.find_objects(region)
    cand = []
    for i, s in enumerate(specs):
        if s.role not in ("forbidden", "margin", "avoid") or s.value == problem.exempt_value \
                or not 0 < s.value <= len(objs) or objs[s.value - 1] is None:
            continue
        o = objs[s.value - 1]
        b = np.array([[x.start for x in o], [x.stop for x in o]]) + (rlo - lo)   # crop kji
        margin = 0.0 if s.role == "avoid" else float(s.margin_mm)
        pad = _halo(cap, margin, sp)
        b[0] = np.maximum(b[0], -pad)    # the part of the structure within its halo of the crop
        b[1] = np.minimum(b[1], shape + pad)
        if np.all(b[1] > b[0]):
            cand.append((i, s, ("avoid", 0.0) if s.role == "avoid" else ("hard", margin), b))
    measured = [i for i, *_ in cand]
    boxes = np.array([b for *_, b in cand], int).reshape(-1, 2, 3)
    any_avoid = any(k[0] == "avoid" for _, _, k, _ in cand)
    hard = np.full(tuple(shape), cap, np.float16)    # written per box, rounded down (module doc)
    avoid = np.full(tuple(shape) if any_avoid else (1, 1, 1), cap, np.float16)  # none: no map
    groups: dict = {}
    for n, (_, _, key, _) in enumerate(cand):
        groups.setdefault(key, []).append(n)
    nlut = len(objs) + 1
    todo = [(np.zeros(3, int), shape)]
    if reuse is not None:
        blo, bhi, plo, phard, pavoid = reuse
        dst = tuple(slice(a, b) for a, b in zip(blo, bhi))
        src = tuple(slice(a, b) for a, b in zip(plo, plo + (bhi - blo)))
        hard[dst] = phard[src]
        if any_avoid and pavoid.shape == phard.shape:
            avoid[dst] = pavoid[src]     # (a source without an avoid map: none within its halo)
        todo = _minus_box(shape, blo, bhi)
    for g, ((kind, margin), members) in enumerate(sorted(groups.items())):
        prog(0.1 + 0.85 * g / len(groups), f"planning: distance map of {len(members)} {kind} "
             f"structure(s)" + (f" with a {margin:g} mm margin" if margin else ""))
        pad = _halo(cap, margin, sp)
        mb = boxes[members]

        def boxes_of(mlo, mhi, slo, shi):
            """(output box within [slo, shi), edt input box), crop kji, for members spanning the
            box [mlo, mhi): the output is the part within the halo of the members; the input
            takes in every member voxel within the halo of the output."""
            olo, ohi = np.maximum(mlo - pad, slo), np.minimum(mhi + pad, shi)
            ilo = np.minimum(olo, np.maximum(mlo, olo - pad))
            ihi = np.maximum(ohi, np.minimum(mhi, ohi + pad))
            return olo, ohi, ilo, ihi

        parts = []
        for slo, shi in todo:
            union = [(*boxes_of(mb[:, 0].min(0), mb[:, 1].max(0), slo, shi), members)]
            each = [(*boxes_of(mb[n, 0], mb[n, 1], slo, shi), [members[n]]) for n in range(len(members))]
            # one pass over the group's box, or one per member when their boxes hold fewer
            # voxels (small scattered structures); the same distances either way
            vol = lambda p: int(np.prod(np.maximum(p[3] - p[2], 0)) if np.all(p[1] > p[0]) else 0)  # noqa: E731
            parts += union if vol(union[0]) <= sum(vol(p) for p in each) else each
        for olo, ohi, ilo, ihi, mem in parts:
            if np.any(ohi <= olo):
                continue
            free = np.ones(nlut, bool)
            free[[cand[n][1].value for n in mem]] = False
            a, b = ilo + lo - rlo, ihi + lo - rlo   # region indices
            d = _distance_outside(free[region[a[0]:b[0], a[1]:b[1], a[2]:b[2]]], sp)
            os_ = tuple(slice(x, y) for x, y in zip(olo, ohi))
            _min_floor_into(avoid[os_] if kind == "avoid" else hard[os_],
                            d[tuple(slice(x, y) for x, y in zip(olo - ilo, ohi - ilo))], margin)
            del d
    return hard, avoid, measured, boxes, region, rlo, None if reuse is None else reuse[:2]


def _precompute(problem: PlanningProblem, lo, hi, cap: float, progress=None, reuse=None) -> PlanningMaps:
    """`precompute` without the cache, on the crop [lo, hi); ``reuse``: the part of another
    target's distances that holds here exactly (`_reusable`, `_obstacle_maps`)."""
    prog = progress if isinstance(progress, Progress) else Progress(progress)
    ct, lab = problem.ct, problem.labels
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    src = lab.array[sl]
    specs = problem.structures
    nlab = int(max([s.value for s in specs] + [int(src.max()) if src.size else 0])) + 1
    # uint8 when every label value fits (issue 20: 16.5 MiB less through the 1 mm phantom's plan)
    narrow = nlab <= 256 and (src.size == 0 or int(src.min()) >= 0)
    label = np.array(src, dtype=np.uint8 if narrow else np.uint16, order="C")
    del src
    if label.size and not narrow:   # (signed labels < 0 wrap, as before: every value indexes the tables)
        nlab = max(nlab, int(label.max()) + 1)
    grid = lab.crop(lo, hi).with_array(label)
    sp = ct.spacing_kji
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
    air_vals = [v for v, n in names.items() if n in AERATED_LUNG]   # + emphysema (trial 33 H2)
    flags = np.zeros(label.shape, np.uint8)
    _or_bits(flags, body, BODY)
    if problem.skin is not None:
        _or_bits(flags, problem.skin.skin[sl], SKIN)
    if air_vals:
        # aerated: lung label and air on the CT (an unlabelled solid nodule or vessel inside the
        # lung label is not aerated lung: new-user trial 21 counted an 11.6 mm solid nodule);
        # -400 HU, `segmentation.common.LUNG_HU`, the parenchyma's upper bound
        aerated = values_mask(label, air_vals) & (hu < LUNG_HU)
        inner = [v for v, n in names.items()   # e.g. lung_nodule_2, lung_vessels_small
                 if n.rstrip("0123456789_") in LUNG_CONTENTS or n.startswith(tuple(c + "_" for c in LUNG_CONTENTS))]
        # inside the pleura: the lung labels themselves (with their contents), whatever the CT
        # reads there, as the verifier counts the pleura (`verify.Verifier._lung_checks`). Not
        # the aerated voxels: solid tissue inside the lung label (a vessel, an unlabelled nodule,
        # the target's own partial-volume rim) is not pleura, and read so it made a path leave
        # and re-enter the lung (3 pleural crossings) where the rim was wider than the closing
        # bridges, one voxel: the verdict then hung on the grid (new-user trial 109: lung1 as
        # an oblique 0.8 x 0.8 x 2.5 mm series refused every path through the 1 mm rim before
        # the nodule that the axial original's best path takes)
        lung = values_mask(label, air_vals) | values_mask(label, inner)
        lung = erode6(dilate6(lung)) | lung   # = ndimage.binary_closing(lung) | lung (tested)
    else:  # fallback for label maps without lungs: aerated = air inside the body
        aerated = body & (hu < -400)
        lung = ndimage.binary_closing(aerated, iterations=2) & body | aerated
    tissue = getattr(problem.target, "tissue", None)
    if tissue is not None and tissue.enclosed:   # a point's solid island in the lung (`target_tissue`)
        a = np.maximum(tissue.lo - lo, 0)
        b = np.minimum(tissue.lo + np.asarray(tissue.mask.shape) - lo, np.asarray(label.shape))
        if np.all(b > a):
            lung[a[0]:b[0], a[1]:b[1], a[2]:b[2]] |= tissue.mask[tuple(
                slice(x + lo[i] - tissue.lo[i], y + lo[i] - tissue.lo[i]) for i, (x, y) in enumerate(zip(a, b)))]
    elif problem.target.value and problem.target.in_lung:
        lung |= label == problem.target.value
    _or_bits(flags, lung, LUNG)
    _or_bits(flags, aerated, AERATED)
    _or_bits(flags, aerated & (hu < problem.constraints.emphysema_hu), EMPH)
    liver_vals = [v for v, n in names.items() if anatomy.is_liver(n)]
    if liver_vals:
        _or_bits(flags, values_mask(label, liver_vals), LIVER)
    has_lung = bool(lung.any())
    del lung, aerated, body   # (not held during the distance maps' edt: issue 20, the plan's peak;
    #                           the smoothed body of the skin normals: `PlanningMaps.body_smooth_box`)

    # distance maps: one edt pass per group of structures sharing role and margin ---------------
    # counted by chunks (`segmentation.common.label_counts`): bincount's int64 copy of the crop was
    # 8 bytes a voxel (132 MiB on the 1 mm phantom's crop) for the same counts
    present = label_counts(label, nlab - 1)[:nlab] > 0
    hard, avoid, measured, mboxes, region, rlo, reused = _obstacle_maps(problem, lo, hi, cap, prog, reuse)
    in_crop = [n for n, i in enumerate(measured) if present[specs[i].value]]
    any_avoid = any(specs[i].role == "avoid" for i in measured)
    prog(1.0, "planning: maps ready")
    _or_bits(flags, role_of_label[label] == ROLE_CODE["forbidden"], FORBIDDEN)
    boundary = boundary_points(region, rlo - lo, struct_of_label, measured, mboxes, sp)
    has = {"lung": has_lung, "lobes": int(present[[v for v in lung_vals if v < nlab]].sum()) > 1,
           "avoid": any_avoid, "liver": bool(liver_vals), "skin_model": problem.skin is not None}
    # uint16 when the labels fit in 8 bits (flags < 128): half the memory (issue 20); built in
    # place: no temporaries of the crop's size
    code = flags.astype(np.uint16 if narrow else np.uint32)
    del flags
    code <<= 8 if narrow else 16
    code |= label
    return PlanningMaps(grid, lo, hard, avoid, code, NORMAL_SIGMA_MM / np.asarray(sp, float),
                        [s.name for s in specs],
                        np.array([s.margin_mm if s.role == "margin" else 0.0 for s in specs]),
                        np.array([float(s.margin_mm) for s in specs]), [s.role for s in specs], role_of_label, struct_of_label,
                        [measured[n] for n in in_crop], np.clip(mboxes[in_crop], 0, label.shape), cap, has,
                        list(measured), mboxes, boundary, _dist_key(problem, cap),
                        None if reused is None else int(np.prod(reused[1] - reused[0])))
