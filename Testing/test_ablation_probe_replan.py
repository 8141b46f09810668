"""Review 44 L1: `multiprobe.plan_for_probe` kept its re-plan per shaft (length, diameter,
uncertainty), not per needle: ``beyond_tip_mm`` became per procedure (a core needle's throw is
checked past the target, an ablation probe's is not), so a probe needle differing only there got
the other needle's plan. Case: the synthetic torso whose tumour lies 10 mm in front of the aorta,
entries in front only, so every path's continued axis meets the aorta (the biopsy plan warns each
proposal)."""

from dataclasses import dataclass, replace

import numpy as np

from imagio.planning import PlanningProblem, plan
from imagio.planning.ablation import get_device
from imagio.planning.ablation.devices import Device
from imagio.planning.ablation.multiprobe import plan_for_probe
from imagio.planning.problem import Constraints, beyond_tip_default
from imagio.planning.synthetic import synthetic_torso


@dataclass(frozen=True)
class _FiredProbe(Device):
    """A probe whose advance past the target is checked like a core needle's throw."""

    def needle(self, needle):
        return replace(super().needle(needle), beyond_tip_mm=beyond_tip_default("core_biopsy"))


def _past_tip(result):
    return [w for w in result.warnings if "continued past the target" in w]


def test_two_procedures_on_one_case_are_planned_each_for_its_own_needle():
    ct, lab = synthetic_torso(3.0)
    arr, names = lab.array.copy(), dict(lab.labels)
    kji = np.stack(np.indices(arr.shape), -1).reshape(-1, 3).astype(float)
    d = np.linalg.norm(lab.kji_to_world(kji) - [-25.0, -23.0, 0.0], axis=1).reshape(arr.shape)
    v = max(names) + 1
    arr[d <= 5.0] = v
    names[v] = "soft_tissue_tumor"
    c = Constraints(entry_region=(np.array([-25.0, 98.0, 0.0]), 25.0))
    biopsy = plan(PlanningProblem.build(ct, lab.with_array(arr, labels=names), "soft_tissue_tumor", constraints=c), k=3)
    assert biopsy.feasible and _past_tip(biopsy)             # the core needle's throw meets the aorta
    dev = get_device("emprint")
    probe = plan_for_probe(biopsy, dev)
    assert probe.problem.needle.beyond_tip_mm == 0.0 and not _past_tip(probe)   # a placed probe: not checked
    fired = plan_for_probe(biopsy, _FiredProbe(**vars(dev)))
    # the same shaft, another beyond_tip: its own plan, which checks the throw again
    assert fired.problem.needle.diameter_mm == probe.problem.needle.diameter_mm
    assert fired is not probe and fired.problem.needle.beyond_tip_mm == beyond_tip_default("core_biopsy")
    assert _past_tip(fired)
    assert plan_for_probe(biopsy, dev) is probe                # still one re-plan per needle
