"""A leak of the airway growing into lung parenchyma is rejected however little lung is in view.

Trial 26 (HIGH): the chest CTA cropped to a 120 mm field of view gave "airways" 103 mL instead of
21.8 mL: at -860 HU the growing joined 24 mL of right-lung parenchyma (median -863 HU), a gain
too small beside the tree and the few lungs in view for the volume tests (the tree doubling,
12 % of the lung air). An airway lumen is air (its core below -950 HU, Gevenois 1996); the
parenchyma is -700 to -900 HU, and a bronchus gained at a higher threshold is thin (the airways
narrow outward: Weibel 1963). So a step that joins a piece of parenchyma-density voxels larger
than a segmental bronchus beyond the tree's rim has leaked.

Synthetic truth: an analytic trachea (air), a bronchus (air) with a thin peripheral bronchus
(-920 HU, partial volume), and a 8 mL block of parenchyma (-860 HU) joined to the trachea by a
3 mm neck, in a small field of view whose lungs (-700 HU) hold little air. The check is the
analytic tree's volume and overlap, not the code's figures."""

import numpy as np
import pytest

from imagio.segmentation.airways import grow_airways
from imagio.segmentation.common import crop_slices, dice, ras_coordinate
from imagio.volume import Volume, make_ijk_to_ras


def _chest_block():
    d = np.diag([-1.0, 1.0, 1.0])                # i runs towards the patient's right
    aff = make_ijk_to_ras((1.5, 1.2, 1.8), (60.0, -60.0, -60.0), d)
    vol = Volume(np.zeros((67, 100, 80), np.int16), aff)
    x, y, z = (np.broadcast_to(ras_coordinate(vol, r), vol.shape) for r in range(3))
    trachea = (x ** 2 + y ** 2 <= 8.0 ** 2) & (z >= -20.0) & (z <= 55.0)
    bronchus = (y ** 2 + z ** 2 <= 4.0 ** 2) & (x <= 0.0) & (x >= -35.0)
    small = (y ** 2 + z ** 2 <= 1.5 ** 2) & (x < -35.0) & (x >= -50.0)     # peripheral bronchus
    block = (x >= 20.0) & (x <= 40.0) & (np.abs(y) <= 10.0) & (z >= 0.0) & (z <= 20.0)
    neck = (x > 7.0) & (x < 20.0) & (np.abs(y) <= 1.5) & (np.abs(z - 10.0) <= 1.5)
    a = np.full(vol.shape, 40, np.int16)          # soft tissue
    a[z < -35.0] = -700                            # lung, never an airway
    a[block] = -860
    a[neck] = -900
    a[small] = -920
    a[trachea | bronchus] = -1000
    ct = Volume(a, aff)
    return ct, trachea | bronchus | small | neck, block


def test_a_parenchyma_block_joined_by_a_thin_neck_is_no_airway():
    ct, truth, block = _chest_block()
    body = np.ones(ct.shape, bool)
    x, y, z = (np.broadcast_to(ras_coordinate(ct, r), ct.shape) for r in range(3))
    seed = np.argwhere((x ** 2 + y ** 2 <= 4.0) & (np.abs(z - 40.0) <= 2.0))[0]
    tree, info = grow_airways(ct, seed, body)
    assert not (tree & block).any(), info          # old code: the 8 mL block was "airway"
    assert dice(tree, truth) >= 0.95, info
    small = (y ** 2 + z ** 2 <= 1.5 ** 2) & (x < -35.0) & (x >= -50.0)
    assert (tree & small).sum() >= 0.9 * small.sum()   # the thin bronchus is kept


@pytest.mark.slow
@pytest.mark.data
def test_chest_cta_small_field_of_view_airways_match_the_full_view(shared_data):
    """The chest CTA cropped to 120 x 120 mm in-plane around its centre, all slices (trial 26):
    its bronchi must match the uncropped run's bronchi in the same region (volume within 15 %,
    Dice >= 0.85). Old code: 103.2 vs 21.8 mL (an 81 mL piece of right lung), Dice 0.35."""
    from imagio import io
    from imagio.segmentation import airways as aw, body as bd

    ct = io.read_image(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz")
    n = 40
    ci, cj = ct.shape[2] // 2, ct.shape[1] // 2
    sl = (slice(None), slice(cj - n, cj + n), slice(ci - n, ci + n))
    ref_tr, ref_br, _ = aw.airway_masks(ct, bd.body_mask(ct))
    c = crop_slices(ct, sl)
    tr, br, info = aw.airway_masks(c, bd.body_mask(c))
    ref = ref_br[sl]
    v, v_ref = br.sum() * c.voxel_volume_ml, ref.sum() * c.voxel_volume_ml
    assert abs(v - v_ref) <= 0.15 * v_ref, (v, v_ref, info["steps_ml"])
    assert dice(br, ref) >= 0.85, (v, v_ref)
    assert dice(tr | br, ref_tr[sl] | ref) >= 0.9


@pytest.mark.parametrize("leak_mm", [0.0, 15.0], ids=["tree", "bulky leak"])
def test_a_bronchial_part_wider_than_the_trachea_is_warned(leak_mm):
    """No bronchus is wider than the trachea (Weibel 1963): a tree whose bronchi hold a 30 mm
    ball of lumen (a leak into a bulla or the parenchyma that the growing rules could not
    exclude) is warned, with both inscribed diameters; a plain tree (16 mm trachea, 12 mm main
    bronchi) is not."""
    from imagio.segmentation.airways import wider_than_trachea

    aff = make_ijk_to_ras((0.9, 1.1, 1.6), (-50.0, 50.0, -80.0), np.diag([1.0, -1.0, 1.0]))
    vol = Volume(np.zeros((110, 95, 115), np.int16), aff)
    x, y, z = (np.broadcast_to(ras_coordinate(vol, r), vol.shape) for r in range(3))
    trachea = (x ** 2 + y ** 2 <= 8.0 ** 2) & (z >= 0.0) & (z <= 80.0)
    bronchi = (y ** 2 + (z + 0.5 * np.abs(x)) ** 2 <= 6.0 ** 2) & (np.abs(x) <= 40.0) & (z < 0.0)
    if leak_mm:
        bronchi |= (x - 30.0) ** 2 + y ** 2 + (z + 30.0) ** 2 <= leak_mm ** 2
    wide = wider_than_trachea(vol, trachea, bronchi & ~trachea)
    if not leak_mm:
        assert wide is None
    else:
        assert wide is not None
        assert abs(wide[0] - 16.0) <= 3.0 and abs(wide[1] - 2 * leak_mm) <= 3.0
