"""Issue 20 (the demo under 1 GB): the analysis grid's tumour distance map (`coverage._sdf`) is
computed in place and the heat-sink centre lines (`heatsink.centrelines`) take the lumen
diameter at their ridge candidates only; both give the values of the plain formulas bit for
bit (random masks on anisotropic grids; an empty and a full mask)."""

import numpy as np
from scipy import ndimage

from imagio.planning.ablation import heatsink
from imagio.planning.ablation.coverage import _edt2, _sdf, _signed
from imagio.segmentation.vessels import diameter_from_edt


def _masks():
    rng = np.random.default_rng(7)
    for n in range(4):
        shape = tuple(int(x) for x in rng.integers(18, 34, 3))
        sp = tuple(float(x) for x in rng.uniform(0.4, 2.2, 3))   # anisotropic, no two sides equal
        m = ndimage.gaussian_filter(rng.random(shape), 2.5) > 0.5
        if n == 2:
            m[:] = False
        if n == 3:
            m[:] = True
        yield m, sp, rng


def test_sdf_in_place_equals_the_plain_formula():
    for m, sp, _ in _masks():
        plain = _signed(_edt2(m, sp), m, float(np.mean(sp))).astype(np.float32)
        inside = _sdf(m, sp)
        outside = _sdf(m, sp, outside_positive=True)
        assert inside.dtype == outside.dtype == np.float32
        assert inside.view(np.uint32).tobytes() == plain.view(np.uint32).tobytes()
        assert outside.view(np.uint32).tobytes() == (-plain).view(np.uint32).tobytes()


def test_centrelines_equal_the_whole_volume_formula():
    seen = 0
    for m, sp, rng in _masks():
        lab = (ndimage.label(ndimage.gaussian_filter(rng.random(m.shape), 2.0) > 0.55)[0] % 5).astype(np.uint8)
        values = {1: "aorta", 3: "portal_vein"}
        to_ras = lambda kji: kji * 0.8 - 4.0   # noqa: E731
        for dmin in (0.0, 2.0):
            got = heatsink.centrelines(lab, values, sp, to_ras, dmin)
            # the plain formula: the diameter of every voxel, then the ridge
            vl = np.where(np.isin(lab, list(values)), lab, 0).astype(np.uint8)
            import edt

            d = edt.edt(vl, anisotropy=sp, black_border=False)
            diam = diameter_from_edt(d, sp)
            ridge = (vl > 0) & (d >= ndimage.maximum_filter(d, size=3)) & (diam >= dmin)
            assert np.array_equal(got.kji, np.argwhere(ridge))
            assert got.diameter_mm.tobytes() == diam[ridge].astype(float).tobytes()
            assert list(got.name) == [values[int(v)] for v in vl[ridge]]
            seen += len(got)
    assert seen > 20   # (42 centre voxels in these masks)
