"""The needle part outside the skin and its hub keep their clearance from the couch top.

The table-side rule (`scoring.against_table`) checked only the needle's axis up to the hub
against the couch top, and `findings.outside_clearance` leaves the couch's thin shell out (its
thickness test): a lateral-posterior needle aimed upwards could be planned with its hub in the
couch (plan22's open point). plan23 warned it (`couch_clearance`); plan25 makes a hub inside the
couch (its axis or its rim, radius hub_diameter_mm / 2) a table-side violation in both scorers,
when the couch is found under the patient; the clearance band beyond the rim stays a warning.

Scene: the synthetic torso (semi-axes 140 x 100 mm) lying supine on a couch top 460 mm wide
(2.5 mm carbon-fibre skins over a 15 mm foam core, unlabelled, top at A = -100 mm, the torso's
back resting on it), on an axial grid and an oblique + flipped + anisotropic one. A needle enters
the right flank 20 degrees below the horizontal (66 mm above the couch) and runs 45 degrees
upwards to a point in the liver: its shaft ends 5.7 mm above the couch top (the table-side rule
lets it through) and its hub runs into the couch. The test's own reference: the couch's
top-skin voxel centres within the cylinder's length, their distance from the axis less half the
smallest voxel side (the planner's convention), against the clearance there.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import rotation
from imagio.planning import PlanningProblem, plan
from imagio.planning.problem import Constraints, Needle
from imagio.planning.synthetic import BODY_AXES, synthetic_torso

GRIDS = {"axial": ((3.0, 3.0, 3.0), np.eye(3)),
         "oblique_flipped_aniso": ((2.5, 3.0, 3.5), rotation((1, 2, 3), 12.0) @ np.diag([1.0, -1.0, 1.0]))}
COUCH_TOP_A = -BODY_AXES[1]


def _scene(grid: str):
    """(ct, labels, couch top-skin mask bool [k, j, i]): the torso on its couch."""
    sp, d = GRIDS[grid]
    ct, lab = synthetic_torso(sp, direction=d, extent=(500.0, 280.0, 200.0))
    xyz = lab.kji_to_world(np.argwhere(np.ones(lab.shape, bool)).astype(float))
    x, y = (xyz[:, n].reshape(lab.shape) for n in (0, 1))
    free = lab.array == 0
    wide = np.abs(x) <= 230.0
    top = (y <= COUCH_TOP_A) & (y > COUCH_TOP_A - 2.5) & wide & free
    foam = (y <= COUCH_TOP_A - 2.5) & (y > COUCH_TOP_A - 17.5) & wide & free
    bottom = (y <= COUCH_TOP_A - 17.5) & (y > COUCH_TOP_A - 20.0) & wide & free
    c = ct.array.copy()
    c[foam] = -850
    c[top | bottom] = 300
    return ct.with_array(c), lab, top


def _entry(phi_deg: float) -> np.ndarray:
    """A point 0.5 mm inside the torso's skin at angle ``phi_deg`` (0: right lateral, negative: posterior), z 0."""
    a, b = BODY_AXES
    p = np.radians(phi_deg)
    x, y = a * np.cos(p), b * np.sin(p)
    n = np.array([x / a ** 2, y / b ** 2])
    n /= np.linalg.norm(n)
    return np.array([x - 0.5 * n[0], y - 0.5 * n[1], 0.0])


def _path(up_deg: float, rest_mm: float):
    """(entry, target): from the flank entry at -20 deg, the needle part outside the skin running
    ``up_deg`` below the horizontal (outwards), ``rest_mm`` of a 150 mm needle outside the skin."""
    e = _entry(-20.0)
    u = np.array([np.cos(np.radians(up_deg)), -np.sin(np.radians(up_deg)), 0.0])   # outwards
    return e, e - (150.0 - rest_mm) * u


def _own(problem, couch, entry, target, length):
    """The test's distance (mm) from the needle's cylinder outside the skin (axis entry -> hub's
    end) to the couch top: the couch voxel centres whose projection lies on that length, their
    distance from the axis less half the smallest voxel side, floored at 0, the nearest within
    the clearance there (shaft / hub); 0 when the axis reaches below the couch top; inf when none."""
    ndl = problem.needle
    u = np.asarray(entry, float) - np.asarray(target, float)
    u /= np.linalg.norm(u)
    rest = max(ndl.length_mm - length, 0.0)
    end = rest + ndl.hub_length_mm
    s = np.linspace(0.0, end, 400)
    if np.any(entry[1] + s * u[1] < COUCH_TOP_A):   # the axis itself below the couch top
        return 0.0
    ct = problem.ct
    c = ct.kji_to_world(np.argwhere(couch).astype(float)) - entry
    along = c @ u
    on = (along >= 0.0) & (along <= end)
    d = np.linalg.norm(c - along[:, None] * u, axis=1) - 0.5 * min(ct.spacing)
    lim = np.where(along >= rest, ndl.hub_clearance_mm, ndl.widening_mm)
    near = on & (d < lim)
    return max(float(d[near].min()), 0.0) if near.any() else np.inf


def _normal(e):
    """The torso's outward skin normal (3,) at the flank point ``e`` (z 0)."""
    nrm = e[:2] / np.asarray(BODY_AXES) ** 2
    return np.array([*nrm / np.linalg.norm(nrm), 0.0])


def _against(problem, e, t, length):
    """(numpy, torch on the CPU) `against_table` of one path."""
    from imagio.planning.scoring import against_table

    c = problem.constraints
    a = bool(against_table(problem, e[None], t, _normal(e)[None], np.array([length]), c.table_direction)[0])
    try:
        import torch
    except ImportError:
        return a, a
    from imagio.planning.distance_maps import precompute
    from imagio.planning.scoring_torch import against_table_torch

    T = lambda x: torch.as_tensor(np.atleast_2d(x), dtype=torch.float64)   # noqa: E731
    b = against_table_torch(problem, T(e), T(t), T(_normal(e)), torch.tensor([length], dtype=torch.float64),
                            np.array([length]), c.table_direction, precompute(problem), "cpu")
    return a, bool(b[0])


def _hub_rim_own(problem, couch, entry, target, length, radius):
    """The test's own distance (mm) from the hub's axis to the couch's top-skin voxel centres
    whose projection lies on the hub's length, measured across the axis, less half the smallest
    voxel side; 0 when the axis reaches below the couch top; inf when none on the hub's length.
    A hub whose rim (``radius``) is farther than this from its axis lies in the couch."""
    u = np.asarray(entry, float) - np.asarray(target, float)
    u /= np.linalg.norm(u)
    rest = max(problem.needle.length_mm - length, 0.0)
    end = rest + problem.needle.hub_length_mm
    if entry[1] + end * u[1] < COUCH_TOP_A:
        return 0.0
    ct = problem.ct
    c = ct.kji_to_world(np.argwhere(couch).astype(float)) - entry
    along = c @ u
    on = (along >= rest) & (along <= end)
    d = np.linalg.norm(c - along[:, None] * u, axis=1) - 0.5 * min(ct.spacing)
    return max(float(d[on].min()), 0.0) if on.any() else np.inf


@pytest.mark.parametrize("grid", list(GRIDS))
def test_hub_inside_the_couch_is_infeasible_in_both_scorers(grid):
    """The 45-degree path's shaft ends 5.7 mm above the couch top and its hub's axis runs into
    the couch: main let it through the table-side rule (only warned); now both scorers exclude it.
    A hub 16 mm across whose axis ends 2 mm above the couch top has its rim 3.7 mm inside the
    couch (the test's own distance): excluded too; with its axis 12 mm above it (17 mm across
    the axis, > 8 mm rim) it is not. The live re-score names the table-side rule."""
    from imagio.planning.evaluate import Evaluator
    from imagio.planning.findings import couch_clearance
    from imagio.planning.table import locate_table_cached

    ct, lab, couch = _scene(grid)
    problem = PlanningProblem.build(ct, lab, "liver_tumor")
    c = problem.constraints
    assert locate_table_cached(problem, c.table_direction).located
    e, t = _path(45.0, 85.0)
    length = float(np.linalg.norm(e - t))
    assert _own(problem, couch, e, t, length) == 0.0                       # the hub's axis in the couch
    assert e[1] + 85.0 * np.sqrt(0.5) > COUCH_TOP_A + 5.0                   # the shaft above it
    assert _against(problem, e, t, length) == (True, True)
    mm, at, hub = couch_clearance(problem, e[None], t[None], [length])
    assert mm[0] == 0.0 and hub[0], (mm, at, hub)
    m = Evaluator(problem).evaluate(e, t)
    assert not m.feasible and "table_side" in m.violations, (m.feasible, m.violations)

    wide = PlanningProblem.build(ct, lab, "liver_tumor", needle=Needle(hub_diameter_mm=16.0))
    sin45 = np.sqrt(0.5)
    for gap, inside in ((2.0, True), (12.0, False)):   # the hub axis's end above the couch top, mm
        e2, t2 = _path(45.0, (e[1] - COUCH_TOP_A - gap) / sin45 - wide.needle.hub_length_mm)
        length2 = float(np.linalg.norm(e2 - t2))
        own = _hub_rim_own(wide, couch, e2, t2, length2, 8.0)
        tol = 0.5 * max(ct.spacing)
        assert (own < 8.0 - tol) if inside else (own > 8.0 + tol), own
        assert _against(wide, e2, t2, length2) == (inside, inside), (gap, own)
    assert _against(problem, e2, t2, length2) == (False, False)   # the 8 mm hub 12 mm above it

    # clear: the same entry, the needle outside the skin nearly horizontal; and a lateral path
    for e3, t3 in (_path(10.0, 85.0), (_entry(5.0), _entry(5.0) - np.array([80.0, 0.0, 0.0]))):
        length3 = float(np.linalg.norm(e3 - t3))
        assert _own(problem, couch, e3, t3, length3) == np.inf
        assert couch_clearance(problem, e3[None], t3[None], [length3])[0][0] == np.inf
        assert _against(problem, e3, t3, length3) == (False, False)

    # the table-side rule off (a limb positioned for the entry): neither judged
    off = PlanningProblem.build(ct, lab, "liver_tumor", constraints=Constraints(disabled_rules=("table_side",)))
    assert couch_clearance(off, e[None], t[None], [length])[0][0] == np.inf
    assert Evaluator(off).evaluate(e, t).feasible


@pytest.mark.parametrize("grid", list(GRIDS))
def test_hub_not_judged_when_no_couch_is_found(grid):
    """The same torso without a couch in the image: the table is not located, so the hub is not
    judged (only the shaft's axis, against the patient's deepest skin, as before); the hub of the
    45-degree path, whose axis runs below the deepest skin, does not make it infeasible, and the
    plan says the hub's clearance from the table was not checked."""
    from imagio.planning.planner import table_warnings
    from imagio.planning.table import locate_table_cached

    sp, d = GRIDS[grid]
    ct, lab = synthetic_torso(sp, direction=d, extent=(500.0, 280.0, 200.0))
    problem = PlanningProblem.build(ct, lab, "liver_tumor")
    assert not locate_table_cached(problem, problem.constraints.table_direction).located
    e, t = _path(45.0, 85.0)
    length = float(np.linalg.norm(e - t))
    assert _against(problem, e, t, length) == (False, False)
    w = table_warnings(problem)
    assert len(w) == 1 and "hub" in w[0] and "not checked" in w[0], w
    # one true statement (trial 66 L5): not "not checked" beside "the table is assumed at ..."
    assert "assumed" not in w[0] and "deepest skin" in w[0], w
    from imagio.planning.planner import findings_checked
    from imagio.planning.problem import Needle as N

    assert findings_checked(problem) == {"unimaged": True, "outside_clearance": True,
                                         "couch_clearance": False, "beyond_tip": True}
    p0 = PlanningProblem.build(ct, lab, "liver_tumor", needle=N(beyond_tip_mm=0.0))
    assert findings_checked(p0)["beyond_tip"] is False


@pytest.mark.parametrize("grid", list(GRIDS))
def test_scorers_agree_on_the_couch_scene(grid):
    """Every candidate of the couch scene (200 mm needle: hubs reach the couch) gets the same
    violations from the numpy and the CPU torch scorer, and some are excluded by the hub alone."""
    torch = pytest.importorskip("torch")   # noqa: F841
    from imagio.planning.candidates import skin_candidates
    from imagio.planning.distance_maps import precompute
    from imagio.planning.scoring import BIT, score_paths

    ct, lab, couch = _scene(grid)
    problem = PlanningProblem.build(ct, lab, "liver_tumor", needle=Needle(length_mm=200.0))
    maps = precompute(problem)
    cand = skin_candidates(maps, problem.target.point_ras, problem.needle.length_mm, 6.0)
    a = score_paths(problem, maps, cand.entry_ras, cand.normal_ras, device="numpy")
    b = score_paths(problem, maps, cand.entry_ras, cand.normal_ras, device="cpu", device_samples=50_000)
    np.testing.assert_array_equal(a.violations, b.violations)
    no_hub = PlanningProblem.build(ct, lab, "liver_tumor", needle=Needle(length_mm=200.0, hub_length_mm=0.0))
    c = score_paths(no_hub, maps, cand.entry_ras, cand.normal_ras, device="numpy")
    hub_only = ((a.violations & BIT["table_side"]) > 0) & ((c.violations & BIT["table_side"]) == 0)
    assert hub_only.sum() > 0


@pytest.mark.parametrize("grid", list(GRIDS))
def test_plan_proposes_no_hub_inside_the_couch(grid):
    """With a 200 mm needle, the lowest postero-lateral entries the table-side rule allows (skin
    normal just over 60 degrees from the couch) aimed up at the tumour bring the hub to the couch
    top. main proposed (warned) paths whose hub's axis lay in the couch; now no feasible path's
    hub is within its radius of the couch top (the test's own distance, within a voxel), the
    clearance band beyond it is still warned, ranked after every clear proposal and said in
    plan.json ('couch_clearance', 'findings_ranked_last')."""
    from imagio.planning.findings import couch_clearance, deferred

    ct, lab, couch = _scene(grid)
    cons = Constraints(entry_region=(_entry(-21.0), 6.0))
    problem = PlanningProblem.build(ct, lab, "liver_tumor", needle=Needle(length_mm=200.0), constraints=cons)
    res = plan(problem, k=5)
    t = res.table
    ok = np.flatnonzero(t.violations == 0)
    tol = 0.5 * max(ct.spacing) + 0.5
    r = 0.5 * problem.needle.hub_diameter_mm
    owns = np.array([_hub_rim_own(problem, couch, t.entry_ras[i], t.target_ras[i], t.length_mm[i], r) for i in ok])
    assert (owns >= r - tol).all(), np.sort(owns)[:10]                   # no hub inside the couch
    mm, _, _ = couch_clearance(problem, t.entry_ras[ok], t.target_ras[ok], t.length_mm[ok])
    assert not (mm == 0.0).any(), mm
    if not res.proposals:
        return
    names = res.proposal_finding_names()
    warned = ["couch_clearance" in n for n in names]
    f = res.proposal_findings()
    for w, row in zip(warned, res.ranked):
        assert w == np.isfinite(f.couch_mm[row])
    if any(warned):
        first = warned.index(True)
        assert all(warned[first:]), warned                    # ranked after every clear proposal
        assert deferred(f, len(t.violations))[res.ranked[first:len(res.proposals)]].all()
    lines = [w for w in res.warnings if "couch top" in w]
    assert len(lines) == sum(warned), res.warnings
    assert res.to_dict()["couch_checked"] is True     # a proposal's null means clear here
    # one convention for every finding (plan25): checked true, so a proposal's null is clear
    assert res.to_dict()["checked"] == {"unimaged": True, "outside_clearance": True,
                                        "couch_clearance": True, "beyond_tip": True}
    js = res.to_dict()["proposals"]
    assert [p["couch_clearance"] is not None for p in js] == warned
    assert ["couch_clearance" in p["findings_ranked_last"] for p in js] == warned


@pytest.mark.parametrize("position", ["right_lateral", "prone"])
def test_no_couch_under_the_patient_in_the_planned_position_is_not_judged_and_said(position):
    """Trial 65 H1: a supine scan planned lying on a side (or prone) has no couch under the patient
    in that position; the couch search then took the first object along the table direction beside
    the patient (here the supine couch's far rim) for the couch top, and every proposal read "the
    hub reaches the couch top" at 0 mm although its needle runs far above the couch (the test's own
    distance: none within clearance) while the plan also said the table was not found. Now the
    clearance is not judged there and the plan says so; with the table-side rule off it says so too
    (trial 65 M1: plan.json read as clear while every needle crossed the couch)."""
    from imagio.planning.findings import couch_clearance, couch_judged
    from imagio.planning.planner import table_warnings
    from imagio.planning.table import locate_table_cached

    ct, lab, couch = _scene("axial")
    problem = PlanningProblem.build(ct, lab, "liver_tumor", constraints=Constraints(patient_position=position))
    assert not locate_table_cached(problem, problem.constraints.table_direction).located
    assert not couch_judged(problem)    # plan.json couch_checked false: a null is "not checked" (trial 66)
    assert couch_judged(PlanningProblem.build(ct, lab, "liver_tumor"))
    for e, t in (_path(10.0, 85.0), (_entry(5.0), _entry(5.0) - np.array([80.0, 0.0, 0.0]))):
        length = float(np.linalg.norm(e - t))
        assert _own(problem, couch, e, t, length) == np.inf          # far from the couch
        assert couch_clearance(problem, e[None], t[None], [length])[0][0] == np.inf
    assert any("not checked" in w for w in table_warnings(problem)), table_warnings(problem)
    # trial 89 M1: the scan's position is the couch's side whatever the planned position (a rim
    # beside the patient on the planned side is no evidence): this scan was taken supine
    from imagio.planning.planner import scan_position_warnings

    said = scan_position_warnings(problem)
    assert len(said) == 1 and f"planned {position} on a CT taken supine (the couch found on" in said[0], said
    off = PlanningProblem.build(ct, lab, "liver_tumor", constraints=Constraints(disabled_rules=("table_side",)))
    assert any("couch" in w and "check on the images" in w for w in table_warnings(off)), table_warnings(off)
    assert not couch_judged(off)
