"""--gantry-tilt is the scanner's gantry tilt range; the tilt a needle needs to lie whole in one
scan plane is its angle to the axial plane in the sagittal projection (new-user trial 90 #2: the
rule limited the craniocaudal angle while the report's "gantry tilt for one scan plane" column
showed 44-70 deg for all five lung2 proposals under the 30 deg default, with no warning).

Independent check: the tilt t of a scan plane tilted about the left-right axis (spanned by R and
(0, cos t, sin t)) that holds the needle is found by scanning t over 0-90 deg in 0.005 deg steps
for the plane whose normal (0, -sin t, cos t) is most nearly perpendicular to the needle.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import rotation

from imagio.planning import PlanningProblem, plan
from imagio.planning.problem import Constraints
from imagio.planning.planner import gantry_tilt_warnings
from imagio.planning.scoring import gantry_tilt_deg
from imagio.planning.synthetic import synthetic_torso

T = np.radians(np.arange(0.0, 90.0 + 1e-9, 0.005))
NORMALS = np.stack([np.zeros_like(T), -np.sin(T), np.cos(T)], 1)


def _tilt_by_planes(u) -> float:
    u = np.asarray(u, float) / np.linalg.norm(u)
    return float(np.degrees(T[np.argmin(np.abs(NORMALS @ np.abs(u)))]))


@pytest.mark.parametrize("u", [(0.0, 1.0, 0.3), (0.9, 0.2, 0.15), (-0.5, -0.6, 0.62), (0.7, -0.05, -0.2),
                               (0.0, 0.0, 1.0), (1.0, 0.0, 0.0)])
def test_gantry_tilt_is_the_tilted_plane_holding_the_needle(u):
    want = _tilt_by_planes(u) if np.any(np.asarray(u)[1:]) else 0.0
    assert gantry_tilt_deg(np.asarray(u))[0] == pytest.approx(want, abs=0.01)
    cc = np.degrees(np.arcsin(abs(u[2]) / np.linalg.norm(u)))
    assert gantry_tilt_deg(np.asarray(u))[0] >= cc - 1e-9   # never less than the craniocaudal angle


@pytest.mark.parametrize("u", [(-0.9, -0.3, 0.25), (-0.3, -0.9, 0.2), (-0.95, -0.05, 0.06), (-0.6, -0.6, -0.3)])
def test_paths_needing_more_tilt_than_the_range_are_warned(torso_plan, u):
    """Paths of known direction to the synthetic liver tumour (on an oblique grid) scored by the
    planner's own evaluator, --gantry-tilt 30: warned exactly when the tilt found by the planes
    exceeds 30 deg and the needle's craniocaudal run exceeds one 3 mm slice, with that tilt."""
    res, lim = torso_plan
    u = np.asarray(u, float) / np.linalg.norm(u)
    tgt = np.asarray(res.problem.target.point_ras, float)
    m = res.evaluator.evaluate(tgt - 70.0 * u, tgt)
    tilt = _tilt_by_planes(u)
    assert m.gantry_tilt_deg == pytest.approx(tilt, abs=0.01)
    lines = gantry_tilt_warnings(res.problem, [m])
    run = 70.0 * abs(u[2])
    if tilt > lim and run > 3.0:
        assert len(lines) == 1 and f"{tilt:.1f} deg" in lines[0] and f"{lim:g} deg --gantry-tilt" in lines[0]
        assert f"{m.craniocaudal_deg:.1f} deg out of the axial plane" in lines[0]
    else:
        assert not lines


def test_no_range_no_warning(torso_plan):
    res, _ = torso_plan
    tgt = np.asarray(res.problem.target.point_ras, float)
    m = res.evaluator.evaluate(tgt - 70.0 * np.array([-0.9, -0.3, 0.25]) / np.linalg.norm([-0.9, -0.3, 0.25]), tgt)
    p = res.problem
    free = dataclasses.replace(p, constraints=dataclasses.replace(p.constraints, max_craniocaudal_deg=None))
    assert gantry_tilt_warnings(free, [m]) == []


@pytest.fixture(scope="module")
def torso_plan():
    lim = 30.0
    ct, lab = synthetic_torso(3.0, direction=rotation((1, 0, 0), 12.0))
    return plan(PlanningProblem.build(ct, lab, "liver_tumor", constraints=Constraints(max_craniocaudal_deg=lim)), k=3), lim
