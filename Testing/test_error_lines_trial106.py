"""New-user trial 106 (LOW 9): a refusal names what the user asked for, in one line, exit 2."""

import numpy as np

from conftest import run_imagio
from imagio import io
from imagio.volume import Volume, make_ijk_to_ras


def _air_corner(path):
    """A 60 mm cube (1.5 mm) at a corner of a chest: mostly air, a rim of body (fat over muscle)
    and a 2500 HU electrode on the skin; no lung and no bone in view (the trial cropped the chest
    CTA's corner: 85 % air, one 0.7 mL dense object on the skin)."""
    n, sp = 40, 1.5
    k, j, i = np.indices((n, n, n)).astype(float)
    r = np.hypot((j + 60) * sp, (i + 60) * sp)   # the outline's centre lies beyond the corner
    a = np.full((n, n, n), -1000.0)
    a[r < 160] = -100.0
    a[r < 152] = 40.0
    a[(r >= 156) & (r < 160) & (np.abs(k - 20) < 4) & (np.abs(j - i) < 4)] = 2500.0
    a += np.random.default_rng(0).normal(0, 15, a.shape)
    return io.write_image(Volume(a.astype(np.int16), make_ijk_to_ras((sp, sp, sp), (0.0, 0.0, 0.0), np.eye(3))), path)


def test_bones_on_an_air_corner_are_refused_for_bones_not_lungs(tmp_path):
    """`imagio segment CORNER --structures bones`: the line began "lungs: no lungs found" although
    only bones were asked. The lungs are read for the bones only as context (a rib is found by the
    lung it hugs; a limb has bones and no lungs), so their absence is the bones' note, said after
    the bones' own reason; the line says what to do."""
    ct = _air_corner(tmp_path / "corner.nii.gz")
    out = tmp_path / "c.seg.nrrd"
    r = run_imagio("segment", ct, "--structures", "bones", "--out", out, "--quiet")
    assert r.returncode == 2 and not out.exists()
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imagio: error: nothing to write for --structures bones: "), r.stderr
    assert "Traceback" not in r.stderr
    why = lines[0].split("--structures bones: ", 1)[1]
    assert "lungs:" not in why and "no lungs found" not in why, why      # fails on the old code
    assert why.startswith("none of them was found in this CT (bones: 1 dense object(s) on the skin"), why
    assert "bones: no lungs in view" in why and "give a CT whose field of view holds them" in why


def test_a_wrong_task_zip_imported_as_total_names_its_own_task(tmp_path, monkeypatch, capsys):
    """`imagio models import total wrong_task.zip` (a valid nnU-Net v2 zip of Dataset999_Tiny, the
    shared case's generator): refused naming total's five parts but not the zip's task, while
    total_fast and lung_nodules named both. One wording for every entry: the zip's task and the
    catalogue's, exit 2, one line, nothing left in the cache."""
    import runpy
    import sys
    from pathlib import Path

    import pytest

    from imagio.cli import main

    pytest.importorskip("torch")
    gen = Path(__file__).resolve().parents[1].parent / "shared" / "cases" / "model_wrong_task_zip.py"
    if not gen.exists():
        pytest.skip(f"{gen} is not present")
    monkeypatch.setattr(sys, "argv", [str(gen), str(tmp_path)])
    runpy.run_path(str(gen), run_name="__main__")
    monkeypatch.setenv("IMAGIO_MODELS_DIR", str(tmp_path / "cache"))
    capsys.readouterr()
    for name, theirs in (("total", "Dataset291_TotalSegmentator_part1_organs_1559subj"),
                         ("total_fast", "Dataset297_TotalSegmentator_total_3mm_1559subj"),
                         ("lung_nodules", "Dataset913_lung_nodules")):
        code = main(["models", "import", name, str(tmp_path / "wrong_task.zip")])
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(lines) == 1, lines
        assert lines[0].startswith(f"imagio: error: wrong_task.zip is not the model {name!r}: "), lines[0]
        assert "it is task Dataset999_Tiny" in lines[0], lines[0]        # fails on the old code for total
        assert theirs in lines[0] and "Import it under the catalogue name of its task" in lines[0]
        assert not (tmp_path / "cache" / name).exists()
