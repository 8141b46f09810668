"""The needle outside the skin beyond the image where the body is cut, on reformats.

New-user trial 16 (M1): on the chest CTA resampled to an oblique grid (padding outside the
source slab), five proposals entered 3-9 mm from the original scan's edge, their hubs in the
reformat's padding beyond the real data, and were not flagged "needle runs beyond the image"
as on the axial original: the finding looked at the array's faces only, and a reformat's
padding lies inside its array.

The check here is the test's own: each needle (entry -> hub, the planner's needle length) is
sampled every 0.25 mm and mapped back to the SOURCE scan's grid; it leaves the measured data
where it passes a face of the source array (continuous index beyond [-0.5, n - 0.5]) through
which the source's body is cut (tissue > -400 HU on that face's outer voxel layer). A needle
that goes further than ``tol`` beyond such a face must be flagged; one that stays further than
``tol`` inside each such face must not be (the axial rule: a needle leaving through a face where
nothing is cut is not flagged) (``tol``: the padding's blended rim of two
reformat voxels, `planning.skin.data_mask`, plus one voxel for sampling).
"""

from __future__ import annotations

import numpy as np
import pytest

from imagio.planning import PlanningProblem, plan

STEP = 0.25


def _cut_faces(src) -> list[tuple[int, int]]:
    """(array axis k/j/i, -1 first / +1 last) of each face of ``src`` (a CT) whose outer voxel
    layer holds tissue (> -400 HU) over >= 1 % of it: the body is cut there."""
    out = []
    for ax in range(3):
        for side, layer in ((-1, 0), (1, src.shape[ax] - 1)):
            if (np.take(src.array, layer, axis=ax) > -400).mean() >= 0.01:
                out.append((ax, side))
    return out


def _beyond_source_mm(src, faces, entry, target, needle_mm):
    """(mm the needle part outside the skin reaches beyond the cut ``faces`` of ``src``, at
    most; mm it reaches beyond any face of ``src``, at most; negative: stays inside by that
    much). Points mapped to the source's continuous indices."""
    e, t = np.asarray(entry, float), np.asarray(target, float)
    u = (e - t) / np.linalg.norm(e - t)
    rest = needle_mm - np.linalg.norm(e - t)
    pts = e + np.arange(0.0, max(rest, 0.0) + STEP / 2, STEP)[:, None] * u
    kji = src.world_to_kji(pts)
    sp = src.spacing_kji
    n = np.asarray(src.shape)
    out = {}
    for ax in range(3):
        out[(ax, 1)] = ((kji[:, ax] - (n[ax] - 0.5)) * sp[ax]).max()
        out[(ax, -1)] = ((-0.5 - kji[:, ax]) * sp[ax]).max()
    return max([out[f] for f in faces] or [-np.inf]), max(out.values())


def _check(result, src, faces, tol):
    """Every feasible path's flag against the test's own sampling; proposals with the flag
    ranked after those without. Returns (paths beyond a cut face, paths well inside)."""
    p, t, f = result.problem, result.table, result.findings
    beyond = inside = 0
    for r in np.flatnonzero(t.feasible):
        cut_mm, any_mm = _beyond_source_mm(src, faces, t.entry_ras[r], t.target_ras[r], p.needle.length_mm)
        flag = "unimaged_needle" in f.flagged(int(r))
        if cut_mm > tol:
            beyond += 1
            assert flag, (r, t.entry_ras[r], cut_mm)
        if cut_mm < -tol:
            inside += 1
            assert not flag, (r, t.entry_ras[r], any_mm, f.unimaged_mm[int(r)], f.unimaged_side[int(r)])
    names = result.proposal_finding_names()
    # a proposal with a finding (this one, or another: the throw past the tip) after every one without
    flags = [bool(x) for x in names]
    assert flags == sorted(flags), names
    for m, fl in zip(result.proposals, flags):
        cut_mm, _ = _beyond_source_mm(src, faces, m.entry_ras, m.target_ras, p.needle.length_mm)
        assert not (cut_mm > tol and not fl)
    return beyond, inside


def _reformat(ct, lab, fill, spacing=(2.5, 3.0, 3.5), degrees=20.0):
    """``ct``/``lab`` on a grid rotated ``degrees`` about an oblique axis, ``spacing`` (i, j, k)
    mm, two axes flipped (SimpleITK, linear / nearest, ``fill`` outside the source)."""
    from test_planning_safety import _flip, _rotation, _sitk_resample

    r = _rotation((1.0, 2.0, 3.0), degrees)
    return (_flip(_sitk_resample(ct, spacing, r, fill, False)),
            _flip(_sitk_resample(lab, spacing, r, 0, True)))


@pytest.mark.parametrize("grid", ["axial", "oblique_-1024", "oblique_-3024"])
def test_hub_in_a_reformats_padding_is_flagged_as_on_the_axial_original(grid):
    """The torso cut at A = 84 mm in front of its liver tumour (the source); its oblique,
    flipped, anisotropic reformats with padding -1024 or -3024: every feasible path whose
    needle passes the source's cut face is flagged, none that stays inside the source."""
    from test_planning_mediastinum import _cut_anteriorly

    src, lab, _ = _cut_anteriorly()
    faces = _cut_faces(src)
    assert [f[0] for f in faces] == [int(np.argmax(np.abs(src.direction[1, ::-1])))]   # the A face only
    if grid == "axial":
        ct, lb = src, lab
    else:
        ct, lb = _reformat(src, lab, float(grid.split("_")[1]))
    tol = 3.0 * float(max(ct.spacing)) + 0.5
    result = plan(PlanningProblem.build(ct, lb, "liver_tumor"), k=8)
    assert result.feasible
    assert any(tr.side == "anterior" for tr in result.problem.skin.truncations)
    beyond, inside = _check(result, src, faces, tol)
    assert beyond >= 20 and inside >= 20, (beyond, inside)     # the scene has both kinds


@pytest.mark.data
@pytest.mark.slow
def test_chest_cta_oblique_reformat_flags_the_hubs_beyond_the_source(shared_data):
    """Trial 16 M1's case: the chest CTA (its own rule-based labels) and its reformat rotated
    20 degrees about R and 20 about A (linear, padding -1024), target -58.8,117.7,670.7: on
    both, every feasible path whose hub passes a face where the source's body is cut is
    flagged, and none that stays inside the source; the best proposal is not one whose hub
    leaves the source."""
    from imagio import io
    from imagio.segmentation.rules import segment

    src = io.read_image(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz")
    faces = _cut_faces(src)
    target = np.array([-58.8, 117.7, 670.7])
    for name in ("axial", "oblique"):
        if name == "axial":
            ct = src
        else:
            ct = _cta_oblique(src)
        result = plan(PlanningProblem.build(ct, segment(ct), target))
        tol = 3.0 * float(max(ct.spacing)) + 0.5
        beyond, inside = _check(result, src, faces, tol)
        assert beyond > 0 and inside > 0, (name, beyond, inside)
        m = result.proposals[0]
        assert _beyond_source_mm(src, faces, m.entry_ras, m.target_ras, result.problem.needle.length_mm)[0] < 0, name


def _cta_oblique(src):
    """The trial's reformat: rotated 20 degrees about x then 20 about y (LPS), same spacing,
    a grid covering the whole source, linear, padding -1024 (SimpleITK)."""
    from imagio import io

    return io.volume_from_sitk(_rotated(io.volume_to_sitk(src), 20.0, -1024.0), "chest_cta_oblique")


def _circle_padded_torso():
    """The 3 mm torso with -2048 outside the inscribed circle of every axial slice (a scanner's
    padding outside its reconstruction circle, as LIDC-0001 has), labels."""
    from imagio.planning.synthetic import synthetic_torso

    ct, lab = synthetic_torso(3.0)
    a = ct.array.copy()
    _, j, i = np.indices(a.shape)
    nj, ni = a.shape[1:]
    a[np.hypot((j - (nj - 1) / 2) / (nj / 2), (i - (ni - 1) / 2) / (ni / 2)) > 1.0] = -2048
    return ct.with_array(a), lab


@pytest.mark.parametrize("fill", [-1024.0, -2048.0, -3024.0])
def test_interpolated_padding_of_a_reformat_is_read_and_unimaged_but_wrap_around_is_refused(tmp_path, fill):
    """Trial 16 (L1): LIDC-0001 (-2048 outside its scan circle) rotated 20 degrees, linear,
    padding -1024, was refused as "values that wrapped around": the source's padding blended
    with the reformat's fill is walled in by the fill, not by tissue. The torso with a scan
    circle, rotated 20 degrees about an oblique axis, flipped, 2.5 x 3.0 x 3.5 mm (main refuses
    30,538 voxels at -1024). Read: nothing below -1500 HU is left; every voxel whose centre
    lies outside the source box (the test maps it back) is outside the planner's data region;
    a wrap-around blob in the liver of the same reformat is still refused."""
    from imagio import io
    from imagio.errors import InputError
    from imagio.planning.skin import data_mask

    src, lab = _circle_padded_torso()
    ct, _ = _reformat(src, lab, fill)
    io.write_image(ct, tmp_path / "obl.nii.gz")
    vol = io.read_image(tmp_path / "obl.nii.gz")
    assert vol.array.min() >= -1500
    kji = np.stack(np.indices(vol.shape), -1).reshape(-1, 3).astype(float)
    s = src.world_to_kji(vol.kji_to_world(kji))
    outside = ~np.all((s > -0.5) & (s < np.asarray(src.shape) - 0.5), axis=1).reshape(vol.shape)
    data, value = data_mask(vol)
    assert value == fill if fill > -1500 else value is not None
    assert outside.sum() > 0.3 * outside.size and not (data & outside).any()
    # real wrap-around (metal beyond int16: -25536 HU) in the liver of the same reformat
    a = ct.array.copy()
    liver = ct.world_to_kji(np.array([[50.0, 5.0, -10.0]]))[0]
    blob = np.linalg.norm(np.indices(a.shape).reshape(3, -1).T - liver, axis=1).reshape(a.shape) <= 2.0
    a[blob] = -25536
    io.write_image(ct.with_array(a), tmp_path / "wrapped.nii.gz")
    with pytest.raises(InputError, match="walled in by measured tissue"):
        io.read_image(tmp_path / "wrapped.nii.gz")


@pytest.mark.data
@pytest.mark.parametrize("degrees", [15.0, 20.0, 25.0])
def test_lidc_oblique_reformat_with_interpolated_padding_is_read(tmp_path, shared_data, degrees):
    """Trial 16 L1's case: LIDC-0001 rotated about R and A (linear, padding -1024) is read, the
    region outside the source slab is outside the planner's data region, and a wrap-around
    blob inside the lung slab is refused."""
    import SimpleITK as sitk

    from imagio import io
    from imagio.errors import InputError
    from imagio.planning.skin import data_mask

    path = shared_data / "lidc-slabs" / "LIDC-IDRI-0001_slab.nii.gz"
    src = io.read_image(path, pad_to_air=False)
    img = sitk.ReadImage(str(path))
    out = _rotated(img, degrees, -1024.0)
    sitk.WriteImage(out, str(tmp_path / "obl.nii.gz"))
    vol = io.read_image(tmp_path / "obl.nii.gz")
    kji = np.stack(np.indices(vol.shape), -1).reshape(-1, 3).astype(float)
    s = src.world_to_kji(vol.kji_to_world(kji))
    outside = ~np.all((s > -0.5) & (s < np.asarray(src.shape) - 0.5), axis=1).reshape(vol.shape)
    data, _ = data_mask(vol)
    assert outside.any() and not (data & outside).any()
    a = sitk.GetArrayFromImage(out)
    c = np.asarray(a.shape) // 2
    a[c[0] - 1:c[0] + 2, c[1] - 2:c[1] + 3, c[2] - 2:c[2] + 3] = -25536
    bad = sitk.GetImageFromArray(a)
    bad.CopyInformation(out)
    sitk.WriteImage(bad, str(tmp_path / "wrapped.nii.gz"))
    with pytest.raises(InputError, match="walled in by measured tissue"):
        io.read_image(tmp_path / "wrapped.nii.gz")


def _rotated(img, degrees, fill):
    """``img`` (SimpleITK) rotated ``degrees`` about x then y (LPS), same spacing, on a grid
    covering it, linear, ``fill`` outside."""
    import SimpleITK as sitk

    a = np.radians(degrees)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    d = rx @ ry
    sz = img.GetSize()
    corners = np.array([img.TransformContinuousIndexToPhysicalPoint([c0 * (sz[0] - 1), c1 * (sz[1] - 1),
                                                                     c2 * (sz[2] - 1)])
                        for c0 in (0, 1) for c1 in (0, 1) for c2 in (0, 1)])
    loc = corners @ d
    lo, hi = loc.min(0), loc.max(0)
    sp = np.asarray(img.GetSpacing())
    ref = sitk.Image([int(x) for x in np.ceil((hi - lo) / sp).astype(int) + 1], img.GetPixelID())
    ref.SetSpacing(sp.tolist())
    ref.SetDirection(d.ravel().tolist())
    ref.SetOrigin((d @ lo).tolist())
    return sitk.Resample(img, ref, sitk.Transform(), sitk.sitkLinear, float(fill), img.GetPixelID())
