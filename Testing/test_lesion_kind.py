"""The lesion's kind (lung vs soft tissue) and the warnings on implausible results: a soft-tissue
tumour beside lung-like table pads is not a lung nodule, a fat-density result is flagged, and a
region that grew to the image's edge without a border is not called a lower bound."""

import numpy as np
import pytest
from scipy import ndimage

from imagio.segmentation.common import dice, ras_coordinate
from imagio.segmentation.lesion import _edge_warning, segment_lesion
from imagio.segmentation.measurements import measure
from imagio.volume import Volume, make_ijk_to_ras
from synthetic_ct import make_ct


def _pelvis_on_pads():
    """A cropped pelvis-like CT with no lungs: 1 x 1 x 3 mm, the posterior skin curved (the body
    lies in the concavity of the table's pads, -850 HU like aerated lung, 12 mm thick, then the
    table top and more foam to the crop's edge, no outside air at -1000 HU), 45 mm of fat under
    muscle, a 20 mm-radius soft-tissue tumour (60 HU) in the fat 5 mm above the skin, and a
    bowel-gas pocket (-1000 HU) 30 mm from it."""
    vol = Volume(np.zeros((50, 140, 160), np.int16), make_ijk_to_ras((1.0, 1.0, 3.0), (-80, -70, -75)))
    x, y, z = (ras_coordinate(vol, r) for r in range(3))
    skin = -30.0 + 0.004 * x ** 2
    a = np.full(vol.shape, 45.0)  # muscle
    a[y < skin + 45] = -100.0  # fat
    a[y < skin] = -850.0  # pad
    a[(y < skin - 12) & (y >= skin - 15)] = 300.0  # table top
    a[y < skin - 15] = -880.0  # foam under it
    tumour = x ** 2 + (y + 5) ** 2 + z ** 2 <= 20 ** 2
    a[tumour] = 60.0
    a[(x - 45) ** 2 + (y - 20) ** 2 + (z / 1.5) ** 2 <= 10 ** 2] = -1000.0  # bowel gas
    rng = np.random.default_rng(1)
    a = ndimage.gaussian_filter(a, (0.5, 1.0, 1.0)) + rng.normal(0, 12, a.shape)
    return vol.with_array(a.astype(np.int16)), tumour


def test_soft_tissue_tumour_beside_lung_like_pads_is_soft_tissue():
    """Clicks 5-8 mm inside the tumour, nearest the pads. Before the fix the lung rule took the
    pads for lung (their per-slice hull holds the body) and grew through the fat: a "lung
    nodule" of fat. Asserted: soft tissue, Dice >= 0.85, no fat-density warning."""
    ct, tumour = _pelvis_on_pads()
    for click in [(0.0, -18.0, 0.0), (6.0, -17.0, -6.0), (0.0, -13.0, 9.0)]:
        m, meas = segment_lesion(ct, click)
        assert meas.kind == "soft_tissue", (click, meas.kind, meas.volume_ml, meas.mean_hu)
        assert dice(m, tumour) >= 0.85, (click, dice(m, tumour))
        assert not any("that of fat" in w for w in meas.warnings), meas.warnings


def test_fat_density_result_is_flagged():
    """A forced soft-tissue result that is mostly fat (a region drawn in the phantom's fat layer)
    carries the fat warning; the tumour's own outline does not."""
    from imagio.segmentation.lesion import _plausibility

    ct, tumour = _pelvis_on_pads()
    y = ras_coordinate(ct, 1)
    x, z = ras_coordinate(ct, 0), ras_coordinate(ct, 2)
    fat = ((x + 50) ** 2 + (y + 10) ** 2 + z ** 2 <= 12 ** 2)
    assert np.median(ct.array[fat]) < -30
    for mask, flagged in ((fat, True), (tumour, False)):
        meas = measure(mask, ct, ct.array, kind="soft_tissue")
        ws = _plausibility(mask, ct, meas)
        assert any("that of fat" in w for w in ws) == flagged, (flagged, meas.mean_hu, ws)


def test_a_cavity_inside_a_solid_lesion_is_not_read_as_fat():
    """New-user trial 45 M2: lung2's mass with a 3 mL air cavity, correctly outlined with it, was
    warned "mean density -55 HU, that of fat ... grown into fat" (the cavity's air in the mean; a
    thin-walled one read -353 HU, "that of fat (-190..-30)"). The mean the check reads leaves the air
    out (below limits.AERATED_MAX_HU): the tumour with an air cavity carved in it is not flagged,
    the fat region still is."""
    from imagio.segmentation.lesion import _plausibility

    ct, tumour = _pelvis_on_pads()
    x, y, z = (ras_coordinate(ct, a) for a in range(3))
    c = np.array([float(x[tumour].mean()), float(y[tumour].mean()), float(z[tumour].mean())])
    cavity = tumour & (((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) <= 12.0 ** 2)
    assert cavity.sum() > 0.15 * tumour.sum()
    arr = ct.array.copy()
    arr[cavity] = -900
    cav_ct = ct.with_array(arr)
    meas = measure(tumour, cav_ct, cav_ct.array, kind="soft_tissue")
    assert meas.mean_hu < -30   # the whole outline's mean is fat-like: the old check fired on it
    assert not any("that of fat" in w for w in _plausibility(tumour, cav_ct, meas))
    fat = ((x + 50) ** 2 + (y + 10) ** 2 + z ** 2 <= 12 ** 2)
    mf = measure(fat, cav_ct, cav_ct.array, kind="soft_tissue")
    assert any("that of fat" in w for w in _plausibility(fat, cav_ct, mf))


def test_edge_warning_wording():
    """A region cut by the field of view with a plausible outline: a lower bound. One that grew
    without a clear border or to the size limit: unreliable, never a lower bound."""
    assert "lower bound" in _edge_warning(12.0, False) and "unreliable" not in _edge_warning(12.0, False)
    w = _edge_warning(417.0, True)
    assert "unreliable" in w and "not a lower bound" in w and "417.0 mL" in w
    # end to end: a lung nodule cut by the image's edge (its own edge against the lung elsewhere):
    # a lower bound; a soft-tissue region with no border of its own reaching the edge: unreliable
    ct, _ = make_ct(spacing=(2.0, 2.0, 2.0), noise=12.0)
    x = ras_coordinate(ct, 0)[0, 0, :]
    cols = np.flatnonzero(x <= 62.0) if x[-1] > x[0] else np.flatnonzero(x >= 62.0)
    _, cut = segment_lesion(ct.crop([0, 0, int(cols.min())], [ct.shape[0], ct.shape[1], int(cols.max()) + 1]),
                            (58.0, 20.0, 30.0))
    assert cut.kind == "lung_nodule"
    assert any("lower bound" in w and "unreliable" not in w for w in cut.warnings), cut.warnings
    vol = Volume(np.zeros((20, 60, 60), np.int16), make_ijk_to_ras((1.0, 1.0, 2.0), (-30, -30, -20)))
    x, y = ras_coordinate(vol, 0), ras_coordinate(vol, 1)
    b = np.full(vol.shape, 45.0)
    b[(x < -25) & (y < -25)] = -1000.0  # outside air in a corner (a CT holds some)
    flood = vol.with_array((b + np.random.default_rng(2).normal(0, 10, vol.shape)).astype(np.int16))
    _, meas = segment_lesion(flood, (0.0, 0.0, 0.0), kind="soft_tissue", max_radius_mm=40.0)
    edge = [w for w in meas.warnings if "edge of the image" in w]
    assert edge and all("unreliable" in w and "not a lower bound" in w for w in edge), meas.warnings


@pytest.mark.data
def test_sts_002_clicks_near_the_table_are_soft_tissue(shared_data):
    """STS_002 (a sarcoma in the buttock's fat, on table pads of -800..-880 HU that fill the crop
    below the skin, no outside air): the new-user trial's two clicks, 7.6 and 5.9 mm inside the
    GTV. Before: "lung_nodule", 180 mL of fat (mean -108 HU), Dice 0.06. Measured now: soft
    tissue, Dice 0.78 / 0.85. Asserted: soft tissue, Dice >= 0.7."""
    from imagio import io

    d = shared_data / "sts-sarcoma" / "STS_002"
    ct = io.read_image(d / "CT_image.nii.gz")
    ref = io.read_image(d / "CT_mask.nii.gz").resample_like(ct, order=0).array > 0
    for click in [(-84.96, -140.62, -550.56), (-79.1, -139.65, -557.1)]:
        m, meas = segment_lesion(ct, click)
        assert meas.kind == "soft_tissue", (click, meas.kind, meas.volume_ml)
        assert dice(m, ref) >= 0.7, (click, dice(m, ref), meas.volume_ml)


def _sitk_volume(img):
    """A SimpleITK image read through imagio's reader (written to a temporary NIfTI)."""
    import os
    import tempfile

    import SimpleITK as sitk

    from imagio import io

    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "x.nii.gz")
        sitk.WriteImage(img, p)
        return io.read_image(p)


LIDC1_CLICK = (-56.2, -86.2, -115.6)   # RAS: LIDC-0001's nodule


@pytest.fixture(scope="module")
def lidc1_slab():
    """(LIDC-0001's slab as a SimpleITK image, clipped at -1024 HU; the `segment_lesion`
    measurements at ``LIDC1_CLICK`` on it, read through imagio's reader): the reference of the
    two reformat tests below, computed once."""
    import SimpleITK as sitk

    from conftest import shared_case

    src = sitk.Maximum(sitk.ReadImage(str(shared_case("lidc-slabs", "LIDC-IDRI-0001_slab.nii.gz"))), -1024)
    return src, segment_lesion(_sitk_volume(src), LIDC1_CLICK)[1]


@pytest.mark.data
def test_air_face_of_a_reformat_keeps_a_lung_nodule(lidc1_slab):
    """New-user trial 16 (HIGH): LIDC-0001's nodule with the slab's top slice (>= 10 mm above
    it) set to -1024 HU, as a resampled grid that overhangs its source fills a face: the face
    joined the cut lungs to the outside air, their joint median read as gas, and the nodule came
    out "soft_tissue" at 2.74 mL against 5.84 mL, with no warning. Asserted: a lung nodule within
    15 % of the unmodified slab's volume."""
    import SimpleITK as sitk

    src, ref = lidc1_slab
    a = sitk.GetArrayFromImage(src)
    click = LIDC1_CLICK
    a[-1] = -1024
    img = sitk.GetImageFromArray(a)
    img.CopyInformation(src)
    _, meas = segment_lesion(_sitk_volume(img), click)
    assert ref.kind == meas.kind == "lung_nodule", (ref.kind, meas.kind, meas.volume_ml)
    assert abs(meas.volume_ml - ref.volume_ml) <= 0.15 * ref.volume_ml, (meas.volume_ml, ref.volume_ml)


@pytest.mark.data
@pytest.mark.slow
def test_oblique_reformat_of_a_thick_slice_nodule_is_not_silently_soft_tissue(shared_data):
    """New-user trial 16 (HIGH): lung1 (5 mm slices) resampled onto a grid rotated 20 degrees
    about two axes, 0.8 x 0.8 x 2 mm, -1024 outside its source: the nodule's core has fat's
    median HU (partial volume over the 5 mm source slices), so the fat-core rule (made for
    regions grown through body fat) called it "soft_tissue", 0.39 mL against a 1.34 mL
    reference, with no warning. Trial 77: on such a reformat the 5 mm sections' blur lies across
    the grid's axes and the noise shows it on every axis (3.6-4.2 mm on 0.7 x 0.9 x 2 mm), so the
    nodule's partial-volume layer is judged that deep on each axis (`_pv_depth_kji`): asserted,
    the click gives a lung nodule (before: soft tissue, 0.39 mL) with Dice >= 0.7 against the
    reference resampled the same way (nearest)."""
    import SimpleITK as sitk

    d = shared_data / "pyradiomics-lung"
    out = []
    for name, lab in (("lung1_image.nrrd", False), ("lung1_label.nrrd", True)):
        i = sitk.ReadImage(str(d / name))
        c = np.array(i.TransformContinuousIndexToPhysicalPoint([(x - 1) / 2 for x in i.GetSize()]))
        rot = sitk.Euler3DTransform()
        rot.SetRotation(np.deg2rad(20.0), np.deg2rad(20.0), 0.0)
        direction = np.array(i.GetDirection()).reshape(3, 3) @ np.array(rot.GetMatrix()).reshape(3, 3)
        sp = np.array([0.8, 0.8, 2.0])
        size = [int(n * s / t) for n, s, t in zip(i.GetSize(), i.GetSpacing(), sp)]
        r = sitk.ResampleImageFilter()
        r.SetOutputDirection(direction.ravel().tolist())
        r.SetOutputOrigin((c - direction @ ((np.array(size) - 1) / 2 * sp)).tolist())
        r.SetOutputSpacing(sp.tolist())
        r.SetSize(size)
        r.SetInterpolator(sitk.sitkNearestNeighbor if lab else sitk.sitkLinear)
        r.SetDefaultPixelValue(0 if lab else -1024)
        out.append(_sitk_volume(r.Execute(i)))
    ct, ref = out
    click = (21.86, 120.54, -611.5)     # the reference's centroid, RAS
    m, meas = segment_lesion(ct, click)
    assert meas.kind == "lung_nodule", (meas.volume_ml, meas.warnings)
    assert dice(m, ref.array > 0) >= 0.7, (dice(m, ref.array > 0), meas.volume_ml)


@pytest.mark.data
@pytest.mark.slow
def test_tilted_reformat_with_padding_keeps_a_lung_nodule(lidc1_slab):
    """New-user trial 17 (HIGH): LIDC-0001's slab (2.5 mm) resampled onto a grid tilted 10
    degrees about R, -1024 outside the slab (a wedge of padding above and below the tilted
    lungs): the padding joined the lungs in the lesion's box, their joint median read as gas, and
    the nodule came out "soft_tissue" at 2.4-2.7 of 5.8 mL with no warning (forcing lung: 0.001
    mL). Asserted: a lung nodule within 15 % of the axial slab's volume, its centroid within 2 mm
    of the axial one."""
    import SimpleITK as sitk

    src, ref = lidc1_slab   # the axial slab's result, as the test above's
    click = LIDC1_CLICK
    c = np.array(src.TransformContinuousIndexToPhysicalPoint([(x - 1) / 2 for x in src.GetSize()]))
    rot = sitk.Euler3DTransform()
    rot.SetRotation(np.deg2rad(10.0), 0.0, 0.0)
    direction = np.array(src.GetDirection()).reshape(3, 3) @ np.array(rot.GetMatrix()).reshape(3, 3)
    sp = np.array(src.GetSpacing())
    size = [src.GetSize()[0], src.GetSize()[1], int(src.GetSize()[2] * 1.8)]
    r = sitk.ResampleImageFilter()
    r.SetOutputDirection(direction.ravel().tolist())
    r.SetOutputOrigin((c - direction @ ((np.array(size) - 1) / 2 * sp)).tolist())
    r.SetOutputSpacing(sp.tolist())
    r.SetSize(size)
    r.SetInterpolator(sitk.sitkLinear)
    r.SetDefaultPixelValue(-1024)
    tilted = _sitk_volume(r.Execute(src))
    assert (tilted.array == -1024).mean() > 0.2                     # a reformat with padding
    m, meas = segment_lesion(tilted, click)
    assert ref.kind == meas.kind == "lung_nodule", (meas.kind, meas.volume_ml, meas.warnings)
    assert abs(meas.volume_ml - ref.volume_ml) <= 0.15 * ref.volume_ml, (meas.volume_ml, ref.volume_ml)
    assert np.linalg.norm(np.asarray(meas.centroid_ras) - np.asarray(ref.centroid_ras)) <= 2.0


def _limb_with_noisy_clipped_air(direction):
    """(ct, tumour mask, click RAS): a thigh (a 45 mm-radius cylinder of muscle, 55 HU) with a
    18 mm-radius soft-tissue tumour (15 HU), on a 0.98 x 0.98 x 3.3 mm grid; the air around it
    noisy (-950 +- 50 HU) and clipped at -1000 HU, and -1000 HU outside a 66 mm reconstruction
    circle (padding), as in STS_008 (a radiotherapy planning CT whose outside air has a median of
    -945 HU)."""
    rng = np.random.default_rng(0)
    sp = np.array([0.98, 0.98, 3.3])
    nk, nj, ni = 40, 140, 140
    k, j, i = np.meshgrid(*[np.arange(n) * s for n, s in zip((nk, nj, ni), sp[::-1])], indexing="ij")
    ck, cj, ci = (nk - 1) * sp[2] / 2, (nj - 1) * sp[1] / 2, (ni - 1) * sp[0] / 2
    r2 = (j - cj) ** 2 + (i - ci) ** 2
    a = rng.normal(-950.0, 50.0, (nk, nj, ni))
    thigh = r2 <= 45.0 ** 2
    a[thigh] = rng.normal(55.0, 15.0, thigh.sum())
    tumour = (k - ck) ** 2 + (j - cj - 10) ** 2 + (i - ci + 12) ** 2 <= 18.0 ** 2
    a[tumour] = rng.normal(15.0, 15.0, tumour.sum())
    a = np.maximum(a, -1000.0)
    a[r2 > 66.0 ** 2] = -1000.0
    ct = Volume(a.astype(np.int16), make_ijk_to_ras(tuple(sp), (-60.0, 20.0, -300.0), direction))
    click = ct.kji_to_world(np.array([[ck / sp[2], (cj + 10) / sp[1], (ci - 12) / sp[0]]]))[0]
    return ct, tumour, click


@pytest.mark.parametrize("oblique", [False, True])
def test_noisy_clipped_air_round_a_limb_is_not_lung(oblique):
    """The CI failure of stop 30: excluding a scan's padding from the lesion box's air let the
    noisy air round a thigh (clipped at -1000 HU, so its measured median reads -945 HU, above the
    -950 HU gas level) pass for lung parenchyma, and STS_008's sarcoma became a 569 mL "lung
    nodule" (Dice 0.09). Air that reaches the padding is lung only when the body's outline
    encloses it in-plane. Independent check: the painted tumour (Dice >= 0.85, a soft-tissue
    lesion), axial and on a 20-degree oblique grid with a flipped axis."""
    from scipy.spatial.transform import Rotation

    d = Rotation.from_euler("z", 20, degrees=True).as_matrix() @ np.diag([-1, 1, 1]) if oblique else None
    ct, tumour, click = _limb_with_noisy_clipped_air(d)
    m, meas = segment_lesion(ct, click)
    assert meas.kind == "soft_tissue", (meas.kind, meas.volume_ml)
    assert dice(m, tumour) >= 0.85, (dice(m, tumour), meas.volume_ml)


def test_a_solid_nodule_with_a_partial_volume_rim_is_not_fat():
    """New-user trial 60 M2: the fat check read a solid nodule's core (its outline eroded by one
    voxel), where partial volume with the lung around a lobulated nodule on fine pixels still
    pulls the mean into fat's band (-190..-30 HU); it now reads the core's deeper half. A 10
    mm-radius 20 HU nodule whose outline holds a 3 mm rim of -400 HU (more rim than nodule by
    volume) on an anisotropic grid: the one-voxel core's tissue mean is in fat's band (checked
    here), and no fat is said; the same outline at -100 HU throughout (a fat ball) still is fat."""
    from types import SimpleNamespace

    from imagio.segmentation.lesion import fat_density_hu

    vol = Volume(np.zeros((40, 90, 90), np.int16), make_ijk_to_ras((0.8, 0.8, 2.5), (-36, -36, -50)))
    x, y, z = (ras_coordinate(vol, r) for r in range(3))
    r = np.sqrt(x ** 2 + y ** 2 + z ** 2)
    outline = r <= 13.0
    for inside, rim, want_fat in ((20.0, -400.0, False), (-100.0, -100.0, True)):
        a = np.where(r <= 10.0, inside, np.where(outline, rim, -850.0))
        ct = vol.with_array(np.rint(a + np.random.default_rng(3).normal(0, 10, a.shape)).astype(np.int16))
        meas = SimpleNamespace(kind="lung_nodule", subtype="solid", mean_hu=float(ct.array[outline].mean()))
        core = ndimage.binary_erosion(outline)
        tissue = ct.array[core][ct.array[core] >= -500]
        if not want_fat:
            assert -190.0 <= tissue.mean() < -30.0, tissue.mean()   # the mean would have said fat
        got = fat_density_hu(outline, ct, meas)
        assert (got is not None) == want_fat, (inside, got)


def test_lidc_0003_nodule_is_not_fat(request):
    """The same on the real case of the trial: LIDC-IDRI-0003's nodule (four readers, ~29 x 27
    mm), clicked at the detector's candidate (LPS 72.4, 77.5, -191.5), is a solid nodule, not
    fat; own check: the CT around the click is soft tissue (median within 3 mm > -30 HU)."""
    from conftest import shared_case
    from imagio import io

    ct = io.read_image(shared_case("lidc-slabs", "LIDC-IDRI-0003_slab.nii.gz"))
    p = np.array([-72.4, -77.5, -191.5])    # RAS
    x, y, z = (ras_coordinate(ct, r) for r in range(3))
    near = (x - p[0]) ** 2 + (y - p[1]) ** 2 + (z - p[2]) ** 2 <= 3.0 ** 2
    assert np.median(ct.array[near]) > -30.0
    m, meas = segment_lesion(ct, tuple(p))
    assert m[tuple(np.rint(ct.world_to_kji(p[None])[0]).astype(int))]
    assert not meas.fat_density, meas.warnings
    assert not any("that of fat" in w for w in meas.warnings), meas.warnings
