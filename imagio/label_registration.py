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

from functools import lru_cache

import numpy as np

from .errors import InputError
from .limits import LIMITS
from .volume import Volume


@lru_cache(maxsize=1)
def rule() -> dict:
    """The decision rule (input_limits ``label_registration``) with the HU limits it uses."""
    from .planning.bronchoscopy.mask_checks import limits as airway_limits
    from .planning.density import dense_min_hu

    cfg = dict(LIMITS["label_registration"])
    cfg["bone_min_hu"] = dense_min_hu()
    cfg["air_max_hu"] = float(airway_limits()["mask_on_air"]["max_median_hu"])
    return cfg


def classes_from_labels(labels: Volume) -> dict[str, np.ndarray]:
    """{"bone": mask, "air": mask} of the structures of ``labels`` whose CT class physics fixes:
    bone (planning_defaults ``bone_prefixes``), the aerated lung parenchyma and the airways
    (``anatomy.AERATED_LUNG``, the airway names of bronch). Classes without a voxel are left out."""
    from .anatomy import AERATED_LUNG
    from .planning.bronchoscopy import AIRWAY_NAMES
    from .planning.problem import is_bone

    names = labels.labels or {}
    bone = [v for v, n in names.items() if is_bone(n)]
    air = [v for v, n in names.items() if n in AERATED_LUNG or n in AIRWAY_NAMES]
    out = {}
    for cls, vals in (("bone", bone), ("air", air)):
        if vals:
            m = np.isin(labels.array, vals)
            if m.any():
                out[cls] = m
    return out


def _points(mask: np.ndarray, n_max: int) -> np.ndarray:
    """[N, 3] kji of at most about ``n_max`` voxels of ``mask``, a regular subsample (every
    s-th voxel along each axis: no index array of every voxel of a large mask)."""
    n = int(np.count_nonzero(mask))
    s = max(1, int(np.ceil((n / n_max) ** (1 / 3)))) if n > n_max else 1
    idx = np.argwhere(mask[::s, ::s, ::s]) * s
    return idx[:: max(1, len(idx) // n_max)]


def agreement(ct: Volume, grid: Volume, classes: dict[str, np.ndarray]) -> dict:
    """Agreement of each class with the CT at shifts of the labels (RAS mm): the fraction of a
    class's voxels (subsample; those that stay inside the CT at every shift of the search, the
    same points for every shift; a class with fewer than ``min_voxels`` such points is left out)
    whose nearest CT voxel, after the shift, is of the class's intensity (bone >= bone_min_hu,
    air < air_max_hu). Returns {"shifts": [S, 3], "score": [S]
    (the mean over classes), "per_class": {cls: [S]}, "n": {cls: points}}: shifts of a 3-D grid of
    ``coarse_step_mm`` up to ``search_mm``, then steps halved down to ``fine_step_mm`` around the best one."""
    cfg = rule()
    r = float(cfg["search_mm"])
    A = np.linalg.inv(ct.ijk_to_ras[:3, :3])[::-1]   # RAS mm -> kji index change
    margin = np.ceil(np.abs(A).sum(axis=1) * r).astype(int) + 1
    shape = np.array(ct.shape)
    data = {}
    for cls, mask in classes.items():
        pin = _points(mask, int(cfg["points_per_class"]))
        pout = _points(_shell(mask, grid.spacing_kji, float(cfg["shell_mm"])), int(cfg["points_per_class"]))
        base = ct.world_to_kji(grid.kji_to_world(np.concatenate([pin, pout]).astype(float)))
        want = np.r_[np.ones(len(pin), np.uint8), np.zeros(len(pout), np.uint8)]
        # the same points at every shift: those that stay inside the CT over the whole search.
        # Scored over the points still inside at each shift, a structure cut by the scan's end
        # (the lung bases of an abdominal CT) "fitted better" when shifted out of view, its
        # partial-volume edge leaving the count (trial 38 H1: TotalSegmentator's own liver +
        # lobes map of example_ct_sm refused as displaced by 6 mm)
        keep = np.all((base >= margin) & (base <= shape - 1 - margin), axis=1)
        base, want = base[keep], want[keep]
        if min(np.count_nonzero(want), np.count_nonzero(want == 0)) < int(cfg["min_voxels"]):
            continue   # too little of it can be moved within the scan: no evidence either way
        lo = np.floor(base.min(axis=0)).astype(int) - margin
        hi = np.ceil(base.max(axis=0)).astype(int) + margin + 1
        # the class's CT intensity on the points' box (+ the search): 1 of the class, 0 not, 2 outside the CT
        box = np.full(hi - lo, 2, np.uint8)
        a, b = np.maximum(lo, 0), np.minimum(hi, shape)
        if np.any(b <= a):
            continue
        v = ct.array[tuple(slice(x, y) for x, y in zip(a, b))]
        box[tuple(slice(x, y) for x, y in zip(a - lo, b - lo))] = (
            v >= cfg["bone_min_hu"] if cls == "bone" else v < cfg["air_max_hu"])
        data[cls] = (base - lo, box.ravel(), np.array([box.shape[1] * box.shape[2], box.shape[2], 1]), want)

    def score(shifts):
        per = {}
        for cls, (base, flat, strides, want) in data.items():
            f = np.empty(len(shifts))
            n_in, n_out = np.count_nonzero(want), np.count_nonzero(want == 0)
            for n, d in enumerate(shifts):   # a loop over shifts (hundreds), each vectorised over the points
                kji = np.rint(base + A @ d).astype(np.int64)
                ok = flat[kji @ strides] == want        # every point inside the CT (kept so)
                # the label's voxels of the class and its shell's not, each half the score
                f[n] = 0.5 * (np.count_nonzero(ok & (want == 1)) / n_in + np.count_nonzero(ok & (want == 0)) / n_out)
            per[cls] = f
        return per

    c = float(cfg["coarse_step_mm"])
    ax = np.arange(-r, r + 1e-6, c)
    shifts = np.stack(np.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)
    per = score(shifts)
    step = c
    while per and step > float(cfg["fine_step_mm"]) + 1e-6:   # halve the step around the best shift
        tot = np.nanmean(np.stack(list(per.values())), axis=0)
        best = shifts[int(np.nanargmax(np.where(np.isnan(tot), -1, tot)))]
        step /= 2
        fa = np.array([-step, 0.0, step])
        fine = best + np.stack(np.meshgrid(fa, fa, fa, indexing="ij"), -1).reshape(-1, 3)
        fine = fine[(np.abs(fine).max(axis=1) <= r + 1e-6) & (np.abs(fine - best).sum(axis=1) > 0)]
        per_f = score(fine)
        shifts = np.concatenate([shifts, fine])
        per = {k: np.concatenate([per[k], per_f[k]]) for k in per}
    tot = np.nanmean(np.stack(list(per.values())), axis=0) if per else np.zeros(len(shifts))
    return {"shifts": shifts, "score": tot, "per_class": per, "n": {k: len(v[0]) for k, v in data.items()}}


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


def displacement(ct: Volume, grid: Volume, classes: dict[str, np.ndarray]) -> dict | None:
    """{"shift_mm", "at_zero", "at_shift", "per_class_zero", "per_class_shift", "displaced",
    "doubtful"} or None when no class has enough voxels. ``displaced``: a shift of at least
    ``min_shift_voxels`` voxels of the CT's and of the labels' grid, and of at least
    ``min_shift_mm``, leaves fewer mismatches (voxels of a class not of its intensity on the CT)
    than the labels where they lie, by the factor ``refuse_ratio`` (``warn_ratio``: ``doubtful``)."""
    cfg = rule()
    classes = {k: m for k, m in classes.items() if int(np.count_nonzero(m)) >= int(cfg["min_voxels"])}
    if not classes:
        return None
    a = agreement(ct, grid, classes)
    if not a["per_class"]:
        return None
    sh, sc = a["shifts"], a["score"]
    z = int(np.argmin(np.abs(sh).sum(axis=1)))
    s0 = float(sc[z])
    # beyond partial volume: at least min_shift_voxels voxels of each grid and min_shift_mm
    far = np.linalg.norm(sh, axis=1) >= float(cfg["min_shift_mm"])
    for g in (ct, grid):
        to_vox = np.linalg.inv(g.ijk_to_ras[:3, :3])
        far &= np.linalg.norm(sh @ to_vox.T, axis=1) >= float(cfg["min_shift_voxels"])
    scf = np.where(far & ~np.isnan(sc), sc, -1.0)
    b = int(np.argmax(scf))
    if scf[b] < 0:
        return None
    s1 = float(sc[b])
    gain = (1.0 - s0) / max(1.0 - s1, 1e-3)   # mismatches where it lies / where it fits best
    big = s1 - s0 >= float(cfg["min_gain"])   # not a few voxels of a near-perfect fit
    return {"shift_mm": [round(float(x), 1) for x in sh[b]], "at_zero": round(s0, 3), "at_shift": round(s1, 3),
            "mismatch_ratio": round(gain, 2),
            "per_class_zero": {k: round(float(v[z]), 3) for k, v in a["per_class"].items()},
            "per_class_shift": {k: round(float(v[b]), 3) for k, v in a["per_class"].items()},
            "points": a["n"],
            "displaced": big and gain >= float(cfg["refuse_ratio"]), "doubtful": big and gain >= float(cfg["warn_ratio"])}


def _describe(r: dict) -> str:
    cls = ", ".join(f"{k} {r['per_class_zero'][k]:.2f} -> {r['per_class_shift'][k]:.2f}" for k in r["per_class_zero"])
    return (f"the agreement of its bone/air structures with the CT's bone/air is {r['at_zero']:.2f} where it lies and "
            f"{r['at_shift']:.2f} when moved by ({r['shift_mm'][0] + 0.0:g}, {r['shift_mm'][1] + 0.0:g}, {r['shift_mm'][2] + 0.0:g}) mm RAS ({cls})")


def require_registered(ct: Volume, grid: Volume, classes: dict[str, np.ndarray], what: str,
                       unchecked: str = "") -> str:
    """Refuse (InputError, one line) labels displaced from the CT (``displacement``); return a
    warning ("" when none) when the fit is doubtful, naming what is ``unchecked`` then."""
    r = displacement(ct, grid, classes)
    if r is None:
        return ""
    d = 0.0 - np.asarray(r["shift_mm"]) + 0.0   # the labels lie at -shift from where the CT fits them (no "-0")
    where = f"({d[0]:g}, {d[1]:g}, {d[2]:g}) mm (RAS)"
    if any(abs(x) >= float(rule()["search_mm"]) - 1e-6 for x in r["shift_mm"]):
        where = "at least " + where   # at the edge of the search
    if r["displaced"]:
        raise InputError(f"{what} appears displaced by {where} from the CT: it does not belong to this "
                         f"CT or its geometry (origin, spacing, direction) is wrong; {_describe(r)}. Give the "
                         "segmentation of this CT, or correct its geometry")
    if r["doubtful"]:
        return (f"{what} may be displaced by {where} from the CT ({_describe(r)}): check it on the CT"
                + (f"; {unchecked}" if unchecked else ""))
    return ""
