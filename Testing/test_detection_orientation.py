"""Lung nodule candidates must depend on the world image only, not on how its array is stored.

New-user trial 29 L2: LIDC-0001's slab stored flipped along i and k with i and j swapped (world
geometry identical) gave its first candidate at the same point but with probability 0.469
instead of 0.554, and another fourth candidate. The working grid is anchored at voxel 0, the
Gaussian pyramid keeps every second voxel from index 0, and ties and ``argmax`` first hits
follow the array order, so each storage saw another image.

Here: a phantom screening scan (and, with the data, the LIDC-0001 slab) and copies of it with
the array axes permuted and flipped, the IJK->RAS columns changed to match
(``test_ablation_axis_order._reordered``; each copy checked voxel by voxel against the
original through the original's own matrix). The candidates must be the same: count, order,
centres (0.1 mm), probabilities (1e-3); and the characterised nodules (diameters, volumes,
categories) and the lung mask on each copy's own grid must hold the same world voxels.
"""

import numpy as np
import pytest
from test_ablation_axis_order import _reordered, _same_world

from imagio.detection import detect
from imagio.detection.pipeline import Options, scan_findings

# (perm of the k, j, i axes, flips): the trial's (i <-> j, i and k flipped), the slice axis
# moved to array axis 1, and a cyclic order with one flip
STORAGES = [((0, 2, 1), (True, False, True)), ((1, 0, 2), (False, True, False)),
            ((2, 0, 1), (False, False, True))]


def _assert_same(cands, ref):
    assert len(cands) == len(ref)
    assert np.allclose([c.center_ras for c in cands], [c.center_ras for c in ref], atol=0.1)
    assert np.allclose([c.probability for c in cands], [c.probability for c in ref], atol=1e-3)
    assert [c.type for c in cands] == [c.type for c in ref]
    assert np.allclose([c.diameter_mm for c in cands], [c.diameter_mm for c in ref], atol=1e-3)


@pytest.fixture(scope="module")
def phantom():
    from imagio.phantom.screening import screening_scan

    ct = screening_scan(spacing=3.0, seed=3, n_nodules=10, n_mimics=3).phantom.ct
    return ct, detect(ct)


@pytest.mark.slow
@pytest.mark.parametrize("perm, flip", STORAGES)
def test_phantom_candidates_do_not_depend_on_storage(phantom, perm, flip):
    ct, ref = phantom
    assert ref
    ct2 = _reordered(ct, perm, flip)
    _same_world(ct, ct2)
    _assert_same(detect(ct2), ref)


@pytest.fixture(scope="module")
def lidc():
    from conftest import SHARED_DATA

    from imagio import io

    path = SHARED_DATA / "lidc-slabs" / "LIDC-IDRI-0001_slab.nii.gz"
    if not path.exists():
        pytest.skip(f"{path} not found")
    ct = io.read_image(path)
    found = scan_findings(ct, Options(characterise=3))
    return ct, {**found, "detect": detect(ct)}


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("perm, flip", STORAGES[:2])
def test_lidc_candidates_and_nodules_do_not_depend_on_storage(lidc, perm, flip):
    ct, ref = lidc
    ct2 = _reordered(ct, perm, flip)
    _same_world(ct, ct2)
    found = scan_findings(ct2, Options(characterise=3))   # the pipeline's one entry (run_scan's)
    _assert_same(found["cands"], ref["cands"])
    _assert_same(detect(ct2), ref["detect"])             # the detector alone (its own lung mask), too
    lungs, ref_lungs = found["lungs_m"], ref["lungs_m"]
    _same_world(ct.with_array(ref_lungs.astype(np.uint8)), ct2.with_array(lungs.astype(np.uint8)))
    nod, masks, ref_nod, ref_masks = found["nodules"], found["masks"], ref["nodules"], ref["masks"]
    assert [d["id"] for d in nod] == [d["id"] for d in ref_nod]
    for d, r, m, rm in zip(nod, ref_nod, masks, ref_masks):
        for k in ("long_axis_mm", "short_axis_mm", "volume_ml"):
            if k in r:
                assert d[k] == pytest.approx(r[k], abs=1e-3), k
        assert d["stratification"]["lung_rads"] == r["stratification"]["lung_rads"]
        _same_world(ct.with_array(rm.astype(np.uint8)), ct2.with_array(m.astype(np.uint8)))
