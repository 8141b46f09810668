"""A dissected aorta (issue 14): the false lumen (enhanced blood at 230 HU, below the pool's band
and below arterial-phase ``min_blood_peak_hu``) is taken into the contrast blood pool by
`blood_pool.extend_pool` with the true lumen's crescent; an enhancing organ (230 HU, the spleen of
a CT angiography) joined to the aorta only by a 5 mm branch artery is not; and where the false
lumen is left unlabelled beside the spine, `paravertebral_pool_warning` says so in mL.

Phantom on an oblique (rotated about an oblique axis), anisotropic grid, geometry in RAS mm."""

import numpy as np
import pytest
from conftest import rotation

from imagio.segmentation import blood_pool as bp
from imagio.segmentation.bones import contrast_blood_pool
from imagio.volume import Volume, make_ijk_to_ras


def _phantom(spacing_ijk, direction, false_hu=230.0, fat=False, true_from=7.0):
    """Soft tissue 40 HU in an elliptic body; a 'heart' (radius 30 mm, 480 HU); an arch (radius
    10 mm, 480 HU) from the heart back to beside a vertebral body (radius 12 mm, 2 mm cortex of
    1000 HU, 150 HU inside); the descending aorta (radius 11 mm) down along it: a 4 mm crescent of
    true lumen (480 HU) on its anterior side, the rest false lumen (230 HU); an 'organ' ball
    (radius 25 mm, 230 HU) lateral to it, joined to the aorta by a 5 mm 'artery' (480 HU). Noise
    SD 10 HU. Returns the CT, body, vertebra, false lumen and organ masks.

    false_hu: the false lumen's HU (50: thrombosed, non-enhancing). true_from: where the true
    lumen begins, mm anterior of the aorta's axis (7: a 4 mm crescent; 1: a 10 mm lumen). fat: the posterior
    mediastinum as it is, periaortic fat (-100 HU) within 30 mm of the descending aorta's axis,
    with an oesophagus (a collapsed 14 x 10 mm tube of 40 HU) against
    the aorta's right side."""
    sp = np.asarray(spacing_ijk, float)
    ext = np.array([190.0, 170.0, 90.0])
    n = np.round(ext / sp).astype(int)
    d = np.asarray(direction, float)
    origin = -(d * sp) @ ((n - 1) / 2.0)
    ct = Volume(np.zeros(tuple(n[::-1]), np.float32), make_ijk_to_ras(sp, origin, d))
    k, j, i = np.indices(ct.shape)
    ras = ct.kji_to_world(np.stack([k, j, i], -1).reshape(-1, 3)).reshape(ct.shape + (3,))
    x, y, z = ras[..., 0], ras[..., 1], ras[..., 2]
    body = ((x / 88.0) ** 2 + (y / 78.0) ** 2 <= 1.0) & (np.abs(z) <= 40.0)
    heart = np.sqrt(x ** 2 + (y - 30.0) ** 2 + (z - 15.0) ** 2) <= 30.0
    vr = np.hypot(x, y + 45.0)
    vert = vr <= 12.0
    arch = (np.hypot(x - 24.0, z - 15.0) <= 10.0) & (y >= -40.0) & (y <= 20.0) & ~heart
    dr = np.hypot(x - 24.0, y + 40.0)
    desc = (dr <= 11.0) & (z <= 15.0) & (z >= -35.0) & ~arch
    true_lumen = desc & (y + 40.0 >= true_from)
    false_lumen = desc & ~true_lumen & (dr <= 9.5) & (z <= 5.0)   # inside the flap, below the arch
    organ = np.sqrt((x - 62.0) ** 2 + (y + 30.0) ** 2 + (z + 15.0) ** 2) <= 25.0
    artery = (np.hypot(y + 35.0, z + 15.0) <= 2.5) & (x >= 30.0) & (x <= 45.0)
    a = np.where(body, 40.0, -1000.0)
    if fat:
        a[body & (dr <= 30.0) & ~vert & (vr > 13.0)] = -100.0
        a[body & (((x - 6.0) / 7.0) ** 2 + ((y + 34.0) / 5.0) ** 2 <= 1.0)] = 40.0
    a[vert] = 150.0
    a[vert & (vr > 10.0)] = 1000.0
    a[heart | arch | true_lumen | artery] = 480.0
    a[desc & ~true_lumen] = false_hu
    a[organ] = 230.0
    a += np.random.default_rng(5).normal(0.0, 10.0, a.shape)
    ct.array = a.astype(np.float32)
    return ct, body, vert, false_lumen, organ


GRIDS = [((1.2, 0.9, 2.0), rotation((1.0, 2.0, 3.0), 25.0)),
         ((1.5, 1.5, 3.0), np.diag([-1.0, 1.0, -1.0]) @ rotation((0.0, 1.0, 1.0), 15.0))]


@pytest.mark.parametrize("spacing,direction", GRIDS, ids=["oblique_aniso", "flipped_3mm"])
def test_extend_pool_takes_the_false_lumen_not_the_organ(spacing, direction):
    ct, body, vert, false_lumen, organ = _phantom(spacing, direction)
    pool = contrast_blood_pool(ct, body, None, vert)
    assert pool is not None
    assert pool[false_lumen].mean() < 0.2            # below the pool's band: missed by the pool
    ext = bp.extend_pool(ct, pool, body, None, vert)
    # main: ~0 (230 HU is below min_blood_peak_hu, 260 HU)
    assert ext[false_lumen].mean() >= 0.9
    assert ext[organ].mean() < 0.05                  # a 5 mm branch does not join the organ
    assert not (ext & vert).any()


@pytest.mark.parametrize("spacing,direction", GRIDS, ids=["oblique_aniso", "flipped_3mm"])
def test_unlabelled_false_lumen_beside_the_spine_is_warned_in_ml(spacing, direction):
    ct, body, vert, false_lumen, organ = _phantom(spacing, direction)
    pool = contrast_blood_pool(ct, body, None, vert)
    w = bp.paravertebral_pool_warning(ct, pool, vert, body, None, vert)
    # main: no warning (the false lumen is below 260 HU)
    assert "mL" in w and "spine" in w
    ml = float(w.split(" mL")[0].split()[-1])
    fl_ml = false_lumen.sum() * ct.voxel_volume_ml
    assert 0.3 * fl_ml <= ml <= 1.5 * fl_ml + 5.0
    # once the pool holds the false lumen, nothing is said
    ext = bp.extend_pool(ct, pool, body, None, vert)
    assert bp.paravertebral_pool_warning(ct, ext, vert, body, None, vert) == ""


@pytest.mark.parametrize("spacing,direction", GRIDS, ids=["oblique_aniso", "flipped_3mm"])
def test_thrombosed_false_lumen_is_warned(spacing, direction):
    """A thrombosed false lumen (50 HU, no enhancement; LePage 2001; a 10 mm crescent) against
    the enhanced true lumen (10 mm across): extend_pool cannot take it (not enhanced blood) and it stays
    'body'; `nonenhancing_crescent_warning` says so. With the false lumen enhanced (230 HU,
    joined to the pool) or without a dissection (the whole lumen at 480 HU), the same aorta in
    its fat with the oesophagus against it gives no warning (main: no such warning at all)."""
    ct, body, vert, false_lumen, organ = _phantom(spacing, direction, false_hu=50.0, fat=True,
                                                  true_from=1.0)
    pool = bp.extend_pool(ct, contrast_blood_pool(ct, body, None, vert), body, None, vert)
    assert pool[false_lumen].mean() < 0.1
    w = bp.nonenhancing_crescent_warning(ct, pool, vert, body, None, vert)
    assert "non-enhancing crescent" in w and "descending aorta" in w, w
    for false_hu in (230.0, 480.0):
        ct, body, vert, false_lumen, organ = _phantom(spacing, direction, false_hu=false_hu, fat=True,
                                                      true_from=1.0)
        pool = bp.extend_pool(ct, contrast_blood_pool(ct, body, None, vert), body, None, vert)
        assert pool[false_lumen].mean() >= 0.9
        assert bp.nonenhancing_crescent_warning(ct, pool, vert, body, None, vert) == "", false_hu


def _spine_against_aorta(spacing, direction):
    """`_phantom` with the vertebral body's marrow at 280 HU (cancellous bone in the arterial
    phase reads in the pool's band, 150-450 HU) and, as at a 3 mm grid, its cortex on the
    aorta's side and the 1.5 mm of tissue between them blurred into the band (280 HU), so that
    the marrow touches the descending aorta's lumen through band density. Returns the CT, body,
    the bone found (the rest of the cortex), the marrow, and the false lumen."""
    ct, body, vert, false_lumen, _ = _phantom(spacing, direction)
    k, j, i = np.indices(ct.shape)
    ras = ct.kji_to_world(np.stack([k, j, i], -1).reshape(-1, 3)).reshape(ct.shape + (3,))
    x, y = ras[..., 0], ras[..., 1] + 45.0          # from the vertebral body's axis
    vr = np.hypot(x, y)
    marrow = vert & (vr <= 10.0)
    facing = (x * 24.0 + y * 5.0) >= 0.8 * vr * np.hypot(24.0, 5.0)   # within ~37 deg of the aorta
    gap = facing & (vr > 10.0) & (np.hypot(x - 24.0, y + 5.0) > 11.0) & (vr <= 14.0) & body
    rng = np.random.default_rng(6)
    blur = marrow | (vert & facing) | gap
    ct.array[blur] = (280.0 + rng.normal(0.0, 10.0, int(blur.sum()))).astype(np.float32)
    bone = vert & ~blur
    return ct, body, bone, marrow, false_lumen


@pytest.mark.parametrize("spacing,direction", GRIDS, ids=["oblique_aniso", "flipped_3mm"])
def test_extend_pool_does_not_take_the_marrow_of_a_vertebra_against_the_aorta(spacing, direction):
    """New-user trial 79: at 3 mm the chest CTA's vertebral bodies beside the descending aorta
    were labelled great_vessels (their cortex on the aorta's side blurred into the pool's band);
    `lumen.bone_walled_pieces` keeps the marrow out. Here the false lumen and the marrow are one
    piece (joined through the blurred cortex), walled more by bone than joined to the pool: both
    are left out, and the paravertebral warning says so in mL (without that contact the false
    lumen is taken: `test_extend_pool_takes_the_false_lumen_not_the_organ`)."""
    ct, body, bone, marrow, false_lumen = _spine_against_aorta(spacing, direction)
    pool = contrast_blood_pool(ct, body, None, bone)
    ext = bp.extend_pool(ct, pool, body, None, bone)
    assert ext[marrow].mean() < 0.05
    assert not (ext & bone).any()
    if ext[false_lumen].mean() < 0.9:
        assert "mL" in bp.paravertebral_pool_warning(ct, ext, bone | marrow, body, None, bone)


@pytest.mark.xfail(strict=True, reason=(
    "known limit (found 2026-12-06 after new-user trial 90 L: the chest CTA resampled 20/12 degrees "
    "oblique was warned of a crescent, the axial original not): the union of the lumen with the "
    "thrombus-density tissue within the aorta's radius is dilated in 3-D, so on this axial grid the "
    "no-dissection aorta (480 HU throughout) is warned from the soft tissue beyond its fat ('up to 13 mm "
    "thick', planes z -14..4 mm: inscribed disc 15.5 mm vs the lumen's 5.4 mm), while the crescent of "
    "the thrombosed case never joins the lumen's disc in its own plane (the 100-260 HU blend between "
    "them is neither lumen nor thrombus). An in-plane union alone warns neither; with the blend "
    "bridged it warns both (the oesophagus and the soft tissue beyond the fat join the disc): "
    "the rule needs the aorta's outer wall, not a density band; nonenhancing_crescent_warning stays a "
    "hint, README claims no dissection detection"))
def test_an_aorta_without_dissection_on_an_axial_grid_is_not_warned():
    ct, body, vert, false_lumen, organ = _phantom((1.2, 0.9, 2.0), np.eye(3), false_hu=480.0, fat=True,
                                                  true_from=1.0)
    pool = bp.extend_pool(ct, contrast_blood_pool(ct, body, None, vert), body, None, vert)
    assert bp.nonenhancing_crescent_warning(ct, pool, vert, body, None, vert) == ""
