"""Issue 20: the coordinate transforms take their (N, 3) x (3, 3) products a block of rows at a
time (`volume.rows_matmul`): OpenBLAS ran a million-row product on all its threads, which spun
around the memory-bound product (the couch search of the 1 mm phantom: 13 of 28 CPU-s to the
first proposals with 2 threads). The blocks must give the values of one product, bit for bit."""

import numpy as np

from imagio.volume import BLAS_ROWS, Volume, make_ijk_to_ras, rows_matmul


def test_blocked_products_are_those_of_one_call():
    rng = np.random.default_rng(3)
    m = np.linalg.qr(rng.normal(size=(3, 3)))[0] * [0.7, 0.8, 2.5]
    v = rng.normal(size=3)
    for n in (0, 1, 7, 2 * BLAS_ROWS - 1, 2 * BLAS_ROWS, 2 * BLAS_ROWS + 1, 5 * BLAS_ROWS + 13, 300_001):
        ints = rng.integers(-600, 600, size=(n, 3))
        for x in (ints.astype(float), ints.astype(float)[:, ::-1], ints * 0.7 + rng.random((n, 3))):
            for mat in (m, m.T, v):
                assert np.array_equal(rows_matmul(x, mat), x @ mat), (n, mat.shape)


def test_volume_transforms_equal_one_product_on_an_oblique_grid():
    rng = np.random.default_rng(4)
    rot = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    vol = Volume(np.zeros((5, 6, 7), np.int16), make_ijk_to_ras((0.74, 0.74, 2.5), (-120.5, 33.0, 7.25), rot))
    kji = rng.integers(0, 500, size=(200_003, 3))
    ijk = kji[:, ::-1].astype(float)
    ras = ijk @ vol.ijk_to_ras[:3, :3].T + vol.ijk_to_ras[:3, 3]
    assert np.array_equal(vol.kji_to_world(kji), ras)
    inv = vol.ras_to_ijk
    assert np.array_equal(vol.world_to_ijk(ras), ras @ inv[:3, :3].T + inv[:3, 3])
