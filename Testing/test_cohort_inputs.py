"""New-user trial 37 on real scans (LIDC-IDRI slabs, /work/shared/data/lidc-slabs or
$IMAGIO_DATA/lidc-slabs):

* H3: a cohort CSV's clinical values in another spelling ("F", "current", "former", "unknown")
  were misread without a word (sex "F" scored male in Brock, smokers as never-smokers in Mayo,
  "unknown" as "no"), and age "sixty" gave a traceback;
* H4: a cohort rerun (also with --force) kept each case's old results when its row then held
  other patient data or pointed at another scan;
* M1: --evaluate with a reference that has no row for the scan printed "cpm 0.0";
* M2: highest_lung_rads counted a low-probability candidate the screening report sets apart;
* M3: --force into an earlier run's folder left that run's evaluation.json and froc.png.
"""

import csv
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from imagio.errors import InputError

SLABS = Path(os.environ.get("IMAGIO_DATA", "/work/shared/data")) / "lidc-slabs"
L1, L3 = SLABS / "LIDC-IDRI-0001_slab.nii.gz", SLABS / "LIDC-IDRI-0003_slab.nii.gz"
needs_slabs = pytest.mark.skipif(not L3.exists(), reason="LIDC-IDRI slabs not available")


def _csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_cohort_csv_reads_the_clinical_vocabulary(tmp_path):
    from imagio.cohort import list_cases

    base = {"path": str(L3), "age": "60", "family_history": "", "extrathoracic_cancer": "",
            "emphysema": ""}
    rows = [{**base, "seriesuid": "a", "sex": "F", "smoker": "current", "emphysema": "Y"},
            {**base, "seriesuid": "b", "sex": "w", "smoker": "former", "family_history": "unknown"},
            {**base, "seriesuid": "c", "sex": "M", "smoker": "never", "extrathoracic_cancer": "0"},
            {**base, "seriesuid": "d", "sex": "Female", "smoker": "unknown", "age": "unknown"}]
    got = {c["case"]: c["patient"] for c in list_cases(_csv(tmp_path / "c.csv", rows))}
    assert got["a"] == {"age": 60.0, "sex": "female", "smoker": True, "emphysema": True}
    assert got["b"] == {"age": 60.0, "sex": "female", "smoker": True}   # unknown: left out (a range)
    assert got["c"] == {"age": 60.0, "sex": "male", "smoker": False, "extrathoracic_cancer": False}
    assert got["d"] == {"sex": "female"}


def test_missing_values_and_smoking_words_as_spreadsheets_write_them():
    """Trial 38 LOW: "NA" (what R and pandas write for a missing value) and "ex-smoker" were
    refused; an ambiguous word ("none": no family history, or not known?) still is."""
    from imagio.stratification.patient import parse

    for missing in ("NA", "N/A", "nan", "Missing"):
        assert parse("smoker", missing) is None and parse("age", missing) is None
    assert parse("smoker", "Ex-smoker") is True and parse("smoker", "Current smoker") is True
    assert parse("smoker", "non-smoker") is False and parse("smoker", "Never smoked") is False
    with pytest.raises(ValueError):
        parse("family_history", "none")


@pytest.mark.parametrize("column,value", [("age", "sixty"), ("sex", "x"), ("smoker", "sometimes"),
                                          ("emphysema", "ja")])
def test_cohort_csv_refuses_an_unread_value_before_any_case(tmp_path, column, value, capsys):
    from imagio import cli

    row = {"path": str(L3), "seriesuid": "a", "age": "60", "sex": "male", "smoker": "never", "emphysema": ""}
    src = _csv(tmp_path / "c.csv", [row, {**row, "seriesuid": "b", column: value}])
    out = tmp_path / "out"
    assert cli.main(["detect", str(src), "--out", str(out), "--workers", "0", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "line 3" in err[0] and f"column {column}" in err[0] and repr(value) in err[0], err
    assert "accepted" in err[0]
    assert not (out / "cases").exists()


def test_detect_sex_option_takes_the_same_words(capsys):
    from imagio.detection.commands import patient_from_args
    from imagio.cli import build_parser

    args = build_parser().parse_args(["detect", str(L3), "--out", "x", "--sex", "F"])
    assert patient_from_args(args)["sex"] == "female"


def _patient_and_nodule(out: Path, case: str) -> tuple[dict, list]:
    doc = json.loads((out / "cases" / case / "candidates.json").read_text())
    return doc["patient"], [round(v) for v in doc["nodules"][0]["center_ras"]]


@needs_slabs
def test_cohort_rerun_follows_changed_inputs(tmp_path):
    from imagio.cohort import run_cohort
    from imagio.detection.pipeline import Options

    opts = Options(characterise=1, slicer=False)
    row = {"path": str(L3), "seriesuid": "A", "age": "60", "sex": "male", "smoker": "never"}
    src = _csv(tmp_path / "c.csv", [row])
    out = tmp_path / "out"
    s = run_cohort(src, out, opts, workers=0, quiet=True)
    assert s["ran"] == 1 and s["done"] == 1
    pat, at3 = _patient_and_nodule(out, "A")
    assert pat["sex"] == "male"
    s = run_cohort(src, out, opts, workers=0, quiet=True)   # same inputs: done
    assert s["ran"] == 0 and s["skipped_done"] == 1
    _csv(src, [{**row, "sex": "female"}])                   # corrected patient data: run again
    s = run_cohort(src, out, opts, workers=0, quiet=True)
    assert s["ran"] == 1 and s["run_again"] == {"A": "patient data"}
    assert _patient_and_nodule(out, "A")[0]["sex"] == "female"
    assert "A: run again: patient data changed" in (out / "cohort.log").read_text()
    _csv(src, [{**row, "sex": "female", "path": str(L1)}])  # the row points at another scan
    s = run_cohort(src, out, opts, workers=0, quiet=True)
    assert s["ran"] == 1 and s["run_again"] == {"A": "scan"}
    at1 = _patient_and_nodule(out, "A")[1]
    assert at1 != at3
    with open(out / "cohort_nodules.csv", newline="") as f:
        (nod,) = list(csv.DictReader(f))
    assert [round(float(nod[k])) for k in ("coordX", "coordY", "coordZ")] == [-at1[0], -at1[1], at1[2]]
    s = run_cohort(src, out, opts, workers=0, quiet=True, force=True)   # --force: every case
    assert s["ran"] == 1 and s["run_again"] == {"A": "--force"}


@needs_slabs
def test_detect_evaluate_without_reference_row_and_force_leaves_no_stale_files(tmp_path, capsys):
    from imagio import cli

    ref = tmp_path / "ref.csv"
    ref.write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2.3.4,72.0,77.3,-191.8,26\n")
    out = tmp_path / "det"
    assert cli.main(["detect", str(L3), "--out", str(out), "--no-slicer", "--characterise", "0",
                     "--evaluate", str(ref), "--quiet"]) == 0
    cap = capsys.readouterr()
    s = json.loads(cap.out)
    assert s["cpm"] is None and s["reference_nodules"] == 0
    assert "CPM undefined" in cap.err and "'LIDC-IDRI-0003_slab'" in cap.err
    assert json.loads((out / "evaluation.json").read_text())["cpm"] is None
    mine = out / "screening_mine.png"   # a user's file under a name IMAGIO's report pictures take
    mine.write_bytes(b"not IMAGIO's")
    assert cli.main(["detect", str(L1), "--out", str(out), "--no-slicer", "--characterise", "0",
                     "--force", "--quiet"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert not (out / "evaluation.json").exists() and not (out / "froc.png").exists()
    assert sorted(s["removed_earlier_outputs"]) == ["evaluation.json", "froc.png"]
    assert mine.read_bytes() == b"not IMAGIO's"


def test_highest_lung_rads_is_the_reports():
    """A low-probability candidate at 4A (the report lists it apart, for review) does not make
    the scan 4A; one whose size is a lower bound above the measured category leaves it open."""
    from imagio.detection.pipeline import highest_lung_rads
    from imagio.detection.report import for_review, management_lines, split_by_score
    from imagio.stratification.screening import stratify

    def nod(i, size, p, unsure=None):
        d = {"id": i, "type": "solid", "mean_diameter_mm": size, "long_axis_mm": size,
             "size_uncertain": unsure, "candidate": {"probability": p}}
        d["stratification"] = stratify(d)
        return d

    ok, pleural = nod(1, 4.5, 0.9), nod(2, 9.0, 0.05)
    assert pleural["stratification"]["lung_rads"]["category"] == "4A"
    main, low = split_by_score([ok, pleural])
    assert main == [ok] and low == [pleural]
    assert management_lines(main, low)[0][0] == "Lung-RADS 2"
    assert highest_lung_rads(main, low) == "2" and for_review(low) == ["#2 4A"]
    cut = nod(3, 7.0, 0.05, "cut by the scan's edge (the outline touches the edge of the image)")
    main, low = split_by_score([ok, pleural, cut])
    # its floor is a condition, as a low-probability category is (new-user trial 63 M1; before, the
    # scan read ">=3", "not decided"): the scan stays 2, its routine follow-up withheld until #3 is read
    lines = management_lines(main, low)
    assert lines[0] == ("Lung-RADS 2 among the measured nodules",
                        "withheld until the low-probability candidates below are read"), lines
    assert "#3 (score 0.05)" in dict(lines)["Lung-RADS >=3 if a nodule"]
    assert highest_lung_rads(main, low) == "2"


def test_a_not_assessable_candidate_leaves_the_scans_lung_rads_not_decided():
    """Review 44 H1: a reported candidate whose outline measures no nodule (a concavity clipped to
    its sphere, fat density: ``not_assessable``) has no category and no floor, and it dropped out of
    the scan's category: a 7 mm nodule beside a 22 mm clipped heart-border concavity read
    "Lung-RADS 3, LDCT in 6 months", and beside a 5 mm nodule the line said "at least None". Any
    category may be that candidate's own: the scan is not decided, the candidate is named with
    its reason, no follow-up is given, and no line prints None."""
    from imagio.detection.pipeline import highest_lung_rads
    from imagio.detection.report import management_lines, split_by_score
    from imagio.stratification.screening import stratify

    def nod(i, size, p, why=None):
        d = {"id": i, "type": "solid", "mean_diameter_mm": size, "long_axis_mm": size,
             "candidate": {"probability": p}}
        if why:
            d["not_assessable"] = why
        d["stratification"] = stratify(d)
        return d

    concavity = nod(2, 22.1, 0.9, "equivalent diameter of a concavity of the lung outline, not a segmentation")
    assert "category" not in concavity["stratification"]["lung_rads"]
    for size, cat in ((7.0, "3"), (5.0, "2")):
        ok = nod(1, size, 0.9)
        assert ok["stratification"]["lung_rads"]["category"] == cat
        main, low = split_by_score([ok, concavity])
        lines = management_lines(main, low)
        text = " ".join(a + " " + b for a, b in lines)
        assert lines[0][0] == "Lung-RADS not decided" and "#2 not assessable (equivalent diameter" in lines[0][1]
        assert "None" not in text and "LDCT in 6 months" not in text and "12 months" not in text, lines
        assert highest_lung_rads(main, low) == f">={cat}"
    assert highest_lung_rads(*split_by_score([concavity])) == "not decided"
    # the same concavity among the low-probability candidates (set apart for review) still may be
    # 4A or 4B: beside a measured 3 the scan is at least 3, not decided (review finding M1, detect22;
    # before, it read "3")
    low_c = nod(3, 22.1, 0.01, "a concavity")
    ok = nod(1, 7.0, 0.9)
    main, low = split_by_score([ok, low_c])
    assert low == [low_c] and management_lines(main, low)[0][0] == "Lung-RADS not decided"
    assert highest_lung_rads(main, low) == ">=3"


def test_a_low_probability_candidate_without_category_is_named_at_scan_level():
    """Issue 17 trial M1: a candidate with no Lung-RADS category nor floor below the report's
    threshold (lung2 #9, a 22 mm concavity clipped to its sphere; the chest CTA's #3, a 13.5 mm
    outline of fat density; calcium density of uncertain size) was listed only in the
    low-probability table: a scan whose only doubt it was came out decided, "Lung-RADS 2,
    continue annual screening". Such a candidate is named on a scan-level review line (the
    report's follow-up, the summary's review_low_probability); a not-assessable one leaves a scan
    of Lung-RADS 1-2 (or none) not decided, no routine follow-up given. Calcium or bone (a
    calcified nodule, Lung-RADS 1, or no nodule) never raises the category: named, the category
    stands."""
    from imagio.detection.pipeline import highest_lung_rads, scan_lung_rads
    from conftest import screening_nodule as nod
    from imagio.detection.report import for_review, management_lines, split_by_score

    concavity = nod(9, 22.1, 0.155, why="the outline grew beyond the detected concavity of the lung outline and "
                                        "was clipped to it: its size is the concavity's equivalent diameter")
    fat = nod(3, 13.5, 0.264, why="the outline's tissue has a mean density of -45 HU, that of fat (-190..-30 HU)")
    bone = nod(6, 10.1, 0.259, "calcified", unsure="the outline was clipped to the detected blob's sphere")
    assert bone["stratification"]["lung_rads"]["no_category"] == "calcium_or_bone"
    for doubt in (concavity, fat):
        for ok in ([nod(1, 5.0, 0.9)], []):   # Lung-RADS 2, or nothing categorised
            main, low = split_by_score(ok + [doubt])
            assert low == [doubt]
            lines = management_lines(main, low)
            text = " ".join(a + " " + b for a, b in lines)
            assert lines[0][0] == "Lung-RADS not decided" and f"#{doubt['id']} not assessable" in lines[0][1], lines
            assert "12 months" not in text and "Continue annual" not in text, lines
            assert highest_lung_rads(main, low) == (">=2" if ok else "not decided")
            assert for_review(low) == [f"#{doubt['id']} not assessable"]
            assert "review" not in dict(lines), lines   # not among the "would be 4A+" ones
            s = scan_lung_rads(ok + [doubt])
            assert s["review_low_probability"] == [f"#{doubt['id']} not assessable"]
            # the headline names the candidate that leaves it not decided (detect25: lung1's began
            # "not decided" with no candidate named)
            assert s["highest_lung_rads"] == (f"{highest_lung_rads(main, low)} (not assessable: #{doubt['id']} "
                                              f"(score {doubt['candidate']['probability']:.2f}))")
            assert "not assessable" in s["uncategorised"] and f"#{doubt['id']}" in s["uncategorised"]
    # beside a measured Lung-RADS 3 the scan is at least 3 (it may hold a 4A or 4B: review finding
    # M1, detect22; before, the category stood at "3"): not decided, the candidate named there
    main, low = split_by_score([nod(1, 7.0, 0.9), concavity])
    lines = dict(management_lines(main, low))
    assert "Lung-RADS 3 among the measured nodules" in lines and "#9 not assessable" in lines["Lung-RADS not decided"]
    assert "review: no category" not in lines   # named once, on the not-decided line
    assert highest_lung_rads(main, low) == ">=3"
    # calcium or bone of uncertain size: named for review, the category stands
    main, low = split_by_score([nod(1, 5.0, 0.9), bone])
    lines = dict(management_lines(main, low))
    assert "Lung-RADS 2" in lines and "Continue annual" in lines["Lung-RADS 2"]
    assert "#6 calcium density of uncertain size, 10 mm outline" in lines["review: no category"], lines
    assert highest_lung_rads(main, low) == "2" and for_review(low) == ["#6 calcium or bone, size uncertain"]


def test_the_scan_says_how_many_candidates_have_no_category_and_why():
    """Issue 17 trial L2: lung2's scan read "Lung-RADS 4B" while most of its characterised
    candidates had no category (sizes that are lower bounds, a not-assessable concavity), unsaid.
    The report's follow-up, the summary and the cohort's case table say how many of the
    characterised candidates have no category, by reason, with their ids."""
    from imagio.detection.pipeline import scan_lung_rads
    from imagio.detection.report import management_lines, split_by_score
    from imagio.stratification.screening import stratify

    def nod(i, size, p, unsure=None, why=None, **kw):
        d = {"id": i, "type": "solid", "mean_diameter_mm": size, "long_axis_mm": size, "size_uncertain": unsure,
             "candidate": {"probability": p}, **kw}
        if why:
            d["not_assessable"] = why
        d["stratification"] = stratify(d)
        return d

    clip = "the outline was clipped to the detected blob's sphere"
    nods = [nod(1, 40.4, 0.55), nod(5, 8.6, 0.24, clip), nod(7, 10.3, 0.19, clip), nod(10, 6.6, 0.15),
            nod(9, 22.1, 0.15, clip, "a concavity clipped to its sphere"), nod(12, 0.8, 0.2),
            nod(8, None, 0.2, segmented=False)]
    got = scan_lung_rads(nods)["uncategorised"]
    assert got.startswith("5 of 7 characterised candidates have no Lung-RADS category"), got
    assert "2 size a lower bound" in got and "(#5, #7)" in got
    assert "1 not assessable" in got and "(#9)" in got
    assert "1 below the smallest measurable size (#12)" in got and "1 not segmented (#8)" in got
    assert not re.search(r"#1\b", got) and "#10" not in got   # categorised: 4B, 3
    lines = management_lines(*split_by_score(nods))
    assert lines[0][0] == "Lung-RADS 4B" and lines[1] == ("no category", got), lines   # beside the category
    assert scan_lung_rads([nods[0], nods[3]])["uncategorised"] == ""


def test_study_list_with_two_scans_of_one_name_says_how_to_name_them(tmp_path):
    from imagio.cohort import list_cases

    for p in ("p1", "p2"):
        (tmp_path / p / "CT").mkdir(parents=True)
    lst = tmp_path / "list.txt"
    lst.write_text(f"{tmp_path / 'p1' / 'CT'}\n{tmp_path / 'p2' / 'CT'}\n")
    with pytest.raises(InputError, match="in a CSV with a path and a seriesuid column"):
        list_cases(lst)



@needs_slabs
@pytest.mark.parametrize("row,says", [("LIDC-IDRI-0003_slab,72.0,77.3,500.0,26", "lie wholly outside the scan"),
                                      ("LIDC-IDRI-0003_slab,72.0,77.3,-191.8,-3", "diameter_mm '-3'")])
def test_detect_evaluate_refuses_a_reference_outside_the_scan_or_without_a_size(tmp_path, capsys, row, says):
    """New-user trial 40 (M3): a reference nodule 616 mm above the scan was scored as a miss (CPM 0.5)
    and a diameter of -3 mm gave CPM 0.0, both without a word. Both are refused in one line before
    the scan is run (no output written). The test's own reading of the slab's extent along S."""
    from imagio import cli, io

    ct = io.read_image(L3)
    corners = np.array([[a, b, c] for a in (0, ct.shape[0] - 1) for b in (0, ct.shape[1] - 1)
                        for c in (0, ct.shape[2] - 1)], float)
    s = ct.kji_to_world(corners)[:, 2]
    assert not s.min() <= -500.0 <= s.max()              # LPS z 500 = RAS S -500: outside the slab
    ref = tmp_path / "ref.csv"
    ref.write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n" + row + "\n")
    out = tmp_path / "det"
    assert cli.main(["detect", str(L3), "--out", str(out), "--no-slicer", "--characterise", "0",
                     "--evaluate", str(ref), "--quiet"]) == 2
    err = [e for e in capsys.readouterr().err.strip().splitlines() if not e.startswith("imagio: warning:")]
    assert len(err) == 1 and says in err[0], err          # the scan's own input warning aside
    assert not (out / "candidates.json").exists()


@needs_slabs
def test_a_cohort_records_each_scans_input_warnings_with_the_case(tmp_path, capsys):
    """New-user trial 40 (LOW): a cohort's workers printed Python's raw warning and its source line
    ("io.py:291: InputWarning: ... warn(vol, ...)") on stderr. The scan's input warnings are the
    case's record: cohort_cases.csv's input_warnings column, not a worker's stderr. The test's own
    reading of the slab: a fifth of its voxels hold the -2048 padding the reader warns of."""
    import SimpleITK as sitk

    from imagio import cli

    a = sitk.GetArrayFromImage(sitk.ReadImage(str(L3)))
    assert (a < -1500).mean() > 0.2
    src = _csv(tmp_path / "c.csv", [{"path": str(L3), "seriesuid": "a"}])
    out = tmp_path / "out"
    assert cli.main(["detect", str(src), "--out", str(out), "--workers", "0", "--characterise", "0",
                     "--no-slicer", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "InputWarning" not in err and "warn(vol" not in err
    with open(out / "cohort_cases.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["status"] in ("", "done") and "below -1500 HU" in row["input_warnings"], row


@needs_slabs
def test_a_reference_nodule_a_slab_cuts_is_kept():
    """New-user trial 41 (LOW): a reference whose centre lies 6 mm beyond the slab's face but whose
    30 mm sphere reaches into the scan was refused: a slab cut through a nodule may show it. Only
    a sphere wholly outside the voxels is refused. The test places the centres itself, along the
    slab's thin axis from its last voxel centre."""
    from imagio import io
    from imagio.detection.commands import require_references_in_scan

    ct = io.read_image(L3)
    ax = int(np.argmin(ct.shape))                      # the slab's thin array axis (k, j or i)
    last = np.zeros(3)
    last[ax] = ct.shape[ax] - 1
    ras_last = ct.kji_to_world(last[None])[0]
    step = ct.kji_to_world((last + np.eye(3)[ax])[None])[0] - ras_last
    step /= np.linalg.norm(step)
    half = 0.5 * float(ct.spacing_kji[ax])
    for beyond, diameter, refused in ((6.0, 30.0, False), (6.0, 10.0, True), (20.0, 30.0, True)):
        ras = ras_last + step * (half + beyond)
        lps = ras * np.array([-1.0, -1.0, 1.0])
        ref = {"s": np.array([[*lps, diameter]])}
        if refused:
            with pytest.raises(InputError, match="wholly outside the scan"):
                require_references_in_scan(ref, "s", ct, "ref.csv")
        else:
            require_references_in_scan(ref, "s", ct, "ref.csv")


def test_cohort_table_joins_cases_written_with_other_columns_by_name(tmp_path):
    """Review 41 L3: `collect` joined each case's nodules.csv by column position, so a cohort
    resumed across a version that added a column (nodules.csv's `table`) shifted the older
    case's values under the wrong names. Columns are matched by name; a missing one is empty."""
    from imagio.cohort import collect

    out = tmp_path / "run"
    rows = {"A": (["seriesuid", "coordX", "probability", "table"], ["a", "1.0", "0.9", "main"]),
            "B": (["seriesuid", "probability", "coordX"], ["b", "0.2", "3.0"])}   # older, reordered
    for case, (head, row) in rows.items():
        d = out / "cases" / case
        d.mkdir(parents=True)
        (d / "done.json").write_text(json.dumps({"case": case, "path": case, "status": "done"}))
        with open(d / "nodules.csv", "w", newline="") as f:
            csv.writer(f).writerows([head, row])
    _, _, tab = collect(out, [{"case": "A", "path": "A"}, {"case": "B", "path": "B"}])
    got = {r["case"]: r for r in csv.DictReader(open(tab, newline=""))}
    assert got["B"]["coordX"] == "3.0" and got["B"]["probability"] == "0.2" and got["B"]["table"] == ""
    assert got["A"]["table"] == "main" and got["A"]["coordX"] == "1.0"


def test_cohort_case_table_takes_structured_fields_of_a_case(tmp_path):
    """New-user trial 85 M1: `imagio detect FOLDER` ended in a traceback after every case had run
    (no cohort_cases.csv): the case table joined every list of done.json as text, and
    LIDC-0003's ``lung_rads_conditions`` is a list of dicts. The table is written; a list of
    texts is joined with "; ", a structured value of a table column is JSON."""
    from imagio.cohort import collect

    out = tmp_path / "run"
    d = out / "cases" / "A"
    d.mkdir(parents=True)
    (d / "done.json").write_text(json.dumps({
        "case": "A", "path": "A", "status": "done", "input_warnings": ["w1", "w2"],
        "structures": [{"name": "lung", "ml": 1.0}],
        "lung_rads_conditions": [{"candidate": 1, "category": "4A"}]}))
    with open(d / "nodules.csv", "w", newline="") as f:
        csv.writer(f).writerows([["seriesuid", "probability"], ["a", "0.9"]])
    rows, cases_csv, _ = collect(out, [{"case": "A", "path": "A"}])
    got = list(csv.DictReader(open(cases_csv, newline="")))
    assert got[0]["input_warnings"] == "w1; w2" and got[0]["status"] == "done"
    assert json.loads(got[0]["structures"]) == [{"name": "lung", "ml": 1.0}]


def test_a_low_scored_mass_is_not_called_a_likely_vessel():
    """New-user trial 49 M2: Lung-PET-CT-Dx's 5 cm adenocarcinoma scored 0.388, below the table's
    threshold, and was named under "most are vessels, airway walls or chest-wall structures". A
    low-probability candidate that segments as a solid mass over 30 mm (wider than any
    intrapulmonary vessel) is named on its own line as a possible tumour; a 9 mm one keeps the
    generic line."""
    from imagio.detection.report import management_lines, split_by_score
    from imagio.stratification.screening import stratify

    def nod(i, size, p):
        d = {"id": i, "type": "solid", "mean_diameter_mm": size, "long_axis_mm": size,
             "size_uncertain": None, "candidate": {"probability": p}}
        d["stratification"] = stratify(d)
        return d

    main, low = split_by_score([nod(1, 50.8, 0.288), nod(2, 9.0, 0.05)])   # below the cut (0.34 since detect45)
    assert main == [] and len(low) == 2
    lines = dict(management_lines(main, low))
    assert "#1 51 mm" in lines["review: mass"] and "possible tumour" in lines["review: mass"]
    assert "#2" in lines["review"] and "#1" not in lines["review"]


def test_a_low_probability_candidate_above_the_scans_category_is_in_the_headline():
    """New-user trial 60 M3: on lung1 every candidate scored < 0.4; the true nodule was rank 1
    (0.34, Lung-RADS 4B) but listed only for review, and the headline read ">=4A", made of the floors
    of clipped low-probability candidates: a reader saw at most 4A for a 4B scan. The headline now
    names the highest category a low-probability candidate measures above the scan's, with its
    score, as a condition ("4B if #1 (score 0.34) is a nodule"), and the report's follow-up says it;
    a low-probability candidate is never made the category (trial 37 M2), nor is its floor (trial 63
    M1: it is a condition too, Testing/test_detection_lung_rads_headline.py), and 1-2 never add a
    condition."""
    from conftest import screening_nodule as nod
    from imagio.detection.pipeline import highest_lung_rads, if_a_nodule, scan_lung_rads
    from imagio.detection.report import management_lines, split_by_score

    clip = "the outline was clipped to the detected blob's sphere"
    nodule = nod(1, 24.0, 0.30)                   # lung1's (0.34 then): 4B, below the report's cut (0.34 since detect45)
    other_4b = nod(9, 16.0, 0.2)                  # 4B too, less probable: named after #1 (trial 63 L1)
    floors = [nod(i, 9.0, 0.1, unsure=clip) for i in (11, 13, 14)]   # clipped: at least 4A
    assert nodule["stratification"]["lung_rads"]["category"] == "4B"
    assert floors[0]["stratification"]["lung_rads"]["category_at_least"] == "4A"
    every = [nodule, other_4b] + floors
    main, low = split_by_score(every)
    assert main == [] and highest_lung_rads(main, low) == ""          # nothing reported (trial 63 M1)
    assert if_a_nodule(main, low)[0] == {"category": "4B", "at_least": False, "candidates": [
        {"id": 1, "probability": 0.30, "at_size_cut": None, "type": None}, {"id": 9, "probability": 0.2, "at_size_cut": None, "type": None}]}
    assert scan_lung_rads(every)["highest_lung_rads"] == ("4B if #1 (score 0.30) or #9 (0.20) is a nodule; "
                                                          ">=4A if #11, #13 or #14 is a nodule")
    lines = dict(management_lines(main, low))
    assert "#1 (score 0.30)" in lines["Lung-RADS 4B if a nodule"], lines
    # no floors at all: the headline was "" (nothing graded) for a 4B candidate
    assert scan_lung_rads([nodule])["highest_lung_rads"] == "4B if #1 (score 0.30) is a nodule"
    # beside a reported 2, a 4A pleural candidate of 0.05: the scan stays 2, the condition is said
    ok, pleural = nod(1, 4.5, 0.9), nod(2, 9.0, 0.05)
    assert scan_lung_rads([ok, pleural])["highest_lung_rads"] == "2; 4A if #2 (score 0.05) is a nodule"
    # nothing above the scan's category, or only 1-2: the headline is the category alone
    assert scan_lung_rads([nod(1, 24.0, 0.9), pleural])["highest_lung_rads"] == "4B"
    assert scan_lung_rads([nod(1, 3.5, 0.9), nod(2, 5.0, 0.1)])["highest_lung_rads"] == "2"
    assert "if a nodule" not in " ".join(k for k, _ in management_lines(*split_by_score([nod(1, 24.0, 0.9), pleural])))
