"""torch scoring gives the numpy results (CPU torch here; CUDA when marked gpu). Skipped
without torch: numpy is the default path.

Tolerances (stated in docs/GPU.md): feasibility (the violation bit set) identical on every path;
slack and clearance within 1e-3 mm (both scorers take the same trilinear samples of the same
float16 maps in float32; only float32 rounding of the sample positions differs, far below the
maps' own float16 step of <= 0.016 mm); the nearest structure identical except where two
structures are exactly equally near (then both name an equally near one)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import rotation  # noqa: E402
from imagio.planning import PlanningProblem  # noqa: E402
from imagio.planning.candidates import skin_candidates  # noqa: E402
from imagio.planning.distance_maps import precompute  # noqa: E402
from imagio.planning.scoring import score_paths  # noqa: E402
from imagio.planning.synthetic import synthetic_torso  # noqa: E402

# (spacing i, j, k mm; direction): oblique + anisotropic, and oblique with a mirrored axis
GRIDS = {
    "oblique": ((2.0, 2.5, 3.0), rotation((1, 0, 1), 12.0)),
    "flipped": ((3.0, 2.0, 2.5), rotation((0, 1, 1), 20.0) @ np.diag([1.0, -1.0, 1.0])),
}


def _case(grid="oblique", target="liver_tumor"):
    sp, d = GRIDS[grid]
    ct, lab = synthetic_torso(sp, direction=d)
    prob = PlanningProblem.build(ct, lab, target)
    return prob, precompute(prob)


def _parity(device, target="liver_tumor", grid="oblique"):
    prob, maps = _case(grid, target)
    cand = skin_candidates(maps, prob.target.point_ras, prob.needle.length_mm, 3.0)
    a = score_paths(prob, maps, cand.entry_ras, cand.normal_ras, device="numpy")
    # several device chunks (about 50,000 samples each): chunking changes nothing
    b = score_paths(prob, maps, cand.entry_ras, cand.normal_ras, device=device, device_samples=50_000)
    assert len(a) == len(b) > 1000 and a.n_samples == b.n_samples > 100_000
    return _compare(a, b)


def _compare(a, b):
    np.testing.assert_array_equal(a.violations, b.violations)   # feasibility: every path
    np.testing.assert_allclose(a.slack_mm, b.slack_mm, atol=1e-3)
    np.testing.assert_allclose(a.clearance_mm, b.clearance_mm, atol=1e-3)
    assert np.mean(a.closest == b.closest) > 0.99
    np.testing.assert_allclose(a.score, b.score, atol=1e-4)
    np.testing.assert_allclose(a.costs, b.costs, atol=1e-4)
    for f in ("pleural_crossings", "fissure_crossings", "forbidden_hit", "avoid_id"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    for f in ("lung_mm", "aerated_mm", "liver_before_mm", "avoid_mm", "emphysema_pct", "closest_t"):
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), atol=1e-3, err_msg=f)
    for f in ("skin_angle_deg", "craniocaudal_deg", "inplane_deg", "gantry_tilt_deg"):
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), atol=1e-9, err_msg=f)
    return a


def _check_nearest_map(maps, group):
    """The voxel map of the nearest ``group`` structure (the torch scorer's device lookup) names,
    at every crop voxel, the structure the k-d trees name, or an exactly equally near one."""
    from scipy.spatial import cKDTree

    near = maps.nearest_map(group)
    field = maps.hard if group == "hard" else maps.avoid
    assert near.shape == maps.label.shape and near.dtype == np.int16
    far = field >= np.float16(maps.cap_mm)   # no structure within the cap: -1 in both
    assert np.all(near[far] == -1) and 0.05 < 1 - far.mean() < 1
    ref = np.full(near.size, -1, np.int16)
    look = maps.hard_structure if group == "hard" else maps.avoid_structure
    ref[~far.ravel()] = look(np.flatnonzero(~far))
    bad = np.flatnonzero(ref != near.ravel())
    assert len(bad) < 0.02 * near.size
    assert np.all(ref[bad] >= 0) and np.all(near.ravel()[bad] >= 0)
    bnd = maps._boundaries()
    q = np.stack(np.unravel_index(bad, near.shape), 1) * bnd.sp

    def value(s):   # per voxel: distance - margin to structure s[i]'s boundary voxel centres
        out = np.empty(len(s))
        for i in np.unique(s):
            sel = s == i
            m = maps.hard_margins[i] if group == "hard" else 0.0
            out[sel] = cKDTree(bnd.pts[bnd.ids == i]).query(q[sel])[0] - m
        return out

    np.testing.assert_allclose(value(ref[bad]), value(near.ravel()[bad]), atol=1e-9)
    return ref


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_nearest_map_is_the_kdtree_rule_on_every_voxel(grid):
    _check_nearest_map(_case(grid)[1], "hard")


def test_torch_cpu_matches_numpy_avoid_region_disabled_rule():
    """'avoid' structures (their nearest-structure map), an allowed entry region (a ball) and a
    rule switched off: the same table from both scorers."""
    from imagio.planning.problem import Constraints
    from imagio.planning.scoring import BIT

    sp, d = GRIDS["oblique"]
    ct, lab = synthetic_torso(sp, direction=d)
    roles = {"portal_vein": "avoid", "aorta": "avoid"}
    prob = PlanningProblem.build(ct, lab, "liver_tumor", roles=roles)
    cand = skin_candidates(precompute(prob), prob.target.point_ras, prob.needle.length_mm, 3.0)
    c = Constraints(entry_region=(cand.entry_ras[len(cand) // 2], 60.0), disabled_rules=("craniocaudal",))
    prob = PlanningProblem.build(ct, lab, "liver_tumor", roles=roles, constraints=c)
    maps = precompute(prob)
    assert maps.has["avoid"]
    ref = _check_nearest_map(maps, "avoid")
    assert len(np.unique(ref[ref >= 0])) == 2   # both avoid structures are someone's nearest
    a = score_paths(prob, maps, cand.entry_ras, cand.normal_ras, device="numpy")
    b = score_paths(prob, maps, cand.entry_ras, cand.normal_ras, device="cpu", device_samples=50_000)
    _compare(a, b)
    inside = (a.violations & BIT["entry_region"]) == 0
    assert 0 < inside.sum() < len(a) and not (a.violations & BIT["craniocaudal"]).any()
    assert len(np.unique(a.avoid_id[a.avoid_id >= 0])) == 2


def test_torch_cpu_matches_numpy_bone_target():
    """A target point in a rib (bone biopsy): the final-run rule and the bone criterion agree."""
    from imagio.planning.scoring import BIT

    a = _parity("cpu", np.array([117.6, 0.0, 15.0]))
    assert (a.violations & BIT["bone_reentry"]).any()


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_torch_cpu_matches_numpy(grid):
    a = _parity("cpu", grid=grid)
    assert 0 < a.feasible.sum() < len(a)   # both kinds of path are compared


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_torch_cuda_matches_numpy(grid):
    _parity("cuda", grid=grid)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_auto_device_keeps_a_first_plan_on_numpy():
    """"auto" on a GPU machine: a first plan's few thousand candidates stay on numpy (no
    nearest-structure maps are built: the GPU's one-time setup costs more than numpy's scoring,
    docs/GPU.md); once the maps hold them (an explicit CUDA call), "auto" uses the GPU, with
    numpy's feasibility."""
    from imagio.planning.scoring import AUTO_DEVICE_MIN_PATHS

    prob, maps = _case("oblique")
    cand = skin_candidates(maps, prob.target.point_ras, prob.needle.length_mm, 3.0)
    assert len(cand.entry_ras) < AUTO_DEVICE_MIN_PATHS
    a = score_paths(prob, maps, cand.entry_ras, cand.normal_ras, device="auto")
    assert not maps.has_nearest_maps
    score_paths(prob, maps, cand.entry_ras[:10], cand.normal_ras[:10], device="cuda")
    assert maps.has_nearest_maps
    b = score_paths(prob, maps, cand.entry_ras, cand.normal_ras, device="auto")
    np.testing.assert_array_equal(a.violations, b.violations)


def test_device_chunks_cover_paths_within_both_limits():
    from imagio.planning.scoring import device_chunks

    counts = np.random.default_rng(0).integers(2, 400, 5000)
    counts[17] = 5000   # one path alone above the sample limit: a chunk of its own
    ch = device_chunks(counts, 700, 3000)
    assert ch[0][0] == 0 and ch[-1][1] == len(counts) and all(b == c for (_, b), (c, _) in zip(ch, ch[1:]))
    for a, b in ch:
        assert 0 < b - a <= 700 and (counts[a:b].sum() <= 3000 or b - a == 1)
    assert (17, 18) in ch
    assert device_chunks(counts, 1000, 10**9) == [(a, min(a + 1000, 5000)) for a in range(0, 5000, 1000)]
