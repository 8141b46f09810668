"""`segment`: run the rule-based segmenters and return ONE label Volume named per `imagio.anatomy`.

Structures (CLI names): body, bones, lungs, airways, emphysema, lung_vessels, pleura, and
"vessels" (lung vessels, plus liver vessels when a liver mask is passed in ``organs``, plus
``great_vessels``, the contrast blood pool, on a contrast CT). ``STRUCTURE_CONTENTS`` lists what each writes.
Names: TotalSegmentator's own wherever it has one: a ``total`` v2 class (trachea,
costal_cartilages), a class of another TS task (lung_vessels, liver_vessels), or a TS combined
mask (``totalseg_combine_masks -m body | lung_left | lung_right | ribs | vertebrae``). IMAGIO names
only where TS has none (``IMAGIO_ONLY_NAMES``: bone, airways, emphysema, pleura, great_vessels), with the TS
classes of a group listed in anatomy.json ``group_of``.
Output labels: body, vertebrae, ribs, bone, great_vessels, lung_left, lung_right, trachea, airways, emphysema,
lung_vessels, liver_vessels, pleura. Later structures are painted over earlier ones (body first), so each
voxel holds the most specific label; the body label is what remains of the outline.
Per-structure statistics (airway threshold, emphysema %LAA, ...) go in ``meta``.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..volume import Volume
from .common import (anatomical_axes, as_progress, check_ct, crop_slices, embed, mean_ras, measured_box,
                     padding_note, volume_text)

STRUCTURES = ("body", "bones", "lungs", "airways", "emphysema", "lung_vessels", "pleura", "vessels")
DEFAULT_STRUCTURES = ("body", "bones", "lungs", "airways")
# what each structure set writes (label names; groups are documented in anatomy.json "group_of")
# names the rules write that TotalSegmentator has no class or combined mask for (documented here
# and in anatomy.json; "bone" and "airways" list their TS classes in "group_of")
IMAGIO_ONLY_NAMES = ("bone", "airways", "emphysema", "pleura", "great_vessels")
STRUCTURE_CONTENTS = {
    "body": "body (TS combined mask name; patient outline without the table and blankets/straps thinner than ~6 mm; "
            "thicker pads touching the skin stay body; lungs and a trachea cut by the field of "
            "view included)",
    "bones": "vertebrae (TS combined mask of vertebrae_C1..S1: the spine, not numbered; written "
             "only where a spine is in view: a trachea, lungs, or else a spinal canal, a ring of "
             "bone around soft tissue with the vertebral body in front), "
             "ribs (TS combined mask of rib_left_1..rib_right_12, not numbered), costal_cartilages "
             "(TS class; non-contrast scans only, else a warning), bone (IMAGIO group, no TS "
             "equivalent: sternum, scapulae, clavicles, humeri, hips, femora; on a limb its long "
             "bones; the spine too where no canal is seen, with a warning; undiluted contrast in a vein "
             "joined to the blood pool, with its wall and the azygos arch in the mediastinum (great_vessels "
             "when vessels are asked for too), and dense objects "
             "on the skin such as ECG electrodes, are left out, with a warning)",
    "lungs": "lung_left, lung_right (TS combined masks of the lobes lung_upper_lobe_left ...: "
             "lobes not split; sides from the trachea / body midline, one lung when only one is in "
             "view)",
    "airways": "trachea (TS class), airways (IMAGIO group: bronchi below the carina; TS has no "
               "bronchi-only class, its lung_trachea_bronchia = trachea + airways)",
    "emphysema": "emphysema (IMAGIO name, no TS class: lung voxels below -950 HU; one label per "
                 "voxel: it takes them from lung_left/lung_right, whose whole volumes the JSON gives "
                 "in lung_volumes)",
    "lung_vessels": "lung_vessels (TS lung_vessels task class; Frangi vesselness inside the lungs; "
                    "one label per voxel: it takes them from lung_left/lung_right, whose whole "
                    "volumes, vessels included as in TS's lobes, the JSON gives in lung_volumes)",
    "pleura": "pleura (IMAGIO name, no TS class: the one-voxel layer just outside the lungs, "
              "so that the lung labels stay whole; bone, vessels and airways keep their voxels)",
    "vessels": "lung_vessels, plus liver_vessels when a liver mask is given, plus on a contrast "
               "CT great_vessels (IMAGIO group, no TS equivalent: the enhanced blood pool = TS "
               "aorta, heart, pulmonary_vein, superior_vena_cava, ... not split; with bones asked for "
               "too, it holds the veins of undiluted contrast joined to the pool: superior vena cava, "
               "brachiocephalic and subclavian vein of the injection side, the vena cava's wall and the "
               "azygos arch; use a model, e.g. "
               "--model total, for the named vessels)",
}
# lesion names: the one vocabulary is "tumor" (TotalSegmentator's liver_tumor, kidney_tumor, ...);
# "tumour" is still accepted on input (user label maps)
FEW_LUNG_ML = 50.0  # below this, lung-like air may be bowel gas (a whole lung is > 1000 mL; the
# lung bases in an upper-abdominal scan ~100 mL): the lung labels come with a warning
LESION_PREFIXES = ("tumor", "tumour", "lung_nodule", "lesion", "liver_tumor", "liver_tumour")
# painting order: later wins
_PAINT = ("body", "pleura", "vertebrae", "ribs", "costal_cartilages", "bone", "great_vessels",
          "lung_left", "lung_right", "lung_vessels",
          "liver_vessels", "emphysema", "trachea", "airways")


def segment_masks(ct: Volume, structures=DEFAULT_STRUCTURES, progress=None,
                  organs: dict[str, np.ndarray] | None = None,
                  lungs_optional: bool = False) -> tuple[dict, dict]:
    """({label name: bool mask [k, j, i]}, meta) for the requested structures.

    The CT blurred to the bones' common resolution and the CT's padding (`padding.padding_mask`,
    `padding.scan_circle_fill`) are computed once per call and dropped on return
    (`bones.keep_common_resolution`, `padding.keep_fill_regions`; several structures read them), and
    so are the lungs' per-plane hulls (`bone_shell.keep_lung_hulls`).

    lungs_optional: a scan without lungs (a limb, the pelvis) gives the other structures and a
    warning instead of InputError "no lungs found" (for the default set, which the user did not
    choose; a set that names lungs, emphysema, lung vessels or pleura still refuses).

    organs: optional masks on the CT grid from elsewhere (a model or the user), e.g.
    {"liver": mask}: with "vessels" requested, the liver's contrast vessels are segmented too;
    lesions (names starting with tumor/tumour/lung_nodule/lesion/liver_tumor, e.g. from the
    one-click tool) are removed from every vessel mask.
    """
    from ..padding import keep_fill_regions
    from ..volume import as_lps_canonical, reorient_array, unreorient_array
    from .bone_shell import keep_lung_hulls
    from .bones import keep_common_resolution

    # the rules run on one canonical storage of the CT, and the masks come back in the file's order:
    # per-axis filters, openings, first-hit order and ties then see one array for every storage of
    # one world image (new-user trial 100 F1: lung1 re-stored permuted and flipped, the same voxels,
    # gave costal cartilages of 27.8 vs 46.7 mL and a body outline differing by 86 mL each way).
    # LPS-canonical (`volume.as_lps_canonical`: every voxel keeps its world position and value), the
    # order DICOM series and the files converted from them are stored in, which the rules were
    # developed and validated on: the RAS-canonical order changed results on real cases by the same
    # kind of tie (chest CTA 80 mm cube: its 2.9 mL of ribs not found; lung1 at 3 mm: 26 mL moved
    # from ribs to other bone), which says those rules still hold ties to be removed (issue 14)
    can, perm, flip = as_lps_canonical(ct)
    if can is not ct:
        organs = None if organs is None else {n: None if m is None else reorient_array(np.asarray(m), perm, flip)
                                              for n, m in organs.items()}
        masks, meta = segment_masks(can, structures, progress, organs, lungs_optional)
        _indices_to_storage(meta, perm, flip, ct.shape)
        return {n: None if m is None else unreorient_array(np.asarray(m), perm, flip)
                for n, m in masks.items()}, meta
    with keep_common_resolution(), keep_fill_regions(), keep_lung_hulls():
        return _segment_masks(ct, structures, progress, organs, lungs_optional)


def _indices_to_storage(meta: dict, perm, flip, shape) -> None:
    """The array indices in ``meta`` (found on the canonical storage, `volume.reorient_array`'s
    ``perm``, ``flip``) put in the storage order of the CT of ``shape`` (k, j, i): the airway seeds
    (``seed_kji``), the cut bronchi's face (``axis``, ``face``), the carina's slice (along the
    canonical axis 0, superior) and the padded slabs (``slabs_kji``). Canonical axis n is the
    file's axis ``perm[n]``, reversed when ``flip[n]``."""
    from ..volume import unreorient_axis_index, unreorient_index

    def point(kji):
        return [int(x) for x in unreorient_index(np.asarray(kji, np.int64), perm, flip, shape)]

    aw = meta.get("airways")
    if aw:
        for item in [aw] + list(aw.get("cut_bronchi") or []):
            if item.get("seed_kji") is not None:
                item["seed_kji"] = point(item["seed_kji"])
            if item.get("axis") is not None and item.get("face") is not None:
                item["axis"], item["face"] = unreorient_axis_index(int(item["axis"]), item["face"], perm, flip, shape)
        if aw.get("carina_slice") is not None:
            aw["carina_slice"] = unreorient_axis_index(0, aw["carina_slice"], perm, flip, shape)[1]
    pad = meta.get("padding")
    if pad and pad.get("slabs_kji") is not None:
        slabs = [None] * 3
        for n, (lo, hi) in enumerate(pad["slabs_kji"]):
            slabs[perm[n]] = [hi, lo] if flip[n] else [lo, hi]
        pad["slabs_kji"] = slabs


def _segment_masks(ct: Volume, structures, progress, organs, lungs_optional) -> tuple[dict, dict]:
    """`segment_masks` within its context."""
    from . import airways as aw
    from . import bones as bn
    from . import body as bd
    from . import emphysema as em
    from . import lungs as lg
    from . import spine as sp
    from .lung_fields import NO_MIDLINE, split_lungs
    from . import vessels as vs

    structures = [s.strip() for s in structures if s.strip()]
    unknown = [s for s in structures if s not in STRUCTURES]
    if unknown:
        raise InputError(f"unknown structure(s) {unknown}; choose from {list(STRUCTURES)}")
    check_ct(ct)
    box = measured_box(ct)
    if box is not None:
        # padded slabs on a face (trial 33 M1): the rules run on the measured box, whose faces
        # are the scan's ends there, and the masks are placed back on the whole grid
        masks, meta = segment_masks(crop_slices(ct, box), structures, progress,
                                    None if organs is None else
                                    {n: None if m is None else np.asarray(m)[box] for n, m in organs.items()},
                                    lungs_optional)
        _shift_indices(meta, [s.start for s in box], anatomical_axes(ct)["S"][0])
        meta["padding"] = {"slabs_kji": [[s.start, n - s.stop] for s, n in zip(box, ct.shape)]}
        meta["warnings"].insert(0, padding_note(ct, box))
        return {n: embed(m, ct.shape, box) for n, m in masks.items()}, meta
    p = as_progress(progress)
    want = set(structures)
    if "vessels" in want:
        want.add("lung_vessels")
    need_lungs = want & {"lungs", "emphysema", "lung_vessels", "pleura", "bones"}
    need_airways = want & {"airways"} or need_lungs
    out: dict[str, np.ndarray] = {}
    meta: dict = {"warnings": []}
    p(0.0, "body")
    body_info: dict = {}
    body = bd.body_mask(ct, progress=p.sub(0.0, 0.15), info=body_info)
    if body_info.get("lung_field_ml"):
        # a view inside one lung (`body.lung_field_air`): no skin, no ring of ribs, no trachea
        # to judge the tissue in view by (fov4: on the chest CTA's 80 mm cube in the right
        # lung a 24 mL contrast-filled pulmonary artery, 489 HU, became 'bone'/'vertebrae';
        # fov5: `bone_shell.uncortexed_lumens` and a spinal canal for 'vertebrae', below)
        meta["lung_field"] = {"ml": round(body_info["lung_field_ml"], 1)}
        wall = body_info.get("lung_field_wall_ml", 0.0)
        # the second way (a face of the view in chest wall or mediastinum) says nothing of the skin:
        # a lateral chest-wall crop shows skin and outside air beside the lung it cuts (new-user
        # trials 110 and 111: "no skin in view" was said of such a crop)
        how = (f"the field of view lies inside a lung ({body_info['lung_field_ml']:.0f} mL of lung air reaches "
               "its whole edge; no skin or outside air in view): the lung is taken to continue beyond every "
               "face" if not wall else
               f"the field of view cuts a lung ({body_info['lung_field_ml']:.0f} mL of air with the lung's vessel "
               f"tree reaches the view's faces, {wall:.0f} mL of it held by chest wall or mediastinum, not by "
               "skin with subcutaneous fat): the lung is taken to continue beyond the faces it reaches")
        meta["warnings"].append(
            f"{how}; bronchi cannot be told from lung without the "
            "trachea, and bone labels here are not checked against the chest wall (a contrast-filled "
            "vessel with no cortex is left out of them, one cut thin by the view may not be): check them")
    if "body" in want:
        out["body"] = body
    trachea = bronchi = None
    if need_airways:
        try:
            trachea, bronchi, info = aw.airway_masks(ct, body, progress=p.sub(0.15, 0.4))
            meta["airways"] = info
            # the airways are inside the patient, also where a face of the view cut their lumen open
            # (`airways.opened_lumen`: that air read as outside the body)
            body |= trachea | bronchi
        except InputError as e:
            if "airways" in want:
                meta["warnings"].append(f"airways: {e}")
                if isinstance(e, aw.TracheaAboveView):
                    # the bronchi below the carina leave the top face as walled air tubes
                    top_bronchi, pieces = aw.top_face_bronchi(ct, body)
                    if pieces:
                        meta["airways"] = {"top_face_bronchi": pieces}
                        meta["warnings"].append(
                            f"airways: {sum(q['volume_ml'] for q in pieces):.1f} mL of bronchi, found from "
                            f"{len(pieces)} air lumen(s) on the top face, are labelled airways; they are "
                            "not joined to a trachea in view, so which bronchi they are is not known, and a "
                            "main or lobar bronchus whose lumen on that face could not be told from the lung "
                            "(not round, not walled, or grown into the lung) is labelled lung: check the "
                            "bronchi at the hilum on the images")
                        out["airways"] = top_bronchi   # no "trachea": none is in view
                        body |= top_bronchi
                    else:
                        # trial 54 H2: the main bronchi below the carina were labelled lung, and the
                        # warning spoke of the trachea only
                        meta["warnings"].append(
                            "airways: no bronchus lumen on the top face could be told from the lung (a "
                            "round, walled air lumen of main or lobar bronchus calibre, 5-16 mm): the main "
                            "and lobar bronchi below the carina are labelled lung, not airways; check the "
                            "hilum on the images (a needle path there is not judged against them)")
        if "airways" in want and trachea is not None:
            out["trachea"], out["airways"] = trachea, bronchi
            side = aw.cut_lr_side(ct, trachea)
            cut = meta["airways"].get("cut_bronchi")
            if cut:
                meta["airways"]["cut_bronchi_ml"] = round(sum(c["volume_ml"] for c in cut), 2)
                meta["warnings"].append(
                    f"airways: the bronchial tree is cut by the field of view; {meta['airways']['cut_bronchi_ml']} mL "
                    "of bronchi were found from their lumens on that face, not joined to the trachea in view; "
                    "check the hilum on the images")
            elif side and meta["airways"].get("carina_slice") is None:
                # trial 13 (H1): a crop just beside the carina keeps a sliver of the trachea; the
                # main bronchus in view joins it only beyond the face, so it is grown as lung
                meta["warnings"].append(
                    f"airways: the trachea is cut by the field of view's {side} face and no carina or bronchus "
                    "was found joined to it: the bronchi in view may be cut off from it by that face and are "
                    "then labelled lung, not airways; check the hilum on the images (a needle path there is "
                    "not judged against them)")
            if meta["airways"].get("carina_warning"):
                meta["warnings"].append(f"airways: {meta['airways']['carina_warning']}")
            if meta["airways"].get("cut_face_warning"):
                meta["warnings"].append(f"airways: {meta['airways']['cut_face_warning']}")
            if meta["airways"].get("reformat_warning"):
                meta["warnings"].append(f"airways: {meta['airways']['reformat_warning']}")
            if meta["airways"].get("leak_warning"):
                meta["warnings"].append(f"airways: {meta['airways']['leak_warning']}")
            thick = aw.check_slice_thickness(ct, "CT", refuse=False)
            if thick:
                meta["warnings"].append(f"airways: {thick} (bronchoscopic planning refuses this tree)")
            elif doubt := aw.slice_thickness_doubt(ct):   # thick overlapping sections (trial 95 F5)
                meta["warnings"].append(f"airways: {doubt}")
    lungs = mid0 = None
    bones_context: list[str] = []   # what the lungs' absence means for the bones (said after the bones' notes)
    if need_lungs:
        p(0.4, "lungs")
        airway = None if trachea is None else (trachea | bronchi)
        try:
            # the side of each air component, for the per-lung size rule: from the trachea only
            # (a chest; without it small air pockets of an abdomen keep the overall 5 % rule)
            mid0 = None if trachea is None else lg.midline_x(ct, body, trachea)
            lungs = lg.lung_mask(ct, body, airway, progress=p.sub(0.4, 0.55),
                                 midline=None if mid0 is None else mid0[0], notes=meta["warnings"])
        except InputError as e:
            if (meta.get("airways") or {}).get("above_lungs"):
                # the trachea found with no lung in view (`airways.find_trachea_seed`): a neck or
                # thoracic inlet, not an abdomen's bowel gas (new-user trial 103 F3.2)
                e = InputError("no lungs in view: the trachea is in view with no lung beside it, so the field of "
                               "view holds the neck or the thoracic inlet above the lung apices; segment a CT "
                               "that covers the chest for the lungs")
            if want & {"lungs", "emphysema", "lung_vessels", "pleura"}:
                if not lungs_optional:
                    raise e
                meta["warnings"].append(f"lungs: {e}; the other structures are segmented")
            else:
                # the lungs were looked for only for the bones (a rib is found by the lung it hugs):
                # the note is the bones', said after their own (new-user trial 106 L9: an air corner
                # with --structures bones was refused with a line that began "lungs: no lungs found")
                why = str(e).split(": ", 1)[-1].split("; segment a CT")[0]
                bones_context.append(f"bones: no lungs in view ({why}): a rib is found by the lung it hugs, "
                                     "so ribs in view may be labelled 'bone' or left unlabelled")
        airway = None
    bone = canal = vein_lumen = vein_wall = None
    bone_info: dict = {}
    lung_ml = 0.0 if lungs is None else float(lungs.sum() * ct.voxel_volume_ml)
    # a chest: a trachea or more lung than a pocket of gas; otherwise (an abdomen, a pelvis, a
    # limb) only a spinal canal says that a spine is in view (`spine`; trial 6: a thigh's femur
    # and a leg's tibia were named 'vertebrae', a 6.6 mL pocket of air 'lung_left')
    chest = trachea is not None or lung_ml >= FEW_LUNG_ML
    if not chest and (lungs is not None or "bones" in want):
        p(0.55, "spine")
        bone = bn.bone_mask(ct, body if lungs is None else body | lungs, lungs=lungs,
                            progress=p.sub(0.55, 0.65), info=bone_info)
        caged = None if lungs is None else lg.caged_lung(ct, lungs, bone)
        if caged is not None and caged.any():
            # lung by its place: cut by the view and inside the ring of ribs and spine (trial 13
            # H2: the 43 mL left lung base of a half abdomen, no trachea, its canal cut by the
            # crop); the other pockets are not lung. The bones are redone as a chest's.
            other = lungs & ~caged
            if other.any():
                meta["warnings"].append(
                    f"lungs: {other.sum() * ct.voxel_volume_ml:.1f} mL of lung-like air (centre RAS "
                    f"{np.round(mean_ras(ct, other), 1).tolist()} mm) is not labelled lung: not cut by "
                    "the field of view inside a ring of ribs (air in a skin fold, a wound or bowel); "
                    "if it is lung, that lung is missing there: check the images")
            lungs, chest, bone = caged, True, None
            lung_ml = float(lungs.sum() * ct.voxel_volume_ml)
            meta["chest"] = {"from": "lung-like air cut by the field of view inside the ribs' ring",
                             "lung_ml": round(lung_ml, 1)}
        else:
            canal_x = lg.midline_x(ct, body)[0]
            canal = sp.spinal_canal(ct, bone, midline=canal_x)
            meta["spine"] = {"from": "spinal canal", **canal} if canal else {"from": None}
            if canal is None:
                # a vertebra whose neural arch reads open at this resolution (`spine.spinal_canal`)
                canal = sp.spinal_canal(ct, bone, midline=canal_x, open_arch=True)
                if canal:
                    meta["spine"] = {"from": "spinal canal (open neural arches)", **canal}
        if not chest and canal is None and lungs is not None:
            msg = (f"{lung_ml:.1f} mL of lung-like air (centre RAS "
                   f"{np.round(mean_ras(ct, lungs), 1).tolist()} mm) but no trachea and no spine "
                   "(spinal canal) in view, and it is not cut by the field of view inside a ring of "
                   "ribs: not a chest, so not labelled lung (a pocket of gas: bowel gas mixed "
                   "with stool, air in a skin fold or a wound). If it is a lung base, the lung, "
                   "ribs and costal cartilages there are NOT labelled: check the images")
            if want & {"lungs", "emphysema", "lung_vessels", "pleura"} and not lungs_optional:
                raise InputError(f"no lungs found: {msg}")
            meta["warnings"].append(f"lungs: {msg}; the other structures are segmented")
            lungs = None
    if lungs is not None:
        body |= lungs  # the lungs are inside the patient (a field of view may cut them)
        coarse = "" if trachea is not None else lg.coarse_gas_note(ct, lung_ml)
        if coarse:
            meta["warnings"].append(f"lungs: {coarse}")
        if lung_ml < FEW_LUNG_ML:
            meta["warnings"].append(
                f"lungs: only {lung_ml:.1f} mL of lung-like air in view (lung bases at the edge of "
                "the field of view?): a pocket of bowel gas mixed with stool looks the same and "
                "may be labelled lung; check the lung labels")
    mid = None
    if lungs is not None or trachea is not None:
        # from the trachea it is the one found above (the body is not read then): computed once
        reuse = mid0 is not None and trachea is not None and trachea.any()
        mid, src = mid0 if reuse else lg.midline_x(ct, body, trachea)
        meta["midline"] = {"x_mm": None if mid is None else round(mid, 1), "from": src}
        if src == "isocentre":
            meta["warnings"].append(
                "no trachea in view and the body is cut at a side: left/right and the spine are "
                "judged from the scanner's isocentre (x = 0); check the sides")
        elif src == "unknown":
            meta["warnings"].append(NO_MIDLINE)
    if lungs is not None and want & {"lungs", "emphysema"}:
        # the one left/right split (its warnings are the ones said above: the airways tried
        # once, the midline's source)
        left, right, _, _ = split_lungs(ct, lungs, body, trachea, bronchi, find_airways=False,
                                        midline=(mid, src), notes=meta["warnings"])
        if trachea is None and "airways" in out:   # bronchi found from the top face: not lung
            left, right = left & ~out["airways"], right & ~out["airways"]
        if "lungs" in want:
            out["lung_left"], out["lung_right"] = left, right
        if "emphysema" in want:
            p(0.6, "emphysema")
            out["emphysema"], meta["emphysema"] = em.emphysema(
                ct, {"lung_left": left, "lung_right": right})
            meta["emphysema"]["note"] = ("lung_ml: the whole lung, its vessels and emphysema "
                                         "included (the %LAA denominator; lung_volumes whole_ml), "
                                         "not the lung label's voxels in the map")
    if "pleura" in want and lungs is not None:
        out["pleura"] = lg.pleural_surface(lungs)
    if "bones" in want:
        p(0.65, "bones")
        # the bone rules' full-volume temporaries start from the pages body, airways and lungs
        # held, not on top of them (`memory.release_free_memory`; issue 20: the demo's peak)
        from ..memory import release_free_memory
        release_free_memory()
        coarse = bn.coarse_grid_note(ct)
        if coarse:
            meta["warnings"].append(f"bones: {coarse}")
        if bone is None:
            # without a midline (no scanner coordinates, the body cut at a side) the chest-wall
            # axis is the lungs' centre (`lungs.midline_or_lungs_centre`)
            bone = bn.bone_mask(ct, body, lungs=lungs, progress=p.sub(0.65, 0.8),
                                midline=lg.midline_or_lungs_centre(ct, mid, lungs),
                                lung_field="lung_field" in meta, info=bone_info)
        # the spine corridor: on the midline of a chest (trachea, lungs), else on the canal found;
        # without either, the body's median (`split_bones`; the lungs' centre, pulled towards the
        # larger right lung, put less of the spine in it: TS example with origin 0, vertebrae
        # 458.6 -> 436.2 mL against 458.6 with its real origin)
        spine_x = mid if chest else (canal["x_mm"] if canal else None)
        spine = chest or canal is not None
        if "lung_field" in meta and spine:
            # a view inside a lung shows no trachea and no body outline to place the spine by:
            # a vertebra is named only with its spinal canal in view (fov5: the chest CTA's 80 mm
            # cubes named a pulmonary artery 'vertebrae')
            canal = sp.spinal_canal(ct, bone, midline=mid)
            meta["spine"] = {"from": "spinal canal", **canal} if canal else {"from": None}
            spine = canal is not None
            spine_x = canal["x_mm"] if spine else spine_x
            if not spine and bone.any():
                meta["warnings"].append(
                    "bones: the field of view shows lung out to its faces and no spinal canal: no bone "
                    "is named 'vertebrae' (a vertebra cut so that its canal is not in view is in 'bone')")
        notes: list[str] = []
        hull = None   # the lungs' per-plane hull, once for `split_bones` and `bones.vein_in_mediastinum`
        if bone_info.get("undiluted_vessel") is not None and lungs is not None and lungs.any():
            from .bone_shell import lung_hull_planes
            hull = lung_hull_planes(lungs, anatomical_axes(ct)["S"][0], ct.spacing_kji, bn.COMMON_RESOLUTION_MM)
        split_info: dict = {}
        out.update(bn.split_bones(ct, bone, body, lungs, midline=spine_x,
                                  spine=spine, trachea=trachea, notes=notes,
                                  bone_low_hu=bone_info.get("low_hu"), edge=bone_info.get("edge"), hull=hull,
                                  info=split_info))
        # the whole vein of undiluted contrast (great_vessels below: `blood_pool.undiluted_vessel`)
        vein_lumen = bone_info.pop("undiluted_vessel", None)
        undiluted = bone_info.pop("undiluted", None)
        if undiluted is not None:
            # the undiluted vein's partial-volume rim is no bone (`bones.without_lumen_rim`)
            # the clavicle taken from the ribs lies on the subclavian vein: its pieces are judged on
            # their own (in 'bone' they would join that vein's rim pieces to it)
            parts = {n: out[n] for n in ("vertebrae", "ribs", "bone")}
            clav = split_info.pop("clavicle", None)
            if clav is not None and clav.any():
                parts["clavicle"] = clav & out["bone"]
                parts["bone"] = out["bone"] & ~clav
            kept = bn.without_lumen_rim(parts, undiluted, ct.spacing_kji)
            if "clavicle" in kept:
                kept["bone"] = kept["bone"] | kept.pop("clavicle")
            bone = bone & ~((out["vertebrae"] | out["ribs"] | out["bone"]) & ~(kept["vertebrae"] | kept["ribs"] |
                                                                              kept["bone"]))
            out.update(kept)
            notes.insert(0, bn.undiluted_note(ct, undiluted, kept["vertebrae"] | kept["ribs"] | kept["bone"],
                                              vessel="vessels" in want))
            kept = undiluted = clav = parts = None
        if vein_lumen is not None and lungs is not None:
            # the vein's wall and the azygos arch in the mediastinum, joined to bone only outside
            # it: no bone (`bones.vein_in_mediastinum`); great_vessels below, if asked for
            vein_wall = bn.vein_in_mediastinum(ct, out, vein_lumen, lungs, hull)
            if vein_wall.any():
                out["bone"] = out["bone"] & ~vein_wall
                bone = bone & ~vein_wall
                notes.insert(0, f"{volume_text(int(vein_wall.sum()), ct.voxel_volume_ml)} of dense tissue in the "
                             f"mediastinum at RAS {[round(float(v)) for v in mean_ras(ct, vein_wall)]}, joined to "
                             "the vein of undiluted contrast (superior vena cava, azygos arch), is not labelled bone "
                             "(the mediastinum holds no bone): it is " + (
                                 "labelled great_vessels" if "vessels" in want else
                                 "left unlabelled (add 'vessels' to the structures to label it great_vessels)"))
            else:
                vein_wall = None
        hull = None
        along = bone_info.pop("thick_slice_lumen", None)
        if along is not None:
            # on thick slices, the vein beyond the lumen found may be labelled bone (`bones.thick_slice_note`)
            note = bn.thick_slice_note(ct, along, out["vertebrae"] | out["ribs"] | out["bone"])
            if note:
                notes.insert(0, note)
                # the labels holding such tissue keep the doubt for the plans that read them (trial 79)
                for n in ("vertebrae", "ribs", "bone"):
                    if (along & out[n]).any():
                        meta.setdefault("structure_doubts", {})[n] = (
                            "great_vessels", f"bones: {note}", piece_spheres(ct, along & out[n]))
            along = None
        edge = bone_info.pop("edge", None)
        if edge is not None:
            # thin bone's blurred edge that lies between two bone pieces is in no label
            # (`bones.attach_edge`): not bone for what reads the mask below either
            bone = bone & ~(edge & ~(out["vertebrae"] | out["ribs"] | out["bone"]))
            edge = None
        meta["warnings"] += [f"bones: {n}" for n in bone_info.pop("notes", []) + notes] + bones_context
        cut = bn.spine_cut_note(ct, body, spine_x) if spine and spine_x is not None else ""
        if cut:
            meta["warnings"].append(f"bones: {cut}")
        if bone_info.get("thin_bone_note") and out["ribs"].any():
            meta["warnings"].append(f"bones: {bone_info['thin_bone_note']}")
        if not chest and canal is None and bone.any():
            meta["warnings"].append(
                "bones: no trachea, no lungs and no spinal canal in view: no bone is named "
                "'vertebrae' (on a scan of a limb its long bones are 'bone'); a spine whose canal "
                "the scan does not show closed (thick slices, a crop through it) is in 'bone' too")
        out["costal_cartilages"], warn = bn.costal_cartilage(ct, out["ribs"], bone, body, lungs,
                                                            vertebrae=out.get("vertebrae"))
        if warn:
            meta["warnings"].append(f"bones: {warn}")
            if out["costal_cartilages"].any():   # labelled, but perhaps not all of it: the file says so
                meta.setdefault("partly_missed", {})["costal_cartilages"] = f"bones: {warn}"
    if "lung_vessels" in want and lungs is not None:
        p(0.8, "lung vessels")
        vm, diam, blobs = vs.vessels_and_blobs(ct, lungs, progress=p.sub(0.8, 0.98))
        out["lung_vessels"] = vm
        thick = vs.thick_slice_note(ct.spacing)   # new-user trial 53 M1: -47 % at 5 mm slices, unsaid
        if thick:
            meta["warnings"].append(thick)
        if vm.any():
            meta["lung_vessels"] = {"volume_ml": round(float(vm.sum() * ct.voxel_volume_ml), 2),
                                    "max_diameter_mm": round(float(diam.max()), 2)}
        if blobs.any():
            items, warn = vs.blob_report(ct, blobs, "lung vessels")
            meta.setdefault("lung_vessels", {})["excluded_blobs"] = items
            meta["warnings"] += warn
    if "vessels" in want:
        pool = bn.contrast_blood_pool(ct, body, lungs, bone)
        if pool is not None:
            from . import blood_pool as bp
            pool = bp.extend_pool(ct, pool, body, lungs, bone)   # trial 53 H2: descending aorta
            vein_ml = None
            if vein_lumen is not None:
                # the vein of undiluted contrast joined to the pool, found with the bones (issue 14:
                # the chest CTA's superior vena cava, brachiocephalic vein and right atrium), with its
                # partial-volume rim; never a voxel of the bone labels
                labelled = bone | out["vertebrae"] | out["ribs"] | out["bone"] | out["costal_cartilages"]
                vein = bp.undiluted_vessel(ct, vein_lumen, body, lungs, labelled) & ~pool
                if vein_wall is not None:   # its wall in the mediastinum (`bones.vein_in_mediastinum`)
                    vein |= vein_wall & ~labelled & ~pool
                vein_ml = round(float(vein.sum() * ct.voxel_volume_ml), 1)
                pool |= vein
                labelled = vein = vein_lumen = vein_wall = None
            warn = bp.paravertebral_pool_warning(ct, pool, out.get("vertebrae"), body, lungs, bone)
            if warn:
                meta["warnings"].append(warn)
            warn = bp.nonenhancing_crescent_warning(ct, pool, out.get("vertebrae"), body, lungs, bone)
            if warn:
                meta["warnings"].append(warn)
            out["great_vessels"] = pool
            bones_done = "bones" in want
            meta["great_vessels"] = {"volume_ml": round(float(pool.sum() * ct.voxel_volume_ml), 1)}
            if vein_ml is not None:   # of it, the vein of undiluted contrast with its rim
                meta["great_vessels"]["undiluted_vein_ml"] = vein_ml
            meta["warnings"].append(
                "vessels: contrast CT: the enhanced blood pool (heart chambers, aorta, pulmonary "
                "arteries and veins, venae cavae) is ONE label, great_vessels, not split into "
                "TotalSegmentator's aorta, heart, superior_vena_cava, ...; " + (
                    "the veins of the injection side with undiluted contrast (> the pool's density: superior "
                    "vena cava, brachiocephalic and subclavian vein, right atrium) are in it where joined to "
                    "the pool through a thick lumen; their thinner branches and " if bones_done else
                    "the veins of the injection side with undiluted contrast (> the pool's density: superior "
                    "vena cava, brachiocephalic and subclavian vein) are NOT in it (they are found with the "
                    "bones: add 'bones' to the structures), and ") +
                "less enhanced vessels are not in it (unlabelled); segment them with a model (--model total) "
                "for named vessels")
        else:   # trial 73 M4: a non-contrast CT lost its great vessels without a word
            meta["warnings"].append(
                "vessels: no contrast blood pool was found (a non-contrast or late-phase CT): the heart, "
                "aorta, pulmonary arteries and veins and venae cavae are NOT labelled (great_vessels is "
                "absent; only the lung vessels are), so a plan cannot keep a needle off them; segment "
                "them with a model (--model total) or outline them before planning near the mediastinum")
    liver = (organs or {}).get("liver")
    if "vessels" in want and liver is not None and liver.any():
        p(0.98, "liver vessels")
        notes: list = []
        vm, diam, blobs = vs.vessels_and_blobs(ct, liver, notes=notes)
        meta["warnings"] += [n.replace("vessels:", "liver vessels:", 1) for n in notes]
        out["liver_vessels"] = vm
        if vm.any():
            meta["liver_vessels"] = {"volume_ml": round(float(vm.sum() * ct.voxel_volume_ml), 2),
                                     "max_diameter_mm": round(float(diam.max()), 2)}
        if blobs.any():
            items, warn = vs.blob_report(ct, blobs, "liver vessels")
            meta.setdefault("liver_vessels", {})["excluded_blobs"] = items
            meta["warnings"] += warn
    lesions = [m for n, m in (organs or {}).items() if n.startswith(LESION_PREFIXES) and m is not None]
    if lesions:
        out = vs.remove_lesion(out, np.logical_or.reduce(lesions))
    p(1.0, "segmentation done")
    return out, meta


def _shift_indices(meta: dict, lo, sup: int) -> None:
    """The array indices in ``meta`` (found on a box of the grid starting at ``lo``, k, j, i)
    moved onto the whole grid: the airway seeds and the carina's slice (along ``sup``)."""
    aw = meta.get("airways")
    if not aw:
        return
    for item in [aw] + list(aw.get("cut_bronchi") or []):
        if item.get("seed_kji") is not None:
            item["seed_kji"] = [int(v + o) for v, o in zip(item["seed_kji"], lo)]
    if aw.get("carina_slice") is not None:
        aw["carina_slice"] = int(aw["carina_slice"] + lo[sup])


def to_label_volume(ct: Volume, masks: dict[str, np.ndarray], name: str = "segmentation",
                    meta: dict | None = None) -> Volume:
    """Paint masks into one uint8 label Volume (later names in the painting order win)."""
    arr = np.zeros(ct.shape, np.uint8)
    labels = {}
    names = [n for n in _PAINT if n in masks] + [n for n in masks if n not in _PAINT]
    for v, n in enumerate(names, start=1):
        m = masks[n]
        if m is None or not m.any():
            continue
        arr[m] = v
        labels[v] = n
    # drop labels fully painted over
    present = set(np.unique(arr).tolist())
    labels = {v: n for v, n in labels.items() if v in present}
    vol = Volume(arr, ct.ijk_to_ras.copy(), name, labels, scanner_coordinates=ct.scanner_coordinates)
    vol.meta = dict(meta or {})
    return vol


def segment(ct: Volume, structures=DEFAULT_STRUCTURES, progress=None,
            organs: dict[str, np.ndarray] | None = None, lungs_optional: bool = False) -> Volume:
    """One label Volume (uint8, labels named per `imagio.anatomy`) of the requested structures
    (``lungs_optional``: see :func:`segment_masks`)."""
    from ..outline_doubts import missed_record, structure_record

    masks, meta = segment_masks(ct, structures, progress, organs, lungs_optional)
    doubts = meta.pop("structure_doubts", {})
    missed = meta.pop("partly_missed", {})
    seg = to_label_volume(ct, masks, name=f"{ct.name or 'CT'} rules", meta=meta)
    # labels the rules could not tell from another structure keep that doubt in their file
    # (`outline_doubts.structure_record`), for the plans that read them (trial 79)
    names = set(seg.labels.values())
    seg.outline_doubts = {n: structure_record(may, [said], pieces) for n, (may, said, pieces) in doubts.items()
                          if n in names}
    # labels that may miss part of their structure say so in their file too (trial 100 F2)
    seg.outline_doubts.update({n: missed_record([said]) for n, said in missed.items()
                               if n in names})
    lv = lung_volumes(masks, seg)
    if lv:
        seg.meta["lung_volumes"] = lv
    from .sides import mirrored_sides_note

    sides = mirrored_sides_note(ct, masks)   # trial 80: a CT mirrored in storage, segmented, no word
    if sides:
        seg.meta.setdefault("warnings", []).append(f"sides: {sides}")
    return seg


def lung_volumes(masks: dict[str, np.ndarray], seg: Volume) -> dict:
    """Per lung label: ``whole_ml``, the lung with the vessels and emphysema inside it (what
    TotalSegmentator's lobe masks hold, and the ``lung_ml`` of the emphysema section), and
    ``label_ml``, what its label keeps in the map: a label map holds one label per voxel, and
    the structures painted after the lungs (`_PAINT`: lung_vessels, emphysema, trachea,
    airways) take their voxels (``taken_by``, mL each). Empty without lung labels (trial 44,
    F9: the lung label's volume changed with the structure sets asked, unsaid)."""
    ml = seg.voxel_volume_ml
    out = {}
    for lung in ("lung_left", "lung_right"):
        m = masks.get(lung)
        if m is None or not m.any():
            continue
        later = [n for n in _PAINT[_PAINT.index(lung) + 1:] if masks.get(n) is not None]
        codes = {n: v for v, n in seg.labels.items()}
        kept = seg.array[m]
        out[lung] = {"whole_ml": round(float(m.sum()) * ml, 2),
                     "label_ml": round(float((kept == codes.get(lung, -1)).sum()) * ml, 2),
                     "taken_by": {n: round(float((kept == codes[n]).sum()) * ml, 2)
                                  for n in later if n in codes and (kept == codes[n]).any()}}
    if out:
        out["note"] = ("whole_ml: the lung with its vessels and emphysema (as TotalSegmentator's "
                       "lobes and the emphysema section's lung_ml); label_ml: its voxels in the "
                       "label map and in 'structures' (one label per voxel: taken_by lists the "
                       "structures painted over it)")
    return out


def segment_demo(ct_volume: Volume, progress=None) -> Volume:
    """Segment the phantom CT with the rules (not its ground truth) for `imagio demo`:
    body, bones, lungs, airways and the lung vessels."""
    return segment(ct_volume, ("body", "bones", "lungs", "airways"), progress)


def piece_spheres(ct: Volume, mask: np.ndarray) -> list[list[float]]:
    """[[R, A, S, radius], ...] (mm, world RAS): per 26-connected piece of ``mask`` (bool [k, j, i]
    on ``ct``'s grid), its centroid and the largest distance of its voxel centres from it plus half
    a voxel diagonal: a sphere that holds the piece (where a structure's doubt lies,
    `outline_doubts.structure_record`)."""
    from .common import components

    lab, n, _ = components(mask, connectivity=26)
    if not n:
        return []
    idx = np.argwhere(lab > 0)
    pts = ct.kji_to_world(idx.astype(float))
    v = lab[tuple(idx.T)]
    cnt = np.bincount(v, minlength=n + 1).astype(float)
    centre = np.stack([np.bincount(v, pts[:, d], minlength=n + 1) for d in range(3)], 1) / np.maximum(cnt, 1)[:, None]
    dist = np.linalg.norm(pts - centre[v], axis=1)
    far = np.zeros(n + 1)
    np.maximum.at(far, v, dist)
    half = 0.5 * float(np.linalg.norm(ct.spacing))
    return [[round(float(x), 1) for x in centre[c]] + [round(float(far[c] + half), 1)] for c in range(1, n + 1)]
