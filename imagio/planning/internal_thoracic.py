"""Internal thoracic (mammary) vessels beside the sternum (new-user trial 91 M3).

The internal thoracic artery and its veins run down behind the costal cartilages beside the
sternum: the veins about 10 mm, the artery about 15 mm from the sternal border (more than 20 mm in
9 % of patients; Glassberg RM et al., AJR 1990;155:397-400), the artery 2-3 mm wide (Lachman N,
Satyapal KS, Surg Radiol Anat 1998;20:243-247). A parasternal needle that injures them bleeds into
the chest (haemothorax); the CT study recommends entering more than 25 mm from the sternal
border. They are rarely in a label map, and at 2-3 mm under the calibre the planner keeps out
(``vessel_calibre.hard_min_diameter_mm``), so the plan cannot keep a margin from them; on the chest
CTA the 2nd proposal to a left upper lobe target passed 2.9 mm from the unlabelled left internal
thoracic artery (a contrast-filled tube of about 3 mm, 123 mm long) with only a dense-tissue
warning, and on a non-contrast CT they cannot be seen at all.

Rule (anatomy): a proposal whose track crosses the anterior chest wall within
``warnings.internal_thoracic_zone_mm`` (planning_defaults.json, 25 mm, with its sources) of the
sternum is warned, naming the vessels, with the closest distance; contrast CT or not (a contrast
CT shows the vessels, a non-contrast one does not: the warning says which to look for). The
chest-wall part of the track is the costal-cartilage check's (`cartilage._zone_samples`): from the
entry up to the first lung sample (or the target's label), in front of the ribs' coronal centre,
not in bone. The sternum is a label named "sternum" (TotalSegmentator), else the rule-based
segmentation's "bone" (which holds it, with the other bones: `cartilage._Region`), within the
zone of a wall sample: distance from the sample to the nearest such voxel centre (RAS mm, exact,
``scipy.spatial.cKDTree``), so the image's direction, flips and spacing do not change it.
Warned, not forbidden: a CT-guided approach may use the window medial to the vein (Glassberg
1990), and the vessels are visible on a contrast CT.
"""

from __future__ import annotations

import numpy as np


def parasternal_run(labels, entry_ras, target_ras, zone_mm: float, target_value: int = 0, reg=None,
                    min_ml: float = 0.0):
    """(closest distance, mm, from the track's anterior chest-wall samples to the sternum; the RAS mm
    of that sample; mm of the track within ``zone_mm`` of the sternum) for the track entry ->
    target (RAS mm) on the label map ``labels`` (`Volume` with names), or None when no wall sample
    lies within ``zone_mm`` of a sternum voxel (or the map holds no sternum and ribs: no anterior
    chest wall known). ``reg``: the map's `cartilage._Region` when the caller has it. ``min_ml``:
    sternum pieces (26-connected, within the box of the wall samples + the zone) smaller than this
    are not the sternum (a speck of 'bone'; ``warnings.internal_thoracic_sternum_min_ml``).
    Vectorised over the samples (one KD-tree query)."""
    from scipy.spatial import cKDTree

    from .ablation.zones import box_of
    from .cartilage import STEP_MM, _region, _zone_samples

    reg = _region(labels) if reg is None else reg
    z = _zone_samples(labels, entry_ras, target_ras, zone_mm, target_value, reg)
    if z is None:
        return None
    P = z[0]
    v = np.minimum(labels.sample(P, order=0, fill=0).astype(np.int64), reg.lut_n - 1)
    wall = ~reg.is_rib[v] & ~reg.is_st[v] & (P[:, 1] > reg.mid_a)
    P = P[wall]
    if not len(P):
        return None
    # the sternum's voxels in the box of the wall samples + the zone (index box of its 8 corners)
    a, b = box_of(labels.ijk_to_ras, labels.shape, P.min(0) - zone_mm, P.max(0) + zone_mm, pad_vox=0)
    box = labels.array[a[0]:b[0], a[1]:b[1], a[2]:b[2]]
    st = reg.is_st[np.minimum(box, reg.lut_n - 1)] & (box < reg.lut_n)
    if st.any() and min_ml > 0:
        import cc3d

        lab, n = cc3d.connected_components(st, connectivity=26, return_N=True)
        big = np.bincount(lab.ravel(), minlength=n + 1) * labels.voxel_volume_ml >= min_ml
        big[0] = False
        st = big[lab]
    if not st.any():
        return None
    pts = labels.kji_to_world((np.argwhere(st) + a).astype(float))
    pts = pts[pts[:, 1] > reg.mid_a]   # the anterior half: the sternum, not the scapulae
    if not len(pts):
        return None
    d, _ = cKDTree(pts).query(P, distance_upper_bound=zone_mm)
    near = d <= zone_mm
    if not near.any():
        return None
    i = int(np.argmin(d))
    return float(d[i]), [round(float(x), 1) for x in P[i]], float(near.sum()) * STEP_MM


def internal_thoracic_warnings(problem, n: int, entry_ras, target_ras, phase: dict | None = None) -> list[str]:
    """The warning for proposal ``n`` (1-based) of ``problem`` (`problem.PlanningProblem`) whose
    track crosses the anterior chest wall within ``warnings.internal_thoracic_zone_mm`` of the
    sternum (`parasternal_run`, module doc); [] otherwise. A contrast CT (`problem.contrast_phase`
    with its blood pool rule when no vessel is labelled: new-user trial 93 F6, non-contrast lung1
    was told the "phase unknown" words) is told the vessels show on it; another that they do not.
    ``phase``: a dict the caller keeps over its proposals (the phase is read once, under "seen";
    the map's `cartilage._Region` under "region", `cartilage.region_of`)."""
    from .cartilage import region_of
    from .problem import contrast_phase, load_defaults

    w = load_defaults()["warnings"]
    zone = float(w["internal_thoracic_zone_mm"])
    phase = {} if phase is None else phase
    run = parasternal_run(problem.labels, entry_ras, target_ras, zone, int(problem.target.value or 0),
                          region_of(problem.labels, phase),
                          float(w["internal_thoracic_sternum_min_ml"]))
    if run is None:
        return []
    d, at, mm = run
    if "seen" not in phase:
        phase["seen"] = contrast_phase(problem.ct, problem.labels, pool=True)
    seen = phase["seen"]
    look = ("find them on the images (contrast-filled tubes of 2-3 mm behind the costal cartilages)" if seen else
            "no contrast-filled blood pool shows on this CT (no contrast, or a portal-venous or later phase), so they "
            "may not stand out from the chest wall: look for 2-3 mm tubes behind the costal cartilages"
            if seen is False else "on a contrast CT they show as 2-3 mm tubes behind the costal cartilages")
    return [f"proposal {n}: the track crosses the anterior chest wall {d:.1f} mm from the sternum (at {at} RAS mm; "
            f"{mm:.0f} mm of it within {zone:g} mm), where the internal thoracic (mammary) artery and veins run beside "
            "the sternal border (veins about 10 mm, the artery about 15 mm from it, more than 20 mm in 9 %: Glassberg "
            "1990); a needle through them risks haemorrhage (haemothorax) and the label map does not hold them: "
            f"{look}, or enter more than {zone:g} mm from the sternal border"]
