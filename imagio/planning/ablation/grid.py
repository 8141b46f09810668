"""The analysis grid: a crop of the CT grid around the tumour, supersampled by an integer
factor per axis so that no voxel side exceeds ``spacing_mm`` (same orientation as the CT).

Fine voxel (k', j', i') has its centre at coarse continuous index lo + (k' + 0.5) / f - 0.5, so
nearest-neighbour upsampling is an exact ``np.repeat`` and the fine grid covers exactly the
coarse voxels of the crop. The crop may reach past the array (``lo`` < 0 or ``hi`` > its shape):
an ablation zone near the end of the scan runs into tissue that is not imaged, and is measured
there too (`imaged`; new-user trial 90: 17 % of a liver-dome zone lay above the last slice and
was silently left out). Arrays [k, j, i]; RAS mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ...volume import Volume


@dataclass
class FineGrid:
    coarse: np.ndarray       # coarse IJK->RAS (4x4)
    lo: np.ndarray           # crop start on the coarse grid, kji
    hi: np.ndarray           # crop end (exclusive), kji
    factor: np.ndarray       # integer supersampling per axis, kji
    array_shape: tuple | None = None   # the coarse array's shape (kji): the imaged part of the grid

    @classmethod
    def around(cls, vol: Volume, lo, hi, spacing_mm: float) -> "FineGrid":
        """The grid over the coarse box ``lo:hi`` (kji, may reach past ``vol``'s array) of
        ``vol``, no voxel side above ``spacing_mm``."""
        f = np.maximum(1, np.ceil(vol.spacing_kji / float(spacing_mm) - 1e-6)).astype(int)
        return cls(vol.ijk_to_ras.copy(), np.asarray(lo, int), np.asarray(hi, int), f, tuple(vol.shape))

    @property
    def shape(self) -> tuple:
        return tuple(int(x) for x in (self.hi - self.lo) * self.factor)

    @property
    def ijk_to_ras(self) -> np.ndarray:
        f_ijk = self.factor[::-1].astype(float)
        s = np.eye(4)
        s[:3, :3] = np.diag(1.0 / f_ijk)
        s[:3, 3] = self.lo[::-1] - 0.5 + 0.5 / f_ijk
        return self.coarse @ s

    @property
    def spacing_kji(self) -> np.ndarray:
        return np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0)[::-1].copy()

    @property
    def voxel_ml(self) -> float:
        return float(abs(np.linalg.det(self.ijk_to_ras[:3, :3])) / 1000.0)

    def kji_to_ras(self, kji) -> np.ndarray:
        m = self.ijk_to_ras
        return np.asarray(kji, float)[..., ::-1] @ m[:3, :3].T + m[:3, 3]

    def ras_to_kji(self, ras) -> np.ndarray:
        inv = np.linalg.inv(self.ijk_to_ras)
        return (np.asarray(ras, float) @ inv[:3, :3].T + inv[:3, 3])[..., ::-1]

    def bounds_ras(self):
        """RAS axis-aligned box of the fine grid's voxel centres."""
        sh = np.array(self.shape) - 1
        c = np.array([[k, j, i] for k in (0, sh[0]) for j in (0, sh[1]) for i in (0, sh[2])], float)
        r = self.kji_to_ras(c)
        return r.min(0), r.max(0)

    def _clipped(self, coarse_array: np.ndarray, fill=0) -> np.ndarray:
        """The crop ``lo:hi`` of a coarse array, ``fill`` where the crop lies past the array."""
        shp = np.asarray(coarse_array.shape)
        a0, a1 = np.clip(self.lo, 0, shp), np.clip(self.hi, 0, shp)
        a = coarse_array[a0[0]:a1[0], a0[1]:a1[1], a0[2]:a1[2]]
        before, after = a0 - self.lo, self.hi - a1
        if np.any(before > 0) or np.any(after > 0):
            a = np.pad(a, list(zip(before.tolist(), after.tolist())), constant_values=fill)
        return a

    def imaged(self) -> np.ndarray:
        """Bool [k, j, i] on the fine grid: True where the voxel's coarse voxel lies inside the
        array (three broadcastable 1-D factors' product, (nk, nj, ni))."""
        out = np.ones((1, 1, 1), bool)
        for ax in range(3):
            c = self.lo[ax] + np.arange(self.shape[ax]) // self.factor[ax]
            ok = (c >= 0) & (c < self.array_shape[ax]) if self.array_shape is not None else np.ones(len(c), bool)
            out = out & ok.reshape([-1 if a == ax else 1 for a in range(3)])
        return out

    def nearest(self, coarse_array: np.ndarray, fill=0) -> np.ndarray:
        """The crop of a coarse array, upsampled by repetition (exact nearest neighbour);
        ``fill`` past the array."""
        a = self._clipped(coarse_array, fill)
        for ax in range(3):
            if self.factor[ax] > 1:
                a = np.repeat(a, self.factor[ax], axis=ax)
        return a

    def linear(self, coarse_mask: np.ndarray) -> np.ndarray:
        """A coarse mask resampled trilinearly onto the fine grid (float32 in [0, 1]); 0 past
        the array (so the 0.5 level of a mask that touches the array's face lies on that face)."""
        big = FineGrid(self.coarse, self.lo - 1, self.hi + 1, self.factor)
        lo = np.maximum(self.lo - 1, 0)
        hi = np.minimum(self.hi + 1, coarse_mask.shape)
        if np.all(lo == self.lo - 1) and np.all(hi == self.hi + 1):
            a = coarse_mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].astype(np.float32)
        else:   # the crop reaches past the array: 0 there
            a = big._clipped(coarse_mask, 0).astype(np.float32)
            lo = self.lo - 1
        f = self.factor.astype(float)
        off = (self.lo - lo) - 0.5 + 0.5 / f
        return ndimage.affine_transform(a, 1.0 / f, offset=off, output_shape=self.shape, order=1,
                                        mode="nearest", prefilter=False)
