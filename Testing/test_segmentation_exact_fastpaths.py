"""Issue 20 (speed25): the rule-based segmentation's fast paths give the same result as the code
they replace. ``common.label_in_planes`` numbers the in-plane components exactly as
``scipy.ndimage.label(mask, plane_structure(axis))``; ``bones.keep_common_resolution`` returns
the blur it computed for the same array (read-only) and holds nothing after the context; and a
whole rules segmentation of the phantom on an oblique, left-right flipped, anisotropic grid is
the same, mask for mask and in its meta, with the old forms (references below) swapped in."""

import threading

import numpy as np
import pytest
from scipy import ndimage

from imagio.segmentation import airways, blood_pool, bones, common, rules, spine
from imagio.segmentation.common import label_in_planes, plane_structure


def _label_in_planes_scipy(mask, axis):
    """The reference (the code before the change): scipy on the whole volume."""
    return ndimage.label(mask, structure=plane_structure(axis))


def _random_masks(rng, n):
    for t in range(n):
        shape = tuple(int(x) for x in rng.integers(1, 23, 3))
        m = ndimage.gaussian_filter(rng.random(shape), rng.uniform(0.0, 1.8)) > rng.uniform(0.35, 0.65)
        if t % 9 == 0:
            m[:] = False
        elif t % 13 == 0:
            m[:] = True
        elif t % 17 == 0:
            m[:] = False
            m[tuple(int(rng.integers(0, s)) for s in shape)] = True
        yield m


def test_label_in_planes_equals_scipy_labels():
    """Same labels (values, dtype, count) as scipy for every axis on 400 random masks of
    anisotropic shapes: empty, full, single voxels, many small pieces, thin slabs. A numbering
    that differed (e.g. per plane instead of the volume's raster order), a missed or an extra
    voxel (cc3d on a 2-D bool plane labels background pixels) fails."""
    rng = np.random.default_rng(20)
    tried = 0
    for m in _random_masks(rng, 400):
        for ax in range(3):
            ref, n_ref = _label_in_planes_scipy(m, ax)
            lab, n = label_in_planes(m, ax)
            assert n == n_ref
            assert lab.dtype == ref.dtype
            np.testing.assert_array_equal(lab, ref)
            tried += int(n_ref > 1)
    assert tried > 500   # most cases hold several components


def test_label_in_planes_refuses_a_2d_mask():
    with pytest.raises(ValueError, match="3-D"):
        label_in_planes(np.ones((4, 5), bool), 0)


def test_common_resolution_kept_only_within_its_context():
    """Inside `keep_common_resolution` the blur is computed once per array object (the same,
    read-only result, equal to scipy's Gaussian); a different array (a copy, or the same array
    with changed values) is blurred anew; another thread keeps its own; after the context
    nothing is kept and each call computes again."""
    rng = np.random.default_rng(3)
    sk = (0.7, 1.1, 2.5)                        # finer than the common resolution on k and j
    a = rng.normal(40.0, 20.0, (24, 30, 18)).astype(np.float32)
    ref = bones.at_common_resolution(a, sk)
    assert ref is not a and ref.flags.writeable   # outside the context: a fresh, writable array
    assert bones.at_common_resolution(a, sk) is not ref
    with bones.keep_common_resolution():
        first = bones.at_common_resolution(a, sk)
        np.testing.assert_array_equal(first, ref)
        assert not first.flags.writeable
        assert bones.at_common_resolution(a, sk) is first
        with bones.keep_common_resolution():   # nested: the same store
            assert bones.at_common_resolution(a, sk) is first
        assert bones.at_common_resolution(a, sk) is first   # the inner exit dropped nothing
        other = a.copy()
        assert bones.at_common_resolution(other, sk) is not first
        seen = []
        t = threading.Thread(target=lambda: seen.append(bones.at_common_resolution(a, sk)))
        t.start()
        t.join()
        assert seen[0] is not first and seen[0].flags.writeable   # no context in that thread
        np.testing.assert_array_equal(seen[0], ref)
        a[0, 0, 0] += 500.0                      # a sampled voxel changed: blurred again
        changed = bones.at_common_resolution(a, sk)
        assert changed is not first and changed[0, 0, 0] != first[0, 0, 0]
    assert getattr(bones._KEPT, "entries", None) is None
    assert bones.at_common_resolution(a, sk) is not changed


def _dilate_whole(mask, structure=None, iterations=1):
    return ndimage.binary_dilation(mask, structure, iterations=iterations)


def test_rules_segmentation_same_as_with_the_old_forms(monkeypatch):
    """The default rules segmentation (body, bones, lungs, airways) of the 3 mm phantom on an
    oblique (17 deg), left-right flipped, 1.7 x 2.3 x 3.1 mm grid, and the lungs' in-plane
    pieces it labels, give the same masks voxel for voxel and the same meta as with scipy's
    whole-volume labelling and dilation and an uncached blur swapped in."""
    import contextlib

    from imagio import phantom
    from test_segmentation_spine import _on_oblique

    ph = phantom.generate(spacing=3.0, seed=0)
    ct, _ = _on_oblique(ph.ct, ph.labels)
    masks, meta = rules.segment_masks(ct, ("body", "bones", "lungs", "airways", "pleura"))
    assert masks["ribs"].any() and masks["vertebrae"].any() and masks["trachea"].any()

    for mod in (common, bones, spine, airways, blood_pool):
        if hasattr(mod, "label_in_planes"):
            monkeypatch.setattr(mod, "label_in_planes", _label_in_planes_scipy)
    monkeypatch.setattr(airways, "dilate_voxels", _dilate_whole)
    monkeypatch.setattr(bones, "keep_common_resolution", contextlib.nullcontext)
    old, old_meta = rules.segment_masks(ct, ("body", "bones", "lungs", "airways", "pleura"))
    assert sorted(old) == sorted(masks)
    for name in masks:
        np.testing.assert_array_equal(masks[name], old[name], err_msg=name)
    assert repr(meta) == repr(old_meta)
