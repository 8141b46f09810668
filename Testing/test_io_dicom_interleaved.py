"""A DICOM series that interleaves two acquisitions the headers cannot tell apart (new-user trial 92
M1): a repeat scan at positions offset by half the slice step, its AcquisitionNumber equal or absent
and its times removed (DICOM PS3.15 basic confidentiality profile). Built with pydicom from the real
Siemens series of ../shared/data; the reader must refuse it from the image (odd and even slices'
HU differ throughout) and must not fire on the real series nor on an overlapping reconstruction."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from pydicom.uid import generate_uid

from imagio import io
from imagio.errors import InputError

pydicom = pytest.importorskip("pydicom")
pytestmark = pytest.mark.data

TIMES = ("AcquisitionTime", "ContentTime", "AcquisitionDateTime")
REPEAT_HU = 200  # the repeat acquisition's offset (contrast arriving, as trial 92 built it)


def _real(shared_data):
    folder = shared_data / "totalsegmentator-example" / "example_ct_dicom"
    dss = [pydicom.dcmread(f) for f in sorted(folder.iterdir())]
    for d in dss:
        d.decompress()
    return sorted(dss, key=lambda d: float(d.ImagePositionPatient[2]))


def _drop(d, tags):
    for t in tags:
        if t in d:
            delattr(d, t)


def _write_repeat(shared_data, out, variant, first=None, repeat=None):
    """The real series (its ``first`` slices) plus a repeat of its ``repeat`` first slices at +half the
    step along z, +REPEAT_HU, in one series."""
    out.mkdir()
    dss = _real(shared_data)[:first]
    step = float(dss[1].ImagePositionPatient[2]) - float(dss[0].ImagePositionPatient[2])
    strip = {"repeat_notags": ("AcquisitionNumber",) + TIMES, "repeat_sameno_notime": TIMES,
             "repeat_sametags": ()}[variant]
    for n, d0 in enumerate(dss):
        d = copy.deepcopy(d0)
        _drop(d0, strip)
        d0.save_as(out / f"A{n:03d}.dcm")
        if repeat is not None and n >= repeat:
            continue
        a = d.pixel_array.astype(np.int32) + REPEAT_HU
        d.PixelData = np.clip(a, 0, 4095).astype(d.pixel_array.dtype).tobytes()
        d.SOPInstanceUID = generate_uid()
        d.file_meta.MediaStorageSOPInstanceUID = d.SOPInstanceUID
        p = [float(x) for x in d.ImagePositionPatient]
        p[2] += step / 2
        d.ImagePositionPatient = [f"{x:.5f}" for x in p]
        d.SliceLocation, d.InstanceNumber = f"{p[2]:.5f}", 1000 + n
        _drop(d, strip)
        d.save_as(out / f"B{n:03d}.dcm")
    return step


@pytest.mark.parametrize("variant", ["repeat_notags", "repeat_sameno_notime", "repeat_sametags"])
def test_interleaved_repeat_acquisition_is_refused(tmp_path, shared_data, variant):
    _write_repeat(shared_data, tmp_path / variant, variant)
    with pytest.raises(InputError) as e:
        io.read_image(tmp_path / variant)
    msg = str(e.value)
    assert "\n" not in msg
    assert "two acquisitions" in msg and "odd and even slices" in msg and "split" in msg
    # the measured offset between the acquisitions is stated (REPEAT_HU, less the clipping)
    hu = float(msg.split("differ by ")[1].split(" HU")[0])
    assert 0.8 * REPEAT_HU <= hu <= REPEAT_HU


def test_short_interleaved_series_is_warned(tmp_path, shared_data):
    """11 slices (6 + 5 interleaved): each of the three independent subsets of the alternating
    component holds 3 values (t with 2 degrees of freedom), evidence too thin to refuse on: the
    series is read and the warning names the two acquisitions."""
    _write_repeat(shared_data, tmp_path / "short", "repeat_notags", first=6, repeat=5)
    vol = io.read_image(tmp_path / "short")
    assert vol.shape[0] == 11
    warns = [w for w in vol.meta["read"]["warnings"] if "two acquisitions" in w]
    assert len(warns) == 1 and "may interleave" in warns[0] and "split" in warns[0]


def test_real_series_and_overlapping_reconstruction_read_without_alarm(tmp_path, shared_data):
    real = shared_data / "totalsegmentator-example" / "example_ct_dicom"
    vol = io.read_image(real)
    assert not [w for w in vol.meta["read"].get("warnings", []) if "acquisition" in w]
    # an overlapping reconstruction: 2 mm slices every half step, made here by linear
    # resampling of the real series along its slice normal (every other slice is interpolated)
    dss = _real(shared_data)
    out = tmp_path / "overlap"
    out.mkdir()
    z = np.array([float(d.ImagePositionPatient[2]) for d in dss])
    step = z[1] - z[0]
    hu = np.stack([d.pixel_array.astype(np.float64) for d in dss])
    for n in range(2 * len(dss) - 1):
        k, f = divmod(n, 2)
        plane = hu[k] if f == 0 else (hu[k] + hu[k + 1]) / 2
        d = copy.deepcopy(dss[k])
        d.PixelData = np.rint(plane).astype(dss[k].pixel_array.dtype).tobytes()
        d.SOPInstanceUID = generate_uid()
        d.file_meta.MediaStorageSOPInstanceUID = d.SOPInstanceUID
        p = [float(x) for x in d.ImagePositionPatient]
        p[2] = z[0] + n * step / 2
        d.ImagePositionPatient = [f"{x:.5f}" for x in p]
        d.SliceLocation, d.InstanceNumber, d.SliceThickness = f"{p[2]:.5f}", n + 1, f"{step:g}"
        d.save_as(out / f"O{n:03d}.dcm")
    ov = io.read_image(out)
    assert ov.shape[0] == 2 * len(dss) - 1
    assert not [w for w in ov.meta["read"].get("warnings", []) if "acquisition" in w]
