"""nnU-Net v2 preprocessing steps (arrays in the network's axis order, channel first).

Order as in nnU-Net's DefaultPreprocessor: crop to the filled non-zero box, normalise (CT:
clip to the foreground percentiles 0.5/99.5, subtract mean, divide by max(std, 1e-8), float32),
then resample to the target spacing (``resample.py``).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import binary_fill_holes

from ...errors import InputError


def crop_to_nonzero(data: np.ndarray):
    """Crop (C, *spatial) to the bounding box of the hole-filled non-zero mask.
    Returns (cropped, mask cropped, bbox [(lo, hi), ...])."""
    mask = np.any(data != 0, axis=0)
    if mask.all():
        return data, mask, [(0, s) for s in mask.shape]
    mask = binary_fill_holes(mask)
    if not mask.any():
        raise InputError("the image is all zeros: nothing to segment")
    bbox = []
    for ax in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != ax)
        nz = np.flatnonzero(mask.any(axis=other))
        bbox.append((int(nz[0]), int(nz[-1]) + 1))
    sl = tuple(slice(lo, hi) for lo, hi in bbox)
    return data[(slice(None),) + sl], mask[sl], bbox


def normalize(data: np.ndarray, schemes, intensity_props: dict, use_mask_for_norm=None,
              nonzero_mask: np.ndarray | None = None) -> np.ndarray:
    """Per-channel normalisation as named in the plans (CTNormalization, ZScoreNormalization,
    NoNormalization). Returns float32."""
    out = np.empty(data.shape, dtype=np.float32)
    for c, scheme in enumerate(schemes):
        img = data[c].astype(np.float32, copy=True)
        if scheme == "CTNormalization":
            p = intensity_props.get(str(c)) or intensity_props.get(c)
            if p is None:
                raise InputError(f"plans.json lacks foreground intensity properties for channel {c}")
            np.clip(img, p["percentile_00_5"], p["percentile_99_5"], out=img)
            img -= p["mean"]
            img /= max(p["std"], 1e-8)
        elif scheme == "ZScoreNormalization":
            use_mask = bool(use_mask_for_norm and use_mask_for_norm[c]) and nonzero_mask is not None
            if use_mask:
                m = nonzero_mask
                vals = img[m]
                img[m] = (vals - vals.mean()) / max(vals.std(), 1e-8)
                img[~m] = 0
            else:
                img = (img - img.mean()) / max(img.std(), 1e-8)
        elif scheme in ("NoNormalization", "NoNorm"):
            pass
        else:
            raise InputError(f"normalisation {scheme!r} is not supported by the engine")
        out[c] = img
    return out
