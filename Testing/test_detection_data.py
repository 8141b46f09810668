"""Detection on real nodules (../shared/data): each reference nodule is found within its radius
(the LUNA16 hit rule); the rank of the first hit and the false positives per scan are printed
(run with -s), not asserted. References and slabs: :mod:`imagio.detection.references` (full
chests cut to +-40 mm around the nodule to keep the runtime small; the LIDC cases are slabs
already, so the lung mask must cope with a volume that cuts the lungs). lung2 (a 45 mm mass on
the chest wall) and the perihilar mass of Lung-PET-CT-Dx are found by the juxta-pleural channel
(concavities of the lung outline), not by the dot filter."""

import numpy as np
import pytest

from imagio.detection import detect
from imagio.detection.references import real_cases

pytestmark = [pytest.mark.data, pytest.mark.slow]
NAMES = ["LIDC-IDRI-0001", "LIDC-IDRI-0003", "lung1", "lung2", "Lung_Dx-A0001"]


@pytest.fixture(scope="module")
def cases():
    from conftest import SHARED_DATA

    return {c[0]: c for c in real_cases(SHARED_DATA)} if SHARED_DATA.exists() else {}


@pytest.mark.parametrize("name", NAMES)
def test_reference_nodule_found(shared_data, cases, name):
    case = cases.get(name)
    if case is None:
        pytest.skip(f"{name} not in {shared_data}")
    _, ct, centre, diameter = case
    cands = detect(ct)
    d = np.array([np.linalg.norm(c.center_ras - centre) for c in cands])
    hit = d < diameter / 2.0
    rank = int(np.argmax(hit)) + 1 if hit.any() else None
    print(f"\n{name}: {len(cands)} candidates, nearest {d.min() if len(d) else np.nan:.1f} mm "
          f"(radius {diameter / 2:.1f}), first hit at rank {rank}, false positives {int((~hit).sum())}")
    assert hit.any(), (name, d.min() if len(d) else None)


def test_lung2_mass_is_never_characterised_as_a_small_nodule(shared_data, cases):
    """Trial 4's H1: lung2's mass (reference label 48 mL, ~55 mm) was found at rank 1 but cut to
    the detected blob's sphere: 7.8 mm, 0.29 mL, Lung-RADS 2 ("continue annual screening"). Each
    candidate within the reference radius is characterised: Lung-RADS 4B/4X or refused (size
    uncertain), never lower, and a kept outline holds at least half the reference volume."""
    from imagio import io
    from imagio.detection.characterise import characterise_candidates
    from imagio.detection.pipeline import lung_volume

    case = cases.get("lung2")
    if case is None:
        pytest.skip(f"lung2 not in {shared_data}")
    _, ct, centre, diameter = case
    lab = io.read_image(shared_data / "pyradiomics-lung" / "lung2_label.nrrd")
    ref_ml = float((lab.array > 0).sum() * np.prod(lab.spacing)) / 1000.0
    lungs = lung_volume(ct, None)[0]
    hits = [c for c in detect(ct) if np.linalg.norm(c.center_ras - centre) < diameter / 2.0]
    assert hits
    nods, _, _ = characterise_candidates(ct, hits[:2], lungs, patient={"age": 66, "sex": "female",
                                                                        "smoker": True})
    for d in nods:
        lr = d["stratification"]["lung_rads"]
        print(f"\nlung2 hit #{d['id']}: {d.get('volume_ml')} mL (reference {ref_ml:.1f}), "
              f"{d.get('mean_diameter_mm')} mm, Lung-RADS {lr.get('category') or lr.get('refused')}")
        assert lr.get("category") in ("4B", "4X") or ("refused" in lr and lr.get("category_at_least") != "2"), lr
        if d.get("segmented") and not d.get("size_uncertain"):
            assert d["volume_ml"] > 0.5 * ref_ml, (d["volume_ml"], ref_ml)


def test_lung2_mass_is_reported_at_its_outline_centre(shared_data, cases, tmp_path):
    """New-user trial 4 (M2): ``--evaluate`` scored lung2's mass as missed (CPM 0) because
    ``candidates.csv`` held the blob filter's peak, 28.6 mm from the mass centre, while its
    characterised outline was centred 2.9 mm away. The reported centre (csv, evaluation) of a
    candidate lying in the mass is within a quarter of the reference diameter of its centre,
    checked against the CSV itself (LPS)."""
    import csv

    from imagio.detection.pipeline import Options, run_scan

    case = cases.get("lung2")
    if case is None:
        pytest.skip(f"lung2 not in {shared_data}")
    _, ct, centre, diameter = case
    run_scan(ct, "lung2", tmp_path, Options(characterise=3, slicer=False))
    rows = list(csv.DictReader(open(tmp_path / "candidates.csv")))
    ras = np.array([[-float(r["coordX"]), -float(r["coordY"]), float(r["coordZ"])] for r in rows])
    d = np.linalg.norm(ras[:3] - centre, axis=1)
    print(f"\nlung2: reported centres of the top 3 candidates {np.round(d, 1)} mm from the mass centre")
    assert d.min() < diameter / 4.0, d


def test_lung1_no_candidate_in_bone(shared_data):
    # trial 2, finding C: on the whole lung1 scan (5 mm sections) a rib's partial volume at the
    # lung's edge was a candidate ("solid 13 mm, juxta-pleural, Lung-RADS 4A" after
    # characterisation). Independent check: IMAGIO's HU-rule bone segmenter (another module,
    # other thresholds); no candidate may be centred in its bone.
    from imagio import io
    from imagio.segmentation.body import body_mask
    from imagio.segmentation.bones import bone_mask

    path = shared_data / "pyradiomics-lung" / "lung1_image.nrrd"
    if not path.exists():
        pytest.skip(f"{path} missing")
    ct = io.read_image(path)
    bone = bone_mask(ct, body_mask(ct))
    cands = detect(ct)
    kji = np.round(ct.world_to_kji(np.array([c.center_ras for c in cands]))).astype(int)
    kji = np.clip(kji, 0, np.array(ct.shape) - 1)
    in_bone = [c.to_dict() for c, k in zip(cands, kji) if bone[tuple(k)]]
    assert not in_bone, in_bone


def test_lung1_no_candidate_in_the_subcarinal_space(shared_data):
    # the HU-rule lungs hold the trachea and main bronchi; split as one component they gave the
    # left main bronchus to the right lung, whose closing spanned the subcarinal space: a
    # "perifissural" candidate 15 mm below the carina (the CLI's path: the lungs segmented
    # once, then given to the detector). Independent check: the carina from the rule
    # segmentation's airway tree (segmentation.rules, another module); the subcarinal space
    # (IASLC station 7: below the carina, between the main bronchi; Rusch VW et al., J Thorac
    # Oncol 2009;4:568-577) holds no candidate centred within 20 mm of the carina's axis and
    # 25 mm below it.
    from imagio import io
    from imagio.detection.pipeline import lung_volume
    from imagio.segmentation.common import ras_coordinate
    from imagio.segmentation.rules import segment_masks

    path = shared_data / "pyradiomics-lung" / "lung1_image.nrrd"
    if not path.exists():
        pytest.skip(f"{path} missing")
    ct = io.read_image(path)
    masks, _ = segment_masks(ct, ["body", "airways"])
    x, y, z = (ras_coordinate(ct, r) for r in range(3))
    tr = masks["trachea"]
    bottom = tr & (z < z[tr].min() + 1.0)
    carina = np.array([x[bottom].mean(), y[bottom].mean(), z[tr].min()])
    _, lungs = lung_volume(ct, None)
    cands = detect(ct, lung_mask=lungs)
    d = np.array([c.center_ras - carina for c in cands]).reshape(-1, 3)
    sub = (d[:, 2] < 0) & (d[:, 2] > -25.0) & (np.linalg.norm(d[:, :2], axis=1) < 20.0)
    assert not sub.any(), [c.to_dict() for c, s in zip(cands, sub) if s]   # main: rank 3


def test_a_scan_without_a_chest_is_refused(shared_data, tmp_path, capsys):
    """Trial 8: `detect` on a thigh CT (STS_002) reported a 'solid 8.9 mm nodule in the left lung,
    Lung-RADS 3, LDCT in 6 months' in the air at the field of view's corner. Below the few-lung
    limit there is no chest to search: one line, exit 2, nothing written."""
    from imagio import cli

    out = tmp_path / "det"
    code = cli.main(["detect", str(shared_data / "sts-sarcoma" / "STS_002" / "CT_image.nii.gz"), "--out", str(out),
                     "--no-slicer", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no chest in view" in err[0], err
    assert not (out / "candidates.csv").exists()


def test_lung_dx_mass_is_one_candidate_inside_its_boxes(shared_data, cases):
    """Trial 33 H3 (trial 26 H2): the 5 cm perihilar adenocarcinoma of Lung-PET-CT-Dx A0001 came
    out as three rim pieces of the juxta-pleural channel (11-12 mm, one characterised as a
    perifissural nodule with a benign hint) and no candidate of its size. A mass >= 30 mm is one
    candidate (Lung-RADS 4B/4X territory, out of Brock's range: said) whose centre lies inside the
    collection's per-slice boxes. Independent check: the boxes themselves (LPS, each on its
    5 mm slice)."""
    import csv

    case = cases.get("Lung_Dx-A0001")
    if case is None:
        pytest.skip(f"Lung_Dx-A0001 not in {shared_data}")
    _, ct, _, _ = case
    rows = list(csv.DictReader(open(shared_data / "lung-pet-ct-dx" / "Lung_Dx-A0001_boxes.csv")))
    px = float(ct.spacing[0])
    half_z = float(ct.spacing_kji[0]) / 2.0

    def in_boxes(ras):
        x, y, z = -ras[0], -ras[1], ras[2]    # RAS -> LPS
        return any(abs(x - float(r["centre_lps_x"])) <= (float(r["xmax"]) - float(r["xmin"])) / 2 * px
                   and abs(y - float(r["centre_lps_y"])) <= (float(r["ymax"]) - float(r["ymin"])) / 2 * px
                   and abs(z - float(r["centre_lps_z"])) <= half_z for r in rows)

    cands = detect(ct)
    inside = [c for c in cands if in_boxes(c.center_ras)]
    print(f"\nLung_Dx-A0001: candidates inside the boxes: "
          f"{[(c.features.get('channel'), round(c.diameter_mm, 1), round(c.probability, 3)) for c in inside]}")
    assert len(inside) == 1, [(c.features.get("channel"), round(c.diameter_mm, 1)) for c in inside]
    assert inside[0].diameter_mm >= 30.0
    assert any("Brock" in w and "4B/4X" in w for w in inside[0].warnings)
    # new-user trial 77: the mass scored 0.39 (its own 0.25: the lung-side term was 0 on the pleural
    # line, where a mass against the hilum lies), below its rim pieces and the report's table; a
    # solid mass whose centre is on the lung's side takes the dot channel's lung-side term (1),
    # so its score is its contrast term's: the scan's first candidate, in the report's table
    from imagio.detection.blobs import mass_score
    from imagio.detection.report import report_threshold

    f = inside[0].features
    assert f["channel"] == "mass" and f["lung_shell_fraction"] < 0.6   # it touches the hilum
    assert inside[0].probability >= mass_score(f["lung_shell_fraction"], f["contrast_hu"]) > 0.9
    assert cands[0] is inside[0] and inside[0].probability >= report_threshold()


def _oblique_flipped(ct_path, shift_mm: float):
    """Lung-PET-CT-Dx A0001 resampled (linear, fill -1024) on new-user trial 104's grid: axes
    rotated 17 deg about S and 12 deg about R, the first axis reversed (a left-handed grid),
    0.9 x 1.1 x 3.0 mm, its origin moved ``shift_mm`` along the first axis (a sub-voxel shift)."""
    sitk = pytest.importorskip("SimpleITK")

    img = sitk.ReadImage(str(ct_path), sitk.sitkFloat32)
    a, b = np.radians(17.0), np.radians(12.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    d = rz @ rx                                   # columns: the new axes in LPS
    sp = np.array([0.9, 1.1, 3.0])
    size = np.array(img.GetSize())
    corners = np.array([img.TransformContinuousIndexToPhysicalPoint([float(v) for v in c])
                        for c in np.array(np.meshgrid(*[(0, n - 1) for n in size])).reshape(3, -1).T])
    p = corners @ d
    lo, hi = p.min(0), p.max(0)
    n = np.ceil((hi - lo) / sp).astype(int) + 1
    dd = d.copy()
    dd[:, 0] *= -1.0
    ref = sitk.Image([int(v) for v in n], sitk.sitkFloat32)
    ref.SetSpacing(sp.tolist())
    ref.SetDirection(dd.ravel().tolist())
    ref.SetOrigin((d @ np.array([hi[0], lo[1], lo[2]]) - shift_mm * dd[:, 0]).tolist())
    out = sitk.Resample(img, ref, sitk.Transform(), sitk.sitkLinear, -1024.0, sitk.sitkFloat32)
    return sitk.Cast(sitk.Round(out), sitk.sitkInt16)


@pytest.fixture(scope="module")
def oblique_dx_detection(tmp_path_factory):
    """`imagio detect` on Lung-PET-CT-Dx A0001 re-gridded as new-user trial 104 did (17/12 deg,
    first axis reversed, 0.9 x 1.1 x 3 mm): (candidates.json, the boxes' centres LPS (N, 3))."""
    import csv
    import json

    from conftest import SHARED_DATA

    sitk = pytest.importorskip("SimpleITK")
    from imagio import cli

    src = SHARED_DATA / "lung-pet-ct-dx" / "Lung_Dx-A0001_ct.nii.gz"
    if not src.exists():
        pytest.skip("Lung-PET-CT-Dx A0001 is not present")
    tmp = tmp_path_factory.mktemp("obl_dx")
    path = tmp / "obl.nii.gz"
    sitk.WriteImage(_oblique_flipped(src, 0.0), str(path))
    rows = list(csv.DictReader(open(SHARED_DATA / "lung-pet-ct-dx" / "Lung_Dx-A0001_boxes.csv")))
    box_lps = np.array([[float(r[f"centre_lps_{a}"]) for a in "xyz"] for r in rows])
    assert cli.main(["detect", str(path), "--out", str(tmp / "det"), "--no-slicer", "--quiet"]) == 0
    return json.loads((tmp / "det" / "candidates.json").read_text()), box_lps


def _near_boxes(ras, box_lps, mm: float = 15.0) -> bool:
    """Whether the RAS point lies within ``mm`` of one of the boxes' centres (the boxes' centres
    run along the 5 cm mass every 5 mm slice; 15 mm is well inside its 25 mm radius)."""
    return float(np.min(np.linalg.norm(box_lps - np.asarray(ras, float) * [-1, -1, 1], axis=1))) < mm


def test_an_undecided_mass_on_an_oblique_regrid_is_said(oblique_dx_detection):
    """New-user trial 104 (HIGH): on the oblique re-grid the mass channel reads 0.499 of the shell
    around the 5 cm mass as lung against its keep limit of one half (0.53 on the original grid),
    and the mass was dropped without a word. Until the channel can tell such a mass from a great
    vessel the lung wraps (below), the ball is named in the scan's warnings."""
    import re

    doc, box_lps = oblique_dx_detection
    said = [w for w in doc["warnings"] if "is centred at the pleura" in w]
    found = [c for c in doc["candidates"]
             if _near_boxes(c["reported_center_ras"], box_lps) and c["diameter_mm"] >= 30.0]
    assert found or any(_near_boxes([float(x) for x in re.search(r"RAS \[([^\]]+)\]", w).group(1).split(",")],
                                    box_lps) for w in said), (said, doc["warnings"][:6])


def test_lung_dx_mass_found_on_an_oblique_flipped_regrid(oblique_dx_detection):
    """New-user trial 104 (HIGH): the 5 cm mass is a candidate of its size on the re-grid (its
    ball reads 0.46-0.49 of its shell as lung, under the keep limit by less than the coarse grid
    can hide, and its tissue ends along S as a mass's does, blobs._continues_as_tube), and the
    scan is 4B/4X. Independent check: the collection's per-slice boxes (LPS)."""
    doc, box_lps = oblique_dx_detection
    near = [c for c in doc["candidates"]
            if _near_boxes(c["reported_center_ras"], box_lps) and c["diameter_mm"] >= 30.0]
    assert near, [(c["diameter_mm"], c["probability"], c["reported_center_ras"]) for c in doc["candidates"][:5]]
    assert doc["scan_lung_rads"]["highest_lung_rads"] in ("4B", "4X"), doc["scan_lung_rads"]
