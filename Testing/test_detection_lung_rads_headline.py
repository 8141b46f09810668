"""The scan's Lung-RADS headline (`detection.pipeline.scan_lung_rads`, the report's follow-up,
the cohort's case table) when low-probability candidates would raise it (new-user trial 63).

* M1: lung1's headline read ">=4A; 4B if #1 (score 0.34) is a nodule": the firm ">=4A" came only
  from the floors of three clipped candidates of scores 0.04-0.10. A floor of a low-probability
  candidate is a condition like its category, and names its candidates; one of a reported
  candidate stays firm.
* L1: two low-probability candidates measured 4B; only #1 was named.
* L2: #1 measured (17.39 + 12.60) / 2 = 14.995 -> 15.0 mm, on the 15 mm cut between 4A and 4B,
  with no word that the category could be the lower one.

Candidates are built as `imagio detect` writes them and stratified by the real
`stratification.screening.stratify`.

The low-probability scores are below the report's threshold (detection.json
report_probability_min, 0.34 since detect45; trial 63 read 0.34 against 0.4).
"""

from __future__ import annotations

import pytest
from conftest import screening_nodule as nod

CLIP = "the outline was clipped to the detected blob's sphere"


def _floors(p=(0.097, 0.053, 0.04), ids=(11, 13, 14)):
    return [nod(i, 9.0, q, unsure=CLIP) for i, q in zip(ids, p)]


def test_a_low_probability_floor_is_a_condition_and_names_its_candidates():
    from imagio.detection.pipeline import highest_lung_rads, scan_lung_rads
    from imagio.detection.report import management_lines, split_by_score

    one, nine = nod(1, 24.0, 0.30), nod(9, 16.0, 0.13)
    floors = _floors()
    assert floors[0]["stratification"]["lung_rads"]["category_at_least"] == "4A"
    every = [one, nine] + floors
    main, low = split_by_score(every)
    assert main == [] and highest_lung_rads(main, low) == ""   # nothing reported: no firm category
    got = scan_lung_rads(every)["highest_lung_rads"]
    assert got == "4B if #1 (score 0.30) or #9 (0.13) is a nodule; >=4A if #11, #13 or #14 is a nodule", got
    # below the highest category the headline names the candidates only; the clauses keep the scores
    full = scan_lung_rads(every)["lung_rads_conditions"]
    assert [(c["category"], c["at_least"], [x["probability"] for x in c["candidates"]]) for c in full] == \
        [("4B", False, [0.30, 0.13]), ("4A", True, [0.1, 0.05, 0.04])], full
    lines = dict(management_lines(main, low))
    assert "Lung-RADS not decided" not in lines, lines          # no firm "at least 4A"
    assert "#1 (score 0.30) or #9 (0.13)" in lines["Lung-RADS 4B if a nodule"]
    floor_row = lines["Lung-RADS >=4A if a nodule"]
    assert "#11 (score 0.10), #13 (0.05) or #14 (0.04)" in floor_row and "lower bound" in floor_row
    assert "do not return to routine screening" in floor_row
    # beside a reported Lung-RADS 2 the scan is 2, conditionally at least 4A; no routine follow-up
    ok = nod(2, 4.5, 0.9)
    main, low = split_by_score([ok] + floors)
    assert highest_lung_rads(main, low) == "2"
    assert scan_lung_rads([ok] + floors)["highest_lung_rads"] == \
        "2; >=4A if #11 (score 0.10), #13 (0.05) or #14 (0.04) is a nodule"
    lines = management_lines(main, low)
    text = " ".join(a + " " + b for a, b in lines)
    assert dict(lines)["Lung-RADS 2 among the measured nodules"].startswith("withheld"), lines
    assert "12 months" not in text and "Continue annual" not in text, lines


def test_a_reported_floor_stays_firm():
    from imagio.detection.pipeline import highest_lung_rads, scan_lung_rads
    from imagio.detection.report import management_lines, split_by_score

    floors = _floors(p=(0.9, 0.8, 0.7))                    # above the report's cut: reported
    low4b = nod(1, 24.0, 0.30)
    main, low = split_by_score(floors + [low4b])
    assert len(main) == 3 and highest_lung_rads(main, low) == ">=4A"
    assert scan_lung_rads(floors + [low4b])["highest_lung_rads"] == ">=4A; 4B if #1 (score 0.30) is a nodule"
    assert management_lines(main, low)[0][0] == "Lung-RADS not decided"


def test_several_low_probability_candidates_at_the_highest_condition_are_named():
    from imagio.detection.pipeline import if_a_nodule, scan_lung_rads
    from imagio.detection.report import split_by_score

    many = [nod(i, 16.0 + i, p) for i, p in ((3, 0.2), (4, 0.31), (5, 0.05), (6, 0.12), (7, 0.08))]
    got = scan_lung_rads(many + [nod(8, 10.0, 0.32)])["highest_lung_rads"]   # #8: 4A, below the 4B ones
    # every category above the scan's has its clause (trial 66 M1; before, #8 was not named)
    assert got == ("4B if #4 (score 0.31), #3 (0.20), #6 (0.12) or 2 more (#7, #5; scores <= 0.08) is a nodule; "
                   "4A if #8 is a nodule"), got
    c = if_a_nodule(*split_by_score(many))
    assert [x["id"] for x in c[0]["candidates"]] == [4, 3, 6, 7, 5] and c[0]["at_least"] is False


def test_a_category_on_a_size_cut_says_it_may_be_the_lower_one():
    import json
    from importlib import resources

    from imagio.detection.pipeline import scan_lung_rads
    from imagio.detection.report import management_lines, nodule_rows, split_by_score
    from imagio.stratification.lungrads import category
    from imagio.stratification.screening import stratify

    spec = json.loads(resources.files("imagio.data").joinpath("lungrads_v2022.json").read_text())["size_cut"]
    assert spec["step_mm"] == 0.1 and "Lung-RADS v2022" in spec["source"] and "Bankier" in spec["source"]
    # lung1's #1: (17.39 + 12.60) / 2 = 14.995 mm -> 15.0, 4B on the 15 mm cut; 15.1 mm is not on it
    on = nod(1, (17.39 + 12.60) / 2, 0.9)
    lr = on["stratification"]["lung_rads"]
    assert lr["category"] == "4B" and lr["at_size_cut"]["other_category"] == "4A" and lr["at_size_cut"]["cut_mm"] == 15.0
    assert lr["at_size_cut"]["side"] == "on" and lr["at_size_cut"]["pair"] == "4A/4B"
    assert "at_size_cut" not in nod(1, 15.1, 0.9)["stratification"]["lung_rads"]
    # trial 85 M2: one step under the cut (14.9 mm, the same nodule on a DICOM turned 20 degrees)
    # reads 4A and says 4B is as likely; two steps under, nothing
    under = nod(1, 14.9, 0.9)["stratification"]["lung_rads"]
    assert under["category"] == "4A" and under["at_size_cut"]["other_category"] == "4B"
    assert under["at_size_cut"]["side"] == "under" and under["at_size_cut"]["cut_mm"] == 15.0
    assert under["at_size_cut"]["pair"] == "4A/4B" and "0.1 mm under the 15 mm cut" in under["at_size_cut"]["note"]
    assert scan_lung_rads([nod(1, 14.9, 0.9)])["highest_lung_rads"] == \
        "4A or 4B (#1 at the 4A/4B size cut: mean diameter 14.9 mm 4A)"
    assert "at_size_cut" not in nod(1, 14.8, 0.9)["stratification"]["lung_rads"]
    assert category("solid", 6.04)["at_size_cut"]["other_category"] == "2"
    assert category("nonsolid", 30.0)["at_size_cut"]["other_category"] == "2"
    assert category("nonsolid", 29.9)["at_size_cut"]["other_category"] == "3"
    from imagio.report import stratification_rows   # `imagio risk`'s report shows the same note
    row = dict(stratification_rows({"lung_rads": category("solid", 8.0)}))["lung_rads category"]
    assert "8.0 mm is on the 8 mm cut between Lung-RADS 3 and 4A" in row
    # a part-solid nodule is graded by its solid component: 8.0 mm is on the 4A/4B cut
    ps = {"id": 2, "type": "part_solid", "mean_diameter_mm": 13.6, "long_axis_mm": 15.0, "solid_component_mm": 8.0,
          "size_uncertain": None, "candidate": {"probability": 0.9}}
    cut = stratify(ps)["lung_rads"]["at_size_cut"]
    assert cut["what"] == "solid component" and cut["other_category"] == "4A"
    # the headline, the report's follow-up and its table say it
    assert scan_lung_rads([on])["highest_lung_rads"] == "4A or 4B (#1 at the 4A/4B size cut: mean diameter 15.0 mm 4B)"
    lines = dict(management_lines([on], []))
    assert "4A is as likely" in lines["note: size cut"] and "one decimal" in lines["note: size cut"]
    assert "may be 4A" in nodule_rows([{**on, "center_ras": [1.0, 2.0, 3.0]}])[0][5]
    # another 4B nodule well above the cut decides the scan: no note
    clear = nod(3, 20.0, 0.9)
    assert scan_lung_rads([on, clear])["highest_lung_rads"] == "4B"
    assert "note: size cut" not in dict(management_lines([clear, on], []))
    # a low-probability one on the cut: said in its condition
    low_on = nod(1, 14.995, 0.30)
    assert scan_lung_rads([low_on])["highest_lung_rads"] == "4B if #1 (score 0.30; at the 4A/4B size cut) is a nodule"
    main, low = split_by_score([low_on])
    assert main == [] and "#1: mean diameter 15.0 mm is on the 15 mm cut" in \
        dict(management_lines(main, low))["Lung-RADS 4B if a nodule"]


def _typed(i, size, p, typ, solid=0.0, alt=None, alt_solid=None):
    """A measured candidate typed ``typ`` whose characterisation flagged the type as uncertain:
    ``alt`` the other plausible type (`detection.characterise.nodule_type`'s alternative)."""
    from imagio.stratification.screening import stratify

    d = {"id": i, "type": typ, "mean_diameter_mm": size, "long_axis_mm": size, "solid_component_mm": solid,
         "size_uncertain": None, "candidate": {"probability": p, "center_ras": [1.0, -2.0, 3.0 + i],
                                               "diameter_mm": size},
         "type_alternative": {"type": alt, "solid_component_mm": size if alt_solid is None else alt_solid}
         if alt else None}
    d["stratification"] = stratify(d)
    return d


def _lung1_like():
    # trial 65 M3, lung1: #1 solid 14.995 mm (on the 4A/4B cut); #7 part-solid 15.2 mm, solid
    # component 7.4 mm: 4A, as solid 4B; #9 part-solid 13.6 mm, solid 9.7 mm: 4B, as solid 4A
    return [_typed(1, 14.995, 0.30, "solid", 14.995, "part_solid", 13.1),
            _typed(7, 15.2, 0.17, "part_solid", 7.4, "solid"),
            _typed(9, 13.6, 0.13, "part_solid", 9.7, "solid")]


def test_an_uncertain_type_gives_the_category_under_the_other_type():
    """Lung-RADS v2022 grades by type: with the type flagged uncertain the reader gets the
    category under the other plausible type, and the headline counts each candidate at the
    highest category it may reach, marking the type-dependent ones (trial 65 M3)."""
    from imagio.detection.pipeline import scan_lung_rads
    from imagio.detection.report import management_lines, nodule_rows, split_by_score

    one, seven, nine = _lung1_like()
    lr7, lr9 = seven["stratification"]["lung_rads"], nine["stratification"]["lung_rads"]
    assert lr7["category"] == "4A" and lr7["if_other_type"]["category"] == "4B"
    assert lr7["if_other_type"]["type"] == "solid" and lr7["if_other_type"]["typed"] == "part_solid"
    assert lr9["category"] == "4B" and lr9["if_other_type"]["category"] == "4A"
    assert "if_other_type" not in one["stratification"]["lung_rads"]   # 4B either way: nothing to say
    got = scan_lung_rads([one, seven, nine])["highest_lung_rads"]
    assert got == ("4B if #1 (score 0.30; at the 4A/4B size cut), #7 (0.17; if solid) or #9 (0.13; "
                   "as part-solid) is a nodule; 4A if #7 (as part-solid) or #9 (if solid) is a nodule"), got   # each category they may take (trial 66 M1)
    # the same without the alternative: #7 is 4A, in the clause below, and #9 plain
    plain = [dict(d, type_alternative=None) for d in (seven, nine)]
    from imagio.stratification.screening import stratify
    for d in plain:
        d["stratification"] = stratify(d)
    assert scan_lung_rads([one] + plain)["highest_lung_rads"] == \
        "4B if #1 (score 0.30; at the 4A/4B size cut) or #9 (0.13) is a nodule; 4A if #7 is a nodule"
    # a reported 4A whose type may be solid: the category under the other type is in its cell
    main, low = split_by_score([one, seven, nine])
    row = dict(management_lines(main, low))["Lung-RADS 4B if a nodule"]
    assert "#7: typing uncertain" in row and "4A as part-solid, 4B if solid" in row \
        and "4B as part-solid, 4A if solid" in row, row   # `screening.category_words`, as the review list
    cells = {r[0]: r for r in nodule_rows([_typed(7, 15.2, 0.9, "part_solid", 7.4, "solid")])}
    assert any("4A (typed part-solid: 4B if solid)" in str(c) for r in cells.values() for c in r), cells


def test_the_nodule_tables_carry_the_size_cut_and_type_notes():
    """Trial 65 L1: nodules.csv and nodules_table.tsv (the same rows, `outputs.nodule_rows`) gave
    lung1 #1 a plain "4B" on the 4A/4B size cut; the note is a column after lung_rads, the LUNA16
    columns first."""
    from imagio.detection.outputs import NODULE_FIELDS, nodule_rows

    assert NODULE_FIELDS[:5] == ("seriesuid", "coordX", "coordY", "coordZ", "probability")
    at = NODULE_FIELDS.index("lung_rads")
    assert NODULE_FIELDS[at + 1] == "lung_rads_note"
    rows = {r[5]: dict(zip(NODULE_FIELDS, r)) for r in nodule_rows("s", _lung1_like())}
    assert rows[1]["lung_rads"] == "4B" and rows[1]["lung_rads_note"] == \
        "on the 15 mm mean diameter cut: may be 4A", rows[1]
    # a category that rests on an uncertain type is never shown alone as definite (trial 82 #5)
    assert rows[7]["lung_rads"] == "4A as part-solid, 4B if solid" and rows[7]["lung_rads_note"] == \
        "typing uncertain: 4A as part-solid, 4B if solid"
    assert rows[9]["lung_rads_note"] == "typing uncertain: 4B as part-solid, 4A if solid"
    assert rows[7]["coordX"] == "-1.00" and rows[7]["probability"] == "0.1700"   # LPS, LUNA16's


def test_a_measured_category_of_an_uncertain_type_is_never_shown_alone():
    """New-user trial 82 #5 (Lung_Dx-A0001 #5, part-solid 10.7 mm, solid part 1.6 mm on 5 mm
    slices): nodules.csv's lung_rads read "3" while its note said "3 as part-solid, 4A if solid",
    and candidates.json's uncertain_lung_rads left it out, beside floors of the same type doubt
    that it listed (">= 3 as part-solid, >= 4A if solid"). Both categories in the cell, and the
    nodule in the list; a nodule whose type is sure keeps its plain category and stays out."""
    from imagio.detection.outputs import NODULE_FIELDS, nodule_rows
    from imagio.detection.pipeline import scan_lung_rads

    five = _typed(5, 10.7, 0.6, "part_solid", 1.6, "solid")
    sure = _typed(6, 10.7, 0.6, "part_solid", 1.6)
    assert five["stratification"]["lung_rads"]["category"] == "3"
    rows = {r[5]: dict(zip(NODULE_FIELDS, r)) for r in nodule_rows("s", [five, sure])}
    assert rows[5]["lung_rads"] == "3 as part-solid, 4A if solid" and rows[6]["lung_rads"] == "3", rows
    assert scan_lung_rads([five, sure])["uncertain_lung_rads"] == ["#5 3 as part-solid, 4A if solid"]


def _lung1_typed():
    """lung1's candidates whose category depends on the type (trial 66 M1; sizes as nodules.csv
    gave them): #3 part-solid 8.7 mm, solid part 2.6 mm (3; 4A if solid), #5 and #8 ground-glass
    8.9 and 10.6 mm (2; 4A if solid), #16 part-solid 9.3 mm, solid part 2.9 mm (3; 4A if solid)."""
    return _lung1_like() + [_typed(3, 8.7, 0.337, "part_solid", 2.6, "solid"),
                            _typed(5, 8.9, 0.216, "ground_glass", 0.0, "solid"),
                            _typed(8, 10.6, 0.142, "ground_glass", 0.0, "solid"),
                            _typed(16, 9.3, 0.004, "part_solid", 2.9, "solid")]


def test_every_category_a_candidate_may_take_is_named():
    """Trial 66 M1: only the highest condition was named. #3 (score 0.30, "3 as part-solid, 4A if
    solid"), #5, #8, #16 and #7 as part-solid (4A) were named nowhere in the headline, and the review
    list read "#7 4A" with no type. Every category above the scan's that a candidate may take has
    its clause, each candidate with its type condition; the review list gives both categories."""
    from imagio.detection.pipeline import if_a_nodule, scan_lung_rads
    from imagio.detection.report import for_review, split_by_score

    every = _lung1_typed()
    s = scan_lung_rads(every)
    assert s["highest_lung_rads"] == (
        "4B if #1 (score 0.30; at the 4A/4B size cut), #7 (0.17; if solid) or #9 (0.13; as part-solid) is a "
        "nodule; 4A if #3, #5, #8, #9, #16 (if solid) or #7 (as part-solid) is a nodule; 3 if #3 or #16 (as "
        "part-solid) is a nodule"), s["highest_lung_rads"]   # below the top category: no scores (readable)
    clauses = if_a_nodule(*split_by_score(every))
    assert [(c["category"], [x["id"] for x in c["candidates"]]) for c in clauses] == \
        [("4B", [1, 7, 9]), ("4A", [3, 5, 7, 8, 9, 16]), ("3", [3, 16])]   # candidates.json: the full list
    assert {x["id"]: x["type"] for x in clauses[1]["candidates"]}[7] == "as part-solid"
    low = split_by_score(every)[1]
    assert for_review(low) == s["review_low_probability"]
    assert {"#7 4A as part-solid, 4B if solid", "#9 4B as part-solid, 4A if solid",
            "#1 4B (on the 15 mm mean diameter cut: may be 4A)",
            "#3 3 as part-solid, 4A if solid", "#5 2 as ground-glass, 4A if solid"} <= set(for_review(low)), for_review(low)


def test_a_reported_nodule_and_a_floor_count_under_the_other_type():
    """Trial 66 / detect26: a reported nodule (score >= 0.4) whose other type gives a higher category
    said so only in its table cell; a floor (clipped outline) used the typed type only (lung1 #6:
    part-solid 8.9 mm with a 5.9 mm solid part, floor 3, is at least 4A as solid)."""
    from imagio.detection.outputs import lung_rads_note
    from imagio.detection.pipeline import scan_lung_rads
    from imagio.detection.report import management_lines, nodule_rows, split_by_score
    from imagio.stratification.screening import stratify

    rep = _typed(2, 15.2, 0.9, "part_solid", 7.4, "solid")           # 4A as typed, 4B as solid
    s = scan_lung_rads([rep])
    assert s["highest_lung_rads"] == "4A; 4B if #2 (score 0.90; if solid) is a nodule", s
    row = dict(management_lines(*split_by_score([rep])))["Lung-RADS 4B if a nodule"]
    assert "reported nodule" in row and "4A as part-solid, 4B if solid" in row, row
    # one whose typed category is the higher one adds nothing: the scan is its category
    assert scan_lung_rads([_typed(9, 13.6, 0.9, "part_solid", 9.7, "solid")])["highest_lung_rads"] == "4B"
    six = _typed(6, 8.9, 0.194, "part_solid", 5.9, "solid")
    six["size_uncertain"] = CLIP
    six["stratification"] = stratify(six)
    lr = six["stratification"]["lung_rads"]
    assert lr["category_at_least"] == "3" and lr["if_other_type"]["category"] == "4A", lr
    assert scan_lung_rads([six])["highest_lung_rads"] == \
        ">=4A if #6 (score 0.19; if solid) is a nodule; >=3 if #6 (as part-solid) is a nodule"
    assert lung_rads_note(lr) == "typing uncertain: >= 3 as part-solid, >= 4A if solid"
    assert "at least 4A if solid" in nodule_rows([{**six, "center_ras": [1.0, 2.0, 3.0]}])[0][5]
    # a clipped ground-glass one, floor 2 as typed, at least 4A as solid, beside a reported 2: the
    # condition is named and the routine follow-up withheld until it is read
    gg = {**_typed(12, 9.0, 0.1, "ground_glass", 0.0, "solid"), "size_uncertain": CLIP}
    gg["stratification"] = stratify(gg)
    assert gg["stratification"]["lung_rads"]["category_at_least"] == "2"
    ok = nod(2, 4.5, 0.9)
    assert scan_lung_rads([ok, gg])["highest_lung_rads"] == "2; >=4A if #12 (score 0.10; if solid) is a nodule"
    lines = dict(management_lines(*split_by_score([ok, gg])))
    assert lines["Lung-RADS 2 among the measured nodules"].startswith("withheld"), lines
    # a perifissural one under 10 mm keeps its floor 2 whatever its other type (v2022 category 2)
    pf = {**_typed(10, 9.8, 0.1, "perifissural", 9.8, "part_solid", 9.1), "size_uncertain": CLIP}
    pf["stratification"] = stratify(pf)
    assert pf["stratification"]["lung_rads"]["category_at_least"] == "2"
    assert "if_other_type" not in pf["stratification"]["lung_rads"]


def test_a_fat_density_candidate_comes_after_the_categories_reached():
    """Trial 67: lung1's headline opened "not decided (not assessable: #4 (score 0.26))", a 31.5 mm
    outline of fat density, before its 4B candidate. ACR Lung-RADS: a fat-containing nodule is a
    benign feature, category 1, and fat outside the lung is no nodule; the outline may still have
    grown from a nodule into fat, so the scan stays not decided (the report's follow-up is withheld),
    but the categories come first and the candidate is named with what it is."""
    import json
    from importlib import resources

    from imagio.detection.pipeline import scan_lung_rads
    from imagio.detection.report import management_lines, split_by_score

    spec = json.loads(resources.files("imagio.data").joinpath("lungrads_v2022.json").read_text())
    bf = spec["benign_features"]
    assert bf["category"] == "1" and "fat-containing" in bf["wording"] and "Lung-RADS" in bf["source"]
    fat = nod(4, 31.5, 0.26, why="the outline's tissue has a mean density of -71 HU, that of fat (-190..-30 HU)")
    fat["not_assessable_kind"] = "fat_density"
    one = _lung1_like()[0]
    s = scan_lung_rads([one, fat])["highest_lung_rads"]
    assert s == ("4B if #1 (score 0.30; at the 4A/4B size cut) is a nodule; not decided (not assessable: #4 "
                 "(score 0.26; fat density: no lung nodule, a fat-containing nodule (a benign feature: "
                 "Lung-RADS 1), or an outline run from a nodule into fat (unmeasured)))"), s
    main, low = split_by_score([one, fat])
    assert management_lines(main, low)[0][0] == "Lung-RADS not decided"    # the safety point stays
    # a concavity of the lung outline, reported beside a measured 3: the category first, the reason after
    cav = nod(2, 22.1, 0.9, why="the outline grew beyond the detected concavity of the lung outline")
    cav["not_assessable_kind"] = "outline_concavity"
    s = scan_lung_rads([nod(1, 7.0, 0.9), cav, nod(5, 16.0, 0.2)])["highest_lung_rads"]
    assert s == (">=3; 4B if #5 (score 0.20) is a nodule; not assessable: #2 (score 0.90; a concavity of the "
                 "lung outline: no nodule's outline, not measured)"), s


def test_a_floor_of_2_is_open_above_and_named():
    """New-user trial 68: lung1's clipped #2 and #10 (sizes >= 8.6 and 9.8 mm, floor 2; 4A from 10 mm
    as solid) were named nowhere: a floor is a lower bound, so one at the scan's level or at 2 may
    raise it and is a condition; nodules.csv says it in lung_rads_note (it was in `refused` only)."""
    from imagio.detection.outputs import NODULE_FIELDS, nodule_rows
    from imagio.detection.pipeline import scan_lung_rads

    two = nod(2, 5.0, 0.30, unsure=CLIP)
    assert two["stratification"]["lung_rads"]["category_at_least"] == "2"
    assert scan_lung_rads([two])["highest_lung_rads"] == ">=2 if #2 (score 0.30) is a nodule"
    # beside a reported 2 too; not beside a reported 3 (the floor is below the scan's category)
    assert scan_lung_rads([nod(1, 4.5, 0.9), two])["highest_lung_rads"] == "2; >=2 if #2 (score 0.30) is a nodule"
    assert scan_lung_rads([nod(1, 7.0, 0.9), two])["highest_lung_rads"] == "3"
    # a category of 2 (not a floor) adds nothing: 1 and 2 share the routine follow-up
    assert scan_lung_rads([nod(3, 5.0, 0.30)])["highest_lung_rads"] == ""
    # one already named above is not named again at the floor of 2
    gg = {**_typed(12, 9.0, 0.1, "ground_glass", 0.0, "solid"), "size_uncertain": CLIP}
    from imagio.stratification.screening import stratify
    gg["stratification"] = stratify(gg)
    assert scan_lung_rads([two, gg])["highest_lung_rads"] == \
        ">=4A if #12 (score 0.10; if solid) is a nodule; >=2 if #2 is a nodule"
    two = {**_typed(2, 5.0, 0.30, "solid"), "size_uncertain": CLIP}
    two["stratification"] = stratify(two)
    row = dict(zip(NODULE_FIELDS, nodule_rows("s", [two])[0]))
    assert row["lung_rads"] == "" and row["lung_rads_note"] == "size a lower bound: >= 2", row


def test_the_review_list_names_every_low_probability_candidate_the_headline_names():
    """detect30: the summary's review_low_probability (`report.for_review`) listed the 4A+
    low-probability candidates only, while the headline beside it named a definite 3 ("3 if #5 is a
    nodule") and the floors >= 3 and >= 2 (a clipped outline: the size is a lower bound) of others.
    Both lists now come from the headline's conditions (`pipeline.if_a_nodule`): every candidate
    named there is in the review list, with its category in the table's words."""
    from imagio.detection.pipeline import scan_lung_rads
    from imagio.detection.report import for_review, split_by_score
    from imagio.stratification.screening import stratify

    three = nod(5, 7.0, 0.12)                                    # solid 7 mm: 3
    floor3 = nod(11, 7.0, 0.08, unsure=CLIP)                     # clipped solid 7 mm: >= 3
    pf = {**_typed(10, 9.8, 0.06, "perifissural", 9.8), "size_uncertain": CLIP}
    pf["stratification"] = stratify(pf)                          # clipped perifissural < 10 mm: >= 2
    four = nod(9, 16.0, 0.13)                                    # 4B
    assert three["stratification"]["lung_rads"]["category"] == "3"
    assert floor3["stratification"]["lung_rads"]["category_at_least"] == "3"
    assert pf["stratification"]["lung_rads"]["category_at_least"] == "2"
    every = [three, floor3, pf, four]
    s = scan_lung_rads(every)
    assert s["highest_lung_rads"] == ("4B if #9 (score 0.13) is a nodule; 3 if #5 is a nodule; >=3 if #11 is a "
                                      "nodule; >=2 if #10 is a nodule"), s["highest_lung_rads"]
    named = {x["id"] for c in s["lung_rads_conditions"] for x in c["candidates"]}
    assert named == {5, 9, 10, 11}
    assert s["review_low_probability"] == ["#5 3", "#11 >= 3", "#10 >= 2", "#9 4B"], s["review_low_probability"]
    assert for_review(split_by_score(every)[1], s["lung_rads_conditions"]) == s["review_low_probability"]
    # above a reported 3 the headline names the 4B only; the review list keeps the 4A+ ones it always had
    rep = nod(2, 7.5, 0.9)
    s = scan_lung_rads([rep] + every)
    assert s["highest_lung_rads"].startswith("3; 4B if #9 (score 0.13) is a nodule; >=3 if #11"), s["highest_lung_rads"]
    assert s["review_low_probability"] == ["#11 >= 3", "#9 4B"], s["review_low_probability"]


def test_the_review_list_says_a_size_cut_as_the_tables_do():
    """Trial 89 L: lung1's #1 (low probability, 15.0 mm, 4B on the 4A/4B cut) read "may be 4A" in
    the nodule tables and the report's cell but plain "4B" in the review list; one wording now
    (`screening.size_cut_words`) in the three."""
    from imagio.detection.outputs import lung_rads_note
    from imagio.detection.pipeline import scan_lung_rads
    from imagio.detection.report import for_review, split_by_score

    on = nod(1, 14.995, 0.30)
    lr = on["stratification"]["lung_rads"]
    words = "on the 15 mm mean diameter cut: may be 4A"
    assert lung_rads_note(lr) == words
    s = scan_lung_rads([on])
    assert s["review_low_probability"] == [f"#1 4B ({words})"], s["review_low_probability"]
    assert for_review(split_by_score([on])[1], s["lung_rads_conditions"]) == s["review_low_probability"]
    assert for_review([nod(2, 16.0, 0.3)]) == ["#2 4B"]                 # off the cut: no note


def test_a_clipped_mass_at_4b_says_its_size_is_a_lower_bound():
    """New-user trial 86 L3: Lung_Dx-A0001 #1, a 50.8 mm mass whose outline was clipped (size a
    lower bound, category 4B: the highest size category), read "4B" with an empty lung_rads_note and
    "#1 4B" in uncertain_lung_rads, while every other lower-bound row read ">= 4A" with the note
    "size a lower bound: >= 4A". Its category stays 4B (the scan's headline counts it); the list and
    the note say it is a floor."""
    from imagio.detection.outputs import NODULE_FIELDS, nodule_rows
    from imagio.detection.pipeline import scan_lung_rads

    from imagio.stratification.screening import stratify

    mass, ten = ({**_typed(i, size, 0.9, "solid"), "size_uncertain": CLIP} for i, size in ((1, 50.8), (10, 9.0)))
    mass["stratification"], ten["stratification"] = stratify(mass), stratify(ten)
    lr = mass["stratification"]["lung_rads"]
    assert lr["category"] == "4B" and lr["size_lower_bound"], lr
    got = scan_lung_rads([mass, ten])
    assert got["uncertain_lung_rads"] == ["#1 >= 4B", "#10 >= 4A"], got
    rows = [dict(zip(NODULE_FIELDS, r)) for r in nodule_rows("s", [mass, ten])]
    assert rows[0]["lung_rads"] == "4B" and rows[0]["lung_rads_note"] == "size a lower bound: >= 4B", rows[0]
    assert rows[1]["lung_rads"] == "" and rows[1]["lung_rads_note"] == "size a lower bound: >= 4A", rows[1]


def _measured(i, size, p, volume_ml, range_ml, why=None):
    """A solid candidate with its outline's volume and partial-volume range (mL) as `imagio detect`
    writes them (`detection.characterise`: ``volume_ml``, ``volume_border_range_ml``)."""
    from imagio.stratification.screening import stratify

    d = {"id": i, "type": "solid", "mean_diameter_mm": size, "long_axis_mm": size, "size_uncertain": None,
         "volume_ml": volume_ml, "volume_border_range_ml": range_ml, "candidate": {"probability": p}}
    if why:
        d["not_assessable"] = why
    d["stratification"] = stratify(d)
    return d


def test_the_volume_category_is_given_beside_the_diameter_one_and_a_cut_says_both():
    """New-user trial 96 F3: lung1's nodule, 15.0 mm on the 4A/4B cut and 1761 mm3 by its own
    outline (4A; the reference outline 1361 mm3, 4A), was headlined ">=4B" (the floor from a
    not-assessable candidate beside it): the headline says "4A or 4B" and gives the volume's
    category beside the diameter's (Lung-RADS v2022: 8 to < 15 mm or 268 to < 1767 mm3 is 4A)."""
    import json
    from importlib import resources

    from imagio.detection.pipeline import scan_lung_rads
    from imagio.stratification.lungrads import volume_category

    spec = json.loads(resources.files("imagio.data").joinpath("lungrads_v2022.json").read_text())["volume_mm3"]
    assert "Lung-RADS v2022" in spec["source"] and [b[0] for b in spec["baseline"]["solid"]] == [0, 113, 268, 1767]
    assert [volume_category("solid", v) for v in (112, 113, 267, 268, 1766, 1767)] == ["2", "3", "3", "4A", "4A", "4B"]
    assert volume_category("part_solid", 500) is None
    # lung1 #1 as detect measures it: 14.995 mm, 1.761 mL, partial volume 0.981-3.035 mL (5 mm sections)
    one = _measured(1, 14.995, 0.73, 1.761, [0.981, 3.035])
    lr = one["stratification"]["lung_rads"]
    assert lr["category"] == "4B" and lr["volume"] == {"volume_mm3": 1761, "category": "4A",
                                                        "range_mm3": [981, 3035], "range_categories": ["4A", "4B"]}
    assert lr["at_size_cut"]["pair"] == "4A/4B" and "volume 1761 mm3 is Lung-RADS 4A" in lr["at_size_cut"]["note"]
    head = scan_lung_rads([one])["highest_lung_rads"]
    assert head == "4A or 4B (#1 at the 4A/4B size cut: mean diameter 15.0 mm 4B, volume 1761 mm3 4A)", head
    # beside a not-assessable reported candidate (lung1 #4, fat density) the scan is a floor: from 4A, not 4B
    four = _measured(4, 9.0, 0.59, 0.2, [0.1, 0.3], why="fat density")
    head = scan_lung_rads([one, four])["highest_lung_rads"]
    assert head.startswith(">=4A (4A or 4B: #1 at the 4A/4B size cut: mean diameter 15.0 mm 4B, volume 1761 mm3 4A)")
    assert ">=4B" not in head.split(";")[0], head
    # a diameter well inside 4A whose volume's range spans the 1767 mm3 cut: at the cut by volume
    vol_cut = _measured(2, 12.0, 0.9, 1.5, [1.2, 2.0])["stratification"]["lung_rads"]
    assert vol_cut["category"] == "4A" and vol_cut["at_size_cut"]["what"] == "volume"
    assert vol_cut["at_size_cut"]["cut_mm3"] == 1767 and vol_cut["at_size_cut"]["other_category"] == "4B"
    # the headline names the reading across the cut (new-user trial 109 F4: "mean diameter 16.0 mm 4B, volume
    # 2163 mm3 4B" named no 4A), and the note says possible, not as likely, when both sizes read one category
    assert scan_lung_rads([_measured(2, 12.0, 0.9, 1.5, [1.2, 2.0])])["highest_lung_rads"] == \
        "4A or 4B (#2 at the 4A/4B size cut: mean diameter 12.0 mm 4A, volume 1500 mm3 4A " \
        "(partial volume allows 1200-2000 mm3: 4A to 4B))"
    assert "so 4B cannot be ruled out" in vol_cut["at_size_cut"]["note"] and "as likely" not in vol_cut["at_size_cut"]["note"]
    # diameter and volume agree, the range inside one band: no cut, a plain category
    clear = _measured(3, 11.0, 0.9, 0.7, [0.5, 0.9])
    assert "at_size_cut" not in clear["stratification"]["lung_rads"]
    assert clear["stratification"]["lung_rads"]["volume"]["category"] == "4A"
    assert scan_lung_rads([clear])["highest_lung_rads"] == "4A"


@pytest.mark.parametrize("size, pixel, cat, other, side, dist, cut", [
    (14.2, 1.5, "4A", "4B", "under", 0.8, 15.0),   # trial 99 F5: a 15.0 mm sphere on the 1.5 mm CTA read 14.2
    (5.0, 1.5, "2", "3", "under", 1.0, 6.0),      # trial 99 F5: a 6.0 mm sphere read 5.0 mm, category 2
    (15.6, 0.98, "4B", "4A", "over", 0.6, 15.0),
    (14.2, 0.7, "4A", None, None, None, None),    # 0.8 mm under the cut: beyond one 0.7 mm pixel
    (10.0, 1.5, "4A", None, None, None, None)])   # no cut within 1.5 mm of 10 mm
def test_a_cut_within_one_pixel_of_the_mean_diameter_is_said(size, pixel, cat, other, side, dist, cut):
    """New-user trial 99 F5: the cut flag looked one rounding step (0.1 mm) either side, while a
    mean diameter measured on a pixel grid is uncertain by a pixel (each end by half of one): a
    15.0 mm sphere measured 14.2 mm on 1.5 mm pixels read 4A with no word of 4B. The candidate's
    in-plane pixel (`in_plane_mm`, written by `detection.characterise`) sets the window; the
    category is the table's, never moved; the cut is independently the band limit of v2022."""
    d = {"id": 1, "type": "solid", "mean_diameter_mm": size, "long_axis_mm": size, "size_uncertain": None,
         "candidate": {"probability": 0.9}, "in_plane_mm": pixel}
    from imagio.stratification.screening import size_cut_words, stratify

    lr = stratify(d)["lung_rads"]
    assert lr["category"] == cat
    c = lr.get("at_size_cut")
    if other is None:
        assert c is None, c
        return
    assert (c["other_category"], c["side"], c["distance_mm"], c["cut_mm"]) == (other, side, dist, cut), c
    assert f"within {round(pixel, 1):g} mm here" in c["note"]
    assert size_cut_words(lr).startswith(f"{dist:g} mm {side} the {cut:g} mm mean diameter cut: may be {other}")


def test_a_floor_at_4b_beside_a_4b_mass_is_not_a_condition():
    """New-user trial 102 F5: Lung_Dx-A0001's headline read "4B; >=4B if #16 (score 0.00) or #19
    (0.00) is a nodule" beside the 50.8 mm mass #1 (4B): size reaches at most 4B (Lung-RADS
    v2022; 4X is the reader's for additional features), so a low-probability floor at 4B cannot
    raise the scan and read as if the mass did not set it. A floor at the scan's level below 4B
    (">=4A" beside a 4A nodule) may reach 4B and stays a condition."""
    from imagio.detection.pipeline import scan_lung_rads

    from imagio.stratification.screening import stratify

    mass = nod(1, 50.8, 1.0, unsure=CLIP)
    floors = []
    for i, size, p in ((16, 11.3, 0.0002), (19, 10.2, 0.0)):   # the trial's: solid, clipped, >=4B if part-solid
        f = _typed(i, size, p, "solid", size, "part_solid")
        f["size_uncertain"] = CLIP
        f["stratification"] = stratify(f)
        floors.append(f)
    assert mass["stratification"]["lung_rads"]["category"] == "4B"
    assert floors[0]["stratification"]["lung_rads"]["category_at_least"] == "4A"
    assert scan_lung_rads([mass] + floors)["highest_lung_rads"] == "4B"
    four_a = nod(2, 10.0, 0.9)
    assert four_a["stratification"]["lung_rads"]["category"] == "4A"
    got = scan_lung_rads([four_a, nod(11, 9.0, 0.097, unsure=CLIP)])["highest_lung_rads"]
    assert got == "4A; >=4A if #11 (score 0.10) is a nodule", got
