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
    """A command-line progress callback (None when ``quiet``): a tqdm bar on stderr, 0-100 %,
    with the current step as its description; it only moves forward (a fraction below the last
    one leaves the bar where it is; the callers' fractions never decrease: test_demo). Without
    tqdm: one ``[ 42.0%] message`` line per new message."""
    import sys

    if quiet:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    last = {"msg": None, "n": 0.0, "bar": None}

    def cb(fraction: float, message: str):
        pct = round(100.0 * min(max(fraction, 0.0), 1.0), 1)
        if tqdm is None:
            if message != last["msg"]:
                print(f"[{pct:5.1f}%] {message}", file=sys.stderr, flush=True)
                last["msg"] = message
            return
        if last["bar"] is None:
            last["bar"] = tqdm(total=100.0, file=sys.stderr, unit="%", dynamic_ncols=True,
                               bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}<{remaining}]")
        bar = last["bar"]
        if message != last["msg"]:
            bar.set_description_str(message[:60])
            last["msg"] = message
        if pct > last["n"]:
            bar.update(pct - last["n"])
            last["n"] = pct
        if pct >= 100.0:
            bar.close()

    return cb
