"""Rule-based segmentation through the Slicer Logic (imagio.mrml.logic) on real slicer-core MRML:
new segments are added next to the user's, which stay unchanged."""

import numpy as np
import pytest

from imagio import mrml, phantom
from imagio.mrml import logic

slicer = pytest.importorskip("slicer")


@pytest.fixture(scope="module")
def ph():
    return phantom.generate(spacing=3.0, seed=0)


def test_vessels_use_the_users_liver_and_keep_it(ph):
    scene = mrml.new_scene()
    ct = mrml.volume_to_node(ph.ct, scene, "CT")
    liver = ph.labels.mask("liver", "portal_vein", "hepatic_vein", "liver_tumor_1", "liver_tumor_2")
    user = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "mine")
    mrml.labels_to_segmentation(ph.labels.with_array(liver.astype(np.uint8), labels={1: "liver"}),
                                scene, node=user, reference_node=ct)
    seg_id = user.GetSegmentation().GetSegmentIdBySegmentName("liver")
    before = mrml.segmentation_to_labels(user, ph.ct, segment_ids=[seg_id]).array > 0
    node = logic.segment_volume_node(scene, ct, ["lungs", "vessels"], user)
    names = mrml.segment_names(node)
    assert names[0] == "liver"
    assert {"lung_left", "lung_right", "lung_vessels", "liver_vessels"} <= set(names)
    # the user's liver segment is unchanged
    after = mrml.segmentation_to_labels(node, ph.ct, segment_ids=[seg_id]).array > 0
    assert np.array_equal(after, before)
    # the liver vessels found lie in the phantom's portal / hepatic veins
    vid = node.GetSegmentation().GetSegmentIdBySegmentName("liver_vessels")
    hv = mrml.segmentation_to_labels(node, ph.ct, segment_ids=[vid]).array > 0
    veins = ph.labels.mask("portal_vein", "hepatic_vein")
    assert hv.any() and (hv & veins).sum() > 0.5 * hv.sum()


def test_lesion_click_inside_the_users_liver_is_bounded_by_it(ph):
    scene = mrml.new_scene()
    ct = mrml.volume_to_node(ph.ct, scene, "CT")
    les = next(l for l in ph.lesions if l.kind == "liver_tumor")
    liver = ph.labels.mask("liver", les.name)
    user = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "mine")
    mrml.labels_to_segmentation(ph.labels.with_array(liver.astype(np.uint8), labels={1: "liver"}),
                                scene, node=user, reference_node=ct)
    node, meas = logic.lesion_from_point(scene, ct, les.center_ras, user, name=les.name)
    assert mrml.segment_names(node) == ["liver", les.name]
    vid = node.GetSegmentation().GetSegmentIdBySegmentName(les.name)
    m = mrml.segmentation_to_labels(node, ph.ct, segment_ids=[vid]).array > 0
    assert not (m & ~liver).any()
    truth = ph.labels.mask(les.name)
    assert 2 * (m & truth).sum() / (m.sum() + truth.sum()) > 0.85


def test_lesion_click_is_removed_from_every_vessel_segment(ph):
    """A lung_vessels and an aorta segment drawn over a nodule lose the nodule's voxels when the
    nodule is clicked; a non-vessel segment over it (lung lobe) stays as it was."""
    scene = mrml.new_scene()
    ct = mrml.volume_to_node(ph.ct, scene, "CT")
    les = next(l for l in ph.lesions if l.kind == "lung_nodule" and l.subtype == "solid")
    nod = ph.labels.mask(les.name)
    from scipy import ndimage
    around = ndimage.binary_dilation(nod, iterations=2)
    user = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "mine")
    lab = np.zeros(ph.ct.shape, np.uint8)
    lab[around] = 1
    mrml.labels_to_segmentation(ph.labels.with_array(lab, labels={1: "lung_vessels"}), scene, node=user, reference_node=ct)
    mrml.labels_to_segmentation(ph.labels.with_array(lab, labels={1: "aorta"}), scene, node=user, reference_node=ct)
    mrml.labels_to_segmentation(ph.labels.with_array(lab, labels={1: "lung_lower_lobe_right"}), scene, node=user, reference_node=ct)
    node, meas = logic.lesion_from_point(scene, ct, les.center_ras, user, name=les.name)
    seg = node.GetSegmentation()

    def mask(name):
        sid = seg.GetSegmentIdBySegmentName(name)
        return mrml.segmentation_to_labels(node, ph.ct, segment_ids=[sid]).array > 0

    m = mask(les.name)
    assert m.sum() > 0.8 * nod.sum()
    for v in ("lung_vessels", "aorta"):
        assert not (mask(v) & m).any() and np.array_equal(mask(v), around & ~m)
    assert np.array_equal(mask("lung_lower_lobe_right"), around)
