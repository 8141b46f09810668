"""Evaluation of a detector on phantom screening scans (:mod:`imagio.phantom.screening`):
LUNA16 FROC / CPM (:func:`imagio.detection.froc.evaluate`), and the sensitivity per nodule
type, size bin and position at the LUNA16 operating points 1 and 8 false positives per scan,
plus how many false positives sit on the vessel-bifurcation mimics.

Candidates and references are compared in RAS mm (one frame for both, as the LUNA16 rule
needs; the hit rule is its own: within the nodule's radius of its centre).
"""

from __future__ import annotations

import numpy as np

from .froc import evaluate


def _best_hit(cands: np.ndarray, probs: np.ndarray, centre, radius: float) -> float:
    """Highest probability of a candidate within ``radius`` of ``centre`` (-1: none)."""
    if not len(cands):
        return -1.0
    hit = np.sum((cands - np.asarray(centre)) ** 2, axis=1) < radius ** 2
    return float(probs[hit].max()) if hit.any() else -1.0


def actionable(kind: str, diameter_mm: float) -> bool:
    """Whether a nodule of this type and diameter is Lung-RADS v2022 category 3 or above at
    baseline by size and type alone (``imagio/data/lungrads_v2022.json``): solid >= 6 mm,
    part-solid >= 6 mm (3 whatever its solid component), non-solid >= 30 mm, perifissural
    >= 10 mm (below: category 2); calcified nodules are category 1."""
    if kind in ("solid", "part_solid"):
        return diameter_mm >= 6.0
    if kind == "ground_glass":
        return diameter_mm >= 30.0
    if kind == "perifissural":
        return diameter_mm >= 10.0
    return False


def threshold_at(fp_probs: np.ndarray, n_scans: int, rate: float) -> float:
    """The lowest probability threshold whose false positives per scan stay <= ``rate``
    (candidates strictly above it count)."""
    k = int(np.floor(rate * n_scans))
    p = np.sort(fp_probs)[::-1]
    return -np.inf if k >= len(p) else float(p[k])


def evaluate_screening(scans: list, candidates: list[list], mimic_radius_mm: float = 5.0,
                       bootstrap: int | None = None) -> dict:
    """scans: ScreeningScan list; candidates: per scan, the detector's Candidate list.

    Returns the FROC evaluation (CPM with its bootstrap interval) plus "by_type", "by_size",
    "by_position", "by_lung_rads_3_or_more" (:func:`actionable`): {group: {"n", "sensitivity_at_1fp", "sensitivity_at_8fp", "sensitivity_any"}}
    and "fp_on_mimics_at_8fp": false positives within ``mimic_radius_mm`` of a mimic's centre;
    "cpm_lung_rads_3_or_more" (and its "_ci"): the CPM on those nodules only, the others excluded
    as LUNA16 excludes irrelevant findings (a candidate on them counts neither way).
    """
    cand_d, ref_d = {}, {}
    rows = []
    fp_probs = []
    mimic_fp = []
    for k, (s, cs) in enumerate(zip(scans, candidates)):
        sid = f"scan{k}"
        cen = np.array([c.center_ras for c in cs], float).reshape(-1, 3)
        pr = np.array([c.probability for c in cs], float)
        cand_d[sid] = np.c_[cen, pr]
        ref = np.array([[*t["center_ras"], t["diameter_mm"]] for t in s.truth], float).reshape(-1, 4)
        ref_d[sid] = ref
        is_hit = np.zeros(len(cs), bool)
        for t in s.truth:
            r = t["diameter_mm"] / 2.0
            rows.append({**t, "best": _best_hit(cen, pr, t["center_ras"], r),
                         "lung_rads_3_or_more": "yes" if actionable(t["kind"], t["diameter_mm"]) else "no"})
            if len(cs):
                is_hit |= np.sum((cen - np.asarray(t["center_ras"])) ** 2, axis=1) < r ** 2
        fp_probs += list(pr[~is_hit])
        if len(s.mimics_ras) and len(cs):
            dm = np.linalg.norm(cen[:, None, :] - s.mimics_ras[None], axis=2).min(1)
            mimic_fp += list(pr[~is_hit & (dm < mimic_radius_mm)])
    ev = evaluate(cand_d, ref_d, scans=list(cand_d), bootstrap=bootstrap)
    # the same FROC on the nodules Lung-RADS acts on; the others are excluded like LUNA16's
    # irrelevant findings (a candidate on them is neither a hit nor a false positive)
    act = {sid: np.array([actionable(t["kind"], t["diameter_mm"]) for t in s.truth], bool)
           for sid, s in zip(cand_d, scans)}
    ev_act = evaluate(cand_d, {sid: r[act[sid]] for sid, r in ref_d.items()},
                      {sid: r[~act[sid]] for sid, r in ref_d.items()}, scans=list(cand_d),
                      bootstrap=bootstrap)
    fp_probs = np.asarray(fp_probs)
    t1, t8 = threshold_at(fp_probs, len(scans), 1.0), threshold_at(fp_probs, len(scans), 8.0)

    def group(key):
        out = {}
        for g in sorted({r[key] for r in rows}):
            b = np.array([r["best"] for r in rows if r[key] == g])
            out[g] = {"n": int(len(b)), "sensitivity_at_1fp": float(np.mean(b > t1)),
                      "sensitivity_at_8fp": float(np.mean(b > t8)),
                      "sensitivity_any": float(np.mean(b >= 0))}
        return out

    ev.update(by_type=group("kind"), by_size=group("size_bin"), by_position=group("position"),
              by_lung_rads_3_or_more=group("lung_rads_3_or_more"),
              cpm_lung_rads_3_or_more=ev_act["cpm"], cpm_lung_rads_3_or_more_ci=ev_act["cpm_ci"],
              fp_on_mimics_at_8fp=int(np.sum(np.asarray(mimic_fp) > t8)),
              n_mimics=int(sum(len(s.mimics_ras) for s in scans)),
              thresholds={"1fp": t1, "8fp": t8}, frame="RAS mm")
    ev.pop("curve", None)
    return ev


# the first step of weights-free candidate generation (imagio.detection.blobs) that loses a nodule
MISS_CAUSES = ("outside search region", "no bright blob", "blobness < min_blobness",
               "response < min_contrast_hu", "region peak outside it", "dropped: wall/bone/shell/lung",
               "merged into another")


def isolated_ball_response_hu(diameter_mm: float, contrast_hu: float, spacing_kji, offset_kji,
                              sigmas_mm, supersample: int = 5) -> float:
    """Best-scale dot response (read as HU: response / ``ball_response_per_hu``) at the centre
    of a ball of ``diameter_mm`` and ``contrast_hu`` alone in a flat background, sampled on a
    grid of ``spacing_kji`` (mm) with its centre ``offset_kji`` voxels (each in [-0.5, 0.5]) from
    the nearest voxel centre, over ``sigmas_mm`` (reference single-grid filter).

    Each voxel holds the ball's volume fraction in it (partial volume, ``supersample`` points per
    axis), as a CT voxel averages what it contains. On a fine grid this is the contrast itself
    (the dot filter's calibration, ``ball_response_per_hu``); on a grid as coarse as the ball it
    is less (a 3 mm ball on 1.5 mm voxels: about half), which is the grid's own detection limit:
    a nodule whose isolated ball reads at or below ``min_contrast_hu`` cannot become a dot
    candidate on that grid whatever surrounds it."""
    from ..volume import Volume, make_ijk_to_ras
    from . import constants
    from .blobs import dot_filter

    sk = np.asarray(spacing_kji, float)
    sig = np.asarray(sigmas_mm, float)
    half = np.ceil((diameter_mm / 2.0 + 3.0 * float(sig.max())) / sk).astype(int) + 1
    n = 2 * half + 1
    # supersampled coordinates (mm) of each voxel's sub-points relative to the ball's centre
    # float32: (5 n)^3 sub-points (0.9 GB in float64 for a 50 mm mass on 1.5 mm; review 41 L5)
    axes = [(((np.arange(m * supersample) + 0.5) / supersample - 0.5 - h - o) * s).astype(np.float32)
            for m, h, o, s in zip(n, half, np.asarray(offset_kji, float), sk)]
    d2 = axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2
    frac = (d2 <= np.float32((diameter_mm / 2.0) ** 2)).reshape(n[0], supersample, n[1], supersample,
                                                   n[2], supersample).mean(axis=(1, 3, 5))
    vol = Volume((frac * contrast_hu).astype(np.float32), make_ijk_to_ras(sk[::-1], np.zeros(3), np.eye(3)))
    resp, _, _ = dot_filter(vol, np.ones(vol.shape, bool), sig, floor=-np.inf, pyramid=False)
    k = constants()["ball_response_per_hu"]["value"]
    return float(resp[tuple(slice(h - 1, h + 2) for h in half)].max() / k)


def never_candidate_causes(scan, pool: dict, candidates: list) -> list[dict]:
    """Why each nodule of a phantom screening scan that no candidate hits (LUNA16's rule: within
    its radius of its centre) was lost, by the first step of the dot channel of
    :func:`imagio.detection.blobs.candidate_pool` that it fails (:data:`MISS_CAUSES`):

    1. less than half of its sphere lies in the search region (the lungs' per-section closing);
    2. no voxel of its sphere is a bright blob at any nodule scale up to its own (all three
       Hessian eigenvalues negative; a bump on the chest wall or on a vessel has one >= 0);
    3. the dot response exceeds ``min_contrast_hu`` only where the blobness is below
       ``min_blobness`` (vessel suppression);
    4. the dot response stays below ``min_contrast_hu`` (read as a ball's contrast in HU);
    5-7. a peak exists, but its region's maximum lies outside the sphere, or the peak is dropped
       by the wall / bone / lung-shell / one-lung tests, or merged into a stronger candidate
       whose centre lies outside the sphere.

    The response is recomputed in a box around the nodule with no floor, on the reference
    single-grid filter (``pyramid=False``), so steps 2-4 are read without the search region's
    or the pyramid's effect. For the same reason each miss also gets the grid's detection limit
    (:func:`isolated_ball_response_hu`): the response of the same ball alone in the parenchyma,
    sampled on the same grid at the same sub-voxel position; "below_grid_limit" says whether
    even that stays at or below ``min_contrast_hu`` (then no context, wall or vessel, is to blame:
    the nodule is below what the working grid can resolve at that threshold), and
    "lung_rads_3_or_more" whether the nodule is actionable (:func:`actionable`). The sub-solid and concavity channels are not diagnosed (their
    candidates are counted as hits like any other). pool: :func:`candidate_pool` of the scan's CT;
    candidates: the detector's list for it. Returns one dict per missed nodule: the truth's keys
    plus "cause", "response_hu" (largest response where the blobness passes, HU),
    "search_fraction", "isolated_ball_hu", "below_grid_limit" and "lung_rads_3_or_more"."""
    from . import constants
    from .ball import ball_box
    from .blobs import dot_filter, scales_mm

    c = constants()
    k, c_min, b_min = (c["ball_response_per_hu"]["value"], c["min_contrast_hu"]["value"],
                       c["min_blobness"]["value"])
    sub, search = pool["sub"], pool["search"]
    cen = np.array([q.center_ras for q in candidates], float).reshape(-1, 3)
    sig_all = scales_mm(c["nodule_diameter_mm"]["value"][0], c["mass_diameter_max_mm"]["value"],
                        c["scales_per_octave"]["value"])
    out = []
    for t in scan.truth:
        r = t["diameter_mm"] / 2.0
        if len(cen) and np.any(np.sum((cen - np.asarray(t["center_ras"])) ** 2, axis=1) < r * r):
            continue
        row = {**t, "response_hu": 0.0, "search_fraction": 0.0, "isolated_ball_hu": float("nan"),
               "below_grid_limit": False,
               "lung_rads_3_or_more": actionable(t["kind"], t["diameter_mm"])}
        out.append(row)
        qf = sub.world_to_kji(np.asarray(t["center_ras"], float)[None])[0]
        q = np.rint(qf).astype(int)
        if np.any(q < 0) or np.any(q >= np.array(sub.shape)):
            row["cause"] = MISS_CAUSES[0]
            continue
        sig = sig_all[: max(int(np.sum(2.0 * np.sqrt(3.0) * sig_all <= t["diameter_mm"])), 1)]
        box, dist = ball_box(sub.shape, q, r + 3.0 * float(sig[-1]) + 2.0 * float(max(sub.spacing_kji)),
                            sub.spacing_kji)
        inside = dist < max(r, 0.5 * float(min(sub.spacing_kji)))
        # the nodule's own density: the densest voxel within half its radius (a juxta-pleural
        # nodule's centre lies half a radius inside the pleura: the wall stays out)
        core = dist <= max(0.5 * r, 0.5 * float(min(sub.spacing_kji)))
        contrast = float(sub.array[box][core].max()) - float(pool["parenchyma"])
        row["isolated_ball_hu"] = isolated_ball_response_hu(t["diameter_mm"], contrast, sub.spacing_kji,
                                                            qf - q, sig)
        row["below_grid_limit"] = bool(row["isolated_ball_hu"] <= c_min)
        row["search_fraction"] = float(search[box][inside].mean())
        loc = sub.crop([b.start for b in box], [b.stop for b in box])
        resp, _, blob = dot_filter(loc, np.ones(loc.shape, bool), sig, floor=-np.inf, pyramid=False)
        rs, bs = resp[inside], blob[inside]
        ok = bs >= b_min
        row["response_hu"] = float(rs[ok].max() / k) if ok.any() else 0.0
        near = np.linalg.norm(pool["centres"] - np.asarray(t["center_ras"]), axis=1) < r
        if row["search_fraction"] < 0.5:
            row["cause"] = MISS_CAUSES[0]
        elif not np.any(rs > 0):
            row["cause"] = MISS_CAUSES[1]
        elif row["response_hu"] <= c_min < float(rs.max() / k):
            row["cause"] = MISS_CAUSES[2]
        elif row["response_hu"] <= c_min:
            row["cause"] = MISS_CAUSES[3]
        elif not near.any():
            row["cause"] = MISS_CAUSES[4]
        elif not pool["keep"][near].any():
            row["cause"] = MISS_CAUSES[5]
        else:
            row["cause"] = MISS_CAUSES[6]
    return out


# what a false positive of a phantom screening scan lies on, in the order tested
FP_STRUCTURES = ("vessel mimic", "airway end", "airway", "chest wall or mediastinum", "vessel",
                 "fissure", "parenchyma")
_AIRWAY_LABELS = ("trachea", "airways", "airway_wall")


def false_positive_structures(scan, candidates: list, threshold: float,
                              mimic_radius_mm: float = 5.0) -> list[dict]:
    """What each false positive scored above ``threshold`` lies on, read from the phantom's own
    generating geometry (labels and airway tree), for the breakdown of the false positives that
    set the FROC's operating points (e.g. ``evaluate_screening(...)["thresholds"]["8fp"]``).

    A candidate is false when no nodule of ``scan.truth`` holds it (LUNA16's rule: within its
    radius of its centre). Its structure is the first of :data:`FP_STRUCTURES` that applies:
    within ``mimic_radius_mm`` of a vessel-bifurcation mimic; within its radius plus the branch's
    outer radius (lumen + wall) of the closed end of an airway branch that has no child (the
    tree's terminal branches); any airway lumen or wall label in its sphere (radius: half its
    diameter, at least one voxel); any label other than the lungs, their vessels and nodules
    (chest wall, mediastinum, diaphragm: the pleura's far side); lung vessels; two lung lobes
    (a fissure); else parenchyma. scan: :class:`imagio.phantom.screening.ScreeningScan`;
    candidates: objects with ``center_ras`` (RAS mm), ``diameter_mm``, ``probability``.
    Returns one dict per false positive: "structure", "probability", "diameter_mm",
    "center_ras"."""
    from .ball import ball_box

    lab = scan.phantom.labels
    names = lab.labels
    sk = np.asarray(lab.spacing_kji, float)
    tree = scan.phantom.airway_tree
    parents = {b.parent for b in tree}
    ends = [(np.asarray(b.end_ras, float), b.radius_end_mm + b.wall_mm) for b in tree if b.id not in parents]
    ref = [(np.asarray(t["center_ras"], float), t["diameter_mm"] / 2.0) for t in scan.truth]
    out = []
    for c in candidates:
        p = np.asarray(c.center_ras, float)
        if c.probability <= threshold or any(np.sum((p - q) ** 2) < r * r for q, r in ref):
            continue
        r = max(float(c.diameter_mm) / 2.0, float(sk.max()))
        kji = lab.nearest_kji(p[None])[0]
        box, dist = ball_box(lab.shape, kji, r, sk)
        inside = {names.get(int(v), "") for v in np.unique(lab.array[box][dist <= r])}
        if len(scan.mimics_ras) and np.min(np.linalg.norm(scan.mimics_ras - p, axis=1)) < mimic_radius_mm:
            kind = FP_STRUCTURES[0]
        elif any(np.linalg.norm(e - p) <= r + w for e, w in ends):
            kind = FP_STRUCTURES[1]
        elif inside & set(_AIRWAY_LABELS):
            kind = FP_STRUCTURES[2]
        elif any(n and not n.startswith("lung_") for n in inside):
            kind = FP_STRUCTURES[3]
        elif "lung_vessels" in inside:
            kind = FP_STRUCTURES[4]
        elif sum(n.startswith("lung_") and "lobe" in n for n in inside) >= 2:
            kind = FP_STRUCTURES[5]
        else:
            kind = FP_STRUCTURES[6]
        out.append({"structure": kind, "probability": float(c.probability),
                    "diameter_mm": float(c.diameter_mm), "center_ras": p.tolist()})
    return out
