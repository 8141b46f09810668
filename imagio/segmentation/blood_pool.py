"""Contrast blood pool, less enhanced segments: the rest of the aorta and the lumens joined to the
pool (`extend_pool`), the vein of undiluted contrast joined to it (`undiluted_vessel`), a
warning for pool-density tissue beside the spine that stays unlabelled
(`paravertebral_pool_warning`), and one for a non-enhancing crescent against the descending
aorta's lumen (`nonenhancing_crescent_warning`: a thrombosed false lumen or intramural haematoma).

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
from scipy import ndimage

from ..volume import Volume
from . import bones as bn, lumen
from .common import (_edt, anatomical_axes, bbox_slices, check_ct, components, dilate_mm, open_mm,
                     plane_structure, rule)

PARAVERTEBRAL_POOL_MM = rule("paravertebral_pool_mm")  # descending aorta beside the spine
UNLABELLED_POOL_WARN_ML = rule("unlabelled_pool_warn_ml")  # ~6 mm of a 20 mm lumen
THROMBUS_MIN_HU = rule("thrombus_min_hu")  # non-enhancing blood / thrombus (segmentation_rules.json)
THROMBUS_MAX_HU = rule("thrombus_max_hu")
AORTIC_WALL_MAX_MM = rule("aortic_wall_max_mm")  # thicker: intramural haematoma / thrombus
AORTA_MAX_RADIUS_MM = rule("aorta_max_radius_mm")


def contrast_pool_band(ct: Volume, body: np.ndarray | None = None) -> tuple[float, float] | None:
    """(low, high) HU band of the scan's contrast-enhanced blood pool, or None when it shows none
    (a non-contrast or late-phase CT): `bones.contrast_blood_band` on the CT at the common
    resolution (as `rules.segment_masks` decides "contrast CT"), within ``body`` (bool [k, j, i];
    every voxel when None: the band is a peak of thick 150-700 HU tissue, which a couch or a
    cable is not). Raises InputError for a non-CT input (`common.check_ct`)."""
    if body is None:   # the band alone (the contrast phase): the blurred CT on the band's samples only
        band = bn.contrast_blood_band_of_ct(check_ct(ct), ct.spacing_kji, ct.voxel_volume_ml)
    else:
        band = _band_at_common_resolution(ct, body)[1]
    return None if band is None else (float(band[0]), float(band[1]))


def contrast_pool_seen(ct: Volume) -> bool:
    """``contrast_pool_band(ct) is not None`` (the contrast phase), the same answer, mostly without
    reading the CT's resolution (`bones.contrast_blood_seen_of_ct`). Raises InputError for a
    non-CT input (`common.check_ct`)."""
    return bn.contrast_blood_seen_of_ct(check_ct(ct), ct.spacing_kji, ct.voxel_volume_ml)


def _band_at_common_resolution(ct: Volume, body: np.ndarray):
    """(the CT at the common resolution, float32 [k, j, i]; its contrast blood pool's HU band or
    None): `bones.contrast_blood_band` as `contrast_pool_band` and `_pool_density` read it."""
    a = bn.at_common_resolution(check_ct(ct), ct.spacing_kji)
    return a, bn.contrast_blood_band(a, body, ct.voxel_volume_ml, ct.spacing_kji)


def _pool_density(ct: Volume, body: np.ndarray, lungs, bone):
    """(a, low, high, rim_low, free, tissue): the CT at the common resolution, the arterial-blood
    band [``MIN_BLOOD_PEAK_HU``, top of the pool's band] (HU), the lumen-edge threshold
    (half-maximum between ``MIN_BLOOD_PEAK_HU`` and the enhanced tissue level), the body less lungs
    and bone, and the enhanced tissue level (HU); None when the scan shows no contrast blood pool."""
    raw = check_ct(ct)
    a, band = _band_at_common_resolution(ct, body)
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
    thinner than the opening's ball (`bones.pool_core`), and bone is excluded; where a coarse grid
    blurs that cortex into the band, a grown piece lying more against ``bone`` than against the
    pool is marrow and is left out (`lumen.bone_walled_pieces`)."""
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
    # pieces of either lying more against the bone found than against the pool (and what was
    # taken before them) are a bone's marrow behind a cortex blurred into the band, not lumen
    # (`lumen.bone_walled_pieces`, new-user trial 79)
    if bone is not None and grown.any():
        grown &= ~lumen.bone_walled_pieces(grown, pool, bone)
    joined = lumen.joined_lumen(a, free, pool | grown, sk, high)
    if bone is not None and joined.any():
        joined &= ~lumen.bone_walled_pieces(joined, pool | grown, bone)
    grown |= joined
    joined = None
    if not grown.any():
        return pool
    rim_low = min(rim_low, 0.5 * (lumen.ENHANCED_BLOOD_MIN_HU + tissue))
    rim = dilate_mm(grown, bn.BLOOD_RIM_MM, sk) & free & (a >= rim_low) & (a <= high)
    return pool | grown | rim


def undiluted_vessel(ct: Volume, lumen: np.ndarray, body: np.ndarray, lungs: np.ndarray | None = None,
                     bone: np.ndarray | None = None) -> np.ndarray:
    """Boolean [k, j, i]: the undiluted-contrast lumen ``lumen`` (bool [k, j, i]:
    `bone_shell.undiluted_lumen` as `bones.bone_mask` found it, joined to the pool's core through
    thick lumen and denser than the pool's band) with its partial-volume rim, for the
    great_vessels label: voxels of the body (less ``lungs`` and ``bone``, bool [k, j, i] or None)
    within ``bones.BLOOD_RIM_MM`` of the lumen at or above `extend_pool`'s lumen-edge threshold
    (the half-maximum between ``MIN_BLOOD_PEAK_HU`` and the enhanced tissue), with no upper bound
    (the blur of contrast above the band reads above it). The lumen alone (less ``bone``) on a
    scan without a pool. All arrays on ``ct``'s [k, j, i] grid.

    Why: contrast injected into an arm vein reaches the heart undiluted through the axillary,
    subclavian and brachiocephalic veins and the superior vena cava and swirls in the right
    atrium (Bae KT, Radiology 2010;256:32-61: venous inflow, 1,000-2,000 HU and more), so on the
    injection side these lumens read above the pool's band, as dense as cortex, and were left
    unlabelled ('body', issue 14: 107 mL with its rim on the chest CTA); the density check then called them
    "bone, calcification or metal". They are the blood pool of the group that great_vessels
    stands for (TotalSegmentator's superior_vena_cava, brachiocephalic_vein_left/right, heart;
    anatomy.json ``group_of``) and one tube with it: no boundary between the superior vena cava,
    the brachiocephalic vein and the atrium is drawn by density, so they are not split into
    TotalSegmentator's classes. Bone is never taken (``bone`` is excluded, the lumen and its rim
    included: the caller passes the final bone labels)."""
    out = lumen.copy() if bone is None else lumen & ~bone
    d = _pool_density(ct, body, lungs, bone)
    if d is None or not out.any():
        return out
    a, _, _, rim_low, free, _ = d
    return out | (dilate_mm(out, bn.BLOOD_RIM_MM, ct.spacing_kji) & free & (a >= rim_low))


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


def nonenhancing_crescent_warning(ct: Volume, pool: np.ndarray, spine: np.ndarray | None,
                                  body: np.ndarray, lungs: np.ndarray | None = None,
                                  bone: np.ndarray | None = None) -> str:
    """A warning (empty if none) when a non-enhancing crescent lies against the enhanced lumen of
    the descending aorta: in planes normal to the superior axis, the largest disc inscribed in the
    lumen (``pool`` beside the ``spine`` label, bool [k, j, i]; see below) with
    the tissue at ``THROMBUS_MIN_HU``-``THROMBUS_MAX_HU`` within ``AORTA_MAX_RADIUS_MM`` of it
    (in the body, less ``lungs`` and ``bone``) has a radius more than ``AORTIC_WALL_MAX_MM``
    larger than the lumen's own (a ring that thick, a crescent on one side twice as thick), over
    at least two ``bones.COMMON_RESOLUTION_MM`` samples along the superior axis. The lumen is each plane's pieces of ``pool`` that reach within
    ``PARAVERTEBRAL_POOL_MM`` of the spine (the aorta's whole cross-section). All masks on
    ``ct``'s [k, j, i] grid; distances in mm on that grid.

    Why: a thrombosed false lumen of an aortic dissection (30-80 HU, no enhancement; LePage MA et
    al., AJR 2001;177:207-211), an intramural haematoma or a mural thrombus is a crescent or ring
    of the aortic wall thicker than 5 mm around the enhanced lumen (Erbel R et al., Eur Heart J
    2014;35:2873-2926); the great_vessels label holds the enhanced lumen only and the crescent is
    left ``body`` (issue 14 trial), while it is part of the aorta: a needle must stay out. The
    lumen and its crescent form one round aorta, so the disc inscribed in both is larger than the
    lumen's; tissue beside the aorta (oesophagus, crus, a lymph node) adds a lobe to the outline,
    not a larger inscribed disc. Limits: a one-sided crescent of 5-10 mm is not said (the bound
    is on the disc's radius, which such a crescent widens by half its thickness: a lumen lying
    in soft tissue rather than fat widened it by 3.6 mm in the phantom); only the descending
    aorta beside the spine label is looked at, and nothing without a spine label."""
    if spine is None or not spine.any() or pool is None or not pool.any():
        return ""
    d = _pool_density(ct, body, lungs, bone)
    if d is None:
        return ""
    a, _, _, _, free, _ = d
    sk = np.asarray(ct.spacing_kji, float)
    near = pool & dilate_mm(spine, PARAVERTEBRAL_POOL_MM, sk)
    box = bbox_slices(near, 3.0 * AORTA_MAX_RADIUS_MM, sk)
    if box is None:
        return ""
    near, a, free, pool_b = near[box], a[box], free[box], pool[box]
    sup = anatomical_axes(ct)["S"][0]
    # the lumen's whole cross-section: the in-plane pieces of the pool that reach the spine's
    # neighbourhood
    lab, n = ndimage.label(pool_b, structure=plane_structure(sup))
    keep = np.zeros(n + 1, bool)
    keep[lab[near]] = True
    keep[0] = False
    lumen = keep[lab]
    lab = near = None
    clot = free & (a >= THROMBUS_MIN_HU) & (a <= THROMBUS_MAX_HU) & ~pool_b
    union = lumen | (clot & dilate_mm(lumen, AORTA_MAX_RADIUS_MM, sk))
    # in-plane distances: the superior axis far apart, so that the nearest background of a voxel
    # lies in its own plane
    sp = sk.copy()
    sp[sup] = 1e6
    plane = np.broadcast_to(np.arange(lumen.shape[sup]).reshape([-1 if i == sup else 1 for i in range(3)]),
                            lumen.shape)
    n = lumen.shape[sup]
    r_lumen = np.bincount(plane[lumen], minlength=n) > 0
    dl = _edt(lumen, sp, black_border=True)
    du = _edt(union, sp, black_border=True)
    rl = np.zeros(n)
    ru = np.zeros(n)
    np.maximum.at(rl, plane[lumen], dl[lumen])
    np.maximum.at(ru, plane[union], du[union])
    # a ring of thickness t around the lumen widens the inscribed disc's radius by t, a crescent
    # of thickness t on one side by t / 2: a crescent is said from twice the wall's bound (soft
    # tissue beside the lumen, oesophagus or crus, widens it by less than a crescent does)
    grow = ru - rl
    thick = r_lumen & (grow > AORTIC_WALL_MAX_MM)
    length = float(thick.sum() * sk[sup])
    if length < 2.0 * bn.COMMON_RESOLUTION_MM:
        return ""
    return (f"vessels: a non-enhancing crescent ({THROMBUS_MIN_HU:.0f}-{THROMBUS_MAX_HU:.0f} HU, up to "
            f"{float(2.0 * grow[thick].max()):.0f} mm thick) lies against the enhanced lumen of the descending "
            f"aorta over {length:.0f} mm: a thrombosed false lumen of a dissection, an intramural haematoma or "
            "a mural thrombus; it is part of the aorta but not labelled great_vessels (it is left 'body'): "
            "check the images and keep a needle out of it")
