"""The plan report a radiologist can read (issue 12): `imagio report PLAN.json` finds the plan's
CT and labels (or warns), each report's pictures are its own and every <img> exists, the axial
picture is oriented as Slicer shows it and draws an oblique needle as its projection, angles are
each defined once, scores and probabilities are printed with the digits they need."""

import hashlib
import json
import re
from html import escape as html_escape
from pathlib import Path

import numpy as np
import pytest

from imagio import io
from imagio.cli import main

phantom = pytest.importorskip("imagio.phantom")


@pytest.fixture(scope="module")
def ph():
    return phantom.generate(spacing=3.0, seed=0)


@pytest.fixture(scope="module")
def planned(ph, tmp_path_factory):
    """A liver-tumour plan made by `imagio plan` on the 3 mm phantom's files."""
    d = tmp_path_factory.mktemp("report_plan")
    io.write_image(ph.ct, d / "ct.nii.gz")
    io.write_labels(ph.labels, d / "labels.seg.nrrd")
    les = next(l for l in ph.lesions if l.kind == "liver_tumor")
    rc = main(["plan", str(d / "ct.nii.gz"), "--labels", str(d / "labels.seg.nrrd"), "--target", les.name,
               "--out", str(d / "plan"), "--quiet", "--no-scene"])
    assert rc == 0
    return d


def _img_srcs(html_path: Path) -> list[Path]:
    html = html_path.read_text()
    srcs = re.findall(r'<img[^>]*\bsrc="([^"]+)"', html)
    assert html.count("<img") == len(srcs)
    return [html_path.parent / s for s in srcs]


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_plan_records_its_inputs_and_the_report_finds_them(planned, tmp_path, capsys):
    doc = json.loads((planned / "plan" / "plan.json").read_text())
    assert Path(doc["inputs"]["ct"]).samefile(planned / "ct.nii.gz")
    assert Path(doc["inputs"]["labels"]).samefile(planned / "labels.seg.nrrd")
    assert doc["inputs"]["picture_3d"] == "plan.png"
    capsys.readouterr()
    out = tmp_path / "elsewhere" / "liver.pdf"   # report written in another folder than the plan
    assert main(["report", str(planned / "plan" / "plan.json"), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning" not in err
    html = out.with_suffix(".html")
    srcs = _img_srcs(html)
    assert sorted(s.name for s in srcs) == ["liver_3d.png", "liver_axial.png", "liver_needle_plane.png"]
    assert all(s.is_file() and s.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for s in srcs)
    assert "Report warnings" not in html.read_text()


def test_report_without_the_ct_warns_and_with_ct_and_labels_has_pictures(planned, tmp_path, capsys):
    moved = tmp_path / "moved"
    moved.mkdir()
    doc = json.loads((planned / "plan" / "plan.json").read_text())
    doc["inputs"]["ct"] = str(tmp_path / "gone" / "ct.nii.gz")   # the CT was moved away
    (moved / "plan.json").write_text(json.dumps(doc))            # and plan.png did not travel
    capsys.readouterr()
    assert main(["report", str(moved / "plan.json"), "--out", str(tmp_path / "r" / "a.pdf")]) == 0
    err = capsys.readouterr().err
    assert "imagio: warning:" in err and "gone" in err and "--ct" in err and "plan.png" in err
    html = (tmp_path / "r" / "a.html").read_text()
    assert "Report warnings" in html and "--ct" in html and "<img" not in html
    pypdf = pytest.importorskip("pypdf")
    text = pypdf.PdfReader(str(tmp_path / "r" / "a.pdf")).pages[0].extract_text()
    assert "Report warnings" in text
    # given on the command line: the pictures are back, the warning about the CT is gone
    assert main(["report", str(moved / "plan.json"), "--out", str(tmp_path / "r" / "b.pdf"),
                 "--ct", str(planned / "ct.nii.gz"), "--labels", str(planned / "labels.seg.nrrd")]) == 0
    err = capsys.readouterr().err
    assert "--ct" not in err
    srcs = _img_srcs(tmp_path / "r" / "b.html")
    assert sorted(s.name for s in srcs) == ["b_axial.png", "b_needle_plane.png"] and all(s.is_file() for s in srcs)
    # a CT that does not hold the target is not the plan's: said, and no misleading pictures
    corner = io.read_image(planned / "ct.nii.gz").crop((0, 0, 0), (6, 6, 6))
    io.write_image(corner, tmp_path / "corner.nii.gz")
    assert main(["report", str(moved / "plan.json"), "--out", str(tmp_path / "r" / "c.pdf"),
                 "--ct", str(tmp_path / "corner.nii.gz")]) == 0
    assert "outside the given CT" in capsys.readouterr().err
    assert "<img" not in (tmp_path / "r" / "c.html").read_text()


def test_two_reports_in_one_folder_keep_their_own_pictures(planned, ph, tmp_path):
    from imagio.report import build_report

    doc = json.loads((planned / "plan" / "plan.json").read_text())
    other = {**doc, "proposals": doc["proposals"][1:]}   # another best path: other pictures
    assert other["proposals"][0]["entry_ras"] != doc["proposals"][0]["entry_ras"]
    html_a, _ = build_report(doc, tmp_path / "a.pdf", ph.ct, ph.labels, planned / "plan" / "plan.png")
    a_srcs = _img_srcs(html_a)
    before = {s.name: _sha(s) for s in a_srcs}
    html_b, _ = build_report(other, tmp_path / "b.pdf", ph.ct, ph.labels, planned / "plan" / "plan.png")
    b_srcs = _img_srcs(html_b)
    assert len(a_srcs) == len(b_srcs) == 3
    assert not {s.name for s in a_srcs} & {s.name for s in b_srcs}
    assert all(s.is_file() for s in a_srcs + b_srcs)
    assert {s.name: _sha(s) for s in a_srcs} == before        # b did not overwrite a's pictures
    assert _sha(tmp_path / "a_axial.png") != _sha(tmp_path / "b_axial.png")
    # a 3D picture that is not there is said, not pointed at
    html_c, _ = build_report(doc, tmp_path / "c.pdf", ph.ct, ph.labels, tmp_path / "demo.png")
    assert all(s.is_file() for s in _img_srcs(html_c)) and len(_img_srcs(html_c)) == 2
    assert "demo.png" in html_c.read_text() and "Report warnings" in html_c.read_text()


def _is_needle(rgb) -> np.ndarray:
    rgb = np.asarray(rgb, float)
    return (rgb[..., 0] < 110) & (rgb[..., 1] > 170) & (rgb[..., 2] > 200)


def test_axial_picture_is_radiological_and_draws_the_oblique_needle_projected(ph):
    import matplotlib.pyplot as plt

    from imagio.report import AXIAL_U, AXIAL_V, slice_figure

    target = np.asarray(next(l for l in ph.lesions if l.kind == "liver_tumor").center_ras, float)
    # entry 60 mm to the patient's right, 40 mm anterior, 30 mm cranial of the target
    entry = target + np.array([60.0, 40.0, 30.0])
    fig, ax = slice_figure(ph.ct, None, target, AXIAL_U, AXIAL_V, entry, target, "axial", half_slab_mm=5.0)
    try:
        letters = {t.get_text(): t.get_position() for t in ax.texts if t.get_gid() == "orientation"}
        assert set(letters) == {"R", "L", "A", "P"}
        assert letters["R"][0] < 0.5 < letters["L"][0]          # patient right on the picture's left
        assert letters["A"][1] > 0.5 > letters["P"][1]          # anterior at the top
        fig.canvas.draw()
        img = np.asarray(fig.canvas.buffer_rgba())[..., :3]
        h = img.shape[0]

        def pixels(lams, mirror=1.0):
            # hand projection: picture x = -(R offset) (radiological), y = A offset; the needle
            # point at lam (0 entry, 1 target) is target + (1 - lam) * (60, 40, 30)
            xy = np.stack([-mirror * 60.0 * (1 - lams), 40.0 * (1 - lams)], axis=1)
            disp = ax.transData.transform(xy)
            return img[np.rint(h - disp[:, 1]).astype(int), np.rint(disp[:, 0]).astype(int)]

        # in the slab (|S offset| = 30 (1 - lam) <= 5 mm: lam >= 5/6) the line is solid
        solid = _is_needle(pixels(np.linspace(0.86, 0.96, 25)))
        assert solid.all()
        # out of the slab it is the projection, dashed: partly drawn, partly gaps
        dashed = _is_needle(pixels(np.linspace(0.1, 0.75, 200))).mean()
        assert 0.3 < dashed < 0.95
        # nothing where a neurological (patient right on the right) picture would put it
        assert not _is_needle(pixels(np.linspace(0.1, 0.75, 200), mirror=-1.0)).any()
    finally:
        plt.close(fig)


def test_slab_interval_and_edge_letters():
    from imagio.report import edge_letters, slab_interval

    assert slab_interval(30.0, 0.0, 5.0) == pytest.approx((5 / 6, 1.0))
    assert slab_interval(-10.0, 10.0, 2.0) == pytest.approx((0.4, 0.6))
    assert slab_interval(8.0, 7.0, 2.0) is None and slab_interval(1.0, 1.0, 2.0) == (0.0, 1.0)
    assert edge_letters((-1, 0, 0)) == "L" and edge_letters((0, -1, 0)) == "P"
    assert edge_letters((0.6, 0.0, 0.8)) == "SR"


def test_angles_each_defined_once_against_hand_computed_vectors(planned):
    from imagio.planning.evaluate import PathMetrics
    from imagio.planning.scoring import angles
    from imagio.report import sections

    # oblique needle along (1, 2, 2)/3 (right, anterior, superior components)
    entry, target = np.array([[0.0, 0.0, 0.0]]), np.array([[10.0, 20.0, 20.0]])
    _, cc, inplane, tilt = angles(entry, target, np.array([[0.0, -1.0, 0.0]]))
    d = (target - entry)[0]
    axial_proj = d * [1, 1, 0]
    assert cc[0] == pytest.approx(np.degrees(np.arccos(np.linalg.norm(axial_proj) / np.linalg.norm(d))))  # 41.81
    assert inplane[0] == pytest.approx(np.degrees(np.arccos(d[1] / np.linalg.norm(d[:2]))))             # 26.57
    assert tilt[0] == pytest.approx(np.degrees(np.arccos(d[1] / np.linalg.norm(d[1:]))))                 # 45
    assert len({round(float(x), 2) for x in (cc[0], inplane[0], tilt[0])}) == 3
    # no second name for the craniocaudal angle
    assert "outofplane_deg" not in PathMetrics.__dataclass_fields__
    doc = json.loads((planned / "plan" / "plan.json").read_text())
    secs = dict(sections(doc, {}))
    rows = {r[0]: r[1:] for r in secs["Proposed trajectories"][0][2]}
    labels = [k for k in rows if "deg" in k]
    assert len(labels) == len(set(labels)) == 4 and not any("out-of-plane" in k for k in labels)
    for p, cc_shown, ip_shown, tilt_shown in zip(doc["proposals"], rows["craniocaudal = out of the axial plane (deg)"],
                                                 rows["in-plane, from the A-P axis (deg)"],
                                                 rows["gantry tilt for one scan plane (deg)"]):
        d = np.subtract(p["target_ras"], p["entry_ras"])
        hand_cc = np.degrees(np.arcsin(abs(d[2]) / np.linalg.norm(d)))
        hand_ip = np.degrees(np.arctan2(abs(d[0]), abs(d[1])))
        hand_tilt = np.degrees(np.arctan2(abs(d[2]), abs(d[1])))
        assert cc_shown == pytest.approx(hand_cc, abs=0.01) and ip_shown == pytest.approx(hand_ip, abs=0.01)
        assert tilt_shown == pytest.approx(hand_tilt, abs=0.01)
    assert len(secs["Angles (degrees)"]) == 4


def test_scores_and_probabilities_printed_with_the_digits_they_need():
    from imagio.report import (distinct_decimals, percent_covered, percent_of_probability, sections,
                               stratification_rows)

    props = [{"entry_ras": [0.0, 0.0, 0.0], "target_ras": [0.0, 1.0, 0.0], "score": s, "violations": []}
             for s in (0.42131, 0.42148, 0.5)]
    rows = {r[0]: r[1:] for r in dict(sections({"proposals": props}, {}))["Proposed trajectories"][0][2]}
    shown = rows["score (lower is better)"]
    assert len(set(shown)) == 3 and shown[0] == "0.4213"
    assert distinct_decimals([1.25, 1.25, 2.0]) == 1   # equal scores stay equal
    assert percent_of_probability(0.4417) == "44.2 %"
    assert percent_of_probability(0.004) == "<1 %" and percent_of_probability(0.996) == ">99 %"
    assert percent_covered(99.97) == ">99.9" and percent_covered(100.0) == "100.0"
    assert percent_covered(0.01) == "<0.1" and percent_covered(0.0) == "0.0"
    rows = dict(stratification_rows({"brock": {"model": "brock", "probability": 0.0312}, "lung_rads": "4A"}))
    assert rows["brock probability of malignancy"] == "3.1 %" and rows["lung_rads"] == "4A"


def test_infeasible_plan_report_says_why_the_best_near_miss_fails(planned, tmp_path, capsys):
    """A plan without a feasible path still gives a report: the exclusion table and the
    near-miss's violated constraints with their numbers; a needle too short says the nearest skin."""
    d = tmp_path / "forbidden"
    rc = main(["plan", str(planned / "ct.nii.gz"), "--labels", str(planned / "labels.seg.nrrd"),
               "--target", json.loads((planned / "plan" / "plan.json").read_text())["target"]["name"],
               "--out", str(d), "--quiet", "--no-scene", "--no-png", "--role", "liver=forbidden"])
    assert rc == 2
    doc = json.loads((d / "plan.json").read_text())
    assert not doc["proposals"] and doc["report"].get("best_near_miss")
    assert main(["report", str(d / "plan.json"), "--out", str(tmp_path / "r.pdf")]) == 0
    html = (tmp_path / "r.html").read_text()
    assert "No feasible path" in html and "Best near-miss (not feasible)" in html
    details = doc["report"]["best_near_miss"]["details"]
    assert details and all(html_escape(x) in html for x in details) and "liver" in " ".join(details)
    rc = main(["plan", str(planned / "ct.nii.gz"), "--labels", str(planned / "labels.seg.nrrd"),
               "--target", doc["target"]["name"], "--out", str(tmp_path / "short"), "--quiet", "--no-scene",
               "--no-png", "--needle-length", "30"])
    assert rc == 2
    assert main(["report", str(tmp_path / "short" / "plan.json"), "--out", str(tmp_path / "s.pdf")]) == 0
    assert "nearest skin (mm)" in (tmp_path / "s.html").read_text()


def test_a_chosen_path_is_listed_and_pictured_instead_of_proposal_one(planned, ph, tmp_path):
    from imagio.report import build_report

    doc = json.loads((planned / "plan" / "plan.json").read_text())
    html_best, _ = build_report(doc, tmp_path / "best.pdf", ph.ct, ph.labels)
    chosen = {**doc["proposals"][2], "details": []}
    html_ch, _ = build_report({**doc, "chosen_path": chosen}, tmp_path / "chosen.pdf", ph.ct, ph.labels)
    text = html_ch.read_text()
    assert "Chosen path" in text and "chosen path: axial slice" in text
    assert _sha(tmp_path / "chosen_axial.png") != _sha(tmp_path / "best_axial.png")
    assert "proposal #1: axial slice" in html_best.read_text()


def test_axial_note_is_wrapped_inside_the_picture():
    """A new user found the axial caption cut off at the picture's edge: the note is wrapped so
    every line fits the figure's width."""
    import matplotlib

    matplotlib.use("Agg")
    from imagio import phantom
    from imagio.report import slice_figure

    ph = phantom.generate(spacing=3.0, seed=0)
    t = ph.labels.kji_to_world(np.argwhere(ph.labels.mask("liver_tumor_1")).mean(axis=0))
    entry = t + np.array([-60.0, 70.0, 55.0])
    fig, ax = slice_figure(ph.ct, ph.labels, t, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]),
                           entry=entry, target=t, title="axial")
    fig.canvas.draw()
    box = ax.xaxis.label.get_window_extent(fig.canvas.get_renderer())
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width + 0.5


def test_rules_used_lists_the_bone_target_rule_and_the_ranking_rule():
    """Closing note: the PDF/HTML report's "Rules used" did not list the bone-target rule (only
    the target piece of the bone enterable, once, last) nor, now, the ranking of paths with
    unresolved findings. A vertebral-body point of the synthetic torso, prone."""
    from imagio.planning import PlanningProblem, plan
    from imagio.planning.problem import Constraints
    from imagio.planning.synthetic import synthetic_torso
    from imagio.report import sections

    ct, lab = synthetic_torso(3.0)
    doc = plan(PlanningProblem.build(ct, lab, (0.0, -72.0, 0.0),
                                     constraints=Constraints(patient_position="prone"))).to_dict()
    assert doc["rules"]["target_bone"]["structure"] == "vertebrae_L1"
    rows = dict(dict(sections(doc, {}))["Rules used"])
    assert "vertebrae_L1" in rows["bone target"] and "last part of the path" in rows["bone target"]
    assert "ranked after every feasible path without one" in rows["ranking"]


def test_report_of_a_bronch_json_shows_its_route():
    """Trial 10 (LOW): `imagio report bronch.json` exited 0 with only the warnings: the route of
    `imagio bronch`'s own output lies at the top level, not under 'bronchoscopy'."""
    from imagio.report import sections

    doc = {"tree": {"n_branches": 40}, "route": {"scope": "thin", "scope_diameter_mm": 4.2, "reached": False,
                                                 "remaining_mm": 71.0, "route_names": ["trachea", "RB4"]},
           "tunnels": [], "warnings": []}
    rows = dict(sections(doc, {})).get("Bronchoscopic route")
    assert rows and ("reaches the lesion", False) in rows and ("branches", "trachea > RB4") in rows


def test_report_refuses_a_json_that_is_not_a_plan(tmp_path, capsys):
    """New-user trial 25 (M4): `imagio report` of {"a": 1} wrote a PDF and exited 0."""
    from imagio.cli import main

    (tmp_path / "notplan.json").write_text('{"a": 1}')
    assert main(["report", str(tmp_path / "notplan.json"), "--out", str(tmp_path / "r.pdf")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a plan IMAGIO wrote" in err[0]
    assert not (tmp_path / "r.pdf").exists() and not (tmp_path / "r.html").exists()


def test_the_json_imagio_risk_prints_is_reported_with_its_suggestion(tmp_path, capsys):
    """New-user trial 30 (M1): `imagio report` refused the JSON `imagio risk` prints although its
    message says a risk JSON is accepted; wrapped by hand, the BTS suggestion's row was cut at
    200 characters, losing the note that it was read at the top of the Brock range. Now the
    risk output is reported as printed, with the whole suggestion and its note."""
    from imagio.cli import main

    assert main(["risk", "--age", "55", "--sex", "male", "--size-mm", "9", "--guideline", "bts_2015"]) == 0
    (tmp_path / "risk.json").write_text(capsys.readouterr().out)
    assert main(["report", str(tmp_path / "risk.json"), "--out", str(tmp_path / "risk.pdf")]) == 0
    html = (tmp_path / "risk.html").read_text()
    assert "highest Brock probability over the inputs not given" in html and "(not given:" in html
    out = json.loads((tmp_path / "risk.json").read_text())["lung_rads"]   # the Lung-RADS row whole, not cut JSON
    assert html_escape(f"{out['category']}: {out['management']}") in html and html_escape(out["source"]) in html
    assert (tmp_path / "risk.pdf").stat().st_size > 0


def test_a_risk_report_is_titled_as_one_and_says_what_risk_assumed(tmp_path, capsys):
    """New-user trial 31: `imagio report risk.json` was titled "IMAGIO plan report" for a risk
    result alone, and `imagio risk` took a solid nodule and a count of 1 when --type and --count
    were not given, without a note (Brock's count term applied silently). Now the report is a
    nodule risk report, and the JSON (and so the report) says what was assumed; given, nothing
    is assumed."""
    from imagio.cli import main

    assert main(["risk", "--age", "66", "--sex", "female", "--size-mm", "12", "--smoker"]) == 0
    out = json.loads(capsys.readouterr().out)
    said = " ".join(out["assumed"])
    assert "solid" in said and "--type" in said and "--count" in said, out["assumed"]
    (tmp_path / "risk.json").write_text(json.dumps(out))
    assert main(["report", str(tmp_path / "risk.json"), "--out", str(tmp_path / "risk.pdf")]) == 0
    html = (tmp_path / "risk.html").read_text()
    assert "<h1>IMAGIO nodule risk report</h1>" in html and "<title>IMAGIO nodule risk report</title>" in html
    assert "plan report" not in html and html_escape(out["assumed"][0]) in html
    capsys.readouterr()
    assert main(["risk", "--age", "66", "--sex", "female", "--size-mm", "12", "--smoker", "--type", "solid",
                 "--count", "2"]) == 0
    out2 = json.loads(capsys.readouterr().out)
    assert "assumed" not in out2 and out2["brock"]["probability_range"][1] < out["brock"]["probability_range"][1]


def test_report_takes_quiet_as_the_other_commands_do(tmp_path, capsys):
    """New-user trial 32 (L1): `imagio report ... --quiet` was refused ("unrecognized arguments")
    while plan and bronch take it. Quiet: the files are written and not listed."""
    from imagio.cli import main

    assert main(["risk", "--age", "55", "--sex", "male", "--size-mm", "9"]) == 0
    (tmp_path / "risk.json").write_text(capsys.readouterr().out)
    assert main(["report", str(tmp_path / "risk.json"), "--out", str(tmp_path / "risk.pdf"), "--quiet"]) == 0
    assert capsys.readouterr().out == "" and (tmp_path / "risk.pdf").stat().st_size > 0
    assert main(["report", str(tmp_path / "risk.json"), "--out", str(tmp_path / "r2.pdf")]) == 0
    assert "r2.pdf" in capsys.readouterr().out


def test_report_draws_the_plan_only_on_the_ct_it_was_made_on(planned, tmp_path, capsys):
    """New-user trial 36 (M1): `report --ct` with another patient's CT placed over the target's
    coordinates drew the plan's liver and needle over that patient's heart, exit 0, no word; only a
    CT that missed the target was refused. plan.json records the CT's world digest; another image
    on the same grid is said and not pictured; the plan's own CT stored flipped and permuted (the
    same world image) is pictured. Checked independently: the other CT holds the target, and the
    flipped copy samples like the original at random world points."""
    from imagio.volume import world_digest
    plan_json = planned / "plan" / "plan.json"
    doc = json.loads(plan_json.read_text())
    ct = io.read_image(planned / "ct.nii.gz")
    assert doc["inputs"]["ct_digest"] == world_digest(ct)
    # another image over the same coordinates (the target inside it): values changed
    arr = ct.array.copy()
    arr[:, :, : arr.shape[2] // 2] = arr[:, :, arr.shape[2] // 2:][:, :, : arr.shape[2] // 2] + 7
    other = ct.with_array(arr)
    io.write_image(other, tmp_path / "other.nii.gz")
    kji = other.world_to_kji(np.asarray(doc["target"]["ras"], float)[None])[0]
    assert np.all((kji >= 0) & (kji <= np.asarray(other.shape) - 1))     # it holds the target
    capsys.readouterr()
    assert main(["report", str(plan_json), "--out", str(tmp_path / "o.pdf"), "--ct", str(tmp_path / "other.nii.gz")]) == 0
    err = capsys.readouterr().err
    assert "not the image the plan was made on" in err
    assert not any(s.name == "o_axial.png" for s in _img_srcs(tmp_path / "o.html"))
    # the same world image stored another way (SimpleITK keeps each voxel's world position): pictured
    import SimpleITK as sitk
    img = sitk.ReadImage(str(planned / "ct.nii.gz"))
    sitk.WriteImage(sitk.PermuteAxes(sitk.Flip(img, [True, False, True]), [1, 0, 2]), str(tmp_path / "flipped.nii.gz"))
    fl = io.read_image(tmp_path / "flipped.nii.gz")
    assert fl.array.shape != ct.array.shape or not np.array_equal(fl.array, ct.array)
    rng = np.random.default_rng(0)
    pts = ct.ijk_to_ras[:3, :3] @ (rng.uniform(0, 1, (3, 200)) * (np.array(ct.shape[::-1])[:, None] - 1)) + ct.ijk_to_ras[:3, 3:4]
    assert np.array_equal(ct.sample(pts.T, order=0), fl.sample(pts.T, order=0))
    assert world_digest(fl) == world_digest(ct)
    assert main(["report", str(plan_json), "--out", str(tmp_path / "f.pdf"), "--ct", str(tmp_path / "flipped.nii.gz")]) == 0
    assert "not the image the plan was made on" not in capsys.readouterr().err
    assert any(s.name == "f_axial.png" for s in _img_srcs(tmp_path / "f.html"))


def test_the_ct_digest_does_not_see_the_sign_of_a_rounded_zero():
    """Review 38: `volume.world_digest` rounds the affine to 0.01 mm, but hashed the bytes of the
    rounded floats, so a direction cosine of -1e-7 (rounding to -0.0) and one of +1e-7 (0.0), the
    same image to a millionth of a millimetre, as two exporters write one scan, gave two digests:
    the report would have left the plan's own CT out as "not the image the plan was made on"."""
    from imagio.volume import Volume, world_digest

    arr = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    aff = np.diag([0.7, 0.8, 2.5, 1.0])
    aff[:3, 3] = [10.0, -20.0, 30.0]
    a, b = aff.copy(), aff.copy()
    a[0, 1], b[0, 1] = -1e-7, 1e-7
    assert np.allclose(Volume(arr, a).kji_to_world(np.argwhere(arr > -1)),
                       Volume(arr, b).kji_to_world(np.argwhere(arr > -1)), atol=1e-5)
    assert world_digest(Volume(arr, a)) == world_digest(Volume(arr, b))


def test_the_digest_of_an_integer_image_is_that_of_its_float_copy():
    """Issue 20: `volume.world_digest` hashes an integer image's values as they are (int32), not
    rounded through a float64 copy of each slice; the digest is that of the same image as float64
    (rounded as before), for a CT (int16, negative HU) and label maps (uint8, uint16, bool)."""
    from imagio.volume import Volume, world_digest

    rng = np.random.default_rng(1)
    aff = np.diag([0.7, 0.8, 2.5, 1.0])
    ct = rng.integers(-1024, 3000, (5, 6, 7)).astype(np.int16)
    for arr in (ct, rng.integers(0, 256, (5, 6, 7)).astype(np.uint8),
                rng.integers(0, 65536, (5, 6, 7)).astype(np.uint16), ct > 0):
        assert world_digest(Volume(arr, aff)) == world_digest(Volume(arr.astype(np.float64), aff)), arr.dtype
    assert world_digest(Volume(ct, aff)) != world_digest(Volume(ct + np.int16(1), aff))


def test_report_draws_the_plan_only_over_the_label_map_it_was_made_on(planned, tmp_path, capsys):
    """New-user trial 39 (M2): `report --labels` with another label map (mirrored left-right) drew the
    plan over it without a word: the tumour outline on the other side, a vessel across the needle.
    plan.json records the label map's world digest; another map is said and its outlines left out
    (the CT is still pictured); the plan's own map is drawn without the note."""
    from imagio.volume import world_digest
    plan_json = planned / "plan" / "plan.json"
    doc = json.loads(plan_json.read_text())
    lab = io.read_labels(planned / "labels.seg.nrrd")
    assert doc["inputs"]["labels_digest"] == world_digest(lab)
    io.write_labels(lab.with_array(np.ascontiguousarray(lab.array[:, :, ::-1])), tmp_path / "mirrored.seg.nrrd")
    capsys.readouterr()
    assert main(["report", str(plan_json), "--out", str(tmp_path / "o.pdf"),
                 "--labels", str(tmp_path / "mirrored.seg.nrrd")]) == 0
    err = capsys.readouterr().err
    assert "label map for the pictures is not the one the plan was made on" in err
    assert any(s.name == "o_axial.png" for s in _img_srcs(tmp_path / "o.html"))      # the CT still pictured
    assert main(["report", str(plan_json), "--out", str(tmp_path / "r.pdf"),
                 "--labels", str(planned / "labels.seg.nrrd")]) == 0
    assert "label map for the pictures" not in capsys.readouterr().err


def test_the_closest_structure_is_the_nearest_and_the_limiting_one_is_named_apart(planned):
    """New-user trial 39 (L3): plan.json's "closest structure" was the binding one after margins (portal
    vein 9.7 mm while a rib was 5.2 mm from the needle), with a second clearance for the same vessel
    (9.69 vs 9.60 in clearance_mm). Now closest = the nearest of the per-structure clearances, with that
    same number; the binding one is limiting_structure."""
    doc = json.loads((planned / "plan" / "plan.json").read_text())
    assert doc["proposals"]
    for p in doc["proposals"]:
        clear = p["clearance_mm"]
        assert clear and "limiting_structure" in p and "limiting_clearance_mm" in p
        nearest = min(clear, key=clear.get)
        assert p["closest_structure"] == nearest, (p["closest_structure"], clear)
        assert p["closest_clearance_mm"] == clear[nearest]


def test_report_replaces_an_earlier_report_only_with_force(tmp_path, capsys):
    """New-user trial 80 (L): `imagio report` replaced its earlier PDF and HTML without --force,
    while every other command refuses an existing output without it. Now the PDF and the HTML
    beside it are refused up front (one line, exit 2) unless --force, which replaces IMAGIO's
    earlier report only: a file the user made there is never replaced."""
    from imagio.cli import main

    assert main(["risk", "--age", "55", "--sex", "male", "--size-mm", "9"]) == 0
    (tmp_path / "risk.json").write_text(capsys.readouterr().out)
    run = ["report", str(tmp_path / "risk.json"), "--out", str(tmp_path / "r.pdf"), "--quiet"]
    assert main(run) == 0
    first = (tmp_path / "r.pdf").read_bytes()
    capsys.readouterr()
    assert main(run) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "r.pdf exists" in err[0] and "--force" in err[0], err
    (tmp_path / "r.pdf").unlink()
    assert main(run) == 2 and "r.html exists" in capsys.readouterr().err   # the HTML alone: refused too
    assert not (tmp_path / "r.pdf").exists()
    assert main(run + ["--force"]) == 0 and (tmp_path / "r.pdf").read_bytes()[:5] == first[:5] == b"%PDF-"
    (tmp_path / "u.html").write_text("mine")
    assert main(run[:3] + [str(tmp_path / "u.pdf"), "--force"]) == 2
    assert "not an earlier output of IMAGIO" in capsys.readouterr().err
    assert (tmp_path / "u.html").read_text() == "mine" and not (tmp_path / "u.pdf").exists()


def test_report_shows_later_proposals_ranked_last_that_score_better():
    """New-user trial 88 M1: the report's trajectory table showed proposals #1-#3 only, so the two
    best-scored paths of the chest CTA (#4 and #5, ranked last for an unimaged needle, 59-61 mm
    with 7-8 mm of aerated lung against 133-147 mm with 85-93 mm) had no entry or figures in it.
    Now a later proposal ranked last for a finding is shown when it scores better than #1, with
    the finding named in a row; one that scores worse, or has a finding inside the patient, is not."""
    from imagio.report import sections

    def prop(score, fl, a):
        return {"entry_ras": [a, 0.0, 0.0], "target_ras": [0.0, 1.0, 0.0], "score": score, "violations": [],
                "aerated_lung_mm": a, "findings_ranked_last": fl}

    props = [prop(0.44, [], 85.0), prop(0.5, [], 93.0), prop(0.57, [], 92.0), prop(0.16, ["unimaged_needle"], 7.0),
             prop(0.6, ["unimaged_needle"], 9.0)]
    head, rows = dict(sections({"proposals": props}, {}))["Proposed trajectories"][0][1:]
    assert head == ["", "#1", "#2", "#3", "#4"], head
    rows = {r[0]: r[1:] for r in rows}
    assert rows["entry RAS (mm)"][3] == [7.0, 0.0, 0.0] and float(rows["score (lower is better)"][3]) == pytest.approx(0.16, abs=0.05)
    assert rows["warned findings (ranked by them first)"] == ("none", "none", "none", "unimaged_needle")
    # a finding inside the patient is no trade to show (trial 89 M2)
    props[3]["findings_ranked_last"] = ["unimaged_needle", "mediastinum"]
    assert dict(sections({"proposals": props}, {}))["Proposed trajectories"][0][1] == ["", "#1", "#2", "#3"]
    head = dict(sections({"proposals": props[:3]}, {}))["Proposed trajectories"][0][1]
    assert head == ["", "#1", "#2", "#3"]


def test_criteria_sources_are_cut_at_a_word_and_given_whole_below():
    """Trial 95 F12: the criteria table cut each source at 160 characters mid-word with no mark
    ("... (CIRSE s"), dropping the citation. A long source is now cut at a word boundary with
    "..." and a note number, and every source is given whole in the notes below the table."""
    from imagio.planning.criteria import criteria_table
    from imagio.report import sections

    crit = [{**c, "weight": 1.0} for c in criteria_table()]
    assert any(len(c["source"]) > 300 for c in crit)   # the data holds long citations
    secs = dict(sections({"criteria": crit}, {}))
    head, rows = secs["Score criteria"][0][1:]
    cells = [r[head.index("source")] for r in rows]
    notes = dict(secs["Score criteria sources"])
    for c, cell in zip(crit, cells):
        if cell != c["source"]:
            m = re.fullmatch(r"(.*) \.\.\. \[(\d+)\]", cell)
            assert m, cell
            shown, n = m.group(1), m.group(2)
            assert c["source"].startswith(shown) and not c["source"][len(shown)].isalnum(), cell   # a whole word
            assert notes[f"[{n}] {c['name']}"] == c["source"]
    assert "Cardiovasc Intervent Radiol 2018;41:1323-1330" in " ".join(notes.values())


def test_axial_picture_holds_a_far_skin_entry(ph, tmp_path):
    """New-user trial 112 F4: an ablation entry 133 mm from the target (A 252 vs the picture's edge
    at about A 210) fell off the 90 mm axial picture, whose legend still marked 'x entry'. The
    picture now widens so the entry lies inside it, with its own margin; a near entry keeps 90 mm."""
    import matplotlib.pyplot as plt

    from imagio.report import AXIAL_U, AXIAL_V, axial_half_mm, slice_figure

    target = np.asarray(next(l for l in ph.lesions if l.kind == "liver_tumor").center_ras, float)
    assert axial_half_mm(target + np.array([30.0, 40.0, 10.0]), target) == 90.0
    entry = target + np.array([-20.0, 133.0, 6.0])
    half = axial_half_mm(entry, target)
    fig, ax = slice_figure(ph.ct, None, target, AXIAL_U, AXIAL_V, entry, target, "axial", half_mm=half,
                           step_mm=max(0.5, half / 300))
    try:
        x, y = (float(c[0]) for c in next(l for l in ax.lines if l.get_gid() == "entry").get_data())
        (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
        # old code: half 90 mm, the entry's 133 mm anterior offset beyond the top edge
        assert x0 + 10 <= x <= x1 - 10 and y0 + 10 <= y <= y1 - 10, ((x, y), ax.get_xlim(), ax.get_ylim())
        assert abs(y - 133.0) < 1e-6 and abs(x - 20.0) < 1e-6   # radiological: patient right on the left
    finally:
        plt.close(fig)
