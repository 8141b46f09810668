"""Issue 20 (first proposals' peak memory): the skin normals are computed a slab of crop
k-slices at a time (`candidates.normals_at`, ``slab``) and the numpy scorer takes its paths in
chunks of a bounded number of samples (`scoring.score_paths`, ``chunk_samples``). Each path
and each normal is computed on its own, so the results must be bit-identical to one box / one
chunk: checked on an oblique (20 degrees about S, 10 about R), flipped (-R), anisotropic
(2 x 2.5 x 3 mm) grid and on the 3 mm phantom, and the traced peak must fall."""

from __future__ import annotations

import tracemalloc
from dataclasses import fields

import numpy as np
import pytest

from conftest import rotation
from imagio.planning import PlanningProblem, plan
from imagio.planning import candidates as cd
from imagio.planning import distance_maps as dm
from imagio.planning import scoring
from imagio.planning import skin as sk
from imagio.planning.synthetic import synthetic_torso


def _oblique():
    d = rotation((0, 0, 1), 20.0) @ rotation((1, 0, 0), 10.0) @ np.diag([-1.0, 1.0, 1.0])
    ct, lab = synthetic_torso(spacing=(2.0, 2.5, 3.0), direction=d)
    return ct, lab, "liver_tumor"


def _phantom():
    phantom = pytest.importorskip("imagio.phantom")
    ph = phantom.generate(spacing=3.0, seed=0)
    les = next(le for le in ph.lesions if le.kind == "liver_tumor")
    return ph.ct, ph.labels, les.name


@pytest.fixture(scope="module", params=["oblique", "phantom3"])
def planned(request):
    ct, lab, target = _oblique() if request.param == "oblique" else _phantom()
    dm._CACHE.clear()
    sk._CACHE.clear()
    prob = PlanningProblem.build(ct, lab, target)
    return prob, plan(prob, k=5)


def _peak(f):
    tracemalloc.start()
    try:
        out = f()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _same_tables(a, b):
    for f in fields(scoring.ScoreTable):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), f.name
        else:
            assert x == y, f.name


def test_normals_by_slab_equal_one_box_and_hold_less(planned):
    prob, p = planned
    m = p.maps
    shape = np.array(m.code.shape)
    rng = np.random.default_rng(1)
    # the candidates, points off the voxel centres and beyond the crop's faces
    pts = np.concatenate([p.candidates.entry_ras, m.grid.kji_to_world(rng.uniform(-2.0, shape + 1.0, (300, 3)))])
    whole, peak_whole = _peak(lambda: cd.normals_at(m, pts, slab=10 ** 6))
    assert np.array_equal(p.candidates.normal_ras, whole[:len(p.candidates)])   # the plan's: default slab
    for slab in (1, 3, 7):
        got, peak = _peak(lambda: cd.normals_at(m, pts, slab=slab))
        assert np.array_equal(got, whole), slab
        if slab == 3:
            assert shape[0] > 12 and peak < 0.5 * peak_whole, (peak, peak_whole)
    assert cd.normals_at(m, pts[:0], slab=2).shape == (0, 3)


def test_scoring_chunks_by_samples_equal_one_chunk_and_hold_less(planned):
    prob, p = planned
    m, c = p.maps, p.candidates
    one, peak_one = _peak(lambda: scoring.score_paths(prob, m, c.entry_ras, c.normal_ras, chunk=10 ** 9,
                                                      chunk_samples=10 ** 12, device=None))
    _same_tables(scoring.score_paths(prob, m, c.entry_ras, c.normal_ras, device=None), one)   # default chunks
    small, peak_small = _peak(lambda: scoring.score_paths(prob, m, c.entry_ras, c.normal_ras,
                                                          chunk_samples=4096, threads=2, device=None))
    _same_tables(small, one)
    assert one.n_samples > 16 * 4096 and peak_small < 0.5 * peak_one, (peak_small, peak_one)
    # per-path targets, split in chunks the same way
    tg = np.repeat(np.asarray(prob.target.point_ras, float)[None], len(c), axis=0)
    _same_tables(scoring.score_paths(prob, m, c.entry_ras, c.normal_ras, tg, chunk_samples=1000, device=None), one)


def test_scoring_threads_hand_their_freed_chunks_back_with_the_same_table(planned, monkeypatch):
    """The scoring threads free their chunks' temporaries into their own heaps (glibc arenas),
    whose pages stayed resident under the rest of the plan (speed26: the 1 mm phantom's first
    plan peaked in its per-proposal checks on top of them, 507-513 MiB over the inputs, 461-477
    after): scored in threads, the heap's free pages are handed back once
    (`memory.release_free_memory`, the real call), and the table is the one chunk's."""
    from imagio import memory

    prob, p = planned
    m, c = p.maps, p.candidates
    one = scoring.score_paths(prob, m, c.entry_ras, c.normal_ras, chunk=10 ** 9, chunk_samples=10 ** 12, device=None)
    calls = []
    real = memory.release_free_memory
    monkeypatch.setattr(memory, "release_free_memory", lambda *a, **k: calls.append(real(*a, **k)) or calls[-1])
    _same_tables(scoring.score_paths(prob, m, c.entry_ras, c.normal_ras, chunk_samples=4096, threads=2,
                                     device=None), one)
    assert len(calls) == 1, calls
