"""Review 43 M4: the set cover's pair swaps (`multiprobe._pair_swaps`) raised the demo's
multi-probe time; they are pruned (no zone costlier than any improving pair allows) and their
pair test is a packed-bit AND (`_pairs_cover`). The result must be the exhaustive search's: each
pass replaces the pair of chosen zones (one holding critical tissue) whose cheapest covering
replacement pair gains most. Checked against an own brute force over every pair of columns on
random covers with distinct costs."""

import numpy as np

from imagio.planning.ablation.multiprobe import _pair_swaps


def _brute(A, pick, cost, critical, rounds=10):
    pick = [int(z) for z in pick]
    for _ in range(rounds):
        best = None
        cov = A[:, pick]
        cnt = cov.sum(axis=1)
        for x in range(len(pick)):
            for y in range(x + 1, len(pick)):
                if not (critical[pick[x]] or critical[pick[y]]):
                    continue
                need = (cov[:, x] | cov[:, y]) & (cnt - cov[:, x] - cov[:, y] == 0)
                low = None
                cand = [z for z in range(A.shape[1]) if A[need, z].any()]   # zones that cover a row needed
                for z in cand:
                    for w in cand:
                        if (A[need, z] | A[need, w]).all() and (low is None or cost[z] + cost[w] < low[0]):
                            low = (cost[z] + cost[w], z, w)
                if low is None:   # no row needs them (not in a minimal cover)
                    continue
                gain = cost[pick[x]] + cost[pick[y]] - low[0]
                if gain > 1e-12 and (best is None or gain > best[0]):
                    best = (gain, x, y, low[1], low[2])
        if best is None:
            break
        _, x, y, z, w = best
        pick = [p for n, p in enumerate(pick) if n not in (x, y)] + sorted({z, w})
    return np.array(sorted(set(pick)), int)


def _greedy(A):
    left, pick = np.ones(A.shape[0], bool), []
    while left.any():
        z = int(np.argmax(A[left].sum(axis=0)))
        pick.append(z)
        left &= ~A[:, z]
    for z in list(pick):   # minimal, as the solver's covers: no zone the others cover
        rest = [w for w in pick if w != z]
        if rest and A[:, rest].any(axis=1).all():
            pick = rest
    return np.array(pick, int)


def test_pruned_packed_swaps_equal_the_exhaustive_search():
    rng = np.random.default_rng(7)
    changed = 0
    for trial in range(25):
        rows, cols = int(rng.integers(20, 140)), int(rng.integers(15, 45))   # > 64 rows: several words
        A = rng.random((rows, cols)) < rng.uniform(0.1, 0.3)
        A[rng.integers(0, cols, rows) == 0] = True   # (no row uncovered)
        A[np.arange(rows), rng.integers(0, cols, rows)] = True
        cost = 1.0 + rng.random(cols)
        critical = rng.random(cols) < 0.5
        pick = _greedy(A)
        got = _pair_swaps(A, pick, cost, critical)
        want = _brute(A, pick, cost, critical)
        assert np.array_equal(got, want), (trial, got, want)
        assert A[:, got].any(axis=1).all()
        changed += not np.array_equal(np.sort(pick), got)
    assert changed >= 5, changed   # the swaps did act on these covers


def test_pairs_cover_is_the_row_test():
    from imagio.planning.ablation.multiprobe import _pairs_cover

    rng = np.random.default_rng(1)
    for n in (1, 7, 8, 63, 64, 65, 200):
        A = rng.random((n, 30)) < 0.6
        ok = _pairs_cover(np.ascontiguousarray(np.packbits(A, axis=0).T), n)
        assert np.array_equal(ok, (A[:, :, None] | A[:, None, :]).all(axis=0))
