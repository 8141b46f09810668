"""Outer skin, cut faces, padding and vessel calibre on synthetic volumes whose answer is known
by construction (the real cases are in test_planning_safety.py)."""

from __future__ import annotations

import numpy as np
import pytest

from imagio.planning.problem import Target, split_vessels_by_calibre
from imagio.padding import data_mask, padding_mask
from imagio.planning.skin import outer_skin
from imagio.volume import Volume, make_ijk_to_ras


def _torso(shape=(20, 60, 60), sp=(2.0, 2.0, 2.0), noise=15.0, seed=0):
    """An elliptic soft-tissue cylinder along k (world S) with a 'lung' air cavity that runs
    through the first and last slice, and a closed gas bubble; noisy air outside."""
    rng = np.random.default_rng(seed)
    k, j, i = np.indices(shape)
    cj, ci = (shape[1] - 1) / 2, (shape[2] - 1) / 2
    body = ((j - cj) / 22.0) ** 2 + ((i - ci) / 26.0) ** 2 <= 1.0
    lung = ((j - cj) / 8.0) ** 2 + ((i - ci - 8) / 8.0) ** 2 <= 1.0
    bubble = ((k - 10) / 2.0) ** 2 + ((j - cj) / 3.0) ** 2 + ((i - ci + 12) / 3.0) ** 2 <= 1.0
    hu = np.where(body, 40.0, -1000.0)
    hu[lung | bubble] = -850.0
    hu += rng.normal(0, noise, shape)
    vol = Volume(hu.astype(np.int16), make_ijk_to_ras(sp[::-1]), "torso")
    return vol, body, lung


def test_internal_air_touching_scan_ends_is_not_outside():
    ct, body, lung = _torso()
    s = outer_skin(ct)
    assert not s.exterior[lung].any()            # the cavity is open at both ends: still inside
    assert s.body[lung & s.data].all()           # (the outer voxel layer is not data)
    # skin only where the body meets the outer air: every skin voxel borders the true exterior
    from scipy import ndimage

    outside = ~body
    near_out = ndimage.binary_dilation(outside)
    assert s.skin.any() and not (s.skin & ~near_out).any()
    # no skin on the first/last slice (cut faces)
    assert not s.skin[0].any() and not s.skin[-1].any()
    sides = {t.side for t in s.truncations}
    assert sides == {"superior", "inferior"}


def test_partial_volume_strip_at_a_cut_face_is_not_outside_air():
    """New-user trial 85 H1: lung2 cropped in-plane (anterior and left chest wall cut away), its
    lungs labelled by `segment` up to one voxel short of the cut face: that voxel layer, partial
    volume of lung and chest wall (-467 HU), unlabelled and below the -400 HU air threshold, was
    taken for the air around the patient, the lung's edge beside it for skin, and two 'feasible'
    proposals entered the lung 0.6 mm from the cut. The torso cropped through its lung, the
    lung labelled but for a -470 HU layer along the face: that layer is not exterior air (its
    median is denser than air can be at partial volume, `limits.AERATED_MAX_HU`), no skin
    borders the lung, the cut is reported on that face, and the skin elsewhere is the
    uncropped torso's."""
    from scipy import ndimage

    ct, body, lung = _torso()
    cut = int(round((ct.shape[2] - 1) / 2 + 8))           # through the lung's centre
    a = ct.array[:, :, :cut].copy()
    lung_c = lung[:, :, :cut]
    strip = np.zeros(a.shape, bool)
    strip[:, :, cut - 2] = lung_c[:, :, cut - 2]           # the last data layer (the outer one is not data)
    a[strip] = -470
    crop = ct.crop((0, 0, 0), (ct.shape[0], ct.shape[1], cut)).with_array(a)
    labels = crop.with_array(np.where(strip, 0, np.where(lung_c, 2, np.where(body[:, :, :cut], 1, 0))).astype(np.uint8),
                             labels={1: "body", 2: "lung_right"})
    s = outer_skin(crop, labels)
    inner = (lung_c | strip) & np.asarray(s.data)
    assert inner.any() and not np.asarray(s.exterior)[inner].any()
    assert np.asarray(s.body)[inner].all()
    near_lung = ndimage.binary_dilation(lung_c)
    assert not (np.asarray(s.skin) & near_lung).any()
    last = {t.side for t in s.truncations if t.where == "in-plane field of view"}
    face = crop.kji_to_world(np.array([[0.0, 0.0, cut - 1.0]]))[0] - crop.kji_to_world(np.array([[0.0, 0.0, 0.0]]))[0]
    assert len(last) == 1 and {"right": face[0] > 0, "left": face[0] < 0}.get(next(iter(last)), False), last
    ref = outer_skin(ct)
    keep = np.zeros(ct.shape, bool)
    keep[:, :, : cut - 3] = True
    assert (np.asarray(s.skin)[keep[:, :, :cut]] == np.asarray(ref.skin)[keep]).mean() > 0.999


def test_outside_air_is_judged_against_the_scans_own_air():
    """New-user trial 87: the chest CTA planned prone put entries on its back, cut by the field's
    edge, where only a -250..-470 HU layer lay between the body and the image's face; STS_002's
    real outside air reads -800..-890 HU, so no fixed level tells the two apart. The limit is
    halfway between the body/air threshold and the scan's own air at the seeds (at most -500):
    -700 HU for air at -1000, -625 for air at -850. A seeded -650 HU piece is outside air in the
    second scan and not in the first; the torso with all its outside air at -850 keeps its skin."""
    from imagio.planning import skin as sk

    air = np.zeros((1, 6, 6), bool)
    air[0, :, :2] = True                                    # one piece along the i = 0 face
    seeds = np.array([[0, 2, 0]])
    for ref, want in ((-1000.0, False), (-850.0, True)):
        hu = np.full((1, 6, 6), 40.0)
        hu[0, :, 0] = ref                                   # the seed's column: the scan's own air
        lim = sk.outside_air_limit_hu(Volume(hu, make_ijk_to_ras((1.0, 1.0, 1.0))), seeds, -400.0)
        assert lim == min(-500.0, 0.5 * (-400.0 + ref))
        hu[0, :, :2] = -650.0                               # the piece itself reads -650
        assert bool(sk._in_plane_reach(air, seeds, 0, hu, lim)[0, 2, 1]) == want, (ref, lim)
    ct, body, _ = _torso(noise=5.0)
    dense = ct.with_array(np.where(body, ct.array, ct.array + 150).astype(np.int16))   # outside air at -850
    assert np.asarray(outer_skin(dense).skin).sum() >= 0.95 * np.asarray(outer_skin(ct).skin).sum()


def test_padding_of_a_rotated_volume_is_not_data_and_not_skin():
    ct, body, _ = _torso()
    a = ct.array.copy()
    # fill a wedge corner with a constant as a resampler does (-1024), cutting the body
    k, j, i = np.indices(a.shape)
    wedge = i + 0.5 * k > 52
    a[wedge] = -1024
    padded = ct.with_array(a)
    pad, c = padding_mask(padded)
    assert c == -1024 and pad[wedge].mean() > 0.95
    # outside the wedge only air voxels that happen to equal the fill value, next to it
    assert not pad[body & ~wedge].any() and pad[~wedge].sum() < 1e-3 * (~wedge).sum()
    s = outer_skin(padded)
    assert not s.skin[wedge].any()
    cut_face = body & ~wedge & np.roll(wedge, 1, axis=2)   # body voxels next to the wedge
    assert not (s.skin & cut_face).any()
    assert any(t.where == "in-plane field of view" for t in s.truncations)


def test_clipped_constant_air_is_air_not_padding():
    ct, body, _ = _torso(noise=0.0)                       # air exactly -1000 everywhere
    pad, c = padding_mask(ct)
    assert c is None and not pad.any()
    s = outer_skin(ct)
    assert s.skin.any() and not s.truncations[0].where == "in-plane field of view"


@pytest.mark.parametrize("spacing", [1.0, 1.5])
def test_vessel_calibre_split(spacing):
    """A thin (one voxel) and a thick (6 mm) tube in one 'lung_vessels' label: only the thick one
    keeps the margin role; the thin one becomes lung_vessels_small where its calibre (1.13 mm on the
    1 mm grid) lies more than a voxel below 3 mm. On the 1.5 mm grid its 1.69 mm lies within a voxel
    of 3 mm: still a thin branch (kept out, every branch of that grid would be), and since calibre115
    the split says so (before, without a word)."""
    n = 60
    k, j, i = np.indices((n, n, n)) * spacing
    thin = (j - 21) ** 2 + (i - 21) ** 2 <= (0.5 * spacing) ** 2 + 1e-6   # one voxel wide
    thick = (j - 42) ** 2 + (i - 42) ** 2 <= 3.0 ** 2
    arr = np.zeros((n, n, n), np.uint8)
    arr[thin | thick] = 1
    lab = Volume(arr, make_ijk_to_ras((spacing,) * 3), "v", {1: "lung_vessels"})
    t = Target(np.array([30.0, 30.0, 30.0]), "point", 0)
    out, info = split_vessels_by_calibre(lab, t, {})
    small = {v for v, nm in out.labels.items() if nm == "lung_vessels_small"}
    if spacing == 1.0:
        assert info["lung_vessels"]["small_structure"] == "lung_vessels_small"
        assert np.isin(out.array[thin], list(small)).all() and "undecided" not in info["lung_vessels"]
    else:
        und = info["lung_vessels"]["undecided"]
        assert info["lung_vessels"]["small_structure"] == "lung_vessels_small"
        assert np.isin(out.array[thin], list(small)).all()
        assert und["calibre_mm"] == pytest.approx(1.69, abs=0.01)
        assert "on a 1.5 mm grid: within a voxel of 3 mm, treated as lung_vessels_small (a cost" in und["warning"]
    assert (out.array[thick] == 1).all()    # wall voxels of the thick vessel included
    assert lab.array.max() == 1                          # the input is not modified
    # a role given by the user leaves the structure whole
    same, info2 = split_vessels_by_calibre(lab, t, {"lung_vessels": "forbidden"})
    assert same is lab and not info2


def test_slicing_morphology_matches_scipy():
    """The fast slicing erosions/dilations equal scipy's with the same structure and border."""
    from scipy import ndimage

    from imagio.planning.skin import dilate6, erode6, erode26

    rng = np.random.default_rng(0)
    s6, s26 = ndimage.generate_binary_structure(3, 1), np.ones((3, 3, 3), bool)
    for _ in range(3):
        m = rng.random((7, 8, 9)) > 0.3
        assert (dilate6(m) == ndimage.binary_dilation(m, s6)).all()
        for b in (False, True):
            assert (erode6(m, b) == ndimage.binary_erosion(m, s6, border_value=int(b))).all()
            assert (erode26(m, b) == ndimage.binary_erosion(m, s26, border_value=int(b))).all()
        # the planning maps' lung closing
        assert (erode6(dilate6(m)) == ndimage.binary_closing(m, s6)).all()


@pytest.mark.parametrize("slab", [1, 2, 3, 5, 13, None])
def test_dilation_and_by_slabs_is_the_whole_volumes(slab):
    """`skin._dilate6_and` (issue 20: the skin next to exterior air built slab by slab from the
    packed exterior, so that no dilated copy of the volume is held beside it) equals scipy's
    6-neighbourhood ``binary_dilation`` of the whole volume ANDed with the other mask, read from
    a bool array and from a `PackedMask`: slabs of one slice to more than the volume, voxels on
    the first and last slices and at every slab's faces (a slab dilated without its neighbour
    slices loses the voxels just across them; one that reads beyond the volume gains some)."""
    from scipy import ndimage

    from imagio.planning.skin import PackedMask, _dilate6_and

    rng = np.random.default_rng(11)
    s6 = ndimage.generate_binary_structure(3, 1)
    for shape in ((13, 9, 11), (1, 6, 7), (8, 1, 5)):
        m = rng.random(shape) > 0.85
        m[0, 0, 0] = m[-1, -1, -1] = True
        other = rng.random(shape) > 0.3
        want = ndimage.binary_dilation(m, s6) & other
        assert want.any() and not want.all()
        for src in (m, PackedMask(m)):
            got = _dilate6_and(src, other, slab=slab)
            assert got.dtype == bool and got.shape == shape
            assert np.array_equal(got, want), (shape, slab, type(src))


def test_path_through_the_gap_between_arm_and_trunk_is_rejected():
    """An 'arm' beside the trunk with an air gap: entries on the arm's outer skin reach the
    target only through the gap; the scorer flags them (leaves_body) and none is proposed."""
    from imagio.planning import PlanningProblem, plan
    from imagio.planning.scoring import BIT

    shape, sp = (24, 60, 80), 3.0
    k, j, i = np.indices(shape)
    trunk = ((j - 30) / 20.0) ** 2 + ((i - 40) / 22.0) ** 2 <= 1.0
    arm = ((j - 30) / 6.0) ** 2 + ((i - 70) / 5.0) ** 2 <= 1.0          # 3 voxels of air between
    arm |= (k < 5) & (abs(j - 30) <= 3) & (i >= 60) & (i <= 66)        # joined to the trunk below
    rng = np.random.default_rng(1)
    hu = np.where(trunk | arm, 40.0, -1000.0) + rng.normal(0, 10, shape)
    ct = Volume(hu.astype(np.int16), make_ijk_to_ras((sp, sp, sp)), "ct")
    lab = np.zeros(shape, np.uint8)
    lab[trunk] = 1
    lab[arm] = 2
    tum = ((k - 12) ** 2 + (j - 30) ** 2 + (i - 58) ** 2) <= 4
    lab[tum] = 3
    labels = ct.with_array(lab, labels={1: "body", 2: "muscle", 3: "tumor"})   # arm: passable
    prob = PlanningProblem.build(ct, labels, "tumor")
    result = plan(prob)
    t = result.table
    arm_side = t.entry_ras[:, 0] > ct.kji_to_world(np.array([[0, 30, 66.0]]))[0, 0]
    assert arm_side.any()
    assert np.all(t.violations[arm_side] & BIT["leaves_body"])
    assert np.any(t.violations[arm_side] == BIT["leaves_body"])   # the only reason for some
    for m in result.proposals:
        assert m.entry_ras[0] < ct.kji_to_world(np.array([[0, 30, 64.0]]))[0, 0]


def test_host_organ_of_lesions():
    """A subcapsular lesion's host is its organ (unlabelled fat around the rest does not count);
    a lesion between two organs gets the one that encloses more of it; none when nothing does."""
    from imagio.planning.problem import host_organ, resolve_target

    n = 40
    k, j, i = np.indices((n, n, n))
    lab = np.zeros((n, n, n), np.uint8)
    lab[:, :, :20] = 1                                   # liver: half the volume
    lab[:, :, 26:] = 2                                   # kidney_right beyond a fat gap
    les = (k - 20) ** 2 + (j - 20) ** 2 + (i - 18) ** 2 <= 9   # at the liver's edge, in fat
    lab[les] = 3
    vol = Volume(lab, make_ijk_to_ras((1.0, 1.0, 1.0)), "l", {1: "liver", 2: "kidney_right", 3: "tumor"})
    t = resolve_target(vol, "tumor")
    assert host_organ(vol, t) == "liver"
    lab2 = np.zeros_like(lab)
    lab2[les] = 3
    lab2[:2] = 1
    vol2 = vol.with_array(lab2)
    assert host_organ(vol2, resolve_target(vol2, "tumor")) == ""


def test_thin_lung_vessels_stay_inside_the_pleura(monkeypatch):
    """Thin branches split off a lung vessel tree (lung_vessels_small) are lung contents: a path
    through them does not leave and re-enter the pleura (no extra pleural crossings). The split's
    calibre is 4 mm here: the 3-voxel branch's section calibre (2.37 mm) lies within a voxel
    (0.7 mm) of 3 mm, which since calibre115 keeps it large."""
    from imagio.planning import PlanningProblem
    from imagio.planning import problem as pr
    from imagio.planning.distance_maps import LUNG, precompute

    monkeypatch.setitem(pr.load_defaults()["vessel_calibre"], "hard_min_diameter_mm", 4.0)

    ct, body, lung = _torso(sp=(0.7, 0.7, 0.7))
    k, j, i = np.indices(ct.shape)
    lab = np.zeros(ct.shape, np.uint8)
    lab[body] = 1
    lab[lung] = 2
    # 3 voxels (2.1 mm) wide: below 4 mm by more than a voxel, and too wide for the pleura's one-voxel closing
    vessel = lung & (abs(j - 29) <= 1) & (abs(i - 37) <= 1)
    lab[vessel] = 3
    labels = ct.with_array(lab, labels={1: "body", 2: "lung_left", 3: "lung_vessels"})
    t = ct.kji_to_world(np.array([[10.0, 29.0, 41.0]]))[0]
    prob = PlanningProblem.build(ct, labels, t)
    assert "lung_vessels_small" in prob.labels.labels.values()
    maps = precompute(prob)
    v = {n: val for val, n in prob.labels.labels.items()}["lung_vessels_small"]
    inside = maps.label == v
    assert inside.any() and np.all(maps.flags[inside] & LUNG)


def test_verifier_counts_pleura_and_fissures_on_dense_samples():
    """Independent lung checks: entering the lung once is allowed, leaving and re-entering is
    not; a one-sample label gap at the pleura is noise; a lobe change is a fissure."""
    from types import SimpleNamespace

    from imagio.planning.problem import Constraints
    from imagio.planning.verify import Verifier

    v = Verifier.__new__(Verifier)
    v.p = SimpleNamespace(labels=SimpleNamespace(labels={1: "body", 2: "lung_upper_lobe_left",
                                                         3: "lung_lower_lobe_left", 4: "lung_nodule"}),
                          constraints=Constraints(), target=SimpleNamespace(value=4, in_lung=True))
    once = np.array([1] * 10 + [2] * 10 + [4] * 5)
    assert v._lung_checks(once, 3) == []
    gap = np.array([1] * 10 + [2] * 5 + [1] + [2] * 5 + [4] * 5)          # one-sample gap: noise
    assert v._lung_checks(gap, 3) == []
    twice = np.array([1] * 10 + [2] * 5 + [1] * 8 + [2] * 5 + [4] * 5)   # out and in again
    assert any("pleural" in s for s in v._lung_checks(twice, 3))
    fissure = np.array([1] * 10 + [2] * 6 + [3] * 6 + [4] * 5)
    assert any("fissure" in s for s in v._lung_checks(fissure, 3))


def test_live_evaluation_of_an_entry_inside_the_body_is_infeasible():
    """Dragging the entry onto an internal air wall (not the outer skin): the scorer's metrics
    alone would accept it; the independent re-check makes the path infeasible and says why."""
    from imagio.planning import PlanningProblem
    from imagio.planning.evaluate import Evaluator

    ct, body, lung = _torso()
    lab = np.zeros(ct.shape, np.uint8)
    lab[body] = 1
    labels = ct.with_array(lab, labels={1: "body"})
    t = ct.kji_to_world(np.array([[10.0, 29.5, 20.0]]))[0]           # soft tissue, left of the lung
    prob = PlanningProblem.build(ct, labels, t)
    ev = Evaluator(prob)
    wall = ct.kji_to_world(np.array([[10.0, 29.5, 29.0]]))[0]        # just inside the lung's edge
    away = (wall - t) / np.linalg.norm(wall - t)                   # a normal that fits the path
    m = ev.evaluate(wall, normal_ras=away)
    assert not m.violations                                          # the scorer alone accepts it
    assert not m.feasible and any("outer skin" in x for x in m.check_problems)
    outer = ct.kji_to_world(np.array([[10.0, 29.5, 4.0]]))[0]        # the outer skin on that side
    ok = ev.evaluate(outer)
    assert ok.feasible and not ok.check_problems, ok.details


def test_outer_skin_is_cached_per_case_and_recomputed_when_the_ct_changes():
    """A second call on the same CT and labelled voxels reuses the masks (read-only) and only
    re-measures the truncations from the new target; a changed CT is computed afresh. The
    reference is the uncached computation."""
    from imagio.planning import skin as sk

    ct, body, _ = _torso()
    t1, t2 = ct.kji_to_world(np.array([[3.0, 30, 30]]))[0], ct.kji_to_world(np.array([[16.0, 30, 30]]))[0]
    a = sk.outer_skin(ct, target_ras=t1)
    b = sk.outer_skin(ct, target_ras=t2)
    # (read-only: the cached masks are `PackedMask`, every read of which is a new array; speed15
    # packed the body and skin too, which were read-only bool arrays before)
    assert b.body is a.body and isinstance(b.body, sk.PackedMask)
    view = np.asarray(b.body)
    view[...] = ~view
    assert not np.array_equal(np.asarray(b.body), view)
    sk._CACHE.clear()
    ref = sk.outer_skin(ct, target_ras=t2)          # computed afresh with the second target
    assert ref.body is not a.body and np.array_equal(ref.skin, b.skin)
    assert [(t.side, round(t.distance_mm, 6)) for t in ref.truncations] == \
        [(t.side, round(t.distance_mm, 6)) for t in b.truncations]
    assert {t.side: t.distance_mm for t in a.truncations} != {t.side: t.distance_mm for t in b.truncations}
    # a CT that differs in one exterior-air voxel (now tissue, touching the skin) is a new case
    arr = ct.array.copy()
    k, j, i = 10, 30, int(np.flatnonzero(body[10, 30])[-1]) + 1
    arr[k, j, i] = 40
    c = sk.outer_skin(ct.with_array(arr))
    assert c.body is not a.body and c.body[k, j, i] and not a.body[k, j, i]


def test_painting_inside_the_body_keeps_the_skin_model():
    """`paint_keeps_skin` is True only when painting leaves `outer_skin` unchanged: a ball
    painted into the body (tissue and internal air) is checked against a fresh computation,
    and a ball reaching the exterior air is refused."""
    from imagio.planning import skin as sk

    ct, body, lung = _torso()
    s = sk.outer_skin(ct)
    k, j, i = np.indices(ct.shape)
    ball = ((k - 10) ** 2 + (j - 30) ** 2 + (i - 36) ** 2 <= 25) & s.body   # takes in lung air
    assert (ball & lung).any()
    arr = ct.array.copy()
    arr[ball] = 40
    assert sk.paint_keeps_skin(s, ball, arr[ball])
    sk._CACHE.clear()
    fresh = sk.outer_skin(ct.with_array(arr))
    for name in ("data", "body", "exterior", "skin", "cut"):
        assert np.array_equal(getattr(fresh, name), getattr(s, name)), name
    out = (k - 10) ** 2 + (j - 30) ** 2 + (i - 5) ** 2 <= 25         # left edge: exterior air
    assert not sk.paint_keeps_skin(s, out, np.full(out.sum(), 40))


def test_separable_smoothed_box_matches_the_smoothed_volume():
    """Without padding the data region is the array's box: the separable smoothed field gives
    the values of scipy's 3D Gaussian of the padded mask (map_coordinates) at the normals'
    sample points, and so the same normals, on an oblique anisotropic grid."""
    from scipy import ndimage

    from imagio.planning import skin as sk

    d = make_ijk_to_ras((0.8, 1.3, 2.1))
    rot = np.array([[0.8, -0.6, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0]])
    d[:3, :3] = rot @ d[:3, :3]
    ct = Volume(np.random.default_rng(0).normal(-1000, 15, (12, 17, 23)).astype(np.int16), d, "box")
    data, c = data_mask(ct)
    assert c is None
    full = ndimage.gaussian_filter(np.pad(data.astype(np.float32), sk._PAD), sigma=1.5, mode="constant")
    sep = sk._smoothed(data, box=True)
    kji = np.argwhere(~sk.erode6(data) & data)
    pts = (kji[:, None, :] + sk._PAD + np.concatenate([np.eye(3), -np.eye(3)])[None]).reshape(-1, 3)
    pts = np.concatenate([pts, pts + 0.37])   # off-grid points too
    ref = ndimage.map_coordinates(full, pts.T, order=1, mode="nearest")
    assert np.allclose(sep.values(pts), ref, atol=2e-6)
    vol = sk._Smoothed.__new__(sk._Smoothed)
    vol.field = full
    assert np.allclose(sk._outward_normals(sep, kji, ct), sk._outward_normals(vol, kji, ct), atol=1e-4)


def test_box_shortcut_equals_the_volume_passes():
    """Without padding, `_outer_skin` indexes the data box's faces and its erosions instead of
    computing them; the faces equal scipy's boundary of the data mask (each voxel once), and
    the whole model (masks, truncations) equals the generic passes, on an oblique anisotropic
    torso whose cavity and body are cut by the scan ends, with and without labels."""
    from scipy import ndimage

    from imagio.planning import skin as sk

    for shape in ((5, 6, 7), (9, 5, 12)):
        data = np.zeros(shape, bool)
        data[1:-1, 1:-1, 1:-1] = True
        ref = np.argwhere(data & ~ndimage.binary_erosion(data, border_value=0))
        got = sk._box_faces(shape)
        assert len(got) == len(ref) and len({tuple(r) for r in got}) == len(got)
        assert {tuple(r) for r in got} == {tuple(r) for r in ref}
    ct, body, lung = _torso(shape=(18, 50, 56), sp=(2.5, 1.2, 0.9))
    d = ct.ijk_to_ras.copy()
    rot = np.array([[0.8, 0.0, 0.6], [0.0, 1.0, 0.0], [-0.6, 0.0, 0.8]])   # tilted gantry
    d[:3, :3] = rot @ d[:3, :3]
    ct = Volume(ct.array, d, "oblique torso")
    lab = ct.with_array(np.where(lung, 3, 0).astype(np.uint8), labels={3: "lung"})
    for labels in (None, lab):
        fast = sk._outer_skin(ct, labels, sk.AIR_HU, box_shortcut=True)
        slow = sk._outer_skin(ct, labels, sk.AIR_HU, box_shortcut=False)
        assert fast.padding_value is None and fast.skin.any() and fast.cut.any()
        for m in ("data", "body", "exterior", "skin", "cut"):
            assert (np.asarray(getattr(fast, m)) == np.asarray(getattr(slow, m))).all(), m
        assert [t.to_dict() for t in fast.truncations] == [t.to_dict() for t in slow.truncations]


def test_in_plane_reach_by_slices_equals_scipy_labelling_of_the_volume():
    """Exterior air found slice by slice equals scipy's labelling of the whole volume with the
    in-plane structure, for each array axis, also written in place into the mask; slices with
    one seed, several and none are covered; with the CT's values, a seeded piece is kept when more than half of its voxels
    (scipy's per-label sums) lie below the limit (issue 20: counted on the seeded pieces'
    voxels only, with one comparison for a slice's single piece)."""
    from scipy import ndimage

    from imagio.planning import skin as sk

    rng = np.random.default_rng(3)
    air = rng.random((11, 13, 9)) < 0.55
    seeds = np.argwhere(air)[rng.choice(int(air.sum()), 12, replace=False)]
    hu = np.where(rng.random(air.shape) < 0.5, -1000, -450).astype(np.int16)
    kept = dropped = 0
    for ax in range(3):
        plane = np.zeros((3, 3, 3), bool)
        idx = [slice(None)] * 3
        idx[ax] = 1
        plane[tuple(idx)] = ndimage.generate_binary_structure(2, 1)
        comp, n = ndimage.label(air, structure=plane)
        ids = np.unique(comp[tuple(seeds.T)])
        ids = ids[ids > 0]
        ref = np.isin(comp, ids)
        assert (sk._in_plane_reach(air, seeds, ax) == ref).all(), ax
        gas = ndimage.sum(hu < -700, comp, ids)
        size = ndimage.sum(np.ones(air.shape), comp, ids)
        ok = ids[2 * gas > size]
        kept, dropped = kept + len(ok), dropped + len(ids) - len(ok)
        assert (sk._in_plane_reach(air, seeds, ax, hu, -700.0) == np.isin(comp, ok)).all(), ax
        # in place (issue 20: the skin model's peak): written into a copy of the mask and
        # returned, the same voxels (slices without a seed cleared, seeded ones rewritten)
        work = air.copy()
        got = sk._in_plane_reach(work, seeds, ax, hu, -700.0, in_place=True)
        assert got is work and (got == np.isin(comp, ok)).all(), ax
        assert (sk._in_plane_reach(air.copy(), seeds, ax, in_place=True) == ref).all(), ax
    assert kept > 3 and dropped > 3


def test_packed_mask_reads_as_the_mask():
    from imagio.planning.skin import PackedMask

    m = np.random.default_rng(1).random((7, 5, 11)) < 0.3
    p = PackedMask(m)
    assert p.nbytes <= m.size // 8 + 1 and p.shape == m.shape
    assert (np.asarray(p) == m).all() and p.any() and p.sum() == m.sum()
    for kji in np.argwhere(np.ones(m.shape, bool)):
        assert p[tuple(kji)] == m[tuple(kji)]
    assert (p[2:5, :, 3] == m[2:5, :, 3]).all() and ((np.ones(m.shape, bool) & p) == m).all()
    assert ((p & np.ones(m.shape, bool)) == m).all() and ((~p) == ~m).all()
    a = p[:, :, :]
    a[:] = ~a                                     # a copy: the packed mask is unchanged
    assert (np.asarray(p) == m).all()


@pytest.mark.parametrize("slab", [1, 40, 1 << 22])
def test_mask_extent_is_the_bounding_box_of_the_mask_and_of_its_packed_bits(monkeypatch, slab):
    """`skin.mask_extent` (issue 20: the distance-map crop and the couch search read a cached
    packed body's box without unpacking it) gives `Volume.bounding_box`'s box of the same mask,
    bool or packed, read in slabs of one plane, a few planes or whole; None when it is empty; a
    packed mask's box is computed once."""
    from imagio.planning import skin
    from imagio.planning.skin import PackedMask, mask_extent
    from imagio.volume import Volume

    monkeypatch.setattr(skin, "SLAB", slab)
    rng = np.random.default_rng(7)
    for t in range(40):
        shape = tuple(int(x) for x in rng.integers(1, 12, 3))
        m = np.zeros(shape, bool)
        n = int(rng.integers(1, 6))
        m[tuple(rng.integers(0, s, n) for s in shape)] = True
        m = m[::-1] if t % 2 else m[:, :, ::-1]   # (strided storage too)
        want = Volume(np.zeros(shape, np.int16), np.eye(4), "g").bounding_box(m)
        for got in (mask_extent(m), mask_extent(PackedMask(m))):
            assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]), (shape, got, want)
    assert mask_extent(np.zeros((3, 4, 5), bool)) is None and mask_extent(PackedMask(np.zeros((3, 4, 5), bool))) is None
    p = PackedMask(m)
    assert p.extent() is p.extent()


@pytest.mark.parametrize("slab", [1, 40, 1 << 22])
def test_and_in_box_is_the_boxes_and(monkeypatch, slab):
    """`skin._and_in_box` (issue 20: the cut faces' patient test reads its two packed masks a slab
    of planes at a time) is ``a[box] & b[box]`` for bool and packed masks, any box."""
    from imagio.planning import skin
    from imagio.planning.skin import PackedMask, _and_in_box

    monkeypatch.setattr(skin, "SLAB", slab)
    rng = np.random.default_rng(11)
    a, b = rng.random((9, 5, 7)) < 0.5, rng.random((9, 5, 7)) < 0.6
    for box in ((slice(0, 9), slice(0, 5), slice(0, 7)), (slice(2, 7), slice(1, 4), slice(3, 6)),
                (slice(8, 9), slice(0, 5), slice(6, 7))):
        want = a[box] & b[box]
        for x, y in ((a, b), (PackedMask(a), b), (a, PackedMask(b)), (PackedMask(a), PackedMask(b))):
            got = _and_in_box(x, y, box)
            assert got.dtype == bool and got.shape == want.shape and np.array_equal(got, want), box


def test_packed_mask_boxes_voxel_lists_and_axis_reductions_are_the_masks():
    """Reads of a `PackedMask` that unpack only a part of it (a box of slices: its planes; integer
    index arrays: their bits) and ``any`` along axes give the bool mask's own result, on a shape
    whose planes do not start on a byte (5 x 7 = 35 bits a plane)."""
    from imagio.planning.skin import PackedMask

    rng = np.random.default_rng(4)
    m = rng.random((9, 5, 7)) < 0.4
    p = PackedMask(m)
    for k0 in range(-10, 11):
        for k1 in (None, -1, 0, 1, 4, 9, 12):
            for rest in ((), (slice(1, 4),), (slice(None), slice(2, 7)), (slice(3, 1), slice(0, 2))):
                idx = (slice(k0, k1), *rest)
                got = p[idx]
                assert got.shape == m[idx].shape and (got == m[idx]).all(), idx
    assert (p[2:6] == m[2:6]).all() and (p[slice(None)] == m).all()
    for k0 in range(10):
        for k1 in range(k0, 10):
            assert (p.planes(k0, k1) == m[k0:k1]).all()
    kji = np.stack([rng.integers(0, n, 500) for n in m.shape], axis=1)
    for dt in (np.int16, np.int64, np.uint32):
        idx = tuple(kji.astype(dt).T)
        got = p[idx]
        assert got.dtype == bool and (got == m[idx]).all()
    idx = tuple(kji.reshape(20, 25, 3).transpose(2, 0, 1))   # index arrays of any shape
    assert p[idx].shape == (20, 25) and (p[idx] == m[idx]).all()
    for ax in (0, 1, 2, (0, 2), (1, 2)):
        assert (p.any(axis=ax) == m.any(axis=ax)).all()
        assert (np.any(p, axis=ax) == m.any(axis=ax)).all()
    lo, hi = Volume(m.astype(np.uint8), np.eye(4)).bounding_box(np.asarray(p))
    nz = np.argwhere(m)
    assert (lo == nz.min(0)).all() and (hi == nz.max(0) + 1).all()


def test_the_cached_skin_model_holds_one_bit_per_voxel():
    """`outer_skin`'s cached model keeps every mask, body and skin included, at one bit per
    voxel (the body and skin were bool arrays, 1 byte a voxel: 140 MiB of the first proposals'
    memory on the 1 mm phantom), with the uncached computation's voxels."""
    from imagio.planning import skin as sk

    ct, _, _ = _torso()
    sk._CACHE.clear()
    ref = sk._outer_skin(ct, None, sk.AIR_HU)
    got = sk.outer_skin(ct)
    for name in ("data", "body", "exterior", "skin", "cut"):
        m = getattr(got, name)
        assert isinstance(m, sk.PackedMask) and m.nbytes <= ct.array.size // 8 + 1, name
        assert np.array_equal(np.asarray(m), getattr(ref, name)), name
    assert got.skin.any() and got.body.any()
    from imagio.planning.problem import body_mask

    b = body_mask(ct)   # the public body mask stays an array
    assert isinstance(b, np.ndarray) and b.dtype == bool and np.array_equal(b, ref.body)


def test_body_equals_its_definition_computed_with_scipy():
    """The body equals its definition computed independently (scipy labelling of data &
    ~exterior, the component holding the largest tissue piece, voids filled by scipy's
    binary_fill_holes), with a loose table below the patient and a closed cavity inside it."""
    from scipy import ndimage

    from imagio.planning import skin as sk

    ct, body, _ = _torso(shape=(16, 64, 60))
    a = ct.array.copy()
    a[:, 58:61, 10:50] = 300                       # a table, not touching the patient
    a[7:9, 28:31, 20:23] = -1000                   # closed air cavity in the body
    ct = ct.with_array(a)
    m = sk._outer_skin(ct, None, sk.AIR_HU)
    inner = m.data & ~m.exterior
    tissue = m.data & (a > sk.AIR_HU)
    tl, _ = ndimage.label(tissue)
    big = np.argmax(np.bincount(tl.ravel())[1:]) + 1
    rl, _ = ndimage.label(inner)
    ref = rl == rl[tuple(np.argwhere(tl == big)[0])]
    ref = ndimage.binary_fill_holes(ref) & m.data
    assert (m.body == ref).all() and not m.body[:, 58:61, 10:50].any() and m.body[7:9, 28:31, 20:23].all()


def test_separable_field_at_voxel_centres_equals_np_interp():
    """At whole-number points (the normals' samples) the separable field is read by indexing;
    the values are bit for bit np.interp's, beyond the profiles' ends too (nearest value)."""
    from imagio.planning import skin as sk

    sm = sk._smoothed(np.ones((9, 14, 6), bool), box=True)
    pts = np.random.default_rng(0).integers(-3, 25, (5000, 3)).astype(float)
    ref = np.ones(len(pts))
    for ax, p in enumerate(sm.profiles):
        ref *= np.interp(pts[:, ax], np.arange(len(p)), p)
    assert np.array_equal(sm.values(pts), ref)
    off = pts + 0.25                              # off-grid points: interpolated
    ref = np.ones(len(off))
    for ax, p in enumerate(sm.profiles):
        ref *= np.interp(off[:, ax], np.arange(len(p)), p)
    assert np.array_equal(sm.values(off), ref)


def test_separable_neighbour_values_equal_the_generic_read():
    """The six face-neighbour values of the separable field (the normals' fast read) are bit
    for bit the generic ``values`` of the same points, the profiles' ends included."""
    from imagio.planning import skin as sk

    sm = sk._smoothed(np.ones((9, 14, 6), bool), box=True)
    kji = np.random.default_rng(2).integers(-2, 22, (3000, 3))
    off = np.concatenate([np.eye(3), -np.eye(3)])
    ref = sm.values((kji[:, None, :] + off[None]).reshape(-1, 3).astype(float)).reshape(-1, 6)
    assert np.array_equal(sm.node_values6(kji), ref)


def oblique_torso_with_table(spacing=(2.0, 2.5, 3.5)):
    """(CT, labels, table mask, cavity mask): the synthetic torso on an oblique, flipped,
    2 x 2.5 x 3.5 mm grid (``spacing``, x y z), noisy, with a loose table under the patient and a closed air cavity
    inside it."""
    from conftest import rotation
    from imagio.planning.synthetic import synthetic_torso

    d = rotation((0, 0, 1), 15.0) @ rotation((1, 0, 0), 8.0) @ np.diag([1.0, -1.0, 1.0])
    ct, lab = synthetic_torso(spacing=spacing, direction=d)
    ras = ct.kji_to_world(np.indices(ct.shape).reshape(3, -1).T.astype(float)).reshape(*ct.shape, 3)
    rng = np.random.default_rng(5)
    hu = np.where(lab.array > 0, 40.0, -1000.0) + rng.normal(0, 15, ct.shape)
    table = (ras[..., 1] < -128) & (ras[..., 1] > -140) & (np.abs(ras[..., 0]) < 120) & (np.abs(ras[..., 2]) < 90)
    cavity = np.linalg.norm(ras - np.array([-40.0, 0.0, 5.0]), axis=-1) < 9.0
    assert not (table & (lab.array > 0)).any() and (lab.array[cavity] > 0).all()
    hu[table] = 300.0
    hu[cavity] = -1000.0
    return (ct.with_array(hu.astype(np.int16)), lab.with_array(np.where(cavity, 0, lab.array).astype(np.uint8)),
            table, cavity)


def test_skin_model_equals_its_definition_on_an_oblique_flipped_anisotropic_grid():
    """The body, exterior air and skin of `_outer_skin` (one labelling for the largest tissue
    piece, no hole filling, cc3d slice by slice) equal the definition computed independently
    with scipy on the whole volume: exterior = in-plane scipy labelling from the lateral data
    faces (normals of the Gaussian-smoothed volume, not the separable shortcut), body = scipy
    component of data & ~exterior holding the largest scipy tissue component, holes filled by
    scipy, skin = body next to exterior away from the data edge. Grid: oblique, flipped,
    2 x 2.5 x 3.5 mm; a loose table under the patient and a closed air cavity inside."""
    from scipy import ndimage

    from imagio.planning import skin as sk

    ct, lab, table, cavity = oblique_torso_with_table()
    m = sk._outer_skin(ct, lab, sk.AIR_HU)

    data, _ = data_mask(ct)
    tissue = ((ct.array > sk.AIR_HU) | (lab.array > 0)) & data
    air = data & ~tissue
    faces = np.argwhere(air & (data & ~ndimage.binary_erosion(data)))
    n = sk._outward_normals(sk._smoothed(data, box=False), faces, ct)
    seeds = faces[np.abs(n[:, 2]) < sk.LATERAL_COS]
    ax = int(np.argmax(np.abs(ct.direction[2, ::-1])))
    plane = np.zeros((3, 3, 3), bool)
    idx = [slice(None)] * 3
    idx[ax] = 1
    plane[tuple(idx)] = ndimage.generate_binary_structure(2, 1)
    comp, _ = ndimage.label(air, structure=plane)
    ext = np.isin(comp, np.unique(comp[tuple(seeds.T)]))
    tl, _ = ndimage.label(tissue)
    big = np.argmax(np.bincount(tl.ravel())[1:]) + 1
    rl, _ = ndimage.label(data & ~ext)
    body = ndimage.binary_fill_holes(rl == rl[tuple(np.argwhere(tl == big)[0])]) & data
    skin = body & ndimage.binary_dilation(ext) & ndimage.binary_erosion(data, np.ones((3, 3, 3)))

    assert (np.asarray(m.exterior) == ext).all()
    assert (m.body == body).all() and m.body[cavity].all() and not m.body[table].any()
    assert (m.skin == skin).all() and skin.sum() > 1000


def test_packed_mask_reads_negative_and_out_of_range_indices_as_numpy_does():
    """Review 43 L6: integer reads of a `PackedMask` went through ``np.ravel_multi_index``, which
    refuses -1 with a ValueError where numpy reads the last plane. Negative indices now count from
    the end (one voxel and index arrays alike) and an index outside the mask raises IndexError."""
    from imagio.planning.skin import PackedMask

    rng = np.random.default_rng(7)
    m = rng.random((6, 5, 9)) < 0.5
    p = PackedMask(m)
    for kji in rng.integers(-5, 5, (200, 3)):
        assert p[tuple(int(x) for x in kji)] == m[tuple(kji)]
    idx = tuple(rng.integers(-n, n, 300) for n in m.shape)
    assert (p[idx] == m[idx]).all()
    for bad in ((6, 0, 0), (0, -6, 0), (0, 0, 9)):
        with pytest.raises(IndexError):
            m[bad]
        with pytest.raises(IndexError):
            p[bad]
    with pytest.raises(IndexError):
        p[(np.array([0, 6]), np.array([0, 0]), np.array([0, 0]))]


def _cut_case(seed=0):
    """A trunk on an oblique (15 degrees about S), flipped (i toward left, j toward posterior,
    k toward inferior), anisotropic grid whose in-plane field of view is a reconstruction circle
    (-1024 outside it) clipped by the array's i faces: the trunk runs out of the right i face and
    through both scan ends; a couch (a 2 mm top in contact with the back, a base block reaching the
    circle, joined to the top by 2 mm struts round an air-filled core) lies under it; a channel of
    the padding value runs from the circle's edge into the air between the trunk's left side and
    an arm (air that reads as padding, not the field's edge). The arm lies on the couch top and
    runs out of the left i face. Returns the CT (the only true cuts: the trunk's right, superior
    and inferior, the arm's left)."""
    rng = np.random.default_rng(seed)
    c, s_ = np.cos(np.radians(15.0)), np.sin(np.radians(15.0))
    direction = np.array([[-c, s_, 0.0], [-s_, -c, 0.0], [0.0, 0.0, -1.0]])   # columns: i, j, k
    shape, sp = (12, 200, 120), (1.2, 0.9, 2.5)                              # (k, j, i); (si, sj, sk)
    ctr = (np.array(shape[::-1]) - 1) / 2 * sp
    origin = -direction @ ctr
    m = make_ijk_to_ras(sp, origin, direction)
    k, j, i = np.indices(shape, dtype=float)
    ras = np.einsum("ab,bkji->akji", m[:3, :3], np.stack([i, j, k])) + origin[:, None, None, None]
    r, a = ras[0], ras[1]
    trunk = ((r - 20) / 60.0) ** 2 + (a / 30.0) ** 2 <= 1.0
    plate = (a >= -31.5) & (a <= -29.5) & (r >= -80) & (r <= 70)
    base = (a < -40) & (a >= -120) & (r >= -10) & (r <= 40)
    base |= (a < -31.5) & (a >= -40) & (np.abs(r - 15) >= 23) & (np.abs(r - 15) <= 25)   # 2 mm struts
    arm = (r + 64) ** 2 + (a + 21) ** 2 <= 9.0 ** 2      # on the couch top, cut by the left i face
    hu = np.where(trunk | plate | base | arm, 40.0, -1000.0) + rng.normal(0, 15.0, shape)
    channel = (r >= -49) & (r <= -20) & (a >= -8) & ~trunk
    x, y = i * sp[0] - ctr[0], j * sp[1] - ctr[1]
    hu[(x ** 2 + y ** 2 > 80.0 ** 2) | channel] = -1024
    return Volume(hu.astype(np.int16), m, "cut_case")


def test_truncations_are_where_the_patient_meets_the_field_edge_named_from_its_ras_direction():
    """New-user trial 71 #3: the couch base reaching the field's edge was reported as a posterior
    cut (Lung_Dx), and air that reads as padding beside the body as a 'left' cut on the image's
    right side (STS_010). Only the patient (not the couch) at the edge of the imaged region (array
    face or reconstruction circle) is cut, and an array face's side is its own RAS direction."""
    ct = _cut_case()
    s = outer_skin(ct)
    got = {t.side: t for t in s.truncations}
    assert set(got) == {"right", "left", "superior", "inferior"}, [t.message() for t in s.truncations]
    assert got["right"].where == got["left"].where == "in-plane field of view"
    # the right cut on the i = 0 face, the left one on the last i face (the arm), not at the channel
    assert (ct.world_to_kji(got["right"].points_ras)[:, 2] < 2.5).all()
    assert (ct.world_to_kji(got["left"].points_ras)[:, 2] > ct.shape[2] - 3.5).all()
    assert (ct.world_to_kji(got["superior"].points_ras)[:, 0] < 2.5).all()   # k = 0 is superior


@pytest.mark.data
def test_sts_010_truncations_are_the_other_legs_right_cut_not_padding_air(shared_data):
    """STS_010 (new-user trial 71 #3b): the air between the legs is exactly -1000 HU and reads as
    padding; its border on the other leg was a 489 mm^2 'left' cut at R 8.8-32.2 mm, on the image's
    right side. The other leg, cut by the array's first i face (its RAS direction is right), is the
    right cut, on that face; no left or posterior cut."""
    from imagio import io

    ct = io.read_image(shared_data / "sts-sarcoma" / "STS_010" / "CT_image.nii.gz")
    got = {t.side: t for t in outer_skin(ct).truncations}
    assert "left" not in got and "posterior" not in got and "right" in got, [t.message() for t in got.values()]
    face = ct.kji_to_world(np.array([[0.0, 0.0, 1.0]]))[0, 0]   # R of the data's first i layer
    assert np.allclose(got["right"].points_ras[:, 0], face, atol=0.5 * ct.spacing[0] + 1e-6)


def test_truncation_areas_are_the_cut_sections_on_thick_slices():
    """New-user trials 73/74: Lung_Dx (0.84 x 0.84 x 5 mm) reported its end-of-scan cuts 3.8x too
    large (219,231 mm^2 where a whole slice is 185,761) and its in-plane cuts at half their area:
    one geometric-mean voxel face stood for every side. A block cut by both ends of the scan and
    by both i faces, on a flipped 0.8 x 0.8 x 5 mm grid: each cut's area is, within 15 %, the
    section the block shows on that face, counted independently from the body voxels there."""
    from imagio.volume import Volume, make_ijk_to_ras

    sp = (0.8, 0.8, 5.0)
    shape_kji = (48, 140, 150)   # enough slices that the corners (claimed by the ends) are a small share
    d = np.diag([-1.0, 1.0, 1.0])
    ijk_to_ras = make_ijk_to_ras(sp, (60.0, -56.0, -30.0), d)
    a = np.full(shape_kji, -1000.0)
    a[:, 30:110, :] = 40.0                     # a block through both i faces and both k ends
    a = (a + 10 * np.random.default_rng(0).standard_normal(shape_kji)).astype(np.int16)   # CT noise: no fill value
    ct = Volume(a, ijk_to_ras)
    got = {t.side: t.area_mm2 for t in outer_skin(ct).truncations}
    body = a > -500
    end = body[0].sum() * sp[0] * sp[1]        # the section on the first/last slice
    side = body[:, :, 0].sum() * sp[1] * sp[2]  # the section on the first/last i face
    assert {"superior", "inferior", "left", "right"} <= set(got), got
    for name, want in (("superior", end), ("inferior", end), ("left", side), ("right", side)):
        assert abs(got[name] / want - 1) <= 0.15, (name, got[name], want)


def test_subsampled_truncation_areas_do_not_depend_on_the_array_storage(monkeypatch):
    """Trial 82 L6 follow-up: the cut voxels were subsampled every n-th in memory order, which
    aliased with the array's rows (lung2's left and right cuts came out 28,790 and 37,266 mm^2, or
    36,714 and 29,040 with the array stored flipped along j; all voxels give 31,053 and 34,896).
    With the subsample on (a small sample cap), the block of the thick-slice test stored four
    ways (as is, flipped along i, flipped along j and k, i and j swapped) gives the same samples
    and areas, each within 15 % of the section counted from the body voxels on that face."""
    import dataclasses

    from imagio.planning import skin
    from imagio.volume import make_ijk_to_ras

    monkeypatch.setattr(skin, "CUT_SAMPLES", 4000)   # about 8x fewer samples than cut voxels
    sp = (0.8, 0.8, 5.0)
    shape_kji = (48, 140, 150)
    a = np.full(shape_kji, -1000.0)
    a[:, 30:110, :] = 40.0
    a = (a + 10 * np.random.default_rng(1).standard_normal(shape_kji)).astype(np.int16)
    ct = Volume(a, make_ijk_to_ras(sp, (60.0, -56.0, -30.0), np.diag([-1.0, 1.0, 1.0])))
    body = a > -500
    want = {"superior": body[0].sum() * sp[0] * sp[1], "inferior": body[-1].sum() * sp[0] * sp[1],
            "left": body[:, :, 0].sum() * sp[1] * sp[2], "right": body[:, :, -1].sum() * sp[1] * sp[2]}

    def stored(perm, flip):   # the same voxels at the same RAS points, another array order
        arr = a.transpose(perm)[tuple(slice(None, None, -1) if f else slice(None) for f in flip)]
        m = np.zeros((4, 4))
        m[3, 3] = 1.0
        for ax, (src, f) in enumerate(zip(perm, flip)):
            m[src, ax] = -1.0 if f else 1.0
            m[src, 3] = arr.shape[ax] - 1.0 if f else 0.0
        rev = np.eye(4)[[2, 1, 0, 3]]
        return dataclasses.replace(ct, array=np.ascontiguousarray(arr), ijk_to_ras=ct.ijk_to_ras @ rev @ m @ rev)

    results = []
    for perm, flip in (((0, 1, 2), (False,) * 3), ((0, 1, 2), (False, False, True)),
                       ((0, 1, 2), (True, True, False)), ((0, 2, 1), (False,) * 3)):
        v = stored(perm, flip)
        model = outer_skin(v)
        assert model.cuts.step > 4, model.cuts.step        # the subsample is on
        got = {t.side: t for t in model.truncations}
        assert set(got) == set(want), sorted(got)
        for name, w in want.items():
            assert abs(got[name].area_mm2 / w - 1) <= 0.15, (perm, flip, name, got[name].area_mm2, w)
        results.append({n: (t.area_mm2, np.sort(t.points_ras, axis=0)) for n, t in got.items()})
    for r in results[1:]:
        for name in want:
            assert np.isclose(r[name][0], results[0][name][0], rtol=1e-9, atol=0), (name, r[name][0], results[0][name][0])
            assert np.allclose(r[name][1], results[0][name][1], rtol=0, atol=1e-6)


def test_fill_of_a_tilted_crop_inside_the_body_is_padding():
    """Issue 14 (lesion18): a field of view that ends inside the patient (a crop, then tilted)
    puts the resampler's fill (-1024) against cut tissue and lung, not the noisy outside air by
    which padding was told from clipped air: it was taken for measured air (lung2 cropped to
    120 mm and tilted 20 degrees: its mass typed soft tissue at 26 of 40 mL). Its data region
    is convex (a resampler's): padding. The same noisy tissue with the air around a non-convex
    body set to that one value (a body-masked CT: the neck-and-shoulders concavity) is air around
    the patient, not padding; so is a noiseless image's constant air (above)."""
    import SimpleITK as sitk

    rng = np.random.default_rng(1)
    k, j, i = np.indices((30, 48, 48))
    hu = np.where(i < 20, -850.0, 40.0) + rng.normal(0, 20, k.shape)    # lung beside the chest wall
    img = sitk.GetImageFromArray(hu.astype(np.int16))
    img.SetSpacing((1.5, 1.5, 2.5))
    c, s = np.cos(np.radians(20.0)), np.sin(np.radians(20.0))
    d = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    centre = np.array(img.TransformContinuousIndexToPhysicalPoint([23.5, 23.5, 14.5]))
    size = np.array([48, 60, 50])
    origin = centre - d @ ((size - 1) / 2 * np.array([1.5, 1.5, 2.5]))
    tilted = sitk.Resample(img, [int(v) for v in size], sitk.Transform(), sitk.sitkLinear, tuple(origin),
                           (1.5, 1.5, 2.5), tuple(d.ravel()), -1024, sitk.sitkInt16)
    a = sitk.GetArrayFromImage(tilted)
    ct = Volume(a, make_ijk_to_ras((1.5, 1.5, 2.5)))
    pad, val = padding_mask(ct)
    assert val == -1024 and pad.any() and not pad[a != -1024].any()
    # a body (trunk and head on a neck) in air set to -1024: the concavities between are air
    body = ((((j - 32) / 14.0) ** 2 + ((i - 24) / 20.0) ** 2 <= 1) | (((j - 10) / 7.0) ** 2 + ((i - 24) / 7.0) ** 2 <= 1)
            | ((abs(i - 24) <= 3) & (j < 22) & (j > 12)))
    masked = np.where(body, 40.0 + rng.normal(0, 20, k.shape), -1024.0).astype(np.int16)
    pad2, val2 = padding_mask(Volume(masked, make_ijk_to_ras((1.5, 1.5, 2.5))))
    assert val2 is None and not pad2.any()


def _cut_back(spacing=3.0, direction=None, a_min=-60.0, first_hu=-550.0):
    """(ct, labels): the synthetic torso cut by the field of view at its back (A >= ``a_min``),
    its two posterior voxel layers (the outer layer and the first data layer) a noisy -550 HU
    partial volume of the cut body and the image's edge, unlabelled (new-user trials 86 M1 and
    87: -500..-650 HU on lung1's and the chest CTA's cut backs). That layer is in-plane connected
    to the air beside the body, so it passes for outside air and the body before it for skin.
    ``first_hu``: the first data layer's value instead (one voxel of air: -900)."""
    from imagio.planning.synthetic import synthetic_torso

    ct, lab = synthetic_torso(spacing, direction)
    ax = int(np.argmax(np.abs(ct.direction[1, ::-1])))              # array axis (k, j, i) closest to A
    idx = np.zeros((ct.shape[ax], 3))
    idx[:, ax] = np.arange(ct.shape[ax])
    keep = np.flatnonzero(ct.kji_to_world(idx)[:, 1] >= a_min)
    lo, hi = [0, 0, 0], list(ct.shape)
    lo[ax], hi[ax] = int(keep.min()), int(keep.max()) + 1
    ct, lab = ct.crop(lo, hi), lab.crop(lo, hi)
    n = ct.shape[ax]
    back = (0, 1) if ct.kji_to_world(idx[:1])[0, 1] < ct.kji_to_world(idx[n - 1:n])[0, 1] else (n - 1, n - 2)
    a, la = ct.array.astype(np.float32), lab.array.copy()
    rng = np.random.default_rng(1)
    for layer, hu in zip(back, (-550.0, first_hu)):
        sl = [slice(None)] * 3
        sl[ax] = layer
        sl = tuple(sl)
        a[sl] = np.where(la[sl] > 0, hu + rng.normal(0.0, 15.0, a[sl].shape), a[sl])
        la[sl] = 0
    return ct.with_array(a.astype(np.int16)), lab.with_array(la)


@pytest.mark.parametrize("spacing,direction", [(3.0, None), ((2.5, 3.0, 4.0), np.diag([-1.0, -1.0, 1.0]))])
def test_skin_whose_outside_air_is_not_imaged_is_not_seen(spacing, direction):
    """New-user trials 86 M1 and 87: planned prone on supine scans, entries lay 1-3 mm from the
    back the plan itself reported as cut ("no entry there"), with only -500..-650 HU (lung1) or
    one -700..-780 HU voxel then tissue (chest CTA) between them and the image's edge. Along the
    outward direction of the skin before the cut back's partial-volume layer the image ends before
    a voxel of air is crossed: not seen; the lateral skin's air is (as stored, and flipped along
    R and A with anisotropic voxels)."""
    from imagio.planning.skin import outside_air_unseen

    ct, lab = _cut_back(spacing, direction)
    s = outer_skin(ct, lab)
    kji = np.argwhere(np.asarray(s.skin))
    ras = ct.kji_to_world(kji.astype(float))
    back = (ras[:, 1] < ras[:, 1].min() + 0.5 * max(ct.spacing)) & (np.abs(ras[:, 0]) < 90.0)   # before the cut layer
    side = (np.abs(ras[:, 2]) < 40.0) & (ras[:, 0] > ras[:, 0].max() - 0.5 * max(ct.spacing))   # right flank
    assert back.sum() > 100 and side.sum() > 3
    post, right = np.array([0.0, -1.0, 0.0]), np.array([1.0, 0.0, 0.0])
    assert outside_air_unseen(s, ct, ras[back], np.broadcast_to(post, (back.sum(), 3)), 100.0).all()
    assert not outside_air_unseen(s, ct, ras[side], np.broadcast_to(right, (side.sum(), 3)), 100.0).any()
    assert not outside_air_unseen(s, ct, ras[back][:1], post[None], 0.0).any()   # no reach: not judged
    # one voxel of -900 HU between that skin and the image's edge: a partial-volume voxel can read
    # so (the chest CTA's back), so more than the voxel's extent along the ray is needed, or a voxel
    # at or below the scan's own outside air (test_planning_positions: a box with one voxel of
    # -1000 HU air round it keeps its skin)
    ct1, lab1 = _cut_back(spacing, direction, first_hu=-900.0)
    s1 = outer_skin(ct1, lab1)
    k1 = np.argwhere(np.asarray(s1.skin))
    r1 = ct1.kji_to_world(k1.astype(float))
    b1 = (r1[:, 1] < r1[:, 1].min() + 0.5 * max(ct1.spacing)) & (np.abs(r1[:, 0]) < 90.0)
    assert b1.sum() > 100 and outside_air_unseen(s1, ct1, r1[b1], np.broadcast_to(post, (b1.sum(), 3)), 100.0).all()


@pytest.fixture(scope="module")
def cut_back_plans():
    from imagio.planning import PlanningProblem
    from imagio.planning.planner import plan
    from imagio.planning.problem import Constraints, Needle

    ct, lab = _cut_back()
    prone = PlanningProblem.build(ct, lab, "liver_tumor", constraints=Constraints(patient_position="prone"))
    near = PlanningProblem.build(ct, lab, np.array([55.0, -30.0, 0.0]), needle=Needle(length_mm=60.0))
    return ct, (prone, plan(prone)), (near, plan(near))


def _air_seen_outward(ct, entry, direction, limit_hu=-700.0, step=0.5):
    """Independent of the skin model: walking from ``entry`` along ``direction`` (RAS), the mm at
    which the CT (nearest voxel) first reads below ``limit_hu``, None when the array ends first."""
    for s in np.arange(step, 200.0, step):
        kji = np.rint(ct.world_to_kji((entry + s * direction)[None])[0]).astype(int)
        if np.any(kji < 0) or np.any(kji >= np.array(ct.shape)):
            return None
        if ct.array[tuple(kji)] < limit_hu:
            return s
    return None


def test_no_entry_on_a_cut_back_planned_prone_and_no_position_leads_there(cut_back_plans):
    """Trial 86 M1 on the torso cut at its back: planned prone, the best paths (shortest, through
    the liver) entered the cut back 2 voxels from the face (A -54 mm), -550 HU to the image's
    edge. Now every proposal's needle, continued outward past its entry, meets air (< -700 HU,
    the CT itself) inside the image, and the cut back's entries are excluded as unseen_skin.
    With a 60 mm needle only the cut back is within reach: supine is refused, and no other
    position is suggested (the trial 85 H1 path: supine refused, prone suggested onto the cut),
    the refusal saying the body is cut by the field of view there."""
    from imagio.planning.planner import format_report

    ct, (prob, res), (near, refused) = cut_back_plans
    assert res.feasible
    for m in res.proposals:
        e, t = np.asarray(m.entry_ras, float), np.asarray(m.target_ras, float)
        assert _air_seen_outward(ct, e, (e - t) / np.linalg.norm(e - t)) is not None, m.entry_ras
    assert res.table.exclusion_counts()["unseen_skin"]["only_this"] > 0
    assert not refused.feasible
    assert not any(v["feasible_candidates"] for v in refused.positions.values()), refused.positions
    assert not any("--position" in w for w in refused.warnings)
    assert "cut by the field of view" in format_report(refused.report)


def test_plan_in_a_position_other_than_the_scans_is_warned(cut_back_plans):
    """Trial 86 M1: nothing said that a prone plan on a supine scan uses the supine anatomy. The
    plan says it, naming how the scan's position is known (DICOM PatientPosition), or that it is
    not known (no such header, no couch in the image)."""
    from imagio.planning.planner import scan_position_warnings

    ct, (prob, res), (near, _) = cut_back_plans
    said = [w for w in res.warnings if w.startswith("patient position: planned prone")]
    assert len(said) == 1 and "position is not known" in said[0] and "confirm" in said[0], said
    meta = dict(prob.ct.meta)
    try:
        prob.ct.meta["PatientPosition"] = "HFS"
        w = scan_position_warnings(prob)
        assert len(w) == 1 and "CT taken supine (DICOM PatientPosition HFS)" in w[0] and "organs move" in w[0]
        prob.ct.meta["PatientPosition"] = "FFP"
        assert scan_position_warnings(prob) == []
    finally:
        prob.ct.meta.clear()
        prob.ct.meta.update(meta)
    assert scan_position_warnings(near) == []   # supine, the default, scan position unknown: no word


@pytest.mark.parametrize("spacing,direction", [(3.0, None), ((2.5, 3.0, 4.0), np.diag([-1.0, -1.0, 1.0]))])
def test_refusal_for_a_cut_body_names_the_side_to_extend(spacing, direction):
    """Trial 89: the refusal said "the body is cut by the field of view" but not where, and the
    torso cut at its back has no `skin.Truncation` (its partial-volume layer passes for air): the
    user did not know which side to extend the scan on. The refused entries' rays leave the image
    at its posterior face, named so in patient terms (as stored, and with the grid flipped along
    R and A, anisotropic voxels), and no other side is named."""
    from imagio.directions import SIDE_NAMES
    from imagio.planning import PlanningProblem
    from imagio.planning.planner import format_report, plan
    from imagio.planning.problem import Needle

    ct, lab = _cut_back(spacing, direction)
    near = PlanningProblem.build(ct, lab, np.array([55.0, -30.0, 0.0]), needle=Needle(length_mm=60.0))
    assert not {t.side for t in near.skin.truncations} & {"posterior"}   # no truncation says it
    refused = plan(near)
    assert not refused.feasible
    rep = refused.report
    assert list(rep["excluded_by"]["unseen_skin"]["sides"]) == ["posterior"], rep["excluded_by"]["unseen_skin"]
    text = format_report(rep)
    assert "cut by the field of view at the image's posterior side" in text
    assert "extend the scan on the posterior side" in text
    assert not any(f"{s} side" in text for s in SIDE_NAMES if s != "posterior"), text


def test_face_layer_voxels_equal_argwhere():
    """`skin._face_layer_voxels` (the cut faces of a box-shaped data region listed from the array's
    outer layers only, issue 20) gives np.argwhere's indices in its order for masks whose voxels
    lie within the layers of the faces (random, and every such voxel), on several shapes, thin
    ones included (there it is np.argwhere itself)."""
    from imagio.planning import skin as sk

    rng = np.random.default_rng(7)
    for shape in ((5, 6, 7), (9, 5, 12), (12, 17, 8), (4, 9, 9), (30, 7, 6)):
        near = np.zeros(shape, bool)
        near[...] = True
        near[2:-2, 2:-2, 2:-2] = False
        for m in (near & (rng.random(shape) < 0.3), near, np.zeros(shape, bool)):
            ref = np.argwhere(m)
            got = sk._face_layer_voxels(m, 2)
            assert got.shape == ref.shape and np.array_equal(got, ref)
