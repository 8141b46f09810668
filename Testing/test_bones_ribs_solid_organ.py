"""Ribs of the chest CT angiography on a 3 mm and a 1.5 x 1.5 x 5 mm grid (issue 14, new-user
trial 53 H1): the enhancing spleen (42 mL at 180-270 HU, a solid organ under the diaphragm)
passed the bone threshold voxel by voxel as a sponge in which no ball of the rib's maximum
radius fits, and was labelled ``ribs`` without a warning (ribs 271.5 mL at 3 mm against
225.5 mL at 1.5 mm).

The CTA (1.5 mm isotropic) is resampled linearly to the coarser grid in the same world, as the
trial did with SimpleITK (``sitk.Resample``: origin and direction kept, size = extent / spacing
rounded); also on `Volume.resampled`'s grid (outer corners aligned), where main left 21 mL of
the spleen as ribs. Own checks, independent of the rib rule:
- the rib volume holds within 10 % of the 1.5 mm run's (same patient);
- the thick enhancing soft tissue of the 1.5 mm run: voxels that the 1.5 mm run leaves
  unlabelled (``body``) at 150-350 HU (enhancing parenchyma on a CTA) that hold a ball of
  radius 7 mm (a solid organ; no rib holds one) — the spleen and liver — resampled nearest onto
  the coarse grid, holds no rib piece of more than 1 mL;
- every rib piece of at least 5 mL reads, by its median, no lower than the 1.5 mm run's rib
  pieces do less 20 % of their contrast above soft tissue (partial volume lowers a thin rib's
  contrast on a coarser grid; the spleen's median was 206 HU against 278-306 HU for the
  1.5 mm run's rib pieces)."""

import numpy as np
import pytest
from scipy import ndimage

from imagio import io
from imagio.segmentation import rules
from imagio.segmentation.common import open_mm
from imagio.volume import Volume, make_ijk_to_ras

pytestmark = [pytest.mark.data, pytest.mark.slow]

SOFT_TISSUE_HU = 50.0  # muscle/organ parenchyma without contrast (about 40-60 HU)


def _ribs(ct: Volume):
    m, meta = rules.segment_masks(ct, ["body", "lungs", "bones"])
    bone = m["vertebrae"] | m["ribs"] | m["bone"]
    return m["ribs"], bone, meta["warnings"]


def _piece_medians(ribs: np.ndarray, a: np.ndarray, voxel_ml: float, min_ml: float):
    lab, n = ndimage.label(ribs, np.ones((3, 3, 3)))
    if n == 0:
        return np.array([]), np.array([])
    idx = np.arange(1, n + 1)
    ml = ndimage.sum(ribs, lab, idx) * voxel_ml
    med = np.array(ndimage.labeled_comprehension(a, lab, idx, np.median, float, np.nan))
    return med[ml >= min_ml], ml[ml >= min_ml]


@pytest.fixture(scope="module")
def cta_native(request):
    from conftest import SHARED_DATA
    path = SHARED_DATA / "totalsegmentator-chest-cta" / "chest_cta.nii.gz"
    if not path.exists():
        pytest.skip("chest CTA not present")
    ct = io.read_image(path)
    ribs, bone, _ = _ribs(ct)
    a = np.asarray(ct.array, np.float32)
    # enhancing parenchyma, read over the noise (Gaussian of 1.5 mm), that holds a 7 mm ball
    sm = ndimage.gaussian_filter(a, 1.0)
    solid = open_mm((~bone) & (sm >= 150) & (sm <= 350), 7.0, ct.spacing_kji)
    med, _ = _piece_medians(ribs, a, ct.voxel_volume_ml, 5.0)
    return ct, float(ribs.sum()) * ct.voxel_volume_ml, solid, float(np.min(med))


def _same_origin(ct: Volume, spacing_ijk) -> Volume:
    sp = np.asarray(spacing_ijk, float)
    n = np.round(np.asarray(ct.shape[::-1]) * ct.spacing / sp).astype(int)
    ref = Volume(np.zeros(tuple(n[::-1]), np.uint8),
                 make_ijk_to_ras(sp, ct.ijk_to_ras[:3, 3], ct.direction),
                 scanner_coordinates=ct.scanner_coordinates)
    return ct.resample_like(ref, order=1)


@pytest.mark.parametrize("spacing_ijk,grid", [((3.0, 3.0, 3.0), "origin"), ((1.5, 1.5, 5.0), "origin"),
                                              ((3.0, 3.0, 3.0), "corner")],
                         ids=["3mm", "5mm_slices", "3mm_corner"])
def test_cta_ribs_hold_on_a_coarse_grid_and_skip_the_spleen(cta_native, spacing_ijk, grid):
    ct, native_ml, solid, native_low = cta_native
    coarse = _same_origin(ct, spacing_ijk) if grid == "origin" else ct.resampled(spacing_ijk, order=1)
    ribs, bone, warnings = _ribs(coarse)
    ml = coarse.voxel_volume_ml
    if grid == "origin":
        # (on the corner-aligned grid the ribs read 12 % low on main already, spleen aside:
        # a partial-volume phase effect outside this test's subject)
        assert float(ribs.sum()) * ml == pytest.approx(native_ml, rel=0.10), (native_ml, float(ribs.sum()) * ml)
    # the 1.5 mm run's thick enhancing soft tissue, nearest onto the coarse grid
    src = Volume(solid.astype(np.uint8), ct.ijk_to_ras, scanner_coordinates=ct.scanner_coordinates)
    organ = src.resample_like(coarse, order=0).array > 0
    inside = ribs & organ
    lab, n = ndimage.label(inside, np.ones((3, 3, 3)))
    biggest = float(np.max(np.bincount(lab.ravel())[1:])) * ml if n else 0.0
    assert biggest <= 1.0, (biggest, float(inside.sum()) * ml)
    # trial 56 M1: what is kept out of the ribs stays 'bone'; bone-density tissue of the organ region
    # labelled bone is said (not silently bone)
    organ_bone_ml = float((bone & ~ribs & organ).sum()) * ml
    said = [w for w in warnings if "kept out of the ribs" in w]
    assert (organ_bone_ml < 5.0) or said, (organ_bone_ml, warnings)
    if max(spacing_ijk) > min(spacing_ijk):
        # thick slices: the undiluted right subclavian/brachiocephalic vein (the native CTA's largest
        # component above 1,200 HU, 29.7 mL) is partly labelled bone there; that must be said, with
        # at least that volume, its largest piece centred on the vein (a curved tube 10-12 mm wide:
        # within 10 mm of it) (issue 14: 12.9 mL of it in 279.4 mL of 'bone', no warning)
        lab, n = ndimage.label(np.asarray(ct.array) > 1200, np.ones((3, 3, 3)))
        vein = lab == 1 + int(np.argmax(np.bincount(lab.ravel())[1:]))
        on = Volume(vein.astype(np.uint8), ct.ijk_to_ras, scanner_coordinates=ct.scanner_coordinates)
        as_bone = float(((on.resample_like(coarse, order=1).array > 0.5) & bone).sum()) * ml
        said = [w for w in warnings if "continuous, through tissue denser than the blood pool" in w]
        assert as_bone < 1.0 or (said and "superior vena cava" in said[0]), (as_bone, warnings)
        if said:
            assert float(said[0].split(" mL")[0].split()[-1]) >= 0.8 * as_bone, (as_bone, said[0])
            at = np.array([float(x) for x in said[0].split("at RAS [")[1].split("]")[0].split(",")])
            near = np.linalg.norm(ct.kji_to_world(np.argwhere(vein)) - at, axis=1).min()
            assert near <= 10.0, (near, said[0])
    a = np.asarray(coarse.array, np.float32)
    med, pieces = _piece_medians(ribs, a, ml, 5.0)
    floor = SOFT_TISSUE_HU + 0.8 * (native_low - SOFT_TISSUE_HU)
    assert np.all(med >= floor), (floor, list(zip(med.round(), pieces.round(1))))
