"""The per-case cache of the planning maps: planning the same target again reuses the maps and
gives exactly what a fresh computation gives, also from new copies of the same CT and labels (as
the Slicer module and IMAGIO Web read them for every plan); any change of what the maps read
recomputes, also a CT value changed in place."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import rotation
from imagio.errors import InputError
from imagio.planning import PlanningProblem, plan
from imagio.planning import distance_maps as dm
from imagio.planning import problem as pr
from imagio.planning.synthetic import synthetic_torso


def _copies(ct, lab):
    """New arrays with the same values, as the Slicer module and IMAGIO Web read the CT and the
    labels from their nodes for every plan."""
    return ct.with_array(ct.array.copy()), lab.with_array(lab.array.copy())


def test_replanning_the_same_target_reuses_the_maps_and_equals_a_fresh_plan():
    ct, lab = synthetic_torso(spacing=3.0, direction=rotation((0, 0, 1), 20.0) @ rotation((1, 0, 0), 10.0))
    pr.forget_cached_label_checks()
    prob = PlanningProblem.build(ct, lab, "liver_tumor")
    checks = next(iter(pr._LABEL_CHECKS.values()))       # the label map's orientation and registration checks
    dm._CACHE.clear()
    first = plan(prob, k=3)
    # new copies of the same CT and labels: the same case (keyed by contents, `caching.content_token`)
    heavy = PlanningProblem.build(*_copies(ct, lab), "liver_tumor", weights={"length": 5.0})
    assert heavy.ct.array is not ct.array and heavy.skin.body.bits is prob.skin.body.bits   # skin model reused
    assert next(iter(pr._LABEL_CHECKS.values())) is checks and set(checks) == {"orientation", "registration"}
    assert heavy.warnings == prob.warnings                # the label checks' warnings, from the cache
    again = plan(heavy, k=3)
    assert again.maps is first.maps                       # reused: only the scoring ran
    dm._CACHE.clear()
    fresh = plan(PlanningProblem.build(ct, lab, "liver_tumor", weights={"length": 5.0}), k=3)
    assert fresh.maps is not first.maps
    for name in ("hard", "avoid", "code", "body_smooth"):
        assert np.array_equal(getattr(fresh.maps, name), getattr(again.maps, name)), name
    assert again.ranked == fresh.ranked
    assert np.array_equal(again.table.score, fresh.table.score)
    assert not np.array_equal(again.table.score, first.table.score)   # the weights did change it

    # a changed margin, a changed label voxel in the crop, a changed CT value: recomputed
    margin = PlanningProblem.build(ct, lab, "liver_tumor", roles={"aorta": ("margin", 9.0)})
    assert plan(margin, k=1).maps is not fresh.maps
    m = dm._CACHE[next(iter(dm._CACHE))]
    arr = lab.array.copy()
    k, j, i = np.argwhere(arr == 4)[0]                    # an aorta voxel near the target
    arr[k, j, i] = 1
    p2 = plan(PlanningProblem.build(ct, lab.with_array(arr), "liver_tumor", roles={"aorta": ("margin", 9.0)}), k=1)
    assert p2.maps is not m
    hu = ct.array.copy()
    hu[k, j, i] += 1
    ct3 = ct.with_array(hu)
    p3 = plan(PlanningProblem.build(ct3, lab.with_array(arr), "liver_tumor", roles={"aorta": ("margin", 9.0)}), k=1)
    assert p3.maps is not p2.maps
    # the same CT object edited in place (a value in the crop): a new case, never the stale maps
    hu[k, j, i] -= 1
    before = next(iter(pr._LABEL_CHECKS.values()))
    p4 = plan(PlanningProblem.build(ct3, lab.with_array(arr), "liver_tumor", roles={"aorta": ("margin", 9.0)}), k=1)
    assert p4.maps is not p3.maps
    assert next(iter(pr._LABEL_CHECKS.values())) is not before   # the label checks run again too


def test_a_refused_label_map_is_refused_again_from_the_cache_and_a_fixed_one_is_judged_afresh():
    """A label map displaced from its CT (rolled 4 voxels along one axis) is refused with the same
    line on a second target (the cached InputError); the same label array object moved back in
    place is a new case and plans."""
    ct, lab = synthetic_torso(spacing=3.0, direction=_oblique())
    pr.forget_cached_label_checks()
    arr = np.roll(lab.array, 4, axis=1)
    moved = lab.with_array(arr)
    msgs = []
    for tgt in ("liver_tumor", np.array([20.0, -10.0, -30.0])):
        with pytest.raises(InputError, match="displaced") as e:
            PlanningProblem.build(ct, moved, tgt)
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1] and isinstance(next(iter(pr._LABEL_CHECKS.values()))["registration"], InputError)
    arr[...] = lab.array                                  # fixed in place, the same object
    assert PlanningProblem.build(ct, moved, "liver_tumor").target.name == "liver_tumor"


def _oblique():
    return rotation((0, 0, 1), 20.0) @ rotation((1, 0, 0), 10.0) @ np.diag([-1.0, 1.0, 1.0])


def test_a_label_change_just_outside_the_crop_recomputes_the_maps():
    """The maps read the labels of the crop and of its halo (cap + largest margin): one bone voxel
    added two voxels beyond the crop's face is a new key and lowers ``hard`` at the face (the
    old key, a digest of the crop alone, reused the stale maps)."""
    from imagio.planning.problem import Needle

    ct, lab = synthetic_torso(spacing=(2.0, 2.5, 3.0), direction=_oblique())
    needle = Needle(length_mm=70.0)
    prob = PlanningProblem.build(ct, lab, "liver_tumor", needle=needle)
    dm._CACHE.clear()
    m1 = dm.precompute(prob)
    lo, hi = dm._crop(prob)
    ax = next(a for a in range(3) if hi[a] + 2 < lab.shape[a])
    arr = lab.array.copy()
    sl = [slice(int(a), int(b)) for a, b in zip(lo, hi)]
    sl[ax] = slice(int(hi[ax]) + 1, int(hi[ax]) + 2)
    far = np.argwhere((arr[tuple(sl)] == 1) & (m1.hard.take([m1.hard.shape[ax] - 1], axis=ax) >= m1.cap_mm))
    assert len(far), "a body voxel beyond the face, with no obstacle near the face"
    v = far[len(far) // 2] + [int(s.start) for s in sl]
    arr[tuple(v)] = 5                                     # vertebrae_L1 (forbidden)
    m2 = dm.precompute(PlanningProblem.build(ct, lab.with_array(arr), "liver_tumor", needle=needle))
    assert m2 is not m1
    assert np.array_equal(m2.lo, m1.lo) and m2.hard.shape == m1.hard.shape
    assert np.count_nonzero(m2.hard < m1.hard) > 0


def test_a_second_target_on_the_same_case_plans_as_a_fresh_run():
    """A second target after a first (skin model and couch search cached; the distance maps of
    the part of the new crop that the first target's maps hold exactly copied, the rest
    computed) plans exactly as a fresh process would: maps bit for bit, ranking, scores,
    proposals and warnings; and the first target again equals the first plan."""
    from imagio.planning import skin as sk

    ct, lab = synthetic_torso(spacing=3.0, direction=_oblique())
    second = np.array([20.0, -10.0, -30.0])               # liver, away from the tumour
    dm._CACHE.clear()
    first = plan(PlanningProblem.build(ct, lab, "liver_tumor"), k=3)
    # a second target makes the first's tumour "another lesion" (forbidden: other obstacles, no
    # reuse, `_dist_key`); crossing it allowed, the obstacles are the first target's
    roles = {"liver_tumor": "passable"}
    again2 = plan(PlanningProblem.build(*_copies(ct, lab), second, roles=roles), k=3)   # as Slicer reads them
    assert again2.maps is not first.maps
    assert again2.problem.skin.body.bits is first.problem.skin.body.bits   # the case's skin model reused
    assert again2.maps.reused_voxels > 0.3 * again2.maps.hard.size    # the first target's distances
    dm.forget_cached_maps()
    sk.forget_cached_skin()
    fresh = plan(PlanningProblem.build(ct, lab, second, roles=roles), k=3)
    for name in ("hard", "avoid", "code", "body_smooth"):
        assert np.array_equal(getattr(fresh.maps, name), getattr(again2.maps, name)), name
    assert again2.ranked == fresh.ranked
    assert np.array_equal(again2.table.score, fresh.table.score)
    assert [list(m.entry_ras) for m in again2.proposals] == [list(m.entry_ras) for m in fresh.proposals]
    assert again2.warnings == fresh.warnings
    back = plan(PlanningProblem.build(*_copies(ct, lab), "liver_tumor"), k=3)
    assert np.array_equal(back.maps.hard, first.maps.hard) and back.ranked == first.ranked
    assert back.warnings == first.warnings


def test_deepest_point_listed_in_the_bounding_box_equals_the_whole_array_definition():
    """`problem.deepest_point` lists the voxels within the mask's bounding box (issue 20: every
    target's build resolves its lesion on the whole label array): the centroid of a ball, and the
    deepest voxel of a C shape whose centroid lies outside it, equal the whole-array definition
    (argwhere over every voxel, edt of the box) on an oblique, flipped, anisotropic grid, with
    the mask touching a face of the array; an empty mask is one clear InputError."""
    import edt

    from imagio.planning.problem import deepest_point
    from imagio.volume import Volume

    aff = np.eye(4)
    aff[:3, :3] = _oblique() @ np.diag([0.8, 1.3, 2.5])
    aff[:3, 3] = (-40.0, 12.0, 7.0)
    vol = Volume(np.zeros((30, 41, 52), np.int16), aff, "CT")
    k, j, i = np.mgrid[:30, :41, :52]
    ball = (((k - 12) * 2.5) ** 2 + ((j - 20) * 1.3) ** 2 + ((i - 9) * 0.8) ** 2) < 9.0 ** 2
    ring = (np.hypot((j - 25) * 1.3, (i - 30) * 0.8) < 14.0) & (np.hypot((j - 25) * 1.3, (i - 30) * 0.8) > 7.0) \
        & (k >= 20) & ((i - 30) * 0.8 < 6.0)                                 # a C, cut by the last slice
    inside = []
    for mask in (ball, ring):
        kji = np.argwhere(mask)
        c = kji.mean(axis=0)
        inside.append(bool(mask[tuple(np.rint(c).astype(int))]))
        if inside[-1]:
            want = vol.kji_to_world(c[None])[0]
        else:
            lo, hi = kji.min(0), kji.max(0) + 1
            d = edt.edt(np.pad(mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], 1),
                        anisotropy=tuple(vol.spacing_kji))[1:-1, 1:-1, 1:-1]
            want = vol.kji_to_world((np.array(np.unravel_index(np.argmax(d), d.shape)) + lo)[None].astype(float))[0]
        assert np.array_equal(deepest_point(vol, mask), want)
    assert inside == [True, False] and ring[-1].any()   # (the C's centroid lies outside it)
    with pytest.raises(InputError, match="empty"):
        deepest_point(vol, np.zeros(vol.shape, bool))
