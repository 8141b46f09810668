"""Lung-RADS v2022 category of a screening-detected nodule (``imagio/data/lungrads_v2022.json``)."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from ..errors import InputError

# categories from least to most suspicious (ACR Lung-RADS v2022; 0, incomplete, and S are not ranked)
CATEGORY_ORDER = ("1", "2", "3", "4A", "4B", "4X")
# the highest category size and type alone give (Lung-RADS v2022, ACR 2022): 4X is the reader's, for
# category 3/4 nodules with additional features that raise suspicion; a size that is a lower
# bound cannot take a nodule above it
SIZE_TOP_CATEGORY = "4B"


@lru_cache(maxsize=1)
def table() -> dict:
    return json.loads(resources.files("imagio.data").joinpath("lungrads_v2022.json").read_text(encoding="utf-8"))


def population_note(age_years: float | None, smoker: bool | None = None) -> tuple[str, bool]:
    """(note, management withheld) for a patient outside the population the Lung-RADS categories
    are defined for (``screening_population`` of lungrads_v2022.json: screening of smokers at 50-80
    years, USPSTF 2021; the Fleischner Society's incidental-nodule guideline from 35 years; below 35
    no adult nodule guideline, so no management): ``age_years`` outside 50-80, or ``smoker`` False
    (a never-smoker); or not known to be inside it (``age_years`` or ``smoker`` None: the
    categories then assume a screening-eligible patient, and the note says what was not given).
    ("", False) only for a smoker at 50-80 years (new-user trial 112 F5: a 10-year-old was given
    "LDCT in 3 months", a never-smoker 4B follow-up without a word; trial 113: a 65-year-old of
    unknown smoking history was given screening follow-up without a word)."""
    pop = table()["screening_population"]
    old_enough = age_years is None or pop["min_age"] <= age_years <= pop["max_age"]
    defined = (f"Lung-RADS is defined for lung cancer screening of smokers at {pop['min_age']}-{pop['max_age']} "
               "years (USPSTF 2021)")
    if old_enough and smoker is not False:
        unknown = [w for w, v in (("age", age_years), ("smoking history", smoker)) if v is None]
        if not unknown:
            return "", False
        return (f"{defined}; the patient's {' and '.join(unknown)} {'were' if len(unknown) > 1 else 'was'} not given, "
                "so the category and its management assume a screening patient: for an incidental nodule outside "
                "that population, the Fleischner Society 2017 guideline (MacMahon 2017) or the BTS 2015 guideline "
                "(--guideline bts_2015) applies"), False
    who = (f"at {age_years:g} years" if not old_enough else "in a never-smoker")
    head = f"{defined}; {who} this nodule is not a screening finding"
    if age_years is not None and age_years < pop["incidental_min_age"]:
        return (f"{head}, and no adult nodule guideline applies below {pop['incidental_min_age']} years (the "
                "Fleischner Society 2017 excludes them): the category is given for reference, its management is not"), True
    return (f"{head}: an incidental nodule is managed by the Fleischner Society 2017 guideline (MacMahon "
            "2017) or the BTS 2015 guideline (--guideline bts_2015); the category is given for reference"), False


def rounded_mm(value: float) -> float:
    """``value`` (mm) to one decimal, halves rounded up, as Lung-RADS v2022 prescribes for the
    mean diameter ("rounded to the nearest tenth of a millimetre"). Python's round() works on the
    binary float and rounds 14.95 down to 14.9 (new-user trial 19: a 14.95 mm solid nodule was 4A
    instead of 4B); the decimal text of the float is rounded instead. The step is
    ``size_cut.step_mm`` of ``lungrads_v2022.json``."""
    from decimal import ROUND_HALF_UP, Decimal

    step = Decimal(repr(float(table()["size_cut"]["step_mm"])))
    return float(Decimal(repr(float(value))).quantize(step, rounding=ROUND_HALF_UP))


def _band(bands, size, what: str = "mean diameter", why: list | None = None):
    """The category of the band [lo, hi) mm holding ``size``; with ``why`` (a list) the band is
    appended to it in words ("mean diameter 8 to < 15 mm")."""
    for lo, hi, cat in bands:
        if lo <= size < hi:
            if why is not None:
                why.append(f"{what} {'< ' + f'{hi:g}' if lo <= 0 else f'>= {lo:g}' if hi >= 1000 else f'{lo:g} to < {hi:g}'} mm")
            return cat
    raise InputError(f"size {size} mm is outside the Lung-RADS table")


def category(nodule_type: str, size_mm: float, solid_component_mm: float = 0.0,
             status: str = "baseline", _cut: bool = True, uncertainty_mm: float | None = None) -> dict:
    """Category and management (ACR Lung-RADS v2022, ``imagio/data/lungrads_v2022.json``).

    ``size_mm``: mean diameter (long + short axis) / 2 in mm, rounded to one decimal as Lung-RADS
    prescribes; ``solid_component_mm``: the solid component's mean diameter (part-solid only);
    ``status``: baseline, new or growing (for a part-solid nodule: its solid component is new or
    grows, which sets the category: 3 when new and < 6 mm in total, else 4A below a 4 mm solid
    component and 4B from 4 mm). Returns {category, management, source, size_mm,
    solid_component_mm}, and "at_size_cut" when the rounded mean diameter (or solid component)
    lies on a cut or one rounding step under it: {"what", "cut_mm", "side", "other_category" (the
    category across the cut), "pair", "note"} (`at_size_cut`; ``uncertainty_mm``: the
    measurement's own uncertainty, e.g. one in-plane pixel, within which a cut counts). Raises
    InputError for an invalid size, type or status."""
    if size_mm is None or size_mm <= 0 or size_mm > 300:
        raise InputError(f"nodule size {size_mm} mm is not a valid mean diameter")
    t = table()
    size = rounded_mm(size_mm)
    solid = rounded_mm(solid_component_mm or 0.0)
    if nodule_type not in ("solid", "part_solid", "nonsolid"):
        raise InputError(f"nodule type {nodule_type!r} is unknown; use solid, part_solid or nonsolid")
    why = []   # the rule that gave the category, in words (trial 52: 4B and ground-glass results had none)
    if status == "baseline":
        b = t["baseline"]
        if nodule_type == "solid":
            cat = _band(b["solid"], size, why=why)
        elif nodule_type == "nonsolid":
            cat = _band(b["nonsolid"], size, why=why)
        elif size < 6:
            cat = b["part_solid_total_below_6"]
            why.append("mean diameter < 6 mm in total")
        else:
            cat = _band(b["part_solid_by_solid_component"], solid, "mean diameter >= 6 mm, solid component", why)
    elif status in ("new", "growing"):
        n = t["new_or_growing"]
        if nodule_type == "nonsolid":
            cat = _band(n["nonsolid_new_or_growing"], size, why=why)
        elif nodule_type == "solid":
            cat = _band(n["solid_new" if status == "new" else "solid_growing"], size, why=why)
        elif status == "new" and size < 6:
            cat = n["part_solid_new_total_below_6"]
            why.append("mean diameter < 6 mm in total")
        else:   # part-solid: by its new or growing solid component (trial 10: was the solid bands)
            cat = _band(n["part_solid_new_or_growing_by_solid_component"], solid, f"{status} solid component", why)
    else:
        raise InputError(f"status {status!r} is unknown; use baseline, new or growing")
    word = {"solid": "solid", "nonsolid": "non-solid (ground-glass)", "part_solid": "part-solid"}[nodule_type]
    reason = (f"{word} nodule, {status}, mean diameter {size:g} mm"
              + (f", solid component {solid:g} mm" if nodule_type == "part_solid" else "")
              + f": Lung-RADS v2022 puts a {status} {word} nodule with {why[0]} in category {cat}")
    out = {"category": cat, "management": t["management"][cat], "reason": reason, "source": t["source"],
           # a solid component is measured for a part-solid nodule only (trial 60 L2: "0.0 mm" for a
           # 55 mm solid nodule read as a measurement)
           "size_mm": size, "solid_component_mm": solid if nodule_type == "part_solid" else None}
    cut = at_size_cut(nodule_type, size, solid, status, cat, uncertainty_mm) if _cut else None
    if cut:
        out["at_size_cut"] = cut
    return out


def at_size_cut(nodule_type: str, size: float, solid: float, status: str, cat: str,
                uncertainty_mm: float | None = None) -> dict | None:
    """Whether a category ``cat`` sits at a size cut: a cut lies between the mean diameter ``size``
    (or, for a part-solid nodule, the solid component ``solid``; both mm, already rounded) and that
    value moved by its uncertainty: one rounding step (``size_cut.step_mm`` of
    ``lungrads_v2022.json``), or ``uncertainty_mm`` when larger (the measurement's own: each end of a
    diameter measured on a pixel grid is uncertain by half a pixel, so the diameter by one pixel;
    new-user trial 99 F5: a 15.0 mm sphere on the 1.5 mm chest CTA measured 14.2 mm, 4A, with no
    word of 4B). Lung-RADS v2022 puts a value on the cut in the higher band, and the measurement's
    uncertainty (section thickness, pixel spacing) is far larger than the step, so the category
    across the cut is as likely (``size_cut``, with its sources). On the cut (new-user trial 63 L2:
    lung1's nodule (17.39 + 12.60) / 2 = 14.995 -> 15.0 mm read 4B, with no word that 14.9 mm would
    be 4A) and one step under it (trial 85 M2: the same nodule on a DICOM whose orientation alone
    was turned 20 degrees measured 14.9 mm and read 4A, with no word of 4B). Returns {"what": "mean
    diameter" | "solid component", "cut_mm", "side": "on" | "over" | "under", "distance_mm" (from
    the cut), "other_category" (across the cut), "pair" ("4A/4B": lower/higher), "note"} of the
    nearest cut found (on/over before under), or None."""
    step = float(table()["size_cut"]["step_mm"])
    u = max(step, round(float(uncertainty_mm or 0.0), 1))
    n_steps = int(round(u / step))
    best = None
    for sign in (-1, 1):   # a cut at or below the value (on / over), then above it (under)
        for what in ("mean diameter", "solid component"):
            if what == "solid component" and nodule_type != "part_solid":
                continue
            mm = size if what == "mean diameter" else solid
            for k in range(1, n_steps + 1):   # at most uncertainty / 0.1 mm table look-ups
                v = round(mm + sign * k * step, 1)
                s2, c2 = (v, solid) if what == "mean diameter" else (size, v)
                if s2 <= 0 or c2 < 0:
                    break
                try:
                    other = category(nodule_type, rounded_mm(s2), rounded_mm(c2), status, _cut=False)["category"]
                except InputError:   # beyond the table's sizes
                    break
                if other == cat:
                    continue
                cut_mm = round(mm - (k - 1) * step, 1) if sign < 0 else v
                dist = round(abs(mm - cut_mm), 1)
                if best is None or dist < best[0]:
                    best = (dist, what, mm, cut_mm, other, sign)
                break
        if best is not None and best[5] < 0 and best[0] == 0.0:
            break   # on the cut: nothing nearer
    if best is None:
        return None
    dist, what, mm, cut_mm, other, sign = best
    side = "on" if dist == 0.0 else ("over" if sign < 0 else "under")
    lo, hi = (other, cat) if sign < 0 else (cat, other)
    where = f"is on the {cut_mm:g} mm cut" if side == "on" else f"is {dist:g} mm {side} the {cut_mm:g} mm cut"
    rule = ("Lung-RADS v2022 rounds it to one decimal and puts a value on the cut in the higher category, but"
            if side == "on" else "Lung-RADS v2022 rounds it to one decimal, but")
    within = f", within {u:g} mm here" if dist > step else ""
    return {"what": what, "cut_mm": cut_mm, "side": side, "distance_mm": dist, "other_category": other,
            "pair": f"{lo}/{hi}",
            "note": f"{what} {mm:.1f} mm {where} between Lung-RADS {lo} and {hi}: {rule} a size measured on a "
                    f"voxel grid is uncertain by about a voxel (section thickness, pixel spacing{within}), so "
                    f"{other} is as likely; measure it on the images (lungrads_v2022.json size_cut: ACR "
                    "Lung-RADS v2022; Fleischner Society, Bankier 2017)"}


def volume_category(nodule_type: str, volume_mm3: float, status: str = "baseline") -> str | None:
    """The Lung-RADS v2022 category of a ``nodule_type`` nodule by its volume ``volume_mm3`` (mm3),
    from the volumetric bands ``volume_mm3`` of ``lungrads_v2022.json`` ('x to < y' mm3, the
    spheres of the diameter bands), or None where the table gives no volume (part-solid,
    ground-glass: banded by the solid component or by diameter only). ``status``: baseline, new
    or growing. Raises InputError for a volume <= 0."""
    if volume_mm3 is None or not volume_mm3 > 0:
        raise InputError(f"nodule volume {volume_mm3} mm3 is not a valid volume")
    t = table()["volume_mm3"]
    bands = (t["baseline"].get(nodule_type) if status == "baseline"
             else t["new_or_growing"].get(f"{nodule_type}_{status}"))
    if not bands:
        return None
    return _band(bands, round(float(volume_mm3)), "volume")


def with_volume(r: dict, nodule_type: str, volume_ml: float | None, range_ml=None,
                status: str = "baseline") -> dict:
    """``r`` (`category`'s result for the mean diameter) with the volumetric category beside it
    (new-user trial 96 F3: lung1's nodule, 15.0 mm mean diameter 4B on the cut, 1761 mm3 by its
    own outline 4A, headlined ">=4B"): ``r["volume"]`` = {"volume_mm3" (whole mm3, as Lung-RADS
    reports it), "category" (`volume_category`), "range_mm3" ([lo, hi] from ``range_ml``, the
    volume's partial-volume range in mL, `segmentation.measurements.border_volume_range_ml`, which
    `detection.characterise` gives on sections over 1.5 mm only, where Fleischner 2017 calls sizes
    approximate: on thinner ones it is a worst-case bound far wider than the measurement's error; or
    None), "range_categories" ([category of lo, of hi] or None)}. When the diameter's category,
    the volume's and those of its range are not all one, the nodule sits at a size cut: its
    ``at_size_cut`` (`at_size_cut`'s dict) gets "pair" spanning them all and the volume's words in
    its "note", or is made with "what": "volume", "side": "within", "cut_mm3" (the volumetric cut
    crossed). ``r`` unchanged where the table has no volume for the type or no volume is given."""
    if not volume_ml or not volume_ml > 0 or not r.get("category"):
        return r
    vol = round(float(volume_ml) * 1000.0)
    cat = volume_category(nodule_type, vol, status)
    if cat is None:
        return r
    rng = [round(float(v) * 1000.0) for v in range_ml] if range_ml else None
    rcats = [volume_category(nodule_type, max(v, 1), status) for v in rng] if rng else None
    r["volume"] = {"volume_mm3": vol, "category": cat, "range_mm3": rng, "range_categories": rcats}
    cut = r.get("at_size_cut")
    cats = {r["category"], cat, *(rcats or ()), *([cut["other_category"]] if cut else [])}
    if len(cats) == 1:
        return r
    lo, hi = min(cats, key=CATEGORY_ORDER.index), max(cats, key=CATEGORY_ORDER.index)
    bands = (table()["volume_mm3"]["baseline"][nodule_type] if status == "baseline"
             else table()["volume_mm3"]["new_or_growing"][f"{nodule_type}_{status}"])
    span = rng or [vol, vol]
    crossed = [b[0] for b in bands if min(span) < b[0] <= max(span)] or \
              [b[0] for b in bands if b[2] == max((cat, r["category"]), key=CATEGORY_ORDER.index)][:1]
    words = (f"volume {vol} mm3 is Lung-RADS {cat} by the volumetric bands"
             + (f" and partial volume allows {rng[0]}-{rng[1]} mm3 ({rcats[0]} to {rcats[1]})" if rng else "")
             + f"; the mean diameter gives {r['category']}")
    if cut:
        cut.update(pair=f"{lo}/{hi}", note=f"{cut['note']}; {words}")
    else:
        other = hi if r["category"] == lo else lo
        r["at_size_cut"] = {
            "what": "volume", "cut_mm3": crossed[0], "side": "within", "other_category": other, "pair": f"{lo}/{hi}",
            "note": f"{words}: Lung-RADS v2022 gives both cuts (mean diameter and volume), and the size lies within "
                    f"its own uncertainty of the {crossed[0]} mm3 cut, so {other} "
                    # both measured sizes in one category, only the range across the cut: possible, not as likely
                    # (new-user trial 109 F4: 16.0 mm and 2163 mm3, both 4B, read "so 4A is as likely")
                    + ("is as likely" if cat != r["category"] else "cannot be ruled out") + "; measure it on the images "
                    "(lungrads_v2022.json volume_mm3: ACR Lung-RADS v2022; measurements.border_volume_range_ml)"}
    return r
