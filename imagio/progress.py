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
