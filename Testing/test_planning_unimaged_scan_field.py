"""The needle outside the skin and its hub outside the scanned field, where the body is not cut.

Trial 67 (1): on a CT padded outside its reconstruction circle (-32768 / -3024) the best
proposal's hub ran into the padding and past the array with no note, because `unimaged_needle`
reported only where the BODY is cut; an arm lying there would not be seen. Trial 66 (L3): only
the hub's axis was sampled, so an 8 mm hub whose side crossed the image edge by ~3.5 mm, its
axis inside, was not reported.

Scenes: the synthetic torso (semi-axes 140 x 100 mm, wholly inside the image and the circle: no
side cuts the body) on an axial 3 mm grid and on an oblique (12 degrees), flipped, 2.5 x 3.0 x
3.5 mm grid. The test's own reference is analytic: where the needle's axis (or the hub's rim)
crosses the circle or the array face, in RAS or index space.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import rotation
from imagio.planning import PlanningProblem
from imagio.planning.synthetic import synthetic_torso

GRIDS = {"axial": ((3.0, 3.0, 3.0), np.eye(3)),
         "oblique_flipped_aniso": ((2.5, 3.0, 3.5), rotation((0, 0, 1), 12.0) @ np.diag([1.0, -1.0, 1.0]))}
CIRCLE_MM = 175.0   # the reconstruction circle's radius (RAS x-y), the torso's 140 mm inside it


def _circle_scene(grid: str, pad: int):
    """(problem): the torso on a 420 x 300 mm field, ``pad`` outside a circle of CIRCLE_MM about
    the z axis (every axial slice), as a scanner writes outside its reconstruction circle."""
    sp, d = GRIDS[grid]
    ct, lab = synthetic_torso(sp, direction=d, extent=(420.0, 300.0, 200.0))
    xyz = ct.kji_to_world(np.argwhere(np.ones(ct.shape, bool)).astype(float))
    a = ct.array.astype(np.int32)
    a[(np.hypot(xyz[:, 0], xyz[:, 1]) > CIRCLE_MM).reshape(ct.shape)] = pad
    return PlanningProblem.build(ct.with_array(a.astype(np.int16)), lab, "liver_tumor")


def _lateral(rest_mm: float, z: float = 0.0, needle_mm: float = 150.0):
    """(entry, target, path length): entry on the right flank (x 139.5, y 0), the needle part
    outside the skin running straight right (+x), ``rest_mm`` of it outside the skin."""
    e = np.array([139.5, 0.0, z])
    t = e - np.array([needle_mm - rest_mm, 0.0, 0.0])
    return e, t, needle_mm - rest_mm


@pytest.mark.parametrize("pad", [-32768, -3024])
@pytest.mark.parametrize("grid", list(GRIDS))
def test_hub_in_the_padding_outside_the_scan_circle_is_not_imaged(grid, pad):
    """The body is not cut anywhere; a right lateral needle whose hub runs past the circle
    (axis from x 139.5 + rest to + 15 mm) is reported with its length beyond the circle (own:
    hub end - the circle; the padding is read per voxel: within a voxel diagonal), side right,
    hub only, body not cut; the shaft itself crossing the circle is reported from there; a hub
    ending 12 mm inside the circle is not. The live re-score and plan.json words agree."""
    from imagio.planning.evaluate import Evaluator
    from imagio.planning.findings import unimaged_needle

    p = _circle_scene(grid, pad)
    assert p.skin.padding_value is not None and not p.skin.truncations   # padding read, nothing cut
    tol = float(np.linalg.norm(p.ct.spacing))
    hub = p.needle.hub_length_mm
    cases = [(30.0, True), (50.0, False), (8.5, None)]   # rest mm: hub only / shaft too / inside
    for rest, hub_only in cases:
        e, t, length = _lateral(rest)
        gone, side, at, h, cut = unimaged_needle(p, e[None], t[None], [length])
        end = 139.5 + rest + hub                        # the hub's end, x mm
        own = end - CIRCLE_MM                           # mm of the needle past the circle
        if hub_only is None:
            assert own < -tol and gone[0] == 0.0 and side[0] is None, (gone, side)
            continue
        assert abs(gone[0] - own) <= tol + 0.5, (rest, gone, own)
        assert side[0] == "right" and h[0] == hub_only and not cut[0], (side, h, cut)
        assert abs(at[0] - (CIRCLE_MM - 139.5)) <= tol + 0.5, at
        # said, not ranked last (the body is not cut there): plan.json's row, the note, no flag
        from types import SimpleNamespace

        from imagio.planning.findings import path_findings
        from imagio.planning.planner import _unimaged_row

        f = path_findings(p, SimpleNamespace(entry_ras=e[None], target_ras=t[None], length_mm=np.array([length])),
                          np.arange(1), set(), True)
        assert f.unimaged_note(0) and "unimaged_needle" not in f.flagged(0)
        row = _unimaged_row(f, 0)
        assert row["body_cut"] is False and row["side"] == "right" and abs(row["mm"] - gone[0]) <= 0.06
        m = Evaluator(p).evaluate(e, t)
        lines = [x for x in m.details if "outside the scanned field" in x]
        assert lines and f"{gone[0]:.0f} mm" in lines[0] and "right side" in lines[0], m.details


@pytest.mark.parametrize("grid", list(GRIDS))
def test_hub_rim_across_the_array_face_is_not_imaged(grid):
    """No padding, the body not cut; a needle running parallel to the array's last-i face (the
    direction of the j axis), its axis ``d`` mm inside that face's outer edge: at 2 mm the 8 mm
    hub's rim (radius 4) crosses it from the hub's start, so the whole hub is reported (15 mm,
    hub only, body not cut); at 6 mm nothing is. Main sampled the axis only, and only where the
    body is cut: neither was reported."""
    from imagio.planning.findings import unimaged_needle

    sp, d = GRIDS[grid]
    ct, lab = synthetic_torso(sp, direction=d, extent=(340.0, 260.0, 200.0))
    p = PlanningProblem.build(ct, lab, "liver_tumor")
    assert not p.skin.truncations
    ni, nj = ct.shape[2], ct.shape[1]
    sp_i = float(ct.spacing[0])
    u = ct.direction[:, 1] * np.sign(1.0)            # RAS direction of +j (unit)
    hub, rest = p.needle.hub_length_mm, 40.0
    for inside_mm, flagged in ((2.0, True), (6.0, False)):
        i = ni - 0.5 - inside_mm / sp_i               # the axis' continuous i index
        e = ct.kji_to_world(np.array([[ct.shape[0] / 2, 0.2 * nj, i]]))[0]
        t = e - (p.needle.length_mm - rest) * u
        gone, side, at, h, cut = unimaged_needle(p, e[None], t[None], [p.needle.length_mm - rest])
        if not flagged:
            assert gone[0] == 0.0, (gone, side)
            continue
        face = ["right", "left", "anterior", "posterior", "superior", "inferior"]
        assert side[0] in face and not cut[0] and h[0], (side, cut, h)
        assert abs(at[0] - rest) <= 1.0 and abs(gone[0] - hub) <= 1.0, (at, gone)
