"""Bones of the realistic phantom: vertebrae (bodies and posterior elements), twelve rib pairs
with their costal cartilages, sternum, scapulae, clavicles and humeri. RAS mm; paints labels.

Rib course (Gray's Anatomy, 42nd ed., thoracic wall; rib morphometry: Holcombe SA et al.,
J Biomech 2016; Weaver AA et al., J Biomech 2014): each rib leaves its vertebra (head on the
body, tubercle on the transverse process), runs backwards and laterally to its angle, then
around the chest wall while descending, so its anterior end lies about 2-4 vertebral levels
below its head. Ribs 1-7 (true ribs) join the sternum through their costal cartilages (the lower
cartilages rise medially), 8-10 join the cartilage above (the costal margin), 11-12 float.
The sternal angle (rib 2) is at the T4/T5 disc, the xiphisternal joint at T9.
"""

from __future__ import annotations

import numpy as np

from .body import LEVELS, Frame, catmull_rom, contour
from .raster import capsules

RIB_RADIUS_MM = 4.5  # ribs ~8-12 mm high, ~5-7 mm thick
CARTILAGE_RADIUS_MM = 4.0
# vertical drop (mm, reference man) from the rib head to the anterior bony end, and the end's
# parameter angle on the cage outline (deg; 90 = front): longest slope for the mid ribs
RIB_DROP = {1: 28, 2: 48, 3: 62, 4: 72, 5: 82, 6: 88, 7: 92, 8: 92, 9: 90, 10: 84, 11: 62, 12: 42}
RIB_END_DEG = {1: 62, 2: 66, 3: 68, 4: 70, 5: 70, 6: 70, 7: 68, 8: 62, 9: 56, 10: 48, 11: 12, 12: -28}
# sternal attachment heights of cartilages 1-7 (reference man, mm)
STERNAL_Z = {1: 392, 2: 358, 3: 335, 4: 312, 5: 290, 6: 268, 7: 252}
STERNUM_TOP_Z, XIPHOID_Z = 398.0, 222.0


def vertebra_levels(F: Frame, z_lo: float, z_hi: float) -> list[tuple[str, float, float]]:
    """(name, centre z, level height) of the vertebrae whose centre lies in [z_lo, z_hi]."""
    zs = [F.level_z(n) for n in LEVELS]
    out = []
    for i, n in enumerate(LEVELS):
        h = (zs[min(i + 1, len(zs) - 1)] - zs[max(i - 1, 0)]) / (2 if 0 < i < len(zs) - 1 else 1)
        if z_lo <= zs[i] <= z_hi:
            out.append((f"vertebrae_{n}", zs[i], h))
    return out


def paint_spine(p, F: Frame, geometry: dict):
    g, L = p.g, p.labels
    geometry["vertebrae"] = []
    for name, zc, h in vertebra_levels(F, g.lo[2] - 10, g.z[-1] + 10):
        if name not in p.value:
            continue
        yv, w, d = (float(v) for v in F.spine(zc))
        lumbar = name.startswith("vertebrae_L")
        rc = (10.0 if lumbar else 8.0) * F.size
        yc = yv - d - rc
        sl = g.box((-w - 40, yc - rc - 45, zc - h), (w + 40, yv + d + 2, zc + h))
        if sl is None:
            continue
        z, y, x = g.coords(sl)
        dz = np.abs(z - zc)
        body = ((x / w) ** 2 + ((y - yv) / d) ** 2 <= 1) & (dz <= 0.4 * h)
        rr = np.sqrt(x ** 2 + (y - yc) ** 2)
        ring = (rr >= rc) & (rr <= rc + 6.0 * F.size) & (dz <= 0.3 * h) & (y <= yv - d + 4)
        L[sl][body | ring] = p.v(name)
        tip = rc + (22.0 if lumbar else 20.0) * F.size
        drop = 0.15 * h if lumbar else 0.9 * h  # thoracic spinous processes slope steeply down
        tx = w + (26.0 if lumbar else 12.0) * F.size
        rows = [np.r_[0, yc - rc - 2, zc, 0, yc - tip, zc - drop, 4.0, 3.5]]
        for s in (1.0, -1.0):
            rows.append(np.r_[s * rc, yc + 2, zc, s * tx, yc - (0.0 if lumbar else 6.0), zc, 4.5, 4.0])
        capsules(g, L, rows, p.v(name))
        geometry["vertebrae"].append({"name": name, "z": round(zc, 2), "body_centre_y": round(yv, 2),
                                      "canal_centre_y": round(yc, 2)})
    zs = np.linspace(g.lo[2] - 5, g.z[-1] + 5, 24)
    yv, w, d = F.spine(zs)
    rc = np.where(zs < 0.5 * (F.level_z("L1") + F.level_z("T12")), 10.0, 8.0) * F.size  # as the canal above
    yc = yv - d - rc
    pts = np.c_[np.zeros_like(zs), yc, zs]
    capsules(g, L, np.c_[pts[:-1], pts[1:], np.full((len(zs) - 1, 2), 4.5 * F.size)], p.v("spinal_cord"))


def sternum_point(F: Frame, z):
    """(y of the sternum's centre, half-width) at heights z (mm) (the sternum inclines forward)."""
    zr = np.asarray(z, float) / F.sz
    _, _, yf = F.cage(z)
    hw = np.interp(zr, [XIPHOID_Z, 245, 260, 350, 362, 380, STERNUM_TOP_Z],
                   [6, 10, 14, 16, 26, 30, 24]) * F.sx
    return yf - 7.0 * F.sy, hw


def rib_path(F: Frame, n: int, side: float, npts: int = 40):
    """Centreline (m, 3) RAS mm of rib n (1-12), side +1 right / -1 left, head to anterior end,
    and the centreline of its costal cartilage ((k, 3), empty for ribs 11-12)."""
    zh = F.level_z(f"T{n}")
    yv, w, d = (float(v) for v in F.spine(zh))
    yc = yv - d - 8.0 * F.size
    head = np.array([side * (w + 3.0), yv - 0.5 * d, zh])
    tub = np.array([side * (w + 16.0 * F.size), yc + 2.0, zh - 2.0])
    t0, t1 = np.radians(-68.0), np.radians(RIB_END_DEG[n])
    t = np.linspace(t0, t1, npts)
    drop = RIB_DROP[n] * F.sz
    zt = zh - 4.0 - (drop - 4.0) * ((t - t0) / (t1 - t0)) ** 1.1
    a, yb, yf = F.cage(zt)
    r = RIB_RADIUS_MM
    x, y = contour(a - r, yb + r, yf - r, t)
    path = np.vstack([head, tub, np.c_[side * x, y, zt]])
    if n >= 11:
        return path, np.zeros((0, 3))
    end = path[-1]
    if n <= 7:
        zs = STERNAL_Z[n] * F.sz
        ys, hw = sternum_point(F, zs)
        tgt = np.array([side * float(hw), float(ys), zs])
    else:  # joins the cartilage above at the costal margin
        tgt = None
    if tgt is None:
        return path, np.zeros((0, 3))
    mid_z = 0.5 * (end[2] + tgt[2]) if n >= 5 else tgt[2] - 0.3 * (tgt[2] - end[2])
    a, yb, yf = F.cage(mid_z)
    mx, my = contour(a - r, yb + r, yf - r, np.radians(0.5 * (RIB_END_DEG[n] + 90.0)))
    cart = catmull_rom([end, [side * float(mx), float(my), mid_z], tgt], 8)
    return path, cart


def paint_ribs(p, F: Frame, geometry: dict):
    g, L = p.g, p.labels
    geometry["ribs"] = []
    cart_rows = []
    for side, sname in ((1.0, "right"), (-1.0, "left")):
        prev = None
        for n in range(1, 13):
            path, cart = rib_path(F, n, side)
            if 8 <= n <= 10 and prev is not None and len(prev):
                end = path[-1]
                j = int(np.argmin(np.linalg.norm(prev[len(prev) // 3:] - end, axis=1))) + len(prev) // 3
                tgt = prev[max(j - 2, 0)]
                a, yb, yf = F.cage(end[2] + 0.5 * (tgt[2] - end[2]))
                mid = 0.5 * (end + tgt)
                cart = catmull_rom([end, mid, tgt], 6)
            taper = np.linspace(RIB_RADIUS_MM, RIB_RADIUS_MM * (0.55 if n >= 11 else 0.9), len(path))
            if n == 1:
                taper[:] = RIB_RADIUS_MM * 1.1
            capsules(g, L, np.c_[path[:-1], path[1:], taper[:-1], taper[1:]], p.v(f"rib_{sname}_{n}"))
            if len(cart):
                cart_rows.append(np.c_[cart[:-1], cart[1:], np.full((len(cart) - 1, 2), CARTILAGE_RADIUS_MM)])
            geometry["ribs"].append({"name": f"rib_{sname}_{n}", "centreline_ras": path.round(2).tolist(),
                                     "cartilage_ras": cart.round(2).tolist(), "radius_mm": RIB_RADIUS_MM})
            prev = cart if len(cart) else prev
    for rows in cart_rows:
        capsules(g, L, rows, p.v("costal_cartilages"), protect=None)
    # sternum: manubrium, body, xiphoid; an inclined plate ~14 mm thick
    zt, zb = STERNUM_TOP_Z * F.sz, XIPHOID_Z * F.sz
    sl = g.box((-40, -20, zb - 2), (40, 140, zt + 2))
    if sl is not None:
        z, y, x = g.coords(sl)
        ys, hw = sternum_point(F, z)
        th = np.where(z < 240 * F.sz, 4.0, 7.0)
        m = (np.abs(x) <= hw) & (np.abs(y - ys) <= th) & (z >= zb) & (z <= zt)
        L[sl][m] = p.v("sternum")


def paint_shoulder_girdle(p, F: Frame, arms: str):
    """Scapulae (a plate on the posterior chest wall over ribs 2-7 with its spine, acromion and
    glenoid), clavicles (S-shaped, sternum to acromion) and humeri."""
    g, L = p.g, p.labels
    S = np.array([F.sx * F.shoulders, F.sy, F.sz])
    for side, sname in ((1.0, "right"), (-1.0, "left")):
        glen = np.array([side * 160, -28, 405]) * S
        acrom = np.array([side * 180, -42, 428]) * S
        # scapular body: a thin shell 14-20 mm outside the cage, between medial border and glenoid
        sl = g.box((min(side * 50, side * 160) * S[0], -140, 270 * F.sz), (max(side * 50, side * 160) * S[0], 0, 420 * F.sz))
        if sl is not None:
            z, y, x = g.coords(sl)
            a, yb, yf = F.cage(z)
            from .body import superellipse_r
            off = 16.0 * F.size
            r = superellipse_r(x, y, a + off, yb - off, yf + off)
            ax = np.abs(x) / S[0]
            zr = z / F.sz
            medial = 62.0 + 0.15 * np.maximum(0, 300 - zr)  # medial border: vertical, inferior angle at z~280
            lateral = 62.0 + (zr - 280.0) * 0.95  # lateral border rises to the glenoid
            plate = (np.abs(r - 1.0) * (a + off) <= 3.0) & (y < yb + 0.45 * (yf - yb)) & \
                (ax >= medial) & (ax <= lateral) & (zr >= 280) & (zr <= 400)
            L[sl][plate] = p.v(f"scapula_{sname}")
        spine_s = np.array([side * 70, -110, 385]) * S
        a_top, yb_top, _ = F.cage(400 * F.sz)
        capsules(g, L, [np.r_[spine_s, acrom, 4.0, 5.0],
                        np.r_[np.array([side * 128, -88, 380]) * S, glen, 7.0, 9.0]], p.v(f"scapula_{sname}"))
        cl = catmull_rom(np.array([[side * 22, 40, 398], [side * 70, 42, 404], [side * 120, 18, 418],
                                   [side * 176, -34, 428]]) * S, 6)
        capsules(g, L, np.c_[cl[:-1], cl[1:], np.full((len(cl) - 1, 2), 6.5 * F.size)], p.v(f"clavicula_{sname}"))
        hum_head = glen + np.array([side * 22, 0, -4]) * S
        if arms == "down":
            elbow = np.array([side * (F.skin(90 * F.sz)[0] + 52 * F.size), -30 * F.sy, 90 * F.sz])
        else:
            elbow = hum_head + np.array([side * -30, 10, 320]) * S
        rows = [np.r_[hum_head, hum_head, 24.0 * F.size, 24.0 * F.size],
                np.r_[hum_head, elbow, 13.0 * F.size, 10.0 * F.size]]
        capsules(g, L, rows, p.v(f"humerus_{sname}"))
