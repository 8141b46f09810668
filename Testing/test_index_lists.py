"""Voxel index lists in small integer types (`volume.index_list`) and the dense-tissue check
built on them (`planning.density.DenseTissue`): the same indices, positions and k-d tree as
the definitions (``np.argwhere``, ``kji_to_world`` of every row), in less memory (issue 20:
the first plan's traced peak was ``np.argwhere`` of the dense verifier's boundary voxels)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from imagio.planning import PlanningProblem
from imagio.volume import index_dtype, index_list

phantom = pytest.importorskip("imagio.phantom")


@pytest.mark.parametrize("slab", [1, 7, 64, 1 << 22])
def test_index_list_equals_argwhere(slab):
    rng = np.random.default_rng(3)
    for shape in [(7, 5, 3), (40, 33, 21), (1, 4, 4), (0, 3, 3), (50, 1, 1), (3, 0, 2)]:
        m = rng.random(shape) < 0.3
        got = index_list(m, slab_voxels=slab)
        assert got.dtype == np.int16
        assert np.array_equal(got, np.argwhere(m)), (shape, slab)
        # views in another memory order and with negative strides: C order of the logical array
        f = np.asfortranarray(m)[:, ::-1, ::-1]
        assert np.array_equal(index_list(f, np.int32, slab), np.argwhere(f))
    m = np.zeros((3, 4, 5), bool)
    assert index_list(m).shape == (0, 3)
    m[-1, -1, -1] = True   # the only voxel in the last slab
    assert index_list(m, slab_voxels=1).tolist() == [[2, 3, 4]]


def test_index_dtype_and_overflow():
    assert index_dtype((10, 32767, 3)) is np.int16
    assert index_dtype((10, 32768, 3)) is np.int32
    with pytest.raises(ValueError):
        index_list(np.ones((1, 1, 200), bool), np.int8)


@pytest.fixture(scope="module")
def oblique_case():
    """The 3 mm phantom resampled onto a grid rotated 20 degrees about an oblique axis,
    2.5 x 3.0 x 3.5 mm, flipped on two axes, the ribs erased from the labels (so the dense
    check has unlabelled bone to find)."""
    from test_planning_density import _erase, _target
    from test_planning_safety import _flip, _rotation, _sitk_resample

    ph = phantom.generate(spacing=3.0, seed=0)
    lab, _ = _erase(ph.labels)
    r = _rotation((1.0, 2.0, 3.0), 20.0)
    ct = _flip(_sitk_resample(ph.ct, (2.5, 3.0, 3.5), r, -1024, False))
    lb = _flip(_sitk_resample(lab, (2.5, 3.0, 3.5), r, 0, True))
    return ct, lb, _target(ph, "lung_nodule_1")


def test_dense_tissue_tree_equals_its_definition_on_an_oblique_flipped_anisotropic_grid(oblique_case):
    """The k-d tree of the blocking voxels' boundary holds exactly the RAS positions
    ``kji_to_world`` gives for ``np.argwhere`` of the boundary, as defined here with scipy's
    erosion (blocking voxels with a face neighbour outside them or on the box's faces), in the
    same order, with the same HU; the coarse occupancy marks the same cells."""
    from scipy import ndimage

    from imagio.planning.density import DenseTissue

    ct, lab, target = oblique_case
    d = DenseTissue(PlanningProblem.build(ct, lab, target))
    assert d.block.any() and d._tree is not None
    inner = ndimage.binary_erosion(d.block, ndimage.generate_binary_structure(3, 1), border_value=0)
    kji = np.argwhere(d.block & ~inner)
    ras = ct.kji_to_world((kji + d.lo).astype(float))
    assert np.array_equal(d._tree.data, ras)
    box_hu = ct.array[tuple(slice(a, a + n) for a, n in zip(d.lo, d.block.shape))]
    assert np.array_equal(d._tree_hu, box_hu[tuple(kji.T)])
    occ = np.zeros(d._occ.shape, bool)
    occ[tuple((kji // d._cell).T)] = True
    assert np.array_equal(d._occ, ndimage.binary_dilation(occ, np.ones((3, 3, 3), bool)))


def test_verifier_trees_equal_their_definition_on_an_oblique_flipped_anisotropic_grid(oblique_case):
    """The verifier's k-d trees (one per hard structure within reach) hold exactly the RAS
    positions of that structure's boundary voxels (a face neighbour inside the reach box with
    another label; here with scipy's erosion of each label's mask, the outside of the box not
    counting), in C order."""
    from scipy import ndimage

    from imagio.planning.verify import Verifier
    from imagio.volume import reach_box

    ct, lab, target = oblique_case
    prob = PlanningProblem.build(ct, lab, target)
    ver = Verifier(prob)
    ver._build()
    assert len(ver._trees) >= 2
    reach = prob.needle.length_mm + max(s.margin_mm for s in ver.hard.values()) + 10.0
    lo, hi = reach_box(ct, prob.target.point_ras, reach)
    sub = prob.labels.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]   # the problem's labels (vessels split)
    six = ndimage.generate_binary_structure(3, 1)
    for v in ver.hard:
        m = sub == v
        kji = np.argwhere(m & ~ndimage.binary_erosion(m, six, border_value=1))
        if v not in ver._trees:
            assert len(kji) == 0, v
            continue
        assert np.array_equal(ver._trees[v].data, ct.kji_to_world((kji + lo).astype(float))), v


@pytest.mark.parametrize("slab", [1, 2, 7, 10 ** 6])
def test_boundary_voxels_by_slabs_equal_the_whole_array_definition(slab):
    """`verify.boundary_voxels` with slabs of 1, 2, 7 voxels (one slice or a part of one, so
    every slice face is a slab face) and one slab: the same list, in the same order, as
    ``np.argwhere(np.isin(sub, vals) & edge)`` with ``edge`` from ``np.diff`` on every axis (the
    verifier's code before), on random label blocks, a block of one label (no boundary), and
    degenerate shapes."""
    from imagio.planning.verify import boundary_voxels

    def definition(sub, vals):
        edge = np.zeros(sub.shape, bool)
        for ax in range(3):
            d = np.diff(sub, axis=ax) != 0
            lo_sl, hi_sl = [slice(None)] * 3, [slice(None)] * 3
            lo_sl[ax], hi_sl[ax] = slice(0, -1), slice(1, None)
            edge[tuple(lo_sl)] |= d
            edge[tuple(hi_sl)] |= d
        return np.argwhere(np.isin(sub, vals) & edge)

    rng = np.random.default_rng(5)
    for shape in [(9, 6, 5), (1, 4, 4), (5, 1, 3), (4, 3, 1), (0, 2, 2), (12, 7, 8)]:
        for sub in (rng.integers(0, 4, shape).astype(np.uint16), np.full(shape, 3, np.uint8)):
            vals = np.array([1, 3], sub.dtype)
            got = boundary_voxels(sub, vals, np.int16, slab)
            assert got.dtype == np.int16
            assert np.array_equal(got, definition(sub, vals)), (shape, slab)


def test_voxel_positions_by_chunks_equal_one_call():
    """`table.voxel_positions` (chunks of `table.voxel_ras`) gives the positions of one
    ``kji_to_world`` call on all rows, bit for bit, on an oblique anisotropic grid, for lists
    shorter and longer than two chunks."""
    from imagio.planning.table import CHUNK, voxel_positions
    from test_planning_safety import _rotation

    from imagio.volume import Volume, make_ijk_to_ras

    ct = Volume(np.zeros((2, 2, 2), np.int16), make_ijk_to_ras((0.7, 1.3, 2.9), (-120.3, 88.1, -501.7),
                                                               _rotation((1.0, 2.0, 3.0), 20.0) @ np.diag([-1, 1, -1])))
    rng = np.random.default_rng(1)
    for n in (0, 5, CHUNK + 3, 3 * CHUNK + 11):
        kji = rng.integers(0, 30000, (n, 3)).astype(np.int16)
        assert np.array_equal(voxel_positions(ct, kji), ct.kji_to_world(kji.astype(np.int64).astype(float)))


def test_dense_tissue_traced_memory_is_under_22_bytes_per_box_voxel(oblique_case):
    """Speckled unlabelled bone: in the oblique case with only the lungs (not their vessels),
    liver and trachea labelled, a third of the other body voxels (above -200 HU) set to 1200 HU, one voxel each (so
    most dense voxels are boundary voxels of the tree). No vessel is labelled: speckles joined
    to a labelled vessel's dense lumen would be that vessel's unlabelled continuation
    (`planning.continuation`), kept out by its margin, not by the dense check measured here. The
    dense check's traced peak per voxel of its box: new 17.8 bytes; before (``np.argwhere`` int64
    lists, whole-list int64 / float64 copies for the tree, the box's component labels held to
    the end) 28.7."""
    from imagio.planning.density import DenseTissue

    ct, lab, target = oblique_case
    keep = [v for v, n in lab.labels.items()
            if n.startswith(("lung", "liver", "trachea")) and n != "lung_vessels"]
    a = np.where(np.isin(lab.array, keep), lab.array, 0).astype(lab.array.dtype)
    lab2 = lab.with_array(a, labels={v: n for v, n in lab.labels.items() if v in keep})
    rng = np.random.default_rng(0)
    arr = ct.array.copy()
    arr[(arr > -200) & (a == 0) & (rng.random(arr.shape) < 0.33)] = 1200
    prob = PlanningProblem.build(ct.with_array(arr), lab2, target)
    tracemalloc.start()
    d = DenseTissue(prob)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert d._tree.n > 100000          # the speckles are there: a large boundary list
    assert peak / d.block.size < 22.0, peak / d.block.size


def test_index_list_traced_memory_is_a_fraction_of_argwhere():
    """The index list of a 12 M-voxel mask with a third of its voxels set: under 8 bytes per
    set voxel at its peak (6 for the int16 result, under 2 for a slab's int64 temporaries);
    ``np.argwhere`` (measured here) holds at least 40."""
    m = np.random.default_rng(2).random((120, 250, 400)) < 0.33
    n = int(m.sum())
    peaks = []
    for f in (index_list, np.argwhere):
        tracemalloc.start()
        r = f(m)
        peaks.append(tracemalloc.get_traced_memory()[1] / n)
        tracemalloc.stop()
        del r
    assert peaks[0] < 8.0, peaks
    assert peaks[1] > 40.0, peaks


def test_verifier_lung_boundary_equals_the_isin_definition_in_a_fraction_of_its_memory(oblique_case):
    """The verifier's lung boundary tree (`verify.Verifier._lung_boundary`, the lookup table
    `volume.values_mask` since issue 20) holds exactly the RAS positions of ``np.argwhere`` of the
    boundary of ``np.isin(box, lung values)`` (the code before), in the same order, on the oblique
    flipped anisotropic grid; its traced peak (the tree included) per voxel of the reach box is
    under 3.4 bytes (measured: 2.85; with np.isin 4.02 here, and 108 against 36 MiB on the 1 mm
    phantom's first plan, where it was the peak after `findings.beyond_tip`'s)."""
    from scipy import ndimage

    from imagio.planning.verify import Verifier
    from imagio.volume import reach_box

    ct, lab, target = oblique_case
    prob = PlanningProblem.build(ct, lab, target)
    ver = Verifier(prob)
    lung, _ = ver._lung_parts()
    assert lung
    tracemalloc.start()
    tree = ver._lung_boundary(lung)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    lo, hi = reach_box(ct, prob.target.point_ras, prob.needle.length_mm + 10.0)
    box = np.isin(prob.labels.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], lung)
    edge = box & ~ndimage.binary_erosion(box, border_value=1)   # a face neighbour outside, inside the box
    want = ct.kji_to_world((np.argwhere(edge) + lo).astype(float))
    assert len(want) > 1000
    assert np.array_equal(tree.data, want)
    assert peak / box.size < 3.4, peak / box.size


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_values_mask_equals_isin_for_value_runs_and_tables(dtype):
    """Issue 20 (speed25): `volume.values_mask` compares a few runs of consecutive values
    (wrap-around subtraction) and looks up more; both must give ``np.isin``'s voxels, on C-order
    arrays and strided, flipped views, for runs at the type's ends (0, the largest value), single
    values, values beyond the type, non-integers and none."""
    from imagio.volume import RUNS_MAX, value_runs, values_mask

    rng = np.random.default_rng(7)
    top = int(np.iinfo(dtype).max)
    a = rng.integers(0, top + 1, size=(9, 37, 41), dtype=np.int64).astype(dtype)
    a[:, :4] = 0
    a[:, -4:] = top
    a[0, 0, :12] = np.arange(12)
    sets = [[], [0], [top], [5], [0, 1, 2], [top - 2, top - 1, top], [3, 4, 5, 9, 10, 40],
            [1, 3, 5, 7, 9, 11, 13], [2, 2, 3], [-1, 0, top + 1, 2.5, 7], list(range(0, 200, 2))]
    views = [a, a[::-1, :, ::-1], a[:, 3:30:2, 1:], a[0]]
    n_runs = set()
    for vals in sets:
        for v in views:
            n_runs.add(len(value_runs([x for x in vals if 0 <= x <= top and x == int(x)])))
            got = values_mask(v, vals)
            assert got.shape == v.shape and got.dtype == bool
            assert np.array_equal(got, np.isin(v, vals)), (vals, v.shape)
    assert min(n_runs) <= RUNS_MAX < max(n_runs)   # both ways taken
