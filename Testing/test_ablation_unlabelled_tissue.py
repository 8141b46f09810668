"""New-user trial 95 F9: a liver zone took in 9.9 mL of tissue no label names (perihepatic fat and
abdominal wall that the TotalSegmentator map leaves unlabelled) and 2.75 mL of colon; the warning
named the colon only, so an organ the label map lacks would be heated unsaid. The zone's
unlabelled tissue is now said, from 0.05 mL (said "0.1 mL")."""

from imagio.planning.ablation.commands import zone_doubts


def _cov(healthy):
    return {"healthy_ml": healthy, "criteria": {}, "tumour_covered_pct": 100.0, "mam_mm": 6.0}


def test_unlabelled_tissue_in_the_zone_is_said():
    lines = zone_doubts("proposal 1", _cov({"liver": 30.0, "colon": 2.75, "unlabelled": 9.907}), "fix it",
                        "liver_tumor_1", "liver")
    said = [ln for ln in lines if "no label names" in ln]
    assert len(said) == 1 and "9.9 mL" in said[0] and "outside liver" in said[0]
    assert any("colon 2.75 mL" in ln for ln in lines)
    # the rule-based map's body outline is the unnamed rest too, summed with the background
    lines = zone_doubts("p", _cov({"liver": 30.0, "body": 0.6, "unlabelled": 0.3}), "f", "liver_tumor_1", "liver")
    assert any("0.9 mL of tissue that no label names" in ln for ln in lines)


def test_a_trace_of_unlabelled_tissue_is_not_said():
    for v in (0.0, 0.01, 0.049):
        lines = zone_doubts("p", _cov({"liver": 30.0, "unlabelled": v}), "f", "liver_tumor_1", "liver")
        assert not any("no label names" in ln for ln in lines), (v, lines)
