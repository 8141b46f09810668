"""Separable grid resampling with torch, numerically identical to nnU-Net's skimage/scipy steps.

nnU-Net resizes with ``skimage.transform.resize`` (= ``scipy.ndimage.zoom`` in grid mode, edge
mode 'nearest', B-spline order 3 for images, 1 for logits) and, for anisotropic spacing
(ratio > 3), in-plane per slice plus order-0 ``map_coordinates`` along the low-resolution axis.
All of these are separable linear maps, so each axis is one (n_out x n_in) matrix. We compute
the matrix once with scipy on an identity (exact, cheap: n <= ~1000), keep its significant band
(B-spline prefilter taps decay as 0.268^n; dropped taps < 1e-7 relative), and apply it with
torch on the tensor's device: out = sum_t w[:, t] * x.index_select(axis, idx[:, t]).
Array axes are the nnU-Net axes (after transpose_forward), spacing in mm.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage

ANISO_THRESHOLD = 3.0  # nnunetv2.configuration.ANISO_THRESHOLD


def compute_new_shape(shape, old_spacing, new_spacing) -> tuple[int, ...]:
    """nnU-Net's compute_new_shape: round(old_spacing / new_spacing * shape) per axis."""
    return tuple(int(round(o / n * s)) for s, o, n in zip(shape, old_spacing, new_spacing))


def separate_z_axis(current_spacing, new_spacing, force_separate_z=None) -> int | None:
    """Axis resampled separately with order_z (nnU-Net's determine_do_sep_z_and_axis), or None."""
    def lowres(sp):
        sp = np.asarray(sp, float)
        ax = np.where(sp.max() / sp == 1)[0]
        return int(ax[0]) if len(ax) == 1 else None

    def aniso(sp):
        return np.max(sp) / np.min(sp) > ANISO_THRESHOLD

    if force_separate_z is not None:
        return lowres(current_spacing) if force_separate_z else None
    if aniso(current_spacing):
        return lowres(current_spacing)
    if aniso(new_spacing):
        return lowres(new_spacing)
    return None


@lru_cache(maxsize=64)
def axis_weights(n_in: int, n_out: int, order: int, grid_zoom: bool = True):
    """Banded interpolation weights for one axis: (idx [n_out, W] int64, w [n_out, W] float64).

    Coordinates follow nnU-Net: input = (out + 0.5) * n_in / n_out - 0.5 (skimage's zoom in grid
    mode and nnU-Net's separate-z map). Edge handling 'nearest', as in nnU-Net.
    """
    coords = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    if grid_zoom and order > 0:
        # exactly what skimage.resize does: ndimage.zoom(grid_mode=True, mode='nearest') on the
        # identity; the second axis is kept (zoom 1 reproduces the nodes)
        dense = ndimage.zoom(np.eye(n_in), (n_out / n_in, 1.0), order=order, mode="nearest",
                             grid_mode=True, output=np.float64)
        if dense.shape[0] != n_out:  # zoom's own rounding of the shape; fall back to coordinates
            dense = None
    else:
        dense = None
    if dense is None:
        grid = np.stack(np.meshgrid(coords, np.arange(n_in), indexing="ij"))
        dense = ndimage.map_coordinates(np.eye(n_in), grid, order=order, mode="nearest",
                                        output=np.float64)
    mag = np.abs(dense)
    keep = mag > 1e-7 * mag.max(axis=1, keepdims=True)
    first = keep.argmax(axis=1)
    last = n_in - 1 - keep[:, ::-1].argmax(axis=1)
    width = int((last - first).max()) + 1
    start = np.clip(first, 0, n_in - width)
    idx = start[:, None] + np.arange(width)[None, :]
    w = np.take_along_axis(dense, idx, axis=1)
    return idx.astype(np.int64), w


def _resample_axis(x, axis: int, n_out: int, order: int, grid_zoom: bool, compute_dtype):
    import torch

    n_in = x.shape[axis]
    idx, w = axis_weights(n_in, n_out, order, grid_zoom)
    idx_t = torch.from_numpy(idx).to(x.device)
    w_t = torch.from_numpy(w).to(device=x.device, dtype=compute_dtype)
    shape = [1] * x.ndim
    shape[axis] = n_out
    out = None
    for t in range(idx.shape[1]):
        term = x.index_select(axis, idx_t[:, t]).to(compute_dtype) * w_t[:, t].reshape(shape)
        out = term if out is None else out.add_(term)
    return out


def resample_to_shape(x, new_shape, current_spacing, new_spacing, order: int = 3, order_z: int = 0,
                      force_separate_z=None, compute_dtype=None):
    """Resample a (C, *spatial) torch tensor to new_shape the way nnU-Net's
    ``resample_data_or_seg_to_shape`` does (is_seg False). Returns compute_dtype (float32 default)."""
    import torch

    compute_dtype = compute_dtype or torch.float32
    new_shape = tuple(int(s) for s in new_shape)
    if tuple(x.shape[1:]) == new_shape:
        return x
    axis = separate_z_axis(current_spacing, new_spacing, force_separate_z)
    # skimage's resize clips its output to the input's value range (per call: the whole channel,
    # or each slice when the low-resolution axis is done separately); order <= 1 cannot overshoot
    ndim = len(new_shape)
    keep = (0,) if axis is None else (0, axis + 1)
    red = tuple(a for a in range(1, ndim + 1) if a not in keep)
    lo = hi = None
    if order > 1:
        lo, hi = x.amin(dim=red, keepdim=True), x.amax(dim=red, keepdim=True)
    out = x
    for d in range(ndim):
        if d != axis and out.shape[d + 1] != new_shape[d]:
            out = _resample_axis(out, d + 1, new_shape[d], order, True, compute_dtype)
    if lo is not None and out is not x:
        out = torch.maximum(torch.minimum(out, hi.to(out.dtype)), lo.to(out.dtype))
    if axis is not None and out.shape[axis + 1] != new_shape[axis]:
        out = _resample_axis(out, axis + 1, new_shape[axis], order_z, False, compute_dtype)
    return out
