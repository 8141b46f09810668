"""``imagio ablation``: the device catalogue on the command line, and the ablation part of
``imagio plan --device NAME --setting ID [--multi-probe]``.

    imagio ablation devices [--json] [--devices FILE]
    imagio ablation import-devices FILE [--to PATH]
"""

from __future__ import annotations

import json

from ...errors import ImagioError, InputError
from .criteria import mam_text


def cmd_devices(args) -> int:
    from .devices import load_catalogue, user_devices_path

    cat = load_catalogue(extra=args.devices)
    if args.json:
        print(json.dumps({n: {"modality": d.modality, "label": d.label, "source": d.source, "from": d.origin,
                              "chart_tissue": d.chart_tissue, "settings": {s.id: vars(s) for s in d.settings.values()}}
                          for n, d in cat.items()}, indent=1))
        return 0
    print(f"# ablation devices (site file: {user_devices_path()}; add more with $IMAGIO_ABLATION_DEVICES)")
    for n, d in cat.items():
        print(f"{n}  [{d.modality}]  {d.label}  ({d.origin})")
        for s in d.settings.values():
            print(f"    {s.id:28s} {s.label:44s} zone {s.zone_length_mm:g} x {s.zone_diameter_mm:g} mm, "
                  f"centre {s.centre_offset_mm:g} mm behind the tip, {s.volume_ml:.1f} mL")
        print(f"    source: {d.source}")
        print(f"    chart measured in: {d.chart_tissue or 'not stated'}")
    return 0


def cmd_import(args) -> int:
    from .devices import import_devices

    path = import_devices(args.file, args.to)
    print(path)
    return 0


def require_tumour_target(problem) -> None:
    """InputError (one line) unless the problem's target is a segmented lesion: zones, coverage
    and the minimal ablative margin are measured against the target's segment, and an organ (a
    point in the liver) as the "tumour" gives meaningless figures (a margin of -180 mm)."""
    from ..problem import is_lesion

    t = problem.target
    if not t.value:
        raise InputError("ablation needs a segmented target: give --target as the tumour's structure "
                         "name (or a point inside its segment)")
    name = problem.labels.labels.get(int(t.value), "")
    if not is_lesion(name):
        raise InputError(f"ablation needs the tumour's segment, but the target lies in {name!r} (an organ, not a "
                         "lesion): segment the tumour first (imagio lesion CT --point R,A,S --out T.seg.nrrd) and "
                         "give its label as --target")


def padding_voxels(problem, labels=None):
    """Bool [k, j, i] on the label grid (``labels``, default the problem's) of the CT's padding
    (`findings.padding_core`: outside the reconstruction circle, a reformat's fill), where a zone
    burns tissue nobody has seen; None when the planner found no padding or the label map lies on
    another grid than the CT."""
    import numpy as np

    from ..findings import padding_core

    lab = problem.labels if labels is None else labels
    skin = getattr(problem, "skin", None)
    if skin is None or getattr(skin, "padding_edge", None) is None or problem.ct is None \
            or tuple(problem.ct.shape) != tuple(lab.shape) \
            or not np.allclose(problem.ct.ijk_to_ras, lab.ijk_to_ras, atol=1e-4):
        return None
    return padding_core(problem)


def setting_fields(s) -> dict:
    """The JSON fields naming one device setting ``s`` (`devices.Setting`): id, label (power and
    time, or protocol and isotherm), its words with the zone size (`devices.Setting.words`), the
    zone's length along the shaft and diameter across it, the tip-to-zone-centre offset (mm) and
    the source of the zone chart. plan.json's ``ablation`` has them for the asked setting and
    each proposal for its own (they differ when `spare.spare_hollow_viscus` chose another)."""
    return {"setting": s.id, "setting_label": s.label, "setting_words": s.words,
            "zone_length_mm": s.zone_length_mm, "zone_diameter_mm": s.zone_diameter_mm,
            "centre_offset_mm": s.centre_offset_mm, "source": s.source}


def setting_choice_words(note: dict | None, device: str = "") -> str:
    """What IMAGIO chose instead of what was asked, and why, from `spare.spare_hollow_viscus`'s
    note (``hollow_viscus`` of a proposal, a plan.json single-probe entry or a `multiprobe.ProbePlan`):
    "IMAGIO chose <device> 45W_5min (45 W, 5 min, zone 30 x 24 mm) instead of the asked 100W_10min
    (100 W, 10 min, zone 48 x 42 mm): <why>" when the setting differs, "IMAGIO moved the zone ...:
    <why>" when only its centre moved along the path, "" when the asked zone was kept (no note, or
    none found). Every place that shows the plan (summary line, report, Slicer module, IMAGIO Web)
    says it with these words."""
    if not note or not note.get("found"):
        return ""
    dev = f"{device} " if device else ""
    if note.get("asked") and note["setting"] != note["asked"]:
        return (f"IMAGIO chose {dev}{note['setting']} ({note.get('setting_words', '')}) instead of the asked "
                f"{note['asked']} ({note.get('asked_words', '')}) to keep hollow viscera out of the zone: {note['text']}")
    sh = float(note.get("zone_shift_mm", note.get("shift_mm")) or 0.0)   # where it is (trial 101 F5)
    if abs(sh) >= 0.05:
        return (f"IMAGIO moved the {dev}{note['setting']} zone's centre {round(abs(sh), 1):g} mm "
                f"{'deeper than' if sh > 0 else 'short of'} the target along the path to keep hollow viscera out of "
                f"the zone: {note['text']}")
    return ""


def ablation_for_plan(result, device, setting_id: str | None, multi_probe: bool = False,
                      devices_file=None, progress=None, guarantee_margin: bool = False,
                      max_probes: int | None = None) -> dict:
    """Zones, coverage and MAM for every proposal of a feasible plan (each probe advanced so
    the zone centre lands on the target; a zone taking in a hollow viscus is replaced by the
    device's other setting or zone position along the same path that keeps it out, or says why
    none does: `spare.spare_hollow_viscus`; each proposal carries its own setting's fields,
    `setting_fields`, which then differ from the asked one's at the top level, ``setting_asked``,
    and ``setting_choice``: `setting_choice_words`, None when the asked zone was kept), plus optionally a multi-probe plan (``guarantee_margin``:
    probes added until the margin is proven, `multiprobe.plan_multiprobe`; at most ``max_probes``
    probes, default ablation_criteria.json multi_probe.max_probes; more fails as "needs N
    probes"): a JSON-able dict.
    ``device``: a `devices.Device` already read (``imagio plan --device`` has it), or its name,
    looked up in the catalogue (with ``devices_file``)."""
    from ...jsonable import to_jsonable
    from .coverage import AblationContext
    from .devices import Device, get_device, load_catalogue
    from .spare import spare_hollow_viscus
    from .multiprobe import place_on_path, plan_multiprobe

    dev = device if isinstance(device, Device) else get_device(device, load_catalogue(extra=devices_file))
    s = dev.setting(setting_id)
    p = result.problem
    require_tumour_target(p)
    ctx = AblationContext(p.labels, int(p.target.value), unimaged=padding_voxels(p))
    from .mediastinum_near import add_mediastinum

    add_mediastinum(ctx, p)   # trial 47 M3: unlabelled mediastinum near a lung zone
    out = {"device": dev.name, "device_label": dev.label, "modality": dev.modality, **setting_fields(s),
           "setting_asked": s.id, "tumour": ctx.tumour_name,
           "isotherm_c": s.isotherm_c, "zone_edge": zone_edge(dev.modality, s.isotherm_c),
           "chart_tissue": dev.chart_tissue, "chart_in_lung": dev.chart_in_lung, "single_probe": []}
    singles = []
    for r, m in enumerate(result.proposals):
        pp = place_on_path(result, ctx, dev, s, m.entry_ras)
        singles.append(pp)   # the multi-probe cover's one-probe try: the asked setting's zone
        # a zone taking in a hollow viscus: another setting or position along the path that keeps it out, or
        # why none does (trial 96 F4; `spare.spare_hollow_viscus`)
        pp, _ = spare_hollow_viscus(result, ctx, dev, s, m.entry_ras, placed=pp)
        d = pp.to_dict()
        # the proposal's own setting (its zone, power, time), what was asked, and why they differ
        d.update(setting_fields(dev.setting(pp.setting)), setting_asked=s.id,
                 setting_choice=setting_choice_words(pp.hollow_viscus, dev.name) or None)
        d["proposal"] = r + 1
        d["isotherm_c"], d["zone_edge"] = out["isotherm_c"], out["zone_edge"]
        out["single_probe"].append(d)
    failed = None
    if multi_probe:
        try:
            out["multi_probe"] = plan_multiprobe(result, ctx, dev, s, progress=progress, max_probes=max_probes,
                                               guarantee_margin=guarantee_margin, singles=singles).to_dict()
            out["multi_probe"].update(setting_fields(dev.setting(out["multi_probe"]["setting"])))
            out["multi_probe"]["isotherm_c"], out["multi_probe"]["zone_edge"] = out["isotherm_c"], out["zone_edge"]
            out["multi_probe"]["shared_entries"] = shared_entries(out["multi_probe"]["probes"])
            if dev.simultaneous:   # probes in place together: their shafts must not meet (the cover kept them apart)
                out["multi_probe"]["close_shafts"] = close_shafts(out["multi_probe"]["probes"], p.needle,
                                                                  out["multi_probe"]["shared_entries"])
        except InputError:
            raise   # a wrong request (a fused setting ...): the user fixes the command
        except ImagioError as e:   # no cover with this setting: the single-probe results still stand
            failed = str(e)
            out["multi_probe"] = {"device": dev.name, "setting": s.id, "failed": failed}
    out = to_jsonable(out)
    for d in out["single_probe"] + [out.get("multi_probe") or {}]:
        if d.get("coverage"):
            non_lethal_criteria(d["coverage"], dev.modality, d.get("isotherm_c", out["isotherm_c"]))
    if out["single_probe"]:   # the proposals whose zones meet the margin the best one misses (trial 107 F3)
        out["single_probe"][0]["margin_met_elsewhere"] = margin_met_elsewhere(out["single_probe"]) or None
    out["warnings"] = ablation_warnings(out, getattr(p.target, "organ", "") or "", failed,
                                        bool(getattr(p.target, "in_lung", False)), p.ct)
    return out


NON_LETHAL_CRITERIA = ("tumour_covered", "minimal_ablative_margin", "ideal_margin")   # measured on the zone's edge


def non_lethal_criteria(coverage: dict, modality: str, isotherm_c) -> dict:
    """A cryoablation zone bounded by an isotherm warmer than the lethal one (`criteria.is_lethal`,
    ablation_criteria.json cryo_lethal_isotherm_c, Littrup 2009: the 0 C ice-ball edge seen on CT
    kills no tissue): its coverage and margin criteria that the zone's geometry meets are not
    met by the tissue killed, so each such ``met: True`` becomes None with ``not_verifiable``
    saying why, and ``compliant`` is recomputed (`coverage.compliance`: None, never True).
    ``coverage``: a `Coverage.to_dict` (plan.json ``ablation...coverage``), changed in place and
    returned. Heat ablation and lethal isotherms are left as they are (new-user trial 112: a 0 C
    plan said ``compliant: true`` beside its warning that the ice does not kill)."""
    from .coverage import compliance
    from .criteria import is_lethal, lethal_isotherm_c

    if modality != "cryoablation" or isotherm_c is None or is_lethal(float(isotherm_c)):
        return coverage
    crit = coverage.get("criteria") or {}
    for k in NON_LETHAL_CRITERIA:
        if (crit.get(k) or {}).get("met") is True:
            crit[k]["met"] = None
            crit[k]["not_verifiable"] = (f"met by the {float(isotherm_c):g} C isotherm (the ice ball's edge), which "
                                         f"does not kill tissue; the lethal zone (at or below {lethal_isotherm_c():g} "
                                         "C, Littrup 2009) is smaller")
    if crit:
        coverage["compliant"] = compliance(crit)
    return coverage


def margin_met_elsewhere(single_probe: list) -> str:
    """When the best proposal's zone (``single_probe[0]``, plan.json ``ablation.single_probe``)
    misses the required minimal ablative margin and other proposals' zones meet it (placeable
    probes): "proposal 2 meets the required 5 mm minimal ablative margin (5.2 mm)", or "proposals
    2 (5.2 mm) and 3 (6.1 mm) meet ..."; with ", not compliant: see its warnings" for one whose
    zone fails another criterion (a hollow viscus); "" otherwise. `ablation_for_plan` stores it
    as the best proposal's ``margin_met_elsewhere``, which the summary line, the warnings, the
    report and the scene's table say (new-user trial 107 F3: "tumour covered 100.0%, minimal
    ablative margin -0.2 mm" for the best path while proposals 2 and 3 met 5 mm, unsaid)."""
    from .criteria import value

    def crit(d):
        return ((d.get("coverage") or {}).get("criteria") or {}).get("minimal_ablative_margin") or {}

    if len(single_probe) < 2 or crit(single_probe[0]).get("met", True) is not False:
        return ""
    need = float(crit(single_probe[0]).get("required", value("minimal_ablative_margin_mm")))
    ok = [d for d in single_probe[1:] if crit(d).get("met") is True
          and all(q.get("feasible", True) for q in d.get("probes") or [])]
    if not ok:
        return ""
    each = [(d["proposal"], f"{mam_text(d['coverage']['mam_mm'])} mm"
             + (", not compliant: see its warnings" if d["coverage"].get("compliant") is False else "")) for d in ok]
    if len(each) == 1:
        return f"proposal {each[0][0]} meets the required {need:g} mm minimal ablative margin ({each[0][1]})"
    names = [f"{n} ({w})" for n, w in each]
    return (f"proposals {', '.join(names[:-1])} and {names[-1]} meet the required {need:g} mm minimal ablative "
            "margin")


SHARED_ENTRY_MM = 0.5   # probes whose skin entries lie closer than this share one entry (one track)


def shared_entries(probes: list) -> list[list[int]]:
    """Groups (1-based probe numbers, each of 2 or more) of ``probes`` (`ProbePlacement` dicts)
    entering the skin at one point (within ``SHARED_ENTRY_MM``): the multi-probe cover may put
    several zones on one track (`multiprobe.plan_multiprobe`), which is one probe repositioned
    between ablations for microwave or radiofrequency, and impossible for cryoprobes, which freeze
    at once (new-user trial 32 H4: never said)."""
    import numpy as np

    if len(probes) < 2:
        return []
    E = np.asarray([p["entry_ras"] for p in probes], float)
    close = np.linalg.norm(E[:, None] - E[None], axis=2) < SHARED_ENTRY_MM
    groups, seen = [], set()
    for i in range(len(probes)):   # a few probes: pairs, not voxels
        g = [j for j in np.flatnonzero(close[i]) if j not in seen]
        if len(g) > 1:
            groups.append([int(j) + 1 for j in g])
        seen.update(g)
    return groups


def shared_entry_course(probes: list, group: list[int]) -> dict:
    """How the positions of one shared skin entry (``group``: 1-based numbers into ``probes``,
    `ProbePlacement` dicts with entry_ras and tip_ras in RAS mm) are reached: ``one_track`` when
    every tip lies within ``SHARED_ENTRY_MM`` of the first probe's axis (the probe is pulled back or
    advanced along it), else each position is its own track through the same skin puncture (the
    probe withdrawn and re-angled; new-user trial 43 F1: two tracks 5.2 deg apart, tips 12.7 mm
    off each other's line, were called "one track": pulled back along the first one, 4.7 % of the
    tumour was left out of every zone). Also ``angle_deg``, the widest angle between two of the
    group's directions, and ``tip_off_track_mm``, the farthest tip from the first probe's axis."""
    import numpy as np

    E = np.asarray([probes[k - 1]["entry_ras"] for k in group], float)
    T = np.asarray([probes[k - 1]["tip_ras"] for k in group], float)
    U = T - E
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    cos = np.clip(U @ U.T, -1.0, 1.0)
    rel = T - E[0]
    off = np.linalg.norm(rel - (rel @ U[0])[:, None] * U[0], axis=1)
    return {"one_track": bool(off.max() <= SHARED_ENTRY_MM),
            "angle_deg": round(float(np.degrees(np.arccos(cos.min()))), 1),
            "tip_off_track_mm": round(float(off.max()), 1)}


def shared_entry_words(probes: list, group: list[int]) -> str:
    """The course of a shared entry's positions for a microwave/RF plan, in words
    (`shared_entry_course`): one track, or several tracks through one skin puncture."""
    c = shared_entry_course(probes, group)
    if c["one_track"]:
        return "one probe repositioned along one track"
    return (f"one probe withdrawn and re-inserted through that entry along {len(group)} tracks up to "
            f"{c['angle_deg']:g} deg apart (tips up to {c['tip_off_track_mm']:g} mm off the first track: "
            "not a pull-back along one track)")


def close_shafts(probes: list, needle, shared: list | None = None) -> list[dict]:
    """Pairs of ``probes`` (`ProbePlacement` dicts, entry_ras and tip_ras in RAS mm) with separate
    skin entries whose shafts pass closer than one shaft diameter plus both probes' placement
    uncertainty (``needle.diameter_mm + 2 * needle.uncertainty_mm``, the planner's own needle):
    probes placed together (cryoablation) may meet there (new-user trial 34 F3: the phantom's
    cryo plan crossed two shafts 0.10 mm apart, 35 mm deep, with separate entries). Each item:
    {"probes": [i, j] (1-based), "distance_mm", "at_ras"}. The distance is exact between the two
    segments (`multiprobe.segment_distances`), the limit `multiprobe.min_shaft_spacing_mm`: the
    cover of simultaneous probes keeps to it (`multiprobe.Spacing`), so this is the safety net
    (a few probes: pairs, not voxels)."""
    import numpy as np

    from .multiprobe import min_shaft_spacing_mm, segment_distances

    limit = min_shaft_spacing_mm(needle)
    groups = shared_entries(probes) if shared is None else shared   # `shared_entries`' groups, when known
    shared = {(a, b) for g in groups for a in g for b in g if a < b}
    E = np.asarray([p["entry_ras"] for p in probes], float).reshape(-1, 3)
    T = np.asarray([p["tip_ras"] for p in probes], float).reshape(-1, 3)
    d, s, t = segment_distances(E[:, None], T[:, None], E[None], T[None])
    out = []
    for i in range(len(probes)):
        for j in range(i + 1, len(probes)):
            if (i + 1, j + 1) in shared or d[i, j] >= limit:
                continue
            at = 0.5 * (E[i] + s[i, j] * (T[i] - E[i]) + E[j] + t[i, j] * (T[j] - E[j]))
            out.append({"probes": [i + 1, j + 1], "distance_mm": round(float(d[i, j]), 2),
                        "at_ras": [round(float(v), 1) for v in at]})
    return out


def zone_edge(modality: str, isotherm_c) -> str:
    """What the zone's edge is, in words: for cryoablation the isotherm and whether it is lethal
    (``cryo_lethal_isotherm_c`` of ablation_criteria.json; Littrup 2009), else the device's
    ablation zone (its chart)."""
    if modality != "cryoablation" or isotherm_c is None:
        return "the device chart's ablation zone"
    from .criteria import is_lethal, lethal_isotherm_c

    lethal = lethal_isotherm_c()
    if is_lethal(isotherm_c):
        return f"the {isotherm_c:g} C isotherm (lethal: at or below {lethal:g} C, Littrup 2009)"
    return (f"the {isotherm_c:g} C isotherm (the ice-ball edge seen on CT; NOT lethal: tissue dies at or below "
            f"{lethal:g} C, Littrup 2009)")


def lies_in_lung(tumour: str, host_organ: str = "", tumour_in_lung: bool = False) -> bool:
    """Whether the ablated tumour lies in aerated lung: `problem.Target.in_lung` (``tumour_in_lung``,
    also a nodule where lobes meet, its host unknown), or the tumour's or its host organ's label
    name is a lung label (anatomy.AERATED_LUNG)."""
    from ...anatomy import AERATED_LUNG

    return tumour_in_lung or tumour in AERATED_LUNG or host_organ in AERATED_LUNG


# why a zone chart measured outside lung does not hold in aerated lung, per modality
# (`chart_tissue_doubt`; sources in its docstring)
LUNG_PHYSICS = {
    "radiofrequency": "air conducts electric current and heat far less than solid tissue: the high impedance "
                      "of aerated lung holds a radiofrequency zone back, so it may be smaller or shaped otherwise "
                      "(Brace 2009)",
    "microwave": "air conducts heat far less than solid tissue and holds little water: a microwave zone is held "
                 "back less than a radiofrequency one but may still differ in size and shape (Brace 2009)",
    "cryoablation": "air insulates: an ice ball grows more slowly and stays smaller in aerated lung than in the "
                    "chart's medium until the frozen lung floods (hence freeze-thaw-freeze protocols; Hinshaw "
                    "2010), so the chart's ice-ball and lethal-isotherm sizes do not hold",
}


def chart_tissue_doubt(abl: dict, in_lung: bool) -> str:
    """A warning (empty if none) when a tumour in aerated lung (``in_lung``) is planned with a
    zone chart that was not measured in lung (``abl``: `ablation_for_plan`'s dict, its
    ``chart_tissue``, ``chart_in_lung`` from `devices.Device` and ``modality``).

    Why: manufacturers' zone charts are measured ex vivo, mostly in bovine liver, or in gel for
    cryoprobes. Aerated lung conducts heat and current far less than liver (air), so zones grow
    otherwise there: radiofrequency zones are held back by the air's impedance, while microwave
    zones are less affected but differ in shape (Brace CL, Curr Probl Diagn Radiol
    2009;38:135-143); air insulates an ice ball, which grows slowly in aerated lung until the
    frozen alveoli flood (Hinshaw JL et al., Optimizing the protocol for pulmonary cryoablation:
    a comparison of a dual- and triple-freeze protocol, Cardiovasc Intervent Radiol
    2010;33:1180-1185). The physics is said per modality (`LUNG_PHYSICS`; new-user trial 83 #4:
    a cryoprobe's warning spoke of heat and current). The plan's coverage and minimal ablative
    margin are computed from the chart's zone, so for a lung tumour they are not validated
    (new-user trial 82 M2: lung1's nodule "100 % covered, margin 4.1-4.7 mm" from the liver
    chart, with no word). The ablation zone in the lung is judged on the immediate post-ablation
    CT, the ground-glass opacity round the tumour (Venturini M et al., CIRSE standards of
    practice on thermal ablation of lung tumours, Cardiovasc Intervent Radiol 2020;43:667-683)."""
    if not in_lung or abl.get("chart_in_lung"):
        return ""
    tissue = abl.get("chart_tissue") or "a tissue its table does not name"
    why = LUNG_PHYSICS.get(abl.get("modality"), "air conducts heat and current far less than solid tissue or gel, "
                           "so the zone in the lung may be smaller or shaped otherwise (Brace 2009)")
    return (f"ablation ({abl['device']} {abl['setting']}): the tumour lies in aerated lung but the zone sizes "
            f"come from a chart measured not in lung but in {tissue}; {why}; this plan's coverage and margin are "
            "not validated there: use a chart measured in lung (imagio ablation import-devices) and judge the zone "
            "on the post-ablation CT (CIRSE 2020)")


def unimaged_doubt(what: str, cov: dict, tumour: str, need_mm: float) -> str:
    """The warning (empty if none) for a zone set (``cov``: `coverage.Coverage.to_dict`) that runs
    past the image (``cov["unimaged"]``): its mL and share there, per side and how far, that the
    tissue there is not seen (what the zone burns there cannot be judged: above a liver dome the
    diaphragm, the lung base and the pericardium lie), that the zone volume counts it, and whether
    tumour + ``need_mm`` reaches there (the margin is then not verifiable, the criterion not
    "met": its ``met`` is None). New-user trial 90 finding 1b: 7.5 mL (17 %) of a liver-dome zone
    above the last slice was cut silently."""
    u = cov.get("unimaged") or {}
    if not u or round(float(u.get("zone_ml", 0.0)), 1) <= 0:
        return ""

    def side_words(side):
        ext = (u.get("extent_mm") or {}).get(side)
        if side == "padding":
            on = u.get("padding_side")
            return (f"{u['sides'][side]:.1f} mL in the CT's padding (outside the reconstruction circle or a reformat's fill)"
                    + (f" on its {on} side" if on else "") + (f", up to {ext:.1f} mm past the imaged tissue" if ext else ""))
        return f"{u['sides'][side]:.1f} mL beyond its {side} end" + (f", up to {ext:.1f} mm past it" if ext else "")

    # sides holding under 0.05 mL (said "0.0 mL") are left out of the words, and so are their
    # anatomical notes (new-user trial 92 L2: a 0.01 mL sliver past the superior end of an anterior
    # crop brought in the liver-dome text); so are sides the zone reaches past by no more than the
    # outline's uncertainty (``outline_tolerance_mm``, half a CT voxel: the image does not resolve
    # the zone's edge from its own end there; trial 93 F6: 0.1 mL slivers 0.5 mm past both ends of
    # 2 mm slices brought both the dome and the bowel notes), their mL said together. The largest
    # side is always said. Sorted by mL already.
    tol = float(cov.get("outline_tolerance_mm") or 0.0)
    ext = u.get("extent_mm") or {}
    named = [k for i, k in enumerate(u.get("sides", {})) if i == 0 or (
        round(float(u["sides"][k]), 1) > 0 and (k == "padding" or k not in ext or float(ext[k]) > tol))]
    edge_ml = sum(float(v) for k, v in u.get("sides", {}).items()
                  if k not in named and k in ext and float(ext[k]) <= tol)
    where = ", ".join(side_words(k) for k in named) + (
        f", {edge_ml:.1f} mL within {tol:g} mm (half a CT voxel) past its other ends" if round(edge_ml, 1) > 0 else "")
    shell = {float(k.removesuffix("mm")) if isinstance(k, str) else float(k): v
             for k, v in (u.get("tumour_margin_ml") or {}).items()}
    need_ml = shell.get(float(need_mm), 0.0)
    margin = (f"; tumour + {need_mm:g} mm reaches {need_ml:.2f} mL past the image, so the {need_mm:g} mm margin "
              "there is not verifiable (the zone's edge there rests on the device chart alone; the tumour's "
              "extent and heat-sink vessels there are not seen): it is not reported as met"
              if round(need_ml, 2) > 0 else "")
    vm = u.get("verifiable_margin_mm")
    if vm is not None and cov.get("mam_mm") is not None and vm < float(cov["mam_mm"]) - 0.05:
        margin += (f"; the image ends {u.get('tumour_to_unimaged_mm', vm):.1f} mm from the tumour, so of the minimal "
                   f"ablative margin of {mam_text(cov['mam_mm'])} mm only {vm:.1f} mm can be verified on it")
    sides = set(named) | ({u["padding_side"]} if u.get("padding_side") and "padding" in named else set())
    # what lies past each kind of end (new-user trial 91 M1: the liver dome was named for a zone past the
    # inferior end, where bowel, gallbladder and kidney lie, and "a longer scan" for one past a side)
    beyond = "; ".join(w for k, w in (
        ("superior", "above a liver dome lie the diaphragm, the lung base and the pericardium"),
        ("inferior", "below the liver lie bowel, the gallbladder and the kidney")) if k in sides)
    fix = " or ".join(w for ok, w in (
        (sides & {"superior", "inferior"}, "a longer scan"),
        (sides - {"superior", "inferior", "padding"}, "a wider field of view"),
        ("padding" in sides, "a reconstruction of a larger field of view")) if ok)
    return (f"{what}: {u['zone_ml']:.1f} mL ({u['zone_pct']:.0f} %) of the ablation zone lies past the image ({where}): "
            f"the tissue there is not imaged, so what the zone burns there cannot be judged ("
            + (beyond + "; " if beyond else "")
            + f"collateral damage, nearby structures and heat sinks are checked in the imaged part only); the zone "
            f"volume counts it{margin}; image the whole zone ({fix}) before relying on this plan, or choose another "
            "path or a smaller setting")


def gap_doubt(what: str, cov: dict, ct) -> str:
    """The warning (empty if none) when the point of a zone set's (``cov``: `coverage.Coverage.to_dict`)
    minimal ablative margin, or of a heat-sink vessel's largest lumen near it (the lumen that scores
    its level), lies on slices the DICOM reader interpolated across a gap of the CT ``ct``
    (`interpolated_slabs.points_note`, the words of the planner's clearance notes; None: no CT, no
    check). New-user trial 107 F4: a MAM point and a largest lumen in a 4 mm gap, with no word."""
    if ct is None:
        return ""
    from ...interpolated_slabs import points_note

    at = lambda r: [round(float(x), 1) for x in r]   # noqa: E731  (as the margin's own warning gives it)
    pts = []
    if cov.get("mam_mm") is not None and cov.get("mam_ras") is not None:
        pts.append((f"the minimal ablative margin ({mam_text(cov['mam_mm'])} mm) at {at(cov['mam_ras'])} RAS mm",
                    cov["mam_ras"]))
    for h in cov.get("heat_sink") or []:
        if h.get("ras") is not None:
            pts.append((f"the heat sink {h['vessel']}'s largest lumen ({float(h['diameter_mm']):.1f} mm, level "
                        f"{h.get('level')}) at {at(h['ras'])} RAS mm", h["ras"]))
    note = points_note(ct, pts)
    return f"{what}: {note}" if note else ""


HOLLOW_VISCUS_FIX = ("separate it from the zone (hydrodissection / artificial ascites) or reposition the probe "
                     "(another path, a smaller setting) so that the zone stays off it")


def hollow_viscus_verdict(crit: dict) -> str:
    """The ``no_hollow_viscus`` criterion (`criteria.hollow_viscus_criterion`, a zone set's
    ``coverage.criteria`` entry) as a verdict: "met", "NOT MET, the zone takes in <name mL, ...>
    (why): <what to do>", or "NOT VERIFIABLE (why)"; "" when absent. One wording for imagio plan's
    summary line and warnings, the report, the Slicer module's table and IMAGIO Web (new-user
    trial 96 F4)."""
    c = crit or {}
    if not c:
        return ""
    if c.get("met") is True:
        return "met"
    if c.get("met") is None:
        return f"NOT VERIFIABLE ({c.get('not_verifiable', '')})"
    names = ", ".join(f"{n} {v:.2f} mL" if v >= 0.005 else f"{n} < 0.01 mL" for n, v in (c.get("structures") or {}).items())
    if c.get("unavoidable"):   # the planner searched settings and positions (`spare.spare_hollow_viscus`)
        return f"NOT MET, the zone takes in {names} (thermal perforation, Mulier 2002; Kondo 2006): {c['unavoidable']}"
    return (f"NOT MET, the zone takes in {names} (thermal perforation, Mulier 2002; Kondo 2006): "
            f"{HOLLOW_VISCUS_FIX}")


def hollow_viscus_words(crit: dict) -> str:
    """"no hollow viscus in the zone: <`hollow_viscus_verdict`>" when the criterion is not met or
    not verifiable, else ""."""
    if not crit or crit.get("met") is True:
        return ""
    return f"no hollow viscus in the zone: {hollow_viscus_verdict(crit)}"


def hollow_viscus_clause(c: dict) -> str:
    """"; NOT COMPLIANT: <the no_hollow_viscus criterion in words>" for the summary line of a zone
    set (``c``: plan.json coverage) whose zone takes in a hollow viscus, "; <words>" when that is
    not verifiable, else "" (new-user trial 96 F4: "covered 100 %, margin 10.3 mm" beside 2.75 mL
    of colon in the zone)."""
    hv = (c.get("criteria") or {}).get("no_hollow_viscus")
    words = hollow_viscus_words(hv)
    if not words:
        return ""
    return ("; NOT COMPLIANT: " if hv.get("met") is False else "; ") + words


def zone_doubts(what: str, cov: dict, fix: str, tumour: str, host_organ: str = "",
                tumour_in_lung: bool = False, ct=None) -> list[str]:
    """The doubts about one ablation zone set (``cov``: `coverage.Coverage.to_dict`), one line
    each, prefixed ``what``, ending with ``fix``: the tumour not wholly inside, the minimal
    ablative margin below the required one, a vessel of heat-sink level "high" near the zone
    (``heat_sink`` of ablation_criteria.json), a high-risk structure within ``nearby_structures_mm``
    of the zones (its ``warn_structures``; for a tumour in the lung also a name holding one of its
    ``lung_warn_structures``: CIRSE 2020), labelled structures other than ``tumour``, its
    ``host_organ`` and the unnamed body inside the zones (mL); with no diaphragm label, a lung
    label within that distance stands for the diaphragm and pleura beyond it, unless the tumour
    lies in the lung (``tumour_in_lung``: `problem.Target.in_lung`, also when its host organ is
    unknown, a nodule where lobes meet; or ``tumour`` / ``host_organ`` a lung label); the point of
    the minimal ablative margin or of a heat-sink vessel's largest lumen lying on slices the DICOM
    reader interpolated across a gap of the CT ``ct`` (a `volume.Volume`, its
    ``meta["read"]["gap_slabs_lps"]``: `interpolated_slabs.points_note`; None: not checked). Used for
    plan.json's warnings (`ablation_warnings`) and the Slicer module's ablation label (live coverage)."""
    from .coverage import UNIMAGED
    from .criteria import load_criteria

    need = float(load_criteria()["minimal_ablative_margin_mm"]["value"])
    skip = {"unlabelled", "body", UNIMAGED, tumour, host_organ}   # body: the unnamed rest; unimaged: `unimaged_doubt`
    out = []
    crit = cov.get("criteria", {})
    t = crit.get("tumour_covered", {})
    m = crit.get("minimal_ablative_margin", {})
    # met None: not verifiable (the image's end, a non-lethal isotherm: `non_lethal_criteria`), said
    # where it is decided; not "not met" (trial 116 M5: a 0 C zone 10 mm past a 7 mm tumour was
    # said to leave the tumour's edge unablated)
    if t and t.get("met", True) is False and cov["tumour_covered_pct"] >= 99.95:   # every voxel, not the surface
        out.append(f"{what}: the zone holds every voxel of {tumour} but the tumour's surface lies up to "
                   f"{mam_text(cov['mam_mm']).lstrip('-')} mm outside it, at {[round(x, 1) for x in cov['mam_ras']]} RAS mm ({need:g} mm "
                   f"of margin is required): part of the tumour's edge is not ablated; {fix}")
    elif t and t.get("met", True) is False:
        out.append(f"{what}: the zone covers only {cov['tumour_covered_pct']:.1f}% of {tumour} (the "
                   f"tumour surface lies up to {mam_text(cov['mam_mm']).lstrip('-')} mm outside it, at "
                   f"{[round(x, 1) for x in cov['mam_ras']]} RAS mm; {need:g} mm of margin is required): part "
                   f"of the tumour is not ablated; {fix}")
    elif m and m.get("met", True) is False:
        out.append(f"{what}: minimal ablative margin {mam_text(cov['mam_mm'])} mm at {[round(x, 1) for x in cov['mam_ras']]} "
                   f"RAS mm, below the required {need:g} mm (local progression risk, Laimer 2020); {fix}")
    elif m and m.get("met", True) is not None and cov.get("outline_tolerance_mm") and cov["mam_mm"] < m.get("required", need) + cov["outline_tolerance_mm"]:
        # met by less than the outline's own uncertainty (trial 47 L5): the margin is measured from the
        # label's voxel faces (`outline.Outline`), and the tumour's true edge lies within half a voxel of them
        out.append(f"{what}: minimal ablative margin {mam_text(cov['mam_mm'])} mm meets the required {m.get('required', need):g} mm by less "
                   f"than the tumour outline's uncertainty (+/- {cov['outline_tolerance_mm']:g} mm, half a CT voxel): "
                   f"it is measured from the tumour label's voxel faces, and the tumour's true edge may lie that far "
                   f"beyond them; check the margin on the images, or {fix}")
    for h in cov.get("heat_sink") or []:   # trial 25: a 'high' heat sink was a table row only
        if h.get("level") == "high":
            from .heatsink import heat_sink_words

            out.append(f"{what}: heat sink: {h['vessel']}: {heat_sink_words(h)} "
                       f"(level high for {h.get('modality') or 'this device'}, scored on its "
                       f"{h['diameter_mm']:.1f} mm lumen): blood flow cools the "
                       "tissue beside it, so the zone may be smaller there than the device table says and the "
                       "margin towards it is not assured (Lu 2002); check the margin on that side, or use a "
                       "longer or larger setting")
        elif h.get("calibre_undecided"):   # calibre115: a lumen a voxel short of 3 mm is named, and said
            out.append(f"{what}: heat sink: {h['vessel']}: {h['calibre_undecided']} (level {h.get('level')}); "
                       "check its calibre on the CT")
    gap = gap_doubt(what, cov, ct)
    if gap:
        out.append(gap)
    u = unimaged_doubt(what, cov, tumour, need)
    if u:
        out.append(u)
    hv = crit.get("no_hollow_viscus") or {}
    if hv.get("met") is False:   # trial 96 F4: a criterion not met, said first of the structures
        out.insert(0, f"{what}: {hollow_viscus_words(hv)}")
    hit = {n: v for n, v in cov.get("healthy_ml", {}).items()
           if n not in skip and round(v, 2) > 0 and n not in (hv.get("structures") or {})}
    near_spec = load_criteria()["nearby_structures_mm"]
    from ...anatomy import AERATED_LUNG

    in_lung = lies_in_lung(tumour, host_organ, tumour_in_lung)
    central = near_spec["lung_warn_structures"] if in_lung else ()   # parts of names (review 40 M1)
    close = {n: d for n, d in (cov.get("structures_near_mm") or {}).items()
             if (n in near_spec["warn_structures"] or any(h in n for h in central)) and n not in hit
             and n not in (hv.get("structures") or {})
             and d <= float(near_spec["value"])}

    if near_spec.get("lung_marks_diaphragm") and not in_lung:
        # no diaphragm label (TotalSegmentator has none): the lung beyond it stands for it
        lung = {n: d for n, d in (cov.get("structures_near_mm") or {}).items()
                if n in AERATED_LUNG and d <= float(near_spec["value"])}
        lung.update({n: 0.0 for n in hit if n in AERATED_LUNG})
        # a diaphragm label lies between the zone and the lung: nearer than the lung, so in the structures
        # near the zone or taken in (said there); new-user trial 107 F1: "(no diaphragm label)" beside
        # "the zone takes in diaphragm 0.05 mL" when the map had one
        if lung and "diaphragm" not in (cov.get("structures_near_mm") or {}) and "diaphragm" not in hit:
            names = ", ".join(f"{n} {d:.1f} mm" for n, d in sorted(lung.items(), key=lambda kv: kv[1]))
            out.append(f"{what}: the zone lies within {float(near_spec['value']):g} mm of the lung ({names}): the "
                       "diaphragm and the pleura lie between them (no diaphragm label): thermal injury of the "
                       "diaphragm or a pneumothorax (a high-risk location, Kang 2017); check the zone against "
                       "them, or protect them (artificial ascites / hydrodissection)")
    if close:   # trial 25 M3: small bowel 7.4 mm from the zone was a plan.json row only
        names = ", ".join(f"{n} {d:.1f} mm" for n, d in sorted(close.items(), key=lambda kv: kv[1]))
        lung_central = any(h in n for n in close for h in central)
        why = ("a central or paravertebral lung lesion: heart, great vessels, hilum, trachea, spinal canal and nerve "
               "roots, CIRSE 2020" if lung_central else
               "thermal injury of a hollow viscus, bile duct or the diaphragm, Kang 2017")
        protect = ("move or shorten the probe, or use a smaller setting" if in_lung else
                   "protect it (hydrodissection)")   # review 40 L8: no hydrodissection inside the lung
        out.append(f"{what}: the zone lies within {float(near_spec['value']):g} mm of {names} (a high-risk location: "
                   f"{why}); check the zone against it, or {protect}")
    from ..problem import names_a_lesion

    lesions = {n: hit.pop(n) for n in sorted(hit) if names_a_lesion(n)}
    if lesions:   # another tumour is not an organ to protect: it is half-treated (new-user trial 22)
        names = ", ".join(f"{n} {v:.2f} mL" for n, v in sorted(lesions.items(), key=lambda kv: -kv[1]))
        out.append(f"{what}: the ablation zone takes in part of another lesion ({names}): that lesion is "
                   "partly ablated and its own margin is not assessed; plan it as a target of its own, or "
                   "cover both in one plan and check each one's margin")
    if hit:
        names = ", ".join(f"{n} {v:.2f} mL" for n, v in sorted(hit.items(), key=lambda kv: -kv[1]))
        out.append(f"{what}: the ablation zone takes in {names}"
                   + (f" (structures besides {host_organ})" if host_organ else "")
                   + ": thermal injury of these structures; check the zone against them, move or shorten "
                     "the probe, or protect them (hydrodissection)")
    # tissue no label names (the map's unnamed rest: background, or only the body outline): an
    # organ the label map lacks would be heated unsaid (new-user trial 95 F9: 9.9 mL of perihepatic
    # fat and abdominal wall beside 2.75 mL of colon, the colon alone said); said from 0.05 mL (said
    # "0.1 mL"), as the zone's sides past the image
    rest = sum(float(v) for n, v in cov.get("healthy_ml", {}).items() if n in ("unlabelled", "body"))
    if round(rest, 1) > 0:
        out.append(f"{what}: the ablation zone takes in {rest:.1f} mL of tissue that no label names"
                   + (f" outside {host_organ}" if host_organ else "")
                   + " (fat, the body wall, or an organ the label map lacks): check what it is on the images "
                     "before ablating; a fuller segmentation (imagio segment, TotalSegmentator) names it")
    return out


def probe_doubts(what: str, probes: list, tumour: str, host_organ: str = "") -> list[str]:
    """One line per probe (``probes``: `multiprobe.ProbePlacement` dicts) whose antenna crosses a
    structure that is not passable (``crossed_mm``: avoid, margin or forbidden roles, mm) or whose
    tip lies outside ``tumour`` and its ``host_organ`` (``tip_in``): the tip is advanced past the
    target so that the zone centre lands on it (``centre_offset_mm`` of the setting), and that
    advance can leave the organ (new-user trial 19: a microwave antenna through the right adrenal
    gland into the retroperitoneum, the plan said only that the zone took in the adrenal)."""
    out = []
    for k, p in enumerate(probes, start=1):
        name = f"{what}, probe {k}" if len(probes) > 1 else what
        crossed = p.get("crossed_mm") or {}
        if crossed:
            out.append(f"{name}: the probe crosses " + ", ".join(f"{n} ({v:.1f} mm)" for n, v in
                                                                  sorted(crossed.items(), key=lambda kv: -kv[1]))
                       + ": check the path against them, or choose another path or a setting with a "
                         "shorter tip-to-centre offset")
        tip = p.get("tip_in") or ""
        if host_organ and tip and tip not in (tumour, host_organ):
            out.append(f"{name}: the probe's tip lies in {tip} at {[round(x, 1) for x in p['tip_ras']]} RAS mm, "
                       f"outside {host_organ} (advanced past the tumour so that the zone centre lands on it): "
                       "check the tip's position, or choose a setting with a shorter tip-to-centre offset")
    return out


def ablation_warnings(abl: dict, host_organ: str = "", multi_probe_failed: str | None = None,
                      tumour_in_lung: bool = False, ct=None) -> list[str]:
    """Every doubt about an ablation plan (`ablation_for_plan`'s dict), one line each, for the
    plan's ``warnings``:

    - per single-probe proposal and for the multi-probe plan: the minimal ablative margin (MAM)
      below the required one (``minimal_ablative_margin_mm`` of ``imagio/data/ablation_criteria.json``:
      5 mm, Laimer et al., Eur Radiol 2020;30:2463-2472; ACCLAIM consensus), with both figures
      and what to do; the tumour not wholly inside the zones;
    - labelled structures other than the tumour and its host organ inside the zones (mL): thermal
      injury of a neighbouring organ, bone or lung (Ahmed M et al., Image-guided tumor ablation:
      standardization of terminology and reporting criteria, Radiology 2014;273:241-260: the
      zone's relation to adjacent critical structures is to be reported);
    - a tumour in aerated lung planned with a zone chart not measured in lung (`chart_tissue_doubt`);
    - a multi-probe margin guarantee that is not proven on the analysis grid, a fewest-probe count
      that is not proven, and a multi-probe plan that failed (``multi_probe_failed``).

    ``host_organ``: the structure holding the tumour ("" unknown: every structure is named);
    ``tumour_in_lung``: the tumour lies in the lung (`zone_doubts`); ``ct``: the planned CT, whose
    interpolated gaps the margin's and heat sinks' points are checked against (`gap_doubt`). Figures are those of ``abl`` (mL, mm, RAS mm)."""

    dev = f"{abl['device']} {abl['setting']}"
    out = []
    chart = chart_tissue_doubt(abl, lies_in_lung(abl["tumour"], host_organ, tumour_in_lung))
    if chart:
        out.append(chart)
    iso = abl.get("isotherm_c")
    if abl.get("modality") == "cryoablation" and iso is not None:
        from .criteria import is_lethal, lethal_isotherm_c

        lethal = lethal_isotherm_c()
        if not is_lethal(iso):   # trial 32 H2: a 0 C margin was called "met" with no word
            out.append(f"ablation ({dev}): coverage and margin are measured on the {iso:g} C isotherm (the edge of "
                       f"the ice ball seen on CT), which does not kill tissue: the lethal zone (at or below {lethal:g} C, "
                       "Littrup 2009) is smaller, so the tumour's coverage and margin are overstated; choose a "
                       f"setting of {lethal:g} C or colder (imagio ablation devices) to judge them")

    def zone_doubts_(what: str, cov: dict, fix: str) -> None:
        out.extend(zone_doubts(what, cov, fix, abl["tumour"], host_organ, tumour_in_lung, ct))

    def probe_doubts_(what: str, probes: list) -> None:
        out.extend(probe_doubts(what, probes, abl["tumour"], host_organ))

    for d in abl.get("single_probe", []):
        dev_s = f"{abl['device']} {d.get('setting') or abl['setting']}"   # its own: `spare.spare_hollow_viscus`
        bad = [p for p in d.get("probes", []) if not p.get("feasible", True)]
        if bad:   # trial 32 H1: an infeasible probe's coverage was printed as the plan's, no word
            out.append(f"proposal {d['proposal']} ablation ({dev_s}, one probe): the probe breaks "
                       f"{', '.join(bad[0].get('violations') or ['a hard constraint'])} (length "
                       f"{bad[0]['length_mm']:.1f} mm) even with its tip on the target: its coverage and margin "
                       "are not those of a placeable probe; choose another path or device")
        st = d.get("status") or ""
        if d.get("status_kind") in ("advanced_short", "advanced_short_image", "centred_graze"):   # review 42 L4: the kind, not the words
            # why the probe is not where the device table wants it, or a doubt on its track (trial 50 M1:
            # only plan.json's status said the fissure rule held the probe back)
            out.append(f"proposal {d['proposal']} ablation ({dev_s}, one probe): {st.removeprefix('single probe, ')}")
        zone_doubts_(f"proposal {d['proposal']} ablation ({dev_s}, one probe)", d["coverage"],
                     # trial 92: the image's edge held the probe back; more probes or power are not the fix
                     ("image the tissue beyond the image's end the probe stops at (a longer scan or a wider "
                      "field of view) and plan again, or use --multi-probe, a larger setting or another path")
                     if d.get("status_kind") == "advanced_short_image" else
                     "use --multi-probe, a larger setting or another path")
        probe_doubts_(f"proposal {d['proposal']} ablation probe", d.get("probes", []))
        if d.get("margin_met_elsewhere"):   # trial 107 F3: the best zone misses the margin, another meets it
            out.append(f"proposal {d['proposal']} ablation ({dev_s}, one probe): {d['margin_met_elsewhere']}: "
                       "compare them (plan.json, the report) before choosing this path")
    mp = abl.get("multi_probe")
    if multi_probe_failed:
        out.append(f"multi-probe plan with {dev} failed: {multi_probe_failed}; the single-probe results "
                   "are kept")
    elif mp:
        n = mp["n_probes"]
        what = f"multi-probe ablation ({dev}, {n} probe{'s' if n != 1 else ''})"
        for g in mp.get("shared_entries") or []:
            names = ", ".join(map(str, g))
            at = [round(x, 1) for x in mp["probes"][g[0] - 1]["entry_ras"]]
            if abl.get("modality") == "cryoablation":
                out.append(f"{what}: probes {names} share one skin entry at {at} RAS mm, but cryoprobes freeze at "
                           "the same time and cannot lie in the same tissue: this plan cannot be placed as is; give each "
                           "probe its own entry, the probes spaced apart (<= 2 cm for confluent lethal isotherms, "
                           "Littrup 2009), or use fewer, larger zones")
            else:
                out.append(f"{what}: probes {names} share one skin entry at {at} RAS mm: they are positions of "
                           f"{shared_entry_words(mp['probes'], g)}, ablated one after the other (sequential "
                           "overlapping ablations), not probes in place together; see each position's entry and tip "
                           "in plan.json or the report")
        for c in (mp.get("close_shafts") or []) if abl.get("modality") == "cryoablation" else []:
            out.append(f"{what}: the shafts of probes {c['probes'][0]} and {c['probes'][1]} pass {c['distance_mm']:g} mm "
                       f"apart at {c['at_ras']} RAS mm, closer than a shaft and both probes' placement uncertainty: "
                       "cryoprobes are in place together and may meet there; this plan cannot be placed as is "
                       "(move one entry, or use fewer, larger zones)")
        pl = mp.get("placement") or {}
        far = [(i + 1, d) for i, d in enumerate(pl.get("nearest_tip_mm") or [])
               if pl.get("simultaneous") and d > pl["max_tip_spacing_mm"]]
        if far:   # Littrup 2009: lethal ice of a lone probe under heat load is small; <= 2 cm arrays overcome it
            out.append(f"{what}: probe{'s' if len(far) > 1 else ''} "
                       f"{', '.join(f'{i} ({d:g} mm)' for i, d in far)} lie{'' if len(far) > 1 else 's'} farther "
                       f"than {pl['max_tip_spacing_mm']:g} mm from every other probe's tip: the cover counts each "
                       "probe's own single-probe isotherm from the device table, but lethal ice is confluent only "
                       "between cryoprobes <= 2 cm apart and a lone probe under body heat load made little of it "
                       "(Littrup 2009; Shah 2016: 1-1.5 cm for practice); check that probe's lethal zone or bring "
                       "a probe within 2 cm of it")
        probe_doubts_(what, mp.get("probes", []))
        col = mp.get("collateral") or {}
        if col.get("in_zones_ml"):   # trial 50 M2: the cover took in duodenum and kidney with no word of why
            names = ", ".join(f"{n} {v:.2f} mL ({col['classes'].get(n) or 'critical'})"
                              for n, v in sorted(col["in_zones_ml"].items(), key=lambda kv: -kv[1]))
            how = col.get("how") or (
                "local swaps of the cover (pairs of zones) found none of that many probes sparing more of it, "
                "which does not prove that none exists" if col.get("searched") else
                "the cover's zones were swapped one at a time only")
            out.append(f"{what}: the zones take in {names}, though the cover weighs critical tissue "
                       f"(per mL: {', '.join(f'{k} x{v:g}' for k, v in (col.get('weights') or {}).items())}, "
                       f"ablation_criteria.json collateral_cost) against the fewest probes: {how}; check the "
                       "zones against it, protect it (hydrodissection), or add a probe or choose another setting "
                       "to keep the zones off it")
        zone_doubts_(what, mp["coverage"], "choose a larger setting, or add probes until the margin holds "
                                           + ("(--guarantee-margin)" if mp.get("status_kind") == "one_probe" else
                                              "(--guarantee-margin; the cover above is checked at sample points of "
                                              "the margin only)"))
        g = mp.get("margin_guarantee") or {}
        if g and not g.get("proven", True):
            out.append(f"{what}: the {g['margin_mm']:g} mm margin is {g['statement']}")
        if mp.get("status_kind") == "cover_not_proven":
            out.append(f"{what}: {mp['status'].split(';')[0]}")
        if mp.get("single_status_kind") in ("advanced_short", "advanced_short_image", "centred_graze"):
            # review 44 M3: the one probe of a single-probe plan keeps that probe's doubt (a fissure graze,
            # a zone centre short of the target), not only the single-probe section
            out.append(f"{what}: proposal {mp.get('from_proposal')}'s probe: "
                       f"{(mp.get('single_status') or '').removeprefix('single probe, ')}")
    return out


def register(subparsers) -> None:
    s = subparsers.add_parser("ablation", help="ablation devices: list the catalogue, import a site table",
                              description="Ablation device catalogue (zone sizes per setting, with sources).")
    sub = s.add_subparsers(dest="ablation_command", required=True, metavar="SUBCOMMAND")
    d = sub.add_parser("devices", help="list devices and settings with zone sizes and sources")
    d.add_argument("--json", action="store_true", help="print JSON")
    d.add_argument("--devices", help="an extra device file to merge (same format)")
    d.set_defaults(func=cmd_devices)
    i = sub.add_parser("import-devices", help="validate a site device table and merge it into the catalogue",
                       description="Validate FILE (format: imagio/data/ablation_devices.schema.json) and merge "
                                   "its devices into the per-user device file (or --to PATH).")
    i.add_argument("file", help="JSON device table")
    i.add_argument("--to", help="device file to merge into (default: the per-user file)")
    i.set_defaults(func=cmd_import)
