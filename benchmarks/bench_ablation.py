"""Ablation benchmark: zone + coverage + minimal ablative margin update for 1 and 3 probes,
side by side with a naive baseline in the same run, peak memory, and a multi-probe plan.

Case: the digital phantom at 1.5 mm, its first liver tumour (30 mm), Emprint 100 W 10 min.
IMAGIO: `AblationContext` prepared once (supersampled crop, tumour distance map, surface),
then each update rasterises the zones in their boxes and runs one two-label ``edt`` in a box
around tumour and zones. Baseline: what one would write first, on the whole CT grid at CT
resolution: every voxel tested against every zone, ``scipy.ndimage.distance_transform_edt``
inside and outside the zone, margin read on the tumour's boundary voxels. The multi-probe row
plans a 45 mm tumour inserted in the 3 mm phantom.

Against another checkout in the same run (``IMAGIO_BENCH_BASELINE=/path/to/checkout``, e.g. a
worktree of main): the multi-probe plan of the 45 mm tumour + 5 mm in the 1.5 mm phantom (the
demo's case) in two fresh child processes, one importing that checkout's ``imagio``, one this
tree's, baseline first, ``IMAGIO_BENCH_REPEAT`` times (default 1) alternately: CPU time of the
``plan_multiprobe`` call (all threads), its traced peak, probes and lower bound, coverage of
tumour + 5 mm, surface MAM, and the margin each cover guarantees (this tree's
`guaranteed_margin` applied to both covers' zones in the parent).

Pair swaps (review 43 M4): the demo's multi-probe plan (45 mm tumour + 5 mm, 1.5 mm phantom)
with the set cover's pair swaps that spare critical tissue and without them (``spare_rounds=0``,
the baseline) in the same run: total time, the swaps' own time, and the probe count of each.
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


_CHILD = """
import json, sys, time, tracemalloc
import numpy as np
from imagio import phantom
from imagio.planning import PlanningProblem, plan
from imagio.planning.ablation import AblationContext, get_device
from imagio.planning.ablation.multiprobe import plan_multiprobe
from imagio.planning.ablation.synthetic import insert_sphere
ph = phantom.generate(spacing=1.5)
ct, lab, _ = insert_sphere(ph.ct, ph.labels, 22.5)
p = plan(PlanningProblem.build(ct, lab, "liver_tumor_large"))
ctx = AblationContext(lab, "liver_tumor_large")
dev = get_device("emprint")
tracemalloc.start()
t0, c0 = time.perf_counter(), time.process_time()
mp = plan_multiprobe(p, ctx, dev, dev.setting("100W_10min"), margin_mm=5.0)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
print(json.dumps({"cpu": cpu, "wall": wall, "traced_mib": peak, "n": len(mp.probes), "lb": mp.lower_bound,
                  "cov5": mp.coverage.margin_covered_pct[5.0], "tumour": mp.coverage.tumour_covered_pct,
                  "mam": mp.coverage.mam_mm,
                  "zones": [[list(map(float, z.centre)), list(map(float, z.axis)), z.a_mm, z.b_mm] for z in mp.zones]}))
"""


def _multiprobe_against_baseline() -> list[dict]:
    """The demo's multi-probe plan, this tree against ``IMAGIO_BENCH_BASELINE`` (module doc)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    base = os.environ.get("IMAGIO_BENCH_BASELINE")
    if not base:
        return []
    from imagio import phantom
    from imagio.planning.ablation import AblationContext, Ellipsoid
    from imagio.planning.ablation.multiprobe import guaranteed_margin
    from imagio.planning.ablation.synthetic import insert_sphere

    here = str(Path(__file__).resolve().parents[1])
    res = {"base": [], "new": []}
    for _ in range(int(os.environ.get("IMAGIO_BENCH_REPEAT", "1"))):
        for who, root in (("base", base), ("new", here)):
            out = subprocess.run([sys.executable, "-c", _CHILD], env=dict(os.environ, PYTHONPATH=root), cwd=root,
                                 check=True, capture_output=True, text=True, encoding="utf-8").stdout
            res[who].append(json.loads(out.strip().splitlines()[-1]))
    ph = phantom.generate(spacing=1.5)
    _, lab, _ = insert_sphere(ph.ct, ph.labels, 22.5)
    ctx = AblationContext(lab, "liver_tumor_large")
    med = lambda rs, k: float(np.median([r[k] for r in rs]))   # noqa: E731
    gm = {w: guaranteed_margin(ctx, [Ellipsoid(np.array(c), np.array(u), a, b) for c, u, a, b in rs[0]["zones"]],
                               5.0)["guaranteed_margin_mm"] for w, rs in res.items()}
    b, n = res["base"], res["new"]
    rows = [{"name": "multi-probe 1.5 mm: plan_multiprobe CPU time (baseline: other checkout, same run)",
             "value": med(n, "cpu"), "unit": "s", "baseline": med(b, "cpu"), "ratio": med(b, "cpu") / med(n, "cpu")},
            {"name": "multi-probe 1.5 mm: plan_multiprobe wall time (same)", "value": med(n, "wall"), "unit": "s",
             "baseline": med(b, "wall"), "ratio": med(b, "wall") / med(n, "wall")},
            {"name": "multi-probe 1.5 mm: plan_multiprobe traced peak (same)", "value": med(n, "traced_mib"),
             "unit": "MiB", "baseline": med(b, "traced_mib")}]
    for key, what, unit in (("n", "probes", ""), ("lb", "lower bound", ""), ("tumour", "tumour covered", "%"),
                            ("cov5", "tumour + 5 mm covered", "%"), ("mam", "surface MAM", "mm")):
        rows.append({"name": f"multi-probe 1.5 mm: {what} (baseline: other checkout)", "value": n[0][key],
                     "unit": unit, "baseline": b[0][key]})
    rows.append({"name": "multi-probe 1.5 mm: guaranteed margin of the cover (baseline: other checkout's cover)",
                 "value": gm["new"], "unit": "mm", "baseline": gm["base"]})
    return rows


def _pair_swap_rows(s) -> list[dict]:
    """The demo's multi-probe plan with and without the pair swaps (module doc), same run."""
    from imagio import phantom
    from imagio.planning import PlanningProblem, plan
    from imagio.planning.ablation import AblationContext, get_device
    from imagio.planning.ablation.multiprobe import SPARE_ROUNDS, plan_multiprobe
    from imagio.planning.ablation.synthetic import insert_sphere

    ph = phantom.generate(spacing=1.5)
    ct, lab, _ = insert_sphere(ph.ct, ph.labels, 22.5)
    p = plan(PlanningProblem.build(ct, lab, "liver_tumor_large"))
    ctx = AblationContext(lab, "liver_tumor_large")
    got = {}
    for rounds in (0, SPARE_ROUNDS):   # baseline first
        t0 = time.perf_counter()
        mp = plan_multiprobe(p, ctx, get_device("emprint"), s, margin_mm=5.0, spare_rounds=rounds)
        got[rounds] = (time.perf_counter() - t0, mp.timings_s.get("pair_swaps", 0.0), len(mp.probes),
                       sum((mp.collateral or {}).get("in_zones_ml", {}).values()))
    (b, _, nb, cb), (n, sw, nn, cn) = got[0], got[SPARE_ROUNDS]
    return [{"name": "multi-probe 1.5 mm (demo): plan time with pair swaps (baseline: without, same run)",
             "value": n, "unit": "s", "baseline": b, "ratio": b / n},
            {"name": "multi-probe 1.5 mm (demo): pair swaps' own time", "value": sw, "unit": "s"},
            {"name": "multi-probe 1.5 mm (demo): probes with pair swaps (baseline: without)", "value": nn, "unit": "",
             "baseline": nb},
            {"name": "multi-probe 1.5 mm (demo): critical tissue in the zones (baseline: without swaps)",
             "value": cn, "unit": "mL", "baseline": cb}]


def run() -> list[dict]:
    from imagio import phantom
    from imagio.planning.ablation import AblationContext, get_device, zones

    rows = [{"name": "cores available", "value": os.cpu_count(), "unit": ""},
            {"name": "load average at start (shared machine)", "value": os.getloadavg()[0], "unit": ""}]
    rows += _multiprobe_against_baseline()
    if os.environ.get("IMAGIO_BENCH_ABLATION_ONLY", "") == "baseline":   # the comparison only
        return rows
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
    rows += _pair_swap_rows(s)
    rows += [{"name": "multi-probe 45 mm + 5 mm: plan time", "value": time.perf_counter() - t0, "unit": "s"},
             {"name": "multi-probe: probes (baseline = lower bound)", "value": len(mp.probes), "unit": "",
              "baseline": mp.lower_bound},
             {"name": "multi-probe: tumour + 5 mm covered", "value": mp.coverage.margin_covered_pct[5.0], "unit": "%"},
             {"name": "multi-probe: candidate zones after reduction", "value": mp.n_candidates, "unit": ""}]
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
