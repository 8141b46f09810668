"""The per-sample part of path scoring in torch (GPU when present), mirroring
``scoring._reduce_numpy`` step by step: same samples, same nearest/trilinear rules, per-path
reductions with ``scatter_reduce``. Optional: imported only when a torch device is asked for.

On the CPU this path is not used by default (``scoring.resolve_device("auto")`` picks numpy
unless CUDA is available): the gathers and segment reductions are memory-bound, numpy runs them
on threads per chunk already, and torch's ``scatter_reduce`` / ``repeat_interleave`` on the
CPU were measured slower than numpy's ``reduceat`` (``make bench``: bench_planning's "torch cpu"
row against numpy in the same run); importing torch also costs about 1.5 s. It stays for
``device="cpu"`` (parity tests) and for CUDA.

Everything per path stays on the device until one transfer of the finished table per chunk
(`score_torch`): the nearest structure at each path's closest sample is a gather from the
voxel maps `PlanningMaps.nearest_map` (built once per maps, the k-d trees' rule on every
voxel) instead of a k-d tree query on the CPU, and the finish (angles, the table-side rule,
the violation rules `scoring.violations`, costs `criteria.criterion_costs`, score) runs in
torch, float64 where numpy uses float64. Distances are the numpy scorer's trilinear samples of
the same maps (float32 here and there); feasibility is the same rule set.
"""

from __future__ import annotations

import numpy as np

from ..anatomy import is_liver
from .distance_maps import AERATED, BODY, EMPH, FORBIDDEN, LIVER, LUNG
from .problem import target_bone_run


def _maps_on(maps, device):
    import torch

    cache = maps.__dict__.setdefault("_torch", {})
    if device not in cache:
        t = lambda a, dt: torch.as_tensor(np.ascontiguousarray(a).ravel(), dtype=dt, device=device)  # noqa: E731
        cache[device] = {
            # label | flags << 16 (< 2**31) or, uint16, label | flags << 8 (< 2**15: flags < 128)
            "code": t(maps.code.view(np.int32 if maps.code.dtype == np.uint32 else np.int16), torch.int32),
            "hard": t(maps.hard, torch.float32),
            "avoid": t(maps.avoid, torch.float32),
            "struct_of_label": t(maps.struct_of_label, torch.int32),
            "margins": t(maps.margins.astype(np.float32), torch.float32),
        }
        for g in ("hard", "avoid"):   # nearest structure per voxel (int16; None: no such group)
            nm = maps.nearest_map(g) if g == "hard" or maps.has["avoid"] else None
            cache[device]["near_" + g] = None if nm is None else t(nm, torch.int16)
    return cache[device]


def _seg_min(vals, seg, n, fill):
    import torch

    out = torch.full((n,), fill, dtype=vals.dtype, device=vals.device)
    return out.scatter_reduce_(0, seg, vals, "amin", include_self=True)


def _seg_sum(vals, seg, n):
    import torch

    return torch.zeros(n, dtype=torch.int64, device=vals.device).index_add_(0, seg, vals.to(torch.int64))


def _trilinear(field, shape, k, j, i):
    import torch

    sk, sj = shape[1] * shape[2], shape[2]
    base, fr = [], []
    for x, s in zip((k, j, i), shape):
        b = torch.clamp(torch.floor(x), 0, s - 2)
        fr.append(torch.clamp(x - b, 0.0, 1.0))
        base.append(b.to(torch.int64))
    flat = base[0] * sk + base[1] * sj + base[2]
    fk, fj, fi = fr
    v = field
    c00 = v[flat] * (1 - fi) + v[flat + 1] * fi
    c01 = v[flat + sj] * (1 - fi) + v[flat + sj + 1] * fi
    c10 = v[flat + sk] * (1 - fi) + v[flat + sk + 1] * fi
    c11 = v[flat + sk + sj] * (1 - fi) + v[flat + sk + sj + 1] * fi
    return (c00 * (1 - fj) + c01 * fj) * (1 - fk) + (c10 * (1 - fj) + c11 * fj) * fk


def reduce_torch(problem, maps, entry_ras, target, device) -> dict:
    """Per-path reductions (same keys as ``scoring._reduce_numpy``; torch tensors on ``device``,
    but ``length`` (n,) numpy float64 and ``n_samples`` an int)."""
    import torch

    from .scoring import _sample_counts   # (scoring imports this module only when asked for torch)

    m = _maps_on(maps, device)
    shape = maps.code.shape
    n = len(entry_ras)
    step = problem.constraints.step_voxels * float(min(maps.grid.spacing))
    e = maps.world_to_kji(entry_ras)
    t = maps.world_to_kji(np.broadcast_to(target, np.shape(entry_ras)))
    length = np.linalg.norm(np.asarray(target, float) - entry_ras, axis=1)
    counts_np = _sample_counts(length, step)
    starts_np = np.concatenate([[0], np.cumsum(counts_np)[:-1]])
    n_total = int(counts_np.sum())
    dev = torch.device(device)
    counts = torch.as_tensor(counts_np, device=dev)
    starts = torch.as_tensor(starts_np, device=dev)
    seg = torch.repeat_interleave(torch.arange(n, device=dev), counts)
    ar = torch.arange(n_total, device=dev)
    frac = (ar - starts[seg]).to(torch.float32) * (1.0 / (counts - 1).to(torch.float32))[seg]
    e_t = torch.as_tensor(e, dtype=torch.float32, device=dev)
    d_t = torch.as_tensor(t - e, dtype=torch.float32, device=dev)
    k, j, i = (e_t[seg, a] + frac * d_t[seg, a] for a in range(3))
    idx = [torch.clamp(torch.round(x), 0, s - 1).to(torch.int64) for x, s in zip((k, j, i), shape)]
    flat = idx[0] * (shape[1] * shape[2]) + idx[1] * shape[2] + idx[2]
    code = m["code"][flat]
    lab = code & ((1 << maps.code_shift) - 1)
    flg = code >> maps.code_shift
    exempt = problem.exempt_value
    in_target = (lab == exempt) if exempt else torch.zeros(n_total, dtype=torch.bool, device=dev)
    big = torch.tensor(n_total, device=dev)

    def seg_first(mask):
        return _seg_min(torch.where(mask, ar, big), seg, n, n_total)

    cap = float(maps.cap_mm)
    hard = m["hard"][flat].clone()   # margins hold inside the target's organ too
    diag = float(np.linalg.norm(maps.grid.spacing))
    seg_min = _seg_min(hard, seg, n, float("inf"))
    at0 = seg_first(hard <= seg_min[seg])
    upper = _trilinear(m["hard"], shape, k[at0], j[at0], i[at0])
    sel = torch.nonzero((hard <= upper[seg] + diag) & ((hard < cap) | (upper[seg] + diag >= cap))).squeeze(1)
    hard[sel] = _trilinear(m["hard"], shape, k[sel], j[sel], i[sel])
    slack = _seg_min(hard, seg, n, float("inf"))
    at = seg_first(hard <= slack[seg])
    closest = m["near_hard"][flat[at]].to(torch.int64)   # = maps.hard_structure (device gather)
    closest_t = frac[at]
    margin = torch.where(closest >= 0, m["margins"][torch.clamp(closest, min=0)].to(torch.float64), 0.0)
    if maps.has["avoid"]:
        avoid = m["avoid"][flat].clone()
        avoid_min = _seg_min(avoid, seg, n, float("inf"))
        at_a = seg_first(avoid <= avoid_min[seg])
        avoid_id = m["near_avoid"][flat[at_a]].to(torch.int64)   # = maps.avoid_structure
    else:
        avoid_min = torch.full((n,), cap, device=dev)
        avoid_id = torch.full((n,), -1, dtype=torch.int64, device=dev)
    first_forb = seg_first((flg & FORBIDDEN) > 0)
    hit = first_forb < n_total
    forbidden_hit = torch.full((n,), -1, dtype=torch.int32, device=dev)
    forbidden_hit[hit] = m["struct_of_label"][lab[first_forb[hit]].long()]
    length_t = torch.as_tensor(length.astype(np.float32), device=dev)
    away = frac * length_t[seg] > float(np.linalg.norm(maps.grid.spacing))
    outside = _seg_sum(((flg & BODY) == 0) & away, seg, n) > 0

    # per-path step (float32 values, as numpy) applied in float64 (numpy: int32 counts x float32)
    smm = torch.as_tensor((length / (counts_np - 1)).astype(np.float32), device=dev).to(torch.float64)
    zi = torch.zeros(n, dtype=torch.int64, device=dev)
    segstart = torch.zeros(n_total, dtype=torch.bool, device=dev)
    segstart[starts] = True
    if maps.has["lung"]:
        lung = (flg & LUNG) > 0
        aer = (flg & AERATED) > 0
        lung_mm = _seg_sum(lung, seg, n) * smm
        aer_n = _seg_sum(aer, seg, n)
        emph_n = _seg_sum((flg & EMPH) > 0, seg, n)
        change = torch.zeros(n_total, dtype=torch.bool, device=dev)
        change[1:] = lung[1:] != lung[:-1]
        change[segstart] = False
        pleural = _seg_sum(change, seg, n)
        if maps.has["lobes"]:
            is_lobe = torch.as_tensor(maps.lobe_of_label, device=dev)[lab]
            lobe = torch.where(aer & is_lobe, lab, torch.zeros_like(lab))
            anchor = (lobe > 0) | segstart | ~lung
            ff = torch.cummax(torch.where(anchor, ar, torch.zeros_like(ar)), 0).values
            prev = torch.zeros_like(lobe)
            prev[1:] = lobe[ff[:-1]]
            fiss = (lobe > 0) & (prev > 0) & (lobe != prev) & ~segstart
            fissures = _seg_sum(fiss, seg, n)
        else:
            fissures = zi
        emph_pct = torch.where(aer_n > 0, 100.0 * emph_n.to(torch.float64) / torch.clamp(aer_n, min=1),
                               torch.zeros(n, dtype=torch.float64, device=dev))
    else:
        lung_mm, aer_n, pleural, fissures = torch.zeros(n, device=dev), zi, zi, zi
        emph_pct = torch.zeros(n, dtype=torch.float64, device=dev)
    if maps.has["liver"] and is_liver(problem.target.organ):
        first_tgt = seg_first(in_target) if exempt else starts + counts
        liver = ((flg & LIVER) > 0) & (ar < first_tgt[seg])
        liver_before = _seg_sum(liver, seg, n) * smm
    else:
        liver_before = torch.zeros(n, device=dev)
    bv = target_bone_run(problem)
    if bv:   # the one rule (`scoring._bone_run_numpy`): bone only as the final run
        inb = torch.isin(lab, torch.as_tensor(bv, dtype=lab.dtype, device=dev))
        left = (ar >= seg_first(inb)[seg]) & ~inb
        bone_mm, reentry = _seg_sum(lab == bv[0], seg, n) * smm, _seg_sum(left, seg, n) > 0
    else:
        bone_mm, reentry = torch.zeros(n, device=dev), torch.zeros(n, dtype=torch.bool, device=dev)
    return dict(length=length, slack=slack, closest=closest, closest_t=closest_t, margin=margin,
                avoid_min=avoid_min, avoid_id=avoid_id, forbidden_hit=forbidden_hit, hit=hit,
                lung_mm=lung_mm, aer_mm=aer_n * smm, pleural=pleural, fissures=fissures,
                emph_pct=emph_pct, liver_before=liver_before, outside=outside, n_samples=n_total,
                bone_mm=bone_mm, bone_reentry=reentry)


def angles_torch(e, tgt, nrm):
    """`scoring.angles` on (n, 3) float64 tensors: skin, craniocaudal, in-plane, tilt (deg)."""
    import torch

    d = tgt - e
    u = d / torch.linalg.norm(d, dim=1, keepdim=True)
    skin = torch.rad2deg(torch.arccos(torch.clamp(-(u * nrm).sum(1), -1.0, 1.0)))
    cc = torch.rad2deg(torch.arcsin(torch.clamp(torch.abs(u[:, 2]), 0.0, 1.0)))
    inplane = torch.rad2deg(torch.arctan2(torch.abs(u[:, 0]), torch.abs(u[:, 1])))
    tilt = torch.rad2deg(torch.arctan2(torch.abs(u[:, 2]), torch.abs(u[:, 1])))
    return skin, cc, inplane, tilt


def against_table_torch(problem, e, tgt, nrm, length, length_np, direction, maps, device):
    """`scoring.against_table` on float64 tensors (the same steps from the entry to the hub's end,
    `scoring.table_steps`, and the same column lookup, `table.TableSurface.below`, read from the surface's dense column
    table kept on the device): bool (n,)."""
    import torch

    from .scoring import table_steps
    from .table import locate_table_cached

    c, needle = problem.constraints, problem.needle
    d = np.asarray(direction, float)
    faces = nrm @ torch.as_tensor(d, dtype=torch.float64, device=e.device) > np.cos(np.radians(c.table_exclusion_deg))
    if c.table_exclusion_deg <= 0:
        return faces
    u = tgt - e
    u = u / torch.clamp(torch.linalg.norm(u, dim=1, keepdim=True), min=1e-9)
    outside = torch.clamp(needle.length_mm - length, min=0.0)
    table = locate_table_cached(problem, d)
    if not table.located and problem.skin is not None:   # `scoring.against_table`: the body's outline (trial 81)
        from .table import on_couch_side_of_outline

        side = on_couch_side_of_outline(problem.ct, problem.skin.body, e.cpu().numpy(), nrm.cpu().numpy(), d,
                                        c.table_exclusion_deg)
        faces = faces | torch.as_tensor(side, device=e.device)
    b, h, x, y = table_steps(problem, table, np.clip(needle.length_mm - length_np, 0.0, None).max(initial=0.0))
    key = ("table", device, tuple(np.round(d, 6)))
    cache = maps.__dict__.setdefault("_torch", {})
    if key not in cache or cache[key][0] is not table:
        grid, u0, v0 = table._grid()
        e1 = np.cross(d, [0.0, 0.0, 1.0] if abs(d[2]) < 0.9 else [1.0, 0.0, 0.0])   # `table._column_uv`
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(d, e1)
        axes = torch.as_tensor(np.stack([d, e1, e2], 1), dtype=torch.float64, device=e.device)
        cache[key] = (table, torch.as_tensor(grid, dtype=torch.float64, device=e.device), u0, v0, axes)
    _, grid, u0, v0, axes = cache[key]
    # `scoring.hub_rim_axes`, the same steps
    dt = torch.as_tensor(d, dtype=torch.float64, device=e.device)
    w = dt[None, :] - (u @ dt)[:, None] * u
    sin = torch.linalg.norm(w, dim=1, keepdim=True)
    helper = torch.where(torch.abs(u[:, :1]) < 0.9, torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64, device=e.device),
                         torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64, device=e.device))
    w = torch.where(sin > 1e-6, w, torch.linalg.cross(u, helper))
    w1 = w / torch.linalg.norm(w, dim=1, keepdim=True)
    w2 = torch.linalg.cross(u, w1)
    below = torch.zeros(len(e), dtype=torch.bool, device=e.device)
    B, H, X, Y = (torch.as_tensor(v, dtype=torch.float64, device=e.device) for v in (b, h, x, y))
    for s0 in range(0, len(b), 16):   # the steps 16 at a time, each block vectorised over the paths
        sl = slice(s0, s0 + 16)
        of = torch.where(H[None, sl] > 0, outside[:, None] + B[None, sl],
                         torch.minimum(B[None, sl], outside[:, None]))   # (n, S) mm back from the entry
        p = (e[:, None, :] - u[:, None, :] * of[..., None] + X[None, sl, None] * w1[:, None, :]
             + Y[None, sl, None] * w2[:, None, :])          # (n, S, 3) RAS
        s = p @ axes   # along d, e1, e2
        iu = torch.floor(s[..., 1] / table.bin_mm).to(torch.int64) - u0
        iv = torch.floor(s[..., 2] / table.bin_mm).to(torch.int64) - v0
        lim = torch.full(iu.shape, float(table.deepest_mm), dtype=torch.float64, device=e.device)
        if grid.numel():
            ok = (iu >= 0) & (iu < grid.shape[0]) & (iv >= 0) & (iv < grid.shape[1])
            top = grid[torch.where(ok, iu, 0), torch.where(ok, iv, 0)]
            lim = torch.where(ok & ~torch.isnan(top), top, lim)
        below |= ((s[..., 0] > lim) & (of > 0)).any(1)
    return faces | below


def score_torch(problem, maps, entry_ras, normal_ras, target, device):
    """One chunk scored on ``device`` (`reduce_torch`, then the finish in torch): the
    `scoring.ScoreTable` of ``scoring._finish``, with one transfer to the CPU."""
    import torch

    from .criteria import criterion_costs
    from .scoring import ScoreTable, score_weights, unseen_skin, violations

    r = reduce_torch(problem, maps, entry_ras, target, device)
    dev = torch.device(device)
    c, needle = problem.constraints, problem.needle
    n = len(entry_ras)
    f64 = lambda a: torch.as_tensor(np.ascontiguousarray(a, float), dtype=torch.float64, device=dev)  # noqa: E731
    e, nrm = f64(entry_ras), f64(normal_ras)
    tgt = f64(np.broadcast_to(target, np.shape(entry_ras)))
    length_np = r["length"]
    length = f64(length_np)
    skin, cc, inplane, tilt = angles_torch(e, tgt, nrm)
    table = against_table_torch(problem, e, tgt, nrm, length, length_np, c.table_direction, maps, device)
    region = None
    if c.entry_region is not None:
        from .entry_region import distance_to_region

        region = f64(distance_to_region(entry_ras, c.entry_region[0]))   # (n x polyline, CPU; rare)
    slack = r["slack"]
    unseen = unseen_skin(problem, entry_ras, target, normal_ras, length_np)   # (numpy: a walk along rays)
    unseen = None if unseen is None else torch.as_tensor(unseen, device=dev)
    v = violations(problem, torch.zeros(n, dtype=torch.int64, device=dev), torch.where, length=length,
                   table=table, region=region, skin=skin, cc=cc, hit=r["hit"], outside=r["outside"],
                   bone_reentry=r["bone_reentry"], slack=slack, liver_before=r["liver_before"],
                   pleural=r["pleural"], fissures=r["fissures"], emph_pct=r["emph_pct"], unseen=unseen)
    widen = needle.widening_mm
    costs = criterion_costs({
        "length_fraction": length / needle.length_mm, "clearance_above_required_mm": slack.to(torch.float64) - widen,
        "skin_angle_deg": skin, "craniocaudal_deg": cc, "avoid_mm": r["avoid_min"],
        "aerated_mm": r["aer_mm"], "pleural_crossings": r["pleural"], "fissure_crossings": r["fissures"],
        "emphysema_pct": r["emph_pct"], "bone_mm": r["bone_mm"]})
    w = score_weights(problem)
    score = (costs.to(torch.float64) @ torch.as_tensor(w, dtype=torch.float64, device=dev)) / max(float(w.sum()), 1e-9)
    cols = {   # name: (tensor, numpy dtype of the table's column)
        "skin": (skin, np.float64), "cc": (cc, np.float64), "inplane": (inplane, np.float64),
        "tilt": (tilt, np.float64), "slack": (slack, np.float32), "margin": (r["margin"], np.float64),
        "closest": (r["closest"], np.int16), "closest_t": (r["closest_t"], np.float32),
        "avoid_min": (r["avoid_min"], np.float32), "avoid_id": (r["avoid_id"], np.int16),
        "forbidden_hit": (r["forbidden_hit"], np.int16), "lung_mm": (r["lung_mm"], np.float32),
        "aer_mm": (r["aer_mm"], np.float32), "pleural": (r["pleural"], np.int32),
        "fissures": (r["fissures"], np.int32), "emph_pct": (r["emph_pct"], np.float64),
        "liver_before": (r["liver_before"], np.float32), "v": (v, np.int32), "score": (score, np.float32)}
    # one transfer: every column as float64 (exact for these float32 values and small integers)
    host = torch.cat([torch.stack([x.to(torch.float64) for x, _ in cols.values()], 1),
                      costs.to(torch.float64)], 1).cpu().numpy()
    h = {k: host[:, i].astype(dt) for i, (k, (_, dt)) in enumerate(cols.items())}
    costs_np = host[:, len(cols):].astype(np.float32)
    return ScoreTable(
        entry_ras, np.broadcast_to(target, entry_ras.shape).copy(), normal_ras, length_np, h["skin"], h["cc"],
        h["inplane"], h["tilt"], h["slack"], h["slack"] + h["margin"], h["closest"], h["closest_t"],
        h["avoid_min"], h["avoid_id"], h["forbidden_hit"], h["lung_mm"], h["aer_mm"], h["pleural"],
        h["fissures"], h["emph_pct"], h["liver_before"], h["v"], costs_np, h["score"], list(maps.names),
        widen, r["n_samples"])
