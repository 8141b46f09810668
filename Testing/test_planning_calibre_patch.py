"""Issue 20 (first proposals' peak memory): the vessel calibre split (`problem.calibre_split`) is a
patch of the label map, applied after the input checks (`_check_labels_match`: the outer skin,
the orientation and registration checks) instead of a copy of the map held through them; in
place when the map is the planner's own resampled copy, never on the caller's array. The plan is
the same as with the thin branches relabelled before the checks (the order before), on the 2.5 mm
phantom and on an oblique (20 degrees about S, 10 about R), flipped (-R), anisotropic
(2 x 2.5 x 3 mm) grid; and `_refuse_lung_beyond_skin` keeps cc3d's labels (no int64 copy)."""

from __future__ import annotations

import hashlib
import tracemalloc

import numpy as np
import pytest

from conftest import rotation
from imagio import label_registration as lr
from imagio import phantom
from imagio.planning import PlanningProblem, plan
from imagio.planning import distance_maps as dm
from imagio.planning import problem as pr
from imagio.planning import skin as sk
from imagio.volume import Volume, make_ijk_to_ras, reach_box


def _fresh():
    lr._PREPARED.clear()
    lr.forget_cached_registration()
    dm._CACHE.clear()
    sk._CACHE.clear()
    pr.forget_cached_label_checks()


def _digest(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def ph():
    return phantom.generate(spacing=2.5, seed=0)   # at 3 mm no branch is thin enough to split


@pytest.fixture(scope="module", autouse=True)
def _split_calibre():
    """The split's calibre for these tests: 6 mm. Since calibre115 a lumen whose calibre lies within
    its uncertainty (one voxel, 2.5 mm here) below the split's calibre is kept large, and the 2.5 mm
    phantom's thinnest lung branches read 2.5-2.8 mm: no branch is a voxel below 3 mm, so nothing
    would split. The patch's mechanics (what these tests check) are the same at any calibre."""
    cfg = pr.load_defaults()["vessel_calibre"]
    old = cfg["hard_min_diameter_mm"]
    cfg["hard_min_diameter_mm"] = 6.0
    try:
        yield
    finally:
        cfg["hard_min_diameter_mm"] = old


def _oblique(ph):
    """The phantom's CT and labels resampled onto an oblique, flipped, anisotropic grid that holds
    its whole extent (air around the body), and that grid's labels on the phantom's own grid."""
    ct, lab = ph.ct, ph.labels
    n = np.array(ct.shape[::-1], float)   # i, j, k
    corners = np.array([[a, b, c] for a in (0, n[0] - 1) for b in (0, n[1] - 1) for c in (0, n[2] - 1)])
    ras = (ct.ijk_to_ras[:3, :3] @ corners.T).T + ct.ijk_to_ras[:3, 3]
    centre = 0.5 * (ras.min(0) + ras.max(0))
    d = rotation((0, 0, 1), 20.0) @ rotation((1, 0, 0), 10.0) @ np.diag([-1.0, 1.0, 1.0])
    sp = np.array([2.0, 2.5, 3.0])
    ext = np.abs(d.T @ (ras - centre).T).max(axis=1) * 2.0 + 6.0     # the extent along the grid's axes
    shape = np.ceil(ext / sp).astype(int)
    org = centre - d @ (0.5 * (shape - 1) * sp)
    ref = Volume(np.zeros(tuple(shape[::-1]), np.int16), make_ijk_to_ras(sp, org, d))
    return ct.resample_like(ref), lab.resample_like(ref)


def _plan(ct, lab, target, monkeypatch=None, before=False):
    """Build + plan; ``before``: the thin branches relabelled before the input checks (as the
    build did before issue 20's patch), by applying the split to the labels `skin.outer_skin`
    reads and to ``prob.labels`` on entering `_check_labels_match`. Returns (plan, the problem's labels, the labels the registration
    check read)."""
    _fresh()
    seen = {}
    split_of = pr.calibre_split
    check = pr._check_labels_match
    reg = lr.require_registered
    skin_of = sk.outer_skin

    def keep_split(*a, **k):
        s, info = split_of(*a, **k)
        seen["split"] = s
        return s, info

    def checks(prob, *a, **k):
        if before and seen.get("split") is not None:
            prob.labels = seen["split"].apply(prob.labels)
        return check(prob, *a, **k)

    def skin(ct_, labels, *a, **k):
        if before and seen.get("split") is not None:
            labels = seen["split"].apply(labels)
        return skin_of(ct_, labels, *a, **k)

    def registration(ct_, grid, *a, **k):
        seen["grid"] = grid
        return reg(ct_, grid, *a, **k)

    monkeypatch.setattr(pr, "calibre_split", keep_split)
    monkeypatch.setattr(pr, "_check_labels_match", checks)
    monkeypatch.setattr(lr, "require_registered", registration)
    monkeypatch.setattr(sk, "outer_skin", skin)
    try:
        p = plan(PlanningProblem.build(ct, lab, target), k=5)
    finally:
        monkeypatch.undo()
        _fresh()
    assert seen["split"] is not None   # the case splits a vessel tree within reach
    return p, p.problem.labels, seen["grid"]


def _same(a, b):
    assert [np.asarray(m.entry_ras).tolist() for m in a.proposals] == \
        [np.asarray(m.entry_ras).tolist() for m in b.proposals]
    assert [np.asarray(m.target_ras).tolist() for m in a.proposals] == \
        [np.asarray(m.target_ras).tolist() for m in b.proposals]
    assert [float(m.score) for m in a.proposals] == [float(m.score) for m in b.proposals]
    assert a.warnings == b.warnings and len(a.proposals) == 5
    assert np.array_equal(a.table.score, b.table.score)
    assert a.problem.rule_table() == b.problem.rule_table()


@pytest.mark.parametrize("oblique", [False, True])
def test_calibre_patch_after_the_checks_plans_the_same_and_keeps_the_callers_map(ph, oblique, monkeypatch):
    ct, lab = _oblique(ph) if oblique else (ph.ct, ph.labels)
    if oblique:
        assert np.linalg.det(ct.direction) < 0 and len(set(np.round(ct.spacing, 3))) == 3
    target = next(le for le in ph.lesions if le.kind == "lung_nodule").name
    given = _digest(lab.array)
    new, new_lab, grid = _plan(ct, lab, target, monkeypatch)
    # the registration check read the caller's array itself: no copy of the map was made before it
    assert np.shares_memory(grid.array, lab.array)
    assert _digest(lab.array) == given   # the caller's labels never modified
    ref, ref_lab, ref_grid = _plan(ct, lab, target, monkeypatch, before=True)
    assert not np.shares_memory(ref_grid.array, lab.array)   # the order before: the check read the copy
    _same(new, ref)
    assert new_lab.labels == ref_lab.labels and new_lab.array.dtype == ref_lab.array.dtype
    assert np.array_equal(new_lab.array, ref_lab.array)
    small = [v for v, n in new_lab.labels.items() if n.endswith("_small")]
    assert small and np.isin(new_lab.array, small).any()
    if oblique:   # the labels on the phantom's own grid: resampled by the planner, relabelled in place
        own, own_lab, _ = _plan(ct, ph.labels, target, monkeypatch)
        assert _digest(ph.labels.array) != _digest(own_lab.array) and len(own.proposals) == 5
        assert np.array_equal(own_lab.array, new_lab.array) and own_lab.labels == new_lab.labels


def test_calibre_patch_applied_equals_the_split_and_never_writes_the_input(ph):
    lab = ph.labels
    tgt = pr.resolve_target(lab, next(le for le in ph.lesions if le.kind == "lung_nodule").name)
    given = _digest(lab.array)
    split, info = pr.calibre_split(lab, tgt, {})
    copy = split.apply(lab)
    assert _digest(lab.array) == given and not np.shares_memory(copy.array, lab.array)
    mine = lab.with_array(lab.array.copy())
    inplace = split.apply(mine, in_place=True)
    assert np.shares_memory(inplace.array, mine.array) and np.array_equal(inplace.array, copy.array)
    out, info2 = pr.split_vessels_by_calibre(lab, tgt, {})
    assert info == info2 and np.array_equal(out.array, copy.array) and out.labels == copy.labels
    changed = copy.array != lab.array
    v = {n: k for k, n in copy.labels.items()}
    assert changed.any() and np.all(copy.array[changed] == v["lung_vessels_small"])
    assert np.all(lab.array[changed] == v["lung_vessels"])
    # an 8-bit map whose new value reaches 255: the copy is 16-bit (in place too: a copy then)
    hi = lab.with_array(lab.array.copy(), labels={**lab.labels, 254: "spare"})
    s254, _ = pr.calibre_split(hi, tgt, {})
    assert s254.max_value == 255
    for got in (s254.apply(hi), s254.apply(hi, in_place=True)):
        assert got.array.dtype == np.uint16 and not np.shares_memory(got.array, hi.array)


def test_lung_beyond_skin_check_keeps_cc3ds_labels(ph, monkeypatch):
    """Its traced peak per voxel of the reach box it reads, liver tumour of the 2.5 mm phantom:
    before, with an int64 copy of the components and bincount's own int64 copy, 22.1
    bytes/voxel; now cc3d's unsigned labels and chunked counts, 16.8 (the rest: the lung tests'
    own temporaries, `segmentation.body.lung_beyond_wall`)."""
    target = next(le for le in ph.lesions if le.kind == "liver_tumor").name
    seen = {}
    f = pr._refuse_lung_beyond_skin

    def measured(prob, reach_mm):
        lo, hi = reach_box(prob.ct, prob.target.point_ras, reach_mm)
        seen["voxels"] = int(np.prod(hi - lo))
        tracemalloc.start()
        try:
            return f(prob, reach_mm)
        finally:
            seen["peak"] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()

    monkeypatch.setattr(pr, "_refuse_lung_beyond_skin", measured)
    _fresh()
    PlanningProblem.build(ph.ct, ph.labels, target)
    _fresh()
    assert seen["peak"] / seen["voxels"] < 19.0, seen
