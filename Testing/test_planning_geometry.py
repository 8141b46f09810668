"""Needle planner: correctness by construction on small synthetic volumes (known answers)."""

import numpy as np
import pytest

from conftest import rotation
from imagio.planning import Constraints, Evaluator, Needle, NoFeasiblePath, PlanningProblem, plan
from imagio.planning.scoring import BIT
from imagio.volume import Volume, make_ijk_to_ras

NO_TABLE = dict(table_exclusion_deg=0.0, max_skin_angle_deg=90.0, max_craniocaudal_deg=None)


def analytic_volumes(spacing, extent, label_fn, names, direction=None):
    """(ct, labels) on a grid centred at the RAS origin; label_fn(x, y, z) -> uint8 labels."""
    sp = np.asarray(spacing, float)
    d = np.eye(3) if direction is None else np.asarray(direction, float)
    n = np.ceil(np.asarray(extent, float) / sp).astype(int)
    m = make_ijk_to_ras(sp, -(d * sp) @ ((n - 1) / 2.0), d)
    kk, jj, ii = np.meshgrid(*[np.arange(s) for s in n[::-1]], indexing="ij")
    ijk = np.stack([ii, jj, kk], -1).reshape(-1, 3).astype(float)
    x, y, z = (ijk @ m[:3, :3].T + m[:3, 3]).T
    lab = label_fn(x, y, z).astype(np.uint8).reshape(tuple(n[::-1]))
    ct = np.where(lab > 0, 40, -1000).astype(np.int16)
    return Volume(ct, m, "ct"), Volume(lab, m, "labels", names)


def box_body(x, y, z, half=(60, 60, 80)):
    return (np.abs(x) <= half[0]) & (np.abs(y) <= half[1]) & (np.abs(z) <= half[2])


def thin_needle(**kw):
    return Needle(length_mm=kw.get("length_mm", 200.0), diameter_mm=0.0, uncertainty_mm=0.0)


# --- a rib-like bar blocks one path, a gap between two bars lets another through -------------
def test_bar_rejects_path_and_gap_accepts():
    def fn(x, y, z):
        lab = box_body(x, y, z).astype(np.uint8)
        bars = (y > 30) & (y < 40) & (np.abs(x) < 50)       # two bars, 10 mm high, gap z in (-6, 6)
        lab[bars & (np.abs(z - 12) <= 6)] = 2
        lab[bars & (np.abs(z + 12) <= 6)] = 3
        return lab
    ct, lab = analytic_volumes((1.0, 1.0, 1.0), (130, 130, 170), fn,
                               {1: "body", 2: "rib_right_7", 3: "rib_right_8"})
    prob = PlanningProblem.build(ct, lab, (0.0, 0.0, 0.0), needle=thin_needle(),
                                 constraints=Constraints(**NO_TABLE))
    ev = Evaluator(prob)
    through_bar = ev.evaluate((0.0, 60.0, 12.0))
    assert not through_bar.feasible
    assert "forbidden" in through_bar.violations
    assert "rib_right_7" in " ".join(through_bar.details)
    through_gap = ev.evaluate((0.0, 60.0, 0.0))
    assert through_gap.feasible, through_gap.details
    # the gap is 12 mm wide (z in -6..6): the straight path at z=0 clears both bars by ~6 mm
    assert through_gap.closest_structure in ("rib_right_7", "rib_right_8")
    assert abs(through_gap.closest_clearance_mm - 6.0) <= 0.5
    # a needle too fat for the gap: widening 2 x 3.5 mm > 6 mm clearance -> clearance violation
    prob_fat = PlanningProblem.build(ct, lab, (0.0, 0.0, 0.0),
                                     needle=Needle(200.0, diameter_mm=2.0, uncertainty_mm=5.0),
                                     constraints=Constraints(**NO_TABLE))
    fat = Evaluator(prob_fat).evaluate((0.0, 60.0, 0.0))
    assert fat.violations == ["clearance"]


# --- clearance to a sphere and to a cylinder equals the analytic distance --------------------
@pytest.mark.parametrize("oblique", [False, True])
def test_clearance_equals_analytic_distance(oblique):
    c_sph, r_sph = np.array([0.0, 25.0, 8.0]), 9.0           # sphere (forbidden)
    c_cyl, r_cyl = np.array([-20.0, 25.0, 0.0]), 5.0         # cylinder along z (margin 3 mm)

    def fn(x, y, z):
        lab = box_body(x, y, z).astype(np.uint8)
        lab[(x - c_sph[0]) ** 2 + (y - c_sph[1]) ** 2 + (z - c_sph[2]) ** 2 <= r_sph ** 2] = 2
        lab[((x - c_cyl[0]) ** 2 + (y - c_cyl[1]) ** 2 <= r_cyl ** 2) & (np.abs(z) < 70)] = 3
        return lab
    if oblique:
        spacing, d = (0.9, 1.2, 1.5), rotation((1, 2, 3), 20.0) @ np.diag([-1.0, 1.0, 1.0])
    else:
        spacing, d = (1.0, 1.0, 1.0), None
    ct, lab = analytic_volumes(spacing, (130, 130, 170), fn,
                               {1: "body", 2: "heart", 3: "portal_vein"}, d)
    prob = PlanningProblem.build(ct, lab, (0.0, 0.0, 0.0), needle=thin_needle(),
                                 constraints=Constraints(**NO_TABLE))
    assert {s.name: (s.role, s.margin_mm) for s in prob.structures}["portal_vein"] == ("margin", 3.0)
    ev = Evaluator(prob)
    half_voxel = 0.5 * max(spacing)
    target = np.zeros(3)
    checked = 0
    for entry in [(0.0, 60.0, 0.0), (15.0, 60.0, -5.0), (-8.0, 60.0, 30.0), (30.0, 60.0, 20.0),
                  (-10.0, 60.0, -10.0), (10.0, 60.0, -20.0), (-25.0, 60.0, -20.0), (5.0, 60.0, -12.0)]:
        e = np.asarray(entry)
        ts = np.linspace(0, 1, 20001)[:, None]
        pts = e + ts * (target - e)
        d_sph = np.min(np.linalg.norm(pts - c_sph, axis=1)) - r_sph
        d_cyl = np.min(np.linalg.norm((pts - c_cyl)[:, :2], axis=1)) - r_cyl
        m = ev.evaluate(e)
        if d_sph < 0:
            assert "forbidden" in m.violations
            continue
        cap = ev.maps.cap_mm   # clearances beyond the cap are "far" and not listed
        for name, want in (("heart", d_sph), ("portal_vein", d_cyl)):
            if want < cap - half_voxel:
                assert abs(m.clearance_mm[name] - want) <= half_voxel, (entry, m.clearance_mm, name, want)
            else:
                assert m.clearance_mm.get(name, cap) >= cap - half_voxel
        # the batch scorer agrees: slack = min(d_sphere, d_cylinder - 3 mm)
        assert abs(m.slack_mm - min(d_sph, d_cyl - 3.0, cap)) <= half_voxel
        want = "heart" if d_sph < d_cyl - 3.0 else "portal_vein"
        if abs(d_sph - (d_cyl - 3.0)) > 2 * half_voxel:
            assert m.closest_structure == want
        checked += d_cyl < 20
    assert checked >= 4


def test_placement_uncertainty_widens_to_cylinder():
    def fn(x, y, z):
        lab = box_body(x, y, z).astype(np.uint8)
        lab[(x - 10) ** 2 + (y - 30) ** 2 + z ** 2 <= 5 ** 2] = 2      # sphere 5 mm at 10 mm
        return lab
    ct, lab = analytic_volumes((1.0, 1.0, 1.0), (130, 130, 170), fn, {1: "body", 2: "aorta"})
    entry = (0.0, 60.0, 0.0)   # passes 10 mm from the sphere centre: 5 mm clearance; aorta margin 5
    narrow = PlanningProblem.build(ct, lab, (0, 0, 0), needle=Needle(200, 0.0, 0.0),
                                   constraints=Constraints(**NO_TABLE), roles={"aorta": ("margin", 3.0)})
    m = Evaluator(narrow).evaluate(entry)
    assert m.feasible and abs(m.closest_clearance_mm - 5.0) <= 0.5
    wide = PlanningProblem.build(ct, lab, (0, 0, 0), needle=Needle(200, 1.0, 1.5),
                                 constraints=Constraints(**NO_TABLE), roles={"aorta": ("margin", 3.0)})
    m = Evaluator(wide).evaluate(entry)   # 5 - 3 = 2 mm slack < 0.5 + 1.5 = 2 mm (+ voxel error)
    assert m.required_mm == pytest.approx(2.0)
    wider = PlanningProblem.build(ct, lab, (0, 0, 0), needle=Needle(200, 1.0, 3.0),
                                  constraints=Constraints(**NO_TABLE), roles={"aorta": ("margin", 3.0)})
    m = Evaluator(wider).evaluate(entry)
    assert m.violations == ["clearance"] and "aorta" in m.details[0]


# --- a target behind a dome needs the craniocaudal angle geometry says ------------------------
def _dome_case():
    # body box; "lung" block lateral to the target above z = -20 (x from 30 mm to the skin at 60)
    def fn(x, y, z):
        lab = box_body(x, y, z).astype(np.uint8)
        lab[(x >= 30) & (x <= 56) & (z >= -20) & (np.abs(y) <= 56)] = 2
        return lab
    return analytic_volumes((2.0, 2.0, 2.0), (130, 130, 170), fn, {1: "body", 2: "lung_lower_lobe_right"})


def test_dome_needs_craniocaudal_angle():
    ct, lab = _dome_case()
    region = ((60.0, 0.0, -40.0), 45.0)   # entries on the right lateral face only
    base = dict(table_exclusion_deg=0.0, max_skin_angle_deg=90.0, entry_region=region)
    roles = {"lung_lower_lobe_right": "forbidden"}
    # geometry: entry at x = 60, z = ze; at x = 30 the path is at ze / 2 and must stay below the
    # block's voxel boundary (z = -21 with 2 mm voxels): ze <= -42 -> angle >= atan(42 / 60)
    expected = np.degrees(np.arctan(42.0 / 60.0))
    p = plan(PlanningProblem.build(ct, lab, (0, 0, 0), needle=thin_needle(),
                                   constraints=Constraints(max_craniocaudal_deg=60.0, **base), roles=roles))
    assert p.feasible
    t = p.table
    face = t.entry_ras[:, 0] > 57.0            # the right lateral face
    ze = t.entry_ras[:, 2]
    assert np.all(ze[face & t.feasible] <= -42.0 + 2.0)     # nothing flatter gets under the block
    in_region = (t.violations & BIT["entry_region"]) == 0
    assert np.all(t.feasible[face & in_region & (ze < -46.0)])   # everything steeper does
    band = face & (np.abs(t.entry_ras[:, 1]) < 4.0) & t.feasible   # entries in the plane y = 0
    assert abs(t.craniocaudal_deg[band].min() - expected) <= 2.0
    # from anywhere in the region the flattest possible path has atan(42 / hypot(60, 45)) ~ 29 deg
    flattest = np.degrees(np.arctan(42.0 / np.hypot(60.0, 45.0)))
    assert t.craniocaudal_deg[t.feasible].min() >= flattest - 2.0
    with pytest.raises(NoFeasiblePath) as err:
        plan(PlanningProblem.build(ct, lab, (0, 0, 0), needle=thin_needle(),
                                   constraints=Constraints(max_craniocaudal_deg=flattest - 4.0, **base),
                                   roles=roles), strict=True)
    rep = err.value.report
    assert rep["feasible"] == 0 and "craniocaudal" in rep["excluded_by"]
    assert "forbidden" in rep["excluded_by"] or "clearance" in rep["excluded_by"]
    assert rep["best_near_miss"]["violations"]
    assert "craniocaudal" in str(err.value)


def test_gantry_tilt_zero_allows_only_axial_paths():
    ct, lab = _dome_case()
    p = plan(PlanningProblem.build(ct, lab, (0, 0, -40.0), needle=thin_needle(),
                                   constraints=Constraints(max_craniocaudal_deg=0.0, table_exclusion_deg=60.0)))
    t = p.table
    assert p.feasible and t.feasible.sum() >= 10
    assert np.all(np.abs(t.entry_ras[t.feasible, 2] - (-40.0)) < 1e-6)
    assert np.all(t.craniocaudal_deg[t.feasible] < 0.011)
    for m in p.proposals:
        assert m.craniocaudal_deg < 0.011 and m.gantry_tilt_deg < 0.011
    # supine: no proposal enters from the table side (outward normal pointing posterior)
    assert all(m.entry_ras[1] > -59 for m in p.proposals)


def test_angles_report_inplane_and_out_of_plane():
    ct, lab = _dome_case()
    ev = Evaluator(PlanningProblem.build(ct, lab, (0, 0, 0), needle=thin_needle(),
                                         constraints=Constraints(**NO_TABLE)))
    m = ev.evaluate((0.0, 60.0, 60.0), normal_ras=(0, 1, 0))   # anterior entry, 45 deg cranial
    assert m.craniocaudal_deg == pytest.approx(45.0, abs=1e-6)
    assert m.skin_angle_deg == pytest.approx(45.0, abs=1e-6)
    assert m.inplane_deg == pytest.approx(0.0, abs=1e-6)
    m = ev.evaluate((-60.0, 60.0, 0.0), normal_ras=(0, 1, 0))  # oblique in the axial plane
    assert m.inplane_deg == pytest.approx(45.0, abs=1e-6) and m.craniocaudal_deg == pytest.approx(0.0)
