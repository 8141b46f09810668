"""Mediastinal soft tissue crossed while no great vessel is labelled is warned per proposal.

New-user trial 2 (A): on lung1 (no contrast, no vessel labelled) the best path entered at the
suprasternal notch through the right paratracheal space, where the brachiocephalic trunk and
vein run, with only the generic "no vessels labelled" line. The check here is independent of
`imagio.planning.mediastinum` (which uses the convex hull of the lungs per axial plane): a
sample is mediastinal when, in its own axial row along R, lung lies on both sides of it.
"""

from __future__ import annotations

import numpy as np
import pytest

from imagio.planning import PlanningProblem, plan
from imagio.planning.problem import Constraints
from imagio.planning.synthetic import synthetic_torso

LUNGS = ("lung_lower_lobe_right", "lung_lower_lobe_left", "lung_upper_lobe_right")


def _torso_without_great_vessels(lesion_ras, radius_mm=7.0, name="mediastinal_mass"):
    ct, lab = synthetic_torso(3.0)
    arr = lab.array.copy()
    inv = {n: v for v, n in lab.labels.items()}
    arr[arr == inv["aorta"]] = inv["body"]             # a CT without contrast: no great vessel labelled
    kji = np.stack(np.indices(arr.shape), -1).reshape(-1, 3)
    d = np.linalg.norm(lab.kji_to_world(kji.astype(float)) - np.asarray(lesion_ras, float), axis=1)
    v = max(lab.labels) + 1
    arr.reshape(-1)[d <= radius_mm] = v
    names = {k: n for k, n in lab.labels.items() if n != "aorta"}
    names[v] = name
    return ct, lab.with_array(arr, labels=names)


def _between_lungs_mm(lab, entry, target, tv):
    """mm of the path with lung on both sides along its axial R row (not lung, not the target)."""
    lung = np.isin(lab.array, [v for v, n in lab.labels.items() if n in LUNGS])
    r_axis = int(np.argmax(np.abs(lab.direction[0, ::-1])))
    e, t = np.asarray(entry, float), np.asarray(target, float)
    n = 600
    pts = e + np.linspace(0, 1, n)[:, None] * (t - e)
    kji = np.clip(np.rint(lab.world_to_kji(pts)).astype(int), 0, np.array(lab.shape) - 1)
    hits = 0
    for q in kji:
        if lung[tuple(q)] or lab.array[tuple(q)] == tv:
            continue
        row = np.moveaxis(lung, r_axis, -1)[tuple(np.delete(q, r_axis))]
        i = q[r_axis]
        hits += bool(row[:i].any() and row[i + 1:].any())
    return hits * np.linalg.norm(t - e) / (n - 1)


def _warned(result, n):
    return [w for w in result.warnings if w.startswith(f"proposal {n}: crosses") and "mediastinal" in w]


def test_paths_through_the_mediastinum_are_warned_when_no_great_vessel_is_labelled():
    ct, lab = _torso_without_great_vessels((0.0, 20.0, 70.0))
    tv = max(lab.labels)
    result = plan(PlanningProblem.build(ct, lab, "mediastinal_mass"))
    assert result.feasible
    runs = [_between_lungs_mm(lab, m.entry_ras, m.target_ras, tv) for m in result.proposals]
    assert max(runs) >= 10.0                           # the scene does put paths through it
    for n, mm in enumerate(runs, 1):
        if mm >= 8.0:
            assert _warned(result, n), (n, mm, result.warnings)
        if mm < 1.0:
            assert not _warned(result, n), (n, mm)
    # ranked last: no proposal with the finding before one without
    flags = [bool(_warned(result, n)) for n in range(1, len(runs) + 1)]
    assert flags == sorted(flags), (flags, runs)
    # a finding inside the patient: after every proposal without one and every one with findings
    # outside the patient only (trial 89 M2); "none found" said only when every proposal has a finding
    rank = "ranked after every proposal without a finding and every one whose findings lie only outside the patient"
    assert all(rank in _warned(result, n)[0] for n in range(1, len(runs) + 1) if flags[n - 1])
    assert all(("(no feasible path without a finding was found)" in _warned(result, n)[0]) == all(flags)
               for n in range(1, len(runs) + 1) if flags[n - 1])


def test_lateral_lung_paths_are_not_warned_and_labelled_vessels_silence_it():
    ct, lab = _torso_without_great_vessels((75.0, 0.0, 70.0), radius_mm=6.0, name="lung_nodule")
    result = plan(PlanningProblem.build(ct, lab, "lung_nodule"))
    tv = max(lab.labels)
    for n, m in enumerate(result.proposals, 1):
        if _between_lungs_mm(lab, m.entry_ras, m.target_ras, tv) < 1.0:
            assert not _warned(result, n)
    # with the aorta labelled (a contrast CT) the warning is not given
    ct2, lab2 = synthetic_torso(3.0)
    r2 = plan(PlanningProblem.build(ct2, lab2, "liver_tumor"))
    assert not any("mediastinal soft tissue" in w for w in r2.warnings)


def _cut_anteriorly(a_max=84.0):
    ct, lab = synthetic_torso(3.0)
    a_axis = int(np.argmax(np.abs(ct.direction[1, ::-1])))
    idx = np.zeros((ct.shape[a_axis], 3))
    idx[:, a_axis] = np.arange(ct.shape[a_axis])
    keep = np.flatnonzero(ct.kji_to_world(idx)[:, 1] <= a_max)
    lo, hi = [0, 0, 0], list(ct.shape)
    lo[a_axis], hi[a_axis] = int(keep.min()), int(keep.max()) + 1
    ct_c, lab_c = ct.crop(lo, hi), lab.crop(lo, hi)
    faces = np.zeros((2, 3))
    faces[:, a_axis] = (-0.5, ct_c.shape[a_axis] - 0.5)     # the two A faces, array index space
    return ct_c, lab_c, float(ct_c.kji_to_world(faces)[:, 1].max())   # the image's anterior boundary (A mm)


def _hub_beyond(problem, entry, target, edge_a):
    """The needle part outside the skin (entry -> hub, 0.5 mm steps) reaches past A = edge_a."""
    e, t = np.asarray(entry, float), np.asarray(target, float)
    u = (e - t) / np.linalg.norm(e - t)
    rest = problem.needle.length_mm - np.linalg.norm(e - t)
    pts = e + np.arange(0.0, rest + 0.25, 0.5)[:, None] * u
    return float(pts[:, 1].max()) > edge_a + 1.0, float(pts[:, 1].max()) < edge_a - 1.0


def test_needle_outside_the_skin_leaving_the_image_where_the_body_is_cut_is_warned_and_ranked_last():
    """New-user trial 2 (B): lung1's best entry lay 1 mm from where the field of view cuts the
    body, and all 87 mm of the needle outside the skin ran beyond the image (an arm may be
    there), with no warning beyond "body truncated ... no entry there"; then (closing note,
    "warned, not ranked") such a path could still rank first. The torso cut at A = 84 mm in
    front of its liver tumour: the test computes each needle's part outside the skin itself.
    Better-scored feasible paths with it exist; every proposal with it is warned and ranked
    after every proposal without it."""
    ct_c, lab_c, edge_a = _cut_anteriorly()
    result = plan(PlanningProblem.build(ct_c, lab_c, "liver_tumor"), k=8)
    p, t = result.problem, result.table
    assert result.feasible and any(tr.side == "anterior" for tr in p.skin.truncations)
    last = result.proposals[-1].score
    better = [i for i in np.flatnonzero(t.feasible) if t.score[i] < last]
    assert any(_hub_beyond(p, t.entry_ras[i], t.target_ras[i], edge_a)[0] for i in better)   # the scene
    flags = []
    for n, m in enumerate(result.proposals, 1):
        out, inside = _hub_beyond(p, m.entry_ras, m.target_ras, edge_a)
        said = [w for w in result.warnings if w.startswith(f"proposal {n}:") and "beyond the image at its anterior" in w]
        if out:
            assert said and "ranked after every proposal without a finding" in said[0], (n, said)
        if inside:
            assert not said, n
        flags.append(out)
    assert flags == sorted(flags), flags         # no proposal with the finding before one without
    assert not flags[0]
    d = result.to_dict()
    assert "findings_ranked_last" in d["rules"]
    assert [bool(q["findings_ranked_last"]) for q in d["proposals"]][:flags.count(False)] == [False] * flags.count(False)


def _torso_with_paravertebral_lungs(lesion_ras=None, radius_mm=7.0, name="mediastinal_mass", vertebra=True):
    """The torso without its aorta (no great vessel labelled), its lungs reaching back beside
    the vertebral body into the paravertebral gutters (as real lungs do), so that the lungs'
    convex hull takes in the vertebral body and the tissue behind it."""
    ct, lab = _torso_without_great_vessels(lesion_ras or (0.0, 20.0, 70.0), radius_mm, name)
    arr, hu = lab.array.copy(), ct.array.copy()
    inv = {n: v for v, n in lab.labels.items()}
    x, y, z = lab.kji_to_world(np.stack(np.indices(arr.shape), -1).reshape(-1, 3).astype(float)).T
    gutter = ((np.abs(x) >= 24) & (np.abs(x) <= 60) & (y >= -92) & (y <= -40) & (z > 50) & (z <= 95)).reshape(arr.shape)
    gutter &= arr == inv["body"]
    right = gutter & (x.reshape(arr.shape) > 0)
    arr[right], arr[gutter & ~right] = inv["lung_lower_lobe_right"], inv["lung_lower_lobe_left"]
    hu[gutter] = -850
    if not vertebra:
        arr[arr == inv["vertebrae_L1"]] = inv["body"]
    names = dict(lab.labels) if vertebra else {k: n for k, n in lab.labels.items() if n != "vertebrae_L1"}
    return ct.with_array(hu), lab.with_array(arr, labels=names)


def test_back_approach_behind_the_vertebral_body_is_not_mediastinum_but_the_front_still_is():
    """New-user trial 3: every prone back approach to a vertebral body was warned (28-37 mm of
    'mediastinum' on lung2): the lungs' hull takes in the spine and the paravertebral muscles.
    The mediastinum ends at the front of the spine (ITMIG: 1 cm behind the vertebral bodies'
    anterior margin). Straight paths in the axial plane z = 70 mm, figures from the geometry:
    the vertebral body spans A -86..-54 mm at x = 0."""
    from imagio.planning.mediastinum import Mediastinum

    ct, lab = _torso_with_paravertebral_lungs()
    prob = PlanningProblem.build(ct, lab, "mediastinal_mass")
    med = Mediastinum(prob)
    back = [(0.0, -99.0, 70.0), (0.0, -58.0, 70.0)]          # skin -> into the vertebral body
    para = [(40.0, -99.0, 70.0), (20.0, -66.0, 70.0)]        # beside the spine, stops behind its front
    front = [(0.0, 97.0, 70.0), (0.0, 28.0, 70.0)]           # sternum -> prevascular space -> the mass
    mm, uncut, _ = med.runs(np.array([back[0], para[0], front[0]]), np.array([back[1], para[1], front[1]]))
    assert _between_lungs_mm(lab, *back, 0) >= 10.0          # the old hull region: lung on both sides
    assert mm[0] < 1.0 and mm[1] < 1.0 and not uncut[:2].any()
    assert mm[2] >= 0.8 * (97.0 - 28.0 - 22.0)               # front: sternum to the mass, minus the chest wall
    # without a vertebra label (fallback): the region runs to the back of the hull, and says so
    ct2, lab2 = _torso_with_paravertebral_lungs(vertebra=False)
    med2 = Mediastinum(PlanningProblem.build(ct2, lab2, "mediastinal_mass"))
    mm2, uncut2, _ = med2.runs(np.array([back[0]]), np.array([back[1]]))
    assert mm2[0] >= 10.0 and uncut2[0]


def test_prone_vertebral_target_plans_are_not_warned_as_mediastinum():
    ct, lab = _torso_with_paravertebral_lungs()
    result = plan(PlanningProblem.build(ct, lab, (0.0, -72.0, 70.0),
                                        constraints=Constraints(patient_position="prone")))
    assert result.feasible
    tv = int(lab.array[tuple(np.rint(lab.world_to_kji(np.array([[0.0, -72.0, 70.0]]))[0]).astype(int))])
    for n, m in enumerate(result.proposals, 1):
        assert np.asarray(m.entry_ras)[1] < -60.0                      # a back approach
        assert not _warned(result, n), [w for w in result.warnings if "mediastinal" in w]


def test_one_lung_label_map_says_the_mediastinum_cannot_be_judged():
    """A hemithorax crop (the right half of the torso): the lungs' hull covers one lung only."""
    ct, lab = _torso_without_great_vessels((75.0, 0.0, 70.0), radius_mm=6.0, name="lung_nodule")
    r_axis = int(np.argmax(np.abs(ct.direction[0, ::-1])))
    idx = np.zeros((ct.shape[r_axis], 3))
    idx[:, r_axis] = np.arange(ct.shape[r_axis])
    keep = np.flatnonzero(ct.kji_to_world(idx)[:, 0] >= 5.0)
    lo, hi = [0, 0, 0], list(ct.shape)
    lo[r_axis], hi[r_axis] = int(keep.min()), int(keep.max()) + 1
    result = plan(PlanningProblem.build(ct.crop(lo, hi), lab.crop(lo, hi), "lung_nodule"))
    assert any(w.startswith("only the right lung is labelled") for w in result.warnings)
    # no airway is labelled in the torso: on a crop the bronchi may hide in the lung label (trial 13 H1)
    assert any(w.startswith("no airway (trachea or bronchus) is labelled") for w in result.warnings)
    full = plan(PlanningProblem.build(ct, lab, "lung_nodule"))
    assert not any(w.startswith("only the") and "lung is labelled" in w for w in full.warnings)
    assert not any(w.startswith("no airway") for w in full.warnings)


def test_plan_warnings_are_computed_once_and_again_when_the_plan_changes(monkeypatch):
    """Closing note ("repeated work"): `Plan.warnings` recomputed the mediastinum hulls and the
    dense-tissue clearances on every access (the web app's summary reads it often). Counted
    here: the CT density clearances asked per access."""
    from imagio.planning.density import DenseTissue

    ct, lab = _torso_without_great_vessels((0.0, 20.0, 70.0))
    result = plan(PlanningProblem.build(ct, lab, "mediastinal_mass"))
    calls = []
    orig = DenseTissue.clearance
    monkeypatch.setattr(DenseTissue, "clearance", lambda self, *a, **k: calls.append(1) or orig(self, *a, **k))
    first = result.warnings
    n_first = len(calls)
    assert n_first == len(result.proposals) > 0
    assert result.warnings == first and len(calls) == n_first          # cached: no new clearance
    result.to_dict()
    assert len(calls) == n_first
    result.proposals = result.proposals[:2]                             # the plan changes: recomputed
    again = result.warnings
    assert len(calls) == n_first + 2
    assert not any(w.startswith(("proposal 3:", "proposal 4:", "proposal 5:")) for w in again)


def test_tables_say_why_a_better_scored_proposal_is_ranked_after_another():
    """Trial LOW: the web panel and the Slicer metrics table showed a proposal with a lower
    (better) score ranked after one with a higher score and did not say why (a finding defers
    it). Both tables now carry each proposal's findings; checked against the test's own
    geometry (`_hub_beyond`: the needle part outside the skin passes the image's anterior face)."""
    slicer = pytest.importorskip("slicer")

    from imagio.mrml.planning import plan_to_scene
    from imagio.web.content import proposal_rows

    ct_c, lab_c, edge_a = _cut_anteriorly()
    result = plan(PlanningProblem.build(ct_c, lab_c, "liver_tumor"), k=20)   # enough to reach deferred ones
    out = [_hub_beyond(result.problem, m.entry_ras, m.target_ras, edge_a)[0] for m in result.proposals]
    assert any(out) and not all(out)
    rows = proposal_rows(result)
    assert ["unimaged needle" in r["findings"] for r in rows] == out
    assert [r["findings"] == "-" for r in rows] == [not o for o in out]
    scene = slicer.vtkMRMLScene()
    table = scene.GetNodeByID(plan_to_scene(scene, result)["table"]).GetTable()
    metric = [table.GetValue(i, 0).ToString() for i in range(table.GetNumberOfRows())]
    i = metric.index("ranked_last_for")
    said = [table.GetValue(i, c).ToString() for c in range(1, table.GetNumberOfColumns())]
    assert ["unimaged needle" in s for s in said] == out


def test_a_path_through_the_mediastinum_still_warns_of_unlabelled_tissue_outside_it():
    """New-user trial 38 M3: a proposal with the mediastinum finding was said only as "30 mm of
    mediastinal soft tissue" while 115 mm of its path ran through unlabelled abdominal tissue
    below the lungs: the organ warning was skipped for any proposal with that finding. Here the
    liver is left in the body label (a map of the default structure set) and the entries are
    held to the anterior abdominal wall, so every path to a mass between the lung bases climbs
    through the unlabelled liver (z < 50 mm, below the lungs) and then between the lungs."""
    ct, lab = _torso_without_great_vessels((0.0, 10.0, 70.0))
    inv = {n: v for v, n in lab.labels.items()}
    arr = lab.array.copy()
    arr[np.isin(arr, [inv["liver"], inv["liver_tumor"]])] = inv["body"]
    lab = lab.with_array(arr, labels={v: n for v, n in lab.labels.items() if n not in ("liver", "liver_tumor")})
    c = Constraints(entry_region=(np.array([10.0, 100.0, -20.0]), 30.0), max_craniocaudal_deg=None,
                    max_skin_angle_deg=80.0)
    from imagio.planning.problem import Needle

    result = plan(PlanningProblem.build(ct, lab, "mediastinal_mass", constraints=c, needle=Needle(length_mm=250.0)))
    assert result.feasible
    flagged = result.proposal_finding_names()
    assert any("mediastinum" in f for f in flagged), flagged
    for n, f in enumerate(flagged, 1):
        if "mediastinum" not in f:
            continue
        assert _warned(result, n), (n, result.warnings)
        soft = [w for w in result.warnings if w.startswith(f"proposal {n}: crosses") and "unlabelled soft tissue" in w]
        assert soft and "an organ may be unlabelled" in soft[0], (n, result.warnings)
        middle = [float(x) for x in soft[0].split("middle at [")[1].split("]")[0].split(",")]
        assert middle[2] < 50.0, soft   # below the lungs (they start at z = 50): outside the mediastinum
