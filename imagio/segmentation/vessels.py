"""Contrast-filled vessels inside an organ (liver, lung) by multiscale Hessian vesselness.

Frangi et al., MICCAI 1998: at each scale sigma (mm) the Hessian of the Gaussian-smoothed CT
(scale-normalised by sigma^2, computed with separable Gaussian derivatives, anisotropic
spacing respected) gives eigenvalues |l1| <= |l2| <= |l3|; bright tubes have l2, l3 << 0 and
l1 ~ 0 (Sato et al., Med Image Anal 1998, for the scales). The response is the maximum over
scales; voxels above ``threshold`` x the maximum response that are brighter than the organ's
median + 40 HU form the vessel mask in aerated lung. In a soft-tissue organ (liver) they only
seed the vessels: at a lumen wider than the filter the Hessian answers at the walls, and a
low-contrast lumen (55 HU over the liver, 15 HU noise) is cut to fragments by a HU threshold
(new-user trial 112 F7: a 5-8 mm vessel read < 3 mm, hollow); the lumen is read from the CT at
half maximum (`fill_lumen`, numbers and sources in ``imagio/data/vessel_lumen.json``), with a
warning when its contrast-to-noise is too low to trust the edge (`lumen_note`). The lumen diameter
per voxel is the calibre read on the centreline (local maxima of the distance, edt mm, to the vessel
boundary): the equivalent-circle diameter of the lumen's section normal to its axis
(`centre_calibres`, `segmentation.calibre`: unbiased, known to one voxel), propagated to every
vessel voxel from the centreline balls that cover it.

A nodule is a compact blob, a vessel a tube, but on thick slices a nodule's Hessian looks tube-like;
``blob_pieces`` therefore removes blobs from the mask by their shape (openings at growing radii,
inscribed radius vs the opening radius, principal axes in mm; thresholds and sources in
``imagio/data/vessel_shape.json``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

import json
from functools import lru_cache
from importlib import resources

from ..errors import InputError
from ..volume import Volume
from .common import as_progress, check_ct, dilate_mm

ALPHA, BETA = 0.5, 0.5  # Frangi's plate / blob sensitivities (published defaults)


def _hessian_eigs(img: np.ndarray, sigma_vox, scale_mm2: float, where: np.ndarray) -> np.ndarray:
    """(N, 3) Hessian eigenvalues at ``where`` voxels, sorted by absolute value."""
    comps = {}
    for a in range(3):
        for b in range(a, 3):
            order = [0, 0, 0]
            order[a] += 1
            order[b] += 1
            comps[a, b] = ndimage.gaussian_filter(img, sigma_vox, order=order)[where] * scale_mm2
    n = len(comps[0, 0])
    h = np.empty((n, 3, 3), np.float32)
    for (a, b), v in comps.items():
        h[:, a, b] = v
        h[:, b, a] = v
    ev = np.linalg.eigvalsh(h)
    return np.take_along_axis(ev, np.argsort(np.abs(ev), axis=1), axis=1)


def vesselness(ct: Volume, organ: np.ndarray, sigmas_mm=(1.0, 1.5, 2.5, 4.0), progress=None,
               hu_checked: bool = False, dark: bool = False):
    """Frangi vesselness (0..1, float32, [k, j, i]) of bright tubes inside ``organ``. ``ct`` is
    checked to be a CT in HU (InputError otherwise) unless ``hu_checked``: a box cut from a CT the
    caller has checked, which need not hold the air a whole CT shows (new-user trial 110: a bronch
    target in soft tissue far from the lung was refused as "the image has no air ... not a whole
    CT", judged on the box around it). ``dark``: also the response to dark tubes, i.e. the
    vesselness of the mirrored CT (2 x median - CT: its Hessian is the CT's negated, the scale's
    normalisation the same), returned as (bright, dark): `vessels_and_blobs`' empirical null."""
    p = as_progress(progress)
    if hu_checked and not isinstance(ct, Volume):
        raise InputError(f"expected a CT Volume, got {type(ct).__name__}")
    a = ct.array if hu_checked else check_ct(ct)
    if not organ.any():
        raise InputError("the organ mask is empty: no vessels can be searched for")
    lo, hi = ct.bounding_box(organ, margin=int(np.ceil(2 * max(sigmas_mm) / ct.spacing_kji.min())))
    sl = tuple(slice(l, h) for l, h in zip(lo, hi))
    img = a[sl].astype(np.float32)
    where = organ[sl]
    # outside the organ: its median, so the organ's own boundary is not a structure
    img[~where] = float(np.median(img[where]))
    best = np.zeros(int(where.sum()), np.float32)
    best_dark = np.zeros_like(best) if dark else None
    for n, s in enumerate(sigmas_mm):
        p(n / len(sigmas_mm), f"vessels: Hessian at {s} mm")
        ev = _hessian_eigs(img, s / ct.spacing_kji, s * s, where)
        l1, l2, l3 = np.abs(ev[:, 0]), np.abs(ev[:, 1]), np.abs(ev[:, 2])
        ra = l2 / np.maximum(l3, 1e-6)
        rb = l1 / np.maximum(np.sqrt(l2 * l3), 1e-6)
        ss = np.sqrt((ev ** 2).sum(1))
        c = 0.5 * float(ss.max()) if ss.size else 1.0
        v = ((1 - np.exp(-ra ** 2 / (2 * ALPHA ** 2))) * np.exp(-rb ** 2 / (2 * BETA ** 2))
             * (1 - np.exp(-ss ** 2 / (2 * max(c, 1e-6) ** 2)))).astype(np.float32)
        if dark:   # a dark tube: both large eigenvalues positive
            best_dark = np.maximum(best_dark, np.where((ev[:, 1] < 0) | (ev[:, 2] < 0), 0.0, v))
        v[(ev[:, 1] > 0) | (ev[:, 2] > 0)] = 0.0
        best = np.maximum(best, v)

    def full(vals):
        out = np.zeros(a.shape, np.float32)
        sub = np.zeros(where.shape, np.float32)
        sub[where] = vals
        out[sl] = sub
        return out
    p(1.0, "vessels: vesselness done")
    return (full(best), full(best_dark)) if dark else full(best)


def diameter_from_edt(inside_mm, spacing_kji):
    """THE lumen diameter (mm) of a vessel voxel from its inside distance ``inside_mm`` (Euclidean
    distance transform, anisotropic, mm, from the voxel centre to the nearest voxel centre
    outside the vessel): 2 x that distance minus the smallest voxel side (the distance runs to
    the centre of the first outside voxel, half a voxel beyond the wall on each side). Exact for
    a lumen an odd number of voxels wide along an axis (a one-voxel line is one voxel across),
    one voxel short for an even width; on round lumens (digitised discs of 2-10 mm at 0.5-1 mm
    pixels, random sub-voxel positions: Testing/test_vessel_diameter.py) it reads 0.9-1.5 voxels
    short on average (the nearest outside voxel centre lies obliquely), i.e. a vessel may be
    up to ~1.5 voxels wider than this figure. Used by `lumen_diameter` (the per-voxel map) and
    as the floor of `centre_calibres` (the section-area calibre, unbiased: what decides the
    planner's calibre split, the ablation heat sink and ablation eligibility). Scalars or arrays."""
    return 2.0 * np.asarray(inside_mm) - float(np.min(spacing_kji))


def centre_calibres(mask: np.ndarray, spacing_kji, least_mm: float = 0.0, inside_mm=None):
    """(kji [n, 3], calibre mm [n], inscribed mm [n]) at the centre voxels of the vessel ``mask``
    (bool [k, j, i]; a face of the array is the image's edge, not a wall): the local maxima of its
    inside distance (anisotropic edt, mm) whose lumen may reach ``least_mm`` (an inscribed figure
    `diameter_from_edt` above ``least_mm`` less the most the section can add to it). The calibre is
    the section-area one (`segmentation.calibre.ridge_calibre`: unbiased, known to one voxel,
    `calibre.uncertainty_mm`); the inscribed figure is `diameter_from_edt` (0.9-1.5 voxels short).
    ``inside_mm``: the mask's inside distance when the caller has it."""
    import edt

    from .calibre import ridge_calibre

    sk = tuple(float(s) for s in spacing_kji)
    mask = np.asarray(mask, bool)
    box = ndimage.find_objects(mask.view(np.uint8))
    if not box:
        return np.zeros((0, 3), int), np.zeros(0), np.zeros(0)
    # the mask's box + one voxel of background where the array goes on (its faces stay the image's)
    box = tuple(slice(max(b.start - 1, 0), min(b.stop + 1, n)) for b, n in zip(box[0], mask.shape))
    m = np.ascontiguousarray(mask[box])
    if inside_mm is None:
        d = edt.edt(m, anisotropy=sk, black_border=False).astype(np.float32)
    else:
        d = np.where(m, inside_mm[box], 0).astype(np.float32)
    ridge = m & (d >= ndimage.maximum_filter(d, size=3))
    # the section reads at most sqrt(3) coarsest sides + the finest side above the inscribed figure
    ridge &= d >= edt_for_diameter(least_mm - np.sqrt(3.0) * max(sk) - min(sk), sk)
    kji = np.argwhere(ridge)
    cal = ridge_calibre(m, d, kji, sk)
    return kji + [b.start for b in box], cal, diameter_from_edt(d[ridge], sk)


def edt_for_diameter(diameter_mm: float, spacing_kji) -> float:
    """Inside distance (mm) at which `diameter_from_edt` reaches ``diameter_mm`` (its inverse)."""
    return 0.5 * (float(diameter_mm) + float(np.min(spacing_kji)))


def lumen_diameter(mask: np.ndarray, spacing_kji) -> np.ndarray:
    """Lumen diameter (mm, float32) at every voxel of a vessel mask, 0 outside.

    The inscribed radius (edt, mm) is largest on the centreline, where the section-area calibre
    (`centre_calibres`) replaces it; each voxel takes the largest radius of the centreline balls
    that cover it (a local-thickness approximation: a radius r
    spreads by repeated 3x3x3 maximum filters for as many steps as fit within r).
    """
    import edt

    out = np.zeros(mask.shape, np.float32)
    if not mask.any():
        return out
    lo = np.array([np.nonzero(np.any(mask, axis=tuple(j for j in range(3) if j != i)))[0][[0, -1]]
                   for i in range(3)])
    sl = tuple(slice(a, b + 1) for a, b in lo)
    sk = tuple(float(s) for s in spacing_kji)
    # the box faces inside the image are background (a face of the image is not: a vessel cut
    # by the field of view keeps its calibre there)
    pad = [(0 if s.start == 0 else 1, 0 if s.stop == n else 1) for s, n in zip(sl, mask.shape)]
    mp = np.ascontiguousarray(np.pad(mask[sl], pad))
    dp = edt.edt(mp, anisotropy=sk).astype(np.float32)
    if not np.isfinite(dp).all():  # the vessel fills the whole image: no wall in view
        dp = np.where(np.isfinite(dp), dp, float(np.max(np.asarray(mask.shape) * np.asarray(sk))))
    step = min(sk)
    # the centre voxels carry the section-area calibre (`centre_calibres`: unbiased; the inscribed
    # figure reads round lumens 0.9-1.5 voxels short) as the inside distance that reads it; on the
    # padded box, whose faces are the image's only where the box meets them
    kji, cal, _ = centre_calibres(mp, sk, inside_mm=dp)
    dp[tuple(kji.T)] = np.maximum(dp[tuple(kji.T)], 0.5 * (cal + step))
    d = dp[tuple(slice(p0, dp.shape[i] - p1) for i, (p0, p1) in enumerate(pad))]
    m = mask[sl]
    lt = d.copy()
    for i in range(1, int(np.ceil(float(d.max()) / step)) + 1):
        cand = ndimage.maximum_filter(lt, size=3)
        upd = m & (cand > lt) & (cand >= i * step)
        if not upd.any():
            break
        lt[upd] = cand[upd]
    diam = diameter_from_edt(lt, sk)
    out[sl] = np.where(m, np.maximum(diam, step), 0)
    return out


@lru_cache(maxsize=1)
def shape_rule() -> dict:
    """The blob-vs-tube thresholds (``imagio/data/vessel_shape.json``, with their sources)."""
    return json.loads(resources.files("imagio.data").joinpath("vessel_shape.json").read_text(encoding="utf-8"))


def _edt(mask: np.ndarray, sk) -> np.ndarray:
    import edt

    return edt.edt(np.ascontiguousarray(mask), anisotropy=sk).astype(np.float32)


def blob_pieces(mask: np.ndarray, spacing_kji, rule: dict | None = None) -> np.ndarray:
    """Voxels of ``mask`` ([k, j, i] bool) that belong to compact blobs, not tubes.

    For radii r = min_radius_mm x radius_step^n (mm) up to half the largest inscribed radius, the
    mask is opened by a ball of radius r (edt, anisotropic ``spacing_kji`` in mm), which cuts every
    part thinner than r (the vessels attached to a nodule); each connected piece left is a blob when
    its inscribed radius (edt max, mm) is >= junction_factor x r (wider than all it was cut from:
    not a branching junction, Murray's law), it spans >= min_samples_per_axis voxels along every
    axis (its shape is resolved: on 5 mm slices a piece on 1-2 slices may be a vessel lying in the
    slice, so small nodules on thick slices stay in the mask), its volume is <= max_fill x its
    inscribed ball (a solid blob, not a branching tree spread in 3-D), and the ratio of its largest to smallest principal
    standard deviation (voxel coordinates in mm) is <= max_elongation (not a tube). Thresholds and
    sources: ``imagio/data/vessel_shape.json``. Returns a bool array like ``mask``.
    """
    rule = rule or shape_rule()
    out = np.zeros(mask.shape, bool)
    if not mask.any():
        return out
    sk = tuple(float(s) for s in spacing_kji)
    lo = [np.nonzero(np.any(mask, axis=tuple(j for j in range(3) if j != i)))[0][[0, -1]] for i in range(3)]
    sl = tuple(slice(a, b + 1) for a, b in lo)
    m = np.pad(mask[sl], 1)
    d = _edt(m, sk)
    fac, max_el = float(rule["junction_factor"]), float(rule["max_elongation"])
    max_fill = float(rule["max_fill"])
    idx = np.stack(np.nonzero(m), 1)
    coords = idx.astype(np.float64) * np.array(sk)
    min_samples = int(rule["min_samples_per_axis"])
    blobs = np.zeros(m.shape, bool)
    r = float(rule["min_radius_mm"])
    while r <= min(sk):  # an opening by a ball smaller than a voxel changes nothing
        r *= float(rule["radius_step"])
    while fac * r <= float(d.max()):
        core = d >= r
        opened = m & dilate_mm(core, r, sk)
        lab, n = ndimage.label(opened, np.ones((3, 3, 3), bool))
        r_step = r
        r *= float(rule["radius_step"])
        if n == 0:
            continue
        lv = lab[m]
        keep = lv > 0
        lv, c, ix = lv[keep], coords[keep], idx[keep]
        cnt = np.bincount(lv, minlength=n + 1).astype(np.float64)
        rad = ndimage.maximum(d, lab, np.arange(n + 1))
        rad = np.asarray(rad, np.float64)
        wide = (rad >= fac * r_step) & (cnt >= 4)
        wide[0] = False
        if not wide.any():
            continue
        sel = wide[lv]
        lv, c, ix = lv[sel], c[sel], ix[sel]
        ids = np.nonzero(wide)[0]
        for a in range(3):  # resolved along every axis: >= min_samples slices / rows / columns
            span = (np.asarray(ndimage.maximum(ix[:, a], lv, ids)) - np.asarray(ndimage.minimum(ix[:, a], lv, ids)) + 1)
            wide[ids[span < min_samples]] = False
        if not wide.any():
            continue
        mean = np.stack([np.bincount(lv, c[:, a], n + 1) for a in range(3)], 1) / np.maximum(cnt, 1)[:, None]
        dc = c - mean[lv]
        cov = np.zeros((n + 1, 3, 3))
        for a in range(3):
            for b in range(a, 3):
                cov[:, a, b] = cov[:, b, a] = np.bincount(lv, dc[:, a] * dc[:, b], n + 1)
        cov /= np.maximum(cnt, 1)[:, None, None]
        # a voxel is a box: add its own variance (side^2 / 12 per axis) so a one-slice piece is not flat
        cov[:, [0, 1, 2], [0, 1, 2]] += np.square(sk) / 12.0
        ids = np.nonzero(wide)[0]
        ev = np.linalg.eigvalsh(cov[ids])
        elong = np.sqrt(ev[:, 2] / np.maximum(ev[:, 0], 1e-9))
        is_blob = np.zeros(n + 1, bool)
        # filled like a blob, not a tree spread in 3-D: volume <= max_fill x its inscribed ball
        fill = cnt[ids] * float(np.prod(sk)) / (4.0 / 3.0 * np.pi * rad[ids] ** 3)
        is_blob[ids[(elong <= max_el) & (fill <= max_fill)]] = True
        blobs |= is_blob[lab]
    out[sl] = blobs[1:-1, 1:-1, 1:-1]
    return out


@lru_cache(maxsize=1)
def lumen_rule() -> dict:
    """The lumen rule (``imagio/data/vessel_lumen.json``, with its sources)."""
    return json.loads(resources.files("imagio.data").joinpath("vessel_lumen.json").read_text(encoding="utf-8"))


def _robust_sd(x: np.ndarray) -> float:
    x = np.asarray(x, np.float32)
    return float(1.4826 * np.median(np.abs(x - np.median(x)))) if x.size else 0.0


def fill_lumen(a: np.ndarray, organ: np.ndarray, seeds: np.ndarray, spacing_kji,
               rule: dict | None = None) -> tuple[np.ndarray, dict]:
    """(lumen mask, stats) of the contrast vessels whose seeds (``seeds``, bool [k, j, i], e.g. the
    vesselness mask) lie in the soft-tissue ``organ`` of the CT ``a`` (HU, [k, j, i]).

    The lumen is read from the CT, not from the vesselness (which answers at the walls of a lumen
    wider than its scale: a ring; new-user trial 112 F7, a 5-8 mm liver vessel kept as hollow
    fragments < 3 mm): voxels of the organ on the CT smoothed by ``smoothing_mm`` that are at least
    half way (``half_max_fraction``, full width at half maximum) from the parenchyma's median to
    the local vessel peak (highest smoothed HU of a seed within ``max_diameter_mm`` / 2) and at
    least ``noise_factor`` robust SDs of the smoothed organ above that median, connected to a seed
    and within that radius of one; the seeds are kept and enclosed holes filled. Stats: the
    parenchyma's median HU, the raw organ's robust SD (noise), the seeds' median peak HU and
    their contrast-to-noise ratio ``cnr``. Numbers and sources: ``vessel_lumen.json``."""
    rule = rule or lumen_rule()
    sk = np.asarray(spacing_kji, float)
    out = seeds.copy()
    stats = {"parenchyma_hu": None, "noise_hu": None, "vessel_peak_hu": None, "cnr": None}
    if not seeds.any():
        return out, stats
    r_mm = 0.5 * float(rule["max_diameter_mm"])
    pad = np.ceil(r_mm / sk).astype(int) + 1
    kji = np.argwhere(organ)
    lo = np.maximum(kji.min(0) - pad, 0)
    hi = np.minimum(kji.max(0) + pad + 1, a.shape)
    sl = tuple(slice(int(l), int(h)) for l, h in zip(lo, hi))
    org, sd_ = organ[sl], seeds[sl]
    img = a[sl].astype(np.float32)
    bg = float(np.median(img[org & ~sd_])) if (org & ~sd_).any() else float(np.median(img[org]))
    img[~org] = bg
    sm = ndimage.gaussian_filter(img, float(rule["smoothing_mm"]) / sk)
    paren = org & ~dilate_mm(sd_, 2.0 * float(sk.max()), sk)
    if not paren.any():
        paren = org & ~sd_
    bg = float(np.median(sm[paren]))
    noise_s = _robust_sd(sm[paren])
    noise = _robust_sd(a[sl][paren])
    seedv = np.where(sd_, sm, -np.inf).astype(np.float32)
    size = tuple(int(2 * np.ceil(r_mm / s) + 1) for s in sk)
    peak = ndimage.maximum_filter(seedv, size=size)
    thr = np.maximum(bg + float(rule["half_max_fraction"]) * (peak - bg), bg + float(rule["noise_factor"]) * noise_s)
    cand = org & np.isfinite(peak) & (sm >= thr) & dilate_mm(sd_, r_mm, sk)
    cand |= sd_
    lab, n = ndimage.label(cand, np.ones((3, 3, 3), bool))
    keep = np.zeros(n + 1, bool)
    keep[np.unique(lab[sd_])] = True
    keep[0] = False
    grown = ndimage.binary_fill_holes(keep[lab]) & (org | sd_)
    out[sl] |= grown
    vpk = float(np.median(sm[sd_]))
    stats = {"parenchyma_hu": round(bg, 1), "noise_hu": round(noise, 1), "vessel_peak_hu": round(vpk, 1),
             "cnr": round((vpk - bg) / noise, 2) if noise > 0 else None}
    return out, stats


def piece_evidence(a: np.ndarray, mask: np.ndarray, bg: float, noise: float):
    """(labels [k, j, i], evidence per piece): each 26-connected piece of ``mask``'s summed excess of
    the CT ``a`` (HU) over the parenchyma ``bg``, in noise SDs (``noise`` HU): sum((HU - bg) / SD)
    over its voxels. A contrast vessel adds its contrast over every voxel of its length and
    lumen; a cluster of noise peaks a few SDs over a few voxels."""
    lab, n = ndimage.label(mask, np.ones((3, 3, 3), bool))
    if n == 0:
        return lab, np.zeros(0)
    ev = np.asarray(ndimage.sum(a.astype(np.float64) - bg, lab, np.arange(1, n + 1))) / max(noise, 1e-3)
    return lab, ev


def null_threshold(null_evidence, n_organs: int, rule: dict | None = None) -> float:
    """The evidence a piece needs so that noise alone gives fewer than ``null_false_pieces`` such
    pieces per organ: the tail of the empirical null (``null_evidence``: the pieces of
    ``n_organs`` mirrored copies of the organ, 2 x median - CT) above its ``null_tail_pieces``-th largest value u
    fitted by an exponential (peaks over threshold; its scale beta from the median excess, robust to
    anatomy in the null), so t = u + beta ln(k / (n_organs x alpha)). Where the null has no piece, noise reaches no
    seed and 0 is returned. vessel_lumen.json, with the sources."""
    rule = rule or lumen_rule()
    s = np.sort(np.asarray(null_evidence, float))[::-1]
    if s.size == 0:
        return 0.0
    k = min(int(rule["null_tail_pieces"]), s.size)
    u = float(s[k]) if s.size > k else 0.0
    # the scale from the median excess (an exponential's median is beta ln 2): robust to the few
    # dark structures of the organ (fat in a fissure, a cyst) that the mirror turns into bright pieces
    beta = max(float(np.median(s[:k] - u)) / float(np.log(2.0)), 1e-6)
    return u + beta * float(np.log(k / (n_organs * float(rule["null_false_pieces"]))))


def drop_short_pieces(mask: np.ndarray, spacing_kji, rule: dict | None = None) -> tuple[np.ndarray, int]:
    """(``mask`` without its 26-connected pieces whose bounding box's diagonal is under
    ``min_piece_length_mm`` or whose volume is under a tube of ``min_piece_calibre_mm`` that long,
    the number dropped): a vessel is a tube; a speck or a ragged cluster of noise peaks is not
    (vessel_lumen.json, with its reason)."""
    rule = rule or lumen_rule()
    lab, n = ndimage.label(mask, np.ones((3, 3, 3), bool))
    if n == 0:
        return mask, 0
    sk = np.asarray(spacing_kji, float)
    boxes = ndimage.find_objects(lab)
    ext = np.array([[(s.stop - s.start) for s in b] for b in boxes], float) * sk
    length = float(rule["min_piece_length_mm"])
    vol = np.bincount(lab.ravel(), minlength=n + 1)[1:] * float(np.prod(sk))
    short = (np.linalg.norm(ext, axis=1) < length) | (vol < np.pi * (0.5 * float(rule["min_piece_calibre_mm"])) ** 2 * length)
    drop = np.concatenate([[False], short])
    return mask & ~drop[lab], int(short.sum())


def lumen_note(stats: dict, organ_name: str = "vessels") -> str:
    """'' or the warning that the vessels' contrast over the organ is too low for their edge
    (`fill_lumen` stats; ``min_cnr``, the Rose criterion): calibres are lower bounds."""
    cnr, k = stats.get("cnr"), float(lumen_rule()["min_cnr"])
    if cnr is None or cnr >= k:
        return ""
    return (f"{organ_name}: low contrast: the vessels' median peak {stats['vessel_peak_hu']:g} HU lies only "
            f"{stats['vessel_peak_hu'] - stats['parenchyma_hu']:.0f} HU above the organ's {stats['parenchyma_hu']:g} HU "
            f"(noise SD {stats['noise_hu']:g} HU, contrast-to-noise {cnr:g} < {k:g}, Rose criterion): the lumen's edge "
            "is uncertain and parts of the vessels may be missing, so the diameters are lower bounds; a vessel "
            "beside a target may be wider than its figure, and small pieces of the mask may be noise peaks rather "
            "than vessels (on a CT without contrast the organ's vessels are no brighter than it): read them on the CT")


def _contrast_vessels(ct: Volume, organ, seeds, v, vd, med, min_hu, threshold):
    """(lumen, fill_lumen stats, evidence threshold, kept, found): the lumen grown from ``seeds``
    (`fill_lumen`) when at least one of its pieces has evidence (`piece_evidence`, voxels deeper
    than ``null_border_vox`` voxels in the organ) beyond what the organ's noise gives to the same
    procedure on the mirrored CT (2 x median - CT: its bright tubes are the CT's dark ones, ``vd``;
    `null_threshold`), else an empty mask: the organ shows no contrast vessel. ``kept``: the
    pieces beyond it, ``found``: all pieces. vessel_lumen.json null_*."""
    a = ct.array
    sk = np.asarray(ct.spacing_kji, float)
    rule = lumen_rule()
    lo, hi = ct.bounding_box(organ, margin=int(np.ceil(0.5 * float(rule["max_diameter_mm"]) / float(np.min(sk)))) + 2)
    sl = tuple(slice(int(l), int(h)) for l, h in zip(lo, hi))
    org = organ[sl]
    depth = ndimage.distance_transform_edt(np.pad(org, 1), sampling=sk)[1:-1, 1:-1, 1:-1]
    deep = depth > float(rule["null_border_vox"]) * float(sk.max())
    sd = _robust_sd(a[sl][deep]) if deep.any() else _robust_sd(a[sl][org])
    vmax = float(max(v.max(), vd.max()))
    mir = (2.0 * med - a[sl]).astype(np.float32)
    sd_ = org & (mir >= min_hu) & (vd[sl] >= threshold * vmax if vmax > 0 else False)
    null_ev = np.zeros(0)
    if sd_.any():
        lm, st = fill_lumen(mir, org, sd_, sk)
        null_ev = piece_evidence(mir, lm & deep, st["parenchyma_hu"], sd)[1]
    t = null_threshold(null_ev, 1)
    lm, stats = fill_lumen(a, organ, seeds, sk)
    if not lm.any():
        return lm, dict(stats, null_evidence=round(t, 1)), t, 0, 0
    _, ev = piece_evidence(a[sl], lm[sl] & deep, stats["parenchyma_hu"], sd)
    kept = int(np.count_nonzero(ev > t))
    stats = dict(stats, null_evidence=round(t, 1), evidence_max=round(float(ev.max()), 1) if ev.size else None)
    # the null decides whether the organ shows contrast vessels at all, not which pieces are kept: on a
    # real liver its dark pieces are the capsule's partial volume with fat and dark regions, not noise
    # alone, so a per-piece threshold dropped tubes of 4.6-6.2 mm x 48-73 mm at 142-161 HU (trial 116
    # H1); where one piece beats it, every piece of the lumen is kept (`drop_short_pieces` after)
    return (lm if kept else np.zeros_like(lm)), stats, t, kept, int(ev.size)


def no_contrast_note(stats: dict, found: int, t: float, organ_name: str = "vessels") -> str:
    """The one warning of a soft-tissue organ in which no vessel beat the organ's noise."""
    r = lumen_rule()
    what = (f"none of the {found} bright piece(s) found stands out from the organ's noise (largest evidence "
            f"{stats.get('evidence_max')} against {t:.0f} noise SD-voxels that noise alone reaches, with "
            f"{r['min_piece_length_mm']:g} mm length as a vessel)" if found else "no tube brighter than the organ was found")
    return (f"{organ_name}: no contrast-enhanced vessel is seen in the organ: {what}. Unenhanced blood "
            f"({r['unenhanced_blood_hu'][0]:g}-{r['unenhanced_blood_hu'][1]:g} HU) is no brighter than liver, so on a CT "
            "without contrast (or where the contrast has left the vessels) the organ's vessels cannot be told from it: "
            "no vessel is labelled, which is NOT their absence; use a contrast-enhanced (portal-venous) CT to map them, "
            "and check that the organ label lies on this CT's organ (a label map of the organ alone cannot be checked "
            "against the CT's bone and air)")


def vessel_mask(ct: Volume, organ: np.ndarray, threshold: float = 0.05,
                sigmas_mm=None, min_hu: float | None = None,
                exclude_blobs: bool = True, progress=None, notes: list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(vessel mask, lumen diameter mm per voxel) of contrast vessels inside ``organ``.

    min_hu: seed voxels must also be at least this bright (default: the organ's median + 40 HU
    for soft-tissue organs; -500 HU for aerated lung whose median is below -500 HU).
    exclude_blobs: remove compact blobs wider than the vessels attached to them (nodules,
    masses; ``blob_pieces``) from the mask (``vessels_and_blobs`` also returns them).
    notes: a list the warnings are appended to (low contrast: `lumen_note`).
    """
    m, diam, _ = vessels_and_blobs(ct, organ, threshold, sigmas_mm, min_hu, exclude_blobs, progress, notes=notes)
    return m, diam


LUNG_SIGMAS_MM = (1.0, 1.5, 2.5, 4.0)


def vessels_and_blobs(ct: Volume, organ: np.ndarray, threshold: float = 0.05,
                      sigmas_mm=None, min_hu: float | None = None,
                      exclude_blobs: bool = True, progress=None, hu_checked: bool = False,
                      notes: list | None = None):
    """(vessel mask, lumen diameter mm, excluded blob mask), all [k, j, i]; see ``vessel_mask``;
    ``hu_checked``: see `vesselness`.

    In a soft-tissue organ (median above -500 HU) the vesselness mask only seeds the vessels and
    their lumen is read from the CT (`fill_lumen`, scales ``vessel_lumen.json`` sigmas_mm): a
    filled lumen whose diameter is the one definition (`lumen_diameter`), kept when one of its
    pieces' evidence beats the organ's noise (the same steps on the mirrored CT,
    `_contrast_vessels`; vessel_lumen.json null_*); where none does, ``notes`` gets the one
    warning `no_contrast_note` and no vessel is labelled; in aerated lung the
    vesselness mask (scales ``LUNG_SIGMAS_MM``) is the vessels, as before."""
    p = as_progress(progress)
    a = ct.array
    med = float(np.median(a[organ])) if organ.any() else 0.0
    soft = med >= -500
    if sigmas_mm is None:
        sigmas_mm = tuple(lumen_rule()["sigmas_mm"]) if soft else LUNG_SIGMAS_MM
    v = vesselness(ct, organ, sigmas_mm, progress=p.sub(0, 0.75), hu_checked=hu_checked, dark=soft)
    v, vd = v if soft else (v, None)
    if min_hu is None:
        min_hu = med + 40.0 if soft else -500.0
    vmax = float(v.max())
    m = organ & (a >= min_hu) & (v >= threshold * vmax if vmax > 0 else False)
    if soft:
        p(0.76, "vessels: lumen from the CT (half maximum), against the organ's noise (its mirror)")
        m, stats, t, kept, found = _contrast_vessels(ct, organ, m, v, vd, med, min_hu, threshold)
        m, _ = drop_short_pieces(m, ct.spacing_kji)
        if not m.any():
            if notes is not None:
                notes.append(no_contrast_note(stats, found, t))
        elif notes is not None:
            note = lumen_note(stats)
            if note:
                notes.append(note)
    blobs = np.zeros(m.shape, bool)
    if exclude_blobs:
        p(0.82, "vessels: compact blobs (nodules) are not vessels")
        blobs = blob_pieces(m, ct.spacing_kji)
        m &= ~blobs
    p(0.85, "vessels: lumen diameter")
    diam = lumen_diameter(m, ct.spacing_kji)
    p(1.0, "vessels: done")
    return m, diam, blobs


def refuse_an_organ_on_bone(a: np.ndarray, organ: np.ndarray) -> None:
    """InputError (one line) when more than ``max_organ_bone_share`` (vessel_lumen.json) of the organ's
    voxels (``organ``, bool [k, j, i] on the CT ``a``, HU) read as cortical bone (planning_defaults
    ct_density.cortical_hu): an organ label lying on the skeleton (new-user trial 116 H3). For an
    organ the user gives (`imagio vessels --organ`), not one IMAGIO segmented."""
    from ..defaults import load_defaults

    n = int(np.count_nonzero(organ))
    if n == 0:
        return
    bone = float(np.count_nonzero(a[organ] >= float(load_defaults()["ct_density"]["cortical_hu"]))) / n
    if bone > float(lumen_rule()["max_organ_bone_share"]):
        raise InputError(f"the organ's label lies on bone: {100 * bone:.0f} % of its voxels read as cortical bone "
                         f"(>= {load_defaults()['ct_density']['cortical_hu']:g} HU) on this CT; it is another scan's or "
                         "patient's map, or the wrong label: give this CT's organ label (--organ-labels)")


def thick_slice_note(spacing, organ_name: str = "lung vessels") -> str:
    """'' or why the vessel label of a CT whose voxels (``spacing``, 3 mm values in any axis
    order) are coarser than ``lung_vessel_max_voxel_mm`` (segmentation_rules.json, 2.5 mm: a
    thin-section chest CT, ACR-STR) is incomplete: a vessel narrower than about two voxels is
    not resolved by the Hessian filter, so the label shrinks with the slice thickness."""
    from .common import rule

    limit = rule("lung_vessel_max_voxel_mm")
    worst = float(np.max(np.asarray(spacing, float)))
    if worst <= limit + 1e-6:
        return ""
    return (f"{organ_name}: the CT's voxels are up to {worst:.2g} mm (its slice thickness), coarser than the "
            f"{limit:g} mm of a thin-section chest CT: vessels narrower than about two voxels along that axis "
            f"({2 * worst:.2g} mm, vessels running across the slices) are partly or wholly missed, so the vessel label is smaller than on thin sections (the shared chest "
            "CTA: -18 % at 3 mm, -47 % at 5 mm slices); a needle plan also checks the CT's solid tissue inside "
            "the lung, but use a thin-section reconstruction for a vessel map")


def blob_report(ct: Volume, blobs: np.ndarray, organ_name: str) -> tuple[list, list]:
    """([{volume_ml, centre_ras}] per excluded blob, [warning]) for a result's meta / report."""
    from .common import mean_ras

    lab, n = ndimage.label(blobs, np.ones((3, 3, 3), bool))
    items = [{"volume_ml": round(float((lab == i).sum() * ct.voxel_volume_ml), 2),
              "centre_ras": [round(float(x), 1) for x in mean_ras(ct, lab == i)]} for i in range(1, n + 1)]
    warn = [f"{organ_name}: {n} compact blob(s) wider than their vessels were left out of the vessel "
            f"mask as probable nodules/masses (centres RAS mm: {[b['centre_ras'] for b in items]}); "
            "check them: a vessel left out is not avoided by the planner"] if n else []
    return items, warn


def remove_lesion(masks: dict, lesion: np.ndarray, spacing_kji=None, margin_mm: float = 0.0) -> dict:
    """Every vessel mask of ``masks`` (names ending in "vessels" or "vein"/"artery"/"aorta" as
    TotalSegmentator names them) without the lesion (grown by ``margin_mm`` when spacing is
    given): a lesion found by a click is never a vessel. Other masks are returned unchanged.
    All masks [k, j, i] on one grid."""
    from .common import dilate_mm

    if lesion is None or not lesion.any():
        return dict(masks)
    cut = dilate_mm(lesion, margin_mm, spacing_kji) if margin_mm > 0 and spacing_kji is not None else lesion
    out = {}
    for name, m in masks.items():
        if is_vessel_name(name):
            m = m & ~cut
        out[name] = m
    return out


VESSEL_WORDS = ("vessel", "vein", "artery", "aorta", "vena_cava", "trunk")


def is_vessel_name(name: str) -> bool:
    """True for a vessel structure name (rule labels and TotalSegmentator classes: aorta,
    inferior_vena_cava, portal_vein_and_splenic_vein, pulmonary_vein, brachiocephalic_trunk...)."""
    n = name.lower()
    return any(w in n for w in VESSEL_WORDS)

