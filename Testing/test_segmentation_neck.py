"""A field of view above the lung apices (the neck, the thoracic inlet): the trachea is in view with
no lung (new-user trial 103 F3.2). The chest CTA cut to its top 28 mm (S 798-825 mm) holds the
cervical trachea, C7-T1 and the shoulders, and 1 mL of lung apex at most. Old code: no trachea
("no round air tube near the midline": its search starts from the lungs' top), lungs refused as
"the air regions inside the body look like bowel gas", and no bone named 'vertebrae' ("no trachea,
no lungs and no spinal canal in view"). The trachea's place in the neck (in front of the body's
middle, the vertebral body within the retrotracheal space behind it) is what finds it here; the
pelvis's midline gas tube (the rectum, at the back of the pelvis) has no such place."""

import numpy as np
import pytest

from conftest import read_image_once, segment_masks_once
from imagio.errors import InputError
from imagio.segmentation import airways as aw
from imagio.segmentation import body as bd
from imagio.segmentation.common import anatomical_axes, crop_slices, ras_coordinate
from imagio.segmentation.rules import segment_masks


def _top(ct, k0):
    s_ax = anatomical_axes(ct)["S"][0]
    sl = [slice(None)] * 3
    sl[s_ax] = slice(k0, ct.shape[s_ax])
    return tuple(sl)


@pytest.mark.data
@pytest.mark.parametrize("k0", [172, 176])
def test_thoracic_inlet_trachea_and_vertebrae(shared_data, k0):
    ct = read_image_once(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz")
    full, _ = segment_masks_once(ct, ["body", "bones", "lungs"])
    sl = _top(ct, k0)
    crop = crop_slices(ct, sl)
    m, meta = segment_masks(crop, ["body", "bones", "airways"])
    t = m["trachea"]
    assert t.any(), meta["warnings"]
    assert meta["airways"].get("above_lungs")
    # own trachea: the air (< -900 HU) columns inside the body within 15 mm of the midline that
    # run through half the slices or more (the lumen is a tube along z); the label holds >= 90 % of it
    a = crop.array
    x = np.broadcast_to(ras_coordinate(crop, 0), a.shape)
    vx = float(x[m["vertebrae"]].mean())
    body = bd.body_mask(crop)
    air = (a < -900) & body & (np.abs(x - vx) < 15)
    column = air.sum(axis=0) >= a.shape[0] // 2
    own = air & column[None]
    assert own.sum() * crop.voxel_volume_ml > 1.0
    assert (t & own).sum() >= 0.9 * own.sum()
    # an adult trachea's section: 10-25 mm (Breatnach et al., AJR 1984)
    per_slice = t.sum(axis=(1, 2)) * np.prod(crop.spacing_kji[1:])
    d = np.sqrt(4 * per_slice[per_slice > 0] / np.pi)
    assert 10.0 <= np.median(d) <= 25.0, d
    # on the spine's midline, in front of it
    y = np.broadcast_to(ras_coordinate(crop, 1), a.shape)
    assert abs(float(x[t].mean()) - vx) < 10.0
    assert float(y[t].mean()) > float(y[m["vertebrae"]].max())
    # the vertebrae of the uncropped chest there (which holds less of the bodies' marrow)
    truth = full["vertebrae"][sl]
    assert (m["vertebrae"] & truth).sum() >= 0.8 * truth.sum()
    # the vertebral bodies: dense bone (>= 300 HU) on the midline within 40 mm behind the trachea's
    # back wall (the retrotracheal space, <= 22 mm, and the body, ~16 mm deep at C7-T1) is
    # vertebrae (old code with the body's centre as the corridor's front: the arches only)
    xt, back = float(x[t].mean()), float(y[t].min())
    front = (np.abs(x - xt) < 8.0) & (y < back) & (y > back - 40.0) & (a >= 300) & body
    assert front.sum() * crop.voxel_volume_ml > 0.5
    assert (m["vertebrae"] & front).sum() >= 0.9 * front.sum()
    # and nothing in front of the trachea's back wall (in each slice that holds it) or off the
    # spine's corridor is
    v = m["vertebrae"]
    assert not (v & (np.abs(x - xt) > 40.0)).any()
    for k in np.flatnonzero(t.any(axis=(1, 2))):
        assert not (v[k] & (y[k] >= y[k][t[k]].min())).any(), k
    assert not any("no trachea, no lungs" in w or "bowel gas" in w for w in meta["warnings"]), meta["warnings"]
    assert not any("main bronchus" in w for w in meta["warnings"]), meta["warnings"]


@pytest.mark.data
def test_thoracic_inlet_lungs_refused_as_no_lungs_in_view(shared_data):
    ct = read_image_once(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz")
    crop = crop_slices(ct, _top(ct, 172))
    with pytest.raises(InputError) as e:
        segment_masks(crop, ["body", "bones", "lungs"])
    assert "no lungs in view" in str(e.value) and "thoracic inlet" in str(e.value)
    assert "bowel" not in str(e.value)


@pytest.mark.data
def test_pelvis_midline_gas_is_no_trachea(shared_data):
    """The TotalSegmentator example's lower 60 slices (pelvis, no lung) and its lumbar slab: no
    trachea is found (the neck's rule applies where no lung is in view)."""
    ct = read_image_once(shared_data / "totalsegmentator-example" / "example_ct.nii.gz")
    for k in (slice(0, 60), slice(40, 80)):
        crop = crop_slices(ct, (k, slice(None), slice(None)))
        body = bd.body_mask(crop)
        assert aw.find_trachea_seed(crop, body) is None
