"""One-click lesion: measurements on analytic ellipsoids, masses against the chest wall with
necrotic centres from any interior click, include/exclude clicks, warnings, and the real lung
lesions of pyradiomics from the centre and from random interior clicks."""

import json
from decimal import Decimal

import edt
import numpy as np
import pytest
from scipy import ndimage

from imagio.segmentation.common import anatomical_axes, dice, ras_coordinate
from imagio.segmentation.lesion import measure, segment_lesion
from imagio.stratification.lungrads import rounded_mm
from imagio.volume import Volume, make_ijk_to_ras
from synthetic_ct import make_ct


@pytest.fixture(scope="module")
def runs():
    """What several tests of this module compute on the same inputs, computed once: the real
    cases read (and their masks resampled), and `segment_lesion` results on the same CT object
    and click (dict: key -> value; `_once`). The tests only read what is kept."""
    return {}


def _once(runs, key, make):
    """``runs[key]``, made by ``make()`` on the first call."""
    if key not in runs:
        runs[key] = make()
    return runs[key]


def _sts(runs, shared_data, case):
    """(CT, reference mask on the CT's grid) of the sarcoma ``case``, read once per module."""
    from imagio import io

    def read():
        d = shared_data / "sts-sarcoma" / case
        ct = io.read_image(d / "CT_image.nii.gz")
        return ct, io.read_image(d / "CT_mask.nii.gz").resample_like(ct, order=0).array > 0
    return _once(runs, ("sts", case), read)


def _deepest(ref, ct):
    """RAS of the first (storage order) deepest voxel of ``ref``."""
    depth = edt.edt(ref, anisotropy=tuple(ct.spacing_kji))
    return ct.kji_to_world(np.argwhere(depth == depth.max())[:1].astype(float))[0]


def _seg(runs, key, ct, click):
    """`segment_lesion(ct, click)`, computed once per ``key`` (naming the CT) and click."""
    return _once(runs, ("seg", key, tuple(np.round(np.asarray(click, float), 6))),
                 lambda: segment_lesion(ct, click))


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.7, 0.7, 2.5)])
def test_measurements_on_analytic_ellipsoids(spacing):
    """RECIST axial long/short and 3-D long/short axes of digital ellipsoids (random sub-voxel
    offsets): mean error within half a voxel, every one within 1.5 voxels, long >= short."""
    rng = np.random.default_rng(3)
    errs = []
    for a, b, c in [(10, 6, 4), (20, 12, 8), (8, 8, 3), (15, 9, 12)]:
        for _ in range(3):
            off = rng.uniform(-0.5, 0.5, 3)
            n = [int(2 * max(a, b, c) / s) + 6 for s in spacing]
            vol = Volume(np.zeros(n[::-1], np.int16), make_ijk_to_ras(spacing, (0, 0, 0)))
            kk, jj, ii = np.indices(n[::-1])
            x, y, z = ((g - m / 2 + o) * s for g, m, o, s in zip((ii, jj, kk), n, off, spacing))
            m = (x / a) ** 2 + (y / b) ** 2 + (z / c) ** 2 <= 1
            r = measure(m, vol)
            ax3 = sorted([a, b, c])[::-1]
            assert r.long_axis_mm >= r.short_axis_mm and r.axial_long_axis_mm >= r.axial_short_axis_mm
            # Lung-RADS v2022: each axis to 0.1 mm, then their mean to 0.1 mm, halves up
            assert r.mean_diameter_mm == rounded_mm(float(sum(Decimal(repr(rounded_mm(round(v, 2)))) for v in (
                r.axial_long_axis_mm, r.axial_short_axis_mm)) / 2))
            errs.append(np.array([r.long_axis_mm - 2 * ax3[0], r.short_axis_mm - 2 * ax3[1],
                                  r.axial_long_axis_mm - 2 * max(a, b),
                                  r.axial_short_axis_mm - 2 * min(a, b)]) / spacing[0])
    e = np.array(errs)
    assert np.all(np.abs(e.mean(0)) <= 0.5), e.mean(0)
    assert np.all(np.abs(e) <= 1.5 * max(spacing) / spacing[0]), e
    # a clearly elongated lesion: long and short axes differ (the old long == short bug)
    assert np.all(e[:, 0] > -1.5)


@pytest.fixture(scope="module")
def chest():
    return make_ct(spacing=(2.0, 2.0, 2.0), noise=12.0)


def _with_mass(chest, centre, radius, seed=0):
    """The synthetic chest with a lung mass (35 HU, necrotic centre of half its radius at 10 HU)
    at ``centre``; the mass is the sphere clipped by the lung envelope (it pushes the lung in, it
    does not invade the chest wall). Returns (ct, truth)."""
    ct, t = chest
    x, y, z = (ras_coordinate(ct, r) for r in range(3))
    d = np.sqrt((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2)
    truth = (d <= radius) & (t["lung_right"] | t["lung_left"])
    a = ct.array.astype(np.float32)
    base = np.where(d <= 0.5 * radius, 10.0, 35.0)
    noise = np.random.default_rng(seed).normal(0, 12.0, a.shape)
    a = np.where(truth, ndimage.gaussian_filter(np.where(truth, base, a), 0.5) + noise, a)
    return ct.with_array(np.rint(a).astype(np.int16)), truth


@pytest.mark.parametrize("radius", [20.0, 32.0])
def test_mass_against_chest_wall_with_necrosis_any_click(chest, radius):
    """A 40 and a 64 mm mass touching the lateral chest wall (right lung spans x 15..105 mm),
    necrotic centre: Dice >= 0.85 from the centre and from interior clicks (>= 5 mm inside)."""
    centre = (105.0 - radius + 4.0, 5.0, 30.0)
    ct, truth = _with_mass(chest, centre, radius)
    rng = np.random.default_rng(1)
    import edt

    depth = edt.edt(truth, anisotropy=tuple(ct.spacing_kji))
    inside = np.argwhere(depth >= 5.0)
    clicks = [np.asarray(centre)] + [ct.kji_to_world(inside[i][None].astype(float))[0]
                                     for i in rng.choice(len(inside), 4, replace=False)]
    vols = []
    for c in clicks:
        m, meas = segment_lesion(ct, c)
        assert meas.kind == "lung_nodule" and meas.subtype == "mass", (c, meas)
        assert dice(m, truth) >= 0.85, (c, dice(m, truth))
        vols.append(meas.volume_ml)
    assert max(vols) <= 1.15 * min(vols)


def test_include_exclude_and_warnings(chest, runs):
    ct, t = chest
    m1, meas1 = _seg(runs, "chest", ct, (60.0, 20.0, 30.0))  # the solid nodule
    # a clean nodule: no warning but the one about its 2 mm sections (Fleischner: <= 1.5 mm)
    assert dice(m1, t["nodule_solid"]) >= 0.85
    assert [w for w in meas1.warnings if "mm sections" not in w] == []
    assert any("measured on 2 mm sections" in w for w in meas1.warnings)
    m2, meas2 = segment_lesion(ct, (60.0, 20.0, 30.0), include=[(-58.0, 22.0, 45.0)])
    assert m2[t["nodule_ggo"]].mean() > 0.8 and m2[t["nodule_solid"]].mean() > 0.8
    added = [w for w in meas2.warnings if "added click" in w]
    assert len(added) == 1 and "added nothing" not in added[0]
    assert float(added[0].rsplit(" added ", 1)[1].split(" mL")[0]) == pytest.approx(
        float((m2 & ~m1).sum()) * ct.voxel_volume_ml, rel=0.05)
    # a second click inside the same nodule grows nothing new: said, never silent
    m4, meas4 = segment_lesion(ct, (60.0, 20.0, 30.0), include=[(62.0, 20.0, 30.0)])
    assert (m4 == m1).all() and any("added nothing" in w for w in meas4.warnings)
    # exclude a point on one side: the part nearer to it goes
    m3, _ = segment_lesion(ct, (60.0, 20.0, 30.0), exclude=[(60.0, 20.0, 39.0)])
    z = ras_coordinate(ct, 2)
    assert m3.sum() < m1.sum() and not (m3 & (z > 36)).any()


def _interior_clicks(ref, ct, n, seed, depth_mm=5.0):
    """``n`` RAS points drawn without replacement by a seeded RNG from every voxel at least
    ``depth_mm`` inside ``ref`` (60 % of its deepest point when it is thinner than that)."""
    import edt

    depth = edt.edt(np.ascontiguousarray(ref), anisotropy=tuple(ct.spacing_kji), black_border=True)
    inside = np.argwhere(depth >= min(depth_mm, 0.6 * float(depth.max())))
    pick = np.random.default_rng(seed).choice(len(inside), min(n, len(inside)), replace=False)
    return ct.kji_to_world(inside[pick].astype(float))


def _shallow_clicks(ref, ct, n, seed, depth_mm=5.0):
    """``n`` seeded RAS points from the shallowest layer that ``_interior_clicks`` allows (depth
    within one slice spacing of its bound): on thick slices these are the lesion's end slices,
    where a click sees the least of the lesion (where the detector seeded lung2, trial 3 D3)."""
    import edt

    depth = edt.edt(np.ascontiguousarray(ref), anisotropy=tuple(ct.spacing_kji), black_border=True)
    lo = min(depth_mm, 0.6 * float(depth.max()))
    inside = np.argwhere((depth >= lo) & (depth < lo + float(max(ct.spacing_kji))))
    pick = np.random.default_rng(seed).choice(len(inside), min(n, len(inside)), replace=False)
    return ct.kji_to_world(inside[pick].astype(float))


# the candidate centre the detector gave lung2's mass in new-user trial 3 (defect D3): on the
# mass's cranial slice, 5.0 mm inside; it gave 0.5 mL of 48 mL (Dice 0.02) without a warning
LUNG2_DETECTOR_CLICK = (-76.4, 91.2, -240.0)


@pytest.mark.data
@pytest.mark.parametrize("case", ["lung1", "lung2"])
def test_pyradiomics_lesion_from_any_click(shared_data, case):
    """Real lung lesions (hand labels), issue 14's thresholds: Dice >= 0.85 from the label's
    centroid; from each of 10 random clicks inside (>= 5 mm, or 60 % of the deepest point of a
    lesion thinner than that: lung1's nodule is 14 mm across on 5 mm slices, 4.6 mm deep), from
    3 clicks on the shallowest allowed layer (the end slices) and, for lung2, from the detector's
    click of trial 3: Dice >= 0.80, typed lung nodule, and the volumes of all within 15 % of each
    other. The CT is cropped in-plane to 90 mm round the lesion (all slices; the lung envelope
    is judged within 80 mm of the click). Measured (``python -m benchmarks.bench_lesion lung1
    lung2``): lung1 0.866-0.867; lung2 0.884-0.887 (the detector's click 0.884: before, 0.02)."""
    from imagio import io

    d = shared_data / "pyradiomics-lung"
    ct = io.read_image(d / f"{case}_image.nrrd")
    ref = io.read_image(d / f"{case}_label.nrrd").array > 0
    lo, hi = ct.bounding_box(ref)
    m = np.ceil(90.0 / np.asarray(ct.spacing_kji)).astype(int)
    m[0] = ct.shape[0]
    ct, ref = ct.crop(lo - m, hi + m), ref[tuple(slice(a, b) for a, b in zip(np.maximum(lo - m, 0), hi + m))]
    centroid = ct.kji_to_world(np.argwhere(ref).mean(0)[None])[0]
    mask, meas = segment_lesion(ct, centroid)
    assert meas.kind == "lung_nodule" and dice(mask, ref) >= 0.85
    vols = [meas.volume_ml]
    clicks = list(_interior_clicks(ref, ct, 10, seed=0)) + list(_shallow_clicks(ref, ct, 3, seed=1))
    if case == "lung2":
        clicks.append(np.array(LUNG2_DETECTOR_CLICK))
    for c in clicks:
        m, meas = segment_lesion(ct, c)
        assert meas.kind == "lung_nodule" and dice(m, ref) >= 0.80, (c, dice(m, ref), meas.volume_ml)
        vols.append(meas.volume_ml)
    assert max(vols) <= 1.15 * min(vols), vols


def test_lobulated_mass_on_thick_slices_from_shallow_clicks():
    """A lobulated lung mass (44 mm sphere with a 20 mm lobe, 9 mm necrotic centre) on 0.7 x 0.7
    x 5 mm voxels, against the chest wall: clicks 5-10 mm inside (on 5 mm slices these lie on
    the end slices and in the lobe, where lung2's detector click gave 0.5 mL of 48 mL, trial 3
    D3). Every click gives the whole mass (Dice >= 0.85, volumes within 15 %). The old code
    stopped its core ascent on a plateau of the distance map and kept the lobe from 2 of the 8
    clicks (Dice 0.13); measured now 0.956 from all."""
    from imagio.volume import Volume, make_ijk_to_ras

    vol = Volume(np.zeros((30, 200, 200), np.int16), make_ijk_to_ras((0.7, 0.7, 5.0), (-70, -70, -75)))
    x, y, z = (ras_coordinate(vol, r) for r in range(3))
    a = np.full(vol.shape, -850.0)
    a[np.abs(x) > 60] = 40.0  # chest wall
    a[np.abs(x) > 66] = -1000.0  # outside air
    mass = ((x - 30) ** 2 + y ** 2 + z ** 2 <= 22 ** 2) | ((x - 20) ** 2 + (y - 18) ** 2 + (z - 14) ** 2 <= 10 ** 2)
    a[mass] = 40.0
    a[(x - 30) ** 2 + y ** 2 + z ** 2 <= 9 ** 2] = 15.0
    rng = np.random.default_rng(0)
    a = ndimage.gaussian_filter(a, (0.5, 1.0, 1.0)) + rng.normal(0, 15, a.shape)
    ct = vol.with_array(a.astype(np.int16))
    depth = edt.edt(mass, anisotropy=tuple(ct.spacing_kji), black_border=True)
    pts = np.argwhere((depth >= 5) & (depth < 10))
    vols = []
    for p in pts[rng.choice(len(pts), 12, replace=False)[:8]]:
        m, meas = segment_lesion(ct, ct.kji_to_world(p[None].astype(float))[0])
        assert meas.kind == "lung_nodule" and dice(m, mass) >= 0.85, (p, dice(m, mass), meas.volume_ml)
        vols.append(meas.volume_ml)
    assert max(vols) <= 1.15 * min(vols), vols


@pytest.mark.data
@pytest.mark.parametrize("case", ["STS_002", "STS_010"])
def test_sarcoma_from_the_centre_and_interior_clicks(shared_data, runs, case):
    """Real sarcomas on non-contrast CT (no intensity edge against muscle; STS_002 in fat,
    STS_010 in muscle above a CT table whose foam reads like lung, -901 HU): the deepest point
    of the mask and 2 seeded random clicks >= 5 mm inside. Before the statistical soft-tissue
    model: Dice 0.01 (a 0.3 / 0.9 mL speck) and clicks typed "lung nodule" in the table's
    concavity (650 mL). Measured now: STS_002 0.82-0.88, STS_010 0.52-0.73 (all five and more
    clicks: ``python -m benchmarks.bench_lesion STS_...``). Asserted: the type is soft tissue,
    the result is the tumour, not a speck or the limb (Dice >= 0.5, volume within 0.5-2x of
    the mask's), and a result below Dice 0.80 says that its border is approximate."""
    ct, ref = _sts(runs, shared_data, case)
    ref_ml = ref.sum() * ct.voxel_volume_ml
    for click in [_deepest(ref, ct)] + list(_interior_clicks(ref, ct, 2, seed=0)):
        m, meas = _seg(runs, case, ct, click)
        assert meas.kind == "soft_tissue", (click, meas.kind)
        assert dice(m, ref) >= 0.5 and 0.5 * ref_ml <= meas.volume_ml <= 2.0 * ref_ml, (
            click, dice(m, ref), meas.volume_ml, ref_ml)
        if dice(m, ref) < 0.80:
            assert any("no clear intensity edge" in w for w in meas.warnings), (click, meas.warnings)


@pytest.mark.data
@pytest.mark.slow
def test_sarcoma_with_a_measurable_edge_from_any_interior_click(shared_data, runs):
    """STS_002, a sarcoma bounded by fat (its 2 mm-denoised median about 67 HU, the soft tissue
    around it about -10 HU: Ashman's D 2.4-2.8, a measurable edge), from the centroid of its
    mask and 10 seeded random clicks >= 5 mm inside. Before the two-class bound
    (`lesion._two_class_outline`) the homogeneous region at the click stopped at the tumour's
    own texture: Dice 0.806-0.878 (0.806, 0.829 and 0.852 below 0.85). Measured after:
    0.864-0.891, 47-60 mL for 53 mL. Asserted: soft tissue and Dice >= 0.85 from every click
    (the best global threshold connected to the click reaches 0.89 on this CT)."""
    ct, ref = _sts(runs, shared_data, "STS_002")
    centroid = ct.kji_to_world(np.argwhere(ref).mean(0)[None])[0]
    assert ref[tuple(np.rint(ct.world_to_kji(centroid[None])[0]).astype(int))]
    for click in [centroid] + list(_interior_clicks(ref, ct, 10, seed=0)):
        m, meas = segment_lesion(ct, click)
        assert meas.kind == "soft_tissue" and dice(m, ref) >= 0.85, (click, dice(m, ref), meas.volume_ml)


def _dx(runs, shared_data):
    """(CT, box rows) of Lung_Dx-A0001, read once per module."""
    import csv

    from imagio import io

    def read():
        d = shared_data / "lung-pet-ct-dx"
        with open(d / "Lung_Dx-A0001_boxes.csv") as f:
            return io.read_image(d / "Lung_Dx-A0001_ct.nii.gz"), list(csv.DictReader(f))
    return _once(runs, "dx", read)


DX_CLICK = np.array([-41.8, -206.6, -209.0])  # LPS (41.8, 206.6, -209): the box centre of slice 46


def _dx_boxes(ct, rows):
    """The collection's per-slice tumour boxes of Lung_Dx-A0001 as a mask on ``ct``'s grid."""
    boxes = np.zeros(ct.shape, bool)
    for r in rows:
        c = np.array([-float(r["centre_lps_x"]), -float(r["centre_lps_y"]), float(r["centre_lps_z"])])
        k = int(np.rint(ct.world_to_kji(c[None])[0][0]))
        ij = [ct.world_to_kji(np.array([[-(-c[0] + (x - 0.5 * (int(r["xmin"]) + int(r["xmax"]))) * ct.spacing[0]),
                                         -(-c[1] + (y - 0.5 * (int(r["ymin"]) + int(r["ymax"]))) * ct.spacing[1]),
                                         c[2]]]))[0]
              for x, y in ((int(r["xmin"]), int(r["ymin"])), (int(r["xmax"]), int(r["ymax"])))]
        j0, j1 = sorted(int(np.rint(v[1])) for v in ij)
        i0, i1 = sorted(int(np.rint(v[2])) for v in ij)
        boxes[k, j0:j1 + 1, i0:i1 + 1] = True
    return boxes


@pytest.mark.data
def test_lung_pet_ct_dx_mass_inside_its_boxes_or_flagged(shared_data, runs):
    """Lung-PET-CT-Dx A0001, a left perihilar mass with per-slice boxes (slices 41-51): clicked
    at the middle box's centre. Measured: 6.0 mL, 98 % inside the boxes, but only 5 of the 9 box
    slices reached (under-segmented; before the split from larger blobs it leaked into the
    mediastinum, 1.2 L, 5 % inside, with the size-limit warning). Asserted: at least 80 % of the
    result inside the boxes, or a leak warning."""
    ct, rows = _dx(runs, shared_data)
    boxes = _dx_boxes(ct, rows)
    mid = rows[len(rows) // 2]
    click = np.array([-float(mid["centre_lps_x"]), -float(mid["centre_lps_y"]), float(mid["centre_lps_z"])])
    assert boxes[tuple(np.rint(ct.world_to_kji(click[None])[0]).astype(int))]  # the boxes are where the click is
    m, meas = segment_lesion(ct, click)
    inside = (m & boxes).sum() / m.sum()
    assert inside >= 0.80 or any("size limit" in w or "irregular" in w for w in meas.warnings), (inside, meas.warnings)


def test_lesion_removed_from_every_vessel_mask(chest, runs):
    """A clicked lesion is never a vessel: rules.segment_masks(organs={"lung_nodule": ...})
    and vessels.remove_lesion take it out of every vessel mask, other structures untouched."""
    from imagio.segmentation import rules
    from imagio.segmentation.vessels import is_vessel_name, remove_lesion

    ct, t = chest
    nod, _ = _seg(runs, "chest", ct, (60.0, 20.0, 30.0))
    m, _ = rules.segment_masks(ct, ["lungs", "lung_vessels"], organs={"lung_nodule": nod})
    assert not (m["lung_vessels"] & nod).any()
    masks = {"aorta": nod.copy(), "portal_vein_and_splenic_vein": nod.copy(), "liver": nod.copy()}
    out = remove_lesion(masks, nod)
    assert not out["aorta"].any() and not out["portal_vein_and_splenic_vein"].any()
    assert out["liver"].sum() == nod.sum()
    assert is_vessel_name("inferior_vena_cava") and not is_vessel_name("lung_upper_lobe_left")


def test_implausible_results_say_so(chest, runs):
    """A lesion cut by the field of view carries a warning, a clean nodule none, and a click on
    parenchyma beside a 2 mm speck is refused."""
    ct, t = chest
    _, clean = _seg(runs, "chest", ct, (60.0, 20.0, 30.0))
    assert [w for w in clean.warnings if "mm sections" not in w] == []   # only: 2 mm sections
    # crop through the nodule (centre x = 60 mm, radius 10): the lesion touches the image edge
    x = ras_coordinate(ct, 0)[0, 0, :]
    cols = np.flatnonzero(x <= 62.0) if x[-1] > x[0] else np.flatnonzero(x >= 62.0)
    lo, hi = [0, 0, int(cols.min())], [ct.shape[0], ct.shape[1], int(cols.max()) + 1]
    _, cut = segment_lesion(ct.crop(lo, hi), (58.0, 20.0, 30.0))
    assert any("edge of the image" in w for w in cut.warnings)
    # a 2 mm speck of soft tissue in the lung: the click is on parenchyma, refused (it used to
    # grow the whole lung)
    from imagio.errors import InputError

    a = ct.array.copy()
    y, z = ras_coordinate(ct, 1), ras_coordinate(ct, 2)
    speck = (ras_coordinate(ct, 0) - 80.0) ** 2 + (y + 30.0) ** 2 + (z - 0.0) ** 2 <= 1.0 ** 2
    a[speck] = 40
    # clicked on the centre of one of the speck's two voxels (A = -31, -29 mm): A = -30 lay midway,
    # a tie the lesion's canonical storage (trial 112 F2) breaks towards the other one
    with pytest.raises(InputError, match="parenchyma"):
        segment_lesion(ct.with_array(a), (80.0, -29.0, 0.0))


def test_cli_add_and_remove_clicks(chest, tmp_path, capsys):
    """``imagio lesion --add R,A,S --remove R,A,S``: the second click adds the other nodule, the
    remove click takes off the part nearer to it; a malformed point is one line, exit code 2."""
    import json

    from imagio import io
    from imagio.cli import main

    ct, t = chest
    f = tmp_path / "ct.nii.gz"
    io.write_image(ct, f)

    def run(*extra):
        out = tmp_path / f"l{len(list(tmp_path.iterdir()))}.nii.gz"
        assert main(["lesion", str(f), "--point", "60,20,30", "--out", str(out), "--quiet", *extra]) == 0
        return json.loads(capsys.readouterr().out), io.read_image(out).array > 0

    one, m1 = run()
    # its doubts are written with the outline (`imagio.outline_doubts`, trial 75): the click, the
    # flags and the volume as printed, read back by the label reader
    out1 = sorted(tmp_path.glob("l*.nii.gz"))[0]
    rec = json.loads(io.sidecar_path(out1).read_text())["labels"]["1"]["imagio_lesion"]
    assert rec["click_ras"] == [60.0, 20.0, 30.0] and rec["outline_volume_ml"] == one["outline_volume_ml"] > 0
    assert rec["flags"] == {k: bool(one[k]) for k in ("leaked", "size_withheld", "click_dependent", "touches_image_edge")}
    assert rec["warnings"] == one["warnings"] and io.read_labels(out1).outline_doubts == {one["structure"]: rec}
    both, m2 = run("--add", "-58,22,45")
    assert m2[t["nodule_ggo"]].mean() > 0.8 and m2[t["nodule_solid"]].mean() > 0.8
    assert both["volume_ml"] > one["volume_ml"] + 0.8 * t["nodule_ggo"].sum() * ct.voxel_volume_ml
    cut, m3 = run("--remove", "60,20,39")
    z = ras_coordinate(ct, 2)
    assert cut["volume_ml"] < one["volume_ml"] and not (m3 & (z > 36)).any()
    assert main(["lesion", str(f), "--point", "60,20,30", "--add", "1,2", "--out",
                 str(tmp_path / "bad.nii.gz"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--add" in err[0]


LUNG_LOBES = ["lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right",
              "lung_middle_lobe_right", "lung_lower_lobe_right"]


@pytest.fixture(scope="module")
def ph2():
    from imagio import phantom

    return phantom.generate(spacing=2.0, seed=0)


def _place(ph, names, radius, wall):
    """A centre in ``names``: the deepest point, or (``wall``) the most lateral point 0.55-0.65
    radius deep, so that the lesion, confined to the lung, lies flat against the chest wall."""
    import edt

    if "lung_upper_lobe_left" in names:  # the lung's vessels are lung too (the lesion replaces them)
        names = list(names) + ["lung_vessels"]
    # the phantom's own placement labels (`Phantom.placement_labels`: the airway runs on past its
    # open terminal ends), as its generator places lesions: the sites this test was written on. With
    # the open ends read as lung the deepest point moves 22 mm, beside a vessel (76 vessel voxels
    # within 10 mm vs 47), where the 15 mm ground-glass nodule reads part-solid and the 10 mm
    # perifissural one comes out at Dice 0.40: a juxta-vascular limit of the one-click tool (stop 48)
    lab = ph.labels.with_array(ph.placement_labels())
    d = edt.edt(lab.mask(*names), anisotropy=tuple(ph.labels.spacing_kji))
    if wall:
        ras = ph.labels.kji_to_world(np.argwhere((d > 0.55 * radius) & (d < 0.65 * radius)).astype(float))
        return ras[np.argmax(np.abs(ras[:, 0]))]
    return ph.labels.kji_to_world(np.argwhere(d == d.max())[:1].astype(float))[0]


def _soft_tissue_site(ph, radius):
    """The deepest point of the phantom's soft tissue and fat outside every organ (label "body"),
    at least two radii from the image's ends along S (a site the painted tumour shares with no
    organ; the same rule on either anatomy)."""
    import edt

    d = edt.edt(ph.labels.mask("body"), anisotropy=tuple(ph.labels.spacing_kji))
    s_axis = anatomical_axes(ph.labels)["S"][0]
    margin = int(np.ceil(2 * radius / ph.labels.spacing_kji[s_axis]))
    idx = [slice(None)] * 3
    idx[s_axis] = np.r_[0:margin, d.shape[s_axis] - margin:d.shape[s_axis]]
    d[tuple(idx)] = 0
    return ph.labels.kji_to_world(np.argwhere(d == d.max())[:1].astype(float))[0]


PHANTOM_CASES = [  # kind, diameter mm, necrotic fraction, against the chest wall
    ("solid", 8.0, 0.0, False), ("part_solid", 20.0, 0.0, False), ("ground_glass", 15.0, 0.0, False),
    ("perifissural", 10.0, 0.0, False), ("calcified", 10.0, 0.0, False),
    ("mass", 50.0, 0.3, False), ("mass", 60.0, 0.3, True),
    ("liver_hypodense", 30.0, 0.0, False), ("liver_hyperdense", 25.0, 0.0, False),
    ("soft_tissue", 40.0, 0.0, False), ("mass", 40.0, 0.3, True),
    ("mass", 100.0, 0.5, True),   # fills the lung's cross-section, against the heart (issue 14)
]


def _painted(runs, ph2, kind, diameter, necrotic, wall):
    """(phantom copy, centre RAS, truth mask) of a lesion painted by imagio.phantom.lesions into
    a copy of ``ph2`` at `_place`'s site (`_soft_tissue_site`'s for soft tissue); the two that
    several tests paint (`SHARED_PAINT`) are made once per module."""
    import copy

    from imagio.phantom.lesions import insert_lesion

    def make():
        ph = copy.deepcopy(ph2)
        host = ["liver"] if kind.startswith("liver") else LUNG_LOBES
        if kind == "soft_tissue":  # in the phantom's fat-and-soft-tissue mix outside the organs
            c = _soft_tissue_site(ph, diameter / 2)
            assert ph.labels.labels[int(ph.labels.sample(c[None])[0])] == "body"
        else:
            c = _place(ph, host, diameter / 2, wall)
        les = insert_lesion(ph, kind, c, diameter, necrotic_fraction=necrotic, seed=1)
        return ph, c, ph.labels.array == les.label_value
    key = ("painted", kind, diameter, necrotic, wall)
    return _once(runs, key, make) if key[1:] in SHARED_PAINT else make()


# painted by more than one test: the 100 mm mass (the phantom case and its clicks off the middle), the 20 mm
# part-solid nodule (the phantom case and the forced-kind test)
SHARED_PAINT = {("mass", 100.0, 0.5, True), ("part_solid", 20.0, 0.0, False)}


@pytest.mark.parametrize("kind, diameter, necrotic, wall", PHANTOM_CASES)
def test_phantom_lesion_every_kind_from_any_interior_click(ph2, runs, kind, diameter, necrotic, wall):
    """Lesions painted by imagio.phantom.lesions (blur and noise as the phantom's): Dice >= 0.85
    from the centre and from 3 random interior clicks (seeded; >= 5 mm inside, or 60 % of the
    deepest point), volumes within 15 %; the type found is the painted one's family."""
    ph, c, truth = _painted(runs, ph2, kind, diameter, necrotic, wall)
    if wall:  # flat against the chest wall: muscle or rib next to it
        wall_vals = [v for v, n in ph.labels.labels.items() if n in ("muscle", "diaphragm") or n.startswith("rib_")]
        assert np.isin(ph.labels.array[ndimage.binary_dilation(truth, iterations=2)], wall_vals).any()
    vols = []
    for i, q in enumerate([c] + list(_interior_clicks(truth, ph.ct, 3, seed=0))):
        # the centre of the 100 mm mass is also test_phantom_100mm_mass_partial_outline_is_flagged's
        m, meas = _seg(runs, ("phantom", kind, diameter, necrotic, wall), ph.ct, q) if i == 0 else segment_lesion(ph.ct, q)
        assert dice(m, truth) >= 0.85, (q, dice(m, truth))
        assert meas.kind == ("soft_tissue" if kind.startswith(("liver", "soft")) else "lung_nodule")
        assert not any("necrotic or cystic centre" in w for w in meas.warnings)
        vols.append(meas.volume_ml)
    assert max(vols) <= 1.15 * min(vols)
    if kind in ("solid", "part_solid", "ground_glass", "calcified"):
        assert meas.subtype == kind
    if kind == "mass":
        assert meas.subtype == "mass"


def test_phantom_100mm_mass_whole_from_clicks_off_its_middle(ph2, runs):
    """The 100 mm necrotic mass against the chest wall, filling the right lung's cross-section and
    lying on the heart (the case of the test above): the per-slice lung envelope cut it at the
    chord of the lung crescent's hull (no lung lies between it and the chest wall) and its middle
    slices lay in a concavity larger than the lung beside it. Clicks off its middle gave parts,
    flagged only (Dice 0.49 / 0.27 / 0.03 before `_displaced_mass`: 166, 54 and 5.4 mL of 340 mL;
    the centre 0.84, the heart taken in and the chest-wall side cut). The mass is read as the
    dense tissue that the lung roofs and floors along S, split from the denser heart: every one
    of these clicks gives the whole mass (measured 0.95), without the warning that the lung
    encloses much more dense tissue. (The outside check may still flag the centre click: a probe
    in the chest wall beside it grows the old envelope's 54 mL part, 92 % inside, union 327 mL.)"""
    ph, c, truth = _painted(runs, ph2, "mass", 100.0, 0.5, True)   # as the 100 mm case of the test above
    clicks = list(_interior_clicks(truth, ph.ct, 10, seed=0))
    vols = []
    for i, q in enumerate([c, clicks[4], clicks[6], ph.ct.kji_to_world(np.array([[147.0, 79.0, 106.0]]))[0]]):
        m, meas = _seg(runs, ("phantom", "mass", 100.0, 0.5, True), ph.ct, q) if i == 0 else segment_lesion(ph.ct, q)
        assert dice(m, truth) >= 0.85, (i, q, dice(m, truth), meas.volume_ml, meas.warnings)
        assert meas.kind == "lung_nodule" and meas.subtype == "mass", meas.warnings
        assert not any("much smaller than the dense tissue enclosed by lung" in w for w in meas.warnings), meas.warnings
        # the heart it lies on is left out (its 2-voxel boundary layer aside: partial volume)
        assert not ndimage.binary_erosion(ph.labels.mask("heart"), iterations=2)[m].any()
        vols.append(meas.volume_ml)
    assert max(vols) <= 1.15 * min(vols)


def test_phantom_100mm_mass_on_a_non_contrast_heart_is_not_joined_to_it_unflagged():
    """The same 100 mm mass on the phantom's native phase: the heart has the mass's density
    (myocardium and blood 40 HU), so the reading bounded by the lung along S (`_displaced_mass`)
    cannot tell the two apart and is not taken (joined, it is the mass and the heart). What must
    hold: no result takes in the heart, or falls below Dice 0.85, without a flag (measured: the
    envelope's outlines, Dice 0.84 / 0.79 / 0.78 click-dependent, 0.03 'part of a mass', as
    before the displaced reading existed; the same with the one-tissue rule removed: the joined
    reading fails the function's other conditions too)."""
    import copy

    from imagio import phantom
    from imagio.phantom.lesions import insert_lesion

    ph = phantom.generate(spacing=2.0, seed=0, phase="native")
    base = copy.deepcopy(ph)
    c = _place(base, LUNG_LOBES, 50.0, True)
    les = insert_lesion(ph, "mass", c, 100.0, necrotic_fraction=0.5, seed=1)
    truth = ph.labels.array == les.label_value
    heart = ndimage.binary_erosion(ph.labels.mask("heart"), iterations=2)
    assert abs(float(np.median(ph.ct.array[heart])) - float(np.median(ph.ct.array[truth]))) < 40
    for q in [c] + list(_interior_clicks(truth, ph.ct, 3, seed=0)):
        m, meas = segment_lesion(ph.ct, q)
        flagged = meas.click_dependent or meas.part_of_mass
        assert flagged or (dice(m, truth) >= 0.85 and not heart[m].any()), (q, dice(m, truth), meas.warnings)


def test_phantom_necrotic_soft_tissue_tumour_right_or_flagged(ph2):
    """Known limit: a soft-tissue tumour (40 mm, 30 % necrotic centre) clicked on its centre is
    typed from the click against its own rim and gives the core (measured Dice 0.46 from three
    of four clicks, 0.97 from the one on the rim). What must hold: a result below Dice 0.85
    carries the warning that the click may be on a necrotic centre."""
    import copy

    from imagio.phantom.lesions import insert_lesion

    ph = copy.deepcopy(ph2)
    c = _soft_tissue_site(ph, 20.0)
    les = insert_lesion(ph, "soft_tissue", c, 40.0, necrotic_fraction=0.3, seed=1)
    truth = ph.labels.array == les.label_value
    for q in [c] + list(_interior_clicks(truth, ph.ct, 3, seed=0)):
        m, meas = segment_lesion(ph.ct, q)
        assert dice(m, truth) >= 0.85 or any("necrotic or cystic centre" in w for w in meas.warnings), \
            (q, dice(m, truth), meas.warnings)


def test_nodule_touching_a_vessel_does_not_take_the_vessel_tree(ph2):
    """A 12 mm solid nodule painted 1 mm into a pulmonary vessel near the hilum: the vessel is
    wider than the opening that separates lesions from attachments, and the region used to run
    through it into the mediastinum (377 mL for a 1 mL nodule). The watershed split from larger
    blobs keeps it near the nodule (measured 3.4 mL, Dice 0.45: a stub of vessel stays, a known
    limit); a 20 mm nodule touching a vessel is exact (Dice >= 0.85)."""
    import copy

    import edt

    from imagio.phantom.lesions import insert_lesion

    lung = ph2.labels.mask(*LUNG_LOBES, "lung_vessels")
    ves = ph2.labels.mask("lung_vessels")
    dl = edt.edt(lung, anisotropy=tuple(ph2.labels.spacing_kji))
    dv = edt.edt(~ves, anisotropy=tuple(ph2.labels.spacing_kji))
    for diameter, bound in ((12.0, None), (20.0, 0.85)):
        r = diameter / 2
        cand = np.argwhere((dl > r + 6) & (np.abs(dv - (r - 1.0)) < 0.8))
        c = ph2.labels.kji_to_world(cand[len(cand) // 3][None].astype(float))[0]
        ph = copy.deepcopy(ph2)
        les = insert_lesion(ph, "solid", c, diameter, seed=1)
        truth = ph.labels.array == les.label_value
        assert (ndimage.binary_dilation(truth) & ph.labels.mask("lung_vessels")).any()  # touches
        m, meas = segment_lesion(ph.ct, c)
        assert meas.volume_ml <= 5 * truth.sum() * ph.ct.voxel_volume_ml, meas.volume_ml
        if bound:
            assert dice(m, truth) >= bound


STS_008_EDGE_CLICK = np.array([-174.8, 0.0, -191.2])


@pytest.mark.data
@pytest.mark.slow
def test_sarcoma_overshoot_from_an_edge_click_is_refused_or_cut_back(shared_data, runs):
    """STS_008, a 28 mL thigh sarcoma of muscle density on non-contrast CT: the deepest point
    and the first 5 of 8 seeded clicks >= 5 mm inside the mask (seed 7, those of
    ``python -m benchmarks.bench_lesion``'s extra clicks: the 5th, R,A,S = (-172.9, 0.0, -191.2),
    lies at the tumour's anterior edge, where the old code flooded the thigh's muscle, 499 mL,
    Dice 0.10, with only an "unreliable" warning), and a click 2 mm beside it (``STS_008_EDGE_CLICK``,
    one of seed 7's 5 clicks: old code 731 mL, Dice 0.07, the size new-user trial 4 saw). The independent check is the reference
    mask: every outline handed out overlaps it (Dice >= 0.5), and one of more than twice its
    volume says that it was cut back or that its volume depends on the click; an overshoot
    whose core lies away from the click is refused (ImagioError, no volume handed out); the
    deepest point gives an outline."""
    from imagio.errors import ImagioError

    ct, ref = _sts(runs, shared_data, "STS_008")
    ref_ml = ref.sum() * ct.voxel_volume_ml
    depth = edt.edt(ref, anisotropy=tuple(ct.spacing_kji))
    deepest = ct.kji_to_world(np.argwhere(depth == depth.max())[:1].astype(float))[0]
    given = []
    for i, click in enumerate([deepest] + list(_interior_clicks(ref, ct, 8, seed=7)[:5]) + [STS_008_EDGE_CLICK]):
        try:
            m, meas = segment_lesion(ct, click)
        except ImagioError as e:
            assert i > 0 and "no stable lesion outline" in str(e), (click, str(e))
            continue
        given.append(i)
        assert dice(m, ref) >= 0.5, (click, meas.volume_ml, ref_ml, dice(m, ref))
        if meas.volume_ml > 2.0 * ref_ml:  # an outline more than twice the tumour's says so
            assert any(w.startswith("the region grown from the click") and "unreliable" in w
                       for w in meas.warnings), (click, meas.volume_ml, meas.warnings)
    assert 0 in given and len(given) >= 4, given


def _necked_phantom(lobe_at_edge: bool, neck_mm: float):
    """(mask, seed index, spacing, sphere mask): on a thigh-CT grid (3 mm slices, 0.8 mm pixels),
    a 20 mm-radius mass, and beside it a 12 mm-radius blob joined to it through a rod of
    ``neck_mm`` radius: a cylinder along S through the whole image (a muscle running out of the
    field of view) when ``lobe_at_edge``, else a 14 mm-radius sphere inside the image (a lobe)."""
    sk = np.array([3.0, 0.8, 0.8])
    k, j, i = np.meshgrid(*[np.arange(n) * s for n, s in zip((40, 120, 120), sk)], indexing="ij")
    sphere = (k - 60) ** 2 + (j - 48) ** 2 + (i - 30) ** 2 <= 20 ** 2
    if lobe_at_edge:
        other = (j - 48) ** 2 + (i - 72) ** 2 <= 12 ** 2
    else:
        other = (k - 60) ** 2 + (j - 48) ** 2 + (i - 68) ** 2 <= 14 ** 2
    rod = ((k - 60) ** 2 + (j - 48) ** 2 <= neck_mm ** 2) & (i >= 30) & (i <= 72)
    seed = (20, 60, 30)  # [k, j, i] index 6 mm from the mass's centre
    return sphere | other | rod, seed, sk, sphere


def test_necked_leak_running_out_of_the_image_is_cut_and_a_lobe_is_kept():
    """``_necked_parts``: a muscle of the lesion's density (a 12 mm-radius cylinder through the
    whole image) joined to a 20 mm-radius mass through a 4 mm-radius neck (narrower than half
    the muscle's thickness) is cut off; the mass is kept whole (Dice of what remains against the
    analytic sphere, an independent check). The same neck to a lobe enclosed in the image (a
    lobulated tumour), and a muscle joined broadly (a 12 mm neck: no neck) are not cut."""
    from imagio.segmentation.lesion import _necked_parts

    m, seed, sk, sphere = _necked_phantom(lobe_at_edge=True, neck_mm=4.0)
    assert m[seed] and sphere[seed]
    cut = _necked_parts(m, seed, sk)
    assert cut.any()
    assert dice(m & ~cut, sphere) >= 0.95, dice(m & ~cut, sphere)
    assert not (cut & sphere).any()
    m, seed, sk, _ = _necked_phantom(lobe_at_edge=False, neck_mm=4.0)
    assert not _necked_parts(m, seed, sk).any()  # an enclosed lobe is part of the lesion
    m, seed, sk, _ = _necked_phantom(lobe_at_edge=True, neck_mm=12.0)
    assert not _necked_parts(m, seed, sk).any()  # joined broadly: one mass, no neck


@pytest.mark.data
@pytest.mark.slow
def test_sarcoma_leak_through_a_neck_that_regrows_to_itself_is_cut(shared_data):
    """STS_014, a 423 mL thigh sarcoma of muscle density on non-contrast CT: the click at
    R,A,S = (99.6, 16.6, 981.6) (one of ``benchmarks.bench_lesion``'s extra clicks, seed 7)
    grew 1448 mL, Dice 0.44, through a neck into the thigh's muscles out of the image; its own
    core gives it back, so the regrowth check cannot see it, and it carried only the
    "edge of the image ... unreliable" warning. The independent check is the reference mask:
    the outline handed out overlaps it with Dice >= 0.6 and says that it was cut; the deepest
    point's outline (no neck) is not cut."""
    from imagio import io

    d = shared_data / "sts-sarcoma" / "STS_014"
    ct = io.read_image(d / "CT_image.nii.gz")
    ref = io.read_image(d / "CT_mask.nii.gz").resample_like(ct, order=0).array > 0
    m, meas = segment_lesion(ct, np.array([99.6, 16.6, 981.6]))
    assert dice(m, ref) >= 0.6, (meas.volume_ml, dice(m, ref))
    assert any("was cut to its compact part" in w for w in meas.warnings), meas.warnings
    depth = edt.edt(ref, anisotropy=tuple(ct.spacing_kji))
    deepest = ct.kji_to_world(np.argwhere(depth == depth.max())[:1].astype(float))[0]
    m, meas = segment_lesion(ct, deepest)
    assert not any("was cut to its compact part" in w for w in meas.warnings), meas.warnings
    assert dice(m, ref) >= 0.7, (meas.volume_ml, dice(m, ref))


def _oblique_limb(n, spacing, euler_deg, fat_radius, muscle_radius):
    """(empty Volume, RAS offsets (x, y, z) from the grid's centre, that centre, HU array) of a
    limb along the grid's S-ish axis on an oblique grid of ``n`` (i, j, k) voxels of ``spacing``
    mm, rotated by the x-y-z Euler angles ``euler_deg``: air, fat at -100 HU within
    ``fat_radius`` mm of the axis, muscle at 50 HU within ``muscle_radius``."""
    from scipy.spatial.transform import Rotation

    d = Rotation.from_euler("xyz", list(euler_deg), degrees=True).as_matrix()
    m = make_ijk_to_ras(spacing, (0.0, 0.0, 0.0), d)
    centre = m[:3, :3] @ (np.array(n) / 2.0) + m[:3, 3]
    vol = Volume(np.zeros(n[::-1], np.int16), m)
    x, y, z = (ras_coordinate(vol, r) - centre[r] for r in range(3))
    rad = np.sqrt(x ** 2 + y ** 2)
    a = np.full(vol.shape, -1000.0)
    a[rad <= fat_radius] = -100.0
    a[rad <= muscle_radius] = 50.0
    return vol, (x, y, z), centre, a


def _limb_with_tumour(contrast_hu, spacing=(0.8, 0.8, 2.0), noise=10.0, seed=0):
    """A limb on an oblique grid (anisotropic voxels): air, a 5 mm fat rim, muscle at 50 HU and a
    14 mm-radius tumour at 50 + ``contrast_hu`` HU in the muscle, blurred and noisy. Returns
    (ct, tumour mask, muscle HU)."""
    vol, (x, y, z), centre, a = _oblique_limb((120, 120, 40), spacing, (12, -8, 20), 45.0, 40.0)
    tum = x ** 2 + y ** 2 + z ** 2 <= 14.0 ** 2
    a[tum] = 50.0 + contrast_hu
    a = ndimage.gaussian_filter(a, 0.7) + np.random.default_rng(seed).normal(0, noise, a.shape)
    return vol.with_array(np.rint(a).astype(np.int16)), tum, 50.0, centre


@pytest.mark.parametrize("contrast, expected", [(-40.0, "hypoattenuating"), (35.0, "hyperattenuating"),
                                                 (4.0, "iso-attenuating"), (-6.0, "iso-attenuating")])
def test_soft_tissue_subtype_is_judged_against_the_host_tissue(contrast, expected):
    """The attenuation subtype of a soft-tissue lesion compares it with the tissue around it
    (lesion.json ``iso_attenuation_margin_hu``: 10 HU): a tumour 40 HU below / 35 HU above the
    muscle it lies in is hypo- / hyperattenuating, one 4 or 6 HU from it is iso-attenuating
    (main typed every tumour of muscle density "hyperdense" from the click's neighbourhood).
    Checked on the painted tumour (the typing alone) and, where the tumour has an edge, on the
    one-click outline; the host's HU comes out as the painted muscle's (independent figure)."""
    from imagio.segmentation.lesion import attenuation_subtype

    ct, tum, muscle_hu, centre = _limb_with_tumour(contrast)
    sub, host = attenuation_subtype(tum, ct.array, ct.spacing_kji)
    assert sub == expected, (sub, host)
    assert abs(host - muscle_hu) <= 3.0, host
    if abs(contrast) >= 20.0:
        m, meas = segment_lesion(ct, centre)
        assert dice(m, tum) >= 0.85, dice(m, tum)
        assert meas.subtype == expected and abs(meas.host_hu - muscle_hu) <= 3.0, (meas.subtype, meas.host_hu)


def test_subtype_of_a_tumour_in_fat_and_inside_an_organ_mask():
    """A tumour lying in fat is judged against the fat (hyperattenuating); with an organ mask
    the host is read inside the organ only: the same 40 HU tumour is hypoattenuating to a 100 HU
    liver given as the organ, although muscle (50 HU) surrounds the rest of it."""
    from imagio.segmentation.lesion import attenuation_subtype

    ct, tum, _, centre = _limb_with_tumour(0.0)
    a = ct.array.astype(np.float32)
    x = ras_coordinate(ct, 0) - centre[0]
    fat = ~tum & (a > -500)
    a_fat = np.where(fat, -100.0 + (a - 50.0), a)  # the same noise around fat's -100 HU
    sub, host = attenuation_subtype(tum, a_fat, ct.spacing_kji)
    assert sub == "hyperattenuating" and host < -30.0, (sub, host)
    liver = (x < 0) & (a > -500)
    a_liv = np.where(liver & ~tum, a + 50.0, a) - np.where(tum, 10.0, 0.0)  # liver 100, tumour 40
    sub, host = attenuation_subtype(tum, a_liv, ct.spacing_kji, organ=liver)
    assert sub == "hypoattenuating" and abs(host - 100.0) <= 3.0, (sub, host)


def test_no_edge_regrowth_from_the_core_reuses_the_first_search_box(monkeypatch):
    """A tumour of the muscle's HU (no intensity edge: the statistical model) clicked 12 mm off
    its outline's core: the check that grows the outline again from its core (``_check_from_core``)
    runs the statistical model once more on the search box the first outline was taken on, not
    a second ``segment_lesion`` (main ran the whole segmentation twice: the edge rule, the box
    search and the measurements again, 20-80 s instead of 5-25 s on the sarcomas). Counted on
    the calls of ``_segment_box`` (one per search box) and ``_soft_statistical``; the regrowth
    is the outline ``segment_lesion`` gives from the core (Dice >= 0.95, an independent run)."""
    import imagio.segmentation.lesion as L

    ct, tum, _, centre = _limb_with_tumour(4.0)
    calls = {"box": 0, "stat": 0}
    seen = []
    box, stat, regrow = L._segment_box, L._soft_statistical, L._regrow_in_box

    def count_box(*a, **k):
        calls["box"] += 1
        return box(*a, **k)

    def count_stat(*a, **k):
        calls["stat"] += 1
        return stat(*a, **k)

    def keep_regrow(*a, **k):
        out = regrow(*a, **k)
        seen.append((a[3], out))
        return out

    monkeypatch.setattr(L, "_segment_box", count_box)
    monkeypatch.setattr(L, "_soft_statistical", count_stat)
    monkeypatch.setattr(L, "_regrow_in_box", keep_regrow)
    click = centre + np.array([12.0, 0.0, 0.0])
    m, meas = L.segment_lesion(ct, click, kind="soft_tissue")
    assert meas.no_intensity_edge
    assert len(seen) == 1 and seen[0][1] is not None, seen  # the regrowth ran, in the first box
    assert calls["stat"] == calls["box"] + 1, calls  # one statistical model per box + the regrowth
    monkeypatch.undo()
    core, (m2, _) = seen[0]
    # the regrowth ran on the CT's canonical storage (trial 112 F2): its core and mask are of that array
    from imagio.volume import reorient_array

    can, perm, flip = L._canonical_storage(ct)
    m3, _ = segment_lesion(ct, can.kji_to_world(np.asarray(core, float)[None])[0], kind="soft_tissue",
                           _from_core={})
    m3 = reorient_array(m3, perm, flip)
    assert dice(m2, m3) >= 0.95, dice(m2, m3)


@pytest.mark.data
@pytest.mark.slow
def test_sarcoma_in_muscle_is_typed_against_the_muscle(shared_data, runs):
    """STS_010, a thigh sarcoma among muscle on non-contrast CT (main typed it "hyperdense"):
    the subtype from the deepest point agrees with the one computed here independently on the
    reference mask (its median HU against the median of the soft tissue 2-6 mm beyond it, by
    binary dilations, 10 HU margin); the host's HU is within 10 HU of that muscle's."""
    ct, ref = _sts(runs, shared_data, "STS_010")
    a = ct.array.astype(np.float32)
    sk = np.asarray(ct.spacing_kji)
    near = ndimage.binary_dilation(ref, ball_kji(2.0, sk))
    far = ndimage.binary_dilation(ref, ball_kji(6.0, sk))
    shell = far & ~near & (a > -30) & (a < 400)
    lesion_hu, muscle_hu = float(np.median(a[ref & (a > -200) & (a < 400)])), float(np.median(a[shell]))
    want = ("iso-attenuating" if abs(lesion_hu - muscle_hu) <= 10 else
            "hypoattenuating" if lesion_hu < muscle_hu else "hyperattenuating")
    m, meas = _seg(runs, "STS_010", ct, _deepest(ref, ct))  # as test_sarcoma_from_the_centre_...'s first click
    assert meas.subtype == want, (meas.subtype, meas.host_hu, lesion_hu, muscle_hu)
    assert abs(meas.host_hu - muscle_hu) <= 10.0, (meas.host_hu, muscle_hu)


def ball_kji(radius_mm, sk):
    """A ball of ``radius_mm`` on a grid of spacing ``sk`` (k, j, i mm), built here (not the
    library's) for the independent check."""
    h = np.floor(radius_mm / np.asarray(sk)).astype(int)
    g = np.meshgrid(*[np.arange(-n, n + 1) * s for n, s in zip(h, sk)], indexing="ij")
    return sum(x ** 2 for x in g) <= radius_mm ** 2


DEPENDS = "depends on where the click lies"  # the warning's words (main's regrowth check has them too)


def _limb_with_heterogeneous_tumour(dense_hu, rest_hu=35.0, spacing=(0.8, 0.9, 2.5), noise=10.0, seed=0):
    """A limb on an oblique grid (anisotropic voxels): air, subcutaneous fat at -100 HU, muscle
    (30 mm radius) at 50 HU, and in the fat a 16 mm-radius tumour at ``rest_hu`` holding a
    10.5 mm-radius denser part at ``dense_hu`` 2 mm off its centre (a heterogeneous sarcoma: a
    denser part and the rest, as STS_002), blurred and noisy. Returns (ct, tumour mask, denser
    part mask, RAS centre of the denser part, RAS point in the rest)."""
    vol, (x, y, z), centre, a = _oblique_limb((180, 170, 44), spacing, (10, -7, 25), 68.0, 30.0)
    c_t, c_d = np.array([48.0, 0.0, 0.0]), np.array([48.0, 2.0, 0.0])
    tum = (x - c_t[0]) ** 2 + (y - c_t[1]) ** 2 + (z - c_t[2]) ** 2 <= 16.0 ** 2
    dense = tum & ((x - c_d[0]) ** 2 + (y - c_d[1]) ** 2 + (z - c_d[2]) ** 2 <= 10.5 ** 2)
    a[tum] = rest_hu
    a[dense] = dense_hu
    a = ndimage.gaussian_filter(a, 0.7) + np.random.default_rng(seed).normal(0, noise, a.shape)
    return (vol.with_array(np.rint(a).astype(np.int16)), tum, dense, centre + c_d,
            centre + c_t + np.array([0.0, -12.0, 0.0]))


def test_click_in_a_heterogeneous_tumours_denser_part_gives_the_whole_or_says_it_depends(runs):
    """Issue 14 (E2): a tumour with a denser part (85 HU) in a less dense rest (35 HU), in fat,
    on an oblique 0.8 x 0.9 x 2.5 mm grid. Main gave the denser part alone from a click at its
    centre (5.5 mL of a 17.1 mL tumour, Dice 0.48) with no warning: the edge between the two
    parts is a real intensity edge, and the regrowth from the core sees the same part. Asserted
    against the painted tumour (independent): the click in the denser part gives the tumour
    (Dice >= 0.80) or a warning that the outline depends on the click; a click in the rest gives
    the tumour (Dice >= 0.80); a homogeneous tumour of the same shape (the rest's HU throughout)
    gives it with no such warning (no false alarm)."""
    ct, tum, dense, p_dense, p_rest = _limb_with_heterogeneous_tumour(85.0)
    assert tum[tuple(np.rint(ct.world_to_kji(p_dense[None])[0]).astype(int))]
    m, meas = segment_lesion(ct, p_dense)
    assert meas.kind == "soft_tissue"
    d = dice(m, tum)
    assert d >= 0.80 or any(DEPENDS in w for w in meas.warnings), (d, meas.volume_ml, meas.warnings)
    assert d >= 0.80, (d, meas.volume_ml)  # better than a warning: the whole
    m, meas = segment_lesion(ct, p_rest)
    assert dice(m, tum) >= 0.80, (dice(m, tum), meas.volume_ml)
    ct, tum, p_dense, (m, meas) = _heterogeneous_homogeneous(runs)
    assert dice(m, tum) >= 0.80 and not any(DEPENDS in w for w in meas.warnings), (dice(m, tum), meas.warnings)


STS_002_DENSE_CLICK = np.array([-68.36, -123.05, -547.29])


@pytest.mark.data
def test_sarcoma_clicked_in_its_denser_part_gives_the_whole_or_says_it_depends(shared_data, runs):
    """STS_002, a 53.3 mL heterogeneous sarcoma (a denser part above about 55 HU, the rest
    20-55 HU) in the buttock's fat on non-contrast CT: the click of new-user trial 7 (E2,
    ``STS_002_DENSE_CLICK``) lies in the denser part, 3.5 mm from its own outline's core; main
    gave 27.1 mL (Dice 0.60, threshold 55.7-255.6 HU) with no warning. Asserted against the
    reference mask (independent): Dice >= 0.80, or a warning that the outline depends on the
    click; and the volume handed out without that warning is within 15 % of the reference's."""
    ct, ref = _sts(runs, shared_data, "STS_002")
    assert ref[tuple(np.rint(ct.world_to_kji(STS_002_DENSE_CLICK[None])[0]).astype(int))]
    m, meas = segment_lesion(ct, STS_002_DENSE_CLICK)
    warned = any(DEPENDS in w for w in meas.warnings)
    assert dice(m, ref) >= 0.80 or warned, (dice(m, ref), meas.volume_ml, meas.warnings)
    ref_ml = float(ref.sum()) * ct.voxel_volume_ml
    assert warned or abs(meas.volume_ml - ref_ml) <= 0.15 * ref_ml, (meas.volume_ml, ref_ml)


@pytest.mark.data
@pytest.mark.slow
def test_an_outline_that_does_not_hold_its_click_says_so(shared_data, runs):
    """Trial 11 M3: a click in STS_008 (R,A,S -187.5, -3.9, -204.3) came back as an outline of
    the neighbouring muscle, not holding the click (Dice 0.03), warned only as "unreliable". An
    outline handed out either holds the click's voxel (checked on the mask) or says plainly that
    it does not."""
    from imagio.errors import ImagioError

    ct, _ = _sts(runs, shared_data, "STS_008")
    click = np.array([-187.5, -3.9, -204.3])
    try:
        m, meas = segment_lesion(ct, click)
    except ImagioError:
        return   # refused: no outline handed out
    kji = tuple(np.rint(ct.world_to_kji(click[None])[0]).astype(int))
    assert m[kji] or any("does NOT contain the click" in w for w in meas.warnings), meas.warnings


def _limb_with_necrotic_mass(seed=0):
    """A 44 mm soft-tissue mass (45 HU) with a necrotic centre (20 mm across, 20 HU) in a limb on
    an oblique anisotropic grid (0.8 x 0.8 x 2.5 mm): the lateral half of the limb is fat, the
    medial half muscle at 50 HU, within 10 HU of the mass (no intensity edge on that side, as a
    sarcoma against muscle on non-contrast CT); the mass lies in the fat and reaches 10 mm into
    the muscle. Blurred and noisy (12 HU). Returns (ct, mass mask, necrosis mask, RAS offsets)."""
    vol, (x, y, z), centre, a = _oblique_limb((150, 150, 40), (0.8, 0.8, 2.5), (12, -8, 20), 62.0, 58.0)
    rad = np.sqrt(x ** 2 + y ** 2)
    a[(x > 0) & (rad <= 58.0)] = -100.0
    r = np.sqrt((x - 12.0) ** 2 + y ** 2 + z ** 2)
    mass, necrosis = r <= 22.0, r <= 9.9
    a[mass] = 45.0
    a[necrosis] = 20.0
    a = ndimage.gaussian_filter(a, 0.7) + np.random.default_rng(seed).normal(0, 12.0, a.shape)
    return vol.with_array(np.rint(a).astype(np.int16)), mass, necrosis, r


def _necrotic_mass_clicks(scenes):
    """(ct, mass, viable voxels [k, j, i] of the 4 seeded clicks, their RAS points, the
    `segment_lesion` results, iterated in click order, each run on first use): the scene of
    `_limb_with_necrotic_mass` and its clicks in the viable part (>= 5 mm inside the mass and
    outside the necrosis), made once per session in ``scenes`` (the ``lesion_scenes`` fixture:
    two tests here and one of test_lesion_outside assert on them)."""
    def make():
        ct, mass, necrosis, r = _limb_with_necrotic_mass()
        viable = np.argwhere((r >= 9.9 + 5.0) & (r <= 22.0 - 5.0))
        pick = viable[np.random.default_rng(3).choice(len(viable), 4, replace=False)]
        return ct, mass, pick, ct.kji_to_world(pick.astype(float))
    ct, mass, pick, pts = _once(scenes, "necrotic_mass", make)
    runs = (_once(scenes, ("necrotic_mass", i), lambda: segment_lesion(ct, pts[i])) for i in range(len(pts)))
    return ct, mass, pick, pts, runs


def _heterogeneous_homogeneous(runs):
    """(ct, tumour, click in the would-be denser part, `segment_lesion` there) of the homogeneous
    tumour of `_limb_with_heterogeneous_tumour` (35 HU throughout), made once per module."""
    def make():
        ct, tum, _, p_dense, _ = _limb_with_heterogeneous_tumour(35.0)
        return ct, tum, p_dense, segment_lesion(ct, p_dense)
    return _once(runs, "homogeneous", make)


def test_necrotic_mass_without_an_edge_on_one_side_from_clicks_in_its_viable_part(lesion_scenes):
    """Issue 14 (phantom: masses with necrotic centres from any interior click). A click in the
    viable part of a necrotic mass that has no intensity edge on one side: the outline is taken
    without an edge (statistical model) and checked by a regrowth from its core
    (``_check_from_core``). The filled outline's deepest point lies in the necrosis; main
    regrew from there, got the 4 mL necrosis and cut the 45 mL mass back to it (Dice 0.13) or
    refused the click. The core is now sought in the tissue the click lies in (within 10 HU of
    it, ``_core_of``). Clicks: seeded, at least 5 mm inside the mass and 5 mm outside the
    necrosis. Asserted: each gives an outline (no refusal) holding the click, and Dice >= 0.85
    against the mass (necrosis included) or the warning that the outline depends on the click
    (measured on the 4 seeded clicks: main refuses one ("no stable lesion outline"), this
    branch gives it Dice 0.93; the other three give a 3-4.5 mL part of the rim, Dice 0.13-0.19,
    on both, with that warning: a known limit, left open)."""
    from imagio.segmentation.lesion import DEPENDS

    ct, mass, pick, pts, results = _necrotic_mass_clicks(lesion_scenes)
    for p, v, (m, meas) in zip(pts, pick, results):
        assert m[tuple(v)], (p, meas.warnings)
        assert dice(m, mass) >= 0.85 or any(DEPENDS in w for w in meas.warnings), (
            p, dice(m, mass), meas.volume_ml, meas.warnings)


def test_click_dependent_outline_gives_the_range_not_one_volume(lesion_scenes, runs, tmp_path, capsys):
    """Issue 14 (new-user trial 54 M3: Lung_Dx-A0001 clicked at three reader boxes' centres gave
    37.1 / 158.5 / 130.8 mL, each run warning that the volume depends on the click, yet the
    summary printed one figure as the lesion's). The necrotic mass of
    ``_limb_with_necrotic_mass`` (45 mL, no intensity edge against muscle of its density on one
    side) clicked at the four seeded points of the test above gives outlines from about 3 mL to
    about 40 mL. Independent checks: the painted mass's volume and the outlines' own voxel
    counts. Asserted: the clicks' outlines lie more than two-fold apart (the case is
    click-dependent); every outline not within two-fold of the painted mass is marked
    ``click_dependent``, with a range (mL) holding its own volume and spanning more than two-fold,
    a "click-dependent outline" warning, and a summary (``to_dict``, the JSON ``imagio lesion``
    prints) whose ``volume_ml`` is null and whose ``outline_volume_ml`` is the outline's; the
    command prints the same. A homogeneous tumour is not marked (no false alarm). On main the
    measurements had no such field and the summary gave the click's volume alone."""
    from imagio import io
    from imagio.cli import main

    ct, mass, pick, pts, results = _necrotic_mass_clicks(lesion_scenes)
    mass_ml = float(mass.sum()) * ct.voxel_volume_ml
    own, wrong = [], []
    for p, (m, meas) in zip(pts, results):
        v = float(m.sum()) * ct.voxel_volume_ml
        own.append(v)
        d = meas.to_dict()
        assert d["outline_volume_ml"] == pytest.approx(v, abs=1e-3)
        if meas.click_dependent and (meas.leaked or meas.check_leaked):
            # issue 14 (c): an outline the checks grew leaked: said, not given as the range's end
            assert d["volume_ml"] is None and any(w.startswith(("leaked", "click-dependent outline (no volume or range is given)"))
                                                  or "a check click's outline leaked" in w
                                                  for w in meas.warnings), d
        elif meas.click_dependent and meas.volume_range_ml is None:
            # lesion11: a check click grew no lesion (no bottom of a range), or a note says the
            # volume depends on the click with no other volume: no volume, no range, and said
            assert d["volume_ml"] is None and any("not found from a click" in w or DEPENDS in w
                                                  for w in meas.warnings), d
        elif meas.click_dependent:
            lo, hi = meas.volume_range_ml
            # more than two-fold, or more than 15 % with a note that the volume depends on the click
            assert d["volume_ml"] is None and hi > 1.15 * lo and lo - 0.01 <= v <= hi + 0.01, (d, v)
            assert any("click-dependent outline" in w and f"{lo:.1f}-{hi:.1f} mL" in w for w in meas.warnings)
        else:
            assert d["volume_ml"] == pytest.approx(v, abs=1e-3)
        if not mass_ml / 2.0 <= v <= 2.0 * mass_ml:
            wrong.append(p)
            assert meas.click_dependent, (v, mass_ml, meas.warnings)
    assert max(own) > 2.0 * min(own) and wrong, (own, mass_ml)
    path = tmp_path / "ct.nii.gz"
    io.write_image(ct, path)
    click = ",".join(f"{c:.2f}" for c in wrong[0])
    assert main(["lesion", str(path), f"--point={click}", "--out", str(tmp_path / "t.nii.gz"), "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["volume_ml"] is None and out["click_dependent"] is True, out
    assert (out["leaked"] or out["check_leaked"] or out["volume_range_ml"] is None
            or out["volume_range_ml"][1] > 1.15 * out["volume_range_ml"][0]), out
    # review 44 M2: the user's edit (--add the mass's other clicks) is the correction the warning asks
    # for: the edited outline's volume is given (not null, not click-dependent), the range before the
    # edit is said in a note
    m, meas = segment_lesion(ct, wrong[0], include=pts)
    v = float(m.sum()) * ct.voxel_volume_ml
    d = meas.to_dict()
    assert not meas.click_dependent and d["volume_ml"] == pytest.approx(v, abs=1e-3), d
    assert any("before the --add/--remove points edited it" in w for w in meas.warnings), meas.warnings
    ct, tum, p_dense, (m, meas) = _heterogeneous_homogeneous(runs)
    assert not meas.click_dependent and meas.to_dict()["volume_ml"] == pytest.approx(meas.volume_ml, abs=1e-3)


def test_mass_mostly_without_an_edge_says_where_its_border_is_not_seen():
    """A 40 mm tumour at 44 HU lying mostly in muscle at 50 HU (within 10 HU: no intensity edge,
    a sarcoma among muscle on non-contrast CT), its lateral quarter in fat (x > 20 mm), on an
    oblique anisotropic grid, clicked at its centre. Its border is not seen over most of its
    surface, so the outline is a guess there, whatever its Dice on this phantom (main: 0.9 with
    only the general "no clear intensity edge" note): it must say so specifically, with the
    share and the side. Independent check, from the phantom's geometry: the muscle lies on the
    tumour's left (x < 0 in RAS offsets), the fat on its right."""
    vol, (x, y, z), centre, a = _oblique_limb((150, 150, 40), (0.8, 0.8, 2.5), (12, -8, 20), 62.0, 58.0)
    a[(x > 20.0) & (np.sqrt(x ** 2 + y ** 2) <= 58.0)] = -100.0
    tum = (x - 10.0) ** 2 + y ** 2 + z ** 2 <= 20.0 ** 2
    a[tum] = 44.0
    a = ndimage.gaussian_filter(a, 0.7) + np.random.default_rng(0).normal(0, 12.0, a.shape)
    ct = vol.with_array(np.rint(a).astype(np.int16))
    m, meas = segment_lesion(ct, ct.kji_to_world(np.argwhere(tum).mean(0)[None])[0])
    w = [s for s in meas.warnings if "intensity edge along only" in s]
    assert w and meas.edge_support < 0.5, (dice(m, tum), meas.edge_support, meas.warnings)
    sides = w[0].split("mostly on its ")[1].split(" side")[0]
    assert "left" in sides and "right" not in sides, w[0]


def test_forced_kind_that_the_region_contradicts_is_warned(ph2, runs, tmp_path, capsys):
    """Trial LOW: `imagio lesion --kind soft_tissue` on a lung nodule gave a fraction of it
    (phantom part-solid 20 mm nodule: 0.25 of 4.1 mL) without a word. The forced outline is
    checked against the painted truth here (it misses much of it), and the CLI must say that the
    region reads as a lung lesion; without --kind, or with the right one, no such line."""
    import json

    from imagio import io
    from imagio.cli import main

    ph, c, truth = _painted(runs, ph2, "part_solid", 20.0, 0.0, False)   # the phantom case's nodule
    ct_file = tmp_path / "ct.nii.gz"
    io.write_image(ph.ct, ct_file)
    said = {}
    for kind in ("soft_tissue", "lung_nodule", None):
        out = tmp_path / f"{kind}.nii.gz"
        argv = ["lesion", str(ct_file), "--point", ",".join(f"{v:.2f}" for v in c), "--out", str(out), "--quiet"]
        assert main(argv + (["--kind", kind] if kind else [])) == 0
        res = json.loads(capsys.readouterr().out)
        said[kind] = [w for w in res["warnings"] if "type was forced" in w]
        if kind == "soft_tissue":
            m = io.read_labels(out).array > 0
            assert dice(m, truth) < 0.85          # the forced model misses the nodule: the scene of the test
    assert said["soft_tissue"] and "'lung_nodule'" in said["soft_tissue"][0]
    assert not said["lung_nodule"] and not said[None]


@pytest.mark.data
def test_sarcoma_whose_border_is_not_seen_on_ct_says_so(shared_data, runs):
    """STS_010, a 183 mL thigh sarcoma among muscle on non-contrast CT. Independent check, from
    the reference mask (not the tool's figures): the tumour's median HU (more than 3 mm inside)
    lies within 10 HU of the soft tissue 2-6 mm around it (29 against 33 HU): its border is not
    seen on this CT. The one-click result from the mask's centroid (Dice 0.71, 175 mL on main,
    with the general "no clear intensity edge" note and a click-dependence note) must say
    specifically that most of its boundary has no intensity edge. Main has no such warning."""
    ct, ref = _sts(runs, shared_data, "STS_010")
    a = ct.array
    sk = tuple(ct.spacing_kji)
    d_in = ndimage.distance_transform_edt(ref, sampling=sk)
    d_out = ndimage.distance_transform_edt(~ref, sampling=sk)
    host = (d_out > 2) & (d_out <= 6) & (a > -30) & (a < 400)
    assert abs(float(np.median(a[(d_in > 3) & (a > -30)])) - float(np.median(a[host]))) <= 10.0
    centroid = ct.kji_to_world(np.argwhere(ref).mean(0)[None])[0]
    m, meas = segment_lesion(ct, centroid)
    if dice(m, ref) < 0.80:
        assert meas.edge_support is not None and meas.edge_support < 0.5, (dice(m, ref), meas.edge_support)
        assert any("intensity edge along only" in w for w in meas.warnings), meas.warnings


@pytest.mark.data
@pytest.mark.slow
def test_lung_pet_ct_dx_edge_click_inside_boxes_or_warned(shared_data, runs):
    """New-user trial 19 HIGH-2: Lung_Dx-A0001 clicked at the box centre of the mass's caudal
    box slice (42; inside the tumour, 34 HU). Measured before: a 168 mL "lung_nodule" spanning
    slices 34-51 along the hilum and mediastinum, 35 % inside the collection's boxes, with only
    the 5 mm-section warning. Independent check: the collection's boxes. Asserted: the result
    lies mostly inside the boxes (>= 80 %) within the boxes' slices (+-1), or it carries a
    warning that it depends on the click, leaked or reached the size limit."""
    ct, rows = _dx(runs, shared_data)
    boxes = _dx_boxes(ct, rows)
    r = rows[0]
    click = np.array([-float(r["centre_lps_x"]), -float(r["centre_lps_y"]), float(r["centre_lps_z"])])
    assert boxes[tuple(np.rint(ct.world_to_kji(click[None])[0]).astype(int))]
    m, meas = segment_lesion(ct, click)
    inside = (m & boxes).sum() / m.sum()
    ks, kb = np.flatnonzero(m.any((1, 2))), np.flatnonzero(boxes.any((1, 2)))
    right = inside >= 0.80 and ks.min() >= kb.min() - 1 and ks.max() <= kb.max() + 1
    warned = any(("depends on where the click" in w or "size limit" in w or "irregular" in w
                  or "leaked" in w) for w in meas.warnings)
    assert right or warned, (inside, ks.min(), ks.max(), meas.volume_ml, meas.warnings)


def _same_world_mask(m, vol, ref):
    """``m`` (a mask on ``vol``'s grid) on ``ref``'s grid, voxel for voxel (the grids hold the
    same voxel centres in another axis order)."""
    kji = np.rint(ref.world_to_kji(vol.kji_to_world(np.argwhere(m).astype(float)))).astype(int)
    out = np.zeros(ref.shape, bool)
    out[tuple(kji.T)] = True
    return out


@pytest.mark.data
@pytest.mark.slow
def test_lesion_does_not_depend_on_axis_order(shared_data, runs):
    """New-user trial 19 MEDIUM-3: the same CT flipped along z (identical world geometry) gave
    35.4 instead of 58.9 mL at the box centre of slice 46 (Dice 0.75): the probe click of
    ``_whole_around_part`` was the first voxel of a distance-map plateau in storage order.
    Asserted: the z-flipped and the in-plane transposed copies give the same mask in world
    space (Dice >= 0.98)."""
    import SimpleITK as sitk

    from imagio import io

    ct, _ = _dx(runs, shared_data)
    click = DX_CLICK
    m0, _ = _seg(runs, "dx", ct, click)
    im = io.volume_to_sitk(ct)
    for img in (sitk.Flip(im, [False, False, True]), sitk.PermuteAxes(im, [1, 0, 2])):
        v = io.volume_from_sitk(img)
        m, _ = segment_lesion(v, click)
        back = _same_world_mask(m, v, ct)
        dice = 2 * (back & m0).sum() / (back.sum() + m0.sum())
        assert dice >= 0.98, (dice, m.sum(), m0.sum())


def _tilted(img, axis: int, deg: float):
    """The SimpleITK image ``img`` resampled (trilinear, -1024 outside) onto a grid with the same
    spacing whose axes are rotated by ``deg`` about world axis ``axis`` (0: x, 1: y), covering
    the rotated image's box: the same patient, stored on an oblique grid (a reformat)."""
    import SimpleITK as sitk

    c, s = np.cos(np.deg2rad(deg)), np.sin(np.deg2rad(deg))
    rot = np.array([[1, 0, 0], [0, c, -s], [0, s, c]]) if axis == 0 else np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    d = rot @ np.array(img.GetDirection()).reshape(3, 3)
    size, sp = np.array(img.GetSize()), np.array(img.GetSpacing())
    corners = np.array([img.TransformContinuousIndexToPhysicalPoint([float(a * (size[0] - 1)), float(b * (size[1] - 1)),
                                                                      float(e * (size[2] - 1))])
                        for a in (0, 1) for b in (0, 1) for e in (0, 1)]) @ d
    lo, hi = corners.min(0), corners.max(0)
    n = np.ceil((hi - lo) / sp).astype(int) + 1
    return sitk.Resample(img, [int(v) for v in n], sitk.Transform(), sitk.sitkLinear, tuple(d @ lo), tuple(sp),
                         tuple(d.ravel()), -1024, img.GetPixelID())


def _on_grid(m, vol, ref):
    """The mask ``m`` on ``vol``'s grid brought onto ``ref``'s (trilinear, >= 0.5)."""
    from imagio.volume import Volume

    return Volume(m.astype(np.float32), vol.ijk_to_ras).resample_like(ref, order=1, fill=0.0).array >= 0.5


def _cropped(img, centre_kji, box_mm: float):
    """The SimpleITK image ``img`` cut to a box of ``box_mm`` (each axis, clipped to the image)
    centred on the array index ``centre_kji``: a smaller field of view, as a user exports it."""
    sp, size = np.array(img.GetSpacing()), np.array(img.GetSize())
    c, h = np.asarray(centre_kji, float)[::-1], box_mm / 2 / sp
    lo, hi = np.maximum(np.floor(c - h).astype(int), 0), np.minimum(np.ceil(c + h).astype(int), size)
    return img[int(lo[0]):int(hi[0]), int(lo[1]):int(hi[1]), int(lo[2]):int(hi[2])]


@pytest.mark.data
@pytest.mark.slow
def test_lesion_on_an_oblique_grid_is_the_patients(shared_data):
    """New-user trial 29 M4: lung2's mass on its CT resampled onto a grid tilted 20 degrees about
    R (the same patient, a reformat) gave 35.4 / 35.4 / 29.7 mL by click (kind flipping), Dice
    0.81 against the label, no click warning; its own grid gives 40.0-40.3 mL for every click.
    Cause: the lung envelope (per-slice convex hull), the per-slice hole filling and the columns
    along S ran on the tilted storage slices. Fixed by taking those per-slice rules in the
    patient's axial planes (`lesion._Planes`). Issue 14 (lesion18): the same CT first cut to a
    120 mm box round the mass (a smaller field of view, as a user exports it) and then tilted
    was "soft_tissue" 26.2-27.5 mL for every click (Dice 0.75-0.77 with the original outline),
    with no warning: the crop's faces cut the lung, so the tilted grid's fill (-1024) meets lung
    and tissue, not the noisy outside air by which `padding.padding_mask` told padding;
    the fill was taken for measured air, joined the cut lung, and their joint median read as
    gas (no lung round the mass). Fixed there: a fill beside noisy measured data whose data
    region is convex (a resampler's) is padding. Asserted, on that cropped and tilted copy
    (both failures): from the label's centroid and two interior clicks, the same type as the
    original grid, a volume within 5 % of it, and an outline whose Dice with the original grid's
    outline is >= 0.9. Measured: lung_nodule 38.6 / 38.2 / 38.4 mL (original 40.0), Dice
    0.929-0.931 (the whole tilted CT gave 38.4 / 38.1 / 38.2 mL, 0.924-0.926); the crop makes
    the test about 2x cheaper than on the whole tilted CT (79 against 167 CPU-s, same machine).
    Lesion20: the original grid's outline is the centroid's on the CT cut to 100 mm round the
    mass (the whole CT's voxel for voxel, made once for three tests), not on the whole CT, and
    one interior click, not two (each about 29 CPU-s on the tilted copy): the CPU the lung
    envelope's joined pieces add to the other clicks is paid for."""
    from imagio import io

    d = shared_data / "pyradiomics-lung"
    ref = io.read_image(d / "lung2_label.nrrd")
    # the original grid's outline: the centroid's on the CT cut to 100 mm round the mass, the whole
    # CT's outline voxel for voxel (40.04 mL both; shared with the field-of-view tests)
    img, centre, centroid, whole, m0, meas0 = _lung2_on_a_100mm_box(shared_data)
    ct = io.volume_from_sitk(whole)
    ob = io.volume_from_sitk(_tilted(_cropped(img, centre, 120.0), 0, 20.0))
    for c in [centroid] + list(_interior_clicks(ref.array > 0, ref, 1, seed=3)):
        m, meas = segment_lesion(ob, c)
        back = _on_grid(m, ob, ct)
        dice_0 = 2 * (back & m0).sum() / (back.sum() + m0.sum())
        assert meas.kind == meas0.kind and abs(meas.volume_ml / meas0.volume_ml - 1) <= 0.05 and dice_0 >= 0.9, (
            c, meas.kind, meas.volume_ml, meas0.volume_ml, dice_0, meas.warnings)


@pytest.mark.data
@pytest.mark.slow
def test_lung_pet_ct_dx_mass_type_on_an_oblique_grid(shared_data, runs):
    """New-user trial 29 M3: Lung_Dx-A0001's perihilar mass clicked at (LPS 41.8, 206.6, -209)
    is "soft_tissue" 58.9 mL on its own grid but "lung_nodule" 121.7 mL (into the mediastinum
    above it, Dice 0.51) on the same CT tilted 25 degrees about A. The type flipped on whether
    the edge rule's soft-tissue region at the click closed in the 40 mm box, which hung on the
    median of a shell round a first estimate that ran out of the box (58 HU on the CT, 85 HU on
    the resampled copy). Asserted: the same type on both grids, and a volume within 15 % or the
    warning that it depends on the click. Fixed by reading, where the edge rule's region is open,
    the homogeneous region at the click (`_soft_statistical`) as the closed soft-tissue lesion
    the typing asks for. Measured: soft_tissue 58.9 mL / 30.6 mL, the latter with the click
    warning (17.7 mL from another interior click), Dice 0.65 with the original grid's outline:
    the soft-tissue outline of this necrotic perihilar mass is not yet a property of the patient
    (left open, lesion7 report); base (03ca614): lung_nodule 124.2 mL."""
    import SimpleITK as sitk

    from imagio import io

    path = shared_data / "lung-pet-ct-dx" / "Lung_Dx-A0001_ct.nii.gz"
    click = DX_CLICK
    _, meas0 = _seg(runs, "dx", _dx(runs, shared_data)[0], click)  # as test_lesion_does_not_depend_on_axis_order's
    _, meas = segment_lesion(io.volume_from_sitk(_tilted(sitk.ReadImage(str(path)), 1, 25.0)), click)
    assert meas.kind == meas0.kind, (meas.kind, meas0.kind, meas.volume_ml, meas0.volume_ml)
    close = abs(meas.volume_ml / meas0.volume_ml - 1) <= 0.15
    assert close or any("depends on where the click lies" in w for w in meas.warnings), (meas.volume_ml, meas.warnings)


@pytest.mark.parametrize("spacing", [(1.5, 1.5, 1.5), (0.9, 0.9, 2.0)])
def test_cavitating_solid_nodule_is_solid_with_its_cavity_said(spacing):
    """New-user trial 36 (L5): a 16 mm solid nodule with an air cavity was typed part-solid, its
    air read as a non-solid component (ground glass lies above -700 HU; a cavity is gas). A 20 mm
    solid nodule (30 HU) with a 5 mm-radius air cavity (-1000 HU) at the deepest point of the
    synthetic right lung away from its other structures, clicked on its wall from three sides:
    solid, the cavity inside the outline and said in mL (the test's own count of the cavity's
    voxels); the same nodule without a cavity says nothing of air."""
    ct, t = make_ct(spacing=spacing, noise=12.0)
    others = np.any([m for k, m in t.items() if k not in ("lung_right", "body")], axis=0)
    depth = edt.edt(t["lung_right"] & ~others, anisotropy=tuple(float(v) for v in ct.spacing_kji))
    assert depth.max() > 20.0
    c = ct.kji_to_world(np.array([np.unravel_index(np.argmax(depth), depth.shape)], float))[0]
    x, y, z = (ras_coordinate(ct, r) for r in range(3))
    d = np.sqrt((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2)
    ball, cavity = d <= 10.0, d <= 5.0
    a = ct.array.astype(np.float32)
    noise = np.random.default_rng(3).normal(0, 12.0, a.shape)
    for with_cavity in (True, False):
        b = np.where(ball, 30.0 + noise, a)
        if with_cavity:
            b = np.where(cavity, -1000.0 + noise, b)
        img = ct.with_array(np.rint(b).astype(np.int16))
        cav_ml = float((cavity & (b < -950)).sum()) * ct.voxel_volume_ml
        for off in ([7.5, 0, 0], [0, 7.5, 0], [0, 0, -7.5]):
            mask, meas = segment_lesion(img, tuple(c + off))
            said = [w for w in meas.warnings if "of air (below" in w]
            assert meas.subtype == "solid", (with_cavity, off, meas.subtype)
            assert dice(mask, ball) >= 0.85
            if with_cavity:
                assert mask[cavity].mean() > 0.95                   # the cavity is part of the lesion
                assert len(said) == 1 and f"{cav_ml:.2f} mL" in said[0], meas.warnings
            else:
                assert not said


@pytest.mark.data
def test_a_nodule_on_sections_interpolated_from_thick_ones_is_said(shared_data):
    """New-user trial 44 F3: lung1's 5 mm sections interpolated to 0.7 mm (as a reformat or a
    resampled export gives them) outlined its nodule at +47 % and typed it part-solid with no
    word, where the 5 mm original carries the thick-section warning. The CT's own noise shows
    the resolution along S (`resolution.effective_resolution_mm`): on the interpolated grid the
    result says it (the resolution of about 5-6 mm, the sections' spacing); on the original the
    thick-section warning stays and the new one is not added; the native 1.5 mm chest CTA is not
    taken for interpolated (its noise: ~1.9 mm along S, ratio < 2), nor its sections interpolated
    onto a 0.75 mm grid (~3.1 mm: sections of 1.5 mm, within the limit; review 40 M5)."""
    import SimpleITK as sitk

    from imagio import io
    from imagio.segmentation.lesion import _resolution_along_s

    d = shared_data / "pyradiomics-lung"
    native = io.read_image(d / "lung1_image.nrrd")
    ref = io.read_image(d / "lung1_label.nrrd").array > 0
    centroid = native.kji_to_world(np.argwhere(ref).mean(0)[None])[0]
    im = sitk.ReadImage(str(d / "lung1_image.nrrd"))
    sp = list(im.GetSpacing())
    size = list(im.GetSize())
    size[2], sp[2] = int(size[2] * sp[2] / 1.5), 1.5
    fine = sitk.Resample(im, size, sitk.Transform(), sitk.sitkLinear, im.GetOrigin(), sp, im.GetDirection(),
                         -1024, im.GetPixelID())
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        sitk.WriteImage(fine, f"{tmp}/lung1_z1.5.nii.gz")
        ct = io.read_image(f"{tmp}/lung1_z1.5.nii.gz")
    assert ct.spacing_kji[0] == pytest.approx(1.5)
    _, meas = segment_lesion(ct, centroid)
    said = [w for w in meas.warnings if "noise shows a resolution of about" in w]
    assert len(said) == 1 and "1.5 mm apart" in said[0], meas.warnings
    res = float(said[0].split("resolution of about ")[1].split(" mm")[0])
    assert 4.0 <= res <= 8.0   # the 5 mm sections' blur, read back from the noise
    _, meas5 = segment_lesion(native, centroid)
    assert any("measured on 5 mm sections" in w for w in meas5.warnings)
    assert not any("noise shows a resolution" in w for w in meas5.warnings)
    cta = io.read_image(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz")
    assert _resolution_along_s(cta) is None
    # review 40 M5: the CTA's native 1.5 mm sections interpolated onto a 0.75 mm grid (3.1 mm by its
    # noise) are within Fleischner's limit: not said either
    im = sitk.ReadImage(str(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz"))
    n = im.GetSize()[2]
    crop = im[:, :, n // 2 - 60:n // 2 + 60]
    size, sp = list(crop.GetSize()), list(crop.GetSpacing())
    size[2], sp[2] = 2 * size[2], sp[2] / 2
    half = sitk.Resample(crop, size, sitk.Transform(), sitk.sitkLinear, crop.GetOrigin(), sp, crop.GetDirection(),
                         -1024, crop.GetPixelID())
    with tempfile.TemporaryDirectory() as tmp:
        sitk.WriteImage(half, f"{tmp}/cta_075.nii.gz")
        assert _resolution_along_s(io.read_image(f"{tmp}/cta_075.nii.gz")) is None


@pytest.mark.parametrize("spacing", [(0.8, 0.8, 0.8), (0.8, 0.8, 2.0)])
def test_cavity_behind_a_thin_wall_is_inside_the_outline(spacing):
    """New-user trial 41 M4: a 16 mm solid nodule (30 HU) with a 9 mm air cavity 1.5 mm off its
    centre (a 2 mm wall on one side) came out as its wall only (13.8 instead of 16 mm mean
    diameter: Lung-RADS 4A instead of 4B, Dice 0.81): the opening that cuts attachments
    (``_separate``, half the wall's own inscribed radius) cut the thin wall, and the hole
    filling after it found an open ring. Built like the trial's (its `mkcav.py`: wall 30 HU,
    SD 20; cavity -990 HU, SD 15; blurred 0.6 mm) in aerated lung (-850 HU, SD 30) with a chest
    wall, clicked on the thick wall: the cavity is inside the outline, Dice >= 0.9 with the
    16 mm ball, the mean diameter no shorter than 16 mm less a voxel (the half-maximum edge of
    the blurred wall lies up to two voxels out), the air said. Base (54ae744): the
    cavity 0 % inside, mean diameter 13-14 mm."""
    vol = Volume(np.zeros((int(80 / spacing[2]), 100, 100), np.int16),
                 make_ijk_to_ras(spacing, (-40, -40, -40)))
    x, y, z = (ras_coordinate(vol, r) for r in range(3))
    rng = np.random.default_rng(0)
    a = -850.0 + rng.normal(0, 30, vol.shape)
    a[x > 30] = 40.0 + rng.normal(0, 20, (x > 30).sum())   # chest wall
    r = np.sqrt(x ** 2 + y ** 2 + z ** 2)
    rc = np.sqrt(x ** 2 + (y + 1.5) ** 2 + z ** 2)   # the cavity 1.5 mm posterior
    nodule, cavity = r <= 8.0, rc <= 4.5
    a = np.where(nodule, 30.0 + rng.normal(0, 20, a.shape), a)
    a = np.where(cavity, -990.0 + rng.normal(0, 15, a.shape), a)
    blur = ndimage.gaussian_filter(a, 0.6 / np.asarray(vol.spacing_kji, float))
    ct = vol.with_array(np.rint(np.where(r <= 10.0, blur, a)).astype(np.int16))
    mask, meas = segment_lesion(ct, (0.0, 4.5, 0.0))   # on the 5 mm anterior wall
    assert mask[cavity].mean() > 0.95, mask[cavity].mean()
    assert dice(mask, nodule) >= 0.90, dice(mask, nodule)
    assert 16.0 - max(spacing) <= meas.mean_diameter_mm <= 16.0 + 2 * max(spacing), meas.mean_diameter_mm
    assert any("of air (below" in w for w in meas.warnings), meas.warnings


@pytest.mark.data
@pytest.mark.slow
def test_a_nodule_on_a_grid_interpolated_from_thick_sections_is_typed_from_its_core(shared_data):
    """New-user trial 46 M1: lung1's 5 mm series resampled to 1.5 mm isotropic (an MPR export)
    typed its 15 mm solid nodule "soft tissue" at 0.33 mL ("its core has fat's HU": the core was
    judged one 1.5 mm voxel deep, inside the 5 mm sections' blur), and clicks 3 mm apart gave
    0.33-2.24 mL. The partial-volume layer is as deep as the CT's resolution along S, which its
    noise shows: the nodule is a lung nodule from every click, its volume the same within 10 %."""
    import tempfile

    import SimpleITK as sitk

    from imagio import io

    d = shared_data / "pyradiomics-lung"
    native = io.read_image(d / "lung1_image.nrrd")
    ref = io.read_image(d / "lung1_label.nrrd").array > 0
    centroid = native.kji_to_world(np.argwhere(ref).mean(0)[None])[0]
    im = sitk.ReadImage(str(d / "lung1_image.nrrd"))
    size = [int(n * s / 1.5) for n, s in zip(im.GetSize(), im.GetSpacing())]
    iso = sitk.Resample(im, size, sitk.Transform(), sitk.sitkLinear, im.GetOrigin(), (1.5, 1.5, 1.5),
                        im.GetDirection(), -1024, im.GetPixelID())
    with tempfile.TemporaryDirectory() as tmp:
        sitk.WriteImage(iso, f"{tmp}/lung1_iso1.5.nii.gz")
        ct = io.read_image(f"{tmp}/lung1_iso1.5.nii.gz")
    vols = []
    for off in ((0, 0, 0), (3, 0, 0), (-3, 0, 0), (0, 3, 0), (0, 0, 3)):
        mask, meas = segment_lesion(ct, centroid + np.array(off, float))
        assert meas.kind == "lung_nodule", (off, meas.kind, meas.warnings)
        vols.append(float(mask.sum()) * ct.voxel_volume_ml)   # own volume from the mask
    assert max(vols) <= 1.1 * min(vols), vols


@pytest.mark.parametrize("tumour_hu, host_hu, bounded", [(25.0, 30.0, False), (65.0, 10.0, True)])
def test_midpoint_bound_needs_a_contrast_read_as_distinct(tumour_hu, host_hu, bounded):
    """Issue 14 (lesion7): the statistical soft-tissue model bounds a lesion at the midpoint
    between its median and its surroundings' when the two are bimodal (Ashman's D >= 2). On the
    2 mm-denoised CT the SDs are small (1.5 HU here), so a 5 HU difference (STS_010: a sarcoma
    at 24.5 HU in muscle at 29.9 HU, D 2.08) passed and the midpoint took 78 mL of muscle
    (Dice 0.457 -> 0.395). Two soft tissues within 10 HU are read as iso-attenuating (Hamer 2006),
    so no midpoint is drawn there; a 55 HU contrast (STS_002, a sarcoma in fat-mixed tissue)
    still gets its bound. Geometry and D computed here, independently of the code: a 15 mm ball
    on a 1 x 1 x 3 mm grid, its region shrunk by 3 mm as the homogeneous region stops short."""
    from imagio.segmentation.lesion import _two_class_outline

    sk = (3.0, 1.0, 1.0)
    g = np.mgrid[0:24, 0:70, 0:70].astype(float)
    c = (12, 35, 35)
    d = np.sqrt(sum(((gi - ci) * s) ** 2 for gi, ci, s in zip(g, c, sk)))
    tum = d <= 15.0
    sm = np.where(tum, tumour_hu, host_hu) + np.random.default_rng(0).normal(0.0, 1.5, tum.shape)
    r, core = d <= 12.0, d <= 6.0
    dd = np.sqrt(2.0) * abs(tumour_hu - host_hu) / np.hypot(1.5, 1.5)
    assert dd >= 2.0  # both cases are "bimodal" by D alone
    out = _two_class_outline(r, core, sm.astype(np.float32), np.ones(tum.shape, bool), c, sk, 2.0)
    if bounded:
        assert out is not None and dice(out, tum) >= 0.9, None if out is None else dice(out, tum)
    else:
        assert out is None, int(out.sum())


@pytest.mark.parametrize("spacing", [(1.5, 1.5, 1.5), (0.9, 0.9, 2.0)])
def test_a_compact_fat_ball_in_the_lung_is_fat_not_a_solid_nodule(spacing):
    """Review 44 M1: the fat check judged only masses over 30 mm and calcified lung lesions, so a
    compact fat outline (typed "solid": -100 HU is above ground glass) was graded Lung-RADS 4A/4B
    as a solid nodule. A solid nodule is now judged on its core (the outline eroded by one voxel,
    no partial volume with the lung): a 14 mm fat ball (-100 HU) at the deepest point of the
    synthetic right lung is fat, the same ball at 35 HU is not. Own check: the painted HU."""
    from imagio.segmentation.lesion import fat_density_hu

    ct, t = make_ct(spacing=spacing, noise=12.0)
    others = np.any([m for k, m in t.items() if k not in ("lung_right", "body")], axis=0)
    depth = edt.edt(t["lung_right"] & ~others, anisotropy=tuple(float(v) for v in ct.spacing_kji))
    c = ct.kji_to_world(np.array([np.unravel_index(np.argmax(depth), depth.shape)], float))[0]
    x, y, z = (ras_coordinate(ct, r) for r in range(3))
    ball = (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= 7.0 ** 2
    noise = np.random.default_rng(5).normal(0, 12.0, ct.shape)
    for hu, want_fat in ((-100.0, True), (35.0, False)):
        img = ct.with_array(np.rint(np.where(ball, hu + noise, ct.array)).astype(np.int16))
        m, meas = segment_lesion(img, tuple(c))
        assert meas.kind == "lung_nodule" and meas.subtype == "solid", (meas.kind, meas.subtype)
        assert dice(m, ball) >= 0.8
        got = fat_density_hu(m, img, meas)
        assert (got is not None) == want_fat, (hu, got)
        if want_fat:
            assert abs(got - hu) < 15.0 and meas.fat_density


_LUNG2_BOX = {}


def _lung2_on_a_100mm_box(shared_data):
    """(SimpleITK image of lung2's CT, the label's centroid [k, j, i], its RAS, that CT cut to a
    100 mm box centred on it (`_cropped`), the outline and measurements of a click at the centroid
    there): made once per test process (the tests only read them)."""
    if not _LUNG2_BOX:
        import SimpleITK as sitk

        from imagio import io

        d = shared_data / "pyradiomics-lung"
        img = sitk.ReadImage(str(d / "lung2_image.nrrd"))
        ref = io.read_image(d / "lung2_label.nrrd")
        centre = np.argwhere(ref.array > 0).mean(0)
        click = ref.kji_to_world(centre[None])[0]
        whole = _cropped(img, centre, 100.0)
        _LUNG2_BOX["v"] = (img, centre, click, whole) + segment_lesion(io.volume_from_sitk(whole), click)
    return _LUNG2_BOX["v"]


@pytest.mark.data
def test_a_click_beside_the_lung_envelope_is_typed_from_its_region(shared_data):
    """Issue 14 (lesion20, trial 75): lung2 clicked 1.5 mm inside its label's medial edge
    (R,A,S -40.2, 83.8, -270.0) gave soft_tissue 33.9 mL, not flagged click-dependent, while the
    centre gives a lung nodule of 40.0 mL: the click lies in tissue against the mediastinum that
    the lung's per-slice hull does not enclose, so the lung rule was never tried from it, and
    the type came from where the click lay. The region it grew is bordered by aerated lung over
    27 % (a lung lesion by the region rule, >= 20 %): it is now grown again from its core
    (`lesion._typed_at_core`). Asserted on the CT cut to 100 mm round the mass (the same click
    gave soft_tissue 34.1 mL there before): a lung nodule whose outline is the centre click's
    (Dice >= 0.98; measured 1.000, 40.04 mL, as on the whole CT), with a warning that says it
    was grown from the core of the click's region and that the outline does not hold the click,
    as a doubt on its border near the click (the click's region lies mostly in it), not as
    "another structure" (trial 91 L3). About 2 CPU-s (the centre click's run is shared with the test below)."""
    from imagio import io

    img, centre, click, whole, m_w, meas_w = _lung2_on_a_100mm_box(shared_data)
    m, meas = segment_lesion(io.volume_from_sitk(whole), (-40.2, 83.8, -270.0))
    assert meas.kind == meas_w.kind == "lung_nodule" and dice(m, m_w) >= 0.98, (meas.kind, meas.volume_ml, dice(m, m_w))
    assert any("grown from its core" in w for w in meas.warnings), meas.warnings
    said = [w for w in meas.warnings if "does NOT contain the click" in w]
    assert len(said) == 1, meas.warnings
    # trial 91 L3: the click's region lies mostly in the outline (one structure): the warning says the
    # border near the click is in doubt and how far the click lies outside it, not "another structure"
    assert "another structure" not in said[0] and "mm outside its border" in said[0] and "in doubt" in said[0], said


@pytest.mark.data
def test_lesion_cut_by_the_field_of_view_keeps_what_is_in_it_and_says_so(shared_data):
    """Issue 14: lung2's mass (40.0 mL on the whole CT) on a field of view that cuts it. Lesion19: a
    100 mm box shifted 30 mm towards the patient's left gave 32.2 mL with no warning but the 5 mm
    sections' (the outline stopped 3.8 mm short of the face), a 60 mm box centred on it 24.0 mL:
    the lung envelope, the per-slice hull of a lung that the face cuts, stopped short of the face.
    They now warn that the lesion may continue outside the field of view. Lesion20 (trial 76):
    the shifted box's outline still lost 7.7 mL that is in the image (Dice 0.88 with the whole
    CT's outline in the box): the face cut the medial lung that wraps the mass into pieces. The
    pieces of one lung that reach the same face are hulled as one too
    (`lesion._joined_beyond_the_end`). Asserted, on the shifted box with its i axis flipped
    (the cut face is the array's last i face): the outline reaches the face, matches the
    centred 100 mm box's outline (the whole CT's, 40.0 mL, which warns of nothing) inside the
    box (Dice >= 0.95, volume >= 0.9 of it), and warns that the lesion touches the edge on the
    patient's side of that face, may continue outside and needs a larger field of view; the 60
    mm box still warns. Measured: shifted 37.3 mL against 39.6 in the box, Dice 0.970 (before
    32.2 mL, 0.881; flipped or not, the same outline); 60 mm box 30.2 mL (before 24.0), warned.
    About 4 CPU-s."""
    import SimpleITK as sitk

    from imagio import io
    from imagio.directions import SIDE_NAMES, side_codes
    from imagio.segmentation.lesion import _touched_faces

    img, centre, click, whole, m_w, meas_w = _lung2_on_a_100mm_box(shared_data)
    said = "may continue outside the field of view"
    corner = lambda im: np.array(img.TransformPhysicalPointToIndex(im.GetOrigin()))[::-1]  # noqa: E731
    assert not any(said in w for w in meas_w.warnings) and meas_w.volume_ml > 0.95 * 40.0, (meas_w.volume_ml,
                                                                                          meas_w.warnings)
    shifted = _cropped(img, centre + np.array([0.0, 0.0, 30.0 / img.GetSpacing()[0]]), 100.0)
    ct = io.volume_from_sitk(sitk.Flip(shifted, [True, False, False]))
    m, meas = segment_lesion(ct, click)
    assert (2, 1) in _touched_faces(m), _touched_faces(m)
    face = SIDE_NAMES[int(side_codes(ct.kji_to_world([[0.0, 0.0, ct.shape[2]]]) -
                                      ct.kji_to_world([[0.0, 0.0, ct.shape[2] - 1.0]]))[0])]
    near = [w for w in meas.warnings if said in w and "edge of the image" in w and "larger field of view" in w]
    assert near and f"on its {face} side" in near[0], (face, meas.warnings)
    # the centred box's outline on the shifted box's grid
    m = m[:, :, ::-1]
    off = corner(shifted) - corner(whole)
    want = np.zeros(m.shape, bool)
    src = tuple(slice(max(o, 0), min(o + n, w)) for o, n, w in zip(off, m.shape, m_w.shape))
    want[tuple(slice(s_.start - o, s_.stop - o) for s_, o in zip(src, off))] = m_w[src]
    dice_in = 2 * (m & want).sum() / (m.sum() + want.sum())
    assert dice_in >= 0.95 and m.sum() >= 0.9 * want.sum(), (dice_in, m.sum(), want.sum())
    m, meas = segment_lesion(io.volume_from_sitk(_cropped(img, centre, 60.0)), click)
    near = [w for w in meas.warnings if said in w and "edge of the image" in w and "larger field of view" in w]
    assert near and meas.volume_ml < 0.85 * 40.0, (meas.volume_ml, meas.warnings)


def test_near_field_end_names_the_patients_side_on_an_oblique_grid():
    """`lesion._near_field_end` / `_face_sides` on an oblique, flipped, anisotropic grid (i: 0.7 mm
    along (0.5, -0.866, 0) RAS, so the i = 0 face is the patient's anterior; j: 0.9 mm; k: 2.5 mm
    towards inferior, so the last k face is inferior). A 5 mm-radius ball of 40 HU in -850 HU
    lung, joined by a bar of the same density to the i = 0 face: ending 4.2 mm (6 voxels) from
    that face in tissue of its own density (thresholds -400..600 HU) it is said, with distance
    and side; 9.1 mm away (13 voxels), beyond SHELL_MM[1], or with lung between it and the face,
    it is not; a reformat's padding ends the field as a face does. Milliseconds."""
    from imagio.segmentation.lesion import SHELL_MM, _face_sides, _near_field_end

    c, s = np.cos(np.radians(30.0)), np.sin(np.radians(30.0))
    direction = np.array([[s, c, 0.0], [-c, s, 0.0], [0.0, 0.0, -1.0]])   # columns: i, j, k in RAS
    vol = Volume(np.zeros((12, 40, 50), np.int16), make_ijk_to_ras((0.7, 0.9, 2.5), (0, 0, 0), direction))
    assert _face_sides(vol, [(2, 0), (0, 1), (2, 1)]) == ["anterior", "inferior", "posterior"]
    k, j, i = np.indices(vol.shape)

    def case(gap_vox, bar=True, pad_from=None):
        ci = gap_vox + 7   # the ball (radius 5 mm, 7 voxels along i) ends gap_vox voxels from i = 0
        ball = ((i - ci) * 0.7) ** 2 + ((j - 20) * 0.9) ** 2 + ((k - 6) * 2.5) ** 2 <= 25.0
        a = np.full(vol.shape, -850.0)
        a[ball] = 40.0
        if bar:
            a[(i < ci) & (abs(j - 20) <= 2) & (abs(k - 6) <= 1)] = 40.0
        measured = None
        if pad_from is not None:   # a reformat's fill over i < pad_from (the field ends there)
            measured = i >= pad_from
            a[~measured] = -1024.0
        return _near_field_end(ball, vol.with_array(a.astype(np.int16)), [-400.0, 600.0], measured)

    got = case(6)
    assert got is not None and got[1][0] == "anterior" and abs(got[0] - 7 * 0.7) < 1e-6, got
    assert 7 * 0.7 <= SHELL_MM[1] < 14 * 0.7
    assert case(13) is None
    assert case(6, bar=False) is None
    got = case(13, pad_from=8)
    assert got is not None and got[1][0] == "anterior" and abs(got[0] - 6 * 0.7) < 1e-6, got


def test_oblique_reformat_of_thick_sections_is_said_not_taken_for_its_step(shared_data, tmp_path):
    """New-user trial 100 F6: lung1's 5 mm sections resampled onto a grid tilted 25 degrees about
    L-R and 15 about S, 1 x 1 x 2.5 mm: the one-click lesion said "measured on 2.5 mm sections"
    (the reformat's step). It now names the tilted grid and the resolution its noise shows
    (about the 5 mm sections), as on the axial original it says 5 mm sections."""
    import SimpleITK as sitk

    from conftest import resample_rotated
    from imagio import io

    d = shared_data / "pyradiomics-lung"
    im = sitk.ReadImage(str(d / "lung1_image.nrrd"))
    ct_o, lab_o = resample_rotated(im, sitk.ReadImage(str(d / "lung1_label.nrrd")), 25.0, 15.0, (1.0, 1.0, 2.5), -1024)
    sitk.WriteImage(ct_o, str(tmp_path / "ct.nii.gz"))
    ct = io.read_image(tmp_path / "ct.nii.gz")
    lab = sitk.GetArrayFromImage(lab_o) > 0
    click = ct.kji_to_world(np.argwhere(lab).mean(0)[None])[0]
    _, meas = segment_lesion(ct, click)
    said = [w for w in meas.warnings if w.startswith("measured on")]
    assert len(said) == 1 and "tilted 2.5 mm grid" in said[0] and "2.5 mm sections" not in said[0], meas.warnings
    res = float(said[0].split("resolution of about ")[1].split(" mm")[0])
    assert 3.5 <= res <= 8.0   # the 5 mm sections' blur, read back from the noise
