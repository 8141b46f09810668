"""One-click lesion segmentation: a RAS point inside a liver tumour or a lung nodule -> its mask
and measurements.

Method (all inside a box of ``max_radius_mm`` around the click, so it is fast on any CT):
1. Intensity at the click: median and robust spread (MAD) in a 2 mm ball. Air (< -850 HU) or
   bone (> 400 HU) at the click is refused.
2. Context: if the box is mostly aerated lung, the lesion is a lung nodule (solid, part-solid or
   ground-glass): it is what is denser than the parenchyma. Its threshold is first set just
   above the parenchyma (median + max(125 HU, 3 SD)), then refined to the midpoint between the
   parenchyma and the lower quartile of the lesion's interior (so a solid nodule is cut at
   its half-maximum edge while a ground-glass rim stays in). The region is bounded by the lung
   (lung air closed by ``lung_closing_mm`` so juxtapleural lesions stay inside).
   Otherwise the lesion is a soft-tissue lesion (e.g. a hypo- or hyper-dense liver tumour):
   voxels closer in HU to the click than to the surrounding tissue (midpoint threshold between
   the lesion's median and the median of a shell around a first estimate).
3. Region: the connected component of the click, opened by ``open_mm`` (cuts attached vessels),
   holes filled, bounded by ``organ`` when given.
Measurements: volume (mL), long and short axis in 3-D and in the axial plane (RECIST-style:
largest in-slice diameter and the largest width perpendicular to it), in mm. The maximum
diameter between boundary voxel centres matches a digital sphere's true diameter (within
0.2 voxel, checked over sub-voxel offsets); a width along one fixed direction gets half a
voxel added (its extreme centres lie on average that far inside the boundary).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

from ..errors import ImagioError, InputError
from ..volume import Volume
from .common import anatomical_axes, as_progress, ball, check_ct, close_mm, fill_holes_3d

AIR_CLICK_HU = -850.0
BONE_CLICK_HU = 400.0
MAX_OPEN_MM = 6.0
OPEN_FRACTION = 0.5  # opening radius as a share of the inscribed radius at the click
LUNG_CONTEXT_FRACTION = 0.2  # share of aerated lung (< -500 HU) 2-10 mm beyond a lung lesion
MAX_LUNG_CLOSING_MM = 30.0


@dataclass
class LesionMeasurements:
    kind: str  # "lung_nodule" or "soft_tissue" (e.g. liver tumour)
    volume_ml: float
    long_axis_mm: float  # 3-D maximum diameter
    short_axis_mm: float  # 3-D largest diameter perpendicular to the long axis
    axial_long_axis_mm: float  # largest diameter in an axial slice (RECIST)
    axial_short_axis_mm: float  # largest width perpendicular to it, same slice
    mean_hu: float
    centroid_ras: list = field(default_factory=list)
    threshold_hu: list = field(default_factory=list)  # [lower, upper] used

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in d.items()}


def _voxel_extent(direction_ras: np.ndarray, vol: Volume) -> np.ndarray:
    """Effective voxel size (mm) along unit RAS directions (N, 3): sqrt(sum (u.step_i)^2).

    Equals the spacing along a grid axis; it corrects a diameter measured between voxel
    centres to one measured between boundaries without the cube-corner overshoot."""
    axes = vol.ijk_to_ras[:3, :3]  # columns: i, j, k steps in RAS mm
    return np.sqrt(((direction_ras @ axes) ** 2).sum(1))


def _feret(points: np.ndarray) -> tuple[float, np.ndarray]:
    """Maximum pairwise distance of points (N, d) and its unit direction."""
    if len(points) < 2:
        return 0.0, np.eye(points.shape[1])[0]
    pts = points
    if len(points) > 4 + points.shape[1]:
        try:
            from scipy.spatial import ConvexHull

            pts = points[ConvexHull(points).vertices]
        except Exception:  # degenerate (flat/collinear): use all points
            pts = points
    if len(pts) > 4000:
        pts = pts[np.linspace(0, len(pts) - 1, 4000).astype(int)]
    d2 = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(int(np.argmax(d2)), d2.shape)
    v = pts[j] - pts[i]
    n = float(np.linalg.norm(v))
    return n, (v / n if n > 0 else np.eye(points.shape[1])[0])


def measure(mask: np.ndarray, vol: Volume, ct: np.ndarray | None = None, kind: str = "") -> LesionMeasurements:
    """Volume and diameters of a lesion mask on ``vol``'s grid (RAS mm, voxel extent included)."""
    if not mask.any():
        raise InputError("the lesion mask is empty: nothing to measure")
    kji = np.argwhere(mask)
    # diameters of the mask without single-voxel protrusions (a cross opening), when that keeps
    # >= 90 % of it: one noisy boundary voxel must not lengthen the maximum diameter
    shape_m = ndimage.binary_opening(mask)
    if shape_m.sum() < 0.9 * len(kji):
        shape_m = mask
    surf = np.argwhere(shape_m & ~ndimage.binary_erosion(shape_m))
    ras = vol.kji_to_world(surf)
    long3, u = _feret(ras)
    # short axis: largest extent perpendicular to the long axis (projection on the plane)
    basis = np.linalg.svd(np.eye(3) - np.outer(u, u))[0][:, :2]
    short3, w2 = _feret(ras @ basis)
    w = basis @ w2
    short3 += 0.5 * float(_voxel_extent(w[None], vol)[0])
    short3 = min(short3, long3)  # the half-voxel correction must not exceed the maximum
    # axial: slices along the array axis closest to S, coordinates projected on R-A
    s_ax = anatomical_axes(vol)["S"][0]
    best = (0.0, 0.0)
    for s in np.unique(surf[:, s_ax]):
        pts = ras[surf[:, s_ax] == s][:, :2]
        la, ua = _feret(pts)
        if la + 1e-9 < best[0] - 2 * max(vol.spacing):
            continue
        ua3 = np.array([ua[0], ua[1], 0.0])
        perp = np.array([-ua[1], ua[0]])
        proj = pts @ perp
        sa = float(proj.max() - proj.min()) if len(proj) else 0.0
        sa += 0.5 * float(_voxel_extent(np.array([[perp[0], perp[1], 0.0]]), vol)[0])
        if la > best[0]:
            best = (la, min(sa, la))
    vals = ct[mask] if ct is not None else np.zeros(1)
    return LesionMeasurements(
        kind=kind, volume_ml=float(mask.sum() * vol.voxel_volume_ml),
        long_axis_mm=long3, short_axis_mm=short3,
        axial_long_axis_mm=best[0], axial_short_axis_mm=best[1], mean_hu=float(vals.mean()),
        centroid_ras=[round(float(c), 2) for c in vol.kji_to_world(kji.mean(0)[None])[0]])


def _component_at(mask: np.ndarray, seed: tuple, spacing) -> np.ndarray:
    """Component of ``mask`` containing ``seed``, or the one nearest to it (within 3 mm)."""
    lab, n = ndimage.label(mask)
    if n == 0:
        return np.zeros_like(mask)
    v = lab[seed]
    if v == 0:
        dist, ind = ndimage.distance_transform_edt(lab == 0, sampling=spacing, return_indices=True)
        if dist[seed] > 3.0:
            return np.zeros_like(mask)
        v = lab[tuple(ind[:, seed[0], seed[1], seed[2]])]
    return lab == v


def segment_lesion(ct: Volume, point_ras, organ: np.ndarray | None = None, kind: str | None = None,
                   max_radius_mm: float = 60.0, open_mm: float = 1.0, lung_closing_mm: float = 12.0,
                   progress=None) -> tuple[np.ndarray, LesionMeasurements]:
    """(mask [k, j, i] on the CT grid, measurements) of the lesion under ``point_ras`` (RAS mm).

    organ: optional bounding mask (e.g. the liver, or the lungs); kind: force "lung_nodule" or
    "soft_tissue" instead of detecting it from the surroundings.
    """
    p = as_progress(progress)
    a = check_ct(ct)
    point = np.asarray(point_ras, float).reshape(3)
    if not ct.contains_world(point[None])[0]:
        ext = [ct.ijk_to_world(np.array([[-0.5, -0.5, -0.5]]))[0],
               ct.ijk_to_world(np.asarray(ct.shape[::-1], float)[None] - 0.5)[0]]
        raise InputError(
            f"the point R,A,S = {point.round(1).tolist()} mm is outside the image (corners "
            f"{np.round(ext[0], 1).tolist()} .. {np.round(ext[1], 1).tolist()}); click inside the lesion")
    seed_g = tuple(int(v) for v in np.rint(ct.world_to_kji(point[None])[0]))
    sk = ct.spacing_kji
    half = np.ceil(max_radius_mm / sk).astype(int)
    lo = np.maximum(np.asarray(seed_g) - half, 0)
    hi = np.minimum(np.asarray(seed_g) + half + 1, ct.shape)
    sl = tuple(slice(l, h) for l, h in zip(lo, hi))
    roi = a[sl].astype(np.float32)
    seed = tuple(int(v) for v in np.asarray(seed_g) - lo)
    org = organ[sl] if organ is not None else None
    p(0.1, "lesion: intensity at the click")
    # ball of 2 mm (at least the 6-neighbourhood) around the seed
    b = ball(max(2.0, float(sk.min()) * 1.01), sk)
    c = np.array(b.shape) // 2
    blo = np.asarray(seed) - c
    bk = np.argwhere(b) + blo
    ok = np.all((bk >= 0) & (bk < roi.shape), axis=1)
    bv = roi[tuple(bk[ok].T)]
    m0 = float(np.median(bv))
    sd0 = max(1.4826 * float(np.median(np.abs(bv - m0))), 10.0)
    if m0 < AIR_CLICK_HU:
        raise InputError(f"the point is in air ({m0:.0f} HU at the click): click inside the lesion")
    if m0 > BONE_CLICK_HU:
        raise InputError(f"the point is in bone or calcification ({m0:.0f} HU): click inside the lesion")
    # context: what surrounds a first estimate of the lesion (aerated lung or soft tissue)
    import edt

    aniso = tuple(float(s) for s in sk)
    first = _grow(roi, seed, m0 - 3 * sd0, m0 + 3 * sd0, org, open_mm, sk)
    if not first.any():
        first = np.zeros(roi.shape, bool)
        first[seed] = True
    r_in = float(edt.edt(np.ascontiguousarray(first), anisotropy=aniso)[seed])
    dist = edt.edt(np.ascontiguousarray(~first), anisotropy=aniso)
    shell = (dist > 2.0) & (dist <= 8.0)
    # aerated lung in a spherical shell just beyond the lesion's inscribed radius at the click
    # (robust to a first estimate that leaked into tissue of the same density)
    dseed = _dist_grid(roi.shape, seed, sk)
    # and around the first estimate, within 25 mm beyond that radius (a large mass whose first
    # estimate is partial, or leaked along the chest wall)
    ring = (dseed > r_in + 2.0) & (dseed <= r_in + 10.0)
    near_shell = shell & (dseed <= r_in + 25.0)
    lung_frac = max(float((roi[ring] < -500).mean()) if ring.any() else 0.0,
                    float((roi[near_shell] < -500).mean()) if near_shell.any() else 0.0)
    if kind is None:
        kind = "lung_nodule" if lung_frac > LUNG_CONTEXT_FRACTION else "soft_tissue"
    p(0.3, f"lesion: region growing ({kind})")
    if kind == "lung_nodule":
        # parenchyma level: away from the first estimate (a ground-glass rim around a solid
        # core must not be taken for the background)
        ctx = (dist > 8.0) & (dist <= 25.0)
        par = roi[ctx & (roi < -500) & (roi > -1000)]
        if par.size == 0:
            par = roi[roi < -500]
        bg = float(np.median(par))
        bg_sd = 1.4826 * float(np.median(np.abs(par - bg)))
        r_close = min(max(lung_closing_mm, r_in + 5.0), MAX_LUNG_CLOSING_MM)
        # the lung: the aerated component that surrounds the lesion most
        lab, n = ndimage.label(roi < -400)
        air_lung = np.zeros(roi.shape, bool)
        if n:
            cnt = np.bincount(lab[shell], minlength=n + 1)
            cnt[0] = 0
            air_lung = lab == int(np.argmax(cnt))
        org = close_mm(air_lung if organ is None else org, r_close, sk)
        t = bg + max(125.0, 3.0 * bg_sd)
        t = min(t, m0 - 50.0)
        upper = BONE_CLICK_HU + 200.0

        def lung_region(thr):
            r = _grow(roi, seed, thr, upper, org, open_mm, sk)
            if r.any() and not _touches_border(r):
                return r
            # juxtapleural lesion: the grown region runs into the chest wall / mediastinum
            r0 = _component_at((roi >= thr) & (roi <= upper), seed, sk)
            cut = _cut_at_facing_radius(r0, ndimage.binary_dilation(air_lung), dseed, sk)
            return r if cut is None else _grow(roi, seed, thr, upper, cut, open_mm, sk)

        region = lung_region(t)
        if region.any():
            inner = ndimage.binary_erosion(region)
            core = roi[inner] if inner.sum() >= 8 else roi[region]
            t2 = 0.5 * (bg + float(np.percentile(core, 25)))
            if t2 > t:
                r2 = lung_region(t2)
                if r2.any():
                    region, t = r2, t2
        thr = [t, upper]
    else:
        shell = (dist > 2.0) & (dist <= 6.0)
        if org is not None:
            shell &= org
        shell &= (roi > -200) & (roi < BONE_CLICK_HU)
        bg = float(np.median(roi[shell])) if shell.any() else m0 + 100.0
        mid = 0.5 * (m0 + bg)
        if m0 < bg:  # hypodense lesion
            lo_t, hi_t = max(m0 - 4 * sd0, -150.0), mid
        else:
            lo_t, hi_t = mid, min(m0 + 4 * sd0, BONE_CLICK_HU)
        region = _grow(roi, seed, lo_t, hi_t, org, open_mm, sk)
        if region.any() and _touches_border(region):
            # the lesion touches tissue of its own density (e.g. at the organ's edge): keep it
            # within the radius at which it faces its organ (voxels near the organ's level)
            bg_sd = 1.4826 * float(np.median(np.abs(roi[shell] - bg))) if shell.any() else sd0
            organ_like = np.abs(roi - bg) <= 2.0 * max(bg_sd, 10.0)
            cut = _cut_at_facing_radius(region, ndimage.binary_dilation(organ_like), dseed, sk)
            if cut is not None:
                region = _grow(roi, seed, lo_t, hi_t, cut, open_mm, sk)
        thr = [lo_t, hi_t]
    if not region.any():
        raise ImagioError("the lesion segmentation came out empty: the click is not inside a "
                          "distinct lesion; click nearer its centre")
    if _touches_border(region) and any(l > 0 or h < s for l, h, s in zip(lo, hi, ct.shape)):
        raise ImagioError(
            f"the lesion region leaked beyond {max_radius_mm:g} mm from the click (it is not "
            "separated from its surroundings by intensity); give the organ mask or segment manually")
    p(0.9, "lesion: measurements")
    mask = np.zeros(ct.shape, bool)
    mask[sl] = region
    meas = measure(mask, ct, a, kind=kind)
    meas.threshold_hu = [round(float(v), 1) for v in thr]
    p(1.0, "lesion: done")
    return mask, meas


def _cut_at_facing_radius(region, facing, dseed, sk):
    """``region`` limited to a ball around the click whose radius is where the region faces
    ``facing`` tissue (lung air, or the organ): the facing boundary nearest to the click (within
    1.5 x the nearest distance, 75th percentile), plus a voxel. None if it faces nothing."""
    face = region & facing
    if not face.any():
        return None
    d = dseed[face]
    near = d[d <= 1.5 * float(d.min()) + float(max(sk))]
    radius = float(np.percentile(near, 75)) + float(max(sk[1:]))
    return region & (dseed <= radius)


def _dist_grid(shape, seed, sk) -> np.ndarray:
    """Distance (mm) of every voxel of a box from the seed voxel (anisotropic spacing)."""
    g = np.ogrid[tuple(slice(0, n) for n in shape)]
    return np.sqrt(sum(((gi - c) * s) ** 2 for gi, c, s in zip(g, seed, sk))).astype(np.float32)


def _touches_border(m: np.ndarray) -> bool:
    return bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any()
                or m[:, :, 0].any() or m[:, :, -1].any())


def _grow(roi, seed, lo_t, hi_t, org, open_mm, sk) -> np.ndarray:
    """Seeded component in [lo_t, hi_t] HU, opened to cut attached tubes, holes filled.

    The opening radius adapts to the lesion: OPEN_FRACTION of its inscribed radius at the click (a lesion
    clicked near its centre survives; vessels, bronchial walls and pleural tags thinner than
    the lesion are cut), at least ``open_mm``, at most MAX_OPEN_MM."""
    import edt

    m = (roi >= lo_t) & (roi <= hi_t)
    if org is not None:
        m &= org
    m = _component_at(m, seed, sk)
    if not m.any():
        return m
    r_in = float(edt.edt(np.ascontiguousarray(m), anisotropy=tuple(float(s) for s in sk))[seed])
    se = ball(min(max(open_mm, OPEN_FRACTION * r_in), MAX_OPEN_MM), sk)
    if se.size > 1:
        op = ndimage.binary_opening(m, structure=se)
        op = _component_at(op, seed, sk)
        if op.any():
            # give back the one-voxel boundary layer the opening shaved off the lesion itself
            # (corners of a small digital sphere); attachments stay cut beyond one voxel
            # (one voxel of the finest spacing: in-plane only on thick-slice scans)
            m = op | (ndimage.binary_dilation(op, structure=ball(1.01 * float(min(sk)), sk)) & m)
    return fill_holes_3d(m)
