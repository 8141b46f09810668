"""File names as the C++ libraries (SimpleITK, VTK, MRML) need them.

Python hands a file name to the operating system as the bytes it was read from, whatever the
locale: a name it could not decode in the locale's encoding (``Jürgen`` under an ASCII locale,
``LC_ALL=C`` without Python's UTF-8 mode) holds surrogate escapes (PEP 383). SimpleITK and VTK
take a ``str`` and encode it as UTF-8 themselves, so such a name reached them as an invalid
string: SimpleITK aborted the process with ``std::logic_error`` (new-user trial 112 F3, exit 134,
no message). `for_library` gives them the name whose UTF-8 bytes are the file's own name, and
refuses, with one line, a name that is not UTF-8 at all (which they could not open either)."""

from __future__ import annotations

import os

from .errors import InputError


def as_utf8(path) -> str:
    """``path``'s bytes on disk read as UTF-8, undecodable bytes kept as surrogate escapes: the same
    ``str`` under every locale (`outputs`' manifest lists files by it)."""
    return os.fsencode(os.fspath(path)).decode("utf-8", errors="surrogateescape")


def for_library(path) -> str:
    """``path`` (str or os.PathLike) as a ``str`` whose UTF-8 encoding is the name's bytes on disk,
    for SimpleITK, VTK and MRML. Raises InputError when the name's bytes are not UTF-8."""
    raw = os.fsencode(os.fspath(path))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        shown = raw.decode("utf-8", errors="backslashreplace")
        raise InputError(f"{shown}: the file name is not UTF-8, which the image libraries need; rename it "
                         "(or the folder) with UTF-8 characters") from None
