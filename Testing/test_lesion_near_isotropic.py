"""A lesion's outline on a near-isotropic grid keeps its one-voxel caps (new-user trial 60 L1):
after a 15 deg gantry-tilt correction the grid is 2.5 x 2.5 x 2.41 mm, and the layer the
attachment-cutting opening shaves off was given back along the 2.41 mm axis only (a ball of 1.01
x the finest spacing), so a 20 mm sphere lost its in-plane caps: 4.045 mL for 4.189 (3.4 % low;
the case's criterion is 2 %)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import block_in_air, ellipsoid_share, rotation
from imagio.segmentation.lesion import segment_lesion
from imagio.volume import Volume

CASES = Path(__file__).resolve().parents[1].parent / "shared" / "cases"
R_MM, LUNG_HU, NODULE_HU, BODY_HU = 10.0, -850.0, 300.0, 40.0


def _scene(spacing, direction, offset):
    """A 20 mm sphere of NODULE_HU centred at ``offset`` (RAS mm) in a lung of LUNG_HU inside a
    body block, on a grid of ``spacing`` (i, j, k mm) along ``direction``; each voxel holds the
    share of its volume inside the sphere (4 x 4 x 4 sub-samples: partial volume as a CT
    reconstructs it), plus noise of 15 HU."""
    ref, (x, y, z), body = block_in_air(spacing, (36, 36, 36), direction, (40.0, 40.0, 40.0))
    lung = (np.abs(x) < 35) & (np.abs(y) < 35) & (np.abs(z) < 35)
    frac = ellipsoid_share(ref, (x, y, z), offset, (R_MM, R_MM, R_MM), n=4)
    hu = np.where(body, BODY_HU, -1000.0)
    hu = np.where(lung, LUNG_HU, hu)
    hu = hu + frac * (NODULE_HU - LUNG_HU)
    hu += np.random.default_rng(0).normal(0.0, 15.0, hu.shape)
    return Volume(hu.astype(np.float32), ref.ijk_to_ras)


@pytest.mark.parametrize("direction", [rotation((1, 0, 0), 15.0), rotation((1, 2, 3), 20.0) @ np.diag([-1.0, 1.0, 1.0])])
def test_sphere_on_a_near_isotropic_grid_keeps_its_caps(direction):
    """Over sub-voxel positions the outline's volume is within 3 % of the sphere's on average
    (absolute) and within 5 % each (a digital sphere of ~280 voxels varies with its position on
    the grid, and the opening still trims a few voxels the 6-neighbour give-back does not reach);
    before, the caps were lost along the two 2.5 mm axes: up to 7.2 % low, 4.1 % on average
    (oblique), measured: main [-0.4, -6.2, -5.8] %, now [0.3, -2.2, -4.7] %."""
    truth = 4.0 / 3.0 * np.pi * R_MM ** 3 / 1000.0
    errs = []
    for off in ([0.0, 0.0, 0.0], [0.8, -0.6, 1.1], [-1.2, 0.4, -0.5]):
        ct = _scene((2.5, 2.5, 2.41), direction, np.array(off))
        mask, meas = segment_lesion(ct, off)
        assert meas.kind == "lung_nodule"
        errs.append(meas.volume_ml / truth - 1.0)
    assert np.mean(np.abs(errs)) < 0.03, errs
    assert max(abs(e) for e in errs) < 0.05, errs


@pytest.mark.slow
def test_gantry_tilt_case_volume_within_two_percent(tmp_path):
    """The shared case generator ``dicom_gantry_tilt.py`` (a 20 mm sphere in a series tilted
    15 deg): read through the tilt correction, one click at its centre gives its volume within
    the case's 2 % (was 4.045 mL for 4.189, 3.4 % low)."""
    gen = CASES / "dicom_gantry_tilt.py"
    if not gen.exists():
        pytest.skip("../shared/cases/dicom_gantry_tilt.py is not present")
    out = tmp_path / "tilt"
    subprocess.run([sys.executable, str(gen), str(out)], check=True, capture_output=True)
    truth = json.loads(Path(str(out) + "_truth.json").read_text())
    from imagio.io import read_image

    with pytest.warns(Warning, match="gantry tilt"):
        ct = read_image(out)
    mask, meas = segment_lesion(ct, truth["tumour_centre_ras_mm"])
    assert abs(meas.volume_ml / truth["tumour_volume_ml"] - 1.0) < 0.02, meas.volume_ml
    # the partial-volume-corrected volume too (a nodule of one density: given)
    assert abs(meas.volume_pv_ml / truth["tumour_volume_ml"] - 1.0) < 0.02, meas.volume_pv_ml
    centre = np.asarray(meas.centroid_ras)
    assert np.linalg.norm(centre - truth["tumour_centre_ras_mm"]) < 0.5
