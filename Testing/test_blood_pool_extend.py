"""`blood_pool.extend_pool` adds a less enhanced lumen joined to the contrast blood pool (the
descending aorta below the pool's band, trial 53 H2) but no separate lumen-density blob, and
`paravertebral_pool_warning` reports pool-density tissue beside the spine left unlabelled, in mL."""

import numpy as np

from imagio.segmentation import blood_pool as bp
from imagio.segmentation.bones import contrast_blood_pool
from imagio.volume import Volume, make_ijk_to_ras


def _phantom():
    """1.5 mm grid, 180 x 160 x 60 mm: soft tissue 40 HU; a 'heart' (radius 30 mm, 480 HU); enhanced organ tissue (160 HU) anterolaterally; an
    'aorta' tube (radius 10 mm, 300 HU: below the heart's band) running from the heart back to
    beside a vertebral body (radius 12 mm, 2 mm cortex of 1000 HU, 150 HU inside) and down along
    it; a separate 300 HU ball (radius 8 mm) far from both. Noise SD 10 HU. Returns the CT, body,
    vertebra and the phantom's own aorta and ball masks."""
    sp = np.array([1.5, 1.5, 1.5])
    n = np.round(np.array([180.0, 160.0, 60.0]) / sp).astype(int)
    ct = Volume(np.zeros(tuple(n[::-1]), np.float32), make_ijk_to_ras(sp, -0.5 * sp * (n - 1)))
    k, j, i = np.indices(ct.shape)
    ras = ct.kji_to_world(np.stack([k, j, i], -1).reshape(-1, 3)).reshape(ct.shape + (3,))
    x, y, z = ras[..., 0], ras[..., 1], ras[..., 2]
    body = (x / 88.0) ** 2 + (y / 78.0) ** 2 <= 1.0
    heart = np.sqrt(x ** 2 + (y - 30.0) ** 2 + (z - 10.0) ** 2) <= 30.0
    vr = np.hypot(x, y + 45.0)
    vert = vr <= 12.0
    # aorta: horizontal from the heart back to (x=22, y=-40) at z=10, then down along the spine
    arch = (np.hypot(x - 22.0, z - 10.0) <= 10.0) & (y >= -40.0) & (y <= 20.0)
    desc = (np.hypot(x - 22.0, y + 40.0) <= 10.0) & (z <= 10.0)
    aorta = (arch | desc) & ~heart
    ball = np.sqrt((x + 55.0) ** 2 + (y + 20.0) ** 2 + z ** 2) <= 8.0
    a = np.where(body, 40.0, -1000.0)
    a[(y > 0.0) & (np.abs(x) > 40.0)] = 160.0          # enhanced organ tissue (CTA: ~150-160 HU)
    a[vert] = 150.0
    a[vert & (vr > 10.0)] = 1000.0
    a[heart] = 480.0
    a[aorta] = 300.0
    a[ball] = 300.0
    a += np.random.default_rng(3).normal(0.0, 10.0, a.shape)
    ct.array = a.astype(np.float32)
    return ct, body, vert, aorta, ball


def test_extend_pool_takes_the_joined_lumen_not_a_separate_blob():
    ct, body, vert, aorta, ball = _phantom()
    pool = contrast_blood_pool(ct, body, None, vert)
    assert pool is not None
    assert pool[aorta].mean() < 0.2                      # below the heart's band: missed
    ext = bp.extend_pool(ct, pool, body, None, vert)
    assert ext[aorta].mean() >= 0.9
    assert not ext[ball].any()
    assert not (ext & vert).any()


def test_paravertebral_pool_warning_gives_the_unlabelled_ml():
    ct, body, vert, aorta, ball = _phantom()
    pool = contrast_blood_pool(ct, body, None, vert)
    w = bp.paravertebral_pool_warning(ct, pool, vert, body, None, vert)
    assert "mL" in w and "spine" in w
    ml = float(w.split("vessels: ")[1].split(" mL")[0])
    assert 2.0 < ml <= aorta.sum() * ct.voxel_volume_ml + 1.0
    assert bp.paravertebral_pool_warning(ct, bp.extend_pool(ct, pool, body, None, vert),
                                         vert, body, None, vert) == ""
