"""Whether a NIfTI file holds all the image data its header announces.

ITK's NIfTI reader (SimpleITK 2.x) fills a short file, or a gzip stream that ends early, with
zeros and raises nothing (new-user trial 4: a truncated ``.nii.gz`` read as a CT whose last 10 of
11 slices were 0 HU; a cohort run reported it "done, 0 nodules"). NRRD and MetaImage readers do
raise. This module reads the header's own size fields (NIfTI-1: ``sizeof_hdr`` 348; NIfTI-2: 540;
either byte order; NIfTI standard, nifti1.h / nifti2.h) and compares them with what the file holds.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

_CHUNK = 1 << 22


def _expected_bytes(head: bytes) -> int | None:
    """Header + extensions + voxel data, bytes, from the first 540 bytes of a NIfTI file;
    None when the header is not NIfTI-1/2 (let the reader say what it is)."""
    if len(head) < 348:
        return None
    for end in "<>":
        size = struct.unpack(end + "i", head[:4])[0]
        if size == 348:
            dim = struct.unpack(end + "8h", head[40:56])
            bitpix = struct.unpack(end + "h", head[72:74])[0]
            offset = struct.unpack(end + "f", head[108:112])[0]
            break
        if size == 540 and len(head) >= 540:
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
    return max(int(offset), size) + voxels * int(bitpix) // 8


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
        if gz:
            with gzip.open(path, "rb") as f:
                head = f.read(540)
        else:
            with open(path, "rb") as f:
                head = f.read(540)
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
