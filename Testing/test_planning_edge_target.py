"""A target on the scan's first or last slice is planned (measured data), not refused as padding.

New-user trial 3: a liver point (59 HU) on the TotalSegmentator example's top axial slice was
refused as "outside the scanned field of view (padding)", though the CT has no padding; one
slice lower it planned. The skin model's data region leaves out the array's outer voxel layer
(a resampler's overhanging grid blends it with the fill value). Padding itself (a scanner's
value outside the reconstruction circle) must still be refused. The checks here read the
label map and the CT along plan.json's proposals themselves.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from imagio.errors import InputError
from imagio.planning import PlanningProblem, plan
from imagio.planning.synthetic import synthetic_torso

PAD = -3024


def _torso_cut_through_the_liver(spacing, direction, pad=False):
    """The synthetic torso cut so that its superior-most slice lies at S ~ 0 mm (through the
    liver); optionally the corners outside each axial slice's inscribed ellipse set to ``PAD``."""
    ct, lab = synthetic_torso(spacing, direction)
    s_axis = int(np.argmax(np.abs(ct.direction[2, ::-1])))
    idx = np.zeros((ct.shape[s_axis], 3))
    idx[:, s_axis] = np.arange(ct.shape[s_axis])
    s = ct.kji_to_world(idx)[:, 2]
    keep = np.flatnonzero(s <= 1.0)
    lo, hi = [0, 0, 0], list(ct.shape)
    lo[s_axis], hi[s_axis] = int(keep.min()), int(keep.max()) + 1
    ct, lab = ct.crop(lo, hi), lab.crop(lo, hi)
    if pad:
        a = ct.array.copy()
        g = np.indices(a.shape).astype(float)
        other = [ax for ax in range(3) if ax != s_axis]
        u = [(g[ax] / (a.shape[ax] - 1)) * 2 - 1 for ax in other]
        a[(u[0] ** 2 + u[1] ** 2) > 1.0] = PAD
        ct = ct.with_array(a)
    return ct, lab, s_axis


def _top_layer_point(ct, s_axis, r, a_):
    """RAS of the voxel centre nearest (r, a_) on the superior-most array layer."""
    idx = np.zeros((ct.shape[s_axis], 3))
    idx[:, s_axis] = np.arange(ct.shape[s_axis])
    top = int(np.argmax(ct.kji_to_world(idx)[:, 2]))
    k = np.rint(ct.world_to_kji(np.array([[r, a_, 0.0]]))[0]).astype(int)
    k[s_axis] = top
    return ct.kji_to_world(k[None].astype(float))[0], top


GRIDS = [(3.0, None), ((2.5, 3.0, 3.5), np.diag([1.0, -1.0, -1.0]))]   # straight; flipped A and S, anisotropic


@pytest.mark.parametrize("spacing,direction", GRIDS)
def test_liver_point_on_the_top_slice_is_planned_and_its_paths_stay_in_the_body(spacing, direction):
    ct, lab, s_axis = _torso_cut_through_the_liver(spacing, direction)
    target, top = _top_layer_point(ct, s_axis, 90.0, 0.0)
    inv = {n: v for v, n in lab.labels.items()}
    kt = np.rint(ct.world_to_kji(target[None])[0]).astype(int)
    assert lab.array[tuple(kt)] == inv["liver"] and kt[s_axis] == top   # the case: liver, outermost layer
    result = plan(PlanningProblem.build(ct, lab, target))              # main: InputError "padding"
    assert result.feasible
    assert any(w.startswith("target on the outermost voxel layer") and "superior" in w for w in result.warnings)
    forbidden = [inv[n] for n in ("aorta", "vertebrae_L1", "portal_vein")]
    for m in result.to_dict()["proposals"]:
        e, t = np.asarray(m["entry_ras"]), np.asarray(m["target_ras"])
        n = int(np.linalg.norm(t - e) / 0.25) + 2
        pts = e + np.linspace(0, 1, n)[:, None] * (t - e)
        kji = np.rint(ct.world_to_kji(pts)).astype(int)
        assert np.all((kji >= 0) & (kji < ct.shape))
        labs, hu = lab.array[tuple(kji.T)], ct.array[tuple(kji.T)]
        assert not np.isin(labs, forbidden).any()
        deep = np.linalg.norm(pts - e, axis=1) > 3.0
        assert np.all((labs[deep] > 0) & (hu[deep] > -400))             # in the body after the entry


def test_padding_on_the_top_slice_is_still_refused_and_tissue_beside_it_planned():
    ct, lab, s_axis = _torso_cut_through_the_liver(3.0, None, pad=True)
    corner, _ = _top_layer_point(ct, s_axis, -155.0, -110.0)
    assert ct.array[tuple(np.rint(ct.world_to_kji(corner[None])[0]).astype(int))] == PAD
    with pytest.raises(InputError, match="padding"):
        PlanningProblem.build(ct, lab, corner)
    target, _ = _top_layer_point(ct, s_axis, 90.0, 0.0)
    result = plan(PlanningProblem.build(ct, lab, target))
    assert result.feasible
    for m in result.proposals:     # no path point in the padding
        e, t = np.asarray(m.entry_ras), np.asarray(m.target_ras)
        pts = e + np.linspace(0, 1, 400)[:, None] * (t - e)
        assert not np.any(ct.array[tuple(np.rint(ct.world_to_kji(pts)).astype(int).T)] == PAD)


@pytest.mark.data
def test_totalsegmentator_liver_point_on_the_top_slice(shared_data, tmp_path):
    """The trial's case: example_ct_sm + example_seg, liver voxel (86, 47, 29) on the top slice."""
    from imagio import io

    d = shared_data / "totalsegmentator-example"
    import json

    ct = io.read_image(d / "example_ct_sm.nii.gz")
    lab = io.read_image(d / "example_seg.nii.gz")
    names = {int(k): v for k, v in json.loads((d / "labels_total_v2.json").read_text()).items()}
    lab = lab.with_array(lab.array, labels={k: v for k, v in names.items() if k in set(np.unique(lab.array))})
    target = np.array([80.04, 152.32, 181.30])
    kt = np.rint(ct.world_to_kji(target[None])[0]).astype(int)
    assert kt[0] == ct.shape[0] - 1 and lab.labels[int(lab.array[tuple(kt)])] == "liver"
    result = plan(PlanningProblem.build(ct, lab, target))
    assert result.feasible
    for m in result.proposals:     # the CT along each path: no bone, no air after the entry
        e, t = np.asarray(m.entry_ras), np.asarray(m.target_ras)
        n = int(np.linalg.norm(t - e) / 0.25) + 2
        pts = e + np.linspace(0, 1, n)[:, None] * (t - e)
        idx = tuple(np.rint(ct.world_to_kji(pts)).astype(int).T)
        hu, labs = ct.array[idx], lab.array[idx]
        deep = np.linalg.norm(pts - e, axis=1) > 3.0
        assert hu.max() < 700
        # air after the entry only at the lung's edge (a lung label within one voxel: the
        # segmentation's partial-volume rim at the costophrenic recess), never outside the body
        lung = np.isin(lab.array, [v for v, n in lab.labels.items() if n.startswith("lung")])
        near_lung = ndimage.binary_dilation(lung, np.ones((3, 3, 3), bool))[idx]
        assert np.all((hu[deep] > -400) | (labs[deep] > 0) | near_lung[deep])


@pytest.mark.parametrize("spacing,direction", GRIDS)
def test_a_named_tumour_cut_by_the_scan_is_said_up_front(spacing, direction):
    """New-user trial 38 (LOW): a liver tumour on the scan's top slice was said only at the end of
    an ablation's margin warning. The tumour here is cut through its middle by the top slice (the
    test counts its voxels there itself); the plan says so, naming the superior edge. The whole
    tumour (the uncut torso) gives no such warning."""
    ct, lab, s_axis = _torso_cut_through_the_liver(spacing, direction)
    inv = {n: v for v, n in lab.labels.items()}
    _, top = _top_layer_point(ct, s_axis, 90.0, 0.0)
    on_top = int((np.take(lab.array, top, axis=s_axis) == inv["liver_tumor"]).sum())
    assert on_top > 10                                                   # the case: cut through
    prob = PlanningProblem.build(ct, lab, "liver_tumor")
    cut = [w for w in prob.warnings if w.startswith("target liver_tumor is cut by the scan")]
    assert len(cut) == 1 and "superior edge" in cut[0] and f"({on_top} voxels)" in cut[0], prob.warnings
    whole = PlanningProblem.build(*synthetic_torso(spacing, direction), "liver_tumor")
    assert not any("cut by the scan" in w for w in whole.warnings)


def test_a_label_map_on_another_grid_is_said_resampled():
    """New-user trial 36 (L1): labels on an oblique/coarser grid than the CT were resampled to it
    silently (a margin of 1.8 mm against 3.5 mm on the CT's own grid, no word why). Another voxel
    size is said, with both grids; a crop of the CT's own grid (voxel centres the same) is not."""
    from imagio.io import InputWarning

    ct, lab = synthetic_torso(2.0)
    coarse = lab.resample_like(synthetic_torso(3.0, ribs=False)[1], order=0)
    with pytest.warns(InputWarning, match=r"another grid than the CT \(voxels 3.00 x 3.00 x 3.00 mm against "
                                          r"2.00 x 2.00 x 2.00 mm\)"):
        PlanningProblem.build(ct, coarse, "liver_tumor")
    crop = lab.crop((2, 3, 4), tuple(n - 2 for n in lab.shape))
    import warnings as _w

    with _w.catch_warnings(record=True) as said:
        _w.simplefilter("always", InputWarning)
        PlanningProblem.build(ct, crop, "liver_tumor")
    said = [str(w.message) for w in said if issubclass(w.category, InputWarning)]
    # the crop leaves the CT's outer slices unlabelled: said as such (trial 114), not as another grid
    assert len(said) == 1 and "covers only 88% of the CT" in said[0], said


def test_a_named_target_that_is_a_vessel_is_said():
    """New-user trial 39 (L2): `--target aorta` planned a needle into the aorta without a word (a
    point there is refused as a vessel). A named vessel target is planned as asked but said; the
    tumour is not."""
    ct, lab = synthetic_torso(3.0)
    prob = PlanningProblem.build(ct, lab, "aorta")
    said = [w for w in prob.warnings if w.startswith("the target aorta is a structure a needle otherwise never")]
    assert len(said) == 1, prob.warnings
    assert not any("otherwise never enters" in w for w in PlanningProblem.build(ct, lab, "liver_tumor").warnings)


def test_a_label_map_stored_the_other_way_is_not_said_resampled():
    """New-user trial 41 (LOW): the TotalSegmentator DICOM example and its segmentation (the same
    voxels, one axis stored the other way) were said to lie "on another grid (0.98x0.98x2.00
    against 0.98x0.98x2.00)". A map whose voxel centres are the CT's (flipped storage) is not."""
    import warnings as _w

    from imagio.io import InputWarning, labels_on_grid
    from imagio.volume import Volume

    ct, lab = synthetic_torso(3.0)
    m = lab.ijk_to_ras.copy()
    m[:3, 3] = m[:3, 3] + m[:3, 1] * (lab.shape[1] - 1)     # j stored the other way, same voxels
    m[:3, 1] = -m[:3, 1]
    flipped = Volume(np.flip(lab.array, 1).copy(), m, "flipped", dict(lab.labels))
    with _w.catch_warnings():
        _w.simplefilter("error", InputWarning)
        out = labels_on_grid(flipped, ct)
    assert np.array_equal(out.array, lab.array)
