"""A cover whose probe the independent verifier rejects is repaired in place (`repair_cover`):
the rejected zone is replaced by the cheapest verified zone that covers what only it covered
and keeps clear of the other probes, so the cover keeps its count without a second solve. With
plan25's hub-in-the-couch rule the cryo test's first solve used up the 60 s time limit, the
verifier rejected one of its 22 probes (2.68 mm from the right kidney < 2.74 mm), and the
second solve, left 0.1 s, reported INFEASIBLE."""

import numpy as np

from imagio.planning.ablation.multiprobe import Spacing, repair_cover


def _scene():
    # 6 rows; zones: 0 rows 0-2, 1 rows 3-5, 2 rows 3-5 (cheaper than 3), 3 rows 2-5, 4 rows 3-4
    A = np.zeros((6, 5), bool)
    A[0:3, 0] = True
    A[3:6, 1] = True
    A[3:6, 2] = True
    A[2:6, 3] = True
    A[3:5, 4] = True
    cost = np.array([1.0, 1.0, 1.02, 1.05, 1.0])
    return A, cost


def test_rejected_zone_replaced_by_the_cheapest_verified_one():
    A, cost = _scene()
    checked = []

    def accept(c):
        checked.append(c)
        return c != 1

    got = repair_cover(A, [0, 1], [1], cost, accept)
    assert got.tolist() == [0, 2] and A[:, got].any(axis=1).all()
    assert checked == [2]            # cheapest first; zone 4 (rows 3-4) never asked: it leaves row 5
    # the cheaper zone 2 rejected too: the next cheapest that covers rows 3-5
    assert repair_cover(A, [0, 1], [1], cost, lambda c: c not in (1, 2)).tolist() == [0, 3]


def test_replacement_keeps_clear_of_the_kept_probes_and_none_when_nothing_fits():
    A, cost = _scene()
    conflict = np.eye(5, dtype=bool)
    conflict[0, 2] = conflict[2, 0] = True     # zone 2's shaft passes too close to zone 0's
    sp = Spacing(conflict, np.arange(5))
    assert repair_cover(A, [0, 1], [1], cost, lambda c: c != 1, sp).tolist() == [0, 3]
    conflict[0, 3] = conflict[3, 0] = True
    assert repair_cover(A, [0, 1], [1], cost, lambda c: c != 1, Spacing(conflict, np.arange(5))) is None
    # two rejected zones: each replacement also keeps clear of the one taken before it
    B = np.zeros((4, 4), bool)
    B[0:2, 0] = B[2:4, 1] = B[0:2, 2] = B[2:4, 3] = True
    c2 = np.eye(4, dtype=bool)
    c2[2, 3] = c2[3, 2] = True
    assert repair_cover(B, [0, 1], [0, 1], np.ones(4), lambda c: c >= 2, Spacing(c2, np.arange(4))) is None


def test_pair_milp_searches_only_covers_smaller_than_the_one_held():
    """`_milp_spaced` with ``most``: the two-direction milps of a spaced cover keep a cover only
    when it is smaller than the one held, so each later milp is asked for at most one fewer
    (plan26: with 15 coverable direction pairs the cryo test's pair stage took 475 s, most of it
    in milps whose covers could not be kept). Checked against every subset (brute force): the
    fewest columns that cover every row with no two conflicting; at most that many: a cover of
    that size, at most one fewer: none, proven (status 2)."""
    from itertools import combinations

    from imagio.planning.ablation.multiprobe import _milp_spaced

    rng = np.random.default_rng(7)
    A = rng.random((14, 16)) < 0.3
    A[np.arange(14), rng.integers(0, 16, 14)] = True          # every row coverable
    conflict = np.zeros((16, 16), bool)
    for i, j in ((0, 5), (3, 9), (7, 12), (2, 14)):
        conflict[i, j] = conflict[j, i] = True
    sp = Spacing(conflict, np.arange(16), np.repeat(np.arange(4), 4))

    def fewest():
        for k in range(1, 17):
            for c in combinations(range(16), k):
                c = list(c)
                if A[:, c].any(axis=1).all() and not conflict[np.ix_(c, c)].any():
                    return k
    k = fewest()
    assert 2 <= k <= 8, k
    idx = np.arange(16)
    free, st = _milp_spaced(A, sp, idx, 60.0, 1000)
    assert st == 0 and len(free) == k
    at, st = _milp_spaced(A, sp, idx, 60.0, 1000, most=k)
    assert st == 0 and len(at) == k and A[:, at].any(axis=1).all()
    assert not conflict[np.ix_(at, at)].any()
    none, st = _milp_spaced(A, sp, idx, 60.0, 1000, most=k - 1)
    assert len(none) == 0 and st == 2
