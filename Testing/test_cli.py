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


def _refused_runs(tmp_path):
    """(command, expected error start) of a bronch and a detect run refused after their progress
    started: a 5 mm-slice CT of a soft-tissue cylinder (no lungs)."""
    k, j, i = np.indices((30, 64, 64))
    a = np.full((30, 64, 64), -1000, np.int16)
    a[(j - 32) ** 2 + (i - 32) ** 2 < 28 ** 2] = 40
    from imagio.volume import make_ijk_to_ras

    ct = Volume(a, make_ijk_to_ras((1.0, 1.0, 5.0), (0, 0, 0), np.eye(3)))
    io.write_image(ct, tmp_path / "ct.nii.gz")
    io.write_image(Volume((a > 0).astype(np.uint8), ct.ijk_to_ras), tmp_path / "air.nii.gz")
    return [(["bronch", str(tmp_path / "ct.nii.gz"), "--airways", str(tmp_path / "air.nii.gz"), "--target", "0,0,0",
              "--out", str(tmp_path / "b")], "imagio: error: the CT has 5 mm slices"),
            (["detect", str(tmp_path / "ct.nii.gz"), "--out", str(tmp_path / "d")], "imagio: error: no chest in view")]


def test_an_error_after_the_progress_started_stands_on_its_own_line(tmp_path):
    """New-user trial 31: without --quiet, with stderr to a file or a pipe, bronch and detect left
    a progress-bar fragment on the error's line and a bar line after it (`tail -1` of the log was
    not the error). Now, to a pipe: plain progress lines, no carriage return, the error last and
    alone; to a terminal (a pseudo-terminal here), the bar's line is ended before the error."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import termios
    import sys
    from pathlib import Path

    import imagio

    env = {**os.environ, "PYTHONPATH": str(Path(imagio.__file__).resolve().parents[1])}
    for cmd, error in _refused_runs(tmp_path):
        r = subprocess.run([sys.executable, "-m", "imagio", *cmd], capture_output=True, text=True, env=env,
                           cwd=tmp_path)
        lines = r.stderr.split("\n")
        assert r.returncode == 2 and lines[-1] == "" and lines[-2].startswith(error), r.stderr
        assert "\r" not in r.stderr and len(lines) >= 3, r.stderr     # progress lines, then the error
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))   # a 100-column terminal
        proc = subprocess.Popen([sys.executable, "-m", "imagio", *cmd[:-1], cmd[-1] + "_tty"], stdout=subprocess.DEVNULL,
                                stderr=slave, env=env, cwd=tmp_path)
        os.close(slave)
        got = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:   # the terminal closed: the command ended
                break
            if not chunk:
                break
            got += chunk
        os.close(master)
        assert proc.wait() == 2
        text = got.decode(errors="replace")
        at = text.find(error)
        assert at > 0 and "%|" in text[:at], text          # a bar was drawn, then the error ...
        assert text[:at].endswith("\n"), text                # ... at the start of a line
        assert "%|" not in text[at:], text                    # and no bar after it


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
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if "add_argument" in line or "add_point_argument" in line:
                continue
            bad += [f"{f.name}:{n} {m}" for m in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)", line)
                    if m not in opts and m not in outside]
    assert not bad, bad
