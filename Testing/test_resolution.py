"""`segmentation.resolution.effective_resolution_mm`: the blur a CT really has per axis, read from
its noise, checked against noise of known correlation (white, box-filtered, interpolated)."""

import numpy as np
import pytest
from scipy import ndimage

from imagio.segmentation.bones import at_common_resolution, thin_peak_factor
from imagio.segmentation.resolution import effective_resolution_mm
from imagio.volume import Volume, make_ijk_to_ras


def _soft_tissue(shape, seed=0, sd=20.0):
    """Homogeneous soft tissue (40 HU) with white noise of ``sd`` HU."""
    rng = np.random.default_rng(seed)
    return (40.0 + rng.normal(0, sd, shape)).astype(np.float32)


def test_white_noise_is_at_its_spacing():
    """Independent voxels: the resolution is the spacing on every axis, anisotropic grids too."""
    for sp in ((3.0, 3.0, 3.0), (2.5, 0.7, 0.7), (5.0, 0.8, 1.2)):
        n = tuple(int(np.ceil(120 / s)) for s in sp)
        r = effective_resolution_mm(_soft_tissue(n), sp)
        np.testing.assert_allclose(r, sp, rtol=0.12)


def test_box_blur_is_its_width():
    """Noise averaged over a box of w voxels along one axis (a slice w voxels thick
    reconstructed every voxel) has an equivalent width of w voxels there (integral of the
    triangle autocorrelation, analytic); the other axes stay at their spacing."""
    sp = (1.0, 1.2, 0.8)
    a = _soft_tissue((90, 80, 100), seed=1, sd=25.0)
    for ax, w in ((0, 3), (2, 4)):
        b = ndimage.uniform_filter1d(a, w, axis=ax)
        r = effective_resolution_mm(b, sp)
        assert r[ax] == pytest.approx(w * sp[ax], rel=0.15), (ax, r)
        others = [i for i in range(3) if i != ax]
        np.testing.assert_allclose(r[others], np.asarray(sp)[others], rtol=0.12)


def test_upsampled_scan_keeps_its_coarse_resolution():
    """White noise on a 3 mm grid resampled (linear) to 1.5 mm: each sample mixes neighbouring
    3 mm voxels, so the resolution is at least the 3 mm of the original voxels (analytic for
    linear interpolation of white noise: 1.5 x 3 = 4.5 mm), not the 1.5 mm spacing; and
    `at_common_resolution` then leaves the image as it is (the old code blurred it again)."""
    a = _soft_tissue((40, 40, 40), seed=2)
    ct = Volume(a, make_ijk_to_ras((3.0, 3.0, 3.0)))
    up = ct.resampled((1.5, 1.5, 1.5), order=1)
    r = effective_resolution_mm(up.array, up.spacing_kji)
    assert np.all(r >= 3.0) and np.all(r < 6.0), r
    assert at_common_resolution(up.array, up.spacing_kji) is up.array
    assert thin_peak_factor(r) < 0.9


def test_no_noise_or_no_tissue_falls_back_to_spacing():
    """A noiseless (synthetic) image or one without soft tissue: the spacing, as before."""
    sp = (2.0, 1.0, 1.0)
    np.testing.assert_allclose(effective_resolution_mm(np.full((30, 60, 60), 40.0, np.float32), sp), sp)
    np.testing.assert_allclose(effective_resolution_mm(np.full((30, 60, 60), -1000.0, np.float32), sp), sp)


def test_estimate_is_computed_once_per_array(monkeypatch):
    """`effective_resolution_mm` keeps its estimate for the array it last read (bone_mask,
    contrast_blood_pool and spinal_canal each asked again, 1-17 s each): the same array object
    is estimated once, with the same result as a fresh estimate; another array (even one with
    equal values), another spacing, or the array changed in place is estimated anew."""
    from imagio.segmentation import resolution as rs

    calls = []
    real = rs._estimate

    def counted(a, s):
        calls.append(1)
        return real(a, s)

    monkeypatch.setattr(rs, "_estimate", counted)
    sp = (2.5, 0.8, 0.8)
    a = ndimage.uniform_filter1d(_soft_tissue((48, 150, 150), seed=3), 3, axis=2)
    first = effective_resolution_mm(a, sp)
    again = effective_resolution_mm(a, sp)
    assert len(calls) == 1
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, real(a, sp))  # the kept estimate is the estimate
    again[:] = 0  # the caller's copy: the kept one is untouched
    np.testing.assert_array_equal(effective_resolution_mm(a, sp), first)
    assert len(calls) == 1
    # at_common_resolution without a resolution reads the same kept estimate
    at_common_resolution(a, sp)
    assert len(calls) == 1
    effective_resolution_mm(a.copy(), sp)  # another array
    assert len(calls) == 2
    effective_resolution_mm(a, (2.5, 0.8, 1.0))  # another spacing
    assert len(calls) == 3
    effective_resolution_mm(a, sp)
    assert len(calls) == 4
    a[::3, ::3, ::3] += 5.0  # changed in place (at the lattice the cache samples)
    effective_resolution_mm(a, sp)
    assert len(calls) == 5


def test_an_integer_ct_gets_the_estimate_of_its_float_copy_to_the_bit():
    """Issue 20: an int16 CT takes a faster path (differences in int32, median and quartiles in
    one partition, the box filter straight into float32); its estimate equals, bit for bit, that
    of the same CT as float32, which takes the path as before. Box-blurred noise along i so that
    one axis reads wider than its spacing."""
    rng = np.random.default_rng(3)
    a = ndimage.uniform_filter1d(rng.normal(40, 25, (40, 90, 100)), 3, axis=2)
    a = np.rint(a).astype(np.int16)
    sp = (2.5, 0.7, 0.7)
    r_int = effective_resolution_mm(a, sp)
    r_float = effective_resolution_mm(a.astype(np.float32), sp)
    assert r_int[2] > 1.5 * sp[2]
    assert r_int.tolist() == r_float.tolist()


def _contrast_chest(pool_hu: float) -> np.ndarray:
    """int16 [k, j, i] at (2.5, 0.7, 0.7) mm: a 300 x 220 mm soft-tissue ellipse (40 HU, noise
    15 HU) holding a 30 mm-radius ball of ``pool_hu`` (a blood pool), 4.2 M voxels (sampled every
    2nd voxel by the band)."""
    rng = np.random.default_rng(5)
    k, j, i = np.ogrid[:64, :256, :256]
    sp = (2.5, 0.7, 0.7)
    body = ((j - 128) * sp[1] / 110) ** 2 + ((i - 128) * sp[2] / 150) ** 2 <= 1
    ball = ((k - 32) * sp[0]) ** 2 + ((j - 128) * sp[1]) ** 2 + ((i - 128) * sp[2]) ** 2 <= 30 ** 2
    a = np.where(ball, pool_hu, np.where(body, 40.0, -1000.0)) + rng.normal(0, 15, (64, 256, 256))
    return np.rint(a).astype(np.int16)


def test_the_contrast_band_on_samples_is_the_whole_ct_band():
    """Issue 20: the contrast phase's band blurs only the lines through its samples
    (`bones.contrast_blood_band_of_ct`, `at_common_resolution_every`); the samples equal the
    whole CT's blur taken every f-th voxel, and the band equals `contrast_blood_band` on the
    whole blurred CT: found on a contrast chest (a 350 HU pool), None on a plain one (50 HU); and
    the phase read on every choice of blurred axes (`contrast_blood_seen_of_ct`) is the same."""
    from imagio.segmentation.bones import (_thick_step, at_common_resolution_every, contrast_blood_band,
                                           contrast_blood_band_of_ct, contrast_blood_seen_of_ct)

    sp = (2.5, 0.7, 0.7)
    ml = 2.5 * 0.7 * 0.7 / 1000
    for pool, found in ((350, True), (50, False)):
        a = _contrast_chest(pool)
        f = _thick_step(a.size)
        assert f == 2
        full = at_common_resolution(a, sp)
        assert full.dtype == np.float32   # blurred (in-plane finer than the common resolution)
        for step in (f, 3):
            assert np.array_equal(at_common_resolution_every(a, sp, step), full[::step, ::step, ::step])
        whole = contrast_blood_band(full, np.ones(a.shape, bool), ml, sp)
        assert (whole is not None) == found
        assert contrast_blood_band_of_ct(a, sp, ml) == whole
        # the phase alone, read on each choice of blurred axes without the resolution estimate
        assert contrast_blood_seen_of_ct(a, sp, ml) == found
