"""Body frame of the realistic phantom: vertebral levels, skin outline and rib cage along z.

Supine adult, RAS mm (+x patient right, +y anterior, +z superior), from the fourth lumbar
vertebra (z ~ 20 mm) to the base of the neck (z ~ 450 mm). Every shape is a table of a few
anatomical knots interpolated along z (``np.interp``), scaled by the patient's ``Frame``:

- vertebral heights (body + disc): thoracic ~19-22 mm, lumbar ~36-38 mm per level in adult men
  (Gilad I, Nissan M, Spine 1986;11:154-157; Busscher I et al., Eur Spine J 2010;19:1104-1114);
- skin outline (half-width, anterior and posterior skin): chest width ~330 mm, chest depth
  ~230 mm, waist width ~310 mm, biacromial breadth ~400 mm (men) / ~360 mm (women) (ANSUR II
  anthropometric survey, Gordon CC et al., Natick/TR-15/007, 2014);
- rib cage outer surface: widest at the 8th-9th rib (~280 mm), depth ~190 mm (Kent RW et al.,
  Stapp Car Crash J 2005 / Weaver AA et al., J Biomech 2014 rib-cage morphometry).
Female frames are scaled (heights x0.95, widths x0.93, depths x0.96, shoulders x0.89 in all, thicker fat): a
compromise between ANSUR II frame ratios (stature x0.93, chest breadth x0.89) and the smaller sex
ratios of organ masses (ICRP Publication 89: liver x0.78, spleen x0.87, kidneys x0.89).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LEVELS = ["L4", "L3", "L2", "L1", "T12", "T11", "T10", "T9", "T8", "T7", "T6", "T5", "T4", "T3",
          "T2", "T1", "C7"]
# centre height (mm) of each vertebral body, reference man (175 cm)
LEVEL_Z = [20, 58, 95, 131, 165, 196, 224, 250, 275, 299, 322, 344, 365, 385, 404, 423, 441]

# skin outline knots: z, half-width, posterior skin y, anterior skin y (mm), reference man
_SKIN = np.array([
    [-10, 158, -108, 104], [60, 152, -110, 102], [130, 150, -112, 98], [200, 158, -116, 102],
    [250, 163, -118, 106], [300, 166, -118, 110], [350, 170, -116, 104], [390, 178, -112, 90],
    [415, 196, -104, 70], [435, 175, -92, 45], [460, 85, -70, 30]], float)
# rib cage outer surface knots: z, half-width A, posterior y YB, anterior y YF (mm)
_CAGE = np.array([
    [100, 122, -92, 78], [130, 128, -94, 84], [165, 133, -96, 88], [200, 138, -98, 90],
    [230, 140, -99, 90], [260, 140, -99, 86], [290, 138, -98, 80], [320, 134, -96, 72],
    [345, 128, -94, 64], [370, 120, -90, 54], [395, 108, -84, 40], [415, 90, -76, 26],
    [440, 62, -68, 12], [460, 40, -62, 4]], float)
# spine: z, vertebral body centre y, body half-width, body half-depth (mm)
_SPINE = np.array([[0, -30, 26, 20], [100, -35, 24, 18], [170, -42, 21, 16], [260, -48, 17, 14],
                   [350, -46, 15, 12], [440, -38, 14, 10]], float)


@dataclass
class Frame:
    """Scales of one patient. ``size`` multiplies every length (1.0: the 175 cm reference man);
    ``sex`` "male" | "female"; ``jitter`` small per-seed proportions (deterministic)."""
    sex: str = "male"
    size: float = 1.0
    arms: str = "down"
    sz: float = 1.0  # S-I scale
    sx: float = 1.0  # L-R scale
    sy: float = 1.0  # A-P scale
    shoulders: float = 1.0
    fat_mm: float = 14.0  # subcutaneous fat thickness at the flank
    jitter: dict = field(default_factory=dict)

    @classmethod
    def make(cls, sex: str, size: float, arms: str, rng) -> Frame:
        if sex not in ("male", "female"):
            raise ValueError(f"sex must be 'male' or 'female', not {sex!r}")
        if not 0.8 <= size <= 1.25:
            raise ValueError("size must be within 0.8-1.25 (1.0 = reference adult)")
        if arms not in ("down", "up"):
            raise ValueError(f"arms must be 'down' or 'up', not {arms!r}")
        f = 0.95 if sex == "female" else 1.0
        w = 0.93 if sex == "female" else 1.0
        dpt = 0.96 if sex == "female" else 1.0
        j = rng.uniform(-0.03, 0.03, 3)
        return cls(sex, size, arms, sz=size * f * (1 + j[0]), sx=size * w * (1 + j[1]),
                   sy=size * dpt * (1 + j[2]), shoulders=0.96 if sex == "female" else 1.0,
                   fat_mm=(22.0 if sex == "female" else 14.0) * size,
                   jitter={"dome_mm": float(rng.uniform(-8, 8)), "organ": rng.uniform(-1, 1, 16)})

    def level_z(self, name: str) -> float:
        return float(LEVEL_Z[LEVELS.index(name)] * self.sz)

    def z_top(self) -> float:
        return 452.0 * self.sz

    def skin(self, z):
        """(half-width, posterior y, anterior y) of the skin outline at heights z (mm)."""
        zz = np.asarray(z, float) / self.sz
        a = np.interp(zz, _SKIN[:, 0], _SKIN[:, 1])
        sh = np.clip((zz - 380) / 40, 0, 1) * (self.shoulders - 1) + 1
        extra = self.fat_mm - 14.0 * self.size  # fat beyond the reference man's widens the outline
        return a * self.sx * sh + extra, np.interp(zz, _SKIN[:, 0], _SKIN[:, 2]) * self.sy - 0.5 * extra, \
            np.interp(zz, _SKIN[:, 0], _SKIN[:, 3]) * self.sy + extra

    def cage(self, z):
        """(half-width A, posterior y, anterior y) of the rib cage's outer surface at z (mm)."""
        zz = np.asarray(z, float) / self.sz
        return (np.interp(zz, _CAGE[:, 0], _CAGE[:, 1]) * self.sx * 1.04,
                np.interp(zz, _CAGE[:, 0], _CAGE[:, 2]) * self.sy,
                np.interp(zz, _CAGE[:, 0], _CAGE[:, 3]) * self.sy)

    def spine(self, z):
        """(vertebral body centre y, half-width, half-depth) at z (mm)."""
        zz = np.asarray(z, float) / self.sz
        return (np.interp(zz, _SPINE[:, 0], _SPINE[:, 1]) * self.sy,
                np.interp(zz, _SPINE[:, 0], _SPINE[:, 2]) * self.size,
                np.interp(zz, _SPINE[:, 0], _SPINE[:, 3]) * self.size)

    def extent(self):
        """(lo, hi) RAS corners of the grid that holds this patient."""
        a = _SKIN[:, 1].max() * self.sx * 1.02
        half_w = a + (95.0 * self.size if self.arms == "down" else 0.0)
        return ((-half_w - 8, -130.0 * self.sy - 12, -10.0 * self.sz),
                (half_w + 8, 118.0 * self.sy + 8, self.z_top()))


def superellipse_r(x, y, a, yb, yf, n=2.4):
    """Normalised superellipse radius (1 on the outline) of points (x, y) for an outline of
    half-width a between posterior y ``yb`` and anterior y ``yf``."""
    f32 = np.float32
    a, yb, yf = (np.asarray(v, f32) for v in (a, yb, yf))
    yc, b = (yb + yf) / f32(2), (yf - yb) / f32(2)
    n = f32(n)
    return (np.abs(x / a) ** n + np.abs((y - yc) / b) ** n) ** (f32(1) / n)


def contour(a, yb, yf, t, n=2.4):
    """Points (x, y) on the superellipse at parameter angle t (rad; 0 lateral right, +pi/2
    anterior, -pi/2 posterior)."""
    yc, b = (yb + yf) / 2, (yf - yb) / 2
    c, s = np.cos(t), np.sin(t)
    return a * np.sign(c) * np.abs(c) ** (2 / n), yc + b * np.sign(s) * np.abs(s) ** (2 / n)


def catmull_rom(pts, n_per=8) -> np.ndarray:
    """Smooth centreline through control points (m, k) -> (~m*n_per, k) (centripetal ends)."""
    p = np.asarray(pts, float)
    p = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    out = []
    t = np.linspace(0, 1, n_per, endpoint=False)[:, None]
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * t ** 3))
    out.append(p[-2][None])
    return np.vstack(out)
