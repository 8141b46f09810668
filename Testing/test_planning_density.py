"""The planner must not trust the label map: a rib the segmentation missed is still bone on the CT.

Each test erases bone from the label map but keeps the CT, plans, and checks the proposals read
back from plan.json with its own sampling (nearest voxel every 0.2 voxel along entry -> target):
no proposal crosses the CT above cortical-bone density, nor a voxel of the erased bone, and the
plan says that the label map misses dense tissue. The old planner (before the CT density check)
sent 2 of the 5 proposals to the phantom's first lung nodule through an unlabelled rib (this
file fails on it), and on the
chest CTA's left hemithorax crop 4 of 5 proposals crossed a rib with no warning (new-user trial 6).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from imagio.planning import PlanningProblem, plan
from imagio.planning.problem import Needle

phantom = pytest.importorskip("imagio.phantom")

CORTICAL_HU = 700.0   # cortical bone is about +700 to +1900 HU (the phantom's cortex: 900 HU)


@pytest.fixture(scope="module")
def ph():
    return phantom.generate(spacing=3.0, seed=0)


def _erase(lab, prefixes=("rib_", "costal", "sternum")):
    """The label map with the structures named ``prefixes*`` set to 0 (unlabelled); their mask."""
    vals = [v for v, n in lab.labels.items() if n.startswith(prefixes)]
    gone = np.isin(lab.array, vals)
    arr = np.where(gone, 0, lab.array).astype(lab.array.dtype)
    return lab.with_array(arr, labels={v: n for v, n in lab.labels.items() if v not in vals}), gone


def _along(vol, arr, entry, target, step_vox=0.2):
    """``arr`` (on ``vol``'s grid) at the nearest voxel every ``step_vox`` of the smallest voxel
    side along entry -> target, and the distance of each sample from the entry (mm)."""
    e, t = np.asarray(entry, float), np.asarray(target, float)
    length = float(np.linalg.norm(t - e))
    n = int(np.ceil(length / (step_vox * float(min(vol.spacing))))) + 1
    f = np.linspace(0.0, 1.0, n)
    kji = np.rint(vol.world_to_kji(e + f[:, None] * (t - e))).astype(int)
    kji = np.clip(kji, 0, np.array(vol.shape) - 1)
    return arr[tuple(kji.T)], f * length


def _check(ct, bone, doc, entry_skip_mm):
    """Proposals of ``doc`` (plan.json): none crosses CT > CORTICAL_HU or a voxel of ``bone``
    beyond the entry's first ``entry_skip_mm`` (skin partial volume)."""
    for p in doc["proposals"]:
        hu, s = _along(ct, ct.array, p["entry_ras"], p["target_ras"])
        on_bone, _ = _along(ct, bone, p["entry_ras"], p["target_ras"])
        deep = s > entry_skip_mm
        assert hu[deep].max() <= CORTICAL_HU, (p["entry_ras"], float(hu[deep].max()))
        assert not on_bone[deep].any(), (p["entry_ras"], "crosses the erased bone")


def _plan_doc(ct, lab, target, tmp_path, name):
    # the CT density check alone: the throw past the tip (`findings.beyond_tip`) not checked, so
    # the ranking it defers does not move the proposals these tests place between the ribs
    prob = PlanningProblem.build(ct, lab, target, needle=Needle(beyond_tip_mm=0.0))
    result = plan(prob)
    path = result.write_json(tmp_path / f"{name}.json")
    return result, json.loads(path.read_text())


def _target(ph, name):
    les = next(l for l in ph.lesions if l.name == name)
    return les.name if les.name in ph.labels.labels.values() else les.center_ras


@pytest.mark.parametrize("lesion", ["lung_nodule_1", "liver_tumor_2"])
def test_unlabelled_ribs_are_kept_out_and_said(ph, tmp_path, lesion):
    """Ribs, costal cartilages and sternum erased from the phantom's labels, the CT unchanged:
    the proposals to a lung nodule and a liver tumour (before this check 2 and 1 of their 5
    proposals crossed an unlabelled rib) cross no rib and no CT voxel above cortical density;
    the next-best paths are proposed; the plan names the unlabelled dense tissue."""
    lab, _ = _erase(ph.labels)
    result, doc = _plan_doc(ph.ct, lab, _target(ph, lesion), tmp_path, lesion)
    assert result.feasible, result.report   # next-best paths between the ribs remain
    # the bone the CT density check can see: ribs and sternum (the phantom's costal cartilage,
    # 100-200 HU, is soft-tissue density: no CT threshold tells it, and with ribs and sternum
    # erased too `cartilage.costal_warnings` has no bones to place it by; with the throw past the
    # tip checked, proposal 5 to lung_nodule_1 crosses it)
    _, bone = _erase(ph.labels, ("rib_", "sternum"))
    _check(ph.ct, bone, doc, float(np.linalg.norm(ph.ct.spacing)))
    assert any("unlabelled dense tissue" in w for w in doc["warnings"]), doc["warnings"]
    assert doc["report"]["excluded_by"]["dense_tissue"]["violating"] > 0
    assert len(doc["proposals"]) == 5
    near = _near_warned(ph.ct, bone, doc, result.problem.needle.widening_mm)
    assert lesion != "lung_nodule_1" or near > 0   # between the ribs: some proposal runs close to one


def _near_warned(ct, bone, doc, widening_mm, within_mm=1.0):
    """Each proposal that passes within ``widening_mm + within_mm`` of the erased (unlabelled) bone,
    measured here from dense samples to the bone voxel centres minus half a voxel, is named in a
    per-proposal warning (the label-based closest structure cannot see it). Returns how many."""
    from scipy.spatial import cKDTree

    tree = cKDTree(ct.kji_to_world(np.argwhere(bone).astype(float)))
    half, skip, n_near = 0.5 * float(min(ct.spacing)), float(np.linalg.norm(ct.spacing)), 0
    for n, p in enumerate(doc["proposals"], 1):
        e, t = np.asarray(p["entry_ras"]), np.asarray(p["target_ras"])
        f = np.linspace(0.0, 1.0, 400)[:, None]
        pts = e + f * (t - e)
        pts = pts[np.linalg.norm(pts - e, axis=1) > skip]
        gap = float(tree.query(pts)[0].min()) - half
        said = [w for w in doc["warnings"] if w.startswith(f"proposal {n}: unlabelled dense tissue")]
        if gap < widening_mm + within_mm - 0.3:     # 0.3 mm: this check's coarser sampling
            n_near += 1
            assert said, (n, gap, doc["warnings"])
    return n_near


def test_unlabelled_ribs_on_an_oblique_flipped_anisotropic_grid(ph, tmp_path):
    """The same erased map and CT resampled onto a grid rotated 20 degrees about an oblique axis,
    2.5 x 3.0 x 3.5 mm, then flipped on two axes: the proposals still avoid every CT voxel above
    cortical density and the erased ribs (checked on the resampled arrays) for the lung nodule
    whose proposals crossed a rib before this check."""
    from test_planning_safety import _flip, _rotation, _sitk_resample

    lab, _ = _erase(ph.labels)
    r = _rotation((1.0, 2.0, 3.0), 20.0)
    ct = _flip(_sitk_resample(ph.ct, (2.5, 3.0, 3.5), r, -1024, False))
    lb = _flip(_sitk_resample(lab, (2.5, 3.0, 3.5), r, 0, True))
    truth = _flip(_sitk_resample(ph.labels, (2.5, 3.0, 3.5), r, 0, True))
    # ribs and sternum: what the CT density check can see (costal cartilage is soft-tissue density;
    # `test_unlabelled_ribs_are_kept_out_and_said`)
    bone = np.isin(truth.array, [v for v, n in ph.labels.labels.items() if n.startswith(("rib_", "sternum"))])
    result, doc = _plan_doc(ct, lb, _target(ph, "lung_nodule_1"), tmp_path, "oblique")
    assert result.feasible, result.report
    _check(ct, bone, doc, float(np.linalg.norm(ct.spacing)))
    assert any("unlabelled dense tissue" in w for w in doc["warnings"])


@pytest.mark.data
@pytest.mark.slow
def test_chest_cta_left_hemithorax_crop_no_path_through_a_missed_rib(shared_data, tmp_path):
    """New-user trial 6: the chest CTA cropped to the left hemithorax (R < -13.8 mm), the
    project's own segmentation (which misses lateral ribs there), target -103.8,134.2,721.7 (a
    point 2.3 mm from a rib's inner cortex): the plan is refused (exit 2) with a line naming the
    unlabelled dense tissue, instead of 4 of 5 proposals through the rib. 10 mm deeper in the lung
    the plan is feasible and no proposal crosses the bone that the uncropped scan's segmentation
    labels (the truth here: the same segmenter on the whole field of view keeps those ribs)."""
    from test_bones_crop import _hemithorax, _r_of_index

    from imagio import io
    from imagio.cli import main
    from imagio.segmentation.common import anatomical_axes, crop_slices
    from imagio.segmentation.rules import segment

    full = io.read_image(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz")
    lr = anatomical_axes(full)["R"][0]
    sl = _hemithorax(full, lr, _r_of_index(full, lr), _r_of_index(full, lr) < -13.8)
    ct = crop_slices(full, sl)
    seg = segment(ct)
    ref = segment(full)
    bone_vals = [v for v, n in ref.labels.items() if n in ("ribs", "bone", "vertebrae", "costal_cartilages")]
    truth = np.isin(ref.array[sl], bone_vals)
    # the trial's target: refused with one line naming the dense tissue
    ctp, labp = tmp_path / "ct.nii.gz", tmp_path / "lab.seg.nrrd"
    io.write_image(ct, ctp)
    io.write_labels(seg, labp)
    rc = main(["plan", str(ctp), "--labels", str(labp), "--target=-103.8,134.2,721.7", "--out",
               str(tmp_path / "p1"), "--no-png", "--no-scene", "--quiet"])
    doc = json.loads((tmp_path / "p1" / "plan.json").read_text())
    if rc == 0:
        _check_truth(ct, truth, doc)
    else:
        assert rc == 2 and not doc["proposals"]
        # refused because of the rib: unlabelled (the CT density check) or, since the bone
        # segmenter keeps cut ribs (bones.native_cortex_seeds), labelled and named as the near miss
        assert any("unlabelled dense tissue" in w or ("no feasible path" in w and "ribs" in w)
                   for w in doc["warnings"]), doc["warnings"]
    # 10 mm deeper: feasible, through the intercostal spaces
    result, doc = _plan_doc(ct, seg, np.array([-93.8, 134.2, 721.7]), tmp_path, "deeper")
    assert result.feasible, result.report
    _check_truth(ct, truth, doc)


def _check_truth(ct, truth, doc):
    skip = float(np.linalg.norm(ct.spacing))
    for p in doc["proposals"]:
        on, s = _along(ct, truth, p["entry_ras"], p["target_ras"])
        assert not on[s > skip].any(), (p["entry_ras"], "crosses bone of the uncropped segmentation")


def test_dense_summary_gives_ml_per_density_class(ph):
    """The unlabelled-dense-tissue warning names the mL of each density class, not the whole
    volume after its single densest voxel (new-user trial 1: 208 mL of CTA blood pool called
    "metal" after one voxel of 3236 HU). Here: ribs erased from the labels (cortex 900 HU) and
    8 voxels of one erased rib set to 3100 HU (a clip): the metal class holds those 8 voxels'
    mL, counted here from the CT, and the rest of the volume is bone."""
    from imagio.planning.density import DenseTissue

    lab, bone = _erase(ph.labels)
    arr = ph.ct.array.copy()
    target = _target(ph, "lung_nodule_1")
    prob0 = PlanningProblem.build(ph.ct, lab, target)
    tk = np.asarray(ph.ct.world_to_kji(np.asarray(prob0.target.point_ras, float)[None])[0])
    cand = np.argwhere(bone & (arr >= CORTICAL_HU))
    k, j, i = cand[np.argmin(np.linalg.norm((cand - tk) * np.asarray(ph.ct.spacing_kji), axis=1))]
    clip = np.zeros_like(bone)
    clip[k:k + 2, j:j + 2, i:i + 2] = bone[k:k + 2, j:j + 2, i:i + 2]
    arr[clip] = 3100.0
    ct = ph.ct.with_array(arr)
    dense = DenseTissue(PlanningProblem.build(ct, lab, target))
    metal_ml = float(clip.sum()) * ct.voxel_volume_ml
    w = [x for x in dense.summary() if "of unlabelled dense tissue" in x]
    assert len(w) == 1, dense.summary()
    # the phantom is a contrast CT (its labelled vessels enhance): above cortical density the class
    # names a vein of undiluted contrast too (issue 14: the chest CTA's superior vena cava, 1,000-3,261
    # HU, was called "bone, calcification or metal")
    assert dense.contrast is True
    assert f"{metal_ml:.1f} mL at >= 3000 HU (metal, or undiluted contrast in a vein" in w[0], w[0]
    total = float(w[0].split(" mL")[0])
    assert total > 10 * metal_ml                 # the ribs within reach: bone, not metal
    assert "mL at 700-3000 HU (bone, calcification or metal, or undiluted contrast in a vein" in w[0]
    per = dense.to_dict()["unlabelled_dense_ml_by_hu"]
    assert per["3000-inf"] == pytest.approx(metal_ml, abs=0.01)
    assert sum(per.values()) == pytest.approx(dense.block_ml, abs=0.03)


def test_density_class_names_undiluted_contrast_by_the_ct_phase():
    """Issue 14: tissue above cortical density on a contrast CT may be a vein of undiluted contrast
    (the chest CTA's superior vena cava and brachiocephalic vein, up to 3,261 HU); the class says so
    on a contrast CT, as a possibility when the phase is not known (no vessel labelled), and not on
    a non-contrast CT; below cortical density the class is the same whatever the phase. The phase
    comes from the labelled vessels, the rules' blood pool (great_vessels) included."""
    from imagio.planning.density import density_class
    from imagio.planning.problem import contrast_phase
    from imagio.volume import Volume

    for hu in (900.0, 3100.0):
        yes, unknown, no = (density_class(hu, c) for c in (True, None, False))
        assert "undiluted contrast" in yes and "contrast CT" in yes
        assert "undiluted contrast" in unknown and "if the CT has contrast" in unknown
        assert "undiluted contrast" not in no and no == density_class(hu)
        assert no == ("metal" if hu >= 3000 else "bone, calcification or metal")
    assert len({density_class(400.0, c) for c in (True, None, False)}) == 1
    hu = np.full((4, 5, 6), 40, np.int16)
    hu[1:3, 1:4, 1:5] = 420                          # the enhanced blood pool
    lab = np.zeros(hu.shape, np.uint8)
    lab[1:3, 1:4, 1:5] = 1
    aff = np.diag([0.8, 1.1, 2.5, 1.0])
    ct = Volume(hu, aff)
    assert contrast_phase(ct, Volume(lab, aff, labels={1: "great_vessels"})) is True
    assert contrast_phase(ct, Volume(lab, aff, labels={1: "body"})) is None
    assert contrast_phase(ct.with_array(np.where(lab > 0, 45, 40).astype(np.int16)),
                          Volume(lab, aff, labels={1: "great_vessels"})) is False


def _unlabel(ph, names, hu, fill=0):
    """The phantom's CT with ``names`` set to ``hu`` (contrast or calcium) and those structures
    erased from the label map (value ``fill``: 0 leaves them unlabelled, as a segmentation
    without them does; a host's value, as one that took them for the host)."""
    vals = [v for v, n in ph.labels.labels.items() if n in names]
    m = np.isin(ph.labels.array, vals)
    ct = ph.ct.with_array(np.where(m, np.float32(hu), ph.ct.array).astype(ph.ct.array.dtype))
    lab = ph.labels.with_array(np.where(m, fill, ph.labels.array).astype(ph.labels.array.dtype),
                               labels={v: n for v, n in ph.labels.labels.items() if v not in vals})
    return ct, lab, m


def test_target_in_unlabelled_contrast_blood_is_refused(ph, tmp_path):
    """New-user trial 16 (HIGH): a point in the chest CTA's enhanced heart, no vessel labelled,
    was planned (exit 0) as "body", the 835 mL blood pool exempted as "calcification or bone of
    the target itself". Here the phantom's aorta and heart at arterial-phase contrast (450 HU,
    Bae 2010) and unlabelled, the target the aorta's deepest point: refused with one line naming
    the blood pool; on a grid rotated 20 degrees, 2.5 x 3.0 x 3.5 mm and flipped, the same. A
    calcified nodule (the phantom's lung_nodule_1 at 600 HU, unlabelled, the point at its
    centre) is still planned, its density exempted and said."""
    from test_planning_safety import _flip, _rotation, _sitk_resample

    from imagio.errors import InputError
    from imagio.planning.problem import deepest_point

    ct, lab, blood = _unlabel(ph, ("aorta", "heart"), 450.0)
    aorta = ph.labels.array == next(v for v, n in ph.labels.labels.items() if n == "aorta")
    target = deepest_point(ph.labels, aorta)
    assert ct.array[tuple(np.rint(ct.world_to_kji(target[None])[0]).astype(int))] == 450
    with pytest.raises(InputError, match="contrast-enhanced blood in a vessel or heart chamber"):
        PlanningProblem.build(ct, lab, target)
    r = _rotation((1.0, 2.0, 3.0), 20.0)
    ct_o = _flip(_sitk_resample(ct, (2.5, 3.0, 3.5), r, -1024, False))
    lab_o = _flip(_sitk_resample(lab, (2.5, 3.0, 3.5), r, 0, True))
    with pytest.raises(InputError, match="contrast-enhanced blood"):
        PlanningProblem.build(ct_o, lab_o, target)

    c = next(l for l in ph.lesions if l.name == "lung_nodule_1").center_ras
    nod = ph.labels.array == next(v for v, n in ph.labels.labels.items() if n == "lung_nodule_1")
    around = ph.labels.array[ndimage.binary_dilation(nod, iterations=2) & ~nod]
    host = int(np.bincount(around).argmax())          # the lobe it lies in
    assert ph.labels.labels[host].startswith("lung_")
    ct2, lab2, _ = _unlabel(ph, ("lung_nodule_1",), 600.0, fill=host)
    prob = PlanningProblem.build(ct2, lab2, c)
    result = plan(prob)
    assert result.feasible, result.report
    assert any("at the target (calcification" in w for w in result.warnings), result.warnings


def test_one_table_of_checked_label_values(ph):
    """The density check's checked voxels and the tissue a target point's dense object is
    counted in (`problem._refuse_blood_pool_target`) come from one table
    (`density.checked_values`; they were two near-copies): both hold unlabelled voxels and the
    passable structures; the density check leaves out a structure whose role the user set, the
    target point's object leaves out lesions (a name the catalogue does not know counts as one)
    whatever the user set. Checked here against the roles listed independently."""
    from imagio import anatomy
    from imagio.planning.density import checked_values

    names = dict(ph.labels.labels)
    liver = next(v for v, n in names.items() if n == "liver")
    stomach = next(v for v, n in names.items() if n == "stomach")
    names[stomach] = "GTV_Mass"          # a user's lesion label: unknown to the catalogue, passable
    lab = ph.labels.with_array(ph.labels.array, labels=names)
    prob = PlanningProblem.build(ph.ct, lab, "lung_nodule_1", roles={"liver": "passable"})
    path, point = checked_values(prob), checked_values(prob, target_point=True)
    assert len(path) > max(names) and len(point) > max(names) and path[0] and point[0]
    # GTV_Mass is a lesion's name (targets.lesion_name_hints): another lesion, kept out
    passable = {v for v, n in names.items() if anatomy.get(n).role == "passable" and "gtv" not in n.lower()}
    assert liver in passable and stomach not in passable
    assert next(s.role for s in prob.structures if s.name == "GTV_Mass") == "forbidden"
    for v in names:
        assert path[v] == (v in passable and v != liver), names[v]
        assert point[v] == (v in passable), names[v]


def _muscle_ball_centre(ph, radius_mm):
    """A muscle point of the chest wall (RAS mm) with only muscle within ``radius_mm`` + one voxel."""
    lab = ph.labels
    mus = lab.array == next(v for v, n in lab.labels.items() if n == "muscle")
    r = int(np.ceil(radius_mm / min(lab.spacing))) + 1
    core = ndimage.binary_erosion(mus, np.ones((2 * r + 1,) * 3, bool))
    nod = lab.kji_to_world(np.argwhere(lab.array == next(v for v, n in lab.labels.items()
                                                          if n == "lung_nodule_1")).astype(float)).mean(0)
    pts = lab.kji_to_world(np.argwhere(core).astype(float))
    return pts[np.argmin(np.linalg.norm(pts - nod, axis=1))]


def _ball(ph, centre, radius_mm, hu):
    """The phantom's CT with a ball of ``hu`` (HU) at ``centre`` (RAS mm), its voxels unlabelled
    (a calcified node or a vessel the segmentation missed), and the label map."""
    lab = ph.labels
    xyz = lab.kji_to_world(np.argwhere(np.ones(lab.shape, bool)).astype(float)).reshape(lab.shape + (3,))
    ball = np.linalg.norm(xyz - centre, axis=-1) <= radius_mm
    ct = ph.ct.with_array(np.where(ball, np.float32(hu), ph.ct.array).astype(ph.ct.array.dtype))
    return ct, lab.with_array(np.where(ball, 0, lab.array).astype(lab.array.dtype)), ball


@pytest.mark.parametrize("grid", ["native", "oblique", "anisotropic"])
def test_intermediate_density_is_warned_not_soft_tissue(ph, grid):
    """Review of trial H3 (medium): the CT density check only looks above 250 HU, so a 10 mm
    unlabelled ball of 150, 200 or 240 HU (a calcified node, a contrast-filled vessel) in the
    chest-wall muscle was crossed with no word. Now every one of 12 tracks through its centre
    is warned (`intermediate.intermediate_warnings`, naming calcification, cartilage and a
    contrast-filled vessel), a ball of 100 HU (below the Agatston 130 HU) is not, nor is any of
    the 12 tracks 12 mm beside it (ordinary muscle and fat: no flood); the same on a grid rotated
    20 degrees about an oblique axis, 2.5 x 3.0 x 3.5 mm, flipped, and on a 1.5 x 2.0 x 4.0 mm
    grid flipped on two other axes."""
    from test_planning_safety import _flip, _rotation, _sitk_resample

    from imagio.planning.intermediate import intermediate_warnings

    c = _muscle_ball_centre(ph, 5.0)
    rng = np.random.default_rng(7)
    d = rng.normal(size=(12, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    side = np.cross(d, rng.normal(size=(12, 3)))
    side /= np.linalg.norm(side, axis=1, keepdims=True)
    for hu, said in ((150.0, True), (200.0, True), (240.0, True), (100.0, False)):
        ct, lab, _ = _ball(ph, c, 5.0, hu)
        if grid == "oblique":
            r = _rotation((1.0, 2.0, 3.0), 20.0)
            ct, lab = (_flip(_sitk_resample(ct, (2.5, 3.0, 3.5), r, -1024, False)),
                       _flip(_sitk_resample(lab, (2.5, 3.0, 3.5), r, 0, True)))
        elif grid == "anisotropic":
            ct, lab = (_flip(_sitk_resample(ct, (1.5, 2.0, 4.0), np.eye(3), -1024, False), (0, 1)),
                       _flip(_sitk_resample(lab, (1.5, 2.0, 4.0), np.eye(3), 0, True), (0, 1)))
        prob = PlanningProblem.build(ct, lab, "lung_nodule_1")
        for k in range(12):
            e, t = c - 30.0 * d[k], c + 20.0 * d[k]
            w = intermediate_warnings(prob, 1, e, t)
            if said:
                assert len(w) == 1 and w[0].startswith("proposal 1: crosses") and "calcification" in w[0] \
                    and "contrast-filled vessel" in w[0], (hu, k, w)
            else:
                assert w == [], (hu, k, w)
            b = c + 12.0 * side[k]
            assert intermediate_warnings(prob, 1, b - 30.0 * d[k], b + 20.0 * d[k]) == [], (hu, k)


def test_intermediate_density_warned_in_the_plan(ph, tmp_path):
    """The plan (plan.json ``warnings``) says it for the proposal whose path crosses an unlabelled
    200 HU ball in its chest-wall part (before: nothing; the ball does not move the proposal:
    130-250 HU is warned, not kept out), and no proposal of the phantom's own plan to the first
    lung nodule is warned (its chest wall is muscle, fat, ribs and cartilage of 120 HU)."""
    from imagio.planning.intermediate import intermediate_runs

    target = _target(ph, "lung_nodule_1")
    result, doc = _plan_doc(ph.ct, ph.labels, target, tmp_path, "plain")
    assert not [w for w in doc["warnings"] if "HU (peak" in w], doc["warnings"]
    lungs = [v for v, n in ph.labels.labels.items() if n.startswith("lung_") and "nodule" not in n]
    muscle = next(v for v, n in ph.labels.labels.items() if n == "muscle")
    for n, p in enumerate(doc["proposals"], 1):   # the first proposal with 12 mm of muscle before the lung
        e, t = np.asarray(p["entry_ras"]), np.asarray(p["target_ras"])
        u = (t - e) / np.linalg.norm(t - e)
        P = e + np.arange(0.0, np.linalg.norm(t - e), 0.5)[:, None] * u
        v = ph.labels.sample(P, order=0, fill=0)
        wall = P[:int(np.argmax(np.isin(v, lungs)))][v[:int(np.argmax(np.isin(v, lungs)))] == muscle]
        if len(wall) >= 24:
            break
    else:
        pytest.fail("no proposal crosses 12 mm of muscle")
    c = wall[len(wall) // 2]
    ct, lab, _ = _ball(ph, c, 3.0, 200.0)
    result2, doc2 = _plan_doc(ct, lab, target, tmp_path, "ball")
    prob = result2.problem
    same = [k for k, q in enumerate(doc2["proposals"], 1)
            if np.allclose(q["entry_ras"], p["entry_ras"]) and np.allclose(q["target_ras"], p["target_ras"])]
    assert same, "the proposal moved"
    assert intermediate_runs(prob, p["entry_ras"], p["target_ras"])
    said = [w for w in doc2["warnings"] if w.startswith(f"proposal {same[0]}: crosses") and "HU (peak" in w]
    assert len(said) == 1 and "calcification" in said[0], doc2["warnings"]


@pytest.mark.data
@pytest.mark.slow
def test_intermediate_density_does_not_flood_a_real_ct():
    """lung1 (no contrast), IMAGIO's rule-based labels: none of 200 tracks from outside into
    the lungs (150 mm, random directions, lateral side) is warned for 130-250 HU tissue
    (ribs and cartilage labelled, their partial-volume rim left out), while painting a 10 mm
    ball of 180 HU into the chest wall on one of them makes that one warned."""
    from conftest import shared_case

    from imagio import io
    from imagio.planning.intermediate import intermediate_runs
    from imagio.segmentation.rules import segment

    ct = io.read_image(shared_case("pyradiomics-lung", "lung1_image.nrrd"))
    lab = segment(ct)
    prob = PlanningProblem.build(ct, lab, "lung_right")
    lv = [v for v, n in lab.labels.items() if n in ("lung_left", "lung_right")]
    lung = lab.kji_to_world(np.argwhere(np.isin(lab.array, lv))[::53].astype(float))
    rng = np.random.default_rng(0)
    sel, cen = lung[rng.choice(len(lung), 200, replace=False)], lung.mean(0)
    tracks = []
    for p in sel:
        d = rng.normal(size=3)
        d[0] = 2.0 * abs(d[0]) * (np.sign(p[0] - cen[0]) or 1.0)
        tracks.append((p + 150.0 * d / np.linalg.norm(d), p))
    warned = [k for k, (e, t) in enumerate(tracks) if intermediate_runs(prob, e, t)]
    assert not warned, warned
    # one track's chest wall: the first body sample more than 15 mm from its entry into the body
    body = prob.body
    for e, t in tracks:
        u = (t - e) / np.linalg.norm(t - e)
        P = e + np.arange(0.0, np.linalg.norm(t - e), 0.5)[:, None] * u
        kji = np.clip(np.rint(ct.world_to_kji(P)).astype(int), 0, np.array(ct.shape) - 1)
        inb = body[tuple(kji.T)] & (lab.array[tuple(kji.T)] == next(v for v, n in lab.labels.items() if n == "body"))
        if inb.sum() >= 60:
            c = P[np.flatnonzero(inb)[30]]
            break
    xyz = ct.kji_to_world(np.argwhere(np.ones(ct.shape, bool)).astype(float)).reshape(ct.shape + (3,))
    ball = np.linalg.norm(xyz - c, axis=-1) <= 5.0
    ct2 = ct.with_array(np.where(ball, np.float32(180.0), ct.array).astype(ct.array.dtype))
    prob2 = PlanningProblem.build(ct2, lab, "lung_right")
    assert intermediate_runs(prob2, e, t)
