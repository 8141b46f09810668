"""Issue 20 (the demo under 1 GB): the liver tumour's one-probe ablation is placed as soon as its
needle plan is done (`ablation.demo.place_small`) so that the demo frees the plan (its distance
maps, problem and candidate table) before the next plan, instead of holding it into the
ablation stage. The placement keeps none of the plan's memory (tracemalloc: numpy's
allocations are traced); that it is the same placement is checked on the demo's outputs
(every number of the old and new demo identical: bench_speed, IMAGIO_BENCH_BASELINE)."""

import gc
import tracemalloc
import weakref

import pytest

from imagio import phantom
from imagio.planning import PlanningProblem, plan
from imagio.planning.ablation import demo as ablation_demo


@pytest.fixture(scope="module")
def liver_case():
    ph = phantom.generate(spacing=3.0)
    les = next(l for l in ph.lesions if l.kind == "liver_tumor")
    return ph.ct, ph.labels, les.name


def test_place_small_keeps_none_of_the_plan(liver_case):
    from imagio.planning.distance_maps import forget_cached_maps

    ct, labels, name = liver_case
    forget_cached_maps()
    tracemalloc.start()
    try:
        p = plan(PlanningProblem.build(ct, labels, name))
        assert p.feasible
        forget_cached_maps()   # the demo's next plan replaces the cached maps
        maps = weakref.ref(p.maps)
        small = ablation_demo.place_small(p)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
        p = None
        gc.collect()
        freed = held - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert small is not None
    # the plan's maps are gone with the plan: nothing of the placement or its context holds them
    assert maps() is None
    # the placement keeps its tumour's name and surface, not the context's analysis grid and label
    # map (issue 20: 30-60 MiB at 1.5 mm, held by the demo through its next plan)
    import numpy as np

    assert small[1].tumour_name == name and small[1].surface.GetNumberOfPoints() > 0
    assert not [k for k, v in vars(small[1]).items() if isinstance(v, (np.ndarray, dict, list))]
    # and so is most of what the plan held (3 mm phantom: its maps alone are megabytes)
    assert freed > 2 ** 20



def test_ablation_context_keeps_the_tumour_mask_at_one_bit_per_voxel(liver_case):
    """The context holds the tumour's label-grid mask through a multi-probe plan (for a grid
    that grows and the outline margin): packed (1/8 of a bool mask), the same voxels, and a
    slice of it is the slice of the mask."""
    import numpy as np

    from imagio.planning.ablation import AblationContext

    _, labels, name = liver_case
    ctx = AblationContext(labels, name)
    mask = labels.array == {n: v for v, n in labels.labels.items()}[name]
    assert ctx.tumour_mask.nbytes * 8 < mask.size + 64
    np.testing.assert_array_equal(np.asarray(ctx.tumour_mask), mask)
    lo, hi = ctx.tumour_bounds_kji
    sl = tuple(slice(a, b + 1) for a, b in zip(lo, hi))
    np.testing.assert_array_equal(ctx.tumour_mask[sl], mask[sl])


_STAGES = r"""
import json, sys
import numpy as np
from imagio.memory import stage_peak_mib
stage_peak_mib()
a = np.ones(400 * 2 ** 20, np.uint8)   # the first stage's peak: 400 MiB more
del a
peaks = {"big": stage_peak_mib()}
b = np.ones(20 * 2 ** 20, np.uint8)    # a later, smaller stage
peaks["small"] = stage_peak_mib()
open(sys.argv[1], "w").write(json.dumps({"peak_rss_mib": peaks}))
"""


def test_the_bench_reads_the_demos_peak_across_its_stage_resets(tmp_path):
    """The demo resets the kernel's high-water mark per stage (`stage_peak_mib`), so the child's
    ``ru_maxrss`` (and ``/usr/bin/time -v``) holds only the last stage's: the bench's demo row
    takes the largest stage peak (on 03ca614 it reported 893-925 MiB for demos peaking at
    1217-1269 MiB)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from benchmarks.bench_speed import demo_peak_mib

    root = Path(__file__).resolve().parents[1]
    summary = tmp_path / "summary.json"
    proc = subprocess.Popen([sys.executable, "-c", _STAGES, str(summary)], cwd=str(root),
                            env=dict(os.environ, PYTHONPATH=str(root)))
    _, status, ru = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    peak = demo_peak_mib(ru.ru_maxrss / 1024, summary)
    assert peak >= 400   # ru_maxrss alone: the last stage's peak, about 100 MiB here


def test_place_small_places_the_probe_on_the_plan_for_its_own_shaft(liver_case):
    """The demo's one-probe ablation is placed on the plan made for the device's shaft
    (`multiprobe.plan_for_probe`, as ``imagio plan --device``): the same placement as on that
    plan, whose needle is the probe."""
    from imagio.planning.ablation.devices import get_device
    from imagio.planning.ablation.multiprobe import plan_for_probe

    ct, labels, name = liver_case
    p = plan(PlanningProblem.build(ct, labels, name))
    dev = get_device(ablation_demo.DEMO_DEVICE[0])
    probe = plan_for_probe(p, dev)
    assert probe.problem.needle.diameter_mm == dev.shaft_diameter_mm != p.problem.needle.diameter_mm
    best, _, _ = ablation_demo.place_small(p)
    again, _, _ = ablation_demo.place_small(probe)   # already the probe's plan: placed as it is
    assert [vars(q) for q in best.probes] == [vars(q) for q in again.probes]


def test_release_free_memory_collects_cycles():
    """``release_free_memory(collect=True)`` frees objects held only by a reference cycle (a plan's
    objects refer to each other): without the collector's pass their arrays stay resident; plain
    ``release_free_memory()`` leaves them to the collector."""
    import numpy as np

    from imagio.memory import release_free_memory

    class Node:
        pass

    was = gc.isenabled()
    gc.disable()   # no automatic pass between the two calls
    try:
        a, b = Node(), Node()
        a.other, b.other, a.data = b, a, np.ones(1 << 20)
        ref = weakref.ref(a)
        del a, b
        release_free_memory()
        assert ref() is not None          # a cycle: not freed by reference counting
        release_free_memory(collect=True)
        assert ref() is None
    finally:
        if was:
            gc.enable()
