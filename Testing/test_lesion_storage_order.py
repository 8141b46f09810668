"""One-click lesion: one world image gives one result, whatever the order its voxels are stored in
(new-user trial 112 F2: Lung_Dx-A0001 clicked at R,A,S -41.0, -197.3, -212.6 grew 51.6 mL and a
check click 33.1 mL, range 33.1-51.6 mL; the same CT stored flipped left-right (and flipped
left-right and head-feet, and as a DICOM series with rows running to the right) grew the same two
outlines, but the check outline's own probe, the voxel of it farthest from its click, fell on
another of the equally far voxels and grew 1030.4 mL that leaked: check_leaked, no range).

The outline, its checks and their clicks are grown on the CT's LPS-canonical storage
(`lesion._canonical_storage`) and the mask is given back in the file's order."""

import numpy as np
import pytest

from imagio.segmentation.lesion import segment_lesion
from imagio.volume import Volume, _reordered, make_ijk_to_ras, reorient_array, unreorient_index

# (perm, flip) of `volume.reorient_array` from the phantom's LPS-canonical storage
STORAGES = {"i_flipped": ([0, 1, 2], [False, False, True]),
            "i_and_k_flipped": ([0, 1, 2], [True, False, True]),
            "permuted_and_flipped": ([2, 0, 1], [False, True, False])}


def _ellipsoid():
    """A 40 HU ellipsoid (semi-axes 14, 9, 8 mm along R, A, S) centred on a voxel centre at the
    world origin, in fat (-100 HU) with air beyond |A| > 22 mm, noise SD 12 HU, 1 mm voxels,
    stored LPS-canonically (i to L, j to P, k to S). The voxels of the outline farthest from a
    click at its centre lie in pairs mirrored across it (ties), and the noise differs at each of
    a pair, so the check click put at the first of them in storage order grew another volume."""
    n = np.array([71, 51, 45])   # i, j, k
    d = np.diag([-1.0, -1.0, 1.0])
    ct = Volume(np.zeros(tuple(n[::-1]), np.float32), make_ijk_to_ras([1.0] * 3, -(d @ ((n - 1) / 2.0)), d))
    ras = ct.kji_to_world(np.stack(np.indices(ct.shape), -1).reshape(-1, 3).astype(float)).reshape(ct.shape + (3,))
    x, y, z = ras[..., 0], ras[..., 1], ras[..., 2]
    a = np.full(ct.shape, -100.0)
    a[(x / 14.0) ** 2 + (y / 9.0) ** 2 + (z / 8.0) ** 2 <= 1.0] = 40.0
    a[np.abs(y) > 22.0] = -1000.0
    ct.array = (a + np.random.default_rng(3).normal(0.0, 12.0, a.shape)).astype(np.float32)
    return ct


@pytest.fixture(scope="module")
def axial():
    ct = _ellipsoid()
    mask, meas = segment_lesion(ct, [0.0, 0.0, 0.0])
    return ct, mask, meas.to_dict()


@pytest.mark.parametrize("storage", sorted(STORAGES))
def test_every_storage_of_one_image_gives_one_outline_range_and_verdict(axial, storage):
    """The same physical image stored flipped along i, along i and k, and permuted: the same
    outline (voxel for voxel, compared on one storage), volume, centroid, volume range and
    verdicts (leaked, check_leaked, click_dependent, size withheld). On the previous commit the
    i-flipped and i+k-flipped storages gave volume_range_ml [4.09, 4.11] against [4.09, 4.09]
    (the check click at the other of two equally far voxels); the outlines agreed."""
    ct, mask0, d0 = axial
    perm, flip = STORAGES[storage]
    other = _reordered(ct, perm, flip)[0]
    # the same physical image: every voxel keeps its value and world position
    kji = np.array([[0, 0, 0], [3, 7, 11], [other.shape[0] - 1, 2, other.shape[2] - 5]])
    back = unreorient_index(kji, perm, flip, ct.shape)
    assert np.allclose(other.kji_to_world(kji.astype(float)), ct.kji_to_world(back.astype(float)), atol=1e-9)
    assert np.array_equal(other.array[tuple(kji.T)], ct.array[tuple(back.T)])
    mask, meas = segment_lesion(other, [0.0, 0.0, 0.0])
    d = meas.to_dict()
    assert mask.shape == other.shape
    assert np.array_equal(mask, reorient_array(mask0, perm, flip))
    assert d["volume_range_ml"] == d0["volume_range_ml"], (d["volume_range_ml"], d0["volume_range_ml"])
    for key in ("volume_ml", "centroid_ras", "leaked", "check_leaked", "click_dependent", "size_withheld", "kind"):
        assert d.get(key) == d0.get(key), (key, d.get(key), d0.get(key))
    assert d.get("warnings") == d0.get("warnings")
