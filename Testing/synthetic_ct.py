"""A small synthetic chest/upper-abdomen CT with known structures, on any grid (oblique ok).

Shapes are defined in RAS mm (x right, y anterior, z superior) around the origin, so the same
patient appears whatever the IJK->RAS matrix. Returns the CT Volume and the truth masks.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from imagio.volume import Volume, make_ijk_to_ras

LESIONS = {  # name: (centre RAS mm, radius mm, HU, kind)
    "nodule_solid": ((60.0, 20.0, 30.0), 10.0, 30.0, "lung_nodule"),
    "nodule_ggo": ((-58.0, 22.0, 45.0), 9.0, -600.0, "lung_nodule"),
    "liver_tumor": ((55.0, 10.0, -72.0), 12.0, 35.0, "soft_tissue"),
    "nodule_part_solid": ((62.0, -22.0, 62.0), 9.0, -600.0, "lung_nodule"),  # solid core r/2
}


def grid(spacing=(2.0, 2.0, 2.0), direction=None, extent=(330.0, 260.0, 230.0)) -> np.ndarray:
    """IJK->RAS matrix of a grid centred on the RAS origin covering ``extent`` (mm)."""
    direction = np.eye(3) if direction is None else np.asarray(direction, float)
    spacing = np.asarray(spacing, float)
    # box large enough along each rotated axis to cover the extent
    ext_axes = np.abs(direction.T) @ np.asarray(extent, float)
    n = np.ceil(ext_axes / spacing).astype(int)
    centre_ijk = (n - 1) / 2.0
    m = make_ijk_to_ras(spacing, (0, 0, 0), direction)
    m[:3, 3] = -m[:3, :3] @ centre_ijk
    return m, tuple(int(v) for v in n[::-1])


def _seg_dist(p, a, b):
    """Distance (mm) of points p (..., 3) to the segment a-b."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0, 1)
    return np.linalg.norm(p - (a + t[..., None] * ab), axis=-1)


def make_ct(spacing=(2.0, 2.0, 2.0), direction=None, noise=15.0, seed=0):
    m, shape = grid(spacing, direction)
    nk, nj, ni = shape
    kji = np.stack(np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij"), -1)
    p = (kji[..., ::-1].reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]).reshape(nk, nj, ni, 3).astype(np.float32)
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    t = {}
    zin = np.abs(z) <= 110
    t["body"] = ((x / 150) ** 2 + (y / 110) ** 2 <= 1) & zin
    table = (y > -128) & (y < -118) & (np.abs(x) < 200)
    pad = (y >= -118) & (y < -100) & (np.abs(x) < 2.0) & ~t["body"] & zin  # 4 mm strap to the table
    lung_r = (((x - 60) / 45) ** 2 + ((y - 5) / 62) ** 2 + ((z - 25) / 75) ** 6) <= 1
    lung_l = (((x + 60) / 45) ** 2 + ((y - 5) / 62) ** 2 + ((z - 25) / 75) ** 6) <= 1
    trachea = (_seg_dist(p, (0, 20, 112), (0, 20, 60)) <= 8) & t["body"]
    bro_r = _seg_dist(p, (0, 20, 60), (50, 10, 25))
    bro_l = _seg_dist(p, (0, 20, 60), (-50, 10, 25))
    bronchi = ((bro_r <= 5) | (bro_l <= 5)) & ~trachea
    wall = ((bro_r <= 7.5) | (bro_l <= 7.5) | (_seg_dist(p, (0, 20, 112), (0, 20, 60)) <= 10.5)) \
        & ~bronchi & ~trachea
    # the bronchi end open in the parenchyma (a growing threshold above -850 HU leaks there)
    wall &= (np.linalg.norm(p - np.float32([50, 10, 25]), axis=-1) > 9) & (
        np.linalg.norm(p - np.float32([-50, 10, 25]), axis=-1) > 9)
    spine = ((x / 16) ** 2 + ((y + 78) / 16) ** 2 <= 1) & zin
    rho = np.sqrt((x / 122) ** 2 + (y / 92) ** 2)
    ribs = np.zeros_like(spine)
    for z0 in (-30, -7, 16, 39, 62, 85):
        ribs |= (np.abs(z - z0) <= 3) & (rho >= 0.93) & (rho <= 1.0) & (np.abs(x) > 25) & (y > -75)
    liver = (((x - 60) / 62) ** 2 + ((y - 10) / 58) ** 2 + ((z + 70) / 32) ** 2) <= 1
    liver &= ~lung_r
    vessel = (_seg_dist(p, (10, -12, -62), (110, -12, -62)) <= 3.5) & liver
    ct = np.full(shape, -1000.0, np.float32)
    ct[table] = 250.0
    ct[pad] = -80.0
    ct[t["body"]] = 40.0
    ct[t["body"] & (rho > 1.05)] = -90.0  # subcutaneous fat (outer rim)
    ct[liver] = 100.0
    ct[vessel] = 220.0
    ct[lung_r | lung_l] = -850.0
    emph = (((x + 60) / 18) ** 2 + ((y + 10) / 18) ** 2 + ((z + 5) / 18) ** 2) <= 1
    ct[emph & lung_l] = -985.0
    for name, (c, r, hu, kind) in LESIONS.items():
        s = np.linalg.norm(p - np.asarray(c, np.float32), axis=-1) <= r
        ct[s] = hu
        t[name] = s
        if name == "nodule_part_solid":
            ct[np.linalg.norm(p - np.asarray(c, np.float32), axis=-1) <= r / 2] = 30.0
    ct[wall] = 20.0
    ct[trachea | bronchi] = -1000.0
    ct[spine] = 200.0
    ct[spine & ~ndimage.binary_erosion(spine, iterations=1)] = 800.0
    ct[ribs] = 650.0
    rng = np.random.default_rng(seed)
    ct = ndimage.gaussian_filter(ct, 0.5) + rng.normal(0, noise, shape)
    t.update(lung_left=lung_l & ~bronchi & ~wall, lung_right=lung_r & ~bronchi & ~wall,
             trachea=trachea, bronchi=bronchi, spine=spine, ribs=ribs, liver=liver, vessel=vessel,
             emphysema=emph & lung_l, table=table)
    t["body"] = t["body"] | pad & False
    return Volume(np.clip(np.rint(ct), -1024, 3071).astype(np.int16), m, "synthetic"), t
