"""New-user trial 90 L: the chest CTA planned with the lungs removed from its label map ended in
"no feasible path": with no lung labelled, the lungs are taken as the air inside the body and
their contrast-filled vessels as unlabelled dense tissue that every path keeps out of, and
nothing said that labelling the lungs would fix it. A target in the lung with no lung label
says so; with the lungs labelled, it does not."""

import numpy as np

from conftest import phantom_once
from imagio import anatomy
from imagio.planning.planner import plan
from imagio.planning.problem import PlanningProblem

WORDS = "target in the lung but no lung labelled"


def test_a_lung_target_without_lung_labels_says_to_label_them():
    ph = phantom_once(spacing=3.0, seed=0)
    les = next(x for x in ph.lesions if x.kind == "lung_nodule")
    names = ph.labels.labels
    lung = [v for v, n in names.items() if n in anatomy.AERATED_LUNG]
    assert lung   # the phantom labels its lungs (lobes)
    with_lungs = plan(PlanningProblem.build(ph.ct, ph.labels, les.name))
    assert not any(WORDS in w for w in with_lungs.warnings)
    a = ph.labels.array.copy()
    a[np.isin(a, lung)] = 0
    without = ph.labels.with_array(a, labels={v: n for v, n in names.items() if v not in lung})
    result = plan(PlanningProblem.build(ph.ct, without, les.name))
    said = [w for w in result.warnings if WORDS in w]
    assert len(said) == 1 and "imagio segment --structures lungs" in said[0], result.warnings
