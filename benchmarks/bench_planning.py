"""Needle planner benchmark: precompute, score every candidate, re-score one path, memory;
side by side with a baseline doing what Slicer's PercutaneousApproachAnalysis does (one
``vtkModifiedBSPTree.IntersectWithLine`` per skin entry against the obstacle surface mesh).

Cases: the digital phantom at 1 mm (``imagio.phantom``; a synthetic torso at 1 mm until the
phantom exists) and the largest real case (pyradiomics lung2, 512 x 512 x 61 at 0.63 x 0.63 x 5
mm; body and bone from HU as a fallback, its mass as the target). The skin spacing is lowered
from 3 mm until at least 20,000 candidates exist. The baseline is timed on a subset of the
candidates and extrapolated linearly (it is a per-candidate loop); it checks intersection only,
while the vectorised pass computes every criterion.
"""

from __future__ import annotations

import os
import time
import tracemalloc
from pathlib import Path

import numpy as np

MIN_CANDIDATES = 20_000
BASELINE_SUBSET = 3000
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _phantom_case():
    try:
        from imagio import phantom
    except ImportError:
        phantom = None
    from imagio.planning import PlanningProblem

    if phantom is not None and hasattr(phantom, "generate"):
        ph = phantom.generate(spacing=1.0, seed=0)
        les = next(l for l in ph.lesions if l.kind == "liver_tumor")
        target = les.name if les.name in ph.labels.labels.values() else les.center_ras
        return "phantom 1 mm", PlanningProblem.build(ph.ct, ph.labels, target)
    from imagio.planning.synthetic import synthetic_torso

    ct, lab = synthetic_torso(1.0)
    return "synthetic torso 1 mm", PlanningProblem.build(ct, lab, "liver_tumor")


def _lung2_case():
    from imagio import io
    from imagio.planning import PlanningProblem
    from imagio.planning.problem import fallback_label_map

    base = SHARED / "pyradiomics-lung"
    if not (base / "lung2_image.nrrd").exists():
        return None
    ct = io.read_image(base / "lung2_image.nrrd")
    lesion = io.read_image(base / "lung2_label.nrrd").array > 0
    return "lung2 (0.63x0.63x5 mm)", PlanningProblem.build(ct, fallback_label_map(ct, lesion), "lung_nodule")


def _baseline_mesh(maps):
    """Obstacle surface (forbidden + margin structures of the crop) and its BSP tree."""
    from imagio.vtklib import vtk
    from imagio.vtklib import numpy_support as ns

    lab = maps.label
    obst = [i for i, r in enumerate(maps.roles) if r in ("forbidden", "margin")]
    vals = [v for v, n in maps.grid.labels.items() if n in {maps.names[i] for i in obst}]
    mask = np.isin(lab, vals).astype(np.uint8)
    img = vtk.vtkImageData()
    img.SetDimensions(*mask.shape[::-1])
    img.GetPointData().SetScalars(ns.numpy_to_vtk(mask.ravel(), deep=True))
    fe = vtk.vtkDiscreteFlyingEdges3D()
    fe.SetInputData(img)
    fe.SetValue(0, 1)
    tf = vtk.vtkTransform()
    tf.SetMatrix(maps.grid.ijk_to_ras.ravel().tolist())
    f = vtk.vtkTransformPolyDataFilter()
    f.SetTransform(tf)
    f.SetInputConnection(fe.GetOutputPort())
    f.Update()
    poly = f.GetOutput()
    tree = vtk.vtkModifiedBSPTree()
    tree.SetDataSet(poly)
    tree.BuildLocator()
    return poly, tree


def _baseline_intersections(tree, entries, target) -> np.ndarray:
    from imagio.vtklib import vtk

    pts, ids = vtk.vtkPoints(), vtk.vtkIdList()
    hit = np.zeros(len(entries), bool)
    t = [float(x) for x in target]
    for n, e in enumerate(entries):
        tree.IntersectWithLine([float(x) for x in e], t, 1e-3, pts, ids)
        hit[n] = pts.GetNumberOfPoints() > 0
    return hit


def _bench_case(label, prob) -> list[dict]:
    from imagio.planning.candidates import skin_candidates
    from imagio.planning.distance_maps import precompute
    from imagio.planning.evaluate import Evaluator
    from imagio.planning.scoring import score_paths

    rows = []
    t0 = time.perf_counter()
    maps = precompute(prob)
    t_pre = time.perf_counter() - t0
    spacing = prob.constraints.skin_spacing_mm
    while True:
        cand = skin_candidates(maps, prob.target.point_ras, prob.needle.length_mm, spacing)
        if len(cand) >= MIN_CANDIDATES or spacing <= 1.0:
            break
        spacing = round(spacing - 0.5, 2)
    n = len(cand)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        table = score_paths(prob, maps, cand.entry_ras, cand.normal_ras, device="numpy")
        times.append(time.perf_counter() - t0)
    t_score = min(times)
    torch_rows = []
    try:
        import torch
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    except ImportError:
        devices = []
    for dev in devices:
        t0 = time.perf_counter()   # first call: builds the nearest-structure maps, uploads
        score_paths(prob, maps, cand.entry_ras, cand.normal_ras, device=dev)
        t_first = time.perf_counter() - t0
        torch_rows.append({"name": f"{label}: score all candidates, torch {dev}, first call "
                           "(one-time nearest-structure maps + upload included)", "value": t_first,
                           "unit": "s", "baseline": t_score, "ratio": t_score / t_first})
        tt = []
        for _ in range(3):
            t0 = time.perf_counter()
            score_paths(prob, maps, cand.entry_ras, cand.normal_ras, device=dev)
            tt.append(time.perf_counter() - t0)
        torch_rows.append({"name": f"{label}: score all candidates, torch {dev}", "value": min(tt),
                           "unit": "s", "baseline": t_score, "ratio": t_score / min(tt)})
    ev = Evaluator(prob, maps)
    feas = np.flatnonzero(table.feasible)
    pick = feas if len(feas) else np.arange(n)
    rng = np.random.default_rng(0)
    sel = rng.choice(pick, size=min(200, len(pick)), replace=len(pick) < 200)
    ev.evaluate(cand.entry_ras[sel[0]])
    t0, c0 = time.perf_counter(), time.process_time()
    for i in sel:
        ev.evaluate(cand.entry_ras[i])
    t_eval = (time.perf_counter() - t0) / len(sel)
    c_eval = (time.process_time() - c0) / len(sel)
    outside_rows = _bench_outside(label, prob, table, sel)

    # memory: peak traced allocations of precompute + scoring
    tracemalloc.start()
    maps2 = precompute(prob)
    score_paths(prob, maps2, cand.entry_ras, cand.normal_ras)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del maps2

    # baseline: PercutaneousApproachAnalysis-style per-entry line intersection
    t0 = time.perf_counter()
    poly, tree = _baseline_mesh(maps)
    t_base_build = time.perf_counter() - t0
    sub = cand.entry_ras[:: max(1, n // BASELINE_SUBSET)]
    t0 = time.perf_counter()
    hit = _baseline_intersections(tree, sub, prob.target.point_ras)
    t_sub = time.perf_counter() - t0
    t_base = t_sub * n / len(sub)
    ours_blocked = (table.violations[:: max(1, n // BASELINE_SUBSET)] & 0b1100000) > 0  # forbidden|clearance
    agree = float(np.mean(hit <= ours_blocked)) if len(sub) else float("nan")

    rows += [
        {"name": f"{label}: candidates scored (skin spacing {spacing} mm)", "value": n, "unit": "paths"},
        {"name": f"{label}: path samples (every 0.5 voxel)", "value": int(table.n_samples), "unit": "samples"},
        {"name": f"{label}: precompute maps", "value": t_pre, "unit": "s",
         "baseline": t_base_build, "ratio": t_base_build / t_pre},
        {"name": f"{label}: score all candidates, every criterion", "value": t_score, "unit": "s",
         "baseline": t_base, "ratio": t_base / t_score},
        {"name": f"{label}: baseline timed on {len(sub)} paths, extrapolated", "value": t_sub, "unit": "s"},
        *torch_rows,
        {"name": f"{label}: re-score one path (evaluate), wall", "value": 1000 * t_eval, "unit": "ms"},
        {"name": f"{label}: re-score one path (evaluate), CPU time", "value": 1000 * c_eval, "unit": "ms"},
        *outside_rows,
        {"name": f"{label}: peak traced memory precompute+score", "value": peak / 2 ** 20, "unit": "MiB"},
        {"name": f"{label}: map memory", "value": maps.nbytes / 2 ** 20, "unit": "MiB"},
        {"name": f"{label}: feasible candidates", "value": int(table.feasible.sum()), "unit": "paths"},
        {"name": f"{label}: baseline-blocked paths also blocked by ours", "value": agree, "unit": "fraction"},
        {"name": f"{label}: obstacle mesh triangles (baseline)", "value": poly.GetNumberOfCells(), "unit": "cells"},
    ]
    return rows


def _bench_outside(label, prob, table, sel) -> list[dict]:
    """The needle part outside the skin against another body part (`findings.outside_clearance`,
    trial 61 M2) per click (one path, refined: what the live re-score adds) and per plan (every
    feasible path, coarse: what the ranking adds); baseline: the axis-only check it extends
    (`findings.tissue_outside_skin`), on the same paths in the same run; then the couch top
    (`findings.couch_clearance`) against the same baseline."""
    from imagio.planning.findings import couch_clearance, outside_clearance, tissue_outside_skin

    e, t, L = table.entry_ras, table.target_ras, table.length_mm

    def per_click(fn, **kw):
        fn(prob, e[sel[:1]], t[sel[:1]], L[sel[:1]], **kw)
        t0 = time.perf_counter()
        for i in sel:
            fn(prob, e[i:i + 1], t[i:i + 1], L[i:i + 1], **kw)
        return (time.perf_counter() - t0) / len(sel)

    click, click0 = per_click(outside_clearance, refine=True), per_click(tissue_outside_skin)
    feas = np.flatnonzero(table.feasible)
    t0 = time.perf_counter()
    tissue_outside_skin(prob, e[feas], t[feas], L[feas])
    t_all0 = time.perf_counter() - t0
    return [*_clearance_rows(label, "outside-skin clearance", "tissue outside the skin", outside_clearance, prob,
                             table, click, click0, t_all0, refine=False),
            *_clearance_rows(label, "couch clearance", "the couch top", couch_clearance, prob, table,
                             per_click(couch_clearance), click0, t_all0)]


def _clearance_rows(label, what, near_what, fn, prob, table, click, click0, t_all0, **kw) -> list[dict]:
    """Rows of one clearance check ``fn`` (`findings.outside_clearance` or `findings.couch_clearance`):
    per click (``click`` s, measured by the caller) and per plan (every feasible path, timed here), each
    against the axis-only outside check (``click0``, ``t_all0`` s), and how many feasible paths it
    finds near ``near_what``."""
    feas = np.flatnonzero(table.feasible)
    t0 = time.perf_counter()
    near = fn(prob, table.entry_ras[feas], table.target_ras[feas], table.length_mm[feas], **kw)[0]
    t_all = time.perf_counter() - t0
    return [
        {"name": f"{label}: {what} per click (baseline: axis-only outside check)", "value": 1000 * click,
         "unit": "ms", "baseline": 1000 * click0, "ratio": click0 / click},
        {"name": f"{label}: {what}, {len(feas)} feasible paths (baseline: axis)", "value": t_all,
         "unit": "s", "baseline": t_all0, "ratio": t_all0 / max(t_all, 1e-9)},
        {"name": f"{label}: feasible paths near {near_what}", "value": int(np.isfinite(near).sum()),
         "unit": "paths"},
    ]


def run() -> list[dict]:
    rows = [{"name": "cores available", "value": os.cpu_count(), "unit": ""},
            {"name": "load average at start (shared machine)", "value": os.getloadavg()[0], "unit": ""}]
    for case in (_phantom_case, _lung2_case):
        c = case()
        if c is not None:
            rows += _bench_case(*c)
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
