"""New-user trial 34 (F1): a point target in plain aerated lung was planned without a word (the
chest CTA's right lung at -846 HU: 'lung_right', a 102.6 mm path ending in air)."""

import numpy as np
from scipy import ndimage

from imagio import phantom
from imagio.planning.problem import PlanningProblem


def test_a_point_in_aerated_lung_is_warned_and_a_nodule_is_not():
    ph = phantom.generate(spacing=3.0, seed=0)
    lab, ct = ph.labels, ph.ct
    lung = lab.mask("lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right")
    # the lung voxel deepest inside the right lung (independent of the planner: the label map's
    # own distance map), checked to be aerated on the CT
    depth = ndimage.distance_transform_edt(lung, sampling=ct.spacing_kji)
    kji = np.unravel_index(int(np.argmax(depth)), lung.shape)
    assert ct.array[kji] < -700
    point = ct.kji_to_world(np.array([kji], float))[0]
    prob = PlanningProblem.build(ct, lab, point)
    hit = [w for w in prob.warnings if "aerated lung" in w]
    assert len(hit) == 1 and "needle would end in air" in hit[0], prob.warnings
    nodule = [x for x in ph.lesions if x.kind == "lung_nodule"][0]
    prob = PlanningProblem.build(ct, lab, np.asarray(nodule.center_ras, float))
    assert not [w for w in prob.warnings if "aerated lung" in w], prob.warnings
