"""Enhanced blood joined to the contrast blood pool through thick lumen: the whole round lumen of
a vessel whose parts read at different densities (`joined_lumen`).

Why: in an aortic dissection the false lumen fills later than the true lumen and reads well
below it in the arterial phase (LePage MA et al., AJR 2001;177:207-211); the chest CTA's
dissected descending and abdominal aorta shows a 400-550 HU true lumen (a crescent, a few mm
thick) beside a 200-330 HU false lumen (issue 14, new-user trial: the false lumen was left
``body`` at 1.5 mm, and at 3 mm the whole abdominal aorta was labelled ``vertebrae``). Both are
enhanced blood (``enhanced_blood_min_hu``) inside one aortic wall, joined to each other and to
the pool over the lumen's whole width. A solid organ that enhances to this level (the spleen,
renal cortex) is joined to the aorta only through its branch artery (4-8 mm across), thinner
than the opening's ball of radius ``blood_thick_mm`` (lumens >= 8 mm); cancellous bone of the
same density is walled off by its cortex (`joined_lumen`'s ``walled``).
"""
from __future__ import annotations

import numpy as np

from .common import components, dilate_mm, open_mm, rule

ENHANCED_BLOOD_MIN_HU = rule("enhanced_blood_min_hu")  # arterial-phase blood (segmentation_rules.json)
LUMEN_OPEN_MM = rule("blood_thick_mm")  # the opening's radius: lumens >= 8 mm (segmentation_rules.json)


def lumen_open_radius_mm(spacing_kji) -> float:
    """Radius (mm) of the opening that keeps only lumens >= 2 x ``LUMEN_OPEN_MM`` across, and at
    least one voxel along every axis (an opening thinner than a voxel does nothing)."""
    return max(LUMEN_OPEN_MM, 1.01 * float(np.max(spacing_kji)))


def joined_lumen(a: np.ndarray, free: np.ndarray, seed: np.ndarray, spacing_kji,
                 high_hu: float, walled: np.ndarray | None = None) -> np.ndarray:
    """Boolean [k, j, i]: enhanced blood joined to ``seed`` (the blood pool's core, bool
    [k, j, i]) through thick lumen, ``seed`` itself not included.

    ``a``: the CT [k, j, i] in HU, at the bones' common resolution (its noise averaged as the
    pool's is); ``free``: bool [k, j, i], where the lumen may lie (the body less lungs and bone);
    ``spacing_kji`` (mm); ``high_hu``: the top of the pool's band (denser tissue is cortex or
    undiluted contrast, not this lumen); ``walled``: optional bool [k, j, i] kept out (tissue
    enclosed by cortex: cancellous bone).

    Rule: voxels of ``free`` between ``ENHANCED_BLOOD_MIN_HU`` and ``high_hu``, opened by a ball
    of `lumen_open_radius_mm`, in 26-connected components that touch ``seed``; then grown back by
    that radius within the same density band (the corners the opening rounds off). The lumen's
    partial-volume edge below ``ENHANCED_BLOOD_MIN_HU`` is the caller's (each has its rim rule)."""
    sk = np.asarray(spacing_kji, float)
    band = free & (a >= ENHANCED_BLOOD_MIN_HU) & (a <= high_hu)
    if walled is not None:
        band &= ~walled
    r = lumen_open_radius_mm(sk)
    core = open_mm(band, r, sk)
    lab, n, _ = components(core | seed, connectivity=26)
    if n == 0:
        return np.zeros(a.shape, bool)
    keep = np.zeros(n + 1, bool)
    keep[lab[seed]] = True
    keep[0] = False
    grown = keep[lab] & core & ~seed
    if not grown.any():
        return grown
    return (grown | (dilate_mm(grown, r, sk) & band)) & ~seed
