"""A needle aimed at one lesion must not run through another: new-user trial 19 planned a path to
lung_nodule_3 on the chest CTA that ran 18.5 mm through lung_nodule_2 (plan.json listed it in the
lengths) with no warning, because every lesion kept its catalogue role 'target' (passable) when
it was not the target. Other lesions are now kept out (``targets.other_lesion_role``); a user
who means to cross one says so with a role. The geometry is built in RAS on an oblique, flipped,
anisotropic grid; the independent check samples the label map along each proposed needle."""

import json

import numpy as np
import pytest
from conftest import block_in_air, rotation

from imagio.planning import PlanningProblem, plan
from imagio.volume import Volume

A, B, C = 3, 4, 5   # label values: the target tumour and two others


def _liver_with_three_tumours(direction, names=("liver", "liver_tumor_1", "liver_tumor_2", "liver_tumor_3"),
                              b_y=-30.0):
    """A soft-tissue block (liver, 60 HU) in air; tumour A (radius 10 mm) at the RAS origin, the
    nearest skin 60 mm away along A-P; tumours B and C (radius 12 mm) 30 mm behind and in front
    of it (B at A = ``b_y``), on the shortest routes."""
    ref, (x, y, z), body = block_in_air((2.3, 1.6, 2.9), (110, 100, 80), direction, (110, 60, 100))
    lab = np.where(body, 2, 0).astype(np.uint8)
    lab[x ** 2 + y ** 2 + z ** 2 <= 10.0 ** 2] = A
    lab[x ** 2 + (y - b_y) ** 2 + z ** 2 <= 12.0 ** 2] = B
    lab[x ** 2 + (y - 30) ** 2 + z ** 2 <= 12.0 ** 2] = C
    rng = np.random.default_rng(0)
    ct = np.where(body, 60, -1000) + np.where(lab >= A, -25, 0) + rng.normal(0, 8, lab.shape)
    names = dict(zip((2, A, B, C), names))
    return ref.with_array(ct.astype(np.int16)), Volume(lab, ref.ijk_to_ras, "labels", names)


def _labels_along(lab: Volume, entry, target, radius_mm: float) -> set:
    """Label values within ``radius_mm`` of the segment entry -> target (RAS mm), sampled every
    0.25 mm on the axis and on two rings of 8 points (nearest voxel)."""
    e, t = np.asarray(entry, float), np.asarray(target, float)
    d = (t - e) / np.linalg.norm(t - e)
    u = np.cross(d, [1.0, 0.0, 0.0] if abs(d[0]) < 0.9 else [0.0, 1.0, 0.0])
    u /= np.linalg.norm(u)
    w = np.cross(d, u)
    s = np.arange(0.0, np.linalg.norm(t - e), 0.25)[:, None]
    ang = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    ring = np.concatenate([[[0.0, 0.0, 0.0]]] + [r * (np.cos(ang)[:, None] * u + np.sin(ang)[:, None] * w)
                                                 for r in (0.5 * radius_mm, radius_mm)])
    pts = (e + s * d)[:, None, :] + ring[None]
    pts = pts.reshape(-1, 3)
    pts = pts[lab.contains_world(pts)]
    return set(np.unique(lab.sample(pts, order=0)).astype(int).tolist())


@pytest.mark.parametrize("grid", ["axial", "oblique"])
def test_path_to_one_tumour_does_not_cross_another(grid, tmp_path):
    d = np.eye(3) if grid == "axial" else rotation((1.0, 2.0, 3.0), 20.0) @ np.diag([1.0, -1.0, 1.0])
    ct, lab = _liver_with_three_tumours(d)
    prob = PlanningProblem.build(ct, lab, "liver_tumor_1")
    result = plan(prob)
    doc = json.loads(result.write_json(tmp_path / "plan.json").read_text())
    assert doc["proposals"], doc.get("warnings")
    r = prob.needle.widening_mm
    for p in doc["proposals"]:
        crossed = _labels_along(lab, p["entry_ras"], p["target_ras"], r)
        assert not crossed & {B, C}, (p["entry_ras"], crossed)
    kept = doc["rules"]["other_lesions"]["kept_out"]
    assert sorted(kept) == ["liver_tumor_2", "liver_tumor_3"], doc["rules"].get("other_lesions")
    # the straight anterior route through tumour 3 is rejected by the verifier, unless a user who
    # means to cross it says so with a role (the table lies behind a supine patient)
    from imagio.planning.verify import Verifier

    entry, target = np.array([0.0, 60.0, 0.0]), np.array([0.0, 0.0, 0.0])
    assert C in _labels_along(lab, entry, target, 0.0)
    assert any("liver_tumor_3" in q for q in Verifier(prob).verify(entry, target).problems)
    prob2 = PlanningProblem.build(ct, lab, "liver_tumor_1", roles={"liver_tumor_3": "passable"})
    assert not any("liver_tumor_3" in q for q in Verifier(prob2).verify(entry, target).problems)
    assert prob2.rules_extra["other_lesions"]["kept_out"] == ["liver_tumor_2"]
    assert any("made passable by --role: liver_tumor_3" in w for w in prob2.warnings), prob2.warnings


def test_unknown_lesion_names_are_kept_out_and_unknown_structures_said(tmp_path):
    """New-user trial 20: the same label map with the other tumours named metastasis_2 and GTV_3
    (names the catalogue does not know) was planned through them with no word. A name of the
    field's lesion vocabulary (targets.lesion_name_hints) is a lesion; any other unknown name
    ("Leber" for the liver) is kept out, the host entered, and the plan says so. Independent
    check as above."""
    d = rotation((1.0, 2.0, 3.0), 20.0) @ np.diag([1.0, -1.0, 1.0])
    ct, lab = _liver_with_three_tumours(d, ("Leber", "liver_tumor_1", "metastasis_2", "GTV_3"))
    prob = PlanningProblem.build(ct, lab, "liver_tumor_1")
    doc = json.loads(plan(prob).write_json(tmp_path / "plan.json").read_text())
    assert sorted(doc["rules"]["other_lesions"]["kept_out"]) == ["GTV_3", "metastasis_2"]
    for p in doc["proposals"]:
        crossed = _labels_along(lab, p["entry_ras"], p["target_ras"], prob.needle.widening_mm)
        assert not crossed & {B, C}, (p["entry_ras"], crossed)
    said = [w for w in doc["warnings"] if "not in IMAGIO's catalogue" in w]
    assert len(said) == 1 and "Leber" in said[0] and "GTV_3" not in said[0], doc["warnings"]


def test_unknown_structures_are_kept_out_unless_given_a_role(tmp_path):
    """Final review of stop 31: a structure whose name IMAGIO cannot read ("Herz", "target2")
    was passable, only a warning said so; it could be an organ at risk or a second lesion.
    Now it is kept out (``targets.unknown_structure_role``) and listed; the unknown organ that
    holds the target ("Leber") is entered as the host; --role NAME=passable crosses one on
    purpose. Independent check: the label map sampled along each proposed needle."""
    d = rotation((1.0, 2.0, 3.0), 20.0) @ np.diag([1.0, -1.0, 1.0])
    ct, lab = _liver_with_three_tumours(d, ("Leber", "liver_tumor_1", "Herz", "target2"))
    prob = PlanningProblem.build(ct, lab, "liver_tumor_1")
    doc = json.loads(plan(prob).write_json(tmp_path / "plan.json").read_text())
    assert doc["proposals"], doc["warnings"]
    for p in doc["proposals"]:
        crossed = _labels_along(lab, p["entry_ras"], p["target_ras"], prob.needle.widening_mm)
        assert not crossed & {B, C}, (p["entry_ras"], crossed)
        assert 2 in crossed   # the host, Leber, is entered
    said = [w for w in doc["warnings"] if "not in IMAGIO's catalogue" in w]
    assert len(said) == 1 and all(n in said[0] for n in ("Herz", "target2", "Leber")), doc["warnings"]
    assert any("lies in Leber" in w for w in doc["warnings"]), doc["warnings"]
    from imagio.planning.verify import Verifier

    entry, target = np.array([0.0, 60.0, 0.0]), np.array([0.0, 0.0, 0.0])   # straight through C
    assert any("target2" in q for q in Verifier(prob).verify(entry, target).problems)
    prob2 = PlanningProblem.build(ct, lab, "liver_tumor_1", roles={"target2": "passable"})
    assert not any("target2" in q for q in Verifier(prob2).verify(entry, target).problems)


def test_point_at_a_tumours_edge_aims_at_that_tumour(tmp_path):
    """A target point clicked just outside a tumour's label (0.8 mm, closer than the needle's
    radius + placement uncertainty) aims at that tumour: it is not 'another lesion' (a path
    cannot keep clear of it there, and the web test's click at a tumour's edge got 0 proposals);
    the other tumours are still kept out."""
    d = rotation((1.0, 2.0, 3.0), 20.0) @ np.diag([1.0, -1.0, 1.0])
    ct, lab = _liver_with_three_tumours(d)
    point = np.array([10.8, 0.0, 0.0])
    assert int(lab.sample(point[None], order=0)[0]) != A
    prob = PlanningProblem.build(ct, lab, point)
    assert sorted(prob.rules_extra["other_lesions"]["kept_out"]) == ["liver_tumor_2", "liver_tumor_3"]
    result = plan(prob)
    assert result.proposals, result.warnings
    for p in result.proposals:
        assert not _labels_along(lab, p.entry_ras, p.target_ras, prob.needle.widening_mm) & {B, C}


def _oblique():
    return rotation((1.0, 2.0, 3.0), 20.0) @ np.diag([1.0, -1.0, 1.0])


def _centre_distance(lab: Volume, value: int, point) -> float:
    """Own distance (mm) from an RAS point to the nearest voxel centre of a label value."""
    kji = np.argwhere(lab.array == value).astype(float)
    return float(np.min(np.linalg.norm(lab.kji_to_world(kji) - np.asarray(point, float), axis=1)))


def test_point_inside_one_tumour_keeps_a_close_neighbour_out(tmp_path):
    """New-user trial 21 (HIGH): a target point inside one tumour exempted every lesion within the
    needle's reach of it, and paths ran 11-16 mm through a neighbour 3 mm away with no word. A
    point inside a lesion aims at that lesion only; the neighbour is kept out and the plan says
    it lies that close."""
    ct, lab = _liver_with_three_tumours(_oblique(), b_y=-24.0)   # A and B 2 mm apart
    point = np.array([0.0, -8.3, 0.0])   # 1.7 mm inside A, towards B
    assert int(lab.sample(point[None], order=0)[0]) == A
    prob = PlanningProblem.build(ct, lab, point)
    assert _centre_distance(lab, B, point) <= prob.needle.widening_mm + 0.5 * np.linalg.norm(lab.spacing)
    assert sorted(prob.rules_extra["other_lesions"]["kept_out"]) == ["liver_tumor_2", "liver_tumor_3"]
    assert any(w.startswith("liver_tumor_2 lies") for w in prob.warnings), prob.warnings
    result = plan(prob)
    assert result.proposals, result.warnings
    for p in result.proposals:
        assert not _labels_along(lab, p.entry_ras, p.target_ras, prob.needle.widening_mm) & {B, C}


def test_point_between_two_tumours_aims_at_the_nearer():
    """A point in no lesion within the needle's reach of two: the nearer (own distance to voxel
    centres) is aimed at and said; the other is kept out and said."""
    ct, lab = _liver_with_three_tumours(_oblique(), b_y=-25.0)
    point = np.array([0.0, -10.7, 0.0])
    assert int(lab.sample(point[None], order=0)[0]) == 2
    da, db = _centre_distance(lab, A, point), _centre_distance(lab, B, point)
    near, far = ("liver_tumor_1", "liver_tumor_2") if da < db else ("liver_tumor_2", "liver_tumor_1")
    prob = PlanningProblem.build(ct, lab, point)
    kept = prob.rules_extra["other_lesions"]["kept_out"]
    assert far in kept and near not in kept, (da, db, kept)
    assert any(f"outside {near}" in w for w in prob.warnings), prob.warnings
    assert any(w.startswith(f"{far} lies") for w in prob.warnings), prob.warnings


@pytest.mark.parametrize("by", ["name", "point in the smaller piece"])
def test_one_label_of_two_tumours_is_two_lesions(by, tmp_path):
    """New-user trial 21 (HIGH): one label holding two separate tumours (LiTS' 'tumor') was aimed
    at the union's centroid, 5.7 mm off one tumour, and paths ran 6-13 mm through the other. The
    plan now aims at one piece (the largest, or the one holding the point), keeps the others out
    as other lesions and says so. Independent check: the original two-value label map sampled
    along each proposal."""
    ct, lab = _liver_with_three_tumours(_oblique(), b_y=-26.0)
    merged = lab.with_array(np.where(lab.array == B, A, lab.array),
                            labels={2: "liver", A: "liver_tumor", C: "liver_tumor_3"})
    target = "liver_tumor" if by == "name" else np.array([0.0, 0.0, 2.0])   # inside A (r 10)
    prob = PlanningProblem.build(ct, merged, target)
    aimed, other = (B, A) if by == "name" else (A, B)   # B (r 12) is the larger piece
    assert int(lab.sample(np.asarray(prob.target.point_ras)[None], order=0)[0]) == aimed
    assert "liver_tumor_part2" in prob.rules_extra["other_lesions"]["kept_out"]
    assert any("liver_tumor is 2 separate pieces" in w for w in prob.warnings), prob.warnings
    assert merged.array[lab.array == B].min() == A   # the input is not modified
    result = plan(prob)
    assert result.proposals, result.warnings
    for p in result.proposals:
        crossed = _labels_along(lab, p.entry_ras, p.target_ras, prob.needle.widening_mm)
        assert other not in crossed and C not in crossed, (by, p.entry_ras, crossed)


def test_lesion_names_and_the_unknown_names_warning():
    """New-user trial 21 (LOW): masseter_left (a TotalSegmentator head muscle) was a lesion by the
    'mass' substring; IMAGIO's own calibre split lung_vessels_small and the target itself were
    listed as unknown structures."""
    from imagio.planning.problem import (_other_lesions_kept_out, named_like_a_lesion, resolve_target,
                                         structure_specs)

    assert not named_like_a_lesion("masseter_left")
    assert all(named_like_a_lesion(n) for n in ("mass1", "Mass_L", "GTVp", "GTV_3", "metastasis_4",
                                                "LiverTumor", "hcc_2", "nodules"))
    assert not any(named_like_a_lesion(n) for n in ("Herz", "target2", "lung_vessels_small", "liver"))
    names = {1: "liver", 2: "target2", 3: "lung_vessels_small", 4: "masseter_left", 5: "Herz", 6: "GTVp"}
    arr = np.zeros((8, 8, 8), np.uint8)
    for v in names:
        arr[v, :, :] = v
    lab = Volume(arr, np.eye(4), "labels", names)
    specs = structure_specs(lab)
    tgt = resolve_target(lab, "target2")
    specs, kept, unknown, notes = _other_lesions_kept_out(specs, tgt, {}, lab, 3.0)
    assert kept == ["GTVp"] and sorted(unknown) == ["Herz", "masseter_left"], (kept, unknown)
    assert "target2" not in unknown and "lung_vessels_small" not in unknown
    roles = {s.name: s.role for s in specs}
    assert roles["Herz"] == "forbidden" and roles["GTVp"] == "forbidden"


def test_report_names_the_other_lesions_and_what_each_path_runs_through():
    """New-user trial 21 (MEDIUM): the PDF/HTML report never named the lesions kept out, nor what
    a trajectory runs through (a path crossed 14 mm of a lesion made passable with no row)."""
    from imagio.report import sections

    ct, lab = _liver_with_three_tumours(_oblique())
    prob = PlanningProblem.build(ct, lab, "liver_tumor_1", roles={"liver_tumor_3": "passable"})
    doc = plan(prob).to_dict()
    secs = dict(sections(doc, {}))
    rules = dict(secs["Rules used"])
    assert rules["other lesions kept out"].startswith("liver_tumor_2 "), rules
    table = secs["Proposed trajectories"][0]
    runs = next(r for r in table[2] if r[0] == "runs through (mm)")
    for cell, p in zip(runs[1:], doc["proposals"]):
        for name, mm in p["length_in_mm"].items():
            assert f"{name} {float(mm):.1f}" in cell, (cell, p["length_in_mm"])


def test_cli_lesions_file_merges_detected_nodules_that_are_then_kept_out(tmp_path, capsys):
    """New-user trial 21 (HIGH-5): the screening report's suggested `imagio plan ... --labels
    structures.seg.nrrd --target=R,A,S` had no nodules in its label map, and its best path ran
    11.6 mm through another detected nodule. `--lesions` merges a lesion label map (detect's
    nodules.seg.nrrd) over the structures; a point in one lesion keeps the others out. Own
    sampling of the lesion map along each proposal; the inputs are left unchanged."""
    from imagio import io
    from imagio.cli import main

    ct, lab = _liver_with_three_tumours(_oblique())
    structures = lab.with_array(np.where(lab.array > 0, 2, 0).astype(np.uint8), labels={2: "liver"})
    lesions = lab.with_array(np.where(lab.array >= A, lab.array, 0).astype(np.uint8),
                             labels={A: "lung_nodule_1", B: "lung_nodule_2", C: "lung_nodule_3"})
    io.write_image(ct, tmp_path / "ct.nii.gz")
    io.write_labels(structures, tmp_path / "structures.seg.nrrd")
    io.write_labels(lesions, tmp_path / "nodules.seg.nrrd")
    before = (tmp_path / "structures.seg.nrrd").read_bytes()
    assert main(["plan", str(tmp_path / "ct.nii.gz"), "--labels", str(tmp_path / "structures.seg.nrrd"),
                 "--lesions", str(tmp_path / "nodules.seg.nrrd"), "--target=0,0,2", "--out", str(tmp_path / "p"),
                 "--no-png", "--no-scene", "--quiet"]) == 0
    capsys.readouterr()
    doc = json.loads((tmp_path / "p" / "plan.json").read_text())
    assert sorted(doc["rules"]["other_lesions"]["kept_out"]) == ["lung_nodule_2", "lung_nodule_3"]
    assert doc["inputs"]["lesions"].endswith("nodules.seg.nrrd")
    assert doc["proposals"]
    for p in doc["proposals"]:
        assert not _labels_along(lab, p["entry_ras"], p["target_ras"], 2.65) & {B, C}
    assert (tmp_path / "structures.seg.nrrd").read_bytes() == before


def test_two_labels_with_one_name(tmp_path, capsys):
    """New-user trial 21 (M5): values 200 and 201 both named 'tumor': `imagio info` listed one,
    `plan --target tumor` silently picked one. Now info lists both with a warning, and a target
    by that name is refused in one line (exit 2)."""
    from imagio import io
    from imagio.cli import main

    ct, lab = _liver_with_three_tumours(_oblique())
    arr = lab.array.astype(np.uint8)
    arr = np.where(lab.array == A, 200, np.where(lab.array == B, 201, np.where(lab.array == C, 5, arr))).astype(np.uint8)
    io.write_image(ct, tmp_path / "ct.nii.gz")
    io.write_image(lab.with_array(arr, labels={}), tmp_path / "lab.nii.gz")
    (tmp_path / "names.json").write_text(json.dumps({"2": "liver", "200": "tumor", "201": "tumor", "5": "GTV_3"}))
    io.write_image(lab.with_array(arr, labels={}), tmp_path / "lab2.nii.gz")
    (tmp_path / "lab2.labels.json").write_text(json.dumps({"2": "liver", "200": "tumor", "201": "tumor", "5": "GTV_3"}))
    assert main(["info", str(tmp_path / "lab2.nii.gz"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert sorted(d["value"] for d in info["labels"].values()) == [2, 5, 200, 201], info["labels"]
    assert any("200, 201 are all named 'tumor'" in w for w in info["warnings"]), info["warnings"]
    code = main(["plan", str(tmp_path / "ct.nii.gz"), "--labels", str(tmp_path / "lab.nii.gz"), "--label-names",
                 str(tmp_path / "names.json"), "--target", "tumor", "--out", str(tmp_path / "p"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "names 2 label values (200, 201)" in err[-1], err


def test_role_on_the_target_is_said_to_be_unused():
    """New-user trial 21 (L7): `--role metastasis_4=forbidden` on the target was accepted silently."""
    ct, lab = _liver_with_three_tumours(_oblique())
    prob = PlanningProblem.build(ct, lab, "liver_tumor_1", roles={"liver_tumor_1": "forbidden"})
    assert any(w.startswith("--role liver_tumor_1: liver_tumor_1 is the target") for w in prob.warnings), prob.warnings


def test_every_model_class_has_a_role_and_liver_spellings_keep_the_liver_rules(tmp_path):
    """New-user trial 22 (MEDIUM): with unknown names kept out, IMAGIO's own liver_segments model
    output (liver_segment_1..8) became forbidden (260 -> 36 feasible paths) and lost the liver
    rules, and "Liver" (a Slicer/RTSTRUCT spelling) lost them too. Every class of every model in
    models.json is a catalogue structure; "Liver" is read as liver; the liver rule applies to a
    target in a Couinaud segment."""
    from imagio import anatomy, io
    from imagio.planning.problem import named_like_a_lesion

    models = json.loads((__import__("imagio.data", fromlist=["x"]).__path__[0] + "/models.json"
                         and open(__import__("imagio.data", fromlist=["x"]).__path__[0] + "/models.json").read()))
    for task, spec in models["models"].items():
        for name in (spec.get("classes") or {}).values() if isinstance(spec.get("classes"), dict) else ():
            assert anatomy.is_known(name) or named_like_a_lesion(name), (task, name)
    ct, lab = _liver_with_three_tumours(_oblique())
    io.write_image(lab.with_array(lab.array, labels={}), tmp_path / "lab.nii.gz")
    (tmp_path / "lab.labels.json").write_text(json.dumps({"2": "Liver", "3": "Liver_Tumor_1", "4": "GTV_2",
                                                          "5": "GTV_3"}))
    read = io.read_labels(tmp_path / "lab.nii.gz")
    assert read.labels[2] == "liver" and read.labels[3] == "liver_tumor_1"
    assert any("'Liver' as 'liver'" in w for w in read.warnings), read.warnings
    prob = PlanningProblem.build(ct, read, "liver_tumor_1")
    assert prob.rules["liver_parenchyma"]["applies"], prob.rules
    x = np.asarray(lab.kji_to_world(np.argwhere(np.ones(lab.shape, bool)).astype(float)))[:, 0].reshape(lab.shape)
    seg = np.where(lab.array == 2, np.where(x < 0, 6, 7), lab.array).astype(np.uint8)
    segs = lab.with_array(seg, labels={6: "liver_segment_5", 7: "liver_segment_6", A: "liver_tumor_1",
                                       B: "liver_tumor_2", C: "liver_tumor_3"})
    prob = PlanningProblem.build(ct, segs, "liver_tumor_1")
    assert prob.target.organ.startswith("liver_segment_") and prob.rules["liver_parenchyma"]["applies"]
    assert {s.name: s.role for s in prob.structures}["liver_segment_5"] == "passable"


def test_point_next_to_one_label_of_two_tumours_keeps_the_other_piece_out():
    """New-user trial 22 (HIGH): a point in the 3 mm gap beside a LiTS-style label of two tumours
    made the whole label the aimed lesion; paths ran 11-16 mm through the other tumour. The
    piece nearest the point (own voxel-centre distances) is aimed at, the other kept out."""
    ct, lab = _liver_with_three_tumours(_oblique(), b_y=-25.0)
    merged = lab.with_array(np.where(lab.array == B, A, lab.array),
                            labels={2: "liver", A: "liver_tumor", C: "liver_tumor_3"})
    point = np.array([0.0, -11.0, 0.0])   # 1 mm outside A, 2 mm from B
    assert int(lab.sample(point[None], order=0)[0]) == 2
    da, db = _centre_distance(lab, A, point), _centre_distance(lab, B, point)
    far = B if da < db else A
    prob = PlanningProblem.build(ct, merged, point)
    assert "liver_tumor_part2" in prob.rules_extra["other_lesions"]["kept_out"], prob.rules_extra
    assert any("liver_tumor is 2 separate pieces" in w for w in prob.warnings), prob.warnings
    for p in plan(prob).proposals:
        assert far not in _labels_along(lab, p.entry_ras, p.target_ras, prob.needle.widening_mm)


def test_lesions_file_with_a_name_the_structures_have_and_report_suffix(tmp_path, capsys):
    """New-user trial 22 (LOW): --lesions with a nodule name the structures already had renamed it
    '_added' and left the old label empty ('target has no voxels'); `report --out x.html` wrote
    a PDF under that name. The same name is the same lesion (one structure, both outlines);
    the report's --out must end in .pdf (one line, exit 2)."""
    from imagio import io
    from imagio.cli import main

    ct, lab = _liver_with_three_tumours(_oblique())
    io.write_labels(lab, tmp_path / "structures.seg.nrrd")
    lesions = lab.with_array(np.where(lab.array == A, A, 0).astype(np.uint8), labels={A: "liver_tumor_1"})
    io.write_labels(lesions, tmp_path / "nodules.seg.nrrd")
    merged = io.with_lesions(io.read_labels(tmp_path / "structures.seg.nrrd"), tmp_path / "nodules.seg.nrrd")
    assert list(merged.labels.values()).count("liver_tumor_1") == 1
    v = next(k for k, n in merged.labels.items() if n == "liver_tumor_1")
    assert np.array_equal(merged.array == v, lab.array == A)
    (tmp_path / "plan.json").write_text("{}")
    assert main(["report", str(tmp_path / "plan.json"), "--out", str(tmp_path / "r.html")]) == 2
    assert "name it e.g. r.pdf" in capsys.readouterr().err


def test_names_typed_in_the_users_spelling_still_match(tmp_path):
    """New-user trial 23 (HIGH): the label map's names are read in the catalogue's spelling, but
    --target "Liver_Tumor_1" and --role "Liver_Tumor_3=passable" typed as Slicer showed them were
    refused / ignored (the role even recorded as applied). They match now; a role for a name the
    map lacks is warned and not recorded."""
    from imagio import io

    ct, lab = _liver_with_three_tumours(_oblique())
    io.write_image(lab.with_array(lab.array, labels={}), tmp_path / "lab.nii.gz")
    (tmp_path / "lab.labels.json").write_text(json.dumps({"2": "Liver", "3": "Liver_Tumor_1", "4": "Liver Tumor 2",
                                                          "5": "Liver-Tumor-3"}))
    read = io.read_labels(tmp_path / "lab.nii.gz")
    prob = PlanningProblem.build(ct, read, "Liver_Tumor_1",
                                 roles={"Liver-Tumor-3": "passable", "Stomach": "passable"})
    assert prob.target.name == "liver_tumor_1"
    assert prob.roles_overridden == {"liver_tumor_3": "passable"}, prob.roles_overridden
    assert prob.rules_extra["other_lesions"]["kept_out"] == ["liver_tumor_2"]
    assert any("--role Stomach: no structure" in w for w in prob.warnings), prob.warnings


def test_plan_summary_names_the_other_lesions_kept_out(tmp_path, capsys):
    """New-user trial 43 F5: a second tumour on the first plan's best path was kept out (right),
    said only inside plan.json, although the README says the plan tells it. The summary now
    names every other lesion kept out, the same list as plan.json, and the paths avoid them
    (independent check as above)."""
    from imagio import io
    from imagio.cli import main

    ct, lab = _liver_with_three_tumours(np.eye(3))
    io.write_image(ct, tmp_path / "ct.nii.gz")
    io.write_labels(lab, tmp_path / "lab.seg.nrrd")
    out = tmp_path / "p"
    assert main(["plan", str(tmp_path / "ct.nii.gz"), "--labels", str(tmp_path / "lab.seg.nrrd"),
                 "--target", "liver_tumor_1", "--out", str(out), "--no-png", "--no-scene", "--quiet"]) == 0
    said = [x for x in capsys.readouterr().out.splitlines() if x.startswith("other lesions kept out")]
    doc = json.loads((out / "plan.json").read_text())
    kept = doc["rules"]["other_lesions"]["kept_out"]
    assert sorted(kept) == ["liver_tumor_2", "liver_tumor_3"]
    assert len(said) == 1 and all(n in said[0] for n in kept), said
    for p in doc["proposals"]:
        assert not _labels_along(lab, p["entry_ras"], p["target_ras"], 0.0) & {B, C}
