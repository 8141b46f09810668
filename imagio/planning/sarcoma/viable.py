"""Viable (enhancing, solid) tumour from the CT and biopsy targets well inside it.

Viable = tumour voxels whose CT, Gaussian-smoothed over ``smoothing_mm`` (noise), exceeds
``necrosis_max_hu`` (imagio/data/sarcoma_biopsy.json ``viable``: fluid, necrosis and cysts
measure -9 to 20 HU, Silverman et al., Radiology 2019). Depth = exact Euclidean distance (mm,
anisotropic) from a viable voxel to the nearest non-viable one. Arrays [k, j, i], RAS mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ...volume import Volume
from .rules import config


@dataclass
class ViableMap:
    """``mask`` bool [k, j, i] on the CT grid (viable tumour), ``depth_mm`` float32 (0 outside),
    the threshold used, volumes (mL) and warnings."""

    mask: np.ndarray
    depth_mm: np.ndarray
    threshold_hu: float
    tumour_ml: float
    viable_ml: float
    warnings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"threshold_hu": self.threshold_hu, "tumour_ml": round(self.tumour_ml, 2),
                "viable_ml": round(self.viable_ml, 2),
                "viable_pct": round(100.0 * self.viable_ml / max(self.tumour_ml, 1e-9), 1),
                "max_depth_mm": round(float(self.depth_mm.max()), 1), "method": config()["viable"]["source"],
                "warnings": list(self.warnings)}


def viable_map(ct: Volume, tumour: np.ndarray, threshold_hu: float | None = None,
               smoothing_mm: float | None = None, contrast: bool | None = None) -> ViableMap:
    """The viable part of ``tumour`` (bool [k, j, i] on the CT grid). ``contrast``: whether the
    CT is contrast-enhanced (None: unknown, stated in the warnings)."""
    import edt

    cfg = config()["viable"]
    thr = float(cfg["necrosis_max_hu"] if threshold_hu is None else threshold_hu)
    sm = float(cfg["smoothing_mm"] if smoothing_mm is None else smoothing_mm)
    tumour = np.asarray(tumour, bool)
    kji = np.argwhere(tumour)
    pad = 3
    lo = np.maximum(kji.min(0) - pad, 0)
    hi = np.minimum(kji.max(0) + pad + 1, tumour.shape)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    sigma = sm / np.asarray(ct.spacing_kji, float)
    hu = ndimage.gaussian_filter(ct.array[sl].astype(np.float32), sigma)
    v = tumour[sl] & (hu > thr)
    depth = edt.edt(np.pad(v, 1), anisotropy=tuple(float(s) for s in ct.spacing_kji))[1:-1, 1:-1, 1:-1]
    mask = np.zeros(tumour.shape, bool)
    mask[sl] = v
    dfull = np.zeros(tumour.shape, np.float32)
    dfull[sl] = depth
    ml = ct.voxel_volume_ml
    out = ViableMap(mask, dfull, thr, float(tumour.sum()) * ml, float(v.sum()) * ml)
    if contrast is None:
        out.warnings.append("contrast phase unknown: on a CT without contrast the viable map shows solid "
                            "(non-fluid) tumour, not enhancement; check it on the contrast CT or MR")
    elif not contrast:
        out.warnings.append("no contrast: the viable map shows solid (non-fluid) tumour, not enhancement")
    out.warnings.append("haemorrhage (40-90 HU) cannot be told from enhancing tumour on one CT phase: "
                        "check the targets against MR")
    if out.viable_ml < 0.25 * out.tumour_ml:
        out.warnings.append(f"only {100 * out.viable_ml / max(out.tumour_ml, 1e-9):.0f}% of the tumour is "
                            f"above {thr:g} HU: a largely necrotic or cystic mass, targets are few")
    return out


def contrast_enhanced(ct: Volume, labels: Volume, vessel_values) -> bool | None:
    """True when the labelled vessels' median HU reaches the config's ``min_contrast_vessel_hu``
    (enhanced blood), False when below, None when no vessel is labelled."""
    m = np.isin(labels.array, list(vessel_values)) if vessel_values else None
    if m is None or not m.any():
        return None
    return bool(np.median(ct.array[m]) >= config()["viable"]["min_contrast_vessel_hu"])


def candidate_targets(ct: Volume, vm: ViableMap, min_depth_mm: float | None = None,
                      limit: int = 4000) -> tuple[np.ndarray, np.ndarray, list]:
    """(points (n, 3) RAS, depth (n,) mm, warnings): viable voxels at least ``min_depth_mm``
    inside the viable tumour, deepest first (at most ``limit``, an even subsample). When none is
    that deep, the deepest voxels are used with a warning."""
    want = float(config()["cores"]["min_depth_mm"] if min_depth_mm is None else min_depth_mm)
    warnings = []
    ok = vm.depth_mm >= want
    if not ok.any():
        if not vm.mask.any():
            return np.zeros((0, 3)), np.zeros(0), ["no viable tumour above the threshold: no target"]
        best = float(vm.depth_mm.max())
        warnings.append(f"no viable tumour {want:g} mm deep (deepest {best:.1f} mm): targets less deep")
        ok = vm.depth_mm >= 0.8 * best
    kji = np.argwhere(ok)
    d = vm.depth_mm[ok]
    order = np.argsort(-d, kind="stable")
    if len(order) > limit:
        order = np.sort(order[np.linspace(0, len(order) - 1, limit).astype(int)])
        order = order[np.argsort(-d[order], kind="stable")]
    return ct.kji_to_world(kji[order].astype(float)), d[order], warnings
