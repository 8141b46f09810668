"""A point target typed in the other frame (L,P,S numbers without --lps, or R,A,S numbers with it)
and refused where it lies is answered with the question `imagio lesion` already asks: "did you
mean --lps?" (new-user trial 109 L5: `imagio plan` said only "lies outside the image ... beyond the
j face" and `imagio bronch` "in tissue of -984 HU" for a PACS viewer's LPS centre typed as RAS).
The synthetic torso is moved 200 mm right and anterior, as scanners place real patients away from
the origin, so that the mirrored reading of a liver point falls outside the image."""

from __future__ import annotations

import numpy as np

from conftest import run_imagio
from imagio import io
from imagio.coords import other_frame_hint
from imagio.planning.synthetic import synthetic_torso
from imagio.volume import Volume


def _moved_torso():
    ct, lab = synthetic_torso(3.0)
    shift = np.eye(4)
    shift[:3, 3] = [200.0, 200.0, 0.0]
    ct2, lab2 = (Volume(v.array, shift @ v.ijk_to_ras, v.name, dict(v.labels)) for v in (ct, lab))
    inv = {n: v for v, n in lab2.labels.items()}
    liver = ct2.kji_to_world(np.argwhere(lab2.array == inv["liver"]).mean(0)[None])[0]
    return ct2, lab2, liver


def test_plan_refusal_asks_whether_the_point_was_lps(tmp_path):
    ct, lab, liver = _moved_torso()
    lps = np.array([-liver[0], -liver[1], liver[2]])   # what a PACS viewer shows for the liver point
    assert not ct.contains_world(lps[None])[0]         # read as R,A,S the numbers leave the image
    io.write_image(ct, tmp_path / "ct.nii.gz")
    io.write_labels(lab, tmp_path / "labels.nii.gz")
    typed = ",".join(f"{v:.1f}" for v in lps)
    r = run_imagio("plan", tmp_path / "ct.nii.gz", "--labels", tmp_path / "labels.nii.gz", f"--target={typed}",
                   "--out", tmp_path / "plan")
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert "did you mean --lps?" in line and "read as L,P,S" in line, line   # old code: no question
    # the quoted numbers are the typed ones, and the tissue named is what the CT holds at the liver point
    assert f"({', '.join(f'{float(v):g}' for v in typed.split(','))})" in line, line
    hu = float(ct.sample(liver[None], order=0)[0])
    assert f"tissue of {hu:.0f} HU" in line, line
    # with --lps the same numbers plan (the refusal was only the frame)
    r = run_imagio("plan", tmp_path / "ct.nii.gz", "--labels", tmp_path / "labels.nii.gz", f"--target={typed}",
                   "--lps", "--out", tmp_path / "plan_lps")
    assert r.returncode == 0, r.stderr


def test_no_question_where_the_point_lies_in_tissue_or_its_mirror_does_not():
    ct, _, liver = _moved_torso()
    # the point as read lies in the liver: whatever refused it, the frame is not the question
    assert other_frame_hint(ct, liver, lps=False) == ""
    # a point in the air beside the body whose mirror also leaves the image: nothing to suggest
    corner = ct.kji_to_world(np.zeros((1, 3)))[0]
    assert other_frame_hint(ct, corner, lps=False) == ""
    # with --lps given, the mirrored reading is asked the other way round
    far = np.array([-liver[0], -liver[1], liver[2]])
    assert "did you mean to leave out --lps?" in other_frame_hint(ct, far, lps=True)


def test_a_point_in_aerated_lung_whose_mirror_lies_in_tissue_is_asked_about_its_frame(tmp_path):
    # new-user trial 111: a nodule's L,P,S centre typed as R,A,S landed in aerated lung; plan and
    # bronch accept such a point with a warning, which said only "check the point"
    from imagio.coords import lps_to_ras
    from imagio.limits import GROUND_GLASS_MIN_HU

    ct, lab = synthetic_torso(4.0)
    from scipy import ndimage

    lung = np.isin(lab.array, [v for v, n in lab.labels.items() if n.startswith("lung_")])
    lung = ndimage.binary_erosion(lung, iterations=2)   # deep in the lung: its 3 x 3 x 3 voxels all air
    pts = ct.kji_to_world(np.argwhere(lung).astype(float))
    here = ct.sample(pts, order=0)
    mirror = pts * np.array([-1.0, -1.0, 1.0])   # R,A read as L,P (the flip lps_to_ras makes)
    inside = ct.contains_world(mirror)
    there = np.full(len(pts), -1000.0)
    there[inside] = ct.sample(mirror[inside], order=0)
    # the test's own choice: a lung point in air whose mirrored reading lies in soft tissue, and one
    # whose mirrored reading is air too
    asked = pts[np.argmax((here < GROUND_GLASS_MIN_HU - 100) & (there > 0))]
    quiet = pts[np.argmax((here < GROUND_GLASS_MIN_HU - 100) & inside & (there < -900))]
    io.write_image(ct, tmp_path / "ct.nii.gz")
    io.write_labels(lab, tmp_path / "labels.nii.gz")
    for point, question in ((asked, True), (quiet, False)):
        typed = ",".join(f"{v:.1f}" for v in point)
        r = run_imagio("plan", tmp_path / "ct.nii.gz", "--labels", tmp_path / "labels.nii.gz", f"--target={typed}",
                       "--out", tmp_path / f"plan_{question}")
        warn = [x for x in r.stderr.splitlines() if "the target point lies in aerated lung" in x]
        assert len(warn) == 1, r.stderr
        # old code: the warning never asks
        assert ("did you mean --lps?" in warn[0]) == question, warn[0]
        if question:
            hu = float(ct.sample(lps_to_ras(point)[None], order=0)[0])
            assert f"tissue of {hu:.0f} HU" in warn[0], (warn[0], hu)
