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


def _chest(pool_hu: float, direction=None):
    """Soft-tissue body (40 HU, noise 12 HU) with a lung box (-850 HU) holding a 7 mm ball of
    600 HU and a 10 mm solid ball, and beside the lung a 26 mm tube ("aorta", 110 mm long along S)
    of ``pool_hu``; grid 0.9 x 0.8 x 1.5 mm along (i, j, k), ``direction`` its axes."""
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


def test_on_a_contrast_ct_a_calcified_candidate_gets_no_benign_reading():
    ct, lung, calc, solid = _chest(420.0)
    cands = [Candidate(center_ras=np.asarray(p, float), diameter_mm=dd, volume_ml=0.0, type="unknown",
                       probability=0.9) for p, dd in ((calc, 7.0), (solid, 10.0))]
    patient = {"age": 64, "sex": "male", "smoker": True}
    plain, _, _ = characterise_candidates(ct, cands, lung, patient=patient)
    enh, _, _ = characterise_candidates(ct, cands, lung, patient=patient, contrast_ct=True)

    def by_type(nods):
        return {n["type"]: n for n in nods}
    plain, enh = by_type(plain), by_type(enh)
    assert set(plain) == set(enh) == {"calcified", "solid"}
    # without the contrast: Lung-RADS 1, benign pattern (as before)
    assert plain["calcified"]["stratification"]["lung_rads"]["category"] == "1"
    assert "benign pattern" in plain["calcified"]["stratification"]["brock"]["refused"]
    # on the contrast CT: no category, no floor, the reason names the contrast; Brock and Mayo say it too
    lr = enh["calcified"]["stratification"]["lung_rads"]
    assert lr.get("category") is None and lr.get("category_at_least") is None
    assert lr["no_category"] == "calcium_or_contrast" and "contrast" in lr["refused"]
    for m in ("brock", "mayo"):
        r = enh["calcified"]["stratification"][m]["refused"]
        assert "contrast-filled vessel" in r and "benign pattern" not in r, (m, r)
    # the solid nodule is read alike on both
    assert enh["solid"]["stratification"]["lung_rads"]["category"] == \
        plain["solid"]["stratification"]["lung_rads"]["category"]
    assert enh["solid"]["contrast_ct"] and "contrast_ct" not in plain["solid"]


def test_the_review_list_names_calcium_or_contrast():
    from imagio.detection.report import review_no_category, _review_text

    d = {"id": 9, "type": "calcified", "mean_diameter_mm": 10.1, "contrast_ct": True}
    d["stratification"] = {"lung_rads": screening.lung_rads(d)}
    assert d["stratification"]["lung_rads"]["no_category"] in screening.NO_CATEGORY
    assert review_no_category([d]) == [d]
    assert _review_text(d) == "#9 calcium or contrast (contrast CT)"


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
