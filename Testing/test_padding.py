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


def test_thin_fill_of_data_mask_is_kept_per_ct_contents_outside_a_run(monkeypatch):
    """Outside `keep_fill_regions` `data_mask`'s thin fill (`with_thin_fill`: the face voxels of
    the fill value joined to the padding, which the fill region's opening takes off) is labelled
    once per CT contents: again for the same values in another array object (Slicer and IMAGIO Web
    read the CT anew), anew for other values; the mask is the same either way."""
    padding.forget_cached_fill()
    ct = _circle_ct()
    a = ct.array.copy()
    a[0, 20, 1:10] = -1024   # a one-voxel strip of fill on the first slice, from the padding into the air
    ct = ct.with_array(a)
    calls = []
    real = padding.with_thin_fill
    monkeypatch.setattr(padding, "with_thin_fill", lambda *args: calls.append(1) or real(*args))
    first, c = padding.data_mask(ct, rim_voxels=0, keep_outer_layer=True)
    assert c == -1024.0 and len(calls) == 1
    assert not first[0, 20, 1:10].any() and first[1, 20, 1:10].all()   # the strip is fill; below it, air
    for same in (ct, ct.with_array(a.copy())):
        again, _ = padding.data_mask(same, rim_voxels=0, keep_outer_layer=True)
        assert np.array_equal(again, first) and len(calls) == 1
    padding.data_mask(ct)   # other rim and layer arguments: the same thin fill
    assert len(calls) == 1
    b = a.copy()
    b[0, 20, 5] = -1000   # the strip cut: its far part is data again
    other, _ = padding.data_mask(ct.with_array(b), rim_voxels=0, keep_outer_layer=True)
    assert len(calls) == 2 and other[0, 20, 5:10].all() and not other[0, 20, 1:5].any()
    padding.forget_cached_fill()
    assert np.array_equal(padding.data_mask(ct, rim_voxels=0, keep_outer_layer=True)[0], first) and len(calls) == 3
