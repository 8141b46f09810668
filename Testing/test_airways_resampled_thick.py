"""`airways.check_slice_thickness` on a CT interpolated from thick sections (new-user trial 82 L4:
lung1's 5 mm sections B-spline-resampled to 1 mm passed the header check; its airway tree then
had 13 branches and no carina). The CT's own noise (`resolution.resolution_along_s`) shows the
thick sections' blur along the axis nearest S, whatever the storage order, flips or tilt."""

import numpy as np
import pytest

from imagio.errors import InputError
from imagio.segmentation.airways import AIRWAY_RESAMPLED_MIN_MM, check_slice_thickness
from imagio.volume import Volume, make_ijk_to_ras


def _sections(n_sections, section_mm, step_mm, seed=0):
    """Soft tissue (40 HU, white noise of 20 HU: independent sections and pixels, as contiguous
    thin slices give) on sections ``section_mm`` apart along k, 1 mm pixels, interpolated
    linearly along k onto a ``step_mm`` grid (float32 [k, j, i])."""
    rng = np.random.default_rng(seed)
    a = (40.0 + rng.normal(0, 20.0, (n_sections, 56, 56))).astype(np.float32)
    ct = Volume(a, make_ijk_to_ras((1.0, 1.0, section_mm)))
    return ct if step_mm == section_mm else ct.resampled((1.0, 1.0, step_mm), order=1)


def test_thin_native_sections_pass():
    """1 mm contiguous sections stored at 1 mm: no word (the noise reads ~1 mm along S)."""
    assert check_slice_thickness(_sections(90, 1.0, 1.0), "CT", refuse=False) == ""


def test_thick_sections_resampled_thin_are_refused_naming_both_figures():
    """5 mm sections interpolated to 1 mm: refused as the 5 mm CT is, in one line giving the
    1 mm spacing and the ~5 mm resolution (linear interpolation of 5 mm white noise: equivalent
    width 1.5 x 5 = 7.5 mm analytically, read within its tolerance); the same image's check
    without refusal returns that line. Its header alone passes (the old check)."""
    up = _sections(18, 5.0, 1.0)
    assert float(np.max(up.spacing)) == pytest.approx(1.0)
    with pytest.raises(InputError) as e:
        check_slice_thickness(up, "CT")
    msg = str(e.value)
    assert "1 mm apart" in msg and "resampled from thick slices" in msg and "cannot be trusted" in msg
    res = float(msg.split("is about ")[1].split(" mm")[0])
    assert AIRWAY_RESAMPLED_MIN_MM < res < 9.0, msg
    assert check_slice_thickness(up, "CT", refuse=False) == msg
    # an airway mask's grid is judged by its header only (a mask has no noise to read)
    assert check_slice_thickness(up.with_array((up.array > 40).astype(np.uint8)), refuse=False) == ""


def test_resampled_thick_sections_found_on_a_permuted_flipped_oblique_grid():
    """The same 5 mm sections stored with S along array axis j (20 degrees off S), i flipped and
    k along R: still refused, naming axis j (the axis nearest S); stored with the blurred axis
    along R instead (the sections' axis is S: the in-plane axes of a CT are not sections), no word."""
    up = _sections(18, 5.0, 1.0, seed=3)
    arr = np.ascontiguousarray(np.swapaxes(up.array, 0, 1)[:, :, ::-1])   # [k, j, i]: j is the 5 mm axis
    t = np.radians(20.0)
    # columns: RAS directions of i, j, k; j mostly S (tilted towards A), i along -A/-S (flipped), k along R
    d = np.array([[0.0, 0.0, 1.0],
                  [-np.cos(t), np.sin(t), 0.0],
                  [-np.sin(t), np.cos(t), 0.0]])
    ct = Volume(arr, make_ijk_to_ras((1.0, 1.0, 1.0), (10.0, -20.0, 30.0), d))
    msg = check_slice_thickness(ct, "CT", refuse=False)
    assert "(array axis j)" in msg and "1 mm apart" in msg, msg
    with pytest.raises(InputError):
        check_slice_thickness(ct, "CT")
    across = np.array([[0.0, -np.cos(t), np.sin(t)], [1.0, 0.0, 0.0], [0.0, np.sin(t), np.cos(t)]])
    assert check_slice_thickness(Volume(arr, make_ijk_to_ras((1.0, 1.0, 1.0), None, across)), "CT",
                                 refuse=False) == ""


def test_thick_overlapping_sections_are_warned_with_the_reading_and_the_rule():
    """New-user trial 95 F5: 4.5 mm sections at a 1.5 mm step (the header gives the step) read
    5.06 mm by their noise, under the refusal's 5.6 mm, and passed `bronch` silently while a 3 mm
    CT is refused by its header. Here 5 mm sections at a 1 mm step (a 5-slice box of independent
    1 mm sections: equivalent width 5 mm analytically) pass the header and the resampling limit
    (as before) and are warned, naming the reading and the 2.5 mm rule; 2.5 mm sections on their
    own grid and 1 mm sections get no word."""
    from scipy import ndimage

    from imagio.segmentation.airways import slice_thickness_doubt

    thin = _sections(120, 1.0, 1.0, seed=5)
    thick = thin.with_array(ndimage.uniform_filter1d(thin.array, 5, axis=0))
    assert check_slice_thickness(thick, "CT", refuse=False) == ""      # passes, as before
    doubt = slice_thickness_doubt(thick)
    assert "1 mm apart" in doubt and "sections of 2.5 mm" in doubt and "overlap" in doubt, doubt
    res = float(doubt.split("is about ")[1].split(" mm")[0])
    assert 4.5 < res <= AIRWAY_RESAMPLED_MIN_MM, doubt
    assert slice_thickness_doubt(thin) == ""
    assert slice_thickness_doubt(_sections(40, 2.5, 2.5, seed=6)) == ""
    # a mask has no noise to read
    assert slice_thickness_doubt(thick.with_array((thick.array > 40).astype(np.uint8))) == ""
