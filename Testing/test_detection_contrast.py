"""New-user trial 90 M: `imagio detect` on a contrast-enhanced CT (the chest CTA) typed a 584 HU
lung-vessel dot a part-solid nodule and a contrast-filled hilar pulmonary artery a 10 mm
calcified nodule (Lung-RADS 1, a benign reading) and said nothing of the contrast. Calcium and
iodinated contrast share their density: on such a scan the detector says the CT is
contrast-enhanced, and a candidate typed calcified gets no Lung-RADS category and no benign
refusal reason from Brock or Mayo."""

import numpy as np
import pytest

from imagio.detection import Candidate
from imagio.detection.characterise import characterise_candidates
from imagio.detection.pipeline import contrast_warning
from imagio.stratification import screening
from imagio.volume import Volume, make_ijk_to_ras


def _chest(pool_hu: float, direction=None, cored: bool = False, core_hu: float = 600.0):
    """Soft-tissue body (40 HU, noise 12 HU) with a lung box (-850 HU) holding a 7 mm ball of
    600 HU and a 10 mm solid ball (``cored``: and a 10 mm solid ball with a 3.6 mm core of ``core_hu``,
    its centre returned last), and beside the lung a 26 mm tube ("aorta", 110 mm long along S) of ``pool_hu``;
    grid 0.9 x 0.8 x 1.5 mm along (i, j, k), ``direction`` its axes."""
    aff = make_ijk_to_ras((0.9, 0.8, 1.5), (0, 0, 0), np.eye(3) if direction is None else direction)
    vol = Volume(np.zeros((80, 110, 150), np.float32), aff)
    kji = np.indices(vol.shape).reshape(3, -1).T
    w = vol.kji_to_world(kji).reshape(*vol.shape, 3)
    c = vol.kji_to_world(np.array([[40, 55, 75]]))[0]
    rel = w - c
    d = vol.direction
    lu, lv, lz = rel @ d[:, 0], rel @ d[:, 1], rel @ d[:, 2]   # along i, j, k in mm
    body = (np.abs(lu) < 64) & (np.abs(lv) < 42)
    lung = (lu > -10) & (lu < 55) & (np.abs(lv) < 34) & (np.abs(lz) < 50)
    rng = np.random.default_rng(3)
    a = np.where(lung, -850.0, np.where(body, 40.0, -1000.0)) + rng.normal(0, 12, vol.shape)
    tube = ((lu + 35) ** 2 + lv ** 2 <= 13.0 ** 2) & (np.abs(lz) < 55)
    a[tube] = pool_hu + rng.normal(0, 12, int(tube.sum()))
    calc = c + 25 * d[:, 0] - 12 * d[:, 1]
    solid = c + 25 * d[:, 0] + 12 * d[:, 1]
    a[np.linalg.norm(w - calc, axis=-1) <= 3.5] = 600.0
    a[np.linalg.norm(w - solid, axis=-1) <= 5.0] = 30.0
    if cored:   # a 10 mm solid ball whose 3.6 mm core is 600 HU (a contrast-filled vessel section or calcium)
        at = c + 10 * d[:, 0] + 25 * d[:, 2]
        r = np.linalg.norm(w - at, axis=-1)
        a[r <= 5.0] = 30.0
        a[r <= 1.8] = core_hu
        return vol.with_array(a.astype(np.int16)), lung, calc, solid, at
    return vol.with_array(a.astype(np.int16)), lung, calc, solid


@pytest.mark.parametrize("flip", [False, True])
def test_a_contrast_blood_pool_is_said_and_a_plain_one_is_not(flip):
    from conftest import rotation

    d = rotation((1, 2, 3), 20.0) @ (np.diag([-1.0, 1.0, -1.0]) if flip else np.eye(3))
    ct, *_ = _chest(420.0, d)
    w = contrast_warning(ct)
    assert w and w.startswith("contrast-enhanced CT") and "calcium cannot be told" in w, w
    # the pool's band, read back from the words, brackets the tube's density
    lo, hi = (float(x) for x in w.split("blood pool of ")[1].split(" HU")[0].split("-"))
    assert lo <= 420.0 <= hi
    plain, *_ = _chest(45.0, d)   # unenhanced blood: no pool, no word
    assert contrast_warning(plain) is None


@pytest.mark.parametrize("flip", [False, True])
def test_on_a_contrast_ct_a_dense_candidate_gets_no_type_category_or_risk(flip, tmp_path):
    """New-user trial 91 M2: on the chest CTA a 584 HU lung-vessel dot kept its type by density
    (part-solid) and Lung-RADS 2; a calcified one kept the word "calcified". On a contrast CT an
    outline holding calcium-or-contrast density (>= type_hu.calcified_min) is typed
    dense_calcium_or_contrast whatever its density alone reads, with no category, no floor, no
    Brock, no Mayo, the reason code in the CSV note and the Slicer label. On the same CT read as
    non-contrast nothing changes: the cored ball is solid with its category."""
    import json

    from conftest import rotation

    from imagio.detection import constants
    from imagio.detection.outputs import NODULE_FIELDS, nodule_rows, write_slicer
    from imagio.segmentation.blood_pool import contrast_pool_band
    from imagio.stratification.screening import DENSE_TYPE

    d = rotation((2, -1, 3), 25.0) @ (np.diag([1.0, -1.0, -1.0]) if flip else np.eye(3))
    ct, lung, calc, solid, cored = _chest(420.0, d, cored=True)
    cands = [Candidate(center_ras=np.asarray(p, float), diameter_mm=dd, volume_ml=0.0, type="unknown",
                       probability=pr) for p, dd, pr in ((calc, 7.0, 0.9), (solid, 10.0, 0.8), (cored, 10.0, 0.7))]
    patient = {"age": 64, "sex": "male", "smoker": True}
    band = contrast_pool_band(ct)
    assert band is not None and band[0] < 600.0
    plain, _, _ = characterise_candidates(ct, cands, lung, patient=patient)
    enh, masks, _ = characterise_candidates(ct, cands, lung, patient=patient, contrast_ct=True, contrast_band=band)
    by_id = {n["candidate"]["probability"]: n for n in plain}
    eid = {n["candidate"]["probability"]: n for n in enh}
    # the cored ball: its density alone reads solid (median soft tissue), as it did on the plain CT
    assert by_id[0.7]["type"] == "solid" and by_id[0.7]["stratification"]["lung_rads"].get("category")
    assert by_id[0.9]["type"] == "calcified" and by_id[0.9]["stratification"]["lung_rads"]["category"] == "1"
    hu_min = constants()["type_hu"]["calcified_min"]
    for p in (0.9, 0.7):   # the calcified ball and the cored ball, on the contrast CT
        n = eid[p]
        m = masks[enh.index(n)]
        assert (ct.array[m] >= hu_min).any()   # the outline holds dense voxels (independent check)
        assert n["type"] == DENSE_TYPE, n["type"]
        lr = n["stratification"]["lung_rads"]
        assert lr.get("category") is None and lr.get("category_at_least") is None and not lr.get("if_other_type")
        assert lr["no_category"] == "calcium_or_contrast" and "contrast" in lr["refused"]
        for mdl in ("brock", "mayo"):
            r = n["stratification"][mdl]["refused"]
            assert "contrast-filled vessel" in r and "benign pattern" not in r, (mdl, r)
        assert any("calcium_or_contrast" in w and "not typed" in w for w in n["warnings"]), n["warnings"]
    assert "not typed (its density alone reads solid)" in " ".join(eid[0.7]["warnings"])
    # the solid ball holds no dense voxel: read alike on both
    assert eid[0.8]["type"] == "solid" and eid[0.8]["stratification"]["lung_rads"]["category"] == \
        by_id[0.8]["stratification"]["lung_rads"]["category"]
    # what the user sees: the CSV's type and note, the Slicer label
    rows = {r[NODULE_FIELDS.index("id")]: dict(zip(NODULE_FIELDS, r)) for r in nodule_rows("s", enh)}
    row = rows[eid[0.7]["id"]]
    assert row["type"] == DENSE_TYPE and row["lung_rads"] in ("", "-") and "calcium_or_contrast" in row["lung_rads_note"]
    write_slicer(tmp_path, ct, enh, masks)
    labels = [p["label"] for p in json.loads((tmp_path / "nodules.mrk.json").read_text())["markups"][0]["controlPoints"]]
    assert f"N{eid[0.7]['id']} {DENSE_TYPE} LR-" in labels and not any("calcified" in x for x in labels), labels


def test_a_core_denser_than_calcium_but_below_the_blood_pool_keeps_its_type():
    """A solid nodule enhances by tens of HU and the scan's noise adds to it: on LIDC-IDRI-0001
    (contrast CT, pool from 345 HU) the 25 mm nodule rated malignant holds 28 voxels of 200-253 HU.
    Such voxels, above the calcium threshold but below the scan's own contrast blood pool, do not
    refuse the nodule's category: a 280 HU core in a 10 mm solid ball on a CT whose pool reads
    from about 360 HU stays solid with the category of the plain reading."""
    from imagio.segmentation.blood_pool import contrast_pool_band

    ct, lung, calc, solid, cored = _chest(420.0, cored=True, core_hu=280.0)
    band = contrast_pool_band(ct)
    assert band is not None and band[0] > 280.0
    cands = [Candidate(center_ras=np.asarray(cored, float), diameter_mm=10.0, volume_ml=0.0, type="unknown",
                       probability=0.7)]
    plain, _, _ = characterise_candidates(ct, cands, lung)
    enh, masks, _ = characterise_candidates(ct, cands, lung, contrast_ct=True, contrast_band=band)
    assert (ct.array[masks[0]] >= 200).any()   # it does hold voxels above the calcium threshold
    assert enh[0]["type"] == plain[0]["type"] == "solid"
    assert enh[0]["stratification"]["lung_rads"]["category"] == plain[0]["stratification"]["lung_rads"]["category"]


def test_the_review_list_names_calcium_or_contrast():
    from imagio.detection.report import review_no_category, _review_text

    d = {"id": 9, "type": "calcified", "mean_diameter_mm": 10.1, "contrast_ct": True}
    d["stratification"] = {"lung_rads": screening.lung_rads(d)}
    assert d["stratification"]["lung_rads"]["no_category"] in screening.NO_CATEGORY
    assert review_no_category([d]) == [d]
    assert _review_text(d) == "#9 calcium or contrast (contrast CT)"


def test_a_dense_type_has_one_display_name_and_the_review_list_names_contrast():
    """Trial 93 F5: the report spelt the type three ways (table "dense (calcium or contrast)",
    picture title "dense-calcium-or-contrast", files dense_calcium_or_contrast) and its review list
    called a low-probability dense candidate on a contrast CT "a calcified nodule ... or bone",
    with no contrast-filled vessel. The table and the picture say the type alike; the files keep
    its code; the review list names the contrast-filled vessel, not bone."""
    from imagio.detection.report import management_lines, nodule_rows, picture_title
    from imagio.stratification.screening import DENSE_TYPE

    d = {"id": 9, "type": DENSE_TYPE, "mean_diameter_mm": 6.0, "long_axis_mm": 7.0, "axial_long_axis_mm": 7.0,
         "contrast_ct": True, "candidate": {"probability": 0.05, "center_ras": [1.0, 2.0, 3.0]}}
    d["stratification"] = screening.stratify(d, {"age": 64, "sex": "male"})
    assert d["stratification"]["lung_rads"]["no_category"] == "calcium_or_contrast"
    shown = nodule_rows([d])[0][1]
    assert shown in picture_title(d) and "dense-calcium" not in picture_title(d)
    review = dict(management_lines([], [d])).get("review: no category", "")
    assert "#9" in review and "contrast-filled vessel" in review and "bone" not in review, review


@pytest.mark.data
def test_real_scans_chest_cta_is_contrast_lung1_is_not(shared_data):
    from imagio import io

    cta = io.read_image(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz")
    assert contrast_warning(cta)
    lung1 = io.read_image(shared_data / "pyradiomics-lung" / "lung1_image.nrrd")
    assert contrast_warning(lung1) is None


def test_mayo_names_only_what_is_missing_and_detect_takes_no_smoker():
    """New-user trial 90 L: with --age given, Mayo's refusal said "patient age and smoking history
    are needed"; `imagio detect --no-smoker` (as `imagio risk` spells it) was refused by argparse."""
    from imagio.cli import build_parser
    from imagio.stratification.screening import stratify

    solid8 = {"type": "solid", "long_axis_mm": 9.5, "axial_long_axis_mm": 9.0, "mean_diameter_mm": 8.2,
              "solid_component_mm": 9.0}
    r = stratify(solid8, {"age": 60, "sex": "female"})["mayo"]["refused"]
    assert "smoking history" in r and "age" not in r, r
    r = stratify(solid8, {"smoker": True})["mayo"]["refused"]
    assert "age" in r and "smoking" not in r, r
    r = stratify(solid8, {})["mayo"]["refused"]
    assert "age" in r and "smoking history" in r and " are needed" in r, r
    args = build_parser().parse_args(["detect", "ct.nii.gz", "--out", "o", "--no-smoker"])
    assert args.never_smoker and not args.smoker


@pytest.mark.parametrize("flip", [False, True])
def test_a_vessel_crossing_a_nodules_edge_keeps_its_category(flip):
    """New-user trial 93 F1: a 4 mm contrast-filled vessel (420 HU) crossing the rim of LIDC-IDRI-0001's
    24.6 mm solid nodule made it dense_calcium_or_contrast: its Lung-RADS 4B, Brock and Mayo were
    gone. Dense voxels only in the outline's outer part (a vessel crossing, eccentric calcification:
    no benign pattern) leave the nodule typed by the rest and its category kept, warned; a dense
    core (the cored ball) still refuses. Independent check: the dense voxels' distance from the
    ball's centre, from the geometry."""
    from conftest import rotation

    from imagio.segmentation.blood_pool import contrast_pool_band
    from imagio.stratification.screening import DENSE_TYPE

    d = rotation((1, 3, -2), 15.0) @ (np.diag([-1.0, 1.0, -1.0]) if flip else np.eye(3))
    ct, lung, calc, solid, cored = _chest(420.0, d, cored=True)
    a = ct.array.copy()
    kji = np.indices(ct.shape).reshape(3, -1).T
    w = ct.kji_to_world(kji).reshape(*ct.shape, 3)
    rel = w - solid                                   # the 10 mm solid ball (radius 5 mm)
    ax = ct.direction[:, 2]                           # a vessel along k, 4.4 mm off the ball's centre
    off = rel - (rel @ ax)[..., None] * ax - 4.4 * ct.direction[:, 0]
    vessel = (np.linalg.norm(off, axis=-1) <= 1.0) & (np.abs(rel @ ax) <= 9.0)
    a[vessel] = 420
    ct = ct.with_array(a)
    band = contrast_pool_band(ct)
    cands = [Candidate(center_ras=np.asarray(p, float), diameter_mm=10.0, volume_ml=0.0, type="unknown",
                       probability=pr) for p, pr in ((solid, 0.8), (cored, 0.7))]
    plain, _, _ = characterise_candidates(ct, cands, lung)
    enh, masks, _ = characterise_candidates(ct, cands, lung, contrast_ct=True, contrast_band=band)
    eid = {n["candidate"]["probability"]: n for n in enh}
    pid = {n["candidate"]["probability"]: n for n in plain}
    m = masks[enh.index(eid[0.8])]
    dense = m & (ct.array >= max(200.0, band[0]))
    assert dense.any()                                # the outline holds the vessel's dense voxels ...
    r = np.linalg.norm(w[dense] - solid, axis=-1)
    assert r.min() >= 3.0                             # ... all outside the inner half of the 5 mm radius
    n = eid[0.8]
    assert n["type"] == pid[0.8]["type"] == "solid", n["type"]
    assert n["stratification"]["lung_rads"].get("category") == pid[0.8]["stratification"]["lung_rads"]["category"]
    assert any("none in its central part" in x for x in n["warnings"]), n["warnings"]
    assert eid[0.7]["type"] == DENSE_TYPE             # the dense core still refuses


def test_on_a_contrast_ct_no_candidate_is_listed_calcified():
    """New-user trial 93 F5: candidates.json's candidate list kept the detector's density type
    "calcified" for the chest CTA's 584 HU vessel dot while its nodule row said
    dense_calcium_or_contrast. On a contrast CT the detector's list says the one type word too; on
    the same CT read without contrast the 600 HU ball is listed calcified."""
    from imagio.detection.pipeline import Options, scan_findings
    from imagio.stratification.screening import DENSE_TYPE

    ct, lung, calc, solid = _chest(420.0)
    plain, *_ = _chest(45.0)
    got = scan_findings(ct, Options(characterise=0), lungs=ct.with_array(lung.astype(np.uint8)))
    ref = scan_findings(plain, Options(characterise=0), lungs=plain.with_array(lung.astype(np.uint8)))

    def near_calc(cands):   # the candidates within 4 mm of the 7 mm 600 HU ball (independent position)
        return [c for c in cands if np.linalg.norm(np.asarray(c.center_ras) - calc) <= 4.0]

    assert near_calc(ref["cands"]) and all(c.type == "calcified" for c in near_calc(ref["cands"]))
    assert near_calc(got["cands"]) and all(c.type == DENSE_TYPE for c in near_calc(got["cands"]))
    assert not any(c.type == "calcified" for c in got["cands"])
