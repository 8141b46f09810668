"""Lung nodule detection (issue 17): the weights-free detector on 20 phantom screening scans
(:mod:`imagio.phantom.screening`, 12 nodules of every type, 3-30 mm, juxta-pleural,
juxta-vascular and in fissures, 6 vessel-bifurcation mimics each; small airways' walls by partial
volume; 1.5 mm): LUNA16 CPM with its
bootstrap 95 % interval, sensitivity at 1 and 8 false positives per scan per type, size bin and
position; time per scan; the real nodules of ../shared/data (LIDC slabs, pyradiomics lung1/2,
Lung-PET-CT-Dx: first-hit rank, false positives, CPM with its bootstrap interval); the time for a
512 x 512 x 300 chest CT (the phantom torso resampled to
that grid, 0.72 x 0.50 x 1.12 mm) on this machine's cores.

Environment: IMAGIO_BENCH_DETECTION_SCANS (default 20) and IMAGIO_BENCH_DETECTION_SPACING
(default 1.5) change the phantom set; IMAGIO_BENCH_DETECTION_PHANTOM_ONLY=1 stops after the
phantom rows (no 512 x 512 x 300 timing, no real scans: for iterating on the detector, e.g.
``IMAGIO_BENCH_DETECTION_SCANS=4 IMAGIO_BENCH_DETECTION_PHANTOM_ONLY=1 python -m benchmarks detection``).
The rows "false positives above the 8 FP/scan threshold on: ..." say what the false positives
that set that operating point lie on (:func:`imagio.detection.screening_eval.false_positive_structures`);
the rows "... above the 1 FP/scan threshold on: ..." the same for the ones that set the CPM's
low operating points (1/8 to 1 FP/scan).
The row "recall any rank, all nodules" is the CPM a perfect ranking of the same candidates would
reach (each FROC sensitivity is at most the recall): the part of the goal ranking alone can give.
The rows "never a candidate: ..." count the nodules no candidate hits by the first step of
candidate generation that lost them (:func:`imagio.detection.screening_eval.never_candidate_causes`),
and by the phantom's position class (attachment: parenchyma, juxta-pleural, juxta-vascular,
fissure) and size bin, out of the nodules of that cell,
how many of them are Lung-RADS >= 3, and how many are below the working grid's own limit (the
same ball alone in the parenchyma, on the same grid, reads at most ``min_contrast_hu``).
Goal (issue 17): CPM >= 0.80; < 20 s per 512x512x300 scan on 2 cores.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def run() -> list[dict]:
    import numpy as np

    from imagio.detection import detect
    from imagio.detection.blobs import _canonical_ct_and_mask, _candidates_from_pool, candidate_pool
    from imagio.detection.screening_eval import (FP_STRUCTURES, evaluate_screening, false_positive_structures,
                                                 never_candidate_causes)
    from imagio.phantom.screening import screening_scan
    from imagio.segmentation.common import as_progress

    n = int(os.environ.get("IMAGIO_BENCH_DETECTION_SCANS", "20"))
    sp = float(os.environ.get("IMAGIO_BENCH_DETECTION_SPACING", "1.5"))
    scans, cands, times, misses = [], [], [], []
    for seed in range(n):
        s = screening_scan(spacing=sp, seed=seed)
        t0 = time.perf_counter()
        # detect(ct) of the weights-free detector, step by step so the pool is kept for the misses
        ct, mask = _canonical_ct_and_mask(s.phantom.ct, None)
        pool = candidate_pool(ct, mask)
        c = _candidates_from_pool(ct, pool, as_progress(None)) if pool is not None else []
        times.append(time.perf_counter() - t0)
        scans.append(s)
        cands.append(c)
        if pool is not None:
            misses += never_candidate_causes(s, pool, c)
    ev = evaluate_screening(scans, cands)
    rows = [{"name": f"phantom screening CPM ({n} scans, {sp:g} mm)", "value": ev["cpm"], "unit": ""},
            {"name": "CPM 95% CI low", "value": ev["cpm_ci"][0], "unit": ""},
            {"name": "CPM 95% CI high", "value": ev["cpm_ci"][1], "unit": ""},
            {"name": "nodules", "value": ev["n_nodules"], "unit": ""},
            {"name": "CPM on Lung-RADS >= 3 nodules (others excluded)", "value": ev["cpm_lung_rads_3_or_more"], "unit": ""},
            {"name": "  its 95% CI low", "value": ev["cpm_lung_rads_3_or_more_ci"][0], "unit": ""},
            {"name": "  its 95% CI high", "value": ev["cpm_lung_rads_3_or_more_ci"][1], "unit": ""},
            {"name": "false positives (all candidates) per scan",
             "value": ev["n_false_positives"] / max(n, 1), "unit": "/scan"},
            {"name": "mimic false positives at 8 FP/scan", "value": ev["fp_on_mimics_at_8fp"],
             "unit": f"/{ev['n_mimics']}"}]
    for r, s in zip(ev["fp_rates"], ev["sensitivities"]):
        rows.append({"name": f"sensitivity at {r:g} FP/scan", "value": s, "unit": ""})
    # per type, size bin and position: sensitivity at 1 and 8 FP/scan, and the recall of the
    # candidate list at any rank (misses there are candidate generation's, the rest the ranking's)
    for key in ("by_type", "by_size", "by_position", "by_lung_rads_3_or_more"):
        for g, v in ev[key].items():
            rows.append({"name": f"sens@8FP {key[3:]} {g} (n={v['n']})", "value": v["sensitivity_at_8fp"], "unit": ""})
            rows.append({"name": f"sens@1FP {key[3:]} {g}", "value": v["sensitivity_at_1fp"], "unit": ""})
            rows.append({"name": f"recall any rank {key[3:]} {g}", "value": v["sensitivity_any"], "unit": ""})
    # the recall of the whole candidate list: every FROC sensitivity, hence the CPM, a perfect
    # ranking of these same candidates could reach (the goal above it needs candidate generation)
    n_any = sum(v["n"] * v["sensitivity_any"] for v in ev["by_type"].values())
    rows.append({"name": "recall any rank, all nodules (CPM ceiling of a perfect ranking)",
                 "value": n_any / max(ev["n_nodules"], 1), "unit": ""})
    rows.append({"name": "candidates per scan", "value": float(np.mean([len(c) for c in cands])), "unit": "/scan"})
    # what the false positives that set the 8 FP/scan operating point lie on (phantom geometry)
    fps = [f for s, c in zip(scans, cands) for f in false_positive_structures(s, c, ev["thresholds"]["8fp"])]
    for kind in FP_STRUCTURES:
        rows.append({"name": f"false positives above the 8 FP/scan threshold on: {kind}",
                     "value": sum(f["structure"] == kind for f in fps), "unit": f"/{len(fps)}"})
    ev["false_positives_at_8fp"] = fps
    # the same at the 1 FP/scan threshold: the false positives that set the CPM's low operating
    # points (1/8, 1/4, 1/2 and 1 FP/scan, each a subset of these)
    fps1 = [f for f in fps if f["probability"] > ev["thresholds"]["1fp"]]
    for kind in FP_STRUCTURES:
        rows.append({"name": f"false positives above the 1 FP/scan threshold on: {kind}",
                     "value": sum(f["structure"] == kind for f in fps1), "unit": f"/{len(fps1)}"})
    rows.append({"name": f"detect time per scan median {scans[0].phantom.ct.shape}",
                 "value": float(np.median(times)), "unit": "s"})
    rows.append({"name": "detect time per scan max", "value": float(np.max(times)), "unit": "s"})
    for cause in sorted({m["cause"] for m in misses}):
        for b in sorted({m["size_bin"] for m in misses}):
            cnt = sum(1 for m in misses if m["cause"] == cause and m["size_bin"] == b)
            if cnt:
                rows.append({"name": f"never a candidate: {cause}, {b}", "value": cnt, "unit": "nodules"})
    # by attachment (the phantom's position class: parenchyma, juxta-pleural, juxta-vascular,
    # fissure) and size bin: where candidate generation loses nodules (issue 17's lever)
    cells = {(t["position"], t["size_bin"]) for s in scans for t in s.truth}
    for pos, b in sorted(cells, key=lambda pb: (pb[0], float(pb[1].split("-")[0]))):
        n_cell = sum(t["position"] == pos and t["size_bin"] == b for s in scans for t in s.truth)
        rows.append({"name": f"never a candidate: {pos}, {b}",
                     "value": sum(m["position"] == pos and m["size_bin"] == b for m in misses),
                     "unit": f"/{n_cell}"})
    rows.append({"name": "never a candidate: Lung-RADS >= 3 (actionable) ones",
                 "value": sum(bool(m["lung_rads_3_or_more"]) for m in misses), "unit": f"/{len(misses)}"})
    rows.append({"name": "never a candidate: below the grid's limit (the ball alone reads <= min_contrast_hu)",
                 "value": sum(bool(m["below_grid_limit"]) for m in misses), "unit": f"/{len(misses)}"})
    ev["never_candidate"] = [{k: m[k] for k in ("kind", "diameter_mm", "size_bin", "position", "cause", "response_hu",
                                                "search_fraction", "isolated_ball_hu", "below_grid_limit",
                                                "lung_rads_3_or_more")} for m in misses]
    out = Path(__file__).resolve().parent / "detection_results.json"
    if os.environ.get("IMAGIO_BENCH_DETECTION_PHANTOM_ONLY") == "1":
        out.write_text(json.dumps(ev, indent=1, default=float), encoding="utf-8")
        return rows
    # a 512 x 512 x 300 chest CT: the full torso phantom resampled to that grid
    from imagio import phantom
    from imagio.volume import Volume, make_ijk_to_ras

    ph = phantom.generate(spacing=sp, seed=0)
    ext = np.asarray(ph.ct.shape[::-1]) * ph.ct.spacing  # i, j, k mm
    shape_ijk = np.array([512, 512, 300])
    spacing = ext / shape_ijk
    corner = ph.ct.ijk_to_world(-0.5 * np.ones((1, 3)))[0]
    aff = make_ijk_to_ras(spacing, corner + ph.ct.direction @ (0.5 * spacing), ph.ct.direction)
    ref = Volume(np.zeros(tuple(shape_ijk[::-1]), np.uint8), aff)
    big = ph.ct.resample_like(ref, order=1)
    big = big.with_array(np.rint(big.array).astype(np.int16))
    from imagio.detection.blobs import detect_blobs

    t0 = time.perf_counter()
    detect(big)
    rows.append({"name": f"detect time 512x512x300 ({', '.join(f'{v:.2f}' for v in spacing)} mm), "
                         f"{os.cpu_count()} cores", "value": time.perf_counter() - t0, "unit": "s"})
    # baseline in the same run (same load): every scale on a 1 mm grid, no pyramid (the method
    # before issue 17's speed work, lungs cropped the same way)
    t0 = time.perf_counter()
    detect_blobs(big, work_spacing_mm=1.0, pyramid=False)
    rows.append({"name": "baseline: same scan, 1 mm grid, no pyramid", "value": time.perf_counter() - t0,
                 "unit": "s"})
    # real nodules (../shared/data): each reference found?, false positives per scan, CPM with
    # its bootstrap interval over the scans (whole volumes, not the tests' slabs)
    from imagio.detection.froc import evaluate
    from imagio.detection.references import real_cases

    data = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    real = real_cases(data, slab_mm=None) if data.exists() else []
    cand_d, ref_d = {}, {}
    for name, ct, centre, diameter in real:
        t0 = time.perf_counter()
        cs = detect(ct)
        dt = time.perf_counter() - t0
        cen = np.array([c.center_ras for c in cs]).reshape(-1, 3)
        hit = np.linalg.norm(cen - centre, axis=1) < diameter / 2.0
        rank = int(np.argmax(hit)) + 1 if hit.any() else 0
        rows.append({"name": f"real {name}: first-hit rank (0 = missed) {ct.shape}",
                     "value": rank, "unit": "rank"})
        rows.append({"name": f"real {name}: candidates not on the nodule", "value": int((~hit).sum()), "unit": "FP"})
        rows.append({"name": f"real {name}: detect time", "value": dt, "unit": "s"})
        cand_d[name] = np.c_[cen, [c.probability for c in cs]]
        ref_d[name] = np.array([[*centre, diameter]])
    if real:
        ev_real = evaluate(cand_d, ref_d, scans=list(cand_d))
        rows += [{"name": f"real nodules CPM ({len(real)} scans, 1 nodule each)", "value": ev_real["cpm"], "unit": ""},
                 {"name": "real CPM 95% CI low", "value": ev_real["cpm_ci"][0], "unit": ""},
                 {"name": "real CPM 95% CI high", "value": ev_real["cpm_ci"][1], "unit": ""}]
        ev["real"] = {k: v for k, v in ev_real.items() if k != "curve"}
    out.write_text(json.dumps({k: v for k, v in ev.items()}, indent=1, default=float), encoding="utf-8")
    return rows
