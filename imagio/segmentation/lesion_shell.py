"""The one-click lesion checked from outside its outline (issue 14).

A click inside a heterogeneous mass can give only the part of it the click lies in (its
homogeneous core), and the click-dependence checks of ``lesion`` grow the lesion again from
other clicks *inside* that outline, so they cannot see the rest of the mass (new-user trial:
Lung_Dx-A0001's perihilar mass, clicks inside it gave 34 and 59 mL, neither flagged). This
module looks from outside: probe clicks in the tissue of the outline's own density class that
lies just beyond it (``shell_mm``, 2-6 mm outside: beyond the partial-volume blur) and is
contiguous with it are grown by the same model; a probe whose outline holds most of the click's
(the same lesion: ``probe_min_overlap``) and is larger than the one-click consistency allows
(``click_volume_spread``) shows that the outline may hold only part of the lesion. A probe
outline that leaked (reached the size limit, or filled the image without a border of its own)
is no bound of the lesion and is reported as a leak, not as a volume.

Thresholds: ``imagio/data/lesion.json`` (read by ``lesion``, passed in here).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .common import bbox_slices, components, depth_mm, dilate_mm


def hu_class_bounds(median_hu: float, bounds) -> tuple | None:
    """(lower, upper) HU of the density class ``median_hu`` falls in, the classes being the
    intervals between the sorted ``bounds`` (HU); None when it is the lowest or the highest
    class (aerated lung / air, bone: no lesion grows there).

    The bounds the caller gives are the published ones of lesion.json: aerated lung below
    ground glass (-700 HU, Hansell 2008), ground glass to -300 HU, fat and partial volume to
    -30 HU (Lamba 2014), soft tissue to bone (400 HU)."""
    b = sorted(float(v) for v in bounds)
    i = int(np.searchsorted(b, float(median_hu)))
    if i == 0 or i >= len(b):
        return None
    return b[i - 1], b[i]


def outside_probes(a: np.ndarray, mask: np.ndarray, sk, bounds, shell_mm, ball_mm: float, smooth_mm: float,
                   n_max: int, deepest) -> list:
    """Probe clicks ([k, j, i] indices on the grid of ``a``) in the tissue of ``mask``'s density
    class just outside it, at most ``n_max``, largest first.

    a: CT (HU) [k, j, i]; mask: the outline (bool, same grid); sk: spacing (mm, k, j, i);
    bounds: HU class bounds (``hu_class_bounds``); shell_mm: (inner, outer) distance (mm) of the
    shell the probes lie in; ball_mm: a probe lies at least this deep inside the outline joined
    with the same-class tissue around it (a click at least 5 mm inside the larger lesion it
    would belong to: issue 14's interior clicks; its statistics ball lies in that tissue), so a
    vessel or a thin wall beside a nodule gives none; smooth_mm: Gaussian sigma (mm) of the
    denoising the class is judged on; deepest: ``lesion._deepest_probe`` (the probe voxel of a
    part, independent of the array's axis order). The parts are the 6-connected components of
    the same-class tissue within the shell's outer distance that touch the outline (contiguous
    with it), each at least half the largest (the tissue beyond on one side, not specks)."""
    skf = np.asarray(sk, float)
    sl = bbox_slices(mask, float(shell_mm[1]) + 2.0 * float(ball_mm), skf)
    if sl is None:
        return []
    m = mask[sl]
    sm = ndimage.gaussian_filter(a[sl].astype(np.float32), smooth_mm / skf)
    cls = hu_class_bounds(float(np.median(sm[m])), bounds)
    if cls is None:
        return []
    same = (sm > cls[0]) & (sm < cls[1])
    near = dilate_mm(m, float(shell_mm[1]), skf)
    beside = same & near & ~m
    lab, n, counts = components(beside, connectivity=6)
    if not n:
        return []
    touching = np.unique(lab[dilate_mm(m, float(skf.max()), skf) & beside])
    touching = touching[touching > 0]
    if not touching.size:
        return []
    depth = depth_mm(same | m, skf)  # depth inside the lesion joined with the tissue of its class (finite: review 45 H1)
    shell = near & ~dilate_mm(m, float(shell_mm[0]), skf)
    order = touching[np.argsort(-counts[touching], kind="stable")]
    out, lo = [], np.array([s.start for s in sl])
    for c in order[:n_max]:
        if 2 * counts[c] < counts[order[0]]:
            break
        cand = np.where((lab == c) & shell & (depth >= ball_mm), depth, 0.0)
        if cand.max() <= 0:
            continue
        out.append(tuple(int(v) for v in np.asarray(deepest(cand, m, skf)) + lo))
    return out


def host_tissue(a: np.ndarray, mask: np.ndarray, probe_mask: np.ndarray, sk, smooth_mm: float,
                facing_sd: float, noise_floor_hu: float) -> bool:
    """True when the probe's outline ``probe_mask`` is the tissue AROUND the click's outline
    ``mask`` (a host organ), not more of the same lesion: most of ``mask``'s voxels (their CT,
    ``a`` HU, smoothed at ``smooth_mm``) are not of the probe's tissue: farther than ``facing_sd``
    robust SDs (1.4826 x MAD, at least ``noise_floor_hu``) from the median of what the probe adds
    beyond ``mask``, the lesion model's own definition of the surrounding tissue (lesion.json
    ``facing_sd``, ``noise_floor_hu``). Such a probe holds the
    outline only because its hole filling closed over it (a hypo- or hyperdense lesion inside
    an organ); the rest of a heterogeneous mass is tissue of the outline's own density, which the
    outline's voxels fall within (review 45 H2: an exact 7.3 mL lesion in a 110 HU organ was
    called part of a 904.6 mL "mass"). Density alone cannot tell a hyperdense lesion in an organ
    from the enhancing centre of a mass: the caller applies it only outside the lung (a probe
    outline not bordered by aerated lung), where organs host lesions. Arrays [k, j, i], same
    grid; sk: spacing (mm, k, j, i)."""
    skf = np.asarray(sk, float)
    sl = bbox_slices(probe_mask | mask, 2.0 * float(smooth_mm), skf)
    if sl is None:
        return False
    sm = ndimage.gaussian_filter(a[sl].astype(np.float32), float(smooth_mm) / skf)
    added = sm[probe_mask[sl] & ~mask[sl]]
    own = sm[mask[sl]]
    if added.size < 8 or own.size == 0:
        return False
    med = float(np.median(added))
    sd = max(1.4826 * float(np.median(np.abs(added - med))), float(noise_floor_hu))
    return bool((np.abs(own - med) <= facing_sd * sd).mean() < 0.5)


def judge_probe(mask: np.ndarray, probe_mask: np.ndarray, probe_leaked: bool, min_overlap: float,
                spread: float) -> str:
    """'same' / 'leaked' / 'part' / 'other' for a probe's outline ``probe_mask`` (bool, the grid of
    ``mask``) against the click's ``mask``: 'other' when it holds at most ``min_overlap`` of
    ``mask`` (another structure that only touches it) or is empty; else 'leaked' when the probe
    leaked (``probe_leaked``: it reached the size limit or filled the image without a border);
    'part' when it is more than ``spread`` times ``mask`` (the click's outline holds only part
    of the lesion); else 'same'."""
    n0, n1 = int(mask.sum()), int(probe_mask.sum())
    if not n0 or not n1 or int((probe_mask & mask).sum()) <= min_overlap * n0:
        return "other"
    if probe_leaked:
        return "leaked"
    return "part" if n1 > spread * n0 else "same"
