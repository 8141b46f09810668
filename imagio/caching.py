"""Cache keys for large arrays: by contents (`content_token`, `mask_digest`,
`threshold_digest`) or, without reading them, by array object (`array_token`).

The per-case caches of what a plan reads of the CT (the skin model, the registration check's
verdict, the planning maps) are keyed on the CT's contents (``content_token``: one SHA-256 pass
over the values, about 0.1 s for a 140 MiB CT): a second target, or the same target planned
again, reuses them whether the caller hands the same array object or a new copy with the same
values (the Slicer module and IMAGIO Web read the CT from its node anew for every plan), and
any changed value, also one written in place into the same object, is a new case (never stale).

``array_token(a)`` identifies the array object ``a`` by a counter drawn once per object (held
while the object lives: a weak reference drops it when the object is freed, so a new array at
the same address never inherits an old token) together with its shape, dtype, strides and data
address, without reading the values: only for arrays that nothing writes after they are made
(the skin model's packed masks, `imagio.planning.skin.PackedMask`). The caches can be emptied
to free their memory (`imagio.planning.skin.forget_cached_skin`,
`imagio.planning.distance_maps.forget_cached_maps`,
`imagio.label_registration.forget_cached_registration`).

A cache whose result reads the array only through a mask (the couch search reads the CT only as
``CT > air`` inside the body and data masks) is keyed on that mask's contents instead
(``threshold_digest``, ``mask_digest``: one pass over the values, no volume-sized temporary):
a new array with the same mask (a lesion painted into tissue) reuses the result, an array
whose mask differs, even the same object edited in place, does not.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
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


def content_token(a: np.ndarray) -> tuple:
    """(shape, dtype, 256-bit SHA-256 digest of the values in C order) of the array ``a``: a
    key of its contents, equal for two arrays with the same values whatever the object (the
    Slicer module and IMAGIO Web read a new copy of the CT from its node for every plan, so a
    key by object, `array_token`, missed every cache on their second target), and different
    after any value changed, also in place (never stale, up to a hash collision, probability
    2**-128 or less). Reads every value on every call (about 0.1 s for the 140 MiB of the 1 mm
    phantom's CT on one core: SHA-256 runs on the CPU's SHA extensions where present)."""
    import hashlib

    a = np.asarray(a)
    h = hashlib.sha256()
    if a.flags.c_contiguous or a.ndim < 2:
        h.update(memoryview(np.ascontiguousarray(a).reshape(-1).view(np.uint8)))
    else:   # a view (a crop): slice by slice, the same bytes without a copy of the whole
        for sl in a:
            h.update(memoryview(np.ascontiguousarray(sl).reshape(-1).view(np.uint8)))
    return a.shape, a.dtype.str, h.hexdigest()


_CHUNK = 1 << 23   # voxels per pass of `threshold_digest` (a multiple of 8: whole bytes of bits)


def _bits(mask) -> np.ndarray:
    """The bool mask [k, j, i] as bits in C order (``np.packbits(mask, axis=None)``); a
    `imagio.planning.skin.PackedMask` already holds them."""
    bits = getattr(mask, "bits", None)
    if bits is not None and tuple(getattr(mask, "shape", ())) and bits.dtype == np.uint8:
        return bits
    return np.packbits(np.asarray(mask, bool), axis=None)


def mask_digest(mask) -> tuple:
    """(shape, 128-bit BLAKE2b digest of the voxels' values) of a bool mask [k, j, i] (numpy
    array or `imagio.planning.skin.PackedMask`): equal digests mean equal masks (up to a hash
    collision, probability 2**-128). Reads the mask (one bit per voxel hashed)."""
    import hashlib

    return tuple(np.shape(mask)), hashlib.blake2b(_bits(mask).tobytes(), digest_size=16).hexdigest()


def threshold_digest(a: np.ndarray, above: float, within=()) -> tuple:
    """(shape, threshold, 128-bit BLAKE2b digest) of the mask ``a > above`` and the union of the
    masks ``within`` (bool masks or `PackedMask` of ``a``'s shape; none: everywhere): a key for a result that reads the
    array ``a`` only through that mask (two arrays whose values differ only where the mask is
    the same, e.g. a lesion painted with tissue HU into tissue, give the same key). Computed
    in chunks of ``_CHUNK`` voxels (no volume-sized temporary); reads every value of ``a``."""
    import hashlib

    a = np.asarray(a)
    flat = np.ascontiguousarray(a).reshape(-1)
    wb = None
    for m in within:
        if tuple(np.shape(m)) != a.shape:
            raise ValueError(f"threshold_digest: a mask of shape {tuple(np.shape(m))} for an array of shape {a.shape}")
        wb = _bits(m) if wb is None else wb | _bits(m)
    h = hashlib.blake2b(digest_size=16)
    for s in range(0, flat.size, _CHUNK):
        b = np.packbits(flat[s:s + _CHUNK] > above)
        if wb is not None:
            b &= wb[s // 8:s // 8 + b.size]
        h.update(b.tobytes())
    return a.shape, float(above), h.hexdigest()


def _imported_modules(path, module: str, is_package: bool, root) -> set:
    """The ``imagio`` modules that the source file ``path`` (module ``module``) imports anywhere
    (module level or inside functions), as file paths under ``root`` (the ``imagio`` package
    folder): relative imports resolved against the module's package, absolute ``imagio.*``."""
    import ast
    from pathlib import Path

    root = Path(root)
    top = root.name
    pkg = module if is_package else module.rpartition(".")[0]
    found = set()

    def add(name: str) -> bool:
        parts = name.split(".")
        if parts[0] != top:
            return False
        base = root.joinpath(*parts[1:])
        for cand in (base / "__init__.py", base.with_suffix(".py")):
            if cand.is_file():
                found.add(cand.resolve())
                return True
        return False

    for node in ast.walk(ast.parse(Path(path).read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            for a in node.names:
                add(a.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            add(name)
            for a in node.names:   # `from pkg import module`
                add(f"{name}.{a.name}")
    return found


def source_files(files, root) -> list:
    """The source files ``files`` and every module of the package at ``root`` (a folder, e.g.
    ``imagio/``) that they import, followed through those modules' own imports (any
    ``import`` statement, also inside functions; the ``__init__.py`` of each package on the
    way included), as sorted resolved paths. Raises OSError for an unreadable file and
    SyntaxError for a file that does not parse."""
    from pathlib import Path

    root = Path(root).resolve()
    todo = [Path(f).resolve() for f in files]
    seen: set = set()
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        parts = list(f.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        for k in range(1, len(parts)):   # the packages on the way are run on import
            init = root.parent.joinpath(*parts[:k], "__init__.py")
            if init.is_file():
                todo.append(init.resolve())
        todo.extend(_imported_modules(f, ".".join(parts), is_package, root) - seen)
    return sorted(seen)


def source_digest(files, root, data=()) -> str:
    """128-bit BLAKE2b digest (hex) of `source_files` (``files`` and the modules under
    ``root`` that they import, transitively) and of the files ``data`` (the data that code
    reads, under ``root``): a key for a result computed by that code from that data. An edit
    to any of these files changes it, an edit elsewhere does not. Each file is hashed with its
    path relative to ``root``'s parent. Raises OSError and SyntaxError as `source_files`."""
    import hashlib
    from pathlib import Path

    base = Path(root).resolve().parent
    h = hashlib.blake2b(digest_size=16)
    for f in source_files(files, root) + sorted(Path(d).resolve() for d in data):
        h.update(str(f.relative_to(base)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


class ThreadKept:
    """Results kept per thread while a `keep` context is open: the store behind the
    segmentation's keep-contexts (`padding.keep_fill_regions`, `segmentation.bones.keep_common_resolution`,
    `segmentation.bone_shell.keep_lung_hulls`), which let one rule-based segmentation compute a
    result once that several of its steps ask for. ``entries`` is None outside the context (the
    caller then computes without keeping), else a fresh ``factory()`` (a list or dict the caller
    fills). Nestable: only the outermost context creates the store and drops it on exit, so
    nothing is held after it."""

    def __init__(self, factory=list):
        self._local = threading.local()
        self._factory = factory

    @property
    def entries(self):
        """This thread's store while a context is open, else None."""
        return getattr(self._local, "entries", None)

    @contextlib.contextmanager
    def keep(self):
        """Open the context (see the class doc)."""
        outer = self.entries is None
        if outer:
            self._local.entries = self._factory()
        try:
            yield
        finally:
            if outer:
                self._local.entries = None
