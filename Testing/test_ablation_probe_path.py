"""A probe's antenna is advanced past the target so that its zone centre lands on it; that
advance can cross a structure or leave the host organ. New-user trial 19: a microwave antenna
ran through the right adrenal gland (role avoid) and its tip ended in the retroperitoneum, and the
plan said only that the zone took in adrenal tissue. Every probe now reports what its antenna
crosses and where its tip lies, and both are warnings. Independent check: the label map sampled
along each probe (0.1 mm steps, nearest voxel) on an oblique, flipped, anisotropic grid."""

import numpy as np
import pytest
from conftest import block_in_air, rotation

from imagio.planning import PlanningProblem, plan
from imagio.planning.ablation.commands import ablation_for_plan
from imagio.volume import Volume

BODY, LIVER, ADRENAL, TUMOUR = 1, 2, 3, 4


def _small_liver(direction):
    """A soft-tissue block ('body'), a 12 mm-radius 'liver' ball holding a 6 mm-radius
    'liver_tumor_1' at the RAS origin, wrapped in a 2 mm shell of 'adrenal_gland_right' (role
    avoid): every path crosses the shell on the way in, and a tip advanced 14 mm past the
    tumour's centre lies beyond the liver and the shell."""
    ref, (x, y, z), body = block_in_air((1.3, 1.6, 1.9), (130, 110, 100), direction, (80, 60, 90))
    r = np.sqrt(x ** 2 + y ** 2 + z ** 2)
    lab = np.where(body, BODY, 0).astype(np.uint8)
    lab[r <= 14.0] = ADRENAL
    lab[r <= 12.0] = LIVER
    lab[r <= 6.0] = TUMOUR
    rng = np.random.default_rng(0)
    ct = np.where(body, 45, -1000) + np.where(lab == TUMOUR, -20, 0) + rng.normal(0, 8, lab.shape)
    names = {BODY: "body", LIVER: "liver", ADRENAL: "adrenal_gland_right", TUMOUR: "liver_tumor_1"}
    return ref.with_array(ct.astype(np.int16)), Volume(lab, ref.ijk_to_ras, "labels", names)


def _labels_on(lab: Volume, a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    pts = a + np.linspace(0.0, 1.0, int(np.linalg.norm(b - a) / 0.1) + 2)[:, None] * (b - a)
    return lab.sample(pts, order=0).astype(int)


@pytest.mark.parametrize("grid", ["axial", "oblique"])
def test_probe_crossing_and_tip_beyond_the_organ_are_warned(grid):
    d = np.eye(3) if grid == "axial" else rotation((2.0, 1.0, 1.0), 25.0) @ np.diag([1.0, 1.0, -1.0])
    ct, lab = _small_liver(d)
    result = plan(PlanningProblem.build(ct, lab, "liver_tumor_1"), k=2)
    abl = ablation_for_plan(result, "emprint", "100W_5min")
    assert abl["centre_offset_mm"] > 12.0 - 6.0 + 2.0       # the tip leaves liver and shell
    warned = " | ".join(abl["warnings"])
    for d_ in abl["single_probe"]:
        for p in d_["probes"]:
            seen = _labels_on(lab, p["entry_ras"], p["tip_ras"])
            tip = int(lab.sample(np.asarray(p["tip_ras"])[None], order=0)[0])
            assert ADRENAL in seen and "adrenal_gland_right" in p["crossed_mm"], (p, set(seen))
            assert tip not in (LIVER, TUMOUR) and p["tip_in"] == lab.labels.get(tip, "unlabelled"), p
            what = f"proposal {d_['proposal']} ablation probe"
            assert f"{what}: the probe crosses adrenal_gland_right" in warned, warned
            assert f"{what}: the probe's tip lies in {p['tip_in']}" in warned, warned
