"""New-user trial 80 (M8b): a CT stored mirrored left-right (array reversed, header kept) was
segmented and planned with exit 0 and no word, its heart on the right and its 'right' lung the
smaller: every side named was wrong. `sides.mirrored_sides_note` warns when both signs are reversed
(Gray's: the heart two thirds left of the midline, the right lung the larger)."""

import numpy as np

from imagio import phantom
from imagio.segmentation.common import anatomical_axes
from imagio.segmentation.sides import mirrored_sides_note

POOL = ("heart", "aorta", "pulmonary_artery", "pulmonary_vein", "superior_vena_cava", "inferior_vena_cava",
        "brachiocephalic_trunk", "brachiocephalic_vein_left", "brachiocephalic_vein_right")


def _masks(lab):
    names = set(lab.labels.values())
    return {"great_vessels": lab.mask(*[n for n in POOL if n in names]),
            "lung_right": lab.mask(*[n for n in names if n.startswith("lung_") and n.endswith("_right")]),
            "lung_left": lab.mask(*[n for n in names if n.startswith("lung_") and n.endswith("_left")])}


def test_a_ct_mirrored_left_right_and_segmented_is_warned():
    ph = phantom.generate(spacing=3.0, seed=0)
    ct, m = ph.ct, _masks(ph.labels)
    assert mirrored_sides_note(ct, m) is None
    # the array reversed along its left-right axis with the header kept: the segmenter names each
    # lung by where it lies, so the anatomical left lung becomes 'lung_right'
    ax = anatomical_axes(ct)["R"][0]
    flip = {n: np.flip(v, axis=ax) for n, v in m.items()}
    flip["lung_right"], flip["lung_left"] = flip["lung_left"], flip["lung_right"]
    note = mirrored_sides_note(ct, flip)
    assert note and "mirrored left-right" in note and "right lung is the smaller" in note
    # one sign alone (a smaller right lung, heart in place: a right lung collapse) is not warned
    alone = dict(m, lung_right=m["lung_right"] & (np.cumsum(m["lung_right"], axis=0) < m["lung_right"].sum(0) // 2))
    assert alone["lung_right"].sum() < m["lung_left"].sum() and mirrored_sides_note(ct, alone) is None
    # without contrast (no blood pool) nothing is judged
    assert mirrored_sides_note(ct, dict(m, great_vessels=np.zeros_like(m["lung_left"]))) is None
