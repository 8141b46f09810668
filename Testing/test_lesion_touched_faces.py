"""`lesion._touched_faces` (the faces of the box a one-click region reaches: the box grows while a
region touches an inner face) reads each face as a view (issue 20). Truth: the definition, a face
touched when the mask holds a voxel with index 0 or the last index along that axis, on C-order,
Fortran-order, strided and flipped masks, empty and full ones, and one-voxel-thick boxes."""

import numpy as np
import pytest

from imagio.segmentation.lesion import _touched_faces


def _definition(m):
    idx = np.argwhere(m)
    out = []
    for ax in range(3):
        for side, at in ((0, 0), (1, m.shape[ax] - 1)):
            if idx.size and np.any(idx[:, ax] == at):
                out.append((ax, side))
    return out


@pytest.mark.parametrize("layout", ["C", "F", "strided", "flipped"])
def test_touched_faces_are_the_definitions(layout):
    rng = np.random.default_rng(7)
    for shape in ((9, 11, 13), (1, 7, 5), (6, 1, 1), (1, 1, 1)):
        for density in (0.0, 0.002, 0.05, 1.0):
            base = rng.random(tuple(2 * n for n in shape)) < density
            m = {"C": np.ascontiguousarray(base[:shape[0], :shape[1], :shape[2]]),
                 "F": np.asfortranarray(base[:shape[0], :shape[1], :shape[2]]),
                 "strided": base[::2, ::2, ::2],
                 "flipped": base[::-2, ::2, ::-2]}[layout]
            assert m.shape == shape
            assert _touched_faces(m) == _definition(m), (shape, density)
    m = np.zeros((9, 11, 13), bool)
    m[4, 5, 12] = True                      # only the last column
    assert _touched_faces(m) == [(2, 1)]
    m[0, 3, 3] = True
    assert _touched_faces(m) == [(0, 0), (2, 1)]
