"""Precomputed maps for path scoring, on the part of the grid within needle reach.

Distances are anisotropic Euclidean distances (`edt`, mm) computed in index space with the
voxel spacing as anisotropy; because the direction matrix is orthonormal this is the true
physical distance for any (oblique) grid. Distances are measured to the voxelised boundary
(half a voxel beyond the boundary voxel centres; -half a voxel inside a structure), capped
at ``cap_mm``: beyond it a structure is "far".

Maps (all [k, j, i] on ``grid``, a cropped copy of the CT geometry):
  hard      float32  min over forbidden and margin structures of (distance - margin), mm
  hard_id   int16    index into ``structures`` of the structure achieving ``hard`` (-1: none)
  avoid     float32  min distance to an 'avoid' structure, mm;  avoid_id  int16
  label     uint16   label value;  flags  uint8  bits BODY, LUNG (inside pleura), AERATED, EMPH,
                   LIVER, FORBIDDEN, SKIN (outer skin: entry-capable, `imagio.planning.skin`)
  body_smooth float32 Gaussian-smoothed body mask (for outward skin normals)
Per structure the signed distance in its dilated bounding box is kept (``boxes``) for exact
per-structure clearances of single paths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..progress import Progress
from ..volume import Volume, reach_box  # noqa: F401  (reach_box re-exported for callers)
from .problem import LUNG_CONTENTS, LUNG_PARENCHYMA, PlanningProblem, load_defaults

BODY, LUNG, AERATED, EMPH, LIVER, FORBIDDEN, SKIN = 1, 2, 4, 8, 16, 32, 64
ROLE_CODE = {"passable": 0, "target": 0, "avoid": 1, "margin": 2, "forbidden": 3}


@dataclass
class StructureBox:
    index: int
    lo: np.ndarray       # kji of the box corner in the crop
    dist: np.ndarray     # signed distance mm in the box, float16 (|d| <= cap + margin)


@dataclass
class PlanningMaps:
    grid: Volume                      # crop geometry (array = label values, uint16)
    lo: np.ndarray                    # crop corner kji in the full grid
    hard: np.ndarray
    hard_id: np.ndarray
    avoid: np.ndarray
    avoid_id: np.ndarray
    code: np.ndarray                  # uint32: label value | flags << 16 (one gather per sample)
    body_smooth: np.ndarray
    names: list[str]                  # structure index -> name
    margins: np.ndarray               # structure index -> margin mm (0 for forbidden/avoid)
    roles: list[str]
    role_of_label: np.ndarray         # label value -> ROLE_CODE
    struct_of_label: np.ndarray       # label value -> structure index (-1 none)
    boxes: list[StructureBox]
    cap_mm: float
    has: dict                         # which optional criteria the crop needs: lung, lobes, avoid, liver
    box_store: np.ndarray = None      # every box's distances, concatenated (boxes' dist are views)

    @property
    def label(self) -> np.ndarray:
        return self.grid.array

    def __post_init__(self):
        inv = self.grid.ras_to_ijk
        self._r2k = (inv[:3, :3][::-1].copy(), inv[:3, 3][::-1].copy())   # RAS -> kji, cached

    def world_to_kji(self, ras) -> np.ndarray:
        """(N, 3) RAS mm -> continuous crop indices [k, j, i] (cached affine)."""
        a, b = self._r2k
        return np.asarray(ras, float) @ a.T + b

    @property
    def flags(self) -> np.ndarray:
        return (self.code >> 16).astype(np.uint8)

    @property
    def nbytes(self) -> int:
        arrs = [self.hard, self.hard_id, self.avoid, self.avoid_id, self.code, self.body_smooth,
                self.label, self.box_store]
        return int(sum(a.nbytes for a in arrs))


def _signed_distance(mask: np.ndarray, spacing_kji) -> np.ndarray:
    """Distance (mm) to the voxelised boundary of ``mask`` outside it (edt to the nearest mask
    voxel centre minus half a voxel); inside the mask a constant -half voxel (paths that enter
    a structure are caught by the label samples; the depth is not needed)."""
    import edt

    an = tuple(float(s) for s in spacing_kji)
    half = np.float32(0.5 * min(an))
    out = edt.edt(~mask, anisotropy=an, black_border=False, parallel=2)
    out -= half
    out[mask] = -half
    return out.astype(np.float32, copy=False)


def precompute(problem: PlanningProblem, cap_mm: float | None = None,
               progress=None) -> PlanningMaps:
    """Crop to the needle's reach around the target and build every map (see module doc)."""
    prog = progress if isinstance(progress, Progress) else Progress(progress)
    cap = float(cap_mm if cap_mm is not None else load_defaults()["distance_cap_mm"])
    ct, lab = problem.ct, problem.labels
    reach = problem.needle.length_mm + 10.0 + 2.0 * max(ct.spacing)  # + room for margins
    lo, hi = reach_box(ct, problem.target.point_ras, reach)
    blo, bhi = ct.bounding_box(problem.body, margin=2)
    lo, hi = np.maximum(lo, blo), np.minimum(hi, bhi)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    label = np.ascontiguousarray(lab.array[sl]).astype(np.uint16)
    grid = lab.crop(lo, hi).with_array(label)
    sp = ct.spacing_kji
    specs = problem.structures
    nlab = int(max([s.value for s in specs] + [int(label.max()) if label.size else 0])) + 1
    role_of_label = np.zeros(nlab, np.uint8)
    struct_of_label = np.full(nlab, -1, np.int16)
    for i, s in enumerate(specs):
        struct_of_label[s.value] = i
        if s.value != problem.exempt_value:
            role_of_label[s.value] = ROLE_CODE[s.role]

    # flags ------------------------------------------------------------------------------
    prog(0.02, "planning: body, lung and emphysema masks")
    body = problem.body[sl]
    hu = ct.array[sl]
    names = {s.value: s.name for s in specs}
    lung_vals = [v for v, n in names.items() if n in LUNG_PARENCHYMA]
    flags = np.zeros(label.shape, np.uint8)
    flags[body] |= BODY
    if problem.skin is not None:
        flags[problem.skin.skin[sl]] |= SKIN
    if lung_vals:
        aerated = np.isin(label, lung_vals)
        inner = [v for v, n in names.items()   # e.g. lung_nodule_2, lung_vessels_small
                 if n.rstrip("0123456789_") in LUNG_CONTENTS or n.startswith(tuple(c + "_" for c in LUNG_CONTENTS))]
        lung = aerated | np.isin(label, inner)
        lung = ndimage.binary_closing(lung, iterations=1) | lung
    else:  # fallback for label maps without lungs: aerated = air inside the body
        aerated = body & (hu < -400)
        lung = ndimage.binary_closing(aerated, iterations=2) & body | aerated
    if problem.target.value and names.get(problem.target.value, "").startswith("lung"):
        lung |= label == problem.target.value
    flags[lung] |= LUNG
    flags[aerated] |= AERATED
    flags[aerated & (hu < problem.constraints.emphysema_hu)] |= EMPH
    liver_vals = [v for v, n in names.items() if n == "liver"]
    if liver_vals:
        flags[np.isin(label, liver_vals)] |= LIVER
    body_smooth = ndimage.gaussian_filter(body.astype(np.float32), sigma=2.0 / sp)

    # distance maps ------------------------------------------------------------------------
    hard = np.full(label.shape, cap, np.float32)
    hard_id = np.full(label.shape, -1, np.int16)
    present = np.zeros(nlab, bool)
    present[np.unique(label)] = True
    todo = [(i, s) for i, s in enumerate(specs)
            if s.role in ("forbidden", "margin", "avoid") and s.value < nlab and present[s.value]
            and s.value != problem.exempt_value]
    any_avoid = any(s.role == "avoid" for _, s in todo)
    ashape = label.shape if any_avoid else (1, 1, 1)   # no avoid structure: no map needed
    avoid = np.full(ashape, cap, np.float32)
    avoid_id = np.full(ashape, -1, np.int16)
    boxes = []
    pad = np.ceil((cap + max((s.margin_mm for _, s in todo), default=0.0)) / sp).astype(int) + 1
    # bounding boxes of all labels in one pass
    objs = ndimage.find_objects(label.astype(np.int32))
    for n, (i, s) in enumerate(todo):
        prog(0.05 + 0.9 * n / max(len(todo), 1), f"planning: distance map of {s.name}")
        o = objs[s.value - 1]
        blo = np.maximum([o[d].start - pad[d] for d in range(3)], 0)
        bhi = np.minimum([o[d].stop + pad[d] for d in range(3)], label.shape)
        bs = tuple(slice(a, b) for a, b in zip(blo, bhi))
        d = _signed_distance(label[bs] == s.value, sp)
        boxes.append(StructureBox(i, blo, d.astype(np.float16)))   # per-structure, for evaluate
        if s.role == "avoid":
            tgt, tid, val = avoid[bs], avoid_id[bs], d
        else:
            tgt, tid, val = hard[bs], hard_id[bs], d - np.float32(s.margin_mm)
        better = val < tgt
        tgt[better] = val[better]
        tid[better] = i
    prog(1.0, "planning: maps ready")
    flags[role_of_label[label] == ROLE_CODE["forbidden"]] |= FORBIDDEN
    has = {"lung": bool(lung.any()), "lobes": len([v for v in lung_vals if present[v]]) > 1,
           "avoid": any(s.role == "avoid" for _, s in todo), "liver": bool(liver_vals),
           "skin_model": problem.skin is not None}
    code = label.astype(np.uint32) | (flags.astype(np.uint32) << 16)
    del flags
    store = np.concatenate([b.dist.ravel() for b in boxes]) if boxes else np.zeros(1, np.float16)
    pos = 0
    for b in boxes:   # boxes become views of one store (vectorised per-structure lookups)
        sz = b.dist.size
        b.dist = store[pos:pos + sz].reshape(b.dist.shape)
        pos += sz
    return PlanningMaps(grid, lo, hard, hard_id, avoid, avoid_id, code, body_smooth,
                        [s.name for s in specs],
                        np.array([s.margin_mm if s.role == "margin" else 0.0 for s in specs]),
                        [s.role for s in specs], role_of_label, struct_of_label, boxes, cap, has,
                        store)
