"""One-click lesion checked from outside its outline (issue 14, new-user trial on Lung_Dx-A0001):
an outline holding only the core of a mass is flagged, a probe outline that leaked is said as
a leak (not given as the top of the lesion's range), and the range before an --add/--remove
edit is not given as the edited outline's."""

import csv

import numpy as np
import pytest

from imagio.segmentation.lesion import segment_lesion
from imagio.segmentation.lesion_shell import hu_class_bounds, judge_probe
from test_lesion import _dx_boxes, _interior_clicks, _limb_with_necrotic_mass


def test_hu_class_and_probe_verdicts():
    """The density classes are the intervals between the bounds (the lowest and highest have no
    lesion); a probe outline is the same lesion only when it holds most of the outline."""
    b = (-700.0, -300.0, -30.0, 400.0)
    assert hu_class_bounds(35.0, b) == (-30.0, 400.0)
    assert hu_class_bounds(-500.0, b) == (-700.0, -300.0)
    assert hu_class_bounds(-850.0, b) is None and hu_class_bounds(900.0, b) is None
    m = np.zeros((20, 20, 20), bool)
    m[5:10, 5:10, 5:10] = True
    big = np.zeros_like(m)
    big[4:15, 4:15, 4:15] = True
    beside = np.zeros_like(m)
    beside[9:18, 9:18, 9:18] = True   # touches a corner of m only
    assert judge_probe(m, big, False, 0.5, 1.15) == "part"
    assert judge_probe(m, big, True, 0.5, 1.15) == "leaked"
    assert judge_probe(m, m, False, 0.5, 1.15) == "same"
    assert judge_probe(m, beside, True, 0.5, 1.15) == "other"


def test_range_before_an_edit_is_not_the_edited_outlines():
    """New-user trial LOW: after --add/--remove the summary kept ``volume_range_ml``, the range of
    the outlines before the edit, as if it were the edited outline's. Asserted on the necrotic
    limb mass of test_lesion (clicks more than two-fold apart): with --add points the range is
    ``volume_range_before_edit_ml`` and ``volume_range_ml`` is None; the edited volume stands."""
    ct, mass, necrosis, r = _limb_with_necrotic_mass()
    viable = np.argwhere((r >= 9.9 + 5.0) & (r <= 22.0 - 5.0))
    pick = np.random.default_rng(3).choice(len(viable), 4, replace=False)
    pts = ct.kji_to_world(viable[pick].astype(float))
    found = None
    for p in pts:
        m, meas = segment_lesion(ct, p)
        if meas.volume_range_ml is not None:
            found = p
            break
    assert found is not None   # some click's checks grew other outlines
    m, meas = segment_lesion(ct, found, include=pts)
    d = meas.to_dict()
    assert d["volume_range_ml"] is None and d["volume_range_before_edit_ml"] is not None, d
    lo, hi = d["volume_range_before_edit_ml"]
    assert lo <= hi and d["volume_ml"] == pytest.approx(float(m.sum()) * ct.voxel_volume_ml, abs=1e-3)
