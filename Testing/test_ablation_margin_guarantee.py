"""The guaranteed minimal ablative margin (`multiprobe.guaranteed_margin`) against an independent
check: random points around a tumour on an oblique, flipped, anisotropic grid, their exact
distance to the tumour's label-map voxel boxes (the MAM's outline) and the ellipsoid formula
written out here.
And the set cover's randomised restarts (`_grasp_cover`) on an instance that fools the greedy."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from conftest import rotation
from imagio.planning.ablation import AblationContext, Ellipsoid
from imagio.planning.ablation.multiprobe import (_greedy_cover, _grasp_cover, guaranteed_margin,
                                                 margin_check)
from imagio.volume import Volume, make_ijk_to_ras

SPACING = (0.8, 1.1, 2.0)   # i, j, k mm: the analysis grid becomes 0.8 x 0.55 x 1.0 mm
R = 10.0                    # tumour radius mm


@pytest.fixture(scope="module")
def oblique_tumour():
    shape = (40, 80, 100)
    d = rotation((1, 2, 3), 25.0) @ np.diag([-1.0, 1.0, 1.0])
    vol = Volume(np.zeros(shape, np.uint8), make_ijk_to_ras(SPACING, (-12.5, 30.25, -101.0), d))
    ras = vol.kji_to_world(np.indices(shape).reshape(3, -1).T.astype(float)).reshape(shape + (3,))
    c = vol.kji_to_world(np.array([[20.0, 40.0, 50.0]]))[0]
    arr = np.ones(shape, np.uint8)
    arr[np.linalg.norm(ras - c, axis=-1) <= R] = 2
    lab = Volume(arr, vol.ijk_to_ras, labels={1: "liver", 2: "liver_tumor_1"})
    return AblationContext(lab, "liver_tumor_1"), c


def _box_distance(lab, p, value=2):
    """Independent: distance (mm) from RAS points ``p`` to the tumour's outline drawn from its
    label-map voxels (the union of their boxes, 0 inside), each box distance written out in the
    label grid's own IJK frame; the nearest box is among the 27 nearest voxel centres."""
    vox = np.argwhere(lab.array == value).astype(float)            # kji
    near = cKDTree(lab.kji_to_world(vox)).query(p, k=27)[1]
    qk = lab.world_to_kji(p)
    sp = np.asarray(lab.spacing, float)[::-1]                      # k, j, i mm
    gap = np.maximum(np.abs(qk[:, None, :] - vox[near]) - 0.5, 0.0) * sp
    return np.sqrt((gap ** 2).sum(-1)).min(1)


def _independent(ctx, ells, n=1_500_000, extent=22.0, seed=0):
    """Random RAS points within ``extent`` mm of the tumour's box: (distance to the tumour's
    label-map voxel boxes, inside a zone)."""
    lab = ctx.labels
    t = lab.kji_to_world(np.argwhere(lab.array == 2).astype(float))
    rng = np.random.default_rng(seed)
    p = rng.uniform(t.min(0) - extent, t.max(0) + extent, (n, 3))
    dist = _box_distance(lab, p)
    inside = np.zeros(n, bool)
    for z in ells:
        v = p - z.centre
        s = v @ z.axis
        inside |= s ** 2 / z.a_mm ** 2 + ((v ** 2).sum(1) - s ** 2) / z.b_mm ** 2 <= 1.0
    return dist, inside


def test_guaranteed_margin_holds_at_every_point_and_is_tight(oblique_tumour):
    """Two zones that leave dents: no point closer than the guaranteed margin to the tumour's
    voxel boxes lies outside both, and some point less than 0.3 mm beyond it does (the bound is
    near the truth, not merely safe)."""
    ctx, c = oblique_tumour
    ax = np.array([0.3, 1.0, 0.2]) / np.linalg.norm([0.3, 1.0, 0.2])
    side = np.cross(ax, [0.0, 0.0, 1.0])
    side /= np.linalg.norm(side)
    ells = [Ellipsoid(c + 4.0 * side, ax, 17.0, 14.0), Ellipsoid(c - 4.0 * side, ax, 17.0, 14.0)]
    gm = guaranteed_margin(ctx, ells, 5.0)
    m = gm["guaranteed_margin_mm"]
    assert 0.5 < m < 5.0 and not gm["capped"]
    dist, inside = _independent(ctx, ells)
    assert not np.any(~inside & (dist < m)), np.sort(dist[~inside])[:5]
    assert np.any(~inside & (dist < m + 0.3)), (m, dist[~inside].min())
    chk = margin_check(ctx, ells, 5.0)
    assert not chk["proven"] and chk["guaranteed_margin_mm"] == m and f"{m:.2f} mm" in chk["statement"]


def test_a_zone_that_misses_part_of_the_tumour_guarantees_no_margin(oblique_tumour):
    ctx, c = oblique_tumour
    ells = [Ellipsoid(c + np.array([6.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0]), 14.0, 12.0)]
    m = guaranteed_margin(ctx, ells)["guaranteed_margin_mm"]
    dist, inside = _independent(ctx, ells, n=400_000)
    assert m < 0
    assert np.any(~inside & (dist < 0.5))   # tumour voxel centres themselves lie outside


def test_a_zone_beyond_the_cap_is_reported_as_at_least_the_cap(oblique_tumour):
    ctx, c = oblique_tumour
    big = R + ctx.cap_mm + 3.0
    gm = guaranteed_margin(ctx, [Ellipsoid(c, np.array([1.0, 0.0, 0.0]), big, big)], 5.0)
    assert gm["capped"] and gm["guaranteed_margin_mm"] >= ctx.cap_mm - 1e-3
    assert gm["uncovered"] == 0


def test_randomised_restarts_beat_the_greedy_cover():
    """Two rows of 14 points; each row is one zone (the optimum: 2), and three zones spanning
    both rows (16, 8 and 4 points) lure the greedy into taking all three. The restarts find
    the 2-cover, which meets the lower bound given, so they stop there."""
    A = np.zeros((28, 5), bool)
    A[:14, 0] = A[14:, 1] = True                 # row zones
    for z, cols in ((2, range(0, 8)), (3, range(8, 12)), (4, range(12, 14))):
        for col in cols:
            A[col, z] = A[14 + col, z] = True
    cost = np.ones(5)
    greedy = _greedy_cover(A, cost)
    assert len(greedy) == 3
    best = _grasp_cover(A, greedy, cost, lb=2, most=2)
    assert sorted(best.tolist()) == [0, 1] and A[:, best].any(axis=1).all()


def test_unproven_margin_at_the_scan_end_says_why():
    """New-user trial 21 (L4): a tumour 3 mm from the scan's last slice, every check point inside
    the zone, yet 'NOT proven' with no reason: the margin beyond the image cannot be checked.
    The statement now says how far the tumour lies from which end (oblique flipped grid)."""
    shape = (30, 60, 60)
    d = rotation((1, 2, 3), 25.0) @ np.diag([-1.0, 1.0, 1.0])
    vol = Volume(np.zeros(shape, np.uint8), make_ijk_to_ras(SPACING, (0.0, 0.0, 0.0), d))
    ras = vol.kji_to_world(np.indices(shape).reshape(3, -1).T.astype(float)).reshape(shape + (3,))
    c = vol.kji_to_world(np.array([[25.0, 30.0, 30.0]]))[0]   # 3 voxels of 2 mm from k = 29 (edge to 10 mm ball)
    arr = np.ones(shape, np.uint8)
    arr[np.linalg.norm(ras - c, axis=-1) <= 6.0] = 2
    lab = Volume(arr, vol.ijk_to_ras, labels={1: "liver", 2: "liver_tumor_1"})
    ctx = AblationContext(lab, "liver_tumor_1")
    kk = np.argwhere(arr == 2)[:, 0]
    own = (shape[0] - 1 - kk.max()) * SPACING[2]
    assert own < 5.0
    chk = margin_check(ctx, [Ellipsoid(c, np.array([1.0, 0.0, 0.0]), 25.0, 25.0)], 5.0)
    assert not chk["proven"], chk
    # the end by its anatomical side (trial 91 L2: storage words alone flip with the file's order):
    # independently, the last slice's outward normal is +k, the third column of the direction matrix
    k_dir = vol.ijk_to_ras[:3, 2]
    ax = int(np.argmax(np.abs(k_dir)))
    side = (("left", "right"), ("posterior", "anterior"), ("inferior", "superior"))[ax][int(k_dir[ax] > 0)]
    assert f"lies {own:.1f} mm from the image's {side} end (last slice)" in chk["statement"], chk["statement"]


def _face_margin(lab, ells, n=600_000, extent=16.0, seed=1):
    """Independent: the smallest distance (mm) from a random point outside every zone to the
    tumour's label-map voxel boxes (`_box_distance`)."""
    t = lab.kji_to_world(np.argwhere(lab.array == 2).astype(float))
    rng = np.random.default_rng(seed)
    p = rng.uniform(t.min(0) - extent, t.max(0) + extent, (n, 3))
    inside = np.zeros(n, bool)
    for z in ells:
        v = p - z.centre
        s = v @ z.axis
        inside |= s ** 2 / z.a_mm ** 2 + ((v ** 2).sum(1) - s ** 2) / z.b_mm ** 2 <= 1.0
    return float(_box_distance(lab, p[~inside]).min())


def test_a_margin_short_at_the_drawn_outline_is_not_proven():
    """New-user trial 28 (M1): '5 mm margin proven (guaranteed 5.25 mm)' on a 3 mm label map
    while the zone lay 4.25 mm from the tumour's outline drawn from its voxels (their boxes);
    trial 103 F5.1: 'proven' beside a MAM below 5 mm. The proof is now made on that outline
    with the MAM's own measurement: a zone whose margin there is below 5 mm (independently, random
    points) is NOT proven and says the margin; the figure is safe and near the truth; a zone 2 mm
    larger is proven and the plan's MAM agrees. Oblique flipped 3 mm grid."""
    shape = (24, 30, 30)
    d = rotation((1, 2, 3), 25.0) @ np.diag([-1.0, 1.0, 1.0])
    vol = Volume(np.zeros(shape, np.uint8), make_ijk_to_ras((3.0, 3.0, 3.0), (-12.5, 30.25, -101.0), d))
    ras = vol.kji_to_world(np.indices(shape).reshape(3, -1).T.astype(float)).reshape(shape + (3,))
    c = vol.kji_to_world(np.array([[12.0, 15.0, 15.0]]))[0]
    arr = np.ones(shape, np.uint8)
    arr[np.linalg.norm(ras - c, axis=-1) <= R] = 2
    lab = Volume(arr, vol.ijk_to_ras, labels={1: "liver", 2: "liver_tumor_1"})
    ctx = AblationContext(lab, "liver_tumor_1")
    ax = np.array([1.0, 0.0, 0.0])
    tight = [Ellipsoid(c, ax, R + 6.5, R + 6.5)]
    chk = margin_check(ctx, tight, 5.0)
    own = _face_margin(lab, tight)
    low = chk["guaranteed_margin_mm"]
    assert own < 5.0 and not chk["proven"], (chk, own)
    assert own - 0.5 <= low <= own + 0.02, (low, own)          # safe and near the truth
    assert f"{low:.2f}"[:-1] in chk["statement"] and "NOT proven" in chk["statement"], chk["statement"]
    assert ctx.evaluate(tight, details=False).mam_mm == pytest.approx(low, abs=1e-3)
    roomy = [Ellipsoid(c, ax, R + 8.5, R + 8.5)]
    chk2 = margin_check(ctx, roomy, 5.0)
    assert chk2["proven"] and _face_margin(lab, roomy) >= 5.0
    assert ctx.evaluate(roomy, details=False).criteria["minimal_ablative_margin"]["met"]
