"""A bronchus's calibre, the lumen the scope's reach is judged on (`route.route_min_diameter`,
`section.branch_calibres`), is the same on any grid the airway mask is drawn on and whatever
happens elsewhere in the tree.

New-user trial 111: the reach read twice the wall distance at the centreline points (the
distance transform at the skeleton's voxel), which falls short by up to a voxel diagonal in steps
of the grid, at whichever voxel the skeleton passes. ATM 307's right middle lobe bronchus read
4.08 mm on its grid and 3.20 / 3.68 mm re-gridded (35 deg 1.6 mm, 40 deg 1.3 mm, nearest
neighbour), under the thin scope's 3.70 mm: the route stopped a generation earlier; a phantom RB6
sub-branch read 3.00 or 4.24 mm as a gap was cut in the right upper lobe. Scenes: analytic tubes
of known diameters on axial and tilted, isotropic and anisotropic grids (a voxel in the mask when
its centre is in the tube: a nearest-neighbour mask), and the phantom with and without that gap."""

import numpy as np
import pytest
from conftest import phantom_once, rotation

from imagio.planning import bronchoscopy as B
from imagio.planning.bronchoscopy.section import calibre_uncertainty_mm
from imagio.volume import Volume, make_ijk_to_ras
from test_bronchoscopy import _segment_mask as _capsules   # union of capsules (a, b, radius) in RAS

CARINA = np.array([0.0, 0.0, 0.0])
RMB, LMB = CARINA + [22, 0, -14], CARINA + [-24, 0, -14]
# (start, end, radius mm): trachea, main bronchi, and four segmental-like tubes of 4.0, 6.0, 5.0, 6.0 mm
TUBES = [(CARINA + [0, 0, 70], CARINA, 8.0), (CARINA, RMB, 6.0), (CARINA, LMB, 5.5),
         (RMB, RMB + [14, 8, -26], 2.0), (RMB, RMB + [6, -10, -28], 3.0),
         (LMB, LMB + [-14, 6, -26], 2.5), (LMB, LMB + [-4, -12, -28], 3.0)]
DAUGHTERS = TUBES[3:]
FLIP = np.diag([-1.0, -1.0, 1.0])
GRIDS = {   # spacing (i, j, k) mm, direction
    "axial 1.6 mm": ((1.6, 1.6, 1.6), FLIP),
    "tilted 35/10 deg 1.6 mm": ((1.6, 1.6, 1.6), rotation((0, 0, 1), 35) @ rotation((1, 0, 0), 10) @ FLIP),
    "tilted 40 deg 0.8 x 1.1 x 1.5 mm": ((0.8, 1.1, 1.5), rotation((1, 0, 0), 40) @ FLIP),
}


def _tree(spacing, direction, cut=None):
    """The tubes' tree on a grid of ``spacing`` and ``direction`` holding them (the trachea cut
    40 mm above the carina), ``cut`` (centre RAS, radius mm) a ball taken out of the mask."""
    ends = np.array([p for a, b, _ in TUBES for p in (a, b)])
    lo, hi = ends.min(0) - 4.0, ends.max(0) + 4.0
    hi[2] = CARINA[2] + 42.0
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    ijk = (corners - corners.mean(0)) @ direction / np.asarray(spacing)
    n = np.ceil(ijk.max(0) - ijk.min(0)).astype(int) + 1
    aff = make_ijk_to_ras(spacing, (0, 0, 0), direction)
    aff[:3, 3] = corners.mean(0) - aff[:3, :3] @ ((n - 1) / 2)
    vol = Volume(np.zeros(tuple(n[::-1]), np.uint8), aff)
    w = vol.kji_to_world(np.indices(vol.shape).reshape(3, -1).T)
    keep = w[:, 2] < CARINA[2] + 40
    if cut is not None:
        keep &= np.linalg.norm(w - cut[0], axis=1) > cut[1]
    return B.extract_tree(vol, _capsules(vol, TUBES) & keep.reshape(vol.shape), root_check=False)


def _measured(t, tubes):
    """The scope's lumen (`route_min_diameter`, mm) at the end of the branch that ends nearest
    each tube's end (``tubes``: (start, end, radius)), that branch ending within 4 mm of it."""
    rmin = B.route_min_diameter(t)
    out = []
    for _, end, _ in tubes:
        b = min(t.branches, key=lambda x: np.linalg.norm(t.points[x.point_ids[-1]] - end))
        assert np.linalg.norm(t.points[b.point_ids[-1]] - end) < 4.0
        out.append(float(rmin[b.point_ids[-1]]))
    return np.array(out)


@pytest.fixture(scope="module")
def trees():
    return {name: _tree(*g) for name, g in GRIDS.items()}


def test_a_tube_measures_its_diameter_on_any_grid(trees):
    """Each tube's lumen (4.0, 6.0, 5.0, 6.0 mm) is measured within 0.25 voxel (coarsest spacing)
    of its diameter on every grid, and within 0.4 mm across the grids (the old reach, twice the
    smoothed wall distance, read the 4 mm tube 3.20 mm and a 6 mm one 1.60 mm)."""
    true = np.array([2 * r for *_, r in DAUGHTERS])
    got = {name: _measured(t, DAUGHTERS) for name, t in trees.items()}
    for name, d in got.items():
        assert np.abs(d - true).max() <= 0.25 * max(GRIDS[name][0]), (name, d.round(2), true)
    all_d = np.array(list(got.values()))
    assert np.ptp(all_d, axis=0).max() <= 0.4, all_d.round(2)


def test_cutting_another_lobes_bronchus_leaves_a_lumen_unchanged(trees):
    """A 10 mm ball cut out of one left tube (a gap in the mask, as trial 111's 9.5 mm gap in the
    right upper lobe) leaves the right tubes' lumens within 0.1 voxel of the uncut tree's, and at
    their diameters."""
    name = "tilted 35/10 deg 1.6 mm"
    sp, d = GRIDS[name]
    right = TUBES[3:5]
    a, b, _ = TUBES[5]
    whole = _measured(trees[name], right)
    cut = _measured(_tree(sp, d, cut=((a + b) / 2, 5.0)), right)
    assert np.abs(cut - whole).max() <= 0.1 * max(sp), (whole, cut)
    assert np.abs(cut - [2 * r for *_, r in right]).max() <= 0.25 * max(sp), cut


def test_the_phantom_rb6_branches_are_not_moved_by_a_gap_in_the_right_upper_lobe():
    """The phantom (1.5 mm; memoised, as test_airways_trachea's) with the right upper lobe bronchus
    cut by a 6 mm ball at its middle (cases/airway_leak_gap.py's gap, trial 111): at the end of
    every bronchus of the right lower lobe to generation 5, the lumen the scope is judged on
    (`route_min_diameter`) is the same, within 0.25 voxel, at the nearest point of the cut tree (trial 111: an RB6 sub-branch, generation 5, read 3.00 mm whole and 4.24 mm with the cut,
    either side of the thin scope's 3.70 mm). Deeper, branch points move with the skeleton
    (a branch of 3 points whole, 5 cut): points are not matched one to one there."""
    from scipy.spatial import cKDTree

    ph = phantom_once(spacing=1.5, seed=0)
    L = ph.labels
    m = L.mask("trachea", "airways")
    rul = next(b for b in ph.airway_tree if b.name == "right_upper_lobe_bronchus")
    mid = (rul.start_ras + rul.end_ras) / 2
    idx = np.argwhere(m)
    cut = m.copy()
    cut[tuple(idx[np.linalg.norm(L.kji_to_world(idx) - mid, axis=1) <= 6.0].T)] = False
    t0 = B.extract_tree(L, m, root_check=False)
    t1 = B.extract_tree(L, cut, root_check=False)
    vox = calibre_uncertainty_mm(t0)
    assert vox == pytest.approx(1.5)
    rll = next(b.id for b in t0.branches if b.name == "right_lower_lobe_bronchus")
    sub = t0.subtree(rll)
    d0, d1 = B.route_min_diameter(t0), B.route_min_diameter(t1)
    alive1 = np.flatnonzero(t1.branch_of >= 0)
    ends = np.array([t0.branches[b].point_ids[-1] for b in sub if t0.branches[b].generation <= 5])
    assert len(ends) >= 3
    dist, k = cKDTree(t1.points[alive1]).query(t0.points[ends])
    assert (dist <= vox).all()
    diff = np.abs(d0[ends] - d1[alive1[k]])
    assert diff.max() <= 0.25 * vox, (diff.max(), t0.branch_of[ends][np.argmax(diff)])
