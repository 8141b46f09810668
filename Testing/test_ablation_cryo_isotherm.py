"""New-user trial 32 H2: a cryoablation plan with the default setting measured coverage and the
minimal ablative margin on the 0 C isotherm (the ice-ball edge seen on CT, which kills no tissue)
and called the margin met, with no word of which isotherm it was. Now the default cryo setting is
the first single-probe row at or below the lethal isotherm (ablation_criteria.json, Littrup 2009),
plan.json and the report say which isotherm the zone is, and a warmer one is warned."""

import pytest

from imagio import phantom
from imagio.planning import PlanningProblem, plan
from imagio.planning.ablation import get_device
from imagio.planning.ablation.commands import ablation_for_plan
from imagio.planning.ablation.criteria import value
from imagio.report import ablation_sections


@pytest.fixture(scope="module")
def liver_plan():
    ph = phantom.generate(spacing=3.0)
    p = plan(PlanningProblem.build(ph.ct, ph.labels, "liver_tumor_1"), k=1)
    assert p.feasible
    return p


@pytest.mark.parametrize("name", ["icerod", "iceseed"])
def test_default_cryo_setting_is_lethal(name):
    s = get_device(name).setting()
    assert s.probes == 1 and s.isotherm_c <= value("cryo_lethal_isotherm_c") < 0


def test_isotherm_is_stated_and_the_ice_ball_edge_warned(liver_plan):
    lethal = value("cryo_lethal_isotherm_c")
    d = ablation_for_plan(liver_plan, "icerod", None)
    assert d["isotherm_c"] <= lethal and "lethal" in d["zone_edge"] and "NOT" not in d["zone_edge"]
    assert not any("does not kill tissue" in w for w in d["warnings"]), d["warnings"]
    rows = dict(ablation_sections(d)[0][1])
    assert f"{d['isotherm_c']:g} C isotherm" in rows["zone edge"]
    ice = ablation_for_plan(liver_plan, "icerod", "10min_0C")
    assert ice["isotherm_c"] == 0 and "NOT lethal" in ice["zone_edge"]
    w = " | ".join(ice["warnings"])
    assert "measured on the 0 C isotherm" in w and "does not kill tissue" in w, w
    assert "NOT lethal" in dict(ablation_sections(ice)[0][1])["zone edge"]
    # the 0 C zone's geometry may cover the tumour with its margin, but that is not the tissue killed:
    # never "met" nor compliant (new-user trial 112: compliant true beside the warning)
    for sp in ice["single_probe"]:
        crit = sp["coverage"]["criteria"]
        for k in ("tumour_covered", "minimal_ablative_margin", "ideal_margin"):
            assert crit[k]["met"] is not True, (k, crit[k])
        assert sp["coverage"]["compliant"] is not True, sp["coverage"]["compliant"]


def test_a_non_lethal_zone_that_meets_its_criteria_is_not_compliant():
    """`non_lethal_criteria` on a zone whose geometry meets every criterion: at 0 C each is None with
    the reason and the zone is not compliant (None); at the lethal isotherm and for heat ablation
    nothing changes; a criterion already failed stays False."""
    from imagio.planning.ablation.commands import non_lethal_criteria

    def zone(cov_met=True):
        crit = {"tumour_covered": {"value": 100.0, "required": 100.0, "met": cov_met},
                "minimal_ablative_margin": {"value": 6.1, "required": 5.0, "met": True},
                "ideal_margin": {"value": 6.1, "required": 10.0, "met": False},
                "no_hollow_viscus": {"value": 0.0, "required": 0.0, "met": True}}
        return {"criteria": crit, "compliant": cov_met}

    lethal = value("cryo_lethal_isotherm_c")
    ice = non_lethal_criteria(zone(), "cryoablation", 0)
    assert ice["compliant"] is None
    for k in ("tumour_covered", "minimal_ablative_margin"):
        assert ice["criteria"][k]["met"] is None and "does not kill" in ice["criteria"][k]["not_verifiable"]
    assert ice["criteria"]["ideal_margin"]["met"] is False and ice["criteria"]["no_hollow_viscus"]["met"] is True
    assert non_lethal_criteria(zone(False), "cryoablation", 0)["compliant"] is False
    assert non_lethal_criteria(zone(), "cryoablation", lethal) == zone()
    assert non_lethal_criteria(zone(), "microwave", None) == zone()
    # not verifiable is not "not met": no sentence that the tumour's edge is not ablated, and the
    # report's row says why it is not verifiable (trial 116 M5)
    from imagio.planning.ablation.commands import zone_doubts
    from imagio.report import ablation_rows

    cov = dict(non_lethal_criteria(zone(), "cryoablation", 0), tumour_covered_pct=100.0, mam_mm=6.1,
               mam_ras=[0.0, 0.0, 0.0], margin_covered_pct={})
    assert not any("not ablated" in w for w in zone_doubts("proposal 1", cov, "fix", "tumor", "liver", False, None))
    row = dict(ablation_rows({"coverage": cov}))["tumour covered (%)"]
    assert "not verifiable" in row and "lies partly outside" not in row, row

def test_heat_ablation_states_no_isotherm(liver_plan):
    d = ablation_for_plan(liver_plan, "emprint", "100W_5min")
    assert d["isotherm_c"] is None and not any("isotherm" in w for w in d["warnings"])
