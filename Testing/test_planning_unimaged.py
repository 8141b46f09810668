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
reformat voxels, `padding.data_mask`, plus one voxel for sampling).
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


def _beyond_source_mm(src, faces, entry, target, needle_mm, hub_mm=15.0, hub_radius=4.0):
    """(mm the needle part outside the skin, its hub (``hub_mm``; its rim, ``hub_radius``, in 32
    directions: plan25) included, reaches beyond the cut ``faces`` of ``src``, at most; mm it
    reaches beyond any face of ``src``, at most; negative: stays inside by that much). Points
    mapped to the source's continuous indices."""
    e, t = np.asarray(entry, float), np.asarray(target, float)
    u = (e - t) / np.linalg.norm(e - t)
    shaft = needle_mm - np.linalg.norm(e - t)
    rest = shaft + hub_mm
    s = np.arange(0.0, max(rest, 0.0) + STEP / 2, STEP)
    h = np.array([1.0, 0.0, 0.0]) if abs(u[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    v1 = np.cross(u, h)
    v1 /= np.linalg.norm(v1)
    v2 = np.cross(u, v1)
    a = np.linspace(0.0, 2 * np.pi, 32, endpoint=False)
    off = np.concatenate([np.zeros((1, 3)), hub_radius * (np.cos(a)[:, None] * v1 + np.sin(a)[:, None] * v2)])
    pts = e + s[:, None, None] * u + np.where((s >= shaft)[:, None, None], off[None], 0.0)
    pts = pts.reshape(-1, 3)
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
        cut_mm, any_mm = _beyond_source_mm(src, faces, t.entry_ras[r], t.target_ras[r], p.needle.length_mm,
                                           p.needle.hub_length_mm)
        flag = "unimaged_needle" in f.flagged(int(r))       # reported (and ranked) where the body is cut
        any_flag = flag or f.unimaged_note(int(r))          # or said: outside the scanned field
        if cut_mm > tol:   # reported (past the corner of the source box it may first leave
            beyond += 1      # through an uncut side: then reported as outside the scanned field)
            assert any_flag, (r, t.entry_ras[r], cut_mm)
        if cut_mm < -tol:
            inside += 1
            assert not flag, (r, t.entry_ras[r], any_mm, f.unimaged_mm[int(r)], f.unimaged_side[int(r)])
        if any_flag and not flag:   # outside the scanned field, the body not cut there (plan25):
            # past some face of the source (the hub's rim, radius 4 mm, included)
            assert any_mm > -(tol + 0.5 * p.needle.hub_diameter_mm), (r, any_mm)
    names = result.proposal_finding_names()
    # a proposal with a finding (this one, or another: the throw past the tip) after every one without
    flags = [bool(x) for x in names]
    assert flags == sorted(flags), names
    from imagio.planning.findings import finding_rank   # inside-the-patient findings after outside-only ones
    assert [finding_rank(x) for x in names] == sorted(finding_rank(x) for x in names), names
    # trial 88 M1: a deferred proposal that scores better than the first (clean) one is said, in one line
    sc = [m.score for m in result.proposals]
    better = [n for n, x in enumerate(names, 1) if finding_rank(x) == 1 and not flags[0] and sc[n - 1] < sc[0]]
    said = [w for w in result.warnings if "lower is better) than proposal 1" in w]
    assert len(said) == bool(better), (better, said)
    if better:
        assert said[0].startswith(f"proposal{'s' if len(better) > 1 else ''} {', '.join(map(str, better))} score"), said
    for m, fl in zip(result.proposals, flags):
        cut_mm, _ = _beyond_source_mm(src, faces, m.entry_ras, m.target_ras, p.needle.length_mm,
                                      p.needle.hub_length_mm)
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
        assert _beyond_source_mm(src, faces, m.entry_ras, m.target_ras, result.problem.needle.length_mm,
                                 result.problem.needle.hub_length_mm)[0] < 0, name


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
    from imagio.padding import data_mask

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
    from imagio.padding import data_mask

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


def _cut_right(grid: str, r_face: float = 100.0):
    """The 3 mm torso (axial) or its reformat (rotated 20 degrees about an oblique axis, two axes
    flipped, 2.5 x 3.0 x 3.5 mm, padding -1024), its array cropped along the axis nearest R so
    that the array face there cuts the body near R = ``r_face`` (the face lung1's hubs cross:
    trial 65 M2). Returns (ct, labels, the cropped array axis k/j/i, the face's continuous index
    on it)."""
    from imagio.planning.synthetic import synthetic_torso

    ct, lab = synthetic_torso(3.0)
    if grid != "axial":
        ct, lab = _reformat(ct, lab, -1024.0)
    ax = int(np.argmax(np.abs(ct.direction[0, ::-1])))                  # array axis k/j/i nearest R
    c = float(ct.world_to_kji(np.array([[r_face, 0.0, 0.0]]))[0, ax])
    lo, hi = [0, 0, 0], list(ct.shape)
    if ct.direction[0, 2 - ax] > 0:                                      # R grows with the index
        hi[ax] = int(np.floor(c)) + 1
        face = hi[ax] - 0.5
    else:
        lo[ax] = int(np.ceil(c))
        face = -0.5
    ct_c, lab_c = ct.crop(lo, hi), lab.crop(lo, hi)
    return ct_c, lab_c, ax, face


def _past_any_face_mm(ct, e, t, needle_mm, hub_mm, r, src=None, rim_mm=0.0):
    """mm of the needle part outside the skin and its hub (its rim, radius ``r``, sampled in 64
    directions) from the first point past any face of ``ct``'s array (continuous index beyond
    [-0.5, n - 0.5]) or, with ``src`` (the source of a reformat), past its faces less ``rim_mm``
    (the padding's blended rim), to the hub's end, every 0.05 mm; 0 when none."""
    u = (e - t) / np.linalg.norm(e - t)
    rest = needle_mm - np.linalg.norm(e - t)
    s = np.arange(0.0, rest + hub_mm + 1e-9, 0.05)
    a = np.linspace(0.0, 2 * np.pi, 64, endpoint=False)
    h = np.array([1.0, 0.0, 0.0]) if abs(u[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    v1 = np.cross(u, h)
    v1 /= np.linalg.norm(v1)
    v2 = np.cross(u, v1)
    off = r * (np.cos(a)[:, None] * v1 + np.sin(a)[:, None] * v2)             # (64, 3)
    pts = e + s[:, None, None] * u + np.where((s >= rest)[:, None, None], off[None], 0.0)
    k = ct.world_to_kji(pts.reshape(-1, 3)).reshape(len(s), 64, 3)
    out = np.any((k < -0.5) | (k > np.asarray(ct.shape) - 0.5), axis=(1, 2))
    if src is not None:
        q = src.world_to_kji(pts.reshape(-1, 3)).reshape(len(s), 64, 3)
        m = rim_mm / np.asarray(src.spacing_kji)
        out |= np.any((q < -0.5 + m) | (q > np.asarray(src.shape) - 0.5 - m), axis=(1, 2))
    return float(s[-1] - s[np.argmax(out)]) if out.any() else 0.0


def _paths_past_the_face(ct, ax, face, p, gaps, dirs):
    """Anterolateral paths towards the array face ``face`` (continuous index on array axis
    ``ax``) of ``ct`` (`_cut_right`), outward directions ``dirs`` (RAS), whose shafts end
    ``gaps`` mm (along the axis) before the face's plane, each leaving the skin >= 30 mm before
    it inside the array. Returns (entries, targets, path lengths, the test's own length of the
    needle outside the skin and its hub beyond the face's plane, its rim included (negative:
    short of it), that length along the axis only); arrays, RAS mm."""
    ndl, hub_mm = p.needle.length_mm, p.needle.hub_length_mm
    E, T, L, own, AX = [], [], [], [], []
    for g, d in zip(gaps, dirs):
        u = np.asarray(d) / np.linalg.norm(d)                                # outward, RAS
        # a point on the face's plane in front of the body (the first, going anteriorly, whose
        # axis leaves the skin >= 30 mm before the face, inside the array) and the target so far
        # behind it; the entry: where the axis leaves the body (the test's own samples, nearest voxel)
        s = np.arange(0.0, ndl + g, 0.1)
        for a in np.arange(90.0, 160.0, 5.0):
            q = ct.world_to_kji(np.array([[95.0, a, 10.0 * d[2]]]))[0]
            q[ax] = face
            t = ct.kji_to_world(q[None])[0] - (ndl + g) * u
            k = np.rint(ct.world_to_kji(t + s[:, None] * u)).astype(int)
            ok = np.all((k >= 0) & (k < np.asarray(ct.shape)), axis=1)
            body = np.zeros(len(s), bool)
            body[ok] = ct.array[tuple(k[ok].T)] > -500
            if ok.all() and body[0] and not body[-1] and s[np.flatnonzero(body)[-1]] < ndl + g - 30.0:
                break
        else:
            raise AssertionError((g, "no such path"))
        le = s[np.flatnonzero(body)[-1]] + 0.1
        e = t + le * u
        # the test's own length beyond the face: the axis's index along ``ax`` is linear in mm
        k0, k1 = ct.world_to_kji(np.stack([e, e + u]))[:, ax]
        cross = (face - k0) / (k1 - k0)                                      # mm past the entry
        # along the hub (from the shaft's end, ndl - le past the entry) its rim (radius r) reaches
        # the face first: the index across the axis rises by at most r |grad_perp| (trial 66 L3)
        g = ct.world_to_kji(np.stack([np.zeros(3), np.eye(3)[0], np.eye(3)[1], np.eye(3)[2]]))[:, ax]
        grad = g[1:] - g[0]                                                  # d index / d RAS mm
        perp = np.linalg.norm(grad - (grad @ u) * u)
        r = 0.5 * p.needle.hub_diameter_mm
        rim = max((face - k0 - np.sign(k1 - k0) * r * perp) / (k1 - k0), ndl - le)
        AX.append(ndl - le + hub_mm - cross)
        cross = min(cross, rim) if rim <= ndl - le + hub_mm else cross
        E.append(e), T.append(t), L.append(le), own.append(ndl - le + hub_mm - cross)
    return tuple(map(np.asarray, (E, T, L, own, AX)))


@pytest.mark.parametrize("grid", ["axial", "oblique"])
def test_hub_beyond_the_cut_face_is_unimaged_with_its_length(grid):
    """New-user trial 65 (M2): on lung1 two proposals' shafts ended inside the image and their
    hubs ran 12-13 mm past its right face, where the body is cut; only the shaft's unused length
    was checked, so nothing was said. The torso cut by the array's right face (axial; oblique,
    flipped, anisotropic): anterolateral paths leave the skin inside the image and their shafts
    end 3, 7 or 11 mm before the face along the axis: reported, side right, hub only, with the
    length beyond the face the test computes (the axis crosses the face's plane in index space:
    needle + hub - that distance; the hub's rim, radius 4 mm, reaches it earlier: plan25, trial 66
    L3) within a voxel, the same in plan.json's row and the live re-score's warning; paths whose
    hubs (rims included) end before it: not reported."""
    from types import SimpleNamespace

    from imagio.planning.evaluate import Evaluator
    from imagio.planning.findings import path_findings, unimaged_needle

    ct, lab, ax, face = _cut_right(grid)
    p = PlanningProblem.build(ct, lab, "liver_tumor")
    assert "right" in {tr.side for tr in p.skin.truncations}
    ndl, hub_mm = p.needle.length_mm, p.needle.hub_length_mm
    gaps = np.array([3.0, 7.0, 11.0, hub_mm + 4.0, hub_mm + 9.0])           # shaft end -> face, mm along the axis
    E, T, L, own, AX = _paths_past_the_face(ct, ax, face, p, gaps, [(1.0, 0.9, 0.2), (1.0, 0.8, -0.3), (1.0, 1.0, 0.1),
                                                                     (1.0, 0.9, 0.2), (1.0, 0.8, -0.3)])
    assert np.allclose(AX, hub_mm - gaps, atol=1e-6)                         # the scene is as built
    res = unimaged_needle(p, E, T, L)
    gone, sides = res[0], res[1]
    vox = float(min(ct.spacing))
    crossing = own > 0
    assert crossing.tolist() == [True] * 3 + [False] * 2, (own, res)
    # the test's own length within a voxel, on the reformat too (it used to allow two voxels
    # more plus the hub's radius: the padding's blended rim beyond the source box's corner was
    # counted as not imaged and as beyond the cut right side; old code: 11.0 mm for the third,
    # 6.4 mm beyond the face)
    assert np.all(gone[crossing] - own[crossing] >= -vox), (grid, gone, own)
    assert np.all(gone[crossing] - own[crossing] <= vox), (grid, gone, own)
    assert res[4][crossing].all()                                            # reported where the body is cut
    # the others not there (the hub ending 4 mm before the face, 0.3 mm with its rim, was said
    # to be beyond the cut side on the reformat: the rim again)
    assert not res[4][~crossing].any()
    # the others are reported only where their needle or hub (rim included) leaves the array
    # through another face, where the body is not cut (plan25: trial 67), the test's own sampling
    from imagio.planning.synthetic import synthetic_torso

    src = None if grid == "axial" else synthetic_torso(3.0)[0]
    r = 0.5 * p.needle.hub_diameter_mm
    near = [_past_any_face_mm(ct, E[i], T[i], ndl, hub_mm, r, src) for i in range(5)]
    far = [_past_any_face_mm(ct, E[i], T[i], ndl, hub_mm, r, src, 2.0 * float(max(ct.spacing)) + 0.5) for i in range(5)]
    for i in np.flatnonzero(~crossing & ~res[4]):
        assert (gone[i] > 0) >= (near[i] > 0.0) and (gone[i] > 0) <= (far[i] > 0.0), (i, gone[i], near[i], far[i])
        assert gone[i] == 0.0 or near[i] - vox - 0.5 <= gone[i] <= far[i] + vox + 0.5, (i, gone[i], near[i], far[i])
    assert [sides[i] for i in range(3)] == ["right"] * 3
    from imagio.planning.planner import _unimaged_row

    at, hub = res[2], res[3]
    assert hub[crossing].all() and np.all(at[crossing] > ndl - L[crossing])   # the shafts end inside
    # plan.json's row and the live re-score say the same
    f = path_findings(p, SimpleNamespace(entry_ras=E, target_ras=T, length_mm=L), np.arange(5), set(), True)
    rows = [_unimaged_row(f, r) for r in range(5)]
    # flagged (ranked) where the body is cut, said (a note) where it is not
    assert [("unimaged_needle" in f.flagged(r)) for r in range(5)] == ((gone > 0) & res[4]).tolist()
    assert [f.unimaged_note(r) for r in range(5)] == ((gone > 0) & ~res[4]).tolist()
    assert [r is None for r in rows] == (gone == 0).tolist()
    assert [r["body_cut"] for r in rows if r is not None] == [bool(c) for c, g in zip(res[4], gone) if g > 0]
    for r in np.flatnonzero(crossing):
        assert rows[r]["side"] == "right" and rows[r]["hub_only"] and abs(rows[r]["mm"] - gone[r]) <= 0.06
    ev = Evaluator(p)
    for r in (0, 3):
        said = [x for x in ev.evaluate(E[r], T[r]).details if "beyond the image" in x]
        assert len(said) == int(gone[r] > 0), (r, said)
        if said:
            assert f"{gone[r]:.0f} mm of its hub run beyond the image at its {sides[r]} side" in said[0]


def test_unimaged_hub_length_is_the_same_on_a_reformat_as_on_its_source():
    """New-user trials 109/110 (MED): the same entries on lung1 and on its oblique reformat
    (0.8 x 0.8 x 2.5 mm, tilted 10/8 degrees) measured 0.1 -> 2.1, 0.7 -> 2.4 and 3.3 -> 5.1 mm of
    hub beyond the image: the reformat's padding was read with its blended two-voxel rim, so the
    axial best path's twin got "5 mm of its hub beyond the image" and was ranked after a path
    with 70 mm of lung. The torso cut by its array's right face (the source) and its oblique,
    flipped, anisotropic 2.5 x 3.0 x 3.5 mm reformat (the cut face is padding inside its array):
    paths whose hubs' rims end 1.7 and 0.8 mm short of the face (in R) or whose hubs run 1-14 mm
    past it (the test's own length, rim included) measure the same on both grids within a
    reformat voxel, and within a voxel of the test's own length on the source; those 5 mm or more
    past it are flagged beyond the cut right side on both, those short of it on neither. Old
    code: 4.5 and 5.7 mm beyond the image for the two short of it on the reformat, and 1.7-6.8
    mm more than on the source for the others."""
    from imagio.planning.findings import unimaged_needle

    src, lab, ax, face = _cut_right("axial")
    obl, olab = _reformat(src, lab, -1024.0)
    ps, po = PlanningProblem.build(src, lab, "liver_tumor"), PlanningProblem.build(obl, olab, "liver_tumor")
    assert all("right" in {tr.side for tr in q.skin.truncations} for q in (ps, po))
    hub_mm = ps.needle.hub_length_mm
    past = np.array([-6.0, -4.5, -3.0, 0.0, 2.0, 6.0, 10.0])     # the hub's axis past the face's plane, mm
    dirs = [(1.0, 0.9, 0.2), (1.0, 0.8, -0.3), (1.0, 1.0, 0.1)] * 2 + [(1.0, 0.9, 0.2)]
    E, T, L, own, _ = _paths_past_the_face(src, ax, face, ps, hub_mm - past, dirs)
    a, o = unimaged_needle(ps, E, T, L), unimaged_needle(po, E, T, L)
    vox, ovox = float(max(src.spacing)), float(max(obl.spacing))
    assert (own < 0).sum() == 2 and own[-1] > 12.0, own                      # the scene spans the edge
    assert np.all(np.abs(a[0] - np.maximum(own, 0.0)) <= vox), (own, a[0])
    assert np.all(np.abs(o[0] - a[0]) <= ovox), (a[0], o[0])
    well = own >= 5.0
    assert well.sum() >= 2
    for r in (a, o):
        assert r[4][well].all() and all(r[1][i] == "right" for i in np.flatnonzero(well)), r
        assert not (r[0][own < 0] > 0).any(), (own, r[0])


def test_deferred_proposals_that_score_better_are_said():
    """New-user trial 88 M1: the chest CTA planned prone gave as proposal 1 a 146 mm path with
    84 mm of aerated lung (score 0.54) ahead of three 44-49 mm paths with 15-16 mm (0.21-0.23),
    ranked last only for their unimaged needle, with nothing saying that they score better. The
    line names exactly the deferred proposals scoring better than proposal 1 (scores as given),
    their lengths and aerated lung, and the shorter needle when the finding is the unimaged
    needle; nothing when proposal 1 itself has a finding or no deferred one scores better."""
    from types import SimpleNamespace as P

    from imagio.planning.planner import deferred_better_warning

    props = [P(score=0.535, length_mm=145.7, aerated_lung_mm=84.4), P(score=0.549, length_mm=145.8, aerated_lung_mm=79.2),
             P(score=0.206, length_mm=46.6, aerated_lung_mm=14.8), P(score=0.6, length_mm=44.2, aerated_lung_mm=16.3),
             P(score=0.226, length_mm=48.9, aerated_lung_mm=15.1)]
    flagged = [[], [], ["unimaged_needle"], ["unimaged_needle"], ["unimaged_needle", "couch_clearance"]]
    (w,) = deferred_better_warning(props, flagged)
    assert w.startswith("proposals 3, 5 score better (0.21, 0.23; lower is better) than proposal 1 (0.54)"), w
    assert "couch_clearance, unimaged_needle" in w and "proposal 1 is 146 mm long with 84 mm of aerated lung" in w, w
    # a finding inside the patient is no trade to offer (trial 89 M2: a mediastinal path was)
    (w,) = deferred_better_warning(props, flagged[:4] + [["unimaged_needle", "mediastinum"]])
    assert w.startswith("proposal 3 scores better") and "mediastinum" not in w, w
    assert "proposal 3 47 mm with 15 mm" in w and "proposal 4" not in w and "--needle-length" in w, w
    assert deferred_better_warning(props, [["mediastinum"]] + flagged[1:]) == []
    assert deferred_better_warning(props, [[], [], [], ["unimaged_needle"], []]) == []
    (w,) = deferred_better_warning(props[:3], [[], [], ["couch_clearance"]])
    assert w.startswith("proposal 3 scores better (0.21; lower is better)") and "--needle-length" not in w, w
    assert deferred_better_warning(props[:3], [[], [], ["mediastinum"]]) == []


def test_findings_inside_the_patient_rank_after_those_outside_it():
    """New-user trial 89 M2: on lung1's crops every path had an unimaged needle (a finding of the
    needle's part outside the skin), so the ranking by finding or none put the mediastinal paths
    (great vessels unseen on a CT without contrast) first by score, ahead of a chest-wall path.
    `finding_rank`: 0 none, 1 outside the patient only, 2 inside, 3 both; `propose` ranks by it
    before the score."""
    from imagio.planning.findings import finding_rank
    from imagio.planning.proposals import propose
    from imagio.planning.scoring import ScoreTable

    assert [finding_rank(x) for x in ([], ["unimaged_needle", "couch_clearance"], ["mediastinum"],
                                      ["beyond_tip", "outside_clearance"])] == [0, 1, 2, 3]
    n = 4
    t = ScoreTable.__new__(ScoreTable)
    t.violations = np.zeros(n, np.int32)
    t.score = np.array([0.1, 0.2, 0.3, 0.4])                     # best score: the mediastinal paths
    t.entry_ras = np.array([[100.0 * i, 0.0, 0.0] for i in range(n)])
    t.costs = np.zeros((n, 1))
    defer = np.array([3, 3, 1, 0], np.int8)                     # mediastinum + unimaged, unimaged, clear
    ranked, _ = propose(t, k=4, separation_mm=1.0, defer=defer)
    assert ranked == [3, 2, 0, 1], ranked
