"""Issue 20: the time the user waits, with baselines from the same run and the scale table.

1. Time to first proposals: CT + labels in, 5 ranked verified proposals out, every criterion
   (``PlanningProblem.build`` + ``plan``), wall time, CPU time and peak traced memory
   (tracemalloc: numpy allocations of the planning, the inputs excluded); for the 1 mm phantom
   and the real TotalSegmentator example CTs with their reference labels. CPU time and peak
   against `FIRST_BASELINE` (the code before speed21, not this run). Baseline: the distance maps built
   as before issue 20 (one ``edt`` pass per structure in its padded box,
   `per_structure_maps` below), timed here and compared voxel by voxel with the grouped maps.
2. Multi-probe plan: 45 mm liver tumour + 5 mm in the 1.5 mm phantom: time, probe count against
   its lower bound, coverage, and the margin check (proven or not on the analysis grid).
3. Scale: time and memory against the candidate count (10^3 .. 10^6 paths, 3 mm phantom),
   the voxel size (3 .. 1 mm phantom) and the tumour diameter (10 .. 60 mm multi-probe).
4. ``imagio demo`` end to end (a child process: wall time and its peak resident memory, the
   largest of its stages' own peaks, `demo_peak_mib`), goal
   < 30 s and < 1 GiB; the baseline is the median of four runs of the code before this work
   (commit f26cad7, `/usr/bin/time -v python -m imagio.cli demo OUT`, 2026-11-30/12-01, load
   2.5-5 on 2 cores: 44.8, 70.9, 81.3 and 105.1 s; 1.62-2.01 GiB), not from the same run: on
   the shared machine one code's runs spread 2x, so compare the phase times (``timings_s``).
5. Guaranteed margin: the 45 mm tumour + 5 mm at 3 mm, the cover proving the margin on the
   analysis grid against the default sampled cover (same run): probes, lower bounds, MAM, time.
The first proposals' label checks (class masks, orientation, registration) are timed apart,
CPU, on the problem's labels. The first proposals' same-run baselines: the skin model by the generic volume passes (its box
shortcut off), for a second target on the same case (and the first target again), planned from new copies
of the CT and labels as the Slicer module and IMAGIO Web read them, the first target's time (the case's
skin model, couch search, registration check cached, keyed by contents; the second's proposals and
warnings compared with its fresh run, every per-case cache emptied), and
the registration check's label shells by the scipy EDT they replaced (CPU, identical voxels), and
the couch surfaces of the four patient positions by the sorted column keys they replaced (CPU,
identical surfaces; speed20).
The multi-probe set cover's baseline in the same run: the solver before (milp asked again and
again for one zone fewer) on the same cover matrix.
The torch scorer on the CPU is in bench_planning (torch cpu vs numpy rows).
6. Against a baseline in the same run: ``IMAGIO_BENCH_BASELINE=/path/to/checkout`` (e.g. a
   worktree of main), by default the ``imagio`` of `SAME_RUN_BASELINE_COMMIT` (255ba7d, the code
   before speed26, the same proposals) written by ``git archive`` into a temporary folder
   (``=none``: no comparison; speed22: the first-plan figure as a same-run ratio in ``make
   bench``); the first proposals are
   planned in two fresh child processes on the same
   CT and labels (handed over in an .npz file), one importing that checkout's ``imagio``, one
   this tree's, baseline first, ``IMAGIO_BENCH_REPEAT`` times (default 1) alternately: CPU
   time, wall time, traced peak (tracemalloc, inputs excluded), the child's peak resident
   memory less its resident memory with the inputs loaded, the CPU of each phase (`PHASES`: label
   checks, body/skin, couch, distance maps, candidate entries, scoring, per-proposal checks, the
   rest of build and of plan, and the report: warnings and plan.json's text, timed after the
   plan; speed25), and whether the 5 proposals
   (entries, targets, scores) and the plan's warnings are identical; the registration check's
   point sets alone (`label_registration._class_points`, cold) in the same way: CPU time, traced
   peak, identical points; and the couch search alone (`table.patient_and_objects`,
   the skin model computed first, untimed) in the same way: CPU time, traced peak, identical
   points (as RAS positions: the couch cache now keeps voxel indices); and the demo (item 4) of
   both, one after the other: CPU time, peak resident memory, every JSON number identical,
   and each stage's CPU time and own peak (summary.json ``cpu_s``, ``peak_rss_mib``).
   ``IMAGIO_BENCH_SPEED_ONLY=first`` stops after item 1; ``=demo`` runs item 4 alone.
"""

from __future__ import annotations

import os
import time
import tracemalloc
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TS = SHARED / "totalsegmentator-example"


def per_structure_maps(problem, maps):
    """Baseline: ``hard`` as before issue 20, one ``edt`` per structure in its bounding box
    padded by cap + the largest margin, on the crop grown by that padding (so that a structure
    just outside the crop counts, as in the maps since the maps branch), then cropped. Returns
    (hard float32 on the crop, seconds)."""
    from scipy import ndimage

    from imagio.planning.distance_maps import _signed_distance

    t0 = time.perf_counter()
    sp = problem.ct.spacing_kji
    cap = maps.cap_mm
    todo = [(i, problem.structures[i]) for i in maps.measured if maps.roles[i] != "avoid"]
    pad = np.ceil((cap + max((s.margin_mm for _, s in todo), default=0.0)) / sp).astype(int) + 1
    lo = np.maximum(np.asarray(maps.lo) - pad, 0)
    hi = np.minimum(np.asarray(maps.lo) + maps.label.shape + pad, problem.labels.shape)
    label = problem.labels.array[tuple(slice(a, b) for a, b in zip(lo, hi))]
    hard = np.full(label.shape, cap, np.float32)
    objs = ndimage.find_objects(label.astype(np.int32))
    for i, s in todo:
        o = objs[s.value - 1]
        blo = np.maximum([o[d].start - pad[d] for d in range(3)], 0)
        bhi = np.minimum([o[d].stop + pad[d] for d in range(3)], label.shape)
        bs = tuple(slice(a, b) for a, b in zip(blo, bhi))
        d = _signed_distance(label[bs] == s.value, sp) - np.float32(s.margin_mm)
        np.minimum(hard[bs], d, out=hard[bs])
    off = np.asarray(maps.lo) - lo
    crop = tuple(slice(a, a + n) for a, n in zip(off, maps.label.shape))
    return hard[crop], time.perf_counter() - t0


def _registration_shell_rows(lab, label) -> list[dict]:
    """The registration check's label shells (`label_registration._shell`, a ball dilation since
    issue 20) against the scipy EDT of each class's box they replaced (same run): CPU time and
    whether the voxels are the same."""
    from scipy import ndimage

    from imagio.label_registration import _shell, classes_from_labels, rule

    mm, sp = float(rule()["shell_mm"]), lab.spacing_kji
    t_new = t_old = 0.0
    same = True
    for m in classes_from_labels(lab).values():
        c0 = time.process_time()
        new = _shell(m, sp, mm)
        t_new += time.process_time() - c0
        c0 = time.process_time()
        idx = np.argwhere(m)
        pad = np.ceil(mm / np.asarray(sp, float)).astype(int) + 1
        lo, hi = np.maximum(idx.min(axis=0) - pad, 0), np.minimum(idx.max(axis=0) + pad + 1, m.shape)
        sl = tuple(slice(a, b) for a, b in zip(lo, hi))
        old = np.zeros(m.shape, bool)
        old[sl] = (ndimage.distance_transform_edt(~m[sl], sampling=sp) <= mm) & ~m[sl]
        t_old += time.process_time() - c0
        same &= bool(np.array_equal(new, old))
        del idx, old, new
    return [{"name": f"{label}: registration check's label shells, CPU (baseline: scipy EDT of each box, same run)",
             "value": t_new, "unit": "s", "baseline": t_old, "ratio": t_old / max(t_new, 1e-9)},
            {"name": f"{label}: registration shells identical to the scipy EDT's", "value": int(same), "unit": "bool"}]


def _label_check_rows(ct, lab, label) -> list[dict]:
    """The label map's checks that `PlanningProblem.build` runs before anything else, CPU time
    each on the problem's labels (part of the first proposals' time; not shown apart before):
    the bone/air class masks (`label_registration.classes_from_labels`, made once for both
    checks), the orientation check (`label_orientation.check_orientation`) and the registration
    check (`label_registration.require_registered`, its point sets computed afresh as in a
    case's first plan: the per-case memos, point sets and verdict, are emptied for the call and
    restored after), and its
    peak traced memory (issue 20: its facing test smoothed each class's whole box in float32)."""
    from imagio import label_registration as lr
    from imagio.label_orientation import check_orientation

    c0 = time.process_time()
    classes = lr.classes_from_labels(lab)
    t_cls = time.process_time() - c0
    c0 = time.process_time()
    check_orientation(lab, "the label map", ct, classes)
    t_or = time.process_time() - c0
    kept, verdicts = dict(lr._PREPARED), dict(lr._DISPLACEMENT)
    lr._PREPARED.clear()
    lr.forget_cached_registration()
    try:
        tracemalloc.start()
        c0 = time.process_time()
        lr.require_registered(ct, lab, classes, "the label map", "the bench's check")
        t_reg = time.process_time() - c0
        reg_peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
        tracemalloc.stop()
    finally:
        lr._PREPARED.clear()
        lr._PREPARED.update(kept)
        lr._DISPLACEMENT.clear()
        lr._DISPLACEMENT.update(verdicts)
    return [{"name": f"{label}: of which the label map's bone/air class masks, CPU", "value": t_cls, "unit": "s"},
            {"name": f"{label}: of which the label orientation check, CPU", "value": t_or, "unit": "s"},
            {"name": f"{label}: of which the registration check (point sets not cached), CPU", "value": t_reg,
             "unit": "s"},
            {"name": f"{label}: of which the registration check's peak traced memory (class masks excluded)",
             "value": reg_peak, "unit": "MiB"}]


def _memory_cut_rows(prob, p, label) -> list[dict]:
    """Issue 20 (speed17): the two largest transient allocations of the first plan after the maps,
    each against its code before in the same run, traced peak and identical result: the judgement
    past the tip (`findings.beyond_tip`, labels only, on the plan's judged rows) in chunks of
    2^18 probe samples against 2M, and the verifier's lung boundary tree (`values_mask` against
    ``np.isin`` of the reach box, `verify.Verifier._lung_boundary`)."""
    from imagio.planning.findings import BEYOND_CHUNK, beyond_tip
    from imagio.planning.verify import Verifier
    from imagio.volume import reach_box

    rows = np.asarray(sorted(p.findings.beyond_mm), np.int64) if p.findings is not None else np.zeros(0, np.int64)
    e, t = p.table.entry_ras[rows], p.table.target_ras[rows]
    res, peaks = [], []
    for cs in (2_000_000, BEYOND_CHUNK):
        tracemalloc.start()
        res.append(beyond_tip(prob, e, t, None, chunk_samples=cs))
        peaks.append(tracemalloc.get_traced_memory()[1] / 2 ** 20)
        tracemalloc.stop()
    same = bool(np.array_equal(res[0][0], res[1][0]) and res[0][1] == res[1][1])
    out = [{"name": f"{label}: judgement past the tip of {len(rows)} paths, peak traced memory (baseline: "
                    "chunks of 2M samples, same run)", "value": peaks[1], "unit": "MiB", "baseline": peaks[0],
            "ratio": peaks[0] / max(peaks[1], 1e-9)},
           {"name": f"{label}: judgement past the tip identical to 2M-sample chunks'", "value": int(same), "unit": "bool"}]
    lung, _ = Verifier(prob)._lung_parts()
    if lung:
        trees, peaks = [], []
        for old in (True, False):
            ver = Verifier(prob)
            if old:   # the code before: np.isin of the reach box (its int64 copy)
                from imagio.planning.table import voxel_positions
                from imagio.planning.verify import boundary_voxels
                from imagio.volume import index_dtype
                tracemalloc.start()
                lo, hi = reach_box(prob.ct, prob.target.point_ras, prob.needle.length_mm + 10.0)
                sub = np.isin(ver.lab[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], lung).view(np.uint8)
                kji = boundary_voxels(sub, np.array([1], np.uint8), index_dtype(prob.ct.shape))
                kji += lo.astype(kji.dtype)
                pts = voxel_positions(prob.ct, kji)
            else:
                tracemalloc.start()
                pts = ver._lung_boundary(lung).data
            peaks.append(tracemalloc.get_traced_memory()[1] / 2 ** 20)
            tracemalloc.stop()
            trees.append(np.asarray(pts))
        out += [{"name": f"{label}: verifier's lung boundary, peak traced memory (baseline: np.isin of the reach "
                         "box, same run)", "value": peaks[1], "unit": "MiB", "baseline": peaks[0],
                 "ratio": peaks[0] / max(peaks[1], 1e-9)},
                {"name": f"{label}: verifier's lung boundary points identical to np.isin's ({len(trees[1])})",
                 "value": int(np.array_equal(trees[0], trees[1])), "unit": "bool"}]
    return out


# The first proposals before speed21 (main e225783, 2026-12-04): this module's rows of item 1
# (``IMAGIO_BENCH_SPEED_ONLY=first``, the cases in the same order in one process, main's imagio),
# on the loaded 2-core machine, not in the bench's own run. The phantom's CPU time spread
# 22.8-28.2 s over four runs of that code (IMAGIO_BENCH_BASELINE gives a same-run figure); the
# traced peak repeats to 0.3 MiB (418.2-418.5: set in `PlanningProblem.build`'s registration check
# while the vessel calibre split's copy of the labels was held).
FIRST_BASELINE = {
    "phantom 1 mm liver tumour": {"cpu_s": 26.14, "peak_mib": 418.2},
    "TS example 3 mm, liver point": {"cpu_s": 1.78, "peak_mib": 34.3},
    "TS DICOM 0.98x0.98x2 mm, liver point": {"cpu_s": 3.51, "peak_mib": 81.1},
}


def _first_proposals(ct, lab, target, label, second=None):
    """Rows for one case: build + plan for ``target`` with no cache (the skin model is computed),
    the skin model alone by the generic volume passes (the baseline of its box shortcut, same
    run), and, with ``second``, a second target on the same case (the skin model cached)."""
    from imagio.planning import PlanningProblem, plan
    from imagio.planning import skin as sk

    rows0 = _against_baseline(ct, lab, target, label)
    sk._CACHE.clear()
    tracemalloc.start()
    t0, c0 = time.perf_counter(), time.process_time()
    prob = PlanningProblem.build(ct, lab, target)
    p = plan(prob, k=5)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    t1 = time.perf_counter()
    sk._outer_skin(ct, prob.labels, sk.AIR_HU, box_shortcut=True)
    t_skin = time.perf_counter() - t1
    t1 = time.perf_counter()
    sk._outer_skin(ct, prob.labels, sk.AIR_HU, box_shortcut=False)
    t_skin_generic = time.perf_counter() - t1
    rows2 = []
    if second is not None:
        rows2 = _second_target_rows(ct, lab, target, second, label, wall, cpu)
    base, t_base = per_structure_maps(prob, p.maps)
    diff = float(np.max(np.abs(base - p.maps.hard.astype(np.float32))))
    below = bool(np.all(p.maps.hard.astype(np.float32) <= base + 1e-6))
    t_pre = p.timings_s["precompute"]
    b0 = FIRST_BASELINE.get(label, {})
    return rows0 + [
        {"name": f"{label}: first 5 proposals (build + plan), goal < 2 s", "value": wall, "unit": "s"},
        {"name": f"{label}: same, CPU time of this process (all threads; baseline: e225783, not this run)",
         "value": cpu, "unit": "s", "baseline": b0.get("cpu_s"),
         "ratio": b0["cpu_s"] / cpu if "cpu_s" in b0 else None},
        {"name": f"{label}: of which the skin model (baseline: generic volume passes, same run)",
         "value": t_skin, "unit": "s", "baseline": t_skin_generic, "ratio": t_skin_generic / t_skin},
        *rows2,
        {"name": f"{label}: of which distance maps (grouped edt)", "value": t_pre, "unit": "s",
         "baseline": t_base, "ratio": t_base / t_pre},
        {"name": f"{label}: peak traced memory, goal < 400 MiB (baseline: e225783, not this run)", "value": peak,
         "unit": "MiB", "baseline": b0.get("peak_mib"), "ratio": b0["peak_mib"] / peak if "peak_mib" in b0 else None},
        {"name": f"{label}: max |hard - per-structure hard| (float16, rounded down)", "value": diff,
         "unit": "mm"},
        {"name": f"{label}: hard map never above the per-structure one", "value": int(below), "unit": "bool"},
        {"name": f"{label}: proposals / feasible candidates", "value": f"{len(p.proposals)}/{int(p.table.feasible.sum())}",
         "unit": ""},
        {"name": f"{label}: crop voxels", "value": int(p.maps.label.size), "unit": "voxels"},
    ] + _couch_surface_rows(prob, label) + _memory_cut_rows(prob, p, label) \
        + _label_check_rows(prob.ct, prob.labels, label) \
        + _registration_shell_rows(prob.labels, label)


def _couch_surface_rows(prob, label) -> list[dict]:
    """Speed20: the couch surface along each patient position's direction (`problem.POSITIONS`,
    the directions the first plan asks for), the per-column extremes in dense (u, v) arrays
    (`table.locate_table`) against the sorted keys before (`table._locate_sorted`), same run,
    on the case's cached couch points: CPU time over the directions, and whether every surface
    (deepest skin, cover, column keys and tops) is identical."""
    from imagio.planning import table as tb
    from imagio.planning.problem import POSITIONS
    from imagio.planning.skin import AIR_HU

    sk = prob.skin
    masks = tb.case_masks(prob.ct, sk.body, sk.data, AIR_HU)
    bin_mm = float(max(prob.ct.spacing))
    t_new = t_old = t_per = 0.0
    same = same_b = True
    c0 = time.process_time()
    bounds = tb.index_bounds(masks)   # once per case (`locate_table_cached`, speed22)
    t_new += time.process_time() - c0
    for d in POSITIONS.values():
        c0 = time.process_time()
        new = tb.locate_table(prob.ct, None, None, d, AIR_HU, masks, bounds=bounds)
        t_new += time.process_time() - c0
        c0 = time.process_time()
        per = tb.locate_table(prob.ct, None, None, d, AIR_HU, masks)   # the index box again per position
        t_per += time.process_time() - c0
        same_b &= (per.deepest_mm == new.deepest_mm and per.cover == new.cover
                   and bool(np.array_equal(per.keys, new.keys)) and bool(np.array_equal(per.tops, new.tops)))
        c0 = time.process_time()
        old = tb._locate_sorted(prob.ct, *masks, new.direction, bin_mm, tb.CHUNK)
        t_old += time.process_time() - c0
        same &= (new.deepest_mm == old.deepest_mm and new.cover == old.cover
                 and bool(np.array_equal(new.keys, old.keys)) and bool(np.array_equal(new.tops, old.tops)))
    return [{"name": f"{label}: couch surfaces of the {len(POSITIONS)} positions, CPU (baseline: sorted column "
                     "keys, same run)", "value": t_new, "unit": "s", "baseline": t_old,
             "ratio": t_old / max(t_new, 1e-9)},
            {"name": f"{label}: couch surfaces identical to the sorted keys'", "value": int(same), "unit": "bool"},
            {"name": f"{label}: couch surfaces of the {len(POSITIONS)} positions, the points' index box once per case, "
                     "CPU (baseline: the box again per position, speed21's code, same run)", "value": t_new, "unit": "s",
             "baseline": t_per, "ratio": t_per / max(t_new, 1e-9)},
            {"name": f"{label}: couch surfaces identical to the per-position box's", "value": int(same_b), "unit": "bool"}]


def _second_target_rows(ct, lab, target, second, label, wall, cpu) -> list[dict]:
    """A second target on the same case after the first, and the first target again, each from
    new copies of the CT and label arrays (as the Slicer module and IMAGIO Web read them from
    their nodes for every plan; the per-case caches are keyed by contents): wall and CPU time
    against the first target's (same run), and whether the second target's proposals (entries,
    targets, scores) and warnings are identical to a fresh run of it (every per-case cache
    emptied: skin model, couch search, label checks, registration point sets and verdict,
    distance maps)."""
    from imagio import label_registration as lr
    from imagio.planning import PlanningProblem, plan
    from imagio.planning import distance_maps as dm
    from imagio.planning import problem as pr
    from imagio.planning import skin as sk
    from imagio.planning import table as tb

    def timed(tgt):
        c, lb = ct.with_array(ct.array.copy()), lab.with_array(lab.array.copy())
        t0, c0 = time.perf_counter(), time.process_time()
        p = plan(PlanningProblem.build(c, lb, tgt), k=5)
        return p, time.perf_counter() - t0, time.process_time() - c0

    def same(a, b):
        return ([np.asarray(m.entry_ras).tolist() for m in a.proposals] == [np.asarray(m.entry_ras).tolist() for m in b.proposals]
                and [np.asarray(m.target_ras).tolist() for m in a.proposals] == [np.asarray(m.target_ras).tolist() for m in b.proposals]
                and [float(m.score) for m in a.proposals] == [float(m.score) for m in b.proposals]
                and a.warnings == b.warnings)

    p2, w2, c2 = timed(second)
    p1, w1, c1 = timed(target)
    del p1
    sk.forget_cached_skin()
    dm.forget_cached_maps()
    tb.forget_cached_table()
    lr._PREPARED.clear()
    lr.forget_cached_registration()
    pr.forget_cached_label_checks()
    fresh, wf, cf = timed(second)
    ok = same(p2, fresh)
    return [{"name": f"{label}: second target {second}, new copies of the arrays (case cached; baseline: the first)",
             "value": w2, "unit": "s", "baseline": wall, "ratio": wall / w2},
            {"name": f"{label}: same, CPU (baseline: the first target's CPU)", "value": c2, "unit": "s",
             "baseline": cpu, "ratio": cpu / c2},
            {"name": f"{label}: the first target again after the second, new copies, CPU (baseline: the first's)",
             "value": c1, "unit": "s", "baseline": cpu, "ratio": cpu / c1},
            {"name": f"{label}: same, CPU (baseline: the second target planned fresh, every per-case cache emptied)",
             "value": c2, "unit": "s", "baseline": cf, "ratio": cf / c2},
            {"name": f"{label}: second target's {len(p2.proposals)} proposals and warnings identical to its fresh run",
             "value": int(ok), "unit": "bool"}]


# The phases of the first proposals timed apart in `_CHILD` (module, function, phase): CPU of the
# outermost call (a phase called inside another counts there); the rest of build/plan as "other".
PHASES = (("imagio.planning.problem", "_check_labels_match", "label checks"),
          ("imagio.planning.skin", "outer_skin", "body/skin"),
          ("imagio.planning.problem", "outer_skin", "body/skin"),
          ("imagio.planning.table", "locate_table_cached", "couch"),
          ("imagio.planning.planner", "precompute", "distance maps"),
          ("imagio.planning.planner", "skin_candidates", "candidate entries"),
          ("imagio.planning.planner", "score_paths", "scoring"),
          ("imagio.planning.planner", "screen_dense_tissue", "per-proposal checks"),
          ("imagio.planning.planner", "verified_proposals", "per-proposal checks"),
          ("imagio.planning.planner", "position_alternatives", "per-proposal checks"),
          ("imagio.planning.findings", "path_findings", "per-proposal checks"))


_CHILD = "PHASES = " + repr(PHASES) + r"""
import json, sys, time, tracemalloc
import numpy as np
from imagio.volume import Volume
from imagio.planning import PlanningProblem, plan
z = np.load(sys.argv[1], allow_pickle=False)
ct = Volume(z["ct"], z["ct_m"], "CT")
lab = Volume(z["lab"], z["lab_m"], "labels", labels={int(k): v for k, v in json.loads(str(z["names"])).items()})
target = json.loads(sys.argv[2])
target = np.array(target) if isinstance(target, list) else target
import importlib
phases, stack = {}, []
def wrap(mod, name, phase):   # CPU (all threads) of each phase, its outermost call only (PHASES)
    mod = importlib.import_module(mod)
    f = getattr(mod, name, None)
    if f is None:
        return
    def w(*a, **k):
        if stack:
            return f(*a, **k)
        stack.append(phase)
        c = time.process_time()
        try:
            return f(*a, **k)
        finally:
            phases[phase] = phases.get(phase, 0.0) + time.process_time() - c
            stack.pop()
    setattr(mod, name, w)
for mod, name, phase in PHASES:
    wrap(mod, name, phase)
def rss(key):   # (ru_maxrss would hold the parent's peak: Linux keeps it across fork + exec)
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key + ":")) / 1024.0
r0 = rss("VmRSS")
tracemalloc.start()
t0, c0 = time.perf_counter(), time.process_time()
prob = PlanningProblem.build(ct, lab, target)
c1 = time.process_time()
p = plan(prob, k=5)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
c2 = time.process_time()
peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
tracemalloc.stop()
c3 = time.process_time()
doc = json.dumps(p.to_dict())   # the plan's warnings and report, as write_json writes them
phases["report (warnings, plan.json text)"] = time.process_time() - c3
build = sum(v for k, v in phases.items() if k in ("label checks", "body/skin"))
phases["other input checks (build)"] = (c1 - c0) - build
phases["other planning"] = (c2 - c1) - sum(v for k, v in phases.items() if k not in (
    "label checks", "body/skin", "report (warnings, plan.json text)", "other input checks (build)"))
print(json.dumps({"wall": wall, "cpu": cpu, "traced_mib": peak, "phases": phases,
                  "rss_mib": rss("VmHWM") - r0,
                  "entries": [np.asarray(m.entry_ras).tolist() for m in p.proposals],
                  "targets": [np.asarray(m.target_ras).tolist() for m in p.proposals],
                  "scores": [float(m.score) for m in p.proposals], "warnings": p.warnings}))
"""


_CHILD_REGISTRATION = r"""
import hashlib, json, sys, time, tracemalloc
import numpy as np
from imagio.volume import Volume
from imagio import label_registration as lr
z = np.load(sys.argv[1], allow_pickle=False)
lab = Volume(z["lab"], z["lab_m"], "labels", labels={int(k): v for k, v in json.loads(str(z["names"])).items()})
classes = lr.classes_from_labels(lab)
tracemalloc.start()
t0, c0 = time.perf_counter(), time.process_time()
sets = [lr._class_points(m, lab, lr.rule()) for m in classes.values()]
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
tracemalloc.stop()
h = hashlib.sha256()
for cls in sets:
    for name, p, w in cls:
        h.update(name.encode()); h.update(np.ascontiguousarray(p, np.int64).tobytes()); h.update(w.tobytes())
print(json.dumps({"wall": wall, "cpu": cpu, "traced_mib": peak, "hash": h.hexdigest(),
                  "n": sum(len(p) for cls in sets for _, p, _ in cls)}))
"""


_CHILD_COUCH = r"""
import hashlib, json, sys, time, tracemalloc
import numpy as np
from imagio.volume import Volume
from imagio.planning import skin, table
z = np.load(sys.argv[1], allow_pickle=False)
ct = Volume(z["ct"], z["ct_m"], "CT")
lab = Volume(z["lab"], z["lab_m"], "labels", labels={int(k): v for k, v in json.loads(str(z["names"])).items()})
sk = skin.outer_skin(ct, lab)
body, data = sk.body, np.asarray(sk.data)
tracemalloc.start()
t0, c0 = time.perf_counter(), time.process_time()
pat, obj = table.patient_and_objects(ct, body, data, skin.AIR_HU)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
tracemalloc.stop()
if pat.dtype.kind in "iu":   # voxel indices (since issue 20's couch cache): compared as RAS points
    pat, obj = ct.kji_to_world(pat.astype(float)), ct.kji_to_world(obj.astype(float))
h = hashlib.sha256(np.ascontiguousarray(pat).tobytes() + np.ascontiguousarray(obj).tobytes()).hexdigest()
print(json.dumps({"wall": wall, "cpu": cpu, "traced_mib": peak, "hash": h, "n": [len(pat), len(obj)]}))
"""


def _children_rows(child: str, f: Path, base: str, here: str, reps: int, label: str, what: str,
                   base_name: str = "main") -> tuple:
    """``child`` run on the case file ``f`` in fresh child processes, baseline checkout then this
    tree, ``reps`` times: (rows of the median CPU time and traced peak against the baseline,
    whether every run's ``hash`` equals the baseline's first, the baseline's first result)."""
    import json
    import subprocess
    import sys

    res = {"base": [], "new": []}
    for _ in range(reps):
        for who, root in (("base", base), ("new", here)):
            env = dict(os.environ, PYTHONPATH=root)
            out = subprocess.run([sys.executable, "-c", child, str(f)], env=env, cwd=root,
                                 check=True, capture_output=True, text=True, encoding="utf-8").stdout
            res[who].append(json.loads(out.strip().splitlines()[-1]))
    b, n = res["base"], res["new"]
    med = lambda rs, k: float(np.median([r[k] for r in rs]))   # noqa: E731
    rows = [{"name": f"{label}: {what} alone, {name} (baseline: {base_name}, same run)", "value": med(n, key),
             "unit": unit, "baseline": med(b, key), "ratio": med(b, key) / max(med(n, key), 1e-9)}
            for key, name, unit in (("cpu", "CPU time", "s"), ("traced_mib", "peak traced memory", "MiB"))]
    return rows, all(r["hash"] == b[0]["hash"] for r in b + n), b[0]


def _couch_rows(f: Path, base: str, here: str, reps: int, label: str, who: str = "main") -> list[dict]:
    """The couch search alone (`table.patient_and_objects`: the patient's opening and the
    objects beyond it, the skin model computed first and not timed), baseline checkout and this
    tree in fresh child processes on the same case file: CPU time, traced peak, and whether the
    patient's boundary points and the object points are identical (sha256 of both arrays)."""
    rows, same, b0 = _children_rows(_CHILD_COUCH, f, base, here, reps, label, "couch search", who)
    rows.append({"name": f"{label}: couch search points identical to {who}'s ({b0['n'][0]} patient boundary, "
                         f"{b0['n'][1]} object voxels)", "value": int(same), "unit": "bool"})
    return rows


def _registration_rows(f: Path, base: str, here: str, reps: int, label: str, who: str = "main") -> list[dict]:
    """The registration check's point sets alone (`label_registration._class_points` of every
    class: the label, its shell and each RAS axis's facing boundary, subsampled; the costly part
    of a case's first check), baseline checkout and this tree in fresh child processes on the
    same case file: CPU time, traced peak, and whether every set's points and labels are
    identical (sha256)."""
    rows, same, b0 = _children_rows(_CHILD_REGISTRATION, f, base, here, reps, label, "registration point sets", who)
    rows.append({"name": f"{label}: registration point sets identical to {who}'s ({b0['n']} points)",
                 "value": int(same), "unit": "bool"})
    return rows


# The same-run baseline of item 6 when ``IMAGIO_BENCH_BASELINE`` is not set: the code before speed26
# (main 255ba7d, 2026-12-07, speed25 merged), whose proposals and warnings are this tree's (the comparison
# says whether they still are); a later speed-up moves it to its own branch point.
SAME_RUN_BASELINE_COMMIT = "255ba7d"


def _baseline_root(here: str, tmp: str) -> tuple:
    """(the baseline checkout's root, its name in the rows): ``IMAGIO_BENCH_BASELINE`` when set
    (``none``: no comparison, (None, "")), else the ``imagio`` package of `SAME_RUN_BASELINE_COMMIT`
    written by ``git archive`` under ``tmp`` (so that ``make bench`` measures the first proposals
    against that code in the same run, speed22), (None, "") when this tree is no git checkout
    holding that commit."""
    import subprocess

    base = os.environ.get("IMAGIO_BENCH_BASELINE", "")
    if base.lower() == "none":
        return None, ""
    if base:
        return base, "main"
    root = Path(tmp) / "baseline"
    root.mkdir()
    try:
        tar = subprocess.run(["git", "-C", here, "archive", SAME_RUN_BASELINE_COMMIT, "imagio"], check=True,
                             capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(root)], input=tar, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return None, ""
    return str(root), SAME_RUN_BASELINE_COMMIT


def _against_baseline(ct, lab, target, label) -> list[dict]:
    """The first proposals of this tree against the checkout ``IMAGIO_BENCH_BASELINE`` (module
    doc, item 6), each in a fresh child process on the same inputs; [] without the variable."""
    import json
    import subprocess
    import sys
    import tempfile

    here = str(Path(__file__).resolve().parents[1])
    reps = int(os.environ.get("IMAGIO_BENCH_REPEAT", "1"))
    tgt = json.dumps(np.asarray(target, float).tolist() if not isinstance(target, str) else target)
    res = {"base": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        base, who_base = _baseline_root(here, tmp)
        if base is None:
            return []
        f = Path(tmp) / "case.npz"
        np.savez(f, ct=ct.array, ct_m=ct.ijk_to_ras, lab=lab.array, lab_m=lab.ijk_to_ras,
                 names=json.dumps({str(k): v for k, v in lab.labels.items()}))
        for _ in range(reps):
            for who, root in (("base", base), ("new", here)):
                env = dict(os.environ, PYTHONPATH=root)
                out = subprocess.run([sys.executable, "-c", _CHILD, str(f), tgt], env=env, cwd=root,
                                     check=True, capture_output=True, text=True, encoding="utf-8").stdout
                res[who].append(json.loads(out.strip().splitlines()[-1]))
        couch = _couch_rows(f, base, here, reps, label, who_base) + _registration_rows(f, base, here, reps, label, who_base)
    b, n = res["base"], res["new"]
    med = lambda rs, k: float(np.median([r[k] for r in rs]))   # noqa: E731
    keys = ("entries", "targets", "scores", "warnings")
    same = all(r.get(k) == b[0].get(k) for r in b + n for k in keys)
    rows = []
    for key, what, unit in (("cpu", "CPU time", "s"), ("wall", "wall time", "s"),
                            ("traced_mib", "peak traced memory", "MiB"),
                            ("rss_mib", "peak resident memory above the inputs", "MiB")):
        rows.append({"name": f"{label}: first proposals {what} (baseline: {who_base}, same run)",
                     "value": med(n, key), "unit": unit, "baseline": med(b, key),
                     "ratio": med(b, key) / max(med(n, key), 1e-9)})
    order = list(dict.fromkeys(k for r in n + b for k in r.get("phases", {})))
    for ph in order:   # each phase's CPU (speed25; a baseline without the rows: no ratio)
        mine = float(np.median([r.get("phases", {}).get(ph, 0.0) for r in n]))
        theirs = float(np.median([r.get("phases", {}).get(ph, 0.0) for r in b])) if all("phases" in r for r in b) else None
        rows.append({"name": f"{label}: first proposals, phase {ph}, CPU (baseline: {who_base}, same run)",
                     "value": mine, "unit": "s", "baseline": theirs,
                     "ratio": theirs / max(mine, 1e-9) if theirs is not None else None})
    rows.append({"name": f"{label}: proposals identical to {who_base}'s (entries, targets, scores, warnings; "
                         f"{reps} run(s) each)",
                 "value": int(same), "unit": "bool"})
    return rows + couch


def _ts_case(ct_name, seg_name):
    import json

    from imagio import io

    names = {int(k): v for k, v in json.loads((TS / "labels_total_v2.json").read_text(encoding="utf-8")).items()}
    ct = io.read_image(TS / ct_name)
    lab = io.read_labels(TS / seg_name, names)
    return ct, lab if lab.same_grid(ct) else lab.resample_like(ct, order=0)


DEMO_BASELINE = {"wall_s": 76.1, "max_rss_mib": 1700000 / 1024}   # f26cad7, median of 4 runs (module doc)


def _stepwise_cover(A, cost, limit_s):
    """Baseline: the set cover before (greedy, then milp asked for one zone fewer until it
    proves none exists). Returns the number of zones."""
    from scipy import sparse
    from scipy.optimize import Bounds, LinearConstraint, milp

    from imagio.planning.ablation.multiprobe import NODE_LIMIT, _greedy_cover

    pick = _greedy_cover(A, cost)
    nz = A.shape[1]
    cover = LinearConstraint(sparse.csr_matrix(A, dtype=float), lb=1.0, ub=np.inf)
    while len(pick) > 1:
        res = milp(np.ones(nz), constraints=[cover, LinearConstraint(np.ones((1, nz)), lb=0, ub=len(pick) - 1)],
                   bounds=Bounds(0, 1), integrality=np.ones(nz),
                   options={"time_limit": float(limit_s), "node_limit": NODE_LIMIT, "mip_rel_gap": 1.0})
        if res.status == 2:
            break
        cand = np.flatnonzero(res.x > 0.5) if res.x is not None else np.zeros(0, int)
        if len(cand) == 0 or len(cand) >= len(pick) or not A[:, cand].any(axis=1).all():
            break
        pick = cand
    return len(pick)


def _demo_child(root: str | None, out: str) -> dict:
    """``imagio demo OUT --quiet`` in a child process importing ``root``'s ``imagio`` (None:
    this interpreter's): wall time, CPU time (user + system) and peak resident memory of that
    child alone (``os.wait4``: the rusage of the one process waited for)."""
    import subprocess
    import sys

    env = dict(os.environ) if root is None else dict(os.environ, PYTHONPATH=root)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "imagio.cli", "demo", out, "--quiet"],
                            stdout=subprocess.DEVNULL, env=env, cwd=root)
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"imagio demo exited with {proc.returncode} ({root or 'this tree'})")
    return {"wall": time.perf_counter() - t0, "cpu": ru.ru_utime + ru.ru_stime,
            "rss": demo_peak_mib(ru.ru_maxrss / 1024, Path(out) / "summary.json")}


def demo_peak_mib(ru_maxrss_mib: float, summary: Path) -> float:
    """The demo's peak resident memory (MiB): the largest of its stages' own peaks
    (summary.json ``peak_rss_mib``) and the child's ``ru_maxrss``. ``ru_maxrss`` alone (and
    ``/usr/bin/time -v``) holds only the peak since the demo's last reset of VmHWM
    (`imagio.memory.stage_peak_mib` writes /proc/self/clear_refs, which resets the high-water
    mark the kernel reports at exit): on 03ca614 it read 893-925 MiB for demos whose ablation
    stage peaked at 1217-1269 MiB."""
    import json

    stages = json.loads(Path(summary).read_text(encoding="utf-8")).get("peak_rss_mib") or {}
    return max([float(ru_maxrss_mib)] + [float(v) for v in stages.values() if v is not None])


def demo_stage_rows(base: dict | None, new: dict) -> list[dict]:
    """One row per demo stage for its CPU time (all threads) and one for its own peak resident
    memory (summary.json ``cpu_s``, ``peak_rss_mib``), with the baseline checkout's from the
    same run (None: no baseline) and the ratio baseline / value."""
    rows = []
    for key, unit, what in (("cpu_s", "s", "CPU"), ("peak_rss_mib", "MiB", "peak")):
        for stage, v in (new.get(key) or {}).items():
            b = None if base is None else (base.get(key) or {}).get(stage)
            row = {"name": f"demo {stage} {what} (vs IMAGIO_BENCH_BASELINE)", "value": v, "unit": unit}
            if b is not None and v:
                row.update(baseline=b, ratio=b / v)
            rows.append(row)
    return rows


RUN_DEPENDENT = {"timings_s", "timings_ms", "cpu_s", "peak_rss_mib", "out_dir", "files", "file", "picture"}


def demo_numbers(out: Path) -> dict:
    """{file: its JSON} of every JSON a demo wrote into ``out`` (the output manifests aside), the
    run-dependent keys (timings, CPU, memory, paths) removed: two demos of the same inputs give
    equal dicts exactly when every number they wrote is the same."""
    import json

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in RUN_DEPENDENT}
        return [strip(v) for v in x] if isinstance(x, list) else x

    return {str(f.relative_to(out)): strip(json.loads(f.read_text(encoding="utf-8"))) for f in sorted(out.rglob("*.json"))
            if not f.name.startswith(".imagio-outputs")}


def _demo() -> list[dict]:
    """``imagio demo`` in a child process: wall time, CPU time and peak resident memory. With
    ``IMAGIO_BENCH_BASELINE`` (module doc, item 6) the baseline checkout's demo runs first in
    the same way (same run, same phantom cache): ratios of CPU time and peak memory, and whether
    every JSON number both wrote is the same (`demo_numbers`)."""
    import json
    import tempfile

    base = os.environ.get("IMAGIO_BENCH_BASELINE")
    with tempfile.TemporaryDirectory() as tmp:
        old = None
        if base:
            old = _demo_child(base, str(Path(tmp) / "base"))
        new = _demo_child(None, str(Path(tmp) / "new"))
        wall, rss = new["wall"], new["rss"]
        phases = json.loads((Path(tmp) / "new" / "summary.json").read_text(encoding="utf-8"))["timings_s"]
        abl = json.loads((Path(tmp) / "new" / "ablation_liver_tumor_large.json").read_text(encoding="utf-8"))
        same = None if old is None else demo_numbers(Path(tmp) / "base") == demo_numbers(Path(tmp) / "new")
        stages = {k: json.loads((Path(tmp) / k / "summary.json").read_text(encoding="utf-8"))
                  for k in (("base", "new") if old is not None else ("new",))}
    b = DEMO_BASELINE
    rows = [
        {"name": "demo end to end, goal < 30 s (baseline: f26cad7 median, not this run)", "value": wall, "unit": "s",
         "baseline": b["wall_s"], "ratio": b["wall_s"] / wall},
        {"name": "demo peak resident memory, goal < 1024 MiB (baseline: f26cad7)", "value": rss, "unit": "MiB",
         "baseline": b["max_rss_mib"], "ratio": b["max_rss_mib"] / rss},
        {"name": "demo phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()), "value": None, "unit": ""},
        {"name": "demo 45 mm tumour: probes (baseline = lower bound)", "value": abl["n_probes"], "unit": "",
         "baseline": abl["lower_bound"]},
    ]
    if old is not None:
        rows += [
            {"name": "demo CPU time, user + system (baseline: IMAGIO_BENCH_BASELINE, same run)", "value": new["cpu"],
             "unit": "s", "baseline": old["cpu"], "ratio": old["cpu"] / new["cpu"]},
            {"name": "demo peak resident memory (baseline: IMAGIO_BENCH_BASELINE, same run)", "value": rss,
             "unit": "MiB", "baseline": old["rss"], "ratio": old["rss"] / rss},
            {"name": "demo outputs: every JSON number identical to the baseline's", "value": int(same), "unit": "bool"},
        ]
        rows += demo_stage_rows(stages["base"], stages["new"])
    else:
        rows += demo_stage_rows(None, stages["new"])
    return rows


def _multiprobe(spacing, diameter_mm, label=None, capture=None, guarantee=False):
    from imagio import phantom
    from imagio.planning import PlanningProblem, plan
    from imagio.planning.ablation import AblationContext, get_device
    from imagio.planning.ablation.multiprobe import plan_multiprobe
    from imagio.planning.ablation.synthetic import insert_sphere

    ph = phantom.generate(spacing=spacing)
    ct, lab, _ = insert_sphere(ph.ct, ph.labels, 0.5 * diameter_mm)
    tracemalloc.start()
    t0 = time.perf_counter()
    p = plan(PlanningProblem.build(ct, lab, "liver_tumor_large"))
    ctx = AblationContext(lab, "liver_tumor_large")
    dev = get_device("emprint")
    if capture is not None:   # the cover matrix, for the same-run baseline of the solver
        from imagio.planning.ablation import multiprobe as mpm

        solve = mpm._solve_cover

        def keep(A, cost, limit_s, lp=None):
            t = time.perf_counter()
            out = solve(A, cost, limit_s, lp)
            capture.append((A, cost, limit_s, time.perf_counter() - t, len(out[0])))
            return out
        mpm._solve_cover = keep
    try:
        mp = plan_multiprobe(p, ctx, dev, dev.setting("100W_10min"), margin_mm=5.0, guarantee_margin=guarantee)
    finally:
        if capture is not None:
            mpm._solve_cover = solve
    wall = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    return wall, peak, mp


def run() -> list[dict]:
    from imagio import phantom

    rows = [{"name": "cores available", "value": os.cpu_count(), "unit": ""},
            {"name": "load average at start (shared machine)", "value": os.getloadavg()[0], "unit": ""}]
    if os.environ.get("IMAGIO_BENCH_SPEED_ONLY", "") == "demo":   # the demo end to end only
        return rows + _demo()
    # 1. time to first proposals
    ph = phantom.generate(spacing=1.0, seed=0)
    les = next(l for l in ph.lesions if l.kind == "liver_tumor")
    nod = next(l for l in ph.lesions if l.kind == "lung_nodule")
    rows += _first_proposals(ph.ct, ph.labels, les.name, "phantom 1 mm liver tumour", second=nod.name)
    del ph
    if TS.exists():
        ct, lab = _ts_case("example_ct_sm.nii.gz", "example_seg.nii.gz")
        rows += _first_proposals(ct, lab, np.array([95.0, 164.3, 154.3]), "TS example 3 mm, liver point")
        ct, lab = _ts_case("example_ct_dicom", "example_seg_dicom.nii.gz")
        rows += _first_proposals(ct, lab, np.array([91.3, 124.0, -776.5]), "TS DICOM 0.98x0.98x2 mm, liver point")
    if os.environ.get("IMAGIO_BENCH_SPEED_ONLY", "") == "first":   # the first proposals only
        return rows
    # 2. multi-probe at 1.5 mm
    cap = []
    wall, peak, mp = _multiprobe(1.5, 45.0, capture=cap)
    g = mp.margin_guarantee
    A, cost, limit_s, t_new, n_new = cap[0]
    t0 = time.perf_counter()
    n_old = _stepwise_cover(A, cost, limit_s)
    t_old = time.perf_counter() - t0
    rows += [
        {"name": f"multi-probe: set cover solve ({A.shape[0]} points x {A.shape[1]} zones; baseline: "
                 "the stepwise milp before, same matrix)", "value": t_new, "unit": "s", "baseline": t_old,
         "ratio": t_old / t_new},
        {"name": "multi-probe: set cover zones (baseline: stepwise milp before)", "value": n_new, "unit": "",
         "baseline": n_old},
        {"name": "multi-probe 45 mm + 5 mm, 1.5 mm: plan + context + cover", "value": wall, "unit": "s"},
        {"name": "multi-probe: the plan_multiprobe call (paths, set cover, coverage), goal < 5 s",
         "value": mp.timings_s["total"], "unit": "s"},
        {"name": "multi-probe: probes (baseline = lower bound)", "value": len(mp.probes), "unit": "",
         "baseline": mp.lower_bound},
        {"name": "multi-probe: tumour + 5 mm covered (analysis grid)", "value": mp.coverage.margin_covered_pct[5.0], "unit": "%"},
        {"name": "multi-probe: minimal ablative margin (surface)", "value": mp.coverage.mam_mm, "unit": "mm"},
        {"name": "multi-probe: margin proven on the analysis grid", "value": int(g["proven"]), "unit": "bool"},
        {"name": "multi-probe: check points lacking the margin", "value": g["uncovered_pct"], "unit": "%"},
        {"name": "multi-probe: peak traced memory", "value": peak, "unit": "MiB"},
    ]
    rows += _guaranteed_margin()
    rows += _demo()
    rows += _scale()
    return rows


def _guaranteed_margin() -> list[dict]:
    """The 45 mm tumour + 5 mm at 3 mm: the sampled cover (default) against the cover that
    proves the margin on the analysis grid (``guarantee_margin=True``), same run: probes, their
    lower bounds, surface minimal ablative margin, time."""
    out = {}
    for g in (False, True):
        wall, _, mp = _multiprobe(3.0, 45.0, guarantee=g)
        out[g] = (wall, mp)
    (w0, m0), (w1, m1) = out[False], out[True]
    return [
        {"name": "guaranteed 5 mm margin (3 mm): probes (baseline: sampled cover)", "value": len(m1.probes),
         "unit": "", "baseline": len(m0.probes), "ratio": len(m0.probes) / len(m1.probes)},
        {"name": "guaranteed margin: lower bound of its cover (baseline: the sampled cover's)",
         "value": m1.lower_bound, "unit": "", "baseline": m0.lower_bound},
        {"name": "guaranteed margin: surface MAM (baseline: sampled cover)", "value": m1.coverage.mam_mm,
         "unit": "mm", "baseline": m0.coverage.mam_mm},
        {"name": "guaranteed margin: proven on the analysis grid (baseline: sampled cover)",
         "value": int(m1.margin_guarantee["proven"]), "unit": "bool", "baseline": int(m0.margin_guarantee["proven"])},
        {"name": "guaranteed margin: plan + context + cover time (baseline: sampled cover)", "value": w1,
         "unit": "s", "baseline": w0, "ratio": w0 / w1},
    ]


def _scale() -> list[dict]:
    """Time and memory against candidate count, voxel size and tumour size. Scoring is linear
    in the paths (the ratio column: 10x the previous row's time over this one, ~1 when linear).
    First proposals grow about linearly with the voxels (edt, masks, skin are linear passes).
    The multi-probe time grows faster than the tumour volume: candidate zones (centre lattice x
    directions) and check points both grow with it and the set cover is NP-hard (branch and
    bound, capped by a node limit): that row is super-linear for that reason."""
    from imagio import phantom
    from imagio.planning import PlanningProblem
    from imagio.planning.candidates import skin_candidates
    from imagio.planning.distance_maps import precompute
    from imagio.planning.scoring import score_paths

    rows = []
    ph = phantom.generate(spacing=3.0, seed=0)
    les = next(l for l in ph.lesions if l.kind == "liver_tumor")
    prob = PlanningProblem.build(ph.ct, ph.labels, les.name)
    maps = precompute(prob)
    cand = skin_candidates(maps, prob.target.point_ras, prob.needle.length_mm, 1.0)
    rng = np.random.default_rng(0)
    t_prev = None
    for n in (1_000, 10_000, 100_000, 1_000_000):
        idx = rng.integers(0, len(cand), n)
        e = cand.entry_ras[idx] + rng.normal(0, 0.5, (n, 3))   # distinct paths near the skin
        tracemalloc.start()
        t0 = time.perf_counter()
        score_paths(prob, maps, e, cand.normal_ras[idx], device="numpy")
        t = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
        tracemalloc.stop()
        rows.append({"name": f"scale: score {n:>9,d} paths (3 mm phantom), linear", "value": t, "unit": "s",
                     "baseline": t_prev * 10 if t_prev else None,
                     "ratio": (t_prev * 10 / t) if t_prev else None})
        rows.append({"name": f"scale: score {n:>9,d} paths, peak traced memory (chunks)", "value": peak, "unit": "MiB"})
        t_prev = t
    rows.append({"name": "scale: phantom 0.5 mm not run: 587 Mvox, its CT + labels alone take 1.8 GB "
                         "(over the 1 GiB budget on this machine); 3 .. 1 mm show the growth", "value": None, "unit": ""})
    for sp in (3.0, 2.0, 1.5, 1.0):
        ph = phantom.generate(spacing=sp, seed=0)
        les = next(l for l in ph.lesions if l.kind == "liver_tumor")
        from imagio.planning import plan

        tracemalloc.start()
        t0 = time.perf_counter()
        p = plan(PlanningProblem.build(ph.ct, ph.labels, les.name))
        t = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
        tracemalloc.stop()
        rows.append({"name": f"scale: first proposals, phantom {sp:g} mm ({ph.ct.array.size / 1e6:.1f} Mvox)",
                     "value": t, "unit": "s"})
        rows.append({"name": f"scale: same, peak traced memory ({p.timings_s['n_candidates']} paths)",
                     "value": peak, "unit": "MiB"})
        del ph, p
    for dia in (10.0, 20.0, 30.0, 45.0, 60.0):
        try:
            wall, peak, mp = _multiprobe(3.0, dia)
            rows.append({"name": f"scale: multi-probe {dia:g} mm tumour + 5 mm (3 mm phantom; super-linear: set cover)", "value": wall,
                         "unit": "s"})
            rows.append({"name": f"scale: same, probes (baseline = lower bound), {mp.n_candidates} zones",
                         "value": len(mp.probes), "unit": "", "baseline": mp.lower_bound})
        except Exception as e:   # noqa: BLE001  (a size the device cannot cover: say so)
            rows.append({"name": f"scale: multi-probe {dia:g} mm: {str(e)[:80]}", "value": None, "unit": ""})
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
