"""A thin object nearer the needle than an arm does not hide the arm (plan22's open point).

`findings.outside_clearance` reports only tissue in an object thick enough to be a body part
(`findings._thick`: a drape, an electrode or the couch's shell is not). It tested only each
path's 32 nearest candidate voxels (nearest to the axis, then first along it), so an arm behind
more than 32 candidates of a thin object went unreported.

Scene: the synthetic torso with air beside it; a lateral needle to the liver tumour; a drape-like
plate (3 mm thick, 40 mm wide, tissue HU) lying along the needle's axis from 12 to 40 mm past the
skin (the axis inside it: each of its voxels near the axis is at distance 0, and dozens of probe
hits come first along the axis), and an arm (radius 35 mm) that the axis enters 45 mm past the
skin. Grids: axial, and oblique + flipped + anisotropic. The arm must be reported as without the
plate; the plate alone is not reported.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import rotation
from imagio.planning import PlanningProblem
from imagio.planning.problem import Constraints
from imagio.planning.synthetic import BODY_AXES, TUMOR, synthetic_torso

ARM_GAP = 3.0
GRIDS = {"axial": ((3.0, 3.0, 3.0), np.eye(3)),
         "oblique_flipped_aniso": ((3.0, 2.5, 3.5), rotation((1, 2, 3), 15.0) @ np.diag([1.0, -1.0, 1.0]))}


def _entry():
    y = TUMOR[0][1]
    x = BODY_AXES[0] * np.sqrt(1.0 - (y / BODY_AXES[1]) ** 2)
    return np.array([x - 0.5, y, TUMOR[0][2]])


def _problem(grid: str, arm: bool, plate: bool):
    sp, d = GRIDS[grid]
    ct, lab = synthetic_torso(sp, direction=d, extent=(480.0, 260.0, 200.0))
    e = _entry()
    xyz = lab.kji_to_world(np.argwhere(np.ones(lab.shape, bool)).astype(float))
    x, y, z = (xyz[:, n].reshape(lab.shape) for n in range(3))
    free = lab.array == 0
    c = ct.array.copy()
    rest = 150.0 - float(np.linalg.norm(e - np.asarray(TUMOR[0], float)))   # the needle outside the skin
    if arm:   # its surface ARM_GAP mm anterior of the hub's middle
        c[((x - e[0] - rest - 7.5) ** 2 + (y - e[1] - ARM_GAP - 35.0) ** 2 <= 35.0 ** 2) & (np.abs(z) <= 95.0) & free] = 40
    if plate:
        c[(x >= e[0] + 12.0) & (x <= e[0] + rest - 8.0) & (np.abs(y - e[1]) <= 1.5) & (np.abs(z - e[2]) <= 20.0)
          & free] = 40
    free_rules = Constraints(disabled_rules=("table_side",))   # the locator may take the arm for a couch
    return PlanningProblem.build(ct.with_array(c), lab, "liver_tumor", constraints=free_rules)


@pytest.mark.parametrize("grid", list(GRIDS))
def test_arm_behind_a_thin_plate_is_still_reported(grid):
    from imagio.planning.findings import outside_clearance

    e, t = _entry(), np.asarray(TUMOR[0], float)
    length = [float(np.linalg.norm(e - t))]
    problems = {k: _problem(grid, *k) for k in ((True, True), (True, False), (False, True))}
    for refine in (False, True):   # the ranking's pass, and the reported paths' finer one
        both, arm, plate = (outside_clearance(problems[k], e[None], t[None], length, refine=refine) for k in problems)
        assert np.isfinite(arm[0][0]) and arm[2][0], arm                          # the arm alone: found, at the hub
        assert plate[0][0] == np.inf, plate                                      # the plate is not a body part
        for a, b in zip(both, arm):                                              # behind the plate: the same
            assert np.array_equal(a, b, equal_nan=True), (refine, both, arm)
