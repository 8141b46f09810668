"""Connected components on the mask's box (issue 20): `segmentation.common.components` against
cc3d on the whole volume (the baseline, the code before, quoted here), in the same run, on
every mask that ``imagio demo``'s segmentation labels (rule-based body, airways, lungs, bones,
then the one-click lesions) of the 1.5 mm phantom (the user's cache, `phantom.cache`): CPU-s
of both over all calls (process time), whether every call gave the same labels, number and
counts, and the whole segmentation's CPU-s with the baseline swapped in for every importer
against the code as it is, with identical labels.

Rows: name, value (this code), unit, baseline (whole volume), ratio (baseline / value).
"""

from __future__ import annotations

import time

import numpy as np


def whole_volume_components(mask, connectivity=6):
    """The baseline: cc3d on the whole volume, then `label_counts` (common.py before issue 20's
    box)."""
    import cc3d

    from imagio.segmentation.common import label_counts

    lab, n = cc3d.connected_components(np.ascontiguousarray(mask, dtype=bool), connectivity=connectivity,
                                       return_N=True)
    return lab, n, label_counts(lab, n)


def _swap(fn):
    """Put ``fn`` as `components` into every segmentation module that has it; returns the undo."""
    from .bench_morphology import swap_in_segmentation

    return swap_in_segmentation({"components": fn})


def _segment(ph):
    from imagio.segmentation import segment_demo
    from imagio.segmentation.lesion import segment_lesion

    rules = segment_demo(ph.ct)
    return rules, [segment_lesion(ph.ct, les.center_ras)[0] for les in ph.lesions]


def run() -> list[dict]:
    from imagio.phantom.cache import load_or_generate
    from imagio.segmentation import common

    ph, _, _ = load_or_generate(spacing=1.5, seed=0)
    new = common.components
    calls = {"old": 0.0, "new": 0.0, "n": 0, "same": True}

    def both(mask, connectivity=6):
        c0 = time.process_time()
        a = whole_volume_components(mask, connectivity)
        c1 = time.process_time()
        b = new(mask, connectivity)
        c2 = time.process_time()
        calls["old"] += c1 - c0
        calls["new"] += c2 - c1
        calls["n"] += 1
        calls["same"] &= (a[0].dtype == b[0].dtype and np.array_equal(a[0], b[0]) and a[1] == b[1]
                          and np.array_equal(a[2], b[2]))
        return b

    undo = _swap(both)
    try:
        _segment(ph)
    finally:
        undo()
    undo = _swap(whole_volume_components)
    try:
        c0 = time.process_time()
        ref = _segment(ph)
        cb = time.process_time() - c0
    finally:
        undo()
    c0 = time.process_time()
    got = _segment(ph)
    ca = time.process_time() - c0
    same = (np.array_equal(ref[0].array, got[0].array) and ref[0].labels == got[0].labels
            and all(np.array_equal(x, y) for x, y in zip(ref[1], got[1])))
    return [
        {"name": f"demo segmentation: components, {calls['n']} calls, CPU-s", "value": calls["new"], "unit": "s",
         "baseline": calls["old"], "ratio": calls["old"] / max(calls["new"], 1e-9)},
        {"name": "demo segmentation: every call's labels/counts identical", "value": int(calls["same"]), "unit": "bool"},
        {"name": "demo segmentation (rules + lesions), CPU-s", "value": ca, "unit": "s", "baseline": cb,
         "ratio": cb / max(ca, 1e-9)},
        {"name": "demo segmentation: labels and lesion masks identical", "value": int(same), "unit": "bool"},
    ]
