"""Voxel indices follow their voxels through `volume.reorient_array`: for every axis permutation
and flip, the index mapped by `reorient_index` reads the same value in the reoriented array, and
`unreorient_index` / `unreorient_axis_index` bring indices and planes back (integer and
fractional). Independent check: the values themselves, read by plain numpy indexing."""
import itertools

import numpy as np

from imagio.volume import reorient_array, reorient_index, unreorient_array, unreorient_axis_index, unreorient_index


def test_indices_follow_their_voxels_for_every_permutation_and_flip():
    rng = np.random.default_rng(7)
    shape = (5, 7, 11)  # anisotropic, every axis a different length
    arr = rng.random(shape)
    kji = np.stack([rng.integers(0, s, 40) for s in shape], axis=1)
    for perm in itertools.permutations(range(3)):
        for flip in itertools.product([False, True], repeat=3):
            new = reorient_array(arr, perm, flip)
            can = reorient_index(kji, perm, flip, shape)
            assert np.array_equal(new[tuple(can.T)], arr[tuple(kji.T)])
            assert np.array_equal(unreorient_index(can, perm, flip, shape), kji)
            assert np.array_equal(unreorient_array(new, perm, flip), arr)
            # a point between voxel centres keeps its place
            f = kji + 0.25
            assert np.allclose(unreorient_index(reorient_index(f, perm, flip, shape), perm, flip, shape), f)
            # a plane across the reoriented axis n is the plane of the same voxels in the original
            for n in range(3):
                v = new.shape[n] - 2
                axis, idx = unreorient_axis_index(n, v, perm, flip, shape)
                plane_new = np.take(new, v, axis=n)
                plane_old = np.take(arr, idx, axis=axis)
                assert np.isclose(plane_new.sum(), plane_old.sum())
                assert np.array_equal(np.sort(plane_new, axis=None), np.sort(plane_old, axis=None))
