"""A DICOM series whose odd and even slices come from two acquisitions (image evidence).

The headers' checks (``dicom_headers._split_acquisitions``: AcquisitionNumber groups, acquisition
time sweeps) cannot separate a repeat scan interleaved at half the step when both acquisitions carry
the same AcquisitionNumber (or none) and no times (DICOM PS3.15 basic confidentiality profile removes
them): the series then reads as one volume at half the step whose every other slice is the other
acquisition (new-user trial 92 M1: 43, 236, 44, 236 ... HU). The image tells: one acquisition's
per-slice HU changes smoothly along the scan, two interleaved ones alternate, over the whole scan or
over the run of slices a partial repeat covers (trial 93 F3: tested on windows, the run and its own
offset reported). The test and its
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
    """Evidence that odd and even slices differ on a run of slices. ``offset_hu`` = mean of the
    alternating component (even - odd per-slice medians net of the smooth trend, HU) over the run,
    ``p`` = the evidence of the window that found it (the largest of its three independent t tests'
    two-sided p-values) times the number of windows tried (Bonferroni), at most 1;
    ``first``/``last`` the run's first and last slice (0-based, position order, inclusive),
    ``n_slices`` the series' slices; ``even_hu``/``odd_hu`` the medians over the run's even/odd
    slices' medians (HU)."""

    offset_hu: float
    p: float
    even_hu: float
    odd_hu: float
    first: int = 0
    last: int = 0
    n_slices: int = 0

    @property
    def throughout(self) -> bool:
        """The run covers the series (all but its end slices, which have one neighbour)."""
        return self.first <= 1 and self.last >= self.n_slices - 2


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


MIN_WINDOW = 9  # alternating-component values: three per independent subset (the t test's minimum)


def _subset_test(s: np.ndarray, k: np.ndarray) -> tuple[float, float] | None:
    """(p, mean) of the alternating component values ``s`` at slices ``k``: the s_k with
    k = r (mod 3), r = 0, 1, 2 (no slice shared), each a two-sided one-sample Student t test; the
    three must agree in sign (else p = 1) and the largest p is kept. None when a subset holds fewer
    than 3 finite values."""
    from scipy import stats

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
    return p, float(np.nanmean(s))


def _windows(n: int) -> list[tuple[int, int]]:
    """Windows [a, b) over ``n`` alternating-component values: the whole series, and lengths
    MIN_WINDOW * 2^j below it starting every half length (plus one ending at the last value), so a
    run of length R lies wholly inside a window of length at least R / 3."""
    out = {(0, n)}
    length = MIN_WINDOW
    while length < n:
        starts = list(range(0, n - length + 1, length // 2)) + [n - length]
        out.update((a, a + length) for a in starts)
        length *= 2
    return sorted(out)


def _run(s: np.ndarray, offset: float) -> tuple[int, int]:
    """The segment [a, b] (inclusive) of ``s`` most likely to hold the offset ``offset`` rather than
    none: the largest sum of (s_k - offset / 2) * sign(offset) (Gaussian likelihood ratio of a
    mean ``offset`` against 0; noise and single outliers do not split a run), found as the maximum
    subarray from cumulative sums. Where the offset starts and ends (descriptive: the evidence is
    the window's)."""
    x = np.where(np.isfinite(s), s * np.sign(offset) - abs(offset) / 2, 0.0)
    c = np.concatenate([[0.0], np.cumsum(x)])
    low = np.minimum.accumulate(c)  # low[j] = min(c[0..j])
    b = int(np.argmax(c[1:] - low[:-1])) + 1  # segment ends after value b - 1
    a = int(np.argmin(c[:b]))
    return a, b - 1


def alternation(medians: np.ndarray) -> Alternation | None:
    """Test the per-slice series ``medians`` [k] (HU, in position order) for an even/odd offset on
    the whole series or on a run of it (a repeat acquisition covering part of the scan).

    s_k = (-1)^k (m_k - (m_{k-1} + m_{k+1}) / 2): smooth anatomy's curvature flips sign with the
    parity and averages out; an offset a between the parities adds a to every s_k where it holds.
    Each window of ``_windows`` is tested with ``_subset_test`` (three subsets sharing no slice);
    among the windows whose mean offset reaches ``MIN_HU`` the one with the smallest p is kept and
    its p multiplied by the number of windows tried (Bonferroni; P(false alarm) <= p). The run is
    segment of ``_run`` (the offset's likely extent); its offset and slice
    range are reported. None when the series is too short to test (fewer than MIN_WINDOW values)."""
    m = np.asarray(medians, float)
    k = np.arange(1, m.size - 1)
    if k.size < MIN_WINDOW:
        return None
    s = np.where(k % 2 == 0, 1.0, -1.0) * (m[k] - (m[k - 1] + m[k + 1]) / 2)
    wins = _windows(s.size)
    tested = [(a, b, t) for a, b in wins if (t := _subset_test(s[a:b], k[a:b])) is not None]
    if not tested:
        return None
    strong = [w for w in tested if abs(w[2][1]) >= MIN_HU]
    a, b, (p, mean) = min(strong or tested, key=lambda w: (w[2][0], -(w[1] - w[0])))
    # the run: where an offset reaching MIN_HU extends; else the window itself (nothing to report)
    r0, r1 = _run(s, mean) if strong else (a, b - 1)
    run = s[r0:r1 + 1]
    first, last = int(k[r0]), int(k[r1])
    first = 0 if first == 1 else first  # an end slice has one neighbour and no s value of its own
    last = m.size - 1 if last == m.size - 2 else last
    sl = np.arange(m.size)
    inrun = np.isfinite(m) & (sl >= first) & (sl <= last)
    return Alternation(float(np.nanmean(run)), min(1.0, p * len(tested)),
                       float(np.median(m[inrun & (sl % 2 == 0)])), float(np.median(m[inrun & (sl % 2 == 1)])),
                       first, last, int(m.size))


def interleave_finding(hu: np.ndarray, depth_mm: np.ndarray | None = None) -> tuple[str | None, bool]:
    """(sentence, refuse) for a CT stack ``hu`` [k, j, i] in HU, slices in position order;
    (None, False) when nothing alternates. ``depth_mm`` [k] (optional): the slices' positions along
    the slice normal (mm), named with the run's slice numbers. The sentence names no file: the
    caller prefixes the folder and series, and raises InputError with it when ``refuse`` (the
    run's Bonferroni-corrected p < ``REFUSE_P``), else warns (p < ``WARN_P``)."""
    a = alternation(slice_body_medians(hu))
    if a is None or a.p >= WARN_P or abs(a.offset_hu) < MIN_HU:
        return None, False
    refuse = a.p < REFUSE_P
    sure = "interleaves" if refuse else "may interleave"
    if a.throughout:
        where = "throughout"
    else:
        at = (f" ({float(depth_mm[a.first]):.1f} to {float(depth_mm[a.last]):.1f} mm along the slice normal)"
              if depth_mm is not None else "")
        where = f"on slices {a.first + 1} to {a.last + 1} of {a.n_slices}{at}, not elsewhere"
    return (f"odd and even slices differ by {abs(a.offset_hu):.0f} HU {where} (median body HU "
            f"{a.even_hu:.0f} on the 1st, 3rd, ... slice along the slice normal, {a.odd_hu:.0f} on the 2nd, 4th, ...; "
            f"t test p = {a.p:.0e}, corrected for the windows tried): "
            f"the series {sure} two acquisitions (a repeat scan or another contrast phase at positions offset by "
            "half the step, over all or part of the scan) that its headers do not tell apart (same or no "
            "AcquisitionNumber, no acquisition times); split it into its acquisitions (e.g. by InstanceNumber or "
            "SOPInstanceUID ranges, or re-export each acquisition as its own series) and read one"), refuse
