"""How far the named central take-offs of an airway tree depend on how the mask is stored.

The tree is defined by anatomy (``tree._top_root``: TEASAR rooted at the trachea's top;
``junctions.place_junctions``: branch points where the branches' axes meet) and traced on the
mask's RAS-canonical storage, so every storage of one world mask gives one tree. As an
independent guard, the tree is extracted a second time from the mask reversed along its array
axis nearest left-right and traced as so stored (no canonical reordering: voxel ties broken the
other way), the named central branch points of both trees are compared, and a shift beyond
``root_dependence`` of ``airway_limits.json`` (half the right main bronchus's length; never under
two voxel diagonals) is warned: branch points that move that much with the storage are not
defined by the airway's shape. Before the anatomical root (new-user trial 90b H1) TEASAR was
rooted at the voxel farthest from the first voxel in memory and the take-offs moved 8-12 mm
(ATM 305 YangLab's right upper lobe 11.9 mm); now 0-1 mm (branch bronch94).

Coordinates RAS mm.
"""

from __future__ import annotations

import numpy as np

# the named central airways whose take-off (branch point where they leave their parent) is
# compared; "carina" is the trachea's distal branch point, where the main bronchi leave (their
# distal ends are the lobar bronchi's take-offs)
CENTRAL = ("tracheal_bronchus", "right_upper_lobe_bronchus",
           "bronchus_intermedius", "right_middle_lobe_bronchus", "right_lower_lobe_bronchus",
           "left_upper_lobe_bronchus", "lingular_bronchus", "left_lower_lobe_bronchus")


def central_points(tree) -> dict[str, np.ndarray]:
    """{"carina" | central bronchus name: RAS mm [3]} of ``tree`` (an ``AirwayTree``): the trachea's
    distal end (its most distal piece's last point) and, per name in ``CENTRAL``, the branch
    point where its most proximal piece (the one whose parent has another name) leaves the parent.
    Names the tree does not give are absent."""
    out = {}
    tr = [b for b in tree.branches if b.name == "trachea" and b.children]
    if tr:
        end = max(tr, key=lambda b: tree.dist_from_root[b.point_ids[-1]])
        out["carina"] = tree.points[end.point_ids[-1]]
    for name in CENTRAL:
        first = [b for b in tree.branches if b.name == name and b.parent >= 0
                 and tree.branches[b.parent].name != name]
        if first:
            b = min(first, key=lambda b: tree.dist_from_root[b.point_ids[0]])
            out[name] = tree.points[tree.parent[b.point_ids[0]]]
    return out


def tolerance_mm(voxel_diag_mm: float) -> float:
    """The largest root dependence of a named take-off (mm) that is not warned: ``root_dependence``
    of ``airway_limits.json`` (half the right main bronchus's length, with its source), never
    below its ``min_voxel_diagonals`` voxel diagonals of ``voxel_diag_mm``."""
    from .mask_checks import limits

    lim = limits()["root_dependence"]
    return max(float(lim["max_shift_mm"]), float(lim["min_voxel_diagonals"]) * float(voxel_diag_mm))


def root_dependence(tree, other) -> tuple[dict, str | None]:
    """Compare the named central branch points of ``tree`` and ``other`` (the same mask's tree from
    another skeleton root). Returns ({"carina" | name: shift mm, rounded to 0.1, or None when only
    one of the trees names it}, one warning line or None). The warning names every take-off
    shifted beyond ``tolerance_mm`` (largest first, with its shift) and what to do."""
    a, b = central_points(tree), central_points(other)
    shifts = {n: (round(float(np.linalg.norm(a[n] - b[n])), 1) if n in a and n in b else None)
              for n in sorted(set(a) | set(b), key=lambda n: (n != "carina", n))}
    tol = tolerance_mm(tree.voxel_diag_mm)
    big = sorted(((v, n) for n, v in shifts.items() if v is not None and v > tol), reverse=True)
    if not big:
        return shifts, None
    said = ", ".join(f"{n.replace('_', ' ')} {v:.1f} mm" for v, n in big)
    one = sorted(n.replace("_", " ") for n, v in shifts.items() if v is None)
    also = f"; named in one of the two trees only: {', '.join(one)}" if one else ""
    return shifts, (f"the airway tree's central branch points depend on the centreline's root (the mask's storage "
                    f"order): re-extracted with the mask stored in the reverse left-right order they move by more than {tol:.1f} mm (half the "
                    f"right main bronchus's length): {said}{also}; the take-off levels of these bronchi, and the "
                    f"lengths between them, are uncertain by that much: check those take-offs on the images")
