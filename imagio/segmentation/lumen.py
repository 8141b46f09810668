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
same density is walled off by its cortex (`joined_lumen`'s ``walled``); where partial volume at a
coarse grid (3 mm) blurs that cortex into the band, the cancellous piece is told by what its
surface lies against: bone more than the pool (`bone_walled_pieces`, used by
`blood_pool.extend_pool`).
"""
from __future__ import annotations

import numpy as np

from .common import bbox_slices, components, dilate_mm, open_mm, rule

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


def bone_walled_pieces(pieces: np.ndarray, seed: np.ndarray, bone: np.ndarray) -> np.ndarray:
    """Boolean [k, j, i]: the 26-connected components of ``pieces`` (bool [k, j, i], lumen
    joined to ``seed``, the pool, by density) whose voxel faces touch ``bone`` (bool [k, j, i])
    more often than they touch ``seed``; all three on one grid. Faces are counted between
    6-neighbours, so the count is a surface area in voxel faces on any spacing.

    Why: a vessel's lumen is bounded by its wall, and the descending aorta is separated from the
    vertebral bodies by its wall (1-3 mm, Erbel R et al., Eur Heart J 2014;35:2873-2926) and
    periaortic fat (Gray's Anatomy, 42nd ed., "Posterior mediastinum"); a lumen joined to the pool
    (a false lumen, the rest of a less enhanced vessel) lies against the pool over the opening
    between them. Cancellous bone is enclosed by its cortical shell (Gray's Anatomy, "Bone":
    the vertebral body, continuous with the pedicles and laminae), and at arterial phase it reads
    in the pool's band (150-450 HU; `bones.pool_core`). At a 3 mm grid the cortex (0.5-2 mm,
    Hostetler ZS et al., Comput Biol Med 2019;111:103330) and the fat between aorta and spine are
    thinner than a voxel and blur into the band, so the vertebral body's marrow was taken as
    lumen joined to the aorta (new-user trial 79: 1.2 mL at 3 mm axial, 5.2 mL on an oblique 3 mm
    reformat of the chest CTA, labelled great_vessels; its surface lay 23-29 % against bone and
    0-11 % against the pool, each true lumen piece at most 7 % against bone). A piece more
    walled by bone than joined to the pool is the bone's marrow, not a vessel.

    Limit: the rule judges whole pieces. A false lumen joined to such marrow in one piece is
    left out with it (unlabelled; `blood_pool.paravertebral_pool_warning` then says the mL of
    contrast-density tissue beside the spine): a missed vessel is warned, a vertebra labelled
    vessel was not."""
    out = np.zeros(pieces.shape, bool)
    box = bbox_slices(pieces)
    if box is None:
        return out
    # one voxel more each side (bbox_slices adds it): the pieces' neighbours are in the box
    p, s, b = pieces[box], seed[box], bone[box]
    lab, n, _ = components(p, connectivity=26)
    if n == 0:
        return out
    on_bone = np.zeros(n + 1)
    on_seed = np.zeros(n + 1)
    for ax in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[ax], hi[ax] = slice(0, -1), slice(1, None)
        for here, there in ((tuple(lo), tuple(hi)), (tuple(hi), tuple(lo))):
            face = p[here] & ~p[there]
            ids = lab[here][face]
            on_bone += np.bincount(ids, weights=b[there][face], minlength=n + 1)
            on_seed += np.bincount(ids, weights=s[there][face], minlength=n + 1)
    drop = on_bone > on_seed
    drop[0] = False
    out[box] = drop[lab]
    return out
