"""Contrast blood pool, less enhanced segments: the rest of the aorta and the lumens joined to the
pool (`extend_pool`), and a warning for pool-density tissue beside the spine that stays unlabelled
(`paravertebral_pool_warning`).

Why: `bones.contrast_blood_pool` keeps voxels above the half-maximum between the pool's histogram
peak and the enhanced tissue. The peak is set by the largest, densest lumens (heart chambers,
ascending aorta, pulmonary trunk); the descending aorta can read well below it (bolus timing and
streaming of the contrast along the arch: enhancement differs by 50-150 HU between aortic
segments, Bae KT, Radiology 2010;256:32-61). On the TotalSegmentator chest CTA the pool's band is
375-585 HU, its lower bound 320 HU, and the descending aorta's lumen reads ~300 HU: it was left
`body` (new-user trial 53 H2). The aorta is one tube from the arch down along the spine, so its
less enhanced part is taken through its connection to the pool: thick lumens (the same opening as
the pool's core) at arterial-phase density (``MIN_BLOOD_PEAK_HU``, >= 250 HU for CTA: Bae 2010)
joined to the pool's core, with their partial-volume rim.
"""
from __future__ import annotations

import numpy as np

from ..volume import Volume
from . import bones as bn, lumen
from .common import check_ct, components, dilate_mm, open_mm, rule

PARAVERTEBRAL_POOL_MM = rule("paravertebral_pool_mm")  # descending aorta beside the spine
UNLABELLED_POOL_WARN_ML = rule("unlabelled_pool_warn_ml")  # ~6 mm of a 20 mm lumen


def _pool_density(ct: Volume, body: np.ndarray, lungs, bone):
    """(a, low, high, rim_low, free, tissue): the CT at the common resolution, the arterial-blood
    band [``MIN_BLOOD_PEAK_HU``, top of the pool's band] (HU), the lumen-edge threshold
    (half-maximum between ``MIN_BLOOD_PEAK_HU`` and the enhanced tissue level), the body less lungs
    and bone, and the enhanced tissue level (HU); None when the scan shows no contrast blood pool."""
    raw = check_ct(ct)
    a = bn.at_common_resolution(raw, ct.spacing_kji)
    band = bn.contrast_blood_band(a, body, ct.voxel_volume_ml, ct.spacing_kji)
    if band is None:
        return None
    tissue = max(bn.SOFT_TISSUE_HU, bn.enhanced_tissue_level(raw, body, ct.spacing_kji))
    low = min(bn.MIN_BLOOD_PEAK_HU, bn.pool_low_hu(band, tissue))
    free = body.copy()
    if lungs is not None:
        free &= ~lungs
    if bone is not None:
        free &= ~bone
    return a, low, float(band[1]), 0.5 * (low + tissue), free, tissue


def extend_pool(ct: Volume, pool: np.ndarray, body: np.ndarray, lungs: np.ndarray | None = None,
                bone: np.ndarray | None = None) -> np.ndarray:
    """Boolean [k, j, i] ``pool`` (`bones.contrast_blood_pool`) with the less enhanced lumens
    joined to it: voxels of the body (less ``lungs`` and ``bone``) between ``MIN_BLOOD_PEAK_HU``
    (arterial-phase blood, segmentation_rules.json) and the top of the pool's band, opened by
    `bones.pool_open_radius_mm` (lumens of >= ~6 mm), in 26-connected components that touch the
    pool; plus their partial-volume rim (within ``bones.BLOOD_RIM_MM``, above the half-maximum
    between ``MIN_BLOOD_PEAK_HU`` and the enhanced tissue). Returns ``pool`` unchanged when the
    scan shows no pool. All arrays share ``ct``'s [k, j, i] grid.

    Why: see the module docstring (the descending aorta below the pool's band). A trabecular
    patch of the spine at this density is cut from the pool by the cortex and periaortic fat,
    thinner than the opening's ball (`bones.pool_core`), and bone is excluded."""
    d = _pool_density(ct, body, lungs, bone)
    if d is None or not pool.any():
        return pool
    a, low, high, rim_low, free, tissue = d
    sk = ct.spacing_kji
    cand = free & (a >= low) & (a <= high)
    core = open_mm(cand, bn.pool_open_radius_mm(sk), sk)
    lab, n, _ = components(core | pool, connectivity=26)
    keep = np.zeros(n + 1, bool)
    keep[lab[pool]] = True
    keep[0] = False
    grown = keep[lab] & core & ~pool
    # the rest of a round lumen below the arterial-blood band: a dissected aorta's false lumen
    # (200-330 HU on the chest CTA, issue 14) joined to the pool through thick enhanced blood
    # (`lumen.joined_lumen`), its edge down to the half-maximum between that floor and the tissue
    grown |= lumen.joined_lumen(a, free, pool | grown, sk, high)
    if not grown.any():
        return pool
    rim_low = min(rim_low, 0.5 * (lumen.ENHANCED_BLOOD_MIN_HU + tissue))
    rim = dilate_mm(grown, bn.BLOOD_RIM_MM, sk) & free & (a >= rim_low) & (a <= high)
    return pool | grown | rim


def paravertebral_pool_warning(ct: Volume, pool: np.ndarray, spine: np.ndarray | None,
                               body: np.ndarray, lungs: np.ndarray | None = None,
                               bone: np.ndarray | None = None) -> str:
    """A warning (empty if none) when thick tissue at arterial-blood density (the band of
    `extend_pool`, opened like the pool's core) within ``PARAVERTEBRAL_POOL_MM`` of the ``spine``
    label is left out of ``pool`` over more than ``UNLABELLED_POOL_WARN_ML`` mL: where the
    descending aorta runs (Gray's Anatomy), a lumen the great_vessels label missed."""
    if spine is None or not spine.any():
        return ""
    d = _pool_density(ct, body, lungs, bone)
    if d is None:
        return ""
    a, _, high, _, free, _ = d
    low = lumen.ENHANCED_BLOOD_MIN_HU
    sk = ct.spacing_kji
    cand = open_mm(free & (a >= low) & (a <= high), bn.pool_open_radius_mm(sk), sk)
    left = cand & ~pool & dilate_mm(spine, PARAVERTEBRAL_POOL_MM, sk)
    ml = float(left.sum() * ct.voxel_volume_ml)
    if ml <= UNLABELLED_POOL_WARN_ML:
        return ""
    return (f"vessels: {ml:.1f} mL of tissue at contrast-blood density ({low:.0f}-{high:.0f} HU) "
            f"within {PARAVERTEBRAL_POOL_MM:.0f} mm of the spine is not labelled great_vessels "
            "(where the descending aorta runs): it may be an unlabelled aorta or vessel; check "
            "the images and treat it as forbidden")
