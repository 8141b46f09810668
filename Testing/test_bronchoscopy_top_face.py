"""The airway tree is rooted on the image face the mask is cut by at its superior end, whichever grid
face that is (`top_face.superior_face`), and a mask that ends inside the image is said to end so
many mm below its edge along S (new-user trial 103 F6.2, LOW-MED: the chest CTA's airways on a grid
rolled 45 degrees, its top face 20 mm above the carina, were refused as "root 8.9 mm wide ... the
airway mask ends 166 mm below the image's superior edge ... tilted 45 degrees": two grid axes were
equally aligned with S, and the tree was rooted on the face the mask does not reach; the 166 mm was
counted along that axis to the tilted box's far corner).

Grids: ATM 305 YangLab's mask (cropped around the airway, cheap) resampled with SimpleITK (nearest)
onto grids turned 30, 45 and 60 degrees about L-R then 10 about S, the first axis reversed,
0.7 x 0.8 x 0.9 mm; the image's top is a section of the turned grid's third axis (k) 20 mm above
the lumen split along that axis's direction. At 60 degrees the k axis is not the grid axis nearest
S (the j axis is, 30 degrees off S), at 45 neither is.

Checked independently of the tree: the route's first point lies on the k face's section within
10 mm of the top, in that section's widest 2-D lumen (8-connected; the trachea: above the carina
the widest airway a section cuts, Standring S (ed), Gray's Anatomy, 41st ed, 2016, ch. 'Trachea
and bronchi'), with no crescent-top trim (`mask_checks.trim_crescent_top`: a plane cutting the
trachea leaves a full section), and the route runs trachea -> the target's main bronchus; the gap along S is
measured by stepping up along S from the mask's highest voxel centre until the point leaves the
grid's voxel centres' box.
"""

from __future__ import annotations

import re

import cc3d
import numpy as np
import pytest
from test_bronchoscopy_tilted_top import _rotated

from imagio.errors import InputError
from imagio.planning import bronchoscopy as B
from imagio.planning.bronchoscopy.route import check_root, route_names

NAME = "ATM_305_0000_pred_YangLab.nii.gz"
TARGET = (-75.0, -45.0, -835.0)          # RAS, in the left lower lobe (test_bronchoscopy_tilted_top)
ABOVE_MM = 20.0
SPACING = (0.7, 0.8, 0.9)


def _grid(tmp_path, rx, cut_s_below_split=None):
    """(tilted Volume cut at its k face ``ABOVE_MM`` above the lumen split, split S, direction of
    the k face's outward normal RAS [3], the axial RAS-canonical Volume and its mask).
    ``cut_s_below_split``: the mask also cut axially that many mm below the split (a mask ending
    inside the image; negative: above the split, the trachea's segmentation stopping short)."""
    vol, mask, split, centre, t = _rotated(NAME, tmp_path, rx, 10.0, True, SPACING)
    col = np.asarray(t.direction, float)[:, 2]          # the k axis (array axis 0), RAS
    u = col if col[2] > 0 else -col
    assert abs(np.degrees(np.arccos(u[2])) - rx) < 1.0, u   # the grid is tilted as asked
    idx = np.zeros((t.shape[0], 3))
    idx[:, 0] = np.arange(t.shape[0])
    keep = np.flatnonzero(t.kji_to_world(idx) @ u <= centre @ u + ABOVE_MM)
    t = t.crop((int(keep.min()), 0, 0), (int(keep.max()) + 1, *t.shape[1:]))
    m = t.array > 0
    if cut_s_below_split is not None:
        kk, jj, ii = np.indices(m.shape)
        A = np.asarray(t.ijk_to_ras, float)
        m &= A[2, 0] * ii + A[2, 1] * jj + A[2, 2] * kk + A[2, 3] <= split - cut_s_below_split
    return t.with_array(m.astype(np.uint8)), split, u, vol, mask


@pytest.mark.data
@pytest.mark.parametrize("rx", [30.0, 45.0, 60.0])
def test_tilted_grid_is_rooted_on_the_face_that_cuts_the_trachea(tmp_path, rx):
    t, _, u, _, _ = _grid(tmp_path, rx)
    m = t.array > 0
    top = m.shape[0] - 1 if u @ np.asarray(t.direction, float)[:, 2] > 0 else 0
    assert np.take(m, top, axis=0).any()                  # the k face cuts the mask
    tree = B.extract_tree(t, root_check=False)
    route = B.plan_route(tree, B.Target.from_point(np.array(TARGET)), "thin")
    start = route.points[0]
    kji = np.rint(t.world_to_kji(start[None])[0]).astype(int)
    # the face is a plane cutting the trachea, which runs on above it: a full section, no crescent to trim
    # (the trim measured each slice's whole airway and dropped 3.6 mm of trachea at 30 and 60 degrees)
    assert not [w for w in tree.warnings if "cut obliquely" in w], tree.warnings
    assert abs(kji[0] - top) <= 1, (rx, kji, top)
    lab = cc3d.connected_components(m[kji[0]], connectivity=8)
    widest = np.argmax(np.bincount(lab.ravel())[1:]) + 1
    assert lab[kji[1], kji[2]] == widest, (rx, start)
    assert tree.top_gap_mm == 0, tree.top_gap_mm
    names = route_names(route.branch_names)
    side = "left" if TARGET[0] < start[0] else "right"
    assert names[:2] == ["trachea", f"{side}_main_bronchus"], (rx, names)
    assert check_root(tree) > 10.0


def _gap_along_s(vol, mask, step=0.05):
    """mm stepped up along S from the highest voxel centre of the mask's largest piece until the point leaves the box of
    the grid's voxel centres (brute force)."""
    cc = cc3d.connected_components(mask, connectivity=26)
    kji = np.argwhere(cc == np.argmax(np.bincount(cc.ravel())[1:]) + 1).astype(float)   # the tree's piece
    w = vol.kji_to_world(kji)
    p = w[np.argmax(w[:, 2])]
    s = np.arange(0.0, 400.0, step)
    q = vol.world_to_kji(p + s[:, None] * np.array([0.0, 0.0, 1.0]))
    inside = np.all((q > -1e-6) & (q < np.asarray(vol.shape) - 1 + 1e-6), axis=1)
    return float(s[np.argmin(inside)] - step)


@pytest.mark.data
def test_mask_ending_inside_a_tilted_grid_is_said_to_end_its_gap_along_s(tmp_path):
    """The mask cut axially 5 mm below its lumen split (the trachea left out) on the grid tilted 45
    degrees: refused (no trachea), and the refusal's distance below the image's superior edge is the
    distance along S from the mask's top to the image's edge (the old code counted slices along
    the other 45-degree axis: 122 mm for 44.5)."""
    t, _, _, _, _ = _grid(tmp_path, 45.0, cut_s_below_split=5.0)
    m = t.array > 0
    tree = B.extract_tree(t, root_check=False)
    want = _gap_along_s(t, m)
    assert want > 1.0
    assert abs(tree.top_gap_mm - want) <= 0.1, (tree.top_gap_mm, want)
    with pytest.raises(InputError) as e:
        check_root(tree)
    said = re.search(r"ends (\d+) mm below the image's superior edge \(along S", str(e.value))
    assert said and abs(int(said.group(1)) - want) <= 0.5 + 0.1, (want, str(e.value))


@pytest.mark.data
def test_trachea_ending_inside_a_tilted_grid_is_rooted_in_the_trachea(tmp_path):
    """The mask cut axially 15 mm above its lumen split (a trachea whose segmentation stops short of
    the image's top) on the grid tilted 45 degrees: the mask's end is level in S but not on the grid,
    and apical bronchi cut by the same plane rise as high as the trachea's end; the tree was rooted
    at one of them (4.5-4.9 mm) and refused as having no trachea. Planned from the trachea: the root
    lies in the widest lumen of the axial section through it (the original axial mask, cut alike),
    and the route runs trachea -> the target's main bronchus."""
    t, split, _, vol, mask = _grid(tmp_path, 45.0, cut_s_below_split=-15.0)
    tree = B.extract_tree(t, root_check=False)
    assert tree.top_gap_mm > 1.0, tree.top_gap_mm             # the mask ends inside the image
    root = tree.points[tree.root]
    assert root[2] <= split + 15.0
    k = int(np.rint(vol.world_to_kji(root[None])[0, 0]))
    lab = cc3d.connected_components(mask[k], connectivity=8)
    ji = np.rint(vol.world_to_kji(root[None])[0, 1:]).astype(int)
    assert lab[ji[0], ji[1]] == np.argmax(np.bincount(lab.ravel())[1:]) + 1, root
    assert check_root(tree) > 10.0
    route = B.plan_route(tree, B.Target.from_point(np.array(TARGET)), "thin")
    side = "left" if TARGET[0] < route.points[0][0] else "right"
    assert route_names(route.branch_names)[:2] == ["trachea", f"{side}_main_bronchus"], route.branch_names
