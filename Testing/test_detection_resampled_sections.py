"""`imagio detect`'s scan warnings read the sections' resolution from the image's noise, not only
the header's spacing (new-user trial 115 M3: an oblique reformat of 5 mm sections on a 2.5 mm grid
lost the LUNA16 slice warning, while two single-section vessel dots came out at p 0.6-0.7).

Independent check: the synthetic chest on 5 mm sections (noise 12 HU, independent per voxel),
interpolated linearly onto 2.5 mm along S: the spacing is within LUNA16's 2.5 mm, the noise is
correlated over the 5 mm sections, and the warning says so; the native 2.5 mm scan gets no such
warning, and the native 5 mm scan keeps the spacing warning."""

import numpy as np

from imagio.detection.blobs import scan_warnings
from imagio.volume import Volume
from synthetic_ct import make_ct


def _interpolated(ct5):
    """``ct5`` (S along k) linearly interpolated onto half its S spacing."""
    a = ct5.array.astype(np.float32)
    mid = 0.5 * (a[:-1] + a[1:])
    out = np.empty((2 * a.shape[0] - 1,) + a.shape[1:], np.float32)
    out[0::2], out[1::2] = a, mid
    m = ct5.ijk_to_ras.copy()
    m[:3, 2] *= 0.5
    return Volume(np.rint(out).astype(np.int16), m, name="interpolated")


def test_sections_interpolated_from_thick_ones_are_warned():
    ct5, _ = make_ct(spacing=(1.5, 1.5, 5.0), noise=12.0)
    interp = _interpolated(ct5)
    assert abs(float(interp.spacing[2]) - 2.5) < 1e-6
    said = " | ".join(scan_warnings(interp))
    assert "noise shows a resolution" in said and "LUNA16" in said, said
    ct25, _ = make_ct(spacing=(1.5, 1.5, 2.5), noise=12.0)
    assert not any("noise shows" in w or "LUNA16" in w for w in scan_warnings(ct25)), scan_warnings(ct25)
    assert any("slice spacing 5.0 mm" in w for w in scan_warnings(ct5))
