"""Emphysema: low-attenuation areas below -950 HU inside the lungs (LAA-950).

Threshold from Gevenois et al., Am J Respir Crit Care Med 1996 (-950 HU on thin-section CT),
as recommended by the Fleischner Society statement (Lynch et al., Radiology 2015).
"""

from __future__ import annotations

import numpy as np

from ..volume import Volume
from .common import EMPHYSEMA_HU, check_ct


def emphysema(ct: Volume, lungs: dict[str, np.ndarray], threshold_hu: float = EMPHYSEMA_HU
              ) -> tuple[np.ndarray, dict]:
    """(mask, stats): voxels below ``threshold_hu`` in any of the given lung masks and, per lung
    name and for all lungs together, the percentage of lung volume below it (%LAA) and mL."""
    a = check_ct(ct)
    low = a < threshold_hu
    union = np.zeros(a.shape, bool)
    stats = {}
    for name, m in lungs.items():
        union |= m
        n = int(m.sum())
        k = int((low & m).sum())
        stats[name] = {"laa_percent": round(100.0 * k / n, 2) if n else None,
                       "laa_ml": round(k * ct.voxel_volume_ml, 2),
                       "lung_ml": round(n * ct.voxel_volume_ml, 2)}
    n = int(union.sum())
    mask = low & union
    stats["total"] = {"laa_percent": round(100.0 * mask.sum() / n, 2) if n else None,
                      "laa_ml": round(float(mask.sum()) * ct.voxel_volume_ml, 2),
                      "lung_ml": round(n * ct.voxel_volume_ml, 2), "threshold_hu": threshold_hu}
    return mask, stats
