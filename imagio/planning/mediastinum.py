"""Mediastinal soft tissue crossed by a path while no great vessel is labelled (a warning).

On a CT without contrast the rule-based segmenters label no mediastinal vessel (aorta,
brachiocephalic trunk and veins, carotid and subclavian arteries, venae cavae, pulmonary
trunk): they are soft tissue at blood density, which neither the label map nor the CT density
check (`density`, > 250 HU) can see. The mediastinum is the region between the two pleural sacs,
from the sternum in front to the vertebral column behind (Gray's Anatomy, 42nd ed., thorax).
Its vessels lie in front of the spine or beside the vertebral bodies (descending aorta, azygos
vein): the ITMIG definition puts the back of the visceral compartment, which holds them, on a
line 1 cm behind the anterior margin of the vertebral bodies; behind it lie the paravertebral
compartment (spine, paravertebral soft tissue) and the back muscles (Carter BW et al., A modern
definition of mediastinal compartments, J Thorac Oncol 2014;9(9 Suppl 2):S97-S101).

Here, in each axial plane of the CT grid (the array plane nearest to axial), the region is:
the voxels inside the convex hull of the lungs' voxels (every lung parenchyma and lung-content
label), not lung, not bone (`problem.is_bone`), and not more than
``warnings.mediastinum_behind_vertebra_mm`` behind the most anterior voxel of a vertebra label
in that plane (world A). Fallback, said in the warning: in a plane without a vertebra label (or
whose vertebra voxels reach the front of the lungs' hull: not a vertebral body) the region runs
to the back of the hull, spine included (the safe side: a back approach may be warned wrongly).
A proposal crossing at least ``warnings.mediastinum_unlabelled_mm`` of it while no large vessel
is labelled within reach is warned (new-user trial 2: lung1's best path entered at the
suprasternal notch through the right paratracheal space, where the brachiocephalic trunk and
vein run, with no specific warning; trial 3: every prone back approach to a vertebral body was
warned, the hull taking in the spine and the paravertebral muscles).

The visceral compartment continues above the thoracic inlet into the neck (ITMIG: Carter BW et
al. 2014, above; its upper border is the thoracic inlet, through which the trachea, oesophagus and
great vessels pass): around the trachea lie the thyroid in front and beside it, the carotid sheath
(common carotid artery, internal jugular vein, vagus nerve) lateral to the trachea and thyroid,
and at the inlet the brachiocephalic trunk and veins (Gray's Anatomy, 42nd ed., neck and
mediastinum). At the lung apices the lungs' hull lies behind that tissue (new-user trial 100
F5: lung1's best path to a right-apex target ran through the thyroid and the carotid sheath with
no word). So the region also holds, in each axial plane with a trachea label, the voxels within
``warnings.neck_base_trachea_mm`` of the trachea's centre in that plane (distance in world R-A),
not lung, not bone, not the airway, and behind the vertebral bodies cut as above; this part
outside the lungs' hull is reported as the base of the neck (`Mediastinum.runs`). Without a
trachea label that part is empty (`Mediastinum.has_trachea`).

Positions RAS mm; lengths mm. The region is computed only for the planes the paths cross
(cached per plane); scikit-image's ``convex_hull_image`` per plane.
"""

from __future__ import annotations

import numpy as np

from .problem import LUNG_CONTENTS, LUNG_PARENCHYMA, _named, is_bone, load_defaults


# labels of the heart and great vessels that run in the mediastinum and thoracic inlet
MEDIASTINAL_VESSEL_HINTS = ("aorta", "vena_cava", "pulmonary_artery", "pulmonary_vein", "heart", "atrial_appendage",
                            "brachiocephalic", "subclavian", "common_carotid", "great_vessels")


def one_lung_side(names) -> str | None:
    """'left' or 'right' when the lung labels among ``names`` (structure names, e.g. those within
    needle reach) are all of that side (a hemithorax crop or a one-lung map: the region between
    the lungs cannot be outlined); None when both sides, no lung or only side-less lung names."""
    lungs = [n for n in names if n in LUNG_PARENCHYMA or n.startswith(LUNG_CONTENTS)]
    sides = {s for n in lungs for s in ("left", "right") if n.endswith("_" + s) or f"_{s}_" in n}
    sideless = any(not (n.endswith(("_left", "_right")) or "_left_" in n or "_right_" in n)
                   for n in lungs if n in LUNG_PARENCHYMA)
    return sides.pop() if len(sides) == 1 and not sideless else None


class Mediastinum:
    """Per-axial-plane mediastinum of one problem's label map, built lazily per plane."""

    def __init__(self, problem):
        from ..segmentation.common import anatomical_axes

        self.p = problem
        lab = problem.labels
        self.axis = anatomical_axes(problem.ct)["S"][0]
        vals = [v for v, n in lab.labels.items() if n in LUNG_PARENCHYMA or n.startswith(LUNG_CONTENTS)]
        self.lung_values = np.array(sorted(vals), dtype=lab.array.dtype)
        self.bone_values = np.array(sorted(v for v, n in lab.labels.items() if is_bone(n)), dtype=lab.array.dtype)
        vert = load_defaults()["bone_target"]["vertebra_prefixes"]
        self.vertebra_values = np.array(sorted(v for v, n in lab.labels.items() if _named(n, vert)),
                                        dtype=lab.array.dtype)
        self.trachea_values = np.array(sorted(v for v, n in lab.labels.items() if "trachea" in n),
                                       dtype=lab.array.dtype)
        self.behind_mm = float(load_defaults()["warnings"]["mediastinum_behind_vertebra_mm"])
        self.neck_mm = float(load_defaults()["warnings"]["neck_base_trachea_mm"])
        self._planes: dict[int, np.ndarray] = {}
        self._neck: dict[int, np.ndarray] = {}   # the part of each plane's region outside the lungs' hull
        self.uncut: set[int] = set()     # planes where the region runs to the back of the hull
        self.half = 0.5 * float(min(problem.ct.spacing))
        # world A of an index: a0 + a_coef . kji (the grid is affine)
        ct = problem.ct
        w = ct.kji_to_world(np.vstack([np.zeros(3), np.eye(3)]))
        self._a0, self._a_coef = float(w[0, 1]), w[1:, 1] - w[0, 1]
        self._r0, self._r_coef = float(w[0, 0]), w[1:, 0] - w[0, 0]

    @property
    def has_trachea(self) -> bool:
        """Whether the label map names a trachea (the neck-base part of the region needs it)."""
        return len(self.trachea_values) > 0

    def plane(self, k: int) -> np.ndarray:
        """Bool 2-D mask of the mediastinum (with the neck base around the trachea) in array
        plane ``k`` along the axial array axis (``self.axis``), indexed by the two other array
        axes in their order; computed once per plane and cached."""
        if k not in self._planes:
            from ..segmentation.common import convex_hull_2d

            lab = np.take(self.p.labels.array, k, axis=self.axis)
            lung = np.isin(lab, self.lung_values)
            other = [a for a in range(3) if a != self.axis]
            ii, jj = np.indices(lab.shape)
            a_mm = self._a0 + self._a_coef[self.axis] * k + self._a_coef[other[0]] * ii + self._a_coef[other[1]] * jj
            vert = np.isin(lab, self.vertebra_values)
            front = float(a_mm[vert].max()) if vert.any() else None
            region = np.zeros(lung.shape, bool)
            if lung.sum() >= 3:
                hull = convex_hull_2d(lung)
                region = hull & ~lung & ~np.isin(lab, self.bone_values)
                if front is not None and front < float(a_mm[hull].max()):   # behind the lungs' front: a vertebral body
                    region &= a_mm >= front - self.behind_mm
                else:
                    self.uncut.add(k)
            neck = self._neck_base(lab, lung, a_mm, front, k, ii, jj, other) & ~region
            self._neck[k] = neck
            self._planes[k] = region | neck
        return self._planes[k]

    def _neck_base(self, lab, lung, a_mm, front, k, ii, jj, other) -> np.ndarray:
        """The tissue around the trachea of one plane (`plane`'s arguments): within
        ``neck_mm`` of the trachea's centre (world R-A), not lung, bone or airway, and not
        further behind the vertebral bodies' front than ``behind_mm`` (when the vertebra
        lies behind the trachea); all False without a trachea voxel in the plane."""
        tr = np.isin(lab, self.trachea_values)
        if not tr.any():
            return np.zeros(lab.shape, bool)
        r_mm = self._r0 + self._r_coef[self.axis] * k + self._r_coef[other[0]] * ii + self._r_coef[other[1]] * jj
        cr, ca = float(r_mm[tr].mean()), float(a_mm[tr].mean())
        out = np.hypot(r_mm - cr, a_mm - ca) <= self.neck_mm
        out &= ~lung & ~tr & ~np.isin(lab, self.bone_values)
        if front is not None and front < ca:   # a vertebral body behind the trachea
            out &= a_mm >= front - self.behind_mm
        return out

    def contains(self, ras) -> bool:
        """Whether the RAS point ``ras`` (mm) lies in the mediastinum (its nearest voxel)."""
        kji = self.p.ct.nearest_kji(np.asarray(ras, float)[None])[0]
        if not self.p.ct.in_array(kji):
            return False
        other = [a for a in range(3) if a != self.axis]
        return bool(self.plane(int(kji[self.axis]))[kji[other[0]], kji[other[1]]])

    def runs(self, entry_ras, target_ras, chunk: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For paths ``entry_ras`` -> ``target_ras`` (n, 3) RAS mm: (mm of each inside the
        region (mediastinum and neck base) outside the target lesion, float (n,); True where a
        plane it crosses inside the region had no vertebral body to stop the region at (the
        fallback), bool (n,); mm of that in the neck-base part (around the trachea, outside the
        lungs' hull), float (n,)).
        Sampled at ``ceil(longest / half voxel) + 1`` points per path (nearest voxel)."""
        e = np.atleast_2d(np.asarray(entry_ras, float))
        t = np.atleast_2d(np.asarray(target_ras, float))
        mm, uncut, neck_mm = np.zeros(len(e)), np.zeros(len(e), bool), np.zeros(len(e))
        if len(self.lung_values) == 0 or len(e) == 0:
            return mm, uncut, neck_mm
        ct, tv = self.p.ct, self.p.target.value
        length = np.linalg.norm(t - e, axis=1)
        n = max(2, int(np.ceil(length.max() / self.half)) + 1)
        frac = np.linspace(0.0, 1.0, n)
        other = [a for a in range(3) if a != self.axis]
        for a in range(0, len(e), chunk):
            ee, tt = e[a:a + chunk], t[a:a + chunk]
            pts = ee[:, None, :] + frac[None, :, None] * (tt - ee)[:, None, :]
            kji = ct.nearest_kji(pts.reshape(-1, 3), clip=True)
            keep = self.p.labels.array[tuple(kji.T)] != tv if tv else np.ones(len(kji), bool)
            inside, neck = np.zeros(len(kji), bool), np.zeros(len(kji), bool)
            ks = kji[:, self.axis]
            for k in np.unique(ks[keep]):
                plane = self.plane(int(k))
                sel = np.flatnonzero(keep & (ks == k))
                inside[sel] = plane[kji[sel, other[0]], kji[sel, other[1]]]
                neck[sel] = self._neck[int(k)][kji[sel, other[0]], kji[sel, other[1]]]
            inside, neck = inside.reshape(len(ee), n), neck.reshape(len(ee), n)
            mm[a:a + chunk] = inside.sum(1) * length[a:a + chunk] / (n - 1)
            neck_mm[a:a + chunk] = neck.sum(1) * length[a:a + chunk] / (n - 1)
            if self.uncut:
                bad = np.isin(ks.reshape(len(ee), n), np.fromiter(self.uncut, np.int64))
                uncut[a:a + chunk] = (inside & ~neck & bad).any(1)   # the hull's part ran to its back
        return mm, uncut, neck_mm
