"""Transdiaphragmatic paths to a lung target: the part of a path before it reaches the lung that
runs below the lung base (new-user trial 92, H1).

The diaphragm separates the thorax from the abdomen; the lungs rest on it, so inside the trunk
the tissue caudal to a lung base, in the column under the lung, is the diaphragm or the upper
abdomen under its dome: the liver under the right hemidiaphragm, the spleen, the stomach's fundus
and the colon's splenic flexure under the left (Gray's Anatomy, 42nd ed., diaphragm and upper
abdomen). A needle to a lung target that runs there before it reaches the lung crosses the
peritoneum, the diaphragm and (with the default structure set, which labels no abdominal organ)
an organ the label map does not show: a transhepatic or transsplenic, transdiaphragmatic route.
Percutaneous lung biopsy is planned on an intercostal route that crosses as few structures as
possible (British Thoracic Society, Manhire A et al., Guidelines for radiologically guided lung
biopsy, Thorax 2003;58:920-936; CIRSE, Veltri A et al., CIRSE guidelines on percutaneous needle
biopsy, Cardiovasc Intervent Radiol 2017;40:1501-1513); splenic puncture carries a risk of
haemorrhage (McInnes MDF et al., Percutaneous image-guided biopsy of the spleen: systematic review
and meta-analysis, Radiology 2011;260:699-708). Numbers and sources in planning_defaults.json
``transdiaphragmatic``.

- **lung base** (`LungBase`): per column of a grid over the axial (R, A) plane, the lowest RAS S
  of the aerated lung (lobes, combined lung masks, emphysema) and that lung's side. Columns run
  along the patient's superior axis (RAS S), not an array axis, so oblique and flipped grids
  give the same base. The column under a lung lies inside the thoracic cage: the lung's own
  outline, projected.
- **below the lung base**: a point in such a column whose S is below the column's lowest lung.
- a path's **transdiaphragmatic length** (`crossings`): its length below the lung base from the
  skin entry to the first aerated lung sample, the target's own label left out; a lung-target
  path with at least ``min_mm`` of it is a finding (`findings.Findings.flagged`:
  'transdiaphragmatic', ranked after every path without one; feasibility and score unchanged,
  so a lung-base target with no other route keeps its paths, warned).

Known limit: where a lung overhangs the heart in projection (the anterior junction), the heart's
tissue under it is 'below the lung base'; the mediastinum finding names that tissue first.
RAS mm; arrays [k, j, i]; vectorised over paths and samples.
"""

from __future__ import annotations

import numpy as np

from ..anatomy import AERATED_LUNG
from .problem import load_defaults

SIDES = ("", "right", "left")   # side codes 0 (not known), 1, 2


def limits() -> dict:
    """The ``transdiaphragmatic`` section of planning_defaults.json."""
    return load_defaults()["transdiaphragmatic"]


def side_code(name: str) -> int:
    """1 for a right lung name, 2 for a left one, 0 for a side-less one ('lung', 'emphysema')."""
    return 1 if name.endswith("_right") else 2 if name.endswith("_left") else 0


class LungBase:
    """The lowest aerated-lung point (RAS S, mm) per column of a square grid of ``bin_mm`` (the
    largest step of the CT's array axes projected on the (R, A) plane) over the axial (R, A) plane, and that lung's side (module doc).

    ``base``: float (nR, nA), -inf where no lung lies above (nothing is below it); ``side``: int8 (nR, nA), `SIDES`
    codes. Built from the lung's surface voxels (its lowest voxel of a column is one); a column
    between two of the footprint's (a 1-bin gap of an oblique grid) is closed (binary closing,
    3 x 3) and takes its nearest column's values."""

    def __init__(self, problem):
        from scipy import ndimage

        lab = problem.labels
        names = {v: n for v, n in lab.labels.items() if n in AERATED_LUNG}
        self.values = np.array(sorted(names), dtype=lab.array.dtype)
        # the largest step of an array axis projected on the (R, A) plane: every column of the
        # grid then holds a voxel of each lung column (thick axial slices do not widen it)
        d = np.asarray(problem.ct.direction, float)
        self.bin_mm = float(max(np.asarray(problem.ct.spacing, float) * np.linalg.norm(d[:2, :], axis=0)))
        self.base = np.full((0, 0), -np.inf)
        self.side = np.zeros((0, 0), np.int8)
        self.r0 = self.a0 = 0.0
        if not len(self.values):
            return
        kji = surface_voxels(lab.array, self.values)
        if not len(kji):
            return
        ras = lab.kji_to_world(kji)
        codes = np.zeros(int(self.values.max()) + 1, np.int8)
        codes[list(names)] = [side_code(n) for n in names.values()]
        sides = codes[lab.array[tuple(kji.T)]]
        self.r0, self.a0 = float(ras[:, 0].min()), float(ras[:, 1].min())
        bi = np.floor((ras[:, 0] - self.r0) / self.bin_mm).astype(np.int64)
        bj = np.floor((ras[:, 1] - self.a0) / self.bin_mm).astype(np.int64)
        shape = (int(bi.max()) + 1, int(bj.max()) + 1)
        flat = bi * shape[1] + bj
        order = np.lexsort((ras[:, 2], flat))            # by column, then S upward
        first = order[np.r_[True, flat[order][1:] != flat[order][:-1]]]   # each column's lowest
        base = np.full(shape, -np.inf)
        side = np.zeros(shape, np.int8)
        base.flat[flat[first]] = ras[first, 2]
        side.flat[flat[first]] = sides[first]
        have = np.isfinite(base)
        gap = ndimage.binary_closing(have, np.ones((3, 3), bool)) & ~have
        if gap.any():
            _, (ni, nj) = ndimage.distance_transform_edt(~have, return_indices=True)
            base[gap], side[gap] = base[ni[gap], nj[gap]], side[ni[gap], nj[gap]]
        self.base, self.side = base, side

    def below(self, ras) -> tuple[np.ndarray, np.ndarray]:
        """For RAS points (..., 3) mm: (bool (...): below the lung base of its column, int8 (...):
        that lung's side code; 0 where not below)."""
        ras = np.asarray(ras, float)
        out = np.zeros(ras.shape[:-1], bool)
        if not self.base.size:
            return out, np.zeros(out.shape, np.int8)
        bi = np.floor((ras[..., 0] - self.r0) / self.bin_mm).astype(np.int64)
        bj = np.floor((ras[..., 1] - self.a0) / self.bin_mm).astype(np.int64)
        ok = (bi >= 0) & (bj >= 0) & (bi < self.base.shape[0]) & (bj < self.base.shape[1])
        b = np.where(ok, self.base[np.where(ok, bi, 0), np.where(ok, bj, 0)], -np.inf)
        out = ok & (ras[..., 2] < b)
        return out, np.where(out, self.side[np.where(ok, bi, 0), np.where(ok, bj, 0)], 0).astype(np.int8)


def surface_voxels(labels: np.ndarray, values) -> np.ndarray:
    """Indices (n, 3) int64 [k, j, i], C order, of the surface voxels of the voxels of ``labels``
    (label array [k, j, i]) holding one of ``values``: ``np.argwhere(m & ~ndimage.binary_erosion(m))``
    of that mask ``m`` (6-neighbourhood, outside the array not in it), the same voxels in the same
    order, computed on the mask's bounding box: every voxel beyond it is outside the mask, so a box
    face voxel is surface there as in the whole array (issue 20: the whole 1 mm phantom's
    ``isin``, erosion and ``argwhere`` took 0.8-0.9 CPU-s per lung target, now about 0.2)."""
    from ..morph6 import erode6
    from ..segmentation.common import bbox_slices
    from ..volume import values_mask

    m = values_mask(labels, values)
    box = bbox_slices(m)
    if box is None:
        return np.zeros((0, 3), np.int64)
    sub = m[box]
    del m
    kji = np.argwhere(sub & ~erode6(sub))
    kji += np.array([s.start for s in box])
    return kji


def lung_base(problem) -> LungBase:
    """The problem's `LungBase`, built once per problem."""
    lb = getattr(problem, "_lung_base", None)
    if lb is None:
        lb = LungBase(problem)
        problem._lung_base = lb
    return lb


def crossings(problem, entry_ras, target_ras, chunk: int = 256):
    """For paths ``entry_ras`` -> ``target_ras`` (n, 3) RAS mm: (mm below the lung base before the
    path first reaches aerated lung, float (n,); side code of the lung over its last such sample
    (nearest the lung), int8 (n,); where that part starts and ends, mm from the skin entry, float
    (n,) each, nan where none). Sampled every half of the CT's smallest spacing (nearest voxel),
    the target label's samples left out; points outside the image are not counted."""
    e = np.atleast_2d(np.asarray(entry_ras, float))
    t = np.atleast_2d(np.asarray(target_ras, float))
    n = len(e)
    mm, side = np.zeros(n), np.zeros(n, np.int8)
    first, last = np.full(n, np.nan), np.full(n, np.nan)
    lb = lung_base(problem)
    if not n or not lb.base.size:
        return mm, side, first, last
    ct, lab, tv = problem.ct, problem.labels, problem.target.value
    step = 0.5 * float(min(ct.spacing))
    length = np.linalg.norm(t - e, axis=1)
    s = np.arange(int(np.ceil(length.max() / step)) + 1) * step
    for a in range(0, n, chunk):
        ee, tt, ll = e[a:a + chunk], t[a:a + chunk], length[a:a + chunk]
        u = (tt - ee) / np.maximum(ll, 1e-9)[:, None]
        pts = ee[:, None, :] + s[None, :, None] * u[:, None, :]
        kji = ct.nearest_kji(pts)
        inside = ct.in_array(kji) & (s[None, :] <= ll[:, None])
        v = lab.array[tuple(np.clip(kji, 0, np.asarray(lab.shape) - 1).transpose(2, 0, 1))]
        lung = inside & np.isin(v, lb.values)
        reach = np.where(lung.any(1), lung.argmax(1), len(s))
        under, code = lb.below(pts)
        hit = inside & under & (np.arange(len(s))[None, :] < reach[:, None])
        if tv:
            hit &= v != tv
        any_ = hit.any(1)
        lo = hit.argmax(1)
        hi = len(s) - 1 - hit[:, ::-1].argmax(1)
        rows = np.arange(len(ee))
        mm[a:a + chunk] = hit.sum(1) * step
        side[a:a + chunk] = np.where(any_, code[rows, hi], 0)
        first[a:a + chunk] = np.where(any_, s[lo], np.nan)
        last[a:a + chunk] = np.where(any_, s[hi], np.nan)
    return mm, side, first, last


def organs_text(code: int) -> str:
    """The organs under the hemidiaphragm of side ``code`` (planning_defaults ``organs_by_side``)."""
    by = limits()["organs_by_side"]
    return ", ".join(by[SIDES[code]] if code else by["right"] + by["left"])


def text(problem, mm: float, code: int, first: float, last: float) -> str:
    """The words of a transdiaphragmatic finding (no proposal number)."""
    side = SIDES[code]
    dome = f"the {side} hemidiaphragm" if side else "the diaphragm"
    gone = [o for o in ("liver", "spleen", "stomach") if o in organs_text(code)
            and not any(n == o for n in problem.labels.labels.values())]
    lacks = f"; the label map has no {', '.join(gone)}, so it is not shown" if gone else ""
    return (f"runs {mm:.0f} mm below the {side + ' ' if side else ''}lung base (from {first:.0f} to {last:.0f} mm "
            f"along the path from the skin entry) before it reaches the lung: a transdiaphragmatic route through "
            f"{dome} and the peritoneum and the upper abdomen under it (likely {organs_text(code)}){lacks}; "
            "risk of bleeding from the organ crossed; prefer an intercostal path above the lung base, or check "
            "this route on coronal and sagittal images")
