"""Weights-free nodule detector: multi-scale Hessian dot filter inside the lungs.

Method (constants and sources in ``imagio/data/detection.json``):

1. The body and lungs are segmented on a 3 mm grid only to crop the CT to the lungs' box; the
   crop is resampled so no spacing is finer than ``work_spacing_mm`` (1.5 mm: candidate
   generation; slices are never refined) and the lungs are segmented again there. Each
   candidate is characterised later on the original CT (:mod:`imagio.detection.characterise`).
2. Lungs: IMAGIO's HU-rule segmenter (body, then lungs) unless a mask is given. The search
   region is that mask closed per axial section with a rolling ball of half the largest
   nodule diameter (Armato et al., Med Phys 2001), so juxta-pleural nodules, which sit in a
   concavity of the lung outline, are inside it. The closing is 2-D per section, so a thin
   slab that cuts the lungs is handled like a full chest. A candidate must be centred in one
   lung's own closing (:func:`search_region`; Armato et al., RadioGraphics 1999): the joint
   closing also bridges the mediastinum between the lungs, whose lymph nodes, oesophagus and
   vessels are not lung nodules. The lungs are the parenchyma without the airway tree, split
   left/right by :func:`imagio.segmentation.lung_fields.split_lungs` (Armato & MacMahon 1999;
   Hu 2001): the HU rule's lungs hold the trachea and main bronchi, whose split gave the left
   main bronchus and the subcarinal space to the right lung. The tree's lumen belongs to the
   hilum and mediastinum, not to the pleural outline (:func:`wall_structures`,
   :func:`concavity_candidates`). A candidate centred in bone that continues outside the
   search region (ribs, spine: :func:`chest_wall_bone`) is dropped too.
3. Dot filter (Li, Sone & Doi, Med Phys 2003): at each scale sigma (geometric, 3 per octave,
   Lindeberg 1998) the scale-normalised Hessian sigma^2 H of the Gaussian-smoothed CT; with
   eigenvalues sorted by magnitude |l1| >= |l2| >= |l3|, a bright blob has l1, l2, l3 < 0 and the
   dot response is |l3|^2 / |l1| (= |l3| for a ball, ~0 for a tube: vessel suppression). The
   response is kept at the best scale; a ball of radius r and contrast C answers best near
   sigma = r / sqrt(3) with 0.3084 C (derivation: the Laplacian of a Gaussian-blurred ball at its
   centre is -C 4 pi r^3 / sigma^2 (2 pi sigma^2)^-1.5 exp(-r^2 / 2 sigma^2), shared equally by
   the three eigenvalues), so the response is read as a contrast in HU. The scales run on a
   Gaussian pyramid (an axis is subsampled by 2 once the smoothing allows it), so each costs a
   few-voxel kernel on an ever smaller grid. At the scales of nodules below
   ``concavity_min_diameter_mm`` the filter runs on the CT with everything outside each lung's
   own closing (one voxel beyond it) set to the parenchyma (:func:`inside_region`): with the
   chest wall in the image a small juxta-pleural nodule is no blob; the larger ones are the
   concavity channel's, and at their scales the closing's filled hollows (hilum, recesses)
   would be blobs of their own.
4. Candidates: connected regions where the response exceeds the answer of the faintest nodule
   sought (``min_contrast_hu``) and the blobness |l3|/|l1| exceeds ``min_blobness`` (in the
   sub-solid channel also: the best scale is above its smallest, 6 mm; a response still rising
   toward it has its maximum over scale below the channel's range, Lindeberg 1998); the peak of
   each region, localised at the finest scale (:func:`localise_peaks`: the brightest voxel of
   the CT smoothed at the smallest sigma within half the radius; Lindeberg 1998), is the
   centre, 2 sqrt(3) sigma the diameter; weaker peaks inside a stronger
   candidate's sphere are merged into it. A candidate must be mostly in the lung: at least
   ``min_lung_shell_fraction`` of a shell around its sphere is lung (a juxta-pleural nodule on a
   flat pleura has about half; structures of the mediastinum or chest wall that the closing
   brought in have little). A peak centred in a wall structure (:func:`wall_structures`) is kept
   when the granulometry frees it (:func:`released_from_wall`) or when, from the 6 mm scale of a
   Lung-RADS category-3 nodule up, its centre lies on the lung's side of the pleura (more than
   ``lung_side_shell_fraction`` of its shell is lung: a nodule bulging into the lung; Felson 1973).
   A second channel adds what the dot filter cannot see: :func:`concavity_candidates`, dense
   round concavities of the lung outline (nodules and masses on the pleura or at the hilum);
   its candidates join the dots before the merge, ``features["channel"]`` says which found them.
   A third, on thin sections: :func:`fissure_candidates`, small flat solid blobs lying on a
   fissure whose dot response the fissure cancels below the contrast limit (perifissural
   nodules under about 5 mm), found by the fissure and their own density instead.
5. Features: contrast (HU), blobness, centre HU, solid fraction, distance to the pleura.
   Type from HU (calcified / solid / part-solid / ground-glass, ``type_hu``).
6. Probability: a ranking score in [0, 1], the geometric mean of two normalised terms, each
   0 at the detection limit and 1 for an ideal solid nodule:
   blobness term (b - b_min) / (1 - b_min) and contrast term (C - C_min) / (C_solid - C_min)
   with C_solid = 850 HU (soft tissue ~0 HU against parenchyma ~ -850 HU), clipped to [0, 1].
   For the sub-solid channel the contrast term runs from the bottom of the sub-solid range
   (-750 HU) to its top (-300 HU), both against the scan's parenchyma median; for the
   juxta-pleural channel roundness replaces blobness and the lung share around the lesion
   multiplies the score; for the mass channel the contrast term and the lung-side term below
   (1 for every kept mass, whose centre lies on the lung's side: :func:`mass_score`); for the dot and sub-solid channels the lung share of the shell around
   the candidate's sphere does (:func:`lung_side_term`: 0 at a quarter, 1 from a half): a
   nodule's centre lies on the lung's side of the pleura, a rib's, vertebra's or mediastinal
   contour's on the other (pleural-angle sign, Felson 1973). Perifissural nodules (solid,
   lentiform, on a fissure, short axis normal to it: de Hoop 2012) are flat, so Li's terms rank them with the vessels: on thin
   sections a solid dot peak lying on a fissure-like sheet normal to its flat axis is scored
   with a disc's blobness and its centre density as well (:func:`perifissural_scores`,
   :mod:`imagio.detection.fissure`; ``features["fissure_attached"]``). A dot peak up to
   about 11 mm that is part of a vessel branching or crossing, or a bump on a vessel thicker
   than itself (tissue of its density leaves its sphere through more than two of its own
   cross-sections; an end or a plain segment, one or two, keeps its score) has its score lowered (:func:`calibre_exit_scores`,
   ``features["calibre_exits"]``); a sub-solid peak, and a dot peak whose centre is of sub-solid
   density (typed ground-glass: :func:`dot_exit_scores`), by the exits of its own density counted on
   the CT without the solid structures the grid resolves and their rim (:func:`without_resolved_solid`;
   ``subsolid_exits``: one, the end of a ground-glass-density tube such as a
   thin airway wall seen through partial volume, halves it; two, a segment, gives 0). It ranks
   candidates (what FROC needs); it is not a calibrated probability of a nodule and says
   nothing about malignancy.
7. Sub-solid channel (:func:`subsolid_image`, after Jacobs C et al., Med Image Anal
   2014;18:374-384): the dot filter again, on the CT whose solid structures (> -300 HU) and
   their one-voxel rim are set to the parenchyma, at scales of nodules >= 6 mm; a candidate's
   centre must lie in -750..-300 HU. Only on sections <= 1.5 mm (Bankier 2017), else a warning.
8. Ranking (false-positive reduction, :mod:`imagio.detection.ranking`): the score of step 6 is
   the generation score (``features["generation_score"]``); every candidate but the mass
   channel's is then scored by a logistic model of it and of its region's shape around it, chiefly
   its core's thickness over the calibre of the thickest tube leaving it (a juxta-vascular nodule
   is a blob larger than the vessels touching it, a bifurcation or crossing is vessels of one
   calibre meeting; Murphy 2009, Jacobs 2014, Setio 2015), its weights in detection.json
   ``ranking``, fitted on phantom screening scans outside the benchmark's. The region features are
   in ``features`` (``contained``, ``branches``, ``core_to_branch``, ``flatness``, ``line_ratio``).
9. Anatomical exclusions (:mod:`imagio.detection.exclusions`): a candidate with bone of the axial
   skeleton (vertebral body, sternum) within half its radius of its centre, one centred outside
   the aerated lung whose core is fat (from 6 mm), and one cut open by the image's face stay in
   the list with the reason among their warnings but score 0 (``features["score_before_exclusion"]``
   keeps the score): nodules lie in the lung parenchyma (Fleischner glossary, Hansell 2008).

Known limits: the diameter is the blob-filter scale (steps of 26 %) or a component's
equivalent diameter, not a segmentation (a warning on every candidate; the characterisation,
:mod:`imagio.detection.characterise`, segments and types them); a ground-glass nodule has a
quarter of a vessel's contrast: the sub-solid channel finds those >= 6 mm on thin sections, but
its candidates rank below most solid ones and small or juxta-pleural ground-glass nodules are
still often missed; flat (perifissural, lentiform) nodules give a weak dot response; on
thin sections the fissure test lifts those whose fissure is seen, on thicker ones (and where the
fissure is not seen: incomplete fissures) they rank among vessel false positives; at voxels of 3 mm thin vessels and airway
walls alias into dots (many false positives): the detector is meant for <= 1.5 mm data.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..anatomy import AERATED_LUNG
from ..errors import InputError
from ..segmentation.common import (anatomical_axes, as_progress, bbox_slices, check_ct,
                                   close_mm)
from ..volume import Volume, make_ijk_to_ras
from . import Candidate, constants
from .exclusions import cut_by_face, exclusion_reason, fat_share, skeleton_share
from .ball import ball_box
from .ranking import FEATURES, ranking_probability, region_features

SOLID_CONTRAST_HU = 850.0  # soft tissue (~0 HU) against parenchyma (~ -850 HU), Hoffman 2006
# smoothing (in voxels of the coarser grid) after which the pyramid subsamples an axis by 2:
# smoothed with sigma = 0.8 new voxels, the Gaussian passes exp(-(0.8 pi)^2 / 2) = 4 % at the new
# Nyquist frequency (little aliasing; Burt & Adelson 1983 use a comparable 5-tap kernel)
PYRAMID_SIGMA_VOXELS = 0.8


def scales_mm(d_min: float, d_max: float, per_octave: int) -> np.ndarray:
    """Gaussian sigmas (mm) whose optimal ball diameters 2 sqrt(3) sigma cover [d_min, d_max]."""
    s0, s1 = d_min / (2 * np.sqrt(3)), d_max / (2 * np.sqrt(3))
    n = int(np.ceil(np.log2(s1 / s0) * per_octave)) + 1
    return s0 * 2.0 ** (np.arange(n) / per_octave)


def working_grid(ct: Volume, spacing_mm: float) -> Volume:
    """``ct`` with no spacing finer than ``spacing_mm`` (trilinear, the grid of
    :meth:`Volume.resampled`, computed with SimpleITK's multithreaded resampler); unchanged if
    no spacing is finer. The air value (-1000 HU or the image minimum) fills nothing: the new
    grid lies inside the old one."""
    sp = ct.spacing
    if np.all(sp >= spacing_mm - 1e-6):
        return ct
    import SimpleITK as sitk

    new_sp = np.maximum(sp, spacing_mm)
    extent = np.asarray(ct.shape[::-1]) * sp
    n_ijk = np.maximum(1, np.round(extent / new_sp).astype(int))
    img = sitk.GetImageFromArray(np.ascontiguousarray(ct.array, dtype=np.float32))
    img.SetSpacing(tuple(map(float, sp)))  # index space scaled to mm, origin at voxel 0
    out = sitk.Resample(img, [int(v) for v in n_ijk], sitk.Transform(), sitk.sitkLinear,
                        tuple(float(v) for v in -0.5 * sp + 0.5 * new_sp),
                        tuple(map(float, new_sp)), img.GetDirection(), float(ct.array.min()),
                        sitk.sitkFloat32)
    arr = sitk.GetArrayFromImage(out)
    if ct.array.dtype.kind in "iu":
        arr = np.rint(arr).astype(ct.array.dtype)
    aff = make_ijk_to_ras(new_sp, ct.ijk_to_world((-0.5 * np.ones(3) + 0.5 * new_sp / sp)[None])[0],
                          ct.direction)
    return Volume(arr, aff, ct.name, dict(ct.labels), scanner_coordinates=ct.scanner_coordinates)


def chest_on_working_grid(ct: Volume, lung_mask, spacing_mm: float, margin_mm: float
                          ) -> tuple[Volume, np.ndarray, np.ndarray]:
    """(CT on the working grid, boolean lung mask on it, boolean body mask on it or None).

    The body is segmented on a coarse grid (``coarse_spacing_mm``: IMAGIO's HU-rule segmenters
    are validated at 3 mm) and resampled (nearest) to the working grid; it places the trachea
    and the midline for the left/right split (:func:`search_region`). With no lung mask given,
    the lungs are segmented there too, only to crop the CT to the lungs' box plus ``margin_mm``
    before regridding; the lungs are then segmented on the working grid inside the coarse body.
    A given mask: see :func:`lungs_on` (the CT is not cropped); the body is None when the CT
    has no air around the patient to find it by (a crop inside the body): the mask is then
    taken as free of airways (:func:`search_region`).
    """
    from ..segmentation.body import body_mask
    from ..segmentation.lungs import lung_mask as segment_lungs

    c = constants()
    coarse = working_grid(ct, c["coarse_spacing_mm"]["value"])

    def body_on(w: Volume, body_c: np.ndarray) -> np.ndarray:
        return coarse.with_array(body_c.astype(np.uint8), labels={}).resample_like(w, order=0).array > 0

    if lung_mask is not None:
        if not isinstance(lung_mask, Volume):  # an array on the CT's grid: checked, then regridded
            lung_mask = ct.with_array(lungs_on(ct, lung_mask).astype(np.uint8), labels={})
        w = working_grid(ct, spacing_mm)
        try:
            body_w = body_on(w, body_mask(coarse))
        except InputError:  # a crop inside the body: no air around it, no body outline to find
            body_w = None
        return w, lungs_on(w, lung_mask), body_w
    body_c = body_mask(coarse)
    lungs_c = segment_lungs(coarse, body_c)
    sl = bbox_slices(lungs_c, margin_mm, coarse.spacing_kji)
    corners = np.array([[a, b, d] for a in (sl[0].start - 0.5, sl[0].stop - 0.5)
                        for b in (sl[1].start - 0.5, sl[1].stop - 0.5)
                        for d in (sl[2].start - 0.5, sl[2].stop - 0.5)])
    kji = ct.world_to_kji(coarse.kji_to_world(corners))
    lo = np.maximum(np.floor(kji.min(0)).astype(int), 0)
    hi = np.minimum(np.ceil(kji.max(0)).astype(int) + 1, ct.shape)
    w = working_grid(ct.crop(lo, hi), spacing_mm)
    body_w = body_on(w, body_c)
    return w, segment_lungs(w, body_w), body_w


def lung_label_values(labels: dict) -> list[int]:
    """Label values whose names are lung parts (``lung*``, not vessels or nodules) or its
    emphysema (`anatomy.AERATED_LUNG`: IMAGIO's `segment` carves it out of the lungs; without it
    LAA-950 read 0 %, new-user trial 33 H2)."""
    return [v for v, n in labels.items()
            if n in AERATED_LUNG or (n.startswith("lung") and "vessel" not in n and "nodule" not in n)]


def lungs_on(ct: Volume, lung_mask) -> np.ndarray:
    """Boolean lung mask on ``ct``'s grid: resampled from a Volume (its labels named lung*, or
    all non-zero voxels when none is), checked if an array, or segmented with IMAGIO's HU rules
    when None. Raises InputError for a shape mismatch or an empty mask."""
    if lung_mask is None:
        from ..segmentation.body import body_mask
        from ..segmentation.lungs import lung_mask as segment_lungs

        return segment_lungs(ct, body_mask(ct))
    if isinstance(lung_mask, Volume):
        lung_vals = lung_label_values(lung_mask.labels)
        if not lung_vals:
            present = np.unique(lung_mask.array)
            present = present[present != 0]
            if present.size > 1:   # a multi-organ map without names: its non-zero voxels are not lung
                raise InputError(
                    f"the lung mask holds {present.size} label values and none is named lung*: a multi-organ "
                    "label map without names (e.g. TotalSegmentator's --ml output) would search every organ; "
                    "give its names (a .seg.nrrd or a <file>.labels.json sidecar) or a mask of the lungs only")
        fg = np.isin(lung_mask.array, lung_vals) if lung_vals else lung_mask.array > 0
        m = fg if lung_mask.same_grid(ct) else \
            lung_mask.with_array(fg.astype(np.uint8), labels={}).resample_like(ct, order=0).array > 0
    else:
        m = np.asarray(lung_mask) > 0
        if m.shape != ct.shape:
            raise InputError(f"lung mask shape {m.shape} does not match the CT {ct.shape}; give "
                             "the mask as a Volume (any grid) or on the CT's grid")
    if not m.any():
        raise InputError("the lung mask is empty: no lung to search; check the mask file")
    return m


def closed_per_section(mask: np.ndarray, ct: Volume, radius_mm: float) -> np.ndarray:
    """2-D closing of ``mask`` in each axial section (rolling ball of ``radius_mm``)."""
    sk = np.array(ct.spacing_kji, float)
    sk[anatomical_axes(ct)["S"][0]] = 1e6  # no distance through sections: a 2-D closing each
    return close_mm(mask, radius_mm, sk)


def lung_sides(lungs: np.ndarray, ct: Volume, body: np.ndarray | None = None,
               airways: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) lungs without the airway tree (:func:`imagio.segmentation.lung_fields.split_lungs`;
    the airways are found in ``ct`` when ``body`` is given, see :func:`search_region`). airways:
    a dict the tree found is stored in, for callers that reuse it (:func:`airway_tree`)."""
    from ..segmentation.lung_fields import split_lungs

    if not lungs.any():
        return lungs.copy(), lungs.copy()
    tree = airway_tree(ct, body)
    if airways is not None:   # the union only: the parts are not kept while the detector runs
        airways.update({k: v for k, v in tree.items() if k not in ("trachea", "bronchi")})
    left, right, _, _ = split_lungs(ct, lungs, body, trachea=tree["trachea"], bronchi=tree["bronchi"],
                                    find_airways=False)
    return left, right


def airway_tree(ct: Volume, body: np.ndarray | None) -> dict:
    """{"trachea", "bronchi", "tree" (both): bool [k, j, i] on ``ct``'s grid or None, "grid": ``ct``
    (a Volume of that grid), "note": why there is none (no body, no trachea in view) or None,
    "leak_warning": the tree's leak warning or None}: IMAGIO's region-grown airway tree
    (:func:`imagio.segmentation.airways.airway_masks`), found once per scan and reused by the
    characterisation's LAA-950 (`characterise.lung_parenchyma`; issue 20: it was grown again on the
    whole CT, +9-16 s a scan)."""
    from ..segmentation import airways as aw

    none = {"trachea": None, "bronchi": None, "tree": None, "grid": ct, "leak_warning": None}
    if body is None:
        return {**none, "note": "no body outline found (a crop inside the body)"}
    try:
        trachea, bronchi, info = aw.airway_masks(ct, body)
    except InputError as e:
        return {**none, "note": str(e)}
    return {"trachea": trachea, "bronchi": bronchi, "tree": trachea | bronchi, "grid": ct, "note": None,
            "leak_warning": info.get("leak_warning")}


def search_region(lungs: np.ndarray, ct: Volume, radius_mm: float, body: np.ndarray | None = None,
                  sides: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(where nodules are sought, the lungs without the central airways): each lung closed on
    its own per axial section with a rolling ball of ``radius_mm`` (:func:`closed_per_section`),
    then the two joined. Armato et al. roll the ball along each lung's outline (Armato SG 3rd,
    Giger ML et al., Computerized detection of pulmonary nodules on CT scans, RadioGraphics
    1999;19:1303-1311; Med Phys 2001;28:1552-1561), which fills the concavities of that lung
    (juxta-pleural nodules, its hilum) but never the mediastinum between the lungs: closing both
    lungs as one mask bridges the anterior junction, the subcarinal space between the main
    bronchi and the retrocardiac recess, so mediastinal lymph nodes, the oesophagus and the
    great vessels there became candidates. The lungs are split by the one left/right split
    (:func:`imagio.segmentation.lung_fields.split_lungs`), which removes the airway tree first
    (Armato & MacMahon 1999; Hu, Hoffman & Reinhardt 2001): a HU-rule lung mask holds the trachea
    and main bronchi, and a split of that one component gave the left main bronchus, and the
    subcarinal space it encloses, to the right lung. A mask whose lung tissue lies on one side of
    the midline is one lung and gives its own closing (a hemithorax crop).

    lungs, body: boolean [k, j, i] on ``ct``'s grid; ``ct`` in HU when ``body`` is given (the
    airways are found in it; without ``body`` the mask is taken as free of airways, e.g. a
    model's lung classes on a probability map's grid, and split about the isocentre, RAS x = 0,
    on which the patient is centred: a lung's centre lies 8-10 cm from the midline). Returns
    two boolean masks of ``lungs``' shape. sides: the (left, right) of :func:`lung_sides` when
    the caller has them."""
    if not lungs.any():
        return lungs.copy(), lungs.copy()
    left, right = sides if sides is not None else lung_sides(lungs, ct, body)
    out = np.zeros(lungs.shape, bool)
    for side in (left, right):
        if side.any():
            out |= closed_per_section(side, ct, radius_mm)
    free = left | right
    return out | free, free


def inside_region(sub: Volume, region: np.ndarray, parenchyma: float) -> Volume:
    """``sub`` (HU) with every voxel outside ``region`` (boolean [k, j, i]: each lung's own
    rolling-ball closing, :func:`search_region`) set to ``parenchyma`` (HU, the lungs' median),
    as float32: the image the dot filter runs on.

    A nodule on the pleura is not a blob for the Hessian when the chest wall behind it is in
    the image: the wall is as dense as the nodule, so the second derivative across the pleura
    is weak or positive, and a 3-6 mm juxta-pleural nodule (a cap of 2-4 mm on the wall) gives
    no dot response at all (phantom screening scans: 3 mm solid nodules on the pleura read
    0-33 HU, the same ball alone 365 HU). The rolling-ball closing of each lung's outline holds
    the juxta-pleural nodules, whose outer boundary is the pleural line (Armato SG 3rd, Giger
    ML, MacMahon H, Med Phys 2001;28:1552-1561); nodule candidates are sought in the lung so
    segmented (Armato 2001; the enhancement filters of Li Q, Sone S, Doi K, Med Phys
    2003;30:2040-2051 are applied inside the lung region). Outside it, the parenchyma's value
    leaves the nodule a blob bounded by the pleural line, as a nodule in the parenchyma is
    bounded by aerated lung. The region is taken one voxel wider than the closing: the pleura's
    partial-volume layer then stays a continuous sheet (one large eigenvalue, suppressed by the
    blobness) instead of a noise-ragged edge whose voxel-sized specks the closing holds (on the
    phantom's screening scan 0 the closing itself gave 347 candidates instead of 101, the
    wider region 111). Used at the scales below ``concavity_min_diameter_mm`` only
    (:func:`candidate_pool`): at the larger ones the hollows the closing fills (the hilum, the
    costophrenic recess) became 19-38 mm blobs scored above most nodules (scan 0: CPM 0.80 ->
    0.52), and juxta-pleural lesions >= 10 mm are the concavity channel's."""
    region = ndimage.binary_dilation(region)
    return sub.with_array(np.where(region, sub.array.astype(np.float32), np.float32(parenchyma)))


def _shifted(flat_idx: np.ndarray, kji: np.ndarray, shape, axis: int, step: int) -> np.ndarray:
    """Flat indices of the neighbours ``step`` voxels along ``axis`` (clamped at the border,
    i.e. 'nearest' boundary)."""
    strides = np.array([shape[1] * shape[2], shape[2], 1])
    moved = np.clip(kji[:, axis] + step, 0, shape[axis] - 1)
    return flat_idx + (moved - kji[:, axis]) * strides[axis]


def hessian_at(smoothed: np.ndarray, spacing_kji, kji: np.ndarray) -> np.ndarray:
    """(N, 3, 3) Hessian (intensity / mm^2) at the voxels ``kji`` (N, 3), array axes in mm,
    from finite differences gathered at those voxels only: diagonal, the compact 3-point second
    difference (a gradient of the gradient spans 5 points and blurs a small blob on thick
    slices); off-diagonal, the 4-point central mixed difference."""
    f = smoothed.ravel()
    shape = smoothed.shape
    flat = np.ravel_multi_index(kji.T, shape)
    h = np.empty((len(flat), 3, 3), np.float32)
    c = f[flat]
    for a in range(3):
        ha = float(spacing_kji[a])
        ip, im = _shifted(flat, kji, shape, a, 1), _shifted(flat, kji, shape, a, -1)
        h[:, a, a] = (f[ip] + f[im] - 2.0 * c) / (ha * ha)
        for b in range(a + 1, 3):
            hb = float(spacing_kji[b])
            kp, km = kji.copy(), kji.copy()
            kp[:, a] = np.clip(kji[:, a] + 1, 0, shape[a] - 1)
            km[:, a] = np.clip(kji[:, a] - 1, 0, shape[a] - 1)
            pp, pm = _shifted(ip, kp, shape, b, 1), _shifted(ip, kp, shape, b, -1)
            mp, mm = _shifted(im, km, shape, b, 1), _shifted(im, km, shape, b, -1)
            # at the image border the clamped neighbour halves the difference (the crop keeps
            # a margin, so only the image edge is concerned)
            h[:, a, b] = h[:, b, a] = (f[pp] - f[pm] - f[mp] + f[mm]) / (4.0 * ha * hb)
    return h


def dot_filter(ct: Volume, search: np.ndarray, sigmas_mm, floor: float = 0.0, pyramid: bool = True
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best-scale dot response (HU-like), its sigma (mm) and blobness |l3|/|l1| per voxel.

    Inside ``search`` only (elsewhere 0). The image is smoothed incrementally from one scale to
    the next (Gaussian semigroup), so each scale costs one small Gaussian, on a Gaussian pyramid:
    an axis is subsampled by 2 once the smoothing already applied is at least
    ``PYRAMID_SIGMA_VOXELS`` of the coarser spacing (Burt & Adelson, IEEE Trans Commun 1983;
    Lindeberg 1998: a Gaussian-smoothed image is band-limited, so sampling it at about its sigma
    loses nothing the larger scales use), so every scale is filtered with a kernel of a few
    voxels (``pyramid=False``: every scale on the input grid, the reference for tests and the
    benchmark's baseline). Responses of a coarse level are written back to the input grid by nearest sample.
    Eigenvalues are only computed where the response can exceed ``floor`` (normalised units): for
    a bright blob all eigenvalues are negative, so |l3| <= |trace| / 3 and |l3|^2 / |l1| <= |l3|
    (exact bound); elsewhere the response is left at 0.
    """
    a = ct.array.astype(np.float32)
    full = a.shape
    resp = np.zeros(full, np.float32)
    best_s = np.zeros(full, np.float32)
    blob = np.zeros(full, np.float32)
    sp = np.array(ct.spacing_kji, float)
    step = np.ones(3, int)
    sm, prev = a, 0.0
    level = None  # (resp, sigma, blobness) on the current coarse level

    def flush():
        # each coarse voxel with a response stands for the input voxels nearest to it
        # (offsets -step/2 .. step/2 - 1 around step * index)
        if level is None:
            return
        r_c, s_c, b_c = level
        nz = np.argwhere(r_c > 0)
        if not len(nz):
            return
        offs = np.stack(np.meshgrid(*[np.arange(st) - st // 2 for st in step], indexing="ij"),
                        -1).reshape(-1, 3)
        kji = ((nz * step)[:, None, :] + offs[None]).reshape(-1, 3)
        src = np.repeat(np.arange(len(nz)), len(offs))
        ok = np.all((kji >= 0) & (kji < np.array(full)), axis=1)
        kji, src = kji[ok], src[ok]
        idx = tuple(kji.T)
        cidx = tuple(nz[src].T)
        better = (r_c[cidx] > resp[idx]) & search[idx]
        sel = tuple(i[better] for i in idx)
        csel = tuple(i[better] for i in cidx)
        resp[sel], best_s[sel], blob[sel] = r_c[csel], s_c[csel], b_c[csel]

    def neighbours(shape, sel):
        kji = np.argwhere(sel)
        flat = np.ravel_multi_index(kji.T, shape)
        nb = [(_shifted(flat, kji, shape, ax, 1), _shifted(flat, kji, shape, ax, -1)) for ax in range(3)]
        return kji, flat, nb

    cur_search = search
    kji_all, flat_all, nb = neighbours(full, search)
    for s in sigmas_mm:
        dec = (prev >= PYRAMID_SIGMA_VOXELS * 2.0 * sp) & pyramid
        if dec.any():
            flush()
            sm = np.ascontiguousarray(sm[tuple(slice(None, None, 2) if d else slice(None) for d in dec)])
            sp = sp * np.where(dec, 2, 1)
            step = step * np.where(dec, 2, 1)
            cur_search = search[tuple(slice(None, None, int(st)) for st in step)]
            kji_all, flat_all, nb = neighbours(sm.shape, cur_search)
            level = (np.zeros(sm.shape, np.float32), np.zeros(sm.shape, np.float32),
                     np.zeros(sm.shape, np.float32))
        inc = np.sqrt(max(s * s - prev * prev, 0.0))
        sm = ndimage.gaussian_filter(sm, inc / sp, mode="nearest", truncate=3.0)
        prev = s
        if not len(flat_all):
            continue
        s2 = np.float32(s * s)
        f = sm.ravel()
        c0 = f[flat_all]
        tr = np.zeros(len(flat_all), np.float32)
        for ax in range(3):
            tr += (f[nb[ax][0]] + f[nb[ax][1]] - 2.0 * c0) / np.float32(sp[ax] ** 2)
        sel_v = -tr * s2 / 3.0 > floor
        if not sel_v.any():
            continue
        kji = kji_all[sel_v]
        ev = np.linalg.eigvalsh(hessian_at(sm, sp, kji)) * s2  # ascending
        bright = ev[:, 2] < 0  # all three negative: l1 = ev[:, 0], l3 = ev[:, 2]
        l1, l3 = -ev[:, 0], -ev[:, 2]
        r = np.where(bright, l3 * l3 / np.maximum(l1, 1e-12), 0.0).astype(np.float32)
        tr_resp, tr_s, tr_b = (resp, best_s, blob) if level is None else level
        idx = tuple(kji.T)
        better = r > tr_resp[idx]
        sel = tuple(i[better] for i in idx)
        tr_resp[sel] = r[better]
        tr_s[sel] = s
        tr_b[sel] = (l3 / np.maximum(l1, 1e-12))[better]
    flush()
    return resp, best_s, blob


def scan_warnings(ct: Volume, detector: str = "blobs") -> list[str]:
    """Doubts about a whole scan that hold for every candidate (and for an empty result); the
    aliasing doubt is the dot filter's (``detector="blobs"``) only."""
    from ..limits import RESAMPLED_SECTIONS_RATIO
    from ..segmentation.lesion import RESAMPLED_SECTIONS_MIN_MM
    from ..segmentation.resolution import resolution_along_s

    c = constants()
    out = []
    thick = float(ct.spacing_kji[anatomical_axes(ct)["S"][0]])
    # sections interpolated from thicker ones (a reformat, a resampled export): the noise shows their
    # resolution, which the spacing does not (new-user trial 115 M3: an oblique reformat of 5 mm sections
    # on a 2.5 mm grid lost LUNA16's warning, and two single-section vessel dots came out at p 0.6-0.7)
    along = resolution_along_s(ct, RESAMPLED_SECTIONS_MIN_MM, RESAMPLED_SECTIONS_RATIO)
    if thick > c["max_slice_spacing_mm"]["value"]:
        out.append(f"slice spacing {thick:.1f} mm > {c['max_slice_spacing_mm']['value']:g} mm "
                   "(LUNA16's limit): small nodules may be missed and sizes are coarse")
    elif along is not None and along[0] > c["max_slice_spacing_mm"]["value"]:
        out.append(f"slice spacing {thick:.1f} mm, but the image's noise shows a resolution of {along[0]:.1f} mm along "
                   f"S (sections interpolated from thicker ones, or a reformat) > {c['max_slice_spacing_mm']['value']:g} "
                   "mm (LUNA16's limit): small nodules may be missed, sizes are coarse, and a vessel crossing one "
                   "thick section may read as a dot (more false positives)")
    if detector == "blobs" and not subsolid_channel_applies(ct):
        out.append(f"slices {thick:.1f} mm > {c['subsolid_max_slice_mm']['value']:g} mm: the "
                   "sub-solid (ground-glass) channel did not run (vessels average into ground-glass "
                   "density on thick sections); ground-glass nodules may be missed")
    if detector == "blobs" and float(ct.spacing.max()) > 1.5:
        out.append(f"voxels up to {float(ct.spacing.max()):.1f} mm: thin vessels and airway walls "
                   "alias into dots, expect more false positives")
    return out


def detect_blobs(ct: Volume, lung_mask=None, progress=None, work_spacing_mm: float | None = None,
                 pyramid: bool = True, airways: dict | None = None,
                 notes: list | None = None) -> list[Candidate]:
    """Weights-free candidates (see the module docstring), sorted by decreasing probability.

    work_spacing_mm: the candidate grid (default ``work_spacing_mm`` of detection.json);
    pyramid: see :func:`dot_filter` (both exist for the benchmark's baseline).
    ct: chest CT in HU (any orientation/spacing); lung_mask: see :func:`lungs_on`.
    airways: a dict that receives the airway tree the detector found (:func:`airway_tree`, on
    the working grid), for the caller to reuse.
    notes: a list that receives the scan's doubts the candidates do not carry (a mass-sized
    solid ball left undecided at the mass channel's keep limit: :func:`mass_candidates`).
    Returns [] when nothing passes the thresholds. Raises InputError for a non-CT input or an
    empty lung mask.
    """
    p = as_progress(progress)
    ct, lung_mask = _canonical_ct_and_mask(ct, lung_mask)
    pool = candidate_pool(ct, lung_mask, p, work_spacing_mm, pyramid, airways, notes)
    if pool is None:
        p(1.0, "detect: no candidate")
        return []
    cands = _candidates_from_pool(ct, pool, p)
    if notes is not None:   # a ball said not to be a candidate is not one a final candidate covers (trial 106 L8)
        notes[:] = uncovered_notes(notes, cands)
    return cands


def _canonical_ct_and_mask(ct: Volume, lung_mask):
    """(``ct`` in RAS-canonical storage order, ``lung_mask`` to match): the candidates are world
    points and must not depend on how one world image is stored (new-user trial 29: LIDC-0001
    stored flipped and transposed gave its first candidate 0.469 instead of 0.554 and another
    fourth). Working-grid anchors at voxel 0, the pyramid's subsampling by 2, per-axis filters,
    ``argmax`` first hits and ties all follow the array order; run on one order, they cannot
    differ (:func:`imagio.volume.as_ras_canonical`). A mask given as an array on the CT grid is
    reordered with it; a Volume is resampled to the grid later."""
    from ..volume import as_ras_canonical, reorient_array

    can, perm, flip = as_ras_canonical(ct)
    if can is not ct and lung_mask is not None and not isinstance(lung_mask, Volume):
        m = np.asarray(lung_mask)
        if m.shape == ct.shape:  # else lungs_on says what is wrong
            lung_mask = reorient_array(m, perm, flip)
    return can, lung_mask


def candidate_pool(ct: Volume, lung_mask=None, progress=None, work_spacing_mm: float | None = None,
                   pyramid: bool = True, airways: dict | None = None, notes: list | None = None) -> dict | None:
    """Every peak of every channel before the merge (steps 1-4 and 6-7 of the module docstring),
    or None when no channel has a peak. Keys: "sub" (the cropped working-grid CT), "lungs" (its
    lung mask), "peaks" (N, 3) kji on "sub", "centres" (N, 3) RAS mm, "diam" (mm), "score",
    "keep" (passes the lung-shell, wall and sub-solid tests), "channel" ("dot", "subsolid",
    "concavity"), "r_peak", "s_peak", "b_peak" (dot and sub-solid peaks only), "shell",
    "conc" (the concavity dicts), "n_solid", "n_dot", "fissure" (dot peaks scored as
    perifissural, :func:`perifissural_scores`), "search" (the search region on "sub"),
    "parenchyma" (the lungs' median HU), "lung_side_release" (peaks kept although centred in a
    wall structure: a nodule bulging into the lung, see the comment at its test). For :func:`detect_blobs` and for measuring
    the recall of candidate generation apart from the ranking."""
    p = as_progress(progress)
    c = constants()
    check_ct(ct)
    p(0.0, "detect: working grid")
    d_min, _ = c["nodule_diameter_mm"]["value"]
    sig = scales_mm(d_min, c["mass_diameter_max_mm"]["value"], c["scales_per_octave"]["value"])
    p(0.05, "detect: lungs")
    w, lungs, body = chest_on_working_grid(ct, lung_mask, work_spacing_mm or c["work_spacing_mm"]["value"],
                                           3.0 * sig[-1] + c["juxtapleural_closing_mm"]["value"])
    # a candidate is centred in one lung's closed outline (not in the mediastinum between them)
    sides = lung_sides(lungs, w, body, airways)
    in_lung, free = search_region(lungs, w, c["juxtapleural_closing_mm"]["value"], body, sides)
    # the lungs are the parenchyma without the airway tree (Hu 2001); the tree's lumen that the
    # HU rule kept is a hilar/mediastinal structure (:func:`wall_structures`,
    # :func:`concavity_candidates`)
    airway = lungs & ~free
    lungs = free
    search = closed_per_section(lungs, w, c["juxtapleural_closing_mm"]["value"])
    sl = bbox_slices(search, 3.0 * sig[-1], w.spacing_kji)
    lo = np.array([s.start for s in sl])
    sub = w.crop(lo, [s.stop for s in sl])
    p(0.2, f"detect: dot filter at {len(sig)} scales")
    k = c["ball_response_per_hu"]["value"]
    c_min = c["min_contrast_hu"]["value"]
    parenchyma = float(np.median(sub.array[lungs[sl]]))
    # at the scales of nodules below the concavity channel's range the dot filter sees the
    # lungs' own closing only (the chest wall beyond it set to the parenchyma): a small
    # juxta-pleural nodule is then a blob bounded by the pleural line (:func:`inside_region`)
    small = 2.0 * np.sqrt(3.0) * sig < c["concavity_min_diameter_mm"]["value"] - 1e-6
    ir = inside_region(sub, in_lung[sl], parenchyma)
    resp, best_s, blob = dot_filter(ir, search[sl], sig[small], floor=k * c_min, pyramid=pyramid)
    r_l, s_l, b_l = dot_filter(sub, search[sl], sig[~small], floor=k * c_min, pyramid=pyramid)
    larger = r_l > resp
    resp[larger], best_s[larger], blob[larger] = r_l[larger], s_l[larger], b_l[larger]
    b_min = c["min_blobness"]["value"]
    p(0.5, "detect: solid candidates")   # before the sub-solid channel (0.6): progress never goes back (trial 52)
    peaks, r_peak, s_peak, b_peak = _peaks(resp, best_s, blob, k * c_min, b_min)
    n_solid = len(peaks)
    p(0.6, "detect: sub-solid channel")
    ss = subsolid_image(sub, parenchyma)
    sig2 = sig[2.0 * np.sqrt(3.0) * sig >= c["subsolid_min_diameter_mm"]["value"] - 1e-6]
    if not subsolid_channel_applies(ct):
        sig2 = sig2[:0]
    # faintest sub-solid tissue: the bottom of Jacobs' range against this scan's parenchyma
    c_min2 = max(c["type_hu"]["subsolid_min"] - parenchyma, 0.5 * c_min)
    resp2, best_s2, blob2 = dot_filter(ss, search[sl], sig2, floor=k * c_min2, pyramid=pyramid)
    # scale selection (Lindeberg T, IJCV 1998;30:79-116): a blob's size is the scale of the
    # maximum of its normalised response over scale; a response that is largest at the channel's
    # smallest scale has its maximum at or below it, i.e. the structure is smaller than the 6 mm
    # the channel reports (partial-volume cores of small airways and thin vessels; a sub-solid
    # nodule that small is Lung-RADS 2 and the dot channel still sees it): not a candidate here.
    # Not applied to the dot channel, whose smallest scale is the smallest nodule (3 mm): a 3-4 mm
    # nodule answers most there on a 1.5 mm grid.
    peaks2, r2, s2, b2 = _peaks(resp2, best_s2, blob2, k * c_min2, b_min, sig2[0] if len(sig2) else 0.0)
    p(0.8, "detect: candidates")
    peaks = np.r_[peaks, peaks2].reshape(-1, 3)
    r_peak, s_peak, b_peak = np.r_[r_peak, r2], np.r_[s_peak, s2], np.r_[b_peak, b2]
    if not len(peaks):
        return None
    diam = 2.0 * np.sqrt(3.0) * s_peak
    wall_s = wall_structures(sub.array, lungs[sl], search[sl], sub.spacing_kji, airway[sl])
    bone = chest_wall_bone(sub.array, search[sl])
    wall = wall_s | bone
    # localisation at the finest scale (the dot channel's peaks; the sub-solid channel's image
    # has its solid structures removed, its peaks stay)
    peaks[:n_solid] = localise_peaks(sub, peaks[:n_solid], diam[:n_solid], sig[0],
                                     in_lung[sl] & ~wall)
    centres = sub.kji_to_world(peaks)
    shell = np.array([_lung_shell_fraction(lungs[sl], pk, d / 2.0, sub.spacing_kji)
                      for pk, d in zip(peaks, diam)])
    on_wall = wall_s[tuple(peaks.T)]
    # the granulometry only on sections <= max_slice_spacing_mm (LUNA16's limit): on thicker ones
    # its balls are discs within a section and do not cut a joint across sections (lung1 at 5 mm:
    # 9 more dot candidates on the chest wall, four in its top 6)
    gran = float(w.spacing_kji[anatomical_axes(w)["S"][0]]) <= c["max_slice_spacing_mm"]["value"] + 1e-6
    lung_side = np.zeros(len(peaks), bool)
    if gran:
        on_wall[on_wall] = ~released_from_wall(sub.array, lungs[sl], search[sl], sub.spacing_kji,
                                               airway[sl], peaks[on_wall], diam[on_wall])
        # a nodule bulging from the pleura into the lung: its centre lies on the lung's side of
        # the pleura (more than lung_side_shell_fraction of its shell is lung; acute angles with
        # the pleura), while a rib, the spine or the mediastinal contour that indents the lung is
        # centred on the wall's side (obtuse angles, broad base; Felson 1973, Webb 2015). Kept even
        # when its dense region stays joined to the wall at every opening (:func:`released_from_wall`;
        # phantom: 6-30 mm juxta-pleural nodules against the retrosternal tissue or a rib, joined
        # at openings up to 3.8 mm), from the scale of the smallest Lung-RADS category-3 solid
        # nodule (6 mm, lungrads_v2022.json) up: below it a nodule is category 2, and at those
        # scales the dot filter answers to the partial volume and noise of every pleural surface
        # that meets a wall structure (synthetic flat pleura: 3.8 mm dots with half their shell in
        # the lung, 0.52)
        lung_side = on_wall & (shell > c["lung_side_shell_fraction"]["value"]) & (diam >= _category3_solid_mm() - 1e-6)
        on_wall &= ~lung_side
    keep = (shell >= c["min_lung_shell_fraction"]["value"]) & ~on_wall & ~bone[tuple(peaks.T)]
    keep &= in_lung[sl][tuple(peaks.T)]
    t = c["type_hu"]
    sub_lo = t["subsolid_min"]
    c_ref = np.full(len(peaks), SOLID_CONTRAST_HU)
    c_lo = np.full(len(peaks), c_min)
    if len(peaks2):  # sub-solid: the centre must be sub-solid (Jacobs 2014's range)
        ctr = np.array([_ball_hu(sub.array, pk, d / 2.0, sub.spacing_kji, t["solid_min"])[0]
                        for pk, d in zip(peaks2, diam[n_solid:])])
        keep[n_solid:] &= (ctr >= sub_lo) & (ctr < t["solid_min"])
        c_ref[n_solid:] = t["solid_min"] - parenchyma
        c_lo[n_solid:] = c_min2
    k_score = np.sqrt(np.clip((b_peak - b_min) / (1.0 - b_min), 0, 1)
                      * np.clip((r_peak / k - c_lo) / np.maximum(c_ref - c_lo, 1.0), 0, 1))
    fissure = np.zeros(len(peaks), bool)
    if perifissural_applies(ct):
        k_score[:n_solid], fissure[:n_solid] = perifissural_scores(
            sub, peaks[:n_solid], s_peak[:n_solid], r_peak[:n_solid] / k, diam[:n_solid],
            k_score[:n_solid], keep[:n_solid], parenchyma)
    exits = np.full(len(peaks), np.nan)
    exits[:n_solid], k_score[:n_solid] = dot_exit_scores(sub.array, lungs[sl], peaks[:n_solid], diam[:n_solid],
                                                         k_score[:n_solid], keep[:n_solid], parenchyma,
                                                         sub.spacing_kji, float(sig[0]))
    exits[n_solid:], k_score[n_solid:] = calibre_exit_scores(sub.array, lungs[sl], peaks[n_solid:], diam[n_solid:],
                                                             k_score[n_solid:], keep[n_solid:], parenchyma,
                                                             sub.spacing_kji, subsolid=True, sigma0_mm=float(sig[0]))
    p(0.9, "detect: pleural concavities")
    conc = concavity_candidates(sub, lungs[sl], search[sl], airway[sl])
    if perifissural_applies(ct):   # flat nodules on a fissure whose dot response the fissure cancels
        conc = conc + fissure_candidates(sub, ir, in_lung[sl] & ~wall, lungs[sl], resp, sig[small], parenchyma,
                                         (peaks[keep], diam[keep] / 2.0))
    n_dot = len(peaks)
    p(0.95, "detect: masses")
    mass = mass_candidates(sub, (sides[0][sl], sides[1][sl]), airway[sl], sig, notes)
    conc = conc + mass
    if conc:
        peaks = np.r_[peaks, np.array([q["kji"] for q in conc], int).reshape(-1, 3)]
        centres = np.r_[centres, sub.kji_to_world(np.array([q["centroid_kji"] for q in conc]))]
        diam = np.r_[diam, [q["diameter_mm"] for q in conc]]
        k_score = np.r_[k_score, [q["score"] for q in conc]]
        # a mass lies in one lung's hull envelope (its own test), mostly outside the closing
        keep = np.r_[keep, [q.get("channel") == "mass" or bool(in_lung[sl][tuple(q["kji"])]) for q in conc]]
        fissure = np.r_[fissure, np.zeros(len(conc), bool)]
        exits = np.r_[exits, np.full(len(conc), np.nan)]
    channel = np.array(["dot"] * n_solid + ["subsolid"] * (n_dot - n_solid)
                       + [q.get("channel", "concavity") for q in conc])
    return dict(sub=sub, lungs=lungs[sl], peaks=peaks, centres=centres, diam=diam, score=k_score,
                keep=keep, channel=channel, r_peak=r_peak, s_peak=s_peak, b_peak=b_peak,
                shell=shell, conc=conc, n_solid=n_solid, n_dot=n_dot, k=k, fissure=fissure,
                search=search[sl], in_lung=in_lung[sl], parenchyma=parenchyma, exits=exits, bone=bone,
                midline_x=_midline_x(w, sides),
                lung_side_release=np.r_[lung_side, np.zeros(len(conc), bool)])


def _candidates_from_pool(ct: Volume, pool: dict, p) -> list[Candidate]:
    """Merge the pool's kept peaks (a weaker one inside a stronger one's sphere joins it) and
    build the :class:`Candidate` list (features, type, warnings), sorted by probability."""
    c = constants()
    sub, peaks, centres, diam = pool["sub"], pool["peaks"], pool["centres"], pool["diam"]
    k_score, keep, conc = pool["score"], pool["keep"].copy(), pool["conc"]
    r_peak, s_peak, b_peak, shell = pool["r_peak"], pool["s_peak"], pool["b_peak"], pool["shell"]
    n_solid, n_dot, k, lungs_sub = pool["n_solid"], pool["n_dot"], pool["k"], pool["lungs"]
    t = c["type_hu"]
    k_score = _parts_of_masses(peaks, k_score, keep, pool["channel"],
                               {n_dot + j: q["region"] for j, q in enumerate(conc) if q.get("channel") == "mass"})
    keep[keep] = _merge_inside(centres[keep], diam[keep] / 2.0, k_score[keep])
    import edt

    dist = edt.edt(np.ascontiguousarray(lungs_sub), anisotropy=tuple(map(float, sub.spacing_kji)),
                   black_border=False)
    scan_warn = scan_warnings(ct)
    out = []
    for i in np.flatnonzero(keep):
        centre_hu, solid_frac = _ball_hu(sub.array, peaks[i], diam[i] / 2.0, sub.spacing_kji,
                                         t["solid_min"])
        typ = _type(centre_hu, solid_frac, t, c["part_solid_solid_fraction"]["value"])
        d_pl = float(dist[tuple(peaks[i])])
        channel = "dot" if i < n_solid else "subsolid"
        score_i = float(k_score[i])
        if i >= n_dot and conc[i - n_dot].get("channel") == "mass":  # a solid ball wrapped by one lung
            q = conc[i - n_dot]
            feats = dict(channel="mass", contrast_hu=q["contrast_hu"], centre_hu=centre_hu,
                         solid_fraction=solid_frac, lung_shell_fraction=q["lung_shell_fraction"],
                         solid_ball_fraction=q["solid_ball_fraction"])
            warn = ["diameter is the diameter of the largest solid ball found wrapped by the lung (a mass "
                    "scale), not a segmentation"] + scan_warn
        elif i >= n_dot and conc[i - n_dot].get("channel") == "fissure":  # a flat nodule on a fissure
            q = conc[i - n_dot]
            feats = dict(channel="fissure", contrast_hu=q["contrast_hu"], blobness=q["blobness"],
                         disc_blobness=q["disc_blobness"], sigma_mm=q["sigma_mm"], centre_hu=centre_hu,
                         solid_fraction=solid_frac, fissure_attached=True, fissure_contrast_hu=q["fissure_contrast_hu"])
            warn = ["diameter is the blob-filter scale (steps of 26%), not a segmentation; found on a "
                    "fissure below the dot filter's contrast limit (a flat nodule's response is weak)"] + scan_warn
        elif i >= n_dot:  # a concavity of the lung outline (juxta-pleural channel)
            q = conc[i - n_dot]
            feats = dict(channel="concavity", contrast_hu=q["contrast_hu"],
                         roundness=q["roundness"], centre_hu=centre_hu, solid_fraction=solid_frac,
                         lung_shell_fraction=q["lung_shell_fraction"])
            warn = ["diameter is the equivalent diameter of a concavity of the lung outline, not "
                    "a segmentation"] + scan_warn
        else:
            feats = dict(channel=channel, contrast_hu=float(r_peak[i] / k), blobness=float(b_peak[i]),
                         sigma_mm=float(s_peak[i]), centre_hu=centre_hu, solid_fraction=solid_frac,
                         lung_shell_fraction=float(shell[i]),
                         fissure_attached=bool(pool["fissure"][i]))
            if np.isfinite(pool["exits"][i]):
                feats["calibre_exits"] = float(pool["exits"][i])
            feats["lung_side_term"] = lung_side_term(float(shell[i]))
            score_i = score_i * feats["lung_side_term"]
            warn = ["diameter is the blob-filter scale (steps of 26%), not a segmentation"] + scan_warn
        kji_ct = ct.world_to_kji(centres[i][None])[0]
        edge_mm = np.min(np.minimum(kji_ct, np.array(ct.shape) - 1 - kji_ct) * ct.spacing_kji)
        if edge_mm < diam[i] / 2.0:
            warn.append(f"{edge_mm:.0f} mm from the image edge: partly outside the scanned "
                        "volume, size and type uncertain")
        if diam[i] > c["nodule_diameter_mm"]["value"][1]:
            warn.append(f"about {diam[i]:.0f} mm: larger than 30 mm, a mass rather than a nodule "
                        "(outside Brock's range; Lung-RADS 4B/4X territory)")
        if feats["channel"] != "mass":
            # false-positive reduction (:mod:`imagio.detection.ranking`): the region's shape and
            # branches around the candidate, with the generation score, in the fitted model
            kji_sub = np.clip(np.rint(sub.world_to_kji(centres[i][None])[0]).astype(int), 0,
                              np.array(sub.shape) - 1)
            eig = hessian_eigen_at(sub.array, sub.spacing_kji, kji_sub, float(diam[i]) / (2.0 * np.sqrt(3.0)))[0]
            feats.update(region_features(sub.array, pool["search"], kji_sub, float(diam[i]), centre_hu,
                                         pool["parenchyma"], sub.spacing_kji, eig))
            feats["generation_score"] = score_i
            score_i = float(ranking_probability(np.array([score_i]),
                                                {k: np.array([feats[k]]) for k in FEATURES})[0])
        # anatomy (:mod:`imagio.detection.exclusions`): against the skeleton, fat outside the lung,
        # cut open by the image's face: kept in the list with the reason, not scored as a nodule
        if feats["channel"] != "mass":
            feats["skeleton_share"] = skeleton_share(pool["bone"], peaks[i], float(diam[i]), sub.spacing_kji,
                                                     lambda q: sub.kji_to_world(q)[:, 0], pool["midline_x"],
                                                     anatomical_axes(sub)["S"][0])
            feats["fat_share"] = fat_share(sub.array, peaks[i], float(diam[i]), sub.spacing_kji)
        feats["cut_by_face"] = cut_by_face(ct.array, kji_ct, float(diam[i]), ct.spacing_kji,
                                           0.5 * (centre_hu + pool["parenchyma"]))
        why = exclusion_reason(feats, float(diam[i]), sub.spacing_kji, d_pl > 0.0)
        if why:
            feats["score_before_exclusion"] = score_i
            score_i = 0.0
            warn.append(why)
        out.append(Candidate(
            center_ras=centres[i], diameter_mm=float(diam[i]),
            volume_ml=float(np.pi / 6.0 * diam[i] ** 3 / 1000.0), type=typ,
            probability=score_i, distance_to_pleura_mm=d_pl,
            juxta_pleural=bool(d_pl <= diam[i] / 2.0), detector="blobs",
            features=feats, warnings=warn))
    out.sort(key=lambda cd: -cd.probability)
    p(1.0, f"detect: {len(out)} candidates")
    return out


def wall_structures(a: np.ndarray, lungs: np.ndarray, search: np.ndarray, spacing_kji,
                    airway: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask [k, j, i]: the dense parts of the search region outside the lungs that are
    too large to be a nodule or mass (equivalent diameter > ``mass_diameter_max_mm``).

    The rolling-ball closing that brings juxta-pleural nodules into the search region also
    brings in whatever else indents the lung outline: vertebral bodies in the paravertebral
    gutters, ribs, the aorta and heart border. A nodule or mass there is a dense region bounded
    by lung on the inside and the pleural line (the closing's limit) on the outside, so it is at
    most ``mass_diameter_max_mm`` across; a larger connected dense region in that zone (denser
    than the parenchyma by ``min_contrast_hu``, 26-connected) is part of the wall or mediastinum
    (Armato SG 3rd et al., Med Phys 2001;28:1552-1561: rolling-ball recovery of juxta-pleural
    nodules) and a candidate centred in it is not a nodule.

    airway: the airway tree's lumen (boolean [k, j, i]) that the lungs exclude (Hu S, Hoffman EA,
    Reinhardt JM, IEEE TMI 2001;20:490-498: trachea and main bronchi are extracted before the
    lungs are separated). It counts with the dense region: the bronchi enter the lung at the
    hilum together with the pulmonary arteries and veins (the bronchovascular bundle), so the
    bronchial walls and the vessels that lie on them are joined through the tree to the
    mediastinum, as they were when the lumen was part of the lung mask and the hilum one with
    the mediastinal contour. Without it the cut-out tree leaves each hilar vessel a small dense
    region of its own, and a dot there is a candidate (lung1, the lungs given as the CLI gives
    them: 26 candidates instead of 17, the 9 extra ones at the hilum on the edge of the
    airway-free lungs, 8 dots and 1 concavity).
    """
    import cc3d

    c = constants()
    if not lungs.any():
        return np.zeros(a.shape, bool)
    parenchyma = float(np.median(a[lungs]))
    dense = search & ~lungs & (a > parenchyma + c["min_contrast_hu"]["value"])
    if airway is not None:
        dense |= airway
    lab, n = cc3d.connected_components(dense, connectivity=26, return_N=True)
    if n == 0:
        return np.zeros(a.shape, bool)
    counts = np.bincount(lab.ravel(), minlength=n + 1)
    d_eq = (6.0 * counts * float(np.prod(spacing_kji)) / np.pi) ** (1.0 / 3.0)
    big = d_eq > c["mass_diameter_max_mm"]["value"]
    big[0] = False
    return big[lab]


def released_from_wall(a: np.ndarray, lungs: np.ndarray, search: np.ndarray, spacing_kji,
                       airway: np.ndarray | None, peaks: np.ndarray, diam: np.ndarray) -> np.ndarray:
    """Boolean per peak (kji on ``a``, diameter ``diam`` mm) centred in :func:`wall_structures`:
    True when, at the peak's own scale, its dense region is a nodule joined to the wall and not
    the wall itself. A juxta-pleural nodule lies against the pleura over a broad contact and the
    dense band inside the rolling-ball region joins it to the rest of the wall (phantom: the
    7-27 mm juxta-pleural nodules whose dot peak was dropped sat in ~100 mm regions, and stayed
    joined after openings of 1.5-3 mm). A nodule on the pleura is at least a half-ball
    (Armato SG 3rd et al., Med Phys 2001;28:1552-1561), whose inscribed ball has a quarter of its
    diameter as radius: opening the dense region with that ball keeps the nodule's core and cuts
    every connection thinner than it (a granulometry, Serra 1982). The peak is released when its
    centre lies in a component of that opening no larger than ``mass_diameter_max_mm``."""
    import cc3d

    from ..segmentation.common import open_mm

    c = constants()
    out = np.zeros(len(peaks), bool)
    if not len(peaks) or not lungs.any():
        return out
    parenchyma = float(np.median(a[lungs]))
    dense = search & ~lungs & (a > parenchyma + c["min_contrast_hu"]["value"])
    if airway is not None:
        dense |= airway
    vox = float(np.prod(spacing_kji))
    d_max = c["mass_diameter_max_mm"]["value"]
    sig = scales_mm(c["nodule_diameter_mm"]["value"][0], d_max, c["scales_per_octave"]["value"])
    for d in 2.0 * np.sqrt(3.0) * sig:  # every nodule scale: a granulometry
        if d / 4.0 < 0.5 * float(np.min(spacing_kji)):
            continue
        core = open_mm(dense, d / 4.0, spacing_kji)
        lab, n = cc3d.connected_components(core, connectivity=26, return_N=True)
        counts = np.bincount(lab.ravel(), minlength=n + 1)
        d_eq = (6.0 * counts * vox / np.pi) ** (1.0 / 3.0)
        at = lab[tuple(peaks.T)]
        # a piece of a nodule of this scale: at least half its diameter, at most a mass
        out |= (at > 0) & (d_eq[at] <= d_max) & (d_eq[at] >= d / 2.0)
    return out


def chest_wall_bone(a: np.ndarray, search: np.ndarray) -> np.ndarray:
    """Boolean mask [k, j, i]: connected (26-neighbours) regions denser than
    ``type_hu.calcified_min`` (200 HU) that lie mostly outside the search region: ribs, costal
    cartilage that has calcified, vertebrae, sternum. The rolling-ball closing brings the inner
    surface of the ribs and the paravertebral bone into the search region (Armato et al., Med
    Phys 2001;28:1552-1561), and on thick sections the partial volume of a rib looks like a
    dense blob at the lung's edge. A calcified lung nodule lies in the lung, within the search
    region (a juxta-pleural one may cross the closing's edge, but its larger part is in the
    lung's concavity; a calcified nodule or pleural plaque is benign: Lung-RADS 1, Fleischner
    glossary, Hansell 2008), so a candidate centred in bone that lies mostly outside the lungs'
    outline is the skeleton, not a nodule."""
    import cc3d

    dense = a > constants()["type_hu"]["calcified_min"]
    if not dense.any():
        return dense
    lab, n = cc3d.connected_components(dense, connectivity=26, return_N=True)
    outside = np.bincount(lab[dense & ~search], minlength=n + 1)
    inside = np.bincount(lab[dense & search], minlength=n + 1)
    wall = outside > inside
    wall[0] = False
    return wall[lab]


def _peaks(resp, best_s, blob, threshold: float, b_min: float, s_min: float = 0.0):
    """(peaks (N, 3) kji, response, sigma, blobness at them): the maximum of each 26-connected
    region where the response exceeds ``threshold`` and the blobness ``b_min``, and whose best
    scale is above ``s_min`` (mm; see :func:`candidate_pool`: a response still rising at the
    smallest scale searched is not a scale-space maximum)."""
    cand = (resp > threshold) & (blob >= b_min) & (best_s > s_min * (1.0 + 1e-4))
    lab, n = ndimage.label(cand, structure=np.ones((3, 3, 3)))
    if n == 0:
        return np.zeros((0, 3), int), np.zeros(0), np.zeros(0), np.zeros(0)
    vox = np.argwhere(cand)
    vlab = lab[tuple(vox.T)]
    order = np.lexsort((-resp[tuple(vox.T)], vlab))  # by label, strongest first
    first = order[np.r_[0, np.flatnonzero(np.diff(vlab[order])) + 1]]
    pk = vox[first]
    idx = tuple(pk.T)
    return pk, resp[idx], best_s[idx], blob[idx]


def localise_peaks(sub: Volume, peaks: np.ndarray, diam: np.ndarray, sigma0_mm: float,
                   allowed: np.ndarray) -> np.ndarray:
    """(N, 3) kji: each dot peak moved to the brightest voxel of the CT smoothed at the finest
    scale ``sigma0_mm`` within ``localise_max_shift_radius_fraction`` (0.5) of its radius
    (detection.json), among ``allowed``
    voxels (boolean [k, j, i]: the lungs' search region without the chest wall, so a
    juxta-pleural peak is not pulled into the wall); unchanged where none is brighter.

    Scale-space detection finds a blob at its own (coarse) scale, where the response of the
    smoothed image is spread and its maximum is pulled by neighbouring structures (a fissure, a
    vessel, the pleura); the blob's position is refined at fine scale, where the image is least
    blurred (Lindeberg T, Feature detection with automatic scale selection, IJCV
    1998;30:79-116, coarse-to-fine localisation; Lindeberg T, Detecting salient blob-like image
    structures and their scales with a scale-space primal sketch, IJCV 1993;11:283-318). A
    bright nodule's centre is its densest part at fine scale; a lentiform (perifissural)
    nodule 1.5-5 mm thick loses its centre when the coarse peak is one voxel off its plane
    (its centre then reads as aerated lung and its type and fissure test fail). The shift is
    at most half the radius, so the candidate stays on the blob that was detected.
    peaks: (N, 3) int kji on ``sub``; diam: (N,) mm."""
    if not len(peaks):
        return peaks
    sk = np.asarray(sub.spacing_kji, float)
    reach = constants()["localise_max_shift_radius_fraction"]["value"] * diam / 2.0  # mm
    lo = np.maximum(peaks.min(0) - np.ceil(reach.max() / sk).astype(int) - 1, 0)
    hi = np.minimum(peaks.max(0) + np.ceil(reach.max() / sk).astype(int) + 2, sub.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    sm = ndimage.gaussian_filter(sub.array[box].astype(np.float32), sigma0_mm / sk,
                                 mode="nearest", truncate=3.0)
    ok = allowed[box]
    out = peaks.copy()
    for n, (pk, rr) in enumerate(zip(peaks - lo, reach)):
        b, dist = ball_box(sm.shape, pk, rr, sk)
        v = np.where((dist <= rr) & ok[b], sm[b], -np.inf)
        j = np.unravel_index(int(np.argmax(v)), v.shape)
        if np.isfinite(v[j]) and v[j] > sm[tuple(pk)]:
            out[n] = np.array([s.start for s in b]) + np.array(j) + lo
    return out


def perifissural_applies(ct: Volume) -> bool:
    """Whether the perifissural score runs: only on sections <= ``perifissural.max_slice_mm``
    (fissures are lines only on thin sections; a lentiform nodule's flat axis, 1.5-5 mm thick,
    is not resolved on thicker ones; sources in detection.json)."""
    thick = float(ct.spacing_kji[anatomical_axes(ct)["S"][0]])
    return thick <= constants()["perifissural"]["max_slice_mm"] + 1e-6


def hessian_eigen_at(a: np.ndarray, spacing_kji, kji, sigma_mm: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(eigenvalues ascending (3,), eigenvectors (3, 3) as columns) of the scale-normalised
    Hessian sigma^2 H (intensity; axes k, j, i in mm) at voxel ``kji`` of ``a`` smoothed with a
    Gaussian of ``sigma_mm``, computed on a box of 4 sigma around it only (one candidate)."""
    sk = np.asarray(spacing_kji, float)
    kji = np.asarray(kji, int)
    h = np.ceil(4.0 * sigma_mm / sk).astype(int) + 2
    lo, hi = np.maximum(kji - h, 0), np.minimum(kji + h + 1, a.shape)
    box = a[tuple(slice(int(l), int(u)) for l, u in zip(lo, hi))].astype(np.float32)
    sm = ndimage.gaussian_filter(box, sigma_mm / sk, mode="nearest", truncate=3.0)
    w, v = np.linalg.eigh(hessian_at(sm, sk, (kji - lo)[None])[0].astype(np.float64)
                          * sigma_mm * sigma_mm)
    return w, v


def perifissural_scores(sub: Volume, peaks: np.ndarray, s_peak: np.ndarray,
                        contrast_hu: np.ndarray, diam: np.ndarray, score: np.ndarray,
                        keep: np.ndarray, parenchyma: float) -> tuple[np.ndarray, np.ndarray]:
    """(score, fissure-attached flags) of the dot channel's peaks, with perifissural nodules
    scored by their own shape and density.

    A perifissural nodule is solid, lentiform, attached to a fissure, its short axis normal to
    it (de Hoop 2012). Its Hessian has |l1| >> |l2| ~ |l3| (a disc: Frangi AF et al., MICCAI
    1998, LNCS 1496:130-137), so Li's blobness |l3|/|l1| and response |l3|^2/|l1| rank it with
    the vessels. For a kept dot peak whose centre is solid (``type_hu``: solid_min..calcified_min)
    and that lies on a fissure-like sheet normal to its flat axis (the eigenvector of l1 at the
    peak's scale; :func:`imagio.detection.fissure.plane_evidence`), the blobness term uses
    |l3|/sqrt(|l1| |l2|) (Li's for balls and tubes, about the axis ratio instead of its square for
    a disc) and the contrast term the geometric mean of the dot response's and the centre
    density's (a thin disc's response understates its density); the larger of the old and new
    score is kept. peaks: (N, 3) kji on ``sub``; s_peak: (N,) sigma mm; contrast_hu: (N,) dot
    response in HU; diam, score, keep: (N,). Constants: ``perifissural`` in detection.json.
    """
    c = constants()
    pc = c["perifissural"]
    t = c["type_hu"]
    b_min, c_min = c["min_blobness"]["value"], c["min_contrast_hu"]["value"]
    from .fissure import plane_evidence

    score = score.copy()
    attached = np.zeros(len(peaks), bool)
    a = sub.array
    r_max = c["nodule_diameter_mm"]["value"][1] / 2.0
    for i in np.flatnonzero(keep):
        centre_hu, _ = _ball_hu(a, peaks[i], diam[i] / 2.0, sub.spacing_kji, t["solid_min"])
        if not t["solid_min"] <= centre_hu < t["calcified_min"]:
            continue
        w, v = hessian_eigen_at(a, sub.spacing_kji, peaks[i], float(s_peak[i]))
        if w[2] >= 0:  # not a bright blob in all three directions
            continue
        l1, l2, l3 = -w
        ev = plane_evidence(a, sub.spacing_kji, peaks[i], v[:, 0], parenchyma, centre_hu, r_max, pc)
        if not ev["attached"]:
            continue
        attached[i] = True
        disc = np.clip((l3 / np.sqrt(l1 * l2) - b_min) / (1.0 - b_min), 0, 1)
        dens = np.clip((centre_hu - parenchyma - c_min) / (SOLID_CONTRAST_HU - c_min), 0, 1)
        resp = np.clip((contrast_hu[i] - c_min) / (SOLID_CONTRAST_HU - c_min), 0, 1)
        score[i] = max(score[i], float(np.sqrt(disc * np.sqrt(dens * resp))))
    return score, attached


def fissure_candidates(sub: Volume, image: Volume, region: np.ndarray, lungs: np.ndarray,
                       dot_response: np.ndarray, sigmas_mm, parenchyma: float,
                       found: tuple[np.ndarray, np.ndarray] | None = None) -> list[dict]:
    """Perifissural candidates the dot filter's contrast limit loses: flat blobs on a fissure.

    A perifissural nodule (an intrapulmonary lymph node) is solid, lentiform, attached to a
    fissure, its short axis normal to it (de Hoop B et al., Radiology 2012;265:611-616). Below
    about 5 mm it is one or two voxels thick on a 1.5 mm grid: its Hessian is a disc's, |l1| >>
    |l3| (Frangi AF et al., MICCAI 1998), and the fissure through it adds curvature along its
    normal only, so Li's dot response |l3|^2 / |l1| (Li Q, Sone S, Doi K, Med Phys
    2003;30:2040-2051) reads a fraction of its density and falls below the faintest nodule
    sought (``min_contrast_hu``): phantom screening scans 100-109, 3-4.5 mm perifissural nodules
    27-65 HU, their centres 380-450 HU above the parenchyma (the same lens alone in the lung:
    about 220 HU, Testing/test_detection.py). What sets such a blob apart from the lung's many
    faint dots is its context, the fissure (:func:`imagio.detection.fissure.plane_evidence`, the
    test :func:`perifissural_scores` applies to the dot channel's peaks). Kept here: the maxima of
    the dot response (a bright blob: three negative eigenvalues, blobness at least
    ``min_blobness``) at those of the dot channel's small scales (``sigmas_mm``) whose lens, half
    as thick as wide (de Hoop 2012), is under two voxels thick (diameter < 4 voxels: 6 mm on the
    1.5 mm grid; a thicker lens is resolved along its normal and the dot channel sees it: phantom,
    perifissural nodules >= 6 mm were all dot candidates), where the dot channel found nothing (``dot_response`` below the contrast limit), whose centre
    smoothed at the finest scale (a 3 mm nodule's sigma) is denser than the parenchyma by
    ``min_contrast_hu`` (the faintest nodule sought; a fissure alone, two pleural layers a few
    tenths of a mm thick, reads at most about 110 HU above the parenchyma in a voxel it fills
    and less once smoothed, ``perifissural``'s source: phantom, the noise maxima on fissures read
    10-22 HU of dot response at voxel centres 700-740 HU, none passes), that lie on a
    fissure-like sheet normal to their flat axis (the eigenvector of the largest curvature) whose
    contrast reaches ``perifissural.channel_min_fissure_contrast_hu`` (the physical estimate of
    a fissure's contrast, not its rounded-down floor: this channel tests thousands of faint peaks),
    and whose centre is below ``type_hu.calcified_min`` (bone, calcium or iodinated blood are no
    perifissural lymph node; a calcified nodule is the dot channel's, and benign).
    The centre is not required to be solid as in :func:`perifissural_scores`: a lens 1.5-2.5 mm
    thick fills a fraction of a 1.5 mm voxel, its centre reads in the sub-solid range (phantom:
    -380..-450 HU; the one-click characterisation types it later on the original CT).
    Score: the disc blobness term |l3| / sqrt(|l1| |l2|) of :func:`perifissural_scores` and the
    centre-density term (median within half the radius against the parenchyma, 0 at
    ``min_contrast_hu``, 1 at soft tissue; the response understates a thin disc's density, so the
    density is the contrast evidence), geometric mean, times the exit term ``fissure_exits``
    (nothing of its own density leaves a perifissural nodule; a vessel or airway wall on or
    across the fissure is a tube through the blob). Only on thin sections
    (:func:`perifissural_applies`, the caller's test).

    sub: the working-grid CT (HU); image: the image the dot filter ran on at these scales
    (:func:`inside_region`); region: boolean [k, j, i], where a candidate may be centred (each
    lung's closing without the wall structures); lungs: boolean [k, j, i], the lungs (exits are
    counted inside them); dot_response: the dot channel's best-scale response (normalised units,
    0 where it computed none); sigmas_mm: the dot channel's small scales; parenchyma: the lungs'
    median HU; found: (kji (M, 3), radius mm (M,)) of the dot and sub-solid channels' kept peaks:
    a peak inside one of their spheres is part of a lesion already found (the rim of a larger
    lens, whose own peak is localised at its centre) and is not reported again. Returns dicts as
    :func:`concavity_candidates` does (kji, centroid_kji,
    diameter_mm, score, contrast_hu: the dot response in HU, channel "fissure", blobness,
    disc_blobness, sigma_mm, calibre_exits, fissure_contrast_hu).
    """
    from .fissure import plane_evidence

    c = constants()
    pc, t = c["perifissural"], c["type_hu"]
    k, c_min, b_min = c["ball_response_per_hu"]["value"], c["min_contrast_hu"]["value"], c["min_blobness"]["value"]
    sk = sub.spacing_kji
    sig = np.asarray(sigmas_mm, float)
    # a lens (thickness half its diameter) under two voxels thick is not resolved along its normal
    sig = sig[2.0 * np.sqrt(3.0) * sig < 4.0 * float(np.max(sk)) - 1e-6]
    if not len(sig) or not region.any():
        return []
    a = image.array.astype(np.float32)
    sm0 = ndimage.gaussian_filter(a, float(sig[0]) / np.asarray(sk, float), mode="nearest", truncate=3.0)
    dense = region & (sm0 >= parenchyma + c_min) & (dot_response <= k * c_min)
    if not dense.any():
        return []
    resp, best_s, blob = dot_filter(image, dense, sig, floor=0.0)
    peaks, r_peak, s_peak, b_peak = _peaks(resp, best_s, blob, 0.0, b_min)
    if found is not None and len(found[0]) and len(peaks):
        mm = np.asarray(sk, float)
        d2 = (((peaks[:, None, :] - found[0][None, :, :]) * mm) ** 2).sum(-1)
        free = ~np.any(d2 < np.asarray(found[1], float)[None, :] ** 2, axis=1)
        peaks, r_peak, s_peak, b_peak = peaks[free], r_peak[free], s_peak[free], b_peak[free]
    if not len(peaks):
        return []
    # the Hessian of the CT at each peak at its own scale (one smoothing per scale): its flat axis
    # (the eigenvector of the largest curvature) is the normal of the fissure sought
    raw = sub.array.astype(np.float32)
    w = np.zeros((len(peaks), 3))
    v = np.zeros((len(peaks), 3, 3))
    for s in np.unique(s_peak):
        sel = s_peak == s
        sm = ndimage.gaussian_filter(raw, float(s) / np.asarray(sk, float), mode="nearest", truncate=3.0)
        w[sel], v[sel] = np.linalg.eigh(hessian_at(sm, sk, peaks[sel]).astype(np.float64) * float(s) ** 2)
    r_max = c["nodule_diameter_mm"]["value"][1] / 2.0
    diam = 2.0 * np.sqrt(3.0) * s_peak
    found = []
    for i in np.flatnonzero(w[:, 2] < 0):   # a bright blob in all three directions
        centre_hu, _ = _ball_hu(raw, peaks[i], diam[i] / 2.0, sk, t["solid_min"])
        if centre_hu >= t["calcified_min"]:   # bone, calcium or contrast: not a perifissural lymph node
            continue
        ev = plane_evidence(raw, sk, peaks[i], v[i][:, 0], parenchyma, centre_hu, r_max, pc)
        if ev["attached"] and ev["contrast_hu"] >= pc["channel_min_fissure_contrast_hu"]:
            found.append((i, centre_hu, ev["contrast_hu"]))
    if not found:
        return []
    idx = np.array([f[0] for f in found])
    exits, _ = calibre_exit_scores(raw, lungs, peaks[idx], diam[idx], np.ones(len(idx)), np.ones(len(idx), bool),
                                   parenchyma, sk)
    lo, hi = c["fissure_exits"]["value"]
    exit_term = np.clip((hi - np.nan_to_num(exits, nan=hi)) / (hi - lo), 0.0, 1.0)
    out = []
    for (i, centre_hu, fis_hu), e, et in zip(found, exits, exit_term):
        if et <= 0:
            continue
        l1, l2, l3 = -w[i]
        disc = float(l3 / np.sqrt(l1 * l2))
        score = np.sqrt(np.clip((disc - b_min) / (1.0 - b_min), 0, 1)
                        * np.clip((centre_hu - parenchyma - c_min) / (SOLID_CONTRAST_HU - c_min), 0, 1)) * et
        out.append(dict(kji=peaks[i], centroid_kji=peaks[i].astype(float), diameter_mm=float(diam[i]),
                        score=float(score), calibre_exits=float(e), channel="fissure",
                        contrast_hu=float(r_peak[i] / k), blobness=float(b_peak[i]), disc_blobness=disc,
                        sigma_mm=float(s_peak[i]), fissure_contrast_hu=float(fis_hu)))
    return out


def calibre_exit_scores(a: np.ndarray, lungs: np.ndarray, peaks: np.ndarray, diam: np.ndarray,
                        score: np.ndarray, keep: np.ndarray, parenchyma: float, spacing_kji,
                        subsolid: bool = False, sigma0_mm: float | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(exits, score): how many exits of its own calibre leave each kept dot peak, and its score
    times the vessel term of ``vessel_exits`` (detection.json).

    A vessel's bend, end, bifurcation or crossing is a bright blob at the scale of its calibre
    (the dot filter's classic false positive: Li Q, Sone S, Doi K, Med Phys 2003;30:2040-2051),
    but it is part of a longer structure of that calibre, which leaves the candidate's sphere:
    through one side (an end), two (a segment through it), three (a bifurcation), four (a
    crossing). A nodule is a rounded opacity (Fleischner glossary, Hansell 2008): alone nothing of
    its density leaves it; a juxta-vascular one is crossed by a vessel thinner than itself
    (2 (rho / r)^2 exits for a vessel of radius rho passing it). Measured: the area (mm^2) of the
    tissue at least half as dense as the candidate (above the mean of its centre's HU, the median
    within half its radius, and the parenchyma's: the half-maximum edge of its own contrast) and
    inside the lungs (the chest wall behind a juxta-pleural nodule is not a vessel) in a shell one
    voxel thick, one voxel beyond the candidate's radius (past its partial-volume edge), over the
    candidate's cross-section pi r^2. Term: 1 up to ``vessel_exits`` [0] (two: a segment through
    it, i.e. a nodule on a vessel as thick as itself keeps its score), 0 from [1] (four: a
    crossing), linear between. Only for peaks whose radius (the blob-filter scale, steps of
    2^(1/scales_per_octave)) is known better than the gap (one voxel): d <= 2 gap /
    (2^(1/scales_per_octave) - 1), 11.5 mm on 1.5 mm voxels; a larger nodule's scale may fall
    short of its edge by more than the gap, and the shell would lie inside it. Others: exits NaN,
    score unchanged. a: the working-grid CT (HU); lungs: boolean [k, j, i]; peaks (N, 3) kji;
    diam, score, keep: (N,).

    subsolid: the peaks are the sub-solid channel's (``a`` is still the CT); the term is
    ``subsolid_exits`` (1 at none, 0 from a segment through it), and the exits are counted on
    the CT with the solid structures that the grid resolves and their one-voxel rim set to the
    parenchyma (:func:`without_resolved_solid`; ``sigma0_mm``: the dot filter's finest scale,
    required). A solid vessel that crosses a ground-glass nodule is not what that channel saw;
    what it sees as dots are the partial-volume cores of thin airway walls and vessels along
    their length (Jacobs C et al., Med Image Anal 2014;18:374-384), tubes of the candidate's own
    sub-solid density that leave it, while a non-solid nodule is a focal hazy opacity (Fleischner
    glossary, Hansell 2008) of which nothing of its own density continues. A thin wall's densest
    partial-volume voxels pass the solid limit here and there; with every solid voxel's rim
    removed (:func:`subsolid_image`, the channel's own image) the wall leaving the candidate was
    cut into pieces and the end of a small airway read no exit (phantom screening scans: 0-0.6,
    against 0.2-2.3 counting any density)."""
    c = constants()
    lo, hi = c["subsolid_exits" if subsolid else "vessel_exits"]["value"]
    sk = np.asarray(spacing_kji, float)
    gap = float(sk.max())
    d_max = 2.0 * gap / (2.0 ** (1.0 / c["scales_per_octave"]["value"]) - 1.0)
    vox = float(np.prod(sk))
    exits = np.full(len(peaks), np.nan)
    score = score.copy()
    if subsolid and sigma0_mm is None:
        raise ValueError("calibre_exit_scores(subsolid=True) needs sigma0_mm")
    solid_min = c["type_hu"]["solid_min"]
    for i in np.flatnonzero(keep & (diam <= d_max + 1e-6)):
        r = float(diam[i]) / 2.0
        centre_hu, _ = _ball_hu(a, peaks[i], r, sk, solid_min)
        box, dist = ball_box(a.shape, peaks[i], r + 2.0 * gap, sk)
        img = (without_resolved_solid(a, box, sk, parenchyma, solid_min, float(sigma0_mm))
               if subsolid else a[box])
        shell = (dist > r + gap) & (dist <= r + 2.0 * gap)
        dense = shell & lungs[box] & (img > 0.5 * (centre_hu + parenchyma))
        exits[i] = float(dense.sum()) * vox / gap / (np.pi * r * r)
        score[i] *= float(np.clip((hi - exits[i]) / (hi - lo), 0.0, 1.0))
    return exits, score


def dot_exit_scores(a: np.ndarray, lungs: np.ndarray, peaks: np.ndarray, diam: np.ndarray,
                    score: np.ndarray, keep: np.ndarray, parenchyma: float, spacing_kji, sigma0_mm: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(exits, score) of the dot channel's peaks (:func:`calibre_exit_scores`), by the density of
    each peak's centre: a peak whose centre is sub-solid (median HU within half its radius below
    ``type_hu.solid_min``, the candidate's own type, :func:`_type`) is scored by the sub-solid
    rule (``subsolid_exits``, exits counted without the solid structures the grid resolves:
    ``subsolid=True``), the others by ``vessel_exits``.

    The rule follows what the candidate is, not which channel found it. ``vessel_exits`` lets a
    solid nodule on a vessel as thick as itself keep its score (two exits); a candidate of
    ground-glass density is not a solid nodule on a solid vessel: the tubes of its own density
    that leave it are the partial-volume cores of thin airway walls and vessels, the sub-solid
    detectors' false positives (Jacobs C et al., Med Image Anal 2014;18:374-384), while a
    non-solid nodule is a focal hazy opacity of which nothing of its own density continues
    (Fleischner glossary, Hansell DM et al., Radiology 2008;246:697-722), and a solid vessel
    crossing it is removed before counting. Phantom screening scans 0-19 (1.5 mm): 58 of the 78
    false positives above the 8 FP/scan threshold at the ends of small airways (a tube of wall
    around a lumen the grid barely resolves) were dot peaks, 50 of them with a sub-solid centre
    (-566..-281 HU, 10th-90th percentile) and 0.5-1.6 exits, which the dot rule left whole. a: the working-grid CT (HU); sigma0_mm: the dot
    filter's finest scale; the rest as :func:`calibre_exit_scores`."""
    solid_min = constants()["type_hu"]["solid_min"]
    sk = np.asarray(spacing_kji, float)
    ctr = np.array([_ball_hu(a, pk, d / 2.0, sk, solid_min)[0] if k else np.nan
                    for pk, d, k in zip(peaks, diam, keep)])
    gg = keep & (ctr < solid_min)
    exits, score = calibre_exit_scores(a, lungs, peaks, diam, score, keep & ~gg, parenchyma, sk)
    e2, score = calibre_exit_scores(a, lungs, peaks, diam, score, gg, parenchyma, sk, subsolid=True,
                                    sigma0_mm=sigma0_mm)
    exits[gg] = e2[gg]
    return exits, score


def without_resolved_solid(a: np.ndarray, box: tuple, spacing_kji, parenchyma: float,
                           solid_min: float, sigma0_mm: float) -> np.ndarray:
    """``a[box]`` (float32 copy) with the solid structures that the grid resolves and their
    one-voxel rim set to ``parenchyma``: the connected components (26-neighbourhood) of voxels
    above ``solid_min`` that hold a voxel still above it once the CT is smoothed at
    ``sigma0_mm`` (the dot filter's finest scale, that of the smallest nodule sought). A vessel
    or a solid nodule is such a structure, and its partial-volume halo is not tissue of
    ground-glass density (Jacobs C et al., Med Image Anal 2014;18:374-384). A thin airway wall
    or septum is not: its few voxels above the limit are the densest partial-volume samples of
    a structure thinner than a voxel (smoothed at the finest scale they fall back below it), so
    the wall stays what it is, a tube of sub-solid density. Resolved means about as thick as the
    smallest nodule sought: the axis of a solid tube (40 HU in -850 HU parenchyma) smoothed at
    sigma stays above -300 HU from a diameter of 2.8 sigma (2.4 mm at the 3 mm nodule's 0.87 mm);
    a thinner vessel and its halo count as tissue leaving the candidate, as any density does for
    the dot channel. The components and the smoothing are read in ``box`` padded by 3 sigma.
    a: CT [k, j, i] (HU); box: slices into ``a``; spacing_kji: mm. Returns an array of the
    box's shape."""
    sk = np.asarray(spacing_kji, float)
    pad = np.ceil(3.0 * sigma0_mm / sk).astype(int) + 1
    lo = [max(b.start - int(p), 0) for b, p in zip(box, pad)]
    hi = [min(b.stop + int(p), n) for b, p, n in zip(box, pad, a.shape)]
    v = a[tuple(slice(l, h) for l, h in zip(lo, hi))].astype(np.float32)
    raw = v > solid_min
    if raw.any():
        smooth = ndimage.gaussian_filter(v, sigma0_mm / sk, mode="nearest", truncate=3.0) > solid_min
        lab, n = ndimage.label(raw, np.ones((3, 3, 3), bool))
        resolved = np.zeros(n + 1, bool)
        resolved[np.unique(lab[smooth & raw])] = True
        resolved[0] = False
        v[ndimage.binary_dilation(resolved[lab], np.ones((3, 3, 3), bool))] = parenchyma
    inner = tuple(slice(b.start - l, b.stop - l) for b, l in zip(box, lo))
    return v[inner]


def subsolid_channel_applies(ct: Volume) -> bool:
    """Whether the sub-solid channel runs: only on thin sections (slice spacing <=
    ``subsolid_max_slice_mm``); on thicker ones a vessel crossing a section averages into
    ground-glass density and the channel would report every vessel."""
    thick = float(ct.spacing_kji[anatomical_axes(ct)["S"][0]])
    return thick <= constants()["subsolid_max_slice_mm"]["value"] + 1e-6


def subsolid_image(sub: Volume, parenchyma: float) -> Volume:
    """The CT with solid structures removed, for the sub-solid channel: voxels denser than the
    sub-solid range (``type_hu.solid_min``, -300 HU: vessels, airway walls, chest wall, solid
    nodules) and their partial-volume rim (one voxel of the grid) are set to the parenchyma's
    median. A ground-glass nodule (-750..-300 HU, Jacobs C et al., Med Image Anal 2014;18:374-384)
    keeps its contrast, while the vessel beside it, four times as dense, no longer dominates the
    Hessian at its scale; vessel halos (the -750..-300 HU rim of partial volume around solid
    structures, Jacobs' main false positive) go with the rim."""
    solid = sub.array > constants()["type_hu"]["solid_min"]
    rim = ndimage.binary_dilation(solid, np.ones((3, 3, 3), bool))
    out = sub.array.astype(np.float32)
    out[rim] = parenchyma
    return sub.with_array(out)


def concavity_candidates(sub: Volume, lungs: np.ndarray, search: np.ndarray,
                         airway: np.ndarray | None = None) -> list[dict]:
    """Juxta-pleural candidates: dense, round parts of the lung outline's concavities.

    A nodule on the pleura is not a bright blob for the Hessian (the chest wall behind it is as
    dense), but it indents the lung mask: the per-section closing (``search``) minus the lungs
    holds it (Armato et al., Med Phys 2001). Kept: voxels denser than the parenchyma (its median
    in ``lungs``) by ``min_contrast_hu``, opened with a ball of the smallest nodule's radius (thin
    rims go); 3-D components attached to the wall (next to what the closing did not fill: a fold
    of the lung base between lung islands is not), whose equivalent diameter lies within the
    nodule range (``concavity_min_diameter_mm`` up to ``mass_diameter_max_mm``), whose median
    is below ``type_hu.calcified_min`` (denser: a rib bulging into the lung outline or a calcified
    pleural plaque, not a nodule; a calcified nodule is benign, Lung-RADS 1, and inside the lung
    the dot channel finds it), whose roundness (inscribed diameter / equivalent diameter; a
    half-ball on a flat wall 0.63, a ball 1) is at least ``min_roundness``, whose middle over
    largest principal axis (:func:`in_plane_axis_ratio`) is at least ``concavity_min_axis_ratio``
    (a nodule on the pleura is round where it meets the pleura; a vessel lying in a groove of
    the lung outline, such as the subclavian artery over the apex, or a rib is a tube along it)
    and with at least ``min_lung_shell_fraction`` of lung around them. Score: the geometric mean of the roundness
    and contrast terms (as the dot channel's, blobness replaced by roundness) times the share of
    lung around the component (about 0.5 on a flat pleura): a concavity of the lung outline is
    weaker evidence of a nodule than a blob wholly in the lung (ribs, the diaphragm and the
    mediastinal contour make concavities too), so it ranks below a dot of equal terms.

    airway: the airway tree's lumen (boolean [k, j, i]) cut out of the lungs. A component that
    touches it is not a juxta-pleural candidate: the hollow it lies in is the airway's own, and
    its dense tissue is the bronchial wall and the vessels at the hilum, not a nodule on the
    pleura. The rolling ball recovers nodules along the costal, diaphragmatic and mediastinal
    pleura (Armato SG 3rd et al., Med Phys 2001;28:1552-1561); Armato removes the trachea and
    main bronchi before the ball is rolled (Armato & MacMahon, Med Phys 1999), so the airway
    wall is never part of the outline it follows.
    """
    import cc3d
    import edt

    from ..segmentation.common import open_mm

    c = constants()
    sk = sub.spacing_kji
    d_min = c["nodule_diameter_mm"]["value"][0]
    d_max = c["mass_diameter_max_mm"]["value"]
    c_min = c["min_contrast_hu"]["value"]
    r_min = c["min_roundness"]["value"]
    axis_min = c["concavity_min_axis_ratio"]["value"]
    a = sub.array
    if not lungs.any():
        return []
    parenchyma = float(np.median(a[lungs]))
    conc = search & ~lungs & (a > parenchyma + c_min)
    conc = open_mm(conc, d_min / 2.0, sk)
    if not conc.any():
        return []
    lab, n = cc3d.connected_components(conc, connectivity=6, return_N=True)
    counts = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    d_eq = (6.0 * counts * float(np.prod(sk)) / np.pi) ** (1.0 / 3.0)
    # attached to the wall: next to what the closing did not fill (a nodule on the costal
    # pleura has the chest wall behind it; a fold of the lung base between lung islands has not)
    wall = ndimage.binary_dilation(~search) & conc
    attached = np.zeros(n + 1, bool)
    attached[np.unique(lab[wall])] = True
    if airway is not None and airway.any():
        attached[np.unique(lab[ndimage.binary_dilation(airway) & conc])] = False
    d_lo = max(d_min, c["concavity_min_diameter_mm"]["value"])
    ok = (d_eq >= d_lo) & (d_eq <= d_max) & attached[1:]
    boxes = ndimage.find_objects(lab)
    out = []
    for i in np.flatnonzero(ok):
        bb = tuple(slice(max(b.start - 1, 0), b.stop + 1) for b in boxes[i])
        m = lab[bb] == i + 1
        depth = edt.edt(np.ascontiguousarray(m), anisotropy=tuple(map(float, sk)), black_border=True)
        r_in = float(depth.max())
        roundness = float(min(2.0 * r_in / d_eq[i], 1.0))
        if roundness < r_min:
            continue
        if in_plane_axis_ratio(np.argwhere(m) * sk) < axis_min:  # a tube along the pleura
            continue
        deep = np.array(np.unravel_index(int(np.argmax(depth)), m.shape)) + [b.start for b in bb]
        shell = _lung_shell_fraction(lungs, deep, d_eq[i] / 2.0, sk)
        if shell < c["min_lung_shell_fraction"]["value"]:
            continue
        med = float(np.median(a[bb][m]))
        if med >= c["type_hu"]["calcified_min"]:  # bone: a rib, or a calcified plaque (benign)
            continue
        contrast = med - parenchyma
        score = shell * np.sqrt(np.clip((roundness - r_min) / (1.0 - r_min), 0, 1)
                                * np.clip((contrast - c_min) / (SOLID_CONTRAST_HU - c_min), 0, 1))
        cen = np.argwhere(m).mean(0) + [b.start for b in bb]
        out.append(dict(kji=deep, centroid_kji=cen, diameter_mm=float(d_eq[i]), roundness=roundness,
                        contrast_hu=contrast, lung_shell_fraction=shell, score=float(score)))
    return out


def shell_outer_mm(radius_mm: float) -> float:
    """Outer radius of the lung shell around a sphere of ``radius_mm``: radius + max(2 mm, radius / 2)
    (:func:`_lung_shell_fraction`, :func:`mass_candidates`)."""
    return radius_mm + max(2.0, 0.5 * radius_mm)


def _ball_kernel(radius_mm: float, outer_mm: float, spacing_kji) -> tuple[np.ndarray, np.ndarray]:
    """(ball, shell) kernels (float32, each summing to 1) on a grid of ``spacing_kji``: voxels within
    ``radius_mm`` of the centre, and those in (radius, outer]."""
    sk = np.asarray(spacing_kji, float)
    h = np.ceil(outer_mm / sk).astype(int)
    g = np.ogrid[tuple(slice(-n, n + 1) for n in h)]
    d = np.sqrt(sum((gi * s) ** 2 for gi, s in zip(g, sk)))
    ball, shell = (d <= radius_mm).astype(np.float32), ((d > radius_mm) & (d <= outer_mm)).astype(np.float32)
    return ball / max(ball.sum(), 1.0), shell / max(shell.sum(), 1.0)


def mass_candidates(sub: Volume, sides: tuple[np.ndarray, np.ndarray], airway: np.ndarray | None,
                    sigmas_mm, notes: list | None = None) -> list[dict]:
    """Masses (> 30 mm) that the dot filter and the juxta-pleural channel see only in pieces.

    A lung mass against the mediastinum or the chest wall is not a blob for the Hessian (the
    tissue it touches is as dense: Lung-PET-CT-Dx A0001's 5 cm perihilar adenocarcinoma has
    blobness 0.04 at the 30-50 mm scales) and is wider than the juxta-pleural rolling ball
    (radius 15 mm, half the largest nodule), so only its rim lies in the search region and the
    concavity channel reported three rim pieces. It is found here as what it is: a solid ball of a
    mass's size (the dot filter's scales of 30 mm up to ``mass_diameter_max_mm``) whose centre lies
    on the lung's side of the pleura: at least ``mass.min_lung_shell_fraction`` (one half) of a
    shell around it (:func:`shell_outer_mm`) is the aerated lung of ONE lung, and the ball lies in
    that lung's per-slice hull envelope (:func:`imagio.segmentation.lesion.hull_envelope`, the
    one-click tool's lung envelope). A lesion arising in the lung meets the pleura at acute angles
    and has its centre on the lung's side, so more than half of a thin shell around it is lung; a
    structure outside the lung (mediastinum, heart, chest-wall or pleural lesion) meets it at
    obtuse angles, with less (Felson B, Chest Roentgenology 1973; Webb WR, Brant WE, Major NM,
    Fundamentals of Body CT, 4th ed. 2015: the incomplete-border / pleural-angle signs). One lung:
    the heart and great vessels lie between the two lungs, which together wrap them (the same
    reason the search region is each lung's own closing, Armato 1999). The ball is solid:
    at least ``mass.min_solid_ball_fraction`` of it is denser than the parenchyma by
    ``min_contrast_hu`` and outside the lungs and airways, and lies whole inside the image; the
    shell's lung fraction is that of its part inside the image (a slab's faces are not "not
    lung"). A bulge of the heart or a hilum that one lung wraps (the phantom's right heart
    border) is told from a lung mass by :func:`_joins_the_mediastinum`: its soft tissue runs on
    across the midline.

    The fractions are computed by FFT convolution on a grid of about ``coarse_spacing_mm`` (the
    mass scales are >= 15 mm in radius). sub: the working-grid CT; sides: (left, right) boolean
    lungs on it; airway: the airway lumen cut out of them; sigmas_mm: the dot filter's scales.
    Returns dicts like :func:`concavity_candidates`' with ``channel`` "mass".

    Undecided balls (new-user trial 104, HIGH, open): the keep test reads the shell's share at
    centres sampled on the coarse grid, and the best centre may lie up to half a coarse voxel's
    diagonal h from a sample, where the share is higher by up to h / (2 rho) (its slope across a
    flat pleura, rho the shell's outer radius). A mass abutting the mediastinum is centred at the
    pleura, at the limit itself: on an oblique re-grid of Lung-PET-CT-Dx A0001 its 5 cm mass read
    0.499 (0.53 on its own grid) and was not a candidate. Lowering the limit by that tolerance
    admitted the phantom's aortic arch (0.45-0.50) on 18 of 20 bench scans (the share cannot tell
    them). Such a ball, solid, not bone and not joined to the mediastinum, is kept when its tissue
    ends along S as a mass's does (:func:`_continues_as_tube`: a great vessel is a tube that runs
    on) and named in ``notes`` (when given) either way."""
    from scipy import signal

    from ..segmentation.common import open_mm
    from ..segmentation.lesion import OPEN_FRACTION, hull_envelope

    c = constants()
    m = c["mass"]
    d_lo, d_hi = c["nodule_diameter_mm"]["value"][1], c["mass_diameter_max_mm"]["value"]
    diam = 2.0 * np.sqrt(3.0) * np.asarray(sigmas_mm, float)
    radii = diam[(diam >= d_lo - 1e-6) & (diam <= d_hi + 1e-6)] / 2.0
    lungs = sides[0] | sides[1]
    if not len(radii) or not lungs.any():
        return []
    a = sub.array
    parenchyma = float(np.median(a[lungs]))
    c_min = c["min_contrast_hu"]["value"]
    solid_any = a > parenchyma + c_min
    if airway is not None:
        solid_any &= ~airway
    dense = solid_any & ~lungs
    s_axis = anatomical_axes(sub)["S"][0]
    envs = [hull_envelope(sd, s_axis) & dense if sd.any() else None for sd in sides]
    # block means on a grid of about coarse_spacing_mm (never finer than the working grid)
    sk = np.asarray(sub.spacing_kji, float)
    f = np.maximum(1, np.floor(c["coarse_spacing_mm"]["value"] / sk + 1e-6)).astype(int)
    ck = sk * f

    def coarse(x):
        x = ndimage.uniform_filter(x.astype(np.float32), size=tuple(f), mode="nearest") if np.any(f > 1) else \
            x.astype(np.float32)
        return np.ascontiguousarray(x[tuple(slice(int(n) // 2, None, int(n)) for n in f)])

    dense_c = coarse(dense)
    side_c = [coarse(sd) if sd.any() else None for sd in sides]
    env_c = [coarse(e) >= 0.5 if e is not None else None for e in envs]
    t = m["min_lung_shell_fraction"]["value"]
    best = np.zeros(dense_c.shape, np.float32)
    best_r = np.zeros(dense_c.shape, np.float32)
    best_b = np.zeros(dense_c.shape, np.float32)
    ones = np.ones(dense_c.shape, np.float32)
    for r in radii:
        ball, shell = _ball_kernel(r, shell_outer_mm(r), ck)
        # the ball lies whole inside the image (a mass cut by the scan's end is not measured as
        # one), its shell's fraction is that of the part inside the image: beyond it is unknown,
        # not "not lung" (a slab's faces cut the lung around a mass)
        seen = signal.fftconvolve(ones, ball, mode="same") >= 1.0 - 1e-3
        in_shell = signal.fftconvolve(ones, shell, mode="same")
        fb = signal.fftconvolve(dense_c, ball, mode="same")
        solid = (fb >= m["min_solid_ball_fraction"]["value"]) & (dense_c >= 0.5) & seen
        if not solid.any():
            continue
        for sc, ec in zip(side_c, env_c):
            if sc is None:
                continue
            fs = np.where(solid & ec, signal.fftconvolve(sc, shell, mode="same") / np.maximum(in_shell, 1e-6), 0.0)
            better = fs > best   # the mass scale at which the lung wraps it most
            best[better], best_r[better], best_b[better] = fs[better], r, fb[better]
    kept = best >= t
    for part in _undecided_balls(sub, sides, best, best_r, dense, ck, f, t, sigmas_mm, s_axis, notes):
        kept |= part   # a near-limit ball whose tissue ends as a mass's does (not a great vessel's tube)
    if not kept.any():
        return []
    lab, n = ndimage.label(kept, structure=np.ones((3, 3, 3), bool))
    pk = np.array(ndimage.maximum_position(best, lab, np.arange(1, n + 1)), int).reshape(-1, 3)
    val = best[tuple(pk.T)]
    rad = best_r[tuple(pk.T)]
    keep = _merge_inside(pk * ck, rad, val)
    out = []
    for q, v, r, b in zip(pk[keep], val[keep], rad[keep], best_b[tuple(pk[keep].T)]):
        kji = np.minimum(q * f + f // 2, np.array(a.shape) - 1)
        box, dist = ball_box(a.shape, kji, r, sk)
        med = float(np.median(a[box][(dist <= r) & dense[box]]))
        if med >= c["type_hu"]["calcified_min"]:  # bone (a vertebral body, the sternum), not a mass
            continue
        if _joins_the_mediastinum(sub, sides, kji, r, s_axis, c["type_hu"]["calcified_min"],
                                  float(np.min(sigmas_mm))):
            continue
        contrast = med - parenchyma
        # a near-limit ball kept as not a tube: its share may lie at the limit within the sampling
        # error (_undecided_balls), scored as at the limit; its feature keeps the share read
        score = mass_score(max(float(v), t), contrast)
        # its extent, where its rim pieces lie: the solid tissue joined to the ball within twice
        # its radius (a mass is roughly ellipsoidal, its axes within 2:1: the 2:1 limit of
        # min_blobness), opened as the one-click tool opens a lesion (a ball of OPEN_FRACTION of
        # its inscribed radius, lesion.json): vessels and bridges narrower than that are cut, so
        # a nodule on a vessel beside the mass stays a candidate of its own
        box, dist = ball_box(a.shape, kji, 2.0 * r, sk)
        # (solid tissue wherever it lies: the HU-rule lungs hold the parts of a mass they enclose)
        solid_here = open_mm(solid_any[box] & (dist <= 2.0 * r), OPEN_FRACTION * r, sk)
        lab_m, _ = ndimage.label(solid_here, structure=np.ones((3, 3, 3), bool))
        at = lab_m[tuple(kji - [b.start for b in box])]
        region = (lab_m == at) if at else (dist <= r)
        out.append(dict(kji=kji, centroid_kji=kji.astype(float), diameter_mm=float(2.0 * r),
                        contrast_hu=contrast, lung_shell_fraction=float(v), solid_ball_fraction=float(b),
                        score=float(score), channel="mass", region=(box, region)))
    return out


def _undecided_balls(sub: Volume, sides, best, best_r, dense, ck, f, t: float, sigmas_mm, s_axis: int,
                     notes: list | None) -> list[np.ndarray]:
    """The solid mass-sized balls whose best lung-shell share lies below the keep limit ``t`` by
    less than the coarse grid's sampling can hide (h / (2 rho), see :func:`mass_candidates`), not
    bone and not joined to the mediastinum, that are not a great vessel (:func:`_continues_as_tube`):
    returned as boolean coarse-grid masks (their connected near-limit parts) to keep as mass
    candidates. Each such ball, kept or not, is one line in ``notes`` (when given). best, best_r:
    the coarse grids of the best share and its radius (mm); dense: the solid tissue outside the
    lungs on ``sub``; ck: the coarse spacing (mm); f: the coarse factor per axis."""
    c = constants()
    half_diag = 0.5 * float(np.linalg.norm(ck))
    outer = np.where(best_r > 0, best_r + np.maximum(2.0, 0.5 * best_r), np.inf)   # shell_outer_mm
    near = (best_r > 0) & (best < t) & (best >= t - half_diag / (2.0 * outer))
    if not near.any():
        return []
    a, sk = sub.array, np.asarray(sub.spacing_kji, float)
    lab, n = ndimage.label(near, structure=np.ones((3, 3, 3), bool))
    pk = np.array(ndimage.maximum_position(best, lab, np.arange(1, n + 1)), int).reshape(-1, 3)
    out = []
    for q in pk:
        r, v = float(best_r[tuple(q)]), float(best[tuple(q)])
        kji = np.minimum(q * f + f // 2, np.array(a.shape) - 1)
        box, dist = ball_box(a.shape, kji, r, sk)
        inside = (dist <= r) & dense[box]
        if not inside.any() or float(np.median(a[box][inside])) >= c["type_hu"]["calcified_min"]:
            continue
        if _joins_the_mediastinum(sub, sides, kji, r, s_axis, c["type_hu"]["calcified_min"],
                                  float(np.min(sigmas_mm))):
            continue
        tube = _continues_as_tube(dense, kji, r, sk, s_axis)
        if not tube:
            out.append(lab == lab[tuple(q)])
        if notes is None:
            continue
        ras = [round(float(x), 1) for x in sub.kji_to_world(kji[None].astype(float))[0]]
        head = (f"a solid {2 * r:.0f} mm ball at RAS {ras} is centred at the pleura: {v:.2f} of the shell around it "
                f"is lung, under the mass channel's one half by less than its {ck.max():g} mm sampling grid can hide")
        if tube:   # said unless a final candidate covers it (`uncovered_notes`)
            notes.append(BallNote(head + ": its tissue runs on along S past twice its radius as a great vessel's does "
                                  "(or the chest wall's): it is not a candidate; read it on the images",
                                  center_ras=sub.kji_to_world(kji[None].astype(float))[0], radius_mm=r))
        else:
            notes.append(head + ": its tissue ends along S within twice its radius, as a mass's does, not a vessel's: "
                         "kept as a mass candidate; confirm it on the images")
    return out


class BallNote(str):
    """A note that a solid mass-sized ball is not a candidate (`_undecided_balls`), with the ball's
    centre (RAS mm) and radius (mm), so that it can be checked against the final candidates."""

    def __new__(cls, text: str, center_ras, radius_mm: float):
        o = super().__new__(cls, text)
        o.center_ras, o.radius_mm = np.asarray(center_ras, float), float(radius_mm)
        return o


def uncovered_notes(notes: list, cands) -> list:
    """``notes`` without the balls said not to be candidates (`BallNote`) that a final candidate covers:
    the ball's centre lies within the candidate's radius (half its ``diameter_mm``) of its centre, or the
    candidate's centre within the ball's radius, in world mm. New-user trial 106 L8: on an oblique Lung_Dx
    re-grid "a solid 48 mm ball at [-43.9, -199.2, -206.2] ... is not a candidate" stood beside the 48.0 mm
    mass candidate at [-46.7, -200.2, -206.2], 3 mm away (the mass channel had kept the same mass as a
    near-limit 38 mm ball and merged it)."""
    def covered(n) -> bool:
        return any(float(np.linalg.norm(np.asarray(c.center_ras, float) - n.center_ras))
                   <= max(0.5 * float(c.diameter_mm), n.radius_mm) for c in cands)

    return [str(n) for n in notes if not (isinstance(n, BallNote) and covered(n))]


def _continues_as_tube(dense: np.ndarray, kji, radius_mm: float, spacing_kji, s_axis: int) -> bool:
    """Whether the solid tissue of a mass-sized ball (centre ``kji``, radius ``radius_mm``) runs on
    along S as a great vessel does: within the cylinder of the ball's disc (radius ``radius_mm``
    in the section, about the same in-plane place) it continues unbroken (26-connected) from the
    centre's section to the first section past ``mass.tube_past_radii`` (2) radii, above or
    below, where it still fills at least ``mass.tube_fill_fraction`` (half) of the disc. dense: boolean [k, j, i] solid tissue outside the lungs;
    spacing_kji: mm; s_axis: the grid axis nearest S. A far section outside the image counts as
    continuing (it cannot be ruled out: the ball stays undecided).

    Why: the aorta, the pulmonary trunk and arteries and the venae cavae are tubes of 20-35 mm
    calibre (descending thoracic aorta 24-29 mm, Hager A et al., J Thorac Cardiovasc Surg
    2002;123:1060-6; the aortic arch runs on into the descending aorta along the spine, Standring
    S, ed., Gray's Anatomy, 41st ed., 2016, ch. 56) that a mass-sized ball fits, while a lung mass
    is a bounded, roughly ellipsoidal opacity (Fleischner glossary, Hansell DM et al., Radiology
    2008;246:697-722) whose axes lie within 2:1 (the channel's own assumption, as its extent,
    :func:`mass_candidates`): past twice the radius of its inscribed ball it has ended. Half the
    disc: the ball lies centred at the pleura, so beyond a mass's end the wall or mediastinum
    behind the pleura fills at most about half the disc, a tube at the same place more (two discs
    of radius r overlap by half when their centres lie 0.81 r apart). Measured before choosing it
    (detect50, fixed disc, no tracking): the phantom's aortic arch (18 bench scans) fills 0.61-0.69
    of the disc 2r caudally, unbroken; Lung-PET-CT-Dx A0001's 5 cm mass on trial 104's oblique
    re-grid 0.19 caudally and broken (0.00-0.14) cranially."""
    m = constants()["mass"]
    past, fill = m["tube_past_radii"]["value"], m["tube_fill_fraction"]["value"]
    sk = np.asarray(spacing_kji, float)
    ip = [ax for ax in range(3) if ax != s_axis]
    h = [int(np.ceil(radius_mm / sk[ax])) for ax in ip]
    g = np.ogrid[tuple(slice(-hh, hh + 1) for hh in h)]
    disc = (g[0] * sk[ip[0]]) ** 2 + (g[1] * sk[ip[1]]) ** 2 <= radius_mm ** 2
    n = int(np.floor(past * radius_mm / sk[s_axis] + 1e-6)) + 1   # the first section past 2 r
    d = np.moveaxis(dense, s_axis, 0)
    z0 = int(kji[s_axis])
    c = np.array([kji[ip[0]], kji[ip[1]]], int)
    lo = c - h
    a0, a1 = np.maximum(lo, 0), np.minimum(lo + disc.shape, d.shape[1:])
    for sign in (-1, 1):
        z1 = z0 + sign * n
        if z1 < 0 or z1 >= d.shape[0]:
            return True
        zs = slice(min(z0, z1), max(z0, z1) + 1)
        cyl = np.zeros((zs.stop - zs.start,) + disc.shape, bool)
        cyl[:, a0[0] - lo[0]:a1[0] - lo[0], a0[1] - lo[1]:a1[1] - lo[1]] = d[zs, a0[0]:a1[0], a0[1]:a1[1]]
        cyl &= disc
        lab, _ = ndimage.label(cyl, structure=np.ones((3, 3, 3), bool))
        first, last = (0, -1) if sign > 0 else (-1, 0)
        own = np.unique(lab[first][lab[first] > 0])
        if own.size and np.isin(lab[last], own).sum() >= fill * disc.sum():
            return True
    return False


def mass_score(shell: float, contrast_hu: float) -> float:
    """Ranking score in [0, 1] of a mass candidate (:func:`mass_candidates`): the geometric mean
    of the dot channel's two kinds of term, the lung-side term :func:`lung_side_term` of the
    share ``shell`` of lung in the shell around its ball and the contrast term
    (C - ``min_contrast_hu``) / (850 HU - ``min_contrast_hu``) of its median density over the
    parenchyma ``contrast_hu``, clipped to [0, 1].

    The lung-side term is the one the dot and sub-solid channels use: the pleural-angle sign
    (Felson 1973; Webb 2015) tells a lesion of the lung (centre on the lung's side, acute
    angles) from one of the wall or mediastinum (obtuse angles); once the centre is on the
    lung's side (half the shell, the mass channel's keep limit ``mass.min_lung_shell_fraction``)
    the sign is met and the term is 1. How much more than half of the shell is lung measures
    how far the lesion lies from the pleura, the fissures and the hilum relative to its size, not
    whether it is a lesion: a ball whose centre lies d inside a flat pleura has (1 + d / R) / 2 of
    a shell of radius R in the lung, so a mass > 30 mm (Fleischner glossary, Hansell 2008) that
    touches the mediastinum or the chest wall, as central (perihilar) and large tumours do, reads
    little above one half however certain it is (Lung-PET-CT-Dx A0001's 5 cm perihilar mass:
    0.53). The former term (shell - 0.5) / 0.5 scored it 0.06 x 1.0 -> 0.25 (new-user trial 77),
    below its own rim pieces. The blobness term has no counterpart: the Hessian does not see a
    mass against the mediastinum as a blob (:func:`mass_candidates`), its shape is the channel's
    keep tests (a solid ball of its size, one lung, not joined to the mediastinum).
    shell: float in [0, 1]; contrast_hu: HU; returns a float."""
    c_min = constants()["min_contrast_hu"]["value"]
    return float(np.sqrt(lung_side_term(shell)
                         * np.clip((contrast_hu - c_min) / (SOLID_CONTRAST_HU - c_min), 0.0, 1.0)))


def _joins_the_mediastinum(sub: Volume, sides: tuple[np.ndarray, np.ndarray], kji, radius_mm: float,
                           s_axis: int, bone_hu: float, sigma_mm: float = 0.0) -> bool:
    """Whether a mass candidate (centre ``kji``, radius ``radius_mm``) is part of the mediastinum
    rather than a lesion of one lung: in the axial section through its centre, the soft tissue
    at the centre (between ``lesion.json`` fat_max_hu, adipose tissue -190..-30 HU, and
    ``bone_hu``, the calcified/bone limit), opened by a disc of the one-click tool's opening
    fraction of the radius (``lesion.json`` open_fraction: vessels, bridges and fat-separated
    neighbours narrower than that are cut), continues across the thorax's midline.

    A lung lesion lies in one hemithorax; the soft-tissue structure that spans the midline
    between the lungs is the mediastinum: the heart (two thirds left of the midline, one third
    right), the great vessels, the oesophagus (Standring S, ed., Gray's Anatomy, 41st ed., 2016,
    ch. 56-57). A bulge of the heart or of a hilum that one lung wraps over half its shell (the
    phantom's right heart border: 0.57-0.63 of the shell) passes the pleural-angle test of
    :func:`mass_candidates`, but its soft tissue runs on, in its own section, into the heart
    across the midline; a lung mass against the mediastinum or the chest wall is bounded by the
    fat planes, the bone and the lung around it (Lung-PET-CT-Dx A0001's 5 cm mass: its opened
    soft tissue ends 24 mm short of the midline). A mass that invades the mediastinum broadly is
    dropped from this channel too and stays what the other channels see (its rim pieces): this
    stage never removes a candidate of the other channels.

    The midline is the plane halfway between the two lungs' centroids along R-L (each lung's
    centre lies 8-10 cm from it, symmetric; the same reason the lungs are split about the
    isocentre in :func:`search_region`); with one lung in view it is not judged (False).

    The tissue classes are read on the section smoothed in-plane by a Gaussian of ``sigma_mm``
    (the detector's finest scale, that of the smallest nodule): a single voxel carries the scan's
    noise, and the blood pool of a contrast CT (150-180 HU, ``phantom.hu`` PHASE_HU after Bae 2010)
    lies within two noise SD of low-dose CT (20-40 HU) below the bone limit, so raw voxels riddle the heart with
    'bone' holes that the opening turns into breaks (phantom at 24 HU noise: 1.5 % of the heart's
    voxels >= 200 HU raw, 0.3 % after smoothing at 0.87 mm, as at 12 HU raw), and the heart
    was kept as a 48 mm mass, score 1, on 7 of 8 scans. Smoothing at the finest scale removes
    nothing the opening (half the mass's radius, >= 7.5 mm) keeps."""
    from ..segmentation.common import open_mm
    from ..limits import FAT_MAX_HU
    from ..segmentation.lesion import OPEN_FRACTION

    if not (sides[0].any() and sides[1].any()):
        return False
    x_mid = 0.5 * sum(float(sub.kji_to_world(np.array([ndimage.center_of_mass(sd)]))[0, 0]) for sd in sides)
    z = int(kji[s_axis])
    section = np.take(sub.array, [z], axis=s_axis).astype(np.float32)
    sk = np.asarray(sub.spacing_kji, float).copy()
    sk[s_axis] = 1e6  # no extent across sections: a disc in the section
    if sigma_mm > 0:
        section = ndimage.gaussian_filter(section, sigma_mm / sk, mode="nearest", truncate=3.0)
    soft = open_mm((section > FAT_MAX_HU) & (section < bone_hu), OPEN_FRACTION * radius_mm, sk)
    at = tuple(int(v) for v in np.where(np.arange(3) == s_axis, 0, kji))
    if not soft[at]:
        return False
    lab, _ = ndimage.label(soft, structure=np.ones((3, 3, 3), bool))
    pix = np.argwhere(lab == lab[at])
    pix[:, s_axis] = z
    x = sub.kji_to_world(pix)[:, 0]
    return bool(x.min() < x_mid < x.max())


def _midline_x(w: Volume, sides) -> float | None:
    """RAS x (mm) of the thorax's midline: halfway between the two lungs' centroids along R-L
    (as :func:`_joins_the_mediastinum` reads it); None with one lung in view."""
    if not (sides[0].any() and sides[1].any()):
        return None
    return 0.5 * sum(float(w.kji_to_world(np.array([ndimage.center_of_mass(sd)]))[0, 0]) for sd in sides)


def _parts_of_masses(peaks: np.ndarray, score: np.ndarray, keep: np.ndarray, channel: np.ndarray,
                     regions: dict) -> np.ndarray:
    """Scores after the kept peaks (kji) that lie in a kept mass's extent (``regions``: index
    -> (box slices, boolean mask), :func:`mass_candidates`) are made parts of it: such a peak is
    dropped from ``keep`` (in place) whatever its score and the mass takes the highest score of
    its parts. A mass is one lesion (Lung-RADS v2022 reads a nodule's size on its whole extent);
    its rim pieces are not nodules of their own (trial 33 H3: Lung-PET-CT-Dx A0001's mass as three
    rim pieces, one typed perifissural)."""
    score = score.copy()
    others = np.flatnonzero(keep & (channel != "mass"))
    for mi in np.flatnonzero(keep & (channel == "mass")):
        box, region = regions[int(mi)]
        lo = np.array([b.start for b in box])
        q = peaks[others] - lo
        ok = np.all((q >= 0) & (q < region.shape), axis=1)
        part = others[ok][region[tuple(q[ok].T)]]
        if len(part):
            score[mi] = max(score[mi], float(score[part].max()))
            keep[part] = False
            others = np.setdiff1d(others, part)
    return score


def in_plane_axis_ratio(points_mm: np.ndarray) -> float:
    """Middle over largest principal axis (standard deviations) of a point set (N, 3) in mm:
    1 for a ball or a half-ball on a flat wall (its two axes in the wall's plane are equal; the
    smallest axis, across the wall, is not used: a nodule flattened against the pleura is thin
    across it), 0.87 d / L for a solid tube of diameter d and length L >= d (d / 4 across it,
    L / sqrt(12) along it: 0.29 for L = 3 d), 0 for a line. A nodule is a rounded opacity (Fleischner glossary, Hansell
    DM et al., Radiology 2008;246:697-722) whose principal axes rarely differ by more than 2:1
    (Li Q, Sone S, Doi K, Med Phys 2003;30:2040-2051 use the same 2:1 limit for the dot filter's
    vessel suppression); the structures that indent the lung outline as tubes are vessels
    (subclavian artery over the apex, brachiocephalic veins, azygos arch) and ribs. Returns 0
    for fewer than 4 points."""
    x = np.asarray(points_mm, float)
    if len(x) < 4:
        return 0.0
    ev = np.sort(np.linalg.eigvalsh(np.cov((x - x.mean(0)).T)))[::-1]
    return float(np.sqrt(max(ev[1], 0.0) / ev[0])) if ev[0] > 0 else 0.0


def _merge_inside(centres: np.ndarray, radii: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """Boolean keep-mask: a peak inside the sphere of a stronger kept peak is merged into it
    (greedy non-maximum suppression over candidates, not voxels)."""
    order = np.argsort(-strength)
    keep = np.zeros(len(centres), bool)
    kept: list[int] = []
    for i in order:
        if kept:
            d = np.linalg.norm(centres[kept] - centres[i], axis=1)
            if np.any(d < np.maximum(radii[kept], radii[i])):
                continue
        kept.append(i)
        keep[i] = True
    return keep


def _category3_solid_mm() -> float:
    """Smallest mean diameter (mm) of a Lung-RADS v2022 category-3 solid nodule at baseline (6 mm,
    ``imagio/data/lungrads_v2022.json``): the lower limit of the first solid band above category 2."""
    from ..stratification.lungrads import table

    return float(next(lo for lo, _, cat in table()["baseline"]["solid"] if cat != "2"))


def lung_side_term(shell: float) -> float:
    """Score factor in [0, 1] of a dot or sub-solid candidate from the share ``shell`` of the shell
    around its sphere that is lung (:func:`_lung_shell_fraction`): 0 at the keep limit
    ``min_lung_shell_fraction`` and below, 1 from ``lung_side_shell_fraction`` (0.5) up,
    linear between (``lung_side_shell_fraction`` in detection.json).

    A nodule arises in the lung, so its centre lies on the lung's side of the pleura (it meets
    the pleura at acute angles): a ball centred half a radius inside a flat pleura has three
    quarters of its shell in the lung, one centred on the pleura half. A candidate whose centre
    lies on the wall's or mediastinum's side (obtuse angles: a rib or vertebra indenting the
    pleura, the mediastinal contour, a chest-wall lesion; Felson 1973, Webb 2015) has less, down
    to a quarter where two pleural planes meet (the gutters, the keep limit). Known limit: a
    nodule in a right-angled gutter, centred half a radius inside both planes, reads about 0.4
    (the shell reaches 2 mm beyond its edge, into both walls) and keeps about half its score;
    the term ranks, it removes no candidate. shell: float in [0, 1]; returns a float."""
    c = constants()
    lo, hi = c["min_lung_shell_fraction"]["value"], c["lung_side_shell_fraction"]["value"]
    return float(np.clip((float(shell) - lo) / (hi - lo), 0.0, 1.0))


def _lung_shell_fraction(lungs: np.ndarray, kji, radius_mm: float, spacing_kji) -> float:
    """Fraction of the shell radius..radius + max(2 mm, radius / 2) around ``kji`` that is lung
    (1 inside the lung, ~0.5 against a flat pleura, ~0 inside the mediastinum or a bone)."""
    outer = shell_outer_mm(radius_mm)
    box, d = ball_box(lungs.shape, kji, outer, spacing_kji)
    ring = lungs[box][(d > radius_mm) & (d <= outer)]
    return float(ring.mean()) if ring.size else 0.0


def _ball_hu(a: np.ndarray, kji, radius_mm: float, spacing_kji, solid_min: float):
    """(median HU within half the radius, fraction of the sphere >= ``solid_min``)."""
    box, d = ball_box(a.shape, kji, radius_mm, spacing_kji)
    v = a[box].astype(np.float32)
    inner = v[d <= max(radius_mm / 2.0, 0.5 * float(np.min(spacing_kji)))]
    return float(np.median(inner)), float(np.mean(v[d <= radius_mm] >= solid_min))


def _type(centre_hu: float, solid_fraction: float, t: dict, part_frac: float) -> str:
    if centre_hu >= t["calcified_min"]:
        return "calcified"
    if centre_hu >= t["solid_min"]:
        return "solid" if solid_fraction >= part_frac else "part_solid"
    return "ground_glass"
