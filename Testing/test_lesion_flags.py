"""The one-click lesion tool's structured flags (``LesionMeasurements.hit_size_limit``,
``irregular``, ``touches_image_edge``, ``spans_image``, ``no_intensity_edge``): set from the
geometry of the result, serialised by ``to_dict``, so that callers never read the warnings'
wording. Checked against the mask's own faces and fill, computed here independently."""

import numpy as np

from imagio.segmentation.lesion import MIN_FILL_OF_SPHERE, segment_lesion
from imagio.segmentation.measurements import LesionMeasurements
from imagio.volume import Volume, make_ijk_to_ras


def _chest(vol, w):
    """Lung (-850 HU) within 26 mm of the grid's centre line, chest wall (30 HU) to 30 mm, air."""
    d = vol.ijk_to_ras[:3, :3] / np.linalg.norm(vol.ijk_to_ras[:3, :3], axis=0)
    rel = w - vol.kji_to_world(np.array([[0, 39.5, 39.5]]))[0]
    r = np.maximum(np.abs(rel @ d[:, 0]), np.abs(rel @ d[:, 1]))
    return np.where(r < 26, -850.0, np.where(r < 30, 30.0, -1000.0))


def _lung_with_ball(n_slices: int, centre_slice: float, radius: float = 6.0):
    """Lung (-850 HU, noise 15) on an oblique 0.8 x 0.8 x 1 mm grid with a solid ball (20 HU)."""
    from conftest import rotation

    d = rotation((1, 2, 2), 12.0)
    vol = Volume(np.zeros((n_slices, 80, 80), np.float32), make_ijk_to_ras((0.8, 0.8, 1.0), (0, 0, 0), d))
    kji = np.indices(vol.shape).reshape(3, -1).T
    w = vol.kji_to_world(kji).reshape(*vol.shape, 3)
    c = vol.kji_to_world(np.array([[centre_slice, 40, 40]]))[0]
    les = np.linalg.norm(w - c, axis=-1) <= radius
    a = np.where(les, 20.0, _chest(vol, w)) + np.random.default_rng(4).normal(0, 15, vol.shape)
    return vol.with_array(a.astype(np.int16)), les, c


def _faces(m):
    return {(ax, s) for ax in range(3) for s in (0, 1)
            if np.take(m, 0 if s == 0 else m.shape[ax] - 1, axis=ax).any()}


def test_flags_follow_the_results_geometry():
    cases = {"inside": _lung_with_ball(30, 15.0), "cut": _lung_with_ball(30, 0.0),
             "spans": _lung_with_ball(8, 3.5)}
    for name, (ct, les, c) in cases.items():
        m, meas = segment_lesion(ct, c, kind="lung_nodule")
        faces = _faces(m)
        spans = any((ax, 0) in faces and (ax, 1) in faces for ax in range(3))
        sphere = np.pi / 6.0 * meas.long_axis_mm ** 3 / 1000.0
        assert meas.touches_image_edge == bool(faces) == (name != "inside"), name
        assert meas.spans_image == spans == (name == "spans"), name
        assert meas.irregular == bool(meas.volume_ml < MIN_FILL_OF_SPHERE * sphere) is False, name
        assert not meas.hit_size_limit and not meas.no_intensity_edge, name
        assert meas.edge_size_unreliable == (name == "spans"), name
        d = meas.to_dict()
        for k in ("hit_size_limit", "irregular", "touches_image_edge", "spans_image",
                  "no_intensity_edge", "edge_size_unreliable"):
            assert d[k] == getattr(meas, k), (name, k)


def test_a_mask_measured_directly_has_no_flags():
    assert not any(getattr(LesionMeasurements("lung_nodule", 1.0, 1, 1, 1, 1, 0.0), k)
                   for k in ("hit_size_limit", "irregular", "touches_image_edge", "spans_image",
                             "no_intensity_edge", "edge_size_unreliable"))


def test_a_fat_density_basin_split_from_a_denser_blob_is_told():
    """lesion20: lung2's 48 mL mass clicked on its caudal 5 mm section gave a 0.7 mL lung nodule of
    fat's density (Dice 0.01): the watershed that splits a nodule from a thicker blob joined to it
    (`_split_from_larger_blobs`: the heart or a hilar vessel) kept the mass's partial-volume
    fringe. A basin of fat's density split from a denser blob is told (the caller flags the
    outline click_dependent); a basin of tissue's density beside it is not. Anisotropic grid,
    milliseconds."""
    from imagio.segmentation import lesion as L

    sk = (2.0, 0.8, 0.6)
    kji = np.indices((30, 60, 80)).astype(float)
    mm = [kji[i] * s for i, s in enumerate(sk)]
    big = (mm[0] - 30) ** 2 + (mm[1] - 24) ** 2 + (mm[2] - 20) ** 2 <= 12.0 ** 2
    lobe = (mm[0] - 30) ** 2 + (mm[1] - 24) ** 2 + (mm[2] - 36) ** 2 <= 5.0 ** 2
    op = big | lobe
    depth = L._edt(op, sk)
    core = tuple(int(v) for v in np.rint([30 / sk[0], 24 / sk[1], 37 / sk[2]]))
    assert lobe[core] and depth.max() >= L.LARGER_BLOB_RATIO * depth[core]
    for lobe_hu, told in ((-120.0, True), (35.0, False)):
        hu = np.where(lobe & ~big, lobe_hu, 40.0)
        fringe: list = []
        kept = L._split_from_larger_blobs(op, depth, core, hu, fringe)
        assert kept[core] and not kept[tuple(np.rint([15, 30, 33]).astype(int))]   # the big blob is cut off
        assert bool(fringe) == told, (lobe_hu, fringe)
        if told:
            assert fringe[0][0] == int(kept.sum()) and fringe[0][1] == int((op & ~kept).sum())
