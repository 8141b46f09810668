"""The contrast blood pool's small pieces are joined to it only in the mediastinum (issue 14,
new-user trial 68 M3).

`bones.pool_core` joins a small pool-density piece to the pool's large core through thick tissue at
or above the pool's density: undiluted contrast swirling in the right atrium and venae cavae cuts
the chamber's blood into pieces. On the chest CTA's upper half, which holds no enhanced abdominal
organ, the deep-tissue level is lower (93 HU against 158 HU for the whole scan), and so is the
pool's half-maximum (`bones.pool_low_hu`: 287 against 319 HU). The first rib's cancellous bone
then reached the pool's band. It lies under the subclavian vein's undiluted contrast, whose blur
joined four rib specks to the pool. The pool's rim then took 6.3 mL of the rib, 86-122 mm from the
cut face (labelled body; ribs in the whole scan). A joined piece must now lie, for at least half of
its voxels, inside the lungs' per-plane hull (`bones.pool_mediastinum`). The whole chest CTA's 11
joined pieces all lie there, and its labels are unchanged voxel for voxel."""

import numpy as np
import pytest

from imagio import io
from imagio.segmentation import bones
from imagio.segmentation.common import anatomical_axes, crop_slices
from imagio.segmentation.rules import segment_masks

SPACING = np.array([2.0, 1.0, 1.5])  # anisotropic [k, j, i] mm


def _pool_and_speck():
    """A 40 x 40 x 40 mm block at the pool's density (large core), a 10 mm cube of it (0.6
    mL after the opening: small) 12 mm away, and between them a 10 mm thick bar of denser
    tissue (undiluted contrast) that joins them through thick dense tissue."""
    shape = (40, 90, 90)
    band = np.zeros(shape, bool)
    band[:20, 5:45, 5:32] = True                   # the pool: 40 x 40 x 40.5 mm
    band[5:10, 15:25, 44:51] = True                # the speck: 10 x 10 x 10.5 mm
    dense = band.copy()
    dense[4:11, 14:26, 30:46] = True               # undiluted contrast between them
    speck = np.zeros(shape, bool)
    speck[5:10, 15:25, 44:51] = True
    return band, dense, speck


@pytest.mark.parametrize("flip", [(), (0,), (1, 2)])
def test_pool_core_joins_small_pieces_only_in_the_mediastinum(flip):
    band, dense, speck = _pool_and_speck()
    if flip:
        band, dense, speck = (np.flip(x, flip) for x in (band, dense, speck))
    vml = float(np.prod(SPACING)) / 1000.0
    core = bones.pool_core(band, SPACING, vml, dense)
    assert core[speck].mean() > 0.5                # joined through the dense bar (as before)
    assert core[~speck].sum() * vml > bones.MIN_THICK_POOL_ML
    outside = ~speck                                # a mediastinum that does not hold the speck
    core_out = bones.pool_core(band, SPACING, vml, dense, outside)
    assert not core_out[speck].any()
    np.testing.assert_array_equal(core_out & ~speck, core & ~speck)   # the large core is kept
    inside = np.ones(band.shape, bool)
    np.testing.assert_array_equal(bones.pool_core(band, SPACING, vml, dense, inside), core)


@pytest.mark.data
@pytest.mark.slow
def test_chest_cta_upper_half_keeps_the_first_rib():
    """The whole chest CTA's ribs in its upper half beyond 40 mm of the cut face: the half labels
    at least 90 % of them ribs (issue 14's 10 % tolerance). Measured, ribs lost of 88.3 mL:
    main e989413 17.0 mL (7.3 mL of them in no bone label), this fix 1.8 mL (1.0 mL)."""
    from conftest import SHARED_DATA
    path = SHARED_DATA / "totalsegmentator-chest-cta" / "chest_cta.nii.gz"
    if not path.exists():
        pytest.skip("chest CTA not present")
    ct = io.read_image(path)
    s, sign = anatomical_axes(ct)["S"]
    n = ct.shape[s]
    sl = [slice(None)] * 3
    sl[s] = slice(n // 2, n) if sign > 0 else slice(0, n - n // 2)
    half = crop_slices(ct, tuple(sl))
    whole_ribs = segment_masks(ct, ["body", "lungs", "bones"])[0]["ribs"][tuple(sl)]
    m, _ = segment_masks(half, ["body", "lungs", "bones"])
    # the voxels more than 40 mm from the cut face (the half's inferior face)
    far = int(np.ceil(40.0 / half.spacing_kji[s]))
    keep = [slice(None)] * 3
    keep[s] = slice(far, None) if sign > 0 else slice(0, half.shape[s] - far)
    keep = tuple(keep)
    ref = whole_ribs[keep]
    lost = ref & ~m["ribs"][keep]
    assert ref.sum() * half.voxel_volume_ml > 50.0
    assert lost.sum() <= 0.10 * ref.sum(), (lost.sum() * half.voxel_volume_ml, ref.sum() * half.voxel_volume_ml)
