"""Whether a scan whose superior edge cuts the airways shows the trachea, or starts at or below the carina.

An independent check on the airway mask, not on the tree built from it: a tree rooted at the
image's top names its root "trachea" (``anatomy.label_tree``), which is the trachea only when the
top cuts the trachea above its division. New-user trial 99 F4/F4b: ATM 307 and the chest CTA cut
3 mm above to 20 mm below the carina were planned (exit 0) from a main bronchus named "trachea"
(name confidence 1.0), the other lung's airways left out.

Anatomy (Standring S (ed), Gray's Anatomy, 41st ed, 2016, ch. 'Trachea and bronchi'): the trachea
is one tube of 10-25 mm (Breatnach 1984) that divides once, at the carina, into the two main
bronchi; above the carina the only airways beside it are upper-lobe segmental bronchi rising to the
apices (4-8 mm, Weibel 1963). So, where the image's superior face cuts the airway mask:

- it cuts the main bronchi (a scan starting below the carina) when it cuts two or more lumens
  wider than a segmental bronchus (``max_segmental_mm``: lobar or main bronchi) that the mask does
  not join anywhere in the image: the two lungs' airways join only at the carina;
- it cuts the trachea at its division (a scan starting at the carina) when the lumen it cuts
  divides, within the image, into two lumens wider than a segmental bronchus before the carina's
  branch point is in view. The carina is the branch point where the main bronchi's axes meet
  (the tree's definition, ``junctions.place_junctions``); two bronchi of radii r_R, r_L leaving
  that point at angles a_R, a_L from the tracheal axis part their lumens (the carinal ridge)
  h = (r_R cos a_L + r_L cos a_R) / sin(a_R + a_L) below it (the medial walls of two cylinders
  meet there; r / sin a when symmetric). A scan whose top lies less than h above the division
  does not show the trachea's division: its tree cannot be rooted at a trachea. The angles are the
  published CT means (``right_angle_deg``, ``left_angle_deg``, airway_limits.json); the radii are
  the two lumens' own, measured where they part.

Each lumen's calibre is the diameter of the largest circle inscribed in its section (twice the
in-plane distance to the wall, `_lumens`): the true
diameter of a bronchus cut obliquely (an ellipse's minor axis), unlike its area or moments
(a branching piece of segmental bronchi cut along their course read 12 mm by either on the
phantom). Sections are the image's own slices parallel to its superior face (`top_face.superior_face`); coordinates RAS mm.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ...volume import Volume


def _limits() -> dict:
    from .mask_checks import limits

    return limits()["trachea_in_view"]


def _lumens(section: np.ndarray, sp2) -> tuple[np.ndarray, np.ndarray, int]:
    """(labels [same shape] of the 8-connected lumens of ``section`` (2-D bool), their calibres
    [n] mm, n). A calibre is the inscribed circle's diameter: twice the largest distance (``edt``, mm)
    from a voxel centre of the lumen to the nearest centre outside it, plus half an in-plane voxel:
    that distance, taken at voxel centres, reads a digital disk's diameter 0.4 voxel under on
    average (0.0-1.1 over disks of 5-16 voxels at random sub-voxel centres, measured)."""
    import cc3d
    import edt

    lab, n = cc3d.connected_components(section, connectivity=8, return_N=True)
    if n == 0:
        return lab, np.zeros(0), 0
    d = edt.edt(section, anisotropy=tuple(float(s) for s in sp2), black_border=True)
    inscribed = np.asarray(ndimage.maximum(d, lab, index=np.arange(1, n + 1)), float)
    return lab, 2.0 * inscribed + 0.5 * float(np.mean(sp2)), n


def carina_height_mm(r_right: float, r_left: float, lim: dict | None = None) -> float:
    """Height (mm) of the point where the main bronchi's axes meet above the ridge where their lumens
    part, for bronchi of radii ``r_right``, ``r_left`` (mm) at the published mean angles from the
    tracheal axis (``lim``: airway_limits.json ``trachea_in_view``)."""
    lim = lim or _limits()
    ar, al = np.radians(float(lim["right_angle_deg"])), np.radians(float(lim["left_angle_deg"]))
    return float((r_right * np.cos(al) + r_left * np.cos(ar)) / np.sin(ar + al))


def trachea_in_view(mask: np.ndarray, vol: Volume, axis: int | None = None, up: bool | None = None) -> dict | None:
    """What the image's superior face cuts of the airway ``mask`` ([k, j, i] bool on ``vol``'s grid,
    any storage): None when the mask does not reach that face (no airway leaves the image upwards).
    The face is at the end of array ``axis`` (its last index when ``up``: `top_face.superior_face`);
    None: the array axis nearest S, its superior end (`tree._superior_axis`).
    Else a dict:

    - ``top_lumens_mm``: calibres (mm, widest first) of the lumens the face cuts;
    - ``below_carina``: True when two or more of them are wider than a segmental bronchus and lie in
      pieces of the mask not joined within the image (26-connected);
    - ``division_mm``: depth (mm, along the face's array axis) below the face where the widest
      lumen the face cuts divides into two lumens wider than a segmental bronchus (None: below_carina,
      or no division within the height at which two bronchi as wide as the widest lumen seen would
      meet: the trachea's division is in view); ``branches_mm``: their calibres (right, left by
      their centres' R);
    - ``carina_mm``: the height above that division where the two bronchi's axes meet
      (`carina_height_mm`); the trachea's division is in view when ``division_mm`` >= it;
    - ``where``: RAS mm [3] of the widest lumen's centre on the face.

    Lumens are followed down section by section: a lumen of the next section continues one of the
    sections above when they touch (26-connectivity), so bronchi beside the trachea that join it
    only further down are not its branches."""
    import cc3d

    from .tree import _superior_axis

    lim = _limits()
    seg = float(lim["max_segmental_mm"])
    if axis is None:
        axis, up = _superior_axis(vol)
    n = mask.shape[axis]
    top = n - 1 if up else 0
    step = -1 if up else 1
    face = np.take(mask, top, axis=axis)
    if not face.any():
        return None
    sp = np.asarray(vol.spacing_kji, float)
    sp2 = [sp[a] for a in range(3) if a != axis]

    def centre(lab_mask, idx):
        ij = np.argwhere(lab_mask).mean(axis=0)
        return vol.kji_to_world(np.insert(ij, axis, idx)[None].astype(float))[0]

    lab, cal, _ = _lumens(face, sp2)
    order = np.argsort(-cal)
    wide = [int(c) for c in order if cal[c] > seg]
    root = int(order[0])
    # the pieces of the mask (26-connected) the wide lumens belong to: the two lungs' airways join
    # only at the carina, so below it their lumens lie in pieces not joined within the image
    piece = np.take(cc3d.connected_components(mask, connectivity=26), top, axis=axis)
    pieces = {int(piece[lab == c + 1][0]) for c in wide}
    out = {"top_lumens_mm": [round(float(cal[c]), 1) for c in order], "below_carina": len(pieces) >= 2,
           "division_mm": None, "branches_mm": None, "carina_mm": None,
           "where": np.round(centre(lab == root + 1, top), 1).tolist()}
    if out["below_carina"]:
        return out
    # follow the widest lumen down; the bronchi are narrower than their parent (the cube law,
    # Horsfield et al. 1976), so its division, if any, lies within carina_height(r, r) of the face
    # for the parent's radius r (the largest calibre seen on the way down)
    desc = lab == root + 1
    widest = float(cal[root])
    for s in range(1, n):
        idx = top + step * s
        depth = s * float(sp[axis])
        if depth > carina_height_mm(widest / 2, widest / 2, lim):
            break
        sec = np.take(mask, idx, axis=axis)
        lab, cal, _ = _lumens(sec, sp2)
        touch = ndimage.binary_dilation(desc, structure=np.ones((3, 3), bool)) & sec
        hit = np.unique(lab[touch])
        hit = hit[hit > 0]
        if not len(hit):
            break
        desc = np.isin(lab, hit)
        big = [int(h) for h in hit if cal[h - 1] > seg]
        if len(big) >= 2:
            two = sorted(big, key=lambda h: -cal[h - 1])[:2]
            c = [centre(lab == h, idx) for h in two]
            right, left = (two[0], two[1]) if c[0][0] >= c[1][0] else (two[1], two[0])
            rr, rl = float(cal[right - 1]) / 2, float(cal[left - 1]) / 2
            out.update(division_mm=round(depth, 1), branches_mm=[round(2 * rr, 1), round(2 * rl, 1)],
                       carina_mm=round(carina_height_mm(rr, rl, lim), 1))
            return out
        widest = max(widest, float(cal[hit - 1].max()))
    return out


def _joined_only_above(tree) -> float | None:
    """mL of the connected airway mask that ``tree`` (an ``AirwayTree``) leaves out because its
    centreline joins the tree only above the image's top (``tree.unjoined_ml``, `tree._unjoined_warning`),
    when the tree has no carina (no main bronchus named) and that part holds at least
    ``anatomy.MAIN_BALANCE`` of the airway the tree keeps: the other lung's airways, not a bronchus
    beside the trachea. Else None."""
    from .anatomy import MAIN_BALANCE

    lost = getattr(tree, "unjoined_ml", None)
    if not lost or any(b.name in ("right_main_bronchus", "left_main_bronchus") for b in tree.branches):
        return None
    lumen = getattr(tree, "lumen", None)
    if lumen is None:
        return None
    kept = float(np.count_nonzero(lumen.array == 1)) * float(np.prod(lumen.spacing_kji)) / 1000.0 - float(lost)
    return float(lost) if lost >= MAIN_BALANCE * kept else None


def trachea_problem(view: dict | None, tree=None) -> str | None:
    """One line (an InputError's message) when ``view`` (`trachea_in_view`) shows a scan starting at or
    below the carina, or when the scan starts above it but ``tree`` (the ``AirwayTree`` of that mask)
    has no carina and leaves the other lung's airways out because they join it only above the image
    (`_joined_only_above`: the skeleton's paths to the two lungs met above the image's top, new-user
    trial 99 F0/F4b; the tree's root "trachea" then runs into a main bronchus); else None."""
    if not view:
        return None
    todo = ("give a scan that includes the trachea above the carina (and an airway mask up to the image's "
            "superior edge): a route starts at the trachea")
    if view["below_carina"]:
        wide = [c for c in view["top_lumens_mm"] if c > float(_limits()["max_segmental_mm"])]
        return (f"the scan starts below the carina: the image's superior edge cuts the airways in {len(wide)} separate "
                f"lumens wider than a segmental bronchus ({', '.join(f'{c:.1f}' for c in wide)} mm across) where a "
                f"trachea is one tube that divides only at the carina, so the trachea is not in view and the tree's root "
                f"would be a bronchus; {todo}")
    t, h = view["division_mm"], view["carina_mm"]
    if t is None or t >= h:
        lost = _joined_only_above(tree) if tree is not None else None
        if lost is None:
            return None
        at = f" {t:.1f} mm below it" if t is not None else ""
        return (f"the scan starts too close above the carina for the airway tree: the airway lumen the image's superior "
                f"edge cuts (at RAS {view['where']}) divides{at}, and the tree's centreline joins {lost:.2f} mL of the "
                "airways (the other lung's) to it only above the image, so the tree has no carina and its root, named "
                f"trachea, would run into a main bronchus; {todo}, starting higher above the carina")
    r, l = view["branches_mm"]
    return (f"the scan starts at the carina: the airway lumen the image's superior edge cuts (at RAS {view['where']}) "
            f"divides {t:.1f} mm below it into two bronchi ({r:.1f} mm right, {l:.1f} mm left), whose axes meet at the "
            f"carina about {h:.1f} mm above that division (their calibres at the mean angles to the trachea on CT), "
            f"above the image: the trachea is not in view and the tree's root would be a main bronchus; {todo}")
