"""A label map that covers part of the CT, or belongs to another CT, is not used silently
(new-user trial 114 MED: TotalSegmentator's 30-slice map of example_ct_sm, same origin and
spacing, on the 112-slice example_ct was accepted without a word; eligibility and vessels
measured on it).

`io.labels_on_grid` (every command that reads a label map against a CT) now warns once for a
map whose own grid covers only part of the CT (share, slices, RAS mm, the structures its own
edge cuts), and refuses a map most of whose structures of known tissue lie on other tissue
(`label_registration.intensity_disagreement`, input_limits ``label_intensity``). Eligibility
judges a cropped map on the part it covers, its edge read as the image's end (criteria reaching
past it: not checked). Synthetic torso (Testing/synthetic_ct.make_ct) on a 4 mm grid."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from imagio.errors import InputError
from imagio.io import labels_on_grid
from imagio.stratification.ablation_eligibility import assess
from imagio.volume import Volume
from synthetic_ct import make_ct

NAMES = {1: "liver", 2: "lung_left", 3: "lung_right", 4: "ribs", 5: "vertebrae", 6: "liver_vessels",
         7: "liver_tumor_1"}


@pytest.fixture(scope="module")
def case():
    ct, t = make_ct(spacing=(4.0, 4.0, 4.0), noise=5.0)
    lab = np.zeros(ct.shape, np.uint8)
    for v, key in zip(NAMES, ("liver", "lung_left", "lung_right", "ribs", "spine", "vessel", "liver_tumor")):
        lab[t[key]] = v
    return ct, ct.with_array(lab, labels=NAMES)


def _slab(labels: Volume, top_s_mm: float) -> Volume:
    """The label map cropped to the CT's slices at or below S = ``top_s_mm`` (same origin, spacing)."""
    s = labels.kji_to_world(np.c_[np.arange(labels.shape[0]), np.zeros((labels.shape[0], 2))])[:, 2]
    keep = np.flatnonzero(s <= top_s_mm)
    return labels.crop((keep[0], 0, 0), (keep[-1] + 1,) + labels.shape[1:])


def _placed(labels, ct):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return labels_on_grid(labels, ct, "the label map")


def test_full_map_gives_no_new_warning(case):
    ct, labels = case
    same = labels.with_array(labels.array.copy())
    _placed(same, ct)
    assert same.warnings == []
    # on a larger grid holding the whole CT (resampled): covered, no warning either
    big = Volume(np.pad(labels.array, 2), labels.ijk_to_ras @ np.r_[np.c_[np.eye(3), [-2, -2, -2]], [[0, 0, 0, 1]]],
                 labels=NAMES)
    on = _placed(big, ct)
    assert big.warnings == [] and np.array_equal(on.array, labels.array)
    res = assess(ct, labels, "liver_tumor_1")
    pv = {r["criterion"]: r for r in res["reasons"]}["perivascular"]
    assert pv["favourable"] is True, pv   # the vessel lies ~12 mm from the tumour


def test_slab_map_is_warned_and_eligibility_not_checked_past_its_edge(case):
    ct, labels = case
    slab = _slab(labels, -56.0)   # the tumour (S -84..-60) ends a few mm below the map's top
    _placed(slab, ct)
    cover = [w for w in slab.warnings if "covers only" in w]
    # old code: no warning at all (the slab was resampled silently, the rest read as background)
    assert len(cover) == 1, slab.warnings
    assert f"of {ct.shape[0]}" in cover[0] and "unknown, not background" in cover[0], cover[0]
    assert "liver" in cover[0].split("reaching the label map's own edge")[1], cover[0]
    res = assess(ct, slab, "liver_tumor_1")
    pv = {r["criterion"]: r for r in res["reasons"]}["perivascular"]
    # old code: favourable True (no vessel within 5 mm on the labelled part, the rest read as none)
    assert pv["favourable"] is None and "label map ends" in pv["detail"], pv
    assert res["suitable"] is None and "perivascular" in res["not_checked"]


def test_map_of_another_patients_ct_of_the_same_size_is_refused(case):
    ct, labels = case
    other = ct.with_array(np.roll(ct.array, ct.shape[0] // 2, axis=0))   # another torso, same grid
    # old code: returned the map unchanged, no word
    with pytest.raises(InputError, match="does not match this CT") as e:
        labels_on_grid(labels, other, "the label map")
    assert "\n" not in str(e.value) and "give the label map made on this CT" in str(e.value)


def test_slab_placed_on_another_part_of_the_ct_is_refused(case):
    ct, labels = case
    slab = _slab(labels, -20.0)
    moved = Volume(slab.array, slab.ijk_to_ras + np.r_[np.c_[np.zeros((3, 3)), [0, 0, 140]], [[0, 0, 0, 0]]],
                   labels=NAMES)   # the same slab placed 140 mm higher, over the lungs
    with pytest.raises(InputError, match="does not match this CT.*covers only"):
        labels_on_grid(moved, ct, "the label map")


def test_plan_refuses_a_slab_map_around_the_target(case):
    """The planner reads the same placed map: the slab's warning, and no proposal through the part
    it leaves unlabelled (refused: `problem._check_labels_match`, the body within needle reach)."""
    from imagio.planning.problem import PlanningProblem

    ct, labels = case
    slab = _slab(labels, -56.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError, match="covers only .*% of the body within"):
            PlanningProblem.build(ct, slab, "liver_tumor_1")
    assert any("covers only" in w and "unknown, not background" in w for w in slab.warnings), slab.warnings


def test_cli_vessels_and_eligibility_refuse_a_slab_placed_on_another_part_in_one_line(case, tmp_path, capsys):
    """The trial's commands: exit 2, one line naming the mismatch and the coverage (old code: exit 0)."""
    from imagio import io
    from imagio.cli import main

    ct, labels = case
    slab = _slab(labels, -20.0)
    moved = Volume(slab.array, slab.ijk_to_ras + np.r_[np.c_[np.zeros((3, 3)), [0, 0, 140]], [[0, 0, 0, 0]]],
                   labels=NAMES)
    io.write_image(ct, tmp_path / "ct.nii.gz")
    io.write_labels(moved, tmp_path / "seg.nii.gz")
    for argv in (["vessels", str(tmp_path / "ct.nii.gz"), "--organ", str(tmp_path / "seg.nii.gz"),
                  "--organ-labels", "liver", "--out", str(tmp_path / "v.nii.gz"), "--quiet"],
                 ["eligibility", str(tmp_path / "ct.nii.gz"), "--labels", str(tmp_path / "seg.nii.gz"),
                  "--lesion", "liver_tumor_1"]):
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]
        assert len(err) == 1 and "does not match this CT" in err[0] and "covers only" in err[0], err


@pytest.mark.parametrize("cmd", ["vessels", "eligibility"])
def test_a_displaced_map_is_refused_by_vessels_and_eligibility(tmp_path, capsys, cmd):
    """New-user trial 115 M4: `imagio vessels` and `imagio eligibility` took a label map displaced
    12 mm with a warning ("lies 12.0 mm from it"), while `imagio plan` and `imagio bronch` refuse it.
    Now every command reading a label map against the CT runs the same registration check
    (`label_registration.check_map_on_ct`): the synthetic chest's own map, its origin moved 12 mm
    along S, is refused in one line (exit 2); the map where it belongs is not."""
    from imagio import cli, io

    ct, t = make_ct(spacing=(2.0, 2.0, 2.0), noise=12.0)
    src = tmp_path / "ct.nrrd"
    io.write_image(ct, src)
    arr = np.zeros(ct.shape, np.uint8)
    names = {1: "liver", 2: "lung_left", 3: "lung_right", 4: "ribs", 5: "vertebrae", 6: "liver_tumor_1"}
    for v, key in ((1, "liver"), (2, "lung_left"), (3, "lung_right"), (4, "ribs"), (5, "spine")):
        arr[t[key]] = v
    kji = np.moveaxis(np.indices(ct.shape), 0, -1)
    arr[t["liver"] & (np.linalg.norm(kji - np.argwhere(t["liver"]).mean(0), axis=-1) <= 3)] = 6
    for shift, want in ((0.0, 0), (12.0, 2)):
        lab = ct.with_array(arr, labels=names)
        lab.ijk_to_ras = lab.ijk_to_ras.copy()
        lab.ijk_to_ras[2, 3] += shift
        path = tmp_path / f"seg{int(shift)}.seg.nrrd"
        io.write_labels(lab, path)
        args = (["vessels", str(src), "--organ", str(path), "--organ-labels", "liver", "--out",
                 str(tmp_path / f"v{int(shift)}.nii.gz"), "--quiet"] if cmd == "vessels" else
                ["eligibility", str(src), "--labels", str(path), "--lesion", "liver_tumor_1"])
        code = cli.main(args)
        err = capsys.readouterr().err
        assert code == want, (shift, code, err)
        if want:   # the refusal is one line (a warning on one structure's tissue may precede it)
            errors = [x for x in err.splitlines() if x.startswith("imagio: error:")]
            assert len(errors) == 1 and "displaced" in errors[0], err


def test_a_mirrored_liver_only_map_is_said(tmp_path, capsys):
    """New-user trial 116 H2: a map of the liver, its vessels and a tumour (as a Slicer segmentation
    holds them), mirrored left-right, was taken by eligibility without a word: no bone or air to
    register, no left/right pair to judge, and its 'liver' lay on the spleen and stomach. Now the
    liver's side against the patient's midline read from the CT is said (never refused: situs
    inversus). Independent check: the synthetic chest's liver lies right of its body's midline
    (x = 0); the map mirrored along x is warned, the map as it lies is not."""
    from imagio import cli, io

    ct, t = make_ct(spacing=(4.0, 4.0, 4.0), noise=12.0)
    src = tmp_path / "ct.nrrd"
    io.write_image(ct, src)
    arr = np.zeros(ct.shape, np.uint8)
    arr[t["liver"]] = 1
    kji = np.moveaxis(np.indices(ct.shape), 0, -1)
    arr[t["liver"] & (np.linalg.norm(kji - np.argwhere(t["liver"]).mean(0), axis=-1) <= 3)] = 2
    assert ct.kji_to_world(np.argwhere(t["liver"]).mean(0)[None])[0][0] > 20   # right of the midline (RAS +x)
    for mirrored in (False, True):
        a = arr[:, :, ::-1] if mirrored else arr
        path = tmp_path / f"liver{int(mirrored)}.seg.nrrd"
        io.write_labels(ct.with_array(np.ascontiguousarray(a), labels={1: "liver", 2: "liver_tumor_1"}), path)
        code = cli.main(["eligibility", str(src), "--labels", str(path), "--lesion", "liver_tumor_1"])
        err = capsys.readouterr().err
        assert code == 0, err
        assert ("left of the patient's midline" in err) == mirrored, (mirrored, err)


def test_a_map_of_the_same_voxels_off_by_a_fraction_of_one_says_so():
    """New-user trial 116 L9: a map of the CT's voxel size shifted by a non-whole number of voxels was
    said to lie on 'another grid (0.98 x 0.98 x 2.00 mm against 0.98 x 0.98 x 2.00 mm)'. Now the
    warning says the voxels are the same and how far their centres lie off the CT's (independent:
    a 6 mm shift on a 4 mm grid leaves them 2 mm off)."""
    ct, t = make_ct(spacing=(4.0, 4.0, 4.0))
    lab = ct.with_array(t["liver"].astype(np.uint8), labels={1: "liver"}).crop((2, 2, 2), tuple(n - 2 for n in ct.shape))
    lab.ijk_to_ras = lab.ijk_to_ras.copy()
    lab.ijk_to_ras[1, 3] += 6.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels_on_grid(lab, ct)
    said = [w for w in lab.warnings if "another grid" in w]
    assert len(said) == 1 and "the same voxels" in said[0] and "2.0 mm off the CT's" in said[0], said
