"""The limb's long axis, the default biopsy incision line and the palpable landmarks.

RAS mm throughout. The default incision (issue 18): the line along the limb's long axis over
the tumour on the side of the shortest compliant tract, i.e. through that tract's skin entry,
parallel to the long axis, over the tumour's extent along the axis plus ``extend_mm`` each way,
snapped to the outer skin.
"""

from __future__ import annotations

import numpy as np

from ...volume import Volume, reach_box


LONG_BONE_ELONGATION = 2.0   # a long bone is longer than it is wide (the anatomical definition of
# a long bone, e.g. Gray's Anatomy); its shaft's principal spread must be at least this many times
# its second one, else the bone piece (pelvis, vertebra, scapula) gives no limb axis


def long_axis(labels: Volume, bone_values, near_ras, reach_mm: float = 150.0) -> tuple[np.ndarray, str]:
    """(unit vector, how): the principal axis of the largest 26-connected bone piece near the
    tumour, when it is a long bone's shaft (at least 40 mm long and ``LONG_BONE_ELONGATION`` times
    longer than wide), pointing superiorly; otherwise the scanner's S axis, said in ``how``.
    Several separate bone pieces are never joined into one axis (their centres' line would cross
    the limb, e.g. pelvis and spine in one crop)."""
    if bone_values:
        import cc3d

        lo, hi = reach_box(labels, near_ras, reach_mm)
        sub = np.isin(labels.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], list(bone_values))
        if sub.sum() > 200:
            piece = cc3d.largest_k(sub, k=1, connectivity=26) > 0
            kji = np.argwhere(piece)
        else:
            kji = np.zeros((0, 3), int)
        if len(kji) > 200:
            pts = labels.kji_to_world((kji + lo).astype(float))
            pts = pts[:: max(1, len(pts) // 20000)]
            c = pts - pts.mean(0)
            w, v = np.linalg.eigh(c.T @ c)
            ax = v[:, -1] * (1.0 if v[2, -1] >= 0 else -1.0)
            span = np.ptp(c @ ax)
            elong = float(np.sqrt(w[-1] / max(w[-2], 1e-9)))
            if span >= 40.0 and elong >= LONG_BONE_ELONGATION:
                return ax / np.linalg.norm(ax), f"principal axis of the labelled bone ({span:.0f} mm long)"
            return np.array([0.0, 0.0, 1.0]), (
                f"scanner S axis (the largest bone piece near the tumour, {span:.0f} mm, is not a long bone's "
                "shaft: check that the tumour is in a limb and draw the incision)")
    return np.array([0.0, 0.0, 1.0]), "scanner S axis (no long bone labelled near the tumour)"


def default_incision(skin: np.ndarray, ref: Volume, entry_ras, axis, tumour_pts,
                     extend_mm: float = 20.0, step_mm: float = 5.0) -> np.ndarray:
    """(m, 3) RAS polyline on the outer skin (bool [k, j, i] mask on ``ref``'s grid) through
    ``entry_ras`` along ``axis`` over the tumour points' (n, 3) extent along the axis."""
    from scipy.spatial import cKDTree

    e = np.asarray(entry_ras, float)
    ax = np.asarray(axis, float) / np.linalg.norm(axis)
    s = (np.asarray(tumour_pts, float) - e) @ ax
    a, b = min(0.0, s.min()) - extend_mm, max(0.0, s.max()) + extend_mm
    line = e + np.arange(a, b + 1e-6, step_mm)[:, None] * ax
    lo, hi = reach_box(ref, e, float(b - a) / 2 + abs(a + b) / 2 + 40.0)
    sub = skin[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    kji = np.argwhere(sub)
    if len(kji) == 0:
        return line
    pts = ref.kji_to_world((kji + lo).astype(float))
    _, idx = cKDTree(pts).query(line)
    snapped = pts[idx]
    # keep the line's order and spacing; drop points that snapped onto the same skin voxel
    keep = np.concatenate([[True], np.linalg.norm(np.diff(snapped, axis=0), axis=1) > 1e-6])
    return snapped[keep]


def densify(points, step_mm: float = 1.0) -> np.ndarray:
    """A polyline (m, 3) resampled every ``step_mm`` along its length (end points kept)."""
    p = np.asarray(points, float).reshape(-1, 3)
    if len(p) < 2:
        return p
    seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    t = np.arange(0.0, s[-1], step_mm).tolist() + [s[-1]]
    return np.stack([np.interp(t, s, p[:, a]) for a in range(3)], axis=1)


def landmarks(labels: Volume, anat, axis) -> dict:
    """Palpable landmarks in the label map, RAS mm: the patella's superior pole (a label named
    patella*; distances are measured from it) and the greater trochanter (the centre of the lateral-most femur voxels, within one
    voxel, in the femur's proximal fifth, only when the femur label holds a femoral head and trochanter: the top of the
    proximal femur lies within the image and the femur spans >= 200 mm). Missing ones are left out."""
    out = {}
    for name, v in {**anat.bones}.items():
        nm = name.lower()
        if nm.startswith("patella"):
            kji = np.argwhere(labels.array == v)
            if len(kji):   # its superior pole: the centre of its most proximal voxels (within one voxel)
                pts = labels.kji_to_world(kji.astype(float))
                s = pts @ np.asarray(axis, float)
                out["patella"] = pts[s >= s.max() - float(max(labels.spacing))].mean(axis=0)
        elif nm.startswith("femur"):
            kji = np.argwhere(labels.array == v)
            if len(kji) < 100:
                continue
            pts = labels.kji_to_world(kji.astype(float))
            s = pts @ np.asarray(axis, float)
            if np.ptp(s) < 200.0:
                continue
            top = pts[s >= s.max() - 0.2 * np.ptp(s)]
            side = 1.0 if nm.endswith("_right") else -1.0 if nm.endswith("_left") else 0.0
            if side == 0.0:   # lateral = away from the body's midline: farther from x = 0
                side = np.sign(top[:, 0].mean()) or 1.0
            lat = top[:, 0] * side   # the lateral-most voxels (within one voxel): their centre
            out["greater_trochanter"] = top[lat >= lat.max() - float(max(labels.spacing))].mean(axis=0)
    return out


def landmark_distances(entry_ras, marks: dict, axis) -> dict:
    """{landmark: {"ras", "distance_mm", "along_limb_mm"}}: straight distance and the distance
    along the limb's axis (positive: the entry lies proximal/superior to the landmark)."""
    e = np.asarray(entry_ras, float)
    ax = np.asarray(axis, float)
    return {k: {"ras": np.round(p, 1).tolist(), "distance_mm": round(float(np.linalg.norm(e - p)), 1),
                "along_limb_mm": round(float((e - p) @ ax), 1)} for k, p in marks.items()}
