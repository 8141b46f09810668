"""Length of a path inside each structure (`along.label_lengths`: the evaluator's
``length_in_mm`` and the ablation probes' ``crossed_mm``), against chord lengths computed from
the scene's geometry, axial and on an oblique, flipped, anisotropic grid."""

import numpy as np
import pytest

from conftest import rotation
from imagio.planning import Constraints, Evaluator, PlanningProblem
from imagio.planning.ablation.multiprobe import ANTENNA_STEP_MM, _antenna_crossings
from test_planning_geometry import NO_TABLE, analytic_volumes, box_body, thin_needle

R_LIVER, R_TUMOUR = 30.0, 8.0
SLAB = (40.0, 50.0)          # muscle between these y (mm), outside the liver
ENTRY = np.array([12.0, 60.0, 9.0])   # on the body's y = 60 face; the target is the origin


def _scene(x, y, z):
    lab = box_body(x, y, z).astype(np.uint8)
    r2 = x * x + y * y + z * z
    lab[r2 <= R_LIVER ** 2] = 2
    lab[r2 <= R_TUMOUR ** 2] = 3
    lab[(y > SLAB[0]) & (y < SLAB[1]) & box_body(x, y, z)] = 4
    return lab


NAMES = {1: "body", 2: "liver", 3: "liver_tumor", 4: "muscle"}


@pytest.mark.parametrize("oblique", [False, True])
def test_lengths_along_a_path_are_the_chords_and_add_up_to_the_path(oblique):
    """Each structure's mm along entry -> target equals its chord (the tumour: its radius; the
    liver: the shell between the radii, both radial; the muscle slab: its thickness over the
    path's direction cosine to the slab's normal; the body: the rest) to within the sampling
    precision (a sample takes its nearest voxel's label, wrong only within half a voxel
    diagonal of a boundary, measured along the path, plus half a sampling step, at each of a
    structure's two boundaries), and the lengths add up to the path's length (the old sampling
    counted both end points: one step too much). The probe's ``crossed_mm`` (muscle made
    'avoid') equals the same chord, the tip's structure is the liver."""
    if oblique:
        spacing, d = (0.9, 1.2, 1.5), rotation((1, 2, 3), 20.0) @ np.diag([-1.0, 1.0, 1.0])
    else:
        spacing, d = (1.0, 1.0, 1.0), None
    ct, lab = analytic_volumes(spacing, (130, 130, 170), _scene, NAMES, direction=d)
    prob = PlanningProblem.build(ct, lab, (0.0, 0.0, 0.0), needle=thin_needle(),
                                 constraints=Constraints(**NO_TABLE), roles={"muscle": "avoid"})
    m = Evaluator(prob).evaluate(ENTRY)
    length = float(np.linalg.norm(ENTRY))
    cos_slab = ENTRY[1] / length                 # the path's direction cosine to the slab normal y
    muscle = (SLAB[1] - SLAB[0]) / cos_slab
    want = {"liver_tumor": R_TUMOUR, "liver": R_LIVER - R_TUMOUR, "muscle": muscle,
            "body": length - R_LIVER - muscle}
    half_diag = 0.5 * float(np.linalg.norm(spacing))
    step = prob.constraints.step_voxels * min(spacing)
    radial = half_diag + 0.5 * step              # one boundary crossed at right angles
    across = half_diag / cos_slab + 0.5 * step   # one slab face
    tol = {"liver_tumor": radial, "liver": 2 * radial, "muscle": 2 * across,
           "body": across + radial + (half_diag + 0.5 * step)}   # skin face, slab face, liver
    assert m.length_mm == pytest.approx(length, abs=1e-6)
    got = dict(m.length_in_mm)
    # the entry lies on the skin: samples within half a voxel diagonal of it may take a voxel
    # outside the body
    assert set(got) - {"unlabelled"} == set(want), got
    assert got.get("unlabelled", 0.0) <= half_diag + 0.5 * step, got
    got["body"] += got.pop("unlabelled", 0.0)
    for name, mm in want.items():
        assert got[name] == pytest.approx(mm, abs=tol[name]), (name, got[name], mm)
    assert sum(m.length_in_mm.values()) == pytest.approx(length, abs=1e-6), m.length_in_mm

    tip = 10.0 * (-ENTRY / length)               # 10 mm past the target, in the liver
    crossed, tip_in = _antenna_crossings(prob, ENTRY, tip)
    fine = 2 * (half_diag / cos_slab + 0.5 * ANTENNA_STEP_MM)
    assert set(crossed) == {"muscle"} and crossed["muscle"] == pytest.approx(muscle, abs=fine), crossed
    assert tip_in == "liver"
