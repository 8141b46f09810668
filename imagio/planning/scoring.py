"""Score every candidate path in one vectorised pass.

Each straight path entry -> target is sampled every ``step_voxels`` of the smallest voxel size
(entry first, target last). All samples of all paths are one flat array (paths contiguous,
``starts`` marks their first sample), so paths of different lengths cost only their own
samples; per-path results are ``np.*.reduceat`` reductions. Distance maps are sampled
trilinearly, labels and flags at the nearest voxel, all in the crop's index space (valid for
oblique grids). Angles in degrees, lengths in mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from ..anatomy import is_liver
from .distance_maps import AERATED, BODY, EMPH, FORBIDDEN, LIVER, LUNG, PlanningMaps
from .criteria import CRITERIA, criterion_costs
from .problem import PlanningProblem, load_defaults, target_bone_run

VIOLATIONS = ("reach", "table_side", "entry_region", "skin_angle", "craniocaudal", "forbidden",
              "clearance", "liver_parenchyma", "pleural_crossings", "fissure", "emphysema",
              "leaves_body", "verification", "dense_tissue", "bone_reentry", "unseen_skin")   # leaves_body: air around the patient crossed   # verification: the independent re-check (`verify`) disagreed   # dense_tissue: unlabelled bone/contrast/metal on the CT (`density`)   # unseen_skin: the entry's outside air is not imaged (`unseen_skin`)
BIT = {name: 1 << i for i, name in enumerate(VIOLATIONS)}
ANGLE_TOL_DEG = 0.01


@dataclass
class ScoreTable:
    """Per-candidate metrics (arrays of length n). ``closest``/``avoid_id``/``forbidden_hit``
    are structure indices into ``names`` (-1 none); ``violations`` is a bit set over VIOLATIONS."""

    entry_ras: np.ndarray
    target_ras: np.ndarray
    normal_ras: np.ndarray
    length_mm: np.ndarray
    skin_angle_deg: np.ndarray
    craniocaudal_deg: np.ndarray
    inplane_deg: np.ndarray
    gantry_tilt_deg: np.ndarray
    slack_mm: np.ndarray          # min over the path of (distance - margin) to hard structures
    clearance_mm: np.ndarray      # distance to the structure giving slack_mm (slack + its margin)
    closest: np.ndarray
    closest_t: np.ndarray         # where along the path (0 entry .. 1 target)
    avoid_mm: np.ndarray
    avoid_id: np.ndarray
    forbidden_hit: np.ndarray
    lung_mm: np.ndarray           # inside the pleura
    aerated_mm: np.ndarray        # in aerated lung
    pleural_crossings: np.ndarray
    fissure_crossings: np.ndarray
    emphysema_pct: np.ndarray
    liver_before_mm: np.ndarray   # liver traversed before the target lesion
    violations: np.ndarray
    costs: np.ndarray             # (n, len(CRITERIA)) normalised soft costs in [0, 1]
    score: np.ndarray             # weighted mean of costs, lower is better
    names: list = field(default_factory=list)
    widening_mm: float = 0.0
    n_samples: int = 0

    def __len__(self):
        return len(self.length_mm)

    def take(self, idx) -> "ScoreTable":
        """Rows ``idx`` of the table."""
        kw = {f.name: (getattr(self, f.name)[idx] if isinstance(getattr(self, f.name), np.ndarray)
                       else getattr(self, f.name)) for f in fields(ScoreTable)}
        return ScoreTable(**kw)

    @property
    def feasible(self) -> np.ndarray:
        return self.violations == 0

    def violated(self, i: int) -> list[str]:
        return [n for n in VIOLATIONS if self.violations[i] & BIT[n]]

    def exclusion_counts(self) -> dict:
        """For each constraint: candidates violating it, and those violating only it."""
        out = {}
        for n in VIOLATIONS:
            hit = (self.violations & BIT[n]) > 0
            if hit.any():
                out[n] = {"violating": int(hit.sum()), "only_this": int((self.violations == BIT[n]).sum())}
        return out


def _segment_first(mask: np.ndarray, starts: np.ndarray, n_total: int, ar=None) -> np.ndarray:
    """Per segment: global index of the first True sample, or n_total if none."""
    ar = np.arange(n_total, dtype=np.int32) if ar is None else ar
    idx = np.where(mask, ar, np.int32(n_total))
    return np.minimum.reduceat(idx, starts)


def _axes(kji):
    """(k, j, i) 1D arrays from an (n, 3) array or a tuple of three 1D arrays."""
    if isinstance(kji, tuple):
        return kji
    return kji[:, 0], kji[:, 1], kji[:, 2]


def _flat_nearest(kji, shape, inside: bool = False) -> np.ndarray:
    """Flat index of the nearest voxel of each kji sample (clamped to the grid unless the
    caller knows every sample is inside)."""
    out = None
    for a, (x, stride) in enumerate(zip(_axes(kji), (shape[1] * shape[2], shape[2], 1))):
        ix = np.rint(x).astype(np.int32)
        if not inside:
            np.clip(ix, 0, shape[a] - 1, out=ix)
        if stride != 1:
            ix *= np.int32(stride)
        out = ix if out is None else out + ix
    return out


def trilinear(field: np.ndarray, kji) -> np.ndarray:
    """Trilinear samples of a [k, j, i] float32 field at kji points ((n, 3) or a (k, j, i)
    tuple), clamped to the grid."""
    shp = field.shape
    flat, fr = None, []
    for a, (x, stride) in enumerate(zip(_axes(kji), (shp[1] * shp[2], shp[2], 1))):
        b = np.floor(x).astype(np.int32)
        if b.size and (b.min() < 0 or b.max() > shp[a] - 2):
            np.clip(b, 0, shp[a] - 2, out=b)
            f = np.clip(x - b, 0.0, 1.0).astype(np.float32)
        else:
            f = (x - b).astype(np.float32)
        fr.append(f)
        b *= np.int32(stride)
        flat = b if flat is None else flat + b
    sk, sj = shp[1] * shp[2], shp[2]
    raw = field.ravel()
    v = (lambda ix: raw[ix].astype(np.float32, copy=False))  # noqa: E731  (float16 boxes too)
    fk, fj, fi = fr
    c00 = v(flat) * (1 - fi) + v(flat + 1) * fi
    c01 = v(flat + sj) * (1 - fi) + v(flat + sj + 1) * fi
    c10 = v(flat + sk) * (1 - fi) + v(flat + sk + 1) * fi
    c11 = v(flat + sk + sj) * (1 - fi) + v(flat + sk + sj + 1) * fi
    return (c00 * (1 - fj) + c01 * fj) * (1 - fk) + (c10 * (1 - fj) + c11 * fj) * fk


def path_samples(maps: PlanningMaps, entry_ras, target_ras, step_mm: float):
    """Flat samples of every path, entry first: ((k, j, i) float32 arrays, seg (N,) path index,
    starts (n,), counts (n,), frac (N,) 0 at the entry .. 1 at the target, length (n,) mm,
    inside: True when every sample lies in the grid)."""
    grid = maps.grid
    e = maps.world_to_kji(entry_ras)
    t = maps.world_to_kji(np.broadcast_to(target_ras, np.shape(entry_ras)))
    length = np.linalg.norm(np.asarray(target_ras, float) - entry_ras, axis=1)
    counts = _sample_counts(length, step_mm)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    n_total = int(counts.sum())
    seg = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    frac = np.arange(n_total, dtype=np.float32)
    frac -= np.repeat(starts.astype(np.float32), counts)
    frac *= np.repeat((1.0 / (counts - 1)).astype(np.float32), counts)
    d = (t - e).astype(np.float32)
    axes = tuple(np.repeat(e[:, a].astype(np.float32), counts) + frac * np.repeat(d[:, a], counts)
                 for a in range(3))
    hi = np.asarray(grid.shape) - 1
    inside = bool(np.all((np.rint(e) >= 0) & (np.rint(e) <= hi)) and np.all((np.rint(t) >= 0) & (np.rint(t) <= hi)))
    return axes, seg, starts, counts, frac, length, inside


def gantry_tilt_deg(direction_ras) -> np.ndarray:
    """The gantry tilt (deg, 0-90) that puts a needle of direction ``direction_ras`` ((n, 3) or
    (3,) RAS, any length) whole in one scan plane: a CT gantry tilts about the left-right axis,
    so its scan plane holds R and (0, cos t, sin t); the needle lies in it when
    u_S / u_A = tan t, i.e. t is the needle's angle to the axial plane in its sagittal (A-S)
    projection, atan(|u_S| / |u_A|). It is at least the craniocaudal angle asin(|u_S| / |u|)
    (equal for a needle with no left-right component; up to 90 deg for a lateral needle with any
    craniocaudal slope). The one definition of the plan's ``gantry_tilt_deg`` (`angles`;
    `scoring_torch` computes the same formula on the GPU) and of the planner's gantry-tilt
    warning (`planner.gantry_tilt_warnings`; new-user trial 90 #2: proposals needing 44-70 deg
    under a 30 deg --gantry-tilt, unwarned)."""
    u = np.atleast_2d(np.asarray(direction_ras, float))
    return np.degrees(np.arctan2(np.abs(u[:, 2]), np.abs(u[:, 1])))


def angles(entry_ras, target_ras, normal_ras):
    """Angles (deg) of paths entry -> target: to the outward skin normal, craniocaudal (out of
    the axial plane: the angle ``constraints.max_craniocaudal_deg``, ``--gantry-tilt``, limits),
    in-plane (axial projection vs the antero-posterior axis) and the gantry tilt that would put
    the path in one tilted scan plane (`gantry_tilt_deg`)."""
    d = np.asarray(target_ras, float) - entry_ras
    u = d / np.linalg.norm(d, axis=1, keepdims=True)
    skin = np.degrees(np.arccos(np.clip(-(u * normal_ras).sum(1), -1.0, 1.0)))
    cc = np.degrees(np.arcsin(np.clip(np.abs(u[:, 2]), 0.0, 1.0)))
    inplane = np.degrees(np.arctan2(np.abs(u[:, 0]), np.abs(u[:, 1])))
    tilt = gantry_tilt_deg(u)
    return skin, cc, inplane, tilt


def _cuda_possible() -> bool:
    """False when no NVIDIA driver is installed (no /proc/driver/nvidia, no nvidia-smi): then
    CUDA cannot be available and importing torch (about 1.5 s) only to ask is skipped."""
    import os
    import shutil

    return os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi") is not None


def resolve_device(device="auto"):
    """None (numpy) or a torch device string. "auto": CUDA when torch and a GPU are present,
    else numpy (torch on the CPU is not used by default: `scoring_torch` says why); torch is
    not imported when no NVIDIA driver is installed. "numpy"/None: numpy; "cpu"/"cuda[:n]":
    torch on that device."""
    if device in (None, "numpy"):
        return None
    if device == "auto":
        if not _cuda_possible():
            return None
        try:
            import torch
        except ImportError:
            return None
        return "cuda" if torch.cuda.is_available() else None
    return str(device)


# "auto" scores on the GPU from this many paths on (or once the nearest-structure maps exist):
# measured on an H200 with 16 host cores (docs/GPU.md), the torch path's one-time setup took
# 1.2 s (3 mm phantom) and 17.3 s (1 mm), the time numpy scores about 65,000 and 400,000 paths
# in; a first plan scores ~16,000-110,000 candidates, faster in numpy
AUTO_DEVICE_MIN_PATHS = 400_000


# samples per numpy scoring chunk (issue 20: chunks of 2048 paths, ~440k samples on the 1 mm
# phantom, two at a time, were the first plan's traced peak, +93 MiB: about 110 bytes a sample)
SCORE_CHUNK_SAMPLES = 1 << 18


def score_paths(problem: PlanningProblem, maps: PlanningMaps, entry_ras, normal_ras,
                target_ras=None, chunk: int = 2048, threads: int | None = None,
                device="auto", device_chunk: int = 65536, device_samples: int = 1 << 23,
                chunk_samples: int | None = None) -> ScoreTable:
    """All metrics, violations and the weighted score for paths from each entry to the target
    (``target_ras``: (3,) or one per path (n, 3); default the problem's target).

    numpy: candidates scored in chunks of at most ``chunk`` paths and about ``chunk_samples``
    samples (default `SCORE_CHUNK_SAMPLES`; `device_chunks`; each path is scored on its own: the same table for any chunks) on
    ``threads`` threads (default: the CPU count, at most 4); numpy releases the GIL in the
    gathers and arithmetic. torch (``device``, see `resolve_device`): the same computation in chunks of at most
    ``device_chunk`` paths and about ``device_samples`` samples (`device_chunks`; some 30
    per-sample tensors of <= 8 bytes: about 2 GiB for 2^23 samples, an estimate, not measured) on that device, everything per path there until
    one transfer of each chunk's table (`scoring_torch.score_torch`); the same feasibility,
    distances within float32 rounding. "auto" takes the GPU only for at least
    ``AUTO_DEVICE_MIN_PATHS`` paths or once the maps hold their nearest-structure maps (the
    torch path's one-time setup, `PlanningMaps.nearest_map`)."""
    entry_ras = np.atleast_2d(np.asarray(entry_ras, float))
    normal_ras = np.atleast_2d(np.asarray(normal_ras, float))
    target = np.asarray(problem.target.point_ras if target_ras is None else target_ras, float)
    n = len(entry_ras)
    auto = device == "auto"
    device = resolve_device(device)
    if auto and device is not None and n < AUTO_DEVICE_MIN_PATHS and not maps.has_nearest_maps:
        device = None   # numpy is faster than the GPU's one-time setup for a first plan (docs/GPU.md)
    if n == 0:
        entry_ras, normal_ras = np.zeros((0, 3)), np.zeros((0, 3))
        return concat_tables([_score_chunk(problem, maps, np.zeros((1, 3)) + target + 1.0,
                                           np.array([[0.0, 0.0, 1.0]]), target)]).take(np.arange(0))
    tg = (lambda a, b: target[a:b]) if target.ndim == 2 else (lambda a, b: target)  # noqa: E731  (one per path)
    length = np.linalg.norm(target - entry_ras, axis=1)
    counts = _sample_counts(length, problem.constraints.step_voxels * float(min(maps.grid.spacing)))
    if device is not None:
        return concat_tables([_score_chunk(problem, maps, entry_ras[a:b], normal_ras[a:b], tg(a, b), device)
                              for a, b in device_chunks(counts, device_chunk, device_samples)])
    ranges = device_chunks(counts, chunk, SCORE_CHUNK_SAMPLES if chunk_samples is None else chunk_samples)
    if len(ranges) == 1:
        return _score_chunk(problem, maps, entry_ras, normal_ras, target)
    import os
    from concurrent.futures import ThreadPoolExecutor

    threads = threads or min(4, os.cpu_count() or 1)
    parts = [(entry_ras[a:b], normal_ras[a:b], tg(a, b)) for a, b in ranges]
    with ThreadPoolExecutor(threads) as ex:
        tabs = list(ex.map(lambda en: _score_chunk(problem, maps, en[0], en[1], en[2]), parts))
    # the chunks' temporaries were freed into the threads' own heaps (glibc arenas), whose pages stay
    # resident and are not reused by the planner's later steps on this thread: handed back
    # (`memory.release_free_memory`; no result changes; speed26: the 1 mm phantom's first plan
    # peaked in its per-proposal checks on top of them)
    from ..memory import release_free_memory

    release_free_memory()
    return concat_tables(tabs)


def _sample_counts(length, step_mm: float) -> np.ndarray:
    """Samples of each path of ``length`` mm sampled every ``step_mm`` (ends included, >= 2)."""
    return np.maximum(2, np.ceil(np.asarray(length) / step_mm).astype(np.int64) + 1)


def device_chunks(counts, max_paths: int, max_samples: int) -> list[tuple[int, int]]:
    """[a, b) path ranges covering ``counts`` (samples per path, (n,)) in order, each of at most
    ``max_paths`` paths and ``max_samples`` samples (one path alone may exceed it)."""
    cum = np.concatenate([[0], np.cumsum(counts)])
    out, a, n = [], 0, len(counts)
    while a < n:   # one step per chunk
        b = int(np.searchsorted(cum, cum[a] + max_samples, side="right")) - 1
        b = min(max(b, a + 1), a + int(max_paths), n)
        out.append((a, b))
        a = b
    return out


def concat_tables(tabs: list[ScoreTable]) -> ScoreTable:
    """One table from several (same problem)."""
    first = tabs[0]
    kw = {}
    for f in fields(ScoreTable):
        v = getattr(first, f.name)
        kw[f.name] = np.concatenate([getattr(t, f.name) for t in tabs]) if isinstance(v, np.ndarray) else v
    kw["n_samples"] = sum(t.n_samples for t in tabs)
    return ScoreTable(**kw)


def _score_chunk(problem, maps, entry_ras, normal_ras, target, device=None, samples=None) -> ScoreTable:
    """Score one chunk of paths: per-sample work in numpy (device None) or torch (a device)."""
    if device is not None:
        from .scoring_torch import score_torch

        return score_torch(problem, maps, entry_ras, normal_ras, target, device)
    r = _reduce_numpy(problem, maps, entry_ras, target, samples)
    return _finish(problem, maps, entry_ras, normal_ras, target, r)


def _reduce_numpy(problem, maps, entry_ras, target, samples=None) -> dict:
    """Per-path reductions of the sampled maps (see module doc), numpy. ``samples``: the
    output of `path_samples` when the caller has it already."""
    c = problem.constraints
    n = len(entry_ras)
    step = c.step_voxels * float(min(maps.grid.spacing))
    if samples is None:
        samples = path_samples(maps, entry_ras, target, step)
    kji, seg, starts, counts, frac, length, inside = samples
    n_total = len(seg)

    # nearest-voxel labels + flags (one packed gather) and distances
    flat = _flat_nearest(kji, maps.code.shape, inside)  # a segment lies inside if its ends do
    code = maps.code.ravel()[flat]
    lab, flg = maps.split_code(code)
    exempt = problem.exempt_value
    in_target = (lab == exempt) if exempt else np.zeros(n_total, bool)

    # hard distance (forbidden + margin): nearest samples bound the trilinear minimum (the
    # distance is 1-Lipschitz, so trilinear and nearest differ by < one voxel diagonal); only
    # samples that can hold the minimum are interpolated, giving the exact trilinear minimum.
    cap = np.float32(maps.cap_mm)
    hard = maps.hard.ravel()[flat].astype(np.float32)   # (float16 map) margins hold inside the target's organ too: the target
                                     # structure's own distance is not in ``hard`` (precompute)
    diag = np.float32(np.linalg.norm(maps.grid.spacing))
    ar = np.arange(n_total, dtype=np.int32)
    if n == 1:   # one path (live evaluation): interpolate every sample
        hard = trilinear(maps.hard, kji)
    else:
        seg_min = np.minimum.reduceat(hard, starts)
        # exact trilinear value at each path's nearest-sample minimum: an upper bound of the
        # true minimum; a sample whose nearest value exceeds it by more than a diagonal cannot win
        at0 = _segment_first(hard <= seg_min[seg], starts, n_total, ar)
        upper = trilinear(maps.hard, tuple(x[at0] for x in kji))
        up = np.repeat(upper, counts)
        # a nearest sample at the cap can still interpolate below it when the path's minimum
        # is within a diagonal of the cap
        sel = np.flatnonzero((hard <= up + diag) & ((hard < cap) | (up + diag >= cap)))
        hard[sel] = trilinear(maps.hard, tuple(x[sel] for x in kji))
    slack = np.minimum.reduceat(hard, starts)
    at = _segment_first(hard <= slack[seg], starts, n_total, ar)
    closest = maps.hard_structure(flat[at])
    closest_t = frac[at]
    margin = np.where(closest >= 0, maps.margins[np.maximum(closest, 0)], 0.0)
    zeros_f, zeros_i = np.zeros(n, np.float32), np.zeros(n, np.int32)
    if maps.has["avoid"]:
        avoid = maps.avoid.ravel()[flat].astype(np.float32)   # soft criterion: nearest-voxel samples
        avoid_min = np.minimum.reduceat(avoid, starts)
        at_a = _segment_first(avoid <= avoid_min[seg], starts, n_total, ar)
        avoid_id = maps.avoid_structure(flat[at_a])
    else:
        avoid_min, avoid_id = np.full(n, cap, np.float32), np.full(n, -1, np.int16)

    forb = (flg & FORBIDDEN) > 0
    first_forb = _segment_first(forb, starts, n_total, ar)
    hit = first_forb < n_total
    forbidden_hit = np.full(n, -1, np.int16)
    forbidden_hit[hit] = maps.struct_of_label[lab[first_forb[hit]]]
    # outside the body after the entry voxel (a skin fold, the gap between arm and trunk)
    diag = float(np.linalg.norm(maps.grid.spacing))
    away = frac * np.repeat(length.astype(np.float32), counts) > diag
    outside = np.add.reduceat(((flg & BODY) == 0) & away, starts) > 0

    # lung, pleura, fissures, emphysema, liver
    smm = (length / (counts - 1)).astype(np.float32)   # per-path actual step, mm
    if maps.has["lung"]:
        lung = (flg & LUNG) > 0
        aer = (flg & AERATED) > 0
        lung_mm = np.add.reduceat(lung.astype(np.int32), starts) * smm
        aer_n = np.add.reduceat(aer.astype(np.int32), starts)
        emph_n = np.add.reduceat(((flg & EMPH) > 0).astype(np.int32), starts)
        change = np.empty(n_total, bool)
        change[0] = False
        change[1:] = lung[1:] != lung[:-1]
        change[starts] = False
        pleural = np.add.reduceat(change.astype(np.int32), starts)
        if maps.has["lobes"]:
            lobe = np.where(aer & maps.lobe_of_label[lab], lab, 0).astype(np.int32)
            segstart = np.zeros(n_total, bool)
            segstart[starts] = True
            anchor = (lobe > 0) | segstart | ~lung
            ff = np.maximum.accumulate(np.where(anchor, ar, 0))
            prev = np.empty(n_total, np.int32)
            prev[0] = 0
            prev[1:] = lobe[ff[:-1]]
            fiss = (lobe > 0) & (prev > 0) & (lobe != prev) & ~segstart
            fissures = np.add.reduceat(fiss.astype(np.int32), starts)
        else:
            fissures = zeros_i
        emph_pct = np.where(aer_n > 0, 100.0 * emph_n / np.maximum(aer_n, 1), 0.0)
    else:
        lung_mm, aer_n, pleural, fissures, emph_pct = zeros_f, zeros_i, zeros_i, zeros_i, zeros_f
    bone_mm, reentry = _bone_run_numpy(target_bone_run(problem), lab, seg, starts, n_total, ar, smm)
    if maps.has["liver"] and is_liver(problem.target.organ):
        first_tgt = _segment_first(in_target, starts, n_total, ar) if exempt else starts + counts
        liver = ((flg & LIVER) > 0) & (ar < first_tgt[seg])
        liver_before = np.add.reduceat(liver.astype(np.int32), starts) * smm
    else:
        liver_before = zeros_f

    return dict(length=length, slack=slack, closest=closest, closest_t=closest_t, margin=margin,
                avoid_min=avoid_min, avoid_id=avoid_id, forbidden_hit=forbidden_hit, hit=hit,
                lung_mm=lung_mm, aer_mm=aer_n * smm, pleural=pleural, fissures=fissures,
                emph_pct=emph_pct, liver_before=liver_before, outside=outside, n_samples=n_total,
                bone_mm=bone_mm, bone_reentry=reentry)


def _bone_run_numpy(bv, lab, seg, starts, n_total, ar, smm):
    """(mm inside the target bone piece, True where the path leaves the piece (or a lesion in it)
    after entering it)
    per path; label values ``bv`` of the piece and a lesion in it (`problem.target_bone_run`,
    (): no bone target).
    Only the final contiguous run of a path may lie in the target bone (bone biopsy: the needle
    enters the bone once; leaving and re-entering crosses a canal, foramen or joint space)."""
    n = len(starts)
    if not bv:
        return np.zeros(n, np.float32), np.zeros(n, bool)
    inb = np.isin(lab, bv)
    first = _segment_first(inb, starts, n_total, ar)
    left = (ar >= first[seg]) & ~inb
    return (np.add.reduceat((lab == bv[0]).astype(np.int32), starts) * smm).astype(np.float32), \
        np.add.reduceat(left.astype(np.int32), starts) > 0


HUB_RIM_DIRS = 8   # directions round the hub's rim that the table-side rule tests (the lowest first)


def table_steps(problem, table, outside_max: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The points `against_table` (and `scoring_torch.against_table_torch`) test, one definition
    for both scorers: per step (b, hub, x, y), the point ``b`` mm back from the entry along the
    path (on the shaft, ``hub`` 0: min(b, the part of the needle outside the skin); on the hub,
    ``hub`` 1: that part + b), moved across the axis by ``x`` w1 + ``y`` w2 (`hub_rim_axes`: w1
    towards the table, w2 across both; mm). The shaft's axis every ``step`` mm from the entry to
    the hub, its end included; when the couch was found under the patient (``table.located``),
    the hub too (b from 0 to ``needle.hub_length_mm``): its axis and ``HUB_RIM_DIRS`` points on
    its rim (radius ``needle.hub_diameter_mm`` / 2, the lowest towards the table first): a hub
    inside the couch cannot be placed. When no couch was found the hub is not judged (a table
    assumed at the deepest skin would be a guess; `planner.table_warnings` says so). A path's
    points do not depend on the other paths scored with it (only their number does):
    ``outside_max``, the longest part outside the skin of the paths (mm), sets how many shaft
    steps there are. Returns four (steps,) float arrays."""
    step = max(table.bin_mm / 2.0, 1.0)
    n = int(np.ceil(float(outside_max) / step)) + 1
    b = np.arange(n) * step                  # the last >= every path's part outside: its end
    h, x, y = np.zeros(n), np.zeros(n), np.zeros(n)
    hub = float(problem.needle.hub_length_mm)
    if table.located and hub > 0:
        m = int(np.ceil(hub / step)) + 1
        r = 0.5 * float(problem.needle.hub_diameter_mm)
        ang = np.arange(HUB_RIM_DIRS) * (2 * np.pi / HUB_RIM_DIRS)
        px = np.concatenate([[0.0], r * np.cos(ang)])          # the axis, then the rim
        py = np.concatenate([[0.0], r * np.sin(ang)])
        g = np.repeat(np.linspace(0.0, hub, m), len(px))
        b = np.concatenate([b, g])
        h = np.concatenate([h, np.ones(len(g))])
        x = np.concatenate([x, np.tile(px, m)])
        y = np.concatenate([y, np.tile(py, m)])
    return b, h, x, y


def hub_rim_axes(u: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(w1, w2): (n, 3) RAS unit vectors across the unit axes ``u`` (n, 3): w1 the direction in
    the plane normal to the axis most along the table direction ``d`` (3,) (the hub's lowest
    rim; when the axis is within 1e-6 of ``d``, any: u x the x or y axis), w2 = u x w1."""
    w = d[None, :] - (u @ d)[:, None] * u
    sin = np.linalg.norm(w, axis=1, keepdims=True)
    helper = np.where(np.abs(u[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    alt = np.cross(u, helper)
    w = np.where(sin > 1e-6, w, alt)
    w = w / np.linalg.norm(w, axis=1, keepdims=True)
    return w, np.cross(u, w)


def against_table(problem, entry_ras, target, normal_ras, length, direction) -> np.ndarray:
    """Paths a patient lying on the table in ``direction`` cannot receive (bool per path): the
    entry faces the table (outward skin normal within ``table_exclusion_deg`` of ``direction``;
    when no couch was found under the patient, `table.TableSurface.located` False, also its
    entry on the couch side of the body's outline in its axial slice,
    `table.on_couch_side_of_outline`, whatever the skin's slope along the body),
    or the part of the needle left outside the skin (needle length - path length, along the path
    backwards from the entry) would reach the table or below its top (`table.TableSurface.below`,
    per column: the couch top under the patient, not the image edge where a table base in the
    image is cut), or, when the couch was found under the patient, its hub would (its axis or its
    rim: `table_steps`): the shaft and hub cannot pass through the table
    (``table_exclusion_deg`` 0 switches both off). Arrays: entry_ras, normal_ras (N, 3) RAS mm;
    target (3,) or (N, 3); length (N,) mm."""
    c, needle = problem.constraints, problem.needle
    d = np.asarray(direction, float)
    faces = normal_ras @ d > np.cos(np.radians(c.table_exclusion_deg))
    if c.table_exclusion_deg <= 0:   # the table switched off (no entry excluded for facing it)
        return faces
    u = np.asarray(target, float) - entry_ras
    u = u / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-9)
    outside = np.clip(needle.length_mm - np.asarray(length, float), 0.0, None)
    from .table import locate_table_cached

    table = locate_table_cached(problem, d)
    if not table.located and problem.skin is not None:   # no couch: the body's outline in each slice (trial 81)
        from .table import on_couch_side_of_outline

        faces = faces | on_couch_side_of_outline(problem.ct, problem.skin.body, entry_ras, normal_ras, d,
                                                 c.table_exclusion_deg)
    b, h, x, y = table_steps(problem, table, outside.max(initial=0.0))
    w1, w2 = hub_rim_axes(u, d)
    below = np.zeros(len(entry_ras), bool)
    for bi, hi, xi, yi in zip(b, h, x, y):   # tens of steps, each vectorised over the paths
        back = outside + bi if hi else np.minimum(bi, outside)
        pts = entry_ras - u * back[:, None] + xi * w1 + yi * w2
        below |= table.below(pts) & (back > 0)
    return faces | below


def unseen_skin(problem, entry_ras, target, normal_ras, length, sides: bool = False):
    """Bool per path: its entry is no visible skin, the air beyond it not imaged
    (`skin.outside_air_unseen`): along the skin's outward normal, or along the needle's axis
    continued outward past the entry, the image ends before this scan's outside air is crossed over
    more than one voxel, within the needle's part outside the skin and its hub (needle length - path length +
    ``needle.hub_length_mm``: what is held in the air). None without a skin model (not judged).
    The body cut by the field of view leaves no air to see: new-user trials 86 M1 and 87, entries
    planned prone on supine scans 1-3 mm from the posterior face that the plan reported as cut
    ("no entry there"). Arrays: entry_ras, normal_ras (N, 3) RAS mm; target (3,) or (N, 3);
    length (N,) mm.

    ``sides``: return (that, (N,) int side codes, index into ``DIRECTIONS``, of where each unseen
    path's ray leaves the image, its normal's first: `skin.exit_side_codes`; -1 for the others),
    the side to extend the scan on (trial 89: a refusal for a back cut by the field of view, no
    `skin.Truncation` there, named no side)."""
    skin = problem.skin
    if skin is None or not len(entry_ras):
        return (None, None) if sides else None
    from .skin import exit_side_codes, outside_air_unseen

    e = np.asarray(entry_ras, float)
    u = e - np.asarray(target, float)
    u = u / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-9)
    needle = problem.needle
    reach = np.clip(needle.length_mm - np.asarray(length, float), 0.0, None) + needle.hub_length_mm
    hit, at = outside_air_unseen(skin, problem.ct, np.concatenate([e, e]),
                                 np.concatenate([np.asarray(normal_ras, float), u]), np.concatenate([reach, reach]), exits=True)
    out = hit[:len(e)] | hit[len(e):]
    if not sides:
        return out
    code = np.full(len(e), -1, np.int64)
    at = np.where(hit[:len(e), None], at[:len(e)], at[len(e):])         # the normal's exit first
    code[out] = exit_side_codes(skin, problem.ct, at[out])
    return out, code


def _finish(problem, maps, entry_ras, normal_ras, target, r) -> ScoreTable:
    """Angles, violations, costs and score from the per-path reductions ``r``."""
    c, needle = problem.constraints, problem.needle
    n = len(entry_ras)
    length, slack, pleural, fissures = r["length"], r["slack"], r["pleural"], r["fissures"]
    emph_pct, liver_before, avoid_min, hit = r["emph_pct"], r["liver_before"], r["avoid_min"], r["hit"]
    skin, cc, inplane, tilt = angles(entry_ras, target, normal_ras)

    widen = needle.widening_mm
    table = against_table(problem, entry_ras, target, normal_ras, length, c.table_direction)
    region = None
    if c.entry_region is not None:
        from .entry_region import distance_to_region   # a ball or a band around a polyline

        region = distance_to_region(entry_ras, c.entry_region[0])
    v = violations(problem, np.zeros(n, np.int32), np.where, length=length, table=table, region=region,
                   skin=skin, cc=cc, hit=hit, outside=r["outside"], bone_reentry=r["bone_reentry"],
                   slack=slack, liver_before=liver_before, pleural=pleural, fissures=fissures,
                   emph_pct=emph_pct, unseen=unseen_skin(problem, entry_ras, target, normal_ras, length))

    costs = criterion_costs({
        "length_fraction": length / needle.length_mm, "clearance_above_required_mm": slack - widen,
        "skin_angle_deg": skin, "craniocaudal_deg": cc, "avoid_mm": avoid_min,
        "aerated_mm": r["aer_mm"], "pleural_crossings": pleural, "fissure_crossings": fissures,
        "emphysema_pct": emph_pct, "bone_mm": r["bone_mm"]})
    w = score_weights(problem)
    score = costs @ w / max(float(w.sum()), 1e-9)

    return ScoreTable(
        entry_ras, np.broadcast_to(target, entry_ras.shape).copy(), normal_ras, length, skin, cc,
        inplane, tilt, slack, slack + r["margin"], r["closest"].astype(np.int16), r["closest_t"],
        avoid_min, r["avoid_id"].astype(np.int16), r["forbidden_hit"], r["lung_mm"], r["aer_mm"],
        pleural, fissures, emph_pct, liver_before, v, costs, score, list(maps.names), widen,
        r["n_samples"])


def score_weights(problem) -> np.ndarray:
    """(len(CRITERIA),) float32 weights of the score (the bone criterion 0 without a bone target)."""
    w = np.array([problem.weights.get(k, 0.0) for k in CRITERIA], np.float32)
    if not target_bone_run(problem):   # no bone target: the score is unchanged by the criterion
        w[CRITERIA.index("bone_traversal")] = 0.0
    return w


def violations(problem, v, where, *, length, table, region, skin, cc, hit, outside, bone_reentry,
               slack, liver_before, pleural, fissures, emph_pct, unseen=None):
    """The violation bit set per path (the rules, defined once for both scorers): ``v`` the
    zeroed integer array to fill (numpy int32, or a torch int64 tensor), ``where`` np.where or
    torch.where; per-path arrays of the same kind: length (mm), table (bool, `against_table`),
    region (mm to the allowed entry region, None: no region), skin / cc (deg), hit (bool,
    forbidden crossed), outside (bool), bone_reentry (bool), slack (mm), liver_before (mm),
    pleural / fissures (counts), emph_pct (%), unseen (bool, `unseen_skin`; None: not judged).
    Returns ``v``."""
    c, needle = problem.constraints, problem.needle
    widen = needle.widening_mm
    v |= where(length > needle.length_mm, BIT["reach"], 0)
    v |= where(table, BIT["table_side"], 0)
    if region is not None:
        v |= where(region > c.entry_region[1], BIT["entry_region"], 0)
    v |= where(skin > c.max_skin_angle_deg, BIT["skin_angle"], 0)
    if c.max_craniocaudal_deg is not None:
        v |= where(cc > c.max_craniocaudal_deg + ANGLE_TOL_DEG, BIT["craniocaudal"], 0)
    v |= where(hit, BIT["forbidden"], 0)
    v |= where(outside, BIT["leaves_body"], 0)
    v |= where(bone_reentry, BIT["bone_reentry"], 0)
    v |= where(slack < widen, BIT["clearance"], 0)
    if is_liver(problem.target.organ) and c.min_liver_parenchyma_mm > 0:
        v |= where(liver_before < c.min_liver_parenchyma_mm, BIT["liver_parenchyma"], 0)
    v |= where(pleural > c.max_pleural_crossings, BIT["pleural_crossings"], 0)
    if c.fissure_crossing == "forbid":
        v |= where(fissures > 0, BIT["fissure"], 0)
    v |= where(emph_pct > c.max_emphysema_percent, BIT["emphysema"], 0)
    if unseen is not None:
        v |= where(unseen, BIT["unseen_skin"], 0)
    for rule in c.disabled_rules:   # --no-rule: not enforced (the metric stays in the table)
        v &= ~BIT[rule]
    return v
