"""Issue 20 (speed25): the rule-based segmentation's fast paths give the same result as the code
they replace. ``bones.keep_common_resolution`` returns
the blur it computed for the same array (read-only) and holds nothing after the context; and a
whole rules segmentation of the phantom on an oblique, left-right flipped, anisotropic grid is
the same, mask for mask and in its meta, with the old forms (references below) swapped in."""

import threading

import numpy as np
from scipy import ndimage

from imagio.segmentation import airways, body, bones, rules


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


def _limbs_whole_grid(ct, a, other):
    """`body.limbs` before the change (a whole-grid label map), the reference."""
    import edt

    from imagio.segmentation.body import BODY_HU, GAS_MEDIAN_HU, bbox_slices, components, dilate_mm, embed, rule

    out = np.zeros_like(other)
    box = bbox_slices(other)
    if box is None:
        return out
    lab = embed(components(other[box], connectivity=6)[0], other.shape, box)
    deep = rule("subcutaneous_probe_mm")
    bone = rule("calcium_hu")
    margin = [int(np.ceil(deep / float(x))) + 2 for x in ct.spacing_kji]
    for c, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is None:
            continue
        sl = tuple(slice(max(x.start - g, 0), min(x.stop + g, n_)) for x, n_, g in zip(sl, lab.shape, margin))
        comp = lab[sl] == c
        if not (comp & (a[sl] > bone)).any():
            continue
        rim = (dilate_mm(comp, deep, ct.spacing_kji) & ~ndimage.binary_dilation(comp, iterations=2)
               & (a[sl] <= BODY_HU))
        if not rim.any() or float(np.median(a[sl][rim])) > GAS_MEDIAN_HU:
            continue
        d = edt.edt(np.ascontiguousarray(comp), anisotropy=tuple(float(x) for x in ct.spacing_kji),
                    black_border=False)
        if (d[comp & (a[sl] > bone)] > deep).any():
            out[sl] |= comp
    return out


def test_limbs_on_the_grown_box_equal_the_whole_grid_form():
    """`body.limbs` on random scenes of an oblique, i-flipped, 1.2 x 0.9 x 2.1 mm grid: limbs
    (soft-tissue cylinders in air with a bone core deep inside), pieces without bone, pieces
    whose bone is at their surface, pieces touching the array's faces (their surroundings
    clipped there): the same voxels as the whole-grid form, and limbs are found."""
    from conftest import rotation
    from imagio.volume import Volume, make_ijk_to_ras

    rng = np.random.default_rng(25)
    d = rotation((1, 2, 3), 20.0) @ np.diag([-1.0, 1.0, 1.0])
    found = 0
    for t in range(12):
        shape = (int(rng.integers(20, 40)), int(rng.integers(40, 70)), int(rng.integers(40, 70)))
        a = rng.normal(-1000.0, 20.0, shape).astype(np.float32)
        other = np.zeros(shape, bool)
        kk, jj, ii = np.ogrid[:shape[0], :shape[1], :shape[2]]
        for _ in range(int(rng.integers(1, 5))):
            cj, ci = rng.uniform(0, shape[1]), rng.uniform(0, shape[2])
            r = rng.uniform(4, 14)
            rr = (jj - cj) ** 2 + (ii - ci) ** 2
            piece = np.broadcast_to(rr <= r * r, shape) & (kk >= rng.integers(0, 6))
            other |= piece
            a[piece] = rng.normal(40.0, 10.0, int(piece.sum()))
            kind = rng.integers(0, 3)
            if kind == 0:      # a bone core deep inside
                a[np.broadcast_to(rr <= (0.35 * r) ** 2, shape) & piece] = 700.0
            elif kind == 1:    # dense at the surface only (a table's rail)
                a[np.broadcast_to((rr <= r * r) & (rr >= (r - 1) ** 2), shape) & piece] = 500.0
        ct = Volume(a, make_ijk_to_ras((1.2, 0.9, 2.1), (3.0, -7.0, 11.0), d), "scene")
        new = body.limbs(ct, a, other)
        ref = _limbs_whole_grid(ct, a, other)
        np.testing.assert_array_equal(new, ref)
        found += int(new.any())
    assert found >= 3


def _dilate_whole(mask, structure=None, iterations=1):
    return ndimage.binary_dilation(mask, structure, iterations=iterations)


def test_rules_segmentation_same_as_with_the_old_forms(monkeypatch):
    """The default rules segmentation (body, bones, lungs, airways) of the 3 mm phantom on an
    oblique (17 deg), left-right flipped, 1.7 x 2.3 x 3.1 mm grid, and the lungs' in-plane
    pieces it labels, give the same masks voxel for voxel and the same meta as with scipy's
    whole-volume dilation (`airways.opened_lumen`), the whole-grid `body.limbs` and an uncached
    blur swapped in."""
    import contextlib

    from imagio import phantom
    from test_segmentation_spine import _on_oblique

    ph = phantom.generate(spacing=3.0, seed=0)
    ct, _ = _on_oblique(ph.ct, ph.labels)
    masks, meta = rules.segment_masks(ct, ("body", "bones", "lungs", "airways", "pleura"))
    assert masks["ribs"].any() and masks["vertebrae"].any() and masks["trachea"].any()

    monkeypatch.setattr(airways, "dilate_voxels", _dilate_whole)
    monkeypatch.setattr(body, "limbs", _limbs_whole_grid)
    monkeypatch.setattr(bones, "keep_common_resolution", contextlib.nullcontext)
    old, old_meta = rules.segment_masks(ct, ("body", "bones", "lungs", "airways", "pleura"))
    assert sorted(old) == sorted(masks)
    for name in masks:
        np.testing.assert_array_equal(masks[name], old[name], err_msg=name)
    assert repr(meta) == repr(old_meta)
