"""New-user trial 32 H4 / closing note 35 "Left" 3: the multi-probe cover chose cryoprobes
through one skin entry, or with shafts closer than a shaft, and only warned afterwards. Cryoprobes
freeze at once, so for a device whose probes are in place together the cover itself keeps every
probe on its own entry and every two shafts at least a shaft diameter plus both placement
uncertainties apart from entry to tip (ablation_criteria.json ``simultaneous_probe_spacing``);
when no such set covers, the plan says INFEASIBLE. Microwave zones may still share a track (one
probe repositioned), and the plan says which rule it followed."""

import json

import numpy as np
import pytest

from imagio import phantom
from imagio.cli import main
from imagio.planning.ablation.multiprobe import Spacing, _solve_cover, segment_distances
from test_ablation_close_shafts import segment_distance as dense_segment_distance   # independent check


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("spacing")
    phantom.save(phantom.generate(spacing=3.0), d)
    return d


def _plan(case, out, *extra):
    rc = main(["plan", str(case / "ct.nii.gz"), "--labels", str(case / "labels.seg.nrrd"), "--target", "liver_tumor_1",
               "--out", str(case / out), "--quiet", "--no-scene", "--no-png", "--multi-probe", *extra])
    assert rc == 0
    return json.loads((case / out / "plan.json").read_text())


@pytest.fixture(scope="module")
def cryo(case):
    return _plan(case, "cryo", "--device", "icerod")


@pytest.fixture(scope="module")
def microwave(case):
    return _plan(case, "mw", "--device", "emprint", "--setting", "100W_5min")


def test_cryoprobes_each_have_their_own_entry_and_keep_their_shafts_apart(cryo):
    mp = cryo["ablation"]["multi_probe"]
    probes = mp["probes"]
    assert len(probes) >= 2, "the case needs several cryoprobes"
    limit = cryo["needle"]["diameter_mm"] + 2 * cryo["needle"]["uncertainty_mm"]
    assert cryo["needle"]["diameter_mm"] == pytest.approx(1.473)   # the IceRod's 17G shaft
    E = np.array([p["entry_ras"] for p in probes], float)
    T = np.array([p["tip_ras"] for p in probes], float)
    closest = np.inf
    for i in range(len(probes)):
        for j in range(i + 1, len(probes)):
            assert np.linalg.norm(E[i] - E[j]) > limit, f"probes {i + 1} and {j + 1} share a skin entry"
            d = dense_segment_distance(E[i], T[i], E[j], T[j])
            assert d >= limit - 0.1, f"shafts {i + 1} and {j + 1} pass {d:.2f} mm apart (< {limit:.2f} mm)"
            closest = min(closest, d)
    assert mp["shared_entries"] == [] and mp["close_shafts"] == []
    pl = mp["placement"]
    assert pl["simultaneous"] is True and pl["min_shaft_spacing_mm"] == pytest.approx(limit, abs=1e-3)
    assert pl["closest_shafts_mm"] == pytest.approx(closest, abs=0.1)
    assert not any("share one skin entry" in w or "shafts of probes" in w for w in cryo["warnings"])
    assert all(p["feasible"] for p in probes)


def test_microwave_zones_may_still_share_a_track_and_the_plan_says_so(microwave):
    mp = microwave["ablation"]["multi_probe"]
    pl = mp["placement"]
    assert pl["simultaneous"] is False and pl["min_shaft_spacing_mm"] is None
    assert "one after the other" in pl["statement"] and "shared entries allowed" in pl["statement"]
    E = np.array([p["entry_ras"] for p in mp["probes"]], float)
    shared = any(np.linalg.norm(E[i] - E[j]) < 0.5 for i in range(len(E)) for j in range(i + 1, len(E)))
    assert shared, "the phantom's microwave cover no longer uses one track twice: the test needs another case"
    assert any("one after the other" in w and "share one skin entry" in w for w in microwave["warnings"])


def test_segment_distances_are_exact():
    rng = np.random.default_rng(3)
    for k in range(40):
        p0, p1, q0, q1 = rng.uniform(-20, 20, (4, 3))
        if k % 4 == 0:   # parallel segments too (overlapping or not along their direction)
            q0 = p0 + rng.uniform(-3, 3, 3) + (p1 - p0) * rng.uniform(-1.5, 1.5)
            q1 = q0 + (p1 - p0) * rng.uniform(-2.0, 2.0)
        d = segment_distances(p0, p1, q0, q1)[0]
        assert float(d) == pytest.approx(dense_segment_distance(p0, p1, q0, q1, 2001), abs=0.05)


def test_no_set_of_probes_that_keep_apart_is_infeasible_not_a_wrong_plan():
    # two sample points, two zones, each covering one point; their shafts cross: no spaced cover
    A = np.array([[True, False], [False, True]])
    E = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0]])
    T = np.array([[10.0, 10.0, 0.0], [0.0, 10.0, 0.0]])   # the shafts cross at (5, 5, 0)
    pick, proven = _solve_cover(A, np.ones(2), 10.0, 2.0, spacing=Spacing.of(E, T, 5.0))
    assert len(pick) == 0 and proven
    # with a third zone from its own entry, far from the first shaft, the spaced cover uses it
    A3 = np.array([[True, False, False], [False, True, True]])
    E3 = np.vstack([E, [[40.0, 0.0, 0.0]]])
    T3 = np.vstack([T, [[30.0, 10.0, 0.0]]])
    pick, proven = _solve_cover(A3, np.ones(3), 10.0, 2.0, spacing=Spacing.of(E3, T3, 5.0))
    assert sorted(pick.tolist()) == [0, 2]
