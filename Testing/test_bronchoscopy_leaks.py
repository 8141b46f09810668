"""Leaks and gaps of an airway mask checked against the CT along the route (the phantom): a tube
labelled airway through the lung parenchyma into a nodule (no wall, no air core on the CT) must
neither give 'reached' nor a bronchus sign without a word; the phantom's own narrow bronchi, which
the CT shows with their walls, must not be doubted."""

import numpy as np
import pytest

from imagio import phantom
from imagio.planning import bronchoscopy as B
from imagio.planning.bronchoscopy.mask_checks import _paint_tube
from test_bronchoscopy import _ball

DOUBT = ("possible leak", "unverified airway", "may have leaked")


@pytest.fixture(scope="module")
def ph():
    return phantom.generate(spacing=1.5, seed=0)


@pytest.fixture(scope="module")
def intact(ph):
    return B.extract_tree(ph.labels, ph.labels.mask("trachea", "airways"), ct=ph.ct)


# the phantom's bronchus into lung_nodule_1 is drawn 2.0 mm wide (1.3 voxels of 1.5 mm) and its
# calibre reads 2.1 mm: a 2 mm scope (needs 1.5 mm) reaches it; the ultrathin (3.0 mm, needs 2.5)
# did only while the lumen was read as twice the wall distance (3.0 mm for a line of voxels)
NODULE_1_SCOPE = 2.0

def _lesion(ph, name):
    return next(x for x in ph.lesions if x.name == name)


def _leak_into(labels, lesion_name, radius_mm, start_ras=None):
    """A copy of ``labels`` with a straight tube of ``radius_mm`` labelled 'airways' from the
    airway lumen voxel nearest the lesion's centre (or ``start_ras``) to that centre: the CT is
    not changed, so along the tube it reads the parenchyma (and vessels) it crosses. Returns
    (label Volume, start RAS, tube mask)."""
    L = labels
    lum = np.argwhere(L.mask("trachea", "airways"))
    c = L.kji_to_world(np.argwhere(L.mask(lesion_name)).astype(float)).mean(axis=0)
    ras = L.kji_to_world(lum.astype(float))
    a = lum[np.argmin(np.linalg.norm(ras - (c if start_ras is None else start_ras), axis=1))]
    b = L.world_to_kji(c[None])[0]
    tube = np.zeros(L.shape, bool)
    _paint_tube(tube, a, b, radius_mm, np.asarray(L.spacing_kji, float))
    tube &= ~L.mask(lesion_name) & ~L.mask("trachea", "airways")
    arr = L.array.copy()
    arr[tube] = next(v for v, n in L.labels.items() if n == "airways")
    return L.with_array(arr), L.kji_to_world(a[None].astype(float))[0], tube


def _doubted(warnings):
    return [w for w in warnings if any(d in w for d in DOUBT)]


@pytest.mark.parametrize("nodule,radius", [("lung_nodule_3", 1.0), ("lung_nodule_3", 2.0), ("lung_nodule_3", 3.0),
                                           ("lung_nodule_2", 2.0), ("lung_nodule_2", 3.0)])
def test_a_leak_through_the_parenchyma_into_a_nodule_is_excluded(ph, intact, nodule, radius):
    """A tube labelled airway from the lumen nearest a nodule into it (17 mm to lung_nodule_3,
    70 mm to lung_nodule_2; radius 1-3 mm), the CT unchanged: on main a short leak at the end of
    a long narrow tail was hidden by the tail's median (lung_nodule_3: 'reached' and a bronchus
    sign, no word) and a scope that stops short still reported the leak's bronchus sign. Now
    neither is claimed on the leak: a leak the CT resolves (3 mm radius: lumen over 2 CT voxels)
    is named and excluded (not reached, no bronchus sign from it); a narrower one is said to
    leave them unverified. Own check: the CT along the tube's axis reads lung (no air core)."""
    L = ph.labels
    lab, a, _ = _leak_into(L, nodule, radius)
    c = L.kji_to_world(np.argwhere(L.mask(nodule))).mean(axis=0)
    axis = a + np.linspace(0.1, 0.8, 40)[:, None] * (c - a)
    hu = ph.ct.sample(axis, order=1)
    assert np.median(hu) > -900.0 and np.percentile(hu, 10) > -950.0   # parenchyma, no air core
    tree = B.extract_tree(lab, lab.mask("trachea", "airways"), ct=ph.ct)
    tg = B.Target.from_mask(L, L.mask(nodule))
    for scope in ("ultrathin", "thin"):
        p = B.plan(tree, tg, scope, ct=ph.ct)
        ref = B.plan(intact, tg, scope, ct=ph.ct)
        assert not ref.route.reached and not ref.route.bronchus_sign   # the case: no real bronchus gets there
        assert not _doubted(ref.all_warnings), ref.all_warnings
        assert _doubted(p.all_warnings), (scope, p.all_warnings)
        # 'reached' and the bronchus sign are not claimed on the leak: excluded, or said unverified
        assert not p.route.reached or "unverified" in p.route.verdict, (scope, p.route.verdict)
        assert p.route.bronchus_sign is not True or "unverified" in p.route.bronchus_sign_reason
        if radius < 3.0:
            continue   # a 3 mm lumen (2 CT voxels): the CT cannot tell it from a thin bronchus
        assert not p.route.reached, (scope, p.all_warnings)
        assert p.route.bronchus_sign is not True, p.route.bronchus_sign_reason
        assert any("possible leak" in w for w in p.all_warnings), p.all_warnings


def test_a_gap_and_a_leak_in_one_mask(ph, intact):
    """The kind of input of ../shared/cases/airway_leak_gap.py, on the phantom as it is now: the
    right upper lobe bronchus cut (a 6 mm ball of its lumen and wall relabelled lung, so the
    subtree leading to lung_nodule_1 is a separate piece) and a 3 mm-radius wall-less tube labelled
    airway from the lumen nearest lung_nodule_3 (right lower lobe) into it. The gap is bridged (or
    reported) and lung_nodule_1 reached as on the intact mask; the leak is named and excluded and
    lung_nodule_3 not reported reached."""
    L = ph.labels
    rul = next(b for b in ph.airway_tree if b.name == "right_upper_lobe_bronchus")
    mid = (np.asarray(rul.start_ras) + np.asarray(rul.end_ras)) / 2
    lab, _, _ = _leak_into(L, "lung_nodule_3", 3.0)
    arr = lab.array.copy()
    vals = [v for v, n in L.labels.items() if n in ("trachea", "airways", "airway_wall")]
    cut = _ball(L, mid, 6.0) & np.isin(arr, vals)
    assert cut.any()
    arr[cut] = next(v for v, n in L.labels.items() if n == "lung_upper_lobe_right")
    lab = L.with_array(arr)
    tree = B.extract_tree(lab, lab.mask("trachea", "airways"), ct=ph.ct)
    gap_said = [w for w in tree.warnings if "gap" in w]
    assert gap_said, tree.warnings
    t1 = B.Target.from_mask(L, L.mask("lung_nodule_1"))
    p1, r1 = B.plan(tree, t1, NODULE_1_SCOPE, ct=ph.ct), B.plan(intact, t1, NODULE_1_SCOPE, ct=ph.ct)
    assert r1.route.reached
    assert p1.route.reached or any("not reconnected" in w or "far" in w for w in tree.warnings), tree.warnings
    assert not _doubted(p1.all_warnings), p1.all_warnings
    # no false alarm: every phantom nodule, every scope, on the intact mask read against the CT
    # (the phantom's narrow bronchi to lung_nodule_1, 3 mm lumens of 2 CT voxels, show their walls)
    for les in ph.lesions:
        if les.kind == "lung_nodule":
            tg = B.Target.from_mask(L, L.mask(les.name))
            for scope in ("ultrathin", "thin"):
                p = B.plan(intact, tg, scope, ct=ph.ct)
                assert not _doubted(p.all_warnings), (les.name, scope, p.all_warnings)
    t3 = B.Target.from_mask(L, L.mask("lung_nodule_3"))
    for scope in ("ultrathin", "thin"):
        p3 = B.plan(tree, t3, scope, ct=ph.ct)
        assert not p3.route.reached and p3.route.bronchus_sign is not True, (scope, p3.all_warnings)
        assert any("possible leak" in w for w in p3.all_warnings), p3.all_warnings


def test_a_leak_the_ct_cannot_resolve_leaves_reach_and_sign_unverified(ph):
    """The same 2 mm tube into lung_nodule_3 read on the CT resampled to 2.4 mm voxels: its
    3 mm lumen is under 2 CT voxels, so the CT cannot show a wall or an air core there and the
    leak cannot be told from a thin bronchus: 'reached' and the bronchus sign that rest on it are
    said to be unverified (warning, verdict, the sign's reason), not claimed. The real 3 mm
    bronchus into lung_nodule_1, whose wall the coarse CT still shows, is not doubted."""
    L = ph.labels
    ct = ph.ct.resampled(np.array([2.4, 2.4, 2.4]), order=1)
    lab, _, _ = _leak_into(L, "lung_nodule_3", 2.0)
    tree = B.extract_tree(lab, lab.mask("trachea", "airways"))
    t3 = B.Target.from_mask(L, L.mask("lung_nodule_3"))
    for scope in ("ultrathin", "thin"):
        p = B.plan(tree, t3, scope, ct=ct)
        said = [w for w in p.all_warnings if "unverified airway" in w]
        assert said, (scope, p.all_warnings)
        if p.route.reached:
            assert "unverified" in p.route.verdict, p.route.verdict
        if p.route.bronchus_sign:
            assert "unverified" in p.route.bronchus_sign_reason, p.route.bronchus_sign_reason
    t1 = B.Target.from_mask(L, L.mask("lung_nodule_1"))
    p1 = B.plan(tree, t1, NODULE_1_SCOPE, ct=ct)
    assert p1.route.reached and not _doubted(p1.all_warnings), p1.all_warnings


def test_a_mask_running_through_a_contrast_filled_vessel_is_no_airway(ph, intact):
    """New-user trial 30 (H1): an airway mask that ran through a contrast-filled vessel (+136 to
    +612 HU on the CT) was kept as bronchus, because a core denser than the parenchyma counted as
    a bronchial wall filling a narrow lumen, with no upper bound; the route ended inside the
    vessel. A 3 mm-radius tube into lung_nodule_3 whose CT reads +400 HU (a vessel with contrast,
    painted in the test) is named and excluded; the nodule is not reached. The CT's values along
    the tube are checked here."""
    L = ph.labels
    lab, a, tube = _leak_into(L, "lung_nodule_3", 3.0)
    ct = ph.ct.with_array(np.where(tube, np.int16(400), ph.ct.array).astype(ph.ct.array.dtype))
    c = L.kji_to_world(np.argwhere(L.mask("lung_nodule_3"))).mean(axis=0)
    hu = ct.sample(a + np.linspace(0.2, 0.8, 30)[:, None] * (c - a), order=1)
    assert np.median(hu) > 300.0                       # the tube's axis reads contrast-filled blood
    tree = B.extract_tree(lab, lab.mask("trachea", "airways"), ct=ct)
    tg = B.Target.from_mask(L, L.mask("lung_nodule_3"))
    for scope in ("ultrathin", "thin"):
        p = B.plan(tree, tg, scope, ct=ct)
        assert not p.route.reached and p.route.bronchus_sign is not True, (scope, p.all_warnings)
        assert any("possible leak" in w for w in p.all_warnings), p.all_warnings


def test_an_unverified_reach_is_not_a_yes_in_the_json(ph):
    """New-user trial 30 (L3): a route whose reach rests on airway mask the CT cannot confirm had
    "unverified" in its verdict but ``"reached": true`` in bronch.json, so a script reading the
    JSON got a yes. The same unresolvable tube as above: wherever the verdict says unverified the
    JSON's "reached" is null (``"reach": "unverified"``), no tunnel is said to be unneeded, the
    tunnel problem says why none was planned, and a catalogue scope's entry that rests on the same
    tube is not a yes either; the real bronchus into lung_nodule_1 stays a plain true."""
    L = ph.labels
    ct = ph.ct.resampled(np.array([2.4, 2.4, 2.4]), order=1)
    lab, _, _ = _leak_into(L, "lung_nodule_3", 2.0)
    tree = B.extract_tree(lab, lab.mask("trachea", "airways"))
    t3 = B.Target.from_mask(L, L.mask("lung_nodule_3"))
    seen = 0
    for scope in ("ultrathin", "thin"):
        p = B.plan(tree, t3, scope, ct=ct)
        doc = p.to_dict()
        if p.route.reached and "unverified" in p.route.verdict:
            seen += 1
            assert doc["route"]["reached"] is None and doc["route"]["reach"] == "unverified", doc["route"]
            assert doc["tunnel_needed"] is None and "unverified" in doc["tunnel_problem"], doc["tunnel_problem"]
            same = [s for s in doc["scopes"] if s["scope"] == scope]
            assert same and same[0]["reached"] is not True, same
        else:
            assert doc["route"]["reached"] is p.route.reached
    assert seen, "the tube's reach was not said to be unverified for any scope"
    p1 = B.plan(tree, B.Target.from_mask(L, L.mask("lung_nodule_1")), NODULE_1_SCOPE, ct=ct)
    assert p1.to_dict()["route"]["reached"] is True and p1.to_dict()["route"]["reach"] == "reached"
