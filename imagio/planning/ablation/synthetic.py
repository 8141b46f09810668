"""A synthetic spherical tumour inserted into an organ of a labelled CT (for demos and tests
of multi-probe plans, e.g. a 45 mm liver tumour in the phantom). RAS mm, HU."""

from __future__ import annotations

import numpy as np

from ...errors import InputError
from ...volume import Volume

TUMOUR_HU = 40.0  # hypodense liver metastasis in the portal-venous phase (phantom convention)


def insert_sphere(ct: Volume, labels: Volume, radius_mm: float, organ: str = "liver",
                  name: str = "liver_tumor_large", hu: float | None = None, centre_ras=None):
    """(ct, labels, centre RAS) with a ball of ``radius_mm`` at the deepest point of ``organ``
    (or at ``centre_ras``) painted as a new label ``name`` (and ``hu`` HU in the CT)."""
    import edt

    inv = {n: v for v, n in labels.labels.items()}
    if organ not in inv:
        raise InputError(f"organ {organ!r} is not in the label map; it has {sorted(inv)}")
    if centre_ras is None:
        org = labels.array == inv[organ]
        blo, bhi = labels.bounding_box(org)     # the organ's box: the same distances, far fewer voxels
        d = edt.edt(org[tuple(slice(a, b) for a, b in zip(blo, bhi))], anisotropy=tuple(labels.spacing_kji),
                    black_border=True)
        best = np.array(np.unravel_index(np.argmax(d), d.shape)) + blo
        centre_ras = labels.kji_to_world(best.astype(float)[None])[0]
    c = np.asarray(centre_ras, float)
    lo = np.floor(labels.world_to_kji((c - radius_mm - 1)[None])[0]).astype(int)
    hi = np.ceil(labels.world_to_kji((c + radius_mm + 1)[None])[0]).astype(int) + 1
    lo, hi = np.maximum(np.minimum(lo, hi), 0), np.minimum(np.maximum(lo, hi), labels.shape)
    kji = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), -1).reshape(-1, 3)
    ball = kji[np.linalg.norm(labels.kji_to_world(kji.astype(float)) - c, axis=1) <= radius_mm]
    value = max(labels.labels) + 1
    arr = labels.array.astype(np.uint16 if value > 255 else labels.array.dtype, copy=True)
    arr[tuple(ball.T)] = value
    cta = ct.array.copy()
    cta[tuple(ball.T)] = TUMOUR_HU if hu is None else hu
    return (ct.with_array(cta), labels.with_array(arr, labels={**labels.labels, value: name}), c)
