"""The fast distance maps (reach-box crop, one ``edt`` pass per group, float16 rounded down)
against a straightforward exact reference: scipy's ``distance_transform_edt`` of each obstacle
on the full volume, and the paths scored on those exact maps.

Stated error: a stored value is never above the exact one and at most one float16 step below
it (<= 0.016 mm over the 20 mm cap), everywhere within the needle's reach of the target. Beyond
``reach - needle length`` (10 mm + 2 voxels) a structure outside the crop is not seen, so the
values are compared up to that distance less the largest margin (every hard threshold, margin
+ needle radius + placement uncertainty, lies below it)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

F16_STEP = 0.016   # mm: one float16 step at the 20 mm cap (2**-6)


@pytest.fixture(scope="module")
def planned():
    from imagio import phantom
    from imagio.planning import PlanningProblem, plan

    ph = phantom.generate(spacing=3.0, seed=0)
    les = next(l for l in ph.lesions if l.kind == "liver_tumor")
    prob = PlanningProblem.build(ph.ct, ph.labels, les.name)
    p = plan(prob)
    return prob, p, _exact_maps(prob, p.maps)


def _exact_maps(prob, maps):
    """(hard, avoid) float32 on the crop from full-volume scipy EDTs: per obstacle, distance to
    the nearest voxel centre minus half the smallest voxel side (-half inside), minus its
    margin; the minimum over the obstacles, capped."""
    sp = prob.ct.spacing_kji
    half = 0.5 * float(min(sp))
    full = prob.labels.array
    sl = tuple(slice(a, a + n) for a, n in zip(maps.lo, maps.label.shape))
    out = {}
    for kind in ("hard", "avoid"):
        m = np.full(maps.label.shape, maps.cap_mm, np.float32)
        for i in maps.obstacles:
            s = prob.structures[i]
            if (s.role == "avoid") != (kind == "avoid"):
                continue
            mask = full == s.value
            d = ndimage.distance_transform_edt(~mask, sampling=sp)[sl] - half
            d[mask[sl]] = -half
            m = np.minimum(m, (d - (s.margin_mm if kind == "hard" else 0.0)).astype(np.float32))
        out[kind] = m
    return out["hard"], out["avoid"]


def test_maps_match_full_volume_scipy_edt_within_float16_rounded_down(planned):
    prob, p, (hard, avoid) = planned
    maps = p.maps
    sp = prob.ct.spacing_kji
    kji = np.indices(maps.label.shape).reshape(3, -1).T
    ras = maps.grid.kji_to_world(kji.astype(float))
    ball = (np.linalg.norm(ras - prob.target.point_ras, axis=1) <= prob.needle.length_mm).reshape(maps.label.shape)
    top = 10.0 + 2.0 * float(max(prob.ct.spacing)) - max(s.margin_mm for s in prob.structures)
    assert ball.sum() > 1000 and top > prob.needle.widening_mm
    for fast, ref in ((maps.hard, hard), (maps.avoid, avoid)):
        if fast.shape != ref.shape:     # no avoid structure in reach: no map
            assert not any(prob.structures[i].role == "avoid" for i in maps.obstacles)
            continue
        f = np.minimum(fast.astype(np.float32), top)[ball]
        r = np.minimum(ref, top)[ball]
        assert np.all(f <= r + 1e-4), float((f - r).max())          # never above: the safe side
        assert float((r - f).max()) <= F16_STEP + 1e-4               # at most one float16 step
    assert (hard[ball] < top).mean() > 0.05    # the comparison covered real obstacles


def test_ranked_proposals_match_scoring_on_exact_maps(planned):
    """The same candidates scored on the exact maps: a path feasible on the fast maps is feasible
    on the exact ones (rounding down only removes paths within a float16 step of a limit), the
    scores agree to float rounding, and the fast best path is the exact best or within 1e-3 of
    its score (the proposals are the best verified paths of this ranking)."""
    from dataclasses import replace

    from imagio.planning.scoring import score_paths

    prob, p, (hard, avoid) = planned
    exact = replace(p.maps, hard=hard, avoid=avoid if p.maps.avoid.shape == avoid.shape else p.maps.avoid)
    t = p.table
    fast = score_paths(prob, p.maps, t.entry_ras, t.normal_ras, device="numpy")
    ref = score_paths(prob, exact, t.entry_ras, t.normal_ras, device="numpy")
    assert not np.any(fast.feasible & ~ref.feasible)
    assert (ref.feasible & ~fast.feasible).sum() <= max(2, 0.002 * ref.feasible.sum())
    both = fast.feasible & ref.feasible
    assert both.sum() > 50
    assert np.max(np.abs(fast.score[both] - ref.score[both])) < 2e-3
    best_fast = np.flatnonzero(fast.feasible)[np.argmin(fast.score[fast.feasible])]
    assert ref.score[best_fast] <= ref.score[ref.feasible].min() + 1e-3


def test_float16_maps_are_the_largest_float16_not_above_the_exact_value():
    """`_floor_f16`: each stored value is <= the float32 distance and the next float16 up is
    above it (the float16 rounded down), zeros and signs included; the error bound of the
    module doc (<= 0.016 mm up to the 20 mm cap) holds."""
    from imagio.planning.distance_maps import _floor_f16

    x = np.random.default_rng(0).uniform(-6.0, 21.0, 200_000).astype(np.float32)
    x[:6] = [0.0, -0.0, 1e-9, -1e-9, 20.0, 2.0 ** -20]
    h = _floor_f16(x)
    lo = h.astype(np.float32)
    hi = np.nextafter(h, np.float16(np.inf)).astype(np.float32)
    assert h.dtype == np.float16 and np.all(lo <= x) and np.all(hi > x)
    capped = x <= 20.0
    assert float(np.max(x[capped] - lo[capped])) <= 0.016
