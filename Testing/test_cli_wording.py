"""Wording (new-user trial 62 L2, L3): one probe 'was' placed; a stretch of airway mask with no
bronchus on the CT says why (no contrast between core, wall ring and surroundings), not
"neither an air core nor a bronchial wall" for a -1000 HU centre."""

import numpy as np
import pytest

from imagio.errors import InputError
from imagio.planning.ablation.devices import get_device
from imagio.planning.ablation.zones import Probe, zones
from imagio.planning.bronchoscopy.mask_checks import wall_less_warning


def test_one_probe_was_placed():
    dev = get_device("icerod")
    multi = next(s for s in dev.settings.values() if s.probes > 1)
    with pytest.raises(InputError, match=r"; 1 was placed\."):
        zones([Probe(np.zeros(3), np.array([0.0, 0.0, 1.0]))], multi)


def test_air_core_without_contrast_is_said_as_such():
    run = {"mm": 12.0, "ras": [100.0, 26.0, -769.0], "lumen_mm": 6.7, "core_hu": -1000.0, "wall_hu": -1000.0,
           "ref_hu": -995.0, "resolved": True}
    msg = wall_less_warning(run, "the route")
    assert "neither an air core" not in msg
    assert "centre -1000 HU, wall ring -1000 HU, surroundings -995 HU: no contrast" in msg, msg


def test_no_path_to_a_given_point_names_the_point_not_its_host_label():
    """Trial 65 L3: a point target in an unlabelled mass read "no feasible needle path to body" (the
    label at the point is its host). The message names the point and its host; a named structure
    target keeps its name."""
    from imagio.planning import PlanningProblem, plan
    from imagio.planning.planner import format_report
    from imagio.planning.problem import Needle
    from imagio.planning.synthetic import synthetic_torso

    ct, lab = synthetic_torso(4.0)
    value = next(v for v, n in lab.labels.items() if n == "liver_tumor")
    point = lab.kji_to_world(np.argwhere(lab.array == value).mean(axis=0)[None])[0]
    short = Needle(length_mm=20.0)          # no skin within reach: no feasible path
    res = plan(PlanningProblem.build(ct, lab, point, needle=short))
    assert not res.feasible
    msg = format_report(res.report)
    x, y, z = point
    assert msg.startswith(f"no feasible needle path to the target point R,A,S {x:.1f}, {y:.1f}, {z:.1f} mm "
                          "(in 'liver_tumor')"), msg
    named = format_report(plan(PlanningProblem.build(ct, lab, "liver_tumor", needle=short)).report)
    assert named.startswith("no feasible needle path to liver_tumor:"), named


def test_the_couch_side_excluding_most_names_another_position():
    """Trial 80 (M6): STS_002's ablation was refused with 666 entries excluded only by the couch
    side, and the advice named a longer needle, gantry tilt and a margin, not the position that
    plans it (prone: 666 feasible). When the table side excludes the most entries by itself, the
    message names --position first; otherwise it does not."""
    from imagio.planning.planner import format_report

    rep = {"target": "sarcoma_1", "candidates": 4886, "best_near_miss": {"entry_ras": [1, 2, 3], "details": ["d"]},
           "excluded_by": {"table_side": {"violating": 4882, "only_this": 666},
                           "skin_angle": {"violating": 3000, "only_this": 10}}}
    msg = format_report(rep)
    assert "--position prone" in msg and msg.index("--position") < msg.index("relax the constraint")
    rep["excluded_by"]["table_side"]["only_this"] = 5
    assert "--position" not in format_report(rep) and "Relax the constraint" in format_report(rep)
