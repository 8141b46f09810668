"""Branch points of an airway centreline placed by geometry, not where the skeleton forked.

A TEASAR skeleton is a shortest-path tree from its root: two daughters' paths part where the
cost field lets them, often millimetres before the lumens part (both run side by side in the
parent's lumen, each cutting its own corner: rooted at the trachea, ATM 305's left upper/lower
lobe split lay 8.8 mm up the left main bronchus), and a fork's place moves by a voxel or two with
voxel ties. The branch point used here is the bifurcation's geometric centre: the point nearest
(least squares) to the axes of the parent and of every daughter, each axis a line fitted
(principal axis) to its centreline where it is a single tube: the parent over its last
``AXIS_DIAMETERS`` diameters before the fork, each daughter from where it leaves the parent's
lumen (one parent radius from the fork) over ``AXIS_DIAMETERS`` of its own diameters (through a
fork a few mm on, into the widest child). The branch point as the meeting of the fitted branch
axes is this module's geometric definition (a planning choice: it depends on the lumens'
directions, not on where a skeleton's shortest paths part; CT airway morphometry likewise
measures branch lengths and angles between branch centrelines, e.g. Tawhai MH, Hunter P,
Tschirren J, Reinhardt J, McLennan G, Hoffman EA, CT-based geometry analysis and finite element
models of the human and ovine bronchial tree, J Appl Physiol 2004;97(6):2310-2321,
doi:10.1152/japplphysiol.00520.2004). Checked independently of any skeleton on ATM 307: the
lines through the mask's lumen centroids of the bronchus intermedius and the right upper lobe
bronchus meet at (22.0, -2.4, -754.4) on three teams' masks, this module's take-off 0.9 mm from
it. The fork is moved to the centreline point nearest to the centre, and that point is placed
at the centre.

Coordinates RAS mm (any orthonormal mm frame); radii mm.
"""

from __future__ import annotations

import numpy as np

# the axes are fitted over this many lumen diameters (parent: before the fork; daughter: beyond
# the parent's lumen)
AXIS_DIAMETERS = 2.0
# below this angle (deg) between the axes their crossing is not defined to better than the
# lumen: the skeleton's fork is kept
MIN_AXIS_ANGLE_DEG = 20.0


def _axis(p: np.ndarray):
    """(centroid [3], unit direction [3] from the first to the last point) of points ``p`` [n, 3]."""
    c = p.mean(axis=0)
    u = np.linalg.svd(p - c, full_matrices=False)[2][0]
    return c, (u if np.dot(p[-1] - p[0], u) >= 0 else -u)


def _walk_up(pts, parent, nkids, f, length):
    """Point ids from ``f`` towards the root (``f`` first) over ``length`` mm, stopping before a
    point with several children (another fork) or at the root."""
    out, s, x = [f], 0.0, f
    while parent[x] >= 0 and nkids[parent[x]] == 1 and s < length:
        s += float(np.linalg.norm(pts[parent[x]] - pts[x]))
        x = int(parent[x])
        out.append(x)
    return out


def _walk_down(pts, kids, c, length, radius=None):
    """Point ids from ``c`` away from the root while each has one child, over ``length`` mm (the
    last may be a fork or an end). With ``radius`` [N] mm: on through forks into the widest child
    (the mean lumen radius of its first points), so that a daughter that forks again within a
    few mm still gets an axis."""
    out, s, x = [c], 0.0, c
    while (len(kids[x]) == 1 or (radius is not None and len(kids[x]) > 1)) and s < length:
        if len(kids[x]) == 1:
            y = kids[x][0]
        else:
            y = max(kids[x], key=lambda k: float(np.mean(radius[_walk_down(pts, kids, k, 3.0)])))
        s += float(np.linalg.norm(pts[y] - pts[x]))
        out.append(y)
        x = y
    return out


def place_junctions(pts: np.ndarray, radius: np.ndarray, parent: np.ndarray, alive: np.ndarray,
                    dist: np.ndarray, inside=None) -> None:
    """Move each fork of the rooted centreline (``parent`` [N], -1 at the root; points ``pts``
    [N, 3] mm, lumen ``radius`` [N] mm; only ``alive`` [N] points count) to the bifurcation's
    geometric centre (module docstring), in place: ``pts`` of the new fork point set to the
    centre, ``parent`` re-linked, daughters' points behind the centre (side by side in the
    parent's lumen) taken out of ``alive``. Forks are visited from the root outwards (``dist`` [N]
    mm from the root). A fork whose axes cross at less than ``MIN_AXIS_ANGLE_DEG``, whose centre
    lies farther than the parent's diameter from it, or whose pieces are too short to fit an
    axis is left where the skeleton put it; so is one whose centre lies outside the lumen
    (``inside``: a callable taking [m, 3] points, the same coordinates as ``pts``, returning bool
    [m]; None: not checked): a route runs through its branch points, and every point of a route
    must lie in the airway (a curved or tapering fork's axes can meet outside it)."""
    n = len(pts)
    par = np.where(alive & (parent >= 0), parent, -1)
    par = np.where((par >= 0) & alive[np.maximum(par, 0)], par, -1)
    kids: list[list[int]] = [[] for _ in range(n)]
    for c in np.flatnonzero(alive & (par >= 0)):
        kids[par[c]].append(int(c))
    forks = [int(f) for f in np.flatnonzero(alive) if len(kids[f]) >= 2]
    forks.sort(key=lambda f: dist[f])
    min_eig = 1.0 - np.cos(np.radians(MIN_AXIS_ANGLE_DEG))
    for f in forks:
        if not alive[f] or len(kids[f]) < 2:
            continue
        up0 = _walk_up(pts, par, _Counts(kids), f, 1e9)
        r_p = float(np.median(radius[up0[: max(3, len(up0) // 4)]])) if len(up0) > 1 else float(radius[f])
        up = _walk_up(pts, par, _Counts(kids), f, AXIS_DIAMETERS * 2 * r_p)
        lines, heads = [], []
        if len(up) >= 3:
            lines.append(_axis(pts[up[::-1]]))
        for c in kids[f]:
            r_d = float(np.median(radius[_walk_down(pts, kids, c, 4 * r_p, radius)]))
            head = _walk_down(pts, kids, c, r_p + AXIS_DIAMETERS * 2 * r_d)
            heads.append(head)
            way = _walk_down(pts, kids, c, r_p + AXIS_DIAMETERS * 2 * r_d, radius)
            d = np.linalg.norm(pts[way] - pts[f], axis=1)
            fit = [x for x, dx in zip(way, d) if dx > r_p]
            if len(fit) < 3:
                fit = way
            if len(fit) >= 2:
                lines.append(_axis(pts[fit]))
        if len(lines) < 2:
            continue
        m = np.zeros((3, 3))
        b = np.zeros(3)
        for c0, u in lines:
            q = np.eye(3) - np.outer(u, u)
            m += q
            b += q @ c0
        if np.linalg.eigvalsh(m)[0] < min_eig:
            continue
        centre = np.linalg.solve(m, b)
        if np.linalg.norm(centre - pts[f]) > 2 * r_p:
            continue
        if inside is not None and not bool(np.asarray(inside(centre[None]))[0]):
            continue
        cand = np.array(up + [x for h in heads for x in h])
        p = int(cand[np.argmin(np.linalg.norm(pts[cand] - centre, axis=1))])
        # re-link: the path root -> p stays; every daughter not holding p loses its points
        # behind the centre (along its own axis) and hangs on p
        on_tail = p in up
        if on_tail and p != f:
            for x in up[: up.index(p)]:          # f .. the point after p: dropped
                alive[x] = False
        for c, head in zip(list(kids[f]), heads):
            if p in head:
                continue
            u = _axis(pts[head])[1]
            ahead = (pts[head] - centre) @ u > 0
            k = int(np.argmax(ahead)) if ahead.any() else len(head) - 1
            k = min(k, len(head) - 1)
            for x in head[:k]:
                alive[x] = False
            first = head[k]
            old = int(par[first])
            if old >= 0 and first in kids[old]:
                kids[old].remove(first)
            par[first] = p
            parent[first] = p
            kids[p].append(first)
        if on_tail and p != f:
            for x in up[: up.index(p)]:
                kids[x] = [y for y in kids[x] if alive[y]]
            kids[p] = [y for y in kids[p] if alive[y]]
        pts[p] = centre


class _Counts:
    """len(kids[x]) by index (``_walk_up`` reads the number of children of a point)."""

    def __init__(self, kids):
        self.kids = kids

    def __getitem__(self, x):
        return len(self.kids[x])
