"""Whether a NIfTI file holds all the image data its header announces.

ITK's NIfTI reader (SimpleITK 2.x) fills a short file, or a gzip stream that ends early, with
zeros and raises nothing (new-user trial 4: a truncated ``.nii.gz`` read as a CT whose last 10 of
11 slices were 0 HU; a cohort run reported it "done, 0 nodules"). NRRD and MetaImage readers do
raise. This module reads the header's own size fields (NIfTI-1: ``sizeof_hdr`` 348; NIfTI-2: 540;
either byte order; NIfTI standard, nifti1.h / nifti2.h) and compares them with what the file holds.

The same reader also turns NaN and infinite voxels of a floating-point NIfTI file into 0 (water,
0 HU, in a CT) without a word, while its NRRD reader keeps them (new-user trial 7: a resampled CT
with NaN outside its field of view read as a body reaching the image's corners).
``nifti_nonfinite`` finds them in the file's own payload so that the caller can treat them as
the NRRD reader's NaN are treated.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

_CHUNK = 1 << 22


# NIfTI datatype codes of the floating-point types numpy reads (nifti1.h: DT_FLOAT32, DT_FLOAT64)
_FLOAT_TYPES = {16: "f4", 64: "f8"}


def _layout(head: bytes) -> tuple[str, int, int, int, int] | None:
    """(byte order, datatype code, bits per voxel, data offset in bytes, voxel count) from the
    first 540 bytes of a NIfTI-1/2 file; None when the header is not NIfTI-1/2 (let the image
    reader say what it is)."""
    if len(head) < 348:
        return None
    for end in "<>":
        size = struct.unpack(end + "i", head[:4])[0]
        if size == 348:
            dim = struct.unpack(end + "8h", head[40:56])
            dtype = struct.unpack(end + "h", head[70:72])[0]
            bitpix = struct.unpack(end + "h", head[72:74])[0]
            offset = struct.unpack(end + "f", head[108:112])[0]
            break
        if size == 540 and len(head) >= 540:
            dtype = struct.unpack(end + "h", head[12:14])[0]
            bitpix = struct.unpack(end + "h", head[14:16])[0]
            dim = struct.unpack(end + "8q", head[16:80])
            offset = struct.unpack(end + "q", head[168:176])[0]
            break
    else:
        return None
    n = int(dim[0])
    if not 1 <= n <= 7 or bitpix <= 0 or any(d < 1 for d in dim[1:n + 1]):
        return None
    voxels = 1
    for d in dim[1:n + 1]:
        voxels *= int(d)
    return end, int(dtype), int(bitpix), max(int(offset), size), voxels


def _expected_bytes(head: bytes) -> int | None:
    """Header + extensions + voxel data, bytes; None when the header is not NIfTI-1/2."""
    lay = _layout(head)
    return None if lay is None else lay[3] + lay[4] * lay[2] // 8


def _head(path: Path) -> bytes:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as f:
        return f.read(540)


def nifti_nonfinite(path) -> "np.ndarray | None":
    """Where a floating-point NIfTI file stores NaN or an infinity.

    Returns None when the file's datatype is not float32/float64 (integers cannot hold NaN) or
    when every voxel is finite; else a bool array of the voxel count, in the file's storage
    order (x fastest: reshaped to ``(nz, ny, nx)`` it lines up with
    ``SimpleITK.GetArrayFromImage`` of the same file). Cost: one streamed pass over the
    payload (4 MiB chunks; the mask is allocated only once a non-finite value is found), only
    for floating-point files. Raises OSError/zlib.error as reading the file would.
    """
    import numpy as np

    path = Path(path)
    lay = _layout(_head(path))
    if lay is None or lay[1] not in _FLOAT_TYPES:
        return None
    end, dtype, bitpix, offset, voxels = lay
    dt = np.dtype(end + _FLOAT_TYPES[dtype])
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    mask = None
    done = 0
    step = (_CHUNK // dt.itemsize) * dt.itemsize
    with opener(path, "rb") as f:
        f.seek(offset)
        while done < voxels:
            raw = f.read(min(step, (voxels - done) * dt.itemsize))
            if not raw:
                break
            vals = np.frombuffer(raw[: len(raw) // dt.itemsize * dt.itemsize], dtype=dt)
            bad = ~np.isfinite(vals)
            if bad.any():
                if mask is None:
                    mask = np.zeros(voxels, dtype=bool)
                mask[done:done + vals.size] = bad
            done += vals.size
    return mask


def _gzip_length(path: Path) -> int | None:
    """Decompressed length of a gzip file, or None when its stream ends early or is damaged."""
    total = 0
    d = zlib.decompressobj(zlib.MAX_WBITS | 16)
    with open(path, "rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            try:
                total += len(d.decompress(chunk))
            except zlib.error:
                return None
            while d.eof and d.unused_data:   # a multi-member gzip file: go on with the next member
                rest = d.unused_data
                d = zlib.decompressobj(zlib.MAX_WBITS | 16)
                total += len(d.decompress(rest))
    return total if d.eof else None


def nifti_shortfall(path: Path) -> str | None:
    """None when ``path`` (``.nii`` or ``.nii.gz``) holds all the data its header announces, else
    one sentence saying what is missing. Cost: a stat (``.nii``); for ``.nii.gz`` the gzip
    trailer's length field (ISIZE, RFC 1952), and a streamed decompression only when it does not
    match (files over 4 GiB, trailing bytes, a damaged stream)."""
    path = Path(path)
    gz = path.name.lower().endswith(".gz")
    try:
        head = _head(path)
    except (OSError, EOFError, zlib.error):
        return None   # no readable header: the image reader says "not a readable image"
    need = _expected_bytes(head)
    if need is None:
        return None
    if not gz:
        have = path.stat().st_size
    else:
        with open(path, "rb") as f:
            f.seek(-4, 2)
            isize = struct.unpack("<I", f.read(4))[0]
        if isize == need % (1 << 32):
            return None
        have = _gzip_length(path)
        if have is None:
            return "its gzip stream ends early (an interrupted copy or download)"
    if have < need:
        return f"it holds {have:,} of the {need:,} bytes its header announces (a truncated file)"
    return None
