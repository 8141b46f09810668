"""`imagio risk` says whom Lung-RADS is defined for, and refuses an age no patient has (new-user
trial 112 F5: --age 10 got Lung-RADS 4A with "LDCT in 3 months; PET/CT may be considered" and no
word; --age 166 was accepted). The bounds are lungrads_v2022.json's screening_population and
input_limits.json's patient_age_years, read here from the data, not typed."""

from __future__ import annotations

import json

import pytest

from imagio.cli import main
from imagio.limits import MAX_AGE_YEARS
from imagio.stratification import lungrads
from imagio.stratification.patient import parse

POP = lungrads.table()["screening_population"]


def _risk(capsys, age):
    rc = main(["risk", "--age", f"{age:g}", "--sex", "male", "--size-mm", "9", "--type", "solid"])
    out = capsys.readouterr()
    return rc, (json.loads(out.out) if rc == 0 else None), out.err


@pytest.mark.parametrize("age", [POP["incidental_min_age"] - 25, POP["incidental_min_age"] + 5,
                                 (POP["min_age"] + POP["max_age"]) / 2, POP["max_age"] + 5])
def test_lung_rads_is_given_with_the_population_it_is_defined_for(capsys, age):
    rc, doc, err = _risk(capsys, age)
    assert rc == 0, err
    lr = doc["lung_rads"]
    assert lr["category"] == "4A"   # 9 mm solid, baseline: the category itself does not change with age
    inside = POP["min_age"] <= age <= POP["max_age"]
    # old code: no "population" at any age, and the management given to a 10-year-old; inside the
    # age range with the smoking history not given, the note says so (trial 113 LOW/MED)
    assert "population" in lr and "Lung-RADS is defined for lung cancer screening" in err, (lr, err)
    assert ("smoking history was not given" in lr["population"]) == inside, lr
    if age < POP["incidental_min_age"]:
        assert lr["management"].startswith("not given"), lr
    else:
        assert "LDCT" in lr["management"], lr
        if not inside:
            assert "Fleischner" in lr["population"], lr


@pytest.mark.parametrize("age", ["166", str(MAX_AGE_YEARS + 1), "0", "-3", "abc"])
def test_an_age_no_patient_has_is_refused(capsys, age):
    with pytest.raises(SystemExit) as e:
        main(["risk", f"--age={age}", "--size-mm", "9"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--age" in err and ("older than any recorded human" in err or "not an age" in err), err
    # one line, no usage block before it (trial 113 LOW: twelve lines of usage came first)
    assert len(err.strip().splitlines()) == 1 and "usage:" not in err, err
    # the same rule for a cohort CSV's age column and for imagio detect's --age
    with pytest.raises(ValueError):
        parse("age", age)
    with pytest.raises(SystemExit):
        main(["detect", "ct.nii.gz", "--out", "o", f"--age={age}"])


def test_the_oldest_age_is_accepted(capsys):
    assert parse("age", str(MAX_AGE_YEARS)) == MAX_AGE_YEARS
    rc, doc, err = _risk(capsys, MAX_AGE_YEARS)
    assert rc == 0 and "population" in doc["lung_rads"], err


def test_a_never_smoker_is_outside_the_screening_population(capsys):
    # trial 112 F5: imagio detect --no-smoker gave 4B with its follow-up and no word
    rc = main(["risk", "--age", "66", "--no-smoker", "--size-mm", "9", "--type", "solid"])
    out = capsys.readouterr()
    lr = json.loads(out.out)["lung_rads"]
    assert rc == 0 and "never-smoker" in lr["population"] and "LDCT" in lr["management"], lr
    assert lungrads.population_note(66, True) == ("", False)
    for age, smoker, unknown in ((None, None, "age and smoking history were"), (66, None, "smoking history was"),
                                 (None, True, "age was")):
        note, withheld = lungrads.population_note(age, smoker)
        assert f"the patient's {unknown} not given" in note and "Fleischner" in note and not withheld, note
    rc = main(["risk", "--age", "66", "--smoker", "--size-mm", "9", "--type", "solid"])
    out = capsys.readouterr()
    assert rc == 0 and "population" not in json.loads(out.out)["lung_rads"] and "Lung-RADS is" not in out.err
    note, withheld = lungrads.population_note(20, False)
    assert withheld and "at 20 years" in note


def test_lung_rads_without_the_age_and_the_never_smoker_spelling(capsys):
    """New-user trial 116 L11/L12: `imagio risk` without --age exited 2, although Lung-RADS reads no
    age; `--never-smoker` (imagio detect's spelling) was unrecognized. Now Lung-RADS is given with the
    population note, Brock and Mayo are refused with the reason; --never-smoker is --no-smoker."""
    rc = main(["risk", "--size-mm", "9", "--type", "solid"])
    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert rc == 0 and doc["lung_rads"]["category"] == "4A", out.err
    assert "age was not given" in doc["lung_rads"]["population"] or "age and smoking" in doc["lung_rads"]["population"]
    assert "age not given" in doc["brock"]["refused"] and "age not given" in doc["mayo"]["refused"]
    rc = main(["risk", "--age", "66", "--never-smoker", "--size-mm", "9", "--type", "solid"])
    out = capsys.readouterr()
    assert rc == 0 and "never-smoker" in json.loads(out.out)["lung_rads"]["population"], out.err
    # both spellings at once contradict each other (trial 117 M: the last flag won)
    assert main(["risk", "--age", "66", "--smoker", "--never-smoker", "--size-mm", "9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "contradict" in err[0], err
