"""A plan on labels without costal cartilage says so for a track through the anterior chest wall
between the ribs and the sternum (new-user trial 51 M5: rule-based labels, two proposals
crossed 8.7 and 6.2 mm of true cartilage, the plan said nothing although ``segment`` had warned
"costal cartilages not segmented").

The phantom's own cartilage is the truth: it is removed from the label map the plan sees, and
tracks are drawn straight back (posterior) through truth cartilage voxels at the sternum's
levels, and from the side through the lateral chest wall, and each track's truth crossing is
sampled from the full label map.
"""

from __future__ import annotations

import numpy as np
import pytest

from imagio import phantom
from imagio.planning import PlanningProblem
from imagio.planning.cartilage import costal_warnings


@pytest.fixture(scope="module")
def ph():
    return phantom.generate(spacing=3.0)


@pytest.fixture(scope="module", params=["sternum", "bone"])
def case(ph, request):
    """The phantom without its cartilage; with ``bone``, the sternum named as the rule-based
    segmentation names it (its "bone" holds the sternum with the other bones; trial 51 M5)."""
    lab = ph.labels
    inv = {n: v for v, n in lab.labels.items()}
    cc = inv["costal_cartilages"]
    arr = lab.array.copy()
    arr[arr == cc] = 0
    names = {v: n for v, n in lab.labels.items() if v != cc}
    names[inv["sternum"]] = request.param
    without = lab.with_array(arr, labels=names)
    prob = PlanningProblem.build(ph.ct, without, "lung_nodule_1")
    return ph, lab, inv, prob


def _truth_mm(lab, value, e, t, step=0.5):
    L = float(np.linalg.norm(np.subtract(t, e)))
    P = np.asarray(e, float) + np.arange(0.0, L, step)[:, None] * (np.subtract(t, e) / L)
    return float((lab.sample(P, order=0, fill=0) == value).sum()) * step


def test_tracks_through_unlabelled_costal_cartilage_are_warned(case):
    ph, lab, inv, prob = case
    cc, st = inv["costal_cartilages"], inv["sternum"]
    pts = lab.kji_to_world(np.argwhere(lab.array == cc).astype(float))
    sternum = lab.kji_to_world(np.argwhere(lab.array == st).astype(float))
    pts = pts[(pts[:, 2] >= sternum[:, 2].min()) & (pts[:, 2] <= sternum[:, 2].max())]   # beside the sternum
    sel = pts[np.random.default_rng(0).choice(len(pts), 30, replace=False)]
    warned = 0
    for p in sel:
        e, t = p + [0.0, 60.0, 0.0], p - [0.0, 30.0, 0.0]   # from in front, straight back
        assert _truth_mm(lab, cc, e, t) > 0                  # it crosses true cartilage
        w = costal_warnings(prob, 1, e, t)
        warned += len(w) == 1 and "costal cartilage" in w[0] and w[0].startswith("proposal 1:")
    assert warned >= 0.8 * len(sel), warned
    # lateral chest-wall tracks (from the side, at the same levels, 60 mm behind): no cartilage, no word
    mid = float(sternum[:, 0].mean())
    quiet = 0
    for p in sel:
        side = 1.0 if p[0] > mid else -1.0
        e = np.array([mid + side * 250.0, p[1] - 60.0, p[2]])
        t = np.array([mid + side * 60.0, p[1] - 60.0, p[2]])
        assert _truth_mm(lab, cc, e, t) == 0
        quiet += not costal_warnings(prob, 1, e, t)
    assert quiet == len(sel)


def test_labelled_cartilage_needs_no_such_warning(case):
    ph, lab, inv, prob = case
    full = PlanningProblem.build(ph.ct, lab, "lung_nodule_1")
    p = lab.kji_to_world(np.argwhere(lab.array == inv["costal_cartilages"]).astype(float))[0]
    assert costal_warnings(full, 1, p + [0.0, 60.0, 0.0], p - [0.0, 30.0, 0.0]) == []
