"""Needle plans on real CT are safe: every proposal re-checked here, independently of the planner.

The checks in this file use only numpy/scipy on the input arrays (never the planner's maps,
scorer or verifier):
- outer skin: exterior air found slice by slice (2D hole filling of tissue + labels in each
  axial slice), the entry within 1.5 voxel diagonals of it and not on the first/last slice;
- forbidden structures: labels sampled every <= 0.2 voxel along the path (nearest voxel);
- margins: scipy's exact Euclidean distance transform with its feature transform (the nearest
  structure voxel centre) around the path, for every sample, inside the target's organ too;
- length within the needle.
Re-oriented copies (flipped axes; rotated about an oblique axis and resampled with SimpleITK;
resampled anisotropically) must give the same answer and never an entry on a cut plane.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from imagio import io
from imagio.cli import main
from imagio.planning import PlanningProblem, plan
from imagio.planning.problem import Constraints
from imagio.volume import Volume

pytestmark = pytest.mark.data

TS = "totalsegmentator-example"


def _names(shared_data):
    doc = json.loads((shared_data / TS / "labels_total_v2.json").read_text())
    return {int(k): v for k, v in doc.items()}


def _read_ts(ct_name, seg_name):
    """A TotalSegmentator example CT and its reference labels on the CT grid."""
    from conftest import SHARED_DATA

    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not present")
    ct = io.read_image(SHARED_DATA / TS / ct_name)
    lab = io.read_labels(SHARED_DATA / TS / seg_name, _names(SHARED_DATA))
    return ct, lab if lab.same_grid(ct) else lab.resample_like(ct, order=0)


@pytest.fixture(scope="module")
def ts_sm():
    return _read_ts("example_ct_sm.nii.gz", "example_seg.nii.gz")


@pytest.fixture(scope="module")
def ts_dicom():
    return _read_ts("example_ct_dicom", "example_seg_dicom.nii.gz")


ISSUE_TARGET = {"ts_sm": np.array([95.0, 164.3, 154.3]), "ts_dicom": np.array([91.3, 124.0, -776.5])}


@pytest.fixture(scope="module")
def issue_plans():
    """get(case, ct, lab) -> (problem, result): the plan of the issue's target on ``case`` (its
    module fixture's ct, labels; supine, the default), made once per module; the tests that check
    it and the re-oriented copies' reference read the same plan (none of them alters it)."""
    done = {}

    def get(case, ct, lab):
        if case not in done:
            prob = PlanningProblem.build(ct, lab, ISSUE_TARGET[case],
                                         constraints=Constraints(patient_position="supine"))
            done[case] = prob, plan(prob)
        return done[case]
    return get


# independent checks -----------------------------------------------------------------------

def exterior_by_slices(ct: Volume, lab: Volume) -> np.ndarray:
    """Air around the patient, per axial slice: not tissue (> -400 HU) nor labelled, and not a
    hole of the tissue in that slice. Valid for grids whose k axis is the patient's S axis."""
    tissue = (ct.array > -400) | (lab.array > 0)
    body = np.stack([ndimage.binary_fill_holes(s) for s in tissue])
    return ~body


def check_proposal(prob, entry, exterior_dist, ct: Volume, lab: Volume) -> list[str]:
    """Problems of the path entry -> target found by the independent check (empty: safe)."""
    out = []
    t = prob.target.point_ras
    e = np.asarray(entry, float)
    length = float(np.linalg.norm(t - e))
    if length > prob.needle.length_mm + 1e-6:
        out.append(f"length {length:.1f} > needle")
    sp = np.asarray(ct.spacing_kji, float)
    diag = float(np.linalg.norm(sp))
    ke = np.rint(ct.world_to_kji(e[None])[0]).astype(int)
    if exterior_dist[tuple(ke)] > 1.5 * diag:
        out.append(f"entry {e.round(1)} is {exterior_dist[tuple(ke)]:.1f} mm inside the body")
    if ke[0] < 1 or ke[0] > ct.shape[0] - 2:
        out.append("entry on the first/last slice (a cut face)")
    step = 0.2 * float(sp.min())
    n = int(np.ceil(length / step)) + 1
    pts = e + np.linspace(0, 1, n)[:, None] * (t - e)
    kji = ct.world_to_kji(pts)
    near = np.rint(kji).astype(int)
    labels_on_path = lab.array[tuple(near.T)]
    exempt = prob.exempt_value
    forb = {s.value for s in prob.structures if s.role == "forbidden" and s.value != exempt}
    crossed = set(np.unique(labels_on_path).tolist()) & forb
    if crossed:
        out.append(f"crosses forbidden {sorted(lab.labels[v] for v in crossed)}")
    half = 0.5 * float(sp.min())
    need = prob.needle.widening_mm
    groups: dict = {}
    for s in prob.structures:
        if s.role in ("forbidden", "margin") and s.value != exempt:
            groups.setdefault(s.margin_mm if s.role == "margin" else 0.0, []).append(s.value)
    R = max(groups, default=0.0) + need + 3 * diag
    lo = np.maximum(np.floor(kji.min(0) - R / sp).astype(int), 0)
    hi = np.minimum(np.ceil(kji.max(0) + R / sp).astype(int) + 1, ct.shape)
    sub = lab.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    loc = kji - lo
    base = np.floor(loc).astype(int)
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)])
    for margin, vals in groups.items():
        mask = np.isin(sub, vals)
        if not mask.any():
            continue
        _, ind = ndimage.distance_transform_edt(~mask, sampling=sp, return_indices=True)
        best = np.full(len(pts), np.inf)
        for c in corners:   # nearest structure voxel of each of the 8 surrounding grid points
            g = np.clip(base + c, 0, np.array(sub.shape) - 1)
            f = ind[:, g[:, 0], g[:, 1], g[:, 2]].T
            d = np.linalg.norm((f - loc) * sp, axis=1)   # exact distance sample -> that voxel
            best = np.minimum(best, d)
        clear = best - half
        j = int(np.argmin(clear))
        if clear[j] < margin + need - 0.02:
            g = np.clip(base[j], 0, np.array(sub.shape) - 1)
            v = sub[tuple(ind[(slice(None),) + tuple(g)])]
            out.append(f"{clear[j]:.2f} mm from {lab.labels.get(int(v), v)} < {margin + need:.2f} mm")
    return out


def assert_plan_safe(prob, result, ct, lab):
    ext = exterior_by_slices(ct, lab)
    dist = ndimage.distance_transform_edt(~ext, sampling=ct.spacing_kji)
    assert result.proposals, result.report
    for m in result.proposals:
        probs = check_proposal(prob, m.entry_ras, dist, ct, lab)
        assert not probs, (m.entry_ras, probs)


# real cases, several targets each ---------------------------------------------------------

def _deepest(lab, name):
    from imagio.planning.problem import deepest_point

    v = {n: k for k, n in lab.labels.items()}[name]
    return deepest_point(lab, lab.array == v)


@pytest.mark.parametrize("target", ["issue", "spleen", "kidney_left", "kidney_right_point", "liver_lateral"])
def test_ts_sm_proposals_pass_independent_check(ts_sm, issue_plans, target):
    ct, lab = ts_sm
    roles = None
    if target == "issue":
        t = ISSUE_TARGET["ts_sm"]
    elif target == "liver_lateral":
        t = _deepest(lab, "liver") + np.array([30.0, 0.0, 0.0])
    elif target == "kidney_left":
        t, roles = "kidney_left", None     # the organ named as the target: its own rules only
    elif target == "kidney_right_point":
        t = _deepest(lab, "kidney_right")  # a point in the kidney: the kidney is the host
    else:
        t = _deepest(lab, target)
    # the kidney from the back, prone, as renal biopsy is done; supine its back lies on the table
    position = "prone" if target == "kidney_left" else "supine"
    if target == "issue":   # supine, no roles: the plan test_reoriented_copies_... reads too
        prob, result = issue_plans("ts_sm", ct, lab)
    else:
        prob = PlanningProblem.build(ct, lab, t if isinstance(t, str) else t, roles=roles,
                                     constraints=Constraints(patient_position=position))
        result = plan(prob)
    assert_plan_safe(prob, result, ct, lab)
    if target.startswith("kidney"):
        assert prob.target.organ == target.replace("_point", "")
        assert not prob.rules["liver_parenchyma"]["applies"]
    if target == "spleen":
        assert prob.target.organ == "spleen" and not prob.rules["liver_parenchyma"]["applies"]
    if target in ("issue", "liver_lateral"):
        assert prob.target.organ == "liver" and prob.rules["liver_parenchyma"]["applies"]
    # the slab is cut at both ends: the plan says so
    assert any("body truncated at the superior end" in w for w in result.warnings)
    assert any("body truncated at the inferior end" in w for w in result.warnings)


def test_ts_dicom_issue_target_entry_on_outer_skin(ts_dicom, issue_plans):
    """The issue's case: the best entry lay on the costophrenic recess, 73 mm inside the back."""
    ct, lab = ts_dicom
    prob, result = issue_plans("ts_dicom", ct, lab)       # target 91.3, 124.0, -776.5
    assert_plan_safe(prob, result, ct, lab)
    for second in (np.array([60.0, 150.0, -785.0]),):   # a second liver point
        p2 = PlanningProblem.build(ct, lab, second)
        assert_plan_safe(p2, plan(p2), ct, lab)


def test_vertebra_target_keeps_spinal_cord_margin(ts_sm):
    """Margins hold inside the target's own structure (issue: 5.3 mm reported, 1.85 mm real)."""
    ct, lab = ts_sm
    name = next((n for n in lab.labels.values() if n.startswith("vertebrae_")), None)
    if name is None or "spinal_cord" not in lab.labels.values():
        pytest.skip("no vertebra / spinal cord in this label map")
    prob = PlanningProblem.build(ct, lab, name)
    result = plan(prob)
    if result.feasible:
        assert_plan_safe(prob, result, ct, lab)
    else:   # infeasible is a valid answer; it must say why
        assert result.report["excluded_by"]


# re-oriented copies -----------------------------------------------------------------------

def _flip(vol: Volume, axes=(0, 2)) -> Volume:
    arr = vol.array
    m = vol.ijk_to_ras.copy()
    for a in axes:   # a: array axis (k, j, i); ijk column 2 - a
        arr = np.flip(arr, axis=a)
        col = 2 - a
        n = vol.shape[a]
        m[:3, 3] = m[:3, 3] + m[:3, col] * (n - 1)
        m[:3, col] = -m[:3, col]
    return Volume(np.ascontiguousarray(arr), m, vol.name, dict(vol.labels))


def _sitk_resample(vol: Volume, spacing, direction_ras, fill, nearest: bool) -> Volume:
    """Resample with SimpleITK onto a grid of ``spacing`` (i, j, k) mm and RAS direction
    columns ``direction_ras`` covering the whole volume (padding = ``fill``)."""
    import SimpleITK as sitk

    img = io.volume_to_sitk(vol)
    lps = np.diag([-1.0, -1.0, 1.0])
    d = lps @ direction_ras
    corners = np.array([[a, b, c] for a in (0, vol.shape[2] - 1) for b in (0, vol.shape[1] - 1)
                        for c in (0, vol.shape[0] - 1)], float)
    ras = vol.ijk_to_world(corners)
    loc = ras @ direction_ras          # coordinates along the new axes (orthonormal)
    lo, hi = loc.min(0), loc.max(0)
    size = np.ceil((hi - lo) / np.asarray(spacing)).astype(int) + 1
    origin_ras = direction_ras @ lo
    ref = sitk.Image([int(s) for s in size], img.GetPixelID())
    ref.SetSpacing([float(s) for s in spacing])
    ref.SetDirection(d.ravel().tolist())
    ref.SetOrigin((lps @ origin_ras).tolist())
    out = sitk.Resample(img, ref, sitk.Transform(), sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear,
                        float(fill), img.GetPixelID())
    v = io.volume_from_sitk(out, vol.name)
    v.labels = dict(vol.labels)
    return v


def _rotation(axis, deg):
    from conftest import rotation

    return rotation(axis, deg)


def _copies(ct, lab):
    """The issue's re-oriented copies: axes flipped; rotated 17 degrees about an oblique axis and
    resampled at 2 mm (padding -1024); resampled anisotropically at 0.7 x 0.9 x 2.5 mm."""
    yield "flipped", _flip(ct), _flip(lab)
    r = _rotation((1.0, 2.0, 3.0), 17.0)
    yield ("rotated", _sitk_resample(ct, (2.0, 2.0, 2.0), r, -1024, False),
           _sitk_resample(lab, (2.0, 2.0, 2.0), r, 0, True))
    eye = np.eye(3)
    yield ("anisotropic", _sitk_resample(ct, (0.7, 0.9, 2.5), eye, -1024, False),
           _sitk_resample(lab, (0.7, 0.9, 2.5), eye, 0, True))


@pytest.mark.parametrize("case", ["ts_sm", "ts_dicom"])
def test_reoriented_copies_same_answer_no_entry_on_cut_plane(case, request, issue_plans):
    ct, lab = request.getfixturevalue(case)
    t = ISSUE_TARGET[case]
    ref = issue_plans(case, ct, lab)[1]      # plan(PlanningProblem.build(ct, lab, t)): supine is the default
    ref_entries = np.array([m.entry_ras for m in ref.proposals])
    ext = exterior_by_slices(ct, lab)
    ext_dist = ndimage.distance_transform_edt(~ext, sampling=ct.spacing_kji)
    for name, c, lb in _copies(ct, lab):
        prob = PlanningProblem.build(c, lb, t)
        res = plan(prob)
        assert res.feasible == ref.feasible, name
        best = np.asarray(res.proposals[0].entry_ras)
        # the best entry agrees with one of the reference's proposals within 5 mm (near-equal
        # scores may swap the order between grids)
        assert np.min(np.linalg.norm(ref_entries - best, axis=1)) <= 5.0, (name, best, ref_entries)
        for m in res.proposals:
            e = np.asarray(m.entry_ras)
            # on the original's outer skin (within the coarser grid's diagonal)...
            k = np.rint(ct.world_to_kji(e[None])[0]).astype(int)
            assert np.all((k >= 0) & (k < ct.shape)), (name, e)
            tol = 1.5 * max(np.linalg.norm(c.spacing), np.linalg.norm(ct.spacing))
            assert ext_dist[tuple(k)] <= tol, (name, e, ext_dist[tuple(k)])
            # ...and not on a cut plane: inside the original's slab, off its first/last slice
            assert 1 <= k[0] <= ct.shape[0] - 2, (name, e)
        assert {tr.side for tr in prob.skin.truncations} >= {"superior", "inferior"}, name


# refusals ---------------------------------------------------------------------------------

def _plan_cli(ct_path, lab_path, target, out, *extra):
    return main(["plan", str(ct_path), "--labels", str(lab_path), f"--target={target}", "--out",
                 str(out), "--no-png", "--no-scene", "--quiet", *extra])


def _one_line_error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("imagio: error:"), err
    return err[0]


def test_refusals_exit_2_with_one_line(ts_sm, tmp_path, capsys, shared_data):
    ct, lab = ts_sm
    ctp = shared_data / TS / "example_ct_sm.nii.gz"
    names = tmp_path / "names.json"
    names.write_text(json.dumps({str(k): v for k, v in lab.labels.items()}))
    good = tmp_path / "lab.nii.gz"
    io.write_labels(lab, good)
    # labels without names
    bare = tmp_path / "bare.nii.gz"
    io.write_image(lab.with_array(lab.array, labels={}), bare)
    assert _plan_cli(ctp, bare, "95,164.3,154.3", tmp_path / "o1") == 2
    assert "no structure name" in _one_line_error(capsys)
    # target in the air outside the body
    pts = ct.kji_to_world(np.array([[15.0, 2.0, 2.0]]))[0]
    assert _plan_cli(ctp, good, ",".join(f"{x:.1f}" for x in pts), tmp_path / "o2") == 2
    assert "outside the body" in _one_line_error(capsys)
    # target point inside a forbidden structure, named
    for name in ("aorta", "spinal_cord"):    # a vessel; a structure never aimed at
        if name in lab.labels.values():
            p = _deepest(lab, name)
            assert _plan_cli(ctp, good, ",".join(f"{x:.1f}" for x in p), tmp_path / f"o3{name}") == 2
            assert name in _one_line_error(capsys)
    # label map covering only part of the CT (the upper third of the slices)
    part = lab.crop((20, 0, 0), lab.shape)
    pp = tmp_path / "part.nii.gz"
    io.write_labels(part, pp)
    assert _plan_cli(ctp, pp, "95,164.3,154.3", tmp_path / "o4") == 2
    assert "covers only" in _one_line_error(capsys)
    # another scan's labels (shifted by 60 mm: structures in the air)
    shifted = np.zeros_like(lab.array)
    shifted[:, :, 25:] = lab.array[:, :, :-25]   # 75 mm to one side
    op = tmp_path / "other.nii.gz"
    io.write_labels(lab.with_array(shifted), op)
    assert _plan_cli(ctp, op, "95,164.3,154.3", tmp_path / "o5") == 2
    assert "does not belong to this CT" in _one_line_error(capsys)
    # a CT without air around the patient (field of view inside the body): no outer skin
    c = np.rint(ct.world_to_kji(np.array([[95.0, 164.3, 154.3]]))[0]).astype(int)
    lo, hi = (0, c[1] - 8, c[2] - 8), (ct.shape[0], c[1] + 9, c[2] + 9)   # 51 mm inside the liver
    ip = tmp_path / "inner.nii.gz"
    io.write_image(ct.crop(lo, hi), ip)
    io.write_labels(lab.crop(lo, hi), tmp_path / "inner_lab.nii.gz")
    rc = _plan_cli(ip, tmp_path / "inner_lab.nii.gz", "95,164.3,154.3", tmp_path / "o6")
    # named by the CT-in-HU check that plan runs on reading (trial 95 F4), as segment names it
    assert rc == 2 and "cropped inside the body" in _one_line_error(capsys)


def test_cli_roles_rules_recorded_kidney_point(ts_sm, tmp_path, capsys, shared_data):
    """A point in the kidney (an obstacle by default): the kidney is the target organ, entered by
    the path; the liver's rule does not apply; roles and rules given are recorded in plan.json."""
    ct, lab = ts_sm
    good = tmp_path / "lab.nii.gz"
    io.write_labels(lab, good)
    ctp = shared_data / TS / "example_ct_sm.nii.gz"
    k = ",".join(f"{x:.1f}" for x in _deepest(lab, "kidney_right"))
    rc = _plan_cli(ctp, good, k, tmp_path / "b", "--role", "inferior_vena_cava=margin:8",
                   "--no-rule", "fissure")
    doc = json.loads((tmp_path / "b" / "plan.json").read_text())
    assert rc in (0, 2)
    assert doc["target"]["organ"] == "kidney_right"
    assert doc["rules"]["liver_parenchyma"]["applies"] is False
    assert doc["rules"]["roles_overridden"] == {"inferior_vena_cava": "margin:8"}
    assert doc["rules"]["target_organ_entered"] == "kidney_right"
    assert doc["rules"]["disabled"] == ["fissure"]
    assert any("truncated" in w for w in doc["warnings"])
    from imagio.report import sections

    secs = dict((t, rows) for t, rows in sections(doc, {}))
    assert any("truncated" in str(r[1]) for r in secs["Warnings"])
    assert ("host organ", "kidney_right") in secs["Rules used"]
    assert [c["name"] for c in doc["criteria"]][:1] == ["length"] and "Score criteria" in secs
    assert "imagio: warning: body truncated" in capsys.readouterr().err
    assert _plan_cli(ctp, good, k, tmp_path / "c", "--role", "aorta=margin") == 2
    assert "margin in mm" in _one_line_error(capsys)


def _lung_case(shared_data, case):
    """CT, the project's own rule-based segmentation plus the case's lesion as lung_nodule."""
    from imagio.segmentation.rules import segment

    ct = io.read_image(shared_data / "pyradiomics-lung" / f"{case}_image.nrrd")
    ct = ct.resampled((1.25, 1.25, float(ct.spacing[2])))    # in-plane 0.6 -> 1.25 mm: 4x fewer voxels
    seg = segment(ct)
    les = io.read_image(shared_data / "pyradiomics-lung" / f"{case}_label.nrrd")
    if not les.same_grid(ct):
        les = les.resample_like(ct, order=0)
    a = seg.array.astype(np.uint16)
    v = int(a.max()) + 1
    a[les.array > 0] = v
    return ct, seg.with_array(a, labels={**seg.labels, v: "lung_nodule"})


def test_lung2_own_segmentation_safe_and_prone_suggested(shared_data):
    """lung2: a left lower lobe mass against the chest wall. Supine plans cross aerated lung;
    the plan names a position whose best path crosses much less (the issue: prone gives
    hundreds of feasible paths)."""
    ct, lab = _lung_case(shared_data, "lung2")
    prob = PlanningProblem.build(ct, lab, "lung_nodule")
    result = plan(prob)
    assert_plan_safe(prob, result, ct, prob.labels)
    assert result.positions["prone"]["feasible_candidates"] > 0
    assert any(w.startswith("patient position: supine") and "prone" in w for w in result.warnings)
    assert any("no lung vessels labelled" in w for w in result.warnings)
    # the project's own lungs are not split into lobes: fissures not judged, said (new-user trial 51)
    assert not any("lobe" in n for n in lab.labels.values())
    assert any("no lung lobes labelled: fissure crossings are not judged" in w for w in result.warnings)


def test_chest_cta_both_lungs_with_own_segmentation(shared_data):
    """Chest CTA with the project's own lungs/bones/airways and lung vessels: a target deep in
    each lung (thin vessel branches are a cost, >= 3 mm vessels keep their margin, and so do those
    within a voxel of 3 mm, said); every proposal passes the independent check."""
    from imagio.planning.problem import deepest_point
    from imagio.segmentation.rules import segment
    from imagio.segmentation.vessels import vessel_mask

    ct = io.read_image(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz")
    ct = ct.crop((55, 0, 0), (145, *ct.shape[1:]))     # a 135 mm slab through both lungs (runtime)
    seg = segment(ct)
    lungs = seg.mask("lung_left", "lung_right")
    ves, _ = vessel_mask(ct, lungs)
    a = seg.array.astype(np.uint16)
    v = int(a.max()) + 1
    a[ves] = v
    lab = seg.with_array(a, labels={**seg.labels, v: "lung_vessels"})
    for side in ("lung_left", "lung_right"):
        t = deepest_point(lab, lab.array == {n: k for k, n in lab.labels.items()}[side])
        prob = PlanningProblem.build(ct, lab, t)
        assert prob.target.organ == side
        cal = prob.rules["vessel_calibre"]["lung_vessels"]
        assert cal["large_ml"] > 0
        result = plan(prob)
        # calibre115: on this 1.5 mm grid the lung vessels' section calibres read 1.7-3.8 mm (10th-90th
        # percentile; the inscribed figure read 1.5 mm for 90 % of them), and a calibre within a voxel of
        # 3 mm keeps the vessel's margin: the plan says so. Before, 14 of 99 mL kept the margin and
        # both targets were feasible; now all of it does and neither is (a plan that says why, not a
        # plan through vessels that may be >= 3 mm without a word)
        und = cal["undecided"]
        assert "on a 1.5 mm grid: within a voxel of 3 mm" in und["warning"]
        assert und["warning"] in result.warnings
        if result.feasible:
            assert_plan_safe(prob, result, ct, prob.labels)
        # the thick vessels keep their margin: nothing >= 3 mm lies within margin + needle
        assert all(m.clearance_mm.get("lung_vessels", 99.0) >= 3.0 + prob.needle.widening_mm - 0.05
                   for m in result.proposals)


def test_lung1_own_segmentation_feasible_or_names_blocker(shared_data):
    ct, lab = _lung_case(shared_data, "lung1")
    prob = PlanningProblem.build(ct, lab, "lung_nodule")
    result = plan(prob)
    if result.feasible:
        assert_plan_safe(prob, result, ct, prob.labels)
    else:
        nm = result.report["best_near_miss"]
        assert nm["details"] and any(s in " ".join(nm["details"]) for s in prob.labels.labels.values())


def _labels_along(lab: Volume, entry, target, step_vox=0.25) -> np.ndarray:
    """Label values sampled every ``step_vox`` of the smallest voxel side from entry to target."""
    entry, target = np.asarray(entry, float), np.asarray(target, float)
    n = int(np.ceil(np.linalg.norm(target - entry) / (step_vox * float(min(lab.spacing))))) + 1
    pts = entry + np.linspace(0.0, 1.0, n)[:, None] * (target - entry)
    kji = np.rint(lab.world_to_kji(pts)).astype(int)
    kji = np.clip(kji, 0, np.array(lab.shape) - 1)
    return lab.array[tuple(kji.T)]


def test_kidney_paths_avoid_the_spleen_and_a_splenic_lesion_is_reached(ts_sm):
    """Found by a new user: the best kidney_left path crossed 31-34 mm of spleen, 'feasible',
    without a word (the spleen was passable). The spleen is now an obstacle, except when the
    target lesion lies in it: then it is the organ entered, said and recorded."""
    ct, lab = ts_sm
    spleen = {n: k for k, n in lab.labels.items()}["spleen"]
    prob = PlanningProblem.build(ct, lab, "kidney_left", constraints=Constraints(patient_position="prone"))
    result = plan(prob)
    assert result.proposals
    for m in result.proposals:
        assert not np.any(_labels_along(lab, m.entry_ras, m.target_ras) == spleen), m.entry_ras
    # a 12 mm lesion in the spleen (labelled as a lesion): reached through the spleen only
    centre = _deepest(lab, "spleen")
    kji = np.argwhere(lab.array == spleen)
    d = np.linalg.norm(lab.kji_to_world(kji) - centre, axis=1)
    arr = lab.array.copy()
    tv = int(max(lab.labels)) + 1
    arr[tuple(kji[d <= 6.0].T)] = tv
    lesion = lab.with_array(arr, labels={**lab.labels, tv: "tumor"})
    prob = PlanningProblem.build(ct, lesion, "tumor")
    result = plan(prob)
    assert prob.target.organ == "spleen" and prob.rules_extra["target_organ_entered"] == "spleen"
    assert any("spleen" in w and "obstacle by default" in w for w in result.warnings)
    assert_plan_safe(prob, result, ct, lesion)


def test_supine_needle_never_reaches_below_the_table(ts_sm):
    """Found by a new user: supine kidney paths entered the back 9 mm above the table pad, the
    needle's outer part pointing into the table. Independently of the planner's skin model: the
    table top is the most posterior tissue of the patient's labelled structures; every
    proposal's needle, including what is left outside the skin, stays above it; the plan says
    which position works instead."""
    ct, lab = ts_sm
    kji = np.argwhere(lab.array > 0)
    table_a = float(lab.kji_to_world(kji)[:, 1].min())
    prob = PlanningProblem.build(ct, lab, "kidney_left")
    result = plan(prob)
    for m in result.proposals:
        e, t = np.asarray(m.entry_ras), np.asarray(m.target_ras)
        hub = e - (t - e) / np.linalg.norm(t - e) * max(prob.needle.length_mm - m.length_mm, 0.0)
        assert hub[1] >= table_a - 1.0, (e, hub)
    if not result.feasible:
        assert any("prone" in w for w in result.warnings)


def test_target_in_unlabelled_lung_open_to_a_cut_face_is_named_as_lung():
    """Trial 13 (M1): on a small field of view whose lungs were not labelled, a target in aerated
    lung was refused as 'outside the body (air around the patient)': the cut lungs open to the
    image's faces and pass for outside air. The synthetic torso is cut through its right lung
    (R <= 60 mm) and its lung labels removed; the refusal must say lung density and what to do.
    Outside air is still named as such."""
    from imagio.errors import InputError
    from imagio.planning import PlanningProblem
    from imagio.planning.synthetic import synthetic_torso

    ct, lab = synthetic_torso(3.0)
    r_axis = int(np.argmax(np.abs(ct.direction[0, ::-1])))
    idx = np.zeros((ct.shape[r_axis], 3))
    idx[:, r_axis] = np.arange(ct.shape[r_axis])
    keep = np.flatnonzero(ct.kji_to_world(idx)[:, 0] <= 60.0)
    lo, hi = [0, 0, 0], list(ct.shape)
    lo[r_axis], hi[r_axis] = int(keep.min()), int(keep.max()) + 1
    ct_c, lab_c = ct.crop(lo, hi), lab.crop(lo, hi)
    lung = [v for v, n in lab_c.labels.items() if n.startswith("lung")]
    t = np.array([50.0, 0.0, 70.0])
    assert lab_c.labels[int(lab_c.sample(t[None])[0])].startswith("lung")     # the scene: a lung point
    bare = lab_c.with_array(np.where(np.isin(lab_c.array, lung), 0, lab_c.array),
                            labels={v: n for v, n in lab_c.labels.items() if v not in lung})
    with pytest.raises(InputError, match="air of lung density .* label the lungs"):
        PlanningProblem.build(ct_c, bare, t)
    out = ct_c.kji_to_world(np.array([[ct_c.shape[0] // 2, 1.0, 1.0]]))[0]   # a corner: outside air
    with pytest.raises(InputError, match="outside the body \\(air around the patient"):
        PlanningProblem.build(ct_c, bare, out)


@pytest.mark.data
@pytest.mark.slow
def test_position_comparison_quotes_the_first_proposal(shared_data):
    """New-user trial 16 (M2): on the chest CTA (its rule-based labels), target -58.8,117.7,670.7
    supine, the patient-position warning quoted supine's best path as "53 mm of aerated lung":
    the field-of-view-edge path that the findings rule ranks last among the proposals; the first
    proposal crosses 84.5 mm. The chosen position's best path must be the first proposal, and
    the warning must quote that proposal's lung mm."""
    from imagio.segmentation.rules import segment

    ct = io.read_image(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz")
    result = plan(PlanningProblem.build(ct, segment(ct), np.array([-58.8, 117.7, 670.7])))
    chosen = result.problem.constraints.patient_position
    best = result.positions[chosen]["best"]
    first = result.proposals[0]
    assert best is not None and np.allclose(best["entry_ras"], first.entry_ras), (best, first.entry_ras)
    said = [w for w in result.warnings if w.startswith("patient position:")]
    for w in said:
        if "worse best path" in w:
            assert f"{first.aerated_lung_mm:.0f} mm of aerated lung)" in w, (w, first.aerated_lung_mm)
