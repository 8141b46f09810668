"""Anatomical bronchial tree of the realistic phantom: trachea, main, lobar and named segmental
bronchi aimed at their territory in the painted lobes, then grown on inside each lobe.

Segment names and territories after Boyden EA, Segmental Anatomy of the Lungs (1955) and the
Jackson-Huber nomenclature (Jackson CL, Huber JF, Dis Chest 1943;9:319-326): right upper lobe
RB1 apical, RB2 posterior, RB3 anterior; middle lobe RB4 lateral, RB5 medial; right lower lobe
RB6 superior, RB7 medial basal, RB8 anterior basal, RB9 lateral basal, RB10 posterior basal;
left upper lobe: upper division (LB1+2 apicoposterior, LB3 anterior) and lingular bronchus (LB4
superior, LB5 inferior);
left lower lobe LB6 superior, LB7+8 anteromedial basal, LB9 lateral basal, LB10 posterior basal.
Lumen radii: trachea ~9 mm (men) / ~7.5 mm (women), main bronchi ~6 / 5.5 mm, lobar ~4 mm,
segmental ~2.5-3 mm (Weibel 1963; Montaudon M et al., Radiology 2007;242:563-572).
"""

from __future__ import annotations

import numpy as np

from . import trees

AIRWAY_VARIANTS = ("normal", "tracheal_bronchus", "right_trifurcation")
# segmental bronchi and the short trunks between them, every division a bifurcation (the commonest
# patterns; a skeleton cannot tell a trifurcation from two close bifurcations anyway):
# (name, parent, direction (x right, y anterior, z superior) or None for a trunk aimed between
# its children, length mm). Names with "trunk" are not segments.
SEGMENTS = [
    ("RB3", "right_upper_lobe_bronchus", (0.4, 0.9, 0.0), 20), ("RB1+2_trunk", "right_upper_lobe_bronchus", None, 8),
    ("RB1", "RB1+2_trunk", (0.2, 0.0, 1.0), 20), ("RB2", "RB1+2_trunk", (0.5, -0.8, 0.3), 20),
    ("RB4", "right_middle_lobe_bronchus", (0.8, 0.5, -0.2), 20), ("RB5", "right_middle_lobe_bronchus", (0.1, 0.9, -0.3), 20),
    ("RB6", "right_lower_lobe_bronchus", (0.3, -0.95, 0.1), 20), ("right_basal_trunk", "right_lower_lobe_bronchus", None, 10),
    ("RB7", "right_basal_trunk", (-0.1, 0.2, -1.0), 18), ("RB8-10_trunk", "right_basal_trunk", None, 8),
    ("RB8", "RB8-10_trunk", (0.3, 0.6, -0.8), 20), ("RB9+10_trunk", "RB8-10_trunk", None, 8),
    ("RB9", "RB9+10_trunk", (0.7, -0.1, -0.7), 20), ("RB10", "RB9+10_trunk", (0.25, -0.7, -0.7), 20),
    ("LB1+2", "left_upper_division_bronchus", (-0.3, -0.4, 0.9), 20),
    ("LB3", "left_upper_division_bronchus", (-0.4, 0.9, 0.15), 20),
    ("LB4", "lingular_bronchus", (-0.7, 0.6, -0.3), 20), ("LB5", "lingular_bronchus", (-0.3, 0.8, -0.55), 20),
    ("LB6", "left_lower_lobe_bronchus", (-0.3, -0.95, 0.1), 20), ("left_basal_trunk", "left_lower_lobe_bronchus", None, 10),
    ("LB7+8", "left_basal_trunk", (-0.2, 0.6, -0.8), 20), ("LB9+10_trunk", "left_basal_trunk", None, 8),
    ("LB9", "LB9+10_trunk", (-0.7, -0.1, -0.7), 20), ("LB10", "LB9+10_trunk", (-0.25, -0.7, -0.7), 20),
]
LOBE_OF = {"right_upper_lobe_bronchus": "lung_upper_lobe_right", "right_middle_lobe_bronchus": "lung_middle_lobe_right",
           "right_lower_lobe_bronchus": "lung_lower_lobe_right", "left_upper_lobe_bronchus": "lung_upper_lobe_left",
           "left_lower_lobe_bronchus": "lung_lower_lobe_left", "tracheal_bronchus": "lung_upper_lobe_right",
           "left_upper_division_bronchus": "lung_upper_lobe_left", "lingular_bronchus": "lung_upper_lobe_left"}


def central_airways(F, z_top: float, variant: str = "normal") -> list[trees.Branch]:
    """Trachea to lobar bronchi (RAS mm), scaled to the patient's frame ``F``."""
    if variant not in AIRWAY_VARIANTS:
        raise ValueError(f"unknown airway variant {variant!r}; one of {AIRWAY_VARIANTS}")
    S = np.array([F.sx, F.sy, F.sz])
    k = F.size * (0.85 if F.sex == "female" else 1.0)

    def P(*v):
        return np.array(v, float) * S

    car = P(0, -20, 350)
    rmb, lmb = P(24, -22, 332), P(-46, -24, 322)
    bi = P(30, -24, 306)
    rows = [("trachea", -1, np.array([0.0, -14 * F.sy, z_top]), car, 9.0, 8.5),
            ("right_main_bronchus", 0, car, rmb, 6.5, 6.0), ("left_main_bronchus", 0, car, lmb, 6.0, 5.5)]
    if variant == "right_trifurcation":
        rows += [("right_upper_lobe_bronchus", 1, rmb, P(48, -24, 342), 4.3, 4.0),
                 ("right_middle_lobe_bronchus", 1, rmb, P(44, 8, 300), 3.6, 3.4),
                 ("right_lower_lobe_bronchus", 1, rmb, P(42, -30, 288), 4.5, 4.3)]
    else:
        rows += [("right_upper_lobe_bronchus", 1, rmb, P(48, -24, 342), 4.3, 4.0),
                 ("bronchus_intermedius", 1, rmb, bi, 5.2, 5.0),
                 ("right_middle_lobe_bronchus", 4, bi, P(40, -6, 298), 3.6, 3.4),
                 ("right_lower_lobe_bronchus", 4, bi, P(40, -32, 284), 4.5, 4.3)]
    rows += [("left_upper_lobe_bronchus", 2, lmb, P(-60, -14, 332), 4.5, 4.3),
             ("left_lower_lobe_bronchus", 2, lmb, P(-56, -34, 300), 4.5, 4.3)]
    lul = len(rows) - 2
    rows += [("left_upper_division_bronchus", lul, P(-60, -14, 332), P(-64, -16, 346), 3.8, 3.6),
             ("lingular_bronchus", lul, P(-60, -14, 332), P(-68, 0, 318), 3.4, 3.2)]
    if variant == "tracheal_bronchus":
        rows += [("tracheal_bronchus", 0, P(0, -18, 376), P(30, -22, 392), 3.5, 3.3)]
    out: list[trees.Branch] = []
    for name, par, s, e, r0, r1 in rows:
        gen = 0 if par < 0 else out[par].generation + 1
        out.append(trees.Branch(len(out), par, gen, s.astype(float), e.astype(float), r0 * k, r1 * k, name))
        if par >= 0:
            out[par].children.append(len(out) - 1)
    return out


def _lobe_of(name: str) -> str:
    """The lobe a (segmental or trunk) bronchus ventilates."""
    parents = {n: par for n, par, _, _ in SEGMENTS}
    while name in parents:
        name = parents[name]
    return LOBE_OF[name]


def _direction(name: str) -> np.ndarray:
    """Unit direction of a segment, or the mean of its children's for a trunk."""
    row = next(r for r in SEGMENTS if r[0] == name)
    if row[2] is not None:
        d = np.asarray(row[2], float)
    else:
        d = sum(_direction(n) for n, par, _, _ in SEGMENTS if par == name)
    return d / np.linalg.norm(d)


def segmental(tree: list[trees.Branch], lobe_points: dict, F) -> None:
    """Append the named segmental bronchi (and the trunks between them), each aimed at the
    centroid of its lobe's voxels that lie within 40 degrees of its textbook direction (so it
    stays in its own territory). Radii taper from 3.4 mm (trunks) to 2.7 mm (segments)."""
    by_name = {b.name: b for b in tree}
    k = F.size * (0.85 if F.sex == "female" else 1.0)
    for name, parent, _, length in SEGMENTS:
        par = by_name.get(parent)
        if par is None:
            continue
        pts = lobe_points[_lobe_of(name)]
        d = _direction(name)
        v = pts - par.end
        n = np.linalg.norm(v, axis=1) + 1e-9
        sel = (v @ d) / n > np.cos(np.radians(40))
        aim = (v[sel].mean(0) if sel.sum() > 20 else d * 50.0)
        u = aim / np.linalg.norm(aim)
        end = par.end + u * length * F.size
        r0 = min(par.r1 * 0.85, 3.4 * k) if "trunk" in name else 2.9 * k
        b = trees.Branch(len(tree), par.id, par.generation + 1, par.end.copy(), end, r0, r0 * 0.95, name)
        tree.append(b)
        by_name[name] = b
        par.children.append(b.id)


def grow_peripheral(tree, inside_lobe, rng, max_generation: int) -> None:
    """Grow unnamed branches below every segmental bronchus (and a tracheal bronchus) inside its
    lobe down to ``max_generation`` or 0.9 mm lumen radius."""
    segs = {n for n, _, d, _ in SEGMENTS if d is not None}
    for b in list(tree):
        if b.name in segs or b.name == "tracheal_bronchus":
            lobe = _lobe_of(b.name) if b.name in segs else LOBE_OF[b.name]
            trees.grow(tree, [b.id], inside_lobe(lobe), rng, max_generation, min_radius=0.9, wall_frac=0.25)
