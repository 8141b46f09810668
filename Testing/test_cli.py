"""The `imagio` command: --help everywhere, info, and one clear error line for bad input."""

import numpy as np
import pytest

from imagio import io
from imagio.cli import build_parser, main
from imagio.volume import Volume


def run(*args):
    from conftest import run_imagio   # its inputs are hashed before and after

    return run_imagio(*args)


def test_every_subcommand_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert {"phantom", "info", "demo", "segment", "lesion", "plan"} <= set(sub.choices)
    for name, p in sub.choices.items():
        assert p.format_help().strip(), name
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0


def test_python_dash_m_imagio_is_the_command(tmp_path):
    """``python -m imagio`` runs the same command line as ``imagio`` (new-user trial 19: "No module
    named imagio.__main__"); a bad input there too gives one line and exit 2."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "imagio", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("usage: imagio"), (r.returncode, r.stderr)
    r = subprocess.run([sys.executable, "-m", "imagio", "info", str(tmp_path / "missing.nii.gz")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_info_prints_geometry_and_labels(tmp_path, oblique_affine, capsys):
    arr = np.zeros((4, 5, 6), np.uint8)
    arr[1:3, 1:4, 2:5] = 1
    io.write_labels(Volume(arr, oblique_affine, labels={1: "liver"}), tmp_path / "l.seg.nrrd")
    assert main(["info", str(tmp_path / "l.seg.nrrd")]) == 0
    out = capsys.readouterr().out
    assert "spacing_mm: [0.7, 1.1, 2.5]" in out and "liver" in out


@pytest.mark.parametrize("case", ["missing", "text", "2d", "empty_labels"])
def test_bad_input_gives_one_line_and_exit_2(tmp_path, oblique_affine, case):
    import SimpleITK as sitk
    if case == "missing":
        args = ["info", tmp_path / "nope.nii.gz"]
    elif case == "text":
        (tmp_path / "a.nii.gz").write_text("not an image")
        args = ["info", tmp_path / "a.nii.gz"]
    elif case == "2d":
        sitk.WriteImage(sitk.Image(8, 8, sitk.sitkInt16), str(tmp_path / "s.nrrd"))
        args = ["info", tmp_path / "s.nrrd"]
    else:
        io.write_image(Volume(np.zeros((3, 3, 3), np.int16), oblique_affine), tmp_path / "ct.nrrd")
        io.write_image(Volume(np.zeros((3, 3, 3), np.uint8), oblique_affine), tmp_path / "e.nrrd")
        args = ["plan", tmp_path / "ct.nrrd", "--labels", tmp_path / "e.nrrd", "--target", "0,0,0",
                "--out", tmp_path / "o"]
    r = run(*args)
    assert r.returncode == 2, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("imagio: error:"), r.stderr
    assert "Traceback" not in r.stderr


def test_phantom_command_writes_files(tmp_path):
    assert main(["phantom", str(tmp_path / "ph"), "--spacing", "3"]) == 0
    assert (tmp_path / "ph" / "labels.seg.nrrd").exists() and (tmp_path / "ph" / "phantom.json").exists()


def test_info_prints_each_reader_warning_once(tmp_path, oblique_affine, capsys):
    """A CT with -3024 padding outside the scan circle: the reader's warning (padding set to air)
    appears once in everything `imagio info` prints, as "imagio: warning:" on stderr."""
    arr = np.full((6, 8, 8), 40, np.int16)
    arr[:, :2, :] = -3024
    io.write_image(Volume(arr, oblique_affine), tmp_path / "pad.nii.gz")
    capsys.readouterr()
    assert main(["info", str(tmp_path / "pad.nii.gz")]) == 0
    cap = capsys.readouterr()
    text = cap.out + cap.err
    lines = [ln for ln in text.splitlines() if "warning" in ln]
    assert len(lines) == 1 and lines[0].startswith("imagio: warning:") and "25.0%" in lines[0], text


def test_every_option_the_messages_name_exists():
    """Trial 11 (LOW): messages told the user to run `imagio lesion --seed` (it is --point) and
    `--exclude` (it is --remove). Every `--option` written in IMAGIO's source, outside the
    argument definitions, is an option of some `imagio` command (pip's --no-deps aside)."""
    import argparse
    import re
    from pathlib import Path

    import imagio
    from imagio.cli import build_parser

    opts = set()

    def walk(parser):
        for a in parser._actions:
            opts.update(a.option_strings)
            if isinstance(a, argparse._SubParsersAction):
                for sp in a.choices.values():
                    walk(sp)

    walk(build_parser())
    outside = {"--no-deps", "--ml"}   # pip's (an install hint), TotalSegmentator's --ml output
    bad = []
    for f in Path(imagio.__file__).parent.rglob("*.py"):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if "add_argument" in line or "add_point_argument" in line:
                continue
            bad += [f"{f.name}:{n} {m}" for m in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)", line)
                    if m not in opts and m not in outside]
    assert not bad, bad
