"""`bones.attach_edge` (issue 14): thin bone's blurred edge (`bone_mask`'s ``info["edge"]`` on a
CT angiography blurrier than the common resolution) is given to the one bone piece it surrounds
and never joins two pieces. On the chest CTA's 3 mm corner-aligned grid, the edge added before
`split_bones` bridged two rib pieces (4.9 mL, median 260 HU, and 3.1 mL, median 229 HU) into one
whose median fell below test_bones_ribs_solid_organ's floor."""

import numpy as np
from scipy import ndimage

from imagio.segmentation.bones import attach_edge

S26 = np.ones((3, 3, 3), bool)


def _grid():
    shape = (12, 20, 24)
    ribs = np.zeros(shape, bool)
    bone = np.zeros(shape, bool)
    ribs[4:8, 4:7, 2:10] = True      # rib A
    ribs[4:8, 4:7, 11:19] = True     # rib B: one voxel of soft tissue (i = 10) from A
    bone[4:8, 12:15, 2:8] = True     # another bone C (a scapula), five voxels from A
    return ribs, bone


def test_edge_between_two_ribs_joins_neither_and_rims_stay_with_their_rib():
    ribs, bone = _grid()
    edge = np.zeros_like(ribs)
    edge[4:8, 4:7, 10] = True        # the gap between A and B: touches both
    edge[4:8, 3, 2:10] = True        # A's rim on one side (one layer) ...
    edge[4:8, 2, 2:10] = True        # ... and a second layer beyond it (a blur wider than a voxel)
    edge[4:8, 7, 12:19] = True       # B's rim on the other side
    edge[4:8, 11, 2:8] = True        # C's rim: touches C only
    parts = {"vertebrae": np.zeros_like(ribs), "ribs": ribs, "bone": bone}
    out = attach_edge(parts, edge)
    # the rib label is still two pieces: the gap is in no label
    assert ndimage.label(out["ribs"], S26)[1] == 2
    assert not (out["ribs"] | out["bone"] | out["vertebrae"])[4:8, 4:7, 10].any()
    # each rim is with its own bone, both layers of A's
    assert out["ribs"][4:8, 2:4, 2:10].all() and out["ribs"][4:8, 7, 12:19].all()
    assert out["bone"][4:8, 11, 2:8].all() and not out["ribs"][4:8, 11, 2:8].any()
    # nothing else changes, the inputs are not written
    assert not parts["ribs"][edge].any() and not parts["bone"][edge].any()
    assert (out["ribs"] & ~edge == ribs).all() and (out["bone"] & ~edge == bone).all()


def test_rims_of_two_bones_meeting_in_one_layer_join_neither():
    ribs, _ = _grid()
    # a rib and a bone three voxels apart: their one-voxel rims meet between them
    bone = np.zeros_like(ribs)
    bone[4:8, 10:13, 2:10] = True
    edge = np.zeros_like(ribs)
    edge[4:8, 7, 2:10] = True        # beside A only
    edge[4:8, 9, 2:10] = True        # beside C only
    edge[4:8, 8, 2:10] = True        # the middle layer: beside both rims once they are given
    out = attach_edge({"ribs": ribs, "bone": bone}, edge)
    assert out["ribs"][4:8, 7, 2:10].all() and out["bone"][4:8, 9, 2:10].all()
    assert not (out["ribs"] | out["bone"])[4:8, 8, 2:10].any()
    # two rims given in the same layer side by side: neither is given
    edge = np.zeros_like(ribs)
    edge[4:8, 7, 2:10] = True
    edge[4:8, 8, 2:10] = True
    bone = np.zeros_like(ribs)
    bone[4:8, 9:12, 2:10] = True
    out = attach_edge({"ribs": ribs, "bone": bone}, edge)
    assert not (out["ribs"] | out["bone"])[4:8, 7:9, 2:10].any()
    assert ndimage.label(out["ribs"] | out["bone"], S26)[1] == 3   # A, B and C apart
