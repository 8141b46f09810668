"""Cache keys for large arrays without reading them: one token per live array object.

A per-case cache (the skin model, the planning maps) must not re-read a 100-500 MB CT on every
call to build its key. ``array_token(a)`` identifies the array object ``a`` by a counter drawn
once per object (held while the object lives: a weak reference drops it when the object is
freed, so a new array at the same address never inherits an old token) together with its
shape, dtype, strides and data address.

The key does not see values written into the same array object in place after a call: code
that edits an array in place and plans again must call the cache's ``forget`` function
(`imagio.planning.skin.forget_cached_skin`, `imagio.planning.distance_maps.forget_cached_maps`)
or pass a new array (``Volume.with_array``). Nothing in imagio edits a CT or label array in
place after building it (the phantom paints its lesions before it returns).
"""

from __future__ import annotations

import itertools
import weakref

import numpy as np

_TOKENS: dict = {}             # id(array) -> (token, weak reference to the array)
_COUNTER = itertools.count(1)


def array_token(a: np.ndarray) -> tuple:
    """(token, shape, dtype, strides, data address) of the array object ``a`` (see module doc).
    O(1): the values are not read."""
    k = id(a)
    hit = _TOKENS.get(k)
    if hit is None or hit[1]() is not a:
        ref = weakref.ref(a, lambda _r, k=k: _TOKENS.pop(k, None) if _TOKENS.get(k, (0, None))[1] is _r else None)
        hit = (next(_COUNTER), ref)
        _TOKENS[k] = hit
    return (hit[0], a.shape, a.dtype.str, a.strides, int(a.__array_interface__["data"][0]))
