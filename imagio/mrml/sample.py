"""The digital patient (imagio.phantom) as MRML nodes: the sample data of the Slicer modules
(registered with Slicer's SampleData module) and the demo case of IMAGIO Web."""

from .segmentations import labels_to_segmentation
from .volumes import volume_to_node

PHANTOM_NAME = "IMAGIO phantom"


def phantom_to_scene(scene, spacing: float = 1.5, seed: int = 0, with_labels: bool = True):
    """Generate the phantom (``imagio.phantom.generate``; ``spacing`` in mm, isotropic) and add
    its CT (HU) as a scalar volume node and, with ``with_labels``, its reference labels as a
    segmentation node on the CT's geometry. Returns (phantom, CT node, segmentation node or None)."""
    from ..phantom import generate

    ph = generate(spacing=spacing, seed=seed)
    ct = volume_to_node(ph.ct, scene, f"{PHANTOM_NAME} CT")
    seg = None
    if with_labels:
        seg, _ = labels_to_segmentation(ph.labels, scene, name=f"{PHANTOM_NAME} segmentation", reference_node=ct)
    return ph, ct, seg
