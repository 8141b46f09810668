"""Cache keys by array object (`imagio.caching.array_token`): the same object gives the same
key without reading it; another object, even with the same address after the first was freed,
gives another key. By contents (`content_token`): a copy gives the same key, a value changed in
place another; a copy with other values is a new case for the skin model."""

from __future__ import annotations

import gc

import numpy as np

from imagio.caching import array_token, content_token


def test_token_is_per_live_object_and_never_reused():
    a = np.zeros((4, 5, 6), np.int16)
    t = array_token(a)
    assert array_token(a) == t
    view = a[:, :, :]                       # another object on the same memory: another key
    assert array_token(view)[0] != t[0]
    seen = {t[0]}
    for _ in range(50):                     # freed arrays: their tokens are never handed out again
        del a
        gc.collect()
        a = np.zeros((4, 5, 6), np.int16)
        tok = array_token(a)[0]
        assert tok not in seen
        seen.add(tok)


def test_content_token_is_the_values_whatever_the_object():
    """`content_token`: a copy (another object, as Slicer's nodes hand out) gives the same key, a
    value changed in place in the same object another; a crop (a strided view) gives its
    contiguous copy's key; another dtype or shape of the same bytes another."""
    a = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    t = content_token(a)
    assert content_token(a.copy()) == t
    a[2, 3, 4] += 1
    assert content_token(a) != t
    crop = a[1:3, 1:4, 2:5]
    assert not crop.flags.c_contiguous and content_token(crop) == content_token(crop.copy())
    assert content_token(a.view(np.uint16)) != content_token(a)
    assert content_token(a.reshape(4, 30)) != content_token(a)


def test_skin_model_of_an_edited_copy_is_computed_afresh():
    """The skin cache keyed by the CT object: a copy with one exterior voxel turned to tissue
    is a new case (its body holds the voxel), the original still gets its own cached model."""
    from imagio.planning import skin as sk
    from imagio.volume import Volume, make_ijk_to_ras

    rng = np.random.default_rng(0)
    k, j, i = np.indices((12, 40, 40))
    body = (j - 19.5) ** 2 + (i - 19.5) ** 2 <= 14 ** 2
    hu = np.where(body, 40.0, -1000.0) + rng.normal(0, 15, body.shape)
    ct = Volume(hu.astype(np.int16), make_ijk_to_ras((2.0, 2.0, 2.0)))
    sk.forget_cached_skin()
    a = sk.outer_skin(ct)
    assert sk.outer_skin(ct).body is a.body
    arr = ct.array.copy()
    arr[6, 20, 34] = 40                     # exterior air next to the skin, now tissue
    b = sk.outer_skin(ct.with_array(arr))
    assert b.body[6, 20, 34] and not a.body[6, 20, 34]
    assert sk.outer_skin(ct).body is not b.body


def _direct_digest(a, thr, within=None):
    """The digest `threshold_digest` promises, computed in one piece: BLAKE2b-128 of the bits of
    ``(a > thr) & within`` in C order."""
    import hashlib

    m = np.asarray(a) > thr
    if within is not None:
        m &= within
    return hashlib.blake2b(np.packbits(m, axis=None).tobytes(), digest_size=16).hexdigest()


def test_threshold_digest_is_the_mask_digest_in_any_chunking(monkeypatch):
    """`threshold_digest` equals the digest of the whole mask computed at once, with chunks
    that split rows and slices (a size not dividing the volume), on a non-contiguous array."""
    from imagio import caching
    from imagio.planning.skin import PackedMask

    rng = np.random.default_rng(1)
    a = rng.normal(0, 300, (9, 13, 22)).astype(np.int16)[:, :, ::2]   # a strided view, 11 columns
    w = rng.random(a.shape) < 0.6
    want = _direct_digest(a, -100, w)
    for chunk in (8, 64, 1 << 23):
        monkeypatch.setattr(caching, "_CHUNK", chunk)
        assert caching.threshold_digest(a, -100, within=(w,))[2] == want
        assert caching.threshold_digest(a, -100, within=(PackedMask(w),))[2] == want
    assert caching.threshold_digest(a, -100)[2] == _direct_digest(a, -100)


def test_threshold_digest_sees_only_the_thresholded_mask_inside_within():
    """Values that change above the threshold, or anywhere outside ``within``, keep the key; one
    voxel crossing the threshold inside ``within`` changes it; another grid shape changes it."""
    from imagio.caching import mask_digest, threshold_digest

    rng = np.random.default_rng(2)
    a = rng.normal(-400, 600, (10, 12, 14)).astype(np.int16)
    w = np.zeros(a.shape, bool)
    w[2:8, 3:9, 4:10] = True
    key = threshold_digest(a, -400, within=(w,))
    b = a.copy()
    hot = (b > -400) & w
    b[hot] = 60                                  # tissue painted with other tissue values
    b[~w] = -1000                                # anything outside the region read
    assert threshold_digest(b, -400, within=(w,)) == key
    c = b.copy()
    k, j, i = np.argwhere(hot)[0]
    c[k, j, i] = -900                            # one tissue voxel of the region turned to air
    assert threshold_digest(c, -400, within=(w,)) != key
    assert threshold_digest(a[:, :, :-1], -400) != threshold_digest(a, -400)
    assert mask_digest(w) != mask_digest(np.roll(w, 1, axis=2)) and mask_digest(w) == mask_digest(w.copy())
