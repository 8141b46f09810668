"""`padding.keep_fill_regions`: within it `padding_mask` and `scan_circle_fill` are computed once
per CT array object (one rule-based segmentation asked for them 7 to 9 times) and give what they
give outside it; each caller gets its own copy; nothing is kept after the outermost context.

Scene: a CT of noisy tissue in noisy air whose voxels outside the circle inscribed in each
axial slice hold a padding value (a reconstruction circle), on an oblique, anisotropic grid."""

import numpy as np

from conftest import rotation
from imagio import padding
from imagio.padding import keep_fill_regions, padding_mask, scan_circle_fill
from imagio.volume import Volume, make_ijk_to_ras


def _circle_ct() -> Volume:
    rng = np.random.default_rng(5)
    k, j, i = np.indices((6, 40, 48))
    y, x = (j - 19.5) / 19.5, (i - 23.5) / 23.5
    a = np.where(x ** 2 + y ** 2 <= 0.3, rng.normal(40, 15, k.shape), rng.normal(-1000, 15, k.shape))
    a[:, x[0] ** 2 + y[0] ** 2 > 1.0] = -1024.0
    return Volume(np.rint(a).astype(np.int16),
                  make_ijk_to_ras((0.8, 0.8, 2.5), (0.0, 0.0, 0.0), rotation((1.0, 1.0, 0.0), 20.0)))


def test_kept_fill_regions_equal_the_computed_ones_and_go_with_the_context():
    ct = _circle_ct()
    want, want_c = padding_mask(ct)
    circle, circle_c = scan_circle_fill(ct.array, ct.spacing_kji)
    assert want_c == -1024.0 and circle_c == -1024.0 and want.any() and circle.any()
    with keep_fill_regions():
        with keep_fill_regions():   # nested: the same store
            first, c = padding_mask(ct)
        assert c == want_c and np.array_equal(first, want)
        first[:] = False            # the caller's copy
        again, _ = padding_mask(ct)
        got, c = scan_circle_fill(ct.array, ct.spacing_kji)
        assert np.array_equal(again, want) and np.array_equal(got, circle) and c == circle_c
        assert len(padding._KEPT.entries) == 2
        # another array object (the same values), another spacing: computed, not taken
        copy = ct.with_array(ct.array.copy())
        assert np.array_equal(padding_mask(copy)[0], want)
        scan_circle_fill(ct.array, (2.5, 0.8, 1.6))
        assert len(padding._KEPT.entries) == 4
    assert padding._KEPT.entries is None
    assert padding_mask(ct)[0].flags.writeable
