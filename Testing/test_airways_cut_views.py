"""Airways in views whose faces cut the trachea or leave it out (issue 14, new-user trial 51).

M1: a front or back face through the middle of the trachea opens its lumen to the image's edge in
every slice, so the lumen read as air outside the body and no trachea was found at all (the chest
CTA cut at j < 72: 7.1 mL of its lumen labelled nothing, warned that the CT does not cover the
chest above the carina, which it does). M2: a view whose top face lies below the carina (the lower
half of lung1) named a round recess of the right lung beside the heart `trachea` (3.4 mL) and its
main bronchi lung.

Reference: the uncropped run on the same voxels (each crop is an index slice of that grid)."""

import numpy as np
import pytest

from imagio.segmentation.common import anatomical_axes, crop_slices


def _segment(ct, sl):
    from imagio.segmentation.rules import segment_masks

    c = crop_slices(ct, sl)
    m, meta = segment_masks(c, ("body", "lungs", "airways"))
    return c, m, meta


@pytest.fixture(scope="module")
def cta():
    from conftest import SHARED_DATA

    from imagio import io
    from imagio.segmentation.rules import segment_masks

    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not present")
    ct = io.read_image(SHARED_DATA / "totalsegmentator-chest-cta" / "chest_cta.nii.gz")
    ref, _ = segment_masks(ct, ("body", "lungs", "airways"))
    return ct, ref


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("keep", ["front", "back"])
def test_a_coronal_face_through_the_tracheas_middle_keeps_the_trachea(cta, keep):
    """The face through the trachea's own centre along the antero-posterior axis (from the
    uncropped run's trachea; trial 51 cut at j < 72, the same kind of cut), keeping either side:
    the crop's trachea matches the uncropped trachea on those voxels (volume within 10 %, Dice
    >= 0.9; main, front: none, 7.1 mL of lumen labelled nothing), every trachea voxel is inside
    the body, and no warning says that the view misses the chest above the carina."""
    ct, ref = cta
    ap, sign = anatomical_axes(ct)["A"]
    c_ap = int(round(np.argwhere(ref["trachea"])[:, ap].mean()))
    front_high = sign > 0   # the array index rises to the front
    sl = [slice(None)] * 3
    sl[ap] = slice(c_ap, None) if (keep == "front") == front_high else slice(0, c_ap)
    sl = tuple(sl)
    c, m, meta = _segment(ct, sl)
    want = ref["trachea"][sl]
    v = c.voxel_volume_ml
    assert want.sum() * v > 8.0   # the face cuts a long stretch of trachea
    got = m.get("trachea", np.zeros_like(want))
    assert abs(float(got.sum() - want.sum())) <= 0.1 * want.sum(), (got.sum() * v, want.sum() * v)
    assert 2.0 * (got & want).sum() / (got.sum() + want.sum()) >= 0.9
    assert not (got & ~m["body"]).any()
    assert not any("above the carina" in w and "no trachea" in w for w in meta["warnings"]), meta["warnings"]


@pytest.mark.slow
@pytest.mark.data
def test_chest_cta_cut_at_the_trials_back_face(cta):
    """The trial's own crop (the 72 front-most rows, whose back face runs through the trachea
    lengthwise over k 143-190): trachea within 10 % of the uncropped one there."""
    ct, ref = cta
    ap, sign = anatomical_axes(ct)["A"]
    assert sign < 0   # j rises to the back on this grid: rows 0-71 are the front
    sl = [slice(None)] * 3
    sl[ap] = slice(0, 72)
    sl = tuple(sl)
    c, m, meta = _segment(ct, sl)
    want = float(ref["trachea"][sl].sum())
    got = float(m.get("trachea", np.zeros(1, bool)).sum())
    assert want * c.voxel_volume_ml > 5.0
    assert abs(got - want) <= 0.1 * want, (got * c.voxel_volume_ml, want * c.voxel_volume_ml)
    assert any("back face cuts the trachea lengthwise" in w for w in meta["warnings"]), meta["warnings"]


def _lower_half(ct):
    s_ax, s_sign = anatomical_axes(ct)["S"]
    n = ct.shape[s_ax]
    sl = [slice(None)] * 3
    sl[s_ax] = slice(0, n // 2) if s_sign > 0 else slice(n - n // 2, n)
    return tuple(sl)


@pytest.mark.slow
@pytest.mark.data
def test_lung1_lower_half_names_no_lung_trachea_and_labels_its_bronchi(shared_data):
    """lung1's lower half (24 of 48 slices, 5 mm): nothing the uncropped run calls lung is
    labelled trachea or airways beyond 0.1 mL (main: 3.4 mL of right lung named trachea); at least
    80 % of the uncropped run's airway tree in view is labelled airways or trachea (main: 0 of
    6.2 mL); the warning says the top face cuts the lungs and the trachea lies above the view."""
    from imagio import io
    from imagio.segmentation.rules import segment_masks

    ct = io.read_image(shared_data / "pyradiomics-lung" / "lung1_image.nrrd")
    ref, _ = segment_masks(ct, ("body", "lungs", "airways"))
    sl = _lower_half(ct)
    c, m, meta = _segment(ct, sl)
    v = c.voxel_volume_ml
    air = m.get("trachea", np.zeros(c.shape, bool)) | m.get("airways", np.zeros(c.shape, bool))
    lung = ref["lung_left"][sl] | ref["lung_right"][sl]
    assert float((air & lung).sum() * v) <= 0.1, float((air & lung).sum() * v)
    tree = ref["trachea"][sl] | ref["airways"][sl]
    assert tree.sum() * v > 3.0
    assert (air & tree).sum() >= 0.8 * tree.sum(), ((air & tree).sum() * v, tree.sum() * v)
    assert any("top face cuts the lungs" in w for w in meta["warnings"]), meta["warnings"]


@pytest.mark.slow
@pytest.mark.data
def test_chest_cta_lower_half_bronchi_not_lung(cta):
    """The chest CTA's lower half (its top ~37 mm below the carina): no trachea, the warning says
    why (the top face cuts the lungs), and >= 1 mL of the uncropped run's bronchi there are
    labelled airways (main: 0 of 7.1 mL, all lung), with >= 70 % of the airways label on or
    beside (one voxel) that run's tree."""
    from scipy import ndimage

    ct, ref = cta
    sl = _lower_half(ct)
    c, m, meta = _segment(ct, sl)
    v = c.voxel_volume_ml
    assert not m.get("trachea", np.zeros(1, bool)).any()
    tree = ref["trachea"][sl] | ref["airways"][sl]
    got = m.get("airways", np.zeros(c.shape, bool))
    assert float((got & tree).sum() * v) >= 1.0
    assert (got & ndimage.binary_dilation(tree)).sum() >= 0.7 * got.sum()
    assert not (got & (m["lung_left"] | m["lung_right"])).any()
    assert any("top face cuts the lungs" in w for w in meta["warnings"]), meta["warnings"]


@pytest.mark.slow
@pytest.mark.data
def test_chest_cta_cut_15_mm_below_the_carina_labels_its_main_bronchi(cta):
    """New-user trial 54 H2: the chest CTA cut at RAS S 705 mm (~15 mm below its carina; no
    trachea in view). Its main bronchi leave the top face as lumens reading -930..-960 HU, noise
    scattering their pixels round -950 HU, so no lumen was seeded (main: airways 0 mL, the
    uncropped run's 15.3 mL of bronchi there all labelled lung). Independent check against the
    uncropped run on the same voxels: >= 70 % of its tree in the crop labelled airways, <= 10 %
    of it labelled lung, and the airways label lies on or beside (one voxel) that tree for
    >= 85 % of its volume; own count of the tree's lumens on the top face (2-D components of
    >= 50 mm^2: a main or lobar bronchus, 8 mm wide) each touched by the airways label."""
    from scipy import ndimage

    from imagio.segmentation.common import ras_coordinate

    ct, ref = cta
    s_ax, s_sign = anatomical_axes(ct)["S"]
    zs = np.moveaxis(ras_coordinate(ct, 2), s_ax, 0)[:, 0, 0]
    keep = np.flatnonzero(zs <= 705.0)
    sl = [slice(None)] * 3
    sl[s_ax] = slice(int(keep.min()), int(keep.max()) + 1)
    sl = tuple(sl)
    c, m, meta = _segment(ct, sl)
    v = c.voxel_volume_ml
    assert not m.get("trachea", np.zeros(1, bool)).any()
    tree = ref["trachea"][sl] | ref["airways"][sl]
    assert tree.sum() * v > 10.0                                    # the bronchi are in the crop
    got = m.get("airways", np.zeros(c.shape, bool))
    assert (got & tree).sum() >= 0.7 * tree.sum(), ((got & tree).sum() * v, tree.sum() * v)
    assert ((m["lung_left"] | m["lung_right"]) & tree).sum() <= 0.1 * tree.sum()
    assert (got & ndimage.binary_dilation(tree)).sum() >= 0.85 * got.sum()
    top = int(keep.max()) - int(keep.min()) if s_sign > 0 else 0
    face = np.take(tree, top, axis=s_ax)
    lab, n = ndimage.label(face, structure=np.ones((3, 3), bool))
    px = float(np.prod([s for d, s in enumerate(c.spacing_kji) if d != s_ax]))
    big = [i for i in range(1, n + 1) if (lab == i).sum() * px >= 50.0]
    assert len(big) >= 2
    on_face = np.take(got, top, axis=s_ax)
    assert all((on_face & (lab == i)).any() for i in big)
    assert any("top face cuts the lungs" in w for w in meta["warnings"]), meta["warnings"]
