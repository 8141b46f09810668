"""IMAGIO reads and writes its text as UTF-8 whatever the machine's locale.

Python opens a text file in the locale's encoding unless told otherwise (PEP 597). Under an
ASCII locale (``LC_ALL=C`` without Python's UTF-8 mode, or a library that resets LC_CTYPE at run
time) every JSON table of imagio/data holding a character such as "cm\u00b2" cannot be read, so
IMAGIO did not even start, and a Slicer table holding "\u00b1" could not be read back: stop 64's CI
failed that way on a coverage table. So every open / read_text / write_text / text-mode
subprocess in the product names its encoding, and the command line prints any character under
any locale (`imagio.cli._streams_say_any_text`)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from imagio import io
from imagio.planning.synthetic import synthetic_torso

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("imagio", "IMAGIOSegmentation", "IMAGIOPlanning", "benchmarks", "docs")
TEXT_CALLS = ("open", "read_text", "write_text")


def _mode(call: ast.Call, first: int):
    """The mode argument of an open() call as a string ('?' when not a literal; 'r' by default)."""
    given = [k.value for k in call.keywords if k.arg == "mode"] + call.args[first:first + 1]
    if not given:
        return "r"
    m = given[0]
    return m.value if isinstance(m, ast.Constant) and isinstance(m.value, str) else "?"


def _unnamed_encodings(path: Path) -> list[str]:
    """'file:line what' for each text-mode file or pipe opened without ``encoding=``."""
    found = []
    for call in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(call, ast.Call) or any(k.arg == "encoding" for k in call.keywords):
            continue
        f = call.func
        name = f.id if isinstance(f, ast.Name) else getattr(f, "attr", None)
        if name == "open":
            owner = getattr(f.value, "id", None) if isinstance(f, ast.Attribute) else None
            if owner in ("os", "gzip", "tarfile", "zipfile", "Image", "webbrowser", "h5py"):
                continue   # not a text file (or binary by default)
            mode = _mode(call, 1 if isinstance(f, ast.Name) else 0)
            if "b" not in mode:
                found.append(f"{path.relative_to(ROOT)}:{call.lineno} open(mode={mode!r})")
        elif name in ("read_text", "write_text") and isinstance(f, ast.Attribute):
            found.append(f"{path.relative_to(ROOT)}:{call.lineno} .{name}()")
        elif name in ("run", "check_output", "Popen") and any(
                k.arg in ("text", "universal_newlines") for k in call.keywords):
            found.append(f"{path.relative_to(ROOT)}:{call.lineno} {name}(text=True)")
    return found


def test_every_text_file_the_product_opens_names_its_encoding():
    files = [p for d in PRODUCT for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 150, len(files)
    found = [x for p in files for x in _unnamed_encodings(p)]
    # the binary ones the scan cannot tell from their mode: the model download's "ab"/"wb" variable
    allowed = {"imagio/segmentation/models.py open(mode='?')"}
    found = [x for x in found if f"{x.split(':')[0]} {x.split(' ', 1)[1]}" not in allowed]
    assert not found, "text opened in the locale's encoding (name encoding='utf-8'):\n" + "\n".join(found)


def test_the_scan_finds_an_open_without_encoding(tmp_path):
    # the scan itself: each form it must catch, and the forms it must let pass
    src = tmp_path / "x.py"
    src.write_text("import json, subprocess\n"
                   "open('a')\nopen('a', 'w', newline='')\nPath('a').read_text()\np.write_text('x')\n"
                   "subprocess.run(['ls'], text=True)\n"
                   "open('a', 'rb')\nopen('a', encoding='utf-8')\np.read_text(encoding='utf-8')\n"
                   "write_text(p, 'x')\nos.open('a', 1)\n", encoding="utf-8")
    global ROOT
    old, ROOT = ROOT, tmp_path
    try:
        found = _unnamed_encodings(src)
    finally:
        ROOT = old
    assert [int(x.split(":")[1].split()[0]) for x in found] == [2, 3, 4, 5, 6], found


def _ascii_locale() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "PYTHONUTF8", "PYTHONIOENCODING"))}
    env.update(LC_ALL="C", LANG="C", PYTHONUTF8="0")
    probe = subprocess.run([sys.executable, "-c", "import locale, sys; print(sys.flags.utf8_mode, "
                            "locale.getpreferredencoding(False))"], env=env, capture_output=True,
                           encoding="utf-8")
    assert probe.stdout.split() == ["0", "ANSI_X3.4-1968"], probe.stdout   # the locale really is ASCII
    return env


def _imagio(env, *args):
    return subprocess.run([sys.executable, "-m", "imagio", *map(str, args)], env=env, capture_output=True,
                          encoding="utf-8", errors="strict")


def test_info_prints_a_non_ascii_label_name_under_an_ascii_locale(tmp_path):
    ct, lab = synthetic_torso(6.0)
    lab.array[2:4, 2:4, 2:4] = 50
    lab.labels[50] = "l\u00e9sion_h\u00e9patique"   # a user's label name, kept in the sidecar
    io.write_labels(lab, tmp_path / "labels.nii.gz")
    side = json.loads((tmp_path / "labels.labels.json").read_text(encoding="utf-8"))
    assert side["labels"]["50"]["name"] == "l\u00e9sion_h\u00e9patique"
    r = _imagio(_ascii_locale(), "info", tmp_path / "labels.nii.gz")
    # old code: the import read imagio/data/input_limits.json in ASCII and died (UnicodeDecodeError)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    # the name is printed, escaped where the terminal's encoding cannot show it
    assert "l\\xe9sion_h\\xe9patique" in r.stdout, r.stdout


def test_a_plan_runs_and_its_outputs_read_back_under_an_ascii_locale(tmp_path):
    ct, lab = synthetic_torso(4.0)
    io.write_image(ct, tmp_path / "ct.nii.gz")
    io.write_labels(lab, tmp_path / "labels.nii.gz")
    inv = {n: v for v, n in lab.labels.items()}
    liver = ct.kji_to_world(np.argwhere(lab.array == inv["liver"]).mean(0)[None])[0]
    r = _imagio(_ascii_locale(), "plan", tmp_path / "ct.nii.gz", "--labels", tmp_path / "labels.nii.gz",
                "--target=" + ",".join(f"{v:.1f}" for v in liver), "--out", tmp_path / "plan")
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "plan" / "plan.json").read_text(encoding="utf-8"))
    assert doc["proposals"], doc.keys()
    # the same plan as under the machine's own locale: the locale changes no figure
    r2 = _imagio(dict(os.environ), "plan", tmp_path / "ct.nii.gz", "--labels", tmp_path / "labels.nii.gz",
                 "--target=" + ",".join(f"{v:.1f}" for v in liver), "--out", tmp_path / "plan2")
    assert r2.returncode == 0, r2.stderr
    doc2 = json.loads((tmp_path / "plan2" / "plan.json").read_text(encoding="utf-8"))
    assert [p["entry_ras"] for p in doc["proposals"]] == [p["entry_ras"] for p in doc2["proposals"]]


def test_a_non_ascii_file_name_is_read_and_written_under_an_ascii_locale(tmp_path):
    # new-user trial 112 F3: `imagio info Jürgen/ct.nii.gz` under LC_ALL=C aborted in SimpleITK
    # (std::logic_error, exit 134, no message): the name reached it with surrogate escapes
    ct, _ = synthetic_torso(6.0)
    folder = tmp_path / "J\u00fcrgen"
    folder.mkdir()
    io.write_image(ct, folder / "ct.nii.gz")
    env = _ascii_locale()
    r = _imagio(env, "info", folder / "ct.nii.gz")
    assert r.returncode == 0, r.stderr
    r = _imagio(env, "segment", folder / "ct.nii.gz", "--structures", "body", "--out", folder / "s\u00e9g.seg.nrrd")
    assert r.returncode == 0, r.stderr
    seg = io.read_labels(folder / "s\u00e9g.seg.nrrd")
    assert "body" in seg.labels.values() and seg.shape == ct.shape
    # the same output rewritten under a UTF-8 locale is IMAGIO's own earlier output (new-user trial 113
    # U1: listed under surrogate escapes, it was "not an earlier output of IMAGIO"; exit 2)
    env8 = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "PYTHONUTF8"))}
    env8.update(LC_ALL="C.UTF-8", PYTHONUTF8="1")
    r = _imagio(env8, "segment", folder / "ct.nii.gz", "--structures", "body", "--out", folder / "s\u00e9g.seg.nrrd",
                "--force")
    assert r.returncode == 0, r.stderr
