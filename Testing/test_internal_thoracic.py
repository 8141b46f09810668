"""Parasternal tracks name the internal thoracic (mammary) vessels (new-user trial 91 M3: on the
chest CTA the 2nd proposal to a left upper lobe target entered beside the sternum and passed
2.9 mm from the unlabelled left internal thoracic artery; the plan said only "unlabelled dense
tissue"). The vessels run 10-15 mm (up to 20+ mm) from the sternal border (Glassberg 1990): a
track crossing the anterior chest wall within ``warnings.internal_thoracic_zone_mm`` of the
sternum is warned with its distance; a track farther out is not. Every distance here is checked
against the test's own: the nearest sternum voxel centre to points along the track's chest-wall
part, by brute force."""

from __future__ import annotations

import numpy as np
import pytest

from imagio.planning.internal_thoracic import parasternal_run
from imagio.planning.problem import load_defaults
from imagio.volume import Volume, make_ijk_to_ras

ZONE = float(load_defaults()["warnings"]["internal_thoracic_zone_mm"])
ST, RIB, LUNG = 1, 2, 3


def _chest_wall(direction, spacing, sternum_name="sternum"):
    """Label map (oblique ``direction``, anisotropic ``spacing`` along i, j, k) of a sternum bar
    (RAS |x| < 15, 200 < A < 215, 600 < S < 700), ribs on the left (x 30..150, A 140..200, at three
    levels) and a left lung behind them (x 20..150, A 60..190); RAS mm."""
    aff = make_ijk_to_ras(spacing, (0.0, 0.0, 0.0), direction)
    ext = np.array([230.0, 240.0, 170.0])
    shape_ijk = np.ceil(ext / np.asarray(spacing)).astype(int)
    vol = Volume(np.zeros(shape_ijk[::-1], np.uint8), aff)
    centre = np.array([55.0, 165.0, 650.0])
    # put the grid's centre on ``centre``
    mid = vol.kji_to_world(((np.array(vol.shape) - 1) / 2.0)[None])[0]
    aff = make_ijk_to_ras(spacing, tuple(np.asarray(aff[:3, 3]) + centre - mid), direction)
    vol = Volume(np.zeros(shape_ijk[::-1], np.uint8), aff)
    kji = np.indices(vol.shape, dtype=np.float32).reshape(3, -1).T
    w = vol.kji_to_world(kji).astype(np.float32)
    x, a, s = w[:, 0], w[:, 1], w[:, 2]
    lab = np.zeros(len(w), np.uint8)
    lab[(x > 20) & (x < 150) & (a > 60) & (a < 190) & (s > 580) & (s < 720)] = LUNG
    rib = (x > 30) & (x < 150) & (a > 140) & (a < 200) & (
        (np.abs(s - 620) < 5) | (np.abs(s - 650) < 5) | (np.abs(s - 680) < 5))
    lab[rib] = RIB
    lab[(np.abs(x) < 15) & (a > 200) & (a < 215) & (s > 600) & (s < 700)] = ST
    return vol.with_array(lab.reshape(vol.shape), labels={ST: sternum_name, RIB: "rib_left_4", LUNG: "lung_left"})


def _own_distance(lab, e, t):
    """The test's own: min distance (mm) from points every 0.25 mm along e -> t, up to the first in
    the lung, in front of the ribs' mean A, to the sternum's voxel centres."""
    L = float(np.linalg.norm(np.subtract(t, e)))
    P = np.asarray(e, float) + np.arange(0.0, L, 0.25)[:, None] * (np.subtract(t, e) / L)
    v = lab.sample(P, order=0, fill=0)
    stop = np.flatnonzero(v == LUNG)
    P = P[:stop[0]] if len(stop) else P
    ribs = lab.kji_to_world(np.argwhere(lab.array == RIB).astype(float))
    P = P[(P[:, 1] > ribs[:, 1].mean()) & (lab.sample(P, order=0, fill=0) == 0)]
    st = lab.kji_to_world(np.argwhere(lab.array == ST).astype(float))
    return float(np.sqrt(((P[:, None, :] - st[None, :, :]) ** 2).sum(-1)).min())


@pytest.mark.parametrize("flip,name", [(False, "sternum"), (True, "bone")])
def test_tracks_beside_the_sternum_are_found_with_their_distance(flip, name):
    from conftest import rotation

    d = rotation((1, -2, 3), 18.0) @ (np.diag([-1.0, 1.0, -1.0]) if flip else np.eye(3))
    lab = _chest_wall(d, (0.9, 1.3, 2.0), name)
    for x0 in (22.0, 30.0, 36.0, 48.0, 70.0):   # 7, 15, 21, 33, 55 mm from the sternum's border at x = 15
        e, t = np.array([x0, 250.0, 652.0]), np.array([x0, 120.0, 652.0])   # from in front, straight back
        own = _own_distance(lab, e, t)
        run = parasternal_run(lab, e, t, ZONE)
        if own <= ZONE - 1.0:
            assert run is not None, (x0, own)
            assert abs(run[0] - own) <= 1.0, (x0, run, own)   # 1 mm: the run's sampling step
            assert run[2] > 0
        elif own > ZONE + 1.0:
            assert run is None, (x0, own, run)
    # an oblique track from the lateral chest wall into the lung, far from the sternum: no word
    assert parasternal_run(lab, np.array([160.0, 190.0, 650.0]), np.array([80.0, 120.0, 650.0]), ZONE) is None


def test_no_ribs_no_anterior_wall_no_word():
    """Without ribs the anterior chest wall is not known (the costal check's own rule): no warning
    rather than one on any track near a bone."""
    from conftest import rotation

    lab = _chest_wall(rotation((0, 0, 1), 10.0), (1.0, 1.0, 1.5))
    arr = lab.array.copy()
    arr[arr == RIB] = 0
    lab = lab.with_array(arr, labels={ST: "sternum", LUNG: "lung_left"})
    assert parasternal_run(lab, np.array([25.0, 250.0, 650.0]), np.array([25.0, 120.0, 650.0]), ZONE) is None


@pytest.fixture(scope="module")
def ph():
    from imagio import phantom

    return phantom.generate(spacing=3.0)


def test_phantom_plan_warns_a_parasternal_track_and_not_a_lateral_one(ph):
    """On the phantom (sternum, ribs, lungs labelled), through `internal_thoracic_warnings` with a
    built problem: a track straight back 12 mm beside the sternum is warned naming the vessels; a
    lateral track is not."""
    from imagio.planning import PlanningProblem
    from imagio.planning.internal_thoracic import internal_thoracic_warnings

    lab = ph.labels
    inv = {n: v for v, n in lab.labels.items()}
    prob = PlanningProblem.build(ph.ct, lab, "lung_nodule_1")
    st = lab.kji_to_world(np.argwhere(lab.array == inv["sternum"]).astype(float))
    zmid = float(np.median(st[:, 2]))
    row = st[np.abs(st[:, 2] - zmid) <= 3.0]
    x0 = float(row[:, 0].max()) + 12.0   # 12 mm lateral of the sternum's voxel centres on its left or right
    a0 = float(row[:, 1].max())
    e, t = np.array([x0, a0 + 60.0, zmid]), np.array([x0, a0 - 60.0, zmid])
    w = internal_thoracic_warnings(prob, 2, e, t)
    assert len(w) == 1 and w[0].startswith("proposal 2:") and "internal thoracic (mammary) artery" in w[0], w
    said = float(w[0].split("chest wall ")[1].split(" mm")[0])
    assert said <= 12.0 + 1.0
    mid = float(st[:, 0].mean())
    e, t = np.array([mid + 250.0, a0 - 60.0, zmid]), np.array([mid + 60.0, a0 - 60.0, zmid])
    assert internal_thoracic_warnings(prob, 1, e, t) == []


TRIAL91_TARGET = np.array([-87.3, 162.7, 696.2])   # RAS mm, the trial's left upper lobe target
TRIAL91_ITA = np.array([-15.3, 245.2, 652.7])      # RAS mm, a voxel of the left internal thoracic artery


@pytest.mark.data
def test_chest_cta_parasternal_proposal_beside_the_internal_thoracic_artery_is_warned(shared_data, tmp_path):
    """New-user trial 91 M3, the chest CTA segmented as the trial did: the left internal thoracic
    artery is an unlabelled contrast-filled tube (the 26-connected unlabelled voxels above 150 HU
    holding a voxel of it: 1-3 mL, over 100 mm long along S, beside the sternum). Every proposal
    that passes within 10 mm of it (exact distance from its entry-target segment to the tube's
    voxel centres, here) is warned naming the internal thoracic vessels; a proposal entering the
    lateral chest wall (over 60 mm from the midline) is not."""
    import json

    from scipy import ndimage
    from scipy.spatial import cKDTree

    from imagio import io
    from imagio.planning import PlanningProblem, plan
    from imagio.segmentation.rules import segment

    ct = io.read_image(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz")
    seg = segment(ct, ("body", "bones", "lungs", "airways", "vessels"))   # as the trial made it
    unlabelled = np.isin(seg.array, [0, next(v for v, n in seg.labels.items() if n == "body")])
    free = unlabelled & (np.asarray(ct.array) > 150)
    comp, _ = ndimage.label(free, np.ones((3, 3, 3), bool))
    k = ct.nearest_kji(TRIAL91_ITA[None])[0]
    c = comp[tuple(k)]
    assert c
    pts = ct.kji_to_world(np.argwhere(comp == c).astype(float))
    del comp, free
    ml = len(pts) * ct.voxel_volume_ml
    assert 1.0 < ml < 3.0 and np.ptp(pts[:, 2]) > 100.0, (ml, np.ptp(pts[:, 2]))
    tree = cKDTree(pts)
    prob = PlanningProblem.build(ct, seg, TRIAL91_TARGET)
    result = plan(prob)
    if not result.feasible:
        # since the section calibre (calibre115) 82 of 124 mL of this CTA's lung vessels read >= 3 mm
        # and this deep target has no path: the plan must say that lung vessels block it (open item:
        # the 3 mm project default against an unbiased calibre; a 5 mm split is no fix, it also
        # weakens the vessel continuations' clearance)
        near_miss = result.report.get("best_near_miss") or {}
        assert any("lung_vessels" in d for d in near_miss.get("details", [])), result.report
        return
    doc = json.loads(result.write_json(tmp_path / "cta.json").read_text(encoding="utf-8"))
    near = far = 0
    for n, p in enumerate(doc["proposals"], 1):
        e, t = np.asarray(p["entry_ras"], float), np.asarray(p["target_ras"], float)
        seg_pts = e + np.linspace(0.0, 1.0, int(np.ceil(np.linalg.norm(t - e) / 0.05)) + 1)[:, None] * (t - e)
        gap = float(tree.query(seg_pts)[0].min())
        said = [w for w in doc["warnings"] if w.startswith(f"proposal {n}: ") and "internal thoracic" in w]
        if gap <= 10.0:
            near += 1
            assert said, (n, gap, p["entry_ras"])
        if abs(e[0]) > 60.0:
            far += 1
            assert not said, (n, p["entry_ras"], said)
    assert near >= 1 and far >= 1, (near, far)


@pytest.mark.parametrize("phase, words", [("portal_venous", "no contrast-filled blood pool shows on this CT"),
                                          ("arterial", "find them on the images")])
def test_with_no_vessel_labelled_the_ct_tells_its_phase(phase, words):
    """New-user trial 93 F6: on lung1 (no contrast, no vessel labelled) the warning gave the
    "phase unknown" words ("on a contrast CT they show as ..."). With no vessel in the label map
    the CT's own contrast blood pool rule (`blood_pool.contrast_pool_band`, as segment and detect
    read "contrast CT") tells: an arterial phantom is told to find them on the images; a
    portal-venous one, whose blood does not reach the pool's density, that no contrast-filled
    pool shows and they may not stand out."""
    from imagio import phantom
    from imagio.planning import PlanningProblem
    from imagio.planning.internal_thoracic import internal_thoracic_warnings
    from imagio.planning.problem import contrast_phase

    ph = phantom.generate(3.0, seed=2, anatomy="realistic", phase=phase, n_liver_tumors=0, n_lung_nodules=1)
    lab = ph.labels
    words_v = ("artery", "vein", "aorta", "vena_cava", "great_vessels")
    gone = [v for v, n in lab.labels.items() if any(w in n for w in words_v)]
    arr = np.where(np.isin(lab.array, gone), 0, lab.array).astype(lab.array.dtype)
    lab = lab.with_array(arr, labels={v: n for v, n in lab.labels.items() if v not in gone})
    assert contrast_phase(ph.ct, lab) is None   # the label map does not tell
    inv = {n: v for v, n in lab.labels.items()}
    prob = PlanningProblem.build(ph.ct, lab, "lung_nodule_1")
    st = lab.kji_to_world(np.argwhere(lab.array == inv["sternum"]).astype(float))
    zmid = float(np.median(st[:, 2]))
    row = st[np.abs(st[:, 2] - zmid) <= 3.0]
    x0, a0 = float(row[:, 0].max()) + 12.0, float(row[:, 1].max())
    w = internal_thoracic_warnings(prob, 2, np.array([x0, a0 + 60.0, zmid]), np.array([x0, a0 - 60.0, zmid]))
    assert len(w) == 1 and words in w[0] and "on a contrast CT they show" not in w[0], w


@pytest.mark.data
def test_lung1_reads_without_contrast_and_the_cta_with(shared_data):
    """The phase the warning words follow, on the real CTs with no label map: lung1 (trial 93 F6)
    shows no contrast blood pool, the chest CTA does."""
    from imagio import io
    from imagio.planning.problem import contrast_phase

    lung1 = io.read_image(shared_data / "pyradiomics-lung" / "lung1_image.nrrd")
    assert contrast_phase(lung1, None) is None and contrast_phase(lung1, None, pool=True) is False
    cta = io.read_image(shared_data / "totalsegmentator-chest-cta" / "chest_cta.nii.gz")
    assert contrast_phase(cta, None, pool=True) is True


def test_a_plans_warnings_read_the_label_maps_region_once(ph, monkeypatch):
    """Issue 20: the costal-cartilage and internal thoracic rules read the label map's region
    (`cartilage._region`, a CRC-32 of the whole map) once per warnings pass, not once per proposal
    and rule; the warnings are the same as each rule asked alone per proposal."""
    from imagio.planning import PlanningProblem, cartilage, plan
    from imagio.planning.cartilage import costal_warnings
    from imagio.planning.internal_thoracic import internal_thoracic_warnings

    p = plan(PlanningProblem.build(ph.ct, ph.labels, "lung_nodule_1"), k=5)
    assert len(p.proposals) >= 2
    calls = []
    real = cartilage._digest
    monkeypatch.setattr(cartilage, "_digest", lambda labels: calls.append(1) or real(labels))
    w = p._compute_warnings()
    assert len(calls) == 1, len(calls)
    mine = [x for x in w if "costal cartilage" in x or "internal thoracic" in x]
    alone = [x for n, m in enumerate(p.proposals, 1)
             for x in costal_warnings(p.problem, n, m.entry_ras, m.target_ras)
             + internal_thoracic_warnings(p.problem, n, m.entry_ras, m.target_ras)]
    assert mine == alone


def test_a_bone_speck_at_the_lateral_wall_is_not_the_sternum():
    """New-user trial 103 F4.1: a one-voxel 'bone' speck of the rule-based segmentation at the
    lateral chest wall was taken for the sternum ("12-15 mm from the sternum" at a mid-axillary
    entry 136 mm from the midline). A piece smaller than
    ``warnings.internal_thoracic_sternum_min_ml`` is not the sternum; the sternum itself still is."""
    from conftest import rotation

    min_ml = float(load_defaults()["warnings"]["internal_thoracic_sternum_min_ml"])
    lab = _chest_wall(rotation((1, -2, 3), 18.0), (0.9, 1.3, 2.0), "bone")
    arr = lab.array.copy()
    speck = np.rint(lab.world_to_kji(np.array([[120.0, 205.0, 652.0]]))[0]).astype(int)   # lateral, in front
    arr[tuple(speck)] = ST
    lab = lab.with_array(arr, labels=dict(lab.labels))
    e, t = np.array([128.0, 250.0, 652.0]), np.array([128.0, 120.0, 652.0])   # 8 mm from the speck, 113 from the sternum
    assert parasternal_run(lab, e, t, ZONE) is not None        # the speck, without the size rule
    assert parasternal_run(lab, e, t, ZONE, min_ml=min_ml) is None
    e, t = np.array([30.0, 250.0, 652.0]), np.array([30.0, 120.0, 652.0])     # 15 mm from the sternum
    run = parasternal_run(lab, e, t, ZONE, min_ml=min_ml)
    assert run is not None and abs(run[0] - _own_distance(lab, e, t)) <= 1.0
