"""Planner safety on a field of view inside the chest, whatever the segmentation (issue 14,
trial 30 H2): the chest CTA cut to an 80 mm cube centred on the deepest point of its left lung.
One in-plane face of that view lies wholly in chest wall, so the lung air is open to three faces
of the image; a label map that leaves the lung out lets the planner's outer-skin model take that
air for the air around the patient and the pleura for skin. 37bd7c4 then proposed a 1.5-3 mm
"needle" from the pleura into the lung (exit 0, only truncation warnings).

Now `imagio plan` refuses (exit 2, one line): a point target outside the label map's body, and
an entry surface within the needle's reach whose air beyond carries the lung's vessel tree with
no skin over subcutaneous fat bordering it (`planning.problem._refuse_lung_beyond_skin`)."""

import json

import numpy as np
import pytest
from scipy import ndimage

from conftest import run_imagio


@pytest.fixture(scope="module")
def cta_left_lung_cube(tmp_path_factory):
    from conftest import SHARED_DATA
    from imagio import io
    from imagio.segmentation.common import crop_slices
    from imagio.segmentation.rules import segment_masks

    path = SHARED_DATA / "totalsegmentator-chest-cta" / "chest_cta.nii.gz"
    if not path.exists():
        pytest.skip("../shared/data is not present")
    ct = io.read_image(path)
    ref, _ = segment_masks(ct, ["body", "lungs"])
    e = ndimage.distance_transform_edt(ref["lung_left"], sampling=ct.spacing_kji)
    c = np.array(np.unravel_index(np.argmax(e), e.shape))
    r = np.round(40.0 / np.asarray(ct.spacing_kji)).astype(int)
    sl = tuple(slice(max(c[a] - r[a], 0), min(c[a] + r[a], ct.shape[a])) for a in range(3))
    cube = crop_slices(ct, sl)
    d = tmp_path_factory.mktemp("cta_left_80")
    io.write_image(cube, d / "cube.nii.gz")
    return d, cube, ref["lung_left"][sl]


def _write_labels(cube, arr, names, d, stem):
    from imagio import io

    io.write_image(cube.with_array(arr.astype(np.uint8), labels={}), d / f"{stem}.nii.gz")
    (d / f"{stem}.json").write_text(json.dumps({str(k): v for k, v in names.items()}))
    return d / f"{stem}.nii.gz", d / f"{stem}.json"


@pytest.mark.data
def test_plan_refuses_an_entry_on_the_pleura(cta_left_lung_cube, tmp_path):
    """A 4 mm 'nodule' labelled at the lung's deepest point and nothing else: no plan from the
    pleura (37bd7c4: a 3 mm path from the chest wall, exit 0)."""
    d, cube, _ = cta_left_lung_cube
    k, j, i = (np.array(cube.shape) // 2)
    kk, jj, ii = np.ogrid[:cube.shape[0], :cube.shape[1], :cube.shape[2]]
    s = cube.spacing_kji
    nod = ((kk - k) * s[0]) ** 2 + ((jj - j) * s[1]) ** 2 + ((ii - i) * s[2]) ** 2 <= 16.0
    lab, names = _write_labels(cube, nod, {1: "nodule"}, d, "nodule")
    r = run_imagio("plan", d / "cube.nii.gz", "--labels", lab, "--label-names", names,
                   "--target", "nodule", "--out", tmp_path / "out", "--no-png")
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("imagio: error")]
    assert len(err) == 1 and "faces lung" in err[0] and "label the lungs" in err[0], r.stderr[-2000:]
    assert not (tmp_path / "out" / "plan.json").exists()


@pytest.mark.data
def test_plan_refuses_a_target_outside_the_label_maps_body(cta_left_lung_cube, tmp_path):
    """A label map whose 'body' is the tissue in view without the lung (what 37bd7c4's segment
    gave on this view: [body, bone]) and a point target in a contrast-filled vessel among the
    lung air, outside that body (trial 30's target: 37bd7c4 planned a 1.5 mm path, exit 0)."""
    from imagio.planning.skin import outer_skin

    d, cube, lung = cta_left_lung_cube
    a = cube.array
    tissue = ndimage.binary_opening(a > -500, np.ones((3, 3, 3), bool))
    lab, n = ndimage.label(tissue)
    body = lab == (np.argmax(np.bincount(lab.ravel())[1:]) + 1)
    labels = cube.with_array(body.astype(np.uint8), labels={1: "body"})
    # a contrast-filled vessel voxel (> 150 HU) among the lung air, left out of that body, that
    # the outer-skin model holds (the planner's own outline): the nearest such to the view's centre
    pick = (a > 150) & lung & ~body & outer_skin(cube, labels).body
    assert pick.any()
    centre = np.zeros(a.shape, bool)
    centre[tuple(np.array(a.shape) // 2)] = True
    e = ndimage.distance_transform_edt(~centre, sampling=cube.spacing_kji)
    kji = np.unravel_index(np.argmin(np.where(pick, e, np.inf)), a.shape)
    ras = cube.kji_to_world(np.array(kji, float)[None])[0]
    lab_path, names = _write_labels(cube, body, {1: "body"}, d, "body")
    r = run_imagio("plan", d / "cube.nii.gz", "--labels", lab_path, "--label-names", names,
                   "--target=" + ",".join(f"{x:.1f}" for x in ras), "--out", tmp_path / "out", "--no-png")
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("imagio: error")]
    assert len(err) == 1 and "outside the label map's body" in err[0], r.stderr[-2000:]
