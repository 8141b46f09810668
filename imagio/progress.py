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


_OPEN_BARS: list = []   # printer's tqdm bars not yet closed


def close_bars() -> None:
    """End every progress bar still open (a command stopped by an error or a warning to print):
    its line is finished, so what is printed next starts a line of its own (new-user trial 31:
    the error shared its line with a bar fragment, and a bar line followed it)."""
    while _OPEN_BARS:
        _OPEN_BARS.pop().close()


def printer(quiet: bool = False):
    """A command-line progress callback (None when ``quiet``): on a terminal, a tqdm bar on
    stderr, 0-100 %, with the current step as its description; it only moves forward (a fraction
    below the last one leaves the bar where it is; the callers' fractions never decrease:
    test_demo). When stderr is not a terminal (a log file, a pipe) or without tqdm: one
    ``[ 42.0%] message`` line per new message (a bar there is carriage returns in the log, and
    `tail -1` did not give the error: trial 31)."""
    import sys

    if quiet:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if not (getattr(sys.stderr, "isatty", None) and sys.stderr.isatty()):
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
            _OPEN_BARS.append(last["bar"])
        bar = last["bar"]
        if message != last["msg"]:
            bar.set_description_str(short_description(message))
            last["msg"] = message
        if pct > last["n"]:
            bar.update(pct - last["n"])
            last["n"] = pct
        if pct >= 100.0:
            bar.close()
            if bar in _OPEN_BARS:
                _OPEN_BARS.remove(bar)

    return cb


def short_description(message: str, width: int = 60) -> str:
    """``message`` as a bar's description of at most ``width`` characters: whole, or cut at the
    last word boundary that fits with an ellipsis (trial 71: "generating the digital phantom at
    1.5 mm (or reading it from" was cut mid-phrase with nothing to say so), and never inside a
    bracket it opens (cut before it: trial 72 D5)."""
    if len(message) <= width:
        return message
    head = message[:width - 1]
    cut = head.rsplit(" ", 1)[0] if " " in head else head
    # no bracket left open (trial 72 D5: "... at 1.5 mm (or reading it…"): cut before the first
    # bracket the kept text does not close, when text remains before it
    depth, first_open = 0, None
    for pos, ch in enumerate(cut):
        if ch in "([{":
            depth += 1
            if depth == 1:
                first_open = pos
        elif ch in ")]}" and depth:
            depth -= 1
    if depth and first_open and cut[:first_open].strip():
        cut = cut[:first_open]
    return cut.rstrip(" ,;:([{") + "\u2026"
