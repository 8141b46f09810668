"""The CT density check and the partial volume of labelled dense structures (new-user trial 55).

On the project's own fully labelled phantom the label map is the truth, yet the plan to a lung
nodule warned "38 mL of unlabelled dense tissue (> 250 HU, peak 492 HU) ... the label map
misses it" and kept every path out of it: the muscle voxels touching each labelled bone, a
one-voxel rim that partial volume lifts above 250 HU. That rim is the bone's, not tissue the
label map misses; dense tissue the label map truly misses (a rib erased from it, a calcification
denser than the bone it touches) is still kept out."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from imagio.planning import PlanningProblem
from imagio.planning.density import DenseTissue, checked_values, dense_min_hu

phantom = pytest.importorskip("imagio.phantom")


@pytest.fixture(scope="module")
def ph():
    return phantom.generate(spacing=2.0, seed=0)   # at 2 mm the old check found 0.44 mL (38.7 mL at 1.5 mm)


def _dense_checked(prob):
    """Own count: dense voxels (> 250 HU) in the body whose label the density check checks."""
    lab = prob.labels.array
    ok = checked_values(prob)
    chk = np.where(lab < len(ok), ok[np.minimum(lab, len(ok) - 1)], False)
    return (prob.ct.array > dense_min_hu()) & chk & prob.body


def test_fully_labelled_phantom_has_no_unlabelled_dense_tissue(ph):
    prob = PlanningProblem.build(ph.ct, ph.labels, "lung_nodule_3")
    # own check of the premise: every dense voxel the check reads (muscle, body ...) touches a
    # labelled voxel that is itself dense and not checked (a bone): a one-voxel partial-volume rim
    dense = _dense_checked(prob)
    assert dense.sum() > 0
    lab = prob.labels.array
    ok = checked_values(prob)
    bone = (prob.ct.array > dense_min_hu()) & ~np.where(lab < len(ok), ok[np.minimum(lab, len(ok) - 1)], False)
    near_bone = ndimage.binary_dilation(bone, np.ones((3, 3, 3), bool))
    assert not (dense & ~near_bone).any()
    d = DenseTissue(prob)
    assert d.block_ml == 0.0 and d.block_peak is None
    assert not any("unlabelled dense tissue" in w for w in d.summary())
    doc = d.to_dict()
    assert doc["unlabelled_dense_ml"] == 0.0 and doc["labelled_rim_ml"] > 0.0


def test_unlabelled_rib_and_calcification_beside_bone_still_block(ph):
    """The rim rule takes one voxel and only tissue no denser than the labelled bone it touches:
    an erased rib keeps all but its contact voxels, and a small calcification denser than the rib
    it touches is found whole."""
    lab = ph.labels
    inv = {n: v for v, n in lab.labels.items()}
    rib = lab.array == inv["rib_right_6"]
    arr = np.where(rib, inv["muscle"], lab.array).astype(lab.array.dtype)   # the rib "missed": muscle
    # a 3-voxel calcification (1500 HU) in muscle just outside rib_right_7, touching it
    r7 = lab.array == inv["rib_right_7"]
    shell = ndimage.binary_dilation(r7, np.ones((3, 3, 3), bool)) & ~r7 & (lab.array == inv["muscle"])
    seed = np.argwhere(shell)[len(np.argwhere(shell)) // 2]
    calc = np.zeros_like(r7)
    calc[seed[0], seed[1], seed[2]:seed[2] + 3] = True
    calc &= shell
    assert calc.sum() >= 2
    ct = ph.ct.with_array(np.where(calc, 1500.0, ph.ct.array).astype(ph.ct.array.dtype))
    prob = PlanningProblem.build(ct, lab.with_array(arr), "lung_nodule_3")
    d = DenseTissue(prob)
    lo, shp = d.lo, np.array(d.block.shape)

    def in_box(mask):   # the mask's voxels inside the check's box, in its local indices
        k = np.argwhere(mask) - lo
        return k[np.all((k >= 0) & (k < shp), axis=1)]

    rk = in_box(rib & (ct.array > dense_min_hu()))
    assert len(rk) > 50
    blocked = d.block[tuple(rk.T)]
    # own bound: only rib voxels touching another labelled dense voxel may be taken as its rim
    other = (ct.array > dense_min_hu()) & ~rib & ~np.isin(arr, [0, inv["muscle"], inv.get("body", -1)])
    touch = ndimage.binary_dilation(other, np.ones((3, 3, 3), bool))
    assert blocked.sum() >= len(rk) - int((rib & touch & (ct.array > dense_min_hu())).sum())
    assert blocked.mean() > 0.8
    ck = in_box(calc)
    assert len(ck) == calc.sum() and d.block[tuple(ck.T)].all()
    assert any("unlabelled dense tissue" in w for w in d.summary())


def test_neighbour_reads_and_the_rim_rule_are_the_padded_blocks_reads():
    """`density.neighbour_reads` (issue 20: one gather per offset, shared by the continuation's two
    rims and its touching test) yields, per 26-neighbour offset, whether the neighbour lies in the
    block and its label and HU, and `labelled_rim` built on it is the rule read on a block padded
    by one voxel (labelled 0, -1000 HU outside: never dense): on a random block, voxels on every
    face and corner included."""
    from imagio.planning.density import RIM_OFFSETS, labelled_rim, neighbour_reads

    rng = np.random.default_rng(3)
    shape = (6, 5, 7)
    hu = rng.integers(-200, 900, shape).astype(np.int16)
    lab = rng.integers(0, 5, shape).astype(np.uint8)
    kji = np.argwhere(np.ones(shape, bool))[rng.permutation(int(np.prod(shape)))[:120]]
    hp = np.pad(hu, 1, constant_values=-1000)
    lp = np.pad(lab, 1, constant_values=0)
    inside = np.pad(np.ones(shape, bool), 1, constant_values=False)
    reads = list(neighbour_reads(hu, lab, kji.astype(np.int32)))
    assert len(reads) == 26
    for off, (inb, v, h) in zip(RIM_OFFSETS, reads):
        q = tuple((kji + 1 + off).T)
        assert np.array_equal(inb, inside[q])
        assert np.array_equal(v[inb], lp[q][inb]) and np.array_equal(h[inb], hp[q][inb])
    checked = np.array([True, True, False, True, False])
    want = np.zeros(len(kji), bool)
    own = hu[tuple(kji.T)]
    for off in RIM_OFFSETS:
        q = tuple((kji + 1 + off).T)
        want |= (hp[q] > 250.0) & (hp[q] >= own) & ~np.where(lp[q] < 5, checked[np.minimum(lp[q], 4)], False) \
            & inside[q]
    assert np.array_equal(labelled_rim(hu, lab, kji, checked, 250.0), want)
