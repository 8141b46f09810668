"""The table-side rule without a couch in the image (fresh-user trial 81, MED): on the chest CTA
at 5 mm slices (a cropped field of view, no couch found) the supine plan's best entry lay on the
upper back at the thoracic inlet, its smoothed 3D normal 62 degrees from posterior (just outside
the 60 degree rule: it tilts towards the head where the back rises to the neck) while the skin
there faces the couch in its slice. `table.on_couch_side_of_outline` now excludes such entries
when the couch is not found, and the plan says so.

The check here reads the body mask (`problem.skin.body`), not the planner's normals: per
feasible supine entry, the mask on a 1 mm grid in the entry's axial world plane, smoothed there
(2D, sigma 3 mm); no entry may face posterior within 45 degrees there (the rule's 60 less a 15
degree allowance between two smoothings) with the mask ending within the grid's largest voxel
side behind it (on the outline's couch side, to the grid's resolution)."""

import numpy as np
import pytest
from scipy import ndimage

from conftest import phantom_once, read_image_once, rotation, shared_case
from imagio.planning import Constraints, PlanningProblem, plan
from imagio.planning.table import faces_couch_in_slice, in_slice_angle_deg, locate_table_cached
from imagio.volume import Volume, make_ijk_to_ras

HALF = 20   # mm: half the side of the axial window read around an entry


def outline_side(body: Volume, entries: np.ndarray, direction) -> tuple[np.ndarray, np.ndarray]:
    """Per entry (n, 3) RAS mm, from the body mask Volume ``body`` read on a 1 mm grid in the
    entry's axial world plane: (degrees between ``direction`` (3,) RAS, horizontal, and the
    outward normal of the outline there, the 2D mask smoothed at sigma 3 mm, NaN where it has
    none; mm walked from the entry towards ``direction`` in the plane before the mask ends,
    inf when it does not within the window)."""
    g = np.arange(-HALF, HALF + 1, 1.0)
    gx, gy = np.meshgrid(g, g, indexing="ij")                  # [x, y] offsets, mm
    d = np.asarray(direction, float)[:2]
    ang, gap = np.full(len(entries), np.nan), np.full(len(entries), np.inf)
    walk = np.arange(0.0, HALF, 0.25)
    for n, e in enumerate(entries):
        pts = np.stack([e[0] + gx.ravel(), e[1] + gy.ravel(), np.full(gx.size, e[2])], 1)
        m = body.sample(pts, order=0, fill=0).reshape(gx.shape).astype(float)
        s = ndimage.gaussian_filter(m, 3.0, mode="nearest")
        gxv, gyv = np.gradient(s, 1.0)
        v = -np.array([gxv[HALF, HALF], gyv[HALF, HALF]])      # outward: down the mask
        if np.linalg.norm(v) > 1e-6:
            ang[n] = np.degrees(np.arccos(np.clip(v @ d / np.linalg.norm(v), -1.0, 1.0)))
        ray = np.stack([e[0] + walk * d[0], e[1] + walk * d[1], np.full(len(walk), e[2])], 1)
        out = np.flatnonzero(body.sample(ray, order=0, fill=0) == 0)
        if len(out):
            gap[n] = walk[out[0]]
    return ang, gap


def _check_supine(prob, result):
    c = prob.constraints
    assert c.patient_position == "supine"
    assert not locate_table_cached(prob, c.table_direction).located      # the fallback is what is tested
    t = result.table
    rows = np.flatnonzero(t.feasible)
    assert len(rows) > 0
    body = Volume(np.asarray(prob.skin.body).astype(np.uint8), prob.ct.ijk_to_ras)
    ang, gap = outline_side(body, t.entry_ras[rows], c.table_direction)
    # on the outline's couch side: facing it within 45 deg, the mask ending within the grid's
    # resolution (its largest voxel side, a thick slice's step) towards the couch
    bad = (ang < 45.0) & (gap <= float(max(prob.ct.spacing)))
    assert not bad.any(), [(np.round(t.entry_ras[i], 1).tolist(), round(float(a), 1), float(g))
                           for i, a, g in zip(rows[bad], ang[bad], gap[bad])][:5]
    w = [x for x in result.warnings if x.startswith("table not found")]
    assert len(w) == 1 and "posterior side of the body's outline" in w[0], result.warnings
    return rows


def test_chest_cta_5mm_supine_no_entry_on_the_dorsal_outline():
    """Trial 81's case: the shared chest CTA at 5 mm slices (1.5 mm in plane, as the trial's), read
    on a grid rotated 25 degrees about S with its i axis flipped and 3.0 x 2.5 mm in plane
    (anisotropic; the slices stay axial as the trial's), body and lungs by the project's rules,
    the trial's target. Every feasible supine entry keeps off the dorsal outline."""
    from imagio.segmentation.rules import segment

    ct = read_image_once(shared_case("totalsegmentator-chest-cta", "chest_cta.nii.gz"))
    lo, hi = np.array([-168.3, 26.2, 540.2]), np.array([179.7, 275.2, 825.2])
    d = rotation((0, 0, 1), 25.0) @ np.diag([-1.0, 1.0, 1.0])
    sp = np.array([3.0, 2.5, 5.0])
    n = np.ceil((np.abs(d.T) @ (hi - lo)) / sp).astype(int)
    ref = Volume(np.zeros(tuple(n[::-1]), np.int16), make_ijk_to_ras(sp, (lo + hi) / 2 - (d * sp) @ ((n - 1) / 2.0), d))
    ct5 = ct.resample_like(ref, order=1)
    lab = segment(ct5, ("body", "lungs"))
    prob = PlanningProblem.build(ct5, lab, np.array([62.7, 167.2, 770.2]),
                                 constraints=Constraints(patient_position="supine"))
    result = plan(prob)
    _check_supine(prob, result)
    # the rule's own reading of the old best entry's normal (trial 81): 62 deg in 3D, 6 deg in its slice
    old = np.array([[0.0529, -0.4706, 0.8808]])
    assert not faces_couch_in_slice(old, (0.0, 1.0, 0.0), 60.0)[0]       # prone: the front faces the couch
    assert faces_couch_in_slice(old, (0.0, -1.0, 0.0), 60.0)[0]
    assert not faces_couch_in_slice(old, (0.0, -1.0, 0.0), 0.0)[0]      # the rule off
    # the in-slice angle itself, against its independent value: atan2 of the normal's in-plane part
    want = np.degrees(np.arccos(-old[0, 1] / np.hypot(old[0, 0], old[0, 1])))
    assert abs(in_slice_angle_deg(old, (0.0, -1.0, 0.0))[0] - want) < 1e-9 and want < 7.0
    assert np.isnan(in_slice_angle_deg([[0.0, 0.0, 1.0]], (0.0, -1.0, 0.0))[0])   # faces nothing in the slice


def test_phantom_upper_back_supine_no_entry_on_the_dorsal_outline():
    """The 3 mm phantom with its couch taken out of the image (a scan without a table in view:
    every voxel outside the labelled patient set to air), its upper chest and shoulders read on an
    oblique grid (rotated 12 degrees about a skew axis, i flipped) at 2.4 x 2.8 x 5 mm, a target
    in the right upper lobe under the shoulder. Before the slice rule one feasible entry lay on
    the back (RAS 140, -64, 437: 35 degrees from posterior in its slice)."""
    ph = phantom_once(spacing=3.0)
    ct, lab = ph.ct, ph.labels
    ct = ct.with_array(np.where(lab.array > 0, ct.array, -1000).astype(ct.array.dtype))
    d = rotation((1, 2, 3), 12.0) @ np.diag([-1.0, 1.0, 1.0])
    sp = np.array([2.4, 2.8, 5.0])
    lo, hi = np.array([-262.0, -110.0, 300.0]), np.array([262.0, 108.0, 452.0])
    n = np.ceil((np.abs(d.T) @ (hi - lo)) / sp).astype(int)
    ref = Volume(np.zeros(tuple(n[::-1]), np.int16), make_ijk_to_ras(sp, (lo + hi) / 2 - (d * sp) @ ((n - 1) / 2.0), d))
    prob = PlanningProblem.build(ct.resample_like(ref, order=1), lab.resample_like(ref, order=0),
                                 np.array([80.0, -30.0, 440.0]), constraints=Constraints(patient_position="supine"))
    result = plan(prob)
    rows = _check_supine(prob, result)
    assert len(rows) > 100


def test_entries_within_the_normals_uncertainty_of_the_table_limit_are_warned():
    """New-user trial 83 #2: on the 3 mm phantom without a couch, proposals 4 and 5 lay 62 and 66
    degrees from posterior by IMAGIO's normal and 51-62 by independent ones (2-6 mm smoothing):
    admitted by the 60 degree rule with no word. The normal's uncertainty on the grid is
    arctan(h / (4 sigma)) (h the largest voxel side, sigma the 2 mm smoothing: 7.1 deg at 1 mm,
    20.6 at 3 mm); an admitted entry whose normal lies within it of the limit is warned, one
    farther from the couch side or already excluded is not."""
    from imagio.planning.distance_maps import NORMAL_SIGMA_MM
    from imagio.planning.synthetic import synthetic_torso
    from imagio.planning.table import angle_uncertainty_deg, normal_uncertainty_deg, table_band_warnings
    from imagio.volume import Volume, make_ijk_to_ras

    assert abs(normal_uncertainty_deg((1.0, 1.0, 1.0), 2.0) - np.degrees(np.arctan(1 / 8))) < 1e-9
    assert abs(normal_uncertainty_deg((0.8, 0.8, 3.0), 2.0) - normal_uncertainty_deg((3.0, 3.0, 3.0), 2.0)) < 1e-9
    # trial 86 L4: an angle between two axial directions is resolved by the pixels, not the 5 mm
    # slices (lung2's grid, stored LPS and turned 20 deg about S: the in-plane pixel side counts)
    rot = np.array([[np.cos(0.35), -np.sin(0.35), 0.0], [np.sin(0.35), np.cos(0.35), 0.0], [0.0, 0.0, 1.0]])
    g = Volume(np.zeros((2, 2, 2), np.int16), make_ijk_to_ras((0.63, 0.63, 5.0), (0, 0, 0), rot @ np.diag([-1.0, -1.0, 1.0])))
    post = np.array([0.0, -1.0, 0.0])
    n62 = np.array([np.sin(np.radians(62)), -np.cos(np.radians(62)), 0.0])
    assert abs(angle_uncertainty_deg(g, 2.0, n62, post) - np.degrees(np.arctan(0.63 / 8))) < 1e-6
    # a normal tilted 30 deg towards S: the slice thickness now moves the angle, up to the worst case
    n_s = np.cos(np.radians(30)) * n62 + np.array([0.0, 0.0, np.sin(np.radians(30))])
    assert np.degrees(np.arctan(0.63 / 8)) + 1.0 < angle_uncertainty_deg(g, 2.0, n_s, post) <= normal_uncertainty_deg((0.63, 0.63, 5.0), 2.0)
    ct, lab = synthetic_torso(3.0)
    prob = PlanningProblem.build(ct, lab, "liver_tumor", constraints=Constraints(patient_position="supine"))
    band = normal_uncertainty_deg(ct.spacing, NORMAL_SIGMA_MM)   # (isotropic: every in-plane angle's band)
    assert 20.0 < band < 21.0
    d = np.asarray(prob.constraints.table_direction, float)
    side = np.cross(d, [0.0, 0.0, 1.0])
    e = np.asarray(prob.target.point_ras, float)   # (the 3D angle does not depend on where)
    for deg, want in ((55.0, False), (62.0, True), (60.0 + band - 0.5, True), (60.0 + band + 0.5, False), (120.0, False)):
        n = np.cos(np.radians(deg)) * d + np.sin(np.radians(deg)) * side
        got = table_band_warnings(prob, 4, e, n)
        assert bool(got) == want, (deg, got)
        if want:
            assert got[0].startswith(f"proposal 4: its skin normal is {deg:.0f} deg from the couch side")
            assert f"+-{band:.0f} deg" in got[0] and "60 deg table-side limit" in got[0]
