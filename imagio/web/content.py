"""What IMAGIO Web's side panel shows, as plain data: proposal rows, target and catalogue
choices, and the report document led by the path the user chose (no trame, no VTK)."""

from __future__ import annotations

PROPOSAL_COLUMNS = ("rank", "score", "length_mm", "closest_structure", "closest_clearance_mm",
                    "craniocaudal_deg", "feasible", "findings")


def proposal_rows(plan) -> list[dict]:
    """One JSON-ready row per proposal of ``plan`` (imagio.planning.Plan), best first: rank,
    score, length (mm), closest structure and its clearance (mm), craniocaudal angle (deg), its
    findings (`Plan.proposal_finding_names`, joined: a proposal with one is ranked after those
    without, whatever its score) and the colour of its line in the views (CSS rgb)."""
    from ..mrml.planning import PROPOSAL_COLORS

    rows = []
    names = plan.proposal_finding_names()
    for r, m in enumerate(plan.proposals):
        c = PROPOSAL_COLORS[r % len(PROPOSAL_COLORS)]
        rows.append({"color": "rgb({},{},{})".format(*(int(255 * v) for v in c)), "rank": r + 1,
                     "score": round(float(m.score), 3), "length_mm": round(float(m.length_mm), 1),
                     "closest_structure": str(m.closest_structure),
                     "closest_clearance_mm": round(float(m.closest_clearance_mm), 1),
                     "craniocaudal_deg": round(float(m.craniocaudal_deg), 1), "feasible": bool(m.feasible),
                     "findings": ", ".join(n.replace("_", " ") for n in names[r]) or "-"})
    return rows


def target_choices(segment_names) -> list[str]:
    """Segments that can be targets: lesions first (`problem.names_a_lesion`: catalogue targets and
    lesion-like names such as GTV_Mass, sarcoma_1, metastasis_4), then the other structures; the patient's
    outline (`problem.is_outline`: body, skin) is never offered (new-user trial 95 F1: the first
    segment, "body", was the default target and its biopsy was planned as compliant)."""
    from ..planning.problem import is_outline, names_a_lesion

    names = [n for n in segment_names if not is_outline(n)]
    lesion = [n for n in names if names_a_lesion(n)]
    return lesion + [n for n in names if n not in lesion]


def default_target(choices) -> str | None:
    """The target chosen when a case opens: the first lesion-like segment of ``choices``
    (`target_choices`), else none (the user chooses: a default organ would be planned as if
    chosen)."""
    from ..planning.problem import names_a_lesion

    return next((n for n in choices if names_a_lesion(n)), None)


def nodule_choices(names) -> list[str]:
    """The lung nodules of the segments ``names`` a bronchoscopic route may go to (names holding
    "nodule": lung_nodule_1, TotalSegmentator's lung_nodules)."""
    return [n for n in names if "nodule" in n]


def procedure_sections(names) -> dict[str, bool]:
    """Which procedure sections of the page apply to a case whose segments are ``names``:
    {"ablation": a visceral organ is labelled, or a lesion named after one (`planning.sarcoma.plan.host_organ`:
    liver, lung, kidney, ..., liver_tumor_1): the devices' zones are for tumours in organs, and a
    limb's soft-tissue sarcoma is biopsied (its tract excised with the tumour: Mankin 1996), not
    ablated here; "bronchoscopy": a lung nodule to route to (`nodule_choices`)}. A section that does
    not apply is hidden (new-user trial 96 F7: a thigh's sarcoma page offered an ablation device and
    an empty bronchoscopy "Nodule" box). The sarcoma biopsy stays: it says itself why it does not apply."""
    from ..planning.sarcoma.plan import host_organ

    names = list(names)
    return {"ablation": any(host_organ(n) for n in names), "bronchoscopy": bool(nodule_choices(names))}


def chosen_first(doc: dict, chosen: dict | None) -> dict:
    """The plan document with the path the user chose first among the proposals, labelled so the
    report says which it is: "chosen = #k" when it is proposal k unchanged, "chosen (edited)"
    when it was dragged (then the proposals follow as #1, #2, ...)."""
    if chosen is None:
        return doc
    props = list(doc.get("proposals") or [])
    same = [i for i, p in enumerate(props)
            if all(abs(a - b) < 0.01 for a, b in zip(p["entry_ras"] + p["target_ras"],
                                                      chosen["entry_ras"] + chosen["target_ras"]))]
    if same:
        k = same[0]
        first = dict(props.pop(k), label=f"chosen = #{k + 1}")
    else:
        first = dict(chosen, label="chosen (edited)")
    rest = [dict(p, label=p.get("label") or f"#{i + 1}") for i, p in enumerate(doc.get("proposals") or [])
            if not same or i != same[0]]
    return {**doc, "proposals": [first, *rest]}


def scope_choices() -> list[str]:
    from ..planning.bronchoscopy import load_scopes

    return list(load_scopes()["scopes"])


def device_choices() -> list[dict]:
    from ..planning.ablation import load_catalogue

    return [{"value": n, "title": f"{d.label or n} [{d.modality}]"} for n, d in load_catalogue().items()]


def setting_choices(device: str) -> list[dict]:
    from ..planning.ablation import get_device

    return [{"value": s.id, "title": f"{s.label}: {s.zone_length_mm:g} x {s.zone_diameter_mm:g} mm"}
            for s in get_device(device).settings.values()]


def ablation_text(device: str, setting: str, coverage, note: str = "") -> str:
    """The page's ablation line: "<device> <setting>: tumour covered ..%, tumour + 5 mm ..%
    (the required margin of ablation_criteria.json, as the criterion holds it);
    minimal ablative margin .. mm" with the margin's and the hollow-viscus criterion's verdicts
    and ``note`` (`imagio.mrml.ablation.placement_note`: where the tip goes, and which setting
    IMAGIO chose instead of the asked one, and why). ``device``, ``setting``: the placed probe's
    own (its ProbePlan's, `imagio.mrml.ablation.chosen_setting`), never the one asked in the
    panel: they differ when `spare.spare_hollow_viscus` kept a hollow viscus out with another
    setting. ``coverage``: its `coverage.Coverage`."""
    from ..planning.ablation.commands import hollow_viscus_words
    from ..planning.ablation.criteria import mam_text

    c = coverage
    need = float(c.criteria["minimal_ablative_margin"]["required"])   # ablation_criteria.json's, one definition
    m5 = c.margin_covered_pct.get(need)
    mam = c.criteria["minimal_ablative_margin"]["met"]
    hv = hollow_viscus_words(c.criteria.get("no_hollow_viscus"))
    from ..report import percent_covered

    return (f"{device} {setting}: tumour covered {percent_covered(c.tumour_covered_pct)}%"
            + (f", tumour + {need:g} mm {m5:.1f}%" if m5 is not None else "")
            + f"; minimal ablative margin {mam_text(c.mam_mm)} mm"
            + (" (not verifiable: past the image)" if mam is None else "" if mam else f" (below {need:g} mm)")
            + (f"; {hv}" if hv else "") + (f"; {note}" if note else ""))


def case_name(ct_path=None) -> str:
    """The case as the browser tab names it: "phantom" for the digital patient (no ``ct_path``),
    else the CT's folder and file name without its extensions ("thigh/ct" for thigh/ct.nii.gz;
    a DICOM folder's own name)."""
    from pathlib import Path

    if not ct_path:
        return "phantom"
    p = Path(ct_path)
    stem = p.name
    for ext in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".mrb", ".mrml", ".dcm"):
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
            break
    return f"{p.parent.name}/{stem}" if p.suffix and p.parent.name else stem


def page_title(case: str = "") -> str:
    """The browser tab's title (trame's ``trame__title``; new-user trial 50 L3: trame's default
    "trame is built by Kitware"): "IMAGIO", then the case once one is loaded."""
    return f"IMAGIO: {case}" if case else "IMAGIO"
