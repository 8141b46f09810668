"""One-click lesion outlines are a property of the patient, not of the grid the CT is sampled on
(issue 14; new-user trial 49 M1): Lung_Dx-A0001's perihilar mass gave 58.9 mL on its own grid
and 7.4-8.0 mL on the same CT linearly resampled onto a 0.9 x 0.9 x 2 mm grid whose origin is
moved by (0.45, 0.45, 1.0) mm or that is rotated 25 degrees about S."""

import numpy as np
import pytest

from imagio.segmentation.lesion import segment_lesion

CLICK_RAS = np.array([-41.8, -206.6, -209.0])  # LPS (41.8, 206.6, -209), inside the mass


def _grid(img, deg: float, shift):
    """``img`` (SimpleITK) resampled (trilinear, -1024 outside) onto a 340 x 340 x 80 grid of
    0.9 x 0.9 x 2 mm centred near the mass, its axes rotated ``deg`` about S (LPS z), its origin
    moved by ``shift`` (mm): the same patient in the same world, sampled elsewhere."""
    import SimpleITK as sitk

    t = np.deg2rad(deg)
    rot = np.array([[np.cos(t), -np.sin(t), 0.0], [np.sin(t), np.cos(t), 0.0], [0.0, 0.0, 1.0]])
    sp, n = np.array([0.9, 0.9, 2.0]), np.array([340, 340, 80])
    origin = np.array([41.8, 204.0, -209.0]) - rot @ (sp * n / 2.0) + np.asarray(shift, float)
    return sitk.Resample(img, [int(v) for v in n], sitk.Transform(), sitk.sitkLinear, tuple(origin), tuple(sp),
                         tuple(rot.ravel()), -1024, sitk.sitkInt16)


def _nearest_on(mask, img, ref):
    """``mask`` ([k, j, i] on ``img``'s grid) on ``ref``'s grid by nearest neighbour (world space)."""
    import SimpleITK as sitk

    m = sitk.GetImageFromArray(mask.astype(np.uint8))
    m.CopyInformation(img)
    return sitk.GetArrayFromImage(sitk.Resample(m, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0)) > 0


@pytest.mark.data
@pytest.mark.slow
def test_dx_mass_is_the_same_on_a_shifted_and_a_rotated_grid(shared_data):
    """The mass from one click on its own grid, on a grid whose origin is moved by a sub-voxel
    (0.45, 0.45, 1.0) mm and on one rotated 25 degrees about S: volumes (own voxel counts x
    voxel volume) within 10 % of each other and Dice >= 0.85 between every pair, compared in
    world space (one mask brought onto the other's grid by nearest neighbour). Before: 58.9 /
    10.3 / 7.9 mL (the statistical model's homogeneous core, its window [1.5, 13.9] HU, and the
    probe's closed 53-54 mL outline refused at four times that). After: 58.9 / 55.3 / 53.8 mL,
    Dice 0.87-0.92."""
    import SimpleITK as sitk

    from imagio import io

    path = shared_data / "lung-pet-ct-dx" / "Lung_Dx-A0001_ct.nii.gz"
    native = sitk.ReadImage(str(path))
    grids = [native, _grid(native, 0.0, (0.45, 0.45, 1.0)), _grid(native, 25.0, (0.0, 0.0, 0.0))]
    masks = []
    for img in grids:
        m, meas = segment_lesion(io.volume_from_sitk(img), CLICK_RAS)
        assert meas.kind == "soft_tissue", meas.kind
        masks.append(m)
    vols = [float(m.sum()) * float(np.prod(img.GetSpacing())) / 1000.0 for m, img in zip(masks, grids)]
    assert max(vols) <= 1.10 * min(vols), vols
    for a in range(3):
        for b in range(a + 1, 3):
            on_a = _nearest_on(masks[b], grids[b], grids[a])
            dice = 2.0 * (on_a & masks[a]).sum() / (on_a.sum() + masks[a].sum())
            assert dice >= 0.85, (a, b, dice, vols)


@pytest.mark.data
@pytest.mark.slow
def test_a_homogeneous_core_bounded_by_edges_is_said_to_be_only_the_core(shared_data):
    """The same mass on the shifted grid with the search limited to 30 mm from the click (the
    50 mm mass does not fit: no closed outline around its core can be found): the result is the
    homogeneous region round the click (about 10 mL of the 55-59 mL mass). Its border has an
    intensity edge along most of it (own check: the outline's `edge_support` >= 0.5), so the
    warning says "the outline may hold only the core" with that reason, not the reason of a
    tumour in muscle without contrast (trial 49 M1: "no clear intensity edge ... muscle on a
    non-contrast CT" on a result whose edge support was 0.908)."""
    import SimpleITK as sitk

    from imagio import io
    from imagio.segmentation.lesion import edge_support

    img = _grid(sitk.ReadImage(str(shared_data / "lung-pet-ct-dx" / "Lung_Dx-A0001_ct.nii.gz")), 0.0, (0.45, 0.45, 1.0))
    ct = io.volume_from_sitk(img)
    m, meas = segment_lesion(ct, CLICK_RAS, max_radius_mm=30.0)
    share, _ = edge_support(m, ct)
    assert share >= 0.5 and float(m.sum()) * ct.voxel_volume_ml < 0.5 * 55.0, (share, meas.volume_ml)
    core = [w for w in meas.warnings if "the outline may hold only the core" in w]
    assert len(core) == 1 and "% of its border" in core[0], meas.warnings
    assert not any("muscle on a non-contrast CT" in w for w in meas.warnings), meas.warnings


def test_a_click_in_an_organ_is_not_grown_to_the_organ_as_a_tumour_core():
    """Review 43 H1: the edged-core rule took the closed outline around a homogeneous region
    without any size bound, so a click in the middle of the phantom's pancreas (no lesion there)
    gave 70.6 mL, 93 % of the 75.8 mL pancreas, said to be "the core of a heterogeneous tumour".
    The outline around an edged core is bounded at ``edged_core_max_ratio`` times the core: here
    the result is far from the whole organ. Own check: the organ's volume from the phantom's
    labels."""
    from imagio import phantom
    from imagio.segmentation.lesion import segment_lesion

    ph = phantom.generate(spacing=2.0)
    lab = ph.labels
    v = next(k for k, n in lab.labels.items() if n == "pancreas")
    pts = np.argwhere(lab.array == v)
    click = lab.kji_to_world(pts[len(pts) // 2][None].astype(float))[0]
    organ_ml = float((lab.array == v).sum()) * ph.ct.voxel_volume_ml
    _, meas = segment_lesion(ph.ct, click)
    assert meas.volume_ml < 0.5 * organ_ml, (meas.volume_ml, organ_ml, meas.warnings)
    assert not any("taken as the core of a heterogeneous tumour" in w for w in meas.warnings), meas.warnings
