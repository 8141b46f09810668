"""Whether the segmented anatomy lies on its usual sides: a check of a CT's left-right
orientation that needs no label map of another source.

The heart lies two thirds left of the midline and the aortic arch and descending aorta left of
the spine (levocardia, situs solitus: Gray's Anatomy, 42nd ed., "Heart" and "Mediastinum"), and
the right lung, with three lobes, is the larger (about 53-56 % of total lung capacity: Gray's,
"Lungs"; the reason the rules' lung volumes are reported per side). A CT whose file states the
wrong handedness (an array stored mirrored with its header kept, a NIfTI written with the other
qform sign) shows both the other way round, and every structure IMAGIO segments on it is named for
the wrong side: a wrong-site risk (new-user trial 80 M8b: the chest CTA and lung1 mirrored left-right
in storage, segmented and planned with exit 0, no word). Both signs reversed at once are rare in a
patient (situs inversus, about 1 in 10,000; dextroposition with a smaller right lung after right
lung collapse or resection), so the check warns, it does not refuse.
"""

from __future__ import annotations

import numpy as np

from ..volume import Volume


def mirrored_sides_note(ct: Volume, masks: dict) -> str | None:
    """The warning when the contrast-filled blood pool (``masks["great_vessels"]``, bool [k, j, i]
    on ``ct``'s grid: heart chambers, aorta, pulmonary vessels) has its centroid right of the
    midpoint of the two lungs' centroids (world R, mm) AND ``lung_right`` is smaller than
    ``lung_left``; None otherwise or when any of the three is missing or empty (a CT without
    contrast, one lung in view)."""
    from .common import mean_ras

    gv, lr, ll = (masks.get(n) for n in ("great_vessels", "lung_right", "lung_left"))
    if any(m is None or not np.any(m) for m in (gv, lr, ll)):
        return None
    r_gv, r_lr, r_ll = (float(mean_ras(ct, m)[0]) for m in (gv, lr, ll))
    mid = 0.5 * (r_lr + r_ll)
    vr, vl = float(lr.sum()) * ct.voxel_volume_ml, float(ll.sum()) * ct.voxel_volume_ml
    if r_gv <= mid or vr >= vl:
        return None
    return (f"the heart and great vessels lie right of the midline (blood pool centroid {r_gv - mid:+.0f} mm to the "
            f"right) and the right lung is the smaller ({vr:.0f} vs {vl:.0f} mL): the CT may be stored mirrored "
            "left-right (a header with the wrong handedness), so every side named here would be wrong; check the "
            "image's orientation against the patient (a marker, the report) before planning, unless the patient has "
            "situs inversus or dextroposition with a smaller right lung")
