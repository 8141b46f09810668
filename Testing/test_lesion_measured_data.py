"""The lesion tool's measured-data region (`lesion._measured_data`): the planner's data region
(`padding.data_mask`) with the array's outer layer kept, found once per click and handed to
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


def test_slice_tissue_is_found_once_per_click(monkeypatch):
    """The synthetic chest (2 mm) with padding outside a 90 mm circle, which cuts the lungs: the
    lung air reaches the padding, and whether the body's outline encloses it is asked in the
    envelope's box and again in the larger box of the lung's own bound (slices 32-113, then
    0-115 for the solid nodule). The measured tissue of a slice (> -500 HU and measured) was
    computed for each box (196 slices for 115); now once per click (`lesion._Measured`).
    Independent checks: the tissue handed out is > -500 HU and more than 2 face steps from
    the padding; each nodule's outline is its truth (Dice >= 0.85)."""
    ct, t = make_ct(spacing=(2.0, 2.0, 2.0), noise=12.0)
    x, y = ras_coordinate(ct, 0), ras_coordinate(ct, 1)
    pad = x ** 2 + y ** 2 > 90.0 ** 2
    ct = ct.with_array(np.where(pad, -3024, ct.array).astype(np.int16))
    seen = []
    real = lesion._Measured.tissue

    def recorded(self, zs):
        # the reference on the array the tool holds (`segment_lesion` runs on the LPS-canonical
        # storage of the CT, which may be another order than the file's): its padding is -3024 HU
        want = (self.a > -500) & (ndimage.distance_transform_cdt(self.a != -3024, metric="taxicab") > 2)
        before = 0 if self._done is None else int(self._done.sum())
        out = real(self, zs)
        seen.append((zs, int(self._done.sum()) - before))
        ref = want[tuple(zs if ax == self.s_axis else slice(None) for ax in range(3))]
        assert (out == ref).all()
        return out

    monkeypatch.setattr(lesion._Measured, "tissue", recorded)
    for name, centre in (("nodule_solid", (60.0, 20.0, 30.0)), ("nodule_ggo", (-58.0, 22.0, 45.0))):
        seen.clear()
        m, _ = lesion.segment_lesion(ct, centre)
        assert dice(m, t[name]) >= 0.85, (name, dice(m, t[name]))
        assert len(seen) >= 2, seen                 # the tissue was asked for more than once
        union = set().union(*(range(zs.start, zs.stop) for zs, _ in seen))
        assert sum(n for _, n in seen) == len(union), seen   # each slice computed once
