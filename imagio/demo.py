"""``imagio demo``: the main job on the embedded default case, the digital phantom.

1. generate the phantom (CT in HU + reference labels + generating geometry);
2. segment it: rule-based body, bones, lungs and airways from the CT (not the reference), and
   each lesion from one click at its centre; structures that need a deep model (liver, spleen,
   kidneys, heart, vessels, ...) come from the phantom's reference labels, standing in for the
   model, since no model weights ship with IMAGIO;
3. plan needle paths to the first liver tumour and the first lung nodule;
4. ablation: one probe for that liver tumour, and the fewest probes covering a 45 mm liver
   tumour (inserted into the phantom) + 5 mm, both planned for the probe's own shaft (as
   ``imagio plan --device``: the Emprint's 13G antenna, not the needle plans' biopsy needle);
5. bronchoscopy: the thin scope's route to each lung nodule along the rule-based airways,
   tunnels where it does not reach, a fly-through strip for the first;
6. write the CT, the segmentation, the plans, a Slicer scene and a PNG of the 3D view.

VTK's and MRML's messages go to ``OUT_DIR/imagio.log``; the progress callback's fraction never
decreases (each step has its own range).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from . import io
from .file_names import for_library
from .jsonable import to_jsonable
from .memory import release_free_memory, stage_peak_mib
from .progress import Progress
from .volume import Volume

# reference structures used as the stand-in for a deep model's output
MODEL_STAND_IN = (
    "liver", "gallbladder", "spleen", "stomach", "stomach_gas", "kidney_right", "kidney_left", "heart",
    "aorta", "inferior_vena_cava", "esophagus", "portal_vein_and_splenic_vein", "portal_vein",
    "hepatic_vein", "lung_vessels", "spinal_cord", "sternum", "costal_cartilages",
    # the realistic phantom's other organs and great vessels (a model segments them too; a needle
    # plan that does not know the colon or the pulmonary artery would cross them unwarned)
    "pancreas", "duodenum", "colon", "small_bowel", "pulmonary_artery", "pulmonary_vein",
    "superior_vena_cava", "brachiocephalic_trunk", "brachiocephalic_vein_left", "brachiocephalic_vein_right",
    "common_carotid_artery_left", "common_carotid_artery_right", "subclavian_artery_left",
    "subclavian_artery_right",
)


def compose_labels(rules: Volume, reference: Volume, lesions: dict[str, np.ndarray]) -> Volume:
    """One label map: rule-based structures, then the model stand-ins, then the lesion masks."""
    arr = rules.array.astype(np.uint8).copy()
    names = dict(rules.labels)
    nxt = max(names) + 1
    ref_inv = {n: v for v, n in reference.labels.items()}
    for name in MODEL_STAND_IN:
        if name in ref_inv:
            arr[reference.array == ref_inv[name]] = nxt
            names[nxt] = name
            nxt += 1
    for name, mask in lesions.items():
        arr[mask] = nxt
        names[nxt] = name
        nxt += 1
    present = set(np.unique(arr).tolist())
    return rules.with_array(arr, name="IMAGIO segmentation",
                            labels={v: n for v, n in names.items() if v in present})


def route_vtk_output(path) -> None:
    """Send VTK's (and so MRML's) warning and error messages to the log file ``path`` instead of
    the terminal (a vtkFileOutputWindow, appended, flushed per message).

    Loads VTK's core module only (``vtkCommonCore``, which holds the process's one output
    window, used by every VTK module loaded later), not `imagio.vtklib`'s rendering and filter
    modules: the demo calls this before its phantom and segmentation stages, which use no VTK,
    and those libraries' pages (about 50 MiB resident) would count in those stages' peaks
    (issue 20)."""
    from vtkmodules.vtkCommonCore import vtkFileOutputWindow, vtkOutputWindow

    w = vtkFileOutputWindow()
    w.SetFileName(for_library(path))
    w.AppendOn()
    w.FlushOn()
    vtkOutputWindow.SetInstance(w)


def run_demo(out_dir: Path, spacing: float = 1.5, seed: int = 0, progress=None) -> dict:
    """Run the demo into ``out_dir``; returns a JSON-able summary (files, timings, plans)."""
    from . import mrml, phantom
    from .phantom.cache import load_or_generate
    from .mrml.planning import plan_to_scene
    from .planning.planner import plan
    from .planning.problem import PlanningProblem
    from .planning.render import render_plan_png
    from .planning.risk_map import risk_polydata
    from .segmentation import segment_demo
    from .segmentation.lesion import segment_lesion

    from .outputs import atomic_path, write_text

    prog = Progress(progress)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    route_vtk_output(out / "imagio.log")
    timings, files, peaks, cpu = {}, [], {}, {}
    stage_peak_mib()   # each stage's peak from here on
    c = time.process_time()

    t = time.perf_counter()
    prog(0.0, f"generating the digital phantom at {spacing} mm (or reading it from the user's cache)")
    # the same objects and files either way (`phantom.cache`)
    ph, _, saved = load_or_generate(save_to=out / "phantom", spacing=spacing, seed=seed)
    files += saved
    timings["phantom"] = time.perf_counter() - t
    peaks["phantom"] = stage_peak_mib()
    cpu["phantom"], c = time.process_time() - c, time.process_time()

    t = time.perf_counter()
    rules = segment_demo(ph.ct, progress=prog.sub(0.05, 0.35))
    lesion_masks, measurements = {}, {}
    for les in ph.lesions:
        prog(0.35, f"one-click segmentation of {les.name}")
        mask, meas = segment_lesion(ph.ct, les.center_ras)
        lesion_masks[les.name] = mask
        measurements[les.name] = to_jsonable(vars(meas) if not hasattr(meas, "to_dict") else meas.to_dict())
    labels = compose_labels(rules, ph.labels, lesion_masks)
    rule_based = sorted(rules.labels.values())
    # full-volume masks and the reference labels, in ``labels`` now (the loop's ``mask`` held the
    # last lesion's mask, and ``ph`` the reference labels, to the end of the demo: 21 MiB each
    # at 1.5 mm); the rest of the demo reads the phantom's CT and lesions only
    ct, lesions = ph.ct, ph.lesions
    rules = lesion_masks = mask = meas = ph = None
    timings["segmentation"] = time.perf_counter() - t
    peaks["segmentation"] = stage_peak_mib()
    cpu["segmentation"], c = time.process_time() - c, time.process_time()
    # the CT was just written with the phantom: the same file, copied instead of encoded again
    files.append(Path(shutil.copyfile(out / "phantom" / "ct.nii.gz", out / "ct.nii.gz")))
    files.append(io.write_labels(labels, out / "segmentation.seg.nrrd"))

    scene = mrml.new_scene()
    # the nodes read the phantom's CT array and the label array (no copies: 42 + 21 MiB at
    # 1.5 mm); nothing edits either
    ct_node = mrml.volume_to_node(ct, scene, "CT", share=True)
    mrml.labels_to_segmentation(labels, scene, name="IMAGIO segmentation", reference_node=ct_node, share=True)

    from .planning.ablation.demo import place_small

    # the liver tumour's one-probe ablation is placed as soon as its needle plan is done, so the
    # plan (problem, tables, evaluator) is not held into the ablation stage; its maps stay in
    # `precompute`'s cache until the next target's maps replace them (that target reuses them).
    # The placement is written, and added to the scene, in the ablation stage, as before
    plans, first_name, small_ablation = {}, None, None
    targets = [next((l for l in lesions if l.kind == k), None) for k in ("liver_tumor", "lung_nodule")]
    targets = [l for l in targets if l is not None]
    t = time.perf_counter()
    for n, les in enumerate(targets):
        sub = prog.sub(0.4 + 0.3 * n / len(targets), 0.4 + 0.3 * (n + 1) / len(targets))
        sub(0.0, f"planning needle paths to {les.name}")
        # the labels are this CT's own segmentation, made above on its grid: registered by
        # construction, so the label-map checks (orientation, registration: 1-2 CPU-s) are not run
        problem = PlanningProblem.build(ct, labels, les.name, registration_checked=True)
        release_free_memory()   # the problem's temporaries (label-map masks) back before the maps
        result = plan(problem, progress=sub)
        doc = result.to_dict()   # written once, with the demo's inputs and measurements
        doc["inputs"] = to_jsonable({"ct": "ct.nii.gz", "labels": "segmentation.seg.nrrd",
                                     "picture_3d": f"plan_{les.name}.png", "meta": ct.meta})
        doc["target_measurements"] = measurements.get(les.name, {})
        plan_file = write_text(out / f"plan_{les.name}.json", json.dumps(doc, indent=1))
        files.append(plan_file)
        # the plan's freed temporaries back to the system before the offscreen render allocates
        # its own (Mesa's llvmpipe: 65-130 MiB more resident while it renders; issue 20)
        release_free_memory(collect=True)
        # the skin risk map, built once: shown in the picture, then the scene's model (issue 20)
        risk = risk_polydata(result.maps, result.table)
        files.append(render_plan_png(result, out / f"plan_{les.name}.png", risk=risk))   # this plan's own 3D view
        plan_to_scene(scene, result, risk=risk)
        risk = None   # (the scene holds it)
        first_name = first_name or les.name
        if les.kind == "liver_tumor" and small_ablation is None:
            small_ablation = place_small(result, progress=sub.sub(1.0, 1.0))
        best = result.proposals[0] if result.proposals else None
        plans[les.name] = to_jsonable({
            "feasible": result.feasible, "candidates": len(result.table),
            "feasible_candidates": int(result.table.feasible.sum()),
            "best": None if best is None else {
                "entry_ras": best.entry_ras, "length_mm": best.length_mm,
                "closest_structure": best.closest_structure,
                "closest_clearance_mm": best.closest_clearance_mm,
                "craniocaudal_deg": best.craniocaudal_deg},
            "report": None if result.feasible else result.report,
            # every doubt the plan's own JSON carries (trial 73: the short summary named none)
            "warnings": list(doc.get("warnings") or []),
            "file": str(plan_file),
        })
        # let go of this plan before the next one is built (the names would hold it until the
        # next plan returns), and hand its free pages back (`release_free_memory`)
        result = problem = doc = best = None
        release_free_memory(collect=True)   # (the plan's objects refer to each other: collected)
    from .planning.distance_maps import forget_cached_maps

    forget_cached_maps()      # the last target's maps (the ablation's large tumour is another case)
    timings["planning"] = time.perf_counter() - t
    peaks["planning"] = stage_peak_mib()
    cpu["planning"], c = time.process_time() - c, time.process_time()

    t = time.perf_counter()
    from .planning.ablation.demo import run as ablation_demo

    kept = [small_ablation]
    small_ablation = None   # handed over
    ablation = ablation_demo(ct, labels, None, out, scene, progress=prog.sub(0.7, 0.88), small=kept.pop())
    files += [Path(a["file"]) for a in ablation.values() if "file" in a]
    timings["ablation"] = time.perf_counter() - t
    peaks["ablation"] = stage_peak_mib()
    cpu["ablation"], c = time.process_time() - c, time.process_time()

    t = time.perf_counter()
    from .planning.bronchoscopy.demo import run as bronch_demo

    nodules = [l.name for l in lesions if l.kind == "lung_nodule"]
    bronch = bronch_demo(labels, nodules, out, scene, progress=prog.sub(0.88, 0.9))
    files += [Path(b[k]) for b in bronch.values() if isinstance(b, dict) for k in ("file", "picture") if k in b]
    timings["bronchoscopy"] = time.perf_counter() - t
    peaks["bronchoscopy"] = stage_peak_mib()
    cpu["bronchoscopy"], c = time.process_time() - c, time.process_time()

    t = time.perf_counter()
    prog(0.9, "writing the Slicer scene and the 3D picture")
    files.append(mrml.save_scene(scene, out / "scene" / "IMAGIO-demo.mrml"))
    if first_name is not None:   # the first plan's own picture (the same view, rendered once)
        with atomic_path(out / "demo.png") as tmp:
            shutil.copyfile(out / f"plan_{first_name}.png", tmp)
        files.append(out / "demo.png")
    prog(0.95, "writing the plan reports (HTML and PDF)")
    from .report import build_report

    for name in plans:
        doc = json.loads((out / f"plan_{name}.json").read_text(encoding="utf-8"))
        for key, extra in (("ablation", out / f"ablation_{name}.json"), ("bronchoscopy", out / f"bronch_{name}.json")):
            if extra.exists():
                doc[key] = json.loads(extra.read_text(encoding="utf-8"))
        fly = (bronch.get(name) or {}).get("picture") if isinstance(bronch.get(name), dict) else None
        extra = [(fly, "virtual bronchoscopy: endoluminal views from the trachea along the route "
                       "(camera on the airway centreline)")] if fly else []
        files += build_report(doc, out / "report" / f"report_{name}.pdf", ct, labels, out / f"plan_{name}.png",
                              extra_pictures=extra)
    timings["scene_and_reports"] = time.perf_counter() - t
    peaks["scene_and_reports"] = stage_peak_mib()
    cpu["scene_and_reports"], c = time.process_time() - c, time.process_time()
    prog(1.0, "done")
    summary = {
        "out_dir": str(out), "files": [str(f) for f in files],
        "segmentation": {"structures": sorted(labels.labels.values()),
                         "rule_based": rule_based,
                         "model_stand_in_from_reference": [n for n in MODEL_STAND_IN
                                                           if n in labels.labels.values()],
                         "lesions": measurements},
        "plans": plans,
        "ablation": to_jsonable(ablation),
        "bronchoscopy": to_jsonable(bronch),
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "cpu_s": {k: round(v, 2) for k, v in cpu.items()},   # CPU time of all threads per stage
        "peak_rss_mib": peaks,   # each stage's own peak resident memory (None: not measurable)
    }
    write_text(out / "summary.json", json.dumps(summary, indent=1))
    return summary
