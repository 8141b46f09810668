"""Sliding-window inference with nnU-Net's tiling, Gaussian importance map and mirroring TTA.

Axes are the network's (after transpose_forward); sizes in voxels.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter


def compute_steps(image_size, patch_size, step: float) -> list[list[int]]:
    """Tile start offsets per axis: n = ceil((size - patch) / (patch * step)) + 1, evenly spread
    from 0 to size - patch and rounded (nnU-Net's compute_steps_for_sliding_window)."""
    steps = []
    for size, patch in zip(image_size, patch_size):
        if size < patch:
            raise ValueError(f"image axis {size} smaller than patch {patch}: pad first")
        n = int(np.ceil((size - patch) / (patch * step))) + 1
        span = size - patch
        actual = span / (n - 1) if n > 1 else 0.0
        steps.append([int(np.round(actual * i)) for i in range(n)])
    return steps


@lru_cache(maxsize=4)
def gaussian_map_np(patch_size: tuple[int, ...], sigma_scale: float = 1.0 / 8,
                    value_scaling_factor: float = 10.0) -> np.ndarray:
    """nnU-Net's importance map as float16: a delta at patch//2 blurred with sigma = patch *
    sigma_scale (mode constant), scaled to max value_scaling_factor; zeros (after fp16 rounding)
    replaced by the smallest non-zero value."""
    tmp = np.zeros(patch_size)
    tmp[tuple(p // 2 for p in patch_size)] = 1
    g = gaussian_filter(tmp, [p * sigma_scale for p in patch_size], 0, mode="constant", cval=0)
    g = g / (g.max() / value_scaling_factor)
    g = g.astype(np.float16)
    zero = g == 0
    if zero.any():
        g[zero] = g[~zero].min()
    return g


def mirror_combinations(axes) -> list[tuple[int, ...]]:
    """Every non-empty subset of the allowed mirroring axes (spatial axis numbers, 0-based)."""
    axes = list(axes or ())
    return [c for i in range(len(axes)) for c in itertools.combinations(axes, i + 1)]


def pad_to_patch(x, patch_size):
    """Pad a (C, *spatial) tensor with zeros to at least patch_size, centred like nnU-Net's
    pad_nd_image (below = diff // 2). Returns (padded, slices to undo)."""
    import torch.nn.functional as F

    spatial = x.shape[1:]
    diff = [max(p - s, 0) for s, p in zip(spatial, patch_size)]
    below = [d // 2 for d in diff]
    above = [d - b for d, b in zip(diff, below)]
    if not any(diff):
        return x, tuple(slice(None) for _ in spatial)
    pad = []
    for b, a in zip(reversed(below), reversed(above)):
        pad += [b, a]
    padded = F.pad(x, pad, mode="constant", value=0)
    return padded, tuple(slice(b, b + s) for b, s in zip(below, spatial))


def predict_logits(network, data, patch_size, *, step=0.5, mirror_axes=None, batch_size=2,
                   device="cpu", results_device="cpu", autocast_dtype=None, accumulate_dtype=None,
                   progress=None):
    """Sliding-window logits for a (C, *spatial) float32 tensor; returns (classes, *spatial) in
    accumulate_dtype (float16 by default, as nnU-Net) on results_device.

    Each tile: network output (mirrored passes averaged), times the Gaussian map, added into the
    accumulator; the accumulated Gaussian weights divide at the end. ``progress(f, msg)`` is
    called after every batch (it may raise Cancelled).
    """
    import torch

    accumulate_dtype = accumulate_dtype or torch.float16
    patch_size = tuple(int(p) for p in patch_size)
    data, unpad = pad_to_patch(data, patch_size)
    spatial = tuple(data.shape[1:])
    steps = compute_steps(spatial, patch_size, step)
    starts = list(itertools.product(*steps))
    gauss = torch.from_numpy(gaussian_map_np(patch_size)).to(results_device)
    combos = mirror_combinations(mirror_axes)
    acc = None
    weight = torch.zeros(spatial, dtype=torch.float16, device=results_device)
    data = data.to(device)

    def forward(x):
        if autocast_dtype is not None and torch.device(device).type == "cuda":
            with torch.autocast("cuda", dtype=autocast_dtype):
                return network(x).float()
        return network(x)

    with torch.inference_mode():
        for b0 in range(0, len(starts), batch_size):
            chunk = starts[b0:b0 + batch_size]
            slices = [tuple(slice(s, s + p) for s, p in zip(st, patch_size)) for st in chunk]
            x = torch.stack([data[(slice(None),) + sl] for sl in slices])
            pred = forward(x)
            for axes in combos:
                dims = [a + 2 for a in axes]
                pred += torch.flip(forward(torch.flip(x, dims)), dims)
            if combos:
                pred /= len(combos) + 1
            pred = pred.to(results_device)
            if acc is None:
                acc = torch.zeros((pred.shape[1],) + spatial, dtype=accumulate_dtype, device=results_device)
            for n, sl in enumerate(slices):
                acc[(slice(None),) + sl] += pred[n] * gauss
                weight[sl] += gauss
            if progress is not None:
                progress(min(b0 + batch_size, len(starts)) / len(starts),
                         f"tile {min(b0 + batch_size, len(starts))}/{len(starts)}")
        torch.div(acc, weight, out=acc)
    return acc[(slice(None),) + unpad]
