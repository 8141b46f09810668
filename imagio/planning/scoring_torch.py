"""The per-sample part of path scoring in torch (GPU when present), mirroring
``scoring._reduce_numpy`` step by step: same samples, same nearest/trilinear rules, per-path
reductions with ``scatter_reduce``. Optional: imported only when a torch device is asked for.

On the CPU this path is not used by default (``scoring.resolve_device("auto")`` picks numpy
unless CUDA is available): the gathers and segment reductions are memory-bound, numpy runs them
on threads per chunk already, and torch's ``scatter_reduce`` / ``repeat_interleave`` on the
CPU were measured slower than numpy's ``reduceat`` (``make bench``: bench_planning's "torch cpu"
row against numpy in the same run); importing torch also costs about 1.5 s. It stays for
``device="cpu"`` (parity tests) and for CUDA.
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
            "code": t(maps.code.view(np.int32), torch.int32),   # label | flags << 16 (< 2**31)
            "hard": t(maps.hard, torch.float32),
            "avoid": t(maps.avoid, torch.float32),
            "struct_of_label": t(maps.struct_of_label, torch.int32),
            "margins": t(maps.margins.astype(np.float32), torch.float32),
        }
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
    """Per-path reductions (same keys as ``scoring._reduce_numpy``), computed on ``device``."""
    import torch

    m = _maps_on(maps, device)
    shape = maps.code.shape
    n = len(entry_ras)
    step = problem.constraints.step_voxels * float(min(maps.grid.spacing))
    e = maps.world_to_kji(entry_ras)
    t = maps.world_to_kji(np.broadcast_to(target, np.shape(entry_ras)))
    length = np.linalg.norm(np.asarray(target, float) - entry_ras, axis=1)
    counts_np = np.maximum(2, np.ceil(length / step).astype(np.int64) + 1)
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
    lab = code & 0xFFFF
    flg = code >> 16
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
    closest = maps.hard_structure(flat[at].cpu().numpy())   # k-d tree lookup, n points (CPU)
    closest_t = frac[at]
    margin = np.where(closest >= 0, maps.margins[np.maximum(closest, 0)], 0.0)
    if maps.has["avoid"]:
        avoid = m["avoid"][flat].clone()
        avoid_min = _seg_min(avoid, seg, n, float("inf"))
        at_a = seg_first(avoid <= avoid_min[seg])
        avoid_id = maps.avoid_structure(flat[at_a].cpu().numpy())
    else:
        avoid_min = torch.full((n,), cap, device=dev)
        avoid_id = np.full(n, -1, np.int16)
    first_forb = seg_first((flg & FORBIDDEN) > 0)
    hit = first_forb < n_total
    forbidden_hit = torch.full((n,), -1, dtype=torch.int32, device=dev)
    forbidden_hit[hit] = m["struct_of_label"][lab[first_forb[hit]].long()]
    length_t = torch.as_tensor(length.astype(np.float32), device=dev)
    away = frac * length_t[seg] > float(np.linalg.norm(maps.grid.spacing))
    outside = _seg_sum(((flg & BODY) == 0) & away, seg, n) > 0

    smm = torch.as_tensor((length / (counts_np - 1)).astype(np.float32), device=dev)
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
        emph_pct = torch.where(aer_n > 0, 100.0 * emph_n / torch.clamp(aer_n, min=1),
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
    c = lambda x: x.detach().cpu().numpy()  # noqa: E731
    return dict(length=length, slack=c(slack), closest=closest, closest_t=c(closest_t),
                margin=margin.astype(np.float64), avoid_min=c(avoid_min), avoid_id=avoid_id,
                forbidden_hit=c(forbidden_hit).astype(np.int16), hit=c(hit), lung_mm=c(lung_mm),
                aer_mm=c(aer_n) * c(smm), pleural=c(pleural).astype(np.int32),
                fissures=c(fissures).astype(np.int32), emph_pct=c(emph_pct), liver_before=c(liver_before),
                outside=c(outside), n_samples=n_total, bone_mm=c(bone_mm).astype(np.float32),
                bone_reentry=c(reentry))
