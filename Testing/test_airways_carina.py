"""The carina of the rule-based airways (`segmentation.airways.split_trachea`) is a bifurcation:
two lumens that stay apart and run on, as the main bronchi do (the airways form a tree: Weibel ER,
Morphometry of the Human Lung, 1963; each main bronchus 25-50 mm long: Gray's Anatomy, 41st ed.).
A lumen divided in-plane for a few mm at the top of the tree (the larynx's folds and ventricles
at the top face of a scan, a pocket beside the trachea) is no carina. Before, the first slice
with two sizeable lumens was taken as the carina, so on the chest CTA cropped through the lower
trachea (audit fov2) the whole 24 mL trachea was labelled "airways" (bronchi) and 0.3 mL
"trachea", with no warning.

Synthetic truth: an analytic trachea (16 mm lumen), a blind pocket beside its top that ends 5 mm
lower (or, second case, joins the trachea again), and two main bronchi leaving the carina at 30
degrees, voxelised on an axial grid and on an anisotropic, flipped, 15-degree oblique grid. The
check is the analytic carina height and the tube's own Dice, not the code's figures."""

import numpy as np
import pytest

from imagio.segmentation.airways import split_trachea
from imagio.segmentation.common import (anatomical_axes, crop_slices, dice, ras_coordinate)
from imagio.volume import Volume, make_ijk_to_ras

R_TRACHEA, R_POCKET, R_BRONCHUS = 8.0, 5.0, 6.0
POCKET_Y = 16.0            # pocket centre in front of the tracheal axis (3 mm wall between)
TOP, POCKET_LOW = 100.0, 90.0   # the pocket spans S 90-97, joined to the trachea at S 96-98
BRONCHUS_DEG, BRONCHUS_MM = 30.0, 40.0
# the carina as seen in axial slices: where the two bronchial lumens part, their axes 2 radii apart
CARINA_S = -R_BRONCHUS / np.tan(np.radians(BRONCHUS_DEG))


def _grid(kind):
    if kind == "axial":
        aff = make_ijk_to_ras((1.0, 1.0, 1.0), (-40.0, -30.0, -45.0))
        return Volume(np.zeros((150, 60, 80), np.uint8), aff)
    t = np.radians(15.0)
    rot = np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])
    d = rot @ np.diag([-1.0, 1.0, 1.0])          # i flipped, tilted about A
    aff = make_ijk_to_ras((0.8, 0.9, 1.4), (0.0, 0.0, 0.0), d)
    shape = (130, 80, 120)
    centre_ijk = (np.array(shape[::-1]) - 1) / 2.0
    aff[:3, 3] = np.array([0.0, 0.0, 45.0]) - aff[:3, :3] @ centre_ijk
    return Volume(np.zeros(shape, np.uint8), aff)


def _lowest_slice_s(vol, mask):
    """Mean RAS S (mm) of the mask's voxels in its lowest slice along the array axis nearest S
    (on a tilted grid a slice's own height, not its lowest corner)."""
    s_ax, s_sign = anatomical_axes(vol)["S"]
    kji = np.argwhere(mask)
    end = kji[:, s_ax].min() if s_sign > 0 else kji[:, s_ax].max()
    return float(vol.kji_to_world(kji[kji[:, s_ax] == end])[:, 2].mean())


def _seg_dist(p, a, b):
    """Distance (mm) of points p [..., 3] from the segment a-b."""
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[..., None] * ab), axis=-1)


def _airway(vol, pocket_rejoins):
    """(airway mask, trachea truth) [k, j, i]: the analytic tree sampled at voxel centres."""
    x, y, z = (np.broadcast_to(ras_coordinate(vol, r), vol.shape) for r in range(3))
    trachea = (x ** 2 + y ** 2 <= R_TRACHEA ** 2) & (z >= 0.0) & (z <= TOP)
    pocket = (x ** 2 + (y - POCKET_Y) ** 2 <= R_POCKET ** 2) & (z >= POCKET_LOW) & (z <= 97.0)
    bridge = (np.abs(x) <= 3.0) & (y >= 0.0) & (y <= POCKET_Y) & (z >= 96.0) & (z <= 98.0)
    if pocket_rejoins:   # a loop: joined again at its lower end
        bridge |= (np.abs(x) <= 3.0) & (y >= 0.0) & (y <= POCKET_Y) & (z >= POCKET_LOW) & (z <= POCKET_LOW + 2.0)
    p = np.stack([x, y, z], -1)
    s = np.sin(np.radians(BRONCHUS_DEG)) * BRONCHUS_MM
    c = np.cos(np.radians(BRONCHUS_DEG)) * BRONCHUS_MM
    o = np.zeros(3)
    bronchi = ((_seg_dist(p, o, np.array([s, 0.0, -c])) <= R_BRONCHUS)
               | (_seg_dist(p, o, np.array([-s, 0.0, -c])) <= R_BRONCHUS))
    return trachea | pocket | bridge | bronchi, trachea


@pytest.mark.parametrize("pocket_rejoins", [False, True], ids=["blind pocket", "rejoining lumen"])
@pytest.mark.parametrize("kind", ["axial", "oblique"])
def test_a_divided_lumen_at_the_top_is_not_the_carina(kind, pocket_rejoins):
    """The trachea ends within 3 mm of where the analytic bronchi part (``CARINA_S``, -10.4 mm)
    and has Dice >= 0.85 against the analytic tube (pocket and bronchi are not trachea). Old
    code: the carina was put in the pocket's slices (S ~ 96), trachea Dice ~0.1."""
    vol = _grid(kind)
    airway, truth = _airway(vol, pocket_rejoins)
    trachea, bronchi, carina = split_trachea(vol, airway)
    assert carina is not None
    low = _lowest_slice_s(vol, trachea)
    d = dice(trachea, truth)
    assert abs(low - CARINA_S) <= 3.0 and d >= 0.85, (kind, pocket_rejoins, round(float(low), 1), round(d, 3))
    # both main bronchi are airways, not trachea
    x = np.broadcast_to(ras_coordinate(vol, 0), vol.shape)
    z = np.broadcast_to(ras_coordinate(vol, 2), vol.shape)
    for side in (x > 15.0, x < -15.0):
        assert (bronchi & side & (z < -10.0)).sum() > 0.9 * (airway & side & (z < -10.0)).sum()


@pytest.mark.parametrize("kind", ["axial", "oblique"])
def test_main_bronchi_cut_just_below_the_carina_still_give_the_carina(kind):
    """The rule must not lose a real carina when the view's lower face cuts the main bronchi
    10 mm below it (they run to the tree's lowest slice, less than the 20 mm check): carina
    within 3 mm of ``CARINA_S``."""
    vol = _grid(kind)
    airway, truth = _airway(vol, False)
    s_ax, s_sign = anatomical_axes(vol)["S"]
    z = np.moveaxis(ras_coordinate(vol, 2), s_ax, 0).reshape(vol.shape[s_ax], -1).mean(1)
    keep = np.flatnonzero(z >= CARINA_S - 10.0)
    sl = [slice(None)] * 3
    sl[s_ax] = slice(int(keep.min()), int(keep.max()) + 1)
    sl = tuple(sl)
    c = crop_slices(vol, sl)
    trachea, bronchi, carina = split_trachea(c, airway[sl])
    assert carina is not None and bronchi.any()
    low = _lowest_slice_s(c, trachea)
    assert abs(low - CARINA_S) <= 3.0, (kind, round(float(low), 1))


@pytest.mark.slow
@pytest.mark.data
def test_chest_cta_without_its_carina_keeps_its_trachea(shared_data):
    """The chest CTA cropped so that its lower face cuts the trachea 10 and 30 mm above the
    carina (a neck-to-upper-chest field of view): the trachea in view must be labelled trachea,
    as in the uncropped run over the same region (Dice >= 0.9), and at most 1 mL of it "airways".
    Old code: a fold at the top of the tree was taken for the carina, trachea 0.25 mL and the
    rest (23 / 17.5 mL) labelled bronchi, with no warning."""
    from imagio import io
    from imagio.segmentation.rules import segment_masks

    ct = io.read_image(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz")
    ref, _ = segment_masks(ct, ("airways",))
    carina_s = _lowest_slice_s(ct, ref["trachea"])
    s_ax = anatomical_axes(ct)["S"][0]
    zs = np.moveaxis(ras_coordinate(ct, 2), s_ax, 0).reshape(ct.shape[s_ax], -1)[:, 0]
    for above_mm in (10.0, 30.0):
        keep = np.flatnonzero(zs >= carina_s + above_mm)
        sl = [slice(None)] * 3
        sl[s_ax] = slice(int(keep.min()), int(keep.max()) + 1)
        sl = tuple(sl)
        c = crop_slices(ct, sl)
        m, meta = segment_masks(c, ("airways",))
        assert "trachea" in m, (above_mm, meta["warnings"])
        d = dice(m["trachea"], ref["trachea"][sl])
        misnamed = float((m["airways"] & ref["trachea"][sl]).sum() * c.voxel_volume_ml)
        assert d >= 0.9 and misnamed <= 1.0, (above_mm, round(d, 3), round(misnamed, 2))
