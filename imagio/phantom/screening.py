"""Screening mode of the digital patient: a chest CT with many lung nodules of known centre,
size and type, and vessel bifurcations that mimic nodules (the detector's classic false
positive), for FROC / CPM evaluation of nodule detection.

``screening_scan(spacing, seed)`` returns a :class:`ScreeningScan`: the phantom (cropped to the
chest) with ``n_nodules`` nodules painted by :func:`imagio.phantom.lesions.insert_lesion`:

* kinds cycle through solid, part-solid, ground-glass, calcified and perifissural (the five
  types of Lung-RADS v2022 / the issue);
* diameters are drawn per nodule from the size bins of the evaluation (3-6, 6-10, 10-20,
  20-30 mm: Lung-RADS' solid-nodule cut points 6, 8, 15 mm and the 30 mm nodule/mass limit of
  the Fleischner glossary, merged into four bins), uniformly within the bin, the bins in turn
  (shifted by the seed, so over several scans every type meets every bin and position);
  perifissural nodules are kept < 10 mm (their definition: de Hoop 2012, Lung-RADS v2022);
* positions in turn: in the parenchyma (clear of pleura and vessels by the radius + 3 mm),
  juxta-pleural (centre half a radius inside the pleura: the nodule is flattened against the
  chest wall, as insert_lesion confines it to the lung), juxta-vascular (surface on a vessel:
  centre one radius from it), and in the fissure (perifissural ones, centre on the boundary of
  two lobes);
* nodules keep 10 mm of lung between their surfaces, so each reference is one nodule.

Vessel mimics: ``n_mimics`` Y-shaped bifurcations (three 2-4 mm branches meeting at a point,
120 degrees apart, in the lung clear of nodules) are painted as lung vessels: their centres
are known non-nodules (``mimics_ras``).

Small airways: each airway wall voxel holds the share of it the anatomical wall (25 % of the
lumen radius) fills (``generate(small_airway_walls="partial_volume")``), as a CT voxel holds the
mean attenuation of what lies in it: the painter's 1 mm wall floor alone paints a terminal
bronchiole as a ~4.5 mm soft-tissue tube of about -300 HU, several times its own wall, whose
end the detector read as a nodule (issue 17). The labels, and so the nodules' sites, are the
same either way.

Everything in RAS mm. The ``truth`` list gives, per nodule: name, kind, centre, diameter (mm),
position class, size bin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from . import Phantom, generate
from .hu import BLUR_SIGMA_MM, HU, NOISE_SD
from .lesions import insert_lesion

KINDS = ("solid", "part_solid", "ground_glass", "calcified", "perifissural")
SIZE_BINS_MM = ((3.0, 6.0), (6.0, 10.0), (10.0, 20.0), (20.0, 30.0))
POSITIONS = ("parenchyma", "juxta_pleural", "juxta_vascular")
GAP_MM = 10.0  # lung between two nodules' surfaces
LUNG_LOBES = ("lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right",
              "lung_middle_lobe_right", "lung_lower_lobe_right")


@dataclass
class ScreeningScan:
    phantom: Phantom
    truth: list = field(default_factory=list)  # dicts: name, kind, center_ras, diameter_mm, position, size_bin
    mimics_ras: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    def luna_reference(self, seriesuid: str) -> np.ndarray:
        """(M, 4) x, y, z (LPS mm), diameter (mm) of the nodules, as a LUNA16 annotation."""
        c = np.array([t["center_ras"] for t in self.truth], float).reshape(-1, 3)
        return np.c_[-c[:, 0], -c[:, 1], c[:, 2], [t["diameter_mm"] for t in self.truth]]


def size_bin(d: float) -> str:
    for lo, hi in SIZE_BINS_MM:
        if lo <= d < hi or (hi == SIZE_BINS_MM[-1][1] and d == hi):
            return f"{lo:g}-{hi:g} mm"
    return f">{SIZE_BINS_MM[-1][1]:g} mm"


def _edt(mask, sk):
    import edt

    return edt.edt(np.ascontiguousarray(mask), anisotropy=tuple(map(float, sk)), black_border=False)


def _paint_mimic(ph: Phantom, c, rng, lung_vals, vessel_val) -> None:
    """A Y bifurcation at ``c``: three branches (radius 1-2 mm, 12 mm long) 120 degrees apart in a
    random plane, blurred like the phantom, noise restored locally; painted inside the lung."""
    a = rng.normal(size=3)
    a /= np.linalg.norm(a)
    b = np.cross(a, rng.normal(size=3))
    b /= np.linalg.norm(b)
    ang = rng.uniform(0, 2 * np.pi) + np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3])
    dirs = np.cos(ang)[:, None] * a + np.sin(ang)[:, None] * b
    r = rng.uniform(1.0, 2.0)
    length = 12.0
    ct, lab = ph.ct, ph.labels
    half = np.ceil((length + r + 3 * BLUR_SIGMA_MM) / ct.spacing_kji).astype(int)
    k0 = ct.nearest_kji(np.asarray(c)[None])[0]
    lo, hi = np.maximum(k0 - half, 0), np.minimum(k0 + half + 1, ct.shape)
    sl = tuple(slice(int(x), int(y)) for x, y in zip(lo, hi))
    kji = np.stack(np.meshgrid(*[np.arange(x, y) for x, y in zip(lo, hi)], indexing="ij"), -1)
    p = ct.kji_to_world(kji.reshape(-1, 3)) - np.asarray(c)
    t = np.clip(p @ dirs.T, 0.0, length)  # (N, 3) projection on each branch
    d = np.min(np.linalg.norm(p[:, None, :] - t[..., None] * dirs[None], axis=2), axis=1)
    shape = tuple(hi - lo)
    inside = (d <= r).reshape(shape) & np.isin(lab.array[sl], lung_vals)
    if not inside.any():
        return
    lab.array[sl][inside] = vessel_val
    frac = ndimage.gaussian_filter(inside.astype(np.float32), BLUR_SIGMA_MM / ct.spacing_kji)
    old = ct.array[sl].astype(np.float32)
    keep = 1.0 - frac
    noise = rng.normal(0.0, 1.0, shape).astype(np.float32) * NOISE_SD * np.sqrt(np.clip(1 - keep ** 2, 0, 1))
    ct.array[sl] = np.rint(old * keep + frac * HU["lung_vessels"] + noise).astype(ct.array.dtype)


def screening_scan(spacing: float = 1.5, seed: int = 0, n_nodules: int = 12, n_mimics: int = 6,
                   small_airway_walls: str = "partial_volume") -> ScreeningScan:
    """A chest CT with ``n_nodules`` known nodules and ``n_mimics`` vessel bifurcations (see the
    module docstring), cropped to the lungs plus 15 mm. Deterministic for ``seed``.
    ``small_airway_walls`` (`phantom.generate`): "partial_volume" by default, each airway wall
    voxel holding the share of it the anatomical wall fills, so a small airway carries its own
    soft tissue, not the several times more a 1 mm painted wall would (the detector reads CT
    numbers); "floor" gives the scans measured before (issue 17)."""
    rng = np.random.default_rng(1000 + seed)
    ph = generate(spacing=spacing, seed=seed, n_liver_tumors=0, n_lung_nodules=0,
                  small_airway_walls=small_airway_walls)
    lab = ph.labels
    inv = {v: k for k, v in lab.labels.items()}
    lobe_vals = [inv[n] for n in LUNG_LOBES if n in inv]
    lungs = np.isin(lab.array, lobe_vals + [inv["lung_vessels"]])
    lo, hi = lab.bounding_box(lungs)
    pad = np.ceil(15.0 / lab.spacing_kji).astype(int)
    lo, hi = np.maximum(lo - pad, 0), np.minimum(hi + pad, lab.shape)
    ph.ct, ph.labels = ph.ct.crop(lo, hi), lab.crop(lo, hi)
    ph.labels.array = ph.labels.array.copy()
    ph.ct.array = ph.ct.array.copy()
    lab = ph.labels
    sk = lab.spacing_kji
    placing = ph.placement_labels()   # clear of the airways where they run on past the drawn ends
    lung = np.isin(placing, lobe_vals)
    vessel = placing == inv["lung_vessels"]
    d_pleura = _edt(lung | vessel, sk)
    d_vessel = _edt(~vessel, sk)
    # fissures: lung voxels of one lobe next to another lobe
    lobe = np.where(lung, lab.array, 0)
    fissure = np.zeros(lab.shape, bool)
    for ax in range(3):
        a, b = np.swapaxes(lobe, 0, ax)[1:], np.swapaxes(lobe, 0, ax)[:-1]
        edge = (a != b) & (a > 0) & (b > 0)
        np.swapaxes(fissure, 0, ax)[1:] |= edge
    lung_kji = np.argwhere(lung)
    taken: list[tuple[np.ndarray, float]] = []
    truth = []

    def clear(c, r) -> bool:
        return all(np.linalg.norm(c - c2) >= r + r2 + GAP_MM for c2, r2 in taken)

    def pick(cond: np.ndarray, r: float):
        idx = np.flatnonzero(cond)
        for i in rng.permutation(idx)[:400]:
            c = lab.kji_to_world(lung_kji[i][None])[0] if cond.shape[0] == len(lung_kji) else None
            if c is not None and clear(c, r):
                return c
        return None

    fis_kji = np.argwhere(fissure)
    for n in range(n_nodules):
        kind = KINDS[n % len(KINDS)]
        b = SIZE_BINS_MM[(n // len(KINDS) + n + seed) % len(SIZE_BINS_MM)]
        if kind == "perifissural":
            b = SIZE_BINS_MM[n % 2]
        dia = float(rng.uniform(*b))
        r = dia / 2.0
        pos = "fissure" if kind == "perifissural" else POSITIONS[(n + seed) % len(POSITIONS)]
        c = None
        if pos == "fissure":
            dp = d_pleura[tuple(fis_kji.T)]
            dv = d_vessel[tuple(fis_kji.T)]
            ok = np.flatnonzero((dp > r + 3.0) & (dv > r + 2.0))
            for i in rng.permutation(ok)[:400]:
                cc = lab.kji_to_world(fis_kji[i][None])[0]
                if clear(cc, r):
                    c = cc
                    break
        else:
            dp = d_pleura[tuple(lung_kji.T)]
            dv = d_vessel[tuple(lung_kji.T)]
            if pos == "parenchyma":
                cond = (dp > r + 3.0) & (dv > r + 3.0)
            elif pos == "juxta_pleural":
                cond = (np.abs(dp - 0.5 * r) <= max(1.0, float(max(sk)))) & (dv > r + 2.0)
            else:
                cond = (np.abs(dv - r) <= max(1.0, float(max(sk)))) & (dp > r + 3.0)
            c = pick(cond, r)
        if c is None:
            continue
        les = insert_lesion(ph, kind, c, dia, seed=int(rng.integers(1 << 30)))
        taken.append((np.asarray(c), r))
        truth.append({"name": les.name, "kind": kind, "center_ras": [float(v) for v in c],
                      "diameter_mm": dia, "position": pos, "size_bin": size_bin(dia)})
    mimics = []
    dp = d_pleura[tuple(lung_kji.T)]
    dv = d_vessel[tuple(lung_kji.T)]
    cond = (dp > 15.0) & (dv > 6.0)
    for _ in range(n_mimics):
        c = pick(cond, 12.0)
        if c is None:
            break
        _paint_mimic(ph, c, rng, lobe_vals, inv["lung_vessels"])
        taken.append((np.asarray(c), 12.0))
        mimics.append(c)
    return ScreeningScan(ph, truth, np.array(mimics, float).reshape(-1, 3))
