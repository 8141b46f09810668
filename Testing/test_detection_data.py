"""Detection on real nodules (../shared/data): each reference nodule is found within its radius
(the LUNA16 hit rule); false positives per scan are printed (run with -s), not asserted.

Inputs are cut to a slab of +-40 mm around the nodule to keep the runtime small: the detector
must cope with slabs that cut the lungs anyway (the LIDC cases are such slabs already).
References (all converted from LPS to RAS: R = -L, A = -P):
* LIDC: the mean of the four readers' centres; diameter = mean of the readers' in-plane extents.
* pyradiomics lung1/lung2: the label's centroid; diameter of the equal-volume sphere.
* Lung-PET-CT-Dx: the mean of the per-slice box centres; diameter = mean box side.
"""

import csv

import numpy as np
import pytest

from imagio import io
from imagio.detection import detect

pytestmark = [pytest.mark.data, pytest.mark.slow]


def _slab(ct, centre_ras, half_mm=40.0):
    k = ct.world_to_kji(centre_ras[None])[0][0]
    n = int(np.ceil(half_mm / ct.spacing_kji[0]))
    return ct.crop([max(int(k) - n, 0), 0, 0], [int(k) + n + 1, ct.shape[1], ct.shape[2]])


def _check(ct, centre_ras, diameter_mm, name):
    cands = detect(ct)
    d = np.array([np.linalg.norm(c.center_ras - centre_ras) for c in cands])
    hit = d < diameter_mm / 2.0
    fp = int((~hit).sum())
    print(f"\n{name}: {len(cands)} candidates, nearest {d.min() if len(d) else np.nan:.1f} mm "
          f"(radius {diameter_mm / 2:.1f}), false positives {fp}")
    assert hit.any(), (name, d.min() if len(d) else None)
    return cands


def _lps_to_ras(p):
    return np.array([-p[0], -p[1], p[2]], float)


@pytest.mark.parametrize("patient", ["LIDC-IDRI-0001", "LIDC-IDRI-0003"])
def test_lidc_slab_nodule_found(shared_data, patient):
    ct = io.read_image(shared_data / "lidc-slabs" / f"{patient}_slab.nii.gz")
    rows = [r for r in csv.DictReader(open(shared_data / "lidc-slabs" / "nodule_reads.csv"))
            if r["patient"] == patient]
    c = _lps_to_ras(np.mean([[float(r[f"centre_lps_{a}"]) for a in "xyz"] for r in rows], axis=0))
    diam = np.mean([(float(r["extent_cols"]) + float(r["extent_rows"])) / 2 for r in rows]) * ct.spacing[0]
    _check(ct, c, diam, patient)


def _label_reference(shared_data, n):
    lab = io.read_image(shared_data / "pyradiomics-lung" / f"lung{n}_label.nrrd")
    m = lab.array > 0
    c = lab.kji_to_world(np.argwhere(m).mean(axis=0)[None])[0]
    diam = (6.0 * m.sum() * lab.voxel_volume_ml * 1000.0 / np.pi) ** (1 / 3)
    return c, diam


LUNG2_XFAIL = pytest.mark.xfail(
    strict=False, reason="borderline (nearest candidate at the mass edge, about one radius "
    "away); known limit of the dot filter: a 45 mm mass against the chest wall is not a blob in "
    "the lung (centre outside the closed lung mask, blobness 0.24); issue 17 remains open on "
    "large juxta-pleural masses")


@pytest.mark.parametrize("n", [1, pytest.param(2, marks=LUNG2_XFAIL)])
def test_pyradiomics_lesion_found(shared_data, n):
    c, diam = _label_reference(shared_data, n)
    ct = io.read_image(shared_data / "pyradiomics-lung" / f"lung{n}_image.nrrd")
    _check(_slab(ct, c), c, diam, f"lung{n}")


@pytest.mark.xfail(strict=True, reason="known limit of the dot filter: a perihilar mass bordering "
                   "the mediastinum is not a blob in the lung (centre outside the closed lung mask, "
                   "blobness 0.08); issue 17 remains open on central masses")
def test_lung_pet_ct_dx_mass_found(shared_data):
    d = shared_data / "lung-pet-ct-dx"
    ct = io.read_image(d / "Lung_Dx-A0001_ct.nii.gz")
    rows = list(csv.DictReader(open(d / "Lung_Dx-A0001_boxes.csv")))
    c = _lps_to_ras(np.mean([[float(r[f"centre_lps_{a}"]) for a in "xyz"] for r in rows], axis=0))
    side = np.mean([(float(r["xmax"]) - float(r["xmin"]) + float(r["ymax"]) - float(r["ymin"])) / 2
                    for r in rows]) * ct.spacing[0]
    _check(_slab(ct, c), c, side, "Lung_Dx-A0001")
