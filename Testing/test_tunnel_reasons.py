"""A refused transparenchymal tunnel says what it crosses (new-user trial 62 M1: a bronchial wall
labelled 'body' was reported as "crosses the pleura (leaves the lung)", which reads as a
subpleural lesion)."""

import numpy as np
import pytest

from imagio.planning import bronchoscopy as B
from imagio.planning.bronchoscopy.tunnel import lung_envelope

phantom = pytest.importorskip("imagio.phantom")


@pytest.fixture(scope="module")
def ph():
    return phantom.generate(spacing=1.5, seed=0)


def _plan(L, tree, name):
    lungs, vessels = lung_envelope(L)
    return B.plan(tree, B.Target.from_mask(L, L.mask(name)), "thin", lungs=lungs, vessels=vessels, others=L)


def test_wall_labelled_body_is_named_not_the_pleura(ph):
    L = ph.labels
    tree = B.extract_tree(L, L.mask("trachea", "airways"))
    truth = _plan(L, tree, "lung_nodule_1")
    assert truth.tunnels, truth.tunnel_problem          # the phantom's own labels: tunnels
    # the bronchial wall and the lumen's partial-volume rim labelled 'body', as the rule-based
    # segmentation did before trial 62 (on the chest CTA: 3.0 mm median from lumen to lung)
    from scipy import ndimage

    codes = {n: v for v, n in L.labels.items()}
    arr = np.asarray(L.array).copy()
    lumen = L.mask("airways")
    rim = ndimage.distance_transform_edt(~lumen, sampling=L.spacing_kji) <= 3.5
    arr[(rim & ~lumen & (arr != codes["lung_vessels"])) | (arr == codes["airway_wall"])] = codes["body"]
    L2 = L.with_array(arr, labels={v: n for v, n in L.labels.items() if n != "airway_wall"})
    plan = _plan(L2, tree, "lung_nodule_1")
    assert not plan.tunnels
    assert "pleura" not in plan.tunnel_problem, plan.tunnel_problem
    assert "through 'body' (up to" in plan.tunnel_problem, plan.tunnel_problem
