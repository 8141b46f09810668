"""Multi-probe ablation never proposes more probes than one probe that covers (new-user trial 54 M2).

On the phantom's liver_tumor_1 (30 mm) with the Emprint 100 W 10 min zone, `--multi-probe` said
"2 probes (lower bound 2) ... proven" and its zones took 0.47 mL of colon, while the
single-probe proposal's zone, centred on the target, covered tumour + 5 mm with no colon: the
set cover's candidate zones (lattice centres, zones shrunk 1 mm for the gaps between its sample
points) held no such zone, and the bound was read as one over every probe. The proposals'
single probes are now tried first; the lower bound is said to be over the candidate zones."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from imagio import phantom
from imagio.planning import Evaluator, PlanningProblem, plan
from imagio.planning.ablation import AblationContext, get_device
from imagio.planning.ablation.commands import ablation_for_plan
from imagio.planning.ablation.multiprobe import STATUS_KINDS, plan_multiprobe

MARGIN = 5.0


@pytest.fixture(scope="module")
def liver():
    ph = phantom.generate(spacing=2.0, seed=0)   # the trial's grid
    prob = PlanningProblem.build(ph.ct, ph.labels, "liver_tumor_1")
    p = plan(prob)
    assert p.feasible
    return p, ph.labels


def _inside(P, centre, axis, length_mm, diameter_mm):
    """Own ellipsoid test of RAS points P (n, 3) against a zone of plan.json."""
    u = np.asarray(axis, float) / np.linalg.norm(axis)
    d = P - np.asarray(centre, float)
    t = d @ u
    return t * t / (length_mm / 2) ** 2 + (np.einsum("pi,pi->p", d, d) - t * t) / (diameter_mm / 2) ** 2 <= 1.0


def _tumour_plus_margin(lab):
    """Own region: RAS voxel centres of the label grid within MARGIN mm of a tumour voxel centre."""
    tum = lab.array == next(v for v, n in lab.labels.items() if n == "liver_tumor_1")
    dist = ndimage.distance_transform_edt(~tum, sampling=lab.spacing_kji)
    return lab.kji_to_world(np.argwhere(dist <= MARGIN).astype(float))


def test_one_covering_probe_is_the_multi_probe_plan(liver):
    p, lab = liver
    dev = get_device("emprint")
    abl = ablation_for_plan(p, dev, "100W_10min", multi_probe=True)
    mp = abl["multi_probe"]
    region = _tumour_plus_margin(lab)
    # own check: some proposal's single zone holds every voxel centre of tumour + 5 mm
    single_cover = [all(_inside(region, z["centre_ras"], z["axis"], z["length_mm"], z["diameter_mm"]).all()
                        for z in d["zones"]) for d in abl["single_probe"]]
    assert any(single_cover)
    assert mp["n_probes"] == 1 and len(mp["zones"]) == 1
    assert mp["lower_bound"] == 1 and mp["status_kind"] == "one_probe" and "one_probe" in STATUS_KINDS
    z = mp["zones"][0]
    assert _inside(region, z["centre_ras"], z["axis"], z["length_mm"], z["diameter_mm"]).all()
    # it is one of the proposals' probes, placeable (an independent evaluator)
    k = mp["from_proposal"]
    assert single_cover[k - 1]
    assert mp["probes"][0]["entry_ras"] == abl["single_probe"][k - 1]["probes"][0]["entry_ras"]
    m = Evaluator(p.problem, p.maps).evaluate(mp["probes"][0]["entry_ras"], mp["probes"][0]["tip_ras"])
    assert m.feasible, m.details


def test_a_set_cover_states_its_bound_over_the_candidate_zones(liver):
    """Without the one-probe shortcut (a margin no single zone holds) the bound is a bound over the
    candidate zones and says so; it never exceeds the count found."""
    p, lab = liver
    dev = get_device("emprint")
    s = dev.setting("100W_5min")
    mp = plan_multiprobe(p, AblationContext(lab, "liver_tumor_1"), dev, s, margin_mm=MARGIN)
    d = mp.to_dict()
    assert d["n_probes"] >= 2 and d["status_kind"] in ("cover_proven", "cover_not_proven")
    assert 1 <= d["lower_bound"] <= d["n_probes"]
    assert "candidate zones" in d["lower_bound_over"] and "candidate zones" in STATUS_KINDS[d["status_kind"]] \
        or d["status_kind"] == "cover_not_proven"
