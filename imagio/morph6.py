"""Binary morphology by the 6-neighbourhood (face neighbours) and the 3x3x3 cube with numpy
slicing only (no structuring-element passes): the masks of the planner's skin model, the
padding detection and their users. Masks bool [k, j, i]."""

from __future__ import annotations

import numpy as np


def _shift_or(m: np.ndarray, out: np.ndarray, ax: int, border: bool) -> None:
    """out |= m shifted by +-1 along ``ax`` (values beyond the array = ``border``)."""
    a = [slice(None)] * 3
    b = [slice(None)] * 3
    a[ax], b[ax] = slice(1, None), slice(None, -1)
    out[tuple(a)] |= m[tuple(b)]
    out[tuple(b)] |= m[tuple(a)]
    if border:
        e = [slice(None)] * 3
        for idx in (0, -1):
            e[ax] = idx
            out[tuple(e)] = True


def dilate6(m: np.ndarray, border: bool = False) -> np.ndarray:
    """Binary dilation by the 6-neighbourhood (face neighbours), numpy slicing only."""
    out = m.copy()
    for ax in range(3):
        _shift_or(m, out, ax, border)
    return out


def erode6(m: np.ndarray, border: bool = False) -> np.ndarray:
    """Binary erosion by the 6-neighbourhood; outside the array counts as ``border``."""
    return ~dilate6(~m, border=not border)


def erode26(m: np.ndarray, border: bool = False) -> np.ndarray:
    """Binary erosion by the 3x3x3 cube (separable: one 1D erosion per axis)."""
    out = m.copy()
    for ax in range(3):
        inv = ~out
        grown = inv.copy()
        _shift_or(inv, grown, ax, not border)
        out = ~grown
    return out
