"""A DICOM series whose odd and even slices come from two acquisitions (image evidence).

The headers' checks (``dicom_headers._split_acquisitions``: AcquisitionNumber groups, acquisition
time sweeps) cannot separate a repeat scan interleaved at half the step when both acquisitions carry
the same AcquisitionNumber (or none) and no times (DICOM PS3.15 basic confidentiality profile removes
them): the series then reads as one volume at half the step whose every other slice is the other
acquisition (new-user trial 92 M1: 43, 236, 44, 236 ... HU). The image tells: one acquisition's
per-slice HU changes smoothly along the scan, two interleaved ones alternate. The test and its
thresholds are in ``imagio/data/input_limits.json`` ("interleaved_acquisitions", with sources).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .limits import LIMITS

_L = LIMITS["interleaved_acquisitions"]
REFUSE_P, WARN_P = float(_L["refuse_p"]), float(_L["warn_p"])
MIN_HU, BODY_MIN_HU = float(_L["min_hu"]), float(_L["body_min_hu"])
IN_PLANE_STRIDE = 4  # every 4th row/column: a 512 x 512 slice still gives 16,384 samples per median
MIN_BODY_FRACTION = 0.01  # a slice with less body than this (of its sampled pixels) has no median


@dataclass(frozen=True)
class Alternation:
    """Evidence that odd and even slices differ: ``offset_hu`` = mean of (even - odd) per-slice
    medians net of the smooth trend (HU), ``p`` = the largest of the three independent t tests'
    two-sided p-values, ``even_hu``/``odd_hu`` the medians over the even/odd slices' medians."""

    offset_hu: float
    p: float
    even_hu: float
    odd_hu: float


def slice_body_medians(hu: np.ndarray) -> np.ndarray:
    """Median HU of the body voxels (>= ``BODY_MIN_HU``) of each slice of ``hu`` [k, j, i] (HU),
    sampled every ``IN_PLANE_STRIDE`` pixels; NaN where a slice holds almost no body. Shape [k]."""
    sub = np.asarray(hu[:, ::IN_PLANE_STRIDE, ::IN_PLANE_STRIDE], dtype=np.float32)
    body = sub >= BODY_MIN_HU
    frac = body.mean(axis=(1, 2))
    out = np.full(sub.shape[0], np.nan)
    ok = frac >= MIN_BODY_FRACTION
    if ok.any():
        out[ok] = np.nanmedian(np.where(body[ok], sub[ok], np.nan).reshape(int(ok.sum()), -1), axis=1)
    return out


def alternation(medians: np.ndarray) -> Alternation | None:
    """Test the per-slice series ``medians`` [k] (HU, in position order) for an even/odd offset.

    s_k = (-1)^k (m_k - (m_{k-1} + m_{k+1}) / 2): smooth anatomy's curvature flips sign with the
    parity and averages out; an offset a between the parities adds a to every s_k. s_k and s_{k+3}
    share no slice, so the s_k with k = r (mod 3), r = 0, 1, 2, are each tested with a two-sided
    one-sample Student t test; the three must agree in sign and the largest p is kept. None when
    a subset has fewer than 3 values (too few slices to test)."""
    from scipy import stats

    m = np.asarray(medians, float)
    k = np.arange(1, m.size - 1)
    if k.size < 9:
        return None
    s = np.where(k % 2 == 0, 1.0, -1.0) * (m[k] - (m[k - 1] + m[k + 1]) / 2)
    ps, means = [], []
    for r in range(3):
        x = s[(k % 3 == r) & np.isfinite(s)]
        if x.size < 3:
            return None
        sd = float(x.std(ddof=1))
        if sd == 0:
            ps.append(0.0 if x.mean() != 0 else 1.0)
        else:
            ps.append(float(2 * stats.t.sf(abs(x.mean()) / (sd / np.sqrt(x.size)), x.size - 1)))
        means.append(float(x.mean()))
    p = max(ps) if len({np.sign(v) for v in means}) == 1 else 1.0
    fin = np.isfinite(m)
    par = np.arange(m.size) % 2
    return Alternation(float(np.nanmean(s)), p, float(np.median(m[fin & (par == 0)])),
                       float(np.median(m[fin & (par == 1)])))


def interleave_finding(hu: np.ndarray, where: str) -> tuple[str | None, bool]:
    """(sentence, refuse) for a CT stack ``hu`` [k, j, i] in HU, slices in position order;
    (None, False) when nothing alternates. ``where`` names the folder and series in the sentence.
    The caller raises InputError with the sentence when ``refuse`` (p < ``REFUSE_P``), else warns."""
    a = alternation(slice_body_medians(hu))
    if a is None or a.p >= WARN_P or abs(a.offset_hu) < MIN_HU:
        return None, False
    refuse = a.p < REFUSE_P
    sure = "interleaves" if refuse else "may interleave"
    return (f"{where}: odd and even slices differ by {abs(a.offset_hu):.0f} HU throughout (median body HU "
            f"{a.even_hu:.0f} on the 1st, 3rd, ... slice along the slice normal, {a.odd_hu:.0f} on the 2nd, 4th, ...; t test p = {a.p:.0e}): "
            f"the series {sure} two acquisitions (a repeat scan or another contrast phase at positions offset by "
            "half the step) that its headers do not tell apart (same or no AcquisitionNumber, no acquisition "
            "times); split it into its acquisitions (e.g. by InstanceNumber or SOPInstanceUID ranges, or "
            "re-export each acquisition as its own series) and read one"), refuse
