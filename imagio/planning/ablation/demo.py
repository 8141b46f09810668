"""The ablation part of ``imagio demo``: one probe for a small liver tumour, and the fewest
probes for a large one (a 45 mm tumour inserted into the phantom's liver when it has none).
Both are planned for the device's own shaft (`Device.needle`), as ``imagio plan --device`` and
the Slicer module plan them."""

from __future__ import annotations

import json
from pathlib import Path

from ...outputs import write_text

DEMO_DEVICE = ("emprint", "100W_10min")
LARGE_RADIUS_MM = 22.5      # 45 mm: beyond one zone of the demo setting with a 5 mm margin
LARGE_NAME = "liver_tumor_large"


def place_small(small_plan, progress=None):
    """The one-probe plan for the small tumour of ``small_plan`` (a feasible `planner.Plan`):
    the best placement (placeable first, then compliant, then the largest minimal ablative margin)
    over the proposals of that plan made for the device's own shaft, each path's zone keeping
    hollow viscera out where a setting of the device or a position along the path allows
    (`spare.spare_hollow_viscus`; else said in the criterion)
    (`multiprobe.plan_for_probe`, as ``imagio plan --device`` and the Slicer module plan it: the
    clearances judged for the 13G antenna, not the needle plan's biopsy needle), as
    (`ProbePlan`, the context's `coverage.TumourOutline`: what `run` writes needs of the
    `AblationContext`, the tumour's host organ or ""); None when the plan is None or not feasible; when the plan
    is feasible for the needle but not for the probe's shaft, {"feasible": False, "report": ...}
    (said in the demo's summary and ablation output, not left out). Neither keeps the plan (its
    maps, problem and tables) nor the context's analysis grid and label map, so the caller can
    free the plan as soon as this returns (`imagio demo` does, before its next needle plan, and
    holds the result to its ablation stage); `run` writes the result."""
    from ...progress import Progress
    from .coverage import AblationContext
    from .devices import get_device
    from .spare import spare_hollow_viscus
    from .multiprobe import plan_for_probe

    if small_plan is None or not small_plan.feasible:
        return None
    dev = get_device(DEMO_DEVICE[0])
    s = dev.setting(DEMO_DEVICE[1])
    Progress(progress)(0.0, f"ablation: one {dev.name} probe for {small_plan.problem.target.name}")
    probe_plan = plan_for_probe(small_plan, dev)
    if not probe_plan.feasible:
        return {"tumour": small_plan.problem.target.name, "feasible": False, "report": probe_plan.report}
    ctx = AblationContext(probe_plan.problem.labels, probe_plan.problem.target.name)
    host = getattr(small_plan.problem.target, "organ", "") or ""
    # each path's zone keeps hollow viscera out where a setting / position along it allows (trial 96 F4)
    placed = [spare_hollow_viscus(probe_plan, ctx, dev, s, m.entry_ras)[0]
              for m in probe_plan.proposals]
    i = max(range(len(placed)), key=lambda k: (placed[k].probes[0].feasible, placed[k].coverage.compliant is not False,
                                               placed[k].coverage.mam_mm))
    best = placed[i]
    best.from_proposal = i + 1
    return best, ctx.outline(), host


def run(ct, labels, small_plan, out_dir, scene=None, progress=None, small=None) -> dict:
    """Write ``ablation_<tumour>.json`` for both plans; add their nodes to ``scene``.
    ``small``: `place_small`'s result, computed earlier (then ``small_plan`` is None)."""
    from ...progress import Progress
    from ..planner import plan
    from ..problem import Needle, PlanningProblem
    from ..skin import outer_skin, paint_keeps_skin
    from .coverage import AblationContext
    from .devices import get_device
    from .multiprobe import plan_multiprobe
    from .synthetic import insert_sphere

    prog = Progress(progress)
    out = Path(out_dir)
    dev = get_device(DEMO_DEVICE[0])
    s = dev.setting(DEMO_DEVICE[1])
    needle = dev.needle(Needle())   # the probe's own shaft (both plans: `place_small`, below)
    summary = {}
    if small is None:
        small = place_small(small_plan, progress=prog)
    small_plan = None   # its maps are not needed for the large tumour (freed if the caller let go)
    if isinstance(small, dict):   # the probe's shaft finds no feasible path (`place_small`)
        summary[small.pop("tumour")] = small
    elif small is not None:
        best, ctx, host = small
        summary[ctx.tumour_name] = _write(best, ctx, out, scene, needle, host, single=True)
    small = None
    best = ctx = None
    prog(0.2, "ablation: a 45 mm liver tumour and the fewest probes covering it + 5 mm")
    ct2, lab2, _ = insert_sphere(ct, labels, LARGE_RADIUS_MM, name=LARGE_NAME)
    skin = outer_skin(ct, labels)      # the case's model (cached): reused when the ball lies in the body
    ball = lab2.array != labels.array
    keeps = paint_keeps_skin(skin, ball, ct2.array[ball])
    del ball   # (a full-volume mask: not held through the plan)
    # the free heap pages (the centre search's and the ball's masks, then the problem's and the
    # plan's temporaries) back to the system before the plan and before the multi-probe plan
    # (`imagio.memory.release_free_memory`; no result changes)
    from ...memory import release_free_memory

    release_free_memory(collect=True)
    # planned for the probe's own shaft, as ``imagio plan --device`` plans it (`Device.needle`)
    problem = PlanningProblem.build(ct2, lab2, LARGE_NAME, needle=needle,   # lab2: the demo's own segmentation
                                    skin=skin if keeps else None, registration_checked=True)
    release_free_memory()   # (the problem's temporaries: label-map masks)
    p = plan(problem, progress=prog.sub(0.2, 0.5))
    problem = None
    release_free_memory(collect=True)
    if p.feasible:
        ctx = AblationContext(lab2, LARGE_NAME)
        mp = plan_multiprobe(p, ctx, dev, s, margin_mm=5.0, progress=prog.sub(0.5, 1.0), free_maps=True)
        summary[LARGE_NAME] = _write(mp, ctx, out, scene, needle, getattr(p.problem.target, "organ", "") or "")
    else:
        summary[LARGE_NAME] = {"feasible": False, "report": p.report}
    return summary


def _write(pp, ctx, out: Path, scene, needle, host_organ: str, single: bool = False) -> dict:
    """Write ``ablation_<tumour>.json`` (``pp``: a `ProbePlan`; ``ctx``: its `AblationContext` or the
    context's `TumourOutline`; ``single``: the one probe placed on
    a proposal's path; ``host_organ``: the structure holding the tumour, "" unknown) with its ``warnings``: every doubt `commands.ablation_warnings` states for
    ``imagio plan`` (the margin below the required, critical tissue inside the zone, ...), so the
    demo says what the CLI says (trial 73: a zone taking in duodenum and a 4.4 mm margin, no word)."""
    from .commands import ablation_warnings, setting_choice_words, setting_fields
    from .devices import get_device

    d = pp.to_dict()
    # its own setting's power, time and zone (`spare.spare_hollow_viscus` may have chosen another than the demo's)
    d.update(setting_fields(get_device(d["device"]).setting(d["setting"])), setting_asked=DEMO_DEVICE[1],
             setting_choice=setting_choice_words(pp.hollow_viscus, d["device"]) or None)
    d["shaft_diameter_mm"] = needle.diameter_mm   # what the probes' clearances were judged for
    abl = {"device": d["device"], "setting": d["setting"], "modality": d.get("modality"),
           "tumour": ctx.tumour_name, "isotherm_c": d.get("isotherm_c")}
    if single:
        abl["single_probe"] = [{"proposal": d.get("from_proposal"), "coverage": d["coverage"],
                                "probes": d["probes"], "status": d["status"],
                                "status_kind": d.get("single_status_kind") or d.get("status_kind")}]
    else:
        abl["multi_probe"] = d
    d["warnings"] = ablation_warnings(abl, host_organ)
    path = out / f"ablation_{ctx.tumour_name}.json"
    write_text(path, json.dumps(d, indent=1))
    if scene is not None:
        from ...mrml.ablation import ablation_to_scene

        ablation_to_scene(scene, pp, ctx)
    c = d["coverage"]
    return {"file": str(path), "device": d["device"], "setting": d["setting"],
            "shaft_diameter_mm": d["shaft_diameter_mm"], "n_probes": d["n_probes"],
            "lower_bound": d["lower_bound"], "tumour_covered_pct": c["tumour_covered_pct"],
            "margin_covered_pct": c["margin_covered_pct"], "mam_mm": c["mam_mm"],
            "guaranteed_margin_mm": (d.get("margin_guarantee") or {}).get("guaranteed_margin_mm"),
            "margin_proven": (d.get("margin_guarantee") or {}).get("proven"),
            "margin_mm": (d.get("margin_guarantee") or {}).get("margin_mm"),
            "all_paths_feasible": all(p["feasible"] for p in d["probes"]), "status": d["status"],
            "criteria": c.get("criteria"), "hollow_viscus": d.get("hollow_viscus"), "warnings": d["warnings"]}
