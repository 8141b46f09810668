"""A target point inside bone (percutaneous bone biopsy): only the final contiguous run of the
path may lie in bone, only the bone piece holding the target is passable, the shortest course in
bone ranks first, and a vertebra without a spinal cord / canal label gets a derived canal and a
warning (trial1 defect 2). The checks here are independent of the planner: they sample the
input label map and CT (written to disk, before the planner changes anything) along the
proposals read back from plan.json."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imagio import io
from imagio.cli import main
from imagio.planning.synthetic import synthetic_torso

BONE = 5   # synthetic torso: the rib rings and the vertebral body share one label (vertebrae_L1)


def _world(vol, x, y, z):
    """kji grids of RAS x, y, z (mm) of every voxel."""
    kk, jj, ii = np.meshgrid(*[np.arange(s) for s in vol.shape], indexing="ij")
    ijk = np.stack([ii, jj, kk], -1).reshape(-1, 3).astype(float)
    ras = ijk @ vol.ijk_to_ras[:3, :3].T + vol.ijk_to_ras[:3, 3]
    return [a.reshape(vol.shape) for a in ras.T]


def _runs(mask):
    """Number of separate True runs of a 1-D bool array."""
    m = np.concatenate([[False], mask, [False]]).astype(np.int8)
    return int(np.count_nonzero(np.diff(m) == 1))


def _profile(vol, entry, target, step=0.25):
    e, t = np.asarray(entry, float), np.asarray(target, float)
    n = max(2, int(np.ceil(np.linalg.norm(t - e) / step)) + 1)
    pts = e + np.linspace(0.0, 1.0, n)[:, None] * (t - e)
    kji = np.rint(vol.world_to_kji(pts)).astype(int)
    kji = np.clip(kji, 0, np.asarray(vol.shape) - 1)
    return vol.array[tuple(kji.T)], np.linalg.norm(t - e) / (n - 1)


def _plan(tmp_path, ct, lab, target, *extra):
    ctp, lp = tmp_path / "ct.nii.gz", tmp_path / "lab.nii.gz"
    io.write_image(ct, ctp)
    io.write_labels(lab, lp)
    out = tmp_path / "p"
    tgt = target if isinstance(target, str) else ",".join(f"{v:.2f}" for v in target)
    rc = main(["plan", str(ctp), "--labels", str(lp), "--target=" + tgt,
               "--out", str(out), "--no-png", "--no-scene", "--quiet", *extra])
    doc = json.loads((out / "plan.json").read_text())
    return rc, doc


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["point", "lesion"])
def test_rib_target_never_crosses_other_bone_and_bone_mm_is_a_cost(tmp_path, kind):
    """Target in one rib; a second piece of the same bone label (a plate, like a scapula over the
    rib) lies over the direct route with soft tissue between: a path through the plate leaves
    bone and re-enters it. Every proposal must run in bone only as its final run, only in the
    target rib, and the mm in bone is a score criterion. Lesion: a labelled 4 mm ball in the rib
    (``tumor``) as the target, the rib its host."""
    ct, lab = synthetic_torso(spacing=2.0)
    target = np.array([117.6, 0.0, 15.0])          # in the rib ring at z = 15 (8 mm thick)
    x, y, z = _world(lab, 0, 0, 0)
    plate = (x >= 126.0) & (x <= 131.0) & (np.abs(y) <= 20.0) & (np.abs(z - 15.0) <= 10.0)
    a, c = lab.array.copy(), ct.array.copy()
    a[plate] = BONE
    c[plate] = 400
    lab, ct = lab.with_array(a), ct.with_array(c)
    this_rib = (lab.array == BONE) & (np.abs(z - 15.0) <= 6.0) & (y > -60) & ~plate
    truth, les = lab, np.zeros(lab.shape, bool)
    if kind == "lesion":
        les = (x - target[0]) ** 2 + (y - target[1]) ** 2 + (z - target[2]) ** 2 <= 4.0 ** 2
        a = lab.array.copy()
        a[les] = 20
        lab = lab.with_array(a, labels={**lab.labels, 20: "tumor"})
        this_rib |= les
    rc, doc = _plan(tmp_path, ct, lab, target if kind == "point" else "tumor")
    assert rc == 0 and doc["proposals"]
    bone_mm = []
    for p in doc["proposals"]:
        tp = np.asarray(p["target_ras"], float)
        v, smm = _profile(truth, p["entry_ras"], tp)
        inb = v == BONE
        # independent: which bone voxels (this rib or another) the samples fall in
        kji = np.clip(np.rint(lab.world_to_kji(
            np.asarray(p["entry_ras"]) + np.linspace(0, 1, len(v))[:, None]
            * (tp - np.asarray(p["entry_ras"])))).astype(int), 0, np.asarray(lab.shape) - 1)
        other = inb & ~this_rib[tuple(kji.T)]
        assert not other.any(), f"proposal crosses another bone: {p['entry_ras']}"
        assert _runs(inb) == 1 and inb[-1], f"bone not one final run: {p['entry_ras']}"
        bone_mm.append(float((inb & ~les[tuple(kji.T)]).sum()) * smm)   # bone around a lesion
    # the mm in bone is a score criterion: its cost matches the independently sampled mm in bone
    crit = next(c for c in doc["criteria"] if c["name"] == "bone_traversal")
    for p, mm in zip(doc["proposals"], bone_mm):
        cost = p["costs"]["bone_traversal"]
        assert abs(crit["lo"] + cost * (crit["hi"] - crit["lo"]) - mm) <= 2.0 * 2.0, (cost, mm)
    assert any("inside vertebrae_L1 (bone)" in w for w in doc["warnings"])
    assert doc["rules"]["target_bone"]["structure"] == "vertebrae_L1"


@pytest.mark.slow
@pytest.mark.parametrize("labelled,grid", [(True, "axial"), (False, "axial"), (True, "oblique")])
def test_vertebral_body_target_never_crosses_the_canal(tmp_path, labelled, grid):
    """A vertebral body with a canal (soft tissue enclosed by bone) and no spinal cord label: no
    proposal may leave the bone and re-enter it (through the canal). Unlabelled (the bone only on
    the CT, 400 HU): refused, naming the fix (label the bone); density cannot tell a bone larger
    than a nodule from contrast-enhanced blood. Oblique: a rotated, flipped, anisotropic grid."""
    from conftest import rotation

    if grid == "axial":
        ct, lab = synthetic_torso(spacing=2.0, ribs=False)
    else:
        d = rotation((1.0, 1.0, 0.0), 20.0) @ np.diag([1.0, -1.0, 1.0])
        ct, lab = synthetic_torso(spacing=(1.8, 2.2, 2.6), direction=d, ribs=False)
    x, y, z = _world(lab, 0, 0, 0)
    canal = (x ** 2 + (y + 76.0) ** 2 <= 5.0 ** 2) & (lab.array == BONE)
    a, c = lab.array.copy(), ct.array.copy()
    a[canal] = 1
    c[canal] = 15
    lab, ct = lab.with_array(a), ct.with_array(c)
    if not labelled:
        lab = lab.with_array(np.where(a == BONE, 1, a).astype(a.dtype))
    target = np.array([0.0, -62.0, 0.0])      # vertebral body, anterior to the canal
    if not labelled:
        # unlabelled bone larger than a nodule cannot be told from contrast-enhanced blood by
        # density (new-user trial 16: the heart's blood pool was planned into as "the target's
        # own calcification"): refused with the fix, labelling the bone (the labelled case)
        io.write_image(ct, tmp_path / "ct.nii.gz")
        io.write_labels(lab, tmp_path / "lab.nii.gz")
        rc = main(["plan", str(tmp_path / "ct.nii.gz"), "--labels", str(tmp_path / "lab.nii.gz"),
                   "--target=" + ",".join(f"{v:.2f}" for v in target), "--out", str(tmp_path / "p"),
                   "--no-png", "--no-scene", "--quiet", "--position", "prone"])
        assert rc == 2 and not (tmp_path / "p" / "plan.json").exists()
        from imagio.errors import InputError
        from imagio.planning import PlanningProblem

        with pytest.raises(InputError, match=r"unlabelled bone.*label the lesion \(or the bone\)"):
            PlanningProblem.build(ct, lab, target)
        return
    rc, doc = _plan(tmp_path, ct, lab, target, "--position", "prone")
    assert doc["proposals"], doc["warnings"]
    for p in doc["proposals"]:
        v, _ = _profile(lab, p["entry_ras"], target)
        inb = v == BONE
        assert _runs(inb) == 1 and inb[-1], f"leaves bone and re-enters: {p['entry_ras']}"
        kji = np.clip(np.rint(lab.world_to_kji(
            np.asarray(p["entry_ras"]) + np.linspace(0, 1, len(v))[:, None]
            * (target - np.asarray(p["entry_ras"])))).astype(int), 0, np.asarray(lab.shape) - 1)
        assert not canal[tuple(kji.T)].any(), f"crosses the canal: {p['entry_ras']}"
    assert any("spinal canal" in w for w in doc["warnings"])


@pytest.mark.data
@pytest.mark.slow
def test_chest_cta_rule_based_labels_rib_and_vertebra_targets(shared_data):
    """New-user trial 1, defect 2: the chest CTA with the project's rule-based labels (one
    ``vertebrae`` and one ``ribs`` label, no spinal cord). A rib target: proposals ran 17, 28, 20
    mm in ribs with the 5 mm course last; a vertebral-body target (prone): proposal 1 left the
    bone, crossed 16 mm of soft tissue (canal / foramen) and re-entered. Checked independently on
    the segmenter's labels (not the planner's copy): every proposal's bone samples form one final
    run, proposal 1 has the least bone (within a voxel), the canal warning is given.

    The rib target is the outer cortex of a right rib in the lateral chest wall at mid-thorax
    (IJK 35, 93, 113), chosen on the CT, not from the segmenter: on the coronal and axial slices
    a ring of cortex (250-600 HU) around marrow (0-120 HU), running antero-posteriorly along the
    wall and curving around the lung, which lies 6-8 mm medial to it; 70 mm below the clavicle.
    (The target used before, RAS (109.2, 135.7, 780.2), lay at 842 HU in a chain of contrast
    blobs above the first rib and 2.6 mm below the clavicle: the right subclavian vein with the
    injection's undiluted contrast, which the earlier rib rule named "ribs".) The raw CT checks
    both here: cortex density at the target, aerated lung within 10 mm medial to it."""
    from imagio.planning import PlanningProblem, plan
    from imagio.planning.problem import Constraints
    from imagio.segmentation.rules import segment
    from scipy.spatial import cKDTree

    ct = io.read_image(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz")
    rib = ct.ijk_to_world(np.array([[35.0, 93.0, 113.0]]))[0]
    hu, smm = _profile(ct, rib, rib + [-10.0, 0.0, 0.0])  # towards the midline (RAS x falls)
    assert hu[0] >= 250 and hu.min() < -500, hu  # cortex, lung within 10 mm medial
    seg = segment(ct)
    bone = [v for v, n in seg.labels.items() if n in ("ribs", "vertebrae", "bone", "sternum")]
    vox = float(max(seg.spacing))
    for target, pos, name in ((tuple(rib), "supine", "ribs"),
                              ((-6.3, 132.7, 783.2), "prone", "vertebrae")):
        t = np.array(target)
        prob = PlanningProblem.build(ct, seg, t, constraints=Constraints(patient_position=pos))
        result = plan(prob)
        assert result.proposals, result.report
        mm = []
        for m in result.proposals:
            v, smm = _profile(seg, m.entry_ras, t)
            inb = np.isin(v, bone)
            assert _runs(inb) == 1 and inb[-1], (name, m.entry_ras)
            mm.append(float(inb.sum()) * smm)
        # the least bone first, among the proposals without a finding ranked last (plan.json),
        # within a voxel or 20 % of it: bone length is one criterion among clearance, length and
        # angles; a solid vertebral body's transpedicular routes all run 25-40 mm in bone, and
        # the defect this guards (trial 1: the 5 mm course of a rib ranked after 17-28 mm ones)
        # is a factor of 3. A later proposal with less bone than that band is a trade-off, not
        # that defect, only when it is worse on both other counts, measured here on the
        # segmenter's labels: a longer path (more of the needle used) and nearer another bone
        # (one the needle must not enter). plan28: with seg29's labels the prone vertebral
        # target's former first proposal (36.9 mm in bone) has its hub rim 2 mm past the cut
        # posterior face of the scan (ranked last, unimaged); the next, 38.2 mm in bone, 130 mm
        # long, 5.3 mm from the derived canal, is first; a 27.2 mm one is second, 140 mm of the
        # 150 mm needle and 3.0 mm from a rib (2.65 mm required)
        doc = result.to_dict()
        ok = [i for i, q in enumerate(doc["proposals"]) if not q["findings_ranked_last"]]
        clean = [mm[i] for i in ok]
        assert clean, (name, mm)
        if clean[0] > max(min(clean) + vox, 1.2 * min(clean)):
            others = np.argwhere(np.isin(seg.array, [v for v, n in seg.labels.items()
                                                     if v in bone and n != name]))
            tree = cKDTree(seg.kji_to_world(others.astype(float)))

            def shape(i):   # (path length, least distance of the path to another bone), mm
                e = np.asarray(result.proposals[i].entry_ras, float)
                pts = e + np.linspace(0.0, 1.0, 400)[:, None] * (t - e)
                return float(np.linalg.norm(t - e)), float(tree.query(pts)[0].min())

            first = shape(ok[0])
            for i, x in zip(ok[1:], clean[1:]):
                if x < clean[0] - max(vox, 0.2 * x):   # less bone beyond the band: worse on both
                    ln, near = shape(i)
                    assert ln > first[0] and near < first[1], (name, mm, first, ln, near)
        assert prob.rules["target_bone"]["structure"] == name
        if name == "vertebrae":
            assert any("spinal canal" in w for w in result.warnings)


def test_a_bone_label_target_does_not_name_itself_as_the_closest_structure():
    """New-user trial 3: `--target vertebrae_L1 --position prone` reported "closest vertebrae_L1
    at 10.9 mm", the target's own label (the path's last part runs inside it). The closest
    structure must be another one, at the distance the test measures from the path to that
    structure's voxels (within a voxel diagonal)."""
    from imagio.planning import PlanningProblem, plan
    from imagio.planning.problem import Constraints
    from imagio.planning.synthetic import synthetic_torso

    ct, lab = synthetic_torso(3.0)
    result = plan(PlanningProblem.build(ct, lab, "vertebrae_L1", constraints=Constraints(patient_position="prone")))
    assert result.feasible
    inv = {n: v for v, n in lab.labels.items()}
    diag = float(np.linalg.norm(ct.spacing))
    for m in result.proposals:
        assert m.closest_structure and m.closest_structure != "vertebrae_L1"
        vox = lab.kji_to_world(np.argwhere(lab.array == inv[m.closest_structure]).astype(float))
        e, t = np.asarray(m.entry_ras), np.asarray(m.target_ras)
        pts = e + np.linspace(0, 1, 200)[:, None] * (t - e)
        d = min(float(np.min(np.linalg.norm(vox - q, axis=1))) for q in pts[::4])
        assert abs(d - m.closest_clearance_mm) <= diag, (m.closest_structure, d, m.closest_clearance_mm)
