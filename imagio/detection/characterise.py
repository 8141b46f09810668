"""Characterisation of detected candidates: segmentation, measurements, type, location, risk.

For each of the ``max_characterised`` most probable candidates (``imagio/data/detection.json``,
"characterise"):

1. one-click lesion segmentation at the candidate's centre
   (:func:`imagio.segmentation.lesion.segment_lesion`, kind lung nodule); a centre denser than
   bone that the one-click tool refuses (outside its lung envelope) is segmented as the
   connected voxels above the calcification threshold around it;
2. measurements (:func:`imagio.segmentation.lesion.measure`): volume, 3-D long axis (Brock,
   Mayo), Lung-RADS mean diameter, solid component
   (:func:`imagio.stratification.characterise.solid_component`);
3. type: on a contrast-enhanced CT, an outline holding voxels >= ``type_hu.calcified_min`` and
   at the scan's blood-pool density is ``dense_calcium_or_contrast`` (:func:`dense_on_contrast`:
   no type by density, no category, no risk); else calcified (median HU of the lesion >= ``type_hu.calcified_min``), else solid /
   part-solid / ground-glass from the solid component; on sections thicker than
   ``subsolid_max_slice_mm`` a part-solid typing whose sub-solid voxels all lie in the solid
   core's partial-volume rim (:func:`partial_volume_rim`) is solid, with a warning; a solid nodule < 10 mm within 10 mm of
   the pleura (or a fissure when lobes are given) and flattened (smallest / largest principal
   axis <= ``perifissural.max_flatness``, :func:`flatness`) is perifissural;
4. location: side (RAS x against the midline between the lungs), lobe when the label map has TotalSegmentator lobe
   names, distance from the lesion's surface to the pleura, juxta-pleural (touching the lung's
   border), juxta-vascular (a dense structure inside the lung touching it);
5. stratification (:func:`imagio.stratification.screening.stratify`): Lung-RADS v2022, Brock,
   Mayo, each answered or refused with its reason; emphysema (LAA-950 of the lung mask without
   the airways, `lung_parenchyma`) feeds
   Brock.

Everything in RAS mm; masks on the CT grid [k, j, i]. Every doubt is a warning on the nodule.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import ImagioError, InputError
from ..segmentation.common import anatomical_axes
from ..volume import Volume
from ..stratification import lungrads
from ..stratification.screening import CALCIUM_TYPES, DENSE_TYPE, FAT_TYPE, type_words
from . import Candidate, constants

LOBES = {"lung_upper_lobe_left": "left upper lobe", "lung_lower_lobe_left": "left lower lobe",
         "lung_upper_lobe_right": "right upper lobe", "lung_middle_lobe_right": "right middle lobe",
         "lung_lower_lobe_right": "right lower lobe"}


NO_LOBES = ("not given: no lobe label map (pass --lungs with TotalSegmentator lobe labels, "
            "e.g. lung_upper_lobe_left)")


def _cut_lung_bound_ml(ct: Volume, m: np.ndarray) -> float:
    """Upper estimate (mL) of the lung the image's superior or inferior end cuts off from the lung
    mask ``m`` (bool [k, j, i] on ``ct``'s grid); inf when the lungs meet a face across the other
    axes (a left-right or front-back face: beyond it lie the mediastinum and the other lung, or the
    rest of a lung, which do not taper: new-user trial 51 H1, a right hemithorax crop), meet padding
    (voxels no scan measured, `segmentation.body.padding_voxels`), or do not narrow towards the end.

    Only the apex (a dome) and the base (over the diaphragm's cupola) taper, so only the ends along
    the array axis nearest S are estimated: the lung's section A at its first (last) slice, when that
    slice lies within `body.RIM_STEPS` slices of the image's end (the blended rim a lung mask may
    leave out: a mask three slices short of a face that cuts the lungs is cut there too, trial 51
    H1), and the section ``slope_window_mm`` further in; the
    lung beyond is taken to taper to nothing at that rate (A^2 / (2 dA/dx)), the slices between the
    lung's end and the image's end taken as sections of A, all times ``safety_factor``
    (detection.json ``characterise.emphysema_laa950_percent.cut_bound``)."""
    from ..segmentation.body import RIM_STEPS, padding_voxels
    from ..segmentation.common import anatomical_axes

    cfg = constants()["characterise"]["emphysema_laa950_percent"]["cut_bound"]
    sup = anatomical_axes(ct)["S"][0]
    for a in range(3):
        if a != sup and (np.take(m, 0, axis=a).any() or np.take(m, -1, axis=a).any()):
            return float("inf")
    pad = padding_voxels(ct)
    if pad is not None and (m & ndimage.binary_dilation(pad)).any():
        return float("inf")
    sp = np.asarray(ct.spacing_kji, float)
    prof = m.sum(axis=tuple(b for b in range(3) if b != sup)).astype(float)
    nz = np.flatnonzero(prof)
    if not len(nz):
        return 0.0
    area_mm2 = float(np.prod(np.delete(sp, sup)))
    win = float(cfg["slope_window_mm"])
    n = max(1, int(np.ceil(win / sp[sup])))
    total = 0.0
    for first, step, gap in ((int(nz[0]), 1, int(nz[0])), (int(nz[-1]), -1, len(prof) - 1 - int(nz[-1]))):
        if gap > RIM_STEPS:   # the lung ends inside the image, beyond the rim a mask may leave out: in view
            continue
        inner = first + step * n
        inside = prof[inner] if 0 <= inner < len(prof) else 0.0
        slope = (inside - prof[first]) * area_mm2 / (n * sp[sup])   # mm^2 of section per mm inward
        if slope <= 0:
            return float("inf")
        total += (prof[first] * area_mm2) ** 2 / (2.0 * slope) / 1000.0 + prof[first] * area_mm2 * gap * sp[sup] / 1000.0
    return total * float(cfg["safety_factor"])


def lung_parenchyma(ct: Volume, lungs: np.ndarray, airways: dict | None = None) -> tuple[np.ndarray, dict]:
    """(parenchyma, info): the lung mask ``lungs`` (bool [k, j, i] on ``ct``'s grid) without the
    trachea and bronchi, as LAA-950 is measured (detection.json
    ``characterise.emphysema_laa950_percent.airways``: Fleischner 2015, COPDGene). The airways are
    IMAGIO's region-grown tree (:func:`imagio.segmentation.airways.airway_masks`, in the whole
    ``ct``) with its wall's partial volume (:func:`imagio.segmentation.lungs.airway_margin`), as
    lung segmentation and the detector's search region remove them. info: {"airways_ml": mL of the
    mask taken out, "airways_note": None, or why the airways could not be separated (no trachea
    in view, no body found): the mask is then returned as given; "airways_warning": the tree's
    leak warning, if any (a leak into the lung takes parenchyma out with the airways)}.
    airways: the tree already found for this scan, reused instead of growing it again (issue 20:
    +9-16 s a scan): {"tree": bool [k, j, i] or None, "grid": the Volume it lies on (any grid of
    the same world: resampled, nearest), "note", "leak_warning"} (`blobs.airway_tree`,
    `pipeline.given_airways`)."""
    from ..segmentation import airways as aw
    from ..segmentation.body import body_mask
    from ..segmentation.lungs import airway_margin

    m = np.asarray(lungs, bool)
    if airways is not None and airways.get("tree") is None:
        return m, {"airways_ml": 0.0, "airways_note": airways["note"], "airways_warning": None}
    if airways is not None:
        g = airways["grid"]
        tree = airways["tree"] if g.same_grid(ct) else g.with_array(
            airways["tree"].astype(np.uint8), labels={}).resample_like(ct, order=0).array > 0
        info = {"leak_warning": airways.get("leak_warning")}
    else:
        try:
            trachea, bronchi, info = aw.airway_masks(ct, body_mask(ct))
        except InputError as e:
            return m, {"airways_ml": 0.0, "airways_note": str(e), "airways_warning": None}
        tree = trachea | bronchi
    cut = m & airway_margin(ct, tree)
    return m & ~cut, {"airways_ml": round(float(np.count_nonzero(cut)) * ct.voxel_volume_ml, 1),
                      "airways_note": None, "airways_warning": info.get("leak_warning")}


def emphysema_status(ct: Volume, lungs: np.ndarray, airways: dict | None = None) -> dict:
    """{"laa950_percent", "emphysema": bool or None, "threshold_percent", "source", "not_judged",
    "cut_lung_ml", "airways_ml", "airways_note"} of the lung mask (bool [k, j, i] on the CT grid),
    measured on its parenchyma: the trachea and bronchi taken out (`lung_parenchyma`; new-user
    trial 51 M4: their lumen, air, read as emphysema). Emphysema is yes at or
    above the LAA-950 threshold and no below it; when the lungs reach a face of the image (or
    padding no scan measured) it is no only if it would stay below the threshold even were all
    the lung cut off emphysematous (`_cut_lung_bound_ml`, an upper estimate of it in mL:
    ``cut_lung_ml``), else None (unknown: Brock a range over it) with ``not_judged`` saying why
    (detection.json ``characterise.emphysema_laa950_percent.partial_lungs``; review 41 M4: an apex
    tip on the first slice no longer makes it unknown, a slab still does). When the airways cannot
    be separated (``airways_note``) a yes stands only if it holds with the most airway lumen a lung
    mask can hold (``airways.lumen_max_ml``) taken out, else None, said; when more than that was
    taken out as airways (a leaked tree), a no stands only if it holds with it left in.
    airways: the scan's airway tree when already found (`lung_parenchyma`)."""
    from ..segmentation.emphysema import emphysema

    c = constants()["characterise"]["emphysema_laa950_percent"]
    m, air = lung_parenchyma(ct, lungs, airways)
    _, stats = emphysema(ct, {"lungs": m})
    pct = stats["total"]["laa_percent"]
    emph = None if pct is None else bool(pct >= c["value"])
    why, cut_ml = None, 0.0
    if emph and air["airways_note"]:
        lumen = float(c["airways"]["lumen_max_ml"])
        low_ml, ml = stats["total"]["laa_ml"], stats["total"]["lung_ml"]
        least = 100.0 * max(low_ml - lumen, 0.0) / (ml - lumen) if ml > lumen else 0.0
        if least < c["value"]:
            emph, why = None, (f"LAA-950 {pct} % measured on a lung mask that may hold the trachea and bronchi (their "
                               f"lumen is air and reads as emphysema), which could not be separated ({air['airways_note']}); "
                               f"without up to {lumen:g} mL of airway lumen it may be {least:.1f} %, below the "
                               f"{c['value']:g} % threshold, so emphysema is not judged (Brock is a range over it); "
                               "give --emphysema / --no-emphysema from the CT")
    if emph is False and not air["airways_note"] and air["airways_ml"] > float(c["airways"]["lumen_max_ml"]):
        # more "airway" than an airway tree holds: the tree may have leaked into low-density lung and
        # taken emphysema out with it (review 43 M3); a "no" must then hold with it left in
        _, whole = emphysema(ct, {"lungs": np.asarray(lungs, bool)})
        wpct = whole["total"]["laa_percent"]
        if wpct is not None and wpct >= c["value"]:
            emph, why = None, (f"LAA-950 {pct} % measured without {air['airways_ml']:g} mL taken as airways, more than "
                               f"an airway tree's lumen ({float(c['airways']['lumen_max_ml']):g} mL): the tree may "
                               f"have leaked into low-density lung; with it left in LAA-950 is {wpct} %, so "
                               "emphysema is not judged (Brock is a range over it); give --emphysema / "
                               "--no-emphysema from the CT")
    if emph is False and m.ndim == 3:
        cut_ml = _cut_lung_bound_ml(ct, m)
        ml = float(np.count_nonzero(m)) * ct.voxel_volume_ml
        worst = (pct * ml + 100.0 * cut_ml) / (ml + cut_ml) if np.isfinite(cut_ml) else 100.0
        if worst >= c["value"]:
            emph, why = None, (f"LAA-950 {pct} % measured on {ml:.0f} mL of lung only: the scan cuts the lungs (they "
                               "reach the edge of the image"
                               + (f", up to about {cut_ml:.0f} mL of them beyond it" if cut_ml < ml else
                                  ", perhaps more lung beyond it than in view")
                               + ") and emphysema is regional, so its absence is not judged (Brock is a range over "
                               "it); give --emphysema / --no-emphysema from the whole-chest CT")
    return {"laa950_percent": pct, "emphysema": emph, "threshold_percent": c["value"], "source": c["source"],
            "not_judged": why, "cut_lung_ml": round(cut_ml, 1) if np.isfinite(cut_ml) else None, **air}


def _calcified_mask(ct: Volume, kji, radius_mm: float, hu_min: float) -> np.ndarray:
    """Connected voxels >= ``hu_min`` at ``kji`` within ``radius_mm`` (mask on the CT grid)."""
    r = np.ceil(radius_mm / ct.spacing_kji).astype(int)
    lo = np.maximum(np.asarray(kji) - r, 0)
    hi = np.minimum(np.asarray(kji) + r + 1, ct.shape)
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    lab, _ = ndimage.label(ct.array[sl] >= hu_min)
    seed = tuple(np.asarray(kji) - lo)
    out = np.zeros(ct.shape, bool)
    if lab[seed]:
        out[sl] = lab == lab[seed]
    return out


EDGE_CUT = "partly outside the scanned volume"  # the candidate's sphere or outline meets the image edge


def segment_candidate(ct: Volume, cand: Candidate) -> tuple[np.ndarray, object, list, str | None, bool]:
    """(mask, LesionMeasurements, warnings, size_uncertain, clipped) of one candidate. Raises
    ImagioError when no lesion can be segmented at its centre.

    The one-click outline (grown up to ``mass_diameter_max_mm`` from the centre) is kept when it
    stays within ``segment_radius_factor`` x the detected diameter, or when it reaches further
    but the one-click tool flags no leak (``hit_size_limit``, ``irregular`` of its
    :class:`~imagio.segmentation.measurements.LesionMeasurements`) and it fills at least
    ``characterise.compact_fill_min`` of the sphere on its long axis (a compact mass larger than
    the detector's blob). Otherwise it is cut to the blob's sphere and ``size_uncertain`` says
    why: its size is a lower bound (``clipped`` True: the size is then the detector's, not the
    outline's). ``size_uncertain`` also says when the lesion is cut by the
    image edge (its outline or the candidate's sphere meets it). None when the size is measured.
    """
    from ..segmentation.lesion import BONE_CLICK_HU, PART_OF_MASS, measure, segment_lesion

    c = constants()
    kji = tuple(np.clip(np.rint(ct.world_to_kji(cand.center_ras[None])[0]).astype(int), 0,
                        np.array(ct.shape) - 1))
    hu = float(ct.array[kji])
    f = c["characterise"]["segment_radius_factor"]["value"]
    mass_mm = float(c["mass_diameter_max_mm"]["value"])
    limit = float(np.clip(f * cand.diameter_mm, f * c["nodule_diameter_mm"]["value"][0], mass_mm))
    edge = [w for w in cand.warnings if EDGE_CUT in w]
    try:
        mask, meas = segment_lesion(ct, cand.center_ras, kind="lung_nodule", max_radius_mm=mass_mm)
    except InputError:
        if hu < BONE_CLICK_HU:
            raise
        # a calcified centre the one-click tool refuses (outside its lung envelope)
        mask = _calcified_mask(ct, kji, max(cand.diameter_mm, 6.0), c["type_hu"]["calcified_min"])
        meas = measure(mask, ct, ct.array, kind="lung_nodule")
        return mask, meas, ["calcified: segmented as the voxels above "
                            f"{c['type_hu']['calcified_min']:g} HU (no one-click growth)"] + meas.warnings, (
            f"the candidate is {edge[0]}" if edge else None), False
    kji_m = np.argwhere(mask)
    reach = float(np.max(np.linalg.norm(ct.kji_to_world(kji_m) - cand.center_ras, axis=1)))
    sphere_ml = np.pi / 6.0 * meas.long_axis_mm ** 3 / 1000.0
    fill = meas.volume_ml / sphere_ml if sphere_ml > 0 else 1.0
    # the one-click tool's flags, never its warnings' wording: a leak is an outline that reached
    # the size limit or fills too little of its long-axis sphere
    leak = [why for flag, why in (
        (meas.hit_size_limit, f"it reached the one-click size limit ({mass_mm:g} mm from the centre)"),
        (meas.irregular, f"it is irregular, filling {100 * fill:.0f} % of its long-axis sphere"))
        if flag]
    warn = list(meas.warnings)
    if meas.touches_image_edge:
        edge.append("the outline touches the edge of the image" + (
            " without a border of its own: its size may be too large, not only too small"
            if meas.edge_size_unreliable else ""))
    fill_min = c["characterise"]["compact_fill_min"]["value"]
    uncertain, clipped = None, False
    if reach >= limit - float(max(ct.spacing)):
        if not leak and fill >= fill_min:
            warn.append(f"the outline reaches {reach:.0f} mm from the detected centre (blob "
                        f"{cand.diameter_mm:.0f} mm) and is compact (fills {100 * fill:.0f} % of "
                        "the sphere on its long axis): kept as one lesion; check its outline")
        else:
            # grown beyond the detected blob (a vessel, a wall): keep its part inside the blob's
            # sphere (radius one scale step above the detector's); the size is then a lower bound
            r = 0.5 * cand.diameter_mm * 2.0 ** (1.0 / c["scales_per_octave"]["value"])
            inside = np.linalg.norm(ct.kji_to_world(kji_m) - cand.center_ras, axis=1) <= r
            mask = np.zeros(ct.shape, bool)
            mask[tuple(kji_m[inside].T)] = True
            if not mask.any():
                raise ImagioError("the segmentation left the detected blob")
            meas, clipped = measure(mask, ct, ct.array, kind="lung_nodule"), True
            why = (f"it reached {reach:.0f} mm from the centre and fills {100 * fill:.0f} % of "
                   "its long-axis sphere" if not leak else "; ".join(leak))
            uncertain = (f"the outline was clipped to the detected blob's sphere ({r:.0f} mm radius; "
                         f"{why}): its size is a lower bound")
            warn = [f"the segmentation grew beyond the detected blob ({why}; into vessels, a wall or "
                    "a larger lesion): measured inside the blob's sphere, the size is a lower bound"] + meas.warnings
    if uncertain is None and meas.part_of_mass:
        # trial 56 M2: an outline much smaller than the dense tissue the lung encloses around it (part of
        # a mass, or one joined to a vessel or the heart) measures a lower bound, as a clipped one does
        uncertain = f"{PART_OF_MASS} (the dense tissue the lung encloses around it is much larger): its size is a lower bound"
    if edge:
        cut = f"cut by the scan's edge ({'; '.join(edge)}): size and type uncertain"
        uncertain = cut if uncertain is None else f"{uncertain}; {cut}"
    cen = np.asarray(meas.centroid_ras, float)
    off = float(np.linalg.norm(cen - cand.center_ras))
    if off > max(meas.long_axis_mm / 2.0, cand.diameter_mm / 2.0):
        warn.append(f"the segmentation's centre is {off:.0f} mm from the candidate: it may have "
                    "grown into a neighbouring structure")
    return mask, meas, warn, uncertain, clipped


def not_assessable(ct: Volume, cand: Candidate, mask: np.ndarray, meas, clipped: bool) -> tuple[str, str] | None:
    """(kind, reason): why the outline ``mask`` (bool [k, j, i] on ``ct``'s grid, measured as ``meas``) of the
    candidate ``cand`` measures no nodule, or None. A Lung-RADS category, even a floor, and
    Brock / Mayo need a nodule's measured size (`stratification.screening.stratify` refuses all
    three with this reason; new-user trials 53 and 54 M4: a heart border and a chest-wall
    concavity of fat density graded 4B and 4A):

    * the outline's tissue has fat's mean density (`segmentation.lesion.fat_density_hu`, a solid
      kind only): a solid nodule is denser; fat outside the lung (chest wall, mediastinum,
      pericardial fat pad) is no lung nodule, and a nodule holding fat (a hamartoma) is benign,
      Lung-RADS v2022 category 1; which of the two is read on the images;
    * the candidate is a concavity of the lung outline (the juxta-pleural channel) whose outline
      grew beyond it and was clipped to its sphere (``clipped``): the size is then the
      concavity's equivalent diameter (which the chest wall, the mediastinum or the heart fill as
      well as a nodule), not a segmentation. The mass channel's sphere is a solid ball found
      wrapped by the lung (a measured extent of solid tissue): its floor stands.

    * the one-click tool withheld the outline's size (``LesionMeasurements.size_withheld``: it
      leaked, or a check click's outline leaked, or other clicks give other volumes): its
      diameters are not the nodule's, and they may be too large as well as too small, so not even
      a floor is read from them (new-user trial 68 M5). An outline clipped to the blob's sphere
      is measured afresh (its size a lower bound, ``size_uncertain``): its floor stands. So does
      that of an outline the tool withheld only for its own leak at the image's edge or its shape
      (``leaked`` without ``click_dependent``; new-user trial 88 M2): `segment_candidate` has
      already clipped an irregular one and says the edge's cut in ``size_uncertain``.

    kind: "fat_density", "outline_concavity" or "size_withheld"
    (`stratification.screening.not_assessable_words`)."""
    from ..limits import FAT_MAX_HU, FAT_MIN_HU
    from ..segmentation.lesion import fat_density_hu

    fat = fat_density_hu(mask, ct, meas)
    if fat is not None:
        return "fat_density", (f"the outline's tissue has a mean density of {fat:.0f} HU, that of fat "
                f"({FAT_MIN_HU:g}..{FAT_MAX_HU:g} HU, adipose tissue), not a solid nodule's: it has probably grown into the fat of the chest wall or "
                f"mediastinum (no lung nodule); {lungrads.table()['benign_features']['fat_containing']}: read it on "
                "the images")
    if clipped and cand.features.get("channel") == "concavity":
        return "outline_concavity", ("the outline grew beyond the detected concavity of the lung outline and was clipped to it: its size "
                "is the concavity's equivalent diameter, not a segmentation (the chest wall, mediastinum or heart "
                "border fill such a concavity as well as a nodule does): read it on the images")
    if getattr(meas, "click_dependent", False) and getattr(meas, "size_withheld", None):
        return "size_withheld", (f"the one-click tool gives no size for this outline ({meas.size_withheld}): "
                                 "its diameters may be too large or too small, so no category or floor is read "
                                 "from them: read it on the images")
    return None


def _shell(mask: np.ndarray, sl, spacing_kji, mm: float) -> np.ndarray:
    """Voxels within ``mm`` outside ``mask`` (in the box ``sl``)."""
    import edt

    d = edt.edt(np.ascontiguousarray(~mask[sl]), anisotropy=tuple(map(float, spacing_kji)),
                black_border=False)
    return (d > 0) & (d <= mm)


def pleura_distance_map(ct: Volume, lungs: np.ndarray) -> np.ndarray:
    """Distance (mm) of each voxel inside the lungs, their holes (nodules, vessels) filled, to
    the nearest voxel outside them: the pleura. Outside the image the lung is taken to go on
    (a slab that cuts the lungs has no pleura at its cut faces)."""
    import edt

    from ..segmentation.common import fill_holes_3d

    return edt.edt(fill_holes_3d(lungs), anisotropy=tuple(map(float, ct.spacing_kji)),
                   black_border=False)


def location(ct: Volume, mask: np.ndarray, lungs: np.ndarray, lobes: Volume | None,
             midline: float, pleura_mm: np.ndarray | None = None) -> dict:
    """Side, lobe, distance to pleura and juxta flags of a lesion mask (see module docstring).
    midline: RAS x (mm) of the midline; a lesion whose centroid has a larger RAS x is on the
    patient's right. pleura_mm: :func:`pleura_distance_map` (computed when None)."""
    import edt

    from ..stratification.characterise import _crop

    c = constants()["characterise"]
    sk = ct.spacing_kji
    sl = _crop(ct, mask, 15.0)
    m = mask[sl]
    if pleura_mm is None:
        pleura_mm = pleura_distance_map(ct, lungs)
    half = 0.5 * float(min(sk))
    # from the lesion's surface: its voxel nearest the pleura, less half a voxel
    d_pleura = max(float(pleura_mm[mask].min()) - half, 0.0)
    cen = ct.kji_to_world(np.argwhere(mask).mean(0)[None])[0]
    # RAS: +x is the patient's right
    out = {"side": "right" if cen[0] > midline else "left", "lobe": None,
           "lobe_note": NO_LOBES if lobes is None else None,
           "distance_to_pleura_mm": round(d_pleura, 2),
           # a lung nodule lies in the lung or on its pleura: it touches the lung mask (26-neighbours)
           "touches_lung": bool((ndimage.binary_dilation(m, np.ones((3, 3, 3), bool)) & lungs[sl]).any())}
    fissure_mm = None
    if lobes is not None:
        lab = lobes.array[sl] if lobes.same_grid(ct) else lobes.resample_like(ct, order=0).array[sl]
        names = {v: n for v, n in lobes.labels.items() if n in LOBES}
        ring = _shell(mask, sl, sk, 3.0)
        vals, cnt = np.unique(lab[ring | m], return_counts=True)
        lv = [(k, v) for v, k in zip(vals, cnt) if int(v) in names]
        if not lv:
            out["lobe_note"] = "not found: the nodule touches no lobe label"
        else:
            out["lobe"] = LOBES[names[int(max(lv)[1])]]
            own = lab == max(lv)[1]
            d_lobe = edt.edt(np.ascontiguousarray(own | m), anisotropy=tuple(map(float, sk)),
                             black_border=False)
            fissure_mm = max(float(d_lobe[m].min()) - half, 0.0)
            if not np.isfinite(fissure_mm):  # the lobe fills the box: no fissure within 15 mm
                fissure_mm = d_pleura
            out["distance_to_fissure_or_pleura_mm"] = round(fissure_mm, 2)
    # juxta-pleural: the lesion touches the lung border; juxta-vascular: a dense structure inside
    # the lung (vessel) touches it
    touch = c["attached_within_mm"]["value"]
    out["juxta_pleural"] = bool(d_pleura <= touch)
    ring = _shell(mask, sl, sk, touch + float(max(sk)))
    dense = ring & lungs[sl] & (ct.array[sl] > constants()["type_hu"]["solid_min"])
    vox = float(np.prod(sk))
    lab, n = ndimage.label(dense, structure=np.ones((3, 3, 3)))
    big = 0.0
    if n:
        big = float(np.max(ndimage.sum(dense, lab, np.arange(1, n + 1)))) * vox
    out["juxta_vascular"] = bool(big >= c["vessel_contact_min_mm3"]["value"])
    out["_fissure_or_pleura_mm"] = d_pleura if fissure_mm is None else min(d_pleura, fissure_mm)
    return out


def flatness(ct: Volume, mask: np.ndarray) -> float:
    """Smallest / largest principal axis of the lesion (square roots of the eigenvalues of its
    voxel positions' covariance in RAS mm; an ellipsoid gives its axis ratio, a ball 1)."""
    pts = ct.kji_to_world(np.argwhere(mask))
    if len(pts) < 4:
        return 1.0
    ev = np.linalg.eigvalsh(np.cov(pts.T) + np.eye(3) * float(np.mean(ct.spacing ** 2)) / 12.0)
    return float(np.sqrt(max(ev[0], 0.0) / max(ev[-1], 1e-12)))


def dense_part_mm(ct: Volume, mask: np.ndarray, min_hu: float) -> float:
    """Equivalent-sphere diameter (mm) of the largest 26-connected part of the outline ``mask``
    (bool [k, j, i] on ``ct``'s grid) at or above ``min_hu`` HU (calcium or bone: ``type_hu``
    ``calcified_min``), 0.0 when none (detection.json characterise.perifissural dense_part_source)."""
    import cc3d

    dense = mask & (ct.array >= min_hu)
    if not dense.any():
        return 0.0
    n = int(np.bincount(cc3d.connected_components(dense, connectivity=26).ravel())[1:].max())
    return float((6.0 * n * ct.voxel_volume_ml * 1000.0 / np.pi) ** (1.0 / 3.0))


def nodule_type(ct: Volume, mask: np.ndarray, meas, loc: dict) -> tuple[str, float, list, dict | None]:
    """(type, solid component mm, warnings, alternative): see the module docstring for the rules.
    ``alternative`` is {"type", "solid_component_mm"}, the other plausible type when a warning says
    the typing is uncertain on thick sections (part-solid or ground glass "may be solid"; solid
    whose sub-solid rim was read as partial volume may be part-solid, with its measured solid
    component), else None: Lung-RADS v2022 grades by type, so the reader must know the category
    under both (`stratification.screening.lung_rads`, "if_other_type"; trial 65 M3)."""
    from ..stratification.characterise import solid_component

    c = constants()
    hu = ct.array[mask]
    if float(np.median(hu)) >= c["type_hu"]["calcified_min"]:
        # dense throughout: its solid component is the whole nodule, measured as Lung-RADS measures the
        # nodule (mean diameter), never more than it (issue 17 trial L3: the 3-D long axis, 16.7 mm beside
        # a 10.1 mm mean diameter; `stratification.characterise.solid_component` caps it the same way)
        return "calcified", float(meas.mean_diameter_mm), [], None
    kind, solid_mm, _ = solid_component(mask, ct, c["type_hu"]["solid_min"])
    kind = {"nonsolid": "ground_glass"}.get(kind, kind)
    from .blobs import subsolid_channel_applies

    pv_warn, alt = [], None
    # on sections thicker than subsolid_max_slice_mm a sub-solid component cannot be judged
    # (Bankier 2017) and the partial-volume rim of a solid edge is thickest: not ground glass
    if kind == "part_solid" and not subsolid_channel_applies(ct):
        pv = partial_volume_rim(ct, mask, c["type_hu"]["solid_min"])
        if pv.any() and solid_component(mask & ~pv, ct, c["type_hu"]["solid_min"])[0] == "solid":
            alt = {"type": "part_solid", "solid_component_mm": round(float(solid_mm), 2)}
            kind, solid_mm = "solid", float(meas.mean_diameter_mm)
            thick = float(ct.spacing_kji.max())
            pv_warn = [f"typed solid: its sub-solid voxels ({100 * pv.sum() / mask.sum():.0f} % of "
                       "the outline) lie within one voxel of its solid core, the partial-volume rim "
                       f"of a solid edge on {thick:.1f} mm voxels, not a ground-glass component; a "
                       "ground-glass rim thinner than a voxel cannot be seen: check on thin sections"]
    pf = c["characterise"]["perifissural"]
    flat = flatness(ct, mask)
    if (kind == "solid" and meas.mean_diameter_mm < pf["max_mean_diameter_mm"]
            and loc["_fissure_or_pleura_mm"] <= pf["max_distance_mm"] and flat <= pf["max_flatness"]):
        dense_mm = dense_part_mm(ct, mask, c["type_hu"]["calcified_min"])
        if dense_mm >= lungrads.table()["smallest_measured"]["mm"]:   # trial 96 F7: lung1's paravertebral #2
            return kind, solid_mm, pv_warn + [
                f"holds a part of calcium or bone density ({dense_mm:.1f} mm across, above "
                f"{c['type_hu']['calcified_min']:g} HU): a partly calcified nodule, or bone or a calcified structure "
                "beside the lung (a vertebra, a rib, a calcified node); not typed perifissural (a juxtapleural or "
                "perifissural nodule of Lung-RADS 2 is solid and non-calcified): read it on the images"], alt
        return "perifissural", solid_mm, pv_warn + [
            "perifissural by size, position and shape (smallest/largest axis "
            f"{flat:.2f}); Lung-RADS 2 needs smooth margins and a lentiform or triangular shape: confirm"], alt
    if kind in ("part_solid", "ground_glass") and not subsolid_channel_applies(ct):
        thick = float(ct.spacing_kji[anatomical_axes(ct)["S"][0]])
        return kind, solid_mm, [
            f"typed {type_words(kind)} on {thick:.1f} mm sections: partial volume makes a solid "
            "nodule's edges look sub-solid (sub-solid nodules are assessed on <= "
            f"{c['subsolid_max_slice_mm']['value']:g} mm sections, Bankier 2017); it may be solid"], \
            {"type": "solid", "solid_component_mm": round(float(meas.mean_diameter_mm), 2)}
    return kind, solid_mm, pv_warn, alt


def dense_on_contrast(ct: Volume, mask: np.ndarray, typed: str,
                      band: tuple[float, float] | None) -> dict | None:
    """On a contrast-enhanced CT: {"voxels", "ml", "peak_hu", "hu_min"} of the outline ``mask``
    (bool [k, j, i] on ``ct``'s grid) at the density of calcium or iodinated contrast, or None when
    it holds none. ``typed``: the type its density gave (`nodule_type`); ``band``: the scan's
    contrast blood pool (low, high) HU (`segmentation.blood_pool.contrast_pool_band`; None: not
    known). Calcium and iodine cannot be told apart by density (CT-angiographic enhancement,
    250-600 HU: Bae KT, Radiology 2010;256:32-61), so an outline holding such voxels is a calcified
    nodule, a nodule beside or around a contrast-filled vessel, or a vessel section itself, and no
    type by density (solid, part-solid, ground glass, calcified) is known: new-user trial 91 M2,
    the chest CTA's top candidate, a 584 HU lung-vessel dot in an 8-voxel outline, was typed
    part-solid with Lung-RADS 2.

    The density: ``type_hu.calcified_min`` (200 HU, calcium), and not below the low end of this
    scan's own blood pool (the density its iodinated blood reads at): a solid nodule enhances by
    tens of HU (Swensen SJ et al., Radiology 2000;214:73-80: malignant nodules >= 20 HU, 15 HU the
    cut-off), so with the scan's noise its voxels reach a little above 200 HU but not the pool
    (LIDC-IDRI-0001's 25 mm nodule, malignancy 4-5: 28 of 4724 voxels at 200-253 HU, pool from 345
    HU; the chest CTA's dot 584 HU, pool from 375 HU). A nodule typed calcified (median >= 200 HU)
    is dense whatever the pool. Only called on a contrast CT (`pipeline.contrast_warning`); a
    non-contrast CT is typed as before.

    Where the dense voxels lie (new-user trial 93 F1: a 4 mm contrast-filled vessel crossing the rim
    of LIDC-IDRI-0001's 24.6 mm solid nodule took its Lung-RADS 4B, Brock and Mayo away): "core" counts
    the dense voxels in the outline's central part, at least half as deep inside it (distance to
    its surface, ``edt`` on the CT grid's spacing) as its deepest voxel. Calcification that reads
    benign is central, diffuse, laminated or popcorn; eccentric calcification is seen in malignancy
    (Lung-RADS v2022; MacMahon H et al., Fleischner 2017 guidelines, Radiology 2017;284:228-243), and
    a vessel crossing a nodule's edge is not the nodule: with none in the core the nodule keeps
    its type and category (`characterise_candidates`), warned; a vessel section or a calcified
    nodule is dense at its centre.

    Returns {"voxels", "ml", "peak_hu", "hu_min", "core_voxels"} or None."""
    import edt

    calc = float(constants()["type_hu"]["calcified_min"])
    hu_min = max(calc, float(band[0])) if band is not None else calc
    hu = ct.array[mask]
    dense = hu >= (calc if typed == "calcified" else hu_min)
    n = int(np.count_nonzero(dense))
    if not n:
        return None
    lo, hi = ct.bounding_box(mask, margin=1)
    box = mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    depth = edt.edt(box, anisotropy=tuple(float(x) for x in ct.spacing_kji), black_border=True)[box]
    core = int(np.count_nonzero(dense & (depth >= 0.5 * float(depth.max()))))
    return {"voxels": n, "ml": round(n * float(ct.voxel_volume_ml), 4), "peak_hu": round(float(hu[dense].max())),
            "hu_min": round(calc if typed == "calcified" else hu_min), "core_voxels": core}


def dense_words(dense: dict, typed: str) -> str:
    """The nodule's warning for its `dense_on_contrast` measure ``dense``; ``typed``: the type its
    density alone would have given."""
    if not dense.get("core_voxels", 1) and typed != "calcified":   # only at its edge: typed, warned
        return (f"{dense['voxels']} voxel(s) at the outline's edge ({dense['ml']:g} mL, up to {dense['peak_hu']} HU) are "
                f"at or above {dense['hu_min']:g} HU on a contrast-enhanced CT, none in its central part: a "
                "contrast-filled vessel crossing or touching the nodule, or eccentric calcification (not a benign "
                f"pattern); typed {type_words(typed)} by the rest of it, its category kept: read it on the images")
    return (f"{dense['voxels']} voxel(s) of the outline ({dense['ml']:g} mL, up to {dense['peak_hu']} HU) are at or "
            f"above {dense['hu_min']:g} HU on a contrast-enhanced CT (calcium, or the scan's contrast blood pool): "
            "calcium or iodinated contrast (a calcified nodule, or a contrast-filled vessel in or beside the "
            f"candidate), not told apart by density; not typed (its density alone reads {type_words(typed)}), "
            "no Lung-RADS category, no Brock or Mayo (calcium_or_contrast): read it on the images")


def partial_volume_rim(ct: Volume, mask: np.ndarray, solid_hu: float) -> np.ndarray:
    """The sub-solid voxels of ``mask`` (<= ``solid_hu``) that touch (26-neighbours on the CT
    grid: one voxel along each grid axis) its largest solid part: the partial-volume layer of a
    solid edge. A voxel that straddles the nodule's surface averages the nodule (~0 HU) and the
    parenchyma (~ -850 HU) in proportion to its share of each and the scanner's point-spread
    function blurs the edge further (Goo JM et al., Radiology 2005;235:850-856: partial volume
    and reconstruction set the measured edge of a nodule), so every value between the two occurs
    within one voxel of a solid core whatever the nodule's true composition; on thick sections a
    solid nodule therefore looks part-solid (Bankier AA et al., Radiology 2017;285:584-600:
    sub-solid components are judged on <= 1.5 mm sections). Boolean mask on the CT grid [k, j, i]."""
    import cc3d

    from ..stratification.characterise import _crop

    sl = _crop(ct, mask, 2.0 * float(ct.spacing.max()))
    m = mask[sl]
    solid = m & (ct.array[sl] > solid_hu)
    out = np.zeros(ct.shape, bool)
    if not solid.any():
        return out
    core = cc3d.largest_k(solid, k=1, connectivity=26) > 0
    out[sl] = m & ~solid & ndimage.binary_dilation(core, np.ones((3, 3, 3), bool))
    return out


def _drop_duplicates(nodules: list[dict], masks: list[np.ndarray]) -> tuple[list[dict], list[np.ndarray]]:
    """The characterised candidates less those whose outline is mostly another's: two detector
    peaks in one nodule, segmented from each into the same outline (trial 10: LIDC-IDRI-0001's
    27 mm nodule listed as #1 and #5, 5.84 mL each). An outline of which at least half lies in
    an earlier candidate's outline (candidates in the detector's order, most probable first) is
    that candidate's: dropped, and its id listed in the kept one's ``also_found_as``. Outlines
    that only touch or overlap a little stay, warned by `_same_lesion`."""
    from ..segmentation.common import bbox_slices

    seg = [i for i, d in enumerate(nodules) if d.get("segmented") and masks[i].any()]
    if len(seg) < 2:
        return nodules, masks
    # each outline on its bounding box: (slices, the mask there, its voxel count)
    box = {i: (sl, masks[i][sl], int(masks[i][sl].sum())) for i in seg
           for sl in [bbox_slices(masks[i])]}
    kept, drop = [], set()
    for i in seg:
        sl, m, n = box[i]
        for j in kept:   # the earliest kept outline holding at least half of this one
            inter = tuple(slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(sl, box[j][0]))
            if any(x.start >= x.stop for x in inter):
                continue
            mine = m[tuple(slice(x.start - a.start, x.stop - a.start) for x, a in zip(inter, sl))]
            theirs = box[j][1][tuple(slice(x.start - b.start, x.stop - b.start) for x, b in zip(inter, box[j][0]))]
            if 2 * int(np.count_nonzero(mine & theirs)) >= n:
                nodules[j].setdefault("also_found_as", []).append(nodules[i]["id"])
                drop.add(i)
                break
        else:
            kept.append(i)
    return ([d for i, d in enumerate(nodules) if i not in drop],
            [m for i, m in enumerate(masks) if i not in drop])


def _same_lesion(ct: Volume, nodules: list[dict], masks: list[np.ndarray]) -> None:
    """Warn on every characterised candidate whose outline lies within ``same_lesion_gap_mm`` of
    another's (exact distance between the outlines' voxel centres): they may be parts of one
    lesion, each outline a part of it, each size, type and risk that of a part (trial 7: a 5 cm
    perihilar mass on Lung-PET-CT-Dx A0001 came out as four candidates 2-12 mm apart, the first
    'part-solid 22 mm', only another one warned that its outline holds part of a mass). Groups are
    the connected pairs; the doubts about a mass said on one part are repeated on the others."""
    import edt

    from ..segmentation.common import bbox_slices

    gap = float(constants()["characterise"]["same_lesion_gap_mm"]["value"])
    seg = [i for i, d in enumerate(nodules) if d.get("segmented") and masks[i].any()]
    if len(seg) < 2:
        return
    sk = tuple(float(v) for v in ct.spacing_kji)
    parent = {i: i for i in seg}

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for x, a_ in enumerate(seg):
        sl = bbox_slices(masks[a_], gap + max(sk), sk)   # the outline's box grown by the gap
        dist = edt.edt(~masks[a_][sl], anisotropy=sk, black_border=False)
        for b_ in seg[x + 1:]:
            mb = masks[b_][sl]
            if mb.any() and float(dist[mb].min()) <= gap:
                parent[root(b_)] = root(a_)
    groups = {}
    for i in seg:
        groups.setdefault(root(i), []).append(i)
    for members in groups.values():
        if len(members) < 2:
            continue
        ids = [nodules[i]["id"] for i in members]
        mass = [w for i in members for w in nodules[i]["warnings"] if "part of a mass" in w]
        for i in members:
            others = ", ".join(f"#{k}" for k in ids if k != nodules[i]["id"])
            nodules[i]["warnings"].append(
                f"this outline lies within {gap:g} mm of those of candidates {others}: they may be parts of one "
                "lesion, larger than each outline, whose size, type and risk are those of a part: read them "
                "together on the images")
            nodules[i]["warnings"] += [w for w in mass if w not in nodules[i]["warnings"]]
            nodules[i]["same_lesion_as"] = [k for k in ids if k != nodules[i]["id"]]


def characterise_candidates(ct: Volume, cands: list[Candidate], lungs: np.ndarray,
                            lobes: Volume | None = None, patient: dict | None = None,
                            progress=None, airways: dict | None = None,
                            slots: int | None = None,
                            contrast_ct: bool = False, contrast_band: tuple[float, float] | None = None
                            ) -> tuple[list[dict], list[np.ndarray], dict]:
    """Characterise ``cands`` (sorted by probability; module docstring): each of them, or with
    ``slots`` the most probable until ``slots`` of them are characterised, where a low-probability
    candidate (below `report.report_threshold`) whose outline measures below the smallest
    measurable nodule (`stratification.screening.not_measurable`: 3 mm or two in-plane voxels,
    ``smallest_measured`` of lungrads_v2022.json) takes no slot (issue 17 trial L3: on the chest CTA
    8 of the 20 slots went to outlines of 1-2 voxels, no category, no risk); such ones fill the slots
    left at the end, the others are set aside (named in a scan warning), and at most
    ``characterise.slots.attempts_factor`` x ``slots`` candidates are segmented (detection.json).

    ct: chest CT (HU); cands: detector output (sorted by probability); lungs: boolean lung mask
    on the CT grid [k, j, i]; lobes: optional label map with TotalSegmentator lobe names (any
    grid); patient: optional {"age", "sex", "smoker", "family_history", "extrathoracic_cancer",
    "emphysema"} (a yes/no fact left out is unknown: the risk is a range over it; "emphysema"
    given replaces the lung segmentation's LAA-950 reading); airways: the scan's airway tree when
    already found (`lung_parenchyma`), else it is grown for LAA-950; contrast_ct: the scan shows a
    contrast-enhanced blood pool (`segmentation.blood_pool.contrast_pool_band`): each nodule carries
    ``contrast_ct`` True, and one whose outline holds calcium-or-contrast density (`dense_on_contrast`;
    ``contrast_band``: the pool's (low, high) HU, `blood_pool.contrast_pool_band`)
    is typed ``dense_calcium_or_contrast`` and gets no Lung-RADS category, no Brock, no Mayo, nor a
    benign reading (calcium and iodinated contrast share its density:
    `stratification.screening.calcified_reason`).
    Returns (nodules: one dict per characterised candidate, sorted by decreasing risk; their
    masks on the CT grid, same order; scan-level facts: emphysema, counts, warnings). Runs on
    the storage given: `pipeline.scan_findings` gives it the RAS-canonical one, so that the
    result does not depend on how the world image is stored.
    """
    from ..segmentation.common import as_progress
    from ..segmentation.lungs import midline_or_lungs_centre, midline_x
    from ..stratification.screening import detected_inputs, risk_key, stratify

    from .report import report_threshold

    p = as_progress(progress)
    attempts = len(cands) if slots is None else min(len(cands), int(np.ceil(
        slots * float(constants()["characterise"]["slots"]["attempts_factor"]))))
    todo = cands[:attempts]
    p(0.0, "characterise: emphysema (LAA-950 of the lungs without the airways)")
    scan = {"emphysema": emphysema_status(ct, lungs, airways), "warnings": []}
    if lobes is None:
        scan["warnings"].append(f"lobe {NO_LOBES}; the side is given instead (Brock's upper-lobe "
                                "term becomes a range)")
    # the midline: the centre of the two lungs' left-right extent when both are in view (the
    # mediastinum lies between them), else the scanner's isocentre (said)
    midline, how = midline_x(ct, body=lungs)
    if how == "isocentre":
        scan["warnings"].append("left/right from the scanner's isocentre (the lungs' extent is cut "
                                "by the field of view)")
    elif how == "unknown":
        midline = midline_or_lungs_centre(ct, midline, lungs)
        scan["warnings"].append("left/right from the lungs' centre: their extent is cut by the field of view "
                                "and the image's origin is (0, 0, 0) (no scanner coordinates); check the sides")
    nodules, masks = [], []
    aside = []   # (nodule, mask) of low-probability candidates measured below the smallest measurable size
    pleura_mm = pleura_distance_map(ct, lungs)
    from ..stratification.screening import not_measurable, smallest_measurable_mm

    # Lung-RADS measures in the axial section: its larger spacing sets what can be measured
    in_plane_mm = float(np.delete(ct.spacing_kji, anatomical_axes(ct)["S"][0]).max())
    t_rep = report_threshold()
    from ..segmentation.lesion import MEASUREMENT_MAX_SLICE_MM
    thick_sections = float(np.max(ct.spacing)) > MEASUREMENT_MAX_SLICE_MM   # as the one-click tool's warning
    scan["segmented_candidates"] = 0   # how many of the most probable were segmented
    for n, cand in enumerate(todo):
        if slots is not None and len(nodules) >= slots:
            break
        scan["segmented_candidates"] = n + 1
        p(n / max(len(todo), 1), f"characterise: candidate {n + 1}/{len(todo)}")
        d = {"id": n + 1, "candidate": cand.to_dict(), "warnings": list(cand.warnings),
             **({"contrast_ct": True} if contrast_ct else {})}
        try:
            mask, meas, warn, uncertain, clipped = segment_candidate(ct, cand)
        except ImagioError as e:
            d["warnings"].append(f"not segmented: {e}")
            # the side from the detected centre, so the table has no gap (same rule as location)
            d.update(type=cand.type, segmented=False,
                     side="right" if float(cand.center_ras[0]) > midline else "left")
            masks.append(np.zeros(ct.shape, bool))
            nodules.append(d)
            continue
        loc = location(ct, mask, lungs, lobes, midline, pleura_mm)
        typ, solid_mm, twarn, alt_type = nodule_type(ct, mask, meas, loc)
        loc.pop("_fissure_or_pleura_mm")
        dense = dense_on_contrast(ct, mask, typ, contrast_band) if contrast_ct else None
        if dense and not dense["core_voxels"] and typ != "calcified":   # only at its edge (trial 93 F1)
            twarn = [*twarn, dense_words(dense, typ)]
        elif dense:   # calcium or iodinated contrast: no type by density (new-user trial 91 M2)
            twarn = [dense_words(dense, typ)]
            typ, alt_type = DENSE_TYPE, None
        d.update(segmented=True, type=typ, center_ras=[round(float(v), 2) for v in meas.centroid_ras],
                 volume_ml=round(meas.volume_ml, 4), long_axis_mm=round(meas.long_axis_mm, 2),
                 # what partial volume allows (measurements.border_volume_range_ml) where the sections are too
                 # thick for measurements (> 1.5 mm, Fleischner 2017: the one-click tool's warning gives it): a
                 # volume within it of a Lung-RADS volumetric cut is at the cut (stratification.lungrads.with_volume)
                 volume_border_range_ml=[round(float(v), 4) for v in meas.volume_border_range_ml]
                 if meas.volume_border_range_ml and thick_sections else None,
                 # RECIST 1.1's axial long and short axes, on the patient's axial planes (`measurements.measure`):
                 # the long one is Brock's and Mayo's size, mean_diameter_mm (Lung-RADS) is their mean to 0.1 mm,
                 # halves up (new-user trial 106 L6: only the 3-D short axis was given, 56.83 mm against an axial
                 # 47.3 mm on the oblique Lung_Dx mass, and the mean diameter could not be rebuilt)
                 axial_long_axis_mm=round(meas.axial_long_axis_mm, 2),
                 axial_short_axis_mm=round(meas.axial_short_axis_mm, 2),
                 short_axis_mm=round(meas.short_axis_mm, 2), mean_diameter_mm=meas.mean_diameter_mm,
                 solid_component_mm=round(solid_mm, 2), mean_hu=round(meas.mean_hu, 1),
                 smallest_measurable_mm=round(smallest_measurable_mm(in_plane_mm), 2),
                 in_plane_mm=round(in_plane_mm, 3),   # the diameter's own uncertainty (lung_rads at_size_cut)
                 size_uncertain=uncertain, type_alternative=alt_type, **loc)
        why = not_assessable(ct, cand, mask, meas, clipped)
        if why:
            d["not_assessable"], d["not_assessable_kind"] = why[1], why[0]
        if why and why[0] == "fat_density" and typ not in CALCIUM_TYPES:
            # new-user trial 96 F7: lung1 #4 (mean -71 HU, not assessable) was typed "solid": an outline of
            # fat's density gets no solid (or sub-solid) type, nor its typing notes
            d.update(type=FAT_TYPE, type_alternative=None)
            twarn = []
        # the detector's own size ("... not a segmentation") no longer is the row's size once the outline is
        # measured; it stays when the outline was clipped to the detector's sphere (its size is then that one)
        d["warnings"] = [w for w in d["warnings"] if "blob-filter scale" not in w
                         and (clipped or "not a segmentation" not in w)] + warn + twarn
        if slots is not None and cand.probability < t_rep and not_measurable(d):
            aside.append((d, mask))   # takes no slot: fills one left at the end
            continue
        masks.append(mask)
        nodules.append(d)
    if slots is not None:
        free = max(slots - len(nodules), 0)
        kept, left = aside[:free], aside[free:]
        nodules, masks = nodules + [d for d, _ in kept], masks + [m for _, m in kept]
        if left:
            lim = left[0][0]["smallest_measurable_mm"]
            scan["warnings"].append(
                f"{len(left)} low-probability candidate(s) segmented below the smallest measurable nodule "
                f"({lim:g} mm: no category, no risk) were set aside for measurable ones ("
                + ", ".join(f"#{d['id']} {d['mean_diameter_mm']:.1f} mm" for d, _ in left)
                + "); candidates.json lists them")
    scan["characterised"] = len(nodules)
    nodules, masks = _drop_duplicates(nodules, masks)
    _same_lesion(ct, nodules, masks)
    n_nod = sum(1 for d in nodules if d.get("segmented"))
    measured = emph = scan["emphysema"]["emphysema"]
    e = scan["emphysema"]
    how = {"value": emph, "how": "unknown" if emph is None else "measured",
           "note": e.get("not_judged") if emph is None else f"LAA-950 {e['laa950_percent']} % of the lungs "
                                                             f"(emphysema at >= {e['threshold_percent']:g} %)"}
    if e.get("not_judged") and (patient or {}).get("emphysema") is None:
        scan["warnings"].append("emphysema: " + e["not_judged"])
    elif (patient or {}).get("emphysema") is None and (e.get("airways_note") or e.get("airways_warning")):
        scan["warnings"].append(
            f"emphysema: LAA-950 {e['laa950_percent']} % measured "
            + (f"with the trachea and bronchi left in the lung mask ({e['airways_note']}): their lumen counts as "
               "emphysema, so the percentage is an upper bound" if e.get("airways_note") else
               f"on the lungs without the airways, but {e['airways_warning']}: parenchyma taken out with them is "
               "not measured"))
    if (patient or {}).get("emphysema") is not None:   # a reader's reading replaces the measurement
        emph = scan["emphysema"]["given"] = bool(patient["emphysema"])
        how = {"value": emph, "how": "given", "note": how["note"] and "measured: " + how["note"]}
        if measured is not None and measured != emph:   # two readings of one fact disagree: said
            yn = {True: "yes", False: "no"}
            scan["warnings"].append(
                f"emphysema given as {yn[emph]} (--{'' if emph else 'no-'}emphysema), but the lung mask reads "
                f"{e['laa950_percent']} % below -950 HU (LAA-950; emphysema at >= {e['threshold_percent']:g} %): "
                f"{yn[measured]}; Brock uses the given value: check the lungs on the CT and the reading")
    for d in nodules:
        lobe = d.get("lobe")
        upper = None if lobe is None else "upper" in lobe
        # Brock's count is the nodules a reader counts; candidates are not confirmed nodules and
        # the risk falls with each one counted: a range from 1 (trial 10: the count was every
        # characterised candidate, and the risk halved with --characterise)
        d["stratification"] = stratify(d, patient, (1, max(n_nod, 1)), emph, upper)
        d["stratification"]["inputs"] = detected_inputs(d, patient or {}, (1, max(n_nod, 1)), how, upper)
        d["risk_key"] = round(risk_key(d["stratification"]), 6)
    from ..stratification.commands import yes_or_no
    from ..stratification.screening import PATIENT_FACTS

    left = sorted({k for d in nodules for m in ("brock", "mayo")
                   for k in d["stratification"][m].get("unknown", []) if k in PATIENT_FACTS + ("emphysema", "sex")})
    if left:   # said once for the scan (as `imagio risk` says it), each nodule's notes too
        scan["warnings"].append(f"{', '.join(k.replace('_', ' ') for k in left)}: not given"
                                + (" nor measured" if "emphysema" in left else "")
                                + f": Brock and Mayo are ranges over their values ({yes_or_no(left)})")
    order = sorted(range(len(nodules)), key=lambda i: -nodules[i]["risk_key"])
    p(1.0, f"characterise: {len(nodules)} nodules")
    return [nodules[i] for i in order], [masks[i] for i in order], scan
