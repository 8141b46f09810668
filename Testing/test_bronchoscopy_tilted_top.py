"""An airway mask on a tilted grid (an oblique reformat) whose superior face cuts the trachea above
the carina plans as the same mask cut axially (new-user trial 101 F1, MED: ATM 307 timi and ATM 305
YangLab resampled 10-20 degrees off axial, top 10-45 mm above the carina, were refused as "root
1.9-4.6 mm wide, not a trachea: the trachea is not in the airway mask"; cut axially they planned).
On a tilted grid the superior face is not level: upper-lobe bronchi it cuts lie higher in S than the
trachea's section, and the tree was rooted at the highest centreline point in S, one of them.

Checked independently of the tree: the route's first point lies in the widest 2-D lumen (8-connected
component) of the tilted mask's section it lies in, near the grid's top (the trachea:
above the carina it is the widest airway a section cuts, Standring S (ed), Gray's Anatomy, 41st ed,
2016, ch. 'Trachea and bronchi'); the route runs trachea -> the main bronchus on the target's side
(of the root's R) and names the same airways as the axial cut's route. The masks are the ATM'22
predictions the trial used, cropped around the airway (cheap), resampled with SimpleITK (nearest)
at 0.8 mm; the cut is a grid section 20 mm above the lumen split along the grid's axial direction.
"""

from __future__ import annotations

import cc3d
import numpy as np
import pytest
from conftest import resample_rotated
from test_bronchoscopy_carina_view import _scan_from
from test_bronchoscopy_top_cut import ATM, _lumen_split_s

from imagio import io
from imagio.errors import InputError
from imagio.planning import bronchoscopy as B
from imagio.planning.bronchoscopy.route import check_root, route_names
from imagio.planning.bronchoscopy.tree import _superior_axis
from imagio.volume import as_ras_canonical

ABOVE_MM = 20.0   # the tilted grid's top: this far above the lumen split along the grid's axial direction
MARGIN = 8        # voxels around the airway's bounding box kept before resampling


def _rotated(name, tmp_path, rx, rz, flip, spacing=(0.8, 0.8, 0.8)):
    """(axial RAS-canonical Volume, its mask, lumen split S, the split's centre RAS [3], the mask
    resampled onto a grid turned ``rx`` deg about L-R then ``rz`` about S, ``flip``: its first axis
    reversed, ``spacing`` mm, uncut) of the ATM mask ``name``."""
    import SimpleITK as sitk

    f = ATM / name
    if not f.exists():
        pytest.skip(f"{f} not available")
    vol = as_ras_canonical(io.read_labels(f))[0]
    mask = vol.array > 0
    split = _lumen_split_s(vol, mask)
    # the split's centre: the widest lumen of the axial section just above it
    k = int(np.ceil(vol.world_to_kji(np.array([[0.0, 0.0, split]]))[0, 0] + 1))
    lab = cc3d.connected_components(mask[k], connectivity=8)
    ji = np.argwhere(lab == np.argmax(np.bincount(lab.ravel())[1:]) + 1).mean(axis=0)
    centre = vol.kji_to_world(np.array([[k, *ji]], float))[0]
    img = sitk.ReadImage(str(f))
    arr = sitk.GetArrayViewFromImage(img) > 0
    box = np.argwhere(arr)
    lo, hi = np.maximum(box.min(0) - MARGIN, 0), np.minimum(box.max(0) + MARGIN + 1, arr.shape)
    img = sitk.Cast(img[int(lo[2]):int(hi[2]), int(lo[1]):int(hi[1]), int(lo[0]):int(hi[0])] > 0, sitk.sitkUInt8)
    _, lab_o = resample_rotated(img, img, rx, rz, spacing, 0, flip_first=flip)
    sitk.WriteImage(lab_o, str(tmp_path / "tilted.nii.gz"))
    return vol, mask, split, centre, io.read_labels(tmp_path / "tilted.nii.gz")


def _tilted(name, tmp_path, rx, rz, flip):
    """(axial RAS-canonical Volume, its mask, tilted Volume) of the ATM mask ``name``: the tilted one
    resampled onto a grid turned ``rx`` deg about L-R then ``rz`` about S (``flip``: its first axis
    reversed), its top the grid section ``ABOVE_MM`` above the lumen split's centre along the grid's
    axial direction (the mask cut there, as a scan whose superior edge is that section)."""
    vol, mask, split, centre, t = _rotated(name, tmp_path, rx, rz, flip)
    axis, up = _superior_axis(t)
    u = np.asarray(t.direction, float)[:, 2 - axis] * (1.0 if up else -1.0)   # the grid's axial direction (RAS)
    n = t.shape[axis]
    idx = np.zeros((n, 3))
    idx[:, axis] = np.arange(n)
    height = t.kji_to_world(idx) @ u                      # each section's height along the axial direction
    keep = np.flatnonzero(height <= centre @ u + ABOVE_MM)
    a, b = np.zeros(3, int), np.array(t.shape)
    a[axis], b[axis] = keep.min(), keep.max() + 1
    t = t.crop(a, b)
    t = t.with_array((t.array > 0).astype(np.uint8))
    tilt = np.degrees(np.arccos(abs(u[2])))
    assert tilt > 0.8 * rx, tilt                           # the grid is tilted as asked
    return vol, mask, split, t


@pytest.mark.data
@pytest.mark.parametrize("name,target,rx,rz,flip", [
    ("ATM_307_0000_pred_timi.nii.gz", (-48.1, -53.8, -879.2), 20.0, 10.0, True),
    ("ATM_305_0000_pred_YangLab.nii.gz", (-75.0, -45.0, -835.0), 10.0, 0.0, False),
])
def test_tilted_grid_top_above_the_carina_plans_from_the_trachea(tmp_path, name, target, rx, rz, flip):
    vol, mask, split, t = _tilted(name, tmp_path, rx, rz, flip)
    tree = B.extract_tree(t, root_check=False)
    route = B.plan_route(tree, B.Target.from_point(np.array(target)), "thin")
    names = route_names(route.branch_names)
    start = route.points[0]
    # independent: the route starts in the widest 2-D lumen of its own section, on the grid's top section or
    # the next: the top face is a plane cutting the trachea, which runs on above it, so its section is full
    # and no crescent is trimmed (ATM 305 at 10 deg: the trim, measuring each slice's whole airway, the
    # upper-lobe bronchi's included, dropped 7 full tracheal sections, 5.6 mm, with a "cut obliquely" warning)
    assert not [w for w in tree.warnings if "cut obliquely" in w], tree.warnings
    m = t.array > 0
    axis, up = _superior_axis(t)
    kji = np.rint(t.world_to_kji(start[None])[0]).astype(int)
    top = m.shape[axis] - 1 if up else 0
    assert abs(kji[axis] - top) <= 1, (kji, top)
    sec = np.take(m, kji[axis], axis=axis)
    lab = cc3d.connected_components(sec, connectivity=8)
    widest = np.argmax(np.bincount(lab.ravel())[1:]) + 1
    assert lab[tuple(np.delete(kji, axis))] == widest, (start, names)
    side = "left" if target[0] < start[0] else "right"
    assert names[:2] == ["trachea", f"{side}_main_bronchus"], names
    assert check_root(tree) > 10.0
    # the same mask cut axially at the same height above the split: the same airways
    ax_vol, ax_mask = _scan_from(vol, mask, split + ABOVE_MM)
    ax_route = B.plan_route(B.extract_tree(ax_vol, ax_mask, root_check=False),
                            B.Target.from_point(np.array(target)), "thin")
    assert names[:3] == route_names(ax_route.branch_names)[:3], (names, route_names(ax_route.branch_names))
    assert route.target_lobe == ax_route.target_lobe and route.target_lobe, (route.target_lobe, ax_route.target_lobe)


@pytest.mark.data
def test_tilted_grid_whose_trachea_ends_below_its_top_names_the_tilt(tmp_path):
    """The trachea's lumen removed from the tilted grid's top 15 mm (its segmentation stopping short
    of the tilted face, upper-lobe bronchi still cut by it): the tree has no trachea at its top and is
    refused, and the refusal names the tilted grid (the widest airway at a tilted top need not be the
    trachea), not only a missing trachea."""
    _, _, _, t = _tilted("ATM_305_0000_pred_YangLab.nii.gz", tmp_path, 10.0, 0.0, False)
    m = t.array > 0
    axis, up = _superior_axis(t)
    n = int(round(15.0 / float(t.spacing_kji[axis])))
    for s in range(n):
        i = m.shape[axis] - 1 - s if up else s
        at = tuple(i if a == axis else slice(None) for a in range(3))
        lab = cc3d.connected_components(m[at], connectivity=8)
        m[at] &= lab != np.argmax(np.bincount(lab.ravel())[1:]) + 1
    tree = B.extract_tree(t.with_array(m.astype(np.uint8)), root_check=False)
    with pytest.raises(InputError, match=r"tilted \d+ degrees"):
        check_root(tree)


@pytest.mark.data
def test_tilted_grid_trachea_cut_obliquely_is_one_branch(tmp_path):
    """ATM 307 (timi) re-gridded 35 degrees about L-R, uncut (new-user trial 106 L7): the trachea's
    flat top (the scan's edge) is oblique on the new grid and ends inside it. Its top section left
    after the crescent trim is a ragged oblique cut; TEASAR's paths into the continuation above it left
    two 15-17 mm side branches at the root, longer than the spur test allows, and the route read
    'trachea', 'trachea' (two branches, one name). Checked: one branch named trachea, the root's
    branch; it divides into the two main bronchi (the carina); the route names no airway twice."""
    *_, t = _rotated("ATM_307_0000_pred_timi.nii.gz", tmp_path, 35.0, 0.0, False)
    tree = B.extract_tree(t, root_check=False)
    names = [b.name for b in tree.branches]
    assert names.count("trachea") == 1, [(b.id, b.parent, b.name, round(b.length_mm, 1)) for b in tree.branches[:4]]
    top = tree.branches[tree.branch_of[tree.root]]
    assert top.name == "trachea"
    assert sorted(tree.branches[c].name for c in top.children) == ["left_main_bronchus", "right_main_bronchus"]
    route = B.plan_route(tree, B.Target.from_point(np.array((-48.1, -53.8, -879.2))), "thin")
    rn = route_names(route.branch_names)
    assert len(rn) == len(set(rn)) and rn[:2] == ["trachea", "left_main_bronchus"], rn
