"""Independent brute-force check of every proposal: the path re-sampled every 0.1 mm on the
label map (nearest voxel, Volume.sample) crosses no forbidden voxel, keeps every margin, and
every reported clearance matches a KD-tree distance to the structure's voxels."""

import json

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree

from imagio import io
from imagio.planning import PlanningProblem, plan
from imagio.planning.problem import fallback_label_map
from imagio.planning.synthetic import synthetic_torso


def brute_force_check(prob: PlanningProblem, result, cap_mm: float | None = None) -> int:
    """Assert the hard constraints and reported clearances of every proposal; returns the
    number of proposals checked."""
    cap_mm = result.maps.cap_mm if cap_mm is None else cap_mm
    lab = prob.labels
    inv = {s.name: s.value for s in prob.structures}
    hard = [s for s in prob.structures if s.role in ("forbidden", "margin") and s.value != prob.exempt_value]
    forbidden = [s.value for s in hard if s.role == "forbidden"]
    sp = lab.spacing
    half, diag = 0.5 * float(sp.min()), float(np.linalg.norm(sp))
    assert result.proposals, result.report
    for m in result.proposals:
        e, t = np.asarray(m.entry_ras), np.asarray(m.target_ras)
        n = int(np.ceil(np.linalg.norm(t - e) / 0.1)) + 1
        pts = e + np.linspace(0.0, 1.0, n)[:, None] * (t - e)
        vals = lab.sample(pts, order=0)
        assert not np.isin(vals, forbidden).any(), (m.entry_ras, np.unique(vals))
        lo = lab.world_to_kji(np.minimum(e, t)[None] - 40.0)[0]
        hi = lab.world_to_kji(np.maximum(e, t)[None] + 40.0)[0]
        lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
        lo = np.clip(np.floor(lo).astype(int), 0, lab.shape)
        hi = np.clip(np.ceil(hi).astype(int) + 1, 0, lab.shape)
        sub = lab.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        sample = pts[:: max(1, int(half / 0.1))]
        for s in hard + [s for s in prob.structures if s.name in m.clearance_mm]:
            mask = sub == s.value
            if not mask.any():
                continue
            shell = mask & ~ndimage.binary_erosion(mask, border_value=0)
            xyz = lab.kji_to_world(np.argwhere(shell) + lo)
            d = float(cKDTree(xyz).query(sample)[0].min()) - half   # to the voxelised boundary
            if s.name in m.clearance_mm:
                assert abs(m.clearance_mm[s.name] - d) <= diag, (s.name, m.clearance_mm[s.name], d)
            elif d < cap_mm - diag:
                pytest.fail(f"{s.name} at {d:.1f} mm of the path but not reported")
            if s.role == "margin":
                assert d >= s.margin_mm + prob.needle.widening_mm - diag, (s.name, d)
            else:
                assert d >= prob.needle.widening_mm - diag, (s.name, d)
        if m.closest_structure:
            assert m.closest_structure in inv
    return len(result.proposals)


def test_bruteforce_synthetic_torso_oblique():
    from conftest import rotation

    d = rotation((0, 0, 1), 25.0) @ rotation((1, 0, 0), 10.0)
    ct, lab = synthetic_torso((3.0, 2.5, 3.5), direction=d)
    prob = PlanningProblem.build(ct, lab, "liver_tumor")
    result = plan(prob)
    assert brute_force_check(prob, result) >= 3
    # proposals: ranked by score, feasible, entries at least 15 mm apart
    scores = [m.score for m in result.proposals]
    assert scores == sorted(scores) and all(m.feasible for m in result.proposals)
    ent = np.array([m.entry_ras for m in result.proposals])
    dd = np.linalg.norm(ent[:, None] - ent[None], axis=-1) + np.eye(len(ent)) * 1e9
    assert dd.min() >= 15.0
    # liver rule: every proposal crosses >= 10 mm of liver before the tumour
    assert all(m.liver_before_target_mm >= 10.0 for m in result.proposals)


@pytest.mark.data
def test_bruteforce_totalsegmentator_liver(shared_data):
    base = shared_data / "totalsegmentator-example"
    ct = io.read_image(base / "example_ct_sm.nii.gz")
    seg = io.read_image(base / "example_seg.nii.gz")
    names = {int(k): v for k, v in json.loads((base / "labels_total_v2.json").read_text()).items()}
    present = set(np.unique(seg.array).tolist()) - {0}
    seg = seg.with_array(seg.array.astype(np.uint8), labels={v: names[v] for v in present})
    liver = seg.mask("liver")
    kji = np.argwhere(liver)
    target = seg.kji_to_world(kji[len(kji) // 2][None].astype(float))[0]
    prob = PlanningProblem.build(ct, seg, target)
    result = plan(prob)
    assert prob.target.organ == "liver"
    assert brute_force_check(prob, result) >= 1


@pytest.mark.data
def test_bruteforce_pyradiomics_lung2(shared_data):
    base = shared_data / "pyradiomics-lung"
    ct = io.read_image(base / "lung2_image.nrrd")
    lesion = io.read_image(base / "lung2_label.nrrd").array > 0
    lab = fallback_label_map(ct, lesion, "lung_nodule")
    prob = PlanningProblem.build(ct, lab, "lung_nodule")
    result = plan(prob)
    assert brute_force_check(prob, result) >= 1
    best = result.proposals[0]
    assert best.pleural_crossings <= 1
