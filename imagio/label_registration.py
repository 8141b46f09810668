"""Is a label map registered to its CT? Structures whose CT intensity is fixed by physics (bone:
dense; lungs and airways: air) are compared with the CT at zero shift and at shifts of the labels
up to ``search_mm`` along each axis; when a clearly displaced position fits the CT better than
the labels' own, the labels are not where their coordinates put them (another series of the same
study, a wrong origin, a wrong export). New-user trial 36 H3/H4: a liver label map 12 mm off the
CT and an airway mask 8 mm off were planned with no specific word.

Rule and thresholds: ``label_registration`` of imagio/data/input_limits.json (with sources); the
HU limits are those of bone (planning_defaults ``dense_min_hu``) and of an aerated lumen
(airway_limits ``mask_on_air``). Arrays [k, j, i]; shifts in RAS mm.
"""

from __future__ import annotations

import copy
from functools import lru_cache

import numpy as np

from .errors import InputError
from .limits import LIMITS
from .volume import Volume, values_mask


def _mean_of_scored(sc: np.ndarray) -> np.ndarray:
    """Row means of ``sc`` [shifts, sets] over its scored (non-NaN) entries; NaN for a row with
    none (no class in view at that shift), without numpy's "Mean of empty slice" warning on the
    user's terminal (new-user trial 43 F4)."""
    ok = ~np.isnan(sc)
    n = ok.sum(axis=1)
    total = np.where(ok, sc, 0.0).sum(axis=1)
    mean = (total / np.maximum(n, 1)).astype(sc.dtype)   # as np.nanmean: divided, then in sc's dtype
    return np.where(n > 0, mean, np.nan)


@lru_cache(maxsize=1)
def rule() -> dict:
    """The decision rule (input_limits ``label_registration``) with the HU limits it uses."""
    from .limits import AERATED_MAX_HU
    from .defaults import dense_min_hu

    cfg = dict(LIMITS["label_registration"])
    cfg["bone_min_hu"] = dense_min_hu()
    cfg["air_max_hu"] = AERATED_MAX_HU
    return cfg


def classes_from_labels(labels: Volume) -> dict[str, np.ndarray]:
    """{"bone": mask, "air": mask} of the structures of ``labels`` whose CT class physics fixes:
    bone (planning_defaults ``bone_prefixes``), the aerated lung parenchyma and the airways
    (``anatomy.AERATED_LUNG``, the airway names of bronch). Classes without a voxel are left out."""
    from .anatomy import AERATED_LUNG, AIRWAY_NAMES
    from .anatomy import is_bone

    names = labels.labels or {}
    bone = [v for v, n in names.items() if is_bone(n)]
    air = [v for v, n in names.items() if n in AERATED_LUNG or n in AIRWAY_NAMES]
    arr = np.asarray(labels.array)
    if bone and air and arr.dtype.kind == "u" and arr.dtype.itemsize <= 2 and arr.ndim == 3:
        masks = _two_classes(arr, bone, air)   # one lookup pass for both (issue 20)
    else:
        masks = {cls: values_mask(arr, vals) for cls, vals in (("bone", bone), ("air", air)) if vals}
    return {cls: m for cls, m in masks.items() if m.any()}


CLASS_SLAB = 1 << 18   # voxels per slab of `_two_classes` (its uint8 lookup temporaries)


def _two_classes(arr: np.ndarray, bone, air) -> dict[str, np.ndarray]:
    """{"bone": `values_mask` (arr, bone), "air": `values_mask` (arr, air)} of an 8- or 16-bit
    unsigned label array [k, j, i] by one lookup per voxel (a table of two bit flags) instead of
    one per class, a slab of whole slices (about `CLASS_SLAB` voxels) at a time: the same masks."""
    lut = np.zeros(1 << (8 * arr.dtype.itemsize), np.uint8)
    for bit, vals in ((1, bone), (2, air)):
        v = np.asarray(vals).ravel()
        v = v[(v >= 0) & (v < len(lut)) & (v == np.floor(v))].astype(np.int64)
        lut[v] |= bit
    out = {"bone": np.empty(arr.shape, bool), "air": np.empty(arr.shape, bool)}
    step = max(1, CLASS_SLAB // max(1, arr[0].size))
    for k0 in range(0, arr.shape[0], step):
        c = lut[arr[k0:k0 + step]]
        np.not_equal(c & 1, 0, out=out["bone"][k0:k0 + step])
        np.not_equal(c & 2, 0, out=out["air"][k0:k0 + step])
    return out


def _points_flat(flat: np.ndarray, shape, n_max: int) -> np.ndarray:
    """`_points` of the mask of ``shape`` whose voxels are the flat indices ``flat`` (ascending):
    the same points in the same order, without the mask."""
    n = len(flat)
    s = max(1, int(np.ceil((n / n_max) ** (1 / 3)))) if n > n_max else 1
    if s > 1:   # the slices k = 0, s, 2s, ... first (contiguous runs of ``flat``: found by bisection)
        plane = int(np.prod(shape[1:]))
        ks = np.arange(0, int(shape[0]), s, dtype=np.int64) * plane
        a, b = np.searchsorted(flat, ks), np.searchsorted(flat, ks + plane)
        flat = np.concatenate([flat[x:y] for x, y in zip(a, b)]) if len(ks) else flat[:0]
    idx = np.stack(np.unravel_index(flat, shape), axis=1)
    if s > 1:
        idx = idx[np.all(idx % s == 0, axis=1)]
    return idx[:: max(1, len(idx) // n_max)]


def _points(mask: np.ndarray, n_max: int) -> np.ndarray:
    """[N, 3] kji of at most about ``n_max`` voxels of ``mask``, a regular subsample (every
    s-th voxel along each axis: no index array of every voxel of a large mask)."""
    n = int(np.count_nonzero(mask))
    s = max(1, int(np.ceil((n / n_max) ** (1 / 3)))) if n > n_max else 1
    idx = np.argwhere(mask[::s, ::s, ::s]) * s
    return idx[:: max(1, len(idx) // n_max)]


AXES = "RAS"


def _band(mask: np.ndarray, grid: Volume, axis: int, mm: float) -> np.ndarray:
    """Bool [k, j, i]: the voxels whose label (in ``mask`` or not) differs from the voxel
    ``mm / 2`` or ``mm`` away along the RAS ``axis`` (either way), i.e. the label's boundary
    crossing that axis, inside and outside it. Only these voxels tell a shift along that axis:
    the wall of a tube along S (a femoral shaft) is the same after a shift along S."""
    A = np.linalg.inv(grid.ijk_to_ras[:3, :3])[::-1]   # RAS mm -> kji index change
    offs = {tuple(int(x) for x in np.rint(A[:, axis] * t)) for t in (0.5 * mm, mm, -0.5 * mm, -mm)}
    offs.discard((0, 0, 0))
    out = np.zeros(mask.shape, bool)
    n = np.array(mask.shape)
    for o in offs:
        o = np.array(o)
        src = tuple(slice(max(0, x), m + min(0, x)) for x, m in zip(o, n))     # p + o inside
        dst = tuple(slice(max(0, -x), m - max(0, x)) for x, m in zip(o, n))    # p
        out[dst] |= mask[dst] != mask[src]
    return out


def _class_points(mask: np.ndarray, grid: Volume, cfg: dict) -> list:
    """The point sets of one class, [N, 3] kji on ``grid`` with the wanted class (1 of it, 0 not):
    ("all", the label and its shell (``_shell``)) and one per RAS axis (``_band``: the boundary that
    crosses the axis, of it the part that faces the axis, ``_facing``), each a
    regular subsample of at most ``points_per_class`` voxels; computed on the class's box. On a
    grid finer than half of ``facing_grid_mm`` the axes' sets are found on its sub-lattice
    (`facing_lattice`) when each holds at least ``points_per_class`` voxels there, else on every
    voxel (issue 20: the 1 mm phantom's check 3.5 -> 1.4 CPU-s; bounds in input_limits
    ``facing_grid_reason``, tested)."""
    n_max, mm = int(cfg["points_per_class"]), float(cfg["shell_mm"])
    pad = np.ceil(2 * mm / np.abs(np.asarray(grid.spacing_kji, float))).astype(int) + 2
    rng = [np.flatnonzero(np.any(mask, axis=tuple(x for x in range(3) if x != a))) for a in range(3)]
    lo = np.maximum([r[0] for r in rng] - pad, 0)
    hi = np.minimum([r[-1] + 1 for r in rng] + pad, mask.shape)
    m = mask[tuple(slice(a, b) for a, b in zip(lo, hi))]
    sets = []
    pin = _points(m, n_max)
    pout = _points(_shell(m, grid.spacing_kji, mm), n_max)
    sets.append(("all", np.concatenate([pin, pout]) + lo, np.r_[np.ones(len(pin), np.uint8), np.zeros(len(pout), np.uint8)]))
    f, mc, facing = facing_lattice(grid.spacing_kji, cfg), m, None
    if np.any(f > 1):   # the axes' sets on the label grid's sub-lattice of step f (`facing_lattice`)
        mc = np.ascontiguousarray(m[::f[0], ::f[1], ::f[2]])
        M = np.array(grid.ijk_to_ras, float)
        M[:3, :3] = M[:3, :3] * f[::-1][None]          # columns i, j, k scaled by their steps
        facing = _facing(mc, Volume(mc, M, "label lattice"), mm, facing_cos(cfg))
        if min(len(x) for x in facing) < n_max:        # a set the subsample would not thin: as before
            f, mc, facing = np.ones(3, int), m, None
    if facing is None:
        facing = _facing(m, grid, mm, facing_cos(cfg))
    for a, name in enumerate(AXES):
        p = _points_flat(facing[a], mc.shape, n_max) * f
        sets.append((name, p + lo, m[tuple(p.T)].astype(np.uint8)))
    return sets


def facing_lattice(spacing_kji, cfg: dict) -> np.ndarray:
    """int [3] (k, j, i): the steps of the sub-lattice of the label grid on which `_class_points`
    finds the axes' boundary points (`_band`, `_facing`): per axis the largest whole number of
    voxels no longer than ``facing_grid_mm`` (at least 1; input_limits ``facing_grid_reason``: the
    facing normals are a Gaussian of ``shell_mm``'s gradient, and the axes' sets a regular
    subsample of at most ``points_per_class`` of them, on a lattice of 3-6 voxels at 1 mm anyway).
    Axes of spacing over ``facing_grid_mm`` / 2: 1 (every voxel, as before). `_class_points` keeps
    the lattice's sets only when each holds at least ``points_per_class`` voxels (then thinned to
    at most that many either way); a smaller set (a bone's end cap, the few facing voxels of an
    oblique shaft) is found on every voxel, as before, so that no axis loses points it needs."""
    step = float(cfg.get("facing_grid_mm", 0.0))
    sp = np.abs(np.asarray(spacing_kji, float))
    return np.maximum(1, np.floor(step / sp + 1e-6)).astype(int)


def facing_cos(cfg: dict) -> float:
    """The least |cos| between a boundary's normal and an axis for the boundary to tell a shift
    along that axis: moved by ``axis_min_shift_mm`` along the axis, a surface at angle t to it
    moves ``axis_min_shift_mm * cos(t)`` along its own normal, and it leaves its own ``shell_mm``
    shell only from cos(t) = shell_mm / axis_min_shift_mm (input_limits ``axis_reason``)."""
    return float(cfg["shell_mm"]) / float(cfg["axis_min_shift_mm"])


def _smooth_lines(x: np.ndarray, sigma: float, axis: int, keep: slice | None = None,
                  lines: np.ndarray | None = None) -> np.ndarray:
    """float32 [k, j, i]: scipy's ``gaussian_filter1d`` of ``x`` (bool or float32) along
    ``axis``, computed only on the lines (1-D along ``axis``) that hold a non-zero value and,
    given ``lines`` (bool over the other two axes, in order), are wanted; every other line is 0.
    A line of zeros filters to exactly 0, and scipy filters each line on its own (in float64,
    stored as float32), so every computed or all-zero line holds the values of the whole
    array's filter bit for bit; lines left out by ``lines`` are 0, not their values (the caller
    never reads them). ``keep``: a slice of the output along ``axis`` (the rest is read as the
    filter's input only). Issue 20: most lines of a class's box are empty (bone on the 1 mm
    phantom: 63 % of its k-lines), and the last pass is read only on the rows its gradient reads."""
    from scipy.ndimage import gaussian_filter1d

    xt = np.moveaxis(x, axis, -1)                 # a view: lines along the last axis
    want = xt.any(axis=-1)
    if lines is not None:
        want &= lines
    n = xt.shape[-1] if keep is None else len(range(*keep.indices(xt.shape[-1])))
    out = np.zeros(want.shape + (n,), np.float32)
    res = gaussian_filter1d(xt[want].astype(np.float32, copy=False), sigma, axis=-1)
    out[want] = res if keep is None else res[:, keep]
    return np.moveaxis(out, -1, axis)


def _reach_crop(x: np.ndarray, reach: tuple) -> tuple | None:
    """(slice along j, slice along i): the rows and columns of ``x`` [k, j, i] within ``reach``
    (j, i voxels) of a non-zero voxel (empty slices when there is none), or None when that is
    the whole of both axes. Separable filters of radius ``reach`` along j and i, scipy's
    'reflect' mode, computed on the crop give the whole array's values there, and the whole
    array's filter is exactly 0 outside it: each output reads its input within the radius, the
    crop keeps at least the radius of zeros inside every cut side (so what a cut side reflects
    is zeros, as what lies beyond it), and a side on the array's face is the array's face."""
    proj = x.any(axis=0)
    rows = np.flatnonzero(proj.any(axis=1))
    if not len(rows):
        return slice(0, 0), slice(0, 0)
    cols = np.flatnonzero(proj.any(axis=0))
    out = tuple(slice(max(int(v[0]) - r, 0), min(int(v[-1]) + 1 + r, n))
                for v, r, n in zip((rows, cols), reach, x.shape[1:]))
    if all(s.start == 0 and s.stop == n for s, n in zip(out, x.shape[1:])):
        return None
    return out


def _slab_field(m: np.ndarray, a0: int, a1: int, s0: int, s1: int, sig, reach) -> np.ndarray:
    """float32 [s1 - s0, j, i]: the slices [s0, s1) of ``m`` (bool [k, j, i]) smoothed by scipy's
    ``gaussian_filter`` (sigma ``sig`` voxels per axis, k then j then i, float32 between passes),
    read from the slices [a0, a1) (at least the k pass's reach, ``reach[0]``, beyond [s0, s1)
    or the array's face): bit for bit the whole array's values there. The k pass filters only the
    lines that hold a non-zero value (`_smooth_lines`), the j and i passes every line of the
    slab's crop (`_reach_crop` with their reaches ``reach[1:]``: the field is exactly 0 outside
    it; scipy reads strided lines through its own buffers, faster than gathering them; issue 20)."""
    from scipy.ndimage import gaussian_filter1d

    x = m[a0:a1]
    crop = _reach_crop(x, tuple(reach[1:]))
    keep = slice(s0 - a0, s1 - a0)
    if crop is None:
        sm = _smooth_lines(x, sig[0], 0, keep=keep)
        sm = gaussian_filter1d(sm, sig[1], axis=1, output=np.float32)
        return gaussian_filter1d(sm, sig[2], axis=2, output=np.float32)
    sm = np.zeros((s1 - s0,) + x.shape[1:], np.float32)
    if crop[0].start == crop[0].stop:   # nothing within reach
        return sm
    sub = _smooth_lines(x[:, crop[0], crop[1]], sig[0], 0, keep=keep)
    sub = gaussian_filter1d(sub, sig[1], axis=1, output=np.float32)
    gaussian_filter1d(sub, sig[2], axis=2, output=sm[:, crop[0], crop[1]])
    return sm


SLAB = 48   # k-slices per slab of `_facing` (its peak memory: a few slabs' slices, not the box's)


def _facing(m: np.ndarray, grid: Volume, mm: float, cos_min: float, slab: int = SLAB) -> list:
    """[flat indices (ascending, int64) into ``m``'s box per RAS axis]: the voxels of the axis's
    band (`_band` of ``m``) whose label boundary faces that axis: the normal of the label's
    surface there (the gradient, central differences per index step and one-sided at the box's
    faces, of ``m`` smoothed by a Gaussian of ``mm``, scipy's ``gaussian_filter``, float32, in
    RAS) makes |cos| >= ``cos_min`` with the axis. A boundary only crossed by the axis (the wall
    of an oblique femoral shaft, 7-9 degrees off S: its staircase voxels cross S but its normal
    lies nearly across it) moves by a fraction of a voxel when the map moves along the axis and
    tells nothing about it (review 39 H2: STS_022's S band held 4868 points, 148 of them on
    surfaces facing S; its correct map was doubted and maps 10 mm off along S passed).

    Slab by slab along k (``slab`` slices), not on the whole box: the bands read along k only
    within their offsets and the Gaussian's separable passes only within its radius (scipy:
    int(4 sigma + 0.5)), so each slab, read with that much of its neighbours, gives the whole
    box's values bit for bit (tested against the whole box's smoothing and bands), while the
    float32 field and the bands held are a slab's, not the box's (before: about 800 MiB per
    class on a 0.75 mm scan). The normal is computed once per voxel of any band. The field is
    `_slab_field`'s (the k pass on the lines that hold a non-zero value, the j and i passes on
    the slab's crop within their reach of one: the same values; issue 20)."""
    sig = mm / np.abs(np.asarray(grid.spacing_kji, float))
    shape = np.array(m.shape)
    K = int(shape[0])
    slab = max(int(slab), 1)
    r = int(4.0 * float(sig[0]) + 0.5)   # the k-pass's reach (scipy's radius at truncate=4.0)
    rj, ri = int(4.0 * float(sig[1]) + 0.5), int(4.0 * float(sig[2]) + 0.5)   # the j and i passes'
    A = np.linalg.inv(grid.ijk_to_ras[:3, :3])[::-1]   # RAS mm -> kji index change (as `_band`)
    rb = int(max(abs(int(np.rint(A[0, a] * t))) for a in range(3) for t in (0.5 * mm, mm)))   # the bands' k reach
    inv = np.linalg.inv(grid.ijk_to_ras[:3, :3])
    plane = int(shape[1] * shape[2])
    out = [[] for _ in range(3)]
    for k0 in range(0, K, slab):
        k1 = min(k0 + slab, K)
        b0, b1 = max(k0 - rb, 0), min(k1 + rb, K)
        bands = [_band(m[b0:b1], grid, a, mm)[k0 - b0:k1 - b0] for a in range(3)]
        li = np.flatnonzero(bands[0] | bands[1] | bands[2])   # flat in the slab, C order
        if not len(li):
            continue
        s0, s1 = max(k0 - 1, 0), min(k1 + 1, K)            # the slices the differences read
        a0, a1 = max(s0 - r, 0), min(s1 + r, K)             # and the k-pass's input for them
        row, i_ = np.divmod(li, int(shape[2]))
        p = [row // int(shape[1]) + k0, row % int(shape[1]), i_]   # box kji (as np.nonzero's)
        sm = _slab_field(m, a0, a1, s0, s1, sig, (r, rj, ri))
        flat = li + k0 * plane                     # flat in the box
        at = flat - s0 * plane                     # the same voxels, flat in the slab's field
        smf = sm.reshape(-1)                       # (C-contiguous: a view)
        g = []                                     # central differences per index step, k, j, i
        for d, step in enumerate((plane, int(shape[2]), 1)):
            up = p[d] < shape[d] - 1               # one step up / down inside the box, else none
            dn = p[d] > 0
            g.append(((smf[at + step * up] - smf[at - step * dn])
                      / np.maximum(up.astype(np.int64) + dn, 1)).astype(np.float32).astype(np.float64))
        del sm, smf, at
        # d/d(kji index) -> d/d(RAS mm): the gradient transforms with the inverse transpose of
        # ijk -> RAS, per voxel n = g_i inv[0] + g_j inv[1] + g_k inv[2] (float32 differences,
        # float64 sums), one RAS column at a time (the same element-wise operations as the rows'
        # broadcast form, on contiguous columns; issue 20), and |n| = sqrt((n_R^2 + n_A^2) + n_S^2),
        # np.linalg.norm's order over a row of 3 (tested: the same values)
        n = [g[2] * inv[0, c] + g[1] * inv[1, c] + g[0] * inv[2, c] for c in range(3)]
        del g
        norm = np.sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2])
        lim = cos_min * np.maximum(norm, 1e-12)
        pos = norm > 0
        for a in range(3):
            ok = np.abs(n[a]) >= lim
            ok &= pos
            ok &= bands[a].reshape(-1)[li]
            out[a].append(flat[ok])
    return [np.concatenate(o) if o else np.zeros(0, np.int64) for o in out]


def agreement(ct: Volume, grid: Volume, classes: dict[str, np.ndarray], digests: dict | None = None) -> dict:
    """Agreement of each class with the CT at shifts of the labels (RAS mm), over several point
    sets of the class (`_class_points`): "all" (the label and its shell) and one per RAS axis (the
    label's boundary across that axis: only it tells a shift along the axis). A set's agreement
    is the mean of two fractions: of its points in the label whose nearest CT voxel, after the
    shift, is of the class's intensity (bone >= bone_min_hu, air < air_max_hu), and of its points
    outside the label whose voxel is not. A set is scored over the same points at every shift:
    those that stay inside the CT over the whole search (``search_mm``); when fewer than
    ``min_voxels`` of them inside or outside the label do, over a search of ``short_search_mm``
    (its scores beyond it are NaN); else the set is left out (no evidence either way). Shifts: a
    3-D grid of ``coarse_step_mm``, then steps halved down to ``fine_step_mm`` around the best
    shift of each set name (for an axis's sets, the best that moves along that axis; for the whole,
    also its best beyond min_shift_mm and its best nearly along each axis). Returns
    {"shifts": [S, 3], "sets": {(cls, name): [S]}, "radius": {(cls, name): search mm},
    "n": {cls: points of "all"}}."""
    cfg = rule()
    radii = (float(cfg["search_mm"]), float(cfg["short_search_mm"]))
    A = np.linalg.inv(ct.ijk_to_ras[:3, :3])[::-1]   # RAS mm -> kji index change
    shape = np.array(ct.shape)
    data, radius, npts = [], {}, {}
    for cls, mask in classes.items():
        pts, want, sid = [], [], []
        for sname, p, w in _prepared(grid, cls, mask, (digests or {}).get(cls)):
            base = ct.world_to_kji(grid.kji_to_world(p.astype(float)))
            # the same points at every shift: those that stay inside the CT over the whole search.
            # Scored over the points still inside at each shift, a structure cut by the scan's end
            # (the lung bases of an abdominal CT) "fitted better" when shifted out of view, its
            # partial-volume edge leaving the count (trial 38 H1: TotalSegmentator's own liver +
            # lobes map of example_ct_sm refused as displaced by 6 mm). A scan too short for that
            # is searched less far (trial 38 M4: maps 8-20 mm off along S on a 9 cm scan unjudged)
            for r in radii:
                margin = np.ceil(np.abs(A).sum(axis=1) * r).astype(int) + 1
                keep = np.all((base >= margin) & (base <= shape - 1 - margin), axis=1)
                if min(np.count_nonzero(w[keep]), np.count_nonzero(w[keep] == 0)) >= int(cfg["min_voxels"]):
                    pts.append(base[keep]), want.append(w[keep]), sid.append(np.full(np.count_nonzero(keep), len(radius)))
                    radius[(cls, sname)] = r
                    npts[(cls, sname)] = int(np.count_nonzero(keep))
                    break
        if not pts:
            continue
        base, want, sid = np.concatenate(pts), np.concatenate(want), np.concatenate(sid)
        margin = np.ceil(np.abs(A).sum(axis=1) * radii[0]).astype(int) + 1
        lo = np.floor(base.min(axis=0)).astype(int) - margin
        hi = np.ceil(base.max(axis=0)).astype(int) + margin + 1
        # the class's CT intensity on the points' box (+ the search): 1 of the class, 0 not, 2 outside the CT
        box = np.full(hi - lo, 2, np.uint8)
        a, b = np.maximum(lo, 0), np.minimum(hi, shape)
        v = ct.array[tuple(slice(x, y) for x, y in zip(a, b))]
        box[tuple(slice(x, y) for x, y in zip(a - lo, b - lo))] = (
            v >= cfg["bone_min_hu"] if cls == "bone" else v < cfg["air_max_hu"])
        strides = np.array([box.shape[1] * box.shape[2], box.shape[2], 1])
        # the points grouped by (set, inside or outside the label), each group contiguous: a
        # group's count of points that fit is one segment sum (`np.add.reduceat`)
        # (within a group by position in the box: a group's count does not depend on its points'
        # order, and the reads of each shift run through the box in order, speed26)
        flat0 = np.rint(base - lo).astype(np.int64) @ strides
        order = np.lexsort((flat0, 1 - want, sid))
        flat0, want, sid = flat0[order], want[order], sid[order]
        ids = np.unique(sid)
        starts = np.flatnonzero(np.r_[True, (np.diff(sid) != 0) | (np.diff(want.astype(np.int8)) != 0)])
        g_sid, g_in = sid[starts], want[starts] == 1
        # per set its groups' columns: (inside, outside); every set holds both (``min_voxels``)
        col_in = np.array([np.flatnonzero((g_sid == i) & g_in)[0] for i in ids])
        col_out = np.array([np.flatnonzero((g_sid == i) & ~g_in)[0] for i in ids])
        n_g = np.diff(np.r_[starts, len(sid)]).astype(np.float32)
        data.append((flat0, box.ravel(), strides, want, ids, starts, col_in, col_out, n_g))
    keys = list(radius)
    rad = np.array([radius[k] for k in keys])

    def score(shifts):   # [S, n sets]: chunks of shifts, each vectorised over the points
        out = np.full((len(shifts), len(keys)), np.nan)
        for flat0, flat, strides, want, ids, starts, col_in, col_out, n_g in data:
            n_in, n_out = n_g[col_in], n_g[col_out]
            # a shift moves every point by the same whole number of CT voxels (each point at its
            # nearest voxel, the shift rounded): one offset in the flattened box per shift
            offs = np.rint(shifts @ A.T).astype(np.int64) @ strides
            # each shift's values read by ``take`` from the box viewed from its offset (the points'
            # indices moved once by the smallest offset; every point stays in the box, kept so): the
            # values of ``flat[flat0 + offset]`` without a (shifts x points) index array (issue 20)
            o0 = int(offs.min())
            idx = flat0 + o0
            buf = np.empty((min(64, len(shifts)), len(flat0)), flat.dtype)
            for c0 in range(0, len(shifts), 64):
                m = min(64, len(shifts) - c0)
                for s in range(m):   # ("clip" never clips here: no bounds-check buffer)
                    np.take(flat[int(offs[c0 + s]) - o0:], idx, out=buf[s], mode="clip")
                ok = buf[:m] == want   # every point inside the CT (kept so)
                # per group the points that fit: integer counts, exact in float32 (< 2^24 points),
                # so the fractions are those of the float32 sums over the points they replace
                fit = np.add.reduceat(ok, starts, axis=1, dtype=np.int32).astype(np.float32)
                # the label's voxels of the class and its shell's not, each half the score
                out[c0:c0 + 64, ids] = 0.5 * (fit[:, col_in] / n_in + fit[:, col_out] / n_out)
        beyond = np.abs(shifts).max(axis=1)[:, None] > rad[None] + 1e-6
        out[beyond] = np.nan
        return out

    c = float(cfg["coarse_step_mm"])
    ax = np.arange(-radii[0], radii[0] + 1e-6, c)
    shifts = np.stack(np.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)
    sc = score(shifts) if keys else np.zeros((len(shifts), 0))
    # halve the step around each set name's best shift; the whole's also around its best shift
    # beyond min_shift_mm and its best nearly along each axis (within a coarse step of it: a wrong
    # origin moves a map along one axis): the shifts its verdict weighs, refined before only when an
    # axis set's refinement happened to pass near them (a TS DICOM map 6 mm off along R read 1.42 or
    # 1.26 by that chance)
    for sname, along in (("all", None), ("all", -1)) + tuple(("all", a + 3) for a in range(3)) + \
            tuple((x, a) for a, x in enumerate(AXES)):
        cols = [i for i, k in enumerate(keys) if k[1] == sname]
        if not cols:
            continue
        step = c
        while step > float(cfg["fine_step_mm"]) + 1e-6:
            tot = _mean_of_scored(sc[:, cols]) if len(cols) > 1 else sc[:, cols[0]]
            tot = np.where(np.isnan(tot), -1.0, tot)
            if along == -1:   # beyond partial volume
                tot = np.where(np.linalg.norm(shifts, axis=1) >= float(cfg["min_shift_mm"]), tot, -1.0)
            elif along is not None:   # the best among the shifts along that axis (3-5: nearly along it)
                a = along % 3
                ok = np.abs(shifts[:, a]) >= float(cfg["axis_min_shift_mm"])
                if along >= 3:
                    ok &= np.delete(np.abs(shifts), a, axis=1).max(axis=1) <= c + 1e-6
                tot = np.where(ok, tot, -1.0)
            best = shifts[int(np.argmax(tot))]
            step /= 2
            fa = np.array([-step, 0.0, step])
            fine = best + np.stack(np.meshgrid(fa, fa, fa, indexing="ij"), -1).reshape(-1, 3)
            fine = fine[(np.abs(fine).max(axis=1) <= radii[0] + 1e-6)]
            fine = fine[~(np.abs(fine[:, None] - shifts[None]).max(axis=2) < 1e-6).any(axis=1)]   # not yet scored
            if len(fine):
                sc = np.concatenate([sc, score(fine)])
                shifts = np.concatenate([shifts, fine])
    return {"shifts": shifts, "sets": {k: sc[:, i] for i, k in enumerate(keys)}, "radius": radius,
            "n": {k[0]: npts[k] for k in keys if k[1] == "all"}}



def _mirror_hypotheses(ct: Volume, made_on: Volume | None) -> list:
    """[(RAS axis letter, unit RAS direction u, RAS centre c)]: the reflections a file written with
    an array axis reversed and its header kept produces: along each storage axis of the CT's grid
    (and of ``made_on``, the grid the label map was made on, when it differs), about the plane
    through that grid's array centre perpendicular to the axis (the reversed file's content
    lands there mirrored). Oblique grids: u is the axis's direction, not a RAS axis."""
    out, seen = [], []
    for g in (ct,) + ((made_on,) if made_on is not None else ()):
        key = (g.shape, g.ijk_to_ras.tobytes())
        if key in seen:
            continue
        seen.append(key)
        c = g.kji_to_world(((np.asarray(g.shape, float) - 1.0) / 2.0)[None])[0]
        for col in range(3):   # i, j, k
            u = g.direction[:, col] / np.linalg.norm(g.direction[:, col])
            out.append((AXES[int(np.argmax(np.abs(u)))], u, c))
    return out


def mirror_fit(ct: Volume, grid: Volume, classes: dict, made_on: Volume | None, cfg: dict,
               digests: dict | None = None) -> dict | None:
    """Does the label map fit the CT clearly better mirrored than as it lies (new-user trial 79
    finding 7: lung1 reversed along i with its header kept, planned with its own label map; a
    near-symmetric trunk fits the shift search's best shift no better, 1.11)? For each reflection
    of `_mirror_hypotheses`, the "all" point sets of the classes (`_class_points`: each label and
    its shell, `agreement`'s measure: the mean of the share of the label's points of the class's CT
    intensity and of the shell's points not of it, averaged over the classes) are scored on the CT
    as they lie and reflected, each at shifts along the reflection's axis up to ``search_mm``
    (`_best_along`: the plane of a mirror is not known to the millimetre, and a shift along its
    axis moves it by half the shift), over the points inside the CT at every shift of both; each
    hypothesis's best is kept. 0.04-0.1 CPU-s per case (the point sets are the registration
    check's, already made). Verdict as `_verdict`'s: ``mismatch_ratio`` = (1 - best as it
    lies) / (1 - best mirrored); ``mirrored`` when at least ``refuse_ratio`` and the fit rises by
    ``min_gain``, ``doubtful`` from ``warn_ratio``. Returns the worst hypothesis's
    {"axis": "R"/"A"/"S", "direction", "at_lies", "at_mirror", "shift_mm", "mismatch_ratio",
    "per_class_lies", "per_class_mirror", "mirrored", "doubtful", "ratios": {axis: ratio}} or None
    when no class has enough points in view. RAS mm; arrays [k, j, i]."""
    sets = {}
    for cls, mask in classes.items():
        for sname, p, w in _prepared(grid, cls, mask, (digests or {}).get(cls)):
            if sname == "all":
                sets[cls] = (grid.kji_to_world(p.astype(float)), w.astype(bool))
    if not sets:
        return None
    reach = float(cfg["search_mm"])
    shape = np.array(ct.shape)
    verdicts = []
    for axis, u, c in _mirror_hypotheses(ct, made_on):
        lies, mirr = {}, {}
        for cls, (xyz, w) in sets.items():
            hyps = (xyz, xyz - 2.0 * ((xyz - c) @ u)[:, None] * u[None])
            # inside the CT at both ends of the search, so at every shift between (a box is convex)
            ok = np.ones(len(xyz), bool)
            for x in hyps:
                for t in (-reach, reach):
                    k = np.rint(ct.world_to_kji(x + t * u)).astype(np.int64)
                    ok &= np.all((k >= 0) & (k < shape), axis=1)
            wk = w[ok]
            if min(np.count_nonzero(wk), np.count_nonzero(~wk)) < int(cfg["min_voxels"]):
                continue
            lies[cls], mirr[cls] = (hyps[0][ok], wk), (hyps[1][ok], wk)
        if not lies:
            continue
        (bl, s0, pl), (bm, s1, pm) = (_best_along(ct, h, u, cfg) for h in (lies, mirr))
        gain = (1.0 - s0) / max(1.0 - s1, 1e-3)
        big = s1 - s0 >= float(cfg["min_gain"])
        verdicts.append({"axis": axis, "direction": [round(float(x), 4) for x in u],
                         "at_lies": round(s0, 3), "at_mirror": round(s1, 3), "shift_mm": round(bm, 1),
                         "mismatch_ratio": round(gain, 2),
                         "per_class_lies": {k: round(v, 3) for k, v in pl.items()},
                         "per_class_mirror": {k: round(v, 3) for k, v in pm.items()},
                         "mirrored": big and gain >= float(cfg["refuse_ratio"]),
                         "doubtful": big and gain >= float(cfg["warn_ratio"])})
    if not verdicts:
        return None
    worst = max(verdicts, key=lambda v: (v["mirrored"], v["doubtful"], v["mismatch_ratio"]))
    ratios = {}
    for v in verdicts:
        ratios[v["axis"]] = max(ratios.get(v["axis"], 0.0), v["mismatch_ratio"])
    return {**worst, "ratios": ratios}


def _best_along(ct: Volume, hyp: dict, u: np.ndarray, cfg: dict) -> tuple[float, float, dict]:
    """(shift mm, score, {class: score}) of the best shift t * ``u`` (|t| <= ``search_mm``) of the
    point sets ``hyp`` {class: ([N, 3] RAS mm, bool [N] in the label)}, scored as `agreement`'s
    "all" sets (the mean over the classes of the mean of the label's share of the class's CT
    intensity and of its shell's share not of it): steps of ``coarse_step_mm`` halved down to
    ``fine_step_mm`` around the best, as `agreement` searches."""
    def score(t):
        per = {}
        for cls, (x, w) in hyp.items():
            k = np.rint(ct.world_to_kji(x + t * u)).astype(np.int64)
            v = ct.array[k[:, 0], k[:, 1], k[:, 2]]
            of = v >= cfg["bone_min_hu"] if cls == "bone" else v < cfg["air_max_hu"]
            per[cls] = 0.5 * (float(np.mean(of[w])) + float(np.mean(~of[~w])))
        return float(np.mean(list(per.values()))), per

    reach, step = float(cfg["search_mm"]), float(cfg["coarse_step_mm"])
    done = {float(t): score(t) for t in np.arange(-reach, reach + 1e-6, step)}
    best = max(done, key=lambda t: done[t][0])
    while step > float(cfg["fine_step_mm"]) + 1e-6:
        step /= 2
        for t in (best - step, best + step):
            if abs(t) <= reach + 1e-6 and t not in done:
                done[t] = score(t)
        best = max(done, key=lambda t: done[t][0])
    return best, done[best][0], done[best][1]


_PREPARED: dict = {}


def _prepared(grid: Volume, cls: str, mask: np.ndarray, digest: tuple | None = None) -> list:
    """`_class_points` of one class, computed once per case (keyed on the grid's geometry and the
    mask's contents, `caching.mask_digest`, or ``digest`` when the caller has it; the last few
    cases kept): the shell's distance transform is the costly part, and the sarcoma biopsy, the
    Slicer module's re-planning or a second target check the same map again."""
    from .caching import mask_digest

    key = (cls, grid.ijk_to_ras.tobytes(), digest if digest is not None else mask_digest(mask))
    hit = _PREPARED.get(key)
    if hit is None:
        hit = _class_points(mask, grid, rule())
        while len(_PREPARED) >= 8:
            _PREPARED.pop(next(iter(_PREPARED)))
        _PREPARED[key] = hit
    return hit


def _shell(mask: np.ndarray, spacing_kji, mm: float) -> np.ndarray:
    """Bool [k, j, i]: the voxels within ``mm`` of ``mask`` (bool [k, j, i]) outside it. A label
    of the class is a fit only if what lies just outside it is NOT of the class: scored on the
    label alone, moving a lung label deeper into a larger aerated region always "fitted better"
    (trial 38 H1: the lung bases of an abdominal CT, whose labelled edge is partial volume, were
    refused as displaced). The dilation by a ball of ``mm`` (`segmentation.ballmorph.dilate_ball`:
    the voxels an ``edt`` distance map thresholded at ``mm`` gives, by bit-packed row shifts);
    before, scipy's ``distance_transform_edt`` on the mask's box: the same voxels on every grid
    tested (Testing/test_label_registration.py) at 40-50x the CPU time (1 mm phantom: bone 9.8 ->
    0.19 CPU-s, air 4.0 -> 0.10)."""
    from .segmentation.ballmorph import dilate_ball

    out = dilate_ball(np.asarray(mask, bool), float(mm), spacing_kji)
    out &= ~mask
    return out


def _axis_far(sh: np.ndarray, axis: int | None, cfg: dict, grids) -> np.ndarray:
    """Bool [S]: the shifts beyond partial volume: at least ``min_shift_voxels`` voxels of each
    grid and ``min_shift_mm``; along ``axis`` only, when given, and at least ``axis_min_shift_mm``
    (an axis is judged on label boundaries alone, which a label made on a coarser grid and
    resampled places up to a voxel of that grid off)."""
    v = sh if axis is None else sh * (np.arange(3) == axis)
    far = np.linalg.norm(v, axis=1) >= float(cfg["min_shift_mm"] if axis is None else cfg["axis_min_shift_mm"])
    for g in grids:
        to_vox = np.linalg.inv(g.ijk_to_ras[:3, :3])
        far &= np.linalg.norm(v @ to_vox.T, axis=1) >= float(cfg["min_shift_voxels"])
    return far


def _verdict(sh, per: dict, far, cfg) -> dict | None:
    """The best far shift of the classes' mean score ``per`` and the mismatch ratio to it."""
    sc = np.mean(np.stack(list(per.values())), axis=0)
    z = int(np.argmin(np.abs(sh).sum(axis=1)))
    scf = np.where(far, sc, -1.0)
    b = int(np.argmax(scf))
    if scf[b] < 0:
        return None
    s0, s1 = float(sc[z]), float(sc[b])
    gain = (1.0 - s0) / max(1.0 - s1, 1e-3)   # mismatches where it lies / where it fits best
    big = s1 - s0 >= float(cfg["min_gain"])   # not a few voxels of a near-perfect fit
    # the best of the shorter shifts, not weighed as evidence (a coarse map's boundaries), but named
    # when the map fits no better than chance where it lies (new-user trial 47 M1: a map one 3 mm
    # voxel off was told "no shift within 16 mm makes it fit")
    near = np.where(~far & ~np.isnan(sc), sc, -1.0)
    n = int(np.argmax(near))
    return {"shift_mm": [round(float(x), 1) for x in sh[b]], "at_zero": round(s0, 3), "at_shift": round(s1, 3),
            "near_shift_mm": [round(float(x), 1) for x in sh[n]], "at_near": round(float(near[n]), 3),
            "mismatch_ratio": round(gain, 2),
            "per_class_zero": {k: round(float(v[z]), 3) for k, v in per.items()},
            "per_class_shift": {k: round(float(v[b]), 3) for k, v in per.items()},
            "displaced": big and gain >= float(cfg["refuse_ratio"]), "doubtful": big and gain >= float(cfg["warn_ratio"])}


def displacement(ct: Volume, grid: Volume, classes: dict[str, np.ndarray],
                 made_on: Volume | None = None, ct_token: tuple | None = None) -> dict | None:
    """{"shift_mm", "at_zero", "at_shift", "per_class_zero", "per_class_shift", "mismatch_ratio",
    "displaced", "doubtful", "axis", "axes", "unjudged", "search_mm", "points"} or None when no
    class has enough voxels. Judged on the whole of each class ("all") and on each RAS axis's
    boundary points (`agreement`): a shift along an axis is told only by the boundaries that
    cross it (a femur along S moved along S fits itself but at its ends; new-user trial 38 M1:
    10 mm along S read 1.38 over the whole bone). ``displaced``: for the whole or for an axis, a
    shift of at least ``min_shift_voxels`` voxels of the CT's and of the labels' grid, and of at
    least ``min_shift_mm`` (for an axis: along it, and ``axis_min_shift_mm``), leaves fewer mismatches (voxels of a class not
    of its intensity on the CT) than the labels where they lie, by the factor ``refuse_ratio``
    (``warn_ratio``: ``doubtful``); judged over ``search_mm`` with the sets that stay in view so
    far and over ``short_search_mm`` with every set; the worst verdict is reported, the whole's
    when it is as bad (``axis``: None for the whole; ``search_mm``: its search; ``near_shift_mm`` /
    ``at_near``: the best of the shifts shorter than those weighed and its fit, named in a warning
    only). ``axes``: each axis's worst verdict; ``unjudged``:
    the axes that too few boundary points in view facing them tell (`_facing`; fewer than
    ``min_voxels`` inside or outside the label: said as a doubt by `require_registered`);
    with nothing in view, ``mismatch_ratio`` is None. ``made_on``: the grid the map was made on
    when ``grid`` is its resampling onto the CT's: shifts under ``min_shift_voxels`` of its voxels
    are no evidence either (new-user trial 41 H1: the CTA's correct map stored on a 4.5 mm grid was
    refused as displaced by 6 mm, one such voxel). Cached per case (issue 20): keyed on the CT's
    values (`caching.content_token`, or ``ct_token`` when the caller has just taken it of this
    ``ct``: a new copy of the same CT hits, any changed value misses), the
    three grids and the classes' contents (`caching.mask_digest`), all the verdict reads; a second
    target's check (another lesion painted, the same bone and air) returns a copy of it."""
    from .caching import content_token, mask_digest

    cfg = rule()
    classes = {k: m for k, m in classes.items() if int(np.count_nonzero(m)) >= int(cfg["min_voxels"])}
    if not classes:
        return None
    digests = {k: mask_digest(m) for k, m in classes.items()}
    geo = [(g.shape, g.ijk_to_ras.tobytes()) if g is not None else None for g in (ct, grid, made_on)]
    key = (ct_token or content_token(ct.array), tuple(geo), tuple(sorted(digests.items())))
    hit = _DISPLACEMENT.get(key)
    if hit is None:
        hit = _displacement(ct, grid, classes, made_on, cfg, digests)
        _DISPLACEMENT.clear()   # one case
        _DISPLACEMENT[key] = hit
    return copy.deepcopy(hit)


_DISPLACEMENT: dict = {}   # one case: (CT contents, grids, class digests) -> `displacement`'s verdict


def forget_cached_registration() -> None:
    """Drop the cached verdict of `displacement` (after editing a CT array in place, or to free it)."""
    _DISPLACEMENT.clear()


def _displacement(ct: Volume, grid: Volume, classes: dict, made_on: Volume | None, cfg: dict,
                  digests: dict) -> dict:
    """`displacement` computed (its classes of at least ``min_voxels`` voxels, their digests)."""
    a = agreement(ct, grid, classes, digests)
    mirror = mirror_fit(ct, grid, classes, made_on, cfg, digests)
    sh, sets, radius = a["shifts"], a["sets"], a["radius"]
    grids = (ct, grid) + ((made_on,) if made_on is not None else ())
    verdicts = []   # (axis or None, search mm, verdict)
    for r in sorted(set(radius.values()) | {float(cfg["short_search_mm"])}, reverse=True):
        within = np.abs(sh).max(axis=1) <= r + 1e-6
        for x in (None,) + tuple(AXES):
            per = {c: v for (c, n), v in sets.items() if n == (x or "all") and radius[(c, n)] >= r}
            if per:
                far = _axis_far(sh, None if x is None else AXES.index(x), cfg, grids) & within
                v = _verdict(sh, per, far, cfg)
                if v is not None:
                    verdicts.append((x, r, v))
    # an axis's verdict rests on its boundary points alone (fewer, and a coarse map's staircase
    # edges): it refuses only when the whole map is itself in doubt at that search; else it is a
    # doubt (new-user trial 41 H1: the CTA's correct map stored on a 4.5 mm grid was refused on
    # its S edges alone, the whole map fitting where it lay)
    # ... and when the whole's best shift moves the map the same way along that axis (a label that
    # fits the CT's class nowhere, a joint capsule read as bone, "fits" best at opposite search edges)
    whole = {r: v["shift_mm"] for x, r, v in verdicts if x is None and v["doubtful"]}
    for x, r, v in verdicts:
        if x is not None and v["displaced"] and (
                r not in whole or whole[r][AXES.index(x)] * v["shift_mm"][AXES.index(x)] <= 0):
            v["displaced"] = False
    unjudged = [x for x in AXES if not any(n == x for (c, n) in sets)]
    if not verdicts:
        return {"shift_mm": [0.0, 0.0, 0.0], "at_zero": None, "at_shift": None, "mismatch_ratio": None,
                "per_class_zero": {}, "per_class_shift": {}, "points": a["n"], "displaced": False,
                "doubtful": False, "axis": None, "axes": {}, "unjudged": unjudged,
                "search_mm": float(cfg["short_search_mm"]), "mirror": mirror}

    def worst(vs):   # refused before doubtful before neither; then the whole's (its shift is fixed by
        # every boundary, an axis's only along that axis), the longer search, the larger ratio
        return max(vs, key=lambda t: (t[2]["displaced"], t[2]["doubtful"], t[0] is None, t[1], t[2]["mismatch_ratio"]))
    x, r, v = worst(verdicts)
    axes = {}
    for ax in AXES:
        vs = [t for t in verdicts if t[0] == ax]
        if vs:
            w = worst(vs)[2]
            axes[ax] = {q: w[q] for q in ("shift_mm", "mismatch_ratio", "displaced", "doubtful")}
    return {**v, "points": a["n"], "axis": x, "search_mm": r, "unjudged": unjudged, "axes": axes, "mirror": mirror}


def _describe(r: dict) -> str:
    cls = ", ".join(f"{k} {r['per_class_zero'][k]:.2f} -> {r['per_class_shift'][k]:.2f}" for k in r["per_class_zero"])
    of = ("its bone/air structures" if r.get("axis") is None else
          f"the edges of its bone/air structures that cross the {_AXIS_NAME[r['axis']]} axis (only they fix it)")
    return (f"the agreement of {of} with the CT's bone/air is {r['at_zero']:.2f} where it lies and "
            f"{r['at_shift']:.2f} when moved by ({r['shift_mm'][0] + 0.0:g}, {r['shift_mm'][1] + 0.0:g}, {r['shift_mm'][2] + 0.0:g}) mm RAS ({cls})")


_AXIS_NAME = {"R": "right-left", "A": "anterior-posterior", "S": "head-foot"}


def mirror_words(m: dict, what: str) -> str:
    """The one-line refusal of a label map that fits the CT mirrored (`mirror_fit`'s verdict ``m``)."""
    cls = ", ".join(f"{k} {m['per_class_lies'][k]:.2f} -> {m['per_class_mirror'][k]:.2f}" for k in m["per_class_lies"])
    return (f"{what} and the CT are mirror images of each other along {_AXIS_NAME[m['axis']]}: its bone/air "
            f"structures fit the CT's bone/air {m['at_lies']:.2f} as they lie and {m['at_mirror']:.2f} mirrored "
            f"along the storage axis nearest {m['axis']} ({cls}); one of the two files has the wrong orientation (a "
            "NIfTI written with the other handedness, a DICOM read with a wrong orientation): check both headers "
            "and export the wrong one again")


def check_map_on_ct(ct: Volume, on_ct: Volume, what: str, unchecked: str = "") -> str:
    """The registration check of a label map read against a CT by a command that has no check of its
    own (`require_registered` on the map's bone and air structures, `classes_from_labels`): refuses a
    map displaced from the CT or mirrored (InputError, one line), returns its doubts ("" when none),
    the orientation's first (`label_orientation.check_orientation`: a liver left of the patient's
    midline, trial 116 H2). ``on_ct``: the map on ``ct``'s grid (`io.labels_on_grid`). A map with no
    bone or air structure (an organ alone) is not shifted against the CT: its tissues are checked on
    placing it (`io.check_placed`). New-user
    trial 115 M4: `imagio vessels` and `imagio eligibility` took a liver map displaced 12 mm with a
    warning, while `imagio plan` and `imagio bronch` refuse it."""
    from .label_orientation import check_orientation

    classes = classes_from_labels(on_ct)
    said = check_orientation(on_ct, what, ct, classes=classes)   # mirrored / upside down, or the liver's side
    if classes:
        said.append(require_registered(ct, on_ct, classes, what, unchecked))
    return "; ".join(w for w in said if w)


def require_registered(ct: Volume, grid: Volume, classes: dict[str, np.ndarray], what: str,
                       unchecked: str = "", made_on: Volume | None = None, ct_token: tuple | None = None) -> str:
    """`_require_registered`, and a warning first when the map fits the CT mirrored better than as it
    lies by ``warn_ratio`` but not by ``refuse_ratio`` (`mirror_fit` ``doubtful``; the same
    thresholds as a doubtful shift): a mirror it cannot tell from the anatomy's symmetry."""
    said = _require_registered(ct, grid, classes, what, unchecked, made_on, ct_token)
    r = displacement(ct, grid, classes, made_on, ct_token)   # cached: the verdict just judged
    m = (r or {}).get("mirror")
    if m is None or not m["doubtful"]:
        return said
    doubt = (f"{what} may be a mirror image of the CT along {_AXIS_NAME[m['axis']]} (it fits the CT's bone/air "
             f"{m['at_lies']:.2f} as it lies and {m['at_mirror']:.2f} mirrored): check the sides on the CT and both "
             "files' orientation")
    return doubt + (f"; {said}" if said else "")


def _require_registered(ct: Volume, grid: Volume, classes: dict[str, np.ndarray], what: str,
                        unchecked: str = "", made_on: Volume | None = None, ct_token: tuple | None = None) -> str:
    """Refuse (InputError, one line) labels displaced from the CT (``displacement``); return a
    warning ("" when none) when the fit is doubtful, when the labels fit no better than chance
    where they lie (``chance_fit_max``: displaced beyond the search or another scan's), when nothing could be judged (no bone or air
    class: a tumour-only map; or nothing in view), or an axis could not be judged (too few bone/air
    boundary points facing it in view), naming what is ``unchecked`` then; refuse a map that fits
    the CT clearly better mirrored (`mirror_fit`, `mirror_words`) first. ``made_on``,
    ``ct_token``: see `displacement`."""
    r = displacement(ct, grid, classes, made_on, ct_token)
    tail = f"; {unchecked}" if unchecked else ""
    if r is None:   # a tumour-only map: nothing physics places (was passed without a word: CLOSING 13)
        return (f"{what} has no bone or air structure (of at least {int(rule()['min_voxels'])} voxels) to check its "
                f"registration against the CT: a shift or a flipped axis of it could not be checked; check it on "
                f"the CT{tail}")
    if r["mismatch_ratio"] is None and not (r.get("mirror") or {}).get("mirrored"):
        return (f"{what}: its registration to the CT could not be checked (its bone/air structures do not stay in "
                f"view when moved by {r['search_mm']:g} mm: too short a scan or too little of them in it): check "
                f"it on the CT{tail}")
    m = r.get("mirror")
    if m is not None and m["mirrored"]:   # first: a mirror explains a displaced fit too
        raise InputError(mirror_words(m, what))
    d = 0.0 - np.asarray(r["shift_mm"]) + 0.0   # the labels lie at -shift from where the CT fits them (no "-0")
    where = f"({d[0]:g}, {d[1]:g}, {d[2]:g}) mm (RAS)"
    if any(abs(x) >= float(r["search_mm"]) - 1e-6 for x in r["shift_mm"]):
        where = "at least " + where   # at the edge of the search
    if r["displaced"]:
        raise InputError(f"{what} appears displaced by {where} from the CT: it does not belong to this "
                         f"CT or its geometry (origin, spacing, direction) is wrong; {_describe(r)}. Give the "
                         "segmentation of this CT, or correct its geometry")
    cfg = rule()
    near = np.asarray(r.get("near_shift_mm", (0.0, 0.0, 0.0)), float)
    # short: under what is weighed for the whole map (an axis verdict's "near" shifts may be long
    # across that axis: review 41 L1)
    short = near.any() and float(np.linalg.norm(near)) < max(
        float(cfg["min_shift_mm"]), float(cfg["min_shift_voxels"]) * float(np.max(ct.spacing)))
    m, dn = near + 0.0, 0.0 - near + 0.0   # (no "-0")
    short_words = (f"it may lie ({dn[0]:g}, {dn[1]:g}, {dn[2]:g}) mm from where it belongs (a wrong origin?), a "
                   f"shift too short (under {float(cfg['min_shift_voxels']):g} voxels of its grid or "
                   f"{float(cfg['min_shift_mm']):g} mm) to be refused on this evidence; check it on the CT{tail}")
    if r["doubtful"]:
        if short and float(r.get("at_near", -1.0)) > float(r["at_shift"]) + float(cfg["min_gain"]):
            # the short shift fits better than the longer one weighed: name it (new-user trial 48 M2: a
            # map one 3 mm voxel off along R was said "may be displaced by (-6, 4, -6) mm", a shift that
            # fits worse than the map where it lies)
            return (f"{what} fits the CT {float(r['at_zero']):.2f} where it lies and {float(r['at_near']):.2f} when "
                    f"moved by ({m[0]:g}, {m[1]:g}, {m[2]:g}) mm RAS: {short_words}")
        return f"{what} may be displaced by {where} from the CT ({_describe(r)}): check it on the CT{tail}"
    if float(r["at_zero"]) <= float(cfg["chance_fit_max"]):   # beyond the search (trial 45 H1)
        head = (f"{what}: its bone and air structures fit the CT no better than chance where they lie "
                f"({float(r['at_zero']):.2f}; unrelated labels fit 0.50, a map of this CT 0.55 or more)")
        if float(r.get("at_near", -1.0)) > float(cfg["chance_fit_max"]) + float(cfg["min_gain"]) and short:
            return (f"{head}, and fit {float(r['at_near']):.2f} when moved by ({m[0]:g}, {m[1]:g}, {m[2]:g}) mm "
                    f"RAS: {short_words}")
        return (f"{head} and no shift within {r['search_mm']:g} mm makes them fit: it may be displaced by more "
                f"than that or belong to another scan; check it on the CT{tail}")
    if r["unjudged"]:
        names = " and ".join(_AXIS_NAME[x] for x in r["unjudged"])
        return (f"{what}: too few edges of its bone/air structures face the {names} axis within the scan (a long "
                f"bone whose ends lie out of view fits itself moved along its length): a displacement along it "
                f"could not be checked; check it on the CT{tail}")
    return ""


def _intensity_classes(names: dict) -> dict:
    """{label value: (name, class, lo HU, hi HU)} of the structures whose CT intensity class
    input_limits ``label_intensity`` fixes (the median of their voxels in [lo, hi])."""
    from .anatomy import AERATED_LUNG, AIRWAY_NAMES
    from .anatomy import is_bone

    cls = LIMITS["label_intensity"]["classes"]
    out = {}
    for v, n in (names or {}).items():
        c = ("air" if n in AERATED_LUNG or n in AIRWAY_NAMES else "bone" if is_bone(n) else
             next((k for k in ("solid_organ", "blood_vessel") if n in cls[k]["names"]), None))
        if c is not None:
            out[int(v)] = (n, c, float(cls[c].get("min_median_hu", -np.inf)), float(cls[c].get("max_median_hu", np.inf)))
    return out


def intensity_disagreement(ct: Volume, labels: Volume) -> dict:
    """Do the structures of ``labels`` (on ``ct``'s grid) lie on their own tissue? For each
    structure of a class input_limits ``label_intensity`` fixes (aerated lung and airways, bone,
    solid organs and muscle, vessels) with at least ``min_voxels`` voxels in a regular subsample
    (every s-th voxel per axis, at most ``max_voxels``): the median of the CT's values there,
    against its class's range. Returns {"checked": [(name, class, median HU, lo, hi)],
    "disagree": the checked ones whose median lies outside [lo, hi]}. New-user trial 114: the
    TotalSegmentator example's 30-slice map on another 112-slice CT put vertebrae on -11 HU and
    lower lobes on 1-7 HU without a word."""
    cfg = LIMITS["label_intensity"]
    classes = _intensity_classes(labels.labels)
    arr = np.asarray(labels.array)
    if not classes or arr.dtype.kind not in "iub":
        return {"checked": [], "disagree": []}
    s = max(1, int(np.ceil((arr.size / float(cfg["max_voxels"])) ** (1 / 3))))
    a = arr[::s, ::s, ::s].ravel()
    h = np.asarray(ct.array)[::s, ::s, ::s].ravel()
    top = max(classes)
    sel = np.flatnonzero((a > 0) & (a <= top))
    a, h = a[sel].astype(np.int64), h[sel]
    n = np.bincount(a, minlength=top + 1)
    checked, disagree = [], []
    for v, (name, c, lo, hi) in sorted(classes.items()):
        if n[v] < int(cfg["min_voxels"]):
            continue
        med = float(np.median(h[a == v]))
        row = (name, c, med, lo, hi)
        checked.append(row)
        if not lo <= med <= hi:
            disagree.append(row)
    return {"checked": checked, "disagree": disagree}


def intensity_words(r: dict, most: int = 6) -> str:
    """The disagreeing structures of `intensity_disagreement`'s ``r`` as text, at most ``most`` named."""
    def rng(lo, hi):
        return f">= {lo:g}" if not np.isfinite(hi) else f"<= {hi:g}" if not np.isfinite(lo) else f"{lo:g}..{hi:g}"

    d = r["disagree"]
    words = [f"{n} {m:.0f} HU ({c.replace('_', ' ')}: {rng(lo, hi)})" for n, c, m, lo, hi in d[:most]]
    if len(d) > most:
        words.append(f"{len(d) - most} more")
    return ", ".join(words)
