"""Cohort run on Dask distributed: 20 small phantom scans (4 mm, cropped to the chest) and a
corrupt file. A LocalCluster of 2 worker processes gives the same tables as one worker inside
the test process; the corrupt scan is logged with its reason and the others go on; a run killed
halfway and restarted runs only the cases that were not done."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from imagio.cohort import list_cases, run_cohort
from imagio.detection.pipeline import Options

N = 20
OPTS = Options(characterise=1, slicer=False, patient={"age": 60, "sex": "female"})


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from imagio import io, phantom

    d = tmp_path_factory.mktemp("cohort")
    src = d / "scans"
    src.mkdir()
    for s in range(N):
        ph = phantom.generate(spacing=4.0, seed=s, n_liver_tumors=0, n_lung_nodules=2, airway_generations=5)
        lungs = np.isin(ph.labels.array, [v for v, n in ph.labels.labels.items() if n.startswith("lung_")])
        lo, hi = ph.labels.bounding_box(lungs, margin=4)
        io.write_image(ph.ct.crop(lo, hi), src / f"chest{s:02d}.nii.gz")
    (src / "chest99_corrupt.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    ref = run_cohort(src, d / "one", OPTS, workers=0, quiet=True)  # one worker thread, this process
    return d, src, ref


def _table(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _cases(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "path"} for r in _table(path)]


def test_corrupt_scan_logged_and_skipped(cohort):
    d, src, ref = cohort
    assert ref["cases"] == N + 1 and ref["done"] == N and ref["failed"] == 1
    assert "chest99_corrupt" in ref["failures"] and "not a readable image" in ref["failures"]["chest99_corrupt"]
    log = Path(ref["log"]).read_text()
    assert "chest99_corrupt: failed" in log
    assert len({r["case"] for r in _table(Path(ref["table_csv"]))}) == N  # every good case has rows


def test_two_workers_same_table_and_resume_after_kill(cohort, tmp_path):
    d, src, ref = cohort
    out = tmp_path / "two"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "imagio.cli", "detect", str(src), "--out", str(out), "--workers", "2",
           "--characterise", "1", "--no-slicer", "--age", "60", "--sex", "female", "--quiet"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    done_dir = out / "cases"
    try:
        while proc.poll() is None and len(list(done_dir.glob("*/done.json"))) < N // 2:
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the run and its worker processes, halfway
        proc.wait()
    before = {p.parent.name: p.stat().st_mtime_ns for p in done_dir.glob("*/done.json")}
    assert 0 < len(before) < N + 1
    s = run_cohort(src, out, OPTS, workers=2, quiet=True)
    assert s["skipped_done"] == len(before) and s["ran"] == N + 1 - len(before)
    after = {p.parent.name: p.stat().st_mtime_ns for p in done_dir.glob("*/done.json")}
    assert all(after[k] == v for k, v in before.items())  # done cases were not run again
    assert _cases(Path(s["cases_csv"])) == _cases(Path(ref["cases_csv"]))
    assert _table(Path(s["table_csv"])) == _table(Path(ref["table_csv"]))
    json.loads((out / "cases" / "chest00" / "candidates.json").read_text())


def test_cohort_sources(tmp_path, cohort):
    d, src, _ = cohort
    lst = tmp_path / "study.txt"
    lst.write_text(f"# study list\n{src / 'chest00.nii.gz'}\n{src / 'chest01.nii.gz'}\n")
    assert [c["case"] for c in list_cases(lst)] == ["chest00", "chest01"]
    tab = tmp_path / "c.csv"
    tab.write_text(f"path,seriesuid,age,sex,smoker\n{src / 'chest00.nii.gz'},1.2.3,71,male,yes\n")
    (c,) = list_cases(tab)
    assert c["case"] == "1.2.3" and c["patient"] == {"age": 71.0, "sex": "male", "smoker": True}
    from imagio.errors import InputError

    bad = tmp_path / "b.csv"
    bad.write_text("file\nx.nii.gz\n")
    with pytest.raises(InputError, match="'path' column"):
        list_cases(bad)


def test_segment_cohort_from_a_study_list(cohort, tmp_path, capsys):
    from imagio import cli, io
    from imagio.segmentation.rules import segment

    d, src, _ = cohort
    lst = tmp_path / "studies.txt"
    lst.write_text("\n".join(str(src / n) for n in ("chest00.nii.gz", "chest01.nii.gz", "chest99_corrupt.nii.gz")))
    out = tmp_path / "seg"
    assert cli.main(["segment", str(lst), "--out", str(out), "--structures", "body,lungs", "--workers", "0",
                     "--quiet"]) == 1      # one case failed: not a success for a script (trial 7)
    s = json.loads(capsys.readouterr().out)
    assert s["done"] == 2 and s["failed"] == 1
    rows = _table(out / "cohort_structures.csv")
    ref = segment(io.read_image(src / "chest01.nii.gz"), ["body", "lungs"])
    for v, n in ref.labels.items():  # same volumes as one segmentation in this process
        got = [r for r in rows if r["case"] == "chest01" and r["structure"] == n]
        assert got and float(got[0]["volume_ml"]) == pytest.approx(float((ref.array == v).sum() * ref.voxel_volume_ml), abs=0.01)
