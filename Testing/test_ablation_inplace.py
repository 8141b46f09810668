"""Issue 20 (the demo under 1 GB): the analysis grid's tumour distance map (`coverage._sdf`) is
computed in place, giving the plain formula's values bit for bit, and the heat-sink centre lines
(`heatsink.centrelines`) are each vessel's centre voxels (random masks on anisotropic grids; an
empty and a full mask)."""

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


def test_centrelines_are_each_vessels_centre_voxels_with_their_section_calibre():
    """Since calibre115 the heat sink reads each vessel's calibre from its section's area at its own
    centre voxels (the local maxima of its distance, `vessels.centre_calibres`): the same voxels as
    the plain formula on each vessel's distance alone, never a calibre below the inscribed figure
    (`diameter_from_edt`), and with a threshold, every voxel at or within a voxel below it."""
    import edt

    seen = 0
    for m, sp, rng in _masks():
        lab = (ndimage.label(ndimage.gaussian_filter(rng.random(m.shape), 2.0) > 0.55)[0] % 5).astype(np.uint8)
        values = {1: "aorta", 3: "portal_vein"}
        to_ras = lambda kji: kji * 0.8 - 4.0   # noqa: E731
        vl = np.where(np.isin(lab, list(values)), lab, 0).astype(np.uint8)
        d = edt.edt(vl, anisotropy=sp, black_border=False)
        ridge = np.zeros(vl.shape, bool)
        for v in values:
            dv = np.where(vl == v, d, 0)
            ridge |= (vl == v) & (dv >= ndimage.maximum_filter(dv, size=3))
        whole = heatsink.centrelines(lab, values, sp, to_ras, 0.0)
        assert np.array_equal(whole.kji, np.argwhere(ridge)) and whole.voxel_mm == max(sp)
        assert np.all(whole.diameter_mm >= diameter_from_edt(d[ridge], sp) - 1e-6)
        assert list(whole.name) == [values[int(v)] for v in vl[ridge]]
        got = heatsink.centrelines(lab, values, sp, to_ras, 2.0)
        want = whole.diameter_mm >= 2.0 - max(sp)
        assert np.array_equal(got.kji, whole.kji[want]) and np.allclose(got.diameter_mm, whole.diameter_mm[want])
        seen += len(whole)
    assert seen > 20   # (42 centre voxels in these masks)
