"""Airways: trachea found automatically, bronchial tree by region growing with leak detection.

Seed: in the upper axial slices, an air region (< -900 HU) inside the body, round, 1-6 cm^2,
close to the left-right midline, repeated over several consecutive slices (a tube). Where no
midline is known (no scanner coordinates and the body cut at a side), the region must instead be
ringed mostly by soft tissue, as the trachea is in the mediastinum (`mediastinal_share`).
Growth: the connected component of the seed below a threshold raised step by step from
-980 HU; the step whose volume more than doubles (``leak_ratio``) or exceeds
``max_lung_fraction`` of the air inside the body has leaked into the parenchyma and is
rejected, the last good step is kept; so is a step of lung-density voxels (above the lumen's
air) that joins a piece larger than a segmental bronchus beyond the tree's rim
(`parenchyma_piece_ml`, `leak_piece_limit_ml`: a leak whatever the lungs in view). Above it,
growing continues locally: new pieces up to
``LOCAL_PIECE_ML`` (a peripheral bronchus) are kept, larger ones (a branch leaking) dropped.
The trachea is the part above the carina (the first slice, from the top, where the tree
splits into two sizeable lumens); the rest is labelled "airways".
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..limits import AIRWAY_MAX_SLICE_MM, AIRWAY_NATIVE_WIDTH_RATIO, AIRWAY_RESAMPLED_MIN_MM, RESAMPLED_SECTIONS_RATIO
from ..volume import Volume
from .body import MAX_CUT_LUMEN_MM
from .common import (AIR_HU, BODY_HU, anatomical_axes, as_progress, bbox_slices, check_ct, close_faces,
                     components, dilate_voxels, fill_holes_per_slice, plane_structure, ras_coordinate, rule)

THRESHOLDS_HU = tuple(range(-980, -779, 20))  # growing schedule
LEAK_RATIO = 2.0  # a step that more than doubles the tree ...
LEAK_MIN_ML = 30.0  # ... by more than this (mL) has leaked into the parenchyma
MAX_LUNG_FRACTION = 0.12  # an airway lumen is ~3-5 % of the lung air volume
LOCAL_STEP_HU, LOCAL_MAX_HU = 20, -760  # local extension schedule above the global threshold
LOCAL_PIECE_ML = 0.5  # a new piece larger than this is a leak (a segmental bronchus is ~0.2 mL)
LUMEN_CORE_HU = rule("cut_bronchus_core_hu")  # an airway lumen's core is air below this; lung lies above
PARTIAL_VOLUME_RIM_VOX = 2  # a lumen's blurred rim: new voxels this close to the tree widen it
CARINA_LUMEN_SHARE = 0.2  # a main bronchus lumen is ~40-60 % of the trachea's
TRACHEA_BELOW_LUNG_TOP_MM = 60.0  # the trachea candidate must reach this close to the lung apex
SEARCH_BELOW_APEX_MM = 150.0  # the carina lies ~50-100 mm below the lung apex
LUNG_AIR_HU = -400.0  # lung-like air lies below this (`_lung_top`), soft tissue above (`mediastinal_share`)
TRACHEA_RING_MM = (rule("tracheal_wall_mm"), rule("tracheal_wall_mm") + rule("paratracheal_ring_mm"))
TRACHEA_MEDIASTINUM_SHARE = rule("trachea_mediastinum_share")
# the widest trachea's outer diameter: its lumen (``max_cut_lumen_mm``, partial volume included)
# and its wall on both sides (Breatnach et al., AJR 1984; Gamsu & Webb, AJR 1982)
TRACHEA_OUTER_MM = MAX_CUT_LUMEN_MM + 2.0 * rule("tracheal_wall_mm")
TRACHEA_WALLED_SHARE = rule("trachea_walled_share")
NECK_TRACHEA_NOTE = (
    "the trachea is in view above the lungs (no lung, or only the apices, in view): the field of view holds "
    "the neck or the thoracic inlet, and the carina lies below it (T4-T5); the whole air column in view down "
    "the midline is labelled trachea (with the subglottic larynx where in view): check it on the images")


def find_trachea_seed(ct: Volume, body: np.ndarray, info: dict | None = None) -> np.ndarray | None:
    """[k, j, i] index of a voxel inside the trachea, or None when no trachea is visible.

    Searched from the top of the scan down to ``SEARCH_BELOW_APEX_MM`` below the lung apex; with
    no lung in view (a neck or thoracic-inlet field above the apices), in the whole view, by the
    trachea's place in the neck (`_neck_tube`); then ``info["above_lungs"]`` is set True when
    ``info`` is a dict."""
    s_ax, s_sign = anatomical_axes(ct)["S"]
    top = _lung_top(ct, body, s_ax, s_sign)
    if top is None:
        # no lung in view: a neck or thoracic inlet above the lung apices still holds the trachea,
        # judged by its place in the neck instead of the lungs' top (`_neck_tube`)
        if info is not None:
            info["above_lungs"] = True
        return _find_seed_in(ct, body, ct.shape[s_ax] - 1 if s_sign > 0 else 0, s_ax, s_sign, above_lungs=True)
    reach = int(np.ceil(SEARCH_BELOW_APEX_MM / ct.spacing_kji[s_ax]))
    lo = np.zeros(3, int)
    hi = np.array(ct.shape)
    if s_sign > 0:
        lo[s_ax] = max(top - reach, 0)
    else:
        hi[s_ax] = min(top + reach + 1, ct.shape[s_ax])
    sub = ct.crop(lo, hi)
    body_sub = body[tuple(slice(l, h) for l, h in zip(lo, hi))]
    # the crop keeps the whole image's scanner-coordinates flag (`Volume.scanner_coordinates`;
    # trial 15: judged on the crop's moved origin, lung1 written with origin 0 had its midline
    # put on the image's edge as "the isocentre", and its trachea was not found)
    seed = _find_seed_in(sub, body_sub, top - lo[s_ax], s_ax, s_sign)
    return None if seed is None else seed + lo


def _find_seed_in(ct: Volume, body: np.ndarray, top: int, s_ax: int, s_sign: int, near_midline: bool = True,
                  above_lungs: bool = False):
    """Seed voxel of the trachea in ``ct`` (a slab below the lungs' top), or None. Searched near
    the midline (`lungs.midline_x`); where that midline is only the isocentre assumed for a body
    cut at a side and nothing is found near it (a reconstruction centred off the patient: new-user
    trial 25, lung1 moved 85 mm had no trachea and both lungs 'right'), searched again by the
    lumen's mediastinal surroundings, as without any midline. above_lungs: no lung is in view,
    so ``top`` is the view's top slice and the tube must lie where the trachea runs in the neck
    (`_neck_tube`) instead of reaching the lungs' top."""
    seed = _seed_search(ct, body, top, s_ax, s_sign, near_midline, above_lungs)
    if seed is None and near_midline:
        from .lungs import midline_x

        if midline_x(ct, body)[1] == "isocentre":
            seed = _seed_search(ct, body, top, s_ax, s_sign, False, above_lungs)
    return seed


def _seed_search(ct: Volume, body: np.ndarray, top: int, s_ax: int, s_sign: int, near_midline: bool,
                 above_lungs: bool = False):
    a = ct.array
    air = (a < AIR_HU) & body
    if not air.any():
        return None
    lab, n = ndimage.label(air, structure=plane_structure(s_ax))
    if n == 0:
        return None
    other = [i for i in range(3) if i != s_ax]
    pix_mm2 = float(np.prod(ct.spacing_kji[other]))
    lv = lab[air]
    area_vox = np.bincount(lv, minlength=n + 1)[1:]
    area = area_vox * pix_mm2
    x = ras_coordinate(ct, 0)
    # the trachea lies on the midline: the body's left-right centre, or the isocentre where the
    # field of view cuts the body at a side (a hemithorax crop; ``lungs.midline_x``); unknown
    # without scanner coordinates: then the lumen's mediastinal surroundings are required instead
    from .lungs import midline_x

    cx_body, _ = midline_x(ct, body)
    cx = np.bincount(lv, weights=x[air], minlength=n + 1)[1:] / np.maximum(area_vox, 1)
    # bounding-box compactness: area / (extent_a * extent_b) ~ pi/4 for a disc
    objs = ndimage.find_objects(lab)
    ext = np.array([[(o[d].stop - o[d].start) * ct.spacing_kji[d] for d in other] for o in objs])
    # a lumen cut by a face of the field of view in the slice's plane (left-right: a hemithorax
    # crop; front or back: a coronal face through the trachea, trial 51 M1) shows only its part on
    # this side: judged as mirrored about that face (twice the area and the extent across it)
    mirror = np.ones(n)
    for d_i, ax_d in enumerate(other):
        cut = np.array([o[ax_d].start == 0 or o[ax_d].stop == a.shape[ax_d] for o in objs])
        ext[cut, d_i] *= 2.0
        mirror[cut] *= 2.0
    area = mirror * area
    ratio = area / np.maximum(ext[:, 0] * ext[:, 1], 1e-6)
    elong = ext.max(1) / np.maximum(ext.min(1), 1e-6)
    ok = (area > 80) & (area < 700) & (ratio > 0.5) & (elong < 2.2)
    # the tracheal wall encloses the lumen: its lung-like air (< ``LUNG_AIR_HU``, partial volume
    # at the wall included) is no larger than the trachea's outer cross-section; a round pocket of
    # air inside a lung (trial 51 M2: the right lung's anterior recess beside the heart in lung1's
    # lower half, 3.4 mL labelled trachea) is part of that lung's air in its slice. Judged over
    # the tube (below): the thin right paratracheal stripe may join the lumen to the lung in a slice
    lung_lab, _ = ndimage.label((a < LUNG_AIR_HU) & body, structure=plane_structure(s_ax))
    env = np.zeros(n + 1, np.int64)
    env[lv] = lung_lab[air]
    walled = np.ones(n + 1)
    if 2.0 * float(np.max(ct.spacing_kji[other])) <= rule("tracheal_wall_mm"):
        # judged only where the wall spans two pixels in the slice: a thinner one is bridged by
        # partial volume wherever the lung touches it (a 3 mm grid: the phantom's trachea)
        walled[1:] = mirror * np.bincount(lung_lab.ravel())[env[1:]] * pix_mm2 <= np.pi / 4.0 * TRACHEA_OUTER_MM ** 2
    if cx_body is not None and near_midline:
        ok &= np.abs(cx - cx_body) < 30
    else:
        # no scanner coordinates and the body cut at a side (trial 15), or nothing near the
        # isocentre assumed for the midline (`_find_seed_in`): no midline to search near, so the
        # lumen's own surroundings must say trachea: it runs in the mediastinum
        ok[ok] = mediastinal_share(ct, lab, np.flatnonzero(ok) + 1, objs, body) >= TRACHEA_MEDIASTINUM_SHARE
    if not ok.any():
        return None
    cand = np.zeros(n + 1, bool)
    cand[1:] = ok
    tube = cand[lab]
    tl, tn, tc = components(tube, connectivity=6)
    if tn == 0:
        return None
    # the trachea: the candidate tube spanning the most slices (>= 15 mm) whose top reaches the
    # top of the lungs (a rectum or bowel loop below the lungs is no trachea)
    objs3 = ndimage.find_objects(tl)
    span = np.array([(o[s_ax].stop - o[s_ax].start) * ct.spacing_kji[s_ax] if o is not None else 0
                     for o in objs3])
    # ... and its lumen walled off from the lungs in most of its slices (``trachea_walled_share``)
    in_tube = np.zeros(n + 1, np.int64)
    in_tube[lab[tube]] = tl[tube]
    ids = np.flatnonzero(cand)
    walled_share = (np.bincount(in_tube[ids], weights=walled[ids], minlength=tn + 1)[1:]
                    / np.maximum(np.bincount(in_tube[ids], minlength=tn + 1)[1:], 1))
    span[walled_share < TRACHEA_WALLED_SHARE] = 0
    for o_i, o in enumerate(objs3):
        if o is None or span[o_i] < 15.0:
            continue
        if above_lungs:
            # no lung in view: the lungs' top cannot place it; the neck's anatomy does
            box = tuple(o[d] if d == s_ax else slice(None) for d in range(3))   # whole slices
            if not _neck_tube(ct, body, tl[box] == o_i + 1, box, s_ax):
                span[o_i] = 0
            continue
        tube_top = (o[s_ax].stop - 1) if s_sign > 0 else o[s_ax].start
        if (top - tube_top) * s_sign * ct.spacing_kji[s_ax] > TRACHEA_BELOW_LUNG_TOP_MM:
            span[o_i] = 0
    best = int(np.argmax(span)) + 1
    if span[best - 1] < 15.0:
        return None
    pts = np.argwhere(tl == best)
    # a seed in the middle of the tube's upper half
    sup_coord = pts[:, s_ax] * s_sign
    upper = pts[sup_coord >= np.median(sup_coord)]
    c = upper.mean(0)
    return upper[np.argmin(((upper - c) ** 2).sum(1))]


def _neck_tube(ct: Volume, body: np.ndarray, tube: np.ndarray, box: tuple, s_ax: int) -> bool:
    """Whether an air tube found with no lung in view (``tube``: bool over ``box``, whole axial
    slices of ``ct``'s [k, j, i] grid, a candidate of `_seed_search`) lies where the trachea runs above the
    lung apices, in most of its axial slices: (1) its centre in front of the body's antero-posterior
    middle along its own left-right line: the trachea and oesophagus lie in the neck's visceral
    compartment, in front of the vertebral column, with the prevertebral and the thick posterior
    neck muscles behind (Gray's Anatomy, 42nd ed., "Neck"), while the rectum, the midline gas tube
    of a pelvis, lies in the sacral hollow at the back; (2) bone (>= ``bones.BONE_LOW_HU``: the
    vertebral body) within ``retrotracheal_space_mm`` behind its lumen on that line: only the
    oesophagus and the prevertebral tissue lie between (Wholey et al. 1958, rules file), while a
    bowel loop in front of the abdomen's middle has the mesentery, the aorta and the vena cava
    between it and the spine. Vectorised per slice (one step per slice of the tube)."""
    from .bones import BONE_LOW_HU

    behind_mm = rule("retrotracheal_space_mm")
    x_all, y_all = ras_coordinate(ct, 0)[box], ras_coordinate(ct, 1)[box]
    a, b = ct.array[box], body[box]
    front = bone = 0
    n = tube.shape[s_ax]
    for k in range(n):
        t, xs, ys = (np.take(v, k, axis=s_ax) for v in (tube, x_all, y_all))
        if not t.any():
            n -= 1
            continue
        xc, yc = float(xs[t].mean()), float(ys[t].mean())
        r = float(np.sqrt(t.sum() * np.prod(ct.spacing_kji[[d for d in range(3) if d != s_ax]]) / np.pi))
        line = np.abs(xs - xc) <= r
        col = line & np.take(b, k, axis=s_ax)
        if col.any():
            y_front, y_back = float(ys[col].max()), float(ys[col].min())
            front += yc > 0.5 * (y_front + y_back)
        y_post = float(ys[t].min())
        dense = line & (np.take(a, k, axis=s_ax) >= BONE_LOW_HU) & (ys < y_post) & (ys >= y_post - behind_mm)
        bone += bool(dense.any())
    return n > 0 and front > 0.5 * n and bone > 0.5 * n


def mediastinal_share(ct: Volume, lab: np.ndarray, ids, objs, body: np.ndarray) -> np.ndarray:
    """Share of soft tissue (>= ``LUNG_AIR_HU``, inside the body) in the in-plane ring
    ``TRACHEA_RING_MM`` around each 2-D air component ``ids`` of ``lab`` (labelled per axial
    slice; ``objs`` = ``ndimage.find_objects(lab)``), shape (len(ids),). The ring lies past the
    tracheal wall: a trachea in the mediastinum has soft tissue round most of it, a bulla or an
    intrapulmonary bronchus has lung. Where a face of the view cuts the ring, its part in view
    counts."""
    r_in, r_out = TRACHEA_RING_MM
    sp = np.asarray(ct.spacing_kji, float)
    grow = np.ceil(r_out / sp).astype(int)
    s_ax = anatomical_axes(ct)["S"][0]
    grow[s_ax] = 0
    out = np.zeros(len(ids))
    for n_i, l in enumerate(ids):   # one loop step per candidate lumen (tens), not per voxel
        o = objs[l - 1]
        box = tuple(slice(max(sl.start - g, 0), min(sl.stop + g, sz))
                    for sl, g, sz in zip(o, grow, lab.shape))
        lumen = lab[box] == l
        sampling = np.where(np.arange(3) == s_ax, 1e6, sp)   # in-plane distances only
        d = ndimage.distance_transform_edt(~lumen, sampling=sampling)
        ring = (d > r_in) & (d <= r_out)
        if ring.any():
            out[n_i] = float(np.mean((ct.array[box][ring] >= LUNG_AIR_HU) & body[box][ring]))
    return out


def _lung_top(ct: Volume, body: np.ndarray, s_ax: int, s_sign: int):
    """Index (along the superior axis) of the most superior slice holding lung-like air: large
    (> 100 mL) air components (< -400 HU) inside the body that are not uniform gas."""
    from .common import GAS_MEDIAN_HU, label_medians

    f = 1
    while ct.array.size / f ** 3 > 4_000_000:  # a coarse grid is enough to find the apex
        f += 1
    a = ct.array[::f, ::f, ::f]
    lab, n, counts = components((a < LUNG_AIR_HU) & body[::f, ::f, ::f], connectivity=6)
    keep = counts * ct.voxel_volume_ml * f ** 3 > 100.0
    keep[0] = False
    if not keep.any():
        return None
    keep[keep] = label_medians(a, lab, keep) > GAS_MEDIAN_HU
    if not keep.any():
        return None
    m = keep[lab]
    idx = np.flatnonzero(np.any(m, axis=tuple(i for i in range(3) if i != s_ax)))
    return min(int(idx[-1] if s_sign > 0 else idx[0]) * f, ct.shape[s_ax] - 1)


def grow_airways(ct: Volume, seed_kji, body: np.ndarray, thresholds=THRESHOLDS_HU,
                 leak_ratio: float = LEAK_RATIO, max_fraction: float = MAX_LUNG_FRACTION,
                 progress=None) -> tuple[np.ndarray, dict]:
    """Connected component of the seed under increasing thresholds, stopping before a leak.

    Returns (mask, info) with the accepted threshold (HU) and the volumes per step (mL).
    """
    import SimpleITK as sitk

    p = as_progress(progress)
    a = ct.array
    seed = tuple(int(v) for v in seed_kji)
    lung_air_ml = float(((a < -400) & body).sum() * ct.voxel_volume_ml)
    img = sitk.GetImageFromArray(np.where(body, a, 3000).astype(np.int16))
    best, best_t, vols = None, None, []

    def grow(t):
        seg = sitk.ConnectedThreshold(img, seedList=[seed[::-1]], lower=-4000, upper=int(t))
        m = sitk.GetArrayViewFromImage(seg).astype(bool)
        v = float(m.sum() * ct.voxel_volume_ml)
        vols.append((int(t), round(v, 2)))
        return m, v

    def leaked(v, prev, m=None, t=None):
        if v > max_fraction * max(lung_air_ml, 1e-6):
            return True
        if prev is not None and v > leak_ratio * prev and v - prev > LEAK_MIN_ML:
            return True
        # a step above the lumen's air (from a last good threshold >= LUMEN_CORE_HU: all it adds
        # is of lung density) that joins a piece larger than a segmental bronchus beyond the
        # tree's rim has leaked, however small the piece is beside the tree or the lungs in view
        # (a small field of view, trial 26); steps below only fill the lumens' blurred edges
        return (best is not None and m is not None and best_t >= LUMEN_CORE_HU
                and parenchyma_piece_ml(ct, m, best) > leak_piece_limit_ml(ct))

    thresholds = [t for t in thresholds if a[seed] < t]
    for n, t in enumerate(thresholds):
        p(n / max(len(thresholds), 1), f"airways: growing below {t} HU")
        m, v = grow(t)
        if leaked(v, None if best is None else float(best.sum() * ct.voxel_volume_ml), m, t):
            # refine between the last good threshold and the leaking one in 5 HU steps
            if best_t is not None:
                for tt in range(best_t + 5, t, 5):
                    m2, v2 = grow(tt)
                    if leaked(v2, float(best.sum() * ct.voxel_volume_ml), m2, tt):
                        break
                    best, best_t = m2, tt
            break
        best, best_t = m, t
    if best is None:
        raise InputError("airway growing leaked immediately from the trachea seed; the trachea "
                         "is not separated from the lungs at this resolution")
    # local extension: above the global threshold, keep only the small new pieces (peripheral
    # bronchi gained by a branch) and reject the large ones (a branch leaking into parenchyma)
    added_ml = 0.0
    box = bbox_slices(best, 20.0, ct.spacing_kji)  # new pieces lie near the tree
    for t in range(best_t + LOCAL_STEP_HU, LOCAL_MAX_HU + 1, LOCAL_STEP_HU):
        m, _ = grow(t)
        new = m[box] & ~best[box]
        if not new.any():
            continue
        lab, n, cnt = components(new, connectivity=26)
        ok = cnt * ct.voxel_volume_ml <= LOCAL_PIECE_ML
        # a piece cut by the box may continue outside it: not accepted
        faces = np.concatenate([lab[0].ravel(), lab[-1].ravel(), lab[:, 0].ravel(),
                                lab[:, -1].ravel(), lab[:, :, 0].ravel(), lab[:, :, -1].ravel()])
        ok[np.unique(faces)] = False
        ok[0] = False
        gain = ok[lab]
        added_ml += float(gain.sum() * ct.voxel_volume_ml)
        best[box] |= gain
    return best, {"threshold_hu": best_t, "steps_ml": vols, "local_extension_ml": round(added_ml, 2)}


def leak_piece_limit_ml(ct: Volume) -> float:
    """Largest piece (mL) of lung-density voxels a growing step may add beyond the tree's rim: a
    segmental bronchus (``segmental_bronchus_{diameter,length}_mm``, Weibel 1963) blurred by one
    voxel on each side (a lumen that narrow has no air core left, `LUMEN_CORE_HU`), its cross-
    section across the two coarsest axes (a 5 mm slice blurs a bronchus running in-plane)."""
    d, length = rule("segmental_bronchus_diameter_mm"), rule("segmental_bronchus_length_mm")
    h = np.sort(np.asarray(ct.spacing_kji, float))[::-1]
    return float(np.pi / 4.0 * (d + 2 * h[0]) * (d + 2 * h[1]) * (length + 2 * h[2]) / 1000.0)


def parenchyma_piece_ml(ct: Volume, grown: np.ndarray, tree: np.ndarray) -> float:
    """Volume (mL) of the largest piece that ``grown`` (a tree grown further, a superset of
    ``tree``) adds beyond the tree's partial-volume rim (``PARTIAL_VOLUME_RIM_VOX``) and that is
    made of parenchyma-density voxels (>= ``LUMEN_CORE_HU``): a leak into the lung. A bronchus
    gained at a higher threshold is air inside (its lumen below ``LUMEN_CORE_HU``) and thin
    (the airways narrow outward: Weibel ER, Morphometry of the Human Lung, 1963); widening the
    lumens of the tree adds only a rim next to it."""
    box = bbox_slices(grown & ~tree)
    if box is None:
        return 0.0
    r = PARTIAL_VOLUME_RIM_VOX
    box = tuple(slice(max(b.start - r, 0), min(b.stop + r, n)) for b, n in zip(box, tree.shape))
    near = ndimage.binary_dilation(tree[box], np.ones((3, 3, 3), bool), iterations=r)
    piece = grown[box] & ~near & (ct.array[box] >= LUMEN_CORE_HU)
    if not piece.any():
        return 0.0
    _, _, cnt = components(piece, connectivity=26)
    return float(cnt[1:].max() * ct.voxel_volume_ml)


def split_trachea(ct: Volume, airway: np.ndarray) -> tuple[np.ndarray, np.ndarray, int | None]:
    """(trachea, bronchi, carina slice index along the superior axis) of an airway mask
    (computed on its bounding box, see `_split_trachea`)."""
    box = bbox_slices(airway)
    if box is None:
        return airway.copy(), np.zeros_like(airway), None
    lo = np.array([b.start for b in box])
    sub = ct.crop(lo, [b.stop for b in box])
    # the left-right faces of the box that are faces of the field of view (where a lumen is cut)
    lr = anatomical_axes(ct)["R"][0]
    cut = tuple(end for end, at in ((0, box[lr].start == 0), (-1, box[lr].stop == airway.shape[lr])) if at)
    tr, _, carina = _split_trachea(sub, airway[box], cut)
    trachea = np.zeros_like(airway)
    trachea[box] = tr
    s_ax = anatomical_axes(ct)["S"][0]
    return trachea, airway & ~trachea, None if carina is None else carina + int(lo[s_ax])


def _split_trachea(ct: Volume, airway: np.ndarray, cut_lr_faces=()
                   ) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Track the trachea's lumen slice by slice from the top (the in-plane component that
    overlaps the lumen of the slice above); the carina is the first slice where that lumen
    overlaps two lumens of main-bronchus size (>= ``CARINA_LUMEN_SHARE`` of the trachea's
    cross-section) that do not join again below (`_branches_stay_apart`). Upper-lobe bronchi rising beside the trachea never overlap it, so they
    stay "airways".

    ``cut_lr_faces``: which ends (0, -1) of the left-right array axis are faces of the field of
    view. A field of view that cuts the mediastinum lengthwise (a hemithorax crop) shows one
    main bronchus only, so no slice holds two and the tracking would run on down that bronchus.
    There the trachea, a midline tube cut by that face, ends where its lumen leaves the face
    running sideways as a main bronchus does (`_cut_view_carina`)."""
    s_ax, s_sign = anatomical_axes(ct)["S"]
    lr = anatomical_axes(ct)["R"][0]
    lr_in_slice = lr - (lr > s_ax) if lr != s_ax else None   # the left-right axis in a 2-D slice
    sl_first = np.moveaxis(airway, s_ax, 0)
    n_slices = sl_first.shape[0]
    order = np.arange(n_slices)[::-1] if s_sign > 0 else np.arange(n_slices)  # top down
    other = tuple(i for i in range(3) if i != s_ax)
    pix_mm2 = float(np.prod(ct.spacing_kji[list(other)]))
    trachea = np.zeros_like(sl_first)
    cur = None
    ref_area = None
    carina = None
    track = []   # per tracked slice: (slice, left-right centroid in mm, touches a cut face)
    for s in order:
        sl = sl_first[s]
        if not sl.any():
            if cur is not None:
                break
            continue
        lab, n = ndimage.label(sl, structure=np.ones((3, 3), bool))
        sizes = np.bincount(lab.ravel(), minlength=n + 1) * pix_mm2
        if cur is None:  # top of the tree: the largest lumen
            ids = [int(np.argmax(sizes[1:])) + 1]
        else:
            ids = [int(i) for i in np.unique(lab[cur]) if i]
            if not ids:
                break
            big = [i for i in ids if sizes[i] >= max(10.0, CARINA_LUMEN_SHARE * ref_area)]
            if len(big) >= 2 and _branches_stay_apart(sl_first, order, s, lab, big,
                                                      float(ct.spacing_kji[s_ax]), lr_in_slice,
                                                      cut_lr_faces):
                carina = int(s)
                break
        cur = np.isin(lab, ids)
        trachea[s] = cur
        if lr_in_slice is not None and cut_lr_faces:
            along = np.flatnonzero(cur.any(axis=1 - lr_in_slice))
            cnt = cur.sum(axis=1 - lr_in_slice)[along]
            track.append((int(s), float((along * cnt).sum() / cnt.sum()) * float(ct.spacing_kji[lr]),
                          any(np.take(cur, e, axis=lr_in_slice).any() for e in cut_lr_faces)))
        area = float(cur.sum() * pix_mm2)
        ref_area = area if ref_area is None else 0.8 * ref_area + 0.2 * area
    cut_carina = _cut_view_carina(track, float(ct.spacing_kji[s_ax]))
    if cut_carina is not None:
        carina = cut_carina
        below = order[list(order).index(carina):]
        trachea[below] = False
    if carina is None:
        return airway.copy(), np.zeros_like(airway), None
    trachea = np.moveaxis(trachea, 0, s_ax)
    return trachea, airway & ~trachea, carina


BIFURCATION_CHECK_MM = rule("bifurcation_check_mm")
BIFURCATION_MIN_RUN_MM = rule("bifurcation_min_run_mm")


def _branches_stay_apart(sl_first: np.ndarray, order: np.ndarray, s: int, lab: np.ndarray,
                         ids: list, slice_mm: float, lr_in_slice: int | None = None,
                         cut_lr_faces=()) -> bool:
    """Whether two of the lumens ``ids`` (labels of ``lab``, the in-plane components of slice
    ``s``) are the roots of separate branches, as the main bronchi below the carina are. The
    airways form a tree (dichotomous branching, no loops: Weibel ER, Morphometry of the Human
    Lung, Springer 1963; Horsfield K, Cumming G, J Appl Physiol 1968;24:373-383), and each main
    bronchus runs on for 25-50 mm (Gray's Anatomy, 41st ed., 2016, ch. 'Trachea and bronchi').
    So two lumens must not join again within ``BIFURCATION_CHECK_MM`` below ``s`` (26-connected
    in the airway mask of those slices), and each must run on for ``BIFURCATION_MIN_RUN_MM``, or
    to the lowest slice of the tree, or to a cut left-right face of the view (``cut_lr_faces``,
    ends of the in-slice left-right axis ``lr_in_slice``). Lumens that join again, or a recess
    that ends blindly within a few mm (the larynx's folds and ventricles at the top of a scan, a
    partial-volume septum), are no bifurcation.

    ``sl_first``: the airway mask with the superior axis first; ``order``: its slices from the top
    down; ``slice_mm``: the slice spacing."""
    n = max(1, int(np.ceil(BIFURCATION_CHECK_MM / slice_mm)))
    n_run = min(n, max(1, int(np.ceil(BIFURCATION_MIN_RUN_MM / slice_mm))))
    p = int(np.flatnonzero(order == s)[0])
    planes = order[p:p + n + 1]
    slab = sl_first[planes]
    lab3, _ = ndimage.label(slab, structure=np.ones((3, 3, 3), bool))
    roots = {int(np.max(lab3[0][lab == i])) for i in ids}
    running = 0
    for r in roots:
        comp = lab3 == r
        # far enough down, or to the tree's lowest slice (the slab's last plane)
        ok = bool(comp[min(n_run, len(planes) - 1):].any())
        if not ok and lr_in_slice is not None:
            ok = any(np.take(comp, e, axis=1 + lr_in_slice).any() for e in cut_lr_faces)
        running += ok
    return running >= 2


MAIN_BRONCHUS_SLOPE = float(np.tan(np.radians(rule("main_bronchus_min_angle_deg"))))
CUT_VIEW_WINDOW_MM = rule("main_bronchus_window_mm")


def _cut_view_carina(track, slice_mm: float) -> int | None:
    """The carina of a trachea tracked in a field of view whose left-right face cuts it: the first
    slice where the tracked lumen, after touching the face, no longer touches it and runs
    sideways over the next ``CUT_VIEW_WINDOW_MM`` at least as steeply as a main bronchus (its
    left-right centroid moving >= tan(``main_bronchus_min_angle_deg``) mm per mm down: the main
    bronchi leave the midline at the carina, the trachea itself stays on it). A trachea that
    only drifts off the face (a shifted lower trachea) keeps being tracked. ``track``: per
    tracked slice from the top, (slice index, left-right centroid in mm, touches a cut face).
    None when no such slice."""
    n_win = max(2, int(round(CUT_VIEW_WINDOW_MM / slice_mm)))
    for j in range(1, len(track)):
        if not track[j - 1][2] or track[j][2]:
            continue
        end = min(j + n_win, len(track) - 1)
        if end - j < n_win // 2:
            break   # too little of the lumen below to judge its course
        slope = abs(track[end][1] - track[j][1]) / ((end - j) * slice_mm)
        if slope >= MAIN_BRONCHUS_SLOPE:
            return track[j][0]
    return None


CUT_BRONCHUS_D_MM = (rule("cut_bronchus_min_diameter_mm"), rule("cut_bronchus_max_diameter_mm"))
CUT_BRONCHUS_CORE_HU = rule("cut_bronchus_core_hu")
CUT_BRONCHUS_REACH_MM = rule("cut_bronchus_reach_mm")


def cut_bronchi(ct: Volume, body: np.ndarray, tree: np.ndarray, across=("R",)) -> tuple[np.ndarray, list]:
    """Bronchi cut off from the grown tree by a left-right face of the field of view (or by a
    front or back face: ``across`` holds "A" too; the lobar bronchi run from the hilum forwards,
    so a coronal face behind them cuts them off from the tree as a sagittal one does: seg16, the
    chest CTA's anterior half, its middle-lobe and upper-lobe bronchi labelled lung).

    The bronchial tree is one tree; a face of the field of view (a hemithorax crop beside the
    carina) can cut it into pieces, each still an air tube leaving through that face. On each
    left-right face that ``tree`` touches, the air lumens that are tube-like are seeded from:
    a core below ``cut_bronchus_core_hu`` inside the body, not part of the tree, an
    inscribed diameter of a main or lobar bronchus (``cut_bronchus_{min,max}_diameter_mm``), an
    ellipse no longer than a bronchus crossing the face at ``main_bronchus_min_angle_deg`` from the
    tracheal axis (area <= inscribed disc / sin(angle)), below the
    tree's lowest voxel on that face and within ``cut_bronchus_reach_mm`` (in the face's plane) of
    the tree there. Each seed is grown with `grow_airways` (same leak control); a seed whose
    growth leaks at once is dropped.

    ct, body, tree: CT and bool masks [k, j, i]. Returns (mask [k, j, i] of the pieces found,
    list of {"face", "axis", "seed_kji", "volume_ml", "threshold_hu"} per piece: "face" the end
    index along array axis "axis"). A tree touching none of those faces gives an empty mask (a full
    field of view is unchanged)."""
    axes = anatomical_axes(ct)
    s_ax, s_sign = axes["S"]
    out = np.zeros_like(tree)
    found = []
    for letter in across:
        if axes[letter][0] != s_ax:
            _cut_bronchi_across(ct, body, tree, axes[letter][0], out, found)
    return out, found


def _cut_bronchi_across(ct: Volume, body: np.ndarray, tree: np.ndarray, lr: int, out: np.ndarray,
                        found: list) -> None:
    """`cut_bronchi` on the two faces normal to array axis ``lr``: adds to ``out`` and ``found``."""
    s_ax, s_sign = anatomical_axes(ct)["S"]
    other = [d for d in range(3) if d != lr]
    sp = ct.spacing_kji[other]
    s_in = other.index(s_ax)
    for end in (0, ct.shape[lr] - 1):
        tree_f = np.take(tree | out, end, axis=lr)
        if not tree_f.any():
            continue
        a_f = np.take(ct.array, end, axis=lr)
        air = (a_f < CUT_BRONCHUS_CORE_HU) & np.take(body, end, axis=lr) & ~tree_f
        lab, n = ndimage.label(air, structure=np.ones((3, 3), bool))
        if n == 0:
            continue
        tube_like = _bronchus_lumens(air, lab, n, sp)
        cen = np.array(ndimage.center_of_mass(air, lab, range(1, n + 1))).reshape(n, 2)
        tp = np.argwhere(tree_f)
        lowest = tp[:, s_in].min() if s_sign > 0 else tp[:, s_in].max()   # the tree's lowest slice
        below = (cen[:, s_in] - lowest) * s_sign < 0
        dist = np.sqrt((((cen[:, None, :] - tp[None, :, :]) * sp) ** 2).sum(-1)).min(1)
        ok = tube_like & below & (dist <= CUT_BRONCHUS_REACH_MM)
        for c in np.flatnonzero(ok):
            grown = _grow_from_face(ct, body, lab == c + 1, a_f, lr, end, out)
            if grown is None:
                continue
            seed, m, info = grown
            if (m & tree).any():
                continue
            out |= m
            found.append({"face": int(end), "axis": int(lr), "seed_kji": [int(v) for v in seed],
                          "volume_ml": round(float(m.sum() * ct.voxel_volume_ml), 2),
                          "threshold_hu": info["threshold_hu"]})


def _bronchus_lumens(air: np.ndarray, lab: np.ndarray, n: int, sp) -> np.ndarray:
    """Bool (n,): which 2-D air components ``lab`` (1..n, of ``air`` on a face of the view, pixel
    spacing ``sp`` mm) have a main or lobar bronchus's lumen (``cut_bronchus_{min,max}_diameter_mm``
    inscribed) and are round enough for one: a tube cut obliquely is an ellipse whose minor axis
    (twice the inscribed disc's radius) is the bronchus's diameter and whose area is at most
    1/sin(angle to the tracheal axis) times that disc (a main bronchus leaves the axis at
    >= ``main_bronchus_min_angle_deg``)."""
    area = np.bincount(lab.ravel(), minlength=n + 1)[1:] * float(np.prod(sp))
    r_in = np.asarray(ndimage.maximum(ndimage.distance_transform_edt(air, sampling=sp), lab,
                                      np.arange(1, n + 1)), float).reshape(n)
    diam = 2.0 * r_in
    round_ = area <= np.pi * r_in ** 2 / np.sin(np.radians(rule("main_bronchus_min_angle_deg")))
    return (diam >= CUT_BRONCHUS_D_MM[0]) & (diam <= CUT_BRONCHUS_D_MM[1]) & round_


def _grow_from_face(ct: Volume, body: np.ndarray, lumen_f: np.ndarray, a_f: np.ndarray, axis: int,
                    end: int, out: np.ndarray):
    """(seed [k, j, i], mask, info) of `grow_airways` from the most air-like pixel of ``lumen_f``
    (2-D, on the face ``end`` of array axis ``axis``; ``a_f`` that face's HU), or None where that
    seed is already in ``out`` or the growth leaks at once."""
    pts = np.argwhere(lumen_f)
    seed = np.insert(pts[np.argmin(a_f[tuple(pts.T)])], axis, end)
    if out[tuple(seed)]:
        return None
    try:
        m, info = grow_airways(ct, seed, body)
    except InputError:
        return None
    return seed, m, info


NO_TRACHEA_TOP_CUT = (
    "no trachea found in view: the field of view's top face cuts the lungs (their apices are not in view) and "
    "no round air tube walled off from the lungs was found below it, so the trachea and carina lie above "
    "the view; no trachea is labelled")


class TracheaAboveView(InputError):
    """No trachea in view because the view's top face cuts the lungs below the carina
    (`NO_TRACHEA_TOP_CUT`): the caller may look for the bronchi on that face
    (`top_face_bronchi`). A type, so that no caller matches the message's text (review 43 L5)."""

    def __init__(self, message: str = NO_TRACHEA_TOP_CUT):
        super().__init__(message)


def lungs_reach_top_face(ct: Volume, body: np.ndarray) -> bool:
    """Whether lung-like air (`_lung_top`: large air components inside ``body`` that are not uniform
    gas) reaches the top face of the view (within the coarse grid that search uses): the view's top
    lies below the lung apices, so a trachea may lie above it."""
    s_ax, s_sign = anatomical_axes(ct)["S"]
    top = _lung_top(ct, body, s_ax, s_sign)
    if top is None:
        return False
    f = 1
    while ct.array.size / f ** 3 > 4_000_000:   # `_lung_top`'s coarse grid
        f += 1
    end = ct.shape[s_ax] - 1 if s_sign > 0 else 0
    return abs(end - top) < f + 1


def top_face_bronchi(ct: Volume, body: np.ndarray) -> tuple[np.ndarray, list]:
    """(bronchi bool [k, j, i], pieces) of a view whose top face cuts the lungs below the carina,
    with no trachea in view (new-user trial 51 M2: the lower half of lung1 and of the chest CTA,
    5.4 and 7.1 mL of main and lobar bronchi labelled lung).

    The bronchial tree is one tree hanging from the trachea (Weibel ER, Morphometry of the Human
    Lung, 1963): below the carina each main or lobar bronchus leaves such a view's top face as an
    air tube, its wall enclosing its lumen. On the top face, when lung-like air (< -400 HU) reaches
    it, the lumens are seeded from as `cut_bronchi` seeds from a side face: a dark region inside
    the body (below a level from ``cut_bronchus_core_hu`` up to ``top_face_lumen_max_hu`` on the
    face cleared of noise, `_top_face_lumens`), an inscribed diameter of a main or lobar bronchus
    (``cut_bronchus_{min,max}_diameter_mm``), an ellipse no longer than a bronchus leaving the
    tracheal axis at ``main_bronchus_min_angle_deg`` would cut, and within
    ``cut_bronchus_reach_mm`` of the midline (`lungs.midline_x`; the main bronchi
    span ~50 mm from the carina). (A walled-lumen check as the trachea's, `_seed_search`, does not
    hold here: a bronchus at the hilum touches the lung, its thin wall bridged at -400 HU.) Each
    seed is grown with `grow_airways` (same leak control); a piece is kept when no part of it is
    wider (inscribed diameter of its widest in-plane section, `_widest_section_mm`, within two
    in-plane voxels: not the slice thickness, review M4) than the widest bronchus below the
    carina, a main bronchus (``cut_bronchus_max_diameter_mm``, 16 mm: Gray's Anatomy, 41st ed.): a piece
    wider is lung grown into. (Not its lumen on the face: the face may cut a bronchus at its
    side or near a branching, where the lumen in view is narrower than the bronchus below it;
    trial 54 H2, the chest CTA cut 15 mm below the carina: the right bronchus 6 mm wide on the
    face, 10 mm below it.) Pieces: one dict each (seed_kji, volume_ml, threshold_hu)."""
    from .lungs import midline_x

    s_ax, s_sign = anatomical_axes(ct)["S"]
    end = ct.shape[s_ax] - 1 if s_sign > 0 else 0
    out = np.zeros_like(body)
    pieces: list = []
    a_f, body_f = np.take(ct.array, end, axis=s_ax), np.take(body, end, axis=s_ax)
    other = [d for d in range(3) if d != s_ax]
    sp = np.asarray(ct.spacing_kji, float)[other]
    mid = midline_x(ct, body)[0]
    x_f = None if mid is None else np.take(np.broadcast_to(ras_coordinate(ct, 0), ct.shape), end, axis=s_ax)
    for lumen in _top_face_lumens(a_f, body_f, sp, mid, x_f):   # one step per lumen (a few)
        grown = _grow_from_face(ct, body, lumen, a_f, s_ax, end, out)
        if grown is None:
            continue
        seed, m, info = grown
        if _widest_section_mm(m, ct.spacing_kji, s_ax) > CUT_BRONCHUS_D_MM[1] + 2.0 * float(np.max(sp)):
            continue
        out |= m
        pieces.append({"seed_kji": [int(v) for v in seed], "volume_ml": round(float(m.sum() * ct.voxel_volume_ml), 2),
                       "threshold_hu": info["threshold_hu"]})
    return out, pieces


def _widest_section_mm(m: np.ndarray, spacing_kji, s_ax: int) -> float:
    """Inscribed diameter (mm) of the widest cross-section of ``m`` (bool [k, j, i]) in the planes
    normal to array axis ``s_ax`` (the superior one): twice the largest in-plane distance from a
    voxel of ``m`` to the nearest voxel outside it in its own plane. A tube's section in any
    plane it crosses is an ellipse whose minor axis is the tube's diameter (a strip of that
    width when it lies in the plane), so this is the tube's width at any slope; it is read in
    the plane, where the voxels are finest, and grows with the in-plane voxel only (the EDT
    runs between voxel centres: at most one voxel more than the lumen's width by each edge's
    half voxel). Across slices a 5 mm slice would add up to 10 mm (`top_face_bronchi`, review
    M4), and a 3-D reading would miss a piece as thin as one slice, which no ball wider than
    the slice fits in. Computed as one EDT with the S axis weighted beyond any distance in the
    box, on the box padded in-plane by one empty voxel."""
    box = bbox_slices(m)
    pad = [(1, 1)] * 3
    pad[s_ax] = (0, 0)
    sub = np.pad(m[box], pad)
    sk = np.asarray(spacing_kji, float).copy()
    sk[s_ax] = 10.0 * float(np.sum(np.asarray(sub.shape) * sk))   # farther than any in-plane path
    return 2.0 * float(ndimage.distance_transform_edt(sub, sampling=sk).max())


TOP_FACE_LUMEN_MAX_HU = rule("top_face_lumen_max_hu")


def _top_face_lumens(a_f: np.ndarray, body_f: np.ndarray, sp, mid: float | None, x_f: np.ndarray | None) -> list:
    """2-D bool masks of the air lumens of main or lobar bronchus calibre on a view's top face
    (``a_f`` its HU, ``body_f`` the body in it, pixel spacing ``sp`` mm; ``x_f`` RAS x per pixel
    and ``mid`` the midline's, or None), in the order found.

    A bronchus's lumen is a dark region walled off by its wall from the lung around it, but the
    HU of its core depends on the scan: on a 1.5 mm contrast CTA the main bronchi 15 mm below the
    carina read -930 to -960 HU with noise scattering their pixels round ``cut_bronchus_core_hu``
    (trial 54 H2: no pixel run wide enough at -950 HU, 15 mL of bronchi labelled lung), while the
    lung there reads ~-810 HU. So the face is first cleared of impulse noise (a 3 x 3 median) and
    thresholded at levels from ``cut_bronchus_core_hu`` up to ``top_face_lumen_max_hu`` (the
    densest normal lung at full inspiration, Gevenois 1996), 10 HU apart: a lumen is a
    component that has a bronchus's calibre and roundness at some level (`_bronchus_lumens`; a
    lumen merged with lung at a level is too wide there and is taken at a lower one), within
    ``cut_bronchus_reach_mm`` of the midline when one is known, and walled: soft tissue round at
    least ``bronchus_wall_share`` of it (`_wall_share`; lung1's lower half: pockets of its
    inflated lung, -920..-950 HU, read as such regions at those levels, ringed by lung). A lumen
    already taken at a lower level is not taken again."""
    med = ndimage.median_filter(a_f, size=3, mode="nearest")
    taken = np.zeros(a_f.shape, bool)
    found = []
    for t in np.arange(CUT_BRONCHUS_CORE_HU, TOP_FACE_LUMEN_MAX_HU + 1.0, 10.0):
        air = (med < t) & body_f
        lab, n = ndimage.label(air, structure=np.ones((3, 3), bool))
        if n == 0:
            continue
        ok = _bronchus_lumens(air, lab, n, sp)
        if mid is not None:
            cnt = np.maximum(np.bincount(lab[air], minlength=n + 1)[1:], 1)
            cx = np.bincount(lab[air], weights=x_f[air], minlength=n + 1)[1:] / cnt
            ok &= np.abs(cx - mid) <= CUT_BRONCHUS_REACH_MM
        seen = np.zeros(n + 1, bool)
        seen[np.unique(lab[taken & air])] = True
        for c in np.flatnonzero(ok & ~seen[1:]):
            lumen = lab == c + 1
            if _wall_share(a_f, lumen, sp) >= BRONCHUS_WALL_SHARE:
                taken |= lumen
                found.append(lumen)
    return found


BRONCHUS_WALL_SHARE = rule("bronchus_wall_share")


def _wall_share(a_f: np.ndarray, lumen: np.ndarray, sp) -> float:
    """Share of soft tissue (>= ``LUNG_AIR_HU``) in the ring up to ``tracheal_wall_mm`` (in-plane)
    round the 2-D ``lumen`` on a face (``a_f`` its HU, pixel spacing ``sp`` mm): a bronchus's wall
    encloses its lumen, lung rings a pocket of parenchyma (``bronchus_wall_share``)."""
    wall = rule("tracheal_wall_mm")
    m = np.ceil(wall / np.asarray(sp, float)).astype(int) + 1
    pts = np.argwhere(lumen)
    box = tuple(slice(max(int(lo) - g, 0), min(int(hi) + 1 + g, n))
                for lo, hi, g, n in zip(pts.min(0), pts.max(0), m, lumen.shape))
    d = ndimage.distance_transform_edt(~lumen[box], sampling=sp)
    ring = (d > 0) & (d <= wall)
    return float(np.mean(a_f[box][ring] >= LUNG_AIR_HU)) if ring.any() else 0.0


def no_carina_note(ct: Volume, trachea: np.ndarray) -> str:
    """Why the trachea label of a tree with no carina found (``trachea``: bool [k, j, i], the
    whole tree then) may not end where the trachea does. The trachea ends at the carina, at the
    level of T4-T5 (the sternal angle), where the two main bronchi diverge at an interbronchial
    angle of about 61 +- 12 degrees (Haskin PH, Goodman LR, AJR 1982;139:879-882; Gray's
    Anatomy, 41st ed., 2016, ch. 'Trachea and bronchi'); with no such split in view (a view
    ending above the carina, one that cuts the trachea's lower part off through a face, or a
    split the tracking did not find) the label runs to the tree's lowest voxel in view, which
    may be a main bronchus. Names the faces of the view the tree touches and its lowest RAS S."""
    faces = []
    # (not the top face: the trachea goes on up to the larynx, which says nothing of its lower end)
    names = {"R": ("right", "left"), "A": ("anterior", "posterior"), "S": (None, "inferior")}
    for letter, (pos, neg) in names.items():
        a, sign = anatomical_axes(ct)[letter]
        for end in (0, trachea.shape[a] - 1):
            face = pos if (end > 0) == (sign > 0) else neg
            if face and np.take(trachea, end, axis=a).any():
                faces.append(face)
    low = float(np.broadcast_to(ras_coordinate(ct, 2), trachea.shape)[trachea].min()) if trachea.any() else float("nan")
    where = (f"the tree leaves the field of view through its {', '.join(faces)} face(s)" if faces
             else "the tree ends in view with no split into two main bronchi found")
    return (f"no carina found in view ({where}): the whole tree in view, down to RAS S {low:.1f} mm, is "
            "labelled trachea, but the trachea ends at the carina (T4-T5), so its lower end and the main "
            "bronchi are uncertain: part of that label may be a main bronchus; check the carina on the "
            "images before planning near the hilum")


# an airway tree grown on a reformat: bronchi short by (measured, seg36, `interpolated_grid_note`)
REFORMAT_SHORTFALL = "the chest CTA (1.5 mm) reformatted 20 degrees about the left-right axis: bronchi 19 % short; lung1 (5 mm slices): 30 %"


def check_slice_thickness(vol: Volume, what: str = "airway mask", refuse: bool = True) -> str:
    """Refuse (InputError) a grid whose coarsest spacing, or a DICOM series' SliceThickness when
    larger (overlapping slices: `dicom.read_series` ``slice_thickness_mm``), exceeds the limit (a
    segmental bronchus 4-8 mm wide spans one or two such slices: its centreline, calibre and
    branch points are not resolved); with ``refuse=False`` return the message as a warning
    instead ("" when fine). The limit: ``max_slice_mm`` of ``imagio/data/airway_limits.json``
    (with its source); the one check for segment's airway note, detect's bronch commands and bronch.

    For a CT (``what`` "CT", HU values) whose header passes, its own noise is read too
    (`resolution.resolution_along_s`): a resolution along the axis nearest S above
    ``resampled_min_mm`` of airway_limits.json (what sections of <= the limit do not give, with the
    measurements it rests on; ``AIRWAY_RESAMPLED_MIN_MM``) is a grid interpolated
    from thick sections (a resampled export, a reformat) or thick overlapping sections whose
    thickness the header does not carry, refused or warned alike, naming both figures (new-user
    trial 82 L4: lung1's 5 mm sections B-spline-resampled to 1 mm passed; its tree then had 13
    branches and no carina). The noise of an airway mask or of a noise-free image says nothing:
    not read."""
    sp = float(np.max(vol.spacing))
    thick = (vol.meta.get("read") or {}).get("slice_thickness_mm")   # DICOM: thicker than the step
    if thick and float(thick) > sp:
        sp = float(thick)
    tail = (f"an airway tree cannot be trusted at this slice thickness (needs <= {AIRWAY_MAX_SLICE_MM:g} mm); "
            "reconstruct the CT with thin slices (about 1 mm) and segment the airways again")
    msg = ""
    if sp > AIRWAY_MAX_SLICE_MM:
        msg = (f"the {what} has {sp:.2g} mm slices{' (the DICOM SliceThickness; the slices overlap)' if sp == thick else ''}: "
               + tail)
    elif what == "CT" and vol.array.dtype.kind in "if":
        from .resolution import resolution_along_s

        found = resolution_along_s(vol, AIRWAY_RESAMPLED_MIN_MM, RESAMPLED_SECTIONS_RATIO)
        if found is not None:
            res, step, ax = found
            msg = (f"the CT's slices are {step:.2g} mm apart but the image's resolution along S-I (array axis "
                   f"{'kji'[ax]}) is about {res:.1f} mm by its noise: it was resampled from thick slices (or "
                   f"reconstructed with thick overlapping ones); " + tail)
    if msg and refuse:
        raise InputError(msg)
    return msg


def slice_thickness_doubt(vol: Volume) -> str:
    """The warning (else "") for a CT (HU, `Volume`) that `check_slice_thickness` passes but whose
    own noise reads a resolution along the axis nearest S (`resolution.resolution_along_s`, at
    least ``RESAMPLED_SECTIONS_RATIO`` times its spacing) above what sections of the header rule's
    ``max_slice_mm`` give on their own grid (``max_slice_mm x native_width_ratio_max``, 4.5 mm, of
    airway_limits.json with the measurements): sections thicker than the rule's limit reconstructed
    with overlap (a thick-slice series at a thin increment, whose header gives the increment), or
    thinner sections interpolated to a finer grid; the noise cannot tell which, so it is a warning
    naming the reading and the rule (new-user trial 95 F5: the chest CTA as 4.5 mm sections at a
    1.5 mm step read 5.06 mm and passed `bronch` silently while a 3 mm CT is refused). Errors: none."""
    if vol.array.dtype.kind not in "if" or check_slice_thickness(vol, "CT", refuse=False):
        return ""
    from .resolution import resolution_along_s

    band = AIRWAY_MAX_SLICE_MM * AIRWAY_NATIVE_WIDTH_RATIO
    found = resolution_along_s(vol, band, RESAMPLED_SECTIONS_RATIO)
    if found is None:
        return ""
    res, step, ax = found
    return (f"the CT's slices are {step:.2g} mm apart but its resolution along S-I (array axis {'kji'[ax]}) is "
            f"about {res:.1f} mm by its noise, more than sections of {AIRWAY_MAX_SLICE_MM:g} mm give on their own "
            f"grid (up to {band:.1f} mm): sections thicker than {AIRWAY_MAX_SLICE_MM:g} mm reconstructed with overlap "
            f"(thick slices at a thin increment), or thinner ones interpolated; if the series' SliceThickness is "
            f"above {AIRWAY_MAX_SLICE_MM:g} mm the airway tree cannot be trusted (small bronchi missed or merged): "
            "check it, and reconstruct the CT with thin slices (about 1 mm) if so")


def interpolated_grid_note(ct: Volume, tree: np.ndarray, source: Volume | None = None) -> str:
    """Why the airways of ``tree`` (bool [k, j, i]) may be short when ``ct``'s grid is oblique to the
    patient's axes (`grid_obliquity_deg`) by enough that the grid's sub-voxel offsets from the scan's
    axial planes drift by over half the finest voxel across the tree (tan(angle) x the tree's
    largest extent > half the finest spacing), else "". Such a grid is a reformat, interpolated,
    unless its reader recorded the scanner's own values read as stored (`grid_values_origin` of
    ``source``, the image as read, default ``ct``: "acquired", an ORIGINAL\\PRIMARY DICOM series,
    gets no note: new-user trial 85 L1). Where IMAGIO resampled the series on reading, the note says
    so, and a corrected gantry tilt counts as the angle on an axial grid too (each slice shifted
    in-plane by its own sub-voxel offset), as do gaps or uneven slices made regular whose regular
    slices lie more than half the finest voxel from an acquired one (the reader's
    ``resampled.offset_mm``: their values are blends of two slices along the normal; trial 89 L:
    such a series got no note). Interpolation is a low-pass filter: it averages each lumen's air with its wall, so
    the air of a small bronchus and the lumen's outer voxel read above the growing threshold
    (`THRESHOLDS_HU`, absolute HU). The loss does not come from the tilt itself: the same chest CTA
    resampled half a voxel off its own axes (no rotation, the most blur a linear resampler gives)
    loses 34 % of its bronchi; two thirds of what a 20 degree reformat loses is the lumens' outer
    voxel layer (median -730 HU there, against -865 HU for the threshold grown to). Stated, not
    corrected: a threshold rule cannot recover a wall that the resampler blended in."""
    from .common import grid_obliquity_deg, grid_values_origin

    if not tree.any():
        return ""
    src = ct if source is None else source
    origin = grid_values_origin(src)
    if origin == "acquired":
        return ""
    deg = grid_obliquity_deg(ct)
    # a sheared stack (gantry tilt) made regular: each slice shifted in-plane by its own sub-voxel
    # offset, drifting by tan(tilt) per mm along the slices' normal, on an axial grid too
    read = src.meta.get("read") or {}
    tilt = float(read.get("tilt_deg") or 0.0) if origin == "resampled" else 0.0
    # gaps or uneven slices made regular: the regular slices' distance from the acquired ones
    off = float((read.get("resampled") or {}).get("offset_mm") or 0.0) if origin == "resampled" else 0.0
    box = bbox_slices(tree)
    extent = max((b.stop - b.start) * float(s_) for b, s_ in zip(box, ct.spacing_kji))
    half = 0.5 * float(np.min(ct.spacing_kji))
    if np.tan(np.radians(max(deg, tilt))) * extent <= half and off <= half:
        return ""
    if origin == "resampled":
        why = f"a gantry tilt of {tilt:.0f} degrees corrected" if tilt else (
            f"gaps or uneven slices made regular, its slices up to {off:.1f} mm from an acquired one")
        head = (f"IMAGIO resampled the CT's slices on reading ({why}, linear) onto a grid "
                + (f"tilted {deg:.0f} degrees off the patient's axes" if deg >= 0.5 else "along the patient's axes")
                + ", so its values were interpolated")
    else:
        head = (f"the CT's grid is tilted {deg:.0f} degrees off the patient's axes (an oblique reformat: nothing "
                "read with it says these are the scanner's original values), so its values were most likely "
                "interpolated")
    return (f"{head}: interpolation blends each airway lumen with its wall, and small "
            "bronchi and the lumens' outer voxels then read above the growing threshold, so the bronchi "
            f"may be labelled short (measured: {REFORMAT_SHORTFALL}); "
            + (("a series without gantry tilt" if tilt else "a series of evenly spaced slices (a complete export)")
               + ", where there is one, needs no resampling" if origin == "resampled" else
               "segment the scanner's axial series where there is one"))


def wider_than_trachea(ct: Volume, trachea: np.ndarray, bronchi: np.ndarray):
    """(trachea, widest bronchi) inscribed diameters in mm when a part of ``bronchi`` is wider
    than the ``trachea`` by more than a voxel, else None. The airways narrow at each branching
    (Weibel ER, Morphometry of the Human Lung, Springer 1963: generation 0, the trachea, is the
    widest), so a part of the tree wider than the trachea is no bronchus: a leak into the lung."""
    tree = trachea | bronchi
    box = bbox_slices(tree)
    if box is None or not trachea.any() or not bronchi.any():
        return None
    d = ndimage.distance_transform_edt(tree[box], sampling=ct.spacing_kji)
    d_tr, d_br = 2.0 * float(d[trachea[box]].max()), 2.0 * float(d[bronchi[box]].max())
    return (d_tr, d_br) if d_br > d_tr + 2.0 * float(max(ct.spacing_kji)) else None


def cut_face(ct: Volume, mask: np.ndarray, axis: str = "R") -> str | None:
    """The patient side ('right'/'left' for ``axis`` "R", 'front'/'back' for "A") of the first
    face of the image across that RAS axis that ``mask`` ([k, j, i]) touches, else None."""
    ax, sign = anatomical_axes(ct)[axis]
    pos, neg = {"R": ("right", "left"), "A": ("front", "back")}[axis]
    for end in (0, mask.shape[ax] - 1):
        if np.take(mask, end, axis=ax).any():
            return pos if (end > 0) == (sign > 0) else neg   # index rising towards +axis: the last face is +
    return None


def cut_lr_side(ct: Volume, mask: np.ndarray) -> str | None:
    """'left' or 'right' when ``mask`` touches the image's face on that side of the patient (a
    hemithorax crop through it; the first such face), else None."""
    return cut_face(ct, mask, "R")


def opened_lumen(ct: Volume, body: np.ndarray, tree: np.ndarray) -> np.ndarray:
    """Bool [k, j, i]: the airway lumen that a face of the field of view cut open lengthwise, outside
    ``body`` (bool [k, j, i]) and joined to the grown ``tree`` (bool [k, j, i]).

    A front or back face (a coronal plane) through the trachea opens its lumen to the image's edge:
    that air (<= ``BODY_HU``) then joins the face and reads as outside the patient (`body.body_mask`
    takes only parenchyma-like air in; a lumen is purer air), and the tree grown inside the body
    stops where the cut begins (new-user trial 48: the chest CTA's anterior half, 8.5 mL of trachea
    over 51 mm unlabelled). Such air is the lumen when (a) its component (6-connected, outside the
    body) touches the tree (a voxel's 26-neighbourhood) and (b) in each axial slice the airway's
    wall encloses it in view: its gap on the face, along either in-face axis, is no wider than
    ``max_cut_lumen_mm`` (the widest trachea, Breatnach 1984, in segmentation_rules.json), and with
    the face closed across that gap it is a hole of the body in its slice (`close_faces`, the rule
    `body.close_cut_face` applies to left-right faces). Air outside the patient between an arm and
    the chest touches no airway; a lumen open wider than a trachea stays out. The voxels of the
    lumen on the face are kept where they border that hole. Empty when none."""
    air = ~body & (ct.array <= BODY_HU)
    beside = dilate_voxels(tree, np.ones((3, 3, 3), bool)) & air   # on the tree's box, same voxels
    if not beside.any():
        return np.zeros_like(body)
    lab = components(air, connectivity=6)[0]
    ids = np.unique(lab[beside])
    cand = np.isin(lab, ids[ids > 0])
    return cand & enclosed_open_air(ct, body)


def enclosed_open_air(ct: Volume, body: np.ndarray) -> np.ndarray:
    """Bool [k, j, i]: air (<= ``BODY_HU``) outside ``body`` that the body's wall encloses in view
    in its axial slice once the left-right, front and back faces of the view are closed across
    gaps up to ``max_cut_lumen_mm`` (the widest trachea; `close_faces`): the lumen of a tube cut
    open lengthwise by a face (`opened_lumen`), with its voxels on the face where they border that
    hole. Air outside the patient open wider than a trachea stays out."""
    sup = anatomical_axes(ct)["S"][0]
    closed = close_faces(body, [d for d in range(3) if d != sup], ct.spacing_kji, MAX_CUT_LUMEN_MM)
    hole = fill_holes_per_slice(closed, sup) & ~closed
    added = closed & ~body
    return (hole | (added & dilate_voxels(hole))) & (ct.array <= BODY_HU)


def lumen_left_out(ct: Volume, body: np.ndarray, trachea: np.ndarray) -> np.ndarray:
    """Bool [k, j, i]: the air outside ``body`` (bool [k, j, i]; air: below `BODY_HU`) that the
    trachea's lumen (``trachea``, bool [k, j, i]) opens into: the 6-connected components of that
    air holding a 26-neighbour of ``trachea``, taken on measured voxels only
    (`body.measured_voxels`, as the body and the bones take them: not a resampler's fill and the
    two voxels it blends into, nor the padding outside a reconstruction circle and the voxel next
    to it; the array's outer layer kept). Padding is no air the patient lies in: the trachea
    leaving an oblique reformat's data through its top borders that fill, which joins the air
    around the patient, as a lumen cut by the array's top face joins none (seg36: the chest CTA
    and lung1 tilted 20 degrees, 22 L "left out" and a front face said to cut the trachea;
    new-user trial 78: the same CTA, 11 voxels of lumen three voxels below the
    fill, outside the fill's rim, still joined 22 L of air through it). Empty when none."""
    outside_air = ~body & (ct.array < BODY_HU)
    beside = dilate_voxels(trachea, np.ones((3, 3, 3), bool)) & outside_air
    if beside.any():
        from .body import measured_voxels

        measured = measured_voxels(ct)
        if measured is not None:
            beside &= measured
            outside_air &= measured
    if not beside.any():
        return np.zeros(ct.shape, bool)
    lab = components(outside_air, connectivity=6)[0]
    ids = np.unique(lab[beside])
    return np.isin(lab, ids[ids > 0])


def airway_masks(ct: Volume, body: np.ndarray, progress=None) -> tuple[np.ndarray, np.ndarray, dict]:
    """(trachea, bronchi, info) for a chest CT; raises InputError if no trachea is found.

    When the tree grown from the trachea touches a left-right, front or back face of the field of
    view, the bronchi that face cuts off from it are added to the bronchi (`cut_bronchi`; info
    "cut_bronchi": one entry per piece). When a face cut the trachea open (`opened_lumen`), the
    tree is grown again with that lumen inside the body (info "opened_lumen_ml") and
    info "cut_face_warning" says so; the caller puts the airways into the body."""
    p = as_progress(progress)
    check_ct(ct)
    p(0.0, "airways: finding the trachea")
    where: dict = {}
    seed = find_trachea_seed(ct, body, where)
    grow_body = body
    if seed is None:
        # a face of the view may cut the trachea open over its whole length in view (new-user
        # trial 51 M1: the chest CTA cut at j < 72, through the middle of the trachea): its lumen
        # then reads as air outside the body in every slice, so no lumen is seen inside the body
        # and the tree from which `opened_lumen` takes it in is never grown. The tube is looked
        # for again with the air that the wall in view encloses (`enclosed_open_air`) inside
        open_air = enclosed_open_air(ct, body)
        if open_air.any():
            seed = find_trachea_seed(ct, body | open_air, where)
            if seed is not None:
                grow_body = body | open_air
    if seed is None:
        from .lungs import midline_x

        if midline_x(ct, body)[1] == "unknown":
            raise InputError(
                "no trachea found (no round air tube ringed by the mediastinum's soft tissue in the "
                "upper slices) and no midline known to search near: the image's origin is (0, 0, 0), "
                "so it carries no scanner coordinates, and the body is cut at a side; if the chest "
                "above the carina is in view, write the CT with its scanner coordinates (its origin) "
                "and segment again")
        if lungs_reach_top_face(ct, body):
            # trial 51 M2: a view whose top lies below the carina (a lower half) was told to cover
            # the chest above the carina, and a round recess of lung was named trachea in lung1's
            raise TracheaAboveView()
        raise InputError("no trachea found (no round air tube near the midline in the upper "
                         "slices): airways need a CT that covers the chest above the carina")
    # no lung in view: the trachea is nearly all the air inside the body, so the share of the
    # lungs' air an airway lumen takes (``MAX_LUNG_FRACTION``) says nothing; the other leak tests hold
    frac = np.inf if where.get("above_lungs") else MAX_LUNG_FRACTION
    m, info = grow_airways(ct, seed, grow_body, max_fraction=frac, progress=p.sub(0.1, 0.9))
    lumen = opened_lumen(ct, body, m)
    if lumen.any():
        # a front or back face of the view cut the trachea open: its lumen, enclosed by the wall
        # in view, is the patient's; the tree is grown again with it (same leak control)
        body = body | lumen
        m, info = grow_airways(ct, seed, body, max_fraction=frac)
        info["opened_lumen_ml"] = round(float(lumen.sum() * ct.voxel_volume_ml), 2)
    trachea, bronchi, carina = split_trachea(ct, m)
    across = tuple(letter for letter in ("R", "A") if cut_face(ct, m, letter) is not None)
    if across:
        extra, pieces = cut_bronchi(ct, body, m, across)
        if pieces:
            bronchi |= extra & ~trachea
            info["cut_bronchi"] = pieces
    if where.get("above_lungs"):
        info["above_lungs"] = True
    info.update(seed_kji=[int(v) for v in seed], carina_slice=carina,
                volume_ml=round(float(m.sum() * ct.voxel_volume_ml), 2))
    if carina is None and where.get("above_lungs"):
        # no lung in view: the view lies above the lung apices, the carina far below it (T4-T5)
        info["carina_warning"] = NECK_TRACHEA_NOTE
    elif carina is None:
        info["carina_warning"] = no_carina_note(ct, trachea)
    elif cut_lr_side(ct, trachea) is not None:
        # a face cutting the trachea lengthwise shows one main bronchus whole at most: the split
        # is placed from the lumens in view, and a bronchus still touching the face below the
        # carina (it leaves the midline at 20-45 degrees, 10-16 mm wide: Haskin & Goodman, AJR
        # 1982; Gray's Anatomy, 41st ed.) may be tracked as trachea for up to its width (seg14:
        # the chest CTA's right half, 6 mm and 2.8 mL of its right main bronchus)
        info["carina_warning"] = (
            f"the field of view's {cut_lr_side(ct, trachea)} face cuts the trachea lengthwise, so the carina "
            "is placed from the one side's lumens in view: the trachea's lower end may run on into a main "
            "bronchus by up to that bronchus's width (~10-16 mm), and the main bronchi's start is uncertain; "
            "check the carina on the images before planning near the hilum")
    # the trachea's lumen beside air outside the body: a front or back face of the view cut it open
    # and the air of the open part joins the image's edge there, unless `opened_lumen` took it in
    ap = None
    left_out = lumen_left_out(ct, body, trachea)
    if left_out.any():
        info["left_out_lumen_ml"] = round(float(left_out.sum() * ct.voxel_volume_ml), 2)
        # (what `opened_lumen` leaves of it: the face's layer of a lumen, partial volume at its rim)
        if info["left_out_lumen_ml"] > LOCAL_PIECE_ML:
            ap = cut_face(ct, left_out, "A")
    if ap is not None:
        # a front or back face cutting the trachea lengthwise opens its lumen to the image's edge:
        # that air reads as air outside the body, and the tree is grown inside the body only (new-user
        # trial 48: the chest CTA's anterior half, 8.5 mL of trachea over 51 mm left unlabelled, the
        # tree said to end 51 mm above the carina)
        info["cut_face_warning"] = (
            f"the field of view's {ap} face cuts the trachea lengthwise: the airway lumen open to the image's "
            "edge reads as air outside the body, so part of the trachea and the main bronchi below it may be "
            "missing from the labels (and the tree's lower end as said is not the carina); check the airways "
            "on the images, or segment a field of view that holds the whole trachea")
    elif info.get("opened_lumen_ml"):
        ap = cut_face(ct, lumen, "A") or cut_face(ct, lumen, "R")
        # the wall beyond the face is not seen: where a main bronchus leaves, the split is placed from
        # the lumens in view, as for a left-right face (above)
        info["cut_face_warning"] = (
            f"the field of view's {ap + ' face' if ap else 'edge'} cuts the trachea lengthwise: its lumen open to it "
            f"({info['opened_lumen_ml']:.1f} mL, enclosed in view by the airway's wall) is labelled airway, "
            "but the wall beyond the face is not seen, so the carina is placed from the lumens in view and "
            "the trachea's lower end and the main bronchi's start are uncertain; check them on the images "
            "before planning near the hilum")
    note = interpolated_grid_note(ct, trachea | bronchi)
    if note:
        info["reformat_warning"] = note
    wide = wider_than_trachea(ct, trachea, bronchi)
    if wide is not None:
        info["leak_warning"] = (
            f"a part of the bronchi is wider than the trachea (inscribed diameter {wide[1]:.0f} vs "
            f"{wide[0]:.0f} mm): no bronchus is, so the growing may have leaked into the lung there; "
            "check the airways on the images")
    p(1.0, "airways: done")
    return trachea, bronchi, info
