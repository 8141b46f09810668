"""Paths through the base of the neck (thoracic inlet) are warned and ranked last on a CT whose
neck and great vessels are not labelled (new-user trial 100 F5): on lung1 and lung2 (no contrast)
the best proposals to a right lung-apex target ran through the thyroid and the carotid sheath
(common carotid artery, internal jugular vein), beside the trachea above the manubrium, with no
per-proposal warning: the mediastinal rule's region (the lungs' hull per axial plane) lies
behind that tissue at the apices.

My check is independent of `imagio.planning.mediastinum`: along each proposal's track, samples
every 0.5 mm reading 0-150 HU (soft tissue and blood without contrast, not fat, not bone) within
``NEAR_TRACHEA_MM`` of the trachea's centre in the sample's own axial slice (the centre of the
CT's air below -900 HU inside the segment's trachea label, in world R-A). A track with at least 5 mm of them must be warned and ranked after every
proposal without that warning."""
import json

import numpy as np
import pytest

from conftest import resample_rotated, run_imagio, shared_case

from imagio import io

NEAR_TRACHEA_MM = 30.0    # thyroid lobe + carotid artery beside the trachea (my own, tighter than the rule's)
RUN_MM = 5.0              # the mediastinal rule's length (planning_defaults mediastinum_unlabelled_mm)
WARN = "neck-base soft tissue"


def _trachea_centres(ct, seg):
    """{k: (R, A)} world mm of the trachea's air per axial slice k (axial scans only)."""
    code = [v for v, n in seg.labels.items() if n == "trachea"]
    air = (ct.array < -900) & np.isin(seg.array, code)
    out = {}
    for k in np.flatnonzero(air.any((1, 2))):
        j, i = np.nonzero(air[k])
        w = ct.kji_to_world(np.c_[np.full(len(j), k), j, i].astype(float))
        out[int(k)] = w[:, :2].mean(0)
    return out


def _neck_soft_mm(ct, centres, entry, target):
    """mm of the track entry -> target in 0-150 HU within NEAR_TRACHEA_MM of the trachea's centre."""
    e, t = np.asarray(entry, float), np.asarray(target, float)
    n = int(np.linalg.norm(t - e) / 0.5) + 2
    pts = e + np.linspace(0, 1, n)[:, None] * (t - e)
    kji = np.clip(np.rint(ct.world_to_kji(pts)).astype(int), 0, np.array(ct.shape) - 1)
    hu = ct.array[tuple(kji.T)].astype(float)
    c = np.array([centres.get(int(k), (np.nan, np.nan)) for k in kji[:, 0]])
    near = np.hypot(*(pts[:, :2] - c).T) <= NEAR_TRACHEA_MM
    return float(((hu >= 0) & (hu <= 150) & near).sum() * np.linalg.norm(t - e) / (n - 1))


def _plan(tmp_path, ct_path, seg_path, target):
    out = tmp_path / "plan"
    r = run_imagio("plan", ct_path, "--labels", seg_path, f"--target={target}", "--gantry-tilt", "none",
                   "--out", out)
    assert r.returncode == 0, r.stderr
    return json.loads((out / "plan.json").read_text())


def _warned(plan, n):
    return any(w.startswith(f"proposal {n}: crosses") and "mediastinal" in w for w in plan["warnings"])


@pytest.mark.parametrize("case,target", [("lung1", "33.6,120.3,-577.5"), ("lung2", "58.9,132.0,-90")])
def test_neck_base_paths_to_a_lung_apex_are_warned_and_ranked_last(tmp_path, case, target):
    src = shared_case("pyradiomics-lung", f"{case}_image.nrrd")
    seg_path = tmp_path / "seg.seg.nrrd"
    r = run_imagio("segment", src, "--out", seg_path)
    assert r.returncode == 0, r.stderr
    ct, seg = io.read_image(src), io.read_labels(seg_path)
    centres = _trachea_centres(ct, seg)
    assert centres, "no trachea in view: the case no longer tests the neck base"
    # the paths trial 100 found through the thyroid and carotid sheath do cross it (my check) ...
    trial = {"lung1": [(15.4, 178.4, -577.5), (0.0, 180.1, -582.5), (-8.6, 192.1, -592.5)],
             "lung2": [(-11.9, 217.3, -75.0)]}[case]
    tgt = np.array(target.split(","), float)
    assert all(_neck_soft_mm(ct, centres, e, tgt) >= RUN_MM for e in trial)

    plan = _plan(tmp_path, src, seg_path, target)
    props = plan["proposals"]
    crossing = [_neck_soft_mm(ct, centres, p["entry_ras"], p["target_ras"]) for p in props]
    warned = [_warned(plan, n) for n in range(1, len(props) + 1)]
    for n, mm in enumerate(crossing, 1):
        if mm >= RUN_MM:
            assert warned[n - 1], (n, mm, [w[:100] for w in plan["warnings"] if w.startswith(f"proposal {n}")])
    assert warned == sorted(warned), (warned, crossing)      # ranked after every unwarned proposal
    assert not warned[0] and crossing[0] < RUN_MM, (warned, crossing)   # a chest-wall path first
    for n, w in enumerate(warned, 1):
        if w and crossing[n - 1] >= RUN_MM:
            said = [x for x in plan["warnings"] if x.startswith(f"proposal {n}: crosses")][0]
            assert WARN in said and "common carotid artery" in said, said
    # and imagio's region counts them (the rule's own figures, at the CT's own grid)
    from imagio.planning import PlanningProblem
    from imagio.planning.mediastinum import Mediastinum

    med = Mediastinum(PlanningProblem.build(ct, seg, tgt.tolist()))
    mm, _, neck = med.runs(np.array(trial), np.repeat(tgt[None], len(trial), 0))
    assert (mm >= RUN_MM).all() and (neck > 0).all(), (mm, neck)


def test_oblique_flipped_lung1_warns_the_same_neck_base_paths(tmp_path):
    """The region is built in world R-A per axial plane: on lung1 and its labels resampled onto an
    oblique, flipped, anisotropic grid the trial's thyroid/carotid paths are still counted, and the
    plan's proposals through it (my check on the axial original) are warned and ranked last."""
    import SimpleITK as sitk

    src = shared_case("pyradiomics-lung", "lung1_image.nrrd")
    r = run_imagio("segment", src, "--out", tmp_path / "ax.seg.nrrd")
    assert r.returncode == 0, r.stderr
    ax_ct, ax_seg = io.read_image(src), io.read_labels(tmp_path / "ax.seg.nrrd")
    lab_img = io.volume_to_sitk(ax_seg)
    ct_o, lab_o = resample_rotated(sitk.ReadImage(str(src)), lab_img, 20.0, 12.0, (0.8, 1.1, 2.5), -1024,
                                  flip_first=True)
    sitk.WriteImage(ct_o, str(tmp_path / "ct.nii.gz"))
    sitk.WriteImage(lab_o, str(tmp_path / "seg.nii.gz"))
    (tmp_path / "seg.labels.json").write_text(json.dumps({str(k): v for k, v in ax_seg.labels.items()}))
    target = "33.6,120.3,-577.5"
    tgt = np.array(target.split(","), float)
    trial = np.array([(15.4, 178.4, -577.5), (0.0, 180.1, -582.5), (-8.6, 192.1, -592.5)])

    from imagio.planning import PlanningProblem
    from imagio.planning.mediastinum import Mediastinum

    ct, seg = io.read_image(tmp_path / "ct.nii.gz"), io.read_labels(tmp_path / "seg.nii.gz")
    assert not np.allclose(np.abs(ct.direction), np.eye(3), atol=0.05)   # the grid is oblique
    med = Mediastinum(PlanningProblem.build(ct, seg, tgt.tolist()))
    mm, _, neck = med.runs(trial, np.repeat(tgt[None], len(trial), 0))
    assert (mm >= RUN_MM).all() and (neck > 0).all(), (mm, neck)

    plan = _plan(tmp_path, tmp_path / "ct.nii.gz", tmp_path / "seg.nii.gz", target)
    centres = _trachea_centres(ax_ct, ax_seg)
    props = plan["proposals"]
    crossing = [_neck_soft_mm(ax_ct, centres, p["entry_ras"], p["target_ras"]) for p in props]
    warned = [_warned(plan, n) for n in range(1, len(props) + 1)]
    for n, c in enumerate(crossing, 1):
        if c >= RUN_MM:
            assert warned[n - 1], (n, c)
    assert warned == sorted(warned), (warned, crossing)
    assert not warned[0], (warned, crossing)


def test_lateral_apex_paths_on_the_chest_cta_get_no_neck_base_warning(tmp_path):
    """The chest CTA without its vessels labelled (the default structures: the rule applies): its
    proposals to a right-apex target whose tracks stay further than the rule's reach from the
    trachea (my centres) get no neck-base warning; and with the great vessels labelled the
    vessel labels take precedence: no mediastinal/neck-base line at all."""
    src = shared_case("totalsegmentator-chest-cta", "chest_cta.nii.gz")
    seg_path = tmp_path / "seg.seg.nrrd"
    r = run_imagio("segment", src, "--out", seg_path)
    assert r.returncode == 0, r.stderr
    ct, seg = io.read_image(src), io.read_labels(seg_path)
    assert not any("great_vessels" in n or "aorta" in n for n in seg.labels.values())
    centres = _trachea_centres(ct, seg)
    assert centres
    plan = _plan(tmp_path, src, seg_path, "46.2,117.7,786.2")
    assert plan["proposals"]
    from imagio.planning.problem import load_defaults

    reach = load_defaults()["warnings"]["neck_base_trachea_mm"]
    lateral = 0
    for n, p in enumerate(plan["proposals"], 1):
        e, t = np.asarray(p["entry_ras"], float), np.asarray(p["target_ras"], float)
        pts = e + np.linspace(0, 1, 400)[:, None] * (t - e)
        kji = np.clip(np.rint(ct.world_to_kji(pts)).astype(int), 0, np.array(ct.shape) - 1)
        c = np.array([centres.get(int(k), (np.nan, np.nan)) for k in kji[:, 0]])
        d = np.hypot(*(pts[:, :2] - c).T)
        if not (d <= reach + 5.0).any():     # a lateral track, clear of the neck base
            lateral += 1
            assert not any(w.startswith(f"proposal {n}:") and WARN in w for w in plan["warnings"]), n
    assert lateral, "no lateral proposal: the case no longer tests them"

    # with the great vessels labelled (contrast CT) they, not the region, are judged: no line of it
    seg_v = tmp_path / "seg_v.seg.nrrd"
    r = run_imagio("segment", src, "--out", seg_v, "--structures", "body,bones,lungs,airways,vessels")
    assert r.returncode == 0, r.stderr
    assert any("great_vessels" in n for n in io.read_labels(seg_v).labels.values())
    out = tmp_path / "plan_v"
    r = run_imagio("plan", src, "--labels", seg_v, "--target=46.2,117.7,786.2", "--gantry-tilt", "none", "--out", out)
    assert r.returncode == 0, r.stderr
    warnings = json.loads((out / "plan.json").read_text())["warnings"]
    assert not any(WARN in w or "mediastinal soft tissue" in w for w in warnings), warnings
