"""A proposal whose zone IMAGIO planned with another device setting than the one asked (to keep a
hollow viscus out: `spare.spare_hollow_viscus`) is shown and written with ITS OWN setting
everywhere: plan.json, the summary line, the HTML/PDF report's rows, the MRML scene of plan.json
(probe nodes, zone models, coverage table), and the zone placed on a path by the Slicer module
and IMAGIO Web (`imagio.mrml.ablation.ablation_from_nodes`, its live update and the page's line);
each says that IMAGIO chose another setting than asked and why. Drawing or labelling the asked
setting's larger zone where the smaller one is planned would misstate the treatment.

Case (`test_ablation_hollow_spare._case`, oblique flipped anisotropic synthetic torso): the liver
tumour cut to a 6 mm ball (tumour + 5 mm: 11 mm), a small_bowel ball of 8 mm whose near edge
lies 16 mm SUPERIOR to the tumour's centre, across the near-axial paths: the asked Emprint
100 W 10 min zone (48 x 42 mm) takes it in wherever it is placed along a path and still covers
tumour + 5 mm (the bowel point 16 mm across stays inside 21 mm x sqrt(1 - (s/24)^2) for every
shift s <= 13 mm that keeps 11 mm covered along the path), while a smaller setting (45 W 5 min:
30 x 24 mm; 75 W 5 min: 35 x 30 mm) covers tumour + 5 mm and keeps it out: the "other setting"
path of the search. Independent checks: my own count (the label NIfTI read with SimpleITK, its
own direction, LPS -> RAS) of small_bowel voxel centres in each reported zone, and of the voxel
centres of tumour + 5 mm (SimpleITK's signed Maurer distance of the tumour, in mm) inside it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from imagio.cli import main

from test_ablation_hollow_spare import _case, _inside, _ras_of_sitk

ASKED = "100W_10min"
SUPERIOR = (0.0, 0.0, 1.0)
NEAR_MM = 16.0


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    d = tmp_path_factory.mktemp("other_setting")
    d, tv, bv = _case(d, NEAR_MM, towards=SUPERIOR)
    out = d / "plan"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["plan", str(d / "ct.nii.gz"), "--labels", str(d / "lab.nii.gz"), "--label-names",
                   str(d / "names.json"), "--target", "liver_tumor", "--device", "emprint", "--setting", ASKED,
                   "--out", str(out), "--no-png", "--no-scene"])
    assert rc == 0
    return d, tv, bv, json.loads((out / "plan.json").read_text()), buf.getvalue()


def _mine(d, tv, bv, margin_mm=5.0):
    """(bowel voxel centres, tumour + margin voxel centres) of the label file, RAS mm, by SimpleITK."""
    import SimpleITK as sitk

    img = sitk.ReadImage(str(d / "lab.nii.gz"))
    arr = sitk.GetArrayFromImage(img)
    dist = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(sitk.Cast(img == tv, sitk.sitkUInt8),
                                                               insideIsPositive=False, squaredDistance=False,
                                                               useImageSpacing=True))
    return (_ras_of_sitk(img, np.argwhere(arr == bv).astype(float)),
            _ras_of_sitk(img, np.argwhere(dist <= margin_mm).astype(float)))


@pytest.mark.slow
def test_another_setting_keeps_the_bowel_out_and_covers_tumour_and_margin(planned):
    """The "other setting" path: the asked zone takes in bowel (my count), the proposal's zone is
    another setting's, free of bowel and holding every voxel centre of tumour + 5 mm (my count)."""
    from imagio.planning.ablation.devices import get_device

    d, tv, bv, doc, _ = planned
    dev = get_device("emprint")
    asked = dev.setting(ASKED)
    bowel, shell = _mine(d, tv, bv)
    assert len(bowel) and len(shell)
    target = np.asarray(doc["proposals"][0]["target_ras"], float)
    other = 0
    for sp in doc["ablation"]["single_probe"]:
        e = np.asarray(sp["probes"][0]["entry_ras"], float)
        u = (target - e) / np.linalg.norm(target - e)
        # the asked setting's zone centred on the target takes in bowel (my count): the case is what it says
        assert _inside(bowel, target, u, asked.zone_length_mm, asked.zone_diameter_mm).sum() > 10
        if sp["setting"] == ASKED:
            continue
        other += 1
        own = dev.setting(sp["setting"])
        (z,) = sp["zones"]
        assert (z["length_mm"], z["diameter_mm"]) == (own.zone_length_mm, own.zone_diameter_mm)
        assert own.volume_ml < asked.volume_ml
        assert np.count_nonzero(_inside(bowel, z["centre_ras"], z["axis"], z["length_mm"], z["diameter_mm"])) == 0
        assert _inside(shell, z["centre_ras"], z["axis"], z["length_mm"], z["diameter_mm"]).all()
        crit = sp["coverage"]["criteria"]
        assert crit["no_hollow_viscus"]["met"] is True and sp["coverage"]["compliant"] is True
        assert crit["minimal_ablative_margin"]["value"] >= 5.0
        # the tip: the chosen setting's own offset past the zone's centre
        np.testing.assert_allclose(sp["probes"][0]["tip_ras"],
                                   np.asarray(z["centre_ras"]) + own.centre_offset_mm * u, atol=0.05)
    assert other == len(doc["ablation"]["single_probe"]) >= 1


@pytest.mark.slow
def test_plan_json_and_summary_line_carry_the_proposals_own_setting(planned):
    from imagio.planning.ablation.devices import get_device

    _, _, _, doc, out = planned
    abl = doc["ablation"]
    dev = get_device("emprint")
    assert abl["setting"] == abl["setting_asked"] == ASKED   # the asked one at the top, said as such
    for sp in abl["single_probe"]:
        own = dev.setting(sp["setting"])
        (z,) = sp["zones"]
        assert sp["setting_asked"] == ASKED and sp["setting"] != ASKED
        assert sp["setting_label"] == own.label and sp["setting_words"] == own.words
        assert (sp["zone_length_mm"], sp["zone_diameter_mm"]) == (z["length_mm"], z["diameter_mm"])
        assert sp["centre_offset_mm"] == own.centre_offset_mm
        assert sp["setting_choice"].startswith(f"IMAGIO chose emprint {own.id} ({own.words}) instead of the asked "
                                               f"{ASKED} ({dev.setting(ASKED).words})"), sp["setting_choice"]
        assert "small_bowel" in sp["setting_choice"]
    best = abl["single_probe"][0]
    line = [ln for ln in out.splitlines() if ln.startswith("ablation emprint")][-1]
    assert line.startswith(f"ablation emprint {best['setting']} on the best path"), line
    assert best["setting_choice"] in line and "NOT COMPLIANT" not in line, line
    # the warnings name each proposal's own setting
    for w in doc.get("warnings", []):
        assert f"emprint {ASKED}, one probe" not in w, w


@pytest.mark.slow
def test_report_rows_show_the_proposals_own_setting(planned, tmp_path):
    from imagio.planning.ablation.devices import get_device
    from imagio.report import ablation_sections, write_html

    _, _, _, doc, _ = planned
    best = doc["ablation"]["single_probe"][0]
    own = get_device("emprint").setting(best["setting"])
    html = write_html(doc, {}, [], tmp_path / "report.html").read_text()
    assert f"instead of the asked {ASKED}" in html and f"{own.label}, zone {own.zone_length_mm:g} x" in html
    (title, rows), *_ = ablation_sections(doc["ablation"])   # the HTML's and the PDF's rows
    rows = dict(rows)
    assert rows["device and setting"] == f"emprint {own.id} (microwave): {own.words}"
    assert rows["setting chosen by IMAGIO"] == best["setting_choice"]


@pytest.mark.slow
def test_the_scene_of_plan_json_draws_and_names_the_proposals_own_zone(planned):
    """plan.json's MRML scene (slicer-core): the probe line, zone model and coverage table of the
    best proposal are those of its own setting."""
    slicer = pytest.importorskip("slicer")
    from imagio.mrml.ablation import ablation_json_to_scene
    from imagio.planning.ablation.devices import get_device

    _, _, _, doc, _ = planned
    best = doc["ablation"]["single_probe"][0]
    own = get_device("emprint").setting(best["setting"])
    scene = slicer.vtkMRMLScene()
    ids = ablation_json_to_scene(scene, doc["ablation"])
    probe = scene.GetNodeByID(ids["probes"][0])
    assert probe.GetAttribute("IMAGIO.device") == f"emprint {own.id}"
    zone = scene.GetNodeByID(ids["zones"][0])
    assert zone.GetAttribute("IMAGIO.zone_length_mm") == f"{own.zone_length_mm:.1f}"
    assert zone.GetAttribute("IMAGIO.zone_diameter_mm") == f"{own.zone_diameter_mm:.1f}"
    # the drawn surface's extent along the probe's axis: the own setting's length (not the asked 48 mm)
    from vtk.util import numpy_support as ns

    pts = ns.vtk_to_numpy(zone.GetPolyData().GetPoints().GetData())
    axis = np.asarray(best["zones"][0]["axis"], float)
    ext = pts @ (axis / np.linalg.norm(axis))
    assert ext.max() - ext.min() == pytest.approx(own.zone_length_mm, abs=0.5)
    t = scene.GetNodeByID(ids["tables"][0]).GetTable()
    rows = {t.GetColumn(0).GetValue(i): t.GetColumn(1).GetValue(i) for i in range(t.GetNumberOfRows())}
    assert rows["device"] == f"emprint {own.id}"
    assert rows["zone length x diameter mm"] == f"{own.zone_length_mm:.1f} x {own.zone_diameter_mm:.1f}"
    assert rows["setting chosen by IMAGIO"] == best["setting_choice"]


@pytest.fixture(scope="module")
def python_plan(planned):
    """The case's CT, labels and trajectory plan, in Python (as the module and the web hold them)."""
    from imagio import io
    from imagio.planning import PlanningProblem, plan

    d = planned[0]
    ct = io.read_image(d / "ct.nii.gz")
    labels = io.read_labels(d / "lab.nii.gz", io.read_label_names(d / "names.json"))
    return ct, labels, plan(PlanningProblem.build(ct, labels, "liver_tumor"))


@pytest.mark.slow
def test_the_demos_ablation_json_names_its_own_setting(planned, python_plan, tmp_path):
    """`imagio demo`'s ablation_<tumour>.json (demo._write) of a probe placed by the search: its own
    setting's words and zone, why it is not the asked one, and its report rows."""
    from imagio.planning.ablation import AblationContext, get_device
    from imagio.planning.ablation.demo import _write
    from imagio.planning.ablation.multiprobe import plan_for_probe
    from imagio.planning.ablation.spare import spare_hollow_viscus
    from imagio.report import ablation_sections

    _, _, p = python_plan
    dev = get_device("emprint")
    pp_plan = plan_for_probe(p, dev)
    ctx = AblationContext(pp_plan.problem.labels, "liver_tumor")
    pp, note = spare_hollow_viscus(pp_plan, ctx, dev, dev.setting(ASKED), pp_plan.proposals[0].entry_ras)
    assert note["found"] and pp.setting != ASKED
    own = dev.setting(pp.setting)
    _write(pp, ctx, tmp_path, None, pp_plan.problem.needle, "liver", single=True)
    j = json.loads((tmp_path / "ablation_liver_tumor.json").read_text())
    assert j["setting"] == own.id and j["setting_asked"] == ASKED
    assert (j["zone_length_mm"], j["zone_diameter_mm"]) == (own.zone_length_mm, own.zone_diameter_mm)
    assert j["setting_choice"].startswith(f"IMAGIO chose emprint {own.id} ({own.words}) instead of the asked {ASKED}")
    ((_, rows),) = ablation_sections(j)
    assert dict(rows)["setting chosen by IMAGIO"] == j["setting_choice"]


@pytest.mark.slow
def test_the_module_and_the_web_place_and_follow_the_proposals_own_zone(planned, python_plan):
    """The Slicer module's and IMAGIO Web's zone on the planned path (`ablation_from_nodes` with
    the trajectory plan, slicer-core nodes) is the CLI's proposal: its own setting and zone, said
    with why; the live update keeps that setting; the page's line names it."""
    slicer = pytest.importorskip("slicer")
    from imagio import mrml
    from imagio.mrml.ablation import ablation_from_nodes, observe_ablation, placement_note, zone_model_nodes
    from imagio.mrml.planning import path_node

    d, tv, bv, doc, _ = planned
    ct, labels, p = python_plan
    best = p.proposals[0]
    cli = doc["ablation"]["single_probe"][0]
    np.testing.assert_allclose(best.entry_ras, cli["probes"][0]["entry_ras"], atol=0.05)
    scene = slicer.vtkMRMLScene()
    ctn = mrml.volume_to_node(ct, scene, "CT")
    seg, _ = mrml.labels_to_segmentation(labels, scene, reference_node=ctn)
    e, t = np.asarray(best.entry_ras, float), np.asarray(best.target_ras, float)
    line = path_node(scene, e, t)
    res, ids, ctx = ablation_from_nodes(scene, ctn, seg, line, "liver_tumor", "emprint", ASKED, plan=p)
    assert res.setting == cli["setting"] != ASKED
    from imagio.mrml.ablation import chosen_setting
    from imagio.web.content import ablation_text

    own, shift = chosen_setting(res)
    assert own.id == res.setting and shift == cli["hollow_viscus"]["shift_mm"]
    assert (2 * res.zones[0].a_mm, 2 * res.zones[0].b_mm) == (own.zone_length_mm, own.zone_diameter_mm)
    np.testing.assert_allclose(res.zones[0].centre, cli["zones"][0]["centre_ras"], atol=0.05)
    assert res.coverage.criteria["no_hollow_viscus"]["met"] is True
    note = placement_note(res)
    assert note.startswith(f"IMAGIO chose emprint {own.id} ({own.words}) instead of the asked {ASKED}"), note
    assert f"advance the probe tip {own.centre_offset_mm:g} mm past" in note
    t_node = scene.GetNodeByID(ids["table"]).GetTable()
    rows = {t_node.GetColumn(0).GetValue(i): t_node.GetColumn(1).GetValue(i) for i in range(t_node.GetNumberOfRows())}
    assert rows["device"] == f"emprint {own.id}" and "setting chosen by IMAGIO" in rows
    # the page's line: the placed probe's own setting first
    text = ablation_text("emprint", own.id, res.coverage, note)
    assert text.startswith(f"emprint {own.id}: tumour covered") and f"instead of the asked {ASKED}" in text
    # live: dragging the path's end keeps drawing the own setting's zone, centred there (+ shift)
    (zn,) = zone_model_nodes(scene, res.zones)
    seen = []
    observe_ablation(line, ctx, own, "emprint", "microwave", zn, None, seen.append, shift_mm=shift)
    u = (t - e) / np.linalg.norm(t - e)
    line.SetNthControlPointPosition(1, *(t - 2.0 * u))
    assert seen
    from vtk.util import numpy_support as ns

    pts = ns.vtk_to_numpy(zn.GetPolyData().GetPoints().GetData())
    ext = pts @ u
    assert ext.max() - ext.min() == pytest.approx(own.zone_length_mm, abs=0.5)
    np.testing.assert_allclose(pts.mean(axis=0), t - 2.0 * u + shift * u, atol=0.5)
