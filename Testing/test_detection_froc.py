"""LUNA16 FROC / CPM on hand-made candidate lists whose values are worked out by hand below."""

import numpy as np
import pytest

from imagio.detection.froc import evaluate, froc_curve, match


def _case():
    # scan A: nodules N1 (d 10 mm) and N2 (d 6 mm), an excluded finding without diameter (-> 10 mm)
    # scan B: nodule N3 (d 8 mm); scan C: nothing (it still counts in FP/scan)
    refs = {"A": [[0, 0, 0, 10], [50, 0, 0, 6]], "B": [[0, 0, 0, 8]]}
    exc = {"A": [[100, 0, 0, -1]]}
    cands = {
        "A": [[1, 0, 0, 0.90],      # hits N1
              [0, 2, 0, 0.50],      # hits N1 again: counted once, not a false positive
              [100, 3, 0, 0.80],    # on the excluded finding: ignored
              [30, 0, 0, 0.70],     # false positive
              [50, 2.9, 0, 0.65]],  # hits N2 (2.9 mm < radius 3 mm)
        "B": [[4, 0, 0, 0.95],      # exactly at the radius (4 mm): not a hit -> false positive
              [10, 10, 10, 0.60]],  # false positive; N3 is missed
        "C": [],
    }
    return cands, refs, exc


def test_cpm_by_hand():
    cands, refs, exc = _case()
    r = evaluate(cands, refs, exc, bootstrap=0)
    # entries sorted by probability: 0.95 FP, 0.90 TP, 0.70 FP, 0.65 TP, 0.60 FP; 3 scans, 3 nodules
    # curve (FP/scan, sens): (0,0) (1/3,0) (1/3,1/3) (2/3,1/3) (2/3,2/3) (1,2/3)
    # at 1/8 and 1/4: 0; at 1/2: 1/3; at 1, 2, 4, 8: 2/3  ->  CPM = (1/3 + 4 * 2/3) / 7 = 3/7
    assert r["sensitivities"] == pytest.approx([0, 0, 1 / 3, 2 / 3, 2 / 3, 2 / 3, 2 / 3])
    assert r["cpm"] == pytest.approx(3 / 7)
    assert r["n_nodules"] == 3 and r["n_detected"] == 2 and r["n_false_positives"] == 3
    assert r["curve"]["fps_per_scan"] == pytest.approx([0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1])
    assert r["curve"]["sensitivity"] == pytest.approx([0, 0, 1 / 3, 1 / 3, 2 / 3, 2 / 3])


def test_excluded_findings_and_scan_count_matter():
    cands, refs, exc = _case()
    # without the exclusion list the 0.80 mark is a false positive: curve changes
    r = evaluate(cands, refs, None, scans=["A", "B", "C"], bootstrap=0)
    assert r["n_false_positives"] == 4
    # 0.95 FP, 0.90 TP, 0.80 FP, 0.70 FP, 0.65 TP, 0.60 FP: at 1 FP/scan (3 FPs) sens 1/3 -> then 2/3
    assert r["sensitivities"][3] == pytest.approx(2 / 3)
    assert r["sensitivities"][2] == pytest.approx(1 / 3)
    # dropping the empty scan C changes FP/scan (2 scans): 0.5 FP/scan after the first FP
    r2 = evaluate({k: v for k, v in cands.items() if k != "C"}, refs, exc, bootstrap=0)
    assert r2["n_scans"] == 2
    assert r2["curve"]["fps_per_scan"][1] == pytest.approx(0.5)


def test_perfect_and_empty_detectors():
    refs = {"A": [[0, 0, 0, 10]], "B": [[5, 5, 5, 6]]}
    perfect = {"A": [[0, 0, 1, 0.9]], "B": [[5, 5, 5, 0.8]]}
    r = evaluate(perfect, refs, bootstrap=200)
    assert r["cpm"] == pytest.approx(1.0)
    assert r["cpm_ci"] == pytest.approx([1.0, 1.0])
    none = evaluate({}, refs, scans=["A", "B"], bootstrap=50)
    assert none["cpm"] == 0.0 and none["n_detected"] == 0


def test_bootstrap_interval_brackets_cpm_and_is_reproducible():
    rng = np.random.default_rng(3)
    refs, cands = {}, {}
    for s in range(30):
        c = rng.uniform(-100, 100, 3)
        refs[s] = [[*c, 10.0]]
        hits = [[*(c + 1), rng.uniform(0.2, 1.0)]] if rng.random() < 0.8 else []
        fps = [[*rng.uniform(200, 300, 3), rng.uniform(0, 0.9)] for _ in range(rng.integers(0, 6))]
        cands[s] = hits + fps
    a = evaluate(cands, refs, bootstrap=300, seed=1)
    b = evaluate(cands, refs, bootstrap=300, seed=1)
    assert a["cpm_ci"] == b["cpm_ci"]
    lo, hi = a["cpm_ci"]
    assert lo <= a["cpm"] <= hi and hi - lo > 0.01
    for s, (l, h) in zip(a["sensitivities"], a["sensitivities_ci"]):
        assert l - 1e-9 <= s <= h + 1e-9


def test_curve_ties_form_one_point():
    e = match({"A": [[0, 0, 0, 0.5], [9, 9, 9, 0.5]]}, {"A": [[0, 0, 0, 4]]})
    fps, sens, thr = froc_curve(e.is_nodule, e.probability, e.missed, e.n_scans, e.n_nodules)
    assert fps.tolist() == [0.0, 1.0] and sens.tolist() == [0.0, 1.0]
