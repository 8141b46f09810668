"""The multi-probe plan of one patient must not depend on how its arrays store their axes.

New-user trial 21 M1: the same liver CT stored with its axes permuted [2, 0, 1]
(``sitk.PermuteAxes``, world geometry identical) got the same probe count but other zones: minimal
ablative margin 2.39 instead of 3.03 mm and 9 mL more healthy liver ablated. Ties (the first
skin point per 3 mm cube, the first of equal gains in the greedy cover, the solver's order of
rows and columns) were broken in array order.

Here: a synthetic torso on an oblique, anisotropic grid with an oblique ellipsoid liver tumour,
and copies with the arrays' axes permuted (all 6 orders) and flipped, built by permuting the
array and the IJK->RAS columns together. Independent check of the copies: every voxel of a copy
holds the value of the original's voxel at the same RAS point (looked up through the
original's own matrix). Then the plans must be the same: probe entries and tips in RAS (to
1e-6 mm), the count, coverage and margin.
"""

import dataclasses
import itertools

import numpy as np
import pytest
from conftest import rotation

from imagio.planning import PlanningProblem, plan
from imagio.planning.ablation import AblationContext, get_device
from imagio.planning.ablation.multiprobe import plan_multiprobe
from imagio.planning.candidates import skin_candidates
from imagio.planning.synthetic import synthetic_torso
from imagio.volume import Volume

SPACING = (2.3, 1.9, 3.1)                        # i, j, k mm
DIRECTION = rotation((1, 2, 0), 17.0) @ rotation((0, 0, 1), 23.0)
TUMOUR_CENTRE = np.array([55.0, 10.0, 0.0])       # RAS mm, inside the torso's liver
TUMOUR_AXES = np.array([16.0, 11.0, 9.0])         # semi-axes mm, along the columns of TUMOUR_ROT
TUMOUR_ROT = rotation((1, -1, 2), 35.0)


def _patient():
    """(ct, labels): the synthetic torso with its spherical tumour replaced by an oblique
    ellipsoid (liver where the sphere was)."""
    ct, lab = synthetic_torso(spacing=SPACING, direction=DIRECTION, ribs=True)
    inv = {n: v for v, n in lab.labels.items()}
    arr, cta = lab.array.copy(), ct.array.copy()
    arr[arr == inv["liver_tumor"]] = inv["liver"]
    kji = np.argwhere(arr == inv["liver"])
    q = (lab.kji_to_world(kji.astype(float)) - TUMOUR_CENTRE) @ TUMOUR_ROT / TUMOUR_AXES
    tum = kji[np.einsum("ni,ni->n", q, q) <= 1.0]
    arr[tuple(tum.T)] = inv["liver_tumor"]
    cta[tuple(tum.T)] = 20
    names = dict(lab.labels)
    names[inv["liver_tumor"]] = "liver_tumor_1"
    return ct.with_array(cta), lab.with_array(arr, labels=names)


def _reordered(vol: Volume, perm, flip) -> Volume:
    """``vol`` with array axis a taken from axis ``perm[a]`` (kji), then flipped where ``flip[a]``:
    the same voxels at the same RAS points (the IJK->RAS columns permuted and flipped to match)."""
    a = vol.array.transpose(perm)
    n = a.shape
    kji_new_to_old = np.zeros((4, 4))
    kji_new_to_old[3, 3] = 1.0
    for ax, (src, f) in enumerate(zip(perm, flip)):
        kji_new_to_old[src, ax] = -1.0 if f else 1.0
        kji_new_to_old[src, 3] = n[ax] - 1.0 if f else 0.0
    a = a[tuple(slice(None, None, -1) if f else slice(None) for f in flip)]
    rev = np.eye(4)[[2, 1, 0, 3]]   # ijk <-> kji
    return dataclasses.replace(vol, array=np.ascontiguousarray(a),
                               ijk_to_ras=vol.ijk_to_ras @ rev @ kji_new_to_old @ rev)


def _same_world(a: Volume, b: Volume) -> None:
    """Every voxel of ``b`` holds the value of ``a``'s voxel at the same RAS point."""
    kji_b = np.argwhere(np.ones(b.shape, bool))
    kji_a = a.world_to_kji(b.kji_to_world(kji_b.astype(float)))
    assert np.abs(kji_a - np.rint(kji_a)).max() < 1e-6
    kji_a = np.rint(kji_a).astype(int)
    assert np.array_equal(a.array[tuple(kji_a.T)], b.array[tuple(kji_b.T)])


def _multi_probe(ct, lab):
    prob = PlanningProblem.build(ct, lab, "liver_tumor_1")
    p = plan(prob)
    assert p.feasible
    dev = get_device("emprint")
    mp = plan_multiprobe(p, AblationContext(prob.labels, "liver_tumor_1"), dev, dev.setting("75W_5min"))
    cand = skin_candidates(p.maps, prob.target.point_ras, prob.needle.length_mm, prob.constraints.skin_spacing_mm)
    needle = (int(p.table.feasible.sum()), np.array([m.entry_ras for m in p.proposals]))
    return mp, cand, needle


def _probes(mp):
    return np.array(sorted(tuple(q.entry_ras) + tuple(q.tip_ras) for q in mp.probes))


def _as_set(pts):
    return {tuple(x) for x in np.round(pts, 4)}


VARIANTS = [(p, (False, False, False)) for p in itertools.permutations(range(3))] + [
    ((0, 1, 2), (True, False, True)), ((2, 0, 1), (False, True, False)), ((1, 2, 0), (True, True, True))]


@pytest.fixture(scope="module")
def original():
    ct, lab = _patient()
    mp, cand, needle = _multi_probe(ct, lab)
    assert len(mp.probes) >= 3   # a cover with choices to make (one zone cannot hold it)
    return ct, lab, mp, cand, needle


@pytest.mark.slow
@pytest.mark.parametrize("perm,flip", VARIANTS[1:], ids=lambda v: "".join(map(str, map(int, v))))
def test_multi_probe_plan_does_not_depend_on_the_axis_order(original, perm, flip):
    ct, lab, ref, ref_cand, ref_needle = original
    ct2, lab2 = _reordered(ct, perm, flip), _reordered(lab, perm, flip)
    _same_world(ct, ct2)
    _same_world(lab, lab2)
    mp, cand, needle = _multi_probe(ct2, lab2)
    assert len(mp.probes) == len(ref.probes)
    assert np.allclose(_probes(mp), _probes(ref), atol=1e-6)
    a, b = mp.coverage, ref.coverage
    assert a.tumour_covered_pct == pytest.approx(b.tumour_covered_pct, abs=1e-6)
    assert a.margin_covered_pct[5.0] == pytest.approx(b.margin_covered_pct[5.0], abs=1e-6)
    assert a.mam_mm == pytest.approx(b.mam_mm, abs=1e-6)
    assert a.zone_volume_ml == pytest.approx(b.zone_volume_ml, abs=1e-6)
    assert mp.margin_guarantee["guaranteed_margin_mm"] == pytest.approx(ref.margin_guarantee["guaranteed_margin_mm"], abs=1e-3)
    # the needle planner's skin candidates are the same world points (the first per cube in world order)
    assert _as_set(cand.entry_ras) == _as_set(ref_cand.entry_ras)
    assert needle[0] == ref_needle[0]                                    # feasible paths
    assert np.allclose(needle[1], ref_needle[1], atol=1e-6)              # the ranked proposals


def _shuffled_lattice_points():
    """(P, copies): lattice points with many per 3 mm cube, and copies of them in other orders
    with coordinates changed in the last bits (another summation order)."""
    rng = np.random.default_rng(3)
    P = np.round(rng.uniform(-20, 20, (4000, 3)) / 0.7) * 0.7
    copies = []
    for seed in range(3):
        r = np.random.default_rng(seed)
        copies.append(P[r.permutation(len(P))] * (1 + 1e-15 * r.choice([-1, 0, 1], P.shape)))
    return P, copies


def test_multi_probe_check_points_thinned_to_the_same_world_points_whatever_the_order():
    """`_thin` (the check points of `plan_multiprobe(guarantee_margin=True)`): one point per
    3 mm cube, the same points for any order of the input (in array order the first point per
    cube changed with the order). Independent check: the kept points as sets of rounded RAS,
    one per cube."""
    from imagio.planning.ablation.multiprobe import _thin

    P, copies = _shuffled_lattice_points()
    ref = _as_set(P[_thin(P, 3.0)])
    assert 100 < len(ref) < 4000
    for Q in copies:
        assert _as_set(Q[_thin(Q, 3.0)]) == ref
    kept = P[_thin(P, 3.0)]
    assert len({tuple(c) for c in np.floor(kept / 3.0).astype(int)}) == len(kept)


def test_thin_per_cell_is_independent_of_the_order():
    """`world_order.thin_per_cell` (also the skin candidates' thinning), in 3D and in the axial
    plane (``axes=(0, 1)``), and listed in world order."""
    from imagio.world_order import thin_per_cell, world_order

    P, copies = _shuffled_lattice_points()
    for axes in ((0, 1, 2), (0, 1)):
        ref = _as_set(P[thin_per_cell(P, 3.0, axes)])
        for Q in copies:
            k = thin_per_cell(Q, 3.0, axes)
            assert _as_set(Q[k]) == ref
            assert np.array_equal(world_order(Q[k]), np.arange(len(k)))


def test_lattice_anchor_exactly_between_two_voxels_is_the_same_world_point():
    """A mask whose centroid lies exactly halfway between two voxels along an axis (an even
    number of voxels across): rounding the centroid's index up picks another voxel in a
    flipped copy, so another lattice. With the grid's matrix the tie goes to the later voxel
    in world order. Independent check: the lattices' RAS points as sets."""
    from imagio.planning.ablation.multiprobe import _lattice
    from imagio.volume import make_ijk_to_ras

    m = make_ijk_to_ras((0.8, 1.1, 1.7), (3.0, -7.0, 11.0), rotation((1, 1, 2), 25.0))
    mask = np.zeros((20, 24, 30), bool)
    mask[3:13, 5:17, 4:24] = True            # 10 x 12 x 20 voxels: every axis's mean at .5
    flip = mask[::-1, :, ::-1]
    mf = m @ np.array([[-1, 0, 0, 29], [0, 1, 0, 0], [0, 0, -1, 19], [0, 0, 0, 1.0]])
    sp = np.linalg.norm(m[:3, :3], axis=0)[::-1]

    def world(mk, mat, with_matrix):
        kji = _lattice(mk, sp, 4.0, mat if with_matrix else None).astype(float)
        return _as_set(kji[:, ::-1] @ mat[:3, :3].T + mat[:3, 3])

    assert world(mask, m, True) == world(flip, mf, True)
    assert world(mask, m, False) != world(flip, mf, False)   # the index-order rounding differs
