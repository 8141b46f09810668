"""The one lumen calibre (`segmentation.calibre`, calibre115): the equivalent-circle diameter of the
lumen mask's section normal to its axis, read at the centre voxels (`vessels.centre_calibres`), and
the conservative decision within its uncertainty (one voxel) of a threshold.

New-user trial 113 V2b: a 5 mm liver vessel on a coarse grid read ~2.9 mm (the inscribed figure
2 x distance - a voxel, `vessels.diameter_from_edt`, reads round lumens 0.9-1.5 voxels short); the
planner filed it as liver_vessels_small and named no heat sink, without saying so. Digitised tubes
(voxel centres within the radius of an oblique axis at a random sub-voxel position) on isotropic
and anisotropic grids, synthetic and small."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from imagio.planning.ablation import heatsink
from imagio.planning.problem import Target, split_vessels_by_calibre
from imagio.segmentation.vessels import diameter_from_edt
from imagio.volume import Volume

GRIDS = [(0.5, 0.5, 0.5), (1.5, 1.5, 1.5), (3.0, 3.0, 3.0), (2.0, 0.7, 0.7), (3.0, 0.8, 0.8)]


def _tube(diam, sk, rng, through=False):
    """(mask, inside distance mm, interior centre voxels kji) of a digitised tube of ``diam`` mm on
    voxels ``sk`` (mm, [k, j, i]) along a random oblique axis; ``through``: it crosses the whole
    array (no end caps)."""
    import edt

    sk = np.asarray(sk, float)
    t = rng.normal(size=3)
    t /= np.linalg.norm(t)
    length = 4 * diam + 12 * sk.max()
    n = np.ceil((np.abs(t) * length + diam + 4 * sk.max()) / sk).astype(int) + 2
    c = (n - 1) * sk / 2 + rng.uniform(-0.5, 0.5, 3) * sk
    g = np.stack(np.meshgrid(*[np.arange(k) * s for k, s in zip(n, sk)], indexing="ij"), -1) - c
    along = g @ t
    m = np.linalg.norm(g - along[..., None] * t, axis=-1) <= diam / 2
    if not through:
        m &= np.abs(along) <= length / 2
    d = edt.edt(m, anisotropy=tuple(sk), black_border=False).astype(np.float32)
    ridge = m & (d >= ndimage.maximum_filter(d, size=3)) & (np.abs(along) <= length / 2 - diam - 2 * sk.max())
    return m, d, np.argwhere(ridge)


def test_section_calibre_is_within_half_a_voxel_on_average_and_a_voxel_at_any_point():
    """2-10 mm tubes on 0.5-3 mm grids (anisotropic included), oblique, at random sub-voxel positions:
    the section calibre's mean error is within half a voxel (coarsest side) of the truth on every
    grid, and every point within one voxel (`calibre.uncertainty_mm`); the inscribed figure reads
    short by more than half a voxel on average (the bias this removes)."""
    from imagio.segmentation.calibre import ridge_calibre, uncertainty_mm

    rng = np.random.default_rng(11)
    for sk in GRIDS:
        vox = uncertainty_mm(sk)
        assert vox == max(sk)
        err, old = [], []
        for diam in (2.0, 3.0, 5.0, 10.0):
            if diam < 1.5 * max(sk):
                continue   # thinner than the grid draws a tube
            for _ in range(2):
                m, d, kji = _tube(diam, sk, rng)
                assert len(kji)
                err.append(ridge_calibre(m, d, kji, sk) - diam)
                old.append(diameter_from_edt(d[tuple(kji.T)], sk) - diam)
        err, old = np.concatenate(err) / vox, np.concatenate(old) / vox
        assert abs(err.mean()) <= 0.5 and np.all(np.abs(err) <= 1.0), (sk, err.mean(), err.min(), err.max())
        assert old.mean() < -0.25, (sk, old.mean())


@pytest.mark.parametrize("diam, sk", [(5.0, (2.5, 2.5, 2.5)), (3.0, (1.5, 1.5, 1.5)), (4.0, (2.5, 0.8, 0.8)),
                                      (3.0, (0.5, 0.5, 0.5))])
def test_a_3mm_or_larger_vessel_is_a_heat_sink_or_said_to_be_one(diam, sk):
    """Every tube >= 3 mm near the zone is named a heat sink; when its calibre reads below 3 mm (by
    less than a voxel), the entry says so with the figure and the grid. On the code before
    calibre115 the 5 mm tube on the 2.5 mm grid had no centre voxel >= 3 mm: ``flag`` named no
    heat sink (the ``assert hs`` fails)."""
    rng = np.random.default_rng(int(10 * diam + 100 * sk[0]))
    m, _, kji = _tube(diam, sk, rng)
    cl = heatsink.centrelines(m.astype(np.uint8), {1: "portal_vein"}, sk, lambda k: k * 1.0)
    interior = np.zeros(m.shape, bool)   # the tube's length clear of its end caps
    interior[tuple(kji.T)] = True
    inner = ndimage.binary_dilation(interior, iterations=1)[tuple(cl.kji.T)]
    hs = heatsink.flag(heatsink.Centrelines(cl.kji[inner], cl.ras[inner], cl.diameter_mm[inner], cl.name[inner],
                                            *[getattr(cl, f) for f in ("voxel_mm", "min_diameter_mm")
                                              if hasattr(cl, f)]),
                       np.zeros(int(inner.sum())), "RFA")
    assert hs, "no heat sink named"
    h = hs[0]
    if h["diameter_mm"] < 3.0:
        words = heatsink.heat_sink_words(h)
        assert f"on a {max(sk):.2g} mm grid: within a voxel of 3 mm, treated as a heat sink" in words, words


def test_a_2mm_vessel_on_a_fine_grid_is_no_heat_sink():
    """The band is a voxel, not everything: a 2 mm tube on a 0.5 mm grid (a voxel is 0.5 mm) is not
    a heat sink."""
    m, _, _ = _tube(2.0, (0.5, 0.5, 0.5), np.random.default_rng(3))
    cl = heatsink.centrelines(m.astype(np.uint8), {1: "portal_vein"}, (0.5, 0.5, 0.5), lambda k: k * 1.0)
    assert len(cl) == 0


def _split(m, sk, name="liver_vessels"):
    lab = m.astype(np.uint8)
    vol = Volume(lab, np.diag([sk[2], sk[1], sk[0], 1.0]), "labels", {1: name})
    centre = vol.kji_to_world(((np.asarray(m.shape) - 1) / 2)[None])[0]
    return split_vessels_by_calibre(vol, Target(point_ras=centre, name="tumour", value=99), {})


@pytest.mark.parametrize("diam, sk", [(5.0, (2.5, 2.5, 2.5)), (3.0, (1.5, 1.5, 1.5)), (4.0, (2.5, 0.8, 0.8))])
def test_the_calibre_split_never_files_a_3mm_vessel_as_small_without_saying_so(diam, sk):
    """A tube >= 3 mm crossing the image (its ends at the image's faces) keeps the vessel's role along
    its length: the thin part holds no voxel farther than a tube's diameter + 2 voxels from the
    image's faces (where the section is cut: the inscribed figure), and where its calibre reads below
    3 mm the split says so (``undecided``, the figure and the grid). On the code before calibre115
    the 5 mm tube on the 2.5 mm grid was all ``liver_vessels_small`` (``small`` interior voxels:
    the first assertion fails)."""
    rng = np.random.default_rng(int(10 * diam + 100 * sk[0]) + 1)
    m, _, _ = _tube(diam, sk, rng, through=True)
    out, info = _split(m, sk)
    small = np.isin(out.array, [v for v, n in out.labels.items() if n.endswith("_small")])
    k = np.indices(m.shape)
    far = np.ones(m.shape, bool)
    for ax, s in enumerate(sk):
        edge = (diam + 2 * max(sk)) / s
        far &= (k[ax] >= edge) & (k[ax] <= m.shape[ax] - 1 - edge)
    assert not (small & far).any(), int((small & far).sum())
    und = info["liver_vessels"].get("undecided")
    if und:
        assert und["calibre_mm"] < 3.0 and f"on a {max(sk):.2g} mm grid: within a voxel of 3 mm" in und["warning"]


def test_a_thin_vessel_a_voxel_below_the_split_is_still_thin():
    """A 1.5 mm tube on a 0.5 mm grid (3 voxels across, 1.5 mm below 3 mm: three voxels) is thin,
    nothing undecided."""
    m, _, _ = _tube(1.5, (0.5, 0.5, 0.5), np.random.default_rng(5), through=True)
    out, info = _split(m, (0.5, 0.5, 0.5))
    assert info["liver_vessels"]["large_ml"] == 0 and info["liver_vessels"]["small_structure"]
    assert "undecided" not in info["liver_vessels"]


@pytest.mark.parametrize("diam, sk", [(6.0, (2.0, 0.98, 0.98)), (5.0, (1.5, 1.5, 1.5)), (4.5, (2.5, 0.8, 0.8))])
def test_every_voxel_of_a_tube_reads_its_calibre(diam, sk):
    """The per-voxel map (`vessels.lumen_diameter`, what eligibility and the diameter image read): the
    tube's wall voxels too carry its calibre, within a voxel, away from its cut ends (a guard for
    new-user trial 116 M6, eligibility reading 3.57 mm beside a vessel whose section is 6.1 mm: on
    round tubes the map holds, so that reading is a thinner branch or an irregular section, open).
    Independent check: the 5th percentile of the map over the tube's voxels away from the array's faces."""
    from imagio.segmentation.vessels import lumen_diameter

    rng = np.random.default_rng(int(10 * diam) + 7)
    m, _, _ = _tube(diam, sk, rng, through=True)
    dmap = lumen_diameter(m, sk)
    k = np.indices(m.shape)
    far = np.ones(m.shape, bool)
    for ax, s in enumerate(sk):
        edge = 0.5 * diam / s + 1
        far &= (k[ax] >= edge) & (k[ax] <= m.shape[ax] - 1 - edge)
    vals = dmap[m & far]
    assert vals.size > 50, vals.size
    assert np.percentile(vals, 5) >= diam - max(sk), (np.percentile(vals, [1, 5, 50]), diam)
