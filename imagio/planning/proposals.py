"""Proposals from a scored candidate table: weighted ranking, the Pareto-optimal set over the
soft costs, and diversity (a minimum separation between proposed entry points, mm)."""

from __future__ import annotations

import numpy as np

from .scoring import ScoreTable


def pareto_mask(costs: np.ndarray, chunk: int = 256) -> np.ndarray:
    """True for rows of ``costs`` (n, m; lower is better) that no other row dominates.

    Rows in lexicographic order, in chunks: a row that dominates another is lexicographically
    smaller, and a dominated row's dominator is itself dominated by a kept one (transitivity),
    so each chunk is compared with the rows kept so far and with itself only (the same result
    as all pairs, O(n p m) for p kept rows instead of O(n^2 m))."""
    n = len(costs)
    keep = np.zeros(n, bool)
    if n == 0:
        return keep
    order = np.lexsort(costs.T[::-1])
    kept = costs[:0]
    for a in range(0, n, chunk):
        rows = order[a:a + chunk]
        c = costs[rows]
        ref = np.concatenate([kept, c])
        le = (ref[None, :, :] <= c[:, None, :]).all(-1)
        lt = (ref[None, :, :] < c[:, None, :]).any(-1)
        nd = ~(le & lt).any(1)
        keep[rows[nd]] = True
        kept = np.concatenate([kept, c[nd]])
    return keep


def diverse_pick(order: np.ndarray, entries: np.ndarray, k: int, separation_mm: float) -> list[int]:
    """Up to ``k`` indices from ``order`` (best first), each entry at least ``separation_mm``
    from the entries already kept: take the best remaining, drop its neighbours, repeat."""
    kept: list[int] = []
    alive = np.ones(len(order), bool)
    pts = entries[order]
    while len(kept) < k and alive.any():
        j = int(np.argmax(alive))
        kept.append(int(order[j]))
        alive &= np.linalg.norm(pts - pts[j], axis=1) >= separation_mm
    return kept


def propose(table: ScoreTable, k: int = 5, separation_mm: float = 15.0, pareto_limit: int = 2000,
            defer: np.ndarray | None = None):
    """(ranked, pareto): indices of up to ``k`` diverse feasible paths by score, and the indices
    of the Pareto-optimal feasible paths among the ``pareto_limit`` best scored (best first).
    ``defer`` (bool or int per row, optional): rows ranked by it before their score, lowest first
    (`findings.deferred`: the rank of each row's findings, 0 none);
    the Pareto set does not depend on it."""
    feas = np.flatnonzero(table.feasible)
    if len(feas) == 0:
        return [], []
    order = feas[np.argsort(table.score[feas], kind="stable")]
    ranked = diverse_pick(order if defer is None else order[np.argsort(defer[order], kind="stable")],
                          table.entry_ras, k, separation_mm)
    top = order[:pareto_limit]
    par = top[pareto_mask(table.costs[top])]
    return ranked, [int(i) for i in par]
