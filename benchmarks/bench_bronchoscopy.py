"""Bronchoscopy: airway-tree extraction and route query on the real ATM'22 airway masks
(512 x 512 x ~390, 0.66 x 0.66 x 0.8 mm), side by side with baselines in the same run.

- extraction: ours (crop + kimimaro TEASAR + rooted tree + pruning + names; goal < 10 s) vs
  scikit-image's 3-D thinning (``skeletonize``, Lee 1994) of the same cropped mask, which gives
  only a voxel skeleton (no graph, radii, tree or names): a lower bound of a thinning pipeline,
  so a ratio below 1 is expected;
- route query: ours (KD-tree of the lesion, reach from precomputed route minima) vs a Dijkstra
  from the trachea over every airway voxel (26-neighbour graph), the naive way to route;
- peak memory of the extraction (tracemalloc: numpy allocations);
- on all ten masks: lobar names found, and routes of the thin scope to points 15 mm beyond the
  deepest branch of each lobe that end in that lobe's subtree (the issue-15 measure; baseline:
  the old "closest reachable airway wall" end point, ``plan_route`` without a lobe).

Rows: name, value, unit, baseline, ratio (baseline / value; > 1 means ours is faster).
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import numpy as np

ATM = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "atm22-airways"


def _voxel_dijkstra(mask, spacing, source_kji):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra

    idx = -np.ones(mask.shape, np.int64)
    pts = np.argwhere(mask)
    idx[tuple(pts.T)] = np.arange(len(pts))
    rows, cols, w = [], [], []
    for dk in (-1, 0, 1):
        for dj in (-1, 0, 1):
            for di in (0, 1):
                if (dk, dj, di) <= (0, 0, 0) and di == 0:
                    continue
                q = pts + [dk, dj, di]
                ok = ((q >= 0) & (q < mask.shape)).all(1)
                ok[ok] = mask[tuple(q[ok].T)]
                rows.append(idx[tuple(pts[ok].T)])
                cols.append(idx[tuple(q[ok].T)])
                w.append(np.full(ok.sum(), float(np.linalg.norm(np.array([dk, dj, di]) * spacing))))
    r, c, ww = np.concatenate(rows), np.concatenate(cols), np.concatenate(w)
    g = coo_matrix((np.r_[ww, ww], (np.r_[r, c], np.r_[c, r])), shape=(len(pts), len(pts))).tocsr()
    src = idx[tuple(source_kji)]
    return dijkstra(g, indices=src)


def run() -> list[dict]:
    from scipy import ndimage
    from skimage.morphology import skeletonize

    from imagio import io
    from imagio.planning import bronchoscopy as B

    files = sorted(ATM.glob("*.nii.gz"))
    if not files:
        return [{"name": "bronchoscopy benchmark skipped (../shared/data/atm22-airways missing)", "value": None}]
    rows = []
    for f in files[:2]:
        v = io.read_image(f)
        tag = f.name.replace("_pred_", " ").replace(".nii.gz", "")
        t0 = time.perf_counter()
        tree = B.extract_tree(v)
        dt = time.perf_counter() - t0
        tracemalloc.start()  # a second run for memory: tracemalloc slows allocation-heavy code
        B.extract_tree(v)
        peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
        tracemalloc.stop()
        m = v.array > 0
        sl = ndimage.find_objects(m.astype(np.uint8))[0]
        t0 = time.perf_counter()
        skeletonize(np.ascontiguousarray(m[sl]))
        base = time.perf_counter() - t0
        s = tree.summary()
        rows.append({"name": f"tree extraction {tag} ({s['n_branches']} branches, {s['n_generations']} gen)",
                     "value": dt, "unit": "s", "baseline": base, "ratio": base / dt})
        rows.append({"name": f"tree extraction peak numpy memory {tag}", "value": peak, "unit": "MiB"})
        # route queries to 20 peripheral points
        rng = np.random.default_rng(0)
        ends = [b.point_ids[-1] for b in tree.branches if not b.children]
        pick = rng.choice(ends, size=min(20, len(ends)), replace=False)
        targets = tree.points[pick] + rng.normal(0, 4.0, (len(pick), 3))
        rmin = B.route_min_diameter(tree)
        t0 = time.perf_counter()
        for p in targets:
            B.plan_route(tree, B.Target.from_point(p), "ultrathin", reach=rmin)
        q = (time.perf_counter() - t0) / len(targets)
        crop = m[sl]
        top = np.argwhere(crop)[np.argmax(np.argwhere(crop)[:, 0])]
        t0 = time.perf_counter()
        _voxel_dijkstra(crop, v.spacing_kji, top)
        qb = time.perf_counter() - t0
        rows.append({"name": f"route query {tag} (mean of {len(targets)})", "value": q * 1000, "unit": "ms",
                     "baseline": qb * 1000, "ratio": qb / q})
    rows += _lobar_rows(files, io, B)
    rows += phantom_rows()
    return rows


PHANTOM_CASES = ((1.5, 0), (1.5, 1), (1.5, 2), (3.0, 1), (3.0, 2))


def phantom_rows(cases=PHANTOM_CASES, verbose: bool = False) -> list[dict]:
    """Per lesion of the realistic phantom (its lung nodules plus one bronchus-sign nodule per lobe
    painted by ``Testing/test_bronchoscopy_truth.py``) and scope: reached or short, the plan's
    remaining distance against the truth (route end to the nodule's voxels minus the painted lumen
    radius), the bronchus sign against the construction, and the route's named branches whose
    territory is their generating namesake's. The truth helpers are the test's (one definition)."""
    import importlib.util
    import sys

    from imagio import phantom
    from imagio.planning import bronchoscopy as B
    from scipy.spatial import cKDTree

    path = Path(__file__).resolve().parents[1] / "Testing" / "test_bronchoscopy_truth.py"
    spec = importlib.util.spec_from_file_location("bronch_truth", path)
    T = importlib.util.module_from_spec(spec)
    sys.modules["bronch_truth"] = T
    spec.loader.exec_module(T)
    n = reached = sign_ok = dist_ok = names_ok = names_all = 0
    err = []
    for sp, seed in cases:
        ph = phantom.generate(spacing=sp, seed=seed)
        truth = T.Truth(ph)
        labels, leads = T.add_bronchus_sign_nodules(ph, truth)
        tree = B.extract_tree(labels, labels.mask("trachea", "airways"), coarse_ok=True)
        tn = {b.name for b in truth.T if b.name}
        for name, m, sign, lead in T._targets(ph, labels, leads):
            for scope in ("thin", "ultrathin"):
                r = B.plan_route(tree, B.Target.from_mask(labels, m), scope)
                j, paint, _ = truth.locate(r.points)
                d_true = max(float(cKDTree(labels.kji_to_world(np.argwhere(m))).query(r.end_ras)[0] - paint[-1]), 0)
                nm = [(x, b) for x, b in zip(r.branch_names, r.branch_ids) if x]
                good = sum(T._territory_match(tree, truth, b, x, tn)[0] >= T.TERRITORY_MATCH for x, b in nm)
                n += 1
                reached += r.reached
                sign_ok += r.bronchus_sign == sign
                err.append(abs(r.remaining_mm - d_true))
                dist_ok += err[-1] <= 1.5 * sp
                if sp <= T.NAMED_UP_TO_MM:
                    names_ok += good
                    names_all += len(nm)
                if verbose:
                    print(f"{sp:g} mm seed {seed} {name:32s} {scope:9s} sign truth {sign!s:5s} plan {r.bronchus_sign!s:5s} "
                          f"{'reached' if r.reached else 'short':7s} remaining {r.remaining_mm:5.1f} truth {d_true:5.1f} "
                          f"named {good}/{len(nm)} end {r.end_lobe.replace('lung_', '')} "
                          f"[{' > '.join(x for x, _ in nm)}]")
    return [{"name": f"phantom routes (nodules x scopes, {len(cases)} phantoms)", "value": n, "unit": "routes"},
            {"name": "phantom routes reached", "value": reached, "unit": "routes"},
            {"name": "bronchus sign as constructed", "value": sign_ok, "unit": "routes"},
            {"name": "remaining distance within 1.5 voxels of the truth", "value": dist_ok, "unit": "routes"},
            {"name": "remaining distance |plan - truth| max", "value": float(np.max(err)), "unit": "mm"},
            {"name": "named route branches whose territory is their namesake's (<= 2.5 mm grids)",
             "value": names_ok, "unit": f"of {names_all}"}]


if __name__ == "__main__":
    for row in phantom_rows(verbose=True):
        print(row)


LOBAR = ("right_upper_lobe_bronchus", "right_middle_lobe_bronchus", "right_lower_lobe_bronchus",
         "left_upper_lobe_bronchus", "left_lower_lobe_bronchus")


def _lobar_rows(files, io, B) -> list[dict]:
    """Names and in-lobe route ends on every mask (thin scope, targets 15 mm beyond each lobe)."""
    named = in_lobe = closest_in_lobe = total = 0
    t_label = []
    from imagio.planning.bronchoscopy.anatomy import label_tree

    for f in files:
        t = B.extract_tree(io.read_image(f))
        t0 = time.perf_counter()
        label_tree(t)
        t_label.append(time.perf_counter() - t0)
        names = {b.name for b in t.branches}
        named += all(n in names for n in LOBAR)
        rmin = B.route_min_diameter(t)
        for n in LOBAR:
            sub = set()
            for b in t.branches:
                if b.name == n:
                    stack = [b.id]
                    while stack:
                        x = stack.pop()
                        sub.add(x)
                        stack += t.branches[x].children
            if not sub:
                continue
            pts = np.concatenate([t.branches[x].point_ids for x in sub])
            far = pts[np.argmax(t.dist_from_root[pts])]
            d = t.points[far] - t.points[t.parent[t.parent[far]]]
            tg = B.Target.from_point(t.points[far] + 15.0 * d / np.linalg.norm(d))
            r = B.plan_route(t, tg, "thin", reach=rmin)
            in_lobe += r.branch_ids[-1] in sub
            # the old rule: the reachable point whose wall is closest to the target, anywhere
            ok = (t.branch_of >= 0) & (rmin >= 4.2 - 0.5)
            wd, _ = B.route.wall_distance(t, tg)
            old = np.flatnonzero(ok)[np.argmin(wd[ok])]
            closest_in_lobe += int(t.branch_of[old]) in sub
            total += 1
    return [{"name": f"masks with all five lobar bronchi named (of {len(files)})", "value": named, "unit": "masks"},
            {"name": "label_tree time (mean over masks)", "value": 1000 * float(np.mean(t_label)), "unit": "ms"},
            {"name": f"thin-scope routes ending in the target's lobe (of {total})", "value": in_lobe,
             "unit": "routes", "baseline": closest_in_lobe,
             "ratio": (closest_in_lobe / in_lobe) if in_lobe else None}]
