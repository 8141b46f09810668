"""A lung mask given to `imagio detect` (--lungs) is checked against the CT as every other label map
is (`label_registration.require_registered`): new-user trial 115 HIGH, a mask shifted 10 mm in S
(or another patient's) was taken without a word and a 48 mL cancer dropped out of nodules.csv,
while `imagio plan` and `imagio bronch` refuse the same maps.

Independent check: the synthetic chest's own lung truth is accepted; the same mask with its origin
moved 10 mm along S, and the mask mirrored left-right about a plane off the body's centre, are
refused before any search, in one line naming --lungs."""

import numpy as np
import pytest

from imagio.detection.pipeline import Options, given_mask_registration, lung_volume, scan_findings
from imagio.errors import InputError
from synthetic_ct import make_ct


@pytest.fixture(scope="module")
def chest():
    ct, t = make_ct(spacing=(2.0, 2.0, 2.0), noise=12.0)
    return ct, t["lung_left"] | t["lung_right"]


def _mask(ct, lungs, shift_mm=(0.0, 0.0, 0.0)):
    m = ct.with_array(lungs.astype(np.uint8), name="lungs", labels={1: "lungs"})
    m.ijk_to_ras = m.ijk_to_ras.copy()
    m.ijk_to_ras[:3, 3] += np.asarray(shift_mm, float)   # the origin moved: the mask lies elsewhere
    return m


def test_the_ct_s_own_lungs_are_accepted(chest):
    ct, lungs = chest
    m, v = lung_volume(ct, _mask(ct, lungs))
    said = given_mask_registration(ct, v, m)
    assert not any("displaced" in w for w in said), said


@pytest.mark.parametrize("shift", [(0.0, 0.0, 10.0), (0.0, 10.0, 0.0)])
def test_a_displaced_lung_mask_is_refused(chest, shift):
    ct, lungs = chest
    with pytest.raises(InputError) as e:
        scan_findings(ct, Options(characterise=0, slicer=False), lungs=_mask(ct, lungs, shift))
    msg = str(e.value)
    assert "--lungs" in msg and "displaced" in msg and "\n" not in msg, msg


def test_a_lung_mask_of_another_chest_is_refused(chest):
    """New-user trial 116 H4: lung1's mask centred on lung2's CT (47 % of it above -500 HU) passed the
    registration check (no bone or air boundary it could be shifted onto) and was warned only for
    its coverage; the 48 mL cancer outside it left nodules.csv. A mask of another, larger chest (this
    chest's lungs grown 20 mm into its wall and mediastinum: more than 30 % beyond 5 mm of the lungs
    found in the CT) is refused in one line; the chest's own lungs are not."""
    from scipy import ndimage

    from imagio.detection.pipeline import given_mask_coverage

    ct, lungs = chest
    sk = np.asarray(ct.spacing_kji, float)
    grown = ndimage.distance_transform_edt(~lungs, sampling=sk) <= 20.0
    with pytest.raises(InputError) as e:
        given_mask_coverage(ct, grown)
    assert "does not match this CT" in str(e.value) and "--lungs" in str(e.value), str(e.value)
    assert given_mask_coverage(ct, lungs) == []
