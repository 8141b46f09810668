"""Organ rules (liver parenchyma, pleura, fissures, emphysema), proposals (ranking, Pareto,
diversity) and plan_demo, on synthetic volumes with known answers."""

from types import SimpleNamespace

import numpy as np
import pytest

from imagio.planning import Constraints, Evaluator, Needle, PlanningProblem, plan, plan_demo
from imagio.planning.proposals import pareto_mask
from imagio.planning.synthetic import TUMOR, synthetic_torso
from imagio.volume import Volume, make_ijk_to_ras

FREE = dict(table_exclusion_deg=0.0, max_skin_angle_deg=90.0, max_craniocaudal_deg=None)


def grid_volumes(fn, names, spacing=1.0, extent=(130, 130, 130), hu_fn=None):
    sp = np.full(3, float(spacing))
    n = np.ceil(np.asarray(extent) / sp).astype(int)
    m = make_ijk_to_ras(sp, -sp * (n - 1) / 2.0)
    kk, jj, ii = np.meshgrid(*[np.arange(s) for s in n[::-1]], indexing="ij")
    x, y, z = [a * spacing - spacing * (nn - 1) / 2.0 for a, nn in zip((ii, jj, kk), n)]
    lab = fn(x, y, z).astype(np.uint8)
    hu = np.where(lab > 0, 40, -1000) if hu_fn is None else hu_fn(x, y, z, lab)
    return Volume(hu.astype(np.int16), m), Volume(lab, m, "labels", names)


def body(x, y, z):
    return (np.abs(x) <= 60) & (np.abs(y) <= 60) & (np.abs(z) <= 60)


def test_liver_needs_10mm_of_parenchyma_before_the_tumour():
    # liver slab y < 20; tumour (r 8) touching the capsule at y = 20 from inside; target its centre
    def fn(x, y, z):
        lab = body(x, y, z).astype(np.uint8)
        lab[body(x, y, z) & (y < 20) & (y > -50)] = 2
        lab[x ** 2 + (y - 12) ** 2 + z ** 2 <= 8 ** 2] = 3
        return lab
    ct, lab = grid_volumes(fn, {1: "body", 2: "liver", 3: "liver_tumor"})
    prob = PlanningProblem.build(ct, lab, "liver_tumor", needle=Needle(200, 0, 0),
                                 constraints=Constraints(**FREE))
    assert prob.target.organ == "liver"
    ev = Evaluator(prob)
    straight = ev.evaluate((0.0, 60.0, 0.0))          # anterior: enters the tumour at the capsule
    assert "liver_parenchyma" in straight.violations
    assert straight.liver_before_target_mm < 2.0
    # from the side, 45 deg below: ~ 12-20 mm of liver before reaching the tumour
    lateral = ev.evaluate((60.0, -48.0, 0.0))
    assert lateral.feasible, lateral.details
    assert lateral.liver_before_target_mm >= 10.0
    assert lateral.length_in_mm["liver"] >= lateral.liver_before_target_mm - 1.0
    assert Evaluator(PlanningProblem.build(
        ct, lab, "liver_tumor", needle=Needle(200, 0, 0),
        constraints=Constraints(min_liver_parenchyma_mm=0.0, **FREE))).evaluate((0.0, 60.0, 0.0)).feasible
    # --no-rule liver_parenchyma: not enforced, the metric kept, the plan records it
    off = PlanningProblem.build(ct, lab, "liver_tumor", needle=Needle(200, 0, 0),
                                constraints=Constraints(disabled_rules=("liver_parenchyma",), **FREE))
    m = Evaluator(off).evaluate((0.0, 60.0, 0.0))
    assert m.feasible and m.liver_before_target_mm < 2.0
    assert off.rules["liver_parenchyma"]["applies"] is False and off.rules["disabled"] == ["liver_parenchyma"]


def _lung_case():
    # two lobes meeting at z = 0 (the fissure plane), emphysema (-980 HU) in the upper lobe x < -20
    def fn(x, y, z):
        lab = body(x, y, z).astype(np.uint8)
        lung = (np.abs(x) <= 45) & (np.abs(y) <= 45) & (np.abs(z) <= 45)
        lab[lung & (z >= 0)] = 2
        lab[lung & (z < 0)] = 3
        lab[(x - 10) ** 2 + y ** 2 + (z + 20) ** 2 <= 6 ** 2] = 4
        return lab

    def hu(x, y, z, lab):
        h = np.where(lab == 1, 40, np.where(lab == 4, 30, np.where(lab > 0, -860, -1000)))
        return np.where((lab == 2) & (x < -20), -980, h)
    return grid_volumes(fn, {1: "body", 2: "lung_upper_lobe_right", 3: "lung_lower_lobe_right",
                             4: "lung_nodule"}, hu_fn=hu)


def test_aerated_lung_is_air_on_the_ct_not_the_lung_label():
    """New-user trial 21 (L9): 'aerated lung' was the length in the lung label, so a solid
    nodule nobody labelled (30 HU inside the lobe's label) counted as aerated lung. A 10 mm
    unlabelled solid ball on the lateral route: the aerated length drops by its chord."""
    ct, lab = _lung_case()
    arr = ct.array.copy()
    from imagio.segmentation.common import ras_coordinate

    x, y, z = (ras_coordinate(ct, a) for a in range(3))
    ball = (x - 35) ** 2 + y ** 2 + (z + 20) ** 2 <= 5 ** 2
    arr[ball] = 30
    prob = PlanningProblem.build(ct.with_array(arr), lab, "lung_nodule", needle=Needle(200, 0, 0),
                                 constraints=Constraints(**FREE))
    m = Evaluator(prob).evaluate((60.0, 0.0, -20.0))
    assert abs(m.aerated_lung_mm - (45 - 16 - 10)) <= 1.5, m.aerated_lung_mm


def test_solid_tissue_on_the_path_inside_the_lung_is_found_but_not_the_targets_own():
    """New-user trial 22 (M5): a path ran 11.6 mm through an unlabelled solid nodule with no word.
    `solid_runs_in_lung` finds the 10 mm unlabelled ball on the lateral route (its chord and
    middle as built), not the target's own tissue at the tip (a point target in an unlabelled
    nodule), and nothing on a clear route."""
    from imagio.planning.planner import solid_runs_in_lung
    from imagio.segmentation.common import ras_coordinate

    ct, lab = _lung_case()
    x, y, z = (ras_coordinate(ct, a) for a in range(3))
    arr = ct.array.copy()
    arr[(x - 35) ** 2 + y ** 2 + (z + 20) ** 2 <= 5 ** 2] = 30
    arr[(x + 25) ** 2 + y ** 2 + (z + 20) ** 2 <= 4 ** 2] = 30     # an unlabelled target nodule
    prob = PlanningProblem.build(ct.with_array(arr), lab, "lung_nodule", needle=Needle(200, 0, 0),
                                 constraints=Constraints(**FREE))
    runs = solid_runs_in_lung(prob, (60.0, 0.0, -20.0), prob.target.point_ras, 5.0)
    assert len(runs) == 1 and abs(runs[0][0] - 10.0) <= 1.5 and abs(runs[0][1][0] - 35.0) <= 1.5, runs
    assert solid_runs_in_lung(prob, (10.0, 60.0, -20.0), prob.target.point_ras, 5.0) == []
    assert solid_runs_in_lung(prob, (-25.0, 60.0, -20.0), (-25.0, 0.0, -20.0), 5.0) == []


def test_a_solid_run_ending_at_the_target_lesions_label_is_its_own_edge():
    """New-user trial 109 (MED): on lung1 a proposal warned "5.5 mm of solid tissue inside the
    lung ... before the target (an unlabelled nodule?)" at a point 0.8 mm from the target
    lesion's own label: its partial-volume rim, lung-labelled. Only a run reaching the path's
    last sample was dropped. A 3 mm solid rim (-200 HU) round the labelled nodule, inside the
    lobe's label, is its edge (not reported, for the named target and for a point target in
    it); the unlabelled 10 mm ball 15 mm before it still is."""
    from imagio.planning.planner import solid_runs_in_lung
    from imagio.segmentation.common import ras_coordinate

    ct, lab = _lung_case()
    x, y, z = (ras_coordinate(ct, a) for a in range(3))
    r2 = (x - 10) ** 2 + y ** 2 + (z + 20) ** 2
    arr = np.where((r2 > 6 ** 2) & (r2 <= 9 ** 2) & (lab.array == 3), -200, ct.array)
    ball = (x - 35) ** 2 + y ** 2 + (z + 20) ** 2 <= 5 ** 2
    ct2 = ct.with_array(arr.astype(np.int16))
    for target in ("lung_nodule", (10.0, 0.0, -20.0)):
        prob = PlanningProblem.build(ct2, lab, target, needle=Needle(200, 0, 0), constraints=Constraints(**FREE))
        assert solid_runs_in_lung(prob, (60.0, 0.0, -20.0), prob.target.point_ras, 2.0) == []   # old: the rim's run
        assert solid_runs_in_lung(prob, (10.0, 60.0, -20.0), prob.target.point_ras, 2.0) == []
    prob = PlanningProblem.build(ct.with_array(np.where(ball, 30, arr).astype(np.int16)), lab, "lung_nodule",
                                 needle=Needle(200, 0, 0), constraints=Constraints(**FREE))
    runs = solid_runs_in_lung(prob, (60.0, 0.0, -20.0), prob.target.point_ras, 2.0)
    assert len(runs) == 1 and abs(runs[0][1][0] - 35.0) <= 1.5, runs


def test_pleura_fissure_and_emphysema_counts():
    ct, lab = _lung_case()
    prob = PlanningProblem.build(ct, lab, "lung_nodule", needle=Needle(200, 0, 0),
                                 constraints=Constraints(**FREE))
    ev = Evaluator(prob)
    tgt = prob.target.point_ras
    assert np.allclose(tgt, (10, 0, -20), atol=1.0)
    # lateral, same lobe: one pleural crossing, no fissure, aerated lung = 45 - 16 = 29 mm
    m = ev.evaluate((60.0, 0.0, -20.0))
    assert m.pleural_crossings == 1 and m.fissure_crossings == 0 and m.feasible, m.details
    assert abs(m.aerated_lung_mm - (45 - 16)) <= 1.5
    assert m.emphysema_pct == 0.0
    # from above: enters the upper lobe, crosses the fissure at z = 0 into the lower lobe
    m = ev.evaluate((10.0, 0.0, 60.0))
    assert m.pleural_crossings == 1 and m.fissure_crossings == 1
    assert "fissure" in m.violations
    # from the left through the emphysematous upper lobe region then down across the fissure
    m = ev.evaluate((-60.0, 0.0, 40.0))
    assert m.emphysema_pct > 20.0 and m.fissure_crossings == 1
    strict = Evaluator(PlanningProblem.build(
        ct, lab, "lung_nodule", needle=Needle(200, 0, 0),
        constraints=Constraints(max_emphysema_percent=10.0, fissure_crossing="penalise", **FREE)), ev.maps)
    m2 = strict.evaluate((-60.0, 0.0, 40.0))
    assert m2.violations == ["emphysema"]


@pytest.mark.parametrize("name", ["lung_nodule", "nod_spine", "tumor", "GTV"])
def test_a_nodule_inside_the_lung_counts_one_pleural_crossing_whatever_its_name(name):
    """Trial 7: a nodule inside the lung named other than lung* ('nod_spine') counted the step
    from lung into it as a second pleural crossing and every path was refused; the same voxels
    named 'lung_nodule_1' were planned. Counted from the geometry, as the test does: lateral
    entry, body -> lung -> nodule, one crossing of the pleura."""
    ct, lab = _lung_case()
    lab = lab.with_array(lab.array, labels={**lab.labels, 4: name})
    prob = PlanningProblem.build(ct, lab, name, needle=Needle(200, 0, 0), constraints=Constraints(**FREE))
    m = Evaluator(prob).evaluate((60.0, 0.0, -20.0))
    # independent: the labels sampled along the path change body -> lung -> nodule exactly once each
    e, t = np.array([60.0, 0.0, -20.0]), prob.target.point_ras
    pts = e + np.linspace(0, 1, 400)[:, None] * (t - e)
    v = lab.array[tuple(np.clip(np.rint(lab.world_to_kji(pts)).astype(int), 0, np.array(lab.shape) - 1).T)]
    runs = [int(x) for i, x in enumerate(v) if i == 0 or x != v[i - 1]]
    assert runs == [1, 3, 4], runs
    assert m.pleural_crossings == 1 and m.feasible, (name, m.details)


def test_solid_tissue_inside_the_lung_label_is_no_pleural_crossing():
    """New-user trial 109 (MED): on lung1 resampled to an oblique 0.8 x 0.8 x 2.5 mm grid the
    nodule's partial-volume rim (lung-labelled, -300 HU) was read as leaving the lung: the
    scorer's pleura was the aerated voxels closed by one voxel, so a rim wider than that gave
    3 pleural crossings and refused the path the axial original planned. The pleura is the lung
    label's boundary, as the verifier counts it: a 3 mm solid shell (-200 HU) round the nodule,
    inside the lobe's label, is crossed inside the lung (one pleural crossing); the aerated
    length still leaves it out."""
    ct, lab = _lung_case()
    x, y, z = [ct.kji_to_world(np.argwhere(np.ones(ct.shape, bool)).astype(float))[:, a].reshape(ct.shape)
               for a in range(3)]
    r2 = (x - 10) ** 2 + y ** 2 + (z + 20) ** 2
    shell = (r2 > 6 ** 2) & (r2 <= 9 ** 2) & (lab.array == 3)
    ct = ct.with_array(np.where(shell, -200, ct.array).astype(np.int16))
    prob = PlanningProblem.build(ct, lab, "lung_nodule", needle=Needle(200, 0, 0), constraints=Constraints(**FREE))
    m = Evaluator(prob).evaluate((60.0, 0.0, -20.0))
    assert m.pleural_crossings == 1 and m.feasible, m.details      # old code: 3 pleural crossings
    assert abs(m.aerated_lung_mm - (45 - 19)) <= 1.5, m.aerated_lung_mm


def test_proposals_ranked_pareto_and_diverse():
    ct, lab = synthetic_torso(3.0)
    p = plan(PlanningProblem.build(ct, lab, "liver_tumor"), k=6)
    t = p.table
    assert [m.score for m in p.proposals] == sorted(m.score for m in p.proposals)
    best_any = t.score[t.feasible].min()
    assert p.proposals[0].score == pytest.approx(float(best_any), abs=1e-6)
    par = np.array(p.pareto)
    assert len(par) >= 2 and t.feasible[par].all()
    # no feasible candidate dominates a Pareto member (checked against all feasible rows)
    feas = np.flatnonzero(t.feasible)
    C = t.costs
    for i in par[:50]:
        dom = (C[feas] <= C[i]).all(1) & (C[feas] < C[i]).any(1)
        assert not dom.any()
    small = np.array([[1, 1], [0, 2], [2, 0], [2, 2], [1, 1]], float)
    assert pareto_mask(small).tolist() == [True, True, True, False, True]


def test_plan_demo_on_a_phantom_like_case(tmp_path):
    ct, lab = synthetic_torso(3.0)
    les = [SimpleNamespace(name="liver_tumor", kind="liver_tumor", center_ras=np.array(TUMOR[0]),
                           radius_mm=TUMOR[1])]
    calls = []
    out = plan_demo(SimpleNamespace(ct=ct, labels=lab, lesions=les), tmp_path,
                    progress=lambda f, m: calls.append(f))
    assert out["liver_tumor"]["feasible"] and (tmp_path / "plan_liver_tumor.json").exists()
    assert calls and max(calls) == pytest.approx(1.0)
    import json
    json.dumps(out)


def test_pareto_mask_equals_all_pairs_with_ties():
    """The chunked lexicographic Pareto filter against the all-pairs definition, on random
    costs with many ties (few distinct values) and more rows than one chunk."""
    rng = np.random.default_rng(3)
    for m, levels in ((2, 5), (4, 3), (5, 50)):
        c = rng.integers(0, levels, (700, m)).astype(float)
        le = (c[None, :, :] <= c[:, None, :]).all(-1)
        lt = (c[None, :, :] < c[:, None, :]).any(-1)
        ref = ~(le & lt).any(1)
        assert np.array_equal(pareto_mask(c, chunk=64), ref)
        assert np.array_equal(pareto_mask(c), ref)


def test_solid_runs_in_lung_sample_the_needle_cylinder_not_the_centre_line():
    """New-user trial 23 (N3): `solid_runs_in_lung` sampled only the needle's centre line, so a
    needle whose cylinder (radius + placement uncertainty, `Needle.widening_mm`, the clearance
    every structure gets) ran 1.0 mm into the edge of an unlabelled 10 mm solid nodule was not
    warned. On an oblique, anisotropic grid: the axis passes beside the ball at
    r + widening - 1.0 mm from its centre; the run is the length over which the cylinder (with
    the CT density check's half-voxel convention, R = w + half the smallest voxel) meets the
    ball, 2 sqrt(r^2 - (d - R)^2) (analytic: 6.7 mm; within a voxel diagonal and a sample step),
    centred on the ball's projection; a needle of zero radius sees nothing. A run is the length over
    which the cylinder holds solid tissue: a 2 mm vessel across it 1 mm beside the axis is not
    warned, a 6 mm one is."""
    from conftest import rotation

    from imagio.planning.planner import solid_runs_in_lung
    from imagio.segmentation.common import ras_coordinate
    from imagio.volume import make_ijk_to_ras

    d = rotation((1, 2, 3), 25.0) @ np.diag([1.0, -1.0, 1.0])
    sp = np.array([0.6, 0.7, 0.8])
    n = np.ceil(np.array([110, 110, 110]) / sp).astype(int)
    m = make_ijk_to_ras(sp, -(d * sp) @ ((n - 1) / 2.0), d)
    ref = Volume(np.zeros(tuple(n[::-1]), np.int16), m)
    x, y, z = (ras_coordinate(ref, a) for a in range(3))
    lab = np.where((np.abs(x) <= 50) & (np.abs(y) <= 50) & (np.abs(z) <= 50), 1, 0).astype(np.uint8)
    lab[(np.abs(x) <= 40) & (np.abs(y) <= 40) & (np.abs(z) <= 40)] = 2
    lab[x ** 2 + y ** 2 + (z + 20) ** 2 <= 4 ** 2] = 3
    hu = np.where(lab == 2, -860, np.where(lab > 0, 40, -1000)).astype(np.int16)
    r, needle = 5.0, Needle(200, 1.3, 2.0)
    w = needle.widening_mm
    dist = r + w - 1.0
    ball = (x - 20) ** 2 + (y - dist) ** 2 + (z + 20) ** 2 <= r ** 2   # beside the lateral route y = 0
    hu[ball] = 30
    ct, labels = ref.with_array(hu), ref.with_array(lab, labels={1: "body", 2: "lung_lower_lobe_right",
                                                                  3: "lung_nodule"})
    prob = PlanningProblem.build(ct, labels, "lung_nodule", needle=needle, constraints=Constraints(**FREE))
    entry, target = (48.0, 0.0, -20.0), prob.target.point_ras
    runs = solid_runs_in_lung(prob, entry, target, 5.0)
    expect = 2 * np.sqrt(r ** 2 - (dist - w - 0.5 * sp.min()) ** 2)
    assert len(runs) == 1, runs
    voxel = float(np.linalg.norm(sp))
    assert abs(runs[0][0] - expect) <= voxel + 0.5, (runs, expect)
    assert abs(runs[0][1][0] - 20.0) <= voxel and abs(runs[0][1][1]) <= 1.0, runs
    assert solid_runs_in_lung(prob, entry, target, 5.0, radius_mm=0.0) == []   # the centre line misses it
    # a vessel across the path beside the axis, inside the cylinder: one of 2 mm calibre (the thin
    # vessels every lung holds) is not warned; one of 6 mm (>= the 5 mm the rule asks) is
    for radius, warned in ((1.0, False), (3.0, True)):
        vessel = ((x - 32) ** 2 + (y - 1.0 - radius) ** 2 <= radius ** 2) & (lab == 2)
        prob = PlanningProblem.build(ct.with_array(np.where(vessel, 40, hu).astype(np.int16)), labels,
                                     "lung_nodule", needle=needle, constraints=Constraints(**FREE))
        runs = solid_runs_in_lung(prob, entry, target, 5.0)
        assert len(runs) == 1 + warned and abs(runs[-1][1][0] - 20.0) <= voxel, (radius, runs)
        if warned:
            assert abs(runs[0][1][0] - 32.0) <= voxel, runs


def test_an_unnamed_target_is_not_warned_as_a_forbidden_structure():
    """Trial 28 M2: a lesion map merged with --lesions names its value 'label_1'; targeting it
    warned 'label value N has no name: treated as forbidden' about the very structure planned
    into. Another unnamed value still gets the warning (it is kept out)."""
    def fn(x, y, z):
        lab = body(x, y, z).astype(np.uint8)
        lab[body(x, y, z) & (y < 20) & (y > -50)] = 2
        lab[x ** 2 + (y + 12) ** 2 + z ** 2 <= 8 ** 2] = 3
        lab[(x - 40) ** 2 + (y + 30) ** 2 + z ** 2 <= 5 ** 2] = 4
        lab[(x + 40) ** 2 + (y + 30) ** 2 + (z - 30) ** 2 <= 5 ** 2] = 5
        return lab
    ct, lab = grid_volumes(fn, {1: "body", 2: "liver", 3: "label_3", 4: "label_4", 5: "gallbladder"})
    prob = PlanningProblem.build(ct, lab, "label_3", needle=Needle(200, 0, 0), constraints=Constraints(**FREE))
    unnamed = [w for w in prob.warnings if "has no name" in w]
    assert prob.target.value == 3
    assert unnamed == [w for w in unnamed if "label value 4 " in w] and len(unnamed) == 1, prob.warnings


def test_a_lesion_where_three_lobes_meet_names_what_it_borders():
    """Trial 28 (L4): a nodule on the junction of three lobes got "host organ unknown ...: no
    organ-specific rule applied", untrue (the lung rules applied). The warning now names what
    the lesion borders with each share of the shell and which rules are not applied."""
    def fn(x, y, z):
        lab = body(x, y, z).astype(np.uint8)
        inner = body(x, y, z) & (np.abs(x) < 50) & (np.abs(y) < 50) & (np.abs(z) < 50)
        sector = np.floor(np.mod(np.arctan2(z, y) + 1e-9, 2 * np.pi) / (2 * np.pi / 3)).astype(int)  # thirds
        lab[inner] = 2 + sector[inner]
        lab[x ** 2 + y ** 2 + z ** 2 <= 6 ** 2] = 5
        return lab
    ct, lab = grid_volumes(fn, {1: "body", 2: "lung_upper_lobe_right", 3: "lung_middle_lobe_right",
                               4: "lung_lower_lobe_right", 5: "lung_nodule_1"},
                           hu_fn=lambda x, y, z, lab: np.where(lab == 0, -1000, np.where(lab == 5, 30, np.where(lab > 1, -850, 40))))
    prob = PlanningProblem.build(ct, lab, "lung_nodule_1", needle=Needle(200, 0, 0), constraints=Constraints(**FREE))
    said = [w for w in prob.warnings if w.startswith("host organ of lung_nodule_1 unknown")]
    assert len(said) == 1 and "no organ-specific rule applied" not in said[0], prob.warnings
    shares = {n: float(said[0].split(n + " ")[1].split(" %")[0]) for n in
              ("lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right")}
    # independent: the three lobes meet at 120 degrees around the nodule: a third of its shell each
    assert all(v == pytest.approx(100 / 3, abs=6) for v in shares.values()), shares


def test_a_ct_too_coarse_for_ribs_is_said_in_the_plan_and_by_the_segmentation():
    """New-user trial 29 (H1): the chest CTA at 5 mm lost its vertebrae and ribs (330 -> 10 mL,
    226 -> 19 mL) and the plan's proposals crossed ribs, without a word. A grid whose in-plane
    voxels (the axes other than superior, read from the direction matrix) are coarser than the
    bone rules' 3 mm now says so; thick slices with fine in-plane voxels do not."""
    from imagio.segmentation.bones import coarse_grid_note

    def grid(spacing_ijk, direction):
        return Volume(np.zeros((4, 4, 4), np.int16), make_ijk_to_ras(spacing_ijk, (0.0, 0.0, 0.0), direction))

    eye = np.eye(3)
    s_on_i = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])   # array axis i runs superior
    assert coarse_grid_note(grid((0.7, 0.7, 5.0), eye)) == ""            # 5 mm slices, fine in-plane
    assert coarse_grid_note(grid((5.0, 0.7, 0.7), s_on_i)) == ""         # the same, stored sideways
    assert "5 mm" in coarse_grid_note(grid((5.0, 5.0, 1.0), eye))
    assert "5 mm" in coarse_grid_note(grid((1.0, 5.0, 0.7), s_on_i))
    ct, lab = synthetic_torso(3.0)
    coarse = ct.resampled((5.0, 5.0, 3.0), order=1)
    said = [w for w in PlanningProblem.build(coarse, lab, "liver_tumor").warnings if "bone rules" in w]
    assert len(said) == 1 and "rib" in said[0]
    assert not [w for w in PlanningProblem.build(ct, lab, "liver_tumor").warnings if "bone rules" in w]


def test_an_emphysema_label_carved_out_of_the_lung_is_aerated_lung_not_a_lobe():
    """New-user trial 33 (H2): IMAGIO's `segment --structures lungs,emphysema` carves the LAA-950
    voxels out of the lung into 'emphysema'; plan then counted them as neither aerated lung nor
    emphysema (emphysema_pct 0 % next to "crosses emphysema for 6.8 mm", aerated length short).
    The same voxels labelled 'emphysema' give the metrics of the map without that label, and the
    step lobe -> emphysema is no fissure."""
    ct, lab = _lung_case()
    arr = lab.array.copy()
    arr[(arr == 2) & (ct.array < -950)] = 5
    carved = lab.with_array(arr, labels={**lab.labels, 5: "emphysema"})
    for entry in [(-60.0, 0.0, 40.0), (-60.0, 0.0, -20.0), (60.0, 0.0, -20.0)]:
        ms = [Evaluator(PlanningProblem.build(ct, lb, "lung_nodule", needle=Needle(200, 0, 0),
                                              constraints=Constraints(**FREE))).evaluate(entry)
              for lb in (lab, carved)]
        for key in ("emphysema_pct", "aerated_lung_mm", "fissure_crossings", "pleural_crossings"):
            assert getattr(ms[1], key) == pytest.approx(getattr(ms[0], key), abs=1e-3), (entry, key)
    assert ms[0].emphysema_pct == 0.0
    m = Evaluator(PlanningProblem.build(ct, carved, "lung_nodule", needle=Needle(200, 0, 0),
                                        constraints=Constraints(**FREE))).evaluate((-60.0, 0.0, 40.0))
    assert m.emphysema_pct > 20.0 and m.fissure_crossings == 1


def test_a_solid_run_where_the_path_enters_the_lung_label_is_named_as_the_chest_wall_or_a_juxtapleural_nodule():
    """New-user trial 110 (MED): on lung2 re-gridded obliquely the best path warned "7.5 mm of solid
    tissue inside the lung ... (an unlabelled nodule or vessel on the path?)" at its pleural entry,
    where the lung label reached past the CT's pleura into the chest wall. Solid tissue just inside
    the lung label's edge is the chest wall or a juxtapleural nodule, which density cannot tell
    apart: the run is still reported, and where it starts at the entry into the lung label it says
    so; a run deeper in the lung (the unlabelled 10 mm ball) keeps its wording."""
    from imagio.planning.planner import solid_runs_in_lung, starts_at_the_pleura
    from imagio.segmentation.common import ras_coordinate

    ct, lab = _lung_case()
    x, y, z = (ras_coordinate(ct, a) for a in range(3))
    # the lobe's label 6 mm past the CT's pleura at x = 45 (the CT keeps its chest wall, +40 HU there)
    arr = np.where((x > 39) & (lab.array == 3), 40, ct.array).astype(np.int16)
    ball = (x - 25) ** 2 + y ** 2 + (z + 20) ** 2 <= 5 ** 2
    prob = PlanningProblem.build(ct.with_array(np.where(ball, 30, arr).astype(np.int16)), lab, "lung_nodule",
                                 needle=Needle(200, 0, 0), constraints=Constraints(**FREE))
    e = (60.0, 0.0, -20.0)
    runs = solid_runs_in_lung(prob, e, prob.target.point_ras, 2.0)
    assert len(runs) == 2, runs          # the rim at the entry and the ball
    rim = min(runs, key=lambda r: -r[1][0])
    deep = max(runs, key=lambda r: -r[1][0])
    assert rim[1][0] > 39 and abs(deep[1][0] - 25.0) <= 1.5, runs
    assert starts_at_the_pleura(prob, e, prob.target.point_ras, *rim)
    assert not starts_at_the_pleura(prob, e, prob.target.point_ras, *deep)
    # the planner's words for each (old code: both "an unlabelled nodule or vessel on the path?")
    from imagio.planning import plan

    from imagio.planning.problem import load_defaults

    result = plan(prob)
    checked = 0
    for n, m in enumerate(result.proposals, 1):
        for mm, at in solid_runs_in_lung(prob, m.entry_ras, m.target_ras, load_defaults()["warnings"]["solid_in_lung_mm"]):
            checked += 1
            said = [w for w in result.warnings if w.startswith(f"proposal {n}: {mm:.1f} mm of solid tissue")]
            assert said, (n, mm, at)
            pleura = starts_at_the_pleura(prob, m.entry_ras, m.target_ras, mm, at)
            assert ("juxtapleural" in said[0]) == pleura and ("unlabelled nodule" in said[0]) != pleura, said[0]
    assert checked, "no proposal with a solid run: the wording is not tested"
