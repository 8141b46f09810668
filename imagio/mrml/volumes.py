"""`Volume` <-> vtkMRMLScalarVolumeNode / vtkMRMLLabelMapVolumeNode (exact IJK->RAS)."""

from __future__ import annotations

import numpy as np

from ..volume import Volume


def _vtk_matrix(m: np.ndarray):
    import vtk

    vm = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            vm.SetElement(r, c, float(m[r, c]))
    return vm


def _np_matrix(vm) -> np.ndarray:
    return np.array([[vm.GetElement(r, c) for c in range(4)] for r in range(4)])


def array_to_image_data(arr: np.ndarray):
    """[k, j, i] numpy array -> vtkImageData (dims i, j, k; spacing 1, origin 0, as Slicer keeps
    geometry in the node)."""
    import vtk
    from vtk.util import numpy_support

    arr = np.ascontiguousarray(arr.astype(np.uint8) if arr.dtype == bool else arr)
    img = vtk.vtkImageData()
    img.SetDimensions(arr.shape[2], arr.shape[1], arr.shape[0])
    scalars = numpy_support.numpy_to_vtk(arr.ravel(), deep=True)
    scalars.SetName("ImageScalars")
    img.GetPointData().SetScalars(scalars)
    return img


def image_data_to_array(img) -> np.ndarray:
    """vtkImageData -> [k, j, i] numpy array (a copy)."""
    from vtk.util import numpy_support

    ext = img.GetExtent()
    shape = (ext[5] - ext[4] + 1, ext[3] - ext[2] + 1, ext[1] - ext[0] + 1)
    return numpy_support.vtk_to_numpy(img.GetPointData().GetScalars()).reshape(shape).copy()


def volume_to_node(vol: Volume, scene, name: str | None = None, labelmap: bool = False, node=None):
    """Add (or fill ``node`` with) a volume node holding ``vol``; returns the node."""
    if node is None:
        cls = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
        node = scene.AddNewNodeByClass(cls, name or vol.name or "Volume")
        node.CreateDefaultDisplayNodes()
    node.SetIJKToRASMatrix(_vtk_matrix(vol.ijk_to_ras))
    node.SetAndObserveImageData(array_to_image_data(vol.array))
    return node


def node_to_volume(node) -> Volume:
    """Volume node -> Volume (array copied, IJK->RAS from the node)."""
    import vtk

    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return Volume(image_data_to_array(node.GetImageData()), _np_matrix(m), node.GetName() or "")
