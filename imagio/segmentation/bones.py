"""Bones: cortical and trabecular bone as one forbidden structure, split into spine, ribs and
other bone where the anatomy allows it.

Hysteresis threshold: voxels above ``low_hu`` connected to cortical-bone seeds above
``seed_hu`` (contrast-filled vessels rarely reach it over a whole component), then marrow holes
filled per axial slice. No closing is applied across slices, so intercostal spaces stay open
at 1-3 mm. The spine is the bone component crossing the midline posterior to the body centre;
ribs are the remaining lateral bone in the chest that is thin (a few mm thick) and elongated.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..volume import Volume
from .common import (anatomical_axes, as_progress, ball, check_ct, components,
                     fill_holes_per_slice, ras_coordinate)

BONE_LOW_HU = 180.0  # trabecular bone lower bound (typical 150-300 HU)
BONE_SEED_HU = 450.0  # cortical bone (typically > 500 HU)
RIB_MAX_RADIUS_MM = 6.0  # half the largest rib thickness (+ a voxel)
MIN_BONE_ML = 0.05  # discard specks smaller than this (calcifications, noise)


def bone_mask(ct: Volume, body: np.ndarray | None = None, low_hu: float = BONE_LOW_HU,
              seed_hu: float = BONE_SEED_HU, progress=None) -> np.ndarray:
    """Boolean [k, j, i] mask of all bone (cortical + trabecular + marrow)."""
    p = as_progress(progress)
    a = check_ct(ct)
    p(0.0, "bones: threshold")
    cand = a > low_hu
    if body is not None:
        cand &= body
    lab, n, counts = components(cand, connectivity=26)
    if n == 0:
        return cand
    seeds = a > seed_hu
    nseed = np.bincount(lab[seeds], minlength=n + 1)
    # vessels with contrast can exceed seed_hu in places: require a share of dense voxels
    keep = (nseed >= np.maximum(3, 0.02 * counts)) & (counts * ct.voxel_volume_ml >= MIN_BONE_ML)
    keep[0] = False
    m = keep[lab]
    p(0.6, "bones: marrow")
    sup = anatomical_axes(ct)["S"][0]
    filled = fill_holes_per_slice(m, sup)
    # fill only small holes (marrow), not e.g. the spinal canal ring closed by the lamina
    holes = filled & ~m
    hl, hn, hc = components(holes, connectivity=6)
    small = hc * ct.voxel_volume_ml <= 5.0
    small[0] = False
    m |= small[hl]
    p(1.0, "bones: done")
    return m


def split_bones(ct: Volume, bone: np.ndarray, body: np.ndarray | None = None,
                lungs: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Split a bone mask into {"vertebrae", "ribs", "bone"} (bone = everything else).

    Spine: components whose voxels lie within 35 mm of the body's left-right midline and
    posterior to its antero-posterior centre, taking the largest such component and anything
    connected within that corridor. Ribs: the other components lateral to the spine and, when
    ``lungs`` is given, at the height of the lungs; they are cut from the spine where they
    join it (the corridor boundary), so each rib remains its own structure where possible.
    """
    ref = body if body is not None and body.any() else bone
    x = ras_coordinate(ct, 0)
    y = ras_coordinate(ct, 1)
    cx = float(np.median(x[ref]))
    cy = float(np.median(y[ref]))
    corridor = (np.abs(x - cx) < 35.0) & (y < cy + 5.0)
    spine = np.zeros_like(bone)
    core = bone & corridor
    lab, n, counts = components(core, connectivity=26)
    if n:
        counts[0] = 0
        # the spine: the component with the largest superior-inferior extent * size
        big = counts >= 0.2 * counts.max()
        big[0] = False
        spine = big[lab]
    rest = bone & ~spine
    ribs = np.zeros_like(bone)
    if lungs is not None and lungs.any():
        s_ax = anatomical_axes(ct)["S"][0]
        sl = np.any(lungs, axis=tuple(i for i in range(3) if i != s_ax))
        idx = np.nonzero(sl)[0]
        zone = np.zeros(bone.shape[s_ax], bool)
        zone[max(idx.min() - 3, 0): idx.max() + 4] = True
        shape = [1, 1, 1]
        shape[s_ax] = -1
        in_chest = zone.reshape(shape)
        # thin structures: a rib is at most ~12 mm thick (largest inscribed radius < 6 mm),
        # the sternum body, clavicle heads or humerus are thicker
        import edt

        d = edt.edt(np.ascontiguousarray(rest), anisotropy=tuple(float(s) for s in ct.spacing_kji))
        rl, rn, rc = components(rest, connectivity=26)
        rmax = ndimage.maximum(d, rl, np.arange(rn + 1)) if rn else np.zeros(1)
        is_rib = np.asarray(rmax) < RIB_MAX_RADIUS_MM
        is_rib[0] = False
        ribs = is_rib[rl] & np.broadcast_to(in_chest, bone.shape)
    other = rest & ~ribs
    return {"vertebrae": spine, "ribs": ribs, "bone": other}
