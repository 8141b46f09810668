"""The per-case cache of the planning maps: planning the same target again reuses the maps and
gives exactly what a fresh computation gives; any change of what the maps read recomputes."""

from __future__ import annotations

import numpy as np

from conftest import rotation
from imagio.planning import PlanningProblem, plan
from imagio.planning import distance_maps as dm
from imagio.planning.synthetic import synthetic_torso


def test_replanning_the_same_target_reuses_the_maps_and_equals_a_fresh_plan():
    ct, lab = synthetic_torso(spacing=3.0, direction=rotation((0, 0, 1), 20.0) @ rotation((1, 0, 0), 10.0))
    prob = PlanningProblem.build(ct, lab, "liver_tumor")
    dm._CACHE.clear()
    first = plan(prob, k=3)
    heavy = PlanningProblem.build(ct, lab, "liver_tumor", weights={"length": 5.0})
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
    p3 = plan(PlanningProblem.build(ct.with_array(hu), lab.with_array(arr), "liver_tumor",
                                    roles={"aorta": ("margin", 9.0)}), k=1)
    assert p3.maps is not p2.maps
