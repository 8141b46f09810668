"""torch scoring gives the numpy results (CPU torch here; CUDA when marked gpu). Skipped
without torch: numpy is the default path."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from imagio.planning import PlanningProblem  # noqa: E402
from imagio.planning.candidates import skin_candidates  # noqa: E402
from imagio.planning.distance_maps import precompute  # noqa: E402
from imagio.planning.scoring import score_paths  # noqa: E402
from imagio.planning.synthetic import synthetic_torso  # noqa: E402


def _parity(device, target="liver_tumor"):
    from conftest import rotation
    ct, lab = synthetic_torso((2.0, 2.5, 3.0), direction=rotation((1, 0, 1), 12.0))
    prob = PlanningProblem.build(ct, lab, target)
    maps = precompute(prob)
    cand = skin_candidates(maps, prob.target.point_ras, prob.needle.length_mm, 3.0)
    a = score_paths(prob, maps, cand.entry_ras, cand.normal_ras, device="numpy")
    b = score_paths(prob, maps, cand.entry_ras, cand.normal_ras, device=device)
    assert len(a) == len(b) > 1000 and a.n_samples == b.n_samples
    assert np.mean(a.violations == b.violations) > 0.999
    np.testing.assert_allclose(a.slack_mm, b.slack_mm, atol=1e-3)
    np.testing.assert_allclose(a.score, b.score, atol=1e-4)
    for f in ("pleural_crossings", "fissure_crossings", "forbidden_hit"):
        assert np.mean(getattr(a, f) == getattr(b, f)) > 0.999, f
    np.testing.assert_allclose(a.lung_mm, b.lung_mm, atol=1e-3)
    np.testing.assert_allclose(a.liver_before_mm, b.liver_before_mm, atol=1e-3)
    return a


def test_torch_cpu_matches_numpy_bone_target():
    """A target point in a rib (bone biopsy): the final-run rule and the bone criterion agree."""
    from imagio.planning.scoring import BIT

    a = _parity("cpu", np.array([117.6, 0.0, 15.0]))
    assert (a.violations & BIT["bone_reentry"]).any()


def test_torch_cpu_matches_numpy():
    _parity("cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_torch_cuda_matches_numpy():
    _parity("cuda")
