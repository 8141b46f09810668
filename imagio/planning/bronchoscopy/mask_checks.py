"""Checks and repairs of an airway mask before and after its tree is built: slices too thick for a
tree, gaps (a bronchus cut by the segmentation: its distal piece reconnected when the two ends face
each other), leaks (segmented "airway" whose lumen is not air: excluded from routes), and a
trachea whose top slice is cut obliquely (a crescent). Arrays [k, j, i]; positions RAS mm.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from ...errors import InputError
from ...volume import Volume
from .section import plane_basis

LIMITS_FILE = Path(__file__).resolve().parents[2] / "data" / "airway_limits.json"


def limits() -> dict:
    """Clinical/physical limits for airway trees (``imagio/data/airway_limits.json``, with sources)."""
    return json.loads(LIMITS_FILE.read_text(encoding="utf-8"))


def reformat_note(grid: Volume, mask: np.ndarray, what: str, ct: Volume | None = None) -> str:
    """The warning (or "") that the airway ``mask`` (bool [k, j, i] on ``grid``) lies on an oblique
    reformat, whose interpolation blends small bronchi into their walls, so the tree, and a route's
    reach on it, may be short (`segmentation.airways.interpolated_grid_note`, the note `segment`
    gives; new-user trial 78 L4: 73 branches on a 20 degree reformat against 118 on the axial
    scan, no word from bronch). ``what`` names the mask in the message. ``ct``: the CT as read
    (its reader's record, ``meta["read"]``): when the mask lies on the CT's own grid, the CT's
    record says whether that grid's values were interpolated (`segmentation.common.grid_values_origin`;
    trial 85 L1: an ORIGINAL\\PRIMARY oblique DICOM series is not a reformat)."""
    from ...segmentation.airways import interpolated_grid_note
    from ...volume import as_ras_canonical

    same = ct is not None and as_ras_canonical(ct, view=True)[0].same_grid(as_ras_canonical(grid, view=True)[0])
    note = interpolated_grid_note(grid, mask, ct if same else None)
    return f"{what}: {note}" if note else ""


def require_mask_on_air(ct: Volume, mask: np.ndarray, grid: Volume, what: str) -> None:
    """Refuse (InputError) an airway ``mask`` (bool [k, j, i] on ``grid``) whose voxels do not lie
    on the CT's air: the median CT value at their centres (nearest CT voxel, world coordinates)
    above ``mask_on_air.max_median_hu`` of airway_limits.json (-500 HU: see its source). A mask of
    another scan that merely overlaps this CT (new-user trial 34 F2) or a mask of something else
    is refused before a route is planned on it. A mask with no voxel centre on the CT passes
    here: the caller refuses it first with `io.require_overlap` (bronch does)."""
    from ...limits import AERATED_MAX_HU

    lim = AERATED_MAX_HU
    idx = np.argwhere(mask)
    if not len(idx):
        return
    if len(idx) > 200_000:   # a uniform subsample: the median, not every voxel
        idx = idx[:: len(idx) // 200_000 + 1]
    if ct.same_grid(grid):   # the usual case (segment's own output): no mapping
        v = ct.array[tuple(idx.T)]
    else:
        v, inside = ct.sample(grid.kji_to_world(idx), order=0, with_inside=True)
        v = v[inside]
    if not v.size:
        return   # no overlap at all: `io.require_overlap` says so
    med = float(np.median(v))
    if med > lim:
        raise InputError(f"{what}: the airway mask does not lie on the CT's air (median {med:.0f} HU over its voxels; "
                         f"an airway lumen is air, below {lim:g} HU): is it of another scan, or not an airway mask? "
                         "Give the airways segmented on this CT (imagio segment CT --structures airways)")


def bridge_gaps(mask: np.ndarray, spacing_kji, main: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    """Reconnect separate airway pieces to ``main`` (the largest 26-connected component of
    ``mask``) when a piece's end faces the tree within ``max_gap_mm``: a tube of the smaller lumen
    of the two ends is painted between their closest points. Returns (the main component with the
    bridged pieces and bridges, [{"a_kji", "b_kji", "gap_mm", "piece_ml", "bridged", "reason"}]; a piece left out also
    has "why": "far" (with "max_gap_mm") or "not facing", and "boundary_kji", its boundary voxels
    as int [M, 3] indices of ``mask``),
    one entry per piece of at least ``min_piece_ml``."""
    import cc3d
    import edt

    cfg = limits()["gap"]
    max_gap, min_ml = float(cfg["max_gap_mm"]), float(cfg["min_piece_ml"])
    sp = np.asarray(spacing_kji, float)
    vox_ml = float(np.prod(sp)) / 1000.0
    lab, n = cc3d.connected_components(mask, connectivity=26, return_N=True)
    if n <= 1:
        return main, []
    counts = np.bincount(lab.ravel(), minlength=n + 1)
    main_id = int(lab[tuple(np.argwhere(main)[0])])
    pieces = [i for i in np.argsort(-counts) if i not in (0, main_id) and counts[i] * vox_ml >= min_ml][:20]
    if not pieces:
        return main, []
    from scipy import ndimage

    shell = main & ~ndimage.binary_erosion(main)
    shell_kji = np.argwhere(shell)
    kd = cKDTree(shell_kji * sp)
    dist_in = edt.edt(mask, anisotropy=tuple(sp), black_border=False)
    out = main.copy()
    found = []
    for i in pieces:
        vox = np.argwhere(lab == i)
        d, j = kd.query(vox * sp)
        k = int(np.argmin(d))
        a, b = vox[k], shell_kji[j[k]]
        gap = float(d[k])
        entry = {"a_kji": a.tolist(), "b_kji": b.tolist(), "gap_mm": round(gap, 1),
                 "piece_ml": round(counts[i] * vox_ml, 2), "bridged": False, "reason": ""}
        # the piece faces the tree: its voxels near its closest point run along the bridge
        near = vox[np.linalg.norm((vox - a) * sp, axis=1) <= float(cfg["facing_window_mm"])] * sp
        facing = False
        if gap > 0 and len(near) >= 4:
            c = near - near.mean(axis=0)
            axis = np.linalg.svd(c, full_matrices=False)[2][0]
            facing = abs(axis @ ((b - a) * sp) / gap) >= float(cfg["facing_cos"])
        if gap > max_gap or not facing:
            # the piece's boundary voxels (crop indices): where its airways come closest to a target
            # (`route.left_out_closer`, new-user trial 82 M1)
            piece = lab == i
            entry["boundary_kji"] = np.argwhere(piece & ~ndimage.binary_erosion(piece))
        if gap > max_gap:
            entry["reason"] = f"{gap:.0f} mm from the tree (more than {max_gap:g} mm)"
            entry["why"], entry["max_gap_mm"] = "far", max_gap
        elif not facing:
            entry["reason"] = "its end does not face the tree"
            entry["why"] = "not facing"
        else:
            # the lumen of the cut bronchus: the smaller of the widest lumens near either end
            r = max(min(_widest_near(dist_in, lab == i, a, sp, cfg), _widest_near(dist_in, main, b, sp, cfg)),
                    float(sp.max()))
            _paint_tube(out, a, b, r, sp)
            out |= lab == i
            entry["bridged"] = True
        found.append(entry)
    return out, found


def _widest_near(dist_in: np.ndarray, m: np.ndarray, c, sp, cfg) -> float:
    """The largest wall distance (mm) of ``m`` within the facing window around voxel ``c``."""
    w = np.ceil(float(cfg["facing_window_mm"]) / sp).astype(int)
    lo, hi = np.maximum(np.asarray(c) - w, 0), np.minimum(np.asarray(c) + w + 1, m.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    v = dist_in[box][m[box]]
    return float(v.max()) if v.size else 0.0


def _paint_tube(m: np.ndarray, a, b, r_mm: float, sp) -> None:
    """Voxels within ``r_mm`` of the segment a-b (voxel indices), in place."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    pad = np.ceil(r_mm / sp).astype(int) + 1
    lo = np.maximum(np.minimum(a, b).astype(int) - pad, 0)
    hi = np.minimum(np.maximum(a, b).astype(int) + pad + 1, m.shape)
    idx = np.indices(hi - lo).reshape(3, -1).T + lo
    v = (b - a) * sp
    w = (idx - a) * sp
    t = np.clip((w @ v) / max(float(v @ v), 1e-9), 0, 1)
    d = np.linalg.norm(w - t[:, None] * v, axis=1)
    sel = idx[d <= r_mm]
    m[tuple(sel.T)] = True


def trim_crescent_top(crop: np.ndarray, axis: int, up: bool, sp) -> int:
    """Number of slices to drop at the superior end so that the top slice is a full tracheal
    cross-section (a scan's oblique edge or a partial-volume top cuts a crescent, whose
    continuation would root the tree on the tracheal wall): slices within the top 30 mm whose
    trachea's section is below ``crescent_area_fraction`` of its median area over that range.
    ``crop`` [k, j, i] bool; ``axis`` the array axis normal to the image face the mask leaves
    through at its superior end (`top_face.superior_face`), that end at the axis's last index when
    ``up``; ``sp`` mm per voxel. A slice's trachea section is its largest 8-connected lumen (above
    the carina the trachea is the widest airway a section cuts, Standring S (ed), Gray's Anatomy,
    41st ed, 2016, ch. 'Trachea and bronchi'), not all its airway: on a tilted grid (an oblique
    reformat) the sections below the top cut upper-lobe bronchi too, whose area raised the median
    and had the trachea's full top sections trimmed as crescents (ATM 305 YangLab 10 degrees off
    axial: 7 slices, 5.6 mm, with a false "cut obliquely" warning; new-user trial 101 F1), and a
    mask of bronchi only, cut axially, had its top trimmed by the bronchi that join below it (the
    phantom's right lower airways: 4 slices, 6 mm, the root's sections then read 9.4 mm for a
    10.1 mm bronchus intermedius)."""
    import cc3d

    lim = limits()["trachea_top"]
    n = max(2, int(round(float(lim["window_mm"]) / float(sp[axis]))))
    if crop.shape[axis] < 3:
        return 0
    idx = np.arange(crop.shape[axis])
    idx = idx[::-1][:n] if up else idx[:n]   # from the top slice downwards
    top = np.array([np.bincount(cc3d.connected_components(np.take(crop, i, axis=axis), connectivity=8).ravel())[1:]
                    .max(initial=0) for i in idx], float)
    ref = float(np.median(top))
    full = np.flatnonzero(top >= float(lim["crescent_area_fraction"]) * ref)
    return int(full[0]) if len(full) else 0


def leak_check_radius_mm(ct: Volume) -> float:
    """The smallest lumen radius (mm) at which `find_leaks` reads a branch's centreline on the CT:
    ``leak.min_radius_mm`` and ``leak.min_radius_voxels`` CT voxels (the largest spacing), where
    partial volume with the wall does not reach the centre."""
    lim = limits()["leak"]
    return max(float(lim["min_radius_mm"]), float(lim["min_radius_voxels"]) * float(np.max(ct.spacing)))


def find_leaks(tree, ct: Volume) -> list[dict]:
    """Mark as excluded (``tree.excluded``) the subtrees of branches whose lumen is not air:
    the median CT value at their centreline points (lumen radius >= ``min_radius_mm`` and
    ``min_radius_voxels`` CT voxels, where partial volume does not reach the centre) is denser than ``max_lumen_hu`` while their
    parent's is not (a segmentation leak into the parenchyma: normal lung is about -850 HU,
    air -1000 HU). Returns one entry per leak, parents first: {"branch": id, "subtree": [branch ids],
    "ras": its start (RAS mm), "hu": its median lumen HU, "lobe": its lobe ("" central)}; its
    warning is ``leak_warning``."""
    lim = limits()["leak"]
    max_hu = float(lim["max_lumen_hu"]["value"])
    rmin = leak_check_radius_mm(ct)
    hu = ct.sample(tree.points, order=1, fill=np.nan)
    excluded = np.zeros(len(tree.points), bool) if getattr(tree, "excluded", None) is None else tree.excluded
    med = {}
    for b in tree.branches:
        ids = b.point_ids[tree.radius[b.point_ids] >= rmin]
        med[b.id] = float(np.nanmedian(hu[ids])) if len(ids) and np.isfinite(hu[ids]).any() else np.nan
    leaks = []
    for b in tree.branches:  # parents first
        if b.parent < 0 or excluded[b.point_ids[0]] or not np.isfinite(med[b.id]):
            continue
        pm = med[b.parent]
        if med[b.id] > max_hu and (not np.isfinite(pm) or pm <= max_hu):
            sub = tree.subtree(b.id)
            ids = np.concatenate([tree.branches[x].point_ids for x in sub])
            excluded[ids] = True
            leaks.append({"branch": b.id, "subtree": [int(x) for x in sub], "hu": med[b.id],
                          "ras": np.round(tree.points[b.point_ids[0]], 1).tolist(), "lobe": b.lobe or ""})
    tree.excluded = excluded
    return leaks


def leak_warning(leak: dict, pieces: list[dict] = ()) -> str:
    """The warning for one leak of ``find_leaks``; ``pieces``: the separate pieces of the mask
    (``bridge_gaps`` entries with their "where", the gap's RAS midpoint) that lie wholly inside
    the leak's subtree: named as excluded with it, not as reconnected."""
    where = leak["lobe"].replace("lung_", "") or "central airway"
    msg = (f"possible leak of the airway segmentation at RAS {leak['ras']}: branch {leak['branch']} ({where}, "
           f"{len(leak['subtree'])} branches) has a lumen of {leak['hu']:.0f} HU (air is about -1000 HU): "
           "excluded from routes")
    if pieces:
        what = "; ".join(f"{g['piece_ml']:g} mL beyond a {g['gap_mm']:g} mm gap at RAS {g['where']}" for g in pieces)
        one = len(pieces) == 1
        msg += (f", together with the separate piece{'' if one else 's'} of the mask in it ({what}), "
                f"which {'is' if one else 'are'} therefore not reconnected")
    return msg + "; check the segmentation there"


def unchecked_reach(tree, route, ct: Volume) -> str:
    """A warning ('' when none) for a route that reaches the lesion through branches too narrow
    for `find_leaks` to judge (lumen radius under its ``min_radius_mm`` / ``min_radius_voxels``
    CT voxels) whose centreline reads denser than ``max_lumen_hu`` on the CT: the mask may have
    leaked into the parenchyma there, and the 'reached' verdict and bronchus sign rest on it
    (new-user trial 25, H1: a 10 mm wall-less tube of -845 HU labelled airway into a nodule gave
    'reached', no tunnel, no word). The route's tail beyond its last checkable point is read."""
    if not route.reached or ct is None or len(route.point_ids) == 0:
        return ""
    lim = limits()["leak"]
    max_hu = float(lim["max_lumen_hu"]["value"])
    rmin = leak_check_radius_mm(ct)
    ids = np.asarray(route.point_ids)
    wide = np.flatnonzero(tree.radius[ids] >= rmin)
    tail = ids[wide[-1] + 1:] if len(wide) else ids
    if len(tail) == 0:
        return ""
    hu = ct.sample(tree.points[tail], order=1, fill=np.nan)
    if not np.isfinite(hu).any() or float(np.nanmedian(hu)) <= max_hu:
        return ""
    mm = float(tree.dist_from_root[tail[-1]] - tree.dist_from_root[tail[0]])
    return (f"the route's last {mm:.0f} mm run in airway-mask branches too narrow to check for a leak (lumen radius "
            f"under {rmin:.1f} mm) whose centreline reads {float(np.nanmedian(hu)):.0f} HU on the CT (a lumen's air "
            f"is about -1000 HU, lung parenchyma about -850): the mask may have leaked into the lung there, and "
            "'reached' and the bronchus sign rest on it; confirm on the CT that the bronchus reaches the lesion")


def _rings(ct: Volume, pts: np.ndarray, tangent: np.ndarray, radius: np.ndarray, n: int) -> np.ndarray:
    """[len(pts), n] CT values (trilinear) on a circle of ``radius`` (mm, per point) around each
    point, in the plane normal to its ``tangent``."""
    a, b = plane_basis(tangent)
    ang = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    q = pts[:, None] + radius[:, None, None] * (np.cos(ang)[None, :, None] * a[:, None] + np.sin(ang)[None, :, None] * b[:, None])
    return ct.sample(q.reshape(-1, 3), order=1, fill=np.nan).reshape(len(pts), n)


def bronchus_evidence(tree, ids: np.ndarray, ct: Volume) -> dict:
    """Whether the CT shows a bronchus along the centreline points ``ids`` (a path, in order): at
    each, the CT at the centre (core), the median on a ring half a CT voxel outside the lumen
    (wall) and on a ring beyond the wall (parenchyma: lumen radius + ``wall_to_diameter`` x the
    diameter + ``reference_voxels`` voxels). A bronchus is a core that differs from the
    parenchyma around it (darker: its air; denser: its wall, where partial volume fills a narrow
    lumen or the centreline runs off-axis, e.g. on a bridged gap), a wall denser than it, or a
    core darker than its wall (the profile across a tube of air in tissue), by ``min_contrast_hu``
    (``airway_limits.json`` leak.wall, with sources); a leak of the mask through the lung shows
    neither, and a core denser than ``max_core_hu`` (a contrast-filled vessel or calcification:
    no air lumen reads denser than its wall) is never a bronchus. The lumen radius is the tree's
    (the wall distance), on the trachea and main bronchi at least their section's
    (`section.central_radius`: a pinhole in the mask, or an oval lumen, puts a ring at the wall
    distance inside their air, and the mask's true airway was refused as not on the CT: new-user
    trial 94). Returns {"evident": [n] bool (True where the CT gives no value), "core", "wall",
    "ref": [n] HU, "radius": [n] mm, the lumen radius used, "resolved": [n] bool (the lumen more
    than ``verdict.UNRESOLVED_VOXELS`` CT voxels across, as `verdict.unresolved_calibre` counts it)}."""
    from .section import central_radius
    from .verdict import UNRESOLVED_VOXELS

    cfg = limits()["leak"]["wall"]
    ids = np.asarray(ids, int)
    vox = float(np.max(ct.spacing))
    pts, r = tree.points[ids], central_radius(tree, ids)
    tangent = np.gradient(pts, axis=0) if len(ids) > 1 else np.array([[0.0, 0.0, 1.0]])
    n = int(cfg["ring_samples"])
    core = ct.sample(pts, order=1, fill=np.nan)
    with warnings.catch_warnings():   # a ring wholly outside the CT: NaN, counted as no value
        warnings.simplefilter("ignore", RuntimeWarning)
        wall = np.nanmedian(_rings(ct, pts, tangent, r + 0.5 * vox, n), axis=1)
        ref = np.nanmedian(_rings(ct, pts, tangent, r * (1 + 2 * float(cfg["wall_to_diameter"]))
                                  + float(cfg["reference_voxels"]) * vox, n), axis=1)
    c = float(cfg["min_contrast_hu"])
    known = np.isfinite(core) & np.isfinite(wall) & np.isfinite(ref)
    evident = ~known | (np.abs(core - ref) >= c) | (wall - ref >= c) | (wall - core >= c)
    evident &= ~(core > float(cfg["max_core_hu"]))   # denser than any wall: a vessel or calcification
    return {"evident": evident, "core": core, "wall": wall, "ref": ref, "radius": r,
            "resolved": 2 * r > UNRESOLVED_VOXELS * vox}


def wall_less_runs(tree, path: np.ndarray, ct: Volume) -> list[dict]:
    """Stretches of the centreline path ``path`` (point ids from the root) along which the CT
    shows no bronchus (`bronchus_evidence`): the airway mask runs where the CT has neither an
    air core nor a wall, i.e. through parenchyma. One entry per stretch at least
    ``verdict.UNRESOLVED_VOXELS`` CT voxels long (a shorter one is not resolved along the axis: a
    single point of a narrow bronchus may read near the parenchyma by noise), root first:
    {"ids": its point ids, "mm": its length, "resolved": the lumen over at least half of it more
    than ``verdict.UNRESOLVED_VOXELS`` CT voxels across (the CT could show its core and wall: a
    leak) or not (it cannot: unverified), "core_hu", "wall_hu", "ref_hu": medians of the centre, the
    wall ring and the ring beyond it, "lumen_mm": median
    diameter (of the radius the rings were placed by, `bronchus_evidence`), "ras": its start}."""
    from .verdict import UNRESOLVED_VOXELS

    path = np.asarray(path, int)
    if ct is None or len(path) < 2:
        return []
    ev = bronchus_evidence(tree, path, ct)
    bad = ~ev["evident"]
    edges = np.flatnonzero(np.diff(np.r_[0, bad.astype(np.int8), 0]))
    vox = float(np.max(ct.spacing))
    out = []
    for s, e in zip(edges[::2], edges[1::2]):
        ids = path[s:e]
        step = float(np.median(np.diff(tree.dist_from_root[path]))) if len(path) > 1 else 0.0
        mm = float(tree.dist_from_root[ids[-1]] - tree.dist_from_root[ids[0]]) + step
        if mm < UNRESOLVED_VOXELS * vox:   # shorter than the CT resolves along the axis
            continue
        out.append({"ids": ids, "mm": mm, "resolved": bool(np.mean(ev["resolved"][s:e]) >= 0.5),
                    "core_hu": float(np.nanmedian(ev["core"][s:e])), "ref_hu": float(np.nanmedian(ev["ref"][s:e])),
                    "wall_hu": float(np.nanmedian(ev["wall"][s:e])),
                    "lumen_mm": float(np.median(2 * ev["radius"][s:e])),
                    "ras": np.round(tree.points[ids[0]], 1).tolist()})
    return out


def exclude_from(tree, ids: np.ndarray):
    """A copy of ``tree`` (arrays shared, ``excluded`` new) with the points ``ids`` (a stretch of
    one path, root first), the rest of the branch beyond its first point and every branch
    beyond that excluded from routes and from the bronchus sign."""
    from dataclasses import replace

    ex = np.zeros(len(tree.points), bool) if tree.excluded is None else tree.excluded.copy()
    first = int(ids[0])
    b = tree.branches[int(tree.branch_of[first])]
    pos = int(np.flatnonzero(b.point_ids == first)[0])
    ex[b.point_ids[pos:]] = True
    ex[np.asarray(ids, int)] = True
    for c in b.children:
        for x in tree.subtree(c):
            ex[tree.branches[x].point_ids] = True
    return replace(tree, excluded=ex)


def no_contrast(run: dict) -> str:
    """Why a `wall_less_runs` stretch shows no bronchus, with its medians (new-user trial 62 L2: a
    centre of -1000 HU was called "neither an air core nor a bronchial wall"): the centre, the wall
    ring and the tissue beyond it differ by less than ``min_contrast_hu``, as air inside air or
    lung inside lung does; a tube of air in a soft-tissue wall shows the contrast."""
    c = float(limits()["leak"]["wall"]["min_contrast_hu"])
    return (f"centre {run['core_hu']:.0f} HU, wall ring {run.get('wall_hu', float('nan')):.0f} HU, surroundings "
            f"{run['ref_hu']:.0f} HU: no contrast of {c:g} HU or more between the core, the wall ring and the "
            "surroundings (a bronchus is air inside a soft-tissue wall; lung parenchyma is about -850 HU, "
            "air -1000 HU)")


def wall_less_warning(run: dict, what: str) -> str:
    """The warning for one `wall_less_runs` stretch on ``what`` ("the route", "the airway leading
    into the lesion (bronchus sign)")."""
    dense = run["core_hu"] > float(limits()["leak"]["wall"]["max_core_hu"])
    where = (f"{run['mm']:.0f} mm of airway mask at RAS {run['ras']} (lumen {run['lumen_mm']:.1f} mm) along {what} "
             + (f"has a centre of {run['core_hu']:.0f} HU, denser than any airway wall (a contrast-filled vessel or "
                "calcification)" if dense else
                f"shows no bronchus on the CT: {no_contrast(run)}"))
    if run["resolved"]:
        return (f"possible leak of the airway segmentation: {where}: the mask runs through "
                f"{'a dense structure' if dense else 'the lung'} there; excluded "
                "from routes and from the bronchus sign; check the segmentation there")
    from .verdict import UNRESOLVED_VOXELS

    return (f"unverified airway: {where}, and the lumen is at most {UNRESOLVED_VOXELS:g} CT voxels across, so the CT "
            "cannot show its wall "
            "or core: the mask may have leaked into the lung there; what rests on it is unverified; confirm on the CT "
            "that the bronchus is there")
