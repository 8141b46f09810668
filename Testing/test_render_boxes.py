"""The plan picture meshes each structure from its bounding box only (`render._surface_in_box`):
the mesh must be exactly the one of the whole-volume mask (`render._surface`), also for a
structure touching a face of the volume, on an oblique, anisotropic grid."""

import numpy as np
from scipy import ndimage
from vtk.util import numpy_support as ns

from imagio.planning.render import _surface, _surface_in_box


def test_box_surfaces_equal_whole_volume_surfaces(oblique_affine):
    lab = np.zeros((24, 30, 28), np.uint8)
    k, j, i = np.ogrid[:24, :30, :28]
    lab[(k - 12) ** 2 + (j - 14) ** 2 / 2 + (i - 13) ** 2 < 30] = 1          # interior ball
    lab[:5, 3:12, 20:] = 2                                                  # touches three faces
    lab[14:20, 20:27, 1:8] = 3                                              # near a face, 1 voxel off
    boxes = ndimage.find_objects(lab)
    for v in (1, 2, 3):
        whole = _surface(lab == v, oblique_affine)
        boxed = _surface_in_box(lab, v, boxes[v - 1], oblique_affine)
        a, b = (ns.vtk_to_numpy(p.GetPoints().GetData()) for p in (whole, boxed))
        assert a.shape[0] > 0
        assert np.array_equal(a, b)
        ca, cb = (ns.vtk_to_numpy(p.GetPolys().GetConnectivityArray()) for p in (whole, boxed))
        assert np.array_equal(ca, cb)
