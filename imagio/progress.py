"""Progress reporting and cancellation for long work.

A progress callback is ``callback(fraction: float, message: str) -> bool | None``; returning
``False`` requests cancellation, which the worker turns into ``errors.Cancelled`` at its next
check, before it writes any result.
"""

from __future__ import annotations

from typing import Callable, Optional

from .errors import Cancelled

ProgressCallback = Callable[[float, str], Optional[bool]]


class Progress:
    """Maps sub-steps onto [start, end] of a parent callback and raises Cancelled on request."""

    def __init__(self, callback: ProgressCallback | None = None, start: float = 0.0, end: float = 1.0):
        self.callback, self.start, self.end = callback, start, end

    def __call__(self, fraction: float, message: str = "") -> None:
        if self.callback is None:
            return
        f = self.start + (self.end - self.start) * min(max(fraction, 0.0), 1.0)
        if self.callback(f, message) is False:
            raise Cancelled(f"cancelled by the user during: {message or 'processing'}")

    def sub(self, a: float, b: float) -> "Progress":
        """Child reporter covering fractions [a, b] of this one."""
        w = self.end - self.start
        return Progress(self.callback, self.start + w * a, self.start + w * b)


def printer(quiet: bool = False):
    """A command-line progress callback: one ``[ 42.0%] message`` line on stderr per new message
    (None when ``quiet``)."""
    import sys

    if quiet:
        return None
    last = {"msg": None}

    def cb(fraction: float, message: str):
        if message != last["msg"]:
            print(f"[{fraction * 100:5.1f}%] {message}", file=sys.stderr, flush=True)
            last["msg"] = message

    return cb
