"""The one bridge between imagio's arrays/dataclasses and MRML nodes.

Works inside Slicer and outside it with the ``slicer-core`` wheel; nothing here imports Qt.
Split by topic: volumes, segmentations, scene (and the planning features' own modules).
"""

from .scene import load_scene, new_scene, nodes_by_class, save_scene
from .segmentations import labels_to_segmentation, segment_names, segmentation_to_labels
from .volumes import node_to_volume, volume_to_node

__all__ = ["load_scene", "new_scene", "nodes_by_class", "save_scene", "labels_to_segmentation",
           "segment_names", "segmentation_to_labels", "node_to_volume", "volume_to_node"]
