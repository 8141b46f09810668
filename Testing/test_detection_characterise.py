"""Characterisation of detected candidates (segmentation, size, type, location, stratification)
on a synthetic chest with known nodules on an oblique anisotropic grid, and the detection
outputs (nodule CSV in LPS, Slicer markups and segmentation) checked against the JSON."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from imagio.detection import Candidate
from imagio.detection.characterise import characterise_candidates
from imagio.volume import Volume, make_ijk_to_ras


def _world_grid(vol):
    kji = np.indices(vol.shape).reshape(3, -1).T
    return vol.kji_to_world(kji).reshape(*vol.shape, 3)


@pytest.fixture(scope="module")
def chest():
    """Parenchyma (-850 HU, noise 15 HU) in a soft-tissue wall, grid 0.8 x 0.8 x 1.25 mm,
    oblique: a 10 mm solid ball, a 12 mm ground-glass ball (-600 HU), a 7 mm calcified ball
    (600 HU), a lentiform 9 x 9 x 3.5 mm solid nodule on the pleura (perifissural), a 8 mm solid
    ball touching a 3 mm vessel."""
    from conftest import rotation

    d = rotation((1, 1, 2), 15.0)
    aff = make_ijk_to_ras((0.8, 0.8, 1.25), (0, 0, 0), d)
    vol = Volume(np.zeros((64, 120, 120), np.float32), aff)
    w = _world_grid(vol)
    cen = vol.kji_to_world(np.array([[32, 60, 60]]))[0]
    u, v, z = d[:, 0], d[:, 1], d[:, 2]
    rel = w - cen
    lu, lv, lz = rel @ u, rel @ v, rel @ z
    lung = (np.abs(lu) < 40) & (np.abs(lv) < 40) & (np.abs(lz) < 33)
    rng = np.random.default_rng(1)
    body = (np.abs(lu) < 46) & (np.abs(lv) < 46)
    a = np.where(lung, -850.0, np.where(body, 30.0, -1000.0)) + rng.normal(0, 15, vol.shape)
    truth = {}

    def ball(name, c, r, hu):
        a[np.linalg.norm(w - c, axis=-1) <= r] = hu
        truth[name] = (c, 2 * r)

    ball("solid", cen + 15 * u - 15 * v, 5.0, 20.0)
    ball("ground_glass", cen - 15 * u + 15 * v, 6.0, -600.0)
    ball("calcified", cen - 15 * u - 15 * v, 3.5, 600.0)
    # lentiform nodule flat against the pleural plane lu = 40 (its flat axis along u)
    pc = cen + 38.5 * u + 15 * v
    r_ = w - pc
    m = ((r_ @ u) / 2.5) ** 2 + ((r_ @ v) / 4.5) ** 2 + ((r_ @ z) / 4.5) ** 2 <= 1
    a[m] = 20.0
    truth["perifissural"] = (pc, 9.0)
    # 8 mm ball touching a 3 mm vessel along z
    vc = cen + 15 * u + 18 * v
    ball("juxta_vascular", vc, 4.0, 20.0)
    rv = w - (vc + 5.2 * u)
    along = rv @ z
    radial = np.linalg.norm(rv - along[..., None] * z, axis=-1)
    a[(radial <= 1.5) & (np.abs(along) < 25) & lung] = 40.0
    ct = vol.with_array(a.astype(np.int16))
    return ct, lung, truth


@pytest.fixture(scope="module")
def characterised(chest):
    ct, lung, truth = chest
    cands = [Candidate(center_ras=np.asarray(c, float), diameter_mm=dd, volume_ml=0.0, type="unknown",
                       probability=0.9) for c, dd in truth.values()]
    nods, masks, scan = characterise_candidates(ct, cands, lung, patient={"age": 64, "sex": "male"})
    by = {}
    for name, (c, _) in truth.items():
        by[name] = min(range(len(nods)), key=lambda i: np.linalg.norm(np.asarray(nods[i]["candidate"]["center_ras"]) - c))
    return ct, nods, masks, scan, by


def test_sizes_and_types(chest, characterised):
    _, _, truth = chest
    ct, nods, masks, scan, by = characterised
    vox = float(ct.spacing.max())
    for name in ("solid", "ground_glass", "juxta_vascular"):
        n = nods[by[name]]
        assert n["segmented"], (name, n["warnings"])
        assert n["mean_diameter_mm"] == pytest.approx(truth[name][1], abs=vox), (name, n)
        assert n["long_axis_mm"] == pytest.approx(truth[name][1], abs=vox), (name, n)
        assert np.linalg.norm(np.asarray(n["center_ras"]) - truth[name][0]) < 1.0
    assert nods[by["solid"]]["type"] == "solid"
    assert nods[by["ground_glass"]]["type"] == "ground_glass"
    assert nods[by["calcified"]]["type"] == "calcified"
    assert nods[by["perifissural"]]["type"] == "perifissural"
    assert nods[by["perifissural"]]["juxta_pleural"]
    assert nods[by["juxta_vascular"]]["juxta_vascular"]
    assert not nods[by["solid"]]["juxta_vascular"] and not nods[by["solid"]]["juxta_pleural"]
    # solid nodule's volume: a 10 mm ball = 0.5236 mL
    assert nods[by["solid"]]["volume_ml"] == pytest.approx(np.pi / 6 * 1.0, rel=0.15)
    # distance to the pleura from the solid ball's surface (its centre is 25 mm inside: 20 mm)
    assert nods[by["solid"]]["distance_to_pleura_mm"] == pytest.approx(20.0, abs=1.5)
    assert scan["emphysema"]["emphysema"] is False  # -850 HU parenchyma: no LAA-950


def test_stratification_per_nodule(characterised):
    from imagio.stratification import lungrads

    ct, nods, masks, scan, by = characterised
    s = nods[by["calcified"]]["stratification"]
    assert s["lung_rads"]["category"] == "1" and "calcified" in s["brock"]["refused"]
    assert nods[by["perifissural"]]["stratification"]["lung_rads"]["category"] == "2"
    n = nods[by["solid"]]
    assert n["stratification"]["lung_rads"]["category"] == lungrads.category("solid", n["mean_diameter_mm"])["category"]
    assert "smoking" in n["stratification"]["mayo"]["refused"]  # not given: refused, not guessed
    lo, hi = n["stratification"]["brock"]["probability_range"]
    assert 0 < lo < hi < 1
    keys = [d["risk_key"] for d in nods]
    assert keys == sorted(keys, reverse=True)


def test_one_nodule_found_twice_is_listed_once_and_the_risk_does_not_fall_with_more_candidates(chest):
    """Trial 10: two detector peaks in one nodule were characterised into the same outline and
    listed twice (#1 and #5, 5.84 mL each), and Brock's nodule count was every characterised
    candidate, so the same nodule's risk halved with --characterise 15 against 1. Now a
    candidate whose outline is mostly another's is dropped (its id kept in ``also_found_as``),
    and the count is a range from 1: the upper bound does not depend on how many candidates
    were characterised."""
    from imagio.stratification import nodule_risk

    ct, lung, truth = chest
    c, dd = truth["solid"]
    off = np.array([1.2, -0.8, 0.6])                     # a second peak inside the same ball
    twice = [Candidate(center_ras=np.asarray(c, float) + o, diameter_mm=dd, volume_ml=0.0, type="unknown",
                       probability=p) for o, p in ((0 * off, 0.9), (off, 0.8))]
    patient = {"age": 64, "sex": "male"}
    nods, masks, _ = characterise_candidates(ct, twice, lung, patient=patient)
    assert len(nods) == len(masks) == 1 and nods[0]["also_found_as"] == [2], [n.get("id") for n in nods]
    from imagio.detection.report import nodule_rows

    assert nodule_rows(nods)[0][0] == "1 (also #2)"     # the report's table says so (trial 11)
    one = nods[0]["stratification"]["brock"]["probability_range"]
    others = [Candidate(center_ras=np.asarray(cc, float), diameter_mm=d2, volume_ml=0.0, type="unknown",
                        probability=0.5) for k, (cc, d2) in truth.items() if k != "solid"]
    more, _, _ = characterise_candidates(ct, twice[:1] + others, lung, patient=patient)
    solid = [n for n in more if n["id"] == 1][0]["stratification"]["brock"]
    assert solid["probability_range"][1] == pytest.approx(one[1], rel=1e-9)
    assert solid["nodule_count_range"][0] == 1 and solid["nodule_count_range"][1] >= 3
    assert solid["probability_range"][0] < one[0]          # more nodules counted: a lower floor
    n = [x for x in more if x["id"] == 1][0]
    # the upper bound is the model's own value at one nodule, with spiculation
    # (family history not given: unknown, so the top is with it)
    top = max(nodule_risk.brock(64, False, n["axial_long_axis_mm"], "solid", f, e, u, 1, True).probability
              for f in (False, True) for e in (False,) for u in (False, True))    # no emphysema in this chest
    assert solid["probability_range"][1] == pytest.approx(top, rel=1e-9), n


def test_risk_factors_not_given_are_ranges_and_emphysema_comes_from_the_lungs(chest):
    """New-user trial 30 (M4): detect's Brock and Mayo read a family history and an extrathoracic
    cancer that were not given as absent (the lowest risk), without a word, and detect had no
    option to state them. Now each is unknown unless given (--FLAG / --no-FLAG, as `imagio risk`):
    the ranges span both values (the models written out here), the scan says so once, and a
    given "no" pins the value. Emphysema is the lung segmentation's LAA-950 reading (none in this
    chest: -850 HU parenchyma), which --emphysema / --no-emphysema replaces."""
    from imagio.cli import build_parser
    from imagio.detection.commands import patient_from_args
    from imagio.stratification import nodule_risk

    ct, lung, truth = chest
    c, dd = truth["solid"]
    one = [Candidate(center_ras=np.asarray(c, float), diameter_mm=dd, volume_ml=0.0, type="unknown", probability=0.9)]

    def run(*flags):
        args = build_parser().parse_args(["detect", "ct.nii.gz", "--out", "o", "--age", "64", "--sex", "male",
                                          "--smoker", *flags])
        nods, _, scan = characterise_candidates(ct, one, lung, patient=patient_from_args(args))
        return nods[0], scan

    n, scan = run()
    b, m = n["stratification"]["brock"], n["stratification"]["mayo"]
    size = n["axial_long_axis_mm"]   # Brock's and Mayo's size: the longest axial diameter
    assert scan["emphysema"]["emphysema"] is False
    brock = [nodule_risk.brock(64, False, size, "solid", f, False, u, 1, s).probability
             for f in (False, True) for u in (False, True) for s in (False, True)]
    mayo = [nodule_risk.mayo(64, size, True, x, s, u).probability
            for x in (False, True) for u in (False, True) for s in (False, True)]
    assert b["probability_range"] == pytest.approx([min(brock), max(brock)], rel=1e-9), b
    assert m["probability_range"] == pytest.approx([min(mayo), max(mayo)], rel=1e-9), m
    assert "family_history" in b["unknown"] and "extrathoracic_cancer" in m["unknown"]
    said = [w for w in scan["warnings"] if "not given" in w and "--no-family-history" in w]
    assert said and "--no-extrathoracic-cancer" in said[0], scan["warnings"]
    n, scan = run("--no-family-history", "--no-extrathoracic-cancer")
    b, m = n["stratification"]["brock"], n["stratification"]["mayo"]
    assert b["probability_range"][1] == pytest.approx(max(nodule_risk.brock(64, False, size, "solid", False, False, u,
                                                                            1, True).probability for u in (False, True)))
    assert m["probability_range"][1] == pytest.approx(nodule_risk.mayo(64, size, True, False, True, True).probability)
    assert not any("--no-family-history" in w for w in scan["warnings"]), scan["warnings"]
    n, scan = run("--no-family-history", "--extrathoracic-cancer", "--emphysema")
    b, m = n["stratification"]["brock"], n["stratification"]["mayo"]
    assert scan["emphysema"]["given"] is True
    assert b["probability_range"][0] == pytest.approx(
        min(nodule_risk.brock(64, False, size, "solid", False, True, u, 1, False).probability for u in (False, True)))
    assert m["probability_range"][0] == pytest.approx(nodule_risk.mayo(64, size, True, True, False, False).probability)


def test_outputs_agree_with_json(tmp_path, chest, characterised):
    from imagio import io
    from imagio.detection.outputs import write_nodule_csv, write_slicer

    ct, nods, masks, scan, by = characterised
    write_nodule_csv(tmp_path / "n.csv", "s1", nods)
    with open(tmp_path / "n.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(nods)
    assert all(r["lobe"].startswith("not given: no lobe label map") for r in rows)  # says why
    for r, n in zip(rows, nods):  # LUNA16 columns are LPS: x and y flipped from RAS
        ras = np.asarray(n["center_ras"], float)
        assert [float(r[k]) for k in ("coordX", "coordY", "coordZ")] == pytest.approx(
            [-ras[0], -ras[1], ras[2]], abs=0.01)
    files = write_slicer(tmp_path / "slicer", ct, nods, masks)
    mk = json.loads(open(files["markups"]).read())["markups"][0]
    pts = np.array([p["position"] for p in mk["controlPoints"]])
    if mk["coordinateSystem"] == "LPS":
        pts[:, :2] *= -1
    assert pts == pytest.approx(np.array([n["center_ras"] for n in nods]), abs=0.01)
    seg = io.read_labels(files["segmentation"])
    seg = seg.resample_like(ct, order=0) if not seg.same_grid(ct) else seg
    for n, m in zip(nods, masks):
        if m.any():
            got = seg.array == next(v for v, nm in seg.labels.items() if nm == f"lung_nodule_{n['id']}")
            assert (got & m).sum() >= 0.95 * m.sum()


def test_screening_report(tmp_path, chest, characterised):
    import copy

    from imagio.detection.report import build_screening_report, report_threshold

    ct, nods, masks, scan, by = characterised
    _, lung, _ = chest
    # the solid nodule (Lung-RADS 4A at 10 mm) and the calcified one get a score below the
    # report's threshold: listed apart, the 4A one named for review, no plan commands for it
    nods = copy.deepcopy(nods)
    low_ids = {nods[by["solid"]]["id"], nods[by["calcified"]]["id"]}
    for n in nods:
        if n["id"] in low_ids:
            n["candidate"]["probability"] = 0.5 * report_threshold()
    doc = {"seriesuid": "s1", "detector": "blobs", "n_candidates": len(nods), "nodules": nods,
           "scan": scan, "patient": {"age": 64, "sex": "male"}, "warnings": ["w-scan"]}
    h, p = build_screening_report(doc, ct, lung, masks, tmp_path / "screening.pdf", "ct.nii.gz")
    text = h.read_text()
    # rows in risk order, the reported ones first, then the low-probability ones; each nodule's
    # pictures exist; actionable reported nodules get their plan commands
    main = [n for n in nods if n["id"] not in low_ids]
    low = [n for n in nods if n["id"] in low_ids]
    pos = [text.index(f"<td>{n['id']}</td>") for n in main + low]
    assert pos == sorted(pos)
    assert text.index("Low-probability candidates") < min(pos[len(main):])
    assert (tmp_path / "screening_lungs3d.png").exists()
    assert all((tmp_path / f"screening_nodule{n['id']}.png").exists() for n in nods)
    solid = nods[by["solid"]]
    assert solid["stratification"]["lung_rads"]["category"] == "4A"
    assert f"#{solid['id']} 4A" in text  # named in the follow-up for review
    for n in nods:
        cat = n["stratification"]["lung_rads"].get("category")
        target = "--target=" + ",".join(f"{v:.1f}" for v in n["center_ras"])
        assert (target in text) == (cat in ("4A", "4B", "4X") and n["id"] not in low_ids), (cat, target)
    # no lobe label map: the location says so, and so does a scan warning
    assert "(no lobe labels)" in text and any("lobe not given" in w for w in scan["warnings"])
    pypdf = pytest.importorskip("pypdf")
    pdf_text = "".join(pg.extract_text() for pg in pypdf.PdfReader(str(p)).pages)
    assert "Lung-RADS" in pdf_text and "screening report" in pdf_text
    assert "Low-probability candidates" in pdf_text


def test_screening_report_names_a_low_probability_candidate_without_category(tmp_path, chest, characterised):
    """Issue 17 trial M1: a low-probability candidate whose outline measures no nodule (here the
    10 mm solid ball, its outline declared not assessable as a clipped concavity's would be) was
    listed only in the low-probability table, and a scan whose reported nodules are Lung-RADS 1-2
    read "continue annual screening". The HTML and PDF report's follow-up say the category is not
    decided and name the candidate; candidates.json's scan summary (`scan_lung_rads`) says so too."""
    import copy

    from imagio.detection.pipeline import scan_lung_rads
    from imagio.detection.report import build_screening_report, report_threshold
    from imagio.stratification.screening import stratify

    ct, nods, masks, scan, by = characterised
    _, lung, _ = chest
    nods = copy.deepcopy(nods)
    keep = {nods[by[k]]["id"] for k in ("calcified", "perifissural")}   # Lung-RADS 1 and 2, reported
    for n in nods:
        if n["id"] not in keep:
            n["candidate"]["probability"] = 0.5 * report_threshold()
    doubt = nods[by["solid"]]
    doubt["not_assessable"] = "the outline grew beyond the detected concavity of the lung outline and was clipped to it"
    doubt["stratification"] = stratify(doubt)
    assert "category" not in doubt["stratification"]["lung_rads"]
    doc = {"seriesuid": "s1", "detector": "blobs", "n_candidates": len(nods), "nodules": nods,
           "scan": scan, "patient": {}, "warnings": []}
    h, p = build_screening_report(doc, ct, lung, masks, tmp_path / "screening.pdf", "ct.nii.gz")
    text = h.read_text()
    assert "Lung-RADS not decided" in text and f"#{doubt['id']} not assessable" in text
    assert "Continue annual" not in text and "12 months" not in text
    s = scan_lung_rads(nods)
    # the category the report decides; a low-probability candidate measuring 3+ above it is named after
    # it as a condition ("; 4A if #k (score ...) is a nodule": trial 60 M3, detect24)
    # clauses split at "; " outside parentheses (a candidate's own notes: "#5 (score 0.17; at the 3/4A size cut)")
    head, *cond, last = re.split(r"; (?![^()]*\))", s["highest_lung_rads"])
    # the candidate that leaves it not decided is named in the headline too (detect25), after the
    # categories reached (trial 67)
    assert head == ">=2" and cond and all(c.endswith("is a nodule") for c in cond), s["highest_lung_rads"]
    assert last == f"not assessable: #{doubt['id']} (score {doubt['candidate']['probability']:.2f})", last
    assert f"#{doubt['id']} not assessable" in s["review_low_probability"]
    assert "not assessable" in s["uncategorised"]
    pypdf = pytest.importorskip("pypdf")
    pdf_text = " ".join(pg.extract_text() for pg in pypdf.PdfReader(str(p)).pages)
    assert "Lung-RADS not decided" in pdf_text and f"#{doubt['id']} not assessable" in pdf_text


@pytest.mark.parametrize("direction", [np.eye(3), np.diag([-1.0, -1.0, 1.0])], ids=["ras", "lps_stored"])
def test_side_is_the_patients_side_whatever_the_storage(direction):
    """RAS +x is the patient's right (DICOM LPS: +x is the left): a lesion in the lung at
    RAS x = +60 mm is right, one at x = -60 mm is left, on an RAS-stored and an LPS-stored grid,
    with the midline found from the two lungs."""
    from imagio.detection.characterise import location
    from imagio.segmentation.lungs import midline_x

    vol = Volume(np.zeros((40, 60, 80), np.int16), make_ijk_to_ras((2.5, 2.5, 2.5), (0, 0, 0), direction))
    w = _world_grid(vol)
    ctr = w.reshape(-1, 3).mean(0)
    rel = w - ctr
    lungs = (np.abs(np.abs(rel[..., 0]) - 50) < 30) & (np.abs(rel[..., 1]) < 50) & (np.abs(rel[..., 2]) < 40)
    # measured noise (an exact value over the whole border is a reformat's padding: fov2's
    # `_cut_at_side_by_padding` would read this body as cut at both sides)
    noise = np.random.default_rng(0).normal(0, 10, vol.shape)
    ct = vol.with_array((np.where(lungs, -850, 30) + noise).astype(np.int16))
    midline, _ = midline_x(ct, body=lungs)
    assert midline == pytest.approx(ctr[0], abs=5.0)
    for x, side in ((60.0, "right"), (-60.0, "left")):
        mask = np.linalg.norm(rel - np.array([x, 0.0, 0.0]), axis=-1) <= 6.0
        assert location(ct, mask, lungs, None, midline)["side"] == side


def test_lungs_picture_is_an_anterior_view():
    """The screening report's 3-D picture claims an anterior view: the patient's right (RAS +x)
    must come out on the left of the picture, and superior above inferior (checked with
    matplotlib's own projection of the axes the report sets up)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d import proj3d

    from imagio.detection.report import anterior_view

    fig = plt.figure()
    ax = fig.add_subplot(projection="3d")
    ax.set_xlim(-100, 100), ax.set_ylim(-100, 100), ax.set_zlim(-100, 100)
    anterior_view(ax)
    fig.canvas.draw()
    M = ax.get_proj()
    (xr, _, _), (xl, _, _) = (proj3d.proj_transform(x, 0, 0, M)[:3] for x in (80.0, -80.0))
    (_, ys, _), (_, yi, _) = (proj3d.proj_transform(0, 0, z, M)[:3] for z in (80.0, -80.0))
    plt.close(fig)
    assert xr < xl, "patient's right must be on the picture's left in an anterior view"
    assert ys > yi


@pytest.mark.parametrize("slice_mm,warned", [(1.0, False), (3.0, True)])
def test_subsolid_type_on_thick_sections_is_warned(slice_mm, warned):
    # a 12 mm ground-glass ball (-600 HU) in parenchyma: typed ground-glass either way; on
    # sections thicker than Fleischner's 1.5 mm the type carries the partial-volume doubt
    from imagio.detection.characterise import nodule_type
    from imagio.segmentation.lesion import measure
    from imagio.volume import make_ijk_to_ras

    shape = (int(40 / slice_mm), 40, 40)
    vol = Volume(np.zeros(shape, np.float32), make_ijk_to_ras((1.0, 1.0, slice_mm)))
    w = vol.kji_to_world(np.indices(shape).reshape(3, -1).T).reshape(*shape, 3)
    mask = np.linalg.norm(w - [20.0, 20.0, 20.0], axis=-1) <= 6.0
    vol.array[:] = np.where(mask, -600.0, -850.0)
    meas = measure(mask, vol)
    typ, solid_mm, warn, alt = nodule_type(vol, mask, meas, {"_fissure_or_pleura_mm": 20.0})
    assert typ == "ground_glass" and solid_mm == 0.0
    assert any("sections" in x for x in warn) == warned
    # trial 65 M3: the warning's "it may be solid" names the type the category is also given under
    assert alt == ({"type": "solid", "solid_component_mm": round(meas.mean_diameter_mm, 2)} if warned else None)


def test_a_lesion_outside_the_lung_gets_no_lung_rads():
    """Lung-RADS categorises lung nodules: a candidate segmented in soft tissue away from the lung
    (the trial's 34-36 mm "4B masses" on lung1's bottom slice: diaphragm/liver dome) is refused
    with the reason; one inside the lung, and one on the pleura outside it (juxta-pleural), keep
    their category. Contact is judged from the masks (26-neighbours), not the code under test."""
    from scipy import ndimage

    from imagio.detection.characterise import location
    from imagio.stratification.screening import lung_rads

    vol = Volume(np.zeros((40, 60, 80), np.int16), make_ijk_to_ras((2.5, 2.5, 2.5), (0, 0, 0)))
    rel = _world_grid(vol) - _world_grid(vol).reshape(-1, 3).mean(0)
    lungs = (np.abs(rel[..., 0] - 40) < 30) & (np.abs(rel[..., 1]) < 40) & (np.abs(rel[..., 2]) < 30)
    ct = vol.with_array(np.where(lungs, -850, 30).astype(np.int16))
    for centre, radius in (((40.0, 0, 0), 6.0), ((40.0, 0, 38.0), 6.0), ((-60.0, 0, 0), 15.0)):
        mask = np.linalg.norm(rel - np.array(centre), axis=-1) <= radius
        touches = bool((ndimage.binary_dilation(mask, np.ones((3, 3, 3), bool)) & lungs).any())
        loc = location(ct, mask, lungs, None, 0.0)
        assert loc["touches_lung"] == touches
        r = lung_rads({"type": "solid", "mean_diameter_mm": 2 * radius, "solid_component_mm": 0, **loc})
        assert ("category" in r) == touches and ("refused" in r) == (not touches), (centre, r)
    assert not touches   # the last one lies in soft tissue, clear of the lung


def test_a_nodule_below_the_measurable_size_gets_no_category():
    """Trial 3's D2: a 0.3 mm "nodule" got Lung-RADS 2. Below the 3 mm micronodule limit
    (Bankier 2017) or two in-plane voxels, whichever is larger, every size-driven model is
    refused with the reason; at the limit the category is given."""
    from imagio.stratification.screening import smallest_measurable_mm, stratify

    patient = {"age": 64, "sex": "male", "smoker": True}
    s = stratify({"type": "solid", "long_axis_mm": 0.29, "mean_diameter_mm": 0.3}, patient)
    assert "below the smallest measurable size" in s["lung_rads"]["refused"]
    assert "refused" in s["brock"] and "refused" in s["mayo"]
    assert "category" not in s["lung_rads"]
    assert smallest_measurable_mm(0.7) == 3.0 and smallest_measurable_mm(2.5) == 5.0
    assert "refused" in stratify({"type": "solid", "long_axis_mm": 3, "mean_diameter_mm": 2.9})["lung_rads"]
    assert stratify({"type": "solid", "long_axis_mm": 3, "mean_diameter_mm": 3.0})["lung_rads"]["category"] == "2"
    # on a 2.5 mm in-plane grid 4 mm spans less than two voxels: refused; 5 mm is measured
    coarse = {"type": "ground_glass", "long_axis_mm": 5, "smallest_measurable_mm": 5.0}
    assert "refused" in stratify({**coarse, "mean_diameter_mm": 4.0})["lung_rads"]
    assert stratify({**coarse, "mean_diameter_mm": 5.0})["lung_rads"]["category"] == "2"


def test_characterisation_sets_the_measurable_size_from_the_voxels():
    """On a 2 x 2 x 1 mm grid (axial sections 2 mm: two voxels = 4 mm, above the 3 mm limit) the
    characterisation records a 4 mm limit: a 10 mm ball is categorised, and the same nodule
    measured at 3.5 mm on that scan would be refused (3.5 mm passes on a fine grid)."""
    from imagio.stratification.screening import stratify

    vol = Volume(np.zeros((60, 40, 40), np.float32), make_ijk_to_ras((2.0, 2.0, 1.0), (0, 0, 0)))
    w = _world_grid(vol)
    rel = w - np.array([40.0, 40.0, 30.0])
    lung = (np.abs(rel[..., 0]) < 34) & (np.abs(rel[..., 1]) < 34) & (np.abs(rel[..., 2]) < 26)
    body = (np.abs(rel[..., 0]) < 38) & (np.abs(rel[..., 1]) < 38)
    rng = np.random.default_rng(3)
    a = np.where(lung, -850.0, np.where(body, 30.0, -1000.0)) + rng.normal(0, 15, vol.shape)
    ball = np.array([55.0, 40.0, 30.0])
    a[np.linalg.norm(w - ball, axis=-1) <= 5.0] = 20.0
    ct = vol.with_array(a.astype(np.int16))
    cand = Candidate(center_ras=ball, diameter_mm=10.0, volume_ml=0.0, type="unknown", probability=0.9)
    # a candidate on plain parenchyma (x = 20 mm, left of the lungs' centre at 40 mm) is not
    # segmented: it still gets its side (trial 3: the nodule table had a gap there)
    empty = Candidate(center_ras=np.array([20.0, 40.0, 30.0]), diameter_mm=6.0, volume_ml=0.0,
                      type="unknown", probability=0.5)
    nods, _, _ = characterise_candidates(ct, [cand, empty], lung)
    big, none = sorted(nods, key=lambda n: -n["candidate"]["center_ras"][0])
    assert not none["segmented"] and none["side"] == "left" and big["side"] == "right"
    assert "refused" in none["stratification"]["lung_rads"]
    assert big["smallest_measurable_mm"] == 4.0
    assert big["mean_diameter_mm"] >= 8.0
    assert big["stratification"]["lung_rads"]["category"] == "4A"  # solid 8-15 mm
    small = {**big, "mean_diameter_mm": 3.5, "long_axis_mm": 3.5}
    assert "below the smallest measurable" in stratify(small)["lung_rads"]["refused"]
    # the report's table says why a nodule has no category
    from imagio.detection.report import nodule_rows

    cells = nodule_rows([{**small, "stratification": stratify(small)}, none])
    assert "below the smallest measurable size, 4.0 mm" in cells[0][5]
    assert cells[1][5] == "not given: no measured mean diameter"
    small.pop("smallest_measurable_mm")
    assert stratify(small)["lung_rads"]["category"] == "2"


def _mass_chest(edge: bool = False):
    """Lung parenchyma (-850 HU, noise 15 HU) in a soft-tissue wall on a 1 x 1 x 2.5 mm grid
    (the trial's lung2 spacing class), oblique, with a solid 50 x 44 x 44 mm ellipsoid (20 HU)
    against the chest wall; ``edge``: a 20 mm ball cut by the image's first slice instead.
    Returns (ct, lungs, lesion mask, centre RAS)."""
    from conftest import rotation

    d = rotation((1, 2, 2), 12.0)
    vol = Volume(np.zeros((40, 110, 110), np.float32), make_ijk_to_ras((1.0, 1.0, 2.5), (0, 0, 0), d))
    w = _world_grid(vol)
    u, v, z = d[:, 0], d[:, 1], d[:, 2]
    cen = vol.kji_to_world(np.array([[20, 55, 55]]))[0]
    rel = w - cen
    lu, lv, lz = rel @ u, rel @ v, rel @ z
    lungs = (np.abs(lu) < 45) & (np.abs(lv) < 45) & (lz > -60) & (lz < 45)
    body = (np.abs(lu) < 52) & (np.abs(lv) < 52)
    a = np.where(lungs, -850.0, np.where(body, 30.0, -1000.0))
    if edge:
        c = vol.kji_to_world(np.array([[0, 55, 70]]))[0]
        les = np.linalg.norm(w - c, axis=-1) <= 10.0
    else:
        c = cen + 20.0 * u   # its surface at lu = 45: on the chest wall
        r = w - c
        les = ((r @ u) / 25.0) ** 2 + ((r @ v) / 22.0) ** 2 + ((r @ z) / 22.0) ** 2 <= 1
    a[les] = 20.0
    a += np.random.default_rng(3).normal(0, 15, vol.shape)
    return vol.with_array(a.astype(np.int16)), lungs, les, c


def test_a_mass_larger_than_the_detected_blob_keeps_its_full_size():
    """Trial 4's H1: lung2's 48 mL mass, found by a ~10 mm blob of the concavity channel, was cut
    to the blob's sphere (0.29 mL, 7.8 mm, Lung-RADS 2). A compact 50 x 44 x 44 mm mass on the
    chest wall, detected (the detector's rank 1 lies in it) and also given as an off-centre 10 mm
    blob (as the concavity channel found lung2's), keeps its one-click outline: its volume
    matches the phantom's voxel count, it is a mass (> 30 mm), Lung-RADS 4B, Brock refused.
    Given together, the two give one outline and are listed once."""
    ct, lungs, les, c = _mass_chest()
    true_ml = les.sum() * float(np.prod(ct.spacing)) / 1000.0
    assert 45.0 < true_ml < 56.0   # 4/3 pi 25 22 22 mm3 = 50.7 mL, independently of the code
    from imagio.detection import detect

    # the detector's rank-1 candidate lies in the mass (checked on the phantom's mask)
    top = detect(ct, lung_mask=ct.with_array(lungs.astype(np.uint8), labels={1: "lungs"}))[0]
    assert les[tuple(np.rint(ct.world_to_kji(top.center_ras[None])[0]).astype(int))]
    small = Candidate(center_ras=c + np.array([3.0, -4.0, 2.0]), diameter_mm=10.0, volume_ml=0.5,
                      type="solid", probability=0.5)
    patient = {"age": 66, "sex": "female", "smoker": True}
    nods, masks, _ = characterise_candidates(ct, [top, small], lungs, patient=patient)
    # both give the mass's outline: listed once, the second as found again (trial 10)
    assert len(nods) == 1 and nods[0]["also_found_as"] == [2], [d.get("also_found_as") for d in nods]
    alone = characterise_candidates(ct, [small], lungs, patient=patient)
    for d, m in zip(nods + alone[0], masks + alone[1]):
        dice = 2 * (m & les).sum() / (m.sum() + les.sum())
        assert dice > 0.9, dice
        assert abs(d["volume_ml"] - true_ml) < 0.1 * true_ml, (d["volume_ml"], true_ml)
        assert d["mean_diameter_mm"] > 40.0 and d["size_uncertain"] is None
        s = d["stratification"]
        assert s["lung_rads"]["category"] == "4B"
        assert "mass" in s["brock"]["refused"]


def test_a_clipped_outline_never_gives_a_category_below_its_size():
    """When the outline must be clipped its size is a lower bound: Lung-RADS gives 4B when the
    clipped size already implies it (solid >= 15 mm), else refuses with the floor; Brock and Mayo
    are refused. Sizes against Lung-RADS v2022's solid bands (6, 8, 15 mm); a perifissural nodule
    still under 10 mm keeps category 2 (v2022), so 2 is its floor there (trial 45 L3)."""
    from imagio.stratification.screening import stratify

    pat = {"age": 66, "sex": "female", "smoker": True}
    why = "the outline was clipped to the detected blob's sphere (6 mm radius): its size is a lower bound"
    for size, floor in ((4.0, "2"), (7.0, "2"), (12.0, "4A"), (20.0, "4B"), (35.0, "4B")):
        s = stratify({"type": "perifissural", "long_axis_mm": size * 1.2, "mean_diameter_mm": size,
                      "size_uncertain": why}, pat)
        lr = s["lung_rads"]
        assert lr["category_at_least"] == floor
        if floor == "4B":
            assert lr["category"] == "4B" and lr["size_lower_bound"]
        else:
            assert "category" not in lr and "lower bound" in lr["refused"]
        assert "refused" in s["brock"] and "refused" in s["mayo"]
    # the same perifissural 7 mm nodule measured without doubt is category 2
    assert stratify({"type": "perifissural", "long_axis_mm": 8, "mean_diameter_mm": 7.0},
                    pat)["lung_rads"]["category"] == "2"


def test_a_candidate_cut_by_the_scan_edge_gets_no_category():
    """Trial 4's M2: blobs on lung1's bottom slice got 4B despite "partly outside the scanned
    volume". A 20 mm ball centred on the image's first slice: its size and type are uncertain,
    Lung-RADS is refused with that reason (the floor is kept), Brock and Mayo refused."""
    ct, lungs, les, c = _mass_chest(edge=True)
    assert les[0].any()   # the ball is cut by the first slice (independent of the code)
    cand = Candidate(center_ras=c, diameter_mm=18.0, volume_ml=3.0, type="solid", probability=0.5)
    d = characterise_candidates(ct, [cand], lungs, patient={"age": 66, "sex": "male", "smoker": True})[0][0]
    assert "scan's edge" in d["size_uncertain"]
    lr = d["stratification"]["lung_rads"]
    assert "category" not in lr and "scan's edge" in lr["refused"]
    assert lr["category_at_least"] in ("4A", "4B")
    assert "refused" in d["stratification"]["brock"]


def test_headline_never_recommends_routine_screening_over_an_uncertain_candidate():
    """The report's follow-up: a measured Lung-RADS 2 nodule and a candidate whose clipped size
    implies at least 4B: in the main table the headline says the category is not decided, in the
    low-probability list it gives the floor as a condition ("if a nodule", trial 63 M1); both name
    the candidate and give no routine follow-up."""
    from imagio.detection.report import management_lines
    from imagio.stratification.screening import stratify

    def nod(i, size, unsure, p):
        d = {"id": i, "type": "solid", "mean_diameter_mm": size, "long_axis_mm": size,
             "size_uncertain": unsure, "candidate": {"probability": p}}
        d["stratification"] = stratify(d)
        return d

    edge = "cut by the scan's edge (the outline touches the edge of the image): size and type uncertain"
    ok = nod(1, 4.5, None, 0.9)
    assert ok["stratification"]["lung_rads"]["category"] == "2"
    lines = management_lines([ok, nod(2, 20.0, edge, 0.9)], [])
    assert lines[0][0] == "Lung-RADS not decided" and "#2 at least 4B" in lines[0][1]
    # the floor the summary gives (highest_lung_rads ">=4B") is in the report too (trial 58 M4)
    assert "the scan is at least Lung-RADS 4B (>=4B)" in lines[0][1], lines
    assert not any("Continue annual" in v for _, v in lines), lines
    # of low probability its floor is a condition (new-user trial 63 M1), the follow-up still withheld
    lines = management_lines([ok], [nod(2, 20.0, edge, 0.2)])
    assert lines[0] == ("Lung-RADS 2 among the measured nodules",
                        "withheld until the low-probability candidates below are read"), lines
    assert "the scan is Lung-RADS >=4B if #2 (score 0.20) is a nodule" in dict(lines)["Lung-RADS >=4B if a nodule"]
    assert not any("Continue annual" in v for _, v in lines), lines
    # a measured 4B decides; an uncertain low-probability candidate with a 4B floor is named for review
    lines = management_lines([nod(3, 20.0, None, 0.9)], [nod(2, 20.0, edge, 0.2)])
    assert lines[0][0] == "Lung-RADS 4B" and any("#2 >= 4B" in v for k, v in lines if k == "review")
    # without the uncertain candidate the routine follow-up stands
    assert "Continue annual" in management_lines([ok], [])[0][1]
    # a reported candidate clipped to a small piece (floor 2, or none) still withholds the routine
    # follow-up: a clipped piece of a large lesion can measure under 6 mm
    small = nod(4, 4.0, "the outline was clipped to the detected blob's sphere", 0.9)
    lines = management_lines([ok, small], [])
    assert lines[0][0] == "Lung-RADS not decided" and "#4" in lines[0][1], lines
    assert not any("Continue annual" in v for _, v in lines), lines
    # the same candidate in the low-probability list does not (scans hold many at their edges)
    assert "Continue annual" in management_lines([ok], [small])[0][1]


def _slab_chest():
    """A thin slab (12 sections of 1 mm, 0.8 mm pixels, oblique) through lung parenchyma
    (-850 HU, noise 15 HU) in a soft-tissue wall, with a solid 20 mm ball (20 HU) centred in the
    slab: the ball is cut by both the first and the last section (as a thin LIDC slab cuts a
    nodule). Returns (ct, lungs, lesion mask, ball centre RAS)."""
    from conftest import rotation

    d = rotation((1, 2, 2), 12.0)
    vol = Volume(np.zeros((12, 110, 110), np.float32), make_ijk_to_ras((0.8, 0.8, 1.0), (0, 0, 0), d))
    w = _world_grid(vol)
    u, v = d[:, 0], d[:, 1]
    cen = vol.kji_to_world(np.array([[5.5, 55, 55]]))[0]
    lu, lv = (w - cen) @ u, (w - cen) @ v
    lungs = (np.abs(lu) < 38) & (np.abs(lv) < 38)
    a = np.where(lungs, -850.0, np.where((np.abs(lu) < 43) & (np.abs(lv) < 43), 30.0, -1000.0))
    c = cen + 10.0 * v
    les = np.linalg.norm(w - c, axis=-1) <= 10.0
    a[les] = 20.0
    a += np.random.default_rng(3).normal(0, 15, vol.shape)
    return vol.with_array(a.astype(np.int16)), lungs, les, c


def test_a_nodule_spanning_a_thin_slab_is_not_clipped_as_a_leak():
    """The one-click tool warns that an outline touching two opposite faces of the image has an
    unreliable size, in words that contain "size limit" and "irregular"; the characterisation
    read those words as a leak and clipped a compact 20 mm nodule in a 12 mm slab to a 4 mm blob's
    sphere (Dice 0.04, floor Lung-RADS 2). It now reads the tool's flags: the compact outline is
    kept (Dice against the phantom's ball > 0.9), its size is said to be uncertain because the
    scan's edge cuts it (possibly too large), and Lung-RADS is refused with the 4B floor that
    the ball's true 20 mm diameter implies."""
    ct, lungs, les, c = _slab_chest()
    assert les[0].any() and les[-1].any()   # the ball spans the slab (independent of the code)
    cand = Candidate(center_ras=c + np.array([2.0, -1.0, 0.0]), diameter_mm=4.0, volume_ml=0.03,
                     type="solid", probability=0.5)
    nods, masks, _ = characterise_candidates(ct, [cand], lungs,
                                             patient={"age": 66, "sex": "female", "smoker": True})
    d, m = nods[0], masks[0]
    assert 2 * (m & les).sum() / (m.sum() + les.sum()) > 0.9
    assert "clipped" not in d["size_uncertain"] and "scan's edge" in d["size_uncertain"]
    assert "too large" in d["size_uncertain"]
    lr = d["stratification"]["lung_rads"]
    assert "category" not in lr and lr["category_at_least"] == "4B"


def _thick_section_chest(core_mm: float, gg_mm: float, psf_mm: float = 0.5):
    """Lung (-850 HU) in a soft-tissue wall on an oblique 0.6 x 0.6 x 5 mm grid (lung1's class),
    with a nodule whose HU per voxel is the voxel's share of each material (supersampled 3 x 3 x 5
    per voxel: partial volume), a 0.5 mm Gaussian point-spread in the section and noise 15 HU:
    a solid core (20 HU, diameter ``core_mm``) inside a ground-glass ball (-600 HU, diameter
    ``gg_mm``; none when 0). Returns (ct, lungs, centre RAS)."""
    from scipy import ndimage

    from conftest import rotation

    d = rotation((1, 2, 2), 10.0)
    vol = Volume(np.zeros((11, 90, 90), np.float32), make_ijk_to_ras((0.6, 0.6, 5.0), (0, 0, 0), d))
    c = vol.kji_to_world(np.array([[5.2, 45.3, 44.6]]))[0]
    sub = np.stack(np.meshgrid((np.arange(5) + 0.5) / 5 - 0.5, (np.arange(3) + 0.5) / 3 - 0.5,
                               (np.arange(3) + 0.5) / 3 - 0.5, indexing="ij"), -1).reshape(-1, 3)
    kji = np.indices(vol.shape).reshape(3, -1).T.astype(float)
    core = np.zeros(len(kji))
    gg = np.zeros(len(kji))
    for off in sub:
        r = np.linalg.norm(vol.kji_to_world(kji + off) - c, axis=1)
        core += (r <= core_mm / 2.0) / len(sub)
        gg += ((r <= gg_mm / 2.0) & (r > core_mm / 2.0)) / len(sub)
    w = vol.kji_to_world(kji).reshape(*vol.shape, 3)
    rel = w - vol.kji_to_world(np.array([[5, 45, 45]]))[0]
    lu, lv = rel @ d[:, 0], rel @ d[:, 1]
    lungs = (np.abs(lu) < 22) & (np.abs(lv) < 22)
    base = np.where(lungs, -850.0, np.where((np.abs(lu) < 26) & (np.abs(lv) < 26), 30.0, -1000.0))
    frac_c, frac_g = core.reshape(vol.shape), gg.reshape(vol.shape)
    a = frac_c * 20.0 + frac_g * -600.0 + (1.0 - frac_c - frac_g) * base
    a = ndimage.gaussian_filter(a, (0.0, psf_mm / 0.6, psf_mm / 0.6))
    a += np.random.default_rng(7).normal(0, 15, vol.shape)
    return vol.with_array(a.astype(np.int16)), lungs, c


def test_partial_volume_rim_of_a_solid_nodule_is_not_ground_glass():
    """Trial 5: lung1's solid nodule (5 mm sections) was typed part-solid because its outline's
    partial-volume rim (voxels straddling the edge, -850..-300 HU) counted as ground glass. A
    solid 9 mm ball on 0.6 x 0.6 x 5 mm voxels with true partial volume (typed part-solid before,
    40 % of its outline solid) is typed solid, with a warning that a thinner rim cannot be seen;
    part-solid nodules (a 6 mm solid core in a 16 mm ground-glass ball, an 8 mm core in 14 mm:
    ground glass 3-5 mm thick, wider than a voxel in the section) stay part-solid with a solid
    component well below their diameter."""
    pat = {"age": 66, "sex": "female", "smoker": True}
    ct, lungs, c = _thick_section_chest(9.0, 0.0)
    cand = Candidate(center_ras=c, diameter_mm=9.0, volume_ml=0.4, type="solid", probability=0.5)
    d = characterise_candidates(ct, [cand], lungs, patient=pat)[0][0]
    assert d["type"] == "solid", (d["type"], d["warnings"])
    assert any("partial-volume rim" in w for w in d["warnings"])
    for core, gg in ((6.0, 16.0), (8.0, 14.0)):
        ct, lungs, c = _thick_section_chest(core, gg)
        cand = Candidate(center_ras=c, diameter_mm=gg - 2.0, volume_ml=1.5, type="part_solid",
                         probability=0.5)
        d = characterise_candidates(ct, [cand], lungs, patient=pat)[0][0]
        assert d["type"] == "part_solid", (core, d["type"], d["warnings"])
        assert d["solid_component_mm"] < 0.75 * d["mean_diameter_mm"], (core, d["solid_component_mm"])


def test_report_offers_a_bronchoscopic_plan_only_where_bronch_accepts_the_ct():
    """New-user trial 4 (L3): the screening report of a 5 mm CT (lung1) suggested `imagio bronch`
    commands that bronch refuses at that slice thickness. The command is offered at 1 mm and
    replaced by the reason at 5 mm, on an oblique grid (the coarsest spacing counts, whatever
    its axis)."""
    from imagio.detection.report import plan_commands

    rot = np.array([[0.0, 0.6, 0.8], [0.0, -0.8, 0.6], [1.0, 0.0, 0.0]])
    d = {"id": 3, "center_ras": [10.0, -20.0, 30.0]}
    for spacing, offered in (((0.7, 0.7, 1.0), True), ((0.7, 5.0, 0.7), False)):
        ct = Volume(np.zeros((4, 4, 4), np.int16), make_ijk_to_ras(spacing, (5.0, -3.0, 2.0), rot))
        cmds = plan_commands("ct.nii.gz", d, ct)
        assert cmds[0].startswith("imagio plan ") and "--target=10.0,-20.0,30.0" in cmds[0]
        assert "--lesions " in cmds[0]   # the other detected nodules are kept out (trial 21)
        assert cmds[1].startswith("imagio bronch ") == offered, cmds
        if not offered:
            assert cmds[1].startswith("# no bronchoscopic plan") and "5 mm slices" in cmds[1]


def test_report_commands_run_from_any_folder(tmp_path, monkeypatch):
    """New-user trial 22 (LOW): the report's commands named the CT as typed and the detect
    outputs (nodules.seg.nrrd, structures.seg.nrrd) relative to the detect folder: run from
    anywhere else they read nothing or another file. Every path is now absolute, quoted where
    it holds a space; parsed as a shell would, each names the right file."""
    import shlex

    from imagio.detection.report import plan_commands, segment_command

    out = tmp_path / "screening out"
    monkeypatch.chdir(tmp_path)
    seg = shlex.split(segment_command("ct 1.nii.gz", out))
    assert seg[2] == str(tmp_path / "ct 1.nii.gz") and seg[-1] == str(out / "structures.seg.nrrd")
    for cmd in plan_commands("ct 1.nii.gz", {"id": 2, "center_ras": [1.0, -2.0, 3.0]}, None, out):
        a = shlex.split(cmd)
        assert a[2] == str(tmp_path / "ct 1.nii.gz"), a
        assert a[a.index("--lesions") + 1] == str(out / "nodules.seg.nrrd")
        assert a[a.index("--out") + 1].startswith(str(out) + "/")
        assert all(Path(x).is_absolute() for x in a[2:] if x.endswith(".nrrd"))


def test_report_types_calcium_of_uncertain_size_as_calcified_or_bone():
    """Trial 5: LIDC-0003's candidate #12 (bone, 411 HU, 19.6 mL) was listed "calcified" in the
    report's table while its Lung-RADS was refused as "a calcified nodule or bone". The type
    cell says so too; a calcified nodule of measured size stays "calcified"."""
    from imagio.detection.report import nodule_rows

    base = {"id": 12, "type": "calcified", "mean_diameter_mm": 16.0, "long_axis_mm": 19.0, "volume_ml": 1.2,
            "side": "right", "center_ras": [1.0, 2.0, 3.0], "candidate": {"probability": 0.1},
            "stratification": {"lung_rads": {"refused": "x"}, "brock": {"refused": "y"}}}
    assert nodule_rows([{**base, "size_uncertain": "clipped"}])[0][1] == "calcified or bone"
    assert nodule_rows([base])[0][1] == "calcified"


def test_candidates_whose_outlines_touch_are_said_to_be_one_lesion():
    """Trial 7: a 5 cm mass came out as four candidates 2-12 mm apart, the first part-solid, the
    'part of a mass' doubt on the second only. Outlines that touch (built so by the test: two
    halves of one ball split by a plane, a third ball 20 mm away) are said to be one lesion on
    each part, with the other part's doubt repeated; the separate one is untouched."""
    from imagio.detection.characterise import _same_lesion
    from imagio.volume import Volume, make_ijk_to_ras

    ct = Volume(np.zeros((40, 40, 60), np.int16), make_ijk_to_ras((1.0, 1.2, 2.0)))
    k, j, i = np.ogrid[:40, :40, :60]
    ball = (k - 20) ** 2 + (j - 20) ** 2 + (i - 15) ** 2 <= 64
    a, b = ball & (i < 15), ball & (i >= 15)
    c = (k - 20) ** 2 + (j - 20) ** 2 + (i - 45) ** 2 <= 16   # 18 voxels = 36 mm beyond the ball
    nodules = [{"id": 1, "segmented": True, "warnings": []},
               {"id": 2, "segmented": True, "warnings": ["the outline may hold only part of a mass (x)"]},
               {"id": 3, "segmented": True, "warnings": []}]
    _same_lesion(ct, nodules, [a, b, c])
    assert nodules[0]["same_lesion_as"] == [2] and nodules[1]["same_lesion_as"] == [1]
    assert any("part of a mass" in w for w in nodules[0]["warnings"])
    assert any("parts of one lesion" in w for w in nodules[1]["warnings"])
    assert "same_lesion_as" not in nodules[2] and nodules[2]["warnings"] == []
    # a gap along i (1 mm voxels): b moved 6 voxels, its nearest voxel centre 7 mm from a's, is not
    # linked; moved 4, 5 mm apart, it is (the 5 mm of detection.json)
    for shift, linked in ((6, False), (4, True)):
        nods = [{"id": 1, "segmented": True, "warnings": []}, {"id": 2, "segmented": True, "warnings": []}]
        _same_lesion(ct, nods, [a, np.roll(b, shift, axis=2)])
        assert ("same_lesion_as" in nods[0]) == linked, shift


def test_nodule_table_does_not_name_the_detector_scale_a_diameter(tmp_path):
    """New-user trial 26 (L2): nodules.csv had a column `diameter_mm` (LUNA16's name for the
    nodule's size) holding the blob filter's 19 mm scale of a 25 mm nodule. The column is now
    `detector_scale_mm`; the size columns are the measured ones."""
    import csv as _csv

    from imagio.detection.outputs import write_nodule_csv

    d = {"id": 1, "type": "solid", "center_ras": [1.0, 2.0, 3.0], "mean_diameter_mm": 25.0, "long_axis_mm": 27.2,
         "axial_long_axis_mm": 24.1, "volume_ml": 5.9, "candidate": {"center_ras": [1.0, 2.0, 3.0], "probability": 0.9, "diameter_mm": 19.0}}
    rows = list(_csv.DictReader(open(write_nodule_csv(tmp_path / "n.csv", "s1", [d]))))
    assert "diameter_mm" not in rows[0] and rows[0]["detector_scale_mm"] == "19.0"
    assert rows[0]["mean_diameter_mm"] == "25.0" and rows[0]["long_axis_mm"] == "27.2"
    assert rows[0]["axial_long_axis_mm"] == "24.1"   # Brock's and Mayo's size (trial 38 LOW: missing)


def test_a_calcified_nodules_solid_component_is_never_larger_than_its_diameter():
    """Issue 17 trial L3: a calcified candidate's solid component was its 3-D long axis (16.7 mm
    beside a 10.1 mm mean diameter on the chest CTA). An elongated calcified nodule (12 x 4 x 4 mm,
    600 HU, its long axis oblique to an anisotropic, flipped grid) is dense throughout: its solid
    component is its mean diameter, below its long axis."""
    from conftest import rotation

    from imagio.detection.characterise import nodule_type
    from imagio.segmentation.lesion import measure

    d = rotation((1, 2, 1), 25.0) @ np.diag([1.0, -1.0, 1.0])
    vol = Volume(np.zeros((30, 50, 50), np.float32), make_ijk_to_ras((0.7, 0.7, 1.25), (0, 0, 0), d))
    w = _world_grid(vol)
    c = vol.kji_to_world(np.array([[15, 25, 25]]))[0]
    ax = np.array([1.0, 1.0, 0.3]) / np.linalg.norm([1.0, 1.0, 0.3])
    rel = w - c
    along = rel @ ax
    radial = np.linalg.norm(rel - along[..., None] * ax, axis=-1)
    mask = (along / 6.0) ** 2 + (radial / 2.0) ** 2 <= 1
    ct = vol.with_array(np.where(mask, 600, -850).astype(np.int16))
    meas = measure(mask, ct, ct.array, kind="lung_nodule")
    assert meas.long_axis_mm > meas.mean_diameter_mm + 2.0   # the case: elongated
    kind, solid_mm, _, _ = nodule_type(ct, mask, meas, {"_fissure_or_pleura_mm": 20.0})
    assert kind == "calcified" and solid_mm <= meas.mean_diameter_mm, (solid_mm, meas.mean_diameter_mm)


def test_outlines_below_the_measurable_size_take_no_characterisation_slot():
    """Issue 17 trial L3: characterisation is capped at N candidates, and on the chest CTA 8 of the
    20 places went to low-probability candidates whose outlines were 1-2 voxels (no category, no
    risk) while measurable ones further down were not characterised. With ``slots`` such an
    outline (below 3 mm: lungrads_v2022.json smallest_measured) takes no place: the next
    candidates are characterised, the sub-measurable ones fill the places left and the rest are
    named in a scan warning; a reported one (score at or above the report's threshold) keeps its
    place. Oblique anisotropic grid."""
    from conftest import rotation

    from imagio.detection.report import report_threshold

    d = rotation((2, 1, 1), 20.0)
    vol = Volume(np.zeros((48, 90, 90), np.float32), make_ijk_to_ras((0.8, 0.8, 1.25), (0, 0, 0), d))
    w = _world_grid(vol)
    cen = vol.kji_to_world(np.array([[24, 45, 45]]))[0]
    u, v = d[:, 0], d[:, 1]
    rel = w - cen
    lung = (np.abs(rel @ u) < 30) & (np.abs(rel @ v) < 30) & (np.abs(rel @ d[:, 2]) < 25)
    body = (np.abs(rel @ u) < 35) & (np.abs(rel @ v) < 35)
    a = np.where(lung, -850.0, np.where(body, 30.0, -1000.0)) + np.random.default_rng(3).normal(0, 10, vol.shape)
    spots = {"tiny1": (cen - 12 * u - 12 * v, 1.6), "tiny2": (cen + 12 * u - 12 * v, 1.6),
             "real1": (cen - 12 * u + 12 * v, 4.0), "real2": (cen + 12 * u + 12 * v, 4.0)}
    for c, r in spots.values():
        a[np.linalg.norm(w - c, axis=-1) <= r] = 20.0
    ct = vol.with_array(a.astype(np.int16))
    t = report_threshold()
    score = {"tiny1": 0.9 * t, "tiny2": 0.8 * t, "real1": 0.7 * t, "real2": 0.6 * t}   # the tiny ones first

    def cands(**p):
        return [Candidate(center_ras=np.asarray(c, float), diameter_mm=3.8, volume_ml=0.0, type="unknown",
                          probability={**score, **p}[k]) for k, (c, _) in spots.items()]

    every, _, _ = characterise_candidates(ct, cands(), lung)
    small = {n["id"] for n in every if n["stratification"]["lung_rads"].get("no_category") == "below_measurable"}
    assert small == {1, 2}, [(n["id"], n.get("mean_diameter_mm")) for n in every]   # the case: outlines < 3 mm
    nods, masks, scan = characterise_candidates(ct, cands(), lung, slots=2)
    assert sorted(n["id"] for n in nods) == [3, 4] and len(masks) == 2
    said = [x for x in scan["warnings"] if "below the smallest measurable" in x]
    assert len(said) == 1 and "#1 " in said[0] and "#2 " in said[0], scan["warnings"]
    # a place left: the most probable sub-measurable one fills it, the other is named
    nods, _, scan = characterise_candidates(ct, cands(), lung, slots=3)
    assert sorted(n["id"] for n in nods) == [1, 3, 4]
    assert any("#2 " in x and "#1 " not in x for x in scan["warnings"] if "below the smallest measurable" in x)
    # reported (score at or above the threshold): it keeps its place
    nods, _, _ = characterise_candidates(ct, cands(tiny1=min(1.0, t + 0.1)), lung, slots=2)
    assert sorted(n["id"] for n in nods) == [1, 3]


def test_nodule_table_puts_the_scans_columns_after_the_nodules_own(tmp_path):
    """Issue 17 trial L4: nodules.csv's ``emphysema`` (the scan's, the same on every row) sat between
    the nodule's Lung-RADS and Brock columns. LUNA16's five columns come first, the scan's
    columns (``SCAN_FIELDS``) last, and a row's values stay under their own names."""
    import csv as _csv

    from imagio.detection.outputs import NODULE_FIELDS, SCAN_FIELDS, write_nodule_csv

    assert NODULE_FIELDS[:5] == ("seriesuid", "coordX", "coordY", "coordZ", "probability")
    assert "emphysema" in SCAN_FIELDS and NODULE_FIELDS[-len(SCAN_FIELDS):] == SCAN_FIELDS
    for own in ("lung_rads", "brock_low", "mayo_high", "refused", "warnings", "table"):
        assert NODULE_FIELDS.index(own) < NODULE_FIELDS.index("emphysema"), own
    d = {"id": 4, "type": "solid", "center_ras": [1.0, 2.0, 3.0], "mean_diameter_mm": 9.0, "warnings": ["w"],
         "candidate": {"center_ras": [1.0, 2.0, 3.0], "probability": 0.9, "diameter_mm": 9.0},
         "stratification": {"lung_rads": {"category": "4A"}, "brock": {"probability_range": [0.01, 0.02]},
                            "inputs": {"emphysema": {"value": True}}}}
    path = write_nodule_csv(tmp_path / "n.csv", "s1", [d])
    head = next(_csv.reader(open(path)))
    assert tuple(head) == NODULE_FIELDS
    row = next(_csv.DictReader(open(path)))
    assert (row["lung_rads"], row["brock_low"], row["emphysema"], row["table"], row["warnings"]) == \
        ("4A", "0.0100", "yes", "main", "w"), row


def test_brock_and_mayo_read_the_axial_diameter_and_the_inputs_are_recorded():
    """Issue 17: Brock was fitted on the maximum nodule diameter measured on axial sections
    (PanCan's definition: McWilliams 2013, van Riel 2017) and Mayo on a 2-D diameter; detect gave
    both the 3-D long axis, which for a nodule elongated along the body axis (8 mm across, 16 mm
    long) doubles the size and overstates the risk. The models read the axial long axis, and the
    stratification records each input with its unit and how it was had. Emphysema given as yes
    while the lung mask reads none (LAA-950 of -850 HU parenchyma: 0 %) is said."""
    from imagio.stratification import nodule_risk

    vol = Volume(np.zeros((70, 60, 60), np.float32), make_ijk_to_ras((0.8, 0.8, 1.0), (0, 0, 0)))
    w = _world_grid(vol)
    c = np.array([24.0, 24.0, 35.0])
    rel = w - c
    lung = (np.abs(rel[..., 0]) < 20) & (np.abs(rel[..., 1]) < 20) & (np.abs(rel[..., 2]) < 30)
    body = (np.abs(rel[..., 0]) < 23) & (np.abs(rel[..., 1]) < 23)
    a = np.where(lung, -850.0, np.where(body, 30.0, -1000.0)) + np.random.default_rng(5).normal(0, 15, vol.shape)
    a[(rel[..., 0] / 4.0) ** 2 + (rel[..., 1] / 4.0) ** 2 + (rel[..., 2] / 8.0) ** 2 <= 1] = 20.0   # along S
    ct = vol.with_array(a.astype(np.int16))
    cand = Candidate(center_ras=c, diameter_mm=8.0, volume_ml=0.0, type="unknown", probability=0.9)
    patient = {"age": 64, "sex": "male", "smoker": True, "family_history": False, "extrathoracic_cancer": False,
               "emphysema": True}
    nods, _, scan = characterise_candidates(ct, [cand], lung, patient=patient)
    n = nods[0]
    assert n["axial_long_axis_mm"] == pytest.approx(8.0, abs=1.6), n
    assert n["long_axis_mm"] > n["axial_long_axis_mm"] + 5.0, n
    s = n["stratification"]
    want = [nodule_risk.brock(64, False, n["axial_long_axis_mm"], "solid", False, True, u, 1, sp).probability
            for u in (False, True) for sp in (False, True)]
    assert s["brock"]["probability_range"] == pytest.approx([min(want), max(want)], rel=1e-9), s["brock"]
    mayo = [nodule_risk.mayo(64, n["axial_long_axis_mm"], True, False, sp, u).probability
            for u in (False, True) for sp in (False, True)]
    assert s["mayo"]["probability_range"] == pytest.approx([min(mayo), max(mayo)], rel=1e-9), s["mayo"]
    inp = s["inputs"]
    assert inp["size_mm"] == {**inp["size_mm"], "value": n["axial_long_axis_mm"], "unit": "mm", "how": "measured"}
    assert "axial" in inp["size_mm"]["note"]
    assert inp["age"] == {"value": 64, "unit": "years", "how": "given"}
    assert inp["emphysema"]["how"] == "given" and inp["emphysema"]["value"] is True
    assert "LAA-950" in inp["emphysema"]["note"]
    assert inp["upper_lobe"]["how"] == "unknown" and inp["spiculation"]["how"] == "not assessed"
    assert inp["nodule_count"]["how"] == "assumed" and inp["mean_diameter_mm"]["how"] == "measured"
    said = [x for x in scan["warnings"] if x.startswith("emphysema given as yes")]
    assert said and "LAA-950" in said[0], scan["warnings"]
    # a reading that agrees is not warned
    _, _, scan = characterise_candidates(ct, [cand], lung, patient={**patient, "emphysema": False})
    assert not any(x.startswith("emphysema given") for x in scan["warnings"]), scan["warnings"]


def test_nodule_table_lists_the_reports_nodules_first_and_says_which_table(tmp_path):
    """New-user trial 46 M2b: on a reformat where no candidate reached the report's probability
    threshold, nodules.csv listed first a 0.0096-probability hilum candidate rated 4B (the risk
    order) while the report kept it out of its nodule table. The CSV lists the report's nodules
    (probability at or above its threshold) first, then the low-probability candidates, and says
    which table each row belongs to."""
    import csv as _csv

    from imagio.detection.outputs import write_nodule_csv
    from imagio.detection.report import report_threshold

    t = report_threshold()

    def nod(i, p, cat):
        return {"id": i, "type": "solid", "center_ras": [1.0, 2.0, 3.0], "mean_diameter_mm": 9.0,
                "candidate": {"center_ras": [1.0, 2.0, 3.0], "probability": p, "diameter_mm": 9.0},
                "stratification": {"lung_rads": {"category": cat}}}

    given = [nod(18, t * 0.02, "4B"), nod(3, min(1.0, t + 0.05), "3"), nod(7, t * 0.5, "2")]   # risk order
    rows = list(_csv.DictReader(open(write_nodule_csv(tmp_path / "n.csv", "s1", given))))
    assert [r["id"] for r in rows] == ["3", "18", "7"]
    assert [r["table"] for r in rows] == ["main", "low_probability", "low_probability"]
    assert all((float(r["probability"]) >= t) == (r["table"] == "main") for r in rows)


def test_no_emphysema_is_not_judged_on_lungs_the_scan_cuts():
    """New-user trial 46 L8: on a 40 mm LIDC slab LAA-950 read 2.67 % and emphysema "no" set
    Brock's emphysema term to 0, though emphysema is regional and most of the lungs were not in
    the scan. Below the threshold on lungs that reach a face of the image it is unknown (said, a
    range in Brock); the same lungs inside the image read no; at or above the threshold the part
    measured shows it: yes. LAA-950 counted here independently of the code."""
    from imagio.detection.characterise import emphysema_status

    rng = np.random.default_rng(0)
    for cut in (False, True):
        for laa in (0.02, 0.08):
            # tissue with noise (one exact value on the array's border would be padding no scan measured)
            arr = (40.0 + rng.normal(0.0, 10.0, (40, 50, 50))).astype(np.float32)
            lungs = np.zeros(arr.shape, bool)
            lungs[(0 if cut else 5):35, 10:40, 10:40] = True
            arr[lungs] = -860.0
            pick = lungs & (rng.random(arr.shape) < laa)
            arr[pick] = -980.0
            ct = Volume(arr, make_ijk_to_ras((1.0, 1.0, 2.0), (0, 0, 0)))
            e = emphysema_status(ct, lungs)
            own = 100.0 * pick.sum() / lungs.sum()
            assert abs(e["laa950_percent"] - own) < 0.1, (e, own)
            if own >= e["threshold_percent"]:
                # a 60 mL lung with no trachea in view: the airways cannot be separated, and the most
                # airway lumen a lung mask can hold (150 mL) could explain the whole percentage
                assert e["emphysema"] is None and "could not be separated" in e["not_judged"], e
            elif cut:
                assert e["emphysema"] is None and "cuts the lungs" in e["not_judged"]
            else:
                assert e["emphysema"] is False and not e["not_judged"]


def _chest_with_ellipsoid_lung(top_cut_mm: float, circle_mm: float | None = None):
    """A body cylinder (40 HU, noise 10 HU) in air with one ellipsoidal lung (semi-axes 40, 50,
    110 mm along x, y, z; -860 HU, 2 % of it at -980 HU) on an anisotropic grid (0.8, 0.8, 2.5 mm),
    the image ending ``top_cut_mm`` below the lung's apex; with ``circle_mm`` the voxels outside
    that radius hold -3024 (a reconstruction circle's padding), the lung cut there. Returns (ct,
    lungs, mL of lung the image leaves out, counted on the uncut grid)."""
    sp = (2.5, 0.8, 0.8)
    k, j, i = np.indices((100, 200, 200))
    z, y, x = k * sp[0], j * sp[1], i * sp[2]
    ell = ((x - 80) / 40) ** 2 + ((y - 80) / 50) ** 2 + ((z - 125) / 110) ** 2 <= 1
    inside = np.ones(ell.shape, bool) if circle_mm is None else (x - 80) ** 2 + (y - 80) ** 2 <= circle_mm ** 2
    top = int(np.floor((125 + 110 - top_cut_mm) / sp[0]))
    lung = (ell & inside)[:top + 1]
    missing = float(np.count_nonzero(ell) - np.count_nonzero(lung)) * np.prod(sp) / 1000.0
    rng = np.random.default_rng(1)
    body = (((x - 80) / 75) ** 2 + ((y - 80) / 70) ** 2 <= 1)[:top + 1]
    arr = np.where(body, 40.0, -1000.0) + rng.normal(0.0, 10.0, lung.shape)
    arr[lung] = -860.0
    arr[lung & (rng.random(lung.shape) < 0.02)] = -980.0
    if circle_mm is not None:
        arr[~inside[:top + 1]] = -3024.0
    return Volume(arr.astype(np.float32), make_ijk_to_ras((0.8, 0.8, 2.5))), lung, missing


@pytest.mark.parametrize("top_cut_mm, judged", [(0.0, True), (5.0, True), (100.0, False)])
def test_an_apex_tip_on_the_first_slice_still_judges_emphysema_a_slab_does_not(top_cut_mm, judged):
    """Review 41 M4: any lung voxel on a face made emphysema unknown, so a screening CT whose first
    slice grazes an apex lost Brock's emphysema term. The lung a face cuts off is now estimated from
    how its section grows inside the face, and absence is judged when even all of that lung
    emphysematous would stay below the threshold. Own check: the estimate is an upper bound of the
    lung really left out (counted on the uncut ellipsoid)."""
    from imagio.detection.characterise import emphysema_status

    ct, lung, missing = _chest_with_ellipsoid_lung(top_cut_mm)
    e = emphysema_status(ct, lung)
    assert e["laa950_percent"] < e["threshold_percent"]
    if judged:
        assert e["emphysema"] is False and not e["not_judged"], e
        assert e["cut_lung_ml"] >= missing, (e, missing)
    else:   # 100 mm below the apex: ~400 mL of lung out of view, so emphysema could be anywhere
        assert missing > 300 and e["emphysema"] is None and "cuts the lungs" in e["not_judged"], (e, missing)


def test_lungs_cut_by_the_reconstruction_circle_do_not_judge_emphysema_absent():
    """Review 41 M4 (b): lungs cut by the reconstruction circle's padding (no face of the array
    touched) are cut lungs too: unknown, said."""
    from imagio.detection.characterise import emphysema_status

    ct, lung, missing = _chest_with_ellipsoid_lung(-20.0, circle_mm=35.0)
    assert missing > 50 and not any(np.take(lung, e, axis=a).any() for a in range(3) for e in (0, -1))
    e = emphysema_status(ct, lung)
    assert e["emphysema"] is None and "cuts the lungs" in e["not_judged"], e


def test_a_lung_cut_at_a_side_or_short_of_the_top_face_is_not_judged_free_of_emphysema():
    """New-user trial 51 H1: a right hemithorax crop (the left lung wholly out of view) read "no
    emphysema" from a bound of 75 mL taken at the left-right face, and a lung mask ending 4.5 mm
    short of a top face that cuts the lungs read "no" with 0 mL cut. Only the apex and the base
    taper: a lung on a left-right or front-back face is unknown; a lung ending within the slope
    window of the top or bottom face is cut there. Own check: the missing lung counted on the uncut
    ellipsoid."""
    from imagio.detection.characterise import emphysema_status

    ct, lung, missing = _chest_with_ellipsoid_lung(100.0)
    side = lung.copy()
    side[:, :, :100] = False                       # the view cut at i = 100 (x 80 mm): half the lung gone
    e = emphysema_status(ct.with_array(np.where(side, ct.array, 40.0).astype(np.float32)), side)
    assert e["emphysema"] is None and e["cut_lung_ml"] is None, e
    short = lung.copy()
    short[-2:] = False                             # the mask stops 5 mm (two 2.5 mm slices) short of the top face
    e = emphysema_status(ct, short)
    assert missing > 300 and e["emphysema"] is None, (e, missing)


@pytest.mark.parametrize("cut_mm", [45.0, 60.0])
def test_the_lung_a_bottom_face_cuts_off_is_bounded_over_the_diaphragm(cut_mm):
    """Review 42 L6: only an apex cut was tested. A lung whose base sits on a diaphragm dome (60 mm
    high) has its recess as a deep ring round the dome; a bottom face cutting it there leaves that
    ring's lower part out. Own check: the estimate bounds the lung really left out (counted on the
    uncut lung)."""
    from imagio.detection.characterise import _cut_lung_bound_ml

    sp = (2.5, 0.8, 0.8)
    k, j, i = np.indices((100, 200, 200))
    z, y, x = k * sp[0], j * sp[1], i * sp[2]
    r2 = ((x - 80) / 40) ** 2 + ((y - 80) / 50) ** 2
    lung = (r2 + ((z - 125) / 110) ** 2 <= 1) & (z >= 15 + 60 * (1 - r2))
    kk = int(np.ceil((15 + cut_mm) / sp[0]))
    m = lung[kk:]
    missing = float(np.count_nonzero(lung[:kk])) * np.prod(sp) / 1000.0
    rng = np.random.default_rng(2)
    body = (((x - 80) / 75) ** 2 + ((y - 80) / 70) ** 2 <= 1)[kk:]
    arr = np.where(body, 40.0, -1000.0) + rng.normal(0.0, 10.0, m.shape)
    arr[m] = -860.0
    ct = Volume(arr.astype(np.float32), make_ijk_to_ras((0.8, 0.8, 2.5)))
    assert missing > 5.0
    assert _cut_lung_bound_ml(ct, m) >= missing


def test_laa950_leaves_the_airway_lumens_out_of_the_lungs(shared_data):
    """New-user trial 51 M4: `detect`'s LAA-950 counted the trachea and bronchi (air, -1000 HU)
    in the HU-rule lung mask: 0.79 % on the chest CTA and 2.76 % on its crop k >= 140, against
    about 0.1 % on the parenchyma. LAA-950 is measured on the lungs without the airways
    (Fleischner 2015, COPDGene). Own check: the airway lumen is the largest connected piece of
    below -950 HU voxels in the mask (the tree, one tube); the parenchyma's LAA-950 leaves it out."""
    from scipy import ndimage

    from imagio import io
    from imagio.detection.characterise import emphysema_status
    from imagio.detection.pipeline import lung_volume
    from imagio.volume import as_ras_canonical

    ct0 = io.read_image(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz")
    for k0 in (0, 140):
        ct, _, _ = as_ras_canonical(ct0.crop((k0, 0, 0), ct0.shape))
        lungs, _ = lung_volume(ct, None)
        low = lungs & (ct.array < -950)
        cnt = np.bincount(ndimage.label(low)[0].ravel())[1:]
        own = 100.0 * (low.sum() - cnt.max()) / (lungs.sum() - cnt.max())
        e = emphysema_status(ct, lungs)
        assert e["airways_ml"] > 10 and e["airways_note"] is None, e
        assert abs(e["laa950_percent"] - own) < 0.1 and e["laa950_percent"] < 0.3, (k0, e["laa950_percent"], own)
        assert e["emphysema"] is not True


def test_laa950_with_airways_not_separated_judges_yes_only_beyond_their_lumen():
    """When no trachea is in view the airways cannot be taken out of the lung mask: a yes that the
    lumen a lung mask can hold (the anatomic dead space, 150 mL) could explain is unknown, said;
    one beyond it stays yes; the percentage is the mask's, counted here."""
    from imagio.detection import constants
    from imagio.detection.characterise import emphysema_status

    lumen = constants()["characterise"]["emphysema_laa950_percent"]["airways"]["lumen_max_ml"]
    ct, lung, _ = _chest_with_ellipsoid_lung(-20.0)       # whole lung in view, no trachea
    ml = float(lung.sum()) * ct.voxel_volume_ml
    rng = np.random.default_rng(2)
    for share in (0.06, 0.30):
        arr = ct.array.copy()
        arr[lung] = -860.0
        pick = lung & (rng.random(lung.shape) < share)
        arr[pick] = -980.0
        e = emphysema_status(ct.with_array(arr), lung)
        own = 100.0 * pick.sum() / lung.sum()
        assert e["airways_note"] and "trachea" in e["airways_note"], e
        assert abs(e["laa950_percent"] - own) < 0.1
        least = 100.0 * (own / 100.0 * ml - lumen) / (ml - lumen)
        if least < e["threshold_percent"]:
            assert e["emphysema"] is None and "could not be separated" in e["not_judged"], (e, least)
        else:
            assert e["emphysema"] is True, (e, least)


def test_a_chest_wall_concavity_of_fat_density_gets_no_category(shared_data):
    """New-user trials 53 and 54 M4: on the chest CTA the juxta-pleural channel's candidate at the
    right lung's border by a rib (RAS 126.4, 160.9, 635.4; found by `imagio detect`, its values
    copied here) was segmented into a 2.15 mL outline of fat density and graded "solid 13.5 mm,
    Lung-RADS 4A", while its own row said the outline had fat's density. An outline of fat
    measures no nodule: Lung-RADS (no category, no floor), Brock and Mayo are refused with the
    reason, and the row no longer calls the detector's concavity size its diameter. Own check: the
    outline's non-air voxels (>= -500 HU) average in adipose tissue's band (-190..-30 HU) and
    the outline touches the lung."""
    from scipy import ndimage

    from imagio import io
    from imagio.detection.pipeline import lung_volume
    from imagio.volume import as_ras_canonical

    ct, _, _ = as_ras_canonical(io.read_image(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz"))
    lungs, _ = lung_volume(ct, None)
    cand = Candidate(center_ras=np.array([126.37, 160.88, 635.35]), diameter_mm=12.1752, volume_ml=0.945,
                     type="solid", probability=0.3642, distance_to_pleura_mm=0.0, juxta_pleural=True,
                     detector="blobs", features={"channel": "concavity", "centre_hu": 60.0},
                     warnings=["diameter is the equivalent diameter of a concavity of the lung outline, not "
                               "a segmentation"])
    nods, masks, _ = characterise_candidates(ct, [cand], lungs, patient={"age": 66, "sex": "male", "smoker": True})
    d, m = nods[0], masks[0]
    hu = ct.array[m].astype(float)
    tissue = hu[hu >= -500.0]
    assert d["segmented"] and -190.0 <= tissue.mean() < -30.0, tissue.mean()
    assert (ndimage.binary_dilation(m, np.ones((3, 3, 3), bool)) & lungs).any()
    s = d["stratification"]
    assert "category" not in s["lung_rads"] and s["lung_rads"]["category_at_least"] is None, s["lung_rads"]
    for model in ("lung_rads", "brock", "mayo"):
        assert "fat" in s[model]["refused"] and "not assessable" in s[model]["refused"], s[model]
    assert not any("concavity of the lung outline, not a segmentation" in w for w in d["warnings"])


def test_a_heart_border_concavity_clipped_to_its_sphere_gets_no_category(shared_data):
    """New-user trial 53 M4: on lung2 the juxta-pleural channel's candidate at the right heart border
    (LPS -51.3, -207.1, -270; found by `imagio detect`, its values copied here) was segmented to the
    one-click size limit, clipped to the concavity's sphere and graded "solid 22.1 mm, Lung-RADS 4B"
    from that lower bound: a category from the concavity's equivalent diameter, which IMAGIO says is
    not a segmentation. No category or floor, Brock and Mayo refused with the reason. Own check:
    the outline kept lies within the candidate's sphere grown one scale step (it was clipped)."""
    from imagio import io
    from imagio.detection.pipeline import lung_volume
    from imagio.volume import as_ras_canonical

    ct, _, _ = as_ras_canonical(io.read_image(shared_data / "pyradiomics-lung" / "lung2_image.nrrd"))
    lungs, _ = lung_volume(ct, None)
    c = np.array([51.26, 207.08, -270.0])
    cand = Candidate(center_ras=c, diameter_mm=17.4193, volume_ml=2.7675, type="solid", probability=0.155,
                     distance_to_pleura_mm=0.0, juxta_pleural=True, detector="blobs",
                     features={"channel": "concavity", "centre_hu": -43.0},
                     warnings=["diameter is the equivalent diameter of a concavity of the lung outline, not "
                               "a segmentation"])
    nods, masks, _ = characterise_candidates(ct, [cand], lungs, patient={"age": 66, "sex": "male", "smoker": True})
    d, m = nods[0], masks[0]
    reach = np.linalg.norm(ct.kji_to_world(np.argwhere(m)) - c, axis=1).max()
    assert d["segmented"] and reach <= 17.4193 / 2 * 2 ** (1 / 3) + 0.01, reach
    s = d["stratification"]
    assert "category" not in s["lung_rads"] and s["lung_rads"]["category_at_least"] is None, s["lung_rads"]
    for model in ("lung_rads", "brock", "mayo"):
        assert "concavity" in s[model]["refused"] and "not assessable" in s[model]["refused"], s[model]


def test_an_outline_that_may_be_part_of_a_mass_gets_a_floor_not_a_category(shared_data):
    """New-user trial 56 M2: on the chest CTA the dot channel's candidate at a hilar vessel branching
    (RAS 53.66, 162.66, 682.7; found by `imagio detect`, its values copied here) was segmented to
    0.08 mL while the lung enclosed 0.55 mL of dense tissue around it, and its own warning said the
    outline "may hold only part of a mass (or ... joined to a vessel)"; it was graded a definite
    Lung-RADS 3. Such an outline measures a lower bound, as a clipped one does: no category, a floor
    from the measured size, and the size is said to be a lower bound. Own check: the warning the
    one-click tool gives is there, and the floor is the category the measured size gives."""
    from imagio import io
    from imagio.detection.pipeline import lung_volume
    from imagio.segmentation.lesion import PART_OF_MASS
    from imagio.stratification.screening import lung_rads
    from imagio.volume import as_ras_canonical

    ct, _, _ = as_ras_canonical(io.read_image(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz"))
    lungs, _ = lung_volume(ct, None)
    cand = Candidate(center_ras=np.array([53.66, 162.66, 682.7]), diameter_mm=3.7798, volume_ml=0.0283,
                     type="solid", probability=0.2125, distance_to_pleura_mm=1.5, juxta_pleural=True,
                     detector="blobs", features={"channel": "dot", "centre_hu": 107.0})
    nods, _, _ = characterise_candidates(ct, [cand], lungs, patient={"age": 66, "sex": "male", "smoker": True})
    d = nods[0]
    assert any(PART_OF_MASS in w for w in d["warnings"]), d["warnings"]
    lr = d["stratification"]["lung_rads"]
    assert d["size_uncertain"] and "lower bound" in d["size_uncertain"], d.get("size_uncertain")
    assert "category" not in lr, lr
    measured = lung_rads({k: v for k, v in d.items() if k != "size_uncertain"})
    assert lr["category_at_least"] == measured.get("category"), (lr, measured)


def test_a_not_assessable_candidate_beside_a_measured_category_3_leaves_the_scan_at_least_3():
    """Review finding M1 (detect22): Lung-RADS v2022 codes the exam by its most suspicious nodule
    (``lungrads_v2022.json`` ``exam_category``). A low-probability candidate whose outline measures
    no nodule (not assessable: no category, no floor) may be 4A or 4B, so beside a measured 3 (or
    4A) the scan read "3" as if final. It reads ">=3": the report says "not decided" with the
    floor, names the candidate, gives no follow-up interval. At 4B (the highest a size gives; 4X
    shares its work-up) the category stands and the candidate is named for review; calcium or bone
    (never above 1) lets the category stand."""
    from imagio.detection.pipeline import highest_lung_rads, scan_lung_rads
    from imagio.detection.report import management_lines, split_by_score
    from conftest import screening_nodule as nod
    from imagio.stratification.lungrads import table

    assert "highest degree of suspicion" in table()["exam_category"]["source"]

    fat = nod(5, 13.5, 0.01, why="the outline's tissue has a mean density of -45 HU, that of fat (-190..-30 HU)")
    assert "category" not in fat["stratification"]["lung_rads"]
    for size, cat, follow in ((7.0, "3", "6 months"), (10.0, "4A", "3 month")):
        ok = nod(1, size, 0.9)
        assert ok["stratification"]["lung_rads"]["category"] == cat
        main, low = split_by_score([ok, fat])
        assert main == [ok] and low == [fat]
        assert highest_lung_rads(main, low) == f">={cat}"
        assert scan_lung_rads([ok, fat])["highest_lung_rads"] == f">={cat} (not assessable: #5 (score 0.01))"
        lines = management_lines(main, low)
        assert lines[0][0] == "Lung-RADS not decided" and "#5 not assessable" in lines[0][1], lines
        assert f"at least Lung-RADS {cat} (>={cat})" in lines[0][1], lines
        d = dict(lines)
        assert d[f"Lung-RADS {cat} among the measured nodules"] == "withheld until the candidates above are read"
        if follow:
            assert follow not in " ".join(a + " " + b for a, b in lines), lines
        # without the unmeasured candidate the category is final
        assert highest_lung_rads([ok], []) == cat
    main, low = split_by_score([nod(1, 20.0, 0.9), fat])
    assert highest_lung_rads(main, low) == "4B"
    lines = dict(management_lines(main, low))
    assert "Lung-RADS 4B" in lines and "#5 not assessable" in lines["review: no category"], lines
    # calcium or bone of uncertain size never raises the category: it stands
    bone = nod(6, 10.1, 0.01, "calcified", unsure="the outline was clipped to the detected blob's sphere")
    main, low = split_by_score([nod(1, 7.0, 0.9), bone])
    assert highest_lung_rads(main, low) == "3"


def test_the_axial_short_axis_is_given_and_the_mean_diameter_is_the_mean_of_the_axial_axes(tmp_path):
    """New-user trial 106 L6: candidates.json and the tables gave the axial long axis and the 3-D
    short axis (56.83 mm on the oblique Lung_Dx mass, whose axial axes the tilt warning gave as
    57.1 x 47.3), so the Lung-RADS mean diameter (52.2) could not be rebuilt. An analytic
    ellipsoid (semi-axes 12 mm along R, 6 along A, 10 along S: axial axes 24 x 12 mm, mean 18; 3-D
    short axis 20) in lung on a grid tilted 20 deg with 0.9 x 1.1 x 2 mm voxels: the nodule's
    ``axial_short_axis_mm`` is the axial one (not the 3-D one), the mean diameter is the mean of the
    two axial axes, the tilt warning gives the same axes, and nodules.csv and the report's size
    cell carry them."""
    from conftest import block_in_air, ellipsoid_share, rotation

    from imagio.detection.outputs import write_nodule_csv
    from imagio.detection.report import nodule_rows

    ref, xyz, body = block_in_air((0.9, 1.1, 2.0), (80, 70, 30), rotation((1.0, 0.2, 0.0), 20.0), (34, 36, 28))
    x, y, z = xyz
    lung = (np.abs(x) < 28) & (np.abs(y) < 30) & (np.abs(z) < 22)
    base = np.where(lung, -850.0, np.where(body, 30.0, -1000.0))
    share = ellipsoid_share(ref, xyz, (0.0, 0.0, 0.0), (12.0, 6.0, 10.0))
    a = base + share * (20.0 - base) + np.random.default_rng(7).normal(0, 10, ref.shape)
    ct = ref.with_array(a.astype(np.int16))
    cand = Candidate(center_ras=np.zeros(3), diameter_mm=20.0, volume_ml=0.0, type="unknown", probability=0.9)
    nods, _, _ = characterise_candidates(ct, [cand], lung, patient={"age": 64, "sex": "male"})
    d = nods[0]
    assert d["segmented"], d["warnings"]
    assert d["axial_long_axis_mm"] == pytest.approx(24.0, abs=1.2), d
    assert d["axial_short_axis_mm"] == pytest.approx(12.0, abs=1.2), d   # old code: KeyError
    assert d["short_axis_mm"] == pytest.approx(20.0, abs=2.0), d   # the 3-D one stays what it is
    # the Lung-RADS mean diameter is the mean of the two axial axes, each to 0.1 mm, the mean to 0.1 mm
    # (the axes are given to 0.01): within 0.1 mm of their unrounded mean
    assert abs(d["mean_diameter_mm"] - 0.5 * (d["axial_long_axis_mm"] + d["axial_short_axis_mm"])) <= 0.1001, d
    assert d["mean_diameter_mm"] == pytest.approx(18.0, abs=1.2)
    # the tilt warning's axial axes are these
    note = next(w for w in d["warnings"] if "RECIST/Lung-RADS axial axes" in w)
    got = [float(v) for v in re.search(r"axial axes ([\d.]+) x ([\d.]+) mm", note).groups()]
    assert got == pytest.approx([d["axial_long_axis_mm"], d["axial_short_axis_mm"]], abs=0.051), (note, d)
    write_nodule_csv(tmp_path / "n.csv", "s1", nods)
    with open(tmp_path / "n.csv") as f:
        row = next(csv.DictReader(f))
    assert float(row["axial_short_axis_mm"]) == d["axial_short_axis_mm"]
    assert float(row["axial_long_axis_mm"]) == d["axial_long_axis_mm"]
    cell = nodule_rows(nods)[0][2]
    assert f"({d['axial_long_axis_mm']:.1f} x {d['axial_short_axis_mm']:.1f})" in cell, cell
