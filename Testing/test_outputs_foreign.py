"""A file the user made in an output folder is never replaced (new-user trial 25, H2: a sarcoma
plan replaced the user's report.pdf, a needle plan their plan.png, bronch their bronch.json,
report their PDF, without --force and without a word). Every file IMAGIO writes is recorded with
its SHA-256 in the folder's manifest; only a listed, unchanged file may be replaced."""

import hashlib
import json

import pytest

from imagio import io
from imagio.cli import main
from imagio.errors import InputError
from imagio.outputs import MANIFEST, earlier_output, write_text
from imagio.planning.synthetic import synthetic_torso


def test_write_text_replaces_its_own_output_never_a_users_file(tmp_path):
    mine = write_text(tmp_path / "a.json", "{}")
    listed = json.loads((tmp_path / MANIFEST).read_text())["files"]["a.json"]
    assert listed["sha256"] == hashlib.sha256(b"{}").hexdigest()   # own hash of the bytes
    write_text(mine, '{"b": 1}')                       # an earlier output: replaced
    assert mine.read_text() == '{"b": 1}' and earlier_output(mine)
    mine.write_text("edited by the user")              # changed since: not IMAGIO's any more
    with pytest.raises(InputError, match="refusing to replace"):
        write_text(mine, "{}")
    assert mine.read_text() == "edited by the user"
    (tmp_path / "user.txt").write_text("mine")
    with pytest.raises(InputError, match="not an earlier output"):
        write_text(tmp_path / "user.txt", "x")
    assert (tmp_path / "user.txt").read_text() == "mine"


def test_plan_refuses_to_replace_the_users_picture_and_scene(tmp_path, capsys):
    ct, lab = synthetic_torso(3.0)
    io.write_image(ct, tmp_path / "ct.nii.gz")
    io.write_labels(lab, tmp_path / "labels.seg.nrrd")
    out = tmp_path / "out"
    out.mkdir()
    (out / "plan.png").write_bytes(b"the user's picture")
    common = ["plan", str(tmp_path / "ct.nii.gz"), "--labels", str(tmp_path / "labels.seg.nrrd"), "--out", str(out),
              "--quiet"]
    args = common + ["--target", "liver_tumor"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refusing to replace" in err[0] and "plan.png" in err[0]
    assert (out / "plan.png").read_bytes() == b"the user's picture"
    # its own earlier outputs are replaced with --force; the user's picture moved away first
    (out / "plan.png").unlink()
    assert main(args + ["--force", "--no-png"]) == 0 and main(args + ["--force", "--no-png"]) == 0
    capsys.readouterr()
    (out / "scene" / "plan.mrml").write_text("the user's scene")
    before = (out / "plan.json").read_bytes()
    assert main(common + ["--force", "--no-png", "--target", "55,10,0"]) == 2
    assert (out / "scene" / "plan.mrml").read_text() == "the user's scene"
    assert (out / "plan.json").read_bytes() == before   # refused before anything was written (trial 27)


def test_a_users_file_in_scene_is_named_as_such(tmp_path, capsys):
    """New-user trial 30 (L1): any file of the user's in out/scene/ (a note, a screenshot: names
    IMAGIO never writes) blocks `plan --force`, rightly (the scene's file names are known only
    after the run), but the message said "refusing to replace" it. Now the one line says that the
    folder holds a file IMAGIO did not write and what to do; nothing is written."""
    ct, lab = synthetic_torso(3.0)
    io.write_image(ct, tmp_path / "ct.nii.gz")
    io.write_labels(lab, tmp_path / "labels.seg.nrrd")
    out = tmp_path / "out"
    (out / "scene").mkdir(parents=True)
    (out / "scene" / "my notes.txt").write_text("the user's notes")
    assert main(["plan", str(tmp_path / "ct.nii.gz"), "--labels", str(tmp_path / "labels.seg.nrrd"), "--target",
                 "liver_tumor", "--out", str(out), "--quiet", "--force", "--no-png"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refusing to replace" not in err[0], err
    assert f"{out / 'scene'} holds my notes.txt, a file IMAGIO did not write" in err[0], err
    assert "move that file out of" in err[0] and "--out" in err[0], err
    assert sorted(p.name for p in out.rglob("*")) == ["my notes.txt", "scene"]


def test_detection_tables_and_pictures_are_recorded_outputs(tmp_path):
    """New-user trial 27 (H1): detect wrote nodules.csv, candidates.csv/json and its pictures
    with plain open()/savefig, unrecorded, over a user's files. They go through atomic_path."""
    from imagio.detection.outputs import write_nodule_csv

    (tmp_path / "nodules.csv").write_text("the user's table")
    with pytest.raises(InputError, match="refusing to replace"):
        write_nodule_csv(tmp_path / "nodules.csv", "s1", [])
    assert (tmp_path / "nodules.csv").read_text() == "the user's table"
    write_nodule_csv(tmp_path / "n2.csv", "s1", [])
    assert earlier_output(tmp_path / "n2.csv")


def test_detect_refuses_a_users_file_before_any_work(tmp_path, capsys):
    """A user's nodules.csv (or froc.png with --evaluate) in detect's output folder was refused
    only when detect came to write it, after the whole detection, with candidates.csv already
    written beside it (and froc.png was written over, unrecorded). Now refused first: one line,
    exit 2, the folder as it was."""
    from imagio import phantom

    ph = phantom.generate(spacing=3.0, seed=0)
    ctp = io.write_image(ph.ct, tmp_path / "ph.nii.gz")
    out = tmp_path / "det"
    out.mkdir()
    (out / "nodules.csv").write_text("the user's table")
    for extra in ([], ["--force"]):
        assert main(["detect", str(ctp), "--out", str(out), "--quiet"] + extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "refusing to replace" in err[0] and "nodules.csv" in err[0], err
        assert sorted(p.name for p in out.iterdir()) == ["nodules.csv"]   # candidates.csv not written
        assert (out / "nodules.csv").read_text() == "the user's table"
    (out / "nodules.csv").unlink()
    (out / "froc.png").write_bytes(b"the user's curve")
    ref = tmp_path / "ref.csv"
    ref.write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\nph,0,0,0,5\n")
    assert main(["detect", str(ctp), "--out", str(out), "--evaluate", str(ref), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "froc.png" in err[0], err
    assert sorted(p.name for p in out.iterdir()) == ["froc.png"]
    assert (out / "froc.png").read_bytes() == b"the user's curve"


def _scene_data_files(mrml):
    import xml.etree.ElementTree as ET

    return {e.get("fileName") for e in ET.parse(mrml).getroot().iter() if e.get("fileName")}


def _torso_plan(tmp_path, out) -> list:
    """``imagio plan`` arguments (a list) on the synthetic torso written in ``tmp_path``, target
    liver_tumor, --out ``out``, quiet."""
    ct, lab = synthetic_torso(3.0)
    io.write_image(ct, tmp_path / "ct.nii.gz")
    io.write_labels(lab, tmp_path / "labels.seg.nrrd")
    return ["plan", str(tmp_path / "ct.nii.gz"), "--labels", str(tmp_path / "labels.seg.nrrd"), "--target",
            "liver_tumor", "--out", str(out), "--quiet"]


def test_plan_force_rerun_leaves_no_stale_scene_files(tmp_path, capsys):
    """The proposals' markups are named after their scores: each --force re-run with other
    proposals left the earlier run's files in scene/ beside the new ones (Slicer users saw them
    in the folder, and a --force run then refused nothing of them). The earlier scene's files that
    the new scene does not use are removed when they are IMAGIO's recorded, unchanged outputs."""
    out = tmp_path / "out"
    args = _torso_plan(tmp_path, out) + ["--no-png"]
    assert main(args + ["--proposals", "6"]) == 0
    scene = out / "scene"
    assert len([p for p in scene.iterdir() if p.name.startswith("Proposal_")]) == 6
    assert main(args + ["--force", "--proposals", "2"]) == 0
    now = {p.name for p in scene.iterdir()} - {MANIFEST}
    assert len([n for n in now if n.startswith("Proposal_")]) == 2, sorted(now)   # was 6: 4 stale
    used = {n for n in _scene_data_files(scene / "plan.mrml") if (scene / n).parent == scene}
    assert now == used | {"plan.mrml"}, sorted(now - used)
    listed = json.loads((scene / MANIFEST).read_text())["files"]
    assert set(listed) == now


def test_remove_earlier_output_never_removes_a_users_file(tmp_path):
    from imagio.outputs import remove_earlier_output

    mine = write_text(tmp_path / "a.json", "{}")
    (tmp_path / "user.json").write_text("{}")
    changed = write_text(tmp_path / "b.json", "{}")
    changed.write_text('{"edited": 1}')
    assert not remove_earlier_output(tmp_path / "user.json") and (tmp_path / "user.json").exists()
    assert not remove_earlier_output(changed) and changed.exists()
    assert remove_earlier_output(mine) and not mine.exists()
    assert "a.json" not in json.loads((tmp_path / MANIFEST).read_text())["files"]


def test_cohort_tables_are_recorded_and_a_users_table_refused_first(tmp_path, capsys):
    """The cohort tables (cohort_cases.csv, the cases' tables concatenated) and each case's
    done.json / structures.csv were written with plain open(): unrecorded, over a user's file of
    that name, after the whole cohort. Now through atomic_path, and a user's table is refused
    before any case runs."""
    ct, _ = synthetic_torso(3.0)
    src = tmp_path / "scans"
    src.mkdir()
    io.write_image(ct, src / "a.nii.gz")
    out = tmp_path / "cohort"
    out.mkdir()
    (out / "cohort_cases.csv").write_text("the user's table")
    argv = ["segment", str(src), "--out", str(out), "--structures", "body", "--workers", "0", "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refusing to replace" in err[0] and "cohort_cases.csv" in err[0], err
    assert sorted(p.name for p in out.iterdir()) == ["cohort_cases.csv"]
    assert (out / "cohort_cases.csv").read_text() == "the user's table"
    (out / "cohort_cases.csv").unlink()
    for _ in range(2):   # written, then rebuilt over its own recorded tables
        assert main(argv) == 0
        capsys.readouterr()
        for f in (out / "cohort_cases.csv", out / "cohort_structures.csv", out / "cases" / "a" / "done.json",
                  out / "cases" / "a" / "structures.csv"):
            assert earlier_output(f), f


def test_sarcoma_plan_and_bronch_refuse_a_users_file_before_writing_anything(tmp_path, capsys):
    """New-user trial 28 (M3): the sarcoma plan and bronch refused a user's file only after
    writing their other outputs (an exit-2 sarcoma run left a complete-looking plan.json, the
    viable map and pictures). Both now check every file they may write before any work."""
    assert main(["phantom", str(tmp_path / "in"), "--anatomy", "thigh", "--spacing", "3", "--seed", "0"]) == 0
    capsys.readouterr()
    ct, lab = tmp_path / "in" / "ct.nii.gz", tmp_path / "in" / "labels.nii.gz"
    out = tmp_path / "sarcoma"
    out.mkdir()
    (out / "report.html").write_text("the user's report")
    assert main(["plan", str(ct), "--labels", str(lab), "--target", "sarcoma_1", "--procedure", "sarcoma-biopsy",
                 "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "report.html" in err[0], err
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]
    out = tmp_path / "bronch"
    out.mkdir()
    (out / "flythrough.png").write_bytes(b"the user's picture")
    assert main(["bronch", str(ct), "--airways", str(lab), "--target", "sarcoma_1", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "flythrough.png" in err[0], err
    assert sorted(p.name for p in out.iterdir()) == ["flythrough.png"]
    # an earlier route is not replaced unasked, as plan.json is not (new-user trial 77 L3); --force
    # replaces only IMAGIO's own
    (out / "flythrough.png").unlink()
    (out / "bronch.json").write_text("{}")
    args = ["bronch", str(ct), "--airways", str(lab), "--target", "sarcoma_1", "--out", str(out), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    # the user's file is named as theirs at once, --force not offered for it (new-user trial 100 F4:
    # "pass --force to replace it", and --force then refused it)
    assert len(err) == 1 and "bronch.json" in err[0] and "not an earlier output of IMAGIO" in err[0], err
    assert "pass --force" not in err[0], err
    assert main(args + ["--force"]) == 2 and "not an earlier output of IMAGIO" in capsys.readouterr().err
    assert (out / "bronch.json").read_text() == "{}"


def test_a_users_file_among_several_outputs_is_named_before_force_is_offered(tmp_path):
    """The one output guard (`outputs.check_outputs`) judged its outputs one by one: an earlier
    output of IMAGIO met first was answered "pass --force", and --force then refused a user's file
    among the later ones (or the first one's label sidecar) - the trial 100 F4 pattern. Every
    user's file is named first; --force is offered only when all are IMAGIO's."""
    from imagio.outputs import check_outputs

    mine = write_text(tmp_path / "a.json", "{}")
    (tmp_path / "b.json").write_text("the user's")
    for order in ([mine, tmp_path / "b.json"], [tmp_path / "b.json", mine]):
        for force in (False, True):
            with pytest.raises(InputError, match="b.json: it exists and is not an earlier output") as e:
                check_outputs(order, [], force=force)
            assert "pass --force" not in str(e.value)
    seg = write_text(tmp_path / "x.nii.gz", "not an image: the guard reads no image")
    (tmp_path / "x.labels.json").write_text("the user's names")   # the output's label sidecar
    with pytest.raises(InputError, match="x.labels.json: it exists and is not an earlier output") as e:
        check_outputs([seg], [])
    assert "pass --force" not in str(e.value)
    (tmp_path / "b.json").unlink()
    (tmp_path / "x.labels.json").unlink()
    with pytest.raises(InputError, match="pass --force"):
        check_outputs([mine, tmp_path / "b.json"], [])   # all IMAGIO's: --force offered ...
    check_outputs([mine, tmp_path / "b.json"], [], force=True)   # ... and it takes them


def test_plan_names_a_users_picture_beside_its_own_plan_json(tmp_path, capsys):
    """`imagio plan` checked plan.json by its own code before the other files: with its own earlier
    plan.json and a user's plan.png in --out, it said "plan.json exists; ... pass --force", and
    --force then refused plan.png. Its fixed outputs (and bronch's) now go through the one output
    guard, `outputs.check_outputs`: the user's picture is named at once, --force not offered."""
    out = tmp_path / "out"
    args = _torso_plan(tmp_path, out) + ["--no-scene"]
    assert main(args + ["--no-png"]) == 0 and earlier_output(out / "plan.json")
    capsys.readouterr()
    (out / "plan.png").write_bytes(b"the user's picture")
    before = (out / "plan.json").read_bytes()
    for extra in ([], ["--force"]):
        assert main(args + extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "plan.png" in err[0] and "not an earlier output of IMAGIO" in err[0], err
        assert "pass --force" not in err[0], err
    assert (out / "plan.png").read_bytes() == b"the user's picture" and (out / "plan.json").read_bytes() == before
