"""The image face an airway mask leaves the scan through at its superior end, at any grid tilt.

A chest CT's trachea leaves the scan through the image's superior edge (the larynx lies above the
lung apices), and above the carina it is the widest airway a section cuts (10-25 mm, Breatnach E,
Abbott GC, Fraser RG, AJR 1984;142:903-906; the only airways beside it are upper-lobe segmental
bronchi of 4-8 mm, Weibel ER, Morphometry of the Human Lung, 1963; Standring S (ed), Gray's
Anatomy, 41st ed, 2016, ch. 'Trachea and bronchi'). On an axial grid that edge is the face normal
to S. On a tilted grid (an oblique reformat) up to three faces look superior (their outward normals
have a positive S component), and the one most aligned with S need not be the one the mask is cut
by: a grid rolled 45 degrees has two faces equally aligned with S (45 degrees each), and the tree
was rooted on the one the mask does not reach, 166 mm of S away from the trachea's cut (new-user
trial 103 F6.2). So the face is chosen by anatomy, not by the grid:

- among the faces that look superior and cut the mask, the one whose cut holds the widest lumen,
  where that lumen is wider than a segmental bronchus (``trachea_in_view.max_segmental_mm``,
  airway_limits.json: the trachea, or the main or lobar bronchi of a scan starting below the
  carina, which `carina_view` then refuses; a face at the lung's side cuts only peripheral bronchi);
- else the face through which the mask's highest point (in S) leaves the image going up along S;
  the distance along S from that point to the image's edge is how far below the image's superior
  edge the mask ends (0 where that point lies on a face), and the tree's top is sought along S
  itself (the mask's end inside the image is not parallel to any face); where the grid's sections
  drop more than a voxel in S across the mask (``reach_top``), the root is the widest lumen whose
  inscribed sphere reaches that top (`tree._rooted_tree`): apical bronchi cut by the same level
  rise as high as the trachea's end, while the trachea's centre lies a radius below it.

Coordinates RAS mm; arrays [k, j, i]; a face is (array axis, whether at the axis's last index).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...volume import Volume


@dataclass(frozen=True)
class TopFace:
    axis: int            # array axis ([k, j, i]) normal to the face
    at_end: bool         # the face at the axis's last index (else at index 0)
    normal: np.ndarray   # [3] unit RAS: the face's outward normal (the grid's "up" for the tree)
    gap_mm: float        # mm along S from the mask's highest point to the image's edge; 0 when a face cuts the mask there
    cut_mm: float        # calibre (mm) of the widest lumen the face cuts; 0 when it cuts none
    up: np.ndarray       # [3] unit RAS along which the tree's top is sought (`tree._rooted_tree`): the face's
    #   normal where it cuts the mask (the cut is the top), S where the mask ends inside the image
    reach_top: bool = False  # the mask ends inside the image and the grid's sections across it are not level
    #   (they drop more than a voxel in S across the mask's extent): its top is sought by the lumens' reach

    @property
    def tilt_deg(self) -> float:
        """Angle (degrees) between the face's outward normal and S: 0 on an axial grid's superior face."""
        return float(np.degrees(np.arccos(np.clip(self.normal[2], -1.0, 1.0))))


def _outward(vol: Volume, axis: int, at_end: bool) -> np.ndarray:
    col = np.asarray(vol.direction, float)[:, 2 - axis]
    col = col / np.linalg.norm(col)
    return col if at_end else -col


def superior_face(vol: Volume, crop: np.ndarray, lo=(0, 0, 0)) -> TopFace:
    """The face of ``vol``'s grid that the airway mask ``crop`` ([k, j, i] bool, placed at voxel
    offset ``lo`` on ``vol``'s grid) leaves the image through at its superior end (module
    docstring). Raises nothing; ``crop`` must hold a voxel."""
    from .carina_view import _limits, _lumens

    seg = float(_limits()["max_segmental_mm"])
    lo = np.asarray(lo, int)
    shape = np.asarray(vol.shape, int)
    sp = np.asarray(vol.spacing_kji, float)
    best = None
    for axis in range(3):
        sp2 = [float(sp[a]) for a in range(3) if a != axis]
        for at_end in (False, True):
            n = _outward(vol, axis, at_end)
            on_face = (lo[axis] + crop.shape[axis] == shape[axis]) if at_end else (lo[axis] == 0)
            if n[2] <= 0 or not on_face:
                continue
            section = np.take(crop, crop.shape[axis] - 1 if at_end else 0, axis=axis)
            if not section.any():
                continue
            cal = float(_lumens(section, sp2)[1].max())
            if cal > seg and (best is None or (cal, n[2]) > (best.cut_mm, best.normal[2])):
                best = TopFace(axis, at_end, n, 0.0, cal, n)
    if best is not None:
        return best
    # the mask's highest point (in S), followed up along S to the image's edge (voxel centres)
    kji = np.argwhere(crop)
    s = kji @ np.asarray(vol.ijk_to_ras, float)[2, [2, 1, 0]]
    p = (kji[np.argmax(s)] + lo).astype(float)
    v = vol.world_to_kji(vol.kji_to_world(p[None]) + np.array([[0.0, 0.0, 1.0]]))[0] - p   # voxels per mm of S
    t = np.full(3, np.inf)
    pos, neg = v > 1e-9, v < -1e-9
    t[pos] = ((shape - 1)[pos] - p[pos]) / v[pos]
    t[neg] = -p[neg] / v[neg]
    axis = int(np.argmin(t))
    n = _outward(vol, axis, bool(v[axis] > 0))
    extent = float(np.linalg.norm((kji.max(0) - kji.min(0)) * sp))
    level = np.sqrt(max(1.0 - float(n[2]) ** 2, 0.0)) * extent <= float(sp.max())
    return TopFace(axis, bool(v[axis] > 0), n, max(float(t[axis]), 0.0), 0.0, np.array([0.0, 0.0, 1.0]),
                   reach_top=not level)
