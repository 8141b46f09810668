"""A route never ends in the other lung than its target (new-user trial 99 F0, HIGH: the chest CTA
cut 7-9 mm above the carina lost the left lung's airways from the tree and every scope was routed
into the RIGHT lung, 150 mm from a LEFT lower lobe target, exit 0). The guard (`side.py`) is
independent of the tree: the side of a point comes from the label map's lungs (or the carina's
mid-sagittal plane); a route ending in the other lung is refused.

The expected sides here come from the phantom's own lobe masks (the deepest voxel of each lobe,
by its distance map), in a storage with the axes permuted and flipped as well."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from test_bronchoscopy_storage import _stored

from imagio import phantom
from imagio.errors import InputError
from imagio.planning import bronchoscopy as B
from imagio.planning.bronchoscopy.side import require_same_lung, sides_from_carina, sides_from_labels, wrong_lung


@pytest.fixture(scope="module")
def ph():
    return phantom.generate(spacing=1.5, seed=0)


def _deepest(L, name):
    inv = {n: v for v, n in L.labels.items()}
    d = ndimage.distance_transform_edt(L.array == inv[name], sampling=L.spacing_kji)
    return L.kji_to_world(np.argwhere(d == d.max())[:1].astype(float))[0]


def _permuted(L):
    """The same world label map stored with its axes permuted and flipped (test_bronchoscopy_storage's
    ``_stored``, every voxel's world position checked)."""
    v = _stored(L, L.array, (2, 0, 1), (True, False, True))
    return v.with_array(v.array, labels=dict(L.labels))


def test_sides_from_the_lobes(ph):
    L = ph.labels
    ll, rl = _deepest(L, "lung_lower_lobe_left"), _deepest(L, "lung_lower_lobe_right")
    tr = _deepest(L, "trachea")
    for lab in (L, _permuted(L)):
        assert sides_from_labels(lab, np.array([ll, rl, tr])) == ["left", "right", None]
        msg = wrong_lung(rl, ll, lab)
        assert "ends in the right lung" in msg and "target lies in the left lung" in msg
        assert wrong_lung(ll, rl, lab).startswith("the route ends in the left lung")
        assert wrong_lung(ll, _deepest(L, "lung_upper_lobe_left"), lab) == ""
        assert wrong_lung(tr, ll, lab) == ""          # the trachea has no side: a short route is not 'wrong'
        with pytest.raises(InputError, match="target lies in the left lung"):
            require_same_lung(rl, ll, lab)
    none = L.with_array(L.array, labels={v: n for v, n in L.labels.items() if not n.startswith("lung_")})
    assert sides_from_labels(none, np.array([ll])) is None and wrong_lung(rl, ll, none) == ""


def test_sides_from_the_carina(ph):
    L = ph.labels
    tree = B.extract_tree(L, B.airway_mask(L), root_check=False)
    pts = np.array([_deepest(L, n) for n in ("lung_lower_lobe_left", "lung_upper_lobe_left",
                                             "lung_lower_lobe_right", "lung_middle_lobe_right", "trachea")])
    assert sides_from_carina(tree, pts) == ["left", "left", "right", "right", None]
    assert "ends in the right lung" in wrong_lung(pts[2], pts[0], None, tree)
    assert wrong_lung(pts[3], pts[2], None, tree) == ""


def test_an_airway_mask_missing_a_lung_is_not_routed_into_the_other_lung(ph, tmp_path, capsys):
    """The phantom's labels with the airway voxels left of the midline below its carina removed (a
    segmentation that missed the left lung's airways; the trachea in view, so the scan's top is not
    in question), the target the deepest point of the left lower lobe: the route that would end in
    the right lung (by the lobe masks) is refused, exit 2, one line naming both sides. (This test
    cut the scan 3 mm above the carina until the carina check, `carina_view`, refused such a scan
    first: test_bronchoscopy_carina_view.)"""
    from imagio import cli, io

    L = ph.labels
    inv = {n: v for v, n in L.labels.items()}
    carina_s = float(next(g for g in ph.airway_tree if g.parent < 0).end_ras[2])
    w = L.kji_to_world(np.indices(L.shape).reshape(3, -1).T.astype(float)).reshape(*L.shape, 3)
    air = np.isin(L.array, [inv["trachea"], inv["airways"]])
    arr = np.where(air & (w[..., 0] < 0) & (w[..., 2] < carina_s), 0, L.array).astype(L.array.dtype)
    io.write_image(ph.ct, tmp_path / "ct.nii.gz")
    io.write_labels(L.with_array(arr), tmp_path / "labels.seg.nrrd")
    point = _deepest(L, "lung_lower_lobe_left")
    capsys.readouterr()
    rc = cli.main(["bronch", str(tmp_path / "ct.nii.gz"), "--airways", str(tmp_path / "labels.seg.nrrd"),
                   f"--target={point[0]:.1f},{point[1]:.1f},{point[2]:.1f}", "--scope", "thin",
                   "--out", str(tmp_path / "o"), "--no-pictures", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and not (tmp_path / "o" / "bronch.json").exists(), err
    line = [x for x in err.splitlines() if x.startswith("imagio: error")]
    assert len(line) == 1 and "ends in the right lung" in line[0] and "target lies in the left lung" in line[0], err


def test_a_point_outside_both_lungs_takes_a_side_by_the_ratio_of_airway_limits(ph):
    """A point outside both lungs takes the nearer lung's side only when its nearest lung voxel is at
    most ``lung_side_nearer_ratio`` (imagio/data/airway_limits.json, with its reasoning) of its
    distance to the other lung. My distances: every lung voxel centre of each side (the phantom's
    own lobe masks, not their shells) in a cKDTree, for points on the line between the two
    lungs' deepest voxels (the mediastinum between them, some near one lung)."""
    import json
    from importlib import resources

    from scipy.spatial import cKDTree

    doc = json.loads(resources.files("imagio.data").joinpath("airway_limits.json").read_text())
    ratio = float(doc["lung_side_nearer_ratio"]["value"])
    assert "planning choice" in doc["lung_side_nearer_ratio"]["source"]
    L = ph.labels
    side = {v: ("left" if n.endswith("_left") else "right") for v, n in L.labels.items()
            if n.startswith("lung_") and n.endswith(("_left", "_right"))}
    trees = {s: cKDTree(L.kji_to_world(np.argwhere(np.isin(L.array, [v for v, t in side.items() if t == s]))
                                       .astype(float))) for s in ("left", "right")}
    a, b = _deepest(L, "lung_lower_lobe_left"), _deepest(L, "lung_lower_lobe_right")
    P = a + np.linspace(0.0, 1.0, 241)[:, None] * (b - a)
    held = np.isin(np.asarray(L.sample(P, order=0)).ravel(), list(side))
    P = P[~held]                                   # outside both lungs' labels
    dl, dr = trees["left"].query(P)[0], trees["right"].query(P)[0]
    mine = np.where(dl <= ratio * dr, "left", np.where(dr <= ratio * dl, "right", "none"))
    got = np.array([s or "none" for s in sides_from_labels(L, P)])
    assert set(mine) == {"left", "right", "none"}  # the line crosses all three cases
    assert np.array_equal(got, mine), (got, mine)
