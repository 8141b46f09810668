"""Bones: cortical and trabecular bone as one forbidden structure, split into spine, ribs and
other bone where the anatomy allows it.

Hysteresis threshold: voxels above ``low_hu`` connected to cortical-bone seeds above
``seed_hu``. ``low_hu`` is raised above the enhanced soft tissue of the scan (contrast liver,
kidneys, aorta: `enhanced_tissue_level`); in a CT angiography the blood pool (a histogram peak
at 250-700 HU, `contrast_blood_band`) and its rim are removed first, and cortex seeds are also
read on the native image against the pool's band there (`native_cortex_seeds`: a thin rib's
cortex blurs into the band at 3 mm). Marrow: cavities enclosed by the bone in two of the three
orthogonal planes (any density: fatty marrow; the spinal canal is open along S-I), bone-like
2-D holes per axial slice and 3-D voids (not CSF in the spinal canal).
`costal_cartilage`: tissue denser than the scan's soft tissue attached to a rib (non-contrast
scans only; a warning otherwise).

Resolution: every threshold is applied to the CT blurred to the partial volume of a
``COMMON_RESOLUTION_MM`` voxel (`at_common_resolution`; the blur the scan already has is read
from its noise, `resolution.effective_resolution_mm`, so an upsampled scan is not blurred
twice), on a scan blurrier than that the seed contrast is lowered as a thin object's peak is
(`thin_peak_factor`), so that thin cortex and ribs (thinner than a voxel at 3 mm) are found
at 0.5-3 mm grids (a finer grid sees a thin rib's cortex at full density, a coarser one at part
of it). The boundary is the bone threshold itself, with no partial-volume rim below it (except
where enhanced tissue or a blood pool raised the threshold above trabecular bone's lower bound:
`bone_mask`; and the edge of thin bone beside the lungs, the ribs, on a scan blurrier than the
common resolution, down to trabecular bone's lower bound as a thin bone reads there, or on a CT
angiography down to the candidates' contrast floor as a thin bone reads there, given after the
split to the one bone it surrounds: `bone_mask`, `attach_edge`,
`thin_bone_note` where enhanced tissue keeps the threshold above it): a voxel
between soft tissue (T) and bone of density B is at least half bone when its HU is above the
half maximum (T + B) / 2, which for any bone at or above the threshold is at or above (T +
threshold) / 2 and is not below the threshold for cortex or cancellous bone denser than 2 x
threshold - T (~180 HU); a rim down to (T + threshold) / 2 took voxels that are mostly soft tissue,
by a skirt that widens with the blur (lung1 at 3 mm: other bone 1.15 of native; TotalSegmentator
example bones Dice 0.888 -> 0.897 without it). No closing is applied, so intercostal spaces stay
open at 1-3 mm. `split_bones`: the spine is the bone in a corridor along the midline posterior to
the body centre; ribs are the thin remaining bone hugging the lungs; the rest is "bone".
"""

from __future__ import annotations

import contextlib
import weakref

import numpy as np
from scipy import ndimage

from ..caching import ThreadKept
from ..memory import release_free_memory
from ..volume import Volume
from .common import (_edt, anatomical_axes, inplane_spacing_mm, as_progress, bbox_slices, check_ct, components, crop_slices,
                     close_mm, depth_mm, dilate_mm, erode_mm, fill_holes_3d, open_mm,
                     fill_holes_per_slice, measured_box,
                     plane_structure, ras_coordinate, ras_ramp, rule)
from . import bone_shell
from .lumen import joined_lumen
from .resolution import effective_resolution_mm

BONE_LOW_HU = 120.0  # trabecular bone lower bound (typical 100-300 HU, lower at 3 mm)
BONE_SEED_HU = 350.0  # cortical bone (> 500 HU at 1 mm; partial volume lowers it at 3 mm)
SOFT_TISSUE_HU = 50.0  # muscle / organ parenchyma without contrast (40-60 HU)
COMMON_RESOLUTION_MM = rule("bone_common_resolution_mm")  # segmentation_rules.json
SPINE_HALF_WIDTH_MM = 35.0  # the spine corridor either side of the midline: half the width of a
# lumbar vertebra across its transverse processes (~70 mm; Panjabi MM et al., Spine 1992;17:299-306)
RIB_MAX_RADIUS_MM = rule("rib_max_radius_mm")  # no thicker ball fits in a rib (segmentation_rules.json)
RIB_LUNG_MM = rule("rib_lung_mm")  # ribs lie on the pleura; the scapula is farther out (segmentation_rules.json)
RIB_MIN_ML = 0.2  # a rib piece smaller than this (a speck of partial volume) is left to 'bone'
MIN_BONE_ML = 0.05
MIN_SEED_CELLS = rule("min_bone_seed_cells")  # seed samples a bone component needs, in voxels
# of the common resolution (3 voxels at 3 mm, as before; 81 mm^3 on any grid)
MIN_SEED_SHARE = 0.02  # share of a bone piece's voxels that are cortex seeds (bone_mask; a contrast
# vessel or an enhancing organ exceeds the seed level in a few noisy voxels only)
MARROW_MIN_HU = 60.0  # marrow (fatty in the elderly) vs CSF/cord in the spinal canal
MAX_MARROW_ML = 60.0  # largest marrow cavity filled without a density rule (see bone_mask)
MAX_MARROW_MM2 = 3000.0  # a lumbar vertebral body is ~15-20 cm^2 in an axial slice
CONTRAST_LOW_HU = 200.0  # with arterial contrast, organ vessels reach ~200 HU
ORGAN_MARGIN_HU = 30.0  # bone threshold above the enhanced-tissue level
BLOOD_RIM_MM = 4.0  # partial-volume rim of the contrast blood pool dropped with it
BLOOD_OPEN_MM = COMMON_RESOLUTION_MM + 0.1  # opening radius that separates the blood pool from
# band-HU bone: one voxel of the common resolution, so the same physical size at every spacing
MIN_BLOOD_PEAK_HU = rule("min_blood_peak_hu")  # arterial-phase blood (segmentation_rules.json)
MIN_BLOOD_POOL_ML = 30.0  # a contrast blood pool (CT angiography) is a histogram peak this big
BLOOD_THICK_MM = rule("blood_thick_mm")  # thick voxels: lumens >= 8 mm (segmentation_rules.json)
MIN_THICK_POOL_ML = rule("min_thick_pool_ml")  # peak bin of thick voxels (segmentation_rules.json)
CARTILAGE_MAX_HU = rule("calcium_hu")  # non-calcified cartilage is below the calcium threshold
# (Agatston 1990; segmentation_rules.json): where the scan's soft tissue reaches it, cartilage
# cannot be told from that tissue by density


def deep_tissue_sample(a: np.ndarray, body: np.ndarray, spacing_kji) -> tuple:
    """(f, the CT, the body and the spacing on the grid coarsened by ``f`` to <= 4 M voxels, its
    "deep" soft tissue: voxels between -100 and 300 HU at least 5 mm inside such tissue): the
    sample `enhanced_tissue_level` reads, built once where it is read twice (`bone_mask`)."""
    f = 1
    while a.size / f ** 3 > 4_000_000:
        f += 1
    ac = a[::f, ::f, ::f]
    sc = np.asarray(spacing_kji, float) * f
    bc = body[::f, ::f, ::f]
    soft = bc & (ac > -100) & (ac < 300)
    return f, ac, bc, sc, erode_mm(soft, 5.0, sc)


def enhanced_tissue_level(a: np.ndarray, body: np.ndarray, spacing_kji,
                          bone_hu: tuple[float, float] | None = None,
                          sup: int | None = None, bone: np.ndarray | None = None,
                          sample: tuple | None = None) -> float:
    """95th percentile (HU) of "deep" soft tissue: voxels between -100 and 300 HU at least
    5 mm inside such tissue (organ parenchyma, muscle, vessel lumen). With contrast, enhancing
    liver, spleen and kidneys (120-200 HU) touch the ribs and spine; the bone threshold must
    stay above them. Computed on a grid coarsened to <= 4 M voxels.

    bone_hu: (low, seed) HU of a first bone reading, with ``sup`` the superior axis: the
    level is then read on the deep tissue that is not bone, i.e. outside `bone_outline` (the
    voxels above ``low`` connected to voxels above ``seed``, with what they enclose in an axial
    slice and one ``COMMON_RESOLUTION_MM`` of partial volume around; or, given ``bone``, a bone
    mask [k, j, i], outside that mask so filled and grown). Why: cancellous bone
    (100-300 HU) is not soft tissue, yet it lies in the -100..300 HU range and a vertebral body
    is thicker than the 5 mm erosion; its share of the sample (~5 %) depends on the grid, and
    at ~5 % the 95th percentile lands in it (lung1: 89 HU at its native 0.57 x 0.57 x 5 mm, 129
    HU at 3 mm, which raised the bone threshold from 120 to 159 HU and lost a fifth of the
    ribs; outside the bone 60 HU on both). Enhanced organs beside bone (liver under the ribs,
    kidneys by the spine) are not bone and stay in the sample beyond that one voxel. When no
    deep tissue lies outside the bone, the reading on all of it is returned. ``sample``:
    `deep_tissue_sample` of the same ``a``, ``body`` and spacing, when the caller has it."""
    f, ac, bc, sc, deep = deep_tissue_sample(a, body, spacing_kji) if sample is None else sample
    if (bone_hu is not None or bone is not None) and deep.any():
        b = (bone[::f, ::f, ::f] if bone is not None
             else bone_outline(ac, bc, bone_hu[0], bone_hu[1], sc))
        if b.any():
            out = deep & ~dilate_mm(fill_holes_per_slice(b, sup), COMMON_RESOLUTION_MM, sc)
            if out.any():
                deep = out
    return float(np.percentile(ac[deep], 95)) if deep.any() else -1000.0


def bone_outline(a: np.ndarray, body: np.ndarray, low_hu: float, seed_hu: float,
                 spacing_kji) -> np.ndarray:
    """Boolean [k, j, i]: a first reading of where bone is, for reading the soft tissue's level
    away from it (`enhanced_tissue_level`, which fills it in every axial slice, for the cancellous
    bone and marrow that the cortex encloses, and grows it by one ``COMMON_RESOLUTION_MM``, the
    partial-volume skirt of bone at that resolution): the 26-connected components of body voxels
    above ``low_hu`` that hold at least ``MIN_SEED_CELLS`` common-resolution cells above
    ``seed_hu`` (cortex; the same hysteresis as `bone_mask`)."""
    sk = np.asarray(spacing_kji, float)
    lab, n, counts = components(body & (a > low_hu), connectivity=26)
    if n == 0:
        return np.zeros(a.shape, bool)
    nseed = np.bincount(lab[a > seed_hu], minlength=n + 1)
    keep = nseed >= MIN_SEED_CELLS * COMMON_RESOLUTION_MM ** 3 / float(np.prod(sk))
    keep[0] = False
    return keep[lab]


def contrast_blood_band(a: np.ndarray, body: np.ndarray, voxel_ml: float,
                        spacing_kji=None):
    """(lo, hi) HU band of an arterial-phase blood pool, or None.

    In a CT angiography the aorta, heart and pulmonary arteries form large uniform regions of
    150-700 HU that overlap trabecular bone; bone is then what is denser than the band or below
    it and connected to dense cortex. The pool is found as a histogram peak of the *thick*
    voxels of 150-700 HU (at least ``BLOOD_THICK_MM`` inside such tissue: lumens of >= 8 mm,
    the aorta is >= 20 mm, heart chambers more): cortical bone is thin and drops out, so the
    peak stands out even when the field of view holds only part of the pool (one hemithorax);
    thick trabecular bone of a non-contrast scan peaks at 200-250 HU, below
    ``MIN_BLOOD_PEAK_HU``. ``spacing_kji`` (mm) is needed for the thickness; without it the
    whole 150-700 HU histogram is used."""
    mid = body & (a > 150) & (a < 700)
    if not mid.any():
        return None
    min_peak_ml = MIN_BLOOD_POOL_ML
    if spacing_kji is not None:
        f = _thick_step(a.size)
        thick = erode_mm(mid[::f, ::f, ::f], BLOOD_THICK_MM, np.asarray(spacing_kji) * f)
        v = a[::f, ::f, ::f][thick]
        voxel_ml = voxel_ml * f ** 3
        min_peak_ml = MIN_THICK_POOL_ML
    else:
        v = a[mid]
    return _band_of(v, voxel_ml, min_peak_ml)


def _thick_step(size: int) -> int:
    """The step f of `contrast_blood_band`'s thick voxels: every f-th voxel along each axis, <= 4 M."""
    f = 1
    while size / f ** 3 > 4_000_000:
        f += 1
    return f


def contrast_blood_band_of_ct(raw: np.ndarray, spacing_kji, voxel_ml: float):
    """`contrast_blood_band` (every voxel the body, with ``spacing_kji``) of the CT ``raw`` (HU
    [k, j, i]) at the common resolution, to the bit, without blurring the whole CT: the band
    reads only every f-th voxel of the blurred CT along each axis (`_thick_step`), and those are
    taken from `at_common_resolution_every`, which blurs only the lines they depend on (the
    whole-CT pass and its float32 copy, ~0.1 CPU-s and 50 MB on lung1, were only to decide the
    contrast phase: issue 20)."""
    f = _thick_step(raw.size)
    return _band_on_samples(at_common_resolution_every(raw, spacing_kji, f), spacing_kji, f, voxel_ml)


def _band_on_samples(a: np.ndarray, spacing_kji, f: int, voxel_ml: float):
    """`contrast_blood_band` from the samples ``a`` (every f-th voxel of the blurred CT along each
    axis; ``spacing_kji`` and ``voxel_ml`` those of the CT): its thick 150-700 HU voxels' band."""
    mid = (a > 150) & (a < 700)
    if not mid.any():   # none on the samples: the whole CT's thick voxels were none either
        return None
    thick = erode_mm(mid, BLOOD_THICK_MM, np.asarray(spacing_kji, float) * f)
    return _band_of(a[thick], voxel_ml * f ** 3, MIN_THICK_POOL_ML)


def _band_of(v: np.ndarray, voxel_ml: float, min_peak_ml: float):
    """`contrast_blood_band` from its voxels' HU ``v``, each of ``voxel_ml``."""
    if v.size == 0:
        return None
    h, e = np.histogram(v, bins=np.arange(150, 711, 20))
    h = h * voxel_ml
    # a local maximum (the soft-tissue / bone tail decreases monotonically from 150 HU)
    peaks = np.nonzero((h[1:-1] > h[:-2]) & (h[1:-1] >= h[2:]))[0] + 1
    if peaks.size == 0:
        return None
    centre = 0.5 * (e[:-1] + e[1:])
    # a blood pool is a mode: denser than arterial-phase organs (>= MIN_BLOOD_PEAK_HU), above the
    # tissue/bone tail 80 HU below it, and uniform: within 100 HU above it the count halves (a
    # plateau of thick trabecular bone of a non-contrast scan does not; a second, less enhanced
    # lumen (heart vs aorta) may raise the count again further up)
    ok = [int(i) for i in peaks
          if h[i] >= min_peak_ml and h[i] >= 1.5 * h[max(i - 4, 0)]
          and centre[i] >= MIN_BLOOD_PEAK_HU and h[i + 1:i + 6].min() <= 0.5 * h[i]]
    if not ok:
        return None
    i = max(ok, key=lambda j: h[j])
    peak = centre[i]
    half = h[i] / 2
    lo_i = i
    while lo_i > 0 and h[lo_i] > half:
        lo_i -= 1
    hi_i = i
    while hi_i < len(h) - 1 and h[hi_i] > half:
        hi_i += 1
    width = max(peak - e[lo_i], e[hi_i + 1] - peak, 40.0)
    return peak - 1.5 * width, peak + 1.5 * width


def coarse_grid_note(ct: Volume) -> str:
    """'' or why bone labels (and a needle plan's CT density check) may miss thin bone on this
    grid: its in-plane voxels (the two axes other than the superior one) coarser than
    ``COMMON_RESOLUTION_MM``, the resolution the bone rules are built for. Cortex thinner than
    about twice the resolution reads below bone density by partial volume (Prevrhal 1999, in
    segmentation_rules.json bone_common_resolution_mm), so at 4-5 mm ribs and vertebrae are
    largely lost (new-user trial 29: the chest CTA at 5 mm, vertebrae 330 -> 10 mL, ribs 226 ->
    19 mL, needle proposals across ribs, without a word)."""
    inplane = inplane_spacing_mm(ct)
    if inplane <= COMMON_RESOLUTION_MM + 0.05:
        return ""
    return (f"the CT's in-plane voxels are {inplane:.2g} mm, coarser than the {COMMON_RESOLUTION_MM:g} mm the "
            "bone rules are built for: thin bone (ribs, vertebral cortex) reads below bone density by partial "
            "volume and is partly missed by the bone labels and by a CT density check; use a CT reconstructed "
            f"at {COMMON_RESOLUTION_MM:g} mm or finer")


def thin_bone_note(resolution_mm, thin_low_hu: float, low_hu: float, tissue_hu: float) -> str:
    """'' or why ribs (and other thin bone) are underestimated on this grid: the scan's effective
    resolution ``resolution_mm`` (mm per axis) is blurrier than ``COMMON_RESOLUTION_MM`` by more
    than a tenth of a thin object's peak (`thin_peak_factor` < 0.9), and the bone threshold in
    use, ``low_hu`` (raised by enhanced tissue at ``tissue_hu`` or a CT angiography's floor), is
    above ``thin_low_hu``, where trabecular bone's lower bound reads in a thin bone on this grid.

    Why: partial volume lowers a thin object's contrast in proportion to its width over the
    resolution (Prevrhal S, Engelke K, Kalender WA, Phys Med Biol 1999;44:751-764; Treece GM et
    al., Med Image Anal 2010;14:276-290); the seed and low thresholds follow it (`bone_mask`), but
    not below the enhanced tissue, which is thick and keeps its density on any grid: a rib blurred
    below that level cannot be told from it by density (the chest CTA at 3 mm: ribs 158 mL against
    226 mL at its native 1.5 mm, new-user trial 40 H4). The expected shortfall is the share of a
    thin rib's contrast the blur takes, 1 - factor."""
    f = thin_peak_factor(resolution_mm)
    if f >= 0.9 or low_hu <= thin_low_hu + 1.0:
        return ""
    w = " x ".join(f"{x:.1f}" for x in np.asarray(resolution_mm, float))
    return (f"ribs underestimated, by roughly {1 - f:.0%} of their volume (thin cortex of other bone too): the CT's "
            f"effective resolution ({w} mm, read from its noise) is coarser than the {COMMON_RESOLUTION_MM:g} mm "
            f"the bone rules are built for, so a thin rib reads at {f:.0%} of its contrast there and partly below "
            f"the bone threshold of {low_hu:.0f} HU, which the scan's enhanced tissue ({tissue_hu:.0f} HU) or contrast keeps "
            f"above the {thin_low_hu:.0f} HU a rib's trabecular bone reads at; use thinner sections or a "
            f"sharper reconstruction kernel (a resolution of {COMMON_RESOLUTION_MM:g} mm or finer by its noise)")


def bone_mask(ct: Volume, body: np.ndarray | None = None, low_hu: float = BONE_LOW_HU,
              seed_hu: float = BONE_SEED_HU, lungs: np.ndarray | None = None,
              progress=None, midline: float | None = None,
              lung_field: bool = False, info: dict | None = None) -> np.ndarray:
    """Boolean [k, j, i] mask of all bone (cortical + trabecular + marrow).

    lungs: optional lung mask (with its vessels) excluded from the candidates (contrast-filled
    pulmonary vessels reach bone HU; no bone lies inside the lung).
    lung_field: the field of view lies inside a lung (`body.lung_field_air`): thick pieces with
    no cortex, homogeneous as the lung's noise, are contrast-filled vessels, not bone
    (`bone_shell.uncortexed_lumens`).
    info: optional dict, given "thin_bone_note" (`thin_bone_note`: '' or why thin bone is
    underestimated on this grid), "low_hu" (float, HU: the bone threshold in use, raised
    above ``low_hu`` by enhanced tissue or a blood pool; `uncortexed_organ` reads it) and, on a
    CT angiography blurrier than the common resolution, "edge" (bool [k, j, i]: the voxels of
    the returned mask that are only thin bone's blurred edge, for `split_bones`' ``edge``); on a
    CT angiography of the chest with a vein of undiluted contrast joined to the pool,
    "undiluted_vessel" (bool [k, j, i]: that vein's whole lumen denser than the pool's band,
    `bone_shell.undiluted_lumen`, its thick trunk included; never a candidate for bone) and
    "undiluted" (its part beyond the pool's removal: `without_lumen_rim`, `undiluted_note`)."""
    p = as_progress(progress)
    raw = check_ct(ct)
    if info is not None:
        info.pop("edge", None)   # (a dict used before: only this call's edge and notes)
        info.pop("notes", None)
        info.pop("undiluted", None)
        info.pop("undiluted_vessel", None)
        info.pop("thick_slice_lumen", None)
    res = effective_resolution_mm(raw, ct.spacing_kji)
    a = at_common_resolution(raw, ct.spacing_kji, res)
    p(0.0, "bones: threshold")
    sup = anatomical_axes(ct)["S"][0]
    band = contrast_blood_band(a, body if body is not None else np.ones(a.shape, bool),
                               ct.voxel_volume_ml, ct.spacing_kji)
    tissue = SOFT_TISSUE_HU
    densest = tissue   # the densest deep tissue, organs beside bone included (the rim's floor)
    # trabecular bone's lower bound as a thin bone (a rib: 0.5-2 mm cortex around marrow) shows
    # it on this grid: its contrast over soft tissue falls as the seed's does (`thin_peak_factor`)
    thin_bone_hu = tissue + thin_peak_factor(res) * (low_hu - tissue)
    if body is not None:
        sample = deep_tissue_sample(a, body, ct.spacing_kji)
        enhanced = enhanced_tissue_level(a, body, ct.spacing_kji, sample=sample)
        densest = max(tissue, enhanced)
        if band is None:
            # read again away from the bone that this level shows (cancellous bone is not soft
            # tissue; `enhanced_tissue_level`). Not on a CT angiography: there the sample's top
            # is the blood pool's partial-volume rim, which touches bone (aorta on the spine) and
            # must stay in it; the pool's own band is handled below
            enhanced = enhanced_tissue_level(
                a, body, ct.spacing_kji, sup=sup, sample=sample,
                bone_hu=(max(low_hu, enhanced + ORGAN_MARGIN_HU),
                         densest + thin_peak_factor(res) * (seed_hu - densest)))
        tissue = max(tissue, enhanced)
    # the threshold of thick bone, and the one of thin bone, which is the same on a scan at or
    # finer than the common resolution
    low_hu, thin_low = max(low_hu, tissue + ORGAN_MARGIN_HU), max(thin_bone_hu, tissue + ORGAN_MARGIN_HU)
    # a scan blurrier than the common resolution shows thin cortex at a lower peak
    seed_hu = tissue + thin_peak_factor(res) * (seed_hu - tissue)
    cand = a > low_hu
    if body is not None:
        cand &= body
    if lungs is not None:
        cand &= ~lungs
    blood = joined = None
    undiluted = np.zeros(a.shape, bool)   # `bone_shell.undiluted_lumen`, below
    if band is not None:
        # arterial contrast: drop the blood pool and its partial-volume rim from the candidates
        blood = (a >= pool_low_hu(band, tissue)) & (a <= band[1]) & cand
        # an opening thinner than a voxel does nothing: at least one voxel, so that only the thick
        # pool (aorta, heart: >= 20 mm) is dropped, not band-HU trabecular bone of ribs and spine
        # (the same core as `contrast_blood_pool`: a band-density speck of trabecular bone in a
        # vertebral body that survives the opening is not a pool, and its rim would eat the body)
        r_open = pool_open_radius_mm(ct.spacing_kji)
        dense = cand & (a >= pool_low_hu(band, tissue))  # the pool and anything denser
        core = pool_core(blood, ct.spacing_kji, ct.voxel_volume_ml, dense, pool_mediastinum(ct, lungs))
        blood = dilate_mm(core, r_open + BLOOD_RIM_MM, ct.spacing_kji)
        # enhanced blood below the pool's band joined to its core through thick lumen (a dissected
        # aorta's false lumen, 200-330 HU, with the true lumen's crescent: `lumen.joined_lumen`;
        # at 3 mm it was labelled 'vertebrae', issue 14); cancellous bone enclosed by cortex
        # (denser than the pool) in an axial slice is walled off from it
        free = body.copy() if body is not None else np.ones(a.shape, bool)
        if lungs is not None:
            free &= ~lungs
        joined = joined_lumen(a, free, core, ct.spacing_kji, band[1],
                              walled=fill_holes_per_slice(free & (a > band[1]), sup)) & ~blood
        blood |= joined
        free = None
        # undiluted contrast (> the band: right atrium, venae cavae) inside a thick lumen joined
        # to the pool is contrast, not cortex: tissue at or above the pool's density that holds a
        # ball of BLOOD_THICK_MM (lumens >= 8 mm; rib and vertebral cortex is 0.5-2 mm) and
        # touches the pool's core. Only in the chest, between the lungs: at least half of it
        # inside the lungs' bounding box (the right atrium and the venae cavae lie in the
        # mediastinum, Gray's Anatomy; a long bone's shaft cortex is 4-8 mm thick and can hold
        # the ball: the femur of a thigh, the humerus lateral to the chest wall)
        if lungs is not None and lungs.any():
            dl, dn, dc = components(open_mm(dense, max(BLOOD_THICK_MM,
                                                       1.01 * float(np.max(ct.spacing_kji))),
                                            ct.spacing_kji), connectivity=26)
            box = np.zeros(a.shape, bool)
            box[ndimage.find_objects(lungs.astype(np.uint8))[0]] = True
            with_core = np.zeros(dn + 1, bool)
            with_core[dl[core]] = True
            with_core &= np.bincount(dl[box], minlength=dn + 1) >= 0.5 * dc
            with_core[0] = False
            blood |= with_core[dl]
            # that lumen followed into its thinner branches, where it is denser than the pool
            # (undiluted contrast in the vein of the injection side: `bone_shell.undiluted_lumen`);
            # it is not bone, and where it touches bone it does not join it to the lumen's edge
            above = cand & (a > band[1])
            trunk = with_core[dl] & open_mm(above, max(BLOOD_THICK_MM, 1.01 * float(np.max(ct.spacing_kji))),
                                            ct.spacing_kji)
            dl = box = None   # (a full-volume uint32 map: not held through the labelling below)
            undiluted = bone_shell.undiluted_lumen(above, trunk, ct.spacing_kji, 0.5 * COMMON_RESOLUTION_MM)
            if info is not None and undiluted.any():
                # the whole vein of undiluted contrast, its thick trunk (superior vena cava,
                # brachiocephalic vein, the right atrium's swirls) included: great_vessels in
                # `rules.segment_masks` (`blood_pool.undiluted_vessel`)
                info["undiluted_vessel"] = undiluted.copy()
            undiluted &= ~blood
            blood |= undiluted
            if info is not None and 1.01 * float(np.max(ct.spacing_kji)) > \
                    max(0.5 * COMMON_RESOLUTION_MM, 1.01 * float(np.min(ct.spacing_kji))):
                # thick slices: the ball above is one slice thick and may not fit the vein across
                # them; what a ball of one in-plane voxel follows beyond it is warned of, not
                # removed (`bone_shell.undiluted_lumen`'s ``finest``; `thick_slice_note`)
                along = bone_shell.undiluted_lumen(above, trunk, ct.spacing_kji,
                                                   0.5 * COMMON_RESOLUTION_MM, finest=True) & ~blood
                if along.any():
                    info["thick_slice_lumen"] = along
                along = None
            above = trunk = None
        dense = core = None
        cand &= a > CONTRAST_LOW_HU
        # the joined lumen's voxels that were candidates: the vessel that its thinner branches
        # (beyond the opening's ball) belong to, judged with it below
        joined &= cand
        cand &= ~blood
        seed_hu = max(seed_hu, band[1])
    if info is not None:
        info["low_hu"] = float(low_hu)
        info["thin_bone_note"] = thin_bone_note(res, thin_bone_hu, thin_low if band is None else
                                                max(thin_low, CONTRAST_LOW_HU), tissue)
    if not cand.any():
        return cand
    seeds = a > seed_hu
    native = native_cortex_seeds(raw, a, body, ct) if band is not None else None
    if band is not None and lungs is not None and lungs.any() and midline is None:
        from .lungs import midline_or_lungs_centre, midline_x
        midline = midline_or_lungs_centre(ct, midline_x(ct, body)[0], lungs)

    def kept(mask):
        """The voxels of ``mask`` in its 26-connected components that are bone by their seeds."""
        lab, n, counts = components(mask, connectivity=26)
        nseed = np.bincount(lab[seeds], minlength=n + 1)
        # vessels with contrast can exceed seed_hu in places: require a share of dense voxels, and
        # at least MIN_SEED_CELLS samples of the common resolution (a speck of noise is smaller)
        min_seeds = np.maximum(MIN_SEED_CELLS * COMMON_RESOLUTION_MM ** 3 / (ct.voxel_volume_ml * 1000.0),
                               MIN_SEED_SHARE * counts)
        keep = nseed >= min_seeds
        if band is not None:
            # thin cortex blurred into the band: dense on the native image, and not a lumen (a
            # vessel beyond the pool's opening is at pool density over most of it: more than half
            # its voxels within the pool's band or denser; a rib is cortex around marrow below the
            # pool). Not above the pool's half-maximum (`pool_low_hu`): dense cancellous bone
            # (sternum, scapula, 250-330 HU) straddles it and it moves with the deep-tissue level,
            # so whole bones came and went with the grid (issue 14: LIDC-IDRI-0001, three pieces of
            # 3-4 mL with 42-61 % of their voxels above it at 0.70 x 0.70 x 2.5 mm and 55-78 % at
            # 3 mm; 6-13 % and 17-39 % of them within the band)
            not_lumen = np.bincount(lab[a >= band[0]], minlength=n + 1) < 0.5 * counts
            if native.any():
                nnat = np.bincount(lab[native], minlength=n + 1)
                keep |= (nnat >= min_seeds) & not_lumen
            if lungs is not None and lungs.any():
                # a rib cut from its dense part by the field of view, or, on a scan blurrier than
                # the common resolution, any rib whose cortex the blur took below the band (see
                # cut_chest_wall_pieces)
                keep |= not_lumen & cut_chest_wall_pieces(lab, n, counts, lungs, ct, midline,
                                                          cut_only=thin_peak_factor(res) >= 1.0)
        keep &= counts * ct.voxel_volume_ml >= MIN_BONE_ML
        keep[0] = False
        return keep[lab]

    m = kept(cand)
    if joined is not None and joined.any():
        # a vessel's branches too thin for the lumen's opening (4-7 mm: segmental pulmonary
        # arteries beside the descending aorta) are cut from their trunk when `joined_lumen` takes
        # the trunk out of the candidates; a cut branch is bone only if it is also bone as part of
        # its vessel, trunk included (the seed share of the whole vessel, as before the trunk was
        # taken out): alone, blood's noise tail above the band's top (~4 % of a lumen's voxels at
        # the pool's density: the top is 1.5 half-widths above the mode, `contrast_blood_band`)
        # passes ``MIN_SEED_SHARE`` (the chest CTA at 1.5 mm: a 4.6 mL branch beside the
        # descending aorta, median 471 HU, none above 650 HU, labelled 'bone', issue 14). Only
        # ever a refusal, never a keep: the union may bridge an organ through the lumen to the
        # skeleton (the chest CTA at 3 mm: 76 mL more 'bone', bridged through the abdominal aorta)
        m &= kept(cand | joined)
    cand = None
    seeds = native = joined = None
    if blood is not None and blood.any():
        # what the pool's removal leaves at its edge (undiluted contrast's partial-volume rim in
        # the right atrium and venae cavae) is not bone (`bone_shell.at_the_edge`)
        m &= ~bone_shell.at_the_edge(m, blood, COMMON_RESOLUTION_MM, ct.spacing_kji)
    # a contrast-filled vessel (its lumen at cancellous-bone density, with calcified plates in its
    # wall) is not enclosed by cortex as cancellous bone is (`bone_shell.lumens`); the shell is
    # what is denser than the half-maximum between the candidates' and the cortex seeds' levels.
    # Only where the scan resolves the cortex in the axial plane (finer than the common
    # resolution): at 3 mm the 0.2-0.8 mm cortex of a vertebral body blurs into its cancellous
    # bone (Prevrhal 1999) and no shell is seen around it (TotalSegmentator example at 3 mm)
    lumen = np.zeros(m.shape, bool)
    if np.all(np.delete(np.asarray(res, float), sup) < COMMON_RESOLUTION_MM):
        lumen = bone_shell.lumens(m, a, 0.5 * (low_hu + seed_hu), ct.spacing_kji, sup,
                                  COMMON_RESOLUTION_MM, raw, body if body is not None else raw > -300)
        if lung_field and lungs is not None and lungs.any():
            # inside a lung the view holds too little of the blood pool for its histogram mode,
            # so the cortex threshold stays below the pool and `lumens` sees the lumen as cortex
            # (fov5: the chest CTA's 80 mm cubes, a 24 mL right and an 18 mL left pulmonary artery
            # named bone and vertebrae): a lumen is then told by having no cortex at all
            lumen |= bone_shell.uncortexed_lumens(m & ~lumen, raw, a, lungs, ct.spacing_kji,
                                                  COMMON_RESOLUTION_MM)
        m &= ~lumen
    if blood is not None and not lung_field:
        # on a CT angiography the candidates' floor is ``CONTRAST_LOW_HU`` (organ vessels), not
        # ``low_hu``: a thin bone's edge blurred by a wider point spread peaks lower by the same
        # factor (`thin_peak_factor`, Prevrhal 1999), so the thin-bone edge below goes down to
        # that floor scaled as ``thin_low`` scales ``low_hu`` (never within the organs' margin)
        floor = max(low_hu, CONTRAST_LOW_HU)
        thin_low = max(tissue + thin_peak_factor(res) * (floor - tissue), tissue + ORGAN_MARGIN_HU)
        low_hu_edge = floor
    else:
        low_hu_edge = low_hu
    if thin_low < low_hu_edge and (blood is None or not lung_field):
        # (on a CT angiography the pool and its rim are no bone: ``blood`` is kept out below; not
        # in a view inside a lung, where the view's floor holds, seg24)
        # thin bone (no ball of RIB_MAX_RADIUS_MM fits in it: ribs, processes) reads at a lower
        # contrast on a grid blurrier than the common resolution (`thin_peak_factor`), and its
        # edge with it: the voxels beside it along each blurrier axis, as far as half the blur
        # beyond the common resolution (and not beside thick bone, whose edge a blur does not
        # move at the threshold's level), are bone down to ``thin_low``
        r = np.ceil(np.maximum(np.asarray(res, float) - COMMON_RESOLUTION_MM, 0.0)
                    / (2.0 * np.asarray(ct.spacing_kji, float))).astype(int)
        box = np.ones(tuple(2 * r + 1), bool)
        thick = open_mm(m, RIB_MAX_RADIUS_MM, ct.spacing_kji)
        edge = (ndimage.binary_dilation(m & ~thick, box) & ~ndimage.binary_dilation(thick, box)
                & (a > thin_low) & ~m & ~lumen)
        if body is not None:
            edge &= body
        if blood is not None:
            edge &= ~blood
        if lungs is not None and lungs.any():
            # ribs lie on the pleura (``RIB_LUNG_MM``)
            edge &= ~lungs & dilate_mm(lungs, RIB_LUNG_MM, ct.spacing_kji)
        if blood is None:
            m |= edge
            edge = None
    else:
        edge = None
    p(0.6, "bones: marrow")
    # marrow: 2-D holes inside the cortex, per axial slice, that are bone-like (mean HU above
    # MARROW_MIN_HU: fatty/red marrow; the spinal canal (CSF, cord ~ 0-40 HU) stays open)
    holes = fill_holes_per_slice(m, sup) & ~m
    hl, hn = ndimage.label(holes, structure=plane_structure(sup))
    if hn:
        other = [i for i in range(3) if i != sup]
        hv = hl[holes]
        cnt = np.bincount(hv, minlength=hn + 1)
        mean = np.bincount(hv, weights=a[holes].astype(np.float64), minlength=hn + 1) / np.maximum(cnt, 1)
        area = cnt * float(np.prod(ct.spacing_kji[other]))
        fill = (mean > MARROW_MIN_HU) & (area < MAX_MARROW_MM2)
        fill[0] = False
        m |= fill[hl]
    holes = hl = hv = None   # (a full-volume int32 map: not held to the end, issue 20)
    # marrow of any density (fatty marrow is -100 to 0 HU): the cavity enclosed by cortex in at
    # least two of the three orthogonal planes (`bone_shell.two_plane_cavities`; the spinal canal
    # is enclosed in axial slices only). Size bound: a lumbar vertebral body (~45 x 35 x 28 mm)
    # holds ~35 mL, a femoral head (~48 mm across) ~58 mL.
    m |= bone_shell.two_plane_cavities(m, ct.voxel_volume_ml, MAX_MARROW_ML)
    rim_hu = (0.5 * (tissue + low_hu) if blood is not None
              else max(0.5 * (densest + low_hu), BONE_LOW_HU))
    if rim_hu < low_hu:
        # where the threshold was raised above trabecular bone's lower bound ``BONE_LOW_HU`` to keep
        # enhanced tissue out (organs: `enhanced_tissue_level` + ``ORGAN_MARGIN_HU``; a CT
        # angiography: the candidates' floor ``CONTRAST_LOW_HU``), the bone's partial-volume edge
        # below it is brought back within one common-resolution voxel of the bone found: down to
        # ``BONE_LOW_HU``, but not below the half maximum between the densest deep tissue (read on
        # all of it: organs beside bone are in that reading, and bone in it only raises it) and
        # the raised threshold, so that an organ touching bone stays out (the lumbar phantom's
        # enhanced organs: the level read outside bone is lower than theirs). Not on a scan whose threshold is
        # the bone's own (rim_hu = low_hu: nothing below it is half bone; module docstring)
        rim = dilate_mm(m, COMMON_RESOLUTION_MM, ct.spacing_kji) & ~m
        if body is not None:
            rim &= body
        if blood is not None:
            rim &= ~blood
        if blood is None or lung_field:
            rim &= a > rim_hu
        else:
            # on a CT angiography the floor is the half maximum between the bone and the tissue
            # beside each voxel (`edge_half_max_hu`), not one read on the whole view: that moved
            # with the crop (issue 14). Not in a view inside a lung (`lung_field`): the view's
            # floor is kept there (a lower one walled in a pulmonary artery in the chest CTA's
            # 80 mm left-lung cube, seg24; test_lung_small_fov)
            # its three float32 volumes come after the rules above have left free heap pages
            # behind (glibc keeps them resident): handed back first, issue 20 (the demo's peak)
            release_free_memory()
            rim &= a > edge_half_max_hu(a, m, blood, body, res, ct.spacing_kji)
        m |= rim
    if edge is not None:
        # on a CT angiography the thin-bone edge is added last: it is that bone's blurred edge,
        # not cortex that encloses marrow or that its partial-volume rim grows from; ``info``
        # names its voxels, so that `split_bones` attaches each to the one bone it surrounds
        edge &= ~m
        m |= edge
        if info is not None:
            info["edge"] = edge
        edge = None
    # marrow enclosed in 3-D but open in every axial slice (not the spinal canal: CSF/cord)
    voids = fill_holes_3d(m) & ~m
    if voids.any():
        vl, vn, vc = components(voids, connectivity=6)
        mean = np.bincount(vl[voids], weights=a[voids].astype(np.float64), minlength=vn + 1) / np.maximum(vc, 1)
        fill = mean > MARROW_MIN_HU
        fill[0] = False
        m |= fill[vl]
    voids = vl = None
    m &= ~lumen
    if body is not None and m.any():
        # objects on the skin (ECG electrodes, clips) are not bone (`on_the_skin`); a reformat's
        # padding and its blended rim (`body.measured_voxels`) end the field of view, not the body
        from .body import measured_voxels
        measured = measured_voxels(ct)
        skin, unsure = on_the_skin(m, body, ct.spacing_kji, None if measured is None else ~measured)
        m &= ~skin
        if info is not None:
            info.setdefault("notes", []).extend(skin_notes(ct, skin, unsure))
    if info is not None and undiluted.any():
        info["undiluted"] = undiluted   # (`without_lumen_rim`, `undiluted_note`: after the split)
    p(1.0, "bones: done")
    return m


SKIN_MM = rule("skin_max_thickness_mm")  # skin, with the partial volume of the air's edge
SUBCUTANEOUS_MM = rule("subcutaneous_probe_mm")  # under it the subcutaneous fat (segmentation_rules.json)


def on_the_skin(bone: np.ndarray, body: np.ndarray, spacing_kji,
                unseen: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(external, unsure): two bool [k, j, i] masks of 26-connected pieces of ``bone`` (bool
    [k, j, i]) that reach into the skin: some voxel within ``SKIN_MM`` (mm) of a voxel outside
    ``body`` (bool [k, j, i]; a face of the array is not outside: a crop cuts the body, it does not
    expose it; nor is ``unseen``, bool [k, j, i] or None: voxels no scan measured, a resampler's
    fill beyond its source's field of view and the rim it blends into, or the padding outside a
    reconstruction circle, `body.measured_voxels`: the end of the field of view inside the array;
    new-user trial 78, the chest CTA tilted 20 degrees: its upper sternum, cut by the fill, was
    left out as a 7.8 mL 'electrode'). ``external``: such a piece that lies wholly within
    ``SUBCUTANEOUS_MM`` of outside (an object on or in the skin and its blur: an ECG electrode, a
    clip, jewellery); ``unsure``: one that reaches the skin and also goes deeper (bone joined to
    such an object, or bone whose cover is thinner than the skin's reading), kept as bone.

    Why: every bone lies under the skin (epidermis and dermis, 1-3 mm) and the subcutaneous
    tissue (Gray's Anatomy, 42nd ed., "Skin and its appendages"; segmentation_rules.json
    skin_max_thickness_mm, subcutaneous_probe_mm), so no bone reaches into the skin layer; an
    object there that is as dense as cortex is outside the patient or on the skin. ECG skin
    electrodes (metal snaps, up to 3,000 HU, with streaks and blooming a few mm deep) are bone-dense
    (new-user trial 71: six on the chest CTA labelled bone, 0.4-2.4 mL, reaching 3.4-8.1 mm deep;
    its nearest bone lies 10.2 mm under the skin, the TotalSegmentator example's 13.4 mm)."""
    none = np.zeros(bone.shape, bool)
    inside = body if unseen is None else body | unseen
    if not bone.any() or inside.all():
        return none, none.copy()
    dv = _edt(inside, np.asarray(spacing_kji, float), black_border=False)[bone]   # depth, mm
    lab, n, _ = components(bone, connectivity=26)
    v = lab[bone]
    shallow = np.full(n + 1, np.inf)
    np.minimum.at(shallow, v, dv)
    deep = np.zeros(n + 1)
    np.maximum.at(deep, v, dv)
    reach = shallow <= SKIN_MM
    reach[0] = False
    ext = reach & (deep <= SUBCUTANEOUS_MM)
    return ext[lab], (reach & ~ext)[lab]


def pieces_text(ct: Volume, mask: np.ndarray, top: int = 6) -> tuple[int, str]:
    """(count, "V mL at RAS [r, a, s]; ...") of the 26-connected pieces of ``mask`` (bool
    [k, j, i] on ``ct``'s grid): their number and the volume (mL) and centre (world RAS, mm,
    rounded) of the ``top`` largest, largest first."""
    from .common import mean_ras

    lab, n, cnt = components(mask, connectivity=26)
    return n, "; ".join(f"{c * ct.voxel_volume_ml:.1f} mL at RAS "
                        f"{np.round(mean_ras(ct, lab == i), 0).astype(int).tolist()}"
                        for i, c in sorted(enumerate(cnt[1:], 1), key=lambda t: -t[1])[:top])


def skin_notes(ct: Volume, external: np.ndarray, unsure: np.ndarray) -> list[str]:
    """The sentences (list of str) that `bone_mask` warns with for `on_the_skin`'s masks (bool
    [k, j, i]): what was left out of bone, and what reaches the skin but was kept."""
    out = []
    if external.any():
        n, where = pieces_text(ct, external)
        out.append(f"{n} dense object(s) on the skin ({where}{'; ...' if n > 6 else ''}) are not labelled bone: "
                   f"they reach within {SKIN_MM:g} mm of the outside air and no deeper than {SUBCUTANEOUS_MM:g} mm "
                   "(ECG electrodes, clips: no bone lies in the skin); they are left unlabelled")
    if unsure.any():
        n, where = pieces_text(ct, unsure)
        out.append(f"{n} bone piece(s) reach within {SKIN_MM:g} mm of the outside air ({where}): bone lies "
                   "under the skin, so an object on the skin (an ECG electrode) may be joined to them and "
                   "labelled bone; check them on the images")
    return out


def without_lumen_rim(parts: dict[str, np.ndarray], lumen: np.ndarray, spacing_kji) -> dict[str, np.ndarray]:
    """``parts`` (name -> bool [k, j, i]: `split_bones`' labels) without their 26-connected pieces
    that are the partial-volume rim of ``lumen`` (bool [k, j, i]: `bone_shell.undiluted_lumen`): at
    least half of a piece's voxels within ``BLOOD_RIM_MM`` of it (`bone_shell.at_the_edge`, the pool's
    own rim width). Why after the split: the rim of contrast blurred from > 1,000 HU (with its
    streaks) joins the first rib or the clavicle it lies on into one piece of the whole bone mask,
    and is a piece of its own only per label (the chest CTA: a 7.1 mL 'bone' piece around the
    axillary vein's branches, 62 % of it within 4 mm of the lumen, median 301 HU). Returns a new dict."""
    return {n: m & ~bone_shell.at_the_edge(m, lumen, BLOOD_RIM_MM, spacing_kji) if m.any() else m
            for n, m in parts.items()}


def vein_in_mediastinum(ct: Volume, parts: dict[str, np.ndarray], lumen: np.ndarray,
                        lungs: np.ndarray, hull: np.ndarray | None = None) -> np.ndarray:
    """Boolean [k, j, i]: the voxels of ``parts["bone"]`` (`split_bones`' labels, bool [k, j, i]
    each, on ``ct``'s grid) that are the wall and branches of the undiluted-contrast vein
    ``lumen`` (bool [k, j, i]: `bone_mask`'s ``info["undiluted_vessel"]``), not bone: the
    26-connected pieces of 'bone' inside the mediastinum (`bone_shell.mediastinum_region` of
    ``lungs``, bool [k, j, i], as `bone_shell.mediastinal_pieces` reads it), more than one voxel
    (at least one common-resolution voxel) from the skeleton (the vertebrae, the ribs and the
    'bone' outside the mediastinum), that come within ``BLOOD_RIM_MM`` (the pool's partial-volume
    rim) of the lumen. A piece that runs on out of the mediastinum keeps that part, and the voxel
    next to it, as bone.

    Why: the mediastinum holds no bone (Gray's Anatomy, 42nd ed., "Mediastinum"; its bony borders
    are the sternum in front and the vertebral column behind), and the superior vena cava and the
    azygos arch on the injection side fill with undiluted contrast (Bae KT, Radiology
    2010;256:32-61), whose partial-volume rim and streaks read as dense as cortex. Where such a
    piece is joined, outside the mediastinum, to a dense piece that reaches the thoracic inlet, it
    is not a piece of its own for `mediastinal_pieces` nor a thin shell for `without_lumen_rim`
    (the chest CTA, fresh-user trial 78: 2.1 mL of the superior vena cava's wall and the azygos
    arch, median 351 HU, max 2,316 HU, labelled 'bone' 8 mm from a lung target). The vertebrae and
    ribs are never taken (the sternum, in 'bone', only where it comes within the rim of the
    lumen deep inside the lungs' hull). ``hull``: as for `split_bones` (not modified)."""
    out = np.zeros(lumen.shape, bool)
    bone = parts.get("bone")
    if bone is None or not bone.any() or not lumen.any() or lungs is None or not lungs.any():
        return out
    sk = np.asarray(ct.spacing_kji, float)
    spine = parts.get("vertebrae")
    deep = bone_shell.mediastinum_region(lungs, anatomical_axes(ct)["S"][0], sk, COMMON_RESOLUTION_MM,
                                         spine, ras_ramp(ct, 1), mediastinum_behind_vertebra_mm(), hull)
    # the skeleton: the vertebrae, the ribs and the bone outside the mediastinum
    skeleton = bone & ~deep
    for n in ("vertebrae", "ribs"):
        if parts.get(n) is not None:
            skeleton |= parts[n]
    cand = bone & deep
    if skeleton.any():
        # one voxel of the grid (on thick slices a voxel beside a rib holds part of it), at least
        # one common-resolution voxel
        cand &= ~dilate_mm(skeleton, max(COMMON_RESOLUTION_MM, float(sk.max())), sk)
    if not cand.any():
        return out
    rl, rn, _ = components(cand, connectivity=26)
    hit = np.zeros(rn + 1, bool)
    hit[np.unique(rl[cand & dilate_mm(lumen, BLOOD_RIM_MM, sk)])] = True
    hit[0] = False
    return hit[rl]


def undiluted_note(ct: Volume, lumen: np.ndarray, bone: np.ndarray, vessel: bool = False) -> str:
    """The sentence `bone_mask` warns with for the undiluted-contrast lumen it left out of bone
    (``lumen``, bool [k, j, i]: `bone_shell.undiluted_lumen`), naming the bone (``bone``, bool
    [k, j, i]) within one common-resolution voxel of it, where the boundary between them is the
    lumen's opening and may be off by that voxel. ``vessel``: the lumen is labelled great_vessels
    (`blood_pool.undiluted_vessel`: the vessels were asked for too); else it stays unlabelled."""
    from .common import mean_ras

    ml = ct.voxel_volume_ml
    near = bone & dilate_mm(lumen, COMMON_RESOLUTION_MM, ct.spacing_kji)
    s = (f"{lumen.sum() * ml:.1f} mL of contrast denser than the blood pool, continuous with it through a "
         f"thick lumen (centre RAS {np.round(mean_ras(ct, lumen), 0).astype(int).tolist()}: a vein of the "
         "injection side with undiluted contrast), is not labelled bone" +
         ("; it is labelled great_vessels with its partial-volume rim (a vessel: keep a needle out)" if vessel else
          "; it is left unlabelled (ask for 'vessels' too to label it great_vessels), yet a vessel: keep a "
          "needle out"))
    if near.any():
        s += (f"; {near.sum() * ml:.1f} mL of bone lies within {COMMON_RESOLUTION_MM:g} mm of it, where that vein "
              "touches bone (the first rib, clavicle, scapula): the boundary there may be off by a voxel; check "
              "it on the images before a needle passes near it")
    step = 1.01 * float(np.max(ct.spacing_kji))
    if float(np.max(ct.spacing_kji)) > 0.5 * COMMON_RESOLUTION_MM:
        # `bone_shell.undiluted_lumen`'s ball holds at least one voxel: on a coarser grid the
        # vein's thinner branches are not followed
        s += (f"; on this grid ({np.max(ct.spacing_kji):.1f} mm voxels) its branches thinner than about "
              f"{2 * step:.0f} mm are not followed and may still be labelled bone")
    return s


def thick_slice_note(ct: Volume, along: np.ndarray, bone: np.ndarray) -> str | None:
    """The sentence `rules` warns with on a grid of thick slices for the bone-labelled tissue
    (``bone``, bool [k, j, i]: the final bone labels) that lies in ``along`` (bool [k, j, i]: the
    undiluted-contrast lumen that a ball of one in-plane voxel follows beyond the lumen found,
    `bone_shell.undiluted_lumen` with ``finest``), naming its pieces (count, mL, RAS); None when
    none. Not removed: that ball also follows rib and clavicle cortex the vein lies on, so the
    pieces may be bone or vein (the chest CTA at 1.5 x 1.5 x 5 mm: 12.9 mL of its right
    subclavian/brachiocephalic vein labelled bone, 9.2 mL of it in one 'bone' piece)."""
    suspect = along & bone
    if not suspect.any():
        return None
    n, where = pieces_text(ct, suspect)
    return (f"{suspect.sum() * ct.voxel_volume_ml:.1f} mL of tissue labelled bone ({n} piece(s): {where}"
            f"{'; ...' if n > 6 else ''}) is continuous, through tissue denser than the blood pool, with "
            f"the undiluted contrast of a vein joined to the pool: at {np.max(ct.spacing_kji):.1f} mm slices "
            "the vein cannot be told from the cortex it lies on, so it may be a vein with undiluted contrast "
            "labelled bone; check the superior vena cava, brachiocephalic, subclavian and axillary veins on "
            "the side of the injection on the images before a needle passes near them, or use thin slices "
            f"(<= {COMMON_RESOLUTION_MM:g} mm)")


EDGE_TISSUE_MM = 10.0  # half-width of the box the soft tissue beside bone is read in (`edge_half_max_hu`)


def edge_half_max_hu(a: np.ndarray, bone: np.ndarray, blood: np.ndarray, body: np.ndarray | None,
                     resolution_mm, spacing_kji) -> np.ndarray:
    """Float32 [k, j, i] (HU): per voxel, the floor of the bone's partial-volume edge on a CT
    angiography: T + q (B - T), the half maximum (q = 1/2) between the soft tissue T and the bone
    B beside the voxel on a scan at or finer than ``COMMON_RESOLUTION_MM``, never below
    trabecular bone's lower bound ``BONE_LOW_HU``; +inf (no edge) where T or B is missing.

    B: the densest voxel of ``bone`` within one resolution width of the voxel along each axis (a
    box of half-width max(``COMMON_RESOLUTION_MM``, ``resolution_mm``) mm per axis: the distance
    over which a blurred edge rises to the bone's peak). T: the mean of the soft tissue (0-300
    HU, inside ``body``, not ``bone`` grown by one common-resolution voxel, not ``blood``) within
    ``EDGE_TISSUE_MM`` of the voxel. Box half-widths are the whole voxels nearest to those
    distances, so each box has the same size in mm on any grid. q = 2^-(f^2), f =
    `thin_peak_factor` (1 at or finer than the common resolution, so q = 1/2). ``a``: the
    common-resolution CT [k, j, i] (HU); masks bool [k, j, i] of its shape; ``resolution_mm``
    (`resolution.effective_resolution_mm`) and ``spacing_kji`` in mm per axis [k, j, i].

    Why: a voxel across an edge between tissue T and bone B is at least half bone when it reads
    above (T + B) / 2: the half-maximum (full width at half maximum) edge rule, read on the
    local peak and background (Hangartner TN, Thresholding technique for accurate analysis of
    density and geometry in QCT, pQCT and microCT images, J Musculoskelet Neuronal Interact
    2007;7:9-16). Both levels are read beside the bone, in boxes of fixed size in mm, so the
    floor is the same in any crop: the whole view's deep-tissue percentile, used before, follows
    which enhanced tissue the view holds (the chest CTA 158 HU whole, 93 HU its upper half: 132
    mL more bone in the half, issue 14). Dense cortex's edge is at its own half maximum, far
    above the candidates' floor, so no skirt of mostly-soft-tissue voxels is taken that would
    widen with the blur (a fixed floor of about (T + 200) / 2 gave the ribs 10 % more volume at
    1.5 mm than on 1.5 x 1.5 x 5 mm slices, seg24). On a scan blurrier than the common resolution
    a thin bone (a rib: its cortex is thinner than the blur) reads at a peak lowered by f and
    widened by 1 / f (Prevrhal S, Engelke K, Kalender WA, Phys Med Biol 1999;44:751-764); for a
    Gaussian profile the edge that the half maximum gives at the common resolution lies at the
    fraction 2^-(f^2) of the blurred peak, so the floor follows it and the ribs' edge does not
    widen with the blur (the chest CTA on the 3 mm corner-aligned grid, effective 3.8 x 3.2 x 3.6
    mm: the lowest rib piece's median 236 HU with q = 1/2, 246 HU with it; the 1.5 mm run's
    lowest 287 HU). For thick bone (a step edge) the half maximum holds at any blur, so there q
    is slightly high on a blurry scan (not seen on the chest CTA: its thick bone's peak keeps
    the floor above the candidates' anyway)."""
    sk = np.asarray(spacing_kji, float)
    soft = (a >= 0) & (a <= 300) & ~blood & ~dilate_mm(bone, COMMON_RESOLUTION_MM, sk)
    if body is not None:
        soft &= body
    # box half-widths: the whole voxels nearest to the distance in mm (at least one), so that
    # the box is the same physical size on any grid (a ceiling doubled it at 3.2 mm / 3 mm)
    size = tuple(2 * max(1, int(round(EDGE_TISSUE_MM / s))) + 1 for s in sk)
    # float32 throughout, each filter run in place (scipy's separable filters run their later
    # axes in place too) and each array dropped when done (issue 20: this step made the demo's
    # peak): the same values as T / max(W, 1e-3) + q (B - T) computed into new arrays
    w = soft.astype(np.float32)
    ndimage.uniform_filter(w, size, mode="constant", output=w)
    t = np.where(soft, a, np.float32(0.0)).astype(np.float32, copy=False)
    soft = None
    ndimage.uniform_filter(t, size, mode="constant", output=t)
    ok = w > 1e-3
    t /= np.maximum(w, np.float32(1e-3), out=w)   # T, the soft tissue's mean
    w = None
    reach = np.maximum(np.asarray(resolution_mm, float), COMMON_RESOLUTION_MM)
    bsize = tuple(2 * max(1, int(round(r / s))) + 1 for r, s in zip(reach, sk))
    b = np.where(bone, a, np.float32(-1024.0)).astype(np.float32, copy=False)
    for axis, n in enumerate(bsize):   # `ndimage.maximum_filter`'s passes, in place
        ndimage.maximum_filter1d(b, n, axis, output=b, mode="constant", cval=-1024.0)
    ok &= b > -1024.0
    b -= t
    b *= np.float32(2.0 ** -(thin_peak_factor(resolution_mm) ** 2))
    t += b                                         # T + q (B - T)
    b = None
    np.maximum(t, np.float32(BONE_LOW_HU), out=t)
    t[~ok] = np.inf
    return t


def cut_chest_wall_pieces(lab: np.ndarray, n: int, counts: np.ndarray, lungs: np.ndarray,
                          ct: Volume, midline: float, cut_only: bool = True) -> np.ndarray:
    """Boolean [n + 1] per label of ``lab`` (bone candidates [k, j, i], ``counts`` voxels each):
    True for a piece of rib cut by the field of view, i.e. a component that

    - touches a face of the volume (the field of view cuts it: its costovertebral joint and
      dense cortex may lie outside the view); with ``cut_only=False`` (a scan blurrier than the
      common resolution) any component, cut or not: there the blur takes a rib's whole cortex
      into or below the pool's band (`thin_peak_factor`; the chest CTA at 3 mm isotropic: rib
      segments of 1-6 mL peaking at 230-335 HU against a band of 405-555 HU, 1.5 mm native
      their cortex above it), so a rib is told from contrast only by these rules,
    - is thin like a rib (no ball of ``RIB_MAX_RADIUS_MM`` fits in it: ``split_bones``' rule),
    - lies on the pleura: at least half of it within ``RIB_LUNG_MM`` of ``lungs`` (``split_bones``'
      rib rule), and
    - lies in the chest wall, outside the lungs, not in the mediastinum or the neck: at least
      half of its voxels `outside_the_lungs` (``midline``: the patient's, RAS x mm).

    Why: on a CT angiography a thin rib's cortex can stay inside the blood pool's HU band even at
    1.5 mm (max 422-696 HU on the chest CTA), so density cannot tell it from contrast and such a
    rib is bone only through its connection to the spine or to denser parts; a field of view
    (half the z range, a small in-plane FOV) cuts that connection. `bone_mask` adds these pieces
    only if they are not a lumen (less than half at pool density)."""
    keep = np.zeros(n + 1, bool)
    face = np.zeros(lab.shape, bool)
    for ax in range(3):
        idx = [slice(None)] * 3
        idx[ax] = [0, -1]
        face[tuple(idx)] = True
    cut = np.bincount(lab[face], minlength=n + 1) > 0 if cut_only else np.ones(n + 1, bool)
    cut[0] = False
    if not cut.any():
        return keep
    sk = ct.spacing_kji
    near = dilate_mm(lungs, RIB_LUNG_MM, sk) & ~lungs
    cand = cut & (np.bincount(lab[near], minlength=n + 1) >= 0.5 * counts)
    if not cand.any():
        return keep
    m = cand[lab]
    thick = open_mm(m, RIB_MAX_RADIUS_MM, sk)
    cand &= np.bincount(lab[thick], minlength=n + 1) == 0
    m &= cand[lab]
    if not m.any():
        return keep
    nout = np.bincount(lab[m][outside_the_lungs(m, lungs, ct, midline)], minlength=n + 1)
    return cand & (nout >= 0.5 * counts)


def outside_the_lungs(m: np.ndarray, lungs: np.ndarray, ct: Volume, midline: float,
                      with_steps: bool = False):
    """Boolean [m.sum()] (``m``'s voxels in C order, as ``m[mask]`` lists them): True where the step
    from the nearest lung voxel q to the voxel p points away from the thoracic cavity's axis,
    ((p - q) . (q - c) > 0 in the axial plane; c: the patient's ``midline``, RAS x mm, and the
    lungs' mean RAS y). The ribs enclose the lungs from outside (the thoracic cage; Gray's
    Anatomy, 42nd ed., "Chest wall"); the heart, great vessels, venae cavae, oesophagus and hila
    lie medial to the lungs, and the thyroid and neck vessels above and medial to their apices,
    so the step from the lung to them points towards the axis. The axis is the whole lungs' mean
    y, not one slice's: at the lung bases a slice holds only the posterior costophrenic recesses,
    whose mean lies behind the paravertebral ribs. m, lungs: [k, j, i]. A voxel inside the lungs
    is not outside them.

    with_steps: also return float [m.sum(), 3] p - q in RAS mm (q - p's superior component tells
    bone below the lungs)."""
    _, out, step = lung_steps(lungs, ct, midline, np.argwhere(m))
    return (out, step) if with_steps else out


def lung_steps(lungs: np.ndarray, ct: Volume, midline: float, p_kji: np.ndarray,
               within_mm: float | None = None):
    """The step from the nearest lung voxel q to each voxel p, for int voxel indices
    ``p_kji`` [N, 3] [k, j, i] (``lungs``: boolean [k, j, i], not empty; ``midline``: RAS x of
    the patient's midline, mm). Returns (distance to the lungs in mm [N], 0 inside them; boolean
    [N] `outside_the_lungs`; float [N, 3] p - q in RAS mm, 0 inside the lungs). ``within_mm``:
    only points within that distance of the lungs are answered (the others get inf, False, 0).

    The distance d is the exact Euclidean distance transform of the non-lung voxels (edt, mm),
    computed in a box that holds each answered point's nearest lung voxel (the lungs' bounding
    box, grown by ``within_mm`` or to the points); p - q is d along the distance's gradient
    (central differences), which points away from the nearest lung voxel wherever that voxel is
    unique. No index array of a feature transform (12 bytes a voxel) is made: one float32
    distance over the box."""
    p_kji = np.asarray(p_kji).reshape(-1, 3)
    sk = np.asarray(ct.spacing_kji, float)
    n = len(p_kji)
    dist, out, step = np.full(n, np.inf), np.zeros(n, bool), np.zeros((n, 3))
    lb = bbox_slices(lungs, 0.0 if within_mm is None else within_mm, sk)  # grown by a voxel
    if lb is None or not n:
        return dist, out, step
    lo, hi = np.array([b.start for b in lb]), np.array([b.stop for b in lb])
    if within_mm is None:
        lo = np.minimum(lo, p_kji.min(0))
        hi = np.maximum(hi, p_kji.max(0) + 1)
    ok = np.all((p_kji >= lo) & (p_kji < hi), axis=1)
    # one non-lung voxel around the box, so that every point has its six neighbours
    d = _edt(np.pad(~lungs[tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))], 1,
                    constant_values=True), sk)
    f = np.ravel_multi_index(tuple((p_kji[ok] - lo + 1).T), d.shape)
    d = d.ravel()
    dq = d[f].astype(float)
    st = np.cumprod((1,) + tuple(np.array(hi - lo + 2)[::-1][:-1]))[::-1]  # flat steps per axis
    grad = np.stack([(d[f + st[ax]] - d[f - st[ax]]) / (2.0 * sk[ax]) for ax in range(3)], 1)
    del d
    norm = np.linalg.norm(grad, axis=1)
    unit = np.divide(grad, norm[:, None], out=np.zeros_like(grad), where=norm[:, None] > 0)
    # p - q: the distance along the gradient, from array mm to RAS mm (IJK order)
    pq = (unit * dq[:, None] / sk)[:, ::-1] @ ct.ijk_to_ras[:3, :3].T
    qw = ct.kji_to_world(p_kji[ok]) - pq  # the nearest lung point
    # the lungs' mean RAS y, from the voxel counts per index along each axis
    lb0 = bbox_slices(lungs)
    sub = lungs[lb0]
    per_k = np.count_nonzero(sub.reshape(sub.shape[0], -1), axis=1)
    per_ji = sub.sum(axis=0, dtype=np.int32)
    counts = (per_k, per_ji.sum(axis=1), per_ji.sum(axis=0))
    mean = np.array([b.start + np.dot(np.arange(len(c)), c) / max(int(c.sum()), 1)
                     for b, c in zip(lb0, counts)])
    axis = np.array([float(midline), float(ct.kji_to_world(mean[None])[0, 1])])
    # the superior component of p - q is ignored: only the step away from the axis counts
    o = (np.einsum("ij,ij->i", pq[:, :2], qw[:, :2] - axis) > 0) & (dq > 0)
    if within_mm is not None:
        keep = dq <= within_mm
        ok[ok] = keep
        dq, o, pq = dq[keep], o[keep], pq[keep]
    dist[ok], out[ok], step[ok] = dq, o, pq
    return dist, out, step


def native_cortex_seeds(raw: np.ndarray, a: np.ndarray, body: np.ndarray | None,
                        ct: Volume) -> np.ndarray:
    """Boolean [k, j, i] voxels of the native CT ``raw`` denser than the contrast blood pool as
    the scanner itself shows it (above the top of `contrast_blood_band` of ``raw``): cortical
    bone. Empty when the scan is not finer than ``COMMON_RESOLUTION_MM`` (``a`` is ``raw``) or
    shows no pool at its own resolution.

    Why: cortical bone (1.92 g/cm3, well above 1,000 HU at full volume; Schneider, Bortfeld,
    Schlegel, Phys Med Biol 2000;45:459-478) is denser than any arterial-phase blood pool
    (250-500 HU; Bae, Radiology 2010), but a rib's cortex is 0.5-2 mm thick (Hostetler, Comput
    Biol Med 2019) and partial volume at 3 mm lowers it into the pool's band (Prevrhal, Phys Med
    Biol 1999). At the common resolution a rib then holds too few
    voxels above the band to be told from a contrast vessel, and it stays bone only through its
    connection to the spine (costovertebral joints), which a field of view can cut (new-user
    trial 6: the left hemithorax crop of the chest CTA lost ~20 mL of ribs). At the scanner's own
    resolution the cortex is seen nearer its true density. The pool's band is read on the same
    native image, so that its noise (wider at finer voxels) does not make lumen voxels seeds.
    Vessels with contrast denser than the pool's band (pulmonary arteries near undiluted
    contrast) also exceed it: `bone_mask` keeps a component on these seeds only if less than half
    of it is at pool density (a lumen is, by the half-maximum definition of its edge)."""
    if a is raw or body is None:
        return np.zeros(raw.shape, bool)
    nb = contrast_blood_band(raw, body, ct.voxel_volume_ml, ct.spacing_kji)
    if nb is None:
        return np.zeros(raw.shape, bool)
    return raw > nb[1]


def pool_low_hu(band: tuple, tissue_hu: float) -> float:
    """Lower HU bound of the contrast blood pool: the half-maximum between the pool (the middle of
    ``band``, `contrast_blood_band`) and the tissue level ``tissue_hu``, if below the band (the
    lumen's partial-volume edge and less enhanced segments, e.g. the descending aorta)."""
    return min(band[0], 0.5 * (0.5 * (band[0] + band[1]) + tissue_hu))


def contrast_blood_pool(ct: Volume, body: np.ndarray, lungs: np.ndarray | None = None,
                        bone: np.ndarray | None = None) -> np.ndarray | None:
    """Boolean [k, j, i] mask of the contrast blood pool of a CT angiography (heart chambers,
    aorta, pulmonary arteries and veins, venae cavae where enhanced: TotalSegmentator's aorta,
    heart, pulmonary_vein, superior_vena_cava, ... as one group), or None when the scan has no
    blood pool (`contrast_blood_band`).

    Rule: on the common-resolution image, voxels between the half-maximum of pool and tissue and
    the band's upper bound, opened by ``BLOOD_OPEN_MM`` (lumens of >= ~6 mm; thin bone and small
    vessels drop out), components of at least ``MIN_THICK_POOL_ML`` (trabecular specks in band are
    smaller); then grown back over the lumen's partial-volume edge (voxels above the half-maximum
    within ``BLOOD_RIM_MM``). Lungs and ``bone`` (if given) are excluded. Undiluted contrast in a
    vein (above the band) is not included here: `bone_mask` finds it (``info["undiluted_vessel"]``) and
    `rules.segment_masks` adds it (`blood_pool.undiluted_vessel`)."""
    raw = check_ct(ct)
    a = at_common_resolution(raw, ct.spacing_kji)
    band = contrast_blood_band(a, body, ct.voxel_volume_ml, ct.spacing_kji)
    if band is None:
        return None
    sk = ct.spacing_kji
    tissue = max(SOFT_TISSUE_HU, enhanced_tissue_level(raw, body, sk))
    cand = body & (a >= pool_low_hu(band, tissue)) & (a <= band[1])
    if lungs is not None:
        cand &= ~lungs
    if bone is not None:
        cand &= ~bone
    dense = body & (a >= pool_low_hu(band, tissue))
    if lungs is not None:
        dense &= ~lungs
    if bone is not None:
        dense &= ~bone
    core = pool_core(cand, sk, ct.voxel_volume_ml, dense, pool_mediastinum(ct, lungs))
    return core | (dilate_mm(core, BLOOD_RIM_MM, sk) & cand)


def pool_mediastinum(ct: Volume, lungs: np.ndarray | None) -> np.ndarray | None:
    """Boolean [k, j, i]: the lungs' per-plane convex hull more than ``COMMON_RESOLUTION_MM``
    inside its border (`bone_shell.lung_hull_planes`: the mediastinum between the lungs, planes
    normal to the superior axis), for `pool_core`'s ``mediastinum``; None without lungs
    (``lungs``: bool [k, j, i] or None)."""
    if lungs is None or not lungs.any():
        return None
    return bone_shell.lung_hull_planes(lungs, anatomical_axes(ct)["S"][0], ct.spacing_kji,
                                       COMMON_RESOLUTION_MM)


def pool_open_radius_mm(spacing_kji) -> float:
    """Radius (mm) of the opening that keeps only thick lumens of the blood pool: ``BLOOD_OPEN_MM``
    and at least one voxel (an opening thinner than a voxel does nothing)."""
    return max(BLOOD_OPEN_MM, 1.01 * float(np.max(spacing_kji)))


def pool_core(band: np.ndarray, spacing_kji, voxel_ml: float,
              dense: np.ndarray | None = None,
              mediastinum: np.ndarray | None = None) -> np.ndarray:
    """Boolean [k, j, i] core of the contrast blood pool: the pool-density voxels ``band`` opened
    by `pool_open_radius_mm`; components (26-connected) of at least ``MIN_THICK_POOL_ML`` mL,
    and smaller ones that are joined to such a component through thick tissue at or above the
    pool's density (``dense``, a superset of ``band``: the pool and anything denser, opened by
    the same radius). Without ``dense`` only the large components are kept. ``mediastinum``:
    optional bool [k, j, i] (`pool_mediastinum`: the lungs' per-plane hull); given, a small
    component is joined only when at least half of its voxels lie in it.

    Why the size bound: trabecular bone of a vertebral body or a rib head has the pool's density
    on a CT angiography (150-450 HU; the blood pool 250-500 HU, `contrast_blood_band`) and its
    band-density patches can be a few mm thick, so some survive the opening; they are isolated
    specks of < 1-2 mL, whereas a lumen that the opening keeps (aorta >= 20 mm across, heart
    chambers, main pulmonary arteries) is one large component (``MIN_THICK_POOL_ML``, from the
    aorta's geometry, segmentation_rules.json). Whether a speck survives depends on the grid
    (noise and interpolation smooth the trabecular texture differently), so without the bound
    the pool's rim took 15 mL of vertebral body at 1.5 mm that it did not take at 0.7 mm.

    Why the thick join: in the right atrium and the venae cavae, undiluted contrast (> 1,000 HU)
    from the injected vein mixes with less enhanced blood (Bae KT, Radiology 2010;256:32-61:
    contrast dynamics and venous inflow), so denser swirls cut the chamber's band-density blood
    into small pieces after the opening; yet the chamber is one lumen, thick at or above the
    pool's density. A trabecular speck is walled off from the pool by bone and soft tissue below
    the pool's half-maximum (trabecular bone 150-250 HU, fat, the vessel wall); the cortex (0.5-2
    mm; Hostetler, Comput Biol Med 2019) and the partial volume between cortex and a lumen are
    thinner than the opening's ball, so no thick dense path joins them (LIDC-IDRI-0001: none at
    0.7 and 1.5 mm, one 0.16 mL speck at 3 mm). Without the join, the chest CTA's right-atrial
    swirls lost the pool's rim and 15 mL of them became bone.

    Why the mediastinum: the lumens where undiluted contrast swirls (right atrium, venae cavae)
    lie in the mediastinum, between the pleural sacs (Gray's Anatomy, 42nd ed., "Mediastinum";
    the chest CTA: all 11 joined pieces wholly inside the lungs' hull). Outside it, where the
    subclavian vein's undiluted contrast lies on the first rib (Gray's Anatomy, "Root of the
    neck"), its blur bridges the rib's cortex, and the rib's cancellous bone in the pool's band
    was joined through it: the chest CTA's upper half, whose lower tissue level lowers the pool's
    half-maximum (`pool_low_hu`), joined four specks (0.1-0.5 mL) of the first rib, and the pool's
    rim took 6.3 mL of it (labelled body; ribs in the whole scan: new-user trial 68, issue 14)."""
    r = pool_open_radius_mm(spacing_kji)
    core = open_mm(band, r, spacing_kji)
    lab, n, counts = components(core, connectivity=26)
    big = counts * voxel_ml >= MIN_THICK_POOL_ML
    big[0] = False
    if dense is not None and n and big.any() and not big[1:].all():
        dl, dn, _ = components(open_mm(dense | band, r, spacing_kji), connectivity=26)
        with_big = np.zeros(dn + 1, bool)
        with_big[dl[big[lab]]] = True
        with_big[0] = False
        joined = np.zeros(n + 1, bool)
        joined[lab[core & with_big[dl]]] = True
        if mediastinum is not None:
            joined &= np.bincount(lab[core & mediastinum], minlength=n + 1) >= 0.5 * counts
        big |= joined
        big[0] = False
    return big[lab]


def thin_peak_factor(resolution_mm) -> float:
    """Fraction (0-1] of a thin object's peak contrast that a scan of effective resolution
    ``resolution_mm`` (mm per axis, `resolution.effective_resolution_mm`) shows, relative to the
    common resolution: 1 when every axis is at or finer than ``COMMON_RESOLUTION_MM`` (the image
    is then blurred to it), else the geometric mean over the axes of C / w_axis.

    Why: an object thinner than the resolution is shown at a peak contrast proportional to its
    width over the resolution across it (Prevrhal S, Engelke K, Kalender WA, Phys Med Biol
    1999;44:751-764); a rib's cortex (0.5-2 mm; Hostetler ZS et al., Comput Biol Med
    2019;111:103330) is such an object at 3 mm. Its orientation is arbitrary, so the factors of
    the three axes are averaged (geometric mean). `bone_mask` scales the seed contrast above the
    soft tissue by this factor, so that a rib whose cortex reaches the seed threshold at the
    common resolution still does on a blurrier scan (an upsampled 3 mm CT, 5 mm slices)."""
    w = np.maximum(np.asarray(resolution_mm, float), COMMON_RESOLUTION_MM)
    return float(np.prod(COMMON_RESOLUTION_MM / w) ** (1.0 / 3.0))


def at_common_resolution(a: np.ndarray, spacing_kji, resolution_mm=None) -> np.ndarray:
    """The CT ``a`` [k, j, i] (HU) blurred to the partial volume of a ``COMMON_RESOLUTION_MM``
    cubic voxel: a Gaussian whose variance adds to that of the scan's own blur (a box of width
    w has variance w^2 / 12) along each axis finer than the common resolution. Axes already at
    or above it are left alone; an image at or above it on every axis is returned as is.

    resolution_mm: the scan's effective resolution per axis (mm, [k, j, i]); default
    `resolution.effective_resolution_mm` (the equivalent width of its noise correlation, at least
    the spacing). An axis whose resolution is at or above the common one gets no blur. Why: a
    scan interpolated to a finer grid (3 mm to 1.5 mm) keeps the blur of its original voxels;
    taking the spacing as its resolution blurred it a second time and took the thin ribs'
    cortex below the seed threshold (TotalSegmentator example at 1.5 mm: ribs 4.7 mL against
    56.7 mL at its native 3 mm). An axis finer than the common resolution is blurred from its
    spacing as before: there the estimate is only a lower bound of the blur (module
    `resolution`), and blurring a native scan less than before let a vein of undiluted
    contrast become bone on the chest CTA (a 100 mL component of median 206 HU), as it does on
    that scan resampled to 3 mm.

    Returns float32 [k, j, i] (or ``a`` itself when no axis is blurred); within
    `keep_common_resolution` a kept, read-only result for the same array object."""
    sigma = _common_sigma(a, spacing_kji, resolution_mm)
    if sigma is None:
        return a
    kept = _KEPT.entries
    if kept is None:
        return ndimage.gaussian_filter(a, sigma, output=np.float32)
    from .resolution import _sample

    key = (tuple(sigma.tolist()), a.shape, a.dtype.str, _sample(a))
    for ref, k, out in kept:
        if ref() is a and k == key:
            return out
    out = ndimage.gaussian_filter(a, sigma, output=np.float32)
    out.setflags(write=False)
    try:
        kept.append((weakref.ref(a), key, out))
    except TypeError:   # an array type that takes no weak reference: not kept
        pass
    return out


def _common_sigma(a: np.ndarray, spacing_kji, resolution_mm=None):
    """`at_common_resolution`'s Gaussian sigma per axis (voxels, [k, j, i]; 0: that axis is not
    blurred), or None when no axis is."""
    s = np.asarray(spacing_kji, float)
    w = effective_resolution_mm(a, s) if resolution_mm is None else np.asarray(resolution_mm, float)
    w = np.where(w >= COMMON_RESOLUTION_MM, w, s)
    add = np.sqrt(np.maximum(COMMON_RESOLUTION_MM ** 2 - w ** 2, 0.0) / 12.0) / s  # voxels
    if np.all(add < 0.1):
        return None
    return np.where(add < 0.1, 0.0, add)


def contrast_blood_seen_of_ct(raw: np.ndarray, spacing_kji, voxel_ml: float) -> bool:
    """Whether `contrast_blood_band_of_ct` finds a band (the contrast phase), the same answer,
    mostly without the resolution estimate (`resolution.effective_resolution_mm`, 0.4-0.8 CPU-s on
    a chest CT: the most of the phase's cost). The estimate decides only, per axis finer than the
    common resolution, whether that axis is blurred, and then by a sigma that the spacing alone
    fixes (`_common_sigma`: w >= the common resolution, no blur; below it, w is read as the
    spacing): so the blur the estimate picks is one of the 2^m choices of blurred axes (m axes
    finer than the common resolution). With m <= 2 (sections thicker than it: most chest CTs) the
    band is read on each choice (its samples only, `at_common_resolution_every`: ~0.03 CPU-s
    each on lung1), stopping at the first that disagrees; when every choice gives the same
    answer, that is the answer; otherwise (or m = 3) the estimate decides as in
    `contrast_blood_band_of_ct`.
    Within `keep_common_resolution`: as `contrast_blood_band_of_ct`."""
    import itertools

    if _KEPT.entries is not None:
        return contrast_blood_band_of_ct(raw, spacing_kji, voxel_ml) is not None
    s = np.asarray(spacing_kji, float)
    # each axis's blur if its resolution reads below the common one (then read as its spacing)
    add = _common_sigma(raw, s, resolution_mm=s)
    add = np.zeros(3) if add is None else add
    if np.count_nonzero(add) > 2:   # 8 choices: about the estimate's cost (1.5 mm phantom 0.70
        #                             against 0.62 CPU-s), so the estimate decides at once
        return contrast_blood_band_of_ct(raw, spacing_kji, voxel_ml) is not None
    f = _thick_step(raw.size)
    seen = set()
    for blurred in itertools.product(*[(False, True) if x > 0 else (False,) for x in add]):
        sig = np.where(np.asarray(blurred), add, 0.0)
        a = at_common_resolution_every(raw, s, f, sigma=sig if sig.any() else None)
        seen.add(_band_on_samples(a, s, f, voxel_ml) is not None)
        if len(seen) > 1:
            return contrast_blood_band_of_ct(raw, spacing_kji, voxel_ml) is not None
    return seen.pop()


_FROM_ESTIMATE = object()


def at_common_resolution_every(a: np.ndarray, spacing_kji, f: int, sigma=_FROM_ESTIMATE) -> np.ndarray:
    """``at_common_resolution(a, spacing_kji)[::f, ::f, ::f]``, the same values to the bit, blurring
    only what they read: the Gaussian is separable and `ndimage.gaussian_filter` runs one 1-D
    pass per blurred axis in turn (k, j, i), each line on its own (its values, the kernel and the
    edge handling are those of its whole line), storing float32 between passes; so the axes not
    blurred are sampled first, and each blurred axis after its pass, and the later passes read
    only the lines through the samples. Within `keep_common_resolution` the whole CT is blurred
    and kept as there. ``sigma``: the blur per axis (voxels; None: none) instead of the one read
    from the CT's resolution (`contrast_blood_seen_of_ct`)."""
    if sigma is _FROM_ESTIMATE:
        if _KEPT.entries is not None:
            return at_common_resolution(a, spacing_kji)[::f, ::f, ::f]
        sigma = _common_sigma(a, spacing_kji)
    every = slice(None, None, f)
    if sigma is None:
        return a[every, every, every]
    blur = [bool(x > 1e-15) for x in sigma]   # the axes `gaussian_filter` filters
    x = a[tuple(slice(None) if b else every for b in blur)]
    for ax in range(3):
        if blur[ax]:
            x = ndimage.gaussian_filter1d(x, sigma[ax], ax, 0, np.float32)
            x = x[tuple(every if i == ax else slice(None) for i in range(3))]
    return np.ascontiguousarray(x)


_KEPT = ThreadKept(list)   # `keep_common_resolution`: per thread, its results while in the context


@contextlib.contextmanager
def keep_common_resolution():
    """Context in which `at_common_resolution` keeps each result it computes (per thread) and
    returns it again, read-only, for the same array object with the same blur, shape, dtype and
    a sample of its values unchanged (as `resolution.effective_resolution_mm`'s cache; do not
    modify a CT's array in place meanwhile). Everything kept is dropped when the outermost
    context exits, so nothing is held after it (a float32 copy of the CT each). Nestable.
    Issue 20: one rule-based segmentation (`rules.segment_masks`) blurred the same CT three
    times (`bone_mask`, `split_bones`' cancellous bone, `uncortexed_organ`): 1.5 of the demo's
    18 CPU-s; the same array, so the same values."""
    with _KEPT.keep():
        yield


CARTILAGE_SPINE_GAP_MM = rule("cartilage_spine_gap_mm")  # no cartilage within 1 cm of a vertebra


def cartilage_level(ct: Volume, body: np.ndarray, sample: tuple | None = None) -> tuple[float, str | None]:
    """(the level, HU, above which unlabelled tissue joined to a rib is costal cartilage; why
    density cannot tell cartilage on this CT, or None). The level is the densest deep soft tissue of
    the scan (`enhanced_tissue_level` on ``body``, a bool [k, j, i] patient mask on ``ct``'s
    grid; ``sample``: its `deep_tissue_sample` when the caller has it): cartilage is denser than
    muscle and organ parenchyma without contrast. On a contrast scan (a blood pool,
    `contrast_blood_band`, or that tissue at or above ``CARTILAGE_MAX_HU``) cartilage has the
    density of the enhanced tissue and cannot be told from it: the reason is given, in words.
    One definition for `costal_cartilage` and the needle planner's cartilage test
    (`imagio.planning.cartilage`; new-user trial 103 F4.2). Read on the CT's measured box
    (`common.measured_box`, as `rules.segment_masks` reads the CT: the level's sample is taken on a
    coarsened grid, and the padding around the measured box shifts it: on an oblique re-grid of
    lung1 108 HU on the padded grid, lower on its measured box)."""
    box = measured_box(ct)
    if box is not None:
        ct, body, sample = crop_slices(ct, box), body[box], None
    a = check_ct(ct)
    sk = ct.spacing_kji
    level = enhanced_tissue_level(a, body, sk, sample=deep_tissue_sample(a, body, sk) if sample is None else sample)
    # the blood pool is looked for only when the tissue level does not already decide (as before)
    pool = level < CARTILAGE_MAX_HU and contrast_blood_band(a, body, ct.voxel_volume_ml, sk) is not None
    if level >= CARTILAGE_MAX_HU or pool:
        # say what was measured (trial 29: "contrast-enhanced" on a non-contrast CT at 3-5 mm,
        # where bone's partial volume raised the deep tissue's level)
        return level, ("a contrast-filled blood pool is as dense as cartilage" if pool else
                       f"the densest deep soft tissue reads {level:.0f} HU (>= {CARTILAGE_MAX_HU:g} HU), as dense as "
                       "cartilage (contrast enhancement, or bone blurred into it on a coarse grid)")
    return level, None


def thin_dense_on_rib(cand: np.ndarray, ribs: np.ndarray, spacing_kji,
                      off_rib: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """(costal cartilage, the same tissue joined to no rib) of the dense unlabelled tissue
    ``cand`` (bool [k, j, i]: above `cartilage_level`, no bone, no lung) beside the rib mask
    ``ribs`` (same shape): the voxels of ``cand`` in a 26-connected piece of ``cand | ribs`` that
    holds a rib voxel, and thin, like the ribs they continue (outside the opening by a ball of
    ``RIB_MAX_RADIUS_MM``: a dense organ is thick); the second, the voxels of ``cand`` in pieces
    without a rib voxel, so thinned (None when ``off_rib`` is False). ``spacing_kji`` mm. One
    definition for `costal_cartilage` and the needle planner's cartilage test."""
    lab, n, _ = components(cand | ribs, connectivity=26)
    on_rib = np.bincount(lab[ribs], minlength=n + 1) > 0
    on_rib[0] = False
    cart = on_rib[lab] & cand
    cart &= ~open_mm(cart, RIB_MAX_RADIUS_MM, spacing_kji)
    if not off_rib:
        return cart, None
    # the same thin dense tissue not joined to a rib in view: a cartilage whose rib lies below the
    # view's inferior face (the costal margin's cartilages ascend medially from the
    # rib ends of ribs 7-10 to the sternum, so a crop of the upper chest keeps them without their
    # ribs: trial 40 H3, 34.8 mL cut by the face, 3.6 mL found, silent); judged by `costal_cartilage`
    off = cand & ~on_rib[lab]
    off &= ~open_mm(off, RIB_MAX_RADIUS_MM, spacing_kji)
    return cart, off


def costal_cartilage(ct: Volume, ribs: np.ndarray, bone: np.ndarray, body: np.ndarray,
                     lungs: np.ndarray | None = None,
                     vertebrae: np.ndarray | None = None) -> tuple[np.ndarray, str | None]:
    """Boolean [k, j, i] mask of the costal cartilages, and a warning (or None).

    Rule: voxels denser than every deep soft tissue of the scan (`enhanced_tissue_level`: the
    95th percentile of muscle/organ parenchyma) that are connected (26-neighbourhood) to a rib
    and thin (outside the opening by a ball of ``RIB_MAX_RADIUS_MM``, like the ribs they continue:
    a dense organ is thick). Cartilage bridges the anterior rib ends to the sternum and runs
    along the costal margin, so no distance-to-lung bound applies. On a contrast scan (a blood
    pool, or enhanced tissue at or above ``CARTILAGE_MAX_HU``) cartilage has the density of the
    enhanced tissue: nothing is returned and the warning says so. Only voxels in front of the
    coronal plane through the middle of the lungs' (else the body's) antero-posterior extent
    count: the cartilages continue the ribs' anterior ends. ``vertebrae`` (their mask, when
    labelled): nothing enclosed by a vertebra in its axial section, nor within
    ``CARTILAGE_SPINE_GAP_MM`` of it, is cartilage: the ribs meet the vertebrae at their heads,
    the whole rib's length from the cartilages at their anterior ends (trial 13 M4: at 0.7 mm
    the marrow of vertebral bodies, joined to a rib head, was 24 mL of cartilage). The warning
    is also given with a mask when the bone's partial volume raises the tissue level by more than
    ``ORGAN_MARGIN_HU`` over its reading outside ``bone`` (`enhanced_tissue_level`): the cartilage
    is then partly missed, by an amount the grid decides."""
    a = check_ct(ct)
    sk = ct.spacing_kji
    empty = np.zeros(a.shape, bool)
    if not ribs.any():
        return empty, None
    sample = deep_tissue_sample(a, body, sk)   # read twice below: built once
    level, why = cartilage_level(ct, body, sample)
    if why:
        return empty, (f"costal cartilages not segmented: {why}; treat the anterior chest wall between ribs "
                       "and sternum as forbidden")
    # cancellous bone in the deep tissue raises its 95th percentile by an amount that depends on
    # the grid (`enhanced_tissue_level`; lung1 at 3 mm: 129 HU, 57 HU outside the bone; TS example
    # at 3 mm: 79 and 64 HU): where the bone raises it by more than the margin that separates
    # bone from organ (``ORGAN_MARGIN_HU``), the cartilage, measured against that level, is partly
    # missed, by an amount the grid decides (lung1: 29 mL at native, none at 3 mm): say so
    doubt = None
    if bone.any():
        clean = enhanced_tissue_level(a, body, sk, sup=anatomical_axes(ct)["S"][0], bone=bone, sample=sample)
        if level - clean > ORGAN_MARGIN_HU:
            doubt = (f"costal cartilages may be partly missed and their volume depends on the grid: the deep "
                     f"soft tissue reads {level:.0f} HU with the bone's partial volume in it and {clean:.0f} HU "
                     "without, and cartilage is told from it by the higher level; treat the anterior chest "
                     "wall between ribs and sternum as forbidden")
    cand = body & ~bone & (a > level)
    if lungs is not None:
        cand &= ~lungs
    cart, off = thin_dense_on_rib(cand, ribs, sk)
    if vertebrae is not None and vertebrae.any() and (cart.any() or off.any()):
        spine = fill_holes_per_slice(vertebrae, anatomical_axes(ct)["S"][0])
        gap = dilate_mm(spine, CARTILAGE_SPINE_GAP_MM, sk)
        cart &= ~gap
        off &= ~gap
    # costal cartilages continue the ribs' anterior ends (ribs 1-10; the tips of 11-12 are small
    # and lateral; Gray's Anatomy, 42nd ed., thoracic wall): nothing behind the coronal plane
    # through the middle of the lungs' (else the body's) antero-posterior extent is cartilage
    # (trial 7: 64 mL of "cartilage" along the posterior ribs on Lung-PET-CT-Dx A0001)
    ref = lungs if lungs is not None and lungs.any() else body
    if (cart.any() or off.any()) and ref is not None and ref.any():
        y = ras_coordinate(ct, 1)
        ya = y[ref]
        front = y > 0.5 * (float(ya.min()) + float(ya.max()))
        cart &= front
        off &= front
    bars = _costal_margin_bars(ct, off, lungs, ribs, body)
    bars_ml = float(bars.sum()) * ct.voxel_volume_ml
    if bars_ml:
        cart |= bars
        off &= ~bars
    cut_ml = _cut_by_lower_face(ct, off) * ct.voxel_volume_ml
    found_ml = float(cart.sum()) * ct.voxel_volume_ml
    if bars_ml:
        cut = (f"costal cartilages may be partly missed: {bars_ml:.1f} mL of them is labelled without its rib in "
               "view, told by its place alone (long thin bars as dense as cartilage in the chest wall in front of the "
               "lungs, cut by the field of view's lower face: the costal margin, whose ribs lie below the view); "
               "treat the anterior chest wall between ribs and sternum as forbidden")
        doubt = cut if doubt is None else f"{doubt}; {cut}"
    if cut_ml > CARTILAGE_CUT_SHARE * (cut_ml + found_ml):
        cut = (f"costal cartilages may be partly missed: {cut_ml:.1f} mL of thin tissue as dense as cartilage in "
               f"front of the chest is cut by the field of view's lower face and joins no rib in view "
               f"({found_ml:.1f} mL labelled); a cartilage is told by the rib it continues, which may lie beyond "
               "the face; treat the anterior chest wall between ribs and sternum as forbidden")
        doubt = cut if doubt is None else f"{doubt}; {cut}"
    return cart, doubt


CARTILAGE_CUT_SHARE = 0.10  # the project's volume tolerance across fields of view and grids (issue 14:
# a structure's volume within 10 % across 0.7-3 mm): more of the candidate cartilage than this left
# out because its rib is beyond the view's face is said


def _costal_margin_bars(ct: Volume, off: np.ndarray, lungs: np.ndarray | None, ribs: np.ndarray,
                        body: np.ndarray) -> np.ndarray:
    """Bool [k, j, i]: the 26-connected pieces of ``off`` (thin tissue as dense as cartilage in front
    of the lungs' middle that joins no rib in view, `costal_cartilage`) that are costal cartilage by
    their place, with lungs (bool [k, j, i]) in view: each touches the field of view's lower face
    (`_cut_by_lower_face`: the cartilages of ribs 7-10 ascend medially from their ribs' anterior ends
    to the sternum and form the costal margin, so a view cut above those rib ends keeps the
    cartilages without their ribs: Gray's Anatomy, 42nd ed., "Chest wall"), is a bar (at least
    ``rib_min_length_mm`` along its own principal axis, `_principal_extent_mm`: a cartilage continues
    a rib) and lies mostly (more than half its voxels) outside the lungs' per-plane convex hull
    (`bone_shell.lung_hull_planes`): in the chest wall, not in the mediastinum, where the heart's
    calcified arteries run; and at the depth of the thoracic cage: its median depth under the skin
    (`common.depth_mm` of ``body``, the view's faces not counting as skin) within the 5th-95th
    percentile of the depths of the ribs in view (``ribs``, bool [k, j, i]): cartilages and ribs
    form one wall under the skin, subcutaneous fat and muscle (Gray's), so a dense layer of skin
    (lung1: 1.2 mL, median 1.7 mm deep) or a focus in the abdomen (lung2: 114 mm deep) is not one.
    The thyroid, thin and dense in front at the upper face, is not judged: only the lower face
    counts."""
    out = np.zeros(off.shape, bool)
    if lungs is None or not lungs.any() or not off.any():
        return out
    s_ax, sign = anatomical_axes(ct)["S"]
    lab, n, counts = components(off, connectivity=26)
    ends = np.take(lab, 0 if sign > 0 else -1, axis=s_ax).ravel()
    cand = np.zeros(n + 1, bool)
    cand[np.unique(ends[ends > 0])] = True
    if not cand.any():
        return out
    cand &= _principal_extent_mm(ct, lab, cand) >= rule("rib_min_length_mm")
    if not cand.any():
        return out
    from .bone_shell import lung_hull_planes

    hull = lung_hull_planes(lungs, s_ax, ct.spacing_kji, COMMON_RESOLUTION_MM)
    inside = np.bincount(lab[hull & (lab > 0)], minlength=n + 1)
    cand &= inside <= 0.5 * counts
    if not cand.any() or not ribs.any():
        return out
    depth = depth_mm(body, ct.spacing_kji)
    lo, hi = np.percentile(depth[ribs], [5.0, 95.0])
    ids = np.flatnonzero(cand)
    d = np.asarray(ndimage.median(depth, lab, ids))
    cand[ids] = (d >= lo) & (d <= hi)
    return cand[lab]


def _cut_by_lower_face(ct: Volume, m: np.ndarray) -> int:
    """Voxels of the 26-connected parts of ``m`` (bool [k, j, i]) that touch the field of view's
    lowest slice (the inferior face). The costal cartilages of ribs 2-10 ascend medially from
    their rib's anterior end to the sternum or the cartilage above (Gray's Anatomy, 42nd ed.,
    'Chest wall'), so a cartilage whose rib is out of view is cut at the view's lower face; at
    the upper face the midline's dense thin tissue is the thyroid (lung1: 19.9 mL, 103 HU)."""
    if not m.any():
        return 0
    s_ax, sign = anatomical_axes(ct)["S"]
    lab, n, counts = components(m, connectivity=26)
    ends = np.take(lab, 0 if sign > 0 else -1, axis=s_ax).ravel()
    cut = np.unique(ends[ends > 0])
    return int(counts[cut].sum())


def split_bones(ct: Volume, bone: np.ndarray, body: np.ndarray | None = None,
                lungs: np.ndarray | None = None, midline: float | None = None,
                spine: bool = True, trachea: np.ndarray | None = None,
                notes: list | None = None, bone_low_hu: float | None = None,
                edge: np.ndarray | None = None, hull: np.ndarray | None = None,
                info: dict | None = None) -> dict[str, np.ndarray]:
    """Split a bone mask into {"vertebrae", "ribs", "bone"} (bone = everything else).

    spine: False when nothing in view says that a spine is there (no trachea, no lungs, no
    spinal canal: `spine.spinal_canal`): no bone is named "vertebrae" (the corridor of a scan of
    one limb holds the limb's long bone).

    Spine: bone in a corridor within 35 mm of the patient's midline (``midline``, RAS x mm; else
    the body's median x), posterior to the body's antero-posterior centre; the corridor's components that are large or span >= 40 mm
    superior-inferior, except a piece apart from the largest that lies mostly in front of its
    vertebral bodies (`in_front_of_column`: vessels beside the trachea). Ribs (needs ``lungs``): `rib_pieces`, per rib segment: the remaining
    thin bone (no ball of ``RIB_MAX_RADIUS_MM`` fits: sternum body, humerus and clavicle heads
    are thicker) that hugs the lungs from outside (within ``RIB_LUNG_MM`` of the lung surface);
    the scapula, farther out, stays "bone", and so does a piece of clavicle shaft beside the apex
    apart from the spine, or apart from the pleura where partial volume joins it to the first rib
    (`clavicle_pieces`). Ribs are cut from the spine at the corridor
    boundary, so each rib remains its own structure where possible. Mediastinum (needs
    ``lungs``): dense pieces inside the lungs' per-plane convex hull, in front of the visceral
    compartment's back line and apart from vertebrae and ribs are calcification or contrast,
    not bone: left out of every label (`bone_shell.mediastinal_pieces`); a long thin corridor
    piece that is not part of the column (a calcified descending aorta) is not a vertebra.
    The corridor's front bound (`spine_front_y`) is the body's antero-posterior centre only when
    the body is wholly in view along that axis; a field of view that cuts the body in front or
    behind moves that centre, so the bound comes from the trachea (``trachea``, bool [k, j, i])
    or the lungs then, or from the spinal canal; ``notes`` (a list) receives the sentence to warn
    with when only the body's centre is left (`spine_front_y`). ``bone_low_hu``: the threshold
    `bone_mask` used (its ``info["low_hu"]``), for `uncortexed_organ`. ``edge``: optional bool
    [k, j, i], the voxels of ``bone`` that are only thin bone's blurred edge (`bone_mask`'s
    ``info["edge"]``): the split is made without them and each is then given to the one bone
    piece it surrounds (`attach_edge`); an edge voxel between two pieces is in no label.
    ``hull``: optional `bone_shell.lung_hull_planes` ``(lungs, S axis, spacing, COMMON_RESOLUTION_MM)``
    when the caller has it (not modified; computed here when needed otherwise). ``info``: an
    optional dict that receives "clavicle" (bool [k, j, i]): the part of 'bone' that
    `clavicle_pieces` took from the ribs, with the edge voxels given to it (`rules` keeps it out
    of `without_lumen_rim`'s pieces: it lies on the subclavian vein).
    """
    if edge is not None and edge.any():
        parts = split_bones(ct, bone & ~edge, body, lungs, midline, spine, trachea, notes, bone_low_hu,
                            hull=hull, info=info)
        parts = attach_edge(parts, edge & bone)
        if info is not None and info.get("clavicle") is not None and info["clavicle"].any():
            # its blurred edge, given to the 'bone' piece that it surrounds
            info["clavicle"] = info["clavicle"] | (parts["bone"] & edge & ndimage.binary_dilation(
                info["clavicle"], np.ones((3, 3, 3), bool)))
        return parts
    want_spine = spine
    ref = body if body is not None and body.any() else bone
    # the coordinates as broadcastable ramps (`ras_ramp`: on an axial grid the corridor is a
    # plane's mask, not a volume of float32 arithmetic)
    x = ras_ramp(ct, 0)
    y = ras_ramp(ct, 1)
    # the spine lies on the patient's midline (``lungs.midline_x``: trachea, body or isocentre;
    # the body's median is off the midline when the field of view cuts the body)
    cx = float(np.median(np.broadcast_to(x, ref.shape)[ref])) if midline is None else float(midline)
    def canal():
        from .spine import spinal_canal
        return spinal_canal(ct, bone, midline=cx)

    corridor = (np.abs(x - cx) < SPINE_HALF_WIDTH_MM) & (y < spine_front_y(ct, ref, lungs, trachea, y, canal,
                                                                          notes if want_spine else None))
    del x, y
    sk = ct.spacing_kji
    s_ax = anatomical_axes(ct)["S"][0]
    spine = np.zeros_like(bone)
    # ``hull``: `bone_shell.lung_hull_planes` of the lungs, once for both mediastinal checks
    core = bone & corridor
    lab, n, counts = components(core, connectivity=26)
    if n and want_spine:
        counts[0] = 0
        objs = ndimage.find_objects(lab)
        span = np.array([0.0] + [(o[s_ax].stop - o[s_ax].start) * sk[s_ax] if o else 0.0
                                 for o in objs])
        large = counts >= 0.2 * counts.max()
        big = large | (span >= 40.0)
        big[0] = False
        # a piece apart from the column that lies in front of its vertebral bodies is not a
        # vertebra (`in_front_of_column`: a contrast-filled vein or artery beside the trachea,
        # 'large' beside the column's few voxels in a view cut behind them)
        if big.sum() > 1:
            big &= ~in_front_of_column(lab, counts, int(np.argmax(counts)), s_ax, ras_ramp(ct, 1))
            large &= big
        spine = big[lab]
        if lungs is not None and lungs.any() and (big & ~large).any():
            # a long thin piece beside the column (a calcified descending aorta, 40 mm or more
            # of plaque) that lies in the mediastinum apart from the column is not a vertebra
            # (`bone_shell.mediastinal_pieces`)
            large[0] = False
            col = large[lab]
            if hull is None:
                hull = bone_shell.lung_hull_planes(lungs, s_ax, sk, COMMON_RESOLUTION_MM)
            spine &= ~bone_shell.mediastinal_pieces(
                spine & ~col, col, lungs, s_ax, sk, COMMON_RESOLUTION_MM, col,
                ras_ramp(ct, 1), mediastinum_behind_vertebra_mm(), hull=hull)
    lab = core = corridor = col = None   # (the uint32 label map: not held through the rest, issue 20)
    if spine.any():
        # the vertebral bodies' cancellous bone inside their cortical ring (closed over its
        # foramina, 1-3 mm: one common-resolution voxel), the spinal canal kept open by its
        # density (`bone_shell.cancellous_in_ring`)
        from .common import check_ct, close_mm
        ring = close_mm(spine, COMMON_RESOLUTION_MM, sk)
        spine = spine | bone_shell.cancellous_in_ring(
            ring, bone, at_common_resolution(check_ct(ct), sk), MARROW_MIN_HU, sk, s_ax,
            COMMON_RESOLUTION_MM, rule("spinal_canal_min_diameter_mm"), MAX_MARROW_MM2)
    rest = bone & ~spine
    ribs = np.zeros_like(bone)
    if lungs is not None and lungs.any():
        ribs = rib_pieces(ct, rest, lungs, cx, notes=notes)
        # a clavicle's shaft beside the apex, apart from the spine (or, joined to the first rib,
        # apart from the pleura), is no rib (`clavicle_pieces`)
        clav = clavicle_pieces(ct, ribs, spine, lungs, midline=cx)
        ribs &= ~clav
        if info is not None:
            info["clavicle"] = clav
    elif want_spine and spine.any() and (trachea is None or not trachea.any()):
        # a column in view and no lungs (nor trachea: a neck's clavicles are thin bars lateral to
        # the column too): the lower ribs in the body wall (`wall_rib_pieces`)
        ribs = wall_rib_pieces(ct, rest, cx)
        if ribs.any() and notes is not None:
            notes.append(f"{ribs.sum() * ct.voxel_volume_ml:.1f} mL of bone named 'ribs' with no lungs in view: thin "
                         "bars of bone lateral to the vertebral column's transverse processes (the lower ribs below the "
                         "lung bases); without the lungs to place them, a thin piece of the iliac crest may be named "
                         "rib too (the TotalSegmentator example's lumbar crops: 0.3-1.5 mL): check the ribs' lower "
                         "ends on the images before planning near them")
    other = rest & ~ribs
    if lungs is not None and lungs.any() and other.any():
        # dense pieces in the mediastinum, apart from the skeleton: calcified vessel walls and
        # undiluted contrast, not bone (`bone_shell.mediastinal_pieces`); left unlabelled, so
        # that the planner's CT density check still sees them
        # (the lungs' per-plane hull of the first call reused: the same lungs, axis and depth)
        other &= ~bone_shell.mediastinal_pieces(
            other, spine | ribs, lungs, s_ax, sk, COMMON_RESOLUTION_MM, spine,
            ras_ramp(ct, 1), mediastinum_behind_vertebra_mm(), hull=hull)
    other &= ~uncortexed_organ(ct, other, notes, skeleton=spine | ribs, bone_low_hu=bone_low_hu)
    return {"vertebrae": spine, "ribs": ribs, "bone": other}


def in_front_of_column(lab: np.ndarray, counts: np.ndarray, column: int, s_ax: int,
                       a_mm: np.ndarray) -> np.ndarray:
    """Bool [n + 1] over the labels of ``lab`` (int [k, j, i], 0 = background; ``counts`` its
    voxel counts, [n + 1]): True for each piece other than ``column`` (the label of the spine's
    main piece) of which at least half of the voxels lie in front of the column, that is, in an
    axial plane (array axis ``s_ax``, the one nearest superior) that holds the column and more
    anterior than the column's most anterior voxel in that plane. ``a_mm``: the world anterior
    coordinate of each voxel (RAS y, mm; float [k, j, i] or broadcastable: `common.ras_ramp`).

    Why: a vertebra is one bone whose body is its most anterior part; the pedicles, arch and
    processes lie beside and behind the body, and neighbouring vertebrae are stacked on it along
    the column, joined by discs and facet joints (Gray's Anatomy, 42nd ed., "Vertebral
    column"). In front of the bodies lie the prevertebral muscles, the oesophagus and the great
    vessels (Gray's, "Neck", "Mediastinum"), whose lumens are bone-dense on a CT angiography
    (undiluted contrast in the subclavian and brachiocephalic veins: Bae KT, Radiology
    2010;256:32-61). A vertebra separated from the column by partial volume lies above, below,
    beside or behind it, never wholly in front of it in the same planes. Issue 14: the chest
    CTA's front part (cut at RAS A 146 mm) kept 2.8 mL of the column's front in its corridor, and
    a 1.5 mL piece of contrast-filled vessels beside the trachea, 97 % of it in front of the
    column, was 'large' beside it (0.24 of the column's voxels): named 'vertebrae', while the
    whole scan named it 'bone'."""
    out = np.zeros(counts.shape, bool)
    other = tuple(ax for ax in range(3) if ax != s_ax)
    col = lab == column
    a = np.broadcast_to(a_mm, lab.shape)
    front = np.where(col, a, -np.inf).max(axis=other)   # per plane; -inf: no column there
    shape = [1, 1, 1]
    shape[s_ax] = -1
    front = front.reshape(shape)
    ahead = (a > front) & np.isfinite(front) & (lab > 0)
    out[:] = np.bincount(lab[ahead], minlength=counts.size) >= 0.5 * counts
    out[0] = False
    out[column] = False
    return out


def attach_edge(parts: dict[str, np.ndarray], edge: np.ndarray) -> dict[str, np.ndarray]:
    """``parts`` (name -> disjoint bool [k, j, i] masks: `split_bones`' labels) with each voxel of
    ``edge`` (bool [k, j, i], a bone's partial-volume edge, in none of ``parts``) added to the one
    piece that it surrounds. A piece is a 26-connected component of one part. The edge is given
    layer by layer from the pieces outwards: a voxel 26-adjacent to exactly one piece (its bone
    or that bone's edge already given) joins it; a voxel adjacent to two pieces, or given in the
    same layer beside a voxel given to another piece, joins none. So the edge never joins two
    pieces: the pieces of each part are the same, each grown by its own edge. Returns a new dict.

    Why: an edge voxel is a mixture of one bone and the soft tissue around it (the partial-volume
    rim of a blurred bone: Prevrhal S et al., Phys Med Biol 1999;44:751-764); two bones are
    separated by soft tissue (joints, intercostal spaces: Gray's Anatomy, 42nd ed., "Chest
    wall"), so a rim never connects them. Added to the mask before the split, the blurred edge of
    two ribs on the chest CTA's 3 mm corner-aligned grid bridged a 3.1 mL rib piece of median 229
    HU to a 4.9 mL one (14 voxels of 195-200 HU, issue 14)."""
    names = list(parts)
    out = {n: parts[n].copy() for n in names}
    box = bbox_slices(edge)   # the edge's box and one voxel more: the pieces it touches
    if box is None:
        return out
    e = edge[box].copy()
    ids = np.zeros(e.shape, np.int64)
    owner = [0]   # piece id -> index of its part in names (id 0: none)
    for k, n in enumerate(names):
        # (labelled on the whole grid: a piece that leaves the box and comes back is one piece)
        lab, cnt, _ = components(parts[n] & ~edge, connectivity=26)
        sub = lab[box]
        ids[sub > 0] = sub[sub > 0].astype(np.int64) + len(owner) - 1
        owner += [k] * cnt
        lab = sub = None
    big = np.int64(len(owner) + 1)
    foot = np.ones((3, 3, 3), bool)

    def touching(m):
        hi = ndimage.maximum_filter(m, footprint=foot, mode="constant", cval=0)
        lo = ndimage.minimum_filter(np.where(m > 0, m, big), footprint=foot, mode="constant", cval=big)
        return hi, lo

    while e.any():
        hi, lo = touching(ids)
        touched = e & (hi > 0)
        if not touched.any():
            break
        new = touched & (hi == lo)
        trial = np.where(new, hi, ids)
        hi2, lo2 = touching(trial)
        new &= hi2 == lo2   # given in this layer beside another piece's voxel: none
        ids[new] = hi[new]
        e &= ~touched       # decided: given, or between two pieces
    owner = np.asarray(owner + [-1])
    for k, n in enumerate(names):
        out[n][box] |= (ids > 0) & (owner[ids] == k) & edge[box]
    return out


def uncortexed_organ(ct: Volume, other: np.ndarray, notes: list | None = None,
                     skeleton: np.ndarray | None = None,
                     bone_low_hu: float | None = None) -> np.ndarray:
    """Boolean [k, j, i]: the pieces of ``other`` (bool [k, j, i], the 'bone' class) that lie
    inside a thick solid mass and have no cortex (`solid_organ_pieces` with ``cortex``: the CT
    at the common resolution above ``BONE_SEED_HU``): an enhancing organ (spleen, liver, renal
    cortex of a contrast CT, 150-300 HU) that passed the bone threshold, not bone. ``notes`` (a
    list) receives the sentence, in mL, when at least ``RIB_MIN_ML`` is taken out: the tissue is
    left unlabelled, and at 150-250 HU the planner's CT density check (> 250 HU) does not see it.
    ``skeleton``: optional bool [k, j, i], the other bone labels (vertebrae, ribs): a piece within
    one ``COMMON_RESOLUTION_MM`` of it is kept. Why: at 3 mm a vertebral body's 0.2-0.8 mm cortex
    blurs into its cancellous bone (Prevrhal 1999) and reads below the cortex level, so a
    vertebral body split from its posterior elements (TotalSegmentator example: 11.7 mL) looked
    like an organ; it is joined to its vertebra, an organ is not.

    ``bone_low_hu``: optional, the bone threshold `bone_mask` used (its ``info["low_hu"]``, HU).
    At trabecular bone's own lower bound ``BONE_LOW_HU`` (not raised: no enhanced tissue on the
    scan, `bone_mask`) nothing is taken out: the rule's premise, an enhancing organ that passes
    the bone threshold, does not hold there. Unenhanced organs and muscle read 40-65 HU (Bae KT,
    Radiology 2010;256:32-61), 55-80 HU below it, so their noise does not build a
    thick mass above 120 HU; what does is bone whose cortex the grid blurs (a vertebral body at
    3 mm), a sclerotic or calcified lesion, which must not be left unlabelled as an 'organ'
    (lung1, the TotalSegmentator example: nothing taken out either way, issue 14 review)."""
    from .common import check_ct

    sk = np.asarray(ct.spacing_kji, float)
    if bone_low_hu is not None and bone_low_hu <= BONE_LOW_HU:
        return np.zeros(other.shape, bool)
    box = bbox_slices(other, RIB_MAX_RADIUS_MM + COMMON_RESOLUTION_MM, sk)
    out = np.zeros(other.shape, bool)
    if box is None:
        return out
    full = check_ct(ct)
    cortex = at_common_resolution(full, sk)[box] > BONE_SEED_HU
    raw = full[box]
    out[box] = solid_organ_pieces(other[box], raw >= BONE_LOW_HU, sk, cortex=cortex)
    if skeleton is not None and out.any() and skeleton.any():
        near = dilate_mm(skeleton[box], COMMON_RESOLUTION_MM, sk)
        ol, on, _ = components(out[box], connectivity=26)
        touch = np.zeros(on + 1, bool)
        touch[ol[near]] = True
        touch[0] = False
        out[box] &= ~touch[ol]
    ml = float(np.count_nonzero(out)) * ct.voxel_volume_ml
    if notes is not None and ml >= RIB_MIN_ML:
        hu = np.percentile(raw[out[box]], [10, 90])
        notes.append(f"{ml:.1f} mL of tissue at bone-threshold density ({hu[0]:.0f}-{hu[1]:.0f} HU) lying inside a "
                     "thick solid mass with no cortex is not labelled bone: an enhancing organ (spleen, liver, "
                     "kidney on a contrast CT) or a soft-tissue tumour; it is left unlabelled, and below 250 HU "
                     "the planner's CT density check does not block it: check it on the images and keep a "
                     "needle out of it if it is an organ to spare")
    return out


def spine_front_y(ct: Volume, body: np.ndarray, lungs: np.ndarray | None,
                  trachea: np.ndarray | None, y: np.ndarray | None = None,
                  canal=None, notes: list | None = None) -> float | np.ndarray:
    """RAS y (mm) in front of which no bone is spine: the front bound of the spine corridor (a
    float, or with the trachea an array broadcastable to [k, j, i] that holds one per axial slice).

    The vertebral column lies in the back of the trunk: behind the body's antero-posterior
    centre (+5 mm), which is known only when the body is wholly in view along that axis (the
    front and the back skin both inside the field of view). A view that cuts the body at its
    front or back (a half chest, a targeted reconstruction) moves that centre: an anterior half's
    centre lies in front of the heart, and the manubrium and sternum fell behind it (23 mL of
    the chest CTA's sternum named 'vertebrae'); a posterior half's cut its vertebral bodies in
    two. The bound is then taken from the organs that lie in front of the column:

    - the trachea, in the midline directly in front of the oesophagus, which lies on the
      vertebral bodies; the manubrium and sternum lie in front of the trachea and the heart
      (Gray's Anatomy, 42nd ed., "Mediastinum"): in each axial slice that holds the trachea the
      bound is its back wall (its rearmost lumen voxel), in the slices without it the most
      anterior of those walls; a slice whose trachea the view's back face cuts has no spine in
      view, and where it cuts every slice, no spine is in view;
      The trachea places the bound also where the body is wholly in view but no lung is (a neck
      or thoracic-inlet field, `airways._neck_tube`): in the neck the vertebral column is not in
      the back of the section but at its middle, behind the trachea and oesophagus, with the
      thick posterior neck muscles behind it (Gray's Anatomy, 42nd ed., "Neck"), and the body's
      centre cut the cervicothoracic vertebral bodies off (new-user trial 103 F3.2: the chest
      CTA's top 28 mm named only the neural arches 'vertebrae');
    - else, where the view cuts the body's back only (its front in view), the lungs: their
      medial surfaces wrap the vertebral bodies in the paravertebral gutters behind the heart,
      and they meet in front of the heart only behind the sternum: the bound is the lungs'
      antero-posterior centre. Not where the back is in view: the lung bases lie in the
      posterior recesses beside the lower vertebrae, and their centre cut the spine of the
      TotalSegmentator example's posterior half and central crop (183 -> 26 mL);
    - else the spinal canal when one is in view (``canal``: a function giving
      `spine.spinal_canal`'s result or None, called only here): the vertebral body lies wholly
      in front of the canal, its front at most ``spine_front_from_canal_mm`` in front of it;
    - else the body's centre in view, as before (nothing better is known; the TS example's
      posterior half keeps 68 of its 184 mL of vertebrae).

    ct: the CT Volume; body, lungs, trachea: bool [k, j, i] (lungs, trachea may be None);
    y: RAS y of every voxel (`ras_coordinate(ct, 1)`, broadcastable) when the caller has it.
    notes: a list to which a sentence is added when the view is cut in front or behind and only
    the body's centre places the bound (the spine may then be cut in two)."""
    y = ras_coordinate(ct, 1) if y is None else y
    yb = np.broadcast_to(y, body.shape)
    a_ax, a_sign = anatomical_axes(ct)["A"]
    cut = []                       # whether the view cuts the body at its back, at its front
    idx = [slice(None)] * 3
    for end in ((0, body.shape[a_ax] - 1) if a_sign > 0 else (body.shape[a_ax] - 1, 0)):
        idx[a_ax] = end
        cut.append(bool(body[tuple(idx)].any()))
    neck = trachea is not None and trachea.any() and (lungs is None or not lungs.any())
    if not any(cut) and not neck:
        return float(np.median(yb[body])) + 5.0
    if trachea is not None and trachea.any():
        # per axial slice, the trachea's back wall (its rearmost lumen voxel), on the slices
        # where the view's back face does not cut it; the column lies behind the most anterior
        # of them (the thoracic inlet: the trachea follows the kyphosis down and back)
        ax = anatomical_axes(ct)
        s_ax, (a_ax, a_sign) = ax["S"][0], ax["A"]
        other = tuple(a for a in range(3) if a != s_ax)
        back = np.where(trachea, yb, np.inf).min(axis=other)
        idx[a_ax] = 0 if a_sign > 0 else body.shape[a_ax] - 1
        face = np.zeros(body.shape, bool)
        face[tuple(idx)] = True
        cut = np.any(trachea & face, axis=other)
        seen = np.isfinite(back) & ~cut
        if not seen.any():
            return -np.inf
        # in a slice that holds the trachea the column lies behind ITS back wall: the most
        # anterior wall of all slices is the bound only where the trachea is not in the slice
        # (trial 40 H2: on the CTA's anterior half the bound of the lowest slices, where the
        # trachea's label ran into the bronchi in front, let the manubrium of the upper slices
        # in: 14 mL named 'vertebrae')
        # (a slice whose trachea the back face cuts has its column behind the view: no spine)
        bound = np.where(seen, back, np.where(cut, -np.inf, back[seen].max()))
        shape = [1, 1, 1]
        shape[s_ax] = -1
        return bound.reshape(shape)
    if lungs is not None and lungs.any() and cut == [True, False]:
        return float(yb[lungs].mean())
    found = canal() if canal is not None else None
    if found:
        # the spinal canal in view (`spine.spinal_canal`): the vertebral bodies lie wholly in
        # front of it, their front at most ``spine_front_from_canal_mm`` in front of the canal's
        # centre; the rings lie within ``spinal_canal_align_mm`` of the median centre found
        # (trial 40 M1: the CTA's posterior half, no trachea, its bound at the body's centre
        # cut the vertebral bodies: 95 mL of them 'bone')
        return float(found["y_mm"]) + rule("spinal_canal_align_mm") + rule("spine_front_from_canal_mm")
    if notes is not None:
        has_lungs = lungs is not None and lungs.any()
        # trial 46 L10: a lower-third crop (lungs in view, cut at front and back) was told "no lungs"
        notes.append("the field of view cuts the body at its " + ("back and front" if all(cut) else "back" if cut[0] else "front")
                     + " and shows no trachea" + (" or lungs" if cut[0] and not has_lungs else "") + " and no spinal canal "
                     "to place the spine by" + (" (the lungs place it only when the back alone is cut)" if cut[0] and has_lungs else "")
                     + ": the spine's front is taken at the body's centre in view, so "
                     "vertebrae may be partly labelled 'bone' (or other bone 'vertebrae'); check the spine")
    return float(np.median(yb[body])) + 5.0


def _planning_default(section: str, key: str) -> float:
    """A number of planning_defaults.json (``section``, ``key``), read from the one place that
    defines it for the planner too."""
    import json
    from importlib import resources

    d = json.loads(resources.files("imagio.data").joinpath("planning_defaults.json").read_text(encoding="utf-8"))
    return float(d[section][key])


def mediastinum_behind_vertebra_mm() -> float:
    """The back of the mediastinum's visceral compartment behind the vertebral bodies' anterior
    margin (mm; planning_defaults.json ``warnings.mediastinum_behind_vertebra_mm``, ITMIG:
    Carter 2014), read from the one place that defines it for the planner's mediastinum too."""
    return _planning_default("warnings", "mediastinum_behind_vertebra_mm")


def cortical_hu() -> float:
    """The density of cortical bone not lowered by partial volume (HU; planning_defaults.json
    ``ct_density.cortical_hu``: +700 to +1,900 HU), the one value the planner's density check
    names bone by."""
    return _planning_default("ct_density", "cortical_hu")


def rib_pieces(ct: Volume, rest: np.ndarray, lungs: np.ndarray, midline: float,
               notes: list | None = None) -> np.ndarray:
    """Boolean [k, j, i]: the ribs among ``rest`` (bone that is not spine, [k, j, i]), decided per
    rib segment, not per connected component.

    The thin bone (outside the opening of ``rest`` by a ball of ``RIB_MAX_RADIUS_MM``: a rib's
    cross-section is ~5-15 mm, the sternal body, the humeral head and the thick parts of the
    clavicle and scapula hold a larger ball) is cut into segments along its curve skeleton
    (`bone_segments`: a rib is one branch between its costovertebral and costochondral
    junctions; the bridges by which partial volume joins it to a neighbouring rib, the scapula,
    the clavicle or the sternum meet it at branch points). A segment is a rib seed when at least
    half of its voxels each

    - lie within ``RIB_LUNG_MM`` of the lungs (the ribs lie on the parietal pleura; the scapula
      is separated from them by the serratus anterior and subscapularis),
    - lie in the chest wall: `outside_the_lungs`, or below the lung base (the step from the
      nearest lung voxel points down more than sideways); the venae cavae, the heart and the
      great vessels, whose undiluted contrast can reach bone density, lie medial to the lungs,
    - lie lateral to the midline by ``SPINE_HALF_WIDTH_MM`` or more (no rib crosses the
      midline; the sternum, manubrium up to ~60 mm wide, lies within it).

    A segment farther from the lungs continues a rib when its thin component holds a seed, at
    least half of it lies in the chest wall under the lungs (lung above it, within
    ``RIB_LUNG_MM`` in-plane) and it is lateral: the lower ribs run on beyond the lung base over
    the liver and spleen (the pleura reaches two ribs lower than the lung, the costal margin
    lower still); the scapula, the clavicle and the humerus have no lung above them.
    Sources: Gray's Anatomy, 42nd ed., "Chest wall" (thoracic cage, ribs and their joints);
    rib cross-sections of ribs 2-11 measured on the CT of 240 adults: Holcombe SA et al., Front
    Bioeng Biotechnol 2023;11:1158242 (constants in segmentation_rules.json).

    Why per segment: one thin component can join the ribs of both sides through the sternum, the
    clavicles and the scapulae; deciding it as a whole turned 270 mL of the chest CTA's ribs into
    'bone' (or the shoulders into ribs) as soon as its near-lung share crossed one half, and a
    crop or another slice thickness moves that share (E7: 217-235 mL of ribs became 'bone' on
    crops of the chest CTA and at 0.7 x 0.7 x 5 mm). ``midline``: RAS x (mm) of the patient's
    midline. Pieces under ``RIB_MIN_ML`` are left to 'bone'."""
    sk = np.asarray(ct.spacing_kji, float)
    thin = rest & ~open_mm(rest, RIB_MAX_RADIUS_MM, sk)
    if not thin.any():
        return thin
    p_kji = np.argwhere(thin)  # thin's voxels in C order
    # the voxels that can be near the lungs or under them: within RIB_LUNG_MM of the lungs'
    # bounding box, or within RIB_LUNG_MM in-plane of a lung column
    s_ax = anatomical_axes(ct)["S"][0]
    plane = [ax for ax in range(3) if ax != s_ax]
    cols = dilate_mm(np.expand_dims(lungs.any(axis=s_ax), -1), RIB_LUNG_MM, (*sk[plane], 1.0))
    foot = cols[..., 0][tuple(p_kji[:, plane].T)]
    lb = bbox_slices(lungs, RIB_LUNG_MM, sk)
    inbox = np.all((p_kji >= [b.start for b in lb]) & (p_kji < [b.stop for b in lb]), axis=1)
    dist, out, step = np.full(len(p_kji), np.inf), np.zeros(len(p_kji), bool), np.zeros(
        (len(p_kji), 3))
    ask = foot | inbox
    dist[ask], out[ask], step[ask] = lung_steps(lungs, ct, midline, p_kji[ask])
    near_v = (dist > 0) & (dist <= RIB_LUNG_MM)  # within RIB_LUNG_MM of the lungs, outside them
    # only a thin component with a voxel near the lungs can hold a rib seed or continue one
    cl, cn, _ = components(thin, connectivity=26)
    comp = cl[thin].astype(np.int64)
    del cl
    has = np.zeros(cn + 1, bool)
    has[comp[near_v]] = True
    sel = has[comp]
    p_kji, comp, dist, out, step, near_v, foot = (
        v[sel] for v in (p_kji, comp, dist, out, step, near_v, foot))
    seg, n = bone_segments(p_kji, comp, sk)
    cnt = np.bincount(seg, minlength=n + 1)
    near = np.bincount(seg[near_v], minlength=n + 1)
    # in the chest wall: outside the lungs, or below the lung base (the step from the nearest
    # lung voxel points down more than sideways)
    wall_v = out | (-step[:, 2] > np.hypot(step[:, 0], step[:, 1]))
    wall = np.bincount(seg[wall_v], minlength=n + 1)
    # lateral to the midline: the ribs join the spine and, through their cartilages, the
    # sternum's lateral borders; none crosses the midline, and the sternum (manubrium up to
    # ~60 mm wide) lies within the spine corridor's half-width of it (Gray's Anatomy, "Sternum")
    x = ct.ijk_to_ras[0, 3] + p_kji[:, ::-1] @ ct.ijk_to_ras[0, :3]
    lateral = np.bincount(seg[np.abs(x - midline) >= SPINE_HALF_WIDTH_MM],
                          minlength=n + 1) >= 0.5 * cnt
    seed = (near >= 0.5 * cnt) & (wall >= 0.5 * cnt) & lateral
    seed[0] = False
    # a segment far from the lungs but under them continues a rib seed of its thin component
    # (lower ribs beyond the lung base; see the docstring): at least half of its voxels under
    # the lungs (those near the lungs are: a lung voxel has lung above it) and in the chest wall
    seg_comp = np.zeros(n + 1, np.int64)
    seg_comp[seg] = comp
    comp_seed = np.zeros(cn + 1, bool)
    comp_seed[seg_comp[seed]] = True
    comp_seed[0] = False
    may_go_on = comp_seed[seg_comp] & lateral & ~seed
    may_go_on[0] = False
    yes = np.bincount(seg[near_v & wall_v], minlength=n + 1)
    maybe = wall_v & ~near_v & foot  # under the lungs only if within a lung column's reach
    undecided = may_go_on & (yes < 0.5 * cnt) & (
        yes + np.bincount(seg[maybe], minlength=n + 1) >= 0.5 * cnt)
    ask = np.flatnonzero(maybe & undecided[seg])
    if len(ask):
        yes += np.bincount(seg[ask[under_the_lungs(lungs, ct, p_kji[ask])]], minlength=n + 1)
    is_rib = seed | (may_go_on & (yes >= 0.5 * cnt))
    ribs = np.zeros_like(thin)
    ribs[tuple(p_kji[is_rib[seg]].T)] = True
    box = bbox_slices(ribs, RIB_MAX_RADIUS_MM + COMMON_RESOLUTION_MM, sk)
    if box is None:
        return ribs
    organ = solid_organ_pieces(ribs[box], ct.array[box] >= BONE_LOW_HU, sk)
    organ_ml = float(np.count_nonzero(organ)) * ct.voxel_volume_ml
    if notes is not None and organ_ml >= RIB_MIN_ML:
        # trial 56 M1: the enhancing spleen kept out of the ribs stays in 'bone', unsaid
        notes.append(f"{organ_ml:.1f} mL of bone-density tissue lying inside a thick solid mass (an enhancing organ "
                     "such as the spleen or liver read at this slice thickness, or a bone tumour) was kept out of "
                     "the ribs: where it has cortex it is labelled 'bone' (a needle is kept out of it as out of any "
                     "bone), where it has none it is left unlabelled (see the note on enhancing organs); check it "
                     "on the images")
    ribs[box] &= ~organ
    rl, rn, rc = components(ribs[box], connectivity=26)
    small = rc * ct.voxel_volume_ml < RIB_MIN_ML
    small[0] = False
    ribs[box] &= ~small[rl]
    return ribs


def wall_rib_pieces(ct: Volume, rest: np.ndarray, midline: float) -> np.ndarray:
    """Boolean [k, j, i]: the ribs among ``rest`` (bone that is not spine, [k, j, i]) in a field
    of view that holds a vertebral column but no lungs (an upper abdomen below the lung bases:
    the lower ribs run on around the liver, spleen and kidneys beyond the lungs' costodiaphragmatic
    recesses). ``midline``: RAS x (mm) of the patient's midline (the spinal canal's).

    A 26-connected piece of ``rest`` is rib when it is thin as a whole (no ball of
    ``RIB_MAX_RADIUS_MM`` fits anywhere in it once each axial slice's holes are filled:
    `rib_pieces`' thinness; the hip bone holds one in its acetabulum and posterior ilium, the
    sacrum in its body, a long bone (femur, humerus: a cortical tube, Gray's Anatomy) in its
    cross-section with its marrow cavity; the TS DICOM example's humeri, arms down beside the
    trunk, were 26 mL of 'ribs' without the filling), at least half of it lies farther from the midline than the
    vertebrae's transverse processes reach (``transverse_process_reach_mm``, segmentation_rules.json:
    the ribs articulate with the column at the transverse processes and run laterally and
    anteriorly around the body wall; the tips of the lumbar transverse processes, left outside
    the spine's corridor, are thin too: the TotalSegmentator example's L1-L4 gave pieces of
    0.2-1.0 mL at 36-54 mm, median 37-42 mm, named ribs with the corridor's half-width as the bound;
    none crosses the midline, which the xiphoid and the sternum hold), it is a bar: at least
    ``rib_min_length_mm`` (segmentation_rules.json) along its own first principal axis
    (`_principal_extent_mm`; a renal stone or a pelvic calcification is compact: new-user trial
    103 F3.1), and it is at least ``RIB_MIN_ML``. Without the lungs the pleura does
    not place them; the column in view (the caller's condition) says that the view is of the
    trunk, and the ribs are the only thin bars of bone lateral to it in the body wall between the
    lung bases and the iliac crests (Gray's Anatomy, 42nd ed., "Chest wall", "Abdominal wall").
    An enhancing organ that passes the bone threshold as a thin sponge is kept out as in
    `rib_pieces` (`solid_organ_pieces`)."""
    sk = np.asarray(ct.spacing_kji, float)
    lab, n, cnt = components(rest, connectivity=26)
    if not n:
        return np.zeros_like(rest)
    # (each axial slice's holes filled first: a long bone is a cortical tube around its marrow
    # cavity, whose fatty marrow reads below bone density, and the tube is as thin as a rib; its
    # cross-section with the cavity is not. A rib is cortex around cancellous bone, no cavity)
    solid = fill_holes_per_slice(rest, anatomical_axes(ct)["S"][0])
    thick = np.bincount(lab[open_mm(solid, RIB_MAX_RADIUS_MM, sk) & rest], minlength=n + 1) > 0
    x = np.broadcast_to(ras_ramp(ct, 0), rest.shape)
    side = rest & (np.abs(x - float(midline)) >= rule("transverse_process_reach_mm"))
    lateral = np.bincount(lab[side], minlength=n + 1) >= 0.5 * cnt
    keep = ~thick & lateral & (cnt * ct.voxel_volume_ml >= RIB_MIN_ML)
    keep[0] = False
    keep &= _principal_extent_mm(ct, lab, keep) >= rule("rib_min_length_mm")   # a bar, not a dense focus
    ribs = keep[lab]
    box = bbox_slices(ribs, RIB_MAX_RADIUS_MM + COMMON_RESOLUTION_MM, sk)
    if box is not None:
        ribs[box] &= ~solid_organ_pieces(ribs[box], ct.array[box] >= BONE_LOW_HU, sk)
    return ribs


def _principal_extent_mm(ct: Volume, lab: np.ndarray, which: np.ndarray) -> np.ndarray:
    """[n + 1] mm: for each label of ``lab`` ([k, j, i] int, 0 background) flagged in ``which``
    ([n + 1] bool), the extent of its voxel centres (world mm) along its own first principal axis
    (the eigenvector of the largest eigenvalue of their covariance); 0 for the others. A bar's
    length, a compact blob's diameter."""
    out = np.zeros(len(which))
    ids = np.flatnonzero(which)
    if not len(ids):
        return out
    sel = which[lab]
    pts = ct.kji_to_world(np.argwhere(sel).astype(float))
    li = np.searchsorted(ids, lab[sel])
    n = np.bincount(li, minlength=len(ids)).astype(float)
    mean = np.stack([np.bincount(li, pts[:, a], len(ids)) for a in range(3)], 1) / n[:, None]
    d = pts - mean[li]
    cov = np.stack([np.stack([np.bincount(li, d[:, a] * d[:, b], len(ids)) for b in range(3)], 1)
                    for a in range(3)], 1) / n[:, None, None]
    axis = np.linalg.eigh(cov)[1][:, :, -1]   # (m, 3): the largest eigenvalue's eigenvector
    t = np.einsum("ij,ij->i", d, axis[li])
    hi = np.full(len(ids), -np.inf)
    lo = np.full(len(ids), np.inf)
    np.maximum.at(hi, li, t)
    np.minimum.at(lo, li, t)
    out[ids] = hi - lo
    return out


CLAVICLE_BELOW_APEX_MM = rule("clavicle_below_apex_mm")  # the clavicle's level (segmentation_rules.json)


def clavicle_pieces(ct: Volume, ribs: np.ndarray, spine: np.ndarray, lungs: np.ndarray,
                    midline: float | None = None) -> np.ndarray:
    """Boolean [k, j, i]: the parts of ``ribs`` (bool [k, j, i], `rib_pieces`) that are a clavicle's
    shaft, not a rib. ``spine``: the 'vertebrae' mask, ``lungs``: both lungs (bool [k, j, i]). A
    26-connected piece of ``ribs`` is clavicle when (`_clavicle_labels`)

    - the lungs' apex is in view (no lung voxel on the view's superior face; otherwise the
      apex, and with it the clavicle's level, is unknown),
    - it lies wholly in front of the vertebral bodies at its own levels: each of its voxels is
      anterior (RAS y) to the most anterior 'vertebrae' voxel whose RAS z lies within the
      piece's z range (at least one must); every rib articulates with its vertebra behind that
      line (costovertebral and costotransverse joints), while the clavicle runs from the
      manubrium to the acromion in front of the thoracic cage and never reaches the spine,
    - its median RAS z lies within ``CLAVICLE_BELOW_APEX_MM`` below the lungs' highest point:
      the apex rises 2-3 cm above the medial third of the clavicle; the first rib runs below
      the clavicle and reaches the manubrium lower still (Gray's Anatomy, 42nd ed., "Pleura",
      "Pectoral girdle", "Chest wall").

    A piece that is not clavicle as a whole is split into the bones it joins (`bone_regions`:
    from its unblurred cortex, ``cortical_hu``, along its densest voxels), and a region is
    clavicle when it passes the same tests and also
    
    - lies apart from the pleura: none of its voxels within one common-resolution voxel
      (``COMMON_RESOLUTION_MM``, the bone mask's blur) of the lungs. The first rib's inner border
      gives attachment to the suprapleural membrane and the cervical pleura lies on the rib (a
      first rib's region touches the lung mask), while the clavicle is separated from the
      pleura by the subclavian vessels, the subclavius and the first rib itself (Gray's
      Anatomy, 42nd ed., "Root of the neck", "Pleura");
    - lies lateral: at least half of its voxels ``SPINE_HALF_WIDTH_MM`` or more from the
      ``midline`` (RAS x, mm; without it no piece is split). The clavicle's shaft runs laterally
      from the sternoclavicular joint, beside the manubrium (up to ~60 mm wide), to the
      acromion; the first rib's anterior end, apart from the pleura, meets the manubrium's side
      (Gray's, "Sternum", "Pectoral girdle"; `rib_pieces` uses the same half-width).

    Why: the clavicle's shaft is thin bone within ``RIB_LUNG_MM`` of the apex, so `rib_pieces`
    takes it for a rib (issue 14: the chest CTA's left clavicle, 3.2 of its 3.7 mL in 'ribs', in
    one piece apart from the spine). The right clavicle of that CT was one 26.2 mL piece with the
    first rib, which reaches the spine: at the bone mask's 3 mm common resolution the clavicle,
    the rim of the subclavian vein's undiluted contrast under it and the first rib below touch,
    while on the 1.5 mm grid each bone's unblurred cortex is a core of its own; the clavicle's
    region (6.0 mL) lies 7 mm or more from the lungs, the first rib's regions within 2 mm."""
    out = np.zeros_like(ribs)
    if not (ribs.any() and spine.any() and lungs.any()):
        return out
    s_ax, s_sign = anatomical_axes(ct)["S"]
    top = ribs.shape[s_ax] - 1 if s_sign > 0 else 0
    if lungs.take(top, axis=s_ax).any():
        return out
    # the lungs' highest point (RAS z): in their highest plane along the array axis nearest superior
    idx = np.flatnonzero(lungs.any(axis=tuple(ax for ax in range(3) if ax != s_ax)))
    hi = int(idx[-1] if s_sign > 0 else idx[0])
    sl = [slice(None)] * 3
    sl[s_ax] = slice(hi, hi + 1)
    p = np.argwhere(lungs[tuple(sl)])
    p[:, s_ax] += hi
    apex = float(ct.kji_to_world(p)[:, 2].max())
    sw = ct.kji_to_world(np.argwhere(spine))[:, 1:]  # RAS (y, z) of the vertebrae
    lab, n, _ = components(ribs, connectivity=26)
    clav, top_z = _clavicle_labels(ct, lab, n, (0, 0, 0), sw, apex)
    out = clav[lab]
    # the pieces that are not clavicle as a whole and reach the clavicle's level: split into the
    # bones they join
    joined = ~clav & (top_z >= apex - CLAVICLE_BELOW_APEX_MM)
    joined[0] = False
    if midline is None or not joined.any():
        return out
    cand = joined[lab]
    sk = np.asarray(ct.spacing_kji, float)
    box = bbox_slices(cand, COMMON_RESOLUTION_MM, sk)
    reg, rn = bone_regions(cand[box], np.asarray(ct.array)[box], cortical_hu())
    if not rn:
        return out
    off = tuple(b.start for b in box)
    ok, _ = _clavicle_labels(ct, reg, rn, off, sw, apex)
    # apart from the pleura: no voxel within one common-resolution voxel of the lungs
    pleura = np.zeros(rn + 1, bool)
    pleura[np.unique(reg[dilate_mm(lungs[box], COMMON_RESOLUTION_MM, sk) & (reg > 0)])] = True
    ok &= ~pleura
    # lateral: at least half of the region's voxels beside the manubrium or beyond
    x = np.broadcast_to(ras_ramp(ct, 0), ct.shape)[box]
    side = np.abs(x - float(midline)) >= SPINE_HALF_WIDTH_MM
    ok &= np.bincount(reg[side & (reg > 0)], minlength=rn + 1) >= 0.5 * np.bincount(reg.ravel(), minlength=rn + 1)
    ok[0] = False
    out[box] |= ok[reg]
    return out


def _clavicle_labels(ct: Volume, lab: np.ndarray, n: int, offset, sw: np.ndarray,
                     apex: float) -> tuple[np.ndarray, np.ndarray]:
    """(bool [n + 1], float [n + 1]): for each label 1..n of ``lab`` (int [k, j, i], a box of
    ``ct``'s grid whose first voxel is ``offset``, (k, j, i)), whether it passes
    `clavicle_pieces`' level and in-front-of-the-spine tests, and its highest RAS z (-inf for
    label 0). ``sw``: float [N, 2], RAS (y, z) of the 'vertebrae' voxels; ``apex``: RAS z of the
    lungs' highest point (mm)."""
    clav = np.zeros(n + 1, bool)
    top_z = np.full(n + 1, -np.inf)
    pk = np.argwhere(lab)
    if not len(pk):
        return clav, top_z
    w = ct.kji_to_world(pk + np.asarray(offset))[:, 1:]
    pl = lab[tuple(pk.T)]
    order = np.argsort(pl, kind="stable")
    starts = np.searchsorted(pl[order], np.arange(1, n + 2))
    for c in range(1, n + 1):   # per piece (tens of them), not per voxel
        yz = w[order[starts[c - 1]:starts[c]]]
        if not len(yz):
            continue
        top_z[c] = float(yz[:, 1].max())
        if np.median(yz[:, 1]) < apex - CLAVICLE_BELOW_APEX_MM:
            continue
        level = (sw[:, 1] >= yz[:, 1].min()) & (sw[:, 1] <= yz[:, 1].max())
        clav[c] = bool(level.any()) and float(yz[:, 0].min()) > float(sw[level, 0].max())
    return clav, top_z


def bone_regions(mask: np.ndarray, a: np.ndarray, core_hu: float) -> tuple[np.ndarray, int]:
    """(int [k, j, i], n): ``mask`` (bool [k, j, i]) split into the bones it joins: each
    26-connected core of unblurred cortex (``mask`` & ``a`` >= ``core_hu``; ``a``: the CT in HU on
    the same grid) grown over ``mask`` along the densest voxels first (a marker-controlled
    watershed of -``a``, scikit-image; Beucher S, Meyer F, The morphological approach to
    segmentation: the watershed transformation, 1993), so that two bones meet at the least
    dense voxels between them. Voxels of a component with no core are 0; labels 1..n.

    Why: two bones a few millimetres apart (the clavicle over the first rib, with the
    subclavian vein between them) touch in a mask thresholded after blurring to a coarse grid,
    but the voxels between them are partial volume of bone and soft tissue (or contrast), below
    the density of cortex that partial volume has not lowered (``cortical_hu``: +700 to +1,900
    HU; Prevrhal S et al., Phys Med Biol 1999;44:751-764), so each bone keeps a core of its own."""
    from skimage.segmentation import watershed

    cores, n, _ = components(mask & (a >= core_hu), connectivity=26)
    if not n:
        return cores, 0
    reg = watershed(-a.astype(np.float32), markers=cores, mask=mask, connectivity=3)
    return reg.astype(np.int64, copy=False), n


def solid_organ_pieces(ribs: np.ndarray, dense: np.ndarray, spacing_kji,
                       cortex: np.ndarray | None = None) -> np.ndarray:
    """Boolean [k, j, i]: the 26-connected pieces of ``ribs`` (bool [k, j, i], ``spacing_kji`` mm)
    that lie, for at least half of their voxels, inside a thick solid mass: the union of the
    balls of ``RIB_MAX_RADIUS_MM`` that fit in ``ribs`` | ``dense`` (``dense``: tissue at or
    above trabecular bone's lower bound ``BONE_LOW_HU``, bool [k, j, i]) once its gaps of one
    common-resolution voxel are closed (`close_mm` by ``COMMON_RESOLUTION_MM``: noise).

    Why: a rib is a thin curved bar lying in the chest wall (no ball of ``RIB_MAX_RADIUS_MM``
    fits in it; Holcombe SA et al., Front Bioeng Biotechnol 2023;11:1158242; Gray's Anatomy,
    42nd ed., 'Chest wall'), surrounded by muscle, fat and lung. An enhancing solid organ (the
    spleen or liver of a CT angiography, 150-300 HU) passes the bone threshold only in part, as
    a sponge or a shell in which no ball fits, so the thinness test of `rib_pieces` took it for
    rib (new-user trial 53 H1: 42 mL of the chest CTA's spleen named ribs at 3 mm, unsaid). Read
    with the organ's tissue around it, the piece lies inside a thick mass; a rib beside an organ
    has at most its inner surface in the balls that fit in the organ.

    cortex: optional bool [k, j, i], cortical-bone density (`split_bones`: the CT at the common
    resolution above ``BONE_SEED_HU``): a piece is then refused only when less than
    ``MIN_SEED_SHARE`` of it is cortex. Bone is a cortical shell around cancellous bone or a thin
    cortical bar (Gray's Anatomy, 'Bone'); a thick solid mass at bone-threshold density without
    cortex is an enhancing organ (the chest CTA's spleen at 3 mm: 63 mL labelled 'bone', trial
    56 M1), whereas a vertebral body, the sternum or a humeral head, thick too, has its cortex."""
    sk = np.asarray(spacing_kji, float)
    solid = open_mm(close_mm(ribs | dense, COMMON_RESOLUTION_MM, sk), RIB_MAX_RADIUS_MM, sk)
    lab, n, cnt = components(ribs, connectivity=26)
    inside = np.bincount(lab[solid & ribs], minlength=n + 1)
    refuse = inside >= 0.5 * cnt
    if cortex is not None:
        refuse &= np.bincount(lab[cortex & ribs], minlength=n + 1) < MIN_SEED_SHARE * cnt
    refuse[0] = False
    return refuse[lab]


def under_the_lungs(lungs: np.ndarray, ct: Volume, p_kji: np.ndarray) -> np.ndarray:
    """Boolean [N] for int voxel indices [N, 3] [k, j, i]: within ``RIB_LUNG_MM`` (mm, Euclidean)
    of a voxel that has lung above it (a lung voxel in its column, superior or itself), i.e. of
    the lungs' shadow along the superior-inferior axis. Exact without a 3-D distance transform:
    with top(c) the height of column c's highest lung voxel, a point at height z is that close
    when some column c at in-plane distance r <= ``RIB_LUNG_MM`` has
    top(c) + sqrt(RIB_LUNG_MM^2 - r^2) >= z (a grey dilation of the 2-D map of top(c) by a
    hemisphere), taken at the asked columns only: per offset of the disk, the shifted map plus
    the hemisphere's height there, the maximum kept (scipy.ndimage.grey_dilation's sums and
    maximum, at those columns: the same values; issue 20, lung2's 23,000 rib columns: 0.98 ->
    0.34 CPU-s against the dilation of the whole map's box)."""
    sk = np.asarray(ct.spacing_kji, float)
    s_ax, s_sign = anatomical_axes(ct)["S"]
    plane = [ax for ax in range(3) if ax != s_ax]
    n_s = lungs.shape[s_ax]
    height = np.arange(n_s) * sk[s_ax] * s_sign  # mm, larger is superior
    first = np.argmax(lungs if s_sign < 0 else np.flip(lungs, axis=s_ax), axis=s_ax)
    top_i = first if s_sign < 0 else n_s - 1 - first  # the highest lung voxel per column
    low = -1e9
    top = np.where(lungs.any(axis=s_ax), height[top_i], low)
    u = p_kji[:, plane]
    g = np.floor(RIB_LUNG_MM / sk[plane]).astype(int)
    du, dv = np.meshgrid(np.arange(-g[0], g[0] + 1) * sk[plane[0]],
                         np.arange(-g[1], g[1] + 1) * sk[plane[1]], indexing="ij")
    r2 = du ** 2 + dv ** 2
    disk = r2 <= RIB_LUNG_MM ** 2
    cap = np.sqrt(np.where(disk, RIB_LUNG_MM ** 2 - r2, 0.0))   # symmetric: its reflection is itself
    if u.shape[0] == 0:
        return np.zeros(0, bool)
    cols, inv = np.unique(u[:, 0] * top.shape[1] + u[:, 1], return_inverse=True)
    cu, cv = np.divmod(cols, top.shape[1])
    grown = np.pad(top, ((g[0], g[0]), (g[1], g[1])), constant_values=low)   # beyond the map: low
    reach = np.full(cols.size, -np.inf)
    for a, b in zip(*np.nonzero(disk)):
        np.maximum(reach, grown[cu + a, cv + b] + cap[a, b], out=reach)
    return height[p_kji[:, s_ax]] <= reach[inv.reshape(-1)] + 1e-6


def bone_segments(p_kji: np.ndarray, comp: np.ndarray, spacing_kji) -> tuple[np.ndarray, int]:
    """Label thin bone by the branches of its curve skeleton. ``p_kji``: int [N, 3] voxel indices
    [k, j, i] of the bone; ``comp``: int [N] their 26-connected component labels (1..).
    Returns int64 [N] labels (1..) and the largest label. The skeleton (scikit-image's 3-D
    thinning, Lee TC, Kashyap RL, Chu CN, Building skeleton models via 3-D medial surface/axis
    thinning algorithms, CVGIP 1994;56:462-478) is cut at its branch points (skeleton voxels
    with three or more 26-neighbours, and their neighbours); every voxel takes the branch nearest
    to it (exact Euclidean distance in mm, ``spacing_kji``, by a k-d tree of the branch voxels)
    when that branch lies in its own component, otherwise (a compact piece whose skeleton is
    all branch points) its component's own label."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree
    from skimage.morphology import skeletonize

    if not len(p_kji):   # no thin bone (new-user trial 105: a traceback on an MR mapped to HU)
        return np.zeros(0, np.int64), 0
    sk = np.asarray(spacing_kji, float)
    lo = p_kji.min(0) - 1  # one empty voxel around the bone
    t = np.zeros(tuple(p_kji.max(0) - lo + 2), bool)
    t[tuple((p_kji - lo).T)] = True
    flat = (skeletonize(t) > 0).ravel()
    del t
    shape = np.array(p_kji.max(0) - lo + 2)
    sidx = np.flatnonzero(flat)
    st = np.array([shape[1] * shape[2], shape[2], 1])
    offs = [int(np.dot(np.array(d) - 1, st)) for d in np.ndindex(3, 3, 3) if d != (1, 1, 1)]
    nb = np.zeros(len(sidx), np.int16)
    for o in offs:
        nb += flat[sidx + o]
    bp = sidx[nb >= 3]  # branch points (>= 3 neighbours); they and their neighbours are cut
    del flat
    bidx = sidx[~np.isin(sidx, np.concatenate([bp + o for o in [0] + offs]))]  # on branches
    comp = np.asarray(comp, np.int64)
    cn = int(comp.max())
    if not len(bidx):
        return comp, cn
    # the branches: connected components of the branch voxels' 26-neighbour graph
    rows, cols = [], []
    for o in offs:
        j = np.searchsorted(bidx, bidx + o)
        hit = (j < len(bidx)) & (bidx[np.minimum(j, len(bidx) - 1)] == bidx + o)
        rows.append(np.flatnonzero(hit))
        cols.append(j[hit])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    n_br, blab = connected_components(coo_matrix((np.ones(len(rows), bool), (rows, cols)),
                                                 shape=(len(bidx), len(bidx))), directed=False)
    b_kji = np.stack(np.unravel_index(bidx, tuple(shape)), 1) + lo
    # each branch voxel's component: look it up among the bone's voxels (both in C order)
    key = np.ravel_multi_index(tuple((p_kji - lo).T), tuple(shape))
    b_comp = comp[np.searchsorted(key, bidx)]
    _, i = cKDTree(b_kji * sk).query(p_kji * sk)
    own = b_comp[i] == comp  # the nearest branch lies in the voxel's own component
    return np.where(own, blab[i].astype(np.int64) + 1, n_br + comp), n_br + cn


# measured (seg36, the midline of a cut trachea from its round lumen, `lungs.cut_lumen_centre_x`):
# ribs of the chest CTA's halves cut at its midline, against the uncropped run on the same voxels
RIB_CUT_VIEW_SHORTFALL = ("measured on the chest CTA cut at its midline: 2.7 mL of 111 mL of ribs short on its "
                          "right half, 8.6 of 98 mL on its left")


def spine_cut_note(ct: Volume, body: np.ndarray, spine_x: float) -> str:
    """A note when a left-right face of the field of view cuts the body within
    ``spine_half_width_mm`` (segmentation_rules.json) of the spine's midline ``spine_x`` (RAS x,
    mm): the vertebrae there are cut, and their cancellous bone, without the cortex in view, may be
    missing from the bone labels (new-user trial 51 H3), and the ribs beside the spine's corridor
    (`SPINE_HALF_WIDTH_MM` from a midline placed from part of the trachea) may be short
    (``RIB_CUT_VIEW_SHORTFALL``, seg36); "" otherwise. ``body``: bool [k, j, i]."""
    from .common import ras_coordinate

    lr, sign = anatomical_axes(ct)["R"]
    reach = rule("spine_half_width_mm")
    for end in (0, body.shape[lr] - 1):
        on = np.take(body, end, axis=lr)
        if not on.any():
            continue
        x = float(np.take(ras_coordinate(ct, 0), end, axis=lr)[on].mean())
        d = abs(x - float(spine_x))
        if d <= reach:
            side = "right" if (end > 0) == (sign > 0) else "left"
            return (f"the field of view's {side} face passes {d:.0f} mm from the midline (RAS x {spine_x:.1f} mm), "
                    f"within a vertebra's half width ({reach:g} mm): the vertebrae are cut there, and their "
                    "cancellous bone (about 100-300 HU), without its cortex in view, may be missing from the bone "
                    "labels (labelled body); the ribs there may be short as well: a rib is told from the spine and "
                    "the sternum by its distance from the midline, which a view cut near it places from the part of "
                    f"the trachea in view ({RIB_CUT_VIEW_SHORTFALL}); check the spine and the ribs' ends on the images "
                    "before planning near them")
    return ""

