"""The solid tissue that holds a point target beside the lung (new-user trial 111).

A point clicked in a solid nodule that the label map leaves as 'body' (the rule segmenter's lungs
stop at the nodule's surface) is not in a lung label, so a path from the lung into it read as
leaving the lung: a second pleural crossing, and every path through the lung was refused. An
intrapulmonary nodule lies inside the visceral pleura: the lung -> nodule step crosses no pleura
(Manhire A et al., BTS guidelines for radiologically guided lung biopsy, Thorax 2003;58:920-936:
the pleura is crossed where the needle enters the lung). Decided from the geometry alone, and
conservatively:

- the solid component (not lung-labelled, at or above `segmentation.common.LUNG_HU`, 26-connected)
  that holds the point, within ``NODULE_MAX_MM`` of it, is *enclosed* when it stays inside that
  box and at least half of its one-voxel outer shell is lung (as `problem.target_in_lung` reads a
  lesion's outline): an island in the lung, which no pleura separates from it. The path may then
  enter it from the lung with one crossing (``Target.in_lung``; its voxels count as lung for the
  pleural counts of `distance_maps` and `verify`).
- a component that reaches further (a juxtapleural nodule against the chest wall or mediastinum,
  or the chest wall itself) is not: with no outline, the nodule cannot be told from the wall it
  touches, so the lung -> tissue step stays a crossing, and the failure message says so
  (`describe`, `planner.format_report`) and asks for the nodule's outline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..segmentation.common import LUNG_HU
from ..volume import Volume

# Fleischner Society glossary (Hansell DM et al., Radiology 2008;246:697-722): a pulmonary nodule
# measures up to 3 cm; a larger opacity is a mass. The enclosed component is looked for within
# this distance of the point (the point may lie anywhere in a nodule up to this diameter).
NODULE_MAX_MM = 30.0
N_RAYS = 256


@dataclass
class TargetTissue:
    """The solid component holding a point target, in a box of the CT grid."""

    lo: np.ndarray          # kji of mask[0, 0, 0]
    mask: np.ndarray        # bool: the component, cut to the box
    enclosed: bool          # an island in the lung (see module doc)
    hu: float               # CT value at the point
    label: str              # the label at the point ('' none)
    lung: str               # the lung label it borders most
    volume_ml: float
    rays: dict              # % of directions from the point leaving it into: lung, air, solid beyond reach

    def contains(self, kji: np.ndarray) -> np.ndarray:
        """Whether each kji (N x 3 ints on the CT grid) lies in the component."""
        kji = np.asarray(kji).reshape(-1, 3)
        rel = kji - self.lo
        ok = np.all((rel >= 0) & (rel < self.mask.shape), axis=1)
        out = np.zeros(len(kji), bool)
        out[ok] = self.mask[tuple(rel[ok].T)]
        return out

    def words(self) -> str:
        r = self.rays
        on = f"'{self.label}'" if self.label else "no label"
        return (f"the target point lies in solid tissue ({self.hu:.0f} HU, {on}) that meets {self.lung or 'the lung'} "
                f"in {r['lung']:.0f} % of the directions from it and continues as solid tissue beyond "
                f"{NODULE_MAX_MM:g} mm (chest wall or mediastinum) in {r['solid']:.0f} %")


def _lung_values(labels: Volume) -> list[int]:
    from .problem import LUNG_CONTENTS, LUNG_PARENCHYMA

    return [v for v, n in labels.labels.items()
            if n in LUNG_PARENCHYMA or n.startswith(tuple(c + "_" for c in LUNG_CONTENTS))
            or n.rstrip("0123456789_") in LUNG_CONTENTS]


def unnamed_tissue(name: str) -> bool:
    """Whether a point's label says nothing of the tissue (none, the body outline, a numbered
    value): a named organ (liver, heart, a rib) is that organ, not a nodule the map missed."""
    from .problem import GENERIC_NAME

    return name in ("", "body", "point") or bool(GENERIC_NAME.match(name))


def point_tissue(ct: Volume, labels: Volume, point_ras) -> TargetTissue | None:
    """The solid component holding ``point_ras`` (see module doc), or None when the point is not in
    solid tissue that its label leaves unnamed (`unnamed_tissue`), or no lung is labelled within
    ``NODULE_MAX_MM``. ``ct`` and ``labels`` on one grid."""
    lung_vals = _lung_values(labels)
    if not lung_vals:
        return None
    p = np.asarray(point_ras, float).reshape(3)
    q = ct.nearest_kji(p[None], clip=True)[0]
    here = int(labels.array[tuple(q)])
    if float(ct.array[tuple(q)]) < LUNG_HU or here in lung_vals or not unnamed_tissue(labels.labels.get(here, "")):
        return None
    sp = np.asarray(ct.spacing_kji, float)
    r = np.ceil(NODULE_MAX_MM / sp).astype(int) + 1
    shp = np.asarray(ct.shape)
    lo, hi = np.maximum(q - r, 0), np.minimum(q + r + 1, shp)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    lab = labels.array[sl]
    lung = np.isin(lab, lung_vals)
    if not lung.any():   # no lung within reach: nothing to say
        return None
    solid = ~lung & (ct.array[sl] >= LUNG_HU)
    cc, _ = ndimage.label(solid, np.ones((3, 3, 3), bool))
    m = cc == cc[tuple(q - lo)]
    del cc
    faces = any(m.take(0, axis=a).any() or m.take(-1, axis=a).any() for a in range(3))
    shell = ndimage.binary_dilation(m, np.ones((3, 3, 3), bool)) & ~m
    share = float(lung[shell].mean()) if shell.any() else 0.0
    enclosed = (not faces) and share >= 0.5
    near = lab[shell & lung]
    lung_name = labels.labels.get(int(np.bincount(near).argmax()), "") if near.size else ""
    # rays from the point: where each leaves the component, and into what
    g = np.array([0.5 + i for i in range(N_RAYS)])
    z = 1 - 2 * g / N_RAYS
    phi = np.pi * (1 + 5 ** 0.5) * g
    d = np.stack([np.sqrt(1 - z * z) * np.cos(phi), np.sqrt(1 - z * z) * np.sin(phi), z], 1)
    step = 0.5 * float(sp.min())
    t = np.arange(1, int(NODULE_MAX_MM / step) + 1) * step
    pts = p[None, None] + d[:, None] * t[None, :, None]
    kji = ct.nearest_kji(pts.reshape(-1, 3), clip=True) - lo
    inb = np.all((kji >= 0) & (kji < m.shape), axis=1)
    kji = np.clip(kji, 0, np.asarray(m.shape) - 1)
    inside = (m[tuple(kji.T)] & inb).reshape(N_RAYS, -1)
    out_first = np.argmax(~inside, axis=1)
    stays = inside.all(axis=1)
    at = kji.reshape(N_RAYS, -1, 3)[np.arange(N_RAYS), out_first]
    into_lung = lung[tuple(at.T)] & ~stays
    rays = {"lung": 100.0 * into_lung.mean(), "solid": 100.0 * stays.mean(),
            "air": 100.0 * (~into_lung & ~stays).mean()}
    return TargetTissue(lo, m, enclosed, float(ct.array[tuple(q)]), labels.labels.get(int(labels.array[tuple(q)]), ""),
                        lung_name, float(m.sum() * np.prod(sp)) / 1000.0, rays)


def last_step_into(tissue: TargetTissue, ct: Volume, labels: Volume, entry_ras, target_ras) -> bool:
    """Whether the straight path reaches the target from lung straight into ``tissue``: walking back
    from the target through the component, the first sample outside it is lung-labelled."""
    e, t = np.asarray(entry_ras, float), np.asarray(target_ras, float)
    length = float(np.linalg.norm(t - e))
    reach = min(length, 2.0 * NODULE_MAX_MM)   # the component lies within its box (< 1.8 x the reach)
    n = max(2, int(np.ceil(reach / (0.5 * float(min(ct.spacing))))) + 1)
    pts = t + np.linspace(0.0, reach / max(length, 1e-9), n)[:, None] * (e - t)
    kji = ct.nearest_kji(pts, clip=True)
    inside = tissue.contains(kji)
    if inside.all() or not inside[0]:
        return False
    first = int(np.argmax(~inside))
    return int(labels.array[tuple(kji[first])]) in _lung_values(labels)
