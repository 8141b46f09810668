"""Review 43 L5: `segmentation.rules` chose the top-face bronchi search by comparing the text of
the no-trachea error; a reworded message would silently drop that search. The case is a type,
`airways.TracheaAboveView` (an `InputError`, so the CLI's one-line refusal is unchanged)."""

import numpy as np

from imagio import phantom
from imagio.errors import InputError
from imagio.segmentation import airways as aw
from imagio.segmentation import body as bd
from imagio.segmentation.common import anatomical_axes, crop_slices


def test_a_view_below_the_carina_raises_the_trachea_above_view_type():
    ph = phantom.generate(spacing=3.0)
    ct, lab = ph.ct, ph.labels
    inv = {n: v for v, n in lab.labels.items()}
    ax, sign = anatomical_axes(ct)["S"][:2]
    k = np.argwhere(lab.array == inv["trachea"])[:, ax]
    lowest = int(k.min()) if sign > 0 else int(k.max())       # the carina's end of the trachea
    sl = [slice(None)] * 3
    sl[ax] = slice(0, lowest - 5) if sign > 0 else slice(lowest + 6, ct.shape[ax])   # the view below it
    c = crop_slices(ct, tuple(sl))
    try:
        aw.airway_masks(c, bd.body_mask(c))
    except aw.TracheaAboveView as e:
        assert isinstance(e, InputError) and str(e) == aw.NO_TRACHEA_TOP_CUT
    else:
        raise AssertionError("no TracheaAboveView for a view whose top lies below the carina")


def test_the_rules_branch_on_the_type_not_the_text():
    import inspect

    from imagio.segmentation import rules

    src = inspect.getsource(rules)
    assert "isinstance(e, aw.TracheaAboveView)" in src and "== aw.NO_TRACHEA_TOP_CUT" not in src
