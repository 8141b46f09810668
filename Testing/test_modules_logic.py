"""The Slicer modules' Logic work (imagio.mrml.logic) on real slicer-core MRML."""

import numpy as np
import pytest

from imagio import io, mrml, phantom
from imagio.mrml import logic

slicer = pytest.importorskip("slicer")


@pytest.fixture(scope="module")
def ph():
    return phantom.generate(spacing=3.0, seed=0)


def test_load_segmentation_file_adds_named_segments(tmp_path, ph):
    io.write_labels(ph.labels, tmp_path / "labels.seg.nrrd")
    scene = mrml.new_scene()
    ct = mrml.volume_to_node(ph.ct, scene, "CT")
    user = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "mine")
    mrml.labels_to_segmentation(ph.labels.with_array((ph.labels.array == 1).astype(np.uint8),
                                                     labels={1: "liver"}), scene, node=user)
    node = logic.load_segmentation_file(scene, ct, tmp_path / "labels.seg.nrrd", user)
    names = mrml.segment_names(node)
    assert names[0] == "liver"  # the user's segment stays first and unchanged
    assert "liver_2" in names and len(names) == 1 + len(ph.labels.labels)


def test_segment_volume_node_and_structure_table(ph):
    scene = mrml.new_scene()
    ct = mrml.volume_to_node(ph.ct, scene, "CT")
    node = logic.segment_volume_node(scene, ct, ["body", "lungs"])
    names = set(mrml.segment_names(node))
    assert {"body", "lung_left", "lung_right"} <= names
    table = logic.structure_table(scene, node, volume_node=ct)
    t = table.GetTable()
    rows = {t.GetValue(r, 0).ToString(): (t.GetValue(r, 1).ToString(), t.GetValue(r, 3).ToDouble())
            for r in range(t.GetNumberOfRows())}
    assert rows["lung_left"][0] == "passable"
    truth_ml = ph.labels.mask("lung_upper_lobe_left", "lung_lower_lobe_left").sum() * ph.labels.voxel_volume_ml
    assert abs(rows["lung_left"][1] - truth_ml) / truth_ml < 0.15


def test_lesion_from_point_adds_a_target_segment(ph):
    scene = mrml.new_scene()
    ct = mrml.volume_to_node(ph.ct, scene, "CT")
    les = ph.lesions[0]
    node, meas = logic.lesion_from_point(scene, ct, les.center_ras, name=les.name)
    assert mrml.segment_names(node) == [les.name]
    assert abs(meas.long_axis_mm - 2 * les.radius_mm) <= 2 * ph.spacing


def test_plan_trajectories_puts_proposals_in_the_scene(ph):
    scene = mrml.new_scene()
    ct = mrml.volume_to_node(ph.ct, scene, "CT")
    seg, _ = mrml.labels_to_segmentation(ph.labels, scene, reference_node=ct)
    result, ids = logic.plan_trajectories(scene, ct, seg, "liver_tumor_1")
    assert result.feasible
    path = scene.GetNodeByID(ids["path"])
    assert path.GetNumberOfControlPoints() == 2
    assert scene.GetNodeByID(ids["risk_map"]).GetPolyData().GetNumberOfPoints() > 100
    # proposals are locked: a drag at the shared target grabs the editable path, not a proposal
    assert ids["proposals"]
    assert all(scene.GetNodeByID(i).GetLocked() == 1 for i in ids["proposals"])
    assert path.GetLocked() == 0


def test_phantom_sample_data_nodes(ph):
    """The sample-data loader's nodes: the phantom CT (HU) and its reference labels as segments
    on the CT's geometry."""
    from imagio.mrml.sample import phantom_to_scene

    scene = mrml.new_scene()
    gen, ct, seg = phantom_to_scene(scene, spacing=3.0, seed=0)
    np.testing.assert_array_equal(mrml.node_to_volume(ct).array, ph.ct.array)
    np.testing.assert_allclose(mrml.node_to_volume(ct).ijk_to_ras, ph.ct.ijk_to_ras)
    assert set(mrml.segment_names(seg)) == set(ph.labels.labels.values())
    back = mrml.segmentation_to_labels(seg, reference=ph.ct)
    for value, name in ph.labels.labels.items():
        assert (back.mask(name) == (ph.labels.array == value)).all(), name
