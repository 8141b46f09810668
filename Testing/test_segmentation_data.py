"""Rule-based segmenters on the real CTs in ../shared/data.

Thresholds are the measured values (see the report in the segrules branch history) minus a
margin, so a regression fails while small numeric drift does not:
- TotalSegmentator example (3 mm, upper abdomen + lung bases), vs its `total` reference merged
  into our classes: lungs (all lobes) Dice 0.965 measured; bones (ribs + vertebrae) 0.837
  measured. At 3 mm a rib is 1-3 voxels thick, so a one-voxel boundary convention difference
  with the reference caps bone Dice below 0.9 (the ribs alone reach 0.71).
- Chest CTA (1.5 mm, no labels): one connected airway tree with the trachea, no leak into the
  lungs, lungs split left/right.
- pyradiomics lungs (0.6 x 0.6 x 5 mm): one click at the hand label's centroid; Dice 0.911
  (1.4 mL nodule) and 0.860 (48 mL juxtapleural mass) measured; 0.870 and 0.864 after the
  phantom-driven lesion clean-up.
"""

import json

import numpy as np
import pytest

from imagio import io
from imagio.errors import InputError
from imagio.segmentation import rules
from imagio.segmentation.common import components, dice, ras_coordinate
from imagio.segmentation.lesion import segment_lesion

pytestmark = pytest.mark.data


def _ts_reference(shared_data):
    d = shared_data / "totalsegmentator-example"
    ct = io.read_image(d / "example_ct_sm.nii.gz")
    ref = io.read_image(d / "example_seg.nii.gz")
    names = {int(k): v for k, v in json.loads((d / "labels_total_v2.json").read_text()).items()}
    assert ref.same_grid(ct)

    def sel(*prefixes):
        return np.isin(ref.array, [k for k, v in names.items() if v.startswith(prefixes)])

    return ct, sel


def test_totalsegmentator_example_lungs_bones(shared_data):
    ct, sel = _ts_reference(shared_data)
    m, _ = rules.segment_masks(ct, ["body", "bones", "lungs"])
    lungs_ref = sel("lung_")
    left_ref = lungs_ref & sel("lung_upper_lobe_left", "lung_lower_lobe_left")
    assert dice(m["lung_left"] | m["lung_right"], lungs_ref) >= 0.93
    assert dice(m["lung_left"], left_ref) >= 0.92
    assert dice(m["lung_right"], lungs_ref & ~left_ref) >= 0.92
    bone = m["vertebrae"] | m["ribs"] | m["bone"]
    assert dice(bone, sel("rib_", "vertebrae_")) >= 0.80
    assert dice(m["vertebrae"], sel("vertebrae_")) >= 0.80
    # the body outline holds every labelled structure
    assert m["body"][sel("")].mean() > 0.999


# every bone class of TotalSegmentator total v2 (those in the example's field of view are ribs,
# vertebrae and costal cartilages)
TS_BONES = ("rib_", "vertebrae_", "sternum", "costal_cartilages", "hip_", "femur_", "scapula_",
            "clavicula_", "humerus_", "sacrum", "skull")


def test_totalsegmentator_example_all_bones(shared_data):
    """All bone classes merged (issue 14). Measured: Dice 0.885 (0.780 before marrow filling
    in two planes and the costal cartilages), costal cartilage recall 0.81. The remaining loss
    is the one-voxel boundary at 3 mm (false positives and negatives both one voxel from the
    reference), so >= 0.90 is not met."""
    ct, sel = _ts_reference(shared_data)
    m, meta = rules.segment_masks(ct, ["body", "bones", "lungs"])
    bone = m["vertebrae"] | m["ribs"] | m["bone"] | m["costal_cartilages"]
    assert dice(bone, sel(*TS_BONES)) >= 0.86
    cart = sel("costal_cartilages")
    assert (m["costal_cartilages"] & cart).sum() >= 0.7 * cart.sum()
    # cartilage found is cartilage or bone of the reference, not liver or muscle
    assert (m["costal_cartilages"] & sel(*TS_BONES)).sum() >= 0.8 * m["costal_cartilages"].sum()
    assert not any("cartilage" in w for w in meta["warnings"])


def test_chest_cta_airways_and_lungs(shared_data):
    ct = io.read_image(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz")
    m, meta = rules.segment_masks(ct, ["body", "lungs", "airways"])
    aw = m["trachea"] | m["airways"]
    _, n, _ = components(aw, connectivity=26)
    assert n == 1
    ml = ct.voxel_volume_ml
    trachea_ml, airway_ml = m["trachea"].sum() * ml, aw.sum() * ml
    lung_ml = (m["lung_left"].sum() + m["lung_right"].sum()) * ml
    assert 10 < trachea_ml < 50  # adult trachea lumen ~ 20-30 mL
    assert 20 < airway_ml < 150
    assert airway_ml < 0.05 * lung_ml  # no leak into the parenchyma
    assert meta["airways"]["carina_slice"] is not None
    x = ras_coordinate(ct, 0)
    assert x[m["lung_left"]].mean() < -30 and x[m["lung_right"]].mean() > 30
    assert m["lung_left"].sum() * ml > 800 and m["lung_right"].sum() * ml > 800
    # the main bronchi reach into both lungs
    assert x[m["airways"]].min() < -40 and x[m["airways"]].max() > 40


@pytest.mark.parametrize("case,min_dice", [("lung1", 0.85), ("lung2", 0.80)])
def test_pyradiomics_one_click(shared_data, case, min_dice):
    d = shared_data / "pyradiomics-lung"
    ct = io.read_image(d / f"{case}_image.nrrd")
    ref = io.read_image(d / f"{case}_label.nrrd").array > 0
    centroid = ct.kji_to_world(np.argwhere(ref).mean(0)[None])[0]
    mask, meas = segment_lesion(ct, centroid)
    assert meas.kind == "lung_nodule"
    assert dice(mask, ref) >= min_dice
    # the hand labels are drawn tight; our edge is the half-way HU level (+10..30 % volume)
    assert meas.volume_ml == pytest.approx(ref.sum() * ct.voxel_volume_ml, rel=0.35)


def test_real_ct_as_mr_like_refused(shared_data):
    ct = io.read_image(shared_data / "totalsegmentator-example" / "example_ct_sm.nii.gz")
    mr = ct.with_array((ct.array.astype(np.int32) + 1100).astype(np.int16))
    with pytest.raises(InputError, match="does not look like a CT"):
        rules.segment(mr)
    with pytest.raises(InputError, match="outside the image"):
        segment_lesion(ct, (0.0, 0.0, 5000.0))


def test_no_false_trachea_in_abdominal_ct(shared_data):
    """An abdomen-pelvis CT (rectum and bowel gas are round air tubes too) has no trachea; a
    chest CT at 5 mm slices has one."""
    ct = io.read_image(shared_data / "totalsegmentator-example" / "example_ct.nii.gz")
    seg = rules.segment(ct, ["airways"])
    assert "trachea" not in seg.labels.values()
    assert any("no trachea found" in w for w in seg.meta["warnings"])
    ct = io.read_image(shared_data / "pyradiomics-lung" / "lung1_image.nrrd")
    seg = rules.segment(ct, ["airways"])
    assert 5 < (seg.array == {n: v for v, n in seg.labels.items()}["trachea"]).sum() * ct.voxel_volume_ml < 40


def test_chest_cta_on_oblique_anisotropic_grid(shared_data):
    """The real chest CT resampled onto a grid rotated 25 deg (i flipped), 1.6 x 1.4 x 2.0 mm:
    same lungs (left on -x), one airway tree with a trachea."""
    from conftest import rotation
    from imagio.volume import Volume, make_ijk_to_ras

    ct = io.read_image(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz")
    d = rotation((1, 1, 0), 25.0) @ np.diag([-1.0, 1.0, 1.0])
    c = ct.kji_to_world(np.array(ct.shape)[None] / 2 - 0.5)[0]
    n = np.array([240, 200, 170])
    m = make_ijk_to_ras((1.6, 1.4, 2.0), (0, 0, 0), d)
    m[:3, 3] = c - m[:3, :3] @ ((n - 1) / 2)
    ob = ct.resample_like(Volume(np.zeros(tuple(n[::-1]), np.int16), m), order=1, fill=-1024)
    masks, _ = rules.segment_masks(ob, ["body", "lungs", "airways"])
    x = ras_coordinate(ob, 0)
    assert x[masks["lung_left"]].mean() < -30 and x[masks["lung_right"]].mean() > 30
    ml = ob.voxel_volume_ml
    assert masks["lung_left"].sum() * ml == pytest.approx(1684, rel=0.05)  # axis-aligned result
    assert masks["lung_right"].sum() * ml == pytest.approx(2325, rel=0.05)
    _, ncomp, _ = components(masks["trachea"] | masks["airways"], connectivity=26)
    assert ncomp == 1 and 10 < masks["trachea"].sum() * ml < 50


@pytest.mark.slow
def test_costal_cartilages_lie_in_front(shared_data):
    """Trial 7: on Lung-PET-CT-Dx A0001 (no contrast, 5 mm) 64 mL of 'costal_cartilages' ran along
    the posterior ribs; the cartilages continue the ribs' anterior ends. Checked on the rules'
    own lungs, independently of the rule: no cartilage voxel behind the coronal plane through the
    middle of the lungs' antero-posterior extent, and cartilage is still found in front."""
    ct = io.read_image(shared_data / "lung-pet-ct-dx" / "Lung_Dx-A0001_ct.nii.gz")
    seg = rules.segment(ct, ["body", "lungs", "bones"])
    inv = {n: v for v, n in seg.labels.items()}
    y = ras_coordinate(seg, 1)
    lungs = np.isin(seg.array, [inv["lung_left"], inv["lung_right"]])
    mid = 0.5 * (float(y[lungs].min()) + float(y[lungs].max()))
    cart = seg.array == inv["costal_cartilages"]
    assert float((cart & (y <= mid)).sum()) * seg.voxel_volume_ml < 0.5
    assert float((cart & (y > mid)).sum()) * seg.voxel_volume_ml > 5.0
