"""Lung targets at the lung base (new-user trial 92, H1): the liver-before-target figure is unknown
(null) without a liver label, never 0.0."""

import numpy as np
from conftest import rotation

from imagio.planning import PlanningProblem, plan
from imagio.planning.synthetic import synthetic_torso
from imagio.report import sections

SPACING = (2.4, 2.2, 2.8)
DIRECTION = rotation((0, 0, 1), 20.0) @ rotation((1, 0, 0), 8.0) @ np.diag([-1.0, 1.0, -1.0])  # oblique, flipped
BASE_TARGET = (75.0, 10.0, 57.0)   # right lower lobe, 7 mm above its flat base (z = 50) over the liver


def _torso(liver_labelled: bool):
    ct, lab = synthetic_torso(spacing=SPACING, direction=DIRECTION)
    if liver_labelled:
        return ct, lab
    arr = lab.array.copy()
    arr[np.isin(arr, (2, 3, 6))] = 1   # liver, its tumour and portal vein left in the body label
    return ct, lab.with_array(arr, labels={v: n for v, n in lab.labels.items() if v not in (2, 3, 6)})


def _rows(doc, label):
    return next(r for title, rows in sections(doc, {}) if title == "Proposed trajectories"
                for r in rows[0][2] if r[0] == label)


def test_liver_before_target_is_unknown_without_a_liver_label():
    """No liver label: every proposal's liver_before_target_mm is None (plan.json null) and the
    report's table says "unknown (no liver label)"; with the liver labelled a lung target's figure
    is the liver the path crosses (its length_in_mm), not a 0 that reads as "no liver"."""
    ct, lab = _torso(liver_labelled=False)
    p = plan(PlanningProblem.build(ct, lab, BASE_TARGET))
    assert p.proposals
    assert all(m.liver_before_target_mm is None for m in p.proposals)
    doc = p.to_dict()
    assert all(d["liver_before_target_mm"] is None for d in doc["proposals"])
    row = _rows(doc, "liver before target (mm)")
    assert all(v == "unknown (no liver label)" for v in row[1:]), row
    ct, lab = _torso(liver_labelled=True)
    p = plan(PlanningProblem.build(ct, lab, BASE_TARGET))
    assert all(m.liver_before_target_mm == m.length_in_mm.get("liver", 0.0) for m in p.proposals)
