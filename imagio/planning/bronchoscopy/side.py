"""Which lung a point lies in, and the guard that a route ends in the target's lung.

An independent check of the route planner (new-user trial 99 F0, HIGH): with the left lung's
airways dropped from the tree (a scan starting a few mm above the carina), the route to a left
lower lobe target was planned into the RIGHT lung, 150 mm away, exit 0, for every scope. The
airways of one lung never lead into the other (the carina divides the tree into the two main
bronchi, one per lung: Netter, Atlas of Human Anatomy, plate 203), so a route ending in the other
lung than its target is wrong whatever the tree; the plan is refused.

The side of a point comes, in this order, from

- the label map's lungs or lobes (TotalSegmentator / IMAGIO names: ``lung_left``, ``lung_right``,
  ``lung_upper_lobe_left``, ...): the lung that holds the point, else the lung clearly nearer to
  it (its nearest voxel at most half as far as the other lung's: ``lung_side_nearer_ratio`` of
  imagio/data/airway_limits.json; a point between the lungs, in the trachea or the mediastinum,
  has no side);
- without lung labels, the carina of a named tree: the side of the mid-sagittal plane through the
  carina, normal to it the direction from the right main bronchus to the left one (orthogonal to
  the trachea's axis), for a point farther from that plane than the trachea's lumen radius (a
  point within the trachea's width of the midline has no side).
"""

from __future__ import annotations

import numpy as np

from ...errors import InputError
from ...limits import LUNG_SIDE_NEARER_RATIO

# a point's nearest lung voxel at most this fraction of the other lung's distance (airway_limits.json
# lung_side_nearer_ratio, with its reasoning)
NEARER = LUNG_SIDE_NEARER_RATIO


def _lung_side_names(labels) -> dict[str, list[str]]:
    """{"left": [...], "right": [...]}: the label map's lung and lobe names by side (not lesions,
    vessels or airways, whose names may carry a side too)."""
    from .route import _side_of_name

    out: dict[str, list[str]] = {"left": [], "right": []}
    for n in labels.labels.values():
        low = n.lower()
        if not low.startswith("lung_") or any(w in low for w in ("nodule", "vessel", "trachea", "bronch", "tumo")):
            continue
        s = _side_of_name(n)
        if s:
            out[s].append(n)
    return out


def sides_from_labels(labels, ras: np.ndarray) -> list[str | None] | None:
    """The lung ("left" / "right" / None) of each RAS point ``ras`` [N, 3] (mm) by the label map
    ``labels`` (Volume): the lung label that holds the point, else the lung whose nearest voxel is
    at most ``NEARER`` times as far as the other's; None for a point with no clear side. Returns
    None when the map lacks lung labels of either side."""
    from scipy.spatial import cKDTree
    from scipy import ndimage

    names = _lung_side_names(labels)
    if not names["left"] or not names["right"]:
        return None
    ras = np.atleast_2d(np.asarray(ras, float))
    inv = {n: v for v, n in labels.labels.items()}
    at = np.asarray(labels.sample(ras, order=0)).ravel()
    trees = {}
    for s, ns in names.items():
        m = np.isin(labels.array, [inv[n] for n in ns])
        if not m.any():
            return None
        shell = m & ~ndimage.binary_erosion(m)   # the nearest voxel of a lung to an outside point is on its shell
        trees[s] = (cKDTree(labels.kji_to_world(np.argwhere(shell).astype(float))), {inv[n] for n in ns})
    out: list[str | None] = []
    for p, v in zip(ras, at):
        held = [s for s, (_, vals) in trees.items() if int(v) in vals]
        if held:
            out.append(held[0])
            continue
        d = {s: float(t.query(p)[0]) for s, (t, _) in trees.items()}
        near, far = sorted(d, key=d.get)
        out.append(near if d[near] <= NEARER * d[far] else None)
    return out


def sides_from_carina(tree, ras: np.ndarray) -> list[str | None] | None:
    """The side ("left" / "right" / None) of each RAS point ``ras`` [N, 3] (mm) relative to the
    mid-sagittal plane through the carina of a named tree (``tree``: AirwayTree with branches
    named trachea, left_main_bronchus, right_main_bronchus); None within the trachea's mean lumen
    radius of the plane. Returns None when the tree has no carina (those names missing)."""
    def pts(name):
        ids = [i for b in tree.branches if b.name == name for i in b.point_ids]
        return tree.points[ids] if ids else None

    tr, lm, rm = pts("trachea"), pts("left_main_bronchus"), pts("right_main_bronchus")
    if tr is None or lm is None or rm is None or len(tr) < 2:
        return None
    ids = [i for b in tree.branches if b.name == "trachea" for i in b.point_ids]
    carina = tree.points[max(ids, key=lambda i: tree.dist_from_root[i])]
    axis = tr[np.argmin(tr[:, 2])] - tr[np.argmax(tr[:, 2])]
    axis /= max(np.linalg.norm(axis), 1e-9)
    n = lm.mean(axis=0) - rm.mean(axis=0)
    n -= (n @ axis) * axis
    if np.linalg.norm(n) < 1e-6:
        return None
    n /= np.linalg.norm(n)
    r = float(np.mean(tree.radius[ids]))
    off = (np.atleast_2d(np.asarray(ras, float)) - carina) @ n
    return ["left" if o > r else "right" if o < -r else None for o in off]


def wrong_lung(route_end, target_centre, labels=None, tree=None) -> str:
    """'' or the sentence refusing a route whose end (RAS mm [3]) lies in the other lung than the
    target's centre (RAS mm [3]); the sides by ``sides_from_labels`` (``labels``, a label Volume,
    when it has lungs of both sides) else ``sides_from_carina`` (``tree``). '' when either side is
    unknown."""
    pts = np.array([route_end, target_centre], float)
    sides, how = None, ""
    if labels is not None:
        sides, how = sides_from_labels(labels, pts), "the label map's lungs"
    if sides is None and tree is not None:
        sides, how = sides_from_carina(tree, pts), "the carina's mid-sagittal plane"
    if sides is None or None in sides or sides[0] == sides[1]:
        return ""
    e = np.round(np.asarray(route_end, float), 1).tolist()
    why = getattr(tree, "unjoined_note", "") if tree is not None else ""
    return (f"the route ends in the {sides[0]} lung (RAS {e}) but the target lies in the {sides[1]} lung (by "
            f"{how}): the airway tree misses the target lung's airways or the inputs disagree; the route is "
            "not planned" + (f" ({why})" if why else "") +
            ". Check that the airway mask holds both main bronchi and the scan starts above the carina")


def require_same_lung(route_end, target_centre, labels=None, tree=None) -> None:
    """InputError (`wrong_lung`'s sentence) when the route ends in the other lung than the target."""
    msg = wrong_lung(route_end, target_centre, labels, tree)
    if msg:
        raise InputError(msg)
