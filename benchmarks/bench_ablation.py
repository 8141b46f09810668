"""Ablation benchmark: zone + coverage + minimal ablative margin update for 1 and 3 probes,
side by side with a naive baseline in the same run, peak memory, and a multi-probe plan.

Case: the digital phantom at 1.5 mm, its first liver tumour (30 mm), Emprint 100 W 10 min.
IMAGIO: `AblationContext` prepared once (supersampled crop, tumour distance map, surface),
then each update rasterises the zones in their boxes and runs one two-label ``edt`` in a box
around tumour and zones. Baseline: what one would write first, on the whole CT grid at CT
resolution: every voxel tested against every zone, ``scipy.ndimage.distance_transform_edt``
inside and outside the zone, margin read on the tumour's boundary voxels. The multi-probe row
plans a 45 mm tumour inserted in the 3 mm phantom.
"""

from __future__ import annotations

import os
import time
import tracemalloc

import numpy as np

REPEATS = 7


def _probes(c, s, n):
    from imagio.planning.ablation import Probe

    u = np.array([-0.3, -0.95, 0.0])
    u /= np.linalg.norm(u)
    side = np.cross(u, [0.0, 0.0, 1.0])
    offs = [np.zeros(3)] if n == 1 else [8 * side, -8 * side, np.array([0, 0, 8.0])][:n]
    return [Probe(c + o + s.centre_offset_mm * u, u) for o in offs]


def naive_update(labels, tumour, ells):
    """Baseline: full grid, CT resolution, scipy EDT; returns (covered %, MAM mm)."""
    from scipy import ndimage

    kji = np.indices(labels.shape).reshape(3, -1).T.astype(float)
    ras = labels.kji_to_world(kji)
    zone = np.zeros(len(ras), bool)
    for e in ells:
        zone |= e.contains(ras)
    zone = zone.reshape(labels.shape)
    sp = labels.spacing_kji
    sdf = ndimage.distance_transform_edt(zone, sampling=sp) - ndimage.distance_transform_edt(~zone, sampling=sp)
    edge = tumour & ~ndimage.binary_erosion(tumour)
    return 100.0 * (zone & tumour).sum() / tumour.sum(), float(sdf[edge].min())


def _time(fn, repeats=REPEATS):
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), out


def run() -> list[dict]:
    from imagio import phantom
    from imagio.planning.ablation import AblationContext, get_device, zones

    rows = [{"name": "cores available", "value": os.cpu_count(), "unit": ""},
            {"name": "load average at start (shared machine)", "value": os.getloadavg()[0], "unit": ""}]
    ph = phantom.generate(spacing=1.5)
    les = next(l for l in ph.lesions if l.kind == "liver_tumor")
    s = get_device("emprint").setting("100W_10min")
    tracemalloc.start()
    t0 = time.perf_counter()
    ctx = AblationContext(ph.labels, les.name)
    setup = time.perf_counter() - t0
    ctx.evaluate(zones(_probes(les.center_ras, s, 3), s))
    peak_ours = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    rows.append({"name": f"context setup (once per tumour), grid {ctx.grid.shape}", "value": setup, "unit": "s"})
    tumour = ph.labels.array == ctx.tumour_value
    for n in (1, 3):
        probes = _probes(les.center_ras, s, n)
        t_ours, cov = _time(lambda: ctx.evaluate(zones(probes, s), "microwave"))
        t_base, (bcov, bmam) = _time(lambda: naive_update(ph.labels, tumour, zones(probes, s)), 2)
        rows.append({"name": f"{n} probe(s): zone + coverage + MAM update", "value": 1000 * t_ours, "unit": "ms",
                     "baseline": 1000 * t_base, "ratio": t_base / t_ours})
        t_fast, _ = _time(lambda: ctx.evaluate(zones(probes, s), "microwave", details=False))
        rows.append({"name": f"{n} probe(s): same, while dragging (no structures/heat sink)",
                     "value": 1000 * t_fast, "unit": "ms", "baseline": 1000 * t_base, "ratio": t_base / t_fast})
        rows.append({"name": f"{n} probe(s): tumour covered (ours / naive)", "value": cov.tumour_covered_pct,
                     "unit": "%", "baseline": bcov})
        rows.append({"name": f"{n} probe(s): MAM (ours / naive at CT resolution)", "value": cov.mam_mm,
                     "unit": "mm", "baseline": bmam})
    tracemalloc.start()
    naive_update(ph.labels, tumour, zones(_probes(les.center_ras, s, 3), s))
    peak_base = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    rows.append({"name": "peak memory: setup + 3-probe update (tracemalloc)", "value": peak_ours, "unit": "MiB",
                 "baseline": peak_base, "ratio": peak_base / peak_ours})
    # multi-probe plan: 45 mm tumour in the 3 mm phantom
    from imagio.planning import PlanningProblem, plan
    from imagio.planning.ablation.multiprobe import plan_multiprobe
    from imagio.planning.ablation.synthetic import insert_sphere

    ph3 = phantom.generate(spacing=3.0)
    ct, lab, _ = insert_sphere(ph3.ct, ph3.labels, 22.5)
    p = plan(PlanningProblem.build(ct, lab, "liver_tumor_large"))
    ctx3 = AblationContext(lab, "liver_tumor_large")
    t0 = time.perf_counter()
    mp = plan_multiprobe(p, ctx3, get_device("emprint"), s, margin_mm=5.0)
    rows += [{"name": "multi-probe 45 mm + 5 mm: plan time", "value": time.perf_counter() - t0, "unit": "s"},
             {"name": "multi-probe: probes (baseline = lower bound)", "value": len(mp.probes), "unit": "",
              "baseline": mp.lower_bound},
             {"name": "multi-probe: tumour + 5 mm covered", "value": mp.coverage.margin_covered_pct[5.0], "unit": "%"},
             {"name": "multi-probe: candidate zones after reduction", "value": mp.n_candidates, "unit": ""}]
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
