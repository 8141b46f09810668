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


def _liver_with_three_tumours(direction, names=("liver", "liver_tumor_1", "liver_tumor_2", "liver_tumor_3")):
    """A soft-tissue block (liver, 60 HU) in air; tumour A (radius 10 mm) at the RAS origin, the
    nearest skin 60 mm away along A-P; tumours B and C (radius 12 mm) 30 mm in front of and
    behind it, on the shortest routes."""
    ref, (x, y, z), body = block_in_air((2.3, 1.6, 2.9), (110, 100, 80), direction, (110, 60, 100))
    lab = np.where(body, 2, 0).astype(np.uint8)
    lab[x ** 2 + y ** 2 + z ** 2 <= 10.0 ** 2] = A
    lab[x ** 2 + (y + 30) ** 2 + z ** 2 <= 12.0 ** 2] = B
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
    ("Leber" for the liver) stays passable and the plan says so. Independent check as above."""
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
