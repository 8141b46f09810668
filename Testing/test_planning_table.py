"""The CT table under a supine patient (trial1 defect 1): a table base in the field of view,
connected to the couch top, must not move the table to the edge of the image.

The planner's body mask takes in objects connected to the patient through air enclosed in the
axial slice (the couch top touching the back, a base under it reaching the image edge). The
old table-side rule put the table top at that body's deepest skin, the image edge, and let the
needle left outside the skin reach 31 mm below the real couch top on Lung_Dx-A0001. These tests
measure the couch top independently (from the phantom's construction, from the CT column under
each entry on real data) and check every proposal's needle: target -> entry extended by the
needle's remaining length."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import rotation
from imagio.planning import Constraints, PlanningProblem, plan
from imagio.volume import Volume

COUCH_TOP_A = -100.0      # the patient's back rests on it (body semi-axis 100 mm in A)
COUCH_HU, FOAM_HU = 300, -850   # carbon fibre skins (partial volume), foam core


def _table_phantom(direction=None):
    """(ct, labels): an elliptic torso (semi-axes 140 x 100 mm) lying supine on a couch top 400 mm
    wide (2.5 mm carbon-fibre skins over a 15 mm foam core, top at A = -100 mm) whose base (two
    side walls and a floor plate enclosing air, then two rails) runs to the posterior edge of the image; a 12 mm tumour 20 mm from the
    postero-lateral skin on the right. Labels: 1 body, 2 bone (spine), 3 tumor; the table is unlabelled.
    Returns also the couch-top voxels' mask (bool [k, j, i])."""
    sp = np.array([2.0, 2.0, 3.0])
    n = np.array([230, 150, 30])                       # x -230..230, y -170..130, z -45..45
    m = np.eye(4)
    rot = np.eye(3) if direction is None else np.asarray(direction, float)
    m[:3, :3] = rot * sp
    m[:3, 3] = -rot @ (sp * (n - 1) / 2.0) + rot @ np.array([0.0, -20.0, 0.0])
    kk, jj, ii = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in n[::-1]], indexing="ij")
    ijk = np.stack([ii, jj, kk], -1).reshape(-1, 3)
    x, y, z = (ijk @ m[:3, :3].T + m[:3, 3]).T
    body = (x / 140.0) ** 2 + (y / 100.0) ** 2 <= 1.0
    wide = np.abs(x) <= 200.0
    couch = (y <= COUCH_TOP_A) & (y > COUCH_TOP_A - 2.5) & wide          # carbon-fibre top skin
    foam = (y <= COUCH_TOP_A - 2.5) & (y > COUCH_TOP_A - 17.5) & wide
    skin2 = (y <= COUCH_TOP_A - 17.5) & (y > COUCH_TOP_A - 20.0) & wide   # bottom skin
    caps = (y <= COUCH_TOP_A) & (y > COUCH_TOP_A - 20.0) & (np.abs(x) > 197.5) & wide   # sealed ends
    walls = (y <= COUCH_TOP_A - 20.0) & (np.abs(np.abs(x) - 150.0) <= 1.5)
    floor = (y <= -140.0) & (y > -142.5) & (np.abs(x) <= 151.5)
    rails = (y <= -142.5) & (np.abs(np.abs(x) - 20.0) <= 1.5)             # supports to the image edge
    hu = np.full(x.shape, -1000.0)
    hu[foam] = FOAM_HU
    hu[couch | skin2 | caps | walls | floor | rails] = COUCH_HU
    hu[(y < COUCH_TOP_A - 20.0) & (y > -140.0) & (np.abs(x) < 148.5)] = -900.0   # air inside the base
    hu[body] = 40.0
    lab = np.zeros(x.shape, np.uint8)
    lab[body] = 1
    spine = (x / 16.0) ** 2 + ((y + 70.0) / 16.0) ** 2 <= 1.0
    hu[spine] = 700.0
    lab[spine] = 2
    tum = (x - 100.0) ** 2 + (y + 50.0) ** 2 + z ** 2 <= 6.0 ** 2
    hu[tum] = 60.0
    lab[tum] = 3
    rng = np.random.default_rng(0)
    hu = hu + rng.normal(0.0, 8.0, hu.shape)
    shape = tuple(n[::-1])
    ct = Volume(hu.reshape(shape).astype(np.int16), m, "table_ct")
    labels = Volume(lab.reshape(shape), m, "table_labels", {1: "body", 2: "vertebrae", 3: "tumor"})
    return ct, labels, couch.reshape(shape)


def _needle_points(entry, target, length_mm, needle_mm: float, step: float = 0.5) -> np.ndarray:
    """RAS points (n, 3) of the needle's part outside the skin: from the entry away from the
    target, for the needle's remaining length."""
    e, t = np.asarray(entry, float), np.asarray(target, float)
    u = (e - t) / np.linalg.norm(e - t)
    out = max(needle_mm - float(length_mm), 0.0)
    return e + np.arange(0.0, out + step, step)[:, None] * u


@pytest.mark.parametrize("direction", [None, rotation((1, 1, 0), 12.0)])
def test_supine_needle_stays_above_a_couch_top_with_its_base_in_the_image(direction):
    """No feasible path's needle (each proposal and every feasible candidate) reaches below the
    couch top where the couch is (couch top from the couch voxels built into the phantom, not
    from the planner); fails on the old rule (the table at the image edge: postero-lateral
    entries whose needle goes down and out under the couch top)."""
    ct, lab, couch = _table_phantom(direction)
    cw = ct.kji_to_world(np.argwhere(couch).astype(float))
    top_a, half_w = float(cw[:, 1].max()), float(np.abs(cw[:, 0]).max())
    prob = PlanningProblem.build(ct, lab, "tumor", constraints=Constraints(patient_position="supine"))
    result = plan(prob)
    tol = float(max(ct.spacing))
    t = result.table
    rows = [(m.entry_ras, m.target_ras, m.length_mm) for m in result.proposals]
    rows += [(t.entry_ras[i], t.target_ras[i], t.length_mm[i]) for i in np.flatnonzero(t.feasible)]
    bad = []
    for e, tg, ln in rows:
        p = _needle_points(e, tg, ln, prob.needle.length_mm)
        under = (np.abs(p[:, 0]) <= half_w) & (p[:, 1] < top_a - tol)
        if under.any():
            bad.append((np.round(e, 1).tolist(), round(float(p[under, 1].min() - top_a), 1)))
    assert not bad, (len(bad), len(rows), bad[:3])
    assert result.feasible or any(w.startswith("patient position: supine") for w in result.warnings)
    assert not any(w.startswith("table not found") for w in result.warnings)


def test_no_table_in_the_image_is_said():
    """The same torso without its table: the hub's clearance from the table was not checked,
    and the plan says so."""
    ct, lab, _ = _table_phantom()
    a = ct.array.copy()
    a[(lab.array == 0) & (a > -500)] = -1000
    prob = PlanningProblem.build(ct.with_array(a), lab, "tumor", constraints=Constraints(patient_position="supine"))
    result = plan(prob)
    assert any(w.startswith("table not found under the patient") for w in result.warnings), result.warnings


@pytest.mark.slow
@pytest.mark.data
def test_lung_dx_supine_needle_never_crosses_the_couch(shared_data):
    """trial1 defect 1 on Lung_Dx-A0001 (couch top and its base in the image), the trial's
    target (tumour centre of Lung_Dx-A0001_boxes.csv, LPS 41.8, 202, -209): no proposal or
    feasible candidate whose needle, outside the skin (from 3 mm out to the hub), meets a voxel
    above -400 HU (the couch top is at A = -284 mm under the old best entry; the old plan's
    hub went 31 mm below it); supine is then refused and another position is named."""
    from imagio import io
    from imagio.segmentation.rules import segment

    ct = io.read_image(shared_data / "lung-pet-ct-dx" / "Lung_Dx-A0001_ct.nii.gz")
    lab = segment(ct, ("body", "bones", "lungs", "airways", "vessels"))
    target = np.array([-41.8, -202.0, -209.0])               # LPS -> RAS
    prob = PlanningProblem.build(ct, lab, target, constraints=Constraints(patient_position="supine"))
    result = plan(prob)
    t = result.table
    rows = [(m.entry_ras, m.target_ras, m.length_mm) for m in result.proposals]
    rows += [(t.entry_ras[i], t.target_ras[i], t.length_mm[i]) for i in np.flatnonzero(t.feasible)]
    hit = []
    for e, tg, ln in rows:
        p = _needle_points(e, tg, ln, prob.needle.length_mm, step=0.25)[12:]
        kji = np.rint(ct.world_to_kji(p)).astype(int)
        inside = np.all((kji >= 0) & (kji < np.array(ct.shape)), axis=1)
        hu = ct.array[tuple(kji[inside].T)]
        if np.any(hu > -400):
            hit.append((np.round(e, 1).tolist(), int(hu.max())))
    assert not hit, (len(hit), len(rows), hit[:3])
    if not result.feasible:
        assert any(w.startswith("patient position: supine") for w in result.warnings), result.warnings


def _flipped_oblique():
    rot = rotation((1, 1, 0), 12.0)
    rot[:, 0] *= -1.0                     # array i runs towards world left: a flipped grid
    return rot


def _reference_objects(ct, pat, data, air_hu, open_mm):
    """`table.other_objects` by its definition on the whole volume, with scipy only: the
    26-connected components of the non-patient dense data voxels that hold a voxel farther
    than 2 * open_mm from the patient (scipy's exact Euclidean distance transform, mm)."""
    from scipy import ndimage

    other = np.asarray(data, bool) & (ct.array > air_hu) & ~pat
    comp, _ = ndimage.label(other, structure=np.ones((3, 3, 3), bool))
    dist = ndimage.distance_transform_edt(~pat, sampling=ct.spacing_kji)
    keep = np.unique(comp[other & (dist > 2.0 * open_mm)])
    return np.isin(comp, keep[keep > 0])


def _largest(m):
    from scipy import ndimage

    lab, n = ndimage.label(m)          # 6-connected; labels in raster order, ties: the first
    if n == 0:
        return m.copy()
    return lab == 1 + int(np.argmax(np.bincount(lab.ravel())[1:]))


def _reference_patient(ct, body, air_hu, open_mm):
    """`table.patient_mask` by its definition on the whole volume, with scipy only: the tissue
    opened by ``open_mm`` (voxels farther than open_mm from the non-tissue inside the image,
    largest 6-connected component, voxels within 1.05 open_mm of it and in the tissue, largest
    component), scipy's exact Euclidean distance transform (float64, mm)."""
    from scipy import ndimage

    tissue = np.asarray(body, bool) & (ct.array > air_hu)
    core = _largest(ndimage.distance_transform_edt(tissue, sampling=ct.spacing_kji) > open_mm)
    if not core.any():
        return _largest(tissue)
    return _largest((ndimage.distance_transform_edt(~core, sampling=ct.spacing_kji) <= 1.05 * open_mm) & tissue)


@pytest.mark.parametrize("direction", [None, "flipped_oblique"])
def test_couch_search_shortcuts_equal_the_whole_volume_definition(direction):
    """The couch search's shortcuts (per-case cache, the surface read from a dense column
    table) and its objects give what the whole-volume definition gives,
    on a straight grid and on an oblique, flipped, 2 x 2 x 3 mm grid:
    - `patient_mask` (bit-packed ball morphology on bounding boxes) equals
      `_reference_patient` (scipy, whole volume), and most of the couch top is not in it;
    - `other_objects` equals `_reference_objects` (scipy, whole volume), with a small loose
      object resting near the patient (within its grown box) so that the distance map runs;
    - `TableSurface.below` equals a per-point look-up of its own (column key -> top) pairs;
    - a second target on the same case reuses the cached points and the direction's surface
      (no recomputation) and plans the same proposals as with the cache emptied first."""
    from imagio.planning import table as T
    from imagio.planning.skin import AIR_HU

    ct, lab, couch = _table_phantom(_flipped_oblique() if direction else None)
    # loose cubes: 2 mm, 2-6 mm from the patient's lateral skin (x = 137.2 mm at A = -20; near:
    # dropped); 6 mm, 15 mm out (kept, outside the patient's grown box); 6 mm at the antero-lateral
    # corner of that box (kept: more than 2 * open_mm from the elliptic torso)
    w = ct.kji_to_world(np.argwhere(np.ones(ct.shape, bool)).astype(float)).reshape(*ct.shape, 3)
    a = ct.array.copy()
    cubes = []
    for x0, y0, h in ((140.0, -20.0, 1.2), (155.0, -20.0, 3.0), (125.0, 75.0, 3.0)):
        cubes.append((np.abs(w[..., 0] - x0) <= h) & (np.abs(w[..., 1] - y0) <= h) & (np.abs(w[..., 2]) <= 3.0))
        a[cubes[-1]] = 200
    ct = ct.with_array(a)
    T.forget_cached_table()
    prob = PlanningProblem.build(ct, lab, "tumor", constraints=Constraints(patient_position="supine"))
    sk = prob.skin
    pat = T.patient_mask(ct, sk.body, AIR_HU)
    ref_pat = _reference_patient(ct, sk.body, AIR_HU, T.OPEN_MM)
    assert np.array_equal(pat, ref_pat), int((pat ^ ref_pat).sum())
    on_body = int((np.asarray(sk.body) & couch).sum())   # the body takes the couch top in; the opening
    assert pat.any() and on_body and (pat & couch).sum() < 0.15 * on_body   # leaves only where it touches the back
    got = T.other_objects(ct, pat, np.asarray(sk.data), AIR_HU)
    ref = _reference_objects(ct, pat, np.asarray(sk.data), AIR_HU, T.OPEN_MM)
    assert ref.any() and np.array_equal(got, ref), int((got ^ ref).sum())
    assert all(c.any() for c in cubes)
    assert not got[cubes[0]].any() and got[cubes[1]].all() and got[cubes[2]].all()

    first = plan(prob)
    surf = T.locate_table_cached(prob, prob.constraints.table_direction)
    assert surf.located and len(surf.keys)
    tops = dict(zip(surf.keys.tolist(), surf.tops.tolist()))
    rng = np.random.default_rng(3)
    lo, hi = w.reshape(-1, 3).min(0) - 10.0, w.reshape(-1, 3).max(0) + 10.0
    pts = rng.uniform(lo, hi, (20000, 3))
    s, k = T._columns(pts, surf.direction, surf.bin_mm)
    lim = np.array([tops.get(int(kk), surf.deepest_mm) for kk in k])
    assert np.array_equal(surf.below(pts), s > lim)
    assert 0 < int((s > lim).sum()) < len(pts)

    masks = T.case_masks(ct, sk.body, sk.data, AIR_HU)
    second = PlanningProblem.build(ct, lab, np.asarray(first.proposals[0].target_ras) + [0.0, 0.0, 3.0],
                                   constraints=Constraints(patient_position="supine"))
    cached = plan(second)
    assert T.case_masks(ct, second.skin.body, second.skin.data, AIR_HU) is masks   # reused
    assert T.locate_table_cached(second, prob.constraints.table_direction) is surf   # the case's surface
    T.forget_cached_table()
    again = plan(PlanningProblem.build(ct, lab, np.asarray(first.proposals[0].target_ras) + [0.0, 0.0, 3.0],
                                       constraints=Constraints(patient_position="supine")))
    assert [np.asarray(m.entry_ras).tolist() for m in cached.proposals] == [np.asarray(m.entry_ras).tolist() for m in again.proposals]
    assert len(cached.proposals) > 0
    assert [float(m.score) for m in cached.proposals] == [float(m.score) for m in again.proposals]
    assert cached.warnings == again.warnings


def test_couch_search_memory_is_bounded_by_masks_not_float_maps():
    """The couch search (`patient_and_objects`) on the oblique, flipped table phantom allocates
    (tracemalloc peak) less than 8 bytes per CT voxel: a few bool masks and one uint32 label map
    of the objects' box, no volume-sized float32 distance map (main's edt erosion, dilation
    and the objects' distance test: 9.9 bytes per voxel on this case)."""
    import tracemalloc

    from imagio.planning import table as T
    from imagio.planning.skin import AIR_HU, outer_skin

    ct, lab, _ = _table_phantom(_flipped_oblique())
    sk = outer_skin(ct, lab)
    body, data = sk.body, np.asarray(sk.data)
    tracemalloc.start()
    try:
        pat, obj = T.patient_and_objects(ct, body, data, AIR_HU)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(pat) and len(obj)
    assert peak < 8 * ct.array.size, peak / ct.array.size


def test_scoring_threads_share_one_couch_search(monkeypatch):
    """Two scoring threads asking for the couch at once (`case_masks`, as the chunks of
    `score_paths` do) run one couch search and get the same points; main ran one per thread
    (twice the time and memory of the first plan's largest step). The counting wrapper calls
    the real `patient_and_objects`; it waits (at most 3 s) for a second concurrent call, which
    comes only when nothing serialises them."""
    import threading

    from imagio.planning import table as T
    from imagio.planning.skin import AIR_HU, outer_skin

    ct, lab, _ = _table_phantom()
    sk = outer_skin(ct, lab)
    real, calls = T.patient_and_objects, []
    meet = threading.Barrier(2)

    def counted(*a, **k):
        calls.append(1)
        try:
            meet.wait(timeout=3.0)
        except threading.BrokenBarrierError:
            pass
        return real(*a, **k)

    monkeypatch.setattr(T, "patient_and_objects", counted)
    T.forget_cached_table()
    out = [None, None]

    def ask(i):
        out[i] = T.case_masks(ct, sk.body, sk.data, AIR_HU)

    th = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    T.forget_cached_table()
    assert len(calls) == 1, len(calls)
    assert out[0] is out[1] and len(out[0][0])


def _same_points(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def test_couch_cache_is_keyed_on_what_the_couch_search_reads():
    """`case_masks` is keyed on the values it reads (the grid, the body and data masks, and the
    CT only as CT > air inside them), not on the CT array object (issue 20: the ablation demo
    paints its large tumour into a new CT array and main ran the couch search again):
    - a new CT array with a 20 mm ball of tumour HU (60) painted into the patient's tissue
      reuses the cached points, and a fresh `patient_and_objects` on that CT gives the same
      points (the reuse is right, checked by computing it);
    - a CT whose couch top lost a strip (turned to air), whose patient lost a tissue voxel, or
      that was edited in place is a new case: the cache is not returned, and what comes back
      equals a fresh computation on that CT (main returned the stale points after an in-place
      edit)."""
    from imagio.planning import table as T
    from imagio.planning.skin import AIR_HU, outer_skin

    ct, lab, couch = _table_phantom(_flipped_oblique())
    sk = outer_skin(ct, lab)
    T.forget_cached_table()
    masks = T.case_masks(ct, sk.body, sk.data, AIR_HU)
    w = ct.kji_to_world(np.argwhere(np.ones(ct.shape, bool)).astype(float)).reshape(*ct.shape, 3)

    ball = np.linalg.norm(w - [60.0, -30.0, 0.0], axis=-1) <= 10.0
    assert ball.sum() > 100 and (ct.array[ball] > AIR_HU).all() and np.asarray(sk.body)[ball].all()
    painted = ct.array.copy()
    painted[ball] = 60
    ct2 = ct.with_array(painted)
    assert T.case_masks(ct2, sk.body, sk.data, AIR_HU) is masks
    assert _same_points(T.patient_and_objects(ct2, sk.body, np.asarray(sk.data), AIR_HU), masks)

    strip = couch & (np.abs(w[..., 0]) < 60.0)          # a piece of the couch top under the back
    tissue_to_air = np.zeros(ct.shape, bool)
    tissue_to_air[tuple(np.argwhere(ball)[0])] = True  # one voxel of the patient's tissue
    for region in (strip, tissue_to_air):
        assert region.any()
        arr = ct.array.copy()
        arr[region] = -1000
        ct3 = ct.with_array(arr)
        got = T.case_masks(ct3, sk.body, sk.data, AIR_HU)
        assert got is not masks
        assert _same_points(got, T.patient_and_objects(ct3, sk.body, np.asarray(sk.data), AIR_HU))
    assert not _same_points(T.case_masks(ct.with_array(np.where(strip, -1000, ct.array).astype(ct.array.dtype)),
                                         sk.body, sk.data, AIR_HU), masks)    # the couch moved: other points

    inplace = ct.with_array(ct.array.copy())
    first = T.case_masks(inplace, sk.body, sk.data, AIR_HU)
    inplace.array[strip] = -1000                        # the same array object, edited
    again = T.case_masks(inplace, sk.body, sk.data, AIR_HU)
    assert again is not first
    assert _same_points(again, T.patient_and_objects(inplace, sk.body, np.asarray(sk.data), AIR_HU))
    T.forget_cached_table()
