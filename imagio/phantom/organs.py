"""Soft tissues of the realistic phantom: body wall, arms, heart and great vessels, lungs with
five lobes, diaphragm, and the upper-abdominal organs. RAS mm; paints labels in place.

Positions are those of a reference adult on contrast CT (Gray's Anatomy, 42nd ed.; Netter,
Atlas of Human Anatomy, 7th ed.), given for the 175 cm reference man and scaled by the `Frame`:
right diaphragmatic dome about one interspace higher than the left, oblique fissures from the
T4-T5 level posteriorly to the anterior diaphragm, horizontal fissure at the 4th costal
cartilage, liver under the right dome down to the L2-L3 level laterally, spleen along ribs 9-11,
kidneys at T12-L3 (the right one ~15 mm lower), pancreas from the duodenal C-loop to the splenic
hilum at L1-L2, aortic bifurcation at L4.
"""

from __future__ import annotations

import edt
import numpy as np

from .body import Frame, catmull_rom, superellipse_r
from .raster import capsules, ellipsoid


class Shapes:
    """Small painting helpers bound to a painter and a frame (reference-man mm -> patient mm)."""

    def __init__(self, p, F: Frame):
        self.p, self.F, self.g = p, F, p.g
        self.S = np.array([F.sx, F.sy, F.sz])
        self.sub: dict[str, np.ndarray] = {}  # CT-only sub-regions (blood pools, gas)

    def P(self, *pts):
        return np.asarray(pts, float) * self.S

    def tube(self, name, ctrl, only=None, n_per=6, mask_only=False):
        """Paint a smooth tube through control rows (x, y, z, radius) in reference mm."""
        c = np.asarray(ctrl, float)
        c = np.c_[c[:, :3] * self.S, c[:, 3] * self.F.size]
        pts = catmull_rom(c, n_per)
        rows = np.c_[pts[:-1, :3], pts[1:, :3], pts[:-1, 3], pts[1:, 3]]
        if only is None and not mask_only:
            capsules(self.g, self.p.labels, rows, self.p.v(name), min_radius=0.7 * self.g.spacing)
            return None
        tmp = np.zeros(self.g.shape, np.uint8)
        capsules(self.g, tmp, rows, 1, min_radius=0.7 * self.g.spacing)
        m = tmp.view(bool)
        if only is not None:  # restrict within the tubes' bounding box only
            r = rows[:, 6:8].max() + self.g.spacing
            sl = self.g.box(np.minimum(rows[:, :3], rows[:, 3:6]).min(0) - r,
                            np.maximum(rows[:, :3], rows[:, 3:6]).max(0) + r)
            if sl is not None:
                m[sl] &= np.isin(self.p.labels[sl], [self.p.v(n) for n in only])
        if not mask_only:
            self.p.labels[m] = self.p.v(name)
        return m

    def ell(self, name, c, r, R=None, only=None):
        c = np.asarray(c, float) * self.S
        r = np.asarray(r, float) * self.F.size
        L = self.p.labels
        where = None if only is None else (lambda sl: np.isin(L[sl], [self.p.v(n) for n in only]))
        return ellipsoid(self.g, L, self.p.v(name), c, r, rotation=R, where=where)


def rot(axis_deg: dict) -> np.ndarray:
    """Rotation matrix from successive rotations about x, y, z (degrees)."""
    R = np.eye(3)
    for ax, deg in axis_deg.items():
        a = np.radians(deg)
        c, s = np.cos(a), np.sin(a)
        i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[ax]
        M = np.eye(3)
        M[i, i], M[i, j], M[j, i], M[j, j] = c, -s, s, c
        R = M @ R
    return R


def dome_z(F: Frame, x, y):
    """Height (mm) of the diaphragm's upper surface under point (x, y): right dome higher."""
    xr, yr = np.asarray(x) / F.sx, np.asarray(y) / F.sy
    top = np.where(xr >= 0, 222.0, 207.0) * F.sz + F.jitter.get("dome_mm", 0.0)
    u2 = ((np.abs(xr) - 62.0) / 80.0) ** 2 + ((yr - 10.0) / 75.0) ** 2
    post = np.clip((-yr - 20.0) / 70.0, 0, 1.3)
    z = top - 40.0 * F.sz * u2 - 28.0 * F.sz * post ** 2
    return np.maximum(z, 142.0 * F.sz)


def apex_z(F: Frame, x, y):
    xr, yr = np.asarray(x) / F.sx, np.asarray(y) / F.sy
    return (442.0 - 0.012 * (np.abs(xr) - 48.0) ** 2 - 0.012 * (yr + 25.0) ** 2) * F.sz


def oblique_fissure_z(F: Frame, x, y):
    """Oblique fissure height (mm): from ~T4 posteriorly down to the anterior diaphragm; the left
    one slightly higher and steeper."""
    xr, yr = np.asarray(x) / F.sx, np.asarray(y) / F.sy
    z0 = np.where(xr >= 0, 350.0, 360.0)
    slope = np.where(xr >= 0, 0.80, 0.86)
    return (z0 - slope * (yr + 95.0) + 0.004 * (np.abs(xr) - 75.0) ** 2) * F.sz


def horizontal_fissure_z(F: Frame, x, y):
    yr = np.asarray(y) / F.sy
    return (314.0 - 0.10 * yr) * F.sz


def paint_body_wall(p, F: Frame, sh: Shapes):
    """Skin, subcutaneous fat, muscle and the cavities (label ``body``); arms; female breasts."""
    g, L = p.g, p.labels
    z, y, x = g.full()
    a, yb, yf = (v[:, None, None] for v in F.skin(g.z))
    body = (superellipse_r(x, y, a, yb, yf, 2.3) <= 1.0) & (y >= yb + 0.04 * (yf - yb))
    if F.sex == "female":
        for s in (1.0, -1.0):
            c = sh.P(s * 78, 0, 300)
            c[1] = float(F.skin(c[2])[2]) - 12.0
            m, sl = ellipsoid(g, np.zeros(g.shape, np.uint8), 1, c, np.array([62, 48, 58]) * F.size)
            if m is not None:
                body[sl] |= m
    arm = np.zeros(g.shape, np.uint8)
    for s in (1.0, -1.0):
        sh_x = F.sx * F.shoulders
        if F.arms == "down":  # upper arm along the flank, a few mm off the trunk
            c = np.array([[s * 178 * sh_x, -25 * F.sy, 418 * F.sz, 52 * F.size]]
                         + [[s * (float(F.skin(zz * F.sz)[0]) + rr * F.size + 4), yy * F.sy, zz * F.sz, rr * F.size]
                            for zz, yy, rr in ((300, -28, 47), (90, -30, 40), (-40, 0, 36))])
        else:
            c = np.array([[s * 170 * sh_x, -25 * F.sy, 415 * F.sz, 52 * F.size],
                          [s * 150 * sh_x, -20 * F.sy, 470 * F.sz, 48 * F.size],
                          [s * 135 * sh_x, -10 * F.sy, 560 * F.sz, 45 * F.size]])
        pts = catmull_rom(c, 8)
        capsules(g, arm, np.c_[pts[:-1, :3], pts[1:, :3], pts[:-1, 3], pts[1:, 3]], 1)
    body |= arm.view(bool)
    depth = edt.edt(body, anisotropy=(g.spacing,) * 3, black_border=False)
    skin_t = max(2.0, g.spacing)
    fat_t = F.fat_mm * np.where(g.z < 200 * F.sz, 1.25, 0.8)[:, None, None]
    A, YB, YF = (v[:, None, None] for v in F.cage(g.z))
    kz = int(np.searchsorted(g.z, 178.0 * F.sz))  # thorax (rib cage) above, abdomen below
    cavity = np.empty(g.shape, bool)
    cavity[kz:] = superellipse_r(x, y, A[kz:] - 9.0, YB[kz:] + 9.0, YF[kz:] - 9.0) <= 1.0
    cavity[:kz] = superellipse_r(x, y, (a - fat_t)[:kz] - 14.0, (yb + fat_t)[:kz] + 16.0, (yf - fat_t)[:kz] - 12.0) <= 1.0
    cavity &= ~arm.view(bool) & (z < apex_z(F, x, y) + 12)
    L[body] = p.v("skin")
    L[body & (depth > skin_t)] = p.v("subcutaneous_fat")
    L[body & (depth > skin_t + fat_t)] = p.v("muscle")
    L[body & cavity & (depth > skin_t + fat_t + 6)] = p.v("body")
    del depth
    # paraspinal (autochthon) and psoas muscles along the spine
    zs = np.linspace(g.lo[2] - 5, 430 * F.sz, 30)
    yv, w, d = F.spine(zs)
    for s, sname in ((1.0, "right"), (-1.0, "left")):
        pts = np.c_[s * (w + 20.0 * F.size), yv - d - 22.0 * F.size, zs]
        rows = np.c_[pts[:-1], pts[1:], np.full((len(zs) - 1, 2), 21.0 * F.size)]
        tmp = np.zeros(g.shape, np.uint8)
        capsules(g, tmp, rows, 1)
        L[tmp.view(bool) & np.isin(L, [p.v("muscle"), p.v("body")])] = p.v(f"autochthon_{sname}")
        zt = F.level_z("T12")
        zp = np.linspace(g.lo[2] - 5, zt, 12)
        yv2, w2, _ = F.spine(zp)
        rad = (6.0 + 19.0 * np.clip((zt - zp) / (zt - F.level_z("L4")), 0, 1)) * F.size
        pts = np.c_[s * (w2 + rad + 2), yv2 + 4, zp]
        capsules(g, L, np.c_[pts[:-1], pts[1:], rad[:-1], rad[1:]], p.v(f"iliopsoas_{sname}"))
    return cavity


def paint_mediastinum(p, F: Frame, sh: Shapes, geometry: dict):
    """Heart with chambers, aorta and its arch branches, venae cavae, pulmonary trunk and
    arteries, pulmonary veins, esophagus. Returns the landmarks that trees grow from."""
    body_only = ["body"]
    # heart: long axis from the base (right, posterior, superior) to the apex (left, anterior, inferior)
    base, apex = sh.P(5, 12, 292), sh.P(-78, 58, 222)
    ax = (apex - base) / np.linalg.norm(apex - base)
    e2 = np.cross(ax, [0, 0, 1.0])
    e2 /= np.linalg.norm(e2)
    e3 = np.cross(ax, e2)
    R = np.c_[ax, e2, e3]
    c = base + 0.5 * (apex - base)
    mid = c / sh.S
    hk = 0.91 if F.sex == "female" else 1.0  # heart mass x0.74 in women (ICRP 89): radii x0.91
    sh.ell("heart", mid, np.array([68, 55, 48]) * hk, R, only=body_only)  # ~0.8 L (ICRP 89: 330 g wall + 510 g blood)
    chambers = {
        "ventricle_left": (mid + np.array([-12, -8, -4]), (46, 25, 25), R),
        "ventricle_right": (mid + np.array([15, 24, -12]), (44, 16, 28), R),
        "atrium_left": ((-8, -12, 290), (26, 18, 20), None),
        "atrium_right": ((38, 14, 272), (24, 22, 28), None),
    }
    for name, (cc, rr, RR) in chambers.items():
        if name.startswith("atrium"):
            sh.ell("heart", cc, (np.asarray(rr) + 4) * hk, RR, only=body_only)
    heart = p.labels == p.v("heart")
    for name, (cc, rr, RR) in chambers.items():
        m, sl = ellipsoid(p.g, np.zeros(p.g.shape, np.uint8), 1, np.asarray(cc) * sh.S,
                          np.asarray(rr) * F.size * hk, rotation=RR)
        if m is not None:
            full = np.zeros(p.g.shape, bool)
            full[sl] = m
            sh.sub["heart_" + name] = full & heart
    geometry["heart"] = {"base_ras": base.round(2).tolist(), "apex_ras": apex.round(2).tolist(),
                         "chambers": {k: np.round(np.asarray(v[0]) * sh.S, 2).tolist() for k, v in chambers.items()}}
    # aorta: root, ascending, arch at T4 (over the left main bronchus), descending left of the spine
    zb = F.level_z("L4")
    desc = []
    for zr in (330, 290, 250, 200, 165, 131, 95, 58):
        yv, w, d = F.spine(zr * F.sz)
        xr = -22.0 if zr > 200 else (-14.0 if zr > 150 else -6.0)
        desc.append([xr, float(yv) / F.sy + float(d) / F.sy + (6 if zr > 170 else 12), zr,
                     12.5 if zr > 200 else (11.5 if zr > 140 else 10.0)])
    aorta = [[0, 18, 285, 15], [8, 28, 315, 16], [8, 24, 350, 15], [0, 10, 372, 14], [-16, -12, 374, 13],
             [-24, -36, 356, 12.5]] + desc + [[-4, float(F.spine(zb)[0]) / F.sy + 30, zb / F.sz, 9.5],
                                              [-6, 0, -20, 9]]
    aorta[-1][1] = aorta[-2][1]
    sh.tube("aorta", aorta, only=body_only + ["heart", "autochthon_left", "iliopsoas_left", "iliopsoas_right"])
    sh.tube("brachiocephalic_trunk", [[4, 12, 372, 6.5], [14, 6, 398, 6.0], [20, 5, 410, 5.5]], only=body_only)
    sh.tube("common_carotid_artery_right", [[20, 5, 410, 4.2], [26, 4, 470, 4.0]])
    sh.tube("subclavian_artery_right", [[20, 5, 410, 4.5], [60, -6, 425, 4.5], [110, -15, 418, 4.2]],
            only=body_only + ["muscle", "subcutaneous_fat"])
    sh.tube("common_carotid_artery_left", [[-8, 6, 375, 4.2], [-18, 4, 410, 4.0], [-24, 4, 470, 4.0]])
    sh.tube("subclavian_artery_left", [[-18, -10, 374, 4.8], [-32, -12, 410, 4.6], [-70, -12, 425, 4.5],
                                       [-110, -15, 418, 4.2]], only=body_only + ["muscle", "subcutaneous_fat"])
    # veins
    sh.tube("brachiocephalic_vein_left", [[-100, 0, 418, 6], [-55, 14, 410, 7], [-15, 30, 392, 7], [24, 22, 384, 8]],
            only=body_only + ["muscle", "subcutaneous_fat"])
    sh.tube("brachiocephalic_vein_right", [[100, 0, 418, 6], [55, 10, 410, 7], [26, 20, 386, 8]],
            only=body_only + ["muscle", "subcutaneous_fat"])
    sh.tube("superior_vena_cava", [[26, 20, 386, 10], [30, 18, 340, 10.5], [34, 16, 300, 10.5]],
            only=body_only + ["heart"])
    ivc_pts = []
    for zr in (-20, 20, 58, 95, 131, 165):
        yv = float(F.spine(zr * F.sz)[0]) / F.sy
        ivc_pts.append([24, yv + 24, zr, 11])
    ivc_pts += [[28, -18, 200, 12], [34, 4, 240, 13], [36, 12, 258, 13]]
    sh.tube("inferior_vena_cava", ivc_pts, only=body_only + ["heart", "iliopsoas_right"])
    # pulmonary trunk from the right-ventricular outflow, left and right pulmonary arteries
    sh.tube("pulmonary_artery", [[-6, 52, 280, 13], [-14, 38, 312, 14], [-14, 16, 330, 13.5]], only=body_only + ["heart"])
    sh.tube("pulmonary_artery", [[-14, 16, 330, 11], [-38, 6, 340, 10.5], [-58, -8, 332, 9.5]], only=body_only)
    sh.tube("pulmonary_artery", [[-14, 16, 330, 11], [10, 6, 326, 10.5], [40, 0, 318, 10], [58, -2, 312, 9]],
            only=body_only)
    veins = {"right_superior": [[16, -4, 296, 7], [42, 8, 302, 6.5], [58, 14, 306, 6]],
             "right_inferior": [[14, -16, 282, 7], [40, -18, 276, 6.5], [56, -22, 272, 6]],
             "left_superior": [[-28, -6, 300, 7], [-52, 6, 310, 6.5], [-64, 10, 314, 6]],
             "left_inferior": [[-26, -18, 284, 7], [-50, -22, 278, 6.5], [-62, -26, 274, 6]]}
    for ctrl in veins.values():
        sh.tube("pulmonary_vein", ctrl, only=body_only)
    # esophagus: behind the trachea and the left atrium, through the hiatus to the cardia
    eso = []
    for zr in (460, 420, 380, 340, 300, 260):
        yv, w, d = F.spine(zr * F.sz)
        eso.append([-4 if zr > 300 else -8, (float(yv) + float(d)) / F.sy + 9, zr, 8])
    eso += [[-16, -20, 222, 8], [-28, -14, 200, 9]]
    sh.tube("esophagus", eso, only=body_only)
    hila = {"right": sh.P(58, -2, 312), "left": sh.P(-58, -8, 332)}
    return {"hila": hila, "veins": {k: sh.P(*v[-1][:3]) for k, v in veins.items()}}


def paint_lungs(p, F: Frame, sh: Shapes, cavity):
    """Lungs inside the rib cage, above the domes, lateral to the mediastinum, cut into lobes."""
    g, L = p.g, p.labels
    zlo, zhi = 140.0 * F.sz, g.z[-1]
    sl = g.box((g.lo[0], g.lo[1], zlo), (g.z.max() * 0 + abs(g.lo[0]), 200, zhi))
    z, y, x = g.coords(sl)
    box = L[sl]
    med_vals = [p.v(n) for n in p.names if n in MEDIASTINAL]
    med = np.isin(box, med_vals)
    # close the mediastinum (fat between its organs): dilate then erode by 9 mm
    r = 5.0
    dil = edt.edt(~med, anisotropy=(g.spacing,) * 3, black_border=False) <= r
    closed = edt.edt(dil, anisotropy=(g.spacing,) * 3, black_border=False) > r
    xm = -6.0 * F.sx
    upper_ant = (z > 330 * F.sz) & (y > -10 * F.sy)
    # two pleural cavities never meet: at least the ~4-6 mm of the junction lines between them
    band = np.abs(x - xm) < np.where(upper_ant, 12.0, 3.0) * F.sx
    lung = cavity[sl] & (box == p.v("body")) & ~closed & ~band & (z > dome_z(F, x, y) + 4.0) \
        & (z < apex_z(F, x, y))
    dia = cavity[sl] & (box == p.v("body")) & ~closed & (z > dome_z(F, x, y)) & (z <= dome_z(F, x, y) + 4.0)
    box[dia] = p.v("diaphragm")
    fat = np.zeros(g.shape, bool)  # the thorax's remaining soft tissue is mediastinal/pleural fat
    fat[sl] = (box == p.v("body")) & (z > dome_z(F, x, y) + 4.0) & ~lung
    sh.sub["fat_mediastinal"] = fat
    right = x > xm
    lower = z < oblique_fissure_z(F, x, y)
    upper_r = z >= horizontal_fissure_z(F, x, y)
    box[lung & right & lower] = p.v("lung_lower_lobe_right")
    box[lung & right & ~lower & upper_r] = p.v("lung_upper_lobe_right")
    box[lung & right & ~lower & ~upper_r] = p.v("lung_middle_lobe_right")
    box[lung & ~right & lower] = p.v("lung_lower_lobe_left")
    box[lung & ~right & ~lower] = p.v("lung_upper_lobe_left")


MEDIASTINAL = {"heart", "aorta", "superior_vena_cava", "inferior_vena_cava", "pulmonary_artery", "esophagus",
               "brachiocephalic_trunk", "brachiocephalic_vein_left", "brachiocephalic_vein_right",
               "common_carotid_artery_left", "common_carotid_artery_right", "pulmonary_vein", "trachea"}


def paint_abdomen(p, F: Frame, sh: Shapes, geometry: dict, rng):
    """Liver (with Couinaud segments in ``geometry``), gallbladder, spleen, kidneys, stomach,
    pancreas, duodenum, small bowel, colon, portal and splenic veins. Returns the landmarks."""
    g, L = p.g, p.labels
    J = F.jitter["organ"] * 4.0
    # pancreas: head in the duodenal C-loop, neck over the portal confluence, tail to the splenic hilum
    sh.tube("pancreas", [[36, 8, 98, 18], [12, 20, 112, 13], [-20, 16, 124, 13], [-58, -8, 140, 11],
                         [-84, -26, 152, 8]], only=["body"])
    sh.tube("duodenum", [[14, 38, 122, 10], [44, 24, 118, 13], [56, 6, 96, 13], [48, 4, 70, 13],
                         [12, 6, 62, 12], [-22, 8, 72, 12], [-26, 12, 98, 11]], only=["body"])
    # splenic vein behind the pancreas to the portal confluence; main portal vein to the porta hepatis
    sh.tube("portal_vein_and_splenic_vein", [[-82, -30, 152, 4.5], [-50, -14, 136, 5], [-18, 6, 122, 5.5],
                                             [6, 10, 118, 7], [24, 4, 142, 7.5], [34, 0, 164, 7]],
            only=["body", "liver", "pancreas"])
    # liver: everything under the right dome and over the left lobe's wedge, above its lower edge
    sl = g.box((-120 * F.sx, g.lo[1], 20 * F.sz), (-g.lo[0], 130, 270 * F.sz))
    z, y, x = g.coords(sl)
    xr, yr, zr = x / F.sx, y / F.sy, z / F.sz
    bottom = 20.0 + 0.75 * np.clip(120.0 - xr, 0, 110) + 0.3 * np.maximum(0, 25.0 - xr) + 0.2 * np.maximum(0, -yr - 30) + J[0]
    left_edge = -95.0 + 0.45 * np.maximum(0, 180.0 - zr) + 0.3 * np.maximum(0, -yr)  # left lobe anterior, thin
    top = dome_z(F, x, y) - 1.0
    box = L[sl]
    liver = (box == p.v("body")) & (zr > bottom) & (z < top) & (xr > left_edge) & \
        ~((xr < 30) & (yr < -40)) & (zr < 265)
    box[liver] = p.v("liver")
    # IVC and caudate: the IVC runs in the liver's bare area (painted over it)
    ivc_xy = sh.P(28, -18, 0)[:2]
    gb = sh.P(46 + J[1], 42, 128)
    sh.ell("gallbladder", gb / sh.S, (14, 14, 34), rot({"x": -35.0, "y": 15.0}))
    # Couinaud segments: hepatic-vein planes (vertical through the IVC) and the portal plane
    zport = 168.0 * F.sz
    geometry["liver"] = {"ivc_xy": ivc_xy.round(2).tolist(), "gallbladder_ras": gb.round(2).tolist(),
                         "portal_plane_z": round(zport, 2),
                         "planes": {"right_hepatic_vein": [1.0, 0.35], "middle_hepatic_vein": [0.25, 1.0],
                                    "umbilical_fissure": [-0.45, 1.0]}}
    # hepatic veins along their planes, from the IVC confluence at the top of the liver
    conf = [28, -12, 222]
    for tip in ([118, 25, 150], [50, 62, 130], [-30, 55, 175]):
        sh.tube("hepatic_vein", [conf + [6.5], list(np.add(conf, tip) / 2) + [5.0], tip + [2.5]],
                only=["liver"])
    # spleen: along ribs 9-11, posterolateral, concave hilum
    sp = np.array([-100 + J[2], -36, 156])
    m, s2 = sh.ell("spleen", sp, (82, 56, 36), rot({"x": 35.0, "z": 35.0}), only=["body"])
    if m is not None:
        zz, yy, xx = g.coords(s2)
        hil = sh.P(*(sp + [38, 36, 0]))
        cut = (xx - hil[0]) ** 2 + (yy - hil[1]) ** 2 + (zz - hil[2]) ** 2 < (30 * F.size) ** 2
        sub = L[s2]
        sub[m & cut] = p.v("body")
        sub[m & (zz > dome_z(F, xx, yy) - 1)] = p.v("body")
    # kidneys: 11 x 6 x 4.5 cm, upper poles medial and posterior, hilum anteromedial; right lower
    for s, sname, zc in ((1.0, "right", 108.0), (-1.0, "left", 122.0)):
        yv = float(F.spine(zc * F.sz)[0]) / F.sy
        c = np.array([s * 74, yv - 12, zc + J[3]])
        Rk = rot({"z": s * -30.0, "y": s * -12.0, "x": 12.0})
        m, s2 = sh.ell(f"kidney_{sname}", c, (30, 22, 55), Rk, only=["body", "liver", "muscle", "spleen"])
        if m is not None:
            zz, yy, xx = g.coords(s2)
            hil = sh.P(*(c + [-s * 26, 14, 0]))
            cut = ((xx - hil[0]) / 14) ** 2 + ((yy - hil[1]) / 12) ** 2 + ((zz - hil[2]) / 18) ** 2 < F.size ** 2
            L[s2][m & cut] = p.v("body")
    # stomach: fundus under the left dome, body, antrum crossing to the pylorus
    sto = [[-26, -18, 205, 10], [-52, -14, 218, 30], [-70, 10, 190, 32], [-58, 40, 152, 28],
           [-22, 52, 126, 20], [14, 38, 122, 10]]
    m = sh.tube("stomach", sto, only=["body", "liver"], mask_only=True)
    z3, y3, x3 = g.full()
    m &= z3 < dome_z(F, x3, y3) - 2
    L[m] = p.v("stomach")
    gas = m & (y3 > 48.0 * F.sy)  # supine: gas rises anteriorly
    L[gas] = p.v("stomach_gas")
    porta = sh.P(34, 0, 164)
    # colon: ascending, hepatic flexure, transverse, splenic flexure, descending
    col = [[88, -10, -20, 22], [92, 0, 60, 24], [86, 22, 108, 22], [30, 70, 96, 21], [-40, 70, 104, 21],
           [-92, 18, 160, 20], [-98, -14, 110, 20], [-96, -8, 20, 19], [-92, 0, -20, 19]]
    m = sh.tube("colon", col, only=["body"], mask_only=True)
    L[m] = p.v("colon")
    sh.sub["colon_gas"] = m & (y3 > 45.0 * F.sy)  # supine: gas in the anterior transverse colon
    # small bowel: a seeded loop of jejunum/ileum in the lower abdomen
    k = 12
    t = np.linspace(0, 1, k)
    cx = 60 * np.cos(7 * t + rng.uniform(0, 1)) * (1 - 0.3 * t)
    cy = 25 + 30 * np.sin(5 * t + rng.uniform(0, 1))
    cz = 90 - 80 * t + rng.uniform(-8, 8, k)
    sb = np.c_[cx, cy, cz, np.full(k, 13.0)]
    sb[0] = [-26, 12, 98, 11]
    m = sh.tube("small_bowel", sb, only=["body"], mask_only=True)
    L[m] = p.v("small_bowel")
    return {"porta": porta, "hepatic_confluence": sh.P(*conf), "gallbladder": gb}


def couinaud_segment(F: Frame, geometry: dict, pts) -> np.ndarray:
    """Couinaud segment number (1-8) of RAS points in the liver: the right, middle and left
    hepatic veins and the umbilical fissure divide it into vertical sectors, the portal plane
    divides each into superior and inferior segments, the caudate (1) wraps the IVC (Couinaud C,
    Le foie, 1957; Bismuth H, World J Surg 1982;6:3-9)."""
    lv = geometry["liver"]
    p = np.atleast_2d(np.asarray(pts, float))
    dx, dy = p[:, 0] - lv["ivc_xy"][0], p[:, 1] - lv["ivc_xy"][1]
    side = {k: dx * v[1] - dy * v[0] for k, v in lv["planes"].items()}  # > 0: right/posterior of the plane
    sup = p[:, 2] >= lv["portal_plane_z"]
    seg = np.where(side["middle_hepatic_vein"] > 0,
                   np.where(side["right_hepatic_vein"] > 0, np.where(sup, 7, 6), np.where(sup, 8, 5)),
                   np.where(side["umbilical_fissure"] > 0, 4, np.where(sup, 2, 3)))
    caud = (np.hypot(dx, dy) < 32 * F.size) & (dx < 5) & (dy > -5) & (np.abs(p[:, 2] - lv["portal_plane_z"] - 15) < 30)
    return np.where(caud, 1, seg)
