"""Costal cartilage the label map lacks (new-user trial 51 M5): ``imagio segment``'s rule-based
labels may hold no costal cartilage ("costal cartilages not segmented ... treat the anterior
chest wall between ribs and sternum as forbidden"), and a plan on them then proposed tracks
through 8.7 and 6.2 mm of (true) cartilage with no word.

`costal_zone_run` finds where a track runs through the region the cartilages occupy: chest-wall
tissue (before the track reaches the lung, not bone) with the sternum medial and a rib lateral
to it in the same R-L line, each within ``warnings.costal_cartilage_reach_mm`` of
planning_defaults.json (Gray's Anatomy: the cartilages join ribs 1-10 to the sternum). The plan
warns per proposal (`costal_warnings`) instead of forbidding the region: it is an estimate from
the bones, a parasternal approach through an intercostal space is sound, and the operator sees
the cartilage on the CT (planning_defaults.json ``sources`` says so). RAS mm.
"""

from __future__ import annotations

import numpy as np

STEP_MM = 1.0   # sampling step along the track and along each search ray
# search rays (R away from the sternum, A, S; normalised): towards the rib, laterally, level or
# bending back (the ribs curve posteriorly from their anterior ends) and up (they rise towards
# their heads); towards the sternum, medially, level or up (cartilages 7-10 ascend medially to
# it: Gray's Anatomy, 42nd ed., "Thoracic wall")
LATERAL_FAN = [(1, 0, 0), (1, -0.5, 0), (1, -1, 0), (1, 0, 0.5), (1, -0.5, 0.5), (1, -1, 0.5)]
MEDIAL_FAN = [(-1, 0, 0), (-1, 0, 0.5), (-1, 0, 1), (-1, 0.25, 0.5), (-1, -0.25, 0.5)]


def has_costal_cartilage(names) -> bool:
    """Whether a label name holds costal cartilage (TotalSegmentator ``costal_cartilages``)."""
    return any("costal_cartilage" in n for n in names)


def costal_zone_run(labels, entry_ras, target_ras, reach_mm: float, target_value: int = 0):
    """(mm of the track entry -> target in the costal-cartilage region, RAS of its first sample)
    or None. ``labels``: label map (`Volume` with names); the track is sampled every ``STEP_MM``
    up to the first sample in a lung label (name holding "lung" or "lobe"), the target's label
    (``target_value``) or the target; a sample counts when it is no bone (rib, sternum) and the
    sample lies in front of the ribs' coronal centre (the anterior chest wall), the
    sternum (a name holding "sternum"; without one, the rule-based segmentation's "bone", which
    holds it) lies medial to it (towards the ribs' mean R) and a rib (name starting "rib")
    lateral to it, each within ``reach_mm`` along one of the search rays (`LATERAL_FAN`,
    `MEDIAL_FAN`), sampled at nearest voxels. Vectorised over track samples and line steps."""
    names = labels.labels
    lut_n = max(names, default=0) + 1
    is_st, is_rib, is_lung = (np.zeros(lut_n, bool) for _ in range(3))
    sternum = any("sternum" in n for n in names.values())
    for v, n in names.items():
        # no sternum label: the rule-based segmentation's "bone" holds it (with the other bones)
        is_st[v] = "sternum" in n if sternum else n == "bone"
        is_rib[v] = n.startswith("rib")
        is_lung[v] = "lung" in n or "lobe" in n
    if not is_st.any() or not is_rib.any():
        return None
    ribs = np.argwhere(np.isin(labels.array, np.flatnonzero(is_rib)))
    if not len(ribs):
        return None
    centre = labels.kji_to_world(ribs.mean(axis=0, keepdims=True).astype(float))[0]
    mid_r = float(centre[0])   # the ribs' midline
    # the cartilages join the ribs' anterior ends to the sternum: the anterior chest wall, in front
    # of the ribs' coronal centre (review 43 M1: without a sternum label the medial "bone" holds
    # the scapulae too, and posterior tracks between a rib and a scapula were warned)
    mid_a = float(centre[1])
    del ribs
    e, t = np.asarray(entry_ras, float), np.asarray(target_ras, float)
    L = float(np.linalg.norm(t - e))
    if L <= 0:
        return None
    P = e + np.arange(0.0, L, STEP_MM)[:, None] * (t - e) / L
    v = np.minimum(labels.sample(P, order=0, fill=0).astype(np.int64), lut_n - 1)
    stop = is_lung[v] | ((v == target_value) & (target_value > 0))
    n_wall = int(np.argmax(stop)) if stop.any() else len(P)
    P, v = P[:n_wall], v[:n_wall]
    if not len(P):
        return None
    side = np.where(P[:, 0] >= mid_r, 1.0, -1.0)          # lateral: away from the sternum along R
    s = np.arange(STEP_MM, reach_mm + STEP_MM, STEP_MM)

    def found(fan, is_x):   # any label of ``is_x`` along one of the fan's rays (side-relative R, A, S)
        hit = np.zeros(len(P), bool)
        for d in np.asarray(fan, float) / np.linalg.norm(fan, axis=1, keepdims=True):
            D = np.stack([side * d[0], np.full(len(P), d[1]), np.full(len(P), d[2])], axis=1)
            Q = P[:, None, :] + s[None, :, None] * D[:, None, :]
            q = np.minimum(labels.sample(Q.reshape(-1, 3), order=0, fill=0).astype(np.int64), lut_n - 1)
            hit |= is_x[q].reshape(len(P), len(s)).any(axis=1)
        return hit

    rib_lat = found(LATERAL_FAN, is_rib)
    st_med = found(MEDIAL_FAN, is_st)
    inside = rib_lat & st_med & ~is_rib[v] & ~is_st[v] & (P[:, 1] > mid_a)
    if not inside.any():
        return None
    return float(inside.sum()) * STEP_MM, [round(float(x), 1) for x in P[int(np.argmax(inside))]]


def costal_warnings(problem, n: int, entry_ras, target_ras) -> list[str]:
    """The warning for proposal ``n`` (1-based) of ``problem`` (`problem.PlanningProblem`) whose
    track entry -> target runs through the costal-cartilage region (`costal_zone_run`) while the
    label map holds no costal cartilage; [] otherwise."""
    from .problem import load_defaults

    lab = problem.labels
    vals = [v for v, n in lab.labels.items() if has_costal_cartilage([n])]
    if vals and np.isin(lab.array, vals).any():   # labelled, with voxels (an empty class counts as none)
        return []
    reach = float(load_defaults()["warnings"]["costal_cartilage_reach_mm"])
    run = costal_zone_run(lab, entry_ras, target_ras, reach, int(problem.target.value or 0))
    if run is None:
        return []
    mm, at = run
    return [f"proposal {n}: the track runs {mm:.0f} mm through the anterior chest wall between the ribs and the "
            f"sternum (from {at} RAS mm), where the costal cartilages lie, but the label map holds no costal "
            "cartilage (not segmented): the track may pass through cartilage, which a labelled map forbids; check "
            "it on the images, or prefer a track through an intercostal space lateral to the rib ends"]
