"""`Volume` <-> vtkMRMLScalarVolumeNode / vtkMRMLLabelMapVolumeNode (exact IJK->RAS)."""

from __future__ import annotations

import numpy as np

from ..volume import Volume


def _vtk_matrix(m: np.ndarray):
    from ..vtklib import vtk

    vm = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            vm.SetElement(r, c, float(m[r, c]))
    return vm


def _np_matrix(vm) -> np.ndarray:
    return np.array([[vm.GetElement(r, c) for c in range(4)] for r in range(4)])


def array_to_image_data(arr: np.ndarray, share: bool = False):
    """[k, j, i] numpy array -> vtkImageData (dims i, j, k; spacing 1, origin 0, as Slicer keeps
    geometry in the node). ``share``: the image data reads the array's own memory (no copy; a
    C-contiguous array of a VTK type) instead of a copy: VTK keeps the array alive (the wrapped
    vtkDataArray's ``_numpy_reference``, held as long as the C++ array lives), and a change
    through either side shows in the other, so only for an array that neither side edits (the
    demo's phantom CT, written with the scene and read by the planners)."""
    from ..vtklib import vtk
    from ..vtklib import numpy_support

    arr = np.ascontiguousarray(arr.astype(np.uint8) if arr.dtype == bool else arr)
    img = vtk.vtkImageData()
    img.SetDimensions(arr.shape[2], arr.shape[1], arr.shape[0])
    scalars = numpy_support.numpy_to_vtk(arr.ravel(), deep=not share)
    scalars.SetName("ImageScalars")
    img.GetPointData().SetScalars(scalars)
    return img


def image_data_to_array(img) -> np.ndarray:
    """vtkImageData -> [k, j, i] numpy array (a copy)."""
    from ..vtklib import numpy_support

    ext = img.GetExtent()
    shape = (ext[5] - ext[4] + 1, ext[3] - ext[2] + 1, ext[1] - ext[0] + 1)
    return numpy_support.vtk_to_numpy(img.GetPointData().GetScalars()).reshape(shape).copy()


def volume_to_node(vol: Volume, scene, name: str | None = None, labelmap: bool = False, node=None,
                   share: bool = False):
    """Add (or fill ``node`` with) a volume node holding ``vol``; returns the node. ``share``: the
    node holds ``vol.array`` itself, not a copy (`array_to_image_data`: for an array that neither
    the caller nor the scene edits)."""
    if node is None:
        cls = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
        node = scene.AddNewNodeByClass(cls, name or vol.name or "Volume")
        node.CreateDefaultDisplayNodes()
    node.SetIJKToRASMatrix(_vtk_matrix(vol.ijk_to_ras))
    node.SetAndObserveImageData(array_to_image_data(vol.array, share=share))
    return node


def node_to_volume(node) -> Volume:
    """Volume node -> Volume (array copied, IJK->RAS from the node)."""
    from ..vtklib import vtk

    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return Volume(image_data_to_array(node.GetImageData()), _np_matrix(m), node.GetName() or "")
