"""New-user trial 32 H1: when the fully advanced probe (zone centre on the target) broke a hard
constraint, the fallback stepped the advance down by 2 mm from the setting's tip-to-centre offset
and stopped above 0 mm, so for an odd or non-integer offset (Emprint 100W_10min: 19 mm) the tip on
the target (the planned path itself) was never tried; the infeasible full advance was kept, called
"zone centred on the target", and its coverage printed as the plan's. Here the needle is only
0.5 mm longer than the planned path, so every advance of 1 mm or more is too long."""

from dataclasses import replace

import numpy as np
import pytest

from imagio import phantom
from imagio.planning import PlanningProblem, plan
from imagio.planning.ablation import AblationContext, get_device
from imagio.planning.ablation.commands import ablation_warnings
from imagio.planning.ablation.multiprobe import place_on_path


@pytest.fixture(scope="module")
def short_needle():
    ph = phantom.generate(spacing=3.0)
    prob = PlanningProblem.build(ph.ct, ph.labels, "liver_tumor_1")
    p = plan(prob, k=3)
    for _ in range(4):   # a needle 0.5 mm longer than the shortest proposal, until one is that long
        assert p.feasible
        need = min(m.length_mm for m in p.proposals) + 0.5
        if any(m.length_mm + 1.0 > p.problem.needle.length_mm for m in p.proposals):
            break
        p = plan(PlanningProblem.build(ph.ct, ph.labels, "liver_tumor_1",
                                       needle=replace(prob.needle, length_mm=need)), k=3)
    return p, AblationContext(ph.labels, "liver_tumor_1")


def test_odd_offset_falls_back_to_the_tip_on_the_target(short_needle):
    p, ctx = short_needle
    dev = get_device("emprint")
    s = dev.setting("100W_10min")
    assert s.centre_offset_mm % 2 == 1   # odd: 2 mm steps from it never reach 0
    tight = 0
    for m in p.proposals:
        pp = place_on_path(p, ctx, dev, s, m.entry_ras)
        probe = pp.probes[0]
        target = np.asarray(p.problem.target.point_ras, float)
        if m.length_mm + 1.0 > p.problem.needle.length_mm:   # no advance of 1 mm fits
            tight += 1
            assert probe.feasible, (probe, pp.status)
            assert np.linalg.norm(np.asarray(probe.tip_ras) - target) < 1e-6
            assert pp.status.startswith("single probe advanced 0 of 19 mm"), pp.status
        assert probe.feasible or pp.status.startswith("INFEASIBLE"), (probe, pp.status)
    assert tight >= 1


def test_an_infeasible_placement_is_warned():
    """Whenever a placed probe is infeasible the plan's warnings say so."""
    abl = {"device": "emprint", "setting": "100W_10min", "tumour": "liver_tumor_1",
           "single_probe": [{"proposal": 1, "coverage": {}, "probes": [
               {"feasible": False, "violations": ["clearance"], "length_mm": 91.5, "entry_ras": [0, 0, 0],
                "tip_ras": [0, 0, 91.5]}]}]}
    w = " | ".join(ablation_warnings(abl))
    assert "proposal 1 ablation (emprint 100W_10min, one probe): the probe breaks clearance" in w, w
