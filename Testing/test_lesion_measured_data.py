"""The lesion tool's measured-data region (`lesion._measured_data`): the planner's data region
(`planning.skin.data_mask`) with the array's outer layer kept, found once per click and handed to
the inner runs of `segment_lesion` (added clicks, the soft-tissue retry, the regrowth from the
core, the second click of the agreement check), which each found it again on the whole image."""

import numpy as np
import pytest
from scipy import ndimage

from imagio.segmentation import lesion
from imagio.segmentation.common import dice, ras_coordinate
from synthetic_ct import make_ct


@pytest.fixture(scope="module")
def padded():
    """The synthetic chest (2 mm) with -3024 HU outside a reconstruction circle of 150 mm radius
    (a scanner's padding, DICOM Pixel Padding Value), the truth masks."""
    ct, t = make_ct(spacing=(2.0, 2.0, 2.0), noise=12.0)
    x, y = ras_coordinate(ct, 0), ras_coordinate(ct, 1)
    pad = x ** 2 + y ** 2 > 150.0 ** 2
    return ct.with_array(np.where(pad, -3024, ct.array).astype(np.int16)), t, pad


def test_measured_data_is_the_data_region_with_the_outer_layer(padded):
    """Independent check: measured = more than 2 face steps (taxicab distance) from the padding,
    the outer layer included where it is so; None for an image without padding."""
    ct, _, pad = padded
    data = lesion._measured_data(ct)
    far = ndimage.distance_transform_cdt(~pad, metric="taxicab") > 2
    assert data is not None and (data == far).all()
    assert data[0].any() and data[:, 0].any()       # the outer layer is kept
    assert lesion._measured_data(make_ct(spacing=(4.0, 4.0, 4.0), noise=12.0)[0]) is None


def test_padding_is_found_once_per_click(padded, monkeypatch):
    """A click with an added click in the other nodule on the padded chest: `_measured_data` ran
    once per `segment_lesion` run of the click and again in the added click's run (2 calls, 1
    now); the outline is the nodules' (Dice >= 0.85 each)."""
    ct, t, _ = padded
    calls = []
    real = lesion._measured_data

    def counted(v):
        calls.append(1)
        return real(v)

    monkeypatch.setattr(lesion, "_measured_data", counted)
    m, meas = lesion.segment_lesion(ct, (60.0, 20.0, 30.0), include=[(-58.0, 22.0, 45.0)])
    assert len(calls) == 1, len(calls)
    assert dice(m & t["nodule_solid"], t["nodule_solid"]) >= 0.85
    assert m[t["nodule_ggo"]].mean() > 0.8 and m[t["nodule_solid"]].mean() > 0.8
