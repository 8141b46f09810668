"""The DICOM PatientPosition (0018,5100) sets the planner's couch side (new-user trial 32, H3: a
prone HFP series was planned as supine and its best entry faced the couch). The series are written
with pydicom (``dicom_series``): an elliptic body with a 7 mm marker 20 mm under the anterior skin,
the marker labelled as the target; the two series differ only in the tag."""

import json

import numpy as np
import pytest

from dicom_series import THRESHOLD, Patient, axial_positions, write_series
from imagio import io
from imagio.cli import main


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    d = tmp_path_factory.mktemp("pos")
    pt = Patient(marker_lps=(0.0, -30.0, 28.0), radius=7.0, body=(60.0, 50.0))
    pos, row, col = axial_positions(n=24)
    for code in ("HFS", "HFP"):
        write_series(d / code, pt, pos, row, col, patient_position=code)
    ct = io.read_image(d / "HFP")
    io.write_labels(ct.with_array((ct.array > THRESHOLD).astype(np.uint8), labels={1: "liver_tumor"}),
                    d / "lab.seg.nrrd")
    return d, pt


def _plan(d, code, out, *extra):
    rc = main(["plan", str(d / code), "--labels", str(d / "lab.seg.nrrd"), "--target", "liver_tumor",
               "--out", str(d / out), "--no-png", "--quiet", *extra])
    assert rc == 0
    return json.loads((d / out / "plan.json").read_text())


def test_prone_series_is_planned_prone_with_the_couch_anterior(series, capsys):
    d, pt = series
    target_a = pt.marker_ras[1]
    sup = _plan(d, "HFS", "sup")
    assert sup["constraints"]["patient_position"] == "supine"
    assert sup["proposals"][0]["entry_ras"][1] > target_a + 10   # the short anterior path
    pro = _plan(d, "HFP", "pro")
    assert pro["constraints"]["patient_position"] == "prone"
    assert any("PatientPosition HFP" in w and "anterior" in w for w in pro["input_warnings"])
    for p in pro["proposals"]:   # no entry on the couch (anterior) side of the target
        assert p["entry_ras"][1] <= target_a + 1.0, p["entry_ras"]
    assert "PatientPosition HFP" in capsys.readouterr().err
    # --position wins, said when it disagrees with the header
    forced = _plan(d, "HFP", "forced", "--position", "supine")
    assert forced["constraints"]["patient_position"] == "supine"
    # said once (trial 89 L: an input warning and the plan's warning both said it), with the couch side
    said = [w for w in forced.get("input_warnings", []) + forced["warnings"] if "PatientPosition HFP" in w]
    assert len(said) == 1 and "planned supine on a CT taken prone" in said[0], said
    assert "couch on the patient's posterior side" in said[0] and "confirm" in said[0], said


def test_info_shows_the_patient_position(series, capsys):
    d, _ = series
    assert main(["info", str(d / "HFP")]) == 0
    assert "'PatientPosition': 'HFP'" in capsys.readouterr().out


def test_decubitus_and_unknown_codes():
    from imagio.planning.problem import position_from_header

    assert position_from_header({"PatientPosition": "HFDL"}, None, "supine")[0] == "left_lateral"
    pos, w = position_from_header({"PatientPosition": "FFDR"}, None, "supine")
    assert pos == "right_lateral" and "couch is taken as right" in w
    pos, w = position_from_header({"PatientPosition": "LFP"}, None, "supine")
    assert pos == "supine" and "not one IMAGIO knows" in w
    assert position_from_header({}, None, "supine") == ("supine", None)           # NIfTI: no tag
    assert position_from_header({"PatientPosition": "HFS"}, None, "supine") == ("supine", None)
    assert position_from_header({"PatientPosition": "HFS"}, "prone", "supine") == ("prone", None)   # the plan says it


class _OnCouch(Patient):
    """The same body lying prone on a 4 mm couch top 3 mm in front of its anterior skin."""

    def hu(self, p):
        out = super().hu(p)
        x, y = p[..., 0], p[..., 1]
        out[(y > -57.0) & (y < -53.0) & (np.abs(x) < 66.0)] = 200.0   # LPS: -y is anterior
        return out


def test_couch_on_another_side_is_named_when_no_position_is_known(series, capsys):
    """A NIfTI (no PatientPosition) of a prone patient on its couch, planned with the default
    supine: the table-not-found warning says that a couch top lies anterior and names --position
    prone (the old warning only said the table was assumed at the deepest skin)."""
    d, pt = series
    pos, row, col = axial_positions(n=24)
    write_series(d / "couch", _OnCouch(pt.marker, pt.radius, pt.body), pos, row, col)
    io.write_image(io.read_image(d / "couch"), d / "couch.nii.gz")
    assert main(["plan", str(d / "couch.nii.gz"), "--labels", str(d / "lab.seg.nrrd"), "--target", "liver_tumor",
                 "--out", str(d / "couch_plan"), "--no-png", "--quiet"]) == 0
    doc = json.loads((d / "couch_plan" / "plan.json").read_text())
    w = [x for x in doc["warnings"] if x.startswith("table not found")]
    assert len(w) == 1 and "couch top lies on the patient's anterior side" in w[0] and "--position prone" in w[0], w
    assert "--position prone" in capsys.readouterr().err
