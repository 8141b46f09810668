"""Cache keys by array object (`imagio.caching.array_token`): the same object gives the same
key without reading it; another object, even with the same address after the first was freed,
gives another key; a copy with other values is a new case for the skin model."""

from __future__ import annotations

import gc

import numpy as np

from imagio.caching import array_token


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
