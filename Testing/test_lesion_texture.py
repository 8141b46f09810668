"""One-click soft-tissue tumour among muscle of its own HU (issue 14): the statistical model's
homogeneous region grows only through voxels of the click's texture (``lesion._homogeneous_at``),
so it stops at the muscle's fat septa and fascial planes. Real sarcomas of ../shared/data/sts-sarcoma
(non-contrast CT, reference masks drawn on MR/PET); the independent check is the reference mask."""

import numpy as np
import pytest

from imagio import io
from imagio.segmentation.common import dice
from imagio.segmentation.lesion import _homogeneous_at, segment_lesion

pytestmark = pytest.mark.data


def _case(shared_data, case):
    d = shared_data / "sts-sarcoma" / case
    ct = io.read_image(d / "CT_image.nii.gz")
    ref = io.read_image(d / "CT_mask.nii.gz").resample_like(ct, order=0).array > 0
    return ct, ref


def _interior_clicks(ref, ct, n, seed, depth_mm=5.0):
    """``n`` seeded RAS points from the voxels at least ``depth_mm`` inside ``ref`` (as
    ``benchmarks.bench_lesion.interior_clicks`` with ``np.random.default_rng(seed)``)."""
    import edt

    depth = edt.edt(np.ascontiguousarray(ref), anisotropy=tuple(ct.spacing_kji), black_border=True)
    inside = np.argwhere(depth >= min(depth_mm, 0.6 * float(depth.max())))
    pick = np.random.default_rng(seed).choice(len(inside), min(n, len(inside)), replace=False)
    return ct.kji_to_world(inside[pick].astype(float))


def test_texture_of_a_real_sarcoma_is_homogeneous_and_its_muscle_is_not(shared_data):
    """STS_010 (a calf sarcoma of the muscle's HU, 29 vs 31 HU medians): most of the tumour's
    voxels have the click's texture, and most of the muscle 3-15 mm beyond its reference outline
    (soft tissue, -30..200 HU) does not (measured 2026-12-04: local SD 10 HU inside, 34 HU in that
    muscle; AUC 0.95)."""
    import edt

    ct, ref = _case(shared_data, "STS_010")
    a = ct.array.astype(np.float32)
    cen = tuple(np.rint(np.argwhere(ref).mean(0)).astype(int))
    allowed = (a > -30) & (a < 400)
    h = _homogeneous_at(a, cen, ct.spacing_kji, 10.0, allowed)
    out = edt.edt(np.ascontiguousarray(~ref), anisotropy=tuple(ct.spacing_kji))
    ring = (out > 3) & (out <= 15) & (a > -30) & (a < 200)
    assert h[ref].mean() >= 0.8, h[ref].mean()
    assert h[ring].mean() <= 0.5, h[ring].mean()


@pytest.mark.slow
def test_sarcoma_among_muscle_of_its_hu_from_the_centroid_and_interior_clicks(shared_data):
    """STS_010, a 183 mL calf sarcoma among muscle of its HU on non-contrast CT, from its mask's
    centroid and 5 seeded clicks >= 5 mm inside (seed 0). Before the texture bound the homogeneous
    region ran on along the muscle (Dice 0.706 from the centroid, median 0.69 over the six:
    0.49-0.73); after it 0.82 from the centroid, 0.51-0.82 (median 0.765). Asserted: soft tissue,
    Dice >= 0.78 from the centroid, median >= 0.74, none below 0.5."""
    ct, ref = _case(shared_data, "STS_010")
    centroid = ct.kji_to_world(np.argwhere(ref).mean(0)[None])[0]
    ds = []
    for click in [centroid] + list(_interior_clicks(ref, ct, 5, seed=0)):
        m, meas = segment_lesion(ct, click)
        assert meas.kind == "soft_tissue", (click, meas.kind)
        ds.append(dice(m, ref))
    assert ds[0] >= 0.78 and np.median(ds) >= 0.74 and min(ds) >= 0.5, ds
