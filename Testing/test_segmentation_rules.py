"""Rule-based segmenters and one-click lesion on synthetic CTs whose truth is known by construction.

`synthetic_ct.make_ct` draws the same patient (body on a table, lungs, trachea and bronchi
ending open in the lungs, spine, 12 ribs, liver with a vessel and a tumour, lung nodules,
an emphysema ball) on any grid; one grid here is oblique and anisotropic.
"""

import json

import numpy as np
import pytest

from imagio import anatomy
from imagio.errors import Cancelled, ImagioError, InputError
from imagio.segmentation import rules
from imagio.segmentation.body import mesh_boundary_edges, mesh_signed_volume, skin_surface
from imagio.segmentation.common import components, dice
from imagio.segmentation.lesion import segment_lesion
from imagio.segmentation.vessels import lumen_diameter, vessel_mask
from imagio.volume import Volume, make_ijk_to_ras
from synthetic_ct import LESIONS, make_ct
from conftest import rotation


@pytest.fixture(scope="module")
def synth():
    ct, truth = make_ct()
    masks, meta = rules.segment_masks(
        ct, ["body", "bones", "lungs", "airways", "emphysema", "lung_vessels"])
    return ct, truth, masks, meta


@pytest.fixture(scope="module")
def synth_oblique():
    d = rotation((1, 2, 3), 20.0) @ np.diag([-1.0, 1.0, 1.0])
    ct, truth = make_ct(spacing=(1.8, 2.2, 2.6), direction=d, seed=3)
    return ct, truth


def test_body_excludes_table_and_matches(synth):
    ct, t, m, _ = synth
    assert dice(m["body"], t["body"]) > 0.98
    assert not (m["body"] & t["table"]).any()


def test_lungs_left_right(synth):
    ct, t, m, _ = synth
    assert dice(m["lung_left"], t["lung_left"]) > 0.95
    assert dice(m["lung_right"], t["lung_right"]) > 0.95
    assert not (m["lung_left"] & m["lung_right"]).any()
    # airways are not lung
    assert not (m["lung_left"] & t["trachea"]).any()


def test_airways_trachea_found_no_leak(synth):
    ct, t, m, meta = synth
    assert dice(m["trachea"], t["trachea"]) > 0.75
    assert dice(m["airways"], t["bronchi"]) > 0.6
    # the bronchi open into -850 HU parenchyma: growing above that leaks, and must be rejected
    truth_ml = (t["trachea"] | t["bronchi"]).sum() * ct.voxel_volume_ml
    assert meta["airways"]["volume_ml"] < 1.3 * truth_ml
    assert meta["airways"]["threshold_hu"] < -850
    _, n, _ = components(m["trachea"] | m["airways"], connectivity=26)
    assert n == 1
    # both main bronchi reached, far into each lung
    from imagio.segmentation.common import ras_coordinate

    x = ras_coordinate(ct, 0)
    assert x[m["airways"]].max() > 35 and x[m["airways"]].min() < -35


def test_emphysema_percent_per_lung(synth):
    ct, t, m, meta = synth
    assert dice(m["emphysema"], t["emphysema"]) > 0.9
    e = meta["emphysema"]
    expect = 100 * t["emphysema"].sum() / t["lung_left"].sum()
    assert e["lung_left"]["laa_percent"] == pytest.approx(expect, rel=0.15)
    assert e["lung_right"]["laa_percent"] < 0.1


def test_bones_spine_ribs_apart_and_intercostal_spaces_open(synth):
    ct, t, m, _ = synth
    assert dice(m["vertebrae"], t["spine"]) > 0.8
    bone = m["vertebrae"] | m["ribs"] | m["bone"]
    # every true bone voxel is found (the mask may carry a partial-volume rim)
    assert (bone & (t["spine"] | t["ribs"])).sum() > 0.97 * (t["spine"] | t["ribs"]).sum()
    assert not (m["vertebrae"] & t["ribs"]).any()
    # 12 separate ribs: no fused intercostal spaces
    _, n, _ = components(m["ribs"], connectivity=26)
    assert n == 12
    assert (m["ribs"] & t["ribs"]).sum() > 0.95 * t["ribs"].sum()


def test_vessels_in_organ_with_diameter(oblique_affine):
    """Two contrast tubes (3 and 5 mm radius) in a 100 HU organ on an oblique anisotropic grid."""
    from imagio.segmentation.common import ras_coordinate
    from imagio.volume import make_ijk_to_ras

    m = oblique_affine.copy()
    m[:3, :3] = m[:3, :3] / np.linalg.norm(m[:3, :3], axis=0) * np.array([0.8, 0.8, 1.2])
    vol = Volume(np.zeros((60, 90, 90), np.int16), m)
    c = vol.kji_to_world(np.array([[30, 45, 45]]))[0]
    x, y, z = (ras_coordinate(vol, r) - c[r] for r in range(3))
    organ = x ** 2 + y ** 2 + z ** 2 <= 30 ** 2
    tube3 = organ & ((y - 10) ** 2 + z ** 2 <= 3 ** 2)
    tube5 = organ & ((y + 10) ** 2 + z ** 2 <= 5 ** 2)
    a = np.where(organ, 100.0, -1000.0)
    a[tube3 | tube5] = 250.0
    rng = np.random.default_rng(0)
    from scipy import ndimage

    a = ndimage.gaussian_filter(a, 0.5) + rng.normal(0, 10, a.shape)
    ct = vol.with_array(a.astype(np.int16))
    inner = organ & (x ** 2 + y ** 2 + z ** 2 <= 25 ** 2)  # away from the organ's edge
    vm, diam = vessel_mask(ct, organ)
    assert dice(vm & inner, (tube3 | tube5) & inner) > 0.8
    assert np.median(diam[vm & tube3 & inner]) == pytest.approx(6.0, abs=1.5)
    assert np.median(diam[vm & tube5 & inner]) == pytest.approx(10.0, abs=1.5)


def test_lumen_diameter_of_a_cylinder_anisotropic():
    sk = (2.5, 0.7, 0.7)
    k, j, i = np.ogrid[:20, :60, :60]
    r = np.sqrt(((j - 30) * 0.7) ** 2 + ((i - 30) * 0.7) ** 2)
    m = np.broadcast_to(r <= 5.0, (20, 60, 60)).copy()
    d = lumen_diameter(m, sk)
    assert np.median(d[m]) == pytest.approx(10.0, abs=1.0)


def test_label_volume_named_per_anatomy(synth):
    ct, t, m, meta = synth
    seg = rules.to_label_volume(ct, m, meta=meta)
    cat = anatomy.catalogue()
    assert set(seg.labels.values()) >= {"body", "lung_left", "lung_right", "trachea", "airways",
                                        "vertebrae", "ribs", "emphysema"}
    assert all(n in cat for n in seg.labels.values())
    assert seg.same_grid(ct)
    # each label's voxels are a subset of its mask
    for v, n in seg.labels.items():
        assert not ((seg.array == v) & ~m[n]).any()


@pytest.mark.parametrize("name", list(LESIONS))
def test_one_click_lesion(synth, name):
    ct, t, _, _ = synth
    centre, radius, hu, kind = LESIONS[name]
    mask, meas = segment_lesion(ct, centre)
    assert meas.kind == kind
    assert dice(mask, t[name]) > 0.85
    vox = float(max(ct.spacing))
    assert meas.long_axis_mm == pytest.approx(2 * radius, abs=vox)
    assert meas.axial_long_axis_mm == pytest.approx(2 * radius, abs=vox)
    assert meas.short_axis_mm <= meas.long_axis_mm
    assert meas.volume_ml == pytest.approx(t[name].sum() * ct.voxel_volume_ml, rel=0.2)
    assert np.allclose(meas.centroid_ras, centre, atol=vox)


def test_oblique_anisotropic_grid(synth_oblique):
    ct, t = synth_oblique
    assert not np.allclose(ct.direction, np.eye(3))
    m, meta = rules.segment_masks(ct, ["body", "lungs", "airways"])
    assert dice(m["body"], t["body"]) > 0.97
    assert dice(m["lung_left"], t["lung_left"]) > 0.93
    assert dice(m["lung_right"], t["lung_right"]) > 0.93
    assert dice(m["trachea"], t["trachea"]) > 0.6
    centre, radius, _, _ = LESIONS["nodule_solid"]
    mask, meas = segment_lesion(ct, centre)
    assert dice(mask, t["nodule_solid"]) > 0.85
    assert meas.long_axis_mm == pytest.approx(2 * radius, abs=float(max(ct.spacing)))


def test_lungs_split_when_touching():
    """Two lungs joined by a bridge at the anterior junction are split left/right."""
    ct, t = make_ct()
    a = ct.array.copy()
    from imagio.segmentation.common import ras_coordinate

    x, y, z = (ras_coordinate(ct, r) for r in range(3))
    bridge = (np.abs(x) < 20) & (np.abs(y - 50) < 6) & (np.abs(z - 25) < 20)
    a[bridge] = -850
    ct2 = ct.with_array(a)
    m, _ = rules.segment_masks(ct2, ["body", "lungs"])
    assert dice(m["lung_left"], t["lung_left"]) > 0.93
    assert dice(m["lung_right"], t["lung_right"]) > 0.93


def test_skin_surface_closed_outward_oblique(synth_oblique):
    ct, t = synth_oblique
    body = ct.with_array(t["body"].astype(np.uint8), labels={1: "body"})
    poly = skin_surface(body)
    assert poly.GetNumberOfPoints() > 1000
    assert mesh_boundary_edges(poly) == 0
    vol = mesh_signed_volume(poly)
    truth = t["body"].sum() * ct.voxel_volume_ml * 1000
    assert vol > 0 and vol == pytest.approx(truth, rel=0.05)
    from vtk.util import numpy_support as ns

    pts = ns.vtk_to_numpy(poly.GetPoints().GetData())
    nrm = ns.vtk_to_numpy(poly.GetPointData().GetNormals())
    c = pts.mean(0)
    assert np.mean(np.einsum("ij,ij->i", nrm, pts - c) > 0) > 0.95
    # in RAS: the body is the 150 x 110 mm ellipse cylinder centred on the origin
    assert pts[:, 0].max() == pytest.approx(150, abs=4)
    assert pts[:, 1].min() == pytest.approx(-110, abs=4)


def test_refuses_non_ct():
    ct, _ = make_ct(spacing=(6.0, 6.0, 6.0))
    mr = ct.with_array((ct.array.astype(np.int32) + 1024).astype(np.int16))
    with pytest.raises(InputError, match="does not look like a CT"):
        rules.segment(mr)
    with pytest.raises(InputError, match="no air"):
        rules.segment(ct.with_array(np.maximum(ct.array, -500)))
    with pytest.raises(InputError, match="unknown structure"):
        rules.segment(ct, ["body", "spleen"])


def test_lesion_click_errors(synth):
    ct, t, _, _ = synth
    with pytest.raises(InputError, match="outside the image"):
        segment_lesion(ct, (1000.0, 0.0, 0.0))
    with pytest.raises(InputError, match="in air"):
        segment_lesion(ct, (0.0, 20.0, 90.0))  # trachea lumen
    with pytest.raises(InputError, match="bone"):
        segment_lesion(ct, (0.0, -78.0 + 15.0, 0.0))  # spine cortex
    with pytest.raises(ImagioError):
        segment_lesion(ct, (60.0, 5.0, 60.0))  # plain lung parenchyma: no lesion


def test_progress_and_cancel():
    ct, _ = make_ct(spacing=(6.0, 6.0, 6.0))
    seen = []
    rules.segment(ct, ["body", "lungs"], progress=lambda f, m: seen.append(f))
    assert seen[-1] == pytest.approx(1.0) and seen == sorted(seen)
    with pytest.raises(Cancelled):
        rules.segment(ct, ["body"], progress=lambda f, m: f < 0.05)


def test_cli_segment_and_lesion(tmp_path, capsys):
    from imagio import cli, io

    ct, t = make_ct(spacing=(3.0, 3.0, 3.0))
    src = tmp_path / "ct.nrrd"
    io.write_image(ct, src)
    out = tmp_path / "seg.seg.nrrd"
    assert cli.main(["segment", str(src), "--structures", "body,lungs,airways", "--out", str(out),
                     "--quiet"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert {"body", "lung_left", "lung_right", "trachea"} <= set(res["structures"])
    seg = io.read_labels(out)
    assert dice(seg.mask("lung_right"), t["lung_right"]) > 0.9
    # never overwrite without --force
    assert cli.main(["segment", str(src), "--out", str(out), "--quiet"]) == 2
    les = tmp_path / "les.seg.nrrd"
    c = LESIONS["liver_tumor"][0]
    assert cli.main(["lesion", str(src), "--point", ",".join(map(str, c)), "--out", str(les),
                     "--quiet"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["volume_ml"] == pytest.approx(4 / 3 * np.pi * 12 ** 3 / 1000, rel=0.3)
    assert cli.main(["lesion", str(src), "--point", "999,0,0", "--out", str(tmp_path / "x.nrrd"),
                     "--quiet"]) == 2
    assert "outside the image" in capsys.readouterr().err


def test_liver_tumour_at_organ_edge_touching_same_density_tissue():
    """A hypodense tumour (30 HU) bulging out of the liver (100 HU) into muscle (40 HU): the
    region is cut where the lesion stops facing the liver; an organ mask bounds it exactly."""
    from scipy import ndimage

    from imagio.segmentation.common import ras_coordinate
    from imagio.volume import make_ijk_to_ras

    vol = Volume(np.zeros((50, 70, 70), np.int16), make_ijk_to_ras((1.2, 1.2, 2.0), (-42, -42, -50)))
    x, y, z = (ras_coordinate(vol, r) for r in range(3))
    a = np.full(vol.shape, 40.0)
    a[np.abs(x) > 38] = -1000
    liver = x < 0
    a[liver] = 100.0
    tum = (x + 6) ** 2 + y ** 2 + z ** 2 <= 10 ** 2
    a[tum] = 30.0
    a = ndimage.gaussian_filter(a, 0.6) + np.random.default_rng(0).normal(0, 10, a.shape)
    ct = vol.with_array(a.astype(np.int16))
    m, meas = segment_lesion(ct, (-6.0, 0.0, 0.0))
    assert meas.kind == "soft_tissue"
    assert dice(m, tum) > 0.85
    m, meas = segment_lesion(ct, (-6.0, 0.0, 0.0), organ=liver)
    assert dice(m, tum & liver) > 0.85 and not (m & ~liver).any()


def test_lesion_in_an_organ_label_that_leaves_it_out():
    """New-user trial 21 (MEDIUM): with --organ from a label map whose tumour is its own label (the
    liver label has a hole there, as LiTS writes it), a click at the tumour's centre said 'the
    lesion segmentation came out empty: ... click nearer its centre'. The organ is a bounding
    mask: its enclosed holes belong to it. A click outside the organ says so (oblique flipped
    anisotropic grid)."""
    from conftest import rotation
    from scipy import ndimage

    from imagio.segmentation.common import ras_coordinate
    from imagio.volume import make_ijk_to_ras

    d = rotation((1.0, 2.0, 3.0), 20.0) @ np.diag([1.0, -1.0, 1.0])
    sp = np.array([1.2, 1.4, 2.0])
    org = -d @ (0.5 * (np.array([70, 70, 50]) - 1) * sp)
    vol = Volume(np.zeros((50, 70, 70), np.int16), make_ijk_to_ras(tuple(sp), org, d))
    x, y, z = (ras_coordinate(vol, r) for r in range(3))
    body = (np.abs(x) < 38) & (np.abs(y) < 38) & (np.abs(z) < 45)
    liver = body & (x < 5)
    tum = (x + 15) ** 2 + y ** 2 + z ** 2 <= 9 ** 2
    a = np.where(body, 40.0, -1000.0)
    a[liver] = 100.0
    a[tum] = 30.0
    a = ndimage.gaussian_filter(a, 0.6) + np.random.default_rng(0).normal(0, 10, a.shape)
    ct = vol.with_array(a.astype(np.int16))
    m, meas = segment_lesion(ct, (-15.0, 0.0, 0.0), organ=liver & ~tum)
    assert dice(m, tum) > 0.85, dice(m, tum)
    with pytest.raises(InputError, match="outside the organ mask"):
        segment_lesion(ct, (20.0, 0.0, 0.0), organ=liver & ~tum)


def test_cli_vessels(tmp_path, capsys):
    from imagio import cli, io

    ct, t = make_ct(spacing=(2.0, 2.0, 2.0))
    src, organ = tmp_path / "ct.nrrd", tmp_path / "liver.nii.gz"
    io.write_image(ct, src)
    io.write_labels(ct.with_array(t["liver"].astype(np.uint8), labels={1: "liver"}), organ)
    out = tmp_path / "v.seg.nrrd"
    assert cli.main(["vessels", str(src), "--organ", str(organ), "--organ-labels", "liver",
                     "--out", str(out), "--diameter-out", str(tmp_path / "d.nrrd"), "--quiet"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["structure"] == "liver_vessels"
    v = io.read_labels(out).mask("liver_vessels")
    assert dice(v, t["vessel"]) > 0.5
    assert io.read_image(tmp_path / "d.nrrd").array.max() > 3.0


def test_structure_sets_documented_and_groups_are_totalsegmentator_classes():
    """Every structure set says what it writes (shown by `imagio segment --help`); every group
    name's members in anatomy.json are TotalSegmentator classes of the catalogue."""
    import json
    from importlib import resources

    from imagio.anatomy import totalsegmentator_labels
    from imagio.segmentation.rules import STRUCTURE_CONTENTS, STRUCTURES

    assert set(STRUCTURE_CONTENTS) == set(STRUCTURES)
    doc = json.loads(resources.files("imagio.data").joinpath("anatomy.json").read_text())
    ts = set(totalsegmentator_labels().values())
    groups = {e["name"]: e["group_of"] for e in doc["structures"] if "group_of" in e}
    assert {"lung_left", "lung_right", "ribs", "vertebrae"} <= set(groups)
    for name, members in groups.items():
        assert name not in ts
        assert all(m in ts for m in members if not m.startswith("(")), name


def test_fatty_marrow_filled_spinal_canal_open():
    """A vertebral body (a cortical box shell with fatty marrow, -50 HU) is filled whatever the
    marrow's density; a canal (a cortical tube open along S-I, CSF 10 HU) behind it stays open."""
    from imagio.segmentation.bones import bone_mask

    sp = 1.0
    a = np.full((80, 80, 80), 40, np.int16)  # [k=S, j=A, i=R] soft tissue
    k, j, i = np.mgrid[:80, :80, :80]
    body_box = (np.abs(k - 40) < 14) & (np.abs(j - 50) < 16) & (np.abs(i - 40) < 20)
    marrow = (np.abs(k - 40) < 12) & (np.abs(j - 50) < 14) & (np.abs(i - 40) < 18)
    a[body_box] = 900
    a[marrow] = -50
    r = np.hypot(j - 22, i - 40)
    a[(r < 10) & (r >= 8)] = 900  # canal wall, the whole S-I extent
    a[r < 8] = 10
    a[:, :, :3] = -1000  # air beside the body (the rules refuse an image without air)
    m = np.diag([sp, sp, sp, 1.0])[[2, 1, 0, 3]]  # i -> x, j -> y, k -> z
    ct = Volume(a, m)
    bone = bone_mask(ct)
    assert bone[marrow].mean() > 0.99
    assert bone[r < 7].mean() < 0.01


def test_airways_on_thick_slices_carry_the_bronchoscopy_warning():
    """A new user segmented a 5 mm CT and got airways without comment, then `bronch` refused
    them: segmentation says it at once, with the same limit (airway_limits.json)."""
    from imagio import phantom
    from imagio.segmentation.rules import segment

    ph = phantom.generate(spacing=3.0, seed=0)
    seg = segment(ph.ct, ["airways"])
    assert "airways" in seg.labels.values()
    assert any(w.startswith("airways:") and "3 mm slices" in w for w in seg.meta["warnings"])


@pytest.mark.parametrize("side", ["right", "left"])
def test_hemithorax_crop_keeps_trachea_and_sides(synth, side):
    """A crop at the midline (a hemithorax field of view) cuts the trachea open to a sagittal
    face: it is still found (inside the body, judged mirrored about the face), the midline comes
    from it, and only the lung of that side is labelled."""
    from imagio.segmentation.common import anatomical_axes, crop_slices, ras_coordinate

    ct, t, _, _ = synth
    lr, sign = anatomical_axes(ct)["R"]
    x = ras_coordinate(ct, 0)
    n = ct.shape[lr]
    # the index along lr where x crosses 2 mm (the trachea, radius 8 mm, is cut off-centre)
    cut = int(np.argmin(np.abs(np.moveaxis(x, lr, 0)[:, 0, 0] - 2.0)))
    keep_hi = (side == "right") == (sign > 0)
    sl = [slice(None)] * 3
    sl[lr] = slice(cut, n) if keep_hi else slice(0, cut)
    sl = tuple(sl)
    c = crop_slices(ct, sl)
    m, meta = rules.segment_masks(c, ["body", "lungs", "airways"])
    truth_tr = t["trachea"][sl]
    assert truth_tr.any()
    assert "trachea" in m, meta["warnings"]
    found = m["trachea"] | m["airways"]
    assert (found & truth_tr).sum() >= 0.6 * truth_tr.sum()
    assert not (found & ~(t["trachea"] | t["bronchi"])[sl] & ~t["lung_left"][sl]
                & ~t["lung_right"][sl]).sum() > 0.2 * truth_tr.sum()
    assert meta["midline"]["from"] == "trachea" and abs(meta["midline"]["x_mm"]) <= 10.0
    assert not (truth_tr & ~m["body"]).any()
    other = "lung_left" if side == "right" else "lung_right"
    assert m[other].sum() <= 0.01 * m[f"lung_{side}"].sum()
    assert dice(m[f"lung_{side}"], t[f"lung_{side}"][sl]) > 0.93


def test_cut_face_closes_trachea_sized_gaps_only():
    """close_cut_face: on a left-right face, gaps of body up to the widest trachea (30 mm) are
    closed, a wider gap (outside air between an arm and the chest) stays open; the other faces
    and the inside are untouched."""
    from imagio.segmentation.body import MAX_CUT_LUMEN_MM, close_cut_face

    sp = (2.0, 1.0, 1.5)
    m = np.zeros((10, 120, 40), bool)
    m[:, 10:40, 0] = m[:, 60:110, 0] = True       # face i=0: a 20 mm gap (j 40..59)
    m[:, 10:40, -1] = m[:, 80:110, -1] = True     # face i=-1: a 40 mm gap (j 40..79)
    m[:, 10:110, 5:35] = True
    m[:, 50:70, 5:35] = False                      # an inner gap: not a face, not closed
    out = close_cut_face(m, 2, sp)
    assert MAX_CUT_LUMEN_MM == 30.0
    assert out[:, 40:60, 0].all() and not out[:, 40:80, -1].any()
    assert (out[:, :, 1:-1] == m[:, :, 1:-1]).all()
    assert not out[:, :10, 0].any() and not out[:, 110:, 0].any()


@pytest.mark.parametrize("flip", [1, -1])
def test_pits_on_a_cut_face_are_patient_not_outside_air(flip):
    """Trial 78: where a sagittal face cuts the mediastinum, one-voxel pits of the face (the
    partial volume of a vessel or lung cut there, -560 HU) were left out of the body and read as
    outside air beside the vertebrae. A pit bordered by the patient on the face and inwards joins
    the body; a gap open to the outside air on the face (beside an arm) does not; the skin's own
    air stays outside. On a grid whose i axis is flipped (left-right face at either end)."""
    from imagio.segmentation.body import body_mask

    a = np.full((12, 70, 30), -1000, np.int16)
    a[:, 10:60, :] = 40                    # the trunk, cut by both faces normal to i
    a[4:6, 30, 0] = -560                   # a pit on face i=0 (one voxel deep)
    a[4:6, 30, -1] = -560                  # and on face i=-1
    a[:, 52:60, -1] = -1000                # face i=-1: a notch open to the air beyond the skin
    a[:, 52:60, -2] = -1000
    ct = Volume(a, make_ijk_to_ras((1.5, 1.0, 2.0), direction=np.diag([flip, 1.0, 1.0])))
    m = body_mask(ct)
    assert m[4:6, 30, 0].all() and m[4:6, 30, -1].all()
    assert not m[:, 55, -1].any() and not m[:, :8, :].any() and not m[:, 62:, :].any()
    assert m[:, 12:50, :].all()


def test_tumour_spelling_is_tumor():
    """One vocabulary (TotalSegmentator's "tumor"): a user's "tumour" label gets the tumor's role,
    not the neutral passable of an unknown name."""
    for name, ref in (("tumour", "tumor"), ("liver_tumour_2", "liver_tumor"), ("liver_tumour", "liver_tumor")):
        assert anatomy.get(name).role == anatomy.get(ref).role == "target"
        assert anatomy.get(name).name == name


# TotalSegmentator's combined-mask names (totalsegmentator/bin/totalseg_combine_masks.py, -m
# choices) and classes of its other tasks that the rules can write (map_to_binary.py: task
# "lung_vessels" -> lung_vessels, lung_trachea_bronchia; task "liver_vessels" -> liver_vessels)
TS_COMBINED = {"lung", "lung_left", "lung_right", "vertebrae", "ribs", "vertebrae_ribs", "heart",
               "pelvis", "body"}
TS_TASK_CLASSES = {"lung_vessels", "lung_trachea_bronchia", "liver_vessels", "liver_tumor"}


def test_rule_output_names_are_totalsegmentator_names_where_it_has_one(synth):
    """Every label the rule-based segmenters can write is a TotalSegmentator name (a total v2
    class, a combined mask or another task's class) unless it is one of the IMAGIO-only names,
    which TS lacks; those are in the catalogue and in `imagio segment --help`."""
    from imagio.anatomy import catalogue, totalsegmentator_labels
    from imagio.segmentation import rules

    ts = set(totalsegmentator_labels().values()) | TS_COMBINED | TS_TASK_CLASSES
    written = set(rules._PAINT)
    assert written - ts == set(rules.IMAGIO_ONLY_NAMES)
    assert not set(rules.IMAGIO_ONLY_NAMES) & ts
    cat = catalogue()
    help_text = " ".join(rules.STRUCTURE_CONTENTS.values())
    for name in written:
        assert name in cat and name in help_text, name
    # what the rules wrote on the synthetic patient uses only these names
    ct, _, masks, _ = synth
    assert {"body", "lung_left", "lung_right", "ribs", "vertebrae", "trachea"} <= set(masks)
    assert set(rules.to_label_volume(ct, masks).labels.values()) <= written


def test_default_segmentation_of_a_scan_without_lungs_writes_the_rest(tmp_path, capsys):
    """New-user trial 4 (L4): `imagio segment` of a thigh CT with the default structures stopped
    at "no lungs found" (exit 2) and wrote nothing, not even the body. With the default set the
    body and bones are written and the missing lungs are one warning; a set that names lungs
    still refuses (exit 2), as before. The limb phantom's thigh (no lungs), 3 mm."""
    from imagio import io
    from imagio.cli import main
    from imagio.phantom.limb import thigh

    ph = thigh(seed=0, spacing_mm=3.0)
    ct = io.write_image(ph.ct, tmp_path / "thigh.nii.gz")
    out = tmp_path / "thigh.seg.nrrd"
    assert main(["segment", str(ct), "--out", str(out), "--quiet"]) == 0
    cap = capsys.readouterr()
    seg = io.read_labels(out)
    names = set(seg.labels.values())
    assert "body" in names and not names & {"lung_left", "lung_right"}
    body = seg.array == {n: v for v, n in seg.labels.items()}["body"]
    truth = ph.labels.array > 0
    assert (body & truth).sum() > 0.9 * truth.sum()      # the limb is there
    assert "imagio: warning: lungs: no lungs found" in cap.err
    assert "vertebrae" not in names   # the femur lies in the spine corridor; no canal: 'bone'
    assert main(["segment", str(ct), "--structures", "body,lungs", "--out", str(tmp_path / "b.seg.nrrd"),
                 "--quiet"]) == 2
    assert "no lungs found" in capsys.readouterr().err and not (tmp_path / "b.seg.nrrd").exists()


def test_no_lungs_message_names_small_air_pockets_not_bowel_gas():
    """Trial 5: on a thigh the refusal said the air "looks like bowel gas"; the air there is a
    pocket under the 5 mL a lung needs. A soft-tissue block (oblique, anisotropic grid) holding a
    ~1 mL air ball: the message names the pocket size."""
    from imagio.segmentation.lungs import lung_mask
    from imagio.volume import make_ijk_to_ras

    rot = np.array([[0.0, 0.6, 0.8], [0.0, -0.8, 0.6], [1.0, 0.0, 0.0]])
    shape = (40, 50, 60)
    ct = Volume(np.full(shape, 40, np.int16), make_ijk_to_ras((1.2, 1.0, 2.0), (0.0, 0.0, 0.0), rot))
    k, j, i = np.indices(shape)
    ball = ((k - 20) * 2.0) ** 2 + ((j - 25) * 1.0) ** 2 + ((i - 30) * 1.2) ** 2 <= 6.2 ** 2
    ct.array[ball] = -900
    with pytest.raises(InputError, match=r"pockets under 5 mL \(largest 0\.9\d? mL\)"):
        lung_mask(ct, np.ones(shape, bool), None)


@pytest.mark.slow
def test_bowel_gas_not_lung_on_an_upsampled_grid():
    """Issue 14: a 65 mL pocket of colon gas mixed with stool (15 % of its 3 mm voxels at 20 HU,
    the rest gas at -1000 HU) below the left lung. At 3 mm its median is gas; resampled to
    1.5 mm (linear), every sample mixes gas with stool and the wall, the pocket's median rose
    above -950 HU and the old rule took the whole pocket as lung (63 mL of it). Judged on its
    core (> 3 mm from its edge) it stays gas: no lung inside the pocket's sphere, and the lung
    volume at 1.5 mm within 3 % of the 3 mm one."""
    from imagio.segmentation.common import ras_coordinate

    ct, _ = make_ct(spacing=(3.0, 3.0, 3.0))

    def in_pocket(c):
        x, y, z = (ras_coordinate(c, r) for r in range(3))
        return ((x + 60) ** 2 + (y - 20) ** 2 + (z + 80) ** 2) <= 25.0 ** 2

    pocket = in_pocket(ct)
    rng = np.random.default_rng(1)
    a = ct.array.copy()
    stool = rng.random(int(pocket.sum())) < 0.15
    a[pocket] = np.where(stool, 20, np.rint(-1000 + rng.normal(0, 15, stool.size)))
    ct = Volume(a, ct.ijk_to_ras, "gas pocket")
    vols = []
    for c in (ct, ct.resampled((1.5, 1.5, 1.5), order=1)):
        m, _ = rules.segment_masks(c, ["body", "lungs"])
        lungs = m["lung_left"] | m["lung_right"]
        assert not (lungs & in_pocket(c)).any(), c.spacing
        vols.append(lungs.sum() * c.voxel_volume_ml)
    assert vols[1] == pytest.approx(vols[0], rel=0.03)


def test_core_medians_sees_an_edge_beyond_a_neighbouring_label():
    """`core_medians` measured depth inside the selected labels' bounding box only: background
    behind a thin neighbouring label (a wall) at the box face was not seen, so the gas label's
    edge layer counted as core. Here the label is 8 voxels thick along i (1 mm), a 1-voxel wall
    label then background on one side, background on the other: the core deeper than 3 mm is
    i = 5, 6, 7 (distances to the background 4, 5, 4 mm, computed by hand). i = 7..9 read 0 HU,
    i = 5, 6 read -1000: the core's median is -1000 HU; with i = 8, 9 counted as core, 0 HU."""
    from imagio.segmentation.common import core_medians

    lab = np.zeros((12, 12, 14), np.int16)
    lab[1:11, 1:11, 2:10] = 1
    lab[1:11, 1:11, 10] = 2            # the wall; i = 11.. is background
    a = np.full(lab.shape, -1000.0, np.float32)
    a[..., 7:10] = 0.0
    which = np.array([False, True, False])
    med = core_medians(a, lab, which, (1.0, 1.0, 1.0), depth_mm=3.0, min_core_ml=0.0)
    assert med[0] < -990.0          # to the 5 HU bin of `label_medians`; the edge layer gave -392.5 (its clip)


@pytest.mark.parametrize("side", ["right", "left"])
def test_hemithorax_crop_past_the_midline_keeps_the_other_lungs_piece(synth, side):
    """Trial 13: a hemithorax crop whose face lies 25 mm past the midline holds a cap of the
    other lung (~3 % of the lungs in view, 10 mm deep). Before, every air component under 5 % of
    the largest was dropped, so the piece was left as body, unlabelled. Each lung is its own
    organ: the 5 % is of the largest component on the same side of the midline (the trachea's).
    Truth: the phantom's lung masks."""
    from imagio.segmentation.common import crop_slices, x_range_slices

    ct, t, _, _ = synth
    sl = x_range_slices(ct, x_min=-25.0) if side == "right" else x_range_slices(ct, x_max=25.0)
    m, meta = rules.segment_masks(crop_slices(ct, sl), ["body", "lungs", "airways"])
    assert meta["midline"]["from"] == "trachea"
    other = "lung_left" if side == "right" else "lung_right"
    piece, this = t[other][sl], t[f"lung_{side}"][sl]
    assert 0.01 * this.sum() < piece.sum() < 0.05 * this.sum()   # a small cap of the other lung
    assert (m[other] & piece).sum() >= 0.8 * piece.sum()
    assert (m[other] & this).sum() + (m[f"lung_{side}"] & piece).sum() <= 0.01 * piece.sum()
    assert dice(m[f"lung_{side}"], this) > 0.93


def test_lung_volumes_say_what_the_lung_labels_lose(synth):
    """Trial 44, F9: lung_left/lung_right in the label map (and the JSON's 'structures') lose
    the voxels that lung_vessels and emphysema are painted over (one label per voxel), so their
    volume changed with the structure sets asked, while the emphysema section reported the
    whole lung, unsaid. `lung_volumes` gives both, and what took the voxels; --help says it."""
    ct, t, m, meta = synth
    seg = rules.to_label_volume(ct, m, meta=meta)
    lv = rules.lung_volumes(m, seg)
    ml = ct.voxel_volume_ml
    codes = {n: v for v, n in seg.labels.items()}
    for lung in ("lung_left", "lung_right"):
        e = lv[lung]
        assert e["whole_ml"] == pytest.approx(m[lung].sum() * ml, abs=0.01)
        assert e["whole_ml"] == pytest.approx(meta["emphysema"][lung]["lung_ml"], abs=0.01)
        assert e["label_ml"] == pytest.approx((seg.array == codes[lung]).sum() * ml, abs=0.01)
        assert e["label_ml"] + sum(e["taken_by"].values()) == pytest.approx(e["whole_ml"], abs=0.05)
    # the emphysema ball is in the left lung: its voxels are taken from lung_left's label
    assert lv["lung_left"]["taken_by"]["emphysema"] == pytest.approx(
        (m["emphysema"] & m["lung_left"]).sum() * ml, abs=0.01)
    assert lv["lung_left"]["taken_by"]["emphysema"] > 0
    assert "whole_ml" in lv["note"] and "lung_ml" in meta["emphysema"]["note"]
    for k in ("emphysema", "lung_vessels"):
        assert "takes them from lung_left/lung_right" in rules.STRUCTURE_CONTENTS[k]


def test_volume_text_says_the_voxel_count_where_mL_would_read_zero():
    """New-user trial 79 LOW: "0.0 mL of dense tissue in the mediastinum ..." was printed for a
    few voxels; a volume under 0.05 mL is given as its voxel count."""
    from imagio.segmentation.common import volume_text

    assert volume_text(1, 0.027) == "1 voxel (0.027 mL)"
    assert volume_text(2, 0.0034) == "2 voxels (0.007 mL)"
    assert volume_text(100, 0.027) == "2.7 mL"
    assert "0.0 mL" not in volume_text(1, 0.003375)


def test_cli_vessels_refuses_a_diameter_map_over_its_own_mask(tmp_path, capsys):
    """New-user trial 114 (MED): --diameter-out naming the --out file wrote the diameter map over
    the vessel mask, exit 0, its sidecar still calling it the mask. Now refused, exit 2, nothing written."""
    from imagio import cli, io

    ct, t = make_ct(spacing=(4.0, 4.0, 4.0))
    src, organ = tmp_path / "ct.nrrd", tmp_path / "liver.nii.gz"
    io.write_image(ct, src)
    io.write_labels(ct.with_array(t["liver"].astype(np.uint8), labels={1: "liver"}), organ)
    out = tmp_path / "v.nii.gz"
    assert cli.main(["vessels", str(src), "--organ", str(organ), "--organ-labels", "liver", "--out", str(out),
                     "--diameter-out", str(tmp_path / "." / "v.nii.gz"), "--quiet"]) == 2
    assert "is the --out file" in capsys.readouterr().err and not out.exists()


def test_cli_vessels_reads_label_names_and_lists_names_in_value_order(tmp_path, capsys):
    """New-user trial 114 (LOW): `imagio vessels` had no --label-names (a label map without names, as
    TotalSegmentator's multi-label NIfTI, could only be named label_N), and its refusal listed the
    names in text order (label_10 before label_2). Now --label-names names the organ, as for plan,
    and the refusal lists the names by label value."""
    from imagio import cli, io

    ct, t = make_ct(spacing=(4.0, 4.0, 4.0))
    src = tmp_path / "ct.nrrd"
    io.write_image(ct, src)
    arr = np.where(t["liver"], 5, np.where(t["body"], 10, 2)).astype(np.uint8)
    organ = tmp_path / "seg.nii.gz"
    io.write_image(ct.with_array(arr, labels={}), organ)          # values only, no names
    names = tmp_path / "names.json"
    names.write_text(json.dumps({"5": "liver", "10": "body", "2": "air"}), encoding="utf-8")
    out = tmp_path / "v.nii.gz"
    assert cli.main(["vessels", str(src), "--organ", str(organ), "--organ-labels", "liver", "--out", str(out),
                     "--label-names", str(names), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["structure"] == "liver_vessels"
    assert not (io.read_labels(out).mask("liver_vessels") & ~t["liver"]).any()   # inside the named organ
    assert cli.main(["vessels", str(src), "--organ", str(organ), "--organ-labels", "liver", "--out",
                     str(tmp_path / "w.nii.gz"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "['label_2', 'label_5', 'label_10']" in err, err
