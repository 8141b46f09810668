"""Branching tube trees (airways, vessels) grown inside a region, deterministically.

Each branch splits in two; children taper by Murray's law (r_child ~ r_parent * 2^(-1/3) for a
symmetric split; the minor child thinner) and are about three diameters long (length/diameter
~3 in the human bronchial tree: Weibel ER, Morphometry of the Human Lung, 1963; Horsfield K,
Cumming G, J Appl Physiol 1968). Successive branching planes turn by 90 degrees.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MURRAY = 2.0 ** (-1.0 / 3.0)  # symmetric-split radius ratio
LENGTH_PER_DIAMETER = 3.0


@dataclass
class Branch:
    id: int
    parent: int
    generation: int
    start: np.ndarray
    end: np.ndarray
    r0: float
    r1: float
    name: str = ""
    children: list = field(default_factory=list)

    @property
    def direction(self):
        v = self.end - self.start
        return v / (np.linalg.norm(v) or 1.0)

    @property
    def length(self) -> float:
        return float(np.linalg.norm(self.end - self.start))


def _cross(a, b):
    """``np.cross(a, b)`` of two 3-vectors, the same products and differences in the same order
    (so the same floats bit for bit), without ``np.cross``'s axis handling: 2 against 22 us a
    call, ~0.12 CPU-s over the ~6,000 calls of one phantom's trees (issue 20)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _perp(d):
    a = np.array([1.0, 0, 0]) if abs(d[0]) < 0.9 else np.array([0, 1.0, 0])
    u = _cross(d, a)
    return u / np.linalg.norm(u)


def _rotate(v, axis, ang):
    axis = axis / np.linalg.norm(axis)
    return v * np.cos(ang) + _cross(axis, v) * np.sin(ang) + axis * (axis @ v) * (1 - np.cos(ang))


def _seg_dist(p, a, b):
    """Distances (P, M) from points p (P,3) to segments a->b (M,3)."""
    v = b - a
    L2 = np.maximum((v * v).sum(1), 1e-12)
    t = np.clip(((p[:, None, :] - a[None]) * v[None]).sum(-1) / L2[None], 0, 1)
    q = a[None] + t[..., None] * v[None]
    return np.linalg.norm(p[:, None, :] - q, axis=-1)


def grow(branches: list[Branch], seeds: list[int], inside, rng, max_generation: int,
         min_radius: float, angle_deg=(30.0, 45.0), avoid_collisions=True, wall_frac=0.0):
    """Grow children below the branches ``seeds`` (indices into ``branches``) until
    ``max_generation`` or ``min_radius`` (mm). ``inside(points) -> bool`` keeps tubes in their
    region; a child that cannot fit after several orientations and a shortening is dropped.
    Appends to ``branches`` in place."""
    queue = list(seeds)
    while queue:
        pi = queue.pop(0)
        par = branches[pi]
        if par.generation >= max_generation:
            continue
        d = par.direction
        plane_axis = _perp(d) if par.parent < 0 else _cross(d, branches[par.parent].direction)
        if np.linalg.norm(plane_axis) < 1e-6:
            plane_axis = _perp(d)
        plane_axis = _rotate(plane_axis / np.linalg.norm(plane_axis), d, np.pi / 2)
        for k, (ratio, sign) in enumerate(((0.86, 1.0), (0.74, -1.0))):
            r = par.r1 * ratio
            if r < min_radius:
                continue
            placed = False
            for attempt in range(8):
                ang = np.radians(rng.uniform(*angle_deg)) * sign
                axis = _rotate(plane_axis, d, attempt * np.pi / 4 * (1 if attempt % 2 else -1))
                cd = _rotate(d, axis, ang)
                for shrink in (1.0, 0.7, 0.5):
                    L = LENGTH_PER_DIAMETER * 2 * r * rng.uniform(0.85, 1.2) * shrink
                    end = par.end + cd * L
                    t = np.linspace(0.15, 1.0, 6)[:, None]
                    pts = par.end + t * (end - par.end)
                    probe = np.vstack([pts, end + cd * (r * (1 + wall_frac) + 1.0)])
                    if not np.all(inside(probe)):
                        continue
                    if avoid_collisions and len(branches) > 2:
                        others = [b for b in branches if b.id not in (par.id, par.parent) and b.parent != par.id]
                        if others:
                            a = np.array([b.start for b in others])
                            bb = np.array([b.end for b in others])
                            rr = np.array([max(b.r0, b.r1) for b in others]) * (1 + wall_frac)
                            dist = _seg_dist(pts[1:], a, bb)
                            if np.any(dist < rr[None] + r * (1 + wall_frac) + 1.0):
                                continue
                    child = Branch(len(branches), par.id, par.generation + 1, par.end.copy(), end,
                                   r, r * 0.95)
                    branches.append(child)
                    par.children.append(child.id)
                    queue.append(child.id)
                    placed = True
                    break
                if placed:
                    break
    return branches


def segments(branches: list[Branch]) -> np.ndarray:
    """(n, 8) capsule rows p0, p1, r0, r1 for raster.capsules."""
    return np.array([np.r_[b.start, b.end, b.r0, b.r1] for b in branches], float).reshape(-1, 8)


# --- bronchial trees with anatomical variants (for labelling tests; the phantom itself is unchanged)

AIRWAY_VARIANTS = ("normal", "b6_from_intermedius", "right_trifurcation", "tracheal_bronchus", "left_trifurcation",
                   "split_upper_lobe", "bronchus_suis")
LUNG_CENTRE_X_MM, LUNG_SEMI_AXES_MM, LUNG_CENTRE_Z_MM = 75.0, (58.0, 80.0, 100.0), 215.0


def analytic_lobe(pts) -> np.ndarray:
    """Lobe name of RAS points in the variant trees' analytic lungs (two ellipsoids; the oblique
    fissure z = 210 - 0.8 y and the right horizontal fissure z = 215 mm, as in the phantom);
    "" outside the lungs."""
    p = np.atleast_2d(np.asarray(pts, float))
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    a, b, c = LUNG_SEMI_AXES_MM
    inside = (((np.abs(x) - LUNG_CENTRE_X_MM) / a) ** 2 + (y / b) ** 2 + ((z - LUNG_CENTRE_Z_MM) / c) ** 2 <= 1) \
        & (np.abs(x) > 20)
    lower = z < 210 - 0.8 * y
    right = x > 0
    out = np.where(right, np.where(lower, "lung_lower_lobe_right",
                                   np.where(z >= 215, "lung_upper_lobe_right", "lung_middle_lobe_right")),
                   np.where(lower, "lung_lower_lobe_left", "lung_upper_lobe_left"))
    return np.where(inside, out, "")


def variant_airway_tree(variant: str = "normal", seed: int = 0, max_generation: int = 6,
                        min_radius: float = 1.0) -> list[Branch]:
    """A bronchial tree (trachea to ~``max_generation``) with a named anatomical variant, grown
    in analytic lungs (``analytic_lobe``). Named branches: trachea, main bronchi, the five lobar
    bronchi, bronchus_intermedius (absent in ``right_trifurcation``: the right main bronchus
    ends in upper, middle and lower lobe bronchi), RB6 (``b6_from_intermedius``: the superior
    segment of the right lower lobe leaves the bronchus intermedius 12 mm above the middle
    lobe), LB6 (``left_trifurcation``: the left main bronchus ends in upper lobe, B6 and basal
    trunk, which is then the lower lobe bronchus), tracheal_bronchus (``tracheal_bronchus``: to
    the apex of the right upper lobe, 24 mm above the carina); ``split_upper_lobe``: the right
    upper lobe's apical branch leaves the right main bronchus 5 mm before the rest of the upper
    lobe (how a skeleton often splits the upper lobe's orifice; both are named
    right_upper_lobe_bronchus, the main bronchus is in two pieces); ``bronchus_suis``: the whole
    right upper lobe from a tracheal bronchus, none from the right main bronchus, which runs on to
    the middle and lower lobes (named right_main_bronchus throughout: no bronchus intermedius). Variants after Boyden EA, Segmental
    Anatomy of the Lungs, 1955; Ghaye B et al., Radiographics 2001 (tracheal bronchus).
    RAS mm; radii mm (lumen)."""
    if variant not in AIRWAY_VARIANTS:
        raise ValueError(f"unknown airway variant {variant!r}; one of {AIRWAY_VARIANTS}")
    a = np.array
    c = a([0.0, 8, 238])  # carina
    rows = [("trachea", -1, a([0.0, 15, 330]), c, 8.0, 7.5),
            ("right_main_bronchus", 0, c, a([22.0, 2, 222]), 6.0, 5.6),
            ("left_main_bronchus", 0, c, a([-40.0, 0, 215]), 5.5, 5.0)]
    rb = a([22.0, 2, 222])
    if variant == "right_trifurcation":
        rows += [("right_upper_lobe_bronchus", 1, rb, a([45.0, 0, 240]), 4.2, 4.0),
                 ("right_middle_lobe_bronchus", 1, rb, a([42.0, 33, 200]), 3.5, 3.3),
                 ("right_lower_lobe_bronchus", 1, rb, a([40.0, -8, 180]), 4.3, 4.1)]
    elif variant == "split_upper_lobe":
        p1 = c + (rb - c) * 0.8  # 5 mm before the main bronchus' end
        rows[1] = ("right_main_bronchus", 0, c, p1, 6.0, 5.7)
        rows += [("right_upper_lobe_bronchus", 1, p1, a([28.0, 2, 250]), 3.2, 3.0),
                 ("right_main_bronchus", 1, p1, rb, 5.7, 5.6),
                 ("right_upper_lobe_bronchus", 4, rb, a([46.0, 2, 232]), 3.8, 3.6)]
    elif variant == "bronchus_suis":
        rows[1] = ("right_main_bronchus", 0, c, a([32.0, 0, 198]), 6.0, 5.0)
    else:
        rows += [("right_upper_lobe_bronchus", 1, rb, a([45.0, 0, 238]), 4.2, 4.0)]
    if variant == "bronchus_suis":
        rows += [("right_middle_lobe_bronchus", 1, a([32.0, 0, 198]), a([45.0, 35, 195]), 3.5, 3.3),
                 ("right_lower_lobe_bronchus", 1, a([32.0, 0, 198]), a([45.0, -10, 170]), 4.3, 4.1),
                 ("tracheal_bronchus", 0, a([0.0, 11, 262]), a([42.0, 4, 250]), 4.2, 4.0)]
    elif variant != "right_trifurcation":
        rmb_end = 4 if variant == "split_upper_lobe" else 1
        if variant == "b6_from_intermedius":
            mid = a([27.0, 1, 210])
            rows += [("bronchus_intermedius", 1, rb, mid, 5.0, 4.9),
                     ("RB6", 4, mid, a([45.0, -28, 212]), 3.2, 3.0),
                     ("bronchus_intermedius", 4, mid, a([32.0, 0, 198]), 4.9, 4.8)]
        else:
            rows += [("bronchus_intermedius", rmb_end, rb, a([32.0, 0, 198]), 5.0, 4.8)]
        bi = len(rows) - 1
        rows += [("right_middle_lobe_bronchus", bi, a([32.0, 0, 198]), a([45.0, 35, 195]), 3.5, 3.3),
                 ("right_lower_lobe_bronchus", bi, a([32.0, 0, 198]), a([45.0, -10, 170]), 4.3, 4.1)]
    lb = a([-40.0, 0, 215])
    rows += [("left_upper_lobe_bronchus", 2, lb, a([-55.0, 12, 232]), 4.2, 4.0)]
    if variant == "left_trifurcation":
        rows += [("LB6", 2, lb, a([-58.0, -28, 214]), 3.2, 3.0)]
    rows += [("left_lower_lobe_bronchus", 2, lb, a([-52.0, -10, 190]), 4.3, 4.1)]
    if variant == "tracheal_bronchus":
        rows += [("tracheal_bronchus", 0, a([0.0, 11, 262]), a([40.0, 6, 285]), 3.5, 3.3)]
    br: list[Branch] = []
    for name, par, s, e, r0, r1 in rows:
        gen = 0 if par < 0 else br[par].generation + 1
        br.append(Branch(len(br), par, gen, s.astype(float), e.astype(float), r0, r1, name))
        if par >= 0:
            br[par].children.append(len(br) - 1)
    rng = np.random.default_rng(seed)
    lobe_of = {"right_upper_lobe_bronchus": "lung_upper_lobe_right", "tracheal_bronchus": "lung_upper_lobe_right",
               "right_middle_lobe_bronchus": "lung_middle_lobe_right", "RB6": "lung_lower_lobe_right",
               "right_lower_lobe_bronchus": "lung_lower_lobe_right", "LB6": "lung_lower_lobe_left",
               "left_upper_lobe_bronchus": "lung_upper_lobe_left", "left_lower_lobe_bronchus": "lung_lower_lobe_left"}
    for b in list(br):
        if b.name in lobe_of:
            lobe = lobe_of[b.name]
            grow(br, [b.id], lambda p, lobe=lobe: analytic_lobe(p) == lobe, rng, max_generation, min_radius)
    return br


def rasterise_airways(branches: list[Branch], spacing: float = 1.25):
    """(uint8 lumen mask [k, j, i], 4x4 IJK->RAS) of tube branches on an axis-aligned grid."""
    from .raster import Grid, capsules

    seg = segments(branches)
    r = np.maximum(seg[:, 6:8].max(axis=1), 0.0)[:, None]
    lo = np.minimum(seg[:, :3], seg[:, 3:6]).min(axis=0) - r.max() - 3 * spacing
    hi = np.maximum(seg[:, :3], seg[:, 3:6]).max(axis=0) + r.max() + 3 * spacing
    g = Grid(lo, hi, spacing)
    lab = np.zeros(g.shape, np.uint8)
    capsules(g, lab, np.c_[seg[:, :6], seg[:, 6:8]], 1, min_radius=0.87 * spacing)
    return lab, g.ijk_to_ras()
