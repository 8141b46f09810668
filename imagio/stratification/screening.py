"""Stratification of one screening-detected lung nodule: Lung-RADS v2022, Brock, Mayo.

Each model either answers or refuses *with its reason*; nothing here raises for a nodule the
models cannot judge (a mass, a calcified nodule, missing patient data). Every answer and refusal
carries the model's source. Suggestions for the reader, never decisions.

Rules (sources in ``imagio/data/nodule_risk_models.json``, ``imagio/data/lungrads_v2022.json``):

* a lesion larger than 30 mm is a mass, not a nodule (Fleischner glossary, Hansell DM et al.,
  Radiology 2008;246:697-722): Brock and Mayo (built on nodules, Mayo on 4-30 mm) are refused;
  Lung-RADS puts a solid lesion >= 15 mm in 4B (and 4X when it has additional features of
  malignancy, which a reader judges);
* a calcified nodule with a benign pattern is Lung-RADS 1 and outside the malignancy models'
  population (PanCan excluded calcified nodules from risk estimation: McWilliams 2013);
* a perifissural / juxtapleural solid nodule < 10 mm mean diameter with smooth margins and an
  oval, lentiform or triangular shape is Lung-RADS 2 (Lung-RADS v2022 category 2 descriptor);
* Brock needs age; Mayo needs age and smoking history: without them the model is refused with
  that reason, not filled with a default; Brock without sex is the range over female and male,
  as over every other unknown input (new-user trial 51 L1).
"""

from __future__ import annotations

import itertools

from ..errors import InputError
from . import lungrads, nodule_risk

MASS_MM = 30.0  # Fleischner glossary: a nodule is <= 3 cm; above is a mass
# the type of a nodule whose outline holds calcium-or-contrast density on a contrast-enhanced CT
# (`detection.characterise.dense_on_contrast`): no type by density can be read (new-user trial 91 M2)
DENSE_TYPE = "dense_calcium_or_contrast"
# the type of an outline of fat's mean density (`detection.characterise.not_assessable` "fat_density"): no
# solid or sub-solid type (new-user trial 96 F7: lung1 #4, -71 HU, typed "solid" while not assessable)
FAT_TYPE = "fat"
# types outside the malignancy models and Lung-RADS's size table: calcium (a benign pattern), or on a
# contrast CT calcium or iodinated contrast (`calcified_reason`)
CALCIUM_TYPES = ("calcified", DENSE_TYPE)
# the one display name of each nodule type (`detection.NODULE_TYPES`, DENSE_TYPE, lesion subtypes): the
# report's table, its pictures' titles, warnings; files (CSV, JSON, markups) keep the type's code
TYPE_WORDS = {"solid": "solid", "part_solid": "part-solid", "ground_glass": "ground-glass", "nonsolid": "ground-glass",
              "calcified": "calcified", "perifissural": "perifissural", "unknown": "unknown",
              DENSE_TYPE: "dense (calcium or contrast)", FAT_TYPE: "fat attenuation"}


def type_words(typ: str) -> str:
    """A nodule type code in words (``TYPE_WORDS``; an unlisted code with its underscores as hyphens)."""
    return TYPE_WORDS.get(typ, str(typ).replace("_", "-"))


PERIFISSURAL_MAX_MM = 10.0  # Lung-RADS v2022 category 2: juxtapleural nodule < 10 mm mean diameter


def _refuse(model: str, reason: str, source: str = "", code: str | None = None) -> dict:
    """A model's refusal with its reason in words; ``code`` (Lung-RADS: one of ``NO_CATEGORY``) names
    the rule that refused, for counts of the nodules left without a category."""
    return {"model": model, "refused": reason, **({"source": source} if source else {}),
            **({"no_category": code} if code else {})}


# why a characterised nodule has no Lung-RADS category (`lung_rads`'s refusals, their ``no_category``):
# the rule's code and its words, in the order `lung_rads` applies them
NO_CATEGORY = {
    "not_assessable": "not assessable: the outline measures no nodule (fat density, a concavity of the lung "
                      "outline clipped to its sphere, or a size withheld: leaked or click-dependent)",
    "not_segmented": "not segmented",
    "below_measurable": "below the smallest measurable size",
    "not_lung": "not touching the lung",
    "calcium_or_bone": "calcium density of uncertain size (a calcified nodule or bone)",
    "calcium_or_contrast": "calcium or iodinated contrast density on a contrast-enhanced CT (a calcified nodule "
                           "or a contrast-filled vessel)",
    "size_uncertain": "size a lower bound (outline clipped, part of a mass or cut by the scan's edge): a floor at most",
    "not_in_table": "type or size outside Lung-RADS's table",
}


def not_assessable_words(kind: str | None) -> str | None:
    """What a not-assessable outline (`lung_rads`'s ``not_assessable`` refusal) is, in a few words,
    by its ``kind`` ("fat_density", "outline_concavity", "size_withheld": set by
    `detection.characterise`), None for another or no kind. Fat: fat outside the lung, a
    fat-containing nodule, a benign feature (``lungrads_v2022.json`` ``benign_features``), or a
    nodule whose outline ran into the fat beside it, unmeasured: the one reason such a candidate
    leaves the scan not decided (new-user trial 68: the first two alone are Lung-RADS 1 and read as
    a contradiction of "not decided")."""
    return {"fat_density": "fat density: no lung nodule, a fat-containing nodule (a benign feature: Lung-RADS "
                           f"{lungrads.table()['benign_features']['category']}), or an outline run from a nodule "
                           "into fat (unmeasured)",
            "outline_concavity": "a concavity of the lung outline: no nodule's outline, not measured",
            "size_withheld": "size withheld: the outline leaked or depends on the click, not measured"}.get(kind)


def smallest_measurable_mm(in_plane_voxel_mm: float | None = None) -> float:
    """Smallest mean diameter (mm) that is measured and categorised: the larger of the 3 mm
    micronodule limit and two voxels of the axial section (``in_plane_voxel_mm``, the larger
    in-plane spacing; None: the 3 mm limit only). Sources: ``smallest_measured`` in
    ``imagio/data/lungrads_v2022.json`` (Bankier 2017; sampling theorem)."""
    m = lungrads.table()["smallest_measured"]
    return float(max(m["mm"], m["voxels"] * in_plane_voxel_mm if in_plane_voxel_mm else 0.0))


def not_measurable(nodule: dict) -> str | None:
    """The reason why ``nodule``'s size is too small to categorise, or None. Uses its
    ``smallest_measurable_mm`` when given (set from the scan's voxels by the detector's
    characterisation), else the 3 mm micronodule limit."""
    size = nodule.get("mean_diameter_mm")
    if size is None or not size > 0:
        return None
    lim = nodule.get("smallest_measurable_mm") or smallest_measurable_mm()
    if size < lim:
        m = lungrads.table()["smallest_measured"]
        # the limit that applies is named (trial 52: "3.0 mm is below ..., 6.0 mm (micronodules < 3 mm ...)")
        why = (f"micronodules < {m['mm']:g} mm are not measured, Fleischner Society / Bankier 2017" if lim <= m["mm"]
               else f"{m['voxels']:g} in-plane voxels of {lim / m['voxels']:.1f} mm on this scan: a smaller outline is "
                    "not resolved, sampling theorem")
        return (f"mean diameter {size:.1f} mm is below the smallest measurable size, {lim:.1f} mm "
                f"({why}): no category or risk; a measured "
                "outline this small may be noise, a vessel section or a mis-seeded segmentation: "
                "read it on the images")
    return None


def calcified_reason(nodule: dict) -> str:
    """Why a nodule typed calcified (or `DENSE_TYPE`) is outside the malignancy models (Brock,
    Mayo): a benign pattern, or on a contrast-enhanced CT (``contrast_ct``, set by
    `detection.characterise`) density that calcium and iodinated contrast share (a contrast-filled
    vessel reads as calcium: new-user trial 90 M: the chest CTA's hilar pulmonary artery typed a
    10 mm calcified nodule; trial 91 M2: a 584 HU lung-vessel dot typed part-solid)."""
    if nodule.get("contrast_ct") or nodule.get("type") == DENSE_TYPE:
        return ("calcium or iodinated contrast density on a contrast-enhanced CT (a calcified nodule or a "
                "contrast-filled vessel): read it on the images")
    return "calcified nodule: benign pattern, outside the model's population"


def lung_rads(nodule: dict) -> dict:
    """Lung-RADS v2022 baseline category of ``nodule`` (keys: type, mean_diameter_mm,
    solid_component_mm; ``touches_lung`` False: refused, not a lung nodule; a mean diameter
    below :func:`not_measurable`'s limit: refused; ``not_assessable`` (a reason): refused with it and
    no floor). Never raises: an impossible input gives {"refused": reason}."""
    t = nodule.get("type")
    size = nodule.get("mean_diameter_mm")
    src = lungrads.table()["source"]
    if nodule.get("not_assessable"):   # trials 53/54 M4: no category, not even a floor, from such an outline
        return {**_refuse("lung_rads", f"not assessable: {nodule['not_assessable']}", src, "not_assessable"),
                "category_at_least": None}
    if size is None or not size > 0:
        return _refuse("lung_rads", "no measured mean diameter (segmentation failed)", src, "not_segmented")
    small = not_measurable(nodule)
    if small:
        return _refuse("lung_rads", small, src, "below_measurable")
    if nodule.get("touches_lung") is False:   # Lung-RADS categorises lung nodules only
        return _refuse("lung_rads", "the lesion does not touch the lung: not a lung nodule (chest wall, "
                                    "mediastinum, diaphragm or abdomen at the scan's edge); read it apart", src,
                       "not_lung")
    if t == DENSE_TYPE or (t == "calcified" and nodule.get("contrast_ct")):
        # benign calcium, or contrast in a vessel: not told apart (trial 91 M2: whatever the type by density)
        return {**_refuse("lung_rads", calcified_reason(nodule), src, "calcium_or_contrast"),
                "category_at_least": None}
    unsure = nodule.get("size_uncertain")
    if unsure:
        return _uncertain_category(nodule, unsure, src)
    if t == "calcified":
        return {"category": "1", "management": "Continue annual screening with LDCT in 12 months",
                "reason": "calcified nodule (benign calcification pattern: complete, central, "
                          "popcorn or concentric rings); confirm the pattern", "source": src,
                "size_mm": lungrads.rounded_mm(size)}
    if t == "perifissural":
        if size < PERIFISSURAL_MAX_MM:
            return {"category": "2", "management": lungrads.table()["management"]["2"],
                    "reason": "juxtapleural / perifissural solid nodule < 10 mm with smooth margins "
                              "and an oval, lentiform or triangular shape (Lung-RADS v2022 "
                              "category 2); confirm the shape and margins",
                    "source": src, "size_mm": lungrads.rounded_mm(size)}
        t = "solid"
    kind = {"ground_glass": "nonsolid"}.get(t, t)
    if kind not in ("solid", "part_solid", "nonsolid"):
        return _refuse("lung_rads", f"nodule type {t!r} not assessed", src, "not_in_table")
    try:
        # the cut within the measurement's own uncertainty: one in-plane pixel (trial 99 F5)
        r = lungrads.category(kind, size, nodule.get("solid_component_mm") or 0.0,
                              uncertainty_mm=nodule.get("in_plane_mm"))
    except InputError as e:
        return _refuse("lung_rads", str(e), src, "not_in_table")
    # the volumetric category beside the diameter's (Lung-RADS v2022 gives both; trial 96 F3), with the
    # volume's partial-volume range where the characterisation gives one (sections > 1.5 mm)
    r = lungrads.with_volume(r, kind, nodule.get("volume_ml"), nodule.get("volume_border_range_ml"))
    other = _other_type(nodule, kind, size)
    if other:
        r["if_other_type"] = other
    if size > MASS_MM:
        r["note"] = (f"{size:.1f} mm: a mass (> 30 mm, Fleischner glossary). Lung-RADS 4X applies "
                     "when it has additional features of malignancy (spiculation, lymphadenopathy, "
                     "metastases): a reader's judgement")
    return r


def _other_type(nodule: dict, kind: str, size: float) -> dict | None:
    """The category under the other plausible type when the characterisation flags the type as
    uncertain (``nodule["type_alternative"]`` {"type", "solid_component_mm"}, set by
    `detection.characterise.nodule_type`: sub-solid typing on sections thicker than 1.5 mm, Bankier
    2017; a solid typing whose sub-solid rim was read as partial volume): {"typed", "type",
    "category", "reason"} when that category differs from the typed one (ACR Lung-RADS v2022 grades
    by type, so with the type uncertain the reader must know both; trial 65 M3: lung1 #7, part-solid
    15.2 mm with a 7.4 mm solid component, 4A, is 4B as solid), else None."""
    alt = nodule.get("type_alternative") or {}
    t2 = {"ground_glass": "nonsolid", "perifissural": "solid"}.get(alt.get("type"), alt.get("type"))
    if t2 not in ("solid", "part_solid", "nonsolid") or t2 == kind:
        return None
    try:
        mine = lungrads.category(kind, size, nodule.get("solid_component_mm") or 0.0, _cut=False)
        r = lungrads.category(t2, size, alt.get("solid_component_mm") or 0.0, _cut=False)
    except InputError:
        return None
    if r["category"] == mine["category"]:
        return None
    return {"typed": kind, "type": t2, "category": r["category"], "reason": r["reason"]}


def type_categories(lr: dict) -> list[tuple[str, str | None]]:
    """Every category ``lr`` (`lung_rads`) may take, with its type condition: [(category as typed,
    "as part-solid"), (category under the other plausible type, "if solid")] when the type is
    uncertain and the two differ ("if_other_type"), [(category, None)] otherwise, [] without a
    category nor a floor. A floor (``category_at_least``: the size a lower bound) counts as its
    category; its entries are floors too (the caller reads ``lr["category"]`` to know which).
    One definition for the headline's conditions (`detection.pipeline.if_a_nodule`), the review
    list and the tables (new-user trial 66 M1: lung1 #3, "3 as part-solid, 4A if solid", was named
    nowhere in the headline)."""
    cat = lr.get("category") or lr.get("category_at_least") or ""
    if not cat:
        return []
    o = lr.get("if_other_type")
    if not o:
        return [(cat, None)]
    return [(cat, f"as {TYPE_WORDS[o['typed']]}"), (o["category"], f"if {TYPE_WORDS[o['type']]}")]


def type_dependent(lr: dict) -> tuple[str, str | None]:
    """(the highest category ``lr`` (`lung_rads`) may reach, its type condition): ("4B", "if solid")
    when the category under the other plausible type ("if_other_type") is higher, ("4B", "as
    part-solid") when the measured category holds only as typed, (category, None) otherwise; ("",
    None) without a category nor a floor (`type_categories`, its highest)."""
    cs = type_categories(lr)
    return max(cs, key=lambda c: lungrads.CATEGORY_ORDER.index(c[0])) if cs else ("", None)


def category_words(lr: dict) -> str:
    """``lr``'s category in words with every category its type allows (`type_categories`): "4A",
    "4A as part-solid, 4B if solid", ">= 3 as part-solid, >= 4A if solid" (a floor), "" without a
    category nor a floor. A category whose size is a lower bound (``size_lower_bound``: a clipped
    solid nodule already at 4B) is a floor too: ">= 4B" (new-user trial 86 L3: "4B" alone). The one
    wording of the review list (`detection.report.for_review`) and the tables' note
    (`detection.outputs.lung_rads_note`)."""
    ge = "" if lr.get("category") and not lr.get("size_lower_bound") else ">= "
    return ", ".join(f"{ge}{c}" + (f" {w}" if w else "") for c, w in type_categories(lr))


def size_cut_words(lr: dict) -> str:
    """"on the 15 mm mean diameter cut: may be 4A" when the category of ``lr`` (`lung_rads`) sits
    at a size cut (``at_size_cut``, `stratification.lungrads.at_size_cut`), with the volume's
    category when known ("; volume 1761 mm3 (partial volume: 982-3036 mm3): 4A (4A to 4B over that
    range)", `volume_words`); "volume within its uncertainty of the 1767 mm3 cut: ..., may be 4B"
    when the volume alone puts it at a cut (`stratification.lungrads.with_volume`); else "". The one
    wording of the nodule tables' note (`detection.outputs.lung_rads_note`), the report's
    Lung-RADS cell and its review list (`detection.report.for_review`; trial 89 L: lung1 #1 read
    "may be 4A" in the tables and a plain "4B" in the review list)."""
    cut = lr.get("at_size_cut")
    if not cut or not lr.get("category"):
        return ""
    if cut["what"] == "volume":
        return (f"volume within its uncertainty of the {cut['cut_mm3']} mm3 cut: {volume_words(lr)}, "
                f"may be {cut['other_category']}")
    vol = f"; {volume_words(lr)}" if lr.get("volume") else ""
    where = cut["side"] if cut.get("distance_mm", 0.0) <= 0.1 else f"{cut['distance_mm']:g} mm {cut['side']}"
    return f"{where} the {cut['cut_mm']:g} mm {cut['what']} cut: may be {cut['other_category']}{vol}"


def volume_words(lr: dict) -> str:
    """"volume 1761 mm3 (partial volume: 981-3035 mm3): 4A to 4B" of ``lr["volume"]``
    (`stratification.lungrads.with_volume`), "" without one: the volumetric category beside the
    diameter's (new-user trial 96 F3)."""
    v = lr.get("volume")
    if not v:
        return ""
    cats = sorted({v["category"], *(v.get("range_categories") or ())}, key=lungrads.CATEGORY_ORDER.index)
    rng = f" (partial volume: {v['range_mm3'][0]}-{v['range_mm3'][1]} mm3)" if v.get("range_mm3") else ""
    return f"volume {v['volume_mm3']} mm3{rng}: {v['category']}" + (
        f" ({' to '.join((cats[0], cats[-1]))} over that range)" if len(cats) > 1 else "")


def shown_category(lr: dict, empty: str = "") -> str:
    """The category cell of ``lr`` (`lung_rads`) in the nodule tables: every category its type
    allows in words (`category_words`, "3 as part-solid, 4A if solid") when the type is uncertain
    and the other type's category differs, never the typed one alone as if it were definite
    (new-user trial 82 #5: Lung_Dx-A0001 #5 read "3" while its note said 4A if solid, and the
    floors beside it read ""); the category otherwise; ``empty`` without one (a floor's cell)."""
    if lr.get("category") and lr.get("if_other_type"):
        return category_words(lr)
    return lr.get("category") or empty


def type_uncertain(lr: dict) -> bool:
    """Whether the category of ``lr`` (`lung_rads`), or its floor, depends on the nodule's
    uncertain type (``if_other_type``: the other plausible type's category differs)."""
    return bool(lr.get("if_other_type")) and bool(lr.get("category") or lr.get("category_at_least"))


def _uncertain_category(nodule: dict, reason: str, src: str) -> dict:
    """Lung-RADS of a nodule whose size is a lower bound (outline clipped) or unreliable (cut by
    the scan's edge): the category its measured size implies as a solid nodule is a floor
    (``category_at_least``; a perifissural one measured under 10 mm: 2, the category it keeps
    while its true size stays under 10 mm). A clipped solid nodule whose floor is already 4B (the highest size
    category) is 4B; anything else, and every nodule cut by the scan's edge (its type is
    uncertain too), is refused with the reason; so is a calcified one (calcified nodule or bone),
    without a floor."""
    size = float(nodule["mean_diameter_mm"])
    if nodule.get("type") == "calcified":
        # calcium density whose outline ran on (or out of the scan): a calcified nodule (benign
        # pattern, category 1) or bone (a rib, a vertebra: new-user trial 4, LIDC-0003, 430-500 HU
        # graded "at least 4B" as a solid nodule). Neither a floor nor a category is honest.
        return {**_refuse("lung_rads", f"{reason}: calcium density whose size is uncertain: a calcified "
                                       "nodule or bone (rib, vertebra, costal cartilage); read it on the images",
                          src, "calcium_or_bone"), "category_at_least": None}
    t = {"ground_glass": "nonsolid", "perifissural": "solid"}.get(nodule.get("type"), nodule.get("type"))
    try:
        floor = lungrads.category("solid" if t not in ("part_solid", "nonsolid") else t, size,
                                  nodule.get("solid_component_mm") or 0.0)["category"]
    except InputError:
        floor = None
    other = None
    if nodule.get("type") == "perifissural" and size < PERIFISSURAL_MAX_MM:
        floor = "2"   # a true size still under 10 mm keeps it category 2 (trial 45 L3: said "4A")
    elif floor:
        # the floor under the other plausible type, as a category's (trial 66 M1: lung1 #6, a clipped
        # part-solid 8.9 mm with a 5.9 mm solid part, floor 3, is at least 4A as solid)
        other = _other_type(nodule, "solid" if t not in ("part_solid", "nonsolid") else t, size)
    mass = f"; {size:.1f} mm already: a mass (> 30 mm), Lung-RADS 4B/4X territory" if size > MASS_MM else ""
    if floor == "4B" and t == "solid" and "scan's edge" not in reason:
        return {"category": "4B", "management": lungrads.table()["management"]["4B"],
                "reason": f"at least 4B: {reason}{mass}", "size_lower_bound": True,
                "category_at_least": "4B", "source": src, "size_mm": lungrads.rounded_mm(size)}
    out = _refuse("lung_rads", f"{reason}: no category (the measured {size:.1f} mm would give "
                  f"{floor or 'none'}, a floor only){mass}; read it on the images", src, "size_uncertain")
    out["category_at_least"] = floor
    if other:
        out["if_other_type"] = other   # its "category" is a floor too
    return out


def model_size(model: str, nodule: dict) -> float | None:
    """The size (mm) of ``nodule`` that ``model`` ("brock", "mayo") was fitted on, or None when
    it was not measured: the maximum diameter on an axial section, not the 3-D long axis
    (`nodule_risk.size_measure`, with its sources)."""
    return nodule.get(nodule_risk.size_measure(model)["nodule_key"])


def brock(nodule: dict, patient: dict, n_nodules: int | tuple[int, int], emphysema: bool | None,
          upper_lobe: bool | None) -> dict:
    """Brock (PanCan model 2b) probability, or a refusal with its reason.

    patient: {"age": years, "sex": "female"/"male" or None, "family_history": bool or None}; sex,
    emphysema / upper_lobe (and family_history): None when unknown (then the probability is given as the range over both values,
    with a note). Spiculation is not assessed by IMAGIO: the range over it is given too.
    n_nodules: the number of nodules the reader counts on the scan, or a range (lo, hi) when it
    is not known (automatic detection: candidates are not confirmed nodules); the model's risk
    falls with every nodule counted (McWilliams et al., NEJM 2013, table 2: -0.0824 per
    nodule), so the range's upper bound is the risk at ``lo`` and the probability is given as
    a range over the count, with a note.
    """
    src = nodule_risk.coefficients()["brock_full_with_spiculation"]["source"]
    size = model_size("brock", nodule)
    t = nodule.get("type")
    if patient.get("age") is None:
        return _refuse("brock", "patient age is needed (imagio detect --age)", src)
    if size is None:
        return _refuse("brock", "no measured nodule size (segmentation failed)", src)
    extent = max(size, nodule.get("long_axis_mm") or 0.0)   # a mass by its largest extent
    if extent > MASS_MM:
        return _refuse("brock", f"{extent:.1f} mm is a mass (> 30 mm, Fleischner glossary), outside "
                                "the nodules Brock was built on; Lung-RADS 4B/4X territory", src)
    if t in CALCIUM_TYPES:
        return _refuse("brock", calcified_reason(nodule), src)
    kind = {"ground_glass": "nonsolid", "perifissural": "solid"}.get(t, t)
    if kind not in nodule_risk.NODULE_TYPES:
        return _refuse("brock", f"nodule type {t!r} not assessed", src)
    family = patient.get("family_history")
    # sex not given: the range over female and male, as over every other unknown (new-user trial 51 L1)
    female = None if patient.get("sex") is None else patient["sex"] == "female"
    unknown = {"sex": female, "family_history": family, "emphysema": emphysema, "upper_lobe": upper_lobe}
    counts = sorted({max(1, int(c)) for c in (n_nodules if isinstance(n_nodules, tuple) else (n_nodules,))})
    values = []
    for w, f, e, u in itertools.product(*([bool(v)] if v is not None else [False, True] for v in unknown.values())):
        for c in counts:   # the risk is monotonic in the count: its ends bound it
            for s in (False, True):
                try:
                    r = nodule_risk.brock(patient["age"], w, size, kind, f, e, u, c, s)
                except InputError as err:
                    return _refuse("brock", str(err), src)
                values.append((s, r.probability))
    p0 = [p for s, p in values if not s]
    p1 = [p for s, p in values if s]
    out = {"model": "brock", "probability": min(p0), "probability_range": [min(p0), max(p1)],
           "source": src, "notes": ["upper bound: with spiculation (not assessed by IMAGIO)"]}
    _say_unknown(out, unknown)
    if len(counts) > 1:
        out["nodule_count_range"] = [counts[0], counts[-1]]
        out["notes"].append(f"nodule count not confirmed (automatic detection): range over {counts[0]}.."
                            f"{counts[-1]} nodules; the risk falls with each nodule counted, the upper "
                            f"bound is at {counts[0]}")
    if max(p0) > min(p0):
        out["probability"] = None
        out["notes"].append("the probability depends on the unknown inputs: see probability_range")
    return out


def mayo(nodule: dict, patient: dict, upper_lobe: bool | None) -> dict:
    """Mayo Clinic probability, or a refusal with its reason (needs age and smoking history)."""
    src = nodule_risk.coefficients()["mayo"]["source"]
    size = model_size("mayo", nodule)
    missing = [w for k, w in (("age", "patient age (--age)"),
                              ("smoker", "smoking history (--smoker/--never-smoker)")) if patient.get(k) is None]
    if missing:   # new-user trial 90 L: "age and smoking history" was said with the age given
        return _refuse("mayo", " and ".join(missing) + (" are" if len(missing) > 1 else " is")
                       + " needed (imagio detect)", src)
    if size is None:
        return _refuse("mayo", "no measured nodule size (segmentation failed)", src)
    if nodule.get("type") in CALCIUM_TYPES:
        return _refuse("mayo", calcified_reason(nodule), src)
    unknown = {"extrathoracic_cancer": patient.get("extrathoracic_cancer"), "upper_lobe": upper_lobe}
    ps = []
    for x, u in itertools.product(*([bool(v)] if v is not None else [False, True] for v in unknown.values())):
        for s in (False, True):
            try:
                ps.append(nodule_risk.mayo(patient["age"], size, bool(patient["smoker"]), x, s, u).probability)
            except InputError as err:
                return _refuse("mayo", str(err), src)
    out = {"model": "mayo", "probability_range": [min(ps), max(ps)], "source": src,
           "notes": ["built for a solitary nodule", "range over spiculation (not assessed)"]}
    return _say_unknown(out, unknown)


# the patient's yes/no facts a reader states (imagio detect --family-history and its negative, ..., a cohort CSV column)
PATIENT_FACTS = ("family_history", "extrathoracic_cancer")


def _say_unknown(out: dict, factors: dict) -> dict:
    """``out`` with a note and ``unknown`` (names) for each of ``factors`` that is None: the
    probability is the range over both of its values (new-user trial 30, M4: detect read a family
    history or extrathoracic cancer not given as absent, the lowest risk, without a word)."""
    from .commands import yes_or_no

    unknown = [k for k, v in factors.items() if v is None]
    for k in unknown:   # the options that state it: `imagio detect`'s (the lobe is not one)
        how = f" ({yes_or_no([k])})" if k in PATIENT_FACTS + ("emphysema", "sex") else ""
        out["notes"].append(f"{k.replace('_', ' ')} unknown: range over "
                            f"{'female and male' if k == 'sex' else 'both values'}{how}")
    if unknown:
        out["unknown"] = unknown
    return out


def stratify(nodule: dict, patient: dict | None = None, n_nodules: int | tuple[int, int] = 1,
             emphysema: bool | None = None, upper_lobe: bool | None = None) -> dict:
    """{"lung_rads": ..., "brock": ..., "mayo": ...} for one characterised nodule; each entry is
    an answer or {"refused": reason}. ``nodule``: keys type (solid, part_solid, ground_glass,
    calcified, perifissural), axial_long_axis_mm (the size Brock and Mayo read: `model_size`),
    long_axis_mm (3-D), mean_diameter_mm, solid_component_mm (mm), optional
    smallest_measurable_mm (below it every model is refused, :func:`not_measurable`), optional
    size_uncertain (a reason: the size is a lower bound or cut by the scan's edge; Lung-RADS
    gives only a floor, ``category_at_least``, or 4B when the floor is 4B; Brock and Mayo refused),
    optional not_assessable (a reason: the outline measures no nodule, e.g. fat density or a
    concavity of the lung outline; every model refused with it, no Lung-RADS floor either)."""
    patient = patient or {}
    if nodule.get("not_assessable"):   # the outline measures no nodule: no size for any model
        why = f"not assessable: {nodule['not_assessable']}"
        return {"lung_rads": lung_rads(nodule), "brock": _refuse("brock", why), "mayo": _refuse("mayo", why)}
    small = not_measurable(nodule)
    if small:  # too small to measure: no size-driven model is given one
        return {"lung_rads": lung_rads(nodule), "brock": _refuse("brock", small),
                "mayo": _refuse("mayo", small)}
    unsure = nodule.get("size_uncertain")
    if unsure:  # a lower bound of the size gives a lower bound of the risk only: refused
        why = f"{unsure}; the models need the nodule's size"
        return {"lung_rads": lung_rads(nodule), "brock": _refuse("brock", why),
                "mayo": _refuse("mayo", why)}
    return {"lung_rads": lung_rads(nodule),
            "brock": brock(nodule, patient, n_nodules, emphysema, upper_lobe),
            "mayo": mayo(nodule, patient, upper_lobe)}


def input_entry(value, unit: str, how: str, note: str | None = None) -> dict:
    """One input of the risk models as an output records it: its value, its unit ("" for a
    yes/no or a category) and how IMAGIO has it: "given" (stated by the user), "measured" (on
    the CT), "not measured" (segmentation failed), "assumed" (a default, said), "unknown" (not
    given: the answer is the range over it), "not assessed" (IMAGIO does not read it: the
    range over it) or "not applicable"."""
    return {"value": value, "unit": unit, "how": how, **({"note": note} if note else {})}


def fact(value, unit: str = "", how: str = "given") -> dict:
    """`input_entry` of a patient's fact: ``how`` when it has a value, else "unknown"."""
    return input_entry(value, unit, "unknown" if value is None else how)


def detected_inputs(nodule: dict, patient: dict, n_nodules: tuple[int, int], emphysema: dict,
                    upper_lobe: bool | None) -> dict:
    """The inputs `stratify` read for a nodule that `imagio detect` characterised, each with its
    unit and how it was had (`input_entry`): the patient's facts as given, the nodule's sizes,
    type and lobe as measured, the emphysema as given or measured (``emphysema``: {"value",
    "how", "note"}), the nodule count assumed (candidates are not confirmed nodules), the
    spiculation not assessed."""
    size = nodule_risk.size_measure("brock")

    def measured(v, unit: str, note: str | None = None) -> dict:
        return input_entry(v, unit, "not measured" if v is None else "measured", note)

    return {
        "age": fact(patient.get("age"), "years"),
        "sex": fact(patient.get("sex")),
        **{k: fact(patient.get(k)) for k in ("smoker",) + PATIENT_FACTS},
        "emphysema": input_entry(emphysema.get("value"), "", emphysema["how"], emphysema.get("note")),
        "upper_lobe": input_entry(upper_lobe, "", "unknown" if upper_lobe is None else "measured",
                                  nodule.get("lobe") or "no lobe labels"),
        "size_mm": measured(model_size("brock", nodule), size["unit"],
                             f"Brock and Mayo: {size['definition']}"),
        "long_axis_3d_mm": measured(nodule.get("long_axis_mm"), "mm",
                                     "3-D long axis: the mass limit (> 30 mm) only"),
        "mean_diameter_mm": measured(nodule.get("mean_diameter_mm"), "mm",
                                      "Lung-RADS: (axial long + perpendicular short axis) / 2"),
        "solid_component_mm": measured(nodule.get("solid_component_mm"), "mm"),
        "type": measured(nodule.get("type"), ""),
        "nodule_count": input_entry(list(n_nodules), "nodules", "assumed",
                                    "candidates are not confirmed nodules: the range from 1 to those characterised"),
        "spiculation": input_entry(None, "", "not assessed"),
    }


def risk_key(strat: dict) -> float:
    """A sort key for a nodule table (higher = more urgent, the most actionable first): the
    Lung-RADS category first (its integer part: 1 or not given 0, 2 1, 3 2, 4A 3, 4B 4, 4X 5;
    a category refused with a floor, ``category_at_least``, ranks at its floor), then within a
    category the Brock upper bound (the fraction: half of it; 0 when Brock is refused, so the
    caller's order, the detector's score, decides). Lung-RADS is the management category; a
    Brock range over unknown patient facts must not put a Lung-RADS 3 before a 4B mass whose
    Brock is refused (trial 44, F8)."""
    rank = {"1": 0, "2": 1, "3": 2, "4A": 3, "4B": 4, "4X": 5}
    b = strat.get("brock", {})
    lrd = strat.get("lung_rads", {})
    lr = rank.get(lrd.get("category") or lrd.get("category_at_least"), 0)
    return lr + (0.5 * float(b["probability_range"][1]) if "probability_range" in b else 0.0)
