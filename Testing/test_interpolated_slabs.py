"""Which outline rests on slices the DICOM reader interpolated across a gap (new-user trial 103
F2.1): the gap's warning was on every nodule row alike, while one nodule crossed the
interpolated slices. The slab is checked against the written slice positions (independently of
the reader), on an oblique series, after reorientation, and on a real LIDC slab with the slice
through the readers' nodule left out."""
import csv
import json
import re

import numpy as np
import pytest
from conftest import shared_case
from dicom_series import THRESHOLD, Patient, write_series

from imagio import cli, io
from imagio.interpolated_slabs import crossing_note, gap_slabs
from imagio.volume import as_ras_canonical, unreorient_array


def _oblique_series(folder, drop_at_marker: bool):
    """An oblique series (rows/columns rotated 20 deg about two axes) of a 1.25 mm step with the
    two slices nearest the marker left out when ``drop_at_marker`` (else two slices 30 mm away:
    a 3.75 mm gap, under the 5 mm the reader interpolates across).
    Returns (patient, unit normal LPS, the acquired depths along it)."""
    a, b = np.radians(20), np.radians(12)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rot = rx @ rz
    row, col = rot[:, 0], rot[:, 1]
    n = np.cross(row, col)
    pat = Patient(marker_lps=(8.0, -4.0, 20.0), radius=8.0)
    origin = pat.marker - 30 * row - 30 * col - 40 * n
    depths = origin @ n + 1.25 * np.arange(60)
    k_marker = int(np.argmin(np.abs(depths - pat.marker @ n)))
    k_drop = k_marker if drop_at_marker else k_marker - 24
    keep = [k for k in range(60) if k not in (k_drop, k_drop + 1)]
    write_series(folder, pat, [origin + 1.25 * k * n for k in keep], row=row, col=col, rows=26, cols=26,
                 spacing=(2.5, 2.5))
    return pat, n, depths[keep]


def _marker_mask(vol, pat):
    """The marker's voxels on the read grid: inside its sphere (world distance) and above half way."""
    kji = np.indices(vol.shape).reshape(3, -1).T
    ras = vol.ijk_to_world(kji[:, ::-1].astype(float))
    near = np.linalg.norm(ras - pat.marker_ras, axis=1) < pat.radius
    return (near & (vol.array.reshape(-1) > THRESHOLD)).reshape(vol.shape)


@pytest.mark.parametrize("at_marker", [True, False])
def test_the_outline_that_crosses_a_gap_is_told_and_only_it(tmp_path, at_marker):
    pat, n_lps, acquired = _oblique_series(tmp_path / "s", at_marker)
    vol = io.read_dicom_series(tmp_path / "s")
    assert any("gap" in w for w in vol.warnings), vol.warnings      # the reader interpolated a gap
    slabs = gap_slabs(vol)
    assert len(slabs) == 1
    n_ras, lo, hi = slabs[0]
    # independent: the gap lies between two written slices 7.5 mm apart, along the written normal
    steps = np.diff(acquired)
    k = int(np.argmax(steps))
    assert steps[k] == pytest.approx(3.75, abs=0.01)
    assert (lo, hi) == pytest.approx((acquired[k], acquired[k + 1]), abs=0.01)
    assert n_ras == pytest.approx(n_lps * [-1, -1, 1], abs=1e-5)
    mask = _marker_mask(vol, pat)
    assert mask.sum() > 50
    ras = vol.ijk_to_world(np.argwhere(mask)[:, ::-1].astype(float))
    crosses = bool(np.any(((ras @ n_ras) > lo + 0.1) & ((ras @ n_ras) < hi - 0.1)))
    assert crosses == at_marker   # the set-up: the marker spans the gap only when the gap is at it
    note = crossing_note(vol, mask)
    assert bool(note) == at_marker, note
    if at_marker:
        assert "3.8 mm gap" in note and "interpolated" in note
    # the same answer on the RAS-canonical storage (what detection runs on)
    can, perm, flip = as_ras_canonical(vol)
    from imagio.volume import reorient_array

    assert crossing_note(can, reorient_array(mask, perm, flip)) == note
    assert np.array_equal(unreorient_array(reorient_array(mask, perm, flip), perm, flip), mask)


def test_no_slab_without_a_gap(tmp_path):
    pat = Patient(radius=8.0)
    write_series(tmp_path / "s", pat, [(0.0, 0.0, 5.0 + 2.5 * k) for k in range(12)], rows=24, cols=24)
    vol = io.read_dicom_series(tmp_path / "s")
    assert gap_slabs(vol) == []
    assert crossing_note(vol, np.ones(vol.shape, bool)) == ""


def _lidc_series_without(folder, drop_lps_z: float):
    """The LIDC-IDRI-0001 slab written as an axial DICOM series (one file per slice, its own
    geometry) without the slice nearest ``drop_lps_z`` (LPS z, mm). Returns that slice's z."""
    sitk = pytest.importorskip("SimpleITK")
    from pydicom.uid import generate_uid

    ct = sitk.ReadImage(str(shared_case("lidc-slabs", "LIDC-IDRI-0001_slab.nii.gz")))
    arr = sitk.GetArrayFromImage(ct).astype(np.int16)
    zs = np.array([ct.TransformIndexToPhysicalPoint((0, 0, k))[2] for k in range(arr.shape[0])])
    drop = int(np.argmin(np.abs(zs - drop_lps_z)))
    folder.mkdir()
    series, study, frame = generate_uid(), generate_uid(), generate_uid()
    d = ct.GetDirection()
    w = sitk.ImageFileWriter()
    w.KeepOriginalImageUIDOn()
    for k in range(arr.shape[0]):
        if k == drop:
            continue
        sl = sitk.GetImageFromArray(arr[k:k + 1])
        p = ct.TransformIndexToPhysicalPoint((0, 0, k))
        sl.SetSpacing(ct.GetSpacing())
        sl.SetOrigin(p)
        sl.SetDirection(d)
        for tag, v in {"0008|0060": "CT", "0010|0020": "L1", "0010|0010": "LIDC^1", "0020|000d": study,
                       "0020|000e": series, "0020|0052": frame, "0008|0018": generate_uid(),
                       "0020|0013": str(k + 1), "0020|0032": "\\".join(f"{x:.4f}" for x in p),
                       "0020|0037": "\\".join(f"{x:.6f}" for x in d[0:7:3] + d[1:8:3]),
                       "0028|1052": "0", "0028|1053": "1", "0008|0008": "ORIGINAL\\PRIMARY\\AXIAL",
                       "0008|0016": "1.2.840.10008.5.1.4.1.1.2"}.items():
            sl.SetMetaData(tag, v)
        w.SetFileName(str(folder / f"{k:03d}.dcm"))
        w.Execute(sl)
    return float(zs[drop]), float(np.median(np.diff(zs)))


def test_detect_tells_the_nodule_measured_across_the_missing_slice(tmp_path):
    reads = shared_case("lidc-slabs", "nodule_reads.csv")
    rows = [r for r in csv.DictReader(open(reads)) if r["patient"] == "LIDC-IDRI-0001"]
    centre = np.mean([[float(r[f"centre_lps_{a}"]) for a in "xyz"] for r in rows], axis=0)
    z_drop, step = _lidc_series_without(tmp_path / "dcm", centre[2])
    out = tmp_path / "det"
    assert cli.main(["detect", str(tmp_path / "dcm"), "--out", str(out), "--quiet"]) == 0
    doc = json.loads((out / "candidates.json").read_text())
    assert any("gap" in w for w in doc["input_warnings"]), doc["input_warnings"]
    table = list(csv.DictReader(open(out / "nodules.csv")))
    note = "crosses slices interpolated"
    # the readers' nodule (its row within 5 mm of their centre) crosses the gap and is told
    near = [r for r in table if np.linalg.norm([float(r[f"{a}"]) - c for a, c in zip(("coordX", "coordY", "coordZ"), centre)]) < 5]
    assert near, [(r["coordX"], r["coordY"], r["coordZ"]) for r in table]
    assert all(note in r["warnings"] for r in near)
    # independent: a row whose whole extent (its long axis around its centre) lies a slice away
    # from the gap (the acquired neighbours at z_drop +/- step) cannot cross it, and is not told
    far = [r for r in table if r["long_axis_mm"] and abs(float(r["coordZ"]) - z_drop) > float(r["long_axis_mm"]) / 2 + step]
    assert far and not any(note in r["warnings"] for r in far)



def test_the_one_click_lesion_says_it_was_measured_across_the_gap(tmp_path):
    """`imagio lesion` (the measurement every caller uses) carries the note on the DICOM series
    missing the slice through the nodule, and not on the complete slab."""
    from imagio.segmentation.lesion import segment_lesion

    reads = shared_case("lidc-slabs", "nodule_reads.csv")
    rows = [r for r in csv.DictReader(open(reads)) if r["patient"] == "LIDC-IDRI-0001"]
    centre = np.mean([[float(r[f"centre_lps_{a}"]) for a in "xyz"] for r in rows], axis=0)
    _lidc_series_without(tmp_path / "dcm", centre[2])
    for vol, told in ((io.read_dicom_series(tmp_path / "dcm"), True),
                      (io.read_image(shared_case("lidc-slabs", "LIDC-IDRI-0001_slab.nii.gz")), False)):
        _, meas = segment_lesion(vol, centre * [-1, -1, 1], kind="lung_nodule")
        said = [w for w in meas.warnings if "crosses slices interpolated" in w]
        assert bool(said) == told, meas.warnings


def _gap_said(result, lo, hi, said):
    """Check a plan's gap warnings ``said`` against the slab lo..hi (S, mm) from the plan's own
    geometry; returns how many clearances were said."""
    clear = 0
    for n, m in enumerate(result.proposals, 1):
        mine = [w for w in said if w.startswith(f"proposal {n}: ")]
        assert len(mine) <= 1
        entry_in = lo + 0.06 < m.entry_ras[2] < hi - 0.06
        assert ("its entry" in mine[0] if mine else False) == entry_in, (n, m.entry_ras, mine)
        # each clearance said: its two ends are the clearance's (their distance less half a voxel, the
        # clearances' convention), one of them in the slab, and it is the closest or the binding structure's
        for mm, name, a, b in re.findall(r"its ([\d.]+) mm clearance to (\w+) \(needle \[([^]]+)\], \w+ \[([^]]+)\]\)",
                                         mine[0] if mine else ""):
            a, b = (np.array([float(x) for x in v.split(",")]) for v in (a, b))
            assert name in (m.closest_structure, m.limiting_structure)
            assert np.linalg.norm(a - b) - 1.5 == pytest.approx(float(mm), abs=0.2), (a, b, mm)
            assert any(lo < x[2] < hi for x in (a, b)), (a, b)
            clear += 1
    return clear


def test_a_plan_on_interpolated_slices_says_so():
    """New-user trial 106 MED 2: a plan whose target and best path lay wholly on the slices the
    reader interpolated across a 5 mm gap (LIDC-0001 as DICOM minus one slice; the ribs' 3.8 mm
    clearance measured there) said nothing of it. The phantom's CT (3 mm) is given the reader's
    record of a gap (`meta["read"]["gap_slabs_lps"]`, a 6 mm slab about the target's axial plane):
    the plan's warnings say the target's outline and point, and each proposal whose entry or
    clearance ends lie in it (checked from the plan's own geometry). A slab about proposal 1's
    entry names its entry; one far from the target and the paths, or none, gives no such warning
    (old code: none in any case)."""
    from imagio import phantom
    from imagio.planning.planner import plan
    from imagio.planning.problem import PlanningProblem

    ph = phantom.generate(spacing=3.0, seed=0)
    les = [x for x in ph.lesions if x.kind == "lung_nodule"][0]
    s = float(les.center_ras[2])
    ct = ph.ct
    slab = lambda lo: {"gap_slabs_lps": [{"normal": [0.0, 0.0, 1.0], "depth_mm": [lo, lo + 6.0]}]}   # noqa: E731
    ct.meta = {**ct.meta, "read": slab(s - 3.0)}
    result = plan(PlanningProblem.build(ct, ph.labels, les.name))
    said = [w for w in result.warnings if "interpolated across a 6.0 mm gap" in w]
    tgt = [w for w in said if w.startswith(f"target {les.name}: ")]
    assert any("its outline crosses slices" in w for w in tgt), said
    # trial 107: the point lies on the interpolated slices (was "measured on")
    assert any(re.search(r"the target point \[[^]]+\] lies on slices interpolated across", w)
               and w.endswith("confirm on the acquired slices") for w in tgt), said
    assert result.proposals and _gap_said(result, s - 3.0, s + 3.0, said) > 0
    e = float(result.proposals[0].entry_ras[2])
    result.problem.ct.meta["read"] = slab(e - 3.0)
    said = result._gap_warnings()
    assert any(w.startswith("proposal 1: its entry") for w in said), said
    _gap_said(result, e - 3.0, e + 3.0, said)
    for meta in (slab(s + 300.0), {}):
        result.problem.ct.meta["read"] = meta
        assert result._gap_warnings() == []
    # new-user trial 107 F4: an ablation zone's minimal ablative margin point on slices interpolated
    # across a 4 mm gap is said, as the clearances are (old code: nothing); proposal 1 alone (cheap)
    from imagio.planning.ablation.commands import ablation_for_plan
    from imagio.planning.ablation.criteria import mam_text

    result.proposals = result.proposals[:1]
    abl = ablation_for_plan(result, "emprint", "100W_5min")
    assert not [w for w in abl["warnings"] if "interpolated" in w], abl["warnings"]
    at = abl["single_probe"][0]["coverage"]["mam_ras"]
    result.problem.ct.meta["read"] = {"gap_slabs_lps": [{"normal": [0.0, 0.0, 1.0], "depth_mm": [at[2] - 2.0, at[2] + 2.0]}]}
    abl = ablation_for_plan(result, "emprint", "100W_5min")
    said = [w for w in abl["warnings"] if "interpolated across a 4.0 mm gap" in w]
    assert len(said) == 1 and said[0].startswith("proposal 1 ablation (emprint 100W_5min, one probe): the minimal "
                                                 f"ablative margin ({mam_text(abl['single_probe'][0]['coverage']['mam_mm'])} "
                                                 f"mm) at {[round(x, 1) for x in at]} RAS mm lies on slices"), said
