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
is no bound of the lesion and is reported as a leak, not as a volume. A probe outline that holds
less of the click's yet crosses its border back into it where the CT shows no intensity edge
(``crossing_edge``, Rose's contrast-to-noise criterion) shows that border is not the lesion's
(new-user trial H2: the 34.3 mL part of Lung_Dx-A0001's mass, unflagged).

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


def crossing_edge(a: np.ndarray, mask: np.ndarray, probe_mask: np.ndarray, sk, cell_mm, shell_mm,
                  window_mm: float, rose_k: float, clip_hu, noise_floor_hu: float) -> float | None:
    """Share (0-1) of the stretch of ``mask``'s border that ``probe_mask`` crosses where the CT
    shows an intensity edge; None when the probe's outline does not cross that border (it
    stops at it: a neighbouring structure with a border of its own).

    Why (new-user trial, Lung_Dx-A0001: a click in a heterogeneous perihilar mass gave 34.3 mL
    of its 59 mL, unflagged): a probe grown from just outside the click's outline (``mask``)
    that holds little of it is taken for another structure, yet a neighbour stops at the
    lesion's border, while tissue of the same lesion grows back across it (there B held 24 % of
    A, 49 % of B lay inside A). Whether ``mask``'s border is the lesion's border there is read
    on the CT: across a lesion's border the density changes by more than the noise; inside a
    heterogeneous mass it does not.

    The probe crosses the border when it holds voxels of ``mask`` beyond its border layer and
    deeper than ``shell_mm[0]`` (beyond the partial-volume blur, lesion.json ``shell_mm``). The
    crossing stretch: the border voxels of ``mask`` (6-connected to outside) 6-adjacent to the
    probe's outline outside it. At each, the mean HU of the probe's voxels inside ``mask`` and
    of those outside it, each ``shell_mm`` from the border (beyond the blur) within a cube of
    ``window_mm`` around it (the smallest measurable lesion, lesion.json ``click_ball_mm``), are
    compared by a two-sample statistic, the difference over its standard error
    sqrt(s_in^2/n_in + s_out^2/n_out), the counts taken in independent noise cells (``cell_mm``:
    the equivalent width of the CT's noise autocorrelation per axis,
    ``resolution.effective_resolution_mm``; Barrett & Myers 2004): Rose's contrast-to-noise ratio
    of the window's object (Rose A, J Opt Soc Am 1948;38:196-208); the edge is seen when it is at
    least ``rose_k`` (lesion.json ``rose_cnr``). The sample SDs hold the tissue's texture as well
    as the noise, so an edge must stand out of both; an SD is not taken below ``noise_floor_hu``
    (lesion.json: a noise-free or denoised image would otherwise call any difference an edge).
    Values are clipped to ``clip_hu`` (lower, upper HU: air and bone are an edge, not a mean). A
    crossing voxel whose window holds less than one noise cell of either side is not judged
    (None when none is judged).

    a: CT (HU) [k, j, i]; mask, probe_mask: bool, same grid; sk: spacing (mm, k, j, i); cell_mm:
    (mm, k, j, i), never taken below the spacing. Vectorised (box filters)."""
    skf = np.asarray(sk, float)
    sl = bbox_slices(mask & probe_mask, float(shell_mm[1]) + float(window_mm) + float(skf.max()), skf)
    if sl is None:
        return None
    m, b = mask[sl], probe_mask[sl]
    din = ndimage.distance_transform_edt(m, sampling=skf)
    bd = m & ~ndimage.binary_erosion(m, border_value=1)
    if not (b & ~bd & (din > float(shell_mm[0]))).any():
        return None   # the probe stops at the border (its layer, within the blur): it does not cross it
    dout = ndimage.distance_transform_edt(~m, sampling=skf)
    cross = bd & ndimage.binary_dilation(b & ~m)
    if not cross.any():
        return None
    v = np.clip(a[sl].astype(np.float64), float(clip_hu[0]), float(clip_hu[1]))
    size = np.maximum(np.rint(float(window_mm) / skf).astype(int) | 1, 1)
    per_cell = float(np.prod(skf) / np.prod(np.maximum(np.asarray(cell_mm, float), skf)))

    def window(sel):   # (mean, variance, independent cells) of v over sel in each voxel's window
        n = ndimage.uniform_filter(sel.astype(np.float64), size)
        s1 = ndimage.uniform_filter(np.where(sel, v, 0.0), size)
        s2 = ndimage.uniform_filter(np.where(sel, v * v, 0.0), size)
        mu = s1 / np.maximum(n, 1e-12)
        var = np.maximum(s2 / np.maximum(n, 1e-12) - mu * mu, float(noise_floor_hu) ** 2)
        return mu, var, n * float(np.prod(size)) * per_cell

    lo, hi = float(shell_mm[0]), float(shell_mm[1])
    mi, vi, ni = window(b & m & (din > lo) & (din <= hi))
    mo, vo, no = window(b & ~m & (dout > lo) & (dout <= hi))
    pts = cross & (ni >= 1.0) & (no >= 1.0)   # both sides present in the window
    if not pts.any():
        return None
    se = np.sqrt(vi[pts] / ni[pts] + vo[pts] / no[pts])
    cnr = np.abs(mi[pts] - mo[pts]) / np.maximum(se, 1e-12)
    return float((cnr >= float(rose_k)).mean())
