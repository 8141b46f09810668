"""The distance maps' fast paths (issue 20, speed26) give exactly the values of the code they
replaced (copied below):

- `distance_maps._min_floor_into` rounds (float16, towards -inf) and writes only the voxels whose
  value lies below the map's current one: the same map as rounding every voxel and taking the
  minimum;
- `distance_maps._or_bits` ORs a flag into the flags as the mask's bytes times the flag: the same
  flags as ``flags[mask] |= flag``;
- `precompute` with both on an oblique, flipped, anisotropic grid: every map (hard, avoid, code)
  equal to the one built with the old forms swapped in.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import rotation
from imagio.planning import PlanningProblem
from imagio.planning import distance_maps as D
from imagio.planning.synthetic import synthetic_torso


def _old_min_floor_into(tgt, d, margin, slab=8):
    """`_min_floor_into` before speed26 (main 5b9182c)."""
    m = np.float32(margin)
    for k in range(0, d.shape[0], slab):
        x = d[k:k + slab]
        if margin:
            x = x - m
        t = tgt[k:k + slab]
        np.minimum(t, D._floor_f16(x), out=t)


def _old_or_bits(flags, mask, bit):
    flags[mask] |= bit


def _values(rng, shape):
    """float32 distances of every kind the maps see: beyond and below the cap, negative (-half
    voxel inside), on and between float16 values, huge (float16 overflow), inf."""
    x = (rng.random(shape) * 50.0 - 2.0).astype(np.float32)
    flat = x.reshape(-1)
    n = flat.size
    f16 = (rng.random(n // 8) * 40.0 - 1.0).astype(np.float16).astype(np.float32)   # exactly on float16 values
    flat[rng.choice(n, len(f16), replace=False)] = f16
    flat[rng.choice(n, 20, replace=False)] = np.float32(7e4)                        # above float16's max
    flat[rng.choice(n, 20, replace=False)] = np.inf
    flat[rng.choice(n, 20, replace=False)] = -0.5
    flat[rng.choice(n, 20, replace=False)] = 0.0
    return x


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")   # the values above float16's max, both forms
@pytest.mark.parametrize("margin", [0.0, 3.0, 5.0, 2.7])
def test_min_floor_into_equals_rounding_every_voxel(margin):
    rng = np.random.default_rng(int(margin * 10) + 1)
    cap = np.float16(20.0)
    for shape, slab in (((17, 9, 11), 8), ((5, 31, 7), 1), ((9, 4, 6), 3)):
        d = _values(rng, shape)
        # the maps' target: the cap, lowered in places by an earlier group (float16 values <= cap)
        base = np.full((shape[0] + 2, shape[1] + 3, shape[2]), cap, np.float16)
        low = rng.random(base.shape) < 0.4
        base[low] = (rng.random(int(low.sum())) * 25.0 - 1.0).clip(None, 20.0).astype(np.float16)
        a, b = base.copy(), base.copy()
        box = (slice(1, 1 + shape[0]), slice(2, 2 + shape[1]), slice(0, shape[2]))   # a view, as hard[os_]
        _old_min_floor_into(a[box], d, margin, slab)
        D._min_floor_into(b[box], d, margin, slab)
        assert np.array_equal(a.view(np.uint16), b.view(np.uint16)), (shape, slab)   # bit for bit (signed zeros too)
        assert not np.array_equal(a, base)                                            # something was written


def test_or_bits_equals_masked_or():
    rng = np.random.default_rng(3)
    flags = rng.integers(0, 256, (13, 21, 17)).astype(np.uint8)
    big = rng.random((15, 25, 40)) < 0.35
    for bit in (1, 2, 4, 8, 16, 32, 64, 128):
        for mask in (big[1:14, 2:23, 3:20], big[::-1][2:, :21, ::2][:, :, :17], np.zeros(flags.shape, bool),
                     np.ones(flags.shape, bool)):
            a, b = flags.copy(), flags.copy()
            _old_or_bits(a, mask, bit)
            D._or_bits(b, mask, bit)
            assert np.array_equal(a, b), bit


GRIDS = {"oblique_flipped_aniso": ((2.6, 1.9, 3.3), rotation((1, 2, 3), 17.0) @ np.diag([1.0, -1.0, 1.0])),
         "axial_k_flipped": ((2.0, 2.5, 2.0), np.diag([1.0, 1.0, -1.0]))}


@pytest.mark.parametrize("grid", list(GRIDS))
def test_precompute_equals_the_old_forms(grid, monkeypatch):
    sp, d = GRIDS[grid]
    ct, lab = synthetic_torso(sp, direction=d)
    prob = PlanningProblem.build(ct, lab, "liver_tumor")
    D.forget_cached_maps()
    new = D.precompute(prob)
    D.forget_cached_maps()
    monkeypatch.setattr(D, "_min_floor_into", _old_min_floor_into)
    monkeypatch.setattr(D, "_or_bits", _old_or_bits)
    old = D.precompute(prob)
    D.forget_cached_maps()
    assert (new.hard < np.float16(new.cap_mm)).any() and new.has["avoid"] in (True, False)
    for name in ("hard", "avoid", "code", "label"):
        a, b = getattr(old, name), getattr(new, name)
        assert a.dtype == b.dtype and np.array_equal(a.view(np.uint8), b.view(np.uint8)), name
    flags = new.code >> 8 if new.code.dtype == np.uint16 else new.code >> 16
    for bit in (D.BODY, D.LUNG, D.AERATED, D.LIVER, D.FORBIDDEN, D.SKIN):   # the flags are set somewhere
        assert (flags & bit).any(), bit
