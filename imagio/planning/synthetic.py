"""A small synthetic torso with known geometry, for tests and benchmarks of the planner
before/besides the digital phantom. Not anatomy: an elliptic cylinder body with rib rings,
a vertebral body, an aorta, a liver with a tumour and a portal vein, and two lungs above a
liver dome. RAS mm; any grid (spacing, direction) can be asked for.
"""

from __future__ import annotations

import numpy as np

from ..volume import Volume, make_ijk_to_ras

LABELS = {1: "body", 2: "liver", 3: "liver_tumor", 4: "aorta", 5: "vertebrae_L1",
          6: "portal_vein", 7: "lung_lower_lobe_right", 8: "lung_lower_lobe_left",
          9: "lung_upper_lobe_right"}
HU = {0: -1000, 1: 40, 2: 60, 3: 20, 4: 180, 5: 400, 6: 170, 7: -850, 8: -850, 9: -850}
RIB_Z = (-75.0, -45.0, -15.0, 15.0, 45.0)   # rib centres (z, mm); ribs 10 mm high, gaps 20 mm
BODY_AXES = (140.0, 100.0)                  # body semi-axes x, y (mm)
TUMOR = ((55.0, 10.0, 0.0), 12.0)           # centre RAS, radius mm


def grid(spacing=2.0, direction=None, extent=(320.0, 230.0, 200.0)) -> np.ndarray:
    """IJK->RAS of a grid covering ``extent`` (x, y, z mm) centred at the origin."""
    sp = np.broadcast_to(np.asarray(spacing, float), (3,))
    d = np.eye(3) if direction is None else np.asarray(direction, float)
    n = np.ceil(np.asarray(extent) / sp).astype(int)
    centre_ijk = (n - 1) / 2.0
    origin = -(d * sp) @ centre_ijk
    return make_ijk_to_ras(sp, origin, d), n


def synthetic_torso(spacing=2.0, direction=None, ribs=True, seed=0, extent=(320.0, 230.0, 200.0)):
    """(ct, labels) Volumes of the synthetic torso (see module doc) on the requested grid
    (``extent``: x, y, z mm covered, centred at the origin; a wider one leaves air beside it)."""
    m, n = grid(spacing, direction, extent)
    ref = Volume(np.zeros(tuple(n[::-1]), np.uint8), m)
    kk, jj, ii = np.meshgrid(*[np.arange(s, dtype=np.float32) for s in ref.shape], indexing="ij")
    ijk = np.stack([ii, jj, kk], -1).reshape(-1, 3)
    x, y, z = (ijk @ m[:3, :3].T.astype(np.float32) + m[:3, 3].astype(np.float32)).T
    ax, ay = BODY_AXES
    r = np.sqrt((x / ax) ** 2 + (y / ay) ** 2)
    lab = np.zeros(x.shape, np.uint8)
    lab[(r <= 1.0) & (np.abs(z) <= 95)] = 1
    if ribs:  # rings 8 mm thick, 10 mm high, 12-20 mm under the skin; spine side excluded
        ring = (r >= 1 - 20 / ay) & (r <= 1 - 12 / ay) & (y > -70)
        for zc in RIB_Z:
            lab[ring & (np.abs(z - zc) <= 5.0) & (np.abs(z) <= 95)] = 5  # bone (labelled vertebra)
    lab[((x / 16) ** 2 + ((y + 70) / 16) ** 2 <= 1) & (np.abs(z) <= 95)] = 5
    lab[((x + 25) ** 2 + (y + 45) ** 2 <= 12 ** 2) & (np.abs(z) <= 95)] = 4
    liver = (((x - 50) / 70) ** 2 + ((y - 5) / 60) ** 2 + ((z + 10) / 60) ** 2 <= 1) & (lab == 1)
    lab[liver] = 2
    lab[((x - 30) ** 2 + (y + 20) ** 2 <= 6 ** 2) & liver] = 6
    c, rad = TUMOR
    lab[(x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= rad ** 2] = 3
    lungs = (r <= 1 - 22 / ay) & (z > 50) & (z <= 95) & (np.abs(x) > 20) & (lab == 1)
    lab[lungs & (x > 0) & (z <= 75)] = 7
    lab[lungs & (x > 0) & (z > 75)] = 9
    lab[lungs & (x < 0)] = 8
    lab = lab.reshape(ref.shape)
    hu = np.zeros(256, np.int16)
    for v, h in HU.items():
        hu[v] = h
    rng = np.random.default_rng(seed)
    ct = hu[lab] + rng.normal(0, 8, lab.shape).astype(np.int16)
    labels = {v: nm for v, nm in LABELS.items() if v != 1}
    labels[1] = "body"
    return (Volume(ct.astype(np.int16), m, "synthetic_ct"),
            Volume(lab, m, "synthetic_labels", dict(sorted(labels.items()))))
