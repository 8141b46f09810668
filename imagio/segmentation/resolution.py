"""The resolution a CT really has along each axis, which is not always its voxel spacing.

A CT resampled to a finer grid (a 3 mm scan interpolated to 1.5 or 0.7 mm, as a viewer, a
registration or a pipeline that standardises spacing does) keeps the blur of its original
voxels and adds the interpolation's; slices reconstructed with overlap (2.5 mm thick every
1.25 mm) are blurred over their thickness, not their spacing. Rules that add blur to reach a
common resolution (`bones.at_common_resolution`) or read thin objects' peak density must know
the blur already there.

Estimate: the noise of a CT is the scanner's quantum noise passed through the reconstruction
and any later interpolation; a linear filter with impulse response h turns noise of a short
correlation into noise whose autocorrelation is that of h (Barrett HH, Myers KJ, Foundations
of Image Science, Wiley 2004, ch. 8; for CT: Boedeker KL, Cooper VN, McNitt-Gray MF, Phys Med
Biol 2007;52:4027-4046, noise power spectrum and its correlation length). Its *equivalent
width*, the integral of the normalised autocorrelation, is ``(integral h)^2 / integral h^2``:
the width w of a box (a voxel of width w gives w) and 3.54 sigma for a Gaussian (whose
box of equal variance is 3.46 sigma wide). It is read from the variance of differences of
voxel pairs ``d`` voxels apart in deep homogeneous soft tissue (muscle, liver, spleen:
`SOFT_TISSUE_RANGE_HU` on average over a common-resolution voxel, and at least one such voxel
from any other tissue), where
``var(x[i+d] - x[i]) = 2 sigma^2 (1 - rho(d))``; lags of 2-4 common-resolution voxels, beyond
any correlation, give the uncorrelated reference, with the tissue's texture (which grows the
variance slowly with the lag) extrapolated from them by a straight line.
In-plane, filtered back-projection leaves noise less correlated than the image is blurred (the
ramp filter), so the estimate is a lower bound there; it is never taken below the spacing (the
old assumption), so a native scan is treated as before unless its own noise says it is blurred.
"""

from __future__ import annotations

import weakref

import numpy as np
from scipy import ndimage

from .common import anatomical_axes, erode_mm, rule

SOFT_TISSUE_RANGE_HU = (rule("noise_tissue_min_hu"), rule("noise_tissue_max_hu"))  # muscle,
# liver, spleen, unenhanced or enhanced; not fat, bone or blood pool (segmentation_rules.json)
MIN_PAIRS = 2000  # voxel pairs per lag for a variance within ~3 % (2 / sqrt(n) relative error)
S_AXIS_VOXELS = 2_000_000  # `resolution_along_s` reads at most about this many voxels
_LAST_S: list = [None]  # its last reading: (weakref to the array, key, resolution along S)
_LAST: list = [None]  # the last estimate: (weakref to its array, key, result), read and set whole


def _pair_variance(a: np.ndarray, m: np.ndarray, ax: int, d: int) -> tuple[float, int]:
    """Robust variance of a[i + d] - a[i] along axis ``ax`` over pairs with both ends in ``m``:
    the mean square of the differences within 4 robust standard deviations (a vessel or an
    edge that survives the erosion is an outlier, not noise)."""
    s0 = [slice(None)] * 3
    s1 = [slice(None)] * 3
    s0[ax] = slice(0, -d)
    s1[ax] = slice(d, None)
    both = m[tuple(s0)] & m[tuple(s1)]
    n = int(both.sum())
    if n < MIN_PAIRS:
        return float("nan"), n
    if a.dtype.kind in "iu" and a.itemsize <= 2:
        # integer HU: the differences are whole numbers, exact in int32 and float64, and the
        # median of whole numbers is the 50th percentile to the bit ((x + y) / 2 = y - (y - x) / 2
        # exactly): one partition for the three order statistics instead of two (speed, issue 20)
        diff = (a[tuple(s1)][both].astype(np.int32) - a[tuple(s0)][both]).astype(np.float64)
        q25, med, q75 = np.percentile(diff, [25, 50, 75])
    else:
        diff = a[tuple(s1)][both].astype(np.float64) - a[tuple(s0)][both]
        q25, q75 = np.percentile(diff, [25, 75])
        med = None
    sd = (q75 - q25) / 1.349
    if sd <= 0:
        return float("nan"), n
    diff = diff[np.abs(diff - (np.median(diff) if med is None else med)) < 4 * sd]
    return float(np.mean((diff - diff.mean()) ** 2)), n


def effective_resolution_mm(a: np.ndarray, spacing_kji) -> np.ndarray:
    """Per-axis effective resolution (mm, [k, j, i]) of the CT ``a`` (HU, [k, j, i]): the
    equivalent width of its noise autocorrelation along each axis (see the module docstring),
    never less than the spacing. Where the scan holds too little homogeneous soft tissue (fewer
    than ``MIN_PAIRS`` pairs at a lag) or no noise (a synthetic image), the spacing is returned
    for that axis (resolution = voxel, the conventional assumption).

    Lags: 1 voxel up to twice ``bone_common_resolution_mm`` (segmentation_rules.json; at least 1
    voxel) for the correlation, and as many again beyond it for the reference. Work is bounded
    by taking every f-th voxel across the axis (pairs stay neighbours along it), <= ~4 M voxels.

    The estimate (1-17 s on a chest CT) is kept for the last array asked about: asked again for
    the same array object (``bones.bone_mask``, ``bones.contrast_blood_pool`` and
    ``spine.spinal_canal`` each read the one CT of a segmentation), with the same spacing, shape
    and a sample of its values unchanged, the kept estimate is returned (a copy). An array
    modified in place elsewhere than at the sampled voxels is not detected: do not modify a CT's
    array between calls.

    Errors: none raised; ``a`` is any [k, j, i] array in HU, ``spacing_kji`` 3 positive mm."""
    key = (tuple(float(x) for x in spacing_kji), a.shape, a.dtype.str, _sample(a))
    last = _LAST[0]  # one read: another thread may replace it meanwhile
    if last is not None and last[0]() is a and last[1] == key:
        return last[2].copy()
    out = _estimate(a, spacing_kji)
    try:
        _LAST[0] = (weakref.ref(a), key, out.copy())
    except TypeError:  # an array type that takes no weak reference: not kept
        _LAST[0] = None
    return out


def _sample(a: np.ndarray) -> bytes:
    """Up to 16^3 of ``a``'s values on a regular lattice (no copy of the array): changes to the
    array seen by the cache of `effective_resolution_mm`."""
    return np.ascontiguousarray(a[tuple(slice(None, None, max(1, -(-n // 16))) for n in a.shape)]).tobytes()


def _estimate(a: np.ndarray, spacing_kji) -> np.ndarray:
    """`effective_resolution_mm` without its cache."""
    s = np.asarray(spacing_kji, float)
    out = s.copy()
    common = rule("bone_common_resolution_mm")
    lo, hi = SOFT_TISSUE_RANGE_HU
    # the tissue class is read on the image averaged over one common-resolution voxel: chosen on
    # single voxels, the noise itself would decide which pairs count (and bias their variance)
    size = np.maximum(1, np.rint(common / s)).astype(int)
    # an integer CT filtered straight into float32: the filter reads each voxel as a double either
    # way (int16 -> float32 -> double is exact), without the float32 copy of the whole CT
    mean = (ndimage.uniform_filter(a, size=tuple(size), output=np.float32) if a.dtype.kind in "iu" and a.itemsize <= 2
            else ndimage.uniform_filter(a.astype(np.float32, copy=False), size=tuple(size)))
    soft = (mean > lo) & (mean < hi)
    del mean
    if not soft.any():
        return out
    deep = erode_mm(soft, common, s)
    f = 1
    while a.size / f ** 2 > 4_000_000:
        f += 1
    for ax in range(3):
        sub = tuple(slice(None) if i == ax else slice(None, None, f) for i in range(3))
        # contiguous copies, read once per lag below (a strided view was gathered 2 x n_lag times)
        av, mv = np.ascontiguousarray(a[sub]), np.ascontiguousarray(deep[sub])
        n_cor = max(1, int(np.ceil(2 * common / s[ax])))  # lags within the correlation
        n_lag = 2 * n_cor  # ... and as many beyond it, for the texture's trend
        if mv.shape[ax] <= n_lag:
            continue
        var = np.array([_pair_variance(av, mv, ax, d)[0] for d in range(1, n_lag + 1)])
        if not np.all(np.isfinite(var)) or var[-1] <= 0:
            continue
        # beyond the correlation the variance grows only with the tissue's texture (slowly,
        # about linearly with the lag): a line fitted there, extrapolated to the short lags, is
        # the uncorrelated reference 2 sigma^2 + texture(d)
        d = np.arange(1, n_lag + 1, dtype=float)
        slope, icpt = np.polyfit(d[n_cor - 1:], var[n_cor - 1:], 1)
        ref = icpt + slope * d[:n_cor] if slope > 0 else np.full(n_cor, var[n_cor - 1:].mean())
        if np.any(ref <= 0):
            continue
        rho = 1.0 - var[:n_cor] / ref
        if rho[0] <= 0:
            continue
        # the correlation is positive and falls with the lag: sum it up to its first zero
        stop = np.flatnonzero(rho <= 0)
        rho = rho[:stop[0]] if stop.size else rho
        width = s[ax] * (1.0 + 2.0 * float(np.clip(rho, 0, 1).sum()))
        # the correlation of a box blur falls linearly (the triangle 1 - d / w, whose sum is w)
        # and that of a smoother one (Gaussian, interpolation) more slowly at first, so the
        # triangle through the first lag is at least as wide as the blur: a larger sum is a slow
        # tail of anatomical texture, not blur
        width = min(width, s[ax] / max(1.0 - float(rho[0]), 1e-3))
        out[ax] = max(s[ax], width)
    return out


def resolution_along_s(vol, min_mm: float, ratio: float) -> tuple[float, float, int] | None:
    """(resolution, spacing, axis): the resolution (mm, `effective_resolution_mm`) and the voxel
    spacing (mm) along the array axis nearest the patient's S (``axis``, 0=k, 1=j, 2=i, as
    `common.anatomical_axes`: any storage order, flips and oblique grids included) of the CT
    ``vol`` (a `Volume` in HU), when that resolution exceeds ``min_mm`` (what the sections the
    caller accepts do not give) and is at least ``ratio`` times the spacing; else None. A CT is
    measured in axial sections (a gantry tilt is resampled on reading), so its resolution along
    S is its section thickness: a reading this far above the spacing is a grid interpolated from
    thicker sections (a resampled export, a reformat) or thick overlapping sections, whose blur the
    header does not tell. The one definition of that finding, for the lesion measurements
    (lesion.json's ``resampled_sections_*``) and the airway tree (airway_limits.json's
    ``resampled_min_mm``). Errors: none raised."""
    ax = anatomical_axes(vol)["S"][0]
    a, sk = vol.array, np.asarray(vol.spacing_kji, float)
    # every f-th voxel across S (<= S_AXIS_VOXELS): the pairs along S, all that is read here, stay
    # neighbours (lung1's 5 mm sections B-spline-interpolated to 1 mm, 236 x 512 x 512: 0.25 CPU-s,
    # 6.21 mm, against 2.99 CPU-s and 6.40 mm for every voxel; the chest CTA 0.18 / 0.42 CPU-s,
    # 1.88 / 1.91 mm)
    f = 1
    while a.size / f ** 2 > S_AXIS_VOXELS:
        f += 1
    sub = tuple(slice(None) if i == ax else slice(None, None, f) for i in range(3))
    key = (ax, tuple(sk), a.shape, a.dtype.str, _sample(a))
    last = _LAST_S[0]
    if last is not None and last[0]() is a and last[1] == key:
        res = last[2]
    else:
        res = float(effective_resolution_mm(a[sub], np.where(np.arange(3) == ax, sk, sk * f))[ax])
        try:
            _LAST_S[0] = (weakref.ref(a), key, res)
        except TypeError:
            _LAST_S[0] = None
    sp = float(sk[ax])
    if res > min_mm and res >= ratio * sp:
        return res, sp, ax
    return None
