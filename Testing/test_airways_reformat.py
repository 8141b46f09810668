"""Airways on an oblique reformat say that they may be short (`airways.interpolated_grid_note`,
`common.grid_obliquity_deg`). Measured (seg36): the chest CTA reformatted 20 degrees about the
left-right axis lost 19 % of its bronchi (24.98 -> 20.18 mL on the same voxels), lung1 30 %,
silently (the only airway warning was a false "front face cuts the trachea", from the reformat's
fill beside the trachea's top). The loss is the interpolation's blur, not the tilt: the CTA
resampled half a voxel off its own axes lost 34 %. So the rule states it wherever the grid is
oblique enough for the sub-voxel offsets to drift over the tree, and only there: a grid along the
patient's axes, flipped, permuted and anisotropic, gets no note.

Truth: the analytic tree of `test_airways_carina` (trachea, main bronchi) voxelised on each grid."""

import numpy as np
import pytest

from conftest import rotation
from imagio.segmentation.airways import interpolated_grid_note
from imagio.segmentation.common import grid_obliquity_deg
from imagio.volume import Volume, make_ijk_to_ras
from test_airways_carina import _airway


def _grid(direction, spacing=(1.6, 1.8, 2.8), shape=(65, 40, 55)):
    aff = make_ijk_to_ras(spacing, (0.0, 0.0, 0.0), direction)
    aff[:3, 3] = np.array([0.0, 0.0, 45.0]) - aff[:3, :3] @ ((np.array(shape[::-1]) - 1) / 2.0)
    return Volume(np.zeros(shape, np.uint8), aff)


PERMUTED = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])   # i: -A, j: +S, k: -R


@pytest.mark.parametrize("name, direction, deg", [
    ("axial", np.eye(3), 0.0),
    ("flipped", np.diag([-1.0, -1.0, 1.0]), 0.0),
    ("permuted", PERMUTED, 0.0),
    ("tilted about R", rotation((1.0, 0.0, 0.0), 20.0), 20.0),
    ("tilted about an oblique axis, i flipped", rotation((0.0, 0.0, 1.0), 15.0) @ np.diag([-1.0, 1.0, 1.0]), 15.0),
])
def test_the_note_follows_the_grids_tilt(name, direction, deg):
    vol = _grid(direction)
    assert grid_obliquity_deg(vol) == pytest.approx(deg, abs=1e-6), name
    tree, _ = _airway(vol, False)
    assert tree.sum() > 500
    note = interpolated_grid_note(vol, tree)
    if deg == 0.0:
        assert note == "", name
    else:
        assert f"tilted {deg:.0f} degrees" in note and "short" in note, (name, note)


def test_a_tilt_within_half_a_voxel_over_the_tree_gives_no_note():
    """0.1 degrees over the tree's ~140 mm: the offsets drift 0.24 mm, under half the 1.6 mm voxel
    (a rounding of direction cosines, no reformat); 1 degree (2.4 mm) is a reformat."""
    for deg, noted in ((0.1, False), (1.0, True)):
        vol = _grid(rotation((1.0, 0.0, 0.0), deg))
        tree, _ = _airway(vol, False)
        assert bool(interpolated_grid_note(vol, tree)) is noted, deg


def test_bronch_says_it_of_an_airway_mask_on_a_reformat():
    """`imagio bronch` gives the same note for the mask it plans on (trial 78 L4: a 20 degree
    reformat's tree had 73 branches against 118 on the axial scan, and bronch said nothing)."""
    from imagio.planning.bronchoscopy.mask_checks import reformat_note

    for direction, noted in ((rotation((1.0, 0.0, 0.0), 20.0), True), (PERMUTED, False)):
        vol = _grid(direction)
        tree, _ = _airway(vol, False)
        note = reformat_note(vol, tree, "the airway mask a.seg.nrrd")
        assert bool(note) is noted
        assert not noted or (note.startswith("the airway mask a.seg.nrrd: the CT's grid is tilted 20 degrees")
                             and "short" in note), note


@pytest.mark.parametrize("name, direction", [
    ("axial", np.eye(3)),
    ("tilted 20 degrees about R, j flipped", rotation((1.0, 0.0, 0.0), 20.0) @ np.diag([1.0, -1.0, 1.0])),
])
def test_the_lumen_opening_into_a_reformats_fill_joins_no_outside_air(name, direction):
    """New-user trial 78 (LOW): the chest CTA tilted 20 degrees, its trachea running on into the
    fill beyond the source's top plane: 11 lumen voxels outside the fill's rim joined 22 L of air
    through the fill and the front face was said to cut the trachea. Scene (RAS mm): a neck of
    tissue (radius 30 mm, noisy) in noisy air, a tracheal lumen (radius 8 mm) along S labelled up
    to S = 40; beyond the source's top plane, tilted 20 degrees about R (S - 0.36 A >= 60), the
    resampler's -1024 fill. The lumen left out is that above the labelled trachea, within the
    data: no voxel of the air around the neck. With measured (noisy) air in place of the fill (the
    neck ending there, its lumen open to the air above it: no reformat) the lumen joins that air."""
    from imagio.segmentation.airways import lumen_left_out

    vol = _grid(direction, spacing=(2.0, 2.0, 2.0), shape=(40, 45, 45))
    k, j, i = np.meshgrid(*[np.arange(n) for n in vol.shape], indexing="ij")
    ras = vol.kji_to_world(np.stack([k, j, i], -1).reshape(-1, 3)).reshape(*vol.shape, 3)
    x, y, z = ras[..., 0], ras[..., 1], ras[..., 2]
    rng = np.random.default_rng(3)
    neck = np.hypot(x, y) <= 30.0
    lumen = np.hypot(x, y) <= 8.0
    fill = z - np.tan(np.radians(20.0)) * y >= 60.0
    air = ~neck | lumen | fill
    a = np.where(air, rng.normal(-1000.0, 15.0, vol.shape), rng.normal(40.0, 15.0, vol.shape))
    trachea = lumen & (z <= 40.0)
    body = neck & ~(lumen & (z > 40.0)) & ~fill
    for padded in (True, False):
        img = np.where(fill, -1024.0, a) if padded else a
        ct = Volume(np.rint(img).astype(np.int16), vol.ijk_to_ras)
        out = lumen_left_out(ct, body, trachea)
        assert out[lumen & (z > 42.0) & (z < 48.0)].all(), name
        if padded:
            # the lumen within the data only: no air around the neck, nothing of the fill
            assert not out[~lumen].any() and not out[fill].any(), (name, int(out[~lumen].sum()))
        else:
            assert out[~neck].mean() > 0.5, name


def test_the_note_follows_where_the_values_were_interpolated(tmp_path):
    """New-user trial 85 L1: an oblique DICOM series read as stored (ImageType ORIGINAL\\PRIMARY,
    IOP turned 20 degrees about L-R, slices along its normal: nothing resampled) was said to hold
    "interpolated" values. The reader's record decides (`common.grid_values_origin`): such a series
    gets no note; the same grid marked DERIVED\\SECONDARY\\MPR (a reformat) does; a sheared stack
    (gantry tilt) that IMAGIO resampled on reading does, naming that, also on its axial grid."""
    from dicom_series import Patient, axial_positions, write_series
    from imagio import io
    from imagio.errors import InputWarning
    from imagio.planning.bronchoscopy.mask_checks import reformat_note
    from imagio.segmentation.common import grid_values_origin

    t = np.radians(20.0)
    row, col = np.array([1.0, 0.0, 0.0]), np.array([0.0, np.cos(t), np.sin(t)])
    normal = np.cross(row, col)
    pos = [np.array([-68.75, -58.75, 0.0]) + k * 2.5 * normal for k in range(8)]
    tilted = _grid(rotation((1.0, 0.0, 0.0), 20.0))
    tree, _ = _airway(tilted, False)
    for image_type, origin in (("ORIGINAL\\PRIMARY\\AXIAL", "acquired"), ("DERIVED\\SECONDARY\\MPR", "unknown")):
        folder = tmp_path / image_type.split("\\")[0]
        write_series(folder, Patient(), pos, row, col, rows=16, cols=16, spacing=(8.0, 8.0), image_type=image_type)
        vol = io.read_image(folder)
        assert grid_obliquity_deg(vol) == pytest.approx(20.0, abs=0.01) and grid_values_origin(vol) == origin
        note = interpolated_grid_note(tilted, tree, vol)
        assert (note == "") is (origin == "acquired"), (image_type, note)
        assert origin == "acquired" or ("tilted 20 degrees" in note and "most likely interpolated" in note), note
        # bronch: an airway mask on the CT's own grid (a label file, no record of its own) takes the CT's
        mask = Volume(np.zeros(vol.shape, np.uint8), vol.ijk_to_ras.copy())
        on_ct, _ = _airway(mask, False)
        assert on_ct.any() and bool(reformat_note(mask, on_ct, "m")), int(on_ct.sum())
        assert (reformat_note(mask, on_ct, "m", vol) == "") is (origin == "acquired")
    pos, row, col = axial_positions(n=8, tilt_deg=15.0)
    write_series(tmp_path / "tilt", Patient(), pos, row, col, rows=16, cols=16, spacing=(8.0, 8.0), gantry_tilt=15.0)
    with pytest.warns(InputWarning, match="gantry tilt"):
        vol = io.read_image(tmp_path / "tilt")
    assert grid_values_origin(vol) == "resampled"
    axial = _grid(np.eye(3))
    tree, _ = _airway(axial, False)
    assert interpolated_grid_note(axial, tree) == ""
    note = interpolated_grid_note(axial, tree, vol)
    assert "IMAGIO resampled" in note and "gantry tilt of 15 degrees" in note and "short" in note, note


def test_uneven_slices_made_regular_are_interpolated(tmp_path):
    """Trial 89 L: a DICOM series of uneven slice spacing, which IMAGIO resamples onto a regular
    grid on reading (linear between slices), got no airway "interpolated" note: its grid lies
    along the patient's axes and there is no tilt. Its regular 3 mm slices lie up to 1 mm from an
    acquired one (more than half the finest voxel), blends of two slices: noted, naming it. The
    same slices evenly spaced are read as stored: no note."""
    from dicom_series import Patient, axial_positions, write_series
    from imagio import io
    from imagio.errors import InputWarning
    from imagio.segmentation.common import grid_values_origin

    pos, row, col = axial_positions(n=10, step=2.5)
    write_series(tmp_path / "even", Patient(), pos, row, col, rows=16, cols=16, spacing=(1.5, 1.5))
    z = [0.0, 2.0, 4.0, 6.0, 8.0, 11.0, 14.0, 17.0, 20.0, 23.0]       # steps 2 then 3 mm: no gap
    uneven = [np.array([p[0], p[1], p[2] + zk]) for p, zk in zip(pos[:1] * len(z), z)]
    write_series(tmp_path / "uneven", Patient(), uneven, row, col, rows=16, cols=16, spacing=(1.5, 1.5))
    even = io.read_image(tmp_path / "even")
    with pytest.warns(InputWarning, match="non-uniform slice spacing"):
        vol = io.read_image(tmp_path / "uneven")
    assert grid_values_origin(vol) == "resampled" and grid_values_origin(even) != "resampled"
    axial = _grid(np.eye(3))
    tree, _ = _airway(axial, False)
    assert interpolated_grid_note(axial, tree, even) == ""
    note = interpolated_grid_note(axial, tree, vol)
    assert "IMAGIO resampled" in note and "uneven slices made regular" in note and "short" in note, note
    assert "evenly spaced slices" in note and "gantry tilt" not in note, note
