"""The couch search in bounded memory (issue 20): 26-connected slab-wise labelling, the couch
points kept as voxel indices and converted to RAS a chunk at a time, against one whole-volume
cc3d pass and the surface computed from all RAS points at once."""

from __future__ import annotations

import tracemalloc

import cc3d
import numpy as np
import pytest

from imagio.planning import skin as sk
from imagio.planning import table as T


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Two labellings (0 = background) split the voxels into the same components."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return pairs.shape[1] == len(np.unique(a[a > 0])) == len(np.unique(b[b > 0]))


@pytest.mark.parametrize("slab", [1, 2, 3, 5, 32])
def test_slab_components_26_equal_one_whole_volume_labelling(slab):
    """26-connected components built slab by slab (`skin._slab_components`) are those of one
    cc3d pass: diagonal neighbours across a slab face join (the 6-connected pairing alone
    would split them)."""
    from test_skin_slabs import _masks

    diag = np.zeros((5, 5, 5), bool)   # a chain of voxels touching by corners only, across every face
    for k in range(5):
        diag[k, k, 4 - k] = True
    for m in _masks() + [diag]:
        labs, corners, offs, comp, _ = sk._slab_components(lambda a, b, m=m: m[a:b], m.shape[0], keep=True,
                                                           slab=slab, connectivity=26)
        got = np.zeros(m.shape, np.int64)
        for t, cc in enumerate(labs):
            lut = np.zeros(offs[t + 1] - offs[t] + 1, np.int64)   # slab label -> component + 1
            lut[1:] = comp[offs[t]:offs[t + 1]] + 1
            got[corners[t]:corners[t + 1]] = lut[cc]
        assert _same_partition(got, cc3d.connected_components(m, connectivity=26))
    assert len(np.unique(cc3d.connected_components(diag, connectivity=26))) == 2   # one chain


def _reference_surface(pat_ras, obj_ras, d, bin_mm):
    """The couch surface from all RAS points at once (the computation before the chunks):
    per column the patient's deepest point, the first object point beyond it, and in columns
    without the patient the first object point."""
    ps, pk = T._columns(pat_ras, d, bin_mm)
    keys, inv = np.unique(pk, return_inverse=True)
    deepest = np.full(len(keys), -np.inf)
    np.maximum.at(deepest, inv, ps)
    top = np.full(len(keys), np.inf)
    os_, ok = T._columns(obj_ras, d, bin_mm)
    pos = np.clip(np.searchsorted(keys, ok), 0, len(keys) - 1)
    col = keys[pos] == ok
    under = col & (os_ > deepest[pos])
    np.minimum.at(top, pos[under], os_[under])
    okeys, oinv = np.unique(ok[~col], return_inverse=True)
    otop = np.full(len(okeys), np.inf)
    np.minimum.at(otop, oinv, os_[~col])
    found = np.isfinite(top)
    k = np.concatenate([keys[found], okeys])
    o = np.argsort(k, kind="stable")
    return float(deepest.max()), float(found.mean()), k[o], np.concatenate([top[found], otop])[o]


def test_couch_surface_by_chunks_equals_the_surface_of_all_points():
    """On the oblique, flipped 2 x 2 x 3 mm table phantom: the couch points are integer voxel
    indices (2 bytes per coordinate); converted a chunk at a time (`voxel_ras`) they are the RAS
    points of one conversion, and the surface along the table direction and two oblique ones
    is the same, for chunks of 64, 1024 and the default, as the one from all RAS points at once."""
    from test_planning_table import _flipped_oblique, _table_phantom

    ct, lab, _ = _table_phantom(_flipped_oblique())
    model = sk.outer_skin(ct, lab)
    pat, obj = T.patient_and_objects(ct, model.body, np.asarray(model.data), sk.AIR_HU)
    assert pat.dtype == np.int16 and obj.dtype == np.int16 and len(pat) and len(obj)
    pat_ras, obj_ras = ct.kji_to_world(pat.astype(float)), ct.kji_to_world(obj.astype(float))
    for chunk in (64, 1000):
        assert np.array_equal(np.concatenate(list(T.voxel_ras(ct, obj, chunk))), obj_ras)
    bin_mm = float(max(ct.spacing))
    for d in ((0.0, -1.0, 0.0), (0.3, -0.9, 0.2), (-0.7, -0.7, 0.1)):
        unit = T.locate_table(ct, model.body, model.data, d, sk.AIR_HU, (pat, obj)).direction   # as normalised there
        deepest, cover, keys, tops = _reference_surface(pat_ras, obj_ras, unit, bin_mm)
        assert cover > 0.5 and len(keys)
        for chunk in (64, 1024, T.CHUNK):
            s = T.locate_table(ct, model.body, model.data, d, sk.AIR_HU, (pat, obj), chunk=chunk)
            assert s.deepest_mm == deepest and s.cover == cover
            assert np.array_equal(s.keys, keys) and np.array_equal(s.tops, tops)



def test_couch_surface_dense_columns_equal_the_sorted_columns():
    """The per-column extremes reduced into dense (u, v) arrays (`table._locate_dense`, issue 20)
    give the surface of the sorted keys (`_locate_sorted`, the computation before) bit for bit on
    the oblique, flipped table phantom, along the table direction and two oblique ones, for chunks
    of 64 and the default; `locate_table` takes the dense path there (its column range holds fewer
    cells than points), and a range that misses a column raises `_OutOfBox` (`locate_table` then
    sorts) instead of dropping or misplacing the column."""
    from test_planning_table import _flipped_oblique, _table_phantom

    ct, lab, _ = _table_phantom(_flipped_oblique())
    model = sk.outer_skin(ct, lab)
    pat, obj = T.patient_and_objects(ct, model.body, np.asarray(model.data), sk.AIR_HU)
    bin_mm = float(max(ct.spacing))
    for d0 in ((0.0, -1.0, 0.0), (0.3, -0.9, 0.2), (-0.7, -0.7, 0.1)):
        d = T.locate_table(ct, model.body, model.data, d0, sk.AIR_HU, (pat, obj)).direction   # as normalised there
        box = T._uv_box(ct, (pat, obj), d, bin_mm)
        assert box[1] * box[3] <= len(pat) + len(obj)   # the dense path is the one taken
        ref = T._locate_sorted(ct, pat, obj, d, bin_mm, T.CHUNK)
        assert ref.cover > 0.5 and len(ref.keys)
        for chunk in (64, T.CHUNK):
            s = T._locate_dense(ct, pat, obj, d, bin_mm, box, chunk)
            assert s.deepest_mm == ref.deepest_mm and s.cover == ref.cover and s.located == ref.located
            assert np.array_equal(s.keys, ref.keys) and np.array_equal(s.tops, ref.tops)
        s = T.locate_table(ct, model.body, model.data, d0, sk.AIR_HU, (pat, obj))
        assert np.array_equal(s.keys, ref.keys) and np.array_equal(s.tops, ref.tops)
        u0, nu, v0, nv = box
        _, u, v = T._column_uv(ct.kji_to_world(np.concatenate([pat, obj]).astype(float)), d, bin_mm)
        assert u.min() > u0 and u.max() < u0 + nu - 1 and v.min() > v0 and v.max() < v0 + nv - 1
        with pytest.raises(T._OutOfBox):   # the range one column short of the points' highest u
            T._locate_dense(ct, pat, obj, d, bin_mm, (u0, int(u.max()) - u0, v0, nv), T.CHUNK)


def test_couch_search_traced_memory_with_slabs_is_under_5_8_bytes_per_voxel(monkeypatch):
    """The couch search (`patient_and_objects`) on the 2 x 2 x 3 mm table phantom (1.0 M voxels)
    with slabs of 2**16 voxels allocates less than 5.8 bytes per CT voxel (tracemalloc peak): the
    patient's and the objects' components are labelled slab by slab, no 4-byte label map of the
    whole box (before: 6.5 bytes per voxel; now 5.1, most of it the ball erosion's)."""
    from test_planning_table import _table_phantom

    monkeypatch.setattr(sk, "SLAB", 1 << 16)
    ct, lab, _ = _table_phantom()
    model = sk.outer_skin(ct, lab)
    body, data = model.body, np.asarray(model.data)
    tracemalloc.start()
    try:
        T.patient_and_objects(ct, body, data, sk.AIR_HU)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5.8 * ct.array.size, peak / ct.array.size


def test_present_structures_counts_in_chunks_without_a_box_sized_int64_copy():
    """`planner.present_structures` names exactly the structures with a voxel in the maps' box
    (reference: ``np.unique``), a structure whose only voxel is in the last 2**20-voxel chunk
    included, and allocates under 10 MiB on a 3 M-voxel box (one chunk's int64 cast, 8 MiB; one
    ``bincount`` over the whole box cast all labels to int64: 8 bytes per voxel, 23 MiB here,
    132 MiB and the first plan's traced peak on the 1 mm phantom)."""
    from types import SimpleNamespace

    from imagio.planning.planner import present_structures

    label = np.zeros((30, 300, 333), np.uint16)          # 3.0 M voxels: 3 chunks
    label[2:5, 10:20, 10:20] = 1
    label[-1, -1, -1] = 3                                # alone in the last chunk
    names = ["liver", "kidney_left", "spleen", "aorta"]
    problem = SimpleNamespace(structures=[SimpleNamespace(value=v) for v in (1, 2, 3, 7)])
    maps = SimpleNamespace(label=label, names=names)
    ref = {names[i] for i, s in enumerate(problem.structures) if s.value in set(np.unique(label).tolist())}
    tracemalloc.start()
    try:
        got = present_structures(problem, maps)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == ref == {"liver", "spleen"}
    assert peak < 10 * 2 ** 20, peak / 2 ** 20


@pytest.mark.parametrize("slab", [None, 1 << 14])
def test_couch_search_on_the_packed_skin_masks_equals_the_whole_volume_definition(monkeypatch, slab):
    """`patient_and_objects` as the planner calls it (the skin model's bit-packed body and data,
    never unpacked whole: the patient on the body's box, the objects and the patient's boundary
    listed slab by slab) gives the voxel indices of the whole-volume definition, with scipy only
    (`_reference_patient` / `_reference_objects`: exact Euclidean distances on the volume,
    the boundary ``pat & ~erode(pat)``), on the oblique, flipped, 2 x 2 x 3 mm table phantom
    with loose objects, in one slab and in slabs of 2**14 voxels (26-connected objects and the
    patient's boundary crossing slab faces). A bool ``data`` gives the same and is not written.
    Slabs of 2**14 voxels allocate (tracemalloc peak) less than 3.3 bytes per CT voxel; main
    3.9 (body and data unpacked, the objects' and their distance test's masks of the volume)."""
    from scipy import ndimage

    from imagio.volume import index_list
    from test_planning_table import _flipped_oblique, _reference_objects, _reference_patient, _table_phantom

    if slab:
        monkeypatch.setattr(sk, "SLAB", slab)
    ct, lab, _ = _table_phantom(_flipped_oblique())
    w = ct.kji_to_world(np.argwhere(np.ones(ct.shape, bool)).astype(float)).reshape(*ct.shape, 3)
    a = ct.array.copy()
    for x0, y0, h in ((140.0, -20.0, 1.2), (155.0, -20.0, 3.0), (125.0, 75.0, 3.0)):   # loose cubes
        a[(np.abs(w[..., 0] - x0) <= h) & (np.abs(w[..., 1] - y0) <= h) & (np.abs(w[..., 2]) <= 3.0)] = 200
    ct = ct.with_array(a)
    model = sk.outer_skin(ct, lab)
    assert isinstance(model.body, sk.PackedMask) and isinstance(model.data, sk.PackedMask)
    tracemalloc.start()
    try:
        pat, obj = T.patient_and_objects(ct, model.body, model.data, sk.AIR_HU)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    body, data = np.asarray(model.body), np.asarray(model.data)
    ref_pat = _reference_patient(ct, body, sk.AIR_HU, T.OPEN_MM)
    edge = ref_pat & ~ndimage.binary_erosion(ref_pat, border_value=0)
    ref_obj = _reference_objects(ct, ref_pat, data, sk.AIR_HU, T.OPEN_MM)
    assert len(pat) > 1000 and len(obj) > 1000
    assert np.array_equal(pat, index_list(edge)) and np.array_equal(obj, index_list(ref_obj))
    copy = data.copy()
    again = T.patient_and_objects(ct, body, data, sk.AIR_HU)
    assert np.array_equal(data, copy)
    assert np.array_equal(again[0], pat) and np.array_equal(again[1], obj)
    if slab:
        assert peak < 3.3 * ct.array.size, peak / ct.array.size


def test_couch_index_bounds_once_per_case_give_the_same_column_range_and_surface():
    """`table.index_bounds` (the couch points' index box, taken once per case by
    `locate_table_cached` instead of once per patient position, issue 20) is the least and
    greatest index of all points along each axis, and `_uv_box` / `locate_table` given it return
    the same column range and surface as computing it again, on the oblique, flipped table
    phantom along the table direction and two oblique ones; the cached case holds it."""
    from test_planning_table import _flipped_oblique, _table_phantom

    ct, lab, _ = _table_phantom(_flipped_oblique())
    model = sk.outer_skin(ct, lab)
    pat, obj = T.patient_and_objects(ct, model.body, np.asarray(model.data), sk.AIR_HU)
    allp = np.concatenate([pat, obj]).astype(float)
    lo, hi = T.index_bounds((pat, obj))
    assert np.array_equal(lo, allp.min(axis=0)) and np.array_equal(hi, allp.max(axis=0))
    assert T.index_bounds((pat[:0], obj[:0])) is None
    bin_mm = float(max(ct.spacing))
    for d0 in ((0.0, -1.0, 0.0), (0.3, -0.9, 0.2), (-0.7, -0.7, 0.1)):
        ref = T.locate_table(ct, model.body, model.data, d0, sk.AIR_HU, (pat, obj))
        assert T._uv_box(ct, (pat, obj), ref.direction, bin_mm, (lo, hi)) == T._uv_box(ct, (pat, obj), ref.direction, bin_mm)
        s = T.locate_table(ct, model.body, model.data, d0, sk.AIR_HU, (pat, obj), bounds=(lo, hi))
        assert s.deepest_mm == ref.deepest_mm and s.cover == ref.cover and s.located == ref.located
        assert np.array_equal(s.keys, ref.keys) and np.array_equal(s.tops, ref.tops)
    T.forget_cached_table()
    masks, _, bounds = T._case(ct, model.body, model.data, sk.AIR_HU)
    assert np.array_equal(bounds[0], lo) and np.array_equal(bounds[1], hi)
    assert all(np.array_equal(a, b) for a, b in zip(masks, (pat, obj)))
