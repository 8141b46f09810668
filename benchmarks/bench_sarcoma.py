"""Sarcoma biopsy (issue 18): the viable-tumour map and the cores' specimens against the thigh
phantom's true necrotic core, and the map on the five real STS CTs.

Phantom cases: seeds x sizes x spacings (2.5 and 3 mm) x necrotic fractions. Per case: the share of
the true necrosis the map calls viable (new map, and the former "2 mm-smoothed CT > 20 HU" map as
the baseline), the share of the true viable tumour it loses, and per planned core the share of
its specimen (the throw, tip before firing -> fired tip) in the true necrosis. Real cases: the
method, threshold, component levels and viable share (``../shared/data/sts-sarcoma``).
``python -m benchmarks sarcoma``; ``python -m benchmarks.bench_sarcoma`` prints one line per case.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sts-sarcoma"
CASES = [  # seed, spacing mm, compartment, diameter mm, necrotic radius share, side
    (0, 3.0, "anterior", 80, 0.5, "left"), (1, 3.0, "posterior", 100, 0.5, "right"),
    (2, 2.5, "medial", 70, 0.5, "left"), (3, 3.0, "anterior", 90, 0.6, "left"),
    (4, 2.5, "anterior", 120, 0.6, "left"), (5, 2.5, "anterior", 150, 0.7, "right"),
    (6, 3.0, "anterior", 40, 0.5, "left"), (7, 3.0, "medial", 60, 0.4, "right"),
]


def specimen_truth(ph, core) -> float:
    a, b = np.asarray(core["fire_from_ras"], float), np.asarray(core["metrics"].target_ras, float)
    s = a + np.linspace(0.0, 1.0, 51)[:, None] * (b - a)
    return float(ph.truth["necrosis"][tuple(np.rint(ph.labels.world_to_kji(s)).astype(int).T)].mean())


def phantom_rows(verbose=False) -> list[dict]:
    from imagio.phantom.limb import thigh
    from imagio.planning.sarcoma import plan_sarcoma_biopsy
    from imagio.planning.sarcoma.viable import viable_map

    worst_new = worst_old = worst_spec = worst_lost = 0.0
    n_cores = []
    for seed, h, comp, d, nf, side in CASES:
        ph = thigh(seed=seed, spacing_mm=h, tumour_compartment=comp, tumour_diameter_mm=d,
                   necrotic_fraction=nf, side=side)
        tum, nec = ph.mask("sarcoma_1"), ph.truth["necrosis"]
        new = viable_map(ph.ct, tum)
        old = viable_map(ph.ct, tum, threshold_hu=20.0)     # the former map: 2 mm-smoothed CT > 20 HU
        called = float((new.mask & nec).sum() / max(nec.sum(), 1))
        called_old = float((old.mask & nec).sum() / max(nec.sum(), 1))
        lost = float((~new.mask & tum & ~nec).sum() / max((tum & ~nec).sum(), 1))
        sp = plan_sarcoma_biopsy(ph.ct, ph.labels)
        spec = [specimen_truth(ph, c) for c in sp.cores]
        worst_new, worst_old = max(worst_new, called), max(worst_old, called_old)
        worst_lost, worst_spec = max(worst_lost, lost), max([worst_spec, *spec])
        n_cores.append(len(sp.cores))
        if verbose:
            print(f"seed {seed} {h} mm {comp} {d} mm necrotic {nf}: necrosis called viable {100 * called:.1f}% "
                  f"(former map {100 * called_old:.1f}%), viable lost {100 * lost:.1f}%, threshold "
                  f"{new.threshold_hu:.1f} HU ({new.method}, smoothing {new.smoothing_mm:g} mm), {len(sp.cores)} cores, "
                  f"specimens in true necrosis {[round(100 * x) for x in spec]}%", flush=True)
    return [{"name": f"phantom: true necrosis called viable, worst of {len(CASES)}", "value": 100 * worst_new,
             "unit": "%", "baseline": 100 * worst_old},
            {"name": "phantom: true viable tumour lost, worst", "value": 100 * worst_lost, "unit": "%"},
            {"name": "phantom: specimen in true necrosis, worst core", "value": 100 * worst_spec, "unit": "%"},
            {"name": "phantom: cores planned, fewest (4 asked)", "value": min(n_cores), "unit": "cores"}]


def real_rows(verbose=False) -> list[dict]:
    from imagio import io
    from imagio.planning.sarcoma.viable import viable_map

    rows = []
    for case in sorted(p.name for p in DATA.glob("STS_*")) if DATA.is_dir() else []:
        ct = io.read_image(DATA / case / "CT_image.nii.gz")
        gtv = io.read_image(DATA / case / "CT_mask.nii.gz").array > 0
        vm = viable_map(ct, gtv)
        pct = 100.0 * vm.viable_ml / vm.tumour_ml
        if verbose:
            print(f"{case}: {vm.tumour_ml:.0f} mL, {vm.method}, threshold {vm.threshold_hu:.1f} HU, levels "
                  f"{ {k: round(v) for k, v in vm.levels_hu.items()} }, smoothing {vm.smoothing_mm:g} mm, "
                  f"viable {pct:.1f}%, baseline (>20 HU, 2 mm) "
                  f"{100 * viable_map(ct, gtv, threshold_hu=20.0).viable_ml / vm.tumour_ml:.1f}%", flush=True)
            print(f"{case}: {vm.islands_ignored} non-viable specks below {vm.min_island_ml:.2f} mL counted as viable "
                  f"({vm.islands_ignored_ml:.1f} mL); max depth in viable tumour {vm.depth_mm.max():.1f} mm", flush=True)
        rows.append({"name": f"{case}: viable share ({vm.method})", "value": pct, "unit": "%"})
        rows.append({"name": f"{case}: max depth in viable tumour", "value": float(vm.depth_mm.max()), "unit": "mm"})
    return rows


def run(verbose=False) -> list[dict]:
    return phantom_rows(verbose) + real_rows(verbose)


if __name__ == "__main__":
    for r in run(verbose=True):
        print(r)
