"""`Volume`: a numpy array indexed [k, j, i] plus the 4x4 matrix mapping IJK to RAS (mm).

This is the one image type of the library. It matches what Slicer holds: ``arrayFromVolume``
returns [k, j, i] arrays and ``GetIJKToRASMatrix`` the affine. World coordinates are RAS
millimetres everywhere; LPS appears only in ``imagio.io``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .errors import InputError


def make_ijk_to_ras(spacing, origin=(0.0, 0.0, 0.0), direction=None) -> np.ndarray:
    """Build a 4x4 IJK->RAS matrix.

    spacing: (si, sj, sk) in mm along the i, j, k axes; origin: RAS mm of voxel (0, 0, 0);
    direction: 3x3 whose *columns* are the unit RAS directions of the i, j, k axes.
    """
    direction = np.eye(3) if direction is None else np.asarray(direction, float)
    m = np.eye(4)
    m[:3, :3] = direction * np.asarray(spacing, float)[None, :]
    m[:3, 3] = np.asarray(origin, float)
    return m


BLAS_ROWS = 2048   # rows per call of `rows_matmul`


def rows_matmul(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``x @ m`` for points ``x`` (N, 3) and a small matrix or vector ``m`` (3, c) or (3,), the
    product taken ``BLAS_ROWS`` rows at a time, the last call taking the rest (``BLAS_ROWS`` to
    2 x ``BLAS_ROWS`` - 1 rows). The same values as one call (BLAS computes each row alone; the
    calls keep every row's position modulo ``BLAS_ROWS`` and the same last rows as one call:
    tested), at a fraction of the CPU time: OpenBLAS runs a product of a million rows on all its
    threads, which spin around a memory-bound 3-term product (issue 20: 3 M points, 0.74 CPU-s
    in one call with 2 threads, 0.06 in calls of 2048 rows; with one thread 0.13 and 0.05).
    Other shapes: one call."""
    x = np.asarray(x)
    n = len(x) if x.ndim == 2 else 0
    if n < 2 * BLAS_ROWS:
        return x @ m
    out = np.empty((n,) + np.shape(m)[1:], np.result_type(x, m))
    a = 0
    while a < n:
        b = n if n - a < 2 * BLAS_ROWS else a + BLAS_ROWS
        out[a:b] = x[a:b] @ m
        a = b
    return out


def ras_canonical_plan(ijk_to_ras: np.ndarray):
    """Axis permutation and flips that bring a [k, j, i] array to RAS-canonical [S, A, R] order
    (array axis 2 along +R, 1 along +A, 0 along +S), like nibabel's as_closest_canonical.
    Returns (perm, flip) with new = arr.transpose(perm)[flips]."""
    d = ijk_to_ras[:3, :3] / np.linalg.norm(ijk_to_ras[:3, :3], axis=0)
    world_of_voxel = [-1, -1, -1]
    used = set()
    for a in np.argsort(-np.abs(d).max(axis=0), kind="stable"):  # most clearly aligned voxel axis first
        order = [w for w in np.argsort(-np.abs(d[:, a]), kind="stable") if w not in used]
        world_of_voxel[a] = int(order[0])
        used.add(order[0])
    perm, flip = [], []
    for n in range(3):  # new array axis n <-> world axis 2 - n
        w = 2 - n
        a = world_of_voxel.index(w)
        perm.append(2 - a)  # voxel axis a (i=0) is array axis 2 - a
        flip.append(bool(d[w, a] < 0))
    return perm, flip


def reorient_array(arr: np.ndarray, perm, flip, copy: bool = True) -> np.ndarray:
    """``arr`` [k, j, i] in the order of :func:`ras_canonical_plan`'s (perm, flip) (a copy; with
    ``copy`` False a strided view of ``arr``)."""
    out = arr.transpose(perm)
    sl = tuple(slice(None, None, -1) if f else slice(None) for f in flip)
    return np.ascontiguousarray(out[sl]) if copy else out[sl]


def unreorient_array(arr: np.ndarray, perm, flip) -> np.ndarray:
    """The inverse of :func:`reorient_array`: back to the original storage order (a copy)."""
    sl = tuple(slice(None, None, -1) if f else slice(None) for f in flip)
    return np.ascontiguousarray(arr[sl].transpose(np.argsort(perm)))


def reorient_index(kji, perm, flip, shape) -> np.ndarray:
    """Voxel indices ``kji`` (..., 3) [k, j, i] of an array of ``shape`` (k, j, i) as indices of
    the same voxels in its :func:`reorient_array` (``perm``, ``flip``); integer or fractional
    (a point between voxel centres keeps its place)."""
    a = np.asarray(kji)
    sh = np.asarray(shape)[list(perm)]
    new = a[..., list(perm)]
    return np.where(np.asarray(flip, bool), sh - 1 - new, new)


def unreorient_index(kji, perm, flip, shape) -> np.ndarray:
    """The inverse of :func:`reorient_index`: indices ``kji`` (..., 3) in the reoriented array
    back to the original array of ``shape`` (k, j, i, the original storage's)."""
    a = np.asarray(kji)
    sh = np.asarray(shape)[list(perm)]
    b = np.where(np.asarray(flip, bool), sh - 1 - a, a)
    out = np.empty_like(b)
    out[..., list(perm)] = b
    return out


def unreorient_axis_index(n: int, v, perm, flip, shape) -> tuple[int, int]:
    """(axis, index) in the original array of ``shape`` of the plane ``v`` across axis ``n`` of
    the :func:`reorient_array` (``perm``, ``flip``)."""
    a = int(perm[n])
    return a, (int(shape[a]) - 1 - int(v) if flip[n] else int(v))


def as_lps_canonical(vol: "Volume") -> tuple["Volume", list, list]:
    """(the same world image stored in LPS-canonical order, perm, flip): array axis 2 along the
    world axis closest to +L (-R), 1 to +P (-A), 0 to +S, the order in which DICOM (patient LPS)
    and the images converted from it are most often stored; as :func:`as_ras_canonical` otherwise
    (``vol`` itself when already in that order; back with :func:`unreorient_array`)."""
    perm, flip = ras_canonical_plan(vol.ijk_to_ras)
    flip = [flip[0], not flip[1], not flip[2]]
    return _reordered(vol, perm, flip)


def as_ras_canonical(vol: "Volume", view: bool = False) -> tuple["Volume", list, list]:
    """(the same world image stored in RAS-canonical order, perm, flip): array axis 2 along the
    world axis closest to +R, 1 to +A, 0 to +S (:func:`ras_canonical_plan`), the affine changed
    so every voxel keeps its world position. An algorithm run on it gives the same answer for
    every storage of one world image (array order, axis flips, direction cosines up to the
    nearest axis): per-axis filters, pyramids, grid anchors, tie-breaking and first-hit order
    all see one array. ``vol`` itself when it is already in that order. Map arrays back to
    ``vol``'s grid with :func:`unreorient_array`. ``view``: its array a strided view of ``vol``'s
    (no full-size copy; for a reader of slices, `world_digest`)."""
    perm, flip = ras_canonical_plan(vol.ijk_to_ras)
    return _reordered(vol, perm, flip, view)


def _reordered(vol: "Volume", perm, flip, view: bool = False) -> tuple["Volume", list, list]:
    """(``vol`` stored in the order of (``perm``, ``flip``), `reorient_array`'s, every voxel at its
    world position, perm, flip); ``vol`` itself for the identity."""
    if list(perm) == [0, 1, 2] and not any(flip):
        return vol, list(perm), list(flip)
    arr = reorient_array(vol.array, perm, flip, copy=not view)
    # new voxel index (kji) -> old voxel index (kji): old[perm[n]] = new[n], or its mirror
    a = np.zeros((4, 4))
    a[3, 3] = 1.0
    for n in range(3):
        a[perm[n], n] = -1.0 if flip[n] else 1.0
        a[perm[n], 3] = vol.shape[perm[n]] - 1.0 if flip[n] else 0.0
    rev = np.eye(4)[[2, 1, 0, 3]]  # ijk <-> kji
    m = vol.ijk_to_ras @ rev @ a @ rev
    return (Volume(arr, m, vol.name, dict(vol.labels), dict(vol.meta), list(vol.warnings),
                   scanner_coordinates=vol.scanner_coordinates, outline_doubts=dict(vol.outline_doubts)), perm, flip)


AXES_DECIMALS = 9   # the direction x spacing part of an affine rounded to 1e-9 mm per voxel step


def on_quantised_grid(vol: "Volume") -> "Volume":
    """``vol`` with its IJK -> RAS affine rounded: the direction x spacing part to
    ``AXES_DECIMALS`` (1e-9 mm per voxel step), the origin to ``world_order.QUANTUM_MM`` (1e-6 mm);
    the array shared, every voxel moved by at most ~1e-6 mm (index x 1e-9 + 1e-6). The same grid
    reached by another route (another storage reordered by :func:`as_ras_canonical`, an affine
    read by Slicer instead of SimpleITK: matrices equal up to ~1e-14 mm) becomes the same floats,
    so a result that breaks a tie on computed positions does not depend on the route (new-user
    trial 95 F8: the Slicer module and the CLI planned other sarcoma cores on an oblique grid whose
    two affines differed by 3e-14 mm). ``vol`` itself when already rounded."""
    from .world_order import QUANTUM_DECIMALS

    m = np.array(vol.ijk_to_ras, float)
    q = m.copy()
    q[:3, :3] = np.round(m[:3, :3], AXES_DECIMALS)
    q[:3, 3] = np.round(m[:3, 3], QUANTUM_DECIMALS)
    q += 0.0   # no -0.0
    if np.array_equal(q, m):
        return vol
    return Volume(vol.array, q, vol.name, dict(vol.labels), dict(vol.meta), list(vol.warnings),
                  scanner_coordinates=vol.scanner_coordinates, outline_doubts=dict(vol.outline_doubts))


def world_digest(vol: "Volume") -> str:
    """A fingerprint of the world image ``vol`` shows (hex str): its RAS-canonical storage
    (:func:`as_ras_canonical`), the affine to 0.01 mm and the voxel values to 1 (HU), hashed with
    BLAKE2b. Equal for every storage of one image (axis order, flips), different for another
    image or the same file with other voxels: what `imagio plan` records of its CT, so that
    `imagio report` draws the plan on that CT only (new-user trial 36 M1: another patient's CT
    over the target's coordinates was pictured under the plan, without a word). Slice by slice:
    no full-size temporary."""
    import hashlib

    canon = as_ras_canonical(vol, view=True)[0]   # a view: hashed one slice (copy) at a time
    h = hashlib.blake2b(digest_size=16)
    h.update(np.asarray(canon.shape, np.int64).tobytes())
    h.update((np.round(np.asarray(canon.ijk_to_ras, float), 2) + 0.0).tobytes())   # + 0.0: -0.0 (a -1e-7 cosine) is 0.0
    # an integer image is whole already: its values straight to int32, the same bytes as rounding
    # them through a float64 copy per slice (issue 20: the CT and the label map of every plan)
    dt = canon.array.dtype
    whole = (dt.kind in "ib" and dt.itemsize <= 4) or (dt.kind == "u" and dt.itemsize <= 2)   # exact in int32
    for sl in canon.array:
        h.update((sl if whole else np.rint(sl)).astype(np.int32).tobytes())
    return h.hexdigest()


LUT_CHUNK = 1 << 15   # voxels per `table_lookup` call (whole slices, at least one; np.take makes an
#                       intp copy of each call's indices: 8 bytes per voxel of it)


def table_lookup(lut: np.ndarray, arr: np.ndarray) -> np.ndarray:
    """``lut[arr]`` (``arr`` of unsigned integers, every value an index of ``lut``): the same
    values, by ``np.take`` a few slices along the first axis at a time (about `LUT_CHUNK`
    voxels; issue 20: 0.07 against 0.17 CPU-s on the 73 Mvox uint8 label map of the 1 mm
    phantom, and 2x on a strided crop: fancy indexing converts every index to intp first)."""
    arr = np.asarray(arr)
    if arr.ndim == 0:
        return lut[arr]
    out = np.empty(arr.shape, lut.dtype)
    step = max(1, LUT_CHUNK // max(1, int(np.prod(arr.shape[1:]))))
    for a in range(0, arr.shape[0], step):   # ("clip" never clips here: no bounds check pass)
        np.take(lut, arr[a:a + step], out=out[a:a + step], mode="clip")
    return out


def values_mask(arr: np.ndarray, values) -> np.ndarray:
    """Bool, ``arr``'s shape: ``np.isin(arr, values)``, the same voxels. For 8- and 16-bit
    unsigned label arrays by a lookup table (`table_lookup`: no temporary beyond the output;
    ``np.isin`` on a 73 Mvox uint16 map took 1.6 CPU-s and 705 MiB traced, the table
    0.07-0.2 s and the 70 MiB of its output), or, when the values form at most `RUNS_MAX` runs
    of consecutive integers, by comparisons (`_runs_mask`: 0.015 against the table's 0.07 CPU-s
    there for one run; issue 20, speed25); other dtypes by ``np.isin``."""
    arr = np.asarray(arr)
    vals = np.asarray(values).ravel()
    if arr.dtype.kind == "u" and arr.dtype.itemsize <= 2:
        lut = np.zeros(1 << (8 * arr.dtype.itemsize), bool)
        vals = vals[(vals >= 0) & (vals < len(lut)) & (vals == np.floor(vals))].astype(np.int64)
        lut[vals] = True
        runs = value_runs(vals)
        if arr.ndim and len(runs) <= RUNS_MAX:
            return _runs_mask(arr, runs)
        return table_lookup(lut, arr)
    return np.isin(arr, vals)


RUNS_MAX = 3         # value runs up to which `values_mask` compares instead of looking up (each run: one
#                      subtraction and one comparison, ~0.015 CPU-s on the 1 mm phantom's 73 Mvox uint8
#                      map against the table's 0.07: a structure, the ribs 65..88, the lungs' lobes)
RUNS_SLAB = 1 << 18  # voxels per slab of `_runs_mask` (whole slices, at least one; its temporaries)


def value_runs(vals) -> list[tuple[int, int]]:
    """The distinct integers ``vals`` as runs of consecutive values [(first, last), ...], ascending."""
    v = np.unique(np.asarray(vals, np.int64))
    if not v.size:
        return []
    cut = np.flatnonzero(np.diff(v) != 1) + 1
    return [(int(r[0]), int(r[-1])) for r in np.split(v, cut)]


def _runs_mask(arr: np.ndarray, runs) -> np.ndarray:
    """Bool, ``arr``'s shape (unsigned integers, ndim >= 1): whether a voxel's value lies in one
    of ``runs`` ((first, last) within the type's range): per run ``(arr - first) <= last - first``
    in the array's own type, whose wrap-around sends every value below ``first`` above the bound
    (exact: the same voxels as ``np.isin``), a slab of `RUNS_SLAB` voxels along the first axis at
    a time (one slab-sized temporary; strided views read in place)."""
    out = np.zeros(arr.shape, bool)
    if not runs or not arr.size:
        return out
    t = arr.dtype.type
    step = max(1, RUNS_SLAB // max(1, int(np.prod(arr.shape[1:]))))
    tmp = np.empty((min(step, arr.shape[0]), *arr.shape[1:]), arr.dtype)
    hit = np.empty(tmp.shape, bool) if len(runs) > 1 else None
    for a in range(0, arr.shape[0], step):
        x = arr[a:a + step]
        o = out[a:a + step]
        d = tmp[:len(x)]
        for n, (lo, hi) in enumerate(runs):
            np.subtract(x, t(lo), out=d)
            if n == 0:
                np.less_equal(d, t(hi - lo), out=o)
            else:
                np.less_equal(d, t(hi - lo), out=hit[:len(x)])
                o |= hit[:len(x)]
    return out


def index_dtype(shape) -> type:
    """The smallest signed integer type of array indices into a grid of ``shape`` (int16 up to
    32767 voxels along every axis, else int32)."""
    return np.int16 if max(shape) <= np.iinfo(np.int16).max else np.int32


INDEX_SLAB = 1 << 18   # voxels per slab of `index_list` (its int64 temporaries: 48 bytes per set voxel of a slab)


def index_list(mask: np.ndarray, dtype=None, slab_voxels: int = INDEX_SLAB) -> np.ndarray:
    """``np.argwhere(mask)`` as a small integer type: the indices (n, mask.ndim) of the True
    voxels in C order, ``dtype`` (default `index_dtype` of ``mask.shape``; pass the type of
    a larger grid when the indices will be shifted into it). Built a slab of whole slices at a
    time (about ``slab_voxels``), so the int64 indices of ``np.nonzero`` are never held for the
    whole mask: 2 bytes per index (int16) instead of 8, and no full-size int64 temporaries
    (``np.argwhere`` holds two: 48 bytes per True voxel). The same values in the same order
    as ``np.argwhere``."""
    m = np.asarray(mask)
    dt = np.dtype(index_dtype(m.shape) if dtype is None else dtype)
    if m.ndim == 0 or m.size == 0:
        return np.zeros((0, m.ndim), dt)
    if max(m.shape) > np.iinfo(dt).max:
        raise ValueError(f"{dt} cannot hold the indices of a {m.shape} grid")
    out = np.empty((int(np.count_nonzero(m)), m.ndim), dt)
    step = max(1, int(slab_voxels) // max(1, m[0].size))
    a = 0
    for k0 in range(0, m.shape[0], step):
        nz = np.nonzero(m[k0:k0 + step])
        b = a + len(nz[0])
        for ax, idx in enumerate(nz):
            out[a:b, ax] = idx
        if k0:
            out[a:b, 0] += k0
        a = b
    return out


@dataclass
class Volume:
    """Image array in [k, j, i] order with its IJK->RAS affine (mm).

    ``name`` is free text; ``labels`` maps label values to structure names for label maps
    (empty for intensity images such as CT in HU); ``warnings`` holds the reader's warnings
    about the input (see ``imagio.io``).
    """

    array: np.ndarray
    ijk_to_ras: np.ndarray
    name: str = ""
    labels: dict[int, str] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)  # e.g. DICOM patient/series identifiers, as read
    # what the reader had to say about this image (corrected tilt, dropped slices, padding):
    # one sentence each; commands print them and copy them into their JSON outputs
    warnings: list[str] = field(default_factory=list)
    # whether RAS is the scanner's patient frame (origin at the isocentre): False for an image
    # written with its origin at exactly (0, 0, 0) (no ImagePositionPatient kept: RAS x = 0 is
    # then the image's corner, not the isocentre; DICOM PS3.3 C.7.6.2.1.1). Judged when the image
    # is made (None) and carried by crops, resamplings and `with_array` (a crop's origin moves
    # off (0, 0, 0) but its frame is still the corner's: new-user trials 13, 15)
    scanner_coordinates: bool | None = None
    # label maps: {structure name: record} of the doubts `imagio lesion` wrote with an outline
    # (`imagio.outline_doubts`; leaked, size withheld, ...), as read from its file; not carried by
    # `with_array` or resampling (what reads a map keeps them from the map as read)
    outline_doubts: dict = field(default_factory=dict)

    def __post_init__(self):
        self.array = np.asarray(self.array)
        self.ijk_to_ras = np.asarray(self.ijk_to_ras, dtype=float)
        if self.scanner_coordinates is None and self.ijk_to_ras.shape == (4, 4):
            self.scanner_coordinates = bool(np.any(self.ijk_to_ras[:3, 3] != 0.0))
        if self.array.ndim != 3:
            raise InputError(
                f"expected a 3D image, got {self.array.ndim}D with shape {self.array.shape}; "
                "load a volume (a CT series or a 3D NIfTI/NRRD), not a single slice"
            )
        if self.ijk_to_ras.shape != (4, 4):
            raise InputError(f"IJK->RAS must be 4x4, got {self.ijk_to_ras.shape}")
        if abs(np.linalg.det(self.ijk_to_ras[:3, :3])) < 1e-12:
            raise InputError("IJK->RAS matrix is singular (zero spacing or degenerate axes)")

    # geometry ---------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape (nk, nj, ni)."""
        return tuple(self.array.shape)

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size (si, sj, sk) in mm, in i, j, k order."""
        return np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0)

    @property
    def spacing_kji(self) -> np.ndarray:
        """Voxel size in array-axis order (sk, sj, si), mm: what `edt` and ndimage want."""
        return self.spacing[::-1].copy()

    @property
    def origin(self) -> np.ndarray:
        """RAS position (mm) of the centre of voxel (0, 0, 0)."""
        return self.ijk_to_ras[:3, 3].copy()

    @property
    def direction(self) -> np.ndarray:
        """3x3 matrix whose columns are the unit RAS directions of the i, j, k axes."""
        return self.ijk_to_ras[:3, :3] / self.spacing[None, :]

    @property
    def ras_to_ijk(self) -> np.ndarray:
        return np.linalg.inv(self.ijk_to_ras)

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres."""
        return float(abs(np.linalg.det(self.ijk_to_ras[:3, :3])) / 1000.0)

    def ijk_to_world(self, ijk) -> np.ndarray:
        """(N, 3) continuous IJK indices -> (N, 3) RAS mm."""
        ijk = np.asarray(ijk, float)
        return rows_matmul(ijk, self.ijk_to_ras[:3, :3].T) + self.ijk_to_ras[:3, 3]

    def world_to_ijk(self, ras) -> np.ndarray:
        """(N, 3) RAS mm -> (N, 3) continuous IJK indices (voxel centres are integers)."""
        ras = np.asarray(ras, float)
        inv = self.ras_to_ijk
        return rows_matmul(ras, inv[:3, :3].T) + inv[:3, 3]

    def kji_to_world(self, kji) -> np.ndarray:
        """(N, 3) array indices [k, j, i] -> (N, 3) RAS mm."""
        return self.ijk_to_world(np.asarray(kji, float)[..., ::-1])

    def world_to_kji(self, ras) -> np.ndarray:
        """(N, 3) RAS mm -> (N, 3) continuous array indices [k, j, i]."""
        return self.world_to_ijk(ras)[..., ::-1]

    def nearest_kji(self, ras, clip: bool = False) -> np.ndarray:
        """(..., 3) RAS mm -> (..., 3) int64 array indices [k, j, i] of the nearest voxel centre.
        Unclipped by default (a point outside the image gets indices outside ``shape``; test with
        ``in_array``); ``clip=True`` moves them onto the nearest edge voxel instead."""
        kji = np.rint(self.world_to_kji(np.asarray(ras, float))).astype(np.int64)
        return np.clip(kji, 0, np.asarray(self.shape) - 1) if clip else kji

    def in_array(self, kji) -> np.ndarray:
        """Bool (...,): integer indices [k, j, i] (..., 3) that lie in the array."""
        kji = np.asarray(kji)
        return np.all((kji >= 0) & (kji < np.asarray(self.shape)), axis=-1)

    def contains_world(self, ras) -> np.ndarray:
        """Boolean per point: inside the image extent (voxel centres +- half a voxel)."""
        with np.errstate(over="ignore", invalid="ignore"):   # a huge finite point: inf/nan, outside
            kji = self.world_to_kji(np.atleast_2d(ras))
        return np.all((kji > -0.5) & (kji < np.asarray(self.shape) - 0.5), axis=-1)

    def sample(self, ras, order: int = 0, fill=0, with_inside: bool = False):
        """Values at RAS points: nearest voxel (order 0) or trilinear (order 1); ``fill`` outside.
        ``with_inside`` (order 0): (values, bool inside) — which points fell on a voxel, for a
        caller that must leave the outside ones out whatever ``fill`` is (an integer CT holds
        no NaN)."""
        ras = np.asarray(ras, float)
        flat = ras.reshape(-1, 3)
        kji = self.world_to_kji(flat)
        if with_inside and order != 0:
            raise ValueError("with_inside is for order 0 (nearest voxel)")
        if order == 0:
            idx = np.rint(kji).astype(np.int64)
            inside = np.all((idx >= 0) & (idx < np.asarray(self.shape)), axis=1)
            out = np.full(len(flat), fill, dtype=self.array.dtype)
            ii = idx[inside]
            out[inside] = self.array[ii[:, 0], ii[:, 1], ii[:, 2]]
        elif len(flat) == 0:
            out = np.zeros(0, np.float32)
        else:
            # only the block holding the points (and ``order`` voxels more) is converted: the same
            # interpolation (integer shifts of the coordinates are exact), the same edges (the
            # block ends at the volume's faces where points reach them)
            n = np.asarray(self.shape)
            lo = np.clip(np.floor(kji.min(axis=0)) - order, 0, n).astype(np.int64)
            hi = np.maximum(np.clip(np.ceil(kji.max(axis=0)) + order + 1, 0, n).astype(np.int64), lo)
            block = self.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
            if block.size == 0 or not np.isfinite(kji).all():   # all outside, or NaN points
                block, lo = self.array, np.zeros(3, np.int64)
            out = ndimage.map_coordinates(
                block.astype(np.float32, copy=False), (kji - lo).T, order=order,
                mode="constant", cval=fill, prefilter=False,
            )
        if with_inside:
            return out.reshape(ras.shape[:-1]), inside.reshape(ras.shape[:-1])
        return out.reshape(ras.shape[:-1])

    # derived volumes ----------------------------------------------------------------------
    def with_array(self, array: np.ndarray, name: str | None = None, labels=None) -> "Volume":
        """A volume on the same grid holding another array (e.g. a mask computed from this CT)."""
        array = np.asarray(array)
        if array.shape != self.shape:
            raise ValueError(f"array shape {array.shape} does not match grid {self.shape}")
        return Volume(array, self.ijk_to_ras.copy(), self.name if name is None else name,
                      dict(self.labels if labels is None else labels),
                      scanner_coordinates=self.scanner_coordinates)

    def same_grid(self, other: "Volume", tol: float = 1e-4) -> bool:
        return self.shape == other.shape and np.allclose(self.ijk_to_ras, other.ijk_to_ras, atol=tol)

    def resample_like(self, reference: "Volume", order: int | None = None, fill=None) -> "Volume":
        """This image resampled onto ``reference``'s grid (arrays [k, j, i], RAS mm).

        order: 0 nearest (default for label maps, i.e. when ``labels`` is set or the dtype is
        integer/bool), 1 trilinear (default for intensity images). ``fill`` is the value
        outside this image (default: 0 for labels, the array minimum for intensities, e.g.
        air in a CT).

        "Outside" is outside the image's physical extent, the box of its voxels: continuous
        index beyond [-0.5, n - 0.5] along any axis. The outer half voxel between the outer
        voxel centres and that box is image, not fill: nearest for order 0, and for order 1 the
        linear interpolation whose neighbours are clamped to the edge voxel (nearest along the
        axis that leaves the centres). This is ITK's rule for points in the buffer
        (``ImageFunction::IsInsideBuffer``, ``LinearInterpolateImageFunction``; Johnson et al.,
        The ITK Software Guide, 4th ed., 2015, sec. 4.1 and 9.9), so SimpleITK's
        ``Resample`` gives the same values on the same grid.
        """
        is_label = bool(self.labels) or self.array.dtype.kind in "biu"
        if order is None:
            order = 0 if is_label else 1
        if fill is None:
            fill = 0 if is_label else float(self.array.min())
        # reference kji -> world -> this kji, as one affine on index space
        ref_kji_to_ijk = np.eye(4)[[2, 1, 0, 3]]  # permutes k,j,i <-> i,j,k
        m = ref_kji_to_ijk @ self.ras_to_ijk @ reference.ijk_to_ras @ ref_kji_to_ijk
        m = np.where(np.abs(m - np.rint(m)) < 1e-9, np.rint(m), m)  # exact grids stay exact
        shift = integer_shift(m) if order == 0 else None
        if shift is not None and _representable(fill, self.array.dtype):
            # the same grid, or a crop / extension of it: every source index is an integer, so
            # nearest-neighbour resampling is a copy of the overlap (`shifted_copy`; the same
            # values as ``affine_transform``, which ran one general interpolation per voxel)
            return Volume(shifted_copy(self.array, shift, reference.shape, fill),
                          reference.ijk_to_ras.copy(), self.name, dict(self.labels),
                          scanner_coordinates=reference.scanner_coordinates)
        src = self.array if order == 0 else self.array.astype(np.float32, copy=False)
        out = ndimage.affine_transform(
            src, m[:3, :3], offset=m[:3, 3], output_shape=reference.shape,
            order=order, mode="grid-constant" if order == 0 else "nearest", cval=fill,
            prefilter=False,
        )
        if order > 0:
            outside = _outside_box(m, reference.shape, self.shape)
            if outside is not None:
                out[outside] = fill
        if order > 0 and self.array.dtype.kind in "iu" and not is_label:
            out = np.rint(out).astype(self.array.dtype)
        return Volume(out.astype(self.array.dtype, copy=False) if order == 0 else out,
                      reference.ijk_to_ras.copy(), self.name, dict(self.labels),
                      scanner_coordinates=reference.scanner_coordinates)

    def resampled(self, spacing, order: int | None = None) -> "Volume":
        """This image on a grid with the same orientation and physical extent at new spacing
        (si, sj, sk) mm.

        The output has round(extent / spacing) voxels per axis, its first voxel's outer corner
        on this image's first corner (so every output centre lies inside this image's box);
        values as `resample_like`: the outer half voxel is image (edge-clamped), never fill.
        """
        spacing = np.broadcast_to(np.asarray(spacing, float), (3,))
        extent = (np.asarray(self.shape[::-1]) ) * self.spacing  # i, j, k physical extent
        n_ijk = np.maximum(1, np.round(extent / spacing).astype(int))
        # keep the outer voxel corners aligned: first centre at half the new spacing
        corner_ijk = -0.5 * np.ones(3)
        corner = self.ijk_to_world(corner_ijk[None])[0]
        new = make_ijk_to_ras(spacing, corner, self.direction)
        new[:3, 3] = corner + self.direction @ (0.5 * spacing)
        ref = Volume(np.zeros(tuple(n_ijk[::-1]), np.uint8), new, scanner_coordinates=self.scanner_coordinates)
        return self.resample_like(ref, order=order)

    def crop(self, lo_kji, hi_kji) -> "Volume":
        """Sub-volume [lo, hi) in array indices; the affine moves so world positions are kept."""
        lo = np.clip(np.asarray(lo_kji, int), 0, self.shape)
        hi = np.clip(np.asarray(hi_kji, int), 0, self.shape)
        if np.any(hi <= lo):
            raise ValueError(f"empty crop box {lo.tolist()}..{hi.tolist()}")
        m = self.ijk_to_ras.copy()
        m[:3, 3] = self.kji_to_world(lo[None].astype(float))[0]
        arr = self.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        return Volume(arr, m, self.name, dict(self.labels), scanner_coordinates=self.scanner_coordinates)

    def nearest_end(self, lo_kji, hi_kji) -> tuple[float, str]:
        """(mm, words) from the voxel box ``lo_kji`` .. ``hi_kji`` (inclusive voxel indices, e.g. a
        lesion's extent) to the nearest end of the image, voxel centre to outermost voxel centre
        (0: it touches it), and which end in words ("last slice", "first row of the field of
        view", ...; k is the slice axis), led by the end's anatomical side ("superior end (last
        slice)"): the storage words alone depend on how the file orders its slices (new-user trial
        91 L2: "the image's first slice" for the inferior end of one file, the superior of its flip)."""
        from .directions import side_of

        sp = np.asarray(self.spacing_kji, float)
        gaps = np.concatenate([np.asarray(lo_kji) * sp, (np.asarray(self.shape) - 1 - np.asarray(hi_kji)) * sp])
        i = int(np.argmin(gaps))
        ax, end = i % 3, ("first", "last")[i // 3]
        side = side_of(self.direction[:, 2 - ax] * (-1.0 if end == "first" else 1.0))
        storage = f"{end} {'slice' if ax == 0 else ('row' if ax == 1 else 'column') + ' of the field of view'}"
        return float(gaps[i]), f"{side} end ({storage})"

    def outside_text(self, ras) -> str:
        """Where the RAS point ``ras`` (mm) lies relative to the image, for an error message: the
        RAS ranges spanned by the 8 corners of the voxels' box (on an oblique grid the box is
        rotated, so two opposite corners do not describe it: new-user trial 19) and, per array
        axis i, j, k, how far (mm) the point lies beyond the box's face."""
        n = np.asarray(self.shape[::-1], float)
        corners = np.array([[x, y, z] for x in (-0.5, n[0] - 0.5) for y in (-0.5, n[1] - 0.5)
                            for z in (-0.5, n[2] - 0.5)])
        c = self.ijk_to_world(corners)
        span = ", ".join(f"{ax} {lo:.1f}..{hi:.1f}" for ax, lo, hi in zip("RAS", c.min(0), c.max(0)))
        from .coords import mm_text

        with np.errstate(over="ignore", invalid="ignore"):   # a huge finite point (trial 89 L): inf, said so
            ijk = self.world_to_ijk(np.asarray(ras, float)[None])[0]
            beyond = np.maximum(-0.5 - ijk, 0) + np.maximum(ijk - (n - 0.5), 0)
            past = [f"{mm_text(beyond[a] * self.spacing[a])} mm beyond the {name} face" for a, name in enumerate("ijk")
                    if not beyond[a] <= 0]
        oblique = not np.allclose(np.sort(np.abs(self.direction), axis=0)[:2], 0.0, atol=1e-6)   # not a flip or permutation
        # an oblique or tilted grid's RAS box holds points its slab does not (new-user trial 49 L4:
        # a point inside the quoted S range refused at a 30 deg gantry tilt)
        box = "the box of its voxels spans" if oblique else "its voxels span"
        tail = (" (the grid is oblique: a point inside these ranges can still lie outside its slab)"
                if oblique and past else "")
        return f"{box} {span} mm" + (f"; the point lies {', '.join(past)}{tail}" if past else "")

    def bounding_box(self, mask: np.ndarray | None = None, margin: int = 0):
        """(lo, hi) array-index box [lo, hi) of the non-zero voxels of ``mask`` (default: self)."""
        mask = self.array if mask is None else mask
        axes = range(mask.ndim)   # per-axis projections: no index arrays of every voxel
        nz = [np.flatnonzero(np.any(mask, axis=tuple(b for b in axes if b != a))) for a in axes]
        if len(nz[0]) == 0:
            raise InputError("the mask is empty: nothing is labelled")
        lo = np.array([a[0] for a in nz]) - margin
        hi = np.array([a[-1] for a in nz]) + 1 + margin
        return np.clip(lo, 0, self.shape), np.clip(hi, 0, self.shape)

    def mask(self, *names: str) -> np.ndarray:
        """Boolean mask of the labels with the given structure names (label maps only)."""
        inv = {v: k for k, v in self.labels.items()}
        missing = [n for n in names if n not in inv]
        if missing:
            # its names in label-value order (label_2 before label_10; trial 114 LOW: text order)
            raise KeyError(f"label map has no structure {missing}; it has {[self.labels[k] for k in sorted(self.labels)]}")
        return values_mask(self.array, [inv[n] for n in names])

    def describe(self) -> dict:
        """Geometry summary: shape (i, j, k), spacing mm, origin RAS, direction, value range."""
        arr = self.array
        return {
            "name": self.name,
            "size_ijk": list(self.shape[::-1]),
            "spacing_mm": [round(float(s), 6) for s in self.spacing],
            "origin_ras_mm": [round(float(s), 4) for s in self.origin],
            "direction": np.round(self.direction, 6).tolist(),
            "dtype": str(arr.dtype),
            "min": float(arr.min()) if arr.size else None,
            "max": float(arr.max()) if arr.size else None,
        }


def integer_shift(m: np.ndarray) -> np.ndarray | None:
    """The integer offset (k, j, i) of the 4x4 output-kji -> input-kji affine ``m`` when it is a
    pure translation by whole voxels (the output grid is the input's grid, or a crop or
    extension of it), else None."""
    m = np.asarray(m, float)
    t = m[:3, 3]
    if np.array_equal(m[:3, :3], np.eye(3)) and np.array_equal(t, np.rint(t)) and np.all(np.abs(t) < 2 ** 31):
        return t.astype(np.int64)
    return None


def _representable(fill, dtype) -> bool:
    """``fill`` is held exactly by ``dtype`` (so a copy filled with it equals ndimage's ``cval``)."""
    try:
        with np.errstate(all="ignore"):
            return bool(np.asarray(fill, dtype=dtype) == fill)
    except (TypeError, ValueError, OverflowError):
        return False


def shifted_copy(src: np.ndarray, shift, out_shape, fill) -> np.ndarray:
    """``out[o] = src[o + shift]`` where that index lies in ``src``, else ``fill`` (arrays
    [k, j, i], ``shift`` integer (k, j, i)): nearest-neighbour resampling by a whole-voxel
    translation (``ndimage.affine_transform`` with the identity matrix, offset ``shift``,
    order 0, mode "grid-constant", cval ``fill``) as one copy of the overlap."""
    out = np.full(tuple(out_shape), fill, dtype=src.dtype)
    shift = np.asarray(shift, np.int64)
    olo = np.clip(-shift, 0, out_shape)
    ohi = np.clip(np.asarray(src.shape) - shift, 0, out_shape)
    if np.all(ohi > olo):
        o = tuple(slice(a, b) for a, b in zip(olo, ohi))
        out[o] = src[tuple(slice(a + d, b + d) for a, b, d in zip(olo, ohi, shift))]
    return out


def _outside_box(m: np.ndarray, out_shape, in_shape, tol: float = 1e-6):
    """Boolean [k, j, i] mask of the output voxels whose source continuous index (``m``, the
    4x4 output-kji -> input-kji affine) lies outside the input's box [-0.5, n - 0.5] on some
    axis; None when every output voxel is inside (the box is convex, so checking the 8 corner
    centres of the output grid suffices)."""
    lo, hi = -0.5 - tol, np.asarray(in_shape, float) - 0.5 + tol
    ext = np.array(out_shape, float) - 1
    corners = np.array([[a, b, c] for a in (0, ext[0]) for b in (0, ext[1]) for c in (0, ext[2])])
    src = corners @ m[:3, :3].T + m[:3, 3]
    if np.all((src >= lo) & (src <= hi)):
        return None
    idx = [np.arange(n, dtype=np.float64) for n in out_shape]
    outside = np.zeros(tuple(out_shape), bool)
    for a in range(3):  # one axis of the source index at a time: one output-sized temporary
        c = (m[a, 0] * idx[0][:, None, None] + m[a, 1] * idx[1][None, :, None]
             + m[a, 2] * idx[2][None, None, :] + m[a, 3])
        outside |= (c < lo) | (c > hi[a])
    return outside


def reach_box(vol: Volume, center_ras, radius_mm: float):
    """Array-index box [lo, hi) of ``vol`` (k, j, i int arrays, clipped to the grid) covering the
    ball of ``radius_mm`` (mm) around an RAS point."""
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
    kji = vol.world_to_kji(np.asarray(center_ras, float) + radius_mm * corners)
    lo = np.floor(kji.min(0)).astype(int) - 1
    hi = np.ceil(kji.max(0)).astype(int) + 2
    return np.clip(lo, 0, vol.shape), np.clip(hi, 0, vol.shape)
