"""A wide, low-contrast liver vessel is a filled lumen of its true calibre (new-user trial 112 F7).

On the TotalSegmentator example's portal-venous CT a 5-8 mm liver vessel (peak 148 HU, liver 93
HU) came out of `imagio vessels` as hollow, ring-like fragments whose diameters were all < 3 mm:
the planner filed it as a thin branch (no heat sink beside an 18 mm tumour), and eligibility read
the same mask as 3.91 mm against 2.93 in the diameter image (two diameter definitions). Now the
vesselness only seeds the vessels, the lumen is read from the CT at half maximum
(`vessels.fill_lumen`), and one diameter (`vessels.lumen_diameter`) serves the diameter image, the
planner's calibre split and eligibility.

Phantom: liver block 93 HU with white noise SD 15 HU, a 6 mm tube at 148 HU and a 2 mm tube at 148
HU (profiles blurred by a 0.6 mm Gaussian, a CT's point spread), on an axial grid (tubes along k)
and on an anisotropic grid with the tubes oblique to every axis."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from imagio.planning.problem import large_lumen
from imagio.segmentation.vessels import lumen_diameter, vessels_and_blobs
from imagio.volume import Volume

LIVER, VESSEL, NOISE = 93.0, 148.0, 15.0
GRIDS = {"axial": ((1.5, 0.75, 0.75), (1.0, 0.0, 0.0)),
         "oblique": ((1.25, 0.7, 0.9), (0.8, 0.45, 0.4))}
EXTENT_MM = 40.0


def _distance_to_axis(pts, c, u):
    d = pts - c
    along = d @ u
    return np.linalg.norm(d - along[..., None] * u, axis=-1), along


def _phantom(grid):
    sk, u = GRIDS[grid]
    sk, u = np.asarray(sk), np.asarray(u) / np.linalg.norm(u)
    shape = tuple(int(EXTENT_MM / s) for s in sk)
    pts = np.stack(np.indices(shape), -1) * sk   # voxel centres, mm
    centre = 0.5 * (np.asarray(shape) - 1) * sk
    off = np.cross(u, [0.0, 0.0, 1.0] if abs(u[2]) < 0.9 else [1.0, 0.0, 0.0])
    off /= np.linalg.norm(off)
    c6, c2 = centre - 6.0 * off, centre + 8.0 * off
    r6, _ = _distance_to_axis(pts, c6, u)
    r2, _ = _distance_to_axis(pts, c2, u)
    # a blurred profile (0.6 mm Gaussian point spread) of each tube, sub-voxel exact enough
    prof = 0.5 * (1 - np.tanh((r6 - 3.0) / 0.6)) + 0.5 * (1 - np.tanh((r2 - 1.0) / 0.6))
    rng = np.random.default_rng(7)
    hu = LIVER + (VESSEL - LIVER) * np.clip(prof, 0, 1) + rng.normal(0, NOISE, shape)
    ct = Volume(hu.astype(np.float32), np.diag([*sk[::-1], 1.0]))
    organ = np.ones(shape, bool)
    return ct, organ, sk, r6, r2


@pytest.fixture(scope="module", params=list(GRIDS))
def case(request):
    ct, organ, sk, r6, r2 = _phantom(request.param)
    notes = []
    m, diam, _ = vessels_and_blobs(ct, organ, hu_checked=True, notes=notes)
    # 55 HU over 15 HU noise: contrast-to-noise 3.7 < 5 (Rose), said (old code: no notes at all)
    assert len(notes) == 1 and "lower bounds" in notes[0], notes
    # away from the block's faces, where the filters see the edge
    inner = np.zeros(m.shape, bool)
    b = [int(np.ceil(6.0 / s)) for s in sk]
    inner[b[0]:-b[0], b[1]:-b[1], b[2]:-b[2]] = True
    return request.param, sk, m, diam, r6, r2, inner


def test_wide_vessel_is_a_filled_lumen(case):
    grid, sk, m, diam, r6, r2, inner = case
    core = inner & (r6 <= 2.0)
    # old code: 0.84 of the core (scattered holes) on both grids
    assert m[core].mean() >= 0.97, (grid, m[core].mean())
    # no ring: filling the holes of each slice's cross-section adds almost nothing
    near = inner & (r6 <= 5.0)
    sec = m & near
    filled = sum(int(ndimage.binary_fill_holes(s).sum()) for s in sec)
    assert filled <= 1.03 * sec.sum(), (grid, filled, int(sec.sum()))


def test_diameters_and_the_calibre_split(case):
    grid, sk, m, diam, r6, r2, inner = case
    # the mask's calibre: its volume around the tube as a cylinder's, 6 mm +- 1 voxel
    sel = inner & (r6 <= 7.0)
    eq = 6.0 * np.sqrt((m & sel).sum() / (inner & (r6 <= 3.0)).sum())
    assert abs(eq - 6.0) <= float(sk.max()), (grid, eq)
    # the diameter image on the centreline: the one definition's documented bias (reads short by
    # 0.9-1.5 voxels on average, never by more than 2.5: test_vessel_diameter), well >= 3 mm
    d6 = float(np.median(diam[inner & (r6 <= 1.0)]))
    # old code: 2.60 mm (axial), 2.63 mm (oblique): a thin branch, no heat sink
    assert 6.0 - 2.5 * float(sk.min()) <= d6 <= 6.0 + float(sk.min()), (grid, d6)
    d2 = diam[inner & (r2 <= 1.5) & m]
    assert d2.size and float(d2.max()) < 3.0, (grid, float(d2.max()) if d2.size else None)
    # the planner's split (>= 3 mm keeps the vessel's role, heat sink) reads the same calibres
    big = large_lumen(m, sk, 3.0)
    assert big[inner & (r6 <= 2.0)].mean() >= 0.97 and not big[inner & (r2 <= 1.0)].any()


def test_eligibility_reads_the_diameter_image(case):
    """One diameter: eligibility's perivascular value is the diameter image's largest value
    within 5 mm of the tumour (old code: 3.35 against 2.60 mm)."""
    from imagio.stratification.ablation_eligibility import assess

    grid, sk, m, diam, r6, r2, inner = case
    if grid != "axial":
        pytest.skip("one grid is enough for the definition")
    shape = m.shape
    pts = np.stack(np.indices(shape), -1) * sk
    axis = np.argwhere(inner & (r6 <= 0.5)).mean(0) * sk
    tc = axis + np.array([0.0, 0.0, -8.0])     # an 8 mm tumour whose edge lies 1 mm from the wall
    tumour = np.linalg.norm(pts - tc, axis=-1) <= 4.0
    lab = np.ones(shape, np.uint8)
    lab[m] = 3
    lab[tumour] = 2
    labels = Volume(lab, np.diag([*sk[::-1], 1.0]), labels={1: "liver", 2: "liver_tumor_1", 3: "liver_vessels"})
    ct = labels.with_array(np.where(tumour, 40, np.where(m, VESSEL, LIVER)).astype(np.int16), labels={})
    res = assess(ct, labels, "liver_tumor_1")
    pv = next(r for r in res["reasons"] if r["criterion"] == "perivascular")
    ves = lab == 3
    near = ves & (ndimage.distance_transform_edt(~tumour, sampling=sk) <= 5.0)
    want = float(lumen_diameter(ves, sk)[near].max())
    assert pv["value"] == pytest.approx(want, abs=0.01), (pv, want)


def test_noise_of_a_ct_without_contrast_is_not_vessels():
    """New-user trial 113 V1: on the TotalSegmentator example without contrast (liver 46 HU, its
    vessels 38-43 HU, darker) 141 voxels in 110 specks of at most 9 voxels at 73-101 HU (noise
    peaks) were read as 3.0 mm vessels, and eligibility then called the perivascular criterion
    favourable. A liver block of noise alone (no vessel): no piece survives as a vessel, and the
    note says no vessel brighter than the organ was found (old code: specks kept, no such note)."""
    sk = np.array([1.5, 0.75, 0.75])
    shape = tuple(int(EXTENT_MM / s) for s in sk)
    hu = 46.0 + np.random.default_rng(3).normal(0, NOISE, shape)
    ct = Volume(hu.astype(np.float32), np.diag([*sk[::-1], 1.0]))
    notes = []
    m, diam, _ = vessels_and_blobs(ct, np.ones(shape, bool), hu_checked=True, notes=notes)
    assert not m.any(), int(m.sum())
    assert any("no contrast-enhanced vessel is seen" in n for n in notes), notes
