"""Imperfect airway masks and inputs (the kinds of ../shared/cases/airway_leak_gap.py,
point_target_in_nodule.py, thick_slice_airways.py, built here from the phantom): a cut bronchus
reconnected with a warning naming its subtree, a leak excluded (no false "reached"), a crescent top
slice, thick slices and non-CT inputs refused with one line, a point target in a nodule accepted."""

import json
import re

import numpy as np
import pytest

from imagio import cli, io, phantom
from imagio.errors import InputError
from imagio.planning import bronchoscopy as B
from imagio.volume import Volume, make_ijk_to_ras
from test_bronchoscopy import _ball  # noqa: E402  (Testing/ is on sys.path under pytest)


@pytest.fixture(scope="module")
def ph():
    return phantom.generate(spacing=1.5, seed=0)


def _airways(ph):
    return ph.labels.mask("trachea", "airways")


def test_cut_bronchus_is_reconnected_with_a_warning_naming_its_subtree(ph):
    """A 6 mm ball cut out of the right upper lobe bronchus (as airway_leak_gap.py does): the
    upper lobe's subtree is kept, reconnected, and the warning names it; routes to the nodule at
    its end are as with the intact mask."""
    L = ph.labels
    rul = next(b for b in ph.airway_tree if b.name == "right_upper_lobe_bronchus")
    m = _airways(ph) & ~_ball(L, (rul.start_ras + rul.end_ras) / 2, 6.0)
    intact = B.extract_tree(L, _airways(ph))
    t = B.extract_tree(L, m)
    assert len(t.branches) >= 0.9 * len(intact.branches)
    w = [x for x in t.warnings if "reconnected" in x]
    assert len(w) == 1 and "right_upper_lobe_bronchus" in w[0], t.warnings
    tg = B.Target.from_mask(L, L.mask("lung_nodule_1"))
    a, b = B.plan_route(intact, tg, "ultrathin"), B.plan_route(t, tg, "ultrathin")
    assert b.reached == a.reached and abs(b.remaining_mm - a.remaining_mm) < 3.0
    assert "right_upper_lobe_bronchus" in b.branch_names


def test_a_route_short_of_a_left_out_piece_that_reaches_the_lesion_says_so(ph):
    """New-user trial 82 M1: a cut bronchus that is not reconnected leaves its subtree outside the
    tree; when that subtree leads to the lesion, the route stops short and said "no airway of the
    mask comes closer", false. The right upper lobe bronchus cut by a 20 mm gap (more than the
    15 mm a repair bridges): the verdict names the piece and its distance to the nodule, checked
    here from the masks (the closest piece voxel to the closest nodule voxel), less than the
    route's end; the intact tree's verdict says nothing of it. bronch.json's left_out_piece gives
    the piece's volume, closest point and distance (trial 83 #3)."""
    import cc3d
    import edt

    L = ph.labels
    rul = next(b for b in ph.airway_tree if b.name == "right_upper_lobe_bronchus")
    m = _airways(ph) & ~_ball(L, (rul.start_ras + rul.end_ras) / 2, 10.0)
    t = B.extract_tree(L, m)
    assert t.left_out and any("left out" in w for w in t.warnings), t.warnings
    nod = L.mask("lung_nodule_1")
    tg = B.Target.from_mask(L, nod)
    r = B.plan_route(t, tg, "ultrathin")
    assert not r.reached
    lab = cc3d.connected_components(m, connectivity=26)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    pieces = (lab > 0) & (lab != np.argmax(sizes))
    d_nod = edt.edt(~nod, anisotropy=tuple(L.spacing_kji), black_border=False)
    own = float(d_nod[pieces].min())          # voxel centre to voxel centre, mm
    assert own < r.remaining_mm
    said = re.search(r"left out of the tree \(([\d.]+) mL, its gap at RAS [^)]*\) comes within ([\d.]+) mm of "
                     r"the lesion at RAS \[([-\d., ]+)\]", r.verdict)
    assert said, r.verdict
    assert abs(float(said.group(2)) - own) <= 0.05 + 1e-9, (said.group(2), own)
    # the point named is a voxel of the piece at that distance from the nodule (trial 83 L3)
    at = np.array([float(v) for v in said.group(3).split(",")])
    kji = tuple(np.rint(L.world_to_kji(at[None])[0]).astype(int))
    assert pieces[kji] and abs(d_nod[kji] - own) <= 0.1, (at, d_nod[kji], own)
    assert "no airway of the mask comes closer" not in r.verdict
    # bronch.json's structured field says the same (trial 83 #3): volume from the piece's voxels
    got = r.to_dict()["left_out_piece"]
    assert got is not None and got["closest_point_ras"] == at.tolist() and got["distance_mm"] == float(said.group(2))
    assert abs(got["volume_ml"] - pieces.sum() * L.voxel_volume_ml) <= 0.01 * got["volume_ml"], (got, pieces.sum())
    intact = B.plan_route(B.extract_tree(L, _airways(ph)), tg, "ultrathin")
    assert "left out" not in intact.verdict and intact.to_dict()["left_out_piece"] is None


def test_a_piece_far_from_the_tree_is_reported_not_joined(ph):
    L = ph.labels
    m = _airways(ph) & ~_ball(L, (-150.0, 0, 200), 1.0)
    m |= _ball(L, (-150.0, 0, 200), 4.0)   # an air pocket far from every airway
    t = B.extract_tree(L, m)
    assert any("left out" in w and "mm from the tree" in w for w in t.warnings), t.warnings


def _leak_tongue(ph):
    """(mask, (start, end) RAS mm): a 5 mm-radius tongue of 'airway' from the end of the lobar
    bronchus of lung_nodule_3's lobe 85 % of the way to the nodule's centre, the nodule left out
    (as airway_leak_gap.py's leak)."""
    L = ph.labels
    n3 = ph.lesion("lung_nodule_3")
    lobar = {"lung_upper_lobe_left": "left_upper_lobe_bronchus", "lung_lower_lobe_left": "left_lower_lobe_bronchus",
             "lung_upper_lobe_right": "right_upper_lobe_bronchus", "lung_middle_lobe_right": "right_middle_lobe_bronchus",
             "lung_lower_lobe_right": "right_lower_lobe_bronchus"}[n3.organ]  # the nodule's own lobe
    start = next(b for b in ph.airway_tree if b.name == lobar).end_ras
    blob = np.zeros(L.shape, bool)
    for s in np.linspace(0.0, 0.85, 12):
        blob |= _ball(L, start + s * (n3.center_ras - start), 5.0)
    return blob & ~L.mask("lung_nodule_3"), (np.asarray(start, float), np.asarray(n3.center_ras, float))


def test_leak_into_the_parenchyma_is_excluded_no_false_reached(ph):
    """A 5 mm-radius tongue of 'airway' from the lobar bronchus of its lobe into lung_nodule_3
    (as airway_leak_gap.py): with the CT the tongue's lumen reads as parenchyma, it is excluded
    with a warning and the nodule is neither reached nor bronchus-sign positive."""
    L = ph.labels
    blob, _ = _leak_tongue(ph)
    m = _airways(ph) | blob
    tg = B.Target.from_mask(L, L.mask("lung_nodule_3"))
    leaky = B.extract_tree(L, m)  # without the CT the leak looks like an airway into the nodule
    assert B.plan_route(leaky, tg, "ultrathin").bronchus_sign
    t = B.extract_tree(L, m, ct=ph.ct)
    assert any("possible leak" in w for w in t.warnings), t.warnings
    r = B.plan_route(t, tg, "ultrathin")
    assert not r.reached and not r.bronchus_sign
    assert not t.excluded[r.point_ids].any()
    # no leak is reported on the intact mask
    assert not any("leak" in w for w in B.extract_tree(L, _airways(ph), ct=ph.ct).warnings)


def test_a_leak_cut_by_a_gap_is_reported_as_a_leak_not_as_reconnected(ph):
    """The leak of ``test_leak_into_the_parenchyma...`` with a 4 mm slab cut across it 10 mm
    from the bronchus (airway_leak_gap.py's tongue of separate balls does this): the piece beyond
    the cut faces the tree and is bridged, then its lumen reads as parenchyma and it is excluded.
    It was reported both "reconnected" and "excluded as a leak"; now one warning names it, as
    part of the leak, not reconnected, at the cut (its place checked against the cut voxels), and
    the route is the intact mask's."""
    L = ph.labels
    blob, (start, end) = _leak_tongue(ph)
    u = (end - start) / np.linalg.norm(end - start)
    air = _airways(ph)
    along = (L.kji_to_world(np.argwhere(blob)) - start) @ u
    cut = np.zeros(L.shape, bool)
    cut[tuple(np.argwhere(blob)[(along > 10.0) & (along < 14.0)].T)] = True
    cut &= ~air
    m = (air | blob) & ~cut
    t = B.extract_tree(L, m, ct=ph.ct)
    assert not any("reconnected" in w and "not reconnected" not in w for w in t.warnings), t.warnings
    leak = [w for w in t.warnings if "possible leak" in w]
    assert len(leak) == 1 and "not reconnected" in leak[0], t.warnings
    at = np.array(json.loads(leak[0].split(" gap at RAS ")[1].split("]")[0] + "]"))
    assert np.linalg.norm(at - L.kji_to_world(np.argwhere(cut)).mean(axis=0)) < 5.0, (at, leak[0])
    tg = B.Target.from_mask(L, L.mask("lung_nodule_3"))
    r, ref = B.plan_route(t, tg, "ultrathin"), B.plan_route(B.extract_tree(L, air, ct=ph.ct), tg, "ultrathin")
    assert not r.reached and not r.bronchus_sign and not t.excluded[r.point_ids].any()
    # within a voxel; where both stops are undecided (the lumen within a voxel of what the scope
    # needs along a tapering branch: the calibre's 5-voxel windows place the crossing), two
    assert r.branch_names == ref.branch_names
    tol = 1.5 if (r.stop_resolved or ref.stop_resolved) else 3.0
    assert abs(r.remaining_mm - ref.remaining_mm) < tol, (r.remaining_mm, ref.remaining_mm)


def test_crescent_top_slice_roots_the_tree_on_the_tracheal_axis():
    """A trachea whose top 3 slices are half cut (a crescent): the root is on its axis."""
    aff = make_ijk_to_ras((0.8, 0.8, 1.0))
    shape = (110, 60, 90)
    aff[:3, 3] = [-36.0, -24.0, 0.0]
    vol = Volume(np.zeros(shape, np.uint8), aff)
    w = vol.kji_to_world(np.indices(shape).reshape(3, -1).T)

    def tube(a, b, r):
        a, b = np.asarray(a, float), np.asarray(b, float)
        t = np.clip(((w - a) @ (b - a)) / ((b - a) @ (b - a)), 0, 1)
        return np.linalg.norm(w - (a + t[:, None] * (b - a)), axis=1) <= r

    m = tube((0, 0, 120), (0, 0, 60), 7.0) | tube((0, 0, 60), (25, 0, 20), 5.0) | tube((0, 0, 60), (-25, 0, 22), 5.0)
    m = m.reshape(shape)
    top = np.flatnonzero(m.any(axis=(1, 2))).max()
    xs = vol.kji_to_world(np.indices(shape).reshape(3, -1).T)[:, 0].reshape(shape)
    m[top - 2:top + 1] &= xs[top - 2:top + 1] > 2.0   # crescent: the left part of the top slices gone
    t = B.extract_tree(vol, m)
    assert np.linalg.norm(t.points[t.root][:2]) < 1.5, t.points[t.root]
    assert any("crescent" in x for x in t.warnings)


def test_thick_slices_are_refused_with_one_line():
    aff = make_ijk_to_ras((0.7, 0.7, 5.0))
    m = np.zeros((20, 40, 40), np.uint8)
    m[:, 15:25, 15:25] = 1
    with pytest.raises(InputError, match="cannot be trusted at this slice thickness"):
        B.extract_tree(Volume(m, aff))


def test_cli_refuses_thick_slices_and_non_ct(tmp_path, shared_data, capsys):
    """The real 5 mm-slice CT of thick_slice_airways.py (also with --scope 1.0) and a text file
    given as the CT: exit 2 and one line, no traceback."""
    img = shared_data / "pyradiomics-lung" / "lung1_image.nrrd"
    lab = shared_data / "pyradiomics-lung" / "lung1_label.nrrd"
    if not img.exists():
        pytest.skip("pyradiomics lung1 not available")
    for scope in ("thin", "1.0"):
        rc = cli.main(["bronch", str(img), "--airways", str(lab), "--target", "0,0,0", "--scope", scope,
                       "--out", str(tmp_path / "o")])
        assert rc == 2
        err = capsys.readouterr().err
        assert "slice thickness" in err and "Traceback" not in err
    txt = tmp_path / "ct.nii.gz"
    txt.write_text("not an image")
    assert cli.main(["bronch", str(txt), "--airways", str(lab), "--target", "0,0,0", "--out", str(tmp_path / "o")]) == 2
    assert "not a readable image" in capsys.readouterr().err
    # an image that is not a CT in HU (a label map given as the CT)
    assert cli.main(["bronch", str(lab), "--airways", str(lab), "--target", "0,0,0", "--out", str(tmp_path / "o")]) == 2
    assert "does not look like a CT" in capsys.readouterr().err


def test_cli_point_target_in_a_nodule_is_accepted(tmp_path, ph):
    """``--target=R,A,S`` at a nodule's centre (point_target_in_nodule.py): accepted (the nodule
    lies in the filled lung envelope), routed into the nodule's lobe."""
    io.write_image(ph.ct, tmp_path / "ct.nii.gz")
    io.write_labels(ph.labels, tmp_path / "labels.seg.nrrd")
    for les in ph.lesions:
        if les.kind != "lung_nodule":
            continue
        c = ",".join(f"{v:g}" for v in les.center_ras)
        out = tmp_path / les.name
        rc = cli.main(["bronch", str(tmp_path / "ct.nii.gz"), "--airways", str(tmp_path / "labels.seg.nrrd"),
                       f"--target={c}", "--scope", "thin", "--out", str(out), "--no-pictures"])
        assert rc == 0, les.name
        doc = json.loads((out / "bronch.json").read_text())
        assert doc["route"]["target_lobe"] == les.organ, (les.name, doc["route"]["target_lobe"], les.organ)
        assert doc["route"]["end_lobe"] == les.organ
        # the point lies in the nodule's segment: planned to its outline, so the bronchus sign is
        # judged (lung_nodule_1 is built with one) and the distance runs to its surface
        assert doc["inputs"]["target_segment"] == les.name
        assert doc["route"]["bronchus_sign"] == les.touches_airway, les.name
        if not doc["route"]["reached"]:
            assert doc["route"]["verdict"].startswith(f"short by {doc['route']['remaining_mm']:.1f} mm")
            assert any(w.startswith("not reached") for w in doc["warnings"])
        assert {s["scope"] for s in doc["scopes"]} == set(B.load_scopes()["scopes"])


def test_cli_segments_the_lungs_from_the_ct_when_none_are_given(tmp_path, ph, capsys):
    """A bare 0/255 airway mask (as airway_leak_gap.py's airways_255) and no --structures: the
    lungs and vessels come from the CT (padded with -32768 at its edge), so the in-lung check and
    the tunnel search run."""
    L = ph.labels
    k0 = int(np.floor(L.world_to_kji(np.array([[0.0, 0.0, 150.0]]))[0, 0]))  # the chest only: quicker
    ct = ph.ct.crop((k0, 0, 0), ph.ct.shape)
    air = L.crop((k0, 0, 0), L.shape)
    mask = air.with_array(np.where(air.mask("trachea", "airways"), 255, 0).astype(np.uint8), labels={})
    # scanner padding outside the scan circle (as ct_padding.py): read as air, not refused
    arr = ct.array.astype(np.int16)
    arr[:, :4, :] = -32768
    io.write_image(ct.with_array(arr), tmp_path / "ct.nii.gz")
    io.write_image(mask, tmp_path / "airways_255.nii.gz")
    n3 = ph.lesion("lung_nodule_3")
    out = tmp_path / "o"
    rc = cli.main(["bronch", str(tmp_path / "ct.nii.gz"), "--airways", str(tmp_path / "airways_255.nii.gz"),
                   "--target=" + ",".join(f"{v:g}" for v in n3.center_ras), "--scope", "thin", "--out", str(out),
                   "--no-pictures"])
    assert rc == 0
    doc = json.loads((out / "bronch.json").read_text())
    assert any("segmented from the CT" in w for w in doc["warnings"])
    # the segmentation is timed and shown (trial 3: 396 s with no progress, timings_s 2.4 s)
    t = doc["timings_s"]
    assert t["lung_segmentation"] > 0 and t["total"] >= sum(v for n, v in t.items() if n != "total") - 0.01
    assert "lung vessels around the target" in capsys.readouterr().err
    assert doc["tunnels"] or doc["tunnel_problem"].startswith("no transparenchymal tunnel")
    liver = ph.lesion("liver_tumor_1")
    rc = cli.main(["bronch", str(tmp_path / "ct.nii.gz"), "--airways", str(tmp_path / "airways_255.nii.gz"),
                   "--target=" + ",".join(f"{v:g}" for v in liver.center_ras), "--out", str(tmp_path / "o2"),
                   "--no-pictures"])
    assert rc == 2  # outside the lungs found from the CT
    rc = cli.main(["bronch", str(tmp_path / "ct.nii.gz"), "--airways", str(tmp_path / "airways_255.nii.gz"),
                   "--target=900,900,900", "--out", str(tmp_path / "o2"), "--no-pictures", "--quiet"])
    assert rc == 2 and "outside the CT" in capsys.readouterr().err


def test_several_pieces_left_out_give_one_warning_with_their_count_and_sizes(ph):
    """Three air pockets far from every airway (the leak case leaves seven such balls): one
    warning naming the count, each piece's size and the distance range, not one line per piece."""
    L = ph.labels
    m = _airways(ph).copy()
    balls = [((-150.0, 0, 200), 4.0), ((150.0, 0, 200), 5.0), ((-150.0, 40, 150), 4.0)]
    for c, r in balls:
        m |= _ball(L, c, r)
    vox_ml = float(np.prod(L.spacing_kji)) / 1000.0
    sizes = sorted((round(float(_ball(L, c, r).sum()) * vox_ml, 2) for c, r in balls), reverse=True)
    t = B.extract_tree(L, m)
    w = [x for x in t.warnings if "left out" in x]
    assert len(w) == 1, t.warnings
    assert w[0].startswith("3 separate airway pieces were left out"), w[0]
    assert ", ".join(f"{v:g}" for v in sizes) + " mL" in w[0], (sizes, w[0])
    assert "3 lie " in w[0] and "mm from the tree" in w[0]


def test_a_map_of_several_values_without_an_airway_name_is_refused():
    """New-user trial 30 (M3): --label-names naming only body and vertebrae made bronch take the
    whole multi-label map for the airways (a 16-branch 'tree' of body and bone) and report the
    route reached. A map of several values none named as an airway is refused in one line; a
    binary mask (ATM'22, 0/255) stays the airways."""
    import numpy as np

    from imagio.errors import InputError
    from imagio.planning.bronchoscopy import airway_mask
    from imagio.volume import Volume

    arr = np.zeros((6, 6, 6), np.uint8)
    arr[1:3], arr[3:5, 2:4, 2:4] = 1, 2
    with pytest.raises(InputError, match="none is named as an airway"):
        airway_mask(Volume(arr, np.eye(4), labels={1: "body", 2: "vertebrae"}))
    binary = Volume((arr > 1).astype(np.uint8) * 255, np.eye(4), labels={255: "label_255"})
    assert airway_mask(binary).sum() == (arr > 1).sum()
    named = Volume(arr, np.eye(4), labels={1: "body", 2: "airways"})
    assert airway_mask(named).sum() == (arr == 2).sum()


def test_cli_refuses_an_airway_mask_of_another_scan(tmp_path, ph, capsys):
    """New-user trial 32 (M2): an airway-only mask 1410 mm from the CT (another patient's ATM'22
    mask with the chest CTA) gave a full route "short by 1410.1 mm" and exit 0. Here the phantom's
    airways alone, moved 1400 mm down, as --airways (no --structures: the lungs come from the CT,
    as in the trial), then its labels moved so as --structures: one line, exit 2, nothing written;
    the labels in place pass the check."""
    L = ph.labels
    k0 = int(np.floor(L.world_to_kji(np.array([[0.0, 0.0, 150.0]]))[0, 0]))  # the chest only: quicker
    ct, lab = ph.ct.crop((k0, 0, 0), ph.ct.shape), L.crop((k0, 0, 0), L.shape)
    io.write_image(ct, tmp_path / "ct.nii.gz")
    io.write_labels(lab, tmp_path / "labels.seg.nrrd")
    aff = lab.ijk_to_ras.copy()
    aff[2, 3] -= 1400.0
    io.write_image(Volume(np.where(lab.mask("trachea", "airways"), 255, 0).astype(np.uint8), aff),
                   tmp_path / "far_airways.nii.gz")
    io.write_labels(Volume(lab.array, aff, labels=dict(lab.labels)), tmp_path / "far.seg.nrrd")
    n3 = ph.lesion("lung_nodule_3")
    tgt = "--target=" + ",".join(f"{v:g}" for v in n3.center_ras)
    for extra in (["--airways", str(tmp_path / "far_airways.nii.gz")],
                  ["--airways", str(tmp_path / "labels.seg.nrrd"), "--structures", str(tmp_path / "far.seg.nrrd")]):
        rc = cli.main(["bronch", str(tmp_path / "ct.nii.gz"), *extra, tgt, "--scope", "thin",
                       "--out", str(tmp_path / "o"), "--no-pictures", "--quiet"])
        err = capsys.readouterr().err
        assert rc == 2 and "does not overlap the CT" in err and "Traceback" not in err, err
        assert not (tmp_path / "o" / "bronch.json").exists()
    io.require_overlap(io.read_labels(tmp_path / "labels.seg.nrrd"), io.read_image(tmp_path / "ct.nii.gz"))


def _stored_otherwise(vol):
    """The same world image with its i and j array axes flipped and swapped (its affine changed so
    that every voxel keeps its world position)."""
    from imagio.volume import Volume

    arr, a = vol.array, vol.ijk_to_ras.copy()
    for ax in (2, 1):                     # flip i, then j (array axes k, j, i)
        col = 2 - ax
        a[:3, 3] += a[:3, col] * (arr.shape[ax] - 1)
        a[:3, col] *= -1
        arr = np.flip(arr, ax)
    a[:, [0, 1]] = a[:, [1, 0]]
    return Volume(np.ascontiguousarray(arr.transpose(0, 2, 1)), a, vol.name, dict(vol.labels), dict(vol.meta),
                  list(vol.warnings), scanner_coordinates=vol.scanner_coordinates)


def test_the_route_does_not_depend_on_how_the_images_are_stored(tmp_path, ph):
    """New-user trial 32 (M1): the chest CTA and its label map flipped or permuted (the same world
    images) gave 113, 120 or 116 branches and routes of 200.5 or 206.4 mm; the phantom gave 280
    or 277 branches. The whole bronch.json (tree, route, scopes, warnings) is now the same.
    Independent check of the re-stored copy: every labelled voxel keeps its world position."""
    other_ct, other_lab = _stored_otherwise(ph.ct), _stored_otherwise(ph.labels)
    idx = np.argwhere(ph.labels.array > 0)[::997]
    back = np.rint(other_lab.world_to_kji(ph.labels.kji_to_world(idx))).astype(int)
    assert np.array_equal(other_lab.array[tuple(back.T)], ph.labels.array[tuple(idx.T)])
    les = [x for x in ph.lesions if x.kind == "lung_nodule"][0]
    c = ",".join(f"{v:g}" for v in les.center_ras)
    docs = []
    for tag, ct, lab in (("a", ph.ct, ph.labels), ("b", other_ct, other_lab)):
        io.write_image(ct, tmp_path / f"ct_{tag}.nii.gz")
        io.write_labels(lab, tmp_path / f"lab_{tag}.seg.nrrd")
        assert cli.main(["bronch", str(tmp_path / f"ct_{tag}.nii.gz"), "--airways", str(tmp_path / f"lab_{tag}.seg.nrrd"),
                         f"--target={c}", "--out", str(tmp_path / tag), "--no-pictures", "--quiet"]) == 0
        d = json.loads((tmp_path / tag / "bronch.json").read_text())
        d.pop("inputs"), d.pop("timings_s", None)
        docs.append(d)
    assert len(docs[0]["branches"]) > 50
    assert docs[0] == docs[1]


def test_bronch_says_its_warnings_on_stderr(tmp_path, ph, capsys):
    """New-user trial 34 (F2): bronch's warnings (another scan's mask, nothing checked on the CT ...)
    were only in the printed JSON: a script that keeps stdout for the data and shows stderr lost
    them. Every warning of bronch.json is now also an `imagio: warning:` line."""
    io.write_image(ph.ct, tmp_path / "ct.nii.gz")
    io.write_labels(ph.labels, tmp_path / "labels.seg.nrrd")
    capsys.readouterr()
    assert cli.main(["bronch", str(tmp_path / "ct.nii.gz"), "--airways", str(tmp_path / "labels.seg.nrrd"),
                     "--target", "lung_nodule_2", "--scope", "thin", "--out", str(tmp_path / "o"),
                     "--no-pictures", "--quiet"]) == 0
    err = capsys.readouterr().err.splitlines()
    doc = json.loads((tmp_path / "o" / "bronch.json").read_text())
    assert doc["warnings"]
    for w in doc["warnings"]:
        assert f"imagio: warning: {w}" in err, (w, err)


def test_an_airway_mask_laid_on_tissue_is_refused(tmp_path, ph, capsys):
    """New-user trial 34 (F2): another patient's tree moved onto this CT's trachea overlaps the CT
    (not refused by the overlap check) but lies on tissue (median -452 HU, 47 % above -100 HU);
    bronch planned a named route with tunnels on it. The phantom's airways moved 40 mm posterior
    (onto the mediastinum and spine) are refused in one line; where they belong they are planned."""
    from imagio.volume import Volume

    lab = ph.labels
    moved = lab.ijk_to_ras.copy()
    moved[1, 3] -= 40.0                       # 40 mm towards posterior (RAS A axis)
    other = Volume(lab.array, moved, lab.name, dict(lab.labels), dict(lab.meta), list(lab.warnings),
                   scanner_coordinates=lab.scanner_coordinates)
    # the premise, checked independently: the moved lumen lies on tissue in the CT
    idx = np.argwhere(lab.mask("trachea", "airways"))
    k = np.rint(ph.ct.world_to_kji(other.kji_to_world(idx))).astype(int)
    assert np.median(ph.ct.array[tuple(k.T)]) > -200
    io.write_image(ph.ct, tmp_path / "ct.nii.gz")
    io.write_labels(other, tmp_path / "moved.seg.nrrd")
    io.write_labels(lab, tmp_path / "labels.seg.nrrd")
    capsys.readouterr()
    rc = cli.main(["bronch", str(tmp_path / "ct.nii.gz"), "--airways", str(tmp_path / "moved.seg.nrrd"),
                   "--target", "lung_nodule_1", "--out", str(tmp_path / "o"), "--no-pictures", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "does not lie on the CT's air" in err[0], err
    assert not (tmp_path / "o").exists()


def test_a_target_on_aerated_lung_is_said_for_an_outline_and_for_a_point(tmp_path, ph, capsys):
    """New-user trial 39 H4: an outline of another scan over plain aerated lung and a point target at
    -843 HU got a route, exit 0, no word. The phantom's lung_nodule_1 erased from the CT (its voxels
    and 3 mm around them set to its lobe's median HU): the outline on that CT, and its centre as a
    point with the outline relabelled as the lobe, are each said to read aerated lung, as `plan` says."""
    from scipy import ndimage

    L, ct = ph.labels, ph.ct
    nod, lobe = L.mask("lung_nodule_1"), L.mask("lung_upper_lobe_right")
    near = ndimage.distance_transform_edt(~nod, sampling=L.spacing_kji) <= 3.0
    arr = ct.array.copy()
    arr[near] = np.median(ct.array[lobe & ~near])
    erased = ct.with_array(arr)
    assert np.median(erased.array[nod]) < -700                       # the premise: no lesion in the outline
    io.write_image(erased, tmp_path / "ct.nii.gz")
    io.write_labels(L, tmp_path / "labels.seg.nrrd")
    capsys.readouterr()
    assert cli.main(["bronch", str(tmp_path / "ct.nii.gz"), "--airways", str(tmp_path / "labels.seg.nrrd"),
                     "--target", "lung_nodule_1", "--scope", "thin", "--out", str(tmp_path / "o"),
                     "--no-pictures", "--quiet"]) == 0
    doc = json.loads((tmp_path / "o" / "bronch.json").read_text())
    said = [w for w in doc["warnings"] if "lung_nodule_1" in w and "aerated lung" in w]
    assert len(said) == 1, doc["warnings"]
    # the point: the outline relabelled as its lobe (no lesion holds the point)
    v_lobe = next(v for v, n in L.labels.items() if n == "lung_upper_lobe_right")
    io.write_labels(L.with_array(np.where(nod, v_lobe, L.array).astype(L.array.dtype)), tmp_path / "nonod.seg.nrrd")
    c = ",".join(f"{x:g}" for x in L.kji_to_world(np.argwhere(nod).mean(0)[None])[0])
    assert cli.main(["bronch", str(tmp_path / "ct.nii.gz"), "--airways", str(tmp_path / "nonod.seg.nrrd"),
                     f"--target={c}", "--scope", "thin", "--out", str(tmp_path / "p"), "--no-pictures", "--quiet"]) == 0
    doc = json.loads((tmp_path / "p" / "bronch.json").read_text())
    said = [w for w in doc["warnings"] if w.startswith("the target point lies in aerated lung")]
    assert len(said) == 1 and "the scope would end in air" in said[0], doc["warnings"]  # trial 78: not "needle"


def test_a_mask_whose_central_airways_the_ct_does_not_show_is_refused(tmp_path, ph, capsys):
    """New-user trial 39 M3: with a mirrored airway mask bronch said 'the CT shows no airway where the
    airway mask has its central airways ... nothing was checked on the CT' and still gave a route
    ending in parenchyma, exit 0. A CT whose trachea (and 3 voxels around it) reads soft tissue
    (40 HU) under the phantom's own mask: refused in one line, exit 2, nothing written."""
    from scipy import ndimage

    L = ph.labels
    near = ndimage.binary_dilation(L.mask("trachea"), iterations=3) & ~L.mask("airways")
    arr = ph.ct.array.copy()
    arr[near] = 40
    io.write_image(ph.ct.with_array(arr), tmp_path / "ct.nii.gz")
    io.write_labels(L, tmp_path / "labels.seg.nrrd")
    capsys.readouterr()
    rc = cli.main(["bronch", str(tmp_path / "ct.nii.gz"), "--airways", str(tmp_path / "labels.seg.nrrd"),
                   "--target", "lung_nodule_1", "--scope", "thin", "--out", str(tmp_path / "o"), "--no-pictures",
                   "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no airway where the airway mask has its central airways" in err[0], err
    assert not (tmp_path / "o").exists()


def _cropped_s(vol, lo_s, hi_s):
    """``vol``'s mask cut to the slabs whose centre lies within [lo_s, hi_s] mm along S (a scan
    with a shorter field of view; the voxels keep their world positions). ATM volumes store S
    along array axis 0."""
    assert np.argmax(np.abs(vol.ijk_to_ras[2, :3])) == 2
    s = vol.ijk_to_ras[2, 2] * np.arange(vol.shape[0]) + vol.ijk_to_ras[2, 3]   # affine arithmetic
    k = np.flatnonzero((s >= lo_s) & (s <= hi_s))
    aff = vol.ijk_to_ras.copy()
    aff[:3, 3] = (vol.ijk_to_ras @ np.array([0.0, 0.0, k[0], 1.0]))[:3]
    return Volume(np.ascontiguousarray(vol.array[k[0]:k[-1] + 1] > 0).astype(np.uint8), aff)


@pytest.mark.data
def test_a_scan_ending_below_the_upper_lobes_says_its_edge_cuts_the_lower_lobe_bronchus():
    """ATM_305 (YangLab; right upper lobe bronchus leaving at S -706 mm): a field of view ending at
    S -735 (above the middle lobe's subtree) cuts the right lower airways; the tree says that the
    image's inferior edge cuts the right lower lobe bronchus (the names beyond may be wrong:
    trial 90b L1, no word of it before). The whole mask mentions no edge."""
    from pathlib import Path

    f = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "atm22-airways" / "ATM_305_0000_pred_YangLab.nii.gz"
    if not f.exists():
        pytest.skip("ATM'22 masks not available in ../shared/data")
    vol = io.read_image(f)
    assert not any("edge" in w for w in B.extract_tree(vol).naming_warnings)
    low = B.extract_tree(_cropped_s(vol, -735.0, -560.0))
    assert any("inferior edge" in w and "right lower lobe bronchus" in w for w in low.naming_warnings), \
        low.naming_warnings


def test_a_target_in_soft_tissue_is_judged_on_the_whole_ct_not_on_its_box(ph):
    """New-user trial 110: a bronch target in soft tissue far from the lung was refused as "the
    image has no air (0.013% ...): it is not a whole CT in HU", on a CT that is 55 % air: the
    lung-vessel search judged the box around the target as if it were the CT. Here a phantom point
    whose tunnel box holds lung but no air-band voxel (the box alone is refused by the HU check):
    the vessels are searched, the CT having been judged whole."""
    from imagio.ct_check import hu_problem
    from imagio.planning.bronchoscopy.commands import tunnel_box, vessels_from_ct
    from imagio.planning.bronchoscopy.route import Target

    L, ct = ph.labels, ph.ct
    lungs = L.with_array(L.mask(*[n for n in L.labels.values() if n.startswith("lung_") and "lobe" in n]).astype(np.uint8),
                         labels={1: "lungs"})
    body = L.array > 0
    rng = np.random.default_rng(110)
    found = None
    for kji in rng.permutation(np.argwhere(body & ~(lungs.array > 0) & (ct.array > -100)))[:400]:
        c = ct.kji_to_world(kji[None].astype(float))[0]
        t = Target(centre=c, surface=c[None])
        box = tunnel_box(ct, t)
        lung_b = lungs.resample_like(box, order=0, fill=0).array > 0
        why = hu_problem(box)
        if lung_b.any() and why and "no air" in why:
            found = t
            break
    assert found is not None, "no phantom point whose box holds lung without air: the case no longer tests it"
    env, ves = vessels_from_ct(ct, found, lungs)   # old code: InputError "the image has no air"
    assert env.shape == ves.shape and (env.array > 0).any()
