"""The phantom's anatomy as implicit shapes on an axis-aligned RAS grid (mm).

Supine adult torso from the kidneys (z ~ 0) to the thoracic inlet (z ~ 335); +x is the
patient's right, +y anterior, +z superior. Each function paints labels in place; later
paints override earlier ones, which is how organs nest (vessels inside the liver, ...).
"""

from __future__ import annotations

import numpy as np

from . import trees
from .raster import Grid, capsules, ellipsoid

RIB_LEVEL_MM = 20.0  # S-I distance between consecutive ribs/vertebrae at the spine
RIB_RADIUS_MM = 4.0  # rib half-height: 8 mm ribs leave ~12 mm intercostal spaces
RIB_DROP_MM = 45.0  # a rib descends this much from the spine to its anterior end
TOP_RIB_Z = 305.0
VERTEBRAE = [f"vertebrae_T{i}" for i in range(1, 13)] + [f"vertebrae_L{i}" for i in range(1, 5)]


def smoothstep(a, b, v):
    t = np.clip((v - a) / (b - a), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def body_axes(z):
    """Semi-axes (a: L-R, b: A-P) in mm of the body outline at height z (mm)."""
    s = smoothstep(275.0, 335.0, z)
    return 165.0 - 75.0 * s, 110.0 - 45.0 * s


def rho(x, y, z):
    """Normalised elliptic radius of the body outline (1 on the skin)."""
    a, b = body_axes(z)
    return np.sqrt((x / a) ** 2 + (y / b) ** 2)


def dome_right(x, y):
    return 175.0 - 0.005 * (x - 60.0) ** 2 - 0.004 * (y - 5.0) ** 2


def dome_left(x, y):
    return 165.0 - 0.005 * (x + 60.0) ** 2 - 0.004 * (y - 5.0) ** 2


def oblique_fissure_z(y):
    """Height (mm) of the oblique fissures: high posteriorly, low anteriorly."""
    return 210.0 - 0.8 * y


HORIZONTAL_FISSURE_Z = 215.0
HEART = dict(center=(-15.0, 30.0, 205.0), radii=(55.0, 45.0, 48.0))


class Painter:
    def __init__(self, grid: Grid, names: list[str]):
        self.g = grid
        self.names = names
        self.value = {n: i + 1 for i, n in enumerate(names)}
        self.labels = np.zeros(grid.shape, np.uint8)

    def v(self, name):
        return self.value[name]


def paint_body(p: Painter):
    g, L = p.g, p.labels
    z, y, x = g.full()
    a, b = body_axes(z)
    r = np.sqrt((x / a) ** 2 + (y / b) ** 2)
    body = (r <= 1.0) & (y >= -0.95 * b)  # flattened back (lying on the table)
    L[body] = p.v("skin")
    L[body & (r <= 0.985) & (y >= -0.95 * b + 1.5)] = p.v("subcutaneous_fat")
    L[body & (r <= 0.92) & (y >= -0.95 * b + 8)] = p.v("muscle")
    L[body & (r <= 0.85) & (y >= -0.95 * b + 14)] = p.v("body")
    return r


def table_mask(g: Grid):
    """CT table under the patient (carbon-fibre shell): in the CT, not in any label."""
    z, y, x = g.full()
    _, b = body_axes(z)
    top = -0.95 * 110.0 - 6.0 + 0.0006 * x ** 2
    return np.broadcast_to((y <= top) & (y >= top - 7.0) & (np.abs(x) < 190), g.shape)


def paint_thorax_abdomen(p: Painter, r):
    g, L = p.g, p.labels
    z, y, x = g.full()
    inner = r <= 0.83
    heart_q = sum(((c - c0) / (rr + 6.0)) ** 2 for c, c0, rr in
                  zip((x, y, z), HEART["center"], HEART["radii"]))
    apex = 325.0 - 0.012 * (np.abs(x) - 55.0) ** 2 - 0.01 * y ** 2
    mediastinum = (np.abs(x) < 22) | ((np.abs(x) < 38) & (y < -15)) | (heart_q <= 1.0)
    zr, zl = dome_right(x, y), dome_left(x, y)
    lung_r = inner & (x > 0) & (z > zr) & (z < apex) & ~mediastinum
    lung_l = inner & (x < 0) & (z > zl) & (z < apex) & ~mediastinum
    zo = oblique_fissure_z(y)
    lower_r = lung_r & (z < zo)
    L[lung_r & ~lower_r & (z >= HORIZONTAL_FISSURE_Z)] = p.v("lung_upper_lobe_right")
    L[lung_r & ~lower_r & (z < HORIZONTAL_FISSURE_Z)] = p.v("lung_middle_lobe_right")
    L[lower_r] = p.v("lung_lower_lobe_right")
    L[lung_l & (z >= zo)] = p.v("lung_upper_lobe_left")
    L[lung_l & (z < zo)] = p.v("lung_lower_lobe_left")
    under_r = (r <= 0.84) & (z <= zr - 4.0)
    under_l = (r <= 0.84) & (z <= zl - 4.0)
    dia = (r <= 0.84) & (((z > zr - 4.0) & (z <= zr) & (x >= 0)) | ((z > zl - 4.0) & (z <= zl) & (x < 0)))
    L[dia & ~mediastinum] = p.v("diaphragm")
    liver_bottom = 75.0 + 0.45 * np.maximum(0.0, 110.0 - x)
    liver = under_r & (x > -45) & (z > liver_bottom) & ~((np.abs(x) < 40) & (y < -30)) \
        & ((x > 10) | (y > -20))
    L[liver] = p.v("liver")
    ellipsoid(g, L, p.v("gallbladder"), (55.0, 50.0, 100.0), (14.0, 14.0, 28.0),
              where=lambda sl: L[sl] == p.v("liver"))
    ellipsoid(g, L, p.v("spleen"), (-95.0, -45.0, 128.0), (28.0, 45.0, 40.0),
              where=lambda sl: np.broadcast_to(under_l, L.shape)[sl])
    m, sl = ellipsoid(g, L, p.v("stomach"), (-45.0, 35.0, 125.0), (40.0, 33.0, 38.0),
                      where=lambda sl: np.broadcast_to(under_l, L.shape)[sl] & (L[sl] != p.v("spleen")))
    if m is not None:
        zz = g.coords(sl)[0]
        L[sl][m & np.broadcast_to(zz > 142.0, m.shape)] = p.v("stomach_gas")
    ellipsoid(g, L, p.v("kidney_right"), (75.0, -58.0, 70.0), (26.0, 24.0, 50.0))
    ellipsoid(g, L, p.v("kidney_left"), (-75.0, -58.0, 85.0), (26.0, 24.0, 50.0))
    ellipsoid(g, L, p.v("heart"), HEART["center"], HEART["radii"])


def paint_great_vessels(p: Painter):
    g, L = p.g, p.labels
    aorta = [((-10, 25, 215), (-5, 5, 262), 13), ((-5, 5, 262), (-22, -30, 255), 12.5),
             ((-22, -30, 255), (-25, -30, 150), 12), ((-25, -30, 150), (-22, -28, 0), 11)]
    capsules(g, L, [np.r_[a, b, r, r] for a, b, r in aorta], p.v("aorta"))
    ivc = [((25, -25, 0), (25, -25, 170), 12), ((25, -25, 170), (10, 10, 195), 12)]
    capsules(g, L, [np.r_[a, b, r, r] for a, b, r in ivc], p.v("inferior_vena_cava"))
    eso = [((-5, -30, 335), (-8, -32, 150), 7), ((-8, -32, 150), (-40, 25, 135), 7)]
    capsules(g, L, [np.r_[a, b, r, r] for a, b, r in eso], p.v("esophagus"))
    pv = [((-85, -30, 115), (-5, 5, 80), 5), ((-5, 5, 80), (35, 10, 110), 7)]
    capsules(g, L, [np.r_[a, b, r, r] for a, b, r in pv], p.v("portal_vein_and_splenic_vein"))


def paint_spine(p: Painter):
    g, L = p.g, p.labels
    for n, name in enumerate(VERTEBRAE):
        zc = TOP_RIB_Z - RIB_LEVEL_MM * n
        sl = g.box((-20, -118, zc - 10), (20, -38, zc + 10))
        if sl is None:
            continue
        z, y, x = g.coords(sl)
        dz = np.abs(z - zc)
        body = (x ** 2 + (y + 58.0) ** 2 <= 18.0 ** 2) & (dz <= 8.0)
        rc = np.sqrt(x ** 2 + (y + 85.0) ** 2)
        arch = (rc <= 14.0) & (rc > 7.0) & (dz <= 7.0)
        spinous = (np.abs(x) <= 4.0) & (y <= -95.0) & (y >= -112.0) & (dz <= 6.0)
        transverse = (np.abs(x) <= 19.0) & (np.abs(y + 85.0) <= 4.0) & (dz <= 5.0)
        L[sl][body | arch | spinous | transverse] = p.v(name)
    capsules(g, L, [np.r_[0, -85, -5, 0, -85, 340, 5, 5]], p.v("spinal_cord"))


def rib_path(n: int, side: float, npts: int = 40):
    """Centreline (npts, 3) in RAS mm of rib n (1..12) on side +1 (right) or -1 (left), and
    the index where cartilage starts (None for floating ribs)."""
    z0 = TOP_RIB_Z - RIB_LEVEL_MM * (n - 1)
    end_deg = {11: 15.0, 12: -10.0}.get(n, 70.0 if n <= 7 else 58.0)
    phi = np.radians(np.linspace(-78.0, end_deg, npts))
    frac = (phi - phi[0]) / (np.radians(70.0) - phi[0])
    z = z0 - RIB_DROP_MM * frac
    a, b = body_axes(z)
    x = side * 0.885 * a * np.cos(phi)
    y = 0.885 * b * np.sin(phi)
    head = np.array([[side * 12.0, -82.0, z0 + 2.0]])
    return np.vstack([head, np.stack([x, y, z], 1)])


def paint_ribs(p: Painter, geometry: dict):
    g, L = p.g, p.labels
    geometry["ribs"] = []
    for side, sname in ((1.0, "right"), (-1.0, "left")):
        for n in range(1, 13):
            path = rib_path(n, side)
            segs = np.c_[path[:-1], path[1:], np.full((len(path) - 1, 2), RIB_RADIUS_MM)]
            capsules(g, L, segs, p.v(f"rib_{sname}_{n}"))
            geometry["ribs"].append({"name": f"rib_{sname}_{n}", "centreline_ras": path.round(2).tolist(),
                                     "radius_mm": RIB_RADIUS_MM})
            if n <= 10:  # costal cartilage to the sternum (1-7) or the costal margin (8-10)
                e = path[-1]
                if n <= 7:  # true ribs: cartilage rises medially to its sternal notch
                    zs = 285.0 - 15.0 * (n - 1)
                    tgt = np.array([side * 12.0, 0.8 * body_axes(zs)[1], zs])
                else:  # false ribs: cartilage joins the costal margin above
                    tgt = np.array([side * 45.0, 0.8 * body_axes(e[2])[1], e[2] + 30.0])
                capsules(g, L, [np.r_[e, tgt, 3.5, 3.5]], p.v("costal_cartilages"))
    capsules(g, L, [np.r_[0, 0.83 * 110, 290, 0, 0.83 * 110, 175, 9.0, 9.0]], p.v("sternum"))
