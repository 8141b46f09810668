"""New-user trial 32 H4: the multi-probe cover put several probes through one skin entry (the
same track) and said only "N probes"; for cryoablation the probes freeze at once, so two 17G
cryoprobes would lie in the same tissue. Now shared entries are listed (plan.json
``shared_entries``), warned (cryo: cannot be placed; microwave/RF: one probe repositioned along
one track), and the report lists every probe's entry and tip. Since the cover keeps cryoprobes on their own
entries (test_ablation_cryo_spacing.py), the cryo warning is the safety net: it is checked on the
microwave cover's probes (which share a track) taken as cryoprobes."""

import numpy as np
import pytest

from imagio import phantom
from imagio.planning import PlanningProblem, plan
from imagio.planning.ablation import get_device
from imagio.planning.ablation.commands import ablation_for_plan, ablation_warnings
from imagio.planning.problem import Needle
from imagio.report import ablation_sections


def _groups(probes):
    """Independent check: probes whose entries are equal to 0.5 mm, by pairs."""
    E = np.array([p["entry_ras"] for p in probes])
    pairs = {(i + 1, j + 1) for i in range(len(E)) for j in range(i + 1, len(E))
             if np.linalg.norm(E[i] - E[j]) < 0.5}
    return pairs


@pytest.fixture(scope="module")
def microwave():
    ph = phantom.generate(spacing=3.0)
    # the antenna's own 13G shaft as the needle, as `imagio plan --device emprint`
    p = plan(PlanningProblem.build(ph.ct, ph.labels, "liver_tumor_1", needle=get_device("emprint").needle(Needle())))
    assert p.feasible
    return ablation_for_plan(p, "emprint", "100W_5min", multi_probe=True)


def test_shared_entries_are_listed_and_microwave_ones_called_sequential(microwave):
    m = microwave["multi_probe"]
    pairs = _groups(m["probes"])
    assert pairs, "the case no longer shares an entry: the test needs another"
    got = {(a, b) for g in m["shared_entries"] for a in g for b in g if a < b}
    assert got == pairs
    w = " | ".join(microwave["warnings"])
    assert "cryoprobes" not in w, w
    for g in m["shared_entries"]:
        said = [x for x in microwave["warnings"] if f"probes {', '.join(map(str, g))} share one skin entry" in x]
        assert len(said) == 1, w
        # independent: a pull-back along one track keeps every tip on the first probe's axis
        e, t = (np.array([m["probes"][k - 1][f] for k in g], float) for f in ("entry_ras", "tip_ras"))
        u = (t[0] - e[0]) / np.linalg.norm(t[0] - e[0])
        off = max(np.linalg.norm(np.cross(tip - e[0], u)) for tip in t)
        if off <= 0.5:
            assert "repositioned along one track" in said[0], said
        else:   # trial 43 F1: two tracks 5.2 deg apart were called one track
            assert "repositioned along one track" not in said[0] and f"along {len(g)} tracks" in said[0], said
            assert f"tips up to {round(off, 1):g} mm off the first track" in said[0], said
    rows = dict(ablation_sections(microwave)[-1][1])
    for k, p in enumerate(m["probes"], start=1):
        assert str([round(x, 1) for x in p["entry_ras"]]) in rows[f"probe {k} entry -> tip RAS (mm)"]
        assert str([round(x, 1) for x in p["tip_ras"]]) in rows[f"probe {k} entry -> tip RAS (mm)"]


def test_cryoprobes_through_one_entry_are_still_warned(microwave):
    cryo = {**microwave, "device": "icerod", "setting": "10min_-20C", "modality": "cryoablation", "isotherm_c": -20,
            "multi_probe": {**microwave["multi_probe"], "modality": "cryoablation"}}
    w = " | ".join(ablation_warnings(cryo))
    for g in cryo["multi_probe"]["shared_entries"]:
        assert f"probes {', '.join(map(str, g))} share one skin entry" in w and "cryoprobes freeze" in w, w
