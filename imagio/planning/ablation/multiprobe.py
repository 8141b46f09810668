"""Probe placement: one probe on a planned path, or the fewest probes covering tumour + margin.

Multi-probe: candidate zones are (feasible skin entry, zone centre) pairs: up to
``max_directions`` well separated entries among the planner's feasible candidates, times zone
centres on a lattice inside the tumour (for probes in place at once, cryoprobes: along each of
those directions, parallel tracks side by side, each from its own skin entry, `parallel_tracks`);
the tip is placed so that the zone centre lands on
the lattice point, and every candidate path entry -> tip is checked in one vectorised pass of
the planner's scorer (all hard constraints); the chosen paths are re-checked by the independent
`verify.Verifier` (a rejected one is replaced by the cheapest verified zone covering what only it
covered, `repair_cover`; else dropped and the cover solved again; probes in place at once, whose
cover is hemmed in by the spacing, have every candidate verified before the cover). Sample points of
tumour + margin on a lattice; a set cover: a greedy cover, then (unless it meets the LP bound)
randomised greedy restarts, then (unless one meets it) ``scipy.optimize.milp`` for the fewest
zones within a node limit, then, at that count, less healthy tissue by local swaps (sum of
each zone's volume outside the tumour, critical structures weighted per mL by
ablation_criteria.json ``collateral_cost``: hollow viscera highest, `collateral_cost`; pairs of
zones swapped where one holds such tissue, `_pair_swaps`). Lower bounds: the LP relaxation optimum rounded up,
and ceil(volume of tumour + margin / volume of one zone).
The margin the chosen zones guarantee is the MAM around the tumour's label-map voxel faces
(`guaranteed_margin`, `outline.Outline.margin`: the one measurement, so "proven" and "MAM met" agree).
Every list the cover is built from (directions, zone centres, sample points, check points) is
in world order with its coordinates quantised (`imagio.world_order`), so that each tie (the
first of equal gains or costs, the first point per cube, the solver's order of rows and
columns) falls the same way for the same patient stored with another axis order or flipped
(in array order a [2, 0, 1] permutation of one case gave other zones: minimal ablative margin
2.39 instead of 3.03 mm, 9 mL more healthy liver; new-user trial 21 M1).
RAS mm, mL.
"""

from __future__ import annotations

import dataclasses

import math
import os
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from ...errors import ImagioError, InputError
from ...world_order import order_rows, quantise_mm, thin_per_cell, world_order
from .coverage import AblationContext, Coverage
from .criteria import multi_probe
from .devices import Device, Setting
from .hollow import hollow_points, names_text, within_margin_text
from .zones import Probe, zones

SCORE_DECIMALS = 5      # path scores (float32, in [0, 1]) compared rounded to 1e-5: a float32 sum in
                        # another order (another axis order of the same grid) differs by ~1e-7
ADVANCE_STEP_MM = 2.0   # search step when the fully advanced tip is not feasible
NODE_LIMIT = 2000       # branch-and-bound nodes per improving milp (a machine-independent limit)
GRASP_RESTARTS = 256    # randomised greedy restarts before the milp (`_grasp_cover`; ~2 ms each
                        # on the 45 mm demo tumour at 1.5 mm, whose 6-cover took 22-131 over 8 seeds)
GRASP_NOISE = 0.2       # a restart's greedy gain is scaled by a random factor in [1 - this, 1]
PAIR_NODE_LIMIT = 50    # branch-and-bound nodes of each two-direction milp of a spaced cover (`_spaced_cover`)
SPARE_ROUNDS = 10       # passes of pair swaps that spare critical tissue (`_pair_swaps`; a milp for the
                        # cheapest cover of the fewest count ran past 60 s on the demo's 45 mm tumour)
SPACED_RESTARTS = 32    # randomised restarts that try to improve a spaced cover of parallel tracks


@dataclass
class ProbePlacement:
    """One probe: entry and tip (RAS mm), its path's feasibility and violated constraints, its
    length (mm), the structures its antenna crosses that are not passable (``crossed_mm``:
    {name: mm}, neither the target tumour nor tissue a needle may cross freely) and the structure
    its tip lies in (``tip_in``; "unlabelled" for none): a tip advanced past the tumour so that
    the zone centre lands on it can leave the host organ (new-user trial 19: through the right
    adrenal gland into the retroperitoneum, with no word)."""

    entry_ras: list
    tip_ras: list
    feasible: bool
    violations: list
    length_mm: float
    crossed_mm: dict = field(default_factory=dict)
    tip_in: str = ""


STATUS_KINDS = {   # ProbePlan.status_kind -> meaning (review 42 L4: warnings chose lines by the status's words)
    "centred": "one probe, the zone centred on the target",
    "centred_graze": "one probe, zone centred; its track grazes another lobe within a voxel (said)",
    "advanced_short": "one probe advanced less than the device wants: the full advance violates a hard constraint",
    "advanced_short_image": "one probe advanced less than the device wants: the full advance runs past the "
                            "image's end (the tissue there is not imaged, taken as outside the body)",
    "infeasible": "one probe that breaks a hard constraint even with its tip on the target",
    "cover_proven": "multi-probe: the fewest probes over the candidate zones, proven",
    "cover_not_proven": "multi-probe: the best cover found, the fewest probes not proven",
    "one_probe": "multi-probe: one probe of a proposal covers tumour + margin (tried first: the fewest possible)",
    "manual": "one probe on a path the user drew (Slicer module, IMAGIO Web) without a trajectory plan: the zone "
              "centred on the path's end (the tip advanced by the device's offset), the track not checked",
    "live": "one probe while the user drags it (Slicer module, IMAGIO Web): the zone centred on the path's end, "
            "coverage only",
}

LOWER_BOUND_OVER = ("the candidate zones: the set cover's LP relaxation over its sample points with the zones "
                    "shrunk by zone_shrink_mm, and the volume of tumour + margin over one zone's; not a bound "
                    "over every possible probe")


def volume_bound(n_voxels: int, grid, setting) -> int:
    """Probes at least needed to cover ``n_voxels`` voxel centres of ``grid`` (`grid.FineGrid`)
    with zones of ``setting`` (`devices.Setting`): each zone E holds the centres of disjoint voxel
    boxes that lie inside E dilated by h, half the voxel diagonal, which lies inside E scaled by
    (1 + h / b) about its centre (b its smallest semi-axis: the ball of radius h lies in h / b E),
    so one zone covers at most volume(E) (1 + h / b)^3 / voxel volume centres. Review 44 L5: the
    bound was the region's voxel volume over volume(E), which a one-probe plan (every centre in
    one zone) could exceed (it read 2). At least 1."""
    h = 0.5 * float(np.linalg.norm(grid.spacing_kji))
    b = 0.5 * min(float(setting.zone_length_mm), float(setting.zone_diameter_mm))
    per_zone_ml = setting.volume_ml * (1.0 + h / b) ** 3
    return max(1, int(math.ceil(n_voxels * grid.voxel_ml / per_zone_ml - 1e-9)))


def lower_bound_words(n) -> str:
    """'lower bound N over the candidate zones' (what the multi-probe lower bound bounds: the set
    cover's candidate zones, never every possible probe: new-user trial 54 M2)."""
    return f"lower bound {n} over the candidate zones"


@dataclass
class ProbePlan:
    """Probes, their zones and the coverage; for multi-probe plans also the set-cover bounds."""

    device: str
    setting: str
    modality: str
    probes: list[ProbePlacement]
    coverage: Coverage
    margin_mm: float | None = None
    lower_bound: int | None = None
    lower_bound_lp: int | None = None
    lower_bound_volume: int | None = None
    lp_optimum: float | None = None
    n_candidates: int = 0
    n_samples: int = 0
    sample_coverage_pct: float | None = None
    status: str = ""
    status_kind: str = ""   # what ``status`` says, for programs (`STATUS_KINDS`); the text is for people
    timings_s: dict = field(default_factory=dict)
    margin_guarantee: dict | None = None   # multi-probe: `margin_check` of the chosen zones
    placement: dict | None = None          # multi-probe: how the probes are placed (`probe_placement`)
    collateral: dict | None = None         # multi-probe: critical tissue the cover weighed (`collateral_report`)
    from_proposal: int | None = None       # multi-probe of one probe: the proposal (1-based) whose probe it is
    single_status_kind: str | None = None  # multi-probe of one probe: that single probe's status_kind (its doubts)
    single_status: str | None = None       # ... and its status (text for people)
    hollow_viscus: dict | None = None      # keeping hollow viscera out (`spare.spare_hollow_viscus`'s note for one
    # probe; for a cover: {"hard": whether the candidate zones taking one in were excluded, "text", ...})

    def __post_init__(self):
        if self.status_kind not in STATUS_KINDS:   # review 43 L4: programs read the kind, so it must be one
            raise ValueError(f"ProbePlan.status_kind {self.status_kind!r} is not one of {sorted(STATUS_KINDS)}")

    @property
    def zones(self):
        return self._zones

    def to_dict(self) -> dict:
        from ...jsonable import to_jsonable

        return to_jsonable({
            "device": self.device, "setting": self.setting, "modality": self.modality,
            "n_probes": len(self.probes), "margin_mm": self.margin_mm,
            "lower_bound": self.lower_bound,
            "lower_bound_over": None if not self.lower_bound else (
                "every plan: at least one probe" if self.status_kind == "one_probe" else LOWER_BOUND_OVER),
            "lower_bound_lp": self.lower_bound_lp,
            "lower_bound_volume": self.lower_bound_volume, "lp_optimum": self.lp_optimum,
            "n_candidate_zones": self.n_candidates, "n_sample_points": self.n_samples,
            "sample_coverage_pct": self.sample_coverage_pct, "status": self.status,
            "status_kind": self.status_kind, "collateral": self.collateral,
            "margin_guarantee": self.margin_guarantee, "placement": self.placement,
            "from_proposal": self.from_proposal, "single_status_kind": self.single_status_kind,
            "single_status": self.single_status, "hollow_viscus": self.hollow_viscus,
            "probes": [vars(p) for p in self.probes],
            "zones": [{"centre_ras": z.centre, "axis": z.axis, "length_mm": 2 * z.a_mm,
                       "diameter_mm": 2 * z.b_mm} for z in self._zones],
            "coverage": self.coverage.to_dict(), "timings_s": self.timings_s})


ANTENNA_STEP_MM = 0.25   # label-map sampling step along a probe for what its antenna crosses


def _antenna_crossings(problem, entry, tip) -> tuple[dict, str]:
    """({structure: mm} crossed by the probe entry -> tip (RAS mm) whose role is not passable,
    the target tumour left out; the structure at the tip, "unlabelled" for none), from the label
    map sampled every ``ANTENNA_STEP_MM`` (`along.label_lengths`, as the evaluator's
    ``length_in_mm``). Works after the plan's distance maps are freed
    (`plan_multiprobe(free_maps=True)`)."""
    from ..along import label_lengths

    lab = problem.labels
    roles = {s.value: (s.name, s.role) for s in problem.structures}
    crossed = {}
    for v, mm in label_lengths(lab, entry, tip, ANTENNA_STEP_MM).items():
        name, role = roles.get(v, (lab.labels.get(v, str(v)), "passable"))
        if v and v != problem.target.value and role not in ("passable", "target"):
            crossed[name] = round(mm, 1)
    tv = int(lab.sample(np.asarray(tip, float)[None], order=0, fill=0)[0])
    return crossed, (lab.labels.get(tv, "unlabelled") if tv else "unlabelled")


def _placement(plan, entry, tip, checked: bool = False) -> ProbePlacement:
    """The probe entry -> tip (RAS mm) of ``plan`` (a `planner.Plan`): checked by its evaluator,
    or taken as feasible when ``checked`` (scored and verified already), with what its antenna
    crosses (`_antenna_crossings`)."""
    crossed, tip_in = _antenna_crossings(plan.problem, entry, tip)
    if checked:
        feasible, violations, length = True, [], float(np.linalg.norm(np.asarray(tip) - np.asarray(entry)))
    else:
        m = plan.evaluator.evaluate(entry, tip)
        feasible, violations, length = m.feasible, m.violations, m.length_mm
    return ProbePlacement(list(map(float, entry)), list(map(float, tip)), feasible, violations, length,
                          crossed, tip_in)


def _advance_in_one_lobe(plan, entry, target, tip) -> bool:
    """Whether the probe's advance ``target`` -> ``tip`` (RAS mm) stays in the lobe the planned
    path entry -> ``target`` last runs in before it (or in no lobe), the label map sampled every
    ``ANTENNA_STEP_MM``: the advance then adds no fissure crossing of its own."""
    maps = plan.maps
    if not maps.has.get("lobes"):
        return False
    lobe = np.asarray(maps.lobe_of_label, bool)
    lab = plan.problem.labels

    def lobes_along(a, b):
        from ..along import label_samples

        v = label_samples(lab, a, b, ANTENNA_STEP_MM)
        return v[(v < len(lobe)) & lobe[np.minimum(v, len(lobe) - 1)]]

    before = lobes_along(np.asarray(entry, float), np.asarray(target, float))
    after = lobes_along(np.asarray(target, float), np.asarray(tip, float))
    if not (len(before) > 0 and np.all(after == before[-1])):
        return False
    # what the path shares with its advance grazes another lobe by at most a voxel (review 42 L3:
    # the status says "within a voxel"); a longer run there is a crossing the probe must not extend
    other = np.r_[False, before != before[-1], False]
    edges = np.flatnonzero(np.diff(other.astype(np.int8)))
    longest = float(np.max(edges[1::2] - edges[::2])) * ANTENNA_STEP_MM if len(edges) else 0.0
    return longest <= float(np.linalg.norm(lab.spacing_kji))


def image_exit(vol, a, b, step_mm: float = 0.5) -> tuple[str, float] | None:
    """Where the segment ``a`` -> ``b`` (RAS mm) first leaves ``vol``'s array (the voxels' box,
    continuous index outside [-0.5, n - 0.5]): (the anatomical side of the face it crosses,
    `directions.side_of` of that face's outward normal; mm from ``a``), or None when it stays
    inside. Samples every ``step_mm``."""
    from ...directions import side_of

    a, b = np.asarray(a, float), np.asarray(b, float)
    n = max(int(np.ceil(np.linalg.norm(b - a) / step_mm)), 1)
    t = np.linspace(0.0, 1.0, n + 1)
    kji = vol.world_to_kji(a + t[:, None] * (b - a))
    shp = np.asarray(vol.shape, float)
    low, high = kji < -0.5, kji > shp - 0.5
    out = (low | high).any(1)
    if not out.any():
        return None
    f = int(np.argmax(out))
    ax = int(np.argmax(low[f] | high[f]))
    sign = -1.0 if low[f, ax] else 1.0
    return side_of(vol.direction[:, 2 - ax] * sign), float(t[f] * np.linalg.norm(b - a))


def place_on_path(plan, ctx: AblationContext, device: Device, setting: Setting, entry_ras,
                  centre_ras=None, centre_words: str = "the target") -> ProbePlan:
    """One probe on the path entry -> centre, advanced so the zone centre lands on
    ``centre_ras`` (default: the plan's target); the advanced path is re-checked, and when it
    violates a hard constraint the tip is advanced only as far as stays feasible (``status``).
    ``centre_words``: what ``centre_ras`` is, in the status ("single probe, zone centred on the
    target"; `spare.spare_hollow_viscus` names a point along the path short of / deeper than it)."""
    t0 = time.perf_counter()
    e = np.asarray(entry_ras, float)
    c = np.asarray(plan.problem.target.point_ras if centre_ras is None else centre_ras, float)
    full_probe = Probe.centred_on(e, c, setting)
    u, tip = full_probe.direction, full_probe.tip_ras
    p = _placement(plan, e, tip)
    status, kind = f"single probe, zone centred on {centre_words}", "centred"
    if not p.feasible and set(p.violations) == {"fissure"} and _advance_in_one_lobe(plan, e, c, tip):
        # the advance itself crosses no fissure: the count differs from the planned path's only
        # because the longer track's samples fall elsewhere on a sub-voxel graze of another lobe
        # that both share (new-user trial 50 M1: a 0.3 mm clip of one middle-lobe voxel held the
        # probe back 10 mm, 65 % covered); one verdict for one track, the graze said
        p = dataclasses.replace(p, feasible=True, violations=[])
        kind = "centred_graze"
        status = (f"single probe, zone centred on {centre_words}; the track grazes another lobe within a voxel "
                  "(the fissure may lie on it): check the fissure on the images")
    if not p.feasible:   # advance less: the deepest feasible tip between the target and there
        full = p
        # always down to 0 mm (the tip on the target: the planned path itself); an odd or
        # non-integer offset stepped by 2 mm never reached it (new-user trial 32 H1: the
        # infeasible full advance was kept, 2.9 mm from the portal vein, and called "centred")
        advs = np.arange(setting.centre_offset_mm - ADVANCE_STEP_MM, 0.0, -ADVANCE_STEP_MM)
        for adv in [*advs, 0.0]:
            q = _placement(plan, e, c + adv * u)
            if q.feasible:
                kind = "advanced_short"
                # the rule's name with what it means where a name alone does not say it (new-user
                # trial 112: "further violates reach" for a track longer than the needle)
                reach = (f"reach (the track would be {full.length_mm:.0f} mm from the skin, longer than the "
                         f"{plan.problem.needle.length_mm:g} mm needle; --needle-length)")
                why = ("further violates " + (", ".join(reach if v == "reach" else v for v in full.violations)
                                              or "a hard constraint"))
                past = image_exit(plan.problem.ct, c, tip) if set(full.violations) <= {"leaves_body"} else None
                if past is not None:   # new-user trial 92: the image's edge, not air, was told "leaves_body"
                    kind = "advanced_short_image"
                    why = (f"further its track runs past the image's {past[0]} end ({past[1]:.0f} mm past the "
                           "target; the tissue there is not imaged, so the planner takes it as outside the body)")
                status = (f"single probe advanced {adv:g} of {setting.centre_offset_mm:g} mm past the target: "
                          f"{why}, so the zone's centre lies {setting.centre_offset_mm - adv:g} mm short of {centre_words}")
                p, tip = q, c + adv * u
                break
        else:   # not even the tip on the target: the placement breaks a hard constraint, said so
            kind = "infeasible"
            status = (f"INFEASIBLE: single probe advanced {setting.centre_offset_mm:g} mm past the target "
                      f"violates {', '.join(full.violations)}, and so does every shorter advance down to the "
                      "target: the coverage and margin are those of a probe that cannot be placed")
    ells = zones([Probe(tip, u)], setting)
    out = ProbePlan(device.name, setting.id, device.modality, [p], ctx.evaluate(ells, device.modality),
                    status=status, status_kind=kind)
    out._zones = ells
    out.timings_s = {"total": time.perf_counter() - t0}
    return out


TRACK_STEP_MM = 0.5   # sampling step along a parallel track when looking for its skin entry


def _perpendicular_basis(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors (RAS) perpendicular to the unit vector ``d`` and to each other, fixed in
    the world (from the RAS axis least aligned with ``d``): the same lattice whatever the
    array's axis order."""
    ax = np.eye(3)[int(np.argmin(np.abs(d)))]
    v1 = np.cross(d, ax)
    v1 /= np.linalg.norm(v1)
    return v1, np.cross(d, v1)


def parallel_tracks(maps, ctx: AblationContext, target, directions, lateral_mm: float, step_mm: float,
                    reach_mm: float, region=None):
    """Candidate probes on parallel tracks, each from its own skin entry, as probes in place at
    once are placed side by side (cryoablation: parallel cryoprobes 1-2 cm apart, Littrup 2009;
    Shah 2016, ablation_criteria.json ``simultaneous_probe_spacing``). For each unit direction of
    ``directions`` (n, 3; a feasible needle direction to the target), the lines along it through
    a square lattice of points ``lateral_mm`` apart in the plane across it through ``target``;
    on each line the zone centres ``step_mm`` apart that lie in ``region`` (bool mask on the
    analysis grid; default the tumour, ``ctx.tumour``), and
    the line's skin entry: where the line, followed back from its deepest centre, first leaves
    the body (its last sample inside, on the outer skin of ``maps``; a line that leaves through
    a cut face, leaves the maps' crop, finds no skin within ``reach_mm`` or meets the body again
    further back within ``reach_mm`` (another body part in the shaft's way) is dropped). Two
    tracks of one direction are at least ``lateral_mm`` apart along their whole length; all
    centres of a line share its entry (one probe per line when the probes may not share one).
    Returns (E entries, C centres, N outward skin normals at the entries, track id per
    candidate, direction index per candidate), RAS mm, quantised, each direction's candidates
    in world order of their centres.
    Vectorised over lines and samples; the loop is over the (at most ``max_directions``)
    directions."""
    from ..candidates import normals_at
    from ..distance_maps import BODY, SKIN

    g = ctx.grid
    region = ctx.tumour if region is None else region
    t = quantise_mm(np.asarray(target, float)[None])[0]
    kt = np.argwhere(region)
    R = float(np.linalg.norm(g.kji_to_ras(kt.astype(float)) - t, axis=1).max()) if len(kt) else 0.0
    K = int(np.ceil(R / lateral_mm))
    Km = int(np.ceil(R / step_mm))
    ii, jj = np.meshgrid(np.arange(-K, K + 1), np.arange(-K, K + 1), indexing="ij")
    ii, jj = ii.ravel(), jj.ravel()
    mm = np.arange(-Km, Km + 1)
    samples = np.arange(0.0, float(reach_mm) + TRACK_STEP_MM, TRACK_STEP_MM)
    shape = np.asarray(maps.code.shape)
    out_e, out_c, out_n, out_t, out_f = [], [], [], [], []
    n_tracks = 0
    for f, d in enumerate(np.asarray(directions, float)):
        d = d / np.linalg.norm(d)
        v1, v2 = _perpendicular_basis(d)
        base = t + lateral_mm * (ii[:, None] * v1 + jj[:, None] * v2)            # (lines, 3)
        P = base[:, None, :] + step_mm * mm[None, :, None] * d                   # (lines, depths, 3)
        kji = np.rint(g.ras_to_kji(P.reshape(-1, 3))).astype(np.int64)
        inb = np.all((kji >= 0) & (kji < np.asarray(g.shape)), axis=1)
        inside = np.zeros(len(kji), bool)
        inside[inb] = region[tuple(kji[inb].T)]
        inside = inside.reshape(len(base), len(mm))
        lines = np.flatnonzero(inside.any(axis=1))
        if not len(lines):
            continue
        deepest = len(mm) - 1 - np.argmax(inside[lines, ::-1], axis=1)
        start = P[lines, deepest]                                                 # (l, 3)
        S = start[:, None, :] - samples[None, :, None] * d                        # back towards the skin
        sk = np.rint(maps.world_to_kji(S.reshape(-1, 3))).astype(np.int64)
        incrop = np.all((sk >= 0) & (sk < shape), axis=1)
        fl = np.zeros(len(sk), np.int64)
        fl[incrop] = maps.code[tuple(sk[incrop].T)] >> maps.code_shift
        fl = fl.reshape(len(lines), len(samples))
        incrop = incrop.reshape(len(lines), len(samples))
        out = ~(fl & BODY).astype(bool)
        first_out = np.argmax(out, axis=1)
        ok = out.any(axis=1) & (first_out > 0)
        # on the OUTER skin: followed further back (the needle's part outside the skin) the line
        # stays out of the body; one that meets it again runs through another body part (an arm,
        # a fold of the outline) where the shaft cannot pass (planning_defaults tissue_outside_skin_mm)
        ok &= ~(~out & (np.arange(len(samples))[None, :] > first_out[:, None])).any(axis=1)
        last = np.maximum(first_out - 1, 0)
        r = np.arange(len(lines))
        ok &= incrop[r, first_out] & incrop[r, last] & ((fl[r, last] & SKIN) > 0)
        if not ok.any():
            continue
        L = lines[ok]
        entry = quantise_mm(S[r[ok], last[ok]])                                   # on the line
        li, di = np.nonzero(inside[L])
        C = quantise_mm(P[L[li], di])
        o = world_order(C)     # each direction's candidates in world order of their centres
        out_c.append(C[o])
        out_e.append(entry[li][o])
        out_n.append(normals_at(maps, entry)[li][o])
        out_t.append(n_tracks + li[o])
        out_f.append(np.full(len(o), f))
        n_tracks += len(L)
    if not out_c:
        z = np.zeros((0, 3))
        return z, z, z, np.zeros(0, int), np.zeros(0, int)
    return tuple(np.concatenate(x) for x in (out_e, out_c, out_n, out_t, out_f))


def plan_for_probe(plan, device):
    """``plan`` (a `planning.planner.Plan`, or None) with its needle the probe of ``device``
    (`Device.needle`: the device's own shaft, as ``imagio plan --device``): the Slicer module,
    IMAGIO Web and ``imagio demo`` plan their needle before the ablation device is chosen, so a
    plan whose needle differs is planned again on the same maps (they depend on the needle's
    length only), its candidate paths scored and its probes checked for the shaft (closing note
    35, Left 3). The re-plan is kept on ``plan``, one per needle (all its fields, `problem.Needle`)."""
    if plan is None:
        return None
    needle = device.needle(plan.problem.needle)
    if needle == plan.problem.needle:
        return plan
    from dataclasses import astuple, replace

    from ..planner import plan as plan_paths

    cache = plan.__dict__.setdefault("_for_probe", {})   # one re-plan per needle, not one per click
    # every field of the needle (review 44 L1: beyond_tip_mm, per procedure, was left out, so a
    # needle differing only there got the other's plan)
    key = astuple(needle)
    if key not in cache:
        prob = replace(plan.problem, needle=needle, warnings=list(plan.problem.warnings))
        cache[key] = plan_paths(prob, k=max(len(plan.proposals), 1), maps=plan.maps)
    return cache[key]


def min_shaft_spacing_mm(needle) -> float:
    """The closest two planned shafts of probes in place at once may come (mm): one shaft
    diameter plus both probes' placement uncertainty (``needle``: `problem.Needle`, the probe's
    own shaft under ``imagio plan --device``; ``simultaneous_probe_spacing`` of
    ablation_criteria.json says why)."""
    return float(needle.diameter_mm) + 2.0 * float(needle.uncertainty_mm)


def segment_distances(p0, p1, q0, q1):
    """(distance, s, t) between the segments p0-p1 and q0-q1 (RAS mm, arrays broadcast over
    their leading axes, each segment of positive length): the exact closest points are
    p0 + s (p1 - p0) and q0 + t (q1 - q0), s and t in [0, 1] (Ericson C, Real-Time Collision
    Detection, 2005, 5.1.9: the unclamped closest points of the two lines, t clamped, then s
    recomputed and clamped; parallel segments take s = 0)."""
    d1, d2 = np.asarray(p1, float) - p0, np.asarray(q1, float) - q0
    r = np.asarray(p0, float) - q0
    a, e = np.einsum("...i,...i->...", d1, d1), np.einsum("...i,...i->...", d2, d2)
    b, c, f = (np.einsum("...i,...i->...", d1, d2), np.einsum("...i,...i->...", d1, r),
               np.einsum("...i,...i->...", d2, r))
    den = a * e - b * b
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(den > 1e-12 * a * e, np.clip((b * f - c * e) / den, 0.0, 1.0), 0.0)
        t = (b * s + f) / e
        s = np.where(t < 0.0, np.clip(-c / a, 0.0, 1.0), np.where(t > 1.0, np.clip((b - c) / a, 0.0, 1.0), s))
    t = np.clip(t, 0.0, 1.0)
    gap = (np.asarray(p0, float) + s[..., None] * d1) - (np.asarray(q0, float) + t[..., None] * d2)
    return np.sqrt(np.einsum("...i,...i->...", gap, gap)), s, t


def shaft_conflicts(E: np.ndarray, T: np.ndarray, limit_mm: float, track=None) -> np.ndarray:
    """Bool (n, n): the shafts entry E[i] -> tip T[i] and E[j] -> T[j] (RAS mm) pass closer than
    ``limit_mm`` anywhere along their length (`segment_distances`; True on the diagonal and for
    probes through one entry). ``track`` (int per shaft, optional): shafts of one track lie on
    one line from one entry (`parallel_tracks`), so each is part of its track's longest shaft;
    they conflict with each other, and the shafts of two tracks are compared only when the
    tracks' longest shafts pass closer than the limit (parallel tracks of one direction never
    do): the pairs measured are those of nearby tracks, vectorised (without ``track`` every
    shaft is its own track: every pair is measured)."""
    n = len(E)
    E, T = np.asarray(E, float), np.asarray(T, float)
    inv = np.arange(n) if track is None else np.unique(np.asarray(track), return_inverse=True)[1].ravel()
    nt = int(inv.max()) + 1 if n else 0
    order = np.lexsort((-np.linalg.norm(T - E, axis=1), inv))       # by track, longest first
    counts = np.bincount(inv, minlength=nt)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    lo = order[starts]                                                # each track's longest shaft
    out = inv[:, None] == inv[None, :]                                # one track: one line, one entry
    A, B = [], []
    for s0 in range(0, nt, 256):                                      # track pairs, blocks of rows
        d = segment_distances(E[lo[s0:s0 + 256], None], T[lo[s0:s0 + 256], None], E[lo][None], T[lo][None])[0]
        a, b = np.nonzero(d < limit_mm)
        keep = s0 + a < b
        A.append(s0 + a[keep])
        B.append(b[keep])
    A, B = (np.concatenate(x).astype(np.int64) if x else np.zeros(0, np.int64) for x in (A, B))
    m = counts[A] * counts[B]                                         # shaft pairs of each near track pair
    for c0 in range(0, len(A), 4096):                                 # chunks of track pairs
        a, b, mc = A[c0:c0 + 4096], B[c0:c0 + 4096], m[c0:c0 + 4096]
        pid = np.repeat(np.arange(len(a)), mc)
        k = np.arange(int(mc.sum())) - np.repeat(np.cumsum(mc) - mc, mc)
        i = order[starts[a[pid]] + k // counts[b[pid]]]
        j = order[starts[b[pid]] + k % counts[b[pid]]]
        close = segment_distances(E[i], T[i], E[j], T[j])[0] < limit_mm
        out[i[close], j[close]] = True
        out[j[close], i[close]] = True
    return out


class SpacingInfeasible(ImagioError):
    """No cover of the tumour + margin by probes that keep clear of each other (`Spacing`);
    ``proven``: the solver showed that none exists among the candidate zones (else it stopped
    before deciding)."""

    def __init__(self, proven: bool):
        super().__init__("no cover by probes that keep clear of each other")
        self.proven = bool(proven)


@dataclass
class Spacing:
    """Which candidate probes may not be in place together: ``conflict`` (bool, columns x
    columns, `shaft_conflicts`) and ``group`` (int per column: the skin entry; probes of one
    entry conflict pairwise), for the covers of simultaneous probes (cryoablation)."""

    conflict: np.ndarray
    group: np.ndarray
    family: np.ndarray | None = None   # int per column: its direction (`parallel_tracks`), or None

    @classmethod
    def of(cls, E: np.ndarray, T: np.ndarray, limit_mm: float, track=None, family=None) -> "Spacing":
        return cls(shaft_conflicts(E, T, limit_mm, track),
                   np.unique(quantise_mm(E), axis=0, return_inverse=True)[1].ravel(),
                   None if family is None else np.asarray(family))

    def sub(self, idx) -> "Spacing":
        idx = np.asarray(idx)
        return Spacing(self.conflict[np.ix_(idx, idx)], self.group[idx],
                       None if self.family is None else self.family[idx])

    def allowed(self, pick) -> np.ndarray:
        """Bool per column: it conflicts with none of the columns ``pick``."""
        return ~self.conflict[list(pick)].any(axis=0) if len(pick) else np.ones(len(self.group), bool)

    def constraints(self) -> LinearConstraint:
        """``milp`` rows (each <= 1) that forbid every conflicting pair: one per entry (its probes
        pairwise conflict: at most one), and per column i and other entry g, x_i plus the columns
        of g that conflict with i (valid since g holds at most one probe: the pairs in few rows)."""
        G = np.unique(self.group)
        rows, cols = [np.searchsorted(G, self.group)], [np.arange(len(self.group))]
        r0 = len(G)
        for g in G:
            M = self.conflict[:, self.group == g] & (self.group != g)[:, None]
            ii = np.flatnonzero(M.any(axis=1))
            if not len(ii):
                continue
            k, j = np.nonzero(M[ii])
            rows += [r0 + np.arange(len(ii)), r0 + k]
            cols += [ii, np.flatnonzero(self.group == g)[j]]
            r0 += len(ii)
        S = sparse.csr_matrix((np.ones(sum(map(len, rows))), (np.concatenate(rows), np.concatenate(cols))),
                              shape=(r0, len(self.group)))
        return LinearConstraint(S, lb=-np.inf, ub=1.0)


def _directions(table, target, max_dirs: int, min_sep_deg: float):
    """Indices of up to ``max_dirs`` feasible rows, best score first (scores rounded to
    ``SCORE_DECIMALS``, ties in world order of the entries), whose directions to the target
    differ pairwise by at least ``min_sep_deg``."""
    feas = np.flatnonzero(table.feasible)
    if len(feas) == 0:
        return feas
    feas = feas[order_rows(np.round(table.score[feas].astype(np.float64), SCORE_DECIMALS),
                           table.entry_ras[feas])]
    u = quantise_mm(target) - quantise_mm(table.entry_ras[feas])
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    cos_min = math.cos(math.radians(min_sep_deg))
    chosen = [0]
    for i in range(1, len(feas)):   # greedy over candidates (not voxels): at most a few thousand
        if len(chosen) >= max_dirs:
            break
        if np.all(u[chosen] @ u[i] < cos_min):
            chosen.append(i)
    return feas[chosen]


def _lattice(mask: np.ndarray, spacing_kji, step_mm: float, ijk_to_ras=None) -> np.ndarray:
    """Fine kji indices (int (n, 3)) of ``mask`` (bool [k, j, i]) on a sub-lattice about
    ``step_mm`` apart along each axis, anchored on the voxel nearest the mask's centroid: the
    same world points whatever the array's axis order (anchored on index 0, a flipped copy of
    the same image gave other candidate zones and 2 probes instead of 1, both "proven": new-user
    trial 20). A centroid exactly halfway between two voxels along an axis is rounded towards
    the later one in world order (`imagio.world_order`: S, then A, then R) when ``ijk_to_ras``
    (4x4) is given, else upwards in index (which a flipped copy does the other way)."""
    st = np.maximum(1, np.rint(step_mm / np.asarray(spacing_kji)).astype(int))
    idx = np.argwhere(mask)
    if not len(idx):
        return idx
    m = idx.mean(axis=0)   # exact halves stay exact: the sum is an integer, its flip (n-1)N - sum
    c = np.floor(m + 0.5).astype(int)
    if ijk_to_ras is not None:
        cols = np.asarray(ijk_to_ras, float)[:3, :3].T[::-1]   # row a: RAS step of kji axis a
        key = quantise_mm(cols[:, ::-1])                     # (S, A, R) of each step
        first = key[np.arange(3), np.argmax(key != 0, axis=1)]
        c -= ((m - np.floor(m) == 0.5) & (first < 0)).astype(int)   # the step points backwards
    return idx[np.all((idx - c) % st == 0, axis=1)]


def _lattice_ras(mask: np.ndarray, grid, step_mm: float) -> np.ndarray:
    """RAS points (n, 3; mm, quantised) of `_lattice` on the analysis grid ``grid``, in world
    order (`imagio.world_order`)."""
    P = quantise_mm(grid.kji_to_ras(_lattice(mask, grid.spacing_kji, step_mm, grid.ijk_to_ras).astype(float)))
    return P[world_order(P)]


def reduce_cover(A: np.ndarray, cost: np.ndarray, columns: bool = True):
    """Drop redundant rows and columns of a set-cover matrix A (points x zones, bool):
    duplicate rows; rows whose zones include all zones of another row (covering that one
    covers them); zones whose points are a subset of another zone's at no lower cost (with
    ``columns``; without, only zones that cover nothing: a zone inside another may still be the
    one whose shaft keeps clear of the others', `Spacing`).
    Returns (reduced A, indices of the kept columns)."""
    A = A[np.sort(np.unique(np.packbits(A, axis=1), axis=0, return_index=True)[1])]
    Af = A.astype(np.float32)
    inter = Af @ Af.T                              # |r & s| for every pair of rows
    size = Af.sum(axis=1)
    sub = inter >= size[:, None] - 0.5             # sub[r, s]: row r's zones are within row s's
    np.fill_diagonal(sub, False)
    A = A[~sub.any(axis=0)]
    if not columns:
        cols = np.flatnonzero(A.any(axis=0))
        return A[:, cols], cols
    Af = A.astype(np.float32)
    inter = Af.T @ Af                              # |z & y| for every pair of zones
    size = Af.sum(axis=0)
    contained = inter >= size[:, None] - 0.5       # [z, y]: zone z's points are within zone y's
    better = (cost[None, :] < cost[:, None]) | ((cost[None, :] == cost[:, None])
                                                 & (np.arange(len(cost))[None, :] < np.arange(len(cost))[:, None]))
    drop = (contained & better).any(axis=1) | (size == 0)
    cols = np.flatnonzero(~drop)
    return A[:, cols], cols


def maximal_columns(A: np.ndarray) -> np.ndarray:
    """Indices of the columns (zones) of A (bool points x zones) whose point sets are not
    strictly inside another column's (of equal sets the first). For the fewest zones, and for
    the LP relaxation, the others never matter: any cover stays a cover, with as many zones,
    when each zone is replaced by a maximal zone containing it. So both optima over these
    columns equal those over all of A."""
    Af = A.astype(np.float32)
    inter = Af.T @ Af                              # |z & y| for every pair of zones
    size = Af.sum(axis=0)
    contained = inter >= size[:, None] - 0.5       # [z, y]: zone z's points are within zone y's
    same = contained & contained.T
    idx = np.arange(A.shape[1])
    drop = ((contained & ~same) | (same & (idx[None, :] < idx[:, None]))).any(axis=1) | (size == 0)
    return np.flatnonzero(~drop)


ZONE_BLOCK_BYTES = 32 << 20   # float64 (points, zones, 3) offsets per block of `_zone_blocks` (review 43 L1)


def _zone_blocks(P: np.ndarray, C: np.ndarray, U: np.ndarray, a: float, b: float, s2: float = 1.0):
    """Yield ``(z0, z1, inside)`` over blocks of zones: ``inside`` bool (len(P), z1 - z0), point p
    (RAS mm, (n, 3)) inside zone z (centre C, unit axis U, semi-axes a along, b across, in mm),
    the ellipsoid scaled about its centre by sqrt(s2). Vectorised over points; a block holds as
    many zones as keep its (points, zones, 3) float64 offsets within ``ZONE_BLOCK_BYTES``, so the
    memory does not grow with the number of points (review 43 L1: fixed 256-zone blocks were
    ~0.6 GB at 10^5 points)."""
    step = max(1, ZONE_BLOCK_BYTES // (24 * max(len(P), 1)))
    for z0 in range(0, len(C), step):
        d = P[:, None, :] - C[None, z0:z0 + step, :]
        t = np.einsum("pzi,zi->pz", d, U[z0:z0 + step])
        yield z0, min(z0 + step, len(C)), t * t / a ** 2 + (np.einsum("pzi,pzi->pz", d, d) - t * t) / b ** 2 <= s2


def _covers(P: np.ndarray, C: np.ndarray, U: np.ndarray, a: float, b: float, clear: float) -> np.ndarray:
    """Bool (len(P), len(C)): point p lies in zone z (centre C, axis U, semi-axes a along, b
    across) with every point within ``clear`` mm of p inside it too (zone shrunk about its
    centre by 1 - clear / min(a, b), see module doc)."""
    out = np.zeros((len(P), len(C)), bool)
    for z0, z1, inside in _zone_blocks(P, C, U, a, b, max(1.0 - clear / min(a, b), 0.0) ** 2):
        out[:, z0:z1] = inside
    return out


def _greedy_cover(A: np.ndarray, cost: np.ndarray, spacing: "Spacing | None" = None, first=None) -> np.ndarray:
    """Columns of a cover of every row of A (bool points x zones): repeatedly the zone covering
    the most uncovered points (ties: the cheaper), then zones made redundant dropped, most
    expensive first. With ``spacing`` only zones whose probes keep clear of those chosen: then
    the result may cover less than every row (check it). ``first`` (column indices): those
    zones only while one of them still covers an uncovered point, then all; but before them, for
    the rows none of them covers, zones of the others (those probes in place first, so that
    ``first``'s keep clear of them)."""
    left = np.ones(A.shape[0], bool)
    pick = []
    Af = A.astype(np.float32)
    ok = np.ones(A.shape[1], bool)
    pref = hard = None
    if first is not None:
        pref = np.zeros(A.shape[1], bool)
        pref[np.asarray(first, int)] = True
        hard = ~A[:, pref].any(axis=1)   # rows that no zone of ``first`` covers: theirs come first
    # per zone, its uncovered rows (and uncovered ``hard`` rows), updated by the rows each choice
    # covers: whole numbers in float32, the same values as ``left @ Af`` recomputed per choice
    count = Af.sum(axis=0)
    count_hard = None if hard is None else Af[hard].sum(axis=0)
    while left.any():
        if hard is not None and (left & hard).any():
            gain = np.where(ok & ~pref, count_hard, -1.0)
            if gain.max() <= 0:
                break
        else:
            gain = np.where(ok, count, -1.0)
            if pref is not None and (gain[pref] > 0).any():
                gain = np.where(pref, gain, -1.0)
        z = int(np.lexsort((cost, -gain))[0])
        if gain[z] <= 0:
            break
        pick.append(z)
        new = left & A[:, z]
        count -= Af[new].sum(axis=0)
        if hard is not None:
            count_hard -= Af[new & hard].sum(axis=0)
        left &= ~new
        if spacing is not None:
            ok &= ~spacing.conflict[z]
    pick = sorted(pick, key=lambda z: -cost[z])
    for z in list(pick):
        rest = [y for y in pick if y != z]
        if rest and A[:, rest].any(axis=1).all():
            pick = rest
    return np.array(sorted(pick), int)


def _two_for_one(A: np.ndarray, pick: np.ndarray, cost: np.ndarray, usable: np.ndarray,
                 spacing: "Spacing | None" = None) -> np.ndarray:
    """Local search on a cover of the rows of A: while two chosen zones can be replaced by one
    usable zone that covers every row only they covered (and, with ``spacing``, whose probe
    keeps clear of the others'), replace them (each step one zone fewer). Returns the columns
    of the cover."""
    pick = list(pick)
    improved = True
    while improved and len(pick) > 1:
        improved = False
        cov = A[:, pick]
        cnt = cov.sum(axis=1)
        # the rows only x and y cover are those only x covers, those only y covers and those
        # covered by exactly x and y: the zones holding all of them are the AND of the three
        # groups' ANDs (an empty group: every zone), each group's taken once per pass
        k = len(pick)
        one = np.flatnonzero(cnt == 1)
        owner = np.argmax(cov[one], axis=1)
        only = np.ones((k, A.shape[1]), bool)
        for x in np.unique(owner):
            only[x] = A[one[owner == x]].all(axis=0)
        two = np.flatnonzero(cnt == 2)
        both = {}
        if len(two):
            pos = np.nonzero(cov[two])[1].reshape(-1, 2)   # per row its two positions, ascending
            key = pos[:, 0] * k + pos[:, 1]
            for kk in np.unique(key):
                both[int(kk)] = A[two[key == kk]].all(axis=0)
        for x in range(len(pick)):
            for y in range(x + 1, len(pick)):
                ok = only[x] & only[y] & usable
                if x * k + y in both:
                    ok &= both[x * k + y]
                if spacing is not None and ok.any():
                    ok &= spacing.allowed([p for n, p in enumerate(pick) if n not in (x, y)])
                if ok.any():
                    z = int(np.flatnonzero(ok)[np.argmin(cost[ok])])
                    pick = [p for n, p in enumerate(pick) if n not in (x, y)] + [z]
                    improved = True
                    break
            if improved:
                break
    return np.array(sorted(pick), int)


def _grasp_cover(A: np.ndarray, pick: np.ndarray, cost: np.ndarray, lb: int, most: int,
                 restarts: int = GRASP_RESTARTS, noise: float = GRASP_NOISE,
                 spacing: "Spacing | None" = None) -> np.ndarray:
    """A cover of the rows of A (bool points x zones) with at most ``most`` zones when
    randomised greedy restarts find one (GRASP: Feo TA, Resende MGC. Greedy randomized adaptive
    search procedures. J Global Optim 1995;6:109-133): each restart takes, until every row is
    covered, the zone with the most uncovered rows times a random factor in [1 - ``noise``, 1]
    (a randomised greedy choice), then `_two_for_one`; it stops at the first cover of ``lb``
    zones (a lower bound: nothing smaller exists). A fixed seed makes the result
    machine-independent. Returns the smallest cover found (``pick`` when none has at most
    ``most`` zones). With ``spacing`` every restart takes only zones whose probes keep clear of
    those it took."""
    rng = np.random.default_rng(0)
    Af = A.astype(np.float32)
    every = np.ones(A.shape[1], bool)
    best = np.asarray(pick)
    # each zone's count of uncovered rows, updated by the rows each choice covers (whole numbers
    # in float32, exact below 2**24 rows: the same values as ``left @ Af`` recomputed per choice,
    # at the cost of the rows newly covered instead of all rows per choice)
    count0 = Af.sum(axis=0)
    for _ in range(restarts):
        left = np.ones(A.shape[0], bool)
        count = count0.copy()
        cur = []
        ok = np.ones(A.shape[1], bool)
        while left.any() and len(cur) <= most + 1:   # two more than `most`: _two_for_one's reach
            gain = np.where(ok, count, 0.0)
            if gain.max() <= 0:
                break
            z = int(np.argmax(gain * rng.uniform(1.0 - noise, 1.0, len(gain))))
            cur.append(z)
            new = left & A[:, z]
            count -= Af[new].sum(axis=0)
            left &= ~new
            if spacing is not None:
                ok &= ~spacing.conflict[z]
        if left.any():
            continue
        cur = _two_for_one(A, np.array(cur), cost, every, spacing)
        if len(cur) <= most and (len(best) == 0 or len(cur) < len(best)):
            best = cur
            if len(best) <= lb:
                break
    return best


def _solve_cover(A: np.ndarray, cost: np.ndarray, limit_s: float, lp_optimum: float | None = None,
                 restarts: int = GRASP_RESTARTS, spacing: "Spacing | None" = None):
    """(columns, proven) of a cover of every row of A (bool points x zones) with the fewest
    zones, then a lower ``cost`` at that count: the greedy cover, then randomised greedy
    restarts (`_grasp_cover`, ``restarts`` of them) until one meets the LP bound; when it is
    still larger than the LP relaxation's optimum rounded up (``lp_optimum``: of A or of a
    matrix with more columns, so a valid lower bound), one ``milp`` with the pure count as
    objective (the weighted one
    was 3-5x slower; asking repeatedly for one zone fewer was 5x slower than one direct solve
    on the 45 mm demo tumour), stopped after ``NODE_LIMIT`` branch-and-bound nodes (a
    machine-independent limit); then each zone swapped for the cheapest one covering what
    only it covers (`_cheapen`: a local optimum of the healthy tissue, not the global one).
    ``limit_s`` only stops a solve that runs away (then the result depends on the machine:
    ``proven`` False says so). Proven: the count is the minimum over these rows and zones
    (it equals the LP bound, or HiGHS closed the gap). With ``spacing`` (probes in place at
    once): `_spaced_cover`."""
    if spacing is not None:
        return _spaced_cover(A, cost, limit_s, lp_optimum, restarts, spacing)
    pick = _greedy_cover(A, cost)
    lb = int(math.ceil(lp_optimum - 1e-6)) if lp_optimum is not None else 1
    mx = maximal_columns(A) if len(pick) > lb else None
    if mx is not None and restarts > 0:   # randomised restarts over the maximal zones (same fewest count)
        alt = mx[_grasp_cover(A[:, mx], np.zeros(0, int), cost[mx], lb, len(pick) - 1, restarts)]
        if 0 < len(alt) < len(pick):
            pick = alt
    proven = len(pick) <= lb
    if not proven:   # over the maximal zones only (the same fewest count, `maximal_columns`)
        cover = LinearConstraint(sparse.csr_matrix(A[:, mx], dtype=float), lb=1.0, ub=np.inf)
        res = milp(np.ones(len(mx)), constraints=[cover], bounds=Bounds(0, 1), integrality=np.ones(len(mx)),
                   options={"time_limit": float(limit_s), "node_limit": NODE_LIMIT})
        cand = mx[res.x > 0.5] if res.x is not None else np.zeros(0, int)
        if 0 < len(cand) <= len(pick) and A[:, cand].any(axis=1).all():
            pick = cand
            proven = res.status == 0 or len(pick) <= lb   # 0: optimal (gap closed)
    return _cheapen(A, pick, cost), proven


def _milp_spaced(A: np.ndarray, spacing: "Spacing", idx, limit_s: float, nodes: int, most: int | None = None):
    """(columns, milp status) of the fewest columns ``idx`` of A covering every row with no two
    conflicting (`Spacing.constraints`), and with ``most``, at most that many (a row of ones:
    a caller that keeps only a cover smaller than one it holds asks for no other, so the solver
    prunes every node whose bound cannot beat it), stopped after ``nodes`` branch-and-bound nodes
    (or ``limit_s``); columns empty when none was found (status 2: none exists among ``idx``,
    within ``most``)."""
    idx = np.asarray(idx)
    sub = spacing.sub(idx)
    n = len(idx)
    cover = LinearConstraint(sparse.csr_matrix(A[:, idx], dtype=float), lb=1.0, ub=np.inf)
    rows = [cover, sub.constraints()]
    if most is not None:
        rows.append(LinearConstraint(np.ones((1, n)), lb=0.0, ub=float(most)))
    res = milp(np.ones(n), constraints=rows, bounds=Bounds(0, 1),
               integrality=np.ones(n), options={"time_limit": float(limit_s), "node_limit": int(nodes)})
    cand = idx[res.x > 0.5] if res.x is not None else np.zeros(0, int)
    if len(cand) and spacing.conflict[np.ix_(cand, cand)][~np.eye(len(cand), dtype=bool)].any():
        cand = np.zeros(0, int)   # never a set that breaks the spacing (the milp's rows forbid it)
    return cand, res.status


def _spaced_cover(A: np.ndarray, cost: np.ndarray, limit_s: float, lp_optimum: float | None,
                  restarts: int, spacing: "Spacing"):
    """(columns, proven) of a cover of every row of A whose probes keep clear of each other
    (``spacing``: no two conflicting columns), the fewest first: the greedy cover among
    compatible zones; with the directions of parallel tracks (``spacing.family``,
    `parallel_tracks`), while none meets the LP bound, for each direction the greedy cover that
    takes its tracks first (`_greedy_cover` ``first``), and when none of those covers, the
    fewest among the tracks of each pair of directions (one milp each within ``PAIR_NODE_LIMIT``
    nodes: the 45 mm phantom tumour + 5 mm with the IceRod found no cover otherwise); then
    randomised restarts among compatible zones (`_grasp_cover`) that try to improve a cover
    (``SPACED_RESTARTS`` of them after a cover of parallel tracks) or, without directions, find
    one where the greedy dead-ends; without any cover one
    ``milp`` over every column with `Spacing.constraints` decides within ``NODE_LIMIT`` nodes
    (the LP bound of the cover alone stays a lower bound); without directions a cover above the
    bound is also improved by that milp. Then `_cheapen` among compatible zones.
    No such cover: (empty, proven) with ``proven`` True when ``milp`` showed that none exists
    (status 2), False when it stopped first."""
    def covers(p):
        return len(p) > 0 and bool(A[:, p].any(axis=1).all())

    pick = _greedy_cover(A, cost, spacing)
    pick = pick if covers(pick) else np.zeros(0, int)
    lb = int(math.ceil(lp_optimum - 1e-6)) if lp_optimum is not None else 1
    if spacing.family is not None and (len(pick) == 0 or len(pick) > lb):
        # side by side: for each direction, the greedy cover that takes that direction's parallel
        # tracks first (they conflict only on one line) and then, for what they leave uncovered,
        # tracks of any direction that keep clear of them; the smallest, ties to the first direction
        for f in np.unique(spacing.family):
            idx = np.flatnonzero(spacing.family == f)
            alt = _greedy_cover(A, cost, spacing, first=idx)
            if covers(alt) and (len(pick) == 0 or len(alt) < len(pick)):
                pick = alt
    if spacing.family is not None and len(pick) == 0:
        # none yet: the fewest among the tracks of two directions (each pair whose tracks reach
        # every row), one small milp each (`_milp_spaced`, ``PAIR_NODE_LIMIT`` nodes)
        fams = np.unique(spacing.family)
        for x in range(len(fams)):
            for y in range(x + 1, len(fams)):
                idx = np.flatnonzero((spacing.family == fams[x]) | (spacing.family == fams[y]))
                if not A[:, idx].any(axis=1).all():
                    continue
                # only a cover smaller than the one held is kept: none larger is searched for
                cand = _milp_spaced(A, spacing, idx, limit_s, PAIR_NODE_LIMIT,
                                    most=len(pick) - 1 if len(pick) else None)[0]
                if covers(cand) and (len(pick) == 0 or len(cand) < len(pick)):
                    pick = cand
        if len(pick):   # a cover of parallel tracks: restarts among compatible zones to improve it
            restarts = min(restarts, SPACED_RESTARTS)
    if (len(pick) > lb or (len(pick) == 0 and spacing.family is None)) and restarts > 0:
        most = len(pick) - 1 if len(pick) else A.shape[1]
        alt = _grasp_cover(A, np.zeros(0, int), cost, lb, most, restarts, spacing=spacing)
        if covers(alt) and (len(pick) == 0 or len(alt) < len(pick)):
            pick = alt
    proven = len(pick) > 0 and len(pick) <= lb
    if len(pick) == 0:   # no cover found yet: one milp over every column decides (within its nodes)
        cand, status = _milp_spaced(A, spacing, np.arange(A.shape[1]), limit_s, NODE_LIMIT)
        if not covers(cand):
            return np.zeros(0, int), status == 2   # 2: infeasible (no such cover exists)
        pick, proven = cand, status == 0 or len(cand) <= lb
    elif not proven and spacing.family is None:   # fewer than the cover found, within the node limit
        cand, status = _milp_spaced(A, spacing, np.arange(A.shape[1]), limit_s, NODE_LIMIT)
        if covers(cand) and len(cand) <= len(pick):
            pick, proven = cand, status == 0 or len(cand) <= lb
    return _cheapen(A, pick, cost, spacing), proven


def repair_cover(A: np.ndarray, pick, bad, cost: np.ndarray, accept, spacing: "Spacing | None" = None):
    """A cover of every row of A (bool points x zones) with as many zones as ``pick`` (column
    indices) in which each zone of ``bad`` (columns of ``pick`` that an independent check
    rejected) is replaced by the cheapest zone (``cost``, ties the first column) that covers
    every row only it covered, is not itself in ``pick`` and, with ``spacing``, keeps clear of
    the zones kept and of the replacements already taken, and that ``accept`` (column -> bool,
    called in cost order until one passes: the independent check) accepts. Returns the sorted
    columns, or None when a rejected zone has no such replacement (then solve the cover again
    without the rejected zones). No wall-clock limit: at most every column is checked once per
    rejected zone."""
    bad = set(int(b) for b in bad)
    cur = [int(z) for z in pick if int(z) not in bad]
    order = np.lexsort((np.arange(A.shape[1]), cost))    # cheapest first, ties the first column
    for b in sorted(bad):
        need = A[:, b] & ~A[:, cur].any(axis=1) if cur else A[:, b].copy()
        ok = A[need].all(axis=0)
        ok[list(pick)] = False
        ok[cur] = False
        if spacing is not None:
            ok &= spacing.allowed(cur)
        z = next((int(c) for c in order if ok[c] and accept(int(c))), None)
        if z is None:
            return None
        cur.append(z)
    if not A[:, cur].any(axis=1).all():   # each replacement covers what only its zone covered
        return None
    return np.array(sorted(cur), int)


def _cheapen(A: np.ndarray, pick: np.ndarray, cost: np.ndarray, spacing: "Spacing | None" = None) -> np.ndarray:
    """Each chosen zone replaced by the cheapest zone that covers every row only it covered
    (and, with ``spacing``, whose probe keeps clear of the others'; same count, lower cost;
    repeated while anything changes)."""
    pick = list(pick)
    changed = True
    while changed:
        changed = False
        for x in range(len(pick)):
            cov = A[:, pick]
            need = cov[:, x] & (cov.sum(axis=1) == 1)
            ok = A[need].all(axis=0)
            ok[pick] = False
            if spacing is not None:
                ok &= spacing.allowed(pick[:x] + pick[x + 1:])
            if ok.any():
                z = int(np.flatnonzero(ok)[np.argmin(cost[ok])])
                if cost[z] < cost[pick[x]] - 1e-12:
                    pick[x] = z
                    changed = True
    return np.array(sorted(pick), int)


COLLATERAL_STEP_MM = 2.0   # lattice step of the critical tissue the cover weighs (`collateral_cost`)


def collateral_class(name: str) -> tuple[float, str]:
    """(weight per mL, class name) of a structure for the multi-probe cover's healthy-tissue
    cost: the first class of ``collateral_cost`` (ablation_criteria.json, with sources: hollow
    viscera highest, Kang 2017) one of whose ``match`` strings is part of ``name``, else the
    default weight and ""."""
    from .criteria import class_match, load_criteria, name_key

    spec = load_criteria()["collateral_cost"]
    key = name_key(name)    # "Gall bladder", "Kidney_R": the criterion's spelling (trial 99 F1)
    for c in spec["classes"]:
        if any(m in key for m in class_match(c)):
            return float(c["weight"]), c["name"]
    return float(spec["default_weight"]), ""


def collateral_cost(ctx: AblationContext, C: np.ndarray, U: np.ndarray, a_mm: float, b_mm: float,
                    host_organ: str = "") -> np.ndarray:
    """Extra cost (weighted mL, float (n,)) of each candidate zone (centres ``C``, unit axes
    ``U``, (n, 3) RAS mm; half-length ``a_mm``, half-width ``b_mm``) for the critical tissue it
    takes in: sum over the labelled structures whose `collateral_class` weight w exceeds the
    default of (w - default) x their mL inside the zone, counted on a lattice
    ``COLLATERAL_STEP_MM`` apart of those structures' voxels on the analysis grid that lie
    within the zone's reach of the tumour (each lattice point standing for its share of their
    voxels). The tumour and ``host_organ`` keep the default weight. Added to the zone's
    healthy mL, it makes the cover prefer, among covers of the same probe count, the one that
    spares hollow viscera and solid organs (new-user trial 50 M2: a liver cover took in
    duodenum 0.63 mL and kidney 1.02 mL that the single probes spared). Vectorised over
    points, blocks of zones."""
    from .criteria import load_criteria

    default = float(load_criteria()["collateral_cost"]["default_weight"])
    out = np.zeros(len(C))
    fl = ctx.fine_labels
    w = {int(v): collateral_class(n)[0] - default for v, n in ctx.names.items()
         if v and int(v) != ctx.tumour_value and n != host_organ}
    w = {v: x for v, x in w.items() if x > 0}
    if not w or not len(C):
        return out
    lut = np.zeros(max(int(fl.max()), max(w)) + 1)
    lut[list(w)] = list(w.values())
    g = ctx.grid
    mask = (ctx.tumour_sdf <= max(a_mm, b_mm)) & (lut[fl] > 0)
    kji = _lattice(mask, g.spacing_kji, COLLATERAL_STEP_MM, g.ijk_to_ras)
    if not len(kji):
        return out
    wp = lut[fl[tuple(kji.T)]] * (int(mask.sum()) * g.voxel_ml / len(kji))   # weighted mL per point
    P = g.kji_to_ras(kji.astype(float))
    for z0, z1, inside in _zone_blocks(P, C, U, a_mm, b_mm):
        out[z0:z1] = wp @ inside
    return np.round(out, 9)   # rounded: cell volumes differ in the last bits for another axis order


def _pairs_cover(packed: np.ndarray, n_rows: int) -> np.ndarray:
    """Bool (m, m): whether zones z and w together cover all ``n_rows`` rows, from each zone's
    rows as packed bits (``packed``: (m, bytes) uint8, `np.packbits` along the rows): no row is
    missed by both (their misses' AND is zero). 64 rows per word (review 43 M4: a float matrix
    product of the misses was most of the pair swaps' time)."""
    valid = np.packbits(np.ones(n_rows, bool))
    miss = ~packed & valid                        # the padding bits are no rows
    pad = (-miss.shape[1]) % 8
    words = np.ascontiguousarray(np.pad(miss, ((0, 0), (0, pad)))).view(np.uint64)   # (m, words)
    both = np.zeros((len(words), len(words)), bool)
    for k in range(words.shape[1]):               # a few words: rows / 64
        both |= (words[:, None, k] & words[None, :, k]) != 0
    return ~both


def _pair_swaps(A: np.ndarray, pick: np.ndarray, cost: np.ndarray, critical: np.ndarray,
                rounds: int = SPARE_ROUNDS) -> np.ndarray:
    """Local search past `_cheapen` for a cheaper cover of the same count: each pair of chosen
    zones of which one holds critical tissue (``critical``, bool per column) replaced by the
    cheapest pair of zones covering every row only those two covered (all pairs at once: a
    pair covers when no such row lies outside both, one matrix product), while the summed
    ``cost`` drops (at most ``rounds`` passes; deterministic, no time limit). Returns the
    columns of the cover."""
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
                Z = np.flatnonzero(A[need].any(axis=0))
                Z = Z[np.argsort(cost[Z], kind="stable")]   # the cheapest zone of each pattern on those rows
                # only a pair cheaper than the pair out by more than the best gain yet can be taken:
                # a zone costlier than that less the cheapest zone is in no such pair (a prefix of
                # Z; review 43 M4: the swaps' time, same result; 1e-9: float rounding stays inside)
                floor = max(1e-12, best[0] if best is not None else 0.0)
                Z = Z[:int(np.searchsorted(cost[Z] + cost[Z[:1]].sum(), cost[pick[x]] + cost[pick[y]] - floor + 1e-9))]
                if len(Z) < 1:
                    continue
                Pk = np.ascontiguousarray(np.packbits(A[np.ix_(need, Z)], axis=0).T)   # rows as bits (|Z|, bytes)
                key = Pk.view(np.dtype((np.void, Pk.shape[1]))).ravel()   # one pattern per zone
                first = np.sort(np.unique(key, return_index=True)[1])
                Z, Pk = Z[first], Pk[first]
                ok = _pairs_cover(Pk, int(need.sum()))        # z, w together cover every needed row
                pair = np.where(ok, cost[Z][:, None] + cost[Z][None, :], np.inf)
                i, j = np.unravel_index(int(np.argmin(pair)), pair.shape)
                gain = cost[pick[x]] + cost[pick[y]] - pair[i, j]
                if gain > 1e-12 and (best is None or gain > best[0]):
                    best = (gain, x, y, int(Z[i]), int(Z[j]))
        if best is None:
            break
        _, x, y, z, w = best
        pick = [p for n, p in enumerate(pick) if n not in (x, y)] + sorted({z, w})
    return np.array(sorted(set(pick)), int)


def collateral_report(cov: Coverage, n_probes: int, searched: bool, host_organ: str = "") -> dict:
    """What the multi-probe cover left of the critical tissue (`collateral_class` weight above
    the default) in its zones, for plan.json and the warnings: {"in_zones_ml": {name: mL on the
    analysis grid}, "classes": {name: class}, "n_probes", "searched": whether pair swaps
    (`_pair_swaps`) looked for a cover of that count sparing it (a local optimum, not a proof),
    "weights": {class: weight per mL}, "source"}."""
    from .criteria import load_criteria

    spec = load_criteria()["collateral_cost"]
    default = float(spec["default_weight"])
    hit = {n: round(v, 2) for n, v in cov.healthy_ml.items()
           if n != host_organ and round(v, 2) > 0 and collateral_class(n)[0] > default}
    return {"in_zones_ml": hit, "classes": {n: collateral_class(n)[1] for n in hit}, "n_probes": n_probes,
            "searched": searched, "weights": {c["name"]: c["weight"] for c in spec["classes"]},
            "source": spec["source"]}


def _depth(P: np.ndarray, ells) -> np.ndarray:
    """A lower bound (mm) of how deep each RAS point (n, 3) lies inside the union of the
    zones ``ells``: for each zone (1 - r) b, r the point's normalised ellipsoidal radius and b
    the smaller semi-axis (the zone shrunk about its centre by r contains the point, and
    convexity puts the ball of radius (1 - r) b around every point of that shrunk zone inside
    the zone); 0 outside every zone."""
    out = np.zeros(len(P))
    for e in ells:
        d = P - e.centre
        t = d @ e.axis
        r = np.sqrt(t * t / e.a_mm ** 2 + (np.einsum("pi,pi->p", d, d) - t * t) / e.b_mm ** 2)
        np.maximum(out, (1.0 - r) * min(e.a_mm, e.b_mm), out=out)
    return out


def check_points(ctx: AblationContext, margin_mm: float) -> tuple[np.ndarray, float]:
    """(kji (n, 3) int indices on the analysis grid, h mm): the analysis grid's voxel centres
    inside the tumour or within ``margin_mm`` + h of its outline (its label-map voxels' boxes,
    `outline.Outline`, the MAM's outline), h half the analysis voxel's diagonal. Every point
    within ``margin_mm`` of the outline lies within h of one of them (the voxel cells tile
    space), so when each of their balls of radius h lies inside a zone, the zones hold every
    point within ``margin_mm`` of the outline (the margin is proven on that outline). Found by
    ``edt`` to the tumour's analysis voxels (the boxes' sub-voxels: at most h above the distance
    to the boxes), then the exact box distance (`Outline.box_distance`, its lower bound)."""
    import edt

    g = ctx.grid
    sp = g.spacing_kji
    h = 0.5 * float(np.linalg.norm(sp))
    reach = float(margin_mm) + 2.0 * h
    pv = np.ceil(reach / sp).astype(int) + 1
    lo = np.maximum(ctx.tumour_box[0] - pv, 0)
    hi = np.minimum(ctx.tumour_box[1] + pv, g.shape)
    tum = ctx.tumour[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    dist = edt.edt(~tum, anisotropy=tuple(float(x) for x in sp), black_border=False)
    near = np.argwhere(dist <= reach)
    del dist
    inside = tum[tuple(near.T)]
    kji = near + lo
    low, _ = ctx.voxel_outline.box_distance(g.kji_to_ras(kji[~inside].astype(float)))
    keep = inside.copy()
    keep[~inside] = low <= float(margin_mm) + h
    return kji[keep], h


def guaranteed_margin(ctx: AblationContext, ells, margin_mm: float | None = None) -> dict:
    """The margin the zones ``ells`` provably hold around the tumour's outline (its label-map
    voxels' boxes): `outline.Outline.margin`, the one measurement of the minimal ablative
    margin (the same figure as `Coverage.mam_mm`; exact for one zone, a lower bound for
    several), rounded down to 1e-3 mm, at most the context's margin cap (``capped``). With
    ``margin_mm``, also the analysis grid's check of that margin (`check_points`):
    ``check_points`` and ``uncovered`` (those whose ball of radius h is not inside one zone,
    `_depth`: where the zones may fall short of ``margin_mm``). Before abl101 this was measured
    from the analysis grid's interpolated tumour voxel CENTRES: up to half a label voxel above
    the MAM (new-user trial 103 F5.1: "5 mm proven" beside "MAM 4.98 mm").
    Returns {guaranteed_margin_mm, capped, ball_radius_mm, check_points, uncovered}."""
    cap = float(ctx.cap_mm)
    m, _ = ctx.voxel_outline.margin(list(ells), cap)
    m = math.floor(1000 * float(m)) / 1000
    out = {"guaranteed_margin_mm": m, "capped": bool(m >= cap)}
    if margin_mm is not None:
        kji, h = check_points(ctx, margin_mm)
        bad = _depth(ctx.grid.kji_to_ras(kji.astype(float)), ells) < h
        out.update(check_points=int(len(kji)), uncovered=int(bad.sum()))
    else:
        h = 0.5 * float(np.linalg.norm(ctx.grid.spacing_kji))
    out["ball_radius_mm"] = round(h, 3)
    return out


def margin_text(mm: float) -> str:
    """A guaranteed margin (mm) to two decimals, rounded DOWN (4.996 must not read as the 5.00 it
    misses); the 1e-6 keeps a float's 5.1 = 5.0999... from reading 5.09."""
    return f"{math.floor(round(float(mm) * 100, 6)) / 100:.2f}"


def margin_check(ctx: AblationContext, ells, margin_mm: float) -> dict:
    """Proof check of the margin around the tumour's outline (its label-map voxels' boxes, the
    outline of the minimal ablative margin, `guaranteed_margin`): proven when the zones' margin
    there (`outline.Outline.margin`, the MAM's own measurement, so "proven" and the MAM criterion
    never disagree) is at least ``margin_mm`` and no part of tumour + margin lies past the image.
    ``uncovered``: `check_points` whose ball (radius h, half the analysis voxel diagonal) lies
    inside no zone. Returns {margin_mm, proven, guaranteed_margin_mm, guaranteed_capped,
    check_points, uncovered, uncovered_pct, ball_radius_mm, statement}."""
    gm = guaranteed_margin(ctx, ells, margin_mm)
    h, m, n, miss = gm["ball_radius_mm"], gm["guaranteed_margin_mm"], gm["check_points"], gm["uncovered"]
    # tumour + margin past the image (or in the CT's padding): the zones may hold it geometrically
    # (the grid reaches past the array), but the margin there is not verifiable (trial 90 1b)
    past = ctx.unimaged_shell_ml(margin_mm)
    edge = _scan_edge_note(ctx, margin_mm)
    geometric = m >= margin_mm
    proven = geometric and past <= 0.0 and not edge
    at_least = "at least " if gm["capped"] else ""
    m_txt = margin_text(m)
    what = "the tumour's outline (the faces of its label-map voxels)"
    return {"margin_mm": margin_mm, "proven": bool(proven), "guaranteed_margin_mm": m,
            "guaranteed_capped": gm["capped"], "check_points": n,
            "uncovered": miss, "uncovered_pct": round(100.0 * miss / max(n, 1), 3),
            "ball_radius_mm": h,
            "statement": (f"every point within {margin_mm:g} mm of {what} lies inside a zone: the minimal "
                          f"ablative margin (the zones' margin around it) is {at_least}{m_txt} mm" if proven else
                          f"NOT proven: every point within {margin_mm:g} mm of {what} lies inside a zone (margin "
                          f"{at_least}{m_txt} mm, the zones' part past the image included), but tumour + "
                          f"{margin_mm:g} mm reaches {past:.2f} mL of tissue past the image or in its padding, where "
                          "the margin is not verifiable" + edge if geometric else
                          f"NOT proven: the minimal ablative margin (the zones' margin around {what}) is "
                          f"{m_txt} mm; {miss} of {n} analysis voxel centres within {margin_mm:g} + {h:.2f} mm of it "
                          f"lack a {h:.2f} mm ball inside one zone (the margin may be below {margin_mm:g} mm there)"
                          + edge)}


def box_outline_margin_mm(ctx: AblationContext, ells) -> float:
    """A lower bound (mm, >= 0, rounded down to 1e-3) of the margin the zones ``ells`` leave
    around the tumour's outline drawn from its label-map voxels (the union of the voxels' boxes
    on the label grid, where Slicer draws the label map and where the minimal ablative margin is
    measured between outlines): `outline.Outline.margin`, the one measurement of the minimal
    ablative margin (exact for one zone; for several, the union's surface to the boxes by branch
    and bound, within 0.1 mm away from where two zones' surfaces meet). 0 when the tumour may
    reach the zones' surface. (Before abl100: Fibonacci samples of the zones' surface 0.3 mm
    apart, less 0.3 mm, with the nearest box among the 27 nearest box centres: neither bound
    was proven.)"""
    m = ctx.voxel_outline.margin(list(ells), np.inf)[0]
    return max(math.floor(1000 * m) / 1000, 0.0) if np.isfinite(m) else 0.0


def _scan_edge_note(ctx: AblationContext, margin_mm: float) -> str:
    """'; the tumour lies d mm from the image's end ...' when a tumour voxel centre lies closer
    than ``margin_mm`` to the label map's outermost voxel centres (the margin beyond the image
    cannot be checked: no zone can prove it there), else ''."""
    gap, where = ctx.labels.nearest_end(*ctx.tumour_bounds_kji)
    if gap >= margin_mm:
        return ""
    return (f"; the tumour lies {gap:.1f} mm from the image's {where}: the margin beyond the "
            "image cannot be checked (scan a longer range, or check the margin there on another image)")


def _proven_cover(ctx, margin_mm, C, U, setting, cost, verified, verify, step_mm, limit_s,
                  max_rounds: int = 60, spacing: "Spacing | None" = None):
    """Columns of a cover that proves the margin (`margin_check`'s check points, each with its
    ball inside one zone), by lazy constraints: a greedy cover of the check points on a
    ``step_mm`` lattice; the check points it leaves out (spread 1 mm apart) are added and the
    greedy cover taken again until none is left; then ``milp`` asked for fewer zones over the
    points so far, its solution's missed check points added as rows and the milp solved again,
    until a smaller cover proves the margin, the milp finds none smaller (then the greedy
    cover is the fewest over these zones when that solve was optimal) or ``limit_s`` is spent
    (each solve gets 40 % of what is left). Every chosen path is verified
    (``verify``); a rejected one is never chosen again. Returns (columns, rows used, proven
    optimal over those rows, lp optimum, rounds). With ``spacing`` (probes in place at once)
    every cover keeps the probes clear of each other (`_spaced_cover`); none: `SpacingInfeasible`."""
    g = ctx.grid
    a, b = 0.5 * setting.zone_length_mm, 0.5 * setting.zone_diameter_mm
    kji, h = check_points(ctx, margin_mm)   # around the MAM's outline: its check proves the MAM
    P = quantise_mm(g.kji_to_ras(kji.astype(float)))
    P = P[world_order(P)]   # rows in world order: ties fall the same for any axis order
    del kji
    rows = _thin(P, step_mm)
    A = _covers(P[rows], C, U, a, b, h)
    bad = np.zeros(len(C), bool)

    def check(pick):
        return ~_covers(P, C[pick], U[pick], a, b, h).any(axis=1)

    for rounds in range(1, max_rounds + 1):
        Aa = A[:, ~bad]
        if not Aa.any(axis=1).all():
            raise ImagioError(f"the margin of {margin_mm:g} mm cannot be guaranteed: check points "
                              "around the tumour lie outside every verified candidate zone")
        if spacing is None:
            pick = np.flatnonzero(~bad)[_greedy_cover(Aa, cost[~bad])]
            pick = _two_for_one(A, pick, cost, ~bad)
        else:   # any cover whose probes keep clear (the milp below then looks for fewer)
            usable = np.flatnonzero(~bad)
            sub = _greedy_cover(Aa, cost[~bad], spacing.sub(usable))
            if not (len(sub) and Aa[:, sub].any(axis=1).all()):
                sub, none = _spaced_cover(Aa, cost[~bad], max(0.4 * float(limit_s), 1.0), None, 0,
                                          spacing.sub(usable))
                if not len(sub):
                    raise SpacingInfeasible(none)
            pick = usable[sub]
        rej = [i for i in pick if not verified.setdefault(int(i), verify(int(i)))]
        if rej:
            bad[rej] = True
            continue
        miss = np.flatnonzero(check(pick))
        if len(miss) == 0:
            break
        new = miss[_thin(P[miss], 1.0)]
        rows = np.concatenate([rows, new])
        A = np.concatenate([A, _covers(P[new], C, U, a, b, h)])
    else:
        raise ImagioError(f"the guaranteed cover did not settle within {max_rounds} rounds")
    # then milp for fewer zones, with the same lazy rows: a solution over the rows so far that
    # misses check points gets them as rows and is solved again. The optimum over a subset of
    # the rows is a lower bound over all of them: when it is not below the proven cover's count,
    # that cover is the fewest (proven when the solve was optimal).
    keep = np.flatnonzero(~bad)
    Ar, cols = reduce_cover(A[:, keep], cost[keep], columns=spacing is None)
    cols = keep[cols]
    nz = Ar.shape[1]
    cons = [LinearConstraint(sparse.csr_matrix(Ar, dtype=float), lb=1.0, ub=np.inf)]
    lp = milp(np.ones(nz), constraints=cons, bounds=Bounds(0, 1), integrality=np.zeros(nz))
    lp_opt = float(lp.fun) if lp.status == 0 else None   # a lower bound for every later row set
    proven = False
    t_end = time.perf_counter() + float(limit_s)
    for _ in range(max_rounds):
        left = t_end - time.perf_counter()
        if left <= 0:
            break
        # each solve gets 40 % of the time left (a time limit only stops a run-away solve)
        # no restarts here: the lazy rows' LP bound is rarely reached (9 probes against 6 on the
        # 45 mm demo tumour at 1.5 mm), so they would only add 256 restarts to every round
        sub, opt = _solve_cover(Ar, cost[cols], max(0.4 * left, 1.0), lp_opt, restarts=0,
                                spacing=None if spacing is None else spacing.sub(cols))
        better = cols[sub]
        if len(better) == 0 or len(better) >= len(pick):
            proven = opt
            break
        rej = [i for i in better if not verified.setdefault(int(i), verify(int(i)))]
        if rej:
            bad[rej] = True
        else:
            miss = np.flatnonzero(check(better))
            if len(miss) == 0:
                pick, proven = better, opt
                break
            new = miss[_thin(P[miss], 1.0)]
            rows = np.concatenate([rows, new])
            A = np.concatenate([A, _covers(P[new], C, U, a, b, h)])
        keep = np.flatnonzero(~bad)
        Ar, cols = reduce_cover(A[:, keep], cost[keep], columns=spacing is None)
        cols = keep[cols]
    return pick, len(rows), proven, lp_opt, rounds


def _thin(P: np.ndarray, step_mm: float) -> np.ndarray:
    """Indices of one point per ``step_mm`` cube (RAS), for a spread subset: in each cube the
    first in world order, listed in world order (`imagio.world_order.thin_per_cell`)."""
    return thin_per_cell(P, step_mm)


def probe_placement(device: Device, E: np.ndarray, T: np.ndarray, limit_mm: float) -> dict:
    """How the chosen probes (entries E, tips T, RAS mm) are placed, for plan.json: at once
    (``simultaneous``, cryoablation: each its own entry, shafts at least ``limit_mm`` apart,
    a constraint of the cover; ``closest_shafts_mm`` measured, `segment_distances`) or one after
    the other (microwave, radiofrequency: zones may be positions of one probe along one track);
    ``nearest_tip_mm``: each probe's nearest other tip, beside the confluent-ice spacing
    (``max_tip_spacing_mm`` of ``simultaneous_probe_spacing``, Littrup 2009)."""
    from .criteria import load_criteria

    spec = load_criteria()["simultaneous_probe_spacing"]
    n = len(E)
    d = segment_distances(E[:, None], T[:, None], E[None], T[None])[0] if n > 1 else np.zeros((1, 1))
    tips = np.linalg.norm(T[:, None] - T[None], axis=2) if n > 1 else np.zeros((1, 1))
    off = ~np.eye(n, dtype=bool)
    out = {"simultaneous": bool(device.simultaneous),
           "closest_shafts_mm": round(float(d[off].min()), 2) if n > 1 else None,
           "nearest_tip_mm": ([round(float(np.where(off[i], tips[i], np.inf).min()), 1) for i in range(n)]
                              if n > 1 else []),
           "max_tip_spacing_mm": float(spec["max_tip_spacing_mm"])}
    if device.simultaneous:
        out["min_shaft_spacing_mm"] = round(float(limit_mm), 3)
        out["statement"] = (f"{device.modality}: the {n} probes are in place at once; each has its own skin entry and "
                            f"every two shafts keep at least {limit_mm:.2f} mm apart from entry to tip (a constraint "
                            "of the choice: shaft diameter + twice the placement uncertainty, ablation_criteria.json "
                            "simultaneous_probe_spacing)")
    else:
        out["min_shaft_spacing_mm"] = None
        out["statement"] = (f"{device.modality}: the zones are ablated one after the other; zones through one skin "
                            "entry are positions of one probe, pulled back along its track or re-inserted along "
                            "another (shared entries allowed; the warnings say which)")
    return out


def _zone_collateral(cov: Coverage, host_organ: str) -> float:
    """Weighted mL of what a zone takes in besides the tumour: each structure's mL times its
    `collateral_class` weight (the host organ and unlabelled tissue at the default weight), the
    same weights the set cover's cost uses."""
    from .criteria import load_criteria

    default = float(load_criteria()["collateral_cost"]["default_weight"])
    return float(sum((default if n == host_organ else collateral_class(n)[0]) * ml
                     for n, ml in cov.healthy_ml.items()))


def one_probe_cover(plan, ctx: AblationContext, device: Device, setting: Setting, margin_mm: float,
                    guarantee_margin: bool = False, singles=None):
    """(index, `ProbePlan`) of the single probe on one of the plan's proposals (`place_on_path`:
    zone centred on the target, or ``singles``, those placements already made, one per proposal)
    that covers every voxel centre of tumour + ``margin_mm`` on the analysis grid (with
    ``guarantee_margin`` also the margin proven, `margin_check`), placeable (no hard constraint
    broken) and accepted by the independent `verify.Verifier`; of several, the one taking in the
    least critical tissue (`_zone_collateral`), then the first. None when none covers. Tried
    before the set cover: one probe is the fewest possible, and the cover's candidate zones
    (lattice centres, zones shrunk for the gaps between sample points) need not hold the
    proposal's centred zone (new-user trial 54 M2: "2 probes, proven" and 0.47 mL of colon, where
    proposal 1 alone covered tumour + 5 mm with none)."""
    from ..verify import Verifier

    if singles is None:
        singles = [place_on_path(plan, ctx, device, setting, m.entry_ras) for m in getattr(plan, "proposals", [])]
    host = getattr(plan.problem.target, "organ", "") or ""
    ok = [(_zone_collateral(sp.coverage, host), i) for i, sp in enumerate(singles)
          if sp.status_kind != "infeasible" and all(p.feasible for p in sp.probes)
          and sp.coverage.margin_covered_pct.get(float(margin_mm), 0.0) >= 100.0]
    if not ok:
        return None
    ev = plan.evaluator
    ver = ev._verifier or Verifier(plan.problem)
    for _, i in sorted(ok):
        sp = singles[i]
        p = sp.probes[0]
        if not ver.verify(np.asarray(p.entry_ras), np.asarray(p.tip_ras)).ok:
            continue
        if guarantee_margin and not margin_check(ctx, sp.zones, margin_mm)["proven"]:
            continue
        return i, sp
    return None


def plan_multiprobe(plan, ctx: AblationContext, device: Device, setting: Setting,
                    margin_mm: float = 5.0, max_probes: int | None = None, time_limit_s: float = 60.0,
                    dense_edge: bool = False, progress=None, solve_limit_s: float = 60.0,
                    guarantee_margin: bool = False, free_maps: bool = False, singles=None,
                    spare_rounds: int = SPARE_ROUNDS, require_no_hollow_viscus: bool = False) -> ProbePlan:
    """The fewest probes whose zones cover tumour + ``margin_mm`` (see module doc). The cover
    holds on the sample points; the returned ``coverage`` is measured on the analysis grid and
    ``margin_guarantee`` says whether `margin_check` proves the margin on it, and which margin
    the zones do guarantee (``guaranteed_margin_mm``, `guaranteed_margin`: the minimal ablative
    margin around the tumour's label-map voxel faces, the coverage's MAM) (with
    ``guarantee_margin`` verified zones are added until it does: more probes: 9 instead of 6 for
    the 45 mm demo tumour + 5 mm at 1.5 mm, measured 2026-12-01). The cover: `_solve_cover`
    (``solve_limit_s`` only stops a run-away solve).
    Probes may share a skin entry (sequential overlapping ablations along one track) unless
    the device's probes are in place at once (``device.simultaneous``: cryoablation): then
    every chosen set keeps each pair of shafts at least `min_shaft_spacing_mm` apart from entry
    to tip (`Spacing`: so each probe has its own entry), a constraint of the cover, and when no
    such set covers tumour + margin the plan fails with "INFEASIBLE: ..." (new-user trial 32 H4:
    two cryoprobes through one skin point, only warned after the choice).
    One probe first (`one_probe_cover`, over the proposals' single probes, ``singles`` when
    the caller placed them already): when one covers, it is the plan (``status_kind``
    "one_probe", lower bound 1) and no set cover is solved.
    ``free_maps``: for a caller done with ``plan``: its distance maps (``plan.maps``, its
    evaluator's, and `distance_maps`' cache of them) are dropped once the candidate paths are
    scored, the only step that reads them, so that they are not held through the set cover
    and the coverage evaluation (the demo's peak memory), and the heap's free pages are handed
    back (`imagio.memory.release_free_memory`), as before the scoring and each later step that
    allocates volumes or (points, zones) products (the collateral cost, the LP bound, the
    final evaluation, the margin check), so that each starts from the memory still held, not
    from the last step's freed pages (issue 20); ``plan`` can then not score again.
    ``spare_rounds``: passes of the pair swaps that spare critical tissue (`_pair_swaps`; 0: none,
    the benchmark's baseline, review 43 M4); their time is ``timings_s["pair_swaps"]``.
    Hollow viscera (``no_hollow_viscus``, ablation_criteria.json: thermal perforation) are a
    constraint of the cover when it stays feasible: the candidate zones holding a hollow-viscus
    voxel centre of the analysis grid (`hollow.hollow_points`) are
    left out; when a hollow viscus lies inside tumour + margin (`hollow.within_margin_text`: no
    zone set keeps it out), when the rest covers no tumour + margin, or their cover fails (more than
    ``max_probes``, no verified set), the cover of every zone is solved (hollow viscera weighed,
    ``collateral_cost``) and ``hollow_viscus`` says why (also the criterion's ``unavoidable``).
    A one-probe cover taking in a hollow viscus is replaced by such a cover of more probes when
    one exists. ``require_no_hollow_viscus``: no fallback (ImagioError instead), no one-probe try."""
    from ...progress import Progress

    prog = Progress(progress)
    mp = multi_probe()
    max_probes = int(mp["max_probes"]) if max_probes is None else int(max_probes)
    if max_probes < 1:
        raise InputError(f"max_probes {max_probes}: the most probes a multi-probe plan may use must be >= 1")
    t0 = time.perf_counter()
    if margin_mm not in ctx.regions:
        raise InputError(f"margin {margin_mm} mm is not prepared; build the AblationContext with "
                         f"margins including it (it has {sorted(ctx.regions)})")
    if setting.probes != 1:
        raise InputError(f"multi-probe planning places single probes; {setting.id!r} is a fused "
                         f"{setting.probes}-probe row: choose a single-probe setting of {device.name}")
    g = ctx.grid
    lb_vol = volume_bound(ctx.region_counts[margin_mm], g, setting)
    one = None if require_no_hollow_viscus else one_probe_cover(plan, ctx, device, setting, margin_mm,
                                                                  guarantee_margin, singles)
    if one is not None:
        hv1 = one[1].coverage.criteria.get("no_hollow_viscus") or {}
        if hv1.get("met") is not False:
            return _one_probe_plan(plan, ctx, device, setting, margin_mm, one, lb_vol, t0, prog)
        # the one probe that covers takes in a hollow viscus: a cover of more probes keeping them out first
        names = names_text((hv1.get("structures") or {}).keys())
        try:
            out = plan_multiprobe(plan, ctx, device, setting, margin_mm, max_probes, time_limit_s, dense_edge, progress,
                                  solve_limit_s, guarantee_margin, free_maps, [], spare_rounds,
                                  require_no_hollow_viscus=True)
            if out.hollow_viscus:
                out.hollow_viscus["text"] = (f"proposal {one[0] + 1}'s single probe covers tumour + {margin_mm:g} mm but "
                                             f"takes in {names}; " + out.hollow_viscus["text"])
            return out
        except InputError:
            raise
        except ImagioError as e:
            why = f"no cover of more probes keeping {names} out: {e}"
        out = _one_probe_plan(plan, ctx, device, setting, margin_mm, one, lb_vol, t0, prog)
        _hollow_note(out, {"hard": False, "excluded_zones": 0, "candidate_zones": 0,
                           "structures": sorted((hv1.get("structures") or {}).keys()),
                           "text": f"proposal {one[0] + 1}'s single probe covers tumour + {margin_mm:g} mm but takes in "
                                   f"{names}, and {why}"})
        return out
    target = np.asarray(plan.problem.target.point_ras, float)
    rows = _directions(plan.table, target, int(mp["max_directions"]), float(mp["min_direction_separation_deg"]))
    if len(rows) == 0:
        raise ImagioError("no feasible needle path to the tumour: plan the trajectories first "
                          "(the infeasibility report says which constraint excludes them)")
    entries = quantise_mm(plan.table.entry_ras[rows])
    centres = _lattice_ras(ctx.tumour, g, float(mp["centre_spacing_mm"]))
    if len(centres) == 0:
        centres = quantise_mm(target[None])
    limit = min_shaft_spacing_mm(plan.problem.needle)
    spaced = device.simultaneous
    if spaced:   # probes in place at once: side by side on parallel tracks, each its own entry
        dirs = quantise_mm(target[None]) - entries
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        cs = float(mp["centre_spacing_mm"])
        E, C, N, track, family = parallel_tracks(plan.maps, ctx, target, dirs, max(cs, limit), cs,
                                         float(plan.problem.needle.length_mm))
    else:        # candidate (entry, centre) pairs; tips put the zone centre on the lattice point
        E = np.repeat(entries, len(centres), axis=0)
        C = np.tile(centres, (len(entries), 1))
        N = np.repeat(plan.table.normal_ras[rows], len(centres), axis=0)
        track = family = None
    U = C - E
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    T = C + setting.centre_offset_mm * U
    prog(0.05, f"multi-probe: checking {len(E)} candidate probe paths")
    from ..scoring import score_paths
    from ..verify import Verifier

    from ...memory import release_free_memory

    def trim():   # free_maps: the heap's free pages back to the system (no result changes)
        if free_maps:
            release_free_memory()

    trim()   # (the single probes' evaluations)
    ok = score_paths(plan.problem, plan.maps, E, N, target_ras=T, device="numpy").feasible  # one pass
    ev = plan.evaluator
    ver = ev._verifier or Verifier(plan.problem)
    if free_maps:
        from ..distance_maps import forget_cached_maps

        maps, plan.maps, ev.maps = plan.maps, None, None
        if maps is not None:   # its boundary trees point back at it: a cycle only the cyclic GC frees
            maps._bnd = None
        del maps
        forget_cached_maps()
        release_free_memory(collect=True)   # their pages back to the system before the set cover (no result changes)
    if spaced:   # probes in place at once: every candidate verified before the cover (see below)
        ok[ok] = [ver.verify(E[i], T[i]).ok for i in np.flatnonzero(ok)]
    E, C, U, T = E[ok], C[ok], U[ok], T[ok]
    track, family = (None, None) if track is None else (track[ok], family[ok])
    t1 = time.perf_counter()
    # spaced: all verified already. A probe of a spaced cover that the verifier rejects can rarely
    # be replaced in place (its neighbours' shafts hem it in) and the cover solved again without it
    # repeats the whole search: with plan25's couch rule the cryo test's 45 mm tumour took 556 s for
    # 22 probes, one was rejected (2.68 mm from the right kidney < 2.74 mm) and the second solve,
    # left 0.1 s of time_limit_s, failed. Checking the ~2000 candidates first took 22 s there.
    verified: dict = {j: True for j in range(len(E))} if spaced else {}
    if len(E) == 0:
        raise ImagioError("no candidate probe path is feasible once advanced to the zone centres; "
                          "use a device with a smaller tip-to-centre offset or relax the constraints")
    # coverage matrix: sample points x zones (zones shrunk a little for the gaps between samples)
    step, shrink = float(mp["sample_spacing_mm"]), float(mp["zone_shrink_mm"])
    region = ctx.regions[margin_mm]
    pts = [_lattice_ras(region, g, step)]
    if dense_edge:   # twice as dense on the outer edge: fewer dents in the margin, slower cover
        shell = region & (ctx.tumour_sdf >= margin_mm - 1.5 * float(g.spacing_kji.max()))
        pts.append(_lattice_ras(shell, g, step / 2))
    P = np.concatenate(pts)
    P = P[world_order(P)]
    a = 0.5 * setting.zone_length_mm - shrink
    b = 0.5 * setting.zone_diameter_mm - shrink
    A = _covers(P, C, U, a, b, 0.0)
    coverable = A.any(axis=1)
    sample_cov = 100.0 * coverable.mean()
    if not coverable.all():
        raise ImagioError(f"no set of feasible probes covers tumour + {margin_mm:g} mm with {device.name} "
                          f"{setting.id}: {100 - sample_cov:.1f}% of it lies outside every candidate zone. "
                          "Choose a larger setting, a smaller margin, or relax the trajectory constraints")
    def solve(E, C, U, T, track, family, A):
        # one set cover over the candidate zones given (columns of A): (E, T, U, pick, proven, nz, lp_opt,
        # spared, t_swaps, host); raises ImagioError when none is found within the limits
        verified: dict = {j: True for j in range(len(E))} if spaced else {}
        # healthy tissue per zone: zone volume minus its overlap with the tumour (tumour lattice)
        tl = _lattice_ras(ctx.tumour, g, step)
        cell_ml = ctx.tumour_count * g.voxel_ml / max(len(tl), 1)
        # inside_t = t^2 / (a + shrink)^2 + (|d|^2 - t^2) / (b + shrink)^2 <= 1, the same operations in
        # the same order, computed in place: the (points, zones, 3) float64 offsets ``dt`` (45 MiB for
        # the 45 mm demo tumour at 1.5 mm) are dropped once read, and the (points, zones) products
        # are not held through the set cover and the margin check (issue 20)
        dt = tl[:, None, :] - C[None]
        tt = np.einsum("pzi,zi->pz", dt, U)
        rr = np.einsum("pzi,pzi->pz", dt, dt)
        del dt
        tt *= tt
        rr -= tt
        rr /= (b + shrink) ** 2
        tt /= (a + shrink) ** 2
        tt += rr
        del rr
        inside_t = tt <= 1
        del tt
        healthy = np.round(np.maximum(setting.volume_ml - inside_t.sum(axis=0) * cell_ml, 0.0), 9)  # mL; rounded:
        # cell_ml (a determinant) differs in the last bits for another axis order
        del inside_t
        host = getattr(plan.problem.target, "organ", "") or ""
        trim()
        extra = collateral_cost(ctx, C, U, a + shrink, b + shrink, host)   # critical tissue weighs more
        healthy = healthy + extra
        healthy_all = healthy.copy()
        A, cols = reduce_cover(A, healthy, columns=not spaced)
        spacing = Spacing.of(E[cols], T[cols], limit, track[cols], family[cols]) if spaced else None
        nz = A.shape[1]
        prog(0.65, f"multi-probe: set cover over {nz} zones and {A.shape[0]} sample points")
        # fewest probes first, least healthy tissue second: cost 1 + eps * healthy, with eps so
        # small that the healthy term of any max_probes-set stays below one probe
        hc = healthy[cols]
        eps = 1.0 / (max_probes * float(hc.max()) + 1.0) if hc.max() > 0 else 0.0
        cost = 1.0 + eps * hc
        trim()
        mx = maximal_columns(A)   # the same LP optimum over the maximal zones
        cons = [LinearConstraint(sparse.csr_matrix(A[:, mx], dtype=float), lb=1.0, ub=np.inf)]
        lp = milp(np.ones(len(mx)), constraints=cons, bounds=Bounds(0, 1), integrality=np.zeros(len(mx)))
        lp_opt = float(lp.fun) if lp.status == 0 else None
        def infeasible(proven_none: bool, limit_s: float | None = None) -> ImagioError:
            # no set of probes that can be in place together; ``limit_s``: the solve had only what was
            # left of ``time_limit_s`` (less than ``solve_limit_s``), so it may have stopped on time
            n_ent = len(np.unique(quantise_mm(E), axis=0))
            return ImagioError(
                f"INFEASIBLE: no set of {device.name} {setting.id} probes covers tumour + {margin_mm:g} mm with each "
                f"probe its own skin entry and every two shafts at least {limit:.2f} mm apart from entry to tip "
                f"({device.modality}: the probes are in place at once; a shaft of {plan.problem.needle.diameter_mm:g} mm "
                f"+ twice the placement uncertainty of {plan.problem.needle.uncertainty_mm:g} mm; ablation_criteria.json "
                f"simultaneous_probe_spacing) among {n_ent} entries: "
                + ("none exists among the candidate probes" if proven_none else
                   f"none found within {NODE_LIMIT} solver nodes"
                   + (f" or the {limit_s:.1f} s left of the {time_limit_s:g} s time limit" if limit_s is not None else "")
                   + " (not proven that none exists)")
                + "; choose a larger setting or a smaller margin, or place the probes by hand")

        spared = False   # pair swaps searched a cover of that count sparing critical tissue
        t_swaps = 0.0
        if not guarantee_margin:
            rejected = np.zeros(nz, bool)

            def accept(i: int) -> bool:   # column i of A independently verified (each path once)
                j = int(cols[i])
                if j not in verified:
                    verified[j] = ver.verify(E[j], T[j]).ok
                rejected[i] |= not verified[j]
                return verified[j]

            for _ in range(20):   # the chosen paths re-checked independently; a rejected one is dropped
                keep = np.flatnonzero(~rejected)
                if not A[:, keep].any(axis=1).all():
                    raise ImagioError(f"no set of independently verified probes covers tumour + {margin_mm:g} mm")
                left = max(time_limit_s - (time.perf_counter() - t1), 0.1)
                sub, proven = _solve_cover(A[:, keep], cost[keep], min(solve_limit_s, left), lp_opt,
                                           spacing=None if spacing is None else spacing.sub(keep))
                if not len(sub):
                    raise infeasible(proven, left if left < solve_limit_s else None)
                if extra[cols[keep[sub]]].sum() > 0 and spacing is None and spare_rounds > 0:   # pair swaps spare it
                    ts = time.perf_counter()
                    sub = _pair_swaps(A[:, keep], sub, cost[keep], extra[cols[keep]] > 0, rounds=int(spare_rounds))
                    t_swaps += time.perf_counter() - ts
                    spared = True
                pick_r = keep[sub]
                bad = [i for i in pick_r if not accept(i)]
                if bad:   # each rejected probe replaced by a verified one that covers what only it covered
                    fixed = repair_cover(A, pick_r, bad, cost, accept, spacing)
                    if fixed is not None:
                        pick_r, bad = fixed, []
                if not bad:
                    break
                rejected[bad] = True
            pick = cols[pick_r]
        else:   # a cover that proves the margin (lazy constraints)
            eps_all = 1.0 / (max_probes * float(healthy_all.max()) + 1.0) if healthy_all.max() > 0 else 0.0
            try:
                pick, n_rows, proven, lp_g, rounds = _proven_cover(
                    ctx, margin_mm, C, U, setting, 1.0 + eps_all * healthy_all, verified,
                    lambda j: ver.verify(E[j], T[j]).ok, step, min(solve_limit_s, time_limit_s),
                    spacing=Spacing.of(E, T, limit, track, family) if spaced else None)
            except SpacingInfeasible as e:
                raise infeasible(e.proven) from None
            if lp_g is not None:
                lp_opt = lp_g
        if len(pick) > max_probes:
            raise ImagioError(f"covering tumour + {margin_mm:g} mm needs {len(pick)} probes > the allowed "
                              f"{max_probes}; choose a larger setting or allow more probes (imagio plan --max-probes)")
        return E, T, U, pick, proven, nz, lp_opt, spared, t_swaps, host

    # hollow viscera (ablation_criteria.json no_hollow_viscus: thermal perforation) are kept out as a constraint
    # of the cover when it stays feasible: the candidate zones taking in a hollow-viscus voxel centre of the
    # analysis grid are left out; else the cover of every zone (hollow viscera weighed, collateral_cost), said
    hv_note, res = None, None
    inside = within_margin_text(ctx, margin_mm)   # hollow viscera inside tumour + margin: no cover keeps them out
    touch, hit = (np.zeros(len(C), bool), []) if inside else _hollow_touch(ctx, C, U, a + shrink, b + shrink)
    if inside:
        if require_no_hollow_viscus:
            raise ImagioError(inside)
        hv_note = {"hard": False, "excluded_zones": 0, "candidate_zones": int(len(C)),
                   "text": f"{inside}; the cover weighs hollow viscera (collateral_cost) but takes them in"}
    elif touch.any():
        keep = ~touch
        names = names_text(hit)
        base = {"hard": False, "excluded_zones": 0, "candidate_zones": int(len(C)), "structures": sorted(set(hit))}
        only = ~A[:, keep].any(axis=1)
        if only.any():
            why = (f"no set of the {len(C)} candidate zones keeping {names} out covers tumour + {margin_mm:g} mm: "
                   f"{100.0 * only.mean():.1f}% of its sample points lie only in zones that take one in")
        else:
            try:
                res = solve(E[keep], C[keep], U[keep], T[keep], None if track is None else track[keep],
                            None if family is None else family[keep], A[:, keep])
                why = ""
            except InputError:
                raise
            except ImagioError as e:
                why = f"no cover keeping {names} out was found ({e})"
        if res is not None:
            hv_note = {**base, "hard": True, "excluded_zones": int(touch.sum()),
                       "text": (f"hollow viscera kept out: the {int(touch.sum())} of {len(C)} candidate zones that "
                                f"would take in {names} were left out of the cover (a constraint)")}
        elif require_no_hollow_viscus:
            raise ImagioError(why)
        else:
            hv_note = {**base, "text": f"{why}; the cover weighs hollow viscera (collateral_cost) but takes them in"}
    if res is None:
        res = solve(E, C, U, T, track, family, A)
    E, T, U, pick, proven, nz, lp_opt, spared, t_swaps, host = res
    t2 = time.perf_counter()
    prog(0.9, f"multi-probe: {len(pick)} probes; re-checking and evaluating coverage")
    probes = [_placement(plan, E[i], T[i], checked=True) for i in pick]   # scored and verified
    ells = zones([Probe(T[i], U[i]) for i in pick], setting)
    trim()
    cov = ctx.evaluate(ells, device.modality)
    lb_lp = int(math.ceil(lp_opt - 1e-6)) if lp_opt is not None else None
    out = ProbePlan(device.name, setting.id, device.modality, probes, cov, margin_mm,
                    max(lb_vol, lb_lp or 0), lb_lp, lb_vol, lp_opt, nz, int(len(P)), sample_cov,
                    status=("fewest probes over the candidate zones (proven), then less healthy tissue, critical "
                            "structures weighted (local swaps)"
                            if proven else f"best cover found (greedy, then milp within {NODE_LIMIT} "
                            f"nodes or {solve_limit_s:g} s): the fewest probes not proven"),
                    status_kind="cover_proven" if proven else "cover_not_proven")
    out.placement = probe_placement(device, E[pick], T[pick], limit)
    out.collateral = collateral_report(cov, len(pick), spared, host_organ=host)
    _hollow_note(out, hv_note)
    trim()
    _margin_doubt(out, ctx, ells, margin_mm)
    out._zones = ells
    out.timings_s = {"candidate_paths": t1 - t0, "set_cover": t2 - t1, "pair_swaps": t_swaps,
                     "evaluate": time.perf_counter() - t2, "total": time.perf_counter() - t0}
    prog(1.0, f"multi-probe: {len(pick)} probes ({lower_bound_words(out.lower_bound)})")
    return out


def _hollow_touch(ctx: AblationContext, C: np.ndarray, U: np.ndarray, a_mm: float,
                  b_mm: float) -> tuple[np.ndarray, list]:
    """(touch, names): bool (len(C),) whether the zone of centre C, unit axis U, semi-axes a
    along, b across (RAS mm) holds an analysis-grid voxel centre of a hollow viscus
    (`hollow.hollow_points`, within the farthest zone's reach of the tumour), and the names of
    the hollow viscera some zone holds. Vectorised over points, blocks of zones."""
    touch = np.zeros(len(C), bool)
    if not len(C):
        return touch, []
    kji = np.clip(np.rint(ctx.grid.ras_to_kji(C)).astype(int), 0, np.asarray(ctx.tumour_sdf.shape) - 1)
    reach = max(float(np.max(ctx.tumour_sdf[tuple(kji.T)])), 0.0) + max(a_mm, b_mm) + float(np.max(ctx.grid.spacing_kji))
    H, hn, _ = hollow_points(ctx, reach)
    hit = np.zeros(len(H), bool)
    if len(H):
        for z0, z1, inside in _zone_blocks(H, C, U, a_mm, b_mm):
            touch[z0:z1] = inside.any(axis=0)
            hit |= inside.any(axis=1)
    return touch, sorted(set(hn[hit]))


def _hollow_note(out: ProbePlan, note: dict | None) -> None:
    """``out.hollow_viscus`` = ``note``; when the zones still take in a hollow viscus, the
    criterion's ``unavoidable`` says why (`commands.hollow_viscus_verdict`), and a cover that
    excluded them but whose evaluated zones hold one says so."""
    out.hollow_viscus = note
    if not note:
        return
    hv = out.coverage.criteria.get("no_hollow_viscus") or {}
    if note["hard"]:
        out.status += "; " + note["text"]
        if hv.get("met") is False:   # the grid grew past the points tested, or a tie on a voxel centre
            note["text"] += ("; yet the evaluated zones take in " + names_text((hv.get("structures") or {}).keys()))
    if hv.get("met") is False:
        hv["unavoidable"] = note["text"] + ": hydrodissection / artificial ascites, another path, or another modality"


def _margin_doubt(out: ProbePlan, ctx: AblationContext, ells, margin_mm: float) -> None:
    """``out.margin_guarantee`` (`margin_check` of ``ells``) and, when the margin is not proven,
    the doubt appended to ``out.status``."""
    out.margin_guarantee = margin_check(ctx, ells, margin_mm)
    if not out.margin_guarantee["proven"]:   # a doubt travels with the result
        out.status += (f"; the {margin_mm:g} mm margin is not proven around the tumour's voxel faces: the "
                       f"zones' margin there (the MAM) is {margin_text(out.margin_guarantee['guaranteed_margin_mm'])} mm "
                       f"({out.margin_guarantee['uncovered_pct']:g}% of its check points lack {margin_mm:g} mm; "
                       "--guarantee-margin (guarantee_margin=True) adds probes until the "
                       "margin is proven: more probes than this count, the trade-off is the user's)")


def _one_probe_plan(plan, ctx: AblationContext, device: Device, setting: Setting, margin_mm: float,
                    one, lb_vol: int, t0: float, prog) -> ProbePlan:
    """The multi-probe plan of one probe (`one_probe_cover`'s (index, single-probe plan))."""
    i, sp = one
    p = sp.probes[0]
    host = getattr(plan.problem.target, "organ", "") or ""
    out = ProbePlan(device.name, setting.id, device.modality, [p], sp.coverage, margin_mm,
                    1, None, lb_vol, None, len(getattr(plan, "proposals", [])), 0, None,
                    status=(f"one probe covers tumour + {margin_mm:g} mm at every voxel centre of the analysis grid "
                            f"(proposal {i + 1}'s path: {sp.status.removeprefix('single probe, ')}; the proposals' "
                            "single probes are tried before the set cover): the fewest possible"),
                    status_kind="one_probe")
    out.from_proposal = i + 1
    out.single_status_kind, out.single_status = sp.status_kind, sp.status   # review 44 M3: its doubt kept
    out.placement = probe_placement(device, np.asarray([p.entry_ras]), np.asarray([p.tip_ras]),
                                    min_shaft_spacing_mm(plan.problem.needle))
    out.collateral = collateral_report(sp.coverage, 1, False, host_organ=host)
    out.collateral["how"] = ("of the proposals' single probes that cover, the one taking in the least of it; "
                             "one probe is the fewest possible")
    _margin_doubt(out, ctx, sp.zones, margin_mm)
    out._zones = sp.zones
    out.timings_s = {"total": time.perf_counter() - t0}
    prog(1.0, f"multi-probe: 1 probe (proposal {i + 1}'s, covers tumour + {margin_mm:g} mm)")
    return out
