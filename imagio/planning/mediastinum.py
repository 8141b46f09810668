"""Mediastinal soft tissue crossed by a path while no great vessel is labelled (a warning).

On a CT without contrast the rule-based segmenters label no mediastinal vessel (aorta,
brachiocephalic trunk and veins, carotid and subclavian arteries, venae cavae, pulmonary
trunk): they are soft tissue at blood density, which neither the label map nor the CT density
check (`density`, > 250 HU) can see. The mediastinum is the region between the two pleural sacs
(Gray's Anatomy, 42nd ed.): here, in each axial plane of the CT grid (the array plane nearest
to axial), the voxels inside the convex hull of the lungs' voxels (every lung parenchyma and
lung-content label) that are not lung. A proposal crossing at least
``warnings.mediastinum_unlabelled_mm`` of it while no large vessel is labelled within reach is
warned (new-user trial 2: lung1's best path entered at the suprasternal notch through the right
paratracheal space, where the brachiocephalic trunk and vein run, with no specific warning).

Positions RAS mm; lengths mm. The hull is computed only for the planes the paths cross (cached
per plane); scikit-image's ``convex_hull_image`` per plane.
"""

from __future__ import annotations

import numpy as np

from .problem import LUNG_CONTENTS, LUNG_PARENCHYMA


# labels of the heart and great vessels that run in the mediastinum and thoracic inlet
MEDIASTINAL_VESSEL_HINTS = ("aorta", "vena_cava", "pulmonary_artery", "pulmonary_vein", "heart", "atrial_appendage",
                            "brachiocephalic", "subclavian", "common_carotid", "great_vessels")


class Mediastinum:
    """Per-axial-plane mediastinum of one problem's label map, built lazily per plane."""

    def __init__(self, problem):
        from ..segmentation.common import anatomical_axes

        self.p = problem
        lab = problem.labels
        self.axis = anatomical_axes(problem.ct)["S"][0]
        vals = [v for v, n in lab.labels.items() if n in LUNG_PARENCHYMA or n.startswith(LUNG_CONTENTS)]
        self.lung_values = np.array(sorted(vals), dtype=lab.array.dtype)
        self._planes: dict[int, np.ndarray] = {}
        self.half = 0.5 * float(min(problem.ct.spacing))

    def _plane(self, k: int) -> np.ndarray:
        """Bool 2-D mask of the mediastinum in array plane ``k`` along the axial axis."""
        if k not in self._planes:
            from skimage.morphology import convex_hull_image

            lab = np.take(self.p.labels.array, k, axis=self.axis)
            lung = np.isin(lab, self.lung_values)
            self._planes[k] = (convex_hull_image(lung) & ~lung) if lung.sum() >= 3 else np.zeros(lung.shape, bool)
        return self._planes[k]

    def run_mm(self, entry_ras, target_ras) -> float:
        """mm of the path ``entry_ras`` -> ``target_ras`` (RAS mm) inside the mediastinum, outside
        the target lesion (sampled every half voxel, nearest voxel)."""
        if len(self.lung_values) == 0:
            return 0.0
        ct = self.p.ct
        e, t = np.asarray(entry_ras, float), np.asarray(target_ras, float)
        length = float(np.linalg.norm(t - e))
        n = max(2, int(np.ceil(length / self.half)) + 1)
        pts = e + np.linspace(0.0, 1.0, n)[:, None] * (t - e)
        kji = np.clip(np.rint(ct.world_to_kji(pts)).astype(np.int64), 0, np.array(ct.shape) - 1)
        tv = self.p.target.value
        keep = self.p.labels.array[tuple(kji.T)] != tv if tv else np.ones(len(kji), bool)
        inside = np.zeros(len(kji), bool)
        other = [a for a in range(3) if a != self.axis]
        for k in np.unique(kji[keep, self.axis]):
            sel = keep & (kji[:, self.axis] == k)
            inside[sel] = self._plane(int(k))[kji[sel][:, other[0]], kji[sel][:, other[1]]]
        return float(inside.sum()) * length / (n - 1)
