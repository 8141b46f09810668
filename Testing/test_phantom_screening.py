"""Phantom screening mode: nodules of every type and position with known centres, vessel
mimics; and the screening evaluation (per-type sensitivity, thresholds at FP rates)."""

import numpy as np
import pytest

from imagio.phantom.screening import KINDS, SIZE_BINS_MM, screening_scan


@pytest.fixture(scope="module")
def scan():
    return screening_scan(spacing=3.0, seed=3, n_nodules=10, n_mimics=3)


def test_nodules_painted_where_the_truth_says(scan):
    ph = scan.phantom
    assert len(scan.truth) >= 8
    assert {t["kind"] for t in scan.truth} == set(KINDS)
    assert {t["position"] for t in scan.truth} >= {"parenchyma", "juxta_pleural", "juxta_vascular"}
    inv = {v: k for k, v in ph.labels.labels.items()}
    for t in scan.truth:
        assert SIZE_BINS_MM[0][0] <= t["diameter_mm"] <= SIZE_BINS_MM[-1][1]
        if t["kind"] == "perifissural":
            assert t["diameter_mm"] < 10.0
        m = ph.labels.array == inv[t["name"]]
        assert m.any(), t
        # the painted voxels lie within the nodule's radius (plus a voxel) of the known centre
        pts = ph.labels.kji_to_world(np.argwhere(m))
        assert np.linalg.norm(pts - t["center_ras"], axis=1).max() <= t["diameter_mm"] / 2 + 3.0 * 0.87 + 0.01
    c = np.array([t["center_ras"] for t in scan.truth])
    r = np.array([t["diameter_mm"] / 2 for t in scan.truth])
    d = np.linalg.norm(c[:, None] - c[None], axis=2) - r[:, None] - r[None]
    assert (d[~np.eye(len(c), dtype=bool)] >= 10.0 - 1e-6).all()  # separate references


def test_mimics_are_vessels_in_the_lung(scan):
    ph = scan.phantom
    assert len(scan.mimics_ras) >= 1
    vals = ph.labels.sample(scan.mimics_ras)
    assert all(ph.labels.labels[int(v)] == "lung_vessels" for v in vals)
    assert all(np.linalg.norm(scan.mimics_ras - t["center_ras"], axis=1).min() > 10 for t in scan.truth)


def test_screening_evaluation_counts(scan):
    from imagio.detection import Candidate
    from imagio.detection.screening_eval import evaluate_screening, threshold_at

    # perfect candidates on every nodule plus one false positive on each mimic
    cands = [Candidate(np.asarray(t["center_ras"]), t["diameter_mm"], 0, "solid", 0.9) for t in scan.truth]
    cands += [Candidate(m, 5.0, 0, "solid", 0.5) for m in scan.mimics_ras]
    ev = evaluate_screening([scan], [cands], bootstrap=10)
    assert ev["cpm"] == pytest.approx(1.0)
    assert all(v["sensitivity_at_1fp"] == 1.0 for v in ev["by_type"].values())
    assert ev["fp_on_mimics_at_8fp"] == len(scan.mimics_ras)
    assert threshold_at(np.array([0.9, 0.5, 0.1]), 1, 1.0) == 0.5
    assert threshold_at(np.array([0.9]), 1, 8.0) == -np.inf


def test_lung_rads_3_or_more_group(scan):
    """The nodules Lung-RADS v2022 acts on (category >= 3 by size and type): checked against
    the stratification's own Lung-RADS table for every phantom nodule type and size."""
    from imagio.detection import Candidate
    from imagio.detection.screening_eval import actionable, evaluate_screening
    from imagio.stratification.screening import lung_rads

    for t in scan.truth:
        cat = lung_rads({"type": t["kind"], "mean_diameter_mm": t["diameter_mm"], "solid_component_mm": 0.0})
        assert actionable(t["kind"], t["diameter_mm"]) == (cat["category"] not in ("1", "2")), (t, cat)
    # only the actionable nodules found: that group at 1.0, the other at 0
    cands = [Candidate(np.asarray(t["center_ras"]), t["diameter_mm"], 0, "solid", 0.9) for t in scan.truth
             if actionable(t["kind"], t["diameter_mm"])]
    g = evaluate_screening([scan], [cands], bootstrap=0)["by_lung_rads_3_or_more"]
    assert g["yes"]["sensitivity_any"] == 1.0 and g["no"]["sensitivity_any"] == 0.0
    assert g["yes"]["n"] + g["no"]["n"] == len(scan.truth)
    # CPM on the actionable nodules: the others are excluded, so candidates only on the
    # actionable ones give 1.0 (a candidate on an excluded nodule is not a false positive)
    cands += [Candidate(np.asarray(t["center_ras"]), t["diameter_mm"], 0, "solid", 0.95) for t in scan.truth
              if not actionable(t["kind"], t["diameter_mm"])]
    ev = evaluate_screening([scan], [cands], bootstrap=0)
    assert ev["cpm_lung_rads_3_or_more"] == pytest.approx(1.0) and ev["cpm"] == pytest.approx(1.0)


def test_small_airway_walls_by_partial_volume_same_nodules(scan):
    """Issue 17 (detect47): the screening scans paint each airway wall voxel with the share of it
    the anatomical wall fills (25 % of the lumen radius; the painter's 1 mm floor made a terminal
    bronchiole a ~4.5 mm soft-tissue tube whose end the detector took for a nodule). The nodules
    and the labels are those of the floor-wall scan of the same seed; only the CT differs, and
    there only in airway walls after the blur: the small airways' walls read lower, the central
    bronchi's as before. Independent check: the generator's own labels and airway tree."""
    from imagio.phantom.trees import _seg_dist

    floor = screening_scan(spacing=3.0, seed=3, n_nodules=10, n_mimics=3, small_airway_walls="floor")
    assert floor.truth == scan.truth
    np.testing.assert_array_equal(floor.phantom.labels.array, scan.phantom.labels.array)
    ph = scan.phantom
    lab, tree = ph.labels, ph.airway_tree
    kji = np.argwhere(lab.mask("airway_wall"))
    a = np.array([b.start_ras for b in tree])
    e = np.array([b.end_ras for b in tree])
    outer = np.array([max(b.radius_start_mm, b.radius_end_mm, 0.87 * ph.spacing) + b.wall_mm for b in tree])
    own = np.argmin(_seg_dist(lab.kji_to_world(kji), a, e) - outer[None], axis=1)
    gen = np.array([tree[i].generation for i in own])
    small = np.array([max(tree[i].radius_start_mm, tree[i].radius_end_mm) < 2.0 for i in own])
    pv, fl = (s.phantom.ct.array[tuple(kji.T)].astype(float) for s in (scan, floor))
    assert np.median(fl[small] - pv[small]) > 150, np.median(fl[small] - pv[small])
    assert abs(np.median(fl[gen <= 2] - pv[gen <= 2])) < 30, np.median(fl[gen <= 2] - pv[gen <= 2])
